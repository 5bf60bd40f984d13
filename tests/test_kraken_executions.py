"""Kraken's executions and balances channels -> canonical records: every exec_type, the fees array,
maker/taker, the completing trade that says partially_filled, snapshots and sequence gaps."""

from __future__ import annotations

import orjson

from mm_core.adapters.kraken.executions import KrakenPrivateParser
from mm_core.events import BadMessage, ExchangeStatus, Heartbeat
from mm_core.trading.records import (BalancesSnapshot, BalanceUpdate, ExecutionsSnapshot, Fill, OrderUpdate,
                                     Outcome, OutcomeKind, RateCount, SequenceGap)

TS = "2026-05-01T10:00:00.123456Z"


def frame(channel: str, data: list, seq: int, typ: str = "update") -> bytes:
    return orjson.dumps({"channel": channel, "type": typ, "data": data, "sequence": seq})


def test_ccxt_fill_example_becomes_one_fill_with_fees_and_liquidity() -> None:
    p = KrakenPrivateParser()
    raw = (b'{"channel":"executions","type":"update","data":[{"order_id":"O6NTZC-1","exec_id":"T5DIUI-1",'
           b'"exec_type":"trade","trade_id":8253473,"symbol":"USDC/USD","side":"sell","last_qty":15.44,'
           b'"last_price":1.0002,"liquidity_ind":"t","cost":15.443088,"order_status":"filled",'
           b'"order_type":"market","fee_usd_equiv":0.03088618,"fees":[{"asset":"USD","qty":0.3458}]}],"sequence":10}')
    (fill,) = p.on_message(raw, 5)
    assert isinstance(fill, Fill)
    assert (fill.exec_id, fill.order_id, fill.side, fill.qty, fill.price) == ("T5DIUI-1", "O6NTZC-1", -1, 15.44, 1.0002)
    assert fill.maker is False and fill.fee == 0.3458 and fill.fee_asset == "USD"
    assert fill.fees == (("USD", 0.3458),) and fill.cost == 15.443088 and fill.trade_id == 8253473
    assert fill.sequence == 10 and fill.ts_capture == 5 and fill.symbol == "USDC/USD"


def test_order_lifecycle_every_exec_type_and_no_double_fill_from_filled() -> None:
    p = KrakenPrivateParser(default_symbol="BTC/EUR")
    base = {"order_id": "OA", "cl_ord_id": "mm1"}
    msgs = [
        [{**base, "exec_type": "pending_new", "symbol": "BTC/EUR", "side": "buy", "order_type": "limit",
          "order_qty": 0.002, "limit_price": 61000.0, "order_status": "pending_new", "timestamp": TS}],
        [{"exec_type": "new", "order_id": "OA", "order_status": "new", "timestamp": TS}],  # sparse
        [{"exec_type": "amended", "order_id": "OA", "order_qty": 0.002, "limit_price": 61000.5,
          "order_status": "new", "reason": "User requested", "timestamp": TS}],
        [{"exec_type": "trade", "order_id": "OA", "exec_id": "T1", "last_qty": 0.001, "last_price": 61000.5,
          "liquidity_ind": "m", "order_status": "partially_filled", "cum_qty": 0.001,
          "fees": [{"asset": "EUR", "qty": 0.15}], "timestamp": TS}],
        # the fill that completes the order still says partially_filled (Kraken docs) ...
        [{"exec_type": "trade", "order_id": "OA", "exec_id": "T2", "last_qty": 0.001, "last_price": 61000.5,
          "liquidity_ind": "m", "order_status": "partially_filled", "cum_qty": 0.002,
          "fees": [{"asset": "EUR", "qty": 0.15}], "timestamp": TS}],
        # ... and a separate ``filled`` follows: a status, not another fill
        [{"exec_type": "filled", "order_id": "OA", "order_status": "filled", "cum_qty": 0.002,
          "avg_price": 61000.5, "timestamp": TS}],
    ]
    out = []
    for i, data in enumerate(msgs, 1):
        out += p.on_message(frame("executions", data, i), i)
    fills = [x for x in out if isinstance(x, Fill)]
    updates = [x for x in out if isinstance(x, OrderUpdate)]
    assert [f.exec_id for f in fills] == ["T1", "T2"] and sum(f.qty for f in fills) == 0.002
    assert all(f.side == 1 and f.cl_ord_id == "mm1" and f.symbol == "BTC/EUR" for f in fills)  # from the cache
    assert [u.exec_type for u in updates] == ["pending_new", "new", "amended", "filled"]
    assert updates[1].cl_ord_id == "mm1" and updates[1].side == "buy"
    assert updates[2].price == 61000.5 and updates[3].status == "filled" and updates[3].cum_qty == 0.002
    assert not [x for x in out if isinstance(x, SequenceGap)]
    for et in ("canceled", "expired", "restated", "status", "iceberg_refill", "something_new"):
        (u,) = p.on_message(frame("executions", [{"exec_type": et, "order_id": "OA", "timestamp": TS}], 99), 0)[-1:]
        assert isinstance(u, OrderUpdate) and u.exec_type == et


