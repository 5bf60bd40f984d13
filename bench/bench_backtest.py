"""Backtest benchmark: our engine vs hftbacktest 2.4.4 on the same simulated day, in the same run.

What is compared (both sides get exactly the same rows, converted once by
:func:`mm_core.backtest.event_arrays.to_hftbacktest`):

- the same baseline quoting decision: our engine runs the full strategy pipeline (regimes and risk
  on, with neutral multipliers and limits that never bind, cancel-and-replace requoting); the
  hftbacktest loop calls the same jitted ``baseline.decide`` with the pipeline's rounding
  (``baseline.quote_ticks``); requote every 100 ms, post-only limit orders, cancel-and-replace when
  the target price changes, at most 4 open orders per side;
- constant latency (feed = entry = response), risk-averse queue, partial fills, Kraken retail
  fees (0.25 % maker / 0.40 % taker), no rate limit (hftbacktest has none);
- the same fills: the bench logs both engines' orders and fills and matches them order by order
  (submit time, side, price, qty; filled quantity and last fill time) -- see ``EXPLANATION`` for
  what made them differ before and what the hftbacktest loop has to do to be the same loop
  (start its timer grid at the first event; take the position from fill reports, because
  hftbacktest 2.4.4's local state drops partial fills, hftbacktest#299/#316);
- whole-process time per simulated day, each side in a fresh subprocess so imports, data loading
  and JIT compilation count: **cold** (empty numba cache dir) and **warm** (the same cache dir
  again); steady-state events/s from a second run inside the child (JIT done); fills and PnL.

The simulated day (~1 M book messages, ~90 k trades) is generated once by the Python market
simulator (~35 s) and cached as ``.npz`` under ``$MM_CACHE_DIR`` (default ``~/.cache/mm_core``);
generation is not part of either side's time.

    python bench/bench_backtest.py                # a full day (first run also generates it)
    python bench/bench_backtest.py --seconds 3600 # an hour, for a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=86400.0, help="simulated seconds (default: a day)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--updates-per-second", type=float, default=12.3, help="simulator book message rate")
    ap.add_argument("--trades-per-second", type=float, default=1.05)
    ap.add_argument("--half-spread-bps", type=float, default=0.1)
    ap.add_argument("--size", type=float, default=0.001)
    ap.add_argument("--skew-bps", type=float, default=2.0)
    ap.add_argument("--max-inventory", type=float, default=0.01)
    ap.add_argument("--latency-ms", type=float, default=5.0, help="feed = entry = response latency")
    ap.add_argument("--requote-ms", type=float, default=100.0)
    ap.add_argument("--json", action="store_true", help="print the comparison as JSON")
    ap.add_argument("--child", choices=("ours", "hbt"), help=argparse.SUPPRESS)
    ap.add_argument("--market", help=argparse.SUPPRESS)
    ap.add_argument("--hbt-data", help=argparse.SUPPRESS)
    ap.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# --------------------------------------------------------------------------- children


def neutral_regimes():
    """Regime machines that run but never change the quotes (every multiplier 1)."""
    from mm_core.strategy.regimes import (LatencyRegimeConfig, MarketRegimeConfig, RegimeConfig,
                                          VolatilityRegimeConfig)

    one = (1.0, 1.0, 1.0)
    return RegimeConfig(latency=LatencyRegimeConfig(width_mult=one, size_mult=one),
                        volatility=VolatilityRegimeConfig(width_mult=one, size_mult=one),
                        market=MarketRegimeConfig(size_mult=(1.0, 1.0, 0.0, 1.0, 0.0)))


def open_risk():
    """Risk limits far beyond anything the benchmark's strategy does (checks run, never bind)."""
    from mm_core.strategy.pipeline import RiskConfig

    return RiskConfig(max_inventory=1e6, max_order_qty=1e6, max_notional=1e12, max_drawdown=1e12,
                      rate_counter_max_frac=1.0, reject_storm_count=64, reject_storm_window_s=1e-6,
                      cancel_storm_count=64, cancel_storm_window_s=1e-6)


