"""Transaction-cost analysis of a trading session: ``mm tca RUN_DIR... [--html OUT] [--json] [--csv F]``.

Works on any trading run directory (mm_core/trading/session_dir.py: ``mm backtest --out``, and the
directories ``mm paper``/``mm live`` write), so paper, live and backtest fills are measured the
same way, against the market data the session traded on.

Per fill (prices in the quote currency, figures in basis points of the fill price, positive =
good for us):

- ``markout_h`` = side * (m(t + h) - p) / p at h = 1 s, 5 s, 30 s, 300 s, against the fair mid the
  strategy used (``session.json`` ``fair``) and against the plain mid. A fill whose horizon runs
  past the end of the data has no markout at that horizon (it is left out, not clipped).
- ``spread capture`` = side * (m(t) - p) / p and ``adverse selection`` = side * (m(t + h) - m(t)) / p;
  their sum is the markout.
- ``slippage`` = side * (p - mid at the order's creation) / mid (positive = paid more than the mid
  when the order was sent; the order's arrival at the exchange is within the entry latency of that).
- fee (quote currency and bp of notional) and liquidity (maker share, by quantity).
- ``queue time`` = local time the fill was reported - local time the order was sent.
- ``fill rate`` per quote: orders with any fill / orders the venue accepted, and filled / quoted qty.

Grouped by UTC day, UTC hour of day, side, volatility bucket, and -- when the fills table carries
them -- the latency and volatility regimes (optional columns ``lat_regime``, ``vol_regime``).
The volatility bucket is computed from the market data itself, like the regimes' sigma: 1 s mid
log returns, root mean square over the trailing ``vol_window_s``, in bp per sqrt(second); bucket
edges are quantiles of that series over the sessions' *time* (``[tca] vol_bucket_quantiles``:
"high" = the most volatile 20 % of the time), or fixed edges (``vol_bucket_edges_bp``).

Means are quantity-weighted (they add up like the PnL) with cluster-robust t intervals
(:mod:`mm_core.trading.tca_stats`: fills within seconds are not independent). The PnL of each
session is decomposed with :func:`mm_core.backtest.pnl.decompose` using the fees the session
recorded.

Exit codes: 0 = analysed (zero fills is an answer), 2 = unreadable input.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mm_core.trading.session_dir import (OPTIONAL_FILL_COLUMNS, Session, SessionError, load_market,
                                         load_session)
from mm_core.trading.tca_stats import cluster_mean_ci

HORIZONS_S: tuple[float, ...] = (1.0, 5.0, 30.0, 300.0)
CURVE_GRID_S: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)  # HTML curves
VOL_MIN_WINDOW_S = 60.0  # the trailing vol is undefined until this much of its window has data
_S = 1_000_000_000
_DAY_NS = 86_400 * _S
DAILY_COLUMNS = ("date", "runs", "source", "fills", "volume_base", "volume_quote", "fees", "fee_bps",
                 "maker_share", "pnl", "spread_capture_bps",
                 *(f"markout_{h:g}s_{x}" for h in HORIZONS_S for x in ("bps", "lo", "hi")),
                 "adverse_30s_bps", "slippage_bps", "queue_time_p50_s", "fill_rate", "orders")


def hkey(h: float) -> str:
    return f"{h:g}s"


@dataclass(frozen=True)
class TcaSettings:
    cluster_s: float = 60.0
    min_clusters: int = 5
    confidence: float = 0.95
    vol_window_s: float = 300.0
    vol_bucket_quantiles: tuple[float, ...] = (0.5, 0.8)
    vol_bucket_edges_bp: tuple[float, ...] = ()
    worst_fills: int = 20

    @classmethod
    def from_config(cls, cfg) -> "TcaSettings":
        t = cfg.tca
        return cls(t.cluster_s, t.min_clusters, t.confidence, t.vol_window_s, tuple(t.vol_bucket_quantiles),
                   tuple(t.vol_bucket_edges_bp), t.worst_fills)

    def describe(self) -> dict[str, Any]:
        return {"horizons_s": list(HORIZONS_S), "weights": "fill quantity",
                "ci": f"cluster-robust (CR1) t interval, {self.confidence:g}, clusters = clock blocks of "
                      f"max({self.cluster_s:g} s, horizon), none below {self.min_clusters} clusters",
                "vol_window_s": self.vol_window_s, "vol_unit": "bp per sqrt(s) of 1 s mid log returns",
                "vol_bucket_quantiles": list(self.vol_bucket_quantiles),
                "vol_bucket_edges_bp": list(self.vol_bucket_edges_bp)}


class RecordedFees:
    """A fee model that returns the fees a session recorded (so the PnL split charges the same)."""

    name = "recorded"
    uses_time = False

    def __init__(self, fee: np.ndarray) -> None:
        self.fee = np.asarray(fee, np.float64)

    def fees(self, price, qty, maker):  # noqa: ARG002 - the protocol's signature
        return self.fee

    def describe(self) -> str:
        return "fees as recorded per fill"


# --------------------------------------------------------------------------- market helpers


def value_at(times: np.ndarray, exch_ts: np.ndarray, series: np.ndarray) -> np.ndarray:
    """``series`` in force at each time (after the last row at or before it; NaN before the data)."""
    idx = np.searchsorted(exch_ts, times, side="right") - 1
    out = series[np.clip(idx, 0, series.shape[0] - 1)].astype(np.float64)
    out[idx < 0] = np.nan
    return out


def trailing_vol(exch_ts: np.ndarray, mid: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(grid times at whole seconds, trailing RMS of 1 s log mid returns in bp/sqrt(s); NaN = too short)."""
    start = (int(exch_ts[0]) // _S + 1) * _S
    end = int(exch_ts[-1])
    if end < start:
        return np.array([start], np.int64), np.array([np.nan])
    grid = np.arange(start, end + 1, _S, dtype=np.int64)
    m = value_at(grid, exch_ts, mid)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = 1e4 * np.diff(np.log(m), prepend=np.nan)
    ok = np.isfinite(r)
    r2 = np.where(ok, r * r, 0.0)
    c2 = np.concatenate([[0.0], np.cumsum(r2)])
    cn = np.concatenate([[0], np.cumsum(ok.astype(np.int64))])
    w = max(1, int(round(window_s)))
    hi = np.arange(1, grid.size + 1)
    lo = np.maximum(hi - w, 0)
    cnt = cn[hi] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        vol = np.sqrt((c2[hi] - c2[lo]) / cnt)
    vol[cnt < min(VOL_MIN_WINDOW_S, w)] = np.nan
    return grid, vol


def bucket_names(n_edges: int) -> tuple[str, ...]:
    if n_edges == 2:
        return ("low", "mid", "high")
    if n_edges == 1:
        return ("low", "high")
    return tuple(f"b{i}" for i in range(n_edges + 1))


# --------------------------------------------------------------------------- per-fill frame


@dataclass
class SessionFrame:
    """One session's per-fill and per-order measures (numpy columns), plus its PnL decomposition."""

    session: Session
    fills: dict[str, np.ndarray]
    orders: dict[str, np.ndarray]
    vol_grid: tuple[np.ndarray, np.ndarray]
    pnl: Any = None  # mm_core.backtest.pnl.PnL or None (no fills)
    notes: list[str] = field(default_factory=list)


def _regime_names(col, names: tuple[str, ...]) -> np.ndarray:
    vals = col.to_pylist()
    out = []
    for v in vals:
        if v is None:
            out.append("unknown")
        elif isinstance(v, str):
            out.append(v)
        else:
            i = int(v)
            out.append(names[i] if 0 <= i < len(names) else f"code_{i}")
    return np.asarray(out, dtype=object)


def _fee_quote(fee: np.ndarray, fee_asset: list, price: np.ndarray, base: str) -> np.ndarray:
    """Fees in the quote currency (a fee charged in the base asset is valued at the fill price)."""
    out = np.asarray(fee, np.float64).copy()
    if base:
        in_base = np.array([a == base for a in fee_asset], dtype=bool)
        out[in_base] = out[in_base] * price[in_base]
    return out


def session_frame(session: Session, vol_window_s: float = 300.0) -> SessionFrame:
    """Load the market data and compute every per-fill and per-order measure of one session."""
    from mm_core.backtest.fair import NaiveMid, fair_model
    from mm_core.backtest.pnl import decompose

    market = load_market(session)
    try:
        fair = fair_model(session.fair_spec).series(market)
    except ValueError as exc:
        raise SessionError(f"{session.run_dir}: fair model: {exc}") from None
    mid = NaiveMid().series(market)
    exch_ts = market.exch_ts
    end = int(exch_ts[-1])
    notes: list[str] = []
    t = session.fills
    order = np.argsort(t.column("ts").to_numpy(), kind="stable")
    ts = t.column("ts").to_numpy()[order].astype(np.int64)
    local = t.column("local_ts").to_numpy(zero_copy_only=False)[order]
    local = np.where(np.isfinite(local.astype(np.float64)), local, ts).astype(np.int64) if local.size else ts
    side = t.column("side").to_numpy()[order].astype(np.float64)
    price = t.column("price").to_numpy()[order].astype(np.float64)
    qty = t.column("qty").to_numpy()[order].astype(np.float64)
    maker = t.column("maker").to_numpy(zero_copy_only=False)[order].astype(bool)
    fee_raw = t.column("fee").to_numpy(zero_copy_only=False)[order].astype(np.float64)
    fa_all = t.column("fee_asset").to_pylist()
    fee_asset = [fa_all[i] for i in order]
    base = str(session.info.get("instrument", {}).get("base") or "")
    fee = _fee_quote(fee_raw, fee_asset, price, base)
    if np.isnan(fee).any():
        notes.append(f"{session.name}: {int(np.isnan(fee).sum())} fills without a recorded fee (counted as 0)")
        fee = np.nan_to_num(fee, nan=0.0)
    oid = np.asarray(t.column("order_id").to_pylist(), dtype=object)[order]
    f: dict[str, np.ndarray] = {"ts": ts, "local_ts": local, "side": side, "price": price, "qty": qty,
                                "maker": maker, "fee": fee, "order_id": oid}
    notional = price * qty
    with np.errstate(invalid="ignore", divide="ignore"):
        f["fee_bps"] = fee / notional * 1e4
    for name, series in (("fair", fair), ("mid", mid)):
        m0 = value_at(ts, exch_ts, series)
        f[f"{name}0"] = m0
        f[f"spread_{name}"] = side * (m0 - price) / price * 1e4
        for h in HORIZONS_S:
            th = ts + int(h * _S)
            mh = value_at(th, exch_ts, series)
            mh[th > end] = np.nan
            f[f"markout_{name}_{hkey(h)}"] = side * (mh - price) / price * 1e4
            f[f"adverse_{name}_{hkey(h)}"] = side * (mh - m0) / price * 1e4
            f[f"pnl_{name}_{hkey(h)}"] = side * qty * (mh - price) - fee  # quote currency, after fees
        for h in CURVE_GRID_S:
            th = ts + int(h * _S)
            mh = value_at(th, exch_ts, series)
            mh[th > end] = np.nan
            f[f"curve_{name}_{h:g}"] = side * (mh - price) / price * 1e4
    # orders: creation time, slippage, queue time
    created = np.full(ts.size, np.nan)
    o: dict[str, np.ndarray] = {}
    if session.orders is not None and session.orders.num_rows:
        ot = session.orders
        o_id = ot.column("order_id").to_pylist()
        o_created = np.asarray([np.nan if v is None else float(v) for v in ot.column("created_ts").to_pylist()])
        pos = {str(k): i for i, k in enumerate(o_id) if k is not None}
        idx = np.array([pos.get(str(k), -1) for k in oid], dtype=np.int64)
        hit = idx >= 0
        created[hit] = o_created[idx[hit]]
        if ts.size and not hit.all():
            notes.append(f"{session.name}: {int((~hit).sum())} fills whose order is not in orders.parquet")
        o = {"created_ts": o_created, "side": ot.column("side").to_numpy().astype(np.float64),
             "qty": ot.column("qty").to_numpy().astype(np.float64),
             "filled": ot.column("filled").to_numpy().astype(np.float64),
             "result": np.asarray(ot.column("result").to_pylist(), dtype=object)}
        for col, names in OPTIONAL_FILL_COLUMNS.items():
            if col in ot.column_names:
                o[col] = _regime_names(ot.column(col), names)
    elif session.orders is None:
        notes.append(f"{session.name}: no orders.parquet (no fill rate, slippage or queue time)")
    ok = np.isfinite(created)
    created_i = np.where(ok, created, 0).astype(np.int64)
    mid_arr = value_at(created_i, exch_ts, mid)
    mid_arr[~ok] = np.nan
    f["slippage_bps"] = side * (price - mid_arr) / mid_arr * 1e4
    f["queue_s"] = np.where(ok, (local - created_i) / 1e9, np.nan)
    for col, names in OPTIONAL_FILL_COLUMNS.items():
        if col in t.column_names:
            f[col] = _regime_names(t.column(col), names)[order]
    pnl = None
    if ts.size:
        arrays = {"ts": ts, "side": side.astype(np.int8), "price": price, "qty": qty, "maker": maker}
        pnl = decompose(arrays, exch_ts, fair, RecordedFees(fee), horizons_s=HORIZONS_S)
    grid = trailing_vol(exch_ts, mid, vol_window_s)
    return SessionFrame(session, f, o, grid, pnl, notes)


# --------------------------------------------------------------------------- the analysis


@dataclass
class TcaResult:
    settings: TcaSettings
    frames: list[SessionFrame]
    fills: dict[str, np.ndarray]  # all sessions, concatenated (plus run, day, hour, vol, vol_bucket)
    orders: dict[str, np.ndarray]
    vol_edges_bp: list[float]
    vol_bucket_names: tuple[str, ...]
    vol_time_share: dict[str, float]
    summary: dict[str, Any]
    groups: dict[str, dict[str, Any]]
    worst: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        from mm_core.quality import jsonable

        return jsonable({
            "runs": [_run_info(fr) for fr in self.frames],
            "settings": self.settings.describe(),
            "vol_buckets": {"names": list(self.vol_bucket_names), "edges_bp": self.vol_edges_bp,
                            "time_share": self.vol_time_share,
                            "method": ("fixed edges" if self.settings.vol_bucket_edges_bp else
                                       "quantiles " + "/".join(f"{q:g}" for q in self.settings.vol_bucket_quantiles)
                                       + " of the trailing vol over the sessions' time")},
            **self.summary,
            "groups": self.groups,
            "worst_fills": self.worst,
            "daily": self.daily,
            "notes": self.notes,
        })


def _run_info(fr: SessionFrame) -> dict[str, Any]:
    s = fr.session
    return {"run_dir": str(s.run_dir), "source": s.source, "symbol": s.symbol, "fair": s.fair_spec,
            "fills": int(fr.fills["ts"].size), "orders": int(fr.orders["qty"].size) if fr.orders else None,
            "started_ns": s.info.get("started_ns"), "ended_ns": s.info.get("ended_ns")}


def _iso_day(ns: np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(ns, np.int64).astype("datetime64[ns]").astype("datetime64[D]").astype(str),
                      dtype=object)


def _concat(frames: list[SessionFrame], key: str, what: str) -> np.ndarray:
    parts = []
    for fr in frames:
        d = fr.fills if what == "fills" else fr.orders
        n = d["ts"].size if what == "fills" else (d["qty"].size if d else 0)
        if n == 0:
            continue
        if key in d:
            parts.append(d[key])
        else:
            parts.append(np.full(n, "unknown", dtype=object))
    return np.concatenate(parts) if parts else np.zeros(0)


def analyse(sessions: Sequence[Session], settings: TcaSettings = TcaSettings()) -> TcaResult:
    """TCA of one or more sessions (see the module doc)."""
    frames = [session_frame(s, settings.vol_window_s) for s in sessions]
    notes = [n for fr in frames for n in fr.notes]
    # volatility buckets: edges from the sessions' time (not from when we happened to fill)
    all_vol = np.concatenate([fr.vol_grid[1] for fr in frames])
    finite = all_vol[np.isfinite(all_vol)]
    if settings.vol_bucket_edges_bp:
        edges = [float(e) for e in settings.vol_bucket_edges_bp]
    elif finite.size:
        edges = [float(np.quantile(finite, q)) for q in settings.vol_bucket_quantiles]
    else:
        edges = []
        notes.append("sessions too short for a trailing volatility: every fill is in bucket 'unknown'")
    names = bucket_names(len(edges)) if edges else ("unknown",)
    share = {}
    if finite.size and edges:
        b = np.searchsorted(np.asarray(edges), finite, side="right")
        share = {names[i]: float(np.mean(b == i)) for i in range(len(names))}

    def bucket_of(times: np.ndarray, fr: SessionFrame) -> tuple[np.ndarray, np.ndarray]:
        grid, vol = fr.vol_grid
        idx = np.searchsorted(grid, times, side="right") - 1
        v = np.where(idx >= 0, vol[np.clip(idx, 0, vol.size - 1)], np.nan)
        lab = np.full(times.size, "unknown", dtype=object)
        if edges:
            okv = np.isfinite(v)
            lab[okv] = np.asarray(names, dtype=object)[np.searchsorted(np.asarray(edges), v[okv], side="right")]
        return v, lab

    for i, fr in enumerate(frames):
        ts = fr.fills["ts"]
        fr.fills["run"] = np.full(ts.size, i, np.int64)
        fr.fills["day"] = _iso_day(ts)
        fr.fills["hour"] = np.asarray([f"{int(h):02d}" for h in (ts // (3600 * _S)) % 24], dtype=object)
        fr.fills["side_name"] = np.where(fr.fills["side"] > 0, "buy", "sell").astype(object)
        fr.fills["vol_bp"], fr.fills["vol_bucket"] = bucket_of(ts, fr)
        if fr.orders:
            c = fr.orders["created_ts"]
            ok = np.isfinite(c)
            ci = np.where(ok, c, 0).astype(np.int64)
            fr.orders["run"] = np.full(c.size, i, np.int64)
            fr.orders["day"] = np.where(ok, _iso_day(ci), "unknown").astype(object)
            fr.orders["hour"] = np.asarray([f"{int(h):02d}" if k else "unknown"
                                            for h, k in zip((ci // (3600 * _S)) % 24, ok)], dtype=object)
            fr.orders["side_name"] = np.where(fr.orders["side"] > 0, "buy", "sell").astype(object)
            _, lab = bucket_of(ci, fr)
            lab[~ok] = "unknown"
            fr.orders["vol_bucket"] = lab
    keys = list(frames[0].fills) if frames else []
    fills = {k: _concat(frames, k, "fills") for k in keys}
    for col in OPTIONAL_FILL_COLUMNS:
        if any(col in fr.fills for fr in frames):
            fills[col] = _concat(frames, col, "fills")
    okeys = sorted({k for fr in frames if fr.orders for k in fr.orders})
    orders = {k: _concat(frames, k, "orders") for k in okeys} if okeys else {}
    an = _Analyser(settings, fills, orders)
    summary = an.stats(np.ones(fills["ts"].size if fills else 0, bool), np.ones(_n_orders(orders), bool))
    summary["pnl"] = _pnl_totals(frames)
    group_cols = ["day", "hour", "side_name", "vol_bucket", *[c for c in OPTIONAL_FILL_COLUMNS if c in fills], "run"]
    groups: dict[str, dict[str, Any]] = {}
    for col in group_cols:
        gname = "side" if col == "side_name" else col
        fv = fills.get(col, np.zeros(0, dtype=object)) if fills else np.zeros(0, dtype=object)
        ov = orders.get(col) if orders else None
        if col == "run":
            labels = {i: frames[i].session.name for i in range(len(frames))}
            fv = np.asarray([labels[int(x)] for x in fv], dtype=object)
            ov = np.asarray([labels[int(x)] for x in ov], dtype=object) if ov is not None else None
        keyset = sorted(set(fv.tolist()) | (set(ov.tolist()) if ov is not None else set()))
        if col == "vol_bucket":
            keyset = [k for k in (*names, "unknown") if k in keyset or k in names]
        groups[gname] = {str(k): an.stats(fv == k, (ov == k) if ov is not None else None) for k in keyset}
    worst = _worst_fills(frames, settings.worst_fills)
    daily = _daily_rows(frames, groups.get("day", {}))
    return TcaResult(settings, frames, fills, orders, edges, names, share, summary, groups, worst, daily, notes)


def _n_orders(orders: dict[str, np.ndarray]) -> int:
    return int(orders["qty"].size) if orders and "qty" in orders else 0


class _Analyser:
    def __init__(self, settings: TcaSettings, fills: dict[str, np.ndarray], orders: dict[str, np.ndarray]):
        self.s = settings
        self.f = fills
        self.o = orders
        self._clusters: dict[float, np.ndarray] = {}

    def clusters(self, block_s: float) -> np.ndarray:
        if block_s not in self._clusters:
            ts, run = self.f["ts"], self.f["run"]
            self._clusters[block_s] = run * (1 << 40) + ts // int(block_s * _S)
        return self._clusters[block_s]

    def ci(self, x: np.ndarray, mask: np.ndarray, horizon: float = 0.0) -> dict[str, Any]:
        cl = self.clusters(max(self.s.cluster_s, horizon))
        return cluster_mean_ci(x[mask], self.f["qty"][mask], cl[mask], confidence=self.s.confidence,
                               min_clusters=self.s.min_clusters)

    def stats(self, mask: np.ndarray, omask: Optional[np.ndarray]) -> dict[str, Any]:
        f = self.f
        out: dict[str, Any] = {}
        n = int(mask.sum()) if mask.size else 0
        out["fills"] = n
        if n:
            q, p = f["qty"][mask], f["price"][mask]
            fees = float(f["fee"][mask].sum())
            notional = float((q * p).sum())
            out["volume_base"] = float(q.sum())
            out["volume_quote"] = notional
            out["fees"] = fees
            out["fee_bps"] = fees / notional * 1e4 if notional > 0 else None
            out["maker_share"] = float(q[f["maker"][mask]].sum() / q.sum())
            out["markouts"] = {}
            for h in HORIZONS_S:
                k = hkey(h)
                d = self.ci(f[f"markout_fair_{k}"], mask, h)
                d["mid"] = self.ci(f[f"markout_mid_{k}"], mask, h)
                out["markouts"][k] = d
            out["spread_capture"] = {"fair": self.ci(f["spread_fair"], mask), "mid": self.ci(f["spread_mid"], mask)}
            out["adverse_selection"] = {hkey(h): {"fair": self.ci(f[f"adverse_fair_{hkey(h)}"], mask, h),
                                                  "mid": self.ci(f[f"adverse_mid_{hkey(h)}"], mask, h)}
                                        for h in HORIZONS_S}
            out["slippage_bps"] = self.ci(f["slippage_bps"], mask)
            qt = f["queue_s"][mask]
            qt = qt[np.isfinite(qt)]
            out["queue_time_s"] = ({"n": int(qt.size), "p50": float(np.median(qt)), "p90": float(np.quantile(qt, 0.9)),
                                    "mean": float(qt.mean())} if qt.size else {"n": 0})
        else:
            out.update(volume_base=0.0, volume_quote=0.0, fees=0.0, fee_bps=None, maker_share=None,
                       markouts={hkey(h): {"mean": None, "ci": None, "n": 0, "clusters": 0,
                                           "mid": {"mean": None, "ci": None, "n": 0, "clusters": 0}}
                                 for h in HORIZONS_S})
        out["fill_rate"] = self.fill_rate(omask)
        return out

    def fill_rate(self, omask: Optional[np.ndarray]) -> dict[str, Any]:
        o = self.o
        if omask is None or not o or "qty" not in o:
            return {"orders": None, "filled_orders": None, "rate": None, "qty_rate": None}
        res = o["result"][omask]
        accepted = np.array([not str(r).startswith("rejected") and r != "lost" for r in res], dtype=bool)
        qty, filled = o["qty"][omask][accepted], o["filled"][omask][accepted]
        n = int(accepted.sum())
        k = int((filled > 0).sum())
        return {"orders": n, "filled_orders": k, "rate": k / n if n else None,
                "qty_rate": float(filled.sum() / qty.sum()) if n and qty.sum() > 0 else None,
                "rejected": int((~accepted).sum())}


def _pnl_totals(frames: list[SessionFrame]) -> dict[str, Any]:
    tot = {"total": 0.0, "spread_capture": 0.0, "adverse_selection": 0.0, "inventory_pnl": 0.0, "fees": 0.0,
           "max_drawdown": None}
    adv: dict[str, float] = {}
    for fr in frames:
        p = fr.pnl
        if p is None:
            continue
        tot["total"] += p.total
        tot["spread_capture"] += p.spread_capture
        tot["adverse_selection"] += p.adverse_selection
        tot["inventory_pnl"] += p.inventory_pnl
        tot["fees"] += p.fees
        tot["max_drawdown"] = max(tot["max_drawdown"] or 0.0, p.max_drawdown)
        for k, v in p.adverse_by_horizon.items():
            adv[k] = adv.get(k, 0.0) + v
    tot["adverse_by_horizon"] = adv
    tot["note"] = ("quote currency: total = spread_capture + adverse_selection (fair move within 300 s) + "
                   "inventory_pnl - fees (mm_core/backtest/pnl.py)")
    return tot


def _worst_fills(frames: list[SessionFrame], n: int) -> list[dict[str, Any]]:
    from mm_core.quality import iso_ns

    rows = []
    key = f"pnl_fair_{hkey(30.0)}"
    for fr in frames:
        f = fr.fills
        v = np.where(np.isfinite(f[key]), f[key], f[f"pnl_fair_{hkey(1.0)}"])
        for i in np.argsort(v, kind="stable")[:n]:
            if not np.isfinite(v[i]):
                continue
            rows.append({"run": fr.session.name, "time": iso_ns(int(f["ts"][i])), "ts": int(f["ts"][i]),
                         "order_id": str(f["order_id"][i]), "side": "buy" if f["side"][i] > 0 else "sell",
                         "price": float(f["price"][i]), "qty": float(f["qty"][i]), "fee": float(f["fee"][i]),
                         "maker": bool(f["maker"][i]), "vol_bucket": str(f["vol_bucket"][i]),
                         "pnl_30s": float(v[i]),
                         **{f"markout_{hkey(h)}_bps": float(f[f"markout_fair_{hkey(h)}"][i]) for h in HORIZONS_S}})
    rows.sort(key=lambda r: r["pnl_30s"])
    return rows[:n]


def _daily_rows(frames: list[SessionFrame], by_day: dict[str, Any]) -> list[dict[str, Any]]:
    from mm_core.quality import iso_ns

    pnl_by_day: dict[str, float] = {}
    runs_by_day: dict[str, set[str]] = {}
    src_by_day: dict[str, set[str]] = {}
    for fr in frames:
        s = fr.session
        days = set(fr.fills["day"].tolist()) if fr.fills["ts"].size else set()
        if fr.pnl is not None:
            for start, v in zip(fr.pnl.daily["start_ns"], fr.pnl.daily["pnl"]):
                d = iso_ns(int(start))[:10]
                pnl_by_day[d] = pnl_by_day.get(d, 0.0) + float(v)
                days.add(d)
        for d in days:
            runs_by_day.setdefault(d, set()).add(s.name)
            src_by_day.setdefault(d, set()).add(s.source)
    rows = []
    for d in sorted(set(by_day) | set(pnl_by_day)):
        g = by_day.get(d, {})
        mk = g.get("markouts", {})
        row: dict[str, Any] = {"date": d, "runs": len(runs_by_day.get(d, ())),
                               "source": "+".join(sorted(src_by_day.get(d, ()))), "fills": g.get("fills", 0),
                               "volume_base": g.get("volume_base"), "volume_quote": g.get("volume_quote"),
                               "fees": g.get("fees"), "fee_bps": g.get("fee_bps"),
                               "maker_share": g.get("maker_share"), "pnl": pnl_by_day.get(d),
                               "spread_capture_bps": (g.get("spread_capture") or {}).get("fair", {}).get("mean")}
        for h in HORIZONS_S:
            m = mk.get(hkey(h), {})
            ci = m.get("ci") or [None, None]
            row[f"markout_{h:g}s_bps"], row[f"markout_{h:g}s_lo"], row[f"markout_{h:g}s_hi"] = m.get("mean"), ci[0], ci[1]
        row["adverse_30s_bps"] = ((g.get("adverse_selection") or {}).get("30s") or {}).get("fair", {}).get("mean")
        row["slippage_bps"] = (g.get("slippage_bps") or {}).get("mean")
        row["queue_time_p50_s"] = (g.get("queue_time_s") or {}).get("p50")
        fr_ = g.get("fill_rate") or {}
        row["fill_rate"], row["orders"] = fr_.get("rate"), fr_.get("orders")
        rows.append(row)
    return rows


def write_daily_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """One row per UTC day (spreadsheet-friendly, like ``mm daily``); empty cells for unknown values."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(DAILY_COLUMNS)
        for r in rows:
            w.writerow(["" if r.get(c) is None else (f"{r[c]:.6g}" if isinstance(r[c], float) else r[c])
                        for c in DAILY_COLUMNS])
    return path


# --------------------------------------------------------------------------- text output


def _fmt_ci(d: Optional[dict[str, Any]]) -> str:
    if not d or d.get("mean") is None:
        return "-"
    ci = d.get("ci")
    s = f"{d['mean']:+.3f}"
    return s + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else " [too few clusters]")


def format_tca(r: TcaResult) -> str:
    from mm_core.quality import format_table

    s = r.summary
    lines = [f"TCA of {len(r.frames)} run(s): " + ", ".join(f"{fr.session.name} ({fr.session.source})"
                                                           for fr in r.frames)]
    p = s["pnl"]
    lines.append(f"  fills {s['fills']:,}, volume {s['volume_base']:.8g} ({s['volume_quote']:,.2f} quote), fees "
                 f"{s['fees']:,.4f}, maker share {s['maker_share'] if s['maker_share'] is None else round(s['maker_share'], 4)}")
    lines.append(f"  PnL {p['total']:+,.4f} = spread {p['spread_capture']:+,.4f} + adverse {p['adverse_selection']:+,.4f}"
                 f" + inventory {p['inventory_pnl']:+,.4f} - fees {p['fees']:,.4f}")
    fr_ = s["fill_rate"]
    if fr_.get("orders") is not None:
        lines.append(f"  fill rate per quote {fr_['filled_orders']}/{fr_['orders']}"
                     + (f" = {fr_['rate']:.4f}" if fr_["rate"] is not None else ""))
    if s["fills"]:
        lines.append(f"  spread capture (bp, vs fair) {_fmt_ci(s['spread_capture']['fair'])}; slippage vs arrival mid "
                     f"{_fmt_ci(s['slippage_bps'])}; queue time p50 {s['queue_time_s'].get('p50', float('nan')):.3f} s")
    edges = ", ".join(f"{e:.3f}" for e in r.vol_edges_bp)
    lines.append(f"markouts, bp (qty-weighted mean [95% CI, clustered]); vol buckets: edges {edges or '-'} bp/sqrt(s)")
    rows = [("all", "fair", *(_fmt_ci(s["markouts"][hkey(h)]) for h in HORIZONS_S), s["fills"]),
            ("all", "mid", *(_fmt_ci(s["markouts"][hkey(h)]["mid"]) for h in HORIZONS_S), s["fills"])]
    for b, g in r.groups.get("vol_bucket", {}).items():
        if g["fills"]:
            rows.append((f"vol {b}", "fair", *(_fmt_ci(g["markouts"][hkey(h)]) for h in HORIZONS_S), g["fills"]))
    lines.append(format_table(("GROUP", "VS", *(hkey(h) for h in HORIZONS_S), "FILLS"), rows, max_last=20))
    for n in r.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("tca", help="transaction-cost analysis of trading run directories",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="trading run directories (session.json)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--html", metavar="OUT", help="write a self-contained HTML report here")
    p.add_argument("--csv", metavar="DAILY_CSV", help="write one row per UTC day here")
    p.add_argument("--config", help="runtime config with the [tca] settings (default: the shipped one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mm_core.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
        sessions = [load_session(d) for d in args.run_dirs]
        result = analyse(sessions, TcaSettings.from_config(cfg))
    except (SessionError, ConfigError) as exc:
        print(f"mm tca: {exc}", file=sys.stderr)
        return 2
    try:
        if args.csv:
            write_daily_csv(result.daily, Path(args.csv))
        if args.html:
            from mm_core.trading.tca_report import write_html

            write_html(result, Path(args.html))
    except OSError as exc:
        print(f"mm tca: cannot write: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_tca(result))
        for what, path in (("daily CSV", args.csv), ("report", args.html)):
            if path:
                print(f"{what}: {path}")
    return 0
