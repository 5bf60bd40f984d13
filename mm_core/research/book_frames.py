"""Canonical book/trade events -> flat columns -> per-event top-of-book arrays.

Why this shape: a day of Kraken BTC data is ~1M book messages. Looping over event objects in
Python costs ~1 µs per attribute access; looping over *flat numpy arrays* in a numba kernel costs a
few nanoseconds per level. So every input (canonical events in memory, a collector run's Parquet
files, a recorded raw feed) is first turned into :class:`EventColumns` -- one row per book message,
its levels flattened into ``level_*`` arrays addressed by ``level_offsets`` (the Arrow list layout,
which Parquet hands us for free) -- and :func:`reconstruct` replays the messages in wire order
through a sorted-array L2 book compiled with numba, writing the best prices and the top-N sizes
after every message into :class:`BookFrames`. Features (:mod:`mm_core.research.features`) are then
plain vectorised numpy over those arrays.

Time. ``clock="exchange"`` (default) stamps each row with ``ts_exchange``; rows without one (Kraken
snapshots) take the time of the next stamped row -- the state they create is first *observable*
then, so no feature can peek at it earlier (a series with no exchange stamps at all falls back to
capture times). ``clock="capture"`` uses the capture
time (what a live quoting engine actually saw). Timestamps are never re-sorted: books must be
applied in wire order; :class:`BookFrames` keeps a running maximum (``ts``) for as-of lookups and
the raw stamps (``ts_raw``) so QA can count the inversions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from numba import njit

from mm_core.events import BookLevels, BookSnapshot, Event, Trade

CLOCKS = ("exchange", "capture")
DEFAULT_LEVELS = 5  # top-N sizes kept per side (multi-level depth imbalance uses them)


class ResearchDataError(ValueError):
    """Input that research cannot use; the message names the file/folder/symbol and what to do."""


@dataclass(frozen=True)
class EventColumns:
    """One symbol's book and trade events as flat columns (see module docstring).

    Book rows are in wire order; the levels of row ``i`` are
    ``level_*[level_offsets[i]:level_offsets[i + 1]]`` (bids and asks of one message, each side in
    wire order, ``level_bid`` tells them apart; qty 0 = delete). Trades are in stored order.
    """

    exchange: str
    symbol: str
    book_ts: np.ndarray  # int64 ns, event time per ``clock`` (see module docstring)
    book_snapshot: np.ndarray  # bool: row replaces the whole book
    book_depth: np.ndarray  # int64: subscribed depth the book is truncated to (0 = unknown)
    book_verified: np.ndarray  # bool: checksum matched after this row
    level_offsets: np.ndarray  # int64, len n_book + 1
    level_price: np.ndarray  # float64
    level_qty: np.ndarray  # float64
    level_bid: np.ndarray  # bool
    trade_ts: np.ndarray  # int64 ns
    trade_price: np.ndarray  # float64
    trade_qty: np.ndarray  # float64
    trade_sign: np.ndarray  # int8: +1 taker buy, -1 taker sell
    clock: str = "exchange"
    source: str = ""

    @property
    def n_book(self) -> int:
        return int(self.book_ts.shape[0])

    @property
    def n_trades(self) -> int:
        return int(self.trade_ts.shape[0])

    @property
    def n_events(self) -> int:
        return self.n_book + self.n_trades


@dataclass(frozen=True)
class BookFrames:
    """Top of book after every book message, plus the trades (time-sorted).

    ``bid_qty[:, k]``/``ask_qty[:, k]`` are the sizes of the (k+1)-th best level (0 when the side
    has fewer levels). ``bid``/``ask`` are NaN while a side is empty.
    """

    exchange: str
    symbol: str
    tick_size: float
    ts: np.ndarray  # int64 ns, non-decreasing (running max of ts_raw) -- use for as-of lookups
    ts_raw: np.ndarray  # int64 ns, as stamped
    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray  # (n, levels)
    ask_qty: np.ndarray  # (n, levels)
    n_bid_levels: np.ndarray  # int64
    n_ask_levels: np.ndarray  # int64
    verified: np.ndarray  # bool
    snapshot: np.ndarray  # bool
    trade_ts: np.ndarray  # int64, sorted
    trade_ts_raw: np.ndarray  # int64, as stored
    trade_price: np.ndarray
    trade_qty: np.ndarray
    trade_sign: np.ndarray
    clock: str = "exchange"
    source: str = ""

    @property
    def n_book(self) -> int:
        return int(self.ts.shape[0])

    @property
    def n_events(self) -> int:
        return int(self.ts.shape[0] + self.trade_ts.shape[0])


# ----------------------------------------------------------------------------- time stamps


def _event_time(ts_exchange: np.ndarray, ts_capture: np.ndarray, clock: str) -> np.ndarray:
    """Per-row event time per ``clock``; unstamped rows take the next stamped row's time.

    With ``clock="exchange"`` rows without an exchange stamp (Kraken snapshots) are *not* given
    their capture time -- mixing the two clocks would put a snapshot after the updates that follow
    it; only a series with no exchange stamps at all falls back to capture times.
    """
    if clock not in CLOCKS:
        raise ResearchDataError(f"clock must be one of {CLOCKS}, got {clock!r}")
    ex = np.asarray(ts_exchange, dtype=np.int64)
    cap = np.asarray(ts_capture, dtype=np.int64)
    first, second = (ex, cap) if clock == "exchange" else (cap, ex)
    ts = first if (first > 0).any() or not (second > 0).any() else second
    return _fill_missing_times(ts)


def _fill_missing_times(ts: np.ndarray) -> np.ndarray:
    """Back-fill non-positive stamps from the next stamped row (forward-fill at the tail)."""
    ts = np.asarray(ts, dtype=np.int64).copy()
    bad = ts <= 0
    if not bad.any():
        return ts
    good = np.flatnonzero(~bad)
    if good.size == 0:
        return ts
    nxt = np.searchsorted(good, np.arange(ts.size), side="left")
    fill = np.where(nxt < good.size, good[np.minimum(nxt, good.size - 1)], good[-1])
    ts[bad] = ts[fill[bad]]
    return ts


# ----------------------------------------------------------------------------- inputs


def columns_from_events(events: Iterable[Event], symbol: Optional[str] = None,
                        clock: str = "exchange", source: str = "events") -> EventColumns:
    """Columns from canonical events in memory (tests, recordings, simulator output).

    ``symbol=None`` takes the symbol of the first book event and ignores the others.
    """
    ex_name = ""
    sym = symbol
    b_ex: list[int] = []
    b_cap: list[int] = []
    b_snap: list[bool] = []
    b_depth: list[int] = []
    b_ver: list[bool] = []
    offsets = [0]
    prices: list[float] = []
    qtys: list[float] = []
    is_bid: list[bool] = []
    t_ex: list[int] = []
    t_cap: list[int] = []
    t_px: list[float] = []
    t_q: list[float] = []
    t_s: list[int] = []
    for ev in events:
        if isinstance(ev, BookLevels):
            if sym is None:
                sym = ev.symbol
            if ev.symbol != sym:
                continue
            ex_name = ev.exchange
            b_ex.append(ev.ts_exchange or 0)
            b_cap.append(ev.ts_capture or 0)
            b_snap.append(isinstance(ev, BookSnapshot))
            b_depth.append(ev.depth or 0)
            b_ver.append(bool(ev.verified))
            for p, q in ev.bids:
                prices.append(p)
                qtys.append(q)
                is_bid.append(True)
            for p, q in ev.asks:
                prices.append(p)
                qtys.append(q)
                is_bid.append(False)
            offsets.append(len(prices))
        elif isinstance(ev, Trade):
            if sym is not None and ev.symbol != sym:
                continue
            if sym is None:
                sym = ev.symbol
            t_ex.append(ev.ts_exchange or 0)
            t_cap.append(ev.ts_capture or 0)
            t_px.append(ev.price)
            t_q.append(ev.qty)
            t_s.append(1 if ev.side == "buy" else -1)
    return EventColumns(
        exchange=ex_name, symbol=sym or "", clock=clock, source=source,
        book_ts=_event_time(np.array(b_ex, np.int64), np.array(b_cap, np.int64), clock),
        book_snapshot=np.array(b_snap, bool), book_depth=np.array(b_depth, np.int64),
        book_verified=np.array(b_ver, bool), level_offsets=np.array(offsets, np.int64),
        level_price=np.array(prices, np.float64), level_qty=np.array(qtys, np.float64),
        level_bid=np.array(is_bid, bool),
        trade_ts=_event_time(np.array(t_ex, np.int64), np.array(t_cap, np.int64), clock),
        trade_price=np.array(t_px, np.float64), trade_qty=np.array(t_q, np.float64),
        trade_sign=np.array(t_s, np.int8),
    )


def parquet_root(path: Path) -> Path:
    """The Parquet folder of ``path``: a collector run directory (``parquet/`` inside) or the folder."""
    path = Path(path)
    if not path.exists():
        raise ResearchDataError(f"{path}: no such directory (give a collector run directory or its parquet/ folder)")
    if (path / "parquet").is_dir():
        return path / "parquet"
    if not any(path.rglob("book-*.parquet")):
        raise ResearchDataError(f"{path}: no book-*.parquet files below it; is this a collector run directory?")
    return path


def _book_files(root: Path, symbol: Optional[str], exchange: Optional[str]) -> dict[tuple[str, str], list[Path]]:
    """(exchange, symbol dir) -> sorted book files, from the Hive partition folder names."""
    out: dict[tuple[str, str], list[Path]] = {}
    for f in sorted(root.rglob("book-*.parquet")):
        parts = {p.split("=", 1)[0]: p.split("=", 1)[1] for p in f.parts if "=" in p}
        key = (parts.get("exchange", ""), parts.get("symbol", ""))
        out.setdefault(key, []).append(f)
    return out


def _pick_partition(root: Path, symbol: Optional[str], exchange: Optional[str]) -> tuple[str, str, list[Path]]:
    parts = _book_files(root, symbol, exchange)
    want_sym = symbol.replace("/", "-") if symbol else None
    keys = [k for k in parts if (want_sym is None or k[1] == want_sym) and (exchange is None or k[0] == exchange)]
    if not keys:
        have = ", ".join(f"{e}/{s}" for e, s in sorted(parts)) or "none"
        raise ResearchDataError(f"{root}: no book files for symbol={symbol!r} exchange={exchange!r}; found: {have}")
    if len(keys) > 1 and want_sym is None:
        # the busiest symbol by file size: research is per symbol
        keys.sort(key=lambda k: -sum(f.stat().st_size for f in parts[k]))
    key = keys[0]
    return key[0], key[1], parts[key]


def columns_from_parquet(path: Path, symbol: Optional[str] = None, exchange: Optional[str] = None,
                         clock: str = "exchange") -> EventColumns:
    """Columns from a collector run directory (or its ``parquet/`` folder), vectorised via Arrow.

    With several symbols present and ``symbol=None``, the one with the most book data is used.
    """
    root = parquet_root(path)
    ex_name, sym_dir, book_files = _pick_partition(root, symbol, exchange)
    trade_files = sorted(p for f in book_files for p in f.parent.glob("trade-*.parquet"))
    trade_files = sorted(set(trade_files))
    return columns_from_files(book_files, trade_files, exchange=ex_name, symbol_dir=sym_dir, clock=clock,
                              source=str(root))


def columns_from_files(book_files: list[Path], trade_files: list[Path], *, exchange: str, symbol_dir: str,
                       clock: str = "exchange", source: str = "", seed=None) -> EventColumns:
    """:func:`columns_from_parquet` over given part files (one day of the store: a Dask task).

    ``seed`` (:class:`mm_core.backtest.event_arrays.BookSeed`): the book as it stood at the first
    message, for a day that opens mid-stream; it becomes a snapshot row ahead of the first book row
    (same time), so the rebuilt book is the one of a pass over the whole capture. Ignored when the
    day's first book row is a snapshot."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mm_core.events import table_schemas

    root, ex_name, sym_dir = source, exchange, symbol_dir
    schemas = table_schemas()
    try:
        book = pa.concat_tables(pq.read_table(f, schema=schemas["book"]) for f in book_files)
    except Exception as exc:  # noqa: BLE001 - name the folder, whatever Arrow raised
        raise ResearchDataError(f"{root}: cannot read book files of {sym_dir}: {exc}") from exc
    trades = (pa.concat_tables(pq.read_table(f, schema=schemas["trade"]) for f in trade_files)
              if trade_files else pa.Table.from_pylist([], schema=schemas["trade"]))
    n = book.num_rows
    bids = book.column("bids").combine_chunks()
    asks = book.column("asks").combine_chunks()
    b_off = np.asarray(bids.offsets, dtype=np.int64)
    a_off = np.asarray(asks.offsets, dtype=np.int64)
    b_vals = bids.values
    a_vals = asks.values
    b_px = np.asarray(b_vals.field("price"), dtype=np.float64)[b_off[0]:b_off[-1]]
    b_q = np.asarray(b_vals.field("qty"), dtype=np.float64)[b_off[0]:b_off[-1]]
    a_px = np.asarray(a_vals.field("price"), dtype=np.float64)[a_off[0]:a_off[-1]]
    a_q = np.asarray(a_vals.field("qty"), dtype=np.float64)[a_off[0]:a_off[-1]]
    b_off = b_off - b_off[0]
    a_off = a_off - a_off[0]
    price, qty, is_bid, offsets = _interleave(b_off, b_px, b_q, a_off, a_px, a_q)
    sym = book.column("symbol")[0].as_py() if n else sym_dir.replace("-", "/")
    kind = book.column("kind").to_numpy(zero_copy_only=False)
    book_ts = _event_time(_int_col(book, "ts_exchange"), _int_col(book, "ts_capture"), clock)
    snapshot = kind == "book_snapshot"
    depth = _int_col(book, "depth")
    verified = book.column("verified").to_numpy(zero_copy_only=False).astype(bool)
    if seed is not None and n and not snapshot[0]:
        nb, na = seed.bid_px.size, seed.ask_px.size
        book_ts = np.concatenate([book_ts[:1], book_ts])
        snapshot = np.concatenate([[True], snapshot])
        depth = np.concatenate([[int(depth.max())], depth])
        verified = np.concatenate([[True], verified])
        price = np.concatenate([seed.bid_px, seed.ask_px, price])
        qty = np.concatenate([seed.bid_qty, seed.ask_qty, qty])
        is_bid = np.concatenate([np.ones(nb, bool), np.zeros(na, bool), is_bid])
        offsets = np.concatenate([[0], offsets + nb + na])
    return EventColumns(
        exchange=ex_name, symbol=sym, clock=clock, source=str(root),
        book_ts=book_ts, book_snapshot=snapshot, book_depth=depth, book_verified=verified,
        level_offsets=offsets, level_price=price, level_qty=qty, level_bid=is_bid,
        trade_ts=_event_time(_int_col(trades, "ts_exchange"), _int_col(trades, "ts_capture"), clock),
        trade_price=trades.column("price").to_numpy(zero_copy_only=False).astype(np.float64),
        trade_qty=trades.column("qty").to_numpy(zero_copy_only=False).astype(np.float64),
        trade_sign=np.where(trades.column("side").to_numpy(zero_copy_only=False) == "buy", 1, -1).astype(np.int8),
    )


