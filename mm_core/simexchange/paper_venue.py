"""The simulator's private side in-process: a paper trading venue fed with live market data.

``mm paper --config TOML`` trades on a real exchange's public feed with simulated fills. The venue
is the simulator's account (:class:`~mm_core.simexchange.account.ExchangeAccount`: the backtest's
matching and queue model on the backtest's rows, Kraken's rate counter, funds, post-only) without
the sockets: requests and answers are Kraken WS v2 messages, built by the Kraken client's own
request builder and read by its own parser (:class:`~mm_core.adapters.kraken.executions.KrakenPrivateParser`),
so the order manager sees exactly what it sees live -- only the wire is missing.

Time, as in the backtest engine: a request sent at local time ``s`` reaches the matching engine at
``s + entry``; everything the engine produces at exchange time ``e`` (replies, executions, balance
updates) reaches the runner at ``e + response``, in order. Market messages are applied at their
exchange time, and a request is applied after every market message stamped at or before its
arrival (market rows first at equal times, as the engine does). ``entry`` and ``response`` are
half the round trip measured on the market-data connection (its ping/pong; :meth:`set_latency`),
5 ms each until the first measurement.

Two ways to drive it:

- **asyncio** (the paper runner): the :class:`~mm_core.trading.venue.TradingVenue` methods; market
  data comes in through :meth:`on_book` / :meth:`on_trade` from the runner's feed, and a background
  task applies requests once the feed has shown that nothing earlier can still arrive (a message
  stamped later than the request's arrival, or the feed's lag plus a margin without one);
- **virtual time** (the replay driver of the backtest-parity test): :meth:`request`,
  :meth:`next_request_ns`, :meth:`process_request`, :meth:`next_delivery_ns`, :meth:`pop_delivery`,
  with the caller owning the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from typing import Any, Optional, Sequence

import orjson

from mm_core.adapters.kraken.executions import KrakenPrivateParser
from mm_core.adapters.kraken.trading import KrakenTradingMessages, WsRequest, timeout_outcome
from mm_core.events import Connected
from mm_core.simexchange.account import AccountConfig, ExchangeAccount, Reply, dispatch
from mm_core.simexchange.protocol import rfc3339_us
from mm_core.trading.records import (AmendRequest, BalancesSnapshot, CancelRequest, ExecutionsSnapshot, OrderRequest,
                                     Outcome, OutcomeKind, VenueSnapshot)

_MS = 1_000_000
DEFAULT_ONE_WAY_NS = 5 * _MS
MARGIN_NS = 5 * _MS  # feed lag + this without a later message: nothing earlier can still arrive


class PaperVenue:
    """See the module docstring."""

    name = "paper"

    def __init__(self, account: AccountConfig = AccountConfig(), *, exchange: str = "kraken",
                 entry_ns: int = DEFAULT_ONE_WAY_NS, response_ns: int = DEFAULT_ONE_WAY_NS,
                 instruments: Optional[dict] = None, request_timeout_s: float = 5.0) -> None:
        self.account = ExchangeAccount(account)
        self.symbol = account.symbol
        self.exchange = exchange
        self.parser = KrakenPrivateParser(exchange, default_symbol=account.symbol)
        self.messages = KrakenTradingMessages(instruments)
        self.entry_ns = int(entry_ns)
        self.response_ns = int(response_ns)
        self.request_timeout_s = request_timeout_s
        self._req: list[tuple[int, int, int, str, dict[str, Any]]] = []  # (arrive, seq, req_id, method, params)
        self._out: deque[tuple[int, bytes]] = deque()  # (deliver_ns, frame), in order
        self._last_deliver = 0
        self._seq = itertools.count(1)
        self._req_ids = itertools.count(1)
        self._chan_seq = {"executions": 0, "balances": 0}
        self._last_exch = 0
        self._lag_ns = 0
        # asyncio mode
        self.events: Optional[asyncio.Queue[Any]] = None
        self._pending: dict[int, tuple[asyncio.Future[Outcome], WsRequest]] = {}
        self._wake: Optional[asyncio.Event] = None
        self._task: Optional[asyncio.Task[None]] = None
        self.requests = 0
        self.latency_updates = 0

    def __repr__(self) -> str:
        return f"PaperVenue(symbol={self.symbol!r}, entry_ms={self.entry_ns / 1e6:.2f}, response_ms={self.response_ns / 1e6:.2f})"

    # ------------------------------------------------------------------ latency

    def set_latency(self, rtt_ns: int) -> None:
        """Entry and response = half a round trip measured on the market-data connection."""
        if rtt_ns > 0:
            self.entry_ns = self.response_ns = int(rtt_ns // 2)
            self.latency_updates += 1

    # ------------------------------------------------------------------ exchange side (virtual time)

    def request(self, req: WsRequest, send_ns: int) -> int:
        """Send ``req`` at local time ``send_ns``; it reaches the engine ``entry`` later. Returns its req_id."""
        req_id = next(self._req_ids)
        params = orjson.loads(req.frame("paper", req_id)).get("params", {})
        heapq.heappush(self._req, (send_ns + self.entry_ns, next(self._seq), req_id, req.method, params))
        self.requests += 1
        return req_id

    def next_request_ns(self) -> Optional[int]:
        return self._req[0][0] if self._req else None

    def process_request(self) -> None:
        """Apply the earliest request at its arrival time (the caller has applied the market up to it)."""
        arrive, _, req_id, method, params = heapq.heappop(self._req)
        replies = dispatch(self.account, method, params, arrive)
        for rep in replies:
            self._schedule(arrive, self._reply_frame(method, req_id, rep, arrive))
        self._drain(arrive)

    def on_book(self, exch_ns: int, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]],
                snapshot: bool = False) -> None:
        """A book message at exchange time ``exch_ns`` (levels as a depth-N client receives them)."""
        self._before_market(exch_ns)
        self.account.on_book(exch_ns, bids, asks, snapshot)
        self._drain(exch_ns)

    def on_trade(self, exch_ns: int, taker_side: int, price: float, qty: float) -> None:
        self._before_market(exch_ns)
        self.account.on_trade(exch_ns, taker_side, price, qty)
        self._drain(exch_ns)

    def _before_market(self, exch_ns: int) -> None:
        """Requests that reached the engine before this message go first (asyncio mode)."""
        self._last_exch = max(self._last_exch, exch_ns)
        if self.events is not None:
            while self._req and self._req[0][0] < exch_ns:
                self.process_request()

    def tick(self, now_ns: int) -> None:
        """Engine timers (dead man's switch, gtd expiry) up to ``now_ns``."""
        self.account.tick(now_ns)
        self._drain(now_ns)

    def next_delivery_ns(self) -> Optional[int]:
        return self._out[0][0] if self._out else None

    def pop_delivery(self) -> list[Any]:
        """The next frame that reaches the runner, parsed: Outcome (with req_id) and/or records."""
        deliver, frame = self._out.popleft()
        return self.parser.on_message(frame, deliver)

    def snapshot_frames(self, now_ns: int) -> None:
        """An executions + balances snapshot (a (re)subscription) at ``now_ns``, delivered in order."""
        for ch, data in (("executions", self.account.executions_snapshot(now_ns, snap_orders=True, snap_trades=True)),
                         ("balances", self.account.balances_snapshot())):
            self._chan_seq[ch] += 1
            self._schedule(now_ns, orjson.dumps({"channel": ch, "type": "snapshot", "data": data,
                                                 "sequence": self._chan_seq[ch]}))

    def queue_ahead(self, cl_ord_id: str) -> float:
        o = self.account.find(cl_ord_id=cl_ord_id)
        return self.account.queue_ahead(o.order_id) if o is not None else -1.0

    def _schedule(self, produced_ns: int, frame: bytes) -> None:
        at = max(self._last_deliver, produced_ns + self.response_ns)
        self._last_deliver = at
        self._out.append((at, frame))
        if self._wake is not None:
            self._wake.set()

    def _reply_frame(self, method: str, req_id: int, rep: Reply, now: int) -> bytes:
        msg: dict[str, Any] = {"method": method, "req_id": req_id, "success": rep.ok}
        if rep.ok:
            msg["result"] = rep.result
        else:
            msg["error"] = rep.error
        t = rfc3339_us(now)
        msg["time_in"] = t
        msg["time_out"] = t
        return orjson.dumps(msg)

    def _drain(self, now: int) -> None:
        for ch, entries in self.account.take_outbox():
            self._chan_seq[ch] += 1
            self._schedule(now, orjson.dumps({"channel": ch, "type": "update", "data": entries,
                                              "sequence": self._chan_seq[ch]}))

    def observe_feed(self, local_ns: int, exch_ns: int) -> None:
        """The feed's lag (asyncio mode: how long to wait before nothing earlier can arrive)."""
        self._lag_ns = max(0, local_ns - exch_ns)

    # ------------------------------------------------------------------ TradingVenue (asyncio)

    async def start(self) -> None:
        self.events = asyncio.Queue()
        self._wake = asyncio.Event()
        now = time.time_ns()
        self.events.put_nowait(Connected(exchange=self.exchange, symbol=self.symbol, ts_exchange=None, ts_capture=now,
                                         url="paper://in-process", attempt=0))
        self.snapshot_frames(now)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="paper-venue")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for fut, req in self._pending.values():
            if not fut.done():
                fut.set_result(timeout_outcome(req, 0, "venue closed"))
        self._pending.clear()

    async def _run(self) -> None:
        assert self._wake is not None and self.events is not None
        while True:
            now = time.time_ns()
            # requests nothing earlier can still precede: the feed is past them, or quiet long enough
            while self._req and self._req[0][0] <= now - self._lag_ns - MARGIN_NS:
                self.process_request()
            self.account.tick(now)
            self._drain(now)
            while self._out and self._out[0][0] <= now:
                for item in self.pop_delivery():
                    self._dispatch(item)
            due = [t for t in (self.next_delivery_ns(),
                               self._req[0][0] + self._lag_ns + MARGIN_NS if self._req else None) if t is not None]
            wait = max(0.0, min(due) - time.time_ns()) / 1e9 if due else 0.05
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait, 0.05))

    def _dispatch(self, item: Any) -> None:
        assert self.events is not None
        if isinstance(item, Outcome):
            entry = self._pending.pop(item.req_id, None) if item.req_id is not None else None
            if entry is not None and not entry[0].done():
                entry[0].set_result(item)
                return
        self.events.put_nowait(item)

    async def _call(self, req: WsRequest) -> Outcome:
        loop = asyncio.get_running_loop()
        req_id = self.request(req, time.time_ns())
        fut: asyncio.Future[Outcome] = loop.create_future()
        self._pending[req_id] = (fut, req)
        if self._wake is not None:
            self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.request_timeout_s)
        except asyncio.TimeoutError:
            self._pending.pop(req_id, None)
            return timeout_outcome(req, req_id)

    async def place(self, order: OrderRequest) -> Outcome:
        try:
            req = self.messages.add_order(order)
        except ValueError as exc:
            return Outcome(kind=OutcomeKind.NOT_SENT, method="add_order", cl_ord_id=order.cl_ord_id, error=str(exc))
        return await self._call(req)

    async def place_batch(self, orders: Sequence[OrderRequest]) -> Outcome:
        try:
            req = self.messages.batch_add(list(orders))
        except ValueError as exc:
            return Outcome(kind=OutcomeKind.NOT_SENT, method="batch_add", error=str(exc))
        return await self._call(req)

    async def amend(self, request: AmendRequest) -> Outcome:
        try:
            req = self.messages.amend_order(request)
        except ValueError as exc:
            return Outcome(kind=OutcomeKind.NOT_SENT, method="amend_order", error=str(exc))
        return await self._call(req)

    async def cancel(self, request: CancelRequest) -> Outcome:
        n = len(request.order_ids) + len(request.cl_ord_ids)
        if n == 0:
            return Outcome(kind=OutcomeKind.NOT_SENT, method="cancel_order", error="nothing to cancel")
        if n == 1:
            return await self._call(self.messages.cancel_order(request))
        return await self._call(self.messages.batch_cancel(request))

    async def cancel_all(self) -> Outcome:
        return await self._call(self.messages.cancel_all())

    async def snapshot(self) -> VenueSnapshot:
        now = time.time_ns()
        self.snapshot_frames(now)
        if self._wake is not None:
            self._wake.set()
        a = self.account
        execs = self.parser.on_message(orjson.dumps({"channel": "executions", "type": "snapshot",
                                                     "data": a.executions_snapshot(now, snap_trades=True)}), now)
        snap = next((x for x in execs if isinstance(x, ExecutionsSnapshot)), None)
        return VenueSnapshot(ts=now, open_orders=snap.orders if snap else (), fills=snap.fills if snap else (),
                             balances=dict(a.balances))

    async def next_event(self, timeout_s: Optional[float] = None) -> Optional[Any]:
        assert self.events is not None
        try:
            if timeout_s is None:
                return await self.events.get()
            return await asyncio.wait_for(self.events.get(), timeout_s)
        except asyncio.TimeoutError:
            return None

    def describe(self) -> dict[str, Any]:
        a = self.account
        return {"venue": self.name, "requests": self.requests, "entry_ms": self.entry_ns / 1e6,
                "response_ms": self.response_ns / 1e6, "latency_updates": self.latency_updates,
                "dead_man_refreshes": 0, "venue_fills": a.counts["fills"], "venue_open_orders": len(a.open_orders()),
                "venue_balances": dict(a.balances)}


__all__ = ["PaperVenue", "BalancesSnapshot"]
