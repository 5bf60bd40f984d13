"""Features against hand-computed values: mid, spread in ticks, imbalances, weighted mid, realized
vol, trade-flow imbalance, book age, clock-grid sampling, depth truncation like a Kraken client."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mm_core.research.book_frames import columns_from_events, infer_tick_size, reconstruct
from mm_core.research.features import event_features, future_move_ticks, grid_features
from mm_core.research.handmade import S, T0, snap, trade, upd


@pytest.fixture()
def tiny():
    events = [
        snap(1.0, [(100.0, 2.0), (99.9, 1.0)], [(100.2, 1.0), (100.3, 3.0)]),
        trade(1.2, 100.2, 0.5, "buy"),
        upd(1.5, asks=[(100.2, 0.0)]),
        trade(1.8, 100.0, 0.25, "sell"),
        trade(2.1, 100.3, 1.0, "buy"),
        upd(2.2, bids=[(100.1, 1.0)]),
    ]
    fr = reconstruct(columns_from_events(events), tick_size=0.1)
    return fr, event_features(fr), grid_features(fr, 100)


def test_mid_spread_in_ticks_and_l1_imbalance_after_each_message(tiny) -> None:
    _, ev, _ = tiny
    assert ev["mid"].to_list() == pytest.approx([100.1, 100.15, 100.2])
    assert ev["spread_ticks"].to_list() == pytest.approx([2.0, 3.0, 2.0])
    assert ev["imbalance"].to_list() == pytest.approx([1 / 3, -0.2, -0.5])
    assert ev["bid_qty"].to_list() == [2.0, 2.0, 1.0] and ev["ask_qty"].to_list() == [1.0, 3.0, 3.0]


def test_depth_imbalance_sums_the_top_levels(tiny) -> None:
    _, ev, _ = tiny
    # row 0: bids 2+1, asks 1+3; row 1: bids 3, asks 3; row 2: bids 1+2+1, asks 3
    assert ev["depth_imbalance"].to_list() == pytest.approx([-1 / 7, 0.0, 1 / 7])


def test_weighted_mid_leans_toward_the_thin_side(tiny) -> None:
    _, ev, _ = tiny
    assert ev["wmid"][0] == pytest.approx((100.0 * 1.0 + 100.2 * 2.0) / 3.0)
    assert ev["wmid"][2] == pytest.approx((100.1 * 3.0 + 100.3 * 1.0) / 4.0)


def test_realized_vol_sums_squared_log_mid_changes_in_the_window(tiny) -> None:
    _, ev, _ = tiny
    r1 = math.log(100.15 / 100.1)
    r2 = math.log(100.2 / 100.15)
    assert ev["rv_1s"].to_list() == pytest.approx([0.0, 1e4 * abs(r1), 1e4 * math.hypot(r1, r2)])
    assert ev["rv_30s"][2] == pytest.approx(1e4 * math.hypot(r1, r2))


def test_trade_flow_imbalance_is_signed_over_total_volume_in_the_window(tiny) -> None:
    _, ev, _ = tiny
    # at 2.2 s the 1 s window (1.2, 2.2] excludes the buy at exactly 1.2
    assert ev["tfi_1s"].to_list() == pytest.approx([0.0, 1.0, (1.0 - 0.25) / 1.25])
    assert ev["tfi_5s"][2] == pytest.approx((0.5 - 0.25 + 1.0) / 1.75)


def test_time_since_update_is_the_gap_between_book_messages(tiny) -> None:
    _, ev, _ = tiny
    assert ev["time_since_update_s"].to_list() == pytest.approx([0.0, 0.5, 0.7])


def test_grid_samples_the_state_as_of_each_time_and_ends_windows_there(tiny) -> None:
    _, _, g = tiny
    ts = g["ts"].to_numpy()
    assert ts[0] == T0 + 1 * S and np.all(np.diff(ts) == S // 10) and ts[-1] == T0 + int(2.2 * S)
    row = int(np.flatnonzero(ts == T0 + 2 * S)[0])
    assert g["mid"][row] == pytest.approx(100.15)  # the 1.5 s message
    assert g["time_since_update_s"][row] == pytest.approx(0.5)
    assert g["tfi_1s"][row] == pytest.approx((0.5 - 0.25) / 0.75)  # (1.0, 2.0]: buy 0.5 at 1.2, sell 0.25 at 1.8


def test_future_move_in_ticks_on_the_grid(tiny) -> None:
    fr, _, g = tiny
    y = future_move_ticks(g, 0.5, 100, fr.tick_size)
    assert y[0] == pytest.approx(0.5)  # 100.1 at 1.0 s -> 100.15 at 1.5 s
    assert np.isnan(y[-1])


def test_a_level_pushed_out_of_the_subscribed_depth_does_not_come_back() -> None:
    events = [
        snap(0.0, [(10.0, 1.0), (9.9, 1.0)], [(10.1, 1.0), (10.2, 1.0)], depth=2),
        upd(0.1, bids=[(9.95, 2.0)], depth=2),  # 9.9 leaves the depth-2 view
        upd(0.2, bids=[(10.0, 0.0)], depth=2),  # best bid deleted; the client holds only 9.95
    ]
    fr = reconstruct(columns_from_events(events), tick_size=0.05, levels=3)
    assert fr.bid.tolist() == [10.0, 10.0, 9.95]
    assert fr.n_bid_levels.tolist() == [2, 2, 1]
    assert fr.bid_qty[2].tolist() == [2.0, 0.0, 0.0]


def test_an_empty_side_gives_nan_mid_not_an_error() -> None:
    events = [snap(0.0, [(10.0, 1.0)], [(10.1, 1.0)]), upd(0.5, asks=[(10.1, 0.0)]), upd(1.0, asks=[(10.2, 1.0)])]
    ev = event_features(reconstruct(columns_from_events(events), tick_size=0.1))
    mid = ev["mid"].to_numpy()
    assert mid[0] == pytest.approx(10.05) and np.isnan(mid[1]) and mid[2] == pytest.approx(10.1)
    assert ev["valid"].to_list() == [True, False, True]


def test_snapshot_without_exchange_time_takes_the_next_stamped_time() -> None:
    events = [snap(5.0, [(10.0, 1.0)], [(10.1, 1.0)], ts_exchange=None), upd(1.0, bids=[(10.0, 2.0)])]
    fr = reconstruct(columns_from_events(events), tick_size=0.1)
    assert fr.ts_raw.tolist() == [T0 + S, T0 + S]  # capture time (5 s) would run backwards


def test_tick_size_is_inferred_from_the_price_grid() -> None:
    assert infer_tick_size(np.array([100.0, 100.1, 100.3, 99.9])) == pytest.approx(0.1)
    assert infer_tick_size(np.array([2.289e-05, 2.287e-05, 2.286e-05])) == pytest.approx(1e-8)


def test_event_rows_with_the_same_timestamp_do_not_see_each_others_future() -> None:
    events = [snap(1.0, [(10.0, 1.0)], [(10.2, 1.0)]), upd(2.0, bids=[(10.1, 1.0)]),
              upd(2.0, asks=[(10.2, 0.0), (10.3, 1.0)])]
    ev = event_features(reconstruct(columns_from_events(events), tick_size=0.1))
    r1 = math.log(10.15 / 10.1)
    assert ev["rv_5s"][1] == pytest.approx(1e4 * r1)  # not yet the 2nd message's move at the same instant
    assert ev["rv_5s"][2] == pytest.approx(1e4 * math.hypot(r1, math.log(10.2 / 10.15)))
