"""Scale-out: many days of the partitioned store on a process pool or Dask, and ``mm query``.

The promises: a sweep or study on a Dask LocalCluster (2 worker processes, loopback) returns exactly
what the process pool returns; a day that opens mid-capture is rebuilt with the book it had at
midnight (row for row as one pass over the capture); the walk-forward selects on earlier days and
judges on later ones; tasks carry paths, not data; bad input is one line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mm_core.cli import main

S = 1_000_000_000
H = 3600 * S
D0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def _write_run(run: Path, seed: int, start_ns: int, seconds: float) -> None:
    """A simulated collector run (Parquet partitions by capture hour/day), as the collector files it."""
    from mm_core.simexchange.canonical import canonical_events
    from mm_core.simexchange.market import MarketModel
    from mm_core.store.parquet_store import ParquetEventStore

    store = ParquetEventStore(run / "parquet", flush_interval_s=1e9, max_rows=250_000)
    for ev in canonical_events(MarketModel(seed=seed, start_ns=start_ns, predictive=True), seconds, depth=10,
                               tops=True):
        store.add(ev)
    store.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Three days: run ``a`` captures 23:00 -> 01:00 across the first midnight (day 2 opens without a
    snapshot), run ``b`` is a fresh capture on day 3."""
    root = tmp_path_factory.mktemp("store")
    _write_run(root / "a", 1, D0 + 23 * H, 7200)
    _write_run(root / "b", 2, D0 + 48 * H, 3600)
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cache"))  # LocalCluster workers inherit it
    return tmp_path / "cache"


def _json(capsys, argv: list[str]) -> tuple[int, dict]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def _day_files(folder: Path) -> dict[str, list[Path]]:
    return {t: sorted(folder.glob(f"{t}-*.parquet")) for t in ("book", "trade", "top_of_book")}


def test_a_day_that_opens_mid_capture_gets_the_book_it_had_at_midnight(store):
    from mm_core.backtest import event_arrays as ea

    part = store / "a" / "parquet" / "exchange=kraken" / "symbol=BTC-EUR"
    whole = ea.from_run_dir(store / "a", tick_size=0.1)
    day1 = ea.from_files(_day_files(part / "date=2026-01-01"), tick_size=0.1)
    seed = ea.BookSeed.at_end(day1)
    assert seed.bid_px.size == 10 and seed.ask_px.size == 10 and seed.bid_px[0] < seed.ask_px[0]
    seeded = ea.from_files(_day_files(part / "date=2026-01-02"), tick_size=0.1, seed=seed)
    alone = ea.from_files(_day_files(part / "date=2026-01-02"), tick_size=0.1)
    head = 2 + seed.bid_px.size + seed.ask_px.size  # two clears, then the seed's levels
    rest = slice(len(day1), None)
    for k in ("kind", "side", "exch_ts", "tick", "qty", "best_bid_tick", "best_ask_tick"):
        assert np.array_equal(getattr(seeded, k)[head:], getattr(whole, k)[rest]), k
    # without the seed the day starts from a half-empty book: not the capture's book (the simulator's
    # quiet market may keep one side's best for many rows; the side its first message missed differs)
    assert not (np.array_equal(alone.best_ask_tick[:50], whole.best_ask_tick[rest][:50])
                and np.array_equal(alone.best_bid_tick[:50], whole.best_bid_tick[rest][:50]))
    # a day that opens with its own snapshot ignores a seed
    fresh = _day_files(store / "b" / "parquet" / "exchange=kraken" / "symbol=BTC-EUR" / "date=2026-01-03")
    assert np.array_equal(ea.from_files(fresh, tick_size=0.1, seed=seed).best_bid_tick,
                          ea.from_files(fresh, tick_size=0.1).best_bid_tick)


def test_days_are_found_by_path_alone(store, tmp_path):
    from mm_core.store.partitions import StoreError, find_days, one_instrument

    days = find_days([store])
    assert [d.date for d in days] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert {d.symbol for d in days} == {"BTC/EUR"}
    assert [d.date for d in find_days([store], date_from="2026-01-02", date_to="2026-01-02")] == ["2026-01-02"]
    assert find_days([store / "b"]) == days[2:]
    with pytest.raises(StoreError, match="expected a date"):
        find_days([store], date_from="2026-1-2")
    with pytest.raises(StoreError, match="no day partitions"):
        one_instrument(find_days([store], symbol="ETH/EUR"), "x")
    other = tmp_path / "eth" / "exchange=kraken" / "symbol=ETH-EUR" / "date=2026-01-01"
    other.mkdir(parents=True)
    (other / "book-00-0000.parquet").write_bytes(b"")
    with pytest.raises(StoreError, match="several instruments"):
        one_instrument(find_days([store, tmp_path / "eth"]), "x")


