"""Fault SPEC parsing (valid and invalid, with clear errors) and deterministic schedules."""

from __future__ import annotations

import itertools

import pytest

from mm_core.simexchange.faults import FaultDice, FaultPlan, FaultSpecError, parse_duration

EXAMPLE = (
    "disconnect:every=20s,stall:every=30s:duration=12s,malformed:rate=0.01,"
    "bad_checksum:rate=0.005,maintenance:at=60s:duration=10s"
)


def test_the_documented_example_parses() -> None:
    plan = FaultPlan.parse(EXAMPLE)
    kinds = [r.kind for r in plan.rules]
    assert kinds == ["disconnect", "stall", "malformed", "bad_checksum", "maintenance"]
    disconnect, stall, malformed, bad, maintenance = plan.rules
    assert disconnect.every_s == 20.0 and disconnect.mode == "abort"
    assert stall.every_s == 30.0 and stall.duration_s == 12.0 and stall.then == "flush"
    assert malformed.rate == 0.01 and malformed.variant == "mixed" and not malformed.timed
    assert bad.rate == 0.005
    assert maintenance.at_s == 60.0 and maintenance.duration_s == 10.0


def test_options_and_defaults() -> None:
    plan = FaultPlan.parse(
        " disconnect:every=1m:mode=close:start=5s:count=3 , stall:at=500ms:then=drop, maintenance:every=2h,"
        "malformed:at=3:variant=garbage"
    )
    d, s, m, bad = plan.rules
    assert (d.every_s, d.mode, d.start_s, d.count) == (60.0, "close", 5.0, 3)
    assert (s.at_s, s.then, s.duration_s) == (0.5, "drop", 12.0)
    assert (m.every_s, m.duration_s) == (7200.0, 10.0)
    assert (bad.at_s, bad.variant) == (3.0, "garbage")
    assert not FaultPlan.parse("") and not FaultPlan.parse(None) and not FaultPlan.parse("  ")


@pytest.mark.parametrize(
    "text,seconds",
    [("20s", 20.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5), ("0.25s", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("explode:every=1s", "unknown kind 'explode'"),
        ("disconnect:evry=20s", "unknown parameter 'evry' for disconnect"),
        ("disconnect", "exactly one of every= or at="),
        ("disconnect:every=1s:at=2s", "exactly one of"),
        ("disconnect:rate=0.1", "unknown parameter 'rate' for disconnect"),
        ("malformed:rate=1.5", "rate must be in [0, 1]"),
        ("malformed:rate=abc", "must be a number"),
        ("stall:every=soon", "not a duration"),
        ("stall:every=10s:duration=0", "duration must be > 0"),
        ("disconnect:every=10s:mode=gentle", "mode='gentle' is not one of abort, close"),
        ("disconnect:every=10s:jitter=6s", "jitter must be < every/2"),
        ("disconnect:at=10s:count=2", "only go with every="),
        ("disconnect:every=10s,,stall:every=5s", "empty fault rule"),
        ("disconnect:every=10s:every=5s", "given twice"),
        ("disconnect:every", "must look like name=value"),
        ("disconnect:every=10s:count=0", "count must be >= 1"),
    ],
)
def test_invalid_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as err:
        FaultPlan.parse(spec)
    assert message in str(err.value)


def test_timeline_is_ordered_limited_and_deterministic() -> None:
    plan = FaultPlan.parse("disconnect:every=10s:jitter=2s:count=4,maintenance:at=15s,stall:every=7s")
    first = list(itertools.islice(plan.timeline(seed=1), 12))
    again = list(itertools.islice(plan.timeline(seed=1), 12))
    other = list(itertools.islice(plan.timeline(seed=2), 12))
    assert first == again
    assert [f.t_s for f in first] != [f.t_s for f in other]
    times = [f.t_s for f in first]
    assert times == sorted(times)
    disconnects = [f.t_s for f in itertools.islice(plan.timeline(seed=1), 40) if f.kind == "disconnect"]
    assert len(disconnects) == 4
    for k, t in enumerate(disconnects, start=1):
        assert abs(t - 10 * k) <= 2.0
    assert sum(f.kind == "maintenance" for f in itertools.islice(plan.timeline(1), 40)) == 1


def test_rate_dice_are_deterministic_and_near_the_rate() -> None:
    plan = FaultPlan.parse("malformed:rate=0.1,bad_checksum:rate=0.05")
    a = FaultDice(plan, seed=3, conn_index=1)
    b = FaultDice(plan, seed=3, conn_index=1)
    seq_a = [(a.malformed(), a.bad_checksum()) for _ in range(20_000)]
    seq_b = [(b.malformed(), b.bad_checksum()) for _ in range(20_000)]
    assert seq_a == seq_b
    malformed = [m for m, _ in seq_a if m]
    assert len(malformed) / 20_000 == pytest.approx(0.1, rel=0.1)
    assert set(malformed) == {"truncated", "garbage", "missing_fields"}
    assert sum(bc for _, bc in seq_a) / 20_000 == pytest.approx(0.05, rel=0.15)
    assert all(a.wrong_checksum(c) != c for c in (0, 1, 2**32 - 1, 123456789))
