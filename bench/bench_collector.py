"""Collector cost at 1,000 msg/s: CPU per 1,000 messages and capture overhead (arrival -> row written).

Both figures are printed beside the floor: a bare websockets client that subscribes to the same
simulator feed and only receives frames (no parsing, no book, no files). The difference is what the
collector's own work costs (parse, L2 book, CRC32 on every update, CSV/Parquet/raw/event writers).

    python bench/bench_collector.py [--seconds 20] [--rate 1000]

The simulator runs in its own process, so its CPU is not counted against the collector.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mm_core.capture.collector import Collector  # noqa: E402
from mm_core.config import load_config  # noqa: E402
from mm_core.simexchange.server import spawn_process  # noqa: E402


def sim_args(rate: float) -> list[str]:
    return ["--seed", "11", "--updates-per-second", str(rate), "--trades-per-second", "5",
            "--latency-median-ms", "1", "--no-latency-spells", "--no-log-messages"]


def run_collector(url: str, seconds: float, out: Path) -> dict:
    cfg = load_config()
    col = Collector(cfg, out / "F.csv", url=url, max_seconds=seconds, quiet=True)
    handle = col._handle_frame
    costs: list[int] = []

    def timed(frame, ts_capture, ws):  # type: ignore[no-untyped-def]
        result = handle(frame, ts_capture, ws)
        costs.append(time.time_ns() - ts_capture)  # arrival stamp -> parsed, booked, rows written
        return result

    col._handle_frame = timed  # type: ignore[method-assign]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    col.run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    s = col.summary
    arr = np.array(costs) / 1e3
    return {"messages": s.messages, "cpu_s": cpu, "wall_s": wall, "checksums_ok": s.checksums_ok,
            "checksums_failed": s.checksums_failed, "samples": s.samples,
            "overhead_us_p50": float(np.percentile(arr, 50)), "overhead_us_p99": float(np.percentile(arr, 99))}


async def bare_client(url: str, seconds: float) -> dict:
    from websockets.asyncio.client import connect

    n = 0
    cpu0 = time.process_time()
    async with connect(url, max_size=2**24) as ws:
        for i, ch in enumerate(("book", "ticker", "trade")):
            params: dict = {"channel": ch, "symbol": ["BTC/EUR"]}
            if ch == "book":
                params.update(depth=10, snapshot=True)
            if ch == "ticker":
                params.update(event_trigger="bbo")
            await ws.send(json.dumps({"method": "subscribe", "params": params, "req_id": i + 1}))
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    await ws.recv()
                    n += 1
            except TimeoutError:
                break
    return {"messages": n, "cpu_s": time.process_time() - cpu0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="book updates per second")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sim = spawn_process(sim_args(a.rate))
        try:
            ours = run_collector(sim.url, a.seconds, Path(tmp) / "run")
        finally:
            sim.stop()
        sim = spawn_process(sim_args(a.rate))
        try:
            floor = asyncio.run(bare_client(sim.url, a.seconds))
        finally:
            sim.stop()
    per_k = lambda r: 1000 * r["cpu_s"] / max(1, r["messages"]) * 1000  # noqa: E731  ms CPU / 1k msgs
    print(f"collector at {ours['messages'] / ours['wall_s']:.0f} msg/s for {ours['wall_s']:.0f} s "
          f"({ours['checksums_ok']} checksums ok, {ours['checksums_failed']} failed, {ours['samples']} samples)")
    print(f"{'':34}{'msgs':>9}{'CPU s':>8}{'CPU ms / 1k msgs':>18}")
    print(f"{'mm_core collector (everything)':34}{ours['messages']:>9}{ours['cpu_s']:>8.2f}{per_k(ours):>18.1f}")
    print(f"{'bare websockets recv (floor)':34}{floor['messages']:>9}{floor['cpu_s']:>8.2f}{per_k(floor):>18.1f}")
    print(f"capture overhead, frame arrival -> parsed + booked + rows written: "
          f"p50 {ours['overhead_us_p50']:.1f} us, p99 {ours['overhead_us_p99']:.1f} us")
    return 0 if ours["checksums_failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
