"""How much does a feed look like a real exchange's? Book and trade statistics, side by side.

Why: research verdicts and backtest PnL on simulated data are only as good as the simulator's
likeness to the real market. Spread capture, queue position and fills depend on exactly the
figures computed here: how bursty updates arrive, how often the spread is one tick, how large
levels are, how often the top of the book changes. ``mm realism PATH [--vs PATH]`` prints them for
any recording or run directory (and for the simulator, ``sim:PROFILE``), with a verdict per row
when a second source is given.

Inputs are canonical events only (:mod:`mm_core.events`): recordings are read through
:func:`mm_core.replay.recording_events`, run directories through their Parquet store, the simulator
through its canonical-event generator. Nothing here knows an exchange's wire format.

Measured like ``../shared/realism.md``: per symbol, the book is rebuilt in wire order and
truncated to the subscribed depth after every message; gaps use the exchange timestamps of
consecutive update messages (never across a snapshot/resync, whose gap is our outage, not the
market's); spreads are in ticks after each update; "level changes" are the levels listed in an
update (qty 0 = delete).

Tolerances (:data:`ROWS`) were written down before any simulator was tuned against them, with
the reasoning beside each group. The reference recording in ``../shared/data`` is one 51 s quiet
Sunday sample of BTC/USD (509 updates, 4 mid changes): its own sampling error is large and bursty
traffic makes it larger, BTC/EUR differs from BTC/USD, and the point is "same regime", not "same
digits". So: rates and inter-arrival quantiles within a factor (x1.25 for the message rate, which a
profile sets directly; x2 for the body of the gap distribution, x3 for its 10th/99th percentiles,
which rest on ~50 and ~5 gaps); shares within absolute bands of 2-3 standard errors of a ~500-update
sample with clustering (gaps +-0.05/0.08, top-change +-0.08, delete share +-0.05); the spread,
the single most consequential figure for spread capture, within +-0.03 of the 1-tick share and
+-0.15 tick of the mean; level sizes (heavy-tailed, spanning 3 orders of magnitude) within x2 for
the median and 90th percentile and x2.5 for the 10th; mid changes per second within x3 (the
reference holds only 4, whose Poisson 95 % interval alone spans x2.6 either way). Trade rows
(the reference has no trades) compare whenever both sides have trades.

Volatility rows (added later, tolerances written here before the simulator was tuned against them):
``rv_1s_bp`` and ``rv_60s_bp`` are realised volatilities of the mid (log returns sampled on a 1 s /
60 s grid, ``sqrt(sum r^2 / T)``) in basis points per square-root second, so both horizons read on
one scale; ``absret_acf_60s`` is vol clustering: the mean autocorrelation of absolute 60 s returns
over lags 1-5. Volatility clusters (it varies tenfold between hours), so a short window measures one
moment's regime, not the market's level: ``rv_1s_bp`` needs >= 600 s of data, ``rv_60s_bp`` >= 60
returns, ``absret_acf_60s`` >= 300 returns; shorter sources show n/a. The long reference is Kraken's
REST OHLC file in ``../shared/data/kraken-rest`` (721 one-minute bars, 12 h, XBT/USDT, close to
close: 0.70 bp/sqrt(s); 5/15/60-minute returns give 0.71-0.79, so microstructure noise is small;
|r| autocorrelation 0.094 at lag 1, lags 1-5 mean 0.060); that file's own standard error is ~5 %
on the vol (720 returns, kurtosis 7.4) and ~0.025 on the mean autocorrelation, BTC's daily vol
varies about x2 from day to day and the pair is XBT/USDT, not BTC/EUR: vol rows within x1.5,
clustering within +-0.08. The 51 s book recording holds 4 one-tick mid changes (0.005 bp/sqrt(s)
at 1 s): a quiet moment, 100x below the 12 h figure, too short to judge volatility. Kraken's REST
trades file there (1,000 XBT/USDT trades, 6.8 h) is a trade-size reference; its rate (0.04/s) is
a thin pair's, not BTC/EUR's.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from mm_core.book import L2Book
from mm_core.events import BookLevels, BookSnapshot, Event, Trade

EXIT_OK, EXIT_OUTSIDE, EXIT_INPUT = 0, 1, 2
DEFAULT_DEPTH = 10


class RealismInputError(ValueError):
    """A source that cannot be measured; the message names it and says what to do."""


# ----------------------------------------------------------------------------- tolerances


@dataclass(frozen=True)
class Tolerance:
    """``ratio``: ``1/limit <= value/ref <= limit``; ``abs``: ``|value - ref| <= limit``."""

    kind: str
    limit: float

    def within(self, value: Optional[float], ref: Optional[float]) -> Optional[bool]:
        """True/False, or None when either side is missing (n/a)."""
        if value is None or ref is None or (isinstance(value, float) and math.isnan(value)) \
                or (isinstance(ref, float) and math.isnan(ref)):
            return None
        if self.kind == "abs":
            return abs(value - ref) <= self.limit + 1e-12
        if ref <= 0 or value <= 0:
            return value == ref
        r = value / ref
        return 1.0 / self.limit - 1e-12 <= r <= self.limit + 1e-12

    def text(self) -> str:
        return f"x/÷{self.limit:g}" if self.kind == "ratio" else f"±{self.limit:g}"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    tolerance: Tolerance


def _r(limit: float) -> Tolerance:
    return Tolerance("ratio", limit)


def _a(limit: float) -> Tolerance:
    return Tolerance("abs", limit)


ROWS: tuple[Row, ...] = (
    Row("updates_per_s", "update messages per second", "1/s", _r(1.25)),
    Row("gap_ms_p10", "inter-update gap p10", "ms", _r(3)),
    Row("gap_ms_p25", "inter-update gap p25", "ms", _r(2)),
    Row("gap_ms_p50", "inter-update gap p50", "ms", _r(2)),
    Row("gap_ms_p75", "inter-update gap p75", "ms", _r(2)),
    Row("gap_ms_p90", "inter-update gap p90", "ms", _r(2)),
    Row("gap_ms_p99", "inter-update gap p99", "ms", _r(3)),
    Row("gap_lt_1ms", "share of gaps < 1 ms", "", _a(0.05)),
    Row("gap_lt_10ms", "share of gaps < 10 ms", "", _a(0.08)),
    Row("gap_gt_100ms", "share of gaps > 100 ms", "", _a(0.05)),
    Row("top_change_share", "share of updates changing best bid/ask", "", _a(0.08)),
    Row("mid_changes_per_s", "mid-price changes per second", "1/s", _r(3)),
    Row("spread_1tick_share", "spread at 1 tick (share of updates)", "", _a(0.03)),
    Row("spread_2tick_share", "spread at 2 ticks", "", _a(0.03)),
    Row("spread_ge3tick_share", "spread at 3+ ticks", "", _a(0.02)),
    Row("spread_ticks_mean", "spread mean", "ticks", _a(0.15)),
    Row("levels_per_update", "level changes per update message", "", _r(1.2)),
    Row("delete_share", "share of level changes that are deletes", "", _a(0.05)),
    Row("two_sided_share", "share of updates touching both sides", "", _a(0.05)),
    Row("level_qty_p10", "size of a level in an update p10", "base", _r(2.5)),
    Row("level_qty_p50", "size of a level in an update p50", "base", _r(2)),
    Row("level_qty_p90", "size of a level in an update p90", "base", _r(2)),
    Row("top_qty_p50", "size at best bid/ask, median", "base", _r(2)),
    Row("trades_per_s", "trades per second", "1/s", _r(1.5)),
    Row("trade_gap_ms_p10", "trade inter-arrival p10", "ms", _r(3)),
    Row("trade_gap_ms_p50", "trade inter-arrival p50", "ms", _r(3)),
    Row("trade_gap_ms_p90", "trade inter-arrival p90", "ms", _r(3)),
    Row("trade_qty_p10", "trade size p10", "base", _r(3)),
    Row("trade_qty_p50", "trade size p50", "base", _r(3)),
    Row("trade_qty_p90", "trade size p90", "base", _r(3)),
    Row("trade_at_touch_share", "share of trades at the touch", "", _a(0.1)),
    Row("rv_1s_bp", "realised vol of the mid, 1 s returns", "bp/sqrt(s)", _r(1.5)),
    Row("rv_60s_bp", "realised vol of the mid, 60 s returns", "bp/sqrt(s)", _r(1.5)),
    Row("absret_acf_60s", "vol clustering: acf of |60 s returns|, lags 1-5", "", _a(0.08)),
)
VOL_KEYS = ("rv_1s_bp", "rv_60s_bp", "absret_acf_60s")
BOOK_KEYS = tuple(r.key for r in ROWS[:23])
TRADE_KEYS = tuple(r.key for r in ROWS[23:31])
RV_1S_MIN_SPAN_S = 600.0
RV_60S_MIN_RETURNS = 60
ACF_MIN_RETURNS = 300
ACF_LAGS = 5
ROW_KEYS = tuple(r.key for r in ROWS)


# ----------------------------------------------------------------------------- measurement


@dataclass
class RealismStats:
    """The statistics of one source (``stats`` keyed like :data:`ROWS`; None = not measurable)."""

    source: str
    symbol: str
    depth: int
    tick_size: float
    clock: str  # "exchange" or "capture": which timestamps the gaps use
    updates: int
    trades: int
    snapshots: int
    span_s: float
    stats: dict[str, Optional[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "symbol": self.symbol, "depth": self.depth, "tick_size": self.tick_size,
            "clock": self.clock, "updates": self.updates, "trades": self.trades, "snapshots": self.snapshots,
            "span_s": round(self.span_s, 3), "stats": dict(self.stats),
        }


class _Collector:
    """Walks one symbol's canonical events in stream order and keeps what the statistics need."""

    def __init__(self, symbol: Optional[str], depth: Optional[int]) -> None:
        self.symbol = symbol
        self.depth_override = depth
        self.book: Optional[L2Book] = None
        self.depth = 0
        self.snapshots = 0
        # per update message
        self.ts: list[int] = []
        self.segment: list[int] = []  # increments at every snapshot: no gap across it
        self.n_levels: list[int] = []
        self.n_deletes: list[int] = []
        self.two_sided: list[bool] = []
        self.top_changed: list[bool] = []
        self.mid_changed: list[bool] = []
        self.bid: list[float] = []
        self.ask: list[float] = []
        self.top_qty: list[float] = []
        self.level_qty: list[float] = []
        self.prices: set[float] = set()
        # book state timeline for trades (ts of every book row, snapshots take the previous row's)
        self.state_ts: list[int] = []
        self.state_bid: list[float] = []
        self.state_ask: list[float] = []
        self.trade_ts: list[int] = []
        self.trade_px: list[float] = []
        self.trade_qty: list[float] = []
        self.trade_buy: list[bool] = []
        self.capture_clock = False

    def add(self, ev: Event) -> None:
        if isinstance(ev, BookLevels):
            if self.symbol is None:
                self.symbol = ev.symbol
            if ev.symbol != self.symbol:
                return
            if isinstance(ev, BookSnapshot):
                self._snapshot(ev)
            elif self.book is not None:
                self._update(ev)
        elif isinstance(ev, Trade):
            if self.symbol is None:
                self.symbol = ev.symbol
            if ev.symbol != self.symbol:
                return
            ts = ev.ts_exchange if ev.ts_exchange is not None else ev.ts_capture
            self.trade_ts.append(int(ts))
            self.trade_px.append(float(ev.price))
            self.trade_qty.append(float(ev.qty))
            self.trade_buy.append(ev.side == "buy")

    def _snapshot(self, ev: BookLevels) -> None:
        self.depth = self.depth_override or ev.depth or self.depth or DEFAULT_DEPTH
        book = self.book = L2Book(self.depth)
        for p, q in ev.bids:
            if q:
                book.apply_bid(p, q)
        for p, q in ev.asks:
            if q:
                book.apply_ask(p, q)
        book.truncate()
        self.snapshots += 1
        self._state(self.state_ts[-1] if self.state_ts else -(1 << 62))

    def _state(self, ts: int) -> None:
        top = self.book.top() if self.book is not None else None
        self.state_ts.append(ts)
        self.state_bid.append(top[0] if top else math.nan)
        self.state_ask.append(top[2] if top else math.nan)

    def _update(self, ev: BookLevels) -> None:
        book = self.book
        assert book is not None
        before = book.top()
        n = dels = 0
        prices = self.prices
        for p, q in ev.bids:
            book.apply_bid(p, q)
            n += 1
            prices.add(p)
            if q:
                self.level_qty.append(q)
            else:
                dels += 1
        for p, q in ev.asks:
            book.apply_ask(p, q)
            n += 1
            prices.add(p)
            if q:
                self.level_qty.append(q)
            else:
                dels += 1
        book.truncate()
        after = book.top()
        ts = ev.ts_exchange
        if ts is None:
            ts = ev.ts_capture
            self.capture_clock = True
        self.ts.append(int(ts))
        self.segment.append(self.snapshots)
        self.n_levels.append(n)
        self.n_deletes.append(dels)
        self.two_sided.append(bool(ev.bids) and bool(ev.asks))
        self.top_changed.append(after != before)
        if after is None:
            self.bid.append(math.nan)
            self.ask.append(math.nan)
            self.mid_changed.append(before is not None)
        else:
            self.bid.append(after[0])
            self.ask.append(after[2])
            self.top_qty.extend((after[1], after[3]))
            self.mid_changed.append(before is None or before[0] + before[2] != after[0] + after[2])
        self._state(int(ts))


