"""``mm repair RUN_DIR``: rebuild the Parquet that a hard kill lost, from the run's raw archive.

Why it is possible: the writer flushes the raw archive and the sample CSV every second but writes a
Parquet part only every ``parquet_flush_s`` (60 s), so a ``kill -9`` or a power cut loses up to a
minute of canonical events -- yet every frame behind them is in ``raw/`` with its capture stamp, and
every health event is in ``events.jsonl`` (flushed per event).

How: the raw frames are run through the same adapter the collector used (built from the archive's
header; reset at each reconnect, found from the ``disconnected`` events of the event log, with the
same subscribe/resync bookkeeping), which yields the same canonical events with the same stamps.
Per table, the events already in Parquet are matched by ``(ts_capture, kind)``: each such group
is in Parquet in arrival order up to some point (a part holds everything the store had buffered),
so the missing events are the tail of each group. Market tables come from the replay, the
``health`` table from the event log. If the Parquet holds *more* of a group than the replay
produces, the replay does not reproduce the capture and nothing is written (exit 1).

What it records: ``repairs.json`` in the run directory -- when, which rows of which tables over
which capture interval, from which files, which parts it wrote -- so ``mm gate`` can say which data
was rebuilt. The record is written before the parts (status ``started``) and completed after them
(``done``), so an interrupted repair is visible too. A second repair finds nothing to do.

Exit codes: 0 repaired or nothing to repair, 1 the replay disagrees with the Parquet (or a write
failed), 2 unreadable input (not a run directory, a collector still writing it, bad archive).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from mm_core.capture.layout import (
    EVENTS_NAME,
    EXIT_RUNNING,
    PARQUET_DIR,
    RAW_DIR,
    SUMMARY_NAME,
    read_events,
    read_summary,
)
from mm_core.events import EVENT_BY_KIND, Event, FeedHealth
from mm_core.store.atomic import write_atomic

REPAIRS_NAME = "repairs.json"
MARKET_TABLES = ("book", "top_of_book", "trade")
# a summary still saying "running" that was rewritten this recently belongs to a live collector
LIVE_SUMMARY_S = 60.0
EXIT_OK, EXIT_INCONSISTENT, EXIT_INPUT = 0, 1, 2


class RepairError(ValueError):
    """The run directory cannot be repaired as asked; the message says why and what to do."""


@dataclass
class TableRepair:
    """What one table had, what the replay produced, and the events to add."""

    table: str
    in_parquet: int = 0
    replayed: int = 0
    missing: list[Event] = field(default_factory=list)
    excess: int = 0  # rows in Parquet that the replay does not produce (a disagreement)

    def to_dict(self) -> dict[str, Any]:
        ts = [e.ts_capture for e in self.missing]
        return {"in_parquet": self.in_parquet, "source_rows": self.replayed, "rebuilt": len(self.missing),
                "excess_in_parquet": self.excess,
                "capture_from_ns": min(ts) if ts else None, "capture_to_ns": max(ts) if ts else None}


@dataclass
class RepairPlan:
    run_dir: Path
    tables: dict[str, TableRepair]
    raw_files: list[str]
    frames: int
    unreadable_lines: int
    damaged_members: int

    @property
    def missing_rows(self) -> int:
        return sum(len(t.missing) for t in self.tables.values())

    @property
    def consistent(self) -> bool:
        return not any(t.excess for t in self.tables.values())


# ---------------------------------------------------------------------- reading the run


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


def _parquet_groups(run_dir: Path, table: str) -> collections.Counter:
    """(ts_capture, kind) -> rows of ``table`` already in the run's Parquet parts."""
    import pyarrow.parquet as pq

    counts: collections.Counter = collections.Counter()
    root = run_dir / PARQUET_DIR
    for f in sorted(root.rglob(f"{table}-*.parquet")) if root.is_dir() else []:
        t = pq.read_table(f, columns=["ts_capture", "kind"])
        counts.update(zip(t.column("ts_capture").to_pylist(), t.column("kind").to_pylist()))
    return counts


