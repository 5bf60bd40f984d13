"""The seed's sample CSV: one row per latency sample (a verified book update with an exchange time).

Columns (``layout.CSV_COLUMNS``): exchange, symbol, ts_exchange, ts_capture, age_ms, bid, bid_qty,
ask, ask_qty. Rows are appended and flushed every ``flush_interval_s``; a hard kill leaves every
flushed row intact and at worst one torn last line, which QA reports and readers skip.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

from mm_core.capture.layout import CSV_COLUMNS
from mm_core.events import TopOfBook

HEADER = ",".join(CSV_COLUMNS) + "\n"


class SampleCsvWriter:
    """Append-only CSV of latency samples, flushed on a timer (not per row: that is the hot path)."""

    def __init__(self, path: Path, flush_interval_s: float = 1.0) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.rows = 0
        new = not path.exists() or path.stat().st_size == 0
        self._fh: TextIO = open(path, "a", encoding="utf-8", newline="", buffering=1 << 16)
        if new:
            self._fh.write(HEADER)
            self._fh.flush()
        else:
            self._repair_tail()
        self._last_flush = time.monotonic()

    def _repair_tail(self) -> None:
        """Appending after a hard kill: start on a fresh line so a torn row stays one bad row."""
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                self._fh.write("\n")

    def write_sample(self, top: TopOfBook, te: int, tc: int) -> None:
        """One latency sample: the book message's exchange/capture times and the top after it."""
        self._fh.write(
            f"{top.exchange},{top.symbol},{te},{tc},{(tc - te) / 1e6:.3f},"
            f"{top.bid!r},{top.bid_qty!r},{top.ask!r},{top.ask_qty!r}\n"
        )
        self.rows += 1

    def maybe_flush(self, now_mono: float) -> None:
        if now_mono - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        self._fh.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            try:
                os.fsync(self._fh.fileno())
            except OSError:
                pass
            self._fh.close()