def _quantiles(x: np.ndarray, qs: Sequence[float]) -> list[Optional[float]]:
    if x.size == 0:
        return [None] * len(qs)
    return [float(v) for v in np.percentile(x, qs)]


def infer_tick_size(prices: Iterable[float]) -> float:
    """The price grid: the smallest gap between distinct prices, at the prices' own decimals."""
    p = np.unique(np.fromiter(prices, dtype=np.float64))
    if p.size < 2:
        return math.nan
    decimals = 0
    for v in p[: min(p.size, 2000)]:
        text = f"{v:.10f}".rstrip("0")
        decimals = max(decimals, len(text.split(".")[1]) if "." in text else 0)
    step = float(np.diff(p).min())
    return float(round(step, decimals)) or 10.0 ** -decimals


def measure_events(events: Iterable[Event], *, source: str = "events", symbol: Optional[str] = None,
                   depth: Optional[int] = None, tick_size: Optional[float] = None) -> RealismStats:
    """The statistics of canonical events in stream order (one symbol: the first book event's
    unless ``symbol`` is given)."""
    c = _Collector(symbol, depth)
    add = c.add
    for ev in events:
        add(ev)
    return _finish(c, source, tick_size)


def _finish(c: _Collector, source: str, tick_size: Optional[float]) -> RealismStats:
    if not c.ts:
        raise RealismInputError(f"{source}: no book updates (after a snapshot) to measure"
                                + (f" for {c.symbol}" if c.symbol else ""))
    tick = float(tick_size) if tick_size else infer_tick_size(c.prices | set(c.state_bid) | set(c.state_ask))
    ts = np.array(c.ts, np.int64)
    seg = np.array(c.segment, np.int64)
    same = seg[1:] == seg[:-1]
    gaps_ms = (np.diff(ts)[same]) / 1e6
    span_s = float(gaps_ms.sum() / 1e3)
    s: dict[str, Optional[float]] = {}
    n = ts.size
    s["updates_per_s"] = gaps_ms.size / span_s if span_s > 0 else None
    for q, v in zip((10, 25, 50, 75, 90, 99), _quantiles(gaps_ms, (10, 25, 50, 75, 90, 99))):
        s[f"gap_ms_p{q}"] = v
    if gaps_ms.size:
        s["gap_lt_1ms"] = float(np.mean(gaps_ms < 1.0))
        s["gap_lt_10ms"] = float(np.mean(gaps_ms < 10.0))
        s["gap_gt_100ms"] = float(np.mean(gaps_ms > 100.0))
    else:
        s["gap_lt_1ms"] = s["gap_lt_10ms"] = s["gap_gt_100ms"] = None
    s["top_change_share"] = float(np.mean(c.top_changed))
    s["mid_changes_per_s"] = float(np.sum(c.mid_changed)) / span_s if span_s > 0 else None
    bid, ask = np.array(c.bid), np.array(c.ask)
    ok = ~(np.isnan(bid) | np.isnan(ask))
    if ok.any() and tick > 0:
        spread = np.rint((ask[ok] - bid[ok]) / tick).astype(np.int64)
        s["spread_1tick_share"] = float(np.mean(spread == 1))
        s["spread_2tick_share"] = float(np.mean(spread == 2))
        s["spread_ge3tick_share"] = float(np.mean(spread >= 3))
        s["spread_ticks_mean"] = float(spread.mean())
    else:
        s["spread_1tick_share"] = s["spread_2tick_share"] = s["spread_ge3tick_share"] = None
        s["spread_ticks_mean"] = None
    levels = np.array(c.n_levels)
    s["levels_per_update"] = float(levels.mean())
    s["delete_share"] = float(np.sum(c.n_deletes) / levels.sum()) if levels.sum() else None
    s["two_sided_share"] = float(np.mean(c.two_sided))
    for q, v in zip((10, 50, 90), _quantiles(np.array(c.level_qty), (10, 50, 90))):
        s[f"level_qty_p{q}"] = v
    s["top_qty_p50"] = _quantiles(np.array(c.top_qty), (50,))[0]
    _trade_stats(c, s, tick)
    _vol_stats(ts, (bid + ask) / 2.0, s)
    return RealismStats(source=source, symbol=c.symbol or "", depth=c.depth, tick_size=tick,
                        clock="capture" if c.capture_clock else "exchange", updates=n,
                        trades=len(c.trade_ts), snapshots=c.snapshots, span_s=span_s, stats=s)


