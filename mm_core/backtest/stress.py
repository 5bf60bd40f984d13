"""Market stress: volatility-shock windows applied to recorded or simulated rows.

Inside a window every price's distance from the window's opening mid is multiplied by ``factor``
(an increasing map of ticks, so books stay uncrossed and levels keep their order); at the window's
end prices snap back -- a second, sudden move. The book pass is re-run on the stressed rows, so
both engines see a consistent book. Latency stress (x2, x5, spikes) lives in
:class:`mm_core.backtest.latency.Stressed`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mm_core.backtest.event_arrays import DEPTH, TRADE, MarketArrays, replay_best

_S = 1_000_000_000


def vol_shock(m: MarketArrays, windows: list[tuple[float, float, float]]) -> MarketArrays:
    """Rows with price moves amplified in ``(start_offset_s, duration_s, factor)`` windows."""
    tick = m.tick.copy()
    t0 = int(m.exch_ts[0])
    for start_s, dur_s, factor in windows:
        a, b = np.searchsorted(m.exch_ts, [t0 + int(start_s * _S), t0 + int((start_s + dur_s) * _S)])
        if a >= b:
            continue
        ref = (m.best_bid_tick[max(a - 1, 0)] + m.best_ask_tick[max(a - 1, 0)]) // 2
        sl = slice(a, b)
        moving = (m.kind[sl] == DEPTH) | (m.kind[sl] == TRADE)
        scaled = ref + np.rint((m.tick[sl] - ref) * factor).astype(np.int64)
        tick[sl] = np.where(moving, scaled, m.tick[sl])
    # levels that map to the same tick: keep the book sane by re-running the pass from scratch
    lo = int(tick[(m.kind == DEPTH) | (m.kind == TRADE)].min())
    hi = int(tick[(m.kind == DEPTH) | (m.kind == TRADE)].max())
    bb, ba, _, _ = replay_best(m.kind, m.side, tick, m.qty, lo, hi - lo + 1)
    return replace(m, tick=tick, price=tick * m.tick_size, best_bid_tick=bb, best_ask_tick=ba)
