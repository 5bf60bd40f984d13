"""Stress suite on the offline simulator: vol shock, latency spike, stall, disconnect, checksum fault,
maintenance, manual kill. For each: every quote is pulled within one decision cycle of the data going
stale (most at once: the engine decides at the instant the data crosses the limit, between timer
ticks), no hard limit is breached, and quoting resumes after recovery.

"Stale" is recomputed here from the feed timeline (the confirmations and the invalid windows), not
read from the risk step, so a pipeline that failed to notice would fail these tests.
"""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.backtest.engine import BacktestConfig, run_backtest
from mm_core.backtest.event_arrays import from_simulator
from mm_core.backtest.feed_health import FeedFaults, stale_intervals
from mm_core.backtest.latency import ConstantLatency, SpellLatency, Stressed
from mm_core.backtest.stress import vol_shock
from mm_core.strategy import load_strategy, transitions
from mm_core.strategy.risk import RiskConfig

S = 1_000_000_000
AT = 240.0  # seconds into the data: after the realised vol has warmed up
REQUOTE_MS = 100.0


@pytest.fixture(scope="module")
def market():
    # the busy profile: its mid moves several times a second, like the markets the regimes are
    # tuned for (the default, quiet one changes its mid about once in 10 s)
    return from_simulator(600.0, 9, profile="busy")


def config(**kw):
    base = dict(strategy=load_strategy("baseline", {"half_spread_bps": 0.5}), latency=ConstantLatency(5, 5, 5),
                requote_ms=REQUOTE_MS, risk=RiskConfig(max_drawdown=1e6))
    base.update(kw)
    return BacktestConfig(**base)


def pull_delays_ms(r, extra_onsets=()) -> list[float]:
    """For every stale onset (and ``extra_onsets``, e.g. the market closing): how long after it each
    quote that was live then got its cancel sent."""
    st = stale_intervals(r.timeline, r.config.risk.max_staleness_ms, *r.span)
    o = r.orders
    acc, sub, canc, done = o["arrive_exch_ts"] >= 0, o["submit_local_ts"], o["cancel_sent_local_ts"], o["done_exch_ts"]
    out = []
    for s in [a for a, _ in st] + list(extra_onsets):
        live = acc & (sub < s) & ((done < 0) | (done > s))
        for k in np.nonzero(live)[0]:
            if canc[k] >= s:
                out.append((canc[k] - s) / 1e6)
            elif canc[k] >= 0:
                out.append(0.0)  # a cancel was already on its way
            else:
                out.append((done[k] - s) / 1e6 if done[k] >= 0 else float("inf"))
    return out


def resumed(r, after_s: float) -> bool:
    """Quotes are live again ``after_s`` into the run (re-placed after the fault and kept, amended
    or replaced since: in a market that moves little a re-placed quote may simply stay)."""
    o = r.orders
    t = r.span[0] + int(after_s * S)
    live = (o["arrive_exch_ts"] >= 0) & (o["arrive_exch_ts"] <= t) & ((o["done_exch_ts"] < 0) | (o["done_exch_ts"] > t))
    return bool(live.any())


