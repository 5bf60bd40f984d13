"""The trading runner's core: market view + own orders -> the decision pipeline -> venue commands.

One class serves ``mm paper`` and ``mm live`` and the backtest-parity test: it is driven by
*calls* (a market message arrived at local time ``t``; a venue record; a command's outcome; decide
at ``t``) and emits commands through a ``send`` callback, so the asyncio driver
(:mod:`mm_core.trading.session`) and a virtual-clock driver (the seam test) run the very same code.

What it mirrors from the backtest engine (:mod:`mm_core.backtest.engine_core`), so the same stream
gives the same decisions:

- the strategy's order table (``pipeline.ORD``): one row per order the strategy tracks, appended
  when sent and removed (swapped with the last row) when done, with the engine's states:
  PENDING_NEW until the venue accepts, LIVE, CANCEL_PENDING / AMEND_PENDING while a request is out;
  price and remaining size as confirmed by replies and fill reports (``O_QUEUE_AHEAD`` from the
  venue when it can say, else -1);
- position and equity from fill reports (equity = cash + position x fair - fees, since the start;
  position relative to the account's holdings at the first start);
- faults for the risk layer: every refused order/cancel/amend (``F_REJECT``), feed disconnects and
  checksum failures, clock skew, the manual kill file (``F_MANUAL_KILL`` at the first decision that
  sees it) and resume token (``F_MANUAL_RESUME``);
- decisions on the requote timer (epoch multiples of ``requote_ns``), at feed-status events and at
  the staleness deadline (the caller asks :meth:`next_decision_ns`).

Hard caps (``mm live``): every new order and amend is checked against :class:`Caps` before it is
sent (size, notional, inventory including what rests on that side, order actions per second) and
refused -- counted, logged -- if it would exceed one; a loss beyond ``max_daily_loss`` since the UTC
day's start halts trading (a manual kill: ``mm kill --resume`` to go on). The risk layer's own limits
are tightened to the caps when the pipeline is built (:func:`capped_risk`), so the strategy never
aims beyond them; the check here is the second fence.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mm_core.strategy import risk as _risk
from mm_core.strategy.kill_file import RESUME_FILE, kill_requested, resume_token
from mm_core.strategy.pipeline import DecisionPipeline
from mm_core.strategy.requote import (A_ID, A_KIND, A_PULL, A_QTY, A_SIDE, A_TICK, ACT_AMEND, ACT_CANCEL, ACT_NEW,
                                      PI_QUOTE_CHANGES)
from mm_core.strategy.view import (K_TRADING, L_CAUSE, L_KIND, O_AGE_MS, O_FILLED, O_ID, O_LEAVES, O_PRICE,
                                   O_QUEUE_AHEAD, O_SIDE, O_STATE, O_TICK, OS_AMEND_PENDING, OS_CANCEL_PENDING,
                                   OS_LIVE, OS_PENDING_NEW)
from mm_core.trading.market_view import MarketView
from mm_core.trading.records import (TERMINAL_STATES, Fill, Outcome, OutcomeKind)

_S = 1_000_000_000
_DAY = 86_400 * _S
_REFUSALS = frozenset({OutcomeKind.REJECTED, OutcomeKind.RATE_LIMITED, OutcomeKind.INSUFFICIENT_FUNDS,
                       OutcomeKind.POST_ONLY_WOULD_TAKE, OutcomeKind.MARKET_POST_ONLY,
                       OutcomeKind.MARKET_CANCEL_ONLY, OutcomeKind.MARKET_LIMIT_ONLY,
                       OutcomeKind.DEADLINE_ELAPSED})


@dataclass(frozen=True)
class Caps:
    """``[live]`` hard caps: every one must be given (``mm live`` refuses to start otherwise)."""

    max_order_qty: float  # base units per order
    max_notional: float  # quote currency per order
    max_inventory: float  # base units, |position| including what rests on the growing side
    max_daily_loss: float  # quote currency since the UTC day's start (then HALTED, manual resume)
    max_order_rate: float  # order actions (new, amend, cancel) per second

    def describe(self) -> dict[str, float]:
        return dict(vars(self))


def capped_risk(risk: Any, caps: Optional[Caps]) -> Any:
    """The ``[risk]`` config with its limits tightened to the caps (never loosened)."""
    if caps is None:
        return risk
    import msgspec

    return msgspec.structs.replace(
        risk, max_inventory=min(risk.max_inventory, caps.max_inventory),
        max_order_qty=min(risk.max_order_qty, caps.max_order_qty),
        max_notional=min(risk.max_notional, caps.max_notional),
        max_drawdown=min(risk.max_drawdown, caps.max_daily_loss))


@dataclass(frozen=True)
class RunnerConfig:
    symbol: str
    tick: float
    lot: float
    requote_ms: float = 100.0
    fair: str = "mid"
    caps: Optional[Caps] = None
    warmup_s: float = 0.0  # live: orders go out as validate-only this long after the start
    warmup_interval_s: float = 1.0  # at most one validate-only order per side this often
    decide_on_book: bool = False  # also decide right after each book message (the tick-to-order benchmark)
    source: str = "paper"


@dataclass
class Command:
    """One venue request the runner wants sent (the driver sends it and reports the outcome)."""

    kind: str  # new | cancel | amend
    cl_ord_id: str
    t_ns: int  # decision time
    request: Any  # mm_core.trading.records OrderRequest | CancelRequest | AmendRequest
    pull: bool = False
    validate: bool = False
    trigger_local_ns: int = 0  # arrival of the market message the decision saw (tick-to-order)


@dataclass
class Working:
    """One order in the strategy's table (the engine's ``oi``/``of`` strategy columns)."""

    cid: str
    num: int  # O_ID: 0, 1, 2 ... in the order sent (the engine's order index)
    side: int
    tick: int  # as confirmed
    qty: float  # total, as confirmed
    leaves: float  # from fill reports
    submit_ns: int
    state: int = OS_PENDING_NEW
    amend_tick: int = 0
    amend_qty: float = 0.0
    validate: bool = False


@dataclass
class RunnerCounters:
    decisions: int = 0
    new: int = 0
    cancel: int = 0
    amend: int = 0
    validate_orders: int = 0
    refusals: int = 0
    cap_refusals: int = 0
    risk_breaches: int = 0
    kill_switch_events: int = 0
    daily_loss_halts: int = 0
    manual_kills: int = 0
    fills: int = 0
    by_trigger: dict[str, int] = field(default_factory=dict)


class TradingRunner:
    """See the module docstring. ``send(cmd)`` must not block (the driver queues it)."""

    def __init__(self, pipeline: DecisionPipeline, manager: Any, cfg: RunnerConfig, *,
                 send: Callable[[Command], None], run_dir: Optional[Path] = None,
                 queue_ahead: Optional[Callable[[str], float]] = None,  # cl_ord_id -> size ahead (-1 unknown)
                 on_event: Optional[Callable[[dict[str, Any]], None]] = None,
                 on_transitions: Optional[Callable[[np.ndarray], None]] = None,
                 telemetry: Any = None, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.pl = pipeline
        self.manager = manager
        self.cfg = cfg
        self.send = send
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.queue_ahead = queue_ahead
        self.on_event = on_event or (lambda e: None)
        self.on_transitions = on_transitions or (lambda log: None)
        self.telemetry = telemetry
        self.clock_ns = clock_ns
        self.view = MarketView(cfg.fair)
        self.requote_ns = int(round(cfg.requote_ms * 1e6))
        self.stale_ns = int(pipeline.risk.max_staleness_ms * 1e6)
        self.working: dict[str, Working] = {}
        self.rows: list[str] = []  # the engine's lopen order (swap-remove)
        self._num = 0
        self._fills_seen = len(manager.fills)
        self.base0: Optional[float] = None  # holdings at the first start (position is relative to them)
        self.quote0: Optional[float] = None
        self._pos = 0.0  # position and cash since the baseline, from fills (see position)
        self._cash = 0.0
        self.counters = RunnerCounters()
        self.next_timer_ns: Optional[int] = None
        self._dl_armed = False
        self._kill_seen = False
        self._resume_token = resume_token(self.run_dir) if self.run_dir is not None else None
        self._resume_stamp: Optional[int] = None
        self.started_ns = clock_ns()
        self._last_validate: dict[int, int] = {}
        self._actions: deque[int] = deque()
        self.day_start: Optional[tuple[int, float]] = None  # (UTC day, equity at its start)
        self.last_equity = 0.0
        self.last_fair = math.nan
        self.halted_daily_loss = False
        self.step_ns = 0  # the compiled decision step alone, last decision

    # ------------------------------------------------------------------ baseline

    def set_baseline(self, base: float, quote: float) -> None:
        """The account's holdings the position and PnL count from (first start; persisted after)."""
        self.base0, self.quote0 = float(base), float(quote)
        self._sync_books()

    @property
    def position(self) -> float:
        """Base units since the baseline: a running sum of fills from 0, as the engine keeps it (the
        account's balance minus its start would carry the balance's rounding, ~1e-13 of a 1000-unit
        balance, and tip a quote across a tick boundary); re-based on the order manager's balance
        whenever reconciliation corrects it."""
        return self._pos

    def equity(self, fair: float) -> float:
        """Cash + position x fair since the start, after fees (the engine's V_EQUITY)."""
        return self._cash + self._pos * fair

    def _sync_books(self) -> None:
        """Follow a correction the order manager made without a fill (a reconciled balance)."""
        m = self.manager
        pos = m.position - (self.base0 or 0.0)
        cash = m.cash - (self.quote0 or 0.0)
        if abs(pos - self._pos) > 1e-9:
            self._pos = pos
        if abs(cash - self._cash) > 1e-6:
            self._cash = cash

    # ------------------------------------------------------------------ market input

    def on_market(self, local_ns: int, exch_ns: Optional[int], bid: float, bid_qty: float, ask: float,
                  ask_qty: float, *, book: bool = True) -> None:
        self.view.on_message(local_ns, exch_ns, bid, bid_qty, ask, ask_qty, book=book)
        if self.next_timer_ns is None:  # the timer grid starts at the first message (engine: first row)
            self.next_timer_ns = (local_ns // self.requote_ns + 1) * self.requote_ns

    def on_heartbeat(self, local_ns: int, exch_ns: Optional[int] = None) -> None:
        self.view.on_heartbeat(local_ns, exch_ns)

    def on_feed_status(self, t_ns: int, *, valid: Optional[bool] = None, market: Optional[int] = None,
                       fault: Optional[int] = None, value: float = 0.0) -> None:
        """A feed-status event (disconnect, reconnect, checksum failure, resync, market status,
        clock skew): applied at ``t_ns``; the caller decides right after it (the engine does)."""
        if valid is not None:
            self.view.valid = bool(valid)
        if market is not None:
            self.view.market = int(market)
        if fault is not None:
            self.pl.on_fault(t_ns, int(fault), float(value))

    # ------------------------------------------------------------------ venue input

    def on_outcome(self, cmd: Command, out: Outcome, t_ns: int) -> None:
        """The reply to ``cmd`` (already given to the order manager) reached us at ``t_ns``."""
        w = self.working.get(cmd.cl_ord_id)
        refused = out.kind in _REFUSALS
        if refused:
            self.counters.refusals += 1
            self.pl.on_fault(t_ns, _risk.F_REJECT, 0.0)
            self.on_event({"kind": "refused", "t_ns": t_ns, "command": cmd.kind, "cl_ord_id": cmd.cl_ord_id,
                           "outcome": out.kind.value, "error": out.error[:200]})
        if w is None:
            return
        if cmd.kind == "new":
            if out.ok:
                if w.validate:
                    self._forget(w)  # validated, never rests
                elif w.state == OS_PENDING_NEW:
                    w.state = OS_LIVE
            elif not out.maybe_placed:
                self._forget(w)  # a definite refusal: it never existed
        elif cmd.kind == "cancel":
            if out.ok or out.kind is OutcomeKind.UNKNOWN_ORDER:
                self._forget(w)  # cancelled, or already done (its fills come as fills)
            elif refused and w.state == OS_CANCEL_PENDING:
                w.state = OS_LIVE  # still live: cancel it again at the next decision
        elif cmd.kind == "amend":
            if out.ok:
                filled = w.qty - w.leaves
                w.tick, w.qty = w.amend_tick, w.amend_qty
                w.leaves = w.amend_qty - filled
                if w.state == OS_AMEND_PENDING:
                    w.state = OS_LIVE
                if w.leaves < 0.5 * self.cfg.lot:
                    self._forget(w)
            elif out.kind is OutcomeKind.UNKNOWN_ORDER:
                self._forget(w)  # too late: filled or cancelled already
            elif w.state == OS_AMEND_PENDING:
                w.state = OS_LIVE

    def on_record(self, item: Any, t_ns: int) -> None:
        """A record of the venue's stream, after the order manager has taken it."""
        m = self.manager
        if len(m.fills) > self._fills_seen:
            for f in m.fills[self._fills_seen:]:
                self._on_fill(f, t_ns)
            self._fills_seen = len(m.fills)
        self._sync_books()
        # orders the manager closed (a cancel we did not send, the dead man's switch, reconciliation),
        # and orders the venue shows live while their reply is missing (a lost reply: "maybe placed")
        for cid in list(self.rows):
            o = m.orders.get(cid)
            if o is None:
                continue
            w = self.working[cid]
            if o.state in TERMINAL_STATES:
                if o.state != "filled" or w.leaves < 0.5 * self.cfg.lot:
                    self._forget(w)
            elif w.state == OS_PENDING_NEW and o.state in ("new", "partially_filled") and not w.validate:
                w.state = OS_LIVE

    def _on_fill(self, f: Fill, t_ns: int) -> None:
        self.counters.fills += 1
        cost = f.cost if f.cost is not None else f.qty * f.price
        fee = sum(q for a, q in (f.fees or ((f.fee_asset, f.fee),)) if a == self.manager.quote)
        self._pos += f.side * f.qty
        self._cash += -f.side * cost - fee
        key = f.cl_ord_id if f.cl_ord_id in self.working else None
        if key is None:
            o = self.manager.find(f.order_id, f.cl_ord_id)
            key = o.cl_ord_id if o is not None and o.cl_ord_id in self.working else None
        if key is not None:
            w = self.working[key]
            w.leaves -= f.qty
            if w.leaves < 0.5 * self.cfg.lot:
                self._forget(w)
        limit = self.pl.risk.max_inventory
        if abs(self.position) > limit * (1 + 1e-9) + 0.5 * self.cfg.lot:
            self.counters.risk_breaches += 1
            self.on_event({"kind": "risk_breach", "t_ns": t_ns, "limit": "max_inventory", "value": self.position,
                           "threshold": limit})

    def _forget(self, w: Working) -> None:
        if w.cid not in self.working:
            return
        del self.working[w.cid]
        a = self.rows.index(w.cid)
        self.rows[a] = self.rows[-1]
        self.rows.pop()

    # ------------------------------------------------------------------ decisions

    def next_decision_ns(self) -> Optional[int]:
        """When the next decision is due: the timer, or before it the staleness deadline -- the
        instant the data would become older than ``max_staleness_ms`` (the engine's rule: armed by
        a decision that saw fresh data, moved by every confirmation that arrives before it)."""
        t = self.next_timer_ns
        if t is None:
            return None
        if self._dl_armed:
            conf = self.view.latest_conf_exch()
            if conf is not None and conf + self.stale_ns + 1 < t:
                return conf + self.stale_ns + 1
        return t

    def decide(self, t_ns: int, trigger: str = "timer", trigger_local_ns: int = 0) -> int:
        """One decision at local time ``t_ns``; returns the number of commands sent."""
        c0 = time.perf_counter_ns()
        if self.next_timer_ns is not None and t_ns >= self.next_timer_ns:
            self.next_timer_ns = (t_ns // self.requote_ns + 1) * self.requote_ns
        self._dl_armed = False
        self.counters.by_trigger[trigger] = self.counters.by_trigger.get(trigger, 0) + 1
        pl = self.pl
        for loc, age in self.view.take_samples(t_ns):
            pl.on_book(loc, age)
        top = self.view.top_at(t_ns)
        if top is None:
            return 0  # no book yet (the engine skips too)
        self._poll_kill(t_ns)
        n_ord = self._fill_orders(t_ns)
        fair = top.fair
        self.last_fair = fair
        equity = self.equity(fair)
        self.last_equity = equity
        self._daily_loss(t_ns, equity)
        self.counters.decisions += 1
        q0 = int(pl.PI[PI_QUOTE_CHANGES])
        s0 = time.perf_counter_ns()
        n_act = pl.decide(t_ns, fair=fair, bid=top.bid, ask=top.ask, bid_qty=top.bid_qty, ask_qty=top.ask_qty,
                          position=self.position, equity=equity, data_age_ms=self.view.age_ms(t_ns),
                          data_valid=self.view.valid, market=self.view.market)
        self.step_ns = time.perf_counter_ns() - s0
        # tick-to-order samples only for decisions a book message triggered: a timer decision acts on a
        # message that may have arrived a requote interval (or a quiet second) earlier
        sent = self._execute(t_ns, n_act, n_ord, (trigger_local_ns or top.local_ns) if trigger == "book" else 0)
        conf = self.view.conf_exch_at(t_ns)
        self._dl_armed = conf is not None and conf + self.stale_ns >= t_ns
        log = pl.drain_log()
        if log.shape[0]:
            for r in log:
                if r[L_KIND] == K_TRADING and int(r[L_CAUSE]) in _risk.KILL_SWITCH_CAUSES:
                    self.counters.kill_switch_events += 1
            self.on_transitions(log)
        if self.telemetry is not None:
            self.telemetry.decision(t_ns, time.perf_counter_ns() - c0, int(pl.PI[PI_QUOTE_CHANGES]) - q0, pl, log,
                                    self.step_ns)
        return sent

    def _poll_kill(self, t_ns: int) -> None:
        """The kill file (one stat per decision) and the resume token (read only when it changed)."""
        if self.run_dir is None:
            return
        killed = kill_requested(self.run_dir)
        if killed and not self._kill_seen:
            self.counters.manual_kills += 1
            self.pl.on_fault(t_ns, _risk.F_MANUAL_KILL, 1.0)
            self.on_event({"kind": "manual_kill", "t_ns": t_ns})
        self._kill_seen = killed
        try:
            stamp = (self.run_dir / RESUME_FILE).stat().st_mtime_ns
        except OSError:
            return
        if stamp == self._resume_stamp:
            return
        self._resume_stamp = stamp
        tok = resume_token(self.run_dir)
        if tok is not None and tok != self._resume_token:
            self._resume_token = tok
            self.halted_daily_loss = False
            self.pl.on_fault(t_ns, _risk.F_MANUAL_RESUME, 1.0)
            self.on_event({"kind": "manual_resume", "t_ns": t_ns, "token": tok})

    def _daily_loss(self, t_ns: int, equity: float) -> None:
        caps = self.cfg.caps
        if caps is None or not math.isfinite(equity):
            return
        day = t_ns // _DAY
        if self.day_start is None or self.day_start[0] != day:
            self.day_start = (day, equity)
        loss = self.day_start[1] - equity
        if loss > caps.max_daily_loss and not self.halted_daily_loss:
            self.halted_daily_loss = True
            self.counters.daily_loss_halts += 1
            self.pl.on_fault(t_ns, _risk.F_MANUAL_KILL, 1.0)  # HALTED until `mm kill --resume`
            self.on_event({"kind": "daily_loss_cap", "t_ns": t_ns, "loss": loss, "cap": caps.max_daily_loss})

    def _fill_orders(self, t_ns: int) -> int:
        pl = self.pl
        ORD = pl.ORD
        tick = self.cfg.tick
        for a, cid in enumerate(self.rows):
            w = self.working[cid]
            ORD[a, O_SIDE] = w.side
            ORD[a, O_TICK] = w.tick
            ORD[a, O_PRICE] = w.tick * tick
            ORD[a, O_LEAVES] = w.leaves
            ORD[a, O_FILLED] = w.qty - w.leaves
            ORD[a, O_ID] = w.num
            ORD[a, O_STATE] = w.state
            ORD[a, O_AGE_MS] = (t_ns - w.submit_ns) * 1e-6
            ORD[a, O_QUEUE_AHEAD] = self.queue_ahead(cid) if self.queue_ahead is not None else -1.0
        pl.n_orders = len(self.rows)
        return pl.n_orders

    # ------------------------------------------------------------------ actions -> commands

    def _rate_ok(self, t_ns: int) -> bool:
        caps = self.cfg.caps
        if caps is None:
            return True
        q = self._actions
        while q and q[0] <= t_ns - _S:
            q.popleft()
        return len(q) < caps.max_order_rate

    def _cap_problem(self, side: int, qty: float, price: float, extra_same_side: float) -> Optional[str]:
        caps = self.cfg.caps
        if caps is None:
            return None
        if qty > caps.max_order_qty * (1 + 1e-9):
            return f"order size {qty} > max_order_qty {caps.max_order_qty}"
        if qty * price > caps.max_notional * (1 + 1e-9):
            return f"notional {qty * price:.2f} > max_notional {caps.max_notional}"
        resting = sum(w.leaves for w in self.working.values() if w.side == side and not w.validate)
        projected = self.position + side * (resting + extra_same_side)
        if side * projected > 0 and abs(projected) > caps.max_inventory * (1 + 1e-9):
            return f"inventory {projected:+.8f} with this order > max_inventory {caps.max_inventory}"
        return None

    def _execute(self, t_ns: int, n_act: int, n_ord: int, trigger_local: int) -> int:
        pl = self.pl
        m = self.manager
        tick = self.cfg.tick
        sent = 0
        warm = self.cfg.warmup_s > 0 and t_ns - self.started_ns < self.cfg.warmup_s * _S
        acts = pl.ACT[:n_act]
        for a in range(n_act):
            kind = acts[a, A_KIND]
            pull = acts[a, A_PULL] != 0.0
            if kind == ACT_CANCEL:
                w = self._by_num(int(acts[a, A_ID]))
                if w is None:
                    continue
                w.state = OS_CANCEL_PENDING
                self._send(Command("cancel", w.cid, t_ns, m.cancel_request([w.cid]), pull=pull,
                                   trigger_local_ns=trigger_local), t_ns)
                self.counters.cancel += 1
                sent += 1
                continue
            side = 1 if acts[a, A_SIDE] > 0 else -1
            t = int(round(acts[a, A_TICK]))
            price = round(t * tick, 12)
            if kind == ACT_NEW:
                qty = float(acts[a, A_QTY])
                validate = warm
                if validate:
                    last = self._last_validate.get(side, -(1 << 62))
                    if t_ns - last < self.cfg.warmup_interval_s * _S:
                        continue
                    self._last_validate[side] = t_ns
                problem = self._cap_problem(side, qty, price, qty) if not validate else None
                if problem or not self._rate_ok(t_ns):
                    self._cap_refusal(t_ns, "new", problem or "max_order_rate")
                    continue
                req = m.new_order("buy" if side > 0 else "sell", qty, price, validate=validate)
                w = Working(req.cl_ord_id, self._num, side, t, qty, qty, t_ns, validate=validate)
                self._num += 1
                self.working[w.cid] = w
                self.rows.append(w.cid)
                self._actions.append(t_ns)
                self._send(Command("new", w.cid, t_ns, req, validate=validate, trigger_local_ns=trigger_local), t_ns)
                self.counters.new += 1
                self.counters.validate_orders += validate
                sent += 1
            elif kind == ACT_AMEND:
                w = self._by_num(int(acts[a, A_ID]))
                if w is None:
                    continue
                total = (w.qty - w.leaves) + float(acts[a, A_QTY])
                problem = self._cap_problem(side, float(acts[a, A_QTY]), price, float(acts[a, A_QTY]) - w.leaves)
                if problem or not self._rate_ok(t_ns):
                    self._cap_refusal(t_ns, "amend", problem or "max_order_rate")
                    continue
                w.state = OS_AMEND_PENDING
                w.amend_tick, w.amend_qty = t, total
                self._actions.append(t_ns)
                self._send(Command("amend", w.cid, t_ns, m.amend_request(w.cid, price=price, qty=total), pull=pull,
                                   trigger_local_ns=trigger_local), t_ns)
                self.counters.amend += 1
                sent += 1
        return sent

    def _send(self, cmd: Command, t_ns: int) -> None:
        if cmd.kind == "cancel":
            self._actions.append(t_ns)
        self.send(cmd)

    def _cap_refusal(self, t_ns: int, what: str, why: str) -> None:
        self.counters.cap_refusals += 1
        self.on_event({"kind": "cap_refusal", "t_ns": t_ns, "command": what, "reason": why})

    def _by_num(self, num: int) -> Optional[Working]:
        for cid in self.rows:
            w = self.working[cid]
            if w.num == num:
                return w
        return None

    # ------------------------------------------------------------------ restarts

    def adopt_open_orders(self, t_ns: int) -> None:
        """Open orders the manager knows (adopted after a restart) join the table as LIVE."""
        for o in self.manager.open_orders():
            if o.cl_ord_id in self.working or o.validate:
                continue
            side = 1 if o.side == "buy" else -1
            w = Working(o.cl_ord_id, self._num, side, int(round(o.price / self.cfg.tick)), o.qty, o.leaves, t_ns,
                        state=OS_LIVE)
            self._num += 1
            self.working[w.cid] = w
            self.rows.append(w.cid)

    def state(self) -> dict[str, Any]:
        """What to persist besides the pipeline's arrays (see mm_core.trading.runner_state)."""
        return {"base0": self.base0, "quote0": self.quote0, "pos": self._pos, "cash": self._cash, "num": self._num, "kill_seen": self._kill_seen,
                "resume_token": self._resume_token, "day_start": list(self.day_start) if self.day_start else None,
                "halted_daily_loss": self.halted_daily_loss, "counters": {k: v for k, v in vars(self.counters).items()}}

    def restore(self, st: dict[str, Any]) -> None:
        self.base0, self.quote0 = st.get("base0"), st.get("quote0")
        self._pos = float(st.get("pos", 0.0))
        self._cash = float(st.get("cash", 0.0))
        self._num = int(st.get("num", 0))
        self._kill_seen = bool(st.get("kill_seen", False))
        self._resume_token = st.get("resume_token", self._resume_token)
        ds = st.get("day_start")
        self.day_start = (int(ds[0]), float(ds[1])) if ds else None
        self.halted_daily_loss = bool(st.get("halted_daily_loss", False))
        for k, v in (st.get("counters") or {}).items():
            if hasattr(self.counters, k):
                setattr(self.counters, k, v if k != "by_trigger" else dict(v))


