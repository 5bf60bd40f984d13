"""One decision: regimes update -> risk update -> strategy decides -> risk clamps -> requote rules.

:func:`compile_step` returns this step specialised for one strategy: the strategy's ``decide`` is
bound as a compile-time global (inlined), so the step costs no dispatch and adding a strategy
never edits this file, the engine or a runner. The backtest loop calls the step from compiled code
(``compile_step(spec, for_loop=True)``: inlined, no Python wrapper); the paper/live runner calls
the Python-callable form with the same arrays (:class:`DecisionPipeline` holds them). Compiled
code is cached on disk under a name that carries the strategy's ``NAME`` and the digest of its
source, so an edited or test-defined strategy never reuses stale machine code.

Arrays of one pipeline (all float64 unless noted; index names in :mod:`~mm_core.strategy.view`,
:mod:`~mm_core.strategy.requote` and the regimes/risk modules):

``V`` view (the caller fills the market part: V_FAIR, V_BID, V_ASK, V_BID_QTY, V_ASK_QTY,
V_POSITION, V_DATA_AGE_MS, V_DATA_VALID, V_MARKET, V_EQUITY, V_TICK, V_LOT, V_MIN_QTY, V_MIN_COST;
the step fills the rest), ``ORD`` [rows, N_O] the caller's orders and ``n_ord``, ``P`` strategy
params, ``ST`` strategy state, ``OUT`` [N_Q], ``RS``/``RC`` regime state/config, ``KS``/``KC`` risk
state/config, ``QC`` requote config, ``PF``/``PI`` (int64) pipeline state and counters, ``LOG``
(int64 [rows, N_L]) the transition log (``PI[PI_N_LOG]`` rows used; the caller keeps >= LOG_ROOM
rows free), ``ACT`` [rows, N_A] the actions this decision (the return value is their number).

Per book message the caller also calls ``on_book`` (a feed-age sample for the latency regime);
per fault ``on_fault`` (disconnect, checksum failure, reject, manual kill ...).
"""

from __future__ import annotations

import math
import types
from typing import Optional

import numpy as np
from numba import njit

from mm_core.backtest import jit_cache
from mm_core.backtest.jit_compile import loop_code

jit_cache.install()  # the step's cache notices edits in regimes/risk/requote/strategies (see jit_cache)

from mm_core.strategy import requote as _rq  # noqa: E402
from mm_core.strategy.base import StrategySpec
from mm_core.strategy.requote import (A_KIND, N_A, N_PF, N_PI, PF_M_AQ, PF_M_AQ_IN, PF_M_APX, PF_M_ASK, PF_M_AT,
                                      PF_M_BA, PF_M_BB, PF_M_BID, PF_M_BPX, PF_M_BQ, PF_M_BQ_IN, PF_M_BT, PF_M_LOT,
                                      PF_M_TICK, PF_MEMO_KEYS, PF_SIGMA, PF_VAR, PF_VOL_MID, PI_DECISIONS,
                                      PI_N_LOG, PI_REASONS, PI_RULE_SKIPS, PI_STALE, PI_VOL_N, PI_VOL_NEXT,
                                      PI_VOL_SEC, QC_VOL_ALPHA, RequoteConfig)
from mm_core.strategy.view import (MKT_CANCEL_ONLY, MKT_MAINTENANCE, N_L, N_O, N_Q, N_V, O_AGE_MS, O_ID, O_LEAVES,
                                   O_SIDE, O_STATE, OS_CANCEL_PENDING, Q_ASK_PX, Q_ASK_QTY, Q_BID_PX, Q_BID_QTY,
                                   Q_REASON, R_NO_BOOK, TRADING_HALTED, TRADING_REDUCING, V_ASK, V_BID, V_DATA_VALID,
                                   V_EQUITY, V_FAIR, V_LAT_REGIME, V_LOT, V_MARKET, V_MAX_POSITION, V_MIN_COST,
                                   V_MIN_QTY, V_OTHER_ASK_QTY, V_OTHER_BID_QTY, V_POSITION, V_RATE_COUNTER,
                                   V_RATE_LIMIT, V_SIGMA, V_SIZE_MULT, V_TICK, V_TRADING, V_VOL_REGIME,
                                   V_WIDTH_MULT, V_DATA_AGE_MS)
from mm_core.backtest.rate_limit import decayed

from mm_core.strategy import regimes as _reg
from mm_core.strategy import risk as _risk

RegimeConfig = _reg.RegimeConfig
RiskConfig = _risk.RiskConfig
LOG_ROOM = 32  # rows one decision (or one fault) may append at most
VOL_MIN_SAMPLES = 30  # 1-second returns before the realised vol is reported (NaN before)

