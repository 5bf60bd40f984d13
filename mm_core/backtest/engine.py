"""Run one backtest: configuration in, fills/orders/counters and the PnL decomposition out.

This is the Python face of the jitted loop in :mod:`mm_core.backtest.engine_core`: it turns a
:class:`BacktestConfig` (strategy spec, regimes/risk/requote configs, latency model, queue model
name, rate tier, fee model, instrument rules, injected feed faults) into the plain arrays and
numbers the loop takes, and hands fills to :mod:`mm_core.backtest.pnl` and the go/no-go figures to
:mod:`mm_core.backtest.gonogo`.

Timing (what ``mm backtest --json`` reports): ``run_seconds`` is the whole run -- data to rows (when
the caller adds it, see :meth:`BacktestResult.add_load`), fair series, loop, PnL decomposition --
with numba compilation taken out and reported apart as ``compile_seconds`` (measured from numba's
own compile events, so a cold cache shows it and a warm one shows ~0). ``events_per_second`` =
market rows / ``run_seconds``; the loop alone is ``loop_seconds``.

JIT cache: every kernel is ``@njit(cache=True)``, so compilation is paid once per machine. numba
invalidates a cached function only when *its own* file changes; :mod:`mm_core.backtest.jit_cache`
stamps the loop's cache with a digest of every file it is built from, so an edit to, say, the
queue model is never served stale machine code (and no cache file is ever deleted).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np

from mm_core.backtest import jit_cache

jit_cache.install()  # before the jitted modules below define their functions

from mm_core.backtest import engine_core as core  # noqa: E402
from mm_core.backtest.event_arrays import MarketArrays  # noqa: E402
from mm_core.backtest.fair import fair_model  # noqa: E402
from mm_core.adapters import VenueRules, default_venue, rate_counter  # noqa: E402
from mm_core.backtest.fees import FeeModel, default_fee_model  # noqa: E402
from mm_core.backtest.latency import (ConstantLatency, LatencyModel, OrderLatencyTable,  # noqa: E402
                                      capture_local_timestamps, local_timestamps)
from mm_core.backtest.queue import queue_kind  # noqa: E402
from mm_core.backtest.rate_limit import rate_tier  # noqa: E402
from mm_core.backtest import matching as mx  # noqa: E402
from mm_core.backtest.feed_health import FeedFaults, FeedTimeline, feed_timeline  # noqa: E402
from mm_core.strategy import StrategySpec, load_strategy  # noqa: E402
from mm_core.strategy import requote as rq  # noqa: E402
from mm_core.strategy.pipeline import DecisionPipeline, RegimeConfig, RiskConfig  # noqa: E402
from mm_core.strategy.requote import RequoteConfig  # noqa: E402
from mm_core.strategy.view import K_LATENCY, K_VOLATILITY, L_KIND, L_T, L_TO  # noqa: E402


def _baseline() -> StrategySpec:
    return load_strategy("baseline")


class Stopwatch:
    """Wall time of a block and the part of it numba spent compiling (cache loads are not
    compiling: they count as run time)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.compile = 0.0

    @property
    def run(self) -> float:
        return max(self.wall - self.compile, 0.0)


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """``with stopwatch() as sw: ...`` -> ``sw.wall``, ``sw.compile``, ``sw.run``."""
    from numba.core import event

    sw = Stopwatch()
    listener = event.TimingListener()
    t0 = time.perf_counter()
    with event.install_listener("numba:compile", listener):
        yield sw
    sw.wall = time.perf_counter() - t0
    sw.compile = listener.duration if listener.done else 0.0


@dataclass(frozen=True)
class InstrumentRules:
    """Order rules the venue enforces (from :class:`mm_core.instrument.Instrument`)."""

    lot_size: float = 1e-8
    min_qty: float = 0.00005
    min_cost: float = 0.5

    @classmethod
    def from_instrument(cls, inst) -> "InstrumentRules":
        return cls(inst.lot_size, inst.min_qty, inst.min_cost)


