"""Ordinary mistakes get a one-line error and a non-zero exit, never a traceback or a silent run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mm_core.cli import main as mm_main
from mm_core.config import ConfigError, default_config_path, load_config


@pytest.mark.parametrize("args,says", [
    (["simexchange", "--port", "-1"], "0..65535"),
    (["simexchange", "--port", "70000"], "0..65535"),
    (["backtest", "--sim-seconds", "-5"], "must be > 0"),
    (["backtest", "--sim-seconds", "0"], "must be > 0"),
])
def test_parser_rejects_nonsense_numbers(capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    with pytest.raises(SystemExit) as exc:
        mm_main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and says in err and "Traceback" not in err


@pytest.mark.parametrize("spec", ["const:-5", "const:1,-2,3", "lognormal:5,-5,0.3", "sim:-8", "const:nan"])
def test_backtest_rejects_negative_latency(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str) -> None:
    code = mm_main(["backtest", "--sim-seconds", "5", "--latency", spec])
    err = capsys.readouterr().err
    assert code == 2 and ">= 0" in err and "Traceback" not in err


def test_backtest_missing_fair_model_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mm_core", "backtest", "--sim-seconds", "5", "--fair",
                        str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "missing.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("key", ["min_samples", "min_hours", "max_gap_s", "reconnect_loop_count"])
def test_config_rejects_negative_gate_values(tmp_path: Path, key: str) -> None:
    text = default_config_path().read_text(encoding="utf-8")
    lines = text.splitlines()
    lines.insert(lines.index("[gate]                                # the 24-hour decision gate (Phase 0 of the plan)") + 1,
                 f"{key} = -1")
    text = "\n".join(ln for i, ln in enumerate(lines) if not (ln.startswith(f"{key} =") and "-1" not in ln)) + "\n"
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"gate.{key} must be > 0"):
        load_config(p)
