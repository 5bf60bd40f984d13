"""A tiny scripted Kraken-v2 WebSocket server for collector tests (loopback only).

Unlike the full simulator (``mm simexchange``), each behaviour here is exact and deterministic:
it replays the real recorded v2 book (fresh exchange timestamps, same levels and checksums), can
go silent after N messages, reject subscriptions, drop the connection, or close every session
before its first book message -- so each collector
promise gets a test with a known answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve


def rfc3339(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns // 1000) % 1_000_000:06d}Z"


def load_v2_recording(path: Path, symbol: str = "BTC/EUR") -> list[dict]:
    """Snapshot + updates of the real v2 recording, re-labelled to ``symbol``."""
    doc = json.loads(path.read_text())
    init = doc["init"] if isinstance(doc["init"], list) else [doc["init"]]
    msgs = init + doc["updates"]
    for m in msgs:
        for d in m.get("data", []):
            d["symbol"] = symbol
    return msgs


@dataclass
class Script:
    messages: list[dict]
    interval_s: float = 0.002
    silent_after: int | None = None       # stop sending (connection stays open) after N book msgs
    drop_after: int | None = None         # close the TCP connection abruptly after N book msgs
    reject: str | None = None             # answer subscribe with this error
    close_before_snapshot: bool = False   # ack the book subscribe, then close (1001) before any book
    connections: int = 0
    subscribes: list[dict] = field(default_factory=list)
    sent_book_messages: int = 0


class ScriptedExchange:
    """Runs the script server in a background thread; ``url`` is ws://127.0.0.1:PORT."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> "ScriptedExchange":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted exchange did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, ws: ServerConnection) -> None:
        s = self.script
        s.connections += 1
        await ws.send(json.dumps({"channel": "status", "type": "update", "data": [
            {"system": "online", "api_version": "v2", "connection_id": 1, "version": "2.0.10"}]}))
        book_subscribed = asyncio.Event()

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                now = rfc3339(time.time_ns())
                if msg.get("method") == "ping":
                    await ws.send(json.dumps({"method": "pong", "req_id": msg.get("req_id"),
                                              "time_in": now, "time_out": now}))
                elif msg.get("method") == "subscribe":
                    s.subscribes.append(msg)
                    p = msg["params"]
                    for sym in p["symbol"]:
                        if s.reject:
                            await ws.send(json.dumps({"error": s.reject, "method": "subscribe",
                                                      "success": False, "symbol": sym,
                                                      "req_id": msg.get("req_id")}))
                            continue
                        await ws.send(json.dumps({"method": "subscribe", "success": True,
                                                  "result": {"channel": p["channel"], "symbol": sym},
                                                  "time_in": now, "time_out": now,
                                                  "req_id": msg.get("req_id")}))
                        if p["channel"] == "book":
                            book_subscribed.set()

        read_task = asyncio.create_task(reader())
        try:
            subscribed = asyncio.create_task(book_subscribed.wait())
            await asyncio.wait({subscribed, read_task}, timeout=5,
                               return_when=asyncio.FIRST_COMPLETED)
            if not book_subscribed.is_set():
                subscribed.cancel()
                return
            if s.close_before_snapshot:
                await ws.close(1001, "going away")
                return
            for i, m in enumerate(s.messages):
                if s.silent_after is not None and i >= s.silent_after:
                    break  # data stops; pongs still answered (a stalled subscription)
                if s.drop_after is not None and i >= s.drop_after:
                    ws.transport.abort()  # abrupt TCP close, no close frame (like a 1006)
                    return
                m = dict(m)
                if m.get("type") == "update":
                    m["data"] = [dict(m["data"][0], timestamp=rfc3339(time.time_ns()))]
                await ws.send(json.dumps(m))
                s.sent_book_messages += 1
                await asyncio.sleep(s.interval_s)
            await read_task  # keep the connection open until the client goes away
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        except Exception:
            pass
        finally:
            read_task.cancel()