def _trade_stats(c: _Collector, s: dict[str, Optional[float]], tick: float) -> None:
    keys = ("trades_per_s", "trade_gap_ms_p10", "trade_gap_ms_p50", "trade_gap_ms_p90",
            "trade_qty_p10", "trade_qty_p50", "trade_qty_p90", "trade_at_touch_share")
    if len(c.trade_ts) < 2:
        s.update({k: None for k in keys})
        return
    ts = np.array(c.trade_ts, np.int64)
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    gaps_ms = np.diff(ts) / 1e6
    span = (ts[-1] - ts[0]) / 1e9
    s["trades_per_s"] = (ts.size - 1) / span if span > 0 else None
    for q, v in zip((10, 50, 90), _quantiles(gaps_ms, (10, 50, 90))):
        s[f"trade_gap_ms_p{q}"] = v
    for q, v in zip((10, 50, 90), _quantiles(np.array(c.trade_qty), (10, 50, 90))):
        s[f"trade_qty_p{q}"] = v
    # the book as it stood just before each trade (last book row stamped strictly earlier)
    state_ts = np.maximum.accumulate(np.array(c.state_ts, np.int64))
    idx = np.searchsorted(state_ts, np.array(c.trade_ts, np.int64), side="left") - 1
    have = idx >= 0
    if not have.any() or not tick > 0:
        s["trade_at_touch_share"] = None
        return
    i = idx[have]
    px = np.array(c.trade_px)[have]
    buy = np.array(c.trade_buy)[have]
    touch = np.where(buy, np.array(c.state_ask)[i], np.array(c.state_bid)[i])
    valid = ~np.isnan(touch)
    s["trade_at_touch_share"] = float(np.mean(np.abs(px[valid] - touch[valid]) < tick / 2)) if valid.any() else None


