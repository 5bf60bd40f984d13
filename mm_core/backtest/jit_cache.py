"""numba's on-disk cache, made to notice edits in *other* files a compiled loop calls into.

Why: numba keys a cached function on its own source file (mtime and size) and its own bytecode. The
backtest loop (:mod:`~mm_core.backtest.engine_core`) inlines helpers from the matching, queue and
rate-limit modules and the whole decision step of :mod:`mm_core.strategy` (pipeline, requote,
regimes, risk, the strategy); after an edit to one of those, numba would happily load the old
machine code. (A strategy defined outside the package is keyed by its source digest in the
compiled loop's name instead: :func:`mm_core.backtest.engine_core.run_core_for`.)

How: functions defined in the tracked files (:data:`TRACKED`; :func:`track` adds more) get a cache
*locator* whose source stamp is ``(file mtime and size, digest of every tracked file)``. numba
compares that stamp with the one stored in the cache index; when any tracked file changed, the
index is treated as empty, the function is recompiled and the index rewritten -- numba's own
invalidation path, so nothing is ever deleted. (The previous approach deleted cache files inside
the installed package at import time; parallel sweep workers importing at once raced on it.)

The locator classes go in front of numba's own list (``numba.core.caching.CacheImpl._locator_classes``,
an internal list that has not changed for years); if that hook is ever missing, caching falls back to numba's default and
:func:`install` returns False.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Iterable, Optional

_PKG = Path(__file__).resolve().parent.parent
_BACKTEST = _PKG / "backtest"
TRACKED: set[Path] = {
    _BACKTEST / "engine_core.py", _BACKTEST / "matching.py", _BACKTEST / "queue.py", _BACKTEST / "rate_limit.py",
    _BACKTEST / "event_arrays.py", _BACKTEST / "stress.py", _BACKTEST / "jit_compile.py",
    *(_PKG / "strategy").glob("*.py"),  # the decision step: pipeline, requote, regimes, risk, view, strategies
}
_digest: Optional[str] = None
_installed = False


def track(files: Iterable[Path]) -> None:
    """Add source files to the tracked set (their functions get the dependency stamp)."""
    global _digest
    TRACKED.update(Path(f).resolve() for f in files)
    _digest = None


def sources_digest() -> str:
    """Digest of every tracked file's bytes (computed once per process)."""
    global _digest
    if _digest is None:
        h = hashlib.sha256()
        for p in sorted(TRACKED):
            h.update(str(p.name).encode())
            try:
                h.update(p.read_bytes())
            except OSError:
                h.update(b"<missing>")
        _digest = h.hexdigest()
    return _digest


def _is_tracked(py_file: str) -> bool:
    try:
        return Path(py_file).resolve() in TRACKED
    except OSError:
        return False


def install() -> bool:
    """Put the dependency-stamped locators in front of numba's (idempotent); re-create the cache
    handle of tracked functions defined before this ran, so they use them too."""
    global _installed
    if _installed:
        return True
    from mm_core.backtest import jit_compile

    jit_compile.install(_is_tracked)  # cold-start compile cost (see jit_compile)
    try:
        from numba.core import caching
        from numba.core.registry import CPUDispatcher

        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # public name since numba 0.58
        bases = (caching._UserProvidedCacheLocator, caching._InTreeCacheLocator, caching._UserWideCacheLocator)
    except (ImportError, AttributeError):  # pragma: no cover - a numba without the hook
        return False

    class _DependencyStamp:
        """Mixin: tracked files only; the stamp includes the digest of all tracked files, and the
        files live in a ``deps`` subfolder, apart from entries numba's default locator writes for
        the same function (a process that used a policy kernel before this ran): the two never
        overwrite each other's index."""

        def get_source_stamp(self):
            return (super().get_source_stamp(), sources_digest())

        def get_cache_path(self):
            return os.path.join(super().get_cache_path(), "deps")

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _is_tracked(py_file):
                return None
            return super().from_function(py_func, py_file)

    locators = [type(f"Tracked{b.__name__.lstrip('_')}", (_DependencyStamp, b), {}) for b in bases]
    impl._locator_classes[:0] = locators
    _installed = True
    for mod in list(sys.modules.values()):  # tracked modules imported before us
        f = getattr(mod, "__file__", None)
        if not f or not _is_tracked(f):
            continue
        for obj in list(vars(mod).values()):
            impl_ = getattr(getattr(obj, "_cache", None), "_impl", None)
            if isinstance(obj, CPUDispatcher) and impl_ is not None and not obj.overloads \
                    and type(impl_.locator) not in locators:
                obj.enable_caching()
    return True
