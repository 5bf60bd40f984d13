"""Canonical market-data events: the one schema every exchange adapter produces.

Every event carries the same header -- ``exchange, symbol, ts_exchange, ts_capture`` -- so that
downstream code (storage, QA, latency analysis, research, backtest) never branches on the exchange.
Timestamps are int64 nanoseconds since the Unix epoch, UTC. ``ts_exchange`` is ``None`` when the
exchange did not say when the event happened (Kraken v2 book snapshots, old ticker messages);
``ts_capture`` is when our process received the frame (0 when replaying a file that had none).

Events are immutable values (``msgspec.Struct(frozen=True)``): created once, cheap to build on the
hot path, and trivially turned into columns. Each class names the Parquet table it belongs to
(``TABLE``); :func:`arrow_schema` derives the Arrow schema from the class fields, so the schema and
the class cannot drift apart.
"""

from __future__ import annotations

import typing
from typing import ClassVar, Optional

import msgspec

Level = tuple[float, float]
"""One price level: ``(price, qty)``. In updates ``qty == 0`` means "delete this level"."""


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """Common header of every canonical event."""

    exchange: str
    symbol: str
    ts_exchange: Optional[int]
    ts_capture: int

    TABLE: ClassVar[str] = "event"
    KIND: ClassVar[str] = "event"


# --------------------------------------------------------------------------- market data


class TopOfBook(Event, frozen=True, kw_only=True):
    """Best bid/ask. ``ts_exchange`` is the exchange time of the book update (or ticker) behind it."""

    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    source: str = "book"  # "book" (derived from our verified L2 book) or "ticker" (exchange BBO feed)

    TABLE: ClassVar[str] = "top_of_book"
    KIND: ClassVar[str] = "top_of_book"


class BookLevels(Event, frozen=True, kw_only=True):
    """Base of book snapshots and updates; both share the ``book`` table (in exchange order).

    Levels are best first on each side for snapshots and in wire order for updates. ``verified`` is
    True when the book checksum after applying this message matched the exchange's; False when it
    did not, or when the book was already invalid (awaiting a resync) so nothing could be checked.
    ``depth`` is the subscribed depth the book is truncated to.
    """

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    checksum: Optional[int] = None
    verified: bool = True
    depth: int = 0

    TABLE: ClassVar[str] = "book"


class BookSnapshot(BookLevels, frozen=True, kw_only=True):
    """Full book image as sent by the exchange after subscribe or resync."""

    KIND: ClassVar[str] = "book_snapshot"


class BookUpdate(BookLevels, frozen=True, kw_only=True):
    """Incremental change of price levels, in the order the exchange sent them (qty 0 = delete)."""

    KIND: ClassVar[str] = "book_update"


class Trade(Event, frozen=True, kw_only=True):
    """A public trade. ``side`` is the taker side ("buy" or "sell")."""

    price: float
    qty: float
    side: str
    trade_id: Optional[int] = None
    ord_type: Optional[str] = None

    TABLE: ClassVar[str] = "trade"
    KIND: ClassVar[str] = "trade"


# --------------------------------------------------------------------------- feed health
# All health events share one Parquet table ("health"); their extra fields are flattened into the
# generic columns ``detail`` (text) and ``value`` (number) by :func:`health_row`.


class FeedHealth(Event, frozen=True, kw_only=True):
    """Base of feed-health events (connection state, exchange status, book integrity)."""

    TABLE: ClassVar[str] = "health"
    KIND: ClassVar[str] = "health"


class Connected(FeedHealth, frozen=True, kw_only=True):
    url: str = ""
    attempt: int = 0

    KIND: ClassVar[str] = "connected"


class Disconnected(FeedHealth, frozen=True, kw_only=True):
    reason: str = ""
    code: Optional[int] = None

    KIND: ClassVar[str] = "disconnected"


class Reconnecting(FeedHealth, frozen=True, kw_only=True):
    attempt: int = 0
    delay_s: float = 0.0

    KIND: ClassVar[str] = "reconnecting"


class Silence(FeedHealth, frozen=True, kw_only=True):
    """No frame at all (heartbeats included) for ``duration_s``: the watchdog fired."""

    duration_s: float = 0.0

    KIND: ClassVar[str] = "silence"


class SubscriptionError(FeedHealth, frozen=True, kw_only=True):
    channel: str = ""
    error: str = ""
    req_id: Optional[int] = None

    KIND: ClassVar[str] = "subscription_error"


class Subscribed(FeedHealth, frozen=True, kw_only=True):
    channel: str = ""
    req_id: Optional[int] = None

    KIND: ClassVar[str] = "subscribed"


class ExchangeStatus(FeedHealth, frozen=True, kw_only=True):
    """Exchange engine state: online | maintenance | cancel_only | post_only | ..."""

    status: str = ""
    version: str = ""

    KIND: ClassVar[str] = "exchange_status"


class Heartbeat(FeedHealth, frozen=True, kw_only=True):
    KIND: ClassVar[str] = "heartbeat"


class Pong(FeedHealth, frozen=True, kw_only=True):
    """Answer to our application ping; ``time_in``/``time_out`` are the exchange's clock (ns)."""

    req_id: Optional[int] = None
    time_in: Optional[int] = None
    time_out: Optional[int] = None

    KIND: ClassVar[str] = "pong"


class ClockEstimate(FeedHealth, frozen=True, kw_only=True):
    """Clock offset (exchange − local, ns) and round-trip time from one ping/pong exchange."""

    offset_ns: int = 0
    rtt_ns: int = 0

    KIND: ClassVar[str] = "clock_estimate"


