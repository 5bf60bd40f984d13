"""``glft``: the closed-form approximation of Guéant, Lehalle & Fernandez-Tapia (2013).

Reference: O. Guéant, C.-A. Lehalle, J. Fernandez-Tapia, "Dealing with the inventory risk: a
solution to the market making problem", Mathematics and Financial Economics 7(4):477-507, 2013,
arXiv:1105.3115 (asymptotic quotes, section 4); the general order size ``Delta`` and the ``xi``
form follow O. Guéant, "Optimal market making", Applied Mathematical Finance 24(2), 2017.

With fills at ``lambda(delta) = A exp(-kappa delta)`` and mid volatility ``sigma``, the optimal
distances of the bid and ask from the mid at inventory ``q`` are approximately::

    delta_b(q) = c1 + (Delta / 2 + q) * sigma * c2
    delta_a(q) = c1 + (Delta / 2 - q) * sigma * c2
    c1 = 1/(xi Delta) * ln(1 + xi Delta / kappa)
    c2 = sqrt( gamma / (2 A Delta kappa) * (1 + xi Delta / kappa) ** (kappa / (xi Delta) + 1) )

i.e. a half-spread ``c1 + Delta/2 * sigma * c2`` and an inventory skew of ``sigma * c2`` per unit of
inventory: ``bid = s - half - skew * q``, ``ask = s + half - skew * q``. ``xi = gamma`` is the
paper's CARA model; ``xi = 0`` its risk-neutral-with-penalty variant (limits ``c1 = 1/kappa`` and
``(1 + .)^(.) = e``). Raising ``gamma`` widens the quotes through ``c2``; with ``xi = gamma`` it
also shrinks ``c1`` slightly (by at most ``Delta / (2 kappa^2)`` per unit), which only shows when the
inventory term is negligible. No quote is made on the side that would grow ``|q|`` past ``max_position`` (the
paper's inventory bound ``Q``).

Units: ``q``, ``Delta`` (= ``order_qty``) and ``max_position`` in base units (BTC); prices in quote
currency per base unit (EUR per BTC); ``gamma`` and ``xi`` per unit of quote currency (1/EUR);
``A`` in fills per second at distance 0; ``kappa`` in 1 / price units; ``sigma`` in price units per
sqrt(second). ``A``, ``kappa`` and ``sigma`` come from ``mm calibrate`` unless set in the config
section; ``sigma_source = "live"`` uses the view's realised vol when it has one.

The regimes' width multiplier scales the half-spread (not the skew); the size multiplier scales
``order_qty``. Prices are not rounded here (the pipeline rounds outwards to the tick, post-only).
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

NAME = "glft"
STATE_SIZE = 0
_SECTION = f"[strategy.{NAME}]"
_CALIBRATED = ("A", "kappa", "sigma")

# params vector
P_ORDER_QTY = 0
P_MAX_POSITION = 1
P_SIGMA = 2
P_SIGMA_LIVE = 3
P_C1 = 4
P_C2 = 5
N_PARAMS = 6


def glft_constants(gamma: float, xi: float, order_qty: float, A: float, kappa: float) -> tuple[float, float]:
    """``(c1, c2)`` of the closed form (see the module docstring); ``xi = 0`` takes the limits."""
    x = xi * order_qty / kappa
    if x < 1e-12:
        c1 = 1.0 / kappa
        power = math.e
    else:
        c1 = math.log1p(x) / (xi * order_qty)
        power = math.exp((1.0 / x + 1.0) * math.log1p(x))
    c2 = math.sqrt(gamma / (2.0 * A * order_qty * kappa) * power)
    return c1, c2


@dataclass(frozen=True)
class Params:
    gamma: float = 1.0  # risk aversion, 1 / quote currency
    order_qty: float = 0.001  # base units per quote (Delta)
    max_position: float = 0.01  # base units (the paper's Q)
    xi: float = math.nan  # NaN = gamma (the CARA model); 0 = the penalty model
    A: float = math.nan  # fills per second at distance 0; NaN = from the calibration file
    kappa: float = math.nan  # 1 / price units; NaN = from the calibration file
    sigma: float = math.nan  # price units per sqrt(s); NaN = from the calibration file
    sigma_source: str = "calibrated"  # calibrated | live (the view's realised vol when known)
    fair: str = "mid"
    calibration: str = ""  # where A/kappa/sigma came from (for reports)

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("gamma", "order_qty"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                p.append(f"{name} must be > 0")
        if not (math.isfinite(self.max_position) and self.max_position >= self.order_qty):
            p.append("max_position must be >= order_qty")
        if not (math.isnan(self.xi) or (math.isfinite(self.xi) and self.xi >= 0)):
            p.append("xi must be >= 0 (leave it out for xi = gamma)")
        for name in ("A", "kappa"):
            v = getattr(self, name)
            if not (math.isnan(v) or (math.isfinite(v) and v > 0)):
                p.append(f"{name} must be > 0")
        if not (math.isnan(self.sigma) or (math.isfinite(self.sigma) and self.sigma >= 0)):
            p.append("sigma must be >= 0 (price units per sqrt(second))")
        if self.sigma_source not in ("calibrated", "live"):
            p.append(f"sigma_source must be calibrated or live, got {self.sigma_source!r}")
        if p:
            raise ValueError(f"{_SECTION}: " + "; ".join(p))

    @classmethod
    def from_config(cls, section: Optional[Mapping[str, Any]] = None,
                    calibration: Optional[Mapping[str, Any]] = None) -> "Params":
        """Parameters from the config section; ``A``/``kappa``/``sigma`` not set there come from
        ``calibration`` (a ``mm calibrate`` JSON object)."""
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

    @property
    def xi_value(self) -> float:
        return self.gamma if math.isnan(self.xi) else self.xi

    def constants(self) -> tuple[float, float]:
        """``(c1, c2)`` for these parameters."""
        return glft_constants(self.gamma, self.xi_value, self.order_qty, self.A, self.kappa)

    def vector(self) -> np.ndarray:
        """The float64 vector ``decide`` reads; refuses while A, kappa or sigma is unknown."""
        miss = self.missing()
        if miss:
            raise ValueError(f"{_SECTION} needs {', '.join(miss)}: run `mm calibrate RUN_DIR --out params.json` "
                             f"and pass --calibration params.json (or set [strategy] calibration), "
                             f"or set them in {_SECTION}")
        c1, c2 = self.constants()
        v = np.zeros(N_PARAMS, np.float64)
        v[P_ORDER_QTY] = self.order_qty
        v[P_MAX_POSITION] = self.max_position
        v[P_SIGMA] = self.sigma
        v[P_SIGMA_LIVE] = 1.0 if self.sigma_source == "live" else 0.0
        v[P_C1] = c1
        v[P_C2] = c2
        return v

    def describe(self) -> dict[str, object]:
        d: dict[str, object] = {"strategy": NAME, **asdict(self)}
        d["xi"] = self.xi_value
        if not self.missing():
            c1, c2 = self.constants()
            d["c1"], d["c2"] = c1, c2
        return d


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
    """GLFT closed-form quotes (see the module docstring)."""
    s = view[V_FAIR]
    if not (math.isfinite(s) and s > 0.0):
        out[Q_BID_QTY] = 0.0
        out[Q_ASK_QTY] = 0.0
        out[Q_REASON] = R_NO_BOOK
        return
    delta = params[P_ORDER_QTY]
    sigma = params[P_SIGMA]
    if params[P_SIGMA_LIVE] != 0.0:
        live = view[V_SIGMA]
        if math.isfinite(live) and live > 0.0:
            sigma = live
    _sides(view, out, params[P_MAX_POSITION], delta * view[V_SIZE_MULT])
    q = view[V_POSITION]
    lim = params[P_MAX_POSITION]
    if q > lim:  # the approximation is evaluated inside the inventory bound
        q = lim
    elif q < -lim:
        q = -lim
    skew = sigma * params[P_C2]
    half = (params[P_C1] + 0.5 * delta * skew) * view[V_WIDTH_MULT]
    out[Q_BID_PX] = s - half - skew * q
    out[Q_ASK_PX] = s + half - skew * q
