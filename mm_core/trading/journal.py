"""The order manager's journal: append-only, checksummed lines, fsync'd off the hot path.

Why a journal: after a crash (kill -9, power loss) the order manager must know which orders it
sent, what it learned about them and which fills it counted, so that reconciliation with the
exchange starts from the truth minus at most the last moments -- and those last moments are
exactly what the exchange snapshot gives back (open orders, recent fills, balances).

Format: one record per line, ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``. A line whose
checksum does not match (a torn write at the crash point, or a damaged sector) is skipped and
counted; a torn *last* line is cut off when the journal is reopened, so appending never glues new
records onto half a line. Records are never rewritten.

One writer: the journal takes an exclusive lock on ``<journal>.lock`` (``fcntl`` on POSIX,
``msvcrt`` on Windows) for as long as it is open, so two order managers can never interleave their
records in one file; the lock dies with the process, so a kill -9 never leaves it stuck.

Compaction: :func:`write_compacted` replaces the file with the records that rebuild the current
state (written to a temp file, fsync'd, renamed), so a journal that runs for weeks replays fast.

Durability without blocking: :meth:`Journal.append` only puts the record on a queue; a writer
thread writes and fsyncs in batches (at most ``sync_interval_s`` apart), so the event loop that
receives executions never waits for the disk. :meth:`Journal.flush` waits until everything
appended so far is on disk -- for the few safe points that need it (a new epoch before its first
order id is used, a clean shutdown). What a crash can lose is the last unsynced batch; the
exchange snapshot recovers it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Iterator, Optional

import orjson

_STOP = object()


def encode_line(record: dict[str, Any]) -> bytes:
    body = orjson.dumps(record)
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def decode_line(line: bytes) -> Optional[dict[str, Any]]:
    """The record of one journal line, or None when it is torn or damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:].rstrip(b"\n")
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        rec = orjson.loads(body)
    except (ValueError, orjson.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


class JournalReadResult:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.bad_lines = 0
        self.torn_tail_bytes = 0


def read_journal(path: Path, *, repair: bool = False) -> JournalReadResult:
    """All intact records of ``path`` in order; with ``repair`` cut a torn tail off the file."""
    out = JournalReadResult()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    good_end = 0
    pos = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:  # no newline: the last write was cut short
            out.torn_tail_bytes = n - pos
            break
        rec = decode_line(data[pos:nl + 1])
        if rec is None:
            out.bad_lines += 1
        else:
            out.records.append(rec)
        pos = nl + 1
        good_end = pos
    if out.torn_tail_bytes and repair:
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    return out


class JournalLocked(RuntimeError):
    pass


def _lock(path: Path):
    """An exclusive, non-blocking lock on ``path`` held by the returned open file."""
    fh = open(path, "a+b")
    try:
        if os.name == "nt":
            import msvcrt

            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise JournalLocked(f"journal {path.with_suffix('')} is in use by another process "
                            f"(lock {path}); one order manager per journal") from None
    return fh


def write_compacted(path: Path, records: list[dict[str, Any]]) -> None:
    """Atomically replace the journal at ``path`` with ``records`` (temp file, fsync, rename)."""
    tmp = path.with_name(path.name + ".compact")
    with open(tmp, "wb") as fh:
        fh.write(b"".join(encode_line(r) for r in records))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if os.name != "nt":
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Journal:
    """Append-only journal with a writer thread (see the module doc)."""

    def __init__(self, path: Path, *, sync_interval_s: float = 0.2) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sync_interval_s = sync_interval_s
        self._lock_fh = _lock(self.path.with_name(self.path.name + ".lock"))
        read = read_journal(self.path, repair=True)
        self.replayed: list[dict[str, Any]] = read.records
        self.bad_lines = read.bad_lines
        self.torn_tail_bytes = read.torn_tail_bytes
        self._q: "queue.Queue[Any]" = queue.Queue()
        self._appended = 0
        self._synced = 0
        self._cond = threading.Condition()
        self._kick = threading.Event()
        self._error: Optional[BaseException] = None
        self._fh = open(self.path, "ab", buffering=0)
        self._thread = threading.Thread(target=self._writer, name="order-journal", daemon=True)
        self._thread.start()
        self.closed = False

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, appended={self._appended}, synced={self._synced})"

    def append(self, record: dict[str, Any]) -> None:
        """Queue one record (never blocks on the disk)."""
        if self.closed:
            raise RuntimeError(f"journal {self.path} is closed")
        if self._error is not None:
            raise RuntimeError(f"journal {self.path} writer failed: {self._error}")
        self._appended += 1
        self._q.put(encode_line(record))

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every record appended so far is fsync'd; False on timeout."""
        target = self._appended
        deadline = time.monotonic() + timeout_s
        self._kick.set()
        with self._cond:
            while self._synced < target and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return self._error is None

    def close(self) -> None:
        if self.closed:
            return
        self.flush()
        self.closed = True
        self._q.put(_STOP)
        self._kick.set()
        self._thread.join(timeout=10)
        self._fh.close()
        self._lock_fh.close()

    @property
    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def replace_with(self, records: list[dict[str, Any]]) -> None:
        """Compact: the file becomes ``records`` (only while nothing is queued)."""
        if not self.flush():
            raise RuntimeError(f"journal {self.path} could not be synced before compaction")
        self._fh.close()
        write_compacted(self.path, records)
        self._fh = open(self.path, "ab", buffering=0)
        self.bad_lines = 0
        self.torn_tail_bytes = 0

    def abandon(self) -> None:
        """Stop without flushing (tests simulating a crash: queued records are lost)."""
        self.closed = True
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._q.put(_STOP)
        self._kick.set()
        self._thread.join(timeout=10)
        self._fh.close()
        self._lock_fh.close()

    def _writer(self) -> None:
        """Wake every ``sync_interval_s`` (or when :meth:`flush` asks), write everything queued, fsync.

        Not one wake-up per record: a thread woken for every append would fight the event loop
        for the GIL on every fill."""
        stop = False
        while not stop:
            self._kick.wait(self.sync_interval_s)
            self._kick.clear()
            batch = []
            while True:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            if batch:
                try:
                    self._fh.write(b"".join(batch))
                    os.fsync(self._fh.fileno())
                except OSError as exc:
                    self._error = exc
                with self._cond:
                    self._synced += len(batch)
                    self._cond.notify_all()


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    yield from read_journal(path).records
