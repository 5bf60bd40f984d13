"""Runtime configuration: one TOML file per exchange/pair under ``config/``.

Loaded into typed, frozen structs and validated on load. Errors name the file, the key path and
what to do (unknown keys, wrong types, out-of-range values, an unknown venue or an adapter of another
venue, and symbols the venue's adapter rejects). Nothing downstream reads raw TOML.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import msgspec

from mm_core.adapters import DEFAULT_CONFIG_NAME
from mm_core.instrument import Instrument
from mm_core.strategy.regimes import RegimeConfig
from mm_core.strategy.risk import RiskConfig

class ConfigError(ValueError):
    """A runtime config is missing, unreadable or invalid; the message says where and why."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ExchangeConfig(_Strict):
    name: str
    adapter: str
    endpoint: str
    rest_endpoint: str = ""  # REST base URL, for venues whose books are seeded from REST snapshots


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
    writer_queue_max: int = 100_000  # items (~1 per frame) waiting for the writer thread
    snapshot_verify_s: float = 60.0  # venues without a checksum: compare the book with a fresh snapshot this often


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
    # clock check (mm_core/clock_skew.py): the offset must provably lie within +/- this bound
    clock_offset_max_ms: float = 15.0
    clock_min_estimates: int = 5  # ping/pong estimates needed before the offset can be trusted
    clock_agreement_min_share: float = 0.8  # share of estimates that must admit one common offset


class InstrumentConfig(_Strict):
    """The pair's trading rules: written here, or read from the venue's published rules
    (``rules_file``, e.g. a saved instrument-channel snapshot), or both -- then they must agree."""

    symbol: str
    price_precision: int
    qty_precision: int
    tick_size: float
    lot_size: float
    min_qty: float
    min_cost: float = 0.0
    base: str = ""
    quote: str = ""
    rules_file: str = ""  # relative paths are relative to the config file


class FeeTierConfig(_Strict):
    """One row of the spot fee schedule: from ``volume_usd`` of 30-day volume upwards, in percent."""

    volume_usd: float
    maker: float  # percent; negative = rebate
    taker: float


class FeesConfig(_Strict):
    """The venue's fee schedule and where the account sits on it (``mm backtest``)."""

    tiers: tuple[FeeTierConfig, ...] = ()
    volume_30d_usd: float = 0.0
    volume_growth: str = "off"  # off | fill | daily: the run's own volume moves the tier
    quote_usd: float = 1.0  # USD per unit of quote currency, for tier volume


class BacktestDefaults(_Strict):
    """Defaults of ``mm backtest``/``mm sweep``; command-line flags override them."""

    requote_ms: float = 100.0
    latency: str = "const:5"  # same syntax as --latency
    queue: str = "risk_averse"  # risk_averse, power, log, power2, log2, power3
    queue_n: float = 2.0
    rate_tier: str = "starter"


class StrategyConfig(_Strict):
    """``[strategy]``: which strategy runs, its calibration file, and one sub-table per strategy.

    ``[strategy.<name>]`` tables land in ``sections`` and are validated by that strategy's
    ``Params.from_config`` (unknown keys, ranges) without the calibration, which is read only when a
    strategy is loaded to run (a missing calibration file must not stop ``mm collect``).
    """

    name: str = "baseline"  # --strategy overrides
    calibration: str = ""  # `mm calibrate` output; relative paths are relative to the config file
    sections: dict[str, dict[str, Any]] = {}

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))

    def calibration_path(self, config_source: Optional[str]) -> Optional[Path]:
        """The calibration file as a path (None when not configured)."""
        if not self.calibration:
            return None
        p = Path(self.calibration)
        if not p.is_absolute() and config_source:
            p = Path(config_source).parent / p
        return p


class TcaConfig(_Strict):
    """``mm tca``: confidence intervals and the volatility buckets (mm_core/trading/tca.py)."""

    cluster_s: float = 60.0  # fills within one block of max(cluster_s, horizon) are one cluster
    min_clusters: int = 5  # fewer independent clusters: no interval is printed
    confidence: float = 0.95
    vol_window_s: float = 300.0  # trailing window of the realised vol that defines the buckets
    vol_bucket_quantiles: tuple[float, ...] = (0.5, 0.8)  # low < q50 <= mid < q80 <= high (time share)
    vol_bucket_edges_bp: tuple[float, ...] = ()  # fixed edges in bp/sqrt(s) instead of quantiles
    worst_fills: int = 20


