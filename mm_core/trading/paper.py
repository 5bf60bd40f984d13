"""``mm paper``: paper trading -- the live runner with simulated fills, never a real order.

What "paper" means here, precisely (both modes run the *same* trader as ``mm live``: collector,
decision pipeline, order manager with reconciliation, state persisted across restarts):

- ``mm paper --sim-seconds N``: everything offline. The local simulator is started in a child process
  with its private side (``mm simexchange --private``); the trader takes market data from its public
  socket and trades over the venue's private protocol against its private side -- REST token with a
  signed request, authenticated WebSocket, executions and balances streams, the dead man's switch --
  with the venue's trading client that ``mm live`` uses (``VenueRules.connect_trading``). The
  simulator fills orders with the backtest's matching and queue model against its own market, and
  ``--faults`` injects public and private faults. So this mode is ``mm live`` against the simulator:
  the order manager, reconciliation and the dead man's switch are exercised for real.
- ``mm paper --config TOML --out RUN_DIR``: market data from the configured exchange's public feed
  (the config's venue), fills simulated in-process by the simulator's account
  (:class:`~mm_core.simexchange.paper_venue.PaperVenue`: the same matching and queue model, fed the
  rows the trader receives, with the order latency measured on this connection's ping/pong). No
  key, no private connection, no dead man's switch (nothing to lose a connection to).

Output: the run directory (``mm tca``, ``mm reconcile-day``, ``mm incidents``, ``mm rollout-check``
read it) and a summary; ``--json`` has ``orders``, ``fills``, ``position``, ``pnl``,
``reconcile_differences`` (the exit reconciliation: 0 = the trader's book is the venue's),
``reconcile_differences_total``, ``open_orders_at_exit``, ``risk_breaches``, ``dead_man_refreshes``
and more. Exit codes: 0 done, 1 the session failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from mm_core.trading import session_args as sa


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("paper", help="paper trading: the live trader with simulated fills (offline with --sim-seconds)",
                       description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="Modes: --sim-seconds N (offline: the simulator, public and private side, faults with "
                              "--faults) or --config TOML (the configured exchange's public feed, fills simulated "
                              "in-process). Stop with Ctrl+C (every order is cancelled first); mm kill RUN_DIR pulls "
                              "every quote.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sim-seconds", type=float, help="run N seconds against the local simulator (offline)")
    p.add_argument("--config", type=Path, help="runtime config TOML (default: the shipped BTC/EUR one)")
    p.add_argument("--out", type=Path, help="run directory (default: a new temp folder with --sim-seconds; "
                   "required otherwise). Restarting into the same directory continues the session")
    g = p.add_argument_group("simulator (--sim-seconds)")
    g.add_argument("--seed", type=int, default=7, help="simulator seed")
    g.add_argument("--faults", default="", metavar="SPEC",
                   help="simulator faults, public and private (see mm simexchange --help)")
    g.add_argument("--latency-median-ms", type=float, default=8.0, help="simulator one-way latency median")
    g.add_argument("--no-latency-spells", action="store_true", help="no degraded/unsafe latency spells")
    g.add_argument("--balances", default="BTC=1,EUR=100000", help="starting balances at the venue")
    g.add_argument("--profile", help="simulator market profile (mm simexchange --profile), when it has one")
    sa.add_strategy_args(p)
    sa.add_session_args(p)
    p.add_argument("--reconcile-every-s", type=float, default=300.0, help="periodic reconciliation interval")
    p.set_defaults(func=run)


def _sim_args(args: argparse.Namespace, run_dir: Path, maker_fee: float, tier: str, depth: int, queue: str,
              seconds: float) -> list[str]:
    a = ["--seed", str(args.seed), "--private", "--api-key-file", str(run_dir / "sim-key.toml"),
         "--log", str(run_dir / "simulator.jsonl"), "--no-log-messages", "--max-seconds", str(seconds + 120),
         "--latency-median-ms", str(args.latency_median_ms), "--balances", args.balances,
         "--maker-fee-pct", repr(maker_fee * 100), "--rate-tier", tier, "--private-depth", str(depth),
         "--private-queue", queue]
    if args.no_latency_spells:
        a.append("--no-latency-spells")
    if args.faults:
        a += ["--faults", args.faults]
    if args.profile:
        a += ["--profile", args.profile]
    return a


def run(args: argparse.Namespace) -> int:
    from mm_core.config import ConfigError, load_config

    if args.sim_seconds is None and args.out is None:
        print("mm paper: give --sim-seconds N (offline, on the simulator) or --out RUN_DIR (with --config: the "
              "configured exchange's public feed)", file=sys.stderr)
        return 2
    if args.sim_seconds is not None and args.sim_seconds <= 0:
        print("mm paper: --sim-seconds must be > 0", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        bt_cfg, ns = sa.build_backtest_config(args)
        from mm_core.trading.market_view import fair_function

        fair_function(args.fair)
        if args.faults:
            from mm_core.simexchange.faults import FaultPlan

            FaultPlan.parse(args.faults)
    except (ConfigError, ValueError) as exc:
        print(f"mm paper: {exc}", file=sys.stderr)
        return 2
    run_dir = args.out or Path(tempfile.mkdtemp(prefix="mm-paper-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.sim_seconds is not None:
        return _run_sim(args, cfg, bt_cfg, ns, run_dir)
    return _run_feed(args, cfg, bt_cfg, ns, run_dir)


def _spec(args: argparse.Namespace, cfg: Any, bt_cfg: Any, ns: argparse.Namespace, run_dir: Path, feed_url: str,
          venue_factory: Any, max_seconds: Optional[float]) -> Any:
    from mm_core.backtest.command import resolved
    from mm_core.trading.runner import RunnerConfig
    from mm_core.trading.session import SessionSpec

    r = resolved(ns)
    rc = RunnerConfig(symbol=cfg.symbol, tick=cfg.instrument.tick_size, lot=cfg.instrument.lot_size,
                      requote_ms=float(r["requote_ms"]), fair=args.fair, decide_on_book=args.decide_on_book,
                      source="paper")
    params = {**bt_cfg.describe(), "requote_ms": float(r["requote_ms"])}
    return SessionSpec(run_dir=run_dir, source="paper", config=cfg, feed_url=feed_url, venue_factory=venue_factory,
                       pipeline_factory=sa.pipeline_factory(bt_cfg, cfg.instrument.tick_size), runner_config=rc,
                       max_seconds=max_seconds, metrics_port=args.metrics_port,
                       reconcile_every_s=args.reconcile_every_s, quiet=args.quiet or args.json,
                       progress=not (args.quiet or args.json) and sys.stderr.isatty(),
                       backtest_args=sa.replay_args(ns, run_dir), params=params)


def _run_sim(args: argparse.Namespace, cfg: Any, bt_cfg: Any, ns: argparse.Namespace, run_dir: Path) -> int:
    from mm_core.backtest.command import resolved
    from mm_core.backtest.engine import maker_fee_rate
    from mm_core.simexchange.server import spawn_process
    from mm_core.trading.session import run_session

    r = resolved(ns)
    try:
        sim = spawn_process(_sim_args(args, run_dir, maker_fee_rate(bt_cfg.fees), str(r["rate_tier"]),
                                      cfg.feed.book_depth, str(r["queue"]), float(args.sim_seconds)))
    except RuntimeError as exc:
        print(f"mm paper: {exc}", file=sys.stderr)
        return 1
    try:
        venue_factory = _venue_on_sim(cfg, run_dir, sim.private_url, sim.rest_url)
        spec = _spec(args, cfg, bt_cfg, ns, run_dir, sim.url, venue_factory, float(args.sim_seconds))
        if not args.json:
            print(f"paper trading on the local simulator ({sim.url}, private side {sim.private_url}) for "
                  f"{args.sim_seconds:.0f} s into {run_dir}", file=sys.stderr, flush=True)
        summary = run_session(spec)
    finally:
        sim.stop()
    summary["simulator_log"] = str(run_dir / "simulator.jsonl")
    sa.print_summary(summary, args.json)
    return 1 if summary.get("fatal_error") else 0


def _venue_on_sim(cfg: Any, run_dir: Path, ws_url: str, rest_url: str):
    """The venue's trading client on the simulator's private side, with the simulator's test key."""
    from mm_core.adapters import trading_rules

    venue = trading_rules(cfg.exchange.name)

    def make(session: Any) -> Any:
        creds = venue.load_credentials(run_dir / "sim-key.toml", env={})
        return venue.connect_trading(creds, symbol=cfg.symbol, instrument=cfg.make_instrument(),
                                     nonce_file=run_dir / "nonce", ws_url=ws_url, rest_url=rest_url)

    return make