@dataclass(frozen=True)
class BacktestConfig:
    """Everything that defines one run; two runs of the same config on the same data are identical."""

    strategy: StrategySpec = field(default_factory=_baseline)
    latency: LatencyModel = field(default_factory=ConstantLatency)
    use_capture_ts: bool = False  # local time = collector receipt time (real captures)
    queue: str = "risk_averse"
    queue_n: float = 2.0  # power of the power-family queue models
    venue: VenueRules = field(default_factory=default_venue)  # fees default, rate counter, heartbeats
    rate_tier: str = "starter"  # a tier of the venue's rate counter, or off
    rate_guard: float = 0.9  # the strategy spends at most this share of the threshold (live bots do)
    fees: FeeModel = field(default_factory=default_fee_model)
    requote_ms: float = 100.0
    rules: InstrumentRules = field(default_factory=InstrumentRules)
    max_open_per_side: int = 4
    share_trades: bool = True  # our orders at one price share a trade's volume in queue order
    markouts_s: tuple[float, ...] = (1.0, 5.0, 30.0)
    regimes: object = field(default_factory=RegimeConfig)  # [regimes]
    risk: object = field(default_factory=RiskConfig)  # [risk]
    requote: RequoteConfig = field(default_factory=RequoteConfig)  # [requote]
    faults: FeedFaults = field(default_factory=FeedFaults)  # injected feed faults (stress)

    def describe(self) -> dict[str, object]:
        fees = self.fees.describe() if hasattr(self.fees, "describe") else repr(self.fees)
        out = {
            **self.strategy.describe(),
            "latency": repr(self.latency) if not self.use_capture_ts else "capture ts_capture",
            "queue": self.queue if self.queue == "risk_averse" else f"{self.queue}(n={self.queue_n})",
            "rate_tier": self.rate_tier,
            "rate_guard": self.rate_guard,
            "fees": fees,
            "requote_ms": self.requote_ms,
            "share_trades": self.share_trades,
            "rules": vars(self.rules),
            "requote": self.requote.describe(),
            "regimes": _plain(self.regimes),
            "risk": _plain(self.risk),
        }
        if self.faults.any:
            out["faults"] = self.faults.describe()
        return out


def _plain(cfg) -> object:
    if hasattr(cfg, "describe"):
        return cfg.describe()
    from dataclasses import asdict, is_dataclass

    return asdict(cfg) if is_dataclass(cfg) else repr(cfg)


@dataclass
class BacktestResult:
    config: BacktestConfig
    fills: dict[str, np.ndarray]
    orders: dict[str, np.ndarray]
    counters: dict[str, int]
    pnl: "object"  # mm_core.backtest.pnl.PnL
    position: float
    local_position: float
    max_rate_counter: float
    loop_seconds: float
    rows: int
    market: dict[str, object]
    run_seconds: float = 0.0  # whole run, numba compilation excluded
    compile_seconds: float = 0.0  # numba compilation inside the run
    load_seconds: float = 0.0  # data -> rows (part of run_seconds when the caller added it)
    log: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.int64))  # transitions (view.L_*)
    timeline: Optional[FeedTimeline] = None
    decision_ns: np.ndarray = field(default_factory=lambda: np.zeros(0))  # sampled decision latencies
    span: tuple[int, int] = (0, 0)  # first/last exchange timestamp of the data
    gonogo: dict = field(default_factory=dict)  # mm_core.backtest.gonogo.evaluate
    trace: Optional[tuple] = None  # (int rows, float rows) of the pipeline calls, when asked for

    @property
    def events_per_second(self) -> float:
        """Market rows per second of the whole run (compilation excluded)."""
        return self.rows / self.run_seconds if self.run_seconds > 0 else float("inf")

    @property
    def loop_events_per_second(self) -> float:
        return self.rows / self.loop_seconds if self.loop_seconds > 0 else float("inf")

    def add_load(self, sw: Stopwatch) -> None:
        """Count the data loading timed by ``sw`` into the run (``mm backtest`` does)."""
        self.load_seconds = sw.run
        self.run_seconds += sw.run
        self.compile_seconds += sw.compile

    def summary(self) -> dict[str, object]:
        """The machine-readable result (``mm backtest --json``)."""
        p = self.pnl
        return {
            "total_pnl": p.total,
            "spread_capture": p.spread_capture,
            "adverse_selection": p.adverse_selection,
            "inventory_pnl": p.inventory_pnl,
            "fees": p.fees,
            "fills": int(self.fills["qty"].shape[0]),
            "events_per_second": self.events_per_second,
            "rows": self.rows,
            "run_seconds": self.run_seconds,
            "compile_seconds": self.compile_seconds,
            "load_seconds": self.load_seconds,
            "loop_seconds": self.loop_seconds,
            "loop_events_per_second": self.loop_events_per_second,
            "volume_base": p.volume_base,
            "volume_quote": p.volume_quote,
            "final_position": self.position,
            "markouts": p.markouts,
            "adverse_by_horizon": p.adverse_by_horizon,
            "max_drawdown": p.max_drawdown,
            "worst_hour": p.worst_hour,
            "worst_day": p.worst_day,
            "expected_shortfall_hourly_95": p.expected_shortfall_hourly,
            "counters": self.counters,
            "max_rate_counter": self.max_rate_counter,
            "config": self.config.describe(),
            "market": self.market,
            **self.gonogo,
        }


