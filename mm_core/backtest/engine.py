"""Run one backtest: configuration in, fills/orders/counters and the PnL decomposition out.

This is the Python face of the jitted loop in :mod:`mm_core.backtest.engine_core`: it turns a
:class:`BacktestConfig` (policy object, latency model, queue model name, rate tier, fee model,
instrument rules) into the plain arrays and numbers the loop takes, and hands fills to
:mod:`mm_core.backtest.pnl`.

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
from mm_core.backtest.fees import FeeModel, kraken_schedule  # noqa: E402
from mm_core.backtest.latency import (ConstantLatency, LatencyModel, OrderLatencyTable,  # noqa: E402
                                      capture_local_timestamps, local_timestamps)
from mm_core.backtest.queue import queue_kind  # noqa: E402
from mm_core.backtest.rate_limit import rate_tier  # noqa: E402
from mm_core.policy import BaselinePolicy, Policy  # noqa: E402


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

    policy: Policy = field(default_factory=BaselinePolicy)
    latency: LatencyModel = field(default_factory=ConstantLatency)
    use_capture_ts: bool = False  # local time = collector receipt time (real captures)
    queue: str = "risk_averse"
    queue_n: float = 2.0  # power of the power-family queue models
    rate_tier: str = "starter"
    rate_guard: float = 0.9  # the strategy spends at most this share of the threshold (live bots do)
    fees: FeeModel = field(default_factory=kraken_schedule)
    requote_ms: float = 100.0
    rules: InstrumentRules = field(default_factory=InstrumentRules)
    max_open_per_side: int = 4
    share_trades: bool = True  # our orders at one price share a trade's volume in queue order
    markouts_s: tuple[float, ...] = (1.0, 5.0, 30.0)

    def describe(self) -> dict[str, object]:
        fees = self.fees.describe() if hasattr(self.fees, "describe") else repr(self.fees)
        return {
            **self.policy.describe(),
            "latency": repr(self.latency) if not self.use_capture_ts else "capture ts_capture",
            "queue": self.queue if self.queue == "risk_averse" else f"{self.queue}(n={self.queue_n})",
            "rate_tier": self.rate_tier,
            "fees": fees,
            "requote_ms": self.requote_ms,
            "share_trades": self.share_trades,
            "rules": vars(self.rules),
        }


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
        }


COUNTER_NAMES = ("rows", "requotes", "orders_sent", "cancels_sent", "rejected_post_only",
                 "rejected_rate_limit_new", "rejected_rate_limit_cancel", "cancel_too_late", "fills",
                 "rule_skips", "accepted", "open_cap_skips", "no_book_skips", "rate_guard_skips")


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


def run_backtest(market: MarketArrays, config: BacktestConfig = BacktestConfig(), *,
                 local_ts: Optional[np.ndarray] = None, fair: Optional[np.ndarray] = None) -> BacktestResult:
    """Run ``config`` over ``market`` and decompose the PnL."""
    if len(market) == 0:
        raise ValueError("no market rows to backtest")
    with stopwatch() as sw:
        result = _run(market, config, local_ts, fair)
    result.run_seconds, result.compile_seconds = sw.run, sw.compile
    return result


def _run(market: MarketArrays, config: BacktestConfig, local_ts: Optional[np.ndarray],
         fair: Optional[np.ndarray]) -> BacktestResult:
    from mm_core.backtest.pnl import decompose

    loc = local_ts_for(market, config) if local_ts is None else local_ts
    fair_series = fair_model(config.policy.fair).series(market) if fair is None else fair
    start, end = int(market.exch_ts[0]), int(market.exch_ts[-1])
    lat = order_latency(config, start, end + 10**9)
    tier = rate_tier(config.rate_tier)
    lo, n_ticks = market.tick_range
    params = config.policy.params()
    with stopwatch() as loop_clock:  # the loop alone, its compilation apart
        oi, of, fi, fq, counters, xpos, lpos, rc_max, overflow = core.run(
            market.kind, market.side, market.tick, market.qty, market.exch_ts, loc,
            market.best_bid_tick, market.best_ask_tick, fair_series,
            np.int64(lo), np.int64(n_ticks),
            lat.ts, lat.entry, lat.response,
            np.int64(queue_kind(config.queue)), float(config.queue_n),
            float(tier.threshold), float(tier.decay_per_s), float(config.rate_guard),
            float(config.rules.lot_size), float(config.rules.min_qty), float(config.rules.min_cost),
            float(market.tick_size),
            np.int64(config.policy.kind), params,
            np.int64(round(config.requote_ms * 1e6)), np.int64(end), np.int64(config.max_open_per_side),
            np.int64(1 if config.share_trades else 0),
        )
    loop_s = loop_clock.run
    del loc  # ~8 bytes a row, not needed by the decomposition
    if overflow:
        raise RuntimeError("order/response queue overflow (more than 65536 messages in flight): "
                           "latency too large for the requote rate")
    fills = {
        "ts": fi[:, core.FI_TS].copy(),
        "local_ts": fi[:, core.FI_LOCAL].copy(),
        "order_id": fi[:, core.FI_OID].copy(),
        "side": fi[:, core.FI_SIDE].astype(np.int8),
        "price": fi[:, core.FI_TICK] * market.tick_size,
        "qty": fq.copy(),
        "maker": fi[:, core.FI_MAKER] == 1,
    }
    orders = {
        "side": oi[:, core.OI_SIDE].astype(np.int8),
        "price": oi[:, core.OI_TICK] * market.tick_size,
        "tick": oi[:, core.OI_TICK].copy(),
        "qty": of[:, core.OF_QTY].copy(),
        "filled": of[:, core.OF_FILLED].copy(),
        "submit_local_ts": oi[:, core.OI_SUBMIT_LOCAL].copy(),
        "arrive_exch_ts": oi[:, core.OI_ARRIVE_EXCH].copy(),
        "done_exch_ts": oi[:, core.OI_DONE_EXCH].copy(),
        "ack_local_ts": oi[:, core.OI_ACK_LOCAL].copy(),
        "result": oi[:, core.OI_RESULT].copy(),
        "queue_ahead_at_entry": of[:, core.OF_FRONT0].copy(),
        "queue_ahead": of[:, core.OF_FRONT].copy(),
    }
    ctr = {name: int(counters[k]) for k, name in enumerate(COUNTER_NAMES)}
    del oi, of, fi, fq  # views of the loop's (doubled) tables: free them before the decomposition
    pnl = decompose(fills, market.exch_ts, fair_series, config.fees, horizons_s=config.markouts_s)
    return BacktestResult(config, fills, orders, ctr, pnl, float(xpos), float(lpos), float(rc_max), loop_s,
                          int(counters[core.C_ROWS]), market.describe())


RESULT_NAMES = {core.R_OPEN: "open", core.R_FILLED: "filled", core.R_CANCELED: "canceled",
                core.R_REJ_POST_ONLY: "rejected_post_only", core.R_REJ_RATE: "rejected_rate_limit"}
