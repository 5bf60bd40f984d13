"""The simulator's market model: deterministic, on the grid, never crossed, Kraken-like rates and
message shapes (one side per message, bursts), imbalance informative only when asked to be, and
Kraken-style depth views that stay exact for clients that truncate per message or per level.
(How close its statistics are to real traffic is tested in ``test_realism.py``.)"""

from __future__ import annotations

from dataclasses import replace

import math
import time

import numpy as np
import pytest

from mm_core.adapters.kraken.checksum import checksum_of_levels
from mm_core.events import BookSnapshot, BookUpdate, TopOfBook, Trade
from mm_core.simexchange.canonical import canonical_events
from mm_core.simexchange.latency import ConstantLatency
from mm_core.simexchange.market import (
    MAX_SATS,
    MIN_SATS,
    BookChange,
    DepthView,
    LevelBook,
    MarketModel,
    MarketParams,
    TradePrint,
    price_of,
    qty_of,
)


def _replica(model: MarketModel) -> LevelBook:
    return model.book.copy()


def test_same_seed_same_events_different_seed_different() -> None:
    a = list(MarketModel(7).events(300))
    b = list(MarketModel(7).events(300))
    c = list(MarketModel(8).events(300))
    assert a == b
    assert a[:50] != c[:50]


def test_events_continue_across_calls() -> None:
    whole = list(MarketModel(3).events(120))
    m = MarketModel(3)
    parts = list(m.events(50)) + list(m.events(70))
    assert parts == whole
    assert m.now_ns == m.start_ns + 120 * 10**9


def test_timestamps_are_microseconds_and_non_decreasing() -> None:
    m = MarketModel(1, start_ns=1_767_225_600_123_456_789)
    ts = [ev.ts_ns for ev in m.events(600)]
    assert all(t % 1000 == 0 for t in ts)
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert ts[0] >= m.start_ns


def test_prices_on_the_tick_grid_sizes_in_range_with_8_decimals() -> None:
    m = MarketModel(11)
    for ev in m.events(1800):
        if type(ev) is TradePrint:
            levels = [(ev.ticks, ev.sats)]
            assert ev.side in ("buy", "sell") and ev.ord_type in ("market", "limit")
        else:
            levels = list(ev.bids) + list(ev.asks)
        for ticks, sats in levels:
            assert isinstance(ticks, int) and isinstance(sats, int)
            price = price_of(ticks)
            assert price == round(ticks * 0.1, 1)
            assert 60_000 <= price <= 90_000
            assert float(f"{price:.1f}") == price
            assert sats == 0 or MIN_SATS <= sats <= MAX_SATS
            qty = qty_of(sats)
            assert float(f"{qty:.8f}") == qty and round(qty * 1e8) == sats


def test_book_never_crossed_and_always_deep() -> None:
    m = MarketModel(5)
    book = _replica(m)
    min_depth = 10**9
    for ev in m.events(3600):
        if type(ev) is BookChange:
            book.apply(ev)
            assert not book.crossed()
            min_depth = min(min_depth, len(book.bids), len(book.asks))
    assert min_depth >= 25
    bids, asks = book.top(1000)
    assert bids == m.book.top(1000)[0] and asks == m.book.top(1000)[1]


