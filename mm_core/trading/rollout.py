"""``mm rollout-check RUN_DIR...``: the Phase 5 go/no-go on recorded paper/live sessions.

The user's plan: "stable live operation for 2+ weeks; acceptable adverse-selection profile in
volatile sessions". Every bound comes from the config's ``[rollout]`` section (chosen before any
session was seen; the comments there say why). Checks, each with its value and threshold:

- ``sessions``: every directory is a paper or live trading session (a backtest is not operation);
- ``days_of_operation``: recorded session time, in days, >= ``min_days``;
- ``stable_days``: days (UTC, counted by the share of each day the sessions cover) with uptime >=
  ``min_uptime_share``, no incident left unreviewed and no risk breach, >= ``min_days``;
- ``uptime_share``: connected time / session time over all sessions (from each ``events.jsonl``'s
  connects and disconnects, else ``summary.json`` ``uptime_share``);
- ``unreviewed_incidents``: open incidents (after scanning each event log) <= ``max_open_incidents``;
- ``risk_breaches``: the sessions' ``summary.json`` ``risk_breaches`` plus risk-breach incidents
  <= ``max_risk_breaches``;
- ``adverse_selection_volatile``: in the ``volatile_bucket`` of ``mm tca``, the pessimistic end of
  the 95 % interval of the mean ``adverse_horizon_s`` adverse selection (bp, vs the fair mid) >=
  ``-max_adverse_bps_volatile``, on at least ``min_fills_volatile`` fills;
- ``backtest_agreement``: per session, ``mm reconcile-day`` (``reconcile-day.json``): the mean
  ``markout_horizon_s`` markout of the session and of its backtest replay within
  ``max_markout_diff_bps``, and ``fill_match_rate`` >= ``min_fill_match_rate``.

A check that cannot be measured fails and says why ("not measured: ..."): the tool says PROCEED
only on evidence. Exit codes: 0 = PROCEED, 1 = NOT YET, 2 = unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from mm_core.gate import GateCheck, NOT_MEASURED
from mm_core.trading.session_dir import RECONCILE_NAME, SessionError, load_session, read_session_info

PROCEED, NOT_YET = "PROCEED", "NOT YET"
GROUP = "phase 5"
_S = 1_000_000_000
_DAY = 86_400 * _S


@dataclass
class RolloutResult:
    decision: str
    checks: list[GateCheck]
    thresholds: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        from mm_core.quality import jsonable

        return jsonable({"decision": self.decision, "run_dirs": self.run_dirs,
                         "checks": [c.to_dict() for c in self.checks], "failed": [c.name for c in self.failed],
                         "thresholds": self.thresholds, "notes": self.notes})


def _nm(name: str, threshold: str, why: str) -> GateCheck:
    return GateCheck(name, GROUP, None, threshold, False, f"{NOT_MEASURED}: {why}")


def connected_intervals(events: Sequence[dict[str, Any]], start: int, end: int) -> list[tuple[int, int]]:
    """Connected spans inside [start, end] from connect/disconnect events (connected at start if the
    first connection event is a disconnect)."""
    evs = sorted((int(e["ts_capture"]), e["kind"]) for e in events
                 if e.get("kind") in ("connected", "disconnected") and isinstance(e.get("ts_capture"), int))
    out: list[tuple[int, int]] = []
    up_since: Optional[int] = start if evs and evs[0][1] == "disconnected" else None
    for t, k in evs:
        t = min(max(t, start), end)
        if k == "connected" and up_since is None:
            up_since = t
        elif k == "disconnected" and up_since is not None:
            out.append((up_since, t))
            up_since = None
    if up_since is not None:
        out.append((up_since, end))
    return [(a, b) for a, b in out if b > a]


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


@dataclass
class _SessionDays:
    """Per UTC day: covered ns, connected ns, open incidents opened that day, breaches that day."""

    covered: dict[int, int] = field(default_factory=dict)
    connected: dict[int, int] = field(default_factory=dict)
    open_incidents: dict[int, int] = field(default_factory=dict)
    breaches: dict[int, int] = field(default_factory=dict)


def evaluate_rollout(run_dirs: Sequence[str | Path], config: Any = None, *, tca: bool = True) -> RolloutResult:
    """Every Phase 5 check over ``run_dirs``. Raises SessionError for a directory that is not a session."""
    from mm_core.capture.layout import read_events, read_summary
    from mm_core.config import RuntimeConfig, load_config
    from mm_core.trading.incidents import RISK_BREACH, IncidentStore, ScanSettings, scan_event_log

    cfg = config if isinstance(config, RuntimeConfig) else load_config(config)
    r = cfg.rollout
    th = {k: getattr(r, k) for k in r.__struct_fields__}
    notes: list[str] = []
    infos = [(Path(d), read_session_info(Path(d))) for d in run_dirs]
    checks: list[GateCheck] = []

    sources = [i.get("source") for _, i in infos]
    bad = [str(d) for d, i in infos if i.get("source") not in ("paper", "live")]
    checks.append(GateCheck("sessions", GROUP, ",".join(str(s) for s in sources), "paper or live sessions",
                            not bad, (f"not operation (backtest): {', '.join(bad)}" if bad else
                                      f"{len(infos)} session(s): " + ", ".join(f"{s}" for s in sources))))

    days = _SessionDays()
    total_ns = connected_ns = 0
    breaches_total = 0
    breach_known = True
    open_total = 0
    scan = ScanSettings.from_config(cfg)
    for d, info in infos:
        start, end = int(info.get("started_ns") or 0), int(info.get("ended_ns") or 0)
        if end <= start:
            notes.append(f"{d}: session.json has no time span (started_ns/ended_ns)")
            continue
        total_ns += end - start
        events = read_events(d)
        summary = read_summary(d) or {}
        if any(e.get("kind") in ("connected", "disconnected") for e in events):
            spans = connected_intervals(events, start, end)
        elif isinstance(summary.get("uptime_share"), (int, float)):
            u = float(summary["uptime_share"])
            spans = [(start, start + int(u * (end - start)))]
            notes.append(f"{d}: no connection events; uptime {u:.4f} from summary.json spread over the session")
        else:
            spans = []
            notes.append(f"{d}: neither connection events nor summary uptime_share: counted as not connected")
        connected_ns += sum(b - a for a, b in spans)
        for day in range(start // _DAY, (end - 1) // _DAY + 1):
            d0, d1 = day * _DAY, (day + 1) * _DAY
            days.covered[day] = days.covered.get(day, 0) + _overlap(start, end, d0, d1)
            days.connected[day] = days.connected.get(day, 0) + sum(_overlap(a, b, d0, d1) for a, b in spans)
        if (d / "events.jsonl").is_file():
            scan_event_log(d, scan)
        for inc in IncidentStore(d).incidents():
            if inc.is_open:
                open_total += 1
                days.open_incidents[inc.t_ns // _DAY] = days.open_incidents.get(inc.t_ns // _DAY, 0) + 1
            if inc.kind == RISK_BREACH:
                breaches_total += 1
                days.breaches[inc.t_ns // _DAY] = days.breaches.get(inc.t_ns // _DAY, 0) + 1
        rb = summary.get("risk_breaches")
        if isinstance(rb, int):
            breaches_total += rb
            if rb:
                days.breaches[(end - 1) // _DAY] = days.breaches.get((end - 1) // _DAY, 0) + rb
        else:
            breach_known = False
            notes.append(f"{d}: summary.json has no risk_breaches count")

    op_days = total_ns / _DAY
    checks.append(GateCheck("days_of_operation", GROUP, op_days, f">= {r.min_days:g} days", op_days >= r.min_days,
                            f"{op_days:.3f} days of session time recorded; the plan needs {r.min_days:g} "
                            "(stable live operation for 2+ weeks)", "days"))
    stable = 0.0
    unstable: list[str] = []
    for day in sorted(days.covered):
        cov = days.covered[day]
        if cov <= 0:
            continue
        up = days.connected.get(day, 0) / cov
        why = []
        if up < r.min_uptime_share:
            why.append(f"uptime {up:.4f}")
        if days.open_incidents.get(day):
            why.append(f"{days.open_incidents[day]} unreviewed incident(s)")
        if days.breaches.get(day):
            why.append(f"{days.breaches[day]} risk breach(es)")
        if why:
            unstable.append(f"{_date(day)}: " + ", ".join(why))
        else:
            stable += cov / _DAY
    checks.append(GateCheck("stable_days", GROUP, stable, f">= {r.min_days:g} days", stable >= r.min_days,
                            f"{stable:.3f} stable days" + (f"; unstable: {'; '.join(unstable[:5])}" if unstable else ""),
                            "days"))
    if total_ns:
        u = connected_ns / total_ns
        checks.append(GateCheck("uptime_share", GROUP, u, f">= {r.min_uptime_share:g}", u >= r.min_uptime_share,
                                f"connected {connected_ns / 1e9:.0f} s of {total_ns / 1e9:.0f} s"))
    else:
        checks.append(_nm("uptime_share", f">= {r.min_uptime_share:g}", "no session time span"))
    checks.append(GateCheck("unreviewed_incidents", GROUP, open_total, f"<= {r.max_open_incidents}",
                            open_total <= r.max_open_incidents,
                            f"{open_total} open incident(s): close each with `mm incidents close RUN_DIR ID "
                            "--cause ... --action ...`" if open_total else "every incident closed with cause and action"))
    if breach_known:
        checks.append(GateCheck("risk_breaches", GROUP, breaches_total, f"<= {r.max_risk_breaches}",
                                breaches_total <= r.max_risk_breaches, "summary.json risk_breaches + risk-breach incidents"))
    else:
        checks.append(_nm("risk_breaches", f"<= {r.max_risk_breaches}", "a session's summary.json has no risk_breaches"))
    checks.append(_adverse_check(infos, cfg) if tca else _nm("adverse_selection_volatile", "", "skipped (--no-tca)"))
    checks.append(_agreement_check(infos, r))
    decision = PROCEED if all(c.passed for c in checks) else NOT_YET
    return RolloutResult(decision, checks, th, notes, [str(d) for d, _ in infos])


def _date(day: int) -> str:
    from mm_core.quality import iso_ns

    return iso_ns(day * _DAY)[:10]


def _adverse_check(infos, cfg) -> GateCheck:
    from mm_core.trading.tca import TcaSettings, analyse, hkey

    r = cfg.rollout
    h = hkey(r.adverse_horizon_s)
    t = f">= -{r.max_adverse_bps_volatile:g} bp (95% CI low end, {h}, n >= {r.min_fills_volatile})"
    try:
        res = analyse([load_session(d) for d, _ in infos], TcaSettings.from_config(cfg))
    except SessionError as exc:
        return _nm("adverse_selection_volatile", t, str(exc))
    g = res.groups.get("vol_bucket", {}).get(r.volatile_bucket)
    if g is None or not g.get("fills"):
        return _nm("adverse_selection_volatile", t, f"no fills in vol bucket {r.volatile_bucket!r} "
                                                  f"(buckets: {', '.join(res.vol_bucket_names)})")
    a = g["adverse_selection"][h]["fair"]
    if a["ci"] is None:
        return GateCheck("adverse_selection_volatile", GROUP, a["mean"], t, False,
                         f"{NOT_MEASURED}: {a['n']} fills in {a['clusters']} clusters: too few for an interval", "bp")
    lo = a["ci"][0]
    ok = lo >= -r.max_adverse_bps_volatile and a["n"] >= r.min_fills_volatile
    return GateCheck("adverse_selection_volatile", GROUP, a["mean"], t, ok,
                     f"mean {a['mean']:+.3f} bp, 95% CI [{a['ci'][0]:+.3f}, {a['ci'][1]:+.3f}], {a['n']} fills in "
                     f"{a['clusters']} clusters, vol bucket {r.volatile_bucket!r} (edges "
                     + ", ".join(f"{e:.3f}" for e in res.vol_edges_bp) + " bp/sqrt(s))"
                     + ("" if a["n"] >= r.min_fills_volatile else f"; fewer than {r.min_fills_volatile} fills"), "bp")


def _agreement_check(infos, r) -> GateCheck:
    from mm_core.trading.tca import hkey

    h = hkey(r.markout_horizon_s)
    t = f"|{h} markout diff| <= {r.max_markout_diff_bps:g} bp, fill match >= {r.min_fill_match_rate:g}"
    worst_diff, worst_rate, details = 0.0, 1.0, []
    for d, _ in infos:
        p = d / RECONCILE_NAME
        if not p.is_file():
            return _nm("backtest_agreement", t, f"{d}: no {RECONCILE_NAME}: run `mm reconcile-day {d}`")
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
            diff = rec["markouts"][h]["diff"]
            rate = float(rec["fills"]["fill_match_rate"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return _nm("backtest_agreement", t, f"{p}: unreadable ({exc})")
        if diff is None:
            return _nm("backtest_agreement", t, f"{p}: no {h} markout on one side")
        worst_diff = max(worst_diff, abs(float(diff)))
        worst_rate = min(worst_rate, rate)
        details.append(f"{d.name}: diff {float(diff):+.3f} bp, match {rate:.3f}")
    ok = worst_diff <= r.max_markout_diff_bps and worst_rate >= r.min_fill_match_rate
    return GateCheck("backtest_agreement", GROUP, worst_diff, t, ok,
                     f"worst |diff| {worst_diff:.3f} bp, worst fill match {worst_rate:.3f}; " + "; ".join(details)[:300],
                     "bp")


def format_rollout(res: RolloutResult) -> str:
    from mm_core.quality import format_table

    def val(c: GateCheck) -> str:
        if c.value is None:
            return "-"
        if isinstance(c.value, float):
            return f"{c.value:.3f}" + (f" {c.unit}" if c.unit else "")
        return str(c.value)

    out = [f"Phase 5 rollout check over {len(res.run_dirs)} session(s)",
           format_table(("CHECK", "MEASURED", "THRESHOLD", "VERDICT", "DETAIL"),
                        [(c.name, val(c), c.threshold, "PASS" if c.passed else "FAIL", c.detail) for c in res.checks],
                        max_last=130)]
    out += [f"note: {n}" for n in res.notes]
    failed = res.failed
    out.append(f"DECISION: {res.decision}" + (f" ({len(failed)} of {len(res.checks)} checks failed: "
                                              f"{', '.join(c.name for c in failed)})" if failed else
                                              f" (all {len(res.checks)} checks passed)"))
    return "\n".join(out)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("rollout-check", help="Phase 5 go/no-go on recorded sessions (PROCEED / NOT YET)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="exit codes: 0 PROCEED, 1 NOT YET, 2 unreadable input")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="paper/live session directories")
    p.add_argument("--config", help="runtime config with the [rollout] bounds (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print one JSON object (decision, checks)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_core.config import ConfigError

    try:
        res = evaluate_rollout(args.run_dirs, args.config)
    except (SessionError, ConfigError) as exc:
        print(f"mm rollout-check: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res.to_dict()) if args.json else format_rollout(res))
    return 0 if res.decision == PROCEED else 1
