"""Instrument metadata: what the exchange allows for one pair (precision, tick, lot, minimums).

Prices and quantities travel as floats through the system; this object is what turns them back into
exact exchange-valid numbers (rounding to tick/lot, checksum formatting, order validation).
"""

from __future__ import annotations

import math

import msgspec


class Instrument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Static trading rules of one pair on one exchange."""

    exchange: str
    symbol: str
    price_precision: int
    qty_precision: int
    tick_size: float
    lot_size: float
    min_qty: float
    min_cost: float = 0.0
    base: str = ""
    quote: str = ""

    def __post_init__(self) -> None:
        if self.price_precision < 0 or self.qty_precision < 0:
            raise ValueError(f"{self.symbol}: precisions must be >= 0")
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError(f"{self.symbol}: tick_size and lot_size must be > 0")
        if self.min_qty < 0 or self.min_cost < 0:
            raise ValueError(f"{self.symbol}: min_qty and min_cost must be >= 0")

    def round_price(self, price: float) -> float:
        """Nearest valid price (multiple of the tick)."""
        return round(round(price / self.tick_size) * self.tick_size, self.price_precision)

    def floor_qty(self, qty: float) -> float:
        """Largest valid quantity not above ``qty`` (multiple of the lot)."""
        lots = math.floor(qty / self.lot_size + 1e-9)
        return round(lots * self.lot_size, self.qty_precision)

    def price_ticks(self, price: float) -> int:
        """Price as an integer number of ticks (exact for prices on the tick grid)."""
        return round(price / self.tick_size)

    def order_problem(self, price: float, qty: float) -> str | None:
        """Why an order of ``qty`` at ``price`` would be rejected, or None if it is valid."""
        if price <= 0 or qty <= 0:
            return "price and qty must be > 0"
        if abs(self.round_price(price) - price) > self.tick_size * 1e-6:
            return f"price {price} is not on the {self.tick_size} tick grid"
        if qty < self.min_qty:
            return f"qty {qty} below minimum {self.min_qty}"
        if price * qty < self.min_cost:
            return f"order value {price * qty:.8f} below minimum cost {self.min_cost}"
        return None
