"""The evaluation finds edge where the simulator put it, and none where it did not.

Ground truth: the simulator's market model makes L1 imbalance predict the direction of the next mid
move when ``predictive=True`` and nothing predicts it when ``predictive=False``. The model imitates a
quiet real Kraken book (the mid changes about once in 10 s, a few best-price jumps are much larger
than the rest), so in six simulated hours (~216k grid rows, ~2,500 mid changes) the planted edge
shows as a fitted linear model beating the naive mid out of sample (DM p < 0.01, calibrated) at 1 s
and 5 s, and as a direction hit rate far above a coin for the micro-price too; the micro-price's
*squared-error* gain is not significant there: it prices the long-run effect of the imbalance, most
of which has not happened one second later in such a market. With ``predictive=False`` no model
improves significantly. Also: the Diebold-Mariano test keeps its size on overlapping horizons (HAC
variance), where an i.i.d. variance rejects a true null far too often.
"""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.research.book_frames import columns_from_parquet
from mm_core.research.evaluation import diebold_mariano, hac_lag, norm_sf
from mm_core.research.sim_data import SIM_TICK_SIZE, sim_columns, write_sim_run
from mm_core.research.study import StudyResult, run_study

HOURS = 6
PREDICTIVE_SEED = 1
NULL_SEED = 3


@pytest.fixture(scope="module")
def predictive() -> StudyResult:
    return run_study(sim_columns(HOURS * 3600, PREDICTIVE_SEED, True), tick_size=SIM_TICK_SIZE)


@pytest.fixture(scope="module")
def no_edge() -> StudyResult:
    return run_study(sim_columns(HOURS * 3600, NULL_SEED, False), tick_size=SIM_TICK_SIZE)


@pytest.mark.parametrize("horizon", [1.0, 5.0])
def test_predictive_sim_fitted_model_beats_naive_mid_significantly(predictive: StudyResult, horizon: float) -> None:
    assert predictive.qa.passed
    s = predictive.evaluation.score("linear", horizon)
    assert s.dm_p < 0.01 and s.mse_gain_pct > 0
    assert s.hit_rate > 0.53 and s.hit_p < 0.01
    assert s.calib_slope > 0  # predictions point the right way on average


@pytest.mark.parametrize("horizon", [1.0, 5.0])
def test_predictive_sim_microprice_calls_the_direction(predictive: StudyResult, horizon: float) -> None:
    s = predictive.evaluation.score("microprice", horizon)
    assert s.hit_rate > 0.55 and s.hit_p < 1e-6
    assert s.calib_slope > 0


def test_predictive_sim_verdict_is_go(predictive: StudyResult) -> None:
    assert predictive.verdict.go, predictive.verdict.reasons
    lo, hi = predictive.config.calib_slope_range
    for h, name in predictive.verdict.best.items():
        assert lo <= predictive.evaluation.score(name, h).calib_slope <= hi


@pytest.mark.parametrize("horizon", [1.0, 5.0])
def test_predictive_sim_fitted_linear_model_is_calibrated(predictive: StudyResult, horizon: float) -> None:
    lo, hi = predictive.config.calib_slope_range
    assert lo <= predictive.evaluation.score("linear", horizon).calib_slope <= hi


@pytest.mark.parametrize("horizon", [1.0, 5.0])
@pytest.mark.parametrize("model", ["microprice", "linear", "weighted_mid"])
def test_no_edge_sim_shows_no_significant_improvement(no_edge: StudyResult, model: str, horizon: float) -> None:
    assert no_edge.qa.passed
    s = no_edge.evaluation.score(model, horizon)
    assert s.dm_p > 0.05
    assert s.mse_gain_pct < 0.5


def test_no_edge_sim_verdict_is_no_go_with_the_reason(no_edge: StudyResult) -> None:
    assert not no_edge.verdict.go
    assert any("no significant improvement" in r for r in no_edge.verdict.reasons)


def test_no_edge_microprice_is_nearly_flat(no_edge: StudyResult, predictive: StudyResult) -> None:
    flat = no_edge.models[1.0]["microprice"].table.adjustment_ticks  # type: ignore[attr-defined]
    sloped = predictive.models[1.0]["microprice"].table.adjustment_ticks  # type: ignore[attr-defined]
    assert np.abs(flat[0]).max() < 0.25 * np.abs(sloped[0]).max()
    assert sloped[0, -1] > 0 > sloped[0, 0]  # more bid size -> the mid goes up


def _ar1(e: np.ndarray, phi: float) -> np.ndarray:
    """AR(1) along axis 1 of the shocks ``e`` (all replications at once), unit variance."""
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, e.shape[1]):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x / x.std(axis=1, keepdims=True)


def test_diebold_mariano_keeps_its_size_on_overlapping_horizons() -> None:
    n, h, reps = 20_000, 50, 60
    rng = np.random.default_rng(0)
    fa = 0.5 * _ar1(rng.standard_normal((reps, n)), 0.98)  # two equally useless, persistent forecasts
    fb = 0.5 * _ar1(rng.standard_normal((reps, n)), 0.98)
    hac = iid = 0
    for r in range(reps):
        c = np.concatenate(([0.0], np.cumsum(rng.standard_normal(n + h))))
        real = c[h:h + n] - c[:n]  # overlapping 50-step moves
        a, b = fa[r], fb[r]
        hac += diebold_mariano(a - real, b - real, hac_lag(n, h))[1] < 0.05
        d = (b - real) ** 2 - (a - real) ** 2
        iid += norm_sf(d.mean() / np.sqrt(d.var() / n)) < 0.05
    assert hac / reps <= 0.12  # nominal 5 %
    assert iid / reps >= 0.25  # what ignoring the overlap would do


def test_simulator_day_goes_straight_to_a_run_directory(tmp_path) -> None:
    s = write_sim_run(tmp_path / "run", 300, seed=4, predictive=False)
    files = sorted(p.name for p in (tmp_path / "run" / "parquet").rglob("*.parquet"))
    assert files == ["book-00-0000.parquet", "top_of_book-00-0000.parquet", "trade-00-0000.parquet"]
    cols = columns_from_parquet(tmp_path / "run")
    mem = sim_columns(300, seed=4, predictive=False)
    assert cols.symbol == "BTC/EUR" and cols.exchange == "kraken" and s["events"] > 3000
    assert np.array_equal(cols.book_ts, mem.book_ts) and np.array_equal(cols.level_price, mem.level_price)
    assert np.array_equal(cols.level_qty, mem.level_qty) and np.array_equal(cols.trade_ts, mem.trade_ts)
