"""What the Kraken v1 and v2 adapters share: counters, bad-message and resync bookkeeping.

Why a shared base: the integrity rules must be identical for both protocol versions -- a book
that failed its checksum, or lost an update, is invalid until the next snapshot; a ``Resync`` is
emitted once per invalidation (not once per message, or the collector would spam the exchange);
every unusable frame is a counted ``BadMessage``. Keeping that in one place means the two parsers
only differ in how they read the wire.

Counting is built for the hot path: ``stats.events_by_kind`` for the kinds that have a named
counter (book updates, tops, ...) is filled from those counters when ``stats`` is read, so a book
update costs one integer increment per event instead of a dict update.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from mm_core.adapters.base import AdapterStats
from mm_core.book import L2Book
from mm_core.events import BadMessage, ChecksumMismatch, Event, Resync, truncate_text

# event kind -> AdapterStats counter that counts exactly those events
MIRRORED_KINDS: dict[str, str] = {
    "book_snapshot": "book_snapshots",
    "book_update": "book_updates",
    "top_of_book": "tops",
    "trade": "trades",
    "heartbeat": "heartbeats",
    "bad_message": "bad_messages",
    "resync": "resyncs",
    "checksum_mismatch": "checksums_failed",
}

# Errors that malformed input can raise while we dig through a decoded message.
INPUT_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError)


class BadInput(ValueError):
    """Raised inside a parse function: the frame is unusable; the message is the reason."""


class SymbolBook:
    """Book and integrity state of one symbol."""

    __slots__ = ("book", "valid", "resync_pending", "top", "last_ts")

    def __init__(self) -> None:
        self.book: Optional[L2Book] = None  # None until the first snapshot
        self.valid: bool = False
        self.resync_pending: bool = False
        self.top: Optional[tuple[float, float, float, float]] = None  # last emitted top (for change detection)
        self.last_ts: int = -1


class KrakenFeedBase:
    """Shared state and bookkeeping; subclasses implement the wire protocol."""

    exchange: str

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        self._stats = AdapterStats()

    @property
    def stats(self) -> AdapterStats:
        """Counters, with ``events_by_kind`` brought up to date from the named counters."""
        s = self._stats
        kinds = s.events_by_kind
        for kind, counter in MIRRORED_KINDS.items():
            n = getattr(s, counter)
            if n:
                kinds[kind] = n
        return s

    def _count(self, events: Sequence[Event]) -> None:
        """Count the kinds without a named counter (subscribed, status, pong, ...)."""
        kinds = self._stats.events_by_kind
        for ev in events:
            k = ev.KIND
            if k not in MIRRORED_KINDS:
                kinds[k] = kinds.get(k, 0) + 1

    def _bad(self, reason: str, raw: Any, ts_capture: int, symbol: str = "") -> BadMessage:
        self._stats.bad_messages += 1
        if not isinstance(raw, (str, bytes, bytearray, memoryview)):
            raw = repr(raw)
        return BadMessage(exchange=self.exchange, symbol=symbol, ts_exchange=None, ts_capture=ts_capture,
                          reason=reason, text=truncate_text(raw))

    def _resync(self, st: SymbolBook, symbol: str, reason: str, ts_exchange: Optional[int],
                ts_capture: int) -> list[Event]:
        """Invalidate ``symbol``'s book; a Resync event only if none is pending already."""
        st.valid = False
        if st.resync_pending:
            return []
        st.resync_pending = True
        self._stats.resyncs += 1
        return [Resync(exchange=self.exchange, symbol=symbol, ts_exchange=ts_exchange, ts_capture=ts_capture,
                       reason=reason)]

    def _mismatch(self, st: SymbolBook, symbol: str, expected: int, computed: int,
                  ts_exchange: Optional[int], ts_capture: int, out: list[Event]) -> None:
        self._stats.checksums_failed += 1
        out.append(ChecksumMismatch(exchange=self.exchange, symbol=symbol, ts_exchange=ts_exchange,
                                    ts_capture=ts_capture, expected=expected, computed=computed))
        out.extend(self._resync(st, symbol, f"checksum mismatch: exchange {expected}, ours {computed}",
                                ts_exchange, ts_capture))


def describe(exc: BaseException) -> str:
    """A short human reason for an input error (``missing field 'checksum'`` etc.)."""
    if isinstance(exc, BadInput):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    if isinstance(exc, TypeError):
        return f"wrong type ({exc})"
    return f"{type(exc).__name__}: {exc}"
