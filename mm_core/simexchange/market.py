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
MAX_SATS = 5_000_000_000  # 50 BTC: largest resting size
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

    def truncate(self, depth: int) -> None:
        """Keep the best ``depth`` levels per side (what a depth-N client holds)."""
        for side in (self.bids, self.asks):
            for key in side.keys[depth:]:
                del side.qty[key]
            del side.keys[depth:]

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
    """Knobs of the market model. The defaults are the ``default`` profile, fitted to real Kraken
    depth-10 book traffic (``config/sim-profiles/default.toml`` says where each number comes from);
    :mod:`mm_core.simexchange.profiles` loads other profiles from TOML with strict validation.

    Message kinds (one side each, like every real Kraken update in the reference recording) in a
    calm market, as shares of the book messages that are neither trades nor best-price moves:
    ``top_qty`` (the best level's size changes), ``level_qty`` (a size deeper in the top 10),
    ``insert`` (a new price level behind the best), ``delete`` (a level behind the best goes;
    the next one re-enters the depth-10 view). Trades come on top at ``trades_per_second``; best-price
    moves are ``move_share`` of all book messages (``spell_move_share`` in volatile spells).
    """

    # arrivals: depth-10 book messages as a Hawkes process with exponential kernels
    updates_per_second: float = 10.0  # long-run mean, spells included
    burst_branching: tuple[float, ...] = (0.083, 0.677)  # share of messages each kernel triggers
    burst_decay_per_s: tuple[float, ...] = (4284.0, 36.0)  # how fast each kernel fades (1/s)
    deep_updates_per_second: float = 1.0  # extra changes below the top 10 (Poisson), unseen at depth 10
    # message mix in calm markets
    top_qty_share: float = 0.34
    level_qty_share: float = 0.2
    insert_share: float = 0.23
    delete_share: float = 0.23
    move_share: float = 0.004  # best-price retreats (a best level cancelled or swept)
    close_share: float = 0.9  # after the spread widened: share of next messages that narrow it
    close_to_one_tick: float = 0.85  # a narrowing level goes right next to the other side's best
    double_change_share: float = 0.08  # a size message also changes the neighbouring level
    busy_side_share: float = 0.7  # a best-size change hits the side with the larger best size
    qty_rank_weights: tuple[float, ...] = (47.0, 4.0, 3.0, 4.0, 3.0, 6.0, 5.0, 8.0, 9.0)  # ranks 1..9
    delete_rank_weights: tuple[float, ...] = (1.0, 3.0, 9.0, 4.0, 6.0, 5.0, 30.0, 31.0, 19.0)  # ranks 1..9
    # book shape and sizes (BTC); level sizes: a mixture of small orders and market-maker quotes
    levels_per_side: int = 120  # depth the model keeps per side (>= what clients subscribe)
    min_levels_per_side: int = 30
    level_gap_ticks: float = 6.0  # mean distance between neighbouring levels
    small_qty_median: float = 0.03
    small_qty_sigma: float = 1.8
    large_qty_median: float = 4.5
    large_qty_sigma: float = 0.9
    large_qty_share: float = 0.6
    top_large_share: float = 0.5  # the same mixture for a new or re-sized best level
    requote_sigma: float = 0.35  # a resized level: log-size random step
    # trades
    trades_per_second: float = 1.0  # taker orders, long-run mean (one walking the book prints per level); 0 = none
    trade_qty_median: float = 0.005
    trade_qty_sigma: float = 2.0
    sweep_share: float = 0.35  # share of best-price retreats that are trades sweeping the level
    sweep_levels_mean: float = 1.0  # levels removed by one retreat (real: every retreat took one)
    # volatility spells (a two-state Markov regime in exchange time)
    spells_per_hour: float = 1.5
    spell_mean_s: float = 60.0
    spell_rate_factor: float = 2.5  # base message rate multiplier inside a spell
    spell_move_share: float = 0.04
    spell_close_share: float = 0.75
    spell_sweep_levels_mean: float = 1.4
    # repricing jumps: the whole top of the book moves at once (news, a large taker, a market move
    # elsewhere), self-exciting so volatility clusters; 0 = none (the quiet market of the reference)
    jumps_per_hour: float = 0.0  # long-run rate
    jump_bp: float = 3.0  # root-mean-square jump of the mid (bp); sizes are Laplace (heavy-tailed)
    jump_branching: float = 0.0  # share of jumps triggered by earlier ones (Hawkes)
    jump_decay_s: float = 300.0  # how long a jump raises the odds of the next one
    # direction of best-price moves (predictive models only)
    imbalance_weight: float = 0.45  # P(up) = 0.5 + weight * L1 imbalance
    start_price: Optional[float] = None  # None: drawn from the seed in [65000, 85000)
    price_floor: float = 60_000.0  # soft bounds: the drift pushes back near them
    price_cap: float = 90_000.0

    def __post_init__(self) -> None:
        problems = _param_problems(self)
        if problems:
            raise ValueError("MarketParams: " + "; ".join(problems))

    @property
    def spell_time_share(self) -> float:
        """Long-run share of time spent in volatile spells."""
        x = self.spells_per_hour * self.spell_mean_s / 3600.0
        return x / (1.0 + x)


