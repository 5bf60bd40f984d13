"""The compiled book kernel (``fastbook``) against the pure-Python engine and ``zlib``: the same
events on the real recording, on hypothesis-generated books, on corrupted checksums, and the
fallback for numbers the kernel cannot tokenize exactly."""

from __future__ import annotations

import zlib

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import V2_BOOK
from mm_core.adapters.base import FeedSpec
from mm_core.adapters.kraken import fastbook
from mm_core.adapters.kraken.checksum import checksum_of_levels, token_from_number
from mm_core.adapters.kraken.v2 import KrakenV2Adapter
from mm_core.book import L2Book
from mm_core.events import BookUpdate, ChecksumMismatch, Event, Resync, TopOfBook
from mm_core.recordings import open_recording

SYMBOL = "BTC/USD"  # known precision: price 1, qty 8

pytestmark = pytest.mark.skipif(not fastbook.AVAILABLE, reason="numba not available")


def both() -> tuple[KrakenV2Adapter, KrakenV2Adapter]:
    return (KrakenV2Adapter(FeedSpec(symbols=(SYMBOL,)), engine="numba"),
            KrakenV2Adapter(FeedSpec(symbols=(SYMBOL,)), engine="python"))


def feed(a: KrakenV2Adapter, raws: list[bytes]) -> list[Event]:
    out: list[Event] = []
    for raw in raws:
        out.extend(a.on_message(raw, 7))
    return out


def test_engines_agree_on_every_message_of_the_real_recording() -> None:
    frames = [text.encode() for _, text in open_recording(V2_BOOK).frames()]
    fast, ref = both()
    assert fast.engine == "numba" and ref.engine == "python"
    for raw in frames:
        ev_fast = fast.on_message(raw, 1)
        ev_ref = ref.on_message(raw, 1)
        assert ev_fast == ev_ref
        book = fast.book(SYMBOL)
        assert book is not None
        assert book.asks() == ref.book(SYMBOL).asks() and book.bids() == ref.book(SYMBOL).bids()  # type: ignore[union-attr]
        # the kernel's checksum is zlib's CRC32 of the joined tokens
        assert zlib.crc32("".join(book.tokens(10)).encode()) == orjson.loads(raw)["data"][0]["checksum"]  # type: ignore[arg-type]
    assert fast.stats.checksums_ok == ref.stats.checksums_ok == 510
    assert fast._states[SYMBOL].kstate is not None  # stayed on the compiled engine


# ---------------------------------------------------------------------------- generated books

level = st.tuples(st.integers(1, 80), st.sampled_from([0, 0, 1, 5, 12345678, 99999999, 10**9 + 7]))
side_levels = st.lists(level, max_size=5)
updates = st.lists(st.tuples(side_levels, side_levels), min_size=1, max_size=40)


def _messages(snapshot: tuple[list, list], ups: list, depth: int) -> list[bytes]:
    """Snapshot + updates with the checksums a correct exchange would send (naive reference)."""
    asks: dict[float, float] = {}
    bids: dict[float, float] = {}

    def lv(levels: list) -> list[dict[str, float]]:
        return [{"price": 29000 + t / 10, "qty": q / 1e8} for t, q in levels]

    def apply(book: dict[float, float], levels: list, reverse: bool) -> None:
        for t, q in levels:
            p = 29000 + t / 10
            if q:
                book[p] = q / 1e8
            else:
                book.pop(p, None)
        kept = sorted(book.items(), reverse=reverse)[:depth]
        book.clear()
        book.update(kept)

    def checksum() -> int:
        return checksum_of_levels(sorted(asks.items()), sorted(bids.items(), reverse=True), 1, 8)

    out = []
    snap_asks = [(t, q or 1) for t, q in snapshot[0]]
    snap_bids = [(t, q or 1) for t, q in snapshot[1]]
    apply(asks, snap_asks, False)
    apply(bids, snap_bids, True)
    out.append({"channel": "book", "type": "snapshot", "data": [{
        "symbol": SYMBOL, "asks": lv(snap_asks), "bids": lv(snap_bids), "checksum": checksum()}]})
    for i, (a, b) in enumerate(ups):
        apply(asks, a, False)
        apply(bids, b, True)
        out.append({"channel": "book", "type": "update", "data": [{
            "symbol": SYMBOL, "bids": lv(b), "asks": lv(a), "checksum": checksum(),
            "timestamp": f"2023-07-30T15:29:{i % 60:02d}.{i:06d}Z"}]})
    return [orjson.dumps(m) for m in out]


@given(st.tuples(st.lists(level, max_size=30), st.lists(level, max_size=30)), updates)
@settings(max_examples=150, deadline=None)
def test_engines_agree_and_verify_on_generated_books(snapshot: tuple[list, list], ups: list) -> None:
    raws = _messages(snapshot, ups, depth=10)
    fast, ref = both()
    ev_fast = feed(fast, raws)
    assert ev_fast == feed(ref, raws)
    assert fast.stats.checksums_ok == len(raws) and fast.stats.checksums_failed == 0
    assert fast.book(SYMBOL).asks() == ref.book(SYMBOL).asks()  # type: ignore[union-attr]
    assert fast.book(SYMBOL).bids() == ref.book(SYMBOL).bids()  # type: ignore[union-attr]