def child_ours(a: argparse.Namespace) -> dict:
    t_imp = time.perf_counter()
    from mm_core.backtest.engine import BacktestConfig, run_backtest
    from mm_core.backtest.event_arrays import MarketArrays
    from mm_core.backtest.fees import kraken_schedule
    from mm_core.backtest.latency import ConstantLatency
    from mm_core.strategy import load_strategy
    from mm_core.strategy.requote import RequoteConfig

    imp = time.perf_counter() - t_imp
    t = time.perf_counter()
    m = MarketArrays.load(Path(a.market))
    load = time.perf_counter() - t
    cfg = BacktestConfig(
        strategy=load_strategy("baseline", dict(half_spread_bps=a.half_spread_bps, size=a.size,
                                                skew_bps=a.skew_bps, max_inventory=a.max_inventory)),
        latency=ConstantLatency(a.latency_ms, a.latency_ms, a.latency_ms), queue="risk_averse",
        rate_tier="off", fees=kraken_schedule(0.0), requote_ms=a.requote_ms,
        # the hftbacktest loop below cancels and replaces on every price change; regimes and risk run
        # (and cost what they cost) but with neutral multipliers and limits that never bind
        requote=RequoteConfig.cancel_replace(), regimes=neutral_regimes(), risk=open_risk())
    t = time.perf_counter()
    r = run_backtest(m, cfg)
    first = time.perf_counter() - t
    to_result = time.time() - a.launched
    r2 = run_backtest(m, cfg)
    s = r2.summary()
    same = (s["total_pnl"] == r.summary()["total_pnl"]) and s["fills"] == r.summary()["fills"]
    if a.dump:
        import numpy as np

        o, f = r2.orders, r2.fills
        np.savez(a.dump, o_ts=o["submit_local_ts"], o_side=o["side"].astype(np.int64), o_tick=o["tick"],
                 o_qty=o["qty"], o_filled=o["filled"], f_oid=f["order_id"], f_ts=f["ts"], f_qty=f["qty"])
    return {
        "side": "ours", "import_s": imp, "load_s": load, "first_run_s": first, "time_to_result_s": to_result,
        "steady_loop_s": r2.loop_seconds, "rows": r2.rows, "events_per_second": r2.events_per_second,
        "fills": s["fills"], "volume_base": s["volume_base"], "volume_quote": s["volume_quote"],
        "position": s["final_position"], "total_pnl": s["total_pnl"], "fees": s["fees"],
        "gross_pnl": s["total_pnl"] + s["fees"], "spread_capture": s["spread_capture"],
        "adverse_selection": s["adverse_selection"], "inventory_pnl": s["inventory_pnl"],
        "orders": s["counters"]["orders_sent"], "cancels": s["counters"]["cancels_sent"],
        "post_only_rejects": s["counters"]["rejected_post_only"], "deterministic": same,
        "pnl_decomposition": True,
    }


