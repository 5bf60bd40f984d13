"""Benchmark: the private trading path's own cost, beside the floor of doing the same I/O bare.

Two figures, each next to what the same work costs without our client:

1. **order round trip on loopback** (``add_order`` sent -> reply matched -> typed outcome): our
   ``KrakenVenue.place`` (request builder, token, req_id matching, outcome parsing) against a bare
   ``websockets`` client that sends a pre-built frame and waits for the next reply frame (no
   matching, no parsing): the floor of the socket itself. Same stub exchange, same process, same run.
   The bare client subscribes to the same channels, so the stub sends both the same frames, and
   skips everything until the reply.
2. **one fill through the client** (executions frame -> parser -> order manager, journal append
   included) against ``orjson.loads`` of the same frame (the decode every client pays).

    python bench/bench_private.py [--orders 2000] [--fills 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from kraken_private_stub import API_KEY, API_SECRET, PrivateStub, StubExchange  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from mm_core.adapters.kraken.auth import NonceSource  # noqa: E402
from mm_core.adapters.kraken.credentials import ApiCredentials, Secret  # noqa: E402
from mm_core.adapters.kraken.executions import KrakenPrivateParser  # noqa: E402
from mm_core.adapters.kraken.private_session import KrakenPrivateSession  # noqa: E402
from mm_core.adapters.kraken.rest import KrakenRestClient, TokenSource  # noqa: E402
from mm_core.adapters.kraken.venue import KrakenVenue  # noqa: E402
from mm_core.trading.orders import OrderManager  # noqa: E402
from mm_core.trading.records import OrderRequest  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def round_trips(n: int) -> tuple[list[float], list[float]]:
    async with PrivateStub(StubExchange(balances={"BTC": 1e6, "EUR": 1e12})) as stub:
        creds = ApiCredentials(Secret(API_KEY), Secret(API_SECRET), "bench")
        rest = KrakenRestClient(creds, NonceSource(), base_url=stub.rest_url)
        venue = KrakenVenue(KrakenPrivateSession(stub.ws_url, TokenSource(rest), ws_client="websockets"), rest=rest)
        await venue.start()
        ours = []
        for i in range(n):
            req = OrderRequest(symbol="BTC/EUR", side="buy", qty=0.001, price=50_000.0, cl_ord_id=f"b{i:08d}")
            t0 = time.perf_counter_ns()
            out = await venue.place(req)
            ours.append((time.perf_counter_ns() - t0) / 1e3)
            assert out.ok
        await venue.close()
        token = next(iter(stub.ex.tokens))
        bare = []
        async with connect(stub.ws_url, compression=None) as ws:  # as the session connects
            for ch in ("executions", "balances"):  # the same subscriptions: the stub does the same work
                await ws.send(orjson.dumps({"method": "subscribe", "params": {"channel": ch, "token": token}}))
            for i in range(n):
                frame = orjson.dumps({"method": "add_order", "params": {
                    "order_type": "limit", "side": "buy", "order_qty": 0.001, "symbol": "BTC/EUR",
                    "limit_price": 50_000.0, "cl_ord_id": f"c{i:08d}", "token": token}, "req_id": i})
                t0 = time.perf_counter_ns()
                await ws.send(frame)
                while b'"method":"add_order"' not in (await ws.recv()):  # skip snapshots/executions
                    pass
                bare.append((time.perf_counter_ns() - t0) / 1e3)
        return ours, bare


def fills(n: int) -> tuple[float, float]:
    frames = [orjson.dumps({"channel": "executions", "type": "update", "sequence": i + 2, "data": [{
        "exec_type": "trade", "order_id": "OA", "exec_id": f"T{i}", "symbol": "BTC/EUR", "side": "buy",
        "last_qty": 0.00001, "last_price": 60_000.0, "liquidity_ind": "m", "cost": 0.6, "order_status":
        "partially_filled", "fees": [{"asset": "EUR", "qty": 0.0015}], "timestamp": "2026-05-01T10:00:00.123456Z"}]})
        for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        m = OrderManager.open(Path(d) / "j", symbol="BTC/EUR", base="BTC", quote="EUR")
        from mm_core.trading.records import BalancesSnapshot, ExecutionsSnapshot
        m.on_record(ExecutionsSnapshot(exchange="kraken", symbol="BTC/EUR", ts_exchange=None, ts_capture=0))
        m.on_record(BalancesSnapshot(exchange="kraken", symbol="", ts_exchange=None, ts_capture=0,
                                     balances={"BTC": 0.0, "EUR": 1e9}))
        m.new_order("buy", 1.0, 60_000.0)
        p = KrakenPrivateParser()
        t0 = time.perf_counter()
        for i, f in enumerate(frames):
            for rec in p.on_message(f, i):
                m.on_record(rec)
        ours = (time.perf_counter() - t0) / n * 1e6
        m.close()
    t0 = time.perf_counter()
    for f in frames:
        orjson.loads(f)
    floor = (time.perf_counter() - t0) / n * 1e6
    return ours, floor


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=2000, help="round trips per client (default 2000)")
    ap.add_argument("--fills", type=int, default=20000, help="fills through the parser+manager (default 20000)")
    a = ap.parse_args()
    ours, bare = asyncio.run(round_trips(a.orders))
    print(f"add_order round trip on loopback, {a.orders} orders (us):")
    print(f"  KrakenVenue.place        p50 {statistics.median(ours):7.1f}  p99 {pct(ours, 0.99):7.1f}")
    print(f"  bare websockets send/recv p50 {statistics.median(bare):7.1f}  p99 {pct(bare, 0.99):7.1f}")
    f_ours, f_floor = fills(a.fills)
    print(f"one fill, frame -> parser -> order manager (+journal append): {f_ours:6.2f} us/fill")
    print(f"  orjson.loads of the same frame (floor):                     {f_floor:6.2f} us/fill")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
