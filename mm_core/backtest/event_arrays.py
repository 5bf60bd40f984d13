"""Canonical events -> flat columnar rows the engine loops over (hftbacktest's event-array idea).

Why rows and not event objects: a simulated day is ~1 M book messages; a Python object per event
caps a backtest at a few hundred thousand events per second. One row per *level change* or trade,
as parallel numpy columns, lets the jitted engine run at tens of millions of rows per second and
lets the same rows be handed to hftbacktest unchanged (:func:`to_hftbacktest`).

Row kinds: :data:`DEPTH` (one price level set to ``qty``; 0 deletes), :data:`TRADE` (``side`` is
the taker side), :data:`CLEAR` (a snapshot follows: drop one side). ``side`` is +1 bid / taker buy,
-1 ask / taker sell. Rows of one exchange message share ``msg`` and ``exch_ts``.

How rows are made (:func:`assemble`): sources hand over *messages*, not rows -- a book stream (per
message: exchange and capture time, snapshot flag, its bid and ask levels as offsets into flat
price/qty arrays, exactly Arrow's list layout) and a trade stream. One compiled pass
(:func:`_assemble_kernel`) merges the two streams in exchange-time order, turns each message into
rows and replays them through a dense tick-indexed book, writing for every row the exchange book's
best bid/ask (ticks and sizes) *after* that row. Inside a message only the last change of a level
counts and deletes go before sets: the message's final book is unchanged, but no row shows a
transient crossed book (a move's bid insert at the old ask price before that ask's delete), which
would fill resting orders the exchange never crossed. Kraken sends no delete for a level pushed
out of the subscribed depth (the client truncates), so after each message the pass truncates to
``depth`` and writes explicit delete rows for the levels it drops: without them a dense book keeps
phantom levels that later surface as the best price (cryptofeed#701). Both our engine and
hftbacktest then see the same, clean book.

Why one pass over messages: the earlier version built rows first and then sorted, de-duplicated,
re-sorted, inserted deletes and replayed the book twice -- three lexsorts and a dozen gathers over
~2 M rows, most of a backtest's wall time. Messages arrive in time order already (each stream is
checked; only an unsorted stream is sorted, per message), so the merge is linear and every row is
written once, straight into its final place.

Order of messages: exchange time, then capture time, then trades before book messages (a trade
comes with the book change it caused), then source order. Messages without an exchange time
(Kraken v2 snapshots) get ``min(capture time, next known exchange time of their stream)``.

Converters: :func:`from_events` (any iterable of canonical events), :func:`from_run_dir` (a run's
Parquet tables), :func:`from_simulator` (the offline market model). :func:`cached` stores the result
as ``.npz`` keyed by the source *and* a digest of the code that builds rows (:func:`producer_digest`),
so a changed book pass never reuses rows an older one made.
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

from mm_core.backtest import jit_cache

jit_cache.install()  # before any jitted function of the backtest is defined (see jit_cache)

DEPTH = 1
TRADE = 2
CLEAR = 3
NO_BID = -1
NO_ASK = 1 << 62
MAX_TICK_RANGE = 50_000_000  # dense book size limit: 2 x 400 MB at most
_UNKNOWN_TS = -1


@dataclass(frozen=True, init=False)
class MarketArrays:
    """Columnar market rows in exchange-time order plus the book's best prices after each row.

    The best sizes (``best_bid_qty``/``best_ask_qty``) are derived on first use (a replay of the
    rows, ~0.1 s a day) and kept: only size-aware fair models read them, and not storing them
    saves 16 bytes a row (~30 MB a day) for every other run."""

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
    tick_size: float
    lot_size: float
    depth: int
    exchange: str = "kraken"
    symbol: str = "BTC/EUR"

    def __init__(self, kind, side, exch_ts, capture_ts, msg, price, tick, qty, best_bid_tick, best_ask_tick,
                 tick_size, lot_size, depth, exchange="kraken", symbol="BTC/EUR", *,
                 best_bid_qty: Optional[np.ndarray] = None, best_ask_qty: Optional[np.ndarray] = None) -> None:
        """The fields in order; ``best_bid_qty``/``best_ask_qty`` may be given when the caller has
        them already (otherwise they are derived on first use)."""
        for name, value in (("kind", kind), ("side", side), ("exch_ts", exch_ts), ("capture_ts", capture_ts),
                            ("msg", msg), ("price", price), ("tick", tick), ("qty", qty),
                            ("best_bid_tick", best_bid_tick), ("best_ask_tick", best_ask_tick),
                            ("tick_size", tick_size), ("lot_size", lot_size), ("depth", depth),
                            ("exchange", exchange), ("symbol", symbol)):
            object.__setattr__(self, name, value)
        if best_bid_qty is not None and best_ask_qty is not None:
            object.__setattr__(self, "_bq", (best_bid_qty, best_ask_qty))

    @property
    def best_bid_qty(self) -> np.ndarray:
        """Size at the best bid after each row (0 when empty)."""
        return self._best_qty()[0]

    @property
    def best_ask_qty(self) -> np.ndarray:
        """Size at the best ask after each row (0 when empty)."""
        return self._best_qty()[1]

    def _best_qty(self) -> tuple[np.ndarray, np.ndarray]:
        got = self.__dict__.get("_bq")
        if got is None:
            lo, n_ticks = self.tick_range
            _, _, bbq, baq = replay_best(self.kind, self.side, self.tick, self.qty, lo, n_ticks)
            got = (bbq, baq)
            object.__setattr__(self, "_bq", got)  # frozen dataclass: a cache, not a field
        return got

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
        """Rows of one message are contiguous, so messages = runs of equal ``msg`` (no sort)."""
        return int(np.count_nonzero(self.msg[1:] != self.msg[:-1])) + 1 if len(self) else 0

    @property
    def tick_range(self) -> tuple[int, int]:
        """``(lo, n_ticks)`` of the dense book that holds every price in the data (kept from the
        book pass when these rows came from it: recomputing copies every tick)."""
        got = self.__dict__.get("_tick_range")
        if got is None:
            got = _tick_range(self.kind, self.tick)
            object.__setattr__(self, "_tick_range", got)
        return got

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
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")  # per process: parallel writers never share it
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
        return MarketArrays(**kw)  # best sizes are re-derived: the window starts from an empty book


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


# ------------------------------------------------------------------ the dense book (numba)
#
# One layout serves both sides: ``book[0]`` holds bids at index ``tick - lo``, ``book[1]`` holds
# asks mirrored (index ``n_ticks - 1 - (tick - lo)``), so on both sides the best level is the
# highest occupied index and the worst the lowest. ``st`` holds per side ``(count, best, worst)``
# (-1 = empty). One code path instead of mirrored bid/ask branches halves what numba compiles.
#
# Speed: the kernels take every array as an argument and never choose one array out of two inside
# the loop (``px = b_px if bid else a_px`` costs reference-count updates every time): an earlier
# version that did ran at 100-800 ns per row, this one at ~30 ns of compute per row (writing the
# fresh output pages the first time costs about as much again).

_kernel = njit(cache=True, nogil=True, error_model="numpy")
# the book update, shared by both kernels (a plain call: inlining it at the IR level compiled slower)
_helper = njit(cache=True, nogil=True, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)


@_helper
def _book_set(book, st, k, idx, q):
    """Set level ``idx`` of side ``k`` to ``q`` (<= 0 deletes); keep count, best and worst."""
    c = 3 * k
    prev = book[k, idx]
    new = q if q > 0.0 else 0.0
    book[k, idx] = new
    if prev <= 0.0 and new > 0.0:
        st[c] += 1
        if st[c + 1] < 0 or idx > st[c + 1]:
            st[c + 1] = idx
        if st[c + 2] < 0 or idx < st[c + 2]:
            st[c + 2] = idx
    elif prev > 0.0 and new <= 0.0:
        st[c] -= 1
        if st[c] == 0:
            st[c + 1] = -1
            st[c + 2] = -1
        else:
            if idx == st[c + 1]:  # the next best: highest occupied index below
                u = idx - 1
                while book[k, u] <= 0.0:
                    u -= 1
                st[c + 1] = u
            if idx == st[c + 2]:  # the next worst: lowest occupied index above
                u = idx + 1
                while book[k, u] <= 0.0:
                    u += 1
                st[c + 2] = u


@_helper
def _book_clear(book, st, k):
    c = 3 * k
    if st[c] > 0:
        for u in range(st[c + 2], st[c + 1] + 1):
            book[k, u] = 0.0
    st[c] = 0
    st[c + 1] = -1
    st[c + 2] = -1


@_kernel
def _assemble_kernel(b_perm, b_ts, b_cap, b_seq, b_snap, b_off, b_px, b_q, a_off, a_px, a_q,
                     t_perm, t_ts, t_cap, t_seq, t_side, t_px, t_q,
                     tick_size, lo, n_ticks, depth, book, mark, st, d_kind, d_side, d_idx, d_px, d_q, d_x,
                     o_kind, o_side, o_ts, o_cap, o_msg, o_px, o_tick, o_q, o_bb, o_ba):
    """Merge the book and trade streams in time order and write every row (see module docstring).

    ``b_perm``/``t_perm``: message order within each stream (empty = already in order); ties in time
    go by ``b_seq``/``t_seq``, every message's rank in wire order. ``book``
    (2 x n_ticks zeros), ``mark`` (2 x n_ticks of -1), ``st`` (count/best/worst per side) and the
    ``d_*`` arrays (one message's rows: at least its levels + 2) are scratch; ``o_*`` receive the
    rows. Returns the number of rows written."""
    n_b = b_ts.shape[0]
    n_t = t_ts.shape[0]
    ib = 0
    it = 0
    r = 0
    while ib < n_b or it < n_t:
        m = -1
        j = -1
        if ib < n_b:
            m = b_perm[ib] if b_perm.shape[0] > 0 else ib
        if it < n_t:
            j = t_perm[it] if t_perm.shape[0] > 0 else it
        nd = 0  # this message's rows, in order: d_kind, d_side (0 bid / 1 ask), d_idx, d_px, d_q
        if j >= 0 and (m < 0 or t_ts[j] < b_ts[m] or (t_ts[j] == b_ts[m] and t_seq[j] < b_seq[m])):
            it += 1
            ts = t_ts[j]
            cap = t_cap[j]
            msg = n_b + j
            d_kind[0] = TRADE
            d_side[0] = 0 if t_side[j] > 0 else 1
            d_idx[0] = np.int64(np.rint(t_px[j] / tick_size)) - lo
            d_px[0] = t_px[j]
            d_q[0] = t_q[j]
            nd = 1
        else:
            ib += 1
            ts = b_ts[m]
            cap = b_cap[m]
            msg = m
            if b_snap[m]:
                for k in range(2):
                    d_kind[nd] = CLEAR
                    d_side[nd] = k
                    d_idx[nd] = -lo  # tick 0, as before
                    d_px[nd] = 0.0
                    d_q[nd] = 0.0
                    nd += 1
            # the last change of each level in this message wins: mark each level's last row (by
            # its position in the flat arrays), then take deletes, then sets, in wire order
            x0, x1, y0, y1 = b_off[m], b_off[m + 1], a_off[m], a_off[m + 1]
            nb = x1 - x0
            for x in range(x0, x1):
                t = np.int64(np.rint(b_px[x] / tick_size)) - lo
                d_x[x - x0] = t
                mark[0, t] = x
            for x in range(y0, y1):
                t = np.int64(np.rint(a_px[x] / tick_size)) - lo
                d_x[nb + x - y0] = t
                mark[1, n_ticks - 1 - t] = x
            for phase in range(2):
                for x in range(x0, x1):
                    t = d_x[x - x0]
                    if (b_q[x] > 0.0) == (phase == 1) and mark[0, t] == x:
                        d_kind[nd] = DEPTH
                        d_side[nd] = 0
                        d_idx[nd] = t
                        d_px[nd] = b_px[x]
                        d_q[nd] = b_q[x]
                        nd += 1
                for x in range(y0, y1):
                    t = d_x[nb + x - y0]
                    if (a_q[x] > 0.0) == (phase == 1) and mark[1, n_ticks - 1 - t] == x:
                        d_kind[nd] = DEPTH
                        d_side[nd] = 1
                        d_idx[nd] = t
                        d_px[nd] = a_px[x]
                        d_q[nd] = a_q[x]
                        nd += 1
            for x in range(x0, x1):
                mark[0, d_x[x - x0]] = -1
            for x in range(y0, y1):
                mark[1, n_ticks - 1 - d_x[nb + x - y0]] = -1
        e = 0
        turn = 0
        while True:
            if e < nd:
                kd = d_kind[e]
                k = d_side[e]
                t = d_idx[e]
                p = d_px[e]
                q = d_q[e]
                e += 1
            elif depth > 0 and (st[0] > depth or st[3] > depth):
                # Kraken's client truncates to the subscribed depth: delete the worst levels
                # explicitly, bid and ask in turn while both sides are too deep
                k = turn
                turn = 1 - turn
                if st[3 * k] <= depth:
                    continue
                kd = DEPTH
                w = st[3 * k + 2]
                t = w if k == 0 else n_ticks - 1 - w
                p = (lo + t) * tick_size
                q = 0.0
            else:
                break
            if kd == DEPTH:
                _book_set(book, st, k, t if k == 0 else n_ticks - 1 - t, q)
            elif kd == CLEAR:
                _book_clear(book, st, k)
            o_kind[r] = kd
            o_side[r] = 1 - 2 * k
            o_ts[r] = ts
            o_cap[r] = cap
            o_msg[r] = msg
            o_px[r] = p
            o_tick[r] = lo + t
            o_q[r] = q
            o_bb[r] = lo + st[1] if st[1] >= 0 else NO_BID
            o_ba[r] = lo + (n_ticks - 1 - st[4]) if st[4] >= 0 else NO_ASK
            r += 1
    return r


@_kernel
def _replay_kernel(kind, side, tick, qty, lo, n_ticks, book, st, bb, ba, bbq, baq):
    """Best prices after every row of rows that are already final (no truncation, no reordering)."""
    for i in range(kind.shape[0]):
        k = 0 if side[i] > 0 else 1
        if kind[i] == DEPTH:
            t = tick[i] - lo
            _book_set(book, st, k, t if k == 0 else n_ticks - 1 - t, qty[i])
        elif kind[i] == CLEAR:
            _book_clear(book, st, k)
        bi = st[1]
        ai = st[4]
        bb[i] = lo + bi if bi >= 0 else NO_BID
        bbq[i] = book[0, bi] if bi >= 0 else 0.0
        ba[i] = lo + (n_ticks - 1 - ai) if ai >= 0 else NO_ASK
        baq[i] = book[1, ai] if ai >= 0 else 0.0


def book_pass(kind, side, tick, qty, msg, depth, lo, n_ticks):
    """The earlier row-level interface, for rows that are final already (``depth`` 0): best prices
    after every row, and no truncations -- ``(bb, ba, bbq, baq, after, side, tick, 0)``. Rows are
    built (and truncated) by :func:`assemble`; this re-derives the book of rows rewritten since."""
    if depth:
        raise ValueError("book_pass only re-derives the book of final rows (depth 0); build rows with assemble()")
    bb, ba, bbq, baq = replay_best(kind, side, tick, qty, lo, n_ticks)
    none = np.zeros(0, np.int64)
    return bb, ba, bbq, baq, none, np.zeros(0, np.int8), none, 0


def replay_best(kind, side, tick, qty, lo: int, n_ticks: int):
    """``(best_bid_tick, best_ask_tick, best_bid_qty, best_ask_qty)`` after every row of final rows
    (used when prices are rewritten, e.g. a volatility shock, and the book must be re-derived)."""
    n = kind.shape[0]
    bb, ba = np.empty(n, np.int64), np.empty(n, np.int64)
    bbq, baq = np.empty(n), np.empty(n)
    _replay_kernel(kind, side, tick, qty, np.int64(lo), np.int64(n_ticks), np.zeros((2, n_ticks)),
                   np.array([0, -1, -1, 0, -1, -1], np.int64), bb, ba, bbq, baq)
    return bb, ba, bbq, baq


# ------------------------------------------------------------------ message streams -> rows


@dataclass
class BookStream:
    """Book messages in source order: Arrow's list layout (offsets into flat level arrays)."""

    ts: np.ndarray  # int64 exchange time, -1 unknown
    cap: np.ndarray  # int64 capture time (0 unknown)
    snap: np.ndarray  # bool: a snapshot (clears both sides first)
    bid_off: np.ndarray  # int64, len n + 1
    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_off: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray

    levels_max: Optional[int] = None  # most levels in one message (bids + asks), if the source knows
    seq: Optional[np.ndarray] = None  # rank of each message in wire order across both streams

    @classmethod
    def empty(cls) -> "BookStream":
        z, f = np.zeros(0, np.int64), np.zeros(0)
        return cls(z, z, np.zeros(0, bool), np.zeros(1, np.int64), f, f, np.zeros(1, np.int64), f, f)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def max_levels(self) -> int:
        if self.levels_max is None:
            n = len(self)
            self.levels_max = int(((self.bid_off[1:] - self.bid_off[:-1])
                                   + (self.ask_off[1:] - self.ask_off[:-1])).max()) if n else 0
        return self.levels_max


@dataclass
class TradeStream:
    ts: np.ndarray  # int64 exchange time, -1 unknown
    cap: np.ndarray
    side: np.ndarray  # int8 taker side
    px: np.ndarray
    qty: np.ndarray
    seq: Optional[np.ndarray] = None  # rank of each message in wire order across both streams

    @classmethod
    def empty(cls) -> "TradeStream":
        z, f = np.zeros(0, np.int64), np.zeros(0)
        return cls(z, z, np.zeros(0, np.int8), f, f)

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def _ro(a, dtype) -> np.ndarray:
    """Contiguous, read-only, of ``dtype``: every source hands the kernel the same array types, so
    it compiles once (Arrow's zero-copy views are read-only; numba types those separately)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _fill_unknown_ts(ts: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """In wire order: a message without an exchange time gets ``min(capture, next known exchange
    time)`` (its capture time if nothing known follows)."""
    unknown = ts == _UNKNOWN_TS
    if not unknown.any():
        return ts
    big = np.iinfo(np.int64).max
    next_known = np.minimum.accumulate(np.where(unknown, big, ts)[::-1])[::-1]
    fill = np.where(cap > 0, np.minimum(cap, next_known), next_known)
    fill = np.where(fill == big, cap, fill)
    return np.where(unknown, fill, ts)


def _stable_order(*keys: np.ndarray) -> np.ndarray:
    """Stable order by ``keys`` (last is primary); empty when the arrays are already in order.
    Checked with boolean temporaries only: the common case, data in order, allocates nothing big."""
    n = keys[0].shape[0]
    if n < 2:
        return np.zeros(0, np.int64)
    ok = np.ones(n - 1, bool)
    tie = np.ones(n - 1, bool)
    for k in reversed(keys):
        a, b = k[:-1], k[1:]
        ok &= ~(tie & (b < a))
        tie &= b == a
    if ok.all():
        return np.zeros(0, np.int64)
    return np.lexsort(keys).astype(np.int64)


def _gather(a: np.ndarray, order: np.ndarray) -> np.ndarray:
    return a[order] if order.shape[0] else a


def _scatter(a: np.ndarray, order: np.ndarray) -> np.ndarray:
    if not order.shape[0]:
        return a
    out = np.empty_like(a)
    out[order] = a
    return out


def _next_known(ts_w: np.ndarray, seq_w: np.ndarray, after: int) -> tuple[int, Optional[int]]:
    """(rank, time) of the first message of a wire-ordered stream after rank ``after`` that has an
    exchange time; (max, None) if there is none."""
    p = int(np.searchsorted(seq_w, after, side="right"))
    while p < ts_w.shape[0]:
        chunk = ts_w[p:p + 4096]
        hit = np.flatnonzero(chunk != _UNKNOWN_TS)
        if hit.size:
            k = p + int(hit[0])
            return int(seq_w[k]), int(ts_w[k])
        p += chunk.shape[0]
    return np.iinfo(np.int64).max, None


def _wire_times(book: BookStream, trades: TradeStream):
    """Exchange times that keep book messages in wire order, and every message's wire rank.

    Books apply in the order received, never by timestamp (kraken-protocol.md 2). Wire order is the
    sources' order when they give it (``seq``: events in memory), else capture order with trades
    first at equal capture time (a run directory). In wire order a message without an exchange
    time (a Kraken v2 snapshot) takes ``min(capture, next known exchange time)``, and a book message
    whose stamp went backwards takes the latest book stamp before it, so the merge by time can
    never move a book message ahead of an earlier one (or a snapshot's clears behind the updates
    after it). Trades keep their stamps.

    Returns (book order, book times, book ranks, trade order, trade times, trade ranks): the times
    and ranks in each stream's own order, the orders as in :func:`_stable_order`.
    """
    b_ts, b_cap = np.asarray(book.ts, np.int64), np.asarray(book.cap, np.int64)
    t_ts, t_cap = np.asarray(trades.ts, np.int64), np.asarray(trades.cap, np.int64)
    nb, nt = b_ts.shape[0], t_ts.shape[0]
    if book.seq is not None and trades.seq is not None:
        b_seq, t_seq = np.asarray(book.seq, np.int64), np.asarray(trades.seq, np.int64)
        b_wire, t_wire = _stable_order(b_seq), _stable_order(t_seq)
    else:  # capture order; trades first at equal capture time (they caused the book change)
        b_wire, t_wire = _stable_order(b_cap), _stable_order(t_cap)
        bc, tc = _gather(b_cap, b_wire), _gather(t_cap, t_wire)
        b_seq = _scatter(np.arange(nb, dtype=np.int64) + np.searchsorted(tc, bc, side="right"), b_wire)
        t_seq = _scatter(np.arange(nt, dtype=np.int64) + np.searchsorted(bc, tc, side="left"), t_wire)
    ub, ut = np.flatnonzero(b_ts == _UNKNOWN_TS), np.flatnonzero(t_ts == _UNKNOWN_TS)
    if 0 < ub.size + ut.size <= 64:  # a few snapshots: no day-sized temporaries
        bw_ts, bw_seq = _gather(b_ts, b_wire), _gather(b_seq, b_wire)
        tw_ts, tw_seq = _gather(t_ts, t_wire), _gather(t_seq, t_wire)
        b_ts, t_ts = b_ts.copy(), t_ts.copy()
        for ts_, cap_, seq_, idx in ((b_ts, b_cap, b_seq, ub), (t_ts, t_cap, t_seq, ut)):
            for i in idx.tolist():
                nxt = min(_next_known(bw_ts, bw_seq, int(seq_[i])), _next_known(tw_ts, tw_seq, int(seq_[i])))
                c = int(cap_[i])
                if nxt[1] is None:
                    ts_[i] = c
                else:
                    ts_[i] = min(c, nxt[1]) if c > 0 else nxt[1]
    elif ub.size + ut.size:
        # one merged wire-order sequence (ranks are 0..n-1), filled, split back
        seq = np.concatenate([b_seq, t_seq])
        rank = np.empty_like(seq)
        rank[np.argsort(seq, kind="stable")] = np.arange(seq.shape[0])
        ts = np.empty(seq.shape[0], np.int64)
        cap = np.empty(seq.shape[0], np.int64)
        ts[rank] = np.concatenate([b_ts, t_ts])
        cap[rank] = np.concatenate([b_cap, t_cap])
        ts = _fill_unknown_ts(ts, cap)
        b_ts, t_ts = ts[rank[:nb]], ts[rank[nb:]]
    if nb:  # book stamps never go backwards in wire order
        b_ts = _scatter(np.maximum.accumulate(_gather(b_ts, b_wire)), b_wire)
    t_order = _stable_order(t_seq, t_ts)
    return b_wire, b_ts, b_seq, t_order, t_ts, t_seq


def _price_range(*arrays: np.ndarray) -> tuple[float, float]:
    lo, hi = np.inf, -np.inf
    for a in arrays:
        if a.shape[0]:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    return lo, hi


def assemble(book: BookStream, trades: TradeStream, *, tick_size: float, lot_size: float, depth: int,
             exchange: str = "kraken", symbol: str = "BTC/EUR") -> MarketArrays:
    """Rows of a book stream and a trade stream: time order, truncation to ``depth``, best prices."""
    b_order, b_ts, b_seq, t_order, t_ts, t_seq = _wire_times(book, trades)
    b_ts, b_seq, b_cap = _ro(b_ts, np.int64), _ro(b_seq, np.int64), _ro(book.cap, np.int64)
    t_ts, t_seq, t_cap = _ro(t_ts, np.int64), _ro(t_seq, np.int64), _ro(trades.cap, np.int64)
    bpx, bq = _ro(book.bid_px, np.float64), _ro(book.bid_qty, np.float64)
    apx, aq = _ro(book.ask_px, np.float64), _ro(book.ask_qty, np.float64)
    tpx, tq = _ro(trades.px, np.float64), _ro(trades.qty, np.float64)
    boff, aoff = _ro(book.bid_off, np.int64), _ro(book.ask_off, np.int64)
    # levels outside a message's offsets (a sliced Arrow array) do not count for the range
    pmin, pmax = _price_range(bpx[boff[0]:boff[-1]], apx[aoff[0]:aoff[-1]], tpx)
    if pmin > pmax:
        lo, n_ticks = 0, 1
    else:
        lo = int(np.rint(pmin / tick_size))
        n_ticks = int(np.rint(pmax / tick_size)) - lo + 1
    if n_ticks > MAX_TICK_RANGE:
        raise ValueError(
            f"prices span {n_ticks} ticks of {tick_size}: too wide for the dense book; "
            "check the instrument's tick_size or drop outlier levels")
    n_levels = int(boff[-1] - boff[0] + aoff[-1] - aoff[0])
    # rows <= levels + 2 per snapshot + trades + truncations, and every truncated level was set by
    # a level row first; the tail of this bound is never written, so it never becomes resident
    cap_rows = 2 * n_levels + 2 * int(np.count_nonzero(book.snap)) + len(trades) + 1
    names = ("kind", "side", "exch_ts", "capture_ts", "msg", "price", "tick", "qty", "best_bid_tick",
             "best_ask_tick")
    dtypes = (np.uint8, np.int8, np.int64, np.int64, np.int64, np.float64, np.int64, np.float64, np.int64, np.int64)
    out = [np.empty(cap_rows, dt) for dt in dtypes]
    m_rows = book.max_levels() + 2  # one message's rows at most (its levels + 2 clears)
    n = _assemble_kernel(b_order, b_ts, b_cap, b_seq, _ro(book.snap, np.bool_), boff, bpx, bq, aoff, apx, aq,
                         t_order, t_ts, t_cap, t_seq, _ro(trades.side, np.int8), tpx, tq,
                         float(tick_size), np.int64(lo), np.int64(n_ticks), np.int64(depth),
                         np.zeros((2, n_ticks)), np.full((2, n_ticks), -1, np.int64),
                         np.array([0, -1, -1, 0, -1, -1], np.int64), np.empty(m_rows, np.int64),
                         np.empty(m_rows, np.int64), np.empty(m_rows, np.int64), np.empty(m_rows),
                         np.empty(m_rows), np.empty(m_rows, np.int64), *out)
    cols = [a[:n] for a in out]  # views: the unwritten tail of the bound was never made resident
    m = MarketArrays(**dict(zip(names, cols)), tick_size=float(tick_size), lot_size=float(lot_size),
                     depth=int(depth), exchange=exchange, symbol=symbol)
    if pmin <= pmax:  # the rows hold exactly the ticks of these prices (CLEAR rows aside)
        object.__setattr__(m, "_tick_range", (lo, n_ticks))
    return m


# ------------------------------------------------------------------ sources


class _StreamBuilder:
    """Collects book messages and trades from Python events (the simulator and recordings)."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.cap: list[int] = []
        self.snap: list[bool] = []
        self.n_bid: list[int] = []
        self.n_ask: list[int] = []
        self.bid: list[tuple[float, float]] = []
        self.ask: list[tuple[float, float]] = []
        self.seq: list[int] = []

    def book(self, ts: Optional[int], cap: int, bids, asks, snapshot: bool, seq: int) -> None:
        self.seq.append(seq)
        self.ts.append(_UNKNOWN_TS if ts is None else ts)
        self.cap.append(cap)
        self.snap.append(snapshot)
        self.n_bid.append(len(bids))
        self.n_ask.append(len(asks))
        self.bid.extend(bids)
        self.ask.extend(asks)

    def stream(self) -> BookStream:
        def off(counts):
            o = np.zeros(len(counts) + 1, np.int64)
            np.cumsum(counts, out=o[1:])
            return o

        bid = np.array(self.bid, np.float64).reshape(-1, 2)
        ask = np.array(self.ask, np.float64).reshape(-1, 2)
        return BookStream(np.array(self.ts, np.int64), np.array(self.cap, np.int64), np.array(self.snap, bool),
                          off(self.n_bid), bid[:, 0], bid[:, 1], off(self.n_ask), ask[:, 0], ask[:, 1],
                          seq=np.array(self.seq, np.int64))


def from_events(
    events: Iterable[object], *, tick_size: float, lot_size: float = 1e-8, depth: Optional[int] = None,
    tops: str = "auto",
) -> MarketArrays:
    """Rows from canonical events, in the order given (the wire order: book messages apply in
    it; trades interleave by exchange time).

    ``tops``: "auto" uses TopOfBook events only if the source has no L2 book (a BBO-only capture),
    "never" ignores them, "only" builds a one-level book from them.
    """
    from mm_core.events import BookSnapshot, BookUpdate, TopOfBook, Trade

    books = _StreamBuilder()
    top_books = _StreamBuilder()
    t_ts: list[int] = []
    t_cap: list[int] = []
    t_side: list[int] = []
    t_px: list[float] = []
    t_q: list[float] = []
    t_seq: list[int] = []
    seen_depth = 0
    has_levels = False
    exchange, symbol = "kraken", "BTC/EUR"
    for k, ev in enumerate(events):
        t = type(ev)
        if t is BookUpdate or t is BookSnapshot:
            if tops != "only":
                books.book(ev.ts_exchange, ev.ts_capture, ev.bids, ev.asks, t is BookSnapshot, k)
                has_levels = has_levels or bool(ev.bids) or bool(ev.asks)
            seen_depth = seen_depth or ev.depth
            exchange, symbol = ev.exchange, ev.symbol
        elif t is Trade:
            t_ts.append(_UNKNOWN_TS if ev.ts_exchange is None else ev.ts_exchange)
            t_cap.append(ev.ts_capture)
            t_side.append(1 if ev.side == "buy" else -1)
            t_px.append(ev.price)
            t_q.append(ev.qty)
            t_seq.append(k)
        elif t is TopOfBook and tops != "never":
            top_books.book(ev.ts_exchange, ev.ts_capture, [(ev.bid, ev.bid_qty)], [(ev.ask, ev.ask_qty)], True, k)
            exchange, symbol = ev.exchange, ev.symbol
    book = books.stream()
    if tops == "only" or (tops == "auto" and not has_levels):
        book = top_books.stream()
        seen_depth = 1
    trades = TradeStream(np.array(t_ts, np.int64), np.array(t_cap, np.int64), np.array(t_side, np.int8),
                         np.array(t_px, np.float64), np.array(t_q, np.float64), seq=np.array(t_seq, np.int64))
    d = depth if depth is not None else seen_depth
    return assemble(book, trades, tick_size=tick_size, lot_size=lot_size, depth=d, exchange=exchange, symbol=symbol)


_BOOK_COLUMNS = ["ts_exchange", "ts_capture", "kind", "depth", "bids", "asks"]
_TRADE_COLUMNS = ["ts_exchange", "ts_capture", "price", "qty", "side"]
_TOP_COLUMNS = ["ts_exchange", "ts_capture", "bid", "bid_qty", "ask", "ask_qty"]


def _parts(root: Path, table: str) -> list[Path]:
    return sorted(root.rglob(f"{table}-*.parquet"))


def _names(files: list[Path]) -> tuple[str, str]:
    """Exchange and symbol of a table's first row, read from its first part alone."""
    import pyarrow.parquet as pq

    head = pq.ParquetFile(files[0]).read_row_group(0, columns=["exchange", "symbol"]).slice(0, 1)
    return (str(head.column("exchange")[0]), str(head.column("symbol")[0])) if head.num_rows else ("kraken", "BTC/EUR")


def _read_part(f: Path, columns: list[str], strings: tuple[str, ...] = ()):
    """One part, only ``columns``; the string columns in ``strings`` come dictionary-encoded (they
    are compared by dictionary index). ``ParquetFile.read``, not ``pq.read_table``: the dataset
    layer imports pandas (~0.2 s, ~40 MB) for nothing here. One thread: parts are small (an
    hour), threads did not make a day faster and each kept its own freed memory (~30 MB)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(f, read_dictionary=list(strings)).read(columns=columns, use_threads=False)


# Arrow -> numpy straight from the buffers. Deliberately neither pyarrow.compute (its first call
# initialises the compute kernels: ~45 MB resident, ~0.1 s) nor ``to_numpy`` (it imports pandas:
# ~0.3 s, ~40 MB), for one fill_null and two string comparisons.

def _chunks(col) -> list:
    return list(col.chunks) if hasattr(col, "chunks") else [col]


def _joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _values(a, dtype) -> np.ndarray:
    """The value buffer of a primitive Arrow array (no copy; nulls not applied)."""
    dt = np.dtype(dtype)
    if not len(a):
        return np.zeros(0, dt)
    return np.frombuffer(a.buffers()[1], dtype=dt, count=len(a), offset=a.offset * dt.itemsize)


def _int64(col, null: int = _UNKNOWN_TS) -> np.ndarray:
    """An int64 column (nullable) as numpy, nulls -> ``null`` (never via float: that loses ns)."""
    import pyarrow as pa

    out = []
    for a in _chunks(col):
        if a.type != pa.int64():
            a = a.cast(pa.int64())
        v = _values(a, np.int64)
        if a.null_count:
            bits = np.unpackbits(np.frombuffer(a.buffers()[0], np.uint8), bitorder="little")
            v = np.where(bits[a.offset:a.offset + len(a)].astype(bool), v, null)
        out.append(v)
    return _joined(out, np.int64)


def _float64(col) -> np.ndarray:
    """A non-null float column as numpy (zero-copy per chunk)."""
    import pyarrow as pa

    return _joined([_values(a if a.type == pa.float64() else a.cast(pa.float64()), np.float64)
                    for a in _chunks(col)], np.float64)


def _equals(col, text: str) -> np.ndarray:
    """A string column (read dictionary-encoded) == ``text``, as a bool array."""
    import pyarrow as pa

    out = []
    for a in _chunks(col):
        if not pa.types.is_dictionary(a.type):  # a reader that ignored read_dictionary
            out.append(np.array([x == text for x in a.to_pylist()], bool))
            continue
        words = a.dictionary.to_pylist()
        idx = _values(a.indices, f"int{a.indices.type.bit_width}")
        out.append(idx == words.index(text) if text in words else np.zeros(len(a), bool))
    return _joined(out, bool)


def _release_arrow_memory() -> None:
    """Hand the memory Arrow's allocator kept from the decoded parts back to the system (it keeps
    freed pages for reuse; here nothing will reuse them)."""
    import pyarrow as pa

    try:
        pa.default_memory_pool().release_unused()
    except AttributeError:  # pragma: no cover - older pyarrow
        pass


def _read(root: Path, table: str, columns: list[str], strings: tuple[str, ...] = ()):
    """A small table (trades, tops): every part, only ``columns``, in file order; plus the first
    row's exchange and symbol."""
    return _read_files(_parts(root, table), table, columns, strings)