def _int_col(table, name: str) -> np.ndarray:
    col = table.column(name)
    return col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


@njit(cache=True)
def _interleave_kernel(b_off, b_px, b_q, a_off, a_px, a_q, price, qty, is_bid, offsets):  # pragma: no cover - jit
    j = 0
    for i in range(b_off.shape[0] - 1):
        for k in range(b_off[i], b_off[i + 1]):
            price[j] = b_px[k]
            qty[j] = b_q[k]
            is_bid[j] = True
            j += 1
        for k in range(a_off[i], a_off[i + 1]):
            price[j] = a_px[k]
            qty[j] = a_q[k]
            is_bid[j] = False
            j += 1
        offsets[i + 1] = j


def _interleave(b_off, b_px, b_q, a_off, a_px, a_q):
    """Merge per-row bid and ask level lists into one list per row (bids first)."""
    total = b_px.shape[0] + a_px.shape[0]
    price = np.empty(total, np.float64)
    qty = np.empty(total, np.float64)
    is_bid = np.empty(total, np.bool_)
    offsets = np.zeros(b_off.shape[0], np.int64)
    if b_off.shape[0] > 1:
        _interleave_kernel(b_off, b_px, b_q, a_off, a_px, a_q, price, qty, is_bid, offsets)
    return price, qty, is_bid, offsets


