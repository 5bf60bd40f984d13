"""A real recording as the simulator's market: ``mm simexchange --replay PATH``.

Why: the model imitates a market; a recording *is* one. Served over the socket with the latency
model and fault injection on top (as tardis-machine serves its users' recorded days), it lets the
collector, the gate and paper trading rehearse end to end on real traffic -- the user's own
captured days included.

What is served: the recording is read as canonical events (:func:`mm_core.realism.events_from_path`:
our raw archive, a python-kraken-sdk fixture, a cryptofeed capture, or a run directory), one symbol's
book is rebuilt exactly as the recording's own client held it (truncated to the recorded depth after
every message), and its changes and trades become the simulator's market events: clients subscribe
with the usual Kraken v2 requests and get a snapshot, depth-N updates (N up to the recorded depth)
with checksums of the served book, trades and tickers. Pacing follows the recorded exchange
timestamps (``speed`` times faster); the wire carries the time of serving, so ages measure the
latency model, not the recording's age. A snapshot inside the recording (its client resynced) is
served as the update that turns the served book into it. v1 names are served as v2 names
(``XBT/CHF`` -> ``BTC/CHF``).

Limits, said plainly: the simulator writes BTC's grid (1 price decimal, 8 size decimals), so a
pair with finer prices is refused; a depth-10 recording cannot serve depth 25 beyond its 10 levels.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator, Optional, Union

from mm_core.events import BookLevels, BookSnapshot, Event, Trade
from mm_core.simexchange.market import (
    DEFAULT_START_NS,
    QTY_PRECISION,
    TICKS_PER_UNIT,
    BookChange,
    Level,
    LevelBook,
    ModelEvent,
    TradePrint,
)

_SATS = 10**QTY_PRECISION
_PEEK_EVENTS = 5000
_V1_TO_V2 = {"XBT": "BTC", "XDG": "DOGE"}  # Kraken's v1 asset codes that v2 spells differently


class ReplayError(ValueError):
    """A recording that cannot be served; the message names it and says why."""


def v2_name(symbol: str) -> str:
    """``XBT/CHF`` -> ``BTC/CHF``: the name a v2 client subscribes to."""
    base, _, quote = symbol.partition("/")
    return f"{_V1_TO_V2.get(base, base)}/{_V1_TO_V2.get(quote, quote)}" if quote else symbol


def _ticks(price: float, symbol: str) -> int:
    t = round(price * TICKS_PER_UNIT)
    if abs(t / TICKS_PER_UNIT - price) > 1e-9 * max(1.0, abs(price)):
        raise ReplayError(f"{symbol}: price {price!r} is finer than the simulator's grid (1 decimal); "
                          "replay serves pairs on BTC's grid")
    return t


def _sats(qty: float, symbol: str) -> int:
    s = round(qty * _SATS)
    if abs(s / _SATS - qty) > 1e-12 * max(1.0, qty):
        raise ReplayError(f"{symbol}: size {qty!r} has more than 8 decimals")
    return s


class RecordingMarket:
    """A recording with the interface of :class:`~mm_core.simexchange.market.MarketModel` that the
    server uses: ``book`` (before the first event), ``open_ticks``, ``counts``, ``events()``
    (finite: it ends with the recording), plus ``symbol`` (v2 name) and ``depth``."""

    def __init__(self, path: Union[str, Path], *, symbol: Optional[str] = None, speed: float = 1.0,
                 start_ns: Optional[int] = None) -> None:
        if not speed > 0:
            raise ReplayError("replay speed must be > 0")
        self.path = Path(path)
        self.speed = speed
        self.start_ns = (DEFAULT_START_NS if start_ns is None else int(start_ns)) // 1000 * 1000
        self.source_symbol = self._choose_symbol(symbol)
        self.symbol = v2_name(self.source_symbol)
        self.counts = {"book_changes": 0, "trades": 0, "snapshots": 0}
        self._events = self._open(self.source_symbol)
        first = self._first_snapshot()
        self.depth = first.depth or max(len(first.bids), len(first.asks), 10)
        self.book = LevelBook()
        self._apply_snapshot(self.book, first)
        self._mirror = self.book.copy()
        bbo = self.book.bbo()
        if bbo is None:
            raise ReplayError(f"{self.path}: the first {self.source_symbol} snapshot has an empty side")
        self.open_ticks = (bbo[0] + bbo[2]) // 2
        self.trade_id = 1

    # ------------------------------------------------------------------ reading

    def _open(self, symbol: Optional[str] = None) -> Iterator[Event]:
        from mm_core.realism import RealismInputError, events_from_path

        try:
            return iter(events_from_path(self.path, None if self.path.is_file() else symbol))
        except RealismInputError as exc:
            raise ReplayError(str(exc)) from None

    def _choose_symbol(self, wanted: Optional[str]) -> str:
        """The recording's symbol to serve: ``wanted`` (v1 or v2 spelling), else the only one, else
        the first BTC pair among the first book snapshots."""
        seen: list[str] = []
        for ev in itertools.islice(self._open(), _PEEK_EVENTS):
            if isinstance(ev, BookSnapshot) and ev.symbol not in seen:
                seen.append(ev.symbol)
        if not seen:
            raise ReplayError(f"{self.path}: no book snapshot among its first {_PEEK_EVENTS:,} events")
        if wanted is not None:
            for s in seen:
                if v2_name(s) == v2_name(wanted):
                    return s
            raise ReplayError(f"{self.path}: no book for {wanted}; it has {', '.join(v2_name(s) for s in seen)}")
        if len(seen) == 1:
            return seen[0]
        btc = [s for s in seen if v2_name(s).startswith("BTC/")]
        return btc[0] if btc else seen[0]

    def _first_snapshot(self) -> BookSnapshot:
        for ev in self._events:
            if isinstance(ev, BookSnapshot) and ev.symbol == self.source_symbol:
                return ev
        raise ReplayError(f"{self.path}: no book snapshot for {self.source_symbol}")

    def _apply_snapshot(self, book: LevelBook, ev: BookLevels) -> None:
        sym = self.source_symbol
        for p, q in ev.bids[: self.depth]:
            book.bids.set(_ticks(p, sym), _sats(q, sym))
        for p, q in ev.asks[: self.depth]:
            book.asks.set(_ticks(p, sym), _sats(q, sym))

    # ------------------------------------------------------------------ events

    def events(self, duration_s: Optional[float] = None) -> Iterator[ModelEvent]:
        """The recording's book changes and trades, paced by its own timestamps."""
        sym, depth, mirror = self.source_symbol, self.depth, self._mirror
        t0: Optional[int] = None
        last = 0
        last_rec = -(1 << 62)
        for ev in self._events:
            if ev.symbol != sym or not isinstance(ev, (BookLevels, Trade)):
                continue
            rec = ev.ts_exchange if ev.ts_exchange is not None else (ev.ts_capture or last_rec)
            rec = max(rec, last_rec)
            last_rec = rec
            if t0 is None and rec > -(1 << 62):
                t0 = rec
            ts = max(last, self.start_ns + int((rec - (t0 or rec)) / self.speed) // 1000 * 1000)
            last = ts
            if isinstance(ev, Trade):
                self.counts["trades"] += 1
                yield self._trade(ev, ts)
                continue
            if isinstance(ev, BookSnapshot):
                self.counts["snapshots"] += 1
                target = LevelBook()
                self._apply_snapshot(target, ev)
                bids, asks = _diff(mirror, target)
            else:
                bids = [(_ticks(p, sym), _sats(q, sym)) for p, q in ev.bids]
                asks = [(_ticks(p, sym), _sats(q, sym)) for p, q in ev.asks]
            change = BookChange(ts, tuple(bids), tuple(asks), "replay")
            mirror.apply(change)
            mirror.truncate(depth)
            self.counts["book_changes"] += 1
            yield change

    def _trade(self, ev: Trade, ts: int) -> TradePrint:
        trade_id = ev.trade_id if ev.trade_id is not None else self.trade_id
        self.trade_id = trade_id + 1
        return TradePrint(ts, _ticks(ev.price, self.source_symbol), _sats(ev.qty, self.source_symbol),
                          ev.side, trade_id, ev.ord_type or "limit")


def _diff(book: LevelBook, target: LevelBook) -> tuple[list[Level], list[Level]]:
    """Levels that turn ``book`` into ``target`` (deletions first, then sets)."""
    out: list[list[Level]] = []
    for have, want in ((book.bids, target.bids), (book.asks, target.asks)):
        sign = have.sign
        dels = [(k * sign, 0) for k in have.keys if k not in want.qty]
        sets = [(k * sign, q) for k, q in ((k, want.qty[k]) for k in want.keys) if have.qty.get(k) != q]
        out.append(dels + sets)
    return out[0], out[1]