def _read_files(files: list[Path], table: str, columns: list[str], strings: tuple[str, ...] = ()):
    """:func:`_read` over the given part files (in the order given)."""
    import pyarrow as pa

    from mm_core.events import table_schemas

    if not files:
        full = table_schemas()[table]
        return pa.Table.from_pylist([], schema=pa.schema([full.field(c) for c in columns])), ("kraken", "BTC/EUR")
    parts = [_read_part(f, columns, strings) for f in files]
    return pa.concat_tables(parts, promote_options="permissive"), _names(files)


def _read_book(files: list[Path]) -> tuple[BookStream, int]:
    """The book table as a :class:`BookStream`, part by part into arrays sized from the Parquet
    metadata: one part's Arrow table is alive at a time (reading the whole table first held ~2x
    its size, ~300 MB a day, until the rows were built). Returns the stream and the max depth."""
    import pyarrow.parquet as pq

    n_msg = n_bid = n_ask = 0
    for f in files:
        md = pq.ParquetFile(f).metadata
        n_msg += md.num_rows
        for g in range(md.num_row_groups):
            for c in range(md.num_columns):
                col = md.row_group(g).column(c)
                if col.path_in_schema == "bids.list.element.price":
                    n_bid += col.num_values  # an upper bound: an empty list counts one
                elif col.path_in_schema == "asks.list.element.price":
                    n_ask += col.num_values
    ts, cap, snap = np.empty(n_msg, np.int64), np.empty(n_msg, np.int64), np.empty(n_msg, bool)
    off = {"bids": np.empty(n_msg + 1, np.int64), "asks": np.empty(n_msg + 1, np.int64)}
    px = {"bids": np.empty(n_bid), "asks": np.empty(n_ask)}
    qty = {"bids": np.empty(n_bid), "asks": np.empty(n_ask)}
    fill = {"bids": 0, "asks": 0}
    off["bids"][0] = off["asks"][0] = 0
    i = 0
    depth = levels_max = 0
    for f in files:
        t = _read_part(f, _BOOK_COLUMNS, ("kind",))
        n = t.num_rows
        if not n:
            continue
        ts[i:i + n] = _int64(t.column("ts_exchange"))
        cap[i:i + n] = _int64(t.column("ts_capture"), 0)
        snap[i:i + n] = _equals(t.column("kind"), "book_snapshot")
        depth = max(depth, int(_int64(t.column("depth"), 0).max()))
        for name in ("bids", "asks"):
            r = i
            for lst in _chunks(t.column(name)):
                m = len(lst)
                o = np.frombuffer(lst.buffers()[1], dtype=np.int32, count=m + 1, offset=lst.offset * 4)
                j, k = fill[name], int(o[-1] - o[0])
                values = lst.values
                px[name][j:j + k] = _float64(values.field("price"))[o[0]:o[-1]]
                qty[name][j:j + k] = _float64(values.field("qty"))[o[0]:o[-1]]
                off[name][r + 1:r + m + 1] = o[1:].astype(np.int64) - o[0] + j
                fill[name] = j + k
                r += m
        b, a = off["bids"], off["asks"]
        levels_max = max(levels_max, int(((b[i + 1:i + n + 1] - b[i:i + n]) + (a[i + 1:i + n + 1] - a[i:i + n])).max()))
        i += n
        del t
    jb, ja = fill["bids"], fill["asks"]
    _release_arrow_memory()
    return BookStream(ts[:i], cap[:i], snap[:i], off["bids"][:i + 1], px["bids"][:jb], qty["bids"][:jb],
                      off["asks"][:i + 1], px["asks"][:ja], qty["asks"][:ja], levels_max), depth


