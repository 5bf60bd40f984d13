"""Bitstamp WebSocket v2 feed adapter (sans-IO): diff books synced from REST snapshots, trades.

Sync, per pair (Bitstamp's documented procedure): subscribe to ``diff_order_book_<pair>``; buffer
the diffs; fetch the REST ``order_book`` (a :class:`~mm_core.events.SnapshotRequest` the collector
serves off its receive loop); seed the book from it and drop every buffered diff whose
``microtimestamp`` is at or before the snapshot's; apply the rest, then every diff as it comes. A
snapshot older than the first buffered diff cannot be joined to the stream (what happened between
them is lost), so it is fetched again.

Integrity without a checksum or sequence number -- each failure is an event, and a resync:

* **crossed or locked book** after a diff (best bid >= best ask): :class:`BookMismatch`, re-fetch;
* **exchange time** going backwards: :class:`BookMismatch`, re-fetch; a gap longer than
  ``gap_verify_s`` between diffs (a quiet book, or lost diffs) triggers a verification;
* **periodic re-snapshot comparison** every ``verify_every_s``: the fresh snapshot, rolled forward
  by the diffs after its ``microtimestamp`` (or compared when the stream reaches it, if it is ahead
  of the stream), must equal the book's published view; a difference is a :class:`BookMismatch`,
  a :class:`Resync`, and the snapshot becomes the book.

The adapter keeps the whole book and publishes a depth-``book_depth`` view, in the same terms as a
depth-limited feed: a :class:`BookUpdate` lists the view's changed levels, deletes (qty 0) first,
*including* levels that entered the view because others left it -- so a consumer that applies the
levels and truncates to the depth holds exactly the view. Every diff gives one update (empty when
the view did not change: the diff still proves the feed is live and carries an exchange time).
Exchange time = ``microtimestamp``.

Bitstamp has no application ping with server times, so the adapter gives no clock estimate
(:meth:`ping_message` is Bitstamp's heartbeat, a keep-alive); the gate's clock check says so.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Optional, Sequence

import orjson

from mm_core.adapters.base import REST_FRAME_KEY, AdapterStats, FeedSpec
from mm_core.adapters.bitstamp import wire
from mm_core.book import L2Book
from mm_core.events import (
    BadMessage,
    BookMismatch,
    BookSnapshot,
    BookUpdate,
    Event,
    Heartbeat,
    ReconnectRequest,
    Resync,
    SnapshotRequest,
    SubscriptionError,
    Subscribed,
    TopOfBook,
    Trade,
    truncate_text,
)

WAIT, FETCH, LIVE = 0, 1, 2
_NS = 1_000_000_000
_BUFFER_MAX = 100_000  # diffs buffered while a snapshot is on its way
_RING_NS = 60 * _NS  # applied diffs kept for rolling a verification snapshot forward
Levels = tuple[tuple[float, float], ...]


class _Pair:
    """One pair's book and sync state."""

    __slots__ = ("symbol", "code", "book", "state", "buffer", "overflowed", "snap_ts", "last_ts", "ring",
                 "ring_cut", "verifying", "pending", "retry_at", "next_verify", "view", "top")

    def __init__(self, symbol: str, code: str) -> None:
        self.symbol, self.code = symbol, code
        self.book = L2Book(1 << 30)  # the whole book: never truncated
        self.state = WAIT
        self.buffer: deque[tuple[int, Levels, Levels]] = deque()
        self.overflowed = False
        self.snap_ts = 0
        self.last_ts = 0
        self.ring: deque[tuple[int, Levels, Levels]] = deque()
        self.ring_cut = 0  # ring holds every applied diff after this exchange time
        self.verifying = False
        self.pending: Optional[tuple[int, Levels, Levels]] = None  # a verification snapshot ahead of the stream
        self.retry_at = 0
        self.next_verify = 0
        self.view: tuple[Levels, Levels] = ((), ())
        self.top: Optional[tuple[float, float, float, float]] = None


