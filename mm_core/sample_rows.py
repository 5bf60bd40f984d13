"""Which stored rows are latency samples: the one rule ``qa``, ``analyze``, ``daily`` and ``gate`` share.

A row of the sample CSV (or of the Parquet ``top_of_book`` table) counts as a latency sample only
when every field parsed (the reader's job, :mod:`mm_core.quality`) and it passes the rules below.
A row that fails is *rejected*: it is not a sample anywhere, and every reader reports it (QA as a
FAIL naming its line, analyze/gate/daily as a count by reason) -- never silently dropped, never
counted as a sample by one command and not by another.

The bounds are fixed from what a feed can physically produce, not from any capture:

* ``time_range``: both timestamps lie in [2009-01-03, 2100-01-01). Nothing was traded on a crypto
  exchange before the Bitcoin genesis block; a 1970 value is a zero or a unit error.
* ``age_range``: |age| <= 1 hour. The collector's watchdog drops a connection after seconds of
  silence and Kraken stamps each message when it sends it, so an age of an hour is a broken
  timestamp, not a slow feed; a clock off by an hour is a time-zone bug, not skew. Ages inside the
  bound stay samples whatever their sign: a negative age is a clock signal the analyzer and the gate
  report and judge, not garbage.
* ``age_mismatch`` (CSV only): ``age_ms`` equals ``(ts_capture - ts_exchange) / 1e6`` to the three
  decimals the writer prints; otherwise the row contradicts itself and neither value can be trusted.
* ``missing``: an empty, NaN or infinite field (a Parquet row without an exchange time is not
  garbage -- a ticker without a timestamp -- but it has no age, so it is ``no_exchange_time``).
* ``non_positive``: a price or size <= 0 is not a quote.

Rejected rows keep their reason in this order of precedence (a row is counted once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

EPOCH_MIN_NS = 1_230_940_800_000_000_000  # 2009-01-03T00:00:00Z
EPOCH_MAX_NS = 4_102_444_800_000_000_000  # 2100-01-01T00:00:00Z
AGE_ABS_MAX_MS = 3_600_000.0  # one hour
AGE_TOLERANCE_MS = 0.01  # age_ms is written with 3 decimals; further off is a wrong value
PRICE_QTY = ("bid", "bid_qty", "ask", "ask_qty")

MISSING, TIME_RANGE, AGE_MISMATCH, AGE_RANGE, NON_POSITIVE, NO_EXCHANGE_TIME = (
    "missing", "time_range", "age_mismatch", "age_range", "non_positive", "no_exchange_time")
# precedence: the first rule a row breaks is its reason
REASONS = (MISSING, TIME_RANGE, AGE_MISMATCH, AGE_RANGE, NON_POSITIVE, NO_EXCHANGE_TIME)


@dataclass
class RowVerdicts:
    """Per-row verdict of :func:`classify_rows`: ``code[i]`` is 0 for a sample, else 1 + the index
    of its reason in :data:`REASONS`."""

    code: np.ndarray  # uint8, one per row
    by_field: dict[str, dict[str, int]] = field(default_factory=dict)  # missing/non_positive per column

    @property
    def ok(self) -> np.ndarray:
        return self.code == 0

    def reason(self, i: int) -> str:
        c = int(self.code[i])
        return REASONS[c - 1] if c else ""

    def counts(self) -> dict[str, int]:
        n = np.bincount(self.code, minlength=len(REASONS) + 1)
        return {REASONS[c - 1]: int(n[c]) for c in range(1, len(REASONS) + 1) if n[c]}


def _missing(name: str, dtype: pl.DataType) -> pl.Expr:
    """Rows where column ``name`` is empty, null, NaN or infinite."""
    c = pl.col(name)
    if dtype == pl.Float64:
        return ~c.is_finite().fill_null(False)
    if dtype == pl.String:
        return c.is_null() | (c == "")
    return c.is_null()


def classify_rows(df: pl.DataFrame, kind: str) -> RowVerdicts:
    """The verdict of every typed row of ``df`` (CSV columns; ``kind`` is "csv" or "parquet").

    One Polars expression (multi-threaded) gives each row the first rule it breaks; the per-column
    counts are only computed when some row broke a rule. A 24-hour file of 5M rows is judged in a
    small fraction of its read time.
    """
    n = df.height
    by_field: dict[str, dict[str, int]] = {MISSING: {}, NON_POSITIVE: {}}
    if n == 0:
        return RowVerdicts(np.zeros(0, dtype=np.uint8), by_field)
    parquet = kind == "parquet"
    cols = [c for c in df.columns if c != "_row" and not (parquet and c in ("ts_exchange", "age_ms"))]
    missing = {c: _missing(c, df.schema[c]) for c in cols}
    non_pos = {c: (pl.col(c) <= 0).fill_null(False) for c in PRICE_QTY}
    tc, te, age = pl.col("ts_capture"), pl.col("ts_exchange"), pl.col("age_ms")
    bad_time = (~tc.is_between(EPOCH_MIN_NS, EPOCH_MAX_NS, closed="left")
                | ~te.fill_null(EPOCH_MIN_NS).is_between(EPOCH_MIN_NS, EPOCH_MAX_NS, closed="left"))
    mismatch = (pl.lit(False) if parquet
                else (age - (tc - te).cast(pl.Float64) / 1e6).abs() > AGE_TOLERANCE_MS)
    rules = [(pl.any_horizontal(list(missing.values())), MISSING), (bad_time, TIME_RANGE),
             (mismatch, AGE_MISMATCH), (age.abs() > AGE_ABS_MAX_MS, AGE_RANGE),
             (pl.any_horizontal(list(non_pos.values())), NON_POSITIVE)]
    if parquet:
        rules.append((te.is_null(), NO_EXCHANGE_TIME))
    expr: Any = pl
    for cond, why in rules:
        expr = expr.when(cond.fill_null(False)).then(pl.lit(REASONS.index(why) + 1, dtype=pl.UInt8))
    code = df.select(expr.otherwise(pl.lit(0, dtype=pl.UInt8)).alias("c"))["c"].to_numpy()
    if code.any():
        counts = df.select([m.sum().alias(f"m_{c}") for c, m in missing.items()]
                           + [m.sum().alias(f"n_{c}") for c, m in non_pos.items()]).row(0, named=True)
        by_field[MISSING] = {c: int(counts[f"m_{c}"]) for c in missing if counts[f"m_{c}"]}
        by_field[NON_POSITIVE] = {c: int(counts[f"n_{c}"]) for c in non_pos if counts[f"n_{c}"]}
    return RowVerdicts(code, by_field)


def describe(rec: dict, why: str, where: str) -> str:
    """One line saying why a row is not a sample (``rec`` is the row as a dict)."""
    if why == MISSING:
        bad = [c for c, v in rec.items() if c != "_row" and (v is None or v == "" or
                                                            (isinstance(v, float) and not np.isfinite(v)))]
        return f"{where}: empty/NaN/inf field(s) {', '.join(bad)}"
    if why == TIME_RANGE:
        return (f"{where}: timestamp outside 2009..2100 (ts_exchange {rec.get('ts_exchange')}, "
                f"ts_capture {rec.get('ts_capture')}): a zero or unit error, not a time")
    if why == AGE_MISMATCH:
        calc = (rec["ts_capture"] - rec["ts_exchange"]) / 1e6
        return f"{where}: age_ms {rec.get('age_ms')} != (ts_capture - ts_exchange)/1e6 = {calc:.3f}"
    if why == AGE_RANGE:
        return (f"{where}: age {rec.get('age_ms'):.3f} ms is beyond +/- 1 h: a broken timestamp, "
                "not a latency")
    if why == NON_POSITIVE:
        bad = [f"{c} = {rec.get(c)!r}" for c in PRICE_QTY if rec.get(c) is not None and rec.get(c) <= 0]
        return f"{where}: {', '.join(bad)} <= 0 is not a quote"
    return f"{where}: no exchange time (no age)"


def plausible_time(ns: int | None) -> int | None:
    """``ns`` if it can be placed on a calendar day, else None (the daily export's question)."""
    return ns if ns is not None and EPOCH_MIN_NS <= ns < EPOCH_MAX_NS else None
