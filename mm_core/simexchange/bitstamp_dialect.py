"""The simulator's Bitstamp dialect: the same market model, spoken as Bitstamp WebSocket v2 + REST.

Why: the collector, gate and backtest must run on Bitstamp offline, over a real loopback socket,
exactly as they would against ``wss://ws.bitstamp.net`` and ``https://www.bitstamp.net``. One port
serves both: WebSocket upgrades get the stream, plain ``GET``s get the REST answers (the collector's
default REST base is the http form of its WebSocket URL).

Wire (see :mod:`mm_core.adapters.bitstamp.wire` for the client side):

- ``bts:subscribe`` to ``diff_order_book_<pair>`` / ``live_trades_<pair>`` ->
  ``bts:subscription_succeeded``; any other channel -> ``bts:error`` "Bad subscription string.";
- every change of the model's full book is one diff ``{"data": {"timestamp", "microtimestamp",
  "bids": [["price", "qty"], ...], "asks": [...]}, "channel": "diff_order_book_<pair>", "event": "data"}``
  (qty ``"0.00000000"`` deletes); microtimestamps strictly increase, so "drop diffs at or before
  the snapshot" is exact;
- trades as ``live_trades_<pair>`` ``trade`` events (``type`` 0 buy / 1 sell, taker side);
- ``bts:heartbeat`` is answered ``{"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}``;
  no idle heartbeats from the server (Bitstamp sends none);
- ``GET /api/v2/order_book/<pair>/``: the whole current book with the ``microtimestamp`` of the last
  diff it includes -- the exchange's state *now*, so it is usually ahead of a delayed stream, as on
  the real venue; ``GET /api/v2/trading-pairs-info/``: the pair's rules.

Prices: the model's grid is 0.1 units (a BTC-like price), written at the pair's precision (2 for
BTC/EUR: ``"65000.10"``); sizes at 8 decimals.

Faults (``--faults`` SPEC, this dialect's kinds): ``lost_diff:rate=R`` (a diff is not delivered to a
connection: its book silently diverges until a re-snapshot comparison or a crossed book catches it),
``request_reconnect:every=Ns`` (``bts:request_reconnect`` to every connection, closed 2 s later if
the client has not left), ``snapshot_error:rate=R`` (a REST snapshot answers HTTP 503).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import re
import sys
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Optional

import numpy as np
import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from mm_core.simexchange.latency import LatencyConfig, make_latency
from mm_core.simexchange.market import (
    PRICE_PRECISION,
    QTY_PRECISION,
    BookChange,
    LevelBook,
    MarketModel,
    MarketParams,
)

NAME = "bitstamp"
BOOK_PREFIX = "diff_order_book_"
TRADES_PREFIX = "live_trades_"
LISTENING_PREFIX = "listening on "
_HEARTBEAT_REPLY = '{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}'
_RECONNECT = '{"event":"bts:request_reconnect","channel":"","data":""}'
_RECONNECT_GRACE_S = 2.0


@dataclass(frozen=True)
class DialectFaults:
    """This dialect's fault rules (rates per delivered diff / per snapshot, period in seconds)."""

    lost_diff_rate: float = 0.0
    request_reconnect_every_s: float = 0.0
    snapshot_error_rate: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> "DialectFaults":
        """``lost_diff:rate=0.01,request_reconnect:every=20s,snapshot_error:rate=0.1``; ValueError otherwise."""
        out: dict[str, float] = {}
        for rule in filter(None, (r.strip() for r in (spec or "").split(","))):
            kind, _, rest = rule.partition(":")
            m = re.fullmatch(r"(rate|every)=([0-9.]+)(s?)", rest)
            want = {"lost_diff": "rate", "request_reconnect": "every", "snapshot_error": "rate"}.get(kind)
            if want is None or m is None or m.group(1) != want:
                raise ValueError(f"fault rule {rule!r}: this dialect knows lost_diff:rate=R, "
                                 "request_reconnect:every=Ns, snapshot_error:rate=R")
            value = float(m.group(2))
            if want == "rate" and not 0 <= value <= 1:
                raise ValueError(f"fault rule {rule!r}: rate must be in [0, 1]")
            if want == "every" and value <= 0:
                raise ValueError(f"fault rule {rule!r}: every must be > 0")
            out[{"lost_diff": "lost_diff_rate", "request_reconnect": "request_reconnect_every_s",
                 "snapshot_error": "snapshot_error_rate"}[kind]] = value
        return cls(**out)


def pair_code(symbol: str) -> str:
    return symbol.replace("/", "").lower()


