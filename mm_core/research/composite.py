"""A composite fair mid from two venues quoting the same pair, scored out of sample like the
single-venue models (:mod:`mm_core.research.evaluation`).

Why: when one venue leads another, the leader's mid says where the follower's mid is going. But a
venue's last quote is only worth what its age allows: a feed that went quiet (or stalled) must fade
out of the composite instead of dragging it to an old price. So:

* every venue's mid is taken on a clock grid *as known at capture time* (last update at or before
  the grid point), with its staleness (grid time - that update's capture time);
* the composite is the staleness-weighted mean of the venues' mids, each weight ``exp(-stale / tau)``,
  after removing the other venue's basis (its mean price difference to the target, estimated on the
  training rows: venues quote the same pair a few ticks apart);
* the prediction of the target venue's move over the horizon is ``beta * (composite - target mid)``,
  ``beta`` fitted by least squares on the training rows only;
* lead-lag: the lag (grid steps) at which the other venue's mid changes correlate best with the
  target's later changes, on the training rows -- reported (positive: the other venue leads), so a
  user sees *why* the composite helps or not.

Scoring: the grid is cut into ``n_blocks`` contiguous blocks; fold k fits on blocks before k and
scores block k (training rows whose horizon reaches into block k are purged), and the pooled
out-of-sample predictions are scored by :func:`~mm_core.research.evaluation.score_predictions`
against the naive mid (Diebold-Mariano with HAC variance), exactly as the single-venue models are.
``tau_s`` is a parameter fixed before looking at the data (default 1 s), not tuned on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mm_core.research.evaluation import Score, score_predictions


@dataclass(frozen=True)
class VenueMids:
    """One venue's mid updates: capture times (ns, non-decreasing) and mids."""

    name: str
    t_ns: np.ndarray
    mid: np.ndarray


def on_grid(v: VenueMids, grid_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mid known at each grid time, its staleness in seconds); NaN before the first update."""
    idx = np.searchsorted(v.t_ns, grid_ns, side="right") - 1
    ok = idx >= 0
    mid = np.full(grid_ns.size, np.nan)
    stale = np.full(grid_ns.size, np.nan)
    mid[ok] = v.mid[idx[ok]]
    stale[ok] = (grid_ns[ok] - v.t_ns[idx[ok]]) / 1e9
    return mid, stale


def lead_lag_steps(target: np.ndarray, other: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag L in [-max_lag, max_lag] maximising corr(d other[t - L], d target[t]); (L, corr)."""
    dt, do = np.diff(target), np.diff(other)
    best, best_c = 0, -np.inf
    max_lag = min(max_lag, dt.size - 1)  # a short training window cannot test longer lags
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            a, b = do[: do.size - lag], dt[lag:]
        else:
            a, b = do[-lag:], dt[: dt.size + lag]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 10 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
            continue
        c = float(np.corrcoef(a[ok], b[ok])[0, 1])
        if c > best_c:
            best, best_c = lag, c
    return best, (best_c if np.isfinite(best_c) else float("nan"))


@dataclass(frozen=True)
class CompositeFairMid:
    """Fitted composite: other venue's basis (price units), slope ``beta`` and fade ``tau_s``."""

    basis: float
    beta: float
    tau_s: float

    def gap_ticks(self, target_mid: np.ndarray, target_stale: np.ndarray, other_mid: np.ndarray,
                  other_stale: np.ndarray, tick: float) -> np.ndarray:
        """(composite - target mid) in ticks: the staleness-weighted mean minus the target's own mid."""
        wt = np.exp(-np.nan_to_num(target_stale, nan=np.inf) / self.tau_s)
        wo = np.exp(-np.nan_to_num(other_stale, nan=np.inf) / self.tau_s)
        other = np.where(np.isfinite(other_mid), other_mid + self.basis, target_mid)
        total = wt + wo
        comp = np.where(total > 0, (wt * target_mid + wo * other) / np.where(total > 0, total, 1.0), target_mid)
        return (comp - target_mid) / tick

    def predict_ticks(self, *args: Any, tick: float) -> np.ndarray:
        return self.beta * self.gap_ticks(*args, tick=tick)


def fit_composite(target_mid: np.ndarray, target_stale: np.ndarray, other_mid: np.ndarray, other_stale: np.ndarray,
                  future_ticks: np.ndarray, tick: float, tau_s: float) -> CompositeFairMid:
    both = np.isfinite(target_mid) & np.isfinite(other_mid)
    basis = float(np.mean(target_mid[both] - other_mid[both])) if both.any() else 0.0
    m = CompositeFairMid(basis, 0.0, tau_s)
    x = m.gap_ticks(target_mid, target_stale, other_mid, other_stale, tick)
    ok = np.isfinite(x) & np.isfinite(future_ticks)
    xx = float(np.sum(x[ok] * x[ok]))
    beta = float(np.sum(x[ok] * future_ticks[ok]) / xx) if xx > 0 else 0.0
    return CompositeFairMid(basis, beta, tau_s)


