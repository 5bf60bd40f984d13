"""The order manager on hand-built execution streams: executions drive the state machine, no fill
is counted twice, reordering never moves an order backwards, fills for unknown orders still count,
maybe-placed orders are resolved by reconciliation, and a torn journal restarts cleanly."""

from __future__ import annotations

import pytest

from mm_core.trading.clordid import ClOrdIds
from mm_core.trading.journal import Journal, read_journal
from mm_core.trading.orders import OrderManager
from mm_core.trading.reconcile import ReconcileSchedule
from mm_core.trading.records import (BalancesSnapshot, ExecutionsSnapshot, Fill, OrderUpdate, Outcome,
                                     OutcomeKind, SequenceGap)

SYM = "BTC/EUR"
S = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ns = 1_700_000_000 * S

    def __call__(self) -> int:
        self.ns += 1000
        return self.ns


def upd(exec_type: str, order_id: str, cl: str | None = None, seq: int | None = None, **kw) -> OrderUpdate:
    return OrderUpdate(exchange="kraken", symbol=kw.pop("symbol", SYM), ts_exchange=None, ts_capture=0,
                       exec_type=exec_type, order_id=order_id, cl_ord_id=cl, sequence=seq, **kw)


def fill(exec_id: str, order_id: str, side: int, qty: float, price: float, cl: str | None = None,
         fee: float = 0.0, ts: int | None = None, **kw) -> Fill:
    return Fill(exchange="kraken", symbol=SYM, ts_exchange=ts, ts_capture=0, exec_id=exec_id, order_id=order_id,
                side=side, qty=qty, price=price, cl_ord_id=cl, cost=qty * price, fee=fee, fee_asset="EUR",
                fees=(("EUR", fee),) if fee else (), **kw)


def bal(btc: float, eur: float) -> BalancesSnapshot:
    return BalancesSnapshot(exchange="kraken", symbol="", ts_exchange=None, ts_capture=1, balances={"BTC": btc, "EUR": eur})


def esnap(orders=(), fills=()) -> ExecutionsSnapshot:
    return ExecutionsSnapshot(exchange="kraken", symbol=SYM, ts_exchange=None, ts_capture=1, orders=tuple(orders),
                              fills=tuple(fills))


def manager(tmp_path=None, **kw) -> OrderManager:
    kw.setdefault("clock_ns", Clock())
    kw.setdefault("balance_confirmations", 1)
    if tmp_path is not None:
        m = OrderManager.open(tmp_path / "journal.jsonl", symbol=SYM, base="BTC", quote="EUR", **kw)
    else:
        m = OrderManager(symbol=SYM, base="BTC", quote="EUR", **kw)
    m.on_record(esnap())
    m.on_record(bal(1.0, 100_000.0))
    assert m.ready
    return m


def placed(m: OrderManager, side: str = "buy", qty: float = 0.01, price: float = 60_000.0, oid: str = "OA"):
    req = m.new_order(side, qty, price)
    m.on_outcome(Outcome(kind=OutcomeKind.ACCEPTED, method="add_order", order_id=oid, cl_ord_id=req.cl_ord_id),
                 req.cl_ord_id)
    return req.cl_ord_id


def test_lifecycle_is_driven_by_executions_and_position_cash_fees_follow_fills() -> None:
    m = manager()
    cid = placed(m)
    o = m.order(cid)
    assert o.state == "sent" and o.order_id == "OA"  # the reply settles the request, not the state
    m.on_record(upd("pending_new", "OA", cid, 1, status="pending_new"))
    m.on_record(upd("new", "OA", None, 2, status="new"))
    assert o.state == "new"
    m.on_record(fill("T1", "OA", 1, 0.004, 60_000.0, fee=0.6))
    assert o.state == "partially_filled" and o.filled == pytest.approx(0.004)
    # the completing trade says partially_filled (Kraken), then a separate filled
    m.on_record(fill("T2", "OA", 1, 0.006, 60_000.0, fee=0.9, order_status="partially_filled", cum_qty=0.01))
    m.on_record(upd("filled", "OA", None, 5, status="filled", cum_qty=0.01))
    assert o.state == "filled" and o.filled == pytest.approx(0.01) and not m.open_orders()
    assert m.position == pytest.approx(1.01)
    assert m.cash == pytest.approx(100_000.0 - 600.0 - 1.5)
    assert m.fees_paid == {"EUR": pytest.approx(1.5)}
    assert m.needs_reconcile is None


