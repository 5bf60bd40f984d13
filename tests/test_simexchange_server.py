"""The simulator over a real WebSocket on 127.0.0.1: protocol, checksums, heartbeats, ping/pong,
rejections, resync, every injected fault seen by the client and in the log, CLI and runners."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import numpy as np
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mm_core.adapters.kraken.checksum import checksum_of_levels
from mm_core.cli import main as mm_main
from mm_core.simexchange.latency import LatencyConfig
from mm_core.simexchange.market import MarketParams
from mm_core.simexchange.protocol import parse_rfc3339_ns
from mm_core.simexchange.server import SimExchange, run_in_background, spawn_process

FAST = LatencyConfig(median_ms=2.0, sigma=0.2, spells=False)
# Poisson arrivals for tests that count messages in a few seconds: the default market is bursty,
# so its 3-second counts spread too widely to assert on (its burstiness is tested in test_realism)
STEADY = MarketParams(burst_branching=(0.0, 0.0), spells_per_hour=0.0)
RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SYMBOL = "BTC/EUR"


def run(coro: Awaitable[Any], timeout_s: float = 30.0) -> Any:
    """Every scenario is bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))  # type: ignore[arg-type]


def read_log(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def sub(channel: str, req_id: int, **params: Any) -> dict[str, Any]:
    return {"method": "subscribe", "params": {"channel": channel, "symbol": [SYMBOL], **params}, "req_id": req_id}


class WireBook:
    """A client's depth-N book built from the wire: apply in order, delete on 0, truncate, CRC."""

    def __init__(self, depth: int = 10) -> None:
        self.depth = depth
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.ok = 0
        self.bad = 0
        self.mismatched: list[dict[str, Any]] = []

    def on_book(self, msg: dict[str, Any]) -> bool:
        d = msg["data"][0]
        if msg["type"] == "snapshot":
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, d["bids"]), (self.asks, d["asks"])):
            for level in levels:
                if level["qty"] == 0:
                    side.pop(level["price"], None)
                else:
                    side[level["price"]] = level["qty"]
        top_b = sorted(self.bids.items(), reverse=True)[: self.depth]
        top_a = sorted(self.asks.items())[: self.depth]
        self.bids, self.asks = dict(top_b), dict(top_a)
        good = checksum_of_levels(top_a, top_b, 1, 8) == d["checksum"]
        if good:
            self.ok += 1
        else:
            self.bad += 1
            self.mismatched.append(d)
        return good

    def best(self) -> tuple[float, float, float, float]:
        b, a = max(self.bids), min(self.asks)
        return b, self.bids[b], a, self.asks[a]


