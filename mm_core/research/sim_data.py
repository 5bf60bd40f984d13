"""Simulator days for research and backtest tests: canonical events in memory or as a run directory.

Why: research and backtest tests need day-sized, *known* data in seconds, without sockets. The
simulator's market model (:class:`mm_core.simexchange.market.MarketModel`) has a switch,
``predictive``: with it on, L1 imbalance predicts the direction of the next mid move; with it off,
nothing in the book does -- the ground truth the fair-mid evaluation is checked against.

``profile`` picks the market the model imitates (:mod:`mm_core.simexchange.profiles`): ``default``
is fitted to real Kraken depth-10 traffic (a quiet market: the mid changes about once in 10 s),
``busy`` to a busier session (~70 updates/s); a path or a
:class:`~mm_core.simexchange.market.MarketParams` works too. The same model serves ``mm simexchange``,
so ``--sim-seconds`` data and the socket simulator look alike.

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
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Union

from mm_core.events import Event
from mm_core.research.book_frames import EventColumns, columns_from_events

if TYPE_CHECKING:
    from mm_core.simexchange.market import MarketParams

SIM_TICK_SIZE = 0.1  # the simulator's price grid (BTC/EUR, 1 decimal)
ProfileLike = Union[None, str, Path, "MarketParams"]


def sim_params(profile: ProfileLike = None) -> "MarketParams":
    """The model parameters of a profile name, a profile file, or MarketParams (None = default)."""
    from mm_core.simexchange.market import MarketParams
    from mm_core.simexchange.profiles import load_profile

    if profile is None:
        return MarketParams()
    if isinstance(profile, MarketParams):
        return profile
    return load_profile(profile).params


def _profile_label(profile: ProfileLike) -> str:
    if profile is None:
        return "default"
    if isinstance(profile, (str, Path)):
        return str(profile)
    return "custom"


def sim_events(seconds: float, seed: int = 0, predictive: bool = True, *, depth: int = 10,
               symbol: str = "BTC/EUR", tops: bool = False, profile: ProfileLike = None) -> Iterator[Event]:
    """Canonical events of a fresh simulated market (exchange time = capture time)."""
    from mm_core.simexchange.canonical import canonical_events
    from mm_core.simexchange.market import MarketModel

    model = MarketModel(seed=seed, predictive=predictive, params=sim_params(profile))
    return canonical_events(model, seconds, depth=depth, symbol=symbol, tops=tops)


def sim_columns(seconds: float, seed: int = 0, predictive: bool = True, *, depth: int = 10,
                symbol: str = "BTC/EUR", profile: ProfileLike = None) -> EventColumns:
    """Simulated events straight into research columns (no files): the fastest path for tests."""
    return columns_from_events(sim_events(seconds, seed, predictive, depth=depth, symbol=symbol, profile=profile),
                               source=f"simulator(profile={_profile_label(profile)}, seed={seed}, "
                                      f"predictive={predictive}, {seconds:g} s)")


def sim_source(text: str) -> tuple[Iterable[Event], str]:
    """``sim:PROFILE[:SECONDS[:SEED]]`` (e.g. ``sim:default:600``) -> events and a label, for
    commands that take a data source (``mm realism``). Defaults: 3600 s, seed 0, predictive."""
    parts = text.split(":")
    if parts[0] != "sim" or not 2 <= len(parts) <= 4 or not parts[1]:
        raise ValueError(f"{text!r}: expected sim:PROFILE[:SECONDS[:SEED]], e.g. sim:default:600")
    try:
        seconds = float(parts[2]) if len(parts) > 2 else 3600.0
        seed = int(parts[3]) if len(parts) > 3 else 0
    except ValueError:
        raise ValueError(f"{text!r}: SECONDS must be a number and SEED an integer") from None
    if not 0 < seconds <= 7 * 86_400:
        raise ValueError(f"{text!r}: SECONDS must be in (0, 604800]")
    params = sim_params(parts[1])
    return sim_events(seconds, seed, True, profile=params), f"simulator profile {parts[1]}, {seconds:g} s, seed {seed}"


def write_sim_run(run_dir: Path, seconds: float = 86_400.0, seed: int = 0, predictive: bool = True, *,
                  depth: int = 10, symbol: str = "BTC/EUR", tops: bool = True,
                  progress: Optional[Callable[[str], None]] = None, profile: ProfileLike = None) -> dict[str, object]:
    """Write a simulated run directory (Parquet layout of the collector); returns a summary dict."""
    from mm_core.store.parquet_store import ParquetEventStore

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    store = ParquetEventStore(run_dir / "parquet", flush_interval_s=1e9, max_rows=250_000)
    t0 = time.perf_counter()
    n = 0
    last = t0
    for ev in sim_events(seconds, seed, predictive, depth=depth, symbol=symbol, tops=tops, profile=profile):
        store.add(ev)
        n += 1
        if progress is not None and n % 100_000 == 0 and time.perf_counter() - last > 2.0:
            last = time.perf_counter()
            progress(f"simulator: {n:,} events written ({n / (last - t0):,.0f}/s)")
    store.close()
    elapsed = time.perf_counter() - t0
    summary: dict[str, object] = {
        "kind": "simulator", "profile": _profile_label(profile), "seconds": seconds, "seed": seed,
        "predictive": predictive, "depth": depth,
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
