"""The jitted event loop: the exchange side (:mod:`~mm_core.backtest.matching`) and the strategy side
(the decision pipeline of :mod:`mm_core.strategy.pipeline` on the delayed view), joined by
latency-delayed order and response queues. The loop never branches on a strategy: the strategy's
decision step is bound into it as a compile-time global (:func:`run_core_for`).

Why one compiled loop: per-event work is a handful of array reads/writes, so interpretation
overhead would dominate -- a plain Python loop does ~0.3 M rows/s here, this loop tens of millions.
The loop never allocates: :class:`LoopState` allocates every table in Python, and when the order,
fill or transition table is nearly full the loop saves its position and returns ``NEED_ROOM``;
:func:`run` grows the table and calls it again. The exchange-side functions and the decision step
are compiled with ``forceinline`` (LLVM inlines them into the loop: no call passing ~20 array
structs per row or decision); numba-IR inlining (``inline="always"``) was measured: 3x the cold
compile time (49 s vs 16 s for the loop) for no speed-up. One copy of the source either way: the
simulator's private side and paper fills call the same functions through Python wrappers.

Cost, measured (``bench/bench_strategy.py``, a simulated day, 1.94 M rows, 864 k decisions at 100 ms):
the full engine's loop takes ~1.8x the CPU time of the baseline-only loop it replaced (159 vs 89 ms;
4.8x hftbacktest's speed still). Where: ~64 vs ~25 ns per decision with no order action (regimes
~9 ns, risk update ~4, clamp ~12, requote ~16, the strategy ~6, view/orders ~15), and one
feed-age sample per book message (~6 ms a day). Cold compile: ~15 s (was ~5 s): more code.

Time: every action happens at one global timestamp, processed in order. At equal times market rows
go first (the exchange has the row before anything it causes), then responses (the strategy learns
before it decides), then order requests, then decisions. A fill inside a run of market rows queues
a report; if that report is due before the next request/decision, it is processed first (the rows
after it wait), so the strategy never decides on a position older than the response latency.

Decisions happen on the strategy's timer (every ``requote_ns`` of local time), at every feed-status
event (disconnect, reconnect, checksum failure, resync, market status change, manual kill), and at
the **staleness deadline**: the instant the data would become older than the risk limit if nothing
new arrived -- computed from the feed's confirmation times (every message, and the heartbeats a
live, quiet feed sends), so quotes are pulled when the data goes stale, not at the next tick.
At each decision the strategy sees the last row whose ``local_ts`` has passed (fair mid, best
prices and sizes), its position and orders as known from responses, the data's age and validity;
each book message that became visible since the last decision is one feed-age sample for the
latency regime.

Against hftbacktest 2.4.4 (PartialFillExchange, risk-averse queue, constant latency, the same rows
and quoting loop, ``bench/bench_backtest.py``): on a simulated day (1.94 M rows, 183,567 orders)
both engines produce the same orders and the same 12,167 fills, order by order, once the
hftbacktest loop takes its position from fill reports (its local state drops partial fills,
hftbacktest#299/#316). Modelling differences that did not occur there: same-price sharing (above),
Kraken's rate counter (hftbacktest has none), amends, and hftbacktest's rule that an order cannot
be cancelled before its ack.
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit
from numba.core import cgutils
from numba.core import types as nbtypes
from numba.extending import intrinsic

from mm_core.backtest import jit_cache
from mm_core.backtest.jit_compile import loop_code

jit_cache.install()  # before the jitted functions below are defined (see jit_cache)

from mm_core.backtest import matching as mx  # noqa: E402
from mm_core.backtest.event_arrays import CLEAR, DEPTH, NO_ASK, NO_BID, TRADE  # noqa: E402
from mm_core.backtest.matching import (FI_LOCAL, FI_OID, FILL_ROOM, N_FI, N_OF_X, N_OI_X, N_XF, OF_FRONT, OF_QTY,
                                       OF_LEAVES, OI_RESULT, OI_SIDE, OI_TICK, OI_XSTATE, OI_N_AMENDS, RES_OPEN,
                                       RSP_ACCEPTED, RSP_AMEND_REJECTED, RSP_AMEND_TOO_LATE, RSP_AMENDED,
                                       RSP_CANCEL_REJECTED, RSP_FILL, RSP_REJECTED, X_MARKET, X_N_FILLS,
                                       XS_IN_FLIGHT)
from mm_core.strategy import pipeline as pl  # noqa: E402
from mm_core.strategy.requote import A_ID, A_KIND, A_QTY, A_SIDE, A_TICK, ACT_CANCEL, ACT_NEW, PI_N_LOG  # noqa: E402
from mm_core.strategy.view import (O_AGE_MS, O_FILLED, O_ID, O_LEAVES, O_PRICE, O_QUEUE_AHEAD, O_SIDE, O_STATE,
                                   O_TICK, OS_AMEND_PENDING, OS_CANCEL_PENDING, OS_LIVE, OS_PENDING_NEW,
                                   V_ASK, V_ASK_QTY, V_BID, V_BID_QTY, V_DATA_AGE_MS, V_DATA_VALID, V_EQUITY,
                                   V_FAIR, V_MARKET, V_POSITION, V_TICK)

# helpers are only called from jitted code: no CPython/cfunc wrappers to generate, numpy error model
_njit_helper = njit(cache=True, nogil=True, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)


def _helper(fn):
    return _njit_helper(loop_code(fn))


def _inline_helper(fn):
    return njit(cache=True, nogil=True, error_model="numpy", forceinline=True, no_cpython_wrapper=True,
                no_cfunc_wrapper=True)(loop_code(fn))

BIG = np.int64(1) << np.int64(62)

# order table: strategy-side columns after the exchange's (matching.OI_* / OF_*)
OI_SUBMIT_LOCAL = N_OI_X + 0  # local time the strategy sent it
OI_LSTATE = N_OI_X + 1  # strategy view: LS_*
OI_CANCEL_SENT = N_OI_X + 2  # local time of the (last) cancel request, -1 = none
OI_ACK_LOCAL = N_OI_X + 3  # local time the strategy learned the outcome of the new-order request
OI_LTICK = N_OI_X + 4  # price as the strategy knows it (changes when an amend is confirmed)
OI_AMEND_TICK = N_OI_X + 5  # pending amend: target price
OI_AMEND_SENT = N_OI_X + 6  # local time of the last amend request
N_OI = N_OI_X + 7
OF_LLEAVES = N_OF_X + 0  # strategy view of the remaining size
OF_LQTY = N_OF_X + 1  # strategy view of the order quantity
OF_AMEND_QTY = N_OF_X + 2  # pending amend: target total quantity
N_OF = N_OF_X + 3

LS_PENDING_NEW = 0
LS_LIVE = 1
LS_CANCEL_PENDING = 2
LS_DONE = 3
LS_AMEND_PENDING = 4

# loop counters (exchange-side counts live in X, strategy-side in the pipeline's PI)
C_ROWS = 0
C_TIMER = 1  # timer decisions
C_NEW = 2
C_CANCEL = 3
C_AMEND = 4
C_FILLS = 5
C_NO_BOOK_SKIPS = 6
C_STATUS_DECISIONS = 7
C_DEADLINE_DECISIONS = 8
C_AMENDED = 9  # confirmed to the strategy
C_AMEND_REJECTED = 10
C_AMEND_TOO_LATE = 11
C_DECISIONS = 12
C_LAT_SAMPLES = 13
N_C = 14

# queue messages
REQ_NEW = 1
REQ_CANCEL = 2
REQ_AMEND = 3

RING = 1 << 16
_RING_MASK = RING - 1  # queue positions are never negative: & is % here, without the signed fix-up

# integer loop state
S_RS_HEAD = 0
S_RS_TAIL = 1
S_RS_LAST = 2  # arrival time of the last response (in-order delivery)
S_N_RSP = 3
S_P_RESP = 4  # pointer into a time-indexed latency table
S_RQ_HEAD = 5
S_RQ_TAIL = 6
S_RQ_LAST = 7
S_N_REQ = 8
S_P_ENTRY = 9
S_N_LOPEN = 10
S_N_ORDERS = 11
S_OVERFLOW = 12
S_I = 13  # next market row (the loop returns to Python to grow its tables and resumes here)
S_J = 14  # last row the strategy has seen
S_NEXT_TIMER = 15
S_KC = 16  # last feed confirmation the strategy has seen
S_P_ST = 17  # next feed-status event
S_DEADLINE = 18  # next staleness deadline (BIG = none)
S_VALID = 19  # data valid (1/0) per the feed-status events
S_MARKET = 20  # market status per the feed-status events (strategy's view)
S_LAT_N = 21  # decision-latency samples taken
S_PB = 22  # next book message (feed-age sample)
S_UNUSED = 23
S_N_TRACE = 24  # rows written to the call trace (when one is given)
N_S = 25
# float loop state
F_LPOS = 0  # position as the strategy knows it (from fill reports)
F_LCASH = 1  # cash as the strategy knows it (quote currency)
F_LFEES = 2  # fees as the strategy estimates them (maker rate x value)
N_F = 3

# feed-status events (see mm_core.backtest.feed_health)
ST_VALID = 1  # a = 1 valid / 0 invalid
ST_MARKET = 2  # a = market status code
ST_FAULT = 3  # a = fault kind for the risk controls, v = its value

LAT_EVERY = 16  # decision latency: one sample per this many decisions (two cycle-counter reads)

# call trace (optional, for the test that the Python-callable pipeline decides as the loop does):
# one row per pipeline call in call order -- TR_KIND (TR_FAULT / TR_DECISION), TR_T, then for a fault
# its kind (TR_A) and value (float row [0]); for a decision n_ord (TR_A), n_act (TR_B) and the float
# row: the view as given to the step (N_V), then TRACE_ROWS order rows (N_O each), then TRACE_ROWS
# action rows (N_A each). Book-message age samples are not traced: the feed timeline has them.
TR_KIND = 0
TR_T = 1
TR_A = 2
TR_B = 3
TR_FAULT = 1
TR_DECISION = 2
TRACE_ROWS = 8

DONE = 0
NEED_ROOM = 1
ORDER_ROOM = 8


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (``llvm.readcyclecounter``; rdtsc on x86): ~7 ns, no syscall."""
    def codegen(context, builder, signature, args):
        from llvmlite import ir

        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])
    return nbtypes.int64(), codegen


