"""Incidents: one record per fault, with its telemetry, notes, cause, action and status.

``mm incidents list|show|annotate|close|review|scan RUN_DIR``; the runners call
:func:`open_incident` (or the helpers :func:`report_difference`, :func:`report_transitions`) for
every kill switch, risk trigger, reconciliation difference, disconnect storm, checksum failure
burst or clock-skew alarm. On a collector run directory (or any directory with an
``events.jsonl``), :func:`scan_event_log` finds disconnect storms, checksum bursts and clock skew
in the event log, so the workflow is useful before any trading exists.

Store (``RUN_DIR/incidents/``):

- ``incidents.jsonl``: append-only, one operation per line, each line ``<crc32> <json>`` (the
  order journal's format: a torn or damaged line is skipped, never glued to). Operations:
  ``open`` (id, kind, key, reason, t_ns, details), ``join`` (the same fault again: t_ns, count),
  ``annotate`` (note / cause / action), ``close``, ``scan`` (event-log high-water mark),
  ``reviewed`` (daily review mark). The state is the fold of the lines; nothing is rewritten.
  Opens are fsync'd before :func:`open_incident` returns; every append happens under an exclusive
  lock on ``incidents.lock`` (``fcntl``/``msvcrt``), and the dedup decision is taken under that
  lock after reading what other processes appended, so a runner and a person annotating from a
  second terminal never interleave or duplicate.
- ``<id>/telemetry.json``: what the runner handed over at the open (its in-memory window: market
  data ages, regimes, open orders, recent fills, PnL);
- ``<id>/window.json``: the surrounding window cut from the run directory's own files
  (``[t - window_before_s, last occurrence + window_after_s]``: event-log records, market-data
  ages from the sample CSV, orders, fills, position and cash, regime/risk transitions), written by
  :func:`extract_window` (``show`` and ``review`` refresh it until the window has closed), so an
  incident can be reviewed and replayed after the fact.

Dedup: an incident is keyed by ``(kind, key)``; a new occurrence within ``join_window_s`` of an
*open* incident with the same key joins it (its count and last time grow) instead of opening a new
one. So a storm of one fault is exactly one incident, and the same fault an hour later (or after
the first was closed) is a new one.

Status: ``open`` until closed; closing needs a cause and an action (a review that names neither
has not happened). ``mm rollout-check`` counts open incidents as unreviewed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from mm_core.trading.journal import decode_line, encode_line

INCIDENTS_DIR = "incidents"
LOG_NAME = "incidents.jsonl"
LOCK_NAME = "incidents.lock"
TELEMETRY_NAME = "telemetry.json"
WINDOW_NAME = "window.json"
TRANSITIONS_NAME = "transitions.jsonl"  # regime/risk transition records a runner writes (strategy/transitions.py)

KILL_SWITCH = "kill_switch"
RISK_TRIGGER = "risk_trigger"
RECONCILE_DIFFERENCE = "reconcile_difference"
DISCONNECT_STORM = "disconnect_storm"
CHECKSUM_BURST = "checksum_burst"
CLOCK_SKEW = "clock_skew"
RISK_BREACH = "risk_breach"  # a hard limit actually exceeded (not a trigger that held it): mm rollout-check counts these
KINDS = (KILL_SWITCH, RISK_TRIGGER, RECONCILE_DIFFERENCE, DISCONNECT_STORM, CHECKSUM_BURST, CLOCK_SKEW, RISK_BREACH)

# risk-layer causes (strategy/risk.py CAUSE_NAMES) -> (incident kind, key). The feed-fault kill
# switches map to the kinds the event-log scan uses, so the runner's report and the scan of the same
# run directory join one incident instead of making two.
CAUSE_TO_INCIDENT: dict[str, tuple[str, str]] = {
    "drawdown": (KILL_SWITCH, "drawdown"),
    "reject_storm": (KILL_SWITCH, "reject_storm"),
    "cancel_storm": (KILL_SWITCH, "cancel_storm"),
    "rate_counter_near_limit": (KILL_SWITCH, "rate_counter"),
    "manual_kill": (KILL_SWITCH, "manual_kill"),
    "repeated_disconnects": (DISCONNECT_STORM, "feed"),
    "checksum_failures": (CHECKSUM_BURST, "book"),
    "clock_skew": (CLOCK_SKEW, "clock"),
    "inventory_beyond_max": (RISK_TRIGGER, "inventory"),
    "data_stale": (RISK_TRIGGER, "stale_data"),
    "data_invalid": (RISK_TRIGGER, "invalid_data"),
}

_S = 1_000_000_000
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class IncidentError(ValueError):
    """Bad incident input (unknown id, closing without a cause, unreadable store); the message says what."""


# --------------------------------------------------------------------------- state


@dataclass
class Incident:
    id: str
    kind: str
    key: str
    reason: str
    t_ns: int
    last_t_ns: int
    opened_at_ns: int
    count: int = 1
    source: str = "runner"
    status: str = "open"
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    cause: Optional[str] = None
    action: Optional[str] = None
    closed_at_ns: Optional[int] = None
    closed_by: Optional[str] = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def to_dict(self) -> dict[str, Any]:
        from mm_core.quality import iso_ns

        return {"id": self.id, "kind": self.kind, "key": self.key, "status": self.status, "reason": self.reason,
                "t_ns": self.t_ns, "time": iso_ns(self.t_ns), "last_t_ns": self.last_t_ns,
                "last_time": iso_ns(self.last_t_ns), "count": self.count, "source": self.source,
                "opened_at_ns": self.opened_at_ns, "details": self.details, "notes": self.notes,
                "cause": self.cause, "action": self.action, "closed_at_ns": self.closed_at_ns,
                "closed_by": self.closed_by}


@dataclass(frozen=True)
class IncidentRef:
    """What :func:`open_incident` returns: the incident's id, whether this call opened it, its count."""

    id: str
    opened: bool
    count: int


