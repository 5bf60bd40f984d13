"""``mm backtest``: one configuration over one data set -> summary, ``--json``, ``--html`` report.

Data: a collector run directory (its Parquet tables; ``--capture-ts`` replays the receipt times
the collector stamped), a Parquet folder, a prebuilt ``.npz`` of rows, or ``--sim-seconds N
--seed S`` for the offline simulator. Converted rows are cached, so the second run on the same
data starts in about a second.

Model settings (requote timer, latency, queue model, rate tier, fee tiers and 30-day volume) come
from the runtime config's ``[backtest]`` and ``[fees]`` sections; command-line flags override them.

Strategy: ``--strategy NAME`` (default: the config's ``[strategy] name``, else ``baseline``) with
its parameters from ``[strategy.<NAME>]``, then ``--param KEY=VALUE`` (and, for ``baseline``, the
``--half-spread-bps``/``--size``/``--skew-bps``/``--max-inventory`` flags); ``--calibration``
(default ``[strategy] calibration``) for ``avellaneda-stoikov`` and ``glft``. Regimes, risk limits
and requote rules come from ``[regimes]``, ``[risk]`` and ``[requote]``. An unknown strategy name is
an error that lists the known ones.

Stress (offsets in seconds from the data's start): ``--spikes START:DUR:EXTRA_MS`` (latency),
``--vol-shocks START:DUR:FACTOR``, ``--stall START:DUR``, ``--disconnect START:DUR``,
``--checksum-fault AT:RESYNC_MS``, ``--maintenance START:DUR``, ``--kill-at S`` (a manual kill).
``--json`` then carries the go/no-go keys: ``strategy``, ``regime_transitions``,
``regime_flaps``, ``risk_breaches``, ``kill_switch_events``, ``quotes_while_stale_ms``,
``decision_latency_us``, ``transitions_sha256`` (and ``telemetry``).

In-sample guard: a fair model saved by ``mm research`` carries its training window (which data,
which time span). The backtest refuses to score it on data that overlaps that window -- the same
instrument at the same time, or the same simulator seed -- and refuses model files without a
window; ``--allow-in-sample`` runs anyway and marks every output IN-SAMPLE (``--json``:
``in_sample: true``).

Trust checks: the PnL is also computed from the fills alone (``total_pnl_direct`` = cash + position
x final mark - fees) and compared with the decomposition (``pnl_identity_gap``); the summary says
"no fills: nothing to judge" when nothing traded and notes when the rate guard held back most of
the strategy's requests.

Exit code 0 when the run completed (whatever the PnL); 1 when the PnL identity check failed (the
numbers cannot be trusted); 2 on bad input or a refused in-sample run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mm_core.arg_types import non_negative_float, positive_float
from mm_core.backtest.fees import fee_model_from_spec
from mm_core.backtest.latency import Stressed, model_from_spec


def add_data_args(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    src = p.add_argument_group("data")
    if many:  # mm sweep: several run directories = many days
        src.add_argument("run_dir", nargs="*", help="run directory or Parquet folder of canonical events (several: "
                                                    "one task per day of them)")
    else:
        src.add_argument("run_dir", nargs="?", help="run directory or Parquet folder of canonical events")
    src.add_argument("--arrays", help="prebuilt rows (.npz written by a previous run's cache)")
    src.add_argument("--sim-seconds", type=positive_float, help="use N seconds (> 0) of the offline market simulator")
    src.add_argument("--seed", type=int, default=0, help="simulator seed (and latency sampling seed)")
    src.add_argument("--predictive", action=argparse.BooleanOptionalAction, default=False,
                     help="simulator book imbalance predicts moves (default: off)")
    src.add_argument("--updates-per-second", type=positive_float, default=10.0, help="simulator book message rate")
    src.add_argument("--trades-per-second", type=positive_float, default=1.0, help="simulator trade rate")
    src.add_argument("--config", help="runtime TOML for instrument rules (default: shipped BTC/EUR)")
    src.add_argument("--depth", type=int, help="book depth to truncate to (default: from the data)")
    src.add_argument("--refresh-cache", action="store_true", help="rebuild cached rows")


BASELINE_FLAGS = {"half_spread_bps": 0.5, "size": 0.001, "skew_bps": 2.0, "max_inventory": 0.01}


def add_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("strategy and exchange model")
    g.add_argument("--strategy", help="strategy name (default: config [strategy] name, else baseline)")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a strategy parameter (repeatable; over the config's [strategy.<name>])")
    g.add_argument("--calibration", help="mm calibrate output for avellaneda-stoikov / glft "
                                         "(default: config [strategy] calibration)")
    g.add_argument("--half-spread-bps", type=float, help="baseline (default: [strategy.baseline], else 0.5)")
    g.add_argument("--size", type=float, help="baseline: base units per quote (default 0.001)")
    g.add_argument("--skew-bps", type=float, help="baseline: quote shift at max inventory (default 2)")
    g.add_argument("--max-inventory", type=float, help="baseline: its own inventory limit (default 0.01)")
    g.add_argument("--fair", default="mid", help="mid, microprice, or a saved fair-model JSON")
    g.add_argument("--allow-in-sample", action="store_true",
                   help="score a research model on data overlapping its training window (or a model file "
                        "without one); every output is then marked IN-SAMPLE")
    g.add_argument("--requote-ms", type=float, help="timer of the strategy (default: config [backtest], else 100)")
    g.add_argument("--latency", help="const:MS | const:FEED,ENTRY,RESP | lognormal:FEED,ORDER,SIGMA | "
                                     "sim[:MEDIAN_MS] (the simulator's latency spells) | capture:CSV[,FACTOR] "
                                     "(default: config [backtest], else const:5)")
    g.add_argument("--latency-scale", type=non_negative_float, default=1.0, help="multiply every latency (stress)")
    g.add_argument("--capture-ts", action="store_true",
                   help="feed latency = the capture's own ts_capture - ts_exchange (real runs)")
    g.add_argument("--queue", help="risk_averse, power, log, power2, log2, power3 (default: config, else risk_averse)")
    g.add_argument("--queue-n", type=float, help="power of the power-family queue models (default 2)")
    g.add_argument("--rate-tier", help="starter, intermediate, pro, off (default: config, else starter)")
    g.add_argument("--rate-guard", type=float, default=0.9, help="share of the rate threshold the bot uses")
    g.add_argument("--fees", default="kraken",
                   help="kraken (tiers from config [fees]) | kraken:TIERS.toml | "
                        "value:MAKER%%,TAKER%% | none")
    g.add_argument("--volume-30d", type=float, help="30-day USD volume selecting the fee tier "
                                                    "(default: config fees.volume_30d_usd, else 0)")
    g.add_argument("--fee-volume-growth", choices=("off", "fill", "daily"),
                   help="the run's own traded value raises the 30-day volume: re-evaluate the tier per "
                        "fill or per UTC day (default: config fees.volume_growth, else off)")
    g.add_argument("--quote-usd", type=float, help="USD per unit of quote currency for tier volume "
                                                   "(default: config fees.quote_usd)")


def register(subparsers) -> None:
    p = subparsers.add_parser("backtest", help="event-driven market-making backtest of one configuration",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    add_config_args(p)
    add_stress_args(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--html", help="write the HTML report here")
    p.add_argument("--out", metavar="RUN_DIR", help="write fills/orders tables, the market-data reference and "
                                                    "the parameters here (a trading run directory: mm tca, "
                                                    "mm reconcile-day)")
    p.set_defaults(func=run)


def add_stress_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("stress (offsets in seconds from the data's start; comma-separated lists)")
    g.add_argument("--spikes", default="", help="latency spikes START:DUR:EXTRA_MS")
    g.add_argument("--vol-shocks", default="", help="volatility shocks START:DUR:FACTOR")
    g.add_argument("--stall", default="", help="feed stalls START:DUR (nothing arrives, no heartbeats)")
    g.add_argument("--disconnect", default="", help="disconnects START:DUR (data invalid until the resync)")
    g.add_argument("--checksum-fault", default="", help="checksum failures AT:RESYNC_MS")
    g.add_argument("--maintenance", default="", help="exchange maintenance START:DUR (then post_only 10 s)")
    g.add_argument("--kill-at", default="", help="manual kill at these offsets (the kill file, scheduled)")


def _tuples(text: str, n: int, flag: str) -> tuple:
    out = []
    for part in filter(None, (x.strip() for x in (text or "").split(","))):
        try:
            vals = tuple(float(v) for v in part.split(":"))
        except ValueError:
            vals = ()
        if len(vals) != n:
            raise ValueError(f"{flag} {part!r}: expected {n} numbers separated by ':'")
        out.append(vals if n > 1 else vals[0])
    return tuple(out)


def faults_from_args(args):
    """Injected feed faults from the stress flags (empty when none is given)."""
    from mm_core.backtest.feed_health import FeedFaults

    return FeedFaults(stalls=_tuples(getattr(args, "stall", ""), 2, "--stall"),
                      disconnects=_tuples(getattr(args, "disconnect", ""), 2, "--disconnect"),
                      checksum_faults=_tuples(getattr(args, "checksum_fault", ""), 2, "--checksum-fault"),
                      maintenance=_tuples(getattr(args, "maintenance", ""), 2, "--maintenance"),
                      kill_at=_tuples(getattr(args, "kill_at", ""), 1, "--kill-at"))


def _value(text: str):
    """A ``--param`` value: number, true/false, or text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text) if low.lstrip("+-").isdigit() else float(text)
    except ValueError:
        return text


