"""Real clients nobody here wrote, pointed at ``mm simexchange`` over loopback: every checksum verifies.

python-kraken-sdk 3.5.1's ``SpotOrderBookClient`` truncates its book to the subscribed depth after
*every single level* and re-formats the parsed floats at the pair's precision before the CRC32; on
the 509 real Kraken updates in ``../shared/data`` it fails none. It failed 5 times in 40 s against
the simulator while the simulator could list an insertion before a deletion within one side (Kraken
lists deletions first). A second client keeps the numbers' wire text verbatim for its checksum, as
Kraken's own SDK does: that only works if the numbers are written at the pair's precision with their
trailing zeros (``0.00100000``), as Kraken writes them.

The only network call python-kraken-sdk makes besides the socket is a REST ``AssetPairs`` lookup for
the pair's decimals; the tests answer it locally (1 and 8, BTC/EUR's real values).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any
from unittest import mock

import pytest
from websockets.asyncio.client import connect

from mm_core.simexchange.latency import LatencyConfig
from mm_core.simexchange.server import SimExchange

FAST = LatencyConfig(median_ms=1.0, sigma=0.2, spells=False)
SYMBOL = "BTC/EUR"


class _OfflineMarket:
    """Stands in for python-kraken-sdk's REST ``Market`` client: BTC/EUR's decimals, no network."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def get_asset_pairs(self, pair: Any) -> dict[str, dict[str, int]]:
        name = pair if isinstance(pair, str) else pair[0]
        return {name: {"pair_decimals": 1, "lot_decimals": 8}}


async def _run_sdk_book_client(depth: int, seconds: float, updates_per_second: float,
                               market: Any = None) -> dict[str, int]:
    import kraken.spot.orderbook as sdk_orderbook
    from kraken.spot import SpotOrderBookClient

    counts = {"verified": 0, "checksum_failures": 0}
    async with SimExchange(seed=11, latency=FAST, updates_per_second=updates_per_second,
                           trades_per_second=1.0, market=market) as sim:

        class LocalBookClient(SpotOrderBookClient):
            WS_URL = sim.url  # the SDK appends "/v2"; the simulator serves any path

        async def on_book(pair: str, message: dict[str, Any]) -> None:
            if "error" in message:  # the SDK's own "Checksum mismatch - resubscribing" notice
                counts["checksum_failures"] += 1
            elif message.get("type") == "update":
                counts["verified"] += 1

        with mock.patch.object(sdk_orderbook, "Market", _OfflineMarket):
            client = LocalBookClient(depth=depth, callback=on_book)
        await client.start()
        try:
            await client.add_book(pairs=[SYMBOL])
            await asyncio.sleep(seconds)
        finally:
            await client.close()
    return counts


@pytest.mark.parametrize("depth", [10, 25])
def test_python_kraken_sdk_book_client_verifies_every_simulator_checksum(depth: int) -> None:
    """At 150 updates/s for 6 s the old level order failed this client's checksum within seconds."""
    counts = asyncio.run(asyncio.wait_for(_run_sdk_book_client(depth, 6.0, 150.0), 60))
    assert counts["checksum_failures"] == 0, counts
    assert counts["verified"] > 400, counts


def test_python_kraken_sdk_book_client_verifies_repricing_jumps() -> None:
    """Jumps are two-sided messages that replace the whole top 10 (the volatile profile's, here 10 a
    second so 6 s hold ~60): the third-party client still verifies every checksum."""
    from dataclasses import replace

    from mm_core.simexchange.profiles import load_profile

    market = replace(load_profile("volatile").params, jumps_per_hour=36_000.0)
    counts = asyncio.run(asyncio.wait_for(_run_sdk_book_client(10, 6.0, 150.0, market), 60))
    assert counts["checksum_failures"] == 0, counts
    assert counts["verified"] > 400, counts


def _wire_checksum(book: dict[str, dict[str, str]]) -> int:
    """Kraken's CRC32 from the numbers' wire text (what Kraken's own SDK keeps), top 10 each side."""
    asks = sorted(book["asks"].items(), key=lambda kv: float(kv[0]))[:10]
    bids = sorted(book["bids"].items(), key=lambda kv: -float(kv[0]))[:10]
    text = "".join(p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0") for p, q in asks + bids)
    return zlib.crc32(text.encode())


def test_a_client_checksumming_the_wire_text_verbatim_verifies_every_update() -> None:
    """Numbers are written at pair precision with trailing zeros, so the verbatim text checks out."""

    async def scenario() -> tuple[int, int]:
        ok = bad = 0
        async with SimExchange(seed=5, latency=FAST, updates_per_second=100.0) as sim:
            async with connect(sim.url) as ws:
                await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "book", "symbol": [SYMBOL],
                                                                            "depth": 10}}))
                book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 4.0
                while loop.time() < deadline:
                    raw = await asyncio.wait_for(ws.recv(), 5)
                    msg = json.loads(raw, parse_float=str, parse_int=str)  # keep every number's text
                    if msg.get("channel") != "book":
                        continue
                    d = msg["data"][0]
                    if msg["type"] == "snapshot":
                        book = {"bids": {}, "asks": {}}
                    for side in ("bids", "asks"):
                        levels = book[side]
                        for level in d[side]:
                            if float(level["qty"]) == 0:
                                levels.pop(level["price"], None)
                            else:
                                levels[level["price"]] = level["qty"]
                        keep = sorted(levels, key=float, reverse=side == "bids")[:10]
                        book[side] = {p: levels[p] for p in keep}
                    if _wire_checksum(book) == int(d["checksum"]):
                        ok += 1
                    else:
                        bad += 1
        return ok, bad

    ok, bad = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert bad == 0 and ok > 200, (ok, bad)
