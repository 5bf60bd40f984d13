"""Kraken WS v2 adapter: real-recording checksums, integrity on mismatch, every message type,
bad input, request shapes."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from conftest import V2_BOOK
from mm_core.adapters.base import FeedSpec
from mm_core.adapters.kraken import fastbook
from mm_core.adapters.kraken.checksum import token_from_number
from mm_core.adapters.kraken.v2 import KrakenV2Adapter
from mm_core.book import L2Book
from mm_core.events import (
    BAD_TEXT_MAX,
    BadMessage,
    BookSnapshot,
    BookUpdate,
    ChecksumMismatch,
    Event,
    ExchangeStatus,
    Heartbeat,
    Pong,
    Resync,
    Subscribed,
    SubscriptionError,
    TopOfBook,
    Trade,
)

SYMBOL = "BTC/USD"


def recording() -> list[dict[str, Any]]:
    doc = json.loads(V2_BOOK.read_text())
    init = doc["init"] if isinstance(doc["init"], list) else [doc["init"]]
    return init + doc["updates"]


def frames(msgs: list[dict[str, Any]] | None = None) -> list[bytes]:
    return [orjson.dumps(m) for m in (msgs if msgs is not None else recording())]


ENGINE = {"name": "auto"}


@pytest.fixture(autouse=True, params=["numba", "python"])
def engine(request: pytest.FixtureRequest) -> Any:
    """Every test here runs on both book engines: the compiled kernel and the pure-Python one."""
    if request.param == "numba" and not fastbook.AVAILABLE:
        pytest.skip("numba not available")
    ENGINE["name"] = request.param
    yield request.param
    ENGINE["name"] = "auto"


def adapter(symbols: tuple[str, ...] = (SYMBOL,), **kw: Any) -> KrakenV2Adapter:
    kw.setdefault("engine", ENGINE["name"])
    return KrakenV2Adapter(FeedSpec(symbols=symbols), **kw)


def feed(a: KrakenV2Adapter, raws: list[Any], ts: int = 1) -> list[Event]:
    out: list[Event] = []
    for raw in raws:
        out.extend(a.on_message(raw, ts))
    return out


def of(events: list[Event], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


# ---------------------------------------------------------------------------- real recording


def test_all_510_checksums_of_the_v2_recording_verify() -> None:
    a = adapter()
    events = feed(a, frames())
    s = a.stats
    assert (s.book_snapshots, s.book_updates, s.checksums_ok) == (1, 509, 510)
    assert s.checksums_failed == s.unverified_updates == s.resyncs == s.bad_messages == 0
    assert all(e.verified for e in of(events, BookUpdate) + of(events, BookSnapshot))
    assert a.is_valid(SYMBOL)
    assert a.precision(SYMBOL) == (1, 8, "known table")


def test_the_book_ends_where_the_recording_ends() -> None:
    a = adapter()
    feed(a, frames())
    book = a.book(SYMBOL)
    assert book is not None and len(book.bids()) == 10 and len(book.asks()) == 10
    assert book.best_bid() == (29430.4, 11.93517449) and book.best_ask() == (29430.5, 0.00560461)
    assert not book.is_crossed()


def test_top_of_book_is_emitted_only_when_the_best_level_changes() -> None:
    a = adapter()
    events = feed(a, frames())
    tops = of(events, TopOfBook)
    assert 0 < len(tops) < 510 and all(t.source == "book" for t in tops)
    pairs = [(t.bid, t.bid_qty, t.ask, t.ask_qty) for t in tops]
    assert all(x != y for x, y in zip(pairs, pairs[1:]))
    assert tops[0].ts_exchange is None  # from the snapshot, which has no timestamp
    # every later top follows the update that produced it and carries its exchange time
    for i, e in enumerate(events):
        if isinstance(e, TopOfBook) and i > 1:
            assert isinstance(events[i - 1], BookUpdate) and e.ts_exchange == events[i - 1].ts_exchange


def test_update_timestamps_are_exact_nanoseconds() -> None:
    a = adapter()
    updates = of(feed(a, frames()), BookUpdate)
    assert updates[0].ts_exchange == 1_690_730_998_343_415_000  # 2023-07-30T15:29:58.343415Z
    assert all(u.ts_exchange % 1000 == 0 for u in updates)


def test_bytes_and_str_frames_are_the_same() -> None:
    a, b = adapter(), adapter()
    ev_a = feed(a, frames())
    ev_b = feed(b, [f.decode() for f in frames()])
    assert ev_a == ev_b


def test_kraken_doc_vector_3310070434() -> None:
    asks = [(45285.2, 0.001), (45286.4, 1.54571953), (45286.6, 1.54571109), (45289.6, 1.54560911),
            (45290.2, 0.1589066), (45291.8, 1.54553491), (45294.7, 0.04454749), (45296.1, 0.3538),
            (45297.5, 0.09945542), (45299.5, 0.18772827)]
    bids = [(45283.5, 0.1), (45283.4, 1.54582015), (45282.1, 0.1), (45281.0, 0.1), (45280.3, 1.54592586),
            (45279.0, 0.0799), (45277.6, 0.03310103), (45277.5, 0.3), (45277.3, 1.54602737),
            (45276.6, 0.15445238)]
    msg = {"channel": "book", "type": "snapshot", "data": [{
        "symbol": SYMBOL, "checksum": 3310070434,
        "asks": [{"price": p, "qty": q} for p, q in asks], "bids": [{"price": p, "qty": q} for p, q in bids]}]}
    a = adapter()
    (snap, *_rest) = a.on_message(orjson.dumps(msg), 1)
    assert isinstance(snap, BookSnapshot) and snap.verified and snap.checksum == 3310070434
    assert token_from_number(45285.2, 1) + token_from_number(0.001, 8) == "452852100000"
    book = L2Book(10)
    for p, q in asks:
        book.apply_ask(p, q, token_from_number(p, 1) + token_from_number(q, 8))
    for p, q in bids:
        book.apply_bid(p, q, token_from_number(p, 1) + token_from_number(q, 8))
    import zlib

    assert zlib.crc32("".join(book.tokens(10)).encode()) == 3310070434  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- integrity


def _altered(msgs: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """The recording with one quantity of update ``index`` changed (and its checksum kept)."""
    msgs = json.loads(json.dumps(msgs))
    d = msgs[index]["data"][0]
    side = d["asks"] or d["bids"]
    side[0]["qty"] = round(side[0]["qty"] + 0.00000001, 8) if side[0]["qty"] else 0.5
    return msgs


def test_a_single_altered_quantity_is_caught_as_a_mismatch() -> None:
    msgs = _altered(recording(), 100)
    a = adapter()
    before = feed(a, frames(msgs[:100]))
    assert a.is_valid(SYMBOL) and of(before, ChecksumMismatch) == []
    out = a.on_message(orjson.dumps(msgs[100]), 7)
    kinds = [type(e) for e in out]
    assert kinds == [BookUpdate, ChecksumMismatch, Resync]
    upd, mismatch, resync = out
    assert upd.verified is False
    assert mismatch.expected == msgs[100]["data"][0]["checksum"] and mismatch.computed != mismatch.expected
    assert "checksum mismatch" in resync.reason and resync.symbol == SYMBOL
    assert not a.is_valid(SYMBOL)


def test_after_a_mismatch_updates_are_unverified_and_never_trusted_until_the_next_snapshot() -> None:
    msgs = _altered(recording(), 100)
    a = adapter()
    events = feed(a, frames(msgs[:101]))
    after = feed(a, frames(msgs[101:200]))
    assert len(after) == 99 and all(isinstance(e, BookUpdate) and not e.verified for e in after)
    assert of(after, TopOfBook) == [] and of(after, Resync) == []  # one resync request, not 99
    s = a.stats
    assert (s.checksums_failed, s.unverified_updates, s.resyncs) == (1, 99, 1)
    assert of(events, Resync) and not a.is_valid(SYMBOL)
    # a new snapshot resets the book and restores verification
    restored = feed(a, frames([recording()[0]]))
    assert isinstance(restored[0], BookSnapshot) and restored[0].verified and of(restored, TopOfBook)
    assert a.is_valid(SYMBOL)


def test_a_new_snapshot_restores_verification_for_the_rest_of_the_recording() -> None:
    msgs = recording()
    a = adapter()
    feed(a, frames(_altered(msgs, 50)[:51]))
    assert not a.is_valid(SYMBOL)
    # resync: the exchange sends a snapshot of its book at that point (rebuilt here from a clean run)
    clean = adapter()
    feed(clean, frames(msgs[:51]))
    book = clean.book(SYMBOL)
    assert book is not None
    snap = {"channel": "book", "type": "snapshot", "data": [{
        "symbol": SYMBOL, "checksum": msgs[50]["data"][0]["checksum"],
        "asks": [{"price": p, "qty": q} for p, q in book.asks()],
        "bids": [{"price": p, "qty": q} for p, q in book.bids()]}]}
    feed(a, frames([snap]))
    rest = feed(a, frames(msgs[51:]))
    assert all(e.verified for e in of(rest, BookUpdate)) and a.stats.checksums_failed == 1
    assert a.is_valid(SYMBOL)


def test_a_snapshot_with_a_wrong_checksum_is_not_trusted() -> None:
    msgs = recording()
    msgs[0]["data"][0]["checksum"] += 1
    a = adapter()
    out = feed(a, frames(msgs[:2]))
    assert [type(e) for e in out] == [BookSnapshot, ChecksumMismatch, Resync, BookUpdate]
    assert not out[0].verified and not out[3].verified and of(out, TopOfBook) == []


def test_resync_messages_unsubscribe_and_resubscribe_the_book_with_its_depth() -> None:
    a = KrakenV2Adapter(FeedSpec(symbols=("BTC/EUR",), book_depth=25))
    unsub, sub = (orjson.loads(m) for m in a.resync_messages("BTC/EUR"))
    assert unsub["method"] == "unsubscribe" and sub["method"] == "subscribe"
    assert unsub["params"] == {"channel": "book", "symbol": ["BTC/EUR"], "depth": 25}
    assert sub["params"] == {"channel": "book", "symbol": ["BTC/EUR"], "depth": 25, "snapshot": True}
    assert sub["req_id"] == unsub["req_id"] + 1


def test_reset_forgets_all_books() -> None:
    a = adapter()
    feed(a, frames()[:10])
    a.reset()
    assert a.book(SYMBOL) is None and not a.is_valid(SYMBOL)
    out = a.on_message(frames()[10], 1)
    assert [type(e) for e in out] == [BadMessage, Resync]


def test_truncation_to_the_subscribed_depth_happens_after_every_message() -> None:
    msgs = recording()
    a = adapter()
    feed(a, frames(msgs[:1]))
    d = msgs[0]["data"][0]
    worst_ask = max(lvl["price"] for lvl in d["asks"])
    upd = {"channel": "book", "type": "update", "data": [{
        "symbol": SYMBOL, "bids": [], "asks": [{"price": worst_ask + 1.0, "qty": 1.0}],
        "checksum": d["checksum"], "timestamp": "2023-07-30T15:29:58.000001Z"}]}
    (u,) = a.on_message(orjson.dumps(upd), 1)  # level beyond depth 10: dropped, checksum unchanged
    assert u.verified and len(a.book(SYMBOL).asks()) == 10  # type: ignore[union-attr]


def test_unknown_symbol_precision_is_inferred_from_the_first_snapshot() -> None:
    msgs = recording()
    for m in msgs:
        m["data"][0]["symbol"] = "FOO/USD"
    a = adapter(("FOO/USD",))
    feed(a, frames(msgs))
    assert a.stats.checksums_ok == 510 and a.stats.checksums_failed == 0
    assert a.precision("FOO/USD") == (1, 8, "inferred from the first snapshot")


def test_config_precision_wins_over_the_known_table() -> None:
    from mm_core.adapters.kraken.instruments import instrument_with_precision

    spec = FeedSpec(symbols=(SYMBOL,), instruments={SYMBOL: instrument_with_precision(SYMBOL, 2, 8)})
    a = KrakenV2Adapter(spec)
    feed(a, frames()[:1])
    assert a.precision(SYMBOL) == (2, 8, "config")
    assert a.stats.checksums_failed == 1  # a wrong precision cannot go unnoticed


def test_a_timestamp_going_backwards_is_flagged_but_the_checksum_decides() -> None:
    msgs = recording()
    msgs[2]["data"][0]["timestamp"] = "2023-07-30T15:29:58.000000Z"  # before update 1's
    a = adapter()
    out = feed(a, frames(msgs[:3]))
    bad = of(out, BadMessage)
    assert len(bad) == 1 and "went backwards" in bad[0].reason
    assert all(u.verified for u in of(out, BookUpdate))


# ---------------------------------------------------------------------------- bad input


def _one(a: KrakenV2Adapter, raw: Any) -> list[Event]:
    out = a.on_message(raw, 5)
    assert out and all(isinstance(e, Event) for e in out)
    return out


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"channel":"book","type":"update","data":[', "malformed JSON"),
        (b"", "malformed JSON"),
        (b'{"channel":"ohlc","type":"update","data":[]}', "unknown channel 'ohlc'"),
        (b"[1,2,3]", "not a JSON object"),
        (b'"just a string"', "not a JSON object"),
        (b'{"foo":1}', "neither 'channel' nor 'method'"),
        (b'{"method":"add_order","success":true}', "unknown method 'add_order'"),
        (b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/EUR","bid":"abc","bid_qty":1,'
         b'"ask":2,"ask_qty":1}]}', "ticker message"),
        (b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/EUR","side":"up","price":1,"qty":1,'
         b'"timestamp":"2026-05-01T10:00:00.130011Z"}]}', "trade message"),
        (b'{"channel":"book","type":"partial","data":[]}', "unknown type 'partial'"),
    ],
)
def test_bad_frames_become_bad_messages_with_their_text(raw: bytes, reason: str) -> None:
    a = adapter()
    (bad,) = _one(a, raw)
    assert isinstance(bad, BadMessage) and reason in bad.reason
    assert bad.text == raw.decode()[:BAD_TEXT_MAX] or bad.text.startswith(raw.decode()[:BAD_TEXT_MAX])
    assert a.stats.bad_messages == 1


def test_missing_fields_are_named() -> None:
    a = adapter()
    feed(a, frames()[:1])
    msg = recording()[1]
    del msg["data"][0]["checksum"]
    out = _one(a, orjson.dumps(msg))
    assert isinstance(out[0], BadMessage) and "checksum" in out[0].reason
    no_symbol = {"channel": "book", "type": "update", "data": [{"bids": [], "asks": [], "checksum": 1}]}
    assert "symbol" in _one(a, orjson.dumps(no_symbol))[0].reason


def test_a_broken_update_of_a_valid_book_invalidates_it_and_asks_for_a_resync() -> None:
    """The update is lost, so the book cannot be right any more."""
    a = adapter()
    feed(a, frames()[:1])
    msg = recording()[1]
    msg["data"][0]["asks"][0]["price"] = "not a number"
    out = _one(a, orjson.dumps(msg))
    assert [type(e) for e in out] == [BadMessage, Resync]
    assert "price" in out[0].reason and not a.is_valid(SYMBOL)


def test_non_numeric_price_in_a_snapshot_is_a_bad_message() -> None:
    a = adapter()
    msg = recording()[0]
    msg["data"][0]["bids"][0]["price"] = "abc"
    out = _one(a, orjson.dumps(msg))
    assert isinstance(out[0], BadMessage) and "Expected `float`" in out[0].reason
    assert a.book(SYMBOL) is None


def test_negative_and_zero_prices_are_rejected() -> None:
    a = adapter()
    msg = recording()[0]
    msg["data"][0]["asks"][0]["price"] = -1.0
    assert isinstance(_one(a, orjson.dumps(msg))[0], BadMessage)


def test_an_update_before_any_snapshot_is_a_bad_message_and_a_resync_request() -> None:
    a = adapter()
    out = _one(a, frames()[1])
    assert [type(e) for e in out] == [BadMessage, Resync]
    assert "before any snapshot" in out[0].reason
    again = _one(a, frames()[2])  # still no snapshot: reported, but the resync is already asked
    assert [type(e) for e in again] == [BadMessage]


def test_a_huge_garbage_frame_is_truncated_in_the_bad_message() -> None:
    a = adapter()
    raw = b"\x00garbage" * 2_000_000
    (bad,) = _one(a, raw)
    assert isinstance(bad, BadMessage) and len(bad.text) < BAD_TEXT_MAX + 40
    assert bad.text.endswith("chars)")


def test_non_text_frames_do_not_raise() -> None:
    a = adapter()
    for raw in (None, 123, 4.5, object()):
        (bad,) = _one(a, raw)
        assert isinstance(bad, BadMessage)


def test_stats_count_every_event_kind() -> None:
    a = adapter()
    events = feed(a, frames() + [b"junk", b'{"channel":"heartbeat"}'])
    counted: dict[str, int] = {}
    for e in events:
        counted[e.KIND] = counted.get(e.KIND, 0) + 1
    assert a.stats.events_by_kind == counted
    assert a.stats.messages == 512 and a.stats.heartbeats == 1 and a.stats.tops == counted["top_of_book"]


# ---------------------------------------------------------------------------- other messages


def test_subscribe_messages_have_the_documented_shapes() -> None:
    a = KrakenV2Adapter(FeedSpec(symbols=("BTC/EUR",), book_depth=10))
    book, ticker, trade = (orjson.loads(m) for m in a.subscribe_messages())
    assert book == {"method": "subscribe", "req_id": 1,
                    "params": {"channel": "book", "symbol": ["BTC/EUR"], "depth": 10, "snapshot": True}}
    assert ticker == {"method": "subscribe", "req_id": 2,
                      "params": {"channel": "ticker", "symbol": ["BTC/EUR"], "event_trigger": "bbo", "snapshot": True}}
    assert trade == {"method": "subscribe", "req_id": 3,
                     "params": {"channel": "trade", "symbol": ["BTC/EUR"], "snapshot": False}}
    assert orjson.loads(a.ping_message(101)) == {"method": "ping", "req_id": 101}


def test_trade_snapshot_can_be_requested_explicitly() -> None:
    a = KrakenV2Adapter(FeedSpec(symbols=("BTC/EUR",), channels=("trade",)), trade_snapshot=True)
    (trade,) = (orjson.loads(m) for m in a.subscribe_messages())
    assert trade["params"]["snapshot"] is True


def test_the_adapter_refuses_a_v1_symbol_at_construction() -> None:
    with pytest.raises(ValueError, match="use 'BTC/EUR'"):
        KrakenV2Adapter(FeedSpec(symbols=("XBT/EUR",)))


def test_a_successful_ack_becomes_subscribed() -> None:
    a = KrakenV2Adapter(FeedSpec(symbols=("BTC/EUR",)))
    a.subscribe_messages()
    raw = ('{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/EUR"},'
           '"success":true,"time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z",'
           '"req_id":1}')
    (ev,) = a.on_message(raw, 9)
    assert isinstance(ev, Subscribed)
    assert (ev.symbol, ev.channel, ev.req_id, ev.ts_capture) == ("BTC/EUR", "book", 1, 9)
    assert ev.ts_exchange == 1_695_564_623_799_703_000


def test_a_failed_ack_becomes_subscription_error_with_the_exchange_text() -> None:
    a = KrakenV2Adapter(FeedSpec(symbols=("BTC/EUR",)))
    raw = '{"error":"Currency pair not supported XBT/EUR","method":"subscribe","success":false,"symbol":"XBT/EUR"}'
    (ev,) = a.on_message(raw, 1)
    assert isinstance(ev, SubscriptionError)
    assert ev.error == "Currency pair not supported XBT/EUR" and ev.symbol == "XBT/EUR"


def test_a_failed_ack_finds_its_channel_through_the_req_id() -> None:
    a = KrakenV2Adapter(FeedSpec(symbols=("BTC/EUR",)))
    a.subscribe_messages()  # req_id 2 = ticker
    raw = '{"error":"Already subscribed","method":"subscribe","success":false,"symbol":"BTC/EUR","req_id":2}'
    (ev,) = a.on_message(raw, 1)
    assert isinstance(ev, SubscriptionError) and ev.channel == "ticker" and ev.req_id == 2


def test_a_book_ack_sets_the_depth_the_book_is_cut_to() -> None:
    a = adapter(infer_depth=True)
    a.on_message('{"method":"subscribe","result":{"channel":"book","depth":25,"symbol":"BTC/USD"},'
                 '"success":true}', 1)
    (snap, _top) = a.on_message(frames()[0], 1)
    assert snap.depth == 25


def test_a_successful_unsubscribe_is_silent_and_a_failed_one_is_reported() -> None:
    a = adapter()
    assert a.on_message('{"method":"unsubscribe","result":{"channel":"book","symbol":"BTC/USD"},'
                        '"success":true}', 1) == []
    (bad,) = a.on_message('{"method":"unsubscribe","error":"Subscription Not Found","success":false,'
                          '"symbol":"BTC/USD"}', 1)
    assert isinstance(bad, BadMessage) and "Subscription Not Found" in bad.reason


def test_pong_carries_exchange_times_in_nanoseconds() -> None:
    a = adapter()
    (ev,) = a.on_message('{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z",'
                         '"time_out":"2023-09-24T14:10:23.799703Z"}', 5)
    assert isinstance(ev, Pong) and ev.req_id == 101
    assert (ev.time_in, ev.time_out) == (1_695_564_623_799_685_000, 1_695_564_623_799_703_000)


def test_status_becomes_exchange_status() -> None:
    a = adapter()
    (ev,) = a.on_message('{"channel":"status","type":"update","data":[{"system":"online","api_version":"v2",'
                         '"connection_id":644748166216981300,"version":"2.0.10"}]}', 5)
    assert isinstance(ev, ExchangeStatus) and (ev.status, ev.version) == ("online", "2.0.10")


def test_heartbeat_becomes_heartbeat() -> None:
    a = adapter()
    (ev,) = a.on_message('{"channel":"heartbeat"}', 5)
    assert isinstance(ev, Heartbeat) and ev.ts_capture == 5 and a.stats.heartbeats == 1


TICKER = {"symbol": "BTC/EUR", "bid": 61234.5, "bid_qty": 0.25, "ask": 61234.6, "ask_qty": 1.1, "last": 61230.0,
          "volume": 12.3, "vwap": 61000.1, "low": 60000.0, "high": 62000.0, "change": 100.0, "change_pct": 0.16}


def test_ticker_with_timestamp_becomes_top_of_book_from_the_ticker() -> None:
    a = adapter()
    data = dict(TICKER, timestamp="2026-05-01T10:00:00.123456Z")
    (ev,) = a.on_message(orjson.dumps({"channel": "ticker", "type": "update", "data": [data]}), 5)
    assert isinstance(ev, TopOfBook) and ev.source == "ticker"
    assert (ev.bid, ev.bid_qty, ev.ask, ev.ask_qty) == (61234.5, 0.25, 61234.6, 1.1)
    assert ev.ts_exchange == 1_777_629_600_123_456_000


@pytest.mark.parametrize("extra", [{}, {"timestamp": ""}])
def test_ticker_without_timestamp_has_no_exchange_time(extra: dict[str, str]) -> None:
    a = adapter()
    (ev,) = a.on_message(orjson.dumps({"channel": "ticker", "type": "snapshot", "data": [dict(TICKER, **extra)]}), 5)
    assert isinstance(ev, TopOfBook) and ev.ts_exchange is None and ev.source == "ticker"


def test_each_trade_of_a_batch_becomes_one_trade() -> None:
    a = adapter()
    raw = orjson.dumps({"channel": "trade", "type": "update", "data": [
        {"symbol": "BTC/EUR", "side": "buy", "price": 61234.6, "qty": 0.0125, "ord_type": "market",
         "trade_id": 91234567, "timestamp": "2026-05-01T10:00:00.130011Z"},
        {"symbol": "BTC/EUR", "side": "sell", "price": 61234.5, "qty": 5.1e-05, "ord_type": "limit",
         "trade_id": 91234568, "timestamp": "2026-05-01T10:00:00.130012Z"}]})
    t1, t2 = a.on_message(raw, 5)
    assert isinstance(t1, Trade) and isinstance(t2, Trade)
    assert (t1.side, t1.price, t1.qty, t1.trade_id, t1.ord_type) == ("buy", 61234.6, 0.0125, 91234567, "market")
    assert (t2.side, t2.qty, t2.trade_id) == ("sell", 5.1e-05, 91234568)
    assert t1.ts_exchange == 1_777_629_600_130_011_000 and a.stats.trades == 2