def child_hbt(a: argparse.Namespace) -> dict:
    t_imp = time.perf_counter()
    import numpy as np
    from hftbacktest import GTX, LIMIT, NEW, BacktestAsset, HashMapMarketDepthBacktest
    from hftbacktest.order import PARTIALLY_FILLED
    from numba import njit

    from mm_core.strategy import load_strategy
    from mm_core.strategy.baseline import quote_ticks as baseline_quote

    imp = time.perf_counter() - t_imp

    @njit
    def quote_loop(hbt, params, requote_ns, tick_size, lot, min_qty, min_cost, max_open, o_log, f_log, ts_log):
        """The same decision and order handling as our engine's reconcile step.

        Two things make it the *same* loop (see the module docstring): the timer grid starts from
        the first event (``current_timestamp`` is i64::MAX until the first ``elapse``), and the
        position the policy skews by is summed from fill reports, because hftbacktest 2.4.4's
        local state drops partial fills (hftbacktest#299, #316)."""
        asset = 0
        oid = np.uint64(0)
        hbt.elapse(0)
        now = hbt.current_timestamp
        hbt.elapse((now // requote_ns + 1) * requote_ns - now)  # align to the same timer grid
        requotes = 0
        last_mid = np.nan
        pos = 0.0
        n_f = 0
        while True:
            values = hbt.orders(asset).values()  # fill reports received since the last requote
            while values.has_next():
                o = values.get()
                k = np.int64(o.order_id)
                done = o.qty - o.leaves_qty
                if done > o_log[k, 4] + 0.5 * lot:
                    ex = done - o_log[k, 4]
                    o_log[k, 4] = done
                    pos += ex if o.side == 1 else -ex
                    if n_f < f_log.shape[0]:
                        f_log[n_f, 0] = k
                        ts_log[n_f, 1] = o.exch_timestamp
                        f_log[n_f, 2] = ex
                        n_f += 1
            hbt.clear_inactive_orders(asset)
            depth = hbt.depth(asset)
            bb = depth.best_bid_tick
            ba = depth.best_ask_tick
            if bb > -(1 << 62) and ba < (1 << 62):
                requotes += 1
                fair = (bb + ba) * 0.5 * tick_size
                last_mid = fair
                bt, bq, at, aq = baseline_quote(params, fair, bb, ba, pos, tick_size)
                for s in (1, -1):
                    tt = bt if s > 0 else at
                    q = bq if s > 0 else aq
                    q = np.floor(q / lot + 1e-9) * lot
                    want = q > 0.0 and q >= min_qty and q * tt * tick_size >= min_cost
                    keep = False
                    n_open = 0
                    values = hbt.orders(asset).values()
                    while values.has_next():
                        o = values.get()
                        if o.side != s:
                            continue
                        live = o.status == NEW or o.status == PARTIALLY_FILLED or o.req == NEW
                        if not live:
                            continue
                        n_open += 1
                        if o.req == 4:  # cancel already requested
                            continue
                        if want and o.price_tick == tt and not keep:
                            keep = True
                        elif o.cancellable:
                            hbt.cancel(asset, o.order_id, False)
                    if want and not keep and n_open < max_open and oid < o_log.shape[0]:
                        k = np.int64(oid)
                        ts_log[k, 0] = hbt.current_timestamp
                        o_log[k, 1] = s
                        o_log[k, 2] = tt
                        o_log[k, 3] = q
                        if s > 0:
                            hbt.submit_buy_order(asset, oid, tt * tick_size, q, GTX, LIMIT, False)
                        else:
                            hbt.submit_sell_order(asset, oid, tt * tick_size, q, GTX, LIMIT, False)
                        oid += np.uint64(1)
            if hbt.elapse(requote_ns) != 0:
                break
        return requotes, last_mid, np.int64(oid), n_f

    t = time.perf_counter()
    with np.load(a.hbt_data) as z:
        data = z["data"]
    load = time.perf_counter() - t
    lat = int(round(a.latency_ms * 1e6))
    params = load_strategy("baseline", dict(half_spread_bps=a.half_spread_bps, size=a.size, skew_bps=a.skew_bps,
                                            max_inventory=a.max_inventory)).vector

    n_max = int(a.seconds * 1e3 / a.requote_ms) * 2 + 64  # at most two new orders per requote

    def one_run():
        asset = (BacktestAsset().data(data).linear_asset(1.0).constant_order_latency(lat, lat)
                 .risk_adverse_queue_model().partial_fill_exchange().trading_value_fee_model(0.0025, 0.004)
                 .tick_size(0.1).lot_size(1e-8).last_trades_capacity(0))
        hbt = HashMapMarketDepthBacktest([asset])
        o_log = np.zeros((n_max, 5))  # -, side, tick, qty, filled so far
        f_log = np.zeros((n_max, 3))  # order id, -, qty
        ts_log = np.zeros((n_max, 2), np.int64)  # order submit local ts (by order id), fill exchange ts
        t0 = time.perf_counter()
        requotes, last_mid, n_orders, n_f = quote_loop(hbt, params, int(a.requote_ms * 1e6), 0.1, 1e-8, 0.00005,
                                                       0.5, 4, o_log, f_log, ts_log)
        loop = time.perf_counter() - t0
        sv = hbt.state_values(0)
        o_log, f_log = o_log[:n_orders], f_log[:n_f]
        o_ts, f_ts = ts_log[:n_orders, 0].copy(), ts_log[:n_f, 1].copy()
        side = o_log[f_log[:, 0].astype(np.int64), 1]
        px = o_log[f_log[:, 0].astype(np.int64), 2] * 0.1
        q = f_log[:, 2]
        # exactly rounded sums: hftbacktest's order map iterates in a different order every run
        position = math.fsum((side * q).tolist())
        cash = -math.fsum((side * q * px).tolist())
        fee = math.fsum((0.0025 * q * px).tolist())  # every fill is a maker fill (post-only quotes)
        out = {"position": position, "cash": cash, "fee": fee, "fills": int(n_f), "volume_base": float(q.sum()),
               "volume_quote": float((q * px).sum()), "requotes": requotes, "last_mid": last_mid, "loop_s": loop,
               "orders": int(n_orders), "o_log": o_log, "f_log": f_log, "o_ts": o_ts, "f_ts": f_ts,
               "state": {"num_trades": int(sv.num_trades), "position": sv.position, "fee": sv.fee,
                         "total_pnl": sv.balance + sv.position * last_mid - sv.fee}}
        hbt.close()
        return out

    t = time.perf_counter()
    r1 = one_run()
    first = time.perf_counter() - t
    to_result = time.time() - a.launched
    r2 = one_run()
    total = r2["cash"] + r2["position"] * r2["last_mid"] - r2["fee"]
    if a.dump:
        o, f = r2["o_log"], r2["f_log"]
        np.savez(a.dump, o_ts=r2["o_ts"], o_side=o[:, 1].astype(np.int64),
                 o_tick=o[:, 2].astype(np.int64), o_qty=o[:, 3], o_filled=o[:, 4],
                 f_oid=f[:, 0].astype(np.int64), f_ts=r2["f_ts"], f_qty=f[:, 2])
    return {
        "side": "hftbacktest", "import_s": imp, "load_s": load, "first_run_s": first,
        "time_to_result_s": to_result, "steady_loop_s": r2["loop_s"], "rows": int(len(data)),
        "events_per_second": len(data) / r2["loop_s"], "fills": r2["fills"],
        "volume_base": r2["volume_base"], "volume_quote": r2["volume_quote"], "position": r2["position"],
        "total_pnl": total, "fees": r2["fee"], "gross_pnl": total + r2["fee"],
        "deterministic": r1["fills"] == r2["fills"] and r1["cash"] == r2["cash"],
        "orders": r2["orders"], "requotes": r2["requotes"], "hbt_state": r2["state"],
        "pnl_decomposition": False,
    }


# --------------------------------------------------------------------------- parent


def prepare(a: argparse.Namespace) -> tuple[Path, Path, dict]:
    import numpy as np

    from mm_core.backtest import event_arrays as ea
    from mm_core.backtest.latency import ConstantLatency, local_timestamps

    kw = dict(updates_per_second=a.updates_per_second, trades_per_second=a.trades_per_second)
    t = time.perf_counter()
    m, path, hit = ea.cached(ea.simulator_key(a.seconds, a.seed, predictive=False, depth=10, **kw),
                             lambda: ea.from_simulator(a.seconds, a.seed, depth=10, **kw))
    gen = time.perf_counter() - t
    hbt_path = path.with_name(path.stem + f"-hbt-{a.latency_ms:g}ms.npz")
    if not hbt_path.is_file():
        loc = local_timestamps(m.exch_ts, m.msg, ConstantLatency(a.latency_ms, a.latency_ms, a.latency_ms))
        tmp = hbt_path.with_name(hbt_path.name + ".tmp.npz")
        np.savez(tmp, data=ea.to_hftbacktest(m, loc))
        os.replace(tmp, hbt_path)
    info = {**m.describe(), "generated_s": None if hit else gen, "cache": str(path)}
    return path, hbt_path, info


def run_child(side: str, a: argparse.Namespace, market: Path, hbt: Path, cache_dir: str,
              dump: str = "") -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--market", str(market),
           "--hbt-data", str(hbt), "--seconds", str(a.seconds), "--half-spread-bps", str(a.half_spread_bps),
           "--size", str(a.size), "--skew-bps", str(a.skew_bps), "--max-inventory", str(a.max_inventory),
           "--latency-ms", str(a.latency_ms), "--requote-ms", str(a.requote_ms), "--launched", str(time.time())]
    if dump:
        cmd += ["--dump", dump]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"{side} child failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_wall_s"] = wall
    return res