_S = 1_000_000_000


def _inline(fn, loop: bool = True):
    """The same function re-jitted with ``forceinline`` (LLVM inlines it into its callers). A copy
    with its own qualified name, so its on-disk cache entry never collides with the original's.
    ``loop``: compiled as loop code (:func:`~mm_core.backtest.jit_compile.loop_code`); not for a
    strategy's ``decide``, which may allocate."""
    src = getattr(fn, "py_func", fn)
    py = types.FunctionType(src.__code__, src.__globals__, src.__name__, src.__defaults__, src.__closure__)
    py.__qualname__ = src.__qualname__ + "_inl"
    if loop:
        loop_code(py)
    return njit(cache=True, nogil=True, error_model="numpy", forceinline=True, no_cpython_wrapper=True,
                no_cfunc_wrapper=True)(py)


_regimes_update = _inline(_reg.regimes_update)
_regimes_on_age = _inline(_reg.regimes_on_age)
_risk_update = _inline(_risk.risk_update)
_risk_clamp = _inline(_risk.risk_clamp)
_risk_on_fault = _inline(_risk.risk_on_fault)
_plan = _inline(_rq.plan)
RS_LAT, RS_VOL, RS_MARKET = _reg.RS_LAT, _reg.RS_VOL, _reg.RS_MARKET
RS_WIDTH_MULT, RS_SIZE_MULT = _reg.RS_WIDTH_MULT, _reg.RS_SIZE_MULT
KS_TRADING, KS_STALE = _risk.KS_TRADING, _risk.KS_STALE
KC_MAX_INVENTORY, KC_MAX_STALENESS_MS = _risk.KC_MAX_INVENTORY, _risk.KC_MAX_STALENESS_MS


def _decide(t, P, ST, V, ORD, n_ord, OUT):  # replaced per strategy by compile_step
    raise NotImplementedError


