"""One research run: events -> features -> QA -> walk-forward -> verdict -> models on disk.

This is the library form of ``mm research`` (the notebook walks through the same steps). The
verdict is deliberately strict, because a fair-mid model that is not better than the mid only adds
noise to quotes:

**GO** when feature QA passes and, at *every* horizon, at least one non-naive model (1) beats the
naive mid on squared error, Diebold-Mariano one-sided ``p < alpha``; (2) calls the direction of
non-zero moves better than a coin, HAC ``p < alpha``; and (3) is calibrated: realised-on-predicted
slope in ``calib_slope_range`` (fixed before looking at results: predicted moves within -50 %/+50 %
of realised ones on average). The best model of a horizon is the passing one with the lowest
out-of-sample MSE. Otherwise **NO-GO**, naming every failed condition of the lowest-MSE model.
When QA fails, nothing is fitted. Every model's own checks are in the report either way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import polars as pl

from mm_core.research.book_frames import BookFrames, EventColumns, reconstruct
from mm_core.research.evaluation import (DEFAULT_HORIZONS, MODEL_NAMES, Evaluation, build_models,
                                         fit_micro_on, walk_forward)
from mm_core.research.fair_value import DEFAULT_LINEAR_FEATURES, FairMidModel, save_model
from mm_core.research.features import DEFAULT_STEP_MS, event_features, feature_names, grid_features
from mm_core.research.qa import QAReport, QAThresholds, feature_qa

Progress = Optional[Callable[[str], None]]


@dataclass(frozen=True)
class StudyConfig:
    step_ms: int = DEFAULT_STEP_MS
    horizons: tuple[float, ...] = DEFAULT_HORIZONS
    n_blocks: int = 5
    alpha: float = 0.01
    levels: int = 5
    hac_factor: float = 3.0
    calib_slope_range: tuple[float, float] = (0.5, 1.5)
    linear_features: tuple[str, ...] = DEFAULT_LINEAR_FEATURES
    qa: QAThresholds = field(default_factory=QAThresholds)


@dataclass
class Verdict:
    go: bool
    reasons: list[str]
    best: dict[float, str] = field(default_factory=dict)  # horizon -> a model that passes every GO condition
    # horizon -> the top model by out-of-sample gain, passing or not: what NO-GO runs save as candidates
    candidate: dict[float, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "GO" if self.go else "NO-GO"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.label, "go": self.go, "reasons": self.reasons,
                "best_model": {f"{h:g}s": m for h, m in self.best.items()},
                "candidate_model": {f"{h:g}s": m for h, m in self.candidate.items()}}


@dataclass
class StudyResult:
    source: str
    exchange: str
    symbol: str
    tick_size: float
    clock: str
    n_book: int
    n_trades: int
    ts_from: int
    ts_to: int
    config: StudyConfig
    qa: QAReport
    verdict: Verdict
    evaluation: Optional[Evaluation]
    frames: BookFrames
    events: pl.DataFrame
    grid: pl.DataFrame
    models: dict[float, dict[str, FairMidModel]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    model_paths: list[str] = field(default_factory=list)

    def metrics_table(self) -> list[dict[str, Any]]:
        return self.evaluation.table() if self.evaluation is not None else []

    def feature_summary(self) -> list[dict[str, Any]]:
        return summarize_features(self.grid)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: data, QA, metrics table, verdict, model files."""
        rows = []
        for r in self.metrics_table():
            r = dict(r)
            r.pop("calib_bins", None)
            rows.append(r)
        return {
            "source": self.source, "exchange": self.exchange, "symbol": self.symbol, "tick_size": self.tick_size,
            "clock": self.clock, "book_events": self.n_book, "trades": self.n_trades,
            "from_ts": self.ts_from, "to_ts": self.ts_to, "hours": (self.ts_to - self.ts_from) / 3.6e12,
            "grid_rows": self.grid.height, "step_ms": self.config.step_ms,
            "horizons_s": list(self.config.horizons), "blocks": self.config.n_blocks, "alpha": self.config.alpha,
            "qa": self.qa.to_dict(), "metrics": rows, **self.verdict.to_dict(),
            "models": self.model_paths, "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


def summarize_features(grid: pl.DataFrame) -> list[dict[str, Any]]:
    """count / NaN / mean / std / percentiles of each numeric feature on the grid."""
    out = []
    for name in feature_names():
        if name not in grid.columns:
            continue
        x = grid[name].to_numpy().astype(float)
        f = x[np.isfinite(x)]
        row: dict[str, Any] = {"feature": name, "n": int(x.size), "nan": int(x.size - f.size)}
        if f.size:
            p = np.percentile(f, [1, 50, 99])
            row.update(mean=float(f.mean()), std=float(f.std()), p1=float(p[0]), p50=float(p[1]), p99=float(p[2]))
        out.append(row)
    return out


def decide(qa: QAReport, ev: Optional[Evaluation], cfg: StudyConfig) -> Verdict:
    """GO / NO-GO with reasons (module docstring)."""
    reasons: list[str] = []
    best: dict[float, str] = {}
    candidate: dict[float, str] = {}
    if not qa.passed:
        return Verdict(False, ["feature QA failed, nothing was fitted: " + r for r in qa.reasons])
    if ev is None:
        return Verdict(False, ["no evaluation was run"])
    for h in ev.horizons:
        cands = [ev.score(m, h) for m in MODEL_NAMES if m != "naive"]
        cands = [s for s in cands if math.isfinite(s.mse_gain_pct)]
        if not cands:
            reasons.append(f"{h:g} s: no model could be scored")
            continue
        cands.sort(key=lambda c: -c.mse_gain_pct)
        passing = [c for c in cands if not model_failures(c, cfg)]
        if passing:
            best[h] = candidate[h] = passing[0].model
            continue
        s = cands[0]
        candidate[h] = s.model  # top by gain, but it fails a GO condition: not "best"
        reasons += [f"{h:g} s, top model {s.model}: {f}" for f in model_failures(s, cfg)]
    go = not reasons
    if go:
        reasons = [f"{h:g} s: {best[h]} beats the naive mid out of sample (MSE gain {ev.score(best[h], h).mse_gain_pct:.2f} %, "
                   f"DM p = {_fmt_p(ev.score(best[h], h).dm_p)}, hit rate {ev.score(best[h], h).hit_rate:.3f}, "
                   f"slope {ev.score(best[h], h).calib_slope:.2f})" for h in ev.horizons]
    return Verdict(go, reasons, best, candidate)


def model_failures(s: Any, cfg: StudyConfig) -> list[str]:
    """Which of the three GO conditions one model's out-of-sample score fails (empty = passes)."""
    lo, hi = cfg.calib_slope_range
    out: list[str] = []
    if s.dm_p is None or not s.dm_p < cfg.alpha:
        out.append(f"no significant improvement over the naive mid (MSE gain {s.mse_gain_pct:.2f} %, "
                   f"Diebold-Mariano p = {_fmt_p(s.dm_p)} >= {cfg.alpha:g})")
    if s.hit_rate is None or s.hit_p is None or not (s.hit_rate > 0.5 and s.hit_p < cfg.alpha):
        out.append(f"direction not better than a coin (hit rate {_fmt(s.hit_rate)}, p = {_fmt_p(s.hit_p)})")
    if s.calib_slope is None or not lo <= s.calib_slope <= hi:
        out.append(f"miscalibrated (realised/predicted slope {_fmt(s.calib_slope)} outside [{lo:g}, {hi:g}])")
    return out


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _fmt_p(p: Optional[float]) -> str:
    return "n/a" if p is None or not math.isfinite(p) else f"{p:.2g}"


def run_study(cols: EventColumns, cfg: StudyConfig = StudyConfig(), *, tick_size: Optional[float] = None,
              progress: Progress = None) -> StudyResult:
    """Features, QA, and (when QA passes) walk-forward + final models for every horizon."""
    say = progress or (lambda m: None)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    say(f"rebuilding the book: {cols.n_book:,} book messages, {cols.n_trades:,} trades")
    fr = reconstruct(cols, levels=cfg.levels, tick_size=tick_size)
    timings["book"] = time.perf_counter() - t
    t = time.perf_counter()
    ev = event_features(fr, depth_levels=cfg.levels)
    grid = grid_features(fr, cfg.step_ms, depth_levels=cfg.levels)
    timings["features"] = time.perf_counter() - t
    say(f"features: {ev.height:,} event rows, {grid.height:,} grid rows in {timings['features']:.2f} s")
    qa = feature_qa(fr, grid, cfg.qa)
    say(f"feature QA: {'PASS' if qa.passed else 'FAIL'}" + ("" if qa.passed else " -- " + "; ".join(qa.reasons)))
    evaluation: Optional[Evaluation] = None
    models: dict[float, dict[str, FairMidModel]] = {}
    if qa.passed:
        t = time.perf_counter()
        evaluation = walk_forward(grid, ev, fr.tick_size, horizons=cfg.horizons, n_blocks=cfg.n_blocks,
                                  step_ms=cfg.step_ms, hac_factor=cfg.hac_factor,
                                  linear_features=cfg.linear_features, progress=progress)
        timings["walk_forward"] = time.perf_counter() - t
        t = time.perf_counter()
        ts = grid["ts"].to_numpy()
        micro = fit_micro_on(ev, fr.tick_size)
        for h in cfg.horizons:
            steps = int(round(h * 1000 / cfg.step_ms))
            mask = np.arange(grid.height) + steps < grid.height
            models[h] = build_models(grid, ev, fr.tick_size, h, cfg.step_ms, int(ts[-1]) + 1,
                                     exchange=fr.exchange, symbol=fr.symbol, train_mask=mask, micro=micro,
                                     linear_features=cfg.linear_features)
        timings["final_fit"] = time.perf_counter() - t
    verdict = decide(qa, evaluation, cfg)
    say(f"verdict: {verdict.label}")
    return StudyResult(source=cols.source, exchange=fr.exchange, symbol=fr.symbol, tick_size=fr.tick_size,
                       clock=fr.clock, n_book=fr.n_book, n_trades=int(fr.trade_ts.size),
                       ts_from=int(fr.ts[0]), ts_to=int(fr.ts[-1]), config=cfg, qa=qa, verdict=verdict,
                       evaluation=evaluation, frames=fr, events=ev, grid=grid, models=models, timings=timings)


def save_models(result: StudyResult, out_dir: Path, data_source: Optional[dict[str, Any]] = None) -> list[Path]:
    """Write every final model as ``fair_mid_<kind>_<h>s.json`` plus ``fair_mid_best_<h>s.json``.

    Only a GO run has a best model; a NO-GO run saves its top model per horizon as
    ``fair_mid_candidate_<h>s.json`` instead, so a script picking up ``fair_mid_best_*`` never
    trades a model that failed the verdict.

    ``data_source`` (:mod:`mm_core.research.training_window`) is stored in each model's
    ``trained.source`` beside its time span: the final models are fitted on all of the data, and a
    backtest refuses to score them on data that overlaps it. Without it the files carry no source
    and the backtest cannot tell, so it refuses them too (unless told ``--allow-in-sample``).
    """
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for h, models in result.models.items():
        for kind, model in models.items():
            if data_source is not None:
                model.trained = {**model.trained, "source": dict(data_source)}
            paths.append(save_model(model, out_dir / f"fair_mid_{kind}_{h:g}s.json"))
        v = result.verdict
        best = v.best.get(h) if v.go else None
        if best is not None:
            paths.append(save_model(models[best], out_dir / f"fair_mid_best_{h:g}s.json"))
        elif v.candidate.get(h) is not None:
            paths.append(save_model(models[v.candidate[h]], out_dir / f"fair_mid_candidate_{h:g}s.json"))
    result.model_paths = [str(p) for p in paths]
    return paths
