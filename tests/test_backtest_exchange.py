"""Known-answer tests of the exchange model: hand-built events, fills and queues computed by hand.

Prices use a tick of 1.0 so every number below can be checked with pencil and paper. Latency is
constant: feed 1 ms, entry 10 ms, response 10 ms; the strategy requotes every 1 ms with the plain
cancel-and-replace rule (no deadband, no amend) and risk limits far away, so each scripted target
becomes exactly one order.
"""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.backtest.engine import BacktestConfig, InstrumentRules, RESULT_NAMES, run_backtest
from mm_core.backtest.event_arrays import from_events
from mm_core.backtest.fees import TradingValueFee
from mm_core.backtest.latency import ConstantLatency
from mm_core.events import BookSnapshot, BookUpdate, Trade
from mm_core.strategy import load_strategy
from mm_core.strategy.pipeline import RiskConfig
from mm_core.strategy.requote import RequoteConfig

T0 = 1_767_225_600_000_000_000
MS = 1_000_000
S = 1_000_000_000


def snap(ts, bids, asks):
    return BookSnapshot(exchange="kraken", symbol="T/EUR", ts_exchange=ts, ts_capture=ts,
                        bids=tuple(bids), asks=tuple(asks), depth=10)


def upd(ts, bids=(), asks=()):
    return BookUpdate(exchange="kraken", symbol="T/EUR", ts_exchange=ts, ts_capture=ts,
                      bids=tuple(bids), asks=tuple(asks), depth=10)


def trade(ts, price, qty, side):
    return Trade(exchange="kraken", symbol="T/EUR", ts_exchange=ts, ts_capture=ts, price=price, qty=qty,
                 side=side)


OPEN_RISK = RiskConfig(max_inventory=1e6, max_order_qty=1e6, max_notional=1e12, max_drawdown=1e12,
                       rate_counter_max_frac=1.0, reject_storm_count=64, reject_storm_window_s=1e-6,
                       cancel_storm_count=64, cancel_storm_window_s=1e-6)


def run(events, rows, **kw):
    market = from_events(events, tick_size=1.0, lot_size=1e-8)
    cfg = dict(strategy=load_strategy("scripted", {"rows": rows}), latency=ConstantLatency(1.0, 10.0, 10.0),
               rate_tier="off", requote_ms=1.0, rules=InstrumentRules(1e-8, 0.0, 0.0),
               fees=TradingValueFee(0.0025, 0.004), requote=RequoteConfig.cancel_replace(), risk=OPEN_RISK)
    cfg.update(kw)
    return run_backtest(market, BacktestConfig(**cfg))


def queue_scenario():
    """A bid of 1.0 at 100 behind 5.0 displayed; trades eat the queue, then fill us in two parts."""
    return [
        snap(T0, [(100.0, 5.0), (99.0, 1.0)], [(101.0, 5.0)]),
        upd(T0 + 20 * MS, bids=[(100.0, 7.0)]),  # 2.0 joins behind us: queue ahead stays 5.0
        trade(T0 + 30 * MS, 100.0, 3.0, "sell"),  # ahead: 5 - 3 = 2
        upd(T0 + 30 * MS, bids=[(100.0, 4.0)]),  # 7 - 3 = 4 displayed; ahead min(2, 4) = 2
        trade(T0 + 40 * MS, 100.0, 2.5, "sell"),  # 2 ahead trade first, 0.5 fills us
        trade(T0 + 50 * MS, 99.0, 1.0, "sell"),  # trades through our price: the rest (0.5) fills
        upd(T0 + 2 * S, asks=[(101.0, 0.0), (103.0, 1.0)]),  # mid 100.5 -> 101.5
        upd(T0 + 40 * S, bids=[(101.0, 1.0)]),  # mid -> 102 (the end)
    ]


def test_order_joins_queue_behind_displayed_size_and_fills_in_parts():
    r = run(queue_scenario(), [(T0 + 5 * MS, 100, 1.0, 0, 0.0), (T0 + 45 * MS, 0, 0.0, 0, 0.0)])
    o = r.orders
    assert o["submit_local_ts"][0] == T0 + 5 * MS
    assert o["arrive_exch_ts"][0] == T0 + 15 * MS  # entry latency 10 ms
    assert o["queue_ahead_at_entry"][0] == 5.0
    f = r.fills
    assert list(f["ts"]) == [T0 + 40 * MS, T0 + 50 * MS]
    assert list(f["qty"]) == pytest.approx([0.5, 0.5])
    assert list(f["price"]) == [100.0, 100.0]
    assert list(f["side"]) == [1, 1]
    assert list(f["local_ts"]) == [T0 + 50 * MS, T0 + 60 * MS]  # response latency 10 ms
    assert RESULT_NAMES[int(o["result"][0])] == "filled"
    # the cancel sent at 45 ms reaches the exchange at 55 ms, after the fill at 50 ms
    assert r.counters["cancel_too_late"] == 1
    assert r.position == pytest.approx(1.0)


