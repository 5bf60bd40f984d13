"""Feed-latency analysis of a capture: how old is a quote when we see it?

``mm analyze --file F`` (and the user's ``python mm_core/analyze.py --file F --normal-max-ms 20
--degraded-max-ms 80``) reads the sample CSV (or Parquet ``top_of_book`` parts, or a run directory)
and reports the age distribution (``age = ts_capture - ts_exchange``): percentiles, the share of
samples in the normal / degraded / unsafe regimes, a per-hour table, the longest unsafe spell, and
the clock offset behind those numbers. A skewed clock shifts every age by the offset, so the offset
is judged from the collector's ping/pong ``clock_estimate`` events (:mod:`mm_core.clock_skew`: the
proven interval, whether the estimate is reliable, the percentiles on offset-corrected ages) and
from the data itself: negative ages are counted and reported (count, share, minimum), never clamped.

Rows are judged by the rule every reader shares (:mod:`mm_core.sample_rows`); rows that are not
samples are counted by reason. Built for 24-hour files (5M rows in a few seconds): Polars reads the
file, NumPy computes the percentiles (linear interpolation, the NumPy default, so numbers can be
checked with ``numpy.percentile`` on the same data).

Exit codes: 0 = analyzed, 2 = missing/unreadable input or no samples.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from mm_core.arg_types import add_data_path, data_path
from mm_core.capture.layout import EVENTS_NAME, SUMMARY_NAME
from mm_core.clock_skew import CLOCK_SLACK_MS, ClockRule, judge_clock
from mm_core.quality import (
    EXIT_INPUT,
    InputError,
    Samples,
    jsonable,
    format_table,
    iso_ns,
    load_samples,
    load_summary,
    read_event_log,
    rejected_counts,
)

EXIT_OK = 0
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
_HOUR_NS = 3_600_000_000_000
_LOW_PCT = 0.1  # the "fastest samples" percentile used as the data's latency floor
# the clock looks skewed when ...
NEGATIVE_SHARE_MAX = 0.001  # ... more than 0.1 % of ages are negative, or
NEGATIVE_MIN_MS = -1.0  # ... some age is below -1 ms (sub-ms noise is harmless at these thresholds)
FLOOR_MIN_ESTIMATES = 10  # ... or the latency floor is far below half the best RTT of at least this many pings


@dataclass
class HourRow:
    """One UTC hour of the per-hour table."""

    hour: str  # "YYYY-mm-dd HH:00"
    start_ns: int
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    unsafe_share: float


@dataclass
class UnsafeSpell:
    """Consecutive samples above the degraded threshold; lasts until the next safe sample arrives.

    Counting until the next safe sample (not the last unsafe one) matters: if the feed goes quiet
    after an old quote, the quote we hold keeps aging, so the whole silence was unsafe.
    """

    duration_s: float
    start_ns: int
    start: str
    samples: int
    max_ms: float


@dataclass
class CorrectedAges:
    """The age statistics on the exchange's clock: every age + the offset (see :mod:`mm_core.clock_skew`)."""

    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    unsafe_share: float = float("nan")
    negative_ages: int = 0  # ages still below -CLOCK_SLACK_MS after correction
    negative_share: float = 0.0
    min_age_ms: float = float("nan")


