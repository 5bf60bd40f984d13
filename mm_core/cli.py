"""The ``mm`` command: one entry point, one subcommand per job.

Subcommand modules are imported only when used, so ``mm --help`` and light commands start fast and
a missing optional dependency of one command cannot break the others. Each module exposes
``register(subparsers)``, which adds its parser and sets ``func`` (``args -> exit code``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

# subcommand -> (module, one-line help). Order = order in `mm --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mm_core.demo", "offline end-to-end demo on the local exchange simulator"),
    "collect": ("mm_core.capture.collector", "capture a live feed (BBO/L2/trades) into a run directory"),
    "replay": ("mm_core.replay", "run a recorded capture through the adapter and book; summarize"),
    "repair": ("mm_core.store.repair", "rebuild a killed run's missing Parquet from its raw archive"),
    "simexchange": ("mm_core.simexchange.server", "local exchange simulator (venue dialects) on 127.0.0.1"),
    "fit-sim": ("mm_core.simexchange.fit", "fit the simulator's market to a capture; write a profile"),
    "realism": ("mm_core.realism", "book/trade statistics of a capture or the simulator, side by side with tolerances"),
    "qa": ("mm_core.quality", "data-quality checks of a capture file (PASS/WARN/FAIL)"),
    "analyze": ("mm_core.latency", "feed-latency analysis of a capture file"),
    "gate": ("mm_core.gate", "24-hour decision gate over a run directory (PROCEED / FIX-AND-RERUN)"),
    "daily": ("mm_core.daily", "export per-day latency percentiles and QA status"),
    "research": ("mm_core.research.command", "features, fair-mid models scored out of sample, HTML report"),
    "composite": ("mm_core.research.composite", "composite fair mid of two venues (lead-lag, staleness), scored out of sample"),
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
    "live": ("mm_core.trading.live", "live trading on the configured venue with hard caps (refuses to start without them)"),
}


# one example per command, shown at the end of its --help (paths are the user's own)
EXAMPLES: dict[str, str] = {
    "demo": "mm demo --seconds 45 --out demo-runs",
    "paper": "mm paper --sim-seconds 60 --out runs/paper1",
    "live": "mm live --config my-live.toml --out runs/live1",
    "composite": "mm composite runs/day1/venueA-BTC-EUR runs/day1/venueB-BTC-EUR --tick 0.1",
    "collect": "mm collect --symbol BTC/EUR --out runs/day1/samples.csv --max-seconds 86400",
    "replay": "mm replay runs/day1/raw/raw-00000.jsonl.gz",
    "repair": "mm repair runs/day1",
    "simexchange": "mm simexchange --port 8765 --seed 1",
    "fit-sim": "mm fit-sim runs/day1 --out profile.toml",
    "realism": "mm realism runs/day1 --vs sim",
    "qa": "mm qa runs/day1/samples.csv --strict",
    "analyze": "mm analyze runs/day1/samples.csv --plot latency.png",
    "gate": "mm gate runs/day1",
    "daily": "mm daily runs/day1 runs/day2 --out daily.csv",
    "research": "mm research --data runs/day1 --out research.html",
    "backtest": "mm backtest runs/day1 --fair microprice --latency const:5",
    "sweep": "mm sweep runs/day1 runs/day2 --spreads 0.1,0.2,0.5",
    "calibrate": "mm calibrate runs/day1 --out params.json",
    "kill": "mm kill --status",
    "query": "mm query --store runs/day1 \"select count(*) from top_of_book\"",
    "tca": "mm tca trading/session1",
    "reconcile-day": "mm reconcile-day trading/session1",
    "incidents": "mm incidents list trading/session1",
    "rollout-check": "mm rollout-check trading/",
    # subcommands of a command: "COMMAND SUB"
    "incidents list": "mm incidents list trading/session1",
    "incidents show": "mm incidents show trading/session1 1",
    "incidents annotate": "mm incidents annotate trading/session1 1 --note \"feed stalled\"",
    "incidents close": "mm incidents close trading/session1 1 --cause \"ISP outage\" --action \"second line\"",
    "incidents review": "mm incidents review trading/session1 trading/session2",
    "incidents scan": "mm incidents scan trading/session1",
}


class _ShowDefaults(argparse.HelpFormatter):
    """Appends ``(default: X)`` to a flag's help unless the text already says its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if action.default is None or action.default == []:
            return text
        if action.default is False or action.default is True:
            if action.nargs == 0 and not isinstance(action, argparse.BooleanOptionalAction):
                return text  # a plain switch: off unless given
            return f"{text} (default: {'on' if action.default else 'off'})"
        return f"{text} (default: %(default)s)"


def _polish(parser: argparse.ArgumentParser, example: str | None, path: str = "") -> None:
    """Every command's help shows defaults and ends with an example; nested subcommands too."""
    base = parser.formatter_class
    if base is argparse.HelpFormatter:
        base = argparse.RawDescriptionHelpFormatter  # keep the example's line breaks
    if isinstance(base, type) and not issubclass(base, _ShowDefaults):
        parser.formatter_class = type(f"Show{base.__name__}", (_ShowDefaults, base), {})
    if example and "example" not in (parser.epilog or "").lower():
        parser.epilog = f"{parser.epilog}\n\n" if parser.epilog else ""
        parser.epilog += f"example:\n  {example}"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                key = f"{path} {name}".strip()
                _polish(child, EXAMPLES.get(key), key)


def _version() -> str:
    from mm_core import __version__

    return f"mm_core {__version__}"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only`` set, just that subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="mm",
        description="mm_core: capture, verify, analyze and (soon) trade crypto market data.",
        epilog="example:\n  mm demo\n\nmm COMMAND --help shows a command's flags, defaults and an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version(), help="print the version and exit")
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
        _polish(sub.choices[name], EXAMPLES.get(name), name)
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
    except BrokenPipeError:  # output piped into `head` & co. that stopped reading: not an error to report
        try:
            sys.stdout = open(os.devnull, "w")  # the interpreter's final flush must not fail again
        except OSError:
            pass
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
