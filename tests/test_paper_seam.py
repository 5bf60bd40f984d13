"""Issue 9's seam, the paper-runner half: a strategy defined in this file runs in the backtest AND in
the paper runner, and on the same stream both decide identically -- every decision at the same time,
every order action the same, the same fills, a bit-identical transition log.

The paper runner here is the object ``mm paper`` runs (:class:`~mm_core.trading.runner.TradingRunner`
with an :class:`~mm_core.trading.orders.OrderManager` behind an ``OrderSupervisor`` and the
simulator's account as venue, Kraken messages and parser in between), driven on a virtual clock in
the backtest engine's event order (:mod:`mm_core.trading.replay_driver`). Feed latency with the
simulator's spells (so the latency regime has transitions to log), constant order latency.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
import pytest
from numba import njit

from mm_core.backtest import engine_core as core
from mm_core.backtest.engine import BacktestConfig, local_ts_for, maker_fee_rate, new_pipeline, run_backtest
from mm_core.backtest.event_arrays import from_simulator
from mm_core.backtest.feed_health import feed_timeline
from mm_core.backtest.latency import ConstantLatency, OrderLatencyTable, SpellLatency
from mm_core.simexchange.account import AccountConfig
from mm_core.strategy import load_strategy, register, unregister
from mm_core.strategy.requote import A_ID, A_KIND, A_QTY, A_SIDE, A_TICK, N_A
from mm_core.strategy.transitions import digest
from mm_core.strategy.view import (N_O, N_V, Q_ASK_PX, Q_ASK_QTY, Q_BID_PX, Q_BID_QTY, Q_REASON, V_FAIR, V_POSITION,
                                   V_SIZE_MULT, V_TICK, V_WIDTH_MULT)
from mm_core.trading.replay_driver import run_replay

# ---------------------------------------------------------------- a strategy defined in this file
NAME = "test-paper-skew"
STATE_SIZE = 1  # decisions seen


@dataclass(frozen=True)
class Params:
    offset_ticks: float = 1.0
    size: float = 0.0005
    skew_ticks_per_unit: float = 2000.0  # quotes move this many ticks per 1 unit of position

    @classmethod
    def from_config(cls, d: dict) -> "Params":
        return cls(**d)

    def vector(self) -> np.ndarray:
        return np.array([self.offset_ticks, self.size, self.skew_ticks_per_unit], np.float64)

    def describe(self) -> dict:
        return asdict(self)


@njit(cache=True)
def decide(t_ns, params, state, view, orders, n_orders, out):
    """Quote around the fair mid, shifted against the position, widened and sized by the regimes."""
    state[0] += 1.0
    tick = view[V_TICK]
    shift = -params[2] * view[V_POSITION] * tick
    half = params[0] * tick * view[V_WIDTH_MULT]
    out[Q_BID_PX] = view[V_FAIR] + shift - half
    out[Q_ASK_PX] = view[V_FAIR] + shift + half
    out[Q_BID_QTY] = params[1] * view[V_SIZE_MULT]
    out[Q_ASK_QTY] = params[1] * view[V_SIZE_MULT]
    out[Q_REASON] = 101


class SpellFeedConstantOrders:
    """Feed delays with the simulator's latency spells, constant order entry/response (3 / 2 ms)."""

    def __init__(self) -> None:
        self.feed = SpellLatency(8.0, seed=3)

    def feed_delays(self, msg_ts: np.ndarray) -> np.ndarray:
        return self.feed.feed_delays(msg_ts)

    def order_table(self, start_ns: int, end_ns: int) -> OrderLatencyTable:
        return ConstantLatency(0.0, 3.0, 2.0).order_table(start_ns, end_ns)


@pytest.fixture(scope="module")
def strategy():
    register(sys.modules[__name__])
    yield load_strategy(NAME)
    unregister(NAME)


