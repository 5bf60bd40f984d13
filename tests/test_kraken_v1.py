"""Kraken WS v1 adapter: the cryptofeed recordings import, every checksum verifies (including
the two-object update cryptofeed skips), and the v1 doc vector."""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Any

import orjson
import pytest

from conftest import V1_BOOK, V1_TICKER, V1_TRADE
from mm_core.adapters.base import FeedSpec
from mm_core.adapters.kraken.checksum import token_from_text
from mm_core.adapters.kraken.v1 import KrakenV1Adapter
from mm_core.book import L2Book
from mm_core.events import (
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
from mm_core.recordings import open_recording


def adapter() -> KrakenV1Adapter:
    return KrakenV1Adapter(FeedSpec(symbols=()))


def replay(path: Any) -> tuple[KrakenV1Adapter, list[tuple[str, list[Event]]]]:
    """Every frame of a cryptofeed file with the events it produced."""
    a = adapter()
    out = []
    for ts, text in open_recording(path).frames():
        out.append((text, a.on_message(text, ts)))
    return a, out


def of(events: list[Event], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


# ---------------------------------------------------------------------------- real recording


def test_all_4269_checksums_of_the_v1_recording_verify_across_its_10_pairs() -> None:
    a, frames = replay(V1_BOOK)
    events = [e for _, evs in frames for e in evs]
    updates = of(events, BookUpdate)
    s = a.stats
    assert (s.book_snapshots, s.book_updates, s.checksums_ok) == (10, 4269, 4269)
    assert s.checksums_failed == s.unverified_updates == s.resyncs == s.bad_messages == 0
    assert all(u.verified and u.checksum is not None for u in updates)
    per_pair = Counter(u.symbol for u in updates)
    assert len(per_pair) == 10 and sum(per_pair.values()) == 4269
    assert "XBT/CHF" in per_pair  # v1 symbols are kept as received, not renamed to BTC/CHF


def test_the_update_with_asks_and_bids_in_two_objects_is_verified() -> None:
    """cryptofeed reads the checksum from the first object only and so never checks these."""
    _, frames = replay(V1_BOOK)
    two_part = [(text, evs) for text, evs in frames
                if text.startswith("[") and len(orjson.loads(text)) == 5]
    assert len(two_part) == 1
    text, evs = two_part[0]
    msg = orjson.loads(text)
    assert "a" in msg[1] and "b" in msg[2] and "c" in msg[2] and "c" not in msg[1]
    (upd,) = of(evs, BookUpdate)
    assert upd.verified and upd.checksum == int(msg[2]["c"]) == 4105471083
    assert upd.asks and upd.bids and upd.symbol == "SC/EUR"


def test_books_are_cut_to_the_depth_in_the_channel_name() -> None:
    a, frames = replay(V1_BOOK)
    snaps = [e for _, evs in frames for e in of(evs, BookSnapshot)]
    assert {s.depth for s in snaps} == {1000}
    for symbol in a.symbols():
        book = a.book(symbol)
        assert book is not None and len(book.asks()) <= 1000 and len(book.bids()) <= 1000
    small = adapter()
    levels = [[f"{100 + i}.0", "1.0", "1618678133.000001"] for i in range(12)]
    bids = [[f"{90 - i}.0", "1.0", "1618678133.000001"] for i in range(12)]
    (snap, _top) = small.on_message(orjson.dumps([1, {"as": levels, "bs": bids}, "book-10", "XBT/EUR"]), 1)
    assert snap.depth == 10 and len(snap.asks) == 10 and len(snap.bids) == 10
    assert snap.asks[-1] == (109.0, 1.0) and snap.bids[-1] == (81.0, 1.0)


def test_update_exchange_time_is_the_newest_level_timestamp() -> None:
    _, frames = replay(V1_BOOK)
    for text, evs in frames:
        for upd in of(evs, BookUpdate):
            msg = orjson.loads(text)
            stamps = [lvl[2] for part in msg[1:-2] for key in ("a", "b") for lvl in part.get(key, [])]
            newest = max(stamps, key=lambda t: (len(t.split(".")[0]), t))
            sec, frac = newest.split(".")
            assert upd.ts_exchange == int(sec) * 10**9 + int(frac.ljust(9, "0"))


def test_v1_doc_vector_974947235() -> None:
    """Kraken's v1 checksum guide: asks 0.05005..0.05050 (step 0.00005), bids 0.05000, 0.04995,
    0.04990, 0.04980, ..., 0.04950 (the page's list has no 0.04985), every volume 0.00000500."""
    asks = [f"0.0{5005 + 5 * i}" for i in range(10)]
    bids = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965", "0.04960",
            "0.04955", "0.04950"]
    assert asks[0] == "0.05005" and asks[-1] == "0.05050"
    book = L2Book(10)
    for p in asks:
        book.apply_ask(float(p), 5e-06, token_from_text(p) + token_from_text("0.00000500"))
    for p in bids:
        book.apply_bid(float(p), 5e-06, token_from_text(p) + token_from_text("0.00000500"))
    assert zlib.crc32("".join(book.tokens(10)).encode()) == 974947235  # type: ignore[arg-type]
    # the same through the adapter: snapshot then an update carrying the checksum
    a = adapter()
    lvl = lambda p: [p, "0.00000500", "1582905487.684110"]  # noqa: E731
    a.on_message(orjson.dumps([0, {"as": [lvl(p) for p in asks], "bs": [lvl(p) for p in bids[:-1]]},
                               "book-10", "XBT/USD"]), 1)
    (upd, *_) = a.on_message(orjson.dumps([0, {"b": [lvl("0.04950")], "c": "974947235"}, "book-10", "XBT/USD"]), 2)
    assert isinstance(upd, BookUpdate) and upd.verified


def test_the_arithmetic_bid_ladder_does_not_give_the_doc_value() -> None:
    """A ladder without the gap (0.05000 down to 0.04955) is *not* the doc example."""
    asks = [f"0.0{5005 + 5 * i}" for i in range(10)]
    bids = [f"0.0{5000 - 5 * i}" for i in range(10)]
    text = "".join(token_from_text(p) + "500" for p in asks + bids)
    assert zlib.crc32(text.encode()) != 974947235


# ---------------------------------------------------------------------------- integrity


def test_an_altered_volume_is_caught_and_the_book_waits_for_a_snapshot() -> None:
    lines = [text for _, text in open_recording(V1_BOOK).frames()]
    target = next(i for i, t in enumerate(lines) if '"XMR/USD"' in t and '"c":' in t)
    msg = orjson.loads(lines[target])
    side = "a" if "a" in msg[1] else "b"
    msg[1][side][0][1] = "1.23456789"
    lines[target] = orjson.dumps(msg).decode()
    a = adapter()
    events = [e for t in lines for e in a.on_message(t, 1)]
    mismatches = of(events, ChecksumMismatch)
    assert len(mismatches) == 1 and mismatches[0].symbol == "XMR/USD"
    assert len([r for r in of(events, Resync) if r.symbol == "XMR/USD"]) == 1
    later = [e for e in events[events.index(mismatches[0]):] if getattr(e, "symbol", "") == "XMR/USD"]
    assert of(later, TopOfBook) == []
    assert all(not u.verified for u in of(later, BookUpdate))
    assert a.stats.unverified_updates == len(of(later, BookUpdate)) > 0
    assert not a.is_valid("XMR/USD") and a.is_valid("XBT/CHF")


def test_a_republished_level_is_applied() -> None:
    a = adapter()
    a.on_message(orjson.dumps([1, {"as": [["101.0", "1.0", "1.000001"]], "bs": [["99.0", "1.0", "1.000001"]]},
                               "book-10", "XBT/EUR"]), 1)
    book = L2Book(10)
    book.apply_ask(101.0, 1.0, token_from_text("101.0") + token_from_text("1.0"))
    book.apply_ask(102.0, 2.0, token_from_text("102.0") + token_from_text("2.0"))
    book.apply_bid(99.0, 1.0, token_from_text("99.0") + token_from_text("1.0"))
    c = zlib.crc32("".join(book.tokens(10)).encode())  # type: ignore[arg-type]
    (upd, *_) = a.on_message(orjson.dumps([1, {"a": [["102.0", "2.0", "1.000002", "r"]], "c": str(c)},
                                           "book-10", "XBT/EUR"]), 2)
    assert upd.verified and a.book("XBT/EUR").asks() == [(101.0, 1.0), (102.0, 2.0)]  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- other channels


def test_v1_ticker_becomes_top_of_book_without_exchange_time() -> None:
    a, frames = replay(V1_TICKER)
    tops = [e for _, evs in frames for e in of(evs, TopOfBook)]
    assert len(tops) == 18 and all(t.source == "ticker" and t.ts_exchange is None for t in tops)
    first = next(t for t in tops if t.symbol == "WAVES/EUR")
    assert (first.bid, first.bid_qty, first.ask, first.ask_qty) == (13.2329, 185.18432037, 13.2539, 35.72892241)


def test_v1_trades_carry_side_type_and_exact_time() -> None:
    a, frames = replay(V1_TRADE)
    trades = [e for _, evs in frames for e in of(evs, Trade)]
    assert len(trades) == a.stats.trades == 10
    t = next(t for t in trades if t.symbol == "XMR/USD")
    assert (t.price, t.qty, t.side, t.ord_type) == (354.11, 0.89594024, "sell", "limit")
    assert t.ts_exchange == 1_618_678_142_557_535_000
    assert {x.side for x in trades} <= {"buy", "sell"}


def test_spread_becomes_top_of_book_with_exchange_time() -> None:
    a = adapter()
    (ev,) = a.on_message('[0,["5698.40000","5700.00000","1542057299.545897","1.01234567","0.98765432"],'
                         '"spread","XBT/USD"]', 3)
    assert isinstance(ev, TopOfBook) and ev.source == "ticker" and ev.symbol == "XBT/USD"
    assert (ev.bid, ev.ask, ev.bid_qty, ev.ask_qty) == (5698.4, 5700.0, 1.01234567, 0.98765432)
    assert ev.ts_exchange == 1_542_057_299_545_897_000


def test_control_messages() -> None:
    a = adapter()
    (hb,) = a.on_message('{"event":"heartbeat"}', 1)
    (status,) = a.on_message('{"connectionID":1,"event":"systemStatus","status":"online","version":"1.8.3"}', 1)
    (sub,) = a.on_message('{"channelID":1664,"channelName":"book-1000","event":"subscriptionStatus",'
                          '"pair":"WAVES/EUR","status":"subscribed","subscription":{"depth":1000,"name":"book"}}', 1)
    (err,) = a.on_message('{"errorMessage":"Currency pair not in ISO 4217-A3 format foo","event":"subscriptionStatus",'
                          '"pair":"foo","status":"error","subscription":{"name":"book"},"reqid":3}', 1)
    (pong,) = a.on_message('{"event":"pong","reqid":42}', 1)
    assert isinstance(hb, Heartbeat)
    assert isinstance(status, ExchangeStatus) and (status.status, status.version) == ("online", "1.8.3")
    assert isinstance(sub, Subscribed) and (sub.channel, sub.symbol) == ("book-1000", "WAVES/EUR")
    assert isinstance(err, SubscriptionError) and "ISO 4217-A3" in err.error and err.req_id == 3
    assert isinstance(pong, Pong) and pong.req_id == 42 and pong.time_in is None


def test_requests_have_the_v1_shapes() -> None:
    a = KrakenV1Adapter(FeedSpec(symbols=("XBT/EUR",), book_depth=25))
    book, spread, trade = (orjson.loads(m) for m in a.subscribe_messages())
    assert book == {"event": "subscribe", "pair": ["XBT/EUR"], "subscription": {"name": "book", "depth": 25}, "reqid": 1}
    assert spread["subscription"] == {"name": "spread"} and trade["subscription"] == {"name": "trade"}
    unsub, sub = (orjson.loads(m) for m in a.resync_messages("XBT/EUR"))
    assert unsub["event"] == "unsubscribe" and sub["event"] == "subscribe"
    assert orjson.loads(a.ping_message(7)) == {"event": "ping", "reqid": 7}


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[1,{", "malformed JSON"),
        ('[1,{"x":1},"ohlc-5","XBT/EUR"]', "unknown channel 'ohlc-5'"),
        ("[1,2]", "fewer than 4"),
        ('{"event":"nonsense"}', "unknown event"),
        ("42", "neither a data array nor an event object"),
        ('[1,{"as":[["abc","1.0","1.0"]],"bs":[]},"book-10","XBT/EUR"]', "invalid price"),
        ('[1,{"as":[],"bs":[]},"book-x","XBT/EUR"]', "no valid depth"),
        ('[0,["a","b","c","d","e"],"spread","XBT/USD"]', "ValueError"),
    ],
)
def test_bad_v1_frames_become_bad_messages(raw: str, reason: str) -> None:
    a = adapter()
    out = a.on_message(raw, 1)
    assert out and isinstance(out[0], BadMessage) and reason in out[0].reason, out


def test_a_v1_update_before_any_snapshot_asks_for_a_resync() -> None:
    a = adapter()
    out = a.on_message('[1,{"a":[["1.0","1.0","1.000001"]],"c":"1"},"book-10","XBT/EUR"]', 1)
    assert [type(e) for e in out] == [BadMessage, Resync]


def test_a_v1_update_without_checksum_is_a_lost_update() -> None:
    a = adapter()
    a.on_message('[1,{"as":[["2.0","1.0","1.000001"]],"bs":[["1.0","1.0","1.000001"]]},"book-10","XBT/EUR"]', 1)
    out = a.on_message('[1,{"a":[["2.5","1.0","1.000002"]]},"book-10","XBT/EUR"]', 2)
    assert [type(e) for e in out] == [BadMessage, Resync] and "checksum" in out[0].reason


def test_v1_stats_count_every_event_kind() -> None:
    a = adapter()
    events: list[Event] = []
    for path in (V1_BOOK, V1_TICKER, V1_TRADE):
        for ts, text in open_recording(path).frames():
            events.extend(a.on_message(text, ts))
    events.extend(a.on_message("junk", 0))
    counted: dict[str, int] = {}
    for e in events:
        counted[e.KIND] = counted.get(e.KIND, 0) + 1
    assert a.stats.events_by_kind == counted and a.stats.bad_messages == 1
