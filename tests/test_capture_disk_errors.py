"""A disk that cannot be written ends the run: a clear message, a non-zero exit, no reconnect loop.

Before, a write error on the receive loop was caught with the network errors as "connect failed",
and the collector reconnected until max-seconds (or crashed with a traceback when the event log
failed). Now every write happens on the writer thread; its first failure stops the run.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, V2_BOOK
from mm_core.capture.layout import read_events, read_summary
from mm_core.store.parquet_store import ParquetEventStore
from mm_core.store.raw_archive import RawArchiveWriter
from mm_core.store.sample_csv import SampleCsvWriter
from scripted_exchange import Script, ScriptedExchange, load_v2_recording
from test_collector import collect, fast_config

FAILURES = [
    (errno.ENOSPC, RawArchiveWriter, "flush"),
    (errno.EACCES, ParquetEventStore, "_write_part"),
    (errno.EIO, SampleCsvWriter, "flush"),
]


@pytest.mark.parametrize("code,cls,method", FAILURES, ids=["ENOSPC-raw", "EACCES-parquet", "EIO-csv"])
def test_write_error_mid_run_is_fatal_with_the_error_in_the_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        code: int, cls: type, method: str) -> None:
    real = getattr(cls, method)
    calls = {"n": 0}

    def failing(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] >= 3:  # the run is well under way by then
            raise OSError(code, os.strerror(code), str(tmp_path / "run" / "some-file"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, failing)
    script = Script(load_v2_recording(V2_BOOK) * 20, interval_s=0.002)
    t0 = time.monotonic()
    rc, run_dir = collect(tmp_path, script, seconds=20.0)
    elapsed = time.monotonic() - t0
    assert rc == 1
    assert elapsed < 10  # stopped at the error, not at max-seconds
    s = read_summary(run_dir)
    assert s["exit_reason"] == "fatal"
    assert f"[Errno {code}] {os.strerror(code)}" in s["fatal_error"]
    assert "some-file" in s["fatal_error"]
    err = capsys.readouterr().err
    assert f"error: cannot write the run's files ([Errno {code}]" in err
    assert "Traceback" not in err
    kinds = [e["kind"] for e in read_events(run_dir)]
    assert "reconnecting" not in kinds and script.connections == 1


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_full_disk_for_real_event_log_on_dev_full(tmp_path: Path) -> None:
    """The kernel's own ENOSPC: the event log is /dev/full, so the first event cannot be written."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").symlink_to("/dev/full")
    script = Script(load_v2_recording(V2_BOOK), interval_s=0.002)
    rc, _ = collect(tmp_path, script, seconds=20.0)
    assert rc == 1
    s = read_summary(run_dir)
    assert s["exit_reason"] == "fatal" and "[Errno 28] No space left on device" in s["fatal_error"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_full_disk_at_start_is_a_one_line_error_from_the_command(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "F.csv").symlink_to("/dev/full")  # the CSV header cannot be written
    with ScriptedExchange(Script(load_v2_recording(V2_BOOK))) as ex:
        proc = subprocess.run([sys.executable, str(ROOT / "mm_core" / "collector.py"), "--out", str(run_dir / "F.csv"),
                               "--url", ex.url, "--max-seconds", "10", "--config", str(fast_config(tmp_path)),
                               "--quiet"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "No space left on device" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.skipif(os.name == "nt" or (hasattr(os, "geteuid") and os.geteuid() == 0),
                    reason="permissions do not stop root; POSIX modes")
def test_read_only_run_directory_mid_run_is_fatal(tmp_path: Path) -> None:
    import threading

    run_dir = tmp_path / "run"
    parquet = run_dir / "parquet"

    def folders() -> list[Path]:
        return [parquet, *(p for p in parquet.rglob("*") if p.is_dir())]

    def lock_down() -> None:  # once the first part is written, no new file may appear in parquet/
        deadline = time.monotonic() + 10
        while not list(parquet.rglob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)
        for d in folders():
            os.chmod(d, 0o500)

    t = threading.Thread(target=lock_down, daemon=True)
    t.start()
    try:
        rc, _ = collect(tmp_path, Script(load_v2_recording(V2_BOOK) * 20, interval_s=0.002), seconds=20.0)
    finally:
        t.join(10)
        for d in folders():
            os.chmod(d, 0o700)
    assert rc == 1
    s = read_summary(run_dir)
    assert s["exit_reason"] == "fatal" and "[Errno 13]" in s["fatal_error"]