def test_duplicated_messages_count_once() -> None:
    m = manager()
    cid = placed(m)
    f = fill("T1", "OA", 1, 0.004, 60_000.0, fee=0.6)
    for _ in range(3):
        m.on_record(upd("new", "OA", cid, 2, status="new"))
        m.on_record(f)
    assert m.position == pytest.approx(1.004) and len(m.fills) == 1
    assert m.counters.duplicate_fills == 2


def test_reordered_messages_never_move_an_order_backwards() -> None:
    m = manager()
    cid = placed(m)
    o = m.order(cid)
    # trade and filled arrive before new and pending_new
    m.on_record(fill("T1", "OA", 1, 0.01, 60_000.0, cum_qty=0.01))
    m.on_record(upd("filled", "OA", cid, 4, status="filled"))
    m.on_record(upd("new", "OA", cid, 2, status="new"))
    m.on_record(upd("pending_new", "OA", cid, 1, status="pending_new"))
    assert o.state == "filled"
    # a fill delivered after the cancel still counts
    cid2 = placed(m, side="sell", oid="OB")
    m.on_record(upd("new", "OB", cid2, 10, status="new"))
    m.on_record(upd("canceled", "OB", cid2, 12, status="canceled"))
    m.on_record(fill("T2", "OB", -1, 0.003, 60_000.0))
    assert m.order(cid2).state == "canceled" and m.position == pytest.approx(1.007)


def test_an_older_amend_does_not_overwrite_a_newer_one() -> None:
    m = manager()
    cid = placed(m)
    m.on_record(upd("new", "OA", cid, 1, status="new"))
    m.on_record(upd("amended", "OA", None, 5, price=60_010.0, qty=0.01))
    m.on_record(upd("amended", "OA", None, 3, price=60_005.0, qty=0.01))  # late
    assert m.order(cid).price == 60_010.0 and m.counters.stale_updates == 1


def test_sequence_numbers_restart_with_each_snapshot() -> None:
    m = manager()
    cid = placed(m)
    m.on_record(upd("new", "OA", cid, 40, status="new"))
    m.on_record(upd("amended", "OA", None, 41, price=60_010.0, qty=0.01))
    venue_view = upd("new", "OA", cid, None, status="new", side="buy", qty=0.01, price=60_010.0)
    m.on_record(ExecutionsSnapshot(exchange="kraken", symbol=SYM, ts_exchange=None, ts_capture=1,
                                   orders=(venue_view,), sequence=1))  # reconnect: numbering starts again
    m.on_record(upd("amended", "OA", None, 2, price=60_020.0, qty=0.01))
    assert m.order(cid).price == 60_020.0 and m.counters.stale_updates == 0


def test_a_fill_for_an_order_the_manager_never_saw_is_counted_and_adopted() -> None:
    m = manager()
    diffs = m.on_record(fill("TX", "OFOREIGN", -1, 0.02, 61_000.0, cl="other123"))
    assert [d.kind for d in diffs] == ["unknown_order_fill"] and diffs[0].action == "apply_fill"
    assert m.position == pytest.approx(0.98) and m.cash == pytest.approx(100_000.0 + 1220.0)
    o = m.find("OFOREIGN", None)
    assert o is not None and o.adopted and o.side == "sell"


