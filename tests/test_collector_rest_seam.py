"""The collector's REST seam: an adapter that seeds its book from a REST snapshot asks for it with a
``snapshot_request`` event; the collector fetches it off the receive loop and hands the answer back
as a frame, which lands in the raw archive (so ``mm replay`` sees the same sequence) -- for any venue,
without the collector knowing which."""

from __future__ import annotations

import asyncio
import gzip
import threading
from http import HTTPStatus
from pathlib import Path

import orjson
from websockets.asyncio.server import serve

from mm_core.adapters.base import REST_FRAME_KEY, AdapterStats, FeedSpec
from mm_core.capture.collector import Collector, rest_endpoint
from mm_core.capture.layout import read_events
from mm_core.config import load_config
from mm_core.events import BookSnapshot, SnapshotRequest


class RestSeededAdapter:
    """Asks for a snapshot on the first diff; the REST answer becomes a verified snapshot."""

    exchange = "test"

    def __init__(self, spec: FeedSpec) -> None:
        self.spec, self.stats, self.asked = spec, AdapterStats(), False

    def subscribe_messages(self) -> list[str]:
        return ['{"subscribe": "diffs"}']

    def resync_messages(self, symbol: str) -> list[str]:
        return []

    def ping_message(self, req_id: int) -> str:
        return '{"ping": 1}'

    def reset(self) -> None:
        self.asked = False

    def on_message(self, raw, ts_capture):
        msg = orjson.loads(raw)
        head = dict(exchange="test", symbol="BTC/EUR", ts_exchange=None, ts_capture=ts_capture)
        if REST_FRAME_KEY in msg:
            b = msg["body"]
            self.stats.book_snapshots += 1
            return [BookSnapshot(**head, bids=((b["bid"], 1.0),), asks=((b["ask"], 1.0),), verified=True)]
        if "d" in msg and not self.asked:
            self.asked = True
            return [SnapshotRequest(**head, url=self.spec.rest_endpoint + "/book", reason="initial sync")]
        return []


class DiffServer:
    """Loopback: WebSocket diffs every 20 ms, and GET /book answered with a small JSON book."""

    def __init__(self) -> None:
        self.url = ""
        self.gets: list[str] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> "DiffServer":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()

        def http(conn, request):
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return None
            self.gets.append(request.path)
            resp = conn.respond(HTTPStatus.OK, orjson.dumps({"bid": 100.0, "ask": 101.0}).decode())
            resp.headers["Content-Type"] = "application/json"
            return resp

        async def feed(ws):
            n = 0
            async for _ in ws:
                while True:
                    n += 1
                    await ws.send(orjson.dumps({"d": n}).decode())
                    await asyncio.sleep(0.02)

        async with serve(feed, "127.0.0.1", 0, process_request=http) as server:
            self.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            self._ready.set()
            await self._stop.wait()


def test_a_rest_snapshot_is_fetched_on_request_and_archived_as_a_frame(tmp_path: Path) -> None:
    cfg = load_config()
    with DiffServer() as srv:
        c = Collector(cfg, tmp_path / "run" / "F.csv", url=srv.url, max_seconds=1.5, quiet=True, parquet_flush_s=0.5)
        assert c.rest_url == "http" + srv.url[2:]  # the simulator's one port serves REST too
        c.adapter = RestSeededAdapter(c.spec)
        assert c.run() == 0
    assert srv.gets == ["/book"]
    requests = [e for e in read_events(tmp_path / "run") if e["kind"] == "snapshot_request"]
    assert len(requests) == 1 and requests[0]["url"] == c.rest_url + "/book"
    raw = b"".join(gzip.decompress(p.read_bytes()) for p in sorted((tmp_path / "run" / "raw").glob("*.gz")))
    rest = [ln for ln in raw.decode().splitlines() if REST_FRAME_KEY in ln]
    assert len(rest) == 1
    frame = orjson.loads(rest[0].split(" ", 1)[1])
    assert frame[REST_FRAME_KEY]["status"] == 200 and frame["body"] == {"bid": 100.0, "ask": 101.0}
    assert int(rest[0].split(" ", 1)[0]) >= frame[REST_FRAME_KEY]["t_sent"]  # stamped when the answer was in


def test_rest_endpoint_rule() -> None:
    cfg = load_config()
    assert rest_endpoint(cfg, "wss://example.org:443/ws", None) == "https://example.org:443/ws"
    assert rest_endpoint(cfg, None, "http://127.0.0.1:9/") == "http://127.0.0.1:9"
    assert rest_endpoint(cfg, None, None) == cfg.exchange.rest_endpoint


def test_a_failed_fetch_becomes_a_frame_with_status_0() -> None:
    from mm_core.capture.rest_fetch import fetch_frame

    frame, _ = fetch_frame("http://127.0.0.1:9/none", timeout_s=2)
    f = orjson.loads(frame)
    assert f[REST_FRAME_KEY]["status"] == 0 and "request failed" in f["body"]
