"""The collector's WebSocket connections: every message comes with the moment it came off the socket.

``ts_capture`` must be the arrival time of a frame, not the time our loop got round to it. Both
client libraries parse frames inside the event loop's socket callback and queue them; ``recv()``
returns a message only one loop iteration later, after whatever else was ready (the handling of the
frames before it in the same read, timers, other tasks). So the stamp is taken *in the callback*:

* ``picows`` (preferred when installed): a native :class:`picows.WSListener` -- its ``on_ws_frame``
  is called from picows' C frame parser for each frame of a read, and stamps it there.
* ``websockets``: a :class:`~websockets.asyncio.client.ClientConnection` subclass (the library's own
  ``create_connection`` hook) that takes the time when a TCP read is handed to the protocol
  (``data_received``) and files it for each complete data message parsed from that read.

Both expose ``recv_stamped() -> (ts_capture_ns, message)`` beside ``send()``/``close()``, raise
``websockets``' ``ConnectionClosed`` (``.rcvd``: the peer's close frame, or None after an abrupt
close: 1006), ``InvalidHandshake`` and ``InvalidURI`` -- so the collector has one code path.

Which one: the ``Collector(ws_client=...)`` argument, else ``MM_WS_CLIENT`` (``picows`` or
``websockets``), else picows if importable. ``CLIENTS`` keeps each library's own ``connect`` (the
floor that ``bench/bench_collector.py`` compares against).
"""

from __future__ import annotations

import asyncio
import collections
import os
from time import time_ns
from typing import Any, Callable

import websockets.exceptions as _wsx
from websockets.asyncio.client import ClientConnection as _WsClientConnection
from websockets.asyncio.client import connect as _websockets_connect
from websockets.frames import DATA_OPCODES, Close, Frame

try:
    import picows  # type: ignore[import-not-found]
    import picows.websockets.exceptions as _pwx  # type: ignore[import-not-found]
    from picows.websockets import connect as _picows_connect  # type: ignore[import-not-found]
except ImportError:  # optional at run time, though a declared dependency
    picows = None
    _pwx = None
    _picows_connect = None

CLIENTS: dict[str, Callable[..., Any]] = {"websockets": _websockets_connect}
if _picows_connect is not None:
    CLIENTS["picows"] = _picows_connect

_libs = (_wsx,) if _pwx is None else (_wsx, _pwx)
ConnectionClosed: tuple[type[BaseException], ...] = tuple(m.ConnectionClosed for m in _libs)
InvalidHandshake: tuple[type[BaseException], ...] = tuple(m.InvalidHandshake for m in _libs)
InvalidURI: tuple[type[BaseException], ...] = tuple(m.InvalidURI for m in _libs)

ClientConnection = Any  # a stamped connection of either library

_DATA_OPCODES = DATA_OPCODES


def resolve(name: str | None = None) -> str:
    """The client to use: ``name``, else ``$MM_WS_CLIENT``, else picows if installed."""
    want = (name or os.environ.get("MM_WS_CLIENT") or "").strip().lower()
    if not want or want == "auto":
        return "picows" if "picows" in CLIENTS else "websockets"
    if want not in ("picows", "websockets"):
        raise ValueError(f"unknown WebSocket client {want!r} (picows or websockets)")
    if want not in CLIENTS:
        raise ValueError(f"WebSocket client {want!r} is not installed (pip install {want})")
    return want


def connect_function(name: str | None = None) -> Callable[..., Any]:
    """``await connect(url, open_timeout=, ping_interval=, ping_timeout=, close_timeout=, max_size=,
    max_queue=)`` -> a connection with ``recv_stamped()``, for the resolved client."""
    return _connect_picows if resolve(name) == "picows" else _connect_websockets


# ---------------------------------------------------------------------- websockets


