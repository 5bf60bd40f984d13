"""Data QA of a capture: is every stored sample well-formed and plausible?

``mm qa --file F [--strict]`` (and the user's ``python mm_core/data_quality_check.py --file F
--strict``) reads a sample CSV, a Parquet ``top_of_book`` file, or a run directory, and runs one
check per promise of the file format (see ``mm_core/capture/layout.py``). Each check reports a
count, a status and a reason that names the first offending line, so a FAIL can be looked up.

Statuses: PASS, WARN (suspicious but usable: clock steps, a torn last line, locked quotes), FAIL
(the data is wrong or incomplete) and SKIP (not applicable, e.g. no summary to compare with; counts
as PASS). The overall status is the worst; ``--strict`` turns every WARN into FAIL, which is what the
24-hour gate asks for.

Exit codes: 0 = PASS, 1 = FAIL, 3 = WARN (only without ``--strict``), 2 = missing or unreadable
input. "0 only on PASS" is the user's rule; WARN gets its own code so scripts can tell it apart.

Reading is built for 24-hour files (5M rows): a typed Polars read first; only when that read meets
a defect does the slower line-by-line path run, which keeps exact line numbers for every row.
This module also holds the readers the latency analyzer, the gate and the daily export share.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from mm_core.arg_types import add_data_path, data_path, positive_float
from mm_core.capture.layout import (
    CSV_COLUMNS,
    EXIT_RUNNING,
    PARQUET_DIR,
    SUMMARY_NAME,
    find_csv,
)
from mm_core.sample_rows import (
    AGE_MISMATCH,
    AGE_RANGE,
    MISSING,
    NO_EXCHANGE_TIME,
    NON_POSITIVE,
    TIME_RANGE,
    classify_rows,
    describe,
    plausible_time,
)

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
_RANK = {PASS: 0, SKIP: 0, WARN: 1, FAIL: 2}

EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_WARN = 0, 1, 2, 3

CSV_SCHEMA: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "symbol": pl.String(),
    "ts_exchange": pl.Int64(),
    "ts_capture": pl.Int64(),
    "age_ms": pl.Float64(),
    "bid": pl.Float64(),
    "bid_qty": pl.Float64(),
    "ask": pl.Float64(),
    "ask_qty": pl.Float64(),
}
TOB_TABLE = "top_of_book"
EXPECTED_HEADER = ",".join(CSV_COLUMNS)

_NS_PER_S = 1_000_000_000
_EXAMPLES = 5  # offending lines listed in a detail
_DETAILED_DEFECTS = 10_000  # unusable lines explained one by one; beyond that only counted


PARSE_DEFECTS = ("blank", "field_count", "unparseable")  # lines that are not a typed row at all


class InputError(ValueError):
    """A capture file is missing, unreadable or not a capture; the message names it."""


# --------------------------------------------------------------------------- results


@dataclass
class Check:
    """One QA promise: ``value`` is the count (or measure) the status is based on."""

    name: str
    status: str
    value: Any
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "value": jsonable(self.value),
                "detail": self.detail, "data": jsonable(self.data)}


@dataclass
class QaResult:
    file: str
    source: str  # "csv" | "parquet"
    rows: int  # the samples: rows that parsed and pass every rule of mm_core.sample_rows
    rejected: dict[str, int]  # rows that are not samples, by reason (torn lines included)
    status: str
    strict: bool
    checks: list[Check]
    summary_path: str | None = None

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status in (WARN, FAIL)]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "strict": self.strict, "file": self.file, "source": self.source,
                "rows": self.rows, "samples": self.rows, "rejected_rows": self.rejected,
                "summary": self.summary_path,
                "checks": [c.to_dict() for c in self.checks]}


def worst(statuses: Sequence[str]) -> str:
    """Overall status: the worst one; SKIP counts as PASS."""
    out = PASS
    for s in statuses:
        if _RANK[s] > _RANK[out]:
            out = FAIL if s == FAIL else WARN
    return out


def jsonable(x: Any) -> Any:
    """NaN/inf are not JSON: they become null; numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def iso_ns(ns: int | None) -> str:
    """UTC ISO time of a nanosecond timestamp (what people read in reports)."""
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


# --------------------------------------------------------------------------- input resolution


@dataclass(frozen=True)
class CaptureInput:
    """What to read: the CSV, or the ordered Parquet parts of the ``top_of_book`` table."""

    path: Path  # as given
    kind: str  # "csv" | "parquet"
    files: tuple[Path, ...]
    run_dir: Path | None  # folder with summary.json / events.jsonl, when there is one

    @property
    def display(self) -> str:
        return str(self.files[0]) if self.kind == "csv" else str(self.path)