def _apply(state: dict[str, Incident], marks: dict[str, int], rec: dict[str, Any]) -> None:
    op = rec.get("op")
    iid = str(rec.get("id", ""))
    if op == "open":
        state[iid] = Incident(id=iid, kind=str(rec["kind"]), key=str(rec.get("key") or rec["kind"]),
                              reason=str(rec.get("reason", "")), t_ns=int(rec["t_ns"]), last_t_ns=int(rec["t_ns"]),
                              opened_at_ns=int(rec.get("at_ns", 0)), source=str(rec.get("source", "runner")),
                              details=dict(rec.get("details") or {}))
        return
    if op == "scan":
        marks["scan_through_ns"] = max(marks.get("scan_through_ns", 0), int(rec.get("through_ns", 0)))
        return
    if op == "reviewed":
        marks["reviewed_through_ns"] = max(marks.get("reviewed_through_ns", 0), int(rec.get("through_ns", 0)))
        return
    inc = state.get(iid)
    if inc is None:
        return
    if op == "join":
        inc.count = max(inc.count, int(rec.get("count", inc.count + 1)))
        inc.last_t_ns = max(inc.last_t_ns, int(rec.get("t_ns", inc.last_t_ns)))
        inc.t_ns = min(inc.t_ns, int(rec.get("t_ns", inc.t_ns)))
    elif op == "annotate":
        if rec.get("note"):
            inc.notes.append({"text": rec["note"], "by": rec.get("by"), "at_ns": rec.get("at_ns")})
        if rec.get("cause"):
            inc.cause = str(rec["cause"])
        if rec.get("action"):
            inc.action = str(rec["action"])
    elif op == "close":
        inc.status = "closed"
        inc.closed_at_ns = rec.get("at_ns")
        inc.closed_by = rec.get("by")


# --------------------------------------------------------------------------- the store


