"""``mm repair``: after a kill -9 the Parquet is rebuilt from the raw archive, and the gate says so."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, V2_BOOK
from mm_core.events import BookUpdate
from mm_core.replay import recording_events
from mm_core.store.parquet_store import ParquetEventStore, read_table
from mm_core.store.repair import read_repairs
from scripted_exchange import Script, ScriptedExchange, load_v2_recording
from test_collector import fast_config


def mm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mm_core", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def collector_cmd(url: str, run_dir: Path, cfg: Path, parquet_flush_s: float) -> list[str]:
    return [sys.executable, "-m", "mm_core", "collect", "--out", str(run_dir / "F.csv"), "--url", url,
            "--max-seconds", "60", "--config", str(cfg), "--quiet", "--parquet-flush-s", str(parquet_flush_s)]


def replayed_groups(run_dir: Path, table: str) -> collections.Counter:
    """(ts_capture, kind) of every event of ``table`` the raw archive yields (the public replay API)."""
    out: collections.Counter = collections.Counter()
    for f in sorted((run_dir / "raw").glob("raw-*.jsonl.gz")):
        out.update((e.ts_capture, e.KIND) for e in recording_events(f) if e.TABLE == table)
    return out


def parquet_groups(run_dir: Path, table: str) -> collections.Counter:
    t = read_table(run_dir / "parquet", table)
    return collections.Counter(zip(t.column("ts_capture").to_pylist(), t.column("kind").to_pylist()))


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_kill_9_then_repair_rebuilds_the_lost_parquet_and_the_gate_reports_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = fast_config(tmp_path, watchdog_silence_s=10)
    with ScriptedExchange(Script(load_v2_recording(V2_BOOK) * 4, interval_s=0.003)) as ex:
        proc = subprocess.Popen(collector_cmd(ex.url, run_dir, cfg, 2.0), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30  # wait for the first Parquet parts, then kill mid-interval
        while not list(run_dir.glob("parquet/**/book-*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    before = {t: sum(parquet_groups(run_dir, t).values()) for t in ("book", "top_of_book", "health")}
    want = replayed_groups(run_dir, "book")
    assert 0 < before["book"] < sum(want.values())  # the kill lost the last interval's parts

    # a new collector in the same folder refuses, and says what to do
    with ScriptedExchange(Script(load_v2_recording(V2_BOOK))) as ex:
        again = subprocess.run(collector_cmd(ex.url, run_dir, cfg, 2.0), cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
    assert again.returncode == 2
    assert f"mm repair {run_dir.resolve()}" in again.stderr and "Traceback" not in again.stderr

    r = mm("repair", str(run_dir), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["repaired"] and report["consistent"]
    # every event of the raw archive is now in the Parquet exactly once, stamps and kinds intact
    for table in ("book", "top_of_book", "trade"):
        assert parquet_groups(run_dir, table) == replayed_groups(run_dir, table), table
    assert sum(parquet_groups(run_dir, "book").values()) == sum(want.values())
    # the health table matches the event log row for row
    events = [json.loads(ln) for ln in (run_dir / "events.jsonl").read_text().splitlines() if ln.strip()]
    assert parquet_groups(run_dir, "health") == collections.Counter((e["ts_capture"], e["kind"]) for e in events)
    rec = read_repairs(run_dir)
    assert len(rec) == 1 and rec[0]["status"] == "done"
    assert rec[0]["rows"]["book"] == sum(want.values()) - before["book"] > 0
    assert rec[0]["parts"] and all((run_dir / p).is_file() for p in rec[0]["parts"])
    for f in (run_dir / "parquet").rglob("*.parquet"):
        pq.read_table(f)

    # the gate says which data was rebuilt
    g = mm("gate", str(run_dir), "--json", "--config", str(cfg))
    doc = json.loads(g.stdout)
    assert doc["capture"]["repairs"][0]["rows"]["book"] == rec[0]["rows"]["book"]
    assert "loop_lag_ms" in doc["capture"]  # as far as the killed run's last summary got
    human = mm("gate", str(run_dir), "--config", str(cfg)).stdout
    assert "REBUILT data: book" in human and "capture loop lag" in human

    # a second repair has nothing to do; a new collector is still refused, now without the pointer
    r2 = mm("repair", str(run_dir))
    assert r2.returncode == 0 and "nothing to repair" in r2.stdout
    assert len(read_repairs(run_dir)) == 1
    with ScriptedExchange(Script(load_v2_recording(V2_BOOK))) as ex:
        third = subprocess.run(collector_cmd(ex.url, run_dir, cfg, 2.0), cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
    assert third.returncode == 2 and "already repaired" in third.stderr


def test_repair_refuses_when_the_parquet_holds_rows_the_raw_archive_does_not(tmp_path: Path) -> None:
    from mm_core.capture.collector import Collector
    from mm_core.config import load_config

    cfg = load_config(fast_config(tmp_path))
    run_dir = tmp_path / "run"
    with ScriptedExchange(Script(load_v2_recording(V2_BOOK))) as ex:
        assert Collector(cfg, run_dir / "F.csv", url=ex.url, max_seconds=2.0, quiet=True).run() == 0
    clean = mm("repair", str(run_dir), "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout)["missing_rows"] == 0
    store = ParquetEventStore(run_dir / "parquet")
    store.add(BookUpdate(exchange="kraken", symbol="BTC/EUR", ts_exchange=1, ts_capture=time.time_ns(),
                         bids=((1.0, 1.0),), asks=()))
    store.close()
    parts = sorted((run_dir / "parquet").rglob("*.parquet"))
    r = mm("repair", str(run_dir))
    assert r.returncode == 1 and "does not reproduce" in r.stdout
    assert sorted((run_dir / "parquet").rglob("*.parquet")) == parts  # nothing written
    assert not (run_dir / "repairs.json").exists()


def test_repair_of_a_folder_without_a_run_is_a_one_line_error(tmp_path: Path) -> None:
    r = mm("repair", str(tmp_path / "nope"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