SCENARIOS = {
    "stall": dict(faults=FeedFaults(stalls=((AT, 5.0),))),
    "disconnect": dict(faults=FeedFaults(disconnects=((AT, 5.0),))),
    "checksum": dict(faults=FeedFaults(checksum_faults=((AT, 500.0),))),
    "maintenance": dict(faults=FeedFaults(maintenance=((AT, 30.0),))),
    "latency_spike": dict(latency=Stressed(ConstantLatency(5, 5, 5), spikes=((AT, 10.0, 3000.0),))),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_quotes_are_pulled_within_one_cycle_no_limit_breached_and_quoting_resumes(market, name):
    r = run_backtest(market, config(**SCENARIOS[name]))
    g = r.summary()
    stale = stale_intervals(r.timeline, r.config.risk.max_staleness_ms, *r.span)
    assert stale, "the fault must make the data stale, or this test proves nothing"
    # maintenance closes the market before the feed goes stale: the pull comes at the status change
    closed = [r.span[0] + int(AT * S)] if name == "maintenance" else []
    delays = pull_delays_ms(r, closed)
    assert delays, "quotes were live when the data went stale (or the market closed)"
    assert max(delays) <= REQUOTE_MS
    assert g["risk_breaches"] == 0, g["telemetry"]["risk_breaches_by_kind"]
    assert g["regime_flaps"] == 0
    assert g["counters"]["risk_pulls"] > 0
    assert resumed(r, AT + 60.0)
    # a pull travels to the exchange in the entry latency (5 ms; 3 s more inside the spike): quotes
    # rest stale only for the pull's delay plus that
    entry_ms = 5.0 + (3000.0 if name == "latency_spike" else 0.0)
    assert g["quotes_while_stale_ms"] <= sum(d + entry_ms for d in delays) + 1e-6


def test_stall_is_noticed_between_timer_ticks(market):
    """The staleness deadline: the engine decides at the instant the data crosses the limit."""
    r = run_backtest(market, config(**SCENARIOS["stall"]))
    assert r.counters["deadline_decisions"] >= 1
    assert max(pull_delays_ms(r)) < 1.0  # not up to 100 ms later at the next tick


def test_disconnect_and_checksum_failure_count_towards_their_kill_switches(market):
    faults = FeedFaults(disconnects=((200.0, 2.0), (260.0, 2.0), (320.0, 2.0)))
    r = run_backtest(market, config(faults=faults))
    g = r.summary()
    assert g["kill_switch_events"] == 1  # 3 disconnects within 300 s
    assert g["telemetry"]["risk_triggers"].get("repeated_disconnects") == 1
    assert g["risk_breaches"] == 0
    halted_at = r.span[0] + int(320 * S)
    late = r.orders["submit_local_ts"] > halted_at  # resume is manual by default: nothing after
    assert not late.any()


def test_vol_shock_moves_the_volatility_regime_and_keeps_every_limit(market):
    # the simulator's busy BTC moves ~0.02 bp/sqrt(s) (real BTC: 0.5-2): x300 for a minute reaches "high"
    shocked = vol_shock(market, [(AT, 60.0, 300.0)])
    assert not np.any(shocked.best_bid_tick >= shocked.best_ask_tick)  # the shocked book never crosses
    r = run_backtest(shocked, config())
    g = r.summary()
    vol = [x for x in transitions.records(r.log, r.log.shape[0]) if x["kind"] == "volatility"]
    assert ("normal", "high") in [(x["from"], x["to"]) for x in vol]
    assert ("high", "normal") in [(x["from"], x["to"]) for x in vol]  # and back once it is over
    assert g["risk_breaches"] == 0 and g["regime_flaps"] == 0
    assert resumed(r, AT + 90.0)


def test_vol_shock_moves_the_whole_book(market):
    """Bug: only rows inside the window were mapped; levels set before it kept their old prices, and
    the first mapped level that moved past them crossed the book for the rest of the run."""
    shocked = vol_shock(market, [(AT, 60.0, 8.0)])
    assert not np.any(shocked.best_bid_tick >= shocked.best_ask_tick)
    a = np.searchsorted(shocked.exch_ts, shocked.exch_ts[0] + int((AT + 1) * S))
    spread = shocked.best_ask_tick[a] - shocked.best_bid_tick[a]
    base = market.best_ask_tick[np.searchsorted(market.exch_ts, shocked.exch_ts[a]) - 1] - \
        market.best_bid_tick[np.searchsorted(market.exch_ts, shocked.exch_ts[a]) - 1]
    assert spread >= 4 * base  # the spread is stretched with the book


def test_manual_kill_pulls_everything_within_one_cycle(market):
    r = run_backtest(market, config(faults=FeedFaults(kill_at=(300.0,))))
    g = r.summary()
    t_kill = r.span[0] + 300 * S
    assert g["kill_switch_events"] == 1
    o = r.orders
    live = (o["arrive_exch_ts"] >= 0) & (o["submit_local_ts"] < t_kill) & ((o["done_exch_ts"] < 0) |
                                                                          (o["done_exch_ts"] > t_kill))
    assert live.any()
    assert (o["cancel_sent_local_ts"][live] <= t_kill + REQUOTE_MS * 1e6).all()
    assert not (o["submit_local_ts"] > t_kill).any()


def test_the_same_stream_twice_gives_bit_identical_transitions():
    m = from_simulator(3600.0, 4)
    cfg = config(latency=SpellLatency(8.0, seed=4))
    a, b = run_backtest(m, cfg).summary(), run_backtest(m, cfg).summary()
    assert a["transitions_sha256"] == b["transitions_sha256"]
    # an hour of the simulator has real transitions to be deterministic about
    assert a["regime_transitions"]["latency"] > 0 and a["regime_transitions"]["volatility"] > 0
    assert a["regime_flaps"] == 0 and a["risk_breaches"] == 0
    other = run_backtest(m, config(latency=SpellLatency(8.0, seed=5))).summary()
    assert other["transitions_sha256"] != a["transitions_sha256"]  # the digest does see the stream