@njit(cache=True)
def read_cycles():
    """:func:`cycles` for Python (calibrating cycles to seconds around a run)."""
    return cycles()


@_inline_helper
def _respond(S, rs_i, rs_q, now, kind, oid, qty, lat_ts, lat_resp):
    """Queue a response produced at exchange time ``now``; returns its local arrival time."""
    # latency in force: step function of time (pointer advances monotonically) or the k-th sample
    k = S[S_N_RSP]
    S[S_N_RSP] = k + 1
    if lat_ts.shape[0] == 0:
        lat = lat_resp[0] if lat_resp.shape[0] == 1 else lat_resp[k % lat_resp.shape[0]]
    else:
        p = S[S_P_RESP]
        while p + 1 < lat_ts.shape[0] and lat_ts[p + 1] <= now:
            p += 1
        S[S_P_RESP] = p
        lat = lat_resp[p]
    arr = max(S[S_RS_LAST], now + lat)
    S[S_RS_LAST] = arr
    if S[S_RS_TAIL] - S[S_RS_HEAD] >= RING:
        S[S_OVERFLOW] = 1
        return arr
    slot = S[S_RS_TAIL] & _RING_MASK
    rs_i[0, slot] = arr
    rs_i[1, slot] = kind
    rs_i[2, slot] = oid
    rs_q[slot] = qty
    S[S_RS_TAIL] += 1
    return arr