def main(argv=None) -> int:
    a = _args(argv)
    if a.child:
        res = child_ours(a) if a.child == "ours" else child_hbt(a)
        print(json.dumps(res))
        return 0
    market, hbt, info = prepare(a)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fills-") as tmp:
        dumps = {side: str(Path(tmp) / f"{side}.npz") for side in ("ours", "hbt")}
        for side in ("ours", "hbt"):
            with tempfile.TemporaryDirectory(prefix=f"numba-{side}-") as cache:
                results[f"{side}_cold"] = run_child(side, a, market, hbt, cache)
                results[f"{side}_warm"] = run_child(side, a, market, hbt, cache, dumps[side])
        alignment = align_fills(dumps["ours"], dumps["hbt"])
    if a.json:
        print(json.dumps({"data": info, "results": results, "alignment": alignment}, indent=2, default=str))
        return 0
    print_report(info, results, a, alignment)
    return 0


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
    only_o, only_h = sorted(set(ko) - set(kh)), sorted(set(kh) - set(ko))
    return {"orders_ours": len(ko), "orders_hbt": len(kh), "orders_common": len(common),
            "first_order_only_ours": only_o[0] if only_o else None,
            "first_order_only_hbt": only_h[0] if only_h else None,
            "fill_events_ours": int(o["f_qty"].size), "fill_reports_hbt": int(h["f_qty"].size),
            "orders_with_fills": with_fills, "same_filled_qty": same_qty, "same_last_fill_ts": same_ts,
            "differences": diffs}