def test_definite_reject_validate_only_and_maybe_placed() -> None:
    m = manager()
    r = m.new_order("buy", 0.01, 60_000.0)
    m.on_outcome(Outcome(kind=OutcomeKind.INSUFFICIENT_FUNDS, method="add_order", error="EOrder:Insufficient funds"),
                 r.cl_ord_id)
    assert m.order(r.cl_ord_id).state == "rejected" and m.needs_reconcile is None
    v = m.new_order("buy", 0.01, 60_000.0, validate=True)
    m.on_outcome(Outcome(kind=OutcomeKind.ACCEPTED, method="add_order", order_id=None), v.cl_ord_id)
    assert m.order(v.cl_ord_id).state == "validated" and not m.open_orders()
    t = m.new_order("sell", 0.01, 61_000.0)
    m.on_outcome(Outcome(kind=OutcomeKind.TIMEOUT, method="add_order", error="no reply"), t.cl_ord_id)
    assert m.order(t.cl_ord_id).state == "sent" and m.needs_reconcile == "maybe_placed"


def test_a_timed_out_add_that_was_placed_is_found_and_adopted() -> None:
    m = manager()
    t = m.new_order("sell", 0.01, 61_000.0)
    m.on_outcome(Outcome(kind=OutcomeKind.TIMEOUT, method="add_order"), t.cl_ord_id)
    venue_order = upd("new", "OLATE", t.cl_ord_id, None, status="new", side="sell", qty=0.01, price=61_000.0)
    diffs = m.on_record(esnap(orders=[venue_order]))
    assert [(d.kind, d.action) for d in diffs] == [("maybe_placed_found", "adopt")]
    o = m.order(t.cl_ord_id)
    assert o.state == "new" and o.order_id == "OLATE" and m.needs_reconcile is None
    m.on_record(fill("T5", "OLATE", -1, 0.01, 61_000.0))
    assert o.state == "filled"


def test_a_timed_out_add_that_is_absent_is_lost_and_revived_if_it_turns_up() -> None:
    m = manager()
    t = m.new_order("buy", 0.01, 60_000.0)
    m.on_outcome(Outcome(kind=OutcomeKind.TIMEOUT, method="add_order"), t.cl_ord_id)
    diffs = m.on_record(esnap())
    assert [(d.kind, d.action) for d in diffs] == [("maybe_placed_absent", "mark_lost")]
    assert m.order(t.cl_ord_id).state == "lost"
    m.on_record(upd("new", "OLATE2", t.cl_ord_id, 7, status="new"))  # it was only slow
    assert m.order(t.cl_ord_id).state == "new"


def test_an_order_in_flight_is_not_declared_lost() -> None:
    m = manager()
    t = m.new_order("buy", 0.01, 60_000.0)  # sent, reply not yet in
    assert m.on_record(esnap()) == [] and m.order(t.cl_ord_id).state == "sent"


def test_snapshot_reconciliation_closes_adopts_cancels_and_applies_missing_fills() -> None:
    m = manager(unknown_orders="cancel")
    a = placed(m, oid="OA")
    m.on_record(upd("new", "OA", a, 1, status="new"))
    b = placed(m, side="sell", price=61_000.0, oid="OB")
    m.on_record(upd("new", "OB", b, 2, status="new"))
    snap = esnap(orders=[upd("new", "OB", b, None, status="new", side="sell", qty=0.01, price=61_000.0),
                         upd("new", "OX", "manual1", None, status="new", side="buy", qty=0.5, price=50_000.0)],
                 fills=[fill("T7", "OA", 1, 0.01, 60_000.0, ts=m.clock_ns() + 5)])
    diffs = m.on_record(snap)
    kinds = sorted((d.kind, d.action) for d in diffs)
    assert kinds == [("missing_fill", "apply_fill"), ("unknown_open_order", "cancel")]
    assert m.order(a).state == "filled" and m.position == pytest.approx(1.01)
    # OA vanished after filling: closed as filled (no separate missing_open_order needed)
    snap2 = esnap(orders=[upd("new", "OX", "manual1", None, status="new", side="buy", qty=0.5, price=50_000.0)])
    diffs2 = m.on_record(snap2)
    assert [(d.kind, d.action) for d in diffs2] == [("missing_open_order", "close")]
    assert m.order(b).state == "canceled"