def parquet_files(root: Path, table: str) -> list[Path]:
    """Parts of one table under a run dir (or its ``parquet/`` folder), in time order.

    Part names are ``<table>-<HH>-<nnnn>.parquet`` inside ``date=YYYY-mm-dd`` folders, so sorting
    the paths sorts by date, hour and part (one exchange/symbol per run).
    """
    base = root / PARQUET_DIR if (root / PARQUET_DIR).is_dir() else root
    return sorted(p for p in base.rglob(f"{table}-*.parquet") if p.is_file())


def _run_dir_of(p: Path) -> Path | None:
    """The nearest folder above ``p`` holding a run summary or event log (Parquet parts are deep)."""
    for d in [p if p.is_dir() else p.parent, *list((p if p.is_dir() else p.parent).parents)[:6]]:
        if (d / SUMMARY_NAME).is_file() or (d / "events.jsonl").is_file():
            return d
    return None


def resolve_input(path: str | Path, source: str = "auto") -> CaptureInput:
    """A file or a run directory -> what to read. ``source`` is auto | csv | parquet.

    A run directory is read through its CSV (the user's contract) unless ``source="parquet"`` or
    it has no CSV. Any file not ending in ``.parquet`` is read as CSV.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    if p.is_dir():
        if source in ("auto", "csv"):
            csv = find_csv(p)
            if csv is not None:
                return CaptureInput(p, "csv", (csv,), p)
        if source in ("auto", "parquet"):
            files = parquet_files(p, TOB_TABLE)
            if files:
                return CaptureInput(p, "parquet", tuple(files), _run_dir_of(p))
        n_csv = len(list(p.glob("*.csv")))
        hint = (f"it holds {n_csv} CSV files and no summary.json naming one; pass the file itself"
                if n_csv > 1 else "no sample CSV and no parquet/**/top_of_book-*.parquet found")
        raise InputError(f"{p}: not a capture run directory ({hint})")
    if source == "parquet" or (source == "auto" and p.suffix.lower() == ".parquet"):
        return CaptureInput(p, "parquet", (p,), _run_dir_of(p))
    return CaptureInput(p, "csv", (p,), p.parent)


# --------------------------------------------------------------------------- CSV shape


@dataclass
class CsvShape:
    """Header and tail of a CSV, read without parsing the body."""

    path: Path
    size: int
    header: str
    header_complete: bool  # the header line ends with a newline
    torn_text: str | None  # the unterminated last line (hard kill), None if the file ends cleanly
    data_lines: int | None  # complete lines after the header; counted only when needed

    @property
    def torn_line_no(self) -> int | None:
        return None if self.torn_text is None or self.data_lines is None else self.data_lines + 2


def _count_newlines(path: Path) -> int:
    n = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            n += chunk.count(b"\n")
    return n


def csv_shape(path: Path) -> CsvShape:
    """Header line and whether the last line is torn (a hard kill stops mid-row, without newline)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.readline(1 << 16)
            fh.seek(max(0, size - (1 << 16)))
            tail = fh.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    header_complete = head.endswith(b"\n")
    header = head.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
    torn_text = None
    data_lines = None
    if header_complete and size > len(head) and not tail.endswith(b"\n"):
        cut = tail.rfind(b"\n")
        torn_text = tail[cut + 1:].decode("utf-8", "replace")
        data_lines = _count_newlines(path) - 1
    return CsvShape(path, size, header, header_complete, torn_text, data_lines)


# --------------------------------------------------------------------------- loaded samples


@dataclass
class Defect:
    """One row that is not a sample: where, what kind, and why."""

    line: int
    kind: str  # PARSE_DEFECTS, "torn", or a reason of mm_core.sample_rows
    reason: str
    ts_capture: int | None = None


@dataclass
class Samples:
    """Typed rows of a capture plus everything the reader learned about the file on the way.

    ``df`` has the CSV columns (``age_ms`` computed for Parquet) and ``_row``: the line number in the
    CSV (header = line 1) or the row index across the Parquet parts.
    """

    input: CaptureInput
    df: pl.DataFrame
    header: str = EXPECTED_HEADER
    header_ok: bool = True
    torn: Defect | None = None  # the unterminated last line
    defects: list[Defect] = field(default_factory=list)  # rows inside the file that were not usable
    n_defects: int = 0  # may exceed len(defects): only the first few are kept with details
    defect_counts: dict[str, int] = field(default_factory=dict)
    total_lines: int = 0  # data lines incl. defective ones (what the writer wrote)
    schema_problems: list[str] = field(default_factory=list)  # Parquet files with a wrong schema
    rejected_fields: dict[str, dict[str, int]] = field(default_factory=dict)  # reason -> column -> rows
    part_rows: list[tuple[Path, int]] = field(default_factory=list)  # Parquet: (file, rows) in order

    def where(self, row: int) -> str:
        """Human location of a row id: ``line 17`` or ``<part file> row 5``."""
        if self.input.kind == "csv":
            return f"line {row}"
        start = 0
        for path, n in self.part_rows:
            if row < start + n:
                return f"{path.name} row {row - start}"
            start += n
        return f"row {row}"


