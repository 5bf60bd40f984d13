"""Recorded feeds on disk: detect the format, yield ``(ts_capture_ns, frame_text)`` pairs.

Three formats are read, detected from the content (never from the file name):

``mm-raw``
    The project's own raw archive (:mod:`mm_core.store.raw_archive`): gzip or plain text, an
    optional first line ``#mm_core-raw {json header}`` (exchange, adapter, url, symbols, depth,
    price_precision, qty_precision), then one ``<ts_capture_ns> <frame text>`` line per frame.
    The writer appends one gzip *member* per flush, so a file is several members back to back; a
    hard kill can leave the last member (or, if the collector restarted on the same hour file, a
    member in the middle) torn. Everything complete is read; a damaged member contributes the
    whole lines it still holds; each cut line is counted in :attr:`Recording.unreadable_lines`.
``cryptofeed``
    ``<local_epoch_seconds>: <raw message>`` lines, after header lines such as
    ``wss://ws.kraken.com <-> 1618678132.38`` and ``wss://ws.kraken.com <- ...: {subscribe}``;
    older logs start with the recorder's ``configuration: {...}`` line. Header, configuration and
    (re)connection lines are skipped wherever they appear and counted in ``skipped_lines``.
``sdk-fixture``
    python-kraken-sdk's test fixtures: one JSON object ``{"init": msg or [msgs],
    "updates": [msg, ...]}``; frames are re-encoded with orjson; ``ts_capture`` is 0. ``init`` is a
    list of messages only when every element is a message (an object or an array); a Kraken v1
    message is itself an array (``[336, {"as": [...], "bs": [...]}, "book-10", "XBT/USD"]``), so an
    ``init`` that starts with a channel id is one message.

The exchange protocol (Kraken WS v1 or v2) is read from the archive header, the URL of a
cryptofeed header, or guessed from the first messages (v2 frames are objects with ``channel`` or
``method``; v1 data frames are arrays and its control frames have ``event``).

A file that cannot be read raises :class:`RecordingError` whose message names the file and the
line -- ``mm replay`` prints it and exits 2.
"""

from __future__ import annotations

import itertools
import mmap
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import orjson

from mm_core.adapters.kraken.wire import parse_epoch_text_ns
from mm_core.capture.layout import RAW_HEADER_PREFIX
from mm_core.events import truncate_text

FORMAT_RAW = "mm-raw"
FORMAT_CRYPTOFEED = "cryptofeed"
FORMAT_SDK = "sdk-fixture"

GZIP_MAGIC = b"\x1f\x8b\x08"
_CHUNK = 1 << 20
_PEEK_FRAMES = 64
_CRYPTOFEED_LINE = re.compile(r"^(\d+(?:\.\d+)?): (.*)$", re.S)
# "wss://host <-> ts", "wss://host <- ts: {...}" and the recorder's "configuration: {...}"
_HEADER_LINE = re.compile(r"^(?:wss?://\S+ <|configuration: )")


class RecordingError(ValueError):
    """A recording that cannot be read; the message says which file, which line and why."""


@dataclass
class Recording:
    """An opened recording: what it is, and an iterator over its frames.

    ``unreadable_lines``, ``damaged_members`` and ``bytes_read`` grow while :meth:`frames` is
    consumed (they describe what has been read so far).
    """

    path: Path
    format: str
    protocol: Optional[str]  # "kraken_v2" | "kraken_v1" | None (could not tell)
    header: dict = field(default_factory=dict)
    compressed: bool = False
    size: int = 0
    unreadable_lines: int = 0
    damaged_members: int = 0
    skipped_lines: int = 0  # header, configuration and connection lines (not frames)
    first_unreadable_line: Optional[int] = None
    bytes_read: int = 0
    _frames: Optional[Iterator[tuple[int, str]]] = None

    def frames(self) -> Iterator[tuple[int, str]]:
        """``(ts_capture_ns, frame_text)`` in file order (ts 0 when the format has none)."""
        if self._frames is None:
            raise RuntimeError("frames() can be iterated only once")
        frames, self._frames = self._frames, None
        return frames

    def progress(self) -> float:
        """Share of the file read so far (0..1), for progress displays."""
        return min(1.0, self.bytes_read / self.size) if self.size else 1.0

    def _unreadable(self, line_no: int) -> None:
        self.unreadable_lines += 1
        if self.first_unreadable_line is None:
            self.first_unreadable_line = line_no


