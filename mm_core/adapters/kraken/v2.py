"""Kraken spot WebSocket API v2 adapter (``wss://ws.kraken.com/v2``): sans-IO frames -> events.

What it promises (see ../shared/kraken-protocol.md §1):

* every book snapshot *and* update is CRC32-checked against the exchange's checksum (top 10 asks
  then bids, numbers rendered at the pair's precision -- :mod:`.instruments` says where that comes
  from). A mismatch emits :class:`ChecksumMismatch` + :class:`Resync` and marks the book invalid;
  until the next snapshot its updates are passed on as ``BookUpdate(verified=False)``, counted in
  ``stats.unverified_updates``, and produce **no** :class:`TopOfBook`. Never a silent wrong book.
* bad input never raises: it becomes a :class:`BadMessage` with the offending text truncated. A
  lost book update (malformed update, update before any snapshot) also invalidates the book and
  asks for a resync, because the book can no longer be right.
* ``Resync`` is emitted once per invalidation; the collector answers it with
  :meth:`KrakenV2Adapter.resync_messages` and the next snapshot restores verification.

Hot path (book update; ``bench/bench_book.py`` measures it against python-kraken-sdk). Two book
engines, chosen by ``engine=`` ("auto": numba when importable):

* ``numba`` (default): the whole book of a symbol is one array and a message's levels go to one
  compiled call (:mod:`.fastbook`) that applies them, truncates, and returns the CRC32 of the top
  10 plus a "top changed" bit -- ~1.5-2 µs/message less than the Python engine. A number the
  kernel cannot tokenize exactly (``x * 10**p >= 1e15``) moves the symbol to the Python engine
  until its next snapshot; :meth:`KrakenV2Adapter.book` then returns a copy as an L2Book;
* ``python``: the reference (and the fallback without numba), described below; both engines are
  tested to produce identical events.

Shared by both engines, and the Python engine's book:

* decoding with msgspec into typed structs (:mod:`.v2_messages`) -- cheaper than
  ``orjson.loads`` + dict look-ups, and price/qty/checksum types are checked in C; frames that do
  not fit the typed schema (acks, pong, junk) fall back to ``orjson`` and the generic handlers;
* the timestamp from four dict look-ups (minute prefix, seconds, milliseconds, microseconds+``Z``);
* levels applied to an :class:`~mm_core.book.L2Book` that caches each level's checksum token
  (price tokens memoized per price; only changed levels are re-tokenized);
* Kraken's checksum is ``crc32(asks_text + bids_text) == crc32(bids_text, crc32(asks_text))`` and
  a real update touches one side only, so the untouched side's part is reused;
* ``TopOfBook`` is considered only when a change landed on index 0 of a side.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional, Sequence
from zlib import crc32

import msgspec
import numpy as np
import orjson

from mm_core.adapters.base import AdapterStats, FeedSpec
from mm_core.adapters.kraken import fastbook
from mm_core.adapters.kraken.checksum import CHECKSUM_LEVELS, checksum_of_levels, token_from_number
from mm_core.adapters.kraken.feed import INPUT_ERRORS, BadInput, KrakenFeedBase, SymbolBook, describe
from mm_core.adapters.kraken.instruments import KNOWN_INSTRUMENTS, decimals_shown
from mm_core.adapters.kraken.v2_messages import (
    DECODER,
    BookData,
    BookMessage,
    HeartbeatMessage,
    StatusMessage,
    TickerMessage,
    TradeMessage,
)
from mm_core.adapters.kraken.wire import MICROS_Z as _MICROS_Z
from mm_core.adapters.kraken.wire import MILLIS as _MILLIS
from mm_core.adapters.kraken.wire import MINUTE_CACHE as _MINUTES
from mm_core.adapters.kraken.wire import SECONDS as _SECONDS
from mm_core.adapters.kraken.wire import (
    V2_DEPTHS,
    parse_rfc3339_ns,
    smallest_depth_at_least,
    validate_v2_feed,
)
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

_decode = DECODER.decode
_ValidationError = msgspec.ValidationError
_DecodeError = msgspec.DecodeError
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_KNOWN_CHANNELS = frozenset({"book", "ticker", "trade", "heartbeat", "status"})
_N = CHECKSUM_LEVELS
_EXACT_SCALED = 1e15  # below this, str(round(q * 10**p)) is the exact token (checksum.py)
_PRICE_TOKEN_CACHE_MAX = 50_000
_REQUESTS_KEPT = 1024
_update_ask = fastbook.update_ask
_update_bid = fastbook.update_bid
_update3 = fastbook.update3
_CRC_MASK = 0xFFFFFFFF
_ENGINES = ("auto", "numba", "python")
_KERNEL_SLACK = 16
_TOP0 = fastbook.TOP  # the kernel's last reported top: state[_TOP0:_TOP1] = bid, bid_qty, ask, ask_qty
_TOP1 = fastbook.TOP + 4  # levels a compiled book can hold beyond its depth before it is grown

Handler = Callable[[Any, Any, int], list[Event]]


class _V2Book(SymbolBook):
    """Per-symbol state: the book plus what its checksum needs (precision, token caches)."""

    __slots__ = ("price_precision", "qty_precision", "price_pow", "qty_pow", "precision_source",
                 "price_tokens", "ask_crc", "bid_bytes", "kstate", "depth")

    def __init__(self) -> None:
        super().__init__()
        self.price_precision: Optional[int] = None
        self.qty_precision: int = 0
        self.price_pow: int = 1
        self.qty_pow: int = 1
        self.precision_source: str = ""
        self.price_tokens: dict[float, str] = {}
        self.ask_crc: int = 0  # crc32 of the top-10 ask tokens
        self.bid_bytes: bytes = b""  # the top-10 bid tokens, joined
        # compiled engine: the whole book in one array (see fastbook); then ``book`` is None
        self.kstate: Any = None
        self.depth: int = 0

    def has_book(self) -> bool:
        return self.book is not None or self.kstate is not None

    def drop_book(self) -> None:
        self.book = None
        self.kstate = None

    def materialized(self) -> Optional[L2Book]:
        """The book as an :class:`L2Book` (a copy when the compiled engine holds it)."""
        if self.kstate is None:
            return self.book
        ks = self.kstate
        book = L2Book(self.depth)
        qprec = self.qty_precision
        for p, q in fastbook.levels(ks, 0):
            book.apply_ask(p, q, self.price_token(p) + token_from_number(q, qprec))
        for p, q in fastbook.levels(ks, 1):
            book.apply_bid(p, q, self.price_token(p) + token_from_number(q, qprec))
        book.unknown_deletes = fastbook.unknown_deletes(ks)
        return book

    def to_python(self) -> None:
        """Hand the book from the compiled engine to the pure-Python one (until the next snapshot):
        the kernel met a number it cannot tokenize exactly."""
        ks = self.kstate
        self.book = self.materialized()
        self.kstate = None
        self.side_texts()
        self.top = None
        if ks is not None and fastbook.has_top(ks):
            b, bq, a, aq = fastbook.top(ks)
            self.top = (-b, bq, a, aq)

    def set_precision(self, price_precision: int, qty_precision: int, source: str) -> None:
        self.price_precision = price_precision
        self.qty_precision = qty_precision
        self.price_pow = 10**price_precision
        self.qty_pow = 10**qty_precision
        self.precision_source = source
        self.price_tokens = {}

    def price_token(self, price: float) -> str:
        """Token of a price (memoized: a book revisits the same few hundred prices)."""
        tokens = self.price_tokens
        if len(tokens) >= _PRICE_TOKEN_CACHE_MAX:
            tokens.clear()
        scaled = price * self.price_pow
        tok = tokens[price] = (str(round(scaled)) if scaled < _EXACT_SCALED
                               else token_from_number(price, self.price_precision or 0))
        return tok

    def side_texts(self) -> None:
        """Recompute both cached checksum parts from the book (after a snapshot)."""
        book = self.book
        assert book is not None
        self.ask_crc = crc32("".join(book.ask_tokens[:_N]).encode())
        self.bid_bytes = "".join(book.bid_tokens[:_N]).encode()


class KrakenV2Adapter(KrakenFeedBase):
    """Sans-IO Kraken WS v2 protocol machine: builds requests, parses frames into events.

    ``infer_depth``: when the subscribed depth is unknown (replaying a file without header or
    subscribe ack), take the smallest valid depth that holds the first snapshot. A ``subscribe``
    ack for ``book`` always sets the depth it names. ``fallback_precision``: (price, qty)
    precision for symbols neither in ``spec.instruments`` nor in the known table; without it the
    precision is inferred from the first snapshot (see :mod:`.instruments`).
    """

    URL = "wss://ws.kraken.com/v2"
    DEPTHS = V2_DEPTHS

    def __init__(
        self,
        spec: FeedSpec,
        exchange: str = "kraken",
        *,
        trade_snapshot: bool = False,
        infer_depth: bool = False,
        fallback_precision: Optional[tuple[int, int]] = None,
        engine: str = "auto",
    ) -> None:
        super().__init__(exchange)
        if engine not in _ENGINES:
            raise ValueError(f"engine must be one of {', '.join(_ENGINES)}, got {engine!r}")
        if engine == "numba" and not fastbook.AVAILABLE:
            raise ValueError("engine='numba' needs numba (not installed, or MM_CORE_NO_NUMBA is set)")
        self.engine = "numba" if engine == "auto" and fastbook.AVAILABLE else ("python" if engine == "auto" else engine)
        if self.engine == "numba":
            fastbook.warm_up()  # compiled once per process (cached on disk), not on the first frame
        for symbol in spec.symbols or ("BTC/EUR",):  # no symbols (replay): still check depth/channels
            validate_v2_feed(symbol, spec.book_depth, spec.channels)
        self.spec = spec
        self.trade_snapshot = trade_snapshot
        self.infer_depth = infer_depth
        self.fallback_precision = fallback_precision
        self._states: dict[str, _V2Book] = {}
        self._depths: dict[str, int] = {}  # from book subscribe acks
        self._req_ids = itertools.count(1)
        self._requests: dict[int, tuple[str, str]] = {}  # req_id -> (method, channel)
        # Book updates are counted from checksums_ok on the hot path (one increment, not two):
        # book_updates = checksums_ok - verified snapshots + updates that did not verify.
        self._snapshots_ok = 0
        self._updates_not_ok = 0
        self._channel_handlers: dict[type, Handler] = {  # decoded message class -> handler
            BookMessage: self._on_book_other,  # book updates are handled inline in on_message
            TickerMessage: self._on_ticker,
            TradeMessage: self._on_trade,
            HeartbeatMessage: self._on_heartbeat,
            StatusMessage: self._on_status,
        }
        self._method_handlers: dict[str, Handler] = {
            "subscribe": self._on_ack,
            "unsubscribe": self._on_ack,
            "pong": self._on_pong,
        }

    @property
    def stats(self) -> AdapterStats:
        """Counters (``book_updates`` derived, see ``__init__``), ``events_by_kind`` filled in."""
        s = self._stats
        s.book_updates = s.checksums_ok - self._snapshots_ok + self._updates_not_ok
        return KrakenFeedBase.stats.fget(self)  # type: ignore[attr-defined]

    # ================================================================== config check

    @staticmethod
    def validate_feed(symbol: str, depth: int, channels: Sequence[str]) -> None:
        """Raise ValueError if WS v2 cannot serve this feed (e.g. v1 symbol ``XBT/EUR``)."""
        validate_v2_feed(symbol, depth, channels)

    # ================================================================== outgoing messages

    def _request(self, method: str, params: dict[str, Any]) -> str:
        req_id = next(self._req_ids)
        self._requests[req_id] = (method, str(params.get("channel", "")))
        if len(self._requests) > _REQUESTS_KEPT:
            del self._requests[next(iter(self._requests))]
        return orjson.dumps({"method": method, "params": params, "req_id": req_id}).decode()

    def _book_params(self, symbols: list[str], subscribe: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"channel": "book", "symbol": symbols, "depth": self.spec.book_depth}
        if subscribe:
            params["snapshot"] = True
        return params

    def subscribe_messages(self) -> list[str]:
        """One subscribe per channel, e.g.
        ``{"method":"subscribe","params":{"channel":"book","symbol":["BTC/EUR"],"depth":10,
        "snapshot":true},"req_id":1}``. Ticker asks for ``event_trigger: "bbo"`` (publish on every
        best bid/offer change, not only on trades); trade sets ``snapshot`` explicitly because
        Kraken's doc pages disagree on its default."""
        symbols = list(self.spec.symbols)
        out: list[str] = []
        for channel in self.spec.channels:
            if channel == "book":
                params = self._book_params(symbols, subscribe=True)
            elif channel == "ticker":
                params = {"channel": "ticker", "symbol": symbols, "event_trigger": "bbo", "snapshot": True}
            elif channel == "trade":
                params = {"channel": "trade", "symbol": symbols, "snapshot": self.trade_snapshot}
            else:
                raise ValueError(f"unknown channel {channel!r}; known: book, ticker, trade")
            out.append(self._request("subscribe", params))
        return out

    def resync_messages(self, symbol: str) -> list[str]:
        """Unsubscribe + subscribe the book of ``symbol`` (the same depth, which Kraken requires
        on unsubscribe): the exchange then sends a fresh snapshot, which resets the book."""
        st = self._states.get(symbol)
        if st is not None:
            st.valid = False
            st.resync_pending = True
        return [
            self._request("unsubscribe", self._book_params([symbol], subscribe=False)),
            self._request("subscribe", self._book_params([symbol], subscribe=True)),
        ]

    def ping_message(self, req_id: int) -> str:
        """``{"method":"ping","req_id":101}``; the pong carries the exchange's time_in/time_out."""
        return orjson.dumps({"method": "ping", "req_id": req_id}).decode()

    # ================================================================== inspection

    def reset(self) -> None:
        """Forget every book (after a disconnect): each symbol waits for a new snapshot."""
        self._states.clear()

    def book(self, symbol: str) -> Optional[L2Book]:
        """The L2 book of ``symbol`` (None before its first snapshot). Check :meth:`is_valid`.

        With the compiled engine the book lives in an array; this returns a copy as an
        :class:`L2Book` (for inspection and tests -- not a hot-path call)."""
        st = self._states.get(symbol)
        return st.materialized() if st is not None else None

    def symbols(self) -> list[str]:
        """Symbols seen so far (with or without a book)."""
        return sorted(self._states)

    def is_valid(self, symbol: str) -> bool:
        """True when ``symbol``'s book matched the exchange checksum on its last message."""
        st = self._states.get(symbol)
        return bool(st is not None and st.has_book() and st.valid)

    def precision(self, symbol: str) -> Optional[tuple[int, int, str]]:
        """(price_precision, qty_precision, source) used for ``symbol``'s checksums, if known."""
        st = self._states.get(symbol)
        if st is None or st.price_precision is None:
            return None
        return (st.price_precision, st.qty_precision, st.precision_source)

    # ================================================================== incoming frames

    def on_message(self, raw: str | bytes, ts_capture: int) -> list[Event]:
        """Parse one frame, update books, verify checksums. Never raises on bad input.

        The book update -- the hot path -- is inlined here (one Python call less per message
        matters at ~4 µs/message). qty 0 deletes; levels are applied in order, the book is
        truncated to the subscribed depth, then the top 10 are checksummed::

            {"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],
             "asks":[{"price":29431.1,"qty":0.0},{"price":29433.3,"qty":0.8},
                     {"price":29430.6,"qty":0.001}],
             "checksum":3547452596,"timestamp":"2023-07-30T15:29:58.343415Z"}]}

        Types and signs were checked by the decoder. Anything that still fails while applying an
        update to a valid book means an update is lost: BadMessage, invalid book, Resync.
        """
        self._stats.messages += 1
        try:
            msg = _decode(raw)
        except _ValidationError as exc:
            return self._on_irregular(raw, ts_capture, exc)
        except (_DecodeError, TypeError):
            return self._on_irregular(raw, ts_capture, None)
        if msg.__class__ is not BookMessage or msg.type != "update":
            try:
                return self._channel_handlers[msg.__class__](msg, raw, ts_capture)
            except Exception as exc:  # last resort: the contract is "never raises on input"
                return [self._bad(f"internal error {type(exc).__name__}: {exc}", raw, ts_capture)]
        out: list[Event] = []
        stats = self._stats
        exchange = self.exchange
        try:
            for d in msg.data:
                symbol = d.symbol
                st = self._states.get(symbol)
                if st is None or not st.valid:
                    self._book_update_unverifiable(d, st, raw, ts_capture, out)
                    continue
                try:
                    t = d.timestamp  # parse_rfc3339_ns's fast path, inlined (see wire.py)
                    try:
                        ts = _MINUTES[t[:17]] + _SECONDS[t[17:20]] + _MILLIS[t[20:23]] + _MICROS_Z[t[23:]]
                    except (KeyError, TypeError):  # new minute, other shape, or missing
                        ts = parse_rfc3339_ns(t)
                    ks = st.kstate
                    r = -1
                    if ks is not None:  # compiled engine: one kernel call for the usual message
                        side = d.bids
                        if side:
                            if d.asks:
                                r, asks, bids = self._kernel_update(st, d)
                            elif len(side) == 1:
                                lvl = side[0]
                                p = lvl.price
                                q = lvl.qty
                                bids = ((p, q),)
                                asks = ()
                                r = _update_bid(ks, p, q)
                            else:
                                bids = tuple([(lvl.price, lvl.qty) for lvl in side])
                                asks = ()
                                r = self._kernel_side(ks, 3, bids, st)
                        else:
                            side = d.asks
                            if len(side) == 1:
                                lvl = side[0]
                                p = lvl.price
                                q = lvl.qty
                                asks = ((p, q),)
                                bids = ()
                                r = _update_ask(ks, p, q)
                            else:
                                asks = tuple([(lvl.price, lvl.qty) for lvl in side])
                                bids = ()
                                r = self._kernel_side(ks, 2, asks, st)
                        if r < 0:  # a number beyond the kernel's exact range: Python takes over
                            st.to_python()
                    if r >= 0:
                        computed = r & _CRC_MASK
                        top = st.kstate[_TOP0:_TOP1].tolist() if r > _CRC_MASK else None  # (the state may have grown)
                    else:
                        computed, top, asks, bids = self._python_update(st, d)
                except Exception as exc:  # failed half-way (or no timestamp): an update is lost
                    reason = "missing timestamp" if d.timestamp is None else describe(exc)
                    out.append(self._bad(f"book update for {symbol}: {reason}", raw, ts_capture, symbol))
                    out.extend(self._resync(st, symbol, f"lost a book update ({reason})", None, ts_capture))
                    continue
                checksum = d.checksum
                if computed == checksum:
                    stats.checksums_ok += 1
                    out.append(BookUpdate(exchange=exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                                          bids=bids, asks=asks, checksum=checksum, verified=True, depth=st.depth))
                    if top is not None:
                        stats.tops += 1
                        out.append(TopOfBook(exchange=exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                                             bid=top[0], bid_qty=top[1], ask=top[2], ask_qty=top[3],
                                             source="book"))
                else:
                    self._updates_not_ok += 1
                    out.append(BookUpdate(exchange=exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                                          bids=bids, asks=asks, checksum=checksum, verified=False, depth=st.depth))
                    self._mismatch(st, symbol, checksum, computed, ts, ts_capture, out)
                if ts < st.last_ts:
                    out.append(self._bad(f"book update for {symbol}: exchange timestamp went backwards by "
                                         f"{(st.last_ts - ts) // 1000} µs (applied; the checksum decides)",
                                         raw, ts_capture, symbol))
                st.last_ts = ts
        except Exception as exc:  # last resort: the contract is "never raises on input"
            out.append(self._bad(f"internal error {type(exc).__name__}: {exc}", raw, ts_capture))
        return out

    def _python_update(self, st: _V2Book, d: BookData) -> tuple[int, Optional[list[float]], tuple, tuple]:
        """The pure-Python engine (reference, and fallback without numba): levels applied to an
        :class:`L2Book` caching each level's token, the changed side re-joined and CRC'd.
        Returns (checksum, new top [bid, bid_qty, ask, ask_qty] or None, asks, bids)."""
        book: L2Book = st.book  # type: ignore[assignment]
        ptoks = st.price_tokens
        qpow = st.qty_pow
        depth = book.depth
        top_touched = False
        side = d.asks
        if side:
            asks = tuple([(lvl.price, lvl.qty) for lvl in side])
            apply = book.apply_ask
            for p, q in asks:
                if q:
                    s = q * qpow
                    if not apply(p, q, (ptoks.get(p) or st.price_token(p))
                                 + (str(round(s)) if s < _EXACT_SCALED else token_from_number(q, st.qty_precision))):
                        top_touched = True  # index 0: the best level changed
                elif not apply(p, q):
                    top_touched = True
            tokens = book.ask_tokens
            if len(tokens) > depth:
                book.truncate_asks()
            st.ask_crc = crc32("".join(tokens[:_N]).encode())
        else:
            asks = ()
        side = d.bids
        if side:
            bids = tuple([(lvl.price, lvl.qty) for lvl in side])
            apply = book.apply_bid
            for p, q in bids:
                if q:
                    s = q * qpow
                    if not apply(p, q, (ptoks.get(p) or st.price_token(p))
                                 + (str(round(s)) if s < _EXACT_SCALED else token_from_number(q, st.qty_precision))):
                        top_touched = True
                elif not apply(p, q):
                    top_touched = True
            tokens = book.bid_tokens
            if len(tokens) > depth:
                book.truncate_bids()
            st.bid_bytes = "".join(tokens[:_N]).encode()
        else:
            bids = ()
        computed = crc32(st.bid_bytes, st.ask_crc)
        top = None
        if top_touched and book.ask_keys and book.bid_keys:
            a = book.ask_keys[0]
            b = book.bid_keys[0]
            key = (b, book.bid_qty[b], a, book.ask_qty[a])
            if key != st.top:  # (a failed checksum invalidates the book; the snapshot resets st.top)
                st.top = key
                top = [-b, key[1], a, key[3]]
        return computed, top, asks, bids

    def _on_book_other(self, msg: BookMessage, raw: Any, ts_capture: int) -> list[Event]:
        """Book snapshot (no timestamp; its checksum covers the top 10 after truncation)::

            {"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD",
             "bids":[{"price":29430.2,"qty":0.18967538},...],
             "asks":[{"price":29430.3,"qty":8.25215653},...],"checksum":2785033588}]}
        """
        if msg.type != "snapshot":
            return [self._bad(f"book message of unknown type {truncate_text(msg.type, 40)!r}", raw, ts_capture)]
        out: list[Event] = []
        for d in msg.data:
            self._book_snapshot(d, raw, ts_capture, out)
        return out

    def _book_update_unverifiable(self, d: BookData, st: Optional[_V2Book], raw: Any,
                                  ts_capture: int, out: list[Event]) -> None:
        """An update for a symbol without a trusted book: before any snapshot (BadMessage, and a
        Resync once), or while invalid after a mismatch (passed on with ``verified=False``)."""
        symbol = d.symbol
        if st is None or not st.has_book():
            out.append(self._bad(f"book update for {symbol} before any snapshot", raw, ts_capture, symbol))
            if st is None:
                st = self._states[symbol] = _V2Book()
            out.extend(self._resync(st, symbol, "book update before any snapshot", None, ts_capture))
            return
        if d.timestamp is None:
            out.append(self._bad(f"book update for {symbol}: missing timestamp", raw, ts_capture, symbol))
            return
        try:
            ts = parse_rfc3339_ns(d.timestamp)
        except ValueError as exc:
            out.append(self._bad(f"book update for {symbol}: {exc}", raw, ts_capture, symbol))
            return
        self._updates_not_ok += 1
        self._stats.unverified_updates += 1
        out.append(BookUpdate(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                              bids=tuple([(lvl.price, lvl.qty) for lvl in d.bids]),
                              asks=tuple([(lvl.price, lvl.qty) for lvl in d.asks]),
                              checksum=d.checksum, verified=False, depth=st.depth))

    def _book_snapshot(self, d: BookData, raw: Any, ts_capture: int, out: list[Event]) -> None:
        symbol = d.symbol
        st = self._states.get(symbol)
        if st is None:
            st = self._states[symbol] = _V2Book()
        asks = [(lvl.price, lvl.qty) for lvl in d.asks]
        bids = [(lvl.price, lvl.qty) for lvl in d.bids]
        checksum = d.checksum
        try:
            for _, q in asks + bids:
                if not q:
                    raise BadInput("a snapshot level has qty 0")
            ts = parse_rfc3339_ns(d.timestamp) if d.timestamp else None
            if st.price_precision is None:
                self._resolve_precision(st, symbol, asks, bids, checksum)
            depth = self._depth_for(symbol, asks, bids)
            ks = self._kernel_snapshot(st, depth, asks, bids) if self.engine == "numba" else None
            if ks is None:
                book = L2Book(depth)
                qprec = st.qty_precision
                for p, q in asks:
                    book.apply_ask(p, q, st.price_token(p) + token_from_number(q, qprec))
                for p, q in bids:
                    book.apply_bid(p, q, st.price_token(p) + token_from_number(q, qprec))
        except Exception as exc:
            # the exchange has reset its side of the book: whatever we held is stale now
            out.append(self._bad(f"book snapshot for {symbol}: {describe(exc)}", raw, ts_capture, symbol))
            st.drop_book()
            out.extend(self._resync(st, symbol, f"unusable book snapshot ({describe(exc)})", None, ts_capture))
            return
        top: Optional[tuple[float, float, float, float]] = None  # (bid, bid_qty, ask, ask_qty)
        if ks is not None:
            r = fastbook.finish(ks, 1)  # truncate, checksum; any top counts as new
            st.book = None
            st.kstate = ks
            computed = r & _CRC_MASK
            if r > _CRC_MASK:
                top = fastbook.top(ks)
            book_bids = tuple(fastbook.levels(ks, 1))
            book_asks = tuple(fastbook.levels(ks, 0))
        else:
            book.truncate()
            st.book = book
            st.kstate = None
            st.side_texts()
            computed = crc32(st.bid_bytes, st.ask_crc)
            if book.ask_keys and book.bid_keys:
                a = book.ask_keys[0]
                b = book.bid_keys[0]
                top = (-b, book.bid_qty[b], a, book.ask_qty[a])
            book_bids = tuple(book.bids())
            book_asks = tuple(book.asks())
        st.depth = depth
        ok = computed == checksum
        st.valid = ok
        st.resync_pending = False
        st.last_ts = -1
        st.top = None
        stats = self._stats
        stats.book_snapshots += 1
        out.append(BookSnapshot(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                                bids=book_bids, asks=book_asks, checksum=checksum, verified=ok, depth=depth))
        if not ok:
            self._mismatch(st, symbol, checksum, computed, ts, ts_capture, out)
            return
        stats.checksums_ok += 1
        self._snapshots_ok += 1
        if top is not None:
            st.top = (-top[0], top[1], top[2], top[3])
            stats.tops += 1
            out.append(TopOfBook(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                                 bid=top[0], bid_qty=top[1], ask=top[2], ask_qty=top[3], source="book"))

    def _kernel_snapshot(self, st: _V2Book, depth: int, asks: list, bids: list) -> Any:
        """The snapshot loaded into a fresh compiled book (not yet truncated), or None when a
        number is out of the kernel's exact range (the pure-Python book then takes the symbol)."""
        ks = fastbook.new_state(depth, depth + max(len(asks), len(bids)) + _KERNEL_SLACK,
                                st.price_precision or 0, st.qty_precision)
        for side, levels in ((0, asks), (1, bids)):
            if levels:
                prices = np.array([p for p, _ in levels], dtype=np.float64)
                qtys = np.array([q for _, q in levels], dtype=np.float64)
                if fastbook.load(ks, side, prices, qtys) < 0:
                    return None
        return ks

    def _kernel_side(self, ks: Any, mode: int, levels: tuple, st: _V2Book) -> int:
        """Levels of one side, up to three in one kernel call (``mode``: side | final)."""
        n = len(levels)
        if n == 2:
            (p0, q0), (p1, q1) = levels
            return _update3(ks, mode, 2, p0, q0, p1, q1, 0.0, 0.0)
        if n == 3:
            (p0, q0), (p1, q1), (p2, q2) = levels
            return _update3(ks, mode, 3, p0, q0, p1, q1, p2, q2)
        if n == 0:
            return fastbook.finish(ks, 0)
        return self._kernel_update(st, None, levels if mode & 1 == 0 else (), levels if mode & 1 else ())[0]

    def _kernel_update(self, st: _V2Book, d: Optional[BookData], asks: tuple = (),
                       bids: tuple = ()) -> tuple[int, tuple, tuple]:
        """The general compiled update (both sides, or more than one level on a side): every
        number is range-checked first -- -1 if one is out of range, nothing changed then -- and
        levels go to the kernel three at a time; only the last call truncates and checksums."""
        if d is not None:
            asks = tuple([(lvl.price, lvl.qty) for lvl in d.asks])
            bids = tuple([(lvl.price, lvl.qty) for lvl in d.bids])
        ppow = st.price_pow
        qpow = st.qty_pow
        for p, q in asks + bids:
            if not (p * ppow < _EXACT_SCALED and q * qpow < _EXACT_SCALED):
                return -1, asks, bids
        ks = st.kstate
        if max(len(asks), len(bids)) > _KERNEL_SLACK and fastbook.free_room(ks) < max(len(asks), len(bids)):
            ks = st.kstate = fastbook.grown(ks, max(len(asks), len(bids)))
        calls = [(side, levels[i:i + 3]) for side, levels in ((0, asks), (1, bids))
                 for i in range(0, len(levels), 3)]
        if not calls:
            return fastbook.finish(ks, 0), asks, bids
        last = len(calls) - 1
        r = 0
        for i, (side, chunk) in enumerate(calls):
            n = len(chunk)
            flat = [x for lvl in chunk for x in lvl] + [0.0] * (6 - 2 * n)
            r = _update3(ks, side | (2 if i == last else 0), n, *flat)
            if r < 0:  # cannot happen after the check above; never leave a half-applied book
                raise RuntimeError("compiled book rejected a level that passed the range check")
        return r, asks, bids

    def _depth_for(self, symbol: str, asks: list, bids: list) -> int:
        depth = self._depths.get(symbol)
        if depth is not None:
            return depth
        if self.infer_depth:
            return smallest_depth_at_least(max(len(asks), len(bids), 1))
        return self.spec.book_depth

    def _resolve_precision(self, st: _V2Book, symbol: str, asks: list, bids: list, checksum: int) -> None:
        """Config/header, then the known table, then the fallback flags, then inference."""
        inst = self.spec.instruments.get(symbol)
        if inst is not None:
            st.set_precision(inst.price_precision, inst.qty_precision, "config")
            return
        inst = KNOWN_INSTRUMENTS.get(symbol)
        if inst is not None:
            st.set_precision(inst.price_precision, inst.qty_precision, "known table")
            return
        if self.fallback_precision is not None:
            st.set_precision(*self.fallback_precision, "flags")
            return
        # Inference: JSON numbers drop trailing zeros, so the decimals shown are a lower bound;
        # take the smallest pair at or above it that reproduces this snapshot's checksum.
        pmin = max((decimals_shown(p) for p, _ in asks + bids), default=0)
        qmin = max((decimals_shown(q) for _, q in asks + bids), default=0)
        top_asks = sorted(asks)[:_N]
        top_bids = sorted(bids, reverse=True)[:_N]
        for pp in range(pmin, 13):
            for qp in range(qmin, 13):
                if checksum_of_levels(top_asks, top_bids, pp, qp) == checksum:
                    st.set_precision(pp, qp, "inferred from the first snapshot")
                    return
        st.set_precision(pmin, qmin, "inferred (no precision reproduced the snapshot checksum)")

    # ------------------------------------------------------------------ ticker, trade

    def _on_ticker(self, msg: TickerMessage, raw: Any, ts_capture: int) -> list[Event]:
        """Ticker with ``event_trigger: "bbo"`` -> TopOfBook(source="ticker"). The ``timestamp``
        field only exists since 2026; older frames give ``ts_exchange=None``::

            {"channel":"ticker","type":"update","data":[{"symbol":"BTC/EUR","bid":61234.5,
             "bid_qty":0.25,"ask":61234.6,"ask_qty":1.1,"last":61230.0,"volume":12.3,
             "vwap":61000.1,"low":60000.0,"high":62000.0,"change":100.0,"change_pct":0.16,
             "timestamp":"2026-05-01T10:00:00.123456Z"}]}
        """
        out: list[Event] = []
        for d in msg.data:
            try:
                ts = parse_rfc3339_ns(d.timestamp) if d.timestamp else None
            except ValueError as exc:
                return [self._bad(f"ticker for {d.symbol}: {exc}", raw, ts_capture, d.symbol)]
            out.append(TopOfBook(exchange=self.exchange, symbol=d.symbol, ts_exchange=ts, ts_capture=ts_capture,
                                 bid=d.bid, bid_qty=d.bid_qty, ask=d.ask, ask_qty=d.ask_qty, source="ticker"))
        self._stats.tops += len(out)
        return out

    def _on_trade(self, msg: TradeMessage, raw: Any, ts_capture: int) -> list[Event]:
        """One :class:`Trade` per element; ``side`` is the taker's, ``trade_id`` a per-book
        sequence number (gaps = missed trades). A batch is not one taker order::

            {"channel":"trade","type":"update","data":[{"symbol":"BTC/EUR","side":"buy",
             "price":61234.6,"qty":0.0125,"ord_type":"market","trade_id":91234567,
             "timestamp":"2026-05-01T10:00:00.130011Z"}]}
        """
        out: list[Event] = []
        for d in msg.data:
            try:
                ts = parse_rfc3339_ns(d.timestamp)
            except ValueError as exc:
                return [self._bad(f"trade for {d.symbol}: {exc}", raw, ts_capture, d.symbol)]
            out.append(Trade(exchange=self.exchange, symbol=d.symbol, ts_exchange=ts, ts_capture=ts_capture,
                             price=d.price, qty=d.qty, side=d.side, trade_id=d.trade_id, ord_type=d.ord_type))
        self._stats.trades += len(out)
        return out

    # ------------------------------------------------------------------ health

    def _on_heartbeat(self, msg: HeartbeatMessage, raw: Any, ts_capture: int) -> list[Event]:
        """``{"channel":"heartbeat"}`` -- about once a second, only while nothing else is sent."""
        self._stats.heartbeats += 1
        return [Heartbeat(exchange=self.exchange, symbol="", ts_exchange=None, ts_capture=ts_capture)]

    def _on_status(self, msg: StatusMessage, raw: Any, ts_capture: int) -> list[Event]:
        """Engine state, pushed on connect and on change (online | maintenance | cancel_only |
        post_only)::

            {"channel":"status","type":"update","data":[{"system":"online","api_version":"v2",
             "connection_id":644748166216981300,"version":"2.0.10"}]}
        """
        out: list[Event] = [
            ExchangeStatus(exchange=self.exchange, symbol="", ts_exchange=None, ts_capture=ts_capture,
                           status=d.system, version=d.version)
            for d in msg.data
        ]
        self._count(out)
        return out

    # ------------------------------------------------------------------ everything else

    def _on_irregular(self, raw: Any, ts_capture: int, error: Optional[Exception]) -> list[Event]:
        """Frames the typed decoder rejected: method answers (acks, pong) -- parsed here from a
        plain ``orjson`` decode -- and bad input, explained as precisely as possible. A broken
        book frame for a symbol whose book was valid also invalidates it (an update is lost)."""
        try:
            msg = _loads(raw)
        except (_JSONDecodeError, TypeError):
            if not isinstance(raw, (str, bytes, bytearray, memoryview)):
                return [self._bad(f"frame of type {type(raw).__name__} is not text", raw, ts_capture)]
            return [self._bad("malformed JSON", raw, ts_capture)]
        if not isinstance(msg, dict):
            return [self._bad("not a JSON object", raw, ts_capture)]
        try:
            if "channel" not in msg:
                return self._on_method(msg, raw, ts_capture)
            channel = msg["channel"]
            if not isinstance(channel, str) or channel not in _KNOWN_CHANNELS:
                return [self._bad(f"unknown channel {truncate_text(str(channel), 40)!r}", raw, ts_capture)]
            reason = f"{channel} message: {_validation_text(error)}"
            if channel != "book":
                return [self._bad(reason, raw, ts_capture)]
            return self._broken_book(msg, reason, raw, ts_capture)
        except BadInput as exc:
            return [self._bad(str(exc), raw, ts_capture)]
        except INPUT_ERRORS as exc:
            return [self._bad(describe(exc), raw, ts_capture)]
        except Exception as exc:  # last resort
            return [self._bad(f"internal error {type(exc).__name__}: {exc}", raw, ts_capture)]

    def _broken_book(self, msg: dict, reason: str, raw: Any, ts_capture: int) -> list[Event]:
        symbols: list[str] = []
        data = msg.get("data")
        if isinstance(data, list):
            symbols = [d["symbol"] for d in data if isinstance(d, dict) and isinstance(d.get("symbol"), str)]
        out: list[Event] = [self._bad(reason, raw, ts_capture, symbols[0] if len(symbols) == 1 else "")]
        for symbol in symbols:
            st = self._states.get(symbol)
            if st is None:
                st = self._states[symbol] = _V2Book()
            if msg.get("type") == "snapshot":
                st.drop_book()  # the exchange reset the book; ours is stale
            if not st.has_book() or st.valid:
                out.extend(self._resync(st, symbol, f"unusable book message ({reason})", None, ts_capture))
        return out

    def _on_method(self, msg: dict, raw: Any, ts_capture: int) -> list[Event]:
        method = msg.get("method")
        handler = self._method_handlers.get(method) if isinstance(method, str) else None
        if handler is None:
            if method is None:
                raise BadInput("neither 'channel' nor 'method' in message")
            raise BadInput(f"unknown method {truncate_text(str(method), 40)!r}")
        out = handler(msg, raw, ts_capture)
        self._count(out)
        return out

    def _on_ack(self, msg: dict, raw: Any, ts_capture: int) -> list[Event]:
        """Subscribe/unsubscribe answers, one per symbol. Success::

            {"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,
             "symbol":"BTC/EUR"},"success":true,"time_in":"2023-09-24T14:10:23.799685Z",
             "time_out":"2023-09-24T14:10:23.799703Z","req_id":7}

        Failure (no ``result``; the channel is recovered from our own ``req_id`` when echoed)::

            {"error":"Currency pair not supported XBT/EUR","method":"subscribe","success":false,
             "symbol":"XBT/EUR"}

        A failed *unsubscribe* (e.g. during a resync) is reported as a BadMessage, not as a
        SubscriptionError: it does not stop any data. A successful unsubscribe yields nothing.
        """
        method = msg["method"]
        req_id = msg.get("req_id")
        if not isinstance(req_id, int):
            req_id = None
        result = msg.get("result")
        if not isinstance(result, dict):
            result = {}
        channel = result.get("channel")
        if channel is None and req_id is not None:
            channel = self._requests.get(req_id, ("", ""))[1]
        channel = str(channel or "")
        symbol = result.get("symbol") or msg.get("symbol") or ""
        symbol = ",".join(map(str, symbol)) if isinstance(symbol, list) else str(symbol)
        tout = msg.get("time_out")
        ts = parse_rfc3339_ns(tout) if tout else None
        success = msg.get("success")
        if success is True:
            if method != "subscribe":
                return []
            if channel == "book" and "depth" in result:
                self._depths[symbol] = int(result["depth"])
            return [Subscribed(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                               channel=channel, req_id=req_id)]
        if success is False:
            error = str(msg.get("error") or "rejected without an error text")
            if method == "subscribe":
                return [SubscriptionError(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                                          channel=channel, error=error, req_id=req_id)]
            return [self._bad(f"{method} of {channel or '?'} {symbol} rejected: {error}", raw, ts_capture, symbol)]
        raise BadInput(f"{method} answer without a boolean 'success'")

    def _on_pong(self, msg: dict, raw: Any, ts_capture: int) -> list[Event]:
        """Answer to our ping; time_in/time_out (µs RFC 3339) feed the clock-offset estimate::

            {"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",
             "time_out":"2023-09-24T14:10:23.799703Z"}
        """
        tin = msg.get("time_in")
        tout = msg.get("time_out")
        time_in = parse_rfc3339_ns(tin) if tin else None
        time_out = parse_rfc3339_ns(tout) if tout else None
        req_id = msg.get("req_id")
        return [Pong(exchange=self.exchange, symbol="", ts_exchange=time_out, ts_capture=ts_capture,
                     req_id=req_id if isinstance(req_id, int) else None, time_in=time_in, time_out=time_out)]


def _validation_text(error: Optional[Exception]) -> str:
    """msgspec's explanation, e.g. ``Expected `float`, got `str` - at `$.data[0].asks[0].price```."""
    return str(error) if error is not None else "not decodable"
