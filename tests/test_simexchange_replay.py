"""``mm simexchange --replay``: real recordings served over the socket, faithfully, with checksums
that every client verifies -- the collector captures the replayed real v2 recording end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from conftest import V1_BOOK, V2_BOOK
from mm_core.capture.collector import Collector
from mm_core.capture.layout import read_summary
from mm_core.cli import main as mm_main
from mm_core.config import load_config
from mm_core.replay import replay_file
from mm_core.simexchange.latency import LatencyConfig
from mm_core.simexchange.market import LevelBook, price_of, qty_of
from mm_core.simexchange.replay_market import RecordingMarket
from mm_core.simexchange.server import SimExchange, spawn_process
from mm_core.store.parquet_store import read_table
from test_collector import fast_config
from test_simexchange_server import WireBook

FAST = LatencyConfig(median_ms=2.0, sigma=0.2, spells=False)


def test_the_served_book_is_the_recorded_clients_book(shared_data: Path) -> None:
    market = RecordingMarket(V2_BOOK)
    assert (market.symbol, market.depth) == ("BTC/USD", 10)
    book: LevelBook = market.book.copy()
    changes = list(market.events())
    for change in changes:
        book.apply(change)
        book.truncate(market.depth)
    assert len(changes) == 509 and market.counts["book_changes"] == 509
    span_s = (changes[-1].ts_ns - changes[0].ts_ns) / 1e9
    assert span_s == pytest.approx(50.665, abs=0.01)  # paced by the recorded exchange timestamps
    final = replay_file(V2_BOOK)["final_top"]["BTC/USD"]
    b, bq, a, aq = book.bbo()
    assert (price_of(b), qty_of(bq), price_of(a), qty_of(aq)) == (final["bid"], final["bid_qty"], final["ask"],
                                                                    final["ask_qty"])


def test_collector_captures_the_replayed_real_recording_and_every_checksum_verifies(
        shared_data: Path, tmp_path: Path) -> None:
    sim = spawn_process(["--replay", str(V2_BOOK), "--replay-speed", "5", "--latency-median-ms", "2",
                         "--no-latency-spells", "--log", str(tmp_path / "sim.jsonl")])
    try:
        cfg = load_config(fast_config(tmp_path, watchdog_silence_s=5), symbol="BTC/USD")
        code = Collector(cfg, tmp_path / "run" / "F.csv", url=sim.url, max_seconds=14, quiet=True).run()
    finally:
        sim.stop()
    assert code == 0
    summary = read_summary(tmp_path / "run")
    assert summary["checksums_failed"] == 0
    book = read_table(tmp_path / "run" / "parquet", "book")
    kinds = book.column("kind").to_pylist()
    assert kinds.count("book_snapshot") == 1 and kinds.count("book_update") == 509  # all of it, once
    assert all(book.column("verified").to_pylist())
    log = [orjson.loads(line) for line in (tmp_path / "sim.jsonl").read_bytes().splitlines()]
    assert log[0]["replay"] == str(V2_BOOK) and any(r["kind"] == "replay_end" for r in log)
    # the wire carries serving time: ages measure the injected latency (2 ms), not the recording's age
    import polars as pl

    ages = pl.read_csv(tmp_path / "run" / "F.csv")["age_ms"]
    assert ages.len() == 509 and 1.0 < ages.median() < 20.0


def test_a_v1_cryptofeed_capture_is_served_as_v2_at_any_depth(shared_data: Path) -> None:
    """cryptofeed's Kraken v1 book-1000 capture of XBT/CHF: served as BTC/CHF, a depth-10 and a
    depth-100 client both verify every checksum (computed from the served book)."""

    async def scenario() -> list[WireBook]:
        async with SimExchange(latency=FAST, replay=V1_BOOK, symbol="XBT/CHF", replay_speed=10) as sim:
            assert sim.symbol == "BTC/CHF"
            books = []
            for depth in (10, 100):
                ws = await connect(sim.url)
                await ws.send(orjson.dumps({"method": "subscribe", "params": {
                    "channel": "book", "symbol": ["BTC/CHF"], "depth": depth}}).decode())
                books.append((ws, WireBook(depth)))
            loop = asyncio.get_running_loop()
            end = loop.time() + 4.0
            while loop.time() < end:
                for ws, wb in books:
                    try:
                        msg = orjson.loads(await asyncio.wait_for(ws.recv(), 0.05))
                    except asyncio.TimeoutError:
                        continue
                    if msg.get("channel") == "book":
                        wb.on_book(msg)
            for ws, _ in books:
                await ws.close()
            return [wb for _, wb in books]

    shallow, deep = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert shallow.bad == 0 and deep.bad == 0
    assert shallow.ok > 40 and deep.ok > shallow.ok  # deeper levels change more often


def test_replay_refuses_what_it_cannot_serve(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert mm_main(["simexchange", "--replay", str(V1_BOOK), "--symbol", "ETH/CHF", "--max-seconds", "1"]) == 2
    assert "finer than the simulator's grid" in capsys.readouterr().err
    assert mm_main(["simexchange", "--replay", str(V1_BOOK), "--symbol", "BTC/JPY", "--max-seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert "no book for BTC/JPY" in err and "BTC/CHF" in err and err.count("\n") == 1
    assert mm_main(["simexchange", "--replay", "missing.json", "--max-seconds", "1"]) == 2
    assert "no such file" in capsys.readouterr().err
