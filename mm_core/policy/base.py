"""The policy seam: a parameter object on the Python side, a kernel id + float vector on the jit side.

Why this split: numba cannot call methods of arbitrary Python objects from a compiled loop, and
passing jitted functions as arguments defeats on-disk caching (the engine would be recompiled for
every policy in every process). So a policy is *described* by ``kind`` (which kernel in
:mod:`mm_core.policy.kernels`) and ``params()`` (a float64 vector that kernel understands). A new
policy = a new kernel function + one branch in :func:`mm_core.policy.kernels.quote` + a small
class implementing :class:`Policy`; the engine does not change.

A kernel returns a **quote target**: ``(bid_tick, bid_qty, ask_tick, ask_qty)``; qty 0 = no quote
on that side. Turning targets into orders (keep / cancel / replace, rate-limit awareness, lot and
minimum-size rules) is the venue's job, done identically for every policy.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np


class QuoteTarget(NamedTuple):
    bid_tick: int
    bid_qty: float
    ask_tick: int
    ask_qty: float


class Policy(Protocol):
    """What the backtest (and later the live venue) needs from a policy."""

    kind: int
    fair: str  # fair-mid model the policy quotes around ("mid", "microprice", or a saved model path)

    def params(self) -> np.ndarray:
        """The kernel's parameter vector (float64)."""
        ...

    def describe(self) -> dict[str, object]:
        """Parameters as plain data for reports and --json."""
        ...