COUNTER_NAMES = ("rows", "requotes", "orders_sent", "cancels_sent", "rejected_post_only",
                 "rejected_rate_limit_new", "rejected_rate_limit_cancel", "cancel_too_late", "fills",
                 "rule_skips", "accepted", "open_cap_skips", "no_book_skips", "rate_guard_skips",
                 "amends_sent", "amended", "amend_rejected_rate_limit", "amend_rejected_post_only",
                 "amend_too_late", "rejected_market", "deadband_holds", "min_rest_holds", "risk_pulls",
                 "stale_decisions", "timer_decisions", "status_decisions", "deadline_decisions", "quote_changes")


def _counters(st, PI) -> dict[str, int]:
    c, X = st.counters, st.X
    vals = (c[core.C_ROWS], PI[rq.PI_DECISIONS], c[core.C_NEW], c[core.C_CANCEL], X[mx.X_REJ_POST_ONLY],
            X[mx.X_REJ_RATE_NEW], X[mx.X_REJ_RATE_CANCEL], X[mx.X_CANCEL_TOO_LATE], X[mx.X_N_FILLS],
            PI[rq.PI_RULE_SKIPS], X[mx.X_ACCEPTED], PI[rq.PI_OPEN_CAP_SKIPS], c[core.C_NO_BOOK_SKIPS],
            PI[rq.PI_RATE_SKIPS], c[core.C_AMEND], c[core.C_AMENDED], X[mx.X_REJ_RATE_AMEND],
            X[mx.X_REJ_POST_ONLY_AMEND], X[mx.X_AMEND_TOO_LATE], X[mx.X_REJ_MARKET], PI[rq.PI_DEADBAND_HOLDS],
            PI[rq.PI_MIN_REST_HOLDS], PI[rq.PI_PULLS], PI[rq.PI_STALE], c[core.C_TIMER],
            c[core.C_STATUS_DECISIONS], c[core.C_DEADLINE_DECISIONS], PI[rq.PI_QUOTE_CHANGES])
    return {name: int(v) for name, v in zip(COUNTER_NAMES, vals)}


def order_latency(config: BacktestConfig, start_ns: int, end_ns: int) -> OrderLatencyTable:
    return config.latency.order_table(start_ns, end_ns)


def local_ts_for(market: MarketArrays, config: BacktestConfig) -> np.ndarray:
    """Strategy-visible times: the collector's receipt times, or exchange time + feed latency."""
    if config.use_capture_ts:
        return capture_local_timestamps(market.exch_ts, market.capture_ts)
    if type(config.latency) is ConstantLatency:
        # exchange times never decrease, so in-order delivery of a constant delay is just a shift:
        # the same values as the general path without its ~60 MB of day-sized temporaries
        return market.exch_ts + np.int64(round(config.latency.feed_ms * 1_000_000))
    return local_timestamps(market.exch_ts, market.msg, config.latency)


