"""Canonical events as Parquet, partitioned ``exchange=/symbol=/date=`` with hourly file parts.

The layout is Hive-style, so DuckDB, Polars, pandas and Spark read a whole run (or a month of runs)
as one table: ``pl.scan_parquet("parquet/**/top_of_book-*.parquet", hive_partitioning=True)``.

A Parquet file is only readable once its footer is written, so rows are buffered per table and
written as a complete part file every ``flush_interval_s`` (and at every hour change and at close),
each part written to a temp name and renamed: a hard kill loses at most one flush interval of
canonical events (the raw archive and the CSV are flushed every second) and never a torn file.

Columnar, not row by row: ``add`` only files the (immutable) event under its part key -- no dict
per row on the collector's hot path. At flush each part is turned into Arrow in C: the events'
field tuples (``msgspec.structs.astuple``, in schema order) become one ``StructArray`` whose
children are the columns (nested level tuples included), plus the ``kind`` column. Same schema and
same values as building the table from per-row dicts, at a fraction of the cost.

Small GIL slices: building Arrow arrays from Python objects holds the GIL for the whole call
(~2 us per book row), and the store runs on the run's writer thread beside the capture loop. A
minute of a busy feed converted at flush time would hold the GIL for ~100 ms and the receive loop
could not stamp a frame meanwhile. So the writer calls :meth:`convert_ready` after every drain:
each part's pending rows are converted in chunks of ``chunk_rows`` (well under a millisecond each),
and a flush only concatenates the chunks (zero-copy) and hands them to the Parquet writer, which
encodes and compresses with the GIL released.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from msgspec.structs import astuple

from mm_core.capture.layout import symbol_dir_name
from mm_core.events import (
    BookUpdate,
    Connected,
    Event,
    FeedHealth,
    TopOfBook,
    Trade,
    health_row,
    table_schemas,
)
from mm_core.store.flush_timer import FlushTimer

_HOUR_NS = 3_600_000_000_000

_Key = tuple[str, str, str, int]  # (table, exchange, symbol, hour_start_ns)


class ParquetEventStore(FlushTimer):
    """Buffers canonical events and writes them as partitioned Parquet parts."""

    def __init__(self, root: Path, flush_interval_s: float = 60.0, max_rows: int = 200_000,
                 compression: str = "zstd", chunk_rows: int = 256) -> None:
        self.root = root
        self.max_rows = max_rows
        self.chunk_rows = chunk_rows
        self.compression = compression
        self.schemas = table_schemas()
        self.rows_written: dict[str, int] = defaultdict(int)
        self.files: list[Path] = []
        # (table, exchange, symbol, hour_start_ns) -> events, in arrival order
        self._buffers: dict[_Key, list[Event]] = {}
        # rows of a part already turned into Arrow (convert_ready), in arrival order before _buffers'
        self._converted: dict[_Key, list[pa.Table]] = {}
        self._buffered = 0
        self._parts: dict[_Key, int] = defaultdict(int)
        self._start_timer(flush_interval_s)
        # table -> (struct type of the columns after "kind", their names)
        self._body = {name: (pa.struct(list(schema)[1:]), tuple(schema.names[1:]))
                      for name, schema in self.schemas.items()}
        self._row_fns: dict[tuple[str, type], Callable[[Any], tuple]] = {}

    def warm_up(self) -> None:
        """Convert and encode one row of every table once, in memory, before capture starts.

        pyarrow's first conversion of Python objects pays a one-off setup of ~0.5 s, and the first
        Parquet write ~7 ms, all with the GIL held: done during capture, frames arriving meanwhile
        would be stamped late.
        """
        h = {"exchange": "-", "symbol": "-", "ts_exchange": 0, "ts_capture": 0}
        samples = {"book": BookUpdate(**h, bids=((1.0, 1.0),), asks=()),
                   "top_of_book": TopOfBook(**h, bid=1.0, bid_qty=1.0, ask=2.0, ask_qty=1.0),
                   "trade": Trade(**h, price=1.0, qty=1.0, side="buy"),
                   "health": Connected(**h)}
        for name, event in samples.items():
            if name in self.schemas:
                pq.write_table(self.to_table(name, [event]), pa.BufferOutputStream(),
                               compression=self.compression)
        self._row_fns.clear()

    def add(self, event: Event) -> None:
        ts = event.ts_capture
        key = (event.TABLE, event.exchange, event.symbol, ts - ts % _HOUR_NS)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = []
        buf.append(event)
        self._buffered += 1
        if self._buffered >= self.max_rows:
            self.flush()

    def add_many(self, events: Iterable[Event]) -> None:
        for e in events:
            self.add(e)

    def convert_ready(self) -> int:
        """Turn every full chunk of pending rows into Arrow now (one short GIL slice per chunk).

        Returns the rows converted. Called by the writer thread between drains; a flush then has at
        most ``chunk_rows - 1`` rows per part left to convert.
        """
        n = 0
        chunk = self.chunk_rows
        for key, events in self._buffers.items():
            while len(events) >= chunk:
                head = events[:chunk]
                self._converted.setdefault(key, []).append(self.to_table(key[0], head))
                del events[:chunk]
                n += chunk
        return n

    def flush(self) -> None:
        self._flushed()
        buffers, converted = self._buffers, self._converted
        try:
            for key in list(buffers.keys() | converted.keys()):
                chunks = converted.get(key, [])
                events = buffers.get(key, [])
                if events:
                    chunks = [*chunks, self.to_table(key[0], events)]
                if chunks:
                    table = chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks)
                    self._write_part(key, table)
                # only once its part is on disk: a failed write keeps its rows
                buffers.pop(key, None)
                converted.pop(key, None)
        finally:
            self._buffered = (sum(map(len, buffers.values()))
                              + sum(t.num_rows for ts in converted.values() for t in ts))

    # ------------------------------------------------------------------ columns

    def _row_fn(self, table_name: str, cls: type) -> Callable[[Any], tuple]:
        """Event -> tuple of the table's columns after ``kind`` (cached per class)."""
        fn = self._row_fns.get((table_name, cls))
        if fn is None:
            names = self._body[table_name][1]
            if issubclass(cls, FeedHealth):
                def fn(e: Any) -> tuple:
                    row = health_row(e)
                    return tuple(row[n] for n in names)
            elif tuple(cls.__struct_fields__) == names:  # type: ignore[attr-defined]
                fn = astuple  # fields are the columns, in order: one C call
            else:  # a class whose fields differ from its table's (missing ones become null)
                def fn(e: Any) -> tuple:
                    return tuple(getattr(e, n, None) for n in names)
            self._row_fns[(table_name, cls)] = fn
        return fn

    def to_table(self, table_name: str, events: list[Event]) -> pa.Table:
        """Arrow table (the table's schema) of buffered events, built column-wise in C."""
        schema = self.schemas[table_name]
        struct_type, _ = self._body[table_name]
        classes = set(map(type, events))
        if len(classes) == 1:
            cls = next(iter(classes))
            kinds = pa.array([cls.KIND] * len(events), pa.string())
            rows = list(map(self._row_fn(table_name, cls), events))
        else:
            fns = {c: self._row_fn(table_name, c) for c in classes}
            kinds = pa.array([e.KIND for e in events], pa.string())
            rows = [fns[type(e)](e) for e in events]
        body = pa.array(rows, type=struct_type)
        return pa.Table.from_arrays([kinds, *body.flatten()], schema=schema)

    # ------------------------------------------------------------------ files

    def _write_part(self, key: _Key, table: pa.Table) -> None:
        table_name, exchange, symbol, hour_ns = key
        when = datetime.fromtimestamp(hour_ns / 1e9, tz=timezone.utc)
        folder = (self.root / f"exchange={exchange}" / f"symbol={symbol_dir_name(symbol)}"
                  / f"date={when:%Y-%m-%d}")
        folder.mkdir(parents=True, exist_ok=True)
        part = self._parts[key]
        path = folder / f"{table_name}-{when:%H}-{part:04d}.parquet"
        while path.exists():  # a previous run in the same folder: never overwrite its parts
            part += 1
            path = folder / f"{table_name}-{when:%H}-{part:04d}.parquet"
        self._parts[key] = part + 1
        tmp = path.with_name(path.name + ".tmp")
        try:
            pq.write_table(table, tmp, compression=self.compression)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise
        self.files.append(path)
        self.rows_written[table_name] += table.num_rows

    def close(self) -> None:
        self.flush()


def read_table(root: Path, table: str):  # -> pyarrow.Table
    """Every part of one table under ``root`` (a run's ``parquet/`` folder) as one Arrow table."""
    files = sorted(root.rglob(f"{table}-*.parquet"))
    if not files:
        return pa.Table.from_pylist([], schema=table_schemas()[table])
    return pa.concat_tables(pq.read_table(f, schema=table_schemas()[table]) for f in files)