def _param_problems(p: MarketParams) -> list[str]:
    out: list[str] = []

    def need(ok: bool, text: str) -> None:
        if not ok:
            out.append(text)

    need(p.updates_per_second > 0, "updates_per_second must be > 0")
    need(p.trades_per_second >= 0, "trades_per_second must be >= 0")
    need(p.trades_per_second <= 0.5 * p.updates_per_second, "trades_per_second must be <= updates_per_second / 2")
    need(p.deep_updates_per_second >= 0, "deep_updates_per_second must be >= 0")
    need(len(p.burst_branching) == len(p.burst_decay_per_s) and len(p.burst_branching) >= 1,
         "burst_branching and burst_decay_per_s need the same number (>= 1) of kernels")
    need(all(n >= 0 for n in p.burst_branching) and sum(p.burst_branching) < 1,
         "burst_branching must be >= 0 each and sum to < 1 (a stationary Hawkes process)")
    need(all(b > 0 for b in p.burst_decay_per_s), "burst_decay_per_s must be > 0")
    for name in ("top_qty_share", "level_qty_share", "insert_share", "delete_share"):
        need(getattr(p, name) >= 0, f"{name} must be >= 0")
    need(p.top_qty_share + p.level_qty_share + p.insert_share + p.delete_share > 0, "the message mix shares sum to 0")
    for name in ("move_share", "spell_move_share"):
        need(0 < getattr(p, name) < 0.5, f"{name} must be in (0, 0.5)")
    for name in ("close_share", "spell_close_share", "close_to_one_tick", "double_change_share",
                 "busy_side_share", "large_qty_share", "top_large_share", "sweep_share"):
        need(0 <= getattr(p, name) <= 1, f"{name} must be in [0, 1]")
    for name in ("qty_rank_weights", "delete_rank_weights"):
        w = getattr(p, name)
        need(len(w) == 9 and all(x >= 0 for x in w) and sum(w) > 0, f"{name} needs 9 weights >= 0 (ranks 1..9), not all 0")
    need(p.min_levels_per_side >= 12 and p.levels_per_side >= p.min_levels_per_side,
         "need 12 <= min_levels_per_side <= levels_per_side")
    need(p.level_gap_ticks >= 1, "level_gap_ticks must be >= 1")
    for name in ("small_qty_median", "large_qty_median", "trade_qty_median"):
        need(1e-4 <= getattr(p, name) <= 50, f"{name} must be in [0.0001, 50] BTC")
    for name in ("small_qty_sigma", "large_qty_sigma", "trade_qty_sigma", "requote_sigma"):
        need(0 <= getattr(p, name) <= 4, f"{name} must be in [0, 4]")
    need(p.sweep_levels_mean >= 1 and p.spell_sweep_levels_mean >= 1, "sweep levels means must be >= 1")
    need(p.spells_per_hour >= 0 and p.spell_mean_s > 0, "spells_per_hour >= 0 and spell_mean_s > 0")
    need(p.spell_rate_factor > 0, "spell_rate_factor must be > 0")
    need(p.jumps_per_hour >= 0 and 0 < p.jump_bp <= 100, "need jumps_per_hour >= 0 and 0 < jump_bp <= 100")
    need(0 <= p.jump_branching < 1 and p.jump_decay_s > 0, "need 0 <= jump_branching < 1 and jump_decay_s > 0")
    need(0 <= p.imbalance_weight <= 0.45, "imbalance_weight must be in [0, 0.45]")
    need(0 < p.price_floor < p.price_cap, "need 0 < price_floor < price_cap")
    return out


