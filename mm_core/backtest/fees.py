"""Fee models: what each fill costs (negative = rebate). Same shape as hftbacktest's ``fee.rs``.

Fees never change which orders fill, so they are applied to the fills after the event loop, as one
vectorised call (:meth:`FeeModel.fees`) -- exact, and free to swap without recompiling the engine.
That holds for a tier that follows the run's own volume too (:class:`TieredFee` ``growth``): the
tier of a fill depends only on the fills before it.

A venue's spot schedule is tiered by 30-day USD volume. There is one schedule per venue: its
runtime config's ``[fees]`` table (the shipped default config holds every tier of the default
venue), else the venue's own :attr:`mm_core.adapters.base.VenueRules.fee_tiers`; a venue ships
either, never both. :func:`venue_schedule` builds the model from them (or from a TOML
``[[fees.tiers]]`` table).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

from mm_core.adapters import VenueRules, default_venue, known_venues, venue_rules


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




GROWTH_MODES = ("off", "fill", "daily")
_DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class TieredFee:
    """A volume-tiered schedule: the tier follows the 30-day USD volume.

    ``growth`` says whether the run's own trading moves the tier: ``off`` (the tier of
    ``volume_30d`` for every fill), ``fill`` (each fill pays the tier of ``volume_30d`` plus the value
    of the run's fills before it) or ``daily`` (the tier is re-evaluated at each UTC midnight from the
    value traded before that day, as venues check the schedule periodically, not per trade). Value
    counts in USD: quote value times ``quote_usd`` (e.g. ~1.08 for EUR). The starting volume is taken
    to stay in the 30-day window for the whole run (true for runs under 30 days whose start volume is
    recent; older volume rolling off is not modelled).
    """

    tiers: Sequence[FeeTier]
    volume_30d: float = 0.0
    name: str = "tiered"
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


def venue_tiers(venue: VenueRules) -> tuple[FeeTier, ...]:
    """The venue's one schedule: its own rows, or (a venue whose schedule lives in the shipped
    config) the shipped config's ``[fees]`` when that config is this venue's."""
    if venue.fee_tiers:
        return tuple(FeeTier(t.volume_usd, t.maker_pct, t.taker_pct) for t in venue.fee_tiers)
    from mm_core.config import load_config

    cfg = load_config()
    if cfg.exchange.name != venue.name or cfg.fees is None or not cfg.fees.tiers:
        raise ValueError(f"venue {venue.name!r} ships no fee tiers of its own: give them in the config's "
                         f"[fees] table or use --fees value:MAKER,TAKER")
    return tuple(FeeTier(t.volume_usd, t.maker, t.taker) for t in cfg.fees.tiers)


def venue_schedule(venue: Optional[VenueRules] = None, volume_30d: float = 0.0, path: Optional[Path] = None, *,
                   growth: str = "off", quote_usd: float = 1.0,
                   tiers: Optional[Sequence[FeeTier]] = None, quote: str = "quote") -> TieredFee:
    """The venue's tiers (default: the default venue's) at ``volume_30d``; ``path`` = TOML with
    ``[[fees.tiers]]`` rows (``volume_usd`` or ``min_volume``, ``maker``, ``taker`` in percent;
    negative maker = rebate) to override them; ``tiers`` = rows already parsed (the runtime config's
    ``[fees]``)."""
    venue = venue if venue is not None else default_venue()
    rows: Sequence[FeeTier] = venue_tiers(venue) if tiers is None else tuple(tiers)
    if path is not None:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        found = raw.get("fees", {}).get("tiers")
        if not found:
            raise ValueError(f"{path}: no [[fees.tiers]] rows (volume_usd, maker, taker in percent)")
        rows = tiers_from_rows(found, str(path))
    return TieredFee(tuple(sorted(rows, key=lambda t: t.min_volume)), volume_30d, name=f"{venue.name}_tiered",
                     growth=growth, quote_usd=quote_usd, quote=quote)


def default_fee_model() -> TieredFee:
    """The default venue's schedule at the lowest tier (what a bare :class:`BacktestConfig` pays)."""
    return venue_schedule()


def fee_model_from_spec(spec: str, *, venue: Optional[VenueRules] = None, volume_30d: float = 0.0,
                        growth: str = "off", quote_usd: float = 1.0,
                        tiers: Optional[Sequence[FeeTier]] = None, quote: str = "quote") -> FeeModel:
    """CLI ``--fees``: ``venue`` (the configured venue's tiers by ``--volume-30d``; ``tiers`` from the
    runtime config if it has ``[fees]``), a venue's name (that venue's built-in tiers, or the
    config's when it is the configured venue), ``venue:PATH.toml`` / ``NAME:PATH.toml`` (tiers from a
    file), ``value:MAKER_PCT,TAKER_PCT`` (negative maker = rebate) or ``none``.
    ``growth``/``quote_usd``: see :class:`TieredFee`."""
    kind, _, rest = spec.partition(":")
    venue = venue if venue is not None else default_venue()
    if kind == "value":
        m, _, t = rest.partition(",")
        return TradingValueFee(float(m) / 100.0, float(t or m) / 100.0)
    if kind == "none":
        return TradingValueFee(0.0, 0.0, name="none")
    if kind == "venue" or kind == venue.name:
        chosen = venue
    elif kind in known_venues():
        chosen, tiers = venue_rules(kind), None
    else:
        raise ValueError(f"--fees {spec!r}: expected venue, venue:PATH.toml, a venue name "
                         f"({', '.join(known_venues())}), value:MAKER,TAKER or none")
    return venue_schedule(chosen, volume_30d, Path(rest) if rest else None, growth=growth, quote_usd=quote_usd,
                          tiers=tiers, quote=quote)
