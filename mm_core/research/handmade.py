"""Hand-built canonical events (books and trades at given seconds) for tests and worked examples.

Why: hand-computed feature values need tiny books whose every number is visible in the test.
"""

from __future__ import annotations

from typing import Optional, Sequence

from mm_core.events import BookSnapshot, BookUpdate, Trade

S = 1_000_000_000
T0 = 1_700_000_000 * S


def snap(t_s: float, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]], depth: int = 10,
         verified: bool = True, ts_exchange: Optional[int] = -1) -> BookSnapshot:
    ts = T0 + int(round(t_s * S))
    return BookSnapshot(exchange="test", symbol="BTC/EUR", ts_exchange=ts if ts_exchange == -1 else ts_exchange,
                        ts_capture=ts, bids=tuple(bids), asks=tuple(asks), depth=depth, verified=verified)


def upd(t_s: float, bids: Sequence[tuple[float, float]] = (), asks: Sequence[tuple[float, float]] = (),
        depth: int = 10, verified: bool = True) -> BookUpdate:
    ts = T0 + int(round(t_s * S))
    return BookUpdate(exchange="test", symbol="BTC/EUR", ts_exchange=ts, ts_capture=ts, bids=tuple(bids),
                      asks=tuple(asks), depth=depth, verified=verified)


def trade(t_s: float, price: float, qty: float, side: str) -> Trade:
    ts = T0 + int(round(t_s * S))
    return Trade(exchange="test", symbol="BTC/EUR", ts_exchange=ts, ts_capture=ts, price=price, qty=qty, side=side)
