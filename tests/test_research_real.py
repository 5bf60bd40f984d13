"""Features on the real recorded Kraken books: no errors, no NaN bursts, and the reconstructed top
of book equals the adapter's own (checksum-verified) top of book after every message."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import V1_BOOK, V2_BOOK

pytest.importorskip("mm_core.replay")
from mm_core.events import BookLevels, TopOfBook  # noqa: E402
from mm_core.replay import recording_events  # noqa: E402
from mm_core.research.book_frames import columns_from_events, columns_from_recording, reconstruct  # noqa: E402
from mm_core.research.features import event_features, grid_features  # noqa: E402
from mm_core.research.qa import feature_qa  # noqa: E402

V1_SYMBOLS = ["XMR/USD", "SC/EUR", "OMG/USD", "WAVES/EUR", "ADA/XBT", "ETH/CHF", "KSM/XBT", "XBT/CHF", "OCEAN/XBT",
              "GRT/ETH"]
CORE = ["mid", "spread_ticks", "imbalance", "depth_imbalance", "wmid", "rv_1s", "rv_5s", "rv_30s", "tfi_1s",
        "time_since_update_s"]


def _events(path, adapter):
    return list(recording_events(path, adapter=adapter))


def _check_features(fr) -> None:
    ev, grid = event_features(fr), grid_features(fr)
    for frame in (ev, grid):
        for c in CORE:
            x = frame[c].to_numpy()
            assert np.isfinite(x).all(), c
    rep = feature_qa(fr, grid)
    for name in ("nan_bursts", "non_monotonic_timestamps", "crossed_books", "unverified_book", "outliers"):
        assert rep.check(name).passed and rep.check(name).count == 0, rep.check(name).detail


def test_v2_btc_usd_book_features_without_errors_or_nan() -> None:
    cols = columns_from_recording(V2_BOOK)
    assert (cols.symbol, cols.n_book) == ("BTC/USD", 510)
    fr = reconstruct(cols)
    assert fr.tick_size == pytest.approx(0.1)
    _check_features(fr)


@pytest.mark.parametrize("symbol", V1_SYMBOLS)
def test_v1_books_of_ten_pairs_features_without_errors_or_nan(symbol: str) -> None:
    fr = reconstruct(columns_from_recording(V1_BOOK, symbol=symbol))
    assert fr.n_book > 0
    _check_features(fr)


@pytest.mark.parametrize("path,adapter", [(V2_BOOK, "kraken_v2"), (V1_BOOK, "kraken_v1")])
def test_reconstructed_top_equals_the_adapters_verified_top(path, adapter) -> None:
    events = _events(path, adapter)
    checked = 0
    for symbol in sorted({e.symbol for e in events if isinstance(e, BookLevels)}):
        fr = reconstruct(columns_from_events(events, symbol=symbol))
        row = -1
        for e in events:
            if e.symbol != symbol:
                continue
            if isinstance(e, BookLevels):
                row += 1
            elif isinstance(e, TopOfBook) and e.source == "book" and row >= 0:
                assert (fr.bid[row], fr.ask[row]) == (e.bid, e.ask), (symbol, row)
                assert (fr.bid_qty[row, 0], fr.ask_qty[row, 0]) == (e.bid_qty, e.ask_qty), (symbol, row)
                checked += 1
    assert checked > 200