def _grid_prices(ts_ns: np.ndarray, px: np.ndarray, step_s: float) -> np.ndarray:
    """The last valid price at or before each point of a ``step_s`` grid from the first stamp."""
    ok = ~np.isnan(px) & (px > 0)
    ts_ns, px = ts_ns[ok], px[ok]
    if ts_ns.size < 2:
        return np.empty(0)
    order = np.argsort(ts_ns, kind="stable")
    ts_ns, px = ts_ns[order], px[order]
    step = int(step_s * 1e9)
    grid = np.arange(ts_ns[0], ts_ns[-1] + 1, step)
    return px[np.searchsorted(ts_ns, grid, side="right") - 1]


def _rv_bp(prices: np.ndarray, step_s: float) -> Optional[float]:
    r = np.diff(np.log(prices))
    if r.size == 0:
        return None
    return float(math.sqrt(float(np.sum(r * r)) / (r.size * step_s)) * 1e4)


def _absret_acf(prices: np.ndarray) -> Optional[float]:
    a = np.abs(np.diff(np.log(prices)))
    if a.size < ACF_MIN_RETURNS or a.std() == 0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        acf = float(np.mean([np.corrcoef(a[:-k], a[k:])[0, 1] for k in range(1, ACF_LAGS + 1)]))
    return None if math.isnan(acf) else acf


