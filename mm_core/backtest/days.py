"""One day of the store as backtest rows, built on the worker that runs the day's tasks.

A task names its day by paths and partition keys (:class:`mm_core.store.partitions.Day`) plus,
when needed, the *book seed*: the levels of the book as it stood at the day's first message. Why a
seed: a collector runs across midnight, so every day but the first opens mid-stream, with no
snapshot; rows built from that day alone would start from a half-empty book. The seed is the
book at the end of the day before (at most ``depth`` levels a side, a few hundred bytes), so the
day's rows are exactly the rows of one pass over the whole capture (a test checks it row by row).

Seeds come from a short serial pass before the sweep (:func:`carry_books`): for each run of
consecutive days that continue a capture, one task walks the days in order, building each day's
rows (cached, so the sweep's tasks find them) and handing the end-of-day book to the next.

Rows are cached like every other source (:func:`mm_core.backtest.event_arrays.cached`, keyed by the
part files' names, sizes and mtimes, the seed and the code that builds rows), and the last days a
worker process used stay in memory: tasks are ordered day by day, so a worker running fifty
configurations of one day reads its rows once.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional

from mm_core.backtest import event_arrays as ea
from mm_core.store.partitions import Day

_MEMO: "OrderedDict[str, ea.MarketArrays]" = OrderedDict()
_MEMO_DAYS = 2


def day_spec(day: Day, *, tick_size: Optional[float], lot_size: float, depth: Optional[int],
             seed: Optional[dict] = None) -> dict[str, Any]:
    """What a task carries to name its day's rows: paths, keys, instrument rules (``tick_size``
    None: inferred from the day's prices), the seed."""
    return {"day": day.to_json(), "tick_size": None if tick_size is None else float(tick_size),
            "lot_size": float(lot_size), "depth": depth, "seed": seed}


def _key(spec: dict[str, Any], files: dict[str, list[str]]) -> dict[str, object]:
    parts = []
    for table in sorted(files):
        for f in files[table]:
            st = Path(f).stat()
            parts.append((f, st.st_size, st.st_mtime_ns))
    seed = spec.get("seed")
    seed_digest = hashlib.sha256(json.dumps(seed, sort_keys=True).encode()).hexdigest()[:16] if seed else None
    return {"source": "run_dir", "partition_files": parts, "seed": seed_digest, "tick": spec["tick_size"],
            "lot": spec["lot_size"], "depth": spec.get("depth")}


def day_market(spec: dict[str, Any]) -> ea.MarketArrays:
    """The day's rows: from this process's memory, the row cache, or built from the part files."""
    day = Day.from_json(spec["day"])
    files = day.files()
    if not any(files.values()):
        raise FileNotFoundError(f"{', '.join(day.dirs)}: no Parquet parts for {day.symbol} on {day.date}")
    key = _key(spec, files)
    memo = json.dumps(key, sort_keys=True, default=str)
    got = _MEMO.get(memo)
    if got is not None:
        _MEMO.move_to_end(memo)
        return got
    seed = ea.BookSeed.from_json(spec["seed"]) if spec.get("seed") else None

    def build() -> ea.MarketArrays:
        return ea.from_files({t: [Path(f) for f in fs] for t, fs in files.items()}, tick_size=spec["tick_size"],
                             lot_size=spec["lot_size"], depth=spec.get("depth"), seed=seed,
                             where=f"{day.symbol} {day.date}")

    m, _, _ = ea.cached(key, build)
    _MEMO[memo] = m
    while len(_MEMO) > _MEMO_DAYS:
        _MEMO.popitem(last=False)
    return m


def probe_day(spec: dict[str, Any]) -> dict[str, Any]:
    """Task: does the day open with a book snapshot? Reads one row of one part (the earliest by
    capture time of each partition folder's first book part)."""
    import pyarrow.parquet as pq

    day = Day.from_json(spec["day"])
    first: Optional[tuple[int, bool]] = None
    for d in day.dirs:
        parts = sorted(Path(d).glob("book-*.parquet"))
        if not parts:
            continue
        f = pq.ParquetFile(parts[0])
        if f.metadata.num_rows == 0:
            continue
        t = f.read_row_group(0, columns=["ts_capture", "kind"]).slice(0, 1)
        cap = int(t.column("ts_capture")[0].as_py() or 0)
        snap = t.column("kind")[0].as_py() == "book_snapshot"
        if first is None or cap < first[0]:
            first = (cap, snap)
    has_book = first is not None
    # no book table: rows come from top_of_book, where every message is a whole top of book
    return {"date": day.date, "has_book": has_book, "opens_with_snapshot": first[1] if has_book else True}


def carry_books(specs: list[dict[str, Any]]) -> list[Optional[dict]]:
    """Task: walk consecutive days in order; returns the seed of each day after the first (the
    first day's own seed, if any, is in its spec). Builds (and caches) every day's rows but the
    last's on the way."""
    seeds: list[Optional[dict]] = []
    seed = specs[0].get("seed")
    for spec in specs[:-1]:
        m = day_market({**spec, "seed": seed})
        seed = ea.BookSeed.at_end(m).to_json()
        seeds.append(seed)
    return seeds


def _next_date(a: str, b: str) -> bool:
    from datetime import date, timedelta

    return date.fromisoformat(a) + timedelta(days=1) == date.fromisoformat(b)


def seeded_specs(runner: Any, days: list[Day], *, tick_size: Optional[float], lot_size: float,
                 depth: Optional[int]) -> tuple[list[dict[str, Any]], list[str]]:
    """Day specs with their book seeds, and notes (days that open mid-stream with nothing before).

    Two rounds on ``runner``: every day is probed in parallel; then each chain of days that continue
    the day before (no snapshot at the start, the previous calendar day present) is walked by one
    task, chains in parallel."""
    specs = [day_spec(d, tick_size=tick_size, lot_size=lot_size, depth=depth) for d in days]
    probes = runner.map(probe_day, specs, label="probe days")
    notes: list[str] = []
    chains: list[list[int]] = []
    for i, (d, p) in enumerate(zip(days, probes)):
        continues = p["has_book"] and not p["opens_with_snapshot"]
        if continues and i > 0 and _next_date(days[i - 1].date, d.date):
            if chains and chains[-1][-1] == i - 1:
                chains[-1].append(i)
            else:
                chains.append([i - 1, i])
        elif continues:
            notes.append(f"{d.symbol} {d.date}: opens without a book snapshot and the day before is not in the "
                         "data: its book is built from updates alone until a snapshot arrives")
    results = runner.map(carry_books, [[specs[i] for i in c] for c in chains], label="carry books")
    for chain, seeds in zip(chains, results):
        for i, seed in zip(chain[1:], seeds):
            specs[i] = {**specs[i], "seed": seed}
    return specs, notes
