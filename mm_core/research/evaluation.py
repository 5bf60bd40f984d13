"""Walk-forward scoring of fair-mid models against the realised future mid, in ticks.

Protocol. The clock grid is cut into ``n_blocks`` contiguous blocks; for fold ``k`` (1 .. K-1) every
model is fitted on blocks ``0 .. k-1`` and scored on block ``k`` -- never on its own past. Training
rows whose horizon reaches into the scored block are purged (their target overlaps the test
period). The micro-price is re-estimated per fold from event-time transitions before the block.

Metrics per model and horizon, on all out-of-sample rows pooled:

* MAE / RMSE of predicted vs realised move (ticks);
* directional hit rate on rows where both the realised move and the prediction are non-zero,
  with a HAC t-test of ``hit - 1/2``;
* calibration: realised move averaged in deciles of the predicted move, and the OLS line
  ``realised = intercept + slope * predicted``;
* Diebold-Mariano test of the squared-error loss differential against the naive mid,
  one-sided (H1: the model's loss is lower).

Overlap. On a 100 ms grid a 5 s target overlaps the next 49 targets, so loss differentials are
strongly autocorrelated; an i.i.d. variance would make a worthless model look significant. Every
t-statistic here uses a Newey-West (Bartlett) long-run variance with ``lag = hac_factor * steps``
(default 3x the horizon in grid steps, at least the Andrews rule ``4 (n/100)^(2/9)``), which covers
the MA(h-1) overlap plus the volatility clustering of the feed.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import polars as pl

from mm_core.research.fair_value import (DEFAULT_LINEAR_FEATURES, FairMidModel, MicroPrice, NaiveMid,
                                         WeightedMid, fit_linear)
from mm_core.research.features import future_move_ticks
from mm_core.research.microprice import DEFAULT_IMBALANCE_BUCKETS, DEFAULT_SPREAD_STATES, MicroPriceTable, fit_microprice

MODEL_NAMES = ("naive", "weighted_mid", "microprice", "linear")
DEFAULT_HORIZONS: tuple[float, ...] = (1.0, 5.0)


def norm_sf(z: float) -> float:
    """Upper tail of the standard normal (numpy/math only; scipy is not a dependency)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def newey_west_var(x: np.ndarray, lag: int) -> float:
    """Long-run variance of ``x`` (Bartlett kernel, ``lag`` autocovariances).

    The products are summed by numpy (pairwise), not by a BLAS dot: a multi-threaded BLAS splits a
    dot product over its threads and the last bits then depend on the machine's core count, so the
    same day scored on a laptop, in a process pool and on a Dask worker (one BLAS thread) differed."""
    x = np.asarray(x, float)
    n = x.size
    if n < 2:
        return float("nan")
    d = x - x.mean()
    v = float(np.sum(d * d)) / n
    lag = int(min(max(lag, 0), n - 1))
    for j in range(1, lag + 1):
        v += 2.0 * (1.0 - j / (lag + 1)) * float(np.sum(d[j:] * d[:-j])) / n
    return max(v, 0.0)


def hac_lag(n: int, steps: int, factor: float = 3.0) -> int:
    return int(max(math.ceil(factor * steps), math.ceil(4.0 * (n / 100.0) ** (2.0 / 9.0))))


