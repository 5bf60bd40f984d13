"""Parquet event store: rows/s writing a simulated day of canonical events, ours vs per-row dicts.

Ours is :class:`mm_core.store.parquet_store.ParquetEventStore` (columnar: events are filed under their
part and turned into Arrow column-wise at flush). The peer, on the same events in the same run, is
the straightforward way -- and this store's former implementation: one dict per row
(``event_fields`` / ``health_row``) and ``pa.Table.from_pylist`` per part. The floor is
``pq.write_table`` alone on the finished tables (compression + file I/O, no Python per row).

    python bench/bench_store.py [--seconds 86400] [--rounds 3]

Events are generated once (``canonical_events`` on a seeded ``MarketModel``, with top-of-book rows)
and kept in memory, so only storing is timed. Both stores must write the same rows: the bench
reads both outputs back and compares them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mm_core.events import FeedHealth, event_fields, health_row  # noqa: E402
from mm_core.store.parquet_store import ParquetEventStore, read_table  # noqa: E402

MAX_ROWS = 250_000  # what write_sim_run uses


class RowDictStore(ParquetEventStore):
    """The peer: a dict per row, ``Table.from_pylist`` per part (same layout and files)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._rows: dict = defaultdict(list)

    def add(self, event) -> None:  # type: ignore[no-untyped-def]
        ts = event.ts_capture
        key = (event.TABLE, event.exchange, event.symbol, ts - ts % 3_600_000_000_000)
        self._rows[key].append(health_row(event) if isinstance(event, FeedHealth) else event_fields(event))
        self._buffered += 1
        if self._buffered >= self.max_rows:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        for key, rows in list(self._rows.items()):
            if rows:
                self._write_part(key, rows)  # type: ignore[arg-type]
        self._rows.clear()
        self._buffered = 0

    def to_table(self, table_name, rows):  # type: ignore[no-untyped-def,override]
        return pa.Table.from_pylist(rows, schema=self.schemas[table_name])


def generate(seconds: float, seed: int) -> list:
    from mm_core.simexchange.canonical import canonical_events
    from mm_core.simexchange.market import MarketModel

    return list(canonical_events(MarketModel(seed=seed), seconds, tops=True))


def time_store(cls: type, events: list, root: Path) -> tuple[float, float]:
    store = cls(root, flush_interval_s=1e9, max_rows=MAX_ROWS)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for e in events:
        store.add(e)
    store.close()
    return time.perf_counter() - t0, time.process_time() - cpu0


def time_floor(root: Path, out: Path) -> float:
    """pq.write_table alone, on the tables the store wrote (read back into memory first)."""
    files = sorted(root.rglob("*.parquet"))
    tables = [pq.read_table(f) for f in files]
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    for i, tab in enumerate(tables):
        pq.write_table(tab, out / f"{i}.parquet", compression="zstd")
    return time.perf_counter() - t0


def same_rows(a: Path, b: Path) -> bool:
    return all(read_table(a, t).equals(read_table(b, t)) for t in ("top_of_book", "book", "trade", "health"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=86_400.0, help="simulated seconds (default: a day)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    events = generate(a.seconds, a.seed)
    print(f"{len(events):,} events ({a.seconds:g} simulated s) generated in {time.perf_counter() - t0:.1f} s "
          f"(not timed below)", flush=True)
    res: dict[str, list[tuple[float, float]]] = {"ours": [], "peer": []}
    floor: list[float] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls in (("ours", ParquetEventStore), ("peer", RowDictStore)):  # warm-up, untimed
            time_store(cls, events[:20_000], Path(tmp) / f"warm-{name}")
        for r in range(a.rounds):
            # alternate the order so a busy neighbour on the machine hurts both alike
            order = (("ours", ParquetEventStore), ("peer", RowDictStore))
            for name, cls in order if r % 2 == 0 else order[::-1]:
                res[name].append(time_store(cls, events, Path(tmp) / f"{name}{r}"))
            floor.append(time_floor(Path(tmp) / f"ours{r}", Path(tmp) / f"floor{r}"))
            if r == 0:
                ok = same_rows(Path(tmp) / "ours0", Path(tmp) / "peer0")
            print(f"round {r + 1}: ours {res['ours'][-1][0]:.2f} s, per-row dicts {res['peer'][-1][0]:.2f} s, "
                  f"write_table floor {floor[-1]:.2f} s", flush=True)
            for name in ("ours", "peer"):
                for p in sorted((Path(tmp) / f"{name}{r}").rglob("*.parquet")):
                    os.remove(p)
    n = len(events)
    print(f"\n{'':38}{'wall s':>8}{'CPU s':>8}{'rows/s':>12}   (median of {a.rounds} rounds)")
    for label, key in (("mm_core ParquetEventStore (columnar)", "ours"), ("per-row dicts + from_pylist", "peer")):
        wall = statistics.median(w for w, _ in res[key])
        cpu = statistics.median(c for _, c in res[key])
        print(f"{label:38}{wall:>8.2f}{cpu:>8.2f}{n / wall:>12,.0f}")
    fl = statistics.median(floor)
    print(f"{'pq.write_table only (floor)':38}{fl:>8.2f}{'':>8}{n / fl:>12,.0f}")
    print(f"same rows in both outputs: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