def rejected_counts(s: Samples) -> dict[str, int]:
    """Rows that are not samples, by reason, including a torn last line: what every command reports."""
    out = dict(s.defect_counts)
    if s.torn is not None:
        out["torn"] = out.get("torn", 0) + 1
    return out


def load_samples(path: str | Path, source: str = "auto", columns: Sequence[str] | None = None) -> Samples:
    """Read a capture (CSV file, Parquet file or run dir) into typed rows; never dies on bad rows.

    Every field of every row is parsed and every row is judged by :mod:`mm_core.sample_rows`, so
    the rows in ``df`` are exactly the latency samples every command counts; the rest are
    :class:`Defect` s by kind. ``columns`` only narrows what ``df`` keeps afterwards.
    """
    inp = resolve_input(path, source)
    s = _load_parquet(inp) if inp.kind == "parquet" else _load_csv(inp)
    if s.header_ok:
        _reject_non_samples(s)
    if columns:
        s.df = s.df.select([c for c in columns if c in s.df.columns] + ["_row"])
    return s


def _reject_non_samples(s: Samples) -> None:
    """Move the rows that are not samples out of ``df`` into the defects, with their reason."""
    v = classify_rows(s.df, s.input.kind)
    bad = ~v.ok
    k = int(bad.sum())
    s.rejected_fields = {r: f for r, f in v.by_field.items() if f}
    if not k:
        return
    idx = np.flatnonzero(bad)
    rejected = s.df[idx]
    room = max(0, _DETAILED_DEFECTS - len(s.defects))
    for i, rec in zip(idx[:room], rejected.head(room).iter_rows(named=True)):
        why = v.reason(int(i))
        s.defects.append(Defect(int(rec["_row"]), why, describe(rec, why, s.where(int(rec["_row"]))),
                                plausible_time(rec.get("ts_capture"))))
    for why, n in v.counts().items():
        s.defect_counts[why] = s.defect_counts.get(why, 0) + n
    s.n_defects += k
    s.df = s.df.filter(pl.Series(v.ok))


def _load_csv(inp: CaptureInput) -> Samples:
    path = inp.files[0]
    shape = csv_shape(path)
    header_ok = shape.header == EXPECTED_HEADER
    torn = None
    if shape.torn_text is not None:
        line_no = shape.torn_line_no or 0
        torn = Defect(line_no, "torn",
                      f"torn last line (hard kill?): line {line_no} has no newline: {ascii(shape.torn_text[:60])}")
    if not header_ok:
        empty = pl.DataFrame(schema={**CSV_SCHEMA, "_row": pl.Int64})
        return Samples(inp, empty, header=shape.header, header_ok=False, torn=torn)
    n_rows = shape.data_lines if torn is not None else None
    wanted = list(CSV_COLUMNS)
    try:
        df = (pl.scan_csv(path, schema=CSV_SCHEMA, has_header=True, quote_char=None, n_rows=n_rows)
              .collect())
        clean = df.null_count().sum_horizontal().item() == 0
    except pl.exceptions.PolarsError:
        df, clean = None, False
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if clean and df is not None:
        df = df.with_columns(pl.int_range(2, df.height + 2, dtype=pl.Int64).alias("_row"))
        return Samples(inp, df, header=shape.header, torn=torn, total_lines=df.height)
    return _load_csv_lines(inp, shape, torn, n_rows, wanted)


