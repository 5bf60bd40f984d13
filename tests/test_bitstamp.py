"""Exchange #2, Bitstamp BTC/EUR: the diff book synced from REST snapshots by ``microtimestamp``,
integrity without checksums (crossed/locked books, re-snapshot comparison, time going backwards),
trades, control events -- on the real recordings and on hand-made streams with known answers."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from conftest import ROOT, SHARED
from mm_core.adapters import adapter_class, venue_rules
from mm_core.adapters.base import FeedSpec, rest_frame
from mm_core.adapters.bitstamp.feed import BitstampAdapter
from mm_core.book import L2Book
from mm_core.cli import main
from mm_core.config import ConfigError, load_config
from mm_core.recordings import open_recording
from mm_core.replay import replay_file

REC_2021 = SHARED / "bitstamp" / "2021-04-17" / "BITSTAMP.ws.19.0"
REC_2022 = SHARED / "bitstamp" / "2022-01-05" / "BITSTAMP.ws.1.0"
REST = "http://127.0.0.1:1"
T0 = 1_700_000_000_000_000  # µs
S = 1_000_000_000


# ---------------------------------------------------------------------------- real recordings


@pytest.mark.parametrize("path, books, diffs, trades", [(REC_2021, 10, 641, 16), (REC_2022, 10, 717, 10)])
def test_real_recordings_build_every_pair_with_zero_crossed_and_parse_every_trade(path, books, diffs, trades):
    s = replay_file(path)
    assert (s["format"], s["adapter"], s["ok"], s["failures"]) == ("cryptofeed", "bitstamp_v2", True, [])
    assert s["books_built"] == books == len(s["final_top"]) == s["book_snapshots"]
    assert s["crossed_books"] == 0 and s["bad_messages"] == 0 and s["resyncs"] == 0
    assert s["book_updates"] + s["stale_updates"] == diffs  # every diff applied, or at/before its snapshot
    assert s["verified_updates"] == s["book_updates"] and s["unverified_updates"] == 0
    assert s["trades"] == trades
    for sym, top in s["final_top"].items():
        assert top["bid"] < top["ask"] and top["source"] == "book", sym


def test_btc_usd_of_2021_counts_exactly() -> None:
    """65 diffs and 7 trades of BTC/USD; 10 diffs predate its snapshot and are dropped by the rule."""
    from collections import Counter

    from mm_core.replay import recording_events

    c = Counter(e.KIND for e in recording_events(REC_2021) if e.symbol == "BTC/USD")
    assert (c["book_snapshot"], c["book_update"], c["trade"]) == (1, 55, 7)
    top = replay_file(REC_2021)["final_top"]["BTC/USD"]
    assert top["bid"] < top["ask"] and 60_000 < top["bid"] < 61_000


def test_mm_replay_cli_on_bitstamp_says_ok_and_exits_0(capsys) -> None:
    assert main(["replay", str(REC_2021)]) == 0
    out = capsys.readouterr().out
    assert "crossed books       0" in out and "books built         10" in out and "OK: 527 book updates" in out
    assert main(["replay", str(REC_2022), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["crossed_books"] == 0


def test_the_recording_is_recognised_by_url_and_by_its_frames(tmp_path: Path) -> None:
    assert open_recording(REC_2021).protocol == "bitstamp_v2"
    f = tmp_path / "frames.log"
    f.write_text('1.5: {"event":"bts:subscription_succeeded","channel":"live_trades_btceur","data":{}}\n')
    assert open_recording(f).protocol == "bitstamp_v2"


# ---------------------------------------------------------------------------- sync by microtimestamp


def adapter(depth: int = 3, **kw) -> BitstampAdapter:
    return BitstampAdapter(FeedSpec(symbols=("BTC/EUR",), channels=("book", "trade"), book_depth=depth,
                                    rest_endpoint=REST), **kw)


def diff(us: int, bids=(), asks=()) -> str:
    return orjson.dumps({"data": {"timestamp": str(us // 1_000_000), "microtimestamp": str(us),
                                  "bids": [[f"{p}", f"{q}"] for p, q in bids],
                                  "asks": [[f"{p}", f"{q}"] for p, q in asks]},
                         "channel": "diff_order_book_btceur", "event": "data"}).decode()


def snapshot(us: int, bids, asks, status: int = 200) -> str:
    body = orjson.dumps({"timestamp": str(us // 1_000_000), "microtimestamp": str(us),
                         "bids": [[f"{p}", f"{q}"] for p, q in bids], "asks": [[f"{p}", f"{q}"] for p, q in asks]})
    return rest_frame(f"{REST}/api/v2/order_book/btceur/", 0, status, body if status == 200 else b"busy")


def kinds(events) -> list[str]:
    return [e.KIND for e in events]


BOOK_B = [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0), (97.0, 4.0)]
BOOK_A = [(101.0, 1.0), (102.0, 2.0), (103.0, 3.0), (104.0, 4.0)]


def test_diffs_are_buffered_a_snapshot_is_asked_for_and_diffs_at_or_before_it_are_dropped() -> None:
    a = adapter()
    ev = a.on_message(diff(T0 + 10, bids=[(100.0, 5.0)]), 1 * S)
    assert kinds(ev) == ["snapshot_request"] and ev[0].url == f"{REST}/api/v2/order_book/btceur/"
    assert a.on_message(diff(T0 + 20, bids=[(99.0, 0.0)]), 1 * S) == []  # fetching: buffered, asked once
    a.on_message(diff(T0 + 40, asks=[(101.0, 7.0)]), 1 * S)
    ev = a.on_message(snapshot(T0 + 20, BOOK_B, BOOK_A), 2 * S)  # includes the diffs at 10 and 20
    assert kinds(ev) == ["book_snapshot", "top_of_book"]
    snap = ev[0]
    assert snap.verified and snap.ts_exchange == (T0 + 40) * 1000  # exchange time = microtimestamp
    assert snap.bids == ((100.0, 1.0), (99.0, 2.0), (98.0, 3.0)) and snap.asks[0] == (101.0, 7.0)
    assert (a.stats.stale_updates, a.stats.book_updates, a.stats.verified_updates) == (2, 1, 1)
    ev = a.on_message(diff(T0 + 30, bids=[(100.0, 9.0)]), 3 * S)  # after the snapshot, before the last applied
    assert kinds(ev)[0] == "book_mismatch" and ev[0].reason == "time went backwards"  # 30 < 40 applied


def test_a_snapshot_older_than_the_first_buffered_diff_is_fetched_again() -> None:
    a = adapter(retry_s=0.5)
    a.on_message(diff(T0 + 50, bids=[(100.0, 5.0)]), 1 * S)
    assert a.on_message(snapshot(T0 + 10, BOOK_B, BOOK_A), 2 * S) == []  # cannot be joined: diffs in between lost
    assert a.book("BTC/EUR") is None
    assert a.on_message(diff(T0 + 60), 2 * S + S // 4) == []  # retry waits 0.5 s
    ev = a.on_message(diff(T0 + 70), 3 * S)
    assert kinds(ev) == ["snapshot_request"] and ev[0].reason == "initial sync"
    assert kinds(a.on_message(snapshot(T0 + 55, BOOK_B, BOOK_A), 4 * S))[0] == "book_snapshot"


def test_a_failed_fetch_is_an_event_and_asked_again_later() -> None:
    a = adapter(retry_s=1.0)
    a.on_message(diff(T0 + 1), 1 * S)
    ev = a.on_message(snapshot(T0 + 2, BOOK_B, BOOK_A, status=503), 2 * S)
    assert kinds(ev) == ["bad_message"] and "busy" in ev[0].reason
    assert a.on_message(diff(T0 + 3), 2 * S + 1) == []
    assert kinds(a.on_message(diff(T0 + 4), 3 * S + 1)) == ["snapshot_request"]


def synced(**kw) -> BitstampAdapter:
    a = adapter(**kw)
    a.on_message(diff(T0 + 1), 1 * S)
    a.on_message(snapshot(T0 + 1, BOOK_B, BOOK_A), 1 * S)
    return a


def test_a_crossed_or_locked_book_is_an_event_and_a_resync() -> None:
    a = synced()
    ev = a.on_message(diff(T0 + 5, bids=[(101.0, 1.0)]), 2 * S)  # bid at the best ask: locked
    assert kinds(ev) == ["book_mismatch", "resync", "snapshot_request"]
    assert ev[0].reason == "locked" and a.stats.crossed_books == 1 and a.book("BTC/EUR") is None
    b = synced()
    assert b.on_message(diff(T0 + 5, bids=[(101.5, 1.0)]), 2 * S)[0].reason == "crossed"


def test_the_published_view_is_what_a_truncating_consumer_rebuilds() -> None:
    """Updates list every change of the top-3 view, levels entering it included: applying them and
    truncating to the depth gives the adapter's own view after every diff (random streams)."""
    rng = random.Random(5)
    for _ in range(20):
        a = adapter(depth=3)
        a.on_message(diff(T0 + 1), 0)
        bids = [(100.0 - i, float(i + 1)) for i in range(8)]
        asks = [(101.0 + i, float(i + 1)) for i in range(8)]
        mine = L2Book(3)
        for e in a.on_message(snapshot(T0 + 1, bids, asks), 0):
            if e.KIND == "book_snapshot":
                for p, q in e.bids:
                    mine.apply_bid(p, q)
                for p, q in e.asks:
                    mine.apply_ask(p, q)
        for k in range(200):
            side_b = [(round(rng.uniform(93, 100.9), 1), rng.choice([0.0, rng.uniform(0.1, 5)])) for _ in range(2)]
            side_a = [(round(rng.uniform(101, 108), 1), rng.choice([0.0, rng.uniform(0.1, 5)])) for _ in range(2)]
            for e in a.on_message(diff(T0 + 10 + k, bids=side_b, asks=side_a), 0):
                if e.KIND == "book_update":
                    for p, q in e.bids:
                        mine.apply_bid(p, q)
                    for p, q in e.asks:
                        mine.apply_ask(p, q)
                    mine.truncate()
            full = a.book("BTC/EUR")
            assert full is not None
            assert mine.bids() == full.bids(3) and mine.asks() == full.asks(3)


