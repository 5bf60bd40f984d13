"""Reconciliation: compare the order manager's book with the venue's snapshot and fix ours.

When: on start, after every reconnect, after any "maybe placed" outcome, after a lost private
message (sequence gap, unreadable frame), and every N minutes (:class:`ReconcileSchedule`). What:
the venue's open orders, its recent fills and its balances (:class:`ExecutionsSnapshot`,
:class:`BalancesSnapshot`, delivered in the venue's event stream at the point where they were
taken, so they are compared with our book as it stood at that instant).

Every difference becomes a :class:`~mm_core.trading.records.Difference` -- kind, what we expected,
what the venue has, the action taken -- journaled and returned to the caller, which turns ``cancel``
actions into cancel requests and counts the rest (an incident, for issue 11's review):

==========================  ===============================================  =====================
kind                        meaning                                          action
==========================  ===============================================  =====================
missing_fill                the venue has a fill we never counted            apply_fill
unknown_order_fill          a fill for an order we never saw                 apply_fill (adopt)
unknown_open_order          an open order we do not know                     adopt | cancel
open_order_at_restart       an open order found after a restart              adopt | cancel
maybe_placed_found          an order whose request timed out is live         adopt
maybe_placed_absent         ... and it is not at the venue                   mark_lost
missing_open_order          we think it is open, the venue does not          close
order_mismatch              price/qty/state differ                           correct_order
balance_mismatch            expected balance differs from the venue's        recheck, then
                                                                             correct_position
==========================  ===============================================  =====================

Balances are checked twice before they are corrected: the executions and balances channels are
separate streams, so one snapshot can already include a fill whose execution message is still on
its way; a difference that is still there (the same amount) at the next check is real. On the very
first start (empty journal) the venue's balances become the baseline and the fills listed in its
snapshot are marked as seen (they are already in those balances).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from mm_core.trading.records import (CANCELED, FILLED, LOST, NEW, PARTIALLY_FILLED, PENDING_NEW, SENT,
                                     STATE_RANK, TERMINAL_STATES, BalancesSnapshot, Difference,
                                     ExecutionsSnapshot, Fill, OrderUpdate)

if TYPE_CHECKING:
    from mm_core.trading.orders import LocalOrder, OrderManager

VENUE_OPEN = frozenset({PENDING_NEW, NEW, PARTIALLY_FILLED})
_S = 1_000_000_000


def _diff(m: "OrderManager", kind: str, ref: str, expected: str, actual: str, action: str,
          reason: str = "") -> Difference:
    return m.record_difference(Difference(exchange=m.exchange, symbol=m.symbol, ts_exchange=None,
                                          ts_capture=m.clock_ns(), kind=kind, ref=ref, expected=expected,
                                          actual=actual, action=action, reason=reason))


def _fmt(o: "LocalOrder | OrderUpdate") -> str:
    price = o.price
    qty = o.qty
    state = getattr(o, "state", None) or getattr(o, "status", None) or getattr(o, "exec_type", "")
    return f"{o.side} {qty}@{price} {state}"


def _venue_state(u: OrderUpdate) -> str:
    if u.status in VENUE_OPEN:
        return str(u.status)
    if u.cum_qty:
        return PARTIALLY_FILLED
    return NEW


def _adopt(m: "OrderManager", u: OrderUpdate) -> "LocalOrder":
    from mm_core.trading.orders import LocalOrder

    key = u.cl_ord_id or f"oid:{u.order_id}"
    o = LocalOrder(cl_ord_id=key, symbol=u.symbol or m.symbol, side=u.side or "?", qty=float(u.qty or 0.0),
                   price=float(u.price or 0.0), post_only=bool(u.post_only) if u.post_only is not None else True,
                   state=_venue_state(u), order_id=u.order_id, venue_cum_qty=u.cum_qty, created_ns=m.clock_ns(),
                   adopted=True, last_seq=u.sequence if u.sequence is not None else -1)
    m._by_oid[u.order_id] = key
    m._save(o)
    return o


def unknown_order(m: "OrderManager", u: OrderUpdate) -> list[Difference]:
    """An execution update for an order we do not know (placed before a crash, or by hand)."""
    if u.status in (CANCELED, FILLED, "expired") or u.exec_type in ("canceled", "expired", "filled"):
        # a closed order we never knew: nothing to manage (its fills, if any, come as fills)
        return []
    ours = m.ids.is_ours(u.cl_ord_id)
    o = _adopt(m, u)
    action = "adopt" if ours else m.unknown_orders
    return [_diff(m, "unknown_open_order", o.order_id or o.cl_ord_id, "absent", _fmt(u), action,
                  "our cl_ord_id (not in the journal)" if ours else "not placed by this manager")]


def adopt_from_fill(m: "OrderManager", f: Fill) -> tuple["LocalOrder", Difference]:
    from mm_core.trading.orders import LocalOrder

    m.counters.unknown_order_fills += 1
    key = f.cl_ord_id or f"oid:{f.order_id}"
    o = LocalOrder(cl_ord_id=key, symbol=f.symbol or m.symbol, side="buy" if f.side > 0 else "sell",
                   qty=float(f.cum_qty or f.qty), price=f.price, state=PARTIALLY_FILLED, order_id=f.order_id,
                   created_ns=m.clock_ns(), adopted=True)
    m._by_oid[f.order_id] = key
    m._save(o)
    d = _diff(m, "unknown_order_fill", f.exec_id, "no such order",
              f"{'buy' if f.side > 0 else 'sell'} {f.qty}@{f.price} order {f.order_id}", "apply_fill")
    return o, d


def reconcile_executions(m: "OrderManager", snap: ExecutionsSnapshot) -> list[Difference]:
    """Compare the venue's open orders and recent fills with ours; fix ours; say what differed."""
    first_ever = m.baseline_ns is None and not m.restarted
    restart = m.restarted and m.snapshots_seen == 0
    m.snapshots_seen += 1
    # a (re)subscription restarts the channel's sequence numbers: older numbers mean nothing now
    for o in m.orders.values():
        o.last_seq = snap.sequence if snap.sequence is not None else -1
    diffs: list[Difference] = []
    fills = [f for f in snap.fills if m._ours(f.symbol)]
    # 1. fills the venue has and we do not
    if first_ever:
        m.mark_seen(f.exec_id for f in fills)  # already inside the balances that become the baseline
    else:
        for f in sorted(fills, key=lambda f: (f.ts_exchange or 0, f.exec_id)):
            if f.exec_id in m.seen_exec:
                continue
            if m.baseline_ns is not None and f.ts_exchange is not None and f.ts_exchange < m.baseline_ns:
                m.mark_seen([f.exec_id])
                continue
            known = m.find(f.order_id, f.cl_ord_id) is not None
            if known:
                diffs.append(_diff(m, "missing_fill", f.exec_id, "not counted",
                                   f"{'buy' if f.side > 0 else 'sell'} {f.qty}@{f.price} order {f.order_id}",
                                   "apply_fill"))
            diffs.extend(m.on_fill(f, from_snapshot=True))
    # 2. the venue's open orders
    venue_open = [u for u in snap.orders if m._ours(u.symbol) and (u.status is None or u.status in VENUE_OPEN)]
    seen_ids: set[str] = set()
    for u in venue_open:
        seen_ids.add(u.order_id)
        if u.cl_ord_id:
            seen_ids.add(u.cl_ord_id)
        o = m.find(u.order_id, u.cl_ord_id)
        if o is None:
            ours = m.ids.is_ours(u.cl_ord_id)
            o = _adopt(m, u)
            if restart:
                action, kind = m.on_restart, "open_order_at_restart"
            elif first_ever:
                action, kind = m.unknown_orders, "unknown_open_order"
            else:
                action, kind = ("adopt" if ours else m.unknown_orders), "unknown_open_order"
            diffs.append(_diff(m, kind, u.order_id, "absent", _fmt(u), action,
                               "our cl_ord_id (not in the journal)" if ours else "not placed by this manager"))
            continue
        if u.order_id and not o.order_id:
            o.order_id = u.order_id
            m._by_oid[u.order_id] = o.cl_ord_id
        if o.state == SENT or o.state in (LOST, "rejected"):
            o.state = _venue_state(u)
            diffs.append(_diff(m, "maybe_placed_found", o.cl_ord_id, "sent, no answer", _fmt(u), "adopt"))
        elif o.state in TERMINAL_STATES:
            was = o.state
            o.state, o.done_ns = _venue_state(u), None
            diffs.append(_diff(m, "order_mismatch", o.cl_ord_id, was, _fmt(u), "correct_order"))
        else:
            changed = []
            vstate = _venue_state(u)
            if STATE_RANK.get(vstate, 0) > STATE_RANK.get(o.state, 0):
                changed.append(f"state {o.state}->{vstate}")
                o.state = vstate
            if u.price is not None and abs(u.price - o.price) > 1e-12:
                changed.append(f"price {o.price}->{u.price}")
                o.price = u.price
            if u.qty is not None and abs(u.qty - o.qty) > 1e-12:
                changed.append(f"qty {o.qty}->{u.qty}")
                o.qty = u.qty
            if changed:
                diffs.append(_diff(m, "order_mismatch", o.cl_ord_id, _fmt(o), _fmt(u), "correct_order",
                                   ", ".join(changed)))
        if u.cum_qty is not None:
            o.venue_cum_qty = max(o.venue_cum_qty or 0.0, u.cum_qty)
        m._save(o)
        if restart and m.on_restart == "cancel":
            diffs.append(_diff(m, "open_order_at_restart", o.order_id or o.cl_ord_id, _fmt(o), _fmt(u),
                               "cancel"))
    # 3. orders we think are open and the venue does not list
    now = m.clock_ns()
    for o in list(m.open_orders()):
        if (o.order_id and o.order_id in seen_ids) or o.cl_ord_id in seen_ids:
            continue
        if o.state == SENT:
            if not o.outcome and now - o.created_ns < m.sent_grace_ns:
                continue  # still in flight: its reply or its executions will settle it
            o.state, o.done_ns = LOST, now
            m._save(o)
            diffs.append(_diff(m, "maybe_placed_absent", o.cl_ord_id, "sent, no answer", "not at the venue",
                               "mark_lost"))
            continue
        was = o.state
        o.state, o.done_ns = (FILLED if o.filled + 1e-12 >= o.qty else CANCELED), now
        m._save(o)
        diffs.append(_diff(m, "missing_open_order", o.cl_ord_id, was, "not open at the venue", "close",
                           f"filled {o.filled} of {o.qty}"))
    if m.needs_reconcile != "balance_recheck":
        m.needs_reconcile = None  # whatever asked for it has just been compared
    return diffs


