"""``mm sweep``: a grid of configurations x stress scenarios, in parallel processes, judged walk-forward:
the parameter set is chosen on one period and judged on a later one.

Walk-forward split (``--select-share``, default 0.5): the data's exchange-time span is cut at
``start + share x span``. Every parameter set runs the ``base`` scenario on the *selection period*
(before the cut); the best of them by base PnL -- among sets with at least ``--min-fills`` fills
there -- is the selected set. Every set then runs every scenario on the *report period* (from the
cut to the end, starting flat, with the book as it stood at the cut), and the checks are judged on
the selected set's report-period runs only: out of sample for the choice of parameters. The other
sets' report-period rows are shown for comparison, never used to choose.

Scenarios per parameter set: ``base``; latency x2 and x5 (``--latency-scales``); latency spikes
(``--spikes START:DUR:EXTRA_MS``) and volatility shocks (``--vol-shocks START:DUR:FACTOR``), their
offsets counted from the start of the report period. Each run reports total PnL, its parts, the
PnL computed from the fills alone and its tails.

Tails (per sweep cell, from the mark-to-market equity ``cash + position * fair mid - fees``,
evaluated exactly at the clock boundaries -- see :mod:`mm_core.backtest.pnl`):

- **per-UTC-day and per-UTC-hour PnL**: equity just before the bucket's closing boundary minus
  equity just before its opening boundary; buckets are aligned to UTC midnight / the full hour, the
  first and last may be partial (the period start and end), and they add up to the total PnL;
- **worst day** / **worst hour**: the lowest daily / hourly bucket PnL (with the UTC bucket start);
- **max drawdown**: largest fall of the equity from its running peak (peak starts at 0), after
  every market row and fill;
- **ES5h** (expected shortfall 5 % over *hourly* PnL): the mean of the worst ``ceil(0.05 x hours)``
  hourly PnLs (a PnL, negative = loss; with fewer than 20 hours it equals the worst hour).

Checks (exit code 0 only if every check passes):

- **profitable across parameter stress tests**: the selected set makes money after fees in *every*
  scenario of the report period, each with at least ``--min-fills`` fills (fewer: nothing to judge);
- **tail losses bounded**: in every report-period scenario of that set, the *worst UTC day* loses
  no more than ``--loss-limit`` (a daily loss limit in quote currency; max drawdown, worst hour and
  ES5h are shown beside it for information).

Flags in the report: sets with too few fills (never crowned), stress scenarios that changed nothing
(PnL and fills identical to the base run: the stress did not bite on this data), runs where the
rate guard deferred most of the strategy's requests, a failed PnL identity, and IN-SAMPLE (the fair
model was trained on this data; see ``mm backtest --help``).

Workers load the cached rows themselves (only file paths and small dicts cross processes).

Many days (``mm sweep RUN_DIR RUN_DIR ...`` or ``--store ROOT [--from DAY] [--to DAY]``): one task
per (parameter set, scenario, day), the walk-forward split by whole days (the first
``--select-share`` of the days select, the later days judge), per-day rows beside the aggregate;
see :mod:`mm_core.backtest.sweep_days`. ``--scheduler local`` (a Dask LocalCluster of
``--workers`` processes) or ``--scheduler tcp://HOST:8786`` (a running Dask cluster) run the same
tasks on Dask instead of the process pool, with identical results (:mod:`mm_core.scaleout`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

from mm_core.backtest.command import add_config_args, add_data_args, config_from_args, load_market


MIN_FILLS = 30
"""Default ``--min-fills``, chosen before looking at any sweep: below ~30 fills a PnL is a handful of
trades (the usual floor for a mean to mean anything), so such a set is flagged, not crowned."""


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="parameter/stress grid of backtests in parallel processes, walk-forward",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from mm_core.store.partitions import add_scheduler_args, add_store_args

    add_data_args(p, many=True)
    add_store_args(p)
    add_scheduler_args(p, workers_default=None)
    add_config_args(p)
    g = p.add_argument_group("grid")
    g.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a strategy parameter and its values (repeatable; any --strategy); without it the "
                        "baseline grid below")
    g.add_argument("--spreads", default="0.05,0.1,0.2", help="half-spreads in bps, comma-separated")
    g.add_argument("--sizes", default="0.001", help="quote sizes")
    g.add_argument("--skews", default="2", help="skews in bps")
    g.add_argument("--latency-scales", default="1,2,5", help="latency multipliers (1 = base)")
    g.add_argument("--spikes", default="", help="latency spikes START_S:DUR_S:EXTRA_MS[,...] (from the report "
                                               "period's start)")
    g.add_argument("--vol-shocks", default="", help="volatility shocks START_S:DUR_S:FACTOR[,...] (from the "
                                                   "report period's start)")
    g.add_argument("--loss-limit", type=float, default=100.0,
                   help="daily loss limit (quote currency) the worst UTC day must stay within")
    g.add_argument("--select-share", type=float, default=0.5,
                   help="walk-forward: share of the time span that selects the parameter set; the rest "
                        "(later) reports and judges it")
    g.add_argument("--min-fills", type=int, default=MIN_FILLS,
                   help="fewest fills a run needs to be judged; sets below it in the selection period are "
                        "flagged, not selected")
    g.add_argument("--workers", type=int, default=2, help="processes of the pool or of the --scheduler local cluster")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _triples(text: str) -> list[tuple[float, float, float]]:
    out = []
    for part in filter(None, (x.strip() for x in text.split(","))):
        a, b, c = (float(v) for v in part.split(":"))
        out.append((a, b, c))
    return out


def scenarios(args) -> list[dict]:
    out = [{"name": "base"}]
    for k in _floats(args.latency_scales):
        if k != 1.0:
            out.append({"name": f"latency x{k:g}", "latency_scale": k})
    spikes = _triples(args.spikes)
    if spikes:
        out.append({"name": "latency spikes", "spikes": spikes})
    shocks = _triples(args.vol_shocks)
    if shocks:
        out.append({"name": "vol shock", "vol_shocks": shocks})
    return out


def _one(job: dict) -> dict:
    """Worker: run one (parameters, scenario, period) backtest and return its small summary."""
    from mm_core.backtest.engine import run_backtest
    from mm_core.backtest.event_arrays import MarketArrays
    from mm_core.backtest.latency import Stressed
    from mm_core.backtest.report import trust_summary
    from mm_core.backtest.stress import vol_shock

    args = argparse.Namespace(**job["args"])
    if isinstance(job["market"], dict):  # a day of the store, read on this worker
        from mm_core.backtest.days import day_market

        m = day_market(job["market"])
    else:
        m = MarketArrays.load(Path(job["market"]))
    sc = job["scenario"]
    if sc.get("vol_shocks"):
        m = vol_shock(m, sc["vol_shocks"])
    cfg = config_from_args(args)
    if sc.get("latency_scale") or sc.get("spikes"):
        from dataclasses import replace

        cfg = replace(cfg, latency=Stressed(cfg.latency, factor=sc.get("latency_scale", 1.0),
                                            spikes=tuple(sc.get("spikes", ()))))
    r = run_backtest(m, cfg)
    s = r.summary()
    keep = ("total_pnl", "spread_capture", "adverse_selection", "inventory_pnl", "fees", "fills",
            "events_per_second")
    trust = trust_summary(r)
    c = s["counters"]
    return {"params": job["params"], "scenario": sc["name"], "period": job["period"], **{k: s[k] for k in keep},
            "total_pnl_direct": trust["total_pnl_direct"], "pnl_identity_gap": trust["pnl_identity_gap"],
            "pnl_identity_ok": trust["pnl_identity_ok"],
            "requotes": c["requotes"], "orders_sent": c["orders_sent"], "cancels_sent": c["cancels_sent"],
            "rate_guard_skips": c["rate_guard_skips"], **tails(r.pnl),
            **({"day": job["day"], "hourly_pnl": [float(x) for x in r.pnl.hourly["pnl"]]} if "day" in job else {})}


def split_periods(m, share: float):
    """``(selection, report)`` markets: rows before and from ``start + share x span``. The report
    period opens with a snapshot of the book as it stood at the cut (both sides cleared, then every
    live level), so its first quotes see the real book; rows of one message stay together."""
    import numpy as np

    from mm_core.backtest.event_arrays import CLEAR, DEPTH, MarketArrays, book_pass

    if not 0.0 < share < 1.0:
        raise ValueError(f"--select-share must be between 0 and 1 (got {share:g})")
    if len(m) < 2:
        raise ValueError("too little data to split into a selection and a report period")
    t0, t1 = int(m.exch_ts[0]), int(m.exch_ts[-1])
    cut = t0 + int(round(share * (t1 - t0)))
    k = int(np.searchsorted(m.exch_ts, cut, side="left"))
    if k <= 0 or k >= len(m):
        raise ValueError("the walk-forward cut leaves an empty period: use more data or another --select-share")
    select = m.slice_time(t0, int(m.exch_ts[k]))
    levels_side, levels_tick, levels_qty = [], [], []
    for side in (1, -1):
        idx = np.arange(k)
        cleared = idx[(m.kind[:k] == CLEAR) & (m.side[:k] == side)]
        after = cleared[-1] if cleared.size else -1
        rows = idx[(m.kind[:k] == DEPTH) & (m.side[:k] == side) & (idx > after)][::-1]  # latest first
        _, first = np.unique(m.tick[rows], return_index=True)
        last = rows[first]
        last = last[m.qty[last] > 0.0]
        levels_side.append(np.full(last.size, side, np.int8))
        levels_tick.append(m.tick[last])
        levels_qty.append(m.qty[last])
    n_lv = sum(x.size for x in levels_tick)
    head = {
        "kind": np.concatenate([np.array([CLEAR, CLEAR], np.uint8), np.full(n_lv, DEPTH, np.uint8)]),
        "side": np.concatenate([np.array([1, -1], np.int8), *levels_side]),
        "tick": np.concatenate([np.zeros(2, np.int64), *levels_tick]).astype(np.int64),
        "qty": np.concatenate([np.zeros(2), *levels_qty]),
    }
    n_head = head["kind"].size
    kind = np.concatenate([head["kind"], m.kind[k:]])
    side = np.concatenate([head["side"], m.side[k:]])
    tick = np.concatenate([head["tick"], m.tick[k:]])
    qty = np.concatenate([head["qty"], m.qty[k:]])
    msg = np.concatenate([np.full(n_head, m.msg[k] - 1, np.int64), m.msg[k:]])
    exch = np.concatenate([np.full(n_head, m.exch_ts[k], np.int64), m.exch_ts[k:]])
    cap = np.concatenate([np.full(n_head, m.capture_ts[k], np.int64), m.capture_ts[k:]])
    lo, n_ticks = m.tick_range
    bb, ba, bbq, baq, *_ = book_pass(kind, side, tick, qty, msg, 0, lo, n_ticks)
    report = MarketArrays(kind=kind, side=side, exch_ts=exch, capture_ts=cap, msg=msg, price=tick * m.tick_size,
                          tick=tick, qty=qty, best_bid_tick=bb, best_ask_tick=ba, best_bid_qty=bbq,
                          best_ask_qty=baq, tick_size=m.tick_size, lot_size=m.lot_size, depth=m.depth,
                          exchange=m.exchange, symbol=m.symbol)
    return select, report


def _utc(ns: int, fmt: str) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(int(ns) // 1_000_000_000, tz=timezone.utc).strftime(fmt)


def tails(pnl) -> dict:
    """A cell's tail statistics (plain JSON types) from its :class:`~mm_core.backtest.pnl.PnL`."""
    d, h = pnl.daily, pnl.hourly
    iday, ihour = int(d["pnl"].argmin()), int(h["pnl"].argmin())
    return {
        "max_drawdown": float(pnl.max_drawdown),
        "worst_day": float(d["pnl"][iday]), "worst_day_utc": _utc(d["start_ns"][iday], "%Y-%m-%d"),
        "worst_hour": float(h["pnl"][ihour]), "worst_hour_utc": _utc(h["start_ns"][ihour], "%Y-%m-%dT%H:00Z"),
        "es5_hourly": float(pnl.expected_shortfall_hourly),
        "n_days": int(d["pnl"].size), "n_hours": int(h["pnl"].size),
        "daily_pnl": [{"day": _utc(t, "%Y-%m-%d"), "pnl": float(v), "covered_s": float(c)}
                      for t, v, c in zip(d["start_ns"], d["pnl"], d["covered_s"])],
    }


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def _span(m) -> dict:
    from mm_core.research.training_window import utc

    return {"from": utc(int(m.exch_ts[0])), "to": utc(int(m.exch_ts[-1])),
            "seconds": (int(m.exch_ts[-1]) - int(m.exch_ts[0])) / 1e9}