def from_run_dir(path: Path, *, tick_size: float, lot_size: float = 1e-8, depth: Optional[int] = None,
                 tops: str = "auto") -> MarketArrays:
    """Rows from a run directory's Parquet tables (``RUN/parquet`` or a Parquet folder itself).

    Only the needed columns are read, part by part, and the nested level lists go to the kernel
    in Arrow's own layout (offsets + flat values): no per-row Python, no flattening. Trades sort
    before book messages with the same exchange and capture time (the trade caused the book
    change).
    """
    root = Path(path)
    if (root / "parquet").is_dir():
        root = root / "parquet"
    if not root.is_dir():
        raise FileNotFoundError(f"{path}: no Parquet folder (expected RUN_DIR/parquet or a folder of parts)")
    files = {t: _parts(root, t) for t in ("book", "trade", "top_of_book")}
    return from_files(files, tick_size=tick_size, lot_size=lot_size, depth=depth, tops=tops, where=str(path))


def from_files(files: dict[str, list[Path]], *, tick_size: Optional[float], lot_size: float = 1e-8,
               depth: Optional[int] = None, tops: str = "auto", seed: Optional["BookSeed"] = None,
               where: str = "") -> MarketArrays:
    """Rows from explicit part files per table (``book``, ``trade``, ``top_of_book``), e.g. one
    date partition of the store (:mod:`mm_core.backtest.days`).

    ``seed``: the book as it stood when these files begin (a day of a continuous capture opens
    mid-stream, without a snapshot). It is applied as a snapshot message ahead of every other
    message, so the rows' book from there on is the one a pass over the whole capture would
    have: levels are truncated to the subscribed depth after every message, so that book *is*
    the seed's levels. Ignored when the book files themselves open with a snapshot."""
    exchange, symbol = "kraken", "BTC/EUR"
    book_stream = BookStream.empty()
    d = depth if depth is not None else 1
    book_files = [Path(f) for f in files.get("book", ())] if tops != "only" else []
    max_depth = 0
    if book_files:
        book_stream, max_depth = _read_book(book_files)
    if len(book_stream):
        exchange, symbol = _names(book_files)
        d = depth if depth is not None else max_depth
    elif tops == "only" or tops == "auto":
        top_files = [Path(f) for f in files.get("top_of_book", ())]
        top, names = _read_files(top_files, "top_of_book", _TOP_COLUMNS)
        if top.num_rows:
            exchange, symbol = names
            n = top.num_rows
            one = np.arange(n + 1, dtype=np.int64)
            book_stream = BookStream(_int64(top.column("ts_exchange")), _int64(top.column("ts_capture"), 0),
                                     np.ones(n, bool), one, _float64(top.column("bid")),
                                     _float64(top.column("bid_qty")), one, _float64(top.column("ask")),
                                     _float64(top.column("ask_qty")))
            d = 1
    trade, _ = _read_files([Path(f) for f in files.get("trade", ())], "trade", _TRADE_COLUMNS, ("side",))
    trades = TradeStream.empty()
    if trade.num_rows:
        side = np.where(_equals(trade.column("side"), "buy"), 1, -1).astype(np.int8)
        trades = TradeStream(_int64(trade.column("ts_exchange")), _int64(trade.column("ts_capture"), 0), side,
                             _float64(trade.column("price")), _float64(trade.column("qty")))
    del trade
    if not len(book_stream) and not len(trades):
        raise ValueError(f"{where or 'these files'}: no book, trade or top_of_book rows found")
    if seed is not None and len(book_stream) and not opens_with_snapshot(book_stream):
        book_stream = seed.ahead_of(book_stream, trades)
    if tick_size is None:  # research: the tick as the data shows it (its smallest price step)
        from mm_core.research.book_frames import infer_tick_size

        tick_size = infer_tick_size(np.concatenate([book_stream.bid_px, book_stream.ask_px, trades.px]))
        if not tick_size > 0:
            raise ValueError(f"{where or 'these files'}: cannot infer the tick size; give it")
    return assemble(book_stream, trades, tick_size=tick_size, lot_size=lot_size, depth=d, exchange=exchange,
                    symbol=symbol)


