"""Bitstamp's venue rules: fees, request limits, feed facts, instruments and recordings.

Fees: the published spot schedule, tiered by 30-day USD volume (bitstamp.net/fee_schedule, as
published 2023-24; indicative -- the account page is the truth): 0.30 % maker / 0.40 % taker under
$10k down to 0 / 0.03 % above $20M. A config's ``[fees]`` tiers replace this table.

Request limits: Bitstamp has no per-pair, age-priced order counter like some venues; its REST API
allows 400 requests per second and 10,000 per 10 minutes per account. As a counter: every request
(new, cancel, amend/replace) costs 1, the counter drains at 10,000 / 600 s = 16.7 per second, and a
burst may reach 400 -- a leaky bucket that admits exactly the sustained and the burst limit.

Feed: diff order books without checksum or sequence number, seeded from REST snapshots
(:mod:`mm_core.adapters.bitstamp.feed`); no idle heartbeats from the server -- the client sends
``bts:heartbeat`` and the answer confirms the connection, so a quiet book is known current only as
often as the client asks (``[feed] ping_interval_s``).

Recordings: cryptofeed's Bitstamp logs are a ``BITSTAMP.ws.N.M`` file of WebSocket frames, the REST
snapshots the recorder fetched to seed its books in ``BITSTAMP.http.N.M`` and the pairs list in
``BITSTAMP.0`` (lines ``<url> -> <epoch>: <json>``). :meth:`BitstampRules.recording_frames` merges
those REST answers into the frame stream, in capture order, as the collector's REST frames.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import orjson

from mm_core.adapters.base import FeeTierRow, FeedAdapter, FeedSpec, RateCounterSpec, rest_frame
from mm_core.adapters.bitstamp import wire
from mm_core.instrument import Instrument
from mm_core.timestamps import parse_epoch_text_ns

ADAPTERS: dict[str, str] = {"bitstamp_v2": "mm_core.adapters.bitstamp.feed:BitstampAdapter"}

SPOT_FEE_TIERS: tuple[FeeTierRow, ...] = (
    FeeTierRow(0, 0.30, 0.40),
    FeeTierRow(10_000, 0.24, 0.40),
    FeeTierRow(20_000, 0.22, 0.32),
    FeeTierRow(100_000, 0.14, 0.25),
    FeeTierRow(1_000_000, 0.10, 0.15),
    FeeTierRow(20_000_000, 0.00, 0.03),
)

RATE_TIERS: dict[str, RateCounterSpec] = {
    "default": RateCounterSpec("default", threshold=400.0, decay_per_s=10_000 / 600, new_cost=1.0,
                               cancel_after=1.0, amend_after=1.0),
}

BTC_EUR = Instrument(exchange="bitstamp", symbol="BTC/EUR", price_precision=2, qty_precision=8, tick_size=0.01,
                     lot_size=1e-8, min_qty=0.0, min_cost=20.0, base="BTC", quote="EUR")
"""trading-pairs-info of 2022-01-05 (counter_decimals 2, base_decimals 8, minimum_order "20.0 EUR")."""

_REST_LINE = re.compile(r"^(\S+) -> (\d+(?:\.\d+)?): (.*)$", re.S)


@dataclass(frozen=True)
class BitstampRules:
    """:class:`~mm_core.adapters.base.VenueRules` of Bitstamp spot."""

    name: str = "bitstamp"
    adapters: Mapping[str, str] = field(default_factory=lambda: dict(ADAPTERS))
    fee_tiers: tuple[FeeTierRow, ...] = SPOT_FEE_TIERS
    rate_tiers: Mapping[str, RateCounterSpec] = field(default_factory=lambda: dict(RATE_TIERS))
    idle_heartbeat_s: Optional[float] = None
    client_order_id_max_len: int = 180

    def duplicate_subscription(self, error: str) -> bool:
        return False  # re-subscribing is never needed: a resync is a REST snapshot

    def known_instruments(self) -> Mapping[str, Instrument]:
        return {"BTC/EUR": BTC_EUR}

    def instruments_from_file(self, path: Any) -> Mapping[str, Instrument]:
        """A saved ``trading-pairs-info`` answer (JSON list), or a recorder line holding one."""
        text = Path(path).read_text(encoding="utf-8") if Path(path).is_file() else None
        if text is None:
            raise ValueError(f"{path}: cannot read: no such file")
        for line in text.splitlines():
            m = _REST_LINE.match(line.strip())
            body = m.group(3) if m else line
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, list):
                return {i.symbol: i for i in map(_pair_instrument, doc) if i is not None}
        raise ValueError(f"{path}: no trading-pairs-info list in it")

    def recording_adapter(self, url: Optional[str], texts: Sequence[str]) -> Optional[str]:
        if url is not None:
            return "bitstamp_v2" if "bitstamp" in url.split("://", 1)[-1].split("/", 1)[0] else None
        for text in texts:
            try:
                msg = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(msg, dict):
                ev, ch = str(msg.get("event", "")), str(msg.get("channel", ""))
                if ev.startswith("bts:") or ch.startswith((wire.BOOK_PREFIX, wire.TRADES_PREFIX)):
                    return "bitstamp_v2"
            return None
        return None

    def replay_adapter(self, adapter: str, header: Mapping[str, Any],
                       fallback_precision: Optional[tuple[int, int]]) -> FeedAdapter:
        from mm_core.adapters.bitstamp.feed import BitstampAdapter

        depth = header.get("depth")
        spec = FeedSpec(symbols=tuple(header.get("symbols") or ()), channels=wire.CHANNELS,
                        book_depth=depth if isinstance(depth, int) and 1 <= depth <= wire.MAX_DEPTH else 100)
        return BitstampAdapter(spec)

    def recording_frames(self, path: Any, frames: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        """A cryptofeed ``BITSTAMP.ws.*`` log with its ``BITSTAMP.http.*`` snapshots and ``BITSTAMP.0``
        pairs list merged in by capture time (REST answers first at equal times); any other file as is."""
        p = Path(path)
        if ".ws." not in p.name:
            return frames
        prefix = p.name.split(".ws.", 1)[0]
        companions = sorted(p.parent.glob(f"{prefix}.http.*")) + sorted(p.parent.glob(f"{prefix}.0"))
        rest = sorted((r for f in companions for r in _rest_lines(f)), key=lambda r: r[0])
        if not rest:
            return frames
        merged = heapq.merge(((ts, 0, text) for ts, text in rest), ((ts, 1, text) for ts, text in frames),
                             key=lambda x: (x[0], x[1]))
        return ((ts, text) for ts, _, text in merged)


def _rest_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``<url> -> <epoch>: <json>`` lines as (capture ns, REST frame)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _REST_LINE.match(line.strip())
        if m is None:
            continue
        ts = parse_epoch_text_ns(m.group(2))
        yield ts, rest_frame(m.group(1), ts, 200, m.group(3))


def _pair_instrument(p: Any) -> Optional[Instrument]:
    if not isinstance(p, dict) or "name" not in p or "counter_decimals" not in p or "base_decimals" not in p:
        return None
    name = str(p["name"])
    base, _, quote = name.partition("/")
    cd, bd = int(p["counter_decimals"]), int(p["base_decimals"])
    amount, _, ccy = str(p.get("minimum_order", "0")).partition(" ")
    try:
        min_cost = float(amount) if ccy == quote else 0.0
    except ValueError:
        min_cost = 0.0
    return Instrument(exchange="bitstamp", symbol=name, price_precision=cd, qty_precision=bd, tick_size=10.0 ** -cd,
                      lot_size=10.0 ** -bd, min_qty=0.0, min_cost=min_cost, base=base, quote=quote)


VENUE = BitstampRules()
