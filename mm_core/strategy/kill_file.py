"""``mm kill``: the manual kill switch as a file a running trader watches.

Why a file: it works from any shell on any OS (Windows included), needs no socket or signal, survives
a restart of the runner (a kill in force stays in force), and is one ``stat`` per poll (~2 µs).

Protocol (``RUN_DIR`` = the runner's run directory):

- ``mm kill RUN_DIR`` writes ``RUN_DIR/KILL`` (JSON: reason, time). While it exists,
  :func:`kill_requested` is true; the runner polls it at least once per decision cycle and, on the
  first poll that sees it, feeds ``F_MANUAL_KILL`` to :func:`mm_core.strategy.risk.risk_on_fault`
  (trading state HALTED: every quote pulled in that cycle).
- ``mm kill --resume RUN_DIR`` removes ``KILL`` and writes ``RUN_DIR/RESUME`` with a fresh token
  (ns timestamp). The runner feeds ``F_MANUAL_RESUME`` once per new token (:func:`resume_token`).
  This also resumes after an automatic kill switch when ``[risk] resume = "manual"`` (after the
  cool-down; the risk layer remembers a resume sent during it).

Exit status: 0 = done, 2 = unusable ``RUN_DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

KILL_FILE = "KILL"
RESUME_FILE = "RESUME"


def kill_requested(run_dir: Path | str) -> bool:
    """True while a manual kill is in force for ``run_dir`` (one ``stat``; never raises)."""
    try:
        return (Path(run_dir) / KILL_FILE).is_file()
    except OSError:
        return False


def resume_token(run_dir: Path | str) -> Optional[int]:
    """The latest manual-resume token (ns), or None; a runner acts once per new token."""
    try:
        data = json.loads((Path(run_dir) / RESUME_FILE).read_text(encoding="utf-8"))
        return int(data["token"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stamp() -> tuple[int, str]:
    ns = time.time_ns()
    iso = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")
    return ns, iso.replace("+00:00", "Z")


def request_kill(run_dir: Path | str, reason: str = "manual") -> dict[str, Any]:
    """Write the kill file (atomically); returns what was written, with its path."""
    from mm_core.store.atomic import write_atomic

    d = Path(run_dir)
    ns, iso = _stamp()
    rec: dict[str, Any] = {"action": "kill", "reason": reason, "requested_at": iso, "requested_at_ns": ns}
    write_atomic(d / KILL_FILE, (json.dumps(rec) + "\n").encode("utf-8"))
    return {**rec, "file": str(d / KILL_FILE)}


def request_resume(run_dir: Path | str) -> dict[str, Any]:
    """Remove the kill file and write a new resume token; returns what was done."""
    from mm_core.store.atomic import write_atomic

    d = Path(run_dir)
    kill = d / KILL_FILE
    had_kill = kill.is_file()
    if had_kill:
        kill.unlink()
    ns, iso = _stamp()
    rec: dict[str, Any] = {"action": "resume", "token": ns, "requested_at": iso}
    write_atomic(d / RESUME_FILE, (json.dumps(rec) + "\n").encode("utf-8"))
    return {**rec, "file": str(d / RESUME_FILE), "kill_cleared": had_kill}


def kill_status(run_dir: Path | str) -> dict[str, Any]:
    """Whether a kill is in force, and the last kill/resume records (for ``--status``)."""
    d = Path(run_dir)
    out: dict[str, Any] = {"run_dir": str(d), "kill_in_force": kill_requested(d)}
    for key, name in (("kill", KILL_FILE), ("resume", RESUME_FILE)):
        try:
            out[key] = json.loads((d / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out[key] = None
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mm kill`` to the ``mm`` command."""
    p = subparsers.add_parser(
        "kill", help="manual kill switch: a running trader pulls every quote within one decision cycle",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("run_dir", nargs="?", type=Path, default=Path("."), metavar="RUN_DIR",
                   help="run directory of the trader to stop (default: the current directory)")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--resume", action="store_true", help="clear the kill and allow trading to resume")
    act.add_argument("--status", action="store_true", help="only show whether a kill is in force")
    p.add_argument("--reason", default="manual", help="recorded in the kill file and the event log (default: manual)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    d: Path = args.run_dir
    if not d.is_dir():
        print(f"mm kill: {d} is not a directory (give the trader's run directory)", file=sys.stderr)
        return 2
    try:
        if args.status:
            rec = kill_status(d)
            msg = f"{d}: kill {'IN FORCE' if rec['kill_in_force'] else 'not requested'}"
        elif args.resume:
            rec = request_resume(d)
            msg = (f"resume requested: {rec['file']}"
                   + (" (kill file removed)" if rec["kill_cleared"] else " (no kill file was present)"))
        else:
            rec = request_kill(d, args.reason)
            msg = f"kill requested: {rec['file']} (the trader pulls every quote within one decision cycle)"
    except OSError as exc:
        print(f"mm kill: cannot write in {d}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rec) if args.json else msg)
    return 0