def opens_with_snapshot(book: BookStream) -> bool:
    """Whether the first book message in wire (capture) order is a snapshot."""
    if not len(book):
        return False
    first = int(np.argmin(book.cap)) if book.seq is None else int(np.argmin(book.seq))
    return bool(book.snap[first])


@dataclass(frozen=True)
class BookSeed:
    """A book's levels at one moment (each side best first), to start later rows from."""

    bid_px: np.ndarray
    bid_qty: np.ndarray
    ask_px: np.ndarray
    ask_qty: np.ndarray

    @classmethod
    def at_end(cls, m: MarketArrays) -> "BookSeed":
        """The book after the last row of ``m``: per side, the levels set since its last clear,
        each at its last size, deletes dropped."""
        sides = []
        for s in (1, -1):
            idx = np.flatnonzero(m.side == s)
            kinds = m.kind[idx]
            cleared = np.flatnonzero(kinds == CLEAR)
            if cleared.size:
                idx, kinds = idx[cleared[-1] + 1:], kinds[cleared[-1] + 1:]
            rows = idx[kinds == DEPTH][::-1]  # latest first
            _, first = np.unique(m.tick[rows], return_index=True)
            last = rows[first]
            last = last[m.qty[last] > 0.0]
            last = last[np.argsort(-s * m.tick[last], kind="stable")]  # best first
            sides.append((m.price[last].astype(np.float64), m.qty[last].astype(np.float64)))
        return cls(sides[0][0], sides[0][1], sides[1][0], sides[1][1])

    def to_json(self) -> dict[str, list[list[float]]]:
        return {"bids": [[float(p), float(q)] for p, q in zip(self.bid_px, self.bid_qty)],
                "asks": [[float(p), float(q)] for p, q in zip(self.ask_px, self.ask_qty)]}

    @classmethod
    def from_json(cls, d: dict[str, list[list[float]]]) -> "BookSeed":
        b = np.array(d.get("bids", []), np.float64).reshape(-1, 2)
        a = np.array(d.get("asks", []), np.float64).reshape(-1, 2)
        return cls(b[:, 0].copy(), b[:, 1].copy(), a[:, 0].copy(), a[:, 1].copy())

    def ahead_of(self, book: BookStream, trades: TradeStream) -> BookStream:
        """``book`` with this seed as a snapshot message before every book and trade message:
        capture time one ns before the earliest one, exchange time the earliest known one."""
        caps = [a[a > 0] for a in (book.cap, trades.cap)]
        caps = [c for c in caps if c.size]
        known = [a[a != _UNKNOWN_TS] for a in (book.ts, trades.ts)]
        known = [k for k in known if k.size]
        cap = min(int(c.min()) for c in caps) - 1 if caps else 0
        ts = min(int(k.min()) for k in known) if known else _UNKNOWN_TS
        nb, na = self.bid_px.size, self.ask_px.size
        seq = None
        if book.seq is not None and trades.seq is not None:  # sources that give wire order
            first = min(int(np.min(x)) for x in (book.seq, trades.seq) if len(x))
            seq = np.concatenate([[first - 1], np.asarray(book.seq, np.int64)])
        return BookStream(np.concatenate([[ts], np.asarray(book.ts, np.int64)]),
                          np.concatenate([[cap], np.asarray(book.cap, np.int64)]),
                          np.concatenate([[True], np.asarray(book.snap, bool)]),
                          np.concatenate([[0], np.asarray(book.bid_off, np.int64) - book.bid_off[0] + nb]),
                          np.concatenate([self.bid_px, book.bid_px[book.bid_off[0]:]]),
                          np.concatenate([self.bid_qty, book.bid_qty[book.bid_off[0]:]]),
                          np.concatenate([[0], np.asarray(book.ask_off, np.int64) - book.ask_off[0] + na]),
                          np.concatenate([self.ask_px, book.ask_px[book.ask_off[0]:]]),
                          np.concatenate([self.ask_qty, book.ask_qty[book.ask_off[0]:]]),
                          levels_max=max(book.max_levels(), nb + na), seq=seq)