SWEEP = ["--spreads", "0.05,0.1", "--min-fills", "1", "--latency-scales", "1,2", "--fees", "none", "--json"]


def test_multi_day_sweep_on_a_local_cluster_equals_the_process_pool(store, cache, capsys):
    from mm_core.backtest.sweep_days import comparable

    code_pool, pool = _json(capsys, ["sweep", "--store", str(store), *SWEEP])
    code_dask, dask = _json(capsys, ["sweep", "--store", str(store), *SWEEP, "--scheduler", "local",
                                     "--workers", "2"])
    assert pool["scheduler"] == {"executor": "process-pool", "workers": 2}
    assert dask["scheduler"]["executor"] == "dask" and dask["scheduler"]["workers"] == 2
    assert dask["scheduler"]["address"].startswith("tcp://127.0.0.1:")
    assert code_pool == code_dask
    assert comparable(pool) == comparable(dask)
    # 2 sets x (2 selection days x base + 1 report day x 2 scenarios)
    assert pool["tasks"] == len(pool["per_day"]) == 2 * (2 + 2)
    assert [(d["date"], d["period"], d["seeded"]) for d in pool["days"]] == [
        ("2026-01-01", "select", False), ("2026-01-02", "select", True), ("2026-01-03", "report", False)]
    # the selected set is the best by base PnL summed over the selection days
    sel = [r for r in pool["results"] if r["period"] == "select"]
    best = max(sel, key=lambda r: r["total_pnl"])
    assert pool["walk_forward"]["selected"] == best["params"]
    for r in sel:
        days = [x for x in pool["per_day"] if x["params"] == r["params"] and x["period"] == "select"]
        assert [x["day"] for x in days] == ["2026-01-01", "2026-01-02"]
        assert r["total_pnl"] == pytest.approx(sum(x["total_pnl"] for x in days), abs=1e-12)
        assert r["fills"] == sum(x["fills"] for x in days) > 0


def test_any_strategy_sweeps_over_days_on_a_local_cluster(store, cache, capsys):
    from mm_core.backtest.sweep_days import comparable

    argv = ["sweep", "--store", str(store), "--from", "2026-01-02", "--strategy", "avellaneda-stoikov",
            "--param", "kappa=20", "--param", "sigma=2", "--grid", "gamma=0.5,1", "--min-fills", "1",
            "--latency-scales", "1", "--fees", "none", "--json"]
    code_pool, pool = _json(capsys, argv)
    code_dask, dask = _json(capsys, [*argv, "--scheduler", "local", "--workers", "2"])
    assert code_pool == code_dask and comparable(pool) == comparable(dask)
    assert [r["params"] for r in pool["results"] if r["period"] == "select"] == [{"gamma": 0.5}, {"gamma": 1}]
    assert pool["walk_forward"]["selected"] in ({"gamma": 0.5}, {"gamma": 1})
    assert all(r["fills"] > 0 for r in pool["per_day"])


def test_single_run_sweep_on_a_local_cluster_equals_the_process_pool(store, cache, capsys):
    argv = ["sweep", str(store / "a"), "--spreads", "0.05,0.1", "--min-fills", "1", "--latency-scales", "1",
            "--fees", "none", "--json"]
    code_pool, pool = _json(capsys, argv)
    code_dask, dask = _json(capsys, [*argv, "--scheduler", "local", "--workers", "2"])
    drop = lambda rs: [{k: v for k, v in r.items() if k != "events_per_second"} for r in rs]  # noqa: E731
    assert code_pool == code_dask
    assert drop(pool["results"]) == drop(dask["results"]) and pool["verdicts"] == dask["verdicts"]


