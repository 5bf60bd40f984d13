"""The one jitted entry point the engine calls: ``quote(kind, params, ...)`` -> quote target.

Adding a policy: a new id in :mod:`mm_core.policy.kinds`, its kernel in its own module, and one
branch below. The engine's loop is compiled against this dispatcher only, so it stays cacheable.
"""

from __future__ import annotations

from numba import njit

from mm_core.policy.baseline import baseline_quote
from mm_core.policy.kinds import BASELINE, SCRIPTED
from mm_core.policy.scripted import scripted_quote

__all__ = ["quote", "BASELINE", "SCRIPTED"]


@njit(cache=True)
def quote(kind, params, now, fair, best_bid_tick, best_ask_tick, position, tick_size):
    """``(bid_tick, bid_qty, ask_tick, ask_qty)`` for policy ``kind`` (qty 0 = no quote)."""
    if kind == SCRIPTED:
        return scripted_quote(params, now)
    return baseline_quote(params, fair, best_bid_tick, best_ask_tick, position, tick_size)
