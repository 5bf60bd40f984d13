"""Kraken's amend in the exchange model, and the one matching model callable from Python.

Queue rules (matching.py's docstring; Kraken keeps priority "where possible"): a quantity decrease at
the same price keeps the order's place; a price change or a quantity increase puts it behind what is
displayed at its (new) price. Rate counter (starter: threshold 60, decay 1/s): a new order +1, an
amend +1 plus +3/+2/+1 under 5/10/15 s, a cancel (or an amend below the filled size) +8 under 5 s.
Numbers below are worked out by hand; tick 1.0.
"""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.backtest import matching as mx
from mm_core.backtest.matching import MatchingState

T0 = 1_767_225_600_000_000_000
MS = 1_000_000
S = 1_000_000_000


def book():
    """Bids 100 x 5.0, 99 x 2.0; ask 101 x 5.0; our bid of 1.0 at 100 arrives at 15 ms (5.0 ahead)."""
    m = MatchingState(90, 30, rate_threshold=60.0, rate_decay=1.0, lot=1e-8)
    m.depth(1, 100, 5.0, T0, 100, 101)
    m.depth(1, 99, 2.0, T0, 100, 101)
    m.depth(-1, 101, 5.0, T0, 100, 101)
    o, rsp = m.new_order(1, 100, 1.0, T0 + 15 * MS)
    assert rsp == mx.RSP_ACCEPTED and m.of[o, mx.OF_FRONT] == 5.0
    return m, o


def test_price_amend_goes_behind_the_displayed_size_at_the_new_price_and_costs_1_plus_3():
    m, o = book()
    assert m.amend(o, T0 + 1 * S, 99, 1.0) == mx.RSP_AMENDED
    assert m.oi[o, mx.OI_TICK] == 99 and m.of[o, mx.OF_FRONT] == 2.0 and m.oi[o, mx.OI_N_AMENDS] == 1
    # counter: 1 at 15 ms, decayed by 0.985 by 1 s, then +4 (order younger than 5 s)
    assert m.rate_counter == pytest.approx(1.0 - 0.985 + 4.0)
    assert m.X[mx.X_MAX_BUY] == 99  # the resting extremes follow the amend


def test_quantity_down_keeps_the_place_quantity_up_loses_it():
    for new_qty, front in ((0.5, 2.0), (2.0, 6.0)):
        m, o = book()
        assert m.trade(-1, 100, 3.0, T0 + 30 * MS) == 0  # 3.0 ahead of us trades: 2.0 left ahead
        m.depth(1, 100, 6.0, T0 + 31 * MS, 100, 101)  # 2.0 + ours not shown + 4.0 joined behind
        assert m.of[o, mx.OF_FRONT] == 2.0
        assert m.amend(o, T0 + 40 * MS, 100, new_qty) == mx.RSP_AMENDED
        assert m.of[o, mx.OF_FRONT] == front
        assert m.of[o, mx.OF_LEAVES] == new_qty
    # after the decrease a trade of 2.3 at 100 reaches us: 2.0 ahead trades first, 0.3 fills us
    m, o = book()
    m.trade(-1, 100, 3.0, T0 + 30 * MS)
    m.amend(o, T0 + 40 * MS, 100, 0.5)
    assert m.trade(-1, 100, 2.3, T0 + 50 * MS) == 1
    assert m.fills()["qty"].tolist() == pytest.approx([0.3])


def test_amend_of_a_filled_order_is_too_late_and_costs_nothing():
    m, o = book()
    assert m.trade(-1, 99, 1.0, T0 + 30 * MS) == 1  # traded through our price: filled completely
    assert m.amend(o, T0 + 40 * MS, 99, 1.0) == mx.RSP_AMEND_TOO_LATE
    assert m.rate_counter == pytest.approx(1.0 - 0.025)  # only the decay since 15 ms: nothing added
    assert m.X[mx.X_AMEND_TOO_LATE] == 1


def test_amend_that_would_cross_is_rejected_post_only_and_the_order_stays():
    m, o = book()
    assert m.amend(o, T0 + 1 * S, 101, 1.0) == mx.RSP_AMEND_REJECTED  # best ask is 101
    assert m.oi[o, mx.OI_TICK] == 100 and m.of[o, mx.OF_FRONT] == 5.0
    assert m.X[mx.X_REJ_POST_ONLY_AMEND] == 1


def test_amend_below_the_filled_size_cancels_the_rest_with_the_cancel_penalty():
    m, o = book()
    m.trade(-1, 100, 5.3, T0 + 30 * MS)  # 5.0 ahead, then 0.3 of ours
    assert m.fills()["qty"].tolist() == pytest.approx([0.3])
    assert m.amend(o, T0 + 30 * MS, 100, 0.2) == mx.RSP_CANCELED
    assert m.oi[o, mx.OI_RESULT] == mx.RES_CANCELED and m.of[o, mx.OF_LEAVES] == 0.0
    assert m.rate_counter == pytest.approx(1.0 - 0.015 + 8.0)  # the order is 15 ms old: +8, not +4


