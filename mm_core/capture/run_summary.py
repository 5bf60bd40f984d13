"""The run summary: what a capture run did, kept current on disk while it runs.

Rewritten atomically every few seconds and at exit, so a killed run still leaves a summary that says
how far it got (``exit_reason`` stays "running" and ``updated_ns`` shows when it was last alive).
The gate reads duration, exit reason, samples, reconnects and the longest gap from it, and reports
the capture loop's lag and the writer queue's state (``loop_lag_ms``, ``writer``).
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

from mm_core.capture.layout import EXIT_RUNNING, SUMMARY_NAME
from mm_core.store.atomic import write_atomic


@dataclass
class RunSummary:
    exchange: str
    symbol: str
    url: str
    config: str | None
    csv: str
    started_ns: int = field(default_factory=time.time_ns)
    # who writes this run: a later start (or mm repair) can tell a killed collector from a live one
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    updated_ns: int = 0
    ended_ns: int | None = None
    duration_s: float = 0.0
    connected_s: float = 0.0
    uptime_share: float = 0.0
    samples: int = 0
    messages: int = 0
    book_updates: int = 0
    checksums_ok: int = 0
    checksums_failed: int = 0
    unverified_updates: int = 0
    resyncs: int = 0
    connects: int = 0
    reconnects: int = 0
    disconnects: int = 0
    silences: int = 0
    longest_gap_s: float = 0.0
    bad_messages: int = 0
    subscription_errors: int = 0
    heartbeats: int = 0
    trades: int = 0
    exit_reason: str = EXIT_RUNNING
    fatal_error: str | None = None
    # the capture loop's own lag (mm_core/capture/loop_lag.py): interval_ms, ticks, p50, p99, max, mean
    loop_lag_ms: dict | None = None
    # the writer thread's queue: queue_max, queue_high_water, queue_full_events, queue_full_wait_s
    writer: dict = field(default_factory=dict)
    clock_offsets_ms: list[float] = field(default_factory=list, repr=False)
    rtts_ms: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("clock_offsets_ms", "rtts_ms")}
        d = {"format": "mm_core-run-summary", "version": 1, **d}
        d["started_at"] = _iso(self.started_ns)
        d["updated_at"] = _iso(self.updated_ns) if self.updated_ns else None
        d["ended_at"] = _iso(self.ended_ns) if self.ended_ns else None
        d["clock_offset_ms"] = _median(self.clock_offsets_ms)
        d["rtt_ms"] = _median(self.rtts_ms)
        d["clock_estimates"] = len(self.clock_offsets_ms)
        return d

    def write(self, run_dir: Path) -> None:
        self.updated_ns = time.time_ns()
        write_atomic(run_dir / SUMMARY_NAME, orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")
