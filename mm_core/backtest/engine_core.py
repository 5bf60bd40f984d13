"""The jitted event loop: an exchange side (matching, queues, rate counter) and a strategy side
(timer-driven quoting on the delayed view), joined by latency-delayed order and response queues.

Why one compiled loop: per-event work is a handful of array reads/writes, so interpretation
overhead would dominate -- a plain Python loop does ~0.3 M rows/s here, this loop tens of millions.
The loop never allocates per event; order and fill tables grow by doubling.

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

import numpy as np
from numba import njit

from mm_core.backtest.event_arrays import CLEAR, DEPTH, NO_ASK, NO_BID, TRADE
from mm_core.backtest.queue import filled_qty, on_depth, on_trade
from mm_core.backtest.rate_limit import cancel_cost, decayed
from mm_core.policy.kernels import quote

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
N_S = 22
# float loop state
F_XPOS = 0  # true position
F_LPOS = 1  # position as the strategy knows it (from fill reports)
F_RC = 2  # exchange rate counter
F_RC_MAX = 3
F_LRC = 4  # the strategy's own estimate of the rate counter
N_F = 5


# Growth helpers copy with explicit loops: numba compiles an array-to-array slice assignment
# (``out[:n] = a``) through its broadcasting machinery, which costs seconds of JIT per call site.


@njit(cache=True)
def _grow_rows_i(a, cap):
    out = np.empty((cap, a.shape[1]), np.int64)
    for r in range(cap):
        for c in range(a.shape[1]):
            out[r, c] = a[r, c] if r < a.shape[0] else -1
    return out


@njit(cache=True)
def _grow_f(a, cap):
    out = np.zeros(cap, np.float64)
    for r in range(a.shape[0]):
        out[r] = a[r]
    return out


@njit(cache=True)
def _grow_rows_f(a, cap):
    out = np.zeros((cap, a.shape[1]), np.float64)
    for r in range(a.shape[0]):
        for c in range(a.shape[1]):
            out[r, c] = a[r, c]
    return out


@njit(cache=True)
def _lat(lat_ts, lat, now, ptr, k):
    """Latency in force: step function of time (pointer advances monotonically) or k-th sample."""
    m = lat_ts.shape[0]
    if m == 0:
        return lat[k % lat.shape[0]], ptr
    while ptr + 1 < m and lat_ts[ptr + 1] <= now:
        ptr += 1
    return lat[ptr], ptr


@njit(cache=True)
def _remove(ids, n, oid):
    for k in range(n):
        if ids[k] == oid:
            ids[k] = ids[n - 1]
            return n - 1
    return n


@njit(cache=True)
def _respond(S, rs_i, rs_q, now, kind, oid, qty, lat_ts, lat_resp):
    """Queue a response produced at exchange time ``now``; returns its local arrival time."""
    lat, S[S_P_RESP] = _lat(lat_ts, lat_resp, now, S[S_P_RESP], S[S_N_RSP])
    S[S_N_RSP] += 1
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


@njit(cache=True)
def _request(S, rq, now, kind, oid, lat_ts, lat_entry):
    """Send a request at local time ``now``; it reaches the exchange after the entry latency."""
    lat, S[S_P_ENTRY] = _lat(lat_ts, lat_entry, now, S[S_P_ENTRY], S[S_N_REQ])
    S[S_N_REQ] += 1
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


@njit(cache=True)
def _fill(S, F, oi, of, fi, fq, rs_i, rs_q, o, ex, now, lat_ts, lat_resp, lot):
    """Execute ``ex`` of resting order ``o`` at its price (maker); returns the fill log arrays."""
    n = S[S_N_FILLS]
    if n >= fi.shape[0]:
        fi = _grow_rows_i(fi, 2 * fi.shape[0])
        fq = _grow_f(fq, 2 * fq.shape[0])
    s = oi[o, OI_SIDE]
    arr = _respond(S, rs_i, rs_q, now, np.int64(RSP_FILL), o, ex, lat_ts, lat_resp)
    fi[n, FI_TS] = now
    fi[n, FI_LOCAL] = arr
    fi[n, FI_OID] = o
    fi[n, FI_SIDE] = s
    fi[n, FI_TICK] = oi[o, OI_TICK]
    fi[n, FI_MAKER] = 1
    fq[n] = ex
    S[S_N_FILLS] = n + 1
    F[F_XPOS] += ex if s > 0 else -ex
    of[o, OF_FILLED] += ex
    of[o, OF_LEAVES] -= ex
    if of[o, OF_LEAVES] < 0.5 * lot:
        of[o, OF_LEAVES] = 0.0
        oi[o, OI_XSTATE] = 2
        oi[o, OI_RESULT] = R_FILLED
        oi[o, OI_DONE_EXCH] = now
    return fi, fq


@njit(cache=True)
def _refresh_extremes(S, oi, xbuy, xsell):
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


@njit(cache=True)
def _drop_done(S, oi, xbuy, xsell):
    """Remove orders that stopped resting from the exchange's lists."""
    a = 0
    while a < S[S_N_XBUY]:
        if oi[xbuy[a], OI_XSTATE] == 2:
            S[S_N_XBUY] = _remove(xbuy, S[S_N_XBUY], xbuy[a])
        else:
            a += 1
    a = 0
    while a < S[S_N_XSELL]:
        if oi[xsell[a], OI_XSTATE] == 2:
            S[S_N_XSELL] = _remove(xsell, S[S_N_XSELL], xsell[a])
        else:
            a += 1
    _refresh_extremes(S, oi, xbuy, xsell)


