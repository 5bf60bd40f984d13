"""Risk layer: each kill switch fires with its reason, resumes only as configured; the clamp holds
every limit whatever the strategy outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mm_core.strategy import risk as K
from mm_core.strategy import transitions
from mm_core.strategy import view as V

T0 = 1_767_225_600_000_000_000
S = 1_000_000_000
MS = 1_000_000


class Book:
    """A risk state with a log, driven like the pipeline drives it."""

    def __init__(self, **cfg) -> None:
        self.cfg = K.RiskConfig(**cfg)
        self.kc = self.cfg.vector()
        self.ks = K.new_state(self.kc)
        self.log = np.zeros((256, V.N_L), np.int64)
        self.n = 0

    def update(self, t, position=0.0, equity=0.0, age=10.0, valid=1.0, rc=0.0, limit=60.0) -> None:
        self.n = K.risk_update(self.ks, self.kc, t, position, equity, 80_000.0, age, valid, rc, limit,
                               self.log, self.n)

    def fault(self, t, kind, value=0.0) -> None:
        self.n = K.risk_on_fault(self.ks, self.kc, t, kind, value, self.log, self.n)

    @property
    def trading(self) -> int:
        return int(self.ks[K.KS_TRADING])

    def rows(self) -> np.ndarray:
        return self.log[: self.n]

    def last(self) -> tuple[int, int, int, int, float]:
        r = self.log[self.n - 1]
        return (int(r[V.L_KIND]), int(r[V.L_FROM]), int(r[V.L_TO]), int(r[V.L_CAUSE]), r[V.L_VALUE_E6] / 1e6)

    def clamp(self, out, position=0.0, market=V.MKT_ONLINE, other_bid=0.0, other_ask=0.0) -> np.ndarray:
        view = np.zeros(V.N_V)
        view[V.V_POSITION] = position
        view[V.V_MARKET] = market
        view[V.V_LOT] = 1e-8
        view[V.V_OTHER_BID_QTY] = other_bid
        view[V.V_OTHER_ASK_QTY] = other_ask
        out = np.asarray(out, np.float64).copy()
        K.risk_clamp(self.ks, self.kc, view, out)
        return out


QUOTE = [79_999.0, 0.001, 80_001.0, 0.001, V.R_QUOTE]


def test_stale_book_pulls_every_quote_and_fresh_data_restores_them() -> None:
    b = Book(max_staleness_ms=500.0)
    b.update(T0, age=499.0)
    assert b.ks[K.KS_STALE] == 0 and b.n == 0
    b.update(T0 + S, age=501.0)
    assert b.last() == (V.K_RISK, 0, 1, K.C_STALE_AGE, 501.0)
    out = b.clamp(QUOTE)
    assert out[V.Q_BID_QTY] == 0 and out[V.Q_ASK_QTY] == 0 and out[V.Q_REASON] == V.R_STALE
    b.update(T0 + 2 * S, age=20.0)
    assert b.last() == (V.K_RISK, 1, 0, K.C_DATA_FRESH, 20.0)
    assert b.clamp(QUOTE)[V.Q_BID_QTY] == 0.001
    b.update(T0 + 3 * S, age=1.0, valid=0.0)  # checksum mismatch / resync / disconnect
    assert b.last()[3] == K.C_DATA_INVALID and b.clamp(QUOTE)[V.Q_ASK_QTY] == 0
    b.update(T0 + 4 * S, age=math.nan)  # no age known = stale
    assert b.ks[K.KS_STALE] == 1


def test_drawdown_halts_and_manual_resume_waits_for_the_cooldown() -> None:
    b = Book(max_drawdown=50.0, cooldown_s=300.0, resume="manual")
    b.update(T0, equity=0.0)
    b.update(T0 + S, equity=120.0)  # new peak
    b.update(T0 + 2 * S, equity=71.0)  # 49 below the peak
    assert b.trading == V.TRADING_ACTIVE
    b.update(T0 + 3 * S, equity=69.0)
    assert b.trading == V.TRADING_HALTED
    assert b.last() == (V.K_TRADING, V.TRADING_ACTIVE, V.TRADING_HALTED, K.C_DRAWDOWN, 51.0)
    assert b.clamp(QUOTE)[V.Q_REASON] == V.R_HALTED
    b.update(T0 + 400 * S, equity=69.0)  # cool-down over, but resume is manual
    assert b.trading == V.TRADING_HALTED
    b.fault(T0 + 401 * S, K.F_MANUAL_RESUME)
    assert b.trading == V.TRADING_ACTIVE and b.last()[3] == K.C_RESUME
    b.update(T0 + 402 * S, equity=60.0)  # the peak restarted at 69: 9 below is fine
    assert b.trading == V.TRADING_ACTIVE


def test_manual_resume_during_the_cooldown_is_armed_not_ignored() -> None:
    b = Book(max_drawdown=10.0, cooldown_s=60.0)
    b.update(T0, equity=0.0)
    b.update(T0 + S, equity=-11.0)
    b.fault(T0 + 10 * S, K.F_MANUAL_RESUME)
    assert b.trading == V.TRADING_HALTED
    assert b.last() == (V.K_TRADING, 2, 2, K.C_RESUME_ARMED, 51.0)  # 51 s of cool-down left
    b.update(T0 + 60 * S, equity=-11.0)
    assert b.trading == V.TRADING_HALTED
    b.update(T0 + 61 * S, equity=-11.0)
    assert b.trading == V.TRADING_ACTIVE and b.last()[3] == K.C_RESUME


def test_auto_resume_after_the_cooldown() -> None:
    b = Book(max_drawdown=10.0, cooldown_s=60.0, resume="auto")
    b.update(T0, equity=0.0)
    b.update(T0 + S, equity=-11.0)
    b.update(T0 + 60 * S, equity=-11.0)
    assert b.trading == V.TRADING_HALTED
    b.update(T0 + 61 * S, equity=-11.0)
    assert b.trading == V.TRADING_ACTIVE
    assert b.last() == (V.K_TRADING, V.TRADING_HALTED, V.TRADING_ACTIVE, K.C_RESUME, 60.0)


@pytest.mark.parametrize("kind, cause, count_key, window_key", [
    (K.F_REJECT, K.C_REJECT_STORM, "reject_storm_count", "reject_storm_window_s"),
    (K.F_CANCEL, K.C_CANCEL_STORM, "cancel_storm_count", "cancel_storm_window_s"),
    (K.F_DISCONNECT, K.C_DISCONNECTS, "disconnect_count", "disconnect_window_s"),
    (K.F_CHECKSUM, K.C_CHECKSUM_FAILURES, "checksum_failure_count", "checksum_failure_window_s"),
])
def test_fault_storms_halt_only_when_count_faults_fall_in_the_window(kind, cause, count_key, window_key) -> None:
    b = Book(**{count_key: 5, window_key: 10.0})
    for i in range(20):  # one every 3 s: at most 4 in any 10 s
        b.fault(T0 + i * 3 * S, kind)
    assert b.trading == V.TRADING_ACTIVE and b.n == 0
    t = T0 + 100 * S
    for i in range(4):
        b.fault(t + i * S, kind)
    assert b.trading == V.TRADING_ACTIVE
    b.fault(t + 4 * S, kind)  # the 5th within 10 s
    assert b.trading == V.TRADING_HALTED
    assert b.last() == (V.K_TRADING, V.TRADING_ACTIVE, V.TRADING_HALTED, cause, 5.0)
    b.fault(t + 5 * S, kind)  # history restarted: one more is not a new storm
    assert b.n == 1


def test_other_kinds_do_not_add_up_to_a_storm() -> None:
    b = Book(reject_storm_count=3, cancel_storm_count=3)
    for i in range(2):
        b.fault(T0 + i * MS, K.F_REJECT)
        b.fault(T0 + i * MS, K.F_CANCEL)
    assert b.trading == V.TRADING_ACTIVE


def test_clock_skew_halts_and_auto_resume_waits_until_it_is_back_inside() -> None:
    b = Book(clock_skew_max_ms=100.0, cooldown_s=10.0, resume="auto")
    b.fault(T0, K.F_CLOCK_SKEW, 99.0)
    assert b.trading == V.TRADING_ACTIVE
    b.fault(T0 + S, K.F_CLOCK_SKEW, -150.0)
    assert b.last() == (V.K_TRADING, 0, 2, K.C_CLOCK_SKEW, -150.0)
    b.fault(T0 + 2 * S, K.F_CLOCK_SKEW, -160.0)  # still bad: no second trigger row
    assert b.n == 1
    b.update(T0 + 20 * S)
    assert b.trading == V.TRADING_HALTED  # cool-down over, skew still bad
    b.fault(T0 + 21 * S, K.F_CLOCK_SKEW, 5.0)
    b.update(T0 + 22 * S)
    assert b.trading == V.TRADING_ACTIVE


def test_rate_counter_near_the_limit_halts() -> None:
    b = Book(rate_counter_max_frac=0.9, cooldown_s=5.0, resume="auto")
    b.update(T0, rc=54.0, limit=60.0)  # exactly 90 %: not above
    assert b.trading == V.TRADING_ACTIVE
    b.update(T0 + S, rc=55.0, limit=60.0)
    assert b.last() == (V.K_TRADING, 0, 2, K.C_RATE_COUNTER, 55.0)
    b.update(T0 + 10 * S, rc=56.0, limit=60.0)
    assert b.trading == V.TRADING_HALTED
    b.update(T0 + 11 * S, rc=20.0, limit=60.0)
    assert b.trading == V.TRADING_ACTIVE


def test_manual_kill_holds_until_a_manual_resume_even_in_auto_mode() -> None:
    b = Book(resume="auto", cooldown_s=1.0)
    b.fault(T0, K.F_MANUAL_KILL)
    assert b.last() == (V.K_TRADING, 0, 2, K.C_MANUAL_KILL, 0.0)
    assert b.clamp(QUOTE)[V.Q_BID_QTY] == 0
    b.update(T0 + 3600 * S)
    assert b.trading == V.TRADING_HALTED
    b.fault(T0 + 3601 * S, K.F_MANUAL_RESUME)  # no cool-down of its own
    assert b.trading == V.TRADING_ACTIVE


def test_inventory_beyond_max_is_reduce_only_with_hysteresis() -> None:
    b = Book(max_inventory=0.01, reduce_exit_frac=0.8)
    b.update(T0, position=0.0101)
    assert b.last() == (V.K_TRADING, 0, 1, K.C_INVENTORY, 0.0101)
    out = b.clamp([79_999.0, 0.002, 80_001.0, 0.02, 0], position=0.0101)
    assert out[V.Q_BID_QTY] == 0 and out[V.Q_ASK_QTY] == pytest.approx(0.002)  # capped by max_order_qty
    out = b.clamp([79_999.0, 0.002, 80_001.0, 0.02, 0], position=0.0015)
    assert out[V.Q_ASK_QTY] == pytest.approx(0.0015) and out[V.Q_REASON] == V.R_REDUCING  # never past flat
    b.update(T0 + S, position=0.0095)
    assert b.trading == V.TRADING_REDUCING  # inside max, not yet below 80 %
    b.update(T0 + 2 * S, position=0.008)
    assert b.last() == (V.K_TRADING, 1, 0, K.C_INVENTORY_OK, 0.008)


def test_resting_orders_with_a_cancel_in_flight_use_up_the_room() -> None:
    b = Book(max_inventory=0.01, max_order_qty=0.01, max_notional=1e9)
    # 0.004 BTC still resting on the bid besides the working order (its cancel is in flight)
    out = b.clamp([79_999.0, 0.01, 80_001.0, 0.01, 0], position=0.003, other_bid=0.004)
    assert out[V.Q_BID_QTY] == pytest.approx(0.003) and out[V.Q_REASON] == V.R_INVENTORY
    assert out[V.Q_ASK_QTY] == pytest.approx(0.01)


def test_size_and_notional_caps() -> None:
    b = Book(max_order_qty=0.002, max_notional=100.0, max_inventory=1.0)
    out = b.clamp([80_000.0, 0.5, 40_000.0, 0.5, 0])
    assert out[V.Q_BID_QTY] == pytest.approx(0.00125)  # 100 EUR at 80,000
    assert out[V.Q_ASK_QTY] == pytest.approx(0.002)  # 100 EUR at 40,000 = 0.0025: the size cap binds


def test_cancel_only_and_maintenance_allow_no_quotes() -> None:
    b = Book()
    for mkt in (V.MKT_CANCEL_ONLY, V.MKT_MAINTENANCE):
        out = b.clamp(QUOTE, market=mkt)
        assert out[V.Q_BID_QTY] == 0 and out[V.Q_ASK_QTY] == 0 and out[V.Q_REASON] == V.R_MARKET
    assert b.clamp(QUOTE, market=V.MKT_POST_ONLY)[V.Q_BID_QTY] == 0.001


def test_every_trigger_is_a_row_with_a_known_cause() -> None:
    b = Book(cooldown_s=0.0, resume="auto", reject_storm_count=1, cancel_storm_count=1, disconnect_count=1,
             checksum_failure_count=1, max_drawdown=1.0)
    t = T0
    for kind in (K.F_REJECT, K.F_CANCEL, K.F_DISCONNECT, K.F_CHECKSUM):
        b.fault(t, kind)
        t += S
        b.update(t)  # auto resume
        t += S
    b.fault(t, K.F_CLOCK_SKEW, 1e4)
    b.fault(t + 1, K.F_CLOCK_SKEW, 0.0)
    b.update(t + 2, equity=0.0)
    b.update(t + 3, equity=-5.0)
    b.update(t + 4, rc=59.0)
    b.fault(t + 5, K.F_MANUAL_KILL)
    causes = [int(r[V.L_CAUSE]) for r in b.rows()]
    assert set(K.KILL_SWITCH_CAUSES) <= set(causes)
    assert all(c in K.CAUSE_NAMES for c in causes)
    assert b.ks[K.KS_TRIGGERS] == len(K.KILL_SWITCH_CAUSES)
    assert transitions.kill_switch_events(b.log, b.n) == len(K.KILL_SWITCH_CAUSES)
    recs = transitions.records(b.log, b.n)
    assert {r["cause"] for r in recs} >= {"drawdown", "reject_storm", "manual_kill", "clock_skew", "resume"}
    assert recs[0]["kind"] == "trading" and recs[0]["to"] == "halted"


@pytest.mark.parametrize("section, match", [
    ({"max_inventory": 0}, "max_inventory"),
    ({"resume": "sometimes"}, "resume"),
    ({"reject_storm_count": 1000}, "reject_storm_count"),
    ({"rate_counter_max_frac": 1.5}, "rate_counter_max_frac"),
    ({"max_inventroy": 1}, "unknown key `max_inventroy`"),
])
def test_bad_risk_config_is_a_clear_error(section, match) -> None:
    with pytest.raises(ValueError, match=match):
        K.RiskConfig.from_config(section)


_price = st.one_of(st.floats(min_value=1_000.0, max_value=100_000.0), st.floats(min_value=1_000.0, max_value=100_000.0),
                   st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-9]))
_qty = st.one_of(st.floats(min_value=0.0, max_value=0.05), st.floats(min_value=0.0, max_value=0.05),
                 st.sampled_from([math.nan, math.inf, -1.0, 0.0, 1e9, 1e-12]))


@settings(max_examples=600, deadline=None)
@given(
    trading=st.sampled_from([V.TRADING_ACTIVE, V.TRADING_REDUCING, V.TRADING_HALTED]),
    stale=st.sampled_from([False, False, False, True]),
    market=st.integers(0, 4),
    position=st.one_of(st.floats(min_value=-0.012, max_value=0.012), st.floats(min_value=-0.003, max_value=0.003),
                       st.floats(min_value=-0.03, max_value=0.03)),
    bid_px=_price, bid_qty=_qty, ask_px=_price, ask_qty=_qty,
    other_bid=st.one_of(st.floats(0, 0.012), st.floats(0, 0.012), st.just(math.nan)),
    other_ask=st.one_of(st.floats(0, 0.012), st.floats(0, 0.012), st.just(math.nan)),
)
# the boundary cases by name: resting size besides the working order; reducing never past flat
@example(trading=V.TRADING_ACTIVE, stale=False, market=V.MKT_ONLINE, position=0.005, bid_px=80_000.0, bid_qty=0.002,
         ask_px=80_001.0, ask_qty=0.002, other_bid=0.004, other_ask=0.0)
@example(trading=V.TRADING_ACTIVE, stale=False, market=V.MKT_ONLINE, position=-0.005, bid_px=80_000.0, bid_qty=0.002,
         ask_px=80_001.0, ask_qty=0.002, other_bid=0.0, other_ask=0.004)
@example(trading=V.TRADING_REDUCING, stale=False, market=V.MKT_ONLINE, position=0.0015, bid_px=80_000.0,
         bid_qty=0.002, ask_px=80_001.0, ask_qty=0.002, other_bid=0.0, other_ask=0.0)
@example(trading=V.TRADING_REDUCING, stale=False, market=V.MKT_ONLINE, position=-0.0015, bid_px=80_000.0,
         bid_qty=0.002, ask_px=80_001.0, ask_qty=0.002, other_bid=0.0, other_ask=0.0)
def test_whatever_the_strategy_outputs_the_clamp_holds_every_limit(trading, stale, market, position, bid_px,
                                                                     bid_qty, ask_px, ask_qty, other_bid,
                                                                     other_ask) -> None:
    cfg = K.RiskConfig(max_inventory=0.01, max_order_qty=0.002, max_notional=100.0)
    kc = cfg.vector()
    ks = K.new_state(kc)
    ks[K.KS_TRADING] = trading
    ks[K.KS_STALE] = 1.0 if stale else 0.0
    view = np.zeros(V.N_V)
    view[V.V_POSITION] = position
    view[V.V_MARKET] = market
    view[V.V_LOT] = 1e-8
    view[V.V_OTHER_BID_QTY] = other_bid
    view[V.V_OTHER_ASK_QTY] = other_ask
    out = np.array([bid_px, bid_qty, ask_px, ask_qty, 0.0])
    K.risk_clamp(ks, kc, view, out)
    qb, qa = out[V.Q_BID_QTY], out[V.Q_ASK_QTY]
    tol = 1e-12
    assert qb >= 0 and qa >= 0 and math.isfinite(qb) and math.isfinite(qa)
    if trading == V.TRADING_HALTED or stale or market in (V.MKT_CANCEL_ONLY, V.MKT_MAINTENANCE):
        assert qb == 0 and qa == 0
        return
    pend_buy = 0.0 if math.isnan(other_bid) else other_bid
    pend_sell = 0.0 if math.isnan(other_ask) else other_ask
    if qb > 0:
        assert position + pend_buy + qb <= cfg.max_inventory + tol
        assert qb <= cfg.max_order_qty + tol and qb * bid_px <= cfg.max_notional * (1 + 1e-12)
        assert qb <= bid_qty
    if qa > 0:
        assert position - pend_sell - qa >= -cfg.max_inventory - tol
        assert qa <= cfg.max_order_qty + tol and qa * ask_px <= cfg.max_notional * (1 + 1e-12)
        assert qa <= ask_qty
    if trading == V.TRADING_REDUCING:
        if position >= 0:
            assert qb == 0
        if position <= 0:
            assert qa == 0
        assert qa <= max(position, 0) + tol and qb <= max(-position, 0) + tol