def _vol_stats(ts_ns: np.ndarray, px: np.ndarray, s: dict[str, Optional[float]]) -> None:
    """Realised volatility at 1 s and 60 s and vol clustering (see the module docstring for the
    minimum spans: below them the row is n/a, not a number from one quiet moment)."""
    s.update({k: None for k in VOL_KEYS})
    ok = ~np.isnan(px)
    if ok.sum() < 2:
        return
    span = (ts_ns[ok].max() - ts_ns[ok].min()) / 1e9
    if span >= RV_1S_MIN_SPAN_S:
        s["rv_1s_bp"] = _rv_bp(_grid_prices(ts_ns, px, 1.0), 1.0)
    p60 = _grid_prices(ts_ns, px, 60.0)
    if p60.size - 1 >= RV_60S_MIN_RETURNS:
        s["rv_60s_bp"] = _rv_bp(p60, 60.0)
    s["absret_acf_60s"] = _absret_acf(p60)


# ----------------------------------------------------------------------------- sources


def _kraken_rest(path: Path) -> Optional[tuple[str, list[list[Any]]]]:
    """``(pair, rows)`` of a Kraken REST ``OHLC`` or ``Trades`` response file, else None."""
    if path.suffix.lower() != ".json" or path.stat().st_size > 200_000_000:
        return None
    import orjson

    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("result"), dict) or "last" not in doc["result"]:
        return None
    pairs = [(k, v) for k, v in doc["result"].items() if k != "last" and isinstance(v, list)]
    if len(pairs) != 1 or not pairs[0][1] or not isinstance(pairs[0][1][0], list):
        return None
    return pairs[0]


