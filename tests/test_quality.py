"""Data QA: one test per defect the plan names, plus the user's own command as they type it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_core.capture.layout import CSV_COLUMNS
from mm_core.events import TopOfBook, arrow_schema
from mm_core.quality import (
    EXIT_FAIL,
    EXIT_INPUT,
    EXIT_PASS,
    EXIT_WARN,
    FAIL,
    PASS,
    SKIP,
    WARN,
    InputError,
    load_samples,
    main,
    run_qa,
)

ROOT = Path(__file__).resolve().parent.parent
HEADER = ",".join(CSV_COLUMNS)
T0 = 1_714_521_600_000_000_000  # 2024-05-01 00:00:00 UTC
STEP = 100_000_000  # 10 samples per second


def row(i: int, age_ms: float = 5.0, bid: float = 60000.0, ask: float = 60000.1, bid_qty: float = 0.5,
        ask_qty: float = 0.25, tc: int | None = None) -> str:
    """One line exactly as the collector writes it (mm_core/store/sample_csv.py)."""
    tc = T0 + i * STEP if tc is None else tc
    te = tc - int(round(age_ms * 1e6))
    return f"kraken,BTC/EUR,{te},{tc},{(tc - te) / 1e6:.3f},{bid!r},{bid_qty!r},{ask!r},{ask_qty!r}"


def good(n: int = 50) -> list[str]:
    return [row(i, age_ms=3.0 + (i % 7)) for i in range(n)]


def write(tmp_path: Path, lines: list[str], *, end_newline: bool = True, name: str = "cap.csv",
          header: str = HEADER, summary: dict | None = None) -> Path:
    p = tmp_path / name
    text = "\n".join([header, *lines]) + ("\n" if end_newline else "")
    p.write_text(text, encoding="utf-8", newline="")
    if summary is not None:
        (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return p


def status(r, name: str) -> str:
    c = r.check(name)
    assert c is not None, f"no check {name}"
    return c.status


def test_clean_capture_passes_every_check(tmp_path):
    r = run_qa(write(tmp_path, good()), strict=True)
    assert r.status == PASS, [(c.name, c.detail) for c in r.failed]
    assert r.rows == 50
    assert status(r, "row_count") == SKIP  # no summary beside the file: said, not guessed


def test_nan_and_empty_fields_fail(tmp_path):
    lines = good()
    lines[3] = row(3, bid=float("nan"))  # written as "nan"
    lines[7] = row(7).rsplit(",", 1)[0] + ","  # empty ask_qty
    r = run_qa(write(tmp_path, lines))
    c = r.check("nan_empty")
    assert c.status == FAIL and c.value == 2
    assert "line 5" in c.detail and "bid: 1" in c.detail and "ask_qty: 1" in c.detail


def test_non_positive_prices_and_sizes_fail(tmp_path):
    lines = good()
    lines[10] = row(10, bid_qty=0.0)
    lines[11] = row(11, ask=-1.0)
    c = run_qa(write(tmp_path, lines)).check("non_positive")
    assert c.status == FAIL and c.value == 2 and "line 12" in c.detail


def test_crossed_book_fails(tmp_path):
    lines = good()
    lines[4] = row(4, bid=60000.5, ask=60000.1)
    c = run_qa(write(tmp_path, lines)).check("crossed_book")
    assert c.status == FAIL and c.value == 1 and "line 6" in c.detail


def test_locked_book_warns(tmp_path):
    lines = good()
    lines[4] = row(4, bid=60000.1, ask=60000.1)
    lines[5] = row(5, bid=60000.1, ask=60000.1)
    r = run_qa(write(tmp_path, lines))
    c = r.check("locked_book")
    assert c.status == WARN and c.value == 2
    assert r.status == WARN


def test_ts_capture_going_backwards_is_counted(tmp_path):
    lines = good()
    lines[20] = row(20, tc=T0 + 5 * STEP)  # the clock stepped back 1.5 s
    c = run_qa(write(tmp_path, lines)).check("ts_capture_order")
    assert c.status == WARN and c.value == 1
    assert "line 22" in c.detail


def test_exact_duplicate_rows_are_counted(tmp_path):
    lines = good()
    lines.insert(8, lines[7])
    lines.insert(20, lines[19])
    c = run_qa(write(tmp_path, lines)).check("duplicate_rows")
    assert c.status == WARN and c.value == 2 and "line 10" in c.detail


def test_negative_ages_report_count_and_minimum(tmp_path):
    lines = good()
    lines[2] = row(2, age_ms=-0.5)
    lines[9] = row(9, age_ms=-3.25)
    c = run_qa(write(tmp_path, lines)).check("negative_ages")
    assert c.status == WARN and c.value == 2
    assert c.data["min_age_ms"] == pytest.approx(-3.25)
    assert "clock skew" in c.detail


def test_gap_over_60_s_fails_with_count_and_longest(tmp_path):
    lines = [row(i) for i in range(10)] + [row(0, tc=T0 + 9 * STEP + 75 * 10**9)] \
        + [row(0, tc=T0 + 9 * STEP + 75 * 10**9 + k * STEP) for k in range(1, 5)]
    c = run_qa(write(tmp_path, lines)).check("gaps")
    assert c.status == FAIL and c.value == 1
    assert c.data["longest_s"] == pytest.approx(75.0)
    assert "line 12" in c.detail


def test_gap_below_limit_passes_and_limit_is_configurable(tmp_path):
    lines = [row(i) for i in range(5)] + [row(0, tc=T0 + 4 * STEP + 30 * 10**9)]
    f = write(tmp_path, lines)
    assert run_qa(f).check("gaps").status == PASS
    assert run_qa(f, max_gap_s=20).check("gaps").status == FAIL


def test_torn_last_line_is_a_warning_not_a_crash(tmp_path):
    lines = good() + [row(50)[:37]]
    f = write(tmp_path, lines, end_newline=False)
    r = run_qa(f)
    c = r.check("torn_lines")
    assert c.status == WARN and c.value == 1
    assert "torn last line (hard kill?)" in c.detail and "line 52" in c.detail
    assert r.rows == 50 and r.status == WARN
    assert status(r, "types") == PASS  # the torn line is not counted as a broken row


def test_torn_last_line_that_still_parses_is_excluded(tmp_path):
    full = row(50, ask_qty=0.123456)
    f = write(tmp_path, good() + [full[:-3]], end_newline=False)  # ask_qty cut to "0.1234"
    r = run_qa(f)
    assert r.rows == 50 and r.check("torn_lines").value == 1


def test_torn_row_inside_the_file_after_a_restart_is_a_warning(tmp_path):
    lines = good()
    lines.insert(25, row(25)[:30])  # the collector starts a fresh line when it appends after a kill
    r = run_qa(write(tmp_path, lines))
    assert r.check("torn_lines").status == WARN and "line 27" in r.check("torn_lines").detail
    assert r.check("types").status == PASS


def test_unparseable_rows_are_counted_with_the_first_line(tmp_path):
    lines = good()
    lines[5] = lines[5].replace(",60000.0,", ",abc,")
    lines[9] = lines[9] + ",extra"
    lines[12] = ""
    r = run_qa(write(tmp_path, lines))
    c = r.check("types")
    assert c.status == FAIL and c.value == 3
    assert "line 7 field 'bid' = 'abc' is not a number" in c.detail
    assert c.data["by_kind"] == {"unparseable": 1, "field_count": 1, "blank": 1}
    assert r.rows == 47


def test_slow_path_reads_the_same_values_as_the_fast_path(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    fast = load_samples(write(a, good()))
    slow = load_samples(write(b, good() + ["garbage"]))
    assert slow.n_defects == 1
    assert fast.df.equals(slow.df)


def test_wrong_header_fails_and_stops(tmp_path):
    r = run_qa(write(tmp_path, good(), header="exchange,symbol,ts_capture,ts_exchange,age_ms,bid,bid_qty,ask,ask_qty"))
    assert r.status == FAIL and status(r, "schema") == FAIL
    assert "line 1 header" in r.check("schema").detail


def _summary(samples: int, exit_reason: str = "max_seconds") -> dict:
    return {"samples": samples, "exit_reason": exit_reason, "csv": "cap.csv"}


def test_row_count_matches_summary(tmp_path):
    r = run_qa(write(tmp_path, good(), summary=_summary(50)))
    assert status(r, "row_count") == PASS


def test_row_count_mismatch_fails_after_a_clean_exit(tmp_path):
    c = run_qa(write(tmp_path, good(), summary=_summary(53))).check("row_count")
    assert c.status == FAIL and "53" in c.detail and "lost" in c.detail


def test_row_count_mismatch_of_a_killed_run_is_a_warning(tmp_path):
    c = run_qa(write(tmp_path, good(), summary=_summary(45, "running"))).check("row_count")
    assert c.status == WARN


def test_summary_can_be_given_explicitly(tmp_path):
    f = write(tmp_path, good())
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps(_summary(49)))
    assert run_qa(f, summary_path=other).check("row_count").status == FAIL


def test_strict_turns_every_warn_into_fail(tmp_path):
    lines = good()
    lines[4] = row(4, bid=60000.1, ask=60000.1)
    f = write(tmp_path, lines)
    assert run_qa(f).status == WARN
    r = run_qa(f, strict=True)
    assert r.status == FAIL and r.check("locked_book").status == FAIL
    assert r.check("locked_book").detail.startswith("strict:")


def test_exit_codes(tmp_path, capsys):
    clean = write(tmp_path, good(), name="clean.csv")
    locked = write(tmp_path, [row(0, bid=1.0, ask=1.0)] + good()[1:], name="locked.csv")
    crossed = write(tmp_path, [row(0, bid=2.0, ask=1.0)] + good()[1:], name="crossed.csv")
    assert main(["--file", str(clean)]) == EXIT_PASS == 0
    assert main(["--file", str(locked)]) == EXIT_WARN == 3
    assert main(["--file", str(locked), "--strict"]) == EXIT_FAIL == 1
    assert main(["--file", str(crossed)]) == EXIT_FAIL
    capsys.readouterr()
    missing = tmp_path / "nope.csv"
    assert main(["--file", str(missing)]) == EXIT_INPUT == 2
    assert str(missing) in capsys.readouterr().err


def test_unreadable_run_dir_names_it(tmp_path):
    (tmp_path / "a.csv").write_text(HEADER + "\n")
    (tmp_path / "b.csv").write_text(HEADER + "\n")
    with pytest.raises(InputError, match=str(tmp_path).replace("\\", "\\\\") + ".*2 CSV files"):
        run_qa(tmp_path)


def test_human_table_and_json(tmp_path, capsys):
    f = write(tmp_path, good())
    assert main(["--file", str(f)]) == 0
    out = capsys.readouterr().out
    assert "CHECK" in out and "STATUS" in out and "QA PASS" in out
    out.encode("ascii")  # prints on any Windows console
    assert main(["--file", str(f), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) >= {"status", "checks", "rows", "file"}
    assert d["status"] == "PASS" and d["rows"] == 50 and d["file"] == str(f)
    assert all(set(c) >= {"name", "status", "value", "detail"} for c in d["checks"])


def f_dir(run: Path) -> Path:
    return run / "parquet" / "exchange=kraken" / "symbol=BTC-EUR" / "date=2024-05-01"


def _parquet_run(tmp_path: Path, rows: list[dict]) -> Path:
    part = f_dir(tmp_path)
    part.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(TopOfBook)), part / "top_of_book-00-0000.parquet")
    return part / "top_of_book-00-0000.parquet"


def _tob(i: int, age_ms: float = 5.0, **kw) -> dict:
    tc = T0 + i * STEP
    d = {"kind": "top_of_book", "exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": tc - int(age_ms * 1e6),
         "ts_capture": tc, "bid": 60000.0, "bid_qty": 0.5, "ask": 60000.1, "ask_qty": 0.25, "source": "book"}
    d.update(kw)
    return d


def test_parquet_parts_of_a_run_dir_are_checked(tmp_path):
    f = _parquet_run(tmp_path, [_tob(i) for i in range(20)] + [_tob(20, bid=60001.0)] + [_tob(21, ts_exchange=None)])
    r = run_qa(tmp_path)  # no CSV: the Parquet parts are the capture
    # the row without an exchange time has no age: not a sample, reported (and legal: PASS)
    assert r.source == "parquet" and r.rows == 21 and r.rejected == {"no_exchange_time": 1}
    assert r.check("crossed_book").value == 1 and f.name in r.check("crossed_book").detail
    assert r.check("no_exchange_time").value == 1 and r.check("no_exchange_time").status == PASS
    assert r.check("nan_empty").status == PASS
    assert run_qa(f).rows == 21  # a single part file works too


def test_corrupt_parquet_part_fails_schema(tmp_path):
    _parquet_run(tmp_path, [_tob(i) for i in range(5)])
    bad = f_dir(tmp_path) / "top_of_book-01-0000.parquet"
    bad.write_bytes(b"PAR1 torn")
    r = run_qa(tmp_path, source="parquet")
    assert r.check("schema").status == FAIL and "top_of_book-01-0000.parquet" in r.check("schema").detail
    assert r.rows == 5


def test_users_command_runs_as_a_script(tmp_path):
    """`python mm_core/data_quality_check.py --file F.csv --strict`, from the repo root."""
    clean = write(tmp_path, good(), name="clean.csv")
    torn = write(tmp_path, good() + [row(50)[:20]], name="torn.csv", end_newline=False)
    cmd = [sys.executable, "mm_core/data_quality_check.py", "--file"]
    ok = subprocess.run(cmd + [str(clean), "--strict"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "QA PASS" in ok.stdout
    bad = subprocess.run(cmd + [str(torn), "--strict"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1, bad.stderr
    assert "torn last line (hard kill?)" in bad.stdout and "QA FAIL" in bad.stdout


def test_a_capture_without_rows_fails(tmp_path):
    r = run_qa(write(tmp_path, []))
    assert r.status == FAIL and r.check("rows").status == FAIL


def test_mm_qa_subcommand_is_the_same_code(tmp_path, capsys):
    from mm_core.cli import main as mm

    f = write(tmp_path, good())
    assert mm(["qa", "--file", str(f), "--strict", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "PASS"


def test_script_works_from_any_working_directory(tmp_path):
    f = write(tmp_path, good())
    p = subprocess.run([sys.executable, str(ROOT / "mm_core" / "data_quality_check.py"), "--file", f.name],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
