"""Backtest numbers that can fail: an independent PnL total, no verdict without fills, throttling said
out loud, and no in-sample scoring of a research model unless asked (then marked everywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mm_core.backtest.engine import BacktestConfig, run_backtest
from mm_core.backtest.event_arrays import from_simulator
from mm_core.backtest.pnl import identity_check
from mm_core.backtest.report import human_summary, notes, trust_summary, write_html
from mm_core.cli import main
from mm_core.strategy import load_strategy
from mm_core.strategy.requote import RequoteConfig
from mm_core.research.training_window import (TrainingWindow, market_source, overlap, simulator_source)

S = 1_000_000_000


@pytest.fixture(scope="module")
def market():
    return from_simulator(300.0, 11, updates_per_second=20.0, trades_per_second=3.0)


@pytest.fixture(scope="module")
def result(market):
    return run_backtest(market, BacktestConfig(strategy=load_strategy("baseline", {"half_spread_bps": 0.0}), rate_tier="off"))


def _corrupt(fills, key, k, delta):
    bad = {name: a.copy() for name, a in fills.items()}
    bad[key][k] += delta
    return bad


def test_the_pnl_is_also_computed_from_the_fills_and_a_corrupted_fill_fails_the_identity(result):
    r = result
    assert r.fills["qty"].size > 10
    chk = identity_check(r.pnl, r.fills, r.config.fees, r.position)
    assert chk.ok and abs(chk.gap) <= chk.tolerance < 1e-6
    assert chk.total_direct == pytest.approx(r.pnl.total, abs=1e-9)
    # one fill's price off by one tick (0.1): the fill log no longer matches the decomposition
    bad = _corrupt(r.fills, "price", 3, 0.1)
    chk = identity_check(r.pnl, bad, r.config.fees, r.position)
    assert not chk.ok
    q, s = r.fills["qty"][3], r.fills["side"][3]
    fee_change = r.config.fees.fees(np.array([0.1]), np.array([q]), np.array([True]))[0]
    assert chk.gap == pytest.approx(-s * q * 0.1 - fee_change, rel=1e-6)
    # one fill's quantity doubled: the fills' position disagrees with the engine's as well
    bad = _corrupt(r.fills, "qty", 5, r.fills["qty"][5])
    chk = identity_check(r.pnl, bad, r.config.fees, r.position)
    assert not chk.ok and abs(chk.position_gap) == pytest.approx(r.fills["qty"][5])
    # the outputs say so: --json keys, the human summary, the HTML report
    r.fills, good = bad, r.fills
    try:
        t = trust_summary(r)
        assert t["pnl_identity_ok"] is False and abs(t["pnl_identity_gap"]) > 1e-6
        assert t["total_pnl_direct"] != pytest.approx(r.pnl.total, abs=1e-9)
        assert "identity gap" in human_summary(r) and "FAILED" in human_summary(r)
        assert any("PnL identity FAILED" in n for n in notes(r))
    finally:
        r.fills = good


def test_zero_fills_is_nothing_to_judge_not_a_loss(market, tmp_path):
    # quotes 1,000 bps away never trade
    r = run_backtest(market, BacktestConfig(strategy=load_strategy("baseline", {"half_spread_bps": 1000.0}), rate_tier="off"))
    assert r.fills["qty"].size == 0 and r.pnl.total == 0.0
    text = human_summary(r)
    assert "no fills: nothing to judge" in text
    assert "LOSES" not in text and "EARNS" not in text
    html = write_html(r, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "no fills: nothing to judge" in html and "LOSES" not in html


def test_the_report_says_when_the_rate_guard_deferred_most_requotes(market):
    # a plain cancel-and-replace loop (starter tier, 100 ms requotes) churns quotes far faster than
    # Kraken's counter allows (the default requote deadband, 0.2 bps ~ 1.5 ticks, holds quotes in the
    # simulator's one-tick market: there it hardly requotes at all)
    r = run_backtest(market, BacktestConfig(strategy=load_strategy("baseline", {"half_spread_bps": 0.0}),
                                            requote=RequoteConfig.cancel_replace()))
    c = r.counters
    assert c["rate_guard_skips"] > c["orders_sent"] + c["cancels_sent"]
    assert any("most requotes were throttled" in n for n in notes(r))
    assert "most requotes were throttled" in human_summary(r)
    # with the counter off nothing is deferred and nothing is said
    assert not any("rate guard" in n for n in notes(run_backtest(market, BacktestConfig(rate_tier="off"))))


# ----------------------------------------------------------------------------- in-sample


def _window(source, lo_s=0, hi_s=600, t0=1_767_225_600 * S):
    return TrainingWindow(source, t0 + lo_s * S, t0 + hi_s * S)


def test_overlap_rules_for_simulator_and_recorded_data():
    t0 = 1_767_225_600 * S
    sim = lambda seed, pred=True: simulator_source(seed, predictive=pred, updates_per_second=10,  # noqa: E731
                                                   trades_per_second=1, seconds=600)
    w = _window(sim(3))
    assert overlap(w, sim(3), t0, t0 + 600 * S) is not None
    assert "profile differs" in overlap(w, sim(3, pred=False), t0, t0 + 60 * S)  # same seed, other profile
    assert overlap(w, sim(4), t0, t0 + 600 * S) is None  # another seed: independent data
    assert overlap(w, sim(3), t0 + 601 * S, t0 + 900 * S) is None  # later time
    cap = market_source("capture", "kraken", "BTC/EUR", Path("day1"))
    w = _window(cap)
    assert overlap(w, market_source("capture", "kraken", "BTC/EUR", Path("elsewhere")), t0 + 599 * S, t0 + 700 * S)
    assert overlap(w, market_source("capture", "kraken", "BTC/EUR"), t0 + 601 * S, t0 + 700 * S) is None
    assert overlap(w, market_source("capture", "kraken", "ETH/EUR"), t0, t0 + 600 * S) is None
    assert overlap(w, sim(3), t0, t0 + 600 * S) is None  # simulated vs recorded market data
    assert overlap(w, market_source("unknown", "kraken", "BTC-EUR"), t0, t0 + 600 * S) is not None


@pytest.fixture(scope="module")
def research_models(tmp_path_factory):
    """``mm research --sim-seconds 600 --seed 3``: the models of a short simulated run."""
    d = tmp_path_factory.mktemp("research")
    rc = main(["research", "--sim-seconds", "600", "--seed", "3", "--blocks", "3", "--out", str(d / "r.html"),
               "--json"])
    assert rc in (0, 1)
    return d / "r-models"


def top_1s(models: Path) -> Path:
    """The run's top 1 s model: "best" after a GO, "candidate" after a NO-GO (never called best)."""
    best = models / "fair_mid_best_1s.json"
    return best if best.exists() else models / "fair_mid_candidate_1s.json"


