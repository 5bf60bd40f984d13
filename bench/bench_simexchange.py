"""Benchmark: the exchange simulator -- data generation speed and server throughput.

1. **Generation**: one simulated day of the market model (``MarketModel.events``) and of the
   canonical depth-10 feed built from it (``canonical_events``), beside real time (a live feed
   needs 86,400 s for the same day; no public tool generates a comparable synthetic L2 day).
2. **Serving**: ``mm simexchange`` at ``--rate`` msg/s (default 1,000) to one client for
   ``--seconds``, beside the peer: a bare ``websockets`` server that only sends *pre-built* frames
   at the same rate (the floor cost of sending; everything above it is our model, views,
   checksums, latency scheduling and logging). Both run as child processes; we report delivered
   msg/s, lag p50/p99 at the client, and the server's CPU share (Unix: getrusage of children).

    python bench/bench_simexchange.py                      # day + 1,000 msg/s for 10 s
    python bench/bench_simexchange.py --rate 3000 --seconds 5 --skip-day
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mm_core.simexchange.canonical import canonical_events  # noqa: E402
from mm_core.simexchange.market import MarketModel, TradePrint  # noqa: E402
from mm_core.simexchange.protocol import parse_rfc3339_ns  # noqa: E402


def bench_day(seconds: float = 86_400.0) -> None:
    t0 = time.perf_counter()
    changes = trades = 0
    for ev in MarketModel(1).events(seconds):
        if type(ev) is TradePrint:
            trades += 1
        else:
            changes += 1
    model_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_events = sum(1 for _ in canonical_events(MarketModel(1), seconds, depth=10))
    canon_s = time.perf_counter() - t0
    print(f"generation of {seconds / 3600:.0f} h simulated ({changes:,} book changes, {trades:,} trades)")
    print(f"  model events           {model_s:8.2f} s   ({(changes + trades) / model_s:,.0f} events/s, {seconds / model_s:,.0f}x real time)")
    print(f"  canonical depth-10     {canon_s:8.2f} s   ({n_events:,} events)")
    print(f"  real time (live feed)  {seconds:8.0f} s")


def _child_cpu() -> float:
    if os.name == "nt":
        return float("nan")
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


async def _client(url: str, seconds: float, subscribe: bool) -> tuple[int, list[float]]:
    from websockets.asyncio.client import connect

    lags: list[float] = []
    n = 0
    async with connect(url, max_queue=None) as ws:
        if subscribe:
            await ws.send('{"method":"subscribe","params":{"channel":"book","symbol":["BTC/EUR"],"depth":10},"req_id":1}')
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except asyncio.TimeoutError:
                break
            t = time.time_ns()
            n += 1
            i = raw.find('"timestamp":"')
            if i >= 0:
                lags.append((t - parse_rfc3339_ns(raw[i + 13 : i + 40])) / 1e6)
    return n, lags


def _measure(cmd: list[str], seconds: float, subscribe: bool) -> tuple[float, list[float], float]:
    cpu0 = _child_cpu()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split("listening on ", 1)[1].strip()
    t0 = time.monotonic()
    n, lags = asyncio.run(_client(url, seconds, subscribe))
    elapsed = time.monotonic() - t0
    proc.wait(30)
    cpu = _child_cpu() - cpu0
    return n / elapsed, lags, cpu


def bench_serving(rate: float, seconds: float) -> None:
    run_s = seconds + 1.5
    # steady arrivals, like the peer's evenly paced frames: the default market's bursts would make
    # the two runs serve different schedules
    ours = [sys.executable, "-m", "mm_core", "simexchange", "--port", "0", "--seed", "1", "--profile", "steady",
            "--latency-median-ms", "0", "--no-latency-spells", "--updates-per-second", str(rate),
            "--trades-per-second", str(rate / 20), "--max-seconds", str(run_s)]
    peer = [sys.executable, __file__, "--peer-server", "--rate", str(rate), "--seconds", str(run_s)]
    print(f"\nserving {rate:,.0f} book msg/s to one client for {seconds:.0f} s (no injected latency)")
    print(f"  {'':22} {'delivered/s':>12} {'lag p50 ms':>11} {'lag p99 ms':>11} {'server CPU':>11}")
    for name, cmd, subscribe in (("mm simexchange", ours, True), ("peer: bare websockets", peer, False)):
        per_s, lags, cpu = _measure(cmd, seconds, subscribe)
        p50, p99 = (np.percentile(lags, [50, 99]) if lags else (float("nan"), float("nan")))
        print(f"  {name:22} {per_s:12,.0f} {p50:11.2f} {p99:11.2f} {100 * cpu / run_s:10.0f}%")


async def _peer_server(rate: float, seconds: float) -> None:
    """The floor: pre-built Kraken-like frames (fresh timestamp only) sent at ``rate`` per second."""
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    from mm_core.simexchange.protocol import rfc3339_us

    template = orjson.dumps(
        {"channel": "book", "type": "update", "data": [{"symbol": "BTC/EUR", "bids": [{"price": 70000.1, "qty": 0.25}],
                                                        "asks": [], "checksum": 123456789, "timestamp": "TS"}]}
    ).decode()

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        interval = 1.0 / rate
        nxt = time.monotonic()
        with contextlib.suppress(ConnectionClosed):
            while True:
                nxt += interval
                await ws.send(template.replace("TS", rfc3339_us(time.time_ns())))
                delay = nxt - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.sleep(seconds)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--day-seconds", type=float, default=86_400.0)
    p.add_argument("--skip-day", action="store_true")
    p.add_argument("--peer-server", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.peer_server:
        asyncio.run(_peer_server(args.rate, args.seconds))
        return 0
    if not args.skip_day:
        bench_day(args.day_seconds)
    bench_serving(args.rate, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
