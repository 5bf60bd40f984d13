"""Every file of a capture run, written on one thread that the receive loop feeds through a bounded queue.

Why a thread: the receive loop's job is to stamp each frame the moment it arrives. Any wait on that
loop -- a gzip flush, a zstd Parquet part, an fsync of the summary -- makes every frame arriving
meanwhile look older than it is, and the measured ages then include our own stalls. So the loop only
appends one tuple per frame to a deque (``put``: ~0.1 us, never blocks) and this thread does the rest:
raw archive, sample CSV, Parquet parts, event log and summary file, each in the order the items were
put, so every file keeps the order of receipt.

GIL: this thread runs Python too, so it keeps its slices short (the Parquet store converts rows to
Arrow in small chunks, see :mod:`mm_core.store.parquet_store`; gzip, zstd, file writes and fsync
release the GIL), and it wakes every ``drain_every_s`` rather than once per item.

Queue full (the disk cannot keep up, e.g. a stalled network drive): nothing is dropped. The collector
sees ``full`` after a put, stops reading the socket until the writer has drained the queue to half,
and logs a ``writer_queue_full`` event (how long it waited, how many items were queued); the summary
counts them. Frames wait in the socket meanwhile, so their capture stamps are late -- the event says
when.

Failure (ENOSPC, EACCES, EIO, ...): the thread stops at the first failed write, keeps the exception
in ``error``, tries to close every file (so what was written stays readable), and calls
``on_failure``; the collector turns that into a fatal exit with the error in the message. A hard kill
loses what was queued or buffered (at most ~``flush_interval_s`` of CSV and raw archive, and up to
``parquet_flush_s`` of Parquet, which ``mm repair`` rebuilds from the raw archive).
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Any, Callable

import orjson

from mm_core.capture.layout import EVENTS_NAME, PARQUET_DIR, RAW_DIR, SUMMARY_NAME
from mm_core.store.atomic import write_atomic
from mm_core.store.event_log import EventLogWriter
from mm_core.store.parquet_store import ParquetEventStore
from mm_core.store.raw_archive import RawArchiveWriter
from mm_core.store.sample_csv import SampleCsvWriter

# queue items: tuples whose first element says what they are
FRAME = 0  # (FRAME, ts_capture, frame, market_events, health_events, sample) -- one per frame
LOG = 1  # (LOG, event): a health event for the event log and the Parquet health table
SUMMARY = 2  # (SUMMARY, dict): replace summary.json (atomically, fsync'd)

DEFAULT_QUEUE_MAX = 100_000


class WriterFailed(RuntimeError):
    """A file of the run could not be written; ``cause`` is the original error (usually an OSError)."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(describe_write_error(cause))


def describe_write_error(exc: BaseException) -> str:
    """One line for a failed write: what failed and where (``[Errno 28] No space left on device: 'x'``)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f": {exc.filename}" if exc.filename else ""
        name = exc.strerror or str(exc)
        return f"cannot write the run's files ([Errno {exc.errno}] {name}{where})"
    return f"cannot write the run's files ({type(exc).__name__}: {exc})"


class RunWriter:
    """The run directory's writer thread. ``open()`` (files), ``start()``, ``put(...)`` per item, ``close()``."""

    def __init__(self, run_dir: Path, csv_name: str, raw_header: dict[str, Any], *,
                 flush_interval_s: float = 1.0, parquet_flush_s: float = 60.0,
                 queue_max: int = DEFAULT_QUEUE_MAX, drain_every_s: float = 0.02,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        self.run_dir = run_dir
        self.csv_name = csv_name
        self.raw_header = raw_header
        self.flush_interval_s = flush_interval_s
        self.parquet_flush_s = parquet_flush_s
        self.queue_max = queue_max
        self.drain_every_s = drain_every_s
        self.on_failure = on_failure
        self.queue: collections.deque[tuple] = collections.deque()
        self.put = self.queue.append  # the receive loop's one call per frame
        self.error: BaseException | None = None
        self.high_water = 0  # most items queued at once (seen at a drain)
        self.items = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.csv: SampleCsvWriter | None = None
        self.raw: RawArchiveWriter | None = None
        self.parquet: ParquetEventStore | None = None
        self.log: EventLogWriter | None = None

    # ------------------------------------------------------------------ receive-loop side

    def open(self) -> None:
        """Create the run's files (on the caller's thread: before capture starts, errors surface here)."""
        self.csv = SampleCsvWriter(self.run_dir / self.csv_name, self.flush_interval_s)
        self.log = EventLogWriter(self.run_dir / EVENTS_NAME)
        self.raw = RawArchiveWriter(self.run_dir / RAW_DIR, self.raw_header, self.flush_interval_s)
        self.parquet = ParquetEventStore(self.run_dir / PARQUET_DIR, self.parquet_flush_s)
        self.parquet.warm_up()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mm-run-writer", daemon=True)
        self._thread.start()

    @property
    def full(self) -> bool:
        return len(self.queue) >= self.queue_max

    @property
    def backlog(self) -> int:
        return len(self.queue)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout_s: float | None = 60.0) -> None:
        """Write what is queued, close every file, stop the thread. Raises :class:`WriterFailed`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise WriterFailed(TimeoutError(f"the writer did not finish within {timeout_s} s"))
        else:  # never started: write what was put on the caller's thread
            try:
                self._drain()
                self._close_files()
            except BaseException as exc:
                self.error = exc
                self._close_quietly()
        if self.error is not None:
            raise WriterFailed(self.error)

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        try:
            while True:
                stopping = self._stop.wait(self.drain_every_s)
                self._drain()
                mono = time.monotonic()
                assert self.csv and self.raw and self.parquet
                self.csv.maybe_flush(mono)
                self.raw.maybe_flush(mono)
                self.parquet.convert_ready()
                self.parquet.maybe_flush(mono)
                if stopping and not self.queue:
                    break
            self._close_files()
        except BaseException as exc:  # a failed write ends the run: report it, never hide it
            self.error = exc
            self._close_quietly()
            if self.on_failure is not None:
                try:
                    self.on_failure(exc)
                except Exception:
                    pass

    def _drain(self) -> None:
        q = self.queue
        n = len(q)
        if n > self.high_water:
            self.high_water = n
        csv, raw, parquet, log = self.csv, self.raw, self.parquet, self.log
        assert csv and raw and parquet and log
        add = parquet.add
        pop = q.popleft
        while q:
            item = pop()
            self.items += 1
            kind = item[0]
            if kind == FRAME:
                _, ts, frame, market, health, sample = item
                raw.write(frame, ts)
                for ev in market:
                    add(ev)
                for ev in health:
                    log.write(ev)
                    add(ev)
                if sample is not None:
                    csv.write_sample(sample[0], sample[1], ts)
            elif kind == LOG:
                ev = item[1]
                log.write(ev)
                add(ev)
            elif kind == SUMMARY:
                write_atomic(self.run_dir / SUMMARY_NAME, orjson.dumps(item[1], option=orjson.OPT_INDENT_2))

    def _close_files(self) -> None:
        """Close in an order that keeps the most valuable files first: CSV, raw, Parquet, log."""
        first: BaseException | None = None
        for w in (self.csv, self.raw, self.parquet, self.log):
            if w is None:
                continue
            try:
                w.close()
            except BaseException as exc:  # keep closing the others; report the first failure
                first = first or exc
        if first is not None:
            raise first

    def _close_quietly(self) -> None:
        try:
            self._close_files()
        except BaseException:
            pass