@given(st.tuples(st.lists(level, min_size=1, max_size=30), st.lists(level, min_size=1, max_size=30)),
       updates, st.data())
@settings(max_examples=60, deadline=None)
def test_a_wrong_checksum_is_caught_the_same_way_by_both_engines(snapshot: tuple[list, list], ups: list,
                                                                 data: st.DataObject) -> None:
    raws = _messages(snapshot, ups, depth=10)
    bad = data.draw(st.integers(1, len(raws) - 1))
    msg = orjson.loads(raws[bad])
    msg["data"][0]["checksum"] ^= 1 << data.draw(st.integers(0, 31))
    raws[bad] = orjson.dumps(msg)
    fast, ref = both()
    ev = feed(fast, raws)
    assert ev == feed(ref, raws)
    assert len([e for e in ev if isinstance(e, ChecksumMismatch)]) == 1
    assert len([e for e in ev if isinstance(e, Resync)]) == 1
    assert not fast.is_valid(SYMBOL) and not ref.is_valid(SYMBOL)
    later = [e for e in ev[ev.index(next(e for e in ev if isinstance(e, ChecksumMismatch))):]]
    assert not any(isinstance(e, TopOfBook) for e in later)
    assert all(not e.verified for e in later if isinstance(e, BookUpdate))


def test_huge_numbers_move_the_symbol_to_the_python_engine_and_still_verify() -> None:
    ups: list = [([], [(5, 10**8)]), ([(70, 3 * 10**15)], []), ([(71, 1)], [(6, 0)])]  # qty 3e7: 3e15 units
    raws = _messages(([(60, 1)], [(5, 1), (4, 2)]), ups, depth=10)
    fast, ref = both()
    ev = feed(fast, raws)
    assert ev == feed(ref, raws)
    assert fast.stats.checksums_ok == len(raws)
    assert fast._states[SYMBOL].kstate is None and fast._states[SYMBOL].book is not None
    feed(fast, raws[:1])  # the next snapshot goes back to the kernel
    assert fast._states[SYMBOL].kstate is not None


def test_big_updates_and_both_sides_in_one_message_and_deeper_books() -> None:
    many = [(t, 100 + t) for t in range(1, 40)]  # 39 levels on one side: the state grows
    ups = [(many, []), ([], many), ([(1, 0), (2, 0), (3, 0), (4, 0)], [(39, 0), (38, 0)]), ([], []),
           ([(90 - t, 0) for t in range(30)], [])]
    for depth in (10, 25):
        raws = _messages(([(50, 1)], [(1, 1)]), ups, depth=depth)
        fast = KrakenV2Adapter(FeedSpec(symbols=(SYMBOL,), book_depth=depth), engine="numba")
        ref = KrakenV2Adapter(FeedSpec(symbols=(SYMBOL,), book_depth=depth), engine="python")
        assert feed(fast, raws) == feed(ref, raws)
        assert fast.stats.checksums_ok == len(raws) and fast._states[SYMBOL].kstate is not None


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(1, 200), st.sampled_from([0, 1, 7, 123456789, 10**14])),
                max_size=60), st.sampled_from([1, 3, 10, 25]))
@settings(max_examples=200, deadline=None)
def test_kernel_checksum_is_zlib_crc32_of_the_tokens(levels: list, depth: int) -> None:
    s = fastbook.new_state(depth, depth + 4, 1, 8)
    book = L2Book(depth)
    for side, tick, q in levels:
        p, qty = tick / 10, q / 1e8
        token = token_from_number(p, 1) + token_from_number(qty, 8) if qty else None
        (book.apply_ask if side == 0 else book.apply_bid)(p, qty, token)
        book.truncate()
        r = (fastbook.update_ask if side == 0 else fastbook.update_bid)(s, p, qty)
        assert r >= 0
        assert r & 0xFFFFFFFF == zlib.crc32("".join(book.tokens(10)).encode())  # type: ignore[arg-type]
        assert fastbook.levels(s, 0) == book.asks() and fastbook.levels(s, 1) == book.bids()
    assert fastbook.unknown_deletes(s) == book.unknown_deletes


def test_the_kernel_refuses_what_it_cannot_tokenize_exactly_and_changes_nothing() -> None:
    s = fastbook.new_state(10, 20, 1, 8)
    assert fastbook.update_ask(s, 100.0, 1.0) >= 0
    before = s.copy()
    assert fastbook.update_ask(s, 101.0, 2e7) == fastbook.OUT_OF_RANGE
    assert fastbook.update_bid(s, float("inf"), 1.0) == fastbook.OUT_OF_RANGE
    assert fastbook.update3(s, 2, 2, 99.0, 1.0, 98.0, float("nan"), 0.0, 0.0) == fastbook.OUT_OF_RANGE
    assert np.array_equal(s.view(np.int64), before.view(np.int64))


def test_engine_choice_is_validated() -> None:
    with pytest.raises(ValueError):
        KrakenV2Adapter(FeedSpec(symbols=(SYMBOL,)), engine="fortran")
    assert KrakenV2Adapter(FeedSpec(symbols=(SYMBOL,))).engine == "numba"