class _Conn:
    __slots__ = ("ws", "index", "book", "trades", "queue", "last_send_ns", "task", "rng")

    def __init__(self, ws: ServerConnection, index: int, seed: int) -> None:
        self.ws, self.index = ws, index
        self.book = self.trades = False
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self.last_send_ns = 0
        self.task: Optional[asyncio.Task[None]] = None
        self.rng = np.random.default_rng((seed, index, 7))


class BitstampSim:
    """The Bitstamp-speaking simulator (``await start()`` / ``await stop()``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, seed: int = 0, symbol: str = "BTC/EUR",
                 price_precision: int = 2, predictive: bool = True,
                 latency: Optional[LatencyConfig] = LatencyConfig(), market: Optional[MarketParams] = None,
                 updates_per_second: Optional[float] = None, trades_per_second: Optional[float] = None,
                 faults: DialectFaults = DialectFaults()) -> None:
        if price_precision < PRICE_PRECISION:
            raise ValueError(f"price precision {price_precision}: the model's prices have {PRICE_PRECISION} "
                             f"decimal(s); serve a pair with price_precision >= {PRICE_PRECISION}")
        self.host, self.port, self.seed = host, port, seed
        self.symbol, self.code = symbol, pair_code(symbol)
        self.pad = "0" * (price_precision - PRICE_PRECISION)
        self.price_precision = price_precision
        self.predictive = predictive
        self.latency_config = latency
        self.market = market or MarketParams()
        self.rates = (updates_per_second, trades_per_second)
        self.faults = faults
        self.url = ""
        self.book = LevelBook()
        self.last_mts = 0  # µs of the last diff applied to ``book``
        self.counts = {"connections": 0, "messages": 0, "diffs": 0, "trades": 0, "snapshots_served": 0,
                       "lost_diffs": 0, "snapshot_errors": 0, "reconnect_requests": 0}
        self._conns: dict[int, _Conn] = {}
        self._next_index = 1
        self._latency: Any = None
        self._server: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = np.random.default_rng((seed, 11))
        self.started_ns = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        self.started_ns = time.time_ns() // 1000 * 1000
        ups, tps = self.rates
        self.model = MarketModel(self.seed, self.predictive, start_ns=self.started_ns, params=self.market,
                                 updates_per_second=ups, trades_per_second=tps)
        self.book = self.model.book.copy()
        self.last_mts = self.started_ns // 1000
        self._latency = make_latency(self.latency_config, self.seed) if self.latency_config else None
        self._server = await serve(self._handle, self.host, self.port, process_request=self._http,
                                   compression=None, ping_interval=None, close_timeout=2, max_size=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://{self.host}:{self.port}"
        self._tasks = [asyncio.create_task(self._pump())]
        if self.faults.request_reconnect_every_s:
            self._tasks.append(asyncio.create_task(self._reconnect_requests()))
        return self.url

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    def stats(self) -> dict[str, Any]:
        return {"url": self.url, "dialect": NAME, "symbol": self.symbol,
                "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3), **self.counts}

    # ------------------------------------------------------------------ wire text

    def _price(self, ticks: int) -> str:
        whole, frac = divmod(ticks, 10**PRICE_PRECISION)
        return f"{whole}.{frac:0{PRICE_PRECISION}d}{self.pad}"

    @staticmethod
    def _qty(sats: int) -> str:
        whole, frac = divmod(sats, 10**QTY_PRECISION)
        return f"{whole}.{frac:0{QTY_PRECISION}d}"

    def _rows(self, levels: Any) -> str:
        return "[" + ",".join(f'["{self._price(t)}","{self._qty(s)}"]' for t, s in levels) + "]"

    def _diff_text(self, change: BookChange, mts: int) -> str:
        return (f'{{"data":{{"timestamp":"{mts // 1_000_000}","microtimestamp":"{mts}",'
                f'"bids":{self._rows(change.bids)},"asks":{self._rows(change.asks)}}},'
                f'"channel":"{BOOK_PREFIX}{self.code}","event":"data"}}')

    def _trade_text(self, ticks: int, sats: int, side: str, trade_id: int, mts: int) -> str:
        price, qty = self._price(ticks), self._qty(sats)
        return (f'{{"data":{{"id":{trade_id},"timestamp":"{mts // 1_000_000}","amount":{float(qty)!r},'
                f'"amount_str":"{qty}","price":{float(price)!r},"price_str":"{price}",'
                f'"type":{0 if side == "buy" else 1},"microtimestamp":"{mts}","buy_order_id":0,"sell_order_id":0}},'
                f'"channel":"{TRADES_PREFIX}{self.code}","event":"trade"}}')

    def snapshot_body(self) -> bytes:
        """The REST ``order_book`` answer: the whole book now, with the time of its last diff."""
        bids, asks = self.book.top(1 << 30)
        return (f'{{"timestamp":"{self.last_mts // 1_000_000}","microtimestamp":"{self.last_mts}",'
                f'"bids":{self._rows(bids)},"asks":{self._rows(asks)}}}').encode()

    # ------------------------------------------------------------------ market

    async def _pump(self) -> None:
        for ev in self.model.events():
            wait_ns = ev.ts_ns - time.time_ns()
            if wait_ns > 0:
                await asyncio.sleep(wait_ns / 1e9)
            if isinstance(ev, BookChange):
                self.book.apply(ev)
                mts = max(ev.ts_ns // 1000, self.last_mts + 1)  # strictly increasing: joins are exact
                self.last_mts = mts
                self.counts["diffs"] += 1
                text = self._diff_text(ev, mts)
                for conn in list(self._conns.values()):
                    if conn.book:
                        if self.faults.lost_diff_rate and conn.rng.random() < self.faults.lost_diff_rate:
                            self.counts["lost_diffs"] += 1
                            continue
                        self._send(conn, text, mts * 1000)
            else:
                mts = ev.ts_ns // 1000
                self.counts["trades"] += 1
                text = self._trade_text(ev.ticks, ev.sats, ev.side, ev.trade_id, mts)
                for conn in list(self._conns.values()):
                    if conn.trades:
                        self._send(conn, text, mts * 1000)

    def _send(self, conn: _Conn, text: str, created_ns: int) -> None:
        """Queue a frame for delivery after the sampled delay, in order (a TCP stream cannot reorder)."""
        delay = self._latency.delay_ns(created_ns) if self._latency is not None else 0
        at = max(conn.last_send_ns, created_ns + delay)
        conn.last_send_ns = at
        conn.queue.put_nowait((at, text))

    async def _sender(self, conn: _Conn) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                at, text = await conn.queue.get()
                wait_ns = at - time.time_ns()
                if wait_ns > 0:
                    await asyncio.sleep(wait_ns / 1e9)
                await conn.ws.send(text)
                self.counts["messages"] += 1

    async def _reconnect_requests(self) -> None:
        every = self.faults.request_reconnect_every_s
        while True:
            await asyncio.sleep(every)
            for conn in list(self._conns.values()):
                self.counts["reconnect_requests"] += 1
                self._send(conn, _RECONNECT, time.time_ns())
                asyncio.get_running_loop().call_later(
                    _RECONNECT_GRACE_S, lambda c=conn: asyncio.ensure_future(c.ws.close(1001, "reconnect requested")))

    # ------------------------------------------------------------------ connections

    def _http(self, connection: ServerConnection, request: Request) -> Optional[Response]:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = request.path.split("?", 1)[0]
        if path.rstrip("/") == f"/api/v2/order_book/{self.code}":
            if self.faults.snapshot_error_rate and self._rng.random() < self.faults.snapshot_error_rate:
                self.counts["snapshot_errors"] += 1
                return _response(HTTPStatus.SERVICE_UNAVAILABLE, b'{"status":"error","reason":"busy"}')
            self.counts["snapshots_served"] += 1
            return _response(HTTPStatus.OK, self.snapshot_body())
        if path.rstrip("/") == "/api/v2/trading-pairs-info":
            base, quote = self.symbol.split("/")
            return _response(HTTPStatus.OK, orjson.dumps([{
                "name": self.symbol, "url_symbol": self.code, "base_decimals": QTY_PRECISION,
                "counter_decimals": self.price_precision, "instant_order_counter_decimals": self.price_precision,
                "minimum_order": f"20.0 {quote}", "trading": "Enabled", "instant_and_market_orders": "Enabled",
                "description": f"{base} / {quote}"}]))
        return _response(HTTPStatus.NOT_FOUND, b'{"status":"error","reason":"Not found"}')

    async def _handle(self, ws: ServerConnection) -> None:
        conn = _Conn(ws, self._next_index, self.seed)
        self._next_index += 1
        self.counts["connections"] += 1
        self._conns[conn.index] = conn
        conn.task = asyncio.create_task(self._sender(conn))
        try:
            async for raw in ws:
                self._on_request(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            self._conns.pop(conn.index, None)
            conn.task.cancel()

    def _on_request(self, conn: _Conn, raw: Any) -> None:
        now = time.time_ns()
        try:
            msg = orjson.loads(raw)
            event = msg.get("event")
            channel = str((msg.get("data") or {}).get("channel", "")) if isinstance(msg.get("data"), dict) else ""
        except (orjson.JSONDecodeError, AttributeError):
            self._send(conn, _error("", "Bad request."), now)
            return
        if event == "bts:heartbeat":
            self._send(conn, _HEARTBEAT_REPLY, now)
            return
        if event in ("bts:subscribe", "bts:unsubscribe"):
            on = event == "bts:subscribe"
            if channel == BOOK_PREFIX + self.code:
                conn.book = on
            elif channel == TRADES_PREFIX + self.code:
                conn.trades = on
            else:
                self._send(conn, _error(channel, "Bad subscription string."), now)
                return
            done = "bts:subscription_succeeded" if on else "bts:unsubscription_succeeded"
            self._send(conn, orjson.dumps({"event": done, "channel": channel, "data": {}}).decode(), now)
            return
        self._send(conn, _error(channel, "Bad request."), now)


def _error(channel: str, text: str) -> str:
    return orjson.dumps({"event": "bts:error", "channel": channel, "data": {"code": None, "message": text}}).decode()


def _response(status: HTTPStatus, body: bytes) -> Response:
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


# --------------------------------------------------------------------------- CLI (mm simexchange --dialect bitstamp)

_UNSUPPORTED = ("replay", "fit")


def run(args: argparse.Namespace) -> int:
    """``mm simexchange --dialect bitstamp``: serve until ``--max-seconds`` or a signal; 0 on a clean stop."""
    from mm_core.simexchange.profiles import ProfileError, load_profile

    try:
        for name in _UNSUPPORTED:
            if getattr(args, name, None):
                raise ValueError(f"--{name} is not supported by the {NAME} dialect")
        if getattr(args, "clock_offset_ms", 0.0):
            raise ValueError(f"--clock-offset-ms is not supported by the {NAME} dialect (it has no server time)")
        symbol, pp = args.symbol or "BTC/EUR", 2
        if args.config is not None:
            from mm_core.config import ConfigError, load_config

            try:
                cfg = load_config(args.config)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
            if cfg.exchange.name != NAME:
                raise ValueError(f"{args.config}: [exchange] name {cfg.exchange.name!r}: the {NAME} dialect serves "
                                 f"{NAME} configs")
            symbol, pp = args.symbol or cfg.instrument.symbol, cfg.instrument.price_precision
        faults = DialectFaults.parse(args.faults)
        profile = load_profile(args.profile)
        ups = args.updates_per_second if args.updates_per_second is not None else profile.params.updates_per_second
        tps = args.trades_per_second if args.trades_per_second is not None else profile.params.trades_per_second
        market = dataclasses.replace(profile.params, updates_per_second=ups * args.rate_multiplier,
                                     trades_per_second=tps * args.rate_multiplier)
        latency = LatencyConfig(median_ms=args.latency_median_ms, sigma=args.latency_sigma,
                                spells=not args.no_latency_spells)
        sim = BitstampSim(args.host, args.port, seed=args.seed, symbol=symbol, price_precision=pp,
                          predictive=not args.no_predictive, latency=latency, market=market, faults=faults)
    except (ValueError, ProfileError, OSError) as exc:
        print(f"mm simexchange: {exc}", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(_serve(sim, args.max_seconds, getattr(args, "log", None)))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"mm simexchange: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(summary).decode(), flush=True)
    else:
        print(f"stopped after {summary['uptime_s']:.1f} s: {summary['connections']} connection(s), "
              f"{summary['messages']} messages sent, {summary['snapshots_served']} snapshots served, "
              f"lost diffs {summary['lost_diffs']}, reconnect requests {summary['reconnect_requests']}", flush=True)
    return 0


async def _serve(sim: BitstampSim, max_seconds: Optional[float], log: Any = None) -> dict[str, Any]:
    """Serve; ``log``: a JSONL file with this dialect's start and stop records (counts, not frames)."""
    from pathlib import Path

    from mm_core.simexchange.server import _install_stop_signals

    await sim.start()
    print(f"{LISTENING_PREFIX}{sim.url}", flush=True)
    if log is not None:
        Path(log).write_text(orjson.dumps({"kind": "start", "t_ns": sim.started_ns, "dialect": NAME, "url": sim.url,
                                           "symbol": sim.symbol, "seed": sim.seed}).decode() + "\n", encoding="utf-8")
    stop = asyncio.Event()
    _install_stop_signals(stop)
    try:
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)
    except asyncio.TimeoutError:
        pass
    finally:
        summary = sim.stats()
        await sim.stop()
        if log is not None:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(orjson.dumps({"kind": "stop", "t_ns": time.time_ns(), **summary}).decode() + "\n")
    return summary
