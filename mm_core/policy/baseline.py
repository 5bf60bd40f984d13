"""Baseline quoting: symmetric half-spread around the fair mid, linear inventory skew, max inventory.

The reservation price moves against inventory: ``res = fair * (1 - skew_bps/1e4 * pos / max_inv)``,
so at +max inventory both quotes sit ``skew_bps`` lower (selling is easier, buying harder). Quotes
are ``res -/+ fair * half_spread_bps / 1e4`` rounded outwards to the tick, never crossing the best
price on the other side (they are post-only). The side that would grow inventory past ``max_inv``
is sized down to what is left, and dropped at the limit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from mm_core.policy.kinds import BASELINE


@dataclass(frozen=True)
class BaselinePolicy:
    half_spread_bps: float = 2.0
    size: float = 0.001  # base units per quote
    skew_bps: float = 2.0  # reservation shift at max inventory
    max_inventory: float = 0.01  # base units, absolute
    fair: str = "mid"

    kind: int = BASELINE

    def __post_init__(self) -> None:
        problems = []
        if self.half_spread_bps < 0:
            problems.append("half_spread_bps must be >= 0")
        if self.size <= 0:
            problems.append("size must be > 0")
        if self.max_inventory <= 0:
            problems.append("max_inventory must be > 0")
        if problems:
            raise ValueError("BaselinePolicy: " + "; ".join(problems))

    def params(self) -> np.ndarray:
        return np.array([self.half_spread_bps, self.size, self.skew_bps, self.max_inventory], np.float64)

    def describe(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("kind")
        return {"policy": "baseline", **d}


@njit(cache=True)
def baseline_quote(params, fair, best_bid_tick, best_ask_tick, position, tick_size):
    """Quote target for the baseline policy (see module docstring)."""
    half_spread_bps = params[0]
    size = params[1]
    skew_bps = params[2]
    max_inv = params[3]
    res = fair * (1.0 - skew_bps * 1e-4 * position / max_inv)
    hs = fair * half_spread_bps * 1e-4
    bid_tick = np.int64(math.floor((res - hs) / tick_size + 1e-9))
    ask_tick = np.int64(math.ceil((res + hs) / tick_size - 1e-9))
    if bid_tick >= best_ask_tick:
        bid_tick = best_ask_tick - 1
    if ask_tick <= best_bid_tick:
        ask_tick = best_bid_tick + 1
    room_buy = max_inv - position
    room_sell = max_inv + position
    bid_qty = size if size < room_buy else room_buy
    ask_qty = size if size < room_sell else room_sell
    if bid_qty < 0.0:
        bid_qty = 0.0
    if ask_qty < 0.0:
        ask_qty = 0.0
    return bid_tick, bid_qty, ask_tick, ask_qty
