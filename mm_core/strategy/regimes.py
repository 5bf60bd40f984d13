"""Regime machines with hysteresis and minimum dwell: latency, volatility, market status.

Why machines and not thresholds: a signal hovering around one threshold would switch the quoting
width every update (a "flap"), and every switch costs order actions and queue position. Each
machine here has *enter* and *exit* thresholds (exit inside enter: the band between them holds the
current state) and a *minimum dwell*: a state, once entered, is kept at least ``dwell_ms`` before any
transition out of it. So no transition can be reversed within the dwell time, by construction. The
hard safety pulls (stale or invalid book, kill switches) are :mod:`mm_core.strategy.risk`'s job and
act within one decision cycle; the regimes only shape width and size.

Machines (``L_KIND`` codes in the transition log):

``latency`` (``K_LATENCY``) normal / degraded / unsafe
    From the feed-age samples (one per book update, :func:`regimes_on_age`) over a rolling window of
    ``window_ms``. The window's ``quantile`` (default the 90th percentile) is compared with the
    thresholds (defaults from the user's plan: degraded above 20 ms, unsafe above 80 ms; exits at
    15 ms / 60 ms). The window is kept as ``N_BUCKETS`` time buckets holding, per bucket, the sample
    count and the counts above each of the four thresholds -- O(1) per sample, exact comparisons
    ("the p90 of 20 samples is above 20 ms" is "more than 2 samples are above 20 ms"). The window's
    resolution is ``window_ms / N_BUCKETS``. No samples in the window = no evidence = no change (a
    silent feed is a staleness problem: risk pulls the quotes).
``volatility`` (``K_VOLATILITY``) low / normal / high
    From the recent realised vol in **basis points per sqrt(second)** (``1e4 * V_SIGMA / V_FAIR``),
    against ``low_enter < low_exit <= high_exit < high_enter`` bands. NaN or <= 0 = no estimate yet,
    no change.
``market`` (``K_MARKET``) online / post_only / cancel_only / limit_only / maintenance
    The exchange's status (codes as ``V_MARKET``). A restrictive status is adopted at once (the
    exchange would reject what we send); the return to ``online`` waits until the exchange has said
    ``online`` for ``dwell_ms``. Size multipliers per status (cancel_only and maintenance must be 0).

The combined ``RS[RS_WIDTH_MULT]`` / ``RS[RS_SIZE_MULT]`` are the products of the machines'
multipliers for their current states.

Transition log: an int64 array ``[:, N_L]``, one row per transition, columns ``L_T`` (t_ns),
``L_KIND``, ``L_FROM``, ``L_TO``, ``L_CAUSE`` (``C_*``), ``L_VALUE_E6`` (the value that caused it
x 1e6, rounded half up), so the digest of a run's log is bit-exact. A call appends at most
``MAX_ROWS_PER_UPDATE`` rows; rows beyond the array are not written but still counted (the returned
``n_log`` exceeds ``log.shape[0]``: the caller sees the overflow and grows the array).

Times: ``t_ns`` is int64 ns; the state keeps times as float64, which resolves epoch nanoseconds to
256 ns -- irrelevant against millisecond dwell times, and deterministic.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
from numba import njit

from mm_core.strategy.view import (
    K_LATENCY,
    K_MARKET,
    K_VOLATILITY,
    L_CAUSE,
    L_FROM,
    L_KIND,
    L_T,
    L_TO,
    L_VALUE_E6,
    LAT_DEGRADED,
    LAT_NORMAL,
    LAT_UNSAFE,
    MKT_CANCEL_ONLY,
    MKT_MAINTENANCE,
    MKT_ONLINE,
    N_L,
    VOL_HIGH,
    VOL_LOW,
    VOL_NORMAL,
)

# ----------------------------------------------------------------------------- codes

# causes: the value column says what the number is
C_LAT_ABOVE = 1  # value: share of the window's samples above the crossed enter threshold
C_LAT_BELOW = 2  # value: share of the window's samples above the crossed exit threshold
C_VOL_ABOVE = 3  # value: realised vol, bp per sqrt(s)
C_VOL_BELOW = 4  # value: realised vol, bp per sqrt(s)
C_MARKET_STATUS = 5  # value: the exchange's status code
C_MARKET_ONLINE = 6  # value: ms the exchange had been online

MAX_ROWS_PER_UPDATE = 3

# ----------------------------------------------------------------------------- state layout

N_BUCKETS = 16  # a power of two: the ring index is a bit mask
_MASK = N_BUCKETS - 1
_BUCKET_W = 5  # per bucket: count, > degraded_exit, > degraded_enter, > unsafe_exit, > unsafe_enter

RS_LAT = 0
RS_VOL = 1
RS_MARKET = 2
RS_WIDTH_MULT = 3
RS_SIZE_MULT = 4
RS_LAT_SINCE = 5  # t_ns the current latency state was entered
RS_VOL_SINCE = 6
RS_MARKET_SINCE = 7
RS_ONLINE_SINCE = 8  # t_ns the exchange status last became online (NaN while not online)
RS_RAW_MARKET = 9  # last status the exchange reported
RS_LAST_BUCKET = 10  # absolute index (t_ns // bucket_ns) of the newest bucket
RS_WIN_N = 11  # window totals: sample count, then counts above each threshold (4)
RS_WIN_GT = 12
RS_BUCKETS = 16
N_REG_STATE = RS_BUCKETS + N_BUCKETS * _BUCKET_W

# ----------------------------------------------------------------------------- config vector layout

RC_INV_BUCKET_NS = 0  # 1 / bucket width in ns
RC_LAT_QUANTILE = 1
RC_LAT_THR = 2  # 4 thresholds (ms): degraded_exit, degraded_enter, unsafe_exit, unsafe_enter
RC_LAT_DWELL_NS = 6
RC_LAT_WIDTH = 7  # 3
RC_LAT_SIZE = 10  # 3
RC_VOL_LOW_ENTER = 13
RC_VOL_LOW_EXIT = 14
RC_VOL_HIGH_ENTER = 15
RC_VOL_HIGH_EXIT = 16
RC_VOL_DWELL_NS = 17
RC_VOL_WIDTH = 18  # 3
RC_VOL_SIZE = 21  # 3
RC_MKT_DWELL_NS = 24
RC_MKT_SIZE = 25  # 5
N_REG_CONFIG = 30

_FAR_PAST = -1.0e30


# ----------------------------------------------------------------------------- config


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


def _mults(name: str, values: tuple[float, ...], problems: list[str]) -> None:
    if any(not (math.isfinite(v) and v >= 0.0) for v in values):
        problems.append(f"{name} must be finite and >= 0")


class LatencyRegimeConfig(_Section):
    """``[regimes.latency]``: feed-age thresholds (ms) with hysteresis, window and dwell."""

    window_ms: float = 1000.0
    quantile: float = 0.9
    degraded_enter_ms: float = 20.0
    degraded_exit_ms: float = 15.0
    unsafe_enter_ms: float = 80.0
    unsafe_exit_ms: float = 60.0
    dwell_ms: float = 2000.0
    width_mult: tuple[float, float, float] = (1.0, 1.5, 2.0)  # normal, degraded, unsafe
    size_mult: tuple[float, float, float] = (1.0, 0.5, 0.0)

    def __post_init__(self) -> None:
        p: list[str] = []
        if not self.window_ms > 0:
            p.append("window_ms must be > 0")
        if not 0.0 < self.quantile <= 1.0:
            p.append("quantile must be in (0, 1]")
        if not 0.0 <= self.degraded_exit_ms < self.degraded_enter_ms:
            p.append("need 0 <= degraded_exit_ms < degraded_enter_ms")
        if not self.unsafe_exit_ms < self.unsafe_enter_ms:
            p.append("need unsafe_exit_ms < unsafe_enter_ms")
        if not (self.degraded_enter_ms < self.unsafe_enter_ms and self.degraded_exit_ms < self.unsafe_exit_ms):
            p.append("degraded thresholds must be below the unsafe ones")
        if not self.dwell_ms >= 0:
            p.append("dwell_ms must be >= 0")
        _mults("width_mult", self.width_mult, p)
        _mults("size_mult", self.size_mult, p)
        if p:
            raise ValueError("; ".join(p))


class VolatilityRegimeConfig(_Section):
    """``[regimes.volatility]``: realised-vol bands in bp per sqrt(second), with hysteresis."""

    low_enter_bp: float = 0.4
    low_exit_bp: float = 0.5
    high_enter_bp: float = 2.0
    high_exit_bp: float = 1.6
    dwell_ms: float = 10_000.0
    width_mult: tuple[float, float, float] = (1.0, 1.0, 1.5)  # low, normal, high
    size_mult: tuple[float, float, float] = (1.0, 1.0, 0.5)

    def __post_init__(self) -> None:
        p: list[str] = []
        if not 0.0 < self.low_enter_bp < self.low_exit_bp <= self.high_exit_bp < self.high_enter_bp:
            p.append("need 0 < low_enter_bp < low_exit_bp <= high_exit_bp < high_enter_bp")
        if not self.dwell_ms >= 0:
            p.append("dwell_ms must be >= 0")
        _mults("width_mult", self.width_mult, p)
        _mults("size_mult", self.size_mult, p)
        if p:
            raise ValueError("; ".join(p))


class MarketRegimeConfig(_Section):
    """``[regimes.market]``: how long the exchange must be online again before we quote."""

    dwell_ms: float = 5000.0
    # online, post_only, cancel_only, limit_only, maintenance
    size_mult: tuple[float, float, float, float, float] = (1.0, 1.0, 0.0, 1.0, 0.0)

    def __post_init__(self) -> None:
        p: list[str] = []
        if not self.dwell_ms >= 0:
            p.append("dwell_ms must be >= 0")
        _mults("size_mult", self.size_mult, p)
        if self.size_mult[MKT_CANCEL_ONLY] != 0.0 or self.size_mult[MKT_MAINTENANCE] != 0.0:
            p.append("size_mult for cancel_only and maintenance must be 0 (the exchange accepts no new orders)")
        if p:
            raise ValueError("; ".join(p))


class RegimeConfig(_Section):
    """``[regimes]`` of the runtime config: the three machines' thresholds, dwell and multipliers."""

    latency: LatencyRegimeConfig = LatencyRegimeConfig()
    volatility: VolatilityRegimeConfig = VolatilityRegimeConfig()
    market: MarketRegimeConfig = MarketRegimeConfig()

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> "RegimeConfig":
        """Validated config from a ``[regimes]`` table (``ValueError`` naming the key on a mistake)."""
        try:
            return msgspec.convert(section or {}, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"regimes: {_clean_error(exc)}") from None

    def vector(self) -> np.ndarray:
        """The float64 config vector the jitted functions read (``RC_*`` indices)."""
        lat, vol, mkt = self.latency, self.volatility, self.market
        v = np.zeros(N_REG_CONFIG, np.float64)
        v[RC_INV_BUCKET_NS] = N_BUCKETS / (lat.window_ms * 1e6)
        v[RC_LAT_QUANTILE] = lat.quantile
        v[RC_LAT_THR:RC_LAT_THR + 4] = (lat.degraded_exit_ms, lat.degraded_enter_ms,
                                        lat.unsafe_exit_ms, lat.unsafe_enter_ms)
        v[RC_LAT_DWELL_NS] = lat.dwell_ms * 1e6
        v[RC_LAT_WIDTH:RC_LAT_WIDTH + 3] = lat.width_mult
        v[RC_LAT_SIZE:RC_LAT_SIZE + 3] = lat.size_mult
        v[RC_VOL_LOW_ENTER] = vol.low_enter_bp
        v[RC_VOL_LOW_EXIT] = vol.low_exit_bp
        v[RC_VOL_HIGH_ENTER] = vol.high_enter_bp
        v[RC_VOL_HIGH_EXIT] = vol.high_exit_bp
        v[RC_VOL_DWELL_NS] = vol.dwell_ms * 1e6
        v[RC_VOL_WIDTH:RC_VOL_WIDTH + 3] = vol.width_mult
        v[RC_VOL_SIZE:RC_VOL_SIZE + 3] = vol.size_mult
        v[RC_MKT_DWELL_NS] = mkt.dwell_ms * 1e6
        v[RC_MKT_SIZE:RC_MKT_SIZE + 5] = mkt.size_mult
        return v

    def describe(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    def dwell_ms_for(self, kind: int) -> float:
        """Minimum dwell (ms) of machine ``kind`` (``K_LATENCY``, ``K_VOLATILITY``, ``K_MARKET``):
        a transition reversed within it is a flap."""
        by_kind = {K_LATENCY: self.latency.dwell_ms, K_VOLATILITY: self.volatility.dwell_ms,
                   K_MARKET: self.market.dwell_ms}
        if kind not in by_kind:
            raise ValueError(f"no regime machine of kind {kind}")
        return float(by_kind[kind])


def _clean_error(exc: Exception) -> str:
    return str(exc).replace("Object contains unknown field", "unknown key").replace("$.", "")


def new_log(rows: int = 1024) -> np.ndarray:
    """An empty transition log (int64 ``[rows, N_L]``)."""
    return np.zeros((rows, N_L), np.int64)


def new_state(rc: np.ndarray) -> np.ndarray:
    """A fresh, initialised regime state vector for config vector ``rc``."""
    rs = np.zeros(N_REG_STATE, np.float64)
    regimes_init(rs, rc)
    return rs


# ----------------------------------------------------------------------------- jitted core


@njit(cache=True)
def log_row(log, n_log, t_ns, kind, frm, to, cause, value):
    """Append one transition row (if there is room); returns the new row count."""
    if n_log < log.shape[0]:
        v = value
        if not math.isfinite(v):
            v = 0.0
        if v > 9.0e12:
            v = 9.0e12
        elif v < -9.0e12:
            v = -9.0e12
        log[n_log, L_T] = t_ns
        log[n_log, L_KIND] = kind
        log[n_log, L_FROM] = frm
        log[n_log, L_TO] = to
        log[n_log, L_CAUSE] = cause
        log[n_log, L_VALUE_E6] = np.int64(math.floor(v * 1e6 + 0.5))
    return n_log + 1


@njit(cache=True)
def regimes_init(RS, RC):
    """Start state: latency normal, volatility normal, market online; every dwell satisfied."""
    RS[:] = 0.0
    RS[RS_LAT] = LAT_NORMAL
    RS[RS_VOL] = VOL_NORMAL
    RS[RS_MARKET] = MKT_ONLINE
    RS[RS_LAT_SINCE] = _FAR_PAST
    RS[RS_VOL_SINCE] = _FAR_PAST
    RS[RS_MARKET_SINCE] = _FAR_PAST
    RS[RS_ONLINE_SINCE] = _FAR_PAST
    RS[RS_RAW_MARKET] = MKT_ONLINE
    RS[RS_LAST_BUCKET] = -1.0e18
    _set_mults(RS, RC)


@njit(cache=True)
def _advance(RS, RC, t_ns):
    """Move the window's head to ``t_ns``'s bucket, clearing (and un-counting) the expired ones."""
    b = np.int64(float(t_ns) * RC[RC_INV_BUCKET_NS])  # float multiply, not a 64-bit division
    last = np.int64(RS[RS_LAST_BUCKET])
    if b <= last:
        return last
    n_clear = b - last
    if n_clear > N_BUCKETS:
        n_clear = N_BUCKETS
    for k in range(1, n_clear + 1):
        base = RS_BUCKETS + ((last + k) & _MASK) * _BUCKET_W
        RS[RS_WIN_N] -= RS[base]
        for j in range(4):
            RS[RS_WIN_GT + j] -= RS[base + 1 + j]
        for j in range(_BUCKET_W):
            RS[base + j] = 0.0
    RS[RS_LAST_BUCKET] = b
    return b


@njit(cache=True)
def regimes_on_age(RS, RC, t_ns, age_ms):
    """Add one feed-age sample (ms) at ``t_ns``; O(1). NaN samples are ignored.

    A sample older than the newest bucket (out-of-order time) is counted in the newest bucket.
    """
    if not math.isfinite(age_ms):
        return
    b = _advance(RS, RC, t_ns)
    base = RS_BUCKETS + (b & _MASK) * _BUCKET_W
    RS[base] += 1.0
    RS[RS_WIN_N] += 1.0
    for j in range(4):
        if age_ms > RC[RC_LAT_THR + j]:
            RS[base + 1 + j] += 1.0
            RS[RS_WIN_GT + j] += 1.0


@njit(cache=True)
def _set_mults(RS, RC):
    lat = np.int64(RS[RS_LAT])
    vol = np.int64(RS[RS_VOL])
    mkt = np.int64(RS[RS_MARKET])
    RS[RS_WIDTH_MULT] = RC[RC_LAT_WIDTH + lat] * RC[RC_VOL_WIDTH + vol]
    RS[RS_SIZE_MULT] = RC[RC_LAT_SIZE + lat] * RC[RC_VOL_SIZE + vol] * RC[RC_MKT_SIZE + mkt]


@njit(cache=True)
def _latency_target(cur, RS, quantile):
    """(new state, cause, index of the threshold that decided) of the latency machine.

    ``RS[RS_WIN_GT + j]`` counts the window's samples above threshold ``j`` (degraded_exit,
    degraded_enter, unsafe_exit, unsafe_enter). The nearest-rank ``quantile`` of ``n`` samples (the
    ``ceil(quantile * n)``-th smallest) is above ``T`` exactly when more than
    ``n - ceil(quantile * n)`` samples are above ``T``.
    """
    n = RS[RS_WIN_N]
    k = n - np.ceil(quantile * n - 1e-9)  # in float: the same value, without two int conversions
    g = RS_WIN_GT
    if cur == LAT_NORMAL:
        if RS[g + 3] > k:
            return LAT_UNSAFE, C_LAT_ABOVE, 3
        if RS[g + 1] > k:
            return LAT_DEGRADED, C_LAT_ABOVE, 1
    elif cur == LAT_DEGRADED:
        if RS[g + 3] > k:
            return LAT_UNSAFE, C_LAT_ABOVE, 3
        if RS[g] <= k:
            return LAT_NORMAL, C_LAT_BELOW, 0
    else:
        if RS[g] <= k:
            return LAT_NORMAL, C_LAT_BELOW, 0
        if RS[g + 2] <= k:
            return LAT_DEGRADED, C_LAT_BELOW, 2
    return cur, 0, 0


@njit(cache=True)
def _vol_target(cur, s, RC):
    if cur == VOL_LOW:
        if s > RC[RC_VOL_HIGH_ENTER]:
            return VOL_HIGH, C_VOL_ABOVE
        if s > RC[RC_VOL_LOW_EXIT]:
            return VOL_NORMAL, C_VOL_ABOVE
    elif cur == VOL_NORMAL:
        if s > RC[RC_VOL_HIGH_ENTER]:
            return VOL_HIGH, C_VOL_ABOVE
        if s < RC[RC_VOL_LOW_ENTER]:
            return VOL_LOW, C_VOL_BELOW
    else:
        if s < RC[RC_VOL_LOW_ENTER]:
            return VOL_LOW, C_VOL_BELOW
        if s < RC[RC_VOL_HIGH_EXIT]:
            return VOL_NORMAL, C_VOL_BELOW
    return cur, 0


@njit(cache=True)
def regimes_update(RS, RC, t_ns, sigma_bp, market_status, log, n_log):
    """Evaluate the three machines at ``t_ns``; append one log row per transition; return ``n_log``.

    ``sigma_bp``: recent realised vol in bp per sqrt(second) (NaN = unknown). ``market_status``:
    the exchange's status code (``MKT_*``; anything else counts as maintenance).
    """
    t = float(t_ns)
    # ---- market status: restrictive at once, back to online only after dwell
    st = np.int64(market_status)
    if st < MKT_ONLINE or st > MKT_MAINTENANCE:
        st = MKT_MAINTENANCE
    if st != np.int64(RS[RS_RAW_MARKET]):
        RS[RS_RAW_MARKET] = st
        RS[RS_ONLINE_SINCE] = t if st == MKT_ONLINE else np.nan
    cur = np.int64(RS[RS_MARKET])
    if st != MKT_ONLINE and st != cur:
        n_log = log_row(log, n_log, t_ns, K_MARKET, cur, st, C_MARKET_STATUS, float(st))
        RS[RS_MARKET] = st
        RS[RS_MARKET_SINCE] = t
    elif st == MKT_ONLINE and cur != MKT_ONLINE:
        online = t - RS[RS_ONLINE_SINCE]
        if online >= RC[RC_MKT_DWELL_NS]:
            n_log = log_row(log, n_log, t_ns, K_MARKET, cur, MKT_ONLINE, C_MARKET_ONLINE, online * 1e-6)
            RS[RS_MARKET] = MKT_ONLINE
            RS[RS_MARKET_SINCE] = t
    # ---- latency: window quantile vs thresholds, after the dwell
    _advance(RS, RC, t_ns)
    n = RS[RS_WIN_N]
    cur = np.int64(RS[RS_LAT])
    if n > 0.5 and t - RS[RS_LAT_SINCE] >= RC[RC_LAT_DWELL_NS]:
        nxt, cause, j = _latency_target(cur, RS, RC[RC_LAT_QUANTILE])
        if nxt != cur:
            n_log = log_row(log, n_log, t_ns, K_LATENCY, cur, nxt, cause, RS[RS_WIN_GT + j] / n)
            RS[RS_LAT] = nxt
            RS[RS_LAT_SINCE] = t
    # ---- volatility bands, after the dwell
    cur = np.int64(RS[RS_VOL])
    if math.isfinite(sigma_bp) and sigma_bp > 0.0 and t - RS[RS_VOL_SINCE] >= RC[RC_VOL_DWELL_NS]:
        nxt, cause = _vol_target(cur, sigma_bp, RC)
        if nxt != cur:
            n_log = log_row(log, n_log, t_ns, K_VOLATILITY, cur, nxt, cause, sigma_bp)
            RS[RS_VOL] = nxt
            RS[RS_VOL_SINCE] = t
    _set_mults(RS, RC)
    return n_log


# ----------------------------------------------------------------------------- reading logs
# (machine and state names: mm_core.strategy.view.KIND_NAMES / STATE_NAMES)

CAUSE_NAMES = {
    C_LAT_ABOVE: "latency_quantile_above",
    C_LAT_BELOW: "latency_quantile_below",
    C_VOL_ABOVE: "vol_above",
    C_VOL_BELOW: "vol_below",
    C_MARKET_STATUS: "exchange_status",
    C_MARKET_ONLINE: "exchange_online_dwell",
}

