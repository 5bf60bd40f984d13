"""Hard risk limits, the trading state ACTIVE / REDUCING / HALTED, and the kill switches.

Why a separate layer after the strategy: a strategy may be wrong, new or experimental; the limits
here hold whatever it outputs (:func:`risk_clamp` runs on its output every decision). Everything is
jitted over float64 arrays so the backtest's compiled loop and the live runner call the same code.

State (``KS[KS_TRADING]``, codes as ``V_TRADING``):

``ACTIVE``
    Normal quoting within the limits.
``REDUCING``
    ``|position| > max_inventory`` (a fill overshot, or the limit was lowered): only the side that
    reduces the position is quoted, sized at most down to flat. Back to ACTIVE once
    ``|position| <= reduce_exit_frac * max_inventory`` (hysteresis).
``HALTED``
    No quotes. Entered by a kill switch or a manual kill. Automatic kill switches: drawdown from
    peak equity beyond ``max_drawdown``; ``reject_storm_count`` order rejects within
    ``reject_storm_window_s``; the same for cancels, disconnects and checksum failures; a clock-
    offset estimate beyond ``clock_skew_max_ms``; the venue's rate counter above
    ``rate_counter_max_frac`` of its limit. Leaving HALTED needs the cool-down ``cooldown_s`` since
    the last trigger, no trigger condition still present (rate counter, clock skew), and
    ``resume = "auto"`` or a manual resume (``F_MANUAL_RESUME``; one sent during the cool-down is
    remembered and takes effect when it ends). A manual kill (``F_MANUAL_KILL``, from ``mm kill``)
    holds until a manual resume, with no cool-down of its own. On resume the drawdown peak restarts
    at the current equity (the loss was accepted).

Independent of the state, ``KS[KS_STALE]`` = 1 pulls every quote at once while the book is older
than ``max_staleness_ms`` or invalid (checksum mismatch, resync, disconnect), and clears as soon as
it is fresh and valid again: staleness is a data condition, not a verdict on the strategy.

Every trigger and every change is a row in the transition log (layout and helper shared with
:mod:`mm_core.strategy.regimes`): kind ``K_TRADING`` for trading-state changes (``from == to``
when a trigger fires while already halted), ``K_RISK`` for the stale flag; ``L_CAUSE`` a ``C_*``
code below, ``L_VALUE_E6`` the value that caused it x 1e6. A call appends at most
``MAX_ROWS_PER_UPDATE`` rows.

Storm windows are exact: the last ``STORM_RING`` fault times per kind are kept, and a storm is
"the ``count``-th most recent fault is within ``window_s``" (so ``count`` <= ``STORM_RING``). After
a storm fires its history is cleared: the next storm needs ``count`` new faults.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
from numba import njit

from mm_core.strategy.regimes import log_row
from mm_core.strategy.view import (
    K_RISK,
    K_TRADING,
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
    R_REDUCING,
    R_STALE,
    TRADING_ACTIVE,
    TRADING_HALTED,
    TRADING_REDUCING,
    V_LOT,
    V_MARKET,
    V_MAX_POSITION,
    V_OTHER_ASK_QTY,
    V_OTHER_BID_QTY,
    V_POSITION,
)

# ----------------------------------------------------------------------------- codes

# fault kinds for risk_on_fault (value: see each)
F_REJECT = 0  # an order request was rejected (value unused)
F_CANCEL = 1  # a cancel was sent (value unused): a runaway requote loop shows as a cancel storm
F_DISCONNECT = 2  # the feed or the order connection dropped (value unused)
F_CHECKSUM = 3  # a book checksum mismatch (value unused)
F_CLOCK_SKEW = 4  # a clock-offset estimate, value = offset in ms (either sign); beyond the bound = kill
F_MANUAL_KILL = 5  # `mm kill` (the runner saw the kill file)
F_MANUAL_RESUME = 6  # `mm kill --resume`
FAULT_NAMES = ("reject", "cancel", "disconnect", "checksum", "clock_skew", "manual_kill", "manual_resume")

# causes (L_CAUSE) -- numbered after the regimes' causes so one code names one reason
C_INVENTORY = 20  # value: |position|
C_INVENTORY_OK = 21  # value: |position|
C_STALE_AGE = 22  # value: data age, ms
C_DATA_INVALID = 23  # value: data age, ms
C_DATA_FRESH = 24  # value: data age, ms
C_DRAWDOWN = 25  # value: drawdown from peak equity (quote currency)
C_REJECT_STORM = 26  # value: faults of that kind within the window
C_CANCEL_STORM = 27
C_DISCONNECTS = 28
C_CHECKSUM_FAILURES = 29
C_CLOCK_SKEW = 30  # value: offset, ms
C_RATE_COUNTER = 31  # value: rate counter
C_MANUAL_KILL = 32  # value: 0
C_RESUME = 33  # value: seconds halted
C_RESUME_ARMED = 34  # value: seconds of cool-down left
CAUSE_NAMES = {
    C_INVENTORY: "inventory_beyond_max", C_INVENTORY_OK: "inventory_back_inside",
    C_STALE_AGE: "data_stale", C_DATA_INVALID: "data_invalid", C_DATA_FRESH: "data_fresh",
    C_DRAWDOWN: "drawdown", C_REJECT_STORM: "reject_storm", C_CANCEL_STORM: "cancel_storm",
    C_DISCONNECTS: "repeated_disconnects", C_CHECKSUM_FAILURES: "checksum_failures",
    C_CLOCK_SKEW: "clock_skew", C_RATE_COUNTER: "rate_counter_near_limit", C_MANUAL_KILL: "manual_kill",
    C_RESUME: "resume", C_RESUME_ARMED: "manual_resume_armed",
}
KILL_SWITCH_CAUSES = (C_DRAWDOWN, C_REJECT_STORM, C_CANCEL_STORM, C_DISCONNECTS, C_CHECKSUM_FAILURES,
                      C_CLOCK_SKEW, C_RATE_COUNTER, C_MANUAL_KILL)

MAX_ROWS_PER_UPDATE = 4

# ----------------------------------------------------------------------------- state layout

STORM_RING = 64
_N_STORMS = 4  # reject, cancel, disconnect, checksum (fault kinds 0..3)
_RING_W = 2 + STORM_RING  # per kind: total faults recorded, unused, then the ring of times

KS_TRADING = 0
KS_STALE = 1
KS_HALT_CAUSE = 2  # cause of the last trigger
KS_HALTED_AT = 3  # t_ns of the last trigger (the cool-down runs from here)
KS_MANUAL = 4  # 1 while a manual kill holds
KS_SWITCH = 5  # 1 while an automatic kill switch holds
KS_RESUME_ARMED = 6  # 1 once a manual resume was received for the current halt
KS_PEAK = 7  # peak equity (NaN until the first equity)
KS_DD_BAD = 8  # drawdown condition true at the last update (triggers fire on the rising edge)
KS_RATE_BAD = 9
KS_SKEW_BAD = 10
KS_TRIGGERS = 11  # kill-switch triggers so far
KS_MARK = 12  # last mark price
KS_M_LOT = 13  # memo of _side_cap's lot floor: lot, size in, size out (no behaviour of its own)
KS_M_QIN = 14
KS_M_QOUT = 15
KS_RINGS = 16
N_RISK_STATE = KS_RINGS + _N_STORMS * _RING_W

# ----------------------------------------------------------------------------- config vector layout

KC_MAX_INVENTORY = 0
KC_REDUCE_EXIT_FRAC = 1
KC_MAX_ORDER_QTY = 2
KC_MAX_NOTIONAL = 3
KC_MAX_STALENESS_MS = 4
KC_MAX_DRAWDOWN = 5
KC_COOLDOWN_NS = 6
KC_RESUME_AUTO = 7
KC_STORM_COUNT = 8  # 4: reject, cancel, disconnect, checksum
KC_STORM_WINDOW_NS = 12  # 4
KC_CLOCK_SKEW_MAX_MS = 16
KC_RATE_MAX_FRAC = 17
N_RISK_CONFIG = 18


# ----------------------------------------------------------------------------- config


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk]`` of the runtime config: hard limits and kill-switch thresholds (units in names)."""

    max_inventory: float = 0.01  # base units, absolute; beyond it: reduce-only
    reduce_exit_frac: float = 0.8  # REDUCING ends at |position| <= this * max_inventory
    max_order_qty: float = 0.002  # base units per order
    max_notional: float = 200.0  # quote currency per order
    max_staleness_ms: float = 1500.0
    max_drawdown: float = 50.0  # quote currency, from peak equity
    cooldown_s: float = 300.0
    resume: str = "manual"  # manual | auto
    reject_storm_count: int = 10
    reject_storm_window_s: float = 60.0
    cancel_storm_count: int = 30
    cancel_storm_window_s: float = 10.0
    disconnect_count: int = 3
    disconnect_window_s: float = 300.0
    checksum_failure_count: int = 3
    checksum_failure_window_s: float = 60.0
    clock_skew_max_ms: float = 100.0
    rate_counter_max_frac: float = 0.9

    def __post_init__(self) -> None:
        p: list[str] = []
        for name in ("max_inventory", "max_order_qty", "max_notional", "max_staleness_ms", "max_drawdown",
                     "reject_storm_window_s", "cancel_storm_window_s", "disconnect_window_s",
                     "checksum_failure_window_s", "clock_skew_max_ms"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                p.append(f"{name} must be > 0")
        if not (math.isfinite(self.cooldown_s) and self.cooldown_s >= 0):
            p.append("cooldown_s must be >= 0")
        if not 0.0 < self.reduce_exit_frac <= 1.0:
            p.append("reduce_exit_frac must be in (0, 1]")
        if not 0.0 < self.rate_counter_max_frac <= 1.0:
            p.append("rate_counter_max_frac must be in (0, 1]")
        if self.resume not in ("manual", "auto"):
            p.append(f"resume must be manual or auto, got {self.resume!r}")
        for name in ("reject_storm_count", "cancel_storm_count", "disconnect_count", "checksum_failure_count"):
            if not 1 <= getattr(self, name) <= STORM_RING:
                p.append(f"{name} must be between 1 and {STORM_RING}")
        if p:
            raise ValueError("; ".join(p))

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> "RiskConfig":
        """Validated config from a ``[risk]`` table (``ValueError`` naming the key on a mistake)."""
        try:
            return msgspec.convert(section or {}, cls)
        except msgspec.ValidationError as exc:
            raise ValueError("risk: " + str(exc).replace("Object contains unknown field", "unknown key")
                             .replace("$.", "")) from None

    def vector(self) -> np.ndarray:
        """The float64 config vector the jitted functions read (``KC_*`` indices)."""
        v = np.zeros(N_RISK_CONFIG, np.float64)
        v[KC_MAX_INVENTORY] = self.max_inventory
        v[KC_REDUCE_EXIT_FRAC] = self.reduce_exit_frac
        v[KC_MAX_ORDER_QTY] = self.max_order_qty
        v[KC_MAX_NOTIONAL] = self.max_notional
        v[KC_MAX_STALENESS_MS] = self.max_staleness_ms
        v[KC_MAX_DRAWDOWN] = self.max_drawdown
        v[KC_COOLDOWN_NS] = self.cooldown_s * 1e9
        v[KC_RESUME_AUTO] = 1.0 if self.resume == "auto" else 0.0
        v[KC_STORM_COUNT:KC_STORM_COUNT + 4] = (self.reject_storm_count, self.cancel_storm_count,
                                                self.disconnect_count, self.checksum_failure_count)
        v[KC_STORM_WINDOW_NS:KC_STORM_WINDOW_NS + 4] = (
            self.reject_storm_window_s * 1e9, self.cancel_storm_window_s * 1e9,
            self.disconnect_window_s * 1e9, self.checksum_failure_window_s * 1e9)
        v[KC_CLOCK_SKEW_MAX_MS] = self.clock_skew_max_ms
        v[KC_RATE_MAX_FRAC] = self.rate_counter_max_frac
        return v

    def describe(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


def new_state(kc: np.ndarray) -> np.ndarray:
    """A fresh, initialised risk state vector for config vector ``kc``."""
    ks = np.zeros(N_RISK_STATE, np.float64)
    risk_init(ks, kc)
    return ks


# ----------------------------------------------------------------------------- jitted core


@njit(cache=True)
def risk_init(KS, KC):
    """ACTIVE, not stale, no history."""
    KS[:] = 0.0
    KS[KS_TRADING] = TRADING_ACTIVE
    KS[KS_PEAK] = np.nan
    KS[KS_MARK] = np.nan
    KS[KS_HALTED_AT] = -1.0e30


@njit(cache=True)
def _halt(KS, t_ns, cause, value, manual, log, n_log):
    """A kill switch (or manual kill) fires: HALTED, cool-down restarts, a pending resume is void."""
    prev = np.int64(KS[KS_TRADING])
    KS[KS_TRADING] = TRADING_HALTED
    KS[KS_HALTED_AT] = float(t_ns)
    KS[KS_HALT_CAUSE] = cause
    KS[KS_RESUME_ARMED] = 0.0
    KS[KS_TRIGGERS] += 1.0
    if manual:
        KS[KS_MANUAL] = 1.0
    else:
        KS[KS_SWITCH] = 1.0
    return log_row(log, n_log, t_ns, K_TRADING, prev, TRADING_HALTED, cause, value)


@njit(cache=True)
def _storm(KS, KC, t_ns, kind):
    """Record a fault of storm kind ``kind``; returns the count within the window if it is a storm, else 0."""
    base = KS_RINGS + kind * _RING_W
    total = np.int64(KS[base])
    ring = base + 2
    KS[ring + total % STORM_RING] = float(t_ns)
    total += 1
    KS[base] = total
    need = np.int64(KC[KC_STORM_COUNT + kind])
    if total < need:
        return 0
    window = KC[KC_STORM_WINDOW_NS + kind]
    t = float(t_ns)
    if t - KS[ring + (total - need) % STORM_RING] > window:
        return 0
    n_in = 0
    for k in range(min(total, STORM_RING)):
        if t - KS[ring + (total - 1 - k) % STORM_RING] <= window:
            n_in += 1
        else:
            break
    KS[base] = 0.0  # a fired storm starts a fresh history
    return n_in


@njit(cache=True)
def risk_on_fault(KS, KC, t_ns, fault_kind, value, log, n_log):
    """One fault or manual command at ``t_ns`` (``F_*``); returns ``n_log``."""
    fk = np.int64(fault_kind)
    if fk >= F_REJECT and fk <= F_CHECKSUM:
        n_in = _storm(KS, KC, t_ns, fk)
        if n_in > 0:
            n_log = _halt(KS, t_ns, C_REJECT_STORM + fk, float(n_in), False, log, n_log)
    elif fk == F_CLOCK_SKEW:
        if not math.isfinite(value):  # no estimate: no verdict
            return n_log
        bad = abs(value) > KC[KC_CLOCK_SKEW_MAX_MS]
        if bad and KS[KS_SKEW_BAD] == 0.0:
            n_log = _halt(KS, t_ns, C_CLOCK_SKEW, value, False, log, n_log)
        KS[KS_SKEW_BAD] = 1.0 if bad else 0.0
    elif fk == F_MANUAL_KILL:
        n_log = _halt(KS, t_ns, C_MANUAL_KILL, 0.0, True, log, n_log)
    elif fk == F_MANUAL_RESUME:
        KS[KS_MANUAL] = 0.0
        if KS[KS_SWITCH] != 0.0:
            KS[KS_RESUME_ARMED] = 1.0
            left = KC[KC_COOLDOWN_NS] - (float(t_ns) - KS[KS_HALTED_AT])
            if left > 0.0:
                n_log = log_row(log, n_log, t_ns, K_TRADING, TRADING_HALTED, TRADING_HALTED, C_RESUME_ARMED,
                                left * 1e-9)
        n_log = _try_resume(KS, KC, t_ns, np.nan, log, n_log)
    return n_log


@njit(cache=True)
def _try_resume(KS, KC, t_ns, equity, log, n_log):
    """Leave HALTED if nothing holds it any more (see module docstring)."""
    if np.int64(KS[KS_TRADING]) != TRADING_HALTED or KS[KS_MANUAL] != 0.0:
        return n_log
    t = float(t_ns)
    if KS[KS_SWITCH] != 0.0:
        if t - KS[KS_HALTED_AT] < KC[KC_COOLDOWN_NS]:
            return n_log
        if KS[KS_RATE_BAD] != 0.0 or KS[KS_SKEW_BAD] != 0.0:
            return n_log
        if KC[KC_RESUME_AUTO] == 0.0 and KS[KS_RESUME_ARMED] == 0.0:
            return n_log
    KS[KS_SWITCH] = 0.0
    KS[KS_RESUME_ARMED] = 0.0
    KS[KS_DD_BAD] = 0.0
    KS[KS_PEAK] = equity  # NaN: restarts at the next equity seen
    KS[KS_TRADING] = TRADING_ACTIVE
    return log_row(log, n_log, t_ns, K_TRADING, TRADING_HALTED, TRADING_ACTIVE, C_RESUME,
                   (t - KS[KS_HALTED_AT]) * 1e-9)


@njit(cache=True)
def risk_update(KS, KC, t_ns, position, equity, mark, data_age_ms, data_valid, rate_counter, rate_limit,
                log, n_log):
    """Evaluate staleness, drawdown, rate counter, resume and inventory at ``t_ns``; returns ``n_log``.

    ``equity`` in quote currency (NaN = unknown, no drawdown check), ``data_age_ms`` NaN = stale,
    ``rate_limit`` <= 0 disables the rate-counter switch.
    """
    # ---- staleness: pull at once, clear at once
    invalid = not (data_valid > 0.5)
    stale = invalid or not (data_age_ms <= KC[KC_MAX_STALENESS_MS])
    was = KS[KS_STALE] != 0.0
    if stale != was:
        cause = C_DATA_FRESH
        if stale:
            cause = C_DATA_INVALID if invalid else C_STALE_AGE
        n_log = log_row(log, n_log, t_ns, K_RISK, 1 if was else 0, 1 if stale else 0, cause, data_age_ms)
        KS[KS_STALE] = 1.0 if stale else 0.0
    # ---- drawdown from peak equity (rising edge)
    if math.isfinite(equity):
        if not (KS[KS_PEAK] >= equity):  # NaN peak or a new high
            KS[KS_PEAK] = equity
        dd = KS[KS_PEAK] - equity
        bad = dd > KC[KC_MAX_DRAWDOWN]
        if bad and KS[KS_DD_BAD] == 0.0:
            n_log = _halt(KS, t_ns, C_DRAWDOWN, dd, False, log, n_log)
        KS[KS_DD_BAD] = 1.0 if bad else 0.0
    # ---- the venue's rate counter near its limit (rising edge)
    if rate_limit > 0.0:
        bad = rate_counter > KC[KC_RATE_MAX_FRAC] * rate_limit
        if bad and KS[KS_RATE_BAD] == 0.0:
            n_log = _halt(KS, t_ns, C_RATE_COUNTER, rate_counter, False, log, n_log)
        KS[KS_RATE_BAD] = 1.0 if bad else 0.0
    else:
        KS[KS_RATE_BAD] = 0.0
    if math.isfinite(mark):
        KS[KS_MARK] = mark
    # ---- resume, then inventory (only outside HALTED)
    n_log = _try_resume(KS, KC, t_ns, equity, log, n_log)
    st = np.int64(KS[KS_TRADING])
    ap = abs(position)
    if st == TRADING_ACTIVE and ap > KC[KC_MAX_INVENTORY]:
        n_log = log_row(log, n_log, t_ns, K_TRADING, st, TRADING_REDUCING, C_INVENTORY, ap)
        KS[KS_TRADING] = TRADING_REDUCING
    elif st == TRADING_REDUCING and ap <= KC[KC_REDUCE_EXIT_FRAC] * KC[KC_MAX_INVENTORY]:
        n_log = log_row(log, n_log, t_ns, K_TRADING, st, TRADING_ACTIVE, C_INVENTORY_OK, ap)
        KS[KS_TRADING] = TRADING_ACTIVE
    return n_log


@njit(cache=True)
def _side_cap(qty, room, px, KC, lot, KS):
    """``qty`` limited by inventory room, order size and notional, floored to the lot; 0 if unusable.

    Two divisions per side and decision made this the costliest line of the decision step; both
    are skipped only where the result is known to be identical: the notional cap cannot bind when
    ``q * px`` is clearly below it (a margin of 1e-6 covers every rounding), and the lot floor of
    the same ``q`` is remembered in ``KS[KS_M_*]`` (a pure function of ``q`` and ``lot``)."""
    if not (qty > 0.0) or not (px > 0.0) or not math.isfinite(px):
        return 0.0
    q = qty
    if room < q:
        q = room
    if KC[KC_MAX_ORDER_QTY] < q:
        q = KC[KC_MAX_ORDER_QTY]
    m = KC[KC_MAX_NOTIONAL]
    if not (q * px < m * 0.999999):
        cap = m / px
        if cap < q:
            q = cap
    if lot > 0.0:
        if q == KS[KS_M_QIN] and lot == KS[KS_M_LOT]:
            q = KS[KS_M_QOUT]
        else:
            KS[KS_M_QIN] = q
            KS[KS_M_LOT] = lot
            q = math.floor(q / lot) * lot
            KS[KS_M_QOUT] = q
    if not (q > 0.0):
        return 0.0
    return q


@njit(cache=True)
def risk_clamp(KS, KC, view, out):
    """Make the strategy's ``out`` safe (see module docstring); sets ``out[Q_REASON]`` when it cuts.

    Inventory counts resting orders: the side's target replaces its working order, and
    ``view[V_OTHER_BID_QTY]`` / ``view[V_OTHER_ASK_QTY]`` -- size resting on that side besides the
    working order (cancels in flight, leftovers) -- can still fill, so it uses up that side's room.
    """
    if np.int64(KS[KS_TRADING]) == TRADING_HALTED:
        out[Q_BID_QTY] = 0.0
        out[Q_ASK_QTY] = 0.0
        out[Q_REASON] = R_HALTED
        return
    if KS[KS_STALE] != 0.0:
        out[Q_BID_QTY] = 0.0
        out[Q_ASK_QTY] = 0.0
        out[Q_REASON] = R_STALE
        return
    mkt = np.int64(view[V_MARKET])
    if mkt == MKT_CANCEL_ONLY or mkt == MKT_MAINTENANCE:
        out[Q_BID_QTY] = 0.0
        out[Q_ASK_QTY] = 0.0
        out[Q_REASON] = R_MARKET
        return
    max_inv = KC[KC_MAX_INVENTORY]
    vmax = view[V_MAX_POSITION]
    if vmax > 0.0 and vmax < max_inv:
        max_inv = vmax
    pos = view[V_POSITION]
    pend_buy = view[V_OTHER_BID_QTY]
    pend_sell = view[V_OTHER_ASK_QTY]
    if not (pend_buy > 0.0):  # NaN or none
        pend_buy = 0.0
    if not (pend_sell > 0.0):
        pend_sell = 0.0
    room_buy = max_inv - pos - pend_buy
    room_sell = max_inv + pos - pend_sell
    if np.int64(KS[KS_TRADING]) == TRADING_REDUCING:
        # only the reducing side, never past flat
        if pos > 0.0:
            room_buy = 0.0
            if pos - pend_sell < room_sell:
                room_sell = pos - pend_sell
        elif pos < 0.0:
            room_sell = 0.0
            if -pos - pend_buy < room_buy:
                room_buy = -pos - pend_buy
        else:
            room_buy = 0.0
            room_sell = 0.0
    lot = view[V_LOT]
    qb0 = out[Q_BID_QTY]
    qa0 = out[Q_ASK_QTY]
    qb = _side_cap(qb0, room_buy, out[Q_BID_PX], KC, lot, KS)
    qa = _side_cap(qa0, room_sell, out[Q_ASK_PX], KC, lot, KS)
    if (qb0 > 0.0 and room_buy < qb0) or (qa0 > 0.0 and room_sell < qa0):
        out[Q_REASON] = R_REDUCING if np.int64(KS[KS_TRADING]) == TRADING_REDUCING else R_INVENTORY
    out[Q_BID_QTY] = qb
    out[Q_ASK_QTY] = qa
