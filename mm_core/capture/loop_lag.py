"""Event-loop lag of the capture loop: how long a just-arrived frame would wait before we could stamp it.

A frame is stamped when the loop gets to it; if the loop is busy (or blocked, or waiting for the GIL)
the stamp is late and the measured age includes our own stall. This probe measures exactly that wait,
independently of the feed: a small thread wakes every ``interval_s`` and posts a callback into the
loop with ``call_soon_threadsafe`` (the same wake-up path as a socket becoming readable); the lag is
the time from the probe's scheduled tick to the callback running on the loop.

Why a thread and not an asyncio timer: the selector sleeps in whole milliseconds (epoll rounds its
timeout up), so a timer's lateness has a 0-1 ms floor that says nothing about the loop. The probe's
own wake-up (a plain sleep) is accurate to tens of microseconds on an idle machine.

It is an upper bound: the lag is counted from the tick the probe *meant* to post at, so it also
holds the probe thread's own wake-up delay -- the OS scheduling it late, or it waiting for the GIL.
The latter is real (a frame would wait for the same GIL); the former is not ours and, on a machine
whose cores are all busy, amounts to milliseconds. Counting from the moment the probe did post
would miss a loop blocked inside a C call that holds the GIL, the stall this probe exists to see.

Lags go into a log-bucketed histogram (2 % wide buckets; a day at 100 ticks/s in ~1,000 counters);
``summary()`` reports p50/p99 from it (bucket upper edges) and the exact maximum.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

_GROWTH = 1.02
_LOG_GROWTH = math.log(_GROWTH)
_FLOOR_US = 1.0  # lags below 1 us share bucket 0


class LagHistogram:
    """Counts of lags (us) in buckets [G^(i-1), G^i); exact max and count."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.n = 0
        self.max_us = 0.0
        self.total_us = 0.0

    def add(self, lag_us: float) -> None:
        i = 0 if lag_us <= _FLOOR_US else int(math.log(lag_us) / _LOG_GROWTH) + 1
        counts = self.counts
        if i >= len(counts):
            counts.extend([0] * (i + 1 - len(counts)))
        counts[i] += 1
        self.n += 1
        self.total_us += lag_us
        if lag_us > self.max_us:
            self.max_us = lag_us

    def quantile_us(self, q: float) -> float | None:
        """Upper edge of the bucket holding the q-quantile (overstates by < 2 %); None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(self.max_us, _FLOOR_US if i == 0 else _GROWTH ** i)
        return self.max_us


class LoopLagProbe:
    """``start(loop)`` in the loop's thread; ``summary()`` any time; ``stop()`` at the end."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.hist = LagHistogram()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="mm-loop-lag", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        every = self.interval_s
        due = time.perf_counter() + every
        pending = threading.Event()  # one probe in flight at a time: a blocked loop is one long lag
        pending.set()
        while not self._stop.is_set():
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if not pending.wait(1.0):
                continue  # the loop has not run the last probe for a second: keep waiting on it
            pending.clear()
            try:
                loop.call_soon_threadsafe(self._arrived, due, pending)
            except RuntimeError:  # loop closed
                return
            due += every
            now = time.perf_counter()
            if due < now:  # ticks missed while the loop was blocked are not queued up
                due = now + every

    def _arrived(self, due: float, pending: threading.Event) -> None:
        self.hist.add((time.perf_counter() - due) * 1e6)
        pending.set()

    def summary(self) -> dict[str, Any]:
        h = self.hist

        def ms(us: float | None) -> float | None:
            return None if us is None else round(us / 1000, 3)

        return {"interval_ms": round(self.interval_s * 1000, 3), "ticks": h.n,
                "p50": ms(h.quantile_us(0.5)), "p99": ms(h.quantile_us(0.99)),
                "max": ms(h.max_us if h.n else None),
                "mean": ms(h.total_us / h.n if h.n else None)}
