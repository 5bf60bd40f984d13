"""Backtest benchmark: ``mm backtest`` against hftbacktest 2.4.4, whole processes, same day, same run.

What is counted, on both sides, is everything from the same on-disk input to the result, in a
fresh process each time (interpreter start, imports, data loading, JIT compilation, the run, the
PnL figures, exit):

- **ours**: the user's command, ``python -m mm_core backtest RUN_DIR --json ...``, reading the run
  directory's Parquet tables (the collector's format) -> rows -> book pass -> engine -> PnL
  decomposition. The row cache is off (``MM_ROW_CACHE=off``), so every run converts the Parquet;
  a last line shows the second-run case with the cached rows too.
- **hftbacktest**: ``np.load`` of its own event file (the same rows, converted once beforehand,
  as hftbacktest users prepare their data) -> ``HashMapMarketDepthBacktest`` -> the same quoting
  loop (``bench/hbt_strategy.py``, ``@njit(cache=True)``) -> fills and PnL.

Cold = an empty numba cache directory; warm = a cache directory an earlier run filled. numba
cannot cache hftbacktest's strategy (it calls hftbacktest's Rust library through ctypes function
pointers; numba says so with a warning, which the child reports), so its warm run compiles again.
Several rounds, interleaved (the order rotates), min and median printed; peak RSS of each process
from the OS (``wait4``). Both sides run on the same numba.

Strategy (both sides): the same jitted ``baseline.decide`` decides (ours through the whole strategy
pipeline -- regimes, risk, clamp, requote rules -- configured not to change a quote; the hftbacktest
loop through ``baseline.quote_ticks``, the pipeline's rounding); requote every 100 ms, post-only,
cancel-and-replace on a price change, at most 4 open orders a side; 5 ms latency each way;
risk-averse queue; partial fills; fees 0.25 % maker / 0.40 % taker; no rate limit (hftbacktest
has none). The fills of both are matched order by order from one extra, untimed run per day.

Data: the offline market simulator's day (``MarketModel``, not predictive; 12.3 book messages/s,
1.05 trades/s: ~1.1 M messages a day), written as a collector run directory; the seeds are
arguments (``--seeds``) and nothing else is tuned. Generated once into ``$MM_CACHE_DIR/bench``
(~25 s a day); generation is not timed.

    python bench/bench_backtest.py                        # two days (seeds 31 and 57), 5 rounds
    python bench/bench_backtest.py --seeds 31 --rounds 3  # quicker
    python bench/bench_backtest.py --seconds 3600         # an hour, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--seconds", type=float, default=86400.0, help="simulated seconds per day")
    ap.add_argument("--seeds", default="31,57", help="simulator seeds, one day each")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every whole-process variant")
    ap.add_argument("--updates-per-second", type=float, default=12.3, help="simulator book message rate")
    ap.add_argument("--trades-per-second", type=float, default=1.05)
    ap.add_argument("--half-spread-bps", type=float, default=0.1)
    ap.add_argument("--size", type=float, default=0.001)
    ap.add_argument("--skew-bps", type=float, default=2.0)
    ap.add_argument("--max-inventory", type=float, default=0.01)
    ap.add_argument("--latency-ms", type=float, default=5.0, help="feed = entry = response latency")
    ap.add_argument("--requote-ms", type=float, default=100.0)
    ap.add_argument("--json", action="store_true", help="print every measurement as JSON")
    ap.add_argument("--child", choices=("hbt",), help=argparse.SUPPRESS)
    ap.add_argument("--hbt-data", help=argparse.SUPPRESS)
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _cli_flags(a: argparse.Namespace) -> list[str]:
    """``mm backtest`` flags for the benchmark's strategy (the rest are the CLI's defaults)."""
    lat = f"{a.latency_ms:g}"
    return ["--config", str(bench_config()), "--half-spread-bps", str(a.half_spread_bps), "--size", str(a.size),
            "--skew-bps", str(a.skew_bps), "--max-inventory", str(a.max_inventory),
            "--latency", f"const:{lat},{lat},{lat}", "--requote-ms", str(a.requote_ms), "--queue", "risk_averse",
            "--rate-tier", "off", "--fees", "value:0.25,0.40"]


# The strategy engine runs whole (regimes, risk limits, requote rules); for the same decisions as the
# hftbacktest loop the benchmark's config gives it neutral regime multipliers, limits that never
# bind and the plain cancel-and-replace rule: the work is done, it changes no quote.
_BENCH_SECTIONS = """
[regimes.latency]
width_mult = [1.0, 1.0, 1.0]
size_mult = [1.0, 1.0, 1.0]

