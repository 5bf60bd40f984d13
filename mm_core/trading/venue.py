"""The trading venue seam: what the order manager, paper and live runners need from an exchange.

One small Protocol, implemented by the Kraken private client
(:class:`mm_core.adapters.kraken.venue.KrakenVenue`) and, later, by the simulator's private side
and the paper venue. Nothing above this seam knows which exchange it trades on: requests and
replies are :mod:`mm_core.trading.records` values, never wire messages.

The contract, beyond the method signatures:

* ``place``/``amend``/``cancel``/``cancel_all`` return the :class:`Outcome` of the request; an
  outcome never says how an order *stands* (only execution records do). ``maybe_placed`` outcomes
  (timeout, unknown error) mean the request may have taken effect.
* ``next_event`` returns the venue's private stream in arrival order: :class:`OrderUpdate`,
  :class:`Fill`, :class:`BalanceUpdate`, :class:`SequenceGap`, :class:`RateCount`, late
  :class:`Outcome` replies (to requests that had timed out), health events from
  :mod:`mm_core.events` (``Connected``, ``Disconnected``, ``ExchangeStatus``, ``BadMessage``), and
  -- after every (re)connect and every :meth:`TradingVenue.snapshot` call -- an
  :class:`ExecutionsSnapshot` followed by a :class:`BalancesSnapshot` *at the point of the stream
  where they were taken*, which is what reconciliation compares with.
* ``snapshot`` also returns the same view as one :class:`VenueSnapshot` (for tools and tests).
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, Sequence, runtime_checkable

from mm_core.trading.records import AmendRequest, CancelRequest, OrderRequest, Outcome, VenueSnapshot


@runtime_checkable
class TradingVenue(Protocol):
    """An exchange (or a simulation of one) that takes orders and reports executions."""

    name: str

    async def start(self) -> None:
        """Connect, authenticate, subscribe; return when the first snapshot is on its way."""
        ...

    async def close(self) -> None:
        ...

    async def place(self, order: OrderRequest) -> Outcome:
        ...

    async def place_batch(self, orders: Sequence[OrderRequest]) -> Outcome:
        """Several orders on one symbol; ``Outcome.rows`` has one outcome per order."""
        ...

    async def amend(self, request: AmendRequest) -> Outcome:
        ...

    async def cancel(self, request: CancelRequest) -> Outcome:
        ...

    async def cancel_all(self) -> Outcome:
        ...

    async def snapshot(self) -> VenueSnapshot:
        """Open orders, recent fills, balances now (also delivered in-stream, see the module doc)."""
        ...

    async def next_event(self, timeout_s: Optional[float] = None) -> Optional[Any]:
        """The next record of the private stream, or None after ``timeout_s`` without one."""
        ...

    def describe(self) -> dict[str, Any]:
        """Counters for reports (connects, timeouts, dead man's switch refreshes, ...)."""
        ...