class IncidentsConfig(_Strict):
    """Incident store and the detectors run over an event log (mm_core/trading/incidents.py)."""

    join_window_s: float = 300.0  # the same fault again within this window joins the open incident
    window_before_s: float = 300.0  # telemetry saved around an incident
    window_after_s: float = 300.0
    disconnect_storm_count: int = 3  # same defaults as [risk] disconnect_count / _window_s
    disconnect_storm_window_s: float = 300.0
    checksum_burst_count: int = 3  # as [risk] checksum_failure_count / _window_s
    checksum_burst_window_s: float = 60.0
    clock_skew_max_ms: float = 100.0  # as [risk] clock_skew_max_ms


class RolloutConfig(_Strict):
    """Phase 5 go/no-go of ``mm rollout-check`` (bounds chosen before seeing any session)."""

    min_days: float = 14.0
    min_uptime_share: float = 0.99
    max_open_incidents: int = 0
    max_risk_breaches: int = 0
    volatile_bucket: str = "high"
    adverse_horizon_s: float = 30.0
    max_adverse_bps_volatile: float = 3.0
    min_fills_volatile: int = 200
    markout_horizon_s: float = 5.0
    max_markout_diff_bps: float = 1.0
    min_fill_match_rate: float = 0.95


class LiveConfig(_Strict):
    """``[live]``: what ``mm live`` needs besides the strategy -- hard caps, endpoints, key file.

    No cap has a default: ``mm live`` refuses to start until every one is written here (the shipped
    config has no ``[live]`` section on purpose)."""

    max_order_qty: Optional[float] = None  # base units per order
    max_notional: Optional[float] = None  # quote currency per order
    max_inventory: Optional[float] = None  # base units, |position| incl. resting orders on the growing side
    max_daily_loss: Optional[float] = None  # quote currency since the UTC day's start -> HALTED
    max_order_rate: Optional[float] = None  # order actions (new/amend/cancel) per second
    key_file: str = ""  # TOML with api_key/api_secret, mode 0600; relative to this file; else the environment
    private_url: str = ""  # authenticated trading socket; "" = the venue's
    rest_url: str = ""  # REST base; "" = the venue's
    warmup_s: float = 30.0  # orders go out validate-only this long after the start
    reconcile_every_s: float = 300.0
    id_prefix: str = "mm"

    CAPS = ("max_order_qty", "max_notional", "max_inventory", "max_daily_loss", "max_order_rate")

    def missing_caps(self) -> list[str]:
        return [c for c in self.CAPS if getattr(self, c) is None]


class RuntimeConfig(_Strict):
    exchange: ExchangeConfig
    instrument: InstrumentConfig
    feed: FeedConfig = FeedConfig()
    latency: LatencyConfig = LatencyConfig()
    gate: GateConfig = GateConfig()
    fees: Optional[FeesConfig] = None
    backtest: Optional[BacktestDefaults] = None
    strategy: StrategyConfig = StrategyConfig()
    regimes: RegimeConfig = RegimeConfig()  # [regimes.latency|volatility|market], validated in its module
    risk: RiskConfig = RiskConfig()  # [risk]
    requote: dict[str, Any] = {}  # [requote]: mm_core.strategy.requote.RequoteConfig, validated on load
    tca: TcaConfig = TcaConfig()
    incidents: IncidentsConfig = IncidentsConfig()
    rollout: RolloutConfig = RolloutConfig()
    live: Optional[LiveConfig] = None  # [live]: mm live's caps (absent = mm live refuses to start)
    source: Optional[str] = None

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    def make_instrument(self) -> Instrument:
        fields = msgspec.structs.asdict(self.instrument)
        fields.pop("rules_file")
        return Instrument(exchange=self.exchange.name, **fields)