def evaluate_composite(target: VenueMids, other: VenueMids, tick: float, *, horizon_s: float = 1.0,
                       step_ms: int = 100, n_blocks: int = 5, tau_s: float = 1.0, max_lag_s: float = 2.0,
                       hac_factor: float = 3.0) -> dict[str, Any]:
    """Walk-forward scores of the naive target mid and the composite (see the module docstring)."""
    start = max(int(target.t_ns[0]), int(other.t_ns[0]))
    end = int(target.t_ns[-1])  # a silent other venue does not end the grid: it grows stale and fades
    step_ns = step_ms * 1_000_000
    grid = np.arange(start, end + 1, step_ns, dtype=np.int64)
    steps = max(1, int(round(horizon_s * 1000 / step_ms)))
    if grid.size < n_blocks * (steps + 10):
        raise ValueError(f"{grid.size} grid points: too short for {n_blocks} blocks at a {horizon_s} s horizon")
    tm, ts = on_grid(target, grid)
    om, os_ = on_grid(other, grid)
    future = np.full(grid.size, np.nan)
    future[:-steps] = (tm[steps:] - tm[:-steps]) / tick
    blocks = np.array_split(np.arange(grid.size), n_blocks)
    preds, fold = np.full(grid.size, np.nan), np.full(grid.size, -1)
    fits = []
    for k in range(1, n_blocks):
        test = blocks[k]
        train = np.concatenate(blocks[:k])
        train = train[train + steps < test[0]]  # purge: no training target reaches into the test block
        m = fit_composite(tm[train], ts[train], om[train], os_[train], future[train], tick, tau_s)
        lag, corr = lead_lag_steps(tm[train], om[train], max(1, int(max_lag_s * 1000 / step_ms)))
        fits.append({"fold": k, "beta": m.beta, "basis": m.basis, "lead_lag_steps": lag, "lead_lag_corr": corr})
        preds[test] = m.predict_ticks(tm[test], ts[test], om[test], os_[test], tick=tick)
        fold[test] = k
    scored = fold >= 0
    base = np.zeros(grid.size)
    scores: list[Score] = [
        score_predictions("naive", horizon_s, base[scored], future[scored], base[scored], steps, hac_factor, fold[scored]),
        score_predictions("composite", horizon_s, preds[scored], future[scored], base[scored], steps, hac_factor,
                          fold[scored]),
    ]
    return {"target": target.name, "other": other.name, "horizon_s": horizon_s, "step_ms": step_ms,
            "tau_s": tau_s, "folds": fits, "lead_lag_ms": fits[-1]["lead_lag_steps"] * step_ms,
            "scores": {s.model: s.to_dict() for s in scores}}


# --------------------------------------------------------------------------- CLI: mm composite


def venue_mids_of_run(run_dir: Any, name: str | None = None) -> VenueMids:
    """Top-of-book mids of a run directory's Parquet store, by capture time (as the venue was known)."""
    from pathlib import Path

    from mm_core.store.parquet_store import read_table

    rd = Path(run_dir)
    table = read_table(rd / "parquet", "top_of_book")
    if table.num_rows == 0:
        raise ValueError(f"{rd}: no top_of_book rows in its Parquet store")
    t = np.asarray(table.column("ts_capture").to_numpy(), dtype=np.int64)
    mid = (np.asarray(table.column("bid").to_numpy(), float) + np.asarray(table.column("ask").to_numpy(), float)) / 2
    order = np.argsort(t, kind="stable")
    return VenueMids(name or rd.name, t[order], mid[order])


def register(subparsers: Any) -> None:
    import argparse

    p = subparsers.add_parser(
        "composite", help="composite fair mid of two venues (lead-lag, staleness), scored out of sample",
        description="Score a staleness-weighted composite fair mid of TARGET and OTHER (two run directories "
                    "of the same pair on two venues, captured at the same time) against TARGET's naive mid, "
                    "walk-forward, as the single-venue models are scored.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", help="run directory of the venue whose mid is predicted")
    p.add_argument("other", help="run directory of the other venue")
    p.add_argument("--tick", type=float, required=True, help="the target pair's tick (price units)")
    p.add_argument("--horizon-s", type=float, default=1.0, help="prediction horizon")
    p.add_argument("--step-ms", type=int, default=100, help="grid step")
    p.add_argument("--blocks", type=int, default=5, help="walk-forward blocks")
    p.add_argument("--tau-s", type=float, default=1.0, help="staleness fade: weight exp(-age / tau)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: Any) -> int:
    """Exit 0 when the composite beats the naive mid out of sample (DM p < 0.05), 1 when not, 2 on bad input."""
    import sys

    import orjson

    try:
        if args.tick <= 0 or args.horizon_s <= 0 or args.step_ms <= 0 or args.tau_s <= 0 or args.blocks < 2:
            raise ValueError("--tick, --horizon-s, --step-ms and --tau-s must be > 0, --blocks >= 2")
        r = evaluate_composite(venue_mids_of_run(args.target), venue_mids_of_run(args.other), args.tick,
                               horizon_s=args.horizon_s, step_ms=args.step_ms, n_blocks=args.blocks, tau_s=args.tau_s)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    comp = r["scores"]["composite"]
    edge = comp["dm_p"] is not None and comp["dm_p"] < 0.05 and (comp["mse_gain_pct"] or 0) > 0
    r["verdict"] = "GO" if edge else "NO-GO"
    if args.json:
        print(orjson.dumps(r).decode())
    else:
        print(f"composite fair mid of {r['target']} with {r['other']}: horizon {r['horizon_s']} s, "
              f"lead-lag {r['lead_lag_ms']} ms (positive: {r['other']} leads)")
        for name, s in r["scores"].items():
            print(f"  {name:10} n {s['n']:>7}  MSE gain {s['mse_gain_pct'] or 0:6.1f} %  hit {s['hit_rate']}  DM p {s['dm_p']}")
        print(r["verdict"])
    return 0 if edge else 1