def hac_mean_test(x: np.ndarray, lag: int) -> tuple[float, float]:
    """(t statistic, one-sided p for mean > 0) of ``x`` with a Newey-West variance."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if x.size < 3:
        return float("nan"), float("nan")
    v = newey_west_var(x, lag)
    if v <= 0:
        m = float(x.mean())
        return (math.inf, 0.0) if m > 0 else (-math.inf, 1.0) if m < 0 else (0.0, 0.5)
    t = float(x.mean()) / math.sqrt(v / x.size)
    return t, norm_sf(t)


def diebold_mariano(err_model: np.ndarray, err_base: np.ndarray, lag: int) -> tuple[float, float]:
    """DM statistic and one-sided p (H1: model has lower squared error than base), HAC variance."""
    d = np.asarray(err_base, float) ** 2 - np.asarray(err_model, float) ** 2
    return hac_mean_test(d, lag)


@dataclass
class Score:
    """Out-of-sample metrics of one model at one horizon (ticks)."""

    model: str
    horizon_s: float
    n: int
    mae: float
    rmse: float
    mse_gain_pct: float  # 100 * (1 - MSE / MSE_naive)
    hit_rate: Optional[float]
    hit_n: int
    hit_p: Optional[float]
    coverage: float  # share of rows with a non-zero prediction
    calib_slope: Optional[float]
    calib_intercept: Optional[float]
    calib_bins: list[tuple[float, float, int]] = field(default_factory=list)  # (mean predicted, mean realised, n)
    dm_stat: Optional[float] = None
    dm_p: Optional[float] = None
    fold_mse: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d


@dataclass
class Evaluation:
    """Walk-forward result: scores per (model, horizon), pooled OOS predictions for plots."""

    scores: list[Score]
    horizons: tuple[float, ...]
    n_blocks: int
    step_ms: int
    hac_factor: float
    predictions: dict[float, dict[str, np.ndarray]] = field(default_factory=dict)  # h -> model -> pred (+ "realised")

    def score(self, model: str, horizon_s: float) -> Score:
        for s in self.scores:
            if s.model == model and s.horizon_s == horizon_s:
                return s
        raise KeyError((model, horizon_s))

    def table(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.scores]


def _calibration(pred: np.ndarray, real: np.ndarray, bins: int = 10) -> tuple[Optional[float], Optional[float], list]:
    if pred.size < 3 or float(np.std(pred)) == 0.0:
        return None, None, []
    slope, icpt = np.polyfit(pred, real, 1)
    qs = np.quantile(pred, np.linspace(0, 1, bins + 1))
    idx = np.clip(np.searchsorted(qs, pred, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append((float(pred[m].mean()), float(real[m].mean()), int(m.sum())))
    return float(slope), float(icpt), out


def score_predictions(name: str, horizon_s: float, pred: np.ndarray, real: np.ndarray, base: np.ndarray,
                      steps: int, hac_factor: float = 3.0, fold_id: Optional[np.ndarray] = None) -> Score:
    """Metrics of one model's pooled OOS predictions (all in ticks; ``base`` = naive predictions)."""
    ok = np.isfinite(pred) & np.isfinite(real) & np.isfinite(base)
    p, r, b = pred[ok], real[ok], base[ok]
    n = int(p.size)
    lag = hac_lag(n, steps, hac_factor)
    e = p - r
    mse = float(np.mean(e * e)) if n else float("nan")
    mse_b = float(np.mean((b - r) ** 2)) if n else float("nan")
    nz = (r != 0) & (p != 0)
    hits = (np.sign(p) == np.sign(r)).astype(float)
    if nz.sum() >= 3:
        hit_rate = float(hits[nz].mean())
        # HAC test on the indicator series (zeros outside nz keep the time spacing honest)
        x = np.where(nz, hits - 0.5, np.nan)
        _, hit_p = hac_mean_test(x[np.isfinite(x)], max(1, int(lag * nz.mean())))
    else:
        hit_rate, hit_p = None, None
    slope, icpt, bins = _calibration(p, r)
    if name == "naive":
        dm_stat, dm_p = None, None
    else:
        dm_stat, dm_p = diebold_mariano(e, b - r, lag)
    fold_mse = []
    if fold_id is not None:
        f = fold_id[ok]
        fold_mse = [float(np.mean(e[f == k] ** 2)) for k in np.unique(f)]
    return Score(model=name, horizon_s=horizon_s, n=n, mae=float(np.mean(np.abs(e))) if n else float("nan"),
                 rmse=math.sqrt(mse) if n else float("nan"),
                 mse_gain_pct=100.0 * (1.0 - mse / mse_b) if n and mse_b > 0 else float("nan"),
                 hit_rate=hit_rate, hit_n=int(nz.sum()), hit_p=hit_p, coverage=float(np.mean(p != 0)) if n else 0.0,
                 calib_slope=slope, calib_intercept=icpt, calib_bins=bins, dm_stat=dm_stat, dm_p=dm_p,
                 fold_mse=fold_mse)


def auto_spread_states(spread_ticks: np.ndarray, quantile: float = 0.95, cap: int = 20) -> int:
    """Spread states for the micro-price: enough to cover ``quantile`` of the spreads (2..cap).

    Stoikov's data (large-tick stocks) needed 1-2 tick states; a crypto book with a 0.1 tick is
    often several ticks wide, and the spread shapes the next move, so it gets its own states.
    """
    s = np.asarray(spread_ticks, float)
    s = s[np.isfinite(s) & (s > 0)]
    if s.size == 0:
        return DEFAULT_SPREAD_STATES
    return int(min(cap, max(DEFAULT_SPREAD_STATES, math.ceil(float(np.quantile(s, quantile)) - 1e-9))))


def fit_micro_on(events: pl.DataFrame, tick_size: float, t_end: Optional[int] = None,
                 t_start: Optional[int] = None, n_imb: int = DEFAULT_IMBALANCE_BUCKETS,
                 n_spread: Optional[int] = None) -> MicroPriceTable:
    """Micro-price from event-time rows with ``t_start <= ts < t_end`` (all rows when None).

    ``n_spread=None`` picks the spread states from the data (:func:`auto_spread_states`).
    """
    ts = events["ts"].to_numpy()
    lo = 0 if t_start is None else int(np.searchsorted(ts, t_start, side="left"))
    hi = ts.size if t_end is None else int(np.searchsorted(ts, t_end, side="left"))
    ev = events.slice(lo, max(hi - lo, 0))
    imb01 = 0.5 * (1.0 + ev["imbalance"].to_numpy())
    spread = ev["spread_ticks"].to_numpy()
    ns = auto_spread_states(spread) if n_spread is None else n_spread
    return fit_microprice(imb01, spread, ev["mid"].to_numpy() / tick_size, n_imb=n_imb, n_spread=ns)


