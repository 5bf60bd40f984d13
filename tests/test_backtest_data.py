"""Canonical events -> rows: truncation to depth, exchange-time order, Parquet runs, hftbacktest format."""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.backtest import event_arrays as ea
from mm_core.events import BookSnapshot, BookUpdate, Trade

T0 = 1_767_225_600_000_000_000
MS = 1_000_000


def _ev(cls, ts, **kw):
    return cls(exchange="kraken", symbol="T/EUR", ts_exchange=ts, ts_capture=(ts or T0) + 3 * MS, **kw)


def test_levels_pushed_out_of_depth_are_deleted_and_snapshot_time_is_filled():
    events = [
        _ev(BookSnapshot, None, bids=((100.0, 1.0), (99.0, 1.0)), asks=((101.0, 1.0), (102.0, 1.0)), depth=2),
        _ev(BookUpdate, T0 + MS, bids=((100.5, 2.0),), asks=(), depth=2),  # 99 leaves the top 2
        _ev(BookUpdate, T0 + 2 * MS, bids=((100.5, 0.0),), asks=(), depth=2),  # Kraken re-sends 99 as insert
        _ev(BookUpdate, T0 + 2 * MS, bids=((99.0, 0.7),), asks=(), depth=2),
        _ev(Trade, T0 + 3 * MS, price=101.0, qty=0.1, side="buy"),
    ]
    m = ea.from_events(events, tick_size=0.5)
    assert m.exch_ts[0] == T0 + MS  # unknown snapshot time: min(capture, next exchange time)
    dels = (m.kind == ea.DEPTH) & (m.qty == 0) & (m.tick == 198)
    assert dels.sum() == 1  # explicit delete of 99 inserted after the message that pushed it out
    after = np.nonzero(m.exch_ts == T0 + 2 * MS)[0][-1]
    assert m.best_bid_tick[after] == 200 and m.best_ask_tick[after] == 202
    assert (m.best_bid_tick < m.best_ask_tick).all()
    assert m.n_trades == 1 and m.side[m.kind == ea.TRADE][0] == 1


def test_simulator_rows_match_a_reference_book_at_every_message():
    evs = list(ea.simulator_events(60.0, 3))
    m = ea.from_events(evs, tick_size=0.1, depth=10, tops="never")
    bids: dict[int, float] = {}
    asks: dict[int, float] = {}
    ref = []
    for e in evs:
        if isinstance(e, (BookSnapshot, BookUpdate)):
            if isinstance(e, BookSnapshot):
                bids.clear()
                asks.clear()
            for book, levels in ((bids, e.bids), (asks, e.asks)):
                for p, q in levels:
                    t = round(p * 10)
                    if q > 0:
                        book[t] = q
                    else:
                        book.pop(t, None)
            for k in sorted(bids)[:-10]:
                del bids[k]
            for k in sorted(asks)[10:]:
                del asks[k]
            ref.append((max(bids), min(asks)))
    last = np.concatenate([m.msg[1:] != m.msg[:-1], [True]]) & (m.kind == ea.DEPTH)
    ours = list(zip(m.best_bid_tick[last].tolist(), m.best_ask_tick[last].tolist()))
    assert ours == ref
    assert (m.best_bid_tick < m.best_ask_tick).all()  # no transient crossed rows
    assert np.all(np.diff(m.exch_ts) >= 0)


