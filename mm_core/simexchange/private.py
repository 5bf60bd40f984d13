"""The simulator's private side: Kraken's REST token endpoint and authenticated WS v2 trading socket.

``mm simexchange --private --api-key-file KEY.toml`` serves, besides the public feed, one aiohttp
server on loopback (``rest_url``, ``ws_url = rest_url/v2``):

- ``POST /0/private/GetWebSocketsToken``: Kraken's signed REST call (``API-Key``, ``API-Sign`` =
  base64 HMAC-SHA512 of path + SHA256(nonce + body) with the configured test secret; nonces must
  grow) -> a session token (``expires`` 900 s; a token must be used within that time, and stays
  valid on a connection that used it, as Kraken's does);
- ``/v2`` WebSocket: ``add_order``, ``amend_order``, ``cancel_order``, ``cancel_all``,
  ``batch_add``, ``batch_cancel``, ``cancel_all_orders_after`` and ``subscribe``/``unsubscribe`` of
  ``executions`` (``snap_orders``, ``snap_trades``, ``ratecounter``: every update entry carries
  ``ratecount``) and ``balances``; ``ping``; heartbeats once subscribed.

Orders are matched by one :class:`~mm_core.simexchange.account.ExchangeAccount` (the backtest's
matching and queue model) against the rows of the simulator's own market **as it publishes them**:
the server calls :meth:`PrivateSide.on_book` / :meth:`on_trades` / :meth:`on_status` from its
publish path, with the levels a depth-``depth`` client receives. Requests wait an inbound delay and
every frame an outbound delay from the simulator's latency model (own seed), delivered in order, so
the order path has a latency to measure, spells included.

Faults (the simulator's ``--faults`` SPEC; :mod:`mm_core.simexchange.faults`): ``reject`` (the next
``burst`` order requests are refused with ``error``), ``rate_limit`` (``EOrder:Rate limit exceeded``
for the next ``burst`` order actions), ``lost_reply`` (an order is placed but its reply never
comes), ``amend_disconnect`` (an amend is applied, then the connection drops before its reply and
its execution), ``dup_exec`` (an executions message is delivered twice), ``reorder_exec`` (the
``filled`` of a completing fill arrives before its ``trade``), ``private_disconnect``; plus
``market_status`` (post_only / cancel_only / limit_only for a while: public status channel and
matching).

Audit log (the simulator's ``--log``, always written, even with ``--no-log-messages``), one JSON
object per line with ``kind`` and ``t_ns``: ``private_start`` (rest_url, ws_url, account),
``private_token`` (ok, reason -- never the key, secret or token), ``private_connect`` /
``private_disconnect`` (conn), ``private_request`` (conn, method, req_id, recv_ns, the order fields:
side, order_qty, limit_price, post_only, validate, cl_ord_id, order_id, timeout -- never the token),
``private_reply`` (conn, method, req_id, success, error, order_id, delivered: false when a fault ate
it), ``private_fill`` (order_id, cl_ord_id, side, qty, price, position, balances after it),
``dead_man`` (action arm / refresh / disarm / fire, timeout_s, trigger_ns), ``fault`` (the private
fault kinds, with what they hit), ``private_stop`` (counts). A test reads it to assert "post-only
orders only, caps never exceeded, dead man's switch armed and refreshed".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import orjson

from mm_core.simexchange.account import AccountConfig, ExchangeAccount, Reply, dispatch
from mm_core.simexchange.faults import PRIVATE_KINDS, FaultRule
from mm_core.simexchange.latency import InOrderDelivery, LatencyConfig, make_latency
from mm_core.simexchange.market import DepthView, price_of, qty_of
from mm_core.simexchange.protocol import rfc3339_us

if TYPE_CHECKING:
    from pathlib import Path

    from mm_core.simexchange.market import BookChange, LevelBook, TradePrint
    from mm_core.simexchange.server import SimExchange

TOKEN_PATH = "/0/private/GetWebSocketsToken"
TOKEN_TTL_S = 900
ORDER_METHODS = ("add_order", "batch_add")
ACTION_METHODS = ("add_order", "batch_add", "amend_order", "cancel_order", "batch_cancel")
REJECT_ERRORS = {  # --faults reject:error=NAME -> the text Kraken sends (NAME: no ':' fits in a SPEC)
    "insufficient_funds": "EOrder:Insufficient funds",
    "order_minimum": "EOrder:Order minimum not met",
    "invalid_price": "EOrder:Invalid price",
    "invalid_arguments": "EGeneral:Invalid arguments",
    "unavailable": "EService:Unavailable",  # maybe placed (the client reconciles)
    "unexplained": "ESim:Unexplained failure",  # a text no client knows: maybe placed
}
_LOGGED_FIELDS = ("symbol", "side", "order_type", "order_qty", "limit_price", "post_only", "validate", "cl_ord_id",
                  "order_id", "time_in_force", "deadline", "timeout", "channel", "orders")


@dataclass(frozen=True)
class PrivateConfig:
    """What the private side needs: the accepted test key, the account, the order path's latency."""

    api_key: str
    api_secret: str  # base64, as Kraken shows it
    account: AccountConfig = AccountConfig()
    latency: Optional[LatencyConfig] = LatencyConfig()
    port: int = 0
    heartbeat_s: float = 1.0
    token_ttl_s: float = TOKEN_TTL_S


