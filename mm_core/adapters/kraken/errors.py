"""Kraken's error texts mapped to venue-neutral outcomes (:class:`~mm_core.trading.records.OutcomeKind`).

The texts are Kraken's (docs.kraken.com "Spot Error Messages", the WS v2 add_order/amend pages,
kraken-protocol.md sections 3-4); the order manager only ever sees the kinds. Anything we do not
recognise maps to ``UNKNOWN``, which counts as "maybe placed": an order request that failed in a
way we cannot explain is reconciled against the exchange instead of being assumed absent.

Which errors are "maybe placed": ``EService:Unavailable``, ``EService:Busy`` and
``EGeneral:Internal error`` say the engine or the API had trouble -- the request may or may not
have reached the book, so they are ``UNAVAILABLE`` (maybe placed), like a timeout. A *definite*
refusal (funds, rate limit, post-only, market mode, deadline, arguments, auth) means the order
does not exist.
"""

from __future__ import annotations

import re

from mm_core.trading.records import OutcomeKind

# exact texts (case-insensitive) first, then prefixes; order matters (first match wins)
_EXACT: dict[str, OutcomeKind] = {
    "eorder:insufficient funds": OutcomeKind.INSUFFICIENT_FUNDS,
    "eorder:rate limit exceeded": OutcomeKind.RATE_LIMITED,
    "eorder:domain rate limit exceeded": OutcomeKind.RATE_LIMITED,
    "eapi:rate limit exceeded": OutcomeKind.RATE_LIMITED,
    "eservice:throttled": OutcomeKind.RATE_LIMITED,
    "eorder:post only order": OutcomeKind.POST_ONLY_WOULD_TAKE,
    "eservice:market in post_only mode": OutcomeKind.MARKET_POST_ONLY,
    "eservice:market in cancel_only mode": OutcomeKind.MARKET_CANCEL_ONLY,
    "eservice:market in limit_only mode": OutcomeKind.MARKET_LIMIT_ONLY,
    "eservice:deadline elapsed": OutcomeKind.DEADLINE_ELAPSED,
    "eapi:invalid token": OutcomeKind.INVALID_TOKEN,
    "eorder:unknown order": OutcomeKind.UNKNOWN_ORDER,
    "eapi:invalid key": OutcomeKind.AUTH,
    "eapi:invalid signature": OutcomeKind.AUTH,
    "eapi:invalid nonce": OutcomeKind.AUTH,
    "egeneral:permission denied": OutcomeKind.AUTH,
    "egeneral:temporary lockout": OutcomeKind.AUTH,
    "eservice:unavailable": OutcomeKind.UNAVAILABLE,
    "eservice:busy": OutcomeKind.UNAVAILABLE,
}
_PREFIXES: tuple[tuple[str, OutcomeKind], ...] = (
    ("eservice:throttled", OutcomeKind.RATE_LIMITED),  # "EService:Throttled: <unix time>"
    ("egeneral:internal error", OutcomeKind.UNAVAILABLE),  # "...[:<code>]"
    ("eorder:post only", OutcomeKind.POST_ONLY_WOULD_TAKE),
    ("egeneral:invalid arguments", OutcomeKind.REJECTED),
    ("eorder:", OutcomeKind.REJECTED),  # minimum not met, invalid price, orders limit, ...
    ("eapi:", OutcomeKind.AUTH),
    ("eauth:", OutcomeKind.AUTH),
    ("eaccount:", OutcomeKind.AUTH),
    ("equery:", OutcomeKind.REJECTED),
    ("egeneral:", OutcomeKind.REJECTED),
)
_MARKET_MODE = re.compile(r"market in (\w+) mode", re.IGNORECASE)
_MODE_KIND = {"post_only": OutcomeKind.MARKET_POST_ONLY, "cancel_only": OutcomeKind.MARKET_CANCEL_ONLY,
              "limit_only": OutcomeKind.MARKET_LIMIT_ONLY}

CANCEL_REASON_POST_ONLY = "post only order"
"""Kraken's executions ``reason`` when a post-only order that would take is cancelled after entry."""


def classify_error(text: str | None) -> OutcomeKind:
    """The outcome kind of one Kraken error text (``UNKNOWN`` -- maybe placed -- if unrecognised)."""
    if not text:
        return OutcomeKind.UNKNOWN
    low = text.strip().lower()
    kind = _EXACT.get(low)
    if kind is not None:
        return kind
    m = _MARKET_MODE.search(low)
    if m and m.group(1) in _MODE_KIND:
        return _MODE_KIND[m.group(1)]
    for prefix, kind in _PREFIXES:
        if low.startswith(prefix):
            return kind
    return OutcomeKind.UNKNOWN


def is_post_only_cancel(reason: str | None) -> bool:
    """True when an executions ``canceled`` reason says the post-only order would have taken."""
    return bool(reason) and CANCEL_REASON_POST_ONLY in reason.lower()
