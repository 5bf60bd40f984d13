"""Progress bars on long work: done/total, rate and ETA on a terminal; nothing under --json or in a pipe."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from mm_core.cli import main as mm_main
from mm_core.progress import TaskBar
from test_gate import S, T0, make_run


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_shows_count_rate_and_eta_on_a_terminal_only() -> None:
    tty = FakeTerminal()
    with TaskBar("days", 3, True, stream=tty, unit="days") as bar:
        for _ in bar.each(range(3)):
            time.sleep(0.05)
    out = tty.getvalue()
    assert "3/3" in out and "days/s" in out and "eta" in out
    pipe = io.StringIO()  # not a terminal
    with TaskBar("days", 3, True, stream=pipe) as bar:
        for _ in bar.each(range(3)):
            pass
    assert pipe.getvalue() == ""
    off = FakeTerminal()  # a terminal, but the command runs with --json
    with TaskBar("days", 3, False, stream=off) as bar:
        bar.step(3)
    assert off.getvalue() == ""


def _runs(tmp_path: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        tc = T0 + i * 86_400 * S + np.arange(50, dtype=np.int64) * S
        out.append(str(make_run(tmp_path / f"run{i}", tc, np.full(50, 6.0))))
    return out


def test_daily_over_many_days_draws_a_bar_on_a_terminal_not_under_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _runs(tmp_path, 3)
    tty = FakeTerminal()
    monkeypatch.setattr("sys.stderr", tty)
    assert mm_main(["daily", *runs, "--out", str(tmp_path / "d.csv")]) in (0, 1)
    assert "3/3" in tty.getvalue() and "runs/s" in tty.getvalue() and "eta" in tty.getvalue()
    tty2 = FakeTerminal()
    monkeypatch.setattr("sys.stderr", tty2)
    mm_main(["daily", *runs, "--out", str(tmp_path / "d2.csv"), "--json"])
    assert "runs/s" not in tty2.getvalue()


def test_research_draws_a_fold_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tty = FakeTerminal()
    monkeypatch.setattr("sys.stderr", tty)
    mm_main(["research", "--sim-seconds", "600", "--blocks", "3", "--out", str(tmp_path / "r.html")])
    assert "4/4" in tty.getvalue() and "folds/s" in tty.getvalue()


def test_replay_of_a_big_archive_draws_a_bar_by_bytes_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from mm_core.replay import _FileBar

    tty = FakeTerminal()
    monkeypatch.setattr("sys.stderr", tty)
    rec = SimpleNamespace(path=Path("big.jsonl.gz"), size=4 * 1024 * 1024, bytes_read=0)
    bar = _FileBar(enabled=True)
    for k in range(1, 5):
        rec.bytes_read = k * 1024 * 1024
        bar.show(rec, k * 4096)  # type: ignore[arg-type]
        time.sleep(0.02)
    bar.close()
    assert "4096/4096" in tty.getvalue() and "KiB/s" in tty.getvalue() and "eta" in tty.getvalue()
    quiet = _FileBar(enabled=False)  # --json
    quiet.show(rec, 4096)  # type: ignore[arg-type]
    assert quiet._bar is None


def test_replay_json_draws_nothing_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from conftest import V2_BOOK

    tty = FakeTerminal()
    monkeypatch.setattr("sys.stderr", tty)
    mm_main(["replay", str(V2_BOOK), "--json"])
    assert tty.getvalue() == ""