def test_amend_is_refused_when_the_counter_has_no_room():
    m, o = book()
    m.XF[mx.XF_RC] = 57.0
    m.X[mx.X_RC_TS] = T0 + 1 * S
    assert m.amend(o, T0 + 1 * S, 99, 1.0) == mx.RSP_AMEND_REJECTED  # 57 + 4 > 60
    assert m.oi[o, mx.OI_TICK] == 100 and m.X[mx.X_REJ_RATE_AMEND] == 1


def test_market_status_refuses_new_orders_and_maintenance_stops_matching():
    m, o = book()
    m.set_market(4)  # maintenance
    o2, rsp = m.new_order(1, 98, 1.0, T0 + 20 * MS)
    assert rsp == mx.RSP_REJECTED and m.oi[o2, mx.OI_RESULT] == mx.RES_REJ_MARKET
    assert m.trade(-1, 99, 1.0, T0 + 30 * MS) == 0  # no matching in maintenance
    m.set_market(0)
    assert m.trade(-1, 99, 1.0, T0 + 40 * MS) == 1


def test_python_matching_state_fills_as_the_backtest_loop():
    """The queue scenario of test_backtest_exchange, fed row by row to the Python-callable model,
    gives the loop's fills (same times, quantities, order)."""
    from test_backtest_exchange import queue_scenario, run

    r = run(queue_scenario(), [(T0 + 5 * MS, 100, 1.0, 0, 0.0), (T0 + 45 * MS, 0, 0.0, 0, 0.0)])
    from mm_core.backtest.event_arrays import CLEAR, DEPTH, TRADE, from_events

    mk = from_events(queue_scenario(), tick_size=1.0, lot_size=1e-8)
    lo, n = mk.tick_range
    m = MatchingState(lo, n, rate_threshold=np.inf, rate_decay=0.0)
    arrive = int(r.orders["arrive_exch_ts"][0])
    placed = False
    for i in range(len(mk)):
        if not placed and mk.exch_ts[i] > arrive:
            m.new_order(1, 100, 1.0, arrive)
            placed = True
        k, t = mk.kind[i], int(mk.exch_ts[i])
        if k == DEPTH:
            m.depth(int(mk.side[i]), int(mk.tick[i]), float(mk.qty[i]), t, int(mk.best_bid_tick[i]),
                    int(mk.best_ask_tick[i]))
        elif k == TRADE:
            m.trade(int(mk.side[i]), int(mk.tick[i]), float(mk.qty[i]), t)
        elif k == CLEAR:
            m.clear(int(mk.side[i]))
    f = m.fills()
    assert f["ts"].tolist() == r.fills["ts"].tolist() == [T0 + 40 * MS, T0 + 50 * MS]
    assert f["qty"].tolist() == pytest.approx(r.fills["qty"].tolist())


def test_the_backtest_moves_a_quote_by_amend_not_cancel_and_new():
    from test_backtest_exchange import run, snap, upd

    from mm_core.strategy.requote import RequoteConfig

    events = [snap(T0, [(100.0, 5.0), (99.0, 1.0)], [(101.0, 5.0)]), upd(T0 + 1 * S, asks=[(101.0, 4.0)])]
    rows = [(T0 + 5 * MS, 100, 1.0, 0, 0.0), (T0 + 100 * MS, 99, 1.0, 0, 0.0)]
    amend = RequoteConfig(deadband_ticks=0.0, deadband_bps=0.0, max_age_ms=np.inf, amend=True, qty_tolerance=np.inf)
    r = run(events, rows, requote=amend, rate_tier="starter")
    c = r.counters
    assert c["orders_sent"] == 1 and c["cancels_sent"] == 0 and c["amends_sent"] == 1 and c["amended"] == 1
    assert r.orders["tick"].tolist() == [99] and r.orders["amends"].tolist() == [1]
    assert r.orders["queue_ahead_at_entry"].tolist() == [1.0]  # behind the 1.0 displayed at 99
    # +1 for the order, +4 for the young amend: a cancel + new would have cost +9
    assert r.max_rate_counter == pytest.approx(1.0 - (110 - 15) / 1000 + 4.0)  # sent at 100 ms, arrives at 110
    same = run(events, rows, requote=RequoteConfig.cancel_replace(), rate_tier="starter")
    assert same.counters["orders_sent"] == 2 and same.counters["cancels_sent"] == 1
    assert same.max_rate_counter > r.max_rate_counter + 4.0
