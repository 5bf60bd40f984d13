"""The seam between an exchange and the rest of mm_core: its feed adapter and its venue rules.

A :class:`FeedAdapter` is a *sans-IO* protocol machine: the collector (or ``mm replay``) hands it
raw frames with the capture time, and it returns canonical events. It owns the L2 books and their
integrity checks (a checksum where the venue sends one; crossed books, re-snapshot comparisons and
time gaps where it does not), so a wrong book can never leave the adapter unflagged. It also builds
the outgoing messages (subscribe, unsubscribe, ping, resync) so the collector never formats wire JSON.

:class:`VenueRules` is everything else the core must know about a venue, handed over as plain values:
its fee schedule, its order-rate counter, how quiet its feed may be, which error texts are harmless,
the instruments it lists and how its recordings are read. Each venue package under
``mm_core/adapters/<name>/`` exposes one as ``VENUE``; :func:`mm_core.adapters.venue_rules` finds it
by the config's ``[exchange] name``. Nothing outside ``adapters/`` branches on a venue's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Protocol, Sequence

from mm_core.events import Event
from mm_core.instrument import Instrument


@dataclass(frozen=True)
class FeedSpec:
    """What to subscribe to: symbols, channels and the book depth."""

    symbols: tuple[str, ...]
    channels: tuple[str, ...] = ("book", "ticker", "trade")
    book_depth: int = 10
    instruments: dict[str, Instrument] = field(default_factory=dict)
    rest_endpoint: str = ""  # the venue's REST base URL, for adapters that seed books from snapshots
    snapshot_verify_s: float = 60.0  # ... and how often they compare the book with a fresh snapshot


REST_FRAME_KEY = "mm_rest"


def rest_frame(url: str, t_sent_ns: int, status: int, body: bytes | str) -> str:
    """A REST answer as a feed frame: ``{"mm_rest": {"url", "t_sent", "status"}, "body": ...}``.

    ``body`` is embedded as JSON when it parses, else as text (an error page). One line, so the raw
    archive keeps it like any frame; the adapter that asked for it (:class:`SnapshotRequest`
    events) recognises it by its key. ``status`` 0 = no answer (the error text is the body).
    """
    import orjson

    try:
        value = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        value = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return orjson.dumps({REST_FRAME_KEY: {"url": url, "t_sent": int(t_sent_ns), "status": int(status)},
                         "body": value}).decode()


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
    # venues without a checksum verify otherwise (synced from a snapshot, never crossed, re-snapshots agree)
    verified_updates: int = 0  # updates the venue's integrity rule accepted (checksum venues: see checksums_ok)
    snapshot_checks_ok: int = 0  # periodic re-snapshots that agreed with the book
    snapshot_checks_failed: int = 0  # ... that did not (an event and a resync each)
    crossed_books: int = 0  # moments the adapter found a book crossed or locked (an event and a resync each)
    time_gaps: int = 0  # exchange-time gaps beyond the venue's bound (each triggers a verification)
    stale_updates: int = 0  # diffs at or before the snapshot that seeded the book (already in it: dropped)


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


# ---------------------------------------------------------------------------- venue rules


@dataclass(frozen=True)
class FeeTierRow:
    """One row of a venue's volume-tiered spot fee schedule: from ``volume_usd`` of 30-day volume up."""

    volume_usd: float
    maker_pct: float  # negative = rebate
    taker_pct: float


@dataclass(frozen=True)
class RateCounterSpec:
    """One tier of a per-pair order-rate counter with age-based costs.

    Every request adds its cost to a counter that decays linearly by ``decay_per_s``; a request that
    would take it above ``threshold`` is rejected (and does not count). A new order costs
    ``new_cost``; a cancel costs the first ``cancel_costs`` entry ``(younger than s, cost)`` whose
    age bound the order is under, else ``cancel_after``; an amend likewise with ``amend_costs`` and
    ``amend_after``. Age bounds ascend.
    """

    name: str
    threshold: float
    decay_per_s: float
    new_cost: float = 1.0
    cancel_costs: tuple[tuple[float, float], ...] = ()
    cancel_after: float = 0.0
    amend_costs: tuple[tuple[float, float], ...] = ()
    amend_after: float = 1.0

    @classmethod
    def off(cls) -> "RateCounterSpec":
        """No counter at all (the ``off`` tier every venue has)."""
        return cls("off", float("inf"), 0.0)


class VenueRules(Protocol):
    """What the core needs to know about one venue, as plain values (one instance per venue:
    ``mm_core/adapters/<name>/__init__.py`` exposes it as ``VENUE``)."""

    name: str  # the config's [exchange] name
    adapters: Mapping[str, str]  # adapter name (config [exchange] adapter) -> "module:Class"
    fee_tiers: tuple[FeeTierRow, ...]  # the venue's spot schedule, or () when its shipped config holds it
    rate_tiers: Mapping[str, RateCounterSpec]  # by account tier name ("off" is added by the core)
    idle_heartbeat_s: Optional[float]  # the feed confirms itself this often when nothing changes
    client_order_id_max_len: int

    def duplicate_subscription(self, error: str) -> bool:
        """True when a subscription error only says the channel is already subscribed (a resync's
        re-subscribe racing the old one): harmless, logged, not fatal."""
        ...

    def known_instruments(self) -> Mapping[str, Instrument]:
        """Instruments the venue module knows without asking the exchange (by symbol)."""
        ...

    def instruments_from_file(self, path: Any) -> Mapping[str, Instrument]:
        """Instruments from a file the venue publishes its rules in (an instrument channel message,
        a REST answer saved to disk); ValueError naming the file when it cannot be read."""
        ...

    def recording_adapter(self, url: Optional[str], texts: Sequence[str]) -> Optional[str]:
        """The adapter that speaks a recording whose connection URL (None if the file has none) and
        first frames are these, or None when it is not this venue's."""
        ...

    def replay_adapter(self, adapter: str, header: Mapping[str, Any],
                       fallback_precision: Optional[tuple[int, int]]) -> "FeedAdapter":
        """The adapter ``mm replay`` runs a recording through (header: the raw archive's, or {})."""
        ...

    def recording_frames(self, path: Any, frames: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        """The frames of a recording at ``path``, with whatever the venue keeps beside it (REST
        snapshots recorded to seed the books) merged in capture order; default: ``frames`` as is."""
        ...


@dataclass(frozen=True)
class HistorySeries:
    """A venue's saved market-history file as plain series: ``ohlc`` bars (``ts_ns`` bar times,
    ``price`` closes) or ``trades`` (``ts_ns``, ``price``, ``qty``, ``buy`` aggressor side)."""

    kind: str
    pair: str
    source: str
    ts_ns: list[int]
    price: list[float]
    qty: list[float] = field(default_factory=list)
    buy: list[bool] = field(default_factory=list)