def simulator_events(seconds: float, seed: int, *, predictive: bool = False, depth: int = 10,
                     updates_per_second: Optional[float] = None, trades_per_second: Optional[float] = None,
                     profile=None):
    """The offline simulator's canonical events (book + trades; tops are redundant with the book).

    ``profile``: a simulator profile name (``default``, ``busy`` ...), file or MarketParams; the rates,
    when given, override the profile's (the default profile: 10 updates/s, 1 trade/s)."""
    from mm_core.research.sim_data import sim_params
    from mm_core.simexchange.canonical import canonical_events
    from mm_core.simexchange.market import MarketModel

    model = MarketModel(seed=seed, predictive=predictive, params=sim_params(profile),
                        updates_per_second=updates_per_second, trades_per_second=trades_per_second)
    return canonical_events(model, seconds, depth=depth, tops=False)


def from_simulator(seconds: float, seed: int, *, predictive: bool = False, depth: int = 10,
                   updates_per_second: Optional[float] = None, trades_per_second: Optional[float] = None,
                   tick_size: float = 0.1, lot_size: float = 1e-8, profile=None) -> MarketArrays:
    """Rows of ``seconds`` simulated seconds (Python generator: ~40 k messages/s, so cache a day)."""
    evs = simulator_events(seconds, seed, predictive=predictive, depth=depth, profile=profile,
                           updates_per_second=updates_per_second, trades_per_second=trades_per_second)
    return from_events(evs, tick_size=tick_size, lot_size=lot_size, depth=depth, tops="never")


