"""Kraken spot WebSocket API v1 adapter (``wss://ws.kraken.com``): so existing recordings import.

v1 is feature-frozen (v2 is what the collector uses), but years of captures -- cryptofeed's
``KRAKEN.ws.*`` files among them -- are v1. What differs from v2 (../shared/kraken-protocol.md §2):

* data frames are positional arrays ``[channelID, payload..., channelName, pair]``; the book depth
  is in the channel name (``book-1000``) and the book is truncated to it;
* book levels are ``[price, volume, timestamp]`` *strings*, with an optional 4th element ``"r"``
  (republish: a level re-entering scope -- applied like any other level). Snapshots (``as``/``bs``)
  carry no checksum; updates carry ``a`` and/or ``b`` and the checksum ``c`` -- and a message may
  hold asks and bids as **two** dicts, with ``c`` in the last one (cryptofeed only looks in the
  first and so skips those checks; this adapter applies both, in order, then checks ``c``);
* the checksum uses the price/volume strings exactly as received (``token_from_text``);
* every level has its own timestamp: an update's ``ts_exchange`` is the newest level timestamp in
  it; a snapshot's is None (level times say when each level last changed, not when the snapshot
  was taken);
* symbols are v1 names (``XBT/CHF``) and are emitted as received, **not** renamed to v2 names --
  a v1 recording's events keep the symbol the exchange used at the time.

Integrity rules are those of the v2 adapter (shared in :mod:`.feed`): a checksum mismatch or a
lost update invalidates the book until the next snapshot; unverified updates produce no
TopOfBook; bad input is a BadMessage, never an exception.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional, Sequence
from zlib import crc32

import orjson

from mm_core.adapters.base import FeedSpec
from mm_core.adapters.kraken.checksum import CHECKSUM_LEVELS
from mm_core.adapters.kraken.feed import INPUT_ERRORS, BadInput, KrakenFeedBase, SymbolBook, describe
from mm_core.adapters.kraken.wire import V1_DEPTHS, parse_epoch_text_ns, validate_v1_feed
from mm_core.book import L2Book
from mm_core.events import (
    BookSnapshot,
    BookUpdate,
    Event,
    ExchangeStatus,
    Heartbeat,
    Pong,
    Subscribed,
    SubscriptionError,
    TopOfBook,
    Trade,
    truncate_text,
)

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_N = CHECKSUM_LEVELS
_INF = float("inf")

# v1 subscription name for each canonical channel. "ticker" maps to v1 "spread": the only v1
# best-bid/offer stream that carries an exchange timestamp (v1 "ticker" has none).
V1_SUBSCRIPTION: dict[str, str] = {"book": "book", "ticker": "spread", "trade": "trade"}

Handler = Callable[[list, Any, int], list[Event]]


def _token(text: str) -> str:
    """v1 checksum token: the string as received, point removed, leading zeros stripped."""
    return text.replace(".", "").lstrip("0")


def _level(level: list) -> tuple[float, float, str, str, str]:
    """``["0.05005", "0.00000500", "1582905487.684110"]`` (+ optional ``"r"``) ->
    (price, volume, price text, volume text, timestamp text), validated."""
    ptext, vtext, ttext = level[0], level[1], level[2]
    if not (ptext.__class__ is str and vtext.__class__ is str and ttext.__class__ is str):
        raise BadInput(f"book level {truncate_text(repr(level), 80)} is not [price, volume, time] strings")
    try:
        p = float(ptext)
        v = float(vtext)
    except ValueError:
        p = v = -1.0
    if not (0 < p < _INF and 0 <= v < _INF):
        raise BadInput(f"book level {truncate_text(repr(level), 80)} has an invalid price/volume")
    return p, v, ptext, vtext, ttext


class _V1Book(SymbolBook):
    __slots__ = ()


class KrakenV1Adapter(KrakenFeedBase):
    """Sans-IO Kraken WS v1 protocol machine (book, spread, trade, ticker, status)."""

    URL = "wss://ws.kraken.com"
    DEPTHS = V1_DEPTHS

    def __init__(self, spec: FeedSpec, exchange: str = "kraken") -> None:
        super().__init__(exchange)
        for symbol in spec.symbols:
            validate_v1_feed(symbol, spec.book_depth, spec.channels)
        self.spec = spec
        self._states: dict[str, _V1Book] = {}
        self._req_ids = itertools.count(1)
        self._handlers: dict[str, Handler] = {
            "spread": self._on_spread,
            "trade": self._on_trade,
            "ticker": self._on_ticker,
        }

    @staticmethod
    def validate_feed(symbol: str, depth: int, channels: Sequence[str]) -> None:
        """Raise ValueError if WS v1 cannot serve this feed."""
        validate_v1_feed(symbol, depth, channels)

    # ================================================================== outgoing messages

    def _request(self, event: str, pairs: list[str], subscription: dict[str, Any]) -> str:
        return orjson.dumps(
            {"event": event, "pair": pairs, "subscription": subscription, "reqid": next(self._req_ids)}
        ).decode()

    def subscribe_messages(self) -> list[str]:
        """``{"event":"subscribe","pair":["XBT/EUR"],"subscription":{"name":"book","depth":10},
        "reqid":1}`` per channel (``ticker`` subscribes v1 ``spread``, see V1_SUBSCRIPTION)."""
        pairs = list(self.spec.symbols)
        out = []
        for channel in self.spec.channels:
            sub: dict[str, Any] = {"name": V1_SUBSCRIPTION[channel]}
            if channel == "book":
                sub["depth"] = self.spec.book_depth
            out.append(self._request("subscribe", pairs, sub))
        return out

    def resync_messages(self, symbol: str) -> list[str]:
        """Unsubscribe + subscribe the book: Kraken answers with a fresh snapshot."""
        st = self._states.get(symbol)
        if st is not None:
            st.valid = False
            st.resync_pending = True
        sub = {"name": "book", "depth": self.spec.book_depth}
        return [self._request("unsubscribe", [symbol], sub), self._request("subscribe", [symbol], sub)]

    def ping_message(self, req_id: int) -> str:
        """``{"event":"ping","reqid":42}`` (v1's pong carries no exchange time)."""
        return orjson.dumps({"event": "ping", "reqid": req_id}).decode()

    # ================================================================== inspection

    def reset(self) -> None:
        """Forget every book (after a disconnect)."""
        self._states.clear()

    def book(self, symbol: str) -> Optional[L2Book]:
        st = self._states.get(symbol)
        return st.book if st is not None else None

    def symbols(self) -> list[str]:
        """Symbols seen so far (with or without a book)."""
        return sorted(self._states)

    def is_valid(self, symbol: str) -> bool:
        st = self._states.get(symbol)
        return bool(st is not None and st.book is not None and st.valid)

    # ================================================================== incoming frames

    def on_message(self, raw: str | bytes, ts_capture: int) -> list[Event]:
        """Parse one frame, update books, verify checksums. Never raises on bad input."""
        self._stats.messages += 1
        try:
            msg = _loads(raw)
        except _JSONDecodeError:
            return [self._bad("malformed JSON", raw, ts_capture)]
        except TypeError:
            return [self._bad(f"frame of type {type(raw).__name__} is not text", raw, ts_capture)]
        try:
            if msg.__class__ is list:
                if len(msg) < 4:
                    raise BadInput("data message with fewer than 4 elements")
                name = msg[-2]
                if name.__class__ is not str or msg[-1].__class__ is not str:
                    raise BadInput("data message without channel name and pair")
                if name.startswith("book-"):
                    return self._on_book(msg, raw, ts_capture)
                handler = self._handlers.get(name)
                if handler is None:
                    raise BadInput(f"unknown channel {truncate_text(name, 40)!r}")
                return handler(msg, raw, ts_capture)
            if msg.__class__ is dict:
                out = self._on_event(msg, raw, ts_capture)
                self._count(out)
                return out
            raise BadInput("neither a data array nor an event object")
        except BadInput as exc:
            return [self._bad(str(exc), raw, ts_capture)]
        except INPUT_ERRORS as exc:
            return [self._bad(describe(exc), raw, ts_capture)]
        except Exception as exc:  # last resort: the contract is "never raises on input"
            return [self._bad(f"internal error {type(exc).__name__}: {exc}", raw, ts_capture)]

    # ------------------------------------------------------------------ book

    def _on_book(self, msg: list, raw: Any, ts_capture: int) -> list[Event]:
        """Snapshot (no checksum)::

            [1360,{"as":[["0.000022900","13355.87450757","1618678123.481570"],...],
                   "bs":[["0.000022880","2.59523024","1618678131.829183"],...]},
             "book-1000","ADA/XBT"]

        Update, one dict or two (asks, then bids with the checksum)::

            [992,{"b":[["354.15000000","5.00000000","1618678133.365913"]],"c":"2583817756"},
             "book-1000","XMR/USD"]
            [1920,{"a":[["0.042990","364630.28272081","1618678145.920470"]]},
                  {"b":[["0.042990","0.00000000","1618678145.920708"]],"c":"4105471083"},
             "book-1000","SC/EUR"]
        """
        name: str = msg[-2]
        symbol: str = msg[-1]
        try:
            depth = int(name[5:])
            if depth <= 0:
                raise ValueError
        except ValueError:
            raise BadInput(f"book channel name {truncate_text(name, 40)!r} has no valid depth") from None
        payloads = msg[1:-2]
        if not payloads or any(p.__class__ is not dict for p in payloads):
            raise BadInput("book message without payload objects")
        if "as" in payloads[0] or "bs" in payloads[0]:
            return self._snapshot(payloads[0], symbol, depth, raw, ts_capture)
        return self._update(payloads, symbol, depth, raw, ts_capture)

    def _snapshot(self, payload: dict, symbol: str, depth: int, raw: Any, ts_capture: int) -> list[Event]:
        st = self._states.get(symbol)
        if st is None:
            st = self._states[symbol] = _V1Book()
        try:
            asks = [_level(lvl) for lvl in payload.get("as", ())]
            bids = [_level(lvl) for lvl in payload.get("bs", ())]
        except INPUT_ERRORS as exc:
            st.book = None  # the exchange reset the book; ours is stale
            out: list[Event] = [self._bad(f"book snapshot for {symbol}: {describe(exc)}", raw, ts_capture, symbol)]
            out.extend(self._resync(st, symbol, f"unusable book snapshot ({describe(exc)})", None, ts_capture))
            return out
        book = L2Book(depth)
        for p, v, ptext, vtext, _ in asks:
            book.apply_ask(p, v, _token(ptext) + _token(vtext))
        for p, v, ptext, vtext, _ in bids:
            book.apply_bid(p, v, _token(ptext) + _token(vtext))
        book.truncate()
        st.book = book
        st.valid = True  # v1 snapshots carry no checksum: the first update's checksum checks it
        st.resync_pending = False
        st.top = None
        stats = self._stats
        stats.book_snapshots += 1
        out = [BookSnapshot(exchange=self.exchange, symbol=symbol, ts_exchange=None, ts_capture=ts_capture,
                            bids=tuple(book.bids()), asks=tuple(book.asks()), checksum=None, verified=True,
                            depth=depth)]
        top = book.top()
        if top is not None:
            st.top = top
            stats.tops += 1
            out.append(TopOfBook(exchange=self.exchange, symbol=symbol, ts_exchange=None, ts_capture=ts_capture,
                                 bid=top[0], bid_qty=top[1], ask=top[2], ask_qty=top[3], source="book"))
        return out

    def _update(self, payloads: list, symbol: str, depth: int, raw: Any, ts_capture: int) -> list[Event]:
        st = self._states.get(symbol)
        out: list[Event] = []
        if st is None or st.book is None:
            out.append(self._bad(f"book update for {symbol} before any snapshot", raw, ts_capture, symbol))
            if st is None:
                st = self._states[symbol] = _V1Book()
            out.extend(self._resync(st, symbol, "book update before any snapshot", None, ts_capture))
            return out
        # read and validate everything first: a bad level must not leave a half-applied book
        asks: list[tuple[float, float]] = []
        bids: list[tuple[float, float]] = []
        changes: list[tuple[bool, float, float, str]] = []  # (is_ask, price, volume, token)
        newest = ""
        ts = -1
        checksum: Optional[int] = None
        try:
            for payload in payloads:
                for key, levels_out, is_ask in (("a", asks, True), ("b", bids, False)):
                    levels = payload.get(key)
                    if levels is None:
                        continue
                    for lvl in levels:
                        p, v, ptext, vtext, ttext = _level(lvl)
                        levels_out.append((p, v))
                        changes.append((is_ask, p, v, _token(ptext) + _token(vtext) if v else ""))
                        if ttext != newest:  # levels of one message mostly share a time
                            t = parse_epoch_text_ns(ttext)
                            if t > ts:
                                ts = t
                            newest = ttext
                c = payload.get("c")
                if c is not None:
                    checksum = int(c)
            if checksum is None:
                raise BadInput("book update without checksum 'c'")
            if not changes:
                raise BadInput("book update without 'a' or 'b' levels")
        except INPUT_ERRORS as exc:
            reason = describe(exc)
            out.append(self._bad(f"book update for {symbol}: {reason}", raw, ts_capture, symbol))
            if st.valid:
                out.extend(self._resync(st, symbol, f"lost a book update ({reason})", None, ts_capture))
            return out
        stats = self._stats
        stats.book_updates += 1
        book = st.book
        if not st.valid:
            stats.unverified_updates += 1
            out.append(BookUpdate(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                                  bids=tuple(bids), asks=tuple(asks), checksum=checksum, verified=False,
                                  depth=book.depth))
            return out
        apply_ask = book.apply_ask
        apply_bid = book.apply_bid
        top_touched = False
        for is_ask, p, v, token in changes:
            if not (apply_ask(p, v, token) if is_ask else apply_bid(p, v, token)):
                top_touched = True  # index 0: the best level changed
        if len(book.ask_keys) > book.depth or len(book.bid_keys) > book.depth:
            book.truncate()
        computed = crc32(("".join(book.ask_tokens[:_N]) + "".join(book.bid_tokens[:_N])).encode())
        ok = computed == checksum
        out.append(BookUpdate(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                              bids=tuple(bids), asks=tuple(asks), checksum=checksum, verified=ok, depth=book.depth))
        if not ok:
            self._mismatch(st, symbol, checksum, computed, ts, ts_capture, out)
            return out
        stats.checksums_ok += 1
        if top_touched:
            top = book.top()
            if top is not None and top != st.top:
                st.top = top
                stats.tops += 1
                out.append(TopOfBook(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                                     bid=top[0], bid_qty=top[1], ask=top[2], ask_qty=top[3], source="book"))
        return out

    # ------------------------------------------------------------------ spread, trade, ticker

    def _on_spread(self, msg: list, raw: Any, ts_capture: int) -> list[Event]:
        """Best bid/offer with an exchange time -> TopOfBook(source="ticker")::

            [0,["5698.40000","5700.00000","1542057299.545897","1.01234567","0.98765432"],
             "spread","XBT/USD"]
        """
        bid, ask, ts, bid_qty, ask_qty = msg[1][:5]
        bid, ask, bid_qty, ask_qty = float(bid), float(ask), float(bid_qty), float(ask_qty)
        if not (0 < bid < _INF and 0 < ask < _INF and 0 <= bid_qty < _INF and 0 <= ask_qty < _INF):
            raise BadInput("spread with invalid numbers")
        self._stats.tops += 1
        return [TopOfBook(exchange=self.exchange, symbol=msg[-1], ts_exchange=parse_epoch_text_ns(ts),
                          ts_capture=ts_capture, bid=bid, bid_qty=bid_qty, ask=ask, ask_qty=ask_qty,
                          source="ticker")]

    def _on_ticker(self, msg: list, raw: Any, ts_capture: int) -> list[Event]:
        """v1 ticker has no exchange time: TopOfBook(source="ticker", ts_exchange=None). ``a``/``b``
        are [price, wholeLotVolume, lotVolume]; the lot volume is the size::

            [1668,{"a":["13.253900",35,"35.72892241"],"b":["13.232900",185,"185.18432037"],
                   "c":["13.253900","3.71672000"],...},"ticker","WAVES/EUR"]
        """
        payload = msg[1]
        a, b = payload["a"], payload["b"]
        bid, bid_qty, ask, ask_qty = float(b[0]), float(b[2]), float(a[0]), float(a[2])
        if not (0 < bid < _INF and 0 < ask < _INF and 0 <= bid_qty < _INF and 0 <= ask_qty < _INF):
            raise BadInput("ticker with invalid numbers")
        self._stats.tops += 1
        return [TopOfBook(exchange=self.exchange, symbol=msg[-1], ts_exchange=None, ts_capture=ts_capture,
                          bid=bid, bid_qty=bid_qty, ask=ask, ask_qty=ask_qty, source="ticker")]

    def _on_trade(self, msg: list, raw: Any, ts_capture: int) -> list[Event]:
        """One Trade per element ``[price, volume, time, side b|s, type l|m, misc]`` (taker side;
        v1 trades have no id)::

            [993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]
        """
        symbol = msg[-1]
        out: list[Event] = []
        for t in msg[1]:
            price, qty = float(t[0]), float(t[1])
            if not (0 < price < _INF and 0 < qty < _INF):
                raise BadInput("trade with invalid price/volume")
            side = _SIDES.get(t[3])
            if side is None:
                raise BadInput(f"trade side {truncate_text(str(t[3]), 10)!r} is not b/s")
            out.append(Trade(exchange=self.exchange, symbol=symbol, ts_exchange=parse_epoch_text_ns(t[2]),
                             ts_capture=ts_capture, price=price, qty=qty, side=side, trade_id=None,
                             ord_type=_ORDER_TYPES.get(t[4]) if len(t) > 4 else None))
        self._stats.trades += len(out)
        return out

    # ------------------------------------------------------------------ events

    def _on_event(self, msg: dict, raw: Any, ts_capture: int) -> list[Event]:
        """Object messages: heartbeat, systemStatus, subscriptionStatus, pong, error::

            {"event":"heartbeat"}
            {"connectionID":17843232920108168701,"event":"systemStatus","status":"online","version":"1.8.3"}
            {"channelID":1664,"channelName":"book-1000","event":"subscriptionStatus",
             "pair":"WAVES/EUR","status":"subscribed","subscription":{"depth":1000,"name":"book"}}
            {"errorMessage":"Currency pair not in ISO 4217-A3 format foo","event":"subscriptionStatus",
             "pair":"foo","status":"error","subscription":{"name":"book"}}
        """
        event = msg.get("event")
        ex = self.exchange
        if event == "heartbeat":
            self._stats.heartbeats += 1
            return [Heartbeat(exchange=ex, symbol="", ts_exchange=None, ts_capture=ts_capture)]
        if event == "systemStatus":
            return [ExchangeStatus(exchange=ex, symbol="", ts_exchange=None, ts_capture=ts_capture,
                                   status=str(msg.get("status", "")), version=str(msg.get("version", "")))]
        if event == "pong":
            reqid = msg.get("reqid")
            return [Pong(exchange=ex, symbol="", ts_exchange=None, ts_capture=ts_capture,
                         req_id=reqid if isinstance(reqid, int) else None)]
        if event == "subscriptionStatus":
            status = msg.get("status")
            sub = msg.get("subscription") if isinstance(msg.get("subscription"), dict) else {}
            channel = str(msg.get("channelName") or sub.get("name") or "")
            symbol = str(msg.get("pair") or "")
            reqid = msg.get("reqid") if isinstance(msg.get("reqid"), int) else None
            if status == "subscribed":
                return [Subscribed(exchange=ex, symbol=symbol, ts_exchange=None, ts_capture=ts_capture,
                                   channel=channel, req_id=reqid)]
            if status == "error":
                return [SubscriptionError(exchange=ex, symbol=symbol, ts_exchange=None, ts_capture=ts_capture,
                                          channel=channel, error=str(msg.get("errorMessage", "")), req_id=reqid)]
            if status == "unsubscribed":
                return []
            raise BadInput(f"subscriptionStatus with unknown status {truncate_text(str(status), 20)!r}")
        if event == "error":
            return [self._bad(f"exchange error: {msg.get('errorMessage', '')}", raw, ts_capture)]
        raise BadInput(f"unknown event {truncate_text(str(event), 40)!r}")


_SIDES = {"b": "buy", "s": "sell"}
_ORDER_TYPES = {"l": "limit", "m": "market"}