@_inline_helper
def _request(S, rq, now, kind, oid, lat_ts, lat_entry):
    """Send a request at local time ``now``; it reaches the exchange after the entry latency."""
    k = S[S_N_REQ]  # latency in force, as in _respond
    S[S_N_REQ] = k + 1
    if lat_ts.shape[0] == 0:
        lat = lat_entry[0] if lat_entry.shape[0] == 1 else lat_entry[k % lat_entry.shape[0]]
    else:
        p = S[S_P_ENTRY]
        while p + 1 < lat_ts.shape[0] and lat_ts[p + 1] <= now:
            p += 1
        S[S_P_ENTRY] = p
        lat = lat_entry[p]
    arr = max(S[S_RQ_LAST], now + lat)
    S[S_RQ_LAST] = arr
    if S[S_RQ_TAIL] - S[S_RQ_HEAD] >= RING:
        S[S_OVERFLOW] = 1
        return
    slot = S[S_RQ_TAIL] & _RING_MASK
    rq[0, slot] = arr
    rq[1, slot] = kind
    rq[2, slot] = oid
    S[S_RQ_TAIL] += 1


def trace_width() -> int:
    from mm_core.strategy.requote import N_A
    from mm_core.strategy.view import N_O, N_V

    return N_V + TRACE_ROWS * (N_O + N_A)