class Client:
    """Records every frame with its receive time (ns) and keeps a verified book."""

    def __init__(self, ws: Any, depth: int = 10) -> None:
        self.ws = ws
        self.frames: list[tuple[int, str, Any]] = []
        self.book = WireBook(depth)

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(msg).decode())

    async def next(self, timeout: float = 5.0) -> tuple[int, str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        t = time.time_ns()
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            msg = None
        if isinstance(msg, dict) and msg.get("channel") == "book" and _complete_book(msg):
            self.book.on_book(msg)
        self.frames.append((t, raw, msg))
        return t, raw, msg

    async def wait_for(self, pred: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            _, _, msg = await self.next(max(0.01, deadline - time.monotonic()))
            if msg is not None and pred(msg):
                return msg

    async def collect(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                await self.next(left)
            except asyncio.TimeoutError:
                return

    def messages(self, channel: Optional[str] = None, method: Optional[str] = None) -> list[dict[str, Any]]:
        out = []
        for _, _, m in self.frames:
            if not isinstance(m, dict):
                continue
            if channel is not None and m.get("channel") != channel:
                continue
            if method is not None and m.get("method") != method:
                continue
            out.append(m)
        return out


def _complete_book(msg: dict[str, Any]) -> bool:
    data = msg.get("data")
    return bool(data) and all(k in data[0] for k in ("bids", "asks", "checksum"))


# --------------------------------------------------------------------------- protocol


def test_status_first_then_one_ack_per_subscription_snapshot_and_verified_updates() -> None:
    async def scenario() -> Client:
        async with SimExchange(seed=1, latency=FAST, updates_per_second=40, trades_per_second=4, market=STEADY) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.next()
                await c.send(sub("book", 1, depth=10, snapshot=True))
                await c.send(sub("ticker", 2, event_trigger="bbo"))
                await c.send(sub("trade", 3, snapshot=False))
                await c.collect(3.0)
                return c

    c = run(scenario())
    status = c.frames[0][2]
    assert status["channel"] == "status" and status["type"] == "update"
    s = status["data"][0]
    assert s["system"] == "online" and s["api_version"] == "v2" and s["version"] == "2.0.10"
    assert isinstance(s["connection_id"], int)

    acks = c.messages(method="subscribe")
    assert [a["req_id"] for a in acks] == [1, 2, 3] and all(a["success"] for a in acks)
    assert acks[0]["result"] == {"channel": "book", "depth": 10, "snapshot": True, "symbol": SYMBOL}
    assert acks[1]["result"] == {"channel": "ticker", "event_trigger": "bbo", "snapshot": True, "symbol": SYMBOL}
    assert acks[2]["result"] == {"channel": "trade", "snapshot": False, "symbol": SYMBOL}
    for a in acks:
        assert RFC3339_US.match(a["time_in"]) and RFC3339_US.match(a["time_out"])
        assert parse_rfc3339_ns(a["time_in"]) <= parse_rfc3339_ns(a["time_out"])

    book = c.messages("book")
    assert book[0]["type"] == "snapshot" and "timestamp" not in book[0]["data"][0]
    assert len(book[0]["data"][0]["bids"]) == 10 and len(book[0]["data"][0]["asks"]) == 10
    updates = book[1:]
    assert len(updates) > 60 and all(u["type"] == "update" for u in updates)
    assert all(RFC3339_US.match(u["data"][0]["timestamp"]) for u in updates)
    assert c.book.bad == 0 and c.book.ok == len(book)

    ticker = c.messages("ticker")
    assert ticker[0]["type"] == "snapshot" and len(ticker) > 5
    fields = ["symbol", "bid", "bid_qty", "ask", "ask_qty", "last", "volume", "vwap", "low", "high",
              "change", "change_pct", "timestamp"]
    assert all(list(t["data"][0]) == fields for t in ticker)
    assert all(t["data"][0]["bid"] < t["data"][0]["ask"] for t in ticker)

    trades = [t for m in c.messages("trade") for t in m["data"]]
    assert len(trades) >= 4
    ids = [t["trade_id"] for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    for t in trades:
        assert list(t) == ["symbol", "side", "price", "qty", "ord_type", "trade_id", "timestamp"]
        assert t["side"] in ("buy", "sell") and t["ord_type"] in ("market", "limit")
        assert round(t["price"], 1) == t["price"] and RFC3339_US.match(t["timestamp"])


def test_ticker_bbo_matches_the_verified_book() -> None:
    async def scenario() -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
        async with SimExchange(seed=2, latency=FAST, updates_per_second=40) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1, depth=10))
                await c.wait_for(lambda m: m.get("channel") == "book")
                await c.send(sub("ticker", 2, event_trigger="bbo"))
                pairs = []
                deadline = time.monotonic() + 2.5
                while time.monotonic() < deadline:
                    _, _, m = await c.next()
                    if m and m.get("channel") == "ticker" and m["type"] == "update":
                        d = m["data"][0]
                        pairs.append(((d["bid"], d["bid_qty"], d["ask"], d["ask_qty"]), c.book.best()))
                return pairs

    pairs = run(scenario())
    assert len(pairs) > 10
    assert all(ticker == book for ticker, book in pairs)


def test_numbers_are_written_at_pair_precision_like_kraken() -> None:
    """Kraken writes ``"qty":0.00100000`` and ``"price":61234.0``: trailing zeros kept, never an
    exponent; book, trade and ticker alike (the old writer sent ``0.001``)."""

    async def scenario() -> list[str]:
        async with SimExchange(seed=3, latency=FAST, updates_per_second=40, trades_per_second=5) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1, depth=100))
                await c.send(sub("trade", 2))
                await c.send(sub("ticker", 3, event_trigger="bbo"))
                await c.collect(1.5)
                return [raw for _, raw, _ in c.frames]

    raws = run(scenario())
    prices = [p for raw in raws for p in re.findall(r'"(?:price|bid|ask|last|vwap|low|high)":([^,}]+)', raw)]
    qtys = [q for raw in raws for q in re.findall(r'"(?:qty|bid_qty|ask_qty|volume)":([^,}]+)', raw)]
    assert len(prices) > 200 and len(qtys) > 200
    assert any('"channel":"ticker"' in r for r in raws) and any('"channel":"trade","type":"update"' in r for r in raws)
    assert all(re.fullmatch(r"\d+\.\d", p) for p in prices), [p for p in prices if not re.fullmatch(r"\d+\.\d", p)][:5]
    assert all(re.fullmatch(r"\d+\.\d{8}", q) for q in qtys), [q for q in qtys if not re.fullmatch(r"\d+\.\d{8}", q)][:5]
    changes = [c for raw in raws for c in re.findall(r'"change":([^,}]+)', raw)]
    assert changes and all(re.fullmatch(r"-?\d+\.\d", c) for c in changes)


