"""Reading the transition log the regimes and the risk layer write (int64 rows, ``L_*`` columns).

Why here: the log is written in compiled code as bare integers; reports, ``--json`` output and the
event log need names and units, and the determinism check needs one digest computed the same way
everywhere.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from mm_core.strategy import regimes, risk
from mm_core.strategy.view import (K_RISK, K_TRADING, KIND_NAMES, L_CAUSE, L_FROM, L_KIND, L_T, L_TO, L_VALUE_E6,
                                   STATE_NAMES)

CAUSE_NAMES: dict[int, str] = {**regimes.CAUSE_NAMES, **risk.CAUSE_NAMES}
_STALE_NAMES = ("fresh", "stale")


def digest(log: np.ndarray, n_log: int) -> str:
    """sha256 of the first ``n_log`` rows as little-endian int64: bit-identical logs, equal digests."""
    rows = np.ascontiguousarray(log[: min(int(n_log), log.shape[0])], dtype="<i8")
    return hashlib.sha256(rows.tobytes()).hexdigest()


def _state(kind: int, code: int) -> str:
    if kind == K_RISK:
        return _STALE_NAMES[code] if 0 <= code < 2 else str(code)
    names = STATE_NAMES.get(kind)
    return names[code] if names is not None and 0 <= code < len(names) else str(code)


def records(log: np.ndarray, n_log: int) -> list[dict[str, Any]]:
    """The rows as plain dicts: time, machine, from/to state names, cause name and value."""
    out = []
    for r in log[: min(int(n_log), log.shape[0])]:
        kind = int(r[L_KIND])
        out.append({
            "t_ns": int(r[L_T]),
            "kind": KIND_NAMES.get(kind, str(kind)),
            "from": _state(kind, int(r[L_FROM])),
            "to": _state(kind, int(r[L_TO])),
            "cause": CAUSE_NAMES.get(int(r[L_CAUSE]), str(int(r[L_CAUSE]))),
            "value": int(r[L_VALUE_E6]) / 1e6,
        })
    return out


def kill_switch_events(log: np.ndarray, n_log: int) -> int:
    """Rows where a kill switch fired (trading-state rows with a kill-switch cause)."""
    rows = log[: min(int(n_log), log.shape[0])]
    kill = np.isin(rows[:, L_CAUSE], np.array(risk.KILL_SWITCH_CAUSES, np.int64))
    return int(np.count_nonzero(kill & (rows[:, L_KIND] == K_TRADING)))
