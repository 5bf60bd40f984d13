"""Fair-mid models: what the mid will be ``horizon_s`` from now, given the book now.

Every model answers :meth:`FairMidModel.predict` with a fair mid *price* (the naive model answers
the mid itself), from a mapping of feature name -> value (scalars for one event, numpy arrays or a
polars frame for many). The names are the columns of :mod:`mm_core.research.features`, so the
backtest and the quoting engine feed a model the same features research scored it on.

Models (one small class each; adding one never touches the evaluation):

* ``naive``        -- fair mid = mid (the baseline every other model must beat);
* ``weighted_mid`` -- ``(b * Qa + a * Qb) / (Qb + Qa)``;
* ``microprice``   -- Stoikov (2018) micro-price, ``mid + g*(I, S) * tick``
  (:mod:`mm_core.research.microprice`);
* ``linear``       -- ridge regression of the future mid change (ticks) on standardised features,
  the micro-price adjustment among them (``micro_adj_ticks``).

File format (JSON, UTF-8; ``save_model``/``load_model``)::

    {
      "format": "mm_core.fair_mid", "version": 1,
      "kind": "naive" | "weighted_mid" | "microprice" | "linear",
      "horizon_s": 1.0, "tick_size": 0.1, "exchange": "<venue>", "symbol": "BTC/EUR",
      "trained": {"from_ts": ns, "to_ts": ns, "rows": n},          # provenance, may be {}
      "microprice": {                                             # microprice and linear
        "imbalance_edges": [9 floats on I = Qb/(Qb+Qa)],
        "adjustment_ticks": [[n_imb floats] per spread state 1, 2, ... ticks],
        "g1_ticks": [...], "counts": [...], "iterations": k, "prior": 1.0},
      "linear": {                                                 # linear only
        "features": ["imbalance", ...], "mean": [...], "scale": [...],
        "coef": [...], "intercept": 0.0, "alpha": 10.0}
    }

Linear prediction: ``mid + tick * (intercept + sum(coef * (x - mean) / scale))`` with NaN
features replaced by their training mean (i.e. contributing nothing).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Sequence

import numpy as np

from mm_core.research.microprice import MicroPriceTable

FORMAT = "mm_core.fair_mid"
VERSION = 1
BOOK_INPUTS = ("bid", "ask", "bid_qty", "ask_qty")
DEFAULT_LINEAR_FEATURES: tuple[str, ...] = (
    "imbalance", "depth_imbalance", "micro_adj_ticks", "tfi_1s", "tfi_5s",
)
"""Signed (direction-carrying) inputs only, and no intercept: in a market with no drift the expected
move is odd in these -- flip the book and the tape and it flips sign -- so unsigned quantities
(spread, volatility) cannot predict a direction on their own, and a fitted intercept would only
learn the training period's drift, which does not persist out of sample. The spread enters through
the micro-price adjustment (fitted per spread state). Spread interactions (``wmid_offset_ticks``,
``depth_x_spread``, ``tfi_5s_x_spread``) are available but off by default: wide-spread outliers
dominate a least-squares fit with them and cost more out of sample than they add."""


class FairMidModel(Protocol):
    """What the backtest and the quoting engine need: a fair mid from the current features."""

    kind: str
    horizon_s: float
    tick_size: float

    def predict(self, features: Mapping[str, Any]) -> Any:
        """Fair mid price (float for scalar inputs, ndarray for arrays)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready description (see module docstring)."""


def _arr(features: Mapping[str, Any], name: str) -> np.ndarray:
    try:
        v = features[name]
    except KeyError:
        raise KeyError(f"fair-mid model needs feature {name!r}; got {sorted(features)[:20]}") from None
    if hasattr(v, "to_numpy"):
        v = v.to_numpy()
    return np.asarray(v, dtype=np.float64)


def _out(x: np.ndarray, scalar: bool) -> Any:
    return float(x.reshape(-1)[0]) if scalar else x


def _is_scalar(features: Mapping[str, Any]) -> bool:
    v = features["bid"]
    return np.ndim(v.to_numpy() if hasattr(v, "to_numpy") else v) == 0


def _book(features: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    b, a, qb, qa = (_arr(features, n) for n in BOOK_INPUTS)
    return b, a, qb, qa, 0.5 * (b + a)


def derived_features(features: Mapping[str, Any], tick_size: float,
                     micro: Optional[MicroPriceTable] = None) -> dict[str, np.ndarray]:
    """Model inputs derived from book features: weighted-mid and micro-price offsets in ticks."""
    b, a, qb, qa, mid = _book(features)
    with np.errstate(invalid="ignore", divide="ignore"):
        tot = qb + qa
        wmid = (b * qa + a * qb) / tot
        spread_t = (a - b) / tick_size
        out = {"wmid_offset_ticks": (wmid - mid) / tick_size}
        if "depth_imbalance" in features:
            out["depth_x_spread"] = _arr(features, "depth_imbalance") * spread_t
        if "tfi_5s" in features:
            out["tfi_5s_x_spread"] = _arr(features, "tfi_5s") * spread_t
        if micro is not None:
            out["micro_adj_ticks"] = np.atleast_1d(micro.adjustment(qb / tot, (a - b) / tick_size))
    return out


@dataclass
class _Base:
    horizon_s: float
    tick_size: float
    exchange: str = ""
    symbol: str = ""
    trained: dict[str, Any] = field(default_factory=dict)

    kind = "base"

    def _head(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "horizon_s": self.horizon_s,
                "tick_size": self.tick_size, "exchange": self.exchange, "symbol": self.symbol,
                "trained": self.trained}

    def to_dict(self) -> dict[str, Any]:
        return self._head()

    def predict_move_ticks(self, features: Mapping[str, Any]) -> Any:
        """Predicted mid change over the horizon, in ticks."""
        scalar = _is_scalar(features)
        b, a = _arr(features, "bid"), _arr(features, "ask")
        fair = np.atleast_1d(self.predict(features))  # type: ignore[attr-defined]
        return _out((fair - 0.5 * (b + a)) / self.tick_size, scalar)

    def save(self, path: Path | str) -> Path:
        return save_model(self, path)  # type: ignore[arg-type]


@dataclass
class NaiveMid(_Base):
    """Fair mid = current mid: the baseline."""

    kind = "naive"

    def predict(self, features: Mapping[str, Any]) -> Any:
        return _out(_book(features)[4], _is_scalar(features))


@dataclass
class WeightedMid(_Base):
    """Size-weighted mid: leans toward the side with less size (it is likelier to be consumed)."""

    kind = "weighted_mid"

    def predict(self, features: Mapping[str, Any]) -> Any:
        b, a, qb, qa, _ = _book(features)
        with np.errstate(invalid="ignore", divide="ignore"):
            return _out((b * qa + a * qb) / (qb + qa), _is_scalar(features))


@dataclass
class MicroPrice(_Base):
    """Stoikov micro-price: ``mid + g*(I, S) * tick`` from a fitted :class:`MicroPriceTable`."""

    table: MicroPriceTable = field(default_factory=lambda: MicroPriceTable(np.empty(0), np.zeros((1, 1))))
    kind = "microprice"

    def predict(self, features: Mapping[str, Any]) -> Any:
        b, a, qb, qa, mid = _book(features)
        with np.errstate(invalid="ignore", divide="ignore"):
            adj = np.atleast_1d(self.table.adjustment(qb / (qb + qa), (a - b) / self.tick_size))
        return _out(mid + adj * self.tick_size, _is_scalar(features))

    def to_dict(self) -> dict[str, Any]:
        return {**self._head(), "microprice": self.table.to_dict()}


@dataclass
class LinearFairMid(_Base):
    """Ridge regression of the future mid change (ticks) on standardised features."""

    features: tuple[str, ...] = DEFAULT_LINEAR_FEATURES
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    coef: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intercept: float = 0.0
    alpha: float = 0.0
    micro: Optional[MicroPriceTable] = None
    kind = "linear"

    def design(self, features: Mapping[str, Any]) -> np.ndarray:
        """Standardised design matrix (n, k); NaN inputs become 0 (= the training mean)."""
        derived = derived_features(features, self.tick_size, self.micro)
        cols = []
        for name in self.features:
            cols.append(np.atleast_1d(derived[name] if name in derived else _arr(features, name)))
        n = max(c.shape[0] for c in cols) if cols else 0
        X = np.empty((n, len(cols)))
        for j, c in enumerate(cols):
            X[:, j] = c
        X = (X - self.mean) / self.scale
        X[~np.isfinite(X)] = 0.0
        return X

    def predict(self, features: Mapping[str, Any]) -> Any:
        scalar = _is_scalar(features)
        mid = _book(features)[4]
        move = self.intercept + self.design(features) @ self.coef
        return _out(mid + move * self.tick_size, scalar)

    def to_dict(self) -> dict[str, Any]:
        d = {**self._head(), "linear": {
            "features": list(self.features), "mean": [float(x) for x in self.mean],
            "scale": [float(x) for x in self.scale], "coef": [float(x) for x in self.coef],
            "intercept": float(self.intercept), "alpha": float(self.alpha)}}
        if self.micro is not None:
            d["microprice"] = self.micro.to_dict()
        return d


def fit_linear(features: Mapping[str, Any], target_ticks: np.ndarray, *, horizon_s: float, tick_size: float,
               micro: Optional[MicroPriceTable] = None, names: Sequence[str] = DEFAULT_LINEAR_FEATURES,
               alphas: Sequence[float] = (0.1, 10.0, 1000.0, 1e5), fit_intercept: bool = False,
               exchange: str = "", symbol: str = "", trained: Optional[dict[str, Any]] = None) -> LinearFairMid:
    """Ridge fit; ``alpha`` picked on the last 20 % of the (time-ordered) training rows, then refit on all.

    Without an intercept (default, see :data:`DEFAULT_LINEAR_FEATURES`) inputs are scaled by their
    RMS but not centred, so a zero signal predicts zero move. Rows with a NaN target are dropped;
    NaN inputs contribute nothing.
    """
    names = tuple(n for n in names if n != "micro_adj_ticks" or micro is not None)
    proto = LinearFairMid(horizon_s=horizon_s, tick_size=tick_size, features=names, micro=micro)
    derived = derived_features(features, tick_size, micro)
    raw = np.column_stack([np.atleast_1d(derived[n] if n in derived else _arr(features, n)) for n in names])
    y = np.asarray(target_ticks, float)
    keep = np.isfinite(y)
    raw, y = raw[keep], y[keep]
    if y.size < 10 * (len(names) + 1):
        raise ValueError(f"too few training rows for the linear model: {y.size}")
    if fit_intercept:
        mean = np.nanmean(raw, axis=0)
        scale = np.nanstd(raw, axis=0)
    else:
        mean = np.zeros(raw.shape[1])
        scale = np.sqrt(np.nanmean(raw * raw, axis=0))
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    X = (raw - mean) / scale
    X[~np.isfinite(X)] = 0.0
    cut = int(0.8 * y.size)
    best_alpha, best_err = alphas[0], math.inf
    for a in alphas:
        coef, icpt = _ridge(X[:cut], y[:cut], a, fit_intercept)
        err = float(np.mean((y[cut:] - icpt - X[cut:] @ coef) ** 2))
        if err < best_err:
            best_alpha, best_err = a, err
    coef, icpt = _ridge(X, y, best_alpha, fit_intercept)
    proto.mean, proto.scale, proto.coef, proto.intercept, proto.alpha = mean, scale, coef, icpt, float(best_alpha)
    proto.exchange, proto.symbol, proto.trained = exchange, symbol, dict(trained or {})
    return proto


def _ridge(X: np.ndarray, y: np.ndarray, alpha: float, fit_intercept: bool) -> tuple[np.ndarray, float]:
    """Ridge regression (the intercept, when fitted, is not penalised)."""
    k = X.shape[1]
    if not fit_intercept:
        return np.linalg.solve(X.T @ X + alpha * np.eye(k), X.T @ y), 0.0
    xm = X.mean(axis=0)
    ym = float(y.mean())
    Xc = X - xm
    coef = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(k), Xc.T @ (y - ym))
    return coef, ym - float(xm @ coef)


# ----------------------------------------------------------------------------- files

_KINDS: dict[str, type] = {"naive": NaiveMid, "weighted_mid": WeightedMid, "microprice": MicroPrice,
                           "linear": LinearFairMid}


def model_from_dict(d: Mapping[str, Any], source: str = "model") -> FairMidModel:
    """Rebuild a model from :meth:`to_dict` output; errors name the source and the field."""
    if d.get("format") != FORMAT:
        raise ValueError(f"{source}: not a fair-mid model file (format={d.get('format')!r}, expected {FORMAT!r})")
    if int(d.get("version", 0)) > VERSION:
        raise ValueError(f"{source}: model file version {d.get('version')} is newer than this code ({VERSION})")
    kind = d.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"{source}: unknown model kind {kind!r}; known: {', '.join(_KINDS)}")
    try:
        common = dict(horizon_s=float(d["horizon_s"]), tick_size=float(d["tick_size"]),
                      exchange=str(d.get("exchange", "")), symbol=str(d.get("symbol", "")),
                      trained=dict(d.get("trained") or {}))
        micro = MicroPriceTable.from_dict(d["microprice"]) if "microprice" in d else None
        if kind == "microprice":
            if micro is None:
                raise KeyError("microprice")
            return MicroPrice(**common, table=micro)
        if kind == "linear":
            lin = d["linear"]
            return LinearFairMid(**common, features=tuple(lin["features"]), mean=np.asarray(lin["mean"], float),
                                 scale=np.asarray(lin["scale"], float), coef=np.asarray(lin["coef"], float),
                                 intercept=float(lin["intercept"]), alpha=float(lin.get("alpha", 0.0)), micro=micro)
        return _KINDS[kind](**common)
    except KeyError as exc:
        raise ValueError(f"{source}: model of kind {kind!r} lacks field {exc.args[0]!r}") from None


def save_model(model: FairMidModel, path: Path | str) -> Path:
    """Write ``model`` as JSON (format in the module docstring); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(model.to_dict(), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


def load_model(path: Path | str) -> FairMidModel:
    """Read a model written by :func:`save_model`."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{p}: no such model file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return model_from_dict(d, source=str(p))