@pytest.mark.slow  # three studies of three hours (~12 s)
def test_research_over_days_on_a_local_cluster_equals_the_process_pool(store, cache, tmp_path, capsys):
    def comparable(doc):  # without timings, paths and the executor
        out = {k: v for k, v in doc.items() if k not in ("seconds", "scheduler", "report", "models")}
        out["days"] = [{k: v for k, v in d.items() if k != "timings_s"} for d in doc["days"]]
        return out

    argv = ["research", "--store", str(store), "--json", "--blocks", "3"]
    code_pool, pool = _json(capsys, [*argv, "--out", str(tmp_path / "p" / "r.html")])
    code_dask, dask = _json(capsys, [*argv, "--out", str(tmp_path / "d" / "r.html"), "--scheduler", "local"])
    assert code_pool == code_dask
    assert comparable(pool) == comparable(dask)
    assert [d["date"] for d in pool["per_day"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [d["seeded"] for d in pool["per_day"]] == [False, True, False]
    assert (tmp_path / "p" / "r-days" / "2026-01-02.html").is_file()
    assert any(p.endswith("2026-01-03/fair_mid_linear_1s.json") for p in pool["models"])
    # a day that opens with a snapshot scores exactly as a single-run study of its partition
    one = store / "b" / "parquet" / "exchange=kraken" / "symbol=BTC-EUR" / "date=2026-01-03"
    _, single = _json(capsys, ["research", "--data", str(one), "--json", "--blocks", "3",
                               "--out", str(tmp_path / "s" / "r.html")])
    assert pool["days"][2]["metrics"] == single["metrics"]
    assert pool["days"][2]["verdict"] == single["verdict"]


def test_aggregate_over_days_sums_parts_and_pools_tails():
    from mm_core.backtest.sweep_days import aggregate, split_days

    def row(day, pnl, hourly, dd):
        return {"params": {"a": 1}, "scenario": "base", "period": "report", "day": day, "total_pnl": pnl,
                "spread_capture": pnl, "adverse_selection": 0.0, "inventory_pnl": 0.0, "fees": 0.0,
                "total_pnl_direct": pnl, "fills": 3, "requotes": 1, "orders_sent": 1, "cancels_sent": 0,
                "rate_guard_skips": 0, "pnl_identity_gap": 0.0, "pnl_identity_ok": True, "max_drawdown": dd,
                "worst_hour": min(hourly), "worst_hour_utc": f"{day}T00:00Z",
                "daily_pnl": [{"day": day, "pnl": pnl, "covered_s": 7200.0}], "hourly_pnl": hourly}

    agg = aggregate([row("2026-01-01", 1.0, [2.0, -1.0], 1.5), row("2026-01-02", -3.0, [-4.0, 1.0], 4.0)])
    assert agg["total_pnl"] == -2.0 and agg["fills"] == 6
    assert agg["worst_day"] == -3.0 and agg["worst_day_utc"] == "2026-01-02"
    assert agg["worst_hour"] == -4.0 and agg["worst_hour_utc"] == "2026-01-02T00:00Z"
    assert agg["es5_hourly"] == -4.0  # ceil(5 % of 4 hours) = the worst hour
    assert agg["max_drawdown"] == 4.0 and agg["n_days"] == 2 and agg["n_hours"] == 4
    assert [split_days(n, 0.5) for n in (2, 3, 7)] == [1, 2, 4]
    with pytest.raises(ValueError, match="at least 2 days"):
        split_days(1, 0.5)


def test_bad_scale_out_input_is_one_line_and_exit_2(store, cache, tmp_path, capsys, monkeypatch):
    cases = [
        (["sweep", "--store", str(store), "--scheduler", "yarn://x"], "expected 'local' or tcp://"),
        (["sweep", "--store", str(tmp_path)], "no day partitions"),
        (["sweep", "--store", str(store), "--to", "2026-01-01"], "at least 2 days"),
        (["sweep", "--store", str(store), "--from", "2026-13-01"], "expected a date"),
        (["research", "--store", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")], "no such directory"),
    ]
    monkeypatch.setenv("MM_DASK_CONNECT_TIMEOUT", "1")
    cases.append((["sweep", "--store", str(store), "--scheduler", "tcp://127.0.0.1:9"],
                  "cannot reach the Dask scheduler at tcp://127.0.0.1:9"))
    for argv, text in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert text in err and len(err.splitlines()) == 1, (argv, err)


def test_a_task_that_fails_on_a_worker_is_one_line(store, cache, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(store / "b", broken / "b")
    part = next((broken / "b").rglob("book-*.parquet"))
    part.write_bytes(b"not parquet")
    for extra in ([], ["--scheduler", "local", "--workers", "1"]):
        argv = ["sweep", "--store", str(broken), str(store / "a"), "--min-fills", "1", "--spreads", "0.1", *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mm sweep: a task failed on a worker:") and len(err.splitlines()) == 1, err


def test_tasks_carry_paths_not_rows(store):
    """What crosses to a worker is small: the largest sweep task of three days pickles to a few kB."""
    import argparse
    import pickle

    from mm_core.backtest.days import day_spec
    from mm_core.backtest.sweep_days import build_jobs
    from mm_core.store.partitions import find_days

    days = find_days([store])
    specs = [day_spec(d, tick_size=0.1, lot_size=1e-8, depth=None) for d in days]
    ns = argparse.Namespace(spreads="0.1", sizes="0.001", skews="2", json=True)
    jobs = build_jobs(ns, specs, 2, [{"half_spread_bps": 0.1}], [{"name": "base"}])
    assert len(jobs) == 3 and max(len(pickle.dumps(j)) for j in jobs) < 4096
    assert jobs[0]["market"]["day"]["dirs"][0].endswith("date=2026-01-01")


def test_mm_query_reads_the_partitions_as_tables(store, cache, tmp_path, capsys):
    # quotes at the best: the config's 0.5 bps sits ~4 ticks behind the simulator's one-tick spread,
    # where five minutes bring no fill
    code = main(["backtest", "--sim-seconds", "300", "--half-spread-bps", "0", "--out", str(store / "bt"), "--json"])
    assert code == 0
    capsys.readouterr()
    code, rows = _json(capsys, ["query", "SELECT exchange, symbol, date, count(*) AS n FROM trade "
                                         "GROUP BY ALL ORDER BY date", "--store", str(store), "--json"])
    assert code == 0
    assert [(r["exchange"], r["symbol"], r["date"]) for r in rows] == [
        ("kraken", "BTC-EUR", "2026-01-01"), ("kraken", "BTC-EUR", "2026-01-02"), ("kraken", "BTC-EUR", "2026-01-03")]
    import pyarrow.parquet as pq

    n_trades = sum(pq.ParquetFile(f).metadata.num_rows for f in store.rglob("trade-*.parquet"))
    assert sum(r["n"] for r in rows) == n_trades
    import polars as pl  # the README's Polars form of the same query agrees

    by_day = (pl.scan_parquet(f"{store.as_posix()}/**/trade-*.parquet", hive_partitioning=True)
              .group_by("date").agg(pl.len().alias("n")).sort("date").collect())
    assert [(str(d), n) for d, n in by_day.iter_rows()] == [(r["date"], r["n"]) for r in rows]
    code, tables = _json(capsys, ["query", "SHOW TABLES", "--store", str(store), "--json"])
    assert {t["name"] for t in tables} == {"book", "trade", "top_of_book", "fills", "orders"}
    code, fills = _json(capsys, ["query", "SELECT run, count(*) AS n FROM fills GROUP BY run", "--store", str(store),
                                         "--json"])
    assert code == 0 and fills[0]["run"].endswith("bt") and fills[0]["n"] > 0
    assert main(["query", "SELECT date, count(*) FROM book GROUP BY date ORDER BY date", "--store", str(store),
                 "--csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "date,count_star()" and out[1].startswith("2026-01-01,") and len(out) == 4
    assert main(["query", "SELECT 1 AS one", "--store", str(store)]) == 0
    assert "(1 row)" in capsys.readouterr().out
    for argv, text in ((["query", "SELEC 1", "--store", str(store)], "Parser Error"),
                       (["query", "SELECT nope FROM trade", "--store", str(store)], "nope"),
                       (["query", "SELECT 1", "--store", str(tmp_path / "none")], "no such folder"),
                       (["query", "SELECT 1", "--store", str(tmp_path)], "no Parquet tables")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mm query: ") and text in err and len(err.splitlines()) == 1, err


def test_commands_do_not_import_dask_or_duckdb_until_asked():
    import subprocess
    import sys

    code = ("import sys; from mm_core.cli import build_parser; build_parser(); "
            "import mm_core.backtest.sweep, mm_core.store.query, mm_core.scaleout, mm_core.research.days; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'duckdb')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
