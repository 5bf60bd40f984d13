"""Is the exchange-vs-local clock offset known well enough to correct ages, and is it within bound?

Every age the collector stores is ``ts_capture (local clock) - ts_exchange (exchange clock)`` =
true latency - offset, where offset = exchange clock - local clock. A clock 30 ms ahead makes a
40 ms feed look like 10 ms, so the gate must know the offset before it believes an age.

Evidence: the collector's ping/pong ``clock_estimate`` events (:mod:`mm_core.capture.clock`). One
ping sent at local ``t0`` and answered at ``t1``, stamped ``time_in``/``time_out`` by the exchange,
proves -- whatever the path asymmetry -- that the offset lies in::

    [time_out - t1, time_in - t0]  =  [offset_i - rtt_i / 2, offset_i + rtt_i / 2]

because the exchange read its clock at some moment between our send and our receipt. So each
estimate is an interval, not a point, and the rule below uses nothing else.

The rule (fixed before looking at any capture; the thresholds are config ``[gate]`` keys):

1. **Enough** -- at least ``clock_min_estimates`` (5) estimates: the median of five survives two
   bad ones.
2. **Agreement** -- at least ``clock_agreement_min_share`` (80 %) of the intervals, each widened by
   ``CLOCK_SLACK_MS`` (1 ms: microsecond wire stamps plus the slow slewing of an NTP-disciplined
   clock over a run), share a common point. Under a stable clock *every* interval contains the true
   offset, so intervals that cannot overlap mean the clock stepped or drifted during the run, or the
   pongs are wrong. The agreeing intervals intersect in ``[lo, hi]``: where the offset provably is.
3. **Resolution** (the round trips are short enough relative to the offset) -- ``[lo, hi]`` must
   decide the question the gate asks: either it lies inside ``+/- clock_offset_max_ms`` (the clock
   is provably within bound) or entirely outside it (the skew is proven). An interval straddling
   the bound means the round trips are too long for the offset to be told apart from path
   asymmetry: not reliable.
4. **Consistency with the data** (checked by :mod:`mm_core.latency`, which has the ages) -- after
   correction, no more than 0.1 % of ages may stay below -1 ms: a true latency is never negative.

The correction uses the median of the agreeing estimates (limited to ``[lo, hi]``): the best point
estimate when paths are symmetric on average, and never outside what the intervals prove.
``clock_offset_max_ms`` defaults to the p50 bar (15 ms): a clock that may be off by more than the
median latency the plan demands cannot support that measurement.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Sequence

CLOCK_SLACK_MS = 1.0


@dataclass(frozen=True)
class ClockRule:
    """The thresholds of the rule (config ``[gate]``)."""

    offset_max_ms: float = 15.0
    min_estimates: int = 5
    agreement_min_share: float = 0.8

    @classmethod
    def from_gate(cls, gate: object) -> "ClockRule":
        return cls(float(getattr(gate, "clock_offset_max_ms", cls.offset_max_ms)),
                   int(getattr(gate, "clock_min_estimates", cls.min_estimates)),
                   float(getattr(gate, "clock_agreement_min_share", cls.agreement_min_share)))


@dataclass
class ClockVerdict:
    """What the ping/pong estimates prove about the offset (exchange clock - local clock)."""

    estimates: int = 0
    agreeing: int = 0
    agreement_share: float = 0.0
    offset_ms: float | None = None  # the correction: median of the agreeing estimates, within [lo, hi]
    lo_ms: float | None = None  # the offset provably lies in [lo, hi]
    hi_ms: float | None = None
    bound_ms: float = ClockRule.offset_max_ms
    within_bound: bool | None = None  # None: not decided
    reliable: bool = False
    reasons: list[str] = field(default_factory=list)  # why not reliable


def agreeing_interval(offsets_ms: Sequence[float], rtts_ms: Sequence[float],
                      slack_ms: float = CLOCK_SLACK_MS) -> tuple[list[int], float, float]:
    """(indices of the largest set of intervals with a common point, its intersection lo, hi).

    Marzullo's sweep: sort interval ends, count how many are open at each point; the first region
    where that count peaks is where the most estimates agree.
    """
    ends: list[tuple[float, int]] = []
    for o, r in zip(offsets_ms, rtts_ms):
        half = max(0.0, r) / 2 + slack_ms
        ends += [(o - half, -1), (o + half, +1)]  # starts sort before ends at the same value
    ends.sort()
    best, count, lo, hi = 0, 0, 0.0, 0.0
    for i, (x, kind) in enumerate(ends):
        count -= kind
        if count > best:
            best, lo, hi = count, x, ends[i + 1][0]
    # the same expressions as the ends above: (o - r/2) - s can exceed o - (r/2 + s) by an ulp, which
    # dropped an interval from its own intersection (one estimate: no members, median of nothing)
    halves = [max(0.0, r) / 2 + slack_ms for r in rtts_ms]
    members = [i for i, (o, h) in enumerate(zip(offsets_ms, halves)) if o - h <= lo and hi <= o + h]
    return members, lo, hi


def judge_clock(offsets_ms: Sequence[float], rtts_ms: Sequence[float], rule: ClockRule = ClockRule()) -> ClockVerdict:
    """Rules 1-3 of the module docstring on the estimates of one run."""
    v = ClockVerdict(estimates=len(offsets_ms), bound_ms=rule.offset_max_ms)
    if not offsets_ms:
        v.reasons.append("no ping/pong clock estimates in the run")
        return v
    members, lo, hi = agreeing_interval(offsets_ms, rtts_ms)
    v.agreeing = len(members)
    v.agreement_share = len(members) / len(offsets_ms)
    v.lo_ms, v.hi_ms = lo, hi
    med = statistics.median(offsets_ms[i] for i in members)
    v.offset_ms = min(max(med, lo), hi)
    b = rule.offset_max_ms
    if -b <= lo and hi <= b:
        v.within_bound = True
    elif lo > b or hi < -b:
        v.within_bound = False
    if v.estimates < rule.min_estimates:
        v.reasons.append(f"only {v.estimates} clock estimates (< {rule.min_estimates})")
    if v.agreement_share < rule.agreement_min_share:
        v.reasons.append(
            f"the estimates disagree: only {v.agreeing} of {v.estimates} ({100 * v.agreement_share:.0f} %, "
            f"< {100 * rule.agreement_min_share:.0f} %) admit one common offset: the clock stepped or drifted "
            "during the run")
    if v.within_bound is None:
        v.reasons.append(
            f"the round trips are too long relative to the offset: it lies somewhere in [{lo:+.3f}, {hi:+.3f}] ms, "
            f"which straddles the +/- {b:g} ms bound, so the skew can be neither ruled out nor proven")
    v.reliable = not v.reasons
    return v
