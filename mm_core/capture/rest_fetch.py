"""One HTTP GET for an adapter's REST snapshot, run on a worker thread (never on the receive loop).

Venues without a book channel that starts with a snapshot (diff feeds) seed and verify their books
from a REST endpoint. The collector runs this on a thread (``asyncio.to_thread``) and turns the
answer into a frame (:func:`mm_core.adapters.base.rest_frame`) -- parsed there too, so the loop
only routes it. Standard library only: one request every few seconds needs no client library.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from mm_core.adapters.base import rest_frame

USER_AGENT = "mm_core-collector"


def fetch_frame(url: str, timeout_s: float = 10.0) -> tuple[str, int]:
    """GET ``url``; return (the answer as a feed frame, the time it had fully arrived, ns).

    Never raises: a failed request becomes a frame with status 0 (or the HTTP status) and the error
    text as its body, so the adapter that asked learns of it and can ask again.
    """
    t_sent = time.time_ns()
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (the config's URL)
            body = resp.read()
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        body, status = f"HTTP {exc.code}: {exc.reason}".encode(), int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        body, status = f"request failed: {getattr(exc, 'reason', exc)}".encode(), 0
    t_recv = time.time_ns()
    return rest_frame(url, t_sent, status, body), t_recv
