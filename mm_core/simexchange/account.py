"""One trading account at the simulated exchange, in Kraken's WS v2 dialect (sans-IO).

What it does: takes Kraken's private requests (``add_order``, ``amend_order``, ``cancel_order``,
``cancel_all``, ``batch_add``, ``batch_cancel``, ``cancel_all_orders_after``) as parameter dicts and
answers with Kraken's reply bodies and ``executions`` / ``balances`` entries -- and it matches the
orders against the market with **the backtest's matching and queue model**
(:class:`mm_core.backtest.matching.MatchingState` fed by :class:`mm_core.backtest.live_rows.RowFeed`,
the backtest's own row assembly), so a fill here is a fill the backtest would have made on the same
rows at the same times. Rate counter (per pair, with Kraken's order-age costs for cancels and
amends), post-only check and market status come from that model too; funds, minimums, the tick
grid, deadlines, ``validate``, the dead man's switch and ``gtd`` expiry are checked here.

No I/O and no clock: every call takes ``now`` (exchange time, ns). The transport
(:mod:`mm_core.simexchange.private`, or the in-process paper venue) puts replies on the wire with
``req_id``/``time_in``/``time_out``, gives every executions/balances message its sequence number
and delivers it. Callers read :attr:`ExchangeAccount.outbox` after each call: a list of
``(channel, entries)`` messages, in order.

Kraken semantics kept (kraken-protocol.md section 4): ``pending_new`` then ``new`` on accept; a fill
is a ``trade`` entry whose ``order_status`` says ``partially_filled`` even when it completes the
order, followed by a separate ``filled`` entry; fees as a ``fees`` array in the quote currency with
``liquidity_ind`` ``m``; ``validate: true`` answers ``order_id: ""`` and places nothing;
``cancel_all_orders_after(0)`` disarms; the switch, when it fires, cancels every open order.

Not modelled (said, not faked): taking liquidity (a non-post-only order that would cross is refused
with an explicit simulator error), iceberg orders (no ``iceberg_refill``), ``restated`` and
``status`` execution types, account-wide ("domain") rate limits.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from mm_core.backtest import matching as mx
from mm_core.backtest.live_rows import RowFeed, apply_rows
from mm_core.backtest.queue import RISK_AVERSE
from mm_core.backtest.rate_limit import decayed
from mm_core.strategy.view import MARKET_CODES

_S = 1_000_000_000

MARKET_STATUS = {k: v for k, v in MARKET_CODES.items() if k != "offline"}  # name -> MKT_* code

E_RATE = "EOrder:Rate limit exceeded"
E_POST_ONLY = "EOrder:Post only order"
E_FUNDS = "EOrder:Insufficient funds"
E_UNKNOWN_ORDER = "EOrder:Unknown order"
E_MIN_QTY = "EOrder:Order minimum not met"
E_MIN_COST = "EOrder:Cost minimum not met"
E_PRICE = "EOrder:Invalid price"
E_DEADLINE = "EService:Deadline elapsed"
E_UNAVAILABLE = "EService:Unavailable"
E_TAKER = "EGeneral:Invalid arguments:simulator models resting (non-crossing) limit orders only"


def market_error(status: str) -> str:
    if status == "maintenance":
        return E_UNAVAILABLE
    return f"EService:Market in {status} mode"


@dataclass(frozen=True)
class AccountConfig:
    """The account and the instrument it trades (one pair)."""

    symbol: str = "BTC/EUR"
    base: str = "BTC"
    quote: str = "EUR"
    tick_size: float = 0.1
    lot_size: float = 1e-8
    price_precision: int = 1
    qty_precision: int = 8
    min_qty: float = 0.00005
    min_cost: float = 0.5
    balances: tuple[tuple[str, float], ...] = (("BTC", 1.0), ("EUR", 100_000.0))
    maker_fee: float = 0.0025  # fraction of traded value (0.25 %: Kraken's lowest tier)
    rate_threshold: float = 60.0  # starter tier
    rate_decay: float = 1.0
    queue_kind: int = RISK_AVERSE
    queue_n: float = 2.0
    depth: int = 10  # book depth the rows are assembled at (the client's subscription)
    snap_trades: int = 50


@dataclass
class SimOrder:
    """One order as the exchange knows it (the queue state lives in the MatchingState row)."""

    order_id: str
    cl_ord_id: Optional[str]
    side: str
    tick: int
    qty: float  # total, after amends
    row: int  # MatchingState order id
    post_only: bool
    time_in_force: str
    created_ns: int
    order_userref: Optional[int] = None
    expire_ns: Optional[int] = None
    status: str = "new"
    filled: float = 0.0
    cum_cost: float = 0.0
    fees: float = 0.0

    @property
    def open(self) -> bool:
        return self.status in ("pending_new", "new", "partially_filled")


@dataclass
class Reply:
    """The answer to one request: ``result`` on success, else ``error``."""

    result: Any = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DeadMan:
    trigger_ns: Optional[int] = None
    arms: int = 0
    refreshes: int = 0
    disarms: int = 0
    fired: int = 0


class ExchangeAccount:
    """See the module docstring. ``ts_text(ns)`` formats wire timestamps (the transport's clock)."""

    def __init__(self, config: AccountConfig = AccountConfig(), *, ts_text: Optional[Callable[[int], str]] = None
                 ) -> None:
        from mm_core.simexchange.protocol import rfc3339_us

        self.cfg = config
        self.ts_text = ts_text or rfc3339_us
        self.balances: dict[str, float] = dict(config.balances)
        self.orders: dict[str, SimOrder] = {}
        self._by_cl: dict[str, str] = {}
        self._by_row: dict[int, str] = {}
        self.trades: list[dict[str, Any]] = []  # trade entries, for snap_trades
        self.feed = RowFeed(config.tick_size, config.depth)
        self.ms: Optional[mx.MatchingState] = None
        self.market = "online"
        self.dead_man = DeadMan()
        self.outbox: list[tuple[str, list[dict[str, Any]]]] = []
        self._ids = itertools.count(1)
        self._exec_ids = itertools.count(1)
        self._ledger_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._amend_ids = itertools.count(1)
        self.counts = {"orders": 0, "fills": 0, "rejects": 0, "cancels": 0, "amends": 0}

    # ------------------------------------------------------------------ helpers

    def _oid(self) -> str:
        n = next(self._ids)
        a = format(n * 2654435761 % 0xFFFFFF, "06X")
        return f"O{a}-{n:05d}-SIMEX"

    def _price(self, tick: int) -> float:
        return round(tick * self.cfg.tick_size, self.cfg.price_precision)

    def _tick(self, price: float) -> Optional[int]:
        t = round(price / self.cfg.tick_size)
        return int(t) if abs(t * self.cfg.tick_size - price) <= self.cfg.tick_size * 1e-6 else None

    def _qty_ok(self, qty: float) -> bool:
        steps = qty / self.cfg.lot_size
        return abs(steps - round(steps)) <= 1e-6

    def rate_counter(self, now: int) -> float:
        """Kraken's per-pair counter, decayed to ``now``."""
        if self.ms is None:
            return 0.0
        return decayed(float(self.ms.XF[mx.XF_RC]), int(self.ms.X[mx.X_RC_TS]), int(now), self.cfg.rate_decay)

    def open_orders(self) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.open]

    def find(self, order_id: Optional[str] = None, cl_ord_id: Optional[str] = None) -> Optional[SimOrder]:
        if order_id:
            return self.orders.get(order_id)
        if cl_ord_id:
            oid = self._by_cl.get(cl_ord_id)
            return self.orders.get(oid) if oid else None
        return None

    def _emit(self, channel: str, entries: list[dict[str, Any]]) -> None:
        if entries:
            self.outbox.append((channel, entries))

    def take_outbox(self) -> list[tuple[str, list[dict[str, Any]]]]:
        out, self.outbox = self.outbox, []
        return out

    def _reserved(self) -> tuple[float, float]:
        """Funds held by open orders: (base for sells, quote for buys incl. the maker fee)."""
        base = quote = 0.0
        for o in self.open_orders():
            left = o.qty - o.filled
            if o.side == "sell":
                base += left
            else:
                quote += left * self._price(o.tick) * (1.0 + self.cfg.maker_fee)
        return base, quote

    # ------------------------------------------------------------------ market data

    def _ensure_matching(self) -> mx.MatchingState:
        if self.ms is None:
            lo, n = self.feed.tick_range()
            c = self.cfg
            # the simulated venue's counter (its age-based cancel/amend costs) at the configured
            # threshold and decay
            from dataclasses import replace

            from mm_core.adapters import rate_counter, venue_rules

            rate = replace(rate_counter(venue_rules("kraken"), "starter"), threshold=c.rate_threshold,
                           decay_per_s=c.rate_decay)
            self.ms = mx.MatchingState(lo, n, rate=rate, lot=c.lot_size, queue_kind=c.queue_kind, queue_n=c.queue_n, share=True)
            self.ms.set_market(MARKET_STATUS[self.market])
        return self.ms

    def on_book(self, now: int, bids, asks, snapshot: bool = False) -> int:
        """A book message (levels as a depth-``depth`` client receives them: (price, qty) floats)."""
        rows = self.feed.book(now, bids, asks, snapshot)
        return self._fills(rows)

    def on_trade(self, now: int, taker_side: int, price: float, qty: float) -> int:
        if not self.feed.ready:
            return 0
        return self._fills(self.feed.trade(now, taker_side, price, qty))

    def _fills(self, rows) -> int:
        ms = self._ensure_matching()
        k = apply_rows(ms, rows)
        if k:
            f = ms.fills(ms.n_fills - k)
            for i in range(k):
                self._fill(int(f["order_id"][i]), float(f["qty"][i]), int(f["tick"][i]), rows.exch_ts)
        return k

    def _fill(self, row: int, qty: float, tick: int, now: int) -> None:
        o = self.orders[self._by_row[row]]
        c = self.cfg
        price = self._price(tick)
        cost = qty * price
        fee = round(cost * c.maker_fee, 8)
        o.filled += qty
        o.cum_cost += cost
        o.fees += fee
        sign = 1 if o.side == "buy" else -1
        self.balances[c.base] = self.balances.get(c.base, 0.0) + sign * qty
        self.balances[c.quote] = self.balances.get(c.quote, 0.0) - sign * cost - fee
        complete = o.filled >= o.qty - 0.5 * c.lot_size
        o.status = "filled" if complete else "partially_filled"
        ts = self.ts_text(now)
        trade = {"exec_type": "trade", "order_id": o.order_id, "exec_id": f"T{next(self._exec_ids):06d}-SIMEX",
                 "trade_id": next(self._trade_ids), "symbol": c.symbol, "side": o.side, "last_qty": qty,
                 "last_price": price, "liquidity_ind": "m", "cost": round(cost, 8),
                 # Kraken: the fill that completes an order still says partially_filled; `filled` follows
                 "order_status": "partially_filled", "order_type": "limit", "cum_qty": round(o.filled, 10),
                 "cum_cost": round(o.cum_cost, 8), "fees": [{"asset": c.quote, "qty": fee}],
                 "fee_usd_equiv": fee, "timestamp": ts}
        if o.cl_ord_id:
            trade["cl_ord_id"] = o.cl_ord_id
        if o.order_userref is not None:
            trade["order_userref"] = o.order_userref
        self.trades.append(trade)
        if len(self.trades) > 4 * c.snap_trades:
            del self.trades[: len(self.trades) - c.snap_trades]
        self.counts["fills"] += 1
        self._emit("executions", [trade])
        if complete:
            self._emit("executions", [{"exec_type": "filled", "order_id": o.order_id, "cl_ord_id": o.cl_ord_id,
                                       "order_status": "filled", "cum_qty": round(o.filled, 10),
                                       "cum_cost": round(o.cum_cost, 8), "avg_price": round(o.cum_cost / o.filled, 8),
                                       "fee_usd_equiv": round(o.fees, 8), "timestamp": ts}])
        self._emit("balances", [
            self._ledger(c.base, sign * qty, 0.0, now, o.order_id),
            self._ledger(c.quote, -sign * cost, fee, now, o.order_id)])

    def _ledger(self, asset: str, amount: float, fee: float, now: int, ref: str) -> dict[str, Any]:
        n = next(self._ledger_ids)
        return {"asset": asset, "asset_class": "currency", "amount": round(amount, 10), "balance":
                round(self.balances.get(asset, 0.0), 10), "fee": fee, "ledger_id": f"L{n:06d}-SIMEX",
                "ref_id": ref, "timestamp": self.ts_text(now), "type": "trade", "subtype": "",
                "category": "trade", "wallet_type": "spot", "wallet_id": "main"}

    def set_market(self, status: str, now: int) -> None:
        """The market's status changes (online, post_only, cancel_only, limit_only, maintenance)."""
        if status not in MARKET_STATUS:
            raise ValueError(f"unknown market status {status!r}")
        self.market = status
        if self.ms is not None:
            self.ms.set_market(MARKET_STATUS[status])

    # ------------------------------------------------------------------ timers

    def tick(self, now: int) -> None:
        """Time passes: the dead man's switch and ``gtd`` expiries."""
        dm = self.dead_man
        if dm.trigger_ns is not None and now >= dm.trigger_ns:
            dm.trigger_ns = None
            dm.fired += 1
            self._cancel_everything(now, "cancel_all_orders_after timeout")
        for o in self.open_orders():
            if o.expire_ns is not None and now >= o.expire_ns:
                self._force_cancel(o, now)
                o.status = "expired"
                self._emit("executions", [{"exec_type": "expired", "order_id": o.order_id, "cl_ord_id": o.cl_ord_id,
                                           "order_status": "expired", "cum_qty": round(o.filled, 10),
                                           "timestamp": self.ts_text(now)}])

    def next_timer_ns(self) -> Optional[int]:
        times = [o.expire_ns for o in self.open_orders() if o.expire_ns is not None]
        if self.dead_man.trigger_ns is not None:
            times.append(self.dead_man.trigger_ns)
        return min(times) if times else None

    # ------------------------------------------------------------------ requests

    def _entry(self, o: SimOrder, exec_type: str, now: int) -> dict[str, Any]:
        e = {"exec_type": exec_type, "order_id": o.order_id, "symbol": self.cfg.symbol, "side": o.side,
             "order_type": "limit", "order_qty": o.qty, "limit_price": self._price(o.tick),
             "limit_price_type": "static", "time_in_force": o.time_in_force.upper(), "post_only": o.post_only,
             "order_status": o.status, "cum_qty": round(o.filled, 10), "cum_cost": round(o.cum_cost, 8),
             "fee_usd_equiv": round(o.fees, 8), "timestamp": self.ts_text(now)}
        if o.cl_ord_id:
            e["cl_ord_id"] = o.cl_ord_id
        if o.order_userref is not None:
            e["order_userref"] = o.order_userref
        return e

    def _check_order(self, p: dict[str, Any], now: int) -> tuple[Optional[str], Optional[int], float]:
        """(error, tick, qty) of an order's fields before it reaches matching."""
        c = self.cfg
        if p.get("symbol", c.symbol) != c.symbol:
            return "EQuery:Unknown asset pair", None, 0.0
        if p.get("order_type", "limit") != "limit":
            return "EGeneral:Invalid arguments:order_type (the simulator takes limit orders)", None, 0.0
        if p.get("side") not in ("buy", "sell"):
            return "EGeneral:Invalid arguments:side", None, 0.0
        try:
            qty = float(p["order_qty"])
            price = float(p["limit_price"])
        except (KeyError, TypeError, ValueError):
            return "EGeneral:Invalid arguments:order_qty/limit_price", None, 0.0
        if not (math.isfinite(qty) and math.isfinite(price)) or qty <= 0 or price <= 0:
            return "EGeneral:Invalid arguments:order_qty/limit_price", None, 0.0
        tick = self._tick(price)
        if tick is None:
            return E_PRICE, None, 0.0
        if not self._qty_ok(qty):
            return "EGeneral:Invalid arguments:order_qty", None, 0.0
        if qty < c.min_qty - 1e-12:
            return E_MIN_QTY, None, 0.0
        if qty * price < c.min_cost - 1e-9:
            return E_MIN_COST, None, 0.0
        deadline = p.get("deadline")
        if isinstance(deadline, str):
            from mm_core.simexchange.protocol import parse_rfc3339_ns

            try:
                if now > parse_rfc3339_ns(deadline):
                    return E_DEADLINE, None, 0.0
            except ValueError:
                return "EGeneral:Invalid arguments:deadline", None, 0.0
        cl = p.get("cl_ord_id")
        if cl and self.find(cl_ord_id=cl) is not None and self.find(cl_ord_id=cl).open:  # type: ignore[union-attr]
            return "EGeneral:Invalid arguments:cl_ord_id is in use by an open order", None, 0.0
        post_only = bool(p.get("post_only", False))
        if self.market == "post_only" and not post_only:
            return market_error("post_only"), None, 0.0
        base_res, quote_res = self._reserved()
        if p["side"] == "buy":
            need = qty * price * (1.0 + c.maker_fee)
            if need > self.balances.get(c.quote, 0.0) - quote_res + 1e-9:
                return E_FUNDS, None, 0.0
        elif qty > self.balances.get(c.base, 0.0) - base_res + 1e-12:
            return E_FUNDS, None, 0.0
        return None, tick, qty

    def add_order(self, p: dict[str, Any], now: int) -> Reply:
        err, tick, qty = self._check_order(p, now)
        if err:
            self.counts["rejects"] += 1
            return Reply(error=err)
        assert tick is not None
        post_only = bool(p.get("post_only", False))
        if p.get("validate"):
            return Reply({"order_id": "", **({"cl_ord_id": p["cl_ord_id"]} if p.get("cl_ord_id") else {})})
        ms = self.ms
        if ms is None:
            return Reply(error=E_UNAVAILABLE)  # no market yet: the engine is not trading
        side = 1 if p["side"] == "buy" else -1
        crossing = (side > 0 and tick >= ms.best_ask) or (side < 0 and tick <= ms.best_bid)
        if crossing and not post_only:
            self.counts["rejects"] += 1
            return Reply(error=E_TAKER)
        row, rsp = ms.new_order(side, tick, qty, now)
        if rsp != mx.RSP_ACCEPTED:
            self.counts["rejects"] += 1
            res = int(ms.oi[row, mx.OI_RESULT])
            return Reply(error=E_RATE if res == mx.RES_REJ_RATE else E_POST_ONLY if res == mx.RES_REJ_POST_ONLY
                         else market_error(self.market))
        tif = str(p.get("time_in_force", "gtc")).lower()
        expire = None
        if tif == "gtd" and isinstance(p.get("expire_time"), str):
            from mm_core.simexchange.protocol import parse_rfc3339_ns

            try:
                expire = parse_rfc3339_ns(p["expire_time"])
            except ValueError:
                expire = None
        o = SimOrder(self._oid(), p.get("cl_ord_id") or None, p["side"], tick, qty, row, post_only, tif, now,
                     order_userref=p.get("order_userref"), expire_ns=expire, status="pending_new")
        self.orders[o.order_id] = o
        self._by_row[row] = o.order_id
        if o.cl_ord_id:
            self._by_cl[o.cl_ord_id] = o.order_id
        self.counts["orders"] += 1
        self._emit("executions", [self._entry(o, "pending_new", now)])
        o.status = "new"
        new = {"exec_type": "new", "order_id": o.order_id, "order_status": "new", "timestamp": self.ts_text(now)}
        if o.cl_ord_id:
            new["cl_ord_id"] = o.cl_ord_id
        self._emit("executions", [new])
        result = {"order_id": o.order_id}
        if o.cl_ord_id:
            result["cl_ord_id"] = o.cl_ord_id
        if o.order_userref is not None:
            result["order_userref"] = o.order_userref
        return Reply(result)

    def batch_add(self, p: dict[str, Any], now: int) -> Reply:
        orders = p.get("orders")
        if not isinstance(orders, list) or not 2 <= len(orders) <= 15:
            return Reply(error="EGeneral:Invalid arguments:orders (2 to 15)")
        rows = []
        for op in orders:
            r = self.add_order({**op, "symbol": p.get("symbol", self.cfg.symbol), "deadline": p.get("deadline"),
                                "validate": p.get("validate", False)}, now)
            row: dict[str, Any] = {"cl_ord_id": op.get("cl_ord_id")} if op.get("cl_ord_id") else {}
            if r.ok:
                row.update(r.result)
            else:
                row["error"] = r.error
            rows.append(row)
        return Reply(rows)

    def amend_order(self, p: dict[str, Any], now: int) -> Reply:
        o = self.find(p.get("order_id"), p.get("cl_ord_id"))
        if o is None or not o.open:
            return Reply(error=E_UNKNOWN_ORDER)
        if self.market in ("cancel_only", "maintenance"):
            return Reply(error=market_error(self.market))
        tick = o.tick
        if p.get("limit_price") is not None:
            t = self._tick(float(p["limit_price"]))
            if t is None:
                return Reply(error=E_PRICE)
            tick = t
        qty = float(p["order_qty"]) if p.get("order_qty") is not None else o.qty
        if qty <= 0 or not self._qty_ok(qty):
            return Reply(error="EGeneral:Invalid arguments:order_qty")
        ms = self.ms
        assert ms is not None
        rej_post0 = int(ms.X[mx.X_REJ_POST_ONLY_AMEND])
        rsp = ms.amend(o.row, now, tick, qty)
        self.counts["amends"] += 1
        if rsp == mx.RSP_AMEND_TOO_LATE:
            return Reply(error=E_UNKNOWN_ORDER)
        if rsp == mx.RSP_AMEND_REJECTED:
            return Reply(error=E_POST_ONLY if int(ms.X[mx.X_REJ_POST_ONLY_AMEND]) > rej_post0 else E_RATE)
        result: dict[str, Any] = {"amend_id": f"A{next(self._amend_ids):06d}-SIMEX", "order_id": o.order_id}
        if o.cl_ord_id:
            result["cl_ord_id"] = o.cl_ord_id
        if rsp == mx.RSP_CANCELED:  # amended to at or below what is filled: the rest is cancelled
            o.qty = o.filled
            self._closed(o, now, "Order quantity amended below the filled quantity")
            return Reply(result)
        o.tick, o.qty = tick, qty
        e = {"exec_type": "amended", "order_id": o.order_id, "order_qty": qty, "limit_price": self._price(tick),
             "order_status": o.status, "cum_qty": round(o.filled, 10), "amended": True, "reason": "User requested",
             "timestamp": self.ts_text(now)}
        if o.cl_ord_id:
            e["cl_ord_id"] = o.cl_ord_id
        self._emit("executions", [e])
        return Reply(result)

    def _closed(self, o: SimOrder, now: int, reason: str) -> None:
        o.status = "canceled"
        self.counts["cancels"] += 1
        e = {"exec_type": "canceled", "order_id": o.order_id, "order_status": "canceled",
             "cum_qty": round(o.filled, 10), "cum_cost": round(o.cum_cost, 8), "reason": reason,
             "timestamp": self.ts_text(now)}
        if o.cl_ord_id:
            e["cl_ord_id"] = o.cl_ord_id
        self._emit("executions", [e])

    def cancel_one(self, o: Optional[SimOrder], now: int) -> Reply:
        if o is None or not o.open:
            return Reply(error=E_UNKNOWN_ORDER)
        assert self.ms is not None
        rsp = self.ms.cancel(o.row, now)
        if rsp == mx.RSP_CANCEL_REJECTED:
            return Reply(error=E_RATE)
        if rsp == mx.RSP_CANCEL_TOO_LATE:
            return Reply(error=E_UNKNOWN_ORDER)
        self._closed(o, now, "User requested")
        result = {"order_id": o.order_id}
        if o.cl_ord_id:
            result["cl_ord_id"] = o.cl_ord_id
        return Reply(result)

    def cancel_order(self, p: dict[str, Any], now: int) -> list[Reply]:
        """One reply per order named (Kraken answers a list of ids once per id)."""
        out = []
        for oid in p.get("order_id") or []:
            out.append(self.cancel_one(self.find(order_id=oid), now))
        for cid in p.get("cl_ord_id") or []:
            out.append(self.cancel_one(self.find(cl_ord_id=cid), now))
        if not out:
            out.append(Reply(error="EGeneral:Invalid arguments:order_id or cl_ord_id"))
        return out

    def batch_cancel(self, p: dict[str, Any], now: int) -> Reply:
        targets = [self.find(order_id=i) for i in p.get("orders") or []]
        targets += [self.find(cl_ord_id=i) for i in p.get("cl_ord_id") or []]
        if not 2 <= len(targets) <= 50:
            return Reply(error="EGeneral:Invalid arguments:orders (2 to 50)")
        n = sum(1 for o in targets if self.cancel_one(o, now).ok)
        return Reply({"count": n})

    def _force_cancel(self, o: SimOrder, now: int) -> None:
        """Take an order off the book whatever the rate counter says (engine-side cancels)."""
        ms = self.ms
        assert ms is not None
        thr = ms.rate_threshold
        ms.rate_threshold = math.inf
        try:
            ms.cancel(o.row, now)
        finally:
            ms.rate_threshold = thr

    def _cancel_everything(self, now: int, reason: str) -> int:
        n = 0
        for o in self.open_orders():
            self._force_cancel(o, now)
            self._closed(o, now, reason)
            n += 1
        return n

    def cancel_all(self, p: dict[str, Any], now: int) -> Reply:
        return Reply({"count": self._cancel_everything(now, "User requested")}) if self.ms is not None \
            else Reply({"count": 0})

    def cancel_all_orders_after(self, p: dict[str, Any], now: int) -> Reply:
        try:
            timeout = int(p.get("timeout"))
        except (TypeError, ValueError):
            return Reply(error="EGeneral:Invalid arguments:timeout")
        if not 0 <= timeout < 86400:
            return Reply(error="EGeneral:Invalid arguments:timeout")
        dm = self.dead_man
        current = self.ts_text(now)[:19] + "Z"
        if timeout == 0:
            if dm.trigger_ns is not None:
                dm.disarms += 1
            dm.trigger_ns = None
            return Reply({"currentTime": current, "triggerTime": "0"})
        if dm.trigger_ns is None:
            dm.arms += 1
        else:
            dm.refreshes += 1
        dm.trigger_ns = now + timeout * _S
        return Reply({"currentTime": current, "triggerTime": self.ts_text(dm.trigger_ns)[:19] + "Z"})

    # ------------------------------------------------------------------ snapshots

    def executions_snapshot(self, now: int, *, snap_orders: bool = True, snap_trades: bool = False
                            ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if snap_orders:
            out += [self._entry(o, "new", now) for o in self.open_orders()]
        if snap_trades:
            out += [dict(t) for t in self.trades[-self.cfg.snap_trades:]]
        return out

    def balances_snapshot(self) -> list[dict[str, Any]]:
        return [{"asset": a, "asset_class": "currency", "balance": round(b, 10),
                 "wallets": [{"type": "spot", "id": "main", "balance": round(b, 10)}]}
                for a, b in sorted(self.balances.items())]

    def position(self) -> float:
        return self.balances.get(self.cfg.base, 0.0)

    def queue_ahead(self, order_id: str) -> float:
        """The queue model's size ahead of an open order (-1 when unknown)."""
        o = self.orders.get(order_id)
        if o is None or self.ms is None or not o.open:
            return -1.0
        return float(self.ms.of[o.row, mx.OF_FRONT])


def dispatch(account: ExchangeAccount, method: str, params: dict[str, Any], now: int) -> list[Reply]:
    """Route one request to the account; most methods answer once, ``cancel_order`` once per id."""
    if method == "add_order":
        return [account.add_order(params, now)]
    if method == "amend_order":
        return [account.amend_order(params, now)]
    if method == "cancel_order":
        return account.cancel_order(params, now)
    if method == "cancel_all":
        return [account.cancel_all(params, now)]
    if method == "batch_add":
        return [account.batch_add(params, now)]
    if method == "batch_cancel":
        return [account.batch_cancel(params, now)]
    if method == "cancel_all_orders_after":
        return [account.cancel_all_orders_after(params, now)]
    return [Reply(error="EGeneral:Invalid arguments:unknown method")]


TRADING_METHODS = frozenset({"add_order", "amend_order", "cancel_order", "cancel_all", "batch_add", "batch_cancel",
                             "cancel_all_orders_after"})

