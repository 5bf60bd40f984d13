"""Exchange adapters: the only code that knows an exchange's wire format, symbols and checksums.

An adapter module registers itself in :data:`ADAPTERS` under the name used by the ``adapter`` key of
a runtime config. Adding exchange #2 = a new module here + a config file.
"""

from __future__ import annotations

import importlib

from mm_core.adapters.base import FeedAdapter, FeedSpec

# config "adapter" name -> "module:factory" (imported lazily so startup stays fast)
ADAPTERS: dict[str, str] = {
    "kraken_v2": "mm_core.adapters.kraken.v2:KrakenV2Adapter",
    "kraken_v1": "mm_core.adapters.kraken.v1:KrakenV1Adapter",
}


def adapter_class(name: str) -> type[FeedAdapter]:
    """The adapter class registered under ``name``; a clear error lists the known names."""
    try:
        target = ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise ValueError(f"unknown adapter {name!r}; known adapters: {known}") from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


__all__ = ["ADAPTERS", "FeedAdapter", "FeedSpec", "adapter_class"]