def test_rates_are_kraken_like_one_side_per_message_and_bursty() -> None:
    """Over 6 h (spells included): ~10 depth-10 messages/s, ~1 taker order/s (one that walks the
    book prints at each level, at one time), every message on one side only (as all 509 real
    Kraken updates are), arrivals far more dispersed than Poisson."""
    m = MarketModel(2)
    seconds = 6 * 3600
    per_second = np.zeros(seconds + 1, dtype=np.int64)
    trades = changes = deep = 0
    orders: set[tuple[int, str]] = set()
    for ev in m.events(seconds):
        if type(ev) is TradePrint:
            orders.add((ev.ts_ns, ev.side))
            continue
        assert bool(ev.bids) != bool(ev.asks)
        if ev.kind == "deep":  # below the top 10: not part of the depth-10 message rate
            deep += 1
            continue
        changes += 1
        per_second[(ev.ts_ns - m.start_ns) // 10**9] += 1
    trades = len(orders)
    assert 9.0 <= changes / seconds <= 11.0
    assert 0.85 <= trades / seconds <= 1.15
    assert 0.8 <= deep / seconds <= 1.2
    counts = per_second[:seconds]
    assert counts.var() / counts.mean() > 5.0  # bursts: far more dispersed than Poisson (= 1)


def test_rates_follow_parameters() -> None:
    """Without spells (which make 5-minute windows uneven) the rates are the parameters'."""
    calm = MarketParams(spells_per_hour=0.0, deep_updates_per_second=0.0)
    m = MarketModel(2, params=calm, updates_per_second=100.0, trades_per_second=5.0)
    evs = list(m.events(300))
    changes = sum(type(e) is BookChange for e in evs)
    trades = len(evs) - changes
    assert 90 <= changes / 300 <= 110
    assert 4.2 <= trades / 300 <= 5.8
    quiet = list(MarketModel(2, trades_per_second=0.0).events(600))
    assert not any(type(e) is TradePrint for e in quiet)


def _imbalance_vs_next_move(predictive: bool, seconds: float, seed: int) -> tuple[float, float, int]:
    """(hit rate of sign(imbalance) vs the next mid move, t-stat of corr(imbalance, signed move), n),
    with the L1 imbalance taken just before each move."""
    m = MarketModel(seed, predictive=predictive)
    book = _replica(m)
    mid, imb = book.mid2_ticks(), book.imbalance()
    xs: list[float] = []
    moves: list[int] = []
    for ev in m.events(seconds):
        if type(ev) is not BookChange:
            continue
        book.apply(ev)
        new_mid = book.mid2_ticks()
        if new_mid != mid:
            xs.append(imb)
            moves.append(new_mid - mid)
        mid, imb = new_mid, book.imbalance()
    x, d = np.array(xs), np.array(moves, dtype=float)
    informative = x != 0
    hit = float(np.mean(np.sign(x[informative]) == np.sign(d[informative])))
    t = float(np.corrcoef(x, d)[0, 1] * math.sqrt(len(d)))
    return hit, t, len(d)


def test_imbalance_predicts_next_mid_move_when_predictive() -> None:
    """A quiet market changes its mid ~0.1-0.2 times a second: ~700 moves in 2 h, most called right."""
    hit, t, n = _imbalance_vs_next_move(True, 7200, seed=21)
    assert n > 500
    assert hit > 0.62 and t > 8


def test_imbalance_carries_no_information_when_not_predictive() -> None:
    hit, t, n = _imbalance_vs_next_move(False, 4 * 3600, seed=21)
    se = math.sqrt(0.25 / n)
    assert abs(hit - 0.5) < 4 * se, (hit, n)
    assert abs(t) < 4, (t, n)  # nor in the size of the move


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="updates_per_second"):
        MarketParams(updates_per_second=0)
    with pytest.raises(ValueError, match="imbalance_weight"):
        MarketParams(imbalance_weight=0.9)


@pytest.mark.parametrize("jumps", [0.0, 600.0])  # 600/h: repricing jumps (two-sided messages) too
@pytest.mark.parametrize("depth", [10, 25, 100])
def test_depth_view_reproduces_the_top_n_like_a_kraken_client(depth: int, jumps: float) -> None:
    """Apply the view's levels in order, delete on qty 0, truncate to depth: equals the top N."""
    m = MarketModel(9, params=replace(MarketParams(), jumps_per_hour=jumps))
    view = DepthView(depth)
    bids, asks = view.snapshot(m.book)
    client = {"b": dict(bids), "a": dict(asks)}
    pushed_out_without_delete = reentries = 0
    for ev in m.events(1200):
        if type(ev) is not BookChange:
            continue
        out_b, out_a = view.update(m.book, ev)
        for key, levels in (("b", out_b), ("a", out_a)):
            side = client[key]
            for ticks, sats in levels:
                if sats:
                    side[ticks] = sats
                else:
                    side.pop(ticks, None)
            keep = sorted(side, reverse=key == "b")[:depth]
            dropped = set(side) - set(keep)
            pushed_out_without_delete += len(dropped)
            client[key] = {t: side[t] for t in keep}
        top_b, top_a = m.book.top(depth)
        assert sorted(client["b"].items(), reverse=True) == top_b
        assert sorted(client["a"].items()) == top_a
        sent = {t for t, _ in out_b} | {t for t, _ in out_a}
        changed = {t for t, _ in ev.bids} | {t for t, _ in ev.asks}
        reentries += bool(sent - changed)
    if depth == 10:
        assert pushed_out_without_delete > 0  # levels pushed out of scope get no delete
        assert reentries > 0  # levels re-entering scope are sent as inserts


@pytest.mark.parametrize("jumps", [0.0, 600.0])
@pytest.mark.parametrize("depth", [10, 25])
def test_depth_view_lists_deletions_first_so_per_level_truncating_clients_stay_exact(depth: int, jumps: float) -> None:
    """python-kraken-sdk truncates to its depth after every single level; real Kraken lists a side's
    deletions before its insertions (116 of 116 mixed messages in the shared recording). With that
    order such a client holds exactly the top N after every message too."""
    m = MarketModel(9, params=replace(MarketParams(), jumps_per_hour=jumps))
    view = DepthView(depth)
    bids, asks = view.snapshot(m.book)
    client = {"b": dict(bids), "a": dict(asks)}
    mixed = 0
    for ev in m.events(1800):
        if type(ev) is not BookChange:
            continue
        out_b, out_a = view.update(m.book, ev)
        for key, levels in (("b", out_b), ("a", out_a)):
            kinds = [sats == 0 for _, sats in levels]
            if any(kinds) and not all(kinds):
                mixed += 1
                assert kinds == sorted(kinds, reverse=True), levels  # every delete before any insert
            side = client[key]
            for ticks, sats in levels:
                if sats:
                    side[ticks] = sats
                else:
                    side.pop(ticks, None)
                keep = sorted(side, reverse=key == "b")[:depth]  # truncate after each level
                side = {t: side[t] for t in keep}
            client[key] = side
        top_b, top_a = m.book.top(depth)
        assert sorted(client["b"].items(), reverse=True) == top_b
        assert sorted(client["a"].items()) == top_a
    assert mixed > 100


