"""``mm simexchange``: a local WebSocket server that speaks Kraken WS v2 (public channels).

One :class:`~mm_core.simexchange.market.MarketModel` drives every connection (the exchange has one
book); each connection has its own subscriptions, depth view, latency path and fault dice.

Time: the model runs on the wall clock; a message's exchange timestamp is the moment it is created
here; it leaves after a sampled delay (:mod:`.latency`), in order. ``clock_offset_ms``
(``--clock-offset-ms``) makes the exchange's clock run that far ahead of the wall clock (negative:
behind): every timestamp on the wire -- book/ticker/trade ``timestamp``, ``time_in``/``time_out`` of
pongs, acks and errors -- is shifted by it, while delivery and the ``--log`` records stay on the true
clock (so ``wire timestamp = ts_exchange + clock_offset_ns``). Clients then see ages understated by
the offset, and their ping/pong estimate of it, exactly as with a skewed real exchange. Requests are held for an inbound
delay from the same path before they are answered, so ``time_in``/``time_out`` sit in the middle
of the round trip as they would on a real link (a client's clock-offset estimate stays unbiased).

Use it three ways:

- CLI: ``mm simexchange --port 0 --seed 1 --faults disconnect:every=20s --log sim.jsonl``
  prints ``listening on ws://127.0.0.1:PORT`` (flushed) and serves until SIGINT/SIGTERM or
  ``--max-seconds``;
- asyncio: ``async with SimExchange(port=0, seed=1) as sim: ... sim.url ...``;
- threads (sync tests, the demo): ``with run_in_background(seed=1) as sim: ... sim.url ...``;
  or a child process: ``proc = spawn_process(["--seed", "1"])``.

The ``--log`` JSONL records (one object per line, every one with ``kind`` and ``t_ns``) are listed
in :class:`SimLog`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np
import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from mm_core.arg_types import tcp_port
from mm_core.simexchange import protocol
from mm_core.simexchange.faults import PRIVATE_KINDS, FaultDice, FaultPlan, FaultRule, FaultSpecError
from mm_core.simexchange.latency import DelayStats, InOrderDelivery, LatencyConfig, make_latency
from mm_core.simexchange.profiles import ProfileError, load_profile
from mm_core.simexchange.replay_market import RecordingMarket, ReplayError
from mm_core.simexchange.market import (
    BookChange,
    DepthView,
    LevelBook,
    MarketModel,
    QTY_PRECISION,
    MarketParams,
    TickerStats,
    TradePrint,
)

if TYPE_CHECKING:
    from mm_core.simexchange.private import PrivateConfig, PrivateSide

DEFAULT_SYMBOL = "BTC/EUR"
LISTENING_PREFIX = "listening on "

# queue item fields (a tuple: cheapest thing to build per message)
_DELIVER, _CREATED, _DELAY, _REGIME, _PAYLOAD, _CHANNEL, _TYPE, _STAMPED, _FAULT = range(9)


class SimLog:
    """The ``--log`` JSONL file. Records (exact keys):

    - ``start``: t_ns, url, seed, symbol, predictive, latency (config dict or null), faults (SPEC),
      updates_per_second, trades_per_second, heartbeat_interval_s, close_unsubscribed_s, clock_offset_ns,
      replay (the recording served, or null), profile (the market profile's name, null when replaying)
    - ``connect``: t_ns, conn (index from 1), connection_id, peer
    - ``msg`` (one per frame sent; off with ``log_messages=False``): t_ns (= sent_ns), conn, seq
      (1.. per connection), channel (book|ticker|trade|heartbeat|status|subscribe|unsubscribe|
      pong|error), type (snapshot|update|malformed|ack|null), ts_exchange (creation time, ns, true
      clock; the wire ``timestamp``/``time_out`` is ts_exchange + clock_offset_ns when ``stamped``),
      stamped (the wire carries ts_exchange),
      delay_ns (sampled), intended_ns (in-order delivery time = max(prev, ts_exchange + delay)),
      sent_ns (actual send time), regime (normal|degraded|unsafe)
    - ``request``: t_ns (= time_in), conn, method, req_id, recv_ns, delay_ns (inbound)
    - ``fault``: t_ns, fault (disconnect|stall|malformed|bad_checksum|maintenance), conn (null =
      whole exchange) and per kind: disconnect -> mode; stall -> phase (start|end), duration_s,
      then, dropped (end); malformed -> seq, channel, ts_exchange, variant; bad_checksum -> seq,
      channel, ts_exchange, checksum_sent, checksum_true; maintenance -> phase, duration_s,
      connections. Frame faults are logged when the frame is actually sent.
    - ``idle_close``: t_ns, conn, unsubscribed_s (the socket held no subscription that long)
    - ``disconnect``: t_ns, conn, code, reason, messages
    - ``latency_summary``: t_ns, conn (null = all connections), count, delay_ms and lag_ms
      (p50, p90, p95, p99, max, mean; lag = sent - ts_exchange), regime_share
    - ``replay_end``: t_ns, model (counts) -- a replayed recording has been served to its end
    - ``stop``: t_ns, uptime_s, connections, messages, faults (counts by kind), model (counts)
    """

    def __init__(self, path: Optional[Union[str, os.PathLike[str]]], messages: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self._want_messages = messages
        self._fh: Optional[Any] = None
        self.messages = False

    def open(self) -> None:
        """Create (truncate) the file; until then, and without a path, writes are no-ops."""
        if self.path is not None and self._fh is None:
            self._fh = open(self.path, "wb")
            self.messages = self._want_messages

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is not None:
            self._fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self.messages = False


class _Conn:
    """Per-connection state: subscriptions, outgoing queue, latency path, fault state."""

    def __init__(self, index: int, ws: ServerConnection, connection_id: int, sim: "SimExchange") -> None:
        self.index = index
        self.ws = ws
        self.connection_id = connection_id
        self.latency = make_latency(sim.latency, (sim.seed, index, 0x1A7))
        self.delivery = InOrderDelivery(self.latency)
        self.inbound = InOrderDelivery(self.latency)
        self.dice = FaultDice(sim.faults, sim.seed, index)
        self.queue: deque[tuple[Any, ...]] = deque()
        self.wake = asyncio.Event()
        self.inbox: asyncio.Queue[tuple[int, Union[str, bytes]]] = asyncio.Queue()
        self.book_depth: Optional[int] = None
        self.ticker: Optional[str] = None  # event_trigger when subscribed
        self.trade = False
        self.stall_until_ns = 0
        self.stall_then = "flush"
        self.dropped = 0
        self.pending_malformed: Optional[str] = None
        self.pending_bad_checksum = False
        self.last_enqueued_ns = time.time_ns()
        self.unsubscribed_since_ns = self.last_enqueued_ns  # 0 while it holds a subscription
        self.seq = 0
        self.stats = DelayStats()
        self.closed = False

    @property
    def subscribed(self) -> bool:
        return self.book_depth is not None or self.ticker is not None or self.trade


class SimExchange:
    """The simulator as an object: ``await start()`` / ``await stop()`` or ``async with``.

    ``latency=None`` means no delay at all; ``faults`` is a :class:`FaultPlan` or a SPEC string.
    ``updates_per_second``/``trades_per_second`` override ``market``'s rates.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        symbol: Optional[str] = None,
        predictive: bool = True,
        latency: Optional[LatencyConfig] = LatencyConfig(),
        faults: Union[FaultPlan, str, None] = None,
        log_path: Optional[Union[str, os.PathLike[str]]] = None,
        log_messages: bool = True,
        updates_per_second: Optional[float] = None,
        trades_per_second: Optional[float] = None,
        heartbeat_interval_s: float = 1.0,
        market: Optional[MarketParams] = None,
        close_unsubscribed_s: Optional[float] = 60.0,
        clock_offset_ms: float = 0.0,
        private: Optional["PrivateConfig"] = None,
        replay: Union[None, str, os.PathLike[str], RecordingMarket] = None,
        replay_speed: float = 1.0,
        profile_name: Optional[str] = None,
        price_precision: int = protocol.PRICE_PRECISION,
    ) -> None:
        self.host = host
        self.private_config = private
        self.private: Optional["PrivateSide"] = None  # the private side (mm_core/simexchange/private.py)
        # the exchange clock minus the true clock: added to every timestamp put on the wire
        self.clock_offset_ns = int(round(clock_offset_ms * 1e6))
        self.port = port
        self.seed = seed
        self.replay: Optional[RecordingMarket] = None
        if replay is not None:  # a recording is the market: read (and checked) now, paced from start()
            self.replay = replay if isinstance(replay, RecordingMarket) else RecordingMarket(
                replay, symbol=symbol, speed=replay_speed)
            symbol = self.replay.symbol
        self.symbol = symbol or DEFAULT_SYMBOL
        if not 0 <= price_precision <= 8:
            raise ValueError(f"price precision {price_precision}: must be 0..8")
        # where the decimal point goes in the model's integer ticks: any configured pair is served
        self.pp = protocol.PRICE_PRECISION if self.replay is not None else price_precision
        self.predictive = predictive
        self.latency = latency
        self.faults = faults if isinstance(faults, FaultPlan) else FaultPlan.parse(faults)
        self.market_params = market or MarketParams()
        self.profile_name = profile_name or ("custom" if market is not None else "default")
        self._rates = (updates_per_second, trades_per_second)
        self.heartbeat_ns = int(heartbeat_interval_s * 1e9)
        # Kraken closes sockets that hold no subscription (a 2018 launch note said ~60 s)
        self.close_unsubscribed_ns = int(close_unsubscribed_s * 1e9) if close_unsubscribed_s else 0
        self.log = SimLog(log_path, log_messages)
        self.url = ""
        self.started_ns = 0
        self.model: Union[None, MarketModel, RecordingMarket] = None
        self._book_limit = 0  # replay: the served book is truncated like the recording's client
        self._first_subscription = asyncio.Event()  # replay: the recording plays from the first one
        self.book = LevelBook()
        self.ticker_stats = TickerStats(0)
        self.stats_all = DelayStats()
        self.messages_sent = 0
        self.fault_counts: dict[str, int] = {}
        self._conns: dict[int, _Conn] = {}
        self._conn_counter = itertools.count(1)
        self._conn_total = 0
        self._views: dict[int, DepthView] = {}
        self._book_subs: dict[int, dict[int, _Conn]] = {}
        self._ticker_subs: dict[str, dict[int, _Conn]] = {t: {} for t in protocol.EVENT_TRIGGERS}
        self._trade_subs: dict[int, _Conn] = {}
        self._recent_trades: deque[TradePrint] = deque(maxlen=protocol.TRADE_SNAPSHOT_SIZE)
        self._last_bbo: Optional[tuple[int, int, int, int]] = None
        self._system = "online"
        self._shift_ns = 0  # model time -> wall time (grows by each maintenance pause)
        self._last_ts_ns = 0
        self._maintenance_start_ns = 0
        self._resumed = asyncio.Event()
        self._server: Optional[Server] = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> "SimExchange":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> str:
        """Bind, start the market, return the URL (``ws://host:port``)."""
        self.started_ns = time.time_ns() // 1000 * 1000
        ups, tps = self._rates
        if self.replay is not None:
            self.replay.start_ns = self.started_ns
            self.model = self.replay
            self._book_limit = self.replay.depth
        else:
            self.model = MarketModel(
                self.seed,
                self.predictive,
                start_ns=self.started_ns,
                params=self.market_params,
                updates_per_second=ups,
                trades_per_second=tps,
            )
        self.book = self.model.book.copy()
        self._last_bbo = self.book.bbo()
        self.ticker_stats = TickerStats(self.model.open_ticks)
        self._resumed.set()
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            compression=None,
            ping_interval=None,  # no protocol pings from us: a stall must be total silence
            close_timeout=2,
            max_size=1 << 20,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://{self.host}:{self.port}"
        self.log.open()
        self.log.write(self._start_record())
        if self.private_config is not None:
            from mm_core.simexchange.private import PrivateSide

            self.private = PrivateSide(self, self.private_config)
            await self.private.start(self.host)
            self.private.on_snapshot(self.book, self.started_ns)
        self.log.flush()
        self._tasks = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._heartbeats()),
            asyncio.create_task(self._flusher()),
        ]
        if any(rule.timed for rule in self.faults.rules):
            self._tasks.append(asyncio.create_task(self._fault_schedule()))
        return self.url

    async def stop(self) -> None:
        """Stop the market, close every connection (1001), write summaries, close the log."""
        if self._stopped or self._server is None:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5.0)
        if self.private is not None:
            await self.private.stop()
        now = time.time_ns()
        self.log.write({"kind": "latency_summary", "t_ns": now, "conn": None, **self.stats_all.summary()})
        self.log.write(self._stop_record(now))
        self.log.close()

    def stats(self) -> dict[str, Any]:
        """Counters for humans and tests."""
        return {
            "url": self.url,
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3) if self.started_ns else 0.0,
            "connections": self._conn_total,
            "open_connections": len(self._conns),
            "messages": self.messages_sent,
            "faults": dict(self.fault_counts),
            "model": dict(self.model.counts) if self.model else {},
            **({"private_rest_url": self.private.rest_url, "private_ws_url": self.private.ws_url}
               if self.private is not None else {}),
        }

    def _start_record(self) -> dict[str, Any]:
        ups, tps = self._rates
        return {
            "kind": "start",
            "t_ns": self.started_ns,
            "url": self.url,
            "seed": self.seed,
            "replay": str(self.replay.path) if self.replay is not None else None,
            "profile": None if self.replay is not None else self.profile_name,
            "symbol": self.symbol,
            "price_precision": self.pp,
            "predictive": self.predictive,
            "latency": self.latency.to_dict() if self.latency else None,
            "faults": self.faults.spec,
            "updates_per_second": ups if ups is not None else self.market_params.updates_per_second,
            "trades_per_second": tps if tps is not None else self.market_params.trades_per_second,
            "heartbeat_interval_s": self.heartbeat_ns / 1e9,
            "close_unsubscribed_s": self.close_unsubscribed_ns / 1e9 or None,
            "clock_offset_ns": self.clock_offset_ns,
            "private": self.private_config is not None,
        }

    def _stop_record(self, now: int) -> dict[str, Any]:
        stats = self.stats()
        return {
            "kind": "stop",
            "t_ns": now,
            "uptime_s": stats["uptime_s"],
            "connections": stats["connections"],
            "messages": self.messages_sent,
            "faults": dict(self.fault_counts),
            "model": stats["model"],
        }

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.log.flush()

    # ------------------------------------------------------------------ connections

    async def _handle(self, ws: ServerConnection) -> None:
        index = next(self._conn_counter)
        self._conn_total = index
        conn_id = int(np.random.default_rng((self.seed, index, 0xC0)).integers(1, 2**63 - 1))
        conn = _Conn(index, ws, conn_id, self)
        self._conns[index] = conn
        peer = ws.remote_address
        self.log.write({"kind": "connect", "t_ns": time.time_ns(), "conn": index, "connection_id": conn_id, "peer": str(peer)})
        self._enqueue(conn, protocol.status(self._system, conn_id), time.time_ns(), "status", "update", False)
        writer = asyncio.create_task(self._writer(conn))
        processor = asyncio.create_task(self._processor(conn))
        try:
            async for raw in ws:
                conn.inbox.put_nowait((time.time_ns(), raw))
        except ConnectionClosed:
            pass
        finally:
            self._close_conn(conn)
            for task in (writer, processor):
                task.cancel()
            for task in (writer, processor):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _close_conn(self, conn: _Conn) -> None:
        conn.closed = True
        self._conns.pop(conn.index, None)
        self._drop_book(conn)
        for subs in self._ticker_subs.values():
            subs.pop(conn.index, None)
        self._trade_subs.pop(conn.index, None)
        self.stats_all.merge(conn.stats)
        now = time.time_ns()
        ws = conn.ws
        self.log.write(
            {"kind": "disconnect", "t_ns": now, "conn": conn.index, "code": ws.close_code, "reason": ws.close_reason, "messages": conn.seq}
        )
        self.log.write({"kind": "latency_summary", "t_ns": now, "conn": conn.index, **conn.stats.summary()})

    def _enqueue(
        self,
        conn: _Conn,
        payload: bytes,
        created_ns: int,
        channel: str,
        mtype: Optional[str],
        stamped: bool,
        fault: Optional[dict[str, Any]] = None,
    ) -> None:
        """Schedule one frame on a connection: in-order delivery after a sampled delay."""
        if conn.closed:
            return
        if conn.stall_until_ns and conn.stall_then == "drop" and created_ns < conn.stall_until_ns:
            conn.dropped += 1
            return
        deliver, delay = conn.delivery.schedule(created_ns)
        conn.queue.append((deliver, created_ns, delay, conn.latency.regime, payload, channel, mtype, stamped, fault))
        conn.last_enqueued_ns = created_ns
        conn.wake.set()

    async def _writer(self, conn: _Conn) -> None:
        """Send each frame at its delivery time; nothing at all while stalled."""
        queue, ws = conn.queue, conn.ws
        try:
            while True:
                if not queue:
                    conn.wake.clear()
                    await conn.wake.wait()
                    continue
                now = time.time_ns()
                wait_ns = max(conn.stall_until_ns, queue[0][_DELIVER]) - now
                if wait_ns > 0:
                    await asyncio.sleep(wait_ns / 1e9)
                    continue
                while queue and queue[0][_DELIVER] <= now and now >= conn.stall_until_ns:
                    item = queue.popleft()
                    sent_ns = time.time_ns()  # stamped as the frame is handed to the socket
                    await ws.send(item[_PAYLOAD], text=True)
                    self._on_sent(conn, item, sent_ns)
        except ConnectionClosed:
            pass

    def _on_sent(self, conn: _Conn, item: tuple[Any, ...], sent_ns: int) -> None:
        conn.seq += 1
        self.messages_sent += 1
        created, delay = item[_CREATED], item[_DELAY]
        conn.stats.add(delay, sent_ns - created, item[_REGIME])
        log = self.log
        if log.messages:
            log.write(
                {
                    "kind": "msg",
                    "t_ns": sent_ns,
                    "conn": conn.index,
                    "seq": conn.seq,
                    "channel": item[_CHANNEL],
                    "type": item[_TYPE],
                    "ts_exchange": created,
                    "stamped": item[_STAMPED],
                    "delay_ns": delay,
                    "intended_ns": item[_DELIVER],
                    "sent_ns": sent_ns,
                    "regime": item[_REGIME],
                }
            )
        fault = item[_FAULT]
        if fault is not None:
            self._fault_record(
                {"conn": conn.index, "seq": conn.seq, "channel": item[_CHANNEL], "ts_exchange": created, **fault},
                sent_ns,
            )

    async def _heartbeats(self) -> None:
        """``{"channel":"heartbeat"}`` after ~1 s without any other frame, once subscribed (also
        during maintenance: the market pauses, the connection does not). A socket without any
        subscription for ``close_unsubscribed_s`` is closed (1000), as Kraken does."""
        hb = self.heartbeat_ns
        idle_limit = self.close_unsubscribed_ns
        while True:
            await asyncio.sleep(min(0.1, hb / 10e9))
            now = time.time_ns()
            for conn in list(self._conns.values()):
                if conn.subscribed:
                    if now >= conn.stall_until_ns and now - conn.last_enqueued_ns >= hb:
                        self._enqueue(conn, protocol.HEARTBEAT, now, "heartbeat", None, False)
                elif idle_limit and conn.unsubscribed_since_ns and now - conn.unsubscribed_since_ns >= idle_limit:
                    conn.unsubscribed_since_ns = 0  # once
                    self.log.write({"kind": "idle_close", "t_ns": now, "conn": conn.index,
                                    "unsubscribed_s": idle_limit / 1e9})
                    asyncio.ensure_future(conn.ws.close(1000, "no subscriptions"))

    # ------------------------------------------------------------------ requests

    async def _processor(self, conn: _Conn) -> None:
        """Answer requests in order, each after its inbound delay."""
        while True:
            recv_ns, raw = await conn.inbox.get()
            at, delay = conn.inbound.schedule(recv_ns)
            now = time.time_ns()
            if at > now:
                await asyncio.sleep((at - now) / 1e9)
            time_in = time.time_ns()
            req = protocol.parse_request(raw)
            if self.log.messages:
                self.log.write(
                    {"kind": "request", "t_ns": time_in, "conn": conn.index, "method": req.method, "req_id": req.req_id, "recv_ns": recv_ns, "delay_ns": delay}
                )
            self._dispatch(conn, req, time_in)

    def _dispatch(self, conn: _Conn, req: protocol.Request, time_in: int) -> None:
        if req.error is not None:
            self._error(conn, req.method, req.error, time_in, req.req_id)
        elif req.method == "ping":
            t_out = time.time_ns()
            off = self.clock_offset_ns
            self._enqueue(conn, protocol.pong(req.req_id, time_in + off, t_out + off), t_out, "pong", None, True)
        elif req.method in ("subscribe", "unsubscribe"):
            sub = protocol.parse_subscription(req.method, req.params)
            if isinstance(sub, str):
                self._error(conn, req.method, sub, time_in, req.req_id)
                return
            for symbol in sub.symbols:
                if symbol != self.symbol:
                    self._error(conn, req.method, f"Currency pair not supported {symbol}", time_in, req.req_id, symbol)
                elif req.method == "subscribe":
                    self._subscribe(conn, sub, symbol, time_in, req.req_id)
                else:
                    self._unsubscribe(conn, sub, symbol, time_in, req.req_id)
        else:
            self._error(conn, req.method, "Method not supported", time_in, req.req_id)

    def _error(self, conn: _Conn, method: Optional[str], text: str, time_in: int, req_id: Any, symbol: Optional[str] = None) -> None:
        t_out = time.time_ns()
        off = self.clock_offset_ns
        self._enqueue(conn, protocol.error(method, text, time_in + off, t_out + off, req_id, symbol), t_out, "error", None, True)

    def _ack(self, conn: _Conn, method: str, result: dict[str, Any], time_in: int, req_id: Any) -> int:
        t_out = time.time_ns()
        off = self.clock_offset_ns
        self._enqueue(conn, protocol.ack(method, result, time_in + off, t_out + off, req_id), t_out, method, "ack", True)
        return t_out

    def _subscribe(self, conn: _Conn, sub: protocol.Subscription, symbol: str, time_in: int, req_id: Any) -> None:
        channel = sub.channel
        already = {"book": conn.book_depth is not None, "ticker": conn.ticker is not None, "trade": conn.trade}
        if already[channel]:
            self._error(conn, "subscribe", "Already subscribed", time_in, req_id, symbol)
            return
        if channel == "book":
            self._add_book(conn, sub.depth)
        elif channel == "ticker":
            conn.ticker = sub.event_trigger
            self._ticker_subs[sub.event_trigger][conn.index] = conn
        else:
            conn.trade = True
            self._trade_subs[conn.index] = conn
        conn.unsubscribed_since_ns = 0
        self._first_subscription.set()
        t_out = self._ack(conn, "subscribe", sub.result(symbol, "subscribe"), time_in, req_id)
        if sub.snapshot:
            self._send_snapshot(conn, channel, sub.depth, t_out)

    def _send_snapshot(self, conn: _Conn, channel: str, depth: int, now: int) -> None:
        if channel == "book":
            bids, asks = self.book.top(depth)
            payload = protocol.book_snapshot(self.symbol, bids, asks, protocol.book_checksum(self.book, self.pp), self.pp)
        elif channel == "ticker":
            payload = protocol.ticker(self.symbol, self.book, self.ticker_stats, now + self.clock_offset_ns, "snapshot", self.pp)
        else:
            payload = protocol.trades(self.symbol, self._wire_prints(list(self._recent_trades)), "snapshot", self.pp)
        self._send_data(conn, payload, now, channel, "snapshot", stamped=False)

    def _unsubscribe(self, conn: _Conn, sub: protocol.Subscription, symbol: str, time_in: int, req_id: Any) -> None:
        channel = sub.channel
        if channel == "book" and conn.book_depth == sub.depth:
            self._drop_book(conn)
        elif channel == "ticker" and conn.ticker is not None:
            self._ticker_subs[conn.ticker].pop(conn.index, None)
            sub = dataclasses.replace(sub, event_trigger=conn.ticker)  # echo what was subscribed
            conn.ticker = None
        elif channel == "trade" and conn.trade:
            self._trade_subs.pop(conn.index, None)
            conn.trade = False
        else:
            self._error(conn, "unsubscribe", "Subscription Not Found", time_in, req_id, symbol)
            return
        if not conn.subscribed:
            conn.unsubscribed_since_ns = time.time_ns()
        self._ack(conn, "unsubscribe", sub.result(symbol, "unsubscribe"), time_in, req_id)

    def _add_book(self, conn: _Conn, depth: int) -> None:
        if depth not in self._views:
            view = DepthView(depth)
            view.snapshot(self.book)
            self._views[depth] = view
            self._book_subs[depth] = {}
        self._book_subs[depth][conn.index] = conn
        conn.book_depth = depth

    def _drop_book(self, conn: _Conn) -> None:
        depth = conn.book_depth
        if depth is None:
            return
        conn.book_depth = None
        subs = self._book_subs.get(depth, {})
        subs.pop(conn.index, None)
        if not subs:  # nobody holds this depth any more: its view would go stale
            self._views.pop(depth, None)
            self._book_subs.pop(depth, None)

    # ------------------------------------------------------------------ market

    async def _pump(self) -> None:
        """Publish model events when due (batched when several are due).

        The wire timestamp is the publish time (µs), not the model's due time: the event loop
        wakes up to ~1 ms late, and that lateness must not show up as injected delay.
        """
        assert self.model is not None
        if self.replay is not None:  # nobody would see the first events: play from the first subscription
            await self._first_subscription.wait()
            self.replay.start_ns = time.time_ns() // 1000 * 1000 - self._shift_ns
        events = self.model.events()
        ev = next(events, None)
        trades: list[TradePrint] = []
        while ev is not None:
            if self._maintenance_start_ns:
                await self._resumed.wait()
                continue
            now = time.time_ns()
            due = ev.ts_ns + self._shift_ns
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                continue
            # stamped when actually published (a late wake-up must not count as network delay)
            ts = max(now // 1000 * 1000, self._last_ts_ns)
            self._last_ts_ns = ts
            while due <= now and not self._maintenance_start_ns:
                if type(ev) is TradePrint:
                    trades.append(ev._replace(ts_ns=ts))
                else:
                    if trades:
                        self._publish_trades(trades)
                        trades = []
                    self._publish_book(ev, ts)
                ev = next(events, None)
                if ev is None:
                    break
                due = ev.ts_ns + self._shift_ns
            if trades:
                self._publish_trades(trades)
                trades = []
        # only a replayed recording ends: the market falls silent, connections stay (heartbeats)
        self.log.write({"kind": "replay_end", "t_ns": time.time_ns(), "model": dict(self.model.counts)})
        self.log.flush()

    def _publish_book(self, change: BookChange, ts: int) -> None:
        book = self.book
        book.apply(change)
        if self._book_limit:
            book.truncate(self._book_limit)
        checksum: Optional[int] = None
        for depth, view in self._views.items():
            bids, asks = view.update(book, change)
            if not bids and not asks:
                continue
            if checksum is None:
                checksum = protocol.book_checksum(book, self.pp)
            payload = protocol.book_update(self.symbol, bids, asks, checksum, ts + self.clock_offset_ns, self.pp)
            for conn in list(self._book_subs[depth].values()):
                if conn.pending_bad_checksum or (conn.dice.active and conn.dice.bad_checksum()):
                    conn.pending_bad_checksum = False
                    wrong = conn.dice.wrong_checksum(checksum)
                    bad = protocol.book_update(self.symbol, bids, asks, wrong, ts + self.clock_offset_ns, self.pp)
                    fault = {"fault": "bad_checksum", "checksum_sent": wrong, "checksum_true": checksum}
                    self._send_data(conn, bad, ts, "book", "update", fault=fault)
                else:
                    self._send_data(conn, payload, ts, "book", "update")
        if self.private is not None:
            self.private.on_book(book, change, ts)
        bbo = book.bbo()
        if bbo != self._last_bbo:
            self._last_bbo = bbo
            subs = self._ticker_subs["bbo"]
            if subs:
                payload = protocol.ticker(self.symbol, book, self.ticker_stats, ts + self.clock_offset_ns, pp=self.pp)
                for conn in list(subs.values()):
                    self._send_data(conn, payload, ts, "ticker", "update")

    def _publish_trades(self, prints: list[TradePrint]) -> None:
        if self.private is not None:
            self.private.on_trades(prints)
        for p in prints:
            self.ticker_stats.on_trade(p)
            self._recent_trades.append(p)
        ts = prints[-1].ts_ns
        if self._trade_subs:
            payload = protocol.trades(self.symbol, self._wire_prints(prints), pp=self.pp)
            for conn in list(self._trade_subs.values()):
                self._send_data(conn, payload, ts, "trade", "update")
        subs = self._ticker_subs["trades"]
        if subs:
            payload = protocol.ticker(self.symbol, self.book, self.ticker_stats, ts + self.clock_offset_ns, pp=self.pp)
            for conn in list(subs.values()):
                self._send_data(conn, payload, ts, "ticker", "update")

    def _wire_prints(self, prints: list[TradePrint]) -> list[TradePrint]:
        """Trade prints as the exchange's (possibly skewed) clock stamps them."""
        off = self.clock_offset_ns
        return [p._replace(ts_ns=p.ts_ns + off) for p in prints] if off else prints

    def _send_data(
        self,
        conn: _Conn,
        payload: bytes,
        ts: int,
        channel: str,
        mtype: str,
        *,
        stamped: bool = True,
        fault: Optional[dict[str, Any]] = None,
    ) -> None:
        """A data frame, preceded by a malformed one when a fault says so."""
        variant = conn.pending_malformed
        if variant is None and conn.dice.active:
            variant = conn.dice.malformed()
        if variant is not None:
            conn.pending_malformed = None
            bad = protocol.malformed(variant, payload, channel, self.symbol)
            self._enqueue(conn, bad, ts, channel, "malformed", False, {"fault": "malformed", "variant": variant})
        self._enqueue(conn, payload, ts, channel, mtype, stamped, fault)

    # ------------------------------------------------------------------ faults

    def inject(self, kind: str, conn: Optional[int] = None, **params: Any) -> None:
        """Fire one fault now (tests, demo), e.g. ``inject("stall", duration=3, then="drop")``.

        Parameters are those of the SPEC grammar (:mod:`.faults`); ``conn`` limits it to one
        connection index. Call from the server's event loop (see :meth:`BackgroundSim.inject`).
        """
        text = ":".join([kind, "at=0"] + [f"{k}={v}" for k, v in params.items()])
        self._apply_fault(FaultPlan.parse(text).rules[0], conn)

    async def _fault_schedule(self) -> None:
        for fault in self.faults.timeline(self.seed):
            due = self.started_ns + int(fault.t_s * 1e9)
            now = time.time_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
            self._apply_fault(fault.rule)

    def _apply_fault(self, rule: FaultRule, only: Optional[int] = None) -> None:
        if rule.kind == "maintenance":
            self._begin_maintenance(rule)
            return
        if rule.kind == "market_status":
            self._market_status(rule)
            return
        if rule.kind in PRIVATE_KINDS:
            if self.private is None:
                self._fault_record({"fault": rule.kind, "conn": None, "note": "no private side (--private)"})
            else:
                self.private.arm(rule, only)
            return
        conns = [c for c in self._conns.values() if only is None or c.index == only]
        if not conns:
            self._fault_record({"fault": rule.kind, "conn": None, "note": "no open connection"})
        for conn in conns:
            if rule.kind == "disconnect":
                self._fault_record({"fault": "disconnect", "conn": conn.index, "mode": rule.mode})
                self._disconnect(conn, rule.mode)
            elif rule.kind == "stall":
                self._begin_stall(conn, rule)
            elif rule.kind == "malformed":
                conn.pending_malformed = conn.dice.pick_variant(rule.variant)
            elif rule.kind == "bad_checksum":
                conn.pending_bad_checksum = True

    def _fault_record(self, record: dict[str, Any], t_ns: Optional[int] = None) -> None:
        kind = record["fault"]
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
        self.log.write({"kind": "fault", "t_ns": t_ns or time.time_ns(), **record})
        self.log.flush()

    def _disconnect(self, conn: _Conn, mode: str) -> None:
        if mode == "abort":  # no close frame: the client sees 1006
            conn.ws.transport.abort()
        else:
            asyncio.ensure_future(conn.ws.close(1001, "simulated disconnect"))

    def _begin_stall(self, conn: _Conn, rule: FaultRule) -> None:
        now = time.time_ns()
        conn.stall_until_ns = max(conn.stall_until_ns, now + int(rule.duration_s * 1e9))
        conn.stall_then = rule.then
        if rule.then == "drop":
            conn.dropped = len(conn.queue)
            conn.queue.clear()
        self._fault_record(
            {"fault": "stall", "phase": "start", "conn": conn.index, "duration_s": rule.duration_s, "then": rule.then}, now
        )
        asyncio.get_running_loop().call_later(rule.duration_s, self._end_stall, conn, rule)

    def _end_stall(self, conn: _Conn, rule: FaultRule) -> None:
        if conn.closed or time.time_ns() < conn.stall_until_ns - 1_000_000:
            return  # gone, or a later stall extended this one
        self.log.write(
            {"kind": "fault", "t_ns": time.time_ns(), "fault": "stall", "phase": "end", "conn": conn.index, "duration_s": rule.duration_s, "then": rule.then, "dropped": conn.dropped}
        )
        conn.stall_until_ns = 0
        conn.dropped = 0
        conn.wake.set()
        if rule.then == "close":
            self._disconnect(conn, "abort")

    def _begin_maintenance(self, rule: FaultRule) -> None:
        if self._maintenance_start_ns:
            return  # already in maintenance
        now = time.time_ns()
        self._maintenance_start_ns = now
        self._resumed.clear()
        self._broadcast_status("maintenance", now)
        self._fault_record(
            {"fault": "maintenance", "phase": "start", "conn": None, "duration_s": rule.duration_s, "connections": sorted(self._conns)}, now
        )
        asyncio.get_running_loop().call_later(rule.duration_s, self._end_maintenance, rule)

    def _end_maintenance(self, rule: FaultRule) -> None:
        now = time.time_ns()
        self._shift_ns += (now - self._maintenance_start_ns) // 1000 * 1000
        self._maintenance_start_ns = 0
        self._broadcast_status("online", now)
        self.log.write(
            {"kind": "fault", "t_ns": now, "fault": "maintenance", "phase": "end", "conn": None, "duration_s": rule.duration_s, "connections": sorted(self._conns)}
        )
        self._resumed.set()

    def _market_status(self, rule: FaultRule) -> None:
        """The exchange's status channel says ``rule.status`` for ``rule.duration_s``, then online."""
        if self._maintenance_start_ns or self._system != "online":
            return  # one status spell at a time
        now = time.time_ns()
        self._broadcast_status(rule.status, now)
        self._fault_record({"fault": "market_status", "phase": "start", "conn": None, "status": rule.status,
                            "duration_s": rule.duration_s}, now)

        def end() -> None:
            t = time.time_ns()
            self._broadcast_status("online", t)
            self.log.write({"kind": "fault", "t_ns": t, "fault": "market_status", "phase": "end", "conn": None,
                            "status": rule.status, "duration_s": rule.duration_s})

        asyncio.get_running_loop().call_later(rule.duration_s, end)

    def _broadcast_status(self, system: str, now: int) -> None:
        self._system = system
        if self.private is not None:
            self.private.on_status(system, now)
        for conn in list(self._conns.values()):
            self._enqueue(conn, protocol.status(system, conn.connection_id), now, "status", "update", False)


# --------------------------------------------------------------------------- runners


class BackgroundSim:
    """A :class:`SimExchange` on its own event loop in a daemon thread, for synchronous callers.

    ``url`` is set once it listens; ``stop()`` is idempotent; ``inject()`` is thread-safe.
    """

    def __init__(self, **sim_kwargs: Any) -> None:
        self._kwargs = sim_kwargs
        self._ready = threading.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="simexchange", daemon=True)
        self.sim: Optional[SimExchange] = None
        self.url = ""
        self.port = 0

    def start(self, timeout_s: float = 10.0) -> "BackgroundSim":
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("simulator did not start listening in time")
        if self._error is not None:
            raise RuntimeError(f"simulator failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def inject(self, kind: str, conn: Optional[int] = None, **params: Any) -> None:
        """Fire a fault now (see :meth:`SimExchange.inject`); waits until it is applied."""
        assert self._loop is not None and self.sim is not None
        sim = self.sim

        async def _do() -> None:
            sim.inject(kind, conn, **params)

        asyncio.run_coroutine_threadsafe(_do(), self._loop).result(5.0)

    def stats(self) -> dict[str, Any]:
        assert self._loop is not None and self.sim is not None
        sim = self.sim

        async def _do() -> dict[str, Any]:
            return sim.stats()

        return asyncio.run_coroutine_threadsafe(_do(), self._loop).result(5.0)

    def __enter__(self) -> "BackgroundSim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sim = SimExchange(**self._kwargs)
        self.sim = sim
        try:
            self.url = await sim.start()
            self.port = sim.port
            self._ready.set()
            await self._stop.wait()
        finally:
            await sim.stop()


def run_in_background(**sim_kwargs: Any) -> BackgroundSim:
    """Start a simulator in a background thread; returns it listening (``.url``, ``.stop()``).

    Accepts the keyword arguments of :class:`SimExchange`. Use as a context manager to stop it.
    """
    return BackgroundSim(**sim_kwargs).start()


class SimProcess:
    """A simulator in a child process (``mm simexchange``), e.g. for end-to-end CLI tests.

    With ``--private``: ``rest_url`` and ``private_url`` of its private side (else empty)."""

    def __init__(self, proc: subprocess.Popen[str], url: str, rest_url: str = "", private_url: str = "") -> None:
        self.proc = proc
        self.url = url
        self.rest_url = rest_url
        self.private_url = private_url

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGINT (CTRL_BREAK on Windows), then kill if it does not exit; returns the exit code."""
        if self.proc.poll() is None:
            if os.name == "nt":
                self.proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            else:
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        return self.proc.returncode

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_process(args: Sequence[str] = (), timeout_s: float = 20.0) -> SimProcess:
    """Run ``python -m mm_core simexchange --port 0 ARGS...`` and wait for its listening line
    (and, with ``--private``, the ``private on REST_URL WS_URL`` line after it)."""
    cmd = [sys.executable, "-m", "mm_core", "simexchange", "--port", "0", *args]
    flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, creationflags=flags)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    want = 2 if "--private" in args else 1
    result: list[str] = []

    def read() -> None:
        for _ in range(want):
            result.append(proc.stdout.readline())  # type: ignore[union-attr]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    line = result[0] if result else ""
    if not line.startswith(LISTENING_PREFIX) or len(result) < want:
        proc.kill()
        raise RuntimeError(f"simexchange did not start (output: {result!r}, exit code {proc.poll()})")
    rest = ws = ""
    if want == 2:
        parts = result[1].split()
        if len(parts) != 4 or parts[:2] != ["private", "on"]:
            proc.kill()
            raise RuntimeError(f"simexchange --private did not say where its private side is: {result[1]!r}")
        rest, ws = parts[2], parts[3]
    return SimProcess(proc, line[len(LISTENING_PREFIX) :].strip(), rest, ws)


# --------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "simexchange",
        help="local exchange simulator on 127.0.0.1 (Kraken WS v2; --dialect for other venues)",
        description=(
            "Serve a simulated BTC/EUR market over WebSocket, speaking Kraken WS v2 (book, ticker, "
            "trade, heartbeat, ping, status), with a latency model and fault injection. Prints "
            "'listening on ws://HOST:PORT' when ready; stops on Ctrl+C, SIGTERM or --max-seconds."
        ),
        epilog=(
            "Fault SPEC: comma-separated rules KIND[:name=value]..., kinds disconnect, stall, "
            "malformed, bad_checksum, maintenance; timing every=20s | at=60s | rate=0.01; e.g. "
            "'disconnect:every=20s:mode=close,stall:every=30s:duration=12s,malformed:rate=0.01,"
            "bad_checksum:rate=0.005,maintenance:at=60s:duration=10s' (see mm_core/simexchange/faults.py)."
        ),
    )
    p.add_argument("--dialect", default="kraken", choices=dialects(),
                   help="the venue the simulator speaks: kraken (this module) or a dialect module "
                        "mm_core/simexchange/<name>_dialect.py with its own run(args); default kraken")
    p.add_argument("--port", type=tcp_port, default=0, help="TCP port (0 = pick a free one and print it)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the market, latency and faults (default 0)")
    p.add_argument("--symbol", help="the one supported pair (default BTC/EUR; with --replay: which of the "
                   "recording's pairs, default its only one or its first BTC pair)")
    p.add_argument("--config", type=Path, metavar="TOML", help="serve the pair of this runtime config: its "
                   "[instrument] symbol at its price precision (the model's tick grid is the pair's tick); "
                   "--symbol still overrides the symbol")
    p.add_argument("--replay", metavar="PATH", help="serve a recording instead of the model: our raw archive, a "
                   "python-kraken-sdk fixture, a cryptofeed capture or a run directory (latency and faults on top)")
    p.add_argument("--replay-speed", type=float, default=1.0, help="replay this many times faster than recorded")
    p.add_argument("--latency-median-ms", type=float, default=8.0, help="median one-way delay (default 8)")
    p.add_argument("--latency-sigma", type=float, default=0.35, help="lognormal shape of the delay (default 0.35)")
    p.add_argument("--no-latency-spells", action="store_true", help="no degraded/unsafe spells (exact tests)")
    p.add_argument("--faults", default="", metavar="SPEC", help="fault injection rules (see below)")
    p.add_argument("--log", type=Path, metavar="FILE", help="JSONL log of every frame, fault and latency summary")
    p.add_argument("--no-log-messages", action="store_true", help="log faults and summaries only, not every frame")
    p.add_argument("--no-predictive", action="store_true", help="book imbalance carries no information")
    p.add_argument("--profile", default="default", metavar="NAME|FILE",
                   help="market profile: a name under config/sim-profiles (default, busy) or a .toml file "
                        "(e.g. one written by mm fit-sim); default: default")
    p.add_argument("--fit", metavar="RUN_DIR", help="fit a profile to this capture first (mm fit-sim; the report "
                   "goes to stderr, the profile to fitted-<name>.toml here) and serve it")
    p.add_argument("--updates-per-second", type=float, help="book messages per second (default: the profile's)")
    p.add_argument("--trades-per-second", type=float, help="trades per second (default: the profile's)")
    p.add_argument("--rate-multiplier", type=float, default=1.0, help="multiply both rates (benchmarks)")
    p.add_argument("--heartbeat-s", type=float, default=1.0, help="idle time before a heartbeat (default 1)")
    p.add_argument("--close-unsubscribed-s", type=float, default=60.0, metavar="S",
                   help="close a socket that holds no subscription for S seconds, as Kraken does (0 = never; default 60)")
    p.add_argument("--clock-offset-ms", type=float, default=0.0, metavar="MS",
                   help="the exchange clock runs MS ahead (negative: behind); every timestamp it sends "
                        "is shifted by it (default 0)")
    p.add_argument("--max-seconds", type=float, help="stop by itself after this many seconds")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    g = p.add_argument_group("private side (--private): Kraken's REST token endpoint and authenticated WS v2 "
                             "trading socket, matched with the backtest's queue model (mm_core/simexchange/private.py)")
    g.add_argument("--private", action="store_true", help="serve the private side too; prints "
                   "'private on REST_URL WS_URL' after the listening line")
    g.add_argument("--api-key-file", type=Path, metavar="FILE", help="TOML with api_key and api_secret the private "
                   "side accepts (mode 0600); created with a fresh random test key if it does not exist")
    g.add_argument("--private-port", type=int, default=0, help="port of the private side (default 0: a free one)")
    g.add_argument("--balances", default="BTC=1,EUR=100000", metavar="A=X,...",
                   help="starting balances of the account (default BTC=1,EUR=100000)")
    g.add_argument("--maker-fee-pct", type=float, default=0.25, help="maker fee in percent (default 0.25)")
    g.add_argument("--rate-tier", default="starter", help="Kraken rate-counter tier: starter, intermediate, pro "
                   "(default starter)")
    g.add_argument("--private-depth", type=int, default=10, help="book depth the private side matches on: the "
                   "client's subscription (default 10)")
    g.add_argument("--private-queue", default="risk_averse", help="queue model of the private side's matching "
                   "(the backtest's: risk_averse, power, log, power2, log2, power3; default risk_averse)")
    p.set_defaults(func=run)


def _config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """SimExchange keyword arguments from the CLI; raises ValueError/FaultSpecError with a reason."""
    if args.rate_multiplier <= 0:
        raise ValueError("--rate-multiplier must be > 0")
    latency = LatencyConfig(median_ms=args.latency_median_ms, sigma=args.latency_sigma, spells=not args.no_latency_spells)
    if args.replay and args.fit:
        raise ValueError("--replay serves a recording; --fit makes a model profile: give one of them")
    price_precision = protocol.PRICE_PRECISION
    if args.config is not None:
        if args.replay:
            raise ValueError("--replay serves the recording's pair as recorded: --config does not apply")
        from mm_core.config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if cfg.exchange.name != "kraken":
            raise ValueError(f"{args.config}: [exchange] name {cfg.exchange.name!r}: serve it with "
                             f"--dialect {cfg.exchange.name}")
        inst = cfg.instrument
        if inst.qty_precision != QTY_PRECISION:
            raise ValueError(f"{args.config}: qty_precision {inst.qty_precision}: the simulator's sizes have "
                             f"{QTY_PRECISION} decimals; serve a pair with qty_precision = {QTY_PRECISION}")
        if abs(inst.tick_size - 10.0 ** -inst.price_precision) > 1e-12:
            raise ValueError(f"{args.config}: tick_size {inst.tick_size} is not 1e-{inst.price_precision}: the "
                             "simulator's tick is one unit of the last price decimal")
        args.symbol = args.symbol or inst.symbol
        price_precision = inst.price_precision
    replay = RecordingMarket(args.replay, symbol=args.symbol, speed=args.replay_speed) if args.replay else None
    if args.fit:
        from mm_core.simexchange.fit import fit_and_report

        _, fitted = fit_and_report(args.fit, out=None, base=args.profile, stream=sys.stderr)
        args.profile = str(fitted)
    profile = load_profile(args.profile)
    ups = args.updates_per_second if args.updates_per_second is not None else profile.params.updates_per_second
    tps = args.trades_per_second if args.trades_per_second is not None else profile.params.trades_per_second
    market = dataclasses.replace(profile.params, updates_per_second=ups * args.rate_multiplier,
                                 trades_per_second=tps * args.rate_multiplier)
    if args.heartbeat_s <= 0:
        raise ValueError("--heartbeat-s must be > 0")
    private = _private_from_args(args, latency) if getattr(args, "private", False) else None
    if args.close_unsubscribed_s < 0:
        raise ValueError("--close-unsubscribed-s must be >= 0 (0 = never)")
    return {
        "host": args.host,
        "port": args.port,
        "seed": args.seed,
        "symbol": args.symbol,
        "predictive": not args.no_predictive,
        "latency": latency,
        "faults": FaultPlan.parse(args.faults),
        "log_path": args.log,
        "log_messages": not args.no_log_messages,
        "heartbeat_interval_s": args.heartbeat_s,
        "close_unsubscribed_s": args.close_unsubscribed_s or None,
        "market": market,
        "clock_offset_ms": args.clock_offset_ms,
        "private": private,
        "replay": replay,
        "profile_name": profile.name,
        "price_precision": price_precision,
    }


def dialects() -> list[str]:
    """The venues the simulator speaks: this module's, and every ``<name>_dialect`` module beside it."""
    import pkgutil

    import mm_core.simexchange as pkg

    found = {m.name[: -len("_dialect")] for m in pkgutil.iter_modules(pkg.__path__) if m.name.endswith("_dialect")}
    return ["kraken", *sorted(found - {"kraken"})]


def _private_from_args(args: argparse.Namespace, latency: LatencyConfig) -> "PrivateConfig":
    """The private side's config from the CLI; raises ValueError with a reason."""
    from mm_core.adapters.kraken.credentials import CredentialsError, load_credentials
    from mm_core.backtest.rate_limit import rate_tier
    from mm_core.simexchange.account import AccountConfig
    from mm_core.simexchange.private import PrivateConfig, write_test_key

    if args.api_key_file is None:
        raise ValueError("--private needs --api-key-file FILE (created with a fresh test key if missing)")
    if not args.api_key_file.exists():
        write_test_key(args.api_key_file)
    try:
        creds = load_credentials(args.api_key_file, env={})
    except CredentialsError as exc:
        raise ValueError(str(exc)) from None
    balances = []
    for part in args.balances.split(","):
        asset, sep, value = part.partition("=")
        try:
            balances.append((asset.strip(), float(value)))
        except ValueError:
            raise ValueError(f"--balances {args.balances!r}: expected ASSET=AMOUNT,...") from None
        if not sep or not asset.strip():
            raise ValueError(f"--balances {args.balances!r}: expected ASSET=AMOUNT,...")
    from mm_core.adapters import rate_counter, venue_rules

    tier = rate_tier(rate_counter(venue_rules("kraken"), args.rate_tier))
    if not 0 <= args.maker_fee_pct < 5:
        raise ValueError("--maker-fee-pct must be in [0, 5)")
    if args.private_depth < 1:
        raise ValueError("--private-depth must be >= 1")
    from mm_core.backtest.queue import queue_kind

    account = AccountConfig(balances=tuple(balances), maker_fee=args.maker_fee_pct / 100.0,
                            rate_threshold=tier.threshold, rate_decay=tier.decay_per_s, depth=args.private_depth,
                            queue_kind=queue_kind(args.private_queue))
    return PrivateConfig(api_key=creds.key.reveal(), api_secret=creds.secret.reveal(), account=account,
                         latency=latency, port=args.private_port)


def run(args: argparse.Namespace) -> int:
    """``mm simexchange``: serve until a signal or ``--max-seconds``; 0 on a clean stop."""
    if getattr(args, "dialect", "kraken") != "kraken":  # another venue's wire over the same market model
        import importlib

        return int(importlib.import_module(f"mm_core.simexchange.{args.dialect}_dialect").run(args))
    try:
        kwargs = _config_from_args(args)
    except (ValueError, FaultSpecError, ProfileError, OSError) as exc:
        print(f"mm simexchange: {exc}", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(_serve(kwargs, args.max_seconds))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"mm simexchange: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(summary).decode(), flush=True)
    else:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(summary["faults"].items())) or "none"
        print(
            f"stopped after {summary['uptime_s']:.1f} s: {summary['connections']} connection(s), "
            f"{summary['messages']} messages sent, faults: {faults}",
            flush=True,
        )
    return 0


async def _serve(kwargs: dict[str, Any], max_seconds: Optional[float]) -> dict[str, Any]:
    sim = SimExchange(**kwargs)
    await sim.start()
    print(f"{LISTENING_PREFIX}{sim.url}", flush=True)
    if sim.private is not None:
        print(f"private on {sim.private.rest_url} {sim.private.ws_url}", flush=True)
    stop = asyncio.Event()
    _install_stop_signals(stop)
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except asyncio.TimeoutError:
        pass
    finally:
        summary = sim.stats()
        await sim.stop()
    return summary


def _install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM (and CTRL_BREAK on Windows) set ``stop``; works where the loop cannot
    install handlers itself (Windows) by falling back to :func:`signal.signal`."""
    loop = asyncio.get_running_loop()
    names = ("SIGINT", "SIGTERM", "SIGBREAK")
    for name in names:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
