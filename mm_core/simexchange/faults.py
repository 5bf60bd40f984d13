"""Fault injection for the simulator, parsed from a SPEC string; deterministic given the seed.

Grammar (whitespace around tokens is ignored; an empty SPEC means no faults)::

    SPEC     := RULE ("," RULE)*
    RULE     := KIND (":" NAME "=" VALUE)*
    KIND     := disconnect | stall | malformed | bad_checksum | maintenance
    DURATION := NUMBER ["ms" | "s" | "m" | "h"]          (a bare number is seconds)

When a rule fires -- exactly one of:

    every=DURATION   repeatedly, on the server's clock (first at ``start``, default = ``every``)
    at=DURATION      once, that long after the server started
    rate=P           per outgoing message with probability P in [0, 1]
                     (malformed: every data message; bad_checksum: every book update)

Optional, for timed rules: ``start=DURATION``, ``jitter=DURATION`` (each occurrence moves by a
seeded uniform amount in [-jitter, +jitter]; must be < every/2), ``count=N`` (at most N times).

What each kind does (timed kinds hit every open connection at once):

    disconnect   mode=abort (default: TCP abort, no close frame -> client sees 1006)
                 | close (close frame 1001 "going away" without warning)
    stall        duration=DURATION (default 12s): nothing at all is sent (data, heartbeats, acks)
                 while the socket stays open; then=flush (default: the backlog follows, late)
                 | drop (what was created during the stall is lost) | close (abort after it)
    malformed    variant=mixed (default) | truncated (cut JSON) | garbage (not JSON)
                 | missing_fields (valid JSON, required fields missing); an *extra* frame is sent,
                 the real message still follows, so the book stays intact
    bad_checksum a book update is sent with a wrong ``checksum`` (the levels are right): the client
                 must resync (unsubscribe + subscribe), which yields a fresh snapshot
    maintenance  duration=DURATION (default 10s): ``status`` -> "maintenance", the market pauses
                 (heartbeats continue), then ``status`` -> "online"
    market_status status=post_only|cancel_only|limit_only (default cancel_only), duration=DURATION
                 (default 30s): the exchange's status channel says so (public and private sockets)
                 and the private side's matching follows it, then "online" again

Private side (``mm simexchange --private``; :mod:`mm_core.simexchange.private`); timed rules arm
the fault for the next eligible request or message, ``rate=P`` rolls seeded dice for each:

    reject       the next ``burst=N`` (default 1) add_order/batch_add requests are refused with
                 ``error=NAME`` (insufficient_funds (default), order_minimum, invalid_price,
                 invalid_arguments, unavailable, unexplained -- the last two mean "maybe placed")
    rate_limit   the next ``burst=N`` order actions are refused with EOrder:Rate limit exceeded
    lost_reply   the next order is placed, its reply is never sent (the client's request times out)
    amend_disconnect  the next amend_order is applied, then the connection drops before its reply
                 and its ``amended`` execution leave
    dup_exec     the next executions update is delivered twice (same sequence number)
    reorder_exec the next order-completing fill: ``filled`` (sequence n+1) arrives before ``trade`` (n)
    private_disconnect  mode=abort (default) | close: every private connection drops

Example: ``disconnect:every=20s,stall:every=30s:duration=12s,malformed:rate=0.01,``
``bad_checksum:rate=0.005,maintenance:at=60s:duration=10s``.
"""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

PRIVATE_KINDS = ("reject", "rate_limit", "lost_reply", "amend_disconnect", "dup_exec", "reorder_exec",
                 "private_disconnect")
KINDS = ("disconnect", "stall", "malformed", "bad_checksum", "maintenance", "market_status") + PRIVATE_KINDS
RATE_KINDS = ("malformed", "bad_checksum", "reject", "rate_limit", "lost_reply", "amend_disconnect", "dup_exec",
              "reorder_exec")
REJECT_ERROR_NAMES = ("insufficient_funds", "order_minimum", "invalid_price", "invalid_arguments", "unavailable",
                      "unexplained")
MALFORMED_VARIANTS = ("truncated", "garbage", "missing_fields")

_TIMING = ("every", "at", "start", "jitter", "count")
_ALLOWED: dict[str, tuple[str, ...]] = {
    "disconnect": _TIMING + ("mode",),
    "stall": _TIMING + ("duration", "then"),
    "malformed": _TIMING + ("rate", "variant"),
    "bad_checksum": _TIMING + ("rate",),
    "maintenance": _TIMING + ("duration",),
    "market_status": _TIMING + ("status", "duration"),
    "reject": _TIMING + ("rate", "burst", "error"),
    "rate_limit": _TIMING + ("rate", "burst"),
    "lost_reply": _TIMING + ("rate",),
    "amend_disconnect": _TIMING + ("rate",),
    "dup_exec": _TIMING + ("rate",),
    "reorder_exec": _TIMING + ("rate",),
    "private_disconnect": _TIMING + ("mode",),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("abort", "close"),
    "then": ("flush", "drop", "close"),
    "variant": ("mixed",) + MALFORMED_VARIANTS,
    "status": ("post_only", "cancel_only", "limit_only"),
    "error": REJECT_ERROR_NAMES,
}
_DEFAULT_DURATION_S = {"stall": 12.0, "maintenance": 10.0, "market_status": 30.0}
_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}