def _run_feed(args: argparse.Namespace, cfg: Any, bt_cfg: Any, ns: argparse.Namespace, run_dir: Path) -> int:
    from mm_core.backtest.command import resolved
    from mm_core.backtest.engine import maker_fee_rate
    from mm_core.backtest.queue import queue_kind
    from mm_core.backtest.rate_limit import rate_tier
    from mm_core.simexchange.account import AccountConfig
    from mm_core.simexchange.paper_venue import PaperVenue
    from mm_core.trading.session import run_session

    r = resolved(ns)
    inst = cfg.instrument
    from mm_core.adapters import rate_counter, venue_rules

    tier = rate_tier(rate_counter(venue_rules(cfg.exchange.name), str(r["rate_tier"])))
    balances = []
    for part in args.balances.split(","):
        asset, _, value = part.partition("=")
        balances.append((asset.strip(), float(value)))
    account = AccountConfig(symbol=cfg.symbol, base=inst.base, quote=inst.quote, tick_size=inst.tick_size,
                            lot_size=inst.lot_size, price_precision=inst.price_precision,
                            qty_precision=inst.qty_precision, min_qty=inst.min_qty, min_cost=inst.min_cost,
                            balances=tuple(balances), maker_fee=maker_fee_rate(bt_cfg.fees),
                            rate_threshold=tier.threshold, rate_decay=tier.decay_per_s,
                            queue_kind=queue_kind(str(r["queue"])), queue_n=float(r["queue_n"]),
                            depth=cfg.feed.book_depth)

    def venue_factory(session: Any) -> Any:
        return PaperVenue(account, exchange=cfg.exchange.name, instruments={cfg.symbol: cfg.make_instrument()})

    spec = _spec(args, cfg, bt_cfg, ns, run_dir, cfg.exchange.endpoint, venue_factory, args.max_seconds)
    if not args.json:
        print(f"paper trading on {cfg.exchange.endpoint} (fills simulated in-process) into {run_dir}; "
              "Ctrl+C to stop", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    summary = run_session(spec)
    summary["wall_s"] = round(time.monotonic() - t0, 3)
    sa.print_summary(summary, args.json)
    return 1 if summary.get("fatal_error") else 0
