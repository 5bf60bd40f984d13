"""Kraken's dead man's switch (``cancel_all_orders_after``) kept armed -- pure scheduling logic.

Kraken WS has no cancel-on-disconnect; instead ``cancel_all_orders_after(timeout)`` starts a
countdown at the exchange that cancels *every* order of the account when it reaches zero, and
each new call restarts it (``timeout: 0`` disarms). Kraken recommends a 60 s timeout refreshed
every 15-30 s (kraken-protocol.md section 4). If our process dies or loses the connection, the
refreshes stop and the exchange pulls our quotes within a minute.

Two traps this object handles:

* **maintenance**: the countdown keeps running while the engine is down for scheduled maintenance,
  so an armed switch cancels everything the moment the engine comes back. The switch is disarmed
  ``maintenance_lead_s`` before each scheduled window and re-armed ``rearm_after_s`` after it ends
  (quotes resting across maintenance are the runner's decision, not a side effect of this timer);
* **a refresh that never lands**: if no acknowledgement arrives, the exchange may fire at
  ``sent + timeout`` of the last *acknowledged* arm. :meth:`fired` tells the caller when that
  instant has passed, so it reconciles (every order may be gone) instead of trusting its book.

No I/O and no clock of its own: the caller passes ``now_ns`` (wall clock, int ns) to every call,
sends the ``timeout`` that :meth:`next_action` returns, and reports the reply with
:meth:`on_reply` -- so every schedule is a deterministic unit test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

_S = 1_000_000_000


@dataclass(frozen=True)
class MaintenanceWindow:
    start_ns: int
    end_ns: int


class DeadMansSwitch:
    """When to send ``cancel_all_orders_after`` and with which timeout (see the module doc)."""

    def __init__(self, timeout_s: int = 60, refresh_s: float = 20.0, *, maintenance_lead_s: float = 120.0,
                 rearm_after_s: float = 30.0, reply_timeout_s: float = 5.0) -> None:
        if not 0 < timeout_s < 86400:
            raise ValueError("dead man's switch timeout must be 1..86399 s")
        if not 0 < refresh_s <= timeout_s / 2:
            raise ValueError(f"refresh every {refresh_s} s is too slow for a {timeout_s} s timeout: "
                             f"refresh at most every timeout/2 (Kraken advises 15-30 s for 60 s)")
        self.timeout_s = int(timeout_s)
        self.refresh_ns = int(refresh_s * _S)
        self.lead_ns = int(maintenance_lead_s * _S)
        self.rearm_ns = int(rearm_after_s * _S)
        self.reply_timeout_ns = int(reply_timeout_s * _S)
        self.active = False  # the caller wants it armed (between start() and stop())
        self.armed = False  # the exchange has acknowledged a countdown that is running
        self.fire_at_ns: Optional[int] = None  # conservative: when the exchange may cancel everything
        self.exchange_trigger_ns: Optional[int] = None  # what the exchange said (1 s precision)
        self.windows: list[MaintenanceWindow] = []
        self._pending: Optional[tuple[int, int]] = None  # (timeout sent, sent_ns) awaiting a reply
        self._last_ack_ns: Optional[int] = None
        self.arms = 0
        self.refreshes = 0
        self.disarms = 0
        self.failures = 0

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        """Clean shutdown: the next action disarms (after the runner cancelled its orders)."""
        self.active = False

    def schedule_maintenance(self, start_ns: int, end_ns: int) -> None:
        if end_ns <= start_ns:
            raise ValueError("maintenance window must end after it starts")
        self.windows.append(MaintenanceWindow(start_ns, end_ns))
        self.windows.sort(key=lambda w: w.start_ns)

    def in_maintenance_guard(self, now_ns: int) -> bool:
        """True from ``lead`` before a window until ``rearm_after`` past its end."""
        return any(w.start_ns - self.lead_ns <= now_ns < w.end_ns + self.rearm_ns for w in self.windows)

    # ------------------------------------------------------------------ scheduling

    def next_action(self, now_ns: int) -> Optional[int]:
        """The ``timeout`` to send now (``timeout_s`` to arm/refresh, 0 to disarm), or None."""
        self.windows = [w for w in self.windows if now_ns < w.end_ns + self.rearm_ns]
        if self._pending is not None:
            if now_ns - self._pending[1] < self.reply_timeout_ns:
                return None  # one request in flight at a time
            self._pending = None  # no reply: count it and try again
            self.failures += 1
        want = self.active and not self.in_maintenance_guard(now_ns)
        if want:
            if not self.armed or self._last_ack_ns is None or now_ns - self._last_ack_ns >= self.refresh_ns:
                return self.timeout_s
            return None
        if self.armed:
            return 0
        return None

    def next_due_ns(self, now_ns: int) -> int:
        """When :meth:`next_action` may next return something (for the caller's sleep)."""
        candidates = [now_ns + _S]
        if self._pending is not None:
            candidates.append(self._pending[1] + self.reply_timeout_ns)
        elif self.armed and self._last_ack_ns is not None:
            candidates.append(self._last_ack_ns + self.refresh_ns)
        for w in self.windows:
            for t in (w.start_ns - self.lead_ns, w.end_ns + self.rearm_ns):
                if t > now_ns:
                    candidates.append(t)
        return max(now_ns, min(candidates))

    def on_sent(self, now_ns: int, timeout_s: int) -> None:
        self._pending = (int(timeout_s), now_ns)

    def on_reply(self, now_ns: int, ok: bool, trigger_time_ns: Optional[int] = None) -> None:
        """The exchange's answer to the request in flight (``ok`` = success)."""
        if self._pending is None:
            return
        timeout, sent_ns = self._pending
        self._pending = None
        if not ok:
            self.failures += 1
            return
        if timeout == 0:
            self.armed = False
            self.fire_at_ns = None
            self.exchange_trigger_ns = None
            self._last_ack_ns = None
            self.disarms += 1
            return
        if self.armed:
            self.refreshes += 1
        else:
            self.arms += 1
        self.armed = True
        self._last_ack_ns = now_ns
        # counted from when the exchange received it, which is after we sent it: sent + timeout
        # is the earliest it can fire
        self.fire_at_ns = sent_ns + timeout * _S
        self.exchange_trigger_ns = trigger_time_ns

    def on_disconnect(self) -> None:
        """The reply to a request in flight will never come; the exchange's countdown runs on."""
        if self._pending is not None:
            self._pending = None
            self.failures += 1

    def fired(self, now_ns: int) -> bool:
        """True when the exchange may have cancelled every order (a refresh did not land in time)."""
        return self.armed and self.fire_at_ns is not None and now_ns >= self.fire_at_ns

    def acknowledge_fired(self) -> None:
        """The caller reconciled after :meth:`fired`: the exchange disarmed itself when it fired."""
        self.armed = False
        self.fire_at_ns = None
        self._last_ack_ns = None

    def describe(self) -> dict[str, object]:
        return {"timeout_s": self.timeout_s, "refresh_s": self.refresh_ns / _S, "armed": self.armed,
                "arms": self.arms, "refreshes": self.refreshes, "disarms": self.disarms,
                "failures": self.failures, "maintenance_windows": len(self.windows)}
