"""Benchmark: ``mm analyze`` on a 24-hour capture of 5M rows, beside plain pandas on the same file.

The peer is what one would write without us: ``pd.read_csv`` + ``Series.quantile`` + shares + a
per-hour ``groupby``, computing the same numbers (percentiles p50..p99.9, mean, max, regime shares,
per-hour p50/p95/p99/unsafe share). All are timed wall-clock *including the file read*, in the
same process, on the same file, and all must give the same percentiles (to 1e-9 ms) or the
benchmark fails. pandas is timed four ways: its default C parser reading every column (what people
usually write) and only the two needed columns, and its multi-threaded pyarrow parser
(``engine="pyarrow"``) the same two ways -- the fastest pandas there is for this file.

    python bench/bench_analyze.py                 # 5M rows, temp dir, removed afterwards
    python bench/bench_analyze.py --rows 1000000 --dir /tmp/bench --keep
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mm_core.latency import analyze_latency  # noqa: E402

T0 = 1_714_521_600_000_000_000  # 2024-05-01 00:00:00 UTC
Q = (0.5, 0.9, 0.95, 0.99, 0.999)
NORMAL_MS, DEGRADED_MS = 20.0, 80.0


def write_capture(path: Path, rows: int, hours: float = 24.0, seed: int = 1) -> Path:
    """A capture CSV in the collector's format with realistic ages.

    Body: lognormal around 7 ms with a daily rhythm (busier hours are a little slower); a 3 % tail
    around 40 ms; and 20 incidents of 30 s where ages jump tenfold (what a degraded link looks like).
    """
    rng = np.random.default_rng(seed)
    span = int(hours * 3600e9)
    tc = T0 + np.sort(rng.integers(0, span, rows))
    hour = (tc - T0) / 3600e9
    median = 7.0 * (1 + 0.2 * np.sin(2 * np.pi * hour / 24))
    ages = rng.lognormal(np.log(median), 0.5)
    tail = rng.random(rows) < 0.03
    ages[tail] = rng.lognormal(np.log(40.0), 0.6, int(tail.sum()))
    for start in rng.integers(0, span - 30 * 10**9, 20):
        m = (tc >= T0 + start) & (tc < T0 + start + 30 * 10**9)
        ages[m] *= 10
    te = tc - np.round(ages * 1e6).astype(np.int64)
    mid = 60_000 + np.cumsum(rng.normal(0, 0.3, rows))
    bid = np.round(mid - 0.05, 1)
    pl.DataFrame({
        "exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": te, "ts_capture": tc,
        "age_ms": ((tc - te) / 1e6).round(3), "bid": bid, "bid_qty": np.round(rng.exponential(0.4, rows) + 1e-4, 8),
        "ask": np.round(bid + 0.1, 1), "ask_qty": np.round(rng.exponential(0.4, rows) + 1e-4, 8),
    }).write_csv(path)
    return path


def ours(path: Path) -> dict[str, Any]:
    r = analyze_latency(path, NORMAL_MS, DEGRADED_MS)
    return {"samples": r.samples, "pct": [r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms, r.p99_9_ms],
            "unsafe_share": r.unsafe_share, "hours": len(r.hours)}


def pandas_peer(path: Path, usecols: bool, engine: str = "c") -> dict[str, Any]:
    """The same numbers the plain-pandas way (``engine``: pandas' C parser or pyarrow's)."""
    import pandas as pd

    df = pd.read_csv(path, usecols=["ts_capture", "age_ms"] if usecols else None, engine=engine)
    age = df["age_ms"]
    pct = age.quantile(list(Q)).tolist()
    n = len(age)
    normal = (age <= NORMAL_MS).sum() / n
    unsafe = (age > DEGRADED_MS).sum() / n
    _ = (normal, 1 - normal - unsafe, age.mean(), age.max())
    hour = df["ts_capture"] // 3_600_000_000_000
    g = age.groupby(hour)
    per_hour = pd.concat([g.size(), g.quantile(0.5), g.quantile(0.95), g.quantile(0.99),
                          (age > DEGRADED_MS).groupby(hour).mean()], axis=1)
    return {"samples": n, "pct": pct, "unsafe_share": float(unsafe), "hours": len(per_hour)}


def script_wall(path: Path) -> float:
    """The user's command end to end (interpreter start, imports, read, analysis, printing)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "mm_core" / "analyze.py"), "--file", str(path),
                    "--normal-max-ms", str(NORMAL_MS), "--degraded-max-ms", str(DEGRADED_MS)],
                   check=True, capture_output=True)
    return time.perf_counter() - t


