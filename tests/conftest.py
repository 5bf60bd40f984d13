"""Shared test fixtures: where the real recorded exchange traffic lives.

The recordings are never copied into the project: tests read them from ``../shared/data`` (beside
the checkout, as on CI) or from ``$MM_SHARED_DATA``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    env = os.environ.get("MM_SHARED_DATA")
    if env:
        return Path(env)
    return ROOT.parent / "shared" / "data"


SHARED = shared_data_dir()
V2_BOOK = SHARED / "kraken-spot-v2" / "orderbook-v2_BTCUSD_book10_2023-07-30.json"
V1_BOOK = SHARED / "kraken-spot-v1" / "KRAKEN.ws.50.0"
V1_TICKER = SHARED / "kraken-spot-v1" / "KRAKEN.ws.49.0"
V1_TRADE = SHARED / "kraken-spot-v1" / "KRAKEN.ws.48.0"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"real recordings not found at {SHARED}; set MM_SHARED_DATA")
    return SHARED
