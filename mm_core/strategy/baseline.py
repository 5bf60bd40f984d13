"""``baseline``: symmetric half-spread around the fair mid, linear inventory skew, max inventory.

The reservation price moves against inventory: ``res = fair * (1 - skew_bps/1e4 * pos / max_inv)``,
so at +max inventory both quotes sit ``skew_bps`` lower (selling is easier, buying harder). Quotes
are ``res -/+ fair * half_spread_bps / 1e4`` (times the regimes' width multiplier); the pipeline
rounds them outwards to the tick and keeps them post-only. The side that would grow inventory past
``max_inventory`` is sized down to what is left, and dropped at the limit; the size is
``size`` times the regimes' size multiplier.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from numba import njit

from mm_core.strategy.view import (N_O, N_Q, N_V, Q_ASK_PX, Q_ASK_QTY, Q_BID_PX, Q_BID_QTY, Q_REASON, R_INVENTORY,
                                   R_QUOTE, V_FAIR, V_POSITION, V_SIZE_MULT, V_WIDTH_MULT)

NAME = "baseline"
STATE_SIZE = 0


@dataclass(frozen=True)
class Params:
    half_spread_bps: float = 2.0
    size: float = 0.001  # base units per quote
    skew_bps: float = 2.0  # reservation shift at max inventory
    max_inventory: float = 0.01  # base units, absolute (the strategy's own; risk has a hard one)
    fair: str = "mid"

    def __post_init__(self) -> None:
        problems = []
        if self.half_spread_bps < 0:
            problems.append("half_spread_bps must be >= 0")
        if self.size <= 0:
            problems.append("size must be > 0")
        if self.max_inventory <= 0:
            problems.append("max_inventory must be > 0")
        if problems:
            raise ValueError("[strategy.baseline]: " + "; ".join(problems))

    @classmethod
    def from_config(cls, d: dict) -> "Params":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"[strategy.baseline]: unknown key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        return cls(**d)

    def vector(self) -> np.ndarray:
        return np.array([self.half_spread_bps, self.size, self.skew_bps, self.max_inventory], np.float64)

    def describe(self) -> dict[str, object]:
        return asdict(self)


@njit(cache=True)
def decide(t_ns, params, state, view, orders, n_orders, out):
    """The quote wish of the baseline strategy (see the module docstring)."""
    fair = view[V_FAIR]
    position = view[V_POSITION]
    half_spread_bps = params[0] * view[V_WIDTH_MULT]
    size = params[1] * view[V_SIZE_MULT]
    skew_bps = params[2]
    max_inv = params[3]
    res = fair * (1.0 - skew_bps * 1e-4 * position / max_inv)
    hs = fair * half_spread_bps * 1e-4
    out[Q_BID_PX] = res - hs
    out[Q_ASK_PX] = res + hs
    room_buy = max_inv - position
    room_sell = max_inv + position
    bid_qty = size if size < room_buy else room_buy
    ask_qty = size if size < room_sell else room_sell
    out[Q_BID_QTY] = bid_qty if bid_qty > 0.0 else 0.0
    out[Q_ASK_QTY] = ask_qty if ask_qty > 0.0 else 0.0
    out[Q_REASON] = R_INVENTORY if (bid_qty < size or ask_qty < size) else R_QUOTE


@njit(cache=True)
def quote_ticks(params, fair, best_bid_tick, best_ask_tick, position, tick_size):
    """``(bid_tick, bid_qty, ask_tick, ask_qty)`` of :func:`decide` rounded as the pipeline rounds
    (outwards, post-only against the book) with neutral regimes: for loops outside the pipeline
    (the hftbacktest side of ``bench/bench_backtest.py`` runs the same decision)."""
    view = np.zeros(N_V, np.float64)
    out = np.zeros(N_Q, np.float64)
    view[V_FAIR] = fair
    view[V_POSITION] = position
    view[V_WIDTH_MULT] = 1.0
    view[V_SIZE_MULT] = 1.0
    decide(np.int64(0), params, np.zeros(0, np.float64), view, np.zeros((0, N_O), np.float64), 0, out)
    bid_tick = np.int64(math.floor(out[Q_BID_PX] / tick_size + 1e-9))
    ask_tick = np.int64(math.ceil(out[Q_ASK_PX] / tick_size - 1e-9))
    if bid_tick >= best_ask_tick:
        bid_tick = best_ask_tick - 1
    if ask_tick <= best_bid_tick:
        ask_tick = best_bid_tick + 1
    return bid_tick, out[Q_BID_QTY], ask_tick, out[Q_ASK_QTY]
