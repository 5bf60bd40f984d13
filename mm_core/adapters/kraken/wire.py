"""Kraken wire-format facts: timestamps, symbol naming, valid depths and channels.

Timestamps become int nanoseconds since the epoch, *exactly* (no float on the way): Kraken WS v2
sends RFC 3339 text with 6 fractional digits (9 on level3), v1 sends epoch seconds as a decimal
string. ``datetime.fromisoformat`` would be both slow and lossy (it truncates ns to µs), so the
fast path is three dict look-ups on slices of the text: the epoch of the ``date T hh:mm:ss.``
prefix (computed once per second of data from a per-day cache), the milliseconds and the
microseconds-plus-``Z``. The digit tables double as validation: only ASCII digits are keys.

Symbols: v2 uses ISO codes (``BTC/EUR``); v1 / REST ``wsname`` use ``XBT`` and ``XDG``. v2 answers a
v1 symbol with an error ack and then sends nothing -- a silent no-data feed -- so configs are
checked up front by :func:`validate_v2_feed` (see ../shared/kraken-protocol.md §1.2).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Iterable

from mm_core.timestamps import format_ns_iso, parse_epoch_text_ns  # noqa: F401  (re-exported)

# ---------------------------------------------------------------------------- feed rules

V2_DEPTHS: tuple[int, ...] = (10, 25, 100, 500, 1000)
V1_DEPTHS: tuple[int, ...] = (10, 25, 100, 500, 1000)
CHANNELS: tuple[str, ...] = ("book", "ticker", "trade")

# v1 (and REST wsname) asset codes that v2 spells differently
V1_TO_V2_ASSET: dict[str, str] = {"XBT": "BTC", "XDG": "DOGE"}

_SYMBOL_RE = re.compile(r"^[A-Z0-9.]{1,16}/[A-Z0-9.]{1,16}$")


def v2_symbol_problem(symbol: str) -> str | None:
    """Why WS v2 would reject ``symbol`` (with the fix), or None when it looks valid."""
    if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
        return (
            f"symbol {symbol!r} is not of the form BASE/QUOTE in upper case "
            f"(e.g. 'BTC/EUR')"
        )
    base, quote = symbol.split("/")
    if base in V1_TO_V2_ASSET or quote in V1_TO_V2_ASSET:
        fixed = f"{V1_TO_V2_ASSET.get(base, base)}/{V1_TO_V2_ASSET.get(quote, quote)}"
        return (
            f"symbol {symbol!r} is Kraken WS v1 naming; WS v2 rejects it "
            f"('Currency pair not supported'): use {fixed!r}"
        )
    return None


def validate_v2_feed(symbol: str, depth: int, channels: Iterable[str]) -> None:
    """Raise ValueError (naming the field and the fix) if WS v2 cannot serve this feed."""
    problem = v2_symbol_problem(symbol)
    if problem:
        raise ValueError(problem)
    _check_depth_and_channels(depth, channels, V2_DEPTHS, "WS v2")


def validate_v1_feed(symbol: str, depth: int, channels: Iterable[str]) -> None:
    """Raise ValueError if WS v1 cannot serve this feed (v1 keeps the ``XBT/EUR`` naming)."""
    if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
        raise ValueError(f"symbol {symbol!r} is not of the form BASE/QUOTE (e.g. 'XBT/EUR')")
    _check_depth_and_channels(depth, channels, V1_DEPTHS, "WS v1")


def _check_depth_and_channels(
    depth: int, channels: Iterable[str], depths: tuple[int, ...], api: str
) -> None:
    if depth not in depths:
        raise ValueError(
            f"book depth {depth!r} is not offered by Kraken {api}; use one of "
            f"{', '.join(map(str, depths))}"
        )
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValueError(
            f"unknown channel(s) {', '.join(map(repr, unknown))}; known: {', '.join(CHANNELS)}"
        )


def smallest_depth_at_least(n: int, depths: tuple[int, ...] = V2_DEPTHS) -> int:
    """The smallest subscribable depth that can hold ``n`` levels (used to infer a replay's depth)."""
    for d in depths:
        if d >= n:
            return d
    return depths[-1]


# ---------------------------------------------------------------------------- timestamps

_NS = 1_000_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,18}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)

MINUTE_CACHE: dict[str, int] = {}
"""``"YYYY-MM-DDTHH:MM:"`` (validated) -> epoch ns of that minute. Filled by
:func:`minute_epoch_ns` (one miss per minute of data); bounded: cleared when it reaches
:data:`CACHE_MAX` entries. Cleared in place only, so modules holding a reference stay valid."""
CACHE_MAX = 4096
_DAY_CACHE: dict[str, int] = {}  # "YYYY-MM-DD" -> epoch ns of midnight

