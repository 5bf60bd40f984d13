"""What a cold start of the backtest compiles, and two numba behaviours that made it cost 2x.

A fresh machine (or an edited engine) compiles the whole event loop -- matching, decision
pipeline, regimes, risk, requote -- before the first row runs. Profiled with numba's event API
(``numba:compile`` / ``numba:run_pass``, per function, nested compiles taken out), two costs had
nothing to do with our code's size:

- **Literal specialisations.** numba types a call from jitted code with the *literal* types of
  constant arguments (``Literal[int](3)`` for ``K_MARKET``, ``Literal[bool](True)``, ``-1``) and
  compiles a separate copy of the callee for every distinct combination: ``log_row`` was compiled
  14 times, ``_emit`` 9, ``_halt`` 5, the requote plan twice -- 82 compilations where 51 functions
  suffice. :func:`install` makes dispatchers defined in the backtest's tracked files
  (:data:`mm_core.backtest.jit_cache.TRACKED`) compile one specialisation per *non-literal*
  signature: the machine code is the same function of its arguments either way (nothing in those
  files dispatches on a literal value).
- **Flags hashing.** Overload templates cache their implementations under a key that holds the
  compiler flags; ``TargetConfig.__hash__`` rebuilds a dict of every option on each lookup (and the
  hash it returns depends only on the option *names*, so every key collides and ``__eq__`` rebuilds
  two more dicts). 55 k lookups in one cold start: ~280 k dict builds, a third of all typing time.
  :func:`install` replaces both with equivalents: the same hash value, computed once per class, and
  equality decided by the explicitly set values when they are identical (else numba's comparison).

Both are checked at install (the hash must equal numba's own for a fresh ``Flags``; the method to
wrap must exist); if numba changes, the original behaviour stays and :func:`install` says so.

One compile option for speed of the compiled code, too: :func:`loop_code` marks a function as part
of the backtest loop or the decision step. Such functions are compiled with their array arguments
declared ``noalias`` (the state arrays of the loop and the pipeline are separate allocations, so a
store to one never changes another; LLVM may then keep values in registers across stores) and
without reference counting (they never allocate or keep an array, so numba's reference-count
calls are pure overhead -- and with ``noalias``, the same read-only array passed twice would make
them a write through two "non-aliasing" pointers). Callers must never pass overlapping arrays that
the function writes: every caller in the package passes arrays it allocated separately.
"""

from __future__ import annotations

from typing import Callable

_installed: dict[str, bool] = {}


def _fast_flags_hash() -> bool:
    from numba.core import targetconfig
    from numba.core.compiler import Flags

    tc = targetconfig.TargetConfig
    if getattr(tc, "_mm_fast_hash", False):
        return True
    probe = Flags()
    try:
        if tc.__hash__(probe) != hash(tuple(sorted(type(probe).options))):
            return False  # numba's hash is no longer a function of the option names alone
    except Exception:  # pragma: no cover - a numba without these attributes
        return False
    orig_eq = tc.__eq__
    hashes: dict[type, int] = {}

    def __hash__(self) -> int:
        cls = type(self)
        h = hashes.get(cls)
        if h is None:
            h = hashes[cls] = hash(tuple(sorted(cls.options)))
        return h

    def __eq__(self, other):
        if type(other) is not type(self):
            return orig_eq(self, other)
        a, b = self._values, other._values
        if a == b:
            return True  # same explicitly set values: every option reads the same
        opts = type(self).options  # else compare what each option reads (set value or default)
        for k in a.keys() | b.keys():
            d = opts[k].default
            if a.get(k, d) != b.get(k, d):
                return False
        return True

    tc.__hash__ = __hash__
    tc.__eq__ = __eq__
    tc._mm_fast_hash = True
    return True


def _no_literal_calls(is_tracked: Callable[[str], bool]) -> bool:
    from numba.core import dispatcher, types

    cls = dispatcher.Dispatcher
    orig = getattr(cls, "get_call_template", None)
    if orig is None:  # pragma: no cover
        return False
    if getattr(orig, "_mm_no_literal", False):
        return True

    def get_call_template(self, args, kws):
        tracked = self.__dict__.get("_mm_tracked")
        if tracked is None:
            tracked = self._mm_tracked = is_tracked(self.py_func.__code__.co_filename)
        if tracked:
            args = tuple(types.unliteral(a) for a in args)
            kws = {k: types.unliteral(v) for k, v in kws.items()}
        return orig(self, args, kws)

    get_call_template._mm_no_literal = True
    cls.get_call_template = get_call_template
    return True


def loop_code(py_func):
    """Mark a plain Python function (before ``njit``) as loop code (see the module docstring)."""
    py_func._mm_loop_code = True
    return py_func


def _loop_code_flags() -> bool:
    from numba.core import dispatcher

    fc = getattr(dispatcher, "_FunctionCompiler", None)
    orig = getattr(fc, "_customize_flags", None)
    if orig is None:  # pragma: no cover
        return False
    if getattr(orig, "_mm_loop_code", False):
        return True

    def _customize_flags(self, flags):
        flags = orig(self, flags)
        if getattr(self.py_func, "_mm_loop_code", False):
            flags.noalias = True
            flags.nrt = False
        return flags

    _customize_flags._mm_loop_code = True
    fc._customize_flags = _customize_flags
    return True


def install(is_tracked: Callable[[str], bool]) -> dict[str, bool]:
    """Apply the above (idempotent); returns which took effect."""
    if not _installed:
        _installed["fast_flags_hash"] = _fast_flags_hash()
        _installed["no_literal_calls"] = _no_literal_calls(is_tracked)
        _installed["loop_code_flags"] = _loop_code_flags()
    return dict(_installed)

