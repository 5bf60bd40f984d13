"""Scale-out benchmark: a multi-day ``mm sweep`` on 1 vs 2 Dask workers, beside the process pool.

The same sweep -- ``--configs`` parameter sets (half-spread x skew) x ``--days`` simulated days of
the partitioned store, one task per (set, day), walk-forward by day -- runs as the user runs it, a
whole ``mm sweep --store ... --json`` process each time:

- ``pool-2``: no ``--scheduler``: today's process pool of 2 workers;
- ``dask-1`` / ``dask-2``: ``--scheduler local --workers N``: a Dask LocalCluster of N single-
  threaded worker processes on 127.0.0.1 (started and stopped inside the timed process).

Printed per variant: wall time of the whole process; the task phase alone (the sweep's own clock
around ``runner.map``: cluster start-up, imports and the book carry-over pass excluded) and tasks/s
from it. Then the scaling ratio dask-1 / dask-2 (task phase; 2.0 is perfect on two free cores) and
dask-2 vs pool-2. The per-task overhead Dask adds is measured apart, on the same seam with an empty
task (``len`` of the job dict): seconds per task on the pool and on the cluster, 2 workers each.
All variants must return identical results (:func:`mm_core.backtest.sweep_days.comparable`); the
benchmark says so or fails.

Honesty notes: the machine's load average is printed before and after every variant, and the CPU
seconds the variant's processes used (``getrusage`` of the finished children, workers included):
CPU / wall is how many cores it really got -- on a shared machine a second worker may find no free
core, and then no executor can scale; rows are cached by a warm-up run first, so every
variant reads the same cached rows (the warm-up's wall time is printed, not compared); each worker
process keeps the last day's rows in memory, as in real use.

Data: each simulated day is ``--hours`` of the offline market simulator (``MarketModel``, default
profile, seed ``--seed + day``) from 00:00 UTC, written as its own collector run directory (a
capture started every morning), generated once into ``--cache`` (default: the system temp folder,
keyed by seed, days and hours) and reused. Generation is not timed.

    python bench/bench_sweep_scale.py                  # 50 sets x 7 days of 4 h: ~2 min
    python bench/bench_sweep_scale.py --hours 24       # whole days: ~12 min on 2 free cores
    python bench/bench_sweep_scale.py --configs 10 --days 3 --hours 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

S = 1_000_000_000
D0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def _args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--configs", type=int, default=50, help="parameter sets (>= 50 for the published figure)")
    ap.add_argument("--days", type=int, default=7, help="simulated days (>= 7 for the published figure)")
    ap.add_argument("--hours", type=float, default=4.0, help="simulated hours per day, from 00:00 UTC")
    ap.add_argument("--seed", type=int, default=11, help="simulator seed of the first day (+1 per day)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "mm_core-bench-sweep-scale",
                    help="where the simulated days and their cached rows live")
    ap.add_argument("--overhead-tasks", type=int, default=2000, help="empty tasks for the per-task overhead")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    return ap.parse_args(argv)


def _load() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except (AttributeError, OSError):  # Windows
        return "load average n/a"


def _write_day(args: tuple[Path, int, int, float]) -> int:
    """One simulated capture as a collector run directory (Parquet by capture hour and date)."""
    from mm_core.simexchange.canonical import canonical_events
    from mm_core.simexchange.market import MarketModel
    from mm_core.store.parquet_store import ParquetEventStore

    run, seed, start_ns, seconds = args
    store = ParquetEventStore(run / "parquet", flush_interval_s=1e9, max_rows=250_000)
    n = 0
    for ev in canonical_events(MarketModel(seed=seed, start_ns=start_ns, predictive=False), seconds, depth=10,
                               tops=True):
        store.add(ev)
        n += 1
    store.close()
    (run / "bench-day.json").write_text(json.dumps({"seed": seed, "start_ns": start_ns, "seconds": seconds,
                                                    "events": n}), encoding="utf-8")
    return n


def make_days(a: argparse.Namespace) -> Path:
    """The store root with ``--days`` simulated days, generated once per (seed, days, hours)."""
    from concurrent.futures import ProcessPoolExecutor

    root = a.cache / f"seed{a.seed}-days{a.days}-hours{a.hours:g}"
    todo = []
    for i in range(a.days):
        run = root / f"day{i + 1:02d}"
        if not (run / "bench-day.json").is_file():
            todo.append((run, a.seed + i, D0 + i * 86_400 * S, a.hours * 3600.0))
    if todo:
        t0 = time.perf_counter()
        print(f"generating {len(todo)} simulated day(s) of {a.hours:g} h into {root} (once) ...", flush=True)
        with ProcessPoolExecutor(max_workers=2) as pool:
            events = sum(pool.map(_write_day, todo))
        print(f"  {events:,} events in {time.perf_counter() - t0:.0f} s", flush=True)
    return root


def _sweep(a: argparse.Namespace, root: Path, extra: list[str]) -> tuple[float, dict]:
    spreads = ",".join(f"{0.02 * (k + 1):g}" for k in range((a.configs + 4) // 5))
    skews = "0,1,2,4,8"
    cmd = [sys.executable, "-m", "mm_core", "sweep", "--store", str(root), "--spreads", spreads, "--skews", skews,
           "--latency-scales", "1", "--min-fills", "1", "--fees", "none", "--json", *extra]
    env = {**os.environ, "MM_CACHE_DIR": str(a.cache / "rows")}
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise SystemExit(f"mm sweep {' '.join(extra)} failed ({p.returncode}): {p.stderr.strip()[-800:]}")
    doc = json.loads(p.stdout)
    doc["_cpu_s"] = _children_cpu() - cpu0
    return wall, doc


def _children_cpu() -> float:
    """CPU seconds of finished child processes and theirs (the sweep and its pool/cluster workers)."""
    try:
        import resource
    except ImportError:  # Windows
        return float("nan")
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _overhead(n: int) -> dict[str, float]:
    """Seconds per empty task on the pool and on a 2-worker LocalCluster (start-up excluded)."""
    from mm_core.scaleout import open_runner

    items = [{"i": i, "day": "2026-01-01", "params": {"half_spread_bps": 0.1}} for i in range(n)]
    out = {}
    for name, sched in (("pool-2", None), ("dask-2", "local")):
        with open_runner(sched, 2) as runner:
            runner.map(len, items[:50])  # warm: workers started, functions imported
            t0 = time.perf_counter()
            runner.map(len, items)
            out[name] = (time.perf_counter() - t0) / n
    return out


def main(argv=None) -> int:
    a = _args(argv)
    from mm_core.backtest.sweep_days import comparable

    root = make_days(a)
    print(f"machine: {os.cpu_count()} cores; {_load()}", flush=True)
    wall, warm = _sweep(a, root, ["--workers", "2"])
    n_tasks = warm["tasks"]
    print(f"warm-up (fills the row cache; not compared): {wall:.1f} s; {n_tasks} tasks = "
          f"{len(warm['results']) // 2} sets x {len(warm['days'])} days", flush=True)
    runs = {}
    for name, extra in (("pool-2", ["--workers", "2"]), ("dask-1", ["--scheduler", "local", "--workers", "1"]),
                        ("dask-2", ["--scheduler", "local", "--workers", "2"])):
        before = _load()
        wall, doc = _sweep(a, root, extra)
        runs[name] = {"wall_s": wall, "tasks_s": doc["timings_s"]["tasks"], "carry_s": doc["timings_s"]["book_carry"],
                      "tasks": doc["tasks"], "cpu_s": doc.pop("_cpu_s"), "doc": doc}
        r = runs[name]
        print(f"{name:7s} wall {wall:7.1f} s | task phase {r['tasks_s']:7.1f} s = {r['tasks'] / r['tasks_s']:6.2f} "
              f"tasks/s | carry-over pass {r['carry_s']:.1f} s | CPU {r['cpu_s']:.1f} s = {r['cpu_s'] / wall:.2f} "
              f"cores busy on average | before: {before}; after: {_load()}", flush=True)
    warm.pop("_cpu_s", None)
    same = all(comparable(runs[k]["doc"]) == comparable(warm) for k in runs)
    ratio = runs["dask-1"]["tasks_s"] / runs["dask-2"]["tasks_s"]
    vs_pool = runs["pool-2"]["tasks_s"] / runs["dask-2"]["tasks_s"]
    per_task = runs["dask-2"]["tasks_s"] / n_tasks
    print(f"scaling 1 -> 2 Dask workers (task phase): x{ratio:.2f} (2.00 = perfect on two free cores; the "
          "'cores busy' figures show how much CPU the machine actually gave each variant)")
    print(f"dask-2 vs pool-2 (task phase): pool/dask = {vs_pool:.2f} (1.00 = same speed); "
          f"{per_task * 1000:.0f} ms of task phase per task (2 workers)")
    oh = _overhead(a.overhead_tasks)
    print(f"per-task overhead of the seam (empty tasks, 2 workers): pool {oh['pool-2'] * 1e3:.2f} ms, "
          f"Dask {oh['dask-2'] * 1e3:.2f} ms: Dask adds {(oh['dask-2'] - oh['pool-2']) * 1e3:.2f} ms a task "
          f"({(oh['dask-2'] - oh['pool-2']) / per_task * 100:.1f} % of a real task's share of the task phase here)")
    print(f"results identical across pool-2, dask-1, dask-2 and the warm-up: {'yes' if same else 'NO'}")
    print(f"after: {_load()}")
    if a.json:
        print(json.dumps({"configs": len(warm["results"]) // 2, "days": len(warm["days"]), "hours": a.hours,
                          "tasks": n_tasks, **{k: {x: v for x, v in r.items() if x != "doc"} for k, r in runs.items()},
                          "scaling_1_to_2": ratio, "pool_over_dask2": vs_pool, "overhead_s": oh, "identical": same}))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
