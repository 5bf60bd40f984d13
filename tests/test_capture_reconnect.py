"""Reconnects: a healthy session the server closes is resumed at once; a true loop still ends the run.

Healthy means the session delivered a verified book snapshot. Backoff (and the reconnect budget) is
for failed connects and sessions that never got that far. Before, every reconnect backed off
exponentially and only a 30 s session reset it: with the exchange closing every 8 s the delays grew
0.6 -> 1.3 -> 2.8 -> 5.4 s ... and uptime fell to ~25 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from conftest import V2_BOOK
from mm_core.capture.collector import Collector
from mm_core.capture.layout import read_events, read_summary
from mm_core.config import load_config
from mm_core.simexchange.server import spawn_process
from scripted_exchange import Script, load_v2_recording
from test_collector import collect, fast_config


@pytest.mark.slow
def test_exchange_closing_every_8s_costs_under_15_percent_uptime_and_no_gap_over_3s(tmp_path: Path) -> None:
    # the shipped backoff (1 s base, 60 s cap); a budget of 2 shows healthy reconnects are not counted
    sim = spawn_process(["--seed", "4", "--latency-median-ms", "2", "--no-latency-spells",
                         "--faults", "disconnect:every=8s:mode=close"])
    try:
        cfg = load_config(fast_config(tmp_path, reconnect_base_s=1.0, reconnect_max_s=60.0,
                                      reconnect_budget=2, watchdog_silence_s=10))
        code = Collector(cfg, tmp_path / "run" / "F.csv", url=sim.url, max_seconds=42,
                         quiet=True).run()
    finally:
        sim.stop()
    assert code == 0
    run_dir = tmp_path / "run"
    s = read_summary(run_dir)
    events = read_events(run_dir)
    closes = [e for e in events if e["kind"] == "disconnected" and e.get("code") == 1001]
    rec = [e for e in events if e["kind"] == "reconnecting"]
    ts = np.sort(pl.read_csv(run_dir / "F.csv")["ts_capture"].to_numpy())
    sample_gap_s = float(np.diff(ts).max()) / 1e9
    print(f"\nserver closes {len(closes)}, reconnects {len(rec)} (delays {[e['delay_s'] for e in rec]}), "
          f"uptime {100 * s['uptime_share']:.2f} %, longest gap {s['longest_gap_s']:.3f} s "
          f"(between samples {sample_gap_s:.3f} s)")
    assert len(closes) >= 4 and len(rec) >= 4
    assert all(e["delay_s"] == 0.0 for e in rec)
    assert s["uptime_share"] >= 0.85
    assert s["longest_gap_s"] <= 3.0
    assert sample_gap_s <= 3.0
    assert s["exit_reason"] == "max_seconds"


def test_server_closing_before_any_snapshot_is_a_loop_the_budget_stops(tmp_path: Path) -> None:
    script = Script(load_v2_recording(V2_BOOK), close_before_snapshot=True)
    code, run_dir = collect(tmp_path, script, seconds=20.0, reconnect_budget=3,
                            reconnect_budget_window_s=60)
    assert code == 1
    s = read_summary(run_dir)
    assert s["exit_reason"] == "fatal"
    assert "reconnect budget exhausted" in s["fatal_error"]
    rec = [e for e in read_events(run_dir) if e["kind"] == "reconnecting"]
    assert len(rec) == 3 and all(e["delay_s"] > 0 for e in rec)  # unhealthy: backed off each time
    assert script.connections == 4
    assert s["duration_s"] < 10  # stopped by the budget, not by max-seconds
