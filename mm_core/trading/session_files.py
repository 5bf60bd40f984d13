"""The trading session's own files, written on one thread so the event loop never waits for a disk.

A paper/live run directory (:mod:`mm_core.trading.session_dir` is the contract) holds, besides the
market data the trader recorded (one collector run per process start, under ``market/NNN/``):

- ``events.jsonl``: the session's event log -- the feed-health events of every segment (connects,
  disconnects, checksum failures, status, clock estimates: what ``mm rollout-check`` and
  ``mm incidents scan`` read) and the trader's own events (``kind`` refused, cap_refusal,
  manual_kill, risk_breach, reconcile_difference, venue_connected / venue_disconnected, ...);
- ``transitions.jsonl``: every regime/risk transition (strategy/transitions.py ``records``);
- ``incidents/``: one incident per fault (:func:`mm_core.trading.incidents.open_incident` and the
  ``report_*`` helpers fsync on open: here, off the loop);
- ``runner_state.json``: what a restart restores (the pipeline's regime/risk/strategy state, the
  baseline holdings, counters), replaced atomically;
- ``summary.json``: the session summary (duration, uptime, exit reason, risk breaches, trading
  figures), replaced atomically every few seconds and at exit;
- ``fills.parquet`` / ``orders.parquet`` / ``session.json``: rewritten periodically and at exit.

``put(kind, payload)`` never blocks; ``close()`` writes what is queued and stops the thread.
"""

from __future__ import annotations

import collections
import json
import threading
from pathlib import Path
from typing import Any, Optional

import orjson

from mm_core.store.atomic import write_atomic

EVENT = "event"  # an mm_core.events Event or a plain dict with kind + t_ns -> events.jsonl
TRANSITIONS = "transitions"  # (transition records, window) -> transitions.jsonl (+ incidents)
INCIDENT = "incident"  # (callable(run_dir, window) -> incident refs, window)
JSON = "json"  # (file name, dict) -> replaced atomically
CALL = "call"  # a callable() run on this thread (tables, session.json)


class SessionFiles:
    """See the module docstring."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None
        self.incidents_opened = 0
        self._events = open(self.run_dir / "events.jsonl", "ab")
        self._transitions = open(self.run_dir / "transitions.jsonl", "ab")

    def start(self) -> "SessionFiles":
        self._thread = threading.Thread(target=self._run, name="mm-session-files", daemon=True)
        self._thread.start()
        return self

    def put(self, kind: str, payload: Any) -> None:
        self.queue.append((kind, payload))
        self._wake.set()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until what was queued so far is written (shutdown paths and tests)."""
        done = threading.Event()
        self.put(CALL, done.set)
        done.wait(timeout_s)

    def close(self, timeout_s: float = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._drain()
        for fh in (self._events, self._transitions):
            if not fh.closed:
                fh.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        q = self.queue
        wrote = False
        while q:
            kind, payload = q.popleft()
            try:
                self._one(kind, payload)
                wrote = wrote or kind in (EVENT, TRANSITIONS)
            except Exception as exc:  # a failed write is kept and reported; the trader goes on
                self.error = exc
        if wrote:
            self._events.flush()
            self._transitions.flush()

    def _one(self, kind: str, payload: Any) -> None:
        if kind == EVENT:
            if isinstance(payload, dict):
                rec = payload
            else:
                from mm_core.events import event_fields

                rec = event_fields(payload)
            self._events.write(orjson.dumps(rec, default=str) + b"\n")
        elif kind == TRANSITIONS:  # (records, telemetry window taken when they happened)
            from mm_core.trading.incidents import report_transitions

            recs, window = payload
            for r in recs:
                self._transitions.write(orjson.dumps(r) + b"\n")
            self._transitions.flush()
            refs = report_transitions(self.run_dir, recs, telemetry=window)
            self.incidents_opened += sum(1 for r in refs if r.opened)
        elif kind == INCIDENT:  # (fn(run_dir, window) -> refs, window)
            fn, window = payload
            refs = fn(self.run_dir, window)
            self.incidents_opened += sum(1 for r in (refs or []) if getattr(r, "opened", False))
        elif kind == JSON:
            name, data = payload
            write_atomic(self.run_dir / name, json.dumps(data, indent=1, default=str).encode("utf-8"))
        elif kind == CALL:
            payload()