def measure_kraken_rest(path: Path, pair: str, rows: list[list[Any]]) -> RealismStats:
    """The statistics a Kraken REST file supports: OHLC bars (``[time, o, h, l, close, vwap, volume,
    count]``) give the volatility rows from closes; Trades (``[price, volume, time, side, type,
    misc, id]``) give the trade rows (no book: the share at the touch is n/a)."""
    s: dict[str, Optional[float]] = {k: None for k in ROW_KEYS}
    try:
        if len(rows[0]) == 8 and isinstance(rows[0][0], int):  # OHLC
            ts = np.array([int(r[0]) * 1_000_000_000 for r in rows], np.int64)
            close = np.array([float(r[4]) for r in rows])
            step = float(np.median(np.diff(ts))) / 1e9
            if step < 60:
                raise RealismInputError(f"{path}: OHLC bars of {step:g} s; the volatility rows need >= 60 s bars")
            _vol_stats(ts, close, s)
            s["rv_1s_bp"] = None  # bars say nothing about 1 s returns
            if step > 60:  # only 60 s bars measure the 60 s row; a coarser grid says nothing about 1 s
                s["rv_60s_bp"] = s["absret_acf_60s"] = None
            kind, n_trades, span = "ohlc", 0, (ts[-1] - ts[0]) / 1e9
        elif len(rows[0]) >= 4:  # Trades
            c = _Collector(pair, None)
            for r in rows:
                c.trade_ts.append(int(round(float(r[2]) * 1e9)))
                c.trade_px.append(float(r[0]))
                c.trade_qty.append(float(r[1]))
                c.trade_buy.append(r[3] == "b")
            _trade_stats(c, s, math.nan)
            kind, n_trades = "trades", len(rows)
            span = (max(c.trade_ts) - min(c.trade_ts)) / 1e9
        else:
            raise RealismInputError(f"{path}: a Kraken REST result with rows of {len(rows[0])} fields; "
                                    "expected OHLC or Trades")
    except (TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, RealismInputError):
            raise
        raise RealismInputError(f"{path}: not a readable Kraken REST OHLC/Trades file ({exc})") from None
    return RealismStats(source=f"{path} (Kraken REST {kind})", symbol=pair, depth=0, tick_size=math.nan,
                        clock="exchange", updates=0, trades=n_trades, snapshots=0, span_s=float(span), stats=s)


def _events_from_run_dir(path: Path, symbol: Optional[str]) -> Iterator[Event]:
    """Book and trade events of a run directory's Parquet store, merged in time (trades first at
    equal stamps: a trade is printed before the book change it causes)."""
    import pyarrow.compute as pc

    from mm_core.events import BookUpdate
    from mm_core.store.parquet_store import read_table

    root = path / "parquet" if (path / "parquet").is_dir() else path
    book = read_table(root, "book")
    if book.num_rows == 0:
        raise RealismInputError(f"{path}: no book-*.parquet files below it; give a collector run directory "
                                "(or a recording file)")
    trades = read_table(root, "trade")
    if symbol is None:
        counts = book.group_by("symbol").aggregate([("symbol", "count")]).to_pylist()
        symbol = max(counts, key=lambda r: r["symbol_count"])["symbol"]
    book = book.filter(pc.equal(book.column("symbol"), symbol))
    if trades.num_rows:
        trades = trades.filter(pc.equal(trades.column("symbol"), symbol))
    brows = book.select(["exchange", "kind", "ts_exchange", "ts_capture", "bids", "asks", "depth"]).to_pylist()
    trows = trades.select(["exchange", "ts_exchange", "ts_capture", "price", "qty", "side"]).to_pylist() \
        if trades.num_rows else []
    ti = 0
    last_ts = -(1 << 62)
    for r in brows:
        ts = r["ts_exchange"]
        key = ts if ts is not None else last_ts
        while ti < len(trows) and _trade_key(trows[ti]) <= key:
            yield _trade(trows[ti], symbol)
            ti += 1
        last_ts = key
        bids = tuple((lv["price"], lv["qty"]) for lv in r["bids"] or ())
        asks = tuple((lv["price"], lv["qty"]) for lv in r["asks"] or ())
        cls = BookSnapshot if r["kind"] == "book_snapshot" else BookUpdate
        yield cls(exchange=r["exchange"], symbol=symbol, ts_exchange=ts, ts_capture=r["ts_capture"] or 0,
                  bids=bids, asks=asks, depth=r["depth"] or 0)
    for tr in trows[ti:]:
        yield _trade(tr, symbol)


