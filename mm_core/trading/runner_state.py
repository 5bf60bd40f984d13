"""What a trader restores after a restart: the decision pipeline's own state.

The order manager's journal brings back orders, fills, balances; the market view refills from the
feed. What neither holds is the pipeline's memory: the regime machines (a latency regime in its
dwell time), the risk state (HALTED by a kill switch stays HALTED after a restart; the peak equity
the drawdown counts from), the requote budget's estimate of the venue's rate counter, the realised
volatility, and the strategy's own state vector. They are saved as plain lists (JSON, exact for
float64 via repr) and restored only into a pipeline of the same strategy (same name and source
digest) with arrays of the same sizes; anything else starts fresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mm_core.strategy.requote import PI_N_LOG

_ARRAYS = ("RS", "KS", "PF", "PI", "ST")


def pipeline_state(pl: Any) -> dict[str, Any]:
    """The pipeline's state arrays as lists (NaN/inf as strings: JSON has no such numbers)."""
    out: dict[str, Any] = {}
    for name in _ARRAYS:
        a = getattr(pl, name)
        out[name] = [int(x) for x in a] if a.dtype.kind == "i" else [_num(float(x)) for x in a]
    return out


def restore_pipeline(pl: Any, state: dict[str, Any]) -> list[str]:
    """Copy saved arrays into ``pl`` (same shapes only); returns the names restored."""
    done = []
    for name in _ARRAYS:
        saved = state.get(name)
        a = getattr(pl, name)
        if not isinstance(saved, list) or len(saved) != a.shape[0]:
            continue
        a[:] = np.asarray([_unnum(x) for x in saved], dtype=a.dtype)
        done.append(name)
    if "PI" in done:
        pl.PI[PI_N_LOG] = 0  # the transition log starts empty in the new process
    return done


def _num(x: float) -> Any:
    return x if np.isfinite(x) else repr(x)


def _unnum(x: Any) -> float:
    return float(x) if not isinstance(x, str) else float(x)