def test_research_model_files_carry_their_training_window(research_models):
    raw = json.loads(top_1s(research_models).read_text(encoding="utf-8"))
    t = raw["trained"]
    assert t["source"]["kind"] == "simulator" and t["source"]["seed"] == 3 and t["source"]["predictive"] is True
    assert t["source"]["seconds"] == 600.0
    assert 0 < t["to_ts"] - t["from_ts"] <= 600 * S


def test_backtest_refuses_the_data_a_research_model_was_trained_on(research_models, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cache"))
    model = str(top_1s(research_models))
    rc = main(["backtest", "--sim-seconds", "600", "--seed", "3", "--fair", model])
    err = capsys.readouterr().err
    assert rc == 2 and "in-sample" in err and "simulator seed 3" in err and "--allow-in-sample" in err
    # so does the sweep
    assert main(["sweep", "--sim-seconds", "600", "--seed", "3", "--fair", model, "--spreads", "0"]) == 2
    assert "in-sample" in capsys.readouterr().err
    # another seed is other data: it runs, and says it is not in-sample
    rc = main(["backtest", "--sim-seconds", "600", "--seed", "4", "--fair", model, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["in_sample"] is False


def test_allow_in_sample_marks_every_output(research_models, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cache"))
    model = str(top_1s(research_models))
    html = tmp_path / "bt.html"
    argv = ["backtest", "--sim-seconds", "600", "--seed", "3", "--fair", model, "--allow-in-sample"]
    assert main(argv + ["--json", "--html", str(html)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["in_sample"] is True and any(n.startswith("IN-SAMPLE") for n in out["notes"])
    assert "IN-SAMPLE" in html.read_text(encoding="utf-8")
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("IN-SAMPLE")


def test_a_model_file_without_a_training_window_is_refused_not_guessed(research_models, tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cache"))
    raw = json.loads((research_models / "fair_mid_microprice_1s.json").read_text(encoding="utf-8"))
    raw["trained"].pop("source")  # what older versions of mm research wrote
    old = tmp_path / "old.json"
    old.write_text(json.dumps(raw), encoding="utf-8")
    rc = main(["backtest", "--sim-seconds", "60", "--seed", "9", "--fair", str(old)])
    err = capsys.readouterr().err
    assert rc == 2 and "does not say which data it was trained on" in err
    rc = main(["backtest", "--sim-seconds", "60", "--seed", "9", "--fair", str(old), "--allow-in-sample", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["in_sample"] is True


def test_a_simulated_run_directory_is_known_as_its_seed(tmp_path, capsys, monkeypatch):
    """research --sim-out DIR writes sim.json; a backtest of that directory with a model of the same
    seed is in-sample, whichever way the data arrived."""
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = tmp_path / "simrun"
    rc = main(["research", "--sim-seconds", "600", "--seed", "5", "--blocks", "3", "--sim-out", str(run_dir),
               "--out", str(tmp_path / "r.html"), "--json"])
    assert rc in (0, 1)
    capsys.readouterr()
    model = tmp_path / "r-models" / "fair_mid_naive_1s.json"
    assert main(["backtest", str(run_dir), "--fair", str(model)]) == 2
    assert "simulator seed 5" in capsys.readouterr().err
    assert main(["backtest", "--sim-seconds", "300", "--seed", "5", "--fair", str(model)]) == 2
    capsys.readouterr()
    # a model file that is not there is bad input with a one-line message, not a traceback
    assert main(["backtest", str(run_dir), "--fair", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