def run(args) -> int:
    from mm_core.backtest import event_arrays as ea
    from mm_core.backtest.command import in_sample_context
    from mm_core.config import ConfigError

    if args.store is not None or len(args.run_dir or ()) > 1:
        from mm_core.backtest.sweep_days import run_days

        return run_days(args)
    args.run_dir = args.run_dir[0] if args.run_dir else None
    t0 = time.perf_counter()
    try:
        market = load_market(args)
        ctx = in_sample_context(args, market)
        scs = scenarios(args)
        grid = param_grid(args)
        select, report = split_periods(market, args.select_share)
        if args.min_fills < 1:
            raise ValueError("--min-fills must be >= 1")
    except (ValueError, FileNotFoundError, ConfigError) as exc:
        print(f"mm sweep: {exc}", file=sys.stderr)
        return 2
    import hashlib

    digest = hashlib.sha256(market.exch_ts.tobytes() + market.tick.tobytes()).hexdigest()[:16]
    paths = {}
    for name, m in (("select", select), ("report", report)):
        path = ea.cache_dir() / "backtest" / f"sweep-{digest}-{args.select_share:g}-{name}.npz"
        if not path.is_file():
            m.save(path)
        paths[name] = str(path)
    base = {k: v for k, v in vars(args).items() if k != "func" and not k.startswith("_")}
    jobs = []
    for params in grid:
        job_args = {**base, "strategy_params": params}
        jobs.append({"args": job_args, "params": params, "scenario": scs[0], "period": "select",
                     "market": paths["select"]})
        for sc in scs:
            jobs.append({"args": job_args, "params": params, "scenario": sc, "period": "report",
                         "market": paths["report"]})
    from mm_core.scaleout import SchedulerError, TaskFailed, open_runner

    try:
        with open_runner(args.scheduler, args.workers, progress=not args.json) as runner:
            results = runner.map(_one, jobs, label="sweep")
    except (SchedulerError, TaskFailed) as exc:
        print(f"mm sweep: {exc}", file=sys.stderr)
        return 2
    verdicts, selected = judge(results, args.loss_limit, args.min_fills)
    flags = sweep_notes(results, args.min_fills, ctx)
    walk = {"select_share": args.select_share, "select": _span(select), "report": _span(report),
            "selected": selected, "min_fills": args.min_fills}
    if args.json:
        print(json.dumps({"results": results, "verdicts": verdicts, "walk_forward": walk,
                          "in_sample": bool(ctx.in_sample), "notes": flags, "seconds": time.perf_counter() - t0}))
    else:
        print(render(results, verdicts, time.perf_counter() - t0, walk=walk, notes=flags, in_sample=ctx.in_sample))
    return 0 if all(v["pass"] for v in verdicts) else 1


