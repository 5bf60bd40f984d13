"""Queue-position models: how much displayed size is still ahead of our resting order.

Same families as hftbacktest's ``models/queue.rs`` (read for reference, written anew here):

- :data:`RISK_AVERSE`: the queue ahead shrinks only by trades at our price, and never exceeds the
  level's displayed size (a size decrease from a cancel is assumed to be *behind* us);
- probabilistic: a size decrease not explained by trades is split between ahead and behind with
  ``p = f(back) / (f(back) + f(front))`` (:data:`POWER`, :data:`LOG`), ``f(back) / f(back + front)``
  (:data:`POWER2`, :data:`LOG2`) or ``1 - f(front / (front + back))`` (:data:`POWER3`).

:func:`on_depth` (with :func:`prob_behind`) is jitted and tiny so the engine calls it per depth row
at our price; the model is an integer kind plus one float parameter ``n`` (the power), chosen from
config by name (:func:`queue_kind`). A model keeps two numbers per order: ``front`` (size ahead) and
``cum_trade`` (trades at our price since the last size change, so a trade and the book update it
causes are not counted twice). What a trade does to the queue (everything ahead trades first, the
rest fills us on the lot grid, our orders at one price share it) is written out in the engine's
loop (:mod:`mm_core.backtest.engine_core`); ``tests/test_backtest_queue_engine.py`` checks the
models through the engine's run path.
"""

from __future__ import annotations

import math

from numba import njit

RISK_AVERSE = 0
POWER = 1
LOG = 2
POWER2 = 3
LOG2 = 4
POWER3 = 5

NAMES = {"risk_averse": RISK_AVERSE, "power": POWER, "log": LOG, "power2": POWER2, "log2": LOG2,
         "power3": POWER3}


def queue_kind(name: str) -> int:
    """Model id for a config name; errors list the valid names."""
    try:
        return NAMES[name]
    except KeyError:
        raise ValueError(f"unknown queue model {name!r}; choose one of {', '.join(NAMES)}") from None


@njit(cache=True)
def prob_behind(kind, n, front, back):
    """Probability that a size decrease at our level happened behind our order."""
    if front < 0.0:
        front = 0.0
    if back < 0.0:
        back = 0.0
    if kind == POWER:
        fb = back ** n
        den = fb + front ** n
    elif kind == LOG:
        fb = math.log1p(back)
        den = fb + math.log1p(front)
    elif kind == POWER2:
        fb = back ** n
        den = (back + front) ** n
    elif kind == LOG2:
        fb = math.log1p(back)
        den = math.log1p(back + front)
    elif kind == POWER3:
        tot = front + back
        if tot <= 0.0:
            return 1.0
        return 1.0 - (front / tot) ** n
    else:
        return 1.0
    if den <= 0.0:
        return 1.0
    p = fb / den
    if math.isinf(p) or math.isnan(p):
        return 1.0
    return p


@njit(cache=True)
def on_depth(kind, n, front, cum_trade, prev_qty, new_qty):
    """Displayed size at our price went ``prev_qty -> new_qty``. Returns (front, cum_trade)."""
    if kind == RISK_AVERSE:
        return min(front, new_qty), 0.0
    chg = prev_qty - new_qty - cum_trade  # decrease not already explained by trades
    if chg < 0.0:  # an increase joins behind us
        return min(front, new_qty), 0.0
    back = prev_qty - front
    p = prob_behind(kind, n, front, back)
    est = front - (1.0 - p) * chg + min(back - p * chg, 0.0)
    return min(est, new_qty), 0.0

