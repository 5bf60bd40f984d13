"""Kraken WS v2 ``instrument`` channel: every pair's trading rules, as :class:`Instrument` values.

A snapshot (``{"channel": "instrument", "type": "snapshot", "data": {"assets": [...], "pairs": [...]}}``)
lists each pair; an update carries the pairs that changed. One pair (real, 2024-07-12)::

    {"symbol": "ETH/EUR", "base": "ETH", "quote": "EUR", "status": "online", "qty_precision": 8,
     "qty_increment": 1e-08, "price_precision": 2, "cost_precision": 5, "marginable": true,
     "has_index": true, "cost_min": 0.45, "margin_initial": 0.2, "position_limit_long": 1400,
     "position_limit_short": 1000, "tick_size": 0.01, "price_increment": 0.01, "qty_min": 0.002}

``price_increment`` is the tick (``tick_size`` is its older name), ``qty_increment`` the lot,
``qty_min`` and ``cost_min`` the order minimums. A saved channel message (or a list of them, a
snapshot then updates) is what ``[instrument] rules_file`` points at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import orjson

from mm_core.instrument import Instrument


def instruments_from_messages(messages: Iterable[Any]) -> dict[str, Instrument]:
    """Rules per symbol from instrument-channel messages in order (later updates win)."""
    out: dict[str, Instrument] = {}
    for msg in messages:
        if not isinstance(msg, dict) or msg.get("channel") != "instrument":
            raise ValueError("not an instrument-channel message (expected {\"channel\": \"instrument\", ...})")
        data = msg.get("data")
        pairs = data.get("pairs", []) if isinstance(data, dict) else []
        for p in pairs:
            inst = pair_instrument(p)
            out[inst.symbol] = inst
    return out


def pair_instrument(p: dict[str, Any]) -> Instrument:
    """One ``pairs`` entry -> :class:`Instrument` (ValueError naming the pair and the missing field)."""
    try:
        tick = p.get("price_increment", p.get("tick_size"))
        return Instrument(exchange="kraken", symbol=str(p["symbol"]), price_precision=int(p["price_precision"]),
                          qty_precision=int(p["qty_precision"]), tick_size=float(tick),
                          lot_size=float(p["qty_increment"]), min_qty=float(p["qty_min"]),
                          min_cost=float(p.get("cost_min", 0.0)), base=str(p.get("base", "")),
                          quote=str(p.get("quote", "")))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"instrument pair {p.get('symbol', '?')!r}: missing or bad field {exc}") from None


def instruments_from_file(path: Path) -> dict[str, Instrument]:
    """Rules from a saved channel message, or a JSON list of them."""
    try:
        doc = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    try:
        return instruments_from_messages(doc if isinstance(doc, list) else [doc])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
