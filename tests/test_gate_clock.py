"""The gate's clock check: a skewed or unknown clock never PROCEEDs; negative ages are reported.

Runs are 20 s of synthetic samples judged with the demo's scaled duration/sample thresholds
(``scale_to_seconds``); latency and clock thresholds are never scaled.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mm_core.clock_skew import ClockRule, agreeing_interval, judge_clock
from mm_core.gate import FIX, PROCEED, evaluate_gate, main
from mm_core.latency import analyze_latency
from mm_core.latency import main as analyze_main
from test_gate import S, T0, clock_events, failed, make_run

N = 200  # 10 samples per second for 20 s


def run_with(tmp_path, ages_ms, offsets_ms, rtts_ms, name="run"):
    tc = T0 + np.arange(N, dtype=np.int64) * (S // 10)
    return make_run(tmp_path / name, tc, np.asarray(ages_ms, dtype=float),
                    clock=clock_events(int(tc[0]), offsets_ms, rtts_ms))


def lat40_seen_through_clock_30_ahead(n=N, seed=1):
    """True latency ~40 ms (lognormal) as stored when the exchange clock runs 30 ms ahead."""
    true = np.random.default_rng(seed).lognormal(np.log(40.0), 0.1, n)
    return np.round(true - 30.0, 3), true


def test_exchange_clock_30_ms_ahead_with_a_reliable_estimate_is_fix_and_rerun(tmp_path, cfg_default):
    raw, true = lat40_seen_through_clock_30_ahead()
    rd = run_with(tmp_path, raw, [30.0 + 0.2 * (i % 3) for i in range(12)], [4.0] * 12)
    r = evaluate_gate(rd, cfg_default, scale_to_seconds=20)
    assert r.decision == FIX
    clock = r.check("clock_offset")
    assert not clock.passed and "SKEWED" in clock.detail and clock.value == pytest.approx(30.2, abs=0.3)
    # the latency verdict is on the exchange clock: ~40 ms, above the 15 ms p50 bar
    p50 = r.check("p50_ms")
    assert p50.value == pytest.approx(np.percentile(true, 50), abs=0.5) and not p50.passed
    assert f"raw {np.percentile(raw, 50):.3f} ms" in p50.detail
    d = r.to_dict()["clock"]
    assert d["reliable"] and d["corrected_applied"] and d["within_bound"] is False
    assert d["raw"]["p50_ms"] == pytest.approx(np.percentile(raw, 50))
    assert d["corrected"]["p50_ms"] == pytest.approx(np.percentile(true, 50), abs=0.5)
    assert failed(r) == {"clock_offset", "p50_ms"}


def test_a_clock_within_bound_proceeds_and_is_judged_on_corrected_ages(tmp_path, cfg_default):
    ages = np.round(np.random.default_rng(2).lognormal(np.log(6.0), 0.3, N), 3)
    rd = run_with(tmp_path, ages, [2.0] * 8, [5.0] * 8)
    r = evaluate_gate(rd, cfg_default, scale_to_seconds=20)
    assert r.decision == PROCEED, [(c.name, c.detail) for c in r.failed]
    assert r.check("clock_offset").passed
    assert r.check("p50_ms").value == pytest.approx(np.percentile(ages, 50) + 2.0)


@pytest.mark.parametrize("offsets, rtts, why", [
    ([0.0] * 3, [5.0] * 3, "only 3 clock estimates"),
    ([0.0, 20.0] * 5, [4.0] * 10, "the estimates disagree"),
    ([10.0] * 10, [30.0] * 10, "round trips are too long relative to the offset"),
    ([], [], "no clock_estimate events"),  # the summary's median alone has no bounds
])
def test_an_unreliable_estimate_fails_the_clock_check(tmp_path, cfg_default, offsets, rtts, why):
    ages = np.full(N, 6.0)
    rd = run_with(tmp_path, ages, offsets, rtts)
    r = evaluate_gate(rd, cfg_default, scale_to_seconds=20)
    assert r.decision == FIX and failed(r) == {"clock_offset"}
    c = r.check("clock_offset")
    assert "NOT RELIABLE" in c.detail and why in c.detail
    # not reliable: the latency checks stay on raw ages
    assert r.check("p50_ms").value == pytest.approx(6.0) and not r.latency.clock.corrected_applied


def test_negative_ages_are_counted_reported_and_contradict_a_zero_offset(tmp_path, cfg_default, capsys):
    ages = np.full(N, 6.0)
    ages[::10] = -4.0  # 10 % of ages negative: the local clock is behind by at least 4 ms
    rd = run_with(tmp_path, ages, [0.0] * 10, [6.0] * 10)
    r = evaluate_gate(rd, cfg_default, scale_to_seconds=20)
    assert r.decision == FIX
    c = r.check("clock_offset")
    assert "data contradicts the estimate" in c.detail and "negative ages: 20 (10.000 %), min -4.000 ms" in c.detail
    neg = r.to_dict()["clock"]["negative_ages"]
    assert neg == {"count": 20, "share": pytest.approx(0.1), "min_ms": -4.0}
    # analyze reports the same, in its text and JSON
    assert analyze_main(["--file", str(rd), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["negative_ages"] == {"count": 20, "share": pytest.approx(0.1), "min_ms": -4.0}
    assert d["clock"]["reliable"] is False
    analyze_main(["--file", str(rd)])
    out = capsys.readouterr().out
    assert "negative ages: 20 (10.000 %), min age -4.000 ms" in out and "NOT RELIABLE" in out


def test_gate_text_names_the_clock_check(tmp_path, capsys):
    raw, _ = lat40_seen_through_clock_30_ahead()
    rd = run_with(tmp_path, raw, [30.0] * 10, [4.0] * 10)
    assert main([str(rd), "--scale-to-seconds", "20"]) == 1
    out = capsys.readouterr().out
    assert "clock_offset" in out and "FIX-AND-RERUN" in out and "ages on the exchange clock" in out


def test_the_clock_rule_is_in_the_config(tmp_path, cfg_default):
    """A looser bound in [gate] is applied (the bound is config, not code)."""
    from msgspec.structs import replace

    raw, _ = lat40_seen_through_clock_30_ahead()
    rd = run_with(tmp_path, raw, [30.0] * 10, [4.0] * 10)
    loose = replace(cfg_default, gate=replace(cfg_default.gate, clock_offset_max_ms=40.0))
    assert evaluate_gate(rd, loose, scale_to_seconds=20).check("clock_offset").passed


# --------------------------------------------------------------------------- the rule itself


def test_intervals_intersect_where_the_offset_provably_is():
    # two pings: offset in [9, 11] and [10, 14] -> [10, 11] (no slack)
    members, lo, hi = agreeing_interval([10.0, 12.0], [2.0, 4.0], slack_ms=0.0)
    assert members == [0, 1] and (lo, hi) == (10.0, 11.0)
    # an estimate that cannot overlap the others is left out
    members, lo, hi = agreeing_interval([0.0, 0.5, 50.0], [2.0, 2.0, 2.0], slack_ms=0.0)
    assert members == [0, 1] and (lo, hi) == (-0.5, 1.0)


def test_judge_clock_rules():
    rule = ClockRule(offset_max_ms=15.0, min_estimates=5, agreement_min_share=0.8)
    ok = judge_clock([1.0] * 5, [4.0] * 5, rule)
    assert ok.reliable and ok.within_bound and ok.offset_ms == 1.0
    skew = judge_clock([30.0] * 5, [4.0] * 5, rule)
    assert skew.reliable and skew.within_bound is False
    # symmetric noise around 30 with long round trips: the offset cannot be told from asymmetry
    wide = judge_clock([30.0, 25.0, 35.0, 30.0, 28.0], [80.0] * 5, rule)
    assert not wide.reliable and wide.within_bound is None and 25.0 <= wide.offset_ms <= 35.0


@pytest.fixture(scope="module")
def cfg_default():
    from mm_core.config import load_config

    return load_config()


def test_analyze_uses_the_same_rule(tmp_path):
    raw, true = lat40_seen_through_clock_30_ahead()
    rd = run_with(tmp_path, raw, [30.0] * 10, [4.0] * 10)
    rep = analyze_latency(rd)
    assert rep.clock.reliable and rep.clock.corrected_applied
    assert rep.clock.corrected.p50_ms == pytest.approx(np.percentile(true, 50), abs=0.5)
    assert rep.p50_ms == pytest.approx(np.percentile(raw, 50))  # raw stays the raw


def test_a_single_estimate_is_a_member_of_its_own_interval_whatever_the_rounding() -> None:
    """(o - r/2) - slack can round one ulp above o - (r/2 + slack): the estimate fell out of its own
    intersection and judging it raised 'no median for empty data' (seen as an intermittent gate error)."""
    from mm_core.clock_skew import agreeing_interval, judge_clock

    members, lo, hi = agreeing_interval([12.365596], [15.560349])
    assert members == [0] and lo < hi
    assert judge_clock([12.365596], [15.560349]).offset_ms is not None
