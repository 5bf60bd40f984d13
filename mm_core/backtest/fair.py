"""Fair-mid models: one value per market row, from what the book showed up to and including it.

Why a series and not a callback: the fair mid is needed twice -- by the policy at the row it last
saw (inside the jitted loop) and by the PnL decomposition at fill time and at markout horizons --
and both read the same precomputed, causal series. A model that uses only rows ``<= i`` for
``fair[i]`` cannot leak the future into the strategy.

Models: :class:`NaiveMid`, :class:`Microprice` (size-weighted: leans towards the thin side),
:class:`LinearImbalance` (mid + beta * half-spread * L1 imbalance, JSON
``{"model": "linear_imbalance", "beta": ...}``), and :class:`ResearchFairMid`: any model saved by
``mm research`` (``{"format": "mm_core.fair_mid", ...}``: naive, weighted mid, Stoikov micro-price,
fitted linear), fed with the research module's own features computed on the backtest's rows, so
the backtest scores exactly the model research validated. Rows where one side of the book is empty
carry the last valid value forward.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mm_core.backtest.event_arrays import CLEAR, DEPTH, NO_ASK, NO_BID, TRADE, MarketArrays


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


@dataclass(frozen=True)
class ResearchFairMid:
    """A fair-mid model saved by ``mm research``, evaluated on the research features of the rows.

    Features are computed per book message (the state after it, trade-flow windows ending at its
    time) and each row takes the prediction of the last book message at or before it: causal.
    """

    model: object
    name: str

    def series(self, m: MarketArrays) -> np.ndarray:
        from mm_core.research.book_frames import reconstruct
        from mm_core.research.features import event_features

        cols, book_ordinal = market_columns(m)
        feats = event_features(reconstruct(cols, tick_size=m.tick_size))
        pred = np.asarray(self.model.predict(feats), dtype=np.float64)  # type: ignore[attr-defined]
        out = np.full(len(m), np.nan)
        has = book_ordinal >= 0
        out[has] = pred[book_ordinal[has]]
        return _ffill(out, np.isfinite(out))


def market_columns(m: MarketArrays):  # -> (EventColumns, np.ndarray)
    """The rows as research's EventColumns, plus each row's last book-message ordinal (-1: none yet)."""
    from mm_core.research.book_frames import EventColumns

    is_book = m.kind != TRADE
    b_idx = np.flatnonzero(is_book)
    b_msg = m.msg[b_idx]
    first = np.ones(b_idx.shape[0], dtype=bool)
    first[1:] = b_msg[1:] != b_msg[:-1]
    starts = np.flatnonzero(first)
    ordinal_of_book_row = np.cumsum(first) - 1
    book_ordinal = np.full(len(m), -1, dtype=np.int64)
    book_ordinal[b_idx] = ordinal_of_book_row
    np.maximum.accumulate(book_ordinal, out=book_ordinal)  # trades take the last message before them
    depth_rows = m.kind[b_idx] == DEPTH
    lv = b_idx[depth_rows]
    # level offsets: per message, the number of DEPTH rows among its book rows
    per_msg = np.add.reduceat(depth_rows.astype(np.int64), starts) if starts.size else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_msg)]).astype(np.int64)
    has_clear = np.add.reduceat((m.kind[b_idx] == CLEAR).astype(np.int64), starts) > 0 if starts.size \
        else np.zeros(0, bool)
    t = np.flatnonzero(m.kind == TRADE)
    cols = EventColumns(
        exchange=m.exchange, symbol=m.symbol,
        book_ts=m.exch_ts[b_idx[starts]].astype(np.int64),
        book_snapshot=has_clear,
        book_depth=np.full(starts.shape[0], m.depth, dtype=np.int64),
        book_verified=np.ones(starts.shape[0], dtype=bool),
        level_offsets=offsets,
        level_price=m.price[lv].astype(np.float64), level_qty=m.qty[lv].astype(np.float64),
        level_bid=m.side[lv] > 0,
        trade_ts=m.exch_ts[t].astype(np.int64), trade_price=m.price[t].astype(np.float64),
        trade_qty=m.qty[t].astype(np.float64), trade_sign=m.side[t].astype(np.int8),
        source="backtest rows",
    )
    return cols, book_ordinal


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
    if raw.get("format") == "mm_core.fair_mid":
        from mm_core.research.fair_value import model_from_dict

        model = model_from_dict(raw, source=str(path))
        return ResearchFairMid(model, name=f"research:{raw.get('kind')}@{raw.get('horizon_s')}s")
    kind = raw.get("model")
    if kind == "linear_imbalance":
        return LinearImbalance(float(raw["beta"]))
    if kind in ("mid", "microprice"):
        return fair_model(kind)
    raise ValueError(f"{path}: unknown model {kind!r} (supported: mid, microprice, linear_imbalance, "
                     "or a model file saved by mm research)")
