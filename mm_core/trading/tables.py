"""Arrow tables for fills and orders: one layout for backtest, paper and live.

TCA (issue 11) reads fills the same way whatever produced them, so the columns are the backtest's
fill and order arrays (:func:`mm_core.backtest.engine.run_backtest` -> ``result.fills`` /
``result.orders``) plus what a real venue adds:

fills: ``ts`` (exchange time of the fill, ns), ``local_ts`` (when we learned it), ``order_id``
(text: the venue's id; the backtest's integer ids as text), ``side`` (int8 +1/-1), ``price``,
``qty``, ``maker`` (bool) -- exactly the backtest's keys -- then ``fee``, ``fee_asset``, ``cost``,
``exec_id``, ``cl_ord_id``, ``trade_id``, ``exchange``, ``symbol``, ``source``
(backtest | paper | live). Backtest rows have no fee column of their own: pass the fee model's
amounts (what :func:`mm_core.backtest.pnl.decompose` charges) so both sides carry the same number.

orders: ``order_id``, ``cl_ord_id``, ``side``, ``price``, ``qty``, ``filled``, ``result``
(open | filled | canceled | expired | rejected | lost | rejected_post_only | ...),
``created_ts``, ``done_ts``, ``exchange``, ``symbol``, ``source``.

:func:`fill_arrays` turns a fills table back into the dict of numpy arrays the backtest's PnL
decomposition takes, so live fills can be decomposed exactly like backtest fills.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

import numpy as np

from mm_core.trading.records import Fill

FILL_COLUMNS = ("ts", "local_ts", "order_id", "side", "price", "qty", "maker", "fee", "fee_asset", "cost",
                "exec_id", "cl_ord_id", "trade_id", "exchange", "symbol", "source")
ORDER_COLUMNS = ("order_id", "cl_ord_id", "side", "price", "qty", "filled", "result", "created_ts", "done_ts",
                 "exchange", "symbol", "source")


def fill_schema():  # -> pyarrow.Schema
    import pyarrow as pa

    return pa.schema([
        pa.field("ts", pa.int64(), nullable=False), pa.field("local_ts", pa.int64()),
        pa.field("order_id", pa.string(), nullable=False), pa.field("side", pa.int8(), nullable=False),
        pa.field("price", pa.float64(), nullable=False), pa.field("qty", pa.float64(), nullable=False),
        pa.field("maker", pa.bool_(), nullable=False), pa.field("fee", pa.float64()),
        pa.field("fee_asset", pa.string()), pa.field("cost", pa.float64()), pa.field("exec_id", pa.string()),
        pa.field("cl_ord_id", pa.string()), pa.field("trade_id", pa.int64()),
        pa.field("exchange", pa.string(), nullable=False), pa.field("symbol", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ])


def order_schema():  # -> pyarrow.Schema
    import pyarrow as pa

    return pa.schema([
        pa.field("order_id", pa.string()), pa.field("cl_ord_id", pa.string()),
        pa.field("side", pa.int8(), nullable=False), pa.field("price", pa.float64(), nullable=False),
        pa.field("qty", pa.float64(), nullable=False), pa.field("filled", pa.float64(), nullable=False),
        pa.field("result", pa.string(), nullable=False), pa.field("created_ts", pa.int64()),
        pa.field("done_ts", pa.int64()), pa.field("exchange", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False), pa.field("source", pa.string(), nullable=False),
    ])


def fills_table(fills: Iterable[Fill], source: str = "live"):  # -> pyarrow.Table
    """Fills from a venue (records) in the shared layout."""
    import pyarrow as pa

    rows: dict[str, list[Any]] = {c: [] for c in FILL_COLUMNS}
    for f in fills:
        rows["ts"].append(f.ts_exchange if f.ts_exchange is not None else f.ts_capture)
        rows["local_ts"].append(f.ts_capture)
        rows["order_id"].append(f.order_id)
        rows["side"].append(f.side)
        rows["price"].append(f.price)
        rows["qty"].append(f.qty)
        rows["maker"].append(f.maker)
        rows["fee"].append(f.fee)
        rows["fee_asset"].append(f.fee_asset or None)
        rows["cost"].append(f.cost)
        rows["exec_id"].append(f.exec_id)
        rows["cl_ord_id"].append(f.cl_ord_id)
        rows["trade_id"].append(f.trade_id)
        rows["exchange"].append(f.exchange)
        rows["symbol"].append(f.symbol)
        rows["source"].append(source)
    return pa.table(rows, schema=fill_schema())


def backtest_fills_table(fills: Mapping[str, np.ndarray], *, exchange: str, symbol: str,
                         fee: Optional[np.ndarray] = None, fee_asset: str = "", source: str = "backtest"):
    """The backtest's fill arrays (``BacktestResult.fills``) in the shared layout."""
    import pyarrow as pa

    n = int(np.asarray(fills["qty"]).shape[0])
    price = np.asarray(fills["price"], np.float64)
    qty = np.asarray(fills["qty"], np.float64)
    fee_col = np.asarray(fee, np.float64) if fee is not None else np.full(n, np.nan)
    local = fills.get("local_ts")
    data = {
        "ts": np.asarray(fills["ts"], np.int64),
        "local_ts": np.asarray(local, np.int64) if local is not None else np.asarray(fills["ts"], np.int64),
        "order_id": [str(int(x)) for x in np.asarray(fills["order_id"])],
        "side": np.asarray(fills["side"], np.int8),
        "price": price, "qty": qty, "maker": np.asarray(fills["maker"], bool),
        "fee": fee_col, "fee_asset": [fee_asset or None] * n, "cost": price * qty,
        "exec_id": [None] * n, "cl_ord_id": [None] * n, "trade_id": pa.nulls(n, pa.int64()),
        "exchange": [exchange] * n, "symbol": [symbol] * n, "source": [source] * n,
    }
    return pa.table(data, schema=fill_schema())


