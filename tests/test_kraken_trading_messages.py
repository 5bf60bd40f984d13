"""Kraken WS v2 trading requests (exact wire text) and replies mapped to typed outcomes."""

from __future__ import annotations

import orjson
import pytest

from mm_core.adapters.kraken.errors import classify_error
from mm_core.adapters.kraken.trading import (REPLY_DECODER, KrakenTradingMessages, cl_ord_id_problem,
                                             deadline_problem, parse_reply, rfc3339_ms)
from mm_core.trading.records import AmendRequest, CancelRequest, OrderRequest, OutcomeKind

M = KrakenTradingMessages()
T0 = 1_700_000_000_000_000_000


def order(**kw) -> OrderRequest:
    base = dict(symbol="BTC/EUR", side="buy", qty=0.00005, price=61000.1, cl_ord_id="mm00011")
    base.update(kw)
    return OrderRequest(**base)


def test_add_order_wire_text_is_fixed_point_with_token_added_at_send_time() -> None:
    req = M.add_order(order(deadline_ns=T0 + 5_123_456_789))
    assert "token" not in req.params and "tok-abc" not in repr(req)
    frame = req.frame("tok-abc", 42)
    assert b"5e-05" not in frame and b'"order_qty":0.00005' in frame and b'"limit_price":61000.1' in frame
    msg = orjson.loads(frame)
    assert msg == {"method": "add_order", "req_id": 42, "params": {
        "order_type": "limit", "side": "buy", "order_qty": 0.00005, "symbol": "BTC/EUR", "limit_price": 61000.1,
        "time_in_force": "gtc", "post_only": True, "cl_ord_id": "mm00011",
        "deadline": "2023-11-14T22:13:25.123Z", "token": "tok-abc"}}
    assert orjson.loads(M.add_order(order(validate=True)).frame("t", 1))["params"]["validate"] is True
    with pytest.raises(ValueError, match="session token"):
        req.frame(None, 1)


def test_prices_and_quantities_the_instrument_cannot_carry_are_errors_not_roundings() -> None:
    with pytest.raises(ValueError, match="limit_price 61000.15 has more than 1 decimals"):
        M.add_order(order(price=61000.15))
    with pytest.raises(ValueError, match="order_qty"):
        M.add_order(order(qty=0.000123456789))
    assert orjson.loads(M.add_order(order(qty=0.1 + 0.2)).frame("t", 1))["params"]["order_qty"] == 0.3
    with pytest.raises(ValueError, match="no instrument rules"):
        M.add_order(order(symbol="DOGE/EUR"))


def test_cl_ord_id_rules() -> None:
    assert cl_ord_id_problem("mm0001abcdefghijkl") is None  # 18 chars
    assert cl_ord_id_problem("123e4567-e89b-12d3-a456-426614174000") is None  # UUID
    assert "18" in cl_ord_id_problem("mm0001abcdefghijklm")
    with pytest.raises(ValueError, match="cl_ord_id"):
        M.add_order(order(cl_ord_id="has space"))


def test_deadline_window_and_format() -> None:
    assert rfc3339_ms(T0 + 999_999_999) == "2023-11-14T22:13:20.999Z"
    assert deadline_problem(T0 + 400_000_000, T0) is not None
    assert deadline_problem(T0 + 5 * 10**9, T0) is None
    assert deadline_problem(T0 + 61 * 10**9, T0) is not None


def test_amend_cancel_batch_and_dead_man_requests() -> None:
    a = orjson.loads(M.amend_order(AmendRequest(symbol="BTC/EUR", order_id="OX-1", price=61000.2)).frame("t", 7))
    assert a["params"] == {"order_id": "OX-1", "limit_price": 61000.2, "post_only": True, "token": "t"}
    with pytest.raises(ValueError, match="exactly one"):
        M.amend_order(AmendRequest(symbol="BTC/EUR", order_id="A", cl_ord_id="B", qty=1.0))
    c = orjson.loads(M.cancel_order(CancelRequest(cl_ord_ids=("mm1",))).frame("t", 8))
    assert c["params"] == {"cl_ord_id": ["mm1"], "token": "t"}
    with pytest.raises(ValueError, match="one kind"):
        M.cancel_order(CancelRequest(order_ids=("A",), cl_ord_ids=("B",)))
    b = orjson.loads(M.batch_cancel(CancelRequest(order_ids=("A", "B"), cl_ord_ids=("c",))).frame("t", 9))
    assert b["params"] == {"orders": ["A", "B"], "cl_ord_id": ["c"], "token": "t"}
    with pytest.raises(ValueError, match="2 to 50"):
        M.batch_cancel(CancelRequest(order_ids=("A",)))
    ba = orjson.loads(M.batch_add([order(), order(side="sell", price=61001.0, cl_ord_id="mm00012")],
                                  deadline_ns=T0 + 2 * 10**9).frame("t", 10))
    assert ba["params"]["symbol"] == "BTC/EUR" and len(ba["params"]["orders"]) == 2
    assert "symbol" not in ba["params"]["orders"][0] and ba["params"]["deadline"].endswith("Z")
    with pytest.raises(ValueError, match="2 to 15"):
        M.batch_add([order()])
    with pytest.raises(ValueError, match="one symbol"):
        M.batch_add([order(), order(symbol="BTC/USD", cl_ord_id="mm2")])
    d = orjson.loads(M.cancel_all_orders_after(60).frame("t", 11))
    assert d == {"method": "cancel_all_orders_after", "params": {"timeout": 60, "token": "t"}, "req_id": 11}
    with pytest.raises(ValueError):
        M.cancel_all_orders_after(86400)
    s = orjson.loads(M.subscribe_executions().frame("t", 12))["params"]
    assert s == {"channel": "executions", "snap_orders": True, "snap_trades": True, "order_status": True,
                 "ratecounter": True, "token": "t"}
    assert orjson.loads(M.ping().frame(None, 13)) == {"method": "ping", "req_id": 13}


