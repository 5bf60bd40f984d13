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


# ---------------------------------------------------------------------------- the pipeline on ETH/EUR


def eth_fast_config(tmp_path: Path) -> Path:
    """The shipped ETH/EUR config with a short watchdog so a failure shows within seconds."""
    text = ETH.read_text(encoding="utf-8").replace(
        "[feed]\n", "[feed]\nwatchdog_silence_s = 3\nreconnect_base_s = 0.1\nreconnect_max_s = 0.3\n"
                    "flush_interval_s = 0.2\nping_interval_s = 0.5\n", 1)
    lines = text.splitlines()
    keep, seen = [], set()
    section = ""
    for ln in lines:  # the keys just added win over the shipped ones (TOML forbids duplicates)
        if ln.startswith("["):
            section = ln
        key = ln.split("=")[0].strip() if "=" in ln and not ln.lstrip().startswith("#") else None
        if section == "[feed]" and key is not None:
            if key in seen:
                continue
            seen.add(key)
        keep.append(ln)
    p = tmp_path / "eth-fast.toml"
    p.write_text("\n".join(keep) + "\n", encoding="utf-8")
    return p


@pytest.mark.slow
def test_simulator_serves_the_configured_pair_and_collector_gate_backtest_run_unchanged(tmp_path: Path, capsys) -> None:
    """``mm simexchange --config`` serves ETH/EUR at its 2-decimal precision; the unchanged collector
    verifies every checksum, QA passes, the gate judges it and the backtest quotes ETH sizes."""
    import orjson

    from mm_core.capture.collector import Collector
    from mm_core.capture.layout import read_summary
    from mm_core.cli import main
    from mm_core.simexchange.server import spawn_process

    cfg_path = eth_fast_config(tmp_path)
    sim = spawn_process(["--config", str(ETH), "--seed", "2", "--updates-per-second", "30",
                         "--latency-median-ms", "3", "--no-latency-spells"])
    try:
        code = Collector(load_config(cfg_path), tmp_path / "run" / "F.csv", url=sim.url, max_seconds=6,
                         quiet=True).run()
    finally:
        sim.stop()
    assert code == 0
    s = read_summary(tmp_path / "run")
    assert s["checksums_ok"] > 50 and s["checksums_failed"] == 0 and s["samples"] > 50
    rows = (tmp_path / "run" / "F.csv").read_text().splitlines()[1:]
    assert all(r.split(",")[1] == "ETH/EUR" for r in rows)
    bids = [r.split(",")[5] for r in rows]
    assert any(round(float(b) * 10) != float(b) * 10 for b in bids)  # prices use the 0.01 tick, not BTC's 0.1
    capsys.readouterr()
    main(["gate", str(tmp_path / "run"), "--config", str(cfg_path), "--scale-to-seconds", "6", "--json"])
    checks = {c["name"]: c["passed"] for c in orjson.loads(capsys.readouterr().out)["checks"]}
    # a 6 s run cannot hold enough clock estimates; everything the gate can judge in 6 s passes
    assert all(checks[k] for k in ("samples", "p50_ms", "p99_ms", "data_qa_strict")), checks
    assert main(["qa", "--file", str(tmp_path / "run" / "F.csv"), "--strict"]) == 0
    capsys.readouterr()
    assert main(["backtest", str(tmp_path / "run"), "--config", str(cfg_path), "--json"]) == 0
    bt = orjson.loads(capsys.readouterr().out)
    assert bt["rows"] > 50 and bt["config"]["strategy_params"]["size"] == 0.02
