"""Fair-mid models: one value per market row, from what the book showed up to and including it.

Why a series and not a callback: the fair mid is needed twice -- by the policy at the row it last
saw (inside the jitted loop) and by the PnL decomposition at fill time and at markout horizons --
and both read the same precomputed, causal series. A model that uses only rows ``<= i`` for
``fair[i]`` cannot leak the future into the strategy.

Models: :class:`NaiveMid`, :class:`Microprice` (size-weighted: leans towards the thin side),
:class:`LinearImbalance` (mid + beta * half-spread * L1 imbalance: the shape the research issue's
saved models export as JSON ``{"model": "linear_imbalance", "beta": ...}``). Rows where one side
of the book is empty carry the last valid value forward.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mm_core.backtest.event_arrays import NO_ASK, NO_BID, MarketArrays


class FairModel(Protocol):
    name: str

    def series(self, m: MarketArrays) -> np.ndarray:
        """Fair mid after every row (float64, same length as ``m``)."""
        ...


def _ffill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if valid.all():
        return values
    idx = np.where(valid, np.arange(values.shape[0]), 0)
    np.maximum.accumulate(idx, out=idx)
    out = values[idx]
    first = np.argmax(valid) if valid.any() else values.shape[0]
    out[:first] = np.nan
    return out


def _two_sided(m: MarketArrays) -> np.ndarray:
    return (m.best_bid_tick != NO_BID) & (m.best_ask_tick != NO_ASK)


@dataclass(frozen=True)
class NaiveMid:
    name: str = "mid"

    def series(self, m: MarketArrays) -> np.ndarray:
        mid = (m.best_bid_tick + m.best_ask_tick) * (0.5 * m.tick_size)
        return _ffill(mid.astype(np.float64), _two_sided(m))


@dataclass(frozen=True)
class Microprice:
    name: str = "microprice"

    def series(self, m: MarketArrays) -> np.ndarray:
        bid = m.best_bid_tick * m.tick_size
        ask = m.best_ask_tick * m.tick_size
        tot = m.best_bid_qty + m.best_ask_qty
        ok = _two_sided(m) & (tot > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            micro = (bid * m.best_ask_qty + ask * m.best_bid_qty) / tot
        return _ffill(np.where(ok, micro, np.nan), ok)


@dataclass(frozen=True)
class LinearImbalance:
    beta: float
    name: str = "linear_imbalance"

    def series(self, m: MarketArrays) -> np.ndarray:
        bid = m.best_bid_tick * m.tick_size
        ask = m.best_ask_tick * m.tick_size
        tot = m.best_bid_qty + m.best_ask_qty
        ok = _two_sided(m) & (tot > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            imb = (m.best_bid_qty - m.best_ask_qty) / tot
            fair = 0.5 * (bid + ask) + self.beta * 0.5 * (ask - bid) * imb
        return _ffill(np.where(ok, fair, np.nan), ok)


def fair_model(spec: str) -> FairModel:
    """``mid``, ``microprice`` or a saved model file (JSON with ``model`` and its parameters)."""
    if spec == "mid":
        return NaiveMid()
    if spec == "microprice":
        return Microprice()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"fair model {spec!r}: not 'mid', 'microprice' or an existing model file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    kind = raw.get("model")
    if kind == "linear_imbalance":
        return LinearImbalance(float(raw["beta"]))
    if kind in ("mid", "microprice"):
        return fair_model(kind)
    raise ValueError(f"{path}: unknown model {kind!r} (supported: mid, microprice, linear_imbalance)")
