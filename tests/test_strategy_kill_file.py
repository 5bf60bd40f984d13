"""`mm kill`: the kill file a runner polls, and what the risk layer does with it in one cycle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mm_core.cli import main
from mm_core.strategy import risk as K
from mm_core.strategy import view as V
from mm_core.strategy.kill_file import KILL_FILE, kill_requested, resume_token


def test_kill_then_resume_through_the_command(tmp_path: Path, capsys) -> None:
    assert not kill_requested(tmp_path) and resume_token(tmp_path) is None
    assert main(["kill", str(tmp_path), "--reason", "fat finger", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["action"] == "kill" and rec["reason"] == "fat finger"
    assert kill_requested(tmp_path) and (tmp_path / KILL_FILE).is_file()
    assert main(["kill", str(tmp_path), "--status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kill_in_force"] is True
    assert main(["kill", "--resume", str(tmp_path)]) == 0
    assert "kill file removed" in capsys.readouterr().out
    assert not kill_requested(tmp_path)
    first = resume_token(tmp_path)
    assert first is not None
    assert main(["kill", "--resume", str(tmp_path)]) == 0
    assert resume_token(tmp_path) > first  # a new token per resume: the runner acts once per token


def test_kill_of_a_missing_directory_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["kill", str(tmp_path / "nope")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_a_polled_kill_pulls_every_quote_in_the_same_decision(tmp_path: Path) -> None:
    """What a runner does each cycle: poll, feed the fault, update, clamp -- no quote survives."""
    kc = K.RiskConfig().vector()
    ks = K.new_state(kc)
    log = np.zeros((8, V.N_L), np.int64)
    view = np.zeros(V.N_V)
    view[V.V_LOT] = 1e-8
    seen = False
    quotes = []
    n = 0
    for cycle in range(4):
        if cycle == 2:
            main(["kill", str(tmp_path)])
        t = 1_767_225_600_000_000_000 + cycle * 100_000_000
        if kill_requested(tmp_path) and not seen:
            n = K.risk_on_fault(ks, kc, t, K.F_MANUAL_KILL, 0.0, log, n)
        seen = kill_requested(tmp_path)
        n = K.risk_update(ks, kc, t, 0.0, 0.0, 80_000.0, 5.0, 1.0, 0.0, 60.0, log, n)
        out = np.array([79_999.0, 0.001, 80_001.0, 0.001, V.R_QUOTE])
        K.risk_clamp(ks, kc, view, out)
        quotes.append((out[V.Q_BID_QTY], out[V.Q_ASK_QTY]))
    assert quotes == [(0.001, 0.001), (0.001, 0.001), (0.0, 0.0), (0.0, 0.0)]
    assert n == 1 and log[0, V.L_CAUSE] == K.C_MANUAL_KILL