[regimes.volatility]
width_mult = [1.0, 1.0, 1.0]
size_mult = [1.0, 1.0, 1.0]

[risk]
max_inventory = 1e6
max_order_qty = 1e6
max_notional = 1e12
max_drawdown = 1e12
rate_counter_max_frac = 1.0
reject_storm_count = 64
reject_storm_window_s = 1e-6
cancel_storm_count = 64
cancel_storm_window_s = 1e-6

[requote]
deadband_ticks = 0.0
deadband_bps = 0.0
max_age_ms = inf
min_rest_ms = 0.0
amend = false
qty_tolerance = inf
pull_reserve = 0.0
"""


def bench_config() -> Path:
    """The shipped config with the sections above in place of its own (written once per change)."""
    from mm_core.backtest.event_arrays import cache_dir
    from mm_core.config import default_config_path

    keep, skip = [], False
    for line in default_config_path().read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            name = line.split("]")[0].strip("[ ")
            skip = name in ("regimes.latency", "regimes.volatility", "risk", "requote")
        if not skip:
            keep.append(line)
    text = "\n".join(keep) + "\n" + _BENCH_SECTIONS
    path = cache_dir() / "bench" / "bench-backtest.toml"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- hftbacktest child


def child_hbt(a: argparse.Namespace) -> dict:
    """One whole hftbacktest run: import, load its event file, run the quoting loop, PnL."""
    t0 = time.perf_counter()
    import warnings

    import numpy as np
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest
    from numba.core import event

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hbt_strategy import quote_loop

    from mm_core.strategy import load_strategy

    t_import = time.perf_counter() - t0
    t = time.perf_counter()
    with np.load(a.hbt_data) as z:
        data = z["data"]
    t_load = time.perf_counter() - t
    lat = int(round(a.latency_ms * 1e6))
    params = load_strategy("baseline", dict(half_spread_bps=a.half_spread_bps, size=a.size, skew_bps=a.skew_bps,
                                            max_inventory=a.max_inventory)).vector
    n_max = int(a.seconds * 1e3 / a.requote_ms) * 2 + 64  # at most two new orders per requote
    listener = event.TimingListener()
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, event.install_listener("numba:compile", listener):
        warnings.simplefilter("always")
        asset = (BacktestAsset().data(data).linear_asset(1.0).constant_order_latency(lat, lat)
                 .risk_adverse_queue_model().partial_fill_exchange().trading_value_fee_model(0.0025, 0.004)
                 .tick_size(0.1).lot_size(1e-8).last_trades_capacity(0))
        hbt = HashMapMarketDepthBacktest([asset])
        o_log = np.zeros((n_max, 5))  # -, side, tick, qty, filled so far
        f_log = np.zeros((n_max, 3))  # order id, -, qty
        ts_log = np.zeros((n_max, 2), np.int64)  # order submit local ts (by order id), fill exchange ts
        requotes, last_mid, n_orders, n_f = quote_loop(hbt, params, int(a.requote_ms * 1e6), 0.1, 1e-8, 0.00005,
                                                       0.5, 4, o_log, f_log, ts_log)
        sv = hbt.state_values(0)
        hbt.close()
    t_run = time.perf_counter() - t
    o_log, f_log = o_log[:n_orders], f_log[:n_f]
    side = o_log[f_log[:, 0].astype(np.int64), 1]
    px = o_log[f_log[:, 0].astype(np.int64), 2] * 0.1
    q = f_log[:, 2]
    # exactly rounded sums: hftbacktest's order map iterates in a different order every run
    position = math.fsum((side * q).tolist())
    cash = -math.fsum((side * q * px).tolist())
    fee = math.fsum((0.0025 * q * px).tolist())  # every fill is a maker fill (post-only quotes)
    total = cash + position * last_mid - fee
    if a.dump:
        np.savez(a.dump, o_ts=ts_log[:n_orders, 0], o_side=o_log[:, 1].astype(np.int64),
                 o_tick=o_log[:, 2].astype(np.int64), o_qty=o_log[:, 3], o_filled=o_log[:, 4],
                 f_oid=f_log[:, 0].astype(np.int64), f_ts=ts_log[:n_f, 1], f_qty=f_log[:, 2])
    compile_s = listener.duration if listener.done else 0.0
    not_cached = [str(w.message).split("\n")[0] for w in caught if "cache" in str(w.message).lower()]
    return {
        "import_s": t_import, "load_s": t_load, "run_s": t_run, "compile_s": compile_s,
        "loop_s": t_run - compile_s, "rows": int(len(data)), "fills": int(n_f), "orders": int(n_orders),
        "requotes": int(requotes), "volume_base": float(q.sum()), "position": position, "fees": fee,
        "total_pnl": total, "gross_pnl": total + fee, "strategy_not_cached": not_cached[:1],
        "hbt_state": {"num_trades": int(sv.num_trades), "position": float(sv.position),
                      "total_pnl": float(sv.balance + sv.position * last_mid - sv.fee)},
    }


# --------------------------------------------------------------------------- data


def ensure_day(a: argparse.Namespace, seed: int) -> tuple[Path, dict]:
    """The simulated day as a collector run directory (generated once, then reused)."""
    from mm_core.backtest.event_arrays import cache_dir

    run = cache_dir() / "bench" / (f"simday-{a.seconds:g}s-seed{seed}-u{a.updates_per_second:g}"
                                   f"-t{a.trades_per_second:g}")
    meta = run / "sim.json"
    if not meta.is_file():
        from mm_core.simexchange.canonical import canonical_events
        from mm_core.simexchange.market import MarketModel
        from mm_core.store.parquet_store import ParquetEventStore

        print(f"generating {a.seconds:g} simulated seconds, seed {seed}, into {run} (once) ...", file=sys.stderr)
        tmp = run.with_name(run.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        t = time.perf_counter()
        model = MarketModel(seed=seed, predictive=False, updates_per_second=a.updates_per_second,
                            trades_per_second=a.trades_per_second)
        store = ParquetEventStore(tmp / "parquet", flush_interval_s=1e9, max_rows=250_000)
        n = 0
        for ev in canonical_events(model, a.seconds, depth=10, tops=True):
            store.add(ev)
            n += 1
        store.close()
        info = {"seed": seed, "seconds": a.seconds, "updates_per_second": a.updates_per_second,
                "trades_per_second": a.trades_per_second, "events": n, "rows_written": dict(store.rows_written),
                "generated_s": round(time.perf_counter() - t, 1)}
        (tmp / "sim.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        shutil.rmtree(run, ignore_errors=True)
        os.replace(tmp, run)
    return run, json.loads(meta.read_text(encoding="utf-8"))


def hbt_input(a: argparse.Namespace, run: Path) -> tuple[Path, dict]:
    """hftbacktest's event file: our rows from the run directory (the same rows both engines see,
    including the explicit deletes of levels leaving the depth-10 view), feed latency applied."""
    import numpy as np

    from mm_core.backtest import event_arrays as ea
    from mm_core.backtest.latency import ConstantLatency, local_timestamps

    path = run / f"hftbacktest-{a.latency_ms:g}ms-{ea.producer_digest('run_dir')}.npz"
    desc = run / (path.stem + ".json")
    if not path.is_file() or not desc.is_file():
        m = ea.from_run_dir(run, tick_size=0.1)
        loc = local_timestamps(m.exch_ts, m.msg, ConstantLatency(a.latency_ms, a.latency_ms, a.latency_ms))
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, data=ea.to_hftbacktest(m, loc))
        os.replace(tmp, path)
        desc.write_text(json.dumps(m.describe()), encoding="utf-8")
    return path, json.loads(desc.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- whole processes


def whole_process(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd`` in a fresh process (through ``measure_process.py``, so the peak RSS is the
    command's own): wall time, peak RSS in MB and the command's JSON output."""
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        out_path, err_path = Path(tmp) / "out", Path(tmp) / "err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            code = subprocess.call([sys.executable, str(Path(__file__).resolve().parent / "measure_process.py"),
                                    str(stats), *cmd], stdout=out, stderr=err, env=env, cwd=str(ROOT))
        stdout, stderr = out_path.read_text(), err_path.read_text()
        st = json.loads(stats.read_text()) if stats.is_file() else {}
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({code}):\n{stderr[-3000:]}")
    return {"wall_s": st["wall_s"], "peak_rss_mb": st["peak_rss_mb"], "out": json.loads(stdout.strip().splitlines()[-1])}


