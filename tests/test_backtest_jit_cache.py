"""numba's disk cache for the backtest loop: fresh after an edit to any file the loop calls into,
and nothing inside the package is deleted at import (parallel sweep workers raced on that)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, *, cwd: Path, env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(cwd), env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_importing_the_engine_after_an_edit_deletes_no_file_in_the_package(tmp_path):
    pkg = tmp_path / "mm_core"
    shutil.copytree(ROOT / "mm_core", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    marks = []
    for sub in ("backtest", "strategy"):
        d = pkg / sub / "__pycache__"
        d.mkdir()
        for name in ("engine_core.run_core-1.py311.nbi", "engine_core.run_core-1.py311.1.nbc"):
            (d / name).write_bytes(b"another process's cache entry")
            marks.append(d / name)
    with open(pkg / "strategy" / "baseline.py", "a", encoding="utf-8") as f:
        f.write("\n# edited\n")  # a source change, as after a git pull
    code = "import mm_core.backtest.engine as e; print(e.__file__)"
    where = _python(code, cwd=tmp_path, env_extra={"PYTHONPATH": str(tmp_path)})
    assert where.startswith(str(pkg))  # the copy was imported, not the checkout
    assert all(m.exists() for m in marks)


DEP_A = """
from numba import njit
from dep_b import g

@njit(cache=True)
def f():
    return g() + 1
"""
DEP_B = """
from numba import njit

@njit(cache=True)
def g():
    return {value}
"""


def test_a_cached_function_is_recompiled_when_a_function_it_calls_in_another_file_changes(tmp_path):
    (tmp_path / "dep_a.py").write_text(DEP_A)
    (tmp_path / "dep_b.py").write_text(DEP_B.format(value=1))
    tracked = ("from mm_core.backtest import jit_cache; "
               f"jit_cache.track([{str(tmp_path / 'dep_a.py')!r}, {str(tmp_path / 'dep_b.py')!r}]); "
               "jit_cache.install(); import dep_a; print(dep_a.f())")
    plain = "import dep_a; print(dep_a.f())"
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    assert _python(tracked, cwd=tmp_path, env_extra={**env, "NUMBA_CACHE_DIR": str(tmp_path / "t")}) == "2"
    assert _python(plain, cwd=tmp_path, env_extra={**env, "NUMBA_CACHE_DIR": str(tmp_path / "p")}) == "2"
    (tmp_path / "dep_b.py").write_text(DEP_B.format(value=10))
    # numba alone keys f's cache on dep_a.py only and serves the old machine code ...
    assert _python(plain, cwd=tmp_path, env_extra={**env, "NUMBA_CACHE_DIR": str(tmp_path / "p")}) == "2"
    # ... with the dependency stamp f is recompiled
    assert _python(tracked, cwd=tmp_path, env_extra={**env, "NUMBA_CACHE_DIR": str(tmp_path / "t")}) == "11"
    assert list((tmp_path / "t").rglob("*.nbi"))  # numba rewrote its index; nothing was deleted


def test_every_jitted_function_the_loop_is_built_from_is_tracked():
    from numba.core.registry import CPUDispatcher

    from mm_core.backtest import engine, engine_core, jit_cache, matching, queue, rate_limit  # noqa: F401
    from mm_core.strategy import baseline, load_strategy, pipeline, regimes, requote, risk, scripted

    for mod in (engine_core, matching, queue, rate_limit, baseline, scripted, pipeline, regimes, requote, risk):
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and getattr(obj, "_cache", None) is not None \
                    and hasattr(obj._cache, "_impl"):
                assert jit_cache._is_tracked(obj.py_func.__code__.co_filename), f"{mod.__name__}.{name}"
                assert type(obj._cache._impl.locator).__name__.startswith("Tracked"), f"{mod.__name__}.{name}"
    loop = engine_core.run_core_for(load_strategy("baseline"), 0)
    assert type(loop._cache._impl.locator).__name__.startswith("Tracked")
    step = pipeline.compile_step(load_strategy("baseline"))
    assert type(step._cache._impl.locator).__name__.startswith("Tracked")