class _FileLock:
    """An exclusive lock on a small file for the duration of one append (blocking, cross-process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = None

    def __enter__(self) -> "_FileLock":
        self.fh = open(self.path, "a+b")
        if os.name == "nt":
            import msvcrt

            self.fh.seek(0)
            while True:
                try:
                    msvcrt.locking(self.fh.fileno(), msvcrt.LK_LOCK, 1)  # retries for ~10 s itself
                    break
                except OSError:
                    time.sleep(0.05)
        else:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.fh is not None
        try:
            if os.name == "nt":
                import msvcrt

                self.fh.seek(0)
                msvcrt.locking(self.fh.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
        finally:
            self.fh.close()


class IncidentStore:
    """The incident store of one run directory (see the module doc). Cheap to create."""

    def __init__(self, run_dir: str | Path, *, join_window_s: float = 300.0) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / INCIDENTS_DIR
        self.log = self.dir / LOG_NAME
        self.join_window_ns = int(join_window_s * _S)
        self.state: dict[str, Incident] = {}
        self.marks: dict[str, int] = {}
        self.bad_lines = 0
        self._offset = 0

    # ---------------------------------------------------------------- reading

    def refresh(self) -> "IncidentStore":
        """Read what was appended since the last read (by this or another process)."""
        if not self.log.is_file():
            return self
        with open(self.log, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written (or torn) is read next time
        for line in data[:end].splitlines(keepends=True):
            if not line.strip():
                continue
            rec = decode_line(line)
            if rec is None:
                self.bad_lines += 1
                continue
            _apply(self.state, self.marks, rec)
        self._offset += end
        return self

    def incidents(self) -> list[Incident]:
        self.refresh()
        return sorted(self.state.values(), key=lambda i: (i.t_ns, i.id))

    def get(self, incident_id: str) -> Incident:
        self.refresh()
        inc = self.state.get(incident_id)
        if inc is None:
            known = ", ".join(sorted(self.state)) or "none"
            raise IncidentError(f"{self.run_dir}: no incident {incident_id!r} (known: {known})")
        return inc

    # ---------------------------------------------------------------- writing

    def _append(self, recs: Sequence[dict[str, Any]], *, sync: bool) -> None:
        data = b"".join(encode_line(r) for r in recs)
        with open(self.log, "ab") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())

    def _cut_torn_tail(self) -> None:
        """Under the lock: drop a final line without its newline (a writer killed mid-line)."""
        try:
            size = self.log.stat().st_size
        except OSError:
            return
        if size == 0:
            return
        with open(self.log, "rb+") as fh:
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            data = fh.read()
            fh.truncate(data.rfind(b"\n") + 1)

    def _locked(self) -> _FileLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        return _FileLock(self.dir / LOCK_NAME)

    def report(self, kind: str, reason: str, t_ns: int, *, key: Optional[str] = None,
               details: Optional[Mapping[str, Any]] = None, telemetry: Optional[Mapping[str, Any]] = None,
               source: str = "runner") -> IncidentRef:
        """Open an incident, or join the open one with the same ``(kind, key)`` within the window."""
        if not _KIND_RE.match(kind):
            raise IncidentError(f"incident kind {kind!r}: lower-case letters, digits and _ only")
        key = key or kind
        t_ns = int(t_ns)
        with self._locked():
            self._cut_torn_tail()
            self.refresh()
            for inc in self.state.values():
                if (inc.is_open and inc.kind == kind and inc.key == key
                        and inc.t_ns - self.join_window_ns <= t_ns <= inc.last_t_ns + self.join_window_ns):
                    inc.count += 1
                    self._append([{"op": "join", "id": inc.id, "t_ns": t_ns, "count": inc.count,
                                   "reason": reason[:300]}], sync=False)
                    inc.last_t_ns = max(inc.last_t_ns, t_ns)
                    inc.t_ns = min(inc.t_ns, t_ns)
                    self._offset = self.log.stat().st_size
                    return IncidentRef(inc.id, False, inc.count)
            n = sum(1 for _ in self.state) + 1
            iid = f"{n:04d}-{kind.replace('_', '-')}"
            rec = {"op": "open", "id": iid, "kind": kind, "key": key, "reason": reason[:500], "t_ns": t_ns,
                   "at_ns": time.time_ns(), "source": source, "details": _plain(details or {})}
            if telemetry is not None:
                d = self.dir / iid
                d.mkdir(parents=True, exist_ok=True)
                _write_json(d / TELEMETRY_NAME, {"incident": iid, "t_ns": t_ns, **_plain(telemetry)})
            self._append([rec], sync=True)
            self._offset = self.log.stat().st_size
            _apply(self.state, self.marks, rec)
            return IncidentRef(iid, True, 1)

    def annotate(self, incident_id: str, *, note: Optional[str] = None, cause: Optional[str] = None,
                 action: Optional[str] = None, by: Optional[str] = None) -> Incident:
        if not (note or cause or action):
            raise IncidentError("annotate needs --note, --cause or --action")
        with self._locked():
            self._cut_torn_tail()
            self.get(incident_id)
            rec = {"op": "annotate", "id": incident_id, "note": note, "cause": cause, "action": action,
                   "by": by or _user(), "at_ns": time.time_ns()}
            self._append([rec], sync=True)
        return self.get(incident_id)

    def close(self, incident_id: str, *, by: Optional[str] = None, cause: Optional[str] = None,
              action: Optional[str] = None, note: Optional[str] = None) -> Incident:
        with self._locked():
            self._cut_torn_tail()
            inc = self.get(incident_id)
            if not inc.is_open:
                raise IncidentError(f"incident {incident_id} is already closed")
            if not (cause or inc.cause) or not (action or inc.action):
                raise IncidentError(f"incident {incident_id}: give --cause and --action to close it "
                                    "(a review that names neither has not happened)")
            recs = []
            if note or cause or action:
                recs.append({"op": "annotate", "id": incident_id, "note": note, "cause": cause, "action": action,
                             "by": by or _user(), "at_ns": time.time_ns()})
            recs.append({"op": "close", "id": incident_id, "by": by or _user(), "at_ns": time.time_ns()})
            self._append(recs, sync=True)
        return self.get(incident_id)

    def mark(self, op: str, through_ns: int) -> None:
        """Record the event-log scan or the daily review high-water mark."""
        with self._locked():
            self._cut_torn_tail()
            self._append([{"op": op, "through_ns": int(through_ns), "at_ns": time.time_ns()}], sync=True)
        self.refresh()


def _user() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-able copy (numpy scalars and arrays become numbers and lists; the rest becomes text)."""
    return json.loads(json.dumps(dict(d), default=_default))


