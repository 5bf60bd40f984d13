"""Requoting that respects Kraken: deadband, max order age, minimum resting time, amend before
cancel + new, and the rate-counter budget -- through the Python-callable pipeline, one decision at a
time, with the scripted strategy (its target is whatever the test says). Tick 1.0, one bid working.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mm_core.strategy import load_strategy
from mm_core.strategy.pipeline import DecisionPipeline
from mm_core.strategy.requote import (A_ID, A_KIND, A_QTY, A_TICK, ACT_AMEND, ACT_CANCEL, ACT_NEW, PF_RC, PI_DEADBAND_HOLDS,
                                      PI_MIN_REST_HOLDS, PI_RATE_SKIPS, PI_RC_T, RequoteConfig)
from mm_core.strategy.risk import RiskConfig
from mm_core.strategy.view import (O_AGE_MS, O_FILLED, O_ID, O_LEAVES, O_PRICE, O_SIDE, O_STATE, O_TICK, OS_LIVE,
                                   OS_PENDING_NEW)

T = 1_767_225_600_000_000_000


def pipeline(bid_tick, qty=1.0, *, risk=None, **requote):
    rq = dict(deadband_ticks=0.0, deadband_bps=0.0, max_age_ms=math.inf, min_rest_ms=0.0, amend=True,
              qty_tolerance=math.inf)
    rq.update(requote)
    spec = load_strategy("scripted", {"rows": [(0, bid_tick, qty, 0, 0.0)]})
    return DecisionPipeline(spec, requote=RequoteConfig(**rq), risk=risk or RiskConfig(max_inventory=100.0,
                            max_order_qty=100.0, max_notional=1e9, max_drawdown=1e9),
                            tick=1.0, lot=1e-8, rate_limit=60.0, rate_decay=1.0)


def working(p, tick, *, age_ms=1000.0, state=OS_LIVE, qty=1.0, row=0, oid=7):
    p.ORD[row, O_SIDE] = 1.0
    p.ORD[row, O_TICK] = tick
    p.ORD[row, O_PRICE] = tick
    p.ORD[row, O_LEAVES] = qty
    p.ORD[row, O_FILLED] = 0.0
    p.ORD[row, O_AGE_MS] = age_ms
    p.ORD[row, O_ID] = oid
    p.ORD[row, O_STATE] = state
    p.n_orders = max(p.n_orders, row + 1)


def decide(p, *, age_ms=5.0, position=0.0):
    n = p.decide(T, fair=1000.5, bid=1000.0, ask=1001.0, bid_qty=1.0, ask_qty=1.0, position=position, equity=0.0,
                 data_age_ms=age_ms, data_valid=True)
    return p.actions(n)


def test_a_move_inside_the_deadband_keeps_the_order_beyond_it_amends():
    p = pipeline(997, deadband_ticks=2.0)
    working(p, 995)
    assert decide(p).shape[0] == 0 and p.PI[PI_DEADBAND_HOLDS] == 1  # 2 ticks: not beyond
    p = pipeline(998, deadband_ticks=2.0)
    working(p, 995)
    a = decide(p)
    assert a.shape[0] == 1 and a[0, A_KIND] == ACT_AMEND and a[0, A_TICK] == 998 and a[0, A_ID] == 7


def test_deadband_in_bps_of_the_fair_mid():
    p = pipeline(998, deadband_bps=40.0)  # 40 bps of 1000.5 = 4.0 ticks
    working(p, 995)
    assert decide(p).shape[0] == 0


def test_without_amend_a_move_is_cancel_then_new():
    p = pipeline(998, amend=False)
    working(p, 995)
    a = decide(p)
    assert a[:, A_KIND].tolist() == [ACT_CANCEL, ACT_NEW] and a[1, A_TICK] == 998


def test_an_order_older_than_max_age_moves_even_inside_the_deadband():
    p = pipeline(996, deadband_ticks=2.0, max_age_ms=60_000.0)
    working(p, 995, age_ms=61_000.0)
    a = decide(p)
    assert a.shape[0] == 1 and a[0, A_KIND] == ACT_AMEND and a[0, A_TICK] == 996


def test_minimum_resting_time_holds_a_young_order_but_never_a_risk_pull():
    p = pipeline(998, min_rest_ms=500.0)
    working(p, 995, age_ms=100.0)
    assert decide(p).shape[0] == 0 and p.PI[PI_MIN_REST_HOLDS] == 1
    a = decide(p, age_ms=5000.0)  # the data is stale: pull, whatever the order's age
    assert a.shape[0] == 1 and a[0, A_KIND] == ACT_CANCEL


def test_an_unacknowledged_order_is_not_amended():
    p = pipeline(998)
    working(p, 995, state=OS_PENDING_NEW)
    assert decide(p).shape[0] == 0


def test_the_rate_budget_defers_ordinary_moves_but_not_pulls():
    p = pipeline(998)
    working(p, 995)
    p.PF[PF_RC] = 53.0  # guard 0.9 x 60 = 54: an amend (+4) does not fit
    p.PI[PI_RC_T] = T
    assert decide(p).shape[0] == 0 and p.PI[PI_RATE_SKIPS] == 1
    a = decide(p, age_ms=5000.0)  # stale: the pull goes out anyway (+8 -> 61, above the guard)
    assert a.shape[0] == 1 and a[0, A_KIND] == ACT_CANCEL


def test_a_risk_cut_resizes_the_working_order_down_in_place():
    risk = RiskConfig(max_inventory=1.5, max_order_qty=100.0, max_notional=1e9, max_drawdown=1e9)
    p = pipeline(995, qty=1.0, risk=risk)
    working(p, 995, qty=1.0)
    a = decide(p, position=1.0)  # room to buy: 0.5
    assert a.shape[0] == 1 and a[0, A_KIND] == ACT_AMEND and a[0, A_TICK] == 995
    assert a[0, A_QTY] == pytest.approx(0.5)


def test_a_leftover_live_order_is_cancelled():
    p = pipeline(995)
    working(p, 995, row=0, oid=7, age_ms=1000.0)
    working(p, 990, row=1, oid=3, age_ms=9000.0)  # older: a throttled cancel left it behind
    a = decide(p)
    assert a.shape[0] == 1 and a[0, A_KIND] == ACT_CANCEL and a[0, A_ID] == 3
    assert np.isfinite(a).all()
