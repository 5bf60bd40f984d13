"""The jitted event loop: an exchange side (matching, queues, rate counter) and a strategy side
(timer-driven quoting on the delayed view), joined by latency-delayed order and response queues.

Why one compiled loop: per-event work is a handful of array reads/writes, so interpretation
overhead would dominate -- a plain Python loop does ~0.3 M rows/s here, this loop tens of millions.
The loop never allocates at all: :class:`LoopState` allocates every table in Python, and when the
order or fill table is nearly full the loop saves its position and returns ``NEED_ROOM``; :func:`run`
doubles the table and calls it again (cold JIT: no ``np.empty``/``np.zeros`` overloads, no growth
helpers returning tuples of arrays -- ~2 s of the first-run compile). Helpers are compiled without
CPython wrappers and with ``error_model="numpy"`` (no division-by-zero exception paths).

Cold JIT, measured (numba 0.61, empty cache): compile time grows with the amount of numba IR typed
and lowered (~1 ms of Python-side work per IR instruction), plus ~0.05-0.1 s per separately
compiled function. So the exchange side (matching, fills, order requests) and the response handling
are written out inside the loop and the fill code exists once (sweeps, crosses and trades at our
price share it), leaving a few leaf helpers called from several places, and the loop is compiled per
policy kernel and queue family (:func:`run_core_for`): only the configured kernel is compiled in
(the risk-averse queue needs no ``on_depth``/``prob_behind``). Merging further does not pay: numba's
SSA reconstruction grows faster than linearly with a function's size.

Time: every action happens at one global timestamp, processed in order. At equal times market rows
go first (the exchange has the row before anything it causes), then responses (the strategy learns
before it decides), then order requests, then the strategy's timer. A fill inside a run of market
rows queues a report; if that report is due before the next request/timer, it is processed first
(the rows after it wait), so the policy never decides on a position older than the response latency.

Exchange side, per row (book best prices after each row come precomputed from the book pass):

- depth row at a price where we rest: the queue model updates the size ahead of us;
- bid row that lifts the best bid to/through our ask (or ask row that drops the best ask to/through
  our bid): our order fills completely at its price -- someone crossed it;
- trade: taker buys fill our asks priced below the trade completely (trade-through); at our price
  the trade first consumes the queue ahead, the rest fills us (partially if the trade is small);
  several of our orders at that price are visited in arrival order and share the trade's volume
  (what one took, the next cannot; ``share_trades=0`` lets each see the whole trade, as
  hftbacktest 2.4.4 does);
- new order: Kraken's rate counter (+1, reject above the threshold), post-only check against the
  exchange's best price on arrival (crossing = rejected), then it joins the queue behind the
  displayed size at its price;
- cancel: rate counter (+8 ... +0 by order age), too-late if already filled.

Strategy side: every ``requote_ns`` of local time the policy kernel sees the last row whose
``local_ts`` has passed (its fair mid, best prices) and its position as known from fill reports;
the target is reconciled with working orders: same price -> keep, else cancel and replace.

Against hftbacktest 2.4.4 (PartialFillExchange, risk-averse queue, constant latency, the same rows
and quoting loop, ``bench/bench_backtest.py``): on a simulated day (1.94 M rows, 183,567 orders)
both engines produce the same orders and the same 12,167 fills, order by order, once the
hftbacktest loop takes its position from fill reports (its local state drops partial fills,
hftbacktest#299/#316). Modelling differences that did not occur there: same-price sharing (above),
Kraken's rate counter (hftbacktest has none), and hftbacktest's rule that an order cannot be
cancelled before its ack.
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit

from mm_core.backtest.event_arrays import CLEAR, DEPTH, NO_ASK, NO_BID, TRADE
from mm_core.backtest.queue import RISK_AVERSE, on_depth
from mm_core.backtest.rate_limit import cancel_cost, decayed
from mm_core.policy.kernels import SCRIPTED, baseline_quote, scripted_quote

# helpers are only called from jitted code: no CPython/cfunc wrappers to generate, numpy error model
_helper = njit(cache=True, nogil=True, error_model="numpy", no_cpython_wrapper=True, no_cfunc_wrapper=True)

BIG = np.int64(1) << np.int64(62)

# order table: integer columns
OI_SIDE = 0
OI_TICK = 1
OI_SUBMIT_LOCAL = 2  # local time the strategy sent it
OI_ARRIVE_EXCH = 3  # exchange time the new-order request arrived (-1 = not yet)
OI_XSTATE = 4  # exchange view: 0 in flight, 1 resting, 2 done
OI_LSTATE = 5  # strategy view: 0 pending new, 1 live, 2 cancel pending, 3 done
OI_RESULT = 6  # final outcome, see R_*
OI_DONE_EXCH = 7  # exchange time it stopped resting / was rejected
OI_CANCEL_SENT = 8  # local time of the (last) cancel request, -1 = none
OI_ACK_LOCAL = 9  # local time the strategy learned the outcome of the new-order request
N_OI = 10
# order table: float columns
OF_QTY = 0
OF_LEAVES = 1  # exchange view
OF_LLEAVES = 2  # strategy view
OF_FRONT = 3  # queue ahead (queue model state)
OF_CUM = 4  # trades at our price since the last size change (queue model state)
OF_FRONT0 = 5  # queue ahead when it joined the book
OF_FILLED = 6
N_OF = 7

R_OPEN = 0
R_FILLED = 1
R_CANCELED = 2
R_REJ_POST_ONLY = 3
R_REJ_RATE = 4

# fill log columns
FI_TS = 0  # exchange time
FI_LOCAL = 1  # when the strategy learns it
FI_OID = 2
FI_SIDE = 3
FI_TICK = 4
FI_MAKER = 5
N_FI = 6

# counters
C_ROWS = 0
C_REQUOTES = 1
C_NEW = 2
C_CANCEL = 3
C_REJ_POST_ONLY = 4
C_REJ_RATE_NEW = 5
C_REJ_RATE_CANCEL = 6
C_CANCEL_TOO_LATE = 7
C_FILLS = 8
C_RULE_SKIPS = 9
C_ACCEPTED = 10
C_OPEN_CAP_SKIPS = 11
C_NO_BOOK_SKIPS = 12
C_RATE_GUARD_SKIPS = 13
N_C = 14

# queue messages
REQ_NEW = 1
REQ_CANCEL = 2
RSP_ACCEPTED = 1
RSP_REJECTED = 2
RSP_FILL = 3
RSP_CANCELED = 4
RSP_CANCEL_REJECTED = 5
RSP_CANCEL_TOO_LATE = 6

RING = 1 << 16

# integer loop state (one array, so helpers can update it in place)
S_N_FILLS = 0
S_RS_HEAD = 1
S_RS_TAIL = 2
S_RS_LAST = 3  # arrival time of the last response (in-order delivery)
S_N_RSP = 4
S_P_RESP = 5  # pointer into a time-indexed latency table
S_RQ_HEAD = 6
S_RQ_TAIL = 7
S_RQ_LAST = 8
S_N_REQ = 9
S_P_ENTRY = 10
S_N_XBUY = 11
S_N_XSELL = 12
S_MAX_BUY = 13  # highest resting buy tick (-1 = none)
S_MIN_SELL = 14  # lowest resting sell tick (BIG = none)
S_N_LOPEN = 15
S_WORK_BUY = 16
S_WORK_SELL = 17
S_N_ORDERS = 18
S_OVERFLOW = 19
S_RC_TS = 20
S_LRC_TS = 21
S_I = 22  # next market row (the loop returns to Python to grow its tables and resumes here)
S_J = 23  # last row the strategy has seen
S_NEXT_TIMER = 24
N_S = 25
# float loop state
F_XPOS = 0  # true position
F_LPOS = 1  # position as the strategy knows it (from fill reports)
F_RC = 2  # exchange rate counter
F_RC_MAX = 3
F_LRC = 4  # the strategy's own estimate of the rate counter
N_F = 5


# No allocation inside jitted code: every array comes from Python (:class:`LoopState`), and the loop
# returns ``NEED_ROOM`` when the order or fill table is nearly full; Python grows them and calls it
# again (it resumes from the state arrays). Each ``np.empty``/``np.zeros`` form compiled inside numba
# is a separate overload compile, and array-growth helpers returned tuples of arrays: ~2 s of cold JIT.
DONE = 0
NEED_ROOM = 1
FILL_ROOM = 600  # fills one market row can produce at most: every resting order once (2 x 256)
ORDER_ROOM = 4


@_helper
def _respond(S, rs_i, rs_q, now, kind, oid, qty, lat_ts, lat_resp):
    """Queue a response produced at exchange time ``now``; returns its local arrival time."""
    # latency in force: step function of time (pointer advances monotonically) or the k-th sample
    k = S[S_N_RSP]
    S[S_N_RSP] = k + 1
    if lat_ts.shape[0] == 0:
        lat = lat_resp[k % lat_resp.shape[0]]
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
    slot = S[S_RS_TAIL] % RING
    rs_i[0, slot] = arr
    rs_i[1, slot] = kind
    rs_i[2, slot] = oid
    rs_q[slot] = qty
    S[S_RS_TAIL] += 1
    return arr


@_helper
def _request(S, rq, now, kind, oid, lat_ts, lat_entry):
    """Send a request at local time ``now``; it reaches the exchange after the entry latency."""
    k = S[S_N_REQ]  # latency in force, as in _respond
    S[S_N_REQ] = k + 1
    if lat_ts.shape[0] == 0:
        lat = lat_entry[k % lat_entry.shape[0]]
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
    slot = S[S_RQ_TAIL] % RING
    rq[0, slot] = arr
    rq[1, slot] = kind
    rq[2, slot] = oid
    S[S_RQ_TAIL] += 1


@_helper
def _drop_done(S, oi, xbuy, xsell):
    """Remove orders that stopped resting from the exchange's lists (swap with the last entry) and
    recompute the highest resting buy / lowest resting sell tick."""
    for side_k in range(2):
        ids = xbuy if side_k == 0 else xsell
        nk = S_N_XBUY if side_k == 0 else S_N_XSELL
        n_ids = S[nk]
        a = 0
        while a < n_ids:
            if oi[ids[a], OI_XSTATE] == 2:
                ids[a] = ids[n_ids - 1]
                n_ids -= 1
            else:
                a += 1
        S[nk] = n_ids
    m = np.int64(-1)
    for a in range(S[S_N_XBUY]):
        if oi[xbuy[a], OI_TICK] > m:
            m = oi[xbuy[a], OI_TICK]
    S[S_MAX_BUY] = m
    m = BIG
    for a in range(S[S_N_XSELL]):
        if oi[xsell[a], OI_TICK] < m:
            m = oi[xsell[a], OI_TICK]
    S[S_MIN_SELL] = m


@_helper
def _send_cancel(S, F, oi, rq, o, now, lat_ts, lat_entry, counters, guard_threshold, rate_decay):
    """The strategy cancels ``o`` if its own rate-counter estimate has room (it then spends it)."""
    v = decayed(F[F_LRC], S[S_LRC_TS], now, rate_decay) + cancel_cost(now - oi[o, OI_SUBMIT_LOCAL])
    if v > guard_threshold:
        counters[C_RATE_GUARD_SKIPS] += 1
        return False
    F[F_LRC] = v
    S[S_LRC_TS] = now
    oi[o, OI_LSTATE] = 2
    oi[o, OI_CANCEL_SENT] = now
    _request(S, rq, now, np.int64(REQ_CANCEL), o, lat_ts, lat_entry)
    counters[C_CANCEL] += 1
    return True


class LoopState:
    """Every array the loop reads and writes besides the market rows, allocated in Python."""

    def __init__(self, n_ticks: int, requote_ns: int, first_local_ts: int | None):
        self.S = np.zeros(N_S, np.int64)
        self.F = np.zeros(N_F, np.float64)
        S = self.S
        S[S_MAX_BUY] = -1
        S[S_MIN_SELL] = BIG
        S[S_WORK_BUY] = -1
        S[S_WORK_SELL] = -1
        S[S_I] = 0
        S[S_J] = -1
        S[S_NEXT_TIMER] = BIG if first_local_ts is None else (first_local_ts // requote_ns + 1) * requote_ns
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

    def grow(self) -> None:
        """Double whichever of the order and fill tables is nearly full."""
        S = self.S
        if S[S_N_ORDERS] + ORDER_ROOM >= self.oi.shape[0]:
            n = self.oi.shape[0]
            self.oi = np.concatenate([self.oi, np.full((n, N_OI), -1, np.int64)])
            self.of = np.concatenate([self.of, np.zeros((n, N_OF), np.float64)])
        if self.fi.shape[0] - S[S_N_FILLS] < FILL_ROOM:
            n = self.fi.shape[0]
            self.fi = np.concatenate([self.fi, np.full((n, N_FI), -1, np.int64)])
            self.fq = np.concatenate([self.fq, np.zeros(n, np.float64)])


def run(kind, side, tick, qty, exch_ts, local_ts, bb_tick, ba_tick, fair, lo, n_ticks, lat_ts, lat_entry, lat_resp,
        queue_kind, queue_n, rate_threshold, rate_decay, rate_guard, lot, min_qty, min_cost, tick_size,
        policy_kind, policy_params, requote_ns, end_ts, max_open_per_side, share_trades):
    """Run the loop over all rows (growing its tables as needed); see the module docstring. Returns
    the order table, fill log, counters, positions, max rate counter and whether a queue overflowed."""
    st = LoopState(int(n_ticks), int(requote_ns), int(local_ts[0]) if kind.shape[0] > 0 else None)
    run_core = run_core_for(policy_kind, queue_kind)
    while True:
        status = run_core(kind, side, tick, qty, exch_ts, local_ts, bb_tick, ba_tick, fair, lo, lo + n_ticks,
                          lat_ts, lat_entry, lat_resp, queue_kind, queue_n, rate_threshold, rate_decay,
                          rate_threshold * rate_guard, lot, min_qty, min_cost, tick_size, policy_kind,
                          policy_params, requote_ns, end_ts, max_open_per_side, share_trades,
                          st.S, st.F, st.bq, st.aq, st.oi, st.of, st.fi, st.fq, st.counters, st.xbuy,
                          st.xsell, st.lopen, st.rq, st.rs_i, st.rs_q)
        if status == DONE:
            break
        st.grow()
    n_o, n_f = int(st.S[S_N_ORDERS]), int(st.S[S_N_FILLS])
    return (st.oi[:n_o], st.of[:n_o], st.fi[:n_f], st.fq[:n_f], st.counters, st.F[F_XPOS], st.F[F_LPOS],
            st.F[F_RC_MAX], st.S[S_OVERFLOW] != 0)


def _on_timer(S, F, oi, of, rq, lopen, now, fair, best_bid, best_ask, counters, policy_params, lot, min_qty,
              min_cost, tick_size, max_open_per_side, guard_threshold, rate_decay, lat_ts, lat_entry):
    """The strategy requotes: policy target -> keep, cancel or replace the working orders. Compiled
    per policy kernel by :func:`run_core_for`, like the loop."""
    counters[C_REQUOTES] += 1
    if _SCRIPTED:  # a constant of this specialisation: only one kernel is compiled in
        bt, bqty, at, aqty = scripted_quote(policy_params, now)
    else:
        bt, bqty, at, aqty = baseline_quote(policy_params, fair, best_bid, best_ask, F[F_LPOS],
                                            tick_size)
    for side_k in range(2):
        s = np.int64(1 - 2 * side_k)
        tt = bt if s > 0 else at
        q = bqty if s > 0 else aqty
        q = np.floor(q / lot + 1e-9) * lot
        want = q > 0.0
        if want and (q < min_qty or q * tt * tick_size < min_cost):
            counters[C_RULE_SKIPS] += 1
            want = False
        w = S[S_WORK_BUY] if s > 0 else S[S_WORK_SELL]
        if w >= 0 and (not want or oi[w, OI_TICK] != tt):
            if _send_cancel(S, F, oi, rq, w, now, lat_ts, lat_entry, counters, guard_threshold, rate_decay):
                w = -1
            else:
                want = False  # the stale quote stays until the counter has room
        if want and w < 0:
            n_side = 0
            for a in range(S[S_N_LOPEN]):
                if oi[lopen[a], OI_SIDE] == s:
                    n_side += 1
            v = decayed(F[F_LRC], S[S_LRC_TS], now, rate_decay) + 1.0  # own rate-counter estimate
            if n_side >= max_open_per_side or S[S_N_LOPEN] >= lopen.shape[0] - 2:
                counters[C_OPEN_CAP_SKIPS] += 1
            elif v > guard_threshold:
                counters[C_RATE_GUARD_SKIPS] += 1
            else:
                F[F_LRC] = v
                S[S_LRC_TS] = now
                o = S[S_N_ORDERS]
                S[S_N_ORDERS] = o + 1
                oi[o, OI_SIDE] = s
                oi[o, OI_TICK] = tt
                oi[o, OI_SUBMIT_LOCAL] = now
                oi[o, OI_XSTATE] = 0
                oi[o, OI_LSTATE] = 0
                oi[o, OI_RESULT] = R_OPEN
                of[o, OF_QTY] = q
                of[o, OF_LEAVES] = q
                of[o, OF_LLEAVES] = q
                lopen[S[S_N_LOPEN]] = o
                S[S_N_LOPEN] += 1
                _request(S, rq, now, np.int64(REQ_NEW), o, lat_ts, lat_entry)
                counters[C_NEW] += 1
                w = o
        if s > 0:
            S[S_WORK_BUY] = w
        else:
            S[S_WORK_SELL] = w
    # orphans: live orders whose cancel was throttled -- cancel again
    for a in range(S[S_N_LOPEN]):
        o = lopen[a]
        if oi[o, OI_LSTATE] == 1 and o != S[S_WORK_BUY] and o != S[S_WORK_SELL]:
            _send_cancel(S, F, oi, rq, o, now, lat_ts, lat_entry, counters, guard_threshold, rate_decay)


# Compile-time constants of one specialisation of the loop: :func:`run_core_for` compiles it with its
# own globals, so numba prunes the branch not taken before typing and never compiles the other
# policy kernel (or the probabilistic queue models for the risk-averse queue). These module values
# are only the plain Python function's.
_SCRIPTED = False
_RISK_AVERSE = True
_CORES = {}
_TIMERS = {}


def run_core_for(policy_kind, queue_kind):
    """The loop specialised for one policy kernel and queue family, compiled (and cached on disk,
    one cache entry per specialisation) on first use."""
    key = (int(policy_kind) == SCRIPTED, int(queue_kind) == RISK_AVERSE)
    fn = _CORES.get(key)
    if fn is None:
        timer = _TIMERS.get(key[0])
        if timer is None:
            py = types.FunctionType(_on_timer.__code__, dict(globals(), _SCRIPTED=key[0]), "_on_timer")
            py.__qualname__ = "_on_timer_" + ("scripted" if key[0] else "baseline")
            timer = _TIMERS[key[0]] = _helper(py)
        g = dict(globals(), _SCRIPTED=key[0], _RISK_AVERSE=key[1], _on_timer=timer)
        py = types.FunctionType(_run_core.__code__, g, "run_core")
        py.__qualname__ = "run_core_" + ("scripted" if key[0] else "baseline") + ("_ra" if key[1] else "_prob")
        py.__doc__ = _run_core.__doc__
        fn = _CORES[key] = njit(cache=True, nogil=True, error_model="numpy")(py)
    return fn


def _run_core(kind, side, tick, qty, exch_ts, local_ts, bb_tick, ba_tick, fair,
              lo, hi,
              lat_ts, lat_entry, lat_resp,
              queue_kind, queue_n,
              rate_threshold, rate_decay, guard_threshold,
              lot, min_qty, min_cost, tick_size,
              policy_kind, policy_params,
              requote_ns, end_ts, max_open_per_side, share_trades,
              S, F, bq, aq, oi, of, fi, fq, counters, xbuy, xsell, lopen, rq, rs_i, rs_q):
    """The loop, from the state in ``S``/``F`` (see :func:`run`). Returns ``DONE``, or ``NEED_ROOM``
    (state saved) when the order or fill table must grow first. Plain Python: :func:`run_core_for`
    compiles its specialisations."""
    n = kind.shape[0]
    share = share_trades != 0
    BUY = np.int64(1)  # variables, not literals: one compiled specialisation per helper
    SELL = np.int64(-1)
    i = S[S_I]
    j = S[S_J]
    next_timer = S[S_NEXT_TIMER]

    while S[S_OVERFLOW] == 0:
        if S[S_N_ORDERS] + ORDER_ROOM >= oi.shape[0] or fi.shape[0] - S[S_N_FILLS] < FILL_ROOM:
            S[S_I] = i
            S[S_J] = j
            S[S_NEXT_TIMER] = next_timer
            return NEED_ROOM
        t_req = rq[0, S[S_RQ_HEAD] % RING] if S[S_RQ_HEAD] < S[S_RQ_TAIL] else BIG
        t_rsp = rs_i[0, S[S_RS_HEAD] % RING] if S[S_RS_HEAD] < S[S_RS_TAIL] else BIG
        t_tmr = next_timer if next_timer <= end_ts else BIG
        t_other = min(t_req, t_rsp, t_tmr)

        # market rows (exchange side), up to and including the next non-market action's time; a
        # fill's report can be due before that action, so it then becomes the next action
        n_fills = S[S_N_FILLS]
        while i < n and exch_ts[i] <= t_other:
            if S[S_N_FILLS] != n_fills:
                if fi.shape[0] - S[S_N_FILLS] < FILL_ROOM:  # resumes at this row, same next action
                    S[S_I] = i
                    S[S_J] = j
                    S[S_NEXT_TIMER] = next_timer
                    return NEED_ROOM
                n_fills = S[S_N_FILLS]
                t_rsp = rs_i[0, S[S_RS_HEAD] % RING]
                if t_rsp < t_other:
                    t_other = t_rsp
                    if exch_ts[i] > t_other:
                        break
            k = kind[i]
            if k == DEPTH or k == TRADE:
                t = tick[i]
                now = exch_ts[i]
                tq = 0.0  # depth rows: only the sweep below, no trade at our price
                if k == DEPTH:
                    newq = qty[i]
                    if side[i] > 0:  # bid row: queue ahead of our bids; best bid vs our asks
                        prev = bq[t - lo]
                        bq[t - lo] = newq
                        mine = xbuy
                        n_mine = S[S_N_XBUY]
                        s = SELL
                        lim = bb_tick[i]
                        hit = lim >= S[S_MIN_SELL]
                    else:
                        prev = aq[t - lo]
                        aq[t - lo] = newq
                        mine = xsell
                        n_mine = S[S_N_XSELL]
                        s = BUY
                        lim = ba_tick[i]
                        hit = lim <= S[S_MAX_BUY]
                    for a in range(n_mine):
                        o = mine[a]
                        if oi[o, OI_TICK] == t:
                            if _RISK_AVERSE:  # a constant of this specialisation (queue.on_depth's first case)
                                of[o, OF_FRONT] = min(of[o, OF_FRONT], newq)
                                of[o, OF_CUM] = 0.0
                            else:
                                of[o, OF_FRONT], of[o, OF_CUM] = on_depth(queue_kind, queue_n, of[o, OF_FRONT],
                                                                          of[o, OF_CUM], prev, newq)
                else:  # trade: taker buy meets our asks, taker sell our bids
                    s = SELL if side[i] > 0 else BUY
                    hit = t >= S[S_MIN_SELL] if s < 0 else t <= S[S_MAX_BUY]
                    lim = t + s  # priced through the trade: swept
                    tq = qty[i]
                if hit:
                    # Our side-``s`` orders priced at or through ``lim`` fill completely (the other
                    # side's best price reached them, or a trade swept them). Then, for a trade of
                    # ``tq`` at ``t``, our orders at ``t`` in queue (arrival) order: the queue ahead
                    # trades first, the remainder fills the order (partially if the trade is small).
                    # With ``share`` what one of ours took is gone for ours behind it (a trade's
                    # volume is used once; nautilus#2564); without it every order sees the whole
                    # trade (hftbacktest 2.4.4's PartialFillExchange).
                    ids = xbuy if s > 0 else xsell
                    n_ids = S[S_N_XBUY] if s > 0 else S[S_N_XSELL]
                    a = 0
                    rem = tq
                    last = np.int64(-1)
                    while True:
                        if a < n_ids:
                            o = ids[a]
                            a += 1
                            ot = oi[o, OI_TICK]
                            if (s > 0 and ot < lim) or (s < 0 and ot > lim):
                                continue
                            ex = of[o, OF_LEAVES]
                        else:
                            if rem <= 0.0:
                                break
                            o = np.int64(-1)
                            for b in range(n_ids):  # next of ours at t in arrival order (ids grow)
                                c = ids[b]
                                if oi[c, OI_TICK] == t and c > last and (o < 0 or c < o):
                                    o = c
                            if o < 0:
                                break
                            last = o
                            q = rem if share else tq
                            front = of[o, OF_FRONT] - q  # everything ahead trades first
                            of[o, OF_CUM] += q
                            ex = 0.0  # the part of ours trades have reached, on the lot grid
                            if front < 0.0 and round(front / lot) < 0:
                                ex = min(np.floor(-front / lot + 1e-9) * lot, of[o, OF_LEAVES], q)
                            if ex <= 0.0:
                                of[o, OF_FRONT] = front
                                continue
                            of[o, OF_FRONT] = 0.0  # what is left of ours is now at the front
                            if share:
                                rem -= ex
                        # maker fill of ``ex`` of ``o`` at its price; the fill log has room (FILL_ROOM)
                        nf = S[S_N_FILLS]
                        arr = _respond(S, rs_i, rs_q, now, np.int64(RSP_FILL), o, ex, lat_ts, lat_resp)
                        fi[nf, FI_TS] = now
                        fi[nf, FI_LOCAL] = arr
                        fi[nf, FI_OID] = o
                        fi[nf, FI_SIDE] = s
                        fi[nf, FI_TICK] = oi[o, OI_TICK]
                        fi[nf, FI_MAKER] = 1
                        fq[nf] = ex
                        S[S_N_FILLS] = nf + 1
                        F[F_XPOS] += ex if s > 0 else -ex
                        of[o, OF_FILLED] += ex
                        of[o, OF_LEAVES] -= ex
                        if of[o, OF_LEAVES] < 0.5 * lot:
                            of[o, OF_LEAVES] = 0.0
                            oi[o, OI_XSTATE] = 2
                            oi[o, OI_RESULT] = R_FILLED
                            oi[o, OI_DONE_EXCH] = now
                    _drop_done(S, oi, xbuy, xsell)
            elif k == CLEAR:
                if side[i] > 0:
                    for c in range(bq.shape[0]):
                        bq[c] = 0.0
                else:
                    for c in range(aq.shape[0]):
                        aq[c] = 0.0
            i += 1
        if S[S_N_FILLS] != n_fills:
            t_rsp = rs_i[0, S[S_RS_HEAD] % RING]
            t_other = min(t_other, t_rsp)

        if t_other == BIG:
            break
        if t_rsp <= t_req and t_rsp <= t_tmr:
            # a response reaches the strategy
            slot = S[S_RS_HEAD] % RING
            S[S_RS_HEAD] += 1
            now = rs_i[0, slot]
            rk = rs_i[1, slot]
            o = rs_i[2, slot]
            forget = False
            if rk == RSP_ACCEPTED:
                oi[o, OI_ACK_LOCAL] = now
                if oi[o, OI_LSTATE] == 0:
                    oi[o, OI_LSTATE] = 1
            elif rk == RSP_FILL:
                q = rs_q[slot]
                F[F_LPOS] += q if oi[o, OI_SIDE] > 0 else -q
                of[o, OF_LLEAVES] -= q
                forget = of[o, OF_LLEAVES] < 0.5 * lot
            elif rk == RSP_CANCEL_REJECTED:
                if oi[o, OI_LSTATE] == 2:
                    oi[o, OI_LSTATE] = 1  # still live: cancel it again at the next requote
            else:  # rejected, canceled, cancel too late: the order is gone
                if rk == RSP_REJECTED:
                    oi[o, OI_ACK_LOCAL] = now
                forget = True
            if forget and oi[o, OI_LSTATE] != 3:  # the strategy stops tracking the order
                oi[o, OI_LSTATE] = 3
                n_open = S[S_N_LOPEN]
                for a in range(n_open):
                    if lopen[a] == o:
                        lopen[a] = lopen[n_open - 1]
                        S[S_N_LOPEN] = n_open - 1
                        break
                if S[S_WORK_BUY] == o:
                    S[S_WORK_BUY] = -1
                if S[S_WORK_SELL] == o:
                    S[S_WORK_SELL] = -1
        elif t_req <= t_tmr:  # an order request reaches the matching engine
            slot = S[S_RQ_HEAD] % RING
            S[S_RQ_HEAD] += 1
            now = rq[0, slot]
            o = rq[2, slot]
            rc = decayed(F[F_RC], S[S_RC_TS], now, rate_decay)
            if rq[1, slot] == REQ_NEW:
                best_bid = bb_tick[i - 1] if i > 0 else NO_BID
                best_ask = ba_tick[i - 1] if i > 0 else NO_ASK
                oi[o, OI_ARRIVE_EXCH] = now
                ot = oi[o, OI_TICK]
                s = oi[o, OI_SIDE]
                rsp = RSP_ACCEPTED
                if rc + 1.0 > rate_threshold:
                    rsp = RSP_REJECTED
                    oi[o, OI_RESULT] = R_REJ_RATE
                    counters[C_REJ_RATE_NEW] += 1
                else:
                    rc += 1.0
                    if (s > 0 and ot >= best_ask) or (s < 0 and ot <= best_bid):
                        rsp = RSP_REJECTED
                        oi[o, OI_RESULT] = R_REJ_POST_ONLY
                        counters[C_REJ_POST_ONLY] += 1
                if rsp == RSP_REJECTED:
                    oi[o, OI_XSTATE] = 2
                    oi[o, OI_DONE_EXCH] = now
                else:
                    counters[C_ACCEPTED] += 1
                    front = 0.0
                    if ot >= lo and ot < hi:
                        front = bq[ot - lo] if s > 0 else aq[ot - lo]
                    of[o, OF_FRONT] = front
                    of[o, OF_FRONT0] = front
                    of[o, OF_CUM] = 0.0
                    oi[o, OI_XSTATE] = 1
                    if s > 0:
                        xbuy[S[S_N_XBUY]] = o
                        S[S_N_XBUY] += 1
                    else:
                        xsell[S[S_N_XSELL]] = o
                        S[S_N_XSELL] += 1
                    _drop_done(S, oi, xbuy, xsell)  # nothing is done there: refreshes the extremes
            else:
                if oi[o, OI_XSTATE] != 1:
                    rsp = RSP_CANCEL_TOO_LATE
                    counters[C_CANCEL_TOO_LATE] += 1
                else:
                    cost = cancel_cost(now - oi[o, OI_ARRIVE_EXCH])
                    if rc + cost > rate_threshold:
                        rsp = RSP_CANCEL_REJECTED
                        counters[C_REJ_RATE_CANCEL] += 1
                    else:
                        rc += cost
                        rsp = RSP_CANCELED
                        oi[o, OI_XSTATE] = 2
                        oi[o, OI_RESULT] = R_CANCELED
                        oi[o, OI_DONE_EXCH] = now
                        _drop_done(S, oi, xbuy, xsell)
            F[F_RC] = rc
            S[S_RC_TS] = now
            if rc > F[F_RC_MAX]:
                F[F_RC_MAX] = rc
            _respond(S, rs_i, rs_q, now, np.int64(rsp), o, 0.0, lat_ts, lat_resp)
        else:
            now = t_tmr
            next_timer += requote_ns
            while j + 1 < n and local_ts[j + 1] <= now:
                j += 1
            if j < 0 or bb_tick[j] == NO_BID or ba_tick[j] == NO_ASK:
                counters[C_NO_BOOK_SKIPS] += 1
                continue
            _on_timer(S, F, oi, of, rq, lopen, now, fair[j], bb_tick[j], ba_tick[j], counters, policy_params, lot,
                      min_qty, min_cost, tick_size, max_open_per_side, guard_threshold, rate_decay, lat_ts, lat_entry)

    counters[C_ROWS] = i
    counters[C_FILLS] = S[S_N_FILLS]
    S[S_I] = i
    S[S_J] = j
    S[S_NEXT_TIMER] = next_timer
    return DONE