def test_snapshot_is_one_record_with_open_orders_and_recent_fills() -> None:
    p = KrakenPrivateParser()
    data = [{"exec_type": "new", "order_id": "OA", "cl_ord_id": "mm1", "symbol": "BTC/EUR", "side": "sell",
             "order_qty": 0.01, "limit_price": 62000.0, "order_status": "new", "timestamp": TS},
            {"exec_type": "trade", "order_id": "OB", "exec_id": "T9", "symbol": "BTC/EUR", "side": "buy",
             "last_qty": 0.001, "last_price": 61000.0, "liquidity_ind": "m", "timestamp": TS}]
    (snap,) = p.on_message(frame("executions", data, 1, "snapshot"), 7)
    assert isinstance(snap, ExecutionsSnapshot) and snap.sequence == 1
    assert [o.order_id for o in snap.orders] == ["OA"] and [f.exec_id for f in snap.fills] == ["T9"]
    assert snap.fills[0].snapshot and snap.orders[0].snapshot


def test_sequence_gaps_and_duplicates_are_reported_and_entries_kept() -> None:
    p = KrakenPrivateParser()
    new = [{"exec_type": "new", "order_id": "OA", "timestamp": TS}]
    p.on_message(frame("executions", new, 1, "snapshot"), 0)
    assert not [x for x in p.on_message(frame("executions", new, 2), 0) if isinstance(x, SequenceGap)]
    out = p.on_message(frame("executions", new, 5), 0)
    (gap,) = [x for x in out if isinstance(x, SequenceGap)]
    assert gap.expected == 3 and gap.got == 5 and gap.lost and len(out) == 2
    out = p.on_message(frame("executions", new, 4), 0)  # late (reordered) message
    (back,) = [x for x in out if isinstance(x, SequenceGap)]
    assert back.got == 4 and back.expected == 6 and not back.lost
    assert not [x for x in p.on_message(frame("executions", new, 6), 0) if isinstance(x, SequenceGap)]
    p.reset()  # reconnect: a new snapshot restarts the count
    assert not [x for x in p.on_message(frame("executions", new, 1, "snapshot"), 0) if isinstance(x, SequenceGap)]


def test_a_fill_whose_side_cannot_be_known_is_a_bad_message_not_a_guess() -> None:
    p = KrakenPrivateParser()
    out = p.on_message(frame("executions", [{"exec_type": "trade", "order_id": "OZ", "exec_id": "T1",
                                             "last_qty": 1.0, "last_price": 2.0}], 1), 0)
    assert len(out) == 1 and isinstance(out[0], BadMessage) and "side" in out[0].reason


def test_balances_snapshot_counts_spot_wallets_and_updates_follow_the_ledger() -> None:
    p = KrakenPrivateParser()
    snap = [{"asset": "XXBT", "asset_class": "currency", "balance": 1.5,
             "wallets": [{"type": "spot", "id": "main", "balance": 1.0}, {"type": "earn", "id": "flex", "balance": 0.5}]},
            {"asset": "EUR", "balance": 1000.0, "wallets": [{"type": "spot", "id": "main", "balance": 1000.0}]}]
    (s,) = p.on_message(frame("balances", snap, 1, "snapshot"), 0)
    assert isinstance(s, BalancesSnapshot) and s.balances == {"BTC": 1.0, "EUR": 1000.0}
    upd = [{"asset": "BTC", "balance": 1.001, "amount": 0.001, "fee": 0.0, "type": "trade", "wallet_type": "spot",
            "ledger_id": "L1", "ref_id": "T1", "timestamp": TS},
           {"asset": "BTC", "balance": 0.4, "amount": -0.1, "type": "allocation", "wallet_type": "earn"}]
    (u,) = p.on_message(frame("balances", upd, 2), 0)
    assert isinstance(u, BalanceUpdate) and u.balance == 1.001 and u.ledger_type == "trade" and u.ref_id == "T1"


def test_rate_counter_status_heartbeat_replies_and_junk() -> None:
    p = KrakenPrivateParser()
    (ack,) = p.on_message(b'{"method":"subscribe","req_id":3,"success":true,"result":{"channel":"executions",'
                          b'"maxratecount":125,"snapshot":true}}', 0)
    assert isinstance(ack, Outcome) and ack.ok and p.max_rate_count == 125
    out = p.on_message(frame("executions", [{"exec_type": "status", "order_id": "OA", "symbol": "BTC/EUR",
                                             "ratecount": 12}], 1), 0)
    (rc,) = [x for x in out if isinstance(x, RateCount)]
    assert rc.count == 12 and rc.limit == 125 and rc.symbol == "BTC/EUR"
    (st,) = p.on_message(b'{"channel":"status","type":"update","data":[{"system":"post_only","version":"2"}]}', 0)
    assert isinstance(st, ExchangeStatus) and st.status == "post_only"
    assert isinstance(p.on_message(b'{"channel":"heartbeat"}', 0)[0], Heartbeat)
    (err,) = p.on_message(b'{"method":"add_order","req_id":9,"success":false,"error":"EAPI:Invalid token"}', 0)
    assert err.kind is OutcomeKind.INVALID_TOKEN and err.req_id == 9
    for junk in (b"not json", b'{"channel":"executions","type":"update","data":"x"}', b"[1,2]"):
        (bad,) = p.on_message(junk, 0)
        assert isinstance(bad, BadMessage)
    assert p.bad_messages == 3
