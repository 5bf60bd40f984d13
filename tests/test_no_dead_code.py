"""Every public function and class of the backtest models, the PnL, the compiled Kraken book and the
research book rebuild is used by the package itself (or a benchmark), not only by tests.

Why: a helper that only its own unit test calls is a second copy of logic the real path holds
elsewhere (the queue helpers were, while the engine had its own inline versions); testing it proves
nothing about what runs. Remove such code or use it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "mm_core/backtest/pnl.py",
    "mm_core/backtest/fees.py",
    "mm_core/backtest/rate_limit.py",
    "mm_core/backtest/queue.py",
    "mm_core/backtest/report.py",
    "mm_core/backtest/sweep.py",
    "mm_core/backtest/fair.py",
    "mm_core/adapters/kraken/fastbook.py",
    "mm_core/research/book_frames.py",
    "mm_core/research/training_window.py",
    "mm_core/backtest/days.py",
    "mm_core/backtest/sweep_days.py",
    "mm_core/research/days.py",
    "mm_core/scaleout.py",
    "mm_core/store/partitions.py",
    "mm_core/store/query.py",
]


def _dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _public_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]


@functools.lru_cache(maxsize=1)
def _sources() -> tuple[tuple[Path, ast.Module], ...]:
    """Every non-test source file of the package and the benchmarks, parsed once."""
    files = [p for d in ("mm_core", "bench") for p in sorted((ROOT / d).rglob("*.py"))]
    return tuple((p, ast.parse(p.read_text(encoding="utf-8"))) for p in files)


def _references(module: str, own: Path) -> set[str]:
    """Names of ``module`` referenced by non-test code: imported by name, used as ``alias.name``
    where ``alias`` is the module, or used inside the module itself (not its own definition)."""
    used: set[str] = set()
    if f'"{module}"' in (ROOT / "mm_core" / "cli.py").read_text(encoding="utf-8"):
        used.add("register")  # the mm command loads its subcommand modules by name
    pkg, _, leaf = module.rpartition(".")
    for src, tree in _sources():
        aliases: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == module:
                used.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module == pkg:
                aliases.update(a.asname or a.name for a in node.names if a.name == leaf)
            elif isinstance(node, ast.Import):
                aliases.update(a.asname for a in node.names if a.name == module and a.asname)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                used.add(node.attr)
            if src == own and isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                used.add(node.id)
    return used


@pytest.mark.parametrize("rel", MODULES)
def test_every_public_name_is_used_outside_tests(rel: str) -> None:
    path = ROOT / rel
    names = _public_names(path)
    used = _references(_dotted(path), path)
    unused = [n for n in names if n not in used]
    assert not unused, f"{rel}: {unused} are used by no code outside tests: remove them or use them"
