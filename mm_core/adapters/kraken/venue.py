"""Kraken as a :class:`mm_core.trading.venue.TradingVenue`: the private client behind the seam.

Puts the pieces of this package together -- :class:`~.private_session.KrakenPrivateSession`
(socket, token, request/reply, reconnect), :class:`~.trading.KrakenTradingMessages` (requests),
:class:`~.deadman.DeadMansSwitch` (kept armed by a background task) -- and speaks only
:mod:`mm_core.trading.records` to the caller.

Kraken details handled here so the order manager never sees them:

* a cancel of one order is ``cancel_order``; of 2..50 orders ``batch_cancel`` (one reply with a
  count, where ``cancel_order`` with a list would answer once per order); more are split;
  Kraken cannot mix ``order_id`` and ``cl_ord_id`` in one ``cancel_order``;
* the dead man's switch is armed when the venue starts, refreshed every ``refresh_s``, disarmed
  around scheduled maintenance (:meth:`KrakenVenue.schedule_maintenance`) and on a clean close;
  if a refresh does not land before the exchange's countdown could have run out, a
  :class:`~mm_core.trading.records.SequenceGap` on channel ``dead_man`` is put into the stream so
  the order manager reconciles (every order may have been cancelled);
* :meth:`snapshot` re-subscribes ``executions`` (open orders + last 50 fills) and ``balances``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from mm_core.adapters.kraken.auth import NonceSource
from mm_core.adapters.kraken.credentials import ApiCredentials
from mm_core.adapters.kraken.deadman import DeadMansSwitch
from mm_core.adapters.kraken.private_session import KrakenPrivateSession
from mm_core.adapters.kraken.rest import REST_BASE, KrakenRestClient, TokenSource
from mm_core.adapters.kraken.trading import (BATCH_CANCEL_MAX, PRIVATE_URL, KrakenTradingMessages,
                                             deadline_problem)
from mm_core.trading.records import (AmendRequest, CancelRequest, OrderRequest, Outcome, OutcomeKind,
                                     SequenceGap, VenueSnapshot)

_S = 1_000_000_000


class KrakenVenue:
    """Kraken spot over WS v2, behind the trading venue seam."""

    name = "kraken"

    def __init__(self, session: KrakenPrivateSession, *, deadman: Optional[DeadMansSwitch] = None,
                 clock_ns: Callable[[], int] = time.time_ns, rest: Optional[KrakenRestClient] = None) -> None:
        self.session = session
        self.messages: KrakenTradingMessages = session.messages
        self.deadman = deadman
        self.clock_ns = clock_ns
        self.rest = rest
        self._deadman_task: Optional[asyncio.Task[None]] = None
        self._closing = False
        self.requests = 0

    def __repr__(self) -> str:
        return f"KrakenVenue(session={self.session!r})"

    @classmethod
    def connect(cls, credentials: ApiCredentials, *, symbol: str = "BTC/EUR", nonce_file: Optional[Path] = None,
                nonce_unit: str = "ms", ws_url: str = PRIVATE_URL, rest_url: str = REST_BASE,
                deadman: Optional[DeadMansSwitch] = None, **session_kw: Any) -> "KrakenVenue":
        """A venue for these credentials (nothing is sent until :meth:`start`)."""
        rest = KrakenRestClient(credentials, NonceSource(nonce_file, unit=nonce_unit), base_url=rest_url)
        session = KrakenPrivateSession(ws_url, TokenSource(rest), symbol=symbol, **session_kw)
        return cls(session, deadman=deadman if deadman is not None else DeadMansSwitch(), rest=rest)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.session.start()
        if self.deadman is not None:
            self.deadman.start()
            self._deadman_task = asyncio.get_running_loop().create_task(self._keep_deadman(), name="dead-man")
            await self._deadman_step()  # armed before the first order can be placed

    async def close(self) -> None:
        self._closing = True
        if self.deadman is not None:
            self.deadman.stop()
            if self.session.connected:
                with contextlib.suppress(Exception):
                    await self._deadman_step()
        if self._deadman_task is not None:
            self._deadman_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._deadman_task
        await self.session.close()
        if self.rest is not None:
            await self.rest.close()

    def schedule_maintenance(self, start_ns: int, end_ns: int) -> None:
        if self.deadman is not None:
            self.deadman.schedule_maintenance(start_ns, end_ns)

    # ------------------------------------------------------------------ requests

    async def _request(self, req: Any) -> Outcome:
        self.requests += 1
        return await self.session.request(req)

    async def place(self, order: OrderRequest) -> Outcome:
        if order.deadline_ns is not None:
            problem = deadline_problem(order.deadline_ns, self.clock_ns())
            if problem:
                return Outcome(kind=OutcomeKind.NOT_SENT, method="add_order", cl_ord_id=order.cl_ord_id, error=problem)
        try:
            req = self.messages.add_order(order)
        except ValueError as exc:
            return Outcome(kind=OutcomeKind.NOT_SENT, method="add_order", cl_ord_id=order.cl_ord_id, error=str(exc))
        return await self._request(req)

    async def place_batch(self, orders: Sequence[OrderRequest]) -> Outcome:
        try:
            req = self.messages.batch_add(list(orders))
        except ValueError as exc:
            return Outcome(kind=OutcomeKind.NOT_SENT, method="batch_add", error=str(exc))
        return await self._request(req)

    async def amend(self, request: AmendRequest) -> Outcome:
        try:
            req = self.messages.amend_order(request)
        except ValueError as exc:
            return Outcome(kind=OutcomeKind.NOT_SENT, method="amend_order", error=str(exc))
        return await self._request(req)

    async def cancel(self, request: CancelRequest) -> Outcome:
        ids = [("o", i) for i in request.order_ids] + [("c", i) for i in request.cl_ord_ids]
        if not ids:
            return Outcome(kind=OutcomeKind.NOT_SENT, method="cancel_order", error="nothing to cancel")
        if len(ids) == 1:
            kind, ident = ids[0]
            cr = CancelRequest(order_ids=(ident,)) if kind == "o" else CancelRequest(cl_ord_ids=(ident,))
            return await self._request(self.messages.cancel_order(cr))
        total = 0
        last: Optional[Outcome] = None
        for i in range(0, len(ids), BATCH_CANCEL_MAX):
            chunk = ids[i:i + BATCH_CANCEL_MAX]
            if len(chunk) == 1:  # batch_cancel needs at least two ids
                out = await self.cancel(CancelRequest(order_ids=(chunk[0][1],)) if chunk[0][0] == "o"
                                        else CancelRequest(cl_ord_ids=(chunk[0][1],)))
            else:
                out = await self._request(self.messages.batch_cancel(CancelRequest(
                    order_ids=tuple(x for k, x in chunk if k == "o"),
                    cl_ord_ids=tuple(x for k, x in chunk if k == "c"))))
            if not out.ok:
                return out
            total += out.count or 0
            last = out
        assert last is not None
        return Outcome(kind=last.kind, method="batch_cancel", count=total, time_in_ns=last.time_in_ns,
                       time_out_ns=last.time_out_ns)

    async def cancel_all(self) -> Outcome:
        return await self._request(self.messages.cancel_all())

    async def snapshot(self) -> VenueSnapshot:
        execs, bals = await self.session.resubscribe()
        open_orders = tuple(u for u in execs.orders if u.status in (None, "pending_new", "new", "partially_filled"))
        return VenueSnapshot(ts=execs.ts_capture, open_orders=open_orders, fills=execs.fills,
                             balances=dict(bals.balances) if bals is not None else {})

    async def next_event(self, timeout_s: Optional[float] = None) -> Optional[Any]:
        try:
            if timeout_s is None:
                return await self.session.events.get()
            return await asyncio.wait_for(self.session.events.get(), timeout_s)
        except TimeoutError:
            return None

    def describe(self) -> dict[str, Any]:
        s = self.session
        out: dict[str, Any] = {"venue": self.name, "connects": s.connects, "disconnects": s.disconnects,
                               "request_timeouts": s.timeouts, "token_refreshes": s.token_refreshes,
                               "late_replies": s.late_replies, "requests": self.requests}
        if self.deadman is not None:
            d = self.deadman.describe()
            out.update({"dead_man_arms": d["arms"], "dead_man_refreshes": d["refreshes"],
                        "dead_man_disarms": d["disarms"], "dead_man_failures": d["failures"]})
        return out

    # ------------------------------------------------------------------ dead man's switch

    async def _deadman_step(self) -> None:
        dm = self.deadman
        assert dm is not None
        now = self.clock_ns()
        if dm.fired(now):
            dm.acknowledge_fired()
            self.session.events.put_nowait(SequenceGap(exchange=self.name, symbol=self.session.symbol,
                                                       ts_exchange=None, ts_capture=now, channel="dead_man",
                                                       expected=0, got=1))
        timeout = dm.next_action(now)
        if timeout is None or not self.session.connected:
            return
        dm.on_sent(now, timeout)
        out = await self.session.request(self.messages.cancel_all_orders_after(timeout))
        if out.kind in (OutcomeKind.TIMEOUT, OutcomeKind.NOT_SENT):
            dm.on_disconnect()
        else:
            dm.on_reply(self.clock_ns(), out.ok, out.trigger_time_ns)

    async def _keep_deadman(self) -> None:
        dm = self.deadman
        assert dm is not None
        while not self._closing:
            try:
                await self._deadman_step()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the keeper die: the next step retries
                pass
            now = self.clock_ns()
            await asyncio.sleep(min(1.0, max(0.05, (dm.next_due_ns(now) - now) / _S)))