def fill_arrays(table) -> dict[str, np.ndarray]:
    """A fills table -> the arrays :func:`mm_core.backtest.pnl.decompose` takes (sorted by ``ts``)."""
    order = np.argsort(table.column("ts").to_numpy(), kind="stable")
    out = {
        "ts": table.column("ts").to_numpy()[order].astype(np.int64),
        "local_ts": table.column("local_ts").to_numpy(zero_copy_only=False)[order],
        "order_id": np.asarray(table.column("order_id").to_pylist(), dtype=object)[order],
        "side": table.column("side").to_numpy()[order].astype(np.int8),
        "price": table.column("price").to_numpy()[order].astype(np.float64),
        "qty": table.column("qty").to_numpy()[order].astype(np.float64),
        "maker": table.column("maker").to_numpy(zero_copy_only=False)[order].astype(bool),
        "fee": table.column("fee").to_numpy(zero_copy_only=False)[order].astype(np.float64),
    }
    return out


BACKTEST_RESULT_NAMES = {0: "open", 1: "filled", 2: "canceled", 3: "rejected_post_only", 4: "rejected_rate_limit",
                         5: "rejected_market_status"}


def backtest_orders_table(orders: Mapping[str, np.ndarray], *, exchange: str, symbol: str,
                          result_names: Optional[Mapping[int, str]] = None, source: str = "backtest"):
    """The backtest's order arrays (``BacktestResult.orders``) in the shared layout."""
    import pyarrow as pa

    names = dict(result_names or BACKTEST_RESULT_NAMES)
    n = int(np.asarray(orders["qty"]).shape[0])
    done = np.asarray(orders["done_exch_ts"], np.int64)
    data = {
        "order_id": [str(i) for i in range(n)], "cl_ord_id": [None] * n,
        "side": np.asarray(orders["side"], np.int8), "price": np.asarray(orders["price"], np.float64),
        "qty": np.asarray(orders["qty"], np.float64), "filled": np.asarray(orders["filled"], np.float64),
        "result": [names.get(int(r), f"code_{int(r)}") for r in np.asarray(orders["result"])],
        "created_ts": np.asarray(orders["submit_local_ts"], np.int64),
        "done_ts": pa.array([int(x) if x > 0 else None for x in done], pa.int64()),
        "exchange": [exchange] * n, "symbol": [symbol] * n, "source": [source] * n,
    }
    return pa.table(data, schema=order_schema())


def orders_table(orders: Iterable[Any], *, exchange: str, source: str = "live"):
    """Order manager orders (:class:`~mm_core.trading.orders.LocalOrder`) in the shared layout."""
    import pyarrow as pa

    rows: dict[str, list[Any]] = {c: [] for c in ORDER_COLUMNS}
    for o in orders:
        rows["order_id"].append(o.order_id)
        rows["cl_ord_id"].append(o.cl_ord_id)
        rows["side"].append(1 if o.side == "buy" else -1)
        rows["price"].append(o.price)
        rows["qty"].append(o.qty)
        rows["filled"].append(o.filled)
        rows["result"].append("open" if o.is_open else o.state)
        rows["created_ts"].append(o.created_ns or None)
        rows["done_ts"].append(o.done_ns)
        rows["exchange"].append(exchange)
        rows["symbol"].append(o.symbol)
        rows["source"].append(source)
    return pa.table(rows, schema=order_schema())
