"""A seeded BTC/EUR-like market: L2 book changes and trades, stamped with exchange times (ns).

Why it looks the way it does:

- **Integer units inside.** Prices are integer ticks (0.1 EUR), sizes integer satoshis (1e-8 BTC),
  so every price sits exactly on the grid and every size has at most 8 decimals. Floats are made
  only at the edge (:func:`price_of`, :func:`qty_of`: ``ticks / 10`` is the correctly rounded double,
  the same value as ``round(ticks * 0.1, 1)`` and as parsing the decimal text).
- **Bursty arrivals.** Book-change messages arrive as a Hawkes process with an exponential kernel
  (simulated exactly, Dassios & Zhao 2013): mean ``updates_per_second``, clusters of activity like
  a real feed (~10 msg/s on Kraken's BTC book with a 9 ms median gap).
- **Only "move" events change the best prices**, and their direction is drawn explicitly:
  ``P(up) = 0.5 + imbalance_weight * (bid_qty - ask_qty) / (bid_qty + ask_qty)`` at L1 when
  ``predictive=True``, exactly 0.5 when ``predictive=False``. Ordinary updates never delete or
  improve the top level and ordinary trades never empty it, so with ``predictive=False`` nothing
  in the book carries information about the next mid move -- research must find no edge then.
- **Deterministic**: one ``numpy.random.Generator`` from the seed feeds pre-drawn buffers consumed
  in a fixed order; the same seed gives the same event sequence, byte for byte.

The model is a pure generator (:meth:`MarketModel.events`), independent of sockets: a simulated day
(~860k book changes, ~86k trades) takes seconds. :class:`LevelBook` and :class:`DepthView` are the
exchange-side book and the Kraken-style depth-N view used by the server and by
:mod:`mm_core.simexchange.canonical`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from dataclasses import dataclass, replace
from typing import Iterator, NamedTuple, Optional, Union

import numpy as np

PRICE_PRECISION = 1
QTY_PRECISION = 8
TICKS_PER_UNIT = 10**PRICE_PRECISION
SATS_PER_BTC = 10**QTY_PRECISION
MIN_SATS = 10_000  # 0.0001 BTC: smallest resting size the model creates
MAX_SATS = 500_000_000  # 5 BTC: largest resting size
DEFAULT_START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: fixed, so runs are reproducible

Level = tuple[int, int]
"""``(ticks, sats)``; ``sats == 0`` in a change means "delete this price level"."""


def price_of(ticks: int) -> float:
    """Price as a float exactly as a client parses it from the 1-decimal wire text."""
    return ticks / TICKS_PER_UNIT


def qty_of(sats: int) -> float:
    """Size as a float exactly as a client parses it from the 8-decimal wire text."""
    return sats / SATS_PER_BTC


def ticks_of(price: float) -> int:
    """Integer ticks of a grid price (inverse of :func:`price_of`)."""
    return round(price * TICKS_PER_UNIT)


class BookChange(NamedTuple):
    """One book message of the full (unbounded) book: levels in the order they apply.

    ``kind`` says why it happened: ``"update"`` (adds/cancels behind the top), ``"trade"`` (a
    trade reduced the top level), ``"move"`` (the best bid or ask price changed).
    """

    ts_ns: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    kind: str


class TradePrint(NamedTuple):
    """One public trade; ``side`` is the taker side."""

    ts_ns: int
    ticks: int
    sats: int
    side: str
    trade_id: int
    ord_type: str

    @property
    def price(self) -> float:
        return price_of(self.ticks)

    @property
    def qty(self) -> float:
        return qty_of(self.sats)


ModelEvent = Union[BookChange, TradePrint]


# --------------------------------------------------------------------------- book


class BookSide:
    """One side of a price-level book. Keys are ``ticks * sign`` so that best-first is ascending
    on both sides (asks: sign +1, bids: sign -1); that keeps every routine side-agnostic."""

    __slots__ = ("sign", "keys", "qty")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.qty: dict[int, int] = {}

    def set_key(self, key: int, sats: int) -> None:
        """Set (or with ``sats == 0`` delete) the level at ``key``."""
        qty = self.qty
        if sats:
            if key not in qty:
                insort(self.keys, key)
            qty[key] = sats
        elif key in qty:
            del qty[key]
            del self.keys[bisect_left(self.keys, key)]

    def set(self, ticks: int, sats: int) -> None:
        self.set_key(ticks * self.sign, sats)

    def top(self, depth: int) -> list[Level]:
        """Best ``depth`` levels as ``(ticks, sats)``, best first."""
        sign, qty = self.sign, self.qty
        return [(k * sign, qty[k]) for k in self.keys[:depth]]

    def best(self) -> Optional[Level]:
        if not self.keys:
            return None
        k = self.keys[0]
        return (k * self.sign, self.qty[k])

    def __len__(self) -> int:
        return len(self.keys)


class LevelBook:
    """The exchange's full L2 book in integer units (what every depth-N view is cut from)."""

    __slots__ = ("bids", "asks")

    def __init__(self) -> None:
        self.bids = BookSide(-1)
        self.asks = BookSide(1)

    def copy(self) -> "LevelBook":
        out = LevelBook()
        for mine, theirs in ((out.bids, self.bids), (out.asks, self.asks)):
            mine.keys = list(theirs.keys)
            mine.qty = dict(theirs.qty)
        return out

    def apply(self, change: BookChange) -> None:
        """Apply a change's levels in order (qty 0 deletes)."""
        bids, asks = self.bids, self.asks
        for ticks, sats in change.bids:
            bids.set_key(-ticks, sats)
        for ticks, sats in change.asks:
            asks.set_key(ticks, sats)

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        """``(bids, asks)``, best first, at most ``depth`` each."""
        return self.bids.top(depth), self.asks.top(depth)

    def bbo(self) -> Optional[tuple[int, int, int, int]]:
        """``(bid_ticks, bid_sats, ask_ticks, ask_sats)`` or None while a side is empty."""
        b, a = self.bids.best(), self.asks.best()
        if b is None or a is None:
            return None
        return (b[0], b[1], a[0], a[1])

    def crossed(self) -> bool:
        """True if the best bid is at or above the best ask (must never happen)."""
        if not self.bids.keys or not self.asks.keys:
            return False
        return -self.bids.keys[0] >= self.asks.keys[0]

    def imbalance(self) -> float:
        """L1 imbalance ``(bid_qty - ask_qty) / (bid_qty + ask_qty)``, in [-1, 1]."""
        bq = self.bids.qty[self.bids.keys[0]]
        aq = self.asks.qty[self.asks.keys[0]]
        return (bq - aq) / (bq + aq)

    def mid2_ticks(self) -> int:
        """Twice the mid price in ticks (an integer, so mid moves compare exactly)."""
        return self.asks.keys[0] - self.bids.keys[0]