def _missing_tail(events: Iterable[Event], have: collections.Counter, rep: TableRepair) -> None:
    """Events beyond what Parquet holds of each (ts_capture, kind) group, in arrival order."""
    groups: dict[tuple[int, str], list[Event]] = collections.defaultdict(list)
    for e in events:
        groups[(e.ts_capture, e.KIND)].append(e)
        rep.replayed += 1
    rep.in_parquet = sum(have.values())
    for key, evs in groups.items():
        n = have.get(key, 0)
        if n < len(evs):
            rep.missing.extend(evs[n:])
    rep.excess = sum(max(0, n - len(groups.get(key, ()))) for key, n in have.items())
    rep.missing.sort(key=lambda e: e.ts_capture)  # stable: arrival order within a stamp


def _adapter(header: dict[str, Any]) -> Any:
    """The collector's adapter, rebuilt from the raw archive's header."""
    from mm_core.adapters import FeedSpec, adapter_class
    from mm_core.instrument import Instrument

    try:
        symbols = tuple(header["symbols"])
        exchange = str(header["exchange"])
        pp, qp = int(header["price_precision"]), int(header["qty_precision"])
        instruments = {s: Instrument(exchange=exchange, symbol=s, price_precision=pp, qty_precision=qp,
                                     tick_size=10.0**-pp, lot_size=10.0**-qp, min_qty=0.0) for s in symbols}
        spec = FeedSpec(symbols=symbols, channels=tuple(header.get("channels") or ("book", "ticker", "trade")),
                        book_depth=int(header["depth"]), instruments=instruments)
        return adapter_class(str(header["adapter"]))(spec, exchange=exchange)
    except (KeyError, TypeError, ValueError) as exc:
        raise RepairError(f"raw archive header cannot rebuild the collector's adapter: {exc}") from None


def _replay(run_dir: Path, boundaries: list[int], stats: dict[str, int]) -> Iterator[Event]:
    """Canonical events of every raw frame, as the collector's adapter emitted them."""
    from mm_core.recordings import RecordingError, open_recording

    files = sorted((run_dir / RAW_DIR).glob("raw-*.jsonl.gz"))
    adapter = None
    b = 0  # next connection boundary (ns); frames after it belong to a new connection
    for path in files:
        try:
            rec = open_recording(path)
        except RecordingError as exc:
            raise RepairError(str(exc)) from None
        if adapter is None:
            adapter = _adapter(rec.header)
            adapter.subscribe_messages()
        for ts, text in rec.frames():
            if b < len(boundaries) and ts > boundaries[b]:
                while b < len(boundaries) and ts > boundaries[b]:
                    b += 1
                adapter.reset()  # what the collector does on every new connection
                adapter.subscribe_messages()
            stats["frames"] += 1
            for ev in adapter.on_message(text, ts):
                if ev.KIND == "resync":
                    adapter.resync_messages(ev.symbol)  # the collector's bookkeeping, not sent
                yield ev
        stats["unreadable_lines"] += rec.unreadable_lines
        stats["damaged_members"] += rec.damaged_members
        stats["files"] += 1


def _health_events(records: list[dict]) -> list[Event]:
    """The event log's lines back as events (they are the ``health`` table, row for row)."""
    out: list[Event] = []
    for r in records:
        cls = EVENT_BY_KIND.get(str(r.get("kind")))
        if cls is None or not issubclass(cls, FeedHealth):
            continue
        fields = {k: v for k, v in r.items() if k in cls.__struct_fields__}
        try:
            out.append(cls(**fields))
        except (TypeError, ValueError):
            continue
    return out


def plan_repair(run_dir: Path) -> RepairPlan:
    """What is missing from the run's Parquet (reads everything, writes nothing)."""
    if not run_dir.is_dir():
        raise RepairError(f"{run_dir}: no such run directory")
    if not (run_dir / RAW_DIR).is_dir() or not any((run_dir / RAW_DIR).glob("raw-*.jsonl.gz")):
        raise RepairError(f"{run_dir}: no raw archive (raw/raw-*.jsonl.gz) to rebuild from")
    records = read_events(run_dir)
    boundaries = sorted(int(r["ts_capture"]) for r in records
                        if r.get("kind") == "disconnected" and isinstance(r.get("ts_capture"), int))
    stats = {"frames": 0, "unreadable_lines": 0, "damaged_members": 0, "files": 0}
    by_table: dict[str, list[Event]] = {t: [] for t in MARKET_TABLES}
    for ev in _replay(run_dir, boundaries, stats):
        if ev.TABLE in by_table:
            by_table[ev.TABLE].append(ev)
    tables: dict[str, TableRepair] = {}
    for table in MARKET_TABLES:
        rep = tables[table] = TableRepair(table)
        _missing_tail(by_table[table], _parquet_groups(run_dir, table), rep)
    rep = tables["health"] = TableRepair("health")
    _missing_tail(_health_events(records), _parquet_groups(run_dir, "health"), rep)
    raw_files = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / RAW_DIR).glob("raw-*.jsonl.gz"))
    return RepairPlan(run_dir, tables, raw_files, stats["frames"], stats["unreadable_lines"],
                      stats["damaged_members"])


