"""The 24-hour decision gate: does this capture run justify building on the feed? PROCEED or FIX-AND-RERUN.

``mm gate RUN_DIR`` judges one run directory (layout: ``mm_core/capture/layout.py``) against the
user's plan, with every threshold taken from the config's ``[gate]`` section:

* 24-hour gate: run duration >= min_hours without a fatal exit, samples >= min_samples, p50/p95/p99
  age <= thresholds, unsafe share (age > unsafe_ms) <= unsafe_share_max, strict data QA PASS, no gap
  > max_gap_s, no reconnect loop (>= reconnect_loop_count reconnects within reconnect_loop_window_s);
* clock: the exchange clock offset is proven within +/- clock_offset_max_ms by the ping/pong
  estimates (rule: :mod:`mm_core.clock_skew`); when the estimate is reliable the latency checks are
  judged on offset-corrected ages (raw ages are reported beside them), when it is not the clock
  check fails -- a skewed or unknown clock makes every age lie;
* Phase 0/1 go/no-go: uptime share >= min_uptime_share, no schema corruption (CSV and Parquet),
  gap/heartbeat/reconnect events logged.

Reported beside the checks, not judged (``--json`` key ``capture``; :mod:`mm_core.capture.run_health`):
the capture loop's own lag (p50/p99/max), the writer queue (high-water, times full) and which
Parquet data ``mm repair`` rebuilt from the raw archive after a hard kill.

A check that cannot be measured (missing summary, no events log, ...) FAILS with "not measured":
the gate only says PROCEED on evidence. ``--scale-to-seconds S`` is for demos: it scales only the
duration and sample-count thresholds to a run of S seconds and says so; latency thresholds never
scale.

Exit codes: 0 = PROCEED, 1 = FIX-AND-RERUN, 2 = unreadable input (no such run dir, bad config).
"""

from __future__ import annotations

import argparse
import textwrap
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mm_core.capture.layout import EVENTS_NAME, EXIT_FATAL, EXIT_RUNNING, PARQUET_DIR, SUMMARY_NAME
from mm_core.capture.run_health import capture_health
from mm_core.capture.run_health import describe as describe_capture
from mm_core.clock_skew import ClockRule
from mm_core.latency import LatencyReport, analyze_latency, format_clock
from mm_core.quality import (
    FAIL,
    PASS,
    InputError,
    QaResult,
    EventLog,
    format_table,
    iso_ns,
    jsonable,
    load_samples,
    load_summary,
    qa_samples,
    read_event_log,
    run_qa,
    schema_difference,
)

PROCEED, FIX = "PROCEED", "FIX-AND-RERUN"
EXIT_PROCEED, EXIT_FIX, EXIT_INPUT = 0, 1, 2
GATE_24H, PHASE_01 = "24h gate", "phase 0/1"
DAY_S = 86_400.0
# a summary still saying "running" that has not been rewritten for this long belongs to a dead process
STALE_SUMMARY_S = 60.0
NOT_MEASURED = "not measured"

# the gate's building blocks, importable from here by the demo and the tests
__all__ = ["evaluate_gate", "run_qa", "analyze_latency", "GateResult", "GateCheck", "PROCEED", "FIX"]


@dataclass
class GateCheck:
    """One line of the verdict: what was measured, against what, and whether it passed."""

    name: str
    group: str
    value: Any
    threshold: str
    passed: bool
    detail: str = ""
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"name": self.name, "group": self.group, "value": self.value, "unit": self.unit,
                         "threshold": self.threshold, "passed": self.passed, "detail": self.detail})


@dataclass
class GateResult:
    run_dir: str
    config: str | None
    decision: str
    checks: list[GateCheck]
    scaled: bool = False
    scale_to_seconds: float | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)  # the ones applied
    original_thresholds: dict[str, Any] = field(default_factory=dict)  # before scaling
    notes: list[str] = field(default_factory=list)
    qa: QaResult | None = None
    latency: LatencyReport | None = None
    # the capture's own health, reported beside the checks: loop lag, writer queue, rebuilt data
    capture: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.decision == PROCEED

    def check(self, name: str) -> GateCheck:
        return next(c for c in self.checks if c.name == name)

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "decision": self.decision,
            "run_dir": self.run_dir,
            "config": self.config,
            "scaled": self.scaled,
            "scale_to_seconds": self.scale_to_seconds,
            "thresholds": self.thresholds,
            "original_thresholds": self.original_thresholds,
            "checks": [c.to_dict() for c in self.checks],
            "failed": [c.name for c in self.failed],
            "notes": self.notes,
            "clock": clock_summary(self.latency),
            "qa": self.qa.to_dict() if self.qa else None,
            "latency": self.latency.to_dict() if self.latency else None,
            "capture": self.capture,
        })


