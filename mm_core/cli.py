"""The ``mm`` command: one entry point, one subcommand per job.

Subcommand modules are imported only when used, so ``mm --help`` and light commands start fast and
a missing optional dependency of one command cannot break the others. Each module exposes
``register(subparsers)``, which adds its parser and sets ``func`` (``args -> exit code``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# subcommand -> (module, one-line help). Order = order in `mm --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mm_core.demo", "offline end-to-end demo on the local exchange simulator"),
    "collect": ("mm_core.capture.collector", "capture a live feed (BBO/L2/trades) into a run directory"),
    "replay": ("mm_core.replay", "run a recorded capture through the adapter and book; summarize"),
    "repair": ("mm_core.store.repair", "rebuild a killed run's missing Parquet from its raw archive"),
    "simexchange": ("mm_core.simexchange.server", "local Kraken-v2-speaking exchange simulator on 127.0.0.1"),
    "fit-sim": ("mm_core.simexchange.fit", "fit the simulator's market to a capture; write a profile"),
    "realism": ("mm_core.realism", "book/trade statistics of a capture or the simulator, side by side with tolerances"),
    "qa": ("mm_core.quality", "data-quality checks of a capture file (PASS/WARN/FAIL)"),
    "analyze": ("mm_core.latency", "feed-latency analysis of a capture file"),
    "gate": ("mm_core.gate", "24-hour decision gate over a run directory (PROCEED / FIX-AND-RERUN)"),
    "daily": ("mm_core.daily", "export per-day latency percentiles and QA status"),
    "research": ("mm_core.research.command", "features, fair-mid models scored out of sample, HTML report"),
    "backtest": ("mm_core.backtest.command", "event-driven market-making backtest of one configuration"),
    "sweep": ("mm_core.backtest.sweep", "parameter/stress grid of backtests in parallel processes"),
    "calibrate": ("mm_core.strategy.calibrate", "fit fill intensity A, kappa and volatility sigma for the strategies"),
    "kill": ("mm_core.strategy.kill_file", "manual kill switch: a running trader pulls every quote"),
    "query": ("mm_core.store.query", "SQL over the Parquet store on DuckDB (one table per event type)"),
    "tca": ("mm_core.trading.tca", "transaction-cost analysis of trading run directories (markouts, fees, fill rate)"),
    "reconcile-day": ("mm_core.trading.reconcile_day", "compare a session with its backtest replay order by order"),
    "incidents": ("mm_core.trading.incidents", "incident review: list, show, annotate, close"),
    "rollout-check": ("mm_core.trading.rollout", "Phase 5 go/no-go on recorded sessions (PROCEED / NOT YET)"),
    "paper": ("mm_core.trading.paper", "paper trading: the live trader with simulated fills (offline with --sim-seconds)"),
    "live": ("mm_core.trading.live", "live trading on Kraken with hard caps (refuses to start without them)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only`` set, just that subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="mm",
        description="mm_core: capture, verify, analyze and (soon) trade crypto market data.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if only is None and exc.name and exc.name.startswith("mm_core"):
                sub.add_parser(name, help=f"{help_text} (not available: {exc.name} missing)")
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
