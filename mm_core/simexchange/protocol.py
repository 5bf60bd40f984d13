"""Kraken WS v2 public messages, as the exchange writes them (the simulator may know the wire).

Reference: ../shared/kraken-protocol.md §1.1 (envelope, acks, errors), §1.3 ticker, §1.4 book +
checksum, §1.5 trade, §1.6 heartbeat/ping/status. Examples of every message are in the function
docstrings so the wire format is reviewable in one place.

Numbers are JSON numbers written the way Kraken writes them: at the pair's precision with the
trailing zeros kept (``"price":61234.0,"qty":0.00100000``), rendered from the integer units (ticks,
satoshis), so they are exact and never in exponent notation. A client that keeps the wire text (as
Kraken's own SDK does) and one that parses floats and re-formats them at the pair's precision (as
python-kraken-sdk does) both recompute exactly the checksum we send; tests run both over a socket.
Book, trade and ticker messages are therefore written as text here; the rest go through orjson.

Level order inside one side of a book update follows Kraken: deletions first, then levels that
re-enter the subscribed depth, then the changed levels in the order they happened (see
:class:`mm_core.simexchange.market.DepthView`). A client that truncates to its depth after every
single level (python-kraken-sdk does) would otherwise drop a level that should slide into view.
"""

from __future__ import annotations

import calendar
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Optional, Union

import orjson

from mm_core.adapters.kraken.checksum import checksum_of_levels
from mm_core.simexchange.market import (
    PRICE_PRECISION,
    QTY_PRECISION,
    Level,
    LevelBook,
    TickerStats,
    TradePrint,
    price_of,
    qty_of,
)

API_VERSION = "v2"
ENGINE_VERSION = "2.0.10"
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
CHANNELS = ("book", "ticker", "trade")
EVENT_TRIGGERS = ("bbo", "trades")
TRADE_SNAPSHOT_SIZE = 50

HEARTBEAT = b'{"channel":"heartbeat"}'

_dumps = orjson.dumps


# --------------------------------------------------------------------------- time


_ts_cache: tuple[int, str] = (-1, "")


def rfc3339_us(ns: int) -> str:
    """``2026-05-01T10:00:00.123456Z``: RFC 3339, UTC, exactly 6 fractional digits (like Kraken)."""
    global _ts_cache
    sec, rem = divmod(ns, 1_000_000_000)
    cached_sec, prefix = _ts_cache
    if cached_sec != sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_cache = (sec, prefix)
    return f"{prefix}.{rem // 1000:06d}Z"


def parse_rfc3339_ns(text: str) -> int:
    """Inverse of :func:`rfc3339_us` (also accepts fewer fractional digits)."""
    head, _, frac = text.rstrip("Z").partition(".")
    dt = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S")
    frac_ns = int((frac + "000000000")[:9]) if frac else 0
    return calendar.timegm(dt.timetuple()) * 1_000_000_000 + frac_ns


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """A parsed client request; ``error`` is set when it cannot be understood at all."""

    method: Optional[str]
    params: dict[str, Any] = field(default_factory=dict)
    req_id: Any = None
    error: Optional[str] = None


@dataclass(frozen=True)
class Subscription:
    """A valid ``subscribe``/``unsubscribe`` request body (symbols still to be checked)."""

    channel: str
    symbols: tuple[str, ...]
    depth: int = 10
    snapshot: bool = True
    event_trigger: str = "trades"

    def result(self, symbol: str, method: str) -> dict[str, Any]:
        """The ``result`` object of a successful ack for one symbol (Kraken echoes key params)."""
        out: dict[str, Any] = {"channel": self.channel}
        if self.channel == "book":
            out["depth"] = self.depth
        if self.channel == "ticker":
            out["event_trigger"] = self.event_trigger
        if method == "subscribe":
            out["snapshot"] = self.snapshot
        out["symbol"] = symbol
        return out


