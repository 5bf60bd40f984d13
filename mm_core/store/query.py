"""``mm query "SQL"``: the whole store as tables, on DuckDB, straight from the Parquet partitions.

Views (each only when the store holds its files):

- ``top_of_book``, ``book``, ``trade``, ``health``: every ``<table>-HH-NNNN.parquet`` part below
  ``--store``, read with Hive partitioning, so ``exchange``, ``symbol`` and ``date`` are columns
  taken from the ``exchange=/symbol=/date=`` folders (``symbol`` as the folder spells it, ``BTC-EUR``;
  ``date`` is a DATE, the UTC capture day) and a filter on them skips whole folders;
- ``fills``, ``orders``: the trading run directories' ``fills.parquet`` / ``orders.parquet``
  (``mm backtest --out``, paper, live), with ``run`` = the run directory.

Nothing is loaded first: DuckDB scans only the columns and folders the query needs. Polars and
Spark read the same files as the same tables (README, "Query the store").

Examples::

    mm query "SELECT date, count(*) AS trades, sum(qty) AS btc FROM trade GROUP BY date ORDER BY date"
    mm query "SHOW TABLES"
    mm query "DESCRIBE book" --store runs/day1

Exit 0 with the result; 2 (one line on stderr) on bad SQL, an unknown table or column, or a store
without Parquet tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

MARKET_TABLES = ("top_of_book", "book", "trade", "health")
RUN_TABLES = ("fills", "orders")
HUMAN_ROWS = 200


def register(subparsers) -> None:
    p = subparsers.add_parser("query", help="SQL over the Parquet store on DuckDB (tables: top_of_book, book, "
                                            "trade, health, fills, orders)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sql", help="one SQL statement (DuckDB dialect)")
    p.add_argument("--store", type=Path, default=Path(os.environ.get("MM_STORE", ".")),
                   help="store root: a run directory, its parquet/ folder, or a folder of runs "
                        "(default: $MM_STORE, else the current folder)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="rows as a JSON array of objects")
    out.add_argument("--csv", action="store_true", help="rows as CSV with a header line")
    p.set_defaults(func=run)


class QueryError(ValueError):
    """Bad SQL or an unusable store (one line)."""


def _glob(root: Path, pattern: str) -> str:
    return (root.resolve() / "**" / pattern).as_posix().replace("'", "''")


def views(root: Path) -> dict[str, str]:
    """``CREATE VIEW`` statements for the tables present below ``root``."""
    if not root.exists():
        raise QueryError(f"{root}: no such folder (give --store a run directory or a folder of runs)")
    out: dict[str, str] = {}
    for t in MARKET_TABLES:
        if next(root.rglob(f"{t}-*.parquet"), None) is not None:
            out[t] = (f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{_glob(root, f'{t}-*.parquet')}', "
                      "hive_partitioning = true, union_by_name = true)")
    for t in RUN_TABLES:
        if next(root.rglob(f"{t}.parquet"), None) is not None:
            out[t] = (f"CREATE VIEW {t} AS SELECT * EXCLUDE (filename), parse_dirpath(filename) AS run FROM "
                      f"read_parquet('{_glob(root, f'{t}.parquet')}', hive_partitioning = false, "
                      "union_by_name = true, filename = true)")
    if not out:
        raise QueryError(f"{root}: no Parquet tables below it (expected exchange=/symbol=/date= folders of a "
                         "collector run, or fills.parquet/orders.parquet of trading runs)")
    return out


def query(sql: str, root: Path) -> tuple[list[str], list[tuple]]:
    """Column names and rows of ``sql`` over the store at ``root``."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        for stmt in views(root).values():
            con.execute(stmt)
        try:
            cur = con.execute(sql)
        except duckdb.Error as exc:
            raise QueryError(_one_line(exc)) from None
        if cur.description is None:
            return [], []
        cols = [d[0] for d in cur.description]
        return cols, cur.fetchall()
    finally:
        con.close()


def _one_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return " ".join(lines[:1]) if lines else type(exc).__name__


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.10g}"
    return str(v)


def render_table(cols: list[str], rows: list[tuple]) -> str:
    shown = rows[:HUMAN_ROWS]
    cells = [[_cell(v) for v in r] for r in shown]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    more = len(rows) - len(shown)
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''}"
                 + (f"; first {len(shown)} shown, --csv or --json for all)" if more else ")"))
    return "\n".join(lines)


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (list, dict)):  # book levels: JSON in one cell
        return json.dumps(v, default=_json_default)
    return v.isoformat() if hasattr(v, "isoformat") else v


def _json_default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def run(args: argparse.Namespace) -> int:
    try:
        cols, rows = query(args.sql, args.store)
    except QueryError as exc:
        print(f"mm query: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(json.dumps([dict(zip(cols, r)) for r in rows], default=_json_default) + "\n")
    elif args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([_csv_cell(v) for v in r])
    elif cols:
        print(render_table(cols, rows))
    return 0
