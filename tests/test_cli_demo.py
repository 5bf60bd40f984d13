"""``mm demo``: its exit code tells a script whether the steps passed; its last lines can be pasted."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from mm_core.cli import main as mm_main


@pytest.mark.slow
def test_demo_whose_gate_fails_exits_nonzero_and_prints_pastable_commands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 3 s at a 200 ms median latency: the gate cannot PROCEED (p50 bar 15 ms)
    code = mm_main(["demo", "--seconds", "3", "--latency-median-ms", "200", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code != 0
    assert "demo FAILED" in out
    run_dirs = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("run-")]
    assert len(run_dirs) == 1  # --out is where the files went
    assert f"run directory: {run_dirs[0]}" in out
    lines = out.splitlines()
    start = lines.index("re-run any step yourself (one command per line):")
    commands = [ln.strip() for ln in lines[start + 1:] if ln.startswith("  mm ")]
    assert [c.split()[1] for c in commands][:3] == ["qa", "analyze", "gate"]
    for c in commands:
        assert "|" not in c
        words = shlex.split(c)
        assert words[0] == "mm" and Path(words[2]).exists()
    assert "mm is not on your PATH" in out or "mm command is on your PATH" in out
    # a pasted line works: run the QA line through the same entry point
    qa = shlex.split(commands[0])[1:]
    assert mm_main(qa) in (0, 1, 3)
