"""Training windows: which data a fair-mid model was fitted on, and whether other data overlaps it.

Why: ``mm research`` fits its final models on *all* of its data, so backtesting a model on the same
data scores it in-sample -- its PnL is then no forecast of anything. Every model file saved by
``mm research`` carries ``trained.source`` (what the data was) beside ``trained.from_ts``/``to_ts``
(its exchange-time span); ``mm backtest`` and ``mm sweep`` compare that with their own data and
refuse to score on an overlap unless told ``--allow-in-sample``.

Data sources (plain JSON dicts, ``kind`` first):

- ``simulator``: the offline market model, identified by its generator and ``seed`` (plus the
  profile: ``predictive``, message rates, and the duration). The generator is deterministic per
  seed and always starts at the same exchange time: with the same profile two runs of one seed are
  the same data; with another profile they start from the same price and opening book and draw
  from the same random stream, and only then diverge -- not independent data either. So: same
  seed and intersecting time = overlap, whatever the profile (it is recorded and shown).
- ``capture`` (a collector run directory) and ``recording`` (a raw feed file): market data of one
  ``exchange``/``symbol``; the same instrument at the same time is the same data whichever folder
  holds it: same instrument and intersecting time = overlap. A simulator run directory (it has a
  ``sim.json``) is a ``simulator`` source.
- ``unknown`` (e.g. prebuilt rows): nothing says where it came from, so any model of the same
  instrument whose window intersects its time is treated as overlapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

SIM_GENERATOR = "mm_core.simexchange.market.MarketModel"
KINDS = ("simulator", "capture", "recording", "unknown")


class NoTrainingWindow(ValueError):
    """A model file without a usable training window (older ``mm research``, or written by hand)."""


def simulator_source(seed: int, *, predictive: bool, updates_per_second: float, trades_per_second: float,
                     seconds: Optional[float], exchange: str = "kraken", symbol: str = "BTC/EUR") -> dict[str, Any]:
    """The identity of offline simulator data."""
    return {"kind": "simulator", "generator": SIM_GENERATOR, "seed": int(seed), "predictive": bool(predictive),
            "updates_per_second": float(updates_per_second), "trades_per_second": float(trades_per_second),
            "seconds": None if seconds is None else float(seconds), "exchange": exchange, "symbol": symbol}


def market_source(kind: str, exchange: str, symbol: str, path: Optional[Path] = None) -> dict[str, Any]:
    """The identity of recorded market data (``capture``, ``recording``) or of ``unknown`` rows."""
    if kind not in KINDS or kind == "simulator":
        raise ValueError(f"market_source: kind must be capture, recording or unknown, not {kind!r}")
    out: dict[str, Any] = {"kind": kind, "exchange": exchange, "symbol": symbol}
    if path is not None:
        out["path"] = str(Path(path).resolve())
    return out


def run_dir_source(path: Path, exchange: str, symbol: str) -> dict[str, Any]:
    """A run directory's identity: ``simulator`` when it holds the ``sim.json`` that
    :func:`mm_core.research.sim_data.write_sim_run` writes, else a ``capture``."""
    path = Path(path)
    for folder in (path, path.parent):
        meta = folder / "sim.json"
        if meta.is_file():
            try:
                d = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                break
            if d.get("kind") == "simulator" and "seed" in d:
                from mm_core.simexchange.market import MarketParams

                p = MarketParams()
                return simulator_source(
                    int(d["seed"]), predictive=bool(d.get("predictive", True)),
                    updates_per_second=float(d.get("updates_per_second", p.updates_per_second)),
                    trades_per_second=float(d.get("trades_per_second", p.trades_per_second)),
                    seconds=d.get("seconds"), exchange=exchange or "kraken", symbol=str(d.get("symbol", symbol)))
            break
    return market_source("capture", exchange, symbol, path)


@dataclass(frozen=True)
class TrainingWindow:
    """The data a model was fitted on: its source and exchange-time span ``[from_ts, to_ts]`` (ns)."""

    source: dict[str, Any]
    from_ts: int
    to_ts: int

    def describe(self) -> str:
        return f"{describe_source(self.source)}, {utc(self.from_ts)} to {utc(self.to_ts)}"


def utc(ns: int) -> str:
    return datetime.fromtimestamp(int(ns) / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_source(src: dict[str, Any]) -> str:
    """One line naming a data source."""
    kind = src.get("kind", "unknown")
    if kind == "simulator":
        prof = "predictive" if src.get("predictive") else "non-predictive"
        secs = src.get("seconds")
        dur = f", {secs:g} s" if isinstance(secs, (int, float)) else ""
        return f"simulator seed {src.get('seed')} ({prof}{dur})"
    where = f" at {src['path']}" if src.get("path") else ""
    return f"{kind} {src.get('exchange', '?')} {src.get('symbol', '?')}{where}"


def window_of(raw: dict[str, Any], source_name: str) -> TrainingWindow:
    """The training window of a model file's JSON; :class:`NoTrainingWindow` says what is missing."""
    trained = raw.get("trained") or {}
    src = trained.get("source")
    lo, hi = trained.get("from_ts"), trained.get("to_ts")
    if not isinstance(src, dict) or src.get("kind") not in KINDS:
        raise NoTrainingWindow(
            f"{source_name}: the model file does not say which data it was trained on (no trained.source; "
            "saved by an older mm research or by hand), so whether this backtest is in-sample cannot be told")
    if not isinstance(lo, int) or not isinstance(hi, int) or hi < lo:
        raise NoTrainingWindow(f"{source_name}: the model file has no valid training time range "
                               f"(trained.from_ts={lo!r}, trained.to_ts={hi!r})")
    return TrainingWindow(src, lo, hi)


