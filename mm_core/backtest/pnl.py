"""PnL decomposition: spread capture, adverse selection, inventory PnL and fees add up exactly.

Notation: fill ``i`` has side ``s`` (+1 buy, -1 sell), quantity ``q``, price ``p``, exchange time
``t`` and fee ``f`` (positive = paid). ``m(t)`` is the fair mid in force at exchange time ``t`` (the
value after the last market row with ``exch_ts <= t``); ``T`` is the end of the data and ``H`` the
longest markout horizon (default 30 s); ``m(t + h)`` is taken at ``min(t + h, T)``.

Total PnL is cash plus the position marked at the fair mid at ``T``, minus fees (starting flat)::

    total = sum_i s q (m(T) - p) - sum_i f

and each fill's term splits at its own fill time and its horizon, telescoping exactly::

    s q (m(T) - p) =   s q (m(t) - p)          spread capture: the edge against fair at the fill
                     + s q (m(t+H) - m(t))     adverse selection: how fair moved against us within H
                     + s q (m(T) - m(t+H))     inventory PnL: holding what we got after H, to the end

so ``total = spread_capture + adverse_selection + inventory_pnl - fees`` holds for every fill and
in total. The identity is *checked*, not assumed: :func:`direct_total` computes the PnL from the
fills alone (cash ``-sum s q p``, position ``sum s q`` marked at ``m(T)``, fees), in code that shares
nothing with the parts, and ``identity_gap = total_direct - (spread + adverse + inventory - fees)``
must be zero up to float rounding (:data:`IDENTITY_REL_TOL`). :func:`identity_check` repeats that
for a result's fill log and also compares the fills' position with the engine's own position, so a
fill log that disagrees with the decomposition or the engine fails the check (``mm backtest`` prints
it, ``--json`` has ``total_pnl_direct`` and ``pnl_identity_gap``).
Adverse selection at the shorter horizons (1 s, 5 s) is reported beside it as the markout curve:
``adverse(h) = sum_i s q (m(t+h) - m(t))``; adverse selection is negative when fills are followed
by fair moving against us, the usual sign for a market maker.

Tail statistics come from the mark-to-market equity ``E(t) = cash(t) + position(t) * m(t) - fees(t)``
(fills at or before ``t``, fair mid in force at ``t``), evaluated exactly -- not on the plotting grid:

- **clock buckets** (:func:`bucket_pnl`): UTC hours and UTC days ``[k W, (k+1) W)`` (``W`` = 3600 s or
  86400 s, aligned to the Unix epoch, so to UTC midnight). A bucket's PnL is the equity just before
  its closing boundary minus the equity just before its opening boundary (``E(b - 1 ns)``: a fill or
  a fair move at exactly midnight belongs to the new day). The first bucket opens at the data start
  with equity 0 (flat start) and the last closes at the data end with every fill, so the buckets'
  PnL adds up to ``total`` (fees included, charged at the fill). The first and last buckets may be
  partial (``covered_s`` says how much of them the data covers);
- **worst hour / worst day**: the minimum of the hourly / daily bucket PnL (partial buckets included);
- **expected shortfall** ``expected_shortfall_hourly`` (ES 5 % over *hourly* buckets): the mean of the
  worst ``ceil(0.05 * n_hours)`` hourly PnLs, a PnL (negative = loss); with fewer than 20 hours it
  is the worst hour;
- **max drawdown**: the largest fall of ``E`` from its running peak (the peak starts at 0), with
  ``E`` evaluated after every market row and at every fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mm_core.backtest.fees import FeeModel

MARKOUT_GRID_S = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_S = 1_000_000_000


@dataclass
class PnL:
    total: float
    spread_capture: float
    adverse_selection: float  # over the longest horizon
    inventory_pnl: float
    fees: float
    total_direct: float  # cash + position * m(T) - fees, computed without the parts
    horizon_s: float
    adverse_by_horizon: dict[str, float]
    markouts: dict[str, float]  # qty-weighted mean markout s (m(t+h) - p) / p in bps, per horizon
    volume_base: float
    volume_quote: float
    max_drawdown: float
    worst_hour: float
    worst_day: float
    expected_shortfall_hourly: float
    per_fill: dict[str, np.ndarray] = field(repr=False)
    curve: dict[str, np.ndarray] = field(repr=False)
    markout_curve: dict[str, np.ndarray] = field(repr=False)
    # clock buckets (see the module docstring): {"start_ns", "pnl", "covered_s"} per UTC day / hour
    daily: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    hourly: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    mark_end: float = float("nan")  # m(T): the fair mid the final position is marked at

    @property
    def identity_gap(self) -> float:
        """total_direct - (spread + adverse + inventory - fees): zero up to float rounding."""
        return self.total_direct - (self.spread_capture + self.adverse_selection + self.inventory_pnl - self.fees)

    @property
    def identity_error(self) -> float:
        """``|identity_gap|``."""
        return abs(self.identity_gap)


IDENTITY_REL_TOL = 1e-12
"""The identity holds to float rounding: a gap above ``1e-12 x traded value + 1e-9`` is a failure
(rounding of ``n`` fills is ~``1e-16 x`` traded value each; one fill off by one tick of 0.1 on
0.001 BTC is 1e-4, far above the bound for any realistic traded value)."""


def identity_tolerance(volume_quote: float) -> float:
    """Largest ``|identity_gap|`` that is still float rounding for this traded value."""
    return IDENTITY_REL_TOL * abs(volume_quote) + 1e-9


def fill_fees(fills: dict[str, np.ndarray], fee_model: FeeModel) -> np.ndarray:
    """Fee of each fill (positive = paid) under ``fee_model`` (time-aware models get the fill times)."""
    p = np.asarray(fills["price"], np.float64)
    q = np.asarray(fills["qty"], np.float64)
    if getattr(fee_model, "uses_time", False):
        return np.asarray(fee_model.fees(p, q, fills["maker"], ts=fills["ts"]), np.float64)
    return np.asarray(fee_model.fees(p, q, fills["maker"]), np.float64)


def direct_total(fills: dict[str, np.ndarray], fee: np.ndarray, mark: float) -> tuple[float, float, float]:
    """``(total, cash, position)`` from the fills alone: cash ``-sum s q p``, the position
    ``sum s q`` marked at ``mark``, minus the fees. Independent of the decomposition on purpose."""
    sq = np.asarray(fills["side"], np.float64) * np.asarray(fills["qty"], np.float64)
    cash = -math.fsum((sq * np.asarray(fills["price"], np.float64)).tolist())
    position = math.fsum(sq.tolist())
    return cash + position * mark - math.fsum(np.asarray(fee, np.float64).tolist()), cash, position


@dataclass(frozen=True)
class IdentityCheck:
    """A result's fill log against its decomposition and against the engine's position."""

    total_direct: float  # cash + position x mark - fees, from the fill log
    total_parts: float  # spread + adverse + inventory - fees, from the decomposition
    gap: float  # total_direct - total_parts
    tolerance: float
    position_fills: float
    position_engine: float

    @property
    def position_gap(self) -> float:
        return self.position_fills - self.position_engine

    @property
    def ok(self) -> bool:
        return (math.isfinite(self.gap) and abs(self.gap) <= self.tolerance
                and abs(self.position_gap) <= 1e-9 + 1e-12 * abs(self.position_engine))


def identity_check(pnl: "PnL", fills: dict[str, np.ndarray], fee_model: FeeModel,
                   engine_position: float) -> IdentityCheck:
    """Recompute the PnL from ``fills`` (a result's fill log) and compare it with the parts of
    ``pnl`` and the fills' position with ``engine_position`` (what the engine's loop accumulated)."""
    total, _, position = direct_total(fills, fill_fees(fills, fee_model), pnl.mark_end)
    parts = pnl.spread_capture + pnl.adverse_selection + pnl.inventory_pnl - pnl.fees
    return IdentityCheck(total, parts, total - parts, identity_tolerance(pnl.volume_quote), position,
                         float(engine_position))


def fair_at(times: np.ndarray, exch_ts: np.ndarray, fair: np.ndarray) -> np.ndarray:
    """Fair mid in force at each time (after the last row at or before it; first row before data)."""
    idx = np.searchsorted(exch_ts, times, side="right") - 1
    return fair[np.clip(idx, 0, fair.shape[0] - 1)]


def _fsum(a: np.ndarray) -> float:
    return math.fsum(a.tolist()) if a.size else 0.0


def decompose(fills: dict[str, np.ndarray], exch_ts: np.ndarray, fair: np.ndarray, fee_model: FeeModel,
              *, horizons_s: Sequence[float] = (1.0, 5.0, 30.0), grid_points: int = 4000) -> PnL:
    """Decompose the PnL of ``fills`` (see module docstring)."""
    s = fills["side"].astype(np.float64)
    q = fills["qty"].astype(np.float64)
    p = fills["price"].astype(np.float64)
    t = fills["ts"].astype(np.int64)
    fee = fill_fees(fills, fee_model)
    end = int(exch_ts[-1])
    m_end = float(fair_at(np.array([end]), exch_ts, fair)[0])
    m0 = fair_at(t, exch_ts, fair)
    horizon = max(horizons_s) if horizons_s else 0.0
    m_h = fair_at(np.minimum(t + int(horizon * _S), end), exch_ts, fair)
    spread = s * q * (m0 - p)
    adverse = s * q * (m_h - m0)
    inventory = s * q * (m_end - m_h)
    per_fill = {"ts": t, "side": fills["side"], "price": p, "qty": q, "fair": m0, "spread": spread,
                "adverse": adverse, "inventory": inventory, "fee": fee,
                "total": s * q * (m_end - p) - fee}
    by_h = {}
    for h in horizons_s:
        mh = fair_at(np.minimum(t + int(h * _S), end), exch_ts, fair)
        by_h[f"{h:g}s"] = _fsum(s * q * (mh - m0))
        per_fill[f"adverse_{h:g}s"] = s * q * (mh - m0)
    # markout curve (bps of price, qty-weighted) and in currency
    mk_bps, mk_cur = [], []
    wq = _fsum(q)
    for h in MARKOUT_GRID_S:
        mh = fair_at(np.minimum(t + int(h * _S), end), exch_ts, fair)
        mk = s * (mh - p)
        mk_cur.append(_fsum(mk * q))
        mk_bps.append(_fsum(mk / p * 1e4 * q) / wq if wq > 0 else 0.0)
    fees_total = _fsum(fee)
    total_direct, _, _ = direct_total(fills, fee, m_end)
    spread_t, adverse_t, inv_t = _fsum(spread), _fsum(adverse), _fsum(inventory)
    total = spread_t + adverse_t + inv_t - fees_total
    curve = equity_curve(fills, fee, exch_ts, fair, grid_points=grid_points)
    daily = bucket_pnl(t, s, q, p, fee, exch_ts, fair, DAY_NS)
    hourly = bucket_pnl(t, s, q, p, fee, exch_ts, fair, HOUR_NS)
    dd = max_drawdown_exact(t, s, q, p, fee, exch_ts, fair)
    worst_hour, worst_day = float(hourly["pnl"].min()), float(daily["pnl"].min())
    es = expected_shortfall(hourly["pnl"], 0.05)
    return PnL(
        total=total, spread_capture=spread_t, adverse_selection=adverse_t, inventory_pnl=inv_t,
        fees=fees_total, total_direct=total_direct, horizon_s=horizon, adverse_by_horizon=by_h,
        markouts={f"{h:g}s": v for h, v in zip(MARKOUT_GRID_S, mk_bps)},
        volume_base=_fsum(q), volume_quote=_fsum(q * p), max_drawdown=dd, worst_hour=worst_hour,
        worst_day=worst_day, expected_shortfall_hourly=es, per_fill=per_fill, curve=curve,
        markout_curve={"horizon_s": np.array(MARKOUT_GRID_S), "bps": np.array(mk_bps),
                       "currency": np.array(mk_cur)},
        daily=daily, hourly=hourly, mark_end=m_end,
    )


def equity_curve(fills: dict[str, np.ndarray], fee: np.ndarray, exch_ts: np.ndarray, fair: np.ndarray,
                 *, grid_points: int = 4000) -> dict[str, np.ndarray]:
    """Equity, position and cumulative parts on a regular exchange-time grid (at least 1 s apart)."""
    start, end = int(exch_ts[0]), int(exch_ts[-1])
    step = max(_S, (end - start) // max(grid_points - 1, 1))
    grid = np.arange(start, end + step, step, dtype=np.int64)
    grid[-1] = min(grid[-1], end) if grid.size > 1 else end
    s = fills["side"].astype(np.float64)
    q, p, t = fills["qty"], fills["price"], fills["ts"]
    k = np.searchsorted(t, grid, side="right")  # fills at or before each grid time

    def cum(x: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(x)])
        return c[k]

    pos = cum(s * q)
    cash = cum(-s * q * p)
    fees = cum(fee)
    m = fair_at(grid, exch_ts, fair)
    m0 = fair_at(t, exch_ts, fair)
    spread = cum(s * q * (m0 - p))
    equity = cash + pos * m - fees
    return {"ts": grid, "equity": equity, "position": pos, "fees": fees, "spread": spread,
            "fair": m, "inventory_and_adverse": equity - spread + fees}


HOUR_NS = 3600 * _S
DAY_NS = 86400 * _S


class _Equity:
    """``E(t)`` = cash + position * m(t) - fees after the fills at or before ``t`` (fills in time order)."""

    def __init__(self, ts, side, qty, price, fee, exch_ts, fair):
        order = np.argsort(np.asarray(ts, np.int64), kind="stable")
        self.ts = np.asarray(ts, np.int64)[order]
        sq = (np.asarray(side, np.float64) * np.asarray(qty, np.float64))[order]
        self.pos = np.concatenate([[0.0], np.cumsum(sq)])
        self.cash = np.concatenate([[0.0], np.cumsum(-sq * np.asarray(price, np.float64)[order])])
        self.fees = np.concatenate([[0.0], np.cumsum(np.asarray(fee, np.float64)[order])])
        # fair is NaN while the book is one-sided: carry the last value (flat positions ignore it)
        f = np.asarray(fair, np.float64)
        ok = np.isfinite(f)
        if not ok.all():
            idx = np.where(ok, np.arange(f.size), 0)
            f = f[np.maximum.accumulate(idx)]
        self.exch_ts, self.fair = exch_ts, f

    def at(self, times: np.ndarray, *, rows: bool = False) -> np.ndarray:
        """Equity at ``times`` (``rows=True``: ``times`` are the market rows, use each row's fair)."""
        k = np.searchsorted(self.ts, times, side="right")
        m = self.fair if rows else fair_at(times, self.exch_ts, self.fair)
        pos = self.pos[k]
        return self.cash[k] + np.where(pos != 0.0, pos * m, 0.0) - self.fees[k]

    def final(self) -> float:
        m_end = float(fair_at(np.array([int(self.exch_ts[-1])]), self.exch_ts, self.fair)[0])
        held = self.pos[-1] * m_end if self.pos[-1] != 0.0 else 0.0
        return float(self.cash[-1] + held - self.fees[-1])


def bucket_pnl(ts, side, qty, price, fee, exch_ts: np.ndarray, fair: np.ndarray,
               width_ns: int) -> dict[str, np.ndarray]:
    """PnL per UTC clock bucket of ``width_ns`` (see the module docstring for the convention).

    Returns ``start_ns`` (the bucket's clock start, e.g. UTC midnight), ``pnl`` and ``covered_s``
    (seconds of the bucket inside the data span); ``pnl`` sums to the run's total PnL.
    """
    start, end = int(exch_ts[0]), int(exch_ts[-1])
    first = start // width_ns * width_ns
    bounds = np.arange(first + width_ns, end + 1, width_ns, dtype=np.int64)  # boundaries in (start, end]
    eq = _Equity(ts, side, qty, price, fee, exch_ts, fair)
    opening = np.concatenate([[0.0], eq.at(bounds - 1)])  # flat at the data start
    closing = np.concatenate([opening[1:], [eq.final()]])
    lo = np.concatenate([[start], bounds])
    hi = np.concatenate([bounds, [end]])
    return {"start_ns": np.concatenate([[first], bounds]), "pnl": closing - opening,
            "covered_s": (hi - lo) / _S}


def max_drawdown_exact(ts, side, qty, price, fee, exch_ts: np.ndarray, fair: np.ndarray) -> float:
    """Largest fall of the equity from its running peak (peak starts at 0), after every row and fill."""
    eq = _Equity(ts, side, qty, price, fee, exch_ts, fair)
    rows = eq.at(exch_ts, rows=True)
    at_fills = eq.at(eq.ts)
    seq = np.insert(rows, np.searchsorted(exch_ts, eq.ts, side="right"), at_fills)
    seq = np.concatenate([seq, [eq.final()]])
    peak = np.maximum.accumulate(np.maximum(seq, 0.0))
    return float(np.max(peak - seq))


def expected_shortfall(pnl: np.ndarray, alpha: float = 0.05) -> float:
    """Mean of the worst ``ceil(alpha * n)`` values of ``pnl`` (a PnL: negative = loss); 0 if empty."""
    pnl = np.asarray(pnl, np.float64)
    if pnl.size == 0:
        return 0.0
    n = max(1, int(math.ceil(alpha * pnl.size - 1e-12)))
    return float(np.sort(pnl)[:n].mean())