def strategy_from_args(args):
    """The :class:`~mm_core.strategy.StrategySpec` of the run: name and calibration from the flags or
    the config's ``[strategy]``; parameters from ``[strategy.<name>]``, the baseline flags and
    ``--param`` (in that order)."""
    from mm_core.strategy import load_strategy

    cfg = runtime_config(args).strategy
    name = getattr(args, "strategy", None) or cfg.name or "baseline"
    params = dict(cfg.section(name))
    flags = {k: getattr(args, k, None) for k in BASELINE_FLAGS}
    if name == "baseline":
        for k, default in BASELINE_FLAGS.items():
            params.setdefault(k, default)
        params.update({k: v for k, v in flags.items() if v is not None})
    elif any(v is not None for v in flags.values()):
        given = ", ".join("--" + k.replace("_", "-") for k, v in flags.items() if v is not None)
        raise ValueError(f"{given} belong(s) to the baseline strategy; for {name!r} use --param KEY=VALUE "
                         f"or [strategy.{name}] in the config")
    for item in getattr(args, "param", None) or ():
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {item!r}: expected KEY=VALUE")
        params[key.strip()] = _value(val)
    params.update(getattr(args, "strategy_params", None) or {})  # a sweep's grid point
    calibration = getattr(args, "calibration", None) or cfg.calibration_path(runtime_config(args).source)
    return load_strategy(name, params, calibration=calibration, fair=getattr(args, "fair", None) or None)