def default_config_path() -> Path:
    """The shipped default config: ``config/`` of a checkout, else the copy inside the package."""
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
                 "flush_interval_s", "reconnect_budget_window_s", "snapshot_verify_s"):
        if getattr(f, name) <= 0:
            problems.append(f"feed.{name} must be > 0")
    if f.writer_queue_max < 2:
        problems.append("feed.writer_queue_max must be >= 2")
    if f.reconnect_max_s < f.reconnect_base_s:
        problems.append("feed.reconnect_max_s must be >= feed.reconnect_base_s")
    if not 0 < lat.normal_max_ms < lat.degraded_max_ms:
        problems.append("latency: need 0 < normal_max_ms < degraded_max_ms")
    if not 0 <= g.unsafe_share_max <= 1 or not 0 <= g.min_uptime_share <= 1:
        problems.append("gate: shares must be between 0 and 1")
    if not 0 < g.p50_max_ms <= g.p95_max_ms <= g.p99_max_ms:
        problems.append("gate: need 0 < p50_max_ms <= p95_max_ms <= p99_max_ms")
    if g.clock_offset_max_ms <= 0:
        problems.append("gate.clock_offset_max_ms must be > 0")
    for name in ("min_hours", "min_samples", "unsafe_ms", "max_gap_s", "reconnect_loop_count",
                 "reconnect_loop_window_s"):
        if getattr(g, name, 1) <= 0:
            problems.append(f"gate.{name} must be > 0")
    if g.clock_min_estimates < 1:
        problems.append("gate.clock_min_estimates must be >= 1")
    if not 0 < g.clock_agreement_min_share <= 1:
        problems.append("gate.clock_agreement_min_share must be in (0, 1]")
    if cfg.fees is not None:
        fe = cfg.fees
        vols = [t.volume_usd for t in fe.tiers]
        if fe.tiers and (vols != sorted(vols) or len(set(vols)) != len(vols) or vols[0] != 0):
            problems.append("fees.tiers must start at volume_usd = 0 and increase strictly")
        if any(not -1.0 < t.maker < 5.0 or not 0.0 <= t.taker < 5.0 for t in fe.tiers):
            problems.append("fees.tiers: maker/taker are percent (e.g. 0.25), maker in (-1, 5), taker in [0, 5)")
        if fe.volume_30d_usd < 0:
            problems.append("fees.volume_30d_usd must be >= 0")
        if fe.volume_growth not in ("off", "fill", "daily"):
            problems.append(f"fees.volume_growth must be off, fill or daily, got {fe.volume_growth!r}")
        if fe.quote_usd <= 0:
            problems.append("fees.quote_usd must be > 0")
    if cfg.backtest is not None:
        b = cfg.backtest
        if b.requote_ms <= 0:
            problems.append("backtest.requote_ms must be > 0")
        if b.queue_n <= 0:
            problems.append("backtest.queue_n must be > 0")
    problems += _trading_analysis_problems(cfg)
    if cfg.exchange.rest_endpoint and not cfg.exchange.rest_endpoint.startswith(("http://", "https://")):
        problems.append(f"exchange.rest_endpoint must be an http:// or https:// URL, got {cfg.exchange.rest_endpoint!r}")
    if cfg.live is not None:
        lv = cfg.live
        for c in lv.CAPS:
            v = getattr(lv, c)
            if v is not None and not (0 < v < float("inf")):
                problems.append(f"live.{c} must be > 0 and finite")
        if lv.warmup_s < 0 or lv.reconcile_every_s <= 0:
            problems.append("live.warmup_s must be >= 0 and live.reconcile_every_s > 0")
    if not cfg.exchange.endpoint.startswith(("ws://", "wss://")):
        problems.append(f"exchange.endpoint must be a ws:// or wss:// URL, got {cfg.exchange.endpoint!r}")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