def test_parquet_run_directory_gives_the_same_rows(tmp_path):
    from mm_core.store.parquet_store import ParquetEventStore

    evs = list(ea.simulator_events(30.0, 4))
    store = ParquetEventStore(tmp_path / "parquet")
    store.add_many(evs)
    store.close()
    a = ea.from_events(evs, tick_size=0.1, depth=10, tops="never")
    b = ea.from_run_dir(tmp_path, tick_size=0.1)
    for name in ("kind", "side", "tick", "qty", "exch_ts", "best_bid_tick", "best_ask_tick"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_cache_round_trip_and_hftbacktest_format(tmp_path):
    m, path, hit = ea.cached({"t": 1}, lambda: ea.from_simulator(20.0, 5), directory=tmp_path)
    m2, path2, hit2 = ea.cached({"t": 1}, lambda: pytest.fail("should come from cache"), directory=tmp_path)
    assert not hit and hit2 and path == path2
    assert np.array_equal(m.best_ask_tick, m2.best_ask_tick) and m2.symbol == m.symbol
    from hftbacktest import BUY_EVENT, DEPTH_EVENT, EXCH_EVENT, LOCAL_EVENT, TRADE_EVENT

    hb = ea.to_hftbacktest(m, m.exch_ts + 5 * MS)
    assert len(hb) == len(m)
    depth = m.kind == ea.DEPTH
    assert np.all(hb["ev"][depth] & 0xFF == DEPTH_EVENT)
    assert np.all(hb["ev"][m.kind == ea.TRADE] & 0xFF == TRADE_EVENT)
    assert np.all(hb["ev"] & EXCH_EVENT) and np.all(hb["ev"] & LOCAL_EVENT)
    assert np.array_equal((hb["ev"] & BUY_EVENT) != 0, m.side > 0)
    assert np.allclose(hb["px"][depth], m.tick[depth] * 0.1)


def test_a_message_applies_the_last_change_of_a_level_and_deletes_before_sets():
    events = [
        _ev(BookSnapshot, T0, bids=((100.0, 1.0),), asks=((101.0, 1.0), (102.0, 1.0)), depth=10),
        # the book moves up one tick: the bid insert at the old ask is listed before that ask's delete
        _ev(BookUpdate, T0 + MS, bids=((101.0, 2.0),), asks=((101.0, 0.0),), depth=10),
        _ev(BookUpdate, T0 + 2 * MS, bids=((100.0, 5.0), (100.0, 3.0)), asks=(), depth=10),  # 3.0 counts
    ]
    m = ea.from_events(events, tick_size=1.0)
    assert (m.best_bid_tick[m.best_ask_tick != ea.NO_ASK] < m.best_ask_tick[m.best_ask_tick != ea.NO_ASK]).all()
    second = m.exch_ts == T0 + MS
    assert m.qty[second].tolist() == [0.0, 2.0]  # the ask delete first, then the bid set
    third = m.exch_ts == T0 + 2 * MS
    assert m.qty[third].tolist() == [3.0] and m.tick[third].tolist() == [100]


def test_best_sizes_match_a_reference_book():
    evs = list(ea.simulator_events(20.0, 8))
    m = ea.from_events(evs, tick_size=0.1, depth=10, tops="never")
    bids: dict[int, float] = {}
    asks: dict[int, float] = {}
    ref = []
    for e in evs:
        if isinstance(e, (BookSnapshot, BookUpdate)):
            if isinstance(e, BookSnapshot):
                bids.clear()
                asks.clear()
            for book, levels in ((bids, e.bids), (asks, e.asks)):
                for p, q in levels:
                    if q > 0:
                        book[round(p * 10)] = q
                    else:
                        book.pop(round(p * 10), None)
            for k in sorted(bids)[:-10]:
                del bids[k]
            for k in sorted(asks)[10:]:
                del asks[k]
            ref.append((bids[max(bids)], asks[min(asks)]))
    last = np.concatenate([m.msg[1:] != m.msg[:-1], [True]]) & (m.kind == ea.DEPTH)
    assert list(zip(m.best_bid_qty[last].tolist(), m.best_ask_qty[last].tolist())) == ref


def test_row_cache_is_keyed_by_the_code_that_builds_the_rows(tmp_path, monkeypatch):
    src = tmp_path / "book_pass.py"
    src.write_text("version = 1\n")
    monkeypatch.setitem(ea.PRODUCER_SOURCES, "run_dir", [src])
    builds = []

    def build():
        builds.append(1)
        return ea.from_simulator(5.0, 1)

    key = {"source": "run_dir", "path": "x"}
    _, p1, hit1 = ea.cached(key, build, directory=tmp_path)
    _, p2, hit2 = ea.cached(key, build, directory=tmp_path)
    assert (hit1, hit2) == (False, True) and p1 == p2 and len(builds) == 1
    src.write_text("version = 2  # the book pass changed\n")
    _, p3, hit3 = ea.cached(key, build, directory=tmp_path)
    assert not hit3 and p3 != p1 and len(builds) == 2  # old rows are not reused


def test_row_cache_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_ROW_CACHE", "off")
    _, path, hit = ea.cached({"t": 2}, lambda: ea.from_simulator(5.0, 1), directory=tmp_path)
    assert not hit and not path.exists()


def test_reading_a_run_directory_does_not_import_pandas(tmp_path):
    """pandas (~0.3 s and ~40 MB per process) was imported by the Parquet reader for nothing."""
    import subprocess
    import sys

    from mm_core.store.parquet_store import ParquetEventStore

    store = ParquetEventStore(tmp_path / "parquet")
    store.add_many(list(ea.simulator_events(10.0, 4)))
    store.close()
    code = ("import sys; from mm_core.backtest import event_arrays as ea; "
            f"m = ea.from_run_dir({str(tmp_path)!r}, tick_size=0.1); assert len(m) > 0; "
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False", out.stdout + out.stderr