def open_recording(path: str | Path) -> Recording:
    """Open ``path``, detect its format and protocol; raise RecordingError if unreadable."""
    p = Path(path)
    data = _map(p)
    compressed = data[:3] == GZIP_MAGIC
    rec = Recording(path=p, format="", protocol=None, compressed=compressed, size=len(data))
    lines = _numbered_lines(rec, _gunzip(rec, data) if compressed else _plain(rec, data))
    first = _first_content_line(lines)
    if first is None:
        raise RecordingError(f"{p}: empty recording (no frames)")
    line_no, text, _kind = first
    lines = itertools.chain([first], lines)
    if text.startswith(RAW_HEADER_PREFIX) or _looks_like_raw_line(text):
        rec.format = FORMAT_RAW
        frames = _raw_frames(rec, lines)
    elif _HEADER_LINE.match(text) or _CRYPTOFEED_LINE.match(text):
        rec.format = FORMAT_CRYPTOFEED
        frames = _cryptofeed_frames(rec, lines)
    elif text.lstrip().startswith("{") and not compressed:
        rec.format = FORMAT_SDK
        frames = _sdk_frames(rec, data)
    else:
        raise RecordingError(
            f"{p}:{line_no}: not a recording this tool reads: expected '#mm_core-raw {{...}}' or "
            f"'<ts_ns> <frame>' (mm_core raw archive), '<epoch_s>: <frame>' (cryptofeed) or a "
            f"python-kraken-sdk fixture {{\"init\": ..., \"updates\": [...]}}; got "
            f"{truncate_text(text, 80)!r}"
        )
    peeked = list(itertools.islice(frames, _PEEK_FRAMES))
    if rec.protocol is None:
        rec.protocol = _guess_protocol(text for _, text in peeked)
    rec._frames = itertools.chain(peeked, frames)
    return rec


def _map(p: Path) -> bytes | mmap.mmap:
    """The file's bytes without reading it all into memory (a memory map; gzip member recovery
    needs to search ahead for the next member header)."""
    try:
        with p.open("rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return b""
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise RecordingError(f"{p}: cannot read: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------- bytes -> lines

# What a decoded chunk / a line is: normal; salvaged from a damaged gzip member (its frames are
# used if they parse, counted unreadable if not); or cut (damage or end of file mid-line).
OK, SALVAGED, CUT = 0, 1, 2
_DAMAGE = (CUT, b"")


def _plain(rec: Recording, data: bytes | mmap.mmap) -> Iterator[tuple[int, bytes]]:
    for off in range(0, len(data), _CHUNK):
        rec.bytes_read = min(len(data), off + _CHUNK)
        yield OK, data[off : off + _CHUNK]


def _inflate_member(data: bytes | mmap.mmap, start: int, stop: int) -> tuple[int, list[bytes], bool]:
    """Decompress the gzip member at ``start`` (reading no further than ``stop``).

    Returns (end offset, output chunks, complete): complete is False when the member ends early
    (torn) or is corrupt; the chunks are then the output produced before that point.
    """
    d = zlib.decompressobj(wbits=31)
    outputs: list[bytes] = []
    off = start
    try:
        while off < stop:
            chunk = data[off : min(off + _CHUNK, stop)]
            out = d.decompress(chunk)
            if out:
                outputs.append(out)
            if d.eof:
                return off + len(chunk) - len(d.unused_data), outputs, True
            off += len(chunk)
    except zlib.error:
        pass
    return off, outputs, False


def _gunzip(rec: Recording, data: bytes | mmap.mmap) -> Iterator[tuple[int, bytes]]:
    """Decompress concatenated gzip members, surviving torn and corrupt ones.

    A damaged member is decompressed again bounded by the next gzip header, so only its genuine
    prefix is used (a torn member followed by a new one -- collector restarted on the same hour
    file -- would otherwise run on into the next member's bytes); reading resumes at that header.
    """
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos : pos + 3] != GZIP_MAGIC:
            if not data[pos:].strip(b"\x00"):
                break  # zero padding after a crash: nothing lost
            rec.damaged_members += 1
            yield _DAMAGE
            nxt = data.find(GZIP_MAGIC, pos + 1)
            if nxt < 0:
                break
            pos = nxt
            continue
        end, outputs, complete = _inflate_member(data, pos, n)
        if complete:
            for out in outputs:
                yield OK, out
            pos = end
            rec.bytes_read = pos
            continue
        rec.damaged_members += 1
        nxt = data.find(GZIP_MAGIC, pos + 1)
        bound = nxt if nxt >= 0 else n
        _, outputs, _ = _inflate_member(data, pos, bound)
        for out in outputs:
            yield SALVAGED, out
        yield _DAMAGE
        pos = bound
        rec.bytes_read = pos


def _numbered_lines(rec: Recording, chunks: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, str, int]]:
    """Split decoded chunks into ``(line_no, text, kind)`` with kind OK, SALVAGED or CUT; a line
    cut by damage or by the end of the file (no final newline) comes out as CUT."""
    buf = b""
    buf_kind = OK
    line_no = 0
    for kind, chunk in chunks:
        if kind == CUT:
            if buf:
                line_no += 1
                yield line_no, buf.decode("utf-8", "replace"), CUT
                buf = b""
            buf_kind = OK
            continue
        if kind == SALVAGED:
            buf_kind = SALVAGED
        buf += chunk
        if b"\n" not in chunk:
            continue
        parts = buf.split(b"\n")
        buf = parts.pop()
        for raw in parts:
            line_no += 1
            yield line_no, raw.decode("utf-8", "replace").rstrip("\r"), buf_kind
        if kind == OK:
            buf_kind = OK
    if buf:
        line_no += 1
        yield line_no, buf.decode("utf-8", "replace"), CUT


