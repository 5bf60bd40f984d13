"""Kraken wire facts: exact timestamps, v1/v2 symbol rules, depths, known instruments."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mm_core.adapters.kraken.instruments import KNOWN_INSTRUMENTS, decimals_shown
from mm_core.adapters.kraken.v1 import KrakenV1Adapter
from mm_core.adapters.kraken.v2 import KrakenV2Adapter
from mm_core.adapters.kraken.wire import (
    format_ns_iso,
    parse_epoch_text_ns,
    parse_rfc3339_ns,
    smallest_depth_at_least,
    validate_v2_feed,
)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _exact_ns(dt: datetime) -> int:
    """Reference: integer arithmetic on timedelta (no float anywhere)."""
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# ---------------------------------------------------------------------------- RFC 3339


def test_kraken_v2_timestamp_parses_to_exact_nanoseconds() -> None:
    assert parse_rfc3339_ns("2023-07-30T15:29:58.343415Z") == 1_690_730_998_343_415_000


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)))
def test_microsecond_timestamps_match_integer_reference(dt: datetime) -> None:
    dt = dt.replace(tzinfo=timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_rfc3339_ns(text) == _exact_ns(dt)
    assert parse_rfc3339_ns(text) == parse_rfc3339_ns(text)  # second call: cached fast path


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9 - 1))
def test_nanosecond_timestamps_round_trip_exactly(ns: int) -> None:
    """level3 sends 9 fractional digits; datetime.fromisoformat would drop the last 3."""
    text = format_ns_iso(ns)
    assert len(text) == 30
    assert parse_rfc3339_ns(text) == ns


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-07-30T15:29:58Z", 1_690_730_998_000_000_000),
        ("2023-07-30T15:29:58.3Z", 1_690_730_998_300_000_000),
        ("2023-07-30T15:29:58.343Z", 1_690_730_998_343_000_000),
        ("2023-07-30T17:29:58.343415+02:00", 1_690_730_998_343_415_000),
        ("2023-07-30T10:29:58.343415-05:00", 1_690_730_998_343_415_000),
        ("2023-07-30t15:29:58.343415z", 1_690_730_998_343_415_000),
        ("2023-07-30T15:29:58.1234567891Z", 1_690_730_998_123_456_789),  # >9 digits: truncated
        ("2016-12-31T23:59:60Z", 1_483_228_800_000_000_000),  # leap second = next minute :00
    ],
)
def test_other_rfc3339_shapes_use_the_fallback(text: str, expected: int) -> None:
    assert parse_rfc3339_ns(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2023-07-30T15:29:58.343415",  # no zone
        "2023-13-30T15:29:58.343415Z",  # month 13
        "2023-02-30T15:29:58.343415Z",  # no Feb 30
        "2023-07-30T24:29:58.343415Z",
        "2023-07-30T15:60:58.343415Z",
        "2023-07-30T15:29:61.343415Z",
        "2023-07-30T15:29:58.34341xZ",
        "2023-07-30T15:29:58.+43415Z",
        "2023-07-30T15:29:58.3_3415Z",
        "2023-07-30T15:29:58.٣٤٣٤١٥Z",  # non-ASCII digits
        "2023-07-30T15:29:58.343415+25:00",
        "1690730998.343415",
    ],
)
def test_bad_rfc3339_raises_value_error(text: str) -> None:
    parse_rfc3339_ns("2023-07-30T15:29:00.000000Z")  # warm the cache for the same minute
    with pytest.raises(ValueError):
        parse_rfc3339_ns(text)


def test_non_string_timestamp_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse_rfc3339_ns(1690730998)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- v1 epoch text


def test_v1_epoch_text_is_exact_without_float() -> None:
    assert parse_epoch_text_ns("1618678133.365913") == 1_618_678_133_365_913_000
    assert parse_epoch_text_ns("1618678132.3858151") == 1_618_678_132_385_815_100
    assert parse_epoch_text_ns("1618678132") == 1_618_678_132_000_000_000
    assert parse_epoch_text_ns("1618678132.1234567891") == 1_618_678_132_123_456_789
    # float would be off here: 1618678133.365913 * 1e9 is not an integer in binary
    assert int(float("1618678133.365913") * 1e9) != 1_618_678_133_365_913_000


@pytest.mark.parametrize("text", ["", "abc", "-1.5", "1.", ".5", "1e9", "1.5.6", " 1.5", "1.5 "])
def test_bad_v1_epoch_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_epoch_text_ns(text)


def test_iso_formatting_is_exact() -> None:
    assert format_ns_iso(1_690_730_998_343_415_000) == "2023-07-30T15:29:58.343415000Z"


# ---------------------------------------------------------------------------- symbols, depths


def test_xbt_eur_is_rejected_on_v2_with_the_btc_eur_hint() -> None:
    with pytest.raises(ValueError, match=r"'XBT/EUR' is Kraken WS v1 naming.*use 'BTC/EUR'"):
        KrakenV2Adapter.validate_feed("XBT/EUR", 10, ("book", "ticker", "trade"))


@pytest.mark.parametrize(("v1", "v2"), [("XDG/USD", "DOGE/USD"), ("ETH/XBT", "ETH/BTC"), ("XBT/USD", "BTC/USD")])
def test_every_v1_asset_code_gets_its_v2_spelling(v1: str, v2: str) -> None:
    with pytest.raises(ValueError, match=f"use '{v2}'"):
        validate_v2_feed(v1, 10, ("book",))


def test_btc_eur_is_a_valid_v2_feed() -> None:
    KrakenV2Adapter.validate_feed("BTC/EUR", 10, ("book", "ticker", "trade"))


@pytest.mark.parametrize("symbol", ["btc/eur", "BTCEUR", "BTC/", "", "BTC/EUR/USD"])
def test_malformed_symbols_are_rejected(symbol: str) -> None:
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        validate_v2_feed(symbol, 10, ("book",))


@pytest.mark.parametrize("depth", [10, 25, 100, 500, 1000])
def test_valid_v2_depths_are_accepted(depth: int) -> None:
    validate_v2_feed("BTC/EUR", depth, ("book",))


@pytest.mark.parametrize("depth", [0, 5, 15, 50, 2000])
def test_other_depths_are_rejected_with_the_valid_list(depth: int) -> None:
    with pytest.raises(ValueError, match="10, 25, 100, 500, 1000"):
        validate_v2_feed("BTC/EUR", depth, ("book",))


def test_unknown_channels_are_rejected() -> None:
    with pytest.raises(ValueError, match="'ohlc'"):
        validate_v2_feed("BTC/EUR", 10, ("book", "ohlc"))


def test_v1_keeps_xbt_naming() -> None:
    KrakenV1Adapter.validate_feed("XBT/EUR", 10, ("book",))


def test_replay_depth_inference_picks_the_smallest_subscribable_depth() -> None:
    assert smallest_depth_at_least(10) == 10
    assert smallest_depth_at_least(11) == 25
    assert smallest_depth_at_least(5000) == 1000


# ---------------------------------------------------------------------------- instruments


def test_known_btc_pairs_have_price_precision_1_and_qty_precision_8() -> None:
    for symbol in ("BTC/EUR", "BTC/USD"):
        inst = KNOWN_INSTRUMENTS[symbol]
        assert (inst.price_precision, inst.qty_precision) == (1, 8)


def test_decimals_shown_is_a_lower_bound_of_the_precision() -> None:
    assert decimals_shown(0.001) == 3  # wire "0.00100000": JSON drops the trailing zeros
    assert decimals_shown(29430.2) == 1
    assert decimals_shown(4.0) == 0
    assert decimals_shown(1e-8) == 8
    assert decimals_shown(2.5e-07) == 8