def _load_csv_lines(inp: CaptureInput, shape: CsvShape, torn: Defect | None, n_rows: int | None,
                    wanted: list[str]) -> Samples:
    """The slow, exact path: read whole lines, split, cast, and classify every defective line."""
    path = inp.files[0]
    try:
        lines = pl.read_csv(path, has_header=False, separator="\x1f", quote_char=None,
                            schema={"line": pl.String}, encoding="utf8-lossy",
                            truncate_ragged_lines=True,
                            n_rows=None if n_rows is None else n_rows + 1)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: cannot read as text lines: {exc}") from None
    body = lines.slice(1).with_columns(pl.int_range(2, lines.height + 1, dtype=pl.Int64).alias("_row"))
    n = len(CSV_COLUMNS)
    exprs: list[pl.Expr] = [
        pl.col("_row"),
        pl.col("line"),
        (pl.col("line").str.count_matches(",", literal=True) + 1).alias("_nf"),
    ]
    split = body.with_columns(pl.col("line").str.split_exact(",", n - 1).alias("_f")).unnest("_f")
    for i, name in enumerate(CSV_COLUMNS):
        raw = pl.col(f"field_{i}")
        dtype = CSV_SCHEMA[name]
        typed = (pl.when(raw == "").then(None).otherwise(raw) if dtype == pl.String
                 else raw.cast(dtype, strict=False))
        empty = raw.is_null() | (raw == "")
        exprs += [typed.alias(name), (~empty & typed.is_null()).alias(f"_bad{i}")]
    t = split.select(exprs + [pl.col(f"field_{i}") for i in range(n)])
    blank = pl.col("line").is_null() | (pl.col("line").str.strip_chars() == "")
    any_bad = pl.any_horizontal([pl.col(f"_bad{i}") for i in range(n)])
    t = t.with_columns(
        pl.when(blank).then(pl.lit("blank"))
        .when(pl.col("_nf") != n).then(pl.lit("field_count"))
        .when(any_bad).then(pl.lit("unparseable"))
        .otherwise(pl.lit("ok")).alias("_kind")
    )
    good = t.filter(pl.col("_kind") == "ok")
    bad = t.filter(pl.col("_kind") != "ok")
    exchanges = set(good["exchange"].drop_nulls().unique().to_list()) if good.height else set()
    defects: list[Defect] = []
    counts: dict[str, int] = {}
    # a file of garbage must not take minutes: explain the first lines, count the rest by kind
    for rec in bad.head(_DETAILED_DEFECTS).iter_rows(named=True):
        d = _classify(rec, exchanges)
        counts[d.kind] = counts.get(d.kind, 0) + 1
        defects.append(d)
    for kind, k in bad.slice(_DETAILED_DEFECTS).group_by("_kind").len().iter_rows():
        counts[kind] = counts.get(kind, 0) + k
    df = good.select(wanted + ["_row"])
    return Samples(inp, df, header=shape.header, torn=torn, defects=defects, n_defects=bad.height,
                   defect_counts=counts, total_lines=t.height)


def _classify(rec: dict[str, Any], exchanges: set[str]) -> Defect:
    """Say why one line is unusable; a short line that is a prefix of a row is a torn row.

    The collector starts a fresh line when it appends after a hard kill, so a torn row can sit in the
    middle of a file; it is reported as torn (WARN), any other short line as a broken row (FAIL).
    """
    line, row, nf = rec["line"], rec["_row"], rec["_nf"]
    ts = rec.get("ts_capture") if nf and nf > 3 and not rec.get("_bad3") else None
    if rec["_kind"] == "blank":
        return Defect(row, "blank", f"line {row} is empty")
    n = len(CSV_COLUMNS)
    if rec["_kind"] == "field_count":
        fields = line.split(",")
        complete_ok = all(not rec[f"_bad{i}"] and rec[f"field_{i}"] not in (None, "")
                          for i in range(min(nf, n) - 1))
        first = fields[0]
        prefix_ok = any(e.startswith(first) for e in exchanges) if exchanges else bool(first)
        printable = "\x00" not in line and "\ufffd" not in line
        if nf < n and complete_ok and prefix_ok and printable:
            return Defect(row, "torn", f"torn row (hard kill?): line {row} has {nf} of {n} fields", None)
        return Defect(row, "field_count", f"line {row} has {nf} fields, expected {n}: {ascii(line[:60])}", ts)
    for i, name in enumerate(CSV_COLUMNS):
        if rec[f"_bad{i}"]:
            kind = "an integer" if CSV_SCHEMA[name] == pl.Int64 else "a number"
            return Defect(row, "unparseable",
                          f"line {row} field '{name}' = {ascii(rec[f'field_{i}'])} is not {kind}", ts)
    return Defect(row, "unparseable", f"line {row}: {ascii(line[:60])}", ts)


def _load_parquet(inp: CaptureInput) -> Samples:
    """Parquet parts of ``top_of_book``: schema checked per file (footer only), rows concatenated."""
    import pyarrow.parquet as pq

    from mm_core.events import TopOfBook, arrow_schema

    expected = arrow_schema(TopOfBook)
    readable: list[Path] = []
    part_rows: list[tuple[Path, int]] = []
    problems: list[str] = []
    for f in inp.files:
        try:
            schema = pq.read_schema(f)
            rows = pq.read_metadata(f).num_rows
        except Exception as exc:  # pyarrow raises several types for a torn or foreign file
            problems.append(f"{f}: unreadable ({type(exc).__name__}: {str(exc)[:80]})")
            continue
        diff = schema_difference(schema, expected)
        if diff:
            problems.append(f"{f}: {diff}")
            continue
        readable.append(f)
        part_rows.append((f, rows))
    need = [c for c in CSV_COLUMNS if c != "age_ms"]
    if readable:
        try:
            df = pl.read_parquet(readable, columns=need, hive_partitioning=False)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(f"{inp.path}: cannot read Parquet parts: {exc}") from None
    else:
        df = pl.DataFrame(schema={c: CSV_SCHEMA[c] for c in need})
    df = df.with_columns(
        ((pl.col("ts_capture") - pl.col("ts_exchange")).cast(pl.Float64) / 1e6).alias("age_ms"),
        pl.int_range(0, df.height, dtype=pl.Int64).alias("_row"),
    )
    return Samples(inp, df.select(list(CSV_COLUMNS) + ["_row"]), schema_problems=problems, part_rows=part_rows,
                   total_lines=df.height)