def reconcile_balances(m: "OrderManager", snap: BalancesSnapshot) -> list[Difference]:
    """Compare expected balances with the venue's (baseline on the very first start)."""
    venue = snap.balances
    if m.baseline_ns is None:
        m.set_balances({m.base: float(venue.get(m.base, 0.0)), m.quote: float(venue.get(m.quote, 0.0))},
                       "baseline", ts=snap.ts_capture)
        return []
    wrong = {}
    for asset in (m.base, m.quote):
        exp, act = m.balances.get(asset, 0.0), float(venue.get(asset, 0.0))
        if abs(exp - act) > m.tolerance[asset]:
            wrong[asset] = (exp, act)
    if not wrong:
        m.balance_suspect = None
        if m.needs_reconcile == "balance_recheck":
            m.needs_reconcile = None
        return []
    key = tuple(sorted((a, round(act - exp, 9)) for a, (exp, act) in wrong.items()))
    confirmed = m.balance_suspect == key or m.balance_confirmations <= 1
    diffs = []
    if confirmed:
        fixed = dict(m.balances)
        for asset, (exp, act) in wrong.items():
            diffs.append(_diff(m, "balance_mismatch", asset, f"{exp!r}", f"{act!r}", "correct_position",
                               f"difference {act - exp:+.10g} seen twice"))
            fixed[asset] = act
        m.set_balances(fixed, "correct")
        m.balance_suspect = None
        if m.needs_reconcile == "balance_recheck":
            m.needs_reconcile = None
    else:
        for asset, (exp, act) in wrong.items():
            diffs.append(_diff(m, "balance_mismatch", asset, f"{exp!r}", f"{act!r}", "recheck",
                               "may be a fill still in flight: check again"))
        m.balance_suspect = key
        m.needs_reconcile = "balance_recheck"
    return diffs


@dataclass
class ReconcileSchedule:
    """When to reconcile: now for a reason, after a short delay (recheck), or every ``every_s``."""

    every_s: float = 300.0
    recheck_s: float = 2.0
    last_ns: Optional[int] = None
    due: dict[str, int] = field(default_factory=dict)

    def request(self, reason: str, now_ns: int, delay_s: float = 0.0) -> None:
        t = now_ns + int(delay_s * _S)
        self.due[reason] = min(self.due.get(reason, t), t)

    def next_reason(self, now_ns: int) -> Optional[str]:
        ready = [r for r, t in self.due.items() if t <= now_ns]
        if ready:
            return min(ready, key=lambda r: self.due[r])
        if self.last_ns is not None and now_ns - self.last_ns >= int(self.every_s * _S):
            return "periodic"
        return None

    def done(self, now_ns: int) -> None:
        self.last_ns = now_ns
        self.due = {r: t for r, t in self.due.items() if t > now_ns}

    def next_due_ns(self, now_ns: int) -> int:
        times = list(self.due.values())
        if self.last_ns is not None:
            times.append(self.last_ns + int(self.every_s * _S))
        return min(times) if times else now_ns + int(self.every_s * _S)

