"""A per-pair order-rate counter with age-based costs (the venue supplies the parameters).

Every add/amend/cancel raises a per-pair counter that decays linearly at the tier's rate; a request
that would take it above the tier's threshold is rejected. Cancelling or amending a young order
costs more than an old one on venues that price by age, which is exactly what naive quote churn
does: cancel-and-replace every 100 ms is throttled live within seconds, so it is throttled here.
The numbers (threshold, decay, cost by order age) are the venue's
(:class:`mm_core.adapters.base.RateCounterSpec`, from the venue rules); this module only runs them.

The counter is two floats (value, time of last update) kept by the exchange side
(:mod:`mm_core.backtest.matching`); the costs travel into jitted code as one float64 vector
(:func:`cost_vector`, layout ``C_*``): :func:`new_cost`, :func:`cancel_cost` and :func:`amend_cost`
read it at an offset (the matching engine keeps it alone, the requote rules append it to their
config vector), :func:`decayed` is the decay. Rejected requests do not raise the counter. The
strategy's requote rules budget the same costs against their own estimate of the counter
(:mod:`mm_core.strategy.requote`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from mm_core.adapters.base import RateCounterSpec

_S = 1_000_000_000

MAX_STEPS = 8  # age steps per cost table
C_NEW = 0  # cost of a new order
C_CANCEL_AFTER = 1  # cancel cost past the last age step
C_AMEND_AFTER = 2
C_N_CANCEL = 3  # age steps in use
C_N_AMEND = 4
C_CANCEL_AGE = 5  # MAX_STEPS age bounds (s), ascending, then MAX_STEPS costs
C_CANCEL_COST = C_CANCEL_AGE + MAX_STEPS
C_AMEND_AGE = C_CANCEL_COST + MAX_STEPS
C_AMEND_COST = C_AMEND_AGE + MAX_STEPS
N_C = C_AMEND_COST + MAX_STEPS


@dataclass(frozen=True)
class RateTier:
    """Threshold, decay (per second) and request costs of one tier of a venue's counter."""

    name: str
    threshold: float
    decay_per_s: float
    costs: np.ndarray  # cost_vector(spec)

    @classmethod
    def from_spec(cls, spec: RateCounterSpec) -> "RateTier":
        return cls(spec.name, float(spec.threshold), float(spec.decay_per_s), cost_vector(spec))


def cost_vector(spec: RateCounterSpec) -> np.ndarray:
    """The costs of ``spec`` as the jitted code reads them (layout ``C_*``)."""
    for steps, what in ((spec.cancel_costs, "cancel"), (spec.amend_costs, "amend")):
        if len(steps) > MAX_STEPS:
            raise ValueError(f"rate counter {spec.name}: at most {MAX_STEPS} {what} age steps")
        ages = [a for a, _ in steps]
        if ages != sorted(ages):
            raise ValueError(f"rate counter {spec.name}: {what} age bounds must ascend")
    c = np.zeros(N_C, np.float64)
    c[C_NEW] = spec.new_cost
    c[C_CANCEL_AFTER] = spec.cancel_after
    c[C_AMEND_AFTER] = spec.amend_after
    c[C_N_CANCEL] = len(spec.cancel_costs)
    c[C_N_AMEND] = len(spec.amend_costs)
    for k, (age, cost) in enumerate(spec.cancel_costs):
        c[C_CANCEL_AGE + k], c[C_CANCEL_COST + k] = age, cost
    for k, (age, cost) in enumerate(spec.amend_costs):
        c[C_AMEND_AGE + k], c[C_AMEND_COST + k] = age, cost
    return c


def rate_tier(spec: RateCounterSpec) -> RateTier:
    return RateTier.from_spec(spec)


@njit(cache=True)
def decayed(value, last_ts, now_ts, decay_per_s):
    """Counter value at ``now_ts`` after linear decay since ``last_ts`` (never below 0)."""
    v = value - decay_per_s * (now_ts - last_ts) / _S
    return v if v > 0.0 else 0.0


@njit(cache=True)
def _by_age(age_ns, C, o, n_at, age_at, cost_at, after_at):
    s = age_ns / _S
    for k in range(int(C[o + n_at])):
        if s < C[o + age_at + k]:
            return C[o + cost_at + k]
    return C[o + after_at]


@njit(cache=True)
def new_cost(C, o):
    """Cost of a new order (cost vector ``C`` at offset ``o``)."""
    return C[o + C_NEW]


@njit(cache=True)
def cancel_cost(age_ns, C, o):
    """Cost of cancelling an order ``age_ns`` old (cost vector ``C`` at offset ``o``)."""
    return _by_age(age_ns, C, o, C_N_CANCEL, C_CANCEL_AGE, C_CANCEL_COST, C_CANCEL_AFTER)


@njit(cache=True)
def amend_cost(age_ns, C, o):
    """Cost of amending an order ``age_ns`` old (cost vector ``C`` at offset ``o``)."""
    return _by_age(age_ns, C, o, C_N_AMEND, C_AMEND_AGE, C_AMEND_COST, C_AMEND_AFTER)