# ---------------------------------------------------------------------------- periodic re-snapshot


def test_a_periodic_re_snapshot_that_agrees_counts_ok() -> None:
    a = synced(verify_every_s=10)
    a.on_message(diff(T0 + 5, bids=[(100.0, 2.0)]), 5 * S)
    ev = a.on_message(diff(T0 + 6, asks=[(104.0, 1.0)]), 12 * S)
    assert "snapshot_request" in kinds(ev) and ev[-1].reason == "periodic verification"
    a.on_message(diff(T0 + 8, bids=[(98.0, 0.5)]), 12 * S)  # after the snapshot's time: rolled forward
    fresh_b = [(100.0, 2.0), (99.0, 2.0), (98.0, 3.0), (97.0, 4.0)]
    fresh_a = [(101.0, 1.0), (102.0, 2.0), (103.0, 3.0), (104.0, 1.0)]
    assert a.on_message(snapshot(T0 + 7, fresh_b, fresh_a), 13 * S) == []
    assert (a.stats.snapshot_checks_ok, a.stats.snapshot_checks_failed) == (1, 0)


def test_a_re_snapshot_that_differs_is_an_event_a_resync_and_becomes_the_book() -> None:
    a = synced(verify_every_s=10)
    a.on_message(diff(T0 + 6, asks=[(104.0, 1.0)]), 12 * S)
    wrong_b = [(100.0, 1.0), (99.0, 2.5), (98.0, 3.0)]  # 99.0 differs: a lost diff
    ev = a.on_message(snapshot(T0 + 6, wrong_b, BOOK_A), 13 * S)
    assert kinds(ev) == ["book_mismatch", "resync", "book_snapshot"]
    assert ev[0].reason == "re-snapshot differs" and "bid level 2" in ev[0].detail
    assert a.stats.snapshot_checks_failed == 1 and a.book("BTC/EUR").bids(2) == [(100.0, 1.0), (99.0, 2.5)]
    assert replay_fails_on(ev)


