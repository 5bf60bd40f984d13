"""Fee models: what each fill costs (negative = rebate). Same shape as hftbacktest's ``fee.rs``.

Fees never change which orders fill, so they are applied to the fills after the event loop, as one
vectorised call (:meth:`FeeModel.fees`) -- exact, and free to swap without recompiling the engine.
That holds for a tier that follows the run's own volume too (:class:`TieredFee` ``growth``): the
tier of a fill depends only on the fills before it.

Kraken's spot schedule is tiered by 30-day USD volume (kraken-protocol.md section 5): the lowest
tier pays 0.25 % maker / 0.40 % taker; $10M+ pays 0 / 0.10 %. Some pairs have maker rebates
(-0.02 % at the top tier); BTC/EUR very likely does not. :func:`kraken_schedule` reads the tiers
from a TOML ``[[fees.tiers]]`` table when one is given, else the runtime config's ``[fees]`` (the
shipped config holds every tier: one schedule, not a second built-in copy).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np


class FeeModel(Protocol):
    """Fee (quote currency) of each fill; positive = paid, negative = rebate received. Fills come
    in time order; a model whose ``uses_time`` is true is also given the fills' times (``ts=``)."""

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
class FeeTier:
    """One row of a volume-tiered schedule: from ``min_volume`` (30-day, USD) upwards."""

    min_volume: float
    maker: float  # percent
    taker: float  # percent


def shipped_tiers() -> tuple[FeeTier, ...]:
    """The shipped runtime config's ``[fees]`` tiers: the one Kraken schedule (no second table here)."""
    from mm_core.config import load_config

    fees = load_config().fees
    if fees is None or not fees.tiers:
        raise ValueError("the shipped config has no [fees] tiers")
    return tuple(FeeTier(t.volume_usd, t.maker, t.taker) for t in fees.tiers)


GROWTH_MODES = ("off", "fill", "daily")
_DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class TieredFee:
    """A volume-tiered schedule: the tier follows the 30-day USD volume.

    ``growth`` says whether the run's own trading moves the tier: ``off`` (the tier of
    ``volume_30d`` for every fill), ``fill`` (each fill pays the tier of ``volume_30d`` plus the value
    of the run's fills before it) or ``daily`` (the tier is re-evaluated at each UTC midnight from the
    value traded before that day, as Kraken's schedule is checked periodically, not per trade). Value
    counts in USD: quote value times ``quote_usd`` (e.g. ~1.08 for EUR). The starting volume is taken
    to stay in the 30-day window for the whole run (true for runs under 30 days whose start volume is
    recent; older volume rolling off is not modelled).
    """

    tiers: Sequence[FeeTier]
    volume_30d: float = 0.0
    name: str = "kraken_tiered"
    growth: str = "off"
    quote_usd: float = 1.0
    quote: str = "quote"  # currency of the fill values, named in describe() beside quote_usd

    def __post_init__(self) -> None:
        if self.growth not in GROWTH_MODES:
            raise ValueError(f"fee volume growth {self.growth!r}: choose one of {', '.join(GROWTH_MODES)}")

    @property
    def uses_time(self) -> bool:
        return self.growth == "daily"

    @property
    def tier(self) -> FeeTier:
        """The tier at the starting volume."""
        return self.tier_at(self.volume_30d)

    def tier_at(self, volume_usd: float) -> FeeTier:
        eligible = [t for t in self.tiers if volume_usd >= t.min_volume]
        if not eligible:
            raise ValueError(f"no fee tier for 30-day volume {volume_usd}")
        return max(eligible, key=lambda t: t.min_volume)

    def volume_before(self, price: np.ndarray, qty: np.ndarray, ts: Optional[np.ndarray] = None) -> np.ndarray:
        """The 30-day USD volume that sets each fill's tier (fills in time order)."""
        value = np.asarray(price, np.float64) * np.asarray(qty, np.float64) * self.quote_usd
        before = np.cumsum(value) - value
        if self.growth == "off":
            return np.full(value.shape, float(self.volume_30d))
        if self.growth == "fill":
            return self.volume_30d + before
        if ts is None:
            raise ValueError("fee volume growth 'daily' needs fill times")
        day = np.asarray(ts, np.int64) // _DAY_NS
        first = np.searchsorted(day, day, side="left")  # first fill of the same day
        return self.volume_30d + before[first]

    def fees(self, price: np.ndarray, qty: np.ndarray, maker: np.ndarray,
             ts: Optional[np.ndarray] = None) -> np.ndarray:
        tiers = sorted(self.tiers, key=lambda t: t.min_volume)
        mins = np.array([t.min_volume for t in tiers])
        vol = self.volume_before(price, qty, ts)
        if (vol < mins[0]).any():
            raise ValueError(f"no fee tier for 30-day volume {float(vol.min())}")
        k = np.searchsorted(mins, vol, side="right") - 1
        rate = np.where(maker, np.array([t.maker for t in tiers])[k], np.array([t.taker for t in tiers])[k]) / 100.0
        return rate * np.asarray(price, np.float64) * np.asarray(qty, np.float64)

    def describe(self) -> str:
        t = self.tier
        grow = "" if self.growth == "off" else f", growing with the run's volume ({self.growth})"
        return (f"{self.name}: 30d volume {self.volume_30d:,.0f} USD -> maker {t.maker:.2f} %, "
                f"taker {t.taker:.2f} %{grow}; tier volume at {self.quote}->USD {self.quote_usd:g}")