class ChecksumMismatch(FeedHealth, frozen=True, kw_only=True):
    expected: int = 0
    computed: int = 0

    KIND: ClassVar[str] = "checksum_mismatch"


class Resync(FeedHealth, frozen=True, kw_only=True):
    """The book for ``symbol`` is invalid and must be re-snapshotted (``reason`` says why)."""

    reason: str = ""

    KIND: ClassVar[str] = "resync"


class BadMessage(FeedHealth, frozen=True, kw_only=True):
    """A frame we could not use (malformed JSON, unknown channel, missing field, bad number, ...).

    ``text`` is the offending frame truncated to :data:`BAD_TEXT_MAX` characters.
    """

    reason: str = ""
    text: str = ""

    KIND: ClassVar[str] = "bad_message"


class WriterQueueFull(FeedHealth, frozen=True, kw_only=True):
    """The collector's writer queue was full: reading paused ``duration_s`` until it drained.

    Nothing was dropped (frames waited in the socket), but frames arriving meanwhile were stamped
    late; ``queued`` is how many items waited for the disk.
    """

    duration_s: float = 0.0
    queued: int = 0

    KIND: ClassVar[str] = "writer_queue_full"


BAD_TEXT_MAX = 200

MARKET_EVENTS: tuple[type[Event], ...] = (TopOfBook, BookSnapshot, BookUpdate, Trade)
HEALTH_EVENTS: tuple[type[FeedHealth], ...] = (
    Connected,
    Disconnected,
    Reconnecting,
    Silence,
    SubscriptionError,
    Subscribed,
    ExchangeStatus,
    Heartbeat,
    Pong,
    ClockEstimate,
    ChecksumMismatch,
    Resync,
    BadMessage,
    WriterQueueFull,
)
ALL_EVENTS: tuple[type[Event], ...] = MARKET_EVENTS + HEALTH_EVENTS
EVENT_BY_KIND: dict[str, type[Event]] = {cls.KIND: cls for cls in ALL_EVENTS}

HEADER_FIELDS = ("exchange", "symbol", "ts_exchange", "ts_capture")


def truncate_text(text: str | bytes, limit: int = BAD_TEXT_MAX) -> str:
    """Shorten offending input for logs/events so one bad multi-MB frame cannot flood them."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


def event_fields(event: Event) -> dict[str, object]:
    """All fields of an event as a plain dict, plus ``kind``."""
    out: dict[str, object] = {"kind": event.KIND}
    for name in event.__struct_fields__:
        out[name] = getattr(event, name)
    return out


# --------------------------------------------------------------------------- Arrow schemas


def _arrow_type(tp: object):  # -> pyarrow.DataType
    import pyarrow as pa

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "types.UnionType"):
        non_none = [a for a in args if a is not type(None)]
        return _arrow_type(non_none[0])
    if tp is int:
        return pa.int64()
    if tp is float:
        return pa.float64()
    if tp is str:
        return pa.string()
    if tp is bool:
        return pa.bool_()
    if origin is tuple:
        # tuple[Level, ...] -> list<struct<price, qty>>
        return pa.list_(pa.struct([("price", pa.float64()), ("qty", pa.float64())]))
    raise TypeError(f"no Arrow mapping for {tp!r}")


def arrow_schema(cls: type[Event]):  # -> pyarrow.Schema
    """Arrow schema of one event class (header first, then its own fields, plus ``kind``).

    Health events all share the ``health`` table schema (see :func:`health_schema`).
    """
    import pyarrow as pa

    if issubclass(cls, FeedHealth):
        return health_schema()
    hints = typing.get_type_hints(cls)
    fields = [pa.field("kind", pa.string(), nullable=False)]
    for name in cls.__struct_fields__:
        tp = hints[name]
        nullable = type(None) in typing.get_args(tp)
        fields.append(pa.field(name, _arrow_type(tp), nullable=nullable))
    return pa.schema(fields)


def health_schema():  # -> pyarrow.Schema
    """One table for every feed-health event: header, ``kind``, a text ``detail`` and a ``value``."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("kind", pa.string(), nullable=False),
            pa.field("exchange", pa.string(), nullable=False),
            pa.field("symbol", pa.string(), nullable=False),
            pa.field("ts_exchange", pa.int64()),
            pa.field("ts_capture", pa.int64(), nullable=False),
            pa.field("detail", pa.string()),
            pa.field("value", pa.float64()),
        ]
    )


_HEALTH_VALUE_FIELD = {
    "attempt": "attempt",
    "delay_s": "delay_s",
    "duration_s": "duration_s",
    "offset_ns": "offset_ns",
    "computed": "computed",
}


def health_row(event: FeedHealth) -> dict[str, object]:
    """Flatten a health event into the ``health`` table's columns.

    ``detail`` holds every body field as compact JSON (lossless); ``value`` holds the one number a
    dashboard most wants (delay, silence duration, clock offset, ...) or null.
    """
    body = {n: getattr(event, n) for n in event.__struct_fields__ if n not in HEADER_FIELDS}
    value = None
    for name in body:
        if name in _HEALTH_VALUE_FIELD and isinstance(body[name], (int, float)):
            value = float(body[name])
            break
    return {
        "kind": event.KIND,
        "exchange": event.exchange,
        "symbol": event.symbol,
        "ts_exchange": event.ts_exchange,
        "ts_capture": event.ts_capture,
        "detail": msgspec.json.encode(body).decode() if body else None,
        "value": value,
    }


def table_schemas() -> dict[str, object]:
    """Parquet table name -> Arrow schema, for every table the store writes."""
    out: dict[str, object] = {}
    for cls in MARKET_EVENTS:
        if cls.TABLE not in out:
            out[cls.TABLE] = arrow_schema(cls)
    out["health"] = health_schema()
    return out
