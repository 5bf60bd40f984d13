"""Queue-position models: how much displayed size is still ahead of our resting order.

Same families as hftbacktest's ``models/queue.rs`` (read for reference, written anew here):

- :data:`RISK_AVERSE`: the queue ahead shrinks only by trades at our price, and never exceeds the
  level's displayed size (a size decrease from a cancel is assumed to be *behind* us);
- probabilistic: a size decrease not explained by trades is split between ahead and behind with
  ``p = f(back) / (f(back) + f(front))`` (:data:`POWER`, :data:`LOG`), ``f(back) / f(back + front)``
  (:data:`POWER2`, :data:`LOG2`) or ``1 - f(front / (front + back))`` (:data:`POWER3`).

Each function is jitted and tiny so the engine calls it per row; the model is an integer kind plus
one float parameter ``n`` (the power), chosen from config by name (:func:`queue_kind`). A model
keeps two numbers per order: ``front`` (size ahead) and ``cum_trade`` (trades at our price since
the last size change, so a trade and the book update it causes are not counted twice).
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
def on_trade(front, cum_trade, qty):
    """A trade of ``qty`` at our price: everything ahead trades first. Returns (front, cum_trade)."""
    return front - qty, cum_trade + qty


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


@njit(cache=True)
def filled_qty(front, lot):
    """Size of ours that trades have reached (front went negative), on the lot grid."""
    if front < 0.0 and round(front / lot) < 0:
        return math.floor(-front / lot + 1e-9) * lot
    return 0.0