def print_report(info: dict, r: dict, a: argparse.Namespace, al: dict) -> None:
    o_c, o_w, h_c, h_w = r["ours_cold"], r["ours_warm"], r["hbt_cold"], r["hbt_warm"]
    gen = info["generated_s"]
    print(f"data: {info['span_s']:.0f} s simulated, {info['messages']:,} messages "
          f"({info['messages'] - info['trades']:,} book messages = {info['book_rows']:,} level rows, "
          f"{info['trades']:,} trades), {info['rows']:,} rows; "
          + (f"generated in {gen:.1f} s (cached now)" if gen is not None else "loaded from cache"))
    print(f"setup: baseline quotes half-spread {a.half_spread_bps} bps, size {a.size}, requote {a.requote_ms:g} ms, "
          f"constant latency {a.latency_ms:g} ms each way, risk-averse queue, fees 0.25/0.40 %, no rate limit\n")
    rows = [
        ("whole process, cold JIT cache (s)", o_c["process_wall_s"], h_c["process_wall_s"], "{:.2f}"),
        ("whole process, warm JIT cache (s)", o_w["process_wall_s"], h_w["process_wall_s"], "{:.2f}"),
        ("  time to first result, cold (s)", o_c["time_to_result_s"], h_c["time_to_result_s"], "{:.2f}"),
        ("  time to first result, warm (s)", o_w["time_to_result_s"], h_w["time_to_result_s"], "{:.2f}"),
        ("  first run incl. JIT, cold (s)", o_c["first_run_s"], h_c["first_run_s"], "{:.2f}"),
        ("steady-state events/s (rows)", o_w["events_per_second"], h_w["events_per_second"], "{:,.0f}"),
        ("orders sent", o_w["orders"], h_w["orders"], "{:,}"),
        ("fills", o_w["fills"], h_w["fills"], "{:,}"),
        ("volume (BTC)", o_w["volume_base"], h_w["volume_base"], "{:.4f}"),
        ("final position (BTC)", o_w["position"], h_w["position"], "{:+.4f}"),
        ("gross PnL before fees (EUR)", o_w["gross_pnl"], h_w["gross_pnl"], "{:+.2f}"),
        ("fees (EUR)", o_w["fees"], h_w["fees"], "{:.2f}"),
        ("total PnL (EUR)", o_w["total_pnl"], h_w["total_pnl"], "{:+.2f}"),
        ("deterministic (2 runs equal)", o_w["deterministic"], h_w["deterministic"], "{}"),
    ]
    print(f"{'':38s}{'mm_core':>16s}{'hftbacktest':>16s}")
    for name, x, y, fmt in rows:
        print(f"{name:38s}{fmt.format(x):>16s}{fmt.format(y):>16s}")
    print(f"\nours: PnL decomposition on: spread {o_w['spread_capture']:+.2f}, adverse(30 s) "
          f"{o_w['adverse_selection']:+.2f}, inventory {o_w['inventory_pnl']:+.2f}, fees {-o_w['fees']:+.2f} "
          f"= {o_w['total_pnl']:+.2f}; orders {o_w['orders']:,}, cancels {o_w['cancels']:,}, "
          f"post-only rejects {o_w['post_only_rejects']:,}")
    speed = o_w["events_per_second"] / h_w["events_per_second"]
    print(f"steady state: ours {speed:.1f}x hftbacktest; whole process warm: "
          f"{o_w['process_wall_s']:.2f} s vs {h_w['process_wall_s']:.2f} s, cold: "
          f"{o_c['process_wall_s']:.2f} s vs {h_c['process_wall_s']:.2f} s")
    st = h_w["hbt_state"]
    print(f"\nfill by fill (warm runs): orders {al['orders_common']:,} identical of {al['orders_ours']:,} ours / "
          f"{al['orders_hbt']:,} hftbacktest (same submit time, side, price, qty); orders with fills "
          f"{al['orders_with_fills']:,}: same filled qty {al['same_filled_qty']:,}, same last-fill exchange time "
          f"{al['same_last_fill_ts']:,}; fill events ours {al['fill_events_ours']:,}, fill reports read by the "
          f"hftbacktest loop {al['fill_reports_hbt']:,}")
    for d in al["differences"]:
        print(f"  differs: order {d['order']}: ours (qty, last fill ts) {d['ours']}, hftbacktest {d['hbt']}")
    if al["first_order_only_ours"] or al["first_order_only_hbt"]:
        print(f"  first order only in ours: {al['first_order_only_ours']}; only in hftbacktest: "
              f"{al['first_order_only_hbt']}")
    print(f"hftbacktest's own state_values (drops partial fills, hftbacktest#299/#316): trades {st['num_trades']:,} "
          f"vs {h_w['fills']:,} fill reports, position {st['position']:+.8f} vs {h_w['position']:+.8f}, "
          f"PnL {st['total_pnl']:+.2f} vs {h_w['total_pnl']:+.2f}")
    print(EXPLANATION)