def build_models(grid_train: pl.DataFrame, events: pl.DataFrame, tick_size: float, horizon_s: float, step_ms: int,
                 t_end: int, *, exchange: str = "", symbol: str = "", t_start: Optional[int] = None,
                 train_mask: Optional[np.ndarray] = None, micro: Optional[MicroPriceTable] = None,
                 linear_features: Sequence[str] = DEFAULT_LINEAR_FEATURES) -> dict[str, FairMidModel]:
    """All four models fitted on data before ``t_end`` (targets must be within the training span).

    ``micro`` reuses a micro-price already fitted on the same span (it does not depend on the horizon).
    """
    if micro is None:
        micro = fit_micro_on(events, tick_size, t_end=t_end, t_start=t_start)
    ts = grid_train["ts"].to_numpy()
    trained = {"from_ts": int(ts[0]) if ts.size else None, "to_ts": int(t_end), "rows": int(grid_train.height)}
    common = dict(horizon_s=horizon_s, tick_size=tick_size, exchange=exchange, symbol=symbol, trained=trained)
    y = future_move_ticks(grid_train, horizon_s, step_ms, tick_size)
    if train_mask is not None:
        y = np.where(train_mask, y, np.nan)
    y = np.where(grid_train["valid"].to_numpy(), y, np.nan)
    lin = fit_linear(grid_train, y, micro=micro, names=linear_features, **common)
    return {"naive": NaiveMid(**common), "weighted_mid": WeightedMid(**common),
            "microprice": MicroPrice(**common, table=micro), "linear": lin}


def walk_forward(grid: pl.DataFrame, events: pl.DataFrame, tick_size: float, *,
                 horizons: Sequence[float] = DEFAULT_HORIZONS, n_blocks: int = 5, step_ms: int = 100,
                 hac_factor: float = 3.0, linear_features: Sequence[str] = DEFAULT_LINEAR_FEATURES,
                 progress: Optional[Callable[[str], None]] = None) -> Evaluation:
    """Fit on blocks 0..k-1, score block k, for k = 1..n_blocks-1; pool and score (module docstring)."""
    if n_blocks < 2:
        raise ValueError("n_blocks must be >= 2")
    n = grid.height
    ts = grid["ts"].to_numpy()
    valid = grid["valid"].to_numpy()
    bounds = np.linspace(0, n, n_blocks + 1).astype(int)
    scores: list[Score] = []
    preds_all: dict[float, dict[str, np.ndarray]] = {}
    micro_cache: dict[int, MicroPriceTable] = {}
    for h in horizons:
        steps = int(round(h * 1000 / step_ms))
        real_all = future_move_ticks(grid, h, step_ms, tick_size)
        real_all = np.where(valid, real_all, np.nan)
        preds = {m: np.full(n, np.nan) for m in MODEL_NAMES}
        fold_id = np.full(n, -1)
        for k in range(1, n_blocks):
            a, b = bounds[k], bounds[k + 1]
            if progress:
                progress(f"horizon {h:g} s: fold {k}/{n_blocks - 1} (train {bounds[k]:,} rows, test {b - a:,})")
            train = grid.slice(0, a)
            mask = np.arange(a) + steps < a  # purge: targets must end before the test block starts
            t_end = int(ts[a])
            if t_end not in micro_cache:
                micro_cache[t_end] = fit_micro_on(events, tick_size, t_end=t_end)
            models = build_models(train, events, tick_size, h, step_ms, t_end, train_mask=mask,
                                  micro=micro_cache[t_end], linear_features=linear_features)
            test = grid.slice(a, b - a)
            for name, model in models.items():
                preds[name][a:b] = model.predict_move_ticks(test)  # type: ignore[attr-defined]
            fold_id[a:b] = k
        oos = fold_id > 0
        real = np.where(oos, real_all, np.nan)
        base = preds["naive"]
        for name in MODEL_NAMES:
            scores.append(score_predictions(name, h, preds[name], real, base, steps, hac_factor, fold_id))
        keep = oos & np.isfinite(real)
        preds_all[h] = {name: preds[name][keep] for name in MODEL_NAMES}
        preds_all[h]["realised"] = real[keep]
    return Evaluation(scores=scores, horizons=tuple(horizons), n_blocks=n_blocks, step_ms=step_ms,
                      hac_factor=hac_factor, predictions=preds_all)


def stderr_progress(msg: str) -> None:
    sys.stderr.write(f"[research] {msg}\n")
    sys.stderr.flush()
