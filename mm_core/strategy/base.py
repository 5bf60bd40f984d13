"""The strategy seam: what one strategy module provides, and the spec the engine and runner load.

A strategy is one module (see :mod:`mm_core.strategy.baseline` for the shape):

- ``NAME``: the ``--strategy`` / ``[strategy] name``;
- ``Params``: a frozen dataclass with defaults, validated in ``__post_init__``, built from its config
  section ``[strategy.<NAME>]`` by ``Params.from_config(dict)``, with ``.vector()`` (float64) and
  ``.describe()`` (plain data for reports);
- ``STATE_SIZE``: length of its float64 state vector (everything it remembers lives there);
- ``decide(t_ns, params, state, view, orders, n_orders, out)``: ``@njit``, pure (no I/O, clock or
  randomness), reads the view and its working orders, writes the quote wish into ``out``
  (indices in :mod:`mm_core.strategy.view`).

Why the decision function is injected rather than passed: numba cannot cache a compiled loop that
takes a function as an argument, and a Python-level dispatch per decision would cost microseconds.
:func:`mm_core.strategy.pipeline.compile_step` compiles the pipeline with ``decide`` bound as a
global, once per strategy, keyed by ``NAME`` and ``code_digest`` (a hash of the module's source), so
an edited or test-defined strategy never runs stale machine code. The engine, the pipeline and the
runners never branch on a strategy's name.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Optional, Protocol

import numpy as np


class StrategyParams(Protocol):
    """What every strategy's ``Params`` offers."""

    def vector(self) -> np.ndarray:
        ...

    def describe(self) -> dict[str, object]:
        ...


@dataclass(frozen=True)
class StrategySpec:
    """One loaded strategy: everything the engine and the runner need, nothing venue-specific."""

    NAME: str
    params: Any
    vector: np.ndarray
    STATE_SIZE: int
    decide: Callable
    code_digest: str
    module: Optional[ModuleType] = field(default=None, compare=False, repr=False)
    fair: str = "mid"  # fair-mid model the backtest feeds into V_FAIR ("mid", "microprice", a model file)

    def describe(self) -> dict[str, object]:
        """Name and parameters as plain data (reports, ``--json``)."""
        d = dict(self.params.describe()) if hasattr(self.params, "describe") else {}
        d.pop("strategy", None)
        d.pop("policy", None)
        return {"strategy": self.NAME, "strategy_params": d, "fair": self.fair}

    def new_state(self) -> np.ndarray:
        """A fresh state vector (zeros; a strategy's decide initialises it on its first call)."""
        return np.zeros(max(int(self.STATE_SIZE), 0), np.float64)

    @property
    def key(self) -> str:
        """Identifier safe in a function name: ``NAME`` + the first 12 hex digits of the digest."""
        return re.sub(r"[^0-9A-Za-z_]", "_", self.NAME) + "_" + self.code_digest[:12]


def module_digest(module: ModuleType) -> str:
    """SHA-256 of the module's source (falls back to the decide function's source, then its name)."""
    src = None
    try:
        src = inspect.getsource(module)
    except (OSError, TypeError):
        try:
            src = inspect.getsource(module.decide.py_func)
        except (OSError, TypeError, AttributeError):
            src = repr(getattr(module, "NAME", module.__name__))
    return hashlib.sha256(src.encode("utf-8")).hexdigest()