@pytest.mark.parametrize("depth", [25, 100])
def test_deeper_subscriptions_are_truncated_and_verify(depth: int) -> None:
    async def scenario() -> Client:
        async with SimExchange(seed=4, latency=FAST, updates_per_second=60) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws, depth=depth)
                await c.send(sub("book", 1, depth=depth))
                await c.collect(2.0)
                return c

    c = run(scenario())
    snap = c.messages("book")[0]["data"][0]
    assert len(snap["bids"]) == depth and len(snap["asks"]) == depth
    assert c.book.ok > 60 and c.book.bad == 0


def test_two_connections_see_the_same_market() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with SimExchange(seed=5, latency=FAST, updates_per_second=40) as sim:
            async with connect(sim.url) as ws1, connect(sim.url) as ws2:
                a, b = Client(ws1), Client(ws2)
                await a.send(sub("book", 1, depth=10))
                await b.send(sub("book", 1, depth=10))
                await asyncio.gather(a.collect(2.0), b.collect(2.0))
                return a.messages("book"), b.messages("book")

    a, b = run(scenario())
    a, b = a[1:], b[1:]  # updates after each one's snapshot
    if b[0] not in a:
        a, b = b, a
    start = a.index(b[0])
    common = min(len(a) - start, len(b)) - 1  # the last one may not have reached both
    assert common > 40
    assert a[start : start + common] == b[:common]


def test_rejections_keep_the_socket_open() -> None:
    async def scenario() -> Client:
        async with SimExchange(seed=6, latency=FAST) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.next()
                await c.send({"method": "subscribe", "params": {"channel": "book", "symbol": ["XBT/EUR"]}, "req_id": 5})
                await c.send({"method": "subscribe", "params": {"channel": "book", "symbol": [SYMBOL], "depth": 15}, "req_id": 6})
                await c.send({"method": "subscribe", "params": {"channel": "candles", "symbol": [SYMBOL]}, "req_id": 7})
                await c.send({"method": "subscribe", "params": {"channel": "book", "symbol": SYMBOL}, "req_id": 8})
                await c.send({"method": "subscribe", "params": {"channel": "ticker", "symbol": [SYMBOL, "XBT/EUR"]}, "req_id": 9})
                await c.send({"method": "subscribe", "params": {"channel": "ticker", "symbol": [SYMBOL]}, "req_id": 10})
                await c.send({"method": "fly", "req_id": 11})
                await c.send({"method": "ping", "req_id": 12})
                await c.wait_for(lambda m: m.get("method") == "pong")
                return c

    c = run(scenario())
    by_req: dict[int, list[dict[str, Any]]] = {}
    for m in c.messages():
        if "req_id" in m:
            by_req.setdefault(m["req_id"], []).append(m)
    xbt = by_req[5][0]
    assert {k: xbt[k] for k in ("error", "method", "success", "symbol", "req_id")} == {
        "error": "Currency pair not supported XBT/EUR",
        "method": "subscribe",
        "success": False,
        "symbol": "XBT/EUR",
        "req_id": 5,
    }
    assert "result" not in xbt
    assert by_req[6][0]["error"] == "Subscription depth not supported"
    assert by_req[7][0]["error"] == "Subscription name invalid"
    assert by_req[8][0]["error"] == "Symbol field must be an array"
    mixed = by_req[9]
    assert [m["success"] for m in mixed] == [True, False]
    assert mixed[0]["result"]["symbol"] == SYMBOL and mixed[1]["symbol"] == "XBT/EUR"
    assert by_req[10][0]["error"] == "Already subscribed" and by_req[10][0]["success"] is False
    assert by_req[11][0]["success"] is False and by_req[11][0]["method"] == "fly"
    assert by_req[12][0]["method"] == "pong"


