"""Kraken's venue rules: what the core must know about Kraken beyond its wire format.

Fees (kraken-protocol.md section 5): the spot schedule is tiered by 30-day USD volume; the lowest
tier pays 0.25 % maker / 0.40 % taker, $10M+ pays 0 / 0.10 %. Some pairs have maker rebates (-0.02 %
at the top tier); BTC/EUR very likely does not. A config's ``[fees]`` tiers replace this table.

Order-rate counter (docs.kraken.com ratelimits; kraken-protocol.md section 4): every add/amend/
cancel raises a per-pair counter that decays linearly at the tier's rate; a request that would take
it above the tier's threshold is rejected with ``EOrder:Rate limit exceeded`` and does not count.
Cancelling a young order costs most (+8 under 5 s) -- exactly what naive quote churn does, so a
cancel-and-replace bot is throttled within seconds. An amend costs +1 plus +3/+2/+1 under 5/10/15 s.

Feed: Kraken sends a heartbeat after ~1 s without other messages on a subscribed connection, so a
quiet book is known to be current. Re-subscribing a channel that is still subscribed (a resync's
subscribe racing the old one) is answered ``Already subscribed``: harmless. ``cl_ord_id`` takes up
to 18 characters of free text.

Recordings: the project's raw archive names its adapter; a cryptofeed log names its URL
(``wss://ws.kraken.com`` = v1, ``.../v2`` = v2); a python-kraken-sdk fixture is told apart by its
messages (v2 objects carry ``channel``/``method`` with a Kraken channel name; v1 data frames are
arrays, v1 control frames carry ``event``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Sequence

import orjson

from mm_core.adapters.base import FeeTierRow, FeedAdapter, FeedSpec, RateCounterSpec
from mm_core.instrument import Instrument

ADAPTERS: dict[str, str] = {
    "kraken_v2": "mm_core.adapters.kraken.v2:KrakenV2Adapter",
    "kraken_v1": "mm_core.adapters.kraken.v1:KrakenV1Adapter",
}


_CANCEL = ((5.0, 8.0), (10.0, 6.0), (15.0, 5.0), (45.0, 4.0), (90.0, 2.0), (300.0, 1.0))
_AMEND = ((5.0, 4.0), (10.0, 3.0), (15.0, 2.0))


def _tier(name: str, threshold: float, decay: float) -> RateCounterSpec:
    return RateCounterSpec(name, threshold, decay, new_cost=1.0, cancel_costs=_CANCEL, cancel_after=0.0,
                           amend_costs=_AMEND, amend_after=1.0)


RATE_TIERS: dict[str, RateCounterSpec] = {
    "starter": _tier("starter", 60.0, 1.0),
    "intermediate": _tier("intermediate", 125.0, 2.34),
    "pro": _tier("pro", 180.0, 3.75),
}
"""Threshold and decay (per second) of each verification tier."""

_V2_CHANNELS = frozenset(("book", "ticker", "trade", "heartbeat", "status", "instrument", "ohlc",
                          "executions", "balances", "level3"))


@dataclass(frozen=True)
class KrakenRules:
    """:class:`~mm_core.adapters.base.VenueRules` of Kraken spot."""

    name: str = "kraken"
    adapters: Mapping[str, str] = field(default_factory=lambda: dict(ADAPTERS))
    # Kraken's one fee schedule is the shipped config's [fees] table (every spot tier): no copy here
    fee_tiers: tuple[FeeTierRow, ...] = ()
    rate_tiers: Mapping[str, RateCounterSpec] = field(default_factory=lambda: dict(RATE_TIERS))
    idle_heartbeat_s: Optional[float] = 1.0
    client_order_id_max_len: int = 18

    private_ws_url: str = "wss://ws-auth.kraken.com/v2"  # authenticated WS v2 (trading)
    private_rest_url: str = "https://api.kraken.com"  # REST base (GetWebSocketsToken, reconciliation)
    credentials_help: str = ("$MM_KRAKEN_KEY_FILE (TOML api_key/api_secret, mode 0600), else "
                             "$MM_KRAKEN_API_KEY + $MM_KRAKEN_API_SECRET")

    def load_credentials(self, key_file: Any = None, env: Optional[Mapping[str, str]] = None) -> Any:
        """The API key from ``key_file`` or the environment (ValueError with a one-line reason; the
        key itself never appears in it)."""
        from mm_core.adapters.kraken.credentials import load_credentials

        return load_credentials(key_file, env)

    def connect_trading(self, credentials: Any, *, symbol: str, instrument: Instrument, nonce_file: Any,
                        ws_url: str = "", rest_url: str = "") -> Any:
        """A :class:`~mm_core.trading.venue.TradingVenue` for these credentials (nothing sent yet)."""
        from mm_core.adapters.kraken.trading import KrakenTradingMessages
        from mm_core.adapters.kraken.venue import KrakenVenue

        return KrakenVenue.connect(credentials, symbol=symbol, nonce_file=nonce_file,
                                   ws_url=ws_url or self.private_ws_url, rest_url=rest_url or self.private_rest_url,
                                   messages=KrakenTradingMessages({symbol: instrument}))

    def duplicate_subscription(self, error: str) -> bool:
        return "already subscribed" in str(error).lower()

    def known_instruments(self) -> Mapping[str, Instrument]:
        from mm_core.adapters.kraken.instruments import KNOWN_INSTRUMENTS

        return KNOWN_INSTRUMENTS

    def instruments_from_file(self, path: Any) -> Mapping[str, Instrument]:
        """A saved ``instrument`` channel message (:mod:`mm_core.adapters.kraken.instrument_channel`)."""
        from mm_core.adapters.kraken.instrument_channel import instruments_from_file

        return instruments_from_file(path)

    def recording_adapter(self, url: Optional[str], texts: Sequence[str]) -> Optional[str]:
        if url is not None:
            host = url.split("://", 1)[-1].split("/", 1)[0]
            if "kraken" not in host:
                return None
            return "kraken_v2" if url.rstrip("/").endswith("/v2") else "kraken_v1"
        for text in texts:
            try:
                msg = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(msg, list):
                return "kraken_v1"
            if isinstance(msg, dict):
                if msg.get("channel") in _V2_CHANNELS or "method" in msg:
                    return "kraken_v2"
                if isinstance(msg.get("event"), str) and not msg["event"].startswith("bts:"):
                    return "kraken_v1" if "channel" not in msg else None
                return None
        return None

    def replay_adapter(self, adapter: str, header: Mapping[str, Any],
                       fallback_precision: Optional[tuple[int, int]]) -> FeedAdapter:
        """v1: every pair of the file (checksums on the strings as sent). v2: the header's symbols
        and precision, else the known instruments, the fallback, or inference from the first
        snapshot (:mod:`mm_core.adapters.kraken.instruments`); depth from the header or inferred."""
        from mm_core.adapters.kraken.instruments import instrument_with_precision
        from mm_core.adapters.kraken.v1 import KrakenV1Adapter
        from mm_core.adapters.kraken.v2 import KrakenV2Adapter
        from mm_core.adapters.kraken.wire import V2_DEPTHS

        if adapter == "kraken_v1":
            return KrakenV1Adapter(FeedSpec(symbols=()))
        symbols = list(header.get("symbols") or [])
        depth = header.get("depth")
        hp, hq = header.get("price_precision"), header.get("qty_precision")
        instruments = {}
        if isinstance(hp, int) and isinstance(hq, int):
            instruments = {s: instrument_with_precision(s, hp, hq) for s in symbols}
        spec = FeedSpec(symbols=tuple(symbols),
                        book_depth=depth if isinstance(depth, int) and depth in V2_DEPTHS else 10,
                        instruments=instruments)
        return KrakenV2Adapter(spec, infer_depth=not isinstance(depth, int), fallback_precision=fallback_precision)

    def recording_frames(self, path: Any, frames: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        return frames


VENUE = KrakenRules()
