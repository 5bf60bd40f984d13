"""The seed's sample CSV: one row per latency sample (a verified book update with an exchange time).

Columns (``layout.CSV_COLUMNS``): exchange, symbol, ts_exchange, ts_capture, age_ms, bid, bid_qty,
ask, ask_qty. Rows are appended and flushed every ``flush_interval_s``; a hard kill leaves every
flushed row intact and at worst one torn last line, which QA reports and readers skip.

Hot path: rows are collected as strings and handed to the file once per flush (or every
``max_buffer_rows``), and the text of a top of book (``exchange,symbol,`` and the four prices and
sizes -- float ``repr`` is the costly part) is built once per top, not once per sample: the top
changes on a fraction of the book updates. The bytes written are the same as formatting each row
in full.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from mm_core.capture.layout import CSV_COLUMNS
from mm_core.events import TopOfBook
from mm_core.store.flush_timer import FlushTimer

HEADER = ",".join(CSV_COLUMNS) + "\n"


class SampleCsvWriter(FlushTimer):
    """Append-only CSV of latency samples, flushed on a timer (not per row: that is the hot path)."""

    def __init__(self, path: Path, flush_interval_s: float = 1.0, max_buffer_rows: int = 8192) -> None:
        self.path = path
        self.max_buffer_rows = max_buffer_rows
        self.rows = 0
        self._buf: list[str] = []
        self._top: TopOfBook | None = None  # the top whose text is cached below
        self._head = ""  # "exchange,symbol,"
        self._tail = ""  # ",bid,bid_qty,ask,ask_qty\n"
        new = not path.exists() or path.stat().st_size == 0
        self._fh: TextIO = open(path, "a", encoding="utf-8", newline="", buffering=1 << 16)
        if new:
            self._fh.write(HEADER)
            self._fh.flush()
        else:
            self._repair_tail()
        self._start_timer(flush_interval_s)

    def _repair_tail(self) -> None:
        """Appending after a hard kill: start on a fresh line so a torn row stays one bad row."""
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                self._fh.write("\n")

    def write_sample(self, top: TopOfBook, te: int, tc: int) -> float:
        """One latency sample: the book message's exchange/capture times and the top after it.

        Returns the sample's age in ms (``(tc - te) / 1e6``, the value the row holds to 3 decimals).
        """
        age = (tc - te) / 1e6
        if top is not self._top:
            self._top = top
            self._head = f"{top.exchange},{top.symbol},"
            self._tail = f",{top.bid!r},{top.bid_qty!r},{top.ask!r},{top.ask_qty!r}\n"
        buf = self._buf
        buf.append(f"{self._head}{te},{tc},{age:.3f}{self._tail}")
        self.rows += 1
        if len(buf) >= self.max_buffer_rows:
            self._drain()
        return age

    def _drain(self) -> None:
        if self._buf:
            self._fh.write("".join(self._buf))
            self._buf.clear()

    def flush(self) -> None:
        self._drain()
        self._fh.flush()
        self._flushed()

    def close(self) -> None:
        if not self._fh.closed:
            self._drain()
            self._fh.flush()
            try:
                os.fsync(self._fh.fileno())
            except OSError:
                pass
            self._fh.close()