def test_ping_pong_times_sit_inside_the_round_trip() -> None:
    latency = LatencyConfig(median_ms=5.0, sigma=0.0, spells=False)

    async def scenario() -> list[tuple[int, int, dict[str, Any]]]:
        async with SimExchange(seed=7, latency=latency) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.next()
                out = []
                for req_id in range(100, 105):
                    t_send = time.time_ns()
                    await c.send({"method": "ping", "req_id": req_id})
                    pong = await c.wait_for(lambda m: m.get("method") == "pong")
                    out.append((t_send, c.frames[-1][0], pong))
                return out

    for req_id, (t_send, t_recv, pong) in zip(range(100, 105), run(scenario())):
        assert pong["req_id"] == req_id
        t_in, t_out = parse_rfc3339_ns(pong["time_in"]), parse_rfc3339_ns(pong["time_out"])
        assert t_send <= t_in <= t_out <= t_recv
        assert t_recv - t_send >= 10_000_000  # 5 ms each way
        offset = (t_in + t_out) / 2 - (t_send + t_recv) / 2
        assert abs(offset) < 2_500_000  # symmetric path: the midpoint estimate is unbiased


def test_heartbeats_about_every_second_only_when_idle_and_subscribed() -> None:
    async def scenario() -> Client:
        async with SimExchange(seed=8, latency=FAST, trades_per_second=0.0) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.collect(1.5)  # not subscribed: nothing but status
                assert [m.get("channel") for _, _, m in c.frames] == ["status"]
                await c.send(sub("trade", 1))
                await c.collect(3.6)
                return c

    c = run(scenario())
    beats = [t for t, _, m in c.frames if m == {"channel": "heartbeat"}]
    assert len(beats) >= 3
    gaps = [(b - a) / 1e9 for a, b in zip(beats, beats[1:])]
    assert all(0.85 <= g <= 1.35 for g in gaps), gaps


def test_a_socket_without_subscriptions_is_closed_like_kraken_does() -> None:
    """Never subscribed, or unsubscribed from everything: closed (1000) after the idle limit;
    a subscribed socket on the same server stays open."""

    async def scenario() -> tuple[float, float, bool]:
        async with SimExchange(seed=8, latency=FAST, close_unsubscribed_s=1.0) as sim:
            async with connect(sim.url) as idle, connect(sim.url) as quitter, connect(sim.url) as kept:
                t0 = time.monotonic()
                q, k = Client(quitter), Client(kept)
                await q.send(sub("trade", 1))
                await k.send(sub("trade", 1))
                await q.wait_for(lambda m: m.get("method") == "subscribe")
                await asyncio.sleep(0.3)
                await q.send({"method": "unsubscribe", "params": {"channel": "trade", "symbol": [SYMBOL]}})
                t_unsub = time.monotonic()
                await asyncio.wait_for(idle.wait_closed(), 5)
                idle_after = time.monotonic() - t0
                await asyncio.wait_for(quitter.wait_closed(), 5)
                quit_after = time.monotonic() - t_unsub
                assert idle.close_code == 1000 and quitter.close_code == 1000
                await k.collect(0.5)
                return idle_after, quit_after, kept.close_code is None

    idle_after, quit_after, kept_open = run(scenario())
    assert 0.9 <= idle_after <= 1.6 and 0.9 <= quit_after <= 1.6, (idle_after, quit_after)
    assert kept_open


