"""Scripted quote targets: a fixed schedule instead of a decision rule.

For known-answer tests and for replaying a live session's quotes: from local time ``t_i`` on, the
target is row ``i`` (prices in ticks, qty 0 = no quote). Before the first row there is no quote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from mm_core.policy.kinds import SCRIPTED


@dataclass(frozen=True)
class ScriptedQuotes:
    rows: tuple[tuple[int, int, float, int, float], ...] = field(default_factory=tuple)
    """``(local_ts_ns, bid_tick, bid_qty, ask_tick, ask_qty)``, sorted by time."""

    fair: str = "mid"
    kind: int = SCRIPTED

    def params(self) -> np.ndarray:
        rows = sorted(self.rows)
        out = np.zeros(1 + 5 * len(rows), np.float64)
        out[0] = len(rows)
        for i, r in enumerate(rows):
            out[1 + 5 * i: 6 + 5 * i] = r
        return out

    def describe(self) -> dict[str, object]:
        return {"policy": "scripted", "rows": len(self.rows)}


@njit(cache=True)
def scripted_quote(params, now):
    """The last scheduled row at or before ``now`` (local ns)."""
    n = int(params[0])
    k = -1
    for i in range(n):
        if params[1 + 5 * i] <= now:
            k = i
        else:
            break
    if k < 0:
        return np.int64(0), 0.0, np.int64(0), 0.0
    b = 1 + 5 * k
    return np.int64(params[b + 1]), params[b + 2], np.int64(params[b + 3]), params[b + 4]
