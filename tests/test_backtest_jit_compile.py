"""Cold-start compile cost: one specialisation per function of the loop's files, and numba's flags
hashing replaced by an equivalent (see mm_core.backtest.jit_compile)."""

from __future__ import annotations

import importlib
import sys

from mm_core.backtest import jit_cache, jit_compile

SOURCE = """
from numba import njit

K = 3

@njit
def g(a, k, flag):
    return a + k if flag else a - k

@njit
def f(a):
    return g(a, 1, True) + g(a, 2, False) + g(a, K, True) + g(a, a, a > 0)
"""


def _load(tmp_path, name: str, tracked: bool):
    path = tmp_path / f"{name}.py"
    path.write_text(SOURCE)
    if tracked:
        jit_cache.track([path])
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))


def test_a_callee_in_a_tracked_file_is_compiled_once_whatever_literals_it_gets(tmp_path):
    assert jit_cache.install()
    assert jit_compile.install(jit_cache._is_tracked) == {"fast_flags_hash": True, "no_literal_calls": True,
                                                          "loop_code_flags": True}
    tracked = _load(tmp_path, "mm_jit_tracked_probe", tracked=True)
    plain = _load(tmp_path, "mm_jit_plain_probe", tracked=False)
    assert tracked.f(5) == plain.f(5) == (6 + 3 + 8 + 10)
    assert len(tracked.g.overloads) == 1  # one machine-code copy for (int64, int64, bool)
    # numba's own behaviour elsewhere: a copy per combination of literal arguments
    assert len(plain.g.overloads) == 4


def test_flags_hash_and_equality_say_what_numba_says():
    from numba.core.compiler import Flags

    def reads(fl):  # what every option reads: numba's own notion of equality
        return {k: getattr(fl, k) for k in type(fl).options}

    a, b, c, d = Flags(), Flags(), Flags(), Flags()
    b.debuginfo = True  # explicitly set to a non-default value
    c.no_cpython_wrapper = Flags.options["no_cpython_wrapper"].default  # explicitly set to the default
    d.debuginfo, d.error_model = True, "numpy"
    e = Flags()
    e.debuginfo = True
    for x in (a, b, c, d, e):
        assert hash(x) == hash(tuple(sorted(type(x).options)))
        for y in (a, b, c, d, e):
            assert (x == y) == (reads(x) == reads(y))
    assert a == c and b == e and a != b and b != d
