"""Kraken's private WS v2 stream -> canonical trading records (sans-IO).

:class:`KrakenPrivateParser` takes every frame of the authenticated socket with its capture time
and returns records from :mod:`mm_core.trading.records` plus method replies as
:class:`~mm_core.trading.records.Outcome` (the transport matches those to requests by ``req_id``).

What it promises:

* ``executions`` entries become :class:`OrderUpdate` (every exec_type but ``trade``) or
  :class:`Fill` (``trade``: ``exec_id``, ``last_qty``/``last_price``, the ``fees`` array,
  ``liquidity_ind`` m/t -> maker). Kraken's ``filled`` is a *status* message, never a fill: the
  quantity was already reported by the ``trade`` before it (which may say ``partially_filled``
  for the fill that completes the order). Counting ``filled`` as a fill would double it.
* A snapshot (after subscribing) becomes one :class:`ExecutionsSnapshot` with the open orders
  and the recent fills, so reconciliation sees the venue's view at one instant.
* ``sequence`` is tracked per channel: a jump forward emits :class:`SequenceGap` (messages were
  lost: reconcile), a step back (a duplicate or reordered message) emits one with ``got <
  expected``; the entries are passed on either way -- the order manager counts a fill once by
  ``exec_id`` and never moves an order backwards.
* Sparse entries are completed from what earlier messages said about the same order (symbol,
  side, cl_ord_id), from a bounded per-order cache. A fill whose side cannot be known becomes a
  :class:`~mm_core.events.BadMessage` (never a guessed side) -- the order manager reconciles.
* ``balances``: the snapshot's spot-wallet balance per asset (earn wallets are not tradable) and
  one :class:`BalanceUpdate` per spot ledger entry. Asset codes are normalised (XXBT -> BTC).
* Bad input never raises: it becomes a ``BadMessage`` with the frame truncated.

Example fill (ccxt's comment of a real message, kraken-protocol.md section 4)::

    {"channel":"executions","type":"update","data":[{"order_id":"O6NTZC-...","exec_id":"T5DIUI-...",
     "exec_type":"trade","trade_id":8253473,"symbol":"USDC/USD","side":"sell","last_qty":15.44,
     "last_price":1.0002,"liquidity_ind":"t","cost":15.443088,"order_status":"filled",
     "order_type":"market","fee_usd_equiv":0.03088618,"fees":[{"asset":"USD","qty":0.3458}]}],
     "sequence":10}
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Union

import msgspec
import orjson

from mm_core.adapters.kraken.private_messages import (PRIVATE_DECODER, BalanceData, BalancesMessage,
                                                      ExecData, ExecutionsMessage)
from mm_core.adapters.kraken.trading import REPLY_DECODER, parse_reply
from mm_core.adapters.kraken.v2_messages import HeartbeatMessage, StatusMessage
from mm_core.adapters.kraken.wire import parse_rfc3339_ns
from mm_core.events import BadMessage, Event, ExchangeStatus, Heartbeat, truncate_text
from mm_core.trading.records import (SIDE_SIGN, BalancesSnapshot, BalanceUpdate, ExecutionsSnapshot,
                                     Fill, OrderUpdate, Outcome, RateCount, SequenceGap, TradingRecord)

PrivateItem = Union[TradingRecord, Outcome, Event]

ASSET_ALIASES = {"XBT": "BTC", "XXBT": "BTC", "XDG": "DOGE", "XXDG": "DOGE", "ZEUR": "EUR",
                 "ZUSD": "USD", "ZGBP": "GBP", "ZCAD": "CAD", "ZJPY": "JPY", "ZCHF": "CHF",
                 "XETH": "ETH"}
ORDER_CACHE_MAX = 20_000


def normalise_asset(code: str) -> str:
    return ASSET_ALIASES.get(code, code)


class _OrderFacts:
    __slots__ = ("symbol", "side", "cl_ord_id")

    def __init__(self) -> None:
        self.symbol: Optional[str] = None
        self.side: Optional[str] = None
        self.cl_ord_id: Optional[str] = None


class KrakenPrivateParser:
    """Frames of the authenticated WS v2 socket -> trading records, replies and health events."""

    def __init__(self, exchange: str = "kraken", default_symbol: str = "") -> None:
        self.exchange = exchange
        self.default_symbol = default_symbol
        self._seq: dict[str, Optional[int]] = {"executions": None, "balances": None}
        self._orders: OrderedDict[str, _OrderFacts] = OrderedDict()
        self.max_rate_count: Optional[float] = None
        self.bad_messages = 0

    def reset(self) -> None:
        """After a disconnect: sequences restart with the next snapshot."""
        self._seq = {"executions": None, "balances": None}

    # ------------------------------------------------------------------ entry point

    def on_message(self, raw: str | bytes, ts_capture: int) -> list[PrivateItem]:
        if (b'"method"' if isinstance(raw, (bytes, bytearray)) else '"method"') in raw[:16]:
            return self._other(raw, ts_capture)  # a method reply: skip the channel decoder
        try:
            msg = PRIVATE_DECODER.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._other(raw, ts_capture)
        try:
            if isinstance(msg, ExecutionsMessage):
                return self._executions(msg, ts_capture)
            if isinstance(msg, BalancesMessage):
                return self._balances(msg, ts_capture)
            if isinstance(msg, HeartbeatMessage):
                return [Heartbeat(exchange=self.exchange, symbol="", ts_exchange=None, ts_capture=ts_capture)]
            if isinstance(msg, StatusMessage):
                return [ExchangeStatus(exchange=self.exchange, symbol="", ts_exchange=None,
                                       ts_capture=ts_capture, status=d.system, version=d.version)
                        for d in msg.data]
        except (KeyError, TypeError, ValueError) as exc:
            return [self._bad(raw, ts_capture, f"{type(exc).__name__}: {exc}")]
        return [self._bad(raw, ts_capture, "unhandled message")]

    def _other(self, raw: str | bytes, ts_capture: int) -> list[PrivateItem]:
        try:
            reply = REPLY_DECODER.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            reason = "not a private channel message or method reply"
            try:
                obj = orjson.loads(raw)
                if isinstance(obj, dict) and obj.get("channel") in ("executions", "balances"):
                    reason = "malformed " + str(obj.get("channel")) + " message"
            except orjson.JSONDecodeError:
                reason = "not JSON"
            return [self._bad(raw, ts_capture, reason)]
        out: list[PrivateItem] = []
        if reply.method == "subscribe" and reply.success and isinstance(reply.result, dict):
            m = reply.result.get("maxratecount")
            if isinstance(m, (int, float)):
                self.max_rate_count = float(m)
        out.append(parse_reply(reply))
        return out

    def _bad(self, raw: str | bytes, ts_capture: int, reason: str) -> BadMessage:
        self.bad_messages += 1
        return BadMessage(exchange=self.exchange, symbol="", ts_exchange=None, ts_capture=ts_capture,
                          reason=reason, text=truncate_text(raw))

    # ------------------------------------------------------------------ sequence

    def _sequence(self, channel: str, seq: Optional[int], snapshot: bool, ts_capture: int) -> list[PrivateItem]:
        if seq is None:
            return []
        last = self._seq[channel]
        out: list[PrivateItem] = []
        if snapshot or last is None:
            self._seq[channel] = seq
            return out
        expected = last + 1
        if seq != expected:
            out.append(SequenceGap(exchange=self.exchange, symbol="", ts_exchange=None,
                                   ts_capture=ts_capture, channel=channel, expected=expected, got=seq))
        if seq > last:
            self._seq[channel] = seq
        return out

    # ------------------------------------------------------------------ executions

    def _facts(self, d: ExecData) -> _OrderFacts:
        f = self._orders.get(d.order_id)
        if f is None:
            f = _OrderFacts()
            self._orders[d.order_id] = f
            if len(self._orders) > ORDER_CACHE_MAX:
                self._orders.popitem(last=False)
        if d.symbol:
            f.symbol = d.symbol
        if d.side in ("buy", "sell"):
            f.side = d.side
        if d.cl_ord_id:
            f.cl_ord_id = d.cl_ord_id
        return f

    def _executions(self, msg: ExecutionsMessage, ts_capture: int) -> list[PrivateItem]:
        snapshot = msg.type == "snapshot"
        out = self._sequence("executions", msg.sequence, snapshot, ts_capture)
        orders: list[OrderUpdate] = []
        fills: list[Fill] = []
        for d in msg.data:
            if not d.order_id:
                out.append(self._bad(msgspec.json.encode(d), ts_capture, "executions entry without order_id"))
                continue
            facts = self._facts(d)
            ts = _ts(d.timestamp)
            symbol = d.symbol or facts.symbol or self.default_symbol
            if d.ratecount is not None:
                out.append(RateCount(exchange=self.exchange, symbol=symbol, ts_exchange=ts,
                                     ts_capture=ts_capture, count=float(d.ratecount),
                                     limit=self.max_rate_count))
            if d.exec_type == "trade":
                fill = self._fill(d, facts, symbol, ts, ts_capture, msg.sequence, snapshot)
                if isinstance(fill, BadMessage):
                    out.append(fill)
                else:
                    fills.append(fill)
                continue
            orders.append(OrderUpdate(
                exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                exec_type=d.exec_type, order_id=d.order_id, cl_ord_id=d.cl_ord_id or facts.cl_ord_id,
                status=d.order_status, side=d.side or facts.side, order_type=d.order_type,
                price=d.limit_price, qty=d.order_qty, cum_qty=d.cum_qty, avg_price=d.avg_price,
                post_only=d.post_only, reason=d.reason or d.cancel_reason, sequence=msg.sequence,
                snapshot=snapshot))
        if snapshot:
            out.append(ExecutionsSnapshot(exchange=self.exchange, symbol=self.default_symbol,
                                          ts_exchange=None, ts_capture=ts_capture, orders=tuple(orders),
                                          fills=tuple(fills), sequence=msg.sequence))
        else:
            out.extend(orders)
            out.extend(fills)
        return out

    def _fill(self, d: ExecData, facts: _OrderFacts, symbol: str, ts: Optional[int], ts_capture: int,
              seq: Optional[int], snapshot: bool) -> Union[Fill, BadMessage]:
        side = d.side or facts.side
        missing = [n for n, v in (("exec_id", d.exec_id), ("last_qty", d.last_qty),
                                  ("last_price", d.last_price), ("side", side)) if v in (None, "")]
        if missing:
            return self._bad(msgspec.json.encode(d), ts_capture,
                             f"trade for order {d.order_id} without {', '.join(missing)}")
        assert side is not None and d.last_qty is not None and d.last_price is not None
        if side not in SIDE_SIGN or d.last_qty <= 0 or d.last_price <= 0:
            return self._bad(msgspec.json.encode(d), ts_capture, f"trade for order {d.order_id} with "
                             f"side {side!r}, qty {d.last_qty}, price {d.last_price}")
        fees = tuple((normalise_asset(f.asset), float(f.qty)) for f in (d.fees or ()))
        fee_asset = fees[0][0] if fees else ""
        fee = sum(q for a, q in fees if a == fee_asset)
        return Fill(exchange=self.exchange, symbol=symbol, ts_exchange=ts, ts_capture=ts_capture,
                    exec_id=str(d.exec_id), order_id=d.order_id, side=SIDE_SIGN[side],
                    price=float(d.last_price), qty=float(d.last_qty),
                    cl_ord_id=d.cl_ord_id or facts.cl_ord_id, trade_id=d.trade_id,
                    cost=d.cost if d.cost is not None else d.last_qty * d.last_price,
                    fee=fee, fee_asset=fee_asset, fees=fees,
                    maker=(d.liquidity_ind or "m").lower() != "t", order_status=d.order_status,
                    cum_qty=d.cum_qty, sequence=seq, snapshot=snapshot)

    # ------------------------------------------------------------------ balances

    def _balances(self, msg: BalancesMessage, ts_capture: int) -> list[PrivateItem]:
        snapshot = msg.type == "snapshot"
        out = self._sequence("balances", msg.sequence, snapshot, ts_capture)
        if snapshot:
            balances: dict[str, float] = {}
            for d in msg.data:
                value = _spot_balance(d)
                if value is not None:
                    asset = normalise_asset(d.asset)
                    balances[asset] = balances.get(asset, 0.0) + value
            out.append(BalancesSnapshot(exchange=self.exchange, symbol="", ts_exchange=None,
                                        ts_capture=ts_capture, balances=balances))
            return out
        for d in msg.data:
            if d.wallet_type not in (None, "spot") or d.balance is None:
                continue
            out.append(BalanceUpdate(exchange=self.exchange, symbol="", ts_exchange=_ts(d.timestamp),
                                     ts_capture=ts_capture, asset=normalise_asset(d.asset),
                                     balance=float(d.balance), amount=d.amount, fee=d.fee,
                                     ledger_id=d.ledger_id, ref_id=d.ref_id, ledger_type=d.type))
        return out


def _spot_balance(d: BalanceData) -> Optional[float]:
    if d.wallets:
        spot = [w.balance for w in d.wallets if (w.type or "spot") == "spot" and w.balance is not None]
        return float(sum(spot)) if spot else 0.0
    return None if d.balance is None else float(d.balance)


def _ts(text: Any) -> Optional[int]:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_rfc3339_ns(text)
    except ValueError:
        return None
