"""``mm rollout-check``: NOT YET for anything shorter than two weeks (and it says why), PROCEED only
when every check has evidence, every failing check named."""

from __future__ import annotations

import json
import shutil

import pytest

from mm_core.cli import main
from mm_core.config import ConfigError, default_config_path, load_config
from mm_core.trading.incidents import open_incident
from mm_core.trading.rollout import connected_intervals, evaluate_rollout
from tests.trading_runs import S, T0, as_paper, backtest_run


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """A one-hour 'paper session' (a backtest's fills relabelled, collector-style summary and events)
    that mm reconcile-day has been run on."""
    root = tmp_path_factory.mktemp("roll")
    cache = root / "cache"
    rd = as_paper(backtest_run(root / "paper", cache, seconds=3600, seed=4))
    import os

    os.environ["MM_CACHE_DIR"] = str(cache)
    try:
        assert main(["reconcile-day", str(rd), "--json"]) == 0
    finally:
        os.environ.pop("MM_CACHE_DIR", None)
    return rd, cache


def _config(tmp_path, **rollout):
    text = default_config_path().read_text(encoding="utf-8").split("[rollout]")[0]
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in rollout.items())
    p = tmp_path / "cfg.toml"
    p.write_text(text + "[rollout]\n" + body + "\n", encoding="utf-8")
    return p


def test_a_one_hour_session_is_not_yet_and_says_why(paper, capsys, monkeypatch):
    rd, cache = paper
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    assert main(["rollout-check", str(rd), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "NOT YET"
    checks = {c["name"]: c for c in out["checks"]}
    assert set(checks) == {"sessions", "days_of_operation", "stable_days", "uptime_share", "unreviewed_incidents",
                           "risk_breaches", "adverse_selection_volatile", "backtest_agreement"}
    d = checks["days_of_operation"]
    assert not d["passed"] and d["value"] == pytest.approx(1 / 24, rel=1e-3) and "14" in d["detail"]
    assert "days_of_operation" in out["failed"] and "stable_days" in out["failed"]
    for name in ("sessions", "uptime_share", "unreviewed_incidents", "risk_breaches", "backtest_agreement"):
        assert checks[name]["passed"], checks[name]
    assert main(["rollout-check", str(rd)]) == 1
    assert "DECISION: NOT YET" in capsys.readouterr().out


def test_proceed_only_when_every_check_passes(paper, tmp_path, capsys, monkeypatch):
    rd, cache = paper
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    cfg = _config(tmp_path, min_days=0.04, min_fills_volatile=20)
    res = evaluate_rollout([rd], cfg)
    assert res.decision == "PROCEED", [(c.name, c.detail) for c in res.failed]
    run = shutil.copytree(rd, tmp_path / "with_incident")
    open_incident(run, "kill_switch", "drawdown", T0 + 60 * S, key="drawdown")
    res = evaluate_rollout([run], cfg)
    assert res.decision == "NOT YET" and {c.name for c in res.failed} == {"unreviewed_incidents", "stable_days"}
    tight = _config(tmp_path, min_days=0.04, min_fills_volatile=20, max_adverse_bps_volatile=0.0)
    res = evaluate_rollout([rd], tight)
    a = next(c for c in res.checks if c.name == "adverse_selection_volatile")
    from mm_core.trading.session_dir import load_session
    from mm_core.trading.tca import analyse

    lo = analyse([load_session(rd)]).groups["vol_bucket"]["high"]["adverse_selection"]["30s"]["fair"]["ci"][0]
    assert a.passed == (lo >= 0.0)  # a 0 bp bound: only an interval entirely above 0 passes


def test_backtests_and_missing_evidence_fail(paper, tmp_path, monkeypatch):
    rd, cache = paper
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    cfg = _config(tmp_path, min_days=0.04, min_fills_volatile=20)
    bt = shutil.copytree(rd, tmp_path / "bt")
    info = json.loads((bt / "session.json").read_text())
    info["source"] = "backtest"
    (bt / "session.json").write_text(json.dumps(info))
    (bt / "reconcile-day.json").unlink()
    (bt / "summary.json").write_text(json.dumps({"duration_s": 3600, "uptime_share": 1.0}))
    res = evaluate_rollout([bt], cfg)
    failed = {c.name: c.detail for c in res.failed}
    assert set(failed) == {"sessions", "risk_breaches", "backtest_agreement"}
    assert "not measured" in failed["backtest_agreement"] and "mm reconcile-day" in failed["backtest_agreement"]


def test_uptime_per_day_from_connection_events(paper, tmp_path, monkeypatch):
    rd, cache = paper
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    run = shutil.copytree(rd, tmp_path / "flaky")
    ev = [{"kind": "connected", "ts_capture": T0}, {"kind": "disconnected", "ts_capture": T0 + 600 * S},
          {"kind": "connected", "ts_capture": T0 + 960 * S}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ev))
    res = evaluate_rollout([run], _config(tmp_path, min_days=0.04, min_fills_volatile=20))
    up = next(c for c in res.checks if c.name == "uptime_share")
    assert up.value == pytest.approx(1 - 360 / 3600, abs=1e-3) and not up.passed
    assert connected_intervals(ev, T0, T0 + 3600 * S) == [(T0, T0 + 600 * S), (T0 + 960 * S, T0 + 3600 * S)]


def test_rollout_bounds_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="rollout"):
        load_config(_config(tmp_path, adverse_horizon_s=7.0))
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(_config(tmp_path, min_dayz=1.0))


def test_a_reviewed_risk_breach_still_counts_as_a_breach(paper, tmp_path, monkeypatch):
    rd, cache = paper
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    run = shutil.copytree(rd, tmp_path / "breach")
    ref = open_incident(run, "risk_breach", "inventory 0.012 > 0.01", T0 + 120 * S, key="inventory")
    from mm_core.trading.incidents import IncidentStore

    IncidentStore(run).close(ref.id, cause="two fills in one cycle", action="max_order_qty halved")
    res = evaluate_rollout([run], _config(tmp_path, min_days=0.04, min_fills_volatile=20))
    assert {c.name for c in res.failed} == {"risk_breaches", "stable_days"}
