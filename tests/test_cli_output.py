"""Human output reads as prose and tables: no Python reprs (dicts, None, nan), tables fit 100 columns."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mm_core.cli import main as mm_main
from test_gate import S, T0, clock_events, make_run

PY_REPR = re.compile(r"\bNone\b|\bnan\b|\{'|\{\"|\bTrue\b|\bFalse\b")


def _short_unreliable_run(tmp_path: Path) -> Path:
    tc = T0 + np.arange(200, dtype=np.int64) * (S // 10)
    return make_run(tmp_path / "run", tc, np.full(200, 6.0),
                    clock=clock_events(int(tc[0]), [-0.8, 3.0], [20.5, 19.5]))


def test_gate_table_fits_100_columns_and_has_no_python_reprs(tmp_path: Path, capsys) -> None:
    rd = _short_unreliable_run(tmp_path)
    code = mm_main(["gate", str(rd)])
    out = capsys.readouterr().out
    assert code == 1 and "DECISION: FIX-AND-RERUN" in out
    long = [ln for ln in out.splitlines() if len(ln) > 100 and str(rd) not in ln]
    assert not long, long
    assert "NOT RELIABLE" in out  # the long clock detail is wrapped, not cut
    assert not PY_REPR.findall(out), PY_REPR.findall(out)


def test_qa_and_analyze_human_output_has_no_python_reprs(tmp_path: Path, capsys) -> None:
    rd = _short_unreliable_run(tmp_path)
    csv = str(rd / "kraken-btc-eur.csv")
    for args in (["qa", csv], ["analyze", csv]):
        mm_main(args)
        out = capsys.readouterr().out
        assert not PY_REPR.findall(out), (args[0], PY_REPR.findall(out), out)


def test_backtest_and_research_progress_lines_have_no_python_reprs(tmp_path: Path, capsys) -> None:
    mm_main(["backtest", "--sim-seconds", "20"])
    mm_main(["research", "--sim-seconds", "60", "--out", str(tmp_path / "r.html")])
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert "data: BTC/EUR" in text
    assert not PY_REPR.findall(text), PY_REPR.findall(text)


def test_qa_of_a_file_without_samples_prints_no_nan(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "F.csv"
    csv.write_text("exchange,symbol,ts_exchange,ts_capture,age_ms,bid,bid_qty,ask,ask_qty\n", encoding="utf-8")
    mm_main(["qa", str(csv)])
    out = capsys.readouterr().out
    assert "negative_ages" in out and not PY_REPR.findall(out), PY_REPR.findall(out)