def test_balance_difference_is_rechecked_then_corrected() -> None:
    m = manager(balance_confirmations=2)
    assert m.on_record(bal(1.0, 100_000.0)) == []
    first = m.on_record(bal(1.2, 100_000.0))
    assert [(d.kind, d.action) for d in first] == [("balance_mismatch", "recheck")] and m.position == 1.0
    assert m.needs_reconcile == "balance_recheck"
    m.on_record(bal(1.0, 100_000.0))  # it was a fill in flight: resolved
    assert m.balance_suspect is None and m.needs_reconcile is None
    m.on_record(bal(1.2, 100_000.0))
    second = m.on_record(bal(1.2, 100_000.0))
    assert [(d.kind, d.action) for d in second] == [("balance_mismatch", "correct_position")]
    assert m.position == pytest.approx(1.2)


def test_lost_messages_ask_for_reconciliation() -> None:
    m = manager()
    m.on_record(SequenceGap(exchange="kraken", symbol="", ts_exchange=None, ts_capture=0, channel="executions",
                            expected=3, got=5))
    assert m.needs_reconcile == "sequence_gap"
    m.on_record(esnap())
    assert m.needs_reconcile is None


def test_cl_ord_ids_are_short_deterministic_and_unique_across_restarts(tmp_path) -> None:
    seen = set()
    for run in range(3):
        m = OrderManager.open(tmp_path / "j.jsonl", symbol=SYM, base="BTC", quote="EUR", clock_ns=Clock())
        ids = [m.new_order("buy", 0.01, 60_000.0).cl_ord_id for _ in range(50)]
        assert m.epoch == run + 1 and all(len(i) <= 18 for i in ids)
        assert not seen & set(ids)
        seen |= set(ids)
        m.close()
    ids = ClOrdIds("mm", 7)
    assert [ids.next() for _ in range(3)] == ["mm00071", "mm00072", "mm00073"]
    assert ids.is_ours("mm00071") and not ids.is_ours("manual1")
    big = ClOrdIds("abcd", 36**4 - 1, start=36**10 - 2)
    assert len(big.next()) == 18
    with pytest.raises(OverflowError):
        big.next()


def test_journal_replay_rebuilds_the_same_state(tmp_path) -> None:
    m = manager(tmp_path)
    cid = placed(m)
    m.on_record(upd("new", "OA", cid, 1, status="new"))
    m.on_record(fill("T1", "OA", 1, 0.004, 60_000.0, fee=0.6))
    m.on_record(fill("TX", "OZ", -1, 0.001, 60_500.0))
    before = m.describe()
    m.close()
    again = OrderManager.open(tmp_path / "journal.jsonl", symbol=SYM, base="BTC", quote="EUR", clock_ns=Clock())
    after = again.describe()
    for key in ("orders", "open_orders", "states", "fills", "position", "cash", "fees_paid"):
        assert after[key] == before[key], key
    assert again.epoch == m.epoch + 1 and again.restarted and "T1" in again.seen_exec


