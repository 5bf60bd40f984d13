"""Kraken's per-pair order rate counter (docs.kraken.com ratelimits; kraken-protocol.md section 4).

Every add/amend/cancel raises a per-pair counter that decays linearly at the tier's rate; a request
that would take it above the tier's threshold is rejected with ``EOrder:Rate limit exceeded``.
Cancelling a young order costs most (+8 under 5 s), which is exactly what naive quote churn does:
cancel-and-replace every 100 ms would be throttled live within seconds, so it is throttled here.

The counter is two floats (value, time of last update) kept by the exchange side
(:mod:`mm_core.backtest.matching`); an add costs +1 (added inline), :func:`cancel_cost` and
:func:`amend_cost` price a cancel and an amend by the order's age, :func:`decayed` is the decay.
Rejected requests do not raise the counter. The strategy's requote rules budget the same costs
against their own estimate of the counter (:mod:`mm_core.strategy.requote`).
"""

from __future__ import annotations

from dataclasses import dataclass

from numba import njit

_S = 1_000_000_000


@dataclass(frozen=True)
class RateTier:
    """Threshold and decay (per second) of one Kraken verification tier."""

    name: str
    threshold: float
    decay_per_s: float


TIERS = {
    "starter": RateTier("starter", 60.0, 1.0),
    "intermediate": RateTier("intermediate", 125.0, 2.34),
    "pro": RateTier("pro", 180.0, 3.75),
    "off": RateTier("off", float("inf"), 0.0),
}


def rate_tier(name: str) -> RateTier:
    try:
        return TIERS[name]
    except KeyError:
        raise ValueError(f"unknown rate tier {name!r}; choose one of {', '.join(TIERS)}") from None


@njit(cache=True)
def decayed(value, last_ts, now_ts, decay_per_s):
    """Counter value at ``now_ts`` after linear decay since ``last_ts`` (never below 0)."""
    v = value - decay_per_s * (now_ts - last_ts) / _S
    return v if v > 0.0 else 0.0


@njit(cache=True)
def cancel_cost(age_ns):
    """+8/+6/+5/+4/+2/+1 for orders younger than 5/10/15/45/90/300 s; 0 after."""
    s = age_ns / _S
    if s < 5.0:
        return 8.0
    if s < 10.0:
        return 6.0
    if s < 15.0:
        return 5.0
    if s < 45.0:
        return 4.0
    if s < 90.0:
        return 2.0
    if s < 300.0:
        return 1.0
    return 0.0


@njit(cache=True)
def amend_cost(age_ns):
    """+1 plus +3/+2/+1 for orders younger than 5/10/15 s (an amend is cheaper than cancel + new)."""
    s = age_ns / _S
    if s < 5.0:
        return 4.0
    if s < 10.0:
        return 3.0
    if s < 15.0:
        return 2.0
    return 1.0
