"""Sample CSV writer: the cached-top fast path writes exactly the bytes of formatting every row in full."""

from __future__ import annotations

from pathlib import Path

from mm_core.events import TopOfBook
from mm_core.store.sample_csv import HEADER, SampleCsvWriter


def full_row(top: TopOfBook, te: int, tc: int) -> str:
    """The row format, spelled out once in full (the reference for the writer's fast path)."""
    return (f"{top.exchange},{top.symbol},{te},{tc},{(tc - te) / 1e6:.3f},"
            f"{top.bid!r},{top.bid_qty!r},{top.ask!r},{top.ask_qty!r}\n")


def tops() -> list[TopOfBook]:
    h = {"exchange": "kraken", "symbol": "BTC/EUR", "ts_exchange": 1, "ts_capture": 2}
    return [
        TopOfBook(**h, bid=60000.1, bid_qty=0.5, ask=60000.2, ask_qty=1e-8),
        TopOfBook(**h, bid=0.1 + 0.2, bid_qty=12345678.123456789, ask=1e22, ask_qty=5e-324),
        TopOfBook(**{**h, "symbol": "ETH/EUR"}, bid=2000.0, bid_qty=3.0, ask=2000.01, ask_qty=0.25),
    ]


def test_rows_are_byte_identical_to_full_formatting_and_flushed_on_flush(tmp_path: Path) -> None:
    path = tmp_path / "F.csv"
    w = SampleCsvWriter(path, flush_interval_s=60.0)
    expected = HEADER
    te = 1_764_111_874_566_848_000
    samples = [(t, te + i * 1000, te + i * 1000 + d)
               for i, t in enumerate([tops()[0]] * 3 + tops() + [tops()[1]] * 2)
               for d in (1_234_567, 500, 1_500, 0, -2_000_000, 123_456_789_012)]
    for top, e, c in samples:
        age = w.write_sample(top, e, c)
        assert age == (c - e) / 1e6
        expected += full_row(top, e, c)
    assert w.rows == len(samples)
    w.maybe_flush(w._last_flush + 1.0)  # not due: rows may still be buffered
    w.flush()
    assert path.read_text(encoding="utf-8") == expected
    w.write_sample(tops()[2], te, te + 10)
    w.close()
    assert path.read_text(encoding="utf-8") == expected + full_row(tops()[2], te, te + 10)


def test_buffer_is_bounded_and_reopening_repairs_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "F.csv"
    w = SampleCsvWriter(path, flush_interval_s=1e9, max_buffer_rows=10)
    top = tops()[0]
    for i in range(25):
        w.write_sample(top, 1_000, 2_000 + i)
    assert len(w._buf) < 10  # handed to the file every max_buffer_rows
    w.close()
    with path.open("a", encoding="utf-8") as fh:
        fh.write("kraken,BTC/EUR,1")  # a torn last row (hard kill)
    w = SampleCsvWriter(path)
    w.write_sample(top, 1_000, 3_000)
    w.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] + "\n" == HEADER and len(lines) == 1 + 25 + 2
    assert lines[-2] == "kraken,BTC/EUR,1" and lines[-1] + "\n" == full_row(top, 1_000, 3_000)