def runtime_config(args):
    """The runtime TOML (``--config`` or the shipped BTC/EUR one), loaded once per ``args``."""
    from mm_core.config import load_config

    cfg = getattr(args, "_runtime_config", None)
    if cfg is None:
        cfg = load_config(args.config)
        try:
            args._runtime_config = cfg
        except AttributeError:
            pass
    return cfg


def instrument_rules(args):
    """Instrument (tick, lot, minimums) from the runtime config."""
    from mm_core.backtest.engine import InstrumentRules

    inst = runtime_config(args).make_instrument()
    return inst, InstrumentRules.from_instrument(inst)


_BUILTIN = {"requote_ms": 100.0, "latency": "const:5", "queue": "risk_averse", "queue_n": 2.0,
            "rate_tier": "starter", "volume_30d": 0.0, "fee_volume_growth": "off", "quote_usd": 1.0}


def resolved(args) -> dict[str, object]:
    """Model settings: the flag if given, else the config's ``[backtest]``/``[fees]``, else built in."""
    cfg = runtime_config(args)
    out = dict(_BUILTIN)
    if cfg.backtest is not None:
        b = cfg.backtest
        out.update(requote_ms=b.requote_ms, latency=b.latency, queue=b.queue, queue_n=b.queue_n,
                   rate_tier=b.rate_tier)
    if cfg.fees is not None:
        out.update(volume_30d=cfg.fees.volume_30d_usd, fee_volume_growth=cfg.fees.volume_growth,
                   quote_usd=cfg.fees.quote_usd)
    for k in out:
        v = getattr(args, k, None)
        if v is not None:
            out[k] = v
    return out


