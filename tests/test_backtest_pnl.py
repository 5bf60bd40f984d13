"""PnL decomposition adds up exactly; runs repeat exactly; retail fees show up honestly."""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.backtest.engine import BacktestConfig, run_backtest
from mm_core.backtest.event_arrays import from_simulator
from mm_core.backtest.fees import TradingValueFee, kraken_schedule
from mm_core.backtest.latency import LognormalLatency
from mm_core.backtest.pnl import decompose
from mm_core.strategy import load_strategy
from mm_core.strategy.risk import RiskConfig

S = 1_000_000_000


@pytest.fixture(scope="module")
def market():
    # 15 minutes: in the simulator's quiet, 1-tick market a quote one tick behind the best fills only
    # when the best level is taken away, a few times a minute at these rates
    return from_simulator(900.0, 11, updates_per_second=20.0, trades_per_second=3.0)


def test_decomposition_by_hand():
    exch = np.array([0, 1 * S, 40 * S, 60 * S], np.int64)
    fair = np.array([100.0, 102.0, 101.0, 101.0])
    fills = {"ts": np.array([S // 2]), "side": np.array([1], np.int8), "price": np.array([99.5]),
             "qty": np.array([1.0]), "maker": np.array([True])}
    p = decompose(fills, exch, fair, TradingValueFee(0.0025, 0.004))
    assert p.spread_capture == pytest.approx(0.5)  # 100 - 99.5
    assert p.adverse_by_horizon["1s"] == pytest.approx(2.0)  # fair at 1.5 s = 102
    assert p.adverse_selection == pytest.approx(2.0)  # fair at 30.5 s = 102
    assert p.inventory_pnl == pytest.approx(-1.0)  # 101 at the end
    assert p.fees == pytest.approx(0.24875)
    assert p.total == pytest.approx(101 - 99.5 - 0.24875)
    assert p.identity_error < 1e-12


@pytest.mark.parametrize("half_spread", [0.0, 0.01])  # at the best, and one tick behind it (0.01 bps ~ 0.75 tick)
def test_parts_add_up_to_total_exactly(market, half_spread):
    cfg = BacktestConfig(strategy=load_strategy("baseline", {"half_spread_bps": half_spread}), rate_tier="off")
    r = run_backtest(market, cfg)
    p = r.pnl
    assert r.fills["qty"].size > 10
    assert abs(p.total - (p.spread_capture + p.adverse_selection + p.inventory_pnl - p.fees)) < 1e-9
    assert abs(p.total - p.total_direct) < 1e-9  # cash + position * fair(T) - fees, computed apart
    per = p.per_fill
    assert np.allclose(per["spread"] + per["adverse"] + per["inventory"] - per["fee"], per["total"], atol=1e-9)
    assert p.curve["equity"][-1] == pytest.approx(p.total, abs=1e-9)


def test_same_configuration_twice_gives_identical_results(market):
    # quotes at the best: their queue position, and so their fills, depend on the latency draws
    # (quotes two ticks behind fill only when sweeps reach them, whatever the latency)
    cfg = BacktestConfig(strategy=load_strategy("baseline", {"half_spread_bps": 0.0}), latency=LognormalLatency(seed=5),
                         rate_tier="pro")
    a, b = run_backtest(market, cfg), run_backtest(market, cfg)
    for k in a.fills:
        assert np.array_equal(a.fills[k], b.fills[k])
    sa, sb = a.summary(), b.summary()
    for k in ("total_pnl", "spread_capture", "adverse_selection", "inventory_pnl", "fees", "fills", "counters"):
        assert sa[k] == sb[k]
    c = run_backtest(market, BacktestConfig(strategy=cfg.strategy, latency=LognormalLatency(seed=6), rate_tier="pro"))
    assert not np.array_equal(a.fills["ts"], c.fills["ts"]) or a.fills["ts"].size == 0


def test_retail_fees_are_charged_in_full_and_shown(market):
    # the drawdown kill switch sees equity after fees; far away, fees change no decision
    no_dd = RiskConfig(max_drawdown=1e12)
    r = run_backtest(market, BacktestConfig(strategy=load_strategy("baseline", {"half_spread_bps": 0.0}), rate_tier="off",
                                            fees=kraken_schedule(0.0), risk=no_dd))
    p = r.pnl
    assert r.fills["maker"].all()
    assert p.fees == pytest.approx(0.0025 * p.volume_quote, rel=1e-12)  # 0.25 % maker, every fill
    s = r.summary()
    assert s["total_pnl"] == pytest.approx(s["spread_capture"] + s["adverse_selection"] + s["inventory_pnl"]
                                           - s["fees"], abs=1e-9)
    # at a spread of ~0.2 bps the edge cannot cover 25 bps of fees: the report must say it loses
    assert s["total_pnl"] < 0 < s["fees"]
    free = run_backtest(market, BacktestConfig(strategy=load_strategy("baseline", {"half_spread_bps": 0.0}),
                                               rate_tier="off", fees=TradingValueFee(0.0, 0.0), risk=no_dd))
    assert free.pnl.total == pytest.approx(p.total + p.fees, abs=1e-9)
