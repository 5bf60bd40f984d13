"""Feature computation rate (events/s) on a day-sized input: one simulated day of BTC/EUR.

Input: a simulator day written as a collector run directory (``mm_core.research.sim_data``; cached
under ``--cache``, generated once: ~0.86M book messages + ~86k trades + top-of-book rows).

Stages timed (best of ``--rounds``, after one warm-up so numba's compile/cache load is excluded):

* ``read``     -- Parquet run directory -> flat columns (Arrow, vectorised);
* ``book``     -- numba L2 book replay -> top of book + top-5 sizes after every message;
* ``event``    -- event-time features (one row per book message);
* ``grid``     -- 100 ms clock-grid features (864k rows for a day);
* ``total``    -- all of the above, the figure to quote (events = book messages + trades).

Beside it, the same features by a straightforward per-event Python loop over canonical event
objects (dict book, ``sorted`` per message) on the first ``--baseline-events`` events -- what a
notebook usually starts with, and the reason the numba/columnar path exists. (No anchor ships a
comparable feature pipeline: hftbacktest's depth objects are per-event Python/numba APIs without a
batch feature path, so there is no peer figure on the same data.)

Run: ``python bench/bench_features.py [--seconds 86400] [--cache DIR] [--rounds 3] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mm_core.events import BookLevels, BookSnapshot, Trade  # noqa: E402
from mm_core.research.book_frames import columns_from_parquet, reconstruct  # noqa: E402
from mm_core.research.features import event_features, grid_features  # noqa: E402
from mm_core.research.sim_data import SIM_TICK_SIZE, sim_events, write_sim_run  # noqa: E402


def ensure_day(cache: Path, seconds: float, seed: int) -> Path:
    run = cache / f"simday-{int(seconds)}s-seed{seed}"
    if not (run / "sim.json").exists():
        print(f"generating {seconds:g} s of simulator data into {run} (once) ...", file=sys.stderr)
        t = time.perf_counter()
        s = write_sim_run(run, seconds, seed, True, progress=lambda m: print("  " + m, file=sys.stderr))
        print(f"  {s['events']:,} events written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return run


def python_baseline(seconds: float, seed: int, limit: int) -> tuple[int, float]:
    """Per-event Python: dict book, best levels by sorting, mid/spread/imbalance/depth imbalance/wmid."""
    events = []
    for ev in sim_events(seconds, seed, True):
        events.append(ev)
        if len(events) >= limit:
            break
    t = time.perf_counter()
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    out = []
    buy = sell = 0.0
    for ev in events:
        if isinstance(ev, Trade):
            if ev.side == "buy":
                buy += ev.qty
            else:
                sell += ev.qty
            continue
        if not isinstance(ev, BookLevels):
            continue
        if isinstance(ev, BookSnapshot):
            bids.clear()
            asks.clear()
        for p, q in ev.bids:
            if q > 0:
                bids[p] = q
            else:
                bids.pop(p, None)
        for p, q in ev.asks:
            if q > 0:
                asks[p] = q
            else:
                asks.pop(p, None)
        bb = sorted(bids, reverse=True)[: ev.depth or None]
        aa = sorted(asks)[: ev.depth or None]
        for k in [k for k in bids if k not in set(bb)]:
            del bids[k]
        for k in [k for k in asks if k not in set(aa)]:
            del asks[k]
        b, a = bb[0], aa[0]
        qb, qa = bids[b], asks[a]
        db = sum(bids[p] for p in bb[:5])
        da = sum(asks[p] for p in aa[:5])
        out.append(((a + b) / 2, (a - b) / SIM_TICK_SIZE, (qb - qa) / (qb + qa), (db - da) / (db + da),
                    (b * qa + a * qb) / (qb + qa), (buy - sell) / (buy + sell) if buy + sell else 0.0))
    return len(events), time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=86_400.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/mm_core-bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-events", type=int, default=100_000)
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
    base_n, base_t = python_baseline(args.seconds, args.seed, args.baseline_events)
    result = {
        "input": str(run), "book_messages": cols.n_book, "trades": cols.n_trades, "events": n,
        "event_rows": ev.height, "grid_rows": g.height,
        "seconds": {k: round(v, 4) for k, v in best.items()},
        "events_per_s": {k: round(n / v) for k, v in best.items()},
        "baseline_python_events": base_n, "baseline_python_events_per_s": round(base_n / base_t),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"input: {run}  ({cols.n_book:,} book messages + {cols.n_trades:,} trades = {n:,} events; "
          f"{ev.height:,} event rows, {g.height:,} grid rows)")
    print(f"{'stage':8s} {'best s':>9s} {'events/s':>14s}")
    for k in ("read", "book", "event", "grid", "total"):
        print(f"{k:8s} {best[k]:9.3f} {n / best[k]:14,.0f}")
    print(f"per-event Python baseline (first {base_n:,} events, features only, no file read): "
          f"{base_n / base_t:,.0f} events/s  -> ours (total, incl. Parquet read) is {(n / best['total']) / (base_n / base_t):.0f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