_INF = math.inf


class DepthView:
    """What a client subscribed at ``depth`` holds, and the Kraken-style message that keeps it so.

    Kraken sends, per update, only the levels inside the subscribed depth; a level pushed out of
    scope gets **no** delete (the client truncates), a level re-entering scope after a delete is
    sent as an insert. :meth:`update` reproduces that from a full-book change: applying its result
    to the client's book and truncating to ``depth`` yields exactly the top ``depth`` of the full
    book (tests check this over long runs).
    """

    __slots__ = ("depth", "_bids", "_asks")

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = depth
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}

    def snapshot(self, book: LevelBook) -> tuple[list[Level], list[Level]]:
        """Top ``depth`` of the book (best first); resets the view to it."""
        bids, asks = book.top(self.depth)
        self._bids = {-t: s for t, s in bids}
        self._asks = {t: s for t, s in asks}
        return bids, asks

    def update(self, book: LevelBook, change: BookChange) -> tuple[list[Level], list[Level]]:
        """Levels to send for ``change`` (already applied to ``book``): ``(bids, asks)``."""
        return (
            self._side(book.bids, self._bids, change.bids),
            self._side(book.asks, self._asks, change.asks),
        )

    def _side(self, side: BookSide, view: dict[int, int], levels: tuple[Level, ...]) -> list[Level]:
        """Kraken's order: deletions, then levels re-entering the depth, then the changes in the
        order they happened. Every level sent exists in the book after the change, so a client
        that truncates after each level ends where one that truncates after the message does."""
        if not levels:
            return []
        n, sign, keys, qty = self.depth, side.sign, side.keys, side.qty
        boundary = keys[n - 1] if len(keys) >= n else _INF
        deletes: list[Level] = []
        changes: list[Level] = []
        for ticks, sats in levels:
            key = ticks * sign
            if key in qty:  # still there afterwards (a delete then re-add shows as the re-add)
                if sats and key <= boundary:
                    changes.append((ticks, sats))
            elif key in view:
                deletes.append((ticks, 0))
                del view[key]
        for ticks, _ in changes:
            key = ticks * sign
            view[key] = qty[key]
        reentries = [(key * sign, qty[key]) for key in keys[:n] if key not in view]
        for ticks, sats in reentries:
            view[ticks * sign] = sats
        if len(view) > n:  # the client truncates; mirror it
            for key in [k for k in view if k > boundary]:
                del view[key]
        return deletes + reentries + changes

    def levels(self) -> tuple[list[Level], list[Level]]:
        """The view itself (what the client should hold), best first."""
        bids = sorted(((-k, s) for k, s in self._bids.items()), reverse=True)
        asks = sorted(self._asks.items())
        return bids, asks


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class MarketParams:
    """Knobs of the market model; defaults give BTC/EUR-like statistics."""

    updates_per_second: float = 10.0  # book-change messages per second (long-run mean)
    trades_per_second: float = 1.0  # trades per second (long-run mean); 0 = no trades at all
    burstiness: float = 0.6  # Hawkes branching ratio: share of events triggered by earlier ones
    burst_decay_per_s: float = 4.0  # how fast a burst fades (1/s)
    move_share: float = 0.12  # share of book messages that change a best price
    imbalance_weight: float = 0.35  # P(up) = 0.5 + weight * L1 imbalance (predictive only)
    start_price: Optional[float] = None  # None: drawn from the seed in [65000, 85000)
    price_floor: float = 60_000.0  # soft bounds: the drift pushes back near them
    price_cap: float = 90_000.0
    levels_per_side: int = 120  # depth the model keeps per side (>= what clients subscribe)
    min_levels_per_side: int = 30
    level_qty_median: float = 0.12  # BTC, lognormal resting sizes clipped to [0.0001, 5]
    level_qty_sigma: float = 1.3
    trade_qty_median: float = 0.01  # BTC, lognormal trade sizes
    trade_qty_sigma: float = 1.2

    def __post_init__(self) -> None:
        problems = []
        if not self.updates_per_second > 0:
            problems.append("updates_per_second must be > 0")
        if self.trades_per_second < 0:
            problems.append("trades_per_second must be >= 0")
        if self.trades_per_second > 0.5 * self.updates_per_second:
            problems.append("trades_per_second must be <= updates_per_second / 2")
        if not 0 <= self.burstiness < 1:
            problems.append("burstiness must be in [0, 1)")
        if not 0 < self.move_share < 0.5:
            problems.append("move_share must be in (0, 0.5)")
        if not 0 <= self.imbalance_weight <= 0.45:
            problems.append("imbalance_weight must be in [0, 0.45]")
        if self.min_levels_per_side < 10 or self.levels_per_side < self.min_levels_per_side:
            problems.append("need 10 <= min_levels_per_side <= levels_per_side")
        if not 0 < self.price_floor < self.price_cap:
            problems.append("need 0 < price_floor < price_cap")
        if problems:
            raise ValueError("MarketParams: " + "; ".join(problems))