def param_grid(args) -> list[dict]:
    """Parameter sets: the product of the ``--grid`` values, or the baseline grid of ``--spreads``,
    ``--sizes``, ``--skews`` (the baseline strategy without ``--grid``)."""
    from mm_core.backtest.command import _value, runtime_config

    name = getattr(args, "strategy", None) or runtime_config(args).strategy.name or "baseline"
    axes: list[tuple[str, list]] = []
    for item in args.grid:
        key, sep, vals = item.partition("=")
        if not sep or not key.strip() or not vals.strip():
            raise ValueError(f"--grid {item!r}: expected KEY=V1,V2,...")
        axes.append((key.strip(), [_value(v) for v in vals.split(",") if v.strip()]))
    if not axes and name == "baseline":
        axes = [("half_spread_bps", _floats(args.spreads)), ("size", _floats(args.sizes)),
                ("skew_bps", _floats(args.skews))]
    return [dict(zip([k for k, _ in axes], vals)) for vals in itertools.product(*[v for _, v in axes])]


def _report_rows(results: list[dict]) -> list[dict]:
    return [r for r in results if r.get("period", "report") == "report"]


def judge(results: list[dict], loss_limit: float, min_fills: int = MIN_FILLS) -> tuple[list[dict], dict | None]:
    """The plan's go/no-go checks, walk-forward: the set is chosen on the selection period (base
    scenario, at least ``min_fills`` fills), judged on its report-period runs. Returns the verdicts
    and the selected parameters (None when no set had enough fills)."""
    select = [r for r in results if r.get("period") == "select" and r["scenario"] == "base"]
    eligible = [r for r in select if r["fills"] >= min_fills]
    names = ("profitable across parameter stress tests", "tail losses bounded")
    if not eligible:
        most = max((r["fills"] for r in select), default=0)
        why = (f"no parameter set had at least {min_fills} fills in the selection period (most: {most}): "
               "nothing to judge (--min-fills)")
        return [{"check": c, "pass": False, "detail": why} for c in names], None
    chosen = max(eligible, key=lambda r: r["total_pnl"])
    key = _key(chosen["params"])
    best = [r for r in _report_rows(results) if _key(r["params"]) == key]
    if not best:
        why = "the selected set has no report-period runs"
        return [{"check": c, "pass": False, "detail": why} for c in names], chosen["params"]
    chosen_at = (f"set {key} selected on the selection period (base PnL {chosen['total_pnl']:+.4f}, "
                 f"{chosen['fills']} fills); judged on the later report period")
    thin = [r for r in best if r["fills"] < min_fills]
    worst = min(best, key=lambda r: r["total_pnl"])
    prof = not thin and all(r["total_pnl"] > 0 for r in best)
    detail = f"{chosen_at}: worst scenario '{worst['scenario']}' total {worst['total_pnl']:+.4f}"
    if thin:
        detail += ("; too few fills to judge (< " + str(min_fills) + ") in "
                   + ", ".join(f"'{r['scenario']}' ({r['fills']})" for r in thin))
    wd = min(best, key=lambda r: r["worst_day"])
    dd = max(r["max_drawdown"] for r in best)
    wh = min(best, key=lambda r: r["worst_hour"])
    es = min(r["es5_hourly"] for r in best)
    bounded = -wd["worst_day"] <= loss_limit
    return [
        {"check": names[0], "pass": prof, "detail": detail},
        {"check": names[1], "pass": bounded,
         "detail": f"{chosen_at}: worst UTC day {wd['worst_day']:+.4f} ({wd['worst_day_utc']}, '{wd['scenario']}', "
                   f"{wd['n_days']} day bucket(s)) vs daily loss limit {loss_limit:g} (--loss-limit); "
                   f"for information: max drawdown {dd:.4f}, worst hour {wh['worst_hour']:+.4f} "
                   f"({wh['worst_hour_utc']}), ES5% hourly {es:+.4f}"},
    ], chosen["params"]


