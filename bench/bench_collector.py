"""Collector cost at 1,000 msg/s: CPU per 1,000 messages and capture overhead (arrival -> row written).

Both figures are printed beside the floor: a bare client that subscribes to the same simulator
feed and only receives frames through the collector's own stamped connection (no parsing, no book,
no files), once with ``websockets`` and, when installed, once with ``picows`` (the collector uses
picows when it is importable, see ``mm_core/capture/wsclient.py``). The difference to the floor of the collector's own client is what
the collector's own work costs (parse, L2 book, CRC32 on every update, routing, and the writer
thread's CSV/Parquet/raw/event files -- CPU of the same process).

    python bench/bench_collector.py [--seconds 20] [--rate 1000] [--ws-client auto|picows|websockets]

The simulator runs in its own process, so its CPU is not counted against the collector. The store's
own figure (rows/s for a simulated day of canonical events) is ``bench/bench_store.py``.
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
from mm_core.capture.wsclient import CLIENTS, connect_function  # noqa: E402
from mm_core.config import load_config  # noqa: E402
from mm_core.simexchange.server import spawn_process  # noqa: E402


def sim_args(rate: float) -> list[str]:
    return ["--seed", "11", "--updates-per-second", str(rate), "--trades-per-second", "5",
            "--latency-median-ms", "1", "--no-latency-spells", "--no-log-messages"]


def run_collector(url: str, seconds: float, out: Path, ws_client: str | None) -> dict:
    cfg = load_config()
    col = Collector(cfg, out / "F.csv", url=url, max_seconds=seconds, quiet=True, ws_client=ws_client)
    handle = col._handle_frame
    costs: list[int] = []

    def timed(frame, ts_capture, ws):  # type: ignore[no-untyped-def]
        result = handle(frame, ts_capture, ws)
        costs.append(time.time_ns() - ts_capture)  # socket stamp -> parsed, booked, handed to the writer
        return result

    col._handle_frame = timed  # type: ignore[method-assign]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    col.run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    s = col.summary
    arr = np.array(costs) / 1e3
    return {"client": col.ws_client, "messages": s.messages, "cpu_s": cpu, "wall_s": wall, "checksums_ok": s.checksums_ok,
            "checksums_failed": s.checksums_failed, "samples": s.samples,
            "overhead_us_p50": float(np.percentile(arr, 50)), "overhead_us_p99": float(np.percentile(arr, 99))}


def subscribe_messages() -> list[str]:
    out = []
    for i, ch in enumerate(("book", "ticker", "trade")):
        params: dict = {"channel": ch, "symbol": ["BTC/EUR"]}
        if ch == "book":
            params.update(depth=10, snapshot=True)
        if ch == "ticker":
            params.update(event_trigger="bbo")
        out.append(json.dumps({"method": "subscribe", "params": params, "req_id": i + 1}))
    return out


async def bare_client(url: str, seconds: float, client: str = "websockets") -> dict:
    """Receive-only loop through the same stamped connection the collector uses (no parsing, no files)."""
    ws = await connect_function(client)(url, max_size=2**24)
    n = 0
    cpu0 = time.process_time()
    try:
        for m in subscribe_messages():
            await ws.send(m)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    await ws.recv_stamped()
                    n += 1
            except TimeoutError:
                break
    finally:
        await ws.close()
    return {"client": client, "messages": n, "cpu_s": time.process_time() - cpu0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="book updates per second")
    ap.add_argument("--ws-client", choices=("auto", "picows", "websockets"), default=None,
                    help="the collector's client library (default: picows if installed)")
    a = ap.parse_args()
    floors = []
    with tempfile.TemporaryDirectory() as tmp:
        sim = spawn_process(sim_args(a.rate))
        try:
            ours = run_collector(sim.url, a.seconds, Path(tmp) / "run", a.ws_client)
        finally:
            sim.stop()
        for client in sorted(CLIENTS, key=lambda c: c != ours["client"]):  # the collector's own first
            sim = spawn_process(sim_args(a.rate))
            try:
                floors.append(asyncio.run(bare_client(sim.url, a.seconds, client)))
            finally:
                sim.stop()
    per_k = lambda r: 1000 * r["cpu_s"] / max(1, r["messages"]) * 1000  # noqa: E731  ms CPU / 1k msgs
    print(f"collector ({ours['client']}) at {ours['messages'] / ours['wall_s']:.0f} msg/s for {ours['wall_s']:.0f} s "
          f"({ours['checksums_ok']} checksums ok, {ours['checksums_failed']} failed, {ours['samples']} samples)")
    print(f"{'':38}{'msgs':>9}{'CPU s':>8}{'CPU ms / 1k msgs':>18}")
    print(f"{'mm_core collector (' + ours['client'] + ')':38}{ours['messages']:>9}{ours['cpu_s']:>8.2f}"
          f"{per_k(ours):>18.1f}")
    for floor in floors:
        label = f"bare {floor['client']} recv (floor)"
        print(f"{label:38}{floor['messages']:>9}{floor['cpu_s']:>8.2f}{per_k(floor):>18.1f}")
    print(f"capture overhead, frame off the socket -> parsed + booked + handed to the writer: "
          f"p50 {ours['overhead_us_p50']:.1f} us, p99 {ours['overhead_us_p99']:.1f} us")
    return 0 if ours["checksums_failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
