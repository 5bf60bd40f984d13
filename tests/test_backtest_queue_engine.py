"""Queue-position models, tested through the engine's run path (``run_backtest``) with hand-built
events: where our order joins, how cancels ahead/behind and trades move it, and what fills.

Every number is worked out by hand below. Tick 1.0; latency: feed 1 ms, entry 10 ms, response 10 ms;
the scripted strategy places one bid at 100 at 5 ms (it reaches the exchange at 15 ms) and keeps it.
The engine's final ``orders["queue_ahead"]`` is the model's size-ahead estimate at the end.
"""

from __future__ import annotations

import math

import pytest

from mm_core.backtest.engine import BacktestConfig, InstrumentRules, run_backtest
from mm_core.backtest.event_arrays import from_events
from mm_core.backtest.fees import TradingValueFee
from mm_core.backtest.latency import ConstantLatency
from mm_core.events import BookSnapshot, BookUpdate, Trade
from mm_core.strategy import load_strategy
from mm_core.strategy.requote import RequoteConfig
from mm_core.strategy.risk import RiskConfig

T0 = 1_767_225_600_000_000_000
MS = 1_000_000
S = 1_000_000_000
MODELS = ("risk_averse", "power", "log", "power2", "log2", "power3")


def snap(ts, bids, asks):
    return BookSnapshot(exchange="kraken", symbol="T/EUR", ts_exchange=ts, ts_capture=ts,
                        bids=tuple(bids), asks=tuple(asks), depth=10)


def upd(ts, bids=(), asks=()):
    return BookUpdate(exchange="kraken", symbol="T/EUR", ts_exchange=ts, ts_capture=ts,
                      bids=tuple(bids), asks=tuple(asks), depth=10)


def sell(ts, price, qty):
    return Trade(exchange="kraken", symbol="T/EUR", ts_exchange=ts, ts_capture=ts, price=price, qty=qty,
                 side="sell")


OPEN_RISK = RiskConfig(max_inventory=1e6, max_order_qty=1e6, max_notional=1e12, max_drawdown=1e12)


def run(events, queue, qty=1.0, lot=1e-8, n=2.0):
    market = from_events(events, tick_size=1.0, lot_size=lot)
    cfg = BacktestConfig(strategy=load_strategy("scripted", {"rows": ((T0 + 5 * MS, 100, qty, 0, 0.0),)}),
                         latency=ConstantLatency(1.0, 10.0, 10.0), rate_tier="off", requote_ms=1.0,
                         rules=InstrumentRules(lot, 0.0, 0.0), fees=TradingValueFee(0.0, 0.0),
                         queue=queue, queue_n=n, requote=RequoteConfig.cancel_replace(), risk=OPEN_RISK)
    return run_backtest(market, cfg)


def _end(ts):
    return upd(ts, asks=[(101.0, 4.0)])  # a late row so the run lasts past every event


def cancel_ahead_events():
    """We join behind 5.0 at 100 (at 15 ms); 3.0 joins behind us (5 -> 8); then 4.0 is cancelled
    (8 -> 4) with no trade: front F = 5, back B = 3, unexplained decrease c = 4."""
    return [snap(T0, [(100.0, 5.0), (99.0, 1.0)], [(101.0, 5.0)]),
            upd(T0 + 30 * MS, bids=[(100.0, 8.0)]),
            upd(T0 + 40 * MS, bids=[(100.0, 4.0)]),
            _end(T0 + 2 * S)]


def expected_front_after_cancel(model, n=2.0, F=5.0, B=3.0, c=4.0, shown=4.0):
    """Front after a cancel of ``c`` from ``F`` ahead / ``B`` behind, by the formulas of queue.py:
    ``p`` = P(the cancel was behind us); front = F - (1 - p) c + min(B - p c, 0), at most shown."""
    p = {
        "risk_averse": 1.0,
        "power": B ** n / (B ** n + F ** n),
        "log": math.log1p(B) / (math.log1p(B) + math.log1p(F)),
        "power2": B ** n / (B + F) ** n,
        "log2": math.log1p(B) / math.log1p(B + F),
        "power3": 1.0 - (F / (F + B)) ** n,
    }[model]
    return min(F - (1.0 - p) * c + min(B - p * c, 0.0), shown)


def test_order_joins_behind_the_size_displayed_on_arrival_in_every_model():
    # 2.0 joins at 100 at 12 ms, before our order arrives at 15 ms: 7.0 is ahead of us
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]), upd(T0 + 12 * MS, bids=[(100.0, 7.0)]), _end(T0 + S)]
    for model in MODELS:
        r = run(events, model)
        assert r.orders["arrive_exch_ts"][0] == T0 + 15 * MS
        assert r.orders["queue_ahead_at_entry"][0] == 7.0, model
        assert r.orders["queue_ahead"][0] == 7.0, model  # nothing happened after it joined
        assert r.fills["qty"].size == 0