def schema_difference(actual: Any, expected: Any) -> str:
    """'' when an Arrow schema has the expected column names and types, else what differs."""
    a = {f.name: f.type for f in actual}
    e = {f.name: f.type for f in expected}
    missing = [n for n in e if n not in a]
    extra = [n for n in a if n not in e]
    wrong = [f"{n} is {a[n]}, expected {e[n]}" for n in e if n in a and a[n] != e[n]]
    parts = []
    if missing:
        parts.append("missing columns " + ", ".join(missing))
    if extra:
        parts.append("unexpected columns " + ", ".join(extra))
    parts += wrong
    return "; ".join(parts)


# --------------------------------------------------------------------------- summary and events


def load_summary(path: Path | None) -> dict | None:
    """A run summary, or None when absent; a summary that exists but is not JSON is an input error."""
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable run summary: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a run summary (expected a JSON object)")
    return data


@dataclass
class EventLog:
    """The parsed event log; bad lines are kept by number so the gate can call them out."""

    path: Path
    exists: bool
    events: list[dict] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # unparseable lines other than a torn last one
    torn_last: bool = False

    def of_kind(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("kind") == kind]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.events:
            k = str(e.get("kind"))
            out[k] = out.get(k, 0) + 1
        return out


def read_event_log(path: Path) -> EventLog:
    """Every JSON object of ``events.jsonl``; an unterminated last line is torn (hard kill), not bad."""
    if not path.is_file():
        return EventLog(path, exists=False)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    log = EventLog(path, exists=True)
    lines = raw.split(b"\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            log.events.append(obj)
        elif i == last:  # no newline after it: torn by a hard kill
            log.torn_last = True
        else:
            log.bad_lines.append(i + 1)
    return log


# --------------------------------------------------------------------------- checks


def _first(mask: np.ndarray, rows: np.ndarray, s: Samples) -> str:
    """Where the first offending row is (``line 17`` / ``<part> row 5``)."""
    idx = np.flatnonzero(mask)
    return s.where(int(rows[idx[0]])) if idx.size else "-"


def _by_field(counts: dict[str, int]) -> str:
    return ", ".join(f"{c}: {v}" for c, v in counts.items())


def row_checks(s: Samples, *, max_gap_s: float = 60.0, prev_ts: int | None = None) -> list[Check]:
    """The checks of the samples themselves (not of the file): book, order, duplicates, gaps, ages.

    ``prev_ts`` is the capture time of the row just before ``s`` (the daily export checks one day at
    a time and must still see a gap that spans midnight). Rows that are not samples are judged by
    :func:`rejection_checks`.
    """
    rows = s.df["_row"].to_numpy()
    checks = book_checks(s, rows)
    checks += order_and_gap_checks(s, rows, max_gap_s, prev_ts)
    checks.append(duplicate_check(s))
    checks.append(negative_age_check(s, rows))
    return checks


# QA check name and what the rows it counts are, per reason of mm_core.sample_rows
_REJECTION_CHECKS = (
    (MISSING, "nan_empty", "rows with empty/NaN/inf fields"),
    (NON_POSITIVE, "non_positive", "rows with a price or size <= 0"),
    (TIME_RANGE, "time_range", "rows with a timestamp outside 2009..2100"),
    (AGE_RANGE, "age_range", "rows with an age beyond +/- 1 h"),
    (AGE_MISMATCH, "age_consistency", "rows where age_ms != (ts_capture - ts_exchange)/1e6"),
)


def rejection_checks(kind: str, counts: dict[str, int], defects: Sequence[Defect],
                     fields: dict[str, dict[str, int]] | None = None) -> list[Check]:
    """One check per rule of :mod:`mm_core.sample_rows`: how many rows broke it (they are not
    samples anywhere), by column where that helps, and the first such line."""
    out: list[Check] = []
    fields = fields or {}
    for why, name, what in _REJECTION_CHECKS:
        if why == AGE_MISMATCH and kind != "csv":
            continue  # Parquet has no age column: it is computed, so always consistent
        k = counts.get(why, 0)
        first = next((d for d in defects if d.kind == why), None)
        by = fields.get(why)
        detail = (f"{k} {what}, not samples" + (f" ({_by_field(by)})" if by else "")
                  + (f"; first: {first.reason}" if first else "")) if k else f"no {what}"
        out.append(Check(name, FAIL if k else PASS, k, detail, {"by_field": by or {}}))
    if kind == "parquet":
        k = counts.get(NO_EXCHANGE_TIME, 0)
        out.append(Check("no_exchange_time", PASS, k,
                         f"{k} rows without exchange time: no age, not samples" if k
                         else "every row has an exchange time"))
    return out


def book_checks(s: Samples, rows: np.ndarray) -> list[Check]:
    """Crossed (bid > ask: the book is wrong) and locked (bid == ask: suspicious) quotes."""
    bid = s.df["bid"].to_numpy(allow_copy=True)
    ask = s.df["ask"].to_numpy(allow_copy=True)
    with np.errstate(invalid="ignore"):
        crossed = bid > ask
        locked = bid == ask
    kc, kl = int(crossed.sum()), int(locked.sum())
    worst_by = float(np.max(bid[crossed] - ask[crossed])) if kc else 0.0
    return [
        Check("crossed_book", FAIL if kc else PASS, kc,
              f"{kc} rows with bid > ask (worst by {worst_by:g}); first at {_first(crossed, rows, s)}"
              if kc else "no bid > ask", {"worst": worst_by}),
        Check("locked_book", WARN if kl else PASS, kl,
              f"{kl} rows with bid == ask; first at {_first(locked, rows, s)}" if kl else "no bid == ask"),
    ]


def order_and_gap_checks(s: Samples, rows: np.ndarray, max_gap_s: float, prev_ts: int | None) -> list[Check]:
    """ts_capture steps back (a wall-clock step: WARN) and gaps longer than ``max_gap_s`` (FAIL)."""
    valid = ~s.df["ts_capture"].is_null().to_numpy()
    tc = s.df["ts_capture"].fill_null(0).to_numpy()[valid]
    r = rows[valid]
    if prev_ts is not None and tc.size:
        d, d_rows = np.diff(np.concatenate(([prev_ts], tc))), r
    else:
        d, d_rows = np.diff(tc), r[1:]
    dec = d < 0
    k = int(dec.sum())
    step = float(-d[dec].min() / 1e6) if k else 0.0
    order = Check("ts_capture_order", WARN if k else PASS, k,
                  f"ts_capture decreases {k} times (largest step back {step:.3f} ms: local clock stepped?); "
                  f"first at {_first(dec, d_rows, s)}" if k else "ts_capture never decreases",
                  {"largest_step_back_ms": step})
    gaps = d > max_gap_s * _NS_PER_S
    k = int(gaps.sum())
    longest = max(float(d.max() / 1e9), 0.0) if d.size else 0.0
    at = s.where(int(d_rows[int(np.argmax(d))])) if d.size else "-"
    gap = Check("gaps", FAIL if k else PASS, k,
                f"{k} gaps > {max_gap_s:g} s in ts_capture; longest {longest:.1f} s ending at {at}"
                if k else f"no gap > {max_gap_s:g} s (longest {longest:.3f} s)",
                {"longest_s": longest, "max_gap_s": max_gap_s, "longest_at": at})
    return [order, gap]


def duplicate_check(s: Samples) -> Check:
    """Exact duplicate rows. Equal rows share ts_capture, so only rows with a repeated capture time
    are compared in full (hashing 5M whole rows would cost seconds)."""
    df = s.df
    tc = df["ts_capture"].fill_null(0).to_numpy()
    order = np.argsort(tc, kind="stable") if _unsorted(tc) else None
    ts_sorted = tc if order is None else tc[order]
    same = np.flatnonzero(ts_sorted[1:] == ts_sorted[:-1])
    cand_idx = np.unique(np.concatenate((same, same + 1)))
    if order is not None:
        cand_idx = np.sort(order[cand_idx])
    k, first = 0, "-"
    if cand_idx.size:
        cand = df[cand_idx]
        data_cols = [c for c in df.columns if c != "_row"]
        rep = ~cand.select(pl.struct(data_cols).is_first_distinct()).to_series().to_numpy()
        k = int(rep.sum())
        if k:
            first = s.where(int(cand["_row"].to_numpy()[np.flatnonzero(rep)[0]]))
    return Check("duplicate_rows", WARN if k else PASS, k,
                 f"{k} rows repeat an earlier row exactly; first at {first}" if k else "no exact duplicate rows")


def negative_age_check(s: Samples, rows: np.ndarray) -> Check:
    """Negative ages: the local clock is behind the exchange's (WARN); they stay samples."""
    age = s.df["age_ms"].to_numpy(allow_copy=True).astype(np.float64)
    neg = age < 0
    k = int(neg.sum())
    min_age = float(age.min()) if age.size else float("nan")
    share = k / age.size if age.size else 0.0
    return Check("negative_ages", WARN if k else PASS, k,
                 f"{k} negative ages ({100 * share:.3f} %), min {min_age:.3f} ms: the local clock is behind "
                 f"the exchange's (clock skew); first at {_first(neg, rows, s)}" if k
                 else f"no negative ages (min {min_age:.3f} ms)" if age.size else "no ages to check",
                 {"min_age_ms": min_age, "share": share})


def _unsorted(a: np.ndarray) -> bool:
    """True when a timestamp array is not sorted (cheap: one pass, no copy of the whole sort)."""
    return bool(a.size > 1 and (a[1:] < a[:-1]).any())


def file_checks(s: Samples) -> list[Check]:
    """Checks of the file as written: header/schema, row parsing, torn lines."""
    out: list[Check] = []
    if s.input.kind == "csv":
        if s.header_ok:
            out.append(Check("schema", PASS, len(CSV_COLUMNS), "header and column order as specified"))
        else:
            out.append(Check("schema", FAIL, 0,
                             f"line 1 header is {ascii(s.header[:120])}; expected {EXPECTED_HEADER!r}"))
    else:
        k = len(s.schema_problems)
        out.append(Check(
            "schema", FAIL if k else PASS, k,
            f"{k} of {len(s.input.files)} Parquet parts unusable: {s.schema_problems[0]}" if k
            else f"{len(s.input.files)} Parquet parts with the top_of_book schema",
            {"problems": s.schema_problems},
        ))
    broken = [d for d in s.defects if d.kind in PARSE_DEFECTS]
    kinds = {kd: v for kd, v in s.defect_counts.items() if kd in PARSE_DEFECTS}
    k = sum(kinds.values())
    out.append(Check(
        "types", FAIL if k else PASS, k,
        (f"{k} unusable rows ({', '.join(f'{kd}: {v}' for kd, v in kinds.items())}); first: "
         f"{broken[0].reason}") if k else ("every row has 9 fields of the right types" if s.input.kind == "csv"
                                            else "rows typed by the Parquet schema"),
        {"by_kind": kinds, "first_lines": [d.line for d in broken[:_EXAMPLES]]},
    ))
    torn = [d for d in s.defects if d.kind == "torn"] + ([s.torn] if s.torn else [])
    k = len(torn)
    out.append(Check(
        "torn_lines", WARN if k else PASS, k,
        ("; ".join(d.reason for d in torn[:_EXAMPLES]) + "; excluded from analysis") if k
        else "no torn lines",
        {"lines": [d.line for d in torn]},
    ))
    return out


def instrument_check(s: Samples) -> Check:
    pairs = s.df.select("exchange", "symbol").unique().sort("exchange", "symbol").rows()
    names = [f"{e} {sym}" for e, sym in pairs if e is not None]
    if len(names) <= 1:
        return Check("instrument", PASS, len(names), names[0] if names else "no rows")
    return Check("instrument", WARN, len(names),
                 f"{len(names)} instruments in one capture ({', '.join(names[:5])}): "
                 "order and gap checks assume one")


def row_count_check(s: Samples, summary: dict | None, summary_path: Path | None) -> Check:
    """Rows in the CSV vs the writer's own count in summary.json.

    The summary is rewritten every few seconds, so a run that is still going or was killed may be a
    little behind its CSV (WARN); after a clean exit both must agree exactly (FAIL otherwise).
    """
    if s.input.kind != "csv":
        return Check("row_count", SKIP, None, "summary 'samples' counts CSV rows; not compared for Parquet")
    if summary is None or not isinstance(summary.get("samples"), int):
        where = summary_path or (s.input.files[0].parent / SUMMARY_NAME)
        return Check("row_count", SKIP, s.total_lines, f"no run summary with 'samples' at {where}; not compared")
    written = s.total_lines + (1 if s.torn is not None else 0)
    expected = int(summary["samples"])
    running = summary.get("exit_reason", EXIT_RUNNING) == EXIT_RUNNING
    data = {"csv_rows": written, "summary_samples": expected}
    if written == expected or (s.torn is not None and s.total_lines == expected):
        return Check("row_count", PASS, written, f"{written} rows = summary samples", data)
    diff = written - expected
    if running:
        return Check("row_count", WARN, written,
                     f"{written} rows, summary says {expected} ({diff:+d}); the run did not exit cleanly "
                     "(exit_reason 'running'), so the summary may lag the CSV", data)
    return Check("row_count", FAIL, written,
                 f"{written} rows, summary says {expected} ({diff:+d}) after a clean exit: rows were "
                 f"{'lost' if diff < 0 else 'added'}", data)


def run_qa(path: str | Path, strict: bool = False, *, summary_path: str | Path | None = None,
           max_gap_s: float = 60.0, source: str = "auto") -> QaResult:
    """Every QA check of one capture; raises :class:`InputError` when it cannot be read at all."""
    s = load_samples(path, source)
    return qa_samples(s, strict, summary_path=summary_path, max_gap_s=max_gap_s)


def qa_samples(s: Samples, strict: bool = False, *, summary_path: str | Path | None = None,
               max_gap_s: float = 60.0) -> QaResult:
    """QA of already loaded samples (the gate loads once and runs QA and latency on the same rows)."""
    sp = Path(summary_path) if summary_path else (s.input.run_dir / SUMMARY_NAME if s.input.run_dir else None)
    if summary_path and not Path(summary_path).is_file():
        raise InputError(f"{summary_path}: no such summary file")
    summary = load_summary(sp)
    checks = file_checks(s)
    if s.input.kind == "csv" and not s.header_ok:
        checks.append(Check("row_checks", SKIP, None,
                            "not checked: the header is wrong, so the columns cannot be trusted"))
    else:
        n = s.df.height
        checks.append(Check("rows", PASS if n else FAIL, n,
                            f"{n} samples (rows that pass every rule of mm_core/sample_rows.py)" if n
                            else "no samples: nothing usable was captured"))
        checks += rejection_checks(s.input.kind, s.defect_counts, s.defects, s.rejected_fields)
        checks += row_checks(s, max_gap_s=max_gap_s)
        checks.append(instrument_check(s))
    checks.append(row_count_check(s, summary, sp))
    if strict:
        for c in checks:
            if c.status == WARN:
                c.status = FAIL
                c.detail = "strict: " + c.detail
    return QaResult(file=s.input.display, source=s.input.kind, rows=s.df.height, rejected=rejected_counts(s),
                    status=worst([c.status for c in checks]), strict=strict, checks=checks,
                    summary_path=str(sp) if summary is not None and sp is not None else None)


# --------------------------------------------------------------------------- output and CLI


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], max_last: int = 110) -> str:
    """An aligned plain-ASCII table (Windows consoles do not all speak UTF-8)."""
    cells = [[str(x) for x in headers]] + [[str(x) for x in r] for r in rows]
    for r in cells:
        if len(r[-1]) > max_last:
            r[-1] = r[-1][: max_last - 3] + "..."
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def format_qa(r: QaResult) -> str:
    head = f"Data QA of {r.file} ({r.source}, {r.rows} rows checked{', strict' if r.strict else ''})"
    table = format_table(("CHECK", "STATUS", "VALUE", "DETAIL"),
                         [(c.name, c.status, "-" if c.value is None else _fmt_value(c.value), c.detail)
                          for c in r.checks])
    bad = ", ".join(c.name for c in r.failed)
    tail = f"QA {r.status}" + (f" ({bad})" if bad else "")
    return f"{head}\n{table}\n{tail}"


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def exit_code(status: str) -> int:
    return {PASS: EXIT_PASS, WARN: EXIT_WARN}.get(status, EXIT_FAIL)


