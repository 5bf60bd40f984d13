"""Run one backtest: configuration in, fills/orders/counters and the PnL decomposition out.

This is the Python face of the jitted loop in :mod:`mm_core.backtest.engine_core`: it turns a
:class:`BacktestConfig` (policy object, latency model, queue model name, rate tier, fee model,
instrument rules) into the plain arrays and numbers the loop takes, times the loop alone
(``events_per_second`` is market rows per second of loop time, JIT excluded), and hands fills to
:mod:`mm_core.backtest.pnl`.

JIT cache: every kernel is ``@njit(cache=True)``, so compilation is paid once per machine (cold
process ~seconds, warm process loads machine code from ``__pycache__``). Numba invalidates a cached
function only when *its own* file changes, not when a function it calls changes in another module;
:func:`_drop_stale_jit_cache` fingerprints every source file the loop is built from and clears the
cache when any of them changed, so an edit to, say, the queue model can never run stale code.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from mm_core.backtest.fees import FeeModel, kraken_schedule
from mm_core.backtest.latency import (ConstantLatency, LatencyModel, OrderLatencyTable,
                                      capture_local_timestamps, local_timestamps)
from mm_core.backtest.queue import queue_kind
from mm_core.backtest.rate_limit import rate_tier

_HERE = Path(__file__).resolve().parent
_JIT_SOURCES = [
    _HERE / "engine_core.py", _HERE / "queue.py", _HERE / "rate_limit.py", _HERE / "event_arrays.py",
    _HERE.parent / "policy" / "kernels.py", _HERE.parent / "policy" / "baseline.py",
    _HERE.parent / "policy" / "scripted.py", _HERE.parent / "policy" / "kinds.py",
]


def _drop_stale_jit_cache() -> None:
    """Delete numba cache files of these modules when any source they are compiled from changed."""
    h = hashlib.sha256()
    for p in _JIT_SOURCES:
        try:
            h.update(p.read_bytes())
        except OSError:
            return
    stamp = _HERE / "__pycache__" / "jit-sources.sha256"
    digest = h.hexdigest()
    try:
        if stamp.is_file() and stamp.read_text() == digest:
            return
        for folder in {p.parent / "__pycache__" for p in _JIT_SOURCES}:
            if folder.is_dir():
                for f in folder.iterdir():
                    if f.suffix in (".nbi", ".nbc"):
                        f.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # read-only install: numba falls back to its user cache dir
        pass


_drop_stale_jit_cache()

from mm_core.backtest import engine_core as core  # noqa: E402  (after the cache check, on purpose)
from mm_core.backtest.event_arrays import MarketArrays  # noqa: E402
from mm_core.backtest.fair import fair_model  # noqa: E402
from mm_core.policy import BaselinePolicy, Policy  # noqa: E402


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

    @property
    def events_per_second(self) -> float:
        return self.rows / self.loop_seconds if self.loop_seconds > 0 else float("inf")

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
            "loop_seconds": self.loop_seconds,
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
    return local_timestamps(market.exch_ts, market.msg, config.latency)


def run_backtest(market: MarketArrays, config: BacktestConfig = BacktestConfig(), *,
                 local_ts: Optional[np.ndarray] = None, fair: Optional[np.ndarray] = None) -> BacktestResult:
    """Run ``config`` over ``market`` and decompose the PnL."""
    from mm_core.backtest.pnl import decompose

    if len(market) == 0:
        raise ValueError("no market rows to backtest")
    loc = local_ts_for(market, config) if local_ts is None else local_ts
    fair_series = fair_model(config.policy.fair).series(market) if fair is None else fair
    start, end = int(market.exch_ts[0]), int(market.exch_ts[-1])
    lat = order_latency(config, start, end + 10**9)
    tier = rate_tier(config.rate_tier)
    lo, n_ticks = market.tick_range
    params = config.policy.params()
    t0 = time.perf_counter()
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
    loop_s = time.perf_counter() - t0
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
    pnl = decompose(fills, market.exch_ts, fair_series, config.fees, horizons_s=config.markouts_s)
    return BacktestResult(config, fills, orders, ctr, pnl, float(xpos), float(lpos), float(rc_max), loop_s,
                          int(counters[core.C_ROWS]), market.describe())


RESULT_NAMES = {core.R_OPEN: "open", core.R_FILLED: "filled", core.R_CANCELED: "canceled",
                core.R_REJ_POST_ONLY: "rejected_post_only", core.R_REJ_RATE: "rejected_rate_limit"}
