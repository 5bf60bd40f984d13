"""Simulator days for research and backtest tests: canonical events in memory or as a run directory.

Why: research and backtest tests need day-sized, *known* data in seconds, without sockets. The
simulator's market model (:class:`mm_core.simexchange.market.MarketModel`) has a switch,
``predictive``: with it on, L1 imbalance predicts the direction of the next mid move; with it off,
nothing in the book does -- the ground truth the fair-mid evaluation is checked against.

:func:`write_sim_run` writes what a collector subscribed to the simulator would have stored, in the
same layout (``RUN/parquet/exchange=…/symbol=…/date=…/{book,trade,top_of_book}-HH-NNNN.parquet``,
through :class:`mm_core.store.parquet_store.ParquetEventStore`), plus a small ``sim.json`` saying
how it was made.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from mm_core.events import Event
from mm_core.research.book_frames import EventColumns, columns_from_events

SIM_TICK_SIZE = 0.1  # the simulator's price grid (BTC/EUR, 1 decimal)


def sim_events(seconds: float, seed: int = 0, predictive: bool = True, *, depth: int = 10,
               symbol: str = "BTC/EUR", tops: bool = False) -> Iterator[Event]:
    """Canonical events of a fresh simulated market (exchange time = capture time)."""
    from mm_core.simexchange.canonical import canonical_events
    from mm_core.simexchange.market import MarketModel

    model = MarketModel(seed=seed, predictive=predictive)
    return canonical_events(model, seconds, depth=depth, symbol=symbol, tops=tops)


def sim_columns(seconds: float, seed: int = 0, predictive: bool = True, *, depth: int = 10,
                symbol: str = "BTC/EUR") -> EventColumns:
    """Simulated events straight into research columns (no files): the fastest path for tests."""
    return columns_from_events(sim_events(seconds, seed, predictive, depth=depth, symbol=symbol),
                               source=f"simulator(seed={seed}, predictive={predictive}, {seconds:g} s)")


def write_sim_run(run_dir: Path, seconds: float = 86_400.0, seed: int = 0, predictive: bool = True, *,
                  depth: int = 10, symbol: str = "BTC/EUR", tops: bool = True,
                  progress: Optional[Callable[[str], None]] = None) -> dict[str, object]:
    """Write a simulated run directory (Parquet layout of the collector); returns a summary dict."""
    from mm_core.store.parquet_store import ParquetEventStore

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    store = ParquetEventStore(run_dir / "parquet", flush_interval_s=1e9, max_rows=250_000)
    t0 = time.perf_counter()
    n = 0
    last = t0
    for ev in sim_events(seconds, seed, predictive, depth=depth, symbol=symbol, tops=tops):
        store.add(ev)
        n += 1
        if progress is not None and n % 100_000 == 0 and time.perf_counter() - last > 2.0:
            last = time.perf_counter()
            progress(f"simulator: {n:,} events written ({n / (last - t0):,.0f}/s)")
    store.close()
    elapsed = time.perf_counter() - t0
    summary: dict[str, object] = {
        "kind": "simulator", "seconds": seconds, "seed": seed, "predictive": predictive, "depth": depth,
        "symbol": symbol, "events": n, "rows_written": dict(store.rows_written), "files": len(store.files),
        "write_seconds": round(elapsed, 3), "tick_size": SIM_TICK_SIZE,
    }
    (run_dir / "sim.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def main() -> int:  # pragma: no cover - manual helper
    """``python -m mm_core.research.sim_data DIR [SECONDS] [SEED] [--no-predictive]``."""
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not args:
        print(main.__doc__, file=sys.stderr)
        return 2
    s = write_sim_run(Path(args[0]), float(args[1]) if len(args) > 1 else 86_400.0,
                      int(args[2]) if len(args) > 2 else 0, "--no-predictive" not in sys.argv,
                      progress=lambda m: print(m, file=sys.stderr))
    print(json.dumps(s))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