def _default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    from mm_core.store.atomic import write_atomic

    write_atomic(path, json.dumps(_plain(data), indent=1).encode("utf-8"))


_STORES: dict[tuple[str, float], IncidentStore] = {}


def store_for(run_dir: str | Path, join_window_s: Optional[float] = None) -> IncidentStore:
    """One store object per run directory and window (the runners' :func:`open_incident` reuses it)."""
    if join_window_s is None:
        join_window_s = _config_value("join_window_s", 300.0)
    k = (str(Path(run_dir).resolve()), float(join_window_s))
    st = _STORES.get(k)
    if st is None:
        st = _STORES[k] = IncidentStore(run_dir, join_window_s=join_window_s)
    return st


def _config_value(name: str, default: float) -> float:
    try:
        from mm_core.config import load_config

        return float(getattr(load_config().incidents, name))
    except Exception:  # the shipped config is always loadable; a broken one must not stop the runner
        return default


# --------------------------------------------------------------------------- the runners' API


def open_incident(run_dir: str | Path, kind: str, reason: str, t_ns: int, *, key: Optional[str] = None,
                  details: Optional[Mapping[str, Any]] = None, telemetry: Optional[Mapping[str, Any]] = None,
                  join_window_s: Optional[float] = None, source: str = "runner") -> IncidentRef:
    """Record a fault: a new incident, or one more occurrence of the open one with the same key.

    ``kind``: one of :data:`KINDS` (or another lower_snake name); ``key`` separates faults of one
    kind (e.g. the kill-switch cause; default = the kind); ``t_ns``: when it happened (exchange or
    local ns, the runner's clock); ``details``: small plain data (values that caused it);
    ``telemetry``: the runner's in-memory window at this moment (market-data ages, regimes, open
    orders, recent fills, PnL), saved beside the incident on open. Blocking cost: one short locked
    append (an fsync on open, none on a join): call it from the runner's control path, not from
    the market-data receive loop.
    """
    return store_for(run_dir, join_window_s).report(kind, reason, t_ns, key=key, details=details,
                                                   telemetry=telemetry, source=source)


def report_difference(run_dir: str | Path, diff: Any, *, telemetry: Optional[Mapping[str, Any]] = None) -> IncidentRef:
    """A reconciliation :class:`~mm_core.trading.records.Difference` as an incident (keyed by its kind).

    ``OrderSupervisor(on_difference=lambda d: report_difference(run_dir, d))`` wires it."""
    from mm_core.trading.records import record_to_dict

    d = record_to_dict(diff)
    reason = f"{diff.kind} {diff.ref}: expected {diff.expected}, venue {diff.actual}; action {diff.action}"
    return open_incident(run_dir, RECONCILE_DIFFERENCE, reason, int(diff.ts_capture), key=str(diff.kind),
                         details=d, telemetry=telemetry)


def report_transitions(run_dir: str | Path, records: Iterable[Mapping[str, Any]], *,
                       telemetry: Optional[Mapping[str, Any]] = None) -> list[IncidentRef]:
    """Regime/risk transition records (``strategy/transitions.py`` ``records()``: ``t_ns, kind, from,
    to, cause, value``) -> incidents for kill switches and risk triggers; other rows are ignored."""
    out = []
    for r in records:
        cause = str(r.get("cause", ""))
        m = CAUSE_TO_INCIDENT.get(cause)
        if m is None or r.get("kind") not in ("trading", "risk"):
            continue
        kind, key = m
        reason = f"{cause}: {r.get('kind')} {r.get('from')} -> {r.get('to')} (value {r.get('value')})"
        out.append(open_incident(run_dir, kind, reason, int(r["t_ns"]), key=key, details=dict(r),
                                 telemetry=telemetry))
    return out


