"""A fair-mid model saved by ``mm research`` drives the backtest unchanged (one model file, both phases)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mm_core.backtest.event_arrays import from_simulator
from mm_core.backtest.fair import NaiveMid, ResearchFairMid, fair_model, market_columns
from mm_core.research.book_frames import columns_from_events, reconstruct
from mm_core.research.fair_value import save_model
from mm_core.research.features import event_features
from mm_core.research.sim_data import sim_events
from mm_core.research.study import StudyConfig, run_study

SECONDS, SEED = 1800, 4


@pytest.fixture(scope="module")
def market():
    return from_simulator(SECONDS, SEED, predictive=True)


@pytest.fixture(scope="module")
def study():
    cols = columns_from_events(sim_events(SECONDS, SEED, True))
    return run_study(cols, StudyConfig(n_blocks=3), tick_size=0.1)


def test_research_naive_model_gives_the_backtest_naive_mid(tmp_path: Path, market, study) -> None:
    path = save_model(study.models[1.0]["naive"], tmp_path / "naive.json")
    fm = fair_model(str(path))
    assert isinstance(fm, ResearchFairMid)
    ours, ref = fm.series(market), NaiveMid().series(market)
    # a Kraken message is atomic: compare where the engine's row-by-row book has applied all of it
    ends = np.r_[np.flatnonzero(np.diff(market.msg) != 0), len(market) - 1]
    ok = np.isfinite(ref[ends])
    assert ok.sum() > 0.99 * ends.size
    np.testing.assert_allclose(ours[ends][ok], ref[ends][ok], rtol=0, atol=1e-9)


def test_research_microprice_model_is_evaluated_on_research_features(tmp_path: Path, market, study) -> None:
    model = study.models[1.0]["microprice"]
    fm = fair_model(str(save_model(model, tmp_path / "micro.json")))
    series = fm.series(market)
    cols, ordinal = market_columns(market)
    expected = np.asarray(model.predict(event_features(reconstruct(cols, tick_size=0.1))))
    rows = np.flatnonzero(ordinal >= 0)
    got, want = series[rows], expected[ordinal[rows]]
    both = np.isfinite(want)
    np.testing.assert_allclose(got[both], want[both], atol=1e-9)
    # the micro-price is not the mid: it moves with imbalance on this predictive market
    mid = NaiveMid().series(market)
    assert np.nanmax(np.abs(series - mid)) > 0.01


def test_market_columns_rebuild_the_same_top_of_book_as_the_engine_pass(market) -> None:
    cols, ordinal = market_columns(market)
    fr = reconstruct(cols, tick_size=0.1)
    rows = np.flatnonzero(ordinal >= 0)
    last_row_of_msg = np.r_[np.flatnonzero(np.diff(ordinal[rows]) != 0), rows.size - 1]
    idx = rows[last_row_of_msg]
    bid = market.best_bid_tick[idx] * 0.1
    ok = np.isfinite(fr.bid[ordinal[idx]])
    np.testing.assert_allclose(fr.bid[ordinal[idx]][ok], bid[ok], atol=1e-6)


def test_unknown_model_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text('{"model": "nope"}')
    with pytest.raises(ValueError, match="saved by mm research"):
        fair_model(str(p))