@dataclass
class ClockReport:
    """Both views of the clock: the collector's ping/pong estimates and what the ages imply.

    ``reliable`` says whether the estimates prove the offset well enough to correct ages by it
    (:mod:`mm_core.clock_skew`); ``corrected`` holds the statistics on corrected ages whenever an
    offset was estimated, and ``corrected_applied`` whether the gate judges them (only when reliable).
    """

    estimates: int = 0  # clock_estimate events found
    estimate_source: str | None = None  # events.jsonl path, or "summary"
    offset_ms: float | None = None  # the correction: exchange clock minus local clock
    rtt_ms: float | None = None  # median round trip
    rtt_min_ms: float | None = None  # best round trip: the least-queued path, the fair floor to compare with
    offset_lo_ms: float | None = None  # the offset provably lies in [lo, hi] (agreeing estimates)
    offset_hi_ms: float | None = None
    agreeing: int = 0
    agreement_share: float = 0.0
    bound_ms: float = ClockRule.offset_max_ms
    within_bound: bool | None = None
    reliable: bool = False
    unreliable_reasons: list[str] = field(default_factory=list)
    min_age_ms: float | None = None
    low_age_ms: float | None = None  # 0.1th percentile of ages: the data's latency floor
    negative_ages: int = 0
    negative_share: float = 0.0
    offset_corrected_p50_ms: float | None = None  # p50 + offset: the age on the exchange's clock
    corrected: CorrectedAges | None = None
    corrected_applied: bool = False
    skewed: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class LatencyReport:
    file: str
    source: str
    samples: int
    skipped_rows: int
    normal_max_ms: float
    degraded_max_ms: float
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    p99_9_ms: float = float("nan")
    max_ms: float = float("nan")
    min_ms: float = float("nan")
    mean_ms: float = float("nan")
    normal_share: float = float("nan")
    degraded_share: float = float("nan")
    unsafe_share: float = float("nan")
    start_ns: int | None = None
    end_ns: int | None = None
    span_s: float = 0.0
    hours: list[HourRow] = field(default_factory=list)
    longest_unsafe: UnsafeSpell | None = None
    clock: ClockReport = field(default_factory=ClockReport)
    rejected_rows: dict[str, int] = field(default_factory=dict)  # rows that are not samples, by reason
    warnings: list[str] = field(default_factory=list)
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_hour"] = d.pop("hours")
        d["longest_unsafe_spell"] = d.pop("longest_unsafe")
        d["start"] = iso_ns(self.start_ns) if self.start_ns is not None else None
        d["end"] = iso_ns(self.end_ns) if self.end_ns is not None else None
        c = self.clock
        d["negative_ages"] = {"count": c.negative_ages, "share": c.negative_share, "min_ms": c.min_age_ms}
        return jsonable(d)


# --------------------------------------------------------------------------- computations


def usable_ages(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ts_capture, age_ms) as NumPy arrays, without rows lacking either; no copy when all are usable."""
    d = df.select("ts_capture", "age_ms")
    if d.null_count().sum_horizontal().item():
        d = d.drop_nulls()
    ages = d["age_ms"].to_numpy()
    tc = d["ts_capture"].to_numpy()
    ok = np.isfinite(ages)
    if not ok.all():
        ages, tc = ages[ok], tc[ok]
    return tc, ages


def percentiles(ages: np.ndarray) -> dict[str, float]:
    """p50..p99.9 with NumPy's default (linear) interpolation, in one partition pass."""
    if ages.size == 0:
        return {_pct_key(q): float("nan") for q in PERCENTILES}
    vals = np.percentile(ages, PERCENTILES)
    return {_pct_key(q): float(v) for q, v in zip(PERCENTILES, vals)}


def _pct_key(q: float) -> str:
    return f"p{q:g}".replace(".", "_") + "_ms"


def regime_shares(ages: np.ndarray, normal_max_ms: float, degraded_max_ms: float) -> tuple[float, float, float]:
    """(normal, degraded, unsafe) shares: age <= normal, normal < age <= degraded, age > degraded."""
    n = ages.size
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    normal = int(np.count_nonzero(ages <= normal_max_ms))
    unsafe = int(np.count_nonzero(ages > degraded_max_ms))
    return normal / n, (n - normal - unsafe) / n, unsafe / n


def per_hour(tc: np.ndarray, ages: np.ndarray, unsafe_ms: float) -> list[HourRow]:
    """One row per UTC hour with samples (by capture time); hours without samples are left out."""
    if tc.size == 0:
        return []
    hour = tc // _HOUR_NS
    if hour.size > 1 and (hour[1:] < hour[:-1]).any():
        order = np.argsort(hour, kind="stable")
        hour, ages = hour[order], ages[order]
    cuts = np.flatnonzero(hour[1:] != hour[:-1]) + 1
    out: list[HourRow] = []
    for lo, hi in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [hour.size]))):
        a = ages[lo:hi]
        p50, p95, p99 = np.percentile(a, (50, 95, 99))
        h_ns = int(hour[lo]) * _HOUR_NS
        out.append(HourRow(iso_ns(h_ns)[:13].replace("T", " ") + ":00", h_ns, int(a.size),
                           float(p50), float(p95), float(p99),
                           float(np.count_nonzero(a > unsafe_ms) / a.size)))
    return out


