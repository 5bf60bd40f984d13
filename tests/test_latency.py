"""Latency analyzer: numbers equal NumPy's on the same data; regimes, hours and spells by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_core.events import TopOfBook, arrow_schema
from mm_core.latency import (
    analyze_latency,
    longest_unsafe_spell,
    main,
    per_hour,
    regime_shares,
)
from mm_core.quality import InputError

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_714_521_600_000_000_000  # 2024-05-01 00:00:00 UTC
S = 1_000_000_000
HEADER = "exchange,symbol,ts_exchange,ts_capture,age_ms,bid,bid_qty,ask,ask_qty"


def write_capture(path: Path, tc: np.ndarray, ages_ms: np.ndarray) -> Path:
    """A sample CSV in the collector's format; ages are given to the microsecond (3 decimals)."""
    te = tc - np.round(ages_ms * 1e6).astype(np.int64)
    pl.DataFrame({
        "exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": te, "ts_capture": tc,
        "age_ms": ((tc - te) / 1e6).round(3), "bid": 60000.0, "bid_qty": 0.5, "ask": 60000.1, "ask_qty": 0.25,
    }).write_csv(path)
    return path


def lognormal_ages(n: int, seed: int = 7) -> np.ndarray:
    return np.round(np.random.default_rng(seed).lognormal(np.log(8.0), 0.7, n), 3)


def events(path: Path, *objs: dict) -> Path:
    path.write_text("".join(json.dumps({"exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": None,
                                        "ts_capture": T0, **o}) + "\n" for o in objs))
    return path


def test_percentiles_equal_numpy_on_the_same_data(tmp_path):
    ages = lognormal_ages(100_000)
    tc = T0 + np.arange(ages.size, dtype=np.int64) * 50_000_000
    r = analyze_latency(write_capture(tmp_path / "cap.csv", tc, ages))
    expected = np.percentile(ages, [50, 90, 95, 99, 99.9])
    got = [r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.p99_9_ms]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-9)
    assert r.samples == ages.size
    assert r.max_ms == pytest.approx(ages.max()) and r.mean_ms == pytest.approx(ages.mean())


def test_regime_shares_are_exact_on_hand_built_data():
    ages = np.array([1.0, 20.0, 20.001, 50.0, 80.0, 80.001, 200.0, -1.0])
    normal, degraded, unsafe = regime_shares(ages, 20.0, 80.0)
    assert (normal, degraded, unsafe) == (3 / 8, 3 / 8, 2 / 8)


def test_regime_shares_through_the_file(tmp_path):
    ages = np.array([1.0, 20.0, 20.001, 50.0, 80.0, 80.001, 200.0, 5.0, 6.0, 7.0])
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    r = analyze_latency(write_capture(tmp_path / "cap.csv", tc, ages), 20, 80)
    assert (r.normal_share, r.degraded_share, r.unsafe_share) == (0.5, 0.3, 0.2)


def test_per_hour_table():
    # hour 0: ages 1..10, hour 1: nothing, hour 2: ages 100, 200 (both unsafe), hour 3: ages 5, 90
    tc = np.array([T0 + k * 60 * S for k in range(10)] + [T0 + 2 * 3600 * S, T0 + 2 * 3600 * S + S]
                  + [T0 + 3 * 3600 * S, T0 + 4 * 3600 * S - 1], dtype=np.int64)
    ages = np.array([float(k) for k in range(1, 11)] + [100.0, 200.0, 5.0, 90.0])
    rows = per_hour(tc, ages, 80.0)
    assert [h.hour for h in rows] == ["2024-05-01 00:00", "2024-05-01 02:00", "2024-05-01 03:00"]
    assert [h.samples for h in rows] == [10, 2, 2]
    assert rows[0].p50_ms == np.percentile(np.arange(1, 11), 50)
    assert rows[0].p99_ms == np.percentile(np.arange(1, 11), 99)
    assert [h.unsafe_share for h in rows] == [0.0, 1.0, 0.5]


def test_longest_unsafe_spell_on_a_hand_built_sequence():
    tc = np.arange(10, dtype=np.int64) * S
    ages = np.array([10, 90, 95, 10, 90, 90, 90, 90, 10, 10], dtype=float)
    sp = longest_unsafe_spell(tc, ages, 80.0)
    assert (sp.samples, sp.duration_s, sp.start_ns, sp.max_ms) == (4, 4.0, 4 * S, 90.0)


