"""An exchange-agnostic L2 price-level book for one symbol, built for the feed's hot path.

Why this shape: a feed adapter applies a handful of levels per message and then needs the best
levels (top of book, checksum) after *every* message. So each side is

* a sorted ``list`` of keys (asks: the price; bids: the **negated** price, so that both sides are
  ascending and index 0 is always the best level) searched with :mod:`bisect`,
* a ``dict`` key -> qty for O(1) "is this level known?" and size look-ups,
* a ``list`` of opaque per-level *tokens* kept parallel to the keys.

The token list is what makes exchange checksums cheap: the adapter hands in a precomputed string
per level (e.g. the price digits + qty digits a CRC32 covers) when the level changes, and a checksum is then
one ``"".join`` of a slice plus a CRC -- nothing is re-formatted for unchanged levels. The book
never interprets tokens, so no exchange's formatting rules live here.

Semantics (the usual L2 contract): levels are applied in the order given; ``qty == 0`` deletes the
level (deleting an unknown level is ignored but counted in :attr:`L2Book.unknown_deletes`; some
venues do send those); :meth:`L2Book.truncate` (or the per-side ``truncate_asks``/``truncate_bids``)
cuts to the subscribed depth and must be called after every message, because exchanges do not send
deletes for levels pushed out of scope. ``apply_*`` return the index the change landed on, so a
caller knows for free whether the top of book can have moved (only index 0 can move it).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Iterator, Optional

Level = tuple[float, float]


class L2Book:
    """Price levels of one symbol, both sides sorted best first.

    ``ask_keys``/``bid_keys`` and ``ask_tokens``/``bid_tokens`` are public for the hot path of
    adapters (slicing them is the fastest way to build a checksum); treat them as read-only.
    """

    __slots__ = (
        "depth",
        "ask_keys",
        "bid_keys",
        "ask_qty",
        "bid_qty",
        "ask_tokens",
        "bid_tokens",
        "unknown_deletes",
    )

    def __init__(self, depth: int) -> None:
        if depth <= 0:
            raise ValueError(f"book depth must be > 0, got {depth}")
        self.depth: int = depth
        self.ask_keys: list[float] = []
        self.bid_keys: list[float] = []  # negated prices: ascending == best first
        self.ask_qty: dict[float, float] = {}
        self.bid_qty: dict[float, float] = {}  # keyed by the negated price too
        self.ask_tokens: list[Optional[str]] = []
        self.bid_tokens: list[Optional[str]] = []
        self.unknown_deletes: int = 0

    # ------------------------------------------------------------------ mutation

    def clear(self) -> None:
        """Drop every level (a new snapshot follows)."""
        self.ask_keys.clear()
        self.bid_keys.clear()
        self.ask_qty.clear()
        self.bid_qty.clear()
        self.ask_tokens.clear()
        self.bid_tokens.clear()

    def apply_ask(self, price: float, qty: float, token: Optional[str] = None) -> int:
        """Set the ask level at ``price`` to ``qty`` (0 deletes); ``token`` is cached with it.

        Returns the level's index (0 = best), -1 for the delete of an unknown level: index 0 is
        the only place a change can move the top of book, which spares callers a comparison.
        """
        keys = self.ask_keys
        qtys = self.ask_qty
        i = bisect_left(keys, price)
        if qty:
            if price in qtys:
                self.ask_tokens[i] = token
            else:
                keys.insert(i, price)
                self.ask_tokens.insert(i, token)
            qtys[price] = qty
            return i
        if price in qtys:
            del qtys[price]
            del keys[i]
            del self.ask_tokens[i]
            return i
        self.unknown_deletes += 1
        return -1

    def apply_bid(self, price: float, qty: float, token: Optional[str] = None) -> int:
        """Set the bid level at ``price`` to ``qty`` (0 deletes); see :meth:`apply_ask`."""
        key = -price
        keys = self.bid_keys
        qtys = self.bid_qty
        i = bisect_left(keys, key)
        if qty:
            if key in qtys:
                self.bid_tokens[i] = token
            else:
                keys.insert(i, key)
                self.bid_tokens.insert(i, token)
            qtys[key] = qty
            return i
        if key in qtys:
            del qtys[key]
            del keys[i]
            del self.bid_tokens[i]
            return i
        self.unknown_deletes += 1
        return -1

    def truncate(self) -> int:
        """Cut both sides to :attr:`depth`; returns how many levels fell out of scope."""
        return self.truncate_asks() + self.truncate_bids()

    def truncate_asks(self) -> int:
        """Cut the ask side to :attr:`depth` (a caller that touched one side cuts only that one)."""
        keys = self.ask_keys
        n = len(keys) - self.depth
        if n <= 0:
            return 0
        qtys = self.ask_qty
        for k in keys[self.depth :]:
            del qtys[k]
        del keys[self.depth :]
        del self.ask_tokens[self.depth :]
        return n

    def truncate_bids(self) -> int:
        """Cut the bid side to :attr:`depth`."""
        keys = self.bid_keys
        n = len(keys) - self.depth
        if n <= 0:
            return 0
        qtys = self.bid_qty
        for k in keys[self.depth :]:
            del qtys[k]
        del keys[self.depth :]
        del self.bid_tokens[self.depth :]
        return n

    # ------------------------------------------------------------------ reading

    def best_bid(self) -> Optional[Level]:
        """``(price, qty)`` of the best bid, or None when the side is empty."""
        if not self.bid_keys:
            return None
        k = self.bid_keys[0]
        return (-k, self.bid_qty[k])

    def best_ask(self) -> Optional[Level]:
        """``(price, qty)`` of the best ask, or None when the side is empty."""
        if not self.ask_keys:
            return None
        k = self.ask_keys[0]
        return (k, self.ask_qty[k])

    def top(self) -> Optional[tuple[float, float, float, float]]:
        """``(bid, bid_qty, ask, ask_qty)`` or None unless both sides have a level."""
        if not self.bid_keys or not self.ask_keys:
            return None
        b = self.bid_keys[0]
        a = self.ask_keys[0]
        return (-b, self.bid_qty[b], a, self.ask_qty[a])

    def bids(self, n: Optional[int] = None) -> list[Level]:
        """Best ``n`` bids (all when None), best (highest) first."""
        qtys = self.bid_qty
        return [(-k, qtys[k]) for k in self.bid_keys[:n]]

    def asks(self, n: Optional[int] = None) -> list[Level]:
        """Best ``n`` asks (all when None), best (lowest) first."""
        qtys = self.ask_qty
        return [(k, qtys[k]) for k in self.ask_keys[:n]]

    def bid_qty_at(self, price: float) -> float:
        """Size at a bid price (0.0 when there is no such level)."""
        return self.bid_qty.get(-price, 0.0)

    def ask_qty_at(self, price: float) -> float:
        """Size at an ask price (0.0 when there is no such level)."""
        return self.ask_qty.get(price, 0.0)

    def is_crossed(self) -> bool:
        """True when best bid >= best ask: impossible on a correct book, a sign of lost updates."""
        if not self.bid_keys or not self.ask_keys:
            return False
        return -self.bid_keys[0] >= self.ask_keys[0]

    def tokens(self, n: int) -> Iterator[Optional[str]]:
        """Cached tokens of the best ``n`` asks then the best ``n`` bids (checksum order of most
        exchanges that checksum "top N per side")."""
        yield from self.ask_tokens[:n]
        yield from self.bid_tokens[:n]

    def __len__(self) -> int:
        return len(self.ask_keys) + len(self.bid_keys)

    def __repr__(self) -> str:
        top = self.top()
        return f"L2Book(depth={self.depth}, levels={len(self)}, top={top})"
