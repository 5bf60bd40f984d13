"""The strategy seam: a strategy is one module found by name; the backtest and the Python-callable
pipeline (the paper/live runner's API) run it unchanged and decide identically.

The strategy ``test-ladder`` below is defined in this file, registered at run time, and run by the
unchanged engine: nothing in the engine, the pipeline or the registry names it.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass

import numpy as np
import pytest
from numba import njit

from mm_core.backtest import engine_core as core
from mm_core.backtest.engine import BacktestConfig, new_pipeline, run_backtest
from mm_core.backtest.event_arrays import from_simulator
from mm_core.backtest.feed_health import FeedFaults
from mm_core.backtest.latency import SpellLatency
from mm_core.strategy import StrategyNotFound, available_strategies, load_strategy, register, unregister
from mm_core.strategy.requote import N_A, RequoteConfig
from mm_core.strategy.transitions import digest
from mm_core.strategy.view import (N_O, N_V, Q_ASK_PX, Q_ASK_QTY, Q_BID_PX, Q_BID_QTY, Q_REASON, V_ASK, V_ASK_QTY,
                                   V_BID, V_BID_QTY, V_DATA_AGE_MS, V_DATA_VALID, V_EQUITY, V_FAIR, V_MARKET,
                                   V_POSITION, V_TICK)

# ---------------------------------------------------------------- a strategy defined in this file
NAME = "test-ladder"
STATE_SIZE = 2  # decisions seen, last fair mid


@dataclass(frozen=True)
class Params:
    offset_ticks: float = 3.0
    size: float = 0.002
    fair: str = "mid"

    @classmethod
    def from_config(cls, d: dict) -> "Params":
        return cls(**d)

    def vector(self) -> np.ndarray:
        return np.array([self.offset_ticks, self.size], np.float64)

    def describe(self) -> dict:
        return asdict(self)


@njit(cache=True)
def decide(t_ns, params, state, view, orders, n_orders, out):
    """``offset_ticks`` outside the best prices on both sides; counts its decisions in its state."""
    state[0] += 1.0
    state[1] = view[V_FAIR]
    tick = view[V_TICK]
    out[Q_BID_PX] = view[V_BID] - params[0] * tick
    out[Q_ASK_PX] = view[V_ASK] + params[0] * tick
    out[Q_BID_QTY] = params[1]
    out[Q_ASK_QTY] = params[1]
    out[Q_REASON] = 100


@pytest.fixture(scope="module")
def ladder():
    register(sys.modules[__name__])
    yield load_strategy(NAME)
    unregister(NAME)


@pytest.fixture(scope="module")
def market():
    # the busy profile: in the default (quiet) market the mid changes about once in 10 s, and the
    # seam needs a strategy that acts
    return from_simulator(600.0, 5, profile="busy")


CALIBRATION = {"format": "mm_core.calibration/1", "A": 0.47, "kappa": 1.77, "sigma": 0.6}


def test_unknown_strategy_is_an_error_listing_the_known_names():
    with pytest.raises(StrategyNotFound) as e:
        load_strategy("no-such-strategy")
    assert "baseline" in str(e.value) and "glft" in str(e.value) and "avellaneda-stoikov" in str(e.value)
    assert {"baseline", "scripted", "avellaneda-stoikov", "glft"} <= set(available_strategies())


def test_unknown_strategy_on_the_command_line_exits_2(capsys):
    from mm_core.cli import main

    assert main(["backtest", "--sim-seconds", "30", "--strategy", "no-such-strategy"]) == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'no-such-strategy'" in err and "baseline" in err


def test_a_calibration_goes_only_to_strategies_that_read_one():
    base = load_strategy("baseline", {}, calibration=CALIBRATION)  # ignored, not an error
    assert base.vector.tolist() == load_strategy("baseline").vector.tolist()
    glft = load_strategy("glft", {}, calibration=CALIBRATION)
    assert glft.params.kappa == CALIBRATION["kappa"]


def test_registering_needs_the_whole_module_shape():
    class Half:
        NAME = "half"
    with pytest.raises(TypeError, match="Params, STATE_SIZE, decide"):
        register(Half)


def test_a_strategy_defined_in_the_test_file_runs_in_the_unchanged_backtest(ladder, market):
    assert NAME in available_strategies()
    cfg = BacktestConfig(strategy=ladder, requote=RequoteConfig.cancel_replace(), rate_tier="off")
    r = run_backtest(market, cfg)
    o = r.orders
    assert o["tick"].size > 50
    # every order sits exactly 3 ticks outside the best price the strategy saw when it sent it
    loc = r.timeline.local_ts
    seen = np.searchsorted(loc, o["submit_local_ts"], side="right") - 1
    buy = o["side"] > 0
    assert np.array_equal(o["tick"][buy], market.best_bid_tick[seen[buy]] - 3)
    assert np.array_equal(o["tick"][~buy], market.best_ask_tick[seen[~buy]] + 3)
    full = np.isclose(o["qty"], 0.002)  # its size, or less where the inventory cap leaves less room
    assert full.mean() > 0.9 and np.all(o["qty"][~full] < 0.002)
    assert r.summary()["strategy"] == NAME
    # compiled under its own name and source digest: an edit to this file can never reuse stale code
    fn = core.run_core_for(ladder, 0)
    assert ladder.code_digest[:12] in fn.py_func.__qualname__


def _replay(result, cfg, market):
    """Feed the traced calls through a fresh Python-callable pipeline; return its actions per decision
    and the pipeline."""
    tr_i, tr_f = result.trace
    pipe = new_pipeline(cfg, float(market.tick_size))
    tl = result.timeline
    pb = 0
    acts = []
    w_ord = N_V
    w_act = N_V + core.TRACE_ROWS * N_O
    for row_i, row_f in zip(tr_i, tr_f):
        t = int(row_i[core.TR_T])
        if row_i[core.TR_KIND] == core.TR_FAULT:
            pipe.on_fault(t, int(row_i[core.TR_A]), float(row_f[0]))
            continue
        while pb < tl.bm_local.shape[0] and tl.bm_local[pb] <= t:  # each book message: one age sample
            pipe.on_book(int(tl.bm_local[pb]), float(tl.bm_age_ms[pb]))
            pb += 1
        n_ord, n_act = int(row_i[core.TR_A]), int(row_i[core.TR_B])
        assert n_ord <= core.TRACE_ROWS and n_act <= core.TRACE_ROWS
        pipe.ORD[:n_ord] = row_f[w_ord:w_ord + n_ord * N_O].reshape(n_ord, N_O)
        pipe.n_orders = n_ord
        v = row_f[:N_V]
        n = pipe.decide(t, fair=v[V_FAIR], bid=v[V_BID], ask=v[V_ASK], bid_qty=v[V_BID_QTY], ask_qty=v[V_ASK_QTY],
                        position=v[V_POSITION], equity=v[V_EQUITY], data_age_ms=v[V_DATA_AGE_MS],
                        data_valid=bool(v[V_DATA_VALID]), market=int(v[V_MARKET]))
        acts.append((pipe.actions(n), row_f[w_act:w_act + n_act * N_A].reshape(n_act, N_A)))
    return acts, pipe


@pytest.mark.parametrize("name", [NAME, "glft"])
def test_the_python_step_decides_as_the_backtest_on_the_same_stream(ladder, market, name):
    spec = ladder if name == NAME else load_strategy("glft", {}, calibration=CALIBRATION)
    faults = FeedFaults(disconnects=((200.0, 4.0),), checksum_faults=((400.0, 300.0),), stalls=((300.0, 3.0),))
    cfg = BacktestConfig(strategy=spec, latency=SpellLatency(8.0, seed=3), faults=faults)
    r = run_backtest(market, cfg, trace=200_000)
    tr_i, _ = r.trace
    assert tr_i.shape[0] < 200_000  # the whole run is in the trace
    decisions = int(np.count_nonzero(tr_i[:, core.TR_KIND] == core.TR_DECISION))
    assert decisions == r.counters["requotes"] and decisions > 5000
    assert np.count_nonzero(tr_i[:, core.TR_KIND] == core.TR_FAULT) >= 2  # the disconnect and the CRC failure
    acts, pipe = _replay(r, cfg, market)
    n_actions = 0
    for ours, traced in acts:
        assert np.array_equal(ours, traced)
        n_actions += ours.shape[0]
    assert n_actions > 100
    # the same transitions, bit for bit: the determinism check between backtest and runner
    log = pipe.drain_log()
    assert log.shape[0] > 0 and np.array_equal(log, r.log)
    assert digest(log, log.shape[0]) == r.summary()["transitions_sha256"]