def test_pnl_parts_of_the_queue_scenario_by_hand():
    r = run(queue_scenario(), [(T0 + 5 * MS, 100, 1.0, 0, 0.0), (T0 + 45 * MS, 0, 0.0, 0, 0.0)])
    p = r.pnl
    # bought 1.0 at 100 with fair 100.5; fair 101.5 thirty seconds later; 102 at the end
    assert p.spread_capture == pytest.approx(0.5, abs=1e-12)
    assert p.adverse_selection == pytest.approx(1.0, abs=1e-12)  # fair moved *for* us
    assert p.adverse_by_horizon["1s"] == pytest.approx(0.0, abs=1e-12)
    assert p.adverse_by_horizon["5s"] == pytest.approx(1.0, abs=1e-12)
    assert p.inventory_pnl == pytest.approx(0.5, abs=1e-12)
    assert p.fees == pytest.approx(0.0025 * 100.0, abs=1e-12)
    assert p.total == pytest.approx(2.0 - 0.25, abs=1e-12)
    assert abs(p.total - p.total_direct) < 1e-9
    assert p.identity_error < 1e-9


def test_trade_at_our_price_does_not_fill_while_queue_ahead_remains():
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]),
              trade(T0 + 30 * MS, 100.0, 4.9, "sell"),
              upd(T0 + 30 * MS, bids=[(100.0, 0.1)]),
              upd(T0 + 60 * MS, asks=[(101.0, 4.0)])]
    r = run(events, [(T0 + 5 * MS, 100, 1.0, 0, 0.0)])
    assert r.fills["qty"].size == 0
    assert r.orders["queue_ahead"][0] == pytest.approx(0.1)


def test_book_bid_through_our_ask_fills_it_completely():
    events = [snap(T0, [(100.0, 5.0)], [(102.0, 5.0)]),
              upd(T0 + 20 * MS, bids=[(101.0, 2.0)]),  # a bid at our ask price: it crossed us
              upd(T0 + 30 * MS, asks=[(102.0, 4.0)])]
    r = run(events, [(T0 + 5 * MS, 0, 0.0, 101, 1.0)])
    assert r.orders["queue_ahead_at_entry"][0] == 0.0  # nothing displayed at 101 when it arrived
    assert list(r.fills["ts"]) == [T0 + 20 * MS]
    assert list(r.fills["side"]) == [-1]
    assert list(r.fills["price"]) == [101.0]
    assert list(r.fills["qty"]) == [1.0]


def test_post_only_order_that_would_cross_on_arrival_is_rejected():
    events = [snap(T0, [(100.0, 5.0), (99.0, 5.0)], [(101.0, 5.0)]),
              # while our bid at 100 travels, the market drops: best ask becomes 100
              upd(T0 + 10 * MS, bids=[(100.0, 0.0)], asks=[(100.0, 1.0)]),
              upd(T0 + 50 * MS, asks=[(101.0, 4.0)])]
    r = run(events, [(T0 + 5 * MS, 100, 1.0, 0, 0.0)])
    assert RESULT_NAMES[int(r.orders["result"][0])] == "rejected_post_only"
    assert r.counters["rejected_post_only"] >= 1
    assert r.orders["ack_local_ts"][0] == T0 + 25 * MS  # the strategy learns after the response latency
    assert r.fills["qty"].size == 0


def test_order_reaches_exchange_after_entry_latency_and_earlier_book_changes_do_not_touch_it():
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]),
              upd(T0 + 12 * MS, bids=[(100.0, 8.0)]),
              trade(T0 + 13 * MS, 100.0, 3.0, "sell"),  # before our order arrives (15 ms)
              upd(T0 + 13 * MS, bids=[(100.0, 5.0)]),
              upd(T0 + 60 * MS, asks=[(101.0, 4.0)])]
    r = run(events, [(T0 + 5 * MS, 100, 1.0, 0, 0.0)])
    assert r.orders["arrive_exch_ts"][0] == T0 + 15 * MS
    assert r.orders["queue_ahead_at_entry"][0] == 5.0  # the book as it is on arrival
    assert r.fills["qty"].size == 0  # the trade at 13 ms happened before we were there