def config_tiers(args):
    """Fee tiers of the runtime config's ``[fees]`` (None: use the built-in Kraken table)."""
    from mm_core.backtest.fees import FeeTier

    cfg = runtime_config(args)
    if cfg.fees is None or not cfg.fees.tiers:
        return None
    return tuple(FeeTier(t.volume_usd, t.maker, t.taker) for t in cfg.fees.tiers)


def load_market(args):
    """Rows for the chosen data source, from the cache when possible."""
    from mm_core.backtest import event_arrays as ea

    inst, _ = instrument_rules(args)
    if args.arrays:
        return ea.MarketArrays.load(Path(args.arrays))
    if args.sim_seconds:
        kw = dict(updates_per_second=args.updates_per_second, trades_per_second=args.trades_per_second)
        key = ea.simulator_key(args.sim_seconds, args.seed, predictive=args.predictive,
                               depth=args.depth or 10, **kw)
        m, _, _ = ea.cached(key, lambda: ea.from_simulator(
            args.sim_seconds, args.seed, predictive=args.predictive, depth=args.depth or 10,
            tick_size=inst.tick_size, lot_size=inst.lot_size, **kw), refresh=args.refresh_cache)
        return m
    if not args.run_dir:
        raise ValueError("give a run directory, --arrays PATH or --sim-seconds N")
    key = {**ea.run_dir_key(Path(args.run_dir)), "tick": inst.tick_size, "depth": args.depth}
    m, _, _ = ea.cached(key, lambda: ea.from_run_dir(Path(args.run_dir), tick_size=inst.tick_size,
                                                     lot_size=inst.lot_size, depth=args.depth),
                        refresh=args.refresh_cache)
    return m


class InSampleRefused(ValueError):
    """The fair model was trained on this data (or cannot say on what) and the run was not allowed."""


def data_source(args, market) -> dict[str, object]:
    """The identity of the run's data, in :mod:`mm_core.research.training_window` terms."""
    from mm_core.research.training_window import market_source, run_dir_source, simulator_source

    if args.arrays:
        return market_source("unknown", market.exchange, market.symbol, Path(args.arrays))
    if args.sim_seconds:
        return simulator_source(args.seed, predictive=args.predictive, seconds=args.sim_seconds,
                                updates_per_second=args.updates_per_second,
                                trades_per_second=args.trades_per_second,
                                exchange=market.exchange, symbol=market.symbol)
    return run_dir_source(Path(args.run_dir), market.exchange, market.symbol)


def in_sample_context(args, market):
    """The run's :class:`~mm_core.backtest.report.RunContext`; raises :class:`InSampleRefused` when
    the fair model's training window overlaps the data (or is missing) without ``--allow-in-sample``."""
    from mm_core.backtest.report import RunContext
    from mm_core.research.training_window import NoTrainingWindow, overlap, read_window

    from mm_core.backtest.fair import fair_model

    allow = bool(getattr(args, "allow_in_sample", False))
    spec = getattr(args, "fair", "mid")
    fair_model(spec)  # a missing or malformed model file is bad input, said before any work
    hint = ("train on earlier data (or another simulator seed) and backtest on later data, or pass "
            "--allow-in-sample to run anyway (every output is then marked IN-SAMPLE)")
    try:
        window = read_window(Path(spec)) if spec not in ("mid", "microprice") else None
    except NoTrainingWindow as exc:
        if not allow:
            raise InSampleRefused(f"{exc}; re-run mm research to save the model with its training window, "
                                  "or pass --allow-in-sample (the result is then marked IN-SAMPLE)") from None
        return RunContext(True, f"{spec} has no training window: cannot tell, treated as in-sample")
    if window is None or len(market) == 0:
        return RunContext()
    why = overlap(window, data_source(args, market), int(market.exch_ts[0]), int(market.exch_ts[-1]))
    if why is None:
        return RunContext()
    if not allow:
        raise InSampleRefused(f"the fair model {spec} was {why}. Scoring it here would be in-sample: {hint}")
    return RunContext(True, f"{spec} was {why}")


