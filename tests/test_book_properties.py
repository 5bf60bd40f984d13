"""The L2 book: ordering, deletes, truncation, crossing, token cache -- and checksum tokens."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mm_core.adapters.kraken.checksum import token_from_number, token_from_text
from mm_core.book import L2Book

# A message is a list of (side, price_tick, qty) applied in order; qty 0 deletes.
level = st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 60), st.sampled_from([0, 0, 1, 2, 5, 7]))
messages = st.lists(st.lists(level, min_size=1, max_size=6), min_size=1, max_size=40)
depths = st.sampled_from([1, 3, 10])


def _token(price: float, qty: float) -> str:
    return f"{price:.1f}|{qty:g}"


def _apply(book: L2Book, msg: list[tuple[str, int, int]]) -> None:
    for side, tick, qty in msg:
        price = tick / 10
        token = _token(price, qty) if qty else None
        (book.apply_bid if side == "bid" else book.apply_ask)(price, float(qty), token)
    book.truncate()


class NaiveBook:
    """Reference: plain dicts, sorted and cut after every message."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.side: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}

    def apply(self, msg: list[tuple[str, int, int]]) -> None:
        for side, tick, qty in msg:
            levels = self.side[side]
            if qty:
                levels[tick / 10] = float(qty)
            else:
                levels.pop(tick / 10, None)
        for side, reverse in (("bid", True), ("ask", False)):
            kept = sorted(self.side[side].items(), reverse=reverse)[: self.depth]
            self.side[side] = dict(kept)

    def bids(self) -> list[tuple[float, float]]:
        return sorted(self.side["bid"].items(), reverse=True)

    def asks(self) -> list[tuple[float, float]]:
        return sorted(self.side["ask"].items())


@given(messages, depths)
def test_book_matches_a_naive_reference_after_every_message(msgs: list, depth: int) -> None:
    book, ref = L2Book(depth), NaiveBook(depth)
    for msg in msgs:
        _apply(book, msg)
        ref.apply(msg)
        assert book.bids() == ref.bids()
        assert book.asks() == ref.asks()


@given(messages, depths)
def test_depth_is_never_exceeded_after_any_update(msgs: list, depth: int) -> None:
    book = L2Book(depth)
    for msg in msgs:
        _apply(book, msg)
        assert len(book.bids()) <= depth and len(book.asks()) <= depth
        assert len(book.bid_keys) == len(book.bid_qty) == len(book.bid_tokens)
        assert len(book.ask_keys) == len(book.ask_qty) == len(book.ask_tokens)


@st.composite
def uncrossed_sequences(draw: st.DrawFn) -> list[list[tuple[str, int, int]]]:
    """What an exchange can send: a level that would cross the other side comes after the
    deletes (fills) of every level it crosses, in the same message."""
    bids: set[int] = set()
    asks: set[int] = set()
    out = []
    for _ in range(draw(st.integers(1, 40))):
        msg: list[tuple[str, int, int]] = []
        for side, tick, qty in draw(st.lists(level, min_size=1, max_size=5)):
            if qty and side == "bid":
                for a in sorted(x for x in asks if x <= tick):
                    msg.append(("ask", a, 0))
                    asks.discard(a)
                bids.add(tick)
            elif qty:
                for b in sorted(x for x in bids if x >= tick):
                    msg.append(("bid", b, 0))
                    bids.discard(b)
                asks.add(tick)
            else:
                (bids if side == "bid" else asks).discard(tick)
            msg.append((side, tick, qty))
        out.append(msg)
    return out


@given(uncrossed_sequences(), depths)
def test_book_is_never_crossed_after_a_valid_update_sequence(msgs: list, depth: int) -> None:
    book = L2Book(depth)
    for msg in msgs:
        _apply(book, msg)
        assert not book.is_crossed()


