"""Trading run directories for the TCA / reconcile-day / incidents / rollout tests.

Built by the real commands (``mm backtest --out``) on the offline simulator, or by hand on a tiny
market whose every number is known (:func:`known_market_session`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mm_core.cli import main

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z (the simulator's start)
S = 1_000_000_000
# quotes at the best: the simulator's market has a one-tick spread ~99 % of the time, where 0.05 bps
# (about 4 ticks behind the best) is reached only by rare sweeps (a handful of fills per hour)
BASE_ARGS = ("--half-spread-bps", "0", "--rate-tier", "pro", "--fees", "value:0.02,0.1")


def backtest_run(out: Path, cache: Path, *, seconds: float = 1800, seed: int = 3,
                 extra: Sequence[str] = ()) -> Path:
    """``mm backtest --sim-seconds ... --out OUT`` (rows cached under ``cache``)."""
    old = os.environ.get("MM_CACHE_DIR")
    os.environ["MM_CACHE_DIR"] = str(cache)
    try:
        rc = main(["backtest", "--sim-seconds", str(seconds), "--seed", str(seed), *BASE_ARGS, *extra,
                   "--out", str(out), "--json"])
    finally:
        if old is None:
            os.environ.pop("MM_CACHE_DIR", None)
        else:
            os.environ["MM_CACHE_DIR"] = old
    assert rc == 0
    return out


def as_paper(run_dir: Path, *, uptime: float = 1.0, risk_breaches: Optional[int] = 0,
             events: Optional[list[dict[str, Any]]] = None) -> Path:
    """Relabel a backtest run directory as a paper session with a collector-style summary and event log
    (what ``mm paper --out`` will write), keeping its fills, orders and market reference."""
    info = json.loads((run_dir / "session.json").read_text())
    info["source"] = "paper"
    (run_dir / "session.json").write_text(json.dumps(info))
    dur = (info["ended_ns"] - info["started_ns"]) / 1e9
    summary = {"duration_s": dur, "uptime_share": uptime, "connected_s": uptime * dur, "exit_reason": "signal"}
    if risk_breaches is not None:
        summary["risk_breaches"] = risk_breaches
    (run_dir / "summary.json").write_text(json.dumps(summary))
    evs = events if events is not None else [{"kind": "connected", "ts_capture": info["started_ns"]}]
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evs))
    return run_dir


def known_market(path: Path, mids: Sequence[tuple[float, float]], *, tick: float = 0.1, spread_ticks: int = 2,
                 trades: Sequence[tuple[float, int, float]] = ()) -> Path:
    """A ``.npz`` of rows whose mid is ``mid`` from second ``t`` on (``mids`` = [(t_s, mid), ...]) and
    taker trades ``(t_s, side, price)``."""
    from mm_core.backtest.event_arrays import DEPTH, TRADE, MarketArrays

    rows = []
    for t, mid in mids:
        bid = round((mid - spread_ticks * tick / 2) / tick)
        rows.append((T0 + int(t * S), DEPTH, 1, bid, bid, bid + spread_ticks))
    for t, side, px in trades:
        rows.append((T0 + int(t * S), TRADE, side, round(px / tick), None, None))
    rows.sort(key=lambda r: (r[0], r[1]))
    n = len(rows)
    bb = np.empty(n, np.int64)
    ba = np.empty(n, np.int64)
    last = (rows[0][4], rows[0][5])
    for i, r in enumerate(rows):
        if r[4] is not None:
            last = (r[4], r[5])
        bb[i], ba[i] = last
    m = MarketArrays(
        kind=np.array([r[1] for r in rows], np.uint8), side=np.array([r[2] for r in rows], np.int8),
        exch_ts=np.array([r[0] for r in rows], np.int64), capture_ts=np.array([r[0] for r in rows], np.int64),
        msg=np.arange(n, dtype=np.int64), price=np.array([r[3] * tick for r in rows]),
        tick=np.array([r[3] for r in rows], np.int64), qty=np.ones(n), best_bid_tick=bb, best_ask_tick=ba,
        best_bid_qty=np.ones(n), best_ask_qty=np.ones(n), tick_size=tick, lot_size=1e-8, depth=10)
    return m.save(path)


def known_session(run_dir: Path, market_npz: Path, fills: list[dict[str, Any]], orders: list[dict[str, Any]], *,
                  source: str = "paper", extra_fill_columns: Optional[dict[str, list]] = None) -> Path:
    """A session directory written with the real writer (session_dir.write_session) from plain rows."""
    import pyarrow as pa

    from mm_core.backtest.event_arrays import MarketArrays
    from mm_core.trading import session_dir as sd
    from mm_core.trading.tables import FILL_COLUMNS, ORDER_COLUMNS, fill_schema, order_schema

    m = MarketArrays.load(market_npz)
    fdefaults = {"local_ts": None, "maker": True, "fee": 0.0, "fee_asset": "EUR", "cost": None, "exec_id": None,
                 "cl_ord_id": None, "trade_id": None, "exchange": "kraken", "symbol": "BTC/EUR", "source": source}
    frows = {c: [{**fdefaults, **f}.get(c) for f in fills] for c in FILL_COLUMNS}
    ft = pa.table(frows, schema=fill_schema())
    for name, vals in (extra_fill_columns or {}).items():
        ft = ft.append_column(name, pa.array(vals))
    odefaults = {"cl_ord_id": None, "done_ts": None, "exchange": "kraken", "symbol": "BTC/EUR", "source": source}
    ot = pa.table({c: [{**odefaults, **o}.get(c) for o in orders] for c in ORDER_COLUMNS}, schema=order_schema())
    info = sd.session_info(source=source, exchange="kraken", symbol="BTC/EUR",
                           instrument={"tick_size": m.tick_size, "lot_size": m.lot_size, "base": "BTC", "quote": "EUR"},
                           started_ns=int(m.exch_ts[0]), ended_ns=int(m.exch_ts[-1]), fair="mid",
                           market={"kind": "arrays", "path": str(market_npz)}, market_fp=sd.market_fingerprint(m),
                           params={})
    return sd.write_session(run_dir, info, ft, ot)
