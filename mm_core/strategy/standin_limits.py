"""Temporary stand-ins for ``regimes.py`` and ``risk.py`` (branch ``quoting`` builds the real ones).

Same names and array layouts as the contract in STRATEGY_SEAM.md, the least logic that lets the
pipeline, the engine and their tests run: a latency regime from the last feed age with
enter/exit thresholds and a dwell time, a volatility regime from sigma bands, the market status as
given, and hard limits (inventory, order size, notional, staleness, drawdown, manual kill). Deleted
once the real modules are merged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from mm_core.strategy.view import (K_LATENCY, K_MARKET, K_TRADING, K_VOLATILITY, L_CAUSE, L_FROM, L_KIND, L_T,
                                   L_TO, L_VALUE_E6, Q_ASK_PX, Q_ASK_QTY, Q_BID_PX, Q_BID_QTY, Q_REASON,
                                   R_HALTED, R_REDUCING, R_STALE, TRADING_ACTIVE, TRADING_HALTED,
                                   TRADING_REDUCING, V_POSITION)

# ------------------------------------------------------------------ regimes
RC_LAT_DEG_ENTER = 0
RC_LAT_DEG_EXIT = 1
RC_LAT_UNS_ENTER = 2
RC_LAT_UNS_EXIT = 3
RC_VOL_HIGH_ENTER = 4  # sigma / mid, bps per sqrt(s)
RC_VOL_HIGH_EXIT = 5
RC_VOL_LOW_ENTER = 6
RC_VOL_LOW_EXIT = 7
RC_DWELL_NS = 8
RC_WIDTH = 9  # 3 latency x 3 vol multipliers: width = lat * vol
RC_SIZE = 15
N_REG_CONFIG = 21

RS_LAT = 0
RS_VOL = 1
RS_MARKET = 2
RS_WIDTH_MULT = 3
RS_SIZE_MULT = 4
RS_LAST_AGE = 5
RS_LAT_T = 6  # time of the last transition (ns, as float: only differences are used)
RS_VOL_T = 7
RS_MKT_T = 8
N_REG_STATE = 9


@dataclass(frozen=True)
class RegimeConfig:
    lat_degraded_enter_ms: float = 20.0
    lat_degraded_exit_ms: float = 15.0
    lat_unsafe_enter_ms: float = 80.0
    lat_unsafe_exit_ms: float = 60.0
    vol_high_enter_bps: float = 3.0
    vol_high_exit_bps: float = 2.0
    vol_low_enter_bps: float = 0.3
    vol_low_exit_bps: float = 0.5
    dwell_ms: float = 2000.0
    width_latency: tuple[float, float, float] = (1.0, 1.5, 3.0)
    width_vol: tuple[float, float, float] = (1.0, 1.0, 2.0)
    size_latency: tuple[float, float, float] = (1.0, 0.5, 0.0)
    size_vol: tuple[float, float, float] = (1.0, 1.0, 0.5)

    @classmethod
    def from_config(cls, d: dict) -> "RegimeConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def neutral(cls) -> "RegimeConfig":
        return cls(width_latency=(1.0, 1.0, 1.0), width_vol=(1.0, 1.0, 1.0), size_latency=(1.0, 1.0, 1.0),
                   size_vol=(1.0, 1.0, 1.0))

    def dwell_ms_for(self, kind: int) -> float:
        return self.dwell_ms

    def vector(self) -> np.ndarray:
        v = np.zeros(N_REG_CONFIG, np.float64)
        v[RC_LAT_DEG_ENTER], v[RC_LAT_DEG_EXIT] = self.lat_degraded_enter_ms, self.lat_degraded_exit_ms
        v[RC_LAT_UNS_ENTER], v[RC_LAT_UNS_EXIT] = self.lat_unsafe_enter_ms, self.lat_unsafe_exit_ms
        v[RC_VOL_HIGH_ENTER], v[RC_VOL_HIGH_EXIT] = self.vol_high_enter_bps, self.vol_high_exit_bps
        v[RC_VOL_LOW_ENTER], v[RC_VOL_LOW_EXIT] = self.vol_low_enter_bps, self.vol_low_exit_bps
        v[RC_DWELL_NS] = self.dwell_ms * 1e6
        v[RC_WIDTH:RC_WIDTH + 3] = self.width_latency
        v[RC_WIDTH + 3:RC_WIDTH + 6] = self.width_vol
        v[RC_SIZE:RC_SIZE + 3] = self.size_latency
        v[RC_SIZE + 3:RC_SIZE + 6] = self.size_vol
        return v

    def describe(self) -> dict:
        return asdict(self)


@njit(cache=True)
def regimes_init(RS, RC):
    RS[:] = 0.0
    RS[RS_VOL] = 1.0
    RS[RS_WIDTH_MULT] = 1.0
    RS[RS_SIZE_MULT] = 1.0
    RS[RS_LAT_T] = -1e30
    RS[RS_VOL_T] = -1e30
    RS[RS_MKT_T] = -1e30


@njit(cache=True)
def regimes_on_age(RS, RC, t_ns, age_ms):
    RS[RS_LAST_AGE] = age_ms


@njit(cache=True)
def _log(log, n_log, t, kind, a, b, cause, value):
    if n_log < log.shape[0]:
        log[n_log, L_T] = t
        log[n_log, L_KIND] = kind
        log[n_log, L_FROM] = a
        log[n_log, L_TO] = b
        log[n_log, L_CAUSE] = cause
        log[n_log, L_VALUE_E6] = np.int64(round(value * 1e6))
        return n_log + 1
    return n_log


@njit(cache=True)
def regimes_update(RS, RC, t_ns, sigma, market_status, log, n_log):
    tf = float(t_ns)
    age = RS[RS_LAST_AGE]
    lat = int(RS[RS_LAT])
    new = lat
    if lat == 0 and age > RC[RC_LAT_DEG_ENTER]:
        new = 2 if age > RC[RC_LAT_UNS_ENTER] else 1
    elif lat == 1:
        if age > RC[RC_LAT_UNS_ENTER]:
            new = 2
        elif age < RC[RC_LAT_DEG_EXIT]:
            new = 0
    elif lat == 2 and age < RC[RC_LAT_UNS_EXIT]:
        new = 0 if age < RC[RC_LAT_DEG_EXIT] else 1
    if new != lat and (new > lat or tf - RS[RS_LAT_T] >= RC[RC_DWELL_NS]):
        n_log = _log(log, n_log, t_ns, K_LATENCY, lat, new, 0, age)
        RS[RS_LAT] = new
        RS[RS_LAT_T] = tf
    vol = int(RS[RS_VOL])
    mid_bps = sigma
    newv = vol
    if vol == 1:
        if mid_bps > RC[RC_VOL_HIGH_ENTER]:
            newv = 2
        elif 0.0 < mid_bps < RC[RC_VOL_LOW_ENTER]:
            newv = 0
    elif vol == 2 and mid_bps < RC[RC_VOL_HIGH_EXIT]:
        newv = 1
    elif vol == 0 and mid_bps > RC[RC_VOL_LOW_EXIT]:
        newv = 1
    if newv != vol and tf - RS[RS_VOL_T] >= RC[RC_DWELL_NS]:
        n_log = _log(log, n_log, t_ns, K_VOLATILITY, vol, newv, 0, mid_bps)
        RS[RS_VOL] = newv
        RS[RS_VOL_T] = tf
    m = int(RS[RS_MARKET])
    if market_status != m:
        n_log = _log(log, n_log, t_ns, K_MARKET, m, int(market_status), 0, market_status)
        RS[RS_MARKET] = market_status
        RS[RS_MKT_T] = tf
    la = int(RS[RS_LAT])
    vo = int(RS[RS_VOL])
    RS[RS_WIDTH_MULT] = RC[RC_WIDTH + la] * RC[RC_WIDTH + 3 + vo]
    RS[RS_SIZE_MULT] = RC[RC_SIZE + la] * RC[RC_SIZE + 3 + vo]
    return n_log


# ------------------------------------------------------------------ risk
KC_MAX_INVENTORY = 0
KC_MAX_ORDER_QTY = 1
KC_MAX_NOTIONAL = 2
KC_MAX_STALENESS_MS = 3
KC_MAX_DRAWDOWN = 4
N_RISK_CONFIG = 5

KS_TRADING = 0
KS_STALE = 1
KS_PEAK = 2
KS_KILLED = 3
N_RISK_STATE = 4

F_REJECT = 0
F_CANCEL = 1
F_DISCONNECT = 2
F_CHECKSUM = 3
F_CLOCK_SKEW = 4
F_MANUAL_KILL = 5
F_MANUAL_RESUME = 6


@dataclass(frozen=True)
class RiskConfig:
    max_inventory: float = 0.02
    max_order_qty: float = 0.01
    max_notional: float = 2000.0
    max_staleness_ms: float = 1500.0
    max_drawdown: float = 1e12

    @classmethod
    def from_config(cls, d: dict) -> "RiskConfig":
        return cls(**d)

    def vector(self) -> np.ndarray:
        v = np.zeros(N_RISK_CONFIG, np.float64)
        v[KC_MAX_INVENTORY] = self.max_inventory
        v[KC_MAX_ORDER_QTY] = self.max_order_qty
        v[KC_MAX_NOTIONAL] = self.max_notional
        v[KC_MAX_STALENESS_MS] = self.max_staleness_ms
        v[KC_MAX_DRAWDOWN] = self.max_drawdown
        return v

    def describe(self) -> dict:
        return asdict(self)


@njit(cache=True)
def risk_init(KS, KC):
    KS[:] = 0.0


@njit(cache=True)
def risk_on_fault(KS, KC, t_ns, fault_kind, value, log, n_log):
    if fault_kind == F_MANUAL_KILL and KS[KS_KILLED] == 0.0:
        KS[KS_KILLED] = 1.0
    elif fault_kind == F_MANUAL_RESUME:
        KS[KS_KILLED] = 0.0
    return n_log


@njit(cache=True)
def risk_update(KS, KC, t_ns, position, equity, mark, data_age_ms, data_valid, rate_counter, rate_limit,
                log, n_log):
    if equity > KS[KS_PEAK]:
        KS[KS_PEAK] = equity
    tr = TRADING_ACTIVE
    if KS[KS_KILLED] != 0.0 or KS[KS_PEAK] - equity > KC[KC_MAX_DRAWDOWN]:
        tr = TRADING_HALTED
    elif abs(position) >= KC[KC_MAX_INVENTORY]:
        tr = TRADING_REDUCING
    if tr != int(KS[KS_TRADING]):
        n_log = _log(log, n_log, t_ns, K_TRADING, int(KS[KS_TRADING]), tr, 0, position)
        KS[KS_TRADING] = tr
    KS[KS_STALE] = 1.0 if (data_valid == 0.0 or data_age_ms > KC[KC_MAX_STALENESS_MS]) else 0.0
    return n_log


@njit(cache=True)
def risk_clamp(KS, KC, view, out):
    if KS[KS_STALE] != 0.0:
        out[Q_BID_QTY] = 0.0
        out[Q_ASK_QTY] = 0.0
        out[Q_REASON] = R_STALE
        return
    if KS[KS_TRADING] == TRADING_HALTED:
        out[Q_BID_QTY] = 0.0
        out[Q_ASK_QTY] = 0.0
        out[Q_REASON] = R_HALTED
        return
    pos = view[V_POSITION]
    room_buy = KC[KC_MAX_INVENTORY] - pos
    room_sell = KC[KC_MAX_INVENTORY] + pos
    if KS[KS_TRADING] == TRADING_REDUCING:
        if pos > 0.0:
            out[Q_BID_QTY] = 0.0
        elif pos < 0.0:
            out[Q_ASK_QTY] = 0.0
        out[Q_REASON] = R_REDUCING
    for k in range(2):
        qi = Q_BID_QTY if k == 0 else Q_ASK_QTY
        pi = Q_BID_PX if k == 0 else Q_ASK_PX
        room = room_buy if k == 0 else room_sell
        q = out[qi]
        if q > room:
            q = room
        if q > KC[KC_MAX_ORDER_QTY]:
            q = KC[KC_MAX_ORDER_QTY]
        if out[pi] > 0.0 and q * out[pi] > KC[KC_MAX_NOTIONAL]:
            q = KC[KC_MAX_NOTIONAL] / out[pi]
        out[qi] = q if q > 0.0 else 0.0