_CHUNK = 1 << 15

# Calibrated on long runs: sweep trades per book message = move_share * _RETREAT_SHARE * E[k] * p_sweep.
_RETREAT_SHARE = 0.42
_SWEEP_LEVELS_MEAN = 1.2
_P_SWEEP = 0.35


class _Draws:
    """Pre-drawn uniforms/normals: numpy speed, consumed one by one in a fixed (seeded) order."""

    __slots__ = ("_rng", "_u", "_ui", "_n", "_ni")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._u: list[float] = []
        self._ui = 0
        self._n: list[float] = []
        self._ni = 0

    def u(self) -> float:
        """Uniform in [0, 1)."""
        i = self._ui
        if i >= len(self._u):
            self._u = self._rng.random(_CHUNK).tolist()
            i = 0
        self._ui = i + 1
        return self._u[i]

    def n(self) -> float:
        """Standard normal."""
        i = self._ni
        if i >= len(self._n):
            self._n = self._rng.standard_normal(_CHUNK).tolist()
            i = 0
        self._ni = i + 1
        return self._n[i]


class MarketModel:
    """Seeded generator of book changes and trades (see module docstring for the design).

    ``MarketModel(seed).events(duration_s)`` yields :class:`TradePrint` and :class:`BookChange`
    in exchange-time order (a trade comes just before the book change it caused, same ``ts_ns``).
    ``book`` is the full book *after* the last yielded event. Calling :meth:`events` again
    continues where the previous call stopped.
    """

    def __init__(
        self,
        seed: int = 0,
        predictive: bool = True,
        start_ns: Optional[int] = None,
        params: Optional[MarketParams] = None,
        *,
        updates_per_second: Optional[float] = None,
        trades_per_second: Optional[float] = None,
    ) -> None:
        p = params or MarketParams()
        overrides = {k: v for k, v in (("updates_per_second", updates_per_second),
                                       ("trades_per_second", trades_per_second)) if v is not None}
        if overrides:  # both at once: validation must see the final pair, not a half-updated one
            p = replace(p, **overrides)
        self.params = p
        self.seed = seed
        self.predictive = predictive
        # exchange timestamps have microsecond resolution on the wire: keep them exact
        self.start_ns = (DEFAULT_START_NS if start_ns is None else int(start_ns)) // 1000 * 1000
        rng = np.random.default_rng(seed)
        self._d = _Draws(rng)
        self.book = LevelBook()
        self.trade_id = int(rng.integers(10_000_000, 90_000_000))
        self._t = 0.0  # model seconds: time of the last event
        self._clock = 0.0  # end of the last generated window
        self._next_t: Optional[float] = None
        self._beta = p.burst_decay_per_s
        self._mu = p.updates_per_second * (1.0 - p.burstiness)
        self._alpha = p.burstiness * self._beta
        self._excess = 0.0  # Hawkes intensity above the base rate, just after the last event
        self._p_move = p.move_share
        self._p_sweep, self._p_trade = self._trade_mix(p)
        self._lq = (p.level_qty_median * SATS_PER_BTC, p.level_qty_sigma)
        self._tq = (p.trade_qty_median * SATS_PER_BTC, p.trade_qty_sigma)
        self._floor_ticks2 = 2 * ticks_of(p.price_floor * 1.02)
        self._cap_ticks2 = 2 * ticks_of(p.price_cap * 0.98)
        self.counts = {"book_changes": 0, "trades": 0, "moves": 0}
        start_price = p.start_price if p.start_price is not None else 65_000 + 20_000 * float(rng.random())
        self.open_ticks = ticks_of(start_price)
        self._seed_book(self.open_ticks)

    # ------------------------------------------------------------------ public

    @property
    def now_ns(self) -> int:
        """Exchange time up to which events have been generated."""
        return self.start_ns + int(self._clock * 1e6) * 1000

    def events(self, duration_s: Optional[float] = None) -> Iterator[ModelEvent]:
        """Events of the next ``duration_s`` model seconds (forever if None), in time order."""
        end = _INF if duration_s is None else self._clock + duration_s
        start_ns = self.start_ns
        step = self._step
        while True:
            t = self._next_t
            if t is None:
                t = self._next_arrival()
            if t > end:
                self._next_t = t
                self._clock = end
                return
            self._next_t = None
            self._clock = t
            yield from step(start_ns + int(t * 1e6) * 1000)

    # ------------------------------------------------------------------ arrivals and mix

    @staticmethod
    def _trade_mix(p: MarketParams) -> tuple[float, float]:
        """(P(a move sweeps with trades), P(a plain trade event)) giving ``trades_per_second``."""
        ratio = p.trades_per_second / p.updates_per_second
        sweep_per_move = _RETREAT_SHARE * _SWEEP_LEVELS_MEAN
        p_sweep = min(_P_SWEEP, ratio / (p.move_share * sweep_per_move))
        p_trade = max(0.0, ratio - p.move_share * sweep_per_move * p_sweep) / (1.0 - p.move_share)
        return p_sweep, p_trade

    def _next_arrival(self) -> float:
        """Next Hawkes arrival (exact simulation for an exponential kernel)."""
        d, beta, excess = self._d, self._beta, self._excess
        s = -math.log(1.0 - d.u()) / self._mu
        if excess > 1e-12:
            dd = 1.0 + beta * math.log(1.0 - d.u()) / excess
            if dd > 0.0:
                s = min(s, -math.log(dd) / beta)
        self._excess = excess * math.exp(-beta * s) + self._alpha
        self._t += s
        return self._t

    def _step(self, ts_ns: int) -> list[ModelEvent]:
        u = self._d.u()
        if u < self._p_move:
            return self._move(ts_ns)
        if u < self._p_move + (1.0 - self._p_move) * self._p_trade:
            return self._trade(ts_ns)
        return self._update(ts_ns)

    # ------------------------------------------------------------------ sizes and levels

    def _level_qty(self) -> int:
        d = self._d
        median, sigma = self._lq
        sats = int(median * math.exp(sigma * d.n()))
        sats = MIN_SATS if sats < MIN_SATS else MAX_SATS if sats > MAX_SATS else sats
        if d.u() < 0.35:  # humans and bots like round sizes (0.1, 0.5, 1.0 ...)
            grain = 10 ** max(4, len(str(sats)) - 2)
            sats = max(MIN_SATS, round(sats / grain) * grain)
        return sats

    def _trade_qty(self) -> int:
        median, sigma = self._tq
        sats = int(median * math.exp(sigma * self._d.n()))
        return MIN_SATS if sats < MIN_SATS else MAX_SATS if sats > MAX_SATS else sats

    def _gap(self) -> int:
        """Ticks between neighbouring levels: mostly adjacent, sometimes sparse."""
        return 1 + int(-math.log(1.0 - self._d.u()) * 0.9)

    def _level_index(self, n: int) -> int:
        """Which level an ordinary update touches: most activity sits near the top."""
        i = int(-math.log(1.0 - self._d.u()) * 4.0)
        return i if i < n else n - 1

    def _seed_book(self, bid_ticks: int) -> None:
        levels = self.params.levels_per_side
        for side, first in ((self.book.bids, -bid_ticks), (self.book.asks, bid_ticks + 1)):
            key = first
            for _ in range(levels):
                side.set_key(key, self._level_qty())
                key += self._gap()

    @staticmethod
    def _set(side: BookSide, key: int, sats: int, out: list[Level]) -> None:
        side.set_key(key, sats)
        out.append((key * side.sign, sats))

    def _print(self, ts_ns: int, ticks: int, sats: int, side: str) -> TradePrint:
        self.trade_id += 1
        ord_type = "market" if self._d.u() < 0.8 else "limit"
        return TradePrint(ts_ns, ticks, sats, side, self.trade_id, ord_type)

    def _change(self, ts_ns: int, bo: list[Level], ao: list[Level], kind: str) -> BookChange:
        self.counts["book_changes"] += 1
        return BookChange(ts_ns, tuple(bo), tuple(ao), kind)

    # ------------------------------------------------------------------ event kinds

    def _p_up(self) -> float:
        """Probability that the next best-price move is up."""
        book = self.book
        p = 0.5
        if self.predictive:
            p += self.params.imbalance_weight * book.imbalance()
        mid2 = book.mid2_ticks()
        if mid2 < self._floor_ticks2:
            p += 0.1
        elif mid2 > self._cap_ticks2:
            p -= 0.1
        return p

    def _move(self, ts_ns: int) -> list[ModelEvent]:
        """Change a best price: advance into a wide spread, or sweep/cancel the other side's top."""
        d, book = self._d, self.book
        up = d.u() < self._p_up()
        adv, ret = (book.bids, book.asks) if up else (book.asks, book.bids)
        adv_out: list[Level] = []
        ret_out: list[Level] = []
        events: list[ModelEvent] = []
        spread = book.asks.keys[0] + book.bids.keys[0]
        if spread > 1 and d.u() < min(0.95, 0.6 + 0.05 * spread):
            key = adv.keys[0] - 1 - int(d.u() * (spread - 1))
            self._set(adv, key, self._level_qty(), adv_out)
        else:
            u = d.u()
            k = 1 if u < 0.85 else 2 if u < 0.95 else 3
            sweep = d.u() < self._p_sweep
            taker = "buy" if up else "sell"
            first_ticks = ret.keys[0] * ret.sign
            key = ret.keys[0]
            for _ in range(min(k, len(ret.keys) - 1)):
                key = ret.keys[0]
                if sweep:
                    events.append(self._print(ts_ns, key * ret.sign, ret.qty[key], taker))
                self._set(ret, key, 0, ret_out)
            if d.u() < 0.6 and key + 1 < ret.keys[0]:  # refill right behind: spreads stay tight
                self._set(ret, key + 1, self._level_qty(), ret_out)
            if d.u() < 0.3:  # the swept price flips to the advancing side
                self._set(adv, first_ticks * adv.sign, self._level_qty(), adv_out)
        self._maintain(book.bids, adv_out if up else ret_out)
        self._maintain(book.asks, ret_out if up else adv_out)
        self.counts["moves"] += 1
        self.counts["trades"] += len(events)
        bo, ao = (adv_out, ret_out) if up else (ret_out, adv_out)
        events.append(self._change(ts_ns, bo, ao, "move"))
        return events

    def _trade(self, ts_ns: int) -> list[ModelEvent]:
        """A taker trade that reduces, but never empties, the top level it hits."""
        book = self.book
        buy = self._d.u() < 0.5
        hit = book.asks if buy else book.bids
        key = hit.keys[0]
        sats = hit.qty[key]
        out: list[Level] = []
        room = sats - MIN_SATS
        if room < MIN_SATS:  # too thin to trade without moving the price: it gets topped up
            self._set(hit, key, sats + self._level_qty(), out)
            bo, ao = ([], out) if buy else (out, [])
            return [self._change(ts_ns, bo, ao, "update")]
        qty = min(self._trade_qty(), room)
        trade = self._print(ts_ns, key * hit.sign, qty, "buy" if buy else "sell")
        self._set(hit, key, sats - qty, out)
        self.counts["trades"] += 1
        bo, ao = ([], out) if buy else (out, [])
        return [trade, self._change(ts_ns, bo, ao, "trade")]

    def _update(self, ts_ns: int) -> list[ModelEvent]:
        """Adds, cancels and new levels behind the top; 1 level usually, up to 5."""
        d, book = self._d, self.book
        bo: list[Level] = []
        ao: list[Level] = []
        u = d.u()
        n = 1 if u < 0.7 else 2 if u < 0.92 else 3 if u < 0.98 else 5
        for _ in range(n):
            if d.u() < 0.5:
                self._change_level(book.bids, bo)
            else:
                self._change_level(book.asks, ao)
        self._maintain(book.bids, bo)
        self._maintain(book.asks, ao)
        return [self._change(ts_ns, bo, ao, "update")]

    def _change_level(self, side: BookSide, out: list[Level]) -> None:
        d = self._d
        keys = side.keys
        i = self._level_index(len(keys))
        key = keys[i]
        r = d.u()
        if 0.55 <= r < 0.8:  # a new level in the gap behind level i (never better than the best)
            nxt = keys[i + 1] if i + 1 < len(keys) else key + 1 + self._gap()
            if nxt - key > 1:
                self._set(side, key + 1 + int(d.u() * (nxt - key - 1)), self._level_qty(), out)
                return
        elif r >= 0.8 and i > 0 and len(keys) > self.params.min_levels_per_side:
            self._set(side, key, 0, out)
            return
        self._set(side, key, self._modified_qty(side.qty[key], i > 0), out)
        if key in side.qty and d.u() < 0.05:  # the same level changes twice in one message: clients apply in order
            self._set(side, key, self._modified_qty(side.qty[key], False), out)

    def _modified_qty(self, sats: int, may_delete: bool) -> int:
        z = self._d.u()
        if z < 0.35:
            return self._level_qty()
        chunk = 3 * self._trade_qty()
        if z < 0.7:
            return min(MAX_SATS, sats + chunk)
        left = sats - chunk
        if left >= MIN_SATS:
            return left
        return 0 if may_delete else MIN_SATS

    def _maintain(self, side: BookSide, out: list[Level]) -> None:
        """Keep the depth between the bounds: trim the far end, or add levels beyond it."""
        p = self.params
        n = len(side.keys)
        if n > p.levels_per_side + 10:
            self._set(side, side.keys[-1], 0, out)
        elif n < p.levels_per_side and (n < p.min_levels_per_side or self._d.u() < 0.2):
            self._set(side, side.keys[-1] + self._gap(), self._level_qty(), out)