def test_cancel_ahead_or_behind_is_split_by_each_models_probability():
    want = {
        "risk_averse": 4.0,  # all of it behind us, but never more ahead than is displayed: min(5, 4)
        "power": 5 - (25 / 34) * 4,  # p = 9/34 -> 2.0588...
        "log": 5 - (math.log1p(5) / (math.log1p(3) + math.log1p(5))) * 4,  # p = 0.4362 -> 2.745...
        "power2": 5 - (1 - 9 / 64) * 4,  # p = 9/64 -> 1.5625
        "log2": 5 - (1 - math.log1p(3) / math.log1p(8)) * 4,  # p = 0.6309 -> 3.5237...
        "power3": 5 - (25 / 64) * 4,  # p = 1 - (5/8)^2 -> 3.4375
    }
    for model, front in want.items():
        assert expected_front_after_cancel(model) == pytest.approx(front, abs=1e-12)
        r = run(cancel_ahead_events(), model)
        assert r.orders["queue_ahead_at_entry"][0] == 5.0
        assert r.orders["queue_ahead"][0] == pytest.approx(front, abs=1e-12), model
    # the power family's exponent is the configured one: n = 3 for "power" gives p = 27/152
    r = run(cancel_ahead_events(), "power", n=3.0)
    assert r.orders["queue_ahead"][0] == pytest.approx(5 - (125 / 152) * 4, abs=1e-12)


def test_a_trade_after_the_cancel_fills_what_goes_past_the_front():
    # after the cancel, a taker sells 3.0 at 100: the front trades first, the rest fills our 1.0 bid
    events = cancel_ahead_events()[:-1] + [sell(T0 + 50 * MS, 100.0, 3.0), _end(T0 + 2 * S)]
    for model in MODELS:
        front = expected_front_after_cancel(model)
        r = run(events, model)
        filled = min(max(3.0 - front, 0.0), 1.0)
        assert r.fills["qty"].sum() == pytest.approx(filled, abs=1e-8), model
        if filled > 0:
            assert list(r.fills["ts"]) == [T0 + 50 * MS] and list(r.fills["price"]) == [100.0]
            assert r.orders["queue_ahead"][0] == 0.0  # what is left of ours is at the front
        else:
            assert r.orders["queue_ahead"][0] == pytest.approx(front - 3.0, abs=1e-12)
    # risk-averse: 4 ahead, 3 traded -> no fill; power: 2.0588 ahead -> 0.9412 of ours fills
    assert run(events, "risk_averse").fills["qty"].size == 0
    assert run(events, "power").fills["qty"].sum() == pytest.approx(3 - (5 - (25 / 34) * 4), abs=1e-8)


def test_a_trade_and_the_book_update_it_causes_move_the_queue_once():
    # 8.0 displayed (5 ahead, 3 behind); a sell of 2.0 at 100, then the book shows 8 -> 6: the
    # decrease is the trade itself, not a cancel, so the front is 5 - 2 = 3 in every model
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]),
              upd(T0 + 30 * MS, bids=[(100.0, 8.0)]),
              sell(T0 + 40 * MS, 100.0, 2.0),
              upd(T0 + 40 * MS, bids=[(100.0, 6.0)]),
              _end(T0 + 2 * S)]
    for model in MODELS:
        r = run(events, model)
        assert r.orders["queue_ahead"][0] == pytest.approx(3.0, abs=1e-12), model
        assert r.fills["qty"].size == 0


def test_size_increase_joins_behind_and_a_drop_below_the_front_caps_it():
    # 5 ahead; +4 joins behind (9 displayed): still 5 ahead; then the level drops to 2: at most 2 ahead
    events = [snap(T0, [(100.0, 5.0)], [(101.0, 5.0)]),
              upd(T0 + 30 * MS, bids=[(100.0, 9.0)]),
              _end(T0 + S)]
    for model in MODELS:
        assert run(events, model).orders["queue_ahead"][0] == 5.0, model
    events = events[:-1] + [upd(T0 + 40 * MS, bids=[(100.0, 2.0)]), _end(T0 + S)]
    for model in MODELS:
        assert run(events, model).orders["queue_ahead"][0] <= 2.0 + 1e-12, model
    assert run(events, "risk_averse").orders["queue_ahead"][0] == 2.0


def test_partial_fills_land_on_the_lot_grid_and_complete_the_order():
    # lot 0.001: 0.5 ahead; a sell of 0.50155 reaches 0.00155 of ours -> 0.001 fills (floored to the
    # lot); a second sell of 0.5 at 100 fills the remaining 0.009 of our 0.01 bid, and no more
    events = [snap(T0, [(100.0, 0.5)], [(101.0, 5.0)]),
              sell(T0 + 30 * MS, 100.0, 0.50155),
              sell(T0 + 40 * MS, 100.0, 0.5),
              _end(T0 + S)]
    for model in MODELS:
        r = run(events, model, qty=0.01, lot=0.001)
        assert list(r.fills["ts"]) == [T0 + 30 * MS, T0 + 40 * MS], model
        assert list(r.fills["qty"]) == pytest.approx([0.001, 0.009], abs=1e-12)
        assert r.orders["filled"][0] == pytest.approx(0.01, abs=1e-12)
        assert r.position == pytest.approx(0.01, abs=1e-12)


def test_a_trade_before_the_order_arrives_does_not_reach_it():
    # the sell at 14 ms happens while our order travels (it arrives at 15 ms): no fill, and it joins
    # behind what is displayed then
    events = [snap(T0, [(100.0, 1.0)], [(101.0, 5.0)]),
              sell(T0 + 14 * MS, 100.0, 3.0),
              upd(T0 + 14 * MS, bids=[(100.0, 0.5)]),
              _end(T0 + S)]
    for model in MODELS:
        r = run(events, model)
        assert r.fills["qty"].size == 0 and r.orders["queue_ahead_at_entry"][0] == 0.5, model