def test_restart_from_a_torn_journal(tmp_path) -> None:
    m = manager(tmp_path)
    cid = placed(m)
    m.on_record(upd("new", "OA", cid, 1, status="new"))
    m.on_record(fill("T1", "OA", 1, 0.004, 60_000.0))
    m.close()
    path = tmp_path / "journal.jsonl"
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    # a damaged line in the middle and a write cut off in the middle of the last line
    damaged = lines[:2] + [lines[2][:12] + b"X" + lines[2][13:]] + lines[3:-1] + [lines[-1][: len(lines[-1]) // 2]]
    path.write_bytes(b"".join(damaged))
    again = OrderManager.open(path, symbol=SYM, base="BTC", quote="EUR", clock_ns=Clock())
    assert again.journal_bad_lines == 2  # one damaged + one torn tail (cut off)
    assert again.epoch >= 2 and again.baseline_ns is not None
    nid = again.new_order("buy", 0.001, 59_000.0).cl_ord_id
    assert nid not in (cid,)
    again.close()
    reread = read_journal(path)
    assert reread.torn_tail_bytes == 0 and reread.bad_lines == 1  # the tail was cut, appends are whole lines
    assert reread.records[-1]["op"] == "order"


def test_a_fill_whose_order_record_was_torn_off_is_still_on_its_order(tmp_path) -> None:
    m = manager(tmp_path)
    cid = placed(m)
    m.on_record(upd("new", "OA", cid, 1, status="new"))
    m.on_record(fill("T1", "OA", 1, 0.004, 60_000.0))
    m.close()
    path = tmp_path / "journal.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    assert b'"op":"order"' in lines[-1] and b'"op":"fill"' in lines[-2]
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:20])  # the crash cut the order record
    again = OrderManager.open(path, symbol=SYM, base="BTC", quote="EUR", clock_ns=Clock())
    o = again.order(cid)
    assert o.filled == pytest.approx(0.004) and again.position == pytest.approx(1.004)
    assert o.leaves == pytest.approx(0.006)


def test_journal_writes_happen_off_the_caller_and_flush_waits_for_fsync(tmp_path) -> None:
    j = Journal(tmp_path / "j.jsonl", sync_interval_s=0.05)
    for i in range(1000):
        j.append({"op": "x", "i": i})
    assert j.flush(5.0)
    assert len(read_journal(tmp_path / "j.jsonl").records) == 1000
    j.close()


def test_reconcile_schedule() -> None:
    s = ReconcileSchedule(every_s=300, recheck_s=2)
    t = 1_000 * S
    assert s.next_reason(t) is None
    s.done(t)
    s.request("maybe_placed", t + S)
    assert s.next_reason(t + S) == "maybe_placed"
    s.done(t + S)
    assert s.next_reason(t + 2 * S) is None
    s.request("balance_recheck", t + 2 * S, delay_s=2)
    assert s.next_reason(t + 3 * S) is None and s.next_reason(t + 4 * S) == "balance_recheck"
    s.done(t + 4 * S)
    assert s.next_reason(t + 4 * S + 300 * S) == "periodic"


def test_compaction_keeps_what_rebuilds_the_state(tmp_path) -> None:
    m = manager(tmp_path)
    cids = []
    for i in range(200):
        cid = placed(m, oid=f"O{i}")
        m.on_record(upd("new", f"O{i}", cid, i, status="new"))
        if i % 2:
            m.on_record(fill(f"T{i}", f"O{i}", 1, 0.001, 60_000.0, fee=0.15))
        cids.append(cid)
    before = m.describe()
    m.close()
    path = tmp_path / "journal.jsonl"
    size = path.stat().st_size
    again = OrderManager.open(path, symbol=SYM, base="BTC", quote="EUR", clock_ns=Clock(), compact_over_bytes=1000)
    assert path.stat().st_size < size / 3
    for key in ("orders", "open_orders", "position", "cash"):
        assert again.describe()[key] == before[key], key
    assert len(again.seen_exec) == 100
    assert again.on_record(fill("T1", "O1", 1, 0.001, 60_000.0)) == [] and again.counters.duplicate_fills == 1
    again.close()
    third = OrderManager.open(path, symbol=SYM, base="BTC", quote="EUR", clock_ns=Clock())
    assert third.position == pytest.approx(before["position"]) and third.epoch == again.epoch + 1
    third.close()


def test_one_order_manager_per_journal(tmp_path) -> None:
    from mm_core.trading.journal import JournalLocked

    m = OrderManager.open(tmp_path / "j.jsonl", symbol=SYM, base="BTC", quote="EUR")
    with pytest.raises(JournalLocked, match="in use"):
        OrderManager.open(tmp_path / "j.jsonl", symbol=SYM, base="BTC", quote="EUR")
    m.close()
    OrderManager.open(tmp_path / "j.jsonl", symbol=SYM, base="BTC", quote="EUR").close()