def _trading_analysis_problems(cfg: RuntimeConfig) -> list[str]:
    """Ranges of [tca], [incidents] and [rollout]."""
    problems: list[str] = []
    t, i, r = cfg.tca, cfg.incidents, cfg.rollout
    if t.cluster_s <= 0 or t.vol_window_s <= 0:
        problems.append("tca.cluster_s and tca.vol_window_s must be > 0")
    if t.min_clusters < 2:
        problems.append("tca.min_clusters must be >= 2")
    if not 0.5 < t.confidence < 1:
        problems.append("tca.confidence must be between 0.5 and 1")
    qs = list(t.vol_bucket_quantiles)
    if not qs or qs != sorted(qs) or len(set(qs)) != len(qs) or not all(0 < q < 1 for q in qs):
        problems.append("tca.vol_bucket_quantiles must increase strictly inside (0, 1)")
    es = list(t.vol_bucket_edges_bp)
    if es and (es != sorted(es) or len(set(es)) != len(es) or es[0] <= 0):
        problems.append("tca.vol_bucket_edges_bp must be positive and increase strictly")
    if t.worst_fills < 0:
        problems.append("tca.worst_fills must be >= 0")
    for name in ("join_window_s", "disconnect_storm_window_s", "checksum_burst_window_s", "clock_skew_max_ms"):
        if getattr(i, name) <= 0:
            problems.append(f"incidents.{name} must be > 0")
    if i.window_before_s < 0 or i.window_after_s < 0:
        problems.append("incidents.window_before_s/window_after_s must be >= 0")
    if i.disconnect_storm_count < 1 or i.checksum_burst_count < 1:
        problems.append("incidents: storm counts must be >= 1")
    if r.min_days <= 0 or not 0 <= r.min_uptime_share <= 1 or not 0 <= r.min_fill_match_rate <= 1:
        problems.append("rollout: min_days > 0, shares between 0 and 1")
    if r.max_adverse_bps_volatile < 0 or r.max_markout_diff_bps < 0:
        problems.append("rollout: bounds in bp must be >= 0")
    if r.adverse_horizon_s not in (1.0, 5.0, 30.0, 300.0) or r.markout_horizon_s not in (1.0, 5.0, 30.0, 300.0):
        problems.append("rollout: horizons must be one of TCA's (1, 5, 30, 300 s)")
    return problems


def load_config(
    path: str | Path | None = None, *, symbol: str | None = None, depth: int | None = None
) -> RuntimeConfig:
    """Load and validate a runtime config (default: the shipped one, ``DEFAULT_CONFIG_NAME``).

    ``symbol`` and ``depth`` override the file (the collector's ``--symbol``/``--depth``); they are
    validated by the exchange adapter like the file's own values.
    """
    p = Path(path) if path is not None else default_config_path()
    where = str(p)
    raw = _read_raw(p, ())
    if symbol is not None:
        raw.setdefault("instrument", {})["symbol"] = symbol
    if depth is not None:
        raw.setdefault("feed", {})["book_depth"] = depth
    raw["source"] = where
    _merge_rules_file(raw, p, where)
    if isinstance(raw.get("strategy"), dict):  # [strategy.<name>] sub-tables -> sections
        st = raw["strategy"]
        raw["strategy"] = {**{k: v for k, v in st.items() if not isinstance(v, dict)},
                           "sections": {k: v for k, v in st.items() if isinstance(v, dict)}}
    try:
        cfg = msgspec.convert(raw, RuntimeConfig)
    except msgspec.ValidationError as exc:
        msg = str(exc).replace("Object contains unknown field", "unknown key").replace("$.", "")
        raise ConfigError(f"{where}: {msg}") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    _check_values(cfg, where)
    _check_strategy(cfg.strategy, where)
    _check_requote(cfg.requote, where)
    _check_with_adapter(cfg, where)
    return cfg


_RULE_FIELDS = ("price_precision", "qty_precision", "tick_size", "lot_size", "min_qty", "min_cost", "base", "quote")