def columns_from_recording(path: Path, symbol: Optional[str] = None, clock: str = "exchange") -> EventColumns:
    """Columns from a recorded raw feed (own archive, cryptofeed capture, SDK fixture).

    Uses the Kraken adapters exactly as ``mm replay`` does, so what research sees is what the
    collector would have stored.
    """
    from mm_core.replay import recording_events

    events = recording_events(path)
    try:
        first = next(events, None)
    except ValueError as exc:  # RecordingError / ReplayError: unreadable file or header
        raise ResearchDataError(str(exc)) from exc

    def all_events() -> Iterable[Event]:
        if first is not None:
            yield first
        yield from events

    return columns_from_events(all_events(), symbol=symbol, clock=clock, source=str(path))


# ----------------------------------------------------------------------------- reconstruction


@njit(cache=True)
def _set_level(keys, qtys, n, key, q, cap):  # pragma: no cover - jit
    """Set/insert/delete ``key`` in the ascending sorted ``keys[:n]``; return the new count."""
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    found = lo < n and keys[lo] == key
    if not (q > 0.0):  # qty 0 (or negative / NaN) = delete
        if found:
            for m in range(lo, n - 1):
                keys[m] = keys[m + 1]
                qtys[m] = qtys[m + 1]
            n -= 1
        return n
    if found:
        qtys[lo] = q
        return n
    if lo >= cap:
        return n  # worse than a full book: out of scope
    last = n if n < cap else cap - 1
    for m in range(last, lo, -1):
        keys[m] = keys[m - 1]
        qtys[m] = qtys[m - 1]
    keys[lo] = key
    qtys[lo] = q
    return n + 1 if n < cap else n


