"""Quote target -> order actions, within Kraken's rules: deadband, max order age, minimum resting
time, amend before cancel+new, and a budget against the per-pair rate counter.

Why this is its own step: the target moves on every tick of the fair mid, but every order action
costs rate-counter points that decay at 1/s on the starter tier, and cancelling a young order costs
the most (+8 under 5 s). Cancel+new on every move is throttled live within seconds. So per side:

- the **working order** is the youngest order on that side that is not being cancelled; any other
  live order on that side is a leftover and is cancelled;
- no target (size 0) -> cancel the working order;
- no working order -> **new** order at the target (if the open-order cap and the budget allow);
- the target price moved beyond the **deadband** (``deadband_ticks``, or ``deadband_bps`` of the
  fair mid, whichever is larger), or the order is older than ``max_age_ms`` and not at the target
  -> move it: **amend** in place when enabled and the order is acknowledged (+1, +3/+2/+1 under
  5/10/15 s; keeps the order id, no gap in the quote), else **cancel + new** (+8.. +1 by age);
- the target size fell below the order's remaining size by more than ``qty_tolerance`` (a fraction)
  -> amend the size down (keeps queue priority);
- nothing moves an order younger than ``min_rest_ms``.

**Pulls** (the risk step removed a side the strategy wanted: stale data, HALTED, REDUCING, market
closed, inventory limit) bypass the deadband, the minimum resting time and the strategy's own rate
guard: they are sent while the estimated counter stays within the venue's threshold, and also
above it (the venue then rejects; nothing better can be done). A size reduction forced by a risk
limit is sent whatever ``qty_tolerance`` says. Every other action is sent only while the own
estimate of the counter after it stays at or below ``rate_guard`` (a share of the threshold).

Actions go to ``act[:n, A_*]``; the caller executes them (backtest loop, paper/live runner).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from mm_core.backtest.rate_limit import amend_cost, cancel_cost, decayed
from mm_core.strategy.view import (O_AGE_MS, O_ID, O_LEAVES, O_SIDE, O_STATE, O_TICK, OS_CANCEL_PENDING,
                                   OS_LIVE)

# requote config vector
QC_DEADBAND_TICKS = 0
QC_DEADBAND_BPS = 1
QC_MAX_AGE_MS = 2  # inf = off
QC_MIN_REST_MS = 3
QC_AMEND = 4  # 1.0 = amend in place when the price moves
QC_QTY_TOL = 5  # fraction of the remaining size; inf = never resize for the strategy's own wish
QC_MAX_OPEN_PER_SIDE = 6
QC_MAX_ORDERS = 7  # capacity of the caller's order table
QC_RATE_GUARD = 8  # own estimate after an ordinary action must stay <= this (absolute)
QC_RATE_LIMIT = 9  # the venue's threshold
QC_RATE_DECAY = 10  # per second
QC_VOL_ALPHA = 11  # EWMA weight of one 1-second squared return (pipeline's sigma)
N_QC = 12

# action table
A_KIND = 0
A_SIDE = 1
A_TICK = 2
A_QTY = 3  # new: size; amend: new remaining size (caller adds what is filled for Kraken's order_qty)
A_ROW = 4  # row in the orders table (-1 for new)
A_ID = 5  # O_ID of that row
A_PULL = 6  # 1.0 when a risk pull
N_A = 7
ACT_NEW = 1
ACT_CANCEL = 2
ACT_AMEND = 3

# pipeline float state (shared with pipeline.py)
PF_RC = 0  # own estimate of the rate counter after its last action
PF_VAR = 1  # EWMA of squared 1 s relative mid returns
PF_VOL_MID = 2
PF_SIGMA = 3
# memos of divisions whose inputs rarely change between decisions (key slot, then the result): the
# step recomputes only when the key differs, so every result is bit-identical to computing it
PF_M_TICK = 4  # tick size the tick memos below were computed with
PF_M_BID = 5  # best bid -> its tick
PF_M_BB = 6
PF_M_ASK = 7
PF_M_BA = 8
PF_M_BPX = 9  # the strategy's bid price -> tick (outwards)
PF_M_BT = 10
PF_M_APX = 11
PF_M_AT = 12
PF_M_LOT = 13  # lot the size memos were computed with
PF_M_BQ_IN = 14  # the bid size after the risk clamp -> on the lot grid
PF_M_BQ = 15
PF_M_AQ_IN = 16
PF_M_AQ = 17
PF_M_DB_FAIR = 18  # fair mid -> the deadband in ticks of deadband_bps (requote plan)
PF_M_DB_TICK = 19
PF_M_DB = 20
N_PF = 21
PF_MEMO_KEYS = (PF_M_TICK, PF_M_LOT, PF_M_DB_FAIR)  # NaN at the start: nothing memoised yet
# pipeline int state
PI_RC_T = 0
PI_VOL_SEC = 1
PI_N_LOG = 2
PI_DECISIONS = 3
PI_NEW = 4
PI_CANCEL = 5
PI_AMEND = 6
PI_RATE_SKIPS = 7
PI_RULE_SKIPS = 8
PI_OPEN_CAP_SKIPS = 9
PI_DEADBAND_HOLDS = 10
PI_MIN_REST_HOLDS = 11
PI_PULLS = 12  # cancels sent as risk pulls
PI_STALE = 13  # decisions that saw stale/invalid data
PI_QUOTE_CHANGES = 14  # actions that changed what rests (new, cancel, amend)
PI_VOL_NEXT = 15  # next whole second at which the pipeline samples the mid
PI_REASONS = 16  # 16 slots: decisions by the strategy's reason code (>= 15 counted in the last)
PI_VOL_N = 32  # 1-second returns in the realised-vol estimate
N_PI = 33


@dataclass(frozen=True)
class RequoteConfig:
    """``[requote]`` settings (see the module docstring)."""

    deadband_ticks: float = 0.0
    deadband_bps: float = 0.2
    max_age_ms: float = 60_000.0
    min_rest_ms: float = 0.0
    amend: bool = True
    qty_tolerance: float = 0.25
    pull_reserve: float = 16.0  # rate-counter points ordinary actions leave free for pulling two young quotes
    vol_halflife_s: float = 60.0  # pipeline's realised-vol EWMA

    @classmethod
    def cancel_replace(cls) -> "RequoteConfig":
        """The plain rule: any price change cancels and replaces at once, size changes are ignored
        (the known-answer tests' and the hftbacktest comparison's loop)."""
        return cls(deadband_ticks=0.0, deadband_bps=0.0, max_age_ms=math.inf, min_rest_ms=0.0, amend=False,
                   qty_tolerance=math.inf, pull_reserve=0.0)

    def __post_init__(self) -> None:
        problems = []
        if self.deadband_ticks < 0 or self.deadband_bps < 0:
            problems.append("deadband_ticks and deadband_bps must be >= 0")
        if self.max_age_ms <= 0:
            problems.append("max_age_ms must be > 0 (use inf for no limit)")
        if self.min_rest_ms < 0:
            problems.append("min_rest_ms must be >= 0")
        if self.qty_tolerance < 0:
            problems.append("qty_tolerance must be >= 0")
        if self.pull_reserve < 0:
            problems.append("pull_reserve must be >= 0")
        if self.vol_halflife_s <= 0:
            problems.append("vol_halflife_s must be > 0")
        if problems:
            raise ValueError("[requote]: " + "; ".join(problems))

    @classmethod
    def from_config(cls, d: dict) -> "RequoteConfig":
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"[requote]: unknown key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        return cls(**d)

    def vector(self, *, rate_limit: float, rate_decay: float, rate_guard: float, max_open_per_side: int,
               max_orders: int) -> np.ndarray:
        """The vector the step reads; ``rate_guard`` is the share of the venue's threshold ordinary
        actions may use (less ``pull_reserve``: a pull must never be what pushes the counter into the
        risk layer's rate-counter kill switch), ``max_orders`` the capacity of the caller's order table."""
        v = np.zeros(N_QC, np.float64)
        v[QC_DEADBAND_TICKS] = self.deadband_ticks
        v[QC_DEADBAND_BPS] = self.deadband_bps
        v[QC_MAX_AGE_MS] = self.max_age_ms
        v[QC_MIN_REST_MS] = self.min_rest_ms
        v[QC_AMEND] = 1.0 if self.amend else 0.0
        v[QC_QTY_TOL] = self.qty_tolerance
        v[QC_MAX_OPEN_PER_SIDE] = max_open_per_side
        v[QC_MAX_ORDERS] = max_orders
        v[QC_RATE_GUARD] = rate_limit * rate_guard - self.pull_reserve
        v[QC_RATE_LIMIT] = rate_limit
        v[QC_RATE_DECAY] = rate_decay
        v[QC_VOL_ALPHA] = 1.0 - math.exp(-math.log(2.0) / self.vol_halflife_s)
        return v

    def describe(self) -> dict[str, object]:
        return asdict(self)


@njit(cache=True, nogil=True, error_model="numpy", forceinline=True)
def _emit(act, n, kind, side, tick, qty, row, oid, pull):
    act[n, A_KIND] = kind
    act[n, A_SIDE] = side
    act[n, A_TICK] = tick
    act[n, A_QTY] = qty
    act[n, A_ROW] = row
    act[n, A_ID] = oid
    act[n, A_PULL] = pull
    return n + 1


@njit(cache=True, nogil=True, error_model="numpy", forceinline=True)
def _budget(PF, PI, QC, t, cost, limit):
    """Spend ``cost`` of the own rate-counter estimate if it stays <= ``limit``. A request the venue
    will reject (estimate above its threshold, possible only when ``limit`` is above it) is sent but
    does not raise the estimate: rejected requests do not raise Kraken's counter."""
    v = decayed(PF[PF_RC], PI[PI_RC_T], t, QC[QC_RATE_DECAY]) + cost
    if v > limit:
        return False
    if v <= QC[QC_RATE_LIMIT]:
        PF[PF_RC] = v
        PI[PI_RC_T] = t
    return True


@njit(cache=True, nogil=True, error_model="numpy", forceinline=True)
def _cancel(PF, PI, QC, act, n, t, orders, r, pull):
    """Cancel row ``r`` if the budget allows (pulls: always; the estimate is spent up to the limit)."""
    cost = cancel_cost(np.int64(orders[r, O_AGE_MS] * 1e6))
    if pull:
        _budget(PF, PI, QC, t, cost, math.inf)  # sent whatever the counter says: the venue decides
        PI[PI_PULLS] += 1
    elif not _budget(PF, PI, QC, t, cost, QC[QC_RATE_GUARD]):
        PI[PI_RATE_SKIPS] += 1
        return n, False
    orders[r, O_STATE] = OS_CANCEL_PENDING  # this decision no longer counts it as working
    PI[PI_CANCEL] += 1
    PI[PI_QUOTE_CHANGES] += 1
    return _emit(act, n, ACT_CANCEL, orders[r, O_SIDE], orders[r, O_TICK], orders[r, O_LEAVES], r,
                 orders[r, O_ID], 1.0 if pull else 0.0), True


def plan(t, orders, n_orders, work_bid_row, work_ask_row, bid_tick, bid_qty, ask_tick, ask_qty, pull_bid,
         pull_ask, cut_bid, cut_ask, fair, tick, QC, PF, PI, act):
    """Actions that move the working orders towards the targets (see the module docstring).

    ``work_*_row``: each side's working order (the youngest not being cancelled; -1 none);
    ``*_tick``/``*_qty``: targets after rounding and venue rules (qty 0 = no quote); ``pull_*``: that
    side's quote was removed by risk; ``cut_*``: risk reduced that side's size. Returns the number
    of actions written to ``act``. Plain Python: compiled (and inlined) by the pipeline."""
    n = 0
    n_new = 0
    db = QC[QC_DEADBAND_TICKS]
    if fair != PF[PF_M_DB_FAIR] or tick != PF[PF_M_DB_TICK]:  # memo: see PF_M_*
        PF[PF_M_DB] = QC[QC_DEADBAND_BPS] * 1e-4 * fair / tick
        PF[PF_M_DB_FAIR] = fair
        PF[PF_M_DB_TICK] = tick
    db_bps = PF[PF_M_DB]
    if db_bps > db:
        db = db_bps
    work_bid = -1  # the working row per side after this decision (-1: none, or a new order)
    work_ask = -1
    for side_k in range(2):
        s = 1.0 - 2.0 * side_k
        tt = bid_tick if s > 0 else ask_tick
        q = bid_qty if s > 0 else ask_qty
        pull = pull_bid if s > 0 else pull_ask
        cut = cut_bid if s > 0 else cut_ask
        want = q > 0.0
        w = work_bid_row if s > 0 else work_ask_row
        if w >= 0:
            wt = orders[w, O_TICK]
            age = orders[w, O_AGE_MS]
            if not want:
                if pull or age >= QC[QC_MIN_REST_MS]:
                    n, sent = _cancel(PF, PI, QC, act, n, t, orders, w, pull)
                    if sent:
                        w = -1
                else:
                    PI[PI_MIN_REST_HOLDS] += 1
            else:
                dist = abs(tt - wt)
                move = dist > db or (dist > 0.0 and age >= QC[QC_MAX_AGE_MS])
                resize = q < orders[w, O_LEAVES] * (1.0 - QC[QC_QTY_TOL]) or (cut and q < orders[w, O_LEAVES])
                if dist > 0.0 and not move:
                    PI[PI_DEADBAND_HOLDS] += 1
                if move or resize:
                    if age < QC[QC_MIN_REST_MS] and not (resize and cut):
                        PI[PI_MIN_REST_HOLDS] += 1
                        want = False
                    elif QC[QC_AMEND] != 0.0 and orders[w, O_STATE] == OS_LIVE:
                        nt = tt if move else wt
                        cost = amend_cost(np.int64(age * 1e6))
                        if _budget(PF, PI, QC, t, cost, QC[QC_RATE_LIMIT] if cut else QC[QC_RATE_GUARD]):
                            n = _emit(act, n, ACT_AMEND, s, nt, q, w, orders[w, O_ID], 1.0 if cut else 0.0)
                            PI[PI_AMEND] += 1
                            PI[PI_QUOTE_CHANGES] += 1
                        else:
                            PI[PI_RATE_SKIPS] += 1
                        want = False
                    elif QC[QC_AMEND] == 0.0 or orders[w, O_STATE] == OS_LIVE:
                        # cancel + new (with amend off also before the ack, as a replace always did)
                        n, sent = _cancel(PF, PI, QC, act, n, t, orders, w, cut)
                        if sent:
                            w = -1
                        else:
                            want = False  # the old quote stays until the counter has room
                    else:
                        want = False  # an ack or amend reply is pending: decide again after it
                else:
                    want = False  # keep
        if want and w < 0:
            n_side = 0
            for r in range(n_orders):
                if orders[r, O_SIDE] == s:
                    n_side += 1
            if n_side >= QC[QC_MAX_OPEN_PER_SIDE] or n_orders + n_new >= QC[QC_MAX_ORDERS] - 2:
                PI[PI_OPEN_CAP_SKIPS] += 1
            elif _budget(PF, PI, QC, t, 1.0, QC[QC_RATE_GUARD]):
                n = _emit(act, n, ACT_NEW, s, tt, q, -1.0, -1.0, 0.0)
                n_new += 1
                PI[PI_NEW] += 1
                PI[PI_QUOTE_CHANGES] += 1
            else:
                PI[PI_RATE_SKIPS] += 1
        if s > 0:
            work_bid = w
        else:
            work_ask = w
    # leftovers: live orders other than the working one of their side (a throttled cancel)
    for r in range(n_orders):
        if orders[r, O_STATE] == OS_LIVE and r != work_bid and r != work_ask:
            pull = pull_bid if orders[r, O_SIDE] > 0 else pull_ask
            n, _ = _cancel(PF, PI, QC, act, n, t, orders, r, pull)
    return n
