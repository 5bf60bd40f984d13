"""`mm calibrate`: A and kappa recovered from trades drawn from a known law, honest standard errors,
sigma from realised vol, clear refusals, and a file the strategies read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mm_core.cli import main
from mm_core.research.book_frames import BookFrames
from mm_core.strategy import avellaneda_stoikov as AS
from mm_core.strategy import glft as GL
from mm_core.strategy.calibrate import (CalibrationError, fit_intensity, load_calibration, market_orders,
                                        realised_sigma)

from conftest import V1_BOOK

LATTICE = 0.05  # half a 0.1 tick


def synthetic_depths(A: float, kappa: float, hours: float, seed: int, d0: float = LATTICE) -> np.ndarray:
    """Market-order depths of a Poisson flow with lambda(delta) = A exp(-kappa delta), delta >= d0, on the lattice.

    Depths beyond d0 are exponential; flooring them to the lattice keeps P(depth >= d0 + k h) =
    exp(-kappa k h) exact at the lattice points the fit uses."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(A * math.exp(-kappa * d0) * hours * 3600)
    d = d0 + rng.exponential(1.0 / kappa, n)
    return d0 + np.floor((d - d0) / LATTICE) * LATTICE


def test_known_law_is_recovered_within_tolerance() -> None:
    A, kappa = 2.0, 8.0
    fit = fit_intensity(synthetic_depths(A, kappa, 6.0, seed=1), 6 * 3600, LATTICE)
    # ~29,000 orders: stated tolerance 5 % on each, and within 4 bootstrap standard errors
    assert fit.kappa == pytest.approx(kappa, rel=0.05) and abs(fit.kappa - kappa) < 4 * fit.se_kappa
    assert fit.A == pytest.approx(A, rel=0.05) and abs(fit.A - A) < 4 * fit.se_A
    assert fit.r2 > 0.99
    # depths reached by >= 1 % of the orders: up to d0 + ln(100)/kappa = 0.63 -> lattice points 0.05 .. 0.6
    assert fit.n_orders > 25_000 and fit.n_buckets == 12
    assert fit.delta_min == pytest.approx(LATTICE) and fit.delta_max == pytest.approx(0.6)


def test_standard_errors_match_the_spread_of_repeated_fits() -> None:
    A, kappa = 1.0, 6.0
    fits = [fit_intensity(synthetic_depths(A, kappa, 1.0, seed=s), 3600, LATTICE, n_boot=200) for s in range(40)]
    sd_kappa = float(np.std([f.kappa for f in fits], ddof=1))
    se_kappa = float(np.mean([f.se_kappa for f in fits]))
    sd_loga = float(np.std([math.log(f.A) for f in fits], ddof=1))
    se_loga = float(np.mean([f.se_log_A for f in fits]))
    assert 0.6 < se_kappa / sd_kappa < 1.6  # the reported uncertainty is the real one (not understated)
    assert 0.6 < se_loga / sd_loga < 1.6
    assert abs(np.mean([f.kappa for f in fits]) - kappa) < 3 * sd_kappa / math.sqrt(len(fits))  # unbiased


def test_too_few_orders_is_a_clear_refusal() -> None:
    with pytest.raises(CalibrationError, match=r"only 150 market orders.*at least 200"):
        fit_intensity(np.full(150, 0.05), 3600, LATTICE)
    with pytest.raises(CalibrationError, match="distinct depth"):
        fit_intensity(np.full(500, 0.05), 3600, LATTICE)  # every order at the touch: no slope to fit


def test_market_orders_group_a_sweep_and_take_the_mid_before_it() -> None:
    book_ts = np.array([100, 200, 300], np.int64)
    mid = np.array([50.0, 50.05, 51.0])
    # a buy sweep at t=200 printing 50.1, 50.2, 50.3 (3 prints, one order), then a sell at t=250 and a
    # buy at 300 printing below the mid it met (the book moved under it)
    trade_ts = np.array([200, 200, 200, 250, 300], np.int64)
    price = np.array([50.1, 50.2, 50.3, 49.9, 50.0])
    sign = np.array([1, 1, 1, -1, 1], np.int8)
    ts, depth, inside = market_orders(book_ts, mid, trade_ts, price, sign)
    assert ts.tolist() == [200, 250]
    assert depth == pytest.approx([0.3, 0.15])  # deepest print vs the mid *before* t=200 (50.0); 50.05 - 49.9
    assert inside == 1


