"""Kraken's dead man's switch schedule: armed at start, refreshed every 15-30 s with a 60 s timeout,
disarmed before scheduled maintenance and re-armed after, and a refresh that never landed noticed."""

from __future__ import annotations

import pytest

from mm_core.adapters.kraken.deadman import DeadMansSwitch

S = 1_000_000_000
T0 = 1_700_000_000 * S


def drive(dm: DeadMansSwitch, start: int, end: int, step: int = S, ok: bool = True) -> list[tuple[int, int]]:
    """Run the switch on a simulated clock; every request is answered at once. Returns (t, timeout)."""
    sent = []
    t = start
    while t <= end:
        timeout = dm.next_action(t)
        if timeout is not None:
            dm.on_sent(t, timeout)
            sent.append((t, timeout))
            dm.on_reply(t, ok, t + timeout * S)
        t += step
    return sent


def test_armed_at_start_then_refreshed_every_20_s_with_60_s() -> None:
    dm = DeadMansSwitch(timeout_s=60, refresh_s=20)
    assert dm.next_action(T0) is None  # not started: nothing
    dm.start()
    sent = drive(dm, T0, T0 + 120 * S)
    assert sent[0] == (T0, 60)
    assert [t - T0 for t, _ in sent] == [0, 20 * S, 40 * S, 60 * S, 80 * S, 100 * S, 120 * S]
    assert all(timeout == 60 for _, timeout in sent)
    assert (dm.arms, dm.refreshes) == (1, 6) and dm.armed
    assert not dm.fired(T0 + 120 * S)


def test_disarmed_before_maintenance_and_rearmed_after() -> None:
    dm = DeadMansSwitch(timeout_s=60, refresh_s=20, maintenance_lead_s=120, rearm_after_s=30)
    start, end = T0 + 600 * S, T0 + 1200 * S
    dm.schedule_maintenance(start, end)
    dm.start()
    sent = drive(dm, T0, T0 + 1400 * S)
    disarms = [t for t, timeout in sent if timeout == 0]
    assert disarms == [start - 120 * S]  # disarmed 2 min before the window
    assert not any(start - 120 * S < t < end + 30 * S for t, timeout in sent if timeout)  # silent inside
    rearm = [t for t, timeout in sent if timeout and t >= end]
    assert rearm[0] == end + 30 * S
    # a countdown acknowledged before the guard must not be able to fire inside the window
    last_before = max(t for t, timeout in sent if timeout and t < start)
    assert last_before + 60 * S <= start


def test_one_request_in_flight_a_lost_reply_is_retried_and_expiry_is_noticed() -> None:
    dm = DeadMansSwitch(timeout_s=60, refresh_s=20, reply_timeout_s=5)
    dm.start()
    assert dm.next_action(T0) == 60
    dm.on_sent(T0, 60)
    assert dm.next_action(T0 + 2 * S) is None  # waiting for the reply
    dm.on_reply(T0 + S, True)
    assert dm.fire_at_ns == T0 + 60 * S  # counted from when it was sent: the earliest it can fire
    # refresh at +21 s never gets an answer (connection lost)
    assert dm.next_action(T0 + 21 * S) == 60
    dm.on_sent(T0 + 21 * S, 60)
    dm.on_disconnect()
    assert dm.failures == 1 and dm.armed
    assert not dm.fired(T0 + 59 * S)
    assert dm.fired(T0 + 60 * S)  # the exchange may have cancelled everything: reconcile
    dm.acknowledge_fired()
    assert not dm.armed and dm.next_action(T0 + 61 * S) == 60  # arm again


def test_stop_disarms_and_bad_settings_are_refused() -> None:
    dm = DeadMansSwitch()
    dm.start()
    drive(dm, T0, T0)
    dm.stop()
    assert dm.next_action(T0 + S) == 0
    dm.on_sent(T0 + S, 0)
    dm.on_reply(T0 + S, True)
    assert not dm.armed and dm.disarms == 1 and dm.next_action(T0 + 100 * S) is None
    with pytest.raises(ValueError, match="timeout/2"):
        DeadMansSwitch(timeout_s=60, refresh_s=45)
    with pytest.raises(ValueError):
        DeadMansSwitch(timeout_s=0)
    with pytest.raises(ValueError):
        DeadMansSwitch().schedule_maintenance(T0, T0)
