"""Many feeds in one collector process: CPU per 1,000 messages and capture overhead p99, 10 feeds vs 1.

The same real path as ``mm collect --feed ...`` (``run_feeds``: one event loop, one writer thread and
run folder per feed) against simulator processes at a realistic rate (the default profile: Kraken
BTC/EUR's ~10 book messages/s plus trades; ``--rate`` overrides), beside the single-feed run of the
same code in the same invocation. Each simulator runs in its own process, so its CPU is not counted.

Figures per run:

* CPU ms per 1,000 messages: ``time.process_time()`` of this process (receive loop + writer threads)
  over the run, divided by the messages all feeds received;
* capture overhead: frame off the socket (its capture stamp) -> parsed, booked and handed to the
  writer, per frame, pooled over feeds (p50/p99, microseconds);
* loop lag p99 (``summary.json`` ``loop_lag_ms``): how long a frame that has just arrived would wait for
  the shared loop -- the cost the other feeds impose on each feed.

    python bench/bench_multifeed.py [--feeds 10] [--seconds 30] [--rate R]

On a machine shared with other work, CPU and lag figures move with the load; compare the two rows
of one invocation, not figures across invocations.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mm_core.capture.collector import Collector, run_feeds  # noqa: E402
from mm_core.capture.loop_lag import LoopLagProbe  # noqa: E402
from mm_core.config import load_config  # noqa: E402
from mm_core.simexchange.server import spawn_process  # noqa: E402


def sim_args(seed: int, rate: float | None) -> list[str]:
    out = ["--seed", str(seed), "--latency-median-ms", "2", "--no-latency-spells", "--no-log-messages"]
    return out + (["--updates-per-second", str(rate)] if rate else [])


def run(n: int, seconds: float, rate: float | None, tmp: Path) -> dict:
    sims = [spawn_process(sim_args(100 + i, rate)) for i in range(n)]
    costs: list[int] = []
    try:
        lag = LoopLagProbe()
        cfg = load_config()
        cols = [Collector(cfg, tmp / f"n{n}" / f"feed{i}" / "F.csv", url=s.url, max_seconds=seconds, quiet=True,
                          lag=lag, label=f"[feed{i}] ") for i, s in enumerate(sims)]
        for col in cols:
            handle = col._handle_frame

            def timed(frame, ts_capture, ws, _h=handle):  # type: ignore[no-untyped-def]
                result = _h(frame, ts_capture, ws)
                costs.append(time.time_ns() - ts_capture)
                return result

            col._handle_frame = timed  # type: ignore[method-assign]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        codes = asyncio.run(run_feeds(cols))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        for s in sims:
            s.stop()
    msgs = sum(c.summary.messages for c in cols)
    lag_p99 = max((c.summary.loop_lag_ms or {}).get("p99", float("nan")) for c in cols)
    arr = np.array(costs) / 1e3
    return {"feeds": n, "codes": codes, "messages": msgs, "msg_per_s": msgs / wall, "cpu_s": cpu,
            "cpu_ms_per_1k": 1e6 * cpu / max(1, msgs),  # ms of CPU per 1,000 messages
            "overhead_us_p50": float(np.percentile(arr, 50)) if arr.size else float("nan"),
            "overhead_us_p99": float(np.percentile(arr, 99)) if arr.size else float("nan"),
            "lag_ms_p99": lag_p99, "checksums_failed": sum(c.summary.checksums_failed for c in cols),
            "samples": sum(c.summary.samples for c in cols)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--feeds", type=int, default=10, help="feeds of the many-feed run")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    ap.add_argument("--rate", type=float, default=None, help="book messages/s per feed (default: the profile's)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(1, a.seconds, a.rate, Path(tmp)), run(a.feeds, a.seconds, a.rate, Path(tmp))]
    print(f"{'feeds':>6}{'msgs':>9}{'msg/s':>8}{'CPU s':>8}{'CPU ms/1k msgs':>16}{'overhead p50 us':>17}"
          f"{'overhead p99 us':>17}{'loop lag p99 ms':>17}{'bad checksums':>15}")
    for r in rows:
        print(f"{r['feeds']:>6}{r['messages']:>9}{r['msg_per_s']:>8.0f}{r['cpu_s']:>8.2f}{r['cpu_ms_per_1k']:>16.1f}"
              f"{r['overhead_us_p50']:>17.1f}{r['overhead_us_p99']:>17.1f}{r['lag_ms_p99']:>17.2f}"
              f"{r['checksums_failed']:>15}")
    ok = all(c == 0 for r in rows for c in r["codes"]) and all(r["checksums_failed"] == 0 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
