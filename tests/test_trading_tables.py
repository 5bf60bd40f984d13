"""Fills and orders from a venue are stored in the backtest's table layout, so TCA and the PnL
decomposition read paper/live fills exactly like backtest fills."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from mm_core.backtest.engine import RESULT_NAMES
from mm_core.backtest.pnl import decompose
from mm_core.trading.orders import OrderManager
from mm_core.trading.records import Fill
from mm_core.trading.tables import (BACKTEST_RESULT_NAMES, backtest_fills_table, backtest_orders_table,
                                    fill_arrays, fill_schema, fills_table, order_schema, orders_table)
from test_backtest_exchange import T0, queue_scenario, run


def test_backtest_fills_round_trip_through_the_shared_table_to_the_same_pnl(tmp_path) -> None:
    r = run(queue_scenario(), [(T0 + 5_000_000, 100, 1.0, 0, 0.0), (T0 + 45_000_000, 0, 0.0, 0, 0.0)])
    fee = np.asarray(r.config.fees.fees(r.fills["price"], r.fills["qty"], r.fills["maker"]), np.float64)
    table = backtest_fills_table(r.fills, exchange="kraken", symbol="T/EUR", fee=fee, fee_asset="EUR")
    assert table.schema == fill_schema()
    from mm_core.trading.session_dir import OPTIONAL_FILL_COLUMNS

    # every backtest key is a column of the same name (the regime columns are optional ones)
    assert set(r.fills) - set(OPTIONAL_FILL_COLUMNS) <= set(table.column_names)
    assert set(OPTIONAL_FILL_COLUMNS) <= set(r.fills)
    pq.write_table(table, tmp_path / "fills.parquet")
    back = fill_arrays(pq.read_table(tmp_path / "fills.parquet"))
    for key in ("ts", "side", "price", "qty", "maker"):
        assert np.array_equal(back[key], np.asarray(r.fills[key])), key
    from mm_core.backtest.event_arrays import from_events
    from mm_core.backtest.fair import fair_model

    market = from_events(queue_scenario(), tick_size=1.0, lot_size=1e-8)
    fair = fair_model(r.config.strategy.fair).series(market)
    again = decompose(back, market.exch_ts, fair, r.config.fees)
    assert again.total == pytest.approx(r.pnl.total, abs=1e-12)
    assert back["fee"].sum() == pytest.approx(r.pnl.fees)
    orders = backtest_orders_table(r.orders, exchange="kraken", symbol="T/EUR")
    assert orders.schema == order_schema() and orders.column("result").to_pylist()[0] == "filled"
    assert BACKTEST_RESULT_NAMES == RESULT_NAMES


def test_venue_fills_and_orders_use_the_same_layout() -> None:
    fills = [Fill(exchange="kraken", symbol="BTC/EUR", ts_exchange=2_000, ts_capture=2_500, exec_id="T2",
                  order_id="OB", side=-1, qty=0.01, price=61_000.0, cost=610.0, fee=1.525, fee_asset="EUR",
                  maker=True, trade_id=8),
             Fill(exchange="kraken", symbol="BTC/EUR", ts_exchange=1_000, ts_capture=1_200, exec_id="T1",
                  order_id="OA", side=1, qty=0.02, price=60_000.0, cl_ord_id="mm00011", maker=False)]
    table = fills_table(fills, source="live")
    assert table.schema == fill_schema() and table.column("source").to_pylist() == ["live", "live"]
    arr = fill_arrays(table)
    assert list(arr["ts"]) == [1_000, 2_000] and list(arr["side"]) == [1, -1]  # sorted by exchange time
    assert list(arr["maker"]) == [False, True] and arr["side"].dtype == np.int8
    m = OrderManager(symbol="BTC/EUR", base="BTC", quote="EUR")
    m.new_order("buy", 0.01, 60_000.0)
    t = orders_table(m.orders.values(), exchange="kraken")
    assert t.schema == order_schema() and t.column("result").to_pylist() == ["open"]
