"""The order manager: our book of orders, fills, position and cash, rebuilt from a journal.

Rules it keeps (each one has a test):

* **Executions drive orders.** An order that exists at the venue changes state only on the
  venue's execution messages (:class:`~mm_core.trading.records.OrderUpdate`, :class:`Fill`):
  ``pending_new -> new -> partially_filled -> filled | canceled | expired``. A request's reply only
  settles whether the order came to exist: a definite refusal makes the ``sent`` order
  ``rejected``; a timeout or unknown error leaves it ``sent`` and asks for reconciliation
  ("maybe placed"). Executions for an order we had given up on (``rejected``/``lost``) revive it:
  the venue is right.
* **Never backwards, never twice.** States only move forward in rank (a late ``new`` after
  ``partially_filled`` is ignored); an amend older than the last update applied (by the channel's
  ``sequence``) does not overwrite a newer price; a fill is counted once per ``exec_id`` however
  often it is delivered. A fill may arrive after its order's ``canceled`` (reordering): it still
  counts.
* **Position and cash from fills.** Expected balances start from the venue's balances (the
  *baseline*, taken once at the first start) and move with every fill: base ``+= side * qty``,
  quote ``-= side * cost``, fees off the asset they were charged in. ``position`` is the expected
  base balance, ``cash`` the expected quote balance -- what the exchange should show.
* **Fills for orders we never saw** (placed before a crash and never journaled, or by hand) are
  counted and the order is adopted, so the position still equals the exchange's.
* **Journal.** Every change is journaled as a small primitive (order upsert, fill, seen ids,
  balances, difference) through :mod:`.journal` (writer thread, fsync off the hot path);
  :meth:`OrderManager.open` replays it, then opens a new epoch (fsync'd) so client order ids never
  repeat. Reconciliation with the venue (:mod:`.reconcile`) covers whatever the journal lost.

The manager is synchronous and does no I/O besides the journal; :mod:`.supervisor` connects it to
a venue.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from mm_core.trading.clordid import ClOrdIds
from mm_core.trading.journal import Journal
from mm_core.trading.records import (CANCELED, EXPIRED, FILLED, LOST, NEW, OPEN_STATES, PARTIALLY_FILLED,
                                     PENDING_NEW, REJECTED, SENT, STATE_RANK, TERMINAL_STATES, AmendRequest,
                                     BalancesSnapshot, BalanceUpdate, CancelRequest, Difference,
                                     ExecutionsSnapshot, Fill, OrderRequest, OrderUpdate, Outcome,
                                     OutcomeKind, RateCount, SequenceGap, record_from_dict, record_to_dict)

VALIDATED = "validated"  # a validate-only order the venue accepted: it never reaches the book
REVIVABLE = frozenset({REJECTED, LOST})
EXEC_TYPE_STATE = {"pending_new": PENDING_NEW, "new": NEW, "canceled": CANCELED, "expired": EXPIRED,
                   "filled": FILLED}
STATUS_STATE = {PENDING_NEW: PENDING_NEW, NEW: NEW, PARTIALLY_FILLED: PARTIALLY_FILLED, FILLED: FILLED,
                CANCELED: CANCELED, EXPIRED: EXPIRED}
QTY_EPS = 1e-12
RESTART_POLICIES = ("cancel", "adopt")


def _rank(state: str) -> int:
    return STATE_RANK.get(state, 4)


@dataclass
class LocalOrder:
    """What we know about one order (keyed by ``cl_ord_id``; adopted foreign orders by ``oid:<id>``)."""

    cl_ord_id: str
    symbol: str
    side: str
    qty: float
    price: float
    post_only: bool = True
    state: str = SENT
    order_id: Optional[str] = None
    filled: float = 0.0  # from the fills we counted
    venue_cum_qty: Optional[float] = None  # what the venue said
    fees: float = 0.0  # in the fee asset of its fills
    created_ns: int = 0
    updated_ns: int = 0
    done_ns: Optional[int] = None
    last_seq: int = -1
    adopted: bool = False
    validate: bool = False
    reason: str = ""
    outcome: str = ""  # kind of the last reply to a request about it

    @property
    def leaves(self) -> float:
        return max(0.0, self.qty - self.filled)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: its deep copy costs ~60 us per order on the fill path
        return {name: getattr(self, name) for name in _ORDER_FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LocalOrder":
        return cls(**{k: v for k, v in d.items() if k in _ORDER_FIELD_SET})


_ORDER_FIELDS = tuple(f.name for f in fields(LocalOrder))
_ORDER_FIELD_SET = frozenset(_ORDER_FIELDS)


@dataclass
class ManagerCounters:
    duplicate_fills: int = 0
    stale_updates: int = 0
    other_symbol: int = 0
    unknown_order_fills: int = 0
    maybe_placed: int = 0
    rejected: int = 0
    post_only_cancels: int = 0
    by_kind: Counter = field(default_factory=Counter)


class OrderManager:
    """Local order book, fills, position and cash for one symbol (see the module doc)."""

    def __init__(self, *, symbol: str, base: str, quote: str, exchange: str = "kraken",
                 journal: Optional[Journal] = None, id_prefix: str = "mm", on_restart: str = "cancel",
                 unknown_orders: str = "cancel", base_tolerance: float = 1e-8, quote_tolerance: float = 0.01,
                 balance_confirmations: int = 2, sent_grace_s: float = 10.0,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        for name, value in (("on_restart", on_restart), ("unknown_orders", unknown_orders)):
            if value not in RESTART_POLICIES:
                raise ValueError(f"{name} must be one of {', '.join(RESTART_POLICIES)}, not {value!r}")
        self.symbol, self.base, self.quote, self.exchange = symbol, base, quote, exchange
        self.journal = journal
        self.id_prefix = id_prefix
        self.on_restart = on_restart
        self.unknown_orders = unknown_orders
        self.tolerance = {base: base_tolerance, quote: quote_tolerance}
        self.balance_confirmations = max(1, balance_confirmations)
        self.sent_grace_ns = int(sent_grace_s * 1e9)
        self.clock_ns = clock_ns
        self.orders: dict[str, LocalOrder] = {}
        self._by_oid: dict[str, str] = {}
        self.seen_exec: set[str] = set()
        self.fills: list[Fill] = []
        self.balances: dict[str, float] = {}
        self.venue_balances: dict[str, float] = {}
        self.baseline_ns: Optional[int] = None
        self.fees_paid: dict[str, float] = {}
        self.differences: list[Difference] = []
        self.counters = ManagerCounters()
        self.epoch = 0
        self.ids = ClOrdIds(id_prefix, 0)
        self.restarted = False
        self.snapshots_seen = 0
        self.needs_reconcile: Optional[str] = None
        self.balance_suspect: Optional[tuple] = None
        self.rate_count: Optional[RateCount] = None
        self._replaying = False

    def __repr__(self) -> str:
        return (f"OrderManager(symbol={self.symbol!r}, epoch={self.epoch}, orders={len(self.orders)}, "
                f"open={len(self.open_orders())}, fills={len(self.fills)}, position={self.position!r})")

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, journal_path: Path, *, compact_over_bytes: int = 256 * 2**20, **kwargs: Any) -> "OrderManager":
        """Replay the journal at ``journal_path`` (if any), compact it when it has grown past
        ``compact_over_bytes``, and start a new epoch (fsync'd before any id of it is used)."""
        journal = Journal(Path(journal_path))
        m = cls(journal=journal, **kwargs)
        m._replaying = True
        try:
            for rec in journal.replayed:
                m._apply(rec)
        finally:
            m._replaying = False
        journal.replayed = []
        m.restarted = bool(m.orders or m.baseline_ns is not None)
        if journal.size_bytes > compact_over_bytes:
            m.compact()
        m._op({"op": "epoch", "epoch": m.epoch + 1, "ts": m.clock_ns()})
        if not journal.flush():
            raise RuntimeError(f"journal {journal_path} could not be synced; refusing to hand out order ids")
        return m

    def compact(self, *, keep_closed_s: float = 86400.0, keep_differences: int = 1000) -> int:
        """Rewrite the journal as the records that rebuild today's state; returns records written.

        Kept: the epoch, the expected balances (with the baseline time), every exec_id already
        counted (so a fill the venue lists again is never counted twice), open orders, orders closed
        within ``keep_closed_s``, the last ``keep_differences`` differences. Dropped: the fill history
        (it is in the fills table the runner writes) and older closed orders. Call it at a safe point
        (nothing in flight); :meth:`open` calls it when the journal is large.
        """
        if self.journal is None:
            return 0
        now = self.clock_ns()
        recs: list[dict[str, Any]] = [{"op": "epoch", "epoch": self.epoch, "ts": now}]
        if self.baseline_ns is not None:
            recs.append({"op": "balances", "b": dict(self.balances), "why": "baseline", "ts": self.baseline_ns})
        if self.seen_exec:
            recs.append({"op": "seen", "ids": sorted(self.seen_exec)})
        horizon = now - int(keep_closed_s * 1e9)
        for o in self.orders.values():
            if o.is_open or (o.done_ns or o.updated_ns) >= horizon:
                recs.append({"op": "order", "o": o.to_dict()})
        recs.extend({"op": "diff", "d": record_to_dict(d)} for d in self.differences[-keep_differences:])
        self.journal.replace_with(recs)
        return len(recs)

    @property
    def journal_bad_lines(self) -> int:
        return 0 if self.journal is None else self.journal.bad_lines + (1 if self.journal.torn_tail_bytes else 0)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()

    # ------------------------------------------------------------------ primitives (journaled)

    def _op(self, rec: dict[str, Any]) -> None:
        self._apply(rec)
        if self.journal is not None and not self._replaying:
            self.journal.append(rec)

    def _apply(self, rec: dict[str, Any]) -> None:
        op = rec.get("op")
        if op == "order":
            o = LocalOrder.from_dict(rec["o"])
            self.orders[o.cl_ord_id] = o
            if o.order_id:
                self._by_oid[o.order_id] = o.cl_ord_id
        elif op == "fill":
            self._apply_fill(record_from_dict(rec["f"]))  # type: ignore[arg-type]
        elif op == "seen":
            self.seen_exec.update(rec["ids"])
        elif op == "balances":
            self.balances = {k: float(v) for k, v in rec["b"].items()}
            if rec.get("why") == "baseline":
                self.baseline_ns = int(rec["ts"])
        elif op == "epoch":
            self.epoch = max(self.epoch, int(rec["epoch"]))
            self.ids = ClOrdIds(self.id_prefix, self.epoch)
        elif op == "diff":
            self.differences.append(record_from_dict(rec["d"]))  # type: ignore[arg-type]
        elif op == "outcome":
            self.counters.by_kind[rec.get("kind", "?")] += 1

    def _apply_fill(self, f: Fill) -> None:
        """A fill's effects: counted once, on the order, the balances and the fees (also on replay,
        so a fill whose following order record was torn off the journal is still on its order)."""
        self.seen_exec.add(f.exec_id)
        self.fills.append(f)
        o = self.find(f.order_id, f.cl_ord_id)
        if o is not None:
            o.filled += f.qty
            o.fees += f.fee
            if f.cum_qty is not None:
                o.venue_cum_qty = max(o.venue_cum_qty or 0.0, f.cum_qty)
        b = self.balances
        b[self.base] = b.get(self.base, 0.0) + f.side * f.qty
        cost = f.cost if f.cost is not None else f.qty * f.price
        b[self.quote] = b.get(self.quote, 0.0) - f.side * cost
        for asset, fee in (f.fees or ((f.fee_asset, f.fee),)):
            if not fee:
                continue
            self.fees_paid[asset] = self.fees_paid.get(asset, 0.0) + fee
            if asset in (self.base, self.quote):
                b[asset] = b.get(asset, 0.0) - fee

    def _save(self, o: LocalOrder) -> None:
        """Journal an order's current state (the object itself is the live copy: no re-apply)."""
        o.updated_ns = self.clock_ns()
        self.orders[o.cl_ord_id] = o
        if o.order_id:
            self._by_oid[o.order_id] = o.cl_ord_id
        if self.journal is not None and not self._replaying:
            self.journal.append({"op": "order", "o": o.to_dict()})

    def record_difference(self, d: Difference) -> Difference:
        self._op({"op": "diff", "d": record_to_dict(d)})
        return d

    def set_balances(self, balances: dict[str, float], why: str, ts: Optional[int] = None) -> None:
        self._op({"op": "balances", "b": dict(balances), "why": why, "ts": ts or self.clock_ns()})

    def mark_seen(self, exec_ids: Iterable[str]) -> None:
        ids = [e for e in exec_ids if e not in self.seen_exec]
        if ids:
            self._op({"op": "seen", "ids": ids})

    # ------------------------------------------------------------------ state

    @property
    def position(self) -> float:
        """Expected base balance (what the exchange should show)."""
        return self.balances.get(self.base, 0.0)

    @property
    def cash(self) -> float:
        return self.balances.get(self.quote, 0.0)

    @property
    def ready(self) -> bool:
        """True once a baseline exists and the venue's snapshot was reconciled in this process."""
        return self.baseline_ns is not None and self.snapshots_seen > 0

    def open_orders(self) -> list[LocalOrder]:
        return [o for o in self.orders.values() if o.is_open]

    def order(self, cl_ord_id: str) -> LocalOrder:
        return self.orders[cl_ord_id]

    def find(self, order_id: Optional[str], cl_ord_id: Optional[str]) -> Optional[LocalOrder]:
        key = self._by_oid.get(order_id) if order_id else None
        if key is None and cl_ord_id:
            key = cl_ord_id if cl_ord_id in self.orders else None
        return self.orders.get(key) if key is not None else None

    def describe(self) -> dict[str, Any]:
        states = Counter(o.state for o in self.orders.values())
        return {"epoch": self.epoch, "orders": len(self.orders), "open_orders": len(self.open_orders()),
                "states": dict(states), "fills": len(self.fills), "position": self.position, "cash": self.cash,
                "fees_paid": dict(self.fees_paid), "differences": len(self.differences),
                "duplicate_fills": self.counters.duplicate_fills,
                "unknown_order_fills": self.counters.unknown_order_fills,
                "maybe_placed": self.counters.maybe_placed, "rejected": self.counters.rejected,
                "post_only_cancels": self.counters.post_only_cancels,
                "journal_bad_lines": self.journal_bad_lines}

    # ------------------------------------------------------------------ commands

    def new_order(self, side: str, qty: float, price: float, *, post_only: bool = True,
                  time_in_force: str = "gtc", deadline_ns: Optional[int] = None,
                  validate: bool = False) -> OrderRequest:
        """A new order with a fresh ``cl_ord_id``, journaled as ``sent`` before it leaves."""
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be buy or sell, not {side!r}")
        cid = self.ids.next()
        now = self.clock_ns()
        self._save(LocalOrder(cl_ord_id=cid, symbol=self.symbol, side=side, qty=float(qty), price=float(price),
                              post_only=post_only, created_ns=now, validate=validate))
        return OrderRequest(symbol=self.symbol, side=side,  # type: ignore[arg-type]
                            qty=float(qty), price=float(price), cl_ord_id=cid,
                            post_only=post_only, time_in_force=time_in_force, deadline_ns=deadline_ns,
                            validate=validate)

    def amend_request(self, cl_ord_id: str, *, price: Optional[float] = None,
                      qty: Optional[float] = None) -> AmendRequest:
        """By the venue's order_id once known (works for adopted orders too), else by cl_ord_id."""
        o = self.orders[cl_ord_id]
        if o.order_id:
            return AmendRequest(symbol=self.symbol, order_id=o.order_id, price=price, qty=qty, post_only=o.post_only)
        return AmendRequest(symbol=self.symbol, cl_ord_id=cl_ord_id, price=price, qty=qty, post_only=o.post_only)

    def cancel_request(self, keys: Iterable[str]) -> CancelRequest:
        """Cancel by order_id where known (works for adopted orders too), else by cl_ord_id."""
        oids, cids = [], []
        for k in keys:
            o = self.orders[k]
            if o.order_id:
                oids.append(o.order_id)
            else:
                cids.append(o.cl_ord_id)
        if oids and cids:  # Kraken cannot mix them in one request; callers split (see supervisor)
            raise ValueError("cancel_request got orders with and without order_id; cancel them separately")
        return CancelRequest(order_ids=tuple(oids), cl_ord_ids=tuple(cids))

    # ------------------------------------------------------------------ replies

    def on_outcome(self, outcome: Outcome, cl_ord_id: Optional[str] = None) -> None:
        """The reply to one of our requests (or a late one). Settles ``sent`` orders only."""
        self._op({"op": "outcome", "kind": outcome.kind.value, "method": outcome.method,
                  "cl_ord_id": cl_ord_id or outcome.cl_ord_id, "order_id": outcome.order_id,
                  "error": outcome.error[:200]})
        if outcome.method == "batch_add" and outcome.rows:
            for row in outcome.rows:
                self._settle_add(row, row.cl_ord_id)
            return
        if outcome.method == "add_order" or (outcome.method == "batch_add" and cl_ord_id):
            self._settle_add(outcome, cl_ord_id or outcome.cl_ord_id)
            return
        if outcome.kind is OutcomeKind.UNKNOWN_ORDER or outcome.maybe_placed:
            # an amend/cancel of an order the venue does not have, or an unknown result: look
            self.needs_reconcile = self.needs_reconcile or f"{outcome.method}_{outcome.kind.value}"

    def _settle_add(self, outcome: Outcome, cl_ord_id: Optional[str]) -> None:
        o = self.orders.get(cl_ord_id) if cl_ord_id else None
        if o is None:
            return
        o.outcome = outcome.kind.value
        if outcome.ok:
            if o.validate:
                o.state, o.done_ns = VALIDATED, self.clock_ns()
            elif outcome.order_id and not o.order_id:
                o.order_id = outcome.order_id
                self._by_oid[o.order_id] = o.cl_ord_id
        elif outcome.maybe_placed:
            self.counters.maybe_placed += 1
            self.needs_reconcile = self.needs_reconcile or "maybe_placed"
        elif o.state == SENT:
            self.counters.rejected += 1
            o.state, o.done_ns, o.reason = REJECTED, self.clock_ns(), outcome.error[:200]
        self._save(o)

    # ------------------------------------------------------------------ executions

    def on_record(self, rec: Any) -> list[Difference]:
        """Feed one record from the venue's stream; returns the differences it caused (if any)."""
        if isinstance(rec, Fill):
            return self.on_fill(rec)
        if isinstance(rec, OrderUpdate):
            return self.on_update(rec)
        if isinstance(rec, ExecutionsSnapshot):
            from mm_core.trading.reconcile import reconcile_executions

            return reconcile_executions(self, rec)
        if isinstance(rec, BalancesSnapshot):
            from mm_core.trading.reconcile import reconcile_balances

            return reconcile_balances(self, rec)
        if isinstance(rec, BalanceUpdate):
            self.venue_balances[rec.asset] = rec.balance
        elif isinstance(rec, SequenceGap):
            if rec.lost:
                self.needs_reconcile = self.needs_reconcile or "sequence_gap"
        elif isinstance(rec, RateCount):
            self.rate_count = rec
        elif isinstance(rec, Outcome):
            self.on_outcome(rec)
        elif getattr(rec, "KIND", "") == "bad_message":
            self.needs_reconcile = self.needs_reconcile or "bad_message"
        return []

    def _ours(self, symbol: str) -> bool:
        return not symbol or symbol == self.symbol

    def on_update(self, u: OrderUpdate) -> list[Difference]:
        if not self._ours(u.symbol):
            self.counters.other_symbol += 1
            return []
        o = self.find(u.order_id, u.cl_ord_id)
        if o is None:
            from mm_core.trading.reconcile import unknown_order

            return unknown_order(self, u)
        stale = u.sequence is not None and u.sequence <= o.last_seq
        if stale:
            self.counters.stale_updates += 1
        if u.order_id and not o.order_id:
            o.order_id = u.order_id
            self._by_oid[u.order_id] = o.cl_ord_id
        if not stale and u.exec_type in ("amended", "restated"):
            if u.price is not None:
                o.price = u.price
            if u.qty is not None:
                o.qty = u.qty
        new_state = STATUS_STATE.get(u.status or "") or EXEC_TYPE_STATE.get(u.exec_type)
        if new_state == FILLED and o.filled + QTY_EPS < (u.cum_qty if u.cum_qty is not None else o.qty):
            # the venue says filled, our fills do not add up (yet): the trade may still be in flight
            self.needs_reconcile = self.needs_reconcile or "fill_missing"
        self._advance(o, new_state)
        if u.cum_qty is not None:
            o.venue_cum_qty = max(o.venue_cum_qty or 0.0, u.cum_qty)
        if u.reason:
            o.reason = u.reason[:200]
            if new_state == CANCELED and "post only" in u.reason.lower():
                self.counters.post_only_cancels += 1
        if u.sequence is not None:
            o.last_seq = max(o.last_seq, u.sequence)
        self._save(o)
        return []

    def _advance(self, o: LocalOrder, new_state: Optional[str]) -> None:
        if new_state is None or new_state == o.state:
            return
        if o.state in REVIVABLE or (o.state not in TERMINAL_STATES and o.state != VALIDATED
                                    and _rank(new_state) > _rank(o.state)):
            o.state = new_state
            if new_state in TERMINAL_STATES:
                o.done_ns = self.clock_ns()

    def on_fill(self, f: Fill, *, from_snapshot: bool = False) -> list[Difference]:
        if not self._ours(f.symbol):
            self.counters.other_symbol += 1
            return []
        if f.exec_id in self.seen_exec:
            self.counters.duplicate_fills += 1
            return []
        diffs: list[Difference] = []
        o = self.find(f.order_id, f.cl_ord_id)
        if o is None:
            from mm_core.trading.reconcile import adopt_from_fill

            o, d = adopt_from_fill(self, f)
            diffs.append(d)
        if self.baseline_ns is None:
            # before the first balances snapshot the venue's balances will already include it
            self.mark_seen([f.exec_id])
            return diffs
        if o.order_id is None:
            o.order_id = f.order_id
            self._by_oid[f.order_id] = o.cl_ord_id
        self._apply_fill(f)  # on ``o`` too
        if self.journal is not None:
            self.journal.append({"op": "fill", "f": record_to_dict(f)})
        if o.filled + QTY_EPS >= o.qty:
            self._advance(o, FILLED)
        else:
            self._advance(o, PARTIALLY_FILLED)
        self._save(o)
        return diffs

