"""The exchange side: one matching and queue model for the backtest, the simulator's private side and
paper fills.

Our orders never change the public book in the data (the market is exogenous; hftbacktest's
assumption too). What this module decides is what happens *to our orders* as the market moves:

- **new order** (:func:`x_new`): Kraken's per-pair rate counter (+1; rejected above the threshold),
  market status (no new orders in cancel_only / maintenance), post-only check against the best
  opposite price on arrival (crossing = rejected), then it joins the queue behind the displayed
  size at its price;
- **cancel** (:func:`x_cancel`): rate counter (+8 ... +0 by order age), too late if already done;
- **amend** (:func:`x_amend`, Kraken's atomic ``amend_order``): rate counter (+1 plus +3/+2/+1 by
  age), too late if done; new total quantity at or below the filled quantity cancels the rest (with
  the cancel penalty, as Kraken charges); a price change that would cross is rejected (post-only)
  and the order stays as it was. Queue position (Kraken: "priority kept where possible") -- our
  decision, the usual price-time rule: a **quantity decrease at the same price keeps the order's
  place**; a **price change** or a **quantity increase** puts it at the back of the queue at its
  (new) price, like a new order but with the same id and without a gap in the quote;
- **depth row** (:func:`x_depth`): the queue model updates the size ahead of our orders at that
  price; a bid row that lifts the best bid to/through our ask (or an ask row through our bid) fills
  that order completely -- someone crossed it;
- **trade** (:func:`x_trade`): taker buys fill our asks priced below the trade completely
  (trade-through); at our price the trade first consumes the queue ahead, the rest fills us
  (partially if small); several of our orders at one price are visited in arrival order and share
  the trade's volume (``share=0``: each sees the whole trade, as hftbacktest 2.4.4 does).

State lives in caller-owned arrays (no allocation inside): the order table ``oi``/``of`` (columns
``OI_*``/``OF_*``; callers may use further columns of the same rows for their own bookkeeping),
the exchange state ``X`` (int64, ``X_*``) and ``XF`` (float64, ``XF_*``), the resting-order lists
``xbuy``/``xsell``, the displayed book ``bq``/``aq`` (dense, tick ``lo + k``) and the fill log
``fi``/``fq``. Every function exists twice from one source: ``x_*`` with CPython wrappers, for
Python callers on their own arrays (:class:`MatchingState` wraps them), and the same source
compiled as inlined helpers for the backtest loop (:data:`LOOP`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mm_core.backtest import jit_cache

jit_cache.install()  # before the jitted functions below are defined (see jit_cache)

from mm_core.backtest.jit_compile import loop_code  # noqa: E402
from mm_core.backtest.queue import RISK_AVERSE, on_depth  # noqa: E402
from mm_core.backtest.rate_limit import amend_cost, cancel_cost, decayed  # noqa: E402

BIG = np.int64(1) << np.int64(62)
NO_BID = -1
NO_ASK = 1 << 62

# order table, integer columns (exchange side first; OI_* >= N_OI_X belong to the caller)
OI_SIDE = 0
OI_TICK = 1  # price at the exchange (after amends)
OI_ARRIVE_EXCH = 2  # exchange time the new-order request arrived (-1 = not yet)
OI_XSTATE = 3  # exchange view: XS_*
OI_RESULT = 4  # final outcome, RES_*
OI_DONE_EXCH = 5  # exchange time it stopped resting / was rejected
OI_N_AMENDS = 6  # amends applied
N_OI_X = 7
# order table, float columns
OF_QTY = 0  # order quantity (total, after amends)
OF_LEAVES = 1  # exchange view
OF_FRONT = 2  # queue ahead (queue model state)
OF_CUM = 3  # trades at our price since the last size change (queue model state)
OF_FRONT0 = 4  # queue ahead when it joined the book (or its latest price/size-up amend)
OF_FILLED = 5
N_OF_X = 6

XS_IN_FLIGHT = 0
XS_RESTING = 1
XS_DONE = 2

RES_OPEN = 0
RES_FILLED = 1
RES_CANCELED = 2
RES_REJ_POST_ONLY = 3
RES_REJ_RATE = 4
RES_REJ_MARKET = 5

# replies of x_new / x_cancel / x_amend (also the response kinds of the backtest's queues)
RSP_ACCEPTED = 1
RSP_REJECTED = 2
RSP_FILL = 3
RSP_CANCELED = 4
RSP_CANCEL_REJECTED = 5  # rate counter: the order stays
RSP_CANCEL_TOO_LATE = 6
RSP_AMENDED = 7
RSP_AMEND_REJECTED = 8  # rate counter or post-only: the order stays as it was
RSP_AMEND_TOO_LATE = 9

# exchange state, int64
X_N_BUY = 0
X_N_SELL = 1
X_MAX_BUY = 2  # highest resting buy tick (-1 = none)
X_MIN_SELL = 3  # lowest resting sell tick (BIG = none)
X_RC_TS = 4  # time of the rate counter's last update
X_N_FILLS = 5
X_MARKET = 6  # market status (mm_core.strategy.view MKT_*)
X_REJ_POST_ONLY = 7
X_REJ_RATE_NEW = 8
X_REJ_RATE_CANCEL = 9
X_CANCEL_TOO_LATE = 10
X_ACCEPTED = 11
X_AMENDED = 12
X_REJ_RATE_AMEND = 13
X_REJ_POST_ONLY_AMEND = 14
X_AMEND_TOO_LATE = 15
X_REJ_MARKET = 16
N_X = 17
# exchange state, float64
XF_RC = 0  # Kraken's per-pair rate counter
XF_RC_MAX = 1
XF_POS = 2  # true position (base units)
XF_CASH = 3  # quote currency, before fees
N_XF = 4

# fill log columns (int64; qty in the float log fq)
FI_TS = 0  # exchange time
FI_LOCAL = 1  # when the owner learns it (set by the caller)
FI_OID = 2
FI_SIDE = 3
FI_TICK = 4
FI_MAKER = 5
N_FI = 6

FILL_ROOM = 600  # fills one market row can produce at most: every resting order once (2 x 256)

MKT_ONLINE = 0
MKT_CANCEL_ONLY = 2
MKT_MAINTENANCE = 4


# ------------------------------------------------------------------------------------------------
# Plain-Python sources; compiled below as public x_* functions and as inlined loop helpers.


def _refresh(X, oi, xbuy, xsell):
    """Remove orders that stopped resting from the resting lists (swap with the last entry) and
    recompute the highest resting buy / lowest resting sell tick."""
    for side_k in range(2):
        ids = xbuy if side_k == 0 else xsell
        nk = X_N_BUY if side_k == 0 else X_N_SELL
        n_ids = X[nk]
        a = 0
        while a < n_ids:
            if oi[ids[a], OI_XSTATE] == XS_DONE:
                ids[a] = ids[n_ids - 1]
                n_ids -= 1
            else:
                a += 1
        X[nk] = n_ids
    m = np.int64(-1)
    for a in range(X[X_N_BUY]):
        if oi[xbuy[a], OI_TICK] > m:
            m = oi[xbuy[a], OI_TICK]
    X[X_MAX_BUY] = m
    m = BIG
    for a in range(X[X_N_SELL]):
        if oi[xsell[a], OI_TICK] < m:
            m = oi[xsell[a], OI_TICK]
    X[X_MIN_SELL] = m


def _fill_side(X, XF, oi, of, xbuy, xsell, s, lim, t, tq, now, share, lot, fi, fq):
    """Fill our side-``s`` orders: those priced at or through ``lim`` completely (the other side's
    best price reached them, or a trade swept them); then, for a trade of ``tq`` at ``t``, our
    orders at ``t`` in queue (arrival) order: the queue ahead trades first, the remainder fills the
    order (partially if the trade is small). With ``share`` what one of ours took is gone for ours
    behind it (a trade's volume is used once; nautilus#2564); without it every order sees the whole
    trade (hftbacktest 2.4.4's PartialFillExchange). Returns the number of fills logged."""
    ids = xbuy if s > 0 else xsell
    n_ids = X[X_N_BUY] if s > 0 else X[X_N_SELL]
    a = 0
    rem = tq
    last = np.int64(-1)
    n0 = X[X_N_FILLS]
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
        # maker fill of ``ex`` of ``o`` at its price; the caller guarantees FILL_ROOM in the log
        nf = X[X_N_FILLS]
        fi[nf, FI_TS] = now
        fi[nf, FI_LOCAL] = -1
        fi[nf, FI_OID] = o
        fi[nf, FI_SIDE] = s
        fi[nf, FI_TICK] = oi[o, OI_TICK]
        fi[nf, FI_MAKER] = 1
        fq[nf] = ex
        X[X_N_FILLS] = nf + 1
        XF[XF_POS] += ex if s > 0 else -ex
        of[o, OF_FILLED] += ex
        of[o, OF_LEAVES] -= ex
        if of[o, OF_LEAVES] < 0.5 * lot:
            of[o, OF_LEAVES] = 0.0
            oi[o, OI_XSTATE] = XS_DONE
            oi[o, OI_RESULT] = RES_FILLED
            oi[o, OI_DONE_EXCH] = now
    _refresh(X, oi, xbuy, xsell)
    return X[X_N_FILLS] - n0


def _x_depth(X, XF, oi, of, xbuy, xsell, bq, aq, lo, side, t, newq, best_bid, best_ask, now, queue_kind,
             queue_n, share, lot, fi, fq):
    """A displayed level changed: ``side`` +1 bid / -1 ask, tick ``t``, new size ``newq`` (0 deletes);
    ``best_bid``/``best_ask`` are the book's best ticks after the change. Returns fills logged."""
    if side > 0:  # bid row: queue ahead of our bids; best bid vs our asks
        prev = bq[t - lo]
        bq[t - lo] = newq
        mine = xbuy
        n_mine = X[X_N_BUY]
        s = np.int64(-1)
        lim = best_bid
        hit = lim >= X[X_MIN_SELL]
    else:
        prev = aq[t - lo]
        aq[t - lo] = newq
        mine = xsell
        n_mine = X[X_N_SELL]
        s = np.int64(1)
        lim = best_ask
        hit = lim <= X[X_MAX_BUY]
    for a in range(n_mine):
        o = mine[a]
        if oi[o, OI_TICK] == t:
            if queue_kind == RISK_AVERSE:  # queue.on_depth's first case, without the call
                of[o, OF_FRONT] = min(of[o, OF_FRONT], newq)
                of[o, OF_CUM] = 0.0
            else:
                of[o, OF_FRONT], of[o, OF_CUM] = on_depth(queue_kind, queue_n, of[o, OF_FRONT], of[o, OF_CUM],
                                                          prev, newq)
    if hit and X[X_MARKET] != MKT_MAINTENANCE:
        return _fill_side(X, XF, oi, of, xbuy, xsell, s, lim, t, 0.0, now, share, lot, fi, fq)
    return np.int64(0)


def _x_trade(X, XF, oi, of, xbuy, xsell, side, t, tq, now, share, lot, fi, fq):
    """A public trade of ``tq`` at tick ``t``; ``side`` is the taker side (+1 buy meets our asks).
    Returns fills logged."""
    s = np.int64(-1) if side > 0 else np.int64(1)
    hit = t >= X[X_MIN_SELL] if s < 0 else t <= X[X_MAX_BUY]
    if hit and X[X_MARKET] != MKT_MAINTENANCE:
        return _fill_side(X, XF, oi, of, xbuy, xsell, s, t + s, t, tq, now, share, lot, fi, fq)
    return np.int64(0)


def _x_clear(X, bq, aq, side):
    """A snapshot follows: drop one side of the displayed book."""
    if side > 0:
        for c in range(bq.shape[0]):
            bq[c] = 0.0
    else:
        for c in range(aq.shape[0]):
            aq[c] = 0.0


def _spend(X, XF, now, rate_decay):
    """The rate counter decayed to ``now`` (not stored)."""
    return decayed(XF[XF_RC], X[X_RC_TS], now, rate_decay)


def _book_rc(X, XF, now, rc):
    XF[XF_RC] = rc
    X[X_RC_TS] = now
    if rc > XF[XF_RC_MAX]:
        XF[XF_RC_MAX] = rc


def _x_new(X, XF, oi, of, xbuy, xsell, bq, aq, lo, o, now, best_bid, best_ask, rate_threshold, rate_decay):
    """Order row ``o`` (side, tick, qty filled in by the caller) reaches the matching engine at
    ``now``. Returns RSP_ACCEPTED or RSP_REJECTED (the reason in ``oi[o, OI_RESULT]``)."""
    rc = _spend(X, XF, now, rate_decay)
    oi[o, OI_ARRIVE_EXCH] = now
    ot = oi[o, OI_TICK]
    s = oi[o, OI_SIDE]
    rsp = RSP_ACCEPTED
    if rc + 1.0 > rate_threshold:
        rsp = RSP_REJECTED
        oi[o, OI_RESULT] = RES_REJ_RATE
        X[X_REJ_RATE_NEW] += 1
    else:
        rc += 1.0
        if X[X_MARKET] == MKT_CANCEL_ONLY or X[X_MARKET] == MKT_MAINTENANCE:
            rsp = RSP_REJECTED
            oi[o, OI_RESULT] = RES_REJ_MARKET
            X[X_REJ_MARKET] += 1
        elif (s > 0 and ot >= best_ask) or (s < 0 and ot <= best_bid):
            rsp = RSP_REJECTED
            oi[o, OI_RESULT] = RES_REJ_POST_ONLY
            X[X_REJ_POST_ONLY] += 1
    if rsp == RSP_REJECTED:
        oi[o, OI_XSTATE] = XS_DONE
        oi[o, OI_DONE_EXCH] = now
    else:
        X[X_ACCEPTED] += 1
        front = 0.0
        if ot >= lo and ot < lo + bq.shape[0]:
            front = bq[ot - lo] if s > 0 else aq[ot - lo]
        of[o, OF_FRONT] = front
        of[o, OF_FRONT0] = front
        of[o, OF_CUM] = 0.0
        of[o, OF_LEAVES] = of[o, OF_QTY]
        oi[o, OI_XSTATE] = XS_RESTING
        oi[o, OI_RESULT] = RES_OPEN
        if s > 0:
            xbuy[X[X_N_BUY]] = o
            X[X_N_BUY] += 1
            if ot > X[X_MAX_BUY]:
                X[X_MAX_BUY] = ot
        else:
            xsell[X[X_N_SELL]] = o
            X[X_N_SELL] += 1
            if ot < X[X_MIN_SELL]:
                X[X_MIN_SELL] = ot
    _book_rc(X, XF, now, rc)
    return rsp


def _x_cancel(X, XF, oi, of, xbuy, xsell, o, now, rate_threshold, rate_decay):
    """A cancel of order ``o`` reaches the matching engine. Returns RSP_CANCELED,
    RSP_CANCEL_REJECTED (rate counter) or RSP_CANCEL_TOO_LATE."""
    rc = _spend(X, XF, now, rate_decay)
    if oi[o, OI_XSTATE] != XS_RESTING:
        rsp = RSP_CANCEL_TOO_LATE
        X[X_CANCEL_TOO_LATE] += 1
    else:
        cost = cancel_cost(now - oi[o, OI_ARRIVE_EXCH])
        if rc + cost > rate_threshold:
            rsp = RSP_CANCEL_REJECTED
            X[X_REJ_RATE_CANCEL] += 1
        else:
            rc += cost
            rsp = RSP_CANCELED
            oi[o, OI_XSTATE] = XS_DONE
            oi[o, OI_RESULT] = RES_CANCELED
            oi[o, OI_DONE_EXCH] = now
            _refresh(X, oi, xbuy, xsell)
    _book_rc(X, XF, now, rc)
    return rsp


def _x_amend(X, XF, oi, of, xbuy, xsell, bq, aq, lo, o, now, new_tick, new_qty, best_bid, best_ask,
             rate_threshold, rate_decay, lot):
    """An amend of order ``o`` to price ``new_tick`` and total quantity ``new_qty`` reaches the
    matching engine (queue rules in the module docstring). Returns RSP_AMENDED, RSP_CANCELED (the
    new quantity is at or below the filled one), RSP_AMEND_REJECTED or RSP_AMEND_TOO_LATE."""
    rc = _spend(X, XF, now, rate_decay)
    if oi[o, OI_XSTATE] != XS_RESTING:
        X[X_AMEND_TOO_LATE] += 1
        _book_rc(X, XF, now, rc)
        return RSP_AMEND_TOO_LATE
    age = now - oi[o, OI_ARRIVE_EXCH]
    s = oi[o, OI_SIDE]
    if new_qty <= of[o, OF_FILLED] + 0.5 * lot:  # amended down to what is filled: the rest is cancelled
        cost = cancel_cost(age)
        if rc + cost > rate_threshold:
            X[X_REJ_RATE_AMEND] += 1
            _book_rc(X, XF, now, rc)
            return RSP_AMEND_REJECTED
        rc += cost
        of[o, OF_QTY] = of[o, OF_FILLED]
        of[o, OF_LEAVES] = 0.0
        oi[o, OI_XSTATE] = XS_DONE
        oi[o, OI_RESULT] = RES_CANCELED
        oi[o, OI_DONE_EXCH] = now
        oi[o, OI_N_AMENDS] += 1
        X[X_AMENDED] += 1
        _refresh(X, oi, xbuy, xsell)
        _book_rc(X, XF, now, rc)
        return RSP_CANCELED
    cost = amend_cost(age)
    if rc + cost > rate_threshold:
        X[X_REJ_RATE_AMEND] += 1
        _book_rc(X, XF, now, rc)
        return RSP_AMEND_REJECTED
    if new_tick != oi[o, OI_TICK] and ((s > 0 and new_tick >= best_ask) or (s < 0 and new_tick <= best_bid)):
        rc += cost  # Kraken counts a request that fails validation
        X[X_REJ_POST_ONLY_AMEND] += 1
        _book_rc(X, XF, now, rc)
        return RSP_AMEND_REJECTED
    rc += cost
    new_leaves = new_qty - of[o, OF_FILLED]
    if new_tick != oi[o, OI_TICK] or new_leaves > of[o, OF_LEAVES] + 0.5 * lot:
        # loses priority: behind everything displayed at the (new) price
        front = 0.0
        if new_tick >= lo and new_tick < lo + bq.shape[0]:
            front = bq[new_tick - lo] if s > 0 else aq[new_tick - lo]
        of[o, OF_FRONT] = front
        of[o, OF_FRONT0] = front
        of[o, OF_CUM] = 0.0
    oi[o, OI_TICK] = new_tick
    of[o, OF_QTY] = new_qty
    of[o, OF_LEAVES] = new_leaves
    oi[o, OI_N_AMENDS] += 1
    X[X_AMENDED] += 1
    _refresh(X, oi, xbuy, xsell)
    _book_rc(X, XF, now, rc)
    return RSP_AMENDED


# ------------------------------------------------------------------------------------------------
# Compiled forms. The loop's helpers are force-inlined into it by LLVM (no call passing ~20 array
# structs per row); Python callers get ordinary dispatchers, compiled on first call.

_SOURCES = {"refresh": _refresh, "fill_side": _fill_side, "x_depth": _x_depth, "x_trade": _x_trade,
            "x_clear": _x_clear, "spend": _spend, "book_rc": _book_rc, "x_new": _x_new, "x_cancel": _x_cancel,
            "x_amend": _x_amend}


def _compile_family(**opts):
    """Compile every source with ``opts``; each function's globals see the family's own members, so
    a loop helper only ever calls loop helpers."""
    import types

    fam: dict[str, object] = {}
    g = dict(globals())
    for name, fn in _SOURCES.items():
        py = types.FunctionType(fn.__code__, g, fn.__name__)
        py.__qualname__ = fn.__name__ + ("_inl" if opts.get("forceinline") else "_py")
        py.__doc__ = fn.__doc__
        if opts.get("forceinline"):
            loop_code(py)  # only the loop's copies: Python callers may pass any arrays
        fam[name] = njit(cache=True, nogil=True, error_model="numpy", **opts)(py)
    # the sources call each other by their module names: point those at this family's members
    g.update({"_refresh": fam["refresh"], "_fill_side": fam["fill_side"], "_spend": fam["spend"],
              "_book_rc": fam["book_rc"]})
    return fam


LOOP = _compile_family(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
_PUBLIC = _compile_family()
x_depth = _PUBLIC["x_depth"]
x_trade = _PUBLIC["x_trade"]
x_clear = _PUBLIC["x_clear"]
x_new = _PUBLIC["x_new"]
x_cancel = _PUBLIC["x_cancel"]
x_amend = _PUBLIC["x_amend"]


class MatchingState:
    """The arrays of one matching engine (one account, one instrument) and Python methods over them.

    For Python callers (the simulator's private side, paper fills): the same compiled functions as
    the backtest loop. ``lo``/``n_ticks`` bound the dense displayed book (prices outside it still
    trade and fill; only their queue estimate is 0). Order ids are row numbers; fills append to
    ``fi``/``fq`` (``n_fills`` rows), the caller reads them after each call.
    """

    def __init__(self, lo: int, n_ticks: int, *, rate_threshold: float = 60.0, rate_decay: float = 1.0,
                 lot: float = 1e-8, queue_kind: int = RISK_AVERSE, queue_n: float = 2.0, share: bool = True,
                 capacity: int = 1024, max_resting: int = 256):
        self.lo = np.int64(lo)
        self.rate_threshold = float(rate_threshold)
        self.rate_decay = float(rate_decay)
        self.lot = float(lot)
        self.queue_kind = np.int64(queue_kind)
        self.queue_n = float(queue_n)
        self.share = bool(share)
        self.X = np.zeros(N_X, np.int64)
        self.X[X_MAX_BUY] = -1
        self.X[X_MIN_SELL] = BIG
        self.XF = np.zeros(N_XF, np.float64)
        self.bq = np.zeros(int(n_ticks), np.float64)
        self.aq = np.zeros(int(n_ticks), np.float64)
        self.oi = np.full((capacity, N_OI_X), -1, np.int64)
        self.of = np.zeros((capacity, N_OF_X), np.float64)
        self.fi = np.full((capacity, N_FI), -1, np.int64)
        self.fq = np.zeros(capacity, np.float64)
        self.xbuy = np.zeros(max_resting, np.int64)
        self.xsell = np.zeros(max_resting, np.int64)
        self.n_orders = 0
        self.best_bid = np.int64(NO_BID)
        self.best_ask = np.int64(NO_ASK)

    @property
    def n_fills(self) -> int:
        return int(self.X[X_N_FILLS])

    @property
    def position(self) -> float:
        return float(self.XF[XF_POS])

    @property
    def rate_counter(self) -> float:
        return float(self.XF[XF_RC])

    def _room(self) -> None:
        if self.fi.shape[0] - self.n_fills < FILL_ROOM:
            n = self.fi.shape[0]
            self.fi = np.concatenate([self.fi, np.full((n, N_FI), -1, np.int64)])
            self.fq = np.concatenate([self.fq, np.zeros(n, np.float64)])
        if self.n_orders + 1 >= self.oi.shape[0]:
            n = self.oi.shape[0]
            self.oi = np.concatenate([self.oi, np.full((n, N_OI_X), -1, np.int64)])
            self.of = np.concatenate([self.of, np.zeros((n, N_OF_X), np.float64)])

    def set_market(self, status: int) -> None:
        """Market status (``mm_core.strategy.view.MKT_*``): cancel_only and maintenance refuse new
        orders and amends; maintenance stops matching."""
        self.X[X_MARKET] = status

    def depth(self, side: int, tick: int, qty: float, now: int, best_bid: int, best_ask: int) -> int:
        """A displayed level changed; returns how many fills it produced (rows ``n_fills - k ...``)."""
        self._room()
        self.best_bid, self.best_ask = np.int64(best_bid), np.int64(best_ask)
        return int(x_depth(self.X, self.XF, self.oi, self.of, self.xbuy, self.xsell, self.bq, self.aq, self.lo,
                           np.int64(side), np.int64(tick), float(qty), self.best_bid, self.best_ask, np.int64(now),
                           self.queue_kind, self.queue_n, self.share, self.lot, self.fi, self.fq))

    def trade(self, side: int, tick: int, qty: float, now: int) -> int:
        """A public trade (``side`` = taker side); returns how many fills it produced."""
        self._room()
        return int(x_trade(self.X, self.XF, self.oi, self.of, self.xbuy, self.xsell, np.int64(side),
                           np.int64(tick), float(qty), np.int64(now), self.share, self.lot, self.fi, self.fq))

    def clear(self, side: int) -> None:
        x_clear(self.X, self.bq, self.aq, np.int64(side))

    def new_order(self, side: int, tick: int, qty: float, now: int) -> tuple[int, int]:
        """Place a post-only limit order; returns ``(order_id, reply)`` (RSP_ACCEPTED / RSP_REJECTED)."""
        self._room()
        o = self.n_orders
        self.n_orders += 1
        self.oi[o, :] = -1
        self.of[o, :] = 0.0
        self.oi[o, OI_SIDE] = 1 if side > 0 else -1
        self.oi[o, OI_TICK] = tick
        self.oi[o, OI_XSTATE] = XS_IN_FLIGHT
        self.oi[o, OI_N_AMENDS] = 0
        self.of[o, OF_QTY] = qty
        rsp = x_new(self.X, self.XF, self.oi, self.of, self.xbuy, self.xsell, self.bq, self.aq, self.lo,
                    np.int64(o), np.int64(now), self.best_bid, self.best_ask, self.rate_threshold, self.rate_decay)
        return o, int(rsp)

    def cancel(self, order_id: int, now: int) -> int:
        return int(x_cancel(self.X, self.XF, self.oi, self.of, self.xbuy, self.xsell, np.int64(order_id),
                            np.int64(now), self.rate_threshold, self.rate_decay))

    def amend(self, order_id: int, now: int, tick: int, qty: float) -> int:
        """Amend to ``tick`` and total quantity ``qty`` (Kraken's ``order_qty``)."""
        return int(x_amend(self.X, self.XF, self.oi, self.of, self.xbuy, self.xsell, self.bq, self.aq, self.lo,
                           np.int64(order_id), np.int64(now), np.int64(tick), float(qty), self.best_bid,
                           self.best_ask, self.rate_threshold, self.rate_decay, self.lot))

    def fills(self, start: int = 0) -> dict[str, np.ndarray]:
        """Fills logged from row ``start`` on, as columns."""
        n = self.n_fills
        fi, fq = self.fi[start:n], self.fq[start:n]
        return {"ts": fi[:, FI_TS].copy(), "order_id": fi[:, FI_OID].copy(), "side": fi[:, FI_SIDE].copy(),
                "tick": fi[:, FI_TICK].copy(), "qty": fq.copy()}