def test_a_client_connecting_during_maintenance_gets_heartbeats_every_second() -> None:
    """Maintenance pauses the market, not the connection: status says so, then heartbeats."""

    async def scenario() -> Client:
        async with SimExchange(seed=8, latency=FAST, faults="maintenance:at=0.3s:duration=6s") as sim:
            await asyncio.sleep(0.8)
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1))
                await c.collect(3.6)
                return c

    c = run(scenario())
    kinds = [m.get("channel") or m.get("method") for _, _, m in c.frames]
    assert kinds[:3] == ["status", "subscribe", "book"] and c.frames[0][2]["data"][0]["system"] == "maintenance"
    assert set(kinds[3:]) == {"heartbeat"} and len(kinds[3:]) >= 3
    times = [t for t, _, _ in c.frames[2:]]
    gaps = [(b - a) / 1e9 for a, b in zip(times, times[1:])]
    assert all(0.85 <= g <= 1.35 for g in gaps), gaps


def test_resync_by_unsubscribe_subscribe_after_a_bad_checksum(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"

    async def scenario() -> Client:
        async with SimExchange(seed=9, latency=FAST, updates_per_second=40, faults="bad_checksum:at=1s", log_path=log) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1, depth=10))
                await c.wait_for(lambda m: m.get("channel") == "book" and c.book.bad > 0)
                await c.send({"method": "unsubscribe", "params": {"channel": "book", "symbol": [SYMBOL], "depth": 10}, "req_id": 2})
                await c.send(sub("book", 3, depth=10))
                await c.wait_for(lambda m: m.get("channel") == "book" and m["type"] == "snapshot")
                await c.collect(1.0)
                return c

    c = run(scenario())
    assert c.book.bad == 1
    unsub = c.messages(method="unsubscribe")[0]
    assert unsub["success"] and unsub["result"] == {"channel": "book", "depth": 10, "symbol": SYMBOL}
    book = c.messages("book")
    snapshots = [i for i, m in enumerate(book) if m["type"] == "snapshot"]
    assert len(snapshots) == 2
    assert c.book.ok >= len(book) - 1 - 5  # only the faulty update (and ones before the resync) fail
    after = book[snapshots[1]:]
    assert len(after) > 10
    faults = [r for r in read_log(log) if r["kind"] == "fault"]
    assert len(faults) == 1 and faults[0]["fault"] == "bad_checksum"
    wrong = c.book.mismatched[0]
    assert faults[0]["ts_exchange"] == parse_rfc3339_ns(wrong["timestamp"])
    assert faults[0]["checksum_sent"] == wrong["checksum"] != faults[0]["checksum_true"]


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("mode,code", [("abort", 1006), ("close", 1001)])
def test_disconnect_fault_is_seen_by_the_client_and_logged(tmp_path: Path, mode: str, code: int) -> None:
    log = tmp_path / "sim.jsonl"

    async def scenario() -> tuple[int, float]:
        async with SimExchange(seed=10, latency=FAST, faults=f"disconnect:at=1s:mode={mode}", log_path=log) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1))
                t0 = time.monotonic()
                with pytest.raises(ConnectionClosed):
                    while True:
                        await c.next(5.0)
                return ws.close_code, time.monotonic() - t0

    close_code, after_s = run(scenario())
    assert close_code == code and 0.8 <= after_s <= 2.5
    records = read_log(log)
    fault = [r for r in records if r["kind"] == "fault"]
    assert [(f["fault"], f["mode"], f["conn"]) for f in fault] == [("disconnect", mode, 1)]
    assert any(r["kind"] == "disconnect" and r["conn"] == 1 for r in records)