@given(messages, depths)
def test_cached_tokens_always_belong_to_their_level(msgs: list, depth: int) -> None:
    book = L2Book(depth)
    for msg in msgs:
        _apply(book, msg)
    assert book.ask_tokens == [_token(p, q) for p, q in book.asks()]
    assert book.bid_tokens == [_token(p, q) for p, q in book.bids()]
    assert list(book.tokens(2)) == book.ask_tokens[:2] + book.bid_tokens[:2]


def test_deleting_an_unknown_level_is_ignored_but_counted() -> None:
    book = L2Book(10)
    book.apply_bid(100.0, 1.0)
    book.apply_bid(99.0, 0.0)
    book.apply_ask(101.0, 0.0)
    assert book.bids() == [(100.0, 1.0)] and book.asks() == []
    assert book.unknown_deletes == 2


def test_best_levels_top_and_top_n_are_best_first() -> None:
    book = L2Book(10)
    for p in (99.0, 100.0, 98.0):
        book.apply_bid(p, p / 100)
    for p in (102.0, 101.0, 103.0):
        book.apply_ask(p, p / 100)
    assert book.best_bid() == (100.0, 1.0)
    assert book.best_ask() == (101.0, 1.01)
    assert book.top() == (100.0, 1.0, 101.0, 1.01)
    assert book.bids(2) == [(100.0, 1.0), (99.0, 0.99)]
    assert book.asks(2) == [(101.0, 1.01), (102.0, 1.02)]
    assert book.bid_qty_at(99.0) == 0.99 and book.ask_qty_at(99.0) == 0.0
    assert not book.is_crossed()


def test_truncation_cuts_the_worst_levels_and_says_how_many() -> None:
    book = L2Book(2)
    for p in (1.0, 2.0, 3.0, 4.0):
        book.apply_ask(p, 1.0)
        book.apply_bid(p, 1.0)
    assert book.truncate() == 4
    assert book.asks() == [(1.0, 1.0), (2.0, 1.0)]
    assert book.bids() == [(4.0, 1.0), (3.0, 1.0)]


def test_a_crossed_book_is_reported() -> None:
    book = L2Book(10)
    book.apply_bid(101.0, 1.0)
    book.apply_ask(100.0, 1.0)
    assert book.is_crossed()
    assert L2Book(10).top() is None and L2Book(10).best_bid() is None


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        L2Book(0)


# ---------------------------------------------------------------------------- checksum tokens


def _decimal_token(text: str, precision: int) -> str:
    q = Decimal(text).quantize(Decimal(1).scaleb(-precision), rounding=ROUND_HALF_EVEN)
    return format(q, "f").replace(".", "").lstrip("0")


@given(st.integers(1, 10**15 - 1), st.integers(0, 10))
@example(1, 8)  # qty 0.00000001 (str(Decimal) would say 1E-8)
@example(10, 8)  # qty 0.00000010 (float repr 1e-07)
@example(123456789012345, 1)  # price 12345678901234.5
@example(100000, 8)  # qty 0.00100000 -> "100000"
@settings(max_examples=300)
def test_v2_token_equals_decimal_fixed_point_and_never_uses_exponents(n: int, precision: int) -> None:
    text = format(Decimal(n).scaleb(-precision), "f")
    x = float(text)
    token = token_from_number(x, precision)
    assert token.isdigit(), token
    assert token == _decimal_token(text, precision)


@given(st.floats(min_value=1e10, max_value=1e17, allow_nan=False, allow_infinity=False), st.integers(0, 8))
def test_v2_token_of_huge_numbers_is_still_fixed_point(x: float, precision: int) -> None:
    """Beyond float's exact range the token is the float's own decimal text, quantized."""
    token = token_from_number(x, precision)
    assert token.isdigit()
    assert token == _decimal_token(repr(x), precision)


def test_v1_token_uses_the_text_as_received() -> None:
    assert token_from_text("0.05005") == "5005"
    assert token_from_text("0.00000500") == "500"
    assert token_from_text("27120.00000") == "2712000000"
