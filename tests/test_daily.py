"""Daily export: one row per UTC day, pooled over runs, with that day's QA and reconnects."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mm_core.daily import COLUMNS, daily_rows, main

T0 = 1_714_521_600_000_000_000  # 2024-05-01 00:00:00 UTC
S = 1_000_000_000
H = 3600 * S


def write_run(rd: Path, tc: np.ndarray, ages: np.ndarray, *, bid: np.ndarray | None = None,
              reconnects_at: tuple[int, ...] = ()) -> Path:
    rd.mkdir(parents=True)
    te = tc - np.round(ages * 1e6).astype(np.int64)
    pl.DataFrame({
        "exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": te, "ts_capture": tc,
        "age_ms": ((tc - te) / 1e6).round(3), "bid": 60000.0 if bid is None else bid, "bid_qty": 0.5,
        "ask": 60000.1, "ask_qty": 0.25,
    }).write_csv(rd / "cap.csv")
    (rd / "summary.json").write_text(json.dumps({"csv": "cap.csv", "samples": int(tc.size), "exit_reason": "signal"}))
    ev = [{"kind": "connected", "exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": None,
           "ts_capture": int(tc[0])}]
    ev += [{"kind": "reconnecting", "exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": None, "ts_capture": t,
            "attempt": 1, "delay_s": 1.0} for t in reconnects_at]
    (rd / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ev))
    return rd


@pytest.fixture
def two_runs(tmp_path):
    """Run A: May 1 22:00 -> May 2 02:00; run B: May 2 23:00 -> May 3 01:00 (with a crossed quote on May 3)."""
    rng = np.random.default_rng(5)
    ta = T0 + 22 * H + np.arange(4 * 3600, dtype=np.int64) * S
    aa = np.round(rng.lognormal(np.log(8), 0.5, ta.size), 3)
    tb = T0 + (24 + 23) * H + np.arange(2 * 3600, dtype=np.int64) * S
    ab = np.round(rng.lognormal(np.log(30), 0.5, tb.size), 3)
    bid = np.full(tb.size, 60000.0)
    bid[-10] = 60001.0  # crossed, on May 3
    a = write_run(tmp_path / "a", ta, aa, reconnects_at=(int(T0 + 25 * H), int(T0 + 25 * H + 5 * S)))
    b = write_run(tmp_path / "b", tb, ab, bid=bid)
    return a, b, (ta, aa), (tb, ab)


def test_one_row_per_utc_day_pooled_over_runs(two_runs):
    a, b, (ta, aa), (tb, ab) = two_runs
    rows = daily_rows([a, b], unsafe_ms=80.0)
    assert [r.date for r in rows] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    day = lambda t: (t - T0) // (24 * H)  # noqa: E731
    may2 = np.concatenate([aa[day(ta) == 1], ab[day(tb) == 1]])
    assert rows[1].samples == may2.size and rows[1].runs == 2
    assert [rows[1].p50_ms, rows[1].p95_ms, rows[1].p99_ms] == pytest.approx(np.percentile(may2, [50, 95, 99]))
    assert rows[1].unsafe_share == pytest.approx(np.mean(may2 > 80))
    assert rows[0].samples == 2 * 3600 and rows[2].samples == 3600


def test_qa_status_and_reconnects_are_per_day(two_runs):
    a, b, *_ = two_runs
    rows = {r.date: r for r in daily_rows([a, b])}
    assert rows["2024-05-01"].qa_status == "PASS" and rows["2024-05-02"].qa_status == "PASS"
    assert rows["2024-05-03"].qa_status == "FAIL" and "crossed_book 1" in rows["2024-05-03"].qa_issues
    assert [rows[d].reconnects for d in sorted(rows)] == [0, 2, 0]


def test_a_gap_across_midnight_counts_for_the_day_it_ends(tmp_path):
    tc = np.concatenate([T0 + 24 * H - 100 * S + np.arange(50, dtype=np.int64) * S,
                         T0 + 24 * H + 30 * S + np.arange(50, dtype=np.int64) * S])  # 80 s gap over midnight
    rows = daily_rows([write_run(tmp_path / "r", tc, np.full(tc.size, 5.0))])
    assert [(r.date, r.qa_status) for r in rows] == [("2024-05-01", "PASS"), ("2024-05-02", "FAIL")]
    assert "gaps 1" in rows[1].qa_issues


def test_writes_the_spreadsheet_and_json(two_runs, tmp_path, capsys):
    a, b, *_ = two_runs
    out = tmp_path / "out" / "daily.csv"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2024-05-03" in printed and f"wrote {out}" in printed
    with out.open(newline="") as fh:
        table = list(csv.reader(fh))
    assert tuple(table[0]) == COLUMNS and len(table) == 4
    assert main([str(a), str(b), "--out", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [x["date"] for x in d["days"]] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert set(d["days"][0]) == set(COLUMNS)


def test_missing_run_dir_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "d.csv")]) == 2
    assert "nope" in capsys.readouterr().err
