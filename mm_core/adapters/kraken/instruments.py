"""Known Kraken instruments and how the v2 adapter finds a pair's checksum precision.

WS v2 sends prices and quantities as JSON numbers, so the checksum text must be re-created at the
pair's price/qty precision (``price_precision``/``qty_precision`` of the v2 ``instrument``
channel, ``pair_decimals``/``lot_decimals`` of REST AssetPairs). The precision is resolved per
symbol in this order, first hit wins:

1. ``FeedSpec.instruments`` (the runtime config, or a raw archive's header),
2. :data:`KNOWN_INSTRUMENTS` below,
3. a fallback precision given to the adapter (``mm replay --price-precision/--qty-precision``),
4. inference from the first book snapshot: the smallest precisions (from the decimals the numbers
   show) that make the snapshot's own checksum match. A wrong guess cannot go unnoticed: every
   later update is checksummed with it.

Only the precisions are load-bearing here; the trading minimums are indicative (check AssetPairs).
"""

from __future__ import annotations

from mm_core.instrument import Instrument

KNOWN_INSTRUMENTS: dict[str, Instrument] = {
    "BTC/EUR": Instrument(
        exchange="kraken",
        symbol="BTC/EUR",
        price_precision=1,
        qty_precision=8,
        tick_size=0.1,
        lot_size=1e-8,
        min_qty=0.00005,  # AssetPairs ordermin (newer fixtures; older said 0.0001) -- fetch live
        min_cost=0.5,
        base="BTC",
        quote="EUR",
    ),
    "BTC/USD": Instrument(
        exchange="kraken",
        symbol="BTC/USD",
        price_precision=1,
        qty_precision=8,
        tick_size=0.1,
        lot_size=1e-8,
        min_qty=0.00005,  # indicative, see above
        min_cost=0.5,
        base="BTC",
        quote="USD",
    ),
}


def instrument_with_precision(symbol: str, price_precision: int, qty_precision: int) -> Instrument:
    """A minimal instrument when only the precisions are known (replay flags, archive header)."""
    base, _, quote = symbol.partition("/")
    return Instrument(
        exchange="kraken",
        symbol=symbol,
        price_precision=price_precision,
        qty_precision=qty_precision,
        tick_size=10.0**-price_precision,
        lot_size=10.0**-qty_precision,
        min_qty=0.0,
        base=base,
        quote=quote,
    )


def decimals_shown(x: float) -> int:
    """Decimals in the shortest text of ``x`` (a lower bound of the pair's precision: JSON
    numbers lose trailing zeros, ``0.00100000`` arrives as ``0.001``)."""
    text = repr(float(x))
    if "e" in text or "E" in text:
        mantissa, _, exp = text.lower().partition("e")
        frac = mantissa.partition(".")[2].rstrip("0")
        return max(0, len(frac) - int(exp))
    frac = text.partition(".")[2].rstrip("0")
    return len(frac)