@pytest.fixture(scope="module")
def runs(strategy):
    m = from_simulator(1200.0, 11)
    cfg = BacktestConfig(strategy=strategy, latency=SpellFeedConstantOrders())
    bt = run_backtest(m, cfg, trace=1_000_000)
    loc = local_ts_for(m, cfg)
    tl = feed_timeline(m.exch_ts, m.msg, loc, m.kind, cfg.faults)
    acct = AccountConfig(symbol=m.symbol, tick_size=m.tick_size, lot_size=m.lot_size, depth=m.depth,
                         balances=(("BTC", 1000.0), ("EUR", 1e9)), maker_fee=maker_fee_rate(cfg.fees))
    paper = run_replay(m, tl, new_pipeline(cfg, m.tick_size), entry_ns=3_000_000, response_ns=2_000_000,
                       requote_ms=cfg.requote_ms, account=acct)
    return m, bt, paper


def _backtest_actions(bt):
    ti, tf = bt.trace
    dec = np.flatnonzero(ti[:, core.TR_KIND] == core.TR_DECISION)
    w = N_V + core.TRACE_ROWS * N_O
    out = []
    for k in dec:
        for a in range(min(int(ti[k, core.TR_B]), core.TRACE_ROWS)):
            row = tf[k, w + a * N_A: w + (a + 1) * N_A]
            out.append((int(ti[k, core.TR_T]), int(row[A_KIND]), int(row[A_SIDE]), int(row[A_TICK]),
                        round(float(row[A_QTY]), 10), int(row[A_ID])))
    return dec.size, out


def _paper_actions(paper, tick):
    kinds = {"new": 1, "cancel": 2, "amend": 3}
    out = []
    for c, num in zip(paper.commands, paper.numbers):  # order numbers count orders as the engine's ids do
        if c.kind == "new":
            side, t, q = (1 if c.request.side == "buy" else -1), round(c.request.price / tick), c.request.qty
            out.append((c.t_ns, 1, side, int(t), round(q, 10), -1))
        elif c.kind == "amend":
            out.append((c.t_ns, 3, None, int(round(c.request.price / tick)), None, num))
        else:
            out.append((c.t_ns, kinds[c.kind], None, None, None, num))
    return out


def test_the_strategy_defined_here_trades(runs):
    m, bt, paper = runs
    assert bt.counters["orders_sent"] > 50 and bt.counters["amends_sent"] > 30
    assert bt.fills["qty"].size > 50, "the test needs fills to compare"
    assert bt.log.shape[0] >= 10, "and regime transitions (latency spells) to compare"


def test_paper_runner_decides_at_the_same_times(runs):
    _, bt, paper = runs
    n_dec, _ = _backtest_actions(bt)
    assert paper.decisions == n_dec == bt.counters["requotes"]


def test_paper_runner_sends_the_same_order_actions(runs):
    m, bt, paper = runs
    bt_actions = _backtest_actions(bt)[1]
    mine = _paper_actions(paper, m.tick_size)
    assert len(mine) == len(bt_actions)
    for a, b in zip(bt_actions, mine):
        t, kind, side, tick, qty, oid = b
        assert (a[0], a[1]) == (t, kind)
        if kind == 1:
            assert (a[2], a[3], a[4]) == (side, tick, qty)
        else:
            assert a[5] == oid
            if kind == 3:
                assert a[3] == tick


def test_paper_runner_gets_the_same_fills(runs):
    _, bt, paper = runs
    f = bt.fills
    theirs = sorted(zip(f["ts"].tolist(), f["side"].tolist(), np.round(f["price"], 6).tolist(),
                        np.round(f["qty"], 10).tolist()))
    ours = sorted((x.ts_exchange, x.side, round(x.price, 6), round(x.qty, 10)) for x in paper.manager.fills)
    assert ours == theirs
    assert abs(paper.runner.position - bt.local_position) < 1e-12


def test_transition_logs_are_bit_identical(runs):
    _, bt, paper = runs
    assert paper.log.shape == bt.log.shape
    assert digest(paper.log, paper.log.shape[0]) == digest(bt.log, bt.log.shape[0])