def sweep_notes(results: list[dict], min_fills: int, ctx=None) -> list[str]:
    """What a reader must know beside the table: thin sets, stresses that changed nothing, throttling,
    failed identities, in-sample data."""
    from mm_core.backtest.report import RATE_GUARD_MOST

    out = []
    if ctx is not None and ctx.in_sample:
        out.append(f"IN-SAMPLE: {ctx.in_sample_detail}; these results are not out of sample")
    for r in results:
        if r.get("period") == "select" and r["scenario"] == "base" and r["fills"] < min_fills:
            what = "no fills: nothing to judge" if r["fills"] == 0 else f"{r['fills']} fills < {min_fills}"
            out.append(f"{_label(r['params'])}: {what} in the selection period; flagged, not eligible")
    base = {_key(r["params"]): r for r in _report_rows(results) if r["scenario"] == "base"}
    for r in _report_rows(results):
        b = base.get(_key(r["params"]))
        if r["scenario"] != "base" and b is not None and r["total_pnl"] == b["total_pnl"] and r["fills"] == b["fills"]:
            out.append(f"{_label(r['params'])}: stress '{r['scenario']}' changed nothing (PnL {r['total_pnl']:+.4f} "
                       f"and {r['fills']} fills identical to base): it did not bite on this data")
    throttled = []
    for r in results:
        deferred, sent = r.get("rate_guard_skips", 0), r.get("orders_sent", 0) + r.get("cancels_sent", 0)
        if deferred > 0 and deferred / (deferred + sent) > RATE_GUARD_MOST:
            throttled.append((deferred / (deferred + sent), deferred, sent, r))
        if not r.get("pnl_identity_ok", True):
            out.append(f"{_label(r['params'])} '{r['scenario']}' ({r.get('period', 'report')}): PnL identity FAILED "
                       f"(gap {r['pnl_identity_gap']:+.3e}): do not trust this row")
    if throttled:
        share, deferred, sent, r = max(throttled, key=lambda x: x[0])
        out.append(f"rate guard: in {len(throttled)} of {len(results)} runs it deferred most of the strategy's "
                   f"requests (worst: {_label(r['params'])} '{r['scenario']}' ({r.get('period', 'report')}), "
                   f"{deferred:,} deferred against {sent:,} sent): those rows are the PnL of a throttled strategy")
    return out