def test_strategy_sees_the_book_only_after_feed_latency():
    # the best bid jumps to 102 at 10 ms; with 30 ms feed latency the strategy still sees 100 at 20 ms
    events = [snap(T0, [(100.0, 5.0)], [(105.0, 5.0)]),
              upd(T0 + 10 * MS, bids=[(102.0, 1.0)]),
              upd(T0 + 100 * MS, asks=[(105.0, 4.0)])]
    pol = load_strategy("baseline", dict(half_spread_bps=0.0, size=1.0, skew_bps=0.0, max_inventory=10.0))
    r = run(events, [], strategy=pol, latency=ConstantLatency(30.0, 1.0, 1.0), requote_ms=5.0)
    first = np.argmin(r.orders["submit_local_ts"])
    assert r.orders["submit_local_ts"][first] >= T0 + 30 * MS  # nothing visible before the snapshot arrives
    buys = r.orders["side"] == 1
    early = buys & (r.orders["submit_local_ts"] < T0 + 40 * MS)
    assert set(r.orders["tick"][early]) == {102}  # fair (100+105)/2 = 102.5 -> bid 102
    late = buys & (r.orders["submit_local_ts"] >= T0 + 40 * MS)
    assert set(r.orders["tick"][late]) == {103}  # fair (102+105)/2 = 103.5 -> bid 103


def test_kraken_rate_counter_throttles_quote_churn():
    # a bid flipping between 98 and 99 every 2 ms: each replace = cancel (+8, order < 5 s old) + add (+1)
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]), upd(T0 + 200 * MS, asks=[(101.0, 4.0)])]
    rows = [(T0 + (5 + 2 * k) * MS, 98 + (k % 2), 1.0, 0, 0.0) for k in range(40)]
    r = run(events, rows, rate_tier="starter", rate_guard=10.0, latency=ConstantLatency(1.0, 1.0, 1.0))
    # counter: 1 (first add), then +9 per replace: 6 cancels fit under 60, the 7th (55 + 8) does not
    cancels = r.orders["result"] == 2
    assert int(cancels.sum()) == 6
    assert r.counters["rejected_rate_limit_cancel"] >= 1
    assert r.max_rate_counter <= 60.0
    # with the guard on, the bot defers its own requests instead and the exchange rejects nothing
    g = run(events, rows, rate_tier="starter", rate_guard=0.9, latency=ConstantLatency(1.0, 1.0, 1.0))
    assert g.counters["rejected_rate_limit_cancel"] == 0 and g.counters["rejected_rate_limit_new"] == 0
    assert g.counters["rate_guard_skips"] > 0
    assert g.max_rate_counter <= 54.0 + 1e-9


def test_lot_and_minimum_order_rules_apply():
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]), upd(T0 + 50 * MS, asks=[(101.0, 4.0)])]
    r = run(events, [(T0 + 5 * MS, 100, 0.000123456789, 0, 0.0)], rules=InstrumentRules(1e-4, 0.0, 0.0))
    assert r.orders["qty"][0] == pytest.approx(0.0001)  # floored to the lot
    r = run(events, [(T0 + 5 * MS, 100, 0.001, 0, 0.0)], rules=InstrumentRules(1e-8, 0.01, 0.0))
    assert r.orders["qty"].size == 0 and r.counters["rule_skips"] > 0  # below min qty
    r = run(events, [(T0 + 5 * MS, 100, 0.001, 0, 0.0)], rules=InstrumentRules(1e-8, 0.0, 0.5))
    assert r.orders["qty"].size == 0  # 0.1 of value below min cost


def test_a_fill_report_due_before_the_requote_is_known_at_the_requote():
    # bid 1.0 at 99 (nothing displayed there) placed at the 100 ms requote, arrives at 110 ms; a sell
    # of 1.0 at 99 fills it at 150 ms; the report arrives at 160 ms, before the 200 ms requote, so
    # at 200 ms the strategy knows the order is gone and places the scripted bid again.
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]),
              trade(T0 + 150 * MS, 99.0, 1.0, "sell"),
              upd(T0 + 1 * S, asks=[(101.0, 4.0)])]
    r = run(events, [(T0, 99, 1.0, 0, 0.0)], requote_ms=100.0)
    assert list(r.fills["ts"]) == [T0 + 150 * MS]
    assert list(r.fills["local_ts"]) == [T0 + 160 * MS]
    assert list(r.orders["submit_local_ts"][:2]) == [T0 + 100 * MS, T0 + 200 * MS]


