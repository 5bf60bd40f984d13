"""The book benchmark, short: runs once as a test (``--benchmark-disable`` is the default), and
as a real pytest-benchmark measurement with ``--benchmark-enable``."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType

import orjson
import pytest

from conftest import ROOT, V2_BOOK
from mm_core.adapters.base import FeedSpec
from mm_core.adapters.kraken.v2 import KrakenV2Adapter
from mm_core.recordings import open_recording


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_book", ROOT / "bench" / "bench_book.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_book", module)
    spec.loader.exec_module(module)
    return module


def test_one_pass_over_the_v2_recording_verifies_every_checksum(benchmark) -> None:  # type: ignore[no-untyped-def]
    frames = [text.encode() for _, text in open_recording(V2_BOOK).frames()]

    def one_pass() -> KrakenV2Adapter:
        adapter = KrakenV2Adapter(FeedSpec(symbols=("BTC/USD",)))
        for raw in frames:
            adapter.on_message(raw, 0)
        return adapter

    adapter = benchmark(one_pass)
    assert adapter.stats.checksums_ok == len(frames) == 510 and adapter.stats.checksums_failed == 0


def test_the_benchmark_script_runs_all_contenders_and_checks_them(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench_module()
    code = bench.main(["--loops", "2", "--rounds", "2", "--v1-loops", "1", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["all_checksums_verified"]
    names = [r["name"] for r in result["rows"]]
    assert names[:3] == ["mm_core KrakenV2Adapter", "python-kraken-sdk orderbook", "orjson.loads only (floor)"]
    assert all(r["ok"] and r["best_us"] > 0 for r in result["rows"])
    assert result["v2_messages_per_contender"] == 2 * 510
    assert "caught a corrupted update" in result["sdk_proof"]
    assert orjson.loads(orjson.dumps(result)) == result
