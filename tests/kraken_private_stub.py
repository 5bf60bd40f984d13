"""A small Kraken private API on 127.0.0.1 for tests: REST token endpoint + authenticated WS v2.

Not the simulator's private side (a later package): just enough of Kraken's private protocol, with
real sockets, to exercise the client's I/O shell -- signature and nonce checks on REST, token
checks on WS, order entry with executions/balances streams, the dead man's switch, and faults
(a reply that never comes although the order was placed, invalid tokens, dropped connections,
duplicated and reordered execution messages).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import secrets
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

import orjson
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

API_KEY = "stub-api-key-0123456789abcdefABCDEF"
API_SECRET = base64.b64encode(bytes(range(64))).decode()


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StubOrder:
    order_id: str
    cl_ord_id: Optional[str]
    symbol: str
    side: str
    qty: float
    price: float
    post_only: bool
    filled: float = 0.0
    status: str = "new"


@dataclass
class StubExchange:
    """State shared by the REST and WS halves (one account)."""

    balances: dict[str, float] = field(default_factory=lambda: {"BTC": 1.0, "EUR": 100000.0})
    orders: dict[str, StubOrder] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    last_nonce: int = 0
    rest_calls: int = 0
    rest_errors: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    dead_man: list[int] = field(default_factory=list)
    # faults
    swallow_replies: set[str] = field(default_factory=set)  # methods whose next reply is dropped
    reject_next: dict[str, str] = field(default_factory=dict)  # method -> error text (once)
    duplicate_executions: bool = False
    reorder_fills: bool = False  # send ``filled`` before the ``trade`` that completed the order
    fee_rate: float = 0.0025
    heartbeat_s: float = 1.0

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._exec_ids = itertools.count(1)
        self.conns: list["StubConn"] = []

    def new_order_id(self) -> str:
        return f"O{next(self._ids):05d}-STUB-ORDER"

    def new_exec_id(self) -> str:
        return f"T{next(self._exec_ids):05d}-STUB-TRADE"


class StubConn:
    """One WS connection's subscriptions and sequence counters."""

    def __init__(self, ex: StubExchange, ws: ServerConnection) -> None:
        self.ex, self.ws = ex, ws
        self.channels: set[str] = set()
        self.seq = {"executions": 0, "balances": 0}

    async def send(self, obj: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(orjson.dumps(obj))

    async def channel(self, channel: str, typ: str, data: list[dict[str, Any]]) -> None:
        if channel not in self.channels:
            return
        self.seq[channel] += 1
        msg = {"channel": channel, "type": typ, "data": data, "sequence": self.seq[channel]}
        await self.send(msg)
        if self.ex.duplicate_executions and channel == "executions" and typ == "update":
            await self.send(msg)


class PrivateStub:
    """REST + WS servers on loopback around one :class:`StubExchange`."""

    def __init__(self, ex: Optional[StubExchange] = None) -> None:
        self.ex = ex or StubExchange()
        self.rest_url = ""
        self.ws_url = ""
        self._runner: Optional[web.AppRunner] = None
        self._server: Any = None

    async def __aenter__(self) -> "PrivateStub":
        app = web.Application()
        app.router.add_post("/0/private/GetWebSocketsToken", self._token)
        app.router.add_post("/0/private/Balance", self._balance)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.rest_url = f"http://127.0.0.1:{port}"
        self._server = await serve(self._ws_handler, "127.0.0.1", 0)
        wport = next(iter(self._server.sockets)).getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{wport}/v2"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        assert self._runner is not None
        await self._runner.cleanup()

    # ------------------------------------------------------------------ REST

    def _check(self, request: web.Request, body: bytes) -> Optional[str]:
        ex = self.ex
        ex.rest_calls += 1
        if request.headers.get("API-Key") != API_KEY:
            return "EAPI:Invalid key"
        form = urllib.parse.parse_qs(body.decode())
        nonce = form.get("nonce", [""])[0]
        sha = hashlib.sha256(nonce.encode() + body).digest()
        want = base64.b64encode(hmac.new(base64.b64decode(API_SECRET), request.path.encode() + sha,
                                         hashlib.sha512).digest()).decode()
        if request.headers.get("API-Sign") != want:
            return "EAPI:Invalid signature"
        if not nonce.isdigit() or int(nonce) <= ex.last_nonce:
            return "EAPI:Invalid nonce"
        ex.last_nonce = int(nonce)
        return None

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.read()
        err = self._check(request, body)
        if err:
            self.ex.rest_errors.append(err)
            return web.json_response({"error": [err]})
        token = "tok" + secrets.token_hex(16)
        self.ex.tokens.add(token)
        return web.json_response({"error": [], "result": {"token": token, "expires": 900}})

    async def _balance(self, request: web.Request) -> web.Response:
        body = await request.read()
        err = self._check(request, body)
        if err:
            return web.json_response({"error": [err]})
        return web.json_response({"error": [], "result": {k: f"{v:.10f}" for k, v in self.ex.balances.items()}})

    # ------------------------------------------------------------------ WS

    async def _ws_handler(self, ws: ServerConnection) -> None:
        conn = StubConn(self.ex, ws)
        self.ex.conns.append(conn)
        await conn.send({"channel": "status", "type": "update",
                         "data": [{"system": "online", "api_version": "v2", "version": "stub"}]})
        beat = asyncio.get_running_loop().create_task(self._heartbeats(conn))
        try:
            async for raw in ws:
                msg = orjson.loads(raw)
                await self._on_request(conn, msg)
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()
            if conn in self.ex.conns:
                self.ex.conns.remove(conn)

    async def _heartbeats(self, conn: StubConn) -> None:
        """About every second once subscribed, as Kraken does (the client's watchdog relies on it)."""
        while True:
            await asyncio.sleep(self.ex.heartbeat_s)
            if conn.channels:
                await conn.send({"channel": "heartbeat"})

    async def _reply(self, conn: StubConn, method: str, req_id: Any, result: Any = None,
                     error: Optional[str] = None) -> None:
        if method in self.ex.swallow_replies:
            self.ex.swallow_replies.discard(method)
            return
        msg: dict[str, Any] = {"method": method, "req_id": req_id, "success": error is None,
                               "time_in": now_text(), "time_out": now_text()}
        if error is None:
            if result is not None:
                msg["result"] = result
        else:
            msg["error"] = error
        await conn.send(msg)

    async def _on_request(self, conn: StubConn, msg: dict[str, Any]) -> None:
        ex = self.ex
        method, req_id, p = msg.get("method"), msg.get("req_id"), msg.get("params", {})
        ex.requests.append({"method": method, "params": {k: v for k, v in p.items() if k != "token"}})
        if method == "ping":
            await conn.send({"method": "pong", "req_id": req_id, "time_in": now_text(), "time_out": now_text()})
            return
        if p.get("token") not in ex.tokens:
            await self._reply(conn, method, req_id, error="EAPI:Invalid token")
            return
        forced = ex.reject_next.pop(method, None)
        if forced:
            await self._reply(conn, method, req_id, error=forced)
            return
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            await self._reply(conn, method, req_id, error="EGeneral:Invalid arguments")
            return
        await handler(conn, req_id, p)

    async def _m_subscribe(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        ch = p["channel"]
        if ch in conn.channels:
            await self._reply(conn, "subscribe", req_id, error="Already subscribed")
            return
        conn.channels.add(ch)
        conn.seq[ch] = 0
        await self._reply(conn, "subscribe", req_id, {"channel": ch, "maxratecount": 60} if ch == "executions"
                          else {"channel": ch})
        if ch == "executions":
            data = [self._order_entry(o, "new") for o in self.ex.orders.values() if o.status in ("new", "partially_filled")]
            if p.get("snap_trades"):
                data += self.ex.fills[-50:]
            await conn.channel("executions", "snapshot", data)
        else:
            data = [{"asset": a, "asset_class": "currency", "balance": b,
                     "wallets": [{"type": "spot", "id": "main", "balance": b}]} for a, b in self.ex.balances.items()]
            await conn.channel("balances", "snapshot", data)

    async def _m_unsubscribe(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        conn.channels.discard(p["channel"])
        await self._reply(conn, "unsubscribe", req_id, {"channel": p["channel"]})

    def _order_entry(self, o: StubOrder, exec_type: str) -> dict[str, Any]:
        return {"exec_type": exec_type, "order_id": o.order_id, "cl_ord_id": o.cl_ord_id, "symbol": o.symbol,
                "side": o.side, "order_type": "limit", "order_qty": o.qty, "limit_price": o.price,
                "order_status": o.status, "cum_qty": o.filled, "post_only": o.post_only,
                "time_in_force": "GTC", "timestamp": now_text()}

    async def broadcast(self, channel: str, data: list[dict[str, Any]]) -> None:
        for c in list(self.ex.conns):
            await c.channel(channel, "update", data)

    def _place(self, p: dict[str, Any], symbol: str) -> StubOrder:
        o = StubOrder(self.ex.new_order_id(), p.get("cl_ord_id"), symbol, p["side"], float(p["order_qty"]),
                      float(p["limit_price"]), bool(p.get("post_only", False)))
        self.ex.orders[o.order_id] = o
        return o

    async def _m_add_order(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        if p.get("validate"):
            await self._reply(conn, "add_order", req_id, {"order_id": "", "cl_ord_id": p.get("cl_ord_id")})
            return
        o = self._place(p, p["symbol"])
        o.status = "pending_new"
        await self._reply(conn, "add_order", req_id, {"order_id": o.order_id, "cl_ord_id": o.cl_ord_id})
        await self.broadcast("executions", [self._order_entry(o, "pending_new")])
        o.status = "new"
        await self.broadcast("executions", [{"exec_type": "new", "order_id": o.order_id, "cl_ord_id": o.cl_ord_id,
                                             "order_status": "new", "timestamp": now_text()}])

    async def _m_batch_add(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        rows = []
        placed = []
        for op in p["orders"]:
            o = self._place(op, p["symbol"])
            placed.append(o)
            rows.append({"order_id": o.order_id, "cl_ord_id": o.cl_ord_id})
        await self._reply(conn, "batch_add", req_id, rows)
        for o in placed:
            await self.broadcast("executions", [self._order_entry(o, "new")])

    def _find(self, order_id: Optional[str] = None, cl_ord_id: Optional[str] = None) -> Optional[StubOrder]:
        for o in self.ex.orders.values():
            if (order_id and o.order_id == order_id) or (cl_ord_id and o.cl_ord_id == cl_ord_id):
                return o
        return None

    async def _m_amend_order(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        o = self._find(p.get("order_id"), p.get("cl_ord_id"))
        if o is None or o.status not in ("new", "partially_filled"):
            await self._reply(conn, "amend_order", req_id, error="EOrder:Unknown order")
            return
        if "limit_price" in p:
            o.price = float(p["limit_price"])
        if "order_qty" in p:
            o.qty = float(p["order_qty"])
        await self._reply(conn, "amend_order", req_id, {"amend_id": f"A{o.order_id}", "order_id": o.order_id})
        await self.broadcast("executions", [{"exec_type": "amended", "order_id": o.order_id,
                                             "order_qty": o.qty, "limit_price": o.price,
                                             "order_status": o.status, "timestamp": now_text()}])

    async def _cancel(self, o: StubOrder) -> None:
        o.status = "canceled"
        await self.broadcast("executions", [{"exec_type": "canceled", "order_id": o.order_id,
                                             "cl_ord_id": o.cl_ord_id, "order_status": "canceled",
                                             "reason": "User requested", "timestamp": now_text()}])

    async def _m_cancel_order(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        for oid in p.get("order_id", []) or []:
            o = self._find(order_id=oid)
            await self._cancel_one(conn, req_id, o)
        for cid in p.get("cl_ord_id", []) or []:
            o = self._find(cl_ord_id=cid)
            await self._cancel_one(conn, req_id, o)

    async def _cancel_one(self, conn: StubConn, req_id: Any, o: Optional[StubOrder]) -> None:
        if o is None or o.status not in ("new", "partially_filled", "pending_new"):
            await self._reply(conn, "cancel_order", req_id, error="EOrder:Unknown order")
            return
        await self._reply(conn, "cancel_order", req_id, {"order_id": o.order_id, "cl_ord_id": o.cl_ord_id})
        await self._cancel(o)

    async def _m_batch_cancel(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        targets = [self._find(order_id=i) for i in p.get("orders", [])] + \
                  [self._find(cl_ord_id=i) for i in p.get("cl_ord_id", [])]
        live = [o for o in targets if o is not None and o.status in ("new", "partially_filled")]
        await self._reply(conn, "batch_cancel", req_id, {"count": len(live)})
        for o in live:
            await self._cancel(o)

    async def _m_cancel_all(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        live = [o for o in self.ex.orders.values() if o.status in ("new", "partially_filled")]
        await self._reply(conn, "cancel_all", req_id, {"count": len(live)})
        for o in live:
            await self._cancel(o)

    async def _m_cancel_all_orders_after(self, conn: StubConn, req_id: Any, p: dict[str, Any]) -> None:
        self.ex.dead_man.append(int(p["timeout"]))
        t = now_text()
        await self._reply(conn, "cancel_all_orders_after", req_id, {"currentTime": t[:19] + "Z",
                                                                    "triggerTime": "0" if not p["timeout"] else t[:19] + "Z"})

    # ------------------------------------------------------------------ test hooks

    async def fill(self, order_id: str, qty: float, *, maker: bool = True, send: bool = True) -> list[dict[str, Any]]:
        """Fill ``qty`` of an order: a ``trade`` (saying partially_filled even when it completes the
        order, as Kraken does), then ``filled`` if complete, then the balance updates."""
        o = self.ex.orders[order_id]
        qty = min(qty, o.qty - o.filled)
        o.filled += qty
        cost = qty * o.price
        fee = round(cost * self.ex.fee_rate, 10)
        sign = 1 if o.side == "buy" else -1
        self.ex.balances["BTC"] = self.ex.balances.get("BTC", 0.0) + sign * qty
        self.ex.balances["EUR"] = self.ex.balances.get("EUR", 0.0) - sign * cost - fee
        complete = o.filled >= o.qty - 1e-12
        o.status = "filled" if complete else "partially_filled"
        trade = {"exec_type": "trade", "order_id": o.order_id, "cl_ord_id": o.cl_ord_id, "exec_id": self.ex.new_exec_id(),
                 "trade_id": len(self.ex.fills) + 1, "symbol": o.symbol, "side": o.side, "last_qty": qty,
                 "last_price": o.price, "liquidity_ind": "m" if maker else "t", "cost": cost,
                 "order_status": "partially_filled", "order_type": "limit", "cum_qty": o.filled,
                 "fees": [{"asset": "EUR", "qty": fee}], "fee_usd_equiv": fee, "timestamp": now_text()}
        self.ex.fills.append(trade)
        msgs = [[trade]]
        if complete:
            msgs.append([{"exec_type": "filled", "order_id": o.order_id, "cl_ord_id": o.cl_ord_id,
                          "order_status": "filled", "cum_qty": o.filled, "avg_price": o.price,
                          "timestamp": now_text()}])
        if send:
            if self.ex.reorder_fills:
                msgs.reverse()
            for m in msgs:
                await self.broadcast("executions", m)
            await self.broadcast("balances", [
                {"asset": "BTC", "balance": self.ex.balances["BTC"], "amount": sign * qty, "fee": 0.0,
                 "type": "trade", "wallet_type": "spot", "wallet_id": "main", "ledger_id": "L1", "timestamp": now_text()},
                {"asset": "EUR", "balance": self.ex.balances["EUR"], "amount": -sign * cost, "fee": fee,
                 "type": "trade", "wallet_type": "spot", "wallet_id": "main", "ledger_id": "L2", "timestamp": now_text()}])
        return [x for m in msgs for x in m]

    async def drop_all(self) -> None:
        for c in list(self.ex.conns):
            with contextlib.suppress(Exception):
                c.ws.transport.abort()
        await asyncio.sleep(0.05)