class FaultSpecError(ValueError):
    """A fault SPEC string is invalid; the message names the rule and what to write instead."""


@dataclass(frozen=True)
class FaultRule:
    """One parsed rule (``text`` is the rule as written, for logs and error messages)."""

    kind: str
    text: str
    every_s: Optional[float] = None
    at_s: Optional[float] = None
    start_s: Optional[float] = None
    jitter_s: float = 0.0
    count: Optional[int] = None
    rate: Optional[float] = None
    duration_s: float = 0.0
    mode: str = "abort"
    then: str = "flush"
    variant: str = "mixed"
    status: str = "cancel_only"
    burst: int = 1
    error: str = ""

    @property
    def timed(self) -> bool:
        return self.rate is None

    def times(self, seed: int, index: int) -> Iterator[float]:
        """Occurrence times (s since server start), non-decreasing; seeded jitter."""
        if self.at_s is not None:
            yield self.at_s
            return
        assert self.every_s is not None
        rng = np.random.default_rng((seed, index, 0x7135))
        t = self.every_s if self.start_s is None else self.start_s
        n = 0
        while self.count is None or n < self.count:
            jitter = (2.0 * rng.random() - 1.0) * self.jitter_s if self.jitter_s else 0.0
            yield max(0.0, t + jitter)
            t += self.every_s
            n += 1


@dataclass(frozen=True)
class ScheduledFault:
    """A timed fault occurrence on the server's clock."""

    t_s: float
    kind: str
    rule: FaultRule


@dataclass(frozen=True)
class FaultPlan:
    """All rules of a SPEC. ``FaultPlan.parse("")`` is the empty plan (no faults)."""

    rules: tuple[FaultRule, ...] = ()
    spec: str = ""

    @classmethod
    def parse(cls, spec: Optional[str]) -> "FaultPlan":
        """Parse a SPEC string (see module docstring); raises :class:`FaultSpecError`."""
        if spec is None or not spec.strip():
            return cls((), "")
        rules = tuple(_parse_rule(part) for part in spec.split(","))
        return cls(rules, spec.strip())

    def __bool__(self) -> bool:
        return bool(self.rules)

    def timeline(self, seed: int = 0) -> Iterator[ScheduledFault]:
        """Every timed occurrence of every rule, merged in time order (may be infinite)."""
        streams = [_occurrences(rule, seed, i) for i, rule in enumerate(self.rules) if rule.timed]
        for t, _, rule in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            yield ScheduledFault(t, rule.kind, rule)

    def rate_rules(self, kind: str) -> tuple[FaultRule, ...]:
        return tuple(r for r in self.rules if r.kind == kind and r.rate is not None)


def _occurrences(rule: FaultRule, seed: int, index: int) -> Iterator[tuple[float, int, FaultRule]]:
    for t in rule.times(seed, index):
        yield (t, index, rule)


class FaultDice:
    """Per-connection, seeded decisions for rate-based faults (same seed + same traffic = same faults)."""

    def __init__(self, plan: FaultPlan, seed: int, conn_index: int) -> None:
        self._rng = np.random.default_rng((seed, conn_index, 0xFA17))
        self._malformed = plan.rate_rules("malformed")
        self._bad_checksum = plan.rate_rules("bad_checksum")
        self._u: list[float] = []
        self._i = 0

    @property
    def active(self) -> bool:
        return bool(self._malformed or self._bad_checksum)

    def _draw(self) -> float:
        if self._i >= len(self._u):
            self._u = self._rng.random(4096).tolist()
            self._i = 0
        self._i += 1
        return self._u[self._i - 1]

    def malformed(self) -> Optional[str]:
        """Variant of a malformed frame to insert before the next data message, or None."""
        for rule in self._malformed:
            if self._draw() < (rule.rate or 0.0):
                return self.pick_variant(rule.variant)
        return None

    def bad_checksum(self) -> bool:
        """Whether the next book update goes out with a wrong checksum."""
        return any(self._draw() < (rule.rate or 0.0) for rule in self._bad_checksum)

    def pick_variant(self, variant: str) -> str:
        if variant != "mixed":
            return variant
        return MALFORMED_VARIANTS[int(self._draw() * len(MALFORMED_VARIANTS))]

    def wrong_checksum(self, true_checksum: int) -> int:
        """A checksum that is certainly wrong (never equal to the true one)."""
        return (true_checksum ^ (1 + int(self._draw() * 0xFFFFFFFE))) & 0xFFFFFFFF