@njit(cache=True)
def _queue_depth(S, oi, of, ids, n_ids, t, prev, newq, queue_kind, queue_n):
    for a in range(n_ids):
        o = ids[a]
        if oi[o, OI_TICK] == t:
            of[o, OF_FRONT], of[o, OF_CUM] = on_depth(queue_kind, queue_n, of[o, OF_FRONT], of[o, OF_CUM],
                                                      prev, newq)


@njit(cache=True)
def _cross(S, F, oi, of, fi, fq, rs_i, rs_q, ids, n_ids, s, best_other, now, lat_ts, lat_resp, lot):
    """The other side's best price reached our resting orders: they fill completely."""
    for a in range(n_ids):
        o = ids[a]
        ot = oi[o, OI_TICK]
        if (s > 0 and ot >= best_other) or (s < 0 and ot <= best_other):
            fi, fq = _fill(S, F, oi, of, fi, fq, rs_i, rs_q, o, of[o, OF_LEAVES], now, lat_ts, lat_resp, lot)
    return fi, fq


@njit(cache=True)
def _trade(S, F, oi, of, fi, fq, rs_i, rs_q, ids, n_ids, s, t, tq, now, lat_ts, lat_resp, lot, share):
    """A trade of ``tq`` at tick ``t`` against our side ``s``.

    Orders priced better than the trade were swept: they fill completely. At the trade's price our
    orders are visited in queue (arrival) order; for each, the queue ahead trades first and the
    remainder fills it (partially if the trade is small). With ``share`` the volume one of our
    orders took is gone for our orders behind it (a trade's volume is used once; nautilus#2564);
    without it every order sees the whole trade (hftbacktest 2.4.4's PartialFillExchange)."""
    for a in range(n_ids):
        o = ids[a]
        ot = oi[o, OI_TICK]
        if (s > 0 and ot > t) or (s < 0 and ot < t):
            fi, fq = _fill(S, F, oi, of, fi, fq, rs_i, rs_q, o, of[o, OF_LEAVES], now, lat_ts, lat_resp, lot)
    rem = tq
    last = np.int64(-1)
    while rem > 0.0:
        o = np.int64(-1)
        for a in range(n_ids):  # next of ours at this price in arrival order (ids grow with arrival)
            c = ids[a]
            if oi[c, OI_TICK] == t and c > last and (o < 0 or c < o):
                o = c
        if o < 0:
            break
        last = o
        q = rem if share else tq
        of[o, OF_FRONT], of[o, OF_CUM] = on_trade(of[o, OF_FRONT], of[o, OF_CUM], q)
        ex = min(filled_qty(of[o, OF_FRONT], lot), of[o, OF_LEAVES], q)
        if ex > 0.0:
            of[o, OF_FRONT] = 0.0  # what is left of ours is now at the front
            fi, fq = _fill(S, F, oi, of, fi, fq, rs_i, rs_q, o, ex, now, lat_ts, lat_resp, lot)
            if share:
                rem -= ex
    return fi, fq