_CHUNK = 1 << 15
_RANKS = 9  # ranks 1..9 behind the best: the rest of a depth-10 view


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

    def exp(self) -> float:
        """Standard exponential."""
        return -math.log(1.0 - self.u())


def _cumulative(weights: tuple[float, ...]) -> list[float]:
    total = float(sum(weights))
    acc = 0.0
    out = []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def _pick(cum: list[float], u: float) -> int:
    """Index drawn from cumulative weights (ranks are ``index + 1``)."""
    return bisect_left(cum, u)


class _Regime:
    """Per-regime constants, precomputed so the hot path reads attributes only."""

    __slots__ = ("mu", "move", "trade", "close", "sweep_levels_mean", "mix")

    def __init__(self, mu: float, move: float, trade: float, close: float, sweep_levels_mean: float,
                 mix: list[float]) -> None:
        self.mu = mu
        self.move = move
        self.trade = trade
        self.close = close
        self.sweep_levels_mean = sweep_levels_mean
        self.mix = mix


class MarketModel:
    """Seeded generator of book changes and trades.

    ``MarketModel(seed).events(duration_s)`` yields :class:`TradePrint` and :class:`BookChange`
    in exchange-time order (a trade comes just before the book change it caused, same ``ts_ns``).
    ``book`` is the full book *after* the last yielded event. Calling :meth:`events` again
    continues where the previous call stopped.

    Why it behaves as it does:

    - **Bursty arrivals**: a Hawkes process with a fast (sub-millisecond) and a slow (tens of ms)
      exponential kernel, simulated exactly (Dassios & Zhao 2013, one candidate per kernel); the
      base rate rises in volatile spells (a two-state Markov regime).
    - **One side per message**, and nearly all messages are size changes, new levels and deletions
      *behind* an unchanged best price: the spread sits at one tick almost all the time. A
      best-price *retreat* (a best level cancelled or swept by trades) widens it; the next messages
      narrow it again (``close_share``), less eagerly in spells.
    - **Only retreats and narrowing messages change the best prices**, and their direction is drawn
      explicitly: ``P(up) = 0.5 + imbalance_weight * L1 imbalance`` when ``predictive=True``,
      exactly 0.5 when ``predictive=False``. Size changes never empty the best level and trades
      never sweep it outside a retreat, so with ``predictive=False`` nothing in the book carries
      information about the next mid move -- research must find no edge then.
    - **Heavy-tailed sizes**: levels are small orders or market-maker quotes (two lognormals);
      the best level's size is re-quoted mostly on the side that holds the larger one.
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
        self.counts = {"book_changes": 0, "trades": 0, "moves": 0, "spells": 0, "jumps": 0}
        self._clock = 0.0  # end of the last generated window
        self._t = 0.0  # time of the last book arrival (Hawkes clock)
        self._next_book: Optional[float] = None
        self._next_deep = self._d.exp() / p.deep_updates_per_second if p.deep_updates_per_second > 0 else _INF
        self._beta = list(p.burst_decay_per_s)
        self._alpha = [n * b for n, b in zip(p.burst_branching, p.burst_decay_per_s)]
        self._excess = [0.0] * len(self._beta)
        self._calm, self._spell = self._regimes(p)
        self._sweep_share = p.sweep_share if p.trades_per_second > 0 else 0.0  # 0 trades/s: none at all
        self._in_spell = False
        self._regime = self._calm
        # jumps draw from their own stream: a profile without them keeps the book stream of old
        self._jr = np.random.default_rng([seed, 0x6A756D70]) if p.jumps_per_hour > 0 else None
        self._jump_mu = p.jumps_per_hour / 3600.0 * (1.0 - p.jump_branching)
        self._jump_beta = 1.0 / p.jump_decay_s
        self._jump_excess = 0.0
        self._next_jump = self._jump_arrival(0.0) if self._jr is not None else _INF
        self._switch_at = self._d.exp() * 3600.0 / p.spells_per_hour if p.spells_per_hour > 0 else _INF
        self._qty_cum = _cumulative(p.qty_rank_weights)
        self._del_cum = _cumulative(p.delete_rank_weights)
        self._small = (math.log(p.small_qty_median * SATS_PER_BTC), p.small_qty_sigma)
        self._large = (math.log(p.large_qty_median * SATS_PER_BTC), p.large_qty_sigma)
        self._tq = (math.log(p.trade_qty_median * SATS_PER_BTC), p.trade_qty_sigma)
        self._gap_mean = p.level_gap_ticks - 1.0
        self._insert_span = max(_RANKS + 2, int(round((_RANKS + 1) * p.level_gap_ticks)))
        self._span_hi = int(1.5 * self._insert_span)
        self._span_lo = max(_RANKS + 1, self._insert_span // 3)
        self._refill = {-1: 0, 1: 0}  # per side (sign): ladder levels owed behind a best that jumped
        self._floor_ticks2 = 2 * ticks_of(p.price_floor * 1.02)
        self._cap_ticks2 = 2 * ticks_of(p.price_cap * 0.98)
        start_price = p.start_price if p.start_price is not None else 65_000 + 20_000 * float(rng.random())
        self.open_ticks = ticks_of(start_price)
        self._seed_book(self.open_ticks)

    # ------------------------------------------------------------------ public

    @property
    def now_ns(self) -> int:
        """Exchange time up to which events have been generated."""
        return self.start_ns + int(self._clock * 1e6) * 1000

    @property
    def in_spell(self) -> bool:
        """True while the market is in a volatile spell."""
        return self._in_spell

    def events(self, duration_s: Optional[float] = None) -> Iterator[ModelEvent]:
        """Events of the next ``duration_s`` model seconds (forever if None), in time order."""
        end = _INF if duration_s is None else self._clock + duration_s
        start_ns = self.start_ns
        while True:
            t = self._next_book
            if t is None:
                t = self._next_book = self._next_arrival()
            deep = self._next_deep < t
            if deep:
                t = self._next_deep
            jump = self._next_jump < t
            if jump:
                t = self._next_jump
            if t > end:
                self._clock = end
                return
            self._clock = t
            ts_ns = start_ns + int(t * 1e6) * 1000
            if jump:
                self._next_jump = self._jump_arrival(t)
                yield from self._jump(ts_ns)
            elif deep:
                self._next_deep = t + self._d.exp() / self.params.deep_updates_per_second
                yield from self._deep(ts_ns)
            else:
                self._next_book = None
                yield from self._step(ts_ns)

    # ------------------------------------------------------------------ arrivals and regimes

    @staticmethod
    def _regimes(p: MarketParams) -> tuple[_Regime, _Regime]:
        """Calm and spell constants: base rates giving ``updates_per_second`` in the long run, and
        a trade share giving ``trades_per_second`` (sweeping retreats print trades too)."""
        share = p.spell_time_share
        n = sum(p.burst_branching)
        mu_calm = p.updates_per_second * (1.0 - n) / ((1.0 - share) + share * p.spell_rate_factor)
        mu_spell = mu_calm * p.spell_rate_factor
        # messages from each regime, as a share of all book messages
        w_spell = share * p.spell_rate_factor / ((1.0 - share) + share * p.spell_rate_factor)
        sweep_calm = p.move_share * p.sweep_share * p.sweep_levels_mean
        sweep_spell = p.spell_move_share * p.sweep_share * p.spell_sweep_levels_mean
        sweeps = (1.0 - w_spell) * sweep_calm + w_spell * sweep_spell
        ratio = p.trades_per_second / p.updates_per_second
        trade = max(0.0, ratio - sweeps)
        weights = (p.top_qty_share, p.level_qty_share, p.insert_share, p.delete_share)
        mix = _cumulative(weights)
        calm = _Regime(mu_calm, p.move_share, trade, p.close_share, p.sweep_levels_mean, mix)
        spell = _Regime(mu_spell, p.spell_move_share, trade, p.spell_close_share, p.spell_sweep_levels_mean, mix)
        return calm, spell

    def _switch(self) -> None:
        p = self.params
        self._in_spell = not self._in_spell
        if self._in_spell:
            self.counts["spells"] += 1
            self._regime = self._spell
            self._switch_at += self._d.exp() * p.spell_mean_s
        else:
            self._regime = self._calm
            self._switch_at += self._d.exp() * 3600.0 / p.spells_per_hour

    def _next_arrival(self) -> float:
        """Next book message: exact Hawkes simulation, regime switches in between handled by
        restarting from the state at the switch (the process is Markov in its excess intensities)."""
        d, beta, excess = self._d, self._beta, self._excess
        k = len(beta)
        while True:
            s = d.exp() / self._regime.mu
            for i in range(k):
                e = excess[i]
                if e > 1e-12:
                    dd = 1.0 + beta[i] * math.log(1.0 - d.u()) / e
                    if dd > 0.0:
                        c = -math.log(dd) / beta[i]
                        if c < s:
                            s = c
            if self._t + s > self._switch_at:
                dt = self._switch_at - self._t
                for i in range(k):
                    excess[i] *= math.exp(-beta[i] * dt)
                self._t = self._switch_at
                self._switch()
                continue
            for i in range(k):
                excess[i] = excess[i] * math.exp(-beta[i] * s) + self._alpha[i]
            self._t += s
            return self._t

    def _jump_arrival(self, t: float) -> float:
        """Next jump after ``t``: exact one-kernel Hawkes simulation on the jump stream."""
        jr, beta = self._jr, self._jump_beta
        assert jr is not None
        s = jr.exponential() / self._jump_mu
        e = self._jump_excess
        if e > 1e-15:
            dd = 1.0 + beta * math.log(1.0 - jr.random()) / e
            if dd > 0.0:
                s = min(s, -math.log(dd) / beta)
        self._jump_excess = e * math.exp(-beta * s) + self.params.jump_branching * beta
        return t + s

    def _jump(self, ts_ns: int) -> list[ModelEvent]:
        """The top of the book moves at once, in one two-sided message: the side in the way is
        cleared up to the new price (its far end refilled), the other side quotes a fresh ladder
        right behind it -- the spread stays one tick, the mid moves by a Laplace-sized jump."""
        jr, p, book = self._jr, self.params, self.book
        assert jr is not None
        p_up = 0.5
        mid2 = book.mid2_ticks()
        if mid2 < self._floor_ticks2:
            p_up += 0.1
        elif mid2 > self._cap_ticks2:
            p_up -= 0.1
        up = jr.random() < p_up
        ticks = abs(jr.laplace(0.0, p.jump_bp / math.sqrt(2.0))) * 1e-4 * mid2 / 2.0
        n = max(1, int(round(ticks)))
        cleared, other = (book.asks, book.bids) if up else (book.bids, book.asks)
        out_c: list[Level] = []
        out_o: list[Level] = []
        target = cleared.keys[0] + n
        while cleared.keys and cleared.keys[0] < target:
            self._set(cleared, cleared.keys[0], 0, out_c)
        far = cleared.keys[-1] if cleared.keys else target
        while len(cleared.keys) < p.levels_per_side:
            far += self._gap()
            self._set(cleared, far, self._level_qty(), out_c)
        key = 1 - cleared.keys[0]  # one tick inside the new best of the cleared side
        old_best = other.keys[0]
        for i in range(_RANKS + 1):
            if key >= old_best:
                break
            self._set(other, key, self._level_qty(p.top_large_share if i == 0 else None), out_o)
            key += self._gap()
        while len(other.keys) > p.levels_per_side + 10:
            self._set(other, other.keys[-1], 0, out_o)
        self._refill[cleared.sign] = self._refill[other.sign] = 0
        self.counts["jumps"] += 1
        self.counts["book_changes"] += 1
        bids, asks = (out_o, out_c) if up else (out_c, out_o)
        return [BookChange(ts_ns, tuple(bids), tuple(asks), "move")]

    def _step(self, ts_ns: int) -> list[ModelEvent]:
        d, r, book = self._d, self._regime, self.book
        if book.asks.keys[0] + book.bids.keys[0] > 1 and d.u() < r.close:
            return self._close(ts_ns)
        u = d.u()
        if u < r.move:
            return self._retreat(ts_ns)
        u -= r.move
        if u < r.trade:
            return self._trade(ts_ns)
        kind = _pick(r.mix, d.u())
        if kind == 0:
            return self._top_qty(ts_ns)
        if kind == 1:
            return self._level_qty_change(ts_ns)
        side = self._side()
        # a thermostat on the depth-10 range keeps the book's profile around the mid: a side whose
        # top 10 spread too far gets levels, one packed too tight loses some
        span = side.keys[_RANKS] - side.keys[0]
        if span > self._span_hi:
            kind = 2
        elif span < self._span_lo:
            kind = 3
        if kind == 2:
            return self._insert(ts_ns, side)
        return self._delete(ts_ns, side)

    # ------------------------------------------------------------------ sizes and levels

    def _level_qty(self, large_share: Optional[float] = None) -> int:
        """A new level's size: a small order or a market-maker quote (two lognormals)."""
        d, p = self._d, self.params
        share = p.large_qty_share if large_share is None else large_share
        mu, sigma = self._large if d.u() < share else self._small
        sats = int(math.exp(mu + sigma * d.n()))
        sats = MIN_SATS if sats < MIN_SATS else MAX_SATS if sats > MAX_SATS else sats
        if d.u() < 0.35:  # humans and bots like round sizes (0.1, 0.5, 1.0 ...)
            grain = 10 ** max(4, len(str(sats)) - 2)
            sats = max(MIN_SATS, round(sats / grain) * grain)
        return sats

    def _requote(self, sats: int, large_share: Optional[float] = None) -> int:
        """A resting level's new size: a log-size random step, or a fresh order size."""
        d = self._d
        if d.u() < 0.3:
            return self._level_qty(large_share)
        new = int(sats * math.exp(self.params.requote_sigma * d.n()))
        return MIN_SATS if new < MIN_SATS else MAX_SATS if new > MAX_SATS else new

    def _trade_qty(self) -> int:
        mu, sigma = self._tq
        sats = int(math.exp(mu + sigma * self._d.n()))
        return MIN_SATS if sats < MIN_SATS else MAX_SATS if sats > MAX_SATS else sats

    def _geometric(self, mean: float) -> int:
        """A count >= 0 with the given mean (geometric: each further level as likely as the last);
        one draw whatever the mean, so changing it does not shift the rest of the seeded stream."""
        u = self._d.u()
        if mean <= 0.0:
            return 0
        return int(math.log(1.0 - u) / math.log(mean / (1.0 + mean)))

    def _gap(self) -> int:
        """Ticks between neighbouring levels (1 + exponential, mean ``level_gap_ticks``)."""
        return 1 + int(self._d.exp() * self._gap_mean)

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
        self.counts["trades"] += 1
        ord_type = "market" if self._d.u() < 0.8 else "limit"
        return TradePrint(ts_ns, ticks, sats, side, self.trade_id, ord_type)

    def _change(self, ts_ns: int, side: BookSide, out: list[Level], kind: str) -> BookChange:
        self.counts["book_changes"] += 1
        if side.sign < 0:
            return BookChange(ts_ns, tuple(out), (), kind)
        return BookChange(ts_ns, (), tuple(out), kind)

    def _side(self) -> BookSide:
        return self.book.bids if self._d.u() < 0.5 else self.book.asks

    # ------------------------------------------------------------------ best-price moves

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

    def _retreat(self, ts_ns: int) -> list[ModelEvent]:
        """A best level goes (cancelled, or swept by a taker): the mid moves away from that side."""
        d, book = self._d, self.book
        up = d.u() < self._p_up()
        side = book.asks if up else book.bids
        k = 1 + self._geometric(self._regime.sweep_levels_mean - 1.0)
        k = min(k, len(side.keys) - self.params.min_levels_per_side)
        sweep = d.u() < self._sweep_share
        taker = "buy" if up else "sell"
        events: list[ModelEvent] = []
        out: list[Level] = []
        for _ in range(max(1, k)):
            key = side.keys[0]
            if sweep:
                events.append(self._print(ts_ns, key * side.sign, side.qty[key], taker))
            self._set(side, key, 0, out)
        self._maintain(side, out)
        self._refill[side.sign] = min(_RANKS, self._refill[side.sign] + len(out))  # the ladder is rebuilt behind
        self.counts["moves"] += 1
        events.append(self._change(ts_ns, side, out, "move"))
        return events

    def _close(self, ts_ns: int) -> list[ModelEvent]:
        """A new best level inside a wide spread (the mid moves towards that side's far end)."""
        d, book = self._d, self.book
        spread = book.asks.keys[0] + book.bids.keys[0]
        up = d.u() < self._p_up()
        adv, other = (book.bids, book.asks) if up else (book.asks, book.bids)
        if d.u() < self.params.close_to_one_tick:
            offset = spread - 1  # right next to the other side's best
        else:
            offset = 1 + int(d.u() * (spread - 1))
        out: list[Level] = []
        self._set(adv, adv.keys[0] - offset, self._level_qty(self.params.top_large_share), out)
        self._maintain(adv, out)
        if offset > 1:  # market makers follow with their ladders: the next inserts go behind it
            self._refill[adv.sign] = min(_RANKS, self._refill[adv.sign] + 1 + int(offset / self.params.level_gap_ticks))
        self.counts["moves"] += 1
        return [self._change(ts_ns, adv, out, "move")]

    # ------------------------------------------------------------------ behind the best

    def _trade(self, ts_ns: int) -> list[ModelEvent]:
        """A taker trade at the best. One larger than the best level takes it and walks into the
        levels behind (up to 5), and the best price is quoted again at once by a market maker: the
        trade prints at several prices but the best prices -- and so the mid -- do not move."""
        buy = self._d.u() < 0.5
        hit = self.book.asks if buy else self.book.bids
        key = hit.keys[0]
        sats = hit.qty[key]
        if sats < 2 * MIN_SATS:  # too thin to trade without moving the price: the other side then
            buy = not buy
            hit = self.book.asks if buy else self.book.bids
            key = hit.keys[0]
            sats = hit.qty[key]
        out: list[Level] = []
        room = sats - MIN_SATS
        if room < MIN_SATS:  # both too thin: it gets topped up
            self._set(hit, key, min(MAX_SATS, sats + self._level_qty(self.params.top_large_share)), out)
            return [self._change(ts_ns, hit, out, "update")]
        qty = self._trade_qty()
        taker = "buy" if buy else "sell"
        if qty <= room:
            trade = self._print(ts_ns, key * hit.sign, qty, taker)
            self._set(hit, key, sats - qty, out)
            return [trade, self._change(ts_ns, hit, out, "trade")]
        return self._walk(ts_ns, hit, qty, taker)

    def _walk(self, ts_ns: int, hit: BookSide, qty: int, taker: str) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        out: list[Level] = []
        best = hit.keys[0]
        left = qty
        for _ in range(5):
            if left < MIN_SATS or len(hit.keys) <= self.params.min_levels_per_side:
                break
            key = hit.keys[0]  # the best, then (once it is taken) the next level
            avail = hit.qty[key]
            take = avail if left >= avail - MIN_SATS else left
            events.append(self._print(ts_ns, key * hit.sign, take, taker))
            self._set(hit, key, avail - take, out)
            left -= take
        if best not in hit.qty:  # the best price is quoted again at once
            self._set(hit, best, self._level_qty(self.params.top_large_share), out)
        self._maintain(hit, out)
        self._refill[hit.sign] = min(_RANKS, self._refill[hit.sign] + len(out) - 1)
        events.append(self._change(ts_ns, hit, out, "trade"))
        return events

    def _top_qty(self, ts_ns: int) -> list[ModelEvent]:
        """The best level's size changes, mostly on the side holding the larger best size."""
        d, book = self._d, self.book
        bq = book.bids.qty[book.bids.keys[0]]
        aq = book.asks.qty[book.asks.keys[0]]
        busy = d.u() < self.params.busy_side_share
        side = (book.bids if bq >= aq else book.asks) if busy else (book.asks if bq >= aq else book.bids)
        out: list[Level] = []
        key = side.keys[0]
        self._set(side, key, self._requote(side.qty[key], self.params.top_large_share), out)
        if d.u() < self.params.double_change_share:
            nxt = side.keys[1]
            self._set(side, nxt, self._requote(side.qty[nxt]), out)
        return [self._change(ts_ns, side, out, "update")]

    def _level_qty_change(self, ts_ns: int) -> list[ModelEvent]:
        side = self._side()
        rank = 1 + _pick(self._qty_cum, self._d.u())
        out: list[Level] = []
        key = side.keys[rank]
        self._set(side, key, self._requote(side.qty[key]), out)
        if self._d.u() < self.params.double_change_share:
            other = side.keys[rank - 1]
            self._set(side, other, self._requote(side.qty[other]), out)
        return [self._change(ts_ns, side, out, "update")]

    def _insert(self, ts_ns: int, side: Optional[BookSide] = None) -> list[ModelEvent]:
        """A new level behind the best, at a free tick drawn uniformly between the best and the 10th
        level (at most ``10 * level_gap_ticks`` away): holes left behind when the price jumped fill
        first, so the book's profile follows the mid."""
        d = self._d
        refill = self._refill
        if refill[-1] or refill[1]:  # a best that jumped gets its ladder back first
            sign = (-1 if d.u() < 0.5 else 1) if refill[-1] and refill[1] else (-1 if refill[-1] else 1)
            refill[sign] -= 1
            side = self.book.bids if sign < 0 else self.book.asks
            near = True
        else:
            side = side or self._side()
            near = d.u() < 0.3
        keys = side.keys
        lo = keys[0]
        hi = min(keys[_RANKS], lo + self._insert_span)
        if near:  # right behind the best, where market makers keep their ladders
            key = lo + 1 + int(d.exp() * self._gap_mean * 3.0)
            if key < hi and key not in side.qty:
                out: list[Level] = []
                self._set(side, key, self._level_qty(), out)
                self._maintain(side, out)
                return [self._change(ts_ns, side, out, "update")]
        n_between = bisect_left(keys, hi) - 1  # levels strictly between lo and hi
        free = hi - lo - 1 - n_between  # empty ticks strictly between the best and hi
        if free <= 0:
            return self._level_qty_change(ts_ns)
        j = int(d.u() * free)  # the j-th empty tick
        i = 0
        while True:  # walk the gaps from the best outwards
            room = min(keys[i + 1], hi) - keys[i] - 1
            if j < room:
                key = keys[i] + 1 + j
                break
            j -= room
            i += 1
        out = []
        self._set(side, key, self._level_qty(), out)
        self._maintain(side, out)
        return [self._change(ts_ns, side, out, "update")]

    def _delete(self, ts_ns: int, side: Optional[BookSide] = None) -> list[ModelEvent]:
        """A level behind the best goes; a depth-10 client then sees the 11th re-enter."""
        side = side or self._side()
        if len(side.keys) <= self.params.min_levels_per_side:
            return self._level_qty_change(ts_ns)
        rank = 1 + _pick(self._del_cum, self._d.u())
        out: list[Level] = []
        self._set(side, side.keys[rank], 0, out)
        self._maintain(side, out)
        return [self._change(ts_ns, side, out, "update")]

    def _deep(self, ts_ns: int) -> list[ModelEvent]:
        """A change below the top 10 (seen only by deeper subscriptions): a size change, a deletion,
        or a new level at a free tick drawn uniformly over levels 10..30 (holes fill first)."""
        d = self._d
        side = self._side()
        keys = side.keys
        n = len(keys)
        out: list[Level] = []
        r = d.u()
        if r < 0.4:
            lo, hi = keys[_RANKS], keys[min(n - 1, 3 * (_RANKS + 1))]
            span = hi - lo - 1
            if span > 0:
                key = lo + 1 + int(d.u() * span)
                if key not in side.qty:
                    self._set(side, key, self._level_qty(), out)
        else:
            key = keys[min(n - 1, _RANKS + 1 + int(d.exp() * 12.0))]
            if r < 0.7 and n > self.params.min_levels_per_side:
                self._set(side, key, 0, out)
            else:
                self._set(side, key, self._requote(side.qty[key]), out)
        self._maintain(side, out)
        return [self._change(ts_ns, side, out, "deep")] if out else []

    def _maintain(self, side: BookSide, out: list[Level]) -> None:
        """Keep the depth between the bounds: trim the far end, or add levels beyond it."""
        p = self.params
        n = len(side.keys)
        if n > p.levels_per_side + 10:
            self._set(side, side.keys[-1], 0, out)
        elif n < p.levels_per_side and (n < p.min_levels_per_side or self._d.u() < 0.3):
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
