"""Command-line arguments and session parts shared by ``mm paper`` and ``mm live``.

The strategy flags are the backtest's own (same names, same meaning, same defaults from the
config), and the decision pipeline is built by the backtest's own builder
(:func:`mm_core.backtest.engine.new_pipeline` over :func:`mm_core.backtest.command.config_from_args`),
so a session and ``mm backtest`` with the same flags run the same strategy, regimes, risk and
requote rules. The flags a session was started with are saved in ``session.json`` as
``backtest_args`` -- the replay ``mm reconcile-day`` runs -- together with the market data the
session recorded (``run_dir = "market"``), its own receipt times (``capture_ts``) and the order
latency it measured request by request (``latency = "measured:RUN_DIR/order_latency.csv"``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Optional

# backtest flags a session takes (dest names of mm backtest's parser)
STRATEGY_FLAGS = ("strategy", "param", "calibration", "half_spread_bps", "size", "skew_bps", "max_inventory", "fair",
                  "requote_ms", "queue", "queue_n", "rate_tier", "rate_guard", "fees", "volume_30d")


def add_strategy_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("strategy (as mm backtest; defaults from the config)")
    g.add_argument("--strategy", help="strategy name (default: config [strategy] name, else baseline)")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy parameter (repeatable; overrides [strategy.<name>])")
    g.add_argument("--calibration", help="mm calibrate output for avellaneda-stoikov / glft")
    g.add_argument("--half-spread-bps", type=float, help="baseline: half spread (default: config, else 0.5)")
    g.add_argument("--size", type=float, help="baseline: base units per quote (default 0.001)")
    g.add_argument("--skew-bps", type=float, help="baseline: quote shift at max inventory (default 2)")
    g.add_argument("--max-inventory", type=float, help="baseline: its own inventory limit (default 0.01)")
    g.add_argument("--fair", default="mid", help="mid, microprice or linear_imbalance:BETA (default mid)")
    g.add_argument("--requote-ms", type=float, help="decision timer (default: config [backtest], else 100)")
    g.add_argument("--queue", help="queue model of the simulated fills (default: config, else risk_averse)")
    g.add_argument("--queue-n", type=float, help="power of the power-family queue models (default 2)")
    g.add_argument("--rate-tier", help="the venue's rate-counter tier, e.g. starter, intermediate, pro (default: config)")
    g.add_argument("--rate-guard", type=float, default=0.9, help="share of the rate threshold the bot uses (0.9)")
    g.add_argument("--fees", default="venue", help="fee schedule (as mm backtest; default: the venue's one schedule)")
    g.add_argument("--volume-30d", type=float, help="30-day USD volume selecting the fee tier (default: config)")


def backtest_namespace(args: argparse.Namespace) -> argparse.Namespace:
    """mm backtest's arguments at their defaults, with this session's strategy flags and config."""
    from mm_core.trading.session_dir import backtest_parser_defaults

    ns = backtest_parser_defaults()
    for k in STRATEGY_FLAGS:
        if hasattr(args, k):
            setattr(ns, k, getattr(args, k))
    ns.config = str(args.config) if getattr(args, "config", None) else None
    ns.depth = None
    return ns


def build_backtest_config(args: argparse.Namespace) -> tuple[Any, argparse.Namespace]:
    """(BacktestConfig, its namespace) for the session's flags; ValueError on bad input."""
    from mm_core.backtest.command import config_from_args

    ns = backtest_namespace(args)
    return config_from_args(ns), ns


def replay_args(ns: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """``backtest_args`` of ``session.json``: the flags that replay this session (see the module doc)."""
    from mm_core.trading.session import LATENCY_NAME, MARKET_DIR
    from mm_core.trading.session_dir import replay_args as bt_replay_args

    out = bt_replay_args(ns)
    out.update(run_dir=MARKET_DIR, sim_seconds=None, arrays=None, capture_ts=True,
               latency=f"measured:{(Path(run_dir) / LATENCY_NAME).resolve()}", allow_in_sample=True)
    return out


def pipeline_factory(bt_cfg: Any, tick: float, risk: Optional[Any] = None):
    """A function building the backtest's decision pipeline (risk tightened to caps when given)."""
    from mm_core.backtest.engine import new_pipeline

    cfg = dataclasses.replace(bt_cfg, risk=risk) if risk is not None else bt_cfg
    return lambda: new_pipeline(cfg, tick)


def add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-seconds", type=float, help="stop (cancelling everything) after this many seconds")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port (opt-in)")
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--decide-on-book", action="store_true",
                   help="also decide right after every book message (reactive quoting; the backtest "
                        "cannot replay this mode decision by decision)")


def print_summary(summary: dict[str, Any], as_json: bool) -> None:
    import json

    if as_json:
        print(json.dumps(summary, default=str), flush=True)
        return
    s = summary
    print(f"{s['source']} session {s['run_dir']}: {s['duration_s']:.0f} s, {s['orders']} orders "
          f"({s['amends']} amends, {s['cancels']} cancels), {s['fills']} fills, position {s['position']:+.8f}, "
          f"pnl {s['pnl']:+.4f}, reconcile differences at exit {s['reconcile_differences']} "
          f"(during the session {s['reconcile_differences_total']}), open orders at exit "
          f"{s['open_orders_at_exit']}, risk breaches {s['risk_breaches']}, dead man's switch refreshes "
          f"{s['dead_man_refreshes']}, exit: {s['exit_reason']}", flush=True)