class StampedWebsocketsConnection(_WsClientConnection):
    """websockets' client connection, plus the arrival time of every data message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rx_ns = 0
        self._stamps: collections.deque[int] = collections.deque()

    def data_received(self, data: bytes) -> None:
        self._rx_ns = time_ns()  # the read that carries the frames parsed below
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        if event.__class__ is Frame and event.fin and event.opcode in _DATA_OPCODES:
            self._stamps.append(self._rx_ns)  # one per complete message, in recv() order
        super().process_event(event)

    async def recv_stamped(self) -> tuple[int, str | bytes]:
        message = await self.recv()  # cancel-safe: the message (and its stamp) stay queued
        return self._stamps.popleft(), message


async def _connect_websockets(url: str, **kwargs: Any) -> StampedWebsocketsConnection:
    return await _websockets_connect(url, create_connection=StampedWebsocketsConnection, **kwargs)


# ---------------------------------------------------------------------- picows


if picows is not None:
    _TEXT, _BINARY, _CONT, _CLOSE = (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY,
                                     picows.WSMsgType.CONTINUATION, picows.WSMsgType.CLOSE)

    class StampedPicowsListener(picows.WSListener):  # type: ignore[misc,name-defined]
        """A picows listener that stamps each message in picows' frame callback and queues it.

        Reading pauses when ``max_queue`` messages wait (TCP back-pressure instead of unbounded
        memory) and resumes once ``recv_stamped`` has taken half of them.
        """

        def __init__(self, max_queue: int = 4096, close_timeout: float = 2.0) -> None:
            super().__init__()
            self.transport: Any = None
            self._queue: collections.deque[tuple[int, str | bytes]] = collections.deque()
            self._waiter: asyncio.Future[None] | None = None
            self._parts: list[bytes] = []  # a fragmented message being assembled
            self._part_type: Any = None
            self._rcvd: Close | None = None
            self._sent: Close | None = None
            self._closed: BaseException | None = None
            self._max_queue = max(2, max_queue)
            self._paused = False
            self.close_timeout = close_timeout

        # picows callbacks (run inside the socket's read callback)

        def on_ws_connected(self, transport: Any) -> None:
            self.transport = transport

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            ts = time_ns()
            mt = frame.msg_type
            if mt is _TEXT or mt is _BINARY:
                if frame.fin:
                    self._push(ts, frame.get_payload_as_utf8_text() if mt is _TEXT
                               else frame.get_payload_as_bytes(), mt)
                else:
                    self._part_type = mt
                    self._parts = [frame.get_payload_as_bytes()]
            elif mt is _CONT:
                self._parts.append(frame.get_payload_as_bytes())
                if frame.fin:
                    data = b"".join(self._parts)
                    self._parts = []
                    self._push(ts, data.decode("utf-8") if self._part_type is _TEXT else data,
                               self._part_type)
            elif mt is _CLOSE:
                code = int(frame.get_close_code())
                message = frame.get_close_message()
                self._rcvd = Close(code, message.decode("utf-8", "replace") if message else "")
                if self._sent is None:
                    self._sent = Close(code, "")
                    transport.send_close(frame.get_close_code())
                transport.disconnect()

        def _push(self, ts: int, message: str | bytes, mt: Any) -> None:
            self._queue.append((ts, message))
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            if not self._paused and len(self._queue) >= self._max_queue:
                self.transport.underlying_transport.pause_reading()
                self._paused = True

        def on_ws_disconnected(self, transport: Any) -> None:
            rcvd, sent = self._rcvd, self._sent
            if rcvd is not None and rcvd.code in (1000, 1001):
                exc: BaseException = _wsx.ConnectionClosedOK(rcvd, sent, True if sent else None)
            else:
                exc = _wsx.ConnectionClosedError(rcvd, sent, True if rcvd and sent else None)
            self._closed = exc
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_exception(exc)

        # the collector's side

        async def recv_stamped(self) -> tuple[int, str | bytes]:
            queue = self._queue
            while not queue:
                if self._closed is not None:
                    raise self._closed
                waiter = self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await waiter
                finally:
                    if self._waiter is waiter:
                        self._waiter = None
            item = queue.popleft()
            if self._paused and len(queue) <= self._max_queue // 2:
                self.transport.underlying_transport.resume_reading()
                self._paused = False
            return item

        async def recv(self) -> str | bytes:
            return (await self.recv_stamped())[1]

        async def send(self, message: str | bytes) -> None:
            if self._closed is not None:
                raise self._closed
            if isinstance(message, str):
                self.transport.send(_TEXT, message.encode("utf-8"))
            else:
                self.transport.send(_BINARY, message)

        async def close(self, code: int = 1000, reason: str = "") -> None:
            t = self.transport
            if t is None or t.is_disconnected:
                return
            if self._sent is None:
                self._sent = Close(code, reason)
                t.send_close(picows.WSCloseCode(code), reason.encode("utf-8"))
            try:
                await asyncio.wait_for(asyncio.shield(t.wait_disconnected()), self.close_timeout)
            except (asyncio.TimeoutError, TimeoutError):
                t.disconnect(False)

    async def _connect_picows(url: str, *, open_timeout: float | None = 10, ping_interval: float | None = 20,
                              ping_timeout: float | None = 20, close_timeout: float | None = 2,
                              max_size: int | None = 2**24, max_queue: int | None = 4096,
                              **_: Any) -> StampedPicowsListener:
        def factory() -> StampedPicowsListener:
            return StampedPicowsListener(max_queue or 4096, close_timeout or 2.0)

        try:
            _, listener = await picows.ws_connect(
                factory, url,
                websocket_handshake_timeout=open_timeout,
                enable_auto_ping=ping_interval is not None,
                auto_ping_idle_timeout=ping_interval or 20,
                auto_ping_reply_timeout=ping_timeout or 20,
                enable_auto_pong=True,
                max_frame_size=max_size or 2**24,
            )
        except picows.WSInvalidURL as exc:
            raise _wsx.InvalidURI(url, str(exc)) from None
        except picows.WSError as exc:  # handshake refused, bad status, bad upgrade, ...
            raise _wsx.InvalidHandshake(f"{url}: {exc}") from None
        return listener
else:  # pragma: no cover - picows missing
    async def _connect_picows(url: str, **kwargs: Any) -> Any:
        raise ValueError("WebSocket client 'picows' is not installed (pip install picows)")
