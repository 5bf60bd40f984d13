"""Strategy names -> modules. An unknown name is an error that lists the known ones, never a fallback.

Built-in strategies are modules of this package, imported on first use (a cold start does not
import what it does not run). :func:`register` adds one at run time -- a test can define a strategy
in the test file and run it through the unchanged engine and runner.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Optional, Union

from mm_core.strategy.base import StrategySpec, module_digest

BUILTIN = {
    "baseline": "mm_core.strategy.baseline",
    "scripted": "mm_core.strategy.scripted",
    "avellaneda-stoikov": "mm_core.strategy.avellaneda_stoikov",
    "glft": "mm_core.strategy.glft",
}
_REGISTERED: dict[str, Any] = {}
_REQUIRED = ("NAME", "Params", "STATE_SIZE", "decide")


class StrategyNotFound(ValueError):
    """No strategy of that name; the message lists the names that exist."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = known
        super().__init__(f"unknown strategy {name!r}; known strategies: {', '.join(known)}")


def _builtin_present(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def available_strategies() -> list[str]:
    """Every name :func:`load_strategy` accepts (built-ins present in this install, then registered)."""
    names = [n for n, mod in BUILTIN.items() if _builtin_present(mod)]
    return names + [n for n in _REGISTERED if n not in names]


def _check_module(module: Any) -> None:
    missing = [a for a in _REQUIRED if not hasattr(module, a)]
    if missing:
        label = getattr(module, "__name__", repr(module))
        raise TypeError(f"strategy module {label} lacks {', '.join(missing)} (see mm_core.strategy.base)")


def register(module: Union[ModuleType, Any]) -> str:
    """Add a strategy (a module, or any object with NAME, Params, STATE_SIZE, decide); returns its name.

    Registering a name again replaces the earlier entry (a re-imported test module)."""
    _check_module(module)
    name = str(module.NAME)
    _REGISTERED[name] = module
    return name


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


def strategy_module(name: str) -> Any:
    """The module behind ``name`` (registered first, then built in)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    mod_name = BUILTIN.get(name)
    if mod_name is None or not _builtin_present(mod_name):
        raise StrategyNotFound(name, available_strategies())
    module = importlib.import_module(mod_name)
    _check_module(module)
    return module


def _calibration_dict(calibration: Union[None, str, Path, Mapping[str, Any]]) -> Optional[dict]:
    if calibration is None or isinstance(calibration, Mapping):
        return None if calibration is None else dict(calibration)
    p = Path(calibration)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"calibration file {p} not found (write one with `mm calibrate RUN_DIR --out {p}`)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"calibration file {p}: not valid JSON: {exc}") from None


def load_strategy(name: str, params_dict: Optional[Mapping[str, Any]] = None,
                  calibration: Union[None, str, Path, Mapping[str, Any]] = None, *,
                  fair: Optional[str] = None) -> StrategySpec:
    """The :class:`StrategySpec` for ``name`` with parameters from ``params_dict`` (its config section).

    ``calibration`` (a ``mm calibrate`` JSON file or its dict) goes to ``Params.from_config`` for
    strategies that take one; ``fair`` overrides the fair-mid model named in the parameters."""
    module = strategy_module(name)
    pd = dict(params_dict or {})
    cal = _calibration_dict(calibration)
    from_config = getattr(module.Params, "from_config", None)
    try:
        if from_config is None:
            params = module.Params(**pd)
        elif cal is not None and "calibration" in inspect.signature(from_config).parameters:
            params = from_config(pd, calibration=cal)
        else:  # a strategy that reads no calibration ignores one (the config's [strategy] calibration)
            params = from_config(pd)
    except TypeError as exc:
        raise ValueError(f"strategy {name!r}: bad parameters {sorted(pd)}: {exc}") from None
    vec = params.vector()
    import numpy as np

    vec = np.ascontiguousarray(vec, dtype=np.float64)
    fair_name = fair or getattr(params, "fair", None) or "mid"
    return StrategySpec(NAME=str(module.NAME), params=params, vector=vec, STATE_SIZE=int(module.STATE_SIZE),
                        decide=module.decide, code_digest=module_digest(module), module=module,
                        fair=str(fair_name))
