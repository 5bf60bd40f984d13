"""Decision gate: a short run never passes the 24-hour gate; every breach flips the decision."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mm_core.config import load_config
from mm_core.gate import FIX, PROCEED, evaluate_gate, main, max_in_window

T0 = 1_714_521_600_000_000_000  # 2024-05-01 00:00:00 UTC
S = 1_000_000_000
DAY_N = 520_000  # samples in the synthetic 24 h run (the gate wants >= 500k)


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def clock_events(tc0: int, offsets_ms: list[float], rtts_ms: list[float]) -> list[dict]:
    """``clock_estimate`` events as the collector logs them, one every 10 s from ``tc0``."""
    return [{"kind": "clock_estimate", "ts_capture": tc0 + i * 10 * S, "offset_ns": int(o * 1e6),
             "rtt_ns": int(r * 1e6)} for i, (o, r) in enumerate(zip(offsets_ms, rtts_ms))]


def make_run(rd: Path, tc: np.ndarray, ages_ms: np.ndarray, *, summary: dict | None = None,
             events: list[dict] | None = None, clock: list[dict] | None = None) -> Path:
    """A run directory as the collector leaves it: CSV, summary.json, events.jsonl.

    ``clock``: the clock_estimate events (default: ten of a good clock, offset 0, RTT 6 ms).
    """
    rd.mkdir(parents=True, exist_ok=True)
    te = tc - np.round(ages_ms * 1e6).astype(np.int64)
    pl.DataFrame({
        "exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": te, "ts_capture": tc,
        "age_ms": ((tc - te) / 1e6).round(3), "bid": 60000.0, "bid_qty": 0.5, "ask": 60000.1, "ask_qty": 0.25,
    }).write_csv(rd / "kraken-btc-eur.csv")
    dur = (int(tc[-1]) - int(tc[0])) / 1e9 + 0.5
    s = {
        "format": "mm_core-run-summary", "version": 1, "exchange": "kraken", "symbol": "BTC/EUR",
        "url": "wss://ws.kraken.com/v2", "config": None, "csv": "kraken-btc-eur.csv",
        "started_ns": int(tc[0]) - S // 2, "updated_ns": int(tc[-1]), "ended_ns": int(tc[-1]),
        "duration_s": dur, "connected_s": dur, "uptime_share": 1.0, "samples": int(tc.size),
        "messages": int(tc.size), "book_updates": int(tc.size), "checksums_ok": int(tc.size), "checksums_failed": 0,
        "resyncs": 0, "reconnects": 0, "disconnects": 0, "longest_gap_s": 1.0, "exit_reason": "max_seconds",
        "fatal_error": None, "clock_offset_ms": 0.1, "rtt_ms": 6.0, "bad_messages": 0, "subscription_errors": 0,
        "heartbeats": 12,
    }
    s.update(summary or {})
    (rd / "summary.json").write_text(json.dumps(s))
    base = {"exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": None}
    evs = [{"kind": "connected", "ts_capture": int(tc[0]) - S // 2, "url": s["url"], "attempt": 0},
           {"kind": "subscribed", "ts_capture": int(tc[0]) - S // 4, "channel": "book"}]
    evs += clock if clock is not None else clock_events(int(tc[0]), [0.0] * 10, [6.0] * 10)
    evs += events or []
    (rd / "events.jsonl").write_text("".join(json.dumps({**base, **e}) + "\n" for e in evs))
    return rd


def day_run(n: int = DAY_N, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """24 h of samples, evenly spread with jitter; ages lognormal around 8 ms (p99 ~ 40 ms)."""
    rng = np.random.default_rng(seed)
    step = 86_400 * S // n
    tc = T0 + np.arange(n, dtype=np.int64) * step + rng.integers(0, step // 2, n)
    ages = np.round(rng.lognormal(np.log(8.0), 0.7, n), 3)
    return tc, ages


@pytest.fixture(scope="module")
def day():
    return day_run()


def failed(r) -> set[str]:
    return {c.name for c in r.failed}


def test_a_20_s_run_does_not_pass_the_24h_gate(tmp_path, cfg):
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    rd = make_run(tmp_path / "run", tc, np.full(200, 6.0))
    r = evaluate_gate(rd, cfg)
    assert r.decision == FIX
    assert failed(r) == {"duration_h", "samples"}
    assert r.check("duration_h").value == pytest.approx(20.4 / 3600)
    assert r.check("samples").value == 200 and r.check("samples").threshold == ">= 500000"


def test_a_good_24h_run_proceeds(tmp_path, cfg, day, capsys):
    rd = make_run(tmp_path / "run", *day, clock=clock_events(int(day[0][0]), [0.1] * 10, [6.0] * 10))
    r = evaluate_gate(rd, cfg)
    assert r.decision == PROCEED, [(c.name, c.detail) for c in r.failed]
    assert r.check("samples").value == DAY_N
    # judged on the exchange clock: raw age + the (reliable, in-bound) offset of +0.1 ms
    assert r.check("p99_ms").value == pytest.approx(np.percentile(day[1], 99) + 0.1)
    assert r.check("clock_offset").passed and r.latency.clock.corrected_applied
    assert f"raw {np.percentile(day[1], 99):.3f} ms" in r.check("p99_ms").detail
    assert main([str(rd)]) == 0
    out = capsys.readouterr().out
    assert "DECISION: PROCEED" in out and "MEASURED" in out and "THRESHOLD" in out
    out.encode("ascii")


def test_p99_too_high_flips_the_decision(tmp_path, cfg, day):
    tc, ages = day
    ages = ages.copy()
    ages[::40] = 450.0  # 2.5 % of samples at 450 ms: p99 > 400, unsafe share still < 8 %
    r = evaluate_gate(make_run(tmp_path / "run", tc, ages), cfg)
    assert r.decision == FIX and failed(r) == {"p99_ms"}
    assert r.check("p99_ms").value == pytest.approx(450.0)


def test_unsafe_share_too_high_flips_the_decision(tmp_path, cfg, day):
    tc, ages = day
    ages = ages.copy()
    ages[::10] = 85.0  # 10 % above 80 ms; p95 and p99 stay within limits
    r = evaluate_gate(make_run(tmp_path / "run", tc, ages), cfg)
    assert r.decision == FIX and failed(r) == {"unsafe_share"}
    assert r.check("unsafe_share").value == pytest.approx(0.1, abs=0.001)


def test_a_reconnect_loop_flips_the_decision(tmp_path, cfg, day):
    t = T0 + 3600 * S
    evs = [{"kind": "disconnected", "ts_capture": t, "reason": "closed", "code": 1006}]
    evs += [{"kind": "reconnecting", "ts_capture": t + k * 50 * S, "attempt": k + 1, "delay_s": 1.0} for k in range(5)]
    evs += [{"kind": "connected", "ts_capture": t + 260 * S, "url": "wss://ws.kraken.com/v2", "attempt": 5}]
    rd = make_run(tmp_path / "run", *day, events=evs, summary={"reconnects": 5, "disconnects": 1})
    r = evaluate_gate(rd, cfg)
    assert r.decision == FIX and failed(r) == {"reconnect_loop"}
    assert r.check("reconnect_loop").value == 5


def test_reconnects_spread_out_are_not_a_loop(tmp_path, cfg, day):
    t = T0 + 3600 * S
    evs = []
    for k in range(6):  # six single reconnects an hour apart
        evs += [{"kind": "disconnected", "ts_capture": t + k * 3600 * S},
                {"kind": "reconnecting", "ts_capture": t + k * 3600 * S + S, "attempt": 1, "delay_s": 1.0},
                {"kind": "connected", "ts_capture": t + k * 3600 * S + 2 * S, "attempt": 1}]
    rd = make_run(tmp_path / "run", *day, events=evs, summary={"reconnects": 6, "disconnects": 6})
    r = evaluate_gate(rd, cfg)
    assert r.decision == PROCEED, [(c.name, c.detail) for c in r.failed]
    assert r.check("reconnect_loop").value == 1


def test_a_gap_over_60_s_flips_the_decision(tmp_path, cfg, day):
    tc, ages = day
    hole = (tc > T0 + 5 * 3600 * S) & (tc < T0 + 5 * 3600 * S + 90 * S)
    rd = make_run(tmp_path / "run", tc[~hole], ages[~hole])
    r = evaluate_gate(rd, cfg)
    assert r.decision == FIX
    assert "max_gap_s" in failed(r) and r.check("max_gap_s").value > 89
    assert "data_qa_strict" in failed(r)  # the same gap also fails strict QA


def test_a_gap_seen_only_by_the_collector_counts(tmp_path, cfg, day):
    rd = make_run(tmp_path / "run", *day, summary={"longest_gap_s": 75.0})
    r = evaluate_gate(rd, cfg)
    assert failed(r) == {"max_gap_s"} and r.check("max_gap_s").value == 75.0


def test_a_fatal_exit_flips_the_decision(tmp_path, cfg, day):
    rd = make_run(tmp_path / "run", *day, summary={"exit_reason": "fatal", "fatal_error": "reconnect budget exhausted"})
    r = evaluate_gate(rd, cfg)
    assert r.decision == FIX and failed(r) == {"no_fatal_exit"}
    assert "reconnect budget exhausted" in r.check("no_fatal_exit").detail


def test_low_uptime_flips_the_decision(tmp_path, cfg, day):
    r = evaluate_gate(make_run(tmp_path / "run", *day, summary={"uptime_share": 0.985}), cfg)
    assert failed(r) == {"uptime_share"}


def test_a_killed_run_is_noted(tmp_path, cfg):
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    rd = make_run(tmp_path / "run", tc, np.full(200, 6.0), summary={"exit_reason": "running", "ended_ns": None})
    r = evaluate_gate(rd, cfg, scale_to_seconds=20)
    assert any("killed" in n for n in r.notes)
    assert r.check("no_fatal_exit").passed  # killed is not a fatal exit; the note says what happened


def test_missing_evidence_fails_as_not_measured(tmp_path, cfg):
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    rd = make_run(tmp_path / "run", tc, np.full(200, 6.0))
    (rd / "events.jsonl").unlink()
    r = evaluate_gate(rd, cfg, scale_to_seconds=20)
    # no event log: no reconnect evidence, no event evidence and no clock estimate
    assert failed(r) == {"reconnect_loop", "events_logged", "clock_offset"}
    assert r.check("events_logged").detail.startswith("not measured")


def test_disconnects_without_reconnect_events_fail_events_logged(tmp_path, cfg):
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    evs = [{"kind": "disconnected", "ts_capture": T0 + 5 * S}, {"kind": "silence", "ts_capture": T0 + 6 * S}]
    rd = make_run(tmp_path / "run", tc, np.full(200, 6.0), events=evs, summary={"disconnects": 1, "reconnects": 1})
    r = evaluate_gate(rd, cfg, scale_to_seconds=20)
    assert failed(r) == {"events_logged"}
    assert "no 'reconnecting' event" in r.check("events_logged").detail


def test_corrupt_parquet_part_fails_schema_intact(tmp_path, cfg):
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    rd = make_run(tmp_path / "run", tc, np.full(200, 6.0))
    part = rd / "parquet" / "exchange=kraken" / "symbol=BTC-EUR" / "date=2024-05-01"
    part.mkdir(parents=True)
    (part / "trade-00-0000.parquet").write_bytes(b"not parquet")
    r = evaluate_gate(rd, cfg, scale_to_seconds=20)
    assert failed(r) == {"schema_intact"} and "trade-00-0000.parquet" in r.check("schema_intact").detail


def test_scale_to_seconds_scales_only_duration_and_samples(tmp_path, cfg, capsys):
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    rd = make_run(tmp_path / "run", tc, np.full(200, 6.0))
    r = evaluate_gate(rd, cfg, scale_to_seconds=20)
    assert r.decision == PROCEED, [(c.name, c.detail) for c in r.failed]
    g = cfg.gate
    assert r.thresholds["min_hours"] * 3600 == pytest.approx(20 * 23.5 / 24)
    assert r.thresholds["min_samples"] == math.ceil(500_000 * 20 / 86_400) == 116
    for k in ("p50_max_ms", "p95_max_ms", "p99_max_ms", "unsafe_ms", "unsafe_share_max", "max_gap_s",
              "reconnect_loop_count", "reconnect_loop_window_s", "min_uptime_share"):
        assert r.thresholds[k] == getattr(g, k), k
    assert r.original_thresholds["min_hours"] == 23.5 and r.original_thresholds["min_samples"] == 500_000

    assert main([str(rd), "--scale-to-seconds", "20", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["scaled"] is True and d["original_thresholds"]["min_samples"] == 500_000
    assert main([str(rd), "--scale-to-seconds", "20"]) == 0
    assert "SCALED" in capsys.readouterr().out

    slow = make_run(tmp_path / "slow", tc, np.full(200, 450.0))  # latency is never scaled
    assert failed(evaluate_gate(slow, cfg, scale_to_seconds=20)) == {"p50_ms", "p95_ms", "p99_ms", "unsafe_share"}


def test_json_keys_and_exit_codes(tmp_path, capsys):
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    rd = make_run(tmp_path / "run", tc, np.full(200, 6.0))
    assert main([str(rd), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["decision"] == "FIX-AND-RERUN" and d["scaled"] is False
    assert d["config"].endswith("kraken-btc-eur.toml")
    assert all(set(c) >= {"name", "value", "threshold", "passed", "detail"} for c in d["checks"])
    assert {c["name"] for c in d["checks"] if not c["passed"]} == {"duration_h", "samples"}
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main([str(rd), "--config", str(tmp_path / "missing.toml")]) == 2


def test_max_in_window():
    ts = [0, 10 * S, 20 * S, 400 * S, 401 * S]
    assert max_in_window(ts, 300) == (3, 0)
    assert max_in_window([], 300) == (0, None)


def test_a_broken_header_fails_qa_and_schema_and_leaves_latency_unmeasured(tmp_path, cfg):
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    rd = make_run(tmp_path / "run", tc, np.full(200, 6.0))
    f = rd / "kraken-btc-eur.csv"
    f.write_text("ts,age\n" + f.read_text().split("\n", 1)[1])
    r = evaluate_gate(rd, cfg, scale_to_seconds=20)
    assert r.decision == FIX
    assert {"data_qa_strict", "schema_intact", "samples", "p50_ms"} <= failed(r)
    assert r.check("p50_ms").detail.startswith("not measured")
