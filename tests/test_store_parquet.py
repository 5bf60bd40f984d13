"""Columnar Parquet store: the same rows, schema and files as one dict per row, and crash-safe parts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mm_core.events import (
    HEALTH_EVENTS,
    BookSnapshot,
    BookUpdate,
    ClockEstimate,
    Connected,
    Disconnected,
    Event,
    FeedHealth,
    Reconnecting,
    TopOfBook,
    Trade,
    event_fields,
    health_row,
    table_schemas,
)
from mm_core.store import parquet_store
from mm_core.store.parquet_store import ParquetEventStore, read_table

HOUR = 3_600_000_000_000
T0 = 1_700_000_000_000_000_000 - 1_700_000_000_000_000_000 % HOUR + HOUR - 5_000_000_000  # 5 s before an hour


def h(i: int, ts_exchange: int | None = 0, symbol: str = "BTC/EUR") -> dict:
    tc = T0 + i * 1_000_000_000
    return {"exchange": "kraken", "symbol": symbol, "ts_capture": tc,
            "ts_exchange": None if ts_exchange is None else tc - 1_000_000}


def mixed_events() -> list[Event]:
    evs: list[Event] = [
        BookSnapshot(**h(0, None), bids=((60000.1, 0.5), (60000.0, 1e-8)), asks=((60000.2, 2.0),), depth=10),
        BookUpdate(**h(1), bids=(), asks=((60000.3, 0.0),), checksum=123, verified=False),
        BookUpdate(**h(2), bids=((1.5, 2.5),), asks=(), checksum=None, verified=True, depth=10),
        TopOfBook(**h(2), bid=60000.1, bid_qty=0.5, ask=60000.2, ask_qty=2.0),
        TopOfBook(**h(3, None), bid=1.0, bid_qty=2.0, ask=3.0, ask_qty=4.0, source="ticker"),
        Trade(**h(3), price=60000.2, qty=0.01, side="buy", trade_id=7, ord_type="market"),
        Trade(**h(4, None), price=1.0, qty=2.0, side="sell"),
        Connected(**h(4, None), url="ws://x", attempt=2),
        Disconnected(**h(5, None), reason="closed", code=None),
        Reconnecting(**h(6, None), attempt=3, delay_s=0.25),  # crosses into the next hour
        ClockEstimate(**h(7, None), offset_ns=-5, rtt_ns=10),
        BookUpdate(**h(8), bids=((60000.0, 3.0),), asks=(), checksum=9),
        TopOfBook(**h(8, symbol="ETH/EUR"), bid=2000.0, bid_qty=1.0, ask=2000.1, ask_qty=1.0),
    ]
    evs += [cls(**h(9, None)) for cls in HEALTH_EVENTS]  # every health kind with its defaults
    return evs


def row_dict_tables(events: list[Event]) -> dict[str, pa.Table]:
    """What the store must hold: one dict per row, built by the schema module's own helpers."""
    rows: dict[str, list[dict]] = {}
    for e in events:
        rows.setdefault(e.TABLE, []).append(health_row(e) if isinstance(e, FeedHealth) else event_fields(e))
    schemas = table_schemas()
    return {t: pa.Table.from_pylist(r, schema=schemas[t]) for t, r in rows.items()}


def sort_key(tab: pa.Table) -> pa.Table:
    return tab.sort_by([("symbol", "ascending"), ("ts_capture", "ascending"), ("kind", "ascending")])


def test_columnar_store_writes_exactly_the_per_row_dict_table(tmp_path: Path) -> None:
    events = mixed_events()
    store = ParquetEventStore(tmp_path)
    store.add_many(events)
    store.close()
    expected = row_dict_tables(events)
    for table, want in expected.items():
        got = read_table(tmp_path, table)
        assert got.schema == table_schemas()[table]
        assert sort_key(got).equals(sort_key(want)), table
    assert sum(store.rows_written.values()) == len(events)
    # hourly parts, one partition per symbol, no temp files, schema written into each file
    names = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert any("symbol=ETH-EUR" in n for n in names)
    hours = {n.rsplit("/", 1)[1].split("-")[1] for n in names if n.endswith(".parquet") and "health" in n}
    assert len(hours) == 2
    assert not list(tmp_path.rglob("*.tmp"))
    for f in tmp_path.rglob("*.parquet"):
        assert pq.read_schema(f).names == table_schemas()[f.name.rsplit("-", 2)[0]].names


def test_each_part_keeps_arrival_order_and_max_rows_flushes(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path, max_rows=5)
    ups = [BookUpdate(**{**h(0), "ts_capture": T0 + i}, bids=((float(i), 1.0),), asks=(), checksum=i)
           for i in range(12)]
    store.add_many(ups)
    assert len(store.files) == 2 and store.rows_written["book"] == 10  # flushed at 5 and 10 rows
    store.close()
    assert read_table(tmp_path, "book").column("checksum").to_pylist() == list(range(12))


def test_maybe_flush_writes_on_the_interval_only(tmp_path: Path) -> None:
    store = ParquetEventStore(tmp_path, flush_interval_s=60.0)
    store.add(TopOfBook(**h(0), bid=1.0, bid_qty=1.0, ask=2.0, ask_qty=1.0))
    store.maybe_flush(store._last_flush + 59.0)
    assert not store.files
    store.maybe_flush(store._last_flush + 60.0)
    assert len(store.files) == 1
    store.close()
    assert len(store.files) == 1  # nothing buffered: close writes no empty part


def test_failed_part_write_keeps_its_rows_and_leaves_no_torn_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    store = ParquetEventStore(tmp_path)
    store.add(TopOfBook(**h(0), bid=1.0, bid_qty=1.0, ask=2.0, ask_qty=1.0))
    real = parquet_store.pq.write_table

    def broken(table, where, **kw):  # type: ignore[no-untyped-def]
        Path(where).write_bytes(b"PAR1 torn")
        raise OSError("disk full")

    monkeypatch.setattr(parquet_store.pq, "write_table", broken)
    with pytest.raises(OSError):
        store.flush()
    assert not list(tmp_path.rglob("*.parquet"))  # the torn temp file never got the final name
    assert not list(tmp_path.rglob("*.tmp"))  # ... and was removed
    monkeypatch.setattr(parquet_store.pq, "write_table", real)
    store.close()
    assert read_table(tmp_path, "top_of_book").num_rows == 1


def test_second_store_in_the_same_folder_never_overwrites_parts(tmp_path: Path) -> None:
    for bid in (1.0, 2.0):
        store = ParquetEventStore(tmp_path)
        store.add(TopOfBook(**h(0), bid=bid, bid_qty=1.0, ask=3.0, ask_qty=1.0))
        store.close()
    assert sorted(read_table(tmp_path, "top_of_book").column("bid").to_pylist()) == [1.0, 2.0]
