"""Each small model alone: rate counter costs, fee tiers, latency lanes, queue model names.

The queue models themselves are tested through the engine (tests/test_backtest_queue_engine.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.backtest import queue as qm
from mm_core.adapters import RateCounterSpec, rate_counter, venue_rules
from mm_core.backtest.fees import FeeTier, TradingValueFee, fee_model_from_spec, venue_schedule
from mm_core.config import load_config
from mm_core.backtest.latency import (CaptureLatency, ConstantLatency, LognormalLatency, Stressed,
                                      local_timestamps)
from mm_core.backtest.rate_limit import amend_cost, cancel_cost, cost_vector, decayed, new_cost

S = 1_000_000_000


def test_unknown_queue_model_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="risk_averse"):
        qm.queue_kind("fifo")


KRAKEN = venue_rules("kraken")


def test_kraken_rate_counter_costs_and_decay():
    c = cost_vector(rate_counter(KRAKEN, "starter"))
    assert [cancel_cost(int(s * S), c, 0) for s in (0, 4.9, 5, 9.9, 10, 14.9, 15, 44, 45, 89, 90, 299, 300)] == \
        [8, 8, 6, 6, 5, 5, 4, 4, 2, 2, 1, 1, 0]
    assert [amend_cost(int(s * S), c, 0) for s in (0, 4.9, 5, 9.9, 10, 14.9, 15, 300)] == [4, 4, 3, 3, 2, 2, 1, 1]
    assert new_cost(c, 0) == 1.0
    assert decayed(10.0, 0, 4 * S, 1.0) == pytest.approx(6.0)
    assert decayed(1.0, 0, 4 * S, 1.0) == 0.0
    tiers = KRAKEN.rate_tiers
    assert (tiers["starter"].threshold, tiers["intermediate"].decay_per_s, tiers["pro"].threshold) == (60, 2.34, 180)
    assert rate_counter(KRAKEN, "off").threshold == float("inf")
    with pytest.raises(ValueError, match="starter"):
        rate_counter(KRAKEN, "gold")


def test_rate_counter_costs_come_from_the_venue_spec_at_any_offset():
    spec = RateCounterSpec("x", 10.0, 0.5, new_cost=2.0, cancel_costs=((1.0, 3.0),), cancel_after=0.5,
                           amend_costs=(), amend_after=0.25)
    c = np.concatenate([np.full(7, -1.0), cost_vector(spec)])
    assert (new_cost(c, 7), cancel_cost(0, c, 7), cancel_cost(2 * S, c, 7), amend_cost(0, c, 7)) == (2.0, 3.0, 0.5, 0.25)
    with pytest.raises(ValueError, match="ascend"):
        cost_vector(RateCounterSpec("y", 1.0, 1.0, cancel_costs=((2.0, 1.0), (1.0, 2.0))))


def test_fee_tiers_by_30_day_volume_and_rebates(tmp_path):
    p, q, mk = np.array([100.0, 100.0]), np.array([1.0, 1.0]), np.array([True, False])
    assert list(venue_schedule(KRAKEN, 0).fees(p, q, mk)) == pytest.approx([0.25, 0.40])
    assert list(venue_schedule(KRAKEN, 15_000).fees(p, q, mk)) == pytest.approx([0.20, 0.35])
    assert list(venue_schedule(KRAKEN, 12_000_000).fees(p, q, mk)) == pytest.approx([0.0, 0.10])
    assert KRAKEN.fee_tiers == ()  # one schedule: the shipped config's, no copy in the venue
    t0 = load_config().fees.tiers[0]
    assert venue_schedule(KRAKEN, 0).tier == FeeTier(t0.volume_usd, t0.maker, t0.taker)
    assert fee_model_from_spec("kraken").name == fee_model_from_spec("venue", venue=KRAKEN).name == "kraken_tiered"
    toml = tmp_path / "fees.toml"
    toml.write_text("[[fees.tiers]]\nmin_volume = 0\nmaker = 0.23\ntaker = 0.40\n"
                    "[[fees.tiers]]\nmin_volume = 10000000\nmaker = -0.02\ntaker = 0.10\n")
    rebate = fee_model_from_spec(f"kraken:{toml}", volume_30d=20_000_000)
    assert rebate.fees(p, q, mk)[0] == pytest.approx(-0.02)  # negative = rebate received
    assert TradingValueFee(0.001, 0.002).fees(p, q, mk)[1] == pytest.approx(0.2)


def test_latency_lanes(tmp_path):
    ts = np.array([0, 0, 5, 7, 7], np.int64) * 1_000_000 + 10 * S
    msg = np.array([0, 0, 1, 2, 2])
    loc = local_timestamps(ts, msg, ConstantLatency(3.0, 1.0, 1.0))
    assert list(loc - ts) == [3_000_000] * 5
    # lognormal: seeded, in order, rows of one message together
    a = local_timestamps(ts, msg, LognormalLatency(seed=3))
    assert np.array_equal(a, local_timestamps(ts, msg, LognormalLatency(seed=3)))
    assert np.all(np.diff(a) >= 0) and a[0] == a[1] and a[3] == a[4]
    # measured ages from a capture CSV, replayed in time order
    csv = tmp_path / "run.csv"
    csv.write_text("exchange,symbol,ts_exchange,ts_capture,age_ms,bid,bid_qty,ask,ask_qty\n"
                   f"kraken,BTC/EUR,0,{1 * S},10,1,1,2,1\n"
                   f"kraken,BTC/EUR,0,{2 * S},50,1,1,2,1\n")
    cap = CaptureLatency.from_csv(csv)
    d = cap.feed_delays(np.array([0, S // 2, S, S + 1], np.int64))
    assert list(d) == [10_000_000, 10_000_000, 50_000_000, 10_000_000]  # past the capture: it repeats
    tab = cap.order_table(100 * S, 103 * S)
    assert tab.ts[0] == 100 * S and tab.entry[0] == 10_000_000 and tab.entry[1] == 50_000_000
    # stress: x2 and a spike window
    st = Stressed(ConstantLatency(5.0, 5.0, 5.0), factor=2.0, spikes=((1.0, 1.0, 100.0),))
    t = st.order_table(0, 10 * S)
    assert list(t.entry) == [10_000_000, 110_000_000, 10_000_000]
    assert list(st.feed_delays(np.array([0, int(1.5 * S)], np.int64))) == [10_000_000, 110_000_000]


def test_fee_tier_follows_the_runs_own_volume_across_a_boundary():
    from mm_core.backtest.fees import FeeTier, TieredFee

    tiers = (FeeTier(0, 0.25, 0.40), FeeTier(10_000, 0.20, 0.35))
    p, q = np.full(4, 50_000.0), np.full(4, 0.1)  # 5,000 of value per fill
    mk = np.array([True, True, True, False])
    day = 86_400 * S
    ts = np.array([1, 2, 3, day + 1], np.int64)
    # static: every fill at the starting tier
    assert list(TieredFee(tiers).fees(p, q, mk)) == pytest.approx([12.5, 12.5, 12.5, 20.0])
    # per fill: 0 and 5,000 before -> 0.25 %; 10,000 and 15,000 before -> 0.20 % maker, 0.35 % taker
    assert list(TieredFee(tiers, growth="fill").fees(p, q, mk)) == pytest.approx([12.5, 12.5, 10.0, 17.5])
    # daily: day 0 keeps the tier it started with; day 1 starts from 15,000 -> the next tier
    assert list(TieredFee(tiers, growth="daily").fees(p, q, mk, ts=ts)) == pytest.approx([12.5, 12.5, 12.5, 17.5])
    # starting volume and USD conversion count too: 2 USD per quote unit -> 10,000 USD after one fill
    assert list(TieredFee(tiers, growth="fill", quote_usd=2.0).fees(p, q, mk)) == pytest.approx([12.5, 10, 10, 17.5])
    assert list(TieredFee(tiers, volume_30d=9_000, growth="fill").fees(p, q, mk))[:2] == pytest.approx([12.5, 10.0])
    with pytest.raises(ValueError, match="daily"):
        TieredFee(tiers, growth="weekly")


def test_capture_latency_refuses_negative_ages_instead_of_clamping_them(tmp_path):
    """A negative age is a clock signal: it is counted and reported, never replaced by 0."""
    csv = tmp_path / "skewed.csv"
    csv.write_text("exchange,symbol,ts_exchange,ts_capture,age_ms,bid,bid_qty,ask,ask_qty\n"
                   f"kraken,BTC/EUR,0,{1 * S},10,1,1,2,1\n"
                   f"kraken,BTC/EUR,0,{2 * S},-4.5,1,1,2,1\n"
                   f"kraken,BTC/EUR,0,{3 * S},-0.25,1,1,2,1\n")
    with pytest.raises(ValueError, match=r"2 of 3 ages \(66.67 %\) are negative, min -4.500 ms"):
        CaptureLatency.from_csv(csv)
