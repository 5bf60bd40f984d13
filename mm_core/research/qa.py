"""Feature QA: count what would make a fitted model lie, and refuse to fit when it is too much.

Why each check exists:

* **non-monotonic timestamps** -- as-of joins and horizons assume time runs forward; an inverted
  stamp silently pairs a feature with the wrong future.
* **NaN bursts** -- a run of grid rows where a core feature is NaN (a side of the book empty,
  broken input) means the model would be fit on holes; isolated NaNs are counted too.
* **stale stretches** -- stretches where the book has not changed for ``stale_after_s``: a frozen
  feed looks like a very predictable market (the future mid equals the present one).
* **outliers** -- mid jumps and spreads far outside the robust (median/MAD) range: fat fingers,
  bad parses, a book that lost a side.
* **crossed books** and **unverified book messages** (checksum mismatches) -- the book itself is
  wrong there.
* **too little data** -- walk-forward needs several blocks each long enough to score.

Each check yields a count, the share, the threshold and PASS/FAIL; :attr:`QAReport.reasons` names
every failing check in words the research run prints when it refuses to fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mm_core.research.book_frames import BookFrames

CORE_FEATURES = ("mid", "spread_ticks", "imbalance", "depth_imbalance", "wmid")


@dataclass(frozen=True)
class QAThresholds:
    """Limits beyond which research refuses to fit (shares are of grid rows / book messages)."""

    max_non_monotonic_share: float = 0.001
    nan_burst_min_rows: int = 10  # a NaN run this long (1 s on the 100 ms grid) is a burst
    max_nan_bursts: int = 0
    max_nan_share: float = 0.01
    stale_after_s: float = 10.0
    max_stale_share: float = 0.02
    outlier_mad: float = 20.0  # robust z-score beyond which a mid jump / spread is an outlier ...
    outlier_min_bp: float = 10.0  # ... provided it is also this large (bp of the mid): wide-but-normal books pass
    max_outlier_share: float = 0.001
    max_crossed_share: float = 0.001
    max_unverified_share: float = 0.01
    min_grid_rows: int = 3000  # 5 minutes on the 100 ms grid


@dataclass
class QACheck:
    name: str
    count: int
    share: float
    threshold: str
    passed: bool
    detail: str = ""


@dataclass
class QAReport:
    checks: list[QACheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def check(self, name: str) -> QACheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "checks": [asdict(c) for c in self.checks]}


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start index, length) of every run of True in ``mask``."""
    m = np.asarray(mask, bool).astype(np.int8)
    if m.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    d = np.diff(np.concatenate(([0], m, [0])))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


def _robust_outliers(x: np.ndarray, k: float, min_abs: float) -> tuple[int, float]:
    """Count of ``|x - median| > max(k * MAD, min_abs)`` and that limit (above the median)."""
    x = x[np.isfinite(x)]
    if x.size < 10:
        return 0, float("nan")
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    if mad <= 0:
        # a degenerate distribution (e.g. spread almost always 1 tick): scale by the mean deviation
        mad = float(np.mean(np.abs(x - med))) or 1.0
    lim = max(k * mad, min_abs)
    return int(np.count_nonzero(np.abs(x - med) > lim)), med + lim


