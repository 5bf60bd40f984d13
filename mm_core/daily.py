"""Per-day export: one spreadsheet row per UTC day of capture, across one or more runs.

``mm daily RUN_DIR [RUN_DIR...] [--out daily.csv] [--json]`` prints and writes, per UTC day (by
capture time): samples, p50/p95/p99 age, unsafe share, the QA status of that day's rows and the
reconnect attempts logged that day. Runs that cover the same day are pooled (percentiles over all
their samples; QA status = the worst of them), so a month of daily runs becomes one table.

The QA of a day runs the row checks of ``mm qa`` on that day's rows (a gap spanning midnight counts
for the day it ends in) plus the unusable and torn lines whose capture time falls in that day.

Exit codes: 0 = exported, 2 = a run directory is missing or unreadable.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from mm_core.capture.layout import EVENTS_NAME
from mm_core.quality import (
    FAIL,
    PARSE_DEFECTS,
    PASS,
    WARN,
    Check,
    InputError,
    Samples,
    format_table,
    iso_ns,
    jsonable,
    load_samples,
    read_event_log,
    rejected_counts,
    rejection_checks,
    row_checks,
    worst,
)

_DAY_NS = 86_400_000_000_000
COLUMNS = ("date", "samples", "p50_ms", "p95_ms", "p99_ms", "unsafe_share", "qa_status", "qa_issues",
           "reconnects", "runs")


@dataclass
class DayRow:
    date: str
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    unsafe_share: float
    qa_status: str
    qa_issues: str
    reconnects: int
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclass
class _Day:
    ages: list[np.ndarray] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    reconnects: int = 0
    runs: set[str] = field(default_factory=set)


def _day_of(ns: int) -> str:
    return iso_ns(ns)[:10]


def day_qa(s: Samples, day_df: pl.DataFrame, prev_ts: int | None, day: str, last_day: bool,
           max_gap_s: float, strict: bool) -> list[Check]:
    """QA of one day's rows: the row checks plus that day's rows that are not samples (the same
    rules as ``mm qa``: :mod:`mm_core.sample_rows`) and its torn lines."""
    sub = dataclasses.replace(s, df=day_df)
    checks = row_checks(sub, max_gap_s=max_gap_s, prev_ts=prev_ts)
    in_day = [d for d in s.defects if d.ts_capture is not None and _day_of(d.ts_capture) == day]
    broken = [d for d in in_day if d.kind in PARSE_DEFECTS]
    if broken:
        checks.append(Check("types", FAIL, len(broken), broken[0].reason))
    rejected = collections.Counter(d.kind for d in in_day if d.kind not in PARSE_DEFECTS and d.kind != "torn")
    checks += rejection_checks(s.input.kind, dict(rejected), in_day)
    torn = [d for d in s.defects if d.kind == "torn" and d.ts_capture is not None and _day_of(d.ts_capture) == day]
    if last_day and s.torn is not None:
        torn.append(s.torn)
    if torn:
        checks.append(Check("torn_lines", WARN, len(torn), torn[0].reason))
    if strict:
        for c in checks:
            if c.status == WARN:
                c.status = FAIL
    return checks


def daily_rows(run_dirs: Sequence[str | Path], *, unsafe_ms: float = 80.0, max_gap_s: float = 60.0,
               strict: bool = False, notes: list[str] | None = None, progress: bool = False) -> list[DayRow]:
    """One row per UTC day over all runs; raises :class:`InputError` for an unreadable run.

    ``progress``: a bar over the run directories on a terminal (many days take a while to read).
    """
    from mm_core.progress import TaskBar

    days: dict[str, _Day] = {}
    notes = notes if notes is not None else []
    with TaskBar("daily", len(run_dirs), progress, unit="runs") as bar:
        for rd in bar.each(run_dirs):
            _read_run(Path(rd), days, notes, max_gap_s, strict)
    return _rows_of(days, unsafe_ms)


def _read_run(rd: Path, days: dict[str, "_Day"], notes: list[str], max_gap_s: float, strict: bool) -> None:
    """One run directory's samples and reconnects, added to ``days``."""
    if not rd.is_dir():
        raise InputError(f"{rd}: no such run directory")
    s = load_samples(rd)
    if s.input.kind == "csv" and not s.header_ok:
        notes.append(f"{rd}: header is {ascii(s.header[:80])}: no rows can be assigned to days (QA FAIL)")
        return
    unplaced = [d for d in s.defects if d.ts_capture is None and d.kind != "torn"]
    if unplaced:
        notes.append(f"{rd}: {len(unplaced)} rows that are not samples have no usable capture time and are "
                     f"in no day (first: {unplaced[0].reason})")
    rejected = rejected_counts(s)
    if rejected:
        notes.append(f"{rd}: {sum(rejected.values())} rows are not samples ("
                     + ", ".join(f"{k}: {v}" for k, v in rejected.items()) + "); `mm qa` names their lines")
    df = s.df.filter(pl.col("ts_capture").is_not_null()).with_columns(
        (pl.col("ts_capture") // _DAY_NS).alias("_day"))
    day_ids = df["_day"].unique(maintain_order=True).to_list()
    last_ts: int | None = None
    for i, d_id in enumerate(day_ids):
        day_df = df.filter(pl.col("_day") == d_id).drop("_day")
        day = _day_of(d_id * _DAY_NS)
        entry = days.setdefault(day, _Day())
        entry.runs.add(str(rd))
        ages = day_df["age_ms"].drop_nulls().to_numpy()
        entry.ages.append(ages[np.isfinite(ages)])
        checks = day_qa(s, day_df, last_ts, day, i == len(day_ids) - 1, max_gap_s, strict)
        entry.statuses.append(worst([c.status for c in checks]))
        entry.issues += [f"{c.name} {c.value}" for c in checks if c.status in (WARN, FAIL)]
        last_ts = int(day_df["ts_capture"][-1]) if day_df.height else last_ts
    for e in read_event_log(rd / EVENTS_NAME).of_kind("reconnecting"):
        ts = e.get("ts_capture")
        if isinstance(ts, int):
            days.setdefault(_day_of(ts), _Day()).reconnects += 1


def _rows_of(days: dict[str, "_Day"], unsafe_ms: float) -> list[DayRow]:
    rows: list[DayRow] = []
    for day in sorted(days):
        e = days[day]
        a = np.concatenate(e.ages) if e.ages else np.empty(0)
        if a.size:
            p50, p95, p99 = (float(x) for x in np.percentile(a, (50, 95, 99)))
            unsafe = float(np.count_nonzero(a > unsafe_ms) / a.size)
        else:
            p50 = p95 = p99 = unsafe = float("nan")
        rows.append(DayRow(day, int(a.size), p50, p95, p99, unsafe,
                           worst(e.statuses) if e.statuses else PASS, "; ".join(e.issues),
                           e.reconnects, len(e.runs)))
    return rows


def write_csv(rows: Sequence[DayRow], out: Path) -> None:
    """The spreadsheet: plain CSV, numbers unformatted, empty cells for 'no samples'."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in rows:
            d = r.to_dict()
            w.writerow([_cell(d[c]) for c in COLUMNS])


def _cell(v: Any) -> Any:
    """Spreadsheet cell: empty for 'none', floats rounded to what the data can resolve (ns -> 1e-6 ms)."""
    if v is None:
        return ""
    return round(v, 8) if isinstance(v, float) else v


def format_rows(rows: Sequence[DayRow]) -> str:
    def ms(x: float) -> str:
        return "-" if not np.isfinite(x) else f"{x:.3f}"

    return format_table(
        ("DATE", "SAMPLES", "P50_MS", "P95_MS", "P99_MS", "UNSAFE", "QA", "RECONNECTS", "RUNS", "QA_ISSUES"),
        [(r.date, r.samples, ms(r.p50_ms), ms(r.p95_ms), ms(r.p99_ms),
          "-" if not np.isfinite(r.unsafe_share) else f"{100 * r.unsafe_share:.3f} %",
          r.qa_status, r.reconnects, r.runs, r.qa_issues or "-") for r in rows])


EXIT_HELP = "exit codes: 0 exported, 2 a run directory is missing or unreadable"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="collector run directories")
    p.add_argument("--out", default="daily.csv", help="spreadsheet to write (default: ./daily.csv)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--strict", action="store_true", help="a day's QA WARN counts as FAIL")
    p.add_argument("--unsafe-ms", type=float, default=None,
                   help="unsafe age threshold (default: config gate.unsafe_ms)")
    p.add_argument("--config", help="runtime config (default: the shipped one)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("daily", help="export per-day latency percentiles and QA status",
                              description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_core.config import ConfigError, GateConfig, load_config

    try:
        gate = load_config(args.config).gate
    except ConfigError as exc:
        if args.config:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        gate = GateConfig()
    unsafe = args.unsafe_ms if args.unsafe_ms is not None else gate.unsafe_ms
    notes: list[str] = []
    try:
        rows = daily_rows(args.run_dirs, unsafe_ms=unsafe, max_gap_s=gate.max_gap_s, strict=args.strict,
                          progress=not args.json,
                          notes=notes)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_csv(rows, out)
    if args.json:
        print(json.dumps({"out": str(out), "unsafe_ms": unsafe, "strict": args.strict,
                          "days": [r.to_dict() for r in rows], "notes": notes}))
    else:
        print(format_rows(rows))
        for n in notes:
            print(f"note: {n}")
        print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mm daily", description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
