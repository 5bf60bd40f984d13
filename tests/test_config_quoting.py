"""Config sections of the quoting engine: shipped values load, mistakes name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_core.config import ConfigError, default_config_path, load_config
from mm_core.strategy.regimes import RegimeConfig
from mm_core.strategy.risk import RiskConfig

SHIPPED = default_config_path()


def _shipped_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text, old
    p = tmp_path / "c.toml"
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    return p


def test_shipped_regimes_and_risk_are_the_documented_defaults() -> None:
    cfg = load_config()
    assert cfg.regimes == RegimeConfig()  # the file states every default: file and code agree
    assert cfg.risk == RiskConfig()
    lat = cfg.regimes.latency
    assert (lat.degraded_enter_ms, lat.unsafe_enter_ms) == (20.0, 80.0)  # the user's plan
    assert lat.degraded_exit_ms < lat.degraded_enter_ms and lat.unsafe_exit_ms < lat.unsafe_enter_ms


@pytest.mark.parametrize("old, new, match", [
    ("[risk]", "[risk]\nmax_inventroy = 1.0", r"unknown key `max_inventroy`.*risk"),
    ("max_inventory = 0.01", "max_inventory = -1.0", r"max_inventory must be > 0.*risk"),
    ('resume = "manual"', 'resume = "never"', "resume must be manual or auto"),
    ("degraded_exit_ms = 15.0", "degraded_exit_ms = 25.0", r"degraded_exit_ms < degraded_enter_ms.*regimes.latency"),
    ("[regimes.market]", "[regimes.market]\ndwel_ms = 1", r"unknown key `dwel_ms`.*regimes.market"),
    ("[regimes.latency]", "[regimes.latncy]\n[regimes.latency]", r"unknown key `latncy`.*regimes"),
    ("high_enter_bp = 2.0", 'high_enter_bp = "2"', r"Expected `float`.*regimes.volatility.high_enter_bp"),
])
def test_quoting_config_mistakes_are_clear_errors(tmp_path: Path, old: str, new: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(_shipped_with(tmp_path, old, new))


def test_shipped_strategy_sections_are_the_documented_defaults() -> None:
    from mm_core.strategy import avellaneda_stoikov as AS
    from mm_core.strategy import glft as GL

    st = load_config().strategy
    assert st.name == "baseline" and st.calibration == ""
    assert AS.Params.from_config(st.section("avellaneda-stoikov")) == AS.Params()
    assert GL.Params.from_config(st.section("glft")) == GL.Params()


@pytest.mark.parametrize("old, new, match", [
    ("[strategy.glft]", "[strategy.glft]\ngama = 1.0", r"strategy.glft: .*unknown key\(s\) gama"),
    ("[strategy.glft]", "[strategy.glft]\nkappa = -3.0", r"strategy.glft: .*kappa must be > 0"),
    ('name = "baseline"', 'name = "glfd"', r"strategy.name: unknown strategy 'glfd'.*glft"),
    ("[strategy.glft]", "[strategy.glfd]\n[strategy.glft]", r"strategy.glfd: unknown strategy 'glfd'"),
    ('calibration = ""', "calibration = 3", r"Expected `str`.*strategy.calibration"),
    ('[strategy]', "[strategy]\nnmae = 'glft'", r"unknown key `nmae`.*strategy"),
])
def test_strategy_config_mistakes_are_clear_errors(tmp_path: Path, old: str, new: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(_shipped_with(tmp_path, old, new))


def test_calibration_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg = load_config(_shipped_with(tmp_path, 'calibration = ""', 'calibration = "cal/params.json"'))
    assert cfg.strategy.calibration_path(cfg.source) == tmp_path / "cal" / "params.json"
    assert load_config().strategy.calibration_path(None) is None
