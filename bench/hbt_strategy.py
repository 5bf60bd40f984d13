"""The hftbacktest side's quoting loop for ``bench_backtest.py``, in its own module so numba can
cache its machine code (``cache=True``): the warm whole-process run then loads it from the cache,
as our warm run loads ours -- a like-for-like warm start.

It is the same decision and order handling as our engine's requote step with the plain
cancel-and-replace rule (the same jitted ``baseline.decide``, rounded as the pipeline rounds). Two things make it the *same* loop: the timer grid starts from
the first event (``current_timestamp`` is i64::MAX until the first ``elapse``), and the position
the policy skews by is summed from fill reports, because hftbacktest 2.4.4's local state drops
partial fills (hftbacktest#299, #316).
"""

from __future__ import annotations

import numpy as np
from hftbacktest import GTX, LIMIT, NEW
from hftbacktest.order import PARTIALLY_FILLED
from numba import njit

from mm_core.strategy.baseline import quote_ticks as baseline_quote

CANCEL_REQ = 4  # hftbacktest's order.req value while a cancel is in flight


@njit(cache=True)
def quote_loop(hbt, params, requote_ns, tick_size, lot, min_qty, min_cost, max_open, o_log, f_log, ts_log):
    """Requote every ``requote_ns`` until the data ends; logs orders (by id) and fill reports.

    ``o_log[k]``: -, side, tick, qty, filled so far; ``f_log[n]``: order id, -, qty;
    ``ts_log[k, 0]``: submit time of order k, ``ts_log[n, 1]``: exchange time of fill report n.
    Returns (requotes, last mid, orders sent, fill reports)."""
    asset = 0
    oid = np.uint64(0)
    hbt.elapse(0)
    now = hbt.current_timestamp
    hbt.elapse((now // requote_ns + 1) * requote_ns - now)  # align to the same timer grid
    requotes = 0
    last_mid = np.nan
    pos = 0.0
    n_f = 0
    while True:
        values = hbt.orders(asset).values()  # fill reports received since the last requote
        while values.has_next():
            o = values.get()
            k = np.int64(o.order_id)
            done = o.qty - o.leaves_qty
            if done > o_log[k, 4] + 0.5 * lot:
                ex = done - o_log[k, 4]
                o_log[k, 4] = done
                pos += ex if o.side == 1 else -ex
                if n_f < f_log.shape[0]:
                    f_log[n_f, 0] = k
                    ts_log[n_f, 1] = o.exch_timestamp
                    f_log[n_f, 2] = ex
                    n_f += 1
        hbt.clear_inactive_orders(asset)
        depth = hbt.depth(asset)
        bb = depth.best_bid_tick
        ba = depth.best_ask_tick
        if bb > -(1 << 62) and ba < (1 << 62):
            requotes += 1
            fair = (bb + ba) * 0.5 * tick_size
            last_mid = fair
            bt, bq, at, aq = baseline_quote(params, fair, bb, ba, pos, tick_size)
            for s in (1, -1):
                tt = bt if s > 0 else at
                q = bq if s > 0 else aq
                q = np.floor(q / lot + 1e-9) * lot
                want = q > 0.0 and q >= min_qty and q * tt * tick_size >= min_cost
                keep = False
                n_open = 0
                values = hbt.orders(asset).values()
                while values.has_next():
                    o = values.get()
                    if o.side != s:
                        continue
                    live = o.status == NEW or o.status == PARTIALLY_FILLED or o.req == NEW
                    if not live:
                        continue
                    n_open += 1
                    if o.req == CANCEL_REQ:
                        continue
                    if want and o.price_tick == tt and not keep:
                        keep = True
                    elif o.cancellable:
                        hbt.cancel(asset, o.order_id, False)
                if want and not keep and n_open < max_open and oid < o_log.shape[0]:
                    k = np.int64(oid)
                    ts_log[k, 0] = hbt.current_timestamp
                    o_log[k, 1] = s
                    o_log[k, 2] = tt
                    o_log[k, 3] = q
                    if s > 0:
                        hbt.submit_buy_order(asset, oid, tt * tick_size, q, GTX, LIMIT, False)
                    else:
                        hbt.submit_sell_order(asset, oid, tt * tick_size, q, GTX, LIMIT, False)
                    oid += np.uint64(1)
        if hbt.elapse(requote_ns) != 0:
            break
    return requotes, last_mid, np.int64(oid), n_f