# --------------------------------------------------------------------------- event-log scan


@dataclass(frozen=True)
class ScanSettings:
    disconnect_storm_count: int = 3
    disconnect_storm_window_s: float = 300.0
    checksum_burst_count: int = 3
    checksum_burst_window_s: float = 60.0
    clock_skew_max_ms: float = 100.0
    join_window_s: float = 300.0

    @classmethod
    def from_config(cls, cfg) -> "ScanSettings":
        i = cfg.incidents
        return cls(i.disconnect_storm_count, i.disconnect_storm_window_s, i.checksum_burst_count,
                   i.checksum_burst_window_s, i.clock_skew_max_ms, i.join_window_s)


def _event_time(e: Mapping[str, Any]) -> Optional[int]:
    t = e.get("ts_capture")
    return int(t) if isinstance(t, int) else None


def detect(events: Sequence[Mapping[str, Any]], s: ScanSettings) -> list[dict[str, Any]]:
    """Occurrences of the three feed faults in an event log (each a dict for :meth:`IncidentStore.report`).

    A storm occurrence is every event from the one that completes ``count`` within ``window`` on;
    the store joins them into one incident."""
    out: list[dict[str, Any]] = []
    rules = ((DISCONNECT_STORM, "feed", ("disconnected",), s.disconnect_storm_count, s.disconnect_storm_window_s),
             (CHECKSUM_BURST, "book", ("checksum_mismatch",), s.checksum_burst_count, s.checksum_burst_window_s))
    for kind, key, names, count, window_s in rules:
        win: deque[int] = deque()
        w = int(window_s * _S)
        for e in events:
            if e.get("kind") not in names:
                continue
            t = _event_time(e)
            if t is None:
                continue
            win.append(t)
            while win and win[0] < t - w:
                win.popleft()
            if len(win) >= count:
                out.append({"kind": kind, "key": key, "t_ns": t,
                            "reason": f"{len(win)} {names[0]} events within {window_s:g} s "
                                      f"(threshold {count})",
                            "details": {"event": dict(e), "in_window": len(win)}})
    for e in events:
        if e.get("kind") != "clock_estimate":
            continue
        t = _event_time(e)
        off = e.get("offset_ns")
        if t is None or not isinstance(off, (int, float)):
            continue
        if abs(off) / 1e6 > s.clock_skew_max_ms:
            out.append({"kind": CLOCK_SKEW, "key": "clock", "t_ns": t,
                        "reason": f"clock offset {off / 1e6:+.1f} ms beyond {s.clock_skew_max_ms:g} ms",
                        "details": {"offset_ms": off / 1e6, "rtt_ms": (e.get("rtt_ns") or 0) / 1e6}})
    out.sort(key=lambda o: o["t_ns"])
    return out


def scan_event_log(run_dir: str | Path, settings: ScanSettings = ScanSettings()) -> list[IncidentRef]:
    """Report the faults of ``RUN_DIR/events.jsonl`` not scanned before (idempotent: a second scan of
    the same log reports nothing new; a growing log reports only what came after the last scan)."""
    from mm_core.capture.layout import read_events

    events = read_events(Path(run_dir))
    st = IncidentStore(run_dir, join_window_s=settings.join_window_s)
    st.refresh()
    through = st.marks.get("scan_through_ns", 0)
    refs = []
    for occ in detect(events, settings):
        if occ["t_ns"] <= through:
            continue
        refs.append(st.report(occ["kind"], occ["reason"], occ["t_ns"], key=occ["key"], details=occ["details"],
                              source="event_log"))
    last = max((t for t in (_event_time(e) for e in events) if t is not None), default=0)
    if last > through:
        st.mark("scan", last)
    return refs


# --------------------------------------------------------------------------- telemetry window


def extract_window(run_dir: str | Path, inc: Incident, *, before_s: float = 300.0, after_s: float = 300.0,
                   now_ns: Optional[int] = None) -> dict[str, Any]:
    """Cut the run directory's own records around ``inc`` and save them as ``<id>/window.json``."""
    from mm_core.capture.layout import read_events, read_summary

    rd = Path(run_dir)
    lo = inc.t_ns - int(before_s * _S)
    hi = inc.last_t_ns + int(after_s * _S)
    now = time.time_ns() if now_ns is None else now_ns
    out: dict[str, Any] = {"incident": inc.id, "from_ns": lo, "to_ns": hi}
    ev = [e for e in read_events(rd) if (t := _event_time(e)) is not None and lo <= t <= hi]
    out["events"] = ev[:2000]
    out["events_truncated"] = len(ev) > 2000
    out["market_data_ages"] = _ages(rd, lo, hi)
    tr = rd / TRANSITIONS_NAME
    if tr.is_file():
        rows = []
        for line in tr.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and isinstance(r.get("t_ns"), int) and lo <= r["t_ns"] <= hi:
                rows.append(r)
        out["transitions"] = rows
    out.update(_trading_window(rd, lo, hi))
    summary = read_summary(rd)
    ended = summary is not None and summary.get("exit_reason") not in (None, "running")
    out["complete"] = bool(now > hi or ended or (rd / "session.json").is_file() and _session_ended(rd, hi))
    d = rd / INCIDENTS_DIR / inc.id
    d.mkdir(parents=True, exist_ok=True)
    _write_json(d / WINDOW_NAME, out)
    return out