def test_canonical_events_give_a_verifiable_depth_10_feed() -> None:
    m = MarketModel(4)
    events = list(canonical_events(m, 600, depth=10, latency=ConstantLatency(5.0)))
    assert isinstance(events[0], BookSnapshot) and events[0].ts_exchange is None
    bids = dict(events[0].bids)
    asks = dict(events[0].asks)
    n_updates = n_trades = n_tops = 0
    for ev in events[1:]:
        if isinstance(ev, BookUpdate):
            n_updates += 1
            assert ev.ts_capture - ev.ts_exchange >= 5_000_000
            for side, levels in ((bids, ev.bids), (asks, ev.asks)):
                for price, qty in levels:
                    if qty:
                        side[price] = qty
                    else:
                        side.pop(price, None)
            top_b = sorted(bids.items(), reverse=True)[:10]
            top_a = sorted(asks.items())[:10]
            bids, asks = dict(top_b), dict(top_a)
            assert checksum_of_levels(top_a, top_b, 1, 8) == ev.checksum
        elif isinstance(ev, Trade):
            n_trades += 1
        elif isinstance(ev, TopOfBook):
            n_tops += 1
            assert ev.bid == max(bids) and ev.ask == min(asks) and ev.bid < ev.ask
    assert n_updates > 4000 and n_trades > 400 and n_tops > 500


def test_fast_integer_checksum_equals_the_reference_checksum() -> None:
    from mm_core.simexchange.protocol import book_checksum, book_checksum_ints

    m = MarketModel(12, params=MarketParams(small_qty_sigma=4.0, large_qty_sigma=4.0))  # extreme sizes too
    n = 0
    for ev in m.events(300):
        if type(ev) is BookChange:
            assert book_checksum_ints(m.book) == book_checksum(m.book)
            n += 1
    assert n > 2000


@pytest.mark.slow
def test_one_simulated_day_generates_in_well_under_a_minute() -> None:
    m = MarketModel(1)
    t0 = time.perf_counter()
    changes = 0
    orders: set[tuple[int, str]] = set()  # taker orders (one walking the book prints per level)
    for ev in m.events(86_400):
        if type(ev) is TradePrint:
            orders.add((ev.ts_ns, ev.side))
        else:
            changes += 1
    trades = len(orders)
    elapsed = time.perf_counter() - t0
    assert 790_000 <= changes <= 1_010_000  # 864k depth-10 messages + 86k deeper changes, +-spells
    assert 75_000 <= trades <= 98_000
    assert elapsed < 30.0, f"one simulated day took {elapsed:.1f} s"


def test_low_update_and_trade_rates_can_be_set_together() -> None:
    """Both rates are validated as a pair (1/s updates with 0.2/s trades is valid)."""
    from mm_core.simexchange.market import MarketModel

    m = MarketModel(seed=1, updates_per_second=1.0, trades_per_second=0.2)
    assert sum(1 for _ in m.events(120)) > 0


def test_jumps_move_the_top_of_the_book_at_once_and_keep_one_tick() -> None:
    """A repricing jump is one two-sided message: afterwards the book is uncrossed, the spread is one
    tick and the mid has moved by about ``jump_bp``; without jumps the seeded stream is unchanged."""
    from dataclasses import replace

    from mm_core.simexchange.market import MarketModel, MarketParams

    p = replace(MarketParams(), jumps_per_hour=3600.0, jump_bp=3.0)
    model = MarketModel(seed=3, params=p)
    moves = []
    for ev in model.events(600):
        if getattr(ev, "kind", None) == "move" and ev.bids and ev.asks:
            bb, bq, ba, aq = model.book.bbo()
            moves.append(ba - bb)
    assert model.counts["jumps"] == len(moves) and 450 <= len(moves) <= 750
    assert max(moves) == 1 and not model.book.crossed()
    a = [ev for ev in MarketModel(seed=5).events(60)]
    b = [ev for ev in MarketModel(seed=5, params=replace(MarketParams(), jump_bp=9.0)).events(60)]
    assert a == b  # jumps_per_hour = 0: other jump knobs draw nothing