def _merge_rules_file(raw: dict[str, Any], path: Path, where: str) -> None:
    """Fill ``[instrument]`` from ``rules_file`` (read by the venue); every value given in both places
    must agree, else one loud error listing each difference (a config silently overriding the
    exchange's rules, or the reverse, would quote or size orders the exchange rejects)."""
    inst = raw.get("instrument")
    if not isinstance(inst, dict) or not inst.get("rules_file"):
        return
    from mm_core.adapters import venue_rules

    rules = Path(str(inst["rules_file"]))
    if not rules.is_absolute():
        rules = path.parent / rules
    name = raw.get("exchange", {}).get("name") if isinstance(raw.get("exchange"), dict) else None
    try:
        published = venue_rules(str(name)).instruments_from_file(rules)
    except ValueError as exc:
        raise ConfigError(f"{where}: instrument.rules_file: {exc}") from None
    symbol = inst.get("symbol")
    if symbol not in published:
        raise ConfigError(f"{where}: instrument.rules_file {rules} has no pair {symbol!r}")
    theirs = published[symbol]
    differ = []
    for key in _RULE_FIELDS:
        value = getattr(theirs, key)
        if key in inst:
            mine = inst[key]
            same = mine == value if isinstance(value, str) else (
                isinstance(mine, (int, float)) and abs(float(mine) - float(value)) <= 1e-12 * max(1.0, abs(value)))
            if not same and not (isinstance(value, str) and not value):
                differ.append(f"{key} = {mine!r} here but {value!r} in {rules.name}")
        elif not (isinstance(value, str) and not value):
            inst[key] = value
    if differ:
        raise ConfigError(f"{where}: [instrument] disagrees with the venue's published rules "
                          f"({rules}): " + "; ".join(differ) + ". Fix the config (or drop the key to use "
                          "the published value), or point rules_file at current rules.")


def _read_raw(p: Path, seen: tuple[str, ...]) -> dict[str, Any]:
    """The TOML of ``p``; with ``extends = "OTHER.toml"`` (relative to ``p``) laid over that file:
    tables merge key by key, values here win. Lets a small file change a few settings of the
    shipped config (e.g. a paper rehearsal's ``[risk] resume = "auto"``) without copying it."""
    where = str(p)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{where}: extends must be the path of another config file")
    bp = Path(base) if Path(base).is_absolute() else p.parent / base
    if str(bp.resolve()) in seen or len(seen) > 8:
        raise ConfigError(f"{where}: extends {base!r} loops back to a file that extends it")
    return _merge(_read_raw(bp, seen + (str(p.resolve()),)), raw)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _strategy_module(name: str) -> Any:
    """The module of strategy ``name`` (``StrategyNotFound``, a ``ValueError``, lists the known names)."""
    from mm_core.strategy.registry import strategy_module

    return strategy_module(name)


def _check_strategy(st: StrategyConfig, where: str) -> None:
    """The strategy name exists and every ``[strategy.<name>]`` table is valid for its strategy."""
    for name in [st.name, *st.sections]:
        try:
            module = _strategy_module(name)
            if module is not None and name in st.sections:
                from_config = getattr(module.Params, "from_config", None)
                if from_config is not None:
                    from_config(st.section(name))
                else:
                    module.Params(**st.section(name))
        except (ValueError, TypeError) as exc:
            label = "strategy.name" if name == st.name and name not in st.sections else f"strategy.{name}"
            raise ConfigError(f"{where}: {label}: {exc}") from None


def _check_requote(section: dict[str, Any], where: str) -> None:
    from mm_core.strategy.requote import RequoteConfig

    try:
        RequoteConfig.from_config(dict(section))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_with_adapter(cfg: RuntimeConfig, where: str) -> None:
    """The venue exists, the adapter is one of its own, the rate tier is one of its tiers, and the
    adapter accepts the symbol, depth and channels."""
    from mm_core.adapters import adapter_class, rate_counter, venue_rules

    try:
        venue = venue_rules(cfg.exchange.name)
    except ValueError as exc:
        raise ConfigError(f"{where}: exchange.name: {exc}") from None
    if cfg.exchange.adapter not in venue.adapters:
        raise ConfigError(f"{where}: exchange.adapter: {cfg.exchange.adapter!r} is not an adapter of "
                          f"{venue.name}; choose one of {', '.join(venue.adapters)}")
    if cfg.backtest is not None:
        try:
            rate_counter(venue, cfg.backtest.rate_tier)
        except ValueError as exc:
            raise ConfigError(f"{where}: backtest.rate_tier: {exc}") from None
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
