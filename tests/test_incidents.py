"""Incidents: one fault = exactly one incident, a crash never tears the store, the event log of a
collector run is enough to find disconnect storms, checksum bursts and clock skew."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from mm_core.cli import main
from mm_core.trading import incidents as inc
from mm_core.trading.incidents import IncidentError, IncidentStore, open_incident
from tests.trading_runs import S, T0, backtest_run


def test_a_storm_of_one_fault_is_one_incident_and_a_later_one_is_new(tmp_path):
    st = IncidentStore(tmp_path, join_window_s=60)
    refs = [st.report("kill_switch", "reject storm", T0 + k * S // 10, key="reject_storm") for k in range(100)]
    assert refs[0].opened and not any(r.opened for r in refs[1:])
    assert {r.id for r in refs} == {refs[0].id} and refs[-1].count == 100
    other = st.report("kill_switch", "drawdown", T0 + 5 * S, key="drawdown")  # another fault: its own incident
    assert other.opened and other.id != refs[0].id
    later = st.report("kill_switch", "reject storm again", T0 + 3600 * S, key="reject_storm")
    assert later.opened  # an hour later: a new incident
    st.close(refs[0].id, cause="venue maintenance", action="none", by="t")
    again = st.report("kill_switch", "after close", T0 + 20 * S, key="reject_storm")
    assert again.opened  # a closed incident is never reopened by a join
    fresh = IncidentStore(tmp_path)  # what another process reads
    byid = {i.id: i for i in fresh.incidents()}
    assert len(byid) == 4 and byid[refs[0].id].count == 100 and byid[refs[0].id].status == "closed"
    assert byid[refs[0].id].last_t_ns == T0 + 99 * S // 10


def _storm(run_dir: str, worker: int, n: int) -> None:
    for k in range(n):
        open_incident(run_dir, "disconnect_storm", f"worker {worker} #{k}", T0 + k * S, key="feed", join_window_s=600)


def test_two_processes_reporting_the_same_fault_make_one_incident(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_storm, args=(str(tmp_path), w, 40)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    incs = IncidentStore(tmp_path).incidents()
    assert len(incs) == 1 and incs[0].count == 80


def test_torn_and_damaged_lines_are_skipped_and_never_glued(tmp_path):
    st = IncidentStore(tmp_path)
    a = st.report("clock_skew", "offset 250 ms", T0, key="clock")
    log = tmp_path / "incidents" / "incidents.jsonl"
    data = log.read_bytes()
    # a damaged record in the middle (a flipped byte) and a torn tail (kill -9 mid-write)
    log.write_bytes(data + data.replace(b"clock_skew", b"clock_skeW") + b'0badc0de {"op":"open","id":"x"')
    fresh = IncidentStore(tmp_path)
    assert [i.id for i in fresh.incidents()] == [a.id] and fresh.bad_lines == 1
    b = fresh.report("checksum_burst", "3 mismatches", T0 + S, key="book")
    assert b.opened
    text = log.read_bytes()
    assert b'"id":"x"' not in text and text.endswith(b"\n")  # the torn tail was cut before appending
    assert {i.id for i in IncidentStore(tmp_path).incidents()} == {a.id, b.id}


def test_close_needs_cause_and_action_and_cli_round_trip(tmp_path, capsys):
    ref = open_incident(tmp_path, "kill_switch", "drawdown 60 EUR", T0, key="drawdown",
                        telemetry={"pnl": {"equity": -60.0}, "open_orders": []})
    assert (tmp_path / "incidents" / ref.id / "telemetry.json").is_file()
    assert main(["incidents", "close", str(tmp_path), ref.id]) == 2
    assert "--cause and --action" in capsys.readouterr().err
    assert main(["incidents", "annotate", str(tmp_path), ref.id, "--note", "looked at it", "--cause", "vol shock"]) == 0
    assert main(["incidents", "list", str(tmp_path), "--json", "--status", "open"]) == 0
    listed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert listed["open"] == 1 and listed["incidents"][0]["cause"] == "vol shock"
    assert main(["incidents", "close", str(tmp_path), ref.id, "--action", "halved size", "--by", "me"]) == 0
    assert main(["incidents", "show", str(tmp_path), ref.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert shown["status"] == "closed" and shown["action"] == "halved size" and shown["closed_by"] == "me"
    assert shown["telemetry"]["pnl"]["equity"] == -60.0 and shown["notes"][0]["text"] == "looked at it"
    assert main(["incidents", "show", str(tmp_path), "9999-nope"]) == 2


def _collector_events(path: Path, extra=()) -> None:
    """An event log written by the collector's own writer, from the real event classes."""
    from mm_core.events import ChecksumMismatch, ClockEstimate, Connected, Disconnected, Reconnecting
    from mm_core.store.event_log import EventLogWriter

    hdr = {"exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": None}
    w = EventLogWriter(path / "events.jsonl")
    w.write(Connected(**hdr, ts_capture=T0, url="ws://127.0.0.1", attempt=0))
    for k in range(6):  # a disconnect storm: one every 20 s
        w.write(Disconnected(**hdr, ts_capture=T0 + (10 + 20 * k) * S, reason="drop"))
        w.write(Reconnecting(**hdr, ts_capture=T0 + (11 + 20 * k) * S, attempt=k + 1, delay_s=1.0))
        w.write(Connected(**hdr, ts_capture=T0 + (12 + 20 * k) * S, url="ws://127.0.0.1", attempt=k + 1))
    w.write(ChecksumMismatch(**hdr, ts_capture=T0 + 600 * S, expected=1, computed=2))  # one alone: no burst
    for k in range(4):  # a burst
        w.write(ChecksumMismatch(**hdr, ts_capture=T0 + (900 + k) * S, expected=1, computed=2))
    w.write(ClockEstimate(**hdr, ts_capture=T0 + 1200 * S, offset_ns=2_000_000, rtt_ns=1_000_000))  # fine
    w.write(ClockEstimate(**hdr, ts_capture=T0 + 1300 * S, offset_ns=-250_000_000, rtt_ns=1_000_000))
    w.write(ClockEstimate(**hdr, ts_capture=T0 + 1310 * S, offset_ns=-240_000_000, rtt_ns=1_000_000))
    for e in extra:
        w.write(e)
    w.close()


