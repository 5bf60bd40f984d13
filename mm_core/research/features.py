"""Order-book features in event time and on a fixed clock grid, vectorised over :class:`BookFrames`.

Definitions (``Qb``/``Qa`` = best bid/ask size, ``b``/``a`` = best bid/ask price):

=====================  =====================================================================
``mid``                ``(b + a) / 2``
``spread``             ``a - b`` (price); ``spread_ticks`` = spread / tick size
``imbalance``          L1 imbalance ``(Qb - Qa) / (Qb + Qa)`` in [-1, 1] (Stoikov's
                       ``I = Qb / (Qb + Qa)`` is ``(1 + imbalance) / 2``)
``depth_imbalance``    the same over the summed sizes of the best ``depth_levels`` levels
``wmid``               weighted mid ``(b * Qa + a * Qb) / (Qb + Qa)`` (leans toward the thin side)
``rv_{w}s``            realized volatility over the trailing ``w`` seconds, in basis points:
                       ``1e4 * sqrt(sum of squared log mid changes in (t - w, t])``
``tfi_{w}s``           trade-flow imbalance over the trailing ``w`` s: signed taker volume /
                       total volume in ``(t - w, t]`` (buy = +); 0 when nothing traded
``time_since_update_s``  event time: gap to the previous book message; grid: age of the book
``valid``              both sides present and not crossed
=====================  =====================================================================

Event-time rows are the book messages (state after each); grid rows sample that state as of each
grid time (last message at or before ``t``), with the windowed features evaluated at ``t`` itself.
Windows use cumulative sums + ``searchsorted``, so the cost is O(n log n) whatever the window.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import polars as pl

from mm_core.research.book_frames import BookFrames

DEFAULT_STEP_MS = 100
RV_WINDOWS_S: tuple[float, ...] = (1.0, 5.0, 30.0)
TFI_WINDOWS_S: tuple[float, ...] = (1.0, 5.0)
DEFAULT_DEPTH_LEVELS = 5
NS = 1_000_000_000


def _wname(prefix: str, w: float) -> str:
    return f"{prefix}_{w:g}s"


def feature_names(rv_windows: Sequence[float] = RV_WINDOWS_S, tfi_windows: Sequence[float] = TFI_WINDOWS_S) -> list[str]:
    """Numeric feature columns both frames carry (besides ``ts`` and ``valid``)."""
    return (["bid", "ask", "bid_qty", "ask_qty", "mid", "spread", "spread_ticks", "imbalance",
             "depth_imbalance", "wmid"]
            + [_wname("rv", w) for w in rv_windows] + [_wname("tfi", w) for w in tfi_windows]
            + ["time_since_update_s"])


class _State:
    """Per-book-row instantaneous features and the cumulative sums the windows need."""

    def __init__(self, fr: BookFrames, depth_levels: int) -> None:
        self.fr = fr
        b, a = fr.bid, fr.ask
        qb, qa = fr.bid_qty[:, 0], fr.ask_qty[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mid = 0.5 * (b + a)
            self.spread = a - b
            tot = qb + qa
            self.imbalance = np.where(tot > 0, (qb - qa) / tot, np.nan)
            k = min(depth_levels, fr.bid_qty.shape[1])
            db = fr.bid_qty[:, :k].sum(axis=1)
            da = fr.ask_qty[:, :k].sum(axis=1)
            dt = db + da
            self.depth_imbalance = np.where(dt > 0, (db - da) / dt, np.nan)
            self.wmid = np.where(tot > 0, (b * qa + a * qb) / tot, np.nan)
            self.valid = np.isfinite(b) & np.isfinite(a) & (a > b)
            self.mid = np.where(np.isfinite(b) & np.isfinite(a), self.mid, np.nan)
            # squared log returns of the mid, per book row (0 where either mid is missing)
            lm = np.log(self.mid)
            r = np.diff(lm, prepend=lm[:1])
            r = np.where(np.isfinite(r), r, 0.0)
        self.cum_r2 = np.concatenate(([0.0], np.cumsum(r * r)))
        self.qb, self.qa = qb, qa
        # trades: cumulative signed and total volume
        self.cum_tv = np.concatenate(([0.0], np.cumsum(fr.trade_qty)))
        self.cum_sv = np.concatenate(([0.0], np.cumsum(fr.trade_qty * fr.trade_sign)))

    def window_rv(self, t_end: np.ndarray, w_s: float, hi: Optional[np.ndarray] = None) -> np.ndarray:
        """Realized vol (bp) of book rows with ts in (t_end - w, t_end] (and index < ``hi`` if given).

        Event-time rows pass ``hi = row + 1``: later messages with the same timestamp must not leak
        into an earlier row's window.
        """
        ts = self.fr.ts
        if hi is None:
            hi = np.searchsorted(ts, t_end, side="right")
        lo = np.searchsorted(ts, t_end - int(w_s * NS), side="right")
        # the return of row lo is mid[lo] vs mid[lo-1]: it belongs to the window when ts[lo] > t-w
        s = self.cum_r2[hi] - self.cum_r2[lo]
        return 1e4 * np.sqrt(np.maximum(s, 0.0))

    def window_tfi(self, t_end: np.ndarray, w_s: float) -> np.ndarray:
        ts = self.fr.trade_ts
        hi = np.searchsorted(ts, t_end, side="right")
        lo = np.searchsorted(ts, t_end - int(w_s * NS), side="right")
        tv = self.cum_tv[hi] - self.cum_tv[lo]
        sv = self.cum_sv[hi] - self.cum_sv[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tv > 0, sv / tv, 0.0)


def _frame(st: _State, idx: np.ndarray, t: np.ndarray, since: np.ndarray,
           rv_windows: Sequence[float], tfi_windows: Sequence[float], event_time: bool = False) -> pl.DataFrame:
    fr = st.fr
    cols: dict[str, np.ndarray] = {
        "ts": t.astype(np.int64),
        "bid": fr.bid[idx], "ask": fr.ask[idx], "bid_qty": st.qb[idx], "ask_qty": st.qa[idx],
        "mid": st.mid[idx], "spread": st.spread[idx],
        "spread_ticks": st.spread[idx] / fr.tick_size,
        "imbalance": st.imbalance[idx], "depth_imbalance": st.depth_imbalance[idx], "wmid": st.wmid[idx],
    }
    hi = idx + 1 if event_time else None
    for w in rv_windows:
        cols[_wname("rv", w)] = st.window_rv(t, w, hi)
    for w in tfi_windows:
        cols[_wname("tfi", w)] = st.window_tfi(t, w)
    cols["time_since_update_s"] = since
    cols["valid"] = st.valid[idx]
    return pl.DataFrame(cols)


def event_features(fr: BookFrames, *, depth_levels: int = DEFAULT_DEPTH_LEVELS,
                   rv_windows: Sequence[float] = RV_WINDOWS_S,
                   tfi_windows: Sequence[float] = TFI_WINDOWS_S) -> pl.DataFrame:
    """One row per book message (the state after it); see the module docstring for columns."""
    st = _State(fr, depth_levels)
    idx = np.arange(fr.n_book)
    since = np.diff(fr.ts, prepend=fr.ts[:1]).astype(np.float64) / NS
    return _frame(st, idx, fr.ts, since, rv_windows, tfi_windows, event_time=True)


def grid_times(fr: BookFrames, step_ms: int = DEFAULT_STEP_MS) -> np.ndarray:
    """Grid from the first time both book sides exist (rounded up to ``step``) to the last message."""
    step = int(step_ms) * 1_000_000
    if step <= 0:
        raise ValueError("step_ms must be > 0")
    ok = np.flatnonzero(np.isfinite(fr.bid) & np.isfinite(fr.ask))
    if ok.size == 0:
        return np.empty(0, np.int64)
    t0 = int(fr.ts[ok[0]])
    t0 = -(-t0 // step) * step
    t1 = int(fr.ts[-1])
    if t1 < t0:
        return np.empty(0, np.int64)
    return np.arange(t0, t1 + 1, step, dtype=np.int64)


def grid_features(fr: BookFrames, step_ms: int = DEFAULT_STEP_MS, *, depth_levels: int = DEFAULT_DEPTH_LEVELS,
                  rv_windows: Sequence[float] = RV_WINDOWS_S, tfi_windows: Sequence[float] = TFI_WINDOWS_S,
                  times: Optional[np.ndarray] = None) -> pl.DataFrame:
    """The book state as of each grid time (default every 100 ms); windows end at the grid time."""
    st = _State(fr, depth_levels)
    t = grid_times(fr, step_ms) if times is None else np.asarray(times, np.int64)
    idx = np.searchsorted(fr.ts, t, side="right") - 1
    if t.size and idx.min() < 0:
        raise ValueError("grid times before the first book message")
    since = (t - fr.ts[idx]).astype(np.float64) / NS
    return _frame(st, idx, t, since, rv_windows, tfi_windows)


def future_move_ticks(grid: pl.DataFrame, horizon_s: float, step_ms: int, tick_size: float) -> np.ndarray:
    """Realised mid change over ``horizon_s`` in ticks at each grid row (NaN past the end)."""
    steps = int(round(horizon_s * 1000 / step_ms))
    mid = grid["mid"].to_numpy()
    out = np.full(mid.shape[0], np.nan)
    if steps < mid.shape[0]:
        out[:-steps] = (mid[steps:] - mid[:-steps]) / tick_size
    return out
