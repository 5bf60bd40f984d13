"""Kraken REST market-history files (a saved ``OHLC`` or ``Trades`` response) as neutral series.

The realism module compares volatility and trade statistics against long real references; Kraken's
REST answers are the longest real BTC references in the shared data. Knowing their shape is a venue
rule, so it lives here and hands back :class:`mm_core.adapters.base.HistorySeries`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from mm_core.adapters.base import HistorySeries

MAX_BYTES = 200_000_000


def _result(path: Path) -> Optional[tuple[str, list[list[Any]]]]:
    """``(pair, rows)`` of a REST ``OHLC``/``Trades`` response file, else None (not this shape)."""
    if path.suffix.lower() != ".json" or path.stat().st_size > MAX_BYTES:
        return None
    import orjson

    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("result"), dict) or "last" not in doc["result"]:
        return None
    pairs = [(k, v) for k, v in doc["result"].items() if k != "last" and isinstance(v, list)]
    if len(pairs) != 1 or not pairs[0][1] or not isinstance(pairs[0][1][0], list):
        return None
    return pairs[0]


def history_file(path: Path) -> Optional[HistorySeries]:
    """The series of a saved REST OHLC bar list (``[time, o, h, l, close, vwap, volume, count]``) or
    trade list (``[price, volume, time, side, type, misc, id]``); None when the file is neither.
    Raises ValueError on a file of that shape whose rows do not parse."""
    found = _result(path)
    if found is None:
        return None
    pair, rows = found
    source = f"{path} (Kraken REST {{kind}})"
    try:
        if len(rows[0]) == 8 and isinstance(rows[0][0], int):
            return HistorySeries(kind="ohlc", pair=pair, source=source.format(kind="ohlc"),
                                 ts_ns=[int(r[0]) * 1_000_000_000 for r in rows],
                                 price=[float(r[4]) for r in rows])
        if len(rows[0]) >= 4:
            return HistorySeries(kind="trades", pair=pair, source=source.format(kind="trades"),
                                 ts_ns=[int(round(float(r[2]) * 1e9)) for r in rows],
                                 price=[float(r[0]) for r in rows], qty=[float(r[1]) for r in rows],
                                 buy=[r[3] == "b" for r in rows])
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{path}: not a readable Kraken REST OHLC/Trades file ({exc})") from None
    raise ValueError(f"{path}: a Kraken REST result with rows of {len(rows[0])} fields; expected OHLC or Trades")