def _two_bids_at_98(share):
    """Bids flip 98/99 every 2 ms under Kraken's starter rate counter (the bot ignores it): the
    7th cancel is rejected (55 + 8 > 60), so order #6 stays at 98 and #8 joins it there; #7 rests at
    99. Then a taker sells 1.5 at 98: #7 is traded through, the 1.5 at 98 meets #6 then #8."""
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]),
              trade(T0 + 150 * MS, 98.0, 1.5, "sell"),
              upd(T0 + 300 * MS, asks=[(101.0, 4.0)])]
    rows = [(T0 + (5 + 2 * k) * MS, 98 + (k % 2), 1.0, 0, 0.0) for k in range(9)]
    r = run(events, rows, rate_tier="starter", rate_guard=10.0, latency=ConstantLatency(1.0, 1.0, 1.0),
            share_trades=share)
    at98 = r.fills["price"] == 98.0
    return r, dict(zip(r.fills["order_id"][at98].tolist(), r.fills["qty"][at98].tolist()))


def test_our_orders_at_one_price_share_a_trade_in_queue_order():
    r, at98 = _two_bids_at_98(share=True)
    assert [int(t) for t in r.orders["tick"][[6, 7, 8]]] == [98, 99, 98]
    assert at98 == {6: 1.0, 8: 0.5}  # 1.5 traded at 98 is used once: first in queue gets 1.0, next 0.5
    assert r.fills["qty"][r.fills["order_id"] == 7].tolist() == [1.0]  # at 99: traded through


def test_independent_mode_reproduces_hftbacktest_double_fill():
    _, at98 = _two_bids_at_98(share=False)
    assert at98 == {6: 1.0, 8: 1.0}  # each order sees the whole 1.5 (hftbacktest 2.4.4, nautilus#2564)


def test_probabilistic_queue_model_moves_us_up_on_cancels_ahead():
    # we join behind 5.0 at 100; 3.0 joins behind us; then 4.0 is cancelled (8 -> 4, no trades)
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]),
              upd(T0 + 30 * MS, bids=[(100.0, 8.0)]),
              upd(T0 + 40 * MS, bids=[(100.0, 4.0)]),
              trade(T0 + 50 * MS, 100.0, 3.0, "sell"),
              upd(T0 + 2 * S, asks=[(101.0, 4.0)])]
    rows = [(T0 + 5 * MS, 100, 1.0, 0, 0.0)]
    # risk-averse: the cancel was behind us, 4 ahead, the trade of 3 leaves 1 ahead: no fill
    ra = run(events, rows)
    assert ra.orders["queue_ahead_at_entry"][0] == 5.0 and ra.fills["qty"].size == 0
    # power (n=2): p(behind) = 3^2 / (3^2 + 5^2), so ahead 5 - (1 - p) * 4 ~ 2.06 and the trade reaches us
    pw = run(events, rows, queue="power", queue_n=2.0)
    p = 9.0 / 34.0
    assert pw.fills["qty"].sum() == pytest.approx(3.0 - (5.0 - (1.0 - p) * 4.0), abs=1e-8)


def test_loop_specialisations_compile_per_strategy_and_queue_family():
    from mm_core.backtest import engine_core as core
    from mm_core.backtest.queue import POWER, RISK_AVERSE

    base, scripted = load_strategy("baseline"), load_strategy("scripted")
    a = core.run_core_for(base, RISK_AVERSE)
    assert core.run_core_for(load_strategy("baseline", {"size": 0.5}), RISK_AVERSE) is a  # params are data
    assert len({a, core.run_core_for(scripted, RISK_AVERSE), core.run_core_for(base, POWER)}) == 3
    assert a.py_func.__globals__["_RISK_AVERSE"] is True
    assert core.run_core_for(base, POWER).py_func.__globals__["_RISK_AVERSE"] is False
    # the compiled code is named (and cached on disk) by strategy name + source digest
    assert base.code_digest[:12] in a.py_func.__qualname__ and "baseline" in a.py_func.__qualname__