EXIT_HELP = ("exit codes: 0 PASS, 1 FAIL, 3 WARN (never with --strict: it turns WARN into FAIL), "
             "2 missing or unreadable input")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_path(p, "sample CSV, Parquet top_of_book file, or a run directory")
    p.add_argument("--strict", action="store_true", help="any WARN is a FAIL (the gate's rule)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--summary", help="run summary.json to compare row counts with "
                                     "(default: the one beside the file)")
    p.add_argument("--max-gap-s", type=positive_float, default=None,
                   help="longest allowed ts_capture gap in s (default: config gate.max_gap_s, 60)")
    p.add_argument("--config", help="runtime config with the [gate] max_gap_s (default: the shipped one)")
    p.add_argument("--source", choices=("auto", "csv", "parquet"), default="auto",
                   help="for a run directory: read its CSV (auto) or its Parquet top_of_book parts")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("qa", help="data-quality checks of a capture file (PASS/WARN/FAIL)",
                              description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    try:
        args.file = data_path(args, "qa")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    max_gap_s = getattr(args, "max_gap_s", None)
    if max_gap_s is None:
        from mm_core.config import ConfigError, load_config

        try:
            max_gap_s = load_config(getattr(args, "config", None)).gate.max_gap_s
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_INPUT
    try:
        r = run_qa(args.file, args.strict, summary_path=args.summary, max_gap_s=max_gap_s,
                   source=args.source)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        print(json.dumps(jsonable(r.to_dict())))
    else:
        print(format_qa(r))
        print(f"({time.perf_counter() - t0:.1f} s)")
    return exit_code(r.status)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Stand-alone entry (``python mm_core/data_quality_check.py``): same options as ``mm qa``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