# --------------------------------------------------------------------------- parsing


def parse_duration(text: str, where: str = "duration") -> float:
    """``"20s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a bare number of seconds -> seconds."""
    m = _DURATION_RE.match(text)
    if not m:
        raise FaultSpecError(f"{where}: {text!r} is not a duration (write e.g. 20s, 500ms, 2m, 1h or 20)")
    value = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(value):
        raise FaultSpecError(f"{where}: {text!r} is not a finite duration")
    return value


def _parse_rule(text: str) -> FaultRule:
    rule_text = text.strip()
    if not rule_text:
        raise FaultSpecError("empty fault rule (two commas in a row, or a trailing comma?)")
    head, *params = [p.strip() for p in rule_text.split(":")]
    kind = head.lower()
    if kind not in KINDS:
        raise FaultSpecError(f"fault rule {rule_text!r}: unknown kind {head!r} (known: {', '.join(KINDS)})")
    values: dict[str, str] = {}
    for param in params:
        name, sep, value = param.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not sep or not name or not value:
            raise FaultSpecError(f"fault rule {rule_text!r}: parameter {param!r} must look like name=value")
        if name not in _ALLOWED[kind]:
            allowed = ", ".join(_ALLOWED[kind])
            raise FaultSpecError(f"fault rule {rule_text!r}: unknown parameter {name!r} for {kind} (allowed: {allowed})")
        if name in values:
            raise FaultSpecError(f"fault rule {rule_text!r}: parameter {name!r} given twice")
        values[name] = value
    return _build_rule(kind, rule_text, values)


def _build_rule(kind: str, text: str, v: dict[str, str]) -> FaultRule:
    where = f"fault rule {text!r}"
    when = [k for k in ("every", "at", "rate") if k in v]
    if len(when) != 1:
        need = "every=, at= or rate=" if kind in RATE_KINDS else "every= or at="
        raise FaultSpecError(f"{where}: give exactly one of {need}")
    for name, choices in _CHOICES.items():
        if name in v and v[name].lower() not in choices:
            raise FaultSpecError(f"{where}: {name}={v[name]!r} is not one of {', '.join(choices)}")
    every = _positive_duration(v, "every", where)
    at = _duration(v, "at", where)
    start = _duration(v, "start", where)
    jitter = _duration(v, "jitter", where) or 0.0
    if "at" in v and ("start" in v or "jitter" in v or "count" in v):
        raise FaultSpecError(f"{where}: start=, jitter= and count= only go with every=")
    if every is not None and jitter >= every / 2:
        raise FaultSpecError(f"{where}: jitter must be < every/2 so occurrences stay in order")
    count = _count(v, where)
    rate = _rate(v, where)
    duration = _positive_duration(v, "duration", where)
    return FaultRule(
        kind=kind,
        text=text,
        every_s=every,
        at_s=at,
        start_s=start,
        jitter_s=jitter,
        count=count,
        rate=rate,
        duration_s=duration if duration is not None else _DEFAULT_DURATION_S.get(kind, 0.0),
        mode=v.get("mode", "abort").lower(),
        then=v.get("then", "flush").lower(),
        variant=v.get("variant", "mixed").lower(),
        status=v.get("status", "cancel_only").lower(),
        burst=_count(v, where, "burst") or 1,
        error=v.get("error", "").lower(),
    )


def _duration(v: dict[str, str], name: str, where: str) -> Optional[float]:
    if name not in v:
        return None
    value = parse_duration(v[name], f"{where}: {name}")
    if value < 0:
        raise FaultSpecError(f"{where}: {name} must be >= 0")
    return value


def _positive_duration(v: dict[str, str], name: str, where: str) -> Optional[float]:
    value = _duration(v, name, where)
    if value is not None and value <= 0:
        raise FaultSpecError(f"{where}: {name} must be > 0")
    return value


def _count(v: dict[str, str], where: str, name: str = "count") -> Optional[int]:
    if name not in v:
        return None
    try:
        n = int(v[name])
    except ValueError:
        raise FaultSpecError(f"{where}: {name}={v[name]!r} must be a whole number") from None
    if n < 1:
        raise FaultSpecError(f"{where}: {name} must be >= 1")
    return n


def _rate(v: dict[str, str], where: str) -> Optional[float]:
    if "rate" not in v:
        return None
    try:
        rate = float(v["rate"])
    except ValueError:
        raise FaultSpecError(f"{where}: rate={v['rate']!r} must be a number in [0, 1]") from None
    if not 0.0 <= rate <= 1.0:
        raise FaultSpecError(f"{where}: rate must be in [0, 1], got {rate}")
    return rate