# ---------------------------------------------------------------------- writing


def read_repairs(run_dir: Path) -> list[dict[str, Any]]:
    """The run's repair records (``repairs.json``), oldest first; [] when it has none."""
    p = run_dir / REPAIRS_NAME
    if not p.is_file():
        return []
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [{"status": "unreadable", "detail": f"{REPAIRS_NAME} is not valid JSON"}]
    reps = doc.get("repairs") if isinstance(doc, dict) else None
    return reps if isinstance(reps, list) else []


def _write_repairs(run_dir: Path, repairs: list[dict[str, Any]]) -> None:
    doc = {"format": "mm_core-repairs", "version": 1, "repairs": repairs}
    write_atomic(run_dir / REPAIRS_NAME, orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def apply_repair(plan: RepairPlan, tool: str = "mm repair") -> dict[str, Any]:
    """Write the missing rows as new Parquet parts and record the repair; returns the record."""
    from mm_core.store.parquet_store import ParquetEventStore

    run_dir = plan.run_dir
    missing = [e for t in plan.tables.values() for e in t.missing]
    ts = [e.ts_capture for e in missing]
    record: dict[str, Any] = {
        "status": "started",
        "repaired_at": _iso(time.time_ns()),
        "tool": tool,
        "reason": "Parquet behind the raw archive (the collector did not write its last parts: hard kill)",
        "rows": {name: len(t.missing) for name, t in plan.tables.items()},
        "tables": {name: t.to_dict() for name, t in plan.tables.items()},
        "capture_from": _iso(min(ts)) if ts else None,
        "capture_to": _iso(max(ts)) if ts else None,
        "sources": {"raw_archive": plan.raw_files, "frames_replayed": plan.frames,
                    "events_log": EVENTS_NAME, "unreadable_lines": plan.unreadable_lines,
                    "damaged_gzip_members": plan.damaged_members},
        "parts": [],
    }
    repairs = read_repairs(run_dir)
    repairs.append(record)
    _write_repairs(run_dir, repairs)
    store = ParquetEventStore(run_dir / PARQUET_DIR, flush_interval_s=1e9, max_rows=10**9)
    store.add_many(sorted(missing, key=lambda e: e.ts_capture))
    store.close()
    record["parts"] = sorted(p.relative_to(run_dir).as_posix() for p in store.files)
    record["status"] = "done"
    _write_repairs(run_dir, repairs)
    return record


def live_collector_age_s(run_dir: Path) -> float | None:
    """Seconds since a collector that may still be running last rewrote the summary, else None.

    A summary that says "running" and was rewritten within the last minute belongs to a live
    collector -- unless it names its process (``pid``, ``host``) and that process is gone (a kill).
    """
    s = read_summary(run_dir)
    if not s or s.get("exit_reason") != EXIT_RUNNING or not isinstance(s.get("updated_ns"), int):
        return None
    age = (time.time_ns() - s["updated_ns"]) / 1e9
    if age >= LIVE_SUMMARY_S:
        return None
    pid = s.get("pid")
    if isinstance(pid, int) and s.get("host") == socket.gethostname() and not _process_exists(pid):
        return None
    return age


def _process_exists(pid: int) -> bool:
    """Whether a process with this id runs on this machine (unknown -> True: assume it is alive)."""
    if os.name == "nt":  # os.kill would terminate it there; without a probe, stay on the safe side
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def refuse_reason(run_dir: Path) -> str:
    """Why a new collector must not start in ``run_dir`` (it holds a run), with what to do instead."""
    where = run_dir.resolve()
    base = (f"run directory {where} already holds a run ({SUMMARY_NAME}); give --out a new folder "
            "(or pass --run-dir) so two runs are never mixed")
    s = read_summary(run_dir) or {}
    if s.get("exit_reason") != EXIT_RUNNING:
        return base
    age = live_collector_age_s(run_dir)
    if age is not None:
        return f"{base}; its collector looks alive (summary rewritten {age:.0f} s ago)"
    done = [r for r in read_repairs(run_dir) if r.get("status") == "done"]
    if done:
        return f"{base}; the previous run was killed and its Parquet was already repaired ({REPAIRS_NAME})"
    return (f"{base}. The previous run there was killed (exit_reason 'running'): up to its last "
            f"Parquet interval is missing. Rebuild it from the raw archive first: mm repair {where}")


# ---------------------------------------------------------------------- CLI


def repair_run(run_dir: Path, *, dry_run: bool = False, force: bool = False) -> tuple[int, dict[str, Any]]:
    """The whole ``mm repair``: (exit code, report)."""
    if not force:
        age = live_collector_age_s(run_dir)
        if age is not None:
            raise RepairError(f"{run_dir}: a collector is still writing this run (summary rewritten "
                              f"{age:.0f} s ago); stop it first (or pass --force)")
    plan = plan_repair(run_dir)
    report: dict[str, Any] = {
        "run_dir": str(run_dir), "frames_replayed": plan.frames,
        "tables": {name: t.to_dict() for name, t in plan.tables.items()},
        "missing_rows": plan.missing_rows, "consistent": plan.consistent, "dry_run": dry_run,
        "repaired": False, "record": None,
    }
    if not plan.consistent:
        bad = {n: t.excess for n, t in plan.tables.items() if t.excess}
        report["error"] = (f"the raw archive does not reproduce the Parquet already there (rows the "
                           f"replay lacks: {bad}); nothing written")
        return EXIT_INCONSISTENT, report
    if plan.missing_rows and not dry_run:
        try:
            report["record"] = apply_repair(plan)
        except OSError as exc:
            report["error"] = f"cannot write the repaired parts: {exc}"
            return EXIT_INCONSISTENT, report
        report["repaired"] = True
    return EXIT_OK, report


def format_report(r: dict[str, Any]) -> str:
    lines = [f"repair of {r['run_dir']}: {r['frames_replayed']:,} raw frames replayed"]
    for name, t in r["tables"].items():
        lines.append(f"  {name:<12} in Parquet {t['in_parquet']:>9,}  rebuilt {t['rebuilt']:>9,}"
                     + (f"  from {_iso(t['capture_from_ns'])} to {_iso(t['capture_to_ns'])}" if t["rebuilt"] else "")
                     + (f"  ({t['excess_in_parquet']} rows the replay lacks)" if t["excess_in_parquet"] else ""))
    if r.get("error"):
        lines.append(f"error: {r['error']}")
    elif not r["missing_rows"]:
        lines.append("OK: nothing to repair (the Parquet holds every event of the raw archive and event log)")
    elif r["dry_run"]:
        lines.append(f"dry run: {r['missing_rows']:,} rows would be rebuilt (nothing written)")
    else:
        rec = r["record"] or {}
        lines.append(f"OK: {r['missing_rows']:,} rows rebuilt into {len(rec.get('parts', []))} new parts; "
                     f"recorded in {REPAIRS_NAME} (mm gate reports it)")
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("repair", help="rebuild a killed run's missing Parquet from its raw archive",
                              description=__doc__.split("\n\n")[0],
                              epilog="exit codes: 0 repaired or nothing to repair, 1 replay disagrees "
                                     "with the Parquet or a write failed, 2 unreadable input",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a collector run directory")
    p.add_argument("--dry-run", action="store_true", default=False, help="say what is missing, write nothing")
    p.add_argument("--force", action="store_true", default=False,
                   help="repair even though the summary was rewritten within the last minute")
    p.add_argument("--json", action="store_true", default=False, help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    try:
        code, report = repair_run(args.run_dir, dry_run=args.dry_run, force=args.force)
    except RepairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(report) if args.json else format_report(report))
    return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mm repair", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

