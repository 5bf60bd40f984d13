"""The analyzer benchmark runs end to end on a small file and agrees with pandas (the 5M-row run is
``python bench/bench_analyze.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_analyze", ROOT / "bench" / "bench_analyze.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_small_benchmark_agrees_with_pandas(tmp_path):
    bench = _bench_module()
    results = bench.run_bench(20_000, tmp_path, with_script=False, repeat=1)  # raises if the numbers disagree
    assert [r["samples"] for r in results] == [20_000] * 5
    table = bench.format_results(results, 20_000, 2.0)
    assert "mm_core analyze_latency" in table and "pandas read_csv" in table and "engine=pyarrow" in table
