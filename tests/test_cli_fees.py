"""Fees: one Kraken schedule (the config's, every tier) and the EUR->USD rate stated wherever it is used."""

from __future__ import annotations

import json

import pytest

import mm_core.backtest.fees as fees
from mm_core.cli import main as mm_main
from mm_core.config import load_config


def test_config_ships_every_kraken_tier_and_is_the_only_schedule() -> None:
    cfg = load_config().fees
    assert cfg is not None
    bounds = [t.volume_usd for t in cfg.tiers]
    assert bounds == [0, 10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000]
    assert not hasattr(fees, "KRAKEN_SPOT_TIERS")  # no second, built-in copy
    # a schedule built without tiers is the config's: the 100k tier is the config's row
    assert fees.kraken_schedule(150_000).tier.maker == cfg.tiers[3].maker == 0.12


def test_eur_usd_rate_is_in_config_and_in_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    rate = load_config().fees.quote_usd
    assert rate != 1.0  # EUR is not USD: the shipped config states a rate, not a silent 1
    code = mm_main(["backtest", "--sim-seconds", "20"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert f"EUR->USD {rate:g}" in out
    mm_main(["backtest", "--sim-seconds", "20", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert f"EUR->USD {rate:g}" in json.dumps(doc)