@njit(cache=True)
def _on_request(S, F, oi, of, rq, rs_i, rs_q, xbuy, xsell, bq, aq, lo, hi, best_bid, best_ask,
                counters, rate_threshold, rate_decay, lat_ts, lat_resp):
    """An order request reaches the matching engine."""
    slot = S[S_RQ_HEAD] % RING
    S[S_RQ_HEAD] += 1
    now = rq[0, slot]
    o = rq[2, slot]
    rc = decayed(F[F_RC], S[S_RC_TS], now, rate_decay)
    if rq[1, slot] == REQ_NEW:
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
            _refresh_extremes(S, oi, xbuy, xsell)
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


@njit(cache=True)
def _forget(S, oi, lopen, o):
    """The strategy stops tracking order ``o``."""
    if oi[o, OI_LSTATE] != 3:
        oi[o, OI_LSTATE] = 3
        S[S_N_LOPEN] = _remove(lopen, S[S_N_LOPEN], o)
        if S[S_WORK_BUY] == o:
            S[S_WORK_BUY] = -1
        if S[S_WORK_SELL] == o:
            S[S_WORK_SELL] = -1


@njit(cache=True)
def _on_response(S, F, oi, of, rs_i, rs_q, lopen, lot):
    """A response reaches the strategy."""
    slot = S[S_RS_HEAD] % RING
    S[S_RS_HEAD] += 1
    now = rs_i[0, slot]
    rk = rs_i[1, slot]
    o = rs_i[2, slot]
    if rk == RSP_ACCEPTED:
        oi[o, OI_ACK_LOCAL] = now
        if oi[o, OI_LSTATE] == 0:
            oi[o, OI_LSTATE] = 1
    elif rk == RSP_FILL:
        q = rs_q[slot]
        F[F_LPOS] += q if oi[o, OI_SIDE] > 0 else -q
        of[o, OF_LLEAVES] -= q
        if of[o, OF_LLEAVES] < 0.5 * lot:
            _forget(S, oi, lopen, o)
    elif rk == RSP_CANCEL_REJECTED:
        if oi[o, OI_LSTATE] == 2:
            oi[o, OI_LSTATE] = 1  # still live: cancel it again at the next requote
    else:  # rejected, canceled, cancel too late: the order is gone
        if rk == RSP_REJECTED:
            oi[o, OI_ACK_LOCAL] = now
        _forget(S, oi, lopen, o)


@njit(cache=True)
def _rate_ok(S, F, now, cost, guard_threshold, rate_decay):
    """The strategy's own rate-counter estimate: may it spend ``cost`` now? (spends if yes)"""
    v = decayed(F[F_LRC], S[S_LRC_TS], now, rate_decay)
    if v + cost > guard_threshold:
        return False
    F[F_LRC] = v + cost
    S[S_LRC_TS] = now
    return True


@njit(cache=True)
def _send_cancel(S, F, oi, rq, o, now, lat_ts, lat_entry, counters, guard_threshold, rate_decay):
    if not _rate_ok(S, F, now, cancel_cost(now - oi[o, OI_SUBMIT_LOCAL]), guard_threshold, rate_decay):
        counters[C_RATE_GUARD_SKIPS] += 1
        return False
    oi[o, OI_LSTATE] = 2
    oi[o, OI_CANCEL_SENT] = now
    _request(S, rq, now, np.int64(REQ_CANCEL), o, lat_ts, lat_entry)
    counters[C_CANCEL] += 1
    return True


