"""Canonical events as Parquet, partitioned ``exchange=/symbol=/date=`` with hourly file parts.

The layout is Hive-style, so DuckDB, Polars, pandas and Spark read a whole run (or a month of runs)
as one table: ``pl.scan_parquet("parquet/**/top_of_book-*.parquet", hive_partitioning=True)``.

A Parquet file is only readable once its footer is written, so rows are buffered per table and
written as a complete part file every ``flush_interval_s`` (and at every hour change and at close),
each part written to a temp name and renamed: a hard kill loses at most one flush interval of
canonical events (the raw archive and the CSV are flushed every second) and never a torn file.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from mm_core.capture.layout import symbol_dir_name
from mm_core.events import Event, FeedHealth, event_fields, health_row, table_schemas

_HOUR_NS = 3_600_000_000_000


class ParquetEventStore:
    """Buffers canonical events and writes them as partitioned Parquet parts."""

    def __init__(self, root: Path, flush_interval_s: float = 60.0, max_rows: int = 200_000,
                 compression: str = "zstd") -> None:
        self.root = root
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.compression = compression
        self.schemas = table_schemas()
        self.rows_written: dict[str, int] = defaultdict(int)
        self.files: list[Path] = []
        # (table, exchange, symbol, hour_start_ns) -> rows
        self._buffers: dict[tuple[str, str, str, int], list[dict]] = defaultdict(list)
        self._buffered = 0
        self._parts: dict[tuple[str, str, str, int], int] = defaultdict(int)
        self._last_flush = time.monotonic()

    def add(self, event: Event) -> None:
        ts = event.ts_capture
        key = (event.TABLE, event.exchange, event.symbol, ts - ts % _HOUR_NS)
        row = health_row(event) if isinstance(event, FeedHealth) else event_fields(event)
        self._buffers[key].append(row)
        self._buffered += 1
        if self._buffered >= self.max_rows:
            self.flush()

    def add_many(self, events: Iterable[Event]) -> None:
        for e in events:
            self.add(e)

    def maybe_flush(self, now_mono: float) -> None:
        if now_mono - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        for key, rows in list(self._buffers.items()):
            if rows:
                self._write_part(key, rows)
        self._buffers.clear()
        self._buffered = 0

    def _write_part(self, key: tuple[str, str, str, int], rows: list[dict]) -> None:
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
        table = pa.Table.from_pylist(rows, schema=self.schemas[table_name])
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp, compression=self.compression)
        os.replace(tmp, path)
        self.files.append(path)
        self.rows_written[table_name] += len(rows)

    def close(self) -> None:
        self.flush()


def read_table(root: Path, table: str):  # -> pyarrow.Table
    """Every part of one table under ``root`` (a run's ``parquet/`` folder) as one Arrow table."""
    files = sorted(root.rglob(f"{table}-*.parquet"))
    if not files:
        return pa.Table.from_pylist([], schema=table_schemas()[table])
    return pa.concat_tables(pq.read_table(f, schema=table_schemas()[table]) for f in files)
