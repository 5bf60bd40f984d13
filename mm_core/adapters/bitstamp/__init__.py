"""Bitstamp spot: WS v2 diff-book feed adapter seeded from REST snapshots, and its venue rules (``VENUE``)."""

from mm_core.adapters.bitstamp.venue_rules import VENUE

__all__ = ["VENUE"]