# --------------------------------------------------------------------------- ticker statistics


class TickerStats:
    """24h-style ticker statistics: a plausible prior day (from the open price) plus session trades.

    Kraken's ticker carries rolling 24h figures; a fresh simulator has no history, so it starts
    from a fixed prior (volume 250 BTC at the open price, +-1 % range) and updates with every trade.
    """

    __slots__ = ("open_ticks", "last_ticks", "volume_sats", "notional", "low_ticks", "high_ticks")

    def __init__(self, open_ticks: int) -> None:
        self.open_ticks = open_ticks
        self.last_ticks = open_ticks
        self.volume_sats = 250 * SATS_PER_BTC
        self.notional = open_ticks * self.volume_sats  # ticks * sats
        self.low_ticks = open_ticks * 99 // 100
        self.high_ticks = open_ticks * 101 // 100

    def on_trade(self, trade: TradePrint) -> None:
        t = trade.ticks
        self.last_ticks = t
        self.volume_sats += trade.sats
        self.notional += t * trade.sats
        if t < self.low_ticks:
            self.low_ticks = t
        if t > self.high_ticks:
            self.high_ticks = t

    def fields(self) -> dict[str, float]:
        """The ticker's statistics fields, rounded to what the wire carries."""
        change = self.last_ticks - self.open_ticks
        return {
            "last": price_of(self.last_ticks),
            "volume": qty_of(self.volume_sats),
            "vwap": round(self.notional / self.volume_sats / TICKS_PER_UNIT, PRICE_PRECISION),
            "low": price_of(self.low_ticks),
            "high": price_of(self.high_ticks),
            "change": price_of(change),
            "change_pct": round(100.0 * change / self.open_ticks, 2),
        }

    def int_fields(self) -> dict[str, int]:
        """The same fields in integer units (ticks, satoshis, change in hundredths of a percent),
        for writing them at the pair's precision."""
        change = self.last_ticks - self.open_ticks
        return {
            "last": self.last_ticks,
            "volume": self.volume_sats,
            "vwap": round(self.notional / self.volume_sats),
            "low": self.low_ticks,
            "high": self.high_ticks,
            "change": change,
            "change_pct_x100": round(10_000 * change / self.open_ticks),
        }
