"""``mm sweep`` over many days: one task per (parameter set, scenario, day), walk-forward by day.

Input: several run directories (``mm sweep runs/d1 runs/d2 ...``) or a store root and a date range
(``--store runs --from 2026-01-01 --to 2026-01-07``); both become the list of (exchange, symbol,
date) partitions below them (:mod:`mm_core.store.partitions`). One instrument per sweep.

Walk-forward by whole days: the first ``round(--select-share x days)`` days (at least one, and at
least one left) are the *selection days*, the rest the *report days*. Every parameter set runs the
base scenario on every selection day; the set with the highest base PnL summed over the selection
days -- among sets with at least ``--min-fills`` fills there in total -- is selected. Every set runs
every scenario on every report day, and the checks judge the selected set's report-day totals,
exactly as in a single-run sweep. Stress offsets (``--spikes``, ``--vol-shocks``) count from the
start of *each* report day.

Each day runs on its own, starting flat (no position carried over midnight) with the book as it
stood at the day's first message (:mod:`mm_core.backtest.days`). Aggregates per (set, scenario,
period): PnL and its parts, fills and counters summed over the days; the worst UTC day and worst
hour over all days; ES5 % hourly over the pooled hourly PnLs; max drawdown = the largest within
one day (days are separate runs, so there is no drawdown across midnight to measure).

Tasks carry paths, partition keys and parameters; the workers read the day's Parquet parts
themselves, so this client never loads market rows and the same run works on a Dask cluster
whose workers see the store at the same path (``docs/scaleout.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

_SUM = ("total_pnl", "spread_capture", "adverse_selection", "inventory_pnl", "fees", "total_pnl_direct", "fills",
        "requotes", "orders_sent", "cancels_sent", "rate_guard_skips")
TIMING_KEYS = ("events_per_second",)
"""Per-task keys that measure this machine, not the market: the only ones that differ between runs."""


def split_days(n: int, share: float) -> int:
    """How many of ``n`` days select (the rest report)."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"--select-share must be between 0 and 1 (got {share:g})")
    if n < 2:
        raise ValueError(f"a walk-forward over days needs at least 2 days (found {n}): add days, or sweep one "
                         "run directory to split it by time")
    return min(n - 1, max(1, int(round(share * n))))


