"""Runtime config: the shipped file loads, and every kind of mistake gets a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_core.config import ConfigError, default_config_path, load_config

SHIPPED = default_config_path()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _shipped_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text, old
    return _write(tmp_path, text.replace(old, new, 1))


def test_shipped_btc_eur_config_loads() -> None:
    cfg = load_config()
    assert cfg.exchange.name == "kraken"
    assert cfg.symbol == "BTC/EUR"
    assert cfg.feed.book_depth == 10
    assert cfg.gate.p50_max_ms == 15 and cfg.gate.p95_max_ms == 100 and cfg.gate.p99_max_ms == 400
    assert cfg.gate.unsafe_ms == 80 and cfg.gate.unsafe_share_max == 0.08
    assert cfg.gate.min_samples == 500_000 and cfg.gate.min_hours == 23.5
    inst = cfg.make_instrument()
    assert inst.price_precision == 1 and inst.qty_precision == 8 and inst.tick_size == 0.1


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    p = _shipped_with(tmp_path, "[feed]\n", "[feed]\nbook_dept = 10\n")
    with pytest.raises(ConfigError, match=r"unknown key `book_dept`.*feed"):
        load_config(p)


def test_wrong_type_is_an_error_naming_the_field(tmp_path: Path) -> None:
    p = _shipped_with(tmp_path, "book_depth = 10", 'book_depth = "ten"')
    with pytest.raises(ConfigError, match=r"Expected `int`.*feed.book_depth"):
        load_config(p)


def test_xbt_eur_on_ws_v2_says_to_use_btc_eur(tmp_path: Path) -> None:
    p = _shipped_with(tmp_path, 'symbol = "BTC/EUR"', 'symbol = "XBT/EUR"')
    with pytest.raises(ConfigError, match="BTC/EUR"):
        load_config(p)
    with pytest.raises(ConfigError, match="BTC/EUR"):
        load_config(symbol="XBT/EUR")


def test_unsupported_depth_is_rejected() -> None:
    with pytest.raises(ConfigError, match="depth"):
        load_config(depth=15)


def test_unknown_adapter_lists_known_ones(tmp_path: Path) -> None:
    p = _shipped_with(tmp_path, 'adapter = "kraken_v2"', 'adapter = "binance"')
    with pytest.raises(ConfigError, match="known adapters: kraken_v1, kraken_v2"):
        load_config(p)


def test_inconsistent_thresholds_are_rejected(tmp_path: Path) -> None:
    p = _shipped_with(tmp_path, "degraded_max_ms = 80.0", "degraded_max_ms = 10.0")
    with pytest.raises(ConfigError, match="normal_max_ms < degraded_max_ms"):
        load_config(p)


def test_missing_file_and_bad_toml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[exchange\nname="))


def test_missing_section_is_reported(tmp_path: Path) -> None:
    p = _write(tmp_path, '[exchange]\nname="kraken"\nadapter="kraken_v2"\nendpoint="wss://x"\n')
    with pytest.raises(ConfigError, match="instrument"):
        load_config(p)


def test_shipped_fees_and_backtest_sections() -> None:
    cfg = load_config()
    assert cfg.fees is not None and cfg.backtest is not None
    rows = [(t.volume_usd, t.maker, t.taker) for t in cfg.fees.tiers]  # every tier of the schedule
    assert rows[0] == (0, 0.25, 0.40) and rows[1] == (10_000, 0.20, 0.35) and rows[-1] == (10_000_000, 0.0, 0.10)
    assert len(rows) == 10
    assert cfg.fees.volume_30d_usd == 0 and cfg.fees.volume_growth == "off"
    assert cfg.backtest.requote_ms == 100 and cfg.backtest.queue == "risk_averse" and cfg.backtest.latency == "const:5"


def test_fees_and_backtest_sections_are_optional_and_strict(tmp_path: Path) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    head = text[: text.index("[fees]")]
    cfg = load_config(_write(tmp_path, head))
    assert cfg.fees is None and cfg.backtest is None
    with pytest.raises(ConfigError, match=r"unknown key `maker_fee`.*fees"):
        load_config(_shipped_with(tmp_path, "volume_30d_usd = 0.0", "maker_fee = 0.1"))
    with pytest.raises(ConfigError, match="increase strictly"):
        load_config(_shipped_with(tmp_path, "volume_usd = 10000,", "volume_usd = 0,"))
    with pytest.raises(ConfigError, match="backtest.requote_ms"):
        load_config(_shipped_with(tmp_path, "requote_ms = 100.0", "requote_ms = 0.0"))
    with pytest.raises(ConfigError, match="volume_growth"):
        load_config(_shipped_with(tmp_path, 'volume_growth = "off"', 'volume_growth = "weekly"'))