def _step(t, V, ORD, n_ord, P, ST, OUT, RS, RC, KS, KC, QC, PF, PI, LOG, ACT):
    """One decision at local time ``t`` (ns); returns the number of actions in ``ACT``."""
    PI[PI_DECISIONS] += 1
    n_log = PI[PI_N_LOG]
    bid = V[V_BID]
    ask = V[V_ASK]
    two_sided = bid > 0.0 and ask > bid
    if not two_sided:
        V[V_DATA_VALID] = 0.0
    # realised vol: EWMA of squared relative mid returns over whole seconds, sampled at the first
    # decision of each second (cheap, and identical wherever the step runs); bias-corrected for its
    # start, and unknown (NaN) until VOL_MIN_SAMPLES returns are in
    if t >= PI[PI_VOL_NEXT] and two_sided and V[V_DATA_VALID] != 0.0:
        sec = t // _S
        mid = 0.5 * (bid + ask)
        if PF[PF_VOL_MID] > 0.0:
            r = mid / PF[PF_VOL_MID] - 1.0
            a = QC[QC_VOL_ALPHA]
            PF[PF_VAR] += a * (r * r / (sec - PI[PI_VOL_SEC]) - PF[PF_VAR])
            PI[PI_VOL_N] += 1
            if PI[PI_VOL_N] >= VOL_MIN_SAMPLES:
                PF[PF_SIGMA] = mid * math.sqrt(PF[PF_VAR] / (1.0 - (1.0 - a) ** PI[PI_VOL_N]))
        PF[PF_VOL_MID] = mid
        PI[PI_VOL_SEC] = sec
        PI[PI_VOL_NEXT] = (sec + 1) * _S
    V[V_SIGMA] = PF[PF_SIGMA]
    # 1. regimes (volatility bands in bp of the fair mid per sqrt(second))
    sigma_bp = 1e4 * PF[PF_SIGMA] / V[V_FAIR] if V[V_FAIR] > 0.0 else math.nan  # NaN: no estimate
    n_log = _regimes_update(RS, RC, t, sigma_bp, V[V_MARKET], LOG, n_log)
    V[V_LAT_REGIME] = RS[RS_LAT]
    V[V_VOL_REGIME] = RS[RS_VOL]
    V[V_MARKET] = RS[RS_MARKET]
    V[V_WIDTH_MULT] = RS[RS_WIDTH_MULT]
    V[V_SIZE_MULT] = RS[RS_SIZE_MULT]
    # 2. risk
    rc = decayed(PF[_rq.PF_RC], PI[_rq.PI_RC_T], t, QC[_rq.QC_RATE_DECAY])
    V[V_RATE_COUNTER] = rc
    V[V_RATE_LIMIT] = QC[_rq.QC_RATE_LIMIT]
    n_log = _risk_update(KS, KC, t, V[V_POSITION], V[V_EQUITY], V[V_FAIR], V[V_DATA_AGE_MS], V[V_DATA_VALID],
                         rc, QC[_rq.QC_RATE_LIMIT], LOG, n_log)
    V[V_TRADING] = KS[KS_TRADING]
    V[V_MAX_POSITION] = KC[KC_MAX_INVENTORY]
    # each side's working order (the youngest not being cancelled) and the size resting besides it
    # (being cancelled, leftovers): risk counts it, it may still fill
    wb = -1
    wa = -1
    other_b = 0.0
    other_a = 0.0
    for r in range(n_ord):
        if ORD[r, O_SIDE] > 0:
            other_b += ORD[r, O_LEAVES]
            if ORD[r, O_STATE] != OS_CANCEL_PENDING and (
                    wb < 0 or ORD[r, O_AGE_MS] < ORD[wb, O_AGE_MS] or (
                    ORD[r, O_AGE_MS] == ORD[wb, O_AGE_MS] and ORD[r, O_ID] > ORD[wb, O_ID])):
                wb = r
        else:
            other_a += ORD[r, O_LEAVES]
            if ORD[r, O_STATE] != OS_CANCEL_PENDING and (
                    wa < 0 or ORD[r, O_AGE_MS] < ORD[wa, O_AGE_MS] or (
                    ORD[r, O_AGE_MS] == ORD[wa, O_AGE_MS] and ORD[r, O_ID] > ORD[wa, O_ID])):
                wa = r
    V[V_OTHER_BID_QTY] = other_b - (ORD[wb, O_LEAVES] if wb >= 0 else 0.0)
    V[V_OTHER_ASK_QTY] = other_a - (ORD[wa, O_LEAVES] if wa >= 0 else 0.0)
    # 3. the strategy
    OUT[Q_BID_PX] = 0.0
    OUT[Q_BID_QTY] = 0.0
    OUT[Q_ASK_PX] = 0.0
    OUT[Q_ASK_QTY] = 0.0
    OUT[Q_REASON] = 0.0
    if two_sided:
        _decide(t, P, ST, V, ORD, n_ord, OUT)
    else:
        OUT[Q_REASON] = R_NO_BOOK
    reason = int(OUT[Q_REASON])
    PI[PI_REASONS + (reason if 0 <= reason < 15 else 15)] += 1
    want_bid = OUT[Q_BID_QTY]
    want_ask = OUT[Q_ASK_QTY]
    # 4. risk clamp (also closes both sides when the market status accepts no new orders)
    _risk_clamp(KS, KC, V, OUT)
    if KS[KS_STALE] != 0.0:
        PI[PI_STALE] += 1
    # 5. ticks (outwards), post-only against the visible book, lot and venue minimums
    tick = V[V_TICK]
    lot = V[V_LOT]
    bt = 0.0
    at = 0.0
    bq = 0.0
    aq = 0.0
    if two_sided:
        # the divisions below are memoised (PF_M_*): recomputed only when an input changed
        if tick != PF[PF_M_TICK]:
            PF[PF_M_TICK] = tick
            PF[PF_M_BID] = math.nan
            PF[PF_M_ASK] = math.nan
            PF[PF_M_BPX] = math.nan
            PF[PF_M_APX] = math.nan
        if bid != PF[PF_M_BID]:
            PF[PF_M_BB] = float(round(bid / tick))
            PF[PF_M_BID] = bid
        if ask != PF[PF_M_ASK]:
            PF[PF_M_BA] = float(round(ask / tick))
            PF[PF_M_ASK] = ask
        if OUT[Q_BID_PX] != PF[PF_M_BPX]:
            PF[PF_M_BT] = float(math.floor(OUT[Q_BID_PX] / tick + 1e-9))
            PF[PF_M_BPX] = OUT[Q_BID_PX]
        if OUT[Q_ASK_PX] != PF[PF_M_APX]:
            PF[PF_M_AT] = float(math.ceil(OUT[Q_ASK_PX] / tick - 1e-9))
            PF[PF_M_APX] = OUT[Q_ASK_PX]
        bb = PF[PF_M_BB]
        ba = PF[PF_M_BA]
        bt = PF[PF_M_BT]
        at = PF[PF_M_AT]
        if bt >= ba:
            bt = ba - 1.0
        if at <= bb:
            at = bb + 1.0
        if lot != PF[PF_M_LOT]:
            PF[PF_M_LOT] = lot
            PF[PF_M_BQ_IN] = math.nan
            PF[PF_M_AQ_IN] = math.nan
        if OUT[Q_BID_QTY] != PF[PF_M_BQ_IN]:
            PF[PF_M_BQ] = np.floor(OUT[Q_BID_QTY] / lot + 1e-9) * lot
            PF[PF_M_BQ_IN] = OUT[Q_BID_QTY]
        if OUT[Q_ASK_QTY] != PF[PF_M_AQ_IN]:
            PF[PF_M_AQ] = np.floor(OUT[Q_ASK_QTY] / lot + 1e-9) * lot
            PF[PF_M_AQ_IN] = OUT[Q_ASK_QTY]
        bq = PF[PF_M_BQ]
        aq = PF[PF_M_AQ]
        if bq > 0.0 and (bq < V[V_MIN_QTY] or bq * bt * tick < V[V_MIN_COST] or bt <= 0.0):
            PI[PI_RULE_SKIPS] += 1
            bq = 0.0
        if aq > 0.0 and (aq < V[V_MIN_QTY] or aq * at * tick < V[V_MIN_COST]):
            PI[PI_RULE_SKIPS] += 1
            aq = 0.0
    # a pull (no minimum resting time, no rate guard): the risk step removed a side the strategy
    # wanted, or the data, the trading state or the market status forbid quoting at all (whatever
    # the strategy itself decided for the same reason)
    pull_bid = want_bid > 0.0 and OUT[Q_BID_QTY] <= 0.0
    pull_ask = want_ask > 0.0 and OUT[Q_ASK_QTY] <= 0.0
    mkt = V[V_MARKET]
    if (not two_sided or KS[KS_STALE] != 0.0 or KS[KS_TRADING] == TRADING_HALTED or mkt == MKT_CANCEL_ONLY
            or mkt == MKT_MAINTENANCE):
        pull_bid = True
        pull_ask = True
    elif KS[KS_TRADING] == TRADING_REDUCING:
        if V[V_POSITION] > 0.0:
            pull_bid = True
        elif V[V_POSITION] < 0.0:
            pull_ask = True
    cut_bid = OUT[Q_BID_QTY] < want_bid
    cut_ask = OUT[Q_ASK_QTY] < want_ask
    # 6. requote
    n_act = _plan(t, ORD, n_ord, wb, wa, bt, bq, at, aq, pull_bid, pull_ask, cut_bid, cut_ask, V[V_FAIR], tick,
                  QC, PF, PI, ACT)
    for a in range(n_act):  # every cancel counts towards the cancel-storm kill switch
        if ACT[a, A_KIND] == _rq.ACT_CANCEL:
            n_log = _risk_on_fault(KS, KC, t, _risk.F_CANCEL, 0.0, LOG, n_log)
    PI[PI_N_LOG] = n_log
    return n_act


