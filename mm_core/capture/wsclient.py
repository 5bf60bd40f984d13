"""The WebSocket client library the collector uses: ``picows`` when installed, else ``websockets``.

Both are driven through the same asyncio API -- ``connect(url, open_timeout=, ping_interval=,
ping_timeout=, close_timeout=, max_size=, max_queue=)`` -> a connection with ``recv()`` (safe to
cancel), ``send()``, ``close()``; ``ConnectionClosed`` carrying ``.rcvd`` (the peer's close frame,
or None after an abrupt close: 1006); ``InvalidHandshake``; ``InvalidURI`` -- so the collector has
one code path. ``picows.websockets`` is picows' websockets-compatible layer over its C frame parser:
on the local simulator at ~1,150 msg/s it receives for less CPU than ``websockets`` and hands each
frame to the collector sooner, time that would otherwise end up inside every measured age
(``bench/bench_collector.py`` prints both floors).

Which one: the ``Collector(ws_client=...)`` argument, else ``MM_WS_CLIENT`` (``picows`` or
``websockets``), else picows if importable. The exception names below are tuples holding the
classes of every installed library, so ``except ConnectionClosed`` catches either.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import websockets.exceptions as _wsx
from websockets.asyncio.client import connect as _websockets_connect

try:
    import picows.websockets.exceptions as _pwx  # type: ignore[import-not-found]
    from picows.websockets import connect as _picows_connect  # type: ignore[import-not-found]
except ImportError:  # optional: not a declared dependency
    _pwx = None
    _picows_connect = None

CLIENTS: dict[str, Callable[..., Any]] = {"websockets": _websockets_connect}
if _picows_connect is not None:
    CLIENTS["picows"] = _picows_connect

_libs = (_wsx,) if _pwx is None else (_wsx, _pwx)
ConnectionClosed: tuple[type[BaseException], ...] = tuple(m.ConnectionClosed for m in _libs)
InvalidHandshake: tuple[type[BaseException], ...] = tuple(m.InvalidHandshake for m in _libs)
InvalidURI: tuple[type[BaseException], ...] = tuple(m.InvalidURI for m in _libs)

ClientConnection = Any  # the connection type of whichever library is in use


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
    return CLIENTS[resolve(name)]
