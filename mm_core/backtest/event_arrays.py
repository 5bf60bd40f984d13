"""Canonical events -> flat columnar rows the engine loops over (hftbacktest's event-array idea).

Why rows and not event objects: a simulated day is ~1 M book messages; a Python object per event
caps a backtest at a few hundred thousand events per second. One row per *level change* or trade,
as parallel numpy columns, lets the jitted engine run at tens of millions of rows per second and
lets the same rows be handed to hftbacktest unchanged (:func:`to_hftbacktest`).

Row kinds: :data:`DEPTH` (one price level set to ``qty``; 0 deletes), :data:`TRADE` (``side`` is
the taker side), :data:`CLEAR` (a snapshot follows: drop one side). ``side`` is +1 bid / taker buy,
-1 ask / taker sell. Rows of one exchange message share ``msg`` and ``exch_ts``.

The book pass (:func:`book_pass`) replays the rows once through a dense tick-indexed book and
stores, for every row, the exchange book's best bid/ask (ticks and sizes) *after* that row. Kraken
sends no delete for a level pushed out of the subscribed depth (the client truncates), so the pass
also truncates to ``depth`` after each message and inserts explicit delete rows for the levels it
drops: without them a dense book keeps phantom levels that later surface as the best price
(cryptofeed#701). Both our engine and hftbacktest then see the same, clean book.

Converters: :func:`from_events` (any iterable of canonical events), :func:`from_run_dir` (a run's
Parquet tables), :func:`from_simulator` (the offline market model). :func:`cached` stores the result
as ``.npz`` so repeated backtests skip conversion (and the simulator's ~30 s per day).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
from numba import njit

DEPTH = 1
TRADE = 2
CLEAR = 3
NO_BID = -1
NO_ASK = 1 << 62
MAX_TICK_RANGE = 50_000_000  # dense book size limit: 2 x 400 MB at most
_UNKNOWN_TS = -1


@dataclass(frozen=True)
class MarketArrays:
    """Columnar market rows in exchange-time order plus the book's best prices after each row."""

    kind: np.ndarray  # uint8: DEPTH / TRADE / CLEAR
    side: np.ndarray  # int8: +1 bid or taker buy, -1 ask or taker sell
    exch_ts: np.ndarray  # int64 ns, non-decreasing
    capture_ts: np.ndarray  # int64 ns: when our collector received the row's message (0 if unknown)
    msg: np.ndarray  # int64: message index (rows of one message share it)
    price: np.ndarray  # float64
    tick: np.ndarray  # int64: round(price / tick_size)
    qty: np.ndarray  # float64
    best_bid_tick: np.ndarray  # int64 after the row (NO_BID when empty)
    best_ask_tick: np.ndarray  # int64 after the row (NO_ASK when empty)
    best_bid_qty: np.ndarray  # float64
    best_ask_qty: np.ndarray  # float64
    tick_size: float
    lot_size: float
    depth: int
    exchange: str = "kraken"
    symbol: str = "BTC/EUR"

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @property
    def n_book_rows(self) -> int:
        return int(np.count_nonzero(self.kind == DEPTH))

    @property
    def n_trades(self) -> int:
        return int(np.count_nonzero(self.kind == TRADE))

    @property
    def n_messages(self) -> int:
        return int(np.unique(self.msg).shape[0]) if len(self) else 0

    @property
    def tick_range(self) -> tuple[int, int]:
        """``(lo, n_ticks)`` of the dense book that holds every price in the data."""
        return _tick_range(self.kind, self.tick)

    def describe(self) -> dict[str, object]:
        """Counts for summaries and the benchmark printout."""
        span = (int(self.exch_ts[-1]) - int(self.exch_ts[0])) / 1e9 if len(self) else 0.0
        return {
            "rows": len(self),
            "book_rows": self.n_book_rows,
            "trades": self.n_trades,
            "messages": self.n_messages,
            "span_s": span,
            "depth": self.depth,
            "symbol": self.symbol,
        }

    # -------------------------------------------------------------- persistence

    def save(self, path: Path) -> Path:
        """Write an uncompressed ``.npz`` (loads in well under a second for a day)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}
        meta = {f.name: getattr(self, f.name) for f in fields(self) if not isinstance(getattr(self, f.name), np.ndarray)}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: Path) -> "MarketArrays":
        with np.load(Path(path), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {f.name: z[f.name] for f in fields(cls) if f.name in z.files}
        return cls(**arrays, **meta)

    def slice_time(self, start_ns: int, end_ns: int) -> "MarketArrays":
        """Rows with ``start_ns <= exch_ts < end_ns`` (the book state before ``start_ns`` is lost:
        use only on data that begins with a snapshot inside the window)."""
        lo, hi = np.searchsorted(self.exch_ts, [start_ns, end_ns])
        kw = {f.name: (getattr(self, f.name)[lo:hi] if isinstance(getattr(self, f.name), np.ndarray)
                       else getattr(self, f.name)) for f in fields(self)}
        return MarketArrays(**kw)


# ------------------------------------------------------------------ book pass (numba)


def _tick_range(kind, tick):
    """``(lowest tick, number of ticks)`` over non-clear rows. Plain numpy (a few ms per day of
    rows): jitting it cost ~0.15 s of cold compile in every fresh process that loads data."""
    t = tick[kind != CLEAR]
    if t.shape[0] == 0:
        return 0, 1
    lo, hi = int(t.min()), int(t.max())
    if hi < 0:
        return 0, 1
    return lo, hi - lo + 1


@njit(cache=True)
def _scan_down(book, start, stop):
    """Highest index in [stop, start] with a level, or -1."""
    t = start
    while t >= stop:
        if book[t] > 0.0:
            return t
        t -= 1
    return -1


@njit(cache=True)
def _scan_up(book, start, stop):
    """Lowest index in [start, stop] with a level, or -1."""
    t = start
    while t <= stop:
        if book[t] > 0.0:
            return t
        t += 1
    return -1


@njit(cache=True)
def book_pass(kind, side, tick, qty, msg, depth, lo, n_ticks):
    """Replay rows through a dense book; return best prices after every row and the truncations.

    Returns ``(bb, ba, bbq, baq, trunc_after, trunc_side, trunc_tick, n_trunc)``: best bid/ask
    ticks and sizes after each row, and the levels dropped (``depth > 0`` only) after the last row
    of a message because the book held more than ``depth`` levels on that side.
    """
    n = kind.shape[0]
    bq = np.zeros(n_ticks)
    aq = np.zeros(n_ticks)
    bb = np.empty(n, np.int64)
    ba = np.empty(n, np.int64)
    bbq = np.empty(n)
    baq = np.empty(n)
    cap = max(16, n // 4)
    t_after = np.empty(cap, np.int64)
    t_side = np.empty(cap, np.int8)
    t_tick = np.empty(cap, np.int64)
    n_trunc = 0
    nb = 0
    na = 0
    best_b = -1  # indices into the dense arrays; -1 = empty
    worst_b = -1
    best_a = -1
    worst_a = -1
    for i in range(n):
        k = kind[i]
        if k == DEPTH:
            t = tick[i] - lo
            new = qty[i]
            if side[i] > 0:
                prev = bq[t]
                bq[t] = new
                if prev <= 0.0 and new > 0.0:
                    nb += 1
                    if best_b < 0 or t > best_b:
                        best_b = t
                    if worst_b < 0 or t < worst_b:
                        worst_b = t
                elif prev > 0.0 and new <= 0.0:
                    bq[t] = 0.0
                    nb -= 1
                    if nb == 0:
                        best_b = -1
                        worst_b = -1
                    else:
                        if t == best_b:
                            best_b = _scan_down(bq, t - 1, worst_b)
                        if t == worst_b:
                            worst_b = _scan_up(bq, t + 1, best_b)
            else:
                prev = aq[t]
                aq[t] = new
                if prev <= 0.0 and new > 0.0:
                    na += 1
                    if best_a < 0 or t < best_a:
                        best_a = t
                    if worst_a < 0 or t > worst_a:
                        worst_a = t
                elif prev > 0.0 and new <= 0.0:
                    aq[t] = 0.0
                    na -= 1
                    if na == 0:
                        best_a = -1
                        worst_a = -1
                    else:
                        if t == best_a:
                            best_a = _scan_up(aq, t + 1, worst_a)
                        if t == worst_a:
                            worst_a = _scan_down(aq, t - 1, best_a)
        elif k == CLEAR:
            if side[i] > 0:
                if nb > 0:
                    for t in range(worst_b, best_b + 1):
                        bq[t] = 0.0
                nb = 0
                best_b = -1
                worst_b = -1
            else:
                if na > 0:
                    for t in range(best_a, worst_a + 1):
                        aq[t] = 0.0
                na = 0
                best_a = -1
                worst_a = -1
        if depth > 0 and (i == n - 1 or msg[i + 1] != msg[i]):
            while nb > depth or na > depth:
                if n_trunc + 2 > cap:
                    cap *= 2
                    t_after = _grow_i8(t_after, cap)
                    t_tick = _grow_i8(t_tick, cap)
                    t_side2 = np.empty(cap, np.int8)
                    for r in range(n_trunc):
                        t_side2[r] = t_side[r]
                    t_side = t_side2
                if nb > depth:
                    bq[worst_b] = 0.0
                    nb -= 1
                    t_after[n_trunc] = i
                    t_side[n_trunc] = 1
                    t_tick[n_trunc] = worst_b + lo
                    n_trunc += 1
                    worst_b = _scan_up(bq, worst_b + 1, best_b)
                if na > depth:
                    aq[worst_a] = 0.0
                    na -= 1
                    t_after[n_trunc] = i
                    t_side[n_trunc] = -1
                    t_tick[n_trunc] = worst_a + lo
                    n_trunc += 1
                    worst_a = _scan_down(aq, worst_a - 1, best_a)
        if best_b >= 0:
            bb[i] = best_b + lo
            bbq[i] = bq[best_b]
        else:
            bb[i] = NO_BID
            bbq[i] = 0.0
        if best_a >= 0:
            ba[i] = best_a + lo
            baq[i] = aq[best_a]
        else:
            ba[i] = NO_ASK
            baq[i] = 0.0
    return bb, ba, bbq, baq, t_after, t_side, t_tick, n_trunc


@njit(cache=True)
def _grow_i8(a, cap):
    out = np.empty(cap, np.int64)
    for r in range(a.shape[0]):  # explicit loop: slice assignment costs seconds of JIT
        out[r] = a[r]
    return out


# ------------------------------------------------------------------ assembling rows


class RowBuilder:
    """Accumulates raw rows (Python lists) before they become arrays; one call per event kind."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.side: list[int] = []
        self.exch_ts: list[int] = []
        self.capture_ts: list[int] = []
        self.msg: list[int] = []
        self.price: list[float] = []
        self.qty: list[float] = []
        self._msg = 0

    def _row(self, kind: int, side: int, ts: int, cap: int, price: float, qty: float) -> None:
        self.kind.append(kind)
        self.side.append(side)
        self.exch_ts.append(ts)
        self.capture_ts.append(cap)
        self.msg.append(self._msg)
        self.price.append(price)
        self.qty.append(qty)

    def book(self, ts: Optional[int], cap: int, bids, asks, snapshot: bool) -> None:
        """One book message: a snapshot clears both sides first; levels apply in wire order."""
        ts = _UNKNOWN_TS if ts is None else ts
        if snapshot:
            self._row(CLEAR, 1, ts, cap, 0.0, 0.0)
            self._row(CLEAR, -1, ts, cap, 0.0, 0.0)
        for p, q in bids:
            self._row(DEPTH, 1, ts, cap, p, q)
        for p, q in asks:
            self._row(DEPTH, -1, ts, cap, p, q)
        self._msg += 1

    def trade(self, ts: Optional[int], cap: int, price: float, qty: float, side: str) -> None:
        self._row(TRADE, 1 if side == "buy" else -1, _UNKNOWN_TS if ts is None else ts, cap, price, qty)
        self._msg += 1

    def top(self, ts: Optional[int], cap: int, bid: float, bid_qty: float, ask: float, ask_qty: float) -> None:
        """A top-of-book event as a one-level book (used only when a source has no L2 book)."""
        self.book(ts, cap, [(bid, bid_qty)], [(ask, ask_qty)], snapshot=True)

    def columns(self) -> dict[str, np.ndarray]:
        return {
            "kind": np.asarray(self.kind, np.uint8),
            "side": np.asarray(self.side, np.int8),
            "exch_ts": np.asarray(self.exch_ts, np.int64),
            "capture_ts": np.asarray(self.capture_ts, np.int64),
            "msg": np.asarray(self.msg, np.int64),
            "price": np.asarray(self.price, np.float64),
            "qty": np.asarray(self.qty, np.float64),
        }


