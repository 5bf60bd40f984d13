"""The order supervisor: an order manager wired to a trading venue.

What the paper and live runners call. It sends commands through the venue, hands every reply and
every record of the venue's stream to the :class:`~mm_core.trading.orders.OrderManager`, and
reconciles when :class:`~mm_core.trading.reconcile.ReconcileSchedule` says so -- on start, after
each reconnect (the venue re-sends its snapshot in-stream), after a "maybe placed" reply, a lost
message or a balance difference to recheck, and every ``every_s``. Differences whose action is
``cancel`` (unknown orders, orders found after a restart with ``on_restart="cancel"``) are cancelled
here. Every difference is also kept in :attr:`OrderSupervisor.differences` and passed to
``on_difference`` (the incident hook of issue 11).

Single task: nothing here is thread-safe; run it on one asyncio loop. The manager's journal
writes happen on its own writer thread.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Optional

from mm_core.events import Connected, Disconnected
from mm_core.trading.orders import LocalOrder, OrderManager
from mm_core.trading.reconcile import ReconcileSchedule
from mm_core.trading.records import (BalancesSnapshot, CancelRequest, Difference, ExecutionsSnapshot,
                                     Outcome, OutcomeKind)
from mm_core.trading.venue import TradingVenue

_S = 1_000_000_000


class OrderSupervisor:
    """Commands out, executions in, reconciliation on schedule (see the module doc)."""

    def __init__(self, manager: OrderManager, venue: TradingVenue, *,
                 schedule: Optional[ReconcileSchedule] = None, snapshot_timeout_s: float = 10.0,
                 on_difference: Optional[Callable[[Difference], None]] = None,
                 on_record: Optional[Callable[[Any], None]] = None,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.manager = manager
        self.venue = venue
        self.schedule = schedule or ReconcileSchedule()
        self.snapshot_timeout_s = snapshot_timeout_s
        self.on_difference = on_difference
        self.on_record = on_record
        self.clock_ns = clock_ns
        self.differences: list[Difference] = []
        self.reconciliations: list[str] = []
        self._exec_snaps = 0
        self._bal_snaps = 0
        self._to_cancel: list[str] = []
        self.connects = 0
        self.disconnects = 0

    def __repr__(self) -> str:
        return f"OrderSupervisor(manager={self.manager!r}, venue={self.venue!r})"

    # ------------------------------------------------------------------ lifecycle

    async def start(self, timeout_s: float = 30.0) -> None:
        """Start the venue and wait for the first reconciliation (baseline on a first start)."""
        await self.venue.start()
        deadline = time.monotonic() + timeout_s
        while not self.manager.ready or self._bal_snaps == 0:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the venue sent no snapshot to reconcile with")
            await self._handle_next(min(left, 1.0))
        await self._run_cancels()
        self.reconciliations.append("start")
        self.schedule.done(self.clock_ns())

    async def close(self, *, cancel_open: bool = True, wait_s: float = 10.0) -> None:
        """Cancel everything (and wait for the confirmations), then close venue and journal."""
        try:
            if cancel_open and self.manager.open_orders():
                await self.venue.cancel_all()
                deadline = time.monotonic() + wait_s
                while any(o.state != "sent" for o in self.manager.open_orders()):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    await self._handle_next(min(left, 0.5))
        finally:
            await self.venue.close()
            self.manager.close()

    # ------------------------------------------------------------------ commands

    async def place(self, side: str, qty: float, price: float, **kw: Any) -> tuple[LocalOrder, Outcome]:
        req = self.manager.new_order(side, qty, price, **kw)
        out = await self.venue.place(req)
        self._after_outcome(out, req.cl_ord_id)
        return self.manager.order(req.cl_ord_id), out

    async def place_batch(self, orders: Iterable[tuple[str, float, float]], **kw: Any) -> Outcome:
        reqs = [self.manager.new_order(s, q, p, **kw) for s, q, p in orders]
        out = await self.venue.place_batch(reqs)
        if out.rows:
            self.manager.on_outcome(out)
        else:  # the whole batch failed (or timed out): every order shares the outcome
            for r in reqs:
                self.manager.on_outcome(Outcome(kind=out.kind, method="add_order", cl_ord_id=r.cl_ord_id,
                                                error=out.error))
        self._after_needs()
        return out

    async def amend(self, cl_ord_id: str, *, price: Optional[float] = None, qty: Optional[float] = None) -> Outcome:
        out = await self.venue.amend(self.manager.amend_request(cl_ord_id, price=price, qty=qty))
        self._after_outcome(out, None)
        return out

    async def cancel(self, cl_ord_ids: Iterable[str]) -> Outcome:
        keys = list(cl_ord_ids)
        with_oid = [k for k in keys if self.manager.order(k).order_id]
        without = [k for k in keys if not self.manager.order(k).order_id]
        out: Optional[Outcome] = None
        for group in (with_oid, without):
            if group:
                out = await self.venue.cancel(self.manager.cancel_request(group))
                self._after_outcome(out, None)
        return out or Outcome(kind=OutcomeKind.NOT_SENT, method="cancel_order", error="nothing to cancel")

    async def cancel_all(self) -> Outcome:
        out = await self.venue.cancel_all()
        self._after_outcome(out, None)
        return out

    def _after_outcome(self, out: Outcome, cl_ord_id: Optional[str]) -> None:
        self.manager.on_outcome(out, cl_ord_id)
        self._after_needs()

    def _after_needs(self) -> None:
        reason = self.manager.needs_reconcile
        if reason:
            delay = self.schedule.recheck_s if reason == "balance_recheck" else 0.0
            self.schedule.request(reason, self.clock_ns(), delay)

    # ------------------------------------------------------------------ the stream

    async def pump(self, seconds: float) -> int:
        """Handle the venue's stream for ``seconds``, reconciling whenever due; returns records handled."""
        deadline = time.monotonic() + seconds
        handled = 0
        while True:
            now = self.clock_ns()
            reason = self.schedule.next_reason(now)
            if reason is not None and self.manager.ready:
                await self.reconcile(reason)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return handled
            if reason is not None:  # due, but the manager has no baseline yet: its snapshot is coming
                wait = min(left, 0.05)
            else:
                wait = min(left, max(0.0, (self.schedule.next_due_ns(now) - now) / _S))
            if await self._handle_next(max(wait, 0.001)):
                handled += 1

    async def reconcile(self, reason: str = "requested") -> list[Difference]:
        """Ask the venue for a snapshot and reconcile with it where it lands in the stream."""
        before = len(self.differences)
        target_e, target_b = self._exec_snaps + 1, self._bal_snaps + 1
        now = self.clock_ns()
        try:
            await self.venue.snapshot()
        except Exception:
            self.schedule.request(reason, now, self.schedule.recheck_s)  # try again shortly
            return []
        deadline = time.monotonic() + self.snapshot_timeout_s
        while self._exec_snaps < target_e or self._bal_snaps < target_b:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await self._handle_next(min(left, 0.5))
        self.reconciliations.append(reason)
        self.schedule.done(now)
        self.schedule.due.pop(reason, None)
        self._after_needs()
        await self._run_cancels()
        return self.differences[before:]

    async def _handle_next(self, timeout_s: float) -> bool:
        item = await self.venue.next_event(timeout_s)
        if item is None:
            return False
        self.handle(item)
        await self._run_cancels()
        return True

    def handle(self, item: Any) -> list[Difference]:
        """One record of the venue's stream (public so tests can feed hand-built streams)."""
        if isinstance(item, ExecutionsSnapshot):
            self._exec_snaps += 1
        elif isinstance(item, BalancesSnapshot):
            self._bal_snaps += 1
        elif isinstance(item, Connected):
            self.connects += 1
        elif isinstance(item, Disconnected):
            self.disconnects += 1
        diffs = self.manager.on_record(item)
        if self.on_record is not None:
            self.on_record(item)
        for d in diffs:
            self.differences.append(d)
            if d.action == "cancel":
                self._to_cancel.append(d.ref)
            if self.on_difference is not None:
                self.on_difference(d)
        self._after_needs()
        return diffs

    async def _run_cancels(self) -> None:
        while self._to_cancel:
            batch, self._to_cancel = self._to_cancel[:50], self._to_cancel[50:]
            out = await self.venue.cancel(CancelRequest(order_ids=tuple(dict.fromkeys(batch))))
            self.manager.on_outcome(out)

    def describe(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for d in self.differences:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1
        return {**self.manager.describe(), **self.venue.describe(),
                "reconciliations": len(self.reconciliations), "reconcile_differences": len(self.differences),
                "differences_by_kind": kinds}