def test_an_unsafe_quote_followed_by_silence_is_the_longest_spell():
    """The spell lasts until a safe sample arrives: 30 s of silence after an old quote is 30 s unsafe."""
    tc = np.array([0, 1, 2, 3, 4, 5, 35], dtype=np.int64) * S
    ages = np.array([90, 90, 90, 10, 10, 90, 10], dtype=float)
    sp = longest_unsafe_spell(tc, ages, 80.0)
    assert (sp.samples, sp.duration_s, sp.start_ns) == (1, 30.0, 5 * S)


def test_unsafe_spell_at_the_end_of_the_run_and_none_at_all():
    tc = np.arange(5, dtype=np.int64) * S
    sp = longest_unsafe_spell(tc, np.array([10, 10, 99, 99, 99], dtype=float), 80.0)
    assert (sp.samples, sp.duration_s) == (3, 2.0)
    assert longest_unsafe_spell(tc, np.full(5, 10.0), 80.0) is None


def test_clock_from_events_without_skew(tmp_path):
    ages = 5.0 + lognormal_ages(2000) / 4
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    write_capture(tmp_path / "cap.csv", tc, ages)
    events(tmp_path / "events.jsonl",
           {"kind": "clock_estimate", "offset_ns": 300_000, "rtt_ns": 8_000_000},
           {"kind": "clock_estimate", "offset_ns": -100_000, "rtt_ns": 6_000_000},
           {"kind": "clock_estimate", "offset_ns": 200_000, "rtt_ns": 7_000_000})
    c = analyze_latency(tmp_path / "cap.csv").clock
    assert c.estimates == 3 and c.offset_ms == pytest.approx(0.2) and c.rtt_ms == pytest.approx(7.0)
    assert not c.skewed and c.warnings == []


def test_negative_ages_mean_a_skewed_clock(tmp_path, capsys):
    ages = lognormal_ages(1000) - 6.0  # a quarter of the ages < 0: the local clock is ~6 ms behind
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    f = write_capture(tmp_path / "cap.csv", tc, ages)
    r = analyze_latency(f)
    assert r.clock.skewed and r.clock.negative_ages == int((ages < 0).sum())
    assert main(["--file", str(f), "--normal-max-ms", "20", "--degraded-max-ms", "80"]) == 0
    assert "WARNING: clock looks skewed" in capsys.readouterr().out


def test_offset_beyond_half_rtt_means_a_skewed_clock(tmp_path):
    ages = lognormal_ages(1000) + 10
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    write_capture(tmp_path / "cap.csv", tc, ages)
    events(tmp_path / "events.jsonl", {"kind": "clock_estimate", "offset_ns": 25_000_000, "rtt_ns": 4_000_000})
    c = analyze_latency(tmp_path / "cap.csv").clock
    assert c.skewed and "25.000 ms ahead of the local clock" in c.warnings[0]
    assert c.offset_corrected_p50_ms == pytest.approx(analyze_latency(tmp_path / "cap.csv").p50_ms + 25.0)


def test_ages_below_half_the_rtt_mean_a_skewed_clock(tmp_path):
    ages = np.round(np.random.default_rng(3).uniform(0.5, 3.0, 5000), 3)  # faster than light at RTT 40 ms
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    write_capture(tmp_path / "cap.csv", tc, ages)
    pings = [{"kind": "clock_estimate", "offset_ns": 0, "rtt_ns": 40_000_000 + k * 100_000} for k in range(12)]
    events(tmp_path / "ev.jsonl", *pings)
    c = analyze_latency(tmp_path / "cap.csv", events_path=tmp_path / "ev.jsonl").clock
    assert c.skewed and "half the best ping RTT" in c.warnings[-1]
    assert c.rtt_min_ms == pytest.approx(40.0)
    events(tmp_path / "few.jsonl", *pings[:2])  # two pings say little about the best path: no verdict
    assert not analyze_latency(tmp_path / "cap.csv", events_path=tmp_path / "few.jsonl").clock.skewed


