"""The seam between an exchange's wire protocol and the rest of mm_core.

A :class:`FeedAdapter` is a *sans-IO* protocol machine: the collector (or ``mm replay``) hands it
raw frames with the capture time, and it returns canonical events. It owns the L2 books and their
checksum verification, so a wrong book can never leave the adapter unflagged. It also builds the
outgoing messages (subscribe, unsubscribe, ping, resync) so the collector never formats wire JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from mm_core.events import Event
from mm_core.instrument import Instrument


@dataclass(frozen=True)
class FeedSpec:
    """What to subscribe to: symbols, channels and the book depth."""

    symbols: tuple[str, ...]
    channels: tuple[str, ...] = ("book", "ticker", "trade")
    book_depth: int = 10
    instruments: dict[str, Instrument] = field(default_factory=dict)


@dataclass
class AdapterStats:
    """Counters every adapter keeps; ``mm replay`` and the collector report them."""

    messages: int = 0
    book_snapshots: int = 0
    book_updates: int = 0
    checksums_ok: int = 0
    checksums_failed: int = 0
    unverified_updates: int = 0
    resyncs: int = 0
    trades: int = 0
    tops: int = 0
    heartbeats: int = 0
    bad_messages: int = 0
    events_by_kind: dict[str, int] = field(default_factory=dict)


class FeedAdapter(Protocol):
    """What the collector and the replay tool need from an exchange adapter."""

    exchange: str
    stats: AdapterStats

    def subscribe_messages(self) -> list[str]:
        """Wire messages to send right after connecting (one per channel)."""
        ...

    def resync_messages(self, symbol: str) -> list[str]:
        """Wire messages that make the exchange send a fresh book snapshot for ``symbol``."""
        ...

    def ping_message(self, req_id: int) -> str:
        """An application-level ping whose answer carries exchange timestamps (clock estimate)."""
        ...

    def on_message(self, raw: str | bytes, ts_capture: int) -> Sequence[Event]:
        """Parse one frame, update books, verify checksums; never raises on bad input."""
        ...

    def reset(self) -> None:
        """Forget all book state (after a disconnect): every book waits for a new snapshot."""
        ...
