"""Pair #2 by config only: ETH/EUR on Kraken loads with the rules of Kraken's real instrument channel
snapshot, and any disagreement between the config and the published rules stops the load loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, SHARED
from mm_core.adapters import venue_rules
from mm_core.config import ConfigError, load_config

ETH = ROOT / "config" / "kraken-eth-eur.toml"
SNAPSHOT = SHARED / "kraken-instruments" / "instrument_snapshot_2024-07-12.json"


def with_rules(tmp_path: Path, *replace: tuple[str, str]) -> Path:
    text = ETH.read_text(encoding="utf-8").replace("[instrument]\n", f'[instrument]\nrules_file = "{SNAPSHOT}"\n', 1)
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new, 1)
    p = tmp_path / "eth.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_real_instrument_snapshot_lists_every_pair_with_its_rules() -> None:
    rules = venue_rules("kraken").instruments_from_file(SNAPSHOT)
    eth, btc = rules["ETH/EUR"], rules["BTC/EUR"]
    assert (eth.tick_size, eth.price_precision, eth.qty_precision, eth.min_qty, eth.min_cost) == (0.01, 2, 8, 0.002, 0.45)
    assert (btc.tick_size, btc.qty_precision, btc.min_qty, btc.min_cost) == (0.1, 8, 0.0001, 0.45)
    assert len(rules) > 500


def test_eth_eur_config_agrees_with_the_instrument_channel(tmp_path: Path) -> None:
    shipped = load_config(ETH).make_instrument()
    checked = load_config(with_rules(tmp_path)).make_instrument()
    assert shipped == checked
    assert (shipped.symbol, shipped.tick_size, shipped.min_qty) == ("ETH/EUR", 0.01, 0.002)


def test_rules_from_the_channel_alone_fill_the_config(tmp_path: Path) -> None:
    keys = ("price_precision = 2", "qty_precision = 8", "tick_size = 0.01", "lot_size = 0.00000001",
            "min_qty = 0.002", "min_cost = 0.45")
    p = with_rules(tmp_path, *[(k, "# " + k) for k in keys])
    inst = load_config(p).make_instrument()
    assert (inst.tick_size, inst.lot_size, inst.min_qty, inst.min_cost, inst.price_precision) == (0.01, 1e-8, 0.002, 0.45, 2)


def test_a_config_that_disagrees_with_the_channel_fails_loudly_naming_each_difference(tmp_path: Path) -> None:
    p = with_rules(tmp_path, ("tick_size = 0.01", "tick_size = 0.1"), ("min_qty = 0.002", "min_qty = 0.001"))
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert "disagrees with the venue's published rules" in msg
    assert "tick_size = 0.1 here but 0.01" in msg and "min_qty = 0.001 here but 0.002" in msg


def test_the_shipped_btc_eur_minimums_are_newer_than_the_2024_snapshot(tmp_path: Path) -> None:
    """A finding, kept honest: BTC/EUR's shipped minimums (AssetPairs, newer) differ from the 2024
    channel snapshot, so pointing the BTC/EUR config at that snapshot is refused, not merged."""
    text = (ROOT / "config" / "kraken-btc-eur.toml").read_text(encoding="utf-8")
    p = tmp_path / "btc.toml"
    p.write_text(text.replace("[instrument]\n", f'[instrument]\nrules_file = "{SNAPSHOT}"\n', 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"min_qty = 5e-05 here but 0.0001.*min_cost = 0.5 here but 0.45"):
        load_config(p)


def test_a_missing_pair_or_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no pair 'ETH/XYZ'"):
        load_config(with_rules(tmp_path, ('symbol = "ETH/EUR"', 'symbol = "ETH/XYZ"')))
    p = tmp_path / "bad.toml"
    p.write_text(ETH.read_text().replace("[instrument]\n", '[instrument]\nrules_file = "nowhere.json"\n', 1))
    with pytest.raises(ConfigError, match="instrument.rules_file: .*nowhere.json: cannot read"):
        load_config(p)
