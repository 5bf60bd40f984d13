"""``mm sweep``: a grid of configurations x stress scenarios, in parallel processes, with tails
and one verdict line per go/no-go check of the plan.

Scenarios per parameter set: ``base``; latency x2 and x5 (``--latency-scales``); latency spikes
(``--spikes START:DUR:EXTRA_MS``, offsets from the data start); volatility shocks
(``--vol-shocks START:DUR:FACTOR``). Each run reports total PnL, its parts, max drawdown, worst
hour/day and the expected shortfall of hourly PnL.

Checks (exit code 0 only if every check passes):

- **profitable across parameter stress tests**: the best parameter set (by base-scenario PnL)
  makes money after fees in *every* scenario;
- **tail losses bounded**: in every scenario of that set, the max drawdown and the worst hour stay
  within ``--loss-limit`` (quote currency).

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
    g.add_argument("--loss-limit", type=float, default=100.0, help="tail bound for drawdown / worst hour")
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
    keep = ("total_pnl", "spread_capture", "adverse_selection", "inventory_pnl", "fees", "fills", "max_drawdown",
            "worst_hour", "worst_day", "expected_shortfall_hourly_95", "events_per_second")
    return {"params": job["params"], "scenario": sc["name"], **{k: s[k] for k in keep}}


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
    dd = max(r["max_drawdown"] for r in best)
    wh = min(r["worst_hour"] for r in best)
    tails = dd <= loss_limit and -wh <= loss_limit
    return [
        {"check": "profitable across parameter stress tests", "pass": prof,
         "detail": f"best set {best_key}: worst scenario '{worst['scenario']}' total {worst['total_pnl']:+.4f}"},
        {"check": "tail losses bounded", "pass": tails,
         "detail": f"max drawdown {dd:.4f}, worst hour {wh:+.4f} vs limit {loss_limit:g}"},
    ]


def render(results: list[dict], verdicts: list[dict], seconds: float) -> str:
    lines = [f"{'params':44s} {'scenario':16s} {'total':>11s} {'spread':>9s} {'adverse':>9s} {'inventory':>9s} "
             f"{'fees':>9s} {'fills':>6s} {'maxDD':>9s} {'worstH':>9s} {'ES95h':>9s}"]
    for r in results:
        p = r["params"]
        ps = f"hs={p['half_spread_bps']:g}bps size={p['size']:g} skew={p['skew_bps']:g}"
        lines.append(f"{ps:44s} {r['scenario']:16s} {r['total_pnl']:+11.4f} {r['spread_capture']:+9.4f} "
                     f"{r['adverse_selection']:+9.4f} {r['inventory_pnl']:+9.4f} {r['fees']:9.4f} {r['fills']:6d} "
                     f"{r['max_drawdown']:9.4f} {r['worst_hour']:+9.4f} {r['expected_shortfall_hourly_95']:+9.4f}")
    for v in verdicts:
        lines.append(f"{'PASS' if v['pass'] else 'FAIL'}  {v['check']}: {v['detail']}")
    lines.append(f"{len(results)} runs in {seconds:.1f} s")
    return "\n".join(lines)
