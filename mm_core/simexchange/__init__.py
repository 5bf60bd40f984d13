"""Local exchange simulator: a Kraken-v2-speaking WebSocket server on loopback.

Small models drive it, each usable alone:

- :mod:`.market` -- a seeded BTC/EUR-like market (L2 book changes + trades, exchange times in ns),
  a pure generator so research/backtest tests get a simulated day in seconds without sockets
  (:mod:`.canonical` turns it straight into canonical events);
- :mod:`.latency` -- per-message delivery delays (lognormal body + degraded/unsafe spells),
  always delivered in order;
- :mod:`.faults` -- fault injection parsed from a SPEC string (disconnects, stalls, malformed
  frames, wrong checksums, maintenance), deterministic given the seed.

:mod:`.protocol` renders the wire messages; :mod:`.server` ties it together (``mm simexchange``,
``SimExchange``, ``run_in_background``, ``spawn_process``). Importing this package does not import
the server (and so not ``websockets``).
"""

from __future__ import annotations

from mm_core.simexchange.faults import FaultPlan, FaultSpecError
from mm_core.simexchange.latency import LatencyConfig
from mm_core.simexchange.market import BookChange, LevelBook, MarketModel, MarketParams, TradePrint

__all__ = [
    "BookChange",
    "FaultPlan",
    "FaultSpecError",
    "LatencyConfig",
    "LevelBook",
    "MarketModel",
    "MarketParams",
    "TradePrint",
]