def _trade_key(r: dict[str, Any]) -> int:
    return r["ts_exchange"] if r["ts_exchange"] is not None else (r["ts_capture"] or 0)


def _trade(r: dict[str, Any], symbol: str) -> Trade:
    return Trade(exchange=r["exchange"], symbol=symbol, ts_exchange=r["ts_exchange"],
                 ts_capture=r["ts_capture"] or 0, price=r["price"], qty=r["qty"], side=r["side"])


SimResolver = Callable[[str], tuple[Iterable[Event], str]]


def events_from_path(path: str | Path, symbol: Optional[str] = None) -> Iterator[Event]:
    """Canonical events of a run directory (its Parquet store) or a recording file; a file that
    cannot be read raises :class:`RealismInputError` naming it (while iterating, for recordings)."""
    p = Path(path)
    if p.is_dir():
        return _events_from_run_dir(p, symbol)
    if not p.exists():
        raise RealismInputError(f"{p}: no such file or directory (give a run directory, a recording, "
                                "or sim:PROFILE[:SECONDS[:SEED]])")
    return _recording_events(p)


def _recording_events(p: Path) -> Iterator[Event]:
    from mm_core.replay import recording_events

    try:
        yield from recording_events(p)
    except ValueError as exc:  # RecordingError / ReplayError name the file and line
        raise RealismInputError(str(exc)) from None


def measure_path(path: str | Path, *, symbol: Optional[str] = None, depth: Optional[int] = None,
                 tick_size: Optional[float] = None) -> RealismStats:
    """The statistics of a run directory (its Parquet store), a recording file, or a Kraken REST
    OHLC/Trades response file (volatility or trade rows only)."""
    p = Path(path)
    if p.is_file():
        rest = _kraken_rest(p)
        if rest is not None:
            return measure_kraken_rest(p, *rest)
    return measure_events(events_from_path(path, symbol), source=str(path), symbol=symbol, depth=depth,
                          tick_size=tick_size)


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class RowVerdict:
    key: str
    label: str
    a: Optional[float]
    b: Optional[float]
    tolerance: str
    within: Optional[bool]  # None = n/a

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "a": self.a, "b": self.b, "tolerance": self.tolerance,
                "within": self.within}


def compare(a: RealismStats, b: RealismStats, rows: Sequence[Row] = ROWS) -> list[RowVerdict]:
    """Row by row: is ``b`` within tolerance of the reference ``a``?"""
    return [RowVerdict(r.key, r.label, a.stats.get(r.key), b.stats.get(r.key), r.tolerance.text(),
                       r.tolerance.within(b.stats.get(r.key), a.stats.get(r.key))) for r in rows]


def outside(verdicts: Sequence[RowVerdict]) -> list[str]:
    """Keys of the rows outside tolerance (n/a rows are not counted)."""
    return [v.key for v in verdicts if v.within is False]


def _fmt(v: Optional[float]) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 0.01:
        return f"{v:.3f}"
    return f"{v:.2g}"


def _header(st: RealismStats) -> str:
    return (f"{st.source}\n    {st.symbol}, depth {st.depth}, tick {st.tick_size:g}, {st.updates:,} updates, "
            f"{st.trades:,} trades, {st.span_s:,.1f} s ({st.clock} clock)")


