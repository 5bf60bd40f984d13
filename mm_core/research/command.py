"""``mm research``: features, feature QA, fair-mid models scored out of sample, HTML report.

Data: ``--data DIR`` (a collector run directory or its ``parquet/`` folder), ``--recording FILE``
(a raw feed archive / cryptofeed capture / SDK fixture, through the Kraken adapters), or
``--sim-seconds N [--seed S] [--no-predictive]`` (the simulator, offline, no sockets; add
``--sim-out DIR`` to also keep the generated run directory).

Model files: the final models are fitted on all of the data and saved with their training window
(``trained.source``: which data -- simulator seed and profile, or capture/recording and instrument
-- and ``trained.from_ts``/``to_ts``). ``mm backtest`` refuses to score a model on data that
overlaps its window (same instrument and time, or the same simulator seed) unless given
``--allow-in-sample``: backtest on later data or another seed.

Many days: ``--data DIR DIR ...`` or ``--store ROOT [--from DAY] [--to DAY]`` run one study per
(exchange, symbol, date) partition, each on the worker that reads it -- a process pool, or Dask with
``--scheduler local|tcp://HOST:8786`` -- and judge GO only when every day is GO
(:mod:`mm_core.research.days`).

Exit status: 0 = GO, 1 = NO-GO (including "feature QA failed, refused to fit"), 2 = unusable input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

from mm_core.progress import TaskBar

if TYPE_CHECKING:  # the heavy modules (numba, polars) load only when the command runs: `mm --help` stays fast
    from mm_core.research.book_frames import EventColumns
    from mm_core.research.study import StudyResult

CLOCKS = ("exchange", "capture")  # = mm_core.research.book_frames.CLOCKS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mm research`` to the ``mm`` command."""
    p = subparsers.add_parser(
        "research", help="features, fair-mid models scored out of sample, HTML report",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("run_dirs", type=Path, nargs="*", metavar="RUN_DIR",
                   help="collector run directories, as with every command (the same as --data)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, nargs="+", metavar="DIR",
                     help="collector run directory (or its parquet/ folder); several: one study per day")
    src.add_argument("--store", type=Path, metavar="ROOT",
                     help="store root (run directories or Parquet folders below it): one study per day")
    src.add_argument("--recording", type=Path, metavar="FILE", help="recorded raw feed (replayed through the adapter)")
    src.add_argument("--sim-seconds", type=float, metavar="N", help="generate N seconds of simulator data instead")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    p.add_argument("--predictive", action=argparse.BooleanOptionalAction, default=True,
                   help="simulator book imbalance predicts moves; --no-predictive: no edge exists (default: on)")
    p.add_argument("--sim-out", type=Path, metavar="DIR", help="also write the simulated run directory here")
    p.add_argument("--symbol", help="symbol to study (default: the one with the most book data)")
    p.add_argument("--clock", choices=CLOCKS, default="exchange", help="event time: exchange (default) or capture stamps")
    p.add_argument("--tick-size", type=float, help="price tick (default: inferred from the book prices)")
    p.add_argument("--step-ms", type=int, default=100, help="clock-grid step in ms (default 100)")
    p.add_argument("--horizons", default="1,5", help="comma-separated horizons in seconds (default 1,5)")
    p.add_argument("--blocks", type=int, default=5, help="walk-forward blocks (default 5)")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level of the verdict (default 0.01)")
    p.add_argument("--out", type=Path, default=Path("research-report.html"), help="HTML report path")
    p.add_argument("--models", type=Path, metavar="DIR", help="where to write the model files (default: <out>-models/)")
    p.add_argument("--json", action="store_true", help="print the metrics table (and verdict, QA) as one JSON object")
    days = p.add_argument_group("many days (--store or several --data)")
    days.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (inclusive)")
    days.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (inclusive)")
    from mm_core.store.partitions import add_scheduler_args

    add_scheduler_args(p)
    p.set_defaults(func=run)


def _fold_counter(say: Callable[[str], None], bar: TaskBar) -> Callable[[str], None]:
    """The study's progress messages; each finished walk-forward fold also moves the bar."""
    def progress(msg: str) -> None:
        if bar.enabled and ": fold " in msg:
            bar.step()
            return  # the bar says it (a printed line would break the bar)
        say(msg)
    return progress


def _load(args: argparse.Namespace, say) -> tuple["EventColumns", float | None, dict[str, Any]]:
    """The data, its tick size (None: infer) and its identity for the models' training window."""
    from mm_core.research.book_frames import ResearchDataError, columns_from_parquet, columns_from_recording
    from mm_core.research.training_window import market_source, run_dir_source, simulator_source

    if args.sim_seconds is not None:
        from mm_core.research.sim_data import SIM_TICK_SIZE, sim_columns, write_sim_run
        from mm_core.simexchange.market import MarketParams

        if not args.sim_seconds > 0:
            raise ResearchDataError("--sim-seconds must be > 0")
        predictive = args.predictive
        say(f"simulating {args.sim_seconds:g} s (seed {args.seed}, {'predictive' if predictive else 'no'} imbalance edge)")
        defaults = MarketParams()  # the rates sim_events runs with
        source = simulator_source(args.seed, predictive=predictive, seconds=args.sim_seconds,
                                  updates_per_second=defaults.updates_per_second,
                                  trades_per_second=defaults.trades_per_second)
        if args.sim_out is not None:
            write_sim_run(args.sim_out, args.sim_seconds, args.seed, predictive, progress=say)
            return columns_from_parquet(args.sim_out, clock=args.clock), args.tick_size or SIM_TICK_SIZE, source
        return sim_columns(args.sim_seconds, args.seed, predictive), args.tick_size or SIM_TICK_SIZE, source
    if args.recording is not None:
        say(f"replaying {args.recording}")
        cols = columns_from_recording(args.recording, symbol=args.symbol, clock=args.clock)
        return cols, args.tick_size, market_source("recording", cols.exchange, cols.symbol, args.recording)
    say(f"reading {args.data}")
    cols = columns_from_parquet(args.data, symbol=args.symbol, clock=args.clock)
    return cols, args.tick_size, run_dir_source(args.data, cols.exchange, cols.symbol)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def format_text(res: "StudyResult") -> str:
    """The human summary printed without ``--json``."""
    lines = [f"{res.exchange} {res.symbol}: {res.n_book:,} book messages, {res.n_trades:,} trades, "
             f"{(res.ts_to - res.ts_from) / 3.6e12:.2f} h, tick {res.tick_size:g}",
             f"feature QA: {'PASS' if res.qa.passed else 'FAIL'}"]
    lines += [f"  - {r}" for r in res.qa.reasons]
    if res.evaluation is not None:
        lines.append(f"  {'model':13s} {'h':>4s} {'RMSE':>8s} {'gain%':>7s} {'hit':>6s} {'slope':>6s} {'DM p':>9s}")
        for s in res.evaluation.scores:
            hit = f"{s.hit_rate:.3f}" if s.hit_rate is not None else "-"
            slope = f"{s.calib_slope:.2f}" if s.calib_slope is not None else "-"
            p = f"{s.dm_p:.2g}" if s.dm_p is not None else "-"
            lines.append(f"  {s.model:13s} {s.horizon_s:4g} {s.rmse:8.4f} {s.mse_gain_pct:7.2f} {hit:>6s} {slope:>6s} {p:>9s}")
    lines.append(f"verdict: {res.verdict.label}")
    lines += [f"  - {r}" for r in res.verdict.reasons]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """``mm research``: 0 = GO, 1 = NO-GO, 2 = unusable input (the message says why)."""
    from mm_core.research.evaluation import stderr_progress
    from mm_core.research.report import render_html
    from mm_core.research.study import StudyConfig, run_study, save_models

    say = stderr_progress
    given = [x for x in (args.data, args.store, args.recording, args.sim_seconds) if x is not None]
    if args.run_dirs and given:
        print("mm research: give the data once: RUN_DIR..., --data, --store, --recording or --sim-seconds",
              file=sys.stderr)
        return 2
    if args.run_dirs:
        args.data = list(args.run_dirs)
    elif not given:
        print("mm research: no data: mm research RUN_DIR... (or --store, --recording, --sim-seconds)", file=sys.stderr)
        return 2
    try:
        horizons = tuple(float(h) for h in str(args.horizons).split(",") if h.strip())
        if not horizons or any(h <= 0 for h in horizons):
            raise ValueError
    except ValueError:
        print(f"mm research: --horizons must be positive seconds, e.g. 1,5 (got {args.horizons!r})", file=sys.stderr)
        return 2
    if args.blocks < 2 or args.step_ms <= 0 or not 0 < args.alpha < 1:
        print("mm research: need --blocks >= 2, --step-ms > 0 and 0 < --alpha < 1", file=sys.stderr)
        return 2
    if args.store is not None or len(args.data or ()) > 1:
        from mm_core.research.days import run_days

        return run_days(args, horizons)
    if args.data is not None:
        args.data = args.data[0]
    t0 = time.perf_counter()
    try:
        cols, tick, source = _load(args, say)
        cfg = StudyConfig(step_ms=args.step_ms, horizons=horizons, n_blocks=args.blocks, alpha=args.alpha)
        with TaskBar("research folds", len(horizons) * (args.blocks - 1), not args.json, unit="folds") as bar:
            res = run_study(cols, cfg, tick_size=tick, progress=_fold_counter(say, bar))
    except (ValueError, OSError) as exc:  # ResearchDataError is a ValueError; both name the input
        print(f"mm research: {exc}", file=sys.stderr)
        return 2
    if res.models:
        models_dir = args.models or args.out.with_name(args.out.stem + "-models")
        save_models(res, models_dir, data_source=source)
    res.timings["total"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_html(res), encoding="utf-8")
    say(f"report written to {args.out}")
    if args.json:
        sys.stdout.write(json.dumps(_clean({**res.to_dict(), "report": str(args.out), "training_source": source})) + "\n")
    else:
        sys.stdout.write(format_text(res))
        sys.stdout.write(f"report: {args.out}\n")
    return 0 if res.verdict.go else 1
