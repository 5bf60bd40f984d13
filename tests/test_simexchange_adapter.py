"""The simulator's wire traffic through our real Kraken v2 adapter: every checksum verifies, and
injected bad checksums are caught and healed by the adapter's own resync messages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from mm_core.adapters.base import FeedSpec
from mm_core.events import BookSnapshot, BookUpdate, ChecksumMismatch, Resync
from mm_core.simexchange.latency import LatencyConfig
from mm_core.simexchange.server import SimExchange

v2 = pytest.importorskip("mm_core.adapters.kraken.v2")

FAST = LatencyConfig(median_ms=2.0, sigma=0.2, spells=False)


async def _drive(sim: SimExchange, seconds: float, depth: int) -> tuple[Any, list[Any]]:
    adapter = v2.KrakenV2Adapter(FeedSpec(symbols=("BTC/EUR",), book_depth=depth))
    events: list[Any] = []
    async with connect(sim.url) as ws:
        for msg in adapter.subscribe_messages():
            await ws.send(msg)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except asyncio.TimeoutError:
                break
            out = adapter.on_message(raw, time.time_ns())
            events.extend(out)
            if any(isinstance(e, Resync) for e in out):
                for msg in adapter.resync_messages("BTC/EUR"):
                    await ws.send(msg)
    return adapter, events


@pytest.mark.parametrize("depth", [10, 25])
def test_every_simulator_checksum_verifies_in_the_adapter(depth: int) -> None:
    async def scenario() -> tuple[Any, list[Any]]:
        async with SimExchange(seed=31, latency=FAST, updates_per_second=60, trades_per_second=5) as sim:
            return await _drive(sim, 3.0, depth)

    adapter, events = asyncio.run(asyncio.wait_for(scenario(), 30))
    stats = adapter.stats
    assert stats.checksums_failed == 0 and stats.unverified_updates == 0 and stats.bad_messages == 0
    assert stats.book_snapshots == 1 and stats.checksums_ok > 100
    updates = [e for e in events if isinstance(e, BookUpdate)]
    assert updates and all(e.verified and e.ts_exchange for e in updates)
    assert stats.trades > 0 and stats.tops > 0


def test_injected_bad_checksums_are_caught_and_healed_by_resync(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"

    async def scenario() -> tuple[Any, list[Any]]:
        faults = "bad_checksum:every=0.7s:count=3"
        async with SimExchange(seed=32, latency=FAST, updates_per_second=60, faults=faults, log_path=log) as sim:
            return await _drive(sim, 3.5, 10)

    adapter, events = asyncio.run(asyncio.wait_for(scenario(), 30))
    records = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    injected = {r["ts_exchange"] for r in records if r["kind"] == "fault" and r["fault"] == "bad_checksum"}
    mismatches = [e for e in events if isinstance(e, ChecksumMismatch)]
    assert len(injected) == 3
    assert {e.ts_exchange for e in mismatches} == injected
    snapshots = [e for e in events if isinstance(e, BookSnapshot)]
    assert len(snapshots) == 1 + len(mismatches)
    last_snapshot = max(i for i, e in enumerate(events) if isinstance(e, BookSnapshot))
    tail = [e for e in events[last_snapshot:] if isinstance(e, BookUpdate)]
    assert tail and all(e.verified for e in tail)
