"""One row-validation rule for qa, analyze, daily and gate: same sample count, garbage reported.

The file mixes good rows with every kind of garbage seen in the wild (a 1970 timestamp, a
non-numeric field, absurd ages of both signs, an age that contradicts its timestamps, a NaN, a
non-positive price, a torn last line) and one legitimate negative age (clock skew: a sample).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mm_core.cli import main as mm
from test_quality import HEADER, T0, row

GOOD = 300


def garbage_capture(rd: Path) -> Path:
    rd.mkdir(parents=True, exist_ok=True)
    lines = [row(i, age_ms=8.0 + i % 7) for i in range(GOOD)]
    lines[40] = row(40, age_ms=-0.5)  # the local clock 0.5 ms behind: a clock signal, still a sample
    tc = T0 + 150 * 100_000_000 + 5
    garbage = [
        "kraken,BTC/EUR,0,1000,0.001,60000.0,0.5,60000.1,0.7",  # 1970
        f"kraken,BTC/EUR,{tc - 8_000_000},{tc},8.000,abc,0.5,60000.1,0.7",  # non-numeric
        f"kraken,BTC/EUR,{tc + 9_000_000_000_000},{tc},-9000000.000,60000.0,0.5,60000.1,0.7",  # -2.5 h
        f"kraken,BTC/EUR,{tc - 7_200_000_000_000},{tc},7200000.000,60000.0,0.5,60000.1,0.7",  # 2 h old
        f"kraken,BTC/EUR,{tc - 8_000_000},{tc},3.000,60000.0,0.5,60000.1,0.7",  # age != ts difference
        f"kraken,BTC/EUR,{tc - 8_000_000},{tc},8.000,nan,0.5,60000.1,0.7",  # NaN
        f"kraken,BTC/EUR,{tc - 8_000_000},{tc},8.000,60000.0,0.5,-1.0,0.7",  # negative price
    ]
    for k, g in enumerate(garbage):
        lines.insert(100 + 20 * k, g)
    text = "\n".join([HEADER, *lines]) + "\n" + row(GOOD)[:25]  # torn last line (hard kill)
    (rd / "F.csv").write_text(text, encoding="utf-8", newline="")
    return rd


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = mm(args)
    return code, json.loads(capsys.readouterr().out)


def test_qa_analyze_daily_and_gate_count_the_same_samples_and_report_the_garbage(tmp_path, capsys):
    rd = garbage_capture(tmp_path / "run")
    f = str(rd / "F.csv")
    qa_code, qa = run_json(["qa", "--file", f, "--json"], capsys)
    an_code, an = run_json(["analyze", "--file", f, "--json"], capsys)
    _, gate = run_json(["gate", str(rd), "--json", "--scale-to-seconds", "30"], capsys)
    _, daily = run_json(["daily", str(rd), "--json", "--out", str(tmp_path / "d.csv")], capsys)

    gate_samples = next(c for c in gate["checks"] if c["name"] == "samples")["value"]
    counts = {"qa": qa["rows"], "analyze": an["samples"], "gate": gate_samples,
              "daily": sum(d["samples"] for d in daily["days"])}
    assert counts == {k: GOOD for k in counts}, counts
    assert qa["samples"] == qa["rows"]

    # the garbage is reported, not dropped: the same reasons everywhere
    expected = {"unparseable": 1, "missing": 1, "time_range": 1, "age_mismatch": 1, "age_range": 2,
                "non_positive": 1, "torn": 1}
    assert qa["rejected_rows"] == expected and an["rejected_rows"] == expected
    assert gate["latency"]["rejected_rows"] == expected
    assert qa_code == 1 and qa["status"] == "FAIL"
    status = {c["name"]: c["status"] for c in qa["checks"]}
    for name in ("types", "nan_empty", "time_range", "age_range", "age_consistency", "non_positive"):
        assert status[name] == "FAIL", name
    assert status["negative_ages"] == "WARN"  # the -0.5 ms row is a sample with a clock signal
    detail = {c["name"]: c["detail"] for c in qa["checks"]}
    assert "line 102: timestamp outside 2009..2100" in detail["time_range"]
    assert "not samples" in next(c for c in gate["checks"] if c["name"] == "samples")["detail"]
    assert gate["decision"] == "FIX-AND-RERUN" and "data_qa_strict" in gate["failed"]
    # nothing from 1970: the span is the real 30 s, not 54 years, and there is one day, not two
    assert an_code == 0 and an["span_s"] == pytest.approx(29.9, abs=0.2)
    assert [d["date"] for d in daily["days"]] == ["2024-05-01"]
    assert any("in no day" in n and "line 102" in n for n in daily["notes"])
    assert an["negative_ages"] == {"count": 1, "share": pytest.approx(1 / GOOD), "min_ms": -0.5}


def test_parquet_rows_obey_the_same_rule(tmp_path):
    """A Parquet part with a 1970 row and an absurd age: not samples there either."""
    from mm_core.latency import analyze_latency
    from mm_core.quality import run_qa
    from test_quality import _parquet_run, _tob

    rows = [_tob(i) for i in range(20)] + [_tob(20, ts_exchange=5, ts_capture=10)] + [_tob(21, age_ms=7_200_000.0)]
    _parquet_run(tmp_path, rows)
    q = run_qa(tmp_path)
    assert q.rows == 20 and q.rejected == {"time_range": 1, "age_range": 1}
    assert analyze_latency(tmp_path).samples == 20
