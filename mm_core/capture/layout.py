"""Layout of a run directory: every file one collector run writes, in one folder.

``mm gate RUN_DIR`` judges a run from this folder alone, so the names here are the contract between
the collector (writer) and QA / latency / gate / daily (readers)::

    RUN_DIR/
      <name>.csv            samples: one row per verified book update with an exchange time,
                            with the top of book after it (CSV_COLUMNS)
      summary.json          run summary, rewritten atomically every few seconds and at exit
      events.jsonl          event log: one JSON object per feed-health event (kind, ts_capture, ...)
      raw/raw-<YYYYmmddTHH>.jsonl.gz
                            raw archive: first line RAW_HEADER_PREFIX + JSON header, then one line
                            per frame: "<ts_capture_ns> <frame text>"; one gzip member per flush
      parquet/exchange=<ex>/symbol=<SYM>/date=<YYYY-mm-dd>/<table>-<HH>-<n>.parquet
                            canonical events (tables: top_of_book, book, trade, health)
"""

from __future__ import annotations

import json
from pathlib import Path

CSV_COLUMNS = (
    "exchange",
    "symbol",
    "ts_exchange",
    "ts_capture",
    "age_ms",
    "bid",
    "bid_qty",
    "ask",
    "ask_qty",
)
SUMMARY_NAME = "summary.json"
EVENTS_NAME = "events.jsonl"
RAW_DIR = "raw"
PARQUET_DIR = "parquet"
RAW_HEADER_PREFIX = "#mm_core-raw "

# exit reasons written to summary["exit_reason"]
EXIT_RUNNING = "running"  # still running, or killed before it could write an exit reason
EXIT_MAX_SECONDS = "max_seconds"
EXIT_SIGNAL = "signal"
EXIT_FATAL = "fatal"


def symbol_dir_name(symbol: str) -> str:
    """``BTC/EUR`` -> ``BTC-EUR`` (a path-safe partition value on every OS)."""
    return symbol.replace("/", "-")


def find_csv(run_dir: Path) -> Path | None:
    """The run's sample CSV: the one named in the summary, else the only ``*.csv`` in the folder."""
    summary = read_summary(run_dir)
    if summary and summary.get("csv"):
        p = run_dir / summary["csv"]
        if p.is_file():
            return p
    csvs = sorted(run_dir.glob("*.csv"))
    return csvs[0] if len(csvs) == 1 else None


def read_summary(run_dir: Path) -> dict | None:
    p = run_dir / SUMMARY_NAME
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_events(run_dir: Path) -> list[dict]:
    """All events of the event log; a torn last line (hard kill) is skipped, not fatal."""
    p = run_dir / EVENTS_NAME
    out: list[dict] = []
    if not p.is_file():
        return out
    with p.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
