"""``mm collect`` as a new user meets it: failures exit non-zero, say why, and leave nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mm_core.cli import main as mm_main
from mm_core.simexchange.server import run_in_background
from test_collector import fast_config


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


def test_collect_that_never_connected_exits_nonzero_and_says_why_each_attempt_failed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"ws://127.0.0.1:{_closed_port()}"
    code = mm_main(["collect", "--out", str(tmp_path / "run" / "F.csv"), "--url", url, "--max-seconds", "1.5",
                    "--config", str(fast_config(tmp_path))])
    err = capsys.readouterr().err
    assert code != 0
    failures = [ln for ln in err.splitlines() if ln.startswith(f"connect to {url} failed: ")]
    assert len(failures) >= 2, err  # every attempt, not only the last
    assert all("ConnectionRefused" in ln or "Connect call failed" in ln or "refused" in ln.lower()
               for ln in failures), failures
    assert "error: no data received" in err
    assert not (tmp_path / "run").exists()  # nothing captured: no empty run directory


def test_dns_failure_is_named_as_such() -> None:
    from mm_core.capture.collector import connect_failure_text

    assert connect_failure_text(socket.gaierror(-2, "Name or service not known")).startswith("DNS lookup failed")


@pytest.mark.parametrize("flag,value,says", [
    ("--max-seconds", "-5", "must be > 0"),
    ("--max-seconds", "0", "must be > 0"),
    ("--max-seconds", "nan", "not a finite number"),
    ("--url", "http://127.0.0.1:1/v2", "did you mean ws://127.0.0.1:1/v2"),
    ("--url", "ws.kraken.com/v2", "not a WebSocket URL"),
    ("--url", "localhost:8080", "not a WebSocket URL"),
    ("--metrics-port", "70000", "0..65535"),
    ("--depth", "7", "invalid choice"),
])
def test_collect_rejects_nonsense_values_in_one_line_before_making_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, says: str) -> None:
    with pytest.raises(SystemExit) as exc:
        mm_main(["collect", "--out", str(tmp_path / "run" / "F.csv"), flag, value])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_unknown_symbol_exits_nonzero_and_leaves_no_run_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with run_in_background(seed=3, updates_per_second=20) as sim:
        code = mm_main(["collect", "--out", str(tmp_path / "run" / "F.csv"), "--url", sim.url,
                        "--symbol", "FOO/BAR", "--max-seconds", "5", "--config", str(fast_config(tmp_path))])
    err = capsys.readouterr().err
    assert code != 0
    assert "FOO/BAR" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
