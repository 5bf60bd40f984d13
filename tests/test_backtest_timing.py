"""What ``mm backtest --json`` reports about speed: the whole run, numba compilation apart."""

from __future__ import annotations

import json

import numpy as np
from numba import njit

from mm_core.backtest.engine import stopwatch
from mm_core.cli import main


def test_stopwatch_takes_numba_compilation_out_of_the_run():
    @njit
    def fresh(a):  # a new function: compiled inside the stopwatch
        s = 0.0
        for x in a:
            s += x * x
        return s

    with stopwatch() as sw:
        fresh(np.arange(10.0))
    assert sw.compile > 0.0 and sw.run < sw.wall and abs(sw.run + sw.compile - sw.wall) < 1e-9
    with stopwatch() as again:
        fresh(np.arange(10.0))
    assert again.compile == 0.0 and again.run == again.wall


def test_events_per_second_is_rows_over_the_whole_run(tmp_path, capsys, monkeypatch):
    from mm_core.backtest import event_arrays as ea
    from mm_core.store.parquet_store import ParquetEventStore

    store = ParquetEventStore(tmp_path / "run" / "parquet")
    store.add_many(list(ea.simulator_events(120.0, 3)))
    store.close()
    monkeypatch.setenv("MM_ROW_CACHE", "off")
    assert main(["backtest", str(tmp_path / "run"), "--json", "--rate-tier", "off"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("events_per_second", "run_seconds", "compile_seconds", "load_seconds", "loop_seconds", "rows"):
        assert key in out
    assert out["events_per_second"] == out["rows"] / out["run_seconds"]
    # the whole run covers Parquet -> rows and the loop (and the fair series and PnL besides)
    assert out["run_seconds"] >= out["load_seconds"] + out["loop_seconds"]
    assert out["load_seconds"] > 0 and out["compile_seconds"] >= 0