def clock_summary(lat: LatencyReport | None) -> dict[str, Any] | None:
    """The ``clock`` block of ``--json``: the estimate, its proven bounds, and raw vs corrected ages."""
    if lat is None:
        return None
    c = lat.clock
    k = c.corrected
    return {
        "offset_ms": c.offset_ms, "offset_interval_ms": [c.offset_lo_ms, c.offset_hi_ms],
        "estimates": c.estimates, "agreeing": c.agreeing, "rtt_ms": c.rtt_ms, "rtt_min_ms": c.rtt_min_ms,
        "bound_ms": c.bound_ms, "reliable": c.reliable, "within_bound": c.within_bound,
        "unreliable_reasons": c.unreliable_reasons, "corrected_applied": c.corrected_applied,
        "raw": {"p50_ms": lat.p50_ms, "p95_ms": lat.p95_ms, "p99_ms": lat.p99_ms, "unsafe_share": lat.unsafe_share},
        "corrected": None if k is None else {"p50_ms": k.p50_ms, "p95_ms": k.p95_ms, "p99_ms": k.p99_ms,
                                             "unsafe_share": k.unsafe_share},
        "negative_ages": {"count": c.negative_ages, "share": c.negative_share, "min_ms": c.min_age_ms},
    }


# --------------------------------------------------------------------------- thresholds


