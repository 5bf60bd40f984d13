"""Kraken REST request signing and nonces (see ../shared/kraken-protocol.md section 3).

``API-Sign = base64( HMAC-SHA512( key = base64-decode(secret),
                                  msg = uri_path || SHA256( nonce_ascii || url-encoded body ) ) )``

tested on Kraken's documented vector and on the second one in Kraken's own SDK.

Nonces: Kraken accepts a private request only when its nonce is larger than every nonce that key
used before -- across processes and restarts. :class:`NonceSource` hands out
``max(last + 1, now)`` in the chosen unit (ms by default, or µs), so a nonce is never behind the
wall clock and never repeats, even when the clock steps back or many requests land in one tick.
The high-water mark survives restarts in a small file, written crash-safe (temp file, fsync,
atomic rename): the file holds a *reservation* a little ahead of what was handed out, so most
calls do not touch the disk and a kill -9 can only make the next process start above every nonce
the dead one used. The unit is stored with the mark: switching a key from µs to ms nonces would
make every request fail for decades, so that is refused with a clear message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Optional
from urllib.parse import urlencode

NONCE_UNITS: dict[str, int] = {"ms": 1_000_000, "us": 1_000}  # ns per unit
RESERVE_S = 1.0  # the persisted mark runs this far ahead of the wall clock


def api_sign(uri_path: str, nonce: int | str, body: str, secret: bytes) -> str:
    """Kraken's ``API-Sign`` header value for one private REST request."""
    sha = hashlib.sha256(str(nonce).encode() + body.encode()).digest()
    mac = hmac.new(secret, uri_path.encode() + sha, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def encode_body(params: Mapping[str, object]) -> str:
    """The url-encoded POST body, keys in the given order, booleans as Kraken spells them."""
    items = []
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        items.append((k, v))
    return urlencode(items)


class NonceError(RuntimeError):
    pass


class NonceSource:
    """Strictly increasing nonces, never behind the wall clock, persisted across restarts.

    ``path=None`` keeps the mark in memory only (tests, throw-away keys). Thread-safe.
    """

    def __init__(self, path: Optional[Path] = None, *, unit: str = "ms",
                 clock_ns: Callable[[], int] = time.time_ns, reserve_s: float = RESERVE_S) -> None:
        if unit not in NONCE_UNITS:
            raise ValueError(f"nonce unit must be one of {', '.join(NONCE_UNITS)}, not {unit!r}")
        self.unit = unit
        self._ns_per_unit = NONCE_UNITS[unit]
        self._clock = clock_ns
        self._reserve = max(1, int(reserve_s * 1e9 / self._ns_per_unit))
        self._path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._last = 0
        self._reserved = 0
        self.writes = 0
        if self._path is not None:
            self._last = self._reserved = self._load()

    def _load(self) -> int:
        assert self._path is not None
        try:
            text = self._path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            raise NonceError(f"cannot read nonce file {self._path}: {exc}") from None
        value, _, unit = text.partition(" ")
        unit = unit.strip() or "ms"
        if not value.isdigit() or unit not in NONCE_UNITS:
            raise NonceError(f"nonce file {self._path} is damaged ({text[:40]!r}); it must hold "
                             f"'<integer> ms|us'. Delete it only if this key has never been used "
                             f"with larger nonces.")
        mark = int(value)
        if unit == self.unit:
            return mark
        if unit == "ms" and self.unit == "us":
            return mark * 1000
        raise NonceError(f"nonce file {self._path} records microsecond nonces for this key; Kraken "
                         f"rejects any nonce not larger than the last one, so millisecond nonces "
                         f"would fail. Keep the nonce unit 'us' for this key.")

    def _persist(self, mark: int) -> None:
        assert self._path is not None
        tmp = self._path.with_name(self._path.name + ".tmp")
        data = f"{mark} {self.unit}\n".encode("ascii")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)
        _fsync_dir(self._path.parent)
        self.writes += 1

    def next(self) -> int:
        """The next nonce: larger than every earlier one (this and previous processes)."""
        with self._lock:
            now = self._clock() // self._ns_per_unit
            nonce = max(self._last + 1, now)
            if self._path is not None and nonce > self._reserved:
                mark = nonce + self._reserve
                self._persist(mark)  # before the nonce leaves: a crash can only skip ahead
                self._reserved = mark
            self._last = nonce
            return nonce

    @property
    def last(self) -> int:
        return self._last


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); Windows has no directory handles to fsync."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