class LoopState:
    """Every array the loop reads and writes besides the market rows and the pipeline's arrays."""

    def __init__(self, n_ticks: int, requote_ns: int, first_local_ts: int | None, trace: int = 0):
        self.S = np.zeros(N_S, np.int64)
        self.F = np.zeros(N_F, np.float64)
        S = self.S
        S[S_I] = 0
        S[S_J] = -1
        S[S_KC] = -1
        S[S_NEXT_TIMER] = BIG if first_local_ts is None else (first_local_ts // requote_ns + 1) * requote_ns
        S[S_DEADLINE] = BIG
        S[S_VALID] = 1
        self.X = np.zeros(mx.N_X, np.int64)
        self.X[mx.X_MAX_BUY] = -1
        self.X[mx.X_MIN_SELL] = BIG
        self.XF = np.zeros(N_XF, np.float64)
        self.bq = np.zeros(n_ticks, np.float64)
        self.aq = np.zeros(n_ticks, np.float64)
        self.oi = np.full((1024, N_OI), -1, np.int64)
        self.of = np.zeros((1024, N_OF), np.float64)
        self.fi = np.full((1024, N_FI), -1, np.int64)
        self.fq = np.zeros(1024, np.float64)
        self.counters = np.zeros(N_C, np.int64)
        self.xbuy = np.zeros(256, np.int64)
        self.xsell = np.zeros(256, np.int64)
        self.lopen = np.zeros(256, np.int64)
        self.rq = np.zeros((3, RING), np.int64)
        self.rs_i = np.zeros((3, RING), np.int64)
        self.rs_q = np.zeros(RING, np.float64)
        self.lat = np.zeros(1 << 16, np.int64)  # decision-latency samples (cycles), a ring
        self.tr_i = np.zeros((trace, 4), np.int64)
        self.tr_f = np.zeros((trace, trace_width() if trace else 0), np.float64)

    def grow(self, LOG: np.ndarray, n_log: int) -> np.ndarray:
        """Double whichever of the order and fill tables is nearly full; returns the (grown) log."""
        S = self.S
        if S[S_N_ORDERS] + ORDER_ROOM >= self.oi.shape[0]:
            n = self.oi.shape[0]
            self.oi = np.concatenate([self.oi, np.full((n, N_OI), -1, np.int64)])
            self.of = np.concatenate([self.of, np.zeros((n, N_OF), np.float64)])
        if self.fi.shape[0] - self.X[X_N_FILLS] < FILL_ROOM:
            n = self.fi.shape[0]
            self.fi = np.concatenate([self.fi, np.full((n, N_FI), -1, np.int64)])
            self.fq = np.concatenate([self.fq, np.zeros(n, np.float64)])
        if LOG.shape[0] - n_log < 4 * pl.LOG_ROOM:
            LOG = np.concatenate([LOG, np.zeros_like(LOG)])
        return LOG


def run(market_cols, n_ticks, lo, lat, exchange, strategy_arrays, feed, requote_ns, end_ts, share_trades,
        run_core, trace: int = 0):
    """Run the loop over all rows (growing its tables as needed); see the module docstring.

    ``market_cols``: (kind, side, tick, qty, exch_ts, local_ts, bb_tick, ba_tick, bb_qty, ba_qty, fair);
    ``lat``: (lat_ts, lat_entry, lat_resp); ``exchange``: (queue_kind, queue_n,
    rate_threshold, rate_decay, lot, maker_fee); ``strategy_arrays``: the pipeline's (V, ORD, P, ST,
    OUT, RS, RC, KS, KC, QC, PF, PI, LOG, ACT); ``feed``: (conf_local, conf_exch, st_ts, st_kind,
    st_a, st_v, bm_local, bm_age_ms). Returns the loop state and the (possibly grown) log."""
    kind = market_cols[0]
    st = LoopState(int(n_ticks), int(requote_ns), int(market_cols[5][0]) if kind.shape[0] > 0 else None, trace)
    V, ORD, P, ST, OUT, RS, RC, KS, KC, QC, PF, PI, LOG, ACT = strategy_arrays
    while True:
        status = run_core(*market_cols, lo, lo + n_ticks, *lat, *exchange, requote_ns, end_ts, share_trades,
                          *feed, V, ORD, P, ST, OUT, RS, RC, KS, KC, QC, PF, PI, LOG, ACT,
                          st.S, st.F, st.X, st.XF, st.bq, st.aq, st.oi, st.of, st.fi, st.fq, st.counters,
                          st.xbuy, st.xsell, st.lopen, st.rq, st.rs_i, st.rs_q, st.lat, st.tr_i, st.tr_f)
        if status == DONE:
            break
        LOG = st.grow(LOG, int(PI[PI_N_LOG]))
    return st, LOG


# Compile-time constants of one specialisation: :func:`run_core_for` compiles the loop with its own
# globals (the strategy's step, the queue family), so numba prunes what is not taken before typing.
_RISK_AVERSE = True
_CORES: dict = {}


def _step(*args):  # replaced per strategy by run_core_for
    raise NotImplementedError


def run_core_for(spec, queue_kind):
    """The loop specialised for one strategy (its decision step bound in) and queue family,
    compiled on first use and cached on disk under a name carrying the strategy's name and source
    digest."""
    from mm_core.backtest.queue import RISK_AVERSE

    ra = int(queue_kind) == RISK_AVERSE
    key = (spec.key, ra)
    fn = _CORES.get(key)
    if fn is None:
        g = dict(globals(), _RISK_AVERSE=ra, _step=pl.compile_step(spec, for_loop=True))
        py = types.FunctionType(_run_core.__code__, g, "run_core")
        py.__qualname__ = f"run_core_{spec.key}" + ("_ra" if ra else "_prob")
        py.__doc__ = _run_core.__doc__
        loop_code(py)
        fn = _CORES[key] = njit(cache=True, nogil=True, error_model="numpy")(py)
    return fn


@_inline_helper
def _ord_row(ORD, a, oi, of, o, tick_size):
    """Row ``a`` of the strategy's order table from order ``o`` (all but what changes with time)."""
    ls = oi[o, OI_LSTATE]
    ORD[a, O_SIDE] = oi[o, OI_SIDE]
    ORD[a, O_TICK] = oi[o, OI_LTICK]
    ORD[a, O_PRICE] = oi[o, OI_LTICK] * tick_size
    ORD[a, O_LEAVES] = of[o, OF_LLEAVES]
    ORD[a, O_FILLED] = of[o, OF_LQTY] - of[o, OF_LLEAVES]
    ORD[a, O_ID] = o
    ORD[a, O_STATE] = (OS_LIVE if ls == LS_LIVE else OS_PENDING_NEW if ls == LS_PENDING_NEW
                       else OS_CANCEL_PENDING if ls == LS_CANCEL_PENDING else OS_AMEND_PENDING)


@_inline_helper
def _ord_index(lopen, n_open, o):
    for a in range(n_open):
        if lopen[a] == o:
            return a
    return -1


@_helper
def _fault(KS, KC, PI, LOG, S, tr_i, tr_f, now, kind, value):
    """A fault for the risk controls (traced when a trace is given)."""
    k = S[S_N_TRACE]
    if k < tr_i.shape[0]:
        tr_i[k, TR_KIND] = TR_FAULT
        tr_i[k, TR_T] = now
        tr_i[k, TR_A] = kind
        tr_f[k, 0] = value
        S[S_N_TRACE] = k + 1
    pl.on_fault_inline(KS, KC, PI, LOG, now, kind, value)


_x_depth = mx.LOOP["x_depth"]
_x_trade = mx.LOOP["x_trade"]
_x_clear = mx.LOOP["x_clear"]
_x_new = mx.LOOP["x_new"]
_x_cancel = mx.LOOP["x_cancel"]
_x_amend = mx.LOOP["x_amend"]
_on_book = pl.on_book_inline
_on_fault = pl.on_fault_inline
F_REJECT = pl._risk.F_REJECT


def _run_core(kind, side, tick, qty, exch_ts, local_ts, bb_tick, ba_tick, bb_qty, ba_qty, fair,
              lo, hi,
              lat_ts, lat_entry, lat_resp,
              queue_kind, queue_n, rate_threshold, rate_decay, lot, maker_fee,
              requote_ns, end_ts, share_trades,
              conf_local, conf_exch, st_ts, st_kind, st_a, st_v, bm_local, bm_age,
              V, ORD, P, ST, OUT, RS, RC, KS, KC, QC, PF, PI, LOG, ACT,
              S, F, X, XF, bq, aq, oi, of, fi, fq, counters, xbuy, xsell, lopen, rq, rs_i, rs_q, lat_samples,
              tr_i, tr_f):
    """The loop, from the state in ``S``/``F`` (see :func:`run`). Returns ``DONE``, or ``NEED_ROOM``
    (state saved) when the order, fill or log table must grow first. Plain Python:
    :func:`run_core_for` compiles its specialisations."""
    n = kind.shape[0]
    n_conf = conf_local.shape[0]
    n_st = st_ts.shape[0]
    n_bm = bm_local.shape[0]
    share = share_trades != 0
    tick_size = V[V_TICK]
    qk = np.int64(0) if _RISK_AVERSE else queue_kind
    i = S[S_I]
    j = S[S_J]
    next_timer = S[S_NEXT_TIMER]
    stale_ns = np.int64(KC[pl.KC_MAX_STALENESS_MS] * 1e6)

    while S[S_OVERFLOW] == 0:
        if (S[S_N_ORDERS] + ORDER_ROOM >= oi.shape[0] or fi.shape[0] - X[X_N_FILLS] < FILL_ROOM
                or LOG.shape[0] - PI[PI_N_LOG] < 4 * pl.LOG_ROOM):
            S[S_I] = i
            S[S_J] = j
            S[S_NEXT_TIMER] = next_timer
            return NEED_ROOM
        t_req = rq[0, S[S_RQ_HEAD] & _RING_MASK] if S[S_RQ_HEAD] < S[S_RQ_TAIL] else BIG
        t_rsp = rs_i[0, S[S_RS_HEAD] & _RING_MASK] if S[S_RS_HEAD] < S[S_RS_TAIL] else BIG
        t_tmr = next_timer if next_timer <= end_ts else BIG
        t_st = st_ts[S[S_P_ST]] if S[S_P_ST] < n_st and st_ts[S[S_P_ST]] <= end_ts else BIG
        t_dl = S[S_DEADLINE] if S[S_DEADLINE] <= end_ts else BIG
        t_dec = min(t_tmr, t_st, t_dl)
        t_other = min(t_req, t_rsp, t_dec)

        # market rows (exchange side), up to and including the next non-market action's time; a
        # fill's report can be due before that action, so it then becomes the next action
        n_fills = X[X_N_FILLS]
        while i < n and exch_ts[i] <= t_other:
            if X[X_N_FILLS] != n_fills:
                if fi.shape[0] - X[X_N_FILLS] < FILL_ROOM:  # resumes at this row, same next action
                    S[S_I] = i
                    S[S_J] = j
                    S[S_NEXT_TIMER] = next_timer
                    return NEED_ROOM
                n_fills = X[X_N_FILLS]
                t_rsp = rs_i[0, S[S_RS_HEAD] & _RING_MASK]
                if t_rsp < t_other:
                    t_other = t_rsp
                    if exch_ts[i] > t_other:
                        break
            k = kind[i]
            nf0 = X[X_N_FILLS]
            if k == DEPTH:
                _x_depth(X, XF, oi, of, xbuy, xsell, bq, aq, lo, np.int64(side[i]), tick[i], qty[i], bb_tick[i],
                         ba_tick[i], exch_ts[i], qk, queue_n, share, lot, fi, fq)
            elif k == TRADE:
                _x_trade(X, XF, oi, of, xbuy, xsell, np.int64(side[i]), tick[i], qty[i], exch_ts[i], share, lot,
                         fi, fq)
            elif k == CLEAR:
                _x_clear(X, bq, aq, np.int64(side[i]))
            for f in range(nf0, X[X_N_FILLS]):  # fill reports travel back to the strategy
                fi[f, FI_LOCAL] = _respond(S, rs_i, rs_q, exch_ts[i], np.int64(RSP_FILL), fi[f, FI_OID], fq[f],
                                           lat_ts, lat_resp)
            i += 1
        if X[X_N_FILLS] != n_fills:
            t_rsp = rs_i[0, S[S_RS_HEAD] & _RING_MASK]
            t_other = min(t_other, t_rsp)

        if t_other == BIG:
            break
        if t_rsp <= t_req and t_rsp <= t_dec:
            # a response reaches the strategy
            slot = S[S_RS_HEAD] & _RING_MASK
            S[S_RS_HEAD] += 1
            now = rs_i[0, slot]
            rk = rs_i[1, slot]
            o = rs_i[2, slot]
            forget = False
            if rk == RSP_ACCEPTED:
                oi[o, OI_ACK_LOCAL] = now
                if oi[o, OI_LSTATE] == LS_PENDING_NEW:
                    oi[o, OI_LSTATE] = LS_LIVE
            elif rk == RSP_FILL:
                q = rs_q[slot]
                sd = oi[o, OI_SIDE]
                F[F_LPOS] += q if sd > 0 else -q
                val = q * oi[o, OI_LTICK] * tick_size
                F[F_LCASH] += -val if sd > 0 else val
                F[F_LFEES] += maker_fee * val
                of[o, OF_LLEAVES] -= q
                forget = of[o, OF_LLEAVES] < 0.5 * lot
            elif rk == RSP_CANCEL_REJECTED:
                _fault(KS, KC, PI, LOG, S, tr_i, tr_f, now, F_REJECT, 0.0)
                if oi[o, OI_LSTATE] == LS_CANCEL_PENDING:
                    oi[o, OI_LSTATE] = LS_LIVE  # still live: cancel it again at the next decision
            elif rk == RSP_AMENDED:
                counters[C_AMENDED] += 1
                lfilled = of[o, OF_LQTY] - of[o, OF_LLEAVES]
                oi[o, OI_LTICK] = oi[o, OI_AMEND_TICK]
                of[o, OF_LQTY] = of[o, OF_AMEND_QTY]
                of[o, OF_LLEAVES] = of[o, OF_AMEND_QTY] - lfilled
                if oi[o, OI_LSTATE] == LS_AMEND_PENDING:
                    oi[o, OI_LSTATE] = LS_LIVE
                forget = of[o, OF_LLEAVES] < 0.5 * lot
            elif rk == RSP_AMEND_REJECTED:
                _fault(KS, KC, PI, LOG, S, tr_i, tr_f, now, F_REJECT, 0.0)
                counters[C_AMEND_REJECTED] += 1
                if oi[o, OI_LSTATE] == LS_AMEND_PENDING:
                    oi[o, OI_LSTATE] = LS_LIVE
            else:  # rejected, canceled (also by an amend below the filled size), too late: gone
                if rk == RSP_REJECTED:
                    oi[o, OI_ACK_LOCAL] = now
                    _fault(KS, KC, PI, LOG, S, tr_i, tr_f, now, F_REJECT, 0.0)
                elif rk == RSP_AMEND_TOO_LATE:
                    counters[C_AMEND_TOO_LATE] += 1
                forget = True
            # the strategy's order table (rows aligned with lopen) follows the change
            n_open = S[S_N_LOPEN]
            a = _ord_index(lopen, n_open, o)
            if a >= 0:
                if forget:  # the strategy stops tracking the order
                    oi[o, OI_LSTATE] = LS_DONE
                    lopen[a] = lopen[n_open - 1]
                    for c in range(ORD.shape[1]):
                        ORD[a, c] = ORD[n_open - 1, c]
                    S[S_N_LOPEN] = n_open - 1
                else:
                    _ord_row(ORD, a, oi, of, o, tick_size)
        elif t_req <= t_dec:  # an order request reaches the matching engine
            slot = S[S_RQ_HEAD] & _RING_MASK
            S[S_RQ_HEAD] += 1
            now = rq[0, slot]
            o = rq[2, slot]
            best_bid = bb_tick[i - 1] if i > 0 else NO_BID
            best_ask = ba_tick[i - 1] if i > 0 else NO_ASK
            rk = rq[1, slot]
            if rk == REQ_NEW:
                rsp = _x_new(X, XF, oi, of, xbuy, xsell, bq, aq, lo, o, now, best_bid, best_ask, rate_threshold,
                             rate_decay)
            elif rk == REQ_CANCEL:
                rsp = _x_cancel(X, XF, oi, of, xbuy, xsell, o, now, rate_threshold, rate_decay)
            else:
                rsp = _x_amend(X, XF, oi, of, xbuy, xsell, bq, aq, lo, o, now, oi[o, OI_AMEND_TICK],
                               of[o, OF_AMEND_QTY], best_bid, best_ask, rate_threshold, rate_decay, lot)
            _respond(S, rs_i, rs_q, now, np.int64(rsp), o, 0.0, lat_ts, lat_resp)
        else:
            # a decision: the timer, a feed-status event and/or the staleness deadline
            now = t_dec
            c0 = np.int64(0)
            sample = (counters[C_DECISIONS] & (LAT_EVERY - 1)) == 0
            if sample:
                c0 = cycles()
            counters[C_DECISIONS] += 1
            if t_tmr == now:
                next_timer += requote_ns
                counters[C_TIMER] += 1
            if t_dl == now:
                S[S_DEADLINE] = BIG
                counters[C_DEADLINE_DECISIONS] += 1
            if t_st == now:
                counters[C_STATUS_DECISIONS] += 1
                p = S[S_P_ST]
                while p < n_st and st_ts[p] == now:
                    sk = st_kind[p]
                    if sk == ST_VALID:
                        S[S_VALID] = st_a[p]
                    elif sk == ST_MARKET:
                        S[S_MARKET] = st_a[p]
                        X[X_MARKET] = st_a[p]  # the exchange switches at the same instant
                    else:
                        _fault(KS, KC, PI, LOG, S, tr_i, tr_f, now, st_a[p], st_v[p])
                    p += 1
                S[S_P_ST] = p
            # the view: rows that have reached the strategy; each new book message is an age sample
            while j + 1 < n and local_ts[j + 1] <= now:
                j += 1
            pb = S[S_PB]
            while pb < n_bm and bm_local[pb] <= now:
                _on_book(RS, RC, bm_local[pb], bm_age[pb])
                pb += 1
            S[S_PB] = pb
            kc = S[S_KC]
            while kc + 1 < n_conf and conf_local[kc + 1] <= now:
                kc += 1
            S[S_KC] = kc
            if j < 0:
                counters[C_NO_BOOK_SKIPS] += 1
                continue
            V[V_FAIR] = fair[j]
            V[V_BID] = bb_tick[j] * tick_size if bb_tick[j] != NO_BID else 0.0
            V[V_ASK] = ba_tick[j] * tick_size if ba_tick[j] != NO_ASK else 0.0
            V[V_BID_QTY] = bb_qty[j]
            V[V_ASK_QTY] = ba_qty[j]
            V[V_POSITION] = F[F_LPOS]
            V[V_EQUITY] = F[F_LCASH] + F[F_LPOS] * fair[j] - F[F_LFEES]
            V[V_DATA_AGE_MS] = (now - conf_exch[kc]) * 1e-6 if kc >= 0 else 1e18
            V[V_DATA_VALID] = 1.0 if S[S_VALID] != 0 else 0.0
            V[V_MARKET] = S[S_MARKET]
            n_ord = S[S_N_LOPEN]  # ORD[:n_ord] follows every order change (rows aligned with lopen)
            for a in range(n_ord):  # what changes with time alone
                o = lopen[a]
                ORD[a, O_AGE_MS] = (now - oi[o, OI_SUBMIT_LOCAL]) * 1e-6
                ORD[a, O_QUEUE_AHEAD] = of[o, OF_FRONT] if oi[o, OI_XSTATE] == 1 else -1.0
            k_tr = S[S_N_TRACE]
            if k_tr < tr_i.shape[0]:  # the call trace, when one is given: the view and orders as given
                tr_i[k_tr, TR_KIND] = TR_DECISION
                tr_i[k_tr, TR_T] = now
                tr_i[k_tr, TR_A] = n_ord
                for c in range(V.shape[0]):
                    tr_f[k_tr, c] = V[c]
                w = V.shape[0]
                for a in range(min(n_ord, TRACE_ROWS)):
                    for c in range(ORD.shape[1]):
                        tr_f[k_tr, w + a * ORD.shape[1] + c] = ORD[a, c]
            n_act = _step(now, V, ORD, n_ord, P, ST, OUT, RS, RC, KS, KC, QC, PF, PI, LOG, ACT)
            if k_tr < tr_i.shape[0]:
                tr_i[k_tr, TR_B] = n_act
                w = V.shape[0] + TRACE_ROWS * ORD.shape[1]
                for a in range(min(n_act, TRACE_ROWS)):
                    for c in range(ACT.shape[1]):
                        tr_f[k_tr, w + a * ACT.shape[1] + c] = ACT[a, c]
                S[S_N_TRACE] = k_tr + 1
            for a in range(n_act):
                ak = ACT[a, A_KIND]
                if ak == ACT_NEW:
                    o = S[S_N_ORDERS]
                    S[S_N_ORDERS] = o + 1
                    s = np.int64(ACT[a, A_SIDE])
                    tt = np.int64(ACT[a, A_TICK])
                    q = ACT[a, A_QTY]
                    oi[o, OI_SIDE] = s
                    oi[o, OI_TICK] = tt
                    oi[o, OI_LTICK] = tt
                    oi[o, OI_SUBMIT_LOCAL] = now
                    oi[o, OI_XSTATE] = XS_IN_FLIGHT
                    oi[o, OI_LSTATE] = LS_PENDING_NEW
                    oi[o, OI_RESULT] = RES_OPEN
                    oi[o, OI_N_AMENDS] = 0
                    of[o, OF_QTY] = q
                    of[o, OF_LEAVES] = q
                    of[o, OF_LLEAVES] = q
                    of[o, OF_LQTY] = q
                    lopen[S[S_N_LOPEN]] = o
                    _ord_row(ORD, S[S_N_LOPEN], oi, of, o, tick_size)
                    S[S_N_LOPEN] += 1
                    _request(S, rq, now, np.int64(REQ_NEW), o, lat_ts, lat_entry)
                    counters[C_NEW] += 1
                elif ak == ACT_CANCEL:
                    o = np.int64(ACT[a, A_ID])
                    oi[o, OI_LSTATE] = LS_CANCEL_PENDING
                    _ord_row(ORD, _ord_index(lopen, S[S_N_LOPEN], o), oi, of, o, tick_size)
                    oi[o, OI_CANCEL_SENT] = now
                    _request(S, rq, now, np.int64(REQ_CANCEL), o, lat_ts, lat_entry)
                    counters[C_CANCEL] += 1
                else:
                    o = np.int64(ACT[a, A_ID])
                    oi[o, OI_LSTATE] = LS_AMEND_PENDING
                    _ord_row(ORD, _ord_index(lopen, S[S_N_LOPEN], o), oi, of, o, tick_size)
                    oi[o, OI_AMEND_TICK] = np.int64(ACT[a, A_TICK])
                    of[o, OF_AMEND_QTY] = (of[o, OF_LQTY] - of[o, OF_LLEAVES]) + ACT[a, A_QTY]
                    oi[o, OI_AMEND_SENT] = now
                    _request(S, rq, now, np.int64(REQ_AMEND), o, lat_ts, lat_entry)
                    counters[C_AMEND] += 1
            # the next instant the data would become too old, if it comes before the next tick
            if kc >= 0:
                kk = kc
                d = conf_exch[kk] + stale_ns
                while d < next_timer and kk + 1 < n_conf and conf_local[kk + 1] <= d:
                    kk += 1
                    d = conf_exch[kk] + stale_ns
                S[S_DEADLINE] = d + 1 if (d >= now and d + 1 < next_timer) else BIG
            if sample:
                ls_n = S[S_LAT_N]
                lat_samples[ls_n & (lat_samples.shape[0] - 1)] = cycles() - c0  # a power of two
                S[S_LAT_N] = ls_n + 1

    counters[C_ROWS] = i
    counters[C_FILLS] = X[X_N_FILLS]
    S[S_I] = i
    S[S_J] = j
    S[S_NEXT_TIMER] = next_timer
    return DONE