def test_collector_event_log_faults_each_make_exactly_one_incident(tmp_path, capsys):
    _collector_events(tmp_path)
    assert main(["incidents", "list", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    kinds = sorted((i["kind"], i["count"]) for i in out["incidents"])
    assert kinds == [("checksum_burst", 2), ("clock_skew", 2), ("disconnect_storm", 4)]
    assert main(["incidents", "scan", str(tmp_path), "--json"]) == 0  # scanning again finds nothing new
    assert json.loads(capsys.readouterr().out) == {"opened": [], "occurrences": 0}
    storm = next(i for i in out["incidents"] if i["kind"] == "disconnect_storm")
    assert main(["incidents", "show", str(tmp_path), storm["id"], "--json"]) == 0
    w = json.loads(capsys.readouterr().out)["window"]
    assert sum(1 for e in w["events"] if e["kind"] == "disconnected") == 6 and w["complete"]


def test_a_growing_event_log_joins_or_opens_by_time(tmp_path):
    from mm_core.events import Disconnected

    hdr = {"exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": None}
    _collector_events(tmp_path)
    assert len(inc.scan_event_log(tmp_path)) == 8
    n0 = len(IncidentStore(tmp_path).incidents())
    with (tmp_path / "events.jsonl").open("ab") as fh:  # the collector keeps writing: a new storm 2 h later
        import orjson

        from mm_core.events import event_fields

        for k in range(3):
            fh.write(orjson.dumps(event_fields(Disconnected(**hdr, ts_capture=T0 + (7200 + k) * S))) + b"\n")
    refs = inc.scan_event_log(tmp_path)
    assert [r.opened for r in refs] == [True] and len(IncidentStore(tmp_path).incidents()) == n0 + 1


def test_runner_hooks_map_kill_switches_and_differences(tmp_path):
    from mm_core.trading.records import Difference

    recs = [
        {"t_ns": T0, "kind": "latency", "from": "normal", "to": "degraded", "cause": "latency_quantile_above", "value": 25.0},
        {"t_ns": T0 + S, "kind": "trading", "from": "ACTIVE", "to": "HALTED", "cause": "drawdown", "value": 55.0},
        {"t_ns": T0 + 2 * S, "kind": "trading", "from": "HALTED", "to": "HALTED", "cause": "drawdown", "value": 56.0},
        {"t_ns": T0 + 3 * S, "kind": "trading", "from": "ACTIVE", "to": "HALTED", "cause": "repeated_disconnects",
         "value": 3.0},
        {"t_ns": T0 + 4 * S, "kind": "risk", "from": "fresh", "to": "stale", "cause": "data_stale", "value": 1600.0},
    ]
    refs = inc.report_transitions(tmp_path, recs)
    assert [r.opened for r in refs] == [True, False, True, True]
    d = Difference(exchange="kraken", symbol="BTC/EUR", ts_exchange=None, ts_capture=T0 + 10 * S,
                   kind="missing_fill", ref="OABC", expected="-", actual="0.001 @ 84000", action="apply_fill")
    assert inc.report_difference(tmp_path, d).opened
    assert not inc.report_difference(tmp_path, d).opened  # the same difference again joins
    got = {(i.kind, i.key, i.count) for i in IncidentStore(tmp_path).incidents()}
    assert got == {("kill_switch", "drawdown", 2), ("disconnect_storm", "feed", 1), ("risk_trigger", "stale_data", 1),
                   ("reconcile_difference", "missing_fill", 2)}


def test_window_of_a_trading_run_holds_its_orders_fills_and_position(tmp_path):
    rd = backtest_run(tmp_path / "run", tmp_path / "cache", seconds=600, seed=5)
    fills = __import__("pyarrow.parquet", fromlist=["x"]).read_table(rd / "fills.parquet").to_pydict()
    t = fills["ts"][len(fills["ts"]) // 2]
    ref = open_incident(rd, "risk_trigger", "inventory beyond max", t, key="inventory")
    st = IncidentStore(rd)
    w = inc.extract_window(rd, st.get(ref.id), before_s=30, after_s=30)
    assert w["complete"] and any(f["ts"] == t for f in w["fills"]) and w["orders"]
    inside = [f for f in zip(fills["ts"], fills["side"], fills["qty"]) if t - 30 * S <= f[0] <= t + 30 * S]
    assert w["position_after"] - w["position_before"] == pytest.approx(sum(s * q for _, s, q in inside))
    assert (rd / "incidents" / ref.id / "window.json").is_file()


def test_daily_review_lists_new_and_open_and_exits_1_while_any_is_open(tmp_path, capsys):
    _collector_events(tmp_path)
    assert main(["incidents", "review", str(tmp_path), "--json", "--mark"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["new"] == 3 and out["open"] == 3
    assert main(["incidents", "review", str(tmp_path), "--json"]) == 1  # marked: nothing new, still open
    out = json.loads(capsys.readouterr().out)
    assert out["new"] == 0 and out["open"] == 3
    for i in IncidentStore(tmp_path).incidents():
        IncidentStore(tmp_path).close(i.id, cause="test", action="none")
    assert main(["incidents", "review", str(tmp_path)]) == 0


def test_bad_kind_and_missing_dir_are_clear_errors(tmp_path, capsys):
    with pytest.raises(IncidentError):
        open_incident(tmp_path, "Kill Switch!", "x", T0)
    assert main(["incidents", "list", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