def _instrument(src: dict[str, Any]) -> tuple[str, str]:
    return (str(src.get("exchange", "")).lower(), str(src.get("symbol", "")).upper().replace("-", "/"))


def overlap(window: TrainingWindow, data: dict[str, Any], start_ns: int, end_ns: int) -> Optional[str]:
    """Why data ``data`` spanning ``[start_ns, end_ns]`` overlaps ``window`` (None: it does not).

    Rules in the module docstring: time must intersect; then simulator data overlaps only the same
    generator and seed, recorded data the same instrument, and ``unknown`` data anything of the
    same instrument.
    """
    if not (window.from_ts <= end_ns and start_ns <= window.to_ts):
        return None
    a, b = window.source, data
    ka, kb = a.get("kind", "unknown"), b.get("kind", "unknown")
    same_instrument = _instrument(a) == _instrument(b)
    if ka == "simulator" and kb == "simulator":
        if a.get("generator") != b.get("generator") or a.get("seed") != b.get("seed"):
            return None
        why = "the same simulator seed"
        if a.get("predictive") != b.get("predictive"):
            why += (" (the profile differs: the paths diverge, but they start from the same price and book"
                    " and draw from the same random stream, so they are not independent data)")
    elif "unknown" in (ka, kb):
        if not same_instrument:
            return None
        why = "data of unknown origin for the same instrument"
    elif (ka == "simulator") != (kb == "simulator"):
        return None  # simulated vs recorded market data
    else:
        if not same_instrument:
            return None
        why = "the same instrument"
    lo, hi = max(window.from_ts, start_ns), min(window.to_ts, end_ns)
    return (f"trained on {window.describe()}; this data is {describe_source(b)}, {utc(start_ns)} to "
            f"{utc(end_ns)}: {why}, overlapping from {utc(lo)} to {utc(hi)}")


def read_window(path: Path) -> Optional[TrainingWindow]:
    """The training window of a research model file, or None if ``path`` is not one (a built-in
    model name or a hand-made ``{"model": ...}`` file). Raises :class:`NoTrainingWindow`."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # fair_model reports unreadable files
    if not isinstance(raw, dict) or raw.get("format") != "mm_core.fair_mid":
        return None
    return window_of(raw, str(p))
