"""Kraken WS v2 authenticated trading: request builders and reply parsers (sans-IO).

Requests (``wss://ws-auth.kraken.com/v2``; kraken-protocol.md section 4) are built as
:class:`WsRequest` values -- method + params *without* the session token -- and turned into a
frame only at send time by :meth:`WsRequest.frame`, which adds the token and ``req_id``. So a
request can be re-sent after a token refresh (``EAPI:Invalid token``), and no request object or its
``repr`` ever holds the token.

Numbers go on the wire as JSON numbers in fixed-point text at the instrument's precision
(``0.00005000`` -> ``0.00005``; never ``5e-05``, and never a value the precision cannot carry: a
price off the tick grid is an error here, not a silent rounding by the exchange).

Replies: every method answer is ``{"method", "req_id", "success", "result"|"error", "time_in",
"time_out", "warnings"}`` (``error`` is one string). :func:`parse_reply` turns one into a
venue-neutral :class:`~mm_core.trading.records.Outcome`, mapping the error text through
:mod:`.errors`. A ``cancel_order`` naming several orders gets one reply *per order* (Kraken
streams them), so the venue sends one id per ``cancel_order`` and uses ``batch_cancel`` for more.

Example add_order (docs.kraken.com/api/docs/websocket-v2/add_order)::

    {"method":"add_order","params":{"order_type":"limit","side":"buy","order_qty":0.001,
     "symbol":"BTC/EUR","limit_price":61000.0,"time_in_force":"gtc","post_only":true,
     "cl_ord_id":"mm1a2b3c","token":"..."},"req_id":42}
    -> {"method":"add_order","req_id":42,"success":true,
        "result":{"order_id":"OABCDE-12345-FGHIJ","cl_ord_id":"mm1a2b3c"},"time_in":...,"time_out":...}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional, Sequence

import msgspec

from mm_core.adapters.kraken.errors import classify_error
from mm_core.adapters.kraken.instruments import KNOWN_INSTRUMENTS
from mm_core.adapters.kraken.wire import parse_rfc3339_ns
from mm_core.instrument import Instrument
from mm_core.trading.records import (AmendRequest, CancelRequest, OrderRequest, Outcome, OutcomeKind)

PRIVATE_URL = "wss://ws-auth.kraken.com/v2"
DEADLINE_MIN_S = 0.5  # docs: deadline offsets 500 ms .. 60 s from now (batch_add/add_order pages)
DEADLINE_MAX_S = 60.0
BATCH_ADD_MIN, BATCH_ADD_MAX = 2, 15
BATCH_CANCEL_MIN, BATCH_CANCEL_MAX = 2, 50
DEAD_MAN_MAX_S = 86400  # cancel_all_orders_after timeout must be < 86400 s
CL_ORD_ID_MAX = 18  # free text; or a UUID
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_CL_TEXT = re.compile(r"^[A-Za-z0-9_.:-]{1,18}$")


def cl_ord_id_problem(cl_ord_id: str) -> Optional[str]:
    """Why Kraken would refuse this ``cl_ord_id`` (UUID, or free text of at most 18 chars)."""
    if _UUID.match(cl_ord_id) or _CL_TEXT.match(cl_ord_id):
        return None
    return (f"cl_ord_id {cl_ord_id!r} must be a UUID or 1-{CL_ORD_ID_MAX} characters of "
            f"letters, digits and _.:-")


def fixed(x: float, decimals: int, what: str) -> msgspec.Raw:
    """``x`` as a JSON number in fixed-point text with at most ``decimals`` decimals."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be a finite number, not {x!r}")
    text = f"{x:.{decimals}f}"
    if abs(float(text) - x) > max(10.0 ** -(decimals + 3), abs(x) * 1e-14):  # float noise only
        raise ValueError(f"{what} {x!r} has more than {decimals} decimals (the instrument's precision)")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return msgspec.Raw(text.encode())