def ours_cmd(a: argparse.Namespace, run: Path) -> list[str]:
    return [sys.executable, "-m", "mm_core", "backtest", str(run), "--json", *_cli_flags(a)]


def hbt_cmd(a: argparse.Namespace, data: Path, dump: str = "") -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "hbt", "--hbt-data", str(data),
           "--seconds", str(a.seconds), "--half-spread-bps", str(a.half_spread_bps), "--size", str(a.size),
           "--skew-bps", str(a.skew_bps), "--max-inventory", str(a.max_inventory),
           "--latency-ms", str(a.latency_ms), "--requote-ms", str(a.requote_ms)]
    return cmd + (["--dump", dump] if dump else [])


def bench_day(a: argparse.Namespace, seed: int, work: Path) -> dict:
    run, sim = ensure_day(a, seed)
    hbt_data, rows = hbt_input(a, run)
    base = dict(os.environ)
    base.pop("NUMBA_DISABLE_JIT", None)
    warm = {side: str(work / f"numba-warm-{side}-{seed}") for side in ("ours", "hbt", "rows")}
    row_cache = str(work / f"rows-{seed}")

    def env(numba_dir: str, row_cache_on: bool = False) -> dict[str, str]:
        e = dict(base, NUMBA_CACHE_DIR=numba_dir, MM_CACHE_DIR=row_cache if row_cache_on else str(work / "none"))
        e.pop("MM_ROW_CACHE", None)
        if not row_cache_on:
            e["MM_ROW_CACHE"] = "off"
        return e

    variants = {
        "ours_cold": lambda: whole_process(ours_cmd(a, run), env(tempfile.mkdtemp(dir=work))),
        "hbt_cold": lambda: whole_process(hbt_cmd(a, hbt_data), env(tempfile.mkdtemp(dir=work))),
        "ours_warm": lambda: whole_process(ours_cmd(a, run), env(warm["ours"])),
        "hbt_warm": lambda: whole_process(hbt_cmd(a, hbt_data), env(warm["hbt"])),
        "ours_warm_rows_cached": lambda: whole_process(ours_cmd(a, run), env(warm["rows"], True)),
    }
    # fill the warm caches (and the row cache of the last variant) once, untimed
    whole_process(ours_cmd(a, run), env(warm["ours"]))
    whole_process(hbt_cmd(a, hbt_data), env(warm["hbt"]))
    whole_process(ours_cmd(a, run), env(warm["rows"], True))
    results: dict[str, list[dict]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(a.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(variants[name]())
            print(f"  seed {seed} round {r + 1}/{a.rounds} {name}: {results[name][-1]['wall_s']:.2f} s, "
                  f"{results[name][-1]['peak_rss_mb'] or 0:.0f} MB", file=sys.stderr)
    alignment = align_runs(a, run, hbt_data, work, env(warm["hbt"]))
    return {"seed": seed, "sim": sim, "rows": rows, "runs": results, "alignment": alignment}


# --------------------------------------------------------------------------- fills side by side


def align_runs(a: argparse.Namespace, run: Path, hbt_data: Path, work: Path, hbt_env: dict[str, str]) -> dict:
    """One untimed run of each side with their order and fill logs, matched order by order."""
    import numpy as np

    from mm_core.backtest.command import config_from_args, load_market
    from mm_core.backtest.engine import run_backtest
    from mm_core.cli import build_parser

    args = build_parser("backtest").parse_args(["backtest", str(run), *_cli_flags(a)])
    before = os.environ.get("MM_ROW_CACHE")
    os.environ["MM_ROW_CACHE"] = "off"  # the same conversion the timed runs did
    try:
        r = run_backtest(load_market(args), config_from_args(args))
    finally:
        if before is None:
            os.environ.pop("MM_ROW_CACHE", None)
        else:
            os.environ["MM_ROW_CACHE"] = before
    ours = str(work / "ours-dump.npz")
    o, f = r.orders, r.fills
    np.savez(ours, o_ts=o["submit_local_ts"], o_side=o["side"].astype(np.int64), o_tick=o["tick"], o_qty=o["qty"],
             o_filled=o["filled"], f_oid=f["order_id"], f_ts=f["ts"], f_qty=f["qty"])
    hbt = str(work / "hbt-dump.npz")
    h = whole_process(hbt_cmd(a, hbt_data, hbt), hbt_env)["out"]
    al = align_fills(ours, hbt)
    s = r.summary()
    al["ours"] = {k: s[k] for k in ("fills", "total_pnl", "fees", "volume_base", "final_position")}
    al["ours"]["orders"] = s["counters"]["orders_sent"]
    al["hbt"] = {k: h[k] for k in ("fills", "total_pnl", "fees", "volume_base", "position", "orders", "hbt_state")}
    return al


def align_fills(ours_path: str, hbt_path: str) -> dict:
    """Order-by-order and fill-by-fill comparison of the two engines' logs.

    Orders are matched on (submit time, side, price, qty). hftbacktest's log is read once per
    requote, so two partial fills of one order inside one requote interval are one record there;
    fills are therefore compared per order (filled quantity, and the exchange time of the last fill).
    """
    import numpy as np

    with np.load(ours_path) as zo, np.load(hbt_path) as zh:  # read every column once
        o, h = {k: zo[k] for k in zo.files}, {k: zh[k] for k in zh.files}

    def orders(z):
        return {(int(t), int(s), int(k), round(float(q), 8)): i
                for i, (t, s, k, q) in enumerate(zip(z["o_ts"], z["o_side"], z["o_tick"], z["o_qty"]))}

    def last_fill(z):
        out: dict[int, int] = {}
        for oid, ts in zip(z["f_oid"], z["f_ts"]):
            out[int(oid)] = max(out.get(int(oid), 0), int(ts))
        return out

    ko, kh = orders(o), orders(h)
    common = sorted(set(ko) & set(kh))
    lo, lh = last_fill(o), last_fill(h)
    same_qty = same_ts = with_fills = 0
    diffs = []
    for key in common:
        i, j = ko[key], kh[key]
        fo, fh = float(o["o_filled"][i]), float(h["o_filled"][j])
        if fo > 0 or fh > 0:
            with_fills += 1
            q_ok = abs(fo - fh) < 0.5e-8
            t_ok = lo.get(i, -1) == lh.get(j, -1)
            same_qty += q_ok
            same_ts += t_ok
            if not (q_ok and t_ok) and len(diffs) < 5:
                diffs.append({"order": key, "ours": (fo, lo.get(i)), "hbt": (fh, lh.get(j))})
    return {"orders_ours": len(ko), "orders_hbt": len(kh), "orders_common": len(common),
            "orders_with_fills": with_fills, "same_filled_qty": same_qty, "same_last_fill_ts": same_ts,
            "differences": diffs}


# --------------------------------------------------------------------------- report


def _stat(runs: list[dict], key) -> tuple[float, float, float]:
    v = [key(r) for r in runs]
    v = [x for x in v if x is not None]
    if not v:
        return (math.nan, math.nan, math.nan)
    return min(v), statistics.median(v), max(v)


def summarize(day: dict) -> dict:
    """Figures and target checks of one day, all from the runs' own measurements."""
    R = day["runs"]
    wall = {k: _stat(v, lambda r: r["wall_s"]) for k, v in R.items()}
    rss = {k: _stat(v, lambda r: r["peak_rss_mb"]) for k, v in R.items()}

    def m(k, f):  # median of a child-reported figure
        return _stat(R[k], f)[1]

    ours = {
        "events_per_second": {k: m(k, lambda r: r["out"]["events_per_second"]) for k in ("ours_cold", "ours_warm")},
        "compile_s": {k: m(k, lambda r: r["out"]["compile_seconds"]) for k in ("ours_cold", "ours_warm")},
        "run_s": {k: m(k, lambda r: r["out"]["run_seconds"]) for k in ("ours_cold", "ours_warm")},
        "load_s": {k: m(k, lambda r: r["out"]["load_seconds"]) for k in ("ours_cold", "ours_warm")},
        "loop_s": {k: m(k, lambda r: r["out"]["loop_seconds"]) for k in ("ours_cold", "ours_warm")},
        "outside_s": {k: m(k, lambda r: r["wall_s"] - r["out"]["run_seconds"] - r["out"]["compile_seconds"])
                      for k in ("ours_cold", "ours_warm")},
    }
    hbt = {f: {k: m(k, lambda r, f=f: r["out"][f]) for k in ("hbt_cold", "hbt_warm")}
           for f in ("import_s", "load_s", "compile_s", "loop_s", "run_s")}
    hbt["outside_s"] = {k: m(k, lambda r: r["wall_s"] - r["out"]["load_s"] - r["out"]["run_s"])
                        for k in ("hbt_cold", "hbt_warm")}
    targets = {
        "cold_below_hbt_cold": {"min": wall["ours_cold"][0] < wall["hbt_cold"][0],
                                "median": wall["ours_cold"][1] < wall["hbt_cold"][1]},
        "warm_at_most_half_hbt_warm": {"min": wall["ours_warm"][0] <= 0.5 * wall["hbt_warm"][0],
                                       "median": wall["ours_warm"][1] <= 0.5 * wall["hbt_warm"][1]},
        "peak_rss_at_most_hbt": {
            "cold_median": rss["ours_cold"][1] <= rss["hbt_cold"][1],
            "warm_median": rss["ours_warm"][1] <= rss["hbt_warm"][1]},
    }
    not_cached = next((r["out"]["strategy_not_cached"] for r in R["hbt_warm"] if r["out"]["strategy_not_cached"]), [])
    return {"wall": wall, "rss": rss, "ours": ours, "hbt": hbt, "targets": targets, "hbt_not_cached": not_cached}


def print_day(day: dict, s: dict, a: argparse.Namespace) -> None:
    sim, rows, al = day["sim"], day["rows"], day["alignment"]
    rw = sim["rows_written"]
    print(f"\n=== seed {day['seed']}: {sim['seconds']:g} s simulated, {rw.get('book', 0):,} book messages + "
          f"{rw.get('trade', 0):,} trades = {rw.get('book', 0) + rw.get('trade', 0):,} events "
          f"({rw.get('top_of_book', 0):,} top-of-book rows stored too) -> {rows['rows']:,} rows "
          f"({rows['book_rows']:,} level rows incl. inserted deletes, {rows['trades']:,} trades)")
    w, r = s["wall"], s["rss"]
    n = len(day["runs"]["ours_cold"])
    print(f"whole process, {n} interleaved rounds each      mm_core (Parquet->result)   hftbacktest (npz->result)"
          f"   ours/hbt (median)")
    for label, o, h in (("cold numba cache: min / median s", "ours_cold", "hbt_cold"),
                        ("warm numba cache: min / median s", "ours_warm", "hbt_warm")):
        print(f"  {label:42s} {w[o][0]:7.2f} / {w[o][1]:5.2f}         {w[h][0]:7.2f} / {w[h][1]:5.2f}"
              f"           {w[o][1] / w[h][1]:.2f}x")
    for label, o, h in (("peak RSS cold: min / median / max MB", "ours_cold", "hbt_cold"),
                        ("peak RSS warm: min / median / max MB", "ours_warm", "hbt_warm")):
        print(f"  {label:42s} {r[o][0]:4.0f} / {r[o][1]:4.0f} / {r[o][2]:4.0f}      "
              f"{r[h][0]:4.0f} / {r[h][1]:4.0f} / {r[h][2]:4.0f}          {r[o][1] / r[h][1]:.2f}x")
    rc = w["ours_warm_rows_cached"]
    print(f"  (ours, warm, rows already cached as .npz by a previous run: {rc[0]:.2f} / {rc[1]:.2f} s, "
          f"peak RSS median {r['ours_warm_rows_cached'][1]:.0f} MB)")
    o, h = s["ours"], s["hbt"]
    print(f"ours `mm backtest --json` (medians): events_per_second {o['events_per_second']['ours_warm']:,.0f} warm / "
          f"{o['events_per_second']['ours_cold']:,.0f} cold (rows / run_seconds); run_seconds "
          f"{o['run_s']['ours_warm']:.2f} warm / {o['run_s']['ours_cold']:.2f} cold; compile_seconds "
          f"{o['compile_s']['ours_cold']:.2f} cold / {o['compile_s']['ours_warm']:.2f} warm")
    t = s["targets"]

    def ok(x):
        return "met" if x else "MISSED"

    print(f"targets: cold below hftbacktest's cold: {ok(t['cold_below_hbt_cold']['min'])} on min, "
          f"{ok(t['cold_below_hbt_cold']['median'])} on median; warm <= 0.5x hftbacktest's warm: "
          f"{ok(t['warm_at_most_half_hbt_warm']['min'])} on min, {ok(t['warm_at_most_half_hbt_warm']['median'])} "
          f"on median; peak RSS <= hftbacktest's: {ok(t['peak_rss_at_most_hbt']['cold_median'])} cold, "
          f"{ok(t['peak_rss_at_most_hbt']['warm_median'])} warm (medians)")
    print("where the time goes (medians of the rounds, seconds):")
    for mode in ("cold", "warm"):
        ok_, hk = f"ours_{mode}", f"hbt_{mode}"
        print(f"  {mode}: ours {w[ok_][1]:.2f} = interpreter+imports+exit {o['outside_s'][ok_]:.2f} + numba compile "
              f"{o['compile_s'][ok_]:.2f} + Parquet->rows {o['load_s'][ok_]:.2f} + loop {o['loop_s'][ok_]:.2f} + "
              f"fair/PnL/report {max(o['run_s'][ok_] - o['load_s'][ok_] - o['loop_s'][ok_], 0):.2f}")
        print(f"  {mode}: hftbacktest {w[hk][1]:.2f} = interpreter+imports+exit {h['outside_s'][hk]:.2f} + "
              f"load {h['load_s'][hk]:.2f} + numba compile {h['compile_s'][hk]:.2f} + loop and PnL "
              f"{h['loop_s'][hk]:.2f}")
    print("  " + explain(s))
    if s["hbt_not_cached"]:
        print(f"  hftbacktest's strategy in the warm runs: numba says \"{s['hbt_not_cached'][0]}\"")
    ao, ah = al["ours"], al["hbt"]
    print(f"fills side by side (one untimed run each): orders {al['orders_common']:,} identical of "
          f"{al['orders_ours']:,} ours / {al['orders_hbt']:,} hftbacktest; orders with fills "
          f"{al['orders_with_fills']:,}: same filled qty {al['same_filled_qty']:,}, same last-fill time "
          f"{al['same_last_fill_ts']:,}; fills {ao['fills']:,} vs {ah['fills']:,} fill reports; total PnL "
          f"{ao['total_pnl']:+.2f} vs {ah['total_pnl']:+.2f} EUR (fees {ao['fees']:.2f} vs {ah['fees']:.2f})")
    for d in al["differences"]:
        print(f"  differs: order {d['order']}: ours (qty, last fill ts) {d['ours']}, hftbacktest {d['hbt']}")
    st = ah["hbt_state"]
    print(f"  hftbacktest's own state_values (they drop partial fills, hftbacktest#299/#316): trades "
          f"{st['num_trades']:,}, PnL {st['total_pnl']:+.2f}")


def explain(s: dict) -> str:
    """The comparison in words, every figure from this run."""
    w, o, h, r = s["wall"], s["ours"], s["hbt"], s["rss"]
    parts = []
    d_cold = w["ours_cold"][1] - w["hbt_cold"][1]
    parts.append(f"cold, ours is {abs(d_cold):.2f} s {'faster' if d_cold < 0 else 'slower'} (median): our numba "
                 f"compile {o['compile_s']['ours_cold']:.2f} s vs hftbacktest's {h['compile_s']['hbt_cold']:.2f} s, "
                 f"our Parquet->rows {o['load_s']['ours_cold']:.2f} s vs its npz load {h['load_s']['hbt_cold']:.2f} s, "
                 f"our loop {o['loop_s']['ours_cold']:.2f} s vs its {h['loop_s']['hbt_cold']:.2f} s")
    parts.append(f"warm, ours takes {w['ours_warm'][1] / w['hbt_warm'][1]:.2f}x hftbacktest's time: hftbacktest "
                 f"compiles its strategy again ({h['compile_s']['hbt_warm']:.2f} s), ours loads machine code "
                 f"(compile {o['compile_s']['ours_warm']:.2f} s)")
    d_rss = r["ours_warm"][1] - r["hbt_warm"][1]
    parts.append(f"memory, ours peaks {abs(d_rss):.0f} MB {'lower' if d_rss < 0 else 'higher'} warm and "
                 f"{abs(r['ours_cold'][1] - r['hbt_cold'][1]):.0f} MB "
                 f"{'lower' if r['ours_cold'][1] < r['hbt_cold'][1] else 'higher'} cold (medians)")
    return "; ".join(parts) + "."


def main(argv=None) -> int:
    a = _args(argv)
    if a.child:
        print(json.dumps(child_hbt(a)))
        return 0
    import hftbacktest
    import numba

    seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
    days = []
    with tempfile.TemporaryDirectory(prefix="mm-bench-backtest-") as tmp:
        for seed in seeds:
            work = Path(tmp) / f"seed{seed}"
            work.mkdir()
            days.append(bench_day(a, seed, work))
    sums = [summarize(d) for d in days]
    if a.json:
        print(json.dumps({"days": days, "summary": sums}, indent=1, default=str))
        return 0
    print(f"backtest benchmark: numba {numba.__version__} on both sides, hftbacktest "
          f"{getattr(hftbacktest, '__version__', '2.4.4')}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print("strategy: baseline quotes, half-spread {0} bps, size {1}, requote {2:g} ms, {3:g} ms latency each way, "
          "risk-averse queue, fees 0.25/0.40 %, no rate limit".format(a.half_spread_bps, a.size, a.requote_ms,
                                                                       a.latency_ms))
    for d, s in zip(days, sums):
        print_day(d, s, a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
