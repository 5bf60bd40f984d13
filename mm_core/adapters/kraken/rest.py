"""Kraken private REST: signed requests (sans-IO) and a thin aiohttp client.

Only what trading needs: ``GetWebSocketsToken`` (the WS v2 session token) and a generic signed
``private()`` call. The sans-IO half (:func:`prepare_private`, :func:`parse_response`) builds and
reads the exact bytes and is tested without a socket; :class:`KrakenRestClient` only moves them.

Why aiohttp: a maintained asyncio HTTP client with connection reuse and per-request timeouts, and
already pinned in this project's constraints (it also gives the tests a loopback REST stub via
``aiohttp.web``). Private calls are *serialised* per client: Kraken rejects a nonce that is not
larger than the last one it saw, and two concurrent requests can arrive out of order
(``EAPI:Invalid nonce``), so the next request is signed only after the previous one returned.

Secrets: the ``API-Key``/``API-Sign`` headers exist only inside :class:`PreparedRequest`, whose
``repr`` redacts them; transport errors are re-raised as :class:`KrakenTransportError` carrying the
exception *type* and URL only (aiohttp's own errors keep the request headers in ``request_info``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import orjson

from mm_core.adapters.kraken.auth import NonceSource, api_sign, encode_body
from mm_core.adapters.kraken.credentials import ApiCredentials, Secret
from mm_core.adapters.kraken.errors import classify_error
from mm_core.trading.records import OutcomeKind

REST_BASE = "https://api.kraken.com"
USER_AGENT = "mm_core (+https://github.com/; trading client)"
TOKEN_PATH = "/0/private/GetWebSocketsToken"
TOKEN_MAX_AGE_S = 14 * 60  # "use within 15 minutes" (kept alive while a private subscription is open)


class KrakenApiError(RuntimeError):
    """Kraken answered with a non-empty ``error`` array (texts are Kraken's, never our secrets)."""

    def __init__(self, path: str, errors: tuple[str, ...]) -> None:
        self.path = path
        self.errors = errors
        self.kind: OutcomeKind = classify_error(errors[0] if errors else None)
        super().__init__(f"{path}: {', '.join(errors) or 'error without text'} ({self.kind.value})")


class KrakenTransportError(RuntimeError):
    """The request did not get an answer (connection, timeout, HTTP status, not JSON)."""


@dataclass(frozen=True)
class PreparedRequest:
    url: str
    path: str
    body: str
    headers: Mapping[str, str] = field(repr=False)

    def __repr__(self) -> str:
        return f"PreparedRequest(url={self.url!r}, headers=<redacted>, body=<{len(self.body)} bytes>)"


def prepare_private(creds: ApiCredentials, path: str, params: Optional[Mapping[str, Any]], nonce: int,
                    base_url: str = REST_BASE) -> PreparedRequest:
    """The signed POST for ``path`` (``/0/private/...``) with ``nonce`` first in the body."""
    if not path.startswith("/0/private/"):
        raise ValueError(f"private REST path must start with /0/private/, not {path!r}")
    body = encode_body({"nonce": nonce, **dict(params or {})})
    sign = api_sign(path, nonce, body, creds.secret_bytes())
    headers = {"API-Key": creds.key.reveal(), "API-Sign": sign, "User-Agent": USER_AGENT,
               "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    return PreparedRequest(base_url.rstrip("/") + path, path, body, headers)


def parse_response(path: str, status: int, body: bytes) -> Any:
    """The ``result`` of a Kraken REST answer, or KrakenApiError / KrakenTransportError."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise KrakenTransportError(f"{path}: HTTP {status}, answer is not JSON") from None
    if not isinstance(data, dict):
        raise KrakenTransportError(f"{path}: HTTP {status}, answer is not a JSON object")
    errors = data.get("error") or []
    if errors:
        raise KrakenApiError(path, tuple(str(e) for e in errors))
    if status >= 400:
        raise KrakenTransportError(f"{path}: HTTP {status}")
    if "result" not in data:
        raise KrakenTransportError(f"{path}: answer has no result")
    return data["result"]


@dataclass(frozen=True)
class WsToken:
    token: Secret
    expires_s: int
    obtained_ns: int

    def age_s(self, now_ns: Optional[int] = None) -> float:
        return ((time.time_ns() if now_ns is None else now_ns) - self.obtained_ns) / 1e9


def parse_token(result: Any, now_ns: int) -> WsToken:
    if not isinstance(result, dict) or not isinstance(result.get("token"), str) or not result["token"]:
        raise KrakenTransportError(f"{TOKEN_PATH}: result has no token")
    expires = result.get("expires", 900)
    return WsToken(Secret(result["token"]), int(expires) if isinstance(expires, (int, float)) else 900, now_ns)


class KrakenRestClient:
    """Signed private REST calls, one at a time (see the module doc)."""

    def __init__(self, credentials: ApiCredentials, nonces: NonceSource, *, base_url: str = REST_BASE,
                 timeout_s: float = 10.0) -> None:
        self.credentials = credentials
        self.nonces = nonces
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._session: Any = None
        self.calls = 0

    def __repr__(self) -> str:
        return f"KrakenRestClient(base_url={self.base_url!r}, credentials={self.credentials!r})"

    async def _http(self) -> Any:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def private(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        import aiohttp

        async with self._lock:
            session = await self._http()
            req = prepare_private(self.credentials, path, params, self.nonces.next(), self.base_url)
            self.calls += 1
            try:
                async with session.post(req.url, data=req.body.encode(), headers=dict(req.headers)) as resp:
                    status, body = resp.status, await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise KrakenTransportError(f"{path}: {type(exc).__name__} talking to {self.base_url}") from None
        return parse_response(path, status, body)

    async def get_websockets_token(self) -> WsToken:
        return parse_token(await self.private(TOKEN_PATH), time.time_ns())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class TokenSource:
    """The WS session token: fetched per connection, refreshed on ``EAPI:Invalid token``."""

    def __init__(self, rest: Any, max_age_s: float = TOKEN_MAX_AGE_S) -> None:
        self.rest = rest
        self.max_age_s = max_age_s
        self._token: Optional[WsToken] = None
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenSource(fetches={self.fetches})"

    async def get(self, *, fresh: bool = False) -> str:
        tok = self._token
        if fresh or tok is None or tok.age_s() > self.max_age_s:
            tok = self._token = await self.rest.get_websockets_token()
            self.fetches += 1
        return tok.token.reveal()

    def invalidate(self) -> None:
        self._token = None
