"""Runtime configuration: one TOML file per exchange/pair under ``config/``.

Loaded into typed, frozen structs and validated on load. Errors name the file, the key path and
what to do (unknown keys, wrong types, out-of-range values, and symbols the adapter rejects, such as
``XBT/EUR`` on Kraken WS v2). Nothing downstream reads raw TOML.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Optional

import msgspec

from mm_core.instrument import Instrument

DEFAULT_CONFIG_NAME = "kraken-btc-eur.toml"


class ConfigError(ValueError):
    """A runtime config is missing, unreadable or invalid; the message says where and why."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ExchangeConfig(_Strict):
    name: str
    adapter: str
    endpoint: str


class FeedConfig(_Strict):
    book_depth: int = 10
    channels: tuple[str, ...] = ("book", "ticker", "trade")
    ping_interval_s: float = 10.0
    watchdog_silence_s: float = 10.0
    reconnect_base_s: float = 1.0
    reconnect_max_s: float = 60.0
    reconnect_budget: int = 50
    reconnect_budget_window_s: float = 3600.0
    flush_interval_s: float = 1.0


class LatencyConfig(_Strict):
    normal_max_ms: float = 20.0
    degraded_max_ms: float = 80.0


class GateConfig(_Strict):
    """Thresholds of the 24-hour decision gate (the user's plan, Phase 0)."""

    min_hours: float = 23.5
    min_samples: int = 500_000
    p50_max_ms: float = 15.0
    p95_max_ms: float = 100.0
    p99_max_ms: float = 400.0
    unsafe_ms: float = 80.0
    unsafe_share_max: float = 0.08
    max_gap_s: float = 60.0
    reconnect_loop_count: int = 5
    reconnect_loop_window_s: float = 300.0
    min_uptime_share: float = 0.99


class InstrumentConfig(_Strict):
    symbol: str
    price_precision: int
    qty_precision: int
    tick_size: float
    lot_size: float
    min_qty: float
    min_cost: float = 0.0
    base: str = ""
    quote: str = ""


class RuntimeConfig(_Strict):
    exchange: ExchangeConfig
    instrument: InstrumentConfig
    feed: FeedConfig = FeedConfig()
    latency: LatencyConfig = LatencyConfig()
    gate: GateConfig = GateConfig()
    source: Optional[str] = None

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    def make_instrument(self) -> Instrument:
        i = self.instrument
        return Instrument(
            exchange=self.exchange.name,
            symbol=i.symbol,
            price_precision=i.price_precision,
            qty_precision=i.qty_precision,
            tick_size=i.tick_size,
            lot_size=i.lot_size,
            min_qty=i.min_qty,
            min_cost=i.min_cost,
            base=i.base,
            quote=i.quote,
        )


def default_config_path() -> Path:
    """The shipped BTC/EUR config: ``config/`` of a checkout, else the copy inside the package."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "config" / DEFAULT_CONFIG_NAME
    if checkout.is_file():
        return checkout
    return Path(str(resources.files("mm_core") / "default_config" / DEFAULT_CONFIG_NAME))


def _check_values(cfg: RuntimeConfig, where: str) -> None:
    """Range and consistency checks that types alone cannot express."""
    problems: list[str] = []
    f, g, lat = cfg.feed, cfg.gate, cfg.latency
    if f.book_depth <= 0:
        problems.append("feed.book_depth must be > 0")
    if not f.channels:
        problems.append("feed.channels must not be empty")
    for name in ("ping_interval_s", "watchdog_silence_s", "reconnect_base_s", "reconnect_max_s",
                 "flush_interval_s", "reconnect_budget_window_s"):
        if getattr(f, name) <= 0:
            problems.append(f"feed.{name} must be > 0")
    if f.reconnect_max_s < f.reconnect_base_s:
        problems.append("feed.reconnect_max_s must be >= feed.reconnect_base_s")
    if not 0 < lat.normal_max_ms < lat.degraded_max_ms:
        problems.append("latency: need 0 < normal_max_ms < degraded_max_ms")
    if not 0 <= g.unsafe_share_max <= 1 or not 0 <= g.min_uptime_share <= 1:
        problems.append("gate: shares must be between 0 and 1")
    if not 0 < g.p50_max_ms <= g.p95_max_ms <= g.p99_max_ms:
        problems.append("gate: need 0 < p50_max_ms <= p95_max_ms <= p99_max_ms")
    if not cfg.exchange.endpoint.startswith(("ws://", "wss://")):
        problems.append(f"exchange.endpoint must be a ws:// or wss:// URL, got {cfg.exchange.endpoint!r}")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


def load_config(
    path: str | Path | None = None, *, symbol: str | None = None, depth: int | None = None
) -> RuntimeConfig:
    """Load and validate a runtime config (default: the shipped Kraken BTC/EUR one).

    ``symbol`` and ``depth`` override the file (the collector's ``--symbol``/``--depth``); they are
    validated by the exchange adapter like the file's own values.
    """
    p = Path(path) if path is not None else default_config_path()
    where = str(p)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    if symbol is not None:
        raw.setdefault("instrument", {})["symbol"] = symbol
    if depth is not None:
        raw.setdefault("feed", {})["book_depth"] = depth
    raw["source"] = where
    try:
        cfg = msgspec.convert(raw, RuntimeConfig)
    except msgspec.ValidationError as exc:
        msg = str(exc).replace("Object contains unknown field", "unknown key").replace("$.", "")
        raise ConfigError(f"{where}: {msg}") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    _check_values(cfg, where)
    _check_with_adapter(cfg, where)
    return cfg


def _check_with_adapter(cfg: RuntimeConfig, where: str) -> None:
    """Let the exchange adapter reject symbols, depths and channels it cannot serve."""
    from mm_core.adapters import adapter_class

    try:
        cls = adapter_class(cfg.exchange.adapter)
    except ValueError as exc:
        raise ConfigError(f"{where}: exchange.adapter: {exc}") from None
    validate = getattr(cls, "validate_feed", None)
    if validate is None:
        return
    try:
        validate(cfg.instrument.symbol, cfg.feed.book_depth, tuple(cfg.feed.channels))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
