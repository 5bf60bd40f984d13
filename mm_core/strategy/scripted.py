"""``scripted``: a fixed schedule of quote targets instead of a decision rule.

For known-answer tests and for replaying a session's quotes: from local time ``t_i`` on, the
target is row ``i`` (prices in ticks, qty 0 = no quote). Before the first row there is no quote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from mm_core.strategy.view import Q_ASK_PX, Q_ASK_QTY, Q_BID_PX, Q_BID_QTY, Q_REASON, R_SCRIPTED, V_TICK

NAME = "scripted"
STATE_SIZE = 0


@dataclass(frozen=True)
class Params:
    rows: tuple[tuple[int, int, float, int, float], ...] = field(default_factory=tuple)
    """``(local_ts_ns, bid_tick, bid_qty, ask_tick, ask_qty)``, sorted by time."""

    fair: str = "mid"

    @classmethod
    def from_config(cls, d: dict) -> "Params":
        rows = tuple(tuple(r) for r in d.get("rows", ()))
        return cls(rows=rows, **{k: v for k, v in d.items() if k != "rows"})

    def vector(self) -> np.ndarray:
        rows = sorted(self.rows)
        out = np.zeros(1 + 5 * len(rows), np.float64)
        out[0] = len(rows)
        for i, r in enumerate(rows):
            out[1 + 5 * i: 6 + 5 * i] = r
        return out

    def describe(self) -> dict[str, object]:
        return {"rows": len(self.rows), "fair": self.fair}


@njit(cache=True)
def decide(t_ns, params, state, view, orders, n_orders, out):
    """The last scheduled row at or before ``t_ns`` (local ns)."""
    n = int(params[0])
    k = -1
    for i in range(n):
        if params[1 + 5 * i] <= t_ns:
            k = i
        else:
            break
    out[Q_REASON] = R_SCRIPTED
    if k < 0:
        return
    b = 1 + 5 * k
    tick = view[V_TICK]
    out[Q_BID_PX] = params[b + 1] * tick
    out[Q_BID_QTY] = params[b + 2]
    out[Q_ASK_PX] = params[b + 3] * tick
    out[Q_ASK_QTY] = params[b + 4]
