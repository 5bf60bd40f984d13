"""``mm research``: HTML report (self-contained) and JSON metrics from simulator data, a run directory
and a real recording; model files written; clear errors for unusable input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import V2_BOOK
from mm_core.cli import main
from mm_core.research import load_model
from mm_core.research.sim_data import write_sim_run


def test_sim_run_produces_a_self_contained_report_json_and_models(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.html"
    code = main(["research", "--sim-seconds", "900", "--seed", "1", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert code in (0, 1) and code == (0 if doc["go"] else 1)
    assert doc["qa"]["passed"] and len(doc["metrics"]) == 8
    assert {m["model"] for m in doc["metrics"]} == {"naive", "weighted_mid", "microprice", "linear"}
    assert {"mae", "rmse", "hit_rate", "calib_slope", "calib_intercept", "dm_p"} <= set(doc["metrics"][0])
    html = out.read_text()
    assert "Verdict" in html and "Feature QA" in html and "Calibration" in html and "data:image/png;base64," in html
    assert "<script" not in html and not re.search(r"(src|href)=\"https?://", html)  # opens offline
    assert "[research]" in captured.err  # progress on stderr
    models = sorted(p.name for p in (tmp_path / "report-models").glob("*.json"))
    assert "fair_mid_linear_1s.json" in models and "fair_mid_microprice_5s.json" in models
    name = "best" if doc["go"] else "candidate"  # a NO-GO run has no "best" model
    assert load_model(tmp_path / "report-models" / f"fair_mid_{name}_1s.json").horizon_s == 1.0


def test_run_directory_input_and_text_output(tmp_path: Path, capsys) -> None:
    write_sim_run(tmp_path / "run", 600, seed=5, predictive=False)
    code = main(["research", "--data", str(tmp_path / "run"), "--out", str(tmp_path / "r.html"),
                 "--models", str(tmp_path / "m")])
    out = capsys.readouterr().out
    assert code == 1 and "verdict: NO-GO" in out and "BTC/EUR" in out
    assert (tmp_path / "r.html").exists() and list((tmp_path / "m").glob("*.json"))
    # NO-GO: no model is called best, on screen or on disk; the top ones are saved as candidates
    assert not list((tmp_path / "m").glob("fair_mid_best_*.json"))
    assert list((tmp_path / "m").glob("fair_mid_candidate_*.json"))
    assert "best model" not in out.lower() or "best model: none" in out.lower()


def test_a_short_real_recording_is_refused_with_the_reason(tmp_path: Path, capsys) -> None:
    code = main(["research", "--recording", str(V2_BOOK), "--out", str(tmp_path / "r.html")])
    out = capsys.readouterr().out
    assert code == 1 and "feature QA: FAIL" in out and "enough_data" in out
    assert "Feature QA" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("args,needle", [
    (["--data", "/nonexistent/run"], "no such directory"),
    (["--sim-seconds", "10", "--horizons", "x"], "--horizons"),
])
def test_unusable_input_exits_2_with_a_message(tmp_path: Path, capsys, args, needle) -> None:
    code = main(["research", *args, "--out", str(tmp_path / "r.html")])
    assert code == 2 and needle in capsys.readouterr().err


def test_the_command_module_stays_light_but_agrees_with_the_library() -> None:
    from mm_core.research import book_frames, command

    assert command.CLOCKS == book_frames.CLOCKS