def replay_fails_on(events) -> bool:
    from mm_core.replay import replay_failures
    from mm_core.recordings import Recording

    a = adapter()
    a.stats.events_by_kind["book_mismatch"] = sum(e.KIND == "book_mismatch" for e in events)
    return bool(replay_failures(a.stats, Recording(path=Path("x"), format="", protocol=None)))


def test_a_re_snapshot_ahead_of_the_stream_is_compared_when_the_stream_reaches_it() -> None:
    a = synced(verify_every_s=10)
    a.on_message(diff(T0 + 6), 12 * S)
    ahead_b = [(100.0, 1.0), (99.0, 8.0), (98.0, 3.0)]  # includes a diff at T0+9 the socket has not delivered
    assert a.on_message(snapshot(T0 + 9, ahead_b, BOOK_A), 13 * S) == []
    a.on_message(diff(T0 + 9, bids=[(99.0, 8.0)]), 13 * S)  # reaches it (not beyond): still pending
    assert a.stats.snapshot_checks_ok == 0
    a.on_message(diff(T0 + 12, asks=[(110.0, 1.0)]), 14 * S)  # beyond it: compared before applying
    assert (a.stats.snapshot_checks_ok, a.stats.snapshot_checks_failed) == (1, 0)


def test_a_long_gap_in_microtimestamp_triggers_a_verification() -> None:
    a = synced(gap_verify_s=5)
    ev = a.on_message(diff(T0 + 7_000_000, bids=[(100.0, 3.0)]), 2 * S)
    req = [e for e in ev if e.KIND == "snapshot_request"]
    assert len(req) == 1 and "7.0 s gap in microtimestamp" in req[0].reason and a.stats.time_gaps == 1


