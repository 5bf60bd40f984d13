"""``mm fit-sim``: the fit recovers known parameters, and a profile fitted to the real recording
simulates a market within tolerance of it (the same tolerances the shipped profiles meet)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import V2_BOOK
from mm_core.cli import main as mm_main
from mm_core.simexchange.fit import fit_hawkes, fit_lognormal_mixture
from mm_core.simexchange.market import BookChange, MarketModel, MarketParams
from mm_core.simexchange.profiles import load_profile
from mm_core.simexchange.server import spawn_process


def test_hawkes_fit_recovers_the_simulators_own_arrival_parameters() -> None:
    truth = MarketParams(updates_per_second=20.0, burst_branching=(0.15, 0.55), burst_decay_per_s=(2000.0, 25.0),
                         spells_per_hour=0.0, deep_updates_per_second=0.0)
    m = MarketModel(3, params=truth)
    ts = np.array([ev.ts_ns for ev in m.events(1800) if type(ev) is BookChange], np.int64)
    rate, branching, decay = fit_hawkes((ts - ts[0]) / 1e9, np.zeros(ts.size, np.int64))
    assert rate == pytest.approx(20.0, rel=0.08)
    assert branching[0] == pytest.approx(0.15, abs=0.05) and branching[1] == pytest.approx(0.55, abs=0.08)
    assert decay[0] == pytest.approx(2000.0, rel=0.35) and decay[1] == pytest.approx(25.0, rel=0.35)


def test_lognormal_mixture_fit_recovers_both_components() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.normal(np.log(0.02), 1.5, 6000)), np.exp(rng.normal(np.log(5.0), 0.5, 4000))])
    sm, ss, lm, ls, w = fit_lognormal_mixture(x)
    assert sm == pytest.approx(0.02, rel=0.15) and ss == pytest.approx(1.5, rel=0.1)
    assert lm == pytest.approx(5.0, rel=0.1) and ls == pytest.approx(0.5, rel=0.15) and w == pytest.approx(0.4, abs=0.03)


def test_profile_fitted_to_the_real_recording_simulates_within_tolerance(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "kraken.toml"
    code = mm_main(["fit-sim", str(V2_BOOK), "--out", str(out), "--sim-seconds", "3600", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["pass"] and report["outside"] == [], report["outside"]
    assert sum(r["within"] is True for r in report["rows"]) == 23
    fitted = load_profile(out).params
    assert fitted.updates_per_second == pytest.approx(10.05, abs=0.01)
    assert fitted.burst_branching[0] == pytest.approx(0.083, abs=0.005)  # the same MLE as the default's
    assert fitted.start_price == pytest.approx(29430.2)  # the simulator starts where the capture was
    text = out.read_text()
    assert "fitted: Hawkes maximum likelihood" in text and "base profile (not estimated" in text


def test_a_capture_too_short_to_fit_is_refused_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mm_core.research.sim_data import write_sim_run

    write_sim_run(tmp_path / "run", 5, seed=1)
    assert mm_main(["fit-sim", str(tmp_path / "run"), "--out", str(tmp_path / "p.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mm fit-sim: ") and "need at least 200" in err and err.count("\n") == 1
    assert not (tmp_path / "p.toml").exists()


def test_mm_simexchange_fit_serves_the_fitted_market(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with spawn_process(["--fit", str(V2_BOOK), "--max-seconds", "30"], timeout_s=60) as sim:
        assert sim.url.startswith("ws://127.0.0.1:")
    assert load_profile(tmp_path / f"fitted-{V2_BOOK.stem}.toml").params.start_price == pytest.approx(29430.2)
