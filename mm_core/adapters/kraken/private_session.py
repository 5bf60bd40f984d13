"""The I/O shell of the private client: one authenticated WS v2 connection, kept alive.

Everything protocol-shaped lives in the sans-IO modules (:mod:`.trading` builds requests and reads
replies, :mod:`.executions` reads the channels); this class only moves frames and keeps promises
about time:

* **request/reply by ``req_id``**: :meth:`request` sends one request and waits for the reply with
  the same ``req_id``, at most ``request_timeout_s``. No reply in time -> a ``TIMEOUT`` outcome,
  which for an order means *maybe placed*; if the reply turns up later it is not lost -- it goes
  into :attr:`events` like any other record, so the order manager learns what happened.
* **token**: a fresh session token per connection (REST ``GetWebSocketsToken`` via the token
  source); a reply ``EAPI:Invalid token`` fetches a new one and re-sends the request once (the
  request never reached the engine, so re-sending cannot duplicate an order).
* **reconnect**: on any disconnect or a silent socket (no frame for ``watchdog_s``; Kraken sends
  heartbeats about every second once subscribed) it reconnects with jittered exponential backoff,
  resubscribes ``executions`` (with the open-order and recent-fill snapshot) and ``balances``,
  and emits ``Disconnected``/``Connected`` into :attr:`events`. Requests waiting when the
  connection dies get a ``TIMEOUT`` outcome at once (maybe placed).
* **events in order**: every record the parser produces (order updates, fills, snapshots,
  balances, sequence gaps, health events, late replies) is put on :attr:`events` in the order the
  frames arrived, so a consumer sees a snapshot exactly where it sits among the updates.

Secrets: frames carry the session token, so frames are never logged or put in events or errors;
``repr(session)`` shows the URL and counters only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any, Optional, Protocol

from mm_core.adapters.kraken.executions import KrakenPrivateParser
from mm_core.adapters.kraken.trading import KrakenTradingMessages, WsRequest, timeout_outcome
from mm_core.capture import wsclient
from mm_core.events import Connected, Disconnected, Reconnecting
from mm_core.trading.records import (BalancesSnapshot, ExecutionsSnapshot, Outcome, OutcomeKind)

log = logging.getLogger(__name__)
FRAME_LOG = logging.getLogger(__name__ + ".frames")
FRAME_LOG.setLevel(logging.INFO)
"""Handed to the WebSocket library as its logger: at DEBUG it would print every frame, and our frames
carry the session token. Kept at INFO even when the root logger is at DEBUG."""


class TokenProvider(Protocol):
    async def get(self, *, fresh: bool = False) -> str: ...

    def invalidate(self) -> None: ...


class SessionClosed(RuntimeError):
    pass


class KrakenPrivateSession:
    """One authenticated WS v2 connection with request/reply matching and reconnects."""

    def __init__(self, url: str, tokens: TokenProvider, *, exchange: str = "kraken", symbol: str = "",
                 parser: Optional[KrakenPrivateParser] = None,
                 messages: Optional[KrakenTradingMessages] = None, ws_client: Optional[str] = None,
                 request_timeout_s: float = 5.0, connect_timeout_s: float = 10.0,
                 watchdog_s: float = 10.0, reconnect_base_s: float = 0.5, reconnect_max_s: float = 30.0,
                 subscribe_balances: bool = True, ratecounter: bool = True,
                 seed: Optional[int] = None) -> None:
        self.url = url
        self.tokens = tokens
        self.exchange = exchange
        self.symbol = symbol
        self.parser = parser or KrakenPrivateParser(exchange, default_symbol=symbol)
        self.messages = messages or KrakenTradingMessages()
        self._connect = wsclient.connect_function(ws_client)
        self.request_timeout_s = request_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.watchdog_s = watchdog_s
        self.reconnect_base_s = reconnect_base_s
        self.reconnect_max_s = reconnect_max_s
        self.subscribe_balances = subscribe_balances
        self.ratecounter = ratecounter
        self._rng = random.Random(seed)
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self._ws: Any = None
        self._token: Optional[str] = None
        self._pending: dict[int, tuple[asyncio.Future[Outcome], WsRequest]] = {}
        self._req_id = 0
        self._ready = asyncio.Event()
        self._closing = False
        self._runner: Optional[asyncio.Task[None]] = None
        self._snapshot_waiters: list[tuple[asyncio.Future[Any], type]] = []
        self.connects = 0
        self.disconnects = 0
        self.timeouts = 0
        self.token_refreshes = 0
        self.late_replies = 0
        # called as sent_hook(request, req_id, time_ns) right after a frame left (tick-to-order
        # measurement); never given the frame itself, which carries the token
        self.sent_hook: Optional[Any] = None

    def __repr__(self) -> str:
        return (f"KrakenPrivateSession(url={self.url!r}, connects={self.connects}, "
                f"disconnects={self.disconnects}, timeouts={self.timeouts})")

    # ------------------------------------------------------------------ lifecycle

    async def start(self, wait_s: Optional[float] = None) -> None:
        """Connect in the background; return once subscribed. After ``wait_s`` without success it
        raises :class:`SessionClosed` while the background loop keeps trying: call :meth:`close`."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="kraken-private")
        try:
            await asyncio.wait_for(self._ready.wait(), wait_s or self.connect_timeout_s * 2)
        except TimeoutError:
            raise SessionClosed(f"could not connect and subscribe to {self.url} in time") from None

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def wait_connected(self, timeout_s: Optional[float] = None) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None
        self._fail_pending("session closed")

    async def drop_connection(self) -> None:
        """Close the socket abruptly (a network fault, for tests): the run loop reconnects."""
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                transport = getattr(ws, "transport", None)
                if transport is not None:
                    transport.abort()
                else:
                    await ws.close()

    # ------------------------------------------------------------------ requests

    async def request(self, req: WsRequest, timeout_s: Optional[float] = None, *,
                      _retried: bool = False) -> Outcome:
        """Send ``req`` and wait for its reply (see the module doc for timeouts and tokens)."""
        ws = self._ws
        if ws is None or not (self._ready.is_set() or req.method in ("subscribe", "unsubscribe")):
            return Outcome(kind=OutcomeKind.NOT_SENT, method=req.method, error="not connected",
                           cl_ord_id=req.cl_ord_ids[0] if len(req.cl_ord_ids) == 1 else None)
        self._req_id += 1
        req_id = self._req_id
        try:
            frame = req.frame(self._token, req_id)
        except ValueError as exc:
            return Outcome(kind=OutcomeKind.NOT_SENT, method=req.method, req_id=req_id, error=str(exc))
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (fut, req)
        try:
            await ws.send(frame)
        except Exception as exc:  # the connection died while sending: bytes may have left
            self._pending.pop(req_id, None)
            return timeout_outcome(req, req_id, f"connection lost while sending ({type(exc).__name__})")
        if self.sent_hook is not None:
            self.sent_hook(req, req_id, time.time_ns())
        # one timer handle instead of wait_for(shield(...)): the same promise for a fraction of the
        # cost on the order path (no extra task or future per request)
        timer = asyncio.get_running_loop().call_later(timeout_s or self.request_timeout_s, self._expire, req_id)
        try:
            outcome = await fut
        finally:
            timer.cancel()
        if outcome.kind is OutcomeKind.INVALID_TOKEN and not _retried:
            self.token_refreshes += 1
            self.tokens.invalidate()
            try:
                self._token = await self.tokens.get(fresh=True)
            except Exception as exc:
                log.warning("token refresh failed: %s", type(exc).__name__)
                return outcome
            return await self.request(req, timeout_s, _retried=True)
        if outcome.cl_ord_id is None and len(req.cl_ord_ids) == 1 and not outcome.ok:
            outcome = _with_cl_ord_id(outcome, req.cl_ord_ids[0])
        return outcome

    async def resubscribe(self, timeout_s: Optional[float] = None
                          ) -> tuple[ExecutionsSnapshot, Optional[BalancesSnapshot]]:
        """Unsubscribe and subscribe again: fresh snapshots (they also go into :attr:`events`)."""
        loop = asyncio.get_running_loop()
        want = [ExecutionsSnapshot] + ([BalancesSnapshot] if self.subscribe_balances else [])
        futs = []
        for cls in want:
            fut = loop.create_future()
            self._snapshot_waiters.append((fut, cls))
            futs.append(fut)
        m = self.messages
        await self.request(m.unsubscribe_executions(), timeout_s)
        await self.request(m.subscribe_executions(ratecounter=self.ratecounter), timeout_s)
        if self.subscribe_balances:
            await self.request(m.unsubscribe_balances(), timeout_s)
            await self.request(m.subscribe_balances(), timeout_s)
        try:
            got = await asyncio.wait_for(asyncio.gather(*futs), timeout_s or self.request_timeout_s * 2)
        except TimeoutError:
            for f in futs:
                f.cancel()
            raise SessionClosed("no snapshot after resubscribing") from None
        return got[0], (got[1] if len(got) > 1 else None)

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            lived = 0.0
            try:
                lived = await self._one_connection(attempt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connect/token/subscribe failure: reconnect
                log.warning("private connection failed: %s", type(exc).__name__)
            if self._closing:
                break
            attempt = 0 if lived > 30.0 else attempt + 1
            delay = self._backoff(attempt)
            self._emit(Reconnecting(exchange=self.exchange, symbol=self.symbol, ts_exchange=None,
                                    ts_capture=time.time_ns(), attempt=attempt, delay_s=round(delay, 3)))
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        cap = min(self.reconnect_max_s, self.reconnect_base_s * (2 ** min(attempt, 20)))
        return cap * (0.5 + 0.5 * self._rng.random())

    async def _one_connection(self, attempt: int) -> float:
        self._token = await self.tokens.get(fresh=True)
        ws = await self._connect(self.url, open_timeout=self.connect_timeout_s, ping_interval=20,
                                 ping_timeout=20, close_timeout=2, max_size=2**22, max_queue=4096,
                                 compression=None, logger=FRAME_LOG)  # frames are tiny: no deflate
        started = time.monotonic()
        self._ws = ws
        self.parser.reset()
        self.connects += 1
        reader = asyncio.get_running_loop().create_task(self._reader(ws))
        reason, code = "closed", None
        try:
            m = self.messages
            subs = [m.subscribe_executions(ratecounter=self.ratecounter)]
            if self.subscribe_balances:
                subs.append(m.subscribe_balances())
            for sub in subs:
                out = await self.request(sub)
                if not out.ok:
                    raise SessionClosed(f"subscribe {sub.params.get('channel')} failed: {out.error}")
            self._emit(Connected(exchange=self.exchange, symbol=self.symbol, ts_exchange=None,
                                 ts_capture=time.time_ns(), url=self.url, attempt=attempt))
            self._ready.set()
            reason, code = await reader
        finally:
            self._ready.clear()
            self._ws = None
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
            self._fail_pending("connection lost")
            self.disconnects += 1
            self._emit(Disconnected(exchange=self.exchange, symbol=self.symbol, ts_exchange=None,
                                    ts_capture=time.time_ns(), reason=str(reason)[:200], code=code))
            with contextlib.suppress(Exception):
                await ws.close()
        return time.monotonic() - started

    async def _reader(self, ws: Any) -> tuple[str, Optional[int]]:
        parse = self.parser.on_message
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(ws.recv(), self.watchdog_s)
                except TimeoutError:
                    return f"silence {self.watchdog_s:g}s (watchdog)", None
                ts = time.time_ns()
                for item in parse(frame, ts):
                    self._dispatch(item)
        except wsclient.ConnectionClosed as exc:
            rcvd = getattr(exc, "rcvd", None)
            code = rcvd.code if rcvd is not None else 1006
            return (getattr(rcvd, "reason", "") or f"connection closed ({code})"), code
        except OSError as exc:
            return f"socket error ({type(exc).__name__})", None

    def _dispatch(self, item: Any) -> None:
        if isinstance(item, Outcome):
            entry = self._pending.pop(item.req_id, None) if item.req_id is not None else None
            if entry is not None and not entry[0].done():
                entry[0].set_result(item)  # the caller of request() handles it
                return
            if item.method in ("subscribe", "unsubscribe", "pong", "ping"):
                return
            self.late_replies += 1  # after its request timed out: the order manager must see it
        elif isinstance(item, (ExecutionsSnapshot, BalancesSnapshot)):
            for fut, cls in list(self._snapshot_waiters):
                if isinstance(item, cls):
                    self._snapshot_waiters.remove((fut, cls))
                    if not fut.done():
                        fut.set_result(item)
                    break
        self._emit(item)

    def _expire(self, req_id: int) -> None:
        entry = self._pending.pop(req_id, None)
        if entry is not None and not entry[0].done():
            self.timeouts += 1
            entry[0].set_result(timeout_outcome(entry[1], req_id))

    def _emit(self, item: Any) -> None:
        self.events.put_nowait(item)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for req_id, (fut, req) in pending.items():
            if not fut.done():
                fut.set_result(timeout_outcome(req, req_id, why))


def _with_cl_ord_id(outcome: Outcome, cl_ord_id: str) -> Outcome:
    import msgspec

    return msgspec.structs.replace(outcome, cl_ord_id=cl_ord_id)