def _state_at(log: np.ndarray, kind: int, initial: int, ts: np.ndarray) -> np.ndarray:
    """The state of regime machine ``kind`` in force at each time of ``ts`` (int8 codes), from the log."""
    rows = log[log[:, L_KIND] == kind]
    states = np.concatenate([[initial], rows[:, L_TO]]).astype(np.int8)
    return states[np.searchsorted(rows[:, L_T], ts, side="right")]


def maker_fee_rate(fees: FeeModel) -> float:
    """The fee model's maker fee per unit of traded value at the start (the strategy's own estimate
    for its equity; the PnL uses the full model on the fills)."""
    one = np.ones(1)
    return float(fees.fees(one, one, np.ones(1, bool))[0])


def new_pipeline(config: BacktestConfig, tick_size: float) -> DecisionPipeline:
    """The decision pipeline's arrays for ``config`` (the loop's order table has 256 rows)."""
    r = config.rules
    return DecisionPipeline(config.strategy, regimes=config.regimes, risk=config.risk, requote=config.requote,
                            tick=tick_size, lot=r.lot_size, min_qty=r.min_qty, min_cost=r.min_cost,
                            rate=rate_counter(config.venue, config.rate_tier), rate_guard=config.rate_guard, max_open_per_side=config.max_open_per_side,
                            max_orders=256)


def run_backtest(market: MarketArrays, config: Optional[BacktestConfig] = None, *,
                 local_ts: Optional[np.ndarray] = None, fair: Optional[np.ndarray] = None,
                 trace: int = 0) -> BacktestResult:
    """Run ``config`` over ``market`` and decompose the PnL. ``trace`` > 0 records that many pipeline
    calls (:data:`engine_core.TR_KIND` ...) in ``result.trace`` (tests replay them through the
    Python-callable pipeline). ``config`` None = :class:`BacktestConfig` defaults (built per call:
    its fee schedule is read from the shipped config, never at import)."""
    if config is None:
        config = BacktestConfig()
    if len(market) == 0:
        raise ValueError("no market rows to backtest")
    with stopwatch() as sw:
        result = _run(market, config, local_ts, fair, trace)
    result.run_seconds, result.compile_seconds = sw.run, sw.compile
    return result