# The digit tables double as validation: their keys are exactly the ASCII digit strings.
SECONDS: dict[str, int] = {f"{i:02d}.": i * _NS for i in range(60)}
"""``"58."`` -> 58 s in ns (the seconds and the decimal point)."""
MILLIS: dict[str, int] = {f"{i:03d}": i * 1_000_000 for i in range(1000)}
"""``"343"`` -> 343_000_000: the first three fractional digits in ns."""
MICROS_Z: dict[str, int] = {f"{i:03d}Z": i * 1000 for i in range(1000)}
"""``"415Z"`` -> 415_000: fractional digits 4-6 plus the closing ``Z`` -- a hit also proves the text
ends right there (27 characters, UTC)."""


def parse_rfc3339_ns(text: str) -> int:
    """RFC 3339 timestamp -> int ns since the epoch, exact (integer arithmetic only).

    Fast path for Kraken's ``2023-07-30T15:29:58.343415Z`` (µs): four dict look-ups -- minute
    (:data:`MINUTE_CACHE`), seconds, milliseconds, microseconds+``Z`` -- and no ``int()`` call.
    ``2025-12-02T10:00:00.123456789Z`` (ns, level3, where ``datetime.fromisoformat`` would drop
    the last three digits) takes one ``int()`` more. Anything else valid in RFC 3339 (other
    fraction lengths, offsets, lower-case ``t``/``z``, leap second ``:60`` which maps onto the next
    minute's ``:00``) goes through a regex; fractions beyond 9 digits are truncated toward zero.
    Raises ValueError on anything that is not a timestamp.
    """
    try:
        base = MINUTE_CACHE.get(text[:17])
    except TypeError:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    if base is None and len(text) >= 20 and text[19] == "." and text[-1] == "Z":
        base = minute_epoch_ns(text[:17])
    if base is not None:
        try:
            return base + SECONDS[text[17:20]] + MILLIS[text[20:23]] + MICROS_Z[text[23:]]
        except KeyError:
            pass
        if len(text) == 30 and text[29] == "Z" and text.isascii():
            nanos = text[23:29]
            sec = SECONDS.get(text[17:20])
            milli = MILLIS.get(text[20:23])
            if sec is not None and milli is not None and nanos.isdigit():
                return base + sec + milli + int(nanos)
    return _parse_rfc3339_slow(text)


def minute_epoch_ns(prefix: str) -> int | None:
    """Epoch ns of ``"YYYY-MM-DDTHH:MM:"``, memoized in :data:`MINUTE_CACHE`; None if the prefix is
    not exactly that shape (strict: ASCII digits, a real date, hour 00-23, minute 00-59)."""
    if not (len(prefix) == 17 and prefix[4] == "-" and prefix[7] == "-" and prefix[10] == "T"
            and prefix[13] == ":" and prefix[16] == ":" and prefix.isascii()):
        return None
    digits = prefix[:4] + prefix[5:7] + prefix[8:10] + prefix[11:13] + prefix[14:16]
    if not digits.isdigit():
        return None
    hh, mm = int(prefix[11:13]), int(prefix[14:16])
    if hh > 23 or mm > 59:
        return None
    day = _DAY_CACHE.get(prefix[:10])
    if day is None:
        try:
            days = date(int(prefix[:4]), int(prefix[5:7]), int(prefix[8:10])).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return None
        if len(_DAY_CACHE) >= CACHE_MAX:
            _DAY_CACHE.clear()
        day = _DAY_CACHE[prefix[:10]] = days * 86400 * _NS
    base = day + (hh * 3600 + mm * 60) * _NS
    if len(MINUTE_CACHE) >= CACHE_MAX:
        MINUTE_CACHE.clear()
    MINUTE_CACHE[prefix] = base
    return base


def _parse_rfc3339_slow(text: str) -> int:
    if not isinstance(text, str) or not text.isascii():
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    m = _RFC3339_RE.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    y, mo, d, hh, mm, ss, frac, z, sign, oh, om = m.groups()
    if int(ss) > 60:
        raise ValueError(f"seconds out of range in {text!r}")
    base = minute_epoch_ns(f"{y}-{mo}-{d}T{hh}:{mm}:")
    if base is None:
        raise ValueError(f"not a valid date/time: {text!r}")
    base += int(ss) * _NS  # RFC 3339 allows a leap second :60; it lands on the next minute's :00
    ns = base
    if frac:
        ns += int(frac[:9].ljust(9, "0"))
    if sign:
        ohi, omi = int(oh), int(om)
        if ohi > 23 or omi > 59:
            raise ValueError(f"UTC offset out of range in {text!r}")
        offset = (ohi * 3600 + omi * 60) * _NS
        ns = ns - offset if sign == "+" else ns + offset
    return ns


