"""Market stress: volatility-shock windows applied to recorded or simulated rows.

Inside a window every price's distance from the window's opening mid is multiplied by ``factor``
(an increasing map of ticks, so levels keep their order). The whole book moves: at the window's
start the book is re-sent mapped (a snapshot: both sides cleared, every level inserted at its mapped
price), rows inside the window are mapped, and at its end the true book is re-sent -- prices snap
back, a second, sudden move. (Mapping only the rows inside the window left the levels set before it
at their old prices, so the first mapped level that moved past them crossed the book for the rest
of the run.) The book pass is re-run on the stressed rows, so both engines see a consistent book.
Latency stress (x2, x5, spikes) lives in :class:`mm_core.backtest.latency.Stressed`; feed faults
(stalls, disconnects, checksum failures, maintenance) in :mod:`mm_core.backtest.feed_health`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numba import njit

from mm_core.backtest.event_arrays import CLEAR, DEPTH, TRADE, MarketArrays, replay_best

_S = 1_000_000_000


@njit(cache=True)
def _book_before(kind, side, tick, qty, lo, n_ticks, upto):
    """The dense book (bid sizes, ask sizes) after rows ``[0, upto)``."""
    bq = np.zeros(n_ticks)
    aq = np.zeros(n_ticks)
    for i in range(upto):
        if kind[i] == DEPTH:
            if side[i] > 0:
                bq[tick[i] - lo] = qty[i]
            else:
                aq[tick[i] - lo] = qty[i]
        elif kind[i] == CLEAR:
            if side[i] > 0:
                bq[:] = 0.0
            else:
                aq[:] = 0.0
    return bq, aq


def _snapshot_rows(bq, aq, lo, ref, factor, ts, cap):
    """Rows that replace the book: clear both sides, then every level (mapped around ``ref``)."""
    b = np.nonzero(bq)[0]
    a = np.nonzero(aq)[0]
    ticks = np.concatenate([b, a]) + lo
    mapped = ref + np.rint((ticks - ref) * factor).astype(np.int64)
    n = 2 + ticks.shape[0]
    return {
        "kind": np.concatenate([[CLEAR, CLEAR], np.full(ticks.shape[0], DEPTH)]).astype(np.uint8),
        "side": np.concatenate([[1, -1], np.ones(b.shape[0]), -np.ones(a.shape[0])]).astype(np.int8),
        "tick": np.concatenate([[lo, lo], mapped]).astype(np.int64),
        "qty": np.concatenate([[0.0, 0.0], bq[b], aq[a]]),
        "exch_ts": np.full(n, ts, np.int64),
        "capture_ts": np.full(n, cap, np.int64),
    }


def vol_shock(m: MarketArrays, windows: list[tuple[float, float, float]]) -> MarketArrays:
    """Rows with price moves amplified in ``(start_offset_s, duration_s, factor)`` windows."""
    cols = {k: getattr(m, k) for k in ("kind", "side", "tick", "qty", "exch_ts", "capture_ts")}
    t0 = int(m.exch_ts[0])
    lo, n_ticks = m.tick_range
    moving = (m.kind == DEPTH) | (m.kind == TRADE)
    tick = m.tick.copy()
    inserts = []  # (row index, rows) in row order
    for start_s, dur_s, factor in sorted(windows):
        a, b = np.searchsorted(m.exch_ts, [t0 + int(start_s * _S), t0 + int((start_s + dur_s) * _S)])
        if a >= b or a == 0:
            continue
        ref = (m.best_bid_tick[a - 1] + m.best_ask_tick[a - 1]) // 2
        sl = slice(a, b)
        scaled = ref + np.rint((m.tick[sl] - ref) * factor).astype(np.int64)
        tick[sl] = np.where(moving[sl], scaled, m.tick[sl])
        bq, aq = _book_before(m.kind, m.side, m.tick, m.qty, np.int64(lo), np.int64(n_ticks), np.int64(a))
        inserts.append((a, _snapshot_rows(bq, aq, lo, ref, factor, int(m.exch_ts[a]), int(m.capture_ts[a]))))
        bq, aq = _book_before(m.kind, m.side, m.tick, m.qty, np.int64(lo), np.int64(n_ticks), np.int64(b))
        end_ts = int(m.exch_ts[b]) if b < len(m) else int(m.exch_ts[-1])
        end_cap = int(m.capture_ts[b]) if b < len(m) else int(m.capture_ts[-1])
        inserts.append((b, _snapshot_rows(bq, aq, lo, ref, 1.0, end_ts, end_cap)))
    cols["tick"] = tick
    starts = np.concatenate([[True], m.msg[1:] != m.msg[:-1]])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*cols, "start")}
    prev = 0
    for at, rows in inserts:
        for k in cols:
            parts[k] += [cols[k][prev:at], rows[k]]
        parts["start"] += [starts[prev:at], np.r_[True, np.zeros(rows["kind"].shape[0] - 1, bool)]]
        prev = at
    for k in cols:
        parts[k].append(cols[k][prev:])
    parts["start"].append(starts[prev:])
    if prev < len(m) and inserts:
        parts["start"][-1] = parts["start"][-1].copy()
        parts["start"][-1][0] = True  # the row after a snapshot starts its own message
    out = {k: np.concatenate(v) for k, v in parts.items()}
    msg = np.cumsum(out.pop("start")) - 1
    t = out["tick"]
    mv = (out["kind"] == DEPTH) | (out["kind"] == TRADE)
    lo2, hi2 = int(t[mv].min()), int(t[mv].max())
    bb, ba, bbq, baq = replay_best(out["kind"], out["side"], out["tick"], out["qty"], lo2, hi2 - lo2 + 1)
    return replace(m, **out, msg=msg, price=out["tick"] * m.tick_size, best_bid_tick=bb, best_ask_tick=ba,
                   best_bid_qty=bbq, best_ask_qty=baq)