@pytest.mark.parametrize("then", ["flush", "drop"])
def test_stall_is_total_silence_then_resumes(tmp_path: Path, then: str) -> None:
    log = tmp_path / "sim.jsonl"

    async def scenario() -> Client:
        spec = f"stall:at=1s:duration=2s:then={then}"
        async with SimExchange(seed=11, latency=FAST, updates_per_second=40, faults=spec, log_path=log) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1))
                await c.collect(4.5)
                return c

    c = run(scenario())
    times = [t for t, _, _ in c.frames]
    gaps = [(b - a) / 1e9 for a, b in zip(times, times[1:])]
    assert 1.8 <= max(gaps) <= 2.4
    after = [t for t in times if t > times[gaps.index(max(gaps))]]
    assert len(after) > 20  # the feed came back
    if then == "flush":
        assert c.book.bad == 0  # the backlog arrived late but complete
    else:
        assert c.book.bad > 0  # lost updates: the client's checksum must catch it
    stall = [r for r in read_log(log) if r["kind"] == "fault"]
    assert [(r["fault"], r["phase"]) for r in stall] == [("stall", "start"), ("stall", "end")]
    assert (stall[1]["t_ns"] - stall[0]["t_ns"]) / 1e9 == pytest.approx(2.0, abs=0.1)


def test_malformed_frames_reach_the_client_and_the_book_stays_intact(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"

    async def scenario() -> Client:
        async with SimExchange(seed=12, latency=FAST, updates_per_second=40, faults="malformed:rate=0.2", log_path=log) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1))
                await c.collect(2.0)
                return c

    c = run(scenario())
    bad_frames = [raw for _, raw, m in c.frames if not isinstance(m, dict) or m.get("data") == [{"symbol": SYMBOL}]]
    faults = [r for r in read_log(log) if r["kind"] == "fault"]
    assert len(bad_frames) == len(faults) > 5
    assert {f["variant"] for f in faults} == {"truncated", "garbage", "missing_fields"}
    assert c.book.bad == 0 and c.book.ok > 50


def test_maintenance_status_pauses_the_market_then_online(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"

    async def scenario() -> Client:
        spec = "maintenance:at=1s:duration=1.5s"
        async with SimExchange(seed=13, latency=FAST, updates_per_second=40, faults=spec, log_path=log) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1))
                await c.collect(4.0)
                return c

    c = run(scenario())
    systems = [(t, m["data"][0]["system"]) for t, _, m in c.frames if m and m.get("channel") == "status"]
    assert [s for _, s in systems] == ["online", "maintenance", "online"]
    t_start, t_end = systems[1][0], systems[2][0]
    assert (t_end - t_start) / 1e9 == pytest.approx(1.5, abs=0.15)
    during = [m for t, _, m in c.frames if t_start < t < t_end and m and m.get("channel") == "book"]
    assert during == []
    assert any(m == {"channel": "heartbeat"} for t, _, m in c.frames if t_start < t < t_end)
    assert c.book.bad == 0 and len([1 for t, _, m in c.frames if t > t_end and m and m.get("channel") == "book"]) > 20
    phases = [(r["fault"], r["phase"]) for r in read_log(log) if r["kind"] == "fault"]
    assert phases == [("maintenance", "start"), ("maintenance", "end")]