# ---------------------------------------------------------------------------- trades, control, config


def test_trades_heartbeats_reconnect_requests_and_errors() -> None:
    a = adapter()
    t = a.on_message('{"channel": "live_trades_btceur", "event": "trade", "data": {"id": 7, "amount": 0.5, '
                     '"amount_str": "0.50000000", "price": 50000.1, "price_str": "50000.10", "type": 1, '
                     '"microtimestamp": "1700000000123456", "timestamp": "1700000000"}}', 5)[0]
    assert (t.KIND, t.price, t.qty, t.side, t.trade_id, t.ts_exchange) == ("trade", 50000.1, 0.5, "sell", 7,
                                                                           1_700_000_000_123_456_000)
    assert kinds(a.on_message('{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}', 5)) == ["heartbeat"]
    assert kinds(a.on_message('{"event":"bts:request_reconnect","channel":"","data":""}', 5)) == ["reconnect_request"]
    err = a.on_message('{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad subscription string."}}', 5)
    assert kinds(err) == ["subscription_error"] and err[0].error == "Bad subscription string."
    assert kinds(a.on_message("{not json", 5)) == ["bad_message"]
    assert a.subscribe_messages() == ['{"event":"bts:subscribe","data":{"channel":"diff_order_book_btceur"}}',
                                      '{"event":"bts:subscribe","data":{"channel":"live_trades_btceur"}}']
    assert a.ping_message(1) == '{"event":"bts:heartbeat"}'


def test_config_and_venue_rules() -> None:
    cfg = load_config(ROOT / "config" / "bitstamp-btc-eur.toml")
    assert adapter_class(cfg.exchange.adapter) is BitstampAdapter
    inst = cfg.make_instrument()
    assert (inst.exchange, inst.tick_size, inst.price_precision, inst.min_cost) == ("bitstamp", 0.01, 2, 20.0)
    v = venue_rules("bitstamp")
    assert v.idle_heartbeat_s is None and v.rate_tiers["default"].threshold == 400
    assert v.instruments_from_file(SHARED / "bitstamp" / "2022-01-05" / "BITSTAMP.0")["BTC/EUR"] == inst
    text = (ROOT / "config" / "bitstamp-btc-eur.toml").read_text().replace('channels = ["book", "trade"]',
                                                                          'channels = ["book", "ticker"]')
    bad = ROOT.parent / "bad-bitstamp.toml"
    try:
        bad.write_text(text)
        with pytest.raises(ConfigError, match="no BBO ticker channel"):
            load_config(bad)
    finally:
        bad.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- the simulator's dialect


def bitstamp_fast_config(tmp_path: Path, **feed: object) -> Path:
    """The shipped Bitstamp config with short timers (keys replaced in [feed], not duplicated)."""
    values = {"watchdog_silence_s": 3, "reconnect_base_s": 0.1, "reconnect_max_s": 0.3,
              "flush_interval_s": 0.2, "ping_interval_s": 0.5, **feed}
    lines = (ROOT / "config" / "bitstamp-btc-eur.toml").read_text(encoding="utf-8").splitlines()
    section, out = "", []
    for ln in lines:
        if ln.startswith("["):
            section = ln.split("#")[0].strip()
        if section == "[feed]" and "=" in ln and ln.split("=")[0].strip() in values:
            continue
        out.append(ln)
        if ln.strip() == "[feed]":
            out += [f"{k} = {v}" for k, v in values.items()]
    p = tmp_path / "bitstamp-fast.toml"
    p.write_text("\n".join(out) + "\n", encoding="utf-8")
    return p


