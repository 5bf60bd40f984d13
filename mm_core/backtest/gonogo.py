"""The Phase-4 go/no-go figures of one backtest, recomputed from what happened -- not from what the
risk step believed.

- ``risk_breaches``: instants a hard limit was exceeded, checked on the exchange's record: the true
  position after every fill against ``max_inventory``, every order's size and value against
  ``max_order_qty`` / ``max_notional``, and staleness -- an order sent while the data was stale, or
  a quote still not pulled (no cancel sent, not done) one decision cycle after the data went stale.
  Stale intervals come from the feed timeline (:func:`mm_core.backtest.feed_health.stale_intervals`),
  not from the engine's risk state, so a pipeline that failed to notice is caught.
- ``quotes_while_stale_ms``: time our orders rested at the exchange while the data was stale
  (a pull takes the entry latency to arrive, so this is small but not zero).
- ``regime_transitions`` per machine, ``regime_flaps`` (a transition undone within the machine's
  dwell time), ``kill_switch_events`` (kill-switch triggers, manual kills included, also one that
  fires again while already halted; ``telemetry.halts`` counts entries into HALTED),
  ``transitions_sha256`` (digest of the transition log: the determinism check),
  ``decision_latency_us`` (p50/p99 of the in-loop decision,
  event in -> actions out, from the cycle counter), and ``telemetry``.
"""

from __future__ import annotations

import math

import numpy as np

from mm_core.backtest.feed_health import stale_intervals
from mm_core.strategy import transitions
from mm_core.strategy.view import (K_LATENCY, K_MARKET, K_TRADING, K_VOLATILITY, KIND_NAMES, L_FROM, L_KIND, L_T,
                                   L_TO, STATE_NAMES, TRADING_HALTED)

REGIME_KINDS = (K_LATENCY, K_VOLATILITY, K_MARKET, K_TRADING)
_INITIAL = {K_LATENCY: 0, K_VOLATILITY: 1, K_MARKET: 0, K_TRADING: 0}


def _dwell_ms(regimes, kind: int) -> float:
    f = getattr(regimes, "dwell_ms_for", None)
    if f is not None:
        return float(f(kind))
    return float(getattr(regimes, "dwell_ms", 0.0))


def count_flaps(log: np.ndarray, regimes) -> int:
    """Transitions of the latency or volatility regime that undo the previous one within its dwell."""
    flaps = 0
    for kind in (K_LATENCY, K_VOLATILITY):
        rows = log[log[:, L_KIND] == kind]
        dwell_ns = _dwell_ms(regimes, kind) * 1e6
        for a, b in zip(rows[:-1], rows[1:]):
            if b[L_FROM] == a[L_TO] and b[L_TO] == a[L_FROM] and b[L_T] - a[L_T] < dwell_ns:
                flaps += 1
    return flaps


def time_in_states(log: np.ndarray, start: int, end: int) -> dict[str, dict[str, float]]:
    """Seconds spent in each state of each machine over ``[start, end]``."""
    out: dict[str, dict[str, float]] = {}
    for kind in REGIME_KINDS:
        names = STATE_NAMES[kind]
        rows = log[log[:, L_KIND] == kind]
        state = int(rows[0, L_FROM]) if len(rows) else _INITIAL[kind]
        t = start
        acc = {n: 0.0 for n in names}
        for r in rows:
            tt = min(max(int(r[L_T]), start), end)
            if 0 <= state < len(names):
                acc[names[state]] += (tt - t) / 1e9
            state, t = int(r[L_TO]), tt
        if 0 <= state < len(names):
            acc[names[state]] += (end - t) / 1e9
        out[KIND_NAMES[kind]] = acc
    return out


def _overlap_ns(a: np.ndarray, b: np.ndarray, iv: list[tuple[int, int]]) -> np.ndarray:
    """Per interval [a_i, b_i): total overlap with the sorted, disjoint intervals ``iv``."""
    out = np.zeros(a.shape[0], np.float64)
    if not iv or a.shape[0] == 0:
        return out
    for s, e in iv:
        out += np.clip(np.minimum(b, e) - np.maximum(a, s), 0, None)
    return out


def _inside(t: np.ndarray, iv: list[tuple[int, int]]) -> np.ndarray:
    if not iv or t.shape[0] == 0:
        return np.zeros(t.shape[0], bool)
    starts = np.array([s for s, _ in iv], np.int64)
    ends = np.array([e for _, e in iv], np.int64)
    k = np.searchsorted(starts, t, side="right") - 1
    ok = k >= 0
    res = np.zeros(t.shape[0], bool)
    res[ok] = t[ok] < ends[k[ok]]
    return res


