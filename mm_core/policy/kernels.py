"""The one jitted entry point the engine calls: ``quote(kind, params, ...)`` -> quote target.

Adding a policy: a new id in :mod:`mm_core.policy.kinds`, its kernel in its own module, one branch
below, and the same branch in the backtest loop (``mm_core.backtest.engine_core``): the loop calls
the kernels directly, compiled once per policy kind (``run_core_for``), so a cold run compiles only
the configured kernel; this dispatcher compiles all of them.
"""

from __future__ import annotations

from numba import njit

from mm_core.policy.baseline import baseline_quote
from mm_core.policy.kinds import BASELINE, SCRIPTED
from mm_core.policy.scripted import scripted_quote

__all__ = ["quote", "baseline_quote", "scripted_quote", "BASELINE", "SCRIPTED"]


@njit(cache=True)
def quote(kind, params, now, fair, best_bid_tick, best_ask_tick, position, tick_size):
    """``(bid_tick, bid_qty, ask_tick, ask_qty)`` for policy ``kind`` (qty 0 = no quote)."""
    if kind == SCRIPTED:
        return scripted_quote(params, now)
    return baseline_quote(params, fair, best_bid_tick, best_ask_tick, position, tick_size)
