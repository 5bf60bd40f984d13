"""What the gate reports about the capture itself: its loop lag, its writer queue, and rebuilt data.

Read from the run directory alone (``summary.json``, ``repairs.json``), like every gate input.

* Loop lag (``summary.json`` ``loop_lag_ms``): how long a just-arrived frame would have waited for
  the receive loop. It is *inside* every measured age already, so the latency checks judge it; it is
  reported beside them so a bad p99 can be told apart from our own stalls (information, not a check).
* Writer queue (``summary.json`` ``writer``): its high-water mark, and how often and how long it was
  full (reading paused; nothing lost, but stamps late meanwhile).
* Repairs (``repairs.json``): Parquet rows that ``mm repair`` rebuilt from the raw archive after a
  hard kill -- which tables, how many rows, over which capture interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def capture_health(run_dir: Path, summary: dict | None) -> dict[str, Any]:
    """``{"loop_lag_ms": {...} | None, "writer": {...} | None, "repairs": [...]}``."""
    from mm_core.store.repair import read_repairs

    s = summary or {}
    lag = s.get("loop_lag_ms")
    writer = s.get("writer")
    return {"loop_lag_ms": lag if isinstance(lag, dict) else None,
            "writer": writer if isinstance(writer, dict) and writer else None,
            "repairs": read_repairs(run_dir)}


def _ms(v: Any) -> str:
    return f"{v:.3f} ms" if isinstance(v, (int, float)) else "-"


def describe(health: dict[str, Any]) -> list[str]:
    """Lines for the gate's human output."""
    out: list[str] = []
    lag = health.get("loop_lag_ms")
    if lag:
        out.append(f"capture loop lag (our own stalls, inside every age; an upper bound): "
                   f"p50 {_ms(lag.get('p50'))}, p99 {_ms(lag.get('p99'))}, max {_ms(lag.get('max'))} "
                   f"over {lag.get('ticks', 0)} probes every {lag.get('interval_ms', '?')} ms")
    else:
        out.append("capture loop lag: not recorded (summary.json has no loop_lag_ms: an older collector, "
                   "or one killed before its first summary update)")
    w = health.get("writer")
    if w:
        full = w.get("queue_full_events") or 0
        out.append(f"writer queue: high-water {w.get('queue_high_water')} of {w.get('queue_max')} items"
                   + (f"; FULL {full} times, reading paused {w.get('queue_full_wait_s', 0):.3f} s in total "
                      "(nothing lost; frames meanwhile stamped late, see writer_queue_full events)"
                      if full else "; never full"))
    for r in health.get("repairs") or []:
        rows = r.get("rows") or {}
        what = ", ".join(f"{t} {n}" for t, n in rows.items() if n) or "no rows"
        out.append(f"REBUILT data: {what} Parquet rows rebuilt by {r.get('tool', 'mm repair')} at "
                   f"{r.get('repaired_at')} from the raw archive and event log, capture time "
                   f"{r.get('capture_from')} .. {r.get('capture_to')} (status {r.get('status')}; repairs.json)")
    return out
