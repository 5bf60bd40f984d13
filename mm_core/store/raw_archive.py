"""Raw message archive: every frame exactly as received, with its capture stamp, gzip-compressed.

Any hour of a run can be re-parsed later by ``mm replay`` (a better parser, a bug hunt, a new
feature). Format, one file per capture hour ``raw/raw-YYYYmmddTHH.jsonl.gz``::

    #mm_core-raw {"exchange": ..., "adapter": ..., "url": ..., "symbols": [...], "depth": ..., ...}
    <ts_capture_ns> <frame text>
    ...

Lines are buffered and written as one gzip *member* per flush. Concatenated members form a valid
gzip stream, so a hard kill loses only the unflushed buffer; a torn last member is detected and
skipped by the reader.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from pathlib import Path

import orjson

from mm_core.capture.layout import RAW_HEADER_PREFIX
from mm_core.store.flush_timer import FlushTimer


class RawArchiveWriter(FlushTimer):
    def __init__(self, directory: Path, header: dict, flush_interval_s: float = 1.0,
                 max_buffer_bytes: int = 4 << 20) -> None:
        self.directory = directory
        self.header = header
        self._start_timer(flush_interval_s)
        self.max_buffer_bytes = max_buffer_bytes
        self.frames = 0
        self.files: list[Path] = []
        self._buf: list[str] = []
        self._buf_bytes = 0
        self._hour_key: str | None = None
        self._hour_end_ns = -1  # frames before this capture time belong to the open file
        self._hour_start_ns = 0
        self._path: Path | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def _rotate(self, hour_key: str) -> None:
        self.flush()
        self._hour_key = hour_key
        self._path = self.directory / f"raw-{hour_key}.jsonl.gz"
        if not self._path.exists():
            self.files.append(self._path)
            self._buf.append(RAW_HEADER_PREFIX + orjson.dumps(self.header).decode() + "\n")
        elif self._path not in self.files:
            self.files.append(self._path)

    def write(self, frame: str | bytes, ts_capture: int) -> None:
        if not self._hour_start_ns <= ts_capture < self._hour_end_ns:
            self._hour_start_ns = ts_capture - ts_capture % _HOUR_NS
            self._hour_end_ns = self._hour_start_ns + _HOUR_NS
            self._rotate(_hour_key(ts_capture))
        if frame.__class__ is not str and isinstance(frame, (bytes, bytearray, memoryview)):
            frame = bytes(frame).decode("utf-8", "replace")
        if "\n" in frame or "\r" in frame:
            # JSON allows whitespace newlines only between tokens: a space is equivalent there.
            frame = frame.replace("\r", " ").replace("\n", " ")
        line = f"{ts_capture} {frame}\n"
        self._buf.append(line)
        self._buf_bytes += len(line)
        self.frames += 1
        if self._buf_bytes >= self.max_buffer_bytes:
            self.flush()

    def flush(self) -> None:
        self._flushed()
        if not self._buf or self._path is None:
            return
        data = gzip.compress("".join(self._buf).encode("utf-8"), compresslevel=5)
        with open(self._path, "ab") as fh:
            fh.write(data)
        self._buf.clear()
        self._buf_bytes = 0

    def close(self) -> None:
        self.flush()


_HOUR_NS = 3_600_000_000_000


def _hour_key(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).strftime("%Y%m%dT%H")