def _run(market: MarketArrays, config: BacktestConfig, local_ts: Optional[np.ndarray],
         fair: Optional[np.ndarray], trace: int = 0) -> BacktestResult:
    from mm_core.backtest.gonogo import evaluate
    from mm_core.backtest.pnl import decompose

    loc = local_ts_for(market, config) if local_ts is None else local_ts
    timeline = feed_timeline(market.exch_ts, market.msg, loc, market.kind, config.faults)
    loc = timeline.local_ts
    fair_series = fair_model(config.strategy.fair).series(market) if fair is None else fair
    start, end = int(market.exch_ts[0]), int(market.exch_ts[-1])
    lat = order_latency(config, start, end + 10**9)
    tier = rate_tier(rate_counter(config.venue, config.rate_tier))
    lo, n_ticks = market.tick_range
    pipe = new_pipeline(config, float(market.tick_size))
    run_core = core.run_core_for(config.strategy, queue_kind(config.queue))
    market_cols = (market.kind, market.side, market.tick, market.qty, market.exch_ts, loc,
                   market.best_bid_tick, market.best_ask_tick, market.best_bid_qty, market.best_ask_qty,
                   fair_series)
    exchange = (np.int64(queue_kind(config.queue)), float(config.queue_n), float(tier.threshold),
                float(tier.decay_per_s), tier.costs, float(config.rules.lot_size), maker_fee_rate(config.fees))
    feed = (timeline.conf_local, timeline.conf_exch, timeline.st_ts, timeline.st_kind, timeline.st_a,
            timeline.st_v, timeline.bm_local, timeline.bm_age_ms)
    arrays = (pipe.V, pipe.ORD, pipe.P, pipe.ST, pipe.OUT, pipe.RS, pipe.RC, pipe.KS, pipe.KC, pipe.QC, pipe.PF,
              pipe.PI, pipe.LOG, pipe.ACT)
    with stopwatch() as loop_clock:  # the loop alone, its compilation apart
        c0 = core.read_cycles()
        t0 = time.perf_counter()
        st, LOG = core.run(market_cols, np.int64(n_ticks), np.int64(lo), (lat.ts, lat.entry, lat.response),
                           exchange, arrays, feed, np.int64(round(config.requote_ms * 1e6)), np.int64(end),
                           np.int64(1 if config.share_trades else 0), run_core, int(trace))
        cycles = int(core.read_cycles()) - int(c0)
        wall = time.perf_counter() - t0
    loop_s = loop_clock.run
    ns_per_cycle = wall * 1e9 / max(cycles, 1)  # calibrates the cycle counter (compile time included: a ratio)
    if st.S[core.S_OVERFLOW]:
        raise RuntimeError("order/response queue overflow (more than 65536 messages in flight): "
                           "latency too large for the requote rate")
    n_o, n_f = int(st.S[core.S_N_ORDERS]), int(st.X[mx.X_N_FILLS])
    oi, of, fi, fq = st.oi[:n_o], st.of[:n_o], st.fi[:n_f], st.fq[:n_f]
    fills = {
        "ts": fi[:, mx.FI_TS].copy(),
        "local_ts": fi[:, mx.FI_LOCAL].copy(),
        "order_id": fi[:, mx.FI_OID].copy(),
        "side": fi[:, mx.FI_SIDE].astype(np.int8),
        "price": fi[:, mx.FI_TICK] * market.tick_size,
        "qty": fq.copy(),
        "maker": fi[:, mx.FI_MAKER] == 1,
    }
    orders = {
        "side": oi[:, mx.OI_SIDE].astype(np.int8),
        "price": oi[:, mx.OI_TICK] * market.tick_size,
        "tick": oi[:, mx.OI_TICK].copy(),
        "qty": of[:, mx.OF_QTY].copy(),
        "filled": of[:, mx.OF_FILLED].copy(),
        "submit_local_ts": oi[:, core.OI_SUBMIT_LOCAL].copy(),
        "arrive_exch_ts": oi[:, mx.OI_ARRIVE_EXCH].copy(),
        "done_exch_ts": oi[:, mx.OI_DONE_EXCH].copy(),
        "ack_local_ts": oi[:, core.OI_ACK_LOCAL].copy(),
        "cancel_sent_local_ts": oi[:, core.OI_CANCEL_SENT].copy(),
        "amends": oi[:, mx.OI_N_AMENDS].copy(),
        "result": oi[:, mx.OI_RESULT].copy(),
        "queue_ahead_at_entry": of[:, mx.OF_FRONT0].copy(),
        "queue_ahead": of[:, mx.OF_FRONT].copy(),
    }
    log = LOG[:int(pipe.PI[rq.PI_N_LOG])].copy()
    fills["lat_regime"] = _state_at(log, K_LATENCY, 0, fills["ts"])
    fills["vol_regime"] = _state_at(log, K_VOLATILITY, 1, fills["ts"])
    n_lat = int(min(st.S[core.S_LAT_N], st.lat.shape[0]))
    pnl = decompose(fills, market.exch_ts, fair_series, config.fees, horizons_s=config.markouts_s)
    result = BacktestResult(config, fills, orders, _counters(st, pipe.PI), pnl, float(st.XF[mx.XF_POS]),
                            float(st.F[core.F_LPOS]), float(st.XF[mx.XF_RC_MAX]), loop_s,
                            int(st.counters[core.C_ROWS]), market.describe(),
                            log=log, timeline=timeline,
                            decision_ns=st.lat[:n_lat] * ns_per_cycle, span=(start, end))
    result.gonogo = evaluate(result)
    if trace:
        n_tr = int(st.S[core.S_N_TRACE])
        result.trace = (st.tr_i[:n_tr].copy(), st.tr_f[:n_tr].copy())
    return result


RESULT_NAMES = {mx.RES_OPEN: "open", mx.RES_FILLED: "filled", mx.RES_CANCELED: "canceled",
                mx.RES_REJ_POST_ONLY: "rejected_post_only", mx.RES_REJ_RATE: "rejected_rate_limit",
                mx.RES_REJ_MARKET: "rejected_market_status"}