class BitstampAdapter:
    """Sans-IO protocol machine for Bitstamp WS v2 (see the module docstring)."""

    def __init__(self, spec: FeedSpec, *, exchange: str = "bitstamp", verify_every_s: Optional[float] = None,
                 gap_verify_s: float = 30.0, retry_s: float = 0.5) -> None:
        """``verify_every_s``: re-snapshot period (default: the spec's ``snapshot_verify_s``, from
        ``[feed]``); ``gap_verify_s``: a longer silence between diffs triggers one; ``retry_s``:
        wait before asking again after a failed or unusable snapshot."""
        verify_every_s = spec.snapshot_verify_s if verify_every_s is None else verify_every_s
        for s in spec.symbols:
            wire.validate_feed(s, spec.book_depth, spec.channels)
        self.spec = spec
        self.exchange = exchange
        self.depth = spec.book_depth
        self.rest = spec.rest_endpoint.rstrip("/")
        self.verify_ns = int(verify_every_s * _NS)
        self.gap_ns = int(gap_verify_s * _NS)
        self.retry_ns = int(retry_s * _NS)
        self._stats = AdapterStats()
        self._wanted = {wire.pair_code(s): s for s in spec.symbols}  # empty: every pair (replays)
        self._names: dict[str, str] = {}  # url_symbol -> name, from trading-pairs-info
        self._precision: dict[str, tuple[int, int]] = {}
        self._pairs: dict[str, _Pair] = {}

    # ------------------------------------------------------------------ FeedAdapter

    @property
    def stats(self) -> AdapterStats:
        return self._stats

    @staticmethod
    def validate_feed(symbol: str, depth: int, channels: Sequence[str]) -> None:
        wire.validate_feed(symbol, depth, channels)

    def subscribe_messages(self) -> list[str]:
        return [wire.subscribe_message(wire.CHANNEL_PREFIX[c] + code)
                for c in self.spec.channels for code in self._wanted]

    def resync_messages(self, symbol: str) -> list[str]:
        return []  # a resync is a REST snapshot: the adapter asks for it itself (snapshot_request)

    def ping_message(self, req_id: int) -> str:
        return wire.HEARTBEAT_REQUEST

    def reset(self) -> None:
        for pb in self._pairs.values():
            self._stats.unverified_updates += len(pb.buffer)
        self._pairs.clear()

    def symbols(self) -> list[str]:
        return sorted(pb.symbol for pb in self._pairs.values())

    def precision(self, symbol: str) -> Optional[tuple[int, int, str]]:
        p = self._precision.get(wire.pair_code(symbol))
        return (p[0], p[1], "trading-pairs-info") if p else None

    def book(self, symbol: str) -> Optional[L2Book]:
        pb = self._pairs.get(wire.pair_code(symbol))
        return pb.book if pb is not None and pb.state == LIVE else None

    def on_message(self, raw: str | bytes, ts_capture: int) -> list[Event]:
        """Parse one frame (a WebSocket message, or a REST answer the collector fetched)."""
        st = self._stats
        st.messages += 1
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._bad(f"not JSON: {exc}", raw, ts_capture)
        if not isinstance(msg, dict):
            return self._bad("not a JSON object", raw, ts_capture)
        try:
            if REST_FRAME_KEY in msg:
                return self._on_rest(msg, raw, ts_capture)
            event = msg.get("event")
            channel = msg.get("channel") or ""
            if event == "data" and channel.startswith(wire.BOOK_PREFIX):
                return self._on_diff(channel[len(wire.BOOK_PREFIX):], msg.get("data"), raw, ts_capture)
            if event == "trade" and channel.startswith(wire.TRADES_PREFIX):
                return self._on_trade(channel[len(wire.TRADES_PREFIX):], msg.get("data"), ts_capture)
            if event == "bts:heartbeat":
                st.heartbeats += 1
                return self._count([Heartbeat(**self._head("", None, ts_capture))])
            if event == "bts:subscription_succeeded":
                return self._count([Subscribed(**self._head(self._symbol_of(channel), None, ts_capture),
                                               channel=channel)])
            if event == "bts:unsubscription_succeeded":
                return []
            if event == "bts:request_reconnect":
                return self._count([ReconnectRequest(**self._head("", None, ts_capture),
                                                     reason="bts:request_reconnect")])
            if event == "bts:error":
                data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
                return self._count([SubscriptionError(**self._head("", None, ts_capture), channel=channel,
                                                      error=str(data.get("message", "")))])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            return self._bad(f"bad field: {exc}", raw, ts_capture)
        return self._bad(f"unknown event {msg.get('event')!r} on channel {msg.get('channel')!r}", raw, ts_capture)

    # ------------------------------------------------------------------ messages

    def _on_diff(self, code: str, data: Any, raw: Any, ts: int) -> list[Event]:
        pb = self._pair(code)
        if pb is None:
            return []
        mts = wire.micro_ns(data["microtimestamp"])
        bids, asks = _levels(data["bids"]), _levels(data["asks"])
        out: list[Event] = []
        if pb.state != LIVE:
            pb.buffer.append((mts, bids, asks))
            if len(pb.buffer) > _BUFFER_MAX:
                pb.buffer.popleft()
                pb.overflowed = True
                self._stats.unverified_updates += 1
            if pb.state == WAIT and self.rest and ts >= pb.retry_at:
                out += self._request(pb, "initial sync" if not pb.snap_ts else "resync", ts)
            return self._count(out)
        if pb.pending is not None and mts > pb.pending[0]:  # the stream reached the snapshot's time
            s_ts, s_bids, s_asks = pb.pending
            pb.pending = None
            out += self._compare(pb, _book_of(s_bids, s_asks), s_ts, ts)
            if pb.state != LIVE:
                pb.buffer.append((mts, bids, asks))
                return self._count(out)
        if mts <= pb.snap_ts:  # at or before the snapshot: already in it
            self._stats.stale_updates += 1
            return self._count(out)
        if mts < pb.last_ts:
            return self._count(out + self._fail(pb, "time went backwards",
                                                f"diff at {mts} after {pb.last_ts}", ts))
        if pb.last_ts and mts - pb.last_ts > self.gap_ns and self.rest and not pb.verifying:
            self._stats.time_gaps += 1
            out += self._request(pb, f"verify after a {(mts - pb.last_ts) / _NS:.1f} s gap in microtimestamp", ts)
        out += self._apply(pb, mts, bids, asks, ts)
        if pb.state == LIVE and self.rest and self.verify_ns and ts >= pb.next_verify and not pb.verifying:
            out += self._request(pb, "periodic verification", ts)
        return self._count(out)

    def _on_trade(self, code: str, data: Any, ts: int) -> list[Event]:
        pb_symbol = self._symbol_of(code)
        if self._wanted and code not in self._wanted:
            return []
        qty = float(data.get("amount_str", data["amount"]))
        price = float(data.get("price_str", data["price"]))
        side = "buy" if int(data["type"]) == 0 else "sell"
        self._stats.trades += 1
        return self._count([Trade(**self._head(pb_symbol, wire.micro_ns(data["microtimestamp"]), ts), price=price,
                                  qty=qty, side=side, trade_id=int(data["id"]) if "id" in data else None)])

    def _on_rest(self, msg: dict, raw: Any, ts: int) -> list[Event]:
        meta, body = msg[REST_FRAME_KEY], msg.get("body")
        url = str(meta.get("url", ""))
        if wire.PAIRS_INFO_PATH.rstrip("/") in url:
            for p in body if isinstance(body, list) else []:
                if isinstance(p, dict) and "url_symbol" in p:
                    self._names[str(p["url_symbol"])] = str(p.get("name", ""))
                    if "counter_decimals" in p and "base_decimals" in p:
                        self._precision[str(p["url_symbol"])] = (int(p["counter_decimals"]), int(p["base_decimals"]))
            return []
        if wire.ORDER_BOOK_PATH not in url:
            return self._bad(f"REST answer from an unexpected URL {url}", raw, ts)
        code = url.split(wire.ORDER_BOOK_PATH, 1)[1].strip("/").split("/")[0].split("?")[0]
        pb = self._pair(code)
        if pb is None:
            return []
        status = int(meta.get("status", 0))
        if status != 200 or not isinstance(body, dict) or "microtimestamp" not in body:
            why = body if isinstance(body, str) else f"HTTP {status}"
            out = self._bad(f"order_book snapshot for {pb.symbol} failed: {truncate_text(str(why), 120)}", raw, ts)
            pb.verifying = False
            pb.next_verify = ts + self.verify_ns  # a failing endpoint is not asked again at once
            if pb.state == FETCH:
                pb.state, pb.retry_at = WAIT, ts + self.retry_ns
            return out
        s_ts = wire.micro_ns(body["microtimestamp"])
        bids, asks = _levels(body["bids"]), _levels(body["asks"])
        if pb.state == LIVE and pb.verifying:
            pb.verifying = False
            if s_ts > pb.last_ts:  # ahead of the stream: compare when the stream gets there
                pb.pending = (s_ts, bids, asks)
                return []
            return self._count(self._compare(pb, self._rolled(pb, s_ts, bids, asks), s_ts, ts))
        return self._count(self._seed(pb, s_ts, bids, asks, ts))

    # ------------------------------------------------------------------ book

    def _seed(self, pb: _Pair, s_ts: int, bids: Levels, asks: Levels, ts: int) -> list[Event]:
        """Join a snapshot to the buffered stream (drop diffs at or before it, apply the rest)."""
        if pb.buffer and s_ts < pb.buffer[0][0]:
            pb.state, pb.retry_at = WAIT, ts + self.retry_ns  # older than the first diff we hold: ask again
            return []
        book = _book_of(bids, asks)
        applied = 0
        last = s_ts
        for mts, b, a in pb.buffer:
            if mts <= s_ts:
                self._stats.stale_updates += 1
                continue
            if mts < last:
                pb.buffer.clear()
                return self._fail(pb, "time went backwards", f"buffered diff at {mts} after {last}", ts)
            _apply_levels(book, b, a)
            last = mts
            applied += 1
        pb.buffer.clear()
        pb.overflowed = False
        pb.book, pb.snap_ts, pb.last_ts = book, s_ts, last
        pb.ring.clear()
        pb.ring_cut = last
        pb.state, pb.verifying, pb.pending = LIVE, False, None
        pb.next_verify = ts + self.verify_ns
        st = self._stats
        if book.is_crossed():
            st.crossed_books += 1
            return self._fail(pb, "crossed after sync", _top_text(book), ts)
        st.book_snapshots += 1
        st.book_updates += applied
        st.verified_updates += applied
        pb.view = _view(book, self.depth)
        out: list[Event] = [BookSnapshot(**self._head(pb.symbol, last, ts), bids=pb.view[0], asks=pb.view[1],
                                         verified=True, depth=self.depth)]
        self._top(pb, last, ts, out)
        return out

    def _apply(self, pb: _Pair, mts: int, bids: Levels, asks: Levels, ts: int) -> list[Event]:
        book = pb.book
        _apply_levels(book, bids, asks)
        pb.last_ts = mts
        st = self._stats
        st.book_updates += 1
        if book.is_crossed():
            st.crossed_books += 1
            return self._fail(pb, "crossed" if book.best_bid()[0] > book.best_ask()[0] else "locked",  # type: ignore[index]
                              _top_text(book), ts)
        pb.ring.append((mts, bids, asks))
        while pb.ring and pb.ring[0][0] < mts - _RING_NS:
            pb.ring_cut = pb.ring.popleft()[0]
        st.verified_updates += 1
        new = _view(book, self.depth)
        changes = (_changes(pb.view[0], new[0]), _changes(pb.view[1], new[1]))
        pb.view = new
        out: list[Event] = [BookUpdate(**self._head(pb.symbol, mts, ts), bids=changes[0], asks=changes[1],
                                       verified=True, depth=self.depth)]
        self._top(pb, mts, ts, out)
        return out

    def _rolled(self, pb: _Pair, s_ts: int, bids: Levels, asks: Levels) -> Optional[L2Book]:
        """The snapshot rolled forward by the applied diffs after its time (None: the ring does not
        reach back that far, so it cannot be compared)."""
        if s_ts < pb.ring_cut:
            return None
        book = _book_of(bids, asks)
        for mts, b, a in pb.ring:
            if mts > s_ts:
                _apply_levels(book, b, a)
        return book

    def _compare(self, pb: _Pair, fresh: Optional[L2Book], s_ts: int, ts: int) -> list[Event]:
        st = self._stats
        pb.next_verify = ts + self.verify_ns
        if fresh is None:
            return []
        theirs = _view(fresh, self.depth)
        if theirs == pb.view:
            st.snapshot_checks_ok += 1
            return []
        st.snapshot_checks_failed += 1
        detail = _first_difference(pb.view, theirs)
        out: list[Event] = [BookMismatch(**self._head(pb.symbol, s_ts, ts), reason="re-snapshot differs", detail=detail),
                            Resync(**self._head(pb.symbol, None, ts), reason=f"re-snapshot differs: {detail}")]
        st.resyncs += 1
        pb.book, pb.view = fresh, theirs
        if fresh.is_crossed():
            st.crossed_books += 1
            return out + self._fail(pb, "crossed after resync", _top_text(fresh), ts)
        st.book_snapshots += 1
        out.append(BookSnapshot(**self._head(pb.symbol, max(s_ts, pb.last_ts), ts), bids=theirs[0], asks=theirs[1],
                                verified=True, depth=self.depth))
        self._top(pb, max(s_ts, pb.last_ts), ts, out)
        return out

    def _fail(self, pb: _Pair, reason: str, detail: str, ts: int) -> list[Event]:
        """An integrity failure: an event, the book dropped, a fresh snapshot asked for."""
        st = self._stats
        st.resyncs += 1
        out: list[Event] = [BookMismatch(**self._head(pb.symbol, pb.last_ts or None, ts), reason=reason, detail=detail),
                            Resync(**self._head(pb.symbol, None, ts), reason=f"{reason}: {detail}")]
        pb.book = L2Book(1 << 30)
        pb.view, pb.top, pb.pending, pb.verifying = ((), ()), None, None, False
        pb.ring.clear()
        pb.state, pb.retry_at = WAIT, 0
        if self.rest:
            out += self._request(pb, "resync", ts)
        return out

    def _request(self, pb: _Pair, reason: str, ts: int) -> list[Event]:
        if pb.state == WAIT:
            pb.state = FETCH
        else:
            pb.verifying = True
        url = f"{self.rest}{wire.ORDER_BOOK_PATH}{pb.code}/"
        return [SnapshotRequest(**self._head(pb.symbol, None, ts), url=url, reason=reason)]

    def _top(self, pb: _Pair, mts: int, ts: int, out: list[Event]) -> None:
        top = pb.book.top()
        if top is not None and top != pb.top:
            pb.top = top
            self._stats.tops += 1
            out.append(TopOfBook(**self._head(pb.symbol, mts, ts), bid=top[0], bid_qty=top[1], ask=top[2],
                                 ask_qty=top[3], source="book"))

    # ------------------------------------------------------------------ helpers

    def _pair(self, code: str) -> Optional[_Pair]:
        pb = self._pairs.get(code)
        if pb is None:
            if self._wanted and code not in self._wanted:
                return None
            pb = self._pairs[code] = _Pair(self._symbol_of(code), code)
        return pb

    def _symbol_of(self, code_or_channel: str) -> str:
        code = code_or_channel
        for prefix in (wire.BOOK_PREFIX, wire.TRADES_PREFIX):
            if code.startswith(prefix):
                code = code[len(prefix):]
        return self._wanted.get(code) or self._names.get(code) or wire.symbol_of(code) if code else ""

    def _head(self, symbol: str, ts_exchange: Optional[int], ts_capture: int) -> dict[str, Any]:
        return {"exchange": self.exchange, "symbol": symbol, "ts_exchange": ts_exchange, "ts_capture": ts_capture}

    def _count(self, events: list[Event]) -> list[Event]:
        by = self._stats.events_by_kind
        for ev in events:
            by[ev.KIND] = by.get(ev.KIND, 0) + 1
        return events

    def _bad(self, reason: str, raw: Any, ts: int) -> list[Event]:
        self._stats.bad_messages += 1
        return self._count([BadMessage(**self._head("", None, ts), reason=reason, text=truncate_text(raw))])


