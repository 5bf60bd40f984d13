"""Model output as canonical events, without sockets: a simulated day for research/backtest tests.

What a collector would have stored had it been subscribed at ``depth`` to the simulator: one
:class:`~mm_core.events.BookSnapshot`, then :class:`~mm_core.events.BookUpdate` (Kraken-style
depth view: no deletes for levels pushed out, re-entries as inserts, checksum of the top 10),
:class:`~mm_core.events.Trade` and, optionally, :class:`~mm_core.events.TopOfBook` on every BBO
change. ``ts_capture`` is ``ts_exchange`` plus an in-order delay from ``latency`` (or equal to it).
"""

from __future__ import annotations

from typing import Iterator, Optional

from mm_core.events import BookSnapshot, BookUpdate, Event, TopOfBook, Trade
from mm_core.simexchange.latency import InOrderDelivery, LatencyModel
from mm_core.simexchange.market import DepthView, Level, MarketModel, TradePrint, price_of, qty_of
from mm_core.simexchange.protocol import book_checksum_ints as book_checksum


def _floats(levels: list[Level]) -> tuple[tuple[float, float], ...]:
    return tuple((price_of(t), qty_of(s)) for t, s in levels)


def canonical_events(
    model: MarketModel,
    duration_s: float,
    *,
    depth: int = 10,
    exchange: str = "kraken",
    symbol: str = "BTC/EUR",
    latency: Optional[LatencyModel] = None,
    tops: bool = True,
) -> Iterator[Event]:
    """Canonical events for the next ``duration_s`` model seconds of ``model``."""
    delivery = InOrderDelivery(latency) if latency is not None else None

    def capture(ts: int) -> int:
        return delivery.schedule(ts)[0] if delivery is not None else ts

    book = model.book
    view = DepthView(depth)
    bids, asks = view.snapshot(book)
    now = model.now_ns
    yield BookSnapshot(
        exchange=exchange,
        symbol=symbol,
        ts_exchange=None,
        ts_capture=capture(now),
        bids=_floats(bids),
        asks=_floats(asks),
        checksum=book_checksum(book),
        verified=True,
        depth=depth,
    )
    last_bbo = book.bbo()
    for ev in model.events(duration_s):
        ts = ev.ts_ns
        if type(ev) is TradePrint:
            yield Trade(
                exchange=exchange,
                symbol=symbol,
                ts_exchange=ts,
                ts_capture=capture(ts),
                price=price_of(ev.ticks),
                qty=qty_of(ev.sats),
                side=ev.side,
                trade_id=ev.trade_id,
                ord_type=ev.ord_type,
            )
            continue
        bids, asks = view.update(book, ev)
        if not bids and not asks:
            continue
        ts_capture = capture(ts)
        yield BookUpdate(
            exchange=exchange,
            symbol=symbol,
            ts_exchange=ts,
            ts_capture=ts_capture,
            bids=_floats(bids),
            asks=_floats(asks),
            checksum=book_checksum(book),
            verified=True,
            depth=depth,
        )
        bbo = book.bbo()
        if tops and bbo is not None and bbo != last_bbo:
            last_bbo = bbo
            yield TopOfBook(
                exchange=exchange,
                symbol=symbol,
                ts_exchange=ts,
                ts_capture=ts_capture,
                bid=price_of(bbo[0]),
                bid_qty=qty_of(bbo[1]),
                ask=price_of(bbo[2]),
                ask_qty=qty_of(bbo[3]),
                source="book",
            )