def _session_ended(rd: Path, hi: int) -> bool:
    try:
        info = json.loads((rd / "session.json").read_text(encoding="utf-8"))
        return int(info.get("ended_ns") or 0) <= hi or info.get("source") == "backtest"
    except (OSError, ValueError):
        return False


def _ages(rd: Path, lo: int, hi: int) -> dict[str, Any]:
    """Feed age (ms) per second of the window, from the run's sample CSV (what the collector writes)."""
    from mm_core.capture.layout import find_csv

    csv_path = find_csv(rd)
    if csv_path is None:
        return {"available": False}
    import polars as pl

    try:
        df = (pl.scan_csv(csv_path, schema_overrides={"ts_capture": pl.Int64, "age_ms": pl.Float64})
              .select(["ts_capture", "age_ms"]).filter((pl.col("ts_capture") >= lo) & (pl.col("ts_capture") <= hi))
              .with_columns((pl.col("ts_capture") // _S).alias("sec"))
              .group_by("sec").agg(pl.len().alias("n"), pl.col("age_ms").max().alias("max_ms"),
                                   pl.col("age_ms").median().alias("p50_ms"))
              .sort("sec").collect())
    except Exception as exc:  # a torn or foreign CSV: say so in the window, never fail the review
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"available": True, "per_second": df.to_dicts()}


def _trading_window(rd: Path, lo: int, hi: int) -> dict[str, Any]:
    """Orders and fills in the window, with the position and cash from fills up to its start and end."""
    out: dict[str, Any] = {}
    fp, op = rd / "fills.parquet", rd / "orders.parquet"
    if fp.is_file():
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(fp).to_pydict()
        except Exception as exc:
            return {"fills_error": f"{type(exc).__name__}: {exc}"[:200]}
        pos0 = cash0 = pos1 = cash1 = 0.0
        fills = []
        for i, ts in enumerate(t["ts"]):
            sq = t["side"][i] * t["qty"][i]
            fee = t["fee"][i] or 0.0
            if ts < lo:
                pos0 += sq
                cash0 -= sq * t["price"][i] + fee
            if ts <= hi:
                pos1 += sq
                cash1 -= sq * t["price"][i] + fee
            if lo <= ts <= hi:
                fills.append({c: t[c][i] for c in ("ts", "order_id", "side", "price", "qty", "maker", "fee")})
        out["fills"] = fills[:2000]
        out["position_before"], out["cash_before"] = pos0, cash0
        out["position_after"], out["cash_after"] = pos1, cash1
    if op.is_file():
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(op).to_pydict()
        except Exception as exc:
            out["orders_error"] = f"{type(exc).__name__}: {exc}"[:200]
            return out
        rows = []
        for i in range(len(t["order_id"])):
            c, d = t["created_ts"][i], t["done_ts"][i]
            if c is not None and c <= hi and (d is None or d >= lo):
                rows.append({k: t[k][i] for k in ("order_id", "cl_ord_id", "side", "price", "qty", "filled",
                                                   "result", "created_ts", "done_ts")})
        out["orders"] = rows[:2000]
        out["orders_truncated"] = len(rows) > 2000
    return out


def load_window(run_dir: str | Path, inc: Incident, *, before_s: float, after_s: float) -> dict[str, Any]:
    """The saved window, re-cut while it was still incomplete (the run was going on)."""
    p = Path(run_dir) / INCIDENTS_DIR / inc.id / WINDOW_NAME
    if p.is_file():
        try:
            w = json.loads(p.read_text(encoding="utf-8"))
            if w.get("complete") and w.get("to_ns") == inc.last_t_ns + int(after_s * _S):
                return w
        except (OSError, ValueError):
            pass
    return extract_window(run_dir, inc, before_s=before_s, after_s=after_s)


# --------------------------------------------------------------------------- review


def review(run_dirs: Sequence[str | Path], *, since_ns: Optional[int] = None, scan: bool = True,
           settings: ScanSettings = ScanSettings()) -> dict[str, Any]:
    """The daily review: incidents opened since the last review mark (or ``since_ns``) and every open one."""
    out: dict[str, Any] = {"runs": []}
    for rd in run_dirs:
        if scan and (Path(rd) / "events.jsonl").is_file():
            scan_event_log(rd, settings)
        st = IncidentStore(rd, join_window_s=settings.join_window_s).refresh()
        mark = since_ns if since_ns is not None else st.marks.get("reviewed_through_ns", 0)
        incs = st.incidents()
        new = [i for i in incs if i.opened_at_ns > mark or (since_ns is not None and i.t_ns >= since_ns)]
        out["runs"].append({"run_dir": str(rd), "since_ns": mark,
                            "new": [i.to_dict() for i in new],
                            "open": [i.to_dict() for i in incs if i.is_open]})
    out["new"] = sum(len(r["new"]) for r in out["runs"])
    out["open"] = sum(len(r["open"]) for r in out["runs"])
    return out


# --------------------------------------------------------------------------- CLI


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("incidents", help="incident review: list, show, annotate, close",
                              description=__doc__.split("\n\n")[0],
                              epilog="exit codes: 0 ok, 1 (review only) open incidents remain, 2 bad input")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="runtime config with the [incidents] settings (default: the shipped one)")
    q = sub.add_parser("list", parents=[common], help="incidents of a run directory (scans its event log first)")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a trading run directory")
    q.add_argument("--status", choices=("open", "closed", "all"), default="all", help="which incidents (default: all)")
    q.add_argument("--no-scan", action="store_true", help="do not scan events.jsonl for new feed faults")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q = sub.add_parser("show", parents=[common], help="one incident with its notes and telemetry window")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a trading run directory")
    q.add_argument("incident_id", metavar="ID", help="the incident id (mm incidents list shows them)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    for name, helptext in (("annotate", "add a note, the cause or the action taken"),
                           ("close", "close an incident (needs a cause and an action)")):
        q = sub.add_parser(name, parents=[common], help=helptext)
        q.add_argument("run_dir", metavar="RUN_DIR", help="a trading run directory")
        q.add_argument("incident_id", metavar="ID", help="the incident id (mm incidents list shows them)")
        q.add_argument("--note", help="free text")
        q.add_argument("--cause", help="what caused it")
        q.add_argument("--action", dest="taken", metavar="ACTION", help="what was done about it")
        q.add_argument("--by", help="who (default: the login name)")
        q.add_argument("--json", action="store_true", help="print the incident as JSON")
    q = sub.add_parser("review", parents=[common], help="daily review: new incidents since the last review and open ones")
    q.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="trading run directories")
    q.add_argument("--since", help="UTC date or time (YYYY-MM-DD[THH:MM]) instead of the last review mark")
    q.add_argument("--mark", action="store_true", help="record this review (the next one starts from now)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q = sub.add_parser("scan", parents=[common], help="find disconnect storms, checksum bursts and clock skew in events.jsonl")
    q.add_argument("run_dir", metavar="RUN_DIR", help="a trading run directory")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run, _parser=p)


