"""Exchange adapters and venue rules: the only code that knows an exchange.

Each venue is a package ``mm_core/adapters/<name>/`` whose ``__init__`` exposes ``VENUE`` (a
:class:`~mm_core.adapters.base.VenueRules`): its feed adapters by name, fee schedule, rate counter,
error texts, instruments and recording readers. The package name is the config's ``[exchange]
name``. Venues are found by looking at the packages here, so adding exchange #2 = a new package
+ a config file; nothing in this file or outside ``adapters/`` changes.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache
from typing import Optional, Sequence

from pathlib import Path

from mm_core.adapters.base import FeedAdapter, FeedSpec, HistorySeries, RateCounterSpec, VenueRules

DEFAULT_CONFIG_NAME = "kraken-btc-eur.toml"
"""The runtime config that ships as the default (``config/`` of a checkout, or inside the package)."""

DEFAULT_VENUE = "kraken"
"""The venue of the default config: what library callers get when they name none."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@lru_cache(maxsize=None)
def known_venues() -> tuple[str, ...]:
    """Names of the venue packages under ``mm_core/adapters/``."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg))


@lru_cache(maxsize=None)
def venue_rules(name: str) -> VenueRules:
    """The rules of venue ``name`` (the config's ``[exchange] name``); a clear error lists the known."""
    if not isinstance(name, str) or not _NAME.match(name) or name not in known_venues():
        raise ValueError(f"unknown venue {name!r}; known venues: {', '.join(known_venues())}")
    venue = getattr(importlib.import_module(f"{__name__}.{name}"), "VENUE", None)
    if venue is None:
        raise ValueError(f"venue package mm_core.adapters.{name} exposes no VENUE")
    return venue


def default_venue() -> VenueRules:
    return venue_rules(DEFAULT_VENUE)


def adapter_names() -> dict[str, str]:
    """Every adapter of every venue: adapter name -> venue name."""
    return {adapter: v for v in known_venues() for adapter in venue_rules(v).adapters}


def adapter_class(name: str) -> type[FeedAdapter]:
    """The adapter class registered under ``name`` by some venue; a clear error lists the known names."""
    owner = adapter_names().get(name)
    if owner is None:
        known = ", ".join(sorted(adapter_names()))
        raise ValueError(f"unknown adapter {name!r}; known adapters: {known}")
    module_name, _, attr = venue_rules(owner).adapters[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)


def recording_adapter(url: Optional[str], texts: Sequence[str]) -> Optional[str]:
    """The adapter that speaks a recording (its recorder's URL, its first frames), asking each venue."""
    for hint in ((url, None) if url is not None else (None,)):  # by URL first, then by the frames alone
        for v in known_venues():
            found = venue_rules(v).recording_adapter(hint, texts)
            if found is not None:
                return found
    return None


def history_file(path: Path) -> Optional[HistorySeries]:
    """A venue's saved market-history file (e.g. a REST OHLC or trades answer) as plain series, asking
    each venue that has a ``rest_history`` module; None when no venue knows the file's shape."""
    for v in known_venues():
        try:
            module = importlib.import_module(f"mm_core.adapters.{v}.rest_history")
        except ModuleNotFoundError:
            continue
        found = module.history_file(Path(path))
        if found is not None:
            return found
    return None


def trading_rules(name: str) -> VenueRules:
    """The venue's rules, checked to have a trading client (``load_credentials``, ``connect_trading``,
    ``private_ws_url``, ``private_rest_url``, ``credentials_help``); ValueError names the gap."""
    v = venue_rules(name)
    if not all(hasattr(v, a) for a in ("load_credentials", "connect_trading", "private_ws_url", "private_rest_url")):
        raise ValueError(f"venue {name!r} has no trading client yet (capture, research and backtest only)")
    return v


def rate_counter(venue: VenueRules, tier: str) -> RateCounterSpec:
    """Tier ``tier`` of the venue's order-rate counter (``off``: none at all, on every venue)."""
    if tier == "off":
        return RateCounterSpec.off()
    try:
        return venue.rate_tiers[tier]
    except KeyError:
        known = ", ".join([*venue.rate_tiers, "off"])
        raise ValueError(f"unknown rate tier {tier!r} for {venue.name}; choose one of {known}") from None


__all__ = ["DEFAULT_CONFIG_NAME", "DEFAULT_VENUE", "FeedAdapter", "FeedSpec", "RateCounterSpec", "VenueRules",
           "HistorySeries", "adapter_class", "adapter_names", "default_venue", "history_file", "known_venues", "rate_counter",
           "recording_adapter", "trading_rules", "venue_rules"]
