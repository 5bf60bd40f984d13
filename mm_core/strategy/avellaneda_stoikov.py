"""``avellaneda-stoikov``: the infinite-horizon quotes of Avellaneda & Stoikov (2008).

Reference: M. Avellaneda, S. Stoikov, "High-frequency trading in a limit order book", Quantitative
Finance 8(3):217-224, 2008, section 2.3 (infinite horizon) and section 3 (exponential intensity).

The agent maximises ``E[ int_0^inf -exp(-omega t) exp(-gamma (X_t + q_t S_t)) dt ]`` (CARA utility,
discount rate ``omega``); fills arrive at ``lambda(delta) = A exp(-kappa delta)`` at distance
``delta`` from the mid. With inventory frozen the value is
``v(x, s, q) = -exp(-gamma (x + q s)) / (omega - gamma^2 q^2 sigma^2 / 2)``, and the reservation
(indifference) prices for selling / buying one lot -- ``v(x + r_a, s, q - 1) = v(x, s, q)`` and
``v(x - r_b, s, q + 1) = v(x, s, q)`` -- are, with ``D = 2 omega - g^2 n^2 sigma^2``::

    r_a = s - 1/g * ln(1 + (2n - 1) g^2 sigma^2 / D)
    r_b = s + 1/g * ln(1 - (2n + 1) g^2 sigma^2 / D)

The paper prints the ask as ``s + 1/g ln(1 + (1 - 2n) g^2 sigma^2 / D)``, which agrees to first order
in ``g^2 sigma^2 / omega``; the exact form used here follows from the same definitions and is
symmetric at zero inventory. The optimal quotes sit ``c = 1/g * ln(1 + g / kappa)`` outside the
reservation prices: ``ask = r_a + c``, ``bid = r_b - c``. Equivalently a reservation price
``r = (r_a + r_b) / 2`` (below ``s`` when long) and an optimal spread ``(r_a - r_b) + 2c``. For small
``g^2 sigma^2 / omega`` this is the familiar ``r ~ s - n g sigma^2 / omega`` and spread
``~ g sigma^2 / omega + 2c``: ``1/omega`` plays the role of the finite-horizon ``T - t``. A side exists
while ``2 omega > g^2 sigma^2 (n -/+ 1)^2`` (ask / bid): the model's own inventory bound.

Units (what the paper leaves abstract, made explicit here). One paper "share" is one order of
``order_qty`` base units; ``n = position / order_qty``. ``s`` and all prices are quote currency per
base unit (EUR per BTC). ``gamma`` is the CARA risk aversion per unit of quote currency (1/EUR);
per base-unit prices the formulas take ``g = gamma * order_qty``. ``sigma``: price units per
sqrt(second); ``kappa``: 1 / price units (the calibrated decay of fill intensity with distance);
``omega``: 1 / second. The paper suggests tying ``omega`` to a maximum inventory
(``omega = g^2 sigma^2 (q_max + 1)^2 / 2``), but then sigma cancels out of the reservation prices and
a higher gamma *narrows* the quotes; here ``omega`` is a parameter of its own (default 1/s: inventory
risk counted over about a second) and ``max_position`` simply stops the side that would grow
inventory further (as does the risk layer's hard limit).

The regimes' width multiplier scales the half-spread around ``r`` (not the inventory skew); the size
multiplier scales ``order_qty``. Prices are not rounded here (the pipeline rounds outwards to the tick
and keeps quotes post-only). ``sigma`` comes from the calibration file unless
``sigma_source = "live"``, which uses the view's recent realised vol when it has one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Optional

import numpy as np
from numba import njit

from mm_core.strategy.view import (
    MKT_CANCEL_ONLY,
    MKT_MAINTENANCE,
    Q_ASK_PX,
    Q_ASK_QTY,
    Q_BID_PX,
    Q_BID_QTY,
    Q_REASON,
    R_HALTED,
    R_INVENTORY,
    R_MARKET,
    R_NO_BOOK,
    R_QUOTE,
    R_REDUCING,
    TRADING_HALTED,
    TRADING_REDUCING,
    V_FAIR,
    V_MARKET,
    V_MAX_POSITION,
    V_POSITION,
    V_SIGMA,
    V_SIZE_MULT,
    V_TRADING,
    V_WIDTH_MULT,
)

NAME = "avellaneda-stoikov"
# state: the reservation offsets depend only on (position, sigma), which change on fills and on
# sigma updates -- not on every decision -- so they are kept and recomputed only when those move
S_VALID = 0  # 1 once the cache holds a result
S_POSITION = 1
S_SIGMA = 2
S_DA = 3  # r_a - s (NaN: no ask)
S_DB = 4  # r_b - s (NaN: no bid)
STATE_SIZE = 5
_SECTION = f"[strategy.{NAME}]"
_CALIBRATED = ("kappa", "sigma")

# params vector
P_G = 0  # gamma * order_qty
P_ORDER_QTY = 1
P_MAX_POSITION = 2
P_KAPPA = 3
P_SIGMA = 4
P_OMEGA = 5
P_SIGMA_LIVE = 6
P_C = 7  # 1/g * ln(1 + g/kappa)
N_PARAMS = 8


@dataclass(frozen=True)
class Params:
    gamma: float = 1.0  # CARA risk aversion, 1 / quote currency
    order_qty: float = 0.001  # base units per quote (one "share" of the paper)
    max_position: float = 0.01  # base units: no quote on the side that would grow |position| past it
    omega: float = 1.0  # discount rate, 1/s (~ 1 / horizon over which inventory risk counts)
    kappa: float = math.nan  # 1 / price units; NaN = from the calibration file
    sigma: float = math.nan  # price units per sqrt(s); NaN = from the calibration file
    sigma_source: str = "calibrated"  # calibrated | live (the view's realised vol when known)
    fair: str = "mid"
    calibration: str = ""  # where kappa/sigma came from (for reports)

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("gamma", "order_qty", "omega"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                p.append(f"{name} must be > 0")
        if not (math.isfinite(self.max_position) and self.max_position >= self.order_qty):
            p.append("max_position must be >= order_qty")
        if not (math.isnan(self.kappa) or (math.isfinite(self.kappa) and self.kappa > 0)):
            p.append("kappa must be > 0 (1 / price units)")
        if not (math.isnan(self.sigma) or (math.isfinite(self.sigma) and self.sigma >= 0)):
            p.append("sigma must be >= 0 (price units per sqrt(second))")
        if self.sigma_source not in ("calibrated", "live"):
            p.append(f"sigma_source must be calibrated or live, got {self.sigma_source!r}")
        if p:
            raise ValueError(f"{_SECTION}: " + "; ".join(p))

    @classmethod
    def from_config(cls, section: Optional[Mapping[str, Any]] = None,
                    calibration: Optional[Mapping[str, Any]] = None) -> "Params":
        """Parameters from the config section; ``kappa``/``sigma`` not set there come from ``calibration``
        (a ``mm calibrate`` JSON object)."""
        d = dict(section or {})
        known = {f.name for f in fields(cls)} - {"calibration"}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"{_SECTION}: unknown key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        if calibration is not None:
            from mm_core.strategy.calibrate import calibration_values

            vals, label = calibration_values(calibration, _CALIBRATED)
            for k, v in vals.items():
                d.setdefault(k, v)
            d["calibration"] = label
        try:
            return cls(**d)
        except TypeError as exc:
            raise ValueError(f"{_SECTION}: {exc}") from None

    def missing(self) -> list[str]:
        return [k for k in _CALIBRATED if math.isnan(getattr(self, k))]

    def vector(self) -> np.ndarray:
        """The float64 vector ``decide`` reads; refuses while kappa or sigma is unknown."""
        miss = self.missing()
        if miss:
            raise ValueError(f"{_SECTION} needs {' and '.join(miss)}: run `mm calibrate RUN_DIR --out params.json` "
                             f"and pass --calibration params.json (or set [strategy] calibration), "
                             f"or set them in {_SECTION}")
        g = self.gamma * self.order_qty
        v = np.zeros(N_PARAMS, np.float64)
        v[P_G] = g
        v[P_ORDER_QTY] = self.order_qty
        v[P_MAX_POSITION] = self.max_position
        v[P_KAPPA] = self.kappa
        v[P_SIGMA] = self.sigma
        v[P_OMEGA] = self.omega
        v[P_SIGMA_LIVE] = 1.0 if self.sigma_source == "live" else 0.0
        v[P_C] = math.log1p(g / self.kappa) / g
        return v

    def describe(self) -> dict[str, object]:
        return {"strategy": NAME, **asdict(self)}


@njit(cache=True)
def _sides(view, out, max_position, qty):
    """Which sides may quote (trading state, market status, max position); writes sizes and reason."""
    pos = view[V_POSITION]
    trading = np.int64(view[V_TRADING])
    mkt = np.int64(view[V_MARKET])
    lim = max_position
    vmax = view[V_MAX_POSITION]
    if vmax > 0.0 and vmax < lim:
        lim = vmax
    if not (qty > 0.0):
        qty = 0.0
    bid = qty
    ask = qty
    reason = R_QUOTE
    if trading == TRADING_HALTED:
        bid = 0.0
        ask = 0.0
        reason = R_HALTED
    elif mkt == MKT_CANCEL_ONLY or mkt == MKT_MAINTENANCE:
        bid = 0.0
        ask = 0.0
        reason = R_MARKET
    elif trading == TRADING_REDUCING:
        if not (pos < 0.0):
            bid = 0.0
        if not (pos > 0.0):
            ask = 0.0
        reason = R_REDUCING
    else:
        if pos >= lim:
            bid = 0.0
            reason = R_INVENTORY
        if pos <= -lim:
            ask = 0.0
            reason = R_INVENTORY
    out[Q_BID_QTY] = bid
    out[Q_ASK_QTY] = ask
    out[Q_REASON] = reason


@njit(cache=True)
def decide(t_ns, params, state, view, orders, n_orders, out):
    """Avellaneda-Stoikov infinite-horizon quotes (see the module docstring)."""
    s = view[V_FAIR]
    if not (math.isfinite(s) and s > 0.0):
        out[Q_BID_QTY] = 0.0
        out[Q_ASK_QTY] = 0.0
        out[Q_REASON] = R_NO_BOOK
        return
    q_lot = params[P_ORDER_QTY]
    sigma = params[P_SIGMA]
    if params[P_SIGMA_LIVE] != 0.0:
        live = view[V_SIGMA]
        if math.isfinite(live) and live > 0.0:
            sigma = live
    _sides(view, out, params[P_MAX_POSITION], q_lot * view[V_SIZE_MULT])
    pos = view[V_POSITION]
    if state[S_VALID] == 0.0 or state[S_POSITION] != pos or state[S_SIGMA] != sigma:
        _reservation(params, state, pos, sigma)
    da = state[S_DA]
    db = state[S_DB]
    c = params[P_C]
    w = view[V_WIDTH_MULT]
    if math.isfinite(da) and math.isfinite(db):
        r = s + 0.5 * (da + db)
        half = 0.5 * (da - db) + c
        out[Q_BID_PX] = r - w * half
        out[Q_ASK_PX] = r + w * half
        return
    # beyond the model's inventory bound: only the side with a finite reservation price
    if math.isfinite(da):
        out[Q_ASK_PX] = s + da + w * c
    else:
        out[Q_ASK_QTY] = 0.0
    if math.isfinite(db):
        out[Q_BID_PX] = s + db - w * c
    else:
        out[Q_BID_QTY] = 0.0
    if out[Q_REASON] == R_QUOTE:
        out[Q_REASON] = R_INVENTORY


@njit(cache=True)
def _reservation(params, state, pos, sigma):
    """``r_a - s`` and ``r_b - s`` at this position and sigma (NaN where the model has no price)."""
    g = params[P_G]
    q_lot = params[P_ORDER_QTY]
    n = pos / q_lot
    lim = params[P_MAX_POSITION] / q_lot  # the formulas are evaluated inside the position limit
    if n > lim:
        n = lim
    elif n < -lim:
        n = -lim
    gs2 = g * g * sigma * sigma
    den = 2.0 * params[P_OMEGA] - gs2 * n * n
    y_a = (2.0 * n - 1.0) * gs2 / den  # ln(1 + y) via log1p: y is often far below float64 epsilon
    y_b = -(2.0 * n + 1.0) * gs2 / den
    state[S_DA] = -math.log1p(y_a) / g if (den > 0.0 and y_a > -1.0) else np.nan
    state[S_DB] = math.log1p(y_b) / g if (den > 0.0 and y_b > -1.0) else np.nan
    state[S_POSITION] = pos
    state[S_SIGMA] = sigma
    state[S_VALID] = 1.0
