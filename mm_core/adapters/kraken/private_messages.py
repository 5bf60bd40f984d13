"""Typed schema of Kraken's authenticated WS v2 channels (``executions``, ``balances``).

Same approach as :mod:`.v2_messages` for the public feed: msgspec decodes a frame straight into
these structs, checks the types in C and ignores fields it does not know, so a field Kraken adds
never breaks decoding. ``strict=False`` accepts numbers sent as strings.

Entries are *sparse*: Kraken sends only the fields relevant to each ``exec_type`` (a bare ``new``
may carry just ``exec_type, order_id, cl_ord_id, order_status, timestamp``), so nearly everything
is optional here and :mod:`.executions` fills the gaps from what earlier messages said.
"""

from __future__ import annotations

from typing import Optional, Union

import msgspec
from msgspec import Struct

from mm_core.adapters.kraken.v2_messages import HeartbeatMessage, StatusMessage


class FeeEntry(Struct, gc=False):
    asset: str
    qty: float


class ExecData(Struct, kw_only=True, gc=False):
    """One ``executions`` entry (docs.kraken.com/api/docs/websocket-v2/executions)."""

    exec_type: str
    order_id: str = ""
    cl_ord_id: Optional[str] = None
    symbol: Optional[str] = None
    side: Optional[str] = None
    order_type: Optional[str] = None
    order_status: Optional[str] = None
    order_qty: Optional[float] = None
    limit_price: Optional[float] = None
    cum_qty: Optional[float] = None
    cum_cost: Optional[float] = None
    avg_price: Optional[float] = None
    time_in_force: Optional[str] = None
    post_only: Optional[bool] = None
    timestamp: Optional[str] = None
    exec_id: Optional[str] = None
    trade_id: Optional[int] = None
    last_qty: Optional[float] = None
    last_price: Optional[float] = None
    cost: Optional[float] = None
    liquidity_ind: Optional[str] = None
    fees: Optional[list[FeeEntry]] = None
    fee_usd_equiv: Optional[float] = None
    reason: Optional[str] = None
    cancel_reason: Optional[str] = None
    amended: Optional[bool] = None
    # [U] the docs say ``ratecounter: true`` "includes the rate-limit counter in the stream" without
    # a published field name; ``ratecount`` mirrors the ack's ``maxratecount``. Unverified live.
    ratecount: Optional[float] = None


class ExecutionsMessage(Struct, tag_field="channel", tag="executions", gc=False):
    type: str
    data: list[ExecData]
    sequence: Optional[int] = None


class Wallet(Struct, gc=False):
    type: Optional[str] = None
    id: Optional[str] = None
    balance: Optional[float] = None


class BalanceData(Struct, kw_only=True, gc=False):
    """One ``balances`` entry: a snapshot asset (with ``wallets``) or a ledger update."""

    asset: str
    balance: Optional[float] = None
    asset_class: Optional[str] = None
    wallets: Optional[list[Wallet]] = None
    amount: Optional[float] = None
    fee: Optional[float] = None
    ledger_id: Optional[str] = None
    ref_id: Optional[str] = None
    type: Optional[str] = None
    subtype: Optional[str] = None
    category: Optional[str] = None
    wallet_type: Optional[str] = None
    wallet_id: Optional[str] = None
    timestamp: Optional[str] = None


class BalancesMessage(Struct, tag_field="channel", tag="balances", gc=False):
    type: str
    data: list[BalanceData]
    sequence: Optional[int] = None


PrivateChannelMessage = Union[ExecutionsMessage, BalancesMessage, HeartbeatMessage, StatusMessage]

PRIVATE_DECODER = msgspec.json.Decoder(PrivateChannelMessage, strict=False)
"""Decodes one private channel frame; raises ValidationError for anything else (method replies, junk)."""