def tiers_from_rows(rows, where: str) -> tuple[FeeTier, ...]:
    """Tier rows from TOML: ``volume_usd`` (or ``min_volume``), ``maker``, ``taker`` in percent."""
    try:
        return tuple(FeeTier(float(r["volume_usd"] if "volume_usd" in r else r["min_volume"]),
                             float(r["maker"]), float(r["taker"])) for r in rows)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: bad [[fees.tiers]] row (volume_usd, maker, taker in percent): {exc}") from None


def kraken_schedule(volume_30d: float = 0.0, path: Optional[Path] = None, *, growth: str = "off",
                    quote_usd: float = 1.0, tiers: Optional[Sequence[FeeTier]] = None,
                    quote: str = "quote") -> TieredFee:
    """Kraken's tiers at ``volume_30d``; ``path`` = TOML with ``[[fees.tiers]]`` rows
    (``volume_usd`` or ``min_volume``, ``maker``, ``taker`` in percent; negative maker = rebate) to
    override them; ``tiers`` = rows already parsed (the runtime config's ``[fees]``)."""
    rows: Sequence[FeeTier] = shipped_tiers() if tiers is None else tuple(tiers)
    if path is not None:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        found = raw.get("fees", {}).get("tiers")
        if not found:
            raise ValueError(f"{path}: no [[fees.tiers]] rows (volume_usd, maker, taker in percent)")
        rows = tiers_from_rows(found, str(path))
    return TieredFee(tuple(sorted(rows, key=lambda t: t.min_volume)), volume_30d, growth=growth,
                     quote_usd=quote_usd, quote=quote)


def fee_model_from_spec(spec: str, *, volume_30d: float = 0.0, growth: str = "off", quote_usd: float = 1.0,
                        tiers: Optional[Sequence[FeeTier]] = None, quote: str = "quote") -> FeeModel:
    """CLI ``--fees``: ``kraken`` (tier by ``--volume-30d``; ``tiers`` from the runtime config if it
    has ``[fees]``), ``kraken:PATH.toml``, ``value:MAKER_PCT,TAKER_PCT`` (negative maker = rebate) or
    ``none``. ``growth``/``quote_usd``: see :class:`TieredFee`."""
    kind, _, rest = spec.partition(":")
    if kind == "kraken":
        return kraken_schedule(volume_30d, Path(rest) if rest else None, growth=growth, quote_usd=quote_usd,
                               tiers=tiers, quote=quote)
    if kind == "value":
        m, _, t = rest.partition(",")
        return TradingValueFee(float(m) / 100.0, float(t or m) / 100.0)
    if kind == "none":
        return TradingValueFee(0.0, 0.0, name="none")
    raise ValueError(f"--fees {spec!r}: expected kraken, kraken:PATH.toml, value:MAKER,TAKER or none")