def _walk_frames(sigma_bp: float, seconds: int, seed: int, dt_s: float = 0.1) -> BookFrames:
    rng = np.random.default_rng(seed)
    n = int(seconds / dt_s)
    mid = 1000.0 * np.exp(np.cumsum(rng.normal(0.0, sigma_bp * 1e-4 * math.sqrt(dt_s), n)))
    ts = (1_767_225_600_000_000_000 + np.arange(n) * int(dt_s * 1e9)).astype(np.int64)
    z = np.zeros(0)
    return BookFrames(exchange="x", symbol="X/Y", tick_size=1e-9, ts=ts, ts_raw=ts, bid=mid - 1e-6, ask=mid + 1e-6,
                      bid_qty=np.ones((n, 1)), ask_qty=np.ones((n, 1)), n_bid_levels=np.ones(n, np.int64),
                      n_ask_levels=np.ones(n, np.int64), verified=np.ones(n, bool), snapshot=np.zeros(n, bool),
                      trade_ts=z.astype(np.int64), trade_ts_raw=z.astype(np.int64), trade_price=z, trade_qty=z,
                      trade_sign=z.astype(np.int8))


def test_sigma_of_a_known_random_walk() -> None:
    est = realised_sigma(_walk_frames(0.8, 4 * 3600, seed=3), window_s=30.0)
    assert est.sigma_bp == pytest.approx(0.8, rel=0.03)  # 480 windows of 300 returns each
    assert est.sigma == pytest.approx(0.8e-4 * est.mid_mean, rel=0.03)
    assert est.n_windows >= 470 and est.sigma_bp_p10 < est.sigma_bp_p50 < est.sigma_bp_p90


def test_calibrate_on_the_simulator_writes_a_file_the_strategies_read(tmp_path: Path, capsys) -> None:
    out = tmp_path / "params.json"
    assert main(["calibrate", "--sim-seconds", "900", "--seed", "2", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    cal = load_calibration(out)
    assert printed["A"] == cal["A"]
    for key in ("A", "kappa", "sigma"):
        assert cal[key] > 0 and key in cal["units"]
    fit = cal["fit"]
    for key in ("r2", "n_orders", "n_buckets", "delta_min", "delta_max", "se_A", "se_kappa", "se_log_A"):
        assert key in fit
    assert fit["n_buckets"] >= 3 and 0 <= fit["r2"] <= 1
    assert cal["window"]["seconds"] == pytest.approx(900, abs=5)
    assert cal["volatility"]["window_s"] == 30.0
    g = GL.Params.from_config({}, calibration=cal)
    a = AS.Params.from_config({}, calibration=cal)
    assert (g.A, g.kappa, g.sigma) == (cal["A"], cal["kappa"], cal["sigma"]) and a.kappa == cal["kappa"]
    assert np.all(np.isfinite(g.vector())) and np.all(np.isfinite(a.vector()))


def test_calibrate_refuses_too_little_data(tmp_path: Path, capsys) -> None:
    assert main(["calibrate", "--sim-seconds", "20", "--out", str(tmp_path / "p.json")]) == 2
    err = capsys.readouterr().err
    assert "trades" in err and "at least 200" in err and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()


def test_calibrate_on_a_real_book_recording_without_trades_says_so(tmp_path: Path, capsys, shared_data) -> None:
    assert main(["calibrate", "--recording", str(V1_BOOK), "--out", str(tmp_path / "p.json")]) == 2
    assert "only 0 trades" in capsys.readouterr().err


def test_calibrate_argument_errors(tmp_path: Path, capsys) -> None:
    assert main(["calibrate", "--out", str(tmp_path / "p.json")]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "missing-run")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_a_broken_calibration_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "p.json"
    with pytest.raises(ValueError, match="not found.*mm calibrate"):
        load_calibration(p)
    p.write_text(json.dumps({"A": 1.0, "kappa": -2.0, "sigma": 1.0}), encoding="utf-8")
    with pytest.raises(ValueError, match="'kappa' missing or not a positive number"):
        load_calibration(p)