def format_table(a: RealismStats, b: Optional[RealismStats] = None, names: tuple[str, str] = ("A", "B")) -> str:
    """The human table: one row per statistic, the verdict per row when there are two sources."""
    lines = [f"{names[0]}: {_header(a)}"]
    if b is not None:
        lines.append(f"{names[1]}: {_header(b)}")
        if a.depth != b.depth:
            lines.append(f"note: depths differ ({a.depth} vs {b.depth}); level statistics are depth-dependent")
    lines.append("")
    w = max(len(r.label) + len(r.unit) + 3 for r in ROWS)
    if b is None:
        lines.append(f"{'statistic':{w}}  {names[0]:>10}")
        for r in ROWS:
            label = f"{r.label} ({r.unit})" if r.unit else r.label
            lines.append(f"{label:{w}}  {_fmt(a.stats.get(r.key)):>10}")
        return "\n".join(lines) + "\n"
    verdicts = compare(a, b)
    lines.append(f"{'statistic':{w}}  {names[0]:>10}  {names[1]:>10}  {'tolerance':>9}  verdict")
    for r, v in zip(ROWS, verdicts):
        label = f"{r.label} ({r.unit})" if r.unit else r.label
        mark = "n/a" if v.within is None else ("ok" if v.within else "OUTSIDE")
        lines.append(f"{label:{w}}  {_fmt(v.a):>10}  {_fmt(v.b):>10}  {v.tolerance:>9}  {mark}")
    bad = outside(verdicts)
    judged = sum(v.within is not None for v in verdicts)
    lines.append("")
    lines.append(f"{judged - len(bad)}/{judged} comparable rows within tolerance"
                 + (f"; outside: {', '.join(bad)}" if bad else ""))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "realism",
        help="book/trade statistics of a recording or run directory, side by side with tolerances",
        description=(
            "Measure how a feed looks: message rate, inter-update gaps, spread, top-of-book changes, level "
            "and trade sizes. With --vs, print a second source beside it and a verdict per row (is the second "
            "within tolerance of the first?). A source is a run directory, a recording file (own raw archive, "
            "python-kraken-sdk fixture, cryptofeed capture), a Kraken REST OHLC/Trades response file (volatility "
            "or trade rows only), or sim:PROFILE[:SECONDS[:SEED]] for the offline "
            "simulator (e.g. sim:default:600)."
        ),
        epilog="example: mm realism ../shared/data/kraken-spot-v2/orderbook-v2_BTCUSD_book10_2023-07-30.json "
               "--vs sim:default:600",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("path", help="reference source: run directory, recording file or sim:PROFILE[:SECONDS[:SEED]]")
    p.add_argument("--vs", metavar="PATH", help="second source, judged against the first")
    p.add_argument("--symbol", help="symbol to measure (default: the busiest in a run directory)")
    p.add_argument("--tick-size", type=float, help="price grid (default: inferred from the prices)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def _measure_source(text: str, symbol: Optional[str], tick_size: Optional[float]) -> RealismStats:
    if text.startswith("sim:"):
        from mm_core.research.sim_data import sim_source  # the simulator is an optional source

        events, label = sim_source(text)
        return measure_events(events, source=label, symbol=symbol, tick_size=tick_size)
    return measure_path(text, symbol=symbol, tick_size=tick_size)


def run(args: argparse.Namespace) -> int:
    """``mm realism``: 0 = measured (and, with --vs, every comparable row within tolerance);
    1 = some row outside tolerance; 2 = a source could not be read."""
    import orjson

    if args.tick_size is not None and not args.tick_size > 0:
        print("mm realism: --tick-size must be > 0", file=sys.stderr)
        return EXIT_INPUT
    try:
        a = _measure_source(args.path, args.symbol, args.tick_size)
        b = _measure_source(args.vs, args.symbol, args.tick_size) if args.vs else None
    except (RealismInputError, ValueError, OSError) as exc:
        print(f"mm realism: {exc}", file=sys.stderr)
        return EXIT_INPUT
    verdicts = compare(a, b) if b is not None else []
    bad = outside(verdicts)
    if args.json:
        out: dict[str, Any] = {"a": a.to_dict()}
        if b is not None:
            out["b"] = b.to_dict()
            out["rows"] = [v.to_dict() for v in verdicts]
            out["outside"] = bad
            out["pass"] = not bad
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
    else:
        sys.stdout.write(format_table(a, b, ("A", "B")))
    return EXIT_OUTSIDE if bad else EXIT_OK