def _midnight(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def in_sample_days(args: argparse.Namespace, days: list) -> Any:
    """:func:`mm_core.backtest.command.in_sample_context` for days: each day spans its whole UTC date
    (a superset of its rows: never too lenient)."""
    from mm_core.backtest.command import InSampleRefused
    from mm_core.backtest.fair import fair_model
    from mm_core.backtest.report import RunContext
    from mm_core.research.training_window import NoTrainingWindow, overlap, read_window, run_dir_source
    from mm_core.store.partitions import run_dir_of

    spec = getattr(args, "fair", "mid")
    fair_model(spec)
    allow = bool(getattr(args, "allow_in_sample", False))
    if spec in ("mid", "microprice"):
        return RunContext()
    try:
        window = read_window(Path(spec))
    except NoTrainingWindow as exc:
        if not allow:
            raise InSampleRefused(f"{exc}; re-run mm research to save the model with its training window, "
                                  "or pass --allow-in-sample (the result is then marked IN-SAMPLE)") from None
        return RunContext(True, f"{spec} has no training window: cannot tell, treated as in-sample")
    if window is None:
        return RunContext()
    for day in days:
        start = _midnight(day.date)
        for d in day.dirs:
            why = overlap(window, run_dir_source(run_dir_of(d), day.exchange, day.symbol), start,
                          start + 86_400_000_000_000 - 1)
            if why is None:
                continue
            if not allow:
                raise InSampleRefused(f"the fair model {spec} was {why}. Scoring it here would be in-sample: train "
                                      "on earlier days and sweep later ones, or pass --allow-in-sample")
            return RunContext(True, f"{spec} was {why}")
    return RunContext()


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One (set, scenario, period) over its days: sums, worst day/hour, pooled ES5 % (module docstring)."""
    from mm_core.backtest.pnl import expected_shortfall

    first = rows[0]
    out: dict[str, Any] = {"params": first["params"], "scenario": first["scenario"], "period": first["period"]}
    for k in _SUM:
        out[k] = sum(r[k] for r in rows)
    gap = max((r["pnl_identity_gap"] for r in rows), key=abs)
    out.update(pnl_identity_gap=gap, pnl_identity_ok=all(r["pnl_identity_ok"] for r in rows))
    daily: dict[str, list[float]] = {}
    for r in rows:
        for b in r["daily_pnl"]:
            acc = daily.setdefault(b["day"], [0.0, 0.0])
            acc[0] += b["pnl"]
            acc[1] += b["covered_s"]
    worst_day = min(daily, key=lambda d: daily[d][0])
    wh = min(rows, key=lambda r: r["worst_hour"])
    hourly = [x for r in rows for x in r["hourly_pnl"]]
    out.update(max_drawdown=max(r["max_drawdown"] for r in rows), worst_day=daily[worst_day][0],
               worst_day_utc=worst_day, worst_hour=wh["worst_hour"], worst_hour_utc=wh["worst_hour_utc"],
               es5_hourly=float(expected_shortfall(hourly)), n_days=len(daily), n_hours=len(hourly),
               daily_pnl=[{"day": d, "pnl": v[0], "covered_s": v[1]} for d, v in sorted(daily.items())],
               days=[r["day"] for r in rows])
    return out


def aggregate_all(per_day: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`aggregate` for every (set, scenario, period), in first-seen order."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in per_day:
        groups.setdefault((json.dumps(r["params"], sort_keys=True), r["scenario"], r["period"]), []).append(r)
    return [aggregate(rows) for rows in groups.values()]


def build_jobs(args: argparse.Namespace, specs: list[dict[str, Any]], n_select: int,
               grid: list[dict[str, Any]], scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (day, set, scenario) task, day by day (a worker then reuses one day's rows in memory)."""
    base = {k: v for k, v in vars(args).items() if k != "func" and not k.startswith("_")}
    base.update(run_dir=None, store=None)
    jobs = []
    for i, spec in enumerate(specs):
        date = spec["day"]["date"]
        period = "select" if i < n_select else "report"
        for params in grid:
            for sc in (scenarios[:1] if period == "select" else scenarios):
                jobs.append({"args": {**base, "strategy_params": params}, "params": params, "scenario": sc, "period": period,
                             "market": spec, "day": date})
    return jobs


def sweep_days(args: argparse.Namespace, runner: Any, days: list) -> dict[str, Any]:
    """The whole multi-day sweep on ``runner``; returns the ``--json`` document (without timing)."""
    from mm_core.backtest import sweep
    from mm_core.backtest.command import instrument_rules
    from mm_core.backtest.days import seeded_specs

    inst, _ = instrument_rules(args)
    n_select = split_days(len(days), args.select_share)
    if args.min_fills < 1:
        raise ValueError("--min-fills must be >= 1")
    ctx = in_sample_days(args, days)
    grid = sweep.param_grid(args)
    scs = sweep.scenarios(args)
    t0 = time.perf_counter()
    specs, day_notes = seeded_specs(runner, days, tick_size=inst.tick_size, lot_size=inst.lot_size, depth=args.depth)
    t_seed = time.perf_counter() - t0
    jobs = build_jobs(args, specs, n_select, grid, scs)
    t0 = time.perf_counter()
    per_day = runner.map(sweep._one, jobs, label="sweep")
    t_tasks = time.perf_counter() - t0
    results = aggregate_all(per_day)
    verdicts, selected = sweep.judge(results, args.loss_limit, args.min_fills)
    notes = day_notes + sweep.sweep_notes(results, args.min_fills, ctx)
    sel, rep = [d.date for d in days[:n_select]], [d.date for d in days[n_select:]]
    walk = {"select_share": args.select_share, "by": "day",
            "select": {"from": sel[0], "to": sel[-1], "days": sel},
            "report": {"from": rep[0], "to": rep[-1], "days": rep},
            "selected": selected, "min_fills": args.min_fills}
    return {"results": results, "per_day": per_day, "verdicts": verdicts, "walk_forward": walk,
            "in_sample": bool(ctx.in_sample), "notes": notes,
            "days": [{**d.to_json(), "seeded": bool(s.get("seed")), "period": "select" if i < n_select else "report"}
                     for i, (d, s) in enumerate(zip(days, specs))],
            "exchange": days[0].exchange, "symbol": days[0].symbol, "tasks": len(jobs),
            "timings_s": {"book_carry": t_seed, "tasks": t_tasks}}


def render_days(doc: dict[str, Any], seconds: float) -> str:
    """Text form: per-day rows, then the aggregate table, notes and verdicts of the single-run sweep."""
    from mm_core.backtest import sweep

    walk = doc["walk_forward"]
    lines = [f"{doc['exchange']} {doc['symbol']}: {len(doc['days'])} day(s); selection days "
             f"{', '.join(walk['select']['days'])}; report days {', '.join(walk['report']['days'])}",
             f"{'params':36s} {'day':10s} {'period':6s} {'scenario':16s} {'total':>11s} {'fees':>9s} {'fills':>6s} "
             f"{'maxDD':>9s} {'worstH':>9s}"]
    for r in doc["per_day"]:
        lines.append(f"{sweep._label(r['params']):36s} {r['day']:10s} {r['period']:6s} {r['scenario']:16s} "
                     f"{r['total_pnl']:+11.4f} {r['fees']:9.4f} {r['fills']:6d} {r['max_drawdown']:9.4f} "
                     f"{r['worst_hour']:+9.4f}")
    lines.append("aggregate over the days of each period (max drawdown: the largest within one day):")
    walk_text = {"select_share": walk["select_share"], "min_fills": walk["min_fills"],
                 "select": walk["select"], "report": walk["report"]}
    lines.append(sweep.render(doc["results"], doc["verdicts"], seconds, walk=walk_text, notes=doc["notes"],
                              in_sample=doc["in_sample"]).replace(f"{len(doc['results'])} runs in",
                                                                   f"{doc['tasks']} day tasks in").replace(" of the span,", " of the days,"))
    return "\n".join(lines)


def run_days(args: argparse.Namespace) -> int:
    """``mm sweep`` with several run directories or ``--store``: exit 0 only if every check passes."""
    from mm_core.backtest.command import InSampleRefused
    from mm_core.config import ConfigError
    from mm_core.scaleout import SchedulerError, TaskFailed, open_runner
    from mm_core.store.partitions import StoreError, find_days, one_instrument

    t0 = time.perf_counter()
    if args.sim_seconds or args.arrays:
        print("mm sweep: many days come from run directories or --store, not --sim-seconds/--arrays", file=sys.stderr)
        return 2
    roots = [Path(p) for p in (args.run_dir or [])] + ([args.store] if args.store is not None else [])
    where = ", ".join(str(r) for r in roots)
    try:
        days = one_instrument(find_days(roots, date_from=args.date_from, date_to=args.date_to,
                                        exchange=args.exchange, symbol=args.symbol), where)
        split_days(len(days), args.select_share)
        with open_runner(args.scheduler, args.workers, progress=not args.json) as runner:
            doc = sweep_days(args, runner, days)
            doc["scheduler"] = runner.describe()
    except (StoreError, ValueError, FileNotFoundError, ConfigError, InSampleRefused, SchedulerError,
            TaskFailed) as exc:
        print(f"mm sweep: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({**doc, "seconds": seconds}))
    else:
        print(render_days(doc, seconds))
    return 0 if all(v["pass"] for v in doc["verdicts"]) else 1


def comparable(doc: dict[str, Any], drop: Optional[tuple[str, ...]] = None) -> dict[str, Any]:
    """``doc`` without what measures the machine (timings, the executor): for equality checks."""
    drop = drop or TIMING_KEYS
    out = {k: v for k, v in doc.items() if k not in ("seconds", "timings_s", "scheduler")}
    out["per_day"] = [{k: v for k, v in r.items() if k not in drop} for r in doc.get("per_day", [])]
    out["results"] = [{k: v for k, v in r.items() if k not in drop} for r in doc.get("results", [])]
    return out
