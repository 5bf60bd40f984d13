"""Kraken spot: WS v1/v2 feed adapters, private trading client, and its venue rules (``VENUE``)."""

from mm_core.adapters.kraken.venue_rules import VENUE

__all__ = ["VENUE"]