EXPLANATION = """
why the engines agree now (they did not before: ours 11,167 fills vs hftbacktest 7,900 on this day):
  1. benchmark bug, hftbacktest side: its quote loop aligned its timer from current_timestamp, which
     is i64::MAX before the first elapse, so it requoted 45.2 ms off our grid (different quotes from
     the first requote on). Fix: elapse(0) first. Alone this changes little (7,900 -> 7,890 fills).
  2. engine bug, ours: a fill report due before the next requote was processed after it when the
     fill happened inside a block of market rows (the block ran up to the timer), so the policy
     skewed with a position up to 100 ms stale. Fix: a fill's report becomes the next action when
     it is due first (known-answer test). Ours 11,167 -> 12,167 fills.
  3. hftbacktest 2.4.4's local state ignores PartiallyFilled responses (local.rs applies fills only
     on Status::Filled; hftbacktest#299, #316, fix in PR #323 not released), so hbt.position() and
     state_values miss every partial fill; after the first one (8.4 h in) its skew and inventory cap
     act on a wrong position and its quotes diverge (7,890 fills). Fix in the benchmark: the
     hftbacktest loop sums its position from fill reports, as ours does. Then 12,167 vs 12,167.
  Remaining modelling differences that do not occur with this strategy on this day: two of our
  orders at one price share one trade's volume in queue order in ours (hftbacktest lets each see the
  whole trade: BacktestConfig(share_trades=False) reproduces that); ours has Kraken's rate counter
  (off here); hftbacktest cannot cancel an order before its ack (10 ms round trip < 100 ms requote).
  Depth truncation is identical: both engines read the same rows, including the explicit deletes
  our pre-pass inserts for levels that leave Kraken's depth-10 view."""


if __name__ == "__main__":
    raise SystemExit(main())