def _fill_unknown_ts(exch: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Rows without an exchange time (Kraken v2 snapshots) get ``min(capture, next known exch)``."""
    exch = exch.copy()
    unknown = exch == _UNKNOWN_TS
    if not unknown.any():
        return exch
    known = np.where(unknown, np.iinfo(np.int64).max, exch)
    next_known = np.minimum.accumulate(known[::-1])[::-1]
    fill = np.where(cap > 0, np.minimum(cap, next_known), next_known)
    if (fill == np.iinfo(np.int64).max).any():  # nothing known after: use capture time
        fill = np.where(fill == np.iinfo(np.int64).max, cap, fill)
    exch[unknown] = fill[unknown]
    return exch


def _wire_order_times(exch: np.ndarray, cap: np.ndarray, kind: np.ndarray,
                      order_key: Optional[np.ndarray]) -> np.ndarray:
    """Exchange times that keep book messages in wire order (the input order, or ``order_key``).

    Books apply in the order received, never by timestamp (kraken-protocol.md 2). So, in wire
    order: a row without an exchange time (a Kraken v2 snapshot) takes ``min(capture, next known
    exchange time)`` -- every row of the snapshot the same time, whatever table it came from -- and
    a book row whose stamp went backwards takes the latest book stamp before it, so no sort can
    move a message ahead of an earlier one (or a snapshot's clear behind its own levels and the
    updates after it, which emptied the book of a capture read from its Parquet tables). Trades
    keep their stamps. Found by tests/test_book_implementations_agree.py.
    """
    n = exch.shape[0]
    wire = np.arange(n)
    if order_key is not None:
        wire = np.empty_like(order_key)
        wire[order_key] = np.arange(n)  # order_key is each row's rank in wire order: invert it
    ts = _fill_unknown_ts(exch[wire], cap[wire])
    book = kind[wire] != TRADE
    run = np.maximum.accumulate(ts[book]) if book.any() else ts[book]
    ts[book] = run
    out = np.empty_like(exch)
    out[wire] = ts
    return out


def build_arrays(
    cols: dict[str, np.ndarray],
    *,
    tick_size: float,
    lot_size: float,
    depth: int,
    exchange: str = "kraken",
    symbol: str = "BTC/EUR",
    order_key: Optional[np.ndarray] = None,
) -> MarketArrays:
    """Sort raw rows into exchange-time order, truncate to ``depth`` and run the book pass."""
    exch = _wire_order_times(cols["exch_ts"], cols["capture_ts"], cols["kind"], order_key)
    n = exch.shape[0]
    secondary = np.arange(n) if order_key is None else order_key
    order = np.lexsort((secondary, exch))  # stable: rows of a message stay together, in order
    kind = cols["kind"][order]
    side = cols["side"][order]
    exch = exch[order]
    cap = cols["capture_ts"][order]
    msg = cols["msg"][order]
    price = cols["price"][order]
    qty = cols["qty"][order]
    tick = np.rint(price / tick_size).astype(np.int64)
    # Within a message only the last change of a level counts, and deletes go before sets: the
    # message's final book is unchanged, but no row shows a transient crossed book (a move's bid
    # insert at the old ask price before that ask's delete), which would fill resting orders that
    # the exchange never crossed.
    group = np.cumsum(np.concatenate([[0], (msg[1:] != msg[:-1]).astype(np.int64)]))
    pos = np.arange(n)
    dep = np.nonzero(kind == DEPTH)[0]
    by_level = dep[np.lexsort((dep, tick[dep], side[dep], group[dep]))]
    same_next = np.zeros(by_level.size, bool)
    if by_level.size > 1:
        a, b = by_level[:-1], by_level[1:]
        same_next[:-1] = (group[a] == group[b]) & (side[a] == side[b]) & (tick[a] == tick[b])
    keep = np.ones(n, bool)
    keep[by_level[same_next]] = False  # superseded by a later change of the same level
    rank = np.where(kind == CLEAR, 0, np.where((kind == DEPTH) & (qty > 0), 2, 1))
    within = np.lexsort((pos, rank, group))
    within = within[keep[within]]
    kind, side, exch, cap, msg, price, qty, tick = (
        a[within] for a in (kind, side, exch, cap, msg, price, qty, tick))
    n = kind.shape[0]
    lo, n_ticks = _tick_range(kind, tick)
    if n_ticks > MAX_TICK_RANGE:
        raise ValueError(
            f"prices span {n_ticks} ticks of {tick_size}: too wide for the dense book; "
            "check the instrument's tick_size or drop outlier levels")
    bb, ba, bbq, baq, t_after, t_side, t_tick, n_trunc = book_pass(kind, side, tick, qty, msg, depth, lo, n_ticks)
    n = kind.shape[0]
    if n_trunc:
        # insert explicit deletes right after the message they belong to, then recompute bests
        t_after, t_side, t_tick = t_after[:n_trunc], t_side[:n_trunc], t_tick[:n_trunc]
        src = np.concatenate([np.arange(n), t_after])
        pos = np.concatenate([np.arange(n) * 2, t_after * 2 + 1])
        ord2 = np.argsort(pos, kind="stable")
        is_new = ord2 >= n
        srcs = src[ord2]
        kind = np.where(is_new, np.uint8(DEPTH), kind[srcs]).astype(np.uint8)
        new_side = np.zeros(n + n_trunc, np.int8)
        new_side[~is_new] = side[srcs[~is_new]]
        new_side[is_new] = t_side[ord2[is_new] - n]
        side = new_side
        tick_new = tick[srcs].copy()
        tick_new[is_new] = t_tick[ord2[is_new] - n]
        tick = tick_new
        exch, cap, msg = exch[srcs], cap[srcs], msg[srcs]
        price = np.where(is_new, tick * tick_size, price[srcs])
        qty = np.where(is_new, 0.0, qty[srcs])
        bb, ba, bbq, baq, _, _, _, _ = book_pass(kind, side, tick, qty, msg, 0, lo, n_ticks)
    return MarketArrays(
        kind=kind, side=side, exch_ts=exch, capture_ts=cap, msg=msg, price=price, tick=tick, qty=qty,
        best_bid_tick=bb, best_ask_tick=ba, best_bid_qty=bbq, best_ask_qty=baq,
        tick_size=float(tick_size), lot_size=float(lot_size), depth=int(depth),
        exchange=exchange, symbol=symbol,
    )


# ------------------------------------------------------------------ sources


def from_events(
    events: Iterable[object], *, tick_size: float, lot_size: float = 1e-8, depth: Optional[int] = None,
    tops: str = "auto",
) -> MarketArrays:
    """Rows from canonical events (any order; sorted by exchange time).

    ``tops``: "auto" uses TopOfBook events only if the source has no L2 book (a BBO-only capture),
    "never" ignores them, "only" builds a one-level book from them.
    """
    from mm_core.events import BookSnapshot, BookUpdate, TopOfBook, Trade

    rows = RowBuilder()
    top_rows = RowBuilder()
    seen_depth = 0
    exchange, symbol = "kraken", "BTC/EUR"
    for ev in events:
        t = type(ev)
        if t is BookUpdate or t is BookSnapshot:
            if tops != "only":
                rows.book(ev.ts_exchange, ev.ts_capture, ev.bids, ev.asks, t is BookSnapshot)
            seen_depth = seen_depth or ev.depth
            exchange, symbol = ev.exchange, ev.symbol
        elif t is Trade:
            rows.trade(ev.ts_exchange, ev.ts_capture, ev.price, ev.qty, ev.side)
        elif t is TopOfBook and tops != "never":
            top_rows.top(ev.ts_exchange, ev.ts_capture, ev.bid, ev.bid_qty, ev.ask, ev.ask_qty)
            exchange, symbol = ev.exchange, ev.symbol
    has_book = any(k == DEPTH for k in rows.kind)
    if tops == "only" or (tops == "auto" and not has_book):
        for name in ("kind", "side", "exch_ts", "capture_ts", "price", "qty"):
            getattr(rows, name).extend(getattr(top_rows, name))
        offset = rows._msg
        rows.msg.extend(m + offset for m in top_rows.msg)
        seen_depth = 1
    cols = rows.columns()
    d = depth if depth is not None else seen_depth
    return build_arrays(cols, tick_size=tick_size, lot_size=lot_size, depth=d, exchange=exchange, symbol=symbol)


def from_run_dir(path: Path, *, tick_size: float, lot_size: float = 1e-8, depth: Optional[int] = None,
                 tops: str = "auto") -> MarketArrays:
    """Rows from a run directory's Parquet tables (``RUN/parquet`` or a Parquet folder itself).

    Flattening uses Arrow's list kernels, so a day converts in seconds. Trades sort before book
    messages with the same exchange time (the trade caused the book change).
    """
    import pyarrow.compute as pc

    from mm_core.store.parquet_store import read_table

    root = Path(path)
    if (root / "parquet").is_dir():
        root = root / "parquet"
    if not root.is_dir():
        raise FileNotFoundError(f"{path}: no Parquet folder (expected RUN_DIR/parquet or a folder of parts)")
    book = read_table(root, "book")
    trade = read_table(root, "trade")
    parts: list[dict[str, np.ndarray]] = []
    keys: list[np.ndarray] = []
    msg0 = 0
    exchange, symbol = "kraken", "BTC/EUR"
    if tops != "only" and book.num_rows:
        exchange = str(book.column("exchange")[0])
        symbol = str(book.column("symbol")[0])
        d = depth if depth is not None else int(pc.max(book.column("depth")).as_py() or 0)
        ts = _ts_col(book.column("ts_exchange"))
        cap = book.column("ts_capture").to_numpy().astype(np.int64)
        snap = (book.column("kind").to_numpy(zero_copy_only=False) == "book_snapshot")
        for side, name in ((1, "bids"), (-1, "asks")):
            lst = book.column(name).combine_chunks()
            parent = pc.list_parent_indices(lst).to_numpy()
            flat = pc.list_flatten(lst)
            parts.append(_part(DEPTH, side, ts[parent], cap[parent], parent + msg0,
                               flat.field("price").to_numpy(), flat.field("qty").to_numpy()))
            keys.append(parent * 4 + (1 if side > 0 else 2))
        idx = np.nonzero(snap)[0]
        for side in (1, -1):
            parts.append(_part(CLEAR, side, ts[idx], cap[idx], idx + msg0, np.zeros(idx.size), np.zeros(idx.size)))
            keys.append(idx * 4)
        msg0 += book.num_rows
    else:
        d = depth if depth is not None else 1
    if trade.num_rows:
        ts = _ts_col(trade.column("ts_exchange"))
        cap = trade.column("ts_capture").to_numpy().astype(np.int64)
        side = np.where(trade.column("side").to_numpy(zero_copy_only=False) == "buy", 1, -1)
        n = trade.num_rows
        parts.append(_part(TRADE, side, ts, cap, np.arange(n) + msg0,
                           trade.column("price").to_numpy(), trade.column("qty").to_numpy()))
        keys.append(np.full(n, -1, np.int64))  # trades first at equal exchange time
        msg0 += n
    if tops == "only" or (tops == "auto" and not book.num_rows):
        top = read_table(root, "top_of_book")
        if top.num_rows:
            exchange = str(top.column("exchange")[0])
            symbol = str(top.column("symbol")[0])
            rows = RowBuilder()
            for rec in top.select(["ts_exchange", "ts_capture", "bid", "bid_qty", "ask", "ask_qty"]).to_pylist():
                rows.top(rec["ts_exchange"], rec["ts_capture"], rec["bid"], rec["bid_qty"], rec["ask"], rec["ask_qty"])
            c = rows.columns()
            c["msg"] = c["msg"] + msg0
            parts.append(c)
            keys.append(np.arange(c["kind"].size, dtype=np.int64) * 0 + 3)
            d = 1
    if not parts:
        raise ValueError(f"{path}: no book, trade or top_of_book rows found")
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # secondary order: capture order within equal exchange time, trades first, then bids/asks
    key = np.concatenate(keys)
    secondary = np.lexsort((key, cols["capture_ts"]))
    rank = np.empty_like(secondary)
    rank[secondary] = np.arange(secondary.size)
    return build_arrays(cols, tick_size=tick_size, lot_size=lot_size, depth=d, exchange=exchange,
                        symbol=symbol, order_key=rank)


def _ts_col(col) -> np.ndarray:
    """Nullable int64 nanoseconds -> int64 with -1 for null (never via float: that loses ns)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(col.cast(pa.int64()), _UNKNOWN_TS).to_numpy().astype(np.int64)


def _part(kind: int, side, ts, cap, msg, price, qty) -> dict[str, np.ndarray]:
    n = len(ts)
    return {
        "kind": np.full(n, kind, np.uint8),
        "side": (np.full(n, side, np.int8) if np.isscalar(side) else np.asarray(side, np.int8)),
        "exch_ts": np.asarray(ts, np.int64),
        "capture_ts": np.asarray(cap, np.int64),
        "msg": np.asarray(msg, np.int64),
        "price": np.asarray(price, np.float64),
        "qty": np.asarray(qty, np.float64),
    }


def simulator_events(seconds: float, seed: int, *, predictive: bool = False, depth: int = 10,
                     updates_per_second: float = 10.0, trades_per_second: float = 1.0):
    """The offline simulator's canonical events (book + trades; tops are redundant with the book)."""
    from mm_core.simexchange.canonical import canonical_events
    from mm_core.simexchange.market import MarketModel

    model = MarketModel(seed=seed, predictive=predictive, updates_per_second=updates_per_second,
                        trades_per_second=trades_per_second)
    return canonical_events(model, seconds, depth=depth, tops=False)


def from_simulator(seconds: float, seed: int, *, predictive: bool = False, depth: int = 10,
                   updates_per_second: float = 10.0, trades_per_second: float = 1.0,
                   tick_size: float = 0.1, lot_size: float = 1e-8) -> MarketArrays:
    """Rows of ``seconds`` simulated seconds (Python generator: ~40 k messages/s, so cache a day)."""
    evs = simulator_events(seconds, seed, predictive=predictive, depth=depth,
                           updates_per_second=updates_per_second, trades_per_second=trades_per_second)
    return from_events(evs, tick_size=tick_size, lot_size=lot_size, depth=depth, tops="never")


# ------------------------------------------------------------------ cache


def cache_dir() -> Path:
    """``$MM_CACHE_DIR`` or ``~/.cache/mm_core``: converted arrays live here, keyed by their source."""
    root = os.environ.get("MM_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "mm_core"


def cached(key: dict[str, object], build: Callable[[], MarketArrays], *, directory: Optional[Path] = None,
           refresh: bool = False) -> tuple[MarketArrays, Path, bool]:
    """Load arrays for ``key`` from the cache or build and store them; returns (arrays, path, hit)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = (directory or cache_dir() / "backtest") / f"market-{digest}.npz"
    if path.is_file() and not refresh:
        return MarketArrays.load(path), path, True
    arrays = build()
    arrays.save(path)
    return arrays, path, False


def run_dir_key(path: Path) -> dict[str, object]:
    """Cache key of a run directory: every Parquet part's name, size and mtime."""
    files = sorted(Path(path).rglob("*.parquet"))
    return {"source": "run_dir", "path": str(Path(path).resolve()),
            "files": [(str(f.name), f.stat().st_size, f.stat().st_mtime_ns) for f in files]}


def simulator_key(seconds: float, seed: int, **params: object) -> dict[str, object]:
    return {"source": "simulator", "seconds": seconds, "seed": seed, **params, "version": 1}


# ------------------------------------------------------------------ hftbacktest format


def to_hftbacktest(m: MarketArrays, local_ts: np.ndarray) -> np.ndarray:
    """The same rows in hftbacktest's 8-field event format (for the side-by-side benchmark).

    CLEAR rows become hftbacktest depth-clear events; every row is both an exchange and a local
    event, so both engines see exactly the same market.
    """
    from hftbacktest import (BUY_EVENT, DEPTH_CLEAR_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT,
                             SELL_EVENT, TRADE_EVENT)
    from hftbacktest.types import event_dtype

    out = np.zeros(len(m), event_dtype)
    code = np.select([m.kind == DEPTH, m.kind == TRADE, m.kind == CLEAR],
                     [DEPTH_EVENT, TRADE_EVENT, DEPTH_CLEAR_EVENT], 0).astype(np.uint64)
    side = np.where(m.side > 0, np.uint64(BUY_EVENT), np.uint64(SELL_EVENT))
    out["ev"] = code | side | np.uint64(EXCH_EVENT) | np.uint64(LOCAL_EVENT)
    out["exch_ts"] = m.exch_ts
    out["local_ts"] = local_ts
    lo, n_ticks = m.tick_range  # a clear drops the whole side: "up to" the far end of the data
    clear_px = np.where(m.side > 0, lo * m.tick_size, (lo + n_ticks - 1) * m.tick_size)
    out["px"] = np.where(m.kind == CLEAR, clear_px, m.tick * m.tick_size)
    out["qty"] = m.qty
    return out