def _since(text: str) -> int:
    from datetime import datetime, timezone

    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp() * _S)
        except ValueError:
            continue
    raise IncidentError(f"--since {text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)")


def _fmt_list(incs: Sequence[Incident]) -> str:
    from mm_core.quality import format_table, iso_ns

    if not incs:
        return "no incidents"
    return format_table(("ID", "STATUS", "KIND", "KEY", "FIRST", "LAST", "COUNT", "REASON"),
                        [(i.id, i.status, i.kind, i.key, iso_ns(i.t_ns), iso_ns(i.last_t_ns), i.count, i.reason)
                         for i in incs], max_last=90)


def _fmt_show(inc: Incident, window: dict[str, Any]) -> str:
    from mm_core.quality import iso_ns

    lines = [f"incident {inc.id} [{inc.status}] {inc.kind} ({inc.key}), {inc.count} occurrence(s)",
             f"  first {iso_ns(inc.t_ns)}, last {iso_ns(inc.last_t_ns)}, source {inc.source}",
             f"  reason: {inc.reason}",
             f"  cause:  {inc.cause or '-'}", f"  action: {inc.action or '-'}"]
    for n in inc.notes:
        lines.append(f"  note ({n.get('by')}, {iso_ns(n.get('at_ns'))}): {n.get('text')}")
    if inc.closed_at_ns:
        lines.append(f"  closed by {inc.closed_by} at {iso_ns(inc.closed_at_ns)}")
    ages = window.get("market_data_ages", {})
    per = ages.get("per_second") or []
    worst = max((r.get("max_ms") or 0 for r in per), default=None)
    lines.append(f"  window {iso_ns(window.get('from_ns'))} .. {iso_ns(window.get('to_ns'))}"
                 f"{'' if window.get('complete') else ' (still open: refreshed on the next show)'}: "
                 f"{len(window.get('events', []))} events, {len(window.get('orders', []) or [])} orders, "
                 f"{len(window.get('fills', []) or [])} fills"
                 + (f", worst feed age {worst:.1f} ms" if worst is not None else "")
                 + (f", position {window['position_before']:+.8g} -> {window['position_after']:+.8g}"
                    if "position_before" in window else ""))
    lines.append(f"  files: {Path(INCIDENTS_DIR) / inc.id}/ ({TELEMETRY_NAME} from the runner, {WINDOW_NAME})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mm_core.config import ConfigError, load_config

    action = getattr(args, "action", None)
    if action is None:
        args._parser.print_help()
        return 2
    try:
        cfg = load_config(args.config)
        s = ScanSettings.from_config(cfg)
        inc_cfg = cfg.incidents
        dirs = [args.run_dir] if hasattr(args, "run_dir") else list(args.run_dirs)
        for d in dirs:
            if not Path(d).is_dir():
                raise IncidentError(f"{d}: no such run directory")
        if action == "review":
            since = _since(args.since) if args.since else None
            res = review(dirs, since_ns=since, settings=s)
            if args.mark:
                for d in dirs:
                    IncidentStore(d).mark("reviewed", time.time_ns())
            if args.json:
                print(json.dumps(res))
            else:
                for r in res["runs"]:
                    print(f"{r['run_dir']}: {len(r['new'])} new, {len(r['open'])} open")
                    for i in r["new"]:
                        print(f"  NEW  {i['id']} {i['kind']} ({i['key']}) {i['time']} x{i['count']}: {i['reason']}")
                    for i in r["open"]:
                        print(f"  OPEN {i['id']} {i['kind']} ({i['key']}) {i['time']} x{i['count']}: {i['reason']}")
                if res["open"]:
                    print("close each open incident with: mm incidents close RUN_DIR ID --cause ... --action ...")
            return 1 if res["open"] else 0
        rd = args.run_dir
        st = IncidentStore(rd, join_window_s=inc_cfg.join_window_s)
        if action == "scan":
            refs = scan_event_log(rd, s)
            new = [r.id for r in refs if r.opened]
            print(json.dumps({"opened": new, "occurrences": len(refs)}) if args.json
                  else f"{len(refs)} fault occurrences, {len(new)} new incident(s): {', '.join(new) or '-'}")
            return 0
        if action == "list":
            if not args.no_scan and (Path(rd) / "events.jsonl").is_file():
                scan_event_log(rd, s)
            incs = [i for i in st.incidents() if args.status == "all" or i.status == args.status]
            if args.json:
                print(json.dumps({"run_dir": str(rd), "incidents": [i.to_dict() for i in incs],
                                  "open": sum(1 for i in incs if i.is_open), "bad_lines": st.bad_lines}))
            else:
                print(_fmt_list(incs))
            return 0
        if action == "show":
            inc = st.get(args.incident_id)
            w = load_window(rd, inc, before_s=inc_cfg.window_before_s, after_s=inc_cfg.window_after_s)
            tel = Path(rd) / INCIDENTS_DIR / inc.id / TELEMETRY_NAME
            telemetry = json.loads(tel.read_text(encoding="utf-8")) if tel.is_file() else None
            if args.json:
                print(json.dumps({**inc.to_dict(), "window": w, "telemetry": telemetry}))
            else:
                print(_fmt_show(inc, w))
            return 0
        if action == "annotate":
            inc = st.annotate(args.incident_id, note=args.note, cause=args.cause, action=args.taken, by=args.by)
        else:
            inc = st.close(args.incident_id, by=args.by, cause=args.cause, action=args.taken, note=args.note)
        print(json.dumps(inc.to_dict()) if args.json else f"{inc.id}: {inc.status}; cause {inc.cause or '-'}; "
                                                          f"action {inc.action or '-'}")
        return 0
    except (IncidentError, ConfigError) as exc:
        print(f"mm incidents: {exc}", file=sys.stderr)
        return 2
