"""Market rows one message at a time: the backtest's row assembly for a live stream.

Why: the simulator's private side, the paper venue and the paper runner must match orders against
exactly the rows the backtest builds from a recording of the same stream -- same order of level
changes inside a message (deletes before sets, the last change of a level wins), same truncation
to the subscribed depth with explicit delete rows, same best bid/ask after every row. So this
module does not re-implement that logic: it calls the backtest's compiled assembly kernel
(:func:`mm_core.backtest.event_arrays._assemble_kernel`) on one message at a time, keeping the
kernel's dense book between calls. A recording of the same messages assembled in one go gives
the same rows (a test checks it row by row).

Prices live on a dense tick grid ``[lo, lo + n_ticks)`` fixed at the first message (``span``
either side of its mid); a level outside it is dropped and counted (``dropped_levels``) -- the
kernel has no bounds checks, so nothing outside may reach it.

:func:`apply_rows` feeds rows to a :class:`~mm_core.backtest.matching.MatchingState` and returns
the fills they caused: the one matching model of the backtest, on live rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from mm_core.backtest import jit_cache

jit_cache.install()

from mm_core.backtest.event_arrays import (CLEAR, DEPTH, NO_ASK, NO_BID, TRADE, _assemble_kernel,  # noqa: E402
                                           _ro)

_E_I64 = _ro(np.zeros(0, np.int64), np.int64)
_E_F64 = _ro(np.zeros(0), np.float64)
_E_I8 = _ro(np.zeros(0, np.int8), np.int8)
_E_B = _ro(np.zeros(0, bool), np.bool_)
_ZERO_OFF = _ro(np.zeros(1, np.int64), np.int64)


@dataclass(frozen=True)
class Rows:
    """The rows of one message (parallel arrays, the backtest's row layout)."""

    kind: np.ndarray  # uint8 DEPTH / TRADE / CLEAR
    side: np.ndarray  # int8 +1 bid or taker buy, -1 ask or taker sell
    tick: np.ndarray  # int64
    qty: np.ndarray  # float64
    best_bid_tick: np.ndarray  # int64 after the row (NO_BID when empty)
    best_ask_tick: np.ndarray  # int64 after the row (NO_ASK when empty)
    exch_ts: int

    def __len__(self) -> int:
        return int(self.kind.shape[0])


class RowFeed:
    """Rows of a stream of book messages and trades, one message per call (see the module doc).

    ``depth``: the subscribed book depth (the client's truncation); ``span``: half-width of the
    tick grid as a share of the first mid (0.25 = +-25 %)."""

    def __init__(self, tick_size: float, depth: int, *, span: float = 0.25) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.tick_size = float(tick_size)
        self.depth = int(depth)
        self.span = float(span)
        self.lo: Optional[int] = None
        self.n_ticks = 0
        self._book: Optional[np.ndarray] = None
        self._mark: Optional[np.ndarray] = None
        self._st = np.array([0, -1, -1, 0, -1, -1], np.int64)
        self.messages = 0
        self.dropped_levels = 0

    # ------------------------------------------------------------------ grid

    def _grid(self, prices: Sequence[float]) -> None:
        mid = float(np.median(prices)) if len(prices) else 0.0
        if mid <= 0:
            raise ValueError("RowFeed needs a positive price to place its tick grid")
        half = max(1000, int(mid * self.span / self.tick_size))
        centre = int(round(mid / self.tick_size))
        self.lo = max(0, centre - half)
        self.n_ticks = 2 * half + 1
        self._book = np.zeros((2, self.n_ticks))
        self._mark = np.full((2, self.n_ticks), -1, np.int64)

    @property
    def ready(self) -> bool:
        return self.lo is not None

    def tick_range(self) -> tuple[int, int]:
        """``(lo, n_ticks)`` of the grid (for a :class:`MatchingState` over the same ticks)."""
        if self.lo is None:
            raise RuntimeError("no message yet: the grid is placed at the first book message")
        return self.lo, self.n_ticks

    def _inside(self, levels: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        assert self.lo is not None
        lo, hi = self.lo, self.lo + self.n_ticks
        out = []
        for p, q in levels:
            t = int(round(p / self.tick_size))
            if lo <= t < hi:
                out.append((p, q))
            else:
                self.dropped_levels += 1
        return out

    # ------------------------------------------------------------------ messages

    def book(self, ts: int, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]],
             snapshot: bool = False) -> Rows:
        """One book message (levels as sent; qty 0 deletes; a snapshot clears both sides first)."""
        if self.lo is None:
            self._grid([p for p, _ in bids[:1]] + [p for p, _ in asks[:1]] or [p for p, _ in (*bids, *asks)])
        bids, asks = self._inside(bids), self._inside(asks)
        nb, na = len(bids), len(asks)
        bpx = _ro([p for p, _ in bids], np.float64) if nb else _E_F64
        bq = _ro([q for _, q in bids], np.float64) if nb else _E_F64
        apx = _ro([p for p, _ in asks], np.float64) if na else _E_F64
        aq = _ro([q for _, q in asks], np.float64) if na else _E_F64
        b_off = _ro([0, nb], np.int64)
        a_off = _ro([0, na], np.int64)
        one = _ro([ts], np.int64)
        return self._run(one, one, _ro([0], np.int64), _ro([bool(snapshot)], np.bool_), b_off, bpx, bq, a_off, apx,
                         aq, _E_I64, _E_I64, _E_I64, _E_I8, _E_F64, _E_F64, nb + na + 2, ts)

    def trade(self, ts: int, taker_side: int, price: float, qty: float) -> Rows:
        """One public trade (``taker_side`` +1 buy / -1 sell)."""
        if self.lo is None:
            self._grid([price])
        if not self._inside([(price, qty)]):
            return self._run_empty(ts)
        one = _ro([ts], np.int64)
        return self._run(_E_I64, _E_I64, _E_I64, _E_B, _ZERO_OFF, _E_F64, _E_F64, _ZERO_OFF, _E_F64, _E_F64,
                         one, one, _ro([0], np.int64), _ro([1 if taker_side > 0 else -1], np.int8),
                         _ro([price], np.float64), _ro([qty], np.float64), 3, ts)

    def _run_empty(self, ts: int) -> Rows:
        z = np.zeros(0, np.int64)
        return Rows(np.zeros(0, np.uint8), np.zeros(0, np.int8), z, np.zeros(0), z, z, ts)

    def _run(self, b_ts, b_cap, b_seq, b_snap, b_off, bpx, bq, a_off, apx, aq, t_ts, t_cap, t_seq, t_side, tpx, tq,
             m_rows: int, ts: int) -> Rows:
        assert self._book is not None and self._mark is not None and self.lo is not None
        cap = m_rows + 2 * self.depth + 4  # its rows + the truncation deletes it may cause
        out_kind = np.empty(cap, np.uint8)
        out_side = np.empty(cap, np.int8)
        out_ts = np.empty(cap, np.int64)
        out_cap = np.empty(cap, np.int64)
        out_msg = np.empty(cap, np.int64)
        out_px = np.empty(cap)
        out_tick = np.empty(cap, np.int64)
        out_q = np.empty(cap)
        out_bb = np.empty(cap, np.int64)
        out_ba = np.empty(cap, np.int64)
        n = _assemble_kernel(_E_I64, b_ts, b_cap, b_seq, b_snap, b_off, bpx, bq, a_off, apx, aq,
                             _E_I64, t_ts, t_cap, t_seq, t_side, tpx, tq,
                             self.tick_size, np.int64(self.lo), np.int64(self.n_ticks), np.int64(self.depth),
                             self._book, self._mark, self._st, np.empty(m_rows, np.int64), np.empty(m_rows, np.int64),
                             np.empty(m_rows, np.int64), np.empty(m_rows), np.empty(m_rows),
                             np.empty(m_rows, np.int64), out_kind, out_side, out_ts, out_cap, out_msg, out_px,
                             out_tick, out_q, out_bb, out_ba)
        self.messages += 1
        return Rows(out_kind[:n], out_side[:n], out_tick[:n], out_q[:n], out_bb[:n], out_ba[:n], int(ts))

    def best(self) -> tuple[int, int]:
        """Best bid and ask ticks now (NO_BID / NO_ASK when a side is empty)."""
        st = self._st
        lo = self.lo or 0
        bb = lo + int(st[1]) if st[1] >= 0 else NO_BID
        ba = lo + (self.n_ticks - 1 - int(st[4])) if st[4] >= 0 else NO_ASK
        return bb, ba


def apply_rows(ms, rows: Rows) -> int:
    """Feed one message's rows to a :class:`~mm_core.backtest.matching.MatchingState` (exchange time =
    the message's); returns the number of fills they caused (``ms.fills(ms.n_fills - k)``)."""
    n0 = ms.n_fills
    now = rows.exch_ts
    for i in range(len(rows)):
        k = rows.kind[i]
        if k == DEPTH:
            ms.depth(int(rows.side[i]), int(rows.tick[i]), float(rows.qty[i]), now, int(rows.best_bid_tick[i]),
                     int(rows.best_ask_tick[i]))
        elif k == TRADE:
            ms.trade(int(rows.side[i]), int(rows.tick[i]), float(rows.qty[i]), now)
        elif k == CLEAR:
            ms.clear(int(rows.side[i]))
            ms.best_bid, ms.best_ask = np.int64(rows.best_bid_tick[i]), np.int64(rows.best_ask_tick[i])
    return ms.n_fills - n0


__all__ = ["RowFeed", "Rows", "apply_rows", "DEPTH", "TRADE", "CLEAR", "NO_BID", "NO_ASK"]
