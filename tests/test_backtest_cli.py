"""``mm backtest`` and ``mm sweep`` from the command line: JSON keys, HTML report, verdict lines."""

from __future__ import annotations

import json

import pytest

from mm_core.cli import main


def test_mm_backtest_json_and_html(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cache"))
    html = tmp_path / "report.html"
    rc = main(["backtest", "--sim-seconds", "60", "--seed", "2", "--half-spread-bps", "0", "--rate-tier", "pro",
               "--json", "--html", str(html)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("total_pnl", "spread_capture", "adverse_selection", "inventory_pnl", "fees", "fills",
                "events_per_second", "total_pnl_direct", "pnl_identity_gap", "in_sample"):
        assert key in out
    assert abs(out["total_pnl"] - (out["spread_capture"] + out["adverse_selection"] + out["inventory_pnl"]
                                   - out["fees"])) < 1e-9
    assert out["total_pnl_direct"] == pytest.approx(out["total_pnl"], abs=1e-9)
    assert abs(out["pnl_identity_gap"]) < 1e-9 and out["pnl_identity_ok"] is True
    assert out["in_sample"] is False  # the naive mid: nothing was trained
    text = html.read_text()
    assert text.count("data:image/png;base64,") == 5 and "http" not in text.split("<body>")[1][:200]
    assert "Regimes, equity and inventory" in text and "Strategy telemetry" in text
    for key in ("strategy", "regime_transitions", "regime_flaps", "risk_breaches", "kill_switch_events",
                "quotes_while_stale_ms", "decision_latency_us", "transitions_sha256"):  # the go/no-go keys
        assert key in out
    assert out["strategy"] == "baseline" and set(out["decision_latency_us"]) >= {"p50", "p99"}
    rc = main(["backtest", "--sim-seconds", "60", "--seed", "2"])
    assert rc == 0 and "total PnL" in capsys.readouterr().out


def test_mm_backtest_bad_input_exits_2(capsys):
    assert main(["backtest"]) == 2
    assert "run directory" in capsys.readouterr().err


def test_mm_sweep_runs_grid_in_parallel_with_verdicts(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cache"))
    rc = main(["sweep", "--sim-seconds", "60", "--seed", "2", "--spreads", "0,0.1", "--latency-scales", "1,2",
               "--spikes", "10:10:100", "--vol-shocks", "20:20:3", "--rate-tier", "pro", "--json"])
    out = json.loads(capsys.readouterr().out)
    # walk-forward: 2 spreads x base on the selection period + 2 spreads x (base, x2, spikes, vol shock) on the report period
    assert len(out["results"]) == 2 * 1 + 2 * 4
    assert sorted({r["period"] for r in out["results"]}) == ["report", "select"]
    checks = {v["check"]: v["pass"] for v in out["verdicts"]}
    assert set(checks) == {"profitable across parameter stress tests", "tail losses bounded"}
    assert rc == (0 if all(checks.values()) else 1)
    assert checks["profitable across parameter stress tests"] is False  # retail fees: it loses


def _args(argv):
    import argparse

    from mm_core.backtest.command import register

    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    return p.parse_args(["backtest", *argv])


def test_backtest_reads_fees_and_defaults_from_config_and_flags_override(tmp_path):
    from mm_core.backtest.command import config_from_args
    from mm_core.config import default_config_path

    text = default_config_path().read_text(encoding="utf-8")
    text = text.replace("requote_ms = 100.0", "requote_ms = 250.0").replace(
        "volume_30d_usd = 0.0", "volume_30d_usd = 20000.0").replace('queue = "risk_averse"', 'queue = "log"')
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    cfg = config_from_args(_args(["--sim-seconds", "1", "--config", str(path)]))
    assert cfg.requote_ms == 250.0 and cfg.queue == "log"
    assert (cfg.fees.tier.maker, cfg.fees.tier.taker) == (0.20, 0.35)  # the config's $10k tier
    cfg = config_from_args(_args(["--sim-seconds", "1", "--config", str(path), "--requote-ms", "50",
                                  "--volume-30d", "0", "--queue", "risk_averse", "--fee-volume-growth", "daily"]))
    assert cfg.requote_ms == 50.0 and cfg.queue == "risk_averse"
    assert cfg.fees.tier.maker == 0.25 and cfg.fees.growth == "daily"
    # the shipped config gives the built-in defaults
    cfg = config_from_args(_args(["--sim-seconds", "1"]))
    assert (cfg.requote_ms, cfg.queue, cfg.rate_tier, cfg.fees.tier.maker) == (100.0, "risk_averse", "starter", 0.25)