def test_log_delays_match_what_the_client_measures(tmp_path: Path) -> None:
    log = tmp_path / "sim.jsonl"
    latency = LatencyConfig(median_ms=10.0, sigma=0.3, spells=False)

    async def scenario() -> Client:
        async with SimExchange(seed=14, latency=latency, updates_per_second=40, log_path=log) as sim:
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1))
                await c.collect(2.5)
                return c

    c = run(scenario())
    records = read_log(log)
    msgs = [r for r in records if r["kind"] == "msg" and r["conn"] == 1]
    assert [r["seq"] for r in msgs] == list(range(1, len(msgs) + 1))
    matched = 0
    lag_ms: list[float] = []
    for (t_recv, _, m), r in zip(c.frames, msgs):  # frame i is seq i+1: in-order delivery
        assert r["channel"] == (m.get("channel") or m.get("method"))
        if m.get("channel") == "book" and m["type"] == "update":
            ts = parse_rfc3339_ns(m["data"][0]["timestamp"])
            assert r["ts_exchange"] == ts and r["stamped"]
            assert r["intended_ns"] >= r["ts_exchange"] + r["delay_ns"]
            assert r["sent_ns"] >= r["intended_ns"]
            # the client reads after the server wrote (same clock, same process): never before, and
            # usually within a millisecond; single frames can wait behind a busy shared event loop
            lag_ms.append((t_recv - r["sent_ns"]) / 1e6)
            matched += 1
    assert matched > 50
    assert min(lag_ms) >= -0.5, min(lag_ms)
    assert float(np.percentile(lag_ms, 90)) < 5.0, sorted(lag_ms)[-10:]
    summary = [r for r in records if r["kind"] == "latency_summary"]
    assert {r["conn"] for r in summary} == {1, None}
    overall = [r for r in summary if r["conn"] is None][0]
    assert overall["delay_ms"]["p50"] == pytest.approx(10.0, rel=0.15)
    assert overall["regime_share"]["normal"] == 1.0
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "stop" and "connect" in kinds and "disconnect" in kinds


def test_sustains_1000_messages_per_second() -> None:
    async def scenario() -> tuple[int, float]:
        async with SimExchange(seed=15, latency=None, updates_per_second=1000, trades_per_second=50,
                               market=STEADY) as sim:  # the server's capacity, not the market's bursts
            async with connect(sim.url) as ws:
                c = Client(ws)
                await c.send(sub("book", 1))
                await c.wait_for(lambda m: m.get("channel") == "book")
                t0 = time.monotonic()
                n0 = len(c.frames)
                await c.collect(2.0)
                return len(c.frames) - n0, time.monotonic() - t0

    n, elapsed = run(scenario())
    assert n / elapsed > 700, f"{n / elapsed:.0f} msg/s"
    # (depth 10 drops the ~5 % of model changes that happen deeper in the book)


# --------------------------------------------------------------------------- runners and CLI


def test_run_in_background_serves_sync_clients_and_injects_faults() -> None:
    from websockets.sync.client import connect as sync_connect

    with run_in_background(seed=16, latency=FAST, updates_per_second=40) as sim:
        assert sim.url.startswith("ws://127.0.0.1:")
        with sync_connect(sim.url) as ws:
            assert orjson.loads(ws.recv(timeout=5))["channel"] == "status"
            ws.send(orjson.dumps(sub("book", 1)).decode())
            assert orjson.loads(ws.recv(timeout=5))["success"] is True
            assert orjson.loads(ws.recv(timeout=5))["type"] == "snapshot"
            sim.inject("disconnect", mode="abort")
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=5)
        assert sim.stats()["faults"] == {"disconnect": 1}
    sim.stop()  # idempotent


def test_cli_prints_listening_and_stops_by_itself(tmp_path: Path) -> None:
    log = tmp_path / "cli.jsonl"
    proc = spawn_process(["--seed", "3", "--max-seconds", "1.5", "--log", str(log), "--json"])
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", proc.url)
    out, _ = proc.proc.communicate(timeout=15)
    assert proc.proc.returncode == 0
    assert orjson.loads(out.strip().splitlines()[-1])["connections"] == 0
    assert read_log(log)[-1]["kind"] == "stop"


def test_cli_stops_cleanly_on_sigint() -> None:
    proc = spawn_process(["--seed", "3"])
    from websockets.sync.client import connect as sync_connect

    with sync_connect(proc.url) as ws:
        assert orjson.loads(ws.recv(timeout=5))["channel"] == "status"
    assert proc.stop() == 0


def test_cli_rejects_a_bad_fault_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert mm_main(["simexchange", "--faults", "disconnect:evry=20s"]) == 2
    assert "unknown parameter 'evry'" in capsys.readouterr().err


def test_cli_help_lists_the_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mm_core", "simexchange", "--help"], capture_output=True, text=True, timeout=30
    ).stdout
    for option in ("--port", "--seed", "--latency-median-ms", "--faults", "--log", "--no-predictive", "--max-seconds"):
        assert option in out