def breaches(result, stale: list[tuple[int, int]]) -> dict[str, int]:
    """Hard-limit breaches by kind (see the module docstring)."""
    cfg = result.config
    risk = cfg.risk
    lot = cfg.rules.lot_size
    f, o = result.fills, result.orders
    signed = np.where(f["side"] > 0, f["qty"], -f["qty"])
    pos = np.cumsum(signed)
    inv = int(np.count_nonzero(np.abs(pos) > float(risk.max_inventory) + 0.5 * lot))
    accepted = o["arrive_exch_ts"] >= 0
    qty_b = int(np.count_nonzero(o["qty"] > float(risk.max_order_qty) + 0.5 * lot))
    notional = o["qty"] * o["price"]
    not_b = int(np.count_nonzero(notional > float(risk.max_notional) * (1 + 1e-12) + 1e-9))
    # staleness: sent while stale, or not pulled within one decision cycle of the data going stale
    sent_stale = int(np.count_nonzero(_inside(o["submit_local_ts"], stale)))
    cycle = int(round(cfg.requote_ms * 1e6))
    late = 0
    sub, canc, done = o["submit_local_ts"], o["cancel_sent_local_ts"], o["done_exch_ts"]
    for s, _ in stale:
        live = accepted & (sub < s) & ((done < 0) | (done > s))
        deadline = s + cycle
        not_pulled = live & ((canc < 0) | (canc > deadline)) & ((done < 0) | (done > deadline))
        late += int(np.count_nonzero(not_pulled))
    return {"inventory": inv, "order_qty": qty_b, "notional": not_b, "sent_while_stale": sent_stale,
            "not_pulled_in_time": late}


def evaluate(result) -> dict[str, object]:
    """The go/no-go keys for ``mm backtest --json`` (see the module docstring)."""
    cfg = result.config
    log = result.log
    start, end = result.span
    tl = result.timeline
    stale = stale_intervals(tl, float(cfg.risk.max_staleness_ms), start, end) if tl is not None else []
    o = result.orders
    arrive, done = o["arrive_exch_ts"], o["done_exch_ts"]
    accepted = arrive >= 0
    rest_end = np.where(done >= 0, done, end)
    rested = _overlap_ns(arrive[accepted], np.maximum(rest_end[accepted], arrive[accepted]), stale)
    br = breaches(result, stale)
    trans = {KIND_NAMES[k]: int(np.count_nonzero(log[:, L_KIND] == k)) for k in REGIME_KINDS}
    d = np.asarray(result.decision_ns, np.float64)
    lat = ({"p50": float(np.percentile(d, 50)) / 1e3, "p99": float(np.percentile(d, 99)) / 1e3,
            "samples": int(d.size)} if d.size else {"p50": None, "p99": None, "samples": 0})
    c = result.counters
    span_s = max((end - start) / 1e9, 1e-9)
    causes: dict[str, int] = {}
    recs = transitions.records(log, log.shape[0])
    for r in recs:
        if r["kind"] in ("trading", "risk"):
            causes[r["cause"]] = causes.get(r["cause"], 0) + 1
    hist_edges = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]
    hist = np.histogram(d / 1e3, bins=[0, *hist_edges, math.inf])[0].tolist() if d.size else []
    return {
        "strategy": cfg.strategy.NAME,
        "regime_transitions": trans,
        "regime_flaps": count_flaps(log, cfg.regimes),
        "risk_breaches": int(sum(br.values())),
        "kill_switch_events": transitions.kill_switch_events(log, log.shape[0]),
        "quotes_while_stale_ms": float(rested.sum() / 1e6),
        "decision_latency_us": lat,
        "transitions_sha256": transitions.digest(log, log.shape[0]),
        "telemetry": {
            "decisions": c["requotes"],
            "decisions_by_trigger": {"timer": c["timer_decisions"], "feed_status": c["status_decisions"],
                                     "staleness_deadline": c["deadline_decisions"]},
            "quote_changes_per_s": c["quote_changes"] / span_s,
            "orders_new": c["orders_sent"], "orders_amend": c["amends_sent"], "orders_cancel": c["cancels_sent"],
            "risk_pulls": c["risk_pulls"], "stale_decisions": c["stale_decisions"],
            "time_in_regime_s": time_in_states(log, start, end),
            "risk_triggers": causes,
            "halts": int(np.count_nonzero((log[:, L_KIND] == K_TRADING) & (log[:, L_TO] == TRADING_HALTED)
                                          & (log[:, L_FROM] != TRADING_HALTED))),
            "risk_breaches_by_kind": br,
            "stale_intervals": len(stale),
            "stale_ms": float(sum(b - a for a, b in stale) / 1e6),
            "transitions_logged": int(log.shape[0]),
            "decision_latency_hist_us": {"edges": hist_edges, "counts": hist},
            "last_transitions": recs[-5:],
        },
    }
