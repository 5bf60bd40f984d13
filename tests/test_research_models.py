"""Fair-mid model files: every kind survives save/load with identical predictions, per event and
vectorised, and a broken file is refused with a message naming it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mm_core.research import load_model, save_model
from mm_core.research.book_frames import reconstruct
from mm_core.research.evaluation import build_models
from mm_core.research.features import event_features, grid_features
from mm_core.research.sim_data import SIM_TICK_SIZE, sim_columns


@pytest.fixture(scope="module")
def fitted():
    fr = reconstruct(sim_columns(1800, seed=2, predictive=True), tick_size=SIM_TICK_SIZE)
    ev, grid = event_features(fr), grid_features(fr)
    models = build_models(grid, ev, fr.tick_size, 1.0, 100, int(grid["ts"][-1]) + 1, exchange=fr.exchange,
                          symbol=fr.symbol)
    return models, grid


@pytest.mark.parametrize("kind", ["naive", "weighted_mid", "microprice", "linear"])
def test_save_load_round_trip_predicts_the_same(fitted, kind: str, tmp_path: Path) -> None:
    models, grid = fitted
    path = save_model(models[kind], tmp_path / f"{kind}.json")
    loaded = load_model(path)
    assert loaded.kind == kind and loaded.horizon_s == 1.0 and loaded.tick_size == SIM_TICK_SIZE
    assert loaded.symbol == "BTC/EUR"
    a = models[kind].predict(grid)
    b = loaded.predict(grid)
    assert np.array_equal(a, b, equal_nan=True)
    # per event: a plain dict of scalars, as the quoting engine would pass
    row = {k: grid[k][1234] for k in grid.columns}
    assert loaded.predict(row) == pytest.approx(float(b[1234]))
    assert isinstance(loaded.predict(row), float)


def test_file_is_plain_documented_json(fitted, tmp_path: Path) -> None:
    models, _ = fitted
    d = json.loads(save_model(models["linear"], tmp_path / "m.json").read_text())
    assert d["format"] == "mm_core.fair_mid" and d["version"] == 1 and d["kind"] == "linear"
    assert set(d["linear"]) >= {"features", "mean", "scale", "coef", "intercept", "alpha"}
    assert len(d["microprice"]["adjustment_ticks"][0]) == len(d["microprice"]["imbalance_edges"]) + 1


def test_microprice_and_naive_predictions_make_sense(fitted) -> None:
    models, _ = fitted
    book = {"bid": 100.0, "ask": 100.1, "bid_qty": 5.0, "ask_qty": 0.5}
    assert models["naive"].predict(book) == pytest.approx(100.05)
    # heavy bid: fair value above the mid, light bid: below. In the simulator's quiet market the mid
    # moves about once in 10 s, so one second ahead the tilt is a small share of a tick, inside the spread
    heavy = models["microprice"].predict(book)
    light = {**book, "bid_qty": 0.5, "ask_qty": 5.0}
    assert 100.0 < models["microprice"].predict(light) < 100.05 - 0.001 < 100.05 + 0.001 < heavy < 100.1
    assert models["weighted_mid"].predict(book) == pytest.approx((100.0 * 0.5 + 100.1 * 5.0) / 5.5)


def test_a_broken_model_file_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="bad.json"):
        load_model(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json:1"):
        load_model(bad)
    bad.write_text('{"format": "mm_core.fair_mid", "version": 1, "kind": "linear", "horizon_s": 1, "tick_size": 0.1}')
    with pytest.raises(ValueError, match="lacks field 'linear'"):
        load_model(bad)
