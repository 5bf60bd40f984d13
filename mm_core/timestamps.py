"""Exact timestamp text <-> int nanoseconds since the Unix epoch (UTC), for any venue and recorder.

No float on the way: a float has only ~16 significant digits, too few for nanoseconds since 1970.
"""

from __future__ import annotations

from datetime import date

_NS = 1_000_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def parse_epoch_text_ns(text: str) -> int:
    """Epoch-seconds text (a recorder's line stamp, some venues' times: ``"1618678133.365913"``) -> int
    ns, exact (string split, no float: a float has only ~16 significant digits, too few for ns since 1970).

    Digits beyond the 9th fractional one are truncated. Raises ValueError on anything else.
    """
    sec, dot, frac = text.partition(".")
    if not (sec.isdigit() and sec.isascii()):
        raise ValueError(f"not an epoch-seconds timestamp: {text!r}")
    ns = int(sec) * _NS
    if dot:
        if not frac or not (frac.isdigit() and frac.isascii()):
            raise ValueError(f"not an epoch-seconds timestamp: {text!r}")
        ns += int(frac[:9].ljust(9, "0"))
    return ns


def format_ns_iso(ns: int) -> str:
    """int ns -> ``2023-07-30T15:29:58.343415000Z`` (exact; for reports)."""
    sec, frac = divmod(ns, _NS)
    days, rem = divmod(sec, 86400)
    d = date.fromordinal(_EPOCH_ORDINAL + days)
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    return f"{d.isoformat()}T{hh:02d}:{mm:02d}:{ss:02d}.{frac:09d}Z"