def test_json_has_the_promised_keys(tmp_path, capsys):
    ages = lognormal_ages(5000)
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    f = write_capture(tmp_path / "cap.csv", tc, ages)
    assert main(["--file", str(f), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) >= {"samples", "p50_ms", "p95_ms", "p99_ms", "unsafe_share", "p90_ms", "p99_9_ms", "max_ms",
                      "mean_ms", "normal_share", "degraded_share", "per_hour", "longest_unsafe_spell", "clock"}
    assert d["samples"] == 5000 and d["p50_ms"] == pytest.approx(np.percentile(ages, 50))
    assert len(d["per_hour"]) == 2  # 5000 s span two UTC hours


def test_plot_is_written(tmp_path):
    ages = lognormal_ages(3000)
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    out = tmp_path / "figs" / "lat.png"
    r = analyze_latency(write_capture(tmp_path / "cap.csv", tc, ages), plot_path=out)
    assert r.plot == str(out) and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_torn_last_line_is_skipped_with_a_note(tmp_path):
    ages = lognormal_ages(100)
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    f = write_capture(tmp_path / "cap.csv", tc, ages)
    with f.open("a") as fh:
        fh.write("kraken,BTC/EUR,17145216")
    r = analyze_latency(f)
    assert r.samples == 100 and r.p50_ms == pytest.approx(np.percentile(ages, 50))
    assert any("torn last line" in w for w in r.warnings)


def test_bad_rows_are_skipped_and_counted(tmp_path):
    ages = lognormal_ages(100)
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    f = write_capture(tmp_path / "cap.csv", tc, ages)
    with f.open("a") as fh:
        fh.write("kraken,BTC/EUR,1,2,not-a-number,1,1,2,2\n\n")
    r = analyze_latency(f)
    assert r.samples == 100 and r.skipped_rows == 2


def test_parquet_gives_the_same_numbers_as_csv(tmp_path):
    ages = lognormal_ages(2000)
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    csv_r = analyze_latency(write_capture(tmp_path / "cap.csv", tc, ages))
    part = tmp_path / "pq" / "parquet" / "exchange=kraken" / "symbol=BTC-EUR" / "date=2024-05-01"
    part.mkdir(parents=True)
    te = tc - np.round(ages * 1e6).astype(np.int64)
    rows = [{"kind": "top_of_book", "exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": int(a),
             "ts_capture": int(b), "bid": 1.0, "bid_qty": 1.0, "ask": 2.0, "ask_qty": 1.0, "source": "book"}
            for a, b in zip(te, tc)]
    schema = arrow_schema(TopOfBook)
    pq.write_table(pa.Table.from_pylist(rows[:1000], schema=schema), part / "top_of_book-00-0000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[1000:], schema=schema), part / "top_of_book-00-0001.parquet")
    pq_r = analyze_latency(tmp_path / "pq")
    assert pq_r.source == "parquet" and pq_r.samples == csv_r.samples
    assert [pq_r.p50_ms, pq_r.p99_ms, pq_r.unsafe_share] == pytest.approx(
        [csv_r.p50_ms, csv_r.p99_ms, csv_r.unsafe_share])


def test_bad_input_exits_2_with_the_file_named(tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    assert main(["--file", str(missing), "--normal-max-ms", "20", "--degraded-max-ms", "80"]) == 2
    assert str(missing) in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER + "\n")
    assert main(["--file", str(empty), "--normal-max-ms", "20", "--degraded-max-ms", "80"]) == 2
    assert "no samples" in capsys.readouterr().err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,c\n1,2,3\n")
    assert main(["--file", str(wrong), "--normal-max-ms", "20", "--degraded-max-ms", "80"]) == 2
    assert "header" in capsys.readouterr().err
    with pytest.raises(InputError):
        analyze_latency(missing)


def test_users_command_runs_as_a_script(tmp_path):
    """`python mm_core/analyze.py --file F.csv --normal-max-ms 20 --degraded-max-ms 80`, from the repo root."""
    ages = lognormal_ages(1000)
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    f = write_capture(tmp_path / "F.csv", tc, ages)
    p = subprocess.run([sys.executable, "mm_core/analyze.py", "--file", str(f), "--normal-max-ms", "20",
                        "--degraded-max-ms", "80"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "p50" in p.stdout and "age <= 20 ms" in p.stdout and "age > 80 ms" in p.stdout
    assert f"{np.percentile(ages, 50):.3f}" in p.stdout
    missing = subprocess.run([sys.executable, "mm_core/analyze.py", "--file", str(tmp_path / "x.csv")],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "x.csv" in missing.stderr


def test_mm_analyze_subcommand_is_the_same_code(tmp_path, capsys):
    from mm_core.cli import main as mm

    ages = lognormal_ages(500)
    tc = T0 + np.arange(ages.size, dtype=np.int64) * S
    f = write_capture(tmp_path / "cap.csv", tc, ages)
    assert mm(["analyze", "--file", str(f), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["normal_max_ms"] == 20.0 and d["degraded_max_ms"] == 80.0  # from the shipped config
    assert d["p99_ms"] == pytest.approx(np.percentile(ages, 99))
