"""Feed latency model: how long each message takes from the exchange to the client.

A message's exchange timestamp is its creation time; it is delivered after a sampled delay:

- **normal** regime: lognormal body, median ``median_ms``, shape ``sigma``;
- **degraded** spells: 30-80 ms; **unsafe** spells: > 80 ms (the thresholds of our latency gate);
- spells come from a continuous-time Markov chain over exchange time (rates per hour, mean spell
  durations), so they are *periods*, not isolated slow messages -- like a congested route;
- delivery is **in order**: ``delivery = max(previous_delivery, creation + delay)`` (a TCP stream
  cannot reorder), so the delay a client measures can exceed the sampled one.

Models are tiny classes behind one :class:`LatencyModel` protocol (``delay_ns(t_ns)`` and
``regime``) so tests can pin exact delays (:class:`ConstantLatency`) and the server never branches
on which one it has. :class:`DelayStats` aggregates what was injected for the ``--log`` summary.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

REGIMES = ("normal", "degraded", "unsafe")
_MS = 1_000_000
_HOUR_NS = 3_600 * 10**9


class LatencyModel(Protocol):
    """Samples the one-way delay of a message created at exchange time ``t_ns``."""

    regime: str

    def delay_ns(self, t_ns: int) -> int:
        """Delay (ns) of a message created at ``t_ns``; calls come in non-decreasing ``t_ns``."""
        ...


@dataclass(frozen=True)
class LatencyConfig:
    """Parameters of :class:`RegimeLatency` (defaults: a healthy EU link with rare bad spells)."""

    median_ms: float = 8.0
    sigma: float = 0.35
    spells: bool = True  # False: pure lognormal body, for exact tests
    degraded_per_hour: float = 6.0  # rate of entering a degraded spell from normal
    unsafe_per_hour: float = 2.0  # rate of entering an unsafe spell from normal
    degraded_mean_s: float = 20.0  # mean spell durations (exponential)
    unsafe_mean_s: float = 5.0
    degraded_min_ms: float = 30.0
    degraded_max_ms: float = 80.0
    unsafe_min_ms: float = 80.0
    unsafe_median_extra_ms: float = 70.0  # unsafe delay = unsafe_min + lognormal(median extra)
    unsafe_sigma: float = 0.6

    def __post_init__(self) -> None:
        problems = []
        if self.median_ms < 0:
            problems.append("median_ms must be >= 0")
        if self.sigma < 0 or self.unsafe_sigma < 0:
            problems.append("sigmas must be >= 0")
        if self.degraded_per_hour < 0 or self.unsafe_per_hour < 0:
            problems.append("spell rates must be >= 0")
        if self.degraded_mean_s <= 0 or self.unsafe_mean_s <= 0:
            problems.append("spell durations must be > 0")
        if not 0 <= self.degraded_min_ms <= self.degraded_max_ms <= self.unsafe_min_ms:
            problems.append("need 0 <= degraded_min_ms <= degraded_max_ms <= unsafe_min_ms")
        if problems:
            raise ValueError("LatencyConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class ConstantLatency:
    """Every message takes exactly ``ms`` milliseconds (exact tests, benchmarks with 0)."""

    regime = "normal"

    def __init__(self, ms: float = 0.0) -> None:
        self._ns = int(round(ms * _MS))

    def delay_ns(self, t_ns: int) -> int:
        return self._ns


class RegimeLatency:
    """Lognormal body plus Markov-switching degraded/unsafe spells (see :class:`LatencyConfig`)."""

    def __init__(self, config: LatencyConfig, seed: int | tuple[int, ...] = 0) -> None:
        self.config = config
        self._rng = np.random.default_rng(seed)
        self._log_median = math.log(config.median_ms * _MS) if config.median_ms > 0 else None
        self.regime = "normal"
        self._next_switch_ns: Optional[int] = None

    def delay_ns(self, t_ns: int) -> int:
        if self.config.spells:
            self._advance(t_ns)
        return self._sample()

    def _advance(self, t_ns: int) -> None:
        """Move the regime chain forward to ``t_ns``."""
        if self._next_switch_ns is None:
            self._next_switch_ns = t_ns + self._holding_ns()
        while t_ns >= self._next_switch_ns:
            self.regime = self._next_regime()
            self._next_switch_ns += self._holding_ns()

    def _exit_rate_per_ns(self) -> float:
        c = self.config
        if self.regime == "normal":
            return (c.degraded_per_hour + c.unsafe_per_hour) / _HOUR_NS
        mean_s = c.degraded_mean_s if self.regime == "degraded" else c.unsafe_mean_s
        return 1.0 / (mean_s * 1e9)

    def _holding_ns(self) -> int:
        rate = self._exit_rate_per_ns()
        if rate <= 0:
            return 1 << 62  # never leaves this regime
        return max(1, int(self._rng.exponential(1.0 / rate)))

    def _next_regime(self) -> str:
        if self.regime != "normal":
            return "normal"
        c = self.config
        p_degraded = c.degraded_per_hour / (c.degraded_per_hour + c.unsafe_per_hour)
        return "degraded" if self._rng.random() < p_degraded else "unsafe"

    def _sample(self) -> int:
        c, rng = self.config, self._rng
        if self.regime == "normal":
            if self._log_median is None:
                return 0
            return int(math.exp(self._log_median + c.sigma * rng.standard_normal()))
        if self.regime == "degraded":
            ms = math.exp(rng.normal(math.log(50.0), 0.25))
            ms = min(max(ms, c.degraded_min_ms), c.degraded_max_ms)
            return int(ms * _MS)
        extra = c.unsafe_median_extra_ms * math.exp(c.unsafe_sigma * rng.standard_normal())
        return int((c.unsafe_min_ms + max(extra, 0.001)) * _MS)


def make_latency(config: Optional[LatencyConfig], seed: int | tuple[int, ...] = 0) -> LatencyModel:
    """The model for a config (None = no delay at all)."""
    if config is None:
        return ConstantLatency(0.0)
    return RegimeLatency(config, seed)


class InOrderDelivery:
    """Turns sampled delays into delivery times that never overtake an earlier message."""

    __slots__ = ("model", "last_ns")

    def __init__(self, model: LatencyModel) -> None:
        self.model = model
        self.last_ns = 0

    def schedule(self, created_ns: int) -> tuple[int, int]:
        """``(delivery_ns, sampled_delay_ns)`` for a message created at ``created_ns``."""
        delay = self.model.delay_ns(created_ns)
        at = created_ns + delay
        if at < self.last_ns:
            at = self.last_ns
        self.last_ns = at
        return at, delay


def percentiles_ms(values_ns: "array[int] | list[int]") -> dict[str, float]:
    """p50/p90/p95/p99/max/mean of nanosecond values, in milliseconds (empty -> zeros)."""
    if len(values_ns) == 0:
        return {"p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    a = np.frombuffer(values_ns, dtype=np.int64) if isinstance(values_ns, array) else np.asarray(values_ns)
    q = np.percentile(a, [50, 90, 95, 99]) / _MS
    return {
        "p50": round(float(q[0]), 3),
        "p90": round(float(q[1]), 3),
        "p95": round(float(q[2]), 3),
        "p99": round(float(q[3]), 3),
        "max": round(float(a.max()) / _MS, 3),
        "mean": round(float(a.mean()) / _MS, 3),
    }


class DelayStats:
    """What was injected on one connection (or all): sampled delays, actual lags, regimes."""

    __slots__ = ("delays", "lags", "regimes")

    def __init__(self) -> None:
        self.delays = array("q")
        self.lags = array("q")
        self.regimes = {r: 0 for r in REGIMES}

    def add(self, delay_ns: int, lag_ns: int, regime: str) -> None:
        self.delays.append(delay_ns)
        self.lags.append(lag_ns)
        self.regimes[regime] = self.regimes.get(regime, 0) + 1

    def merge(self, other: "DelayStats") -> None:
        self.delays.extend(other.delays)
        self.lags.extend(other.lags)
        for r, n in other.regimes.items():
            self.regimes[r] = self.regimes.get(r, 0) + n

    def summary(self) -> dict[str, object]:
        """``count``, ``delay_ms`` (sampled), ``lag_ms`` (actual send - exchange ts), ``regime_share``."""
        n = len(self.delays)
        return {
            "count": n,
            "delay_ms": percentiles_ms(self.delays),
            "lag_ms": percentiles_ms(self.lags),
            "regime_share": {r: (round(c / n, 6) if n else 0.0) for r, c in self.regimes.items()},
        }