def _on_book(RS, RC, t, age_ms):
    """A feed-age sample (one per book message)."""
    _regimes_on_age(RS, RC, t, age_ms)


def _on_fault(KS, KC, PI, LOG, t, kind, value):
    """A fault the risk controls count (disconnect, checksum failure, reject, manual kill ...)."""
    PI[PI_N_LOG] = _risk_on_fault(KS, KC, t, kind, value, LOG, PI[PI_N_LOG])


on_book = njit(cache=True, nogil=True, error_model="numpy")(_on_book)
on_fault = njit(cache=True, nogil=True, error_model="numpy")(_on_fault)
on_book_inline = _inline(_on_book)
on_fault_inline = _inline(_on_fault)

_COMPILED: dict[tuple[str, bool], object] = {}


def compile_step(spec: StrategySpec, *, for_loop: bool = False):
    """The decision step specialised for ``spec`` (see the module docstring).

    ``for_loop=False``: a dispatcher Python calls (the runner path); ``True``: the form the backtest
    loop inlines. Both compile on first use and are cached on disk per strategy name + digest."""
    key = (spec.key, for_loop)
    fn = _COMPILED.get(key)
    if fn is not None:
        return fn
    decide = _inline(spec.decide, loop=False)
    g = dict(globals(), _decide=decide)
    py = types.FunctionType(_step.__code__, g, "step")
    py.__qualname__ = f"step_{spec.key}" + ("_loop" if for_loop else "")
    py.__doc__ = _step.__doc__
    loop_code(py)
    if for_loop:
        fn = njit(cache=True, nogil=True, error_model="numpy", forceinline=True, no_cpython_wrapper=True,
                  no_cfunc_wrapper=True)(py)
    else:
        fn = njit(cache=True, nogil=True, error_model="numpy")(py)
    _COMPILED[key] = fn
    return fn