@njit(cache=True)
def _rebuild_kernel(offsets, price, qty, is_bid, snapshot, depth, cap, levels,
                    out_bid, out_ask, out_bq, out_aq, out_nb, out_na):  # pragma: no cover - jit
    bk = np.empty(cap, np.float64)
    bq = np.empty(cap, np.float64)
    ak = np.empty(cap, np.float64)
    aq = np.empty(cap, np.float64)
    nb = 0
    na = 0
    for r in range(offsets.shape[0] - 1):
        if snapshot[r]:
            nb = 0
            na = 0
        for j in range(offsets[r], offsets[r + 1]):
            if is_bid[j]:
                nb = _set_level(bk, bq, nb, -price[j], qty[j], cap)  # bids keyed by -price: best first
            else:
                na = _set_level(ak, aq, na, price[j], qty[j], cap)
        d = depth[r]
        if d > 0:
            if nb > d:
                nb = d
            if na > d:
                na = d
        out_nb[r] = nb
        out_na[r] = na
        out_bid[r] = -bk[0] if nb > 0 else np.nan
        out_ask[r] = ak[0] if na > 0 else np.nan
        for k in range(levels):
            out_bq[r, k] = bq[k] if k < nb else 0.0
            out_aq[r, k] = aq[k] if k < na else 0.0