def reply(obj) -> object:
    return parse_reply(REPLY_DECODER.decode(orjson.dumps(obj)))


def test_add_order_replies_become_outcomes() -> None:
    ok = reply({"method": "add_order", "req_id": 42, "success": True,
                "result": {"order_id": "OABCDE-12345-FGHIJ", "cl_ord_id": "mm1"},
                "time_in": "2023-09-24T14:10:23.799685Z", "time_out": "2023-09-24T14:10:23.799703Z"})
    assert ok.ok and ok.order_id == "OABCDE-12345-FGHIJ" and ok.cl_ord_id == "mm1" and ok.req_id == 42
    assert ok.time_out_ns - ok.time_in_ns == 18_000
    bad = reply({"method": "add_order", "req_id": 99, "success": False, "error": "EOrder:Insufficient funds",
                 "time_in": "2026-05-05T10:00:00.123Z", "time_out": "2026-05-05T10:00:00.125Z"})
    assert bad.kind is OutcomeKind.INSUFFICIENT_FUNDS and not bad.maybe_placed and bad.error.startswith("EOrder")


def test_batch_add_reply_has_one_outcome_per_order() -> None:
    # the shape of nautilus_trader's ws_batch_add_response_partial.json
    out = reply({"method": "batch_add", "req_id": 45, "success": True, "result": {"orders": [
        {"order_id": "O1", "cl_ord_id": "O-A", "success": True},
        {"cl_ord_id": "O-B", "success": False, "error": "EOrder:Invalid price"}]}})
    assert [r.kind for r in out.rows] == [OutcomeKind.ACCEPTED, OutcomeKind.REJECTED]
    assert out.rows[1].cl_ord_id == "O-B" and out.rows[0].order_id == "O1"
    flat = reply({"method": "batch_add", "req_id": 46, "success": True,
                  "result": [{"order_id": "O1", "cl_ord_id": "a"}, {"order_id": "O2", "cl_ord_id": "b"}]})
    assert [r.order_id for r in flat.rows] == ["O1", "O2"] and all(r.ok for r in flat.rows)


def test_counts_and_dead_man_trigger_time() -> None:
    assert reply({"method": "cancel_all", "req_id": 1, "success": True, "result": {"count": 3}}).count == 3
    dm = reply({"method": "cancel_all_orders_after", "req_id": 2, "success": True,
                "result": {"currentTime": "2023-03-24T17:41:56Z", "triggerTime": "2023-03-24T17:42:56Z"}})
    assert dm.ok and dm.trigger_time_ns == 1679679776 * 10**9


@pytest.mark.parametrize("text, kind", [
    ("EOrder:Insufficient funds", OutcomeKind.INSUFFICIENT_FUNDS),
    ("EOrder:Rate limit exceeded", OutcomeKind.RATE_LIMITED),
    ("EOrder:Domain rate limit exceeded", OutcomeKind.RATE_LIMITED),
    ("EService:Throttled: 1700000000", OutcomeKind.RATE_LIMITED),
    ("EOrder:Post only order", OutcomeKind.POST_ONLY_WOULD_TAKE),
    ("EService:Market in post_only mode", OutcomeKind.MARKET_POST_ONLY),
    ("EService:Market in cancel_only mode", OutcomeKind.MARKET_CANCEL_ONLY),
    ("EService:Market in limit_only mode", OutcomeKind.MARKET_LIMIT_ONLY),
    ("EService:Deadline elapsed", OutcomeKind.DEADLINE_ELAPSED),
    ("EAPI:Invalid token", OutcomeKind.INVALID_TOKEN),
    ("EOrder:Unknown order", OutcomeKind.UNKNOWN_ORDER),
    ("EAPI:Invalid nonce", OutcomeKind.AUTH),
    ("EGeneral:Permission denied", OutcomeKind.AUTH),
    ("EOrder:Order minimum not met", OutcomeKind.REJECTED),
    ("EGeneral:Invalid arguments", OutcomeKind.REJECTED),
    ("EService:Unavailable", OutcomeKind.UNAVAILABLE),
    ("EService:Busy", OutcomeKind.UNAVAILABLE),
    ("EGeneral:Internal error:42", OutcomeKind.UNAVAILABLE),
    ("something nobody documented", OutcomeKind.UNKNOWN),
    ("", OutcomeKind.UNKNOWN),
])
def test_error_texts_map_to_typed_outcomes(text: str, kind: OutcomeKind) -> None:
    assert classify_error(text) is kind


def test_maybe_placed_is_exactly_timeout_unknown_and_unavailable() -> None:
    assert {k for k in OutcomeKind if k.maybe_placed} == {OutcomeKind.TIMEOUT, OutcomeKind.UNKNOWN,
                                                           OutcomeKind.UNAVAILABLE}
