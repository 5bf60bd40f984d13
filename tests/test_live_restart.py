"""Issue 10's live Must show, offline: ``mm live`` against the simulator's private side (a real
socket on loopback, started as ``mm simexchange --private``), killed with kill -9 while its orders
rest, restarted into the same run directory: the restart finds every order the exchange still holds
and cancels it (no orphan, and not by the dead man's switch), and its position equals the exchange's.
The simulator's log shows the dead man's switch armed, post-only orders only, and caps never exceeded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "kraken-btc-eur.toml"
CAPS = {"max_order_qty": 0.002, "max_notional": 200.0, "max_inventory": 0.004, "max_daily_loss": 50.0,
        "max_order_rate": 5.0}

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.name == "nt", reason="kill -9 and SIGINT as a POSIX user sends them")]


def _lines(proc: subprocess.Popen, want: tuple[str, ...], timeout_s: float = 60.0) -> dict[str, str]:
    got: dict[str, str] = {}

    def reader() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            for w in want:
                if line.startswith(w) and w not in got:
                    got[w] = line.strip()
            if len(got) == len(want):
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout_s)
    assert len(got) == len(want), f"simulator never printed {want}"
    return got


def _sim_log(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except ValueError:  # the last line while the simulator still writes
                pass
    return out


def _resting(log: list[dict]) -> int:
    """Orders the simulator's account holds open right now, by its own replies and fills."""
    placed = {r["order_id"] for r in log if r.get("kind") == "private_reply" and r.get("method") == "add_order"
              and r.get("success") and r.get("order_id")}
    gone = {r.get("order_id") for r in log if r.get("kind") == "private_reply" and r.get("method") == "cancel_order"
            and r.get("success")}
    return len(placed - gone)


def test_kill_9_mid_live_session_restart_cancels_every_order_and_matches_the_exchange(tmp_path) -> None:
    key = tmp_path / "key.toml"
    sim_log = tmp_path / "sim.jsonl"
    sim = subprocess.Popen([sys.executable, "-m", "mm_core.cli", "simexchange", "--private", "--api-key-file", str(key),
                            "--log", str(sim_log), "--no-log-messages", "--profile", "busy", "--no-latency-spells",
                            "--max-seconds", "150"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _lines(sim, ("listening on ", "private on "))
        feed = lines["listening on "].split()[-1]
        rest_url, ws_url = lines["private on "].split()[-2:]
        assert key.stat().st_mode & 0o077 == 0  # the fresh test key is 0600
        cfg = tmp_path / "live.toml"
        cfg.write_text("\n".join([f'extends = "{SHIPPED.as_posix()}"', "", "[live]",
                                  *(f"{k} = {v}" for k, v in CAPS.items()),
                                  f'private_url = "{ws_url}"', f'rest_url = "{rest_url}"', "warmup_s = 2.0",
                                  f'key_file = "{key.as_posix()}"']) + "\n", encoding="utf-8")
        run = tmp_path / "run"
        cmd = [sys.executable, "-m", "mm_core.cli", "live", "--config", str(cfg), "--feed-url", feed, "--out", str(run),
               "--json", "--half-spread-bps", "0.01", "--size", "0.001"]
        first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.5)
            log = _sim_log(sim_log) if sim_log.exists() else []
            # a fill before the kill (the position must survive the crash) and an order resting at it
            if _resting(log) >= 1 and any(r.get("kind") == "private_fill" for r in log):
                break
        assert first.poll() is None, first.communicate()[1][-2000:]
        log = _sim_log(sim_log)
        assert _resting(log) >= 1, "the live session never got an order resting before the kill"
        assert any(r.get("kind") == "private_fill" for r in log), "no fill before the kill"
        first.kill()  # kill -9: no cancel, no state written
        first.communicate(timeout=30)
        time.sleep(0.5)
        at_kill = _resting(_sim_log(sim_log))
        assert at_kill >= 1, "the orders must still rest on the exchange after the kill"

        second = subprocess.run(cmd + ["--max-seconds", "8"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr[-2000:]
        summary = json.loads(second.stdout)
        assert summary["open_orders_at_exit"] == 0 and summary["risk_breaches"] == 0
    finally:
        if sim.poll() is None:
            sim.send_signal(signal.SIGINT)
        sim.communicate(timeout=60)
    log = _sim_log(sim_log)
    stop = next(r for r in log if r.get("kind") == "private_stop")
    start = next(r for r in log if r.get("kind") == "private_start")["account"]["balances"]
    assert stop["open_orders"] == 0, "an orphan order was left on the exchange"
    assert stop["dead_man"]["fired"] == 0, "the restart, not the dead man's switch, must clean up"
    assert summary["position"] == pytest.approx(stop["balances"]["BTC"] - start["BTC"], abs=1e-12)
    dm = [r["action"] for r in log if r.get("kind") == "dead_man"]
    assert dm and dm[0] == "arm"
    adds = [r["params"] for r in log if r.get("kind") == "private_request" and r.get("method") == "add_order"]
    assert adds and all(p.get("post_only") is True for p in adds)
    assert all(p["order_qty"] <= CAPS["max_order_qty"] + 1e-12 for p in adds)
    assert all(p["order_qty"] * p["limit_price"] <= CAPS["max_notional"] + 1e-9 for p in adds)
    assert any(p.get("validate") is True for p in adds), "the warm-up sends validate-only orders first"
    key_text = key.read_text(encoding="utf-8")
    secret_values = [ln.split("=", 1)[1].strip().strip('"') for ln in key_text.splitlines() if "=" in ln]
    for f in run.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".jsonl", ".csv", ".toml", ".txt", ".log", ""):
            text = f.read_text(encoding="utf-8", errors="replace")
            for s in secret_values:
                assert s not in text, f"{f.name} holds the key"
    for s in secret_values:
        assert s not in second.stdout + second.stderr