@dataclass
class _PConn:
    index: int
    ws: Any
    transport: Any
    delivery: InOrderDelivery
    inbound: InOrderDelivery
    queue: deque = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    inbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    subs: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=lambda: {"executions": 0, "balances": 0})
    tokens: set[str] = field(default_factory=set)
    closed: bool = False
    last_ns: int = 0


class _Faults:
    """Armed private faults (timed rules arm them; rate rules roll seeded dice per request)."""

    def __init__(self, rules: tuple[FaultRule, ...], seed: int) -> None:
        self.rate = [r for r in rules if r.kind in PRIVATE_KINDS and r.rate is not None]
        self.armed: dict[str, list[FaultRule]] = {}
        self.left: dict[str, int] = {}
        self._rng = np.random.default_rng((seed, 0x9A1))

    def arm(self, rule: FaultRule) -> None:
        self.armed.setdefault(rule.kind, []).append(rule)

    def take(self, kind: str) -> Optional[FaultRule]:
        """A fault of ``kind`` to apply to the next eligible event (armed, or a lucky roll)."""
        lst = self.armed.get(kind)
        if lst:
            return lst.pop(0)
        for r in self.rate:
            if r.kind == kind and self._rng.random() < (r.rate or 0.0):
                return r
        return None


class PrivateSide:
    """The private REST + WS server of one simulator (one account). See the module docstring."""

    def __init__(self, sim: "SimExchange", config: PrivateConfig) -> None:
        self.sim = sim
        self.cfg = config
        off = sim.clock_offset_ns
        self.account = ExchangeAccount(config.account, ts_text=lambda ns: rfc3339_us(ns + off))
        self.view = DepthView(config.account.depth)
        self.faults = _Faults(sim.faults.rules, sim.seed)
        self.rest_url = ""
        self.ws_url = ""
        self._conns: dict[int, _PConn] = {}
        self._n_conns = 0
        self._tokens: dict[str, int] = {}  # token -> issued_ns
        self._last_nonce = 0
        self._runner: Any = None
        self._site: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reject_left: list[tuple[FaultRule, int]] = []
        self._rate_left: list[tuple[FaultRule, int]] = []
        self.counts = {"requests": 0, "replies_dropped": 0, "tokens": 0, "token_refusals": 0, "connections": 0}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_get("/v2", self._ws_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, self.cfg.port)
        await self._site.start()
        port = self._site._server.sockets[0].getsockname()[1]
        self.rest_url = f"http://{host}:{port}"
        self.ws_url = f"ws://{host}:{port}/v2"
        self._tasks = [asyncio.create_task(self._timers())]
        self._log({"kind": "private_start", "t_ns": time.time_ns(), "rest_url": self.rest_url, "ws_url": self.ws_url,
                   "account": {"symbol": self.cfg.account.symbol, "balances": dict(self.cfg.account.balances),
                               "maker_fee": self.cfg.account.maker_fee,
                               "rate_threshold": self.cfg.account.rate_threshold,
                               "rate_decay": self.cfg.account.rate_decay, "depth": self.cfg.account.depth}})

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in list(self._conns.values()):
            with contextlib.suppress(Exception):
                await c.ws.close()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
        a = self.account
        self._log({"kind": "private_stop", "t_ns": time.time_ns(), **self.counts, "account": dict(a.counts),
                   "open_orders": len(a.open_orders()), "balances": dict(a.balances),
                   "dead_man": vars(a.dead_man).copy()})

    def _log(self, rec: dict[str, Any]) -> None:
        self.sim.log.write(rec)

    # ------------------------------------------------------------------ market hooks (server's publish path)

    def on_snapshot(self, book: "LevelBook", ts: int) -> None:
        bids, asks = self.view.snapshot(book)
        self.account.on_book(ts, _floats(bids), _floats(asks), snapshot=True)
        self._flush(ts)

    def on_book(self, book: "LevelBook", change: "BookChange", ts: int) -> None:
        bids, asks = self.view.update(book, change)
        if bids or asks:
            self.account.on_book(ts, _floats(bids), _floats(asks))
            self._flush(ts)

    def on_trades(self, prints: "list[TradePrint]") -> None:
        for p in prints:
            self.account.on_trade(p.ts_ns, 1 if p.side == "buy" else -1, price_of(p.ticks), qty_of(p.sats))
        if prints:
            self._flush(prints[-1].ts_ns)

    def on_status(self, system: str, ts: int) -> None:
        status = system if system in ("online", "post_only", "cancel_only", "limit_only") else "maintenance"
        self.account.set_market(status, ts)

    # ------------------------------------------------------------------ faults

    def arm(self, rule: FaultRule, only: Optional[int] = None) -> None:
        """A timed private fault is due: it hits the next eligible request or message."""
        now = time.time_ns()
        if rule.kind == "private_disconnect":
            conns = [c for c in self._conns.values() if only is None or c.index == only]
            for c in conns:
                self._fault({"fault": "private_disconnect", "conn": c.index, "mode": rule.mode}, now)
                self._drop(c, rule.mode)
            if not conns:
                self._fault({"fault": "private_disconnect", "conn": None, "note": "no open connection"}, now)
            return
        self.faults.arm(rule)

    def _fault(self, rec: dict[str, Any], now: int) -> None:
        self.sim._fault_record(rec, now)

    def _drop(self, c: _PConn, mode: str) -> None:
        if c.closed:
            return
        if mode == "close":
            asyncio.ensure_future(c.ws.close(code=1001, message=b"simulated disconnect"))
        else:
            with contextlib.suppress(Exception):
                c.transport.abort()

    # ------------------------------------------------------------------ REST

    def _check_sign(self, headers: Any, path: str, body: bytes) -> Optional[str]:
        if headers.get("API-Key") != self.cfg.api_key:
            return "EAPI:Invalid key"
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        nonce = form.get("nonce", [""])[0]
        sha = hashlib.sha256(nonce.encode() + body).digest()
        try:
            want = base64.b64encode(hmac.new(base64.b64decode(self.cfg.api_secret), path.encode() + sha,
                                             hashlib.sha512).digest()).decode()
        except Exception:
            return "EAPI:Invalid key"
        if not hmac.compare_digest(headers.get("API-Sign", ""), want):
            return "EAPI:Invalid signature"
        if not nonce.isdigit() or int(nonce) <= self._last_nonce:
            return "EAPI:Invalid nonce"
        self._last_nonce = int(nonce)
        return None

    async def _token(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        err = self._check_sign(request.headers, request.path, body)
        now = time.time_ns()
        if err:
            self.counts["token_refusals"] += 1
            self._log({"kind": "private_token", "t_ns": now, "ok": False, "reason": err})
            return web.json_response({"error": [err]})
        token = "sim" + secrets.token_hex(20)
        self._tokens[token] = now
        self.counts["tokens"] += 1
        self._log({"kind": "private_token", "t_ns": now, "ok": True, "reason": ""})
        return web.json_response({"error": [], "result": {"token": token, "expires": int(self.cfg.token_ttl_s)}})

    def _token_ok(self, c: _PConn, token: Any, now: int) -> bool:
        if not isinstance(token, str):
            return False
        if token in c.tokens:
            return True
        issued = self._tokens.get(token)
        if issued is None or now - issued > self.cfg.token_ttl_s * 1e9:
            return False
        c.tokens.add(token)  # used on this connection: stays valid here
        return True

    # ------------------------------------------------------------------ WS

    async def _ws_handler(self, request: Any) -> Any:
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        self._n_conns += 1
        idx = self._n_conns
        seed = (self.sim.seed, 0x5EC, idx)
        c = _PConn(idx, ws, request.transport, InOrderDelivery(make_latency(self.cfg.latency, seed + (1,))),
                   InOrderDelivery(make_latency(self.cfg.latency, seed + (2,))))
        self._conns[idx] = c
        self.counts["connections"] += 1
        now = time.time_ns()
        self._log({"kind": "private_connect", "t_ns": now, "conn": idx})
        status = {"channel": "status", "type": "update", "data": [{"system": self.sim._system, "api_version": "v2",
                                                                    "connection_id": 10_000 + idx,
                                                                    "version": "2.0.10"}]}
        self._send(c, orjson.dumps(status), now)
        writer = asyncio.create_task(self._writer(c))
        processor = asyncio.create_task(self._processor(c))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    c.inbox.put_nowait((time.time_ns(), msg.data))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            c.closed = True
            self._conns.pop(idx, None)
            for t in (writer, processor):
                t.cancel()
            for t in (writer, processor):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self._log({"kind": "private_disconnect", "t_ns": time.time_ns(), "conn": idx, "code": ws.close_code})
        return ws

    def _send(self, c: _PConn, payload: bytes, created_ns: int) -> None:
        if c.closed:
            return
        at, _ = c.delivery.schedule(created_ns)
        c.queue.append((at, payload))
        c.last_ns = created_ns
        c.wake.set()

    async def _writer(self, c: _PConn) -> None:
        q = c.queue
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            while True:
                if not q:
                    c.wake.clear()
                    await c.wake.wait()
                    continue
                wait = q[0][0] - time.time_ns()
                if wait > 0:
                    await asyncio.sleep(wait / 1e9)
                    continue
                while q and q[0][0] <= time.time_ns():
                    await c.ws.send_str(q.popleft()[1].decode())

    async def _processor(self, c: _PConn) -> None:
        while True:
            recv_ns, raw = await c.inbox.get()
            at, _ = c.inbound.schedule(recv_ns)
            now = time.time_ns()
            if at > now:
                await asyncio.sleep((at - now) / 1e9)
            if c.closed:
                return
            self._request(c, raw, recv_ns)

    async def _timers(self) -> None:
        """Dead man's switch, gtd expiry, heartbeats."""
        hb = int(self.cfg.heartbeat_s * 1e9)
        while True:
            await asyncio.sleep(0.02)
            now = time.time_ns()
            dm_fired = self.account.dead_man.fired
            self.account.tick(now)
            if self.account.dead_man.fired != dm_fired:
                self._log({"kind": "dead_man", "t_ns": now, "action": "fire", "timeout_s": None, "trigger_ns": now,
                           "cancelled": sum(1 for ch, es in self.account.outbox for e in es
                                            if e.get("exec_type") == "canceled")})
            self._flush(now)
            for c in list(self._conns.values()):
                if c.subs and now - c.last_ns >= hb:
                    self._send(c, b'{"channel":"heartbeat"}', now)

    # ------------------------------------------------------------------ requests

    def _reply(self, c: _PConn, method: str, req_id: Any, rep: Reply, time_in: int, *, deliver: bool = True,
               result_override: Any = None) -> None:
        now = time.time_ns()
        off = self.sim.clock_offset_ns
        msg: dict[str, Any] = {"method": method}
        if req_id is not None:
            msg["req_id"] = req_id
        msg["success"] = rep.ok
        if rep.ok:
            msg["result"] = rep.result if result_override is None else result_override
        else:
            msg["error"] = rep.error
        msg["time_in"] = rfc3339_us(time_in + off)
        msg["time_out"] = rfc3339_us(now + off)
        rec = {"kind": "private_reply", "t_ns": now, "conn": c.index, "method": method, "req_id": req_id,
               "success": rep.ok, "error": rep.error, "delivered": deliver}
        if rep.ok and isinstance(rep.result, dict) and rep.result.get("order_id"):
            rec["order_id"] = rep.result["order_id"]
        self._log(rec)
        if deliver:
            self._send(c, orjson.dumps(msg), now)
        else:
            self.counts["replies_dropped"] += 1

    def _request(self, c: _PConn, raw: Any, recv_ns: int) -> None:
        time_in = time.time_ns()
        try:
            msg = orjson.loads(raw)
            method = msg.get("method")
            params = msg.get("params") or {}
            req_id = msg.get("req_id")
            if not isinstance(method, str) or not isinstance(params, dict):
                raise ValueError
        except (ValueError, AttributeError, orjson.JSONDecodeError):
            self._reply(c, "unknown", None, Reply(error="EGeneral:Invalid arguments"), time_in)
            return
        self.counts["requests"] += 1
        self._log({"kind": "private_request", "t_ns": time_in, "conn": c.index, "method": method, "req_id": req_id,
                   "recv_ns": recv_ns, "params": {k: params[k] for k in _LOGGED_FIELDS if k in params}})
        if method == "ping":
            off = self.sim.clock_offset_ns
            pong = {"method": "pong", "req_id": req_id, "time_in": rfc3339_us(time_in + off),
                    "time_out": rfc3339_us(time.time_ns() + off)}
            self._send(c, orjson.dumps(pong), time.time_ns())
            return
        if not self._token_ok(c, params.get("token"), time_in):
            self._reply(c, method, req_id, Reply(error="EAPI:Invalid token"), time_in)
            return
        if method in ("subscribe", "unsubscribe"):
            self._subscription(c, method, params, req_id, time_in)
            return
        if method in ACTION_METHODS:
            forced = self._forced_error(method, time_in, c)
            if forced is not None:
                self._reply(c, method, req_id, Reply(error=forced), time_in)
                return
        lost = method in ORDER_METHODS and self.faults.take("lost_reply")
        cut = method == "amend_order" and self.faults.take("amend_disconnect")
        before = vars(self.account.dead_man).copy()
        replies = dispatch(self.account, method, params, time_in)
        if method == "cancel_all_orders_after":
            self._log_dead_man(params, before, time_in)
        if cut:
            self._fault({"fault": "amend_disconnect", "conn": c.index, "req_id": req_id,
                         "applied": replies[0].ok}, time_in)
            self._drop(c, "abort")  # the amend took effect; its reply and execution never leave
            c.closed = True
            self._flush(time_in)
            return
        for rep in replies:
            if lost:
                self._fault({"fault": "lost_reply", "conn": c.index, "method": method, "req_id": req_id,
                             "placed": rep.ok}, time_in)
            self._reply(c, method, req_id, rep, time_in, deliver=not lost)
        self._flush(time_in)

    def _forced_error(self, method: str, now: int, c: _PConn) -> Optional[str]:
        """Injected refusals: ``reject`` hits order entry, ``rate_limit`` every order action."""
        if method in ORDER_METHODS:
            err = self._burst(self._reject_left, "reject", now, c, lambda r: REJECT_ERRORS[r.error or "insufficient_funds"])
            if err:
                return err
        return self._burst(self._rate_left, "rate_limit", now, c, lambda r: "EOrder:Rate limit exceeded")

    def _burst(self, left: list, kind: str, now: int, c: _PConn, text) -> Optional[str]:
        if not left:
            rule = self.faults.take(kind)
            if rule is None:
                return None
            left.append((rule, max(1, rule.burst)))
            self._fault({"fault": kind, "conn": c.index, "burst": max(1, rule.burst), "error": text(rule)}, now)
        rule, n = left[0]
        if n <= 1:
            left.pop(0)
        else:
            left[0] = (rule, n - 1)
        return text(rule)

    def _log_dead_man(self, params: dict[str, Any], before: dict[str, Any], now: int) -> None:
        dm = self.account.dead_man
        action = ("arm" if dm.arms > before["arms"] else "refresh" if dm.refreshes > before["refreshes"]
                  else "disarm" if dm.disarms > before["disarms"] or params.get("timeout") == 0 else "refused")
        self._log({"kind": "dead_man", "t_ns": now, "action": action, "timeout_s": params.get("timeout"),
                   "trigger_ns": dm.trigger_ns})

    def _subscription(self, c: _PConn, method: str, p: dict[str, Any], req_id: Any, time_in: int) -> None:
        ch = p.get("channel")
        if ch not in ("executions", "balances"):
            self._reply(c, method, req_id, Reply(error="EGeneral:Invalid arguments:channel"), time_in)
            return
        if method == "unsubscribe":
            if ch not in c.subs:
                self._reply(c, method, req_id, Reply(error="Subscription Not Found"), time_in)
                return
            del c.subs[ch]
            self._reply(c, method, req_id, Reply({"channel": ch}), time_in)
            return
        if ch in c.subs:
            self._reply(c, method, req_id, Reply(error="Already subscribed"), time_in)
            return
        c.subs[ch] = dict(p)
        c.seq[ch] = 0
        result: dict[str, Any] = {"channel": ch, "snapshot": bool(p.get("snapshot", p.get("snap_orders", True)))}
        if ch == "executions":
            result["maxratecount"] = self.cfg.account.rate_threshold
        self._reply(c, method, req_id, Reply(result), time_in)
        a = self.account
        if ch == "executions":
            data = a.executions_snapshot(time_in, snap_orders=bool(p.get("snap_orders", True)),
                                         snap_trades=bool(p.get("snap_trades", False)))
        else:
            data = a.balances_snapshot() if p.get("snapshot", True) else []
        self._channel(c, ch, "snapshot", data, time_in)

    def _channel(self, c: _PConn, ch: str, typ: str, data: list[dict[str, Any]], now: int) -> int:
        c.seq[ch] += 1
        if ch == "executions" and typ == "update" and c.subs.get("executions", {}).get("ratecounter"):
            rc = round(self.account.rate_counter(now), 4)
            data = [{**e, "ratecount": rc} for e in data]
        self._send(c, orjson.dumps({"channel": ch, "type": typ, "data": data, "sequence": c.seq[ch]}), now)
        return c.seq[ch]

    def _flush(self, now: int) -> None:
        """Deliver what the account emitted: to every connection subscribed to the channel."""
        out = self.account.take_outbox()
        if not out:
            return
        self._log_fills(out, now)
        conns = [c for c in self._conns.values() if not c.closed]
        i = 0
        while i < len(out):
            ch, entries = out[i]
            pair = (ch == "executions" and entries[0].get("exec_type") == "trade" and i + 1 < len(out)
                    and out[i + 1][0] == "executions" and out[i + 1][1][0].get("exec_type") == "filled")
            if pair and self.faults.take("reorder_exec"):
                self._fault({"fault": "reorder_exec", "conn": None, "order_id": entries[0].get("order_id")}, now)
                for c in conns:
                    if "executions" in c.subs:
                        self._reordered(c, entries, out[i + 1][1], now)
                i += 2
                continue
            dup = ch == "executions" and self.faults.take("dup_exec")
            for c in conns:
                if ch in c.subs:
                    self._channel(c, ch, "update", entries, now)
                    if dup:
                        c.seq[ch] -= 1
                        self._channel(c, ch, "update", entries, now)
            if dup:
                self._fault({"fault": "dup_exec", "conn": None, "exec_type": entries[0].get("exec_type"),
                             "order_id": entries[0].get("order_id")}, now)
            i += 1

    def _reordered(self, c: _PConn, trade: list[dict[str, Any]], filled: list[dict[str, Any]], now: int) -> None:
        """``filled`` (sequence n+1) goes out before its ``trade`` (sequence n)."""
        n = c.seq["executions"] + 1
        c.seq["executions"] = n + 1
        rc = c.subs["executions"].get("ratecounter")
        extra = {"ratecount": round(self.account.rate_counter(now), 4)} if rc else {}
        for data, seq in ((filled, n + 1), (trade, n)):
            data = [{**e, **extra} for e in data]
            self._send(c, orjson.dumps({"channel": "executions", "type": "update", "data": data, "sequence": seq}),
                       now)

    def _log_fills(self, out: list[tuple[str, list[dict[str, Any]]]], now: int) -> None:
        a = self.account
        for ch, entries in out:
            if ch != "executions":
                continue
            for e in entries:
                if e.get("exec_type") == "trade":
                    self._log({"kind": "private_fill", "t_ns": now, "order_id": e["order_id"],
                               "cl_ord_id": e.get("cl_ord_id"), "side": e["side"], "qty": e["last_qty"],
                               "price": e["last_price"], "position": a.position(), "balances": dict(a.balances)})


def _floats(levels: list[tuple[int, int]]) -> list[tuple[float, float]]:
    return [(price_of(t), qty_of(s)) for t, s in levels]


def new_test_key() -> tuple[str, str]:
    """A fresh random test key pair (key, base64 secret) for a simulator run."""
    return "simkey-" + secrets.token_hex(12), base64.b64encode(secrets.token_bytes(64)).decode()


def write_test_key(path: "Path") -> None:
    """Create ``path`` (mode 0600 from the start, never readable by others) with a fresh test key."""
    import os
    from pathlib import Path

    key, secret = new_test_key()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f'# simulator test key (mm simexchange --private); not a Kraken key\napi_key = "{key}"\n'
                 f'api_secret = "{secret}"\n')
