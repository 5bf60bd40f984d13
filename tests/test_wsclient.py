"""Both client libraries stamp a message when it comes off the socket, not when recv() returns it.

Before, the collector took ``time.time_ns()`` after ``recv()`` returned, so a frame that waited in the
library's queue (behind the handling of the frames read with it) was stamped late by that wait.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.server import serve

from mm_core.capture.wsclient import CLIENTS, ConnectionClosed, connect_function

MS = 1_000_000


def clients() -> list[str]:
    return [c for c in ("websockets", "picows") if c in CLIENTS]


async def _serve_and_read(client: str, handler, reads: int,  # type: ignore[no-untyped-def]
                          pause_s: float) -> tuple[list, list]:
    sent: list[int] = []
    out: list[tuple] = []

    async def wrapped(ws):  # type: ignore[no-untyped-def]
        await handler(ws, sent)

    async with serve(wrapped, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        ws = await connect_function(client)(f"ws://127.0.0.1:{port}", open_timeout=5, ping_interval=20,
                                            ping_timeout=20, close_timeout=2, max_size=2**20, max_queue=64)
        await asyncio.sleep(0.2)  # every frame arrives while nobody calls recv
        try:
            for _ in range(reads):
                ts, msg = await ws.recv_stamped()
                out.append((ts, msg, time.time_ns()))
                await asyncio.sleep(pause_s)
        except ConnectionClosed as exc:
            out.append(exc)
        await ws.close()
    return sent, out


@pytest.mark.parametrize("client", clients())
def test_each_message_keeps_the_time_it_came_off_the_socket(client: str) -> None:
    async def handler(ws, sent):  # type: ignore[no-untyped-def]
        for i in range(3):
            sent.append(time.time_ns())
            await ws.send(json.dumps({"n": i}))
        await ws.send(["{\"n\": ", "3}"])  # one message in two fragments
        sent.append(time.time_ns())
        await ws.wait_closed()

    sent, out = asyncio.run(_serve_and_read(client, handler, 4, 0.05))
    assert [json.loads(m)["n"] for _, m, _ in out] == [0, 1, 2, 3]
    for i, ((ts, _, returned), s) in enumerate(zip(out, sent)):
        assert s <= ts < s + 50 * MS  # off the socket right after it was sent
        assert returned - ts >= (200 + 50 * i) * MS * 0.9  # recv() returned it much later
    assert all(isinstance(m, str) for _, m, _ in out)


@pytest.mark.parametrize("client", clients())
@pytest.mark.parametrize("close", ["frame", "abort"])
def test_a_closed_connection_raises_connection_closed_with_the_peers_code(client: str, close: str) -> None:
    async def handler(ws, sent):  # type: ignore[no-untyped-def]
        await ws.send("{}")
        if close == "frame":
            await ws.close(1001, "going away")
        else:
            ws.transport.abort()

    _, out = asyncio.run(_serve_and_read(client, handler, 3, 0.0))
    assert isinstance(out[0], tuple) and out[0][1] == "{}"  # what was delivered before the close
    exc = out[-1]
    assert isinstance(exc, ConnectionClosed)
    if close == "frame":
        assert exc.rcvd is not None and exc.rcvd.code == 1001 and exc.rcvd.reason == "going away"
    else:
        assert exc.rcvd is None  # the collector logs this as 1006