def parse_request(raw: Union[str, bytes]) -> Request:
    """Parse one frame from a client; never raises."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Request(None, error="Malformed request")
    if not isinstance(msg, dict):
        return Request(None, error="Malformed request")
    method = msg.get("method")
    params = msg.get("params")
    req_id = msg.get("req_id")
    if not isinstance(method, str):
        return Request(None, req_id=req_id, error="Method field missing")
    if params is not None and not isinstance(params, dict):
        return Request(method, req_id=req_id, error="Params field must be an object")
    return Request(method, params or {}, req_id)


def parse_subscription(method: str, params: dict[str, Any]) -> Union[Subscription, str]:
    """A :class:`Subscription`, or the error text Kraken would answer with."""
    channel = params.get("channel")
    if channel not in CHANNELS:
        return "Subscription name invalid"
    symbols = params.get("symbol")
    if symbols is None:
        return "Symbol field missing"
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols) or not symbols:
        return "Symbol field must be an array"
    depth = params.get("depth", 10)
    if channel == "book" and (type(depth) is not int or depth not in BOOK_DEPTHS):
        return "Subscription depth not supported"
    snapshot = params.get("snapshot", channel != "trade")
    if not isinstance(snapshot, bool):
        return "Snapshot field must be a boolean"
    trigger = params.get("event_trigger", "trades")
    if channel == "ticker" and trigger not in EVENT_TRIGGERS:
        return "Event trigger not supported"
    return Subscription(channel, tuple(symbols), depth if channel == "book" else 10, snapshot, trigger)


# --------------------------------------------------------------------------- responses


def status(system: str, connection_id: int) -> bytes:
    """``{"channel":"status","type":"update","data":[{"system":"online","api_version":"v2",
    "connection_id":644748166216981300,"version":"2.0.10"}]}`` -- on connect and on state changes."""
    data = {"system": system, "api_version": API_VERSION, "connection_id": connection_id, "version": ENGINE_VERSION}
    return _dumps({"channel": "status", "type": "update", "data": [data]})


def ack(method: str, result: dict[str, Any], time_in_ns: int, time_out_ns: int, req_id: Any) -> bytes:
    """``{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,
    "symbol":"BTC/EUR"},"success":true,"time_in":"…","time_out":"…","req_id":7}`` (one per symbol)."""
    msg: dict[str, Any] = {
        "method": method,
        "result": result,
        "success": True,
        "time_in": rfc3339_us(time_in_ns),
        "time_out": rfc3339_us(time_out_ns),
    }
    if req_id is not None:
        msg["req_id"] = req_id
    return _dumps(msg)


def error(
    method: Optional[str],
    text: str,
    time_in_ns: int,
    time_out_ns: int,
    req_id: Any,
    symbol: Optional[str] = None,
) -> bytes:
    """``{"error":"Currency pair not supported XBT/EUR","method":"subscribe","success":false,
    "symbol":"XBT/EUR","time_in":"…","time_out":"…","req_id":7}`` -- the socket stays open."""
    msg: dict[str, Any] = {"error": text}
    if method is not None:
        msg["method"] = method
    msg["success"] = False
    if symbol is not None:
        msg["symbol"] = symbol
    msg["time_in"] = rfc3339_us(time_in_ns)
    msg["time_out"] = rfc3339_us(time_out_ns)
    if req_id is not None:
        msg["req_id"] = req_id
    return _dumps(msg)


def pong(req_id: Any, time_in_ns: int, time_out_ns: int) -> bytes:
    """``{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",
    "time_out":"2023-09-24T14:10:23.799703Z"}``"""
    msg: dict[str, Any] = {"method": "pong"}
    if req_id is not None:
        msg["req_id"] = req_id
    msg["time_in"] = rfc3339_us(time_in_ns)
    msg["time_out"] = rfc3339_us(time_out_ns)
    return _dumps(msg)


# --------------------------------------------------------------------------- market data

_PRICE_UNIT = 10**PRICE_PRECISION
_QTY_UNIT = 10**QTY_PRECISION


def price_text(ticks: int) -> str:
    """``61234.0``: a price in ticks as Kraken writes it (pair precision, trailing zero kept)."""
    sign = "-" if ticks < 0 else ""
    whole, frac = divmod(abs(ticks), _PRICE_UNIT)
    return f"{sign}{whole}.{frac:0{PRICE_PRECISION}d}"


def qty_text(sats: int) -> str:
    """``0.00100000``: a size in satoshis as Kraken writes it (8 decimals, trailing zeros kept)."""
    whole, frac = divmod(sats, _QTY_UNIT)
    return f"{whole}.{frac:0{QTY_PRECISION}d}"


def _levels(levels: Iterable[Level]) -> str:
    return "[" + ",".join([f'{{"price":{price_text(t)},"qty":{qty_text(s)}}}' for t, s in levels]) + "]"


def _symbol(symbol: str) -> str:
    return orjson.dumps(symbol).decode()


def book_checksum(book: LevelBook) -> int:
    """Kraken CRC32 of the top 10 of each side, from the numbers exactly as a client parses them."""
    bids, asks = book.top(10)
    return checksum_of_levels(
        [(price_of(t), qty_of(s)) for t, s in asks],
        [(price_of(t), qty_of(s)) for t, s in bids],
        PRICE_PRECISION,
        QTY_PRECISION,
    )


def book_checksum_ints(book: LevelBook) -> int:
    """The same checksum from the integer units directly (tokens are ``str(ticks)``,
    ``str(sats)``): 5x faster, for bulk generation; tests pin it to :func:`book_checksum`."""
    bids, asks = book.top(10)
    text = "".join([f"{t}{s}" for t, s in asks] + [f"{t}{s}" for t, s in bids])
    return zlib.crc32(text.encode("ascii"))


def book_snapshot(symbol: str, bids: list[Level], asks: list[Level], checksum: int) -> bytes:
    """``{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/EUR","bids":[{"price":61234.5,
    "qty":0.25000000}…],"asks":[…],"checksum":3310070434}]}`` -- best first, **no timestamp**."""
    return (
        f'{{"channel":"book","type":"snapshot","data":[{{"symbol":{_symbol(symbol)},"bids":{_levels(bids)},'
        f'"asks":{_levels(asks)},"checksum":{checksum}}}]}}'
    ).encode()


def book_update(symbol: str, bids: list[Level], asks: list[Level], checksum: int, ts_ns: int) -> bytes:
    """``{"channel":"book","type":"update","data":[{"symbol":"BTC/EUR","bids":[],"asks":[{"price":
    61234.6,"qty":0.00000000}],"checksum":…,"timestamp":"2026-05-01T10:00:00.123456Z"}]}`` --
    levels in Kraken's order (deletions first), qty 0 deletes; checksum of the top 10 after
    applying and truncating."""
    return (
        f'{{"channel":"book","type":"update","data":[{{"symbol":{_symbol(symbol)},"bids":{_levels(bids)},'
        f'"asks":{_levels(asks)},"checksum":{checksum},"timestamp":"{rfc3339_us(ts_ns)}"}}]}}'
    ).encode()


def ticker(symbol: str, book: LevelBook, stats: TickerStats, ts_ns: int, kind: str = "update") -> bytes:
    """``{"channel":"ticker","type":"update","data":[{"symbol":"BTC/EUR","bid":61234.5,
    "bid_qty":0.25000000,"ask":61234.6,"ask_qty":1.10000000,"last":61230.0,"volume":250.12345678,
    "vwap":61100.2,"low":60500.0,"high":61900.0,"change":734.0,"change_pct":1.21,"timestamp":"…"}]}``"""
    bbo = book.bbo()
    bid_t, bid_s, ask_t, ask_s = bbo if bbo is not None else (0, 0, 0, 0)
    f = stats.int_fields()
    return (
        f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":{_symbol(symbol)},'
        f'"bid":{price_text(bid_t)},"bid_qty":{qty_text(bid_s)},"ask":{price_text(ask_t)},"ask_qty":{qty_text(ask_s)},'
        f'"last":{price_text(f["last"])},"volume":{qty_text(f["volume"])},"vwap":{price_text(f["vwap"])},'
        f'"low":{price_text(f["low"])},"high":{price_text(f["high"])},"change":{price_text(f["change"])},'
        f'"change_pct":{f["change_pct_x100"] / 100:.2f},"timestamp":"{rfc3339_us(ts_ns)}"}}]}}'
    ).encode()


def trades(symbol: str, prints: Iterable[TradePrint], kind: str = "update") -> bytes:
    """``{"channel":"trade","type":"update","data":[{"symbol":"BTC/EUR","side":"buy","price":
    61234.6,"qty":0.01250000,"ord_type":"market","trade_id":91234567,"timestamp":"…"}]}``"""
    sym = _symbol(symbol)
    data = ",".join(
        [
            f'{{"symbol":{sym},"side":"{p.side}","price":{price_text(p.ticks)},"qty":{qty_text(p.sats)},'
            f'"ord_type":"{p.ord_type}","trade_id":{p.trade_id},"timestamp":"{rfc3339_us(p.ts_ns)}"}}'
            for p in prints
        ]
    )
    return f'{{"channel":"trade","type":"{kind}","data":[{data}]}}'.encode()


# --------------------------------------------------------------------------- faults


def malformed(variant: str, real: bytes, channel: str, symbol: str) -> bytes:
    """A broken frame: ``truncated`` (cut JSON), ``garbage`` (not JSON at all, like a proxy error
    page) or ``missing_fields`` (valid JSON without the fields the channel requires)."""
    if variant == "truncated":
        return real[: max(1, len(real) // 2)]
    if variant == "garbage":
        return b"<html><body>502 Bad Gateway</body></html>"
    if variant == "missing_fields":
        return _dumps({"channel": channel, "type": "update", "data": [{"symbol": symbol}]})
    raise ValueError(f"unknown malformed variant {variant!r}")