def _levels(rows: Any) -> Levels:
    """``[["60526.75", "0.12391066"], ...]`` -> ((price, qty), ...)."""
    return tuple((float(p), float(q)) for p, q in rows)


def _book_of(bids: Levels, asks: Levels) -> L2Book:
    book = L2Book(1 << 30)
    _apply_levels(book, bids, asks)
    return book


def _apply_levels(book: L2Book, bids: Levels, asks: Levels) -> None:
    for p, q in bids:
        book.apply_bid(p, q)
    for p, q in asks:
        book.apply_ask(p, q)


def _view(book: L2Book, depth: int) -> tuple[Levels, Levels]:
    return tuple(book.bids(depth)), tuple(book.asks(depth))


def _changes(old: Levels, new: Levels) -> Levels:
    """Levels that turn view ``old`` into ``new``: deletes first, then new or changed sizes."""
    before, after = dict(old), dict(new)
    dels = tuple((p, 0.0) for p in before if p not in after)
    return dels + tuple((p, q) for p, q in new if before.get(p) != q)


def _first_difference(mine: tuple[Levels, Levels], theirs: tuple[Levels, Levels]) -> str:
    for name, a, b in (("bid", mine[0], theirs[0]), ("ask", mine[1], theirs[1])):
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if x != y:
                return f"{name} level {i + 1}: book {x} vs snapshot {y}"
    return "views differ"


def _top_text(book: L2Book) -> str:
    return f"best bid {book.best_bid()} vs best ask {book.best_ask()}"
