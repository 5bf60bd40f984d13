"""Canonical schema: one Arrow schema per table, events round-trip into Parquet unchanged."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from mm_core.events import (
    ALL_EVENTS,
    BadMessage,
    BookSnapshot,
    BookUpdate,
    ChecksumMismatch,
    TopOfBook,
    Trade,
    arrow_schema,
    table_schemas,
    truncate_text,
)
from mm_core.store.parquet_store import ParquetEventStore, read_table

H = {"exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": 1_700_000_000_123_456_000,
     "ts_capture": 1_700_000_000_130_000_000}


def test_every_event_has_an_arrow_schema_with_the_common_header() -> None:
    for cls in ALL_EVENTS:
        names = arrow_schema(cls).names
        assert names[:1] == ["kind"]
        assert {"exchange", "symbol", "ts_exchange", "ts_capture"} <= set(names), cls


def test_snapshot_and_update_share_the_book_table() -> None:
    assert arrow_schema(BookSnapshot) == arrow_schema(BookUpdate) == table_schemas()["book"]


def test_events_round_trip_through_parquet(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path)
    top = TopOfBook(**H, bid=60000.1, bid_qty=0.5, ask=60000.2, ask_qty=1e-8)
    upd = BookUpdate(**H, bids=((60000.1, 0.0),), asks=((60000.3, 2.5), (60000.4, 0.1)), checksum=42)
    snap = BookSnapshot(**{**H, "ts_exchange": None}, bids=((1.0, 2.0),), asks=((3.0, 4.0),), depth=10)
    trade = Trade(**H, price=60000.2, qty=0.01, side="buy", trade_id=7)
    bad = BadMessage(**H, reason="json", text="{oops")
    mism = ChecksumMismatch(**H, expected=1, computed=2)
    for e in (top, upd, snap, trade, bad, mism):
        store.add(e)
    store.close()
    tops = read_table(tmp_path, "top_of_book").to_pylist()
    assert tops[0]["bid"] == 60000.1 and tops[0]["ask_qty"] == 1e-8
    books = read_table(tmp_path, "book").to_pylist()
    assert [b["kind"] for b in books] == ["book_update", "book_snapshot"]
    assert books[0]["asks"] == [{"price": 60000.3, "qty": 2.5}, {"price": 60000.4, "qty": 0.1}]
    assert books[1]["ts_exchange"] is None
    health = read_table(tmp_path, "health").to_pylist()
    assert {h["kind"] for h in health} == {"bad_message", "checksum_mismatch"}
    assert read_table(tmp_path, "trade").to_pylist()[0]["trade_id"] == 7
    files = list(tmp_path.rglob("*.parquet"))
    assert all("exchange=kraken" in str(f) and "symbol=BTC-EUR" in str(f) for f in files)
    assert not list(tmp_path.rglob("*.tmp"))
    assert pq.read_schema(files[0]).names[0] == "kind"


def test_offending_text_is_truncated() -> None:
    t = truncate_text("x" * 10_000)
    assert len(t) < 260 and t.endswith("(+9800 chars)")
    assert truncate_text(b"\xff{bad") == "\ufffd{bad"
