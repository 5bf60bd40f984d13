"""Fee models: what each fill costs (negative = rebate). Same shape as hftbacktest's ``fee.rs``.

Fees never change which orders fill, so they are applied to the fills after the event loop, as one
vectorised call (:meth:`FeeModel.fees`) -- exact, and free to swap without recompiling the engine.

Kraken's spot schedule is tiered by 30-day USD volume (kraken-protocol.md section 5): the lowest
tier pays 0.25 % maker / 0.40 % taker; $10M+ pays 0 / 0.10 %. Some pairs have maker rebates
(-0.02 % at the top tier); BTC/EUR very likely does not. :func:`kraken_schedule` reads the tiers
from a TOML ``[[fees.tiers]]`` table when one is given, else uses the built-in schedule below.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np


class FeeModel(Protocol):
    """Fee (quote currency) of each fill; positive = paid, negative = rebate received."""

    name: str

    def fees(self, price: np.ndarray, qty: np.ndarray, maker: np.ndarray) -> np.ndarray:
        ...


@dataclass(frozen=True)
class TradingValueFee:
    """Rate times traded value; a negative maker rate is a rebate."""

    maker_rate: float
    taker_rate: float
    name: str = "trading_value"

    def fees(self, price: np.ndarray, qty: np.ndarray, maker: np.ndarray) -> np.ndarray:
        rate = np.where(maker, self.maker_rate, self.taker_rate)
        return rate * price * qty


@dataclass(frozen=True)
class TradingQtyFee:
    """Fee per unit of base quantity (some venues and inverse contracts)."""

    maker_per_unit: float
    taker_per_unit: float
    name: str = "trading_qty"

    def fees(self, price: np.ndarray, qty: np.ndarray, maker: np.ndarray) -> np.ndarray:
        return np.where(maker, self.maker_per_unit, self.taker_per_unit) * qty


@dataclass(frozen=True)
class FlatPerTradeFee:
    """A fixed amount per fill, whatever its size."""

    maker_fee: float
    taker_fee: float
    name: str = "flat_per_trade"

    def fees(self, price: np.ndarray, qty: np.ndarray, maker: np.ndarray) -> np.ndarray:
        return np.where(maker, self.maker_fee, self.taker_fee) * np.ones_like(qty)


@dataclass(frozen=True)
class FeeTier:
    """One row of a volume-tiered schedule: from ``min_volume`` (30-day, USD) upwards."""

    min_volume: float
    maker: float  # percent
    taker: float  # percent


KRAKEN_SPOT_TIERS: tuple[FeeTier, ...] = (
    FeeTier(0, 0.25, 0.40),
    FeeTier(10_000, 0.20, 0.35),
    FeeTier(50_000, 0.14, 0.24),
    FeeTier(100_000, 0.12, 0.22),
    FeeTier(250_000, 0.10, 0.20),
    FeeTier(500_000, 0.08, 0.18),
    FeeTier(1_000_000, 0.06, 0.16),
    FeeTier(2_500_000, 0.04, 0.14),
    FeeTier(5_000_000, 0.02, 0.12),
    FeeTier(10_000_000, 0.00, 0.10),
)
"""Kraken Pro spot schedule (endpoints from AssetPairs ``fees``/``fees_maker``; check ``TradeVolume``)."""


@dataclass(frozen=True)
class TieredFee:
    """A volume-tiered schedule resolved at a 30-day volume: a :class:`TradingValueFee` in effect."""

    tiers: Sequence[FeeTier]
    volume_30d: float = 0.0
    name: str = "kraken_tiered"

    @property
    def tier(self) -> FeeTier:
        eligible = [t for t in self.tiers if self.volume_30d >= t.min_volume]
        if not eligible:
            raise ValueError(f"no fee tier for 30-day volume {self.volume_30d}")
        return max(eligible, key=lambda t: t.min_volume)

    def fees(self, price: np.ndarray, qty: np.ndarray, maker: np.ndarray) -> np.ndarray:
        t = self.tier
        return TradingValueFee(t.maker / 100.0, t.taker / 100.0).fees(price, qty, maker)

    def describe(self) -> str:
        t = self.tier
        return f"{self.name}: 30d volume {self.volume_30d:,.0f} -> maker {t.maker:.2f} %, taker {t.taker:.2f} %"


def kraken_schedule(volume_30d: float = 0.0, path: Optional[Path] = None) -> TieredFee:
    """Kraken's tiers at ``volume_30d``; ``path`` = TOML with ``[[fees.tiers]]`` rows
    (``min_volume``, ``maker``, ``taker`` in percent; negative maker = rebate) to override them."""
    tiers: Sequence[FeeTier] = KRAKEN_SPOT_TIERS
    if path is not None:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        rows = raw.get("fees", {}).get("tiers")
        if not rows:
            raise ValueError(f"{path}: no [[fees.tiers]] rows (min_volume, maker, taker in percent)")
        try:
            tiers = tuple(FeeTier(float(r["min_volume"]), float(r["maker"]), float(r["taker"])) for r in rows)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: bad [[fees.tiers]] row: {exc}") from None
    return TieredFee(tuple(sorted(tiers, key=lambda t: t.min_volume)), volume_30d)


def fee_model_from_spec(spec: str, *, volume_30d: float = 0.0) -> FeeModel:
    """CLI ``--fees``: ``kraken`` (tier by ``--volume-30d``), ``kraken:PATH.toml``,
    ``value:MAKER_PCT,TAKER_PCT`` (negative maker = rebate) or ``none``."""
    kind, _, rest = spec.partition(":")
    if kind == "kraken":
        return kraken_schedule(volume_30d, Path(rest) if rest else None)
    if kind == "value":
        m, _, t = rest.partition(",")
        return TradingValueFee(float(m) / 100.0, float(t or m) / 100.0)
    if kind == "none":
        return TradingValueFee(0.0, 0.0, name="none")
    raise ValueError(f"--fees {spec!r}: expected kraken, kraken:PATH.toml, value:MAKER,TAKER or none")