def _first_content_line(lines: Iterator[tuple[int, str, int]]) -> Optional[tuple[int, str, int]]:
    for item in lines:
        if item[1].strip():
            return item
    return None


def _looks_like_raw_line(text: str) -> bool:
    ts, sep, rest = text.partition(" ")
    return bool(sep) and ts.isdigit() and ts.isascii() and len(ts) >= 10


# ---------------------------------------------------------------------------- formats


def _raw_frames(rec: Recording, lines: Iterator[tuple[int, str, int]]) -> Iterator[tuple[int, str]]:
    for line_no, text, kind in lines:
        if kind == CUT:
            rec._unreadable(line_no)  # torn by a hard kill: never half a frame into the parser
            continue
        if not text:
            continue
        if text.startswith(RAW_HEADER_PREFIX):
            header = _parse_header(rec, line_no, text)
            if not rec.header:
                rec.header = header
                adapter = header.get("adapter")
                if isinstance(adapter, str) and adapter.startswith("kraken_"):
                    rec.protocol = adapter
            continue
        ts, sep, frame = text.partition(" ")
        if not (sep and ts.isdigit() and ts.isascii()):
            if kind == SALVAGED:
                rec._unreadable(line_no)
                continue
            raise RecordingError(
                f"{rec.path}:{line_no}: expected '<ts_capture_ns> <frame text>' (mm_core raw "
                f"archive), got {truncate_text(text, 80)!r}"
            )
        yield int(ts), frame


def _parse_header(rec: Recording, line_no: int, text: str) -> dict:
    try:
        header = orjson.loads(text[len(RAW_HEADER_PREFIX) :])
    except orjson.JSONDecodeError as exc:
        raise RecordingError(f"{rec.path}:{line_no}: archive header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise RecordingError(f"{rec.path}:{line_no}: archive header is not a JSON object")
    return header


def _cryptofeed_frames(rec: Recording, lines: Iterator[tuple[int, str, int]]) -> Iterator[tuple[int, str]]:
    for line_no, text, kind in lines:
        if not text.strip():
            continue
        if _HEADER_LINE.match(text):
            rec.skipped_lines += 1
            if rec.protocol is None and text.split(" ", 1)[0].rstrip("/").endswith("/v2"):
                rec.protocol = "kraken_v2"
            continue
        if kind == CUT:
            rec._unreadable(line_no)
            continue
        m = _CRYPTOFEED_LINE.match(text)
        if m is None:
            if kind == SALVAGED:
                rec._unreadable(line_no)
                continue
            raise RecordingError(
                f"{rec.path}:{line_no}: expected '<epoch_seconds>: <frame>' (cryptofeed), got "
                f"{truncate_text(text, 80)!r}"
            )
        yield parse_epoch_text_ns(m.group(1)), m.group(2)


def _sdk_frames(rec: Recording, data: bytes | mmap.mmap) -> Iterator[tuple[int, str]]:
    try:
        doc = orjson.loads(data[:])
    except orjson.JSONDecodeError as exc:
        raise RecordingError(
            f"{rec.path}:{getattr(exc, 'lineno', '?')}: not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}); "
            f"expected a python-kraken-sdk fixture {{\"init\": ..., \"updates\": [...]}}"
        ) from None
    if not isinstance(doc, dict) or "updates" not in doc or not isinstance(doc.get("updates"), list):
        raise RecordingError(
            f"{rec.path}:1: JSON object without an 'updates' list: not a python-kraken-sdk fixture "
            f"{{\"init\": ..., \"updates\": [...]}}"
        )
    messages = _sdk_init_messages(doc.get("init")) + doc["updates"]
    rec.bytes_read = rec.size
    for msg in messages:
        yield 0, orjson.dumps(msg).decode()


def _sdk_init_messages(init: object) -> list:
    """``init`` as a list of messages: a list of objects/arrays is several messages; anything else
    (an object, or a v1 message -- an array that starts with its channel id) is one."""
    if init is None or init == []:
        return []
    if isinstance(init, list) and all(isinstance(m, (dict, list)) for m in init):
        return init
    return [init]


def _guess_protocol(texts: Iterator[str]) -> Optional[str]:
    """v2 frames are objects with ``channel``/``method``; v1 data frames are arrays and v1
    control frames carry ``event``."""
    for text in texts:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(msg, list):
            return "kraken_v1"
        if isinstance(msg, dict):
            if "channel" in msg or "method" in msg:
                return "kraken_v2"
            if "event" in msg:
                return "kraken_v1"
    return None
