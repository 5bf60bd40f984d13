"""Research features on a day-sized input, beside a plain-pandas implementation of the same features.

Input: one simulated day of BTC/EUR written as a collector run directory (``mm_core.research.sim_data``;
cached under ``--cache``, generated once: ~0.86M book messages + ~86k trades + top-of-book rows).

Ours, stages timed (best of ``--rounds``, after one warm-up so numba's compile/cache load is excluded):

* ``read``  -- Parquet run directory -> flat columns (Arrow, vectorised);
* ``book``  -- numba L2 book replay -> top of book + top-5 sizes after every message;
* ``event`` -- event-time features (one row per book message);
* ``grid``  -- 100 ms clock-grid features (864k rows for a day);
* ``total`` -- all of the above, the figure to quote (events = book messages + trades).

The peer, on the same run directory in the same run: **pandas** the way a notebook would do it --
``pd.read_parquet`` of the book and trade parts, the L2 book kept in two dicts while iterating the
messages in Python (snapshots reset it, levels beyond the message's depth are dropped), then the
same feature definitions (mid, spread, L1 and top-5 depth imbalance, weighted mid, realized vol
and trade-flow imbalance over trailing windows, time since update) with pandas/numpy column
operations, on the event rows and on the 100 ms grid. Its output is checked against ours, column by
column, before any figure is printed (a peer that computes something else is no peer). It runs
once (``--peer-rounds``): a day takes it tens of seconds.

Run: ``python bench/bench_features.py [--seconds 86400] [--cache DIR] [--rounds 3] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mm_core.research.book_frames import columns_from_parquet, reconstruct  # noqa: E402
from mm_core.research.features import (DEFAULT_DEPTH_LEVELS, DEFAULT_STEP_MS, NS, RV_WINDOWS_S,  # noqa: E402
                                       TFI_WINDOWS_S, event_features, grid_features)
from mm_core.research.sim_data import SIM_TICK_SIZE, write_sim_run  # noqa: E402

CHECKED = ("bid", "ask", "bid_qty", "ask_qty", "mid", "spread", "imbalance", "depth_imbalance", "wmid",
           "rv_1s", "rv_5s", "rv_30s", "tfi_1s", "tfi_5s", "time_since_update_s")


def ensure_day(cache: Path, seconds: float, seed: int) -> Path:
    run = cache / f"simday-{int(seconds)}s-seed{seed}"
    if not (run / "sim.json").exists():
        print(f"generating {seconds:g} s of simulator data into {run} (once) ...", file=sys.stderr)
        t = time.perf_counter()
        s = write_sim_run(run, seconds, seed, True, progress=lambda m: print("  " + m, file=sys.stderr))
        print(f"  {s['events']:,} events written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return run


# --------------------------------------------------------------------------- the pandas peer


def pandas_features(run: Path, tick_size: float, levels: int = DEFAULT_DEPTH_LEVELS,
                    step_ms: int = DEFAULT_STEP_MS) -> tuple[dict[str, float], object, object]:
    """The same features the plain-pandas way; returns (stage seconds, event frame, grid frame)."""
    import pandas as pd

    times: dict[str, float] = {}
    t = time.perf_counter()
    files = sorted((run / "parquet").rglob("book-*.parquet"))
    book = pd.concat([pd.read_parquet(f, columns=["ts_exchange", "kind", "depth", "bids", "asks"],
                                      dtype_backend="numpy_nullable") for f in files], ignore_index=True)
    tfiles = sorted((run / "parquet").rglob("trade-*.parquet"))
    trades = pd.concat([pd.read_parquet(f, columns=["ts_exchange", "qty", "side"], dtype_backend="numpy_nullable")
                        for f in tfiles], ignore_index=True)
    times["read"] = time.perf_counter() - t

    t = time.perf_counter()
    n = len(book)
    best_bid = np.full(n, np.nan)
    best_ask = np.full(n, np.nan)
    bq = np.zeros((n, levels))
    aq = np.zeros((n, levels))
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for r, (kind, depth, bl, al) in enumerate(zip(book["kind"], book["depth"], book["bids"], book["asks"])):
        if kind == "book_snapshot":
            bids.clear()
            asks.clear()
        for side, lv in ((bids, bl), (asks, al)):
            for x in lv:
                if x["qty"] > 0:
                    side[x["price"]] = x["qty"]
                else:
                    side.pop(x["price"], None)
        b = sorted(bids, reverse=True)
        a = sorted(asks)
        for k in b[depth:]:
            del bids[k]
        for k in a[depth:]:
            del asks[k]
        if b:
            best_bid[r] = b[0]
            bq[r, :min(levels, len(b))] = [bids[p] for p in b[:levels]]
        if a:
            best_ask[r] = a[0]
            aq[r, :min(levels, len(a))] = [asks[p] for p in a[:levels]]
    times["book"] = time.perf_counter() - t

    t = time.perf_counter()
    raw = book["ts_exchange"]
    ts = raw.where(raw > 0).bfill().ffill().astype("int64").cummax().to_numpy()
    ev = pd.DataFrame({"ts": ts, "bid": best_bid, "ask": best_ask, "bid_qty": bq[:, 0], "ask_qty": aq[:, 0]})
    ev["mid"] = (ev["bid"] + ev["ask"]) / 2
    ev["spread"] = ev["ask"] - ev["bid"]
    tot = ev["bid_qty"] + ev["ask_qty"]
    ev["imbalance"] = ((ev["bid_qty"] - ev["ask_qty"]) / tot).where(tot > 0)
    db, da = bq.sum(axis=1), aq.sum(axis=1)
    ev["depth_imbalance"] = pd.Series((db - da) / (db + da)).where(db + da > 0)
    ev["wmid"] = ((ev["bid"] * ev["ask_qty"] + ev["ask"] * ev["bid_qty"]) / tot).where(tot > 0)
    r2 = np.log(ev["mid"]).diff().fillna(0.0).replace([np.inf, -np.inf], 0.0) ** 2
    cum_r2 = np.concatenate([[0.0], r2.cumsum().to_numpy()])
    trades = trades.assign(ts=trades["ts_exchange"].astype("int64")).sort_values("ts", kind="stable")
    sign = np.where(trades["side"] == "buy", 1.0, -1.0)
    tts = trades["ts"].to_numpy()
    cum_v = np.concatenate([[0.0], trades["qty"].cumsum().to_numpy()])
    cum_s = np.concatenate([[0.0], (trades["qty"] * sign).cumsum().to_numpy()])

    def windows(frame, at, hi_rows):
        for w in RV_WINDOWS_S:
            lo = np.searchsorted(ts, at - int(w * NS), side="right")
            frame[f"rv_{w:g}s"] = 1e4 * np.sqrt(np.maximum(cum_r2[hi_rows] - cum_r2[lo], 0.0))
        for w in TFI_WINDOWS_S:
            hi = np.searchsorted(tts, at, side="right")
            lo = np.searchsorted(tts, at - int(w * NS), side="right")
            v, s = cum_v[hi] - cum_v[lo], cum_s[hi] - cum_s[lo]
            frame[f"tfi_{w:g}s"] = np.where(v > 0, s / np.where(v > 0, v, 1.0), 0.0)

    windows(ev, ts, np.arange(1, n + 1))
    ev["time_since_update_s"] = ev["ts"].diff().fillna(0).to_numpy() / NS
    times["event"] = time.perf_counter() - t

    t = time.perf_counter()
    step = step_ms * 1_000_000
    first = ev.loc[ev["bid"].notna() & ev["ask"].notna(), "ts"].iloc[0]
    grid_ts = np.arange(-(-first // step) * step, ts[-1] + 1, step, dtype=np.int64)
    gr = pd.merge_asof(pd.DataFrame({"t": grid_ts}), ev.assign(row=np.arange(n)), left_on="t", right_on="ts",
                       direction="backward")
    gr["time_since_update_s"] = (gr["t"] - gr["ts"]) / NS
    windows(gr, grid_ts, np.searchsorted(ts, grid_ts, side="right"))
    gr = gr.drop(columns=["ts", "row"]).rename(columns={"t": "ts"})
    times["grid"] = time.perf_counter() - t
    times["total"] = sum(times[k] for k in ("read", "book", "event", "grid"))
    return times, ev, gr


def compare(ours, peer, name: str) -> float:
    """Largest absolute difference over the checked columns (NaN in the same places, else inf)."""
    worst = 0.0
    for col in CHECKED:
        a = ours[col].to_numpy()
        b = np.asarray(peer[col], dtype=np.float64)
        if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
            raise AssertionError(f"{name}: column {col} differs in shape or missing values")
        ok = ~np.isnan(a)
        if ok.any():
            worst = max(worst, float(np.max(np.abs(a[ok] - b[ok]))))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=86_400.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/mm_core-bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peer-rounds", type=int, default=1, help="timed runs of the pandas peer (best shown)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    run = ensure_day(args.cache, args.seconds, args.seed)

    cols = columns_from_parquet(run)  # warm-up: numba compile / cache load, OS file cache
    fr = reconstruct(cols, tick_size=SIM_TICK_SIZE)
    event_features(fr)
    grid_features(fr)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        cols = columns_from_parquet(run)
        t1 = time.perf_counter()
        fr = reconstruct(cols, tick_size=SIM_TICK_SIZE)
        t2 = time.perf_counter()
        ev = event_features(fr)
        t3 = time.perf_counter()
        g = grid_features(fr)
        t4 = time.perf_counter()
        for k, v in (("read", t1 - t0), ("book", t2 - t1), ("event", t3 - t2), ("grid", t4 - t3), ("total", t4 - t0)):
            best[k] = min(best.get(k, float("inf")), v)
    n = cols.n_events
    peer: dict[str, float] = {}
    for _ in range(max(1, args.peer_rounds)):
        times, pev, pgr = pandas_features(run, SIM_TICK_SIZE)
        peer = {k: min(peer.get(k, float("inf")), v) for k, v in times.items()}
    diff_ev = compare(ev, pev, "event rows")
    diff_gr = compare(g, pgr, "grid rows")
    import pandas as pd

    result = {
        "input": str(run), "book_messages": cols.n_book, "trades": cols.n_trades, "events": n,
        "event_rows": ev.height, "grid_rows": g.height,
        "seconds": {k: round(v, 4) for k, v in best.items()},
        "events_per_s": {k: round(n / v) for k, v in best.items()},
        "peer": f"pandas {pd.__version__} (read_parquet, dict book in a Python loop, column operations)",
        "peer_seconds": {k: round(v, 4) for k, v in peer.items()},
        "peer_events_per_s": {k: round(n / v) for k, v in peer.items()},
        "max_abs_diff": {"event": diff_ev, "grid": diff_gr},
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"input: {run}  ({cols.n_book:,} book messages + {cols.n_trades:,} trades = {n:,} events; "
          f"{ev.height:,} event rows, {g.height:,} grid rows)")
    print(f"peer: {result['peer']}, same run directory, same run; its features equal ours to "
          f"{max(diff_ev, diff_gr):.1e} (largest absolute difference over {len(CHECKED)} columns, event and grid rows)")
    print(f"{'stage':8s} {'ours s':>9s} {'ours events/s':>14s} {'pandas s':>10s} {'pandas ev/s':>12s} {'pandas/ours':>12s}")
    for k in ("read", "book", "event", "grid", "total"):
        print(f"{k:8s} {best[k]:9.3f} {n / best[k]:14,.0f} {peer[k]:10.3f} {n / peer[k]:12,.0f} {peer[k] / best[k]:11.1f}x")
    print(f"ours: best of {args.rounds} rounds after a warm-up; pandas: best of {max(1, args.peer_rounds)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