# ------------------------------------------------------------------ cache

_HERE = Path(__file__).resolve().parent
# the code whose output the cache holds: rows from a run directory / from the simulator
PRODUCER_SOURCES = {
    "run_dir": [_HERE / "event_arrays.py", _HERE.parent / "events.py", _HERE.parent / "store" / "parquet_store.py"],
    "simulator": [_HERE / "event_arrays.py", _HERE.parent / "events.py", _HERE.parent / "simexchange" / "market.py",
                  _HERE.parent / "simexchange" / "canonical.py"],
}


def producer_digest(source: str) -> str:
    """Digest of the source files that produce rows of ``source`` (part of every cache key)."""
    h = hashlib.sha256()
    for p in PRODUCER_SOURCES.get(source, PRODUCER_SOURCES["run_dir"]):
        h.update(p.name.encode())
        try:
            h.update(Path(p).read_bytes())
        except OSError:  # a frozen install without sources: the package version stands in
            from mm_core import __version__

            h.update(f"missing:{__version__}".encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$MM_CACHE_DIR`` or ``~/.cache/mm_core``: converted arrays live here, keyed by their source."""
    root = os.environ.get("MM_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "mm_core"


def cached(key: dict[str, object], build: Callable[[], MarketArrays], *, directory: Optional[Path] = None,
           refresh: bool = False) -> tuple[MarketArrays, Path, bool]:
    """Load arrays for ``key`` from the cache or build and store them; returns (arrays, path, hit).

    The file name digests ``key`` plus :func:`producer_digest` of the key's ``source``: rows made
    by other code (an edited book pass, another simulator) are never loaded. ``MM_ROW_CACHE=off``
    builds every time and stores nothing (the benchmark times the conversion that way)."""
    full = {**key, "producer": producer_digest(str(key.get("source", "run_dir")))}
    digest = hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = (directory or cache_dir() / "backtest") / f"market-{digest}.npz"
    if os.environ.get("MM_ROW_CACHE", "").lower() in ("off", "0", "no"):
        return build(), path, False
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
    return {"source": "simulator", "seconds": seconds, "seed": seed, **params}


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
