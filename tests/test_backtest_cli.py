"""``mm backtest`` and ``mm sweep`` from the command line: JSON keys, HTML report, verdict lines."""

from __future__ import annotations

import json

from mm_core.cli import main


def test_mm_backtest_json_and_html(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cache"))
    html = tmp_path / "report.html"
    rc = main(["backtest", "--sim-seconds", "60", "--seed", "2", "--half-spread-bps", "0", "--rate-tier", "pro",
               "--json", "--html", str(html)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("total_pnl", "spread_capture", "adverse_selection", "inventory_pnl", "fees", "fills",
                "events_per_second"):
        assert key in out
    assert abs(out["total_pnl"] - (out["spread_capture"] + out["adverse_selection"] + out["inventory_pnl"]
                                   - out["fees"])) < 1e-9
    text = html.read_text()
    assert text.count("data:image/png;base64,") == 4 and "http" not in text.split("<body>")[1][:200]
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
    assert len(out["results"]) == 2 * 4  # 2 spreads x (base, x2, spikes, vol shock)
    checks = {v["check"]: v["pass"] for v in out["verdicts"]}
    assert set(checks) == {"profitable across parameter stress tests", "tail losses bounded"}
    assert rc == (0 if all(checks.values()) else 1)
    assert checks["profitable across parameter stress tests"] is False  # retail fees: it loses