def config_from_args(args, **overrides):
    """A :class:`BacktestConfig` from CLI arguments (``overrides`` replace single fields)."""
    from mm_core.backtest.engine import BacktestConfig
    from mm_core.strategy.requote import RequoteConfig

    _, rules = instrument_rules(args)
    r = resolved(args)
    where = f"{runtime_config(args).source} [backtest]"
    try:
        latency = model_from_spec(r["latency"], seed=args.seed)
    except ValueError as exc:
        raise ValueError(f"latency {r['latency']!r} (flag or {where}): {exc}") from None
    from mm_core.backtest.queue import NAMES
    if r["queue"] not in NAMES:
        raise ValueError(f"queue model {r['queue']!r} (flag or {where}): choose one of {', '.join(NAMES)}")
    if args.latency_scale != 1.0:
        latency = Stressed(latency, factor=args.latency_scale)
    fees = fee_model_from_spec(args.fees, volume_30d=r["volume_30d"], growth=r["fee_volume_growth"],
                               quote_usd=r["quote_usd"], tiers=config_tiers(args),
                               quote=runtime_config(args).instrument.quote)
    spikes = _tuples(getattr(args, "spikes", ""), 3, "--spikes") if hasattr(args, "kill_at") else ()
    if spikes:
        latency = Stressed(latency, spikes=spikes)
    cfg = runtime_config(args)
    kw = dict(
        strategy=strategy_from_args(args),
        latency=latency, use_capture_ts=args.capture_ts, queue=r["queue"], queue_n=r["queue_n"],
        rate_tier=r["rate_tier"], rate_guard=args.rate_guard, fees=fees, requote_ms=r["requote_ms"], rules=rules,
        regimes=cfg.regimes, risk=cfg.risk, requote=RequoteConfig.from_config(dict(cfg.requote)),
        faults=faults_from_args(args),
    )
    kw.update(overrides)
    return BacktestConfig(**kw)


def run(args) -> int:
    from mm_core.backtest.engine import run_backtest, stopwatch
    from mm_core.backtest.report import human_summary, pnl_identity, trust_summary, write_html

    t0 = time.perf_counter()
    from mm_core.config import ConfigError

    try:
        with stopwatch() as load_clock:  # data -> rows counts into run_seconds (compile apart)
            market = load_market(args)
        config = config_from_args(args)
        ctx = in_sample_context(args, market)
        shocks = _tuples(args.vol_shocks, 3, "--vol-shocks")
    except (ValueError, FileNotFoundError, ConfigError) as exc:
        print(f"mm backtest: {exc}", file=sys.stderr)
        return 2
    if shocks:
        from mm_core.backtest.stress import vol_shock

        market = vol_shock(market, list(shocks))
    if not args.json:
        d = market.describe()
        print(f"data: {d['symbol']}, {d['span_s']:,.1f} s, {d['rows']:,} rows ({d['book_rows']:,} book, "
              f"{d['trades']:,} trades, {d['messages']:,} messages), depth {d['depth']} "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    result = run_backtest(market, config)
    result.add_load(load_clock)
    if args.html:
        path = write_html(result, Path(args.html), ctx)
        if not args.json:
            print(f"report: {path}", file=sys.stderr)
    if getattr(args, "out", None):
        from mm_core.trading.session_dir import write_backtest_run

        try:
            rd = write_backtest_run(Path(args.out), result, market, args)
        except OSError as exc:
            print(f"mm backtest: cannot write {args.out}: {exc}", file=sys.stderr)
            return 2
        if not args.json:
            print(f"run directory: {rd}", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.summary(), **trust_summary(result, ctx)}, default=_json_default))
    else:
        print(human_summary(result, ctx))
    return 0 if pnl_identity(result).ok else 1


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