def rfc3339_ms(ns: int) -> str:
    """``2022-12-25T09:30:59.123Z`` (the ``deadline`` format: millisecond precision)."""
    sec, rem = divmod(ns, 1_000_000_000)
    dt = datetime.fromtimestamp(sec, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{rem // 1_000_000:03d}Z"


def deadline_problem(deadline_ns: int, now_ns: int) -> Optional[str]:
    ahead = (deadline_ns - now_ns) / 1e9
    if ahead < DEADLINE_MIN_S or ahead > DEADLINE_MAX_S:
        return (f"deadline is {ahead:.3f} s ahead; Kraken accepts {DEADLINE_MIN_S:g} s to "
                f"{DEADLINE_MAX_S:g} s")
    return None


_ENCODE = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class WsRequest:
    """One request to send: method and params without the token (added at send time)."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    authenticated: bool = True
    cl_ord_ids: tuple[str, ...] = ()  # the orders it concerns (for matching outcomes)

    def frame(self, token: Optional[str], req_id: int) -> bytes:
        params = dict(self.params)
        if self.authenticated:
            if not token:
                raise ValueError(f"{self.method} needs a session token (GetWebSocketsToken)")
            params["token"] = token
        msg: dict[str, Any] = {"method": self.method, "params": params, "req_id": req_id}
        if not params:
            del msg["params"]
        return _ENCODE(msg)


class KrakenTradingMessages:
    """Builds the authenticated WS v2 requests for the instruments it knows."""

    def __init__(self, instruments: Optional[Mapping[str, Instrument]] = None) -> None:
        self.instruments: dict[str, Instrument] = dict(KNOWN_INSTRUMENTS)
        if instruments:
            self.instruments.update(instruments)

    def instrument(self, symbol: str) -> Instrument:
        try:
            return self.instruments[symbol]
        except KeyError:
            raise ValueError(f"no instrument rules for {symbol!r} (known: "
                             f"{', '.join(sorted(self.instruments))}); add it to the config") from None

    # ------------------------------------------------------------------ orders

    def _order_fields(self, req: OrderRequest, with_symbol: bool) -> dict[str, Any]:
        inst = self.instrument(req.symbol)
        if req.side not in ("buy", "sell"):
            raise ValueError(f"side must be buy or sell, not {req.side!r}")
        if req.qty <= 0 or req.price <= 0:
            raise ValueError(f"order {req.cl_ord_id}: price and qty must be > 0")
        problem = cl_ord_id_problem(req.cl_ord_id)
        if problem:
            raise ValueError(problem)
        out: dict[str, Any] = {"order_type": req.order_type, "side": req.side,
                               "order_qty": fixed(req.qty, inst.qty_precision, "order_qty")}
        if with_symbol:
            out["symbol"] = req.symbol
        out["limit_price"] = fixed(req.price, inst.price_precision, "limit_price")
        out["time_in_force"] = req.time_in_force
        out["post_only"] = bool(req.post_only)
        out["cl_ord_id"] = req.cl_ord_id
        return out

    def add_order(self, req: OrderRequest) -> WsRequest:
        params = self._order_fields(req, with_symbol=True)
        if req.deadline_ns is not None:
            params["deadline"] = rfc3339_ms(req.deadline_ns)
        if req.validate:
            params["validate"] = True
        return WsRequest("add_order", params, cl_ord_ids=(req.cl_ord_id,))

    def batch_add(self, reqs: Sequence[OrderRequest], *, deadline_ns: Optional[int] = None,
                  validate: bool = False) -> WsRequest:
        if not BATCH_ADD_MIN <= len(reqs) <= BATCH_ADD_MAX:
            raise ValueError(f"batch_add takes {BATCH_ADD_MIN} to {BATCH_ADD_MAX} orders, not {len(reqs)}")
        symbols = {r.symbol for r in reqs}
        if len(symbols) != 1:
            raise ValueError(f"batch_add orders must share one symbol, got {sorted(symbols)}")
        params: dict[str, Any] = {"symbol": reqs[0].symbol,
                                  "orders": [self._order_fields(r, with_symbol=False) for r in reqs]}
        if deadline_ns is not None:
            params["deadline"] = rfc3339_ms(deadline_ns)
        if validate or any(r.validate for r in reqs):
            params["validate"] = True
        return WsRequest("batch_add", params, cl_ord_ids=tuple(r.cl_ord_id for r in reqs))

    def amend_order(self, req: AmendRequest) -> WsRequest:
        if (req.order_id is None) == (req.cl_ord_id is None):
            raise ValueError("amend_order needs exactly one of order_id / cl_ord_id")
        if req.qty is None and req.price is None:
            raise ValueError("amend_order needs a new qty and/or price")
        inst = self.instrument(req.symbol)
        params: dict[str, Any] = {}
        if req.order_id is not None:
            params["order_id"] = req.order_id
        else:
            params["cl_ord_id"] = req.cl_ord_id
        if req.qty is not None:
            params["order_qty"] = fixed(req.qty, inst.qty_precision, "order_qty")
        if req.price is not None:
            params["limit_price"] = fixed(req.price, inst.price_precision, "limit_price")
            params["post_only"] = bool(req.post_only)
        if req.deadline_ns is not None:
            params["deadline"] = rfc3339_ms(req.deadline_ns)
        return WsRequest("amend_order", params, cl_ord_ids=(req.cl_ord_id,) if req.cl_ord_id else ())

    def cancel_order(self, req: CancelRequest) -> WsRequest:
        """``order_id`` and ``cl_ord_id`` lists cannot be combined in one request (Kraken)."""
        if bool(req.order_ids) == bool(req.cl_ord_ids):
            raise ValueError("cancel_order takes order_ids or cl_ord_ids (one kind per request)")
        if req.order_ids:
            return WsRequest("cancel_order", {"order_id": list(req.order_ids)})
        return WsRequest("cancel_order", {"cl_ord_id": list(req.cl_ord_ids)}, cl_ord_ids=req.cl_ord_ids)

    def batch_cancel(self, req: CancelRequest) -> WsRequest:
        n = len(req.order_ids) + len(req.cl_ord_ids)
        if not BATCH_CANCEL_MIN <= n <= BATCH_CANCEL_MAX:
            raise ValueError(f"batch_cancel takes {BATCH_CANCEL_MIN} to {BATCH_CANCEL_MAX} ids, not {n}")
        params: dict[str, Any] = {"orders": list(req.order_ids)}
        if req.cl_ord_ids:
            params["cl_ord_id"] = list(req.cl_ord_ids)
        return WsRequest("batch_cancel", params, cl_ord_ids=req.cl_ord_ids)

    def cancel_all(self) -> WsRequest:
        return WsRequest("cancel_all", {})

    def cancel_all_orders_after(self, timeout_s: int) -> WsRequest:
        """Dead man's switch: cancel everything ``timeout_s`` from now unless refreshed; 0 disarms."""
        timeout_s = int(timeout_s)
        if not 0 <= timeout_s < DEAD_MAN_MAX_S:
            raise ValueError(f"cancel_all_orders_after timeout must be 0..{DEAD_MAN_MAX_S - 1} s")
        return WsRequest("cancel_all_orders_after", {"timeout": timeout_s})

    # ------------------------------------------------------------------ subscriptions

    def subscribe_executions(self, *, snap_orders: bool = True, snap_trades: bool = True,
                             order_status: bool = True, ratecounter: bool = True) -> WsRequest:
        return WsRequest("subscribe", {"channel": "executions", "snap_orders": snap_orders,
                                       "snap_trades": snap_trades, "order_status": order_status,
                                       "ratecounter": ratecounter})

    def unsubscribe_executions(self) -> WsRequest:
        return WsRequest("unsubscribe", {"channel": "executions"})

    def subscribe_balances(self, *, snapshot: bool = True) -> WsRequest:
        return WsRequest("subscribe", {"channel": "balances", "snapshot": snapshot})

    def unsubscribe_balances(self) -> WsRequest:
        return WsRequest("unsubscribe", {"channel": "balances"})

    def ping(self) -> WsRequest:
        return WsRequest("ping", {}, authenticated=False)


# --------------------------------------------------------------------------- replies


class MethodReply(msgspec.Struct, kw_only=True):
    """Any WS v2 method answer (typed decoding; unknown fields ignored)."""

    method: str
    success: Optional[bool] = None
    req_id: Optional[int] = None
    result: Any = None
    error: Optional[str] = None
    time_in: Optional[str] = None
    time_out: Optional[str] = None
    warnings: list[str] = []
    symbol: Optional[str] = None


REPLY_DECODER = msgspec.json.Decoder(MethodReply)


def _ts(text: Any) -> Optional[int]:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_rfc3339_ns(text)
    except ValueError:
        return None


def _kind(success: Optional[bool], error: Optional[str]) -> OutcomeKind:
    if success:
        return OutcomeKind.ACCEPTED
    return classify_error(error)


def parse_reply(reply: MethodReply) -> Outcome:
    """The venue-neutral outcome of one method answer."""
    result = reply.result if isinstance(reply.result, dict) else {}
    common = dict(method=reply.method, req_id=reply.req_id, time_in_ns=_ts(reply.time_in),
                  time_out_ns=_ts(reply.time_out), warnings=tuple(reply.warnings or ()))
    kind = _kind(reply.success, reply.error)
    error = "" if reply.success else (reply.error or "no error text")
    if reply.method == "batch_add":
        rows = tuple(_batch_row(r) for r in _batch_rows(reply.result))
        return Outcome(kind=kind, error=error, rows=rows, **common)
    trigger = _ts(result.get("triggerTime"))
    count = result.get("count")
    return Outcome(kind=kind, error=error,
                   order_id=_str_or_none(result.get("order_id")),
                   cl_ord_id=_str_or_none(result.get("cl_ord_id")),
                   amend_id=_str_or_none(result.get("amend_id")),
                   count=int(count) if isinstance(count, (int, float)) else None,
                   trigger_time_ns=trigger, **common)


def _str_or_none(v: Any) -> Optional[str]:
    return v if isinstance(v, str) and v else None


def _batch_rows(result: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(result, list):
        return [r for r in result if isinstance(r, dict)]
    if isinstance(result, dict) and isinstance(result.get("orders"), list):
        return [r for r in result["orders"] if isinstance(r, dict)]
    return []


def _batch_row(row: Mapping[str, Any]) -> Outcome:
    err = row.get("error")
    ok = row.get("success", not err)
    return Outcome(kind=_kind(bool(ok), err if isinstance(err, str) else None), method="batch_add",
                   order_id=_str_or_none(row.get("order_id")), cl_ord_id=_str_or_none(row.get("cl_ord_id")),
                   error="" if ok else str(err or "no error text"))


def timeout_outcome(req: WsRequest, req_id: int, why: str = "no reply in time") -> Outcome:
    """What a request that got no answer means: maybe placed (for orders), unknown otherwise."""
    return Outcome(kind=OutcomeKind.TIMEOUT, method=req.method, req_id=req_id, error=why,
                   cl_ord_id=req.cl_ord_ids[0] if len(req.cl_ord_ids) == 1 else None)
