"""``mm sweep``: a grid of configurations x stress scenarios, in parallel processes, with tails
and one verdict line per go/no-go check of the plan.

Scenarios per parameter set: ``base``; latency x2 and x5 (``--latency-scales``); latency spikes
(``--spikes START:DUR:EXTRA_MS``, offsets from the data start); volatility shocks
(``--vol-shocks START:DUR:FACTOR``). Each run reports total PnL, its parts and its tails.

Tails (per sweep cell, from the mark-to-market equity ``cash + position * fair mid - fees``,
evaluated exactly at the clock boundaries -- see :mod:`mm_core.backtest.pnl`):

- **per-UTC-day and per-UTC-hour PnL**: equity just before the bucket's closing boundary minus
  equity just before its opening boundary; buckets are aligned to UTC midnight / the full hour, the
  first and last may be partial (the data start and end), and they add up to the total PnL;
- **worst day** / **worst hour**: the lowest daily / hourly bucket PnL (with the UTC bucket start);
- **max drawdown**: largest fall of the equity from its running peak (peak starts at 0), after
  every market row and fill;
- **ES5h** (expected shortfall 5 % over *hourly* PnL): the mean of the worst ``ceil(0.05 x hours)``
  hourly PnLs (a PnL, negative = loss; with fewer than 20 hours it equals the worst hour).

Checks (exit code 0 only if every check passes):

- **profitable across parameter stress tests**: the best parameter set (by base-scenario PnL)
  makes money after fees in *every* scenario;
- **tail losses bounded**: in every scenario of that set, the *worst UTC day* loses no more than
  ``--loss-limit`` (a daily loss limit in quote currency; max drawdown, worst hour and ES5h are
  shown beside it for information).

Workers load the cached rows themselves (only file paths and small dicts cross processes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mm_core.backtest.command import add_config_args, add_data_args, config_from_args, load_market


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="parameter/stress grid of backtests in parallel processes",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    add_config_args(p)
    g = p.add_argument_group("grid")
    g.add_argument("--spreads", default="0.05,0.1,0.2", help="half-spreads in bps, comma-separated")
    g.add_argument("--sizes", default="0.001", help="quote sizes")
    g.add_argument("--skews", default="2", help="skews in bps")
    g.add_argument("--latency-scales", default="1,2,5", help="latency multipliers (1 = base)")
    g.add_argument("--spikes", default="", help="latency spikes START_S:DUR_S:EXTRA_MS[,...]")
    g.add_argument("--vol-shocks", default="", help="volatility shocks START_S:DUR_S:FACTOR[,...]")
    g.add_argument("--loss-limit", type=float, default=100.0,
                   help="daily loss limit (quote currency) the worst UTC day must stay within")
    g.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true")
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
    """Worker: run one (parameters, scenario) backtest and return its small summary."""
    from mm_core.backtest.engine import run_backtest
    from mm_core.backtest.event_arrays import MarketArrays
    from mm_core.backtest.latency import Stressed
    from mm_core.backtest.stress import vol_shock

    args = argparse.Namespace(**job["args"])
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
    return {"params": job["params"], "scenario": sc["name"], **{k: s[k] for k in keep}, **tails(r.pnl)}


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


def run(args) -> int:
    from mm_core.backtest import event_arrays as ea

    t0 = time.perf_counter()
    try:
        market = load_market(args)
        scs = scenarios(args)
        grid = list(itertools.product(_floats(args.spreads), _floats(args.sizes), _floats(args.skews)))
    except (ValueError, FileNotFoundError) as exc:
        print(f"mm sweep: {exc}", file=sys.stderr)
        return 2
    import hashlib

    digest = hashlib.sha256(market.exch_ts.tobytes() + market.tick.tobytes()).hexdigest()[:16]
    path = ea.cache_dir() / "backtest" / f"sweep-{digest}.npz"
    if not path.is_file():
        market.save(path)
    base = {k: v for k, v in vars(args).items() if k != "func" and not k.startswith("_")}
    jobs = []
    for hs, size, skew in grid:
        params = {"half_spread_bps": hs, "size": size, "skew_bps": skew}
        for sc in scs:
            jobs.append({"args": {**base, **params}, "params": params, "scenario": sc, "market": str(path)})
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(_one, jobs))
    verdicts = judge(results, args.loss_limit)
    if args.json:
        print(json.dumps({"results": results, "verdicts": verdicts, "seconds": time.perf_counter() - t0}))
    else:
        print(render(results, verdicts, time.perf_counter() - t0))
    return 0 if all(v["pass"] for v in verdicts) else 1


def judge(results: list[dict], loss_limit: float) -> list[dict]:
    """The plan's go/no-go checks over the best parameter set."""
    by_params: dict[str, list[dict]] = {}
    for r in results:
        by_params.setdefault(json.dumps(r["params"], sort_keys=True), []).append(r)
    best_key = max(by_params, key=lambda k: next(r["total_pnl"] for r in by_params[k] if r["scenario"] == "base"))
    best = by_params[best_key]
    worst = min(best, key=lambda r: r["total_pnl"])
    prof = all(r["total_pnl"] > 0 for r in best)
    wd = min(best, key=lambda r: r["worst_day"])
    dd = max(r["max_drawdown"] for r in best)
    wh = min(best, key=lambda r: r["worst_hour"])
    es = min(r["es5_hourly"] for r in best)
    bounded = -wd["worst_day"] <= loss_limit
    return [
        {"check": "profitable across parameter stress tests", "pass": prof,
         "detail": f"best set {best_key}: worst scenario '{worst['scenario']}' total {worst['total_pnl']:+.4f}"},
        {"check": "tail losses bounded", "pass": bounded,
         "detail": f"worst UTC day {wd['worst_day']:+.4f} ({wd['worst_day_utc']}, '{wd['scenario']}', "
                   f"{wd['n_days']} day bucket(s)) vs daily loss limit {loss_limit:g} (--loss-limit); "
                   f"for information: max drawdown {dd:.4f}, worst hour {wh['worst_hour']:+.4f} "
                   f"({wh['worst_hour_utc']}), ES5% hourly {es:+.4f}"},
    ]


