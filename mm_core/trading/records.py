"""Canonical trading records: what every venue (Kraken, the simulator, paper) reports and takes.

The market-data side has :mod:`mm_core.events`; this is its trading twin, in the same style:
immutable ``msgspec`` structs with the common header ``exchange, symbol, ts_exchange, ts_capture``
(int ns since the epoch, UTC; ``ts_exchange`` is None when the venue did not say).

This module is a *leaf* (it imports nothing from mm_core): venue adapters turn their wire messages
into these records, so an adapter may import it exactly as it imports :mod:`mm_core.events`,
without depending on the order manager or anything else in :mod:`mm_core.trading`.

Three groups:

- **commands** the order manager gives a venue: :class:`OrderRequest`, :class:`AmendRequest`,
  :class:`CancelRequest`;
- **outcomes** of a command as the venue's reply says (:class:`Outcome`, :class:`OutcomeKind`). An
  outcome never changes an order's state by itself (only executions do); it settles what happened
  to the *request*. ``maybe_placed`` outcomes (timeout, unknown error, service unavailable) mean
  "the order may exist": the order manager reconciles before it trusts its own book;
- **execution records** from the venue's private stream: :class:`OrderUpdate` (every order state
  transition), :class:`Fill` (one execution, keyed by ``exec_id``), snapshots, balances, sequence
  gaps, the rate counter; and :class:`Difference`, one per thing reconciliation found.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar, Literal, Optional

import msgspec

Side = Literal["buy", "sell"]
SIDE_SIGN: dict[str, int] = {"buy": 1, "sell": -1}

# order states (the local state machine's vocabulary; the venue's order_status uses the same words)
SENT = "sent"  # we sent it; the venue has not said anything about it yet
PENDING_NEW = "pending_new"
NEW = "new"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELED = "canceled"
EXPIRED = "expired"
REJECTED = "rejected"  # a definite reject: the order never existed
LOST = "lost"  # a "maybe placed" order that reconciliation did not find: it never existed
TERMINAL_STATES = frozenset({FILLED, CANCELED, EXPIRED, REJECTED, LOST})
OPEN_STATES = frozenset({SENT, PENDING_NEW, NEW, PARTIALLY_FILLED})
STATE_RANK: dict[str, int] = {SENT: 0, PENDING_NEW: 1, NEW: 2, PARTIALLY_FILLED: 3, FILLED: 4,
                              CANCELED: 4, EXPIRED: 4, REJECTED: 4, LOST: 4}
"""Orders only move forward in rank: a late ``new`` never undoes ``partially_filled``."""


# --------------------------------------------------------------------------- commands


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A limit order to place. ``cl_ord_id`` comes from the order manager (idempotent id).

    ``deadline_ns``: the venue must not match it after this instant (Kraken ``deadline``: 0.5 s to
    60 s ahead). ``validate``: check only, never reaches the matching engine (warm-up, dry runs).
    """

    symbol: str
    side: Side
    qty: float
    price: float
    cl_ord_id: str
    post_only: bool = True
    time_in_force: str = "gtc"
    deadline_ns: Optional[int] = None
    validate: bool = False
    order_type: str = "limit"


class AmendRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Change price and/or quantity in place (keeps queue priority where the venue allows).

    Exactly one of ``order_id`` / ``cl_ord_id``; ``qty`` is the new *total* order quantity."""

    symbol: str
    order_id: Optional[str] = None
    cl_ord_id: Optional[str] = None
    qty: Optional[float] = None
    price: Optional[float] = None
    post_only: bool = True
    deadline_ns: Optional[int] = None


class CancelRequest(msgspec.Struct, frozen=True, kw_only=True):
    order_ids: tuple[str, ...] = ()
    cl_ord_ids: tuple[str, ...] = ()


# --------------------------------------------------------------------------- outcomes


class OutcomeKind(str, Enum):
    """What a venue's reply to one request means, independent of the venue's error texts."""

    ACCEPTED = "accepted"
    NOT_SENT = "not_sent"  # nothing left our process (not connected, invalid request): definite
    REJECTED = "rejected"  # any other definite refusal (bad price, minimum, permissions, ...)
    RATE_LIMITED = "rate_limited"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    MARKET_POST_ONLY = "market_post_only"
    MARKET_CANCEL_ONLY = "market_cancel_only"
    MARKET_LIMIT_ONLY = "market_limit_only"
    DEADLINE_ELAPSED = "deadline_elapsed"
    INVALID_TOKEN = "invalid_token"
    UNKNOWN_ORDER = "unknown_order"  # cancel/amend of an order the venue does not know (or closed)
    AUTH = "auth"  # key, signature, nonce, permission: nothing reached the engine
    UNAVAILABLE = "unavailable"  # engine offline/busy/internal error: maybe placed
    TIMEOUT = "timeout"  # no reply in time (or the connection died first): maybe placed
    UNKNOWN = "unknown"  # an error text we do not know: maybe placed

    @property
    def maybe_placed(self) -> bool:
        return self in MAYBE_PLACED


MAYBE_PLACED = frozenset({OutcomeKind.UNAVAILABLE, OutcomeKind.TIMEOUT, OutcomeKind.UNKNOWN})


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The reply to one request (``rows`` holds the per-order outcomes of a batch)."""

    kind: OutcomeKind
    method: str
    req_id: Optional[int] = None
    cl_ord_id: Optional[str] = None
    order_id: Optional[str] = None
    error: str = ""
    amend_id: Optional[str] = None
    count: Optional[int] = None  # cancel_all / batch_cancel
    trigger_time_ns: Optional[int] = None  # dead man's switch
    time_in_ns: Optional[int] = None
    time_out_ns: Optional[int] = None
    warnings: tuple[str, ...] = ()
    rows: tuple["Outcome", ...] = ()

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.ACCEPTED

    @property
    def maybe_placed(self) -> bool:
        return self.kind.maybe_placed


# --------------------------------------------------------------------------- execution records


class TradingRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Common header, as :class:`mm_core.events.Event`."""

    exchange: str
    symbol: str
    ts_exchange: Optional[int]
    ts_capture: int

    KIND: ClassVar[str] = "trading"


class OrderUpdate(TradingRecord, frozen=True, kw_only=True):
    """One order state transition reported by the venue (every ``exec_type`` except fills).

    ``exec_type`` is the venue's event (pending_new, new, amended, canceled, expired, filled,
    restated, status, iceberg_refill, ...); ``status`` the order's state after it. Fields the venue
    did not send are None. ``sequence`` is the channel sequence number of the message it came in.
    """

    exec_type: str
    order_id: str
    cl_ord_id: Optional[str] = None
    status: Optional[str] = None
    side: Optional[str] = None
    order_type: Optional[str] = None
    price: Optional[float] = None
    qty: Optional[float] = None
    cum_qty: Optional[float] = None
    avg_price: Optional[float] = None
    post_only: Optional[bool] = None
    reason: Optional[str] = None
    sequence: Optional[int] = None
    snapshot: bool = False

    KIND: ClassVar[str] = "order_update"


class Fill(TradingRecord, frozen=True, kw_only=True):
    """One execution against one of our orders. ``exec_id`` is unique: a fill is counted once.

    ``side`` +1 buy / -1 sell (as the backtest's fill table); ``maker`` from the venue's liquidity
    indicator; ``fee`` the fee in ``fee_asset`` (``fees`` keeps every ``(asset, qty)`` the venue
    listed). ``order_status`` is what the venue said the order became with this fill -- on Kraken
    it may say partially_filled for the fill that completes the order (a separate ``filled``
    update follows), so never infer completion from it.
    """

    exec_id: str
    order_id: str
    side: int
    price: float
    qty: float
    cl_ord_id: Optional[str] = None
    trade_id: Optional[int] = None
    cost: Optional[float] = None
    fee: float = 0.0
    fee_asset: str = ""
    fees: tuple[tuple[str, float], ...] = ()
    maker: bool = True
    order_status: Optional[str] = None
    cum_qty: Optional[float] = None
    sequence: Optional[int] = None
    snapshot: bool = False

    KIND: ClassVar[str] = "fill"


class ExecutionsSnapshot(TradingRecord, frozen=True, kw_only=True):
    """The venue's view right after (re)subscribing: open orders and its recent fills."""

    orders: tuple[OrderUpdate, ...] = ()
    fills: tuple[Fill, ...] = ()
    sequence: Optional[int] = None

    KIND: ClassVar[str] = "executions_snapshot"


class BalanceUpdate(TradingRecord, frozen=True, kw_only=True):
    """One ledger movement: ``balance`` is the asset's total after it."""

    asset: str
    balance: float
    amount: Optional[float] = None
    fee: Optional[float] = None
    ledger_id: Optional[str] = None
    ref_id: Optional[str] = None
    ledger_type: Optional[str] = None

    KIND: ClassVar[str] = "balance_update"


class BalancesSnapshot(TradingRecord, frozen=True, kw_only=True):
    balances: dict[str, float] = {}

    KIND: ClassVar[str] = "balances_snapshot"


class SequenceGap(TradingRecord, frozen=True, kw_only=True):
    """A private channel's sequence number jumped (messages lost: reconcile) or went backwards
    (a duplicate or reordered message: harmless once fills are keyed by exec_id)."""

    channel: str
    expected: int
    got: int

    KIND: ClassVar[str] = "sequence_gap"

    @property
    def lost(self) -> bool:
        return self.got > self.expected


class RateCount(TradingRecord, frozen=True, kw_only=True):
    """The venue's order-rate counter for ``symbol`` (Kraken ``ratecounter``)."""

    count: float
    limit: Optional[float] = None

    KIND: ClassVar[str] = "rate_count"


class VenueSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What reconciliation compares with: the venue's open orders, recent fills and balances."""

    ts: int
    open_orders: tuple[OrderUpdate, ...] = ()
    fills: tuple[Fill, ...] = ()
    balances: dict[str, float] = {}


class Difference(TradingRecord, frozen=True, kw_only=True):
    """One thing reconciliation found different between our book and the venue's, and what it did.

    ``kind``: unknown_open_order, missing_open_order, order_mismatch, missing_fill,
    maybe_placed_found, maybe_placed_absent, balance_mismatch. ``action``: adopt, cancel,
    close, correct_order, apply_fill, mark_lost, recheck, correct_position, none.
    """

    kind: str
    ref: str
    expected: str
    actual: str
    action: str
    reason: str = ""

    KIND: ClassVar[str] = "reconcile_difference"


EXECUTION_RECORDS: tuple[type[TradingRecord], ...] = (
    OrderUpdate, Fill, ExecutionsSnapshot, BalanceUpdate, BalancesSnapshot, SequenceGap, RateCount,
    Difference,
)
RECORD_BY_KIND: dict[str, type[TradingRecord]] = {cls.KIND: cls for cls in EXECUTION_RECORDS}


def record_to_dict(record: msgspec.Struct) -> dict[str, object]:
    """A record as plain data, its class under ``record`` (for the journal and ``--json``)."""
    out: dict[str, object] = {"record": getattr(record, "KIND", type(record).__name__)}
    out.update(msgspec.to_builtins(record))
    return out


def record_from_dict(data: dict[str, object]) -> TradingRecord:
    """Inverse of :func:`record_to_dict` for execution records."""
    body = dict(data)
    kind = body.pop("record")
    cls = RECORD_BY_KIND.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown trading record {kind!r}")
    return msgspec.convert(body, cls)
