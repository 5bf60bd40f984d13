"""Bitstamp WebSocket v2 and REST wire facts: channel names, pair codes, messages, timestamps.

WebSocket (``wss://ws.bitstamp.net``), one object per frame, ``event`` says what it is::

    {"event": "bts:subscribe", "data": {"channel": "diff_order_book_btceur"}}          (we send)
    {"event": "bts:subscription_succeeded", "channel": "diff_order_book_btceur", "data": {}}
    {"data": {"timestamp": "1618677691", "microtimestamp": "1618677691961541",
              "bids": [["60526.75", "0.12391066"], ["60520.52", "0.00000000"]], "asks": []},
     "channel": "diff_order_book_btcusd", "event": "data"}                              (qty 0 = delete)
    {"channel": "live_trades_btcusd", "event": "trade", "data": {"id": 164507735, "amount": 0.032712,
     "amount_str": "0.03271200", "price": 60553.64, "price_str": "60553.64", "type": 0,
     "microtimestamp": "1618677693933000", "timestamp": "1618677693", ...}}           (type 0 = buy)
    {"event": "bts:heartbeat"}                         (we send) -> {"event": "bts:heartbeat",
     "channel": "", "data": {"status": "success"}}
    {"event": "bts:request_reconnect", "channel": "", "data": ""}   (reconnect now, the server asks)
    {"event": "bts:error", "channel": "", "data": {"code": null, "message": "Bad subscription string."}}

REST ``GET /api/v2/order_book/btceur/`` answers the full book with its ``microtimestamp``::

    {"timestamp": "1618677695", "microtimestamp": "1618677695291295",
     "bids": [["60526.75", "0.12391066"], ...], "asks": [...]}

and ``GET /api/v2/trading-pairs-info/`` lists the pairs (``url_symbol`` btceur, ``name`` BTC/EUR,
``counter_decimals`` 2, ``base_decimals`` 8, ``minimum_order`` "20.0 EUR").

There is no checksum and no sequence number: the exchange time of a diff (``microtimestamp``, µs)
is the only order the feed states. Times become int ns exactly (µs text * 1000).
"""

from __future__ import annotations

from typing import Iterable

BOOK_PREFIX = "diff_order_book_"
TRADES_PREFIX = "live_trades_"
CHANNELS: tuple[str, ...] = ("book", "trade")  # our names; ticker: Bitstamp has no BBO channel
CHANNEL_PREFIX = {"book": BOOK_PREFIX, "trade": TRADES_PREFIX}
ORDER_BOOK_PATH = "/api/v2/order_book/"
PAIRS_INFO_PATH = "/api/v2/trading-pairs-info/"
MAX_DEPTH = 1000  # the depth of the view we publish; the adapter keeps the whole book

# quote currencies, longest first: a pair code is BASE + QUOTE without separator (btceur, usdtusd)
QUOTES: tuple[str, ...] = ("usdt", "usdc", "gusd", "pax", "eur", "usd", "gbp", "btc", "eth", "chf", "jpy")


def pair_code(symbol: str) -> str:
    """``BTC/EUR`` -> ``btceur`` (the url_symbol of channels and REST paths)."""
    return symbol.replace("/", "").lower()


def symbol_of(code: str) -> str:
    """``btceur`` -> ``BTC/EUR`` by the longest known quote suffix (pairs info, when present, wins)."""
    for q in QUOTES:
        if code.endswith(q) and len(code) > len(q):
            return f"{code[: -len(q)].upper()}/{q.upper()}"
    return code.upper()


def micro_ns(text: object) -> int:
    """A ``microtimestamp`` (µs since the epoch, text or int) -> int ns; ValueError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text * 1000
    if isinstance(text, str) and text.isdigit() and text.isascii():
        return int(text) * 1000
    raise ValueError(f"not a microtimestamp: {text!r}")


def subscribe_message(channel: str) -> str:
    return '{"event":"bts:subscribe","data":{"channel":"%s"}}' % channel


HEARTBEAT_REQUEST = '{"event":"bts:heartbeat"}'


def validate_feed(symbol: str, depth: int, channels: Iterable[str]) -> None:
    """Raise ValueError (naming the field and the fix) if Bitstamp cannot serve this feed."""
    if not isinstance(symbol, str) or symbol.count("/") != 1 or not all(symbol.split("/")):
        raise ValueError(f"symbol {symbol!r} is not of the form BASE/QUOTE (e.g. 'BTC/EUR')")
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"book depth {depth!r}: the published view must be 1..{MAX_DEPTH} levels "
                         "(the adapter keeps the whole book; the depth is what it publishes)")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValueError(f"channels {unknown} are not offered by Bitstamp WS v2 (no BBO ticker channel); "
                         f"use {', '.join(CHANNELS)}")
