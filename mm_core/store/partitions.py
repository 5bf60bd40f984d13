"""Days of the partitioned store (``exchange=/symbol=/date=`` folders), found by their paths alone.

Why only paths: a distributed sweep or study runs one task per day on whichever worker is free,
and each worker reads its own day's files. The client lists folders -- it never opens a Parquet
file -- so nothing but paths and partition keys crosses to the workers, and the store can be far
larger than the client's memory.

A *store root* is any folder with partitions below it: a collector run directory (its ``parquet/``
folder), that folder itself, or a folder of many run directories (``runs/``). Several run
directories may hold the same (exchange, symbol, date) -- the collector was restarted that day --
and then that day is all of their folders together.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterable, Optional, Sequence

TABLES = ("book", "trade", "top_of_book")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class StoreError(ValueError):
    """A store root, filter or date that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Day:
    """One (exchange, symbol, date) partition, possibly spread over several run directories."""

    exchange: str
    symbol_dir: str  # the folder's spelling (BTC-EUR)
    date: str  # YYYY-MM-DD (UTC, by capture time: how the collector files it)
    dirs: tuple[str, ...]  # absolute partition folders, sorted

    @property
    def symbol(self) -> str:
        return self.symbol_dir.replace("-", "/")

    def files(self) -> dict[str, list[str]]:
        """Part files per table (listed where this runs: on the worker, for a task)."""
        out: dict[str, list[str]] = {}
        for table in TABLES:
            out[table] = [str(f) for d in self.dirs for f in sorted(Path(d).glob(f"{table}-*.parquet"))]
        return out

    def to_json(self) -> dict[str, object]:
        return {"exchange": self.exchange, "symbol": self.symbol, "date": self.date, "dirs": list(self.dirs)}

    @classmethod
    def from_json(cls, d: dict) -> "Day":
        return cls(str(d["exchange"]), str(d["symbol"]).replace("/", "-"), str(d["date"]), tuple(d["dirs"]))


def run_dir_of(partition: str | Path) -> Path:
    """The run directory a partition folder belongs to (above ``parquet/`` or ``exchange=``): where
    a simulated run's ``sim.json`` says what made the data."""
    p = Path(partition)
    while p.parent != p and "=" in p.name:
        p = p.parent
    return p.parent if p.name == "parquet" else p


def _keys(folder: Path) -> dict[str, str]:
    return dict(p.split("=", 1) for p in folder.parts if "=" in p)


def _check_date(text: Optional[str], flag: str) -> Optional[str]:
    if text is None:
        return None
    try:
        if not _DATE.match(text):
            raise ValueError
        date.fromisoformat(text)
    except ValueError:
        raise StoreError(f"{flag} {text!r}: expected a date YYYY-MM-DD") from None
    return text


def find_days(roots: Sequence[Path], *, date_from: Optional[str] = None, date_to: Optional[str] = None,
              exchange: Optional[str] = None, symbol: Optional[str] = None) -> list[Day]:
    """Every day partition below ``roots`` within ``[date_from, date_to]`` (inclusive), in date order."""
    date_from = _check_date(date_from, "--from")
    date_to = _check_date(date_to, "--to")
    if date_from and date_to and date_from > date_to:
        raise StoreError(f"--from {date_from} is after --to {date_to}")
    want_sym = symbol.replace("/", "-").upper() if symbol else None
    found: dict[tuple[str, str, str], set[str]] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise StoreError(f"{root}: no such directory (give a run directory or a store root)")
        for folder in _date_folders(root):
            k = _keys(folder)
            ex, sym, day = k.get("exchange", ""), k.get("symbol", ""), k.get("date", "")
            if not ex or not sym or not _DATE.match(day):
                continue
            if (exchange and ex != exchange.lower()) or (want_sym and sym.upper() != want_sym):
                continue
            if (date_from and day < date_from) or (date_to and day > date_to):
                continue
            found.setdefault((ex, sym, day), set()).add(str(folder.resolve()))
    return [Day(ex, sym, day, tuple(sorted(dirs))) for (ex, sym, day), dirs in sorted(found.items(),
                                                                                      key=lambda kv: (kv[0][2], kv[0]))]


def _date_folders(root: Path) -> Iterable[Path]:
    if root.name.startswith("date=") and root.is_dir():
        yield root
        return
    for p in root.rglob("date=*"):
        if p.is_dir() and any(p.glob("*.parquet")):
            yield p


def one_instrument(days: list[Day], where: str) -> list[Day]:
    """The days, checked to be of one (exchange, symbol): a sweep or study is per instrument."""
    if not days:
        raise StoreError(f"{where}: no day partitions (exchange=/symbol=/date= folders with Parquet files) "
                         "match; check the path and --from/--to")
    inst = sorted({(d.exchange, d.symbol) for d in days})
    if len(inst) > 1:
        names = ", ".join(f"{e} {s}" for e, s in inst)
        raise StoreError(f"{where}: several instruments ({names}): choose one with --symbol (and --exchange)")
    return days


def add_store_args(p: argparse.ArgumentParser, *, instrument: bool = True) -> None:
    """``--store``, ``--from``, ``--to`` and (``instrument``) ``--exchange``, ``--symbol``."""
    g = p.add_argument_group("many days (partitioned store)")
    g.add_argument("--store", type=Path, metavar="ROOT",
                   help="store root: run directories or Parquet folders below it; one task per (configuration, day)")
    g.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (inclusive; default: the first found)")
    g.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (inclusive; default: the last found)")
    if instrument:
        g.add_argument("--exchange", help="only this exchange's partitions")
        g.add_argument("--symbol", help="only this symbol's partitions (BTC/EUR or BTC-EUR)")


def add_scheduler_args(p: argparse.ArgumentParser, *, workers_default: Optional[int] = 2) -> None:
    """``--scheduler`` and (unless the command has its own) ``--workers``."""
    g = p.add_argument_group("where the tasks run")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask: tcp://HOST:8786 (a running cluster) or 'local' (a LocalCluster of --workers "
                        "processes on this machine); default: a process pool on this machine")
    if workers_default is not None:
        g.add_argument("--workers", type=int, default=workers_default,
                       help="processes of the pool or of the LocalCluster")