def _timed(fn: Callable[[], dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def run_bench(rows: int, workdir: Path, *, with_script: bool = True, repeat: int = 3) -> list[dict[str, Any]]:
    """Write the capture, time every implementation ``repeat`` times (the order rotates each round so
    no one always runs first on a cold cache or pool), check they agree; rows for the table."""
    path = write_capture(workdir / "bench-capture.csv", rows)
    impls: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("mm_core analyze_latency (polars + numpy)", lambda: ours(path)),
        ("pandas read_csv(all columns) + quantile", lambda: pandas_peer(path, False)),
        ("pandas read_csv(usecols=2) + quantile", lambda: pandas_peer(path, True)),
        ("pandas read_csv(engine=pyarrow, all) + quantile", lambda: pandas_peer(path, False, "pyarrow")),
        ("pandas read_csv(engine=pyarrow, usecols=2)", lambda: pandas_peer(path, True, "pyarrow")),
    ]
    walls: dict[str, list[float]] = {name: [] for name, _ in impls}
    outs: dict[str, dict[str, Any]] = {}
    for k in range(repeat):
        for name, fn in impls[k % len(impls):] + impls[:k % len(impls)]:
            wall, outs[name] = _timed(fn)
            walls[name].append(wall)
    results = [{"name": name, "wall_s": min(walls[name]), "median_s": float(np.median(walls[name])), **outs[name]}
               for name, _ in impls]
    if with_script:
        sw = [script_wall(path) for _ in range(repeat)]
        results.append({**results[0], "name": "python mm_core/analyze.py (whole command)",
                        "wall_s": min(sw), "median_s": float(np.median(sw))})
    ref = results[0]
    for r in results[1:]:
        if r["samples"] != ref["samples"] or r["hours"] != ref["hours"]:
            raise AssertionError(f"{r['name']}: {r['samples']} samples / {r['hours']} hours, ours "
                                 f"{ref['samples']} / {ref['hours']}")
        same = np.allclose(r["pct"], ref["pct"], rtol=0, atol=1e-9)
        if not same or abs(r["unsafe_share"] - ref["unsafe_share"]) > 1e-12:
            raise AssertionError(f"{r['name']} disagrees: {r['pct']} vs ours {ref['pct']}")
    return results


def format_results(results: list[dict[str, Any]], rows: int, size_mb: float) -> str:
    ours_wall = results[0]["wall_s"]
    import pandas as pd
    import pyarrow as pa

    lines = [f"analyze {rows:,} rows ({size_mb:.0f} MB CSV, 24 h); same percentiles verified (|diff| <= 1e-9 ms); "
             f"pandas {pd.__version__}, pyarrow {pa.__version__}",
             "wall = best of the repeats (median beside it), file read included",
             f"{'implementation':<48} {'best s':>7} {'median s':>9} {'Mrows/s':>8} {'vs ours':>8}   "
             "p50 / p99 / p99.9 ms"]
    for r in results:
        p = r["pct"]
        lines.append(f"{r['name']:<48} {r['wall_s']:>7.2f} {r['median_s']:>9.2f} {rows / r['wall_s'] / 1e6:>8.2f} "
                     f"{r['wall_s'] / ours_wall:>7.1f}x   {p[0]:.3f} / {p[3]:.3f} / {p[4]:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--dir", help="work directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated CSV")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per implementation (best is shown)")
    args = ap.parse_args(argv)
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mm-bench-analyze-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        results = run_bench(args.rows, work, repeat=args.repeat)
        size = (work / "bench-capture.csv").stat().st_size / 1e6
        print(format_results(results, args.rows, size))
        print(f"(total {time.perf_counter() - t:.1f} s incl. writing the file; {work})")
    finally:
        if not args.keep and args.dir:
            (work / "bench-capture.csv").unlink(missing_ok=True)
        elif not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