def feature_qa(fr: BookFrames, grid: pl.DataFrame, th: QAThresholds = QAThresholds()) -> QAReport:
    """Run every check on the book frames and the clock-grid features (see module docstring)."""
    rep = QAReport()
    n_book = max(fr.n_book, 1)
    n_grid = grid.height

    inv_book = int(np.count_nonzero(np.diff(fr.ts_raw) < 0))
    inv_trade = int(np.count_nonzero(np.diff(fr.trade_ts_raw) < 0))
    share = (inv_book + inv_trade) / max(fr.n_events, 1)
    rep.checks.append(QACheck("non_monotonic_timestamps", inv_book + inv_trade, share,
                              f"share <= {th.max_non_monotonic_share:g}", share <= th.max_non_monotonic_share,
                              f"{inv_book} book and {inv_trade} trade timestamps go backwards ({share:.4%})"))

    if n_grid:
        nan_any = np.zeros(n_grid, bool)
        for c in CORE_FEATURES:
            nan_any |= ~np.isfinite(grid[c].to_numpy())
        _, lengths = runs(nan_any)
        bursts = int(np.count_nonzero(lengths >= th.nan_burst_min_rows))
        longest = int(lengths.max()) if lengths.size else 0
        nan_rows = int(nan_any.sum())
    else:
        bursts = longest = nan_rows = 0
    nshare = nan_rows / max(n_grid, 1)
    ok = bursts <= th.max_nan_bursts and nshare <= th.max_nan_share
    rep.checks.append(QACheck("nan_bursts", bursts, nshare,
                              f"bursts (>= {th.nan_burst_min_rows} rows) <= {th.max_nan_bursts}, NaN share <= {th.max_nan_share:g}",
                              ok, f"{bursts} NaN bursts, {nan_rows} NaN grid rows ({nshare:.3%}), longest run {longest} rows"))

    if n_grid:
        since = grid["time_since_update_s"].to_numpy()
        stale = since > th.stale_after_s
        starts, lengths = runs(stale)
        stretches = int(starts.size)
        longest_s = float(since.max()) if n_grid else 0.0
        stale_rows = int(stale.sum())
    else:
        stretches, longest_s, stale_rows = 0, 0.0, 0
    sshare = stale_rows / max(n_grid, 1)
    rep.checks.append(QACheck("stale_stretches", stretches, sshare,
                              f"stale (> {th.stale_after_s:g} s without a book change) share <= {th.max_stale_share:g}",
                              sshare <= th.max_stale_share,
                              f"{stretches} stretches without a book change for > {th.stale_after_s:g} s, "
                              f"{sshare:.3%} of the grid stale, longest gap {longest_s:.1f} s"))

    with np.errstate(invalid="ignore", divide="ignore"):
        mid = 0.5 * (fr.bid + fr.ask)
        jumps_bp = 1e4 * np.diff(np.log(mid))
        spread_bp = 1e4 * (fr.ask - fr.bid) / mid
    moves = jumps_bp[np.isfinite(jumps_bp) & (jumps_bp != 0)]
    jump_out, jump_lim = _robust_outliers(moves, th.outlier_mad, th.outlier_min_bp)
    spread_out, spread_lim = _robust_outliers(spread_bp[np.isfinite(spread_bp)], th.outlier_mad, th.outlier_min_bp)
    # a non-positive or non-finite size at the top is always an outlier
    bad_qty = int(np.count_nonzero(~np.isfinite(fr.bid_qty[:, 0]) | ~np.isfinite(fr.ask_qty[:, 0])))
    n_out = jump_out + spread_out + bad_qty
    oshare = n_out / n_book
    rep.checks.append(QACheck("outliers", n_out, oshare, f"share <= {th.max_outlier_share:g} (robust z > {th.outlier_mad:g} and > {th.outlier_min_bp:g} bp)",
                              oshare <= th.max_outlier_share,
                              f"{jump_out} mid jumps beyond {jump_lim:.3g} bp, {spread_out} spreads beyond "
                              f"{spread_lim:.3g} bp, {bad_qty} non-finite top sizes ({oshare:.4%} of book messages)"))

    with np.errstate(invalid="ignore"):
        crossed = int(np.count_nonzero(fr.bid >= fr.ask))
    cshare = crossed / n_book
    rep.checks.append(QACheck("crossed_books", crossed, cshare, f"share <= {th.max_crossed_share:g}",
                              cshare <= th.max_crossed_share, f"{crossed} book states with bid >= ask ({cshare:.4%})"))

    unver = int(np.count_nonzero(~fr.verified))
    ushare = unver / n_book
    rep.checks.append(QACheck("unverified_book", unver, ushare, f"share <= {th.max_unverified_share:g}",
                              ushare <= th.max_unverified_share,
                              f"{unver} book messages the venue's integrity check did not verify (checksum, or sync/crossing "
                              f"checks where the venue sends none) ({ushare:.3%})"))

    rep.checks.append(QACheck("enough_data", n_grid, 1.0, f"grid rows >= {th.min_grid_rows}", n_grid >= th.min_grid_rows,
                              f"{n_grid} grid rows; walk-forward needs >= {th.min_grid_rows}"))
    return rep