def render(results: list[dict], verdicts: list[dict], seconds: float) -> str:
    lines = [f"{'params':36s} {'scenario':16s} {'total':>11s} {'spread':>9s} {'adverse':>9s} {'inventory':>9s} "
             f"{'fees':>9s} {'fills':>6s} {'maxDD':>9s} {'worstDay':>9s} {'day':>10s} {'worstH':>9s} "
             f"{'hour (UTC)':>17s} {'ES5%h':>9s}"]
    for r in results:
        p = r["params"]
        ps = f"hs={p['half_spread_bps']:g}bps size={p['size']:g} skew={p['skew_bps']:g}"
        lines.append(f"{ps:36s} {r['scenario']:16s} {r['total_pnl']:+11.4f} {r['spread_capture']:+9.4f} "
                     f"{r['adverse_selection']:+9.4f} {r['inventory_pnl']:+9.4f} {r['fees']:9.4f} {r['fills']:6d} "
                     f"{r['max_drawdown']:9.4f} {r['worst_day']:+9.4f} {r['worst_day_utc']:>10s} "
                     f"{r['worst_hour']:+9.4f} {r['worst_hour_utc']:>17s} {r['es5_hourly']:+9.4f}")
    if results:
        lines.append(f"tails over {results[0]['n_days']} UTC day(s) / {results[0]['n_hours']} UTC hour(s) "
                     "(first/last may be partial); ES5%h = mean of the worst 5 % of hourly PnLs")
    for v in verdicts:
        lines.append(f"{'PASS' if v['pass'] else 'FAIL'}  {v['check']}: {v['detail']}")
    lines.append(f"{len(results)} runs in {seconds:.1f} s")
    return "\n".join(lines)