def capture_bitstamp(tmp_path: Path, sim_args: list[str], seconds: float, **feed: object) -> tuple[Path, dict]:
    from mm_core.capture.collector import Collector
    from mm_core.capture.layout import read_summary
    from mm_core.simexchange.server import spawn_process

    sim = spawn_process(["--dialect", "bitstamp", "--config", str(ROOT / "config" / "bitstamp-btc-eur.toml"),
                         *sim_args])
    try:
        code = Collector(load_config(bitstamp_fast_config(tmp_path, **feed)), tmp_path / "run" / "F.csv",
                         url=sim.url, max_seconds=seconds, quiet=True).run()
    finally:
        sim.stop()
    assert code == 0
    return tmp_path / "run", read_summary(tmp_path / "run")


@pytest.mark.slow
def test_collector_gate_and_backtest_run_on_the_simulators_bitstamp_dialect(tmp_path: Path, capsys) -> None:
    """Offline Bitstamp: the unchanged collector seeds its book from the dialect's REST snapshot,
    applies every diff, re-verifies by re-snapshot with every comparison equal; QA, gate and backtest run."""
    run, s = capture_bitstamp(tmp_path, ["--seed", "4", "--updates-per-second", "30", "--latency-median-ms", "3",
                                         "--no-latency-spells"], seconds=8, snapshot_verify_s=2)
    assert s["verified_updates"] > 100
    assert s["snapshot_checks_ok"] >= 2 and s["snapshot_checks_failed"] == 0 and s["crossed_books"] == 0
    assert s["samples"] > 100 and s["resyncs"] == 0
    rows = (run / "F.csv").read_text().splitlines()[1:]
    assert rows and all(r.split(",")[0] == "bitstamp" and r.split(",")[1] == "BTC/EUR" for r in rows)
    assert main(["qa", "--file", str(run / "F.csv"), "--strict"]) == 0
    capsys.readouterr()
    main(["gate", str(run), "--config", str(bitstamp_fast_config(tmp_path)), "--scale-to-seconds", "8", "--json"])
    checks = {c["name"]: c["passed"] for c in orjson.loads(capsys.readouterr().out)["checks"]}
    assert all(checks[k] for k in ("samples", "p50_ms", "p99_ms", "data_qa_strict")), checks
    assert main(["backtest", str(run), "--config", str(ROOT / "config" / "bitstamp-btc-eur.toml"), "--json"]) == 0
    bt = orjson.loads(capsys.readouterr().out)
    assert bt["rows"] > 100


@pytest.mark.slow
def test_lost_diffs_are_caught_by_re_snapshot_and_reconnect_requests_are_obeyed(tmp_path: Path) -> None:
    """The dialect drops diffs on the way (no checksum can tell); the periodic re-snapshot comparison
    (or a crossed book) catches the divergence as an event and a resync. ``bts:request_reconnect``
    makes the collector reconnect at once."""
    from mm_core.capture.layout import read_events

    run, s = capture_bitstamp(tmp_path, ["--seed", "6", "--updates-per-second", "40", "--latency-median-ms", "2",
                                         "--no-latency-spells", "--faults",
                                         "lost_diff:rate=0.05,request_reconnect:every=4s"],
                              seconds=10, snapshot_verify_s=1)
    kinds = [e["kind"] for e in read_events(run)]
    assert kinds.count("book_mismatch") >= 1 and s["snapshot_checks_failed"] + s["crossed_books"] >= 1
    assert "reconnect_request" in kinds and s["reconnects"] >= 1


@pytest.mark.slow
def test_mm_demo_runs_on_the_bitstamp_config(tmp_path: Path, capsys) -> None:
    """``mm demo --config`` starts the simulator in the config's venue dialect and pair. The venue has
    no ping/pong with a server time, so the gate cannot verify the local clock: its one failed check
    is clock_offset (FIX-AND-RERUN, never PROCEED on an unverified clock) and the demo says so."""
    code = main(["demo", "--config", str(ROOT / "config" / "bitstamp-btc-eur.toml"), "--seconds", "5",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "local bitstamp simulator" in out
    assert code == 1 and "demo FAILED (gate did not pass): QA exit 0, gate exit 1" in out
    assert "DECISION: FIX-AND-RERUN (1 of 14 checks failed: clock_offset)" in out
    run = next(p for p in tmp_path.glob("run-*") if p.is_dir())  # beside it: run-*-simulator.jsonl
    rows = (run / "demo.csv").read_text().splitlines()[1:]
    assert len(rows) > 20 and rows[0].startswith("bitstamp,BTC/EUR,")
