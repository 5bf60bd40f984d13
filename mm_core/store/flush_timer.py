"""The flush clock every buffered writer shares: flush at most every ``flush_interval_s``.

Writers buffer on the hot path and flush on a timer; the collector asks ``flush_due`` to know when
it next has anything to do, so it can skip housekeeping between frames.
"""

from __future__ import annotations

import time


class FlushTimer:
    """Mixin: call :meth:`_flushed` from ``flush()``; ``maybe_flush`` calls ``flush()`` when due."""

    flush_interval_s: float
    _last_flush: float

    def _start_timer(self, flush_interval_s: float) -> None:
        self.flush_interval_s = flush_interval_s
        self._last_flush = time.monotonic()

    def _flushed(self) -> None:
        self._last_flush = time.monotonic()

    @property
    def flush_due(self) -> float:
        """Monotonic time from which :meth:`maybe_flush` flushes."""
        return self._last_flush + self.flush_interval_s

    def maybe_flush(self, now_mono: float) -> None:
        if now_mono - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:  # pragma: no cover - every writer defines its own
        raise NotImplementedError