class DecisionPipeline:
    """Every array of one pipeline, and Python methods over them: the paper/live runner's API.

    ``decide(...)`` fills the view, runs the compiled step and returns the number of actions in
    ``ACT`` (rows ``A_*`` of :mod:`~mm_core.strategy.requote`); the runner keeps ``ORD[:n_orders]``
    (columns ``O_*``) in step with its order manager. ``drain_log()`` returns and clears the
    transition log."""

    def __init__(self, spec: StrategySpec, *, regimes: Optional[object] = None, risk: Optional[object] = None,
                 requote: Optional[RequoteConfig] = None, tick: float, lot: float, min_qty: float = 0.0,
                 min_cost: float = 0.0, rate_limit: float = 60.0, rate_decay: float = 1.0, rate_guard: float = 0.9,
                 max_open_per_side: int = 4, max_orders: int = 256, log_capacity: int = 4096):
        self.spec = spec
        self.regimes = regimes if regimes is not None else RegimeConfig()
        self.risk = risk if risk is not None else RiskConfig()
        self.requote = requote if requote is not None else RequoteConfig()
        self.step = compile_step(spec)
        self.V = np.zeros(N_V, np.float64)
        self.V[V_TICK] = tick
        self.V[V_LOT] = lot
        self.V[V_MIN_QTY] = min_qty
        self.V[V_MIN_COST] = min_cost
        self.ORD = np.zeros((max_orders, N_O), np.float64)
        self.n_orders = 0
        self.P = np.ascontiguousarray(spec.vector, np.float64)
        self.ST = spec.new_state()
        self.OUT = np.zeros(N_Q, np.float64)
        self.RC = np.ascontiguousarray(self.regimes.vector(), np.float64)
        self.RS = _reg.new_state(self.RC)
        self.KC = np.ascontiguousarray(self.risk.vector(), np.float64)
        self.KS = _risk.new_state(self.KC)
        if not rate_guard > 0 or max_open_per_side < 1:
            raise ValueError("rate_guard must be > 0 and max_open_per_side >= 1")
        self.QC = self.requote.vector(rate_limit=rate_limit, rate_decay=rate_decay, rate_guard=rate_guard,
                                      max_open_per_side=max_open_per_side, max_orders=max_orders)
        self.PF = np.zeros(N_PF, np.float64)
        self.PI = np.zeros(N_PI, np.int64)
        self.PI[PI_VOL_SEC] = -1
        self.PF[PF_SIGMA] = math.nan
        self.PF[list(PF_MEMO_KEYS)] = math.nan
        self.LOG = np.zeros((log_capacity, N_L), np.int64)
        self.ACT = np.zeros((max_orders + 4, N_A), np.float64)

    def on_book(self, t_ns: int, age_ms: float) -> None:
        on_book(self.RS, self.RC, np.int64(t_ns), float(age_ms))

    def on_fault(self, t_ns: int, kind: int, value: float = 0.0) -> None:
        self._log_room()
        on_fault(self.KS, self.KC, self.PI, self.LOG, np.int64(t_ns), np.int64(kind), float(value))

    def _log_room(self) -> None:
        if self.LOG.shape[0] - int(self.PI[PI_N_LOG]) < LOG_ROOM:
            self.LOG = np.concatenate([self.LOG, np.zeros_like(self.LOG)])

    def decide(self, t_ns: int, *, fair: float, bid: float, ask: float, bid_qty: float, ask_qty: float,
               position: float, equity: float, data_age_ms: float, data_valid: bool, market: int = 0) -> int:
        V = self.V
        V[V_FAIR] = fair
        V[V_BID] = bid
        V[V_ASK] = ask
        V[3] = bid_qty
        V[4] = ask_qty
        V[V_POSITION] = position
        V[V_EQUITY] = equity
        V[V_DATA_AGE_MS] = data_age_ms
        V[V_DATA_VALID] = 1.0 if data_valid else 0.0
        V[V_MARKET] = market
        self._log_room()
        return int(self.step(np.int64(t_ns), V, self.ORD, np.int64(self.n_orders), self.P, self.ST, self.OUT,
                             self.RS, self.RC, self.KS, self.KC, self.QC, self.PF, self.PI, self.LOG, self.ACT))

    def actions(self, n: int) -> np.ndarray:
        return self.ACT[:n].copy()

    def drain_log(self) -> np.ndarray:
        n = int(self.PI[PI_N_LOG])
        out = self.LOG[:n].copy()
        self.PI[PI_N_LOG] = 0
        return out