def infer_tick_size(price: np.ndarray, sample: int = 200_000) -> float:
    """Smallest positive gap between distinct level prices, rounded to 6 significant digits.

    Why: the book's prices all sit on the tick grid, and a day's worth of distinct prices contains
    neighbouring ticks, so the smallest gap *is* the tick (pass ``tick_size`` when you know it).
    """
    p = np.asarray(price, dtype=np.float64)
    p = p[np.isfinite(p) & (p > 0)]
    if p.size == 0:
        return float("nan")
    if p.size > sample:
        p = p[:: max(1, p.size // sample)]
    u = np.unique(p)
    if u.size < 2:
        return float("nan")
    d = np.diff(u)
    d = d[d > u[-1] * 1e-12]
    if d.size == 0:
        return float("nan")
    return float(f"{float(d.min()):.6g}")


def reconstruct(cols: EventColumns, levels: int = DEFAULT_LEVELS, tick_size: Optional[float] = None) -> BookFrames:
    """Replay the book messages of ``cols`` in wire order; top of book after each (see module doc)."""
    if cols.n_book == 0:
        raise ResearchDataError(f"{cols.source or 'input'}: no book events for symbol {cols.symbol!r}")
    if levels < 1:
        raise ValueError("levels must be >= 1")
    n = cols.n_book
    max_depth = int(cols.book_depth.max()) if n else 0
    # Kraken truncates *after* a message: a message may hold a side above its depth for a moment (an
    # insert before a delete), so the working book needs room for the depth plus one message's
    # levels -- a book capped at the depth would drop the worst level at the insert and come out of
    # the message one level short (found by tests/test_book_implementations_agree.py at depth 100)
    per_msg = int(np.diff(cols.level_offsets).max()) if n else 0
    cap = max(levels, max_depth + per_msg if max_depth > 0 else 0, 64)
    if max_depth <= 0:
        cap = max(cap, 5000)
    out_bid = np.empty(n, np.float64)
    out_ask = np.empty(n, np.float64)
    out_bq = np.empty((n, levels), np.float64)
    out_aq = np.empty((n, levels), np.float64)
    out_nb = np.empty(n, np.int64)
    out_na = np.empty(n, np.int64)
    _rebuild_kernel(cols.level_offsets, cols.level_price, cols.level_qty, cols.level_bid,
                    cols.book_snapshot, cols.book_depth, cap, levels,
                    out_bid, out_ask, out_bq, out_aq, out_nb, out_na)
    tick = float(tick_size) if tick_size else infer_tick_size(cols.level_price)
    if not (tick > 0 and math.isfinite(tick)):
        raise ResearchDataError(f"{cols.source or 'input'}: cannot infer the tick size of {cols.symbol!r}; pass tick_size")
    order = np.argsort(cols.trade_ts, kind="stable")
    return BookFrames(
        exchange=cols.exchange, symbol=cols.symbol, tick_size=tick, clock=cols.clock, source=cols.source,
        ts=np.maximum.accumulate(cols.book_ts), ts_raw=cols.book_ts,
        bid=out_bid, ask=out_ask, bid_qty=out_bq, ask_qty=out_aq, n_bid_levels=out_nb, n_ask_levels=out_na,
        verified=cols.book_verified, snapshot=cols.book_snapshot,
        trade_ts=cols.trade_ts[order], trade_ts_raw=cols.trade_ts, trade_price=cols.trade_price[order],
        trade_qty=cols.trade_qty[order], trade_sign=cols.trade_sign[order],
    )