def _label(params: dict) -> str:
    if set(params) == {"half_spread_bps", "size", "skew_bps"}:
        return f"hs={params['half_spread_bps']:g}bps size={params['size']:g} skew={params['skew_bps']:g}"
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "defaults"


def render(results: list[dict], verdicts: list[dict], seconds: float, *, walk: dict | None = None,
           notes: list[str] = (), in_sample: bool = False) -> str:
    lines = ["IN-SAMPLE SWEEP: the fair model was trained on this data"] if in_sample else []
    if walk is not None:
        lines.append(f"walk-forward: sets ranked by base PnL on the selection period {walk['select']['from']} to "
                     f"{walk['select']['to']} ({walk['select_share']:g} of the span, >= {walk['min_fills']} fills); "
                     f"the selected set is judged on the later report period {walk['report']['from']} to "
                     f"{walk['report']['to']}")
    lines.append(f"{'params':36s} {'period':6s} {'scenario':16s} {'total':>11s} {'spread':>9s} {'adverse':>9s} "
                 f"{'inventory':>9s} {'fees':>9s} {'fills':>6s} {'maxDD':>9s} {'worstDay':>9s} {'day':>10s} "
                 f"{'worstH':>9s} {'hour (UTC)':>17s} {'ES5%h':>9s}")
    for r in results:
        lines.append(f"{_label(r['params']):36s} {r.get('period', ''):6s} {r['scenario']:16s} {r['total_pnl']:+11.4f} "
                     f"{r['spread_capture']:+9.4f} {r['adverse_selection']:+9.4f} {r['inventory_pnl']:+9.4f} "
                     f"{r['fees']:9.4f} {r['fills']:6d} {r['max_drawdown']:9.4f} {r['worst_day']:+9.4f} "
                     f"{r['worst_day_utc']:>10s} {r['worst_hour']:+9.4f} {r['worst_hour_utc']:>17s} "
                     f"{r['es5_hourly']:+9.4f}")
    if results:
        rep = _report_rows(results) or results
        lines.append(f"tails over {rep[0]['n_days']} UTC day(s) / {rep[0]['n_hours']} UTC hour(s) of the report "
                     "period (first/last may be partial); ES5%h = mean of the worst 5 % of hourly PnLs")
    lines += [f"NOTE: {n}" for n in notes]
    for v in verdicts:
        lines.append(f"{'PASS' if v['pass'] else 'FAIL'}  {v['check']}: {v['detail']}")
    lines.append(f"{len(results)} runs in {seconds:.1f} s")
    return "\n".join(lines)
