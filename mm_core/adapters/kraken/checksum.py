"""Kraken's order-book checksum (CRC32 over the top 10 levels, asks then bids).

Rule (docs.kraken.com guides spot-ws-book-v2 / v1, see ../shared/kraken-protocol.md §1.4, §2):
for each of the best 10 asks (ascending) then the best 10 bids (descending), take the price text
and the qty text, remove the decimal point, strip leading zeros, concatenate; CRC32 (IEEE,
unsigned) of the whole string. v2 texts are the numbers rendered at the pair's price/qty precision;
v1 texts are the strings exactly as received.

The *token* of a number is its text with the point removed and leading zeros stripped. For a
number with a known precision ``p`` that is simply ``str(round(x * 10**p))`` -- exact for any float
that came from a decimal with at most ``p`` decimals, and it can never produce exponent notation.
Tokens are computed once per level and cached by the book, so a checksum costs one join + CRC32.
"""

from __future__ import annotations

import zlib
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable

CHECKSUM_LEVELS = 10


def token_from_number(x: float, precision: int) -> str:
    """Checksum token of a float rendered at ``precision`` decimals (v2 rule).

    ``round(x * 10**p)`` is exact while the scaled value stays below ~2.25e15 (the two float
    roundings then err by < 0.5); beyond that -- far outside any real price or size -- the float's
    shortest decimal text is quantized with :mod:`decimal` instead, so the token can never be off
    by one or use exponent notation.
    """
    scaled = x * _POW10[precision]
    if -_EXACT_LIMIT < scaled < _EXACT_LIMIT:
        return str(round(scaled))
    return _token_via_decimal(x, precision)


def _token_via_decimal(x: float, precision: int) -> str:
    text = format(Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-precision), ROUND_HALF_EVEN), "f")
    sign = "-" if text.startswith("-") else ""
    return sign + text.lstrip("-").replace(".", "").lstrip("0")


def token_from_text(text: str) -> str:
    """Checksum token of a decimal string exactly as received (v1 rule)."""
    return text.replace(".", "").lstrip("0")


def checksum_from_tokens(level_tokens: Iterable[str]) -> int:
    """CRC32 of the concatenated level tokens (asks first, then bids, each price+qty)."""
    return zlib.crc32("".join(level_tokens).encode("ascii"))


def checksum_of_levels(
    asks: Iterable[tuple[float, float]],
    bids: Iterable[tuple[float, float]],
    price_precision: int,
    qty_precision: int,
) -> int:
    """Checksum of a book given best-first levels (used by the simulator and by tests).

    Only the best :data:`CHECKSUM_LEVELS` of each side count.
    """
    parts: list[str] = []
    for side in (asks, bids):
        for i, (price, qty) in enumerate(side):
            if i >= CHECKSUM_LEVELS:
                break
            parts.append(token_from_number(price, price_precision))
            parts.append(token_from_number(qty, qty_precision))
    return checksum_from_tokens(parts)


_POW10 = [10**i for i in range(19)]
_EXACT_LIMIT = 1e15