def gate_thresholds(gate: Any, scale_to_seconds: float | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(applied, original) thresholds. Scaling touches only duration and sample count.

    ``min_hours`` keeps its share of a day (23.5 h of 24 h -> S * 23.5/24 seconds) and
    ``min_samples`` its rate per second; a short demo run then faces the same bar per unit of time.
    """
    names = ("min_hours", "min_samples", "p50_max_ms", "p95_max_ms", "p99_max_ms", "unsafe_ms",
             "unsafe_share_max", "max_gap_s", "reconnect_loop_count", "reconnect_loop_window_s",
             "min_uptime_share", "clock_offset_max_ms", "clock_min_estimates", "clock_agreement_min_share")
    original = {n: getattr(gate, n) for n in names}
    applied = dict(original)
    if scale_to_seconds is not None:
        if scale_to_seconds <= 0:
            raise ValueError(f"--scale-to-seconds must be > 0, got {scale_to_seconds}")
        applied["min_hours"] = scale_to_seconds * (gate.min_hours / 24.0) / 3600.0
        applied["min_samples"] = int(math.ceil(gate.min_samples * scale_to_seconds / DAY_S))
    return applied, original


# --------------------------------------------------------------------------- individual checks


def _fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h}h {rem // 60:02d}m"


def _not_measured(name: str, group: str, threshold: str, why: str, unit: str = "") -> GateCheck:
    return GateCheck(name, group, None, threshold, False, f"{NOT_MEASURED}: {why}", unit)


def duration_checks(summary: dict | None, lat: LatencyReport | None, th: dict[str, Any],
                    notes: list[str], now_ns: int) -> list[GateCheck]:
    """Run duration and exit reason, from the summary (the only witness of how the run ended)."""
    min_h = th["min_hours"]
    dur_th = f">= {_fmt_duration(min_h * 3600)}" if min_h < 1 else f">= {min_h:g} h"
    out: list[GateCheck] = []
    if summary is None or not isinstance(summary.get("duration_s"), (int, float)):
        if lat is not None and lat.samples:
            out.append(GateCheck("duration_h", GATE_24H, lat.span_s / 3600, dur_th,
                                 lat.span_s / 3600 >= min_h,
                                 f"no run summary: span of sample timestamps, {_fmt_duration(lat.span_s)}",
                                 "h"))
        else:
            out.append(_not_measured("duration_h", GATE_24H, dur_th, "no summary.json with duration_s", "h"))
        out.append(_not_measured("no_fatal_exit", GATE_24H, "exit_reason != fatal", "no summary.json"))
        return out
    dur_s = float(summary["duration_s"])
    reason = str(summary.get("exit_reason") or EXIT_RUNNING)
    detail = f"summary duration_s {dur_s:.1f} ({_fmt_duration(dur_s)}), exit_reason {reason!r}"
    if reason == EXIT_RUNNING:
        updated = summary.get("updated_ns")
        age_s = (now_ns - updated) / 1e9 if isinstance(updated, int) else None
        if age_s is None or age_s > STALE_SUMMARY_S:
            when = "never" if age_s is None else f"{_fmt_duration(age_s)} ago"
            note = (f"summary says 'running' but was last updated {when}: the collector was killed "
                    "(no clean exit); judged on what it wrote")
        else:
            note = "the run is still in progress (summary updated recently): judged on the data so far"
        notes.append(note)
        detail += "; " + note.split(":")[0]
    out.append(GateCheck("duration_h", GATE_24H, dur_s / 3600, dur_th, dur_s / 3600 >= min_h, detail, "h"))
    fatal = reason == EXIT_FATAL
    err = str(summary.get("fatal_error") or "no fatal_error text").encode("ascii", "replace").decode()
    fdetail = f"exit_reason {reason!r}" + (f": {err}" if fatal else "")
    out.append(GateCheck("no_fatal_exit", GATE_24H, reason, "exit_reason != fatal", not fatal, fdetail))
    return out


def latency_checks(lat: LatencyReport | None, summary: dict | None, th: dict[str, Any]) -> list[GateCheck]:
    """Sample count, p50/p95/p99 and unsafe share: on offset-corrected ages when the clock estimate is
    reliable (:mod:`mm_core.clock_skew`), else on raw ages (and the clock check fails)."""
    out: list[GateCheck] = []
    ssamples = summary.get("samples") if summary else None
    if lat is None or lat.samples == 0:
        why = "no readable samples" if lat is None else "no samples with an age"
        if lat is not None and lat.rejected_rows:
            why += " (rows that are not samples: " + ", ".join(f"{k} {v}" for k, v in lat.rejected_rows.items()) + ")"
        out.append(_not_measured("samples", GATE_24H, f">= {th['min_samples']}", why))
        for q in ("p50", "p95", "p99"):
            out.append(_not_measured(f"{q}_ms", GATE_24H, f"<= {th[f'{q}_max_ms']:g}", why, "ms"))
        out.append(_not_measured("unsafe_share", GATE_24H, f"<= {th['unsafe_share_max']:g}", why))
        return out
    sd = f"summary counts {ssamples}" if ssamples is not None else "no summary count"
    rej = sum(lat.rejected_rows.values())
    rd = (f"; {rej} rows are not samples ({', '.join(f'{k} {v}' for k, v in lat.rejected_rows.items())})"
          if rej else "")
    out.append(GateCheck("samples", GATE_24H, lat.samples, f">= {th['min_samples']}",
                         lat.samples >= th["min_samples"], f"rows that are samples; {sd}{rd}"))
    c = lat.clock
    k = c.corrected if c.corrected_applied else None
    for q in ("p50", "p95", "p99"):
        t = th[f"{q}_max_ms"]
        raw = getattr(lat, f"{q}_ms")
        v = getattr(k, f"{q}_ms") if k is not None else raw
        out.append(GateCheck(f"{q}_ms", GATE_24H, v, f"<= {t:g}", bool(v <= t), _age_detail(q, raw, v, c), "ms"))
    u = k.unsafe_share if k is not None else lat.unsafe_share
    out.append(GateCheck("unsafe_share", GATE_24H, u, f"<= {th['unsafe_share_max']:g}",
                         bool(u <= th["unsafe_share_max"]),
                         f"{100 * u:.3f} % of samples older than {th['unsafe_ms']:g} ms"
                         + _share_note(lat.unsafe_share, c)))
    return out


def _age_detail(q: str, raw: float, value: float, c: Any) -> str:
    if c.corrected_applied:
        return f"{q} age {value:.3f} ms on the exchange clock (raw {raw:.3f} ms + offset {c.offset_ms:+.3f} ms)"
    if c.corrected is not None:
        corr = getattr(c.corrected, f"{q}_ms")
        return (f"{q} age {raw:.3f} ms raw; clock estimate not reliable, so not corrected "
                f"(corrected it would be {corr:.3f} ms)")
    return f"{q} age {raw:.3f} ms raw; no clock estimate to correct by"


def _share_note(raw_share: float, c: Any) -> str:
    if c.corrected_applied:
        return f" on the exchange clock (raw {100 * raw_share:.3f} %)"
    if c.corrected is not None:
        return f" raw (corrected it would be {100 * c.corrected.unsafe_share:.3f} %)"
    return " raw"


def clock_check(lat: LatencyReport | None, th: dict[str, Any]) -> GateCheck:
    """The exchange clock offset is proven within +/- clock_offset_max_ms (rule: mm_core/clock_skew.py)."""
    b = th["clock_offset_max_ms"]
    t = f"reliable, |offset| <= {b:g}"
    if lat is None:
        return _not_measured("clock_offset", GATE_24H, t, "no readable samples", "ms")
    c = lat.clock
    neg = (f"negative ages: {c.negative_ages} ({100 * c.negative_share:.3f} %), min "
           + (f"{c.min_age_ms:.3f} ms" if c.min_age_ms is not None else "-"))
    where = (f"offset {c.offset_ms:+.3f} ms" + (f", provably in [{c.offset_lo_ms:+.3f}, {c.offset_hi_ms:+.3f}] ms "
                                                 f"({c.agreeing} of {c.estimates} estimates agree)"
                                                 if c.offset_lo_ms is not None else "")
             if c.offset_ms is not None else "no offset estimate")
    if not c.reliable:
        detail = f"NOT RELIABLE: {'; '.join(c.unreliable_reasons)}; {where}; {neg}"
        return GateCheck("clock_offset", GATE_24H, c.offset_ms, t, False, detail, "ms")
    if not c.within_bound:
        detail = (f"clock SKEWED: {where}, outside +/- {b:g} ms (fix NTP); latency judged on corrected ages; {neg}")
        return GateCheck("clock_offset", GATE_24H, c.offset_ms, t, False, detail, "ms")
    return GateCheck("clock_offset", GATE_24H, c.offset_ms, t, True,
                     f"{where}, within +/- {b:g} ms; latency judged on corrected ages; {neg}", "ms")


def qa_check(qa: QaResult | None, why: str = "") -> GateCheck:
    if qa is None:
        return _not_measured("data_qa_strict", GATE_24H, "PASS", why or "capture not readable")
    bad = [f"{c.name} ({c.detail})" for c in qa.failed]
    return GateCheck("data_qa_strict", GATE_24H, qa.status, "PASS", qa.status == PASS,
                     "; ".join(bad)[:400] if bad else f"{len(qa.checks)} checks on {qa.rows} rows")


def gap_check(qa: QaResult | None, summary: dict | None, th: dict[str, Any]) -> GateCheck:
    """Longest gap: the larger of the sample-time gap (QA) and the collector's own longest gap."""
    vals: list[str] = []
    longest: float | None = None
    g = qa.check("gaps") if qa else None
    if g is not None and "longest_s" in g.data:
        longest = float(g.data["longest_s"])
        vals.append(f"samples {longest:.1f} s")
    if summary and isinstance(summary.get("longest_gap_s"), (int, float)):
        sg = float(summary["longest_gap_s"])
        longest = sg if longest is None else max(longest, sg)
        vals.append(f"collector {sg:.1f} s")
    t = f"<= {th['max_gap_s']:g}"
    if longest is None:
        return _not_measured("max_gap_s", GATE_24H, t, "no sample timestamps and no summary longest_gap_s", "s")
    return GateCheck("max_gap_s", GATE_24H, longest, t, longest <= th["max_gap_s"],
                     "longest gap: " + ", ".join(vals), "s")


def max_in_window(ts_ns: Sequence[int], window_s: float) -> tuple[int, int | None]:
    """(most events within any window of ``window_s``, start of that window)."""
    if not ts_ns:
        return 0, None
    t = np.sort(np.asarray(ts_ns, dtype=np.int64))
    ends = np.searchsorted(t, t + int(window_s * 1e9), side="left")
    counts = ends - np.arange(t.size)
    i = int(np.argmax(counts))
    return int(counts[i]), int(t[i])


def reconnect_check(log: EventLog | None, th: dict[str, Any]) -> GateCheck:
    n_max, win = th["reconnect_loop_count"], th["reconnect_loop_window_s"]
    t = f"< {n_max} per {win:g} s"
    if log is None or not log.exists:
        return _not_measured("reconnect_loop", GATE_24H, t, f"no {EVENTS_NAME}")
    ts = [int(e["ts_capture"]) for e in log.of_kind("reconnecting") if isinstance(e.get("ts_capture"), int)]
    most, start = max_in_window(ts, win)
    detail = (f"{len(ts)} reconnect attempts in total; most in one window: {most}"
              + (f" from {iso_ns(start)}" if start is not None and most else ""))
    return GateCheck("reconnect_loop", GATE_24H, most, t, most < n_max, detail)


def uptime_check(summary: dict | None, th: dict[str, Any]) -> GateCheck:
    t = f">= {th['min_uptime_share']:g}"
    if not summary or not isinstance(summary.get("uptime_share"), (int, float)):
        return _not_measured("uptime_share", PHASE_01, t, "no uptime_share in summary.json")
    u = float(summary["uptime_share"])
    conn, dur = summary.get("connected_s"), summary.get("duration_s")
    detail = (f"connected {float(conn):.1f} s of {float(dur):.1f} s"
              if isinstance(conn, (int, float)) and isinstance(dur, (int, float)) else "uptime_share from summary")
    return GateCheck("uptime_share", PHASE_01, u, t, u >= th["min_uptime_share"], detail)


def parquet_schema_problems(run_dir: Path) -> tuple[int, list[str]]:
    """(parts checked, problems): every Parquet part must open and carry its table's schema."""
    import pyarrow.parquet as pq

    from mm_core.events import table_schemas

    schemas = table_schemas()
    root = run_dir / PARQUET_DIR
    files = sorted(root.rglob("*.parquet")) if root.is_dir() else []
    problems: list[str] = []
    for f in files:
        table = f.name.rsplit("-", 2)[0]
        if table not in schemas:
            problems.append(f"{f}: unknown table {table!r}")
            continue
        try:
            sch = pq.read_schema(f)
        except Exception as exc:  # pyarrow raises several types for a torn or foreign file
            problems.append(f"{f}: unreadable ({type(exc).__name__})")
            continue
        diff = schema_difference(sch, schemas[table])
        if diff:
            problems.append(f"{f}: {diff}")
    return len(files), problems


def schema_check(qa: QaResult | None, run_dir: Path) -> GateCheck:
    """No schema corruption: the CSV's header and row types (QA) and every Parquet part's schema."""
    parts, problems = parquet_schema_problems(run_dir)
    details: list[str] = []
    ok = True
    if qa is None:
        return _not_measured("schema_intact", PHASE_01, "no corruption", "capture not readable")
    for name in ("schema", "types"):
        c = qa.check(name)
        if c is not None and c.status == FAIL:
            ok = False
            details.append(f"{qa.source} {name}: {c.detail}")
    if problems:
        ok = False
        details.append(f"{len(problems)} of {parts} Parquet parts bad: {problems[0]}")
    if ok:
        details.append(f"{qa.source} header and row types ok; {parts} Parquet parts with the expected schema")
    types = qa.check("types")
    value = (int(types.value or 0) if types is not None else 0) + len(problems)
    return GateCheck("schema_intact", PHASE_01, value, "0 corrupt rows/parts", ok, "; ".join(details))


def events_check(log: EventLog | None, summary: dict | None) -> GateCheck:
    """Gap, heartbeat and reconnect events are logged: the event log exists, parses and is complete.

    Complete means: a connect is logged; reconnects and disconnects the summary counted appear in the
    log; and every disconnect that is not the end of the run is followed by a reconnect attempt.
    """
    t = "exists, parses, complete"
    if log is None or not log.exists:
        return _not_measured("events_logged", PHASE_01, t, f"no {EVENTS_NAME}")
    counts = log.counts()
    problems: list[str] = []
    if log.bad_lines:
        problems.append(f"{len(log.bad_lines)} unparseable lines (first: line {log.bad_lines[0]})")
    if not counts.get("connected"):
        problems.append("no 'connected' event")
    s = summary or {}
    for key, kind in (("reconnects", "reconnecting"), ("disconnects", "disconnected"), ("silences", "silence")):
        n = s.get(key)
        if isinstance(n, int) and n > 0 and not counts.get(kind):
            problems.append(f"summary counts {n} {key} but no '{kind}' event is logged")
    conn_kinds = ("disconnected", "reconnecting", "connected")
    seq = [e.get("kind") for e in log.events if e.get("kind") in conn_kinds]
    unrecovered = sum(1 for i, k in enumerate(seq[:-1]) if k == "disconnected"
                      and not any(x in ("reconnecting", "connected") for x in seq[i + 1:]))
    if unrecovered:
        problems.append(f"{unrecovered} disconnects without a later reconnect event")
    shown = ", ".join(f"{k} {counts.get(k, 0)}" for k in ("connected", "disconnected", "reconnecting", "silence"))
    hb = s.get("heartbeats")
    detail = f"{len(log.events)} events ({shown}); heartbeats counted in summary: {hb if hb is not None else '-'}"
    if log.torn_last:
        detail += "; torn last line (hard kill)"
    if problems:
        detail = "; ".join(problems) + "; " + detail
    return GateCheck("events_logged", PHASE_01, len(log.events), t, not problems, detail)


# --------------------------------------------------------------------------- the gate


def evaluate_gate(run_dir: str | Path, config: Any = None, scale_to_seconds: float | None = None,
                  *, now_ns: int | None = None) -> GateResult:
    """Every gate check of one run directory. ``config`` is a RuntimeConfig, a path, or None (shipped).

    Raises :class:`InputError` when ``run_dir`` is not a directory holding anything of a run.
    """
    from mm_core.config import RuntimeConfig, load_config

    cfg = config if isinstance(config, RuntimeConfig) else load_config(config)
    rd = Path(run_dir)
    if not rd.is_dir():
        raise InputError(f"{rd}: no such run directory")
    summary_path = rd / SUMMARY_NAME
    summary = load_summary(summary_path)
    th, original = gate_thresholds(cfg.gate, scale_to_seconds)
    notes: list[str] = []
    now = time.time_ns() if now_ns is None else now_ns

    qa: QaResult | None = None
    lat: LatencyReport | None = None
    why = ""
    try:
        samples = load_samples(rd)
    except InputError as exc:
        samples = None
        why = str(exc)
        if summary is None and not (rd / EVENTS_NAME).is_file():
            raise InputError(f"{rd}: not a run directory (no summary.json, events.jsonl or samples)") from None
        notes.append(f"samples not readable: {exc}")
    if samples is not None:
        qa = qa_samples(samples, strict=True, max_gap_s=th["max_gap_s"])
        rule = ClockRule(th["clock_offset_max_ms"], th["clock_min_estimates"], th["clock_agreement_min_share"])
        try:  # the report's unsafe regime is the gate's: age > unsafe_ms
            lat = analyze_latency(normal_max_ms=min(cfg.latency.normal_max_ms, th["unsafe_ms"]),
                                  degraded_max_ms=th["unsafe_ms"], samples=samples, clock_rule=rule)
        except InputError as exc:  # e.g. a wrong header: QA says why, latency is not measured
            notes.append(f"latency not measured: {exc}")
    if lat is not None:
        notes += format_clock(lat.clock)
        notes += [f"WARNING: {w}" for w in lat.clock.warnings]
    log = read_event_log(rd / EVENTS_NAME)

    checks = duration_checks(summary, lat, th, notes, now)
    checks += latency_checks(lat, summary, th)
    checks.append(clock_check(lat, th))
    checks.append(qa_check(qa, why))
    checks.append(gap_check(qa, summary, th))
    checks.append(reconnect_check(log, th))
    checks.append(uptime_check(summary, th))
    checks.append(schema_check(qa, rd))
    checks.append(events_check(log, summary))
    if scale_to_seconds is not None:
        notes.insert(0, scale_note(th, original, scale_to_seconds))
    decision = PROCEED if all(c.passed for c in checks) else FIX
    capture = capture_health(rd, summary)
    return GateResult(str(rd), cfg.source, decision, checks, scaled=scale_to_seconds is not None,
                      scale_to_seconds=scale_to_seconds, thresholds=th, original_thresholds=original,
                      notes=notes, qa=qa, latency=lat, capture=capture)


def scale_note(th: dict[str, Any], original: dict[str, Any], s: float) -> str:
    return (f"SCALED for a {s:g} s run (demo): duration >= {_fmt_duration(th['min_hours'] * 3600)} "
            f"(24 h gate: {original['min_hours']:g} h), samples >= {th['min_samples']} "
            f"(24 h gate: {original['min_samples']}); latency, QA, gap, reconnect and uptime thresholds "
            f"are NOT scaled. A scaled PROCEED is not the 24-hour gate.")


# --------------------------------------------------------------------------- output and CLI


def _fmt_val(c: GateCheck) -> str:
    v = c.value
    if v is None:
        return "-"
    if c.name == "duration_h":
        return _fmt_duration(float(v) * 3600)
    if c.name in ("unsafe_share", "uptime_share"):
        return f"{100 * float(v):.3f} %"
    if isinstance(v, float):
        return f"{v:.3f}" + (f" {c.unit}" if c.unit else "")
    return str(v)


def _fmt_threshold(c: GateCheck) -> str:
    if c.name in ("unsafe_share", "uptime_share"):
        op, num = c.threshold.split(" ", 1)
        return f"{op} {100 * float(num):g} %"
    if c.unit and c.name != "duration_h":
        return f"{c.threshold} {c.unit}"
    return c.threshold


TABLE_WIDTH = 100  # the human gate table fits a 100-column terminal


def format_gate(r: GateResult) -> str:
    out = [f"Decision gate for {r.run_dir} (config {r.config})"]
    if r.scaled:
        out.append(r.notes[0])
    table = format_table(("GROUP", "CHECK", "MEASURED", "THRESHOLD", "VERDICT"),
                         [(c.group, c.name, _fmt_val(c), _fmt_threshold(c), "PASS" if c.passed else "FAIL")
                          for c in r.checks], max_last=40).splitlines()
    out += table[:2]
    for line, c in zip(table[2:], r.checks):  # each check's detail under it, wrapped to the table's width
        out.append(line)
        out += textwrap.wrap(c.detail, TABLE_WIDTH, initial_indent="    ", subsequent_indent="    ")
    for n in r.notes[1:] if r.scaled else r.notes:
        out.append(n if n.startswith("WARNING") else f"note: {n}")
    out += describe_capture(r.capture)
    failed = r.failed
    tail = f"DECISION: {r.decision}"
    if failed:
        tail += f" ({len(failed)} of {len(r.checks)} checks failed: {', '.join(c.name for c in failed)})"
    else:
        tail += f" (all {len(r.checks)} checks passed{'; SCALED demo thresholds' if r.scaled else ''})"
    out.append(tail)
    return "\n".join(_fit(line) for line in out)


def _fit(line: str) -> str:
    """A line wrapped to TABLE_WIDTH, continuation lines indented (a path longer than that stays whole)."""
    if len(line) <= TABLE_WIDTH:
        return line
    return "\n".join(textwrap.wrap(line, TABLE_WIDTH, subsequent_indent="    ", break_long_words=False,
                                   break_on_hyphens=False))


EXIT_HELP = "exit codes: 0 PROCEED, 1 FIX-AND-RERUN, 2 unreadable input (run dir or config)"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("gate", help="24-hour decision gate over a run directory (PROCEED / FIX-AND-RERUN)",
                              description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a collector run directory")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--config", help="runtime config with the [gate] thresholds (default: the shipped one)")
    p.add_argument("--scale-to-seconds", type=float, metavar="S",
                   help="demo only: scale the duration and sample thresholds to a run of S seconds")


def run(args: argparse.Namespace) -> int:
    from mm_core.config import ConfigError

    try:
        r = evaluate_gate(args.run_dir, args.config, args.scale_to_seconds)
    except (InputError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(r.to_dict()) if args.json else format_gate(r))
    return EXIT_PROCEED if r.passed else EXIT_FIX


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mm gate", description=__doc__.split("\n\n")[0], epilog=EXIT_HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