@njit(cache=True)
def _on_timer(S, F, oi, of, rq, lopen, now, fair, best_bid, best_ask, counters, policy_kind, policy_params,
              lot, min_qty, min_cost, tick_size, max_open_per_side, guard_threshold, rate_decay,
              lat_ts, lat_entry):
    """The strategy requotes: policy target -> keep, cancel or replace the working orders."""
    counters[C_REQUOTES] += 1
    bt, bqty, at, aqty = quote(policy_kind, policy_params, now, fair, best_bid, best_ask, F[F_LPOS], tick_size)
    for s in (1, -1):
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
            if n_side >= max_open_per_side or S[S_N_LOPEN] >= lopen.shape[0] - 2:
                counters[C_OPEN_CAP_SKIPS] += 1
            elif not _rate_ok(S, F, now, 1.0, guard_threshold, rate_decay):
                counters[C_RATE_GUARD_SKIPS] += 1
            else:
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


@njit(cache=True)
def run_core(kind, side, tick, qty, exch_ts, local_ts, bb_tick, ba_tick, fair,
             lo, n_ticks,
             lat_ts, lat_entry, lat_resp,
             queue_kind, queue_n,
             rate_threshold, rate_decay, rate_guard,
             lot, min_qty, min_cost, tick_size,
             policy_kind, policy_params,
             requote_ns, end_ts, max_open_per_side, share_trades):
    """Run the loop over all rows; see the module docstring. Returns the order table, fill log,
    counters, the loop state (positions, rate counter) and whether a queue overflowed."""
    n = kind.shape[0]
    bq = np.zeros(n_ticks)
    aq = np.zeros(n_ticks)
    hi = lo + n_ticks
    S = np.zeros(N_S, np.int64)
    F = np.zeros(N_F)
    S[S_MAX_BUY] = -1
    S[S_MIN_SELL] = BIG
    S[S_WORK_BUY] = -1
    S[S_WORK_SELL] = -1
    ocap = 1024
    oi = _grow_rows_i(np.empty((0, N_OI), np.int64), ocap)
    of = np.zeros((ocap, N_OF))
    fi = _grow_rows_i(np.empty((0, N_FI), np.int64), 1024)
    fq = np.zeros(1024)
    counters = np.zeros(N_C, np.int64)
    xbuy = np.empty(256, np.int64)
    xsell = np.empty(256, np.int64)
    lopen = np.empty(256, np.int64)
    rq = np.empty((3, RING), np.int64)
    rs_i = np.empty((3, RING), np.int64)
    rs_q = np.empty(RING)
    guard_threshold = rate_threshold * rate_guard
    share = share_trades != 0
    BUY = np.int64(1)  # variables, not literals: one compiled specialisation per helper
    SELL = np.int64(-1)
    i = 0
    j = -1
    next_timer = BIG
    if n > 0:
        next_timer = (local_ts[0] // requote_ns + 1) * requote_ns

    while S[S_OVERFLOW] == 0:
        t_req = rq[0, S[S_RQ_HEAD] % RING] if S[S_RQ_HEAD] < S[S_RQ_TAIL] else BIG
        t_rsp = rs_i[0, S[S_RS_HEAD] % RING] if S[S_RS_HEAD] < S[S_RS_TAIL] else BIG
        t_tmr = next_timer if next_timer <= end_ts else BIG
        t_other = min(t_req, t_rsp, t_tmr)

        # market rows (exchange side), up to and including the next non-market action's time; a
        # fill's report can be due before that action, so it then becomes the next action
        n_fills = S[S_N_FILLS]
        while i < n and exch_ts[i] <= t_other:
            if S[S_N_FILLS] != n_fills:
                n_fills = S[S_N_FILLS]
                t_rsp = rs_i[0, S[S_RS_HEAD] % RING]
                if t_rsp < t_other:
                    t_other = t_rsp
                    if exch_ts[i] > t_other:
                        break
            k = kind[i]
            if k == DEPTH:
                t = tick[i]
                newq = qty[i]
                if side[i] > 0:
                    prev = bq[t - lo]
                    bq[t - lo] = newq
                    if S[S_N_XBUY] > 0:
                        _queue_depth(S, oi, of, xbuy, S[S_N_XBUY], t, prev, newq, queue_kind, queue_n)
                    if bb_tick[i] >= S[S_MIN_SELL]:
                        fi, fq = _cross(S, F, oi, of, fi, fq, rs_i, rs_q, xsell, S[S_N_XSELL], SELL, bb_tick[i],
                                        exch_ts[i], lat_ts, lat_resp, lot)
                        _drop_done(S, oi, xbuy, xsell)
                else:
                    prev = aq[t - lo]
                    aq[t - lo] = newq
                    if S[S_N_XSELL] > 0:
                        _queue_depth(S, oi, of, xsell, S[S_N_XSELL], t, prev, newq, queue_kind, queue_n)
                    if ba_tick[i] <= S[S_MAX_BUY]:
                        fi, fq = _cross(S, F, oi, of, fi, fq, rs_i, rs_q, xbuy, S[S_N_XBUY], BUY, ba_tick[i],
                                        exch_ts[i], lat_ts, lat_resp, lot)
                        _drop_done(S, oi, xbuy, xsell)
            elif k == TRADE:
                t = tick[i]
                if side[i] > 0:  # taker buy meets our asks
                    if t >= S[S_MIN_SELL]:
                        fi, fq = _trade(S, F, oi, of, fi, fq, rs_i, rs_q, xsell, S[S_N_XSELL], SELL, t, qty[i],
                                        exch_ts[i], lat_ts, lat_resp, lot, share)
                        _drop_done(S, oi, xbuy, xsell)
                else:  # taker sell meets our bids
                    if t <= S[S_MAX_BUY]:
                        fi, fq = _trade(S, F, oi, of, fi, fq, rs_i, rs_q, xbuy, S[S_N_XBUY], BUY, t, qty[i],
                                        exch_ts[i], lat_ts, lat_resp, lot, share)
                        _drop_done(S, oi, xbuy, xsell)
            elif k == CLEAR:
                if side[i] > 0:
                    bq[:] = 0.0
                else:
                    aq[:] = 0.0
            i += 1
        if S[S_N_FILLS] != n_fills:
            t_rsp = rs_i[0, S[S_RS_HEAD] % RING]
            t_other = min(t_other, t_rsp)

        if t_other == BIG:
            break
        if t_rsp <= t_req and t_rsp <= t_tmr:
            _on_response(S, F, oi, of, rs_i, rs_q, lopen, lot)
        elif t_req <= t_tmr:
            _on_request(S, F, oi, of, rq, rs_i, rs_q, xbuy, xsell, bq, aq, lo, hi,
                        bb_tick[i - 1] if i > 0 else NO_BID, ba_tick[i - 1] if i > 0 else NO_ASK,
                        counters, rate_threshold, rate_decay, lat_ts, lat_resp)
        else:
            now = t_tmr
            next_timer += requote_ns
            while j + 1 < n and local_ts[j + 1] <= now:
                j += 1
            if j < 0 or bb_tick[j] == NO_BID or ba_tick[j] == NO_ASK:
                counters[C_NO_BOOK_SKIPS] += 1
                continue
            if S[S_N_ORDERS] + 2 >= oi.shape[0]:
                oi = _grow_rows_i(oi, 2 * oi.shape[0])
                of = _grow_rows_f(of, 2 * of.shape[0])
            _on_timer(S, F, oi, of, rq, lopen, now, fair[j], bb_tick[j], ba_tick[j], counters, policy_kind,
                      policy_params, lot, min_qty, min_cost, tick_size, max_open_per_side, guard_threshold,
                      rate_decay, lat_ts, lat_entry)

    counters[C_ROWS] = i
    counters[C_FILLS] = S[S_N_FILLS]
    n_o = S[S_N_ORDERS]
    n_f = S[S_N_FILLS]
    return (oi[:n_o], of[:n_o], fi[:n_f], fq[:n_f], counters, F[F_XPOS], F[F_LPOS], F[F_RC_MAX],
            S[S_OVERFLOW] != 0)