def longest_unsafe_spell(tc: np.ndarray, ages: np.ndarray, unsafe_ms: float) -> UnsafeSpell | None:
    """The longest run (by time) of consecutive samples with age > ``unsafe_ms``, in file order."""
    bad = ages > unsafe_ms
    if not bad.any():
        return None
    edges = np.diff(np.concatenate(([0], bad.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    n = tc.size
    end_ts = np.where(ends < n, tc[np.minimum(ends, n - 1)], tc[ends - 1])
    dur = end_ts - tc[starts]
    # longest by time; ties (e.g. single samples) go to the spell with more samples, then the first
    key = np.lexsort((-np.arange(starts.size), ends - starts, dur))
    i = int(key[-1])
    s, e = int(starts[i]), int(ends[i])
    return UnsafeSpell(float(dur[i]) / 1e9, int(tc[s]), iso_ns(int(tc[s])), e - s, float(ages[s:e].max()))


def clock_report(ages: np.ndarray, p50_ms: float, events_path: Path | None,
                 summary_path: Path | None, *, rule: ClockRule = ClockRule(),
                 unsafe_ms: float = 80.0) -> ClockReport:
    """Clock offset from ping/pong events (or the summary) and, independently, from the ages.

    Offset = exchange clock - local clock; age = true latency - offset. Whether the ping/pong
    estimates are reliable is :func:`mm_core.clock_skew.judge_clock` plus one check on the data:
    corrected ages must not stay negative (a true latency cannot be). From the data alone: negative
    ages, or a latency floor far below RTT/2, mean the local clock is behind.
    """
    c = ClockReport(bound_ms=rule.offset_max_ms)
    offs: list[float] = []
    rtts: list[float] = []
    if events_path is not None and events_path.is_file():
        log = read_event_log(events_path)
        for e in log.of_kind("clock_estimate"):
            o, r = e.get("offset_ns"), e.get("rtt_ns")
            if isinstance(o, (int, float)) and isinstance(r, (int, float)):
                offs.append(float(o) / 1e6)
                rtts.append(float(r) / 1e6)
        if offs:
            c.estimates, c.estimate_source = len(offs), str(events_path)
            c.rtt_ms = statistics.median(rtts)
            c.rtt_min_ms = min(rtts)
    if offs:
        v = judge_clock(offs, rtts, rule)
        c.offset_ms, c.offset_lo_ms, c.offset_hi_ms = v.offset_ms, v.lo_ms, v.hi_ms
        c.agreeing, c.agreement_share = v.agreeing, v.agreement_share
        c.within_bound, c.reliable = v.within_bound, v.reliable
        c.unreliable_reasons = list(v.reasons)
    elif summary_path is not None:
        try:
            summary = load_summary(summary_path)
        except InputError:
            summary = None
        if summary and isinstance(summary.get("clock_offset_ms"), (int, float)):
            c.estimate_source = str(summary_path)
            c.estimates = int(summary.get("clock_estimates") or 0)
            c.offset_ms = float(summary["clock_offset_ms"])
            rtt = summary.get("rtt_ms")
            c.rtt_ms = float(rtt) if isinstance(rtt, (int, float)) else None
            c.unreliable_reasons.append("only the summary's median offset is available (no clock_estimate "
                                        f"events in {EVENTS_NAME}): its bounds cannot be checked")
        else:
            c.unreliable_reasons.append("no ping/pong clock estimates in the run")
    else:
        c.unreliable_reasons.append("no ping/pong clock estimates in the run")
    if ages.size:
        c.min_age_ms = float(ages.min())
        c.low_age_ms = float(np.percentile(ages, _LOW_PCT))
        c.negative_ages = int(np.count_nonzero(ages < 0))
        c.negative_share = c.negative_ages / ages.size
    if c.offset_ms is not None and ages.size:
        c.corrected = corrected_ages(ages, c.offset_ms, unsafe_ms)
        c.offset_corrected_p50_ms = c.corrected.p50_ms
        if c.corrected.negative_share > NEGATIVE_SHARE_MAX:
            c.unreliable_reasons.append(
                f"the data contradicts the estimate: {c.corrected.negative_ages} ages "
                f"({100 * c.corrected.negative_share:.2f} %) stay below -{CLOCK_SLACK_MS:g} ms after correcting by "
                f"{c.offset_ms:+.3f} ms (min {c.corrected.min_age_ms:.3f} ms); a true latency is never negative")
            c.reliable = False
    c.corrected_applied = c.reliable and c.corrected is not None
    _clock_warnings(c)
    return c


def corrected_ages(ages: np.ndarray, offset_ms: float, unsafe_ms: float) -> CorrectedAges:
    """Statistics of ``ages + offset``: the ages on the exchange's clock."""
    a = ages + offset_ms
    p50, p95, p99 = (float(x) for x in np.percentile(a, (50, 95, 99)))
    neg = int(np.count_nonzero(a < -CLOCK_SLACK_MS))
    return CorrectedAges(p50, p95, p99, float(np.count_nonzero(a > unsafe_ms) / a.size), neg,
                         neg / a.size, float(a.min()))


def _clock_warnings(c: ClockReport) -> None:
    if c.min_age_ms is not None and (c.negative_share > NEGATIVE_SHARE_MAX or c.min_age_ms < NEGATIVE_MIN_MS):
        c.warnings.append(
            f"clock looks skewed: {c.negative_ages} ages ({100 * c.negative_share:.2f} %) are negative, "
            f"min {c.min_age_ms:.3f} ms: the local clock is behind the exchange clock by at least "
            f"{-c.min_age_ms:.3f} ms and every age here is understated by that much (check NTP)")
    if c.offset_ms is not None:
        bound = (c.rtt_ms or 0.0) / 2 + 1.0
        if abs(c.offset_ms) > bound:
            ahead = "ahead of" if c.offset_ms > 0 else "behind"
            c.warnings.append(
                f"clock looks skewed: the exchange clock is {abs(c.offset_ms):.3f} ms {ahead} the local "
                f"clock (median of {c.estimates} ping/pong estimates, RTT {c.rtt_ms or 0:.3f} ms, "
                f"uncertainty +/- RTT/2); ages are {'under' if c.offset_ms > 0 else 'over'}stated by "
                f"about that much (check NTP)")
    # best case against best case: the fastest samples against the best of many pings (a median RTT
    # of a few pings includes queueing the fastest samples never saw)
    if c.rtt_min_ms and c.estimates >= FLOOR_MIN_ESTIMATES and c.low_age_ms is not None and c.low_age_ms >= 0:
        floor = c.rtt_min_ms / 2 - max(2.0, c.rtt_min_ms / 4)
        if c.low_age_ms < floor:
            c.warnings.append(
                f"clock looks skewed: the fastest {_LOW_PCT:g} % of samples are {c.low_age_ms:.3f} ms old, "
                f"well below half the best ping RTT ({c.rtt_min_ms / 2:.3f} ms of {c.estimates} pings): the "
                f"local clock is probably behind the exchange clock (or the network path is very asymmetric)")
    c.skewed = bool(c.warnings)


# --------------------------------------------------------------------------- the analysis


def analyze_latency(path: str | Path | None = None, normal_max_ms: float = 20.0, degraded_max_ms: float = 80.0,
                    *, events_path: str | Path | None = None, plot_path: str | Path | None = None,
                    source: str = "auto", samples: Samples | None = None,
                    clock_rule: ClockRule | None = None) -> LatencyReport:
    """The latency report of one capture; raises :class:`InputError` when it cannot be read.

    ``samples`` (already loaded rows) lets the gate read a 24-hour file once for QA and latency.
    ``clock_rule`` (default: the shipped ``[gate]`` values) decides whether the clock offset is
    reliable enough to correct ages by.
    """
    if not 0 <= normal_max_ms <= degraded_max_ms:
        raise ValueError(f"need 0 <= normal_max_ms ({normal_max_ms}) <= degraded_max_ms ({degraded_max_ms})")
    s = samples if samples is not None else load_samples(path, source, columns=("ts_capture", "age_ms"))
    if s.input.kind == "csv" and not s.header_ok:
        raise InputError(f"{s.input.display}: line 1 header is {ascii(s.header[:120])}; expected "
                         f"'exchange,symbol,ts_exchange,ts_capture,age_ms,bid,bid_qty,ask,ask_qty'")
    tc, ages = usable_ages(s.df)
    rejected = rejected_counts(s)
    skipped = sum(rejected.values())
    r = LatencyReport(file=s.input.display, source=s.input.kind, samples=int(ages.size), skipped_rows=skipped,
                      normal_max_ms=normal_max_ms, degraded_max_ms=degraded_max_ms, rejected_rows=rejected)
    if s.torn is not None:
        r.warnings.append(f"{s.torn.reason}; not a sample")
    if skipped:
        r.warnings.append(f"{skipped} rows are not samples ({', '.join(f'{k}: {v}' for k, v in rejected.items())}); "
                          "`mm qa` names their lines")
    for problem in s.schema_problems:
        r.warnings.append(f"skipped Parquet part: {problem}")
    run_dir = s.input.run_dir
    ev = Path(events_path) if events_path else (run_dir / EVENTS_NAME if run_dir else None)
    if events_path and not Path(events_path).is_file():
        raise InputError(f"{events_path}: no such event log")
    sp = run_dir / SUMMARY_NAME if run_dir else None
    if ages.size:
        pct = percentiles(ages)
        r.p50_ms, r.p90_ms, r.p95_ms = pct["p50_ms"], pct["p90_ms"], pct["p95_ms"]
        r.p99_ms, r.p99_9_ms = pct["p99_ms"], pct["p99_9_ms"]
        r.max_ms, r.min_ms, r.mean_ms = float(ages.max()), float(ages.min()), float(ages.mean())
        r.normal_share, r.degraded_share, r.unsafe_share = regime_shares(ages, normal_max_ms, degraded_max_ms)
        r.start_ns, r.end_ns = int(tc.min()), int(tc.max())
        r.span_s = (r.end_ns - r.start_ns) / 1e9
        r.hours = per_hour(tc, ages, degraded_max_ms)
        r.longest_unsafe = longest_unsafe_spell(tc, ages, degraded_max_ms)
    r.clock = clock_report(ages, r.p50_ms, ev, sp, rule=clock_rule or ClockRule(),
                           unsafe_ms=degraded_max_ms)
    if plot_path and ages.size:
        r.plot = str(plot_latency(tc, ages, r, Path(plot_path)))
    return r


def _time_buckets(span_s: float) -> tuple[float, str, float]:
    """(bucket width s, axis unit, seconds per unit) giving a few hundred buckets over ``span_s``."""
    for width in (1, 5, 10, 30, 60, 300, 600, 1800, 3600):
        if span_s / width <= 400:
            break
    if span_s <= 600:
        return float(width), "seconds", 1.0
    if span_s <= 6 * 3600:
        return float(width), "minutes", 60.0
    return float(width), "hours", 3600.0


def plot_latency(tc: np.ndarray, ages: np.ndarray, r: LatencyReport, out: Path) -> Path:
    """Histogram of ages (log x) with the regime thresholds, and age over time (p50/p99/max per bucket).

    Bucket summaries instead of 5M dots: the picture stays readable and renders in a second; the
    bucket width follows the run length (1 s for a demo, minutes for a day).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 8))
    pos = ages[ages > 0]
    lo = max(float(pos.min()) if pos.size else 0.01, 0.01)
    hi = max(float(ages.max()), lo * 10)
    bins = np.logspace(np.log10(lo), np.log10(hi), 120)
    counts, edges = np.histogram(np.clip(ages, lo, hi), bins=bins)
    ax1.stairs(counts, edges, fill=True, alpha=0.6)
    ax1.set_xscale("log")
    for x, label, color in ((r.normal_max_ms, "normal max", "tab:green"),
                            (r.degraded_max_ms, "degraded max", "tab:red")):
        ax1.axvline(x, color=color, linestyle="--", label=f"{label} {x:g} ms")
    for x, label in ((r.p50_ms, "p50"), (r.p99_ms, "p99")):
        ax1.axvline(x, color="black", linewidth=0.8, linestyle=":", label=f"{label} {x:.1f} ms")
    neg = int(np.count_nonzero(ages <= 0))
    ax1.set_title(f"Age of {r.samples:,} samples (ages <= {lo:.2g} ms clipped into the first bin: {neg} "
                  f"non-positive)")
    ax1.set_xlabel("age = ts_capture - ts_exchange (ms, log scale)")
    ax1.set_ylabel("samples")
    ax1.legend(fontsize=8)

    # bucket width scales with the run: ~300 points whether it is a 30 s demo or a 24 h capture
    t0 = int(tc.min())
    span_s = max(1.0, (int(tc.max()) - t0) / 1e9)
    bucket_s, unit, per_unit = _time_buckets(span_s)
    frame = pl.DataFrame({"t": tc - t0, "age": ages}).with_columns(
        (pl.col("t") // int(bucket_s * 1e9)).alias("b"))
    per_bucket = frame.group_by("b").agg(
        pl.col("age").median().alias("p50"), pl.col("age").quantile(0.99).alias("p99"),
        pl.col("age").max().alias("max")).sort("b")
    t_x = per_bucket["b"].to_numpy() * bucket_s / per_unit
    marker = "o" if per_bucket.height < 40 else None
    label_b = f"{bucket_s:g} s" if bucket_s < 60 else f"{bucket_s / 60:g} min"
    for col, style in (("max", ":"), ("p99", "-"), ("p50", "-")):
        ax2.plot(t_x, np.clip(per_bucket[col].to_numpy(), lo, None), style, marker=marker, markersize=3,
                 linewidth=0.8, label=f"per-{label_b} {col}")
    ax2.axhline(r.normal_max_ms, color="tab:green", linestyle="--")
    ax2.axhline(r.degraded_max_ms, color="tab:red", linestyle="--")
    ax2.set_yscale("log")
    ax2.set_xlabel(f"{unit} since {iso_ns(t0)}")
    ax2.set_ylabel("age (ms, log scale)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------- output and CLI


def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:.3f} %"


def _ms(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.3f}"


def format_clock(c: ClockReport) -> list[str]:
    """The clock lines of the report: estimate, its proven bounds, reliability, corrected ages, negatives."""
    out: list[str] = []
    if c.offset_ms is not None:
        bounds = (f", provably in [{c.offset_lo_ms:+.3f}, {c.offset_hi_ms:+.3f}] ms "
                  f"({c.agreeing} of {c.estimates} agree)" if c.offset_lo_ms is not None else "")
        out.append(f"clock (ping/pong, {c.estimates} estimates): offset {c.offset_ms:+.3f} ms (exchange - local)"
                   f"{bounds}, RTT median {_ms(c.rtt_ms)} ms, best {_ms(c.rtt_min_ms)} ms")
    else:
        out.append("clock (ping/pong): no clock_estimate events found")
    if c.reliable:
        where = "within" if c.within_bound else "OUTSIDE"
        out.append(f"clock estimate RELIABLE: offset {where} +/- {c.bound_ms:g} ms; ages corrected by it")
    else:
        out.append("clock estimate NOT RELIABLE (ages not corrected): " + "; ".join(c.unreliable_reasons))
    k = c.corrected
    if k is not None:
        out.append(f"ages on the exchange clock (age + offset){'' if c.corrected_applied else ' [not applied]'}: "
                   f"p50 {_ms(k.p50_ms)}, p95 {_ms(k.p95_ms)}, p99 {_ms(k.p99_ms)} ms, unsafe {_pct(k.unsafe_share)}")
    if c.min_age_ms is not None:
        out.append(f"negative ages: {c.negative_ages} ({100 * c.negative_share:.3f} %), min age {c.min_age_ms:.3f} ms, "
                   f"{_LOW_PCT:g}th percentile {c.low_age_ms:.3f} ms (a negative age = the local clock is behind)")
    return out


def format_report(r: LatencyReport) -> str:
    """Human report: plain ASCII so it prints on any console."""
    out = [f"Latency of {r.file} ({r.source}): {r.samples} samples"
           + (f", {iso_ns(r.start_ns)} .. {iso_ns(r.end_ns)} ({r.span_s / 3600:.2f} h)" if r.samples else "")]
    out.append(format_table(("STAT", "AGE_MS"), [
        ("p50", _ms(r.p50_ms)), ("p90", _ms(r.p90_ms)), ("p95", _ms(r.p95_ms)), ("p99", _ms(r.p99_ms)),
        ("p99.9", _ms(r.p99_9_ms)), ("max", _ms(r.max_ms)), ("mean", _ms(r.mean_ms)), ("min", _ms(r.min_ms))]))
    out.append("")
    out.append(format_table(("REGIME", "RULE", "SHARE"), [
        ("normal", f"age <= {r.normal_max_ms:g} ms", _pct(r.normal_share)),
        ("degraded", f"{r.normal_max_ms:g} < age <= {r.degraded_max_ms:g} ms", _pct(r.degraded_share)),
        ("unsafe", f"age > {r.degraded_max_ms:g} ms", _pct(r.unsafe_share))]))
    sp = r.longest_unsafe
    out.append("")
    out.append("longest unsafe spell: " + (
        f"{sp.duration_s:.3f} s from {sp.start} ({sp.samples} samples, worst {sp.max_ms:.1f} ms)"
        if sp else "none"))
    c = r.clock
    out.extend(format_clock(c))
    for w in c.warnings:
        out.append(f"WARNING: {w}")
    for w in r.warnings:
        out.append(f"note: {w}")
    if r.hours:
        out.append("")
        out.append("per hour (UTC):")
        out.append(format_table(("HOUR", "SAMPLES", "P50_MS", "P95_MS", "P99_MS", "UNSAFE"),
                                [(h.hour, h.samples, _ms(h.p50_ms), _ms(h.p95_ms), _ms(h.p99_ms),
                                  _pct(h.unsafe_share)) for h in r.hours]))
    if r.plot:
        out.append(f"plot: {r.plot}")
    return "\n".join(out)


EXIT_HELP = "exit codes: 0 analyzed, 2 missing/unreadable input or no samples"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_path(p, "sample CSV, Parquet top_of_book file, or a run directory")
    p.add_argument("--normal-max-ms", type=float, default=None,
                   help="normal regime: age <= this (default: config [latency], 20)")
    p.add_argument("--degraded-max-ms", type=float, default=None,
                   help="degraded regime: age <= this; above is unsafe (default: config [latency], 80)")
    p.add_argument("--plot", metavar="OUT.png", help="write a histogram + age-over-time figure")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--events", help="event log with clock_estimate events (default: events.jsonl beside the file)")
    p.add_argument("--config", help="runtime config for default thresholds (default: the shipped one)")
    p.add_argument("--source", choices=("auto", "csv", "parquet"), default="auto",
                   help="for a run directory: its CSV (auto) or its Parquet top_of_book parts")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("analyze", help="feed-latency analysis of a capture file",
                              description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    add_arguments(p)
    p.set_defaults(func=run)


def _thresholds(args: argparse.Namespace) -> tuple[float, float, ClockRule]:
    """Command-line thresholds win; the rest (and the clock rule) come from the config (built-in
    defaults if the shipped one fails)."""
    from mm_core.config import ConfigError, GateConfig, LatencyConfig, load_config

    try:
        cfg = load_config(args.config)
        lat, gate = cfg.latency, cfg.gate
    except ConfigError:
        if args.config:
            raise
        lat, gate = LatencyConfig(), GateConfig()
    normal, degraded = args.normal_max_ms, args.degraded_max_ms
    return (lat.normal_max_ms if normal is None else normal,
            lat.degraded_max_ms if degraded is None else degraded, ClockRule.from_gate(gate))


def run(args: argparse.Namespace) -> int:
    from mm_core.config import ConfigError

    t0 = time.perf_counter()
    try:
        args.file = data_path(args, "analyze")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        normal, degraded, rule = _thresholds(args)
        r = analyze_latency(args.file, normal, degraded, events_path=args.events, plot_path=args.plot,
                            source=args.source, clock_rule=rule)
    except (InputError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if args.json:
        print(json.dumps(r.to_dict()))
    else:
        print(format_report(r))
        print(f"({time.perf_counter() - t0:.1f} s)")
    if r.samples == 0:
        print(f"error: {r.file}: no samples with an age to analyze", file=sys.stderr)
        return EXIT_INPUT
    return EXIT_OK


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Stand-alone entry (``python mm_core/analyze.py``): same options as ``mm analyze``."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
