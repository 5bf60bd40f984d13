"""Kraken API keys: read from the environment or from a key file only the owner can read.

Why so strict: an API key with trading permission is money. The key and its secret are held in
:class:`Secret` objects whose ``repr``/``str`` print ``<redacted>`` and which refuse to be pickled,
so a stray ``log.debug(creds)``, an exception message or a crash report cannot carry them; error
messages name the *source* (variable or file) and never the value.

Sources, first hit wins:

1. ``key_file`` argument (``--key-file``), else ``$MM_KRAKEN_KEY_FILE``: a TOML file with
   ``api_key = "..."`` and ``api_secret = "..."`` (the secret as Kraken shows it, base64);
2. ``$MM_KRAKEN_API_KEY`` and ``$MM_KRAKEN_API_SECRET``.

Key-file permissions are checked before the file is read:

- POSIX: a regular file owned by the current user with no group/other permission bits
  (``chmod 600 FILE``; 0400 is fine too). Anything else is refused with the ``chmod`` to run.
- Windows, where POSIX mode bits do not exist (``os.stat`` reports 0o666 for every writable file):
  the file's access-control list is read with the built-in ``icacls`` tool and the file is refused
  when any entry grants access to a broad group (``Everyone``, ``Users``, ``Authenticated Users``,
  ``Guests``, ``ANONYMOUS LOGON``), or when ``icacls`` cannot be run. The message gives the
  ``icacls`` command that restricts the file to its owner. This checks what the OS enforces; it
  does not (cannot) prove no administrator can read the file.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

ENV_KEY = "MM_KRAKEN_API_KEY"
ENV_SECRET = "MM_KRAKEN_API_SECRET"
ENV_KEY_FILE = "MM_KRAKEN_KEY_FILE"

BROAD_WINDOWS_PRINCIPALS = ("everyone", "builtin\\users", "\\users:", "authenticated users", "guests",
                            "anonymous logon")


class CredentialsError(ValueError):
    """Keys missing, unreadable, badly formed or too widely readable (never carries a key)."""


class Secret:
    """A string that never shows itself: ``repr``/``str``/``format`` print ``<redacted>``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        """The value itself: only for the one place that must put it on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    def __str__(self) -> str:
        return "<redacted>"

    def __format__(self, spec: str) -> str:
        return "<redacted>"

    def __reduce__(self):  # pickling would write the value out
        raise TypeError("a Secret cannot be pickled")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ApiCredentials:
    """One Kraken API key pair; ``source`` says where it came from (safe to print)."""

    key: Secret
    secret: Secret
    source: str

    def __post_init__(self) -> None:
        if not self.key:
            raise CredentialsError(f"the API key from {self.source} is empty")
        secret_bytes(self.secret, self.source)  # validate once, with a clear message

    def secret_bytes(self) -> bytes:
        return secret_bytes(self.secret, self.source)

    def __repr__(self) -> str:
        return f"ApiCredentials(key=<redacted>, secret=<redacted>, source={self.source!r})"

    __str__ = __repr__


def secret_bytes(secret: Secret, source: str) -> bytes:
    """The base64-decoded API secret (the HMAC key), or a CredentialsError naming the source."""
    try:
        raw = base64.b64decode(secret.reveal().strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsError(f"the API secret from {source} is not valid base64 "
                               "(copy it exactly as Kraken shows it)") from None
    if not raw:
        raise CredentialsError(f"the API secret from {source} is empty")
    return raw


def load_credentials(key_file: Optional[Path] = None, env: Optional[Mapping[str, str]] = None,
                     *, acl_runner: Optional[Callable[..., subprocess.CompletedProcess]] = None,
                     platform: Optional[str] = None) -> ApiCredentials:
    """Credentials from ``key_file``, ``$MM_KRAKEN_KEY_FILE`` or the environment (see module doc).

    Raises :class:`CredentialsError` with a one-line reason; never returns partial credentials.
    """
    env = os.environ if env is None else env
    if key_file is None and env.get(ENV_KEY_FILE):
        key_file = Path(env[ENV_KEY_FILE])
    if key_file is not None:
        return _from_file(Path(key_file), acl_runner=acl_runner, platform=platform)
    key, secret = env.get(ENV_KEY), env.get(ENV_SECRET)
    if key and secret:
        return ApiCredentials(Secret(key.strip()), Secret(secret.strip()), f"${ENV_KEY}/${ENV_SECRET}")
    if key or secret:
        missing = ENV_SECRET if key else ENV_KEY
        raise CredentialsError(f"${missing} is not set (set both {ENV_KEY} and {ENV_SECRET}, "
                               f"or use a key file)")
    raise CredentialsError(f"no Kraken API key: set {ENV_KEY} and {ENV_SECRET}, or give a key file "
                           f"(--key-file or ${ENV_KEY_FILE}) holding api_key and api_secret, mode 0600")


def _from_file(path: Path, *, acl_runner, platform: Optional[str]) -> ApiCredentials:
    check_key_file(path, acl_runner=acl_runner, platform=platform)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialsError(f"cannot read key file {path}: {exc.strerror or type(exc).__name__}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        # the parser's message may quote the offending text, which may be the secret: say less
        raise CredentialsError(f"key file {path} is not valid TOML (expected api_key = \"...\" and "
                               f"api_secret = \"...\")") from None
    key, secret = data.get("api_key"), data.get("api_secret")
    if not isinstance(key, str) or not isinstance(secret, str):
        raise CredentialsError(f"key file {path} must hold string values api_key and api_secret")
    return ApiCredentials(Secret(key.strip()), Secret(secret.strip()), f"key file {path}")


def check_key_file(path: Path, *, acl_runner=None, platform: Optional[str] = None) -> None:
    """Refuse a key file others can read (POSIX mode bits; Windows ACL via icacls)."""
    platform = sys.platform if platform is None else platform
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CredentialsError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read key file {path}: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CredentialsError(f"key file {path} is not a regular file")
    if platform.startswith("win"):
        problem = windows_acl_problem(path, runner=acl_runner)
        if problem:
            raise CredentialsError(problem)
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise CredentialsError(f"key file {path} is readable by others (mode {mode:04o}); "
                               f"run: chmod 600 {path}")
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid != getuid():
        raise CredentialsError(f"key file {path} belongs to another user (uid {st.st_uid}); "
                               f"it must be yours and mode 0600")


def windows_acl_problem(path: Path, runner=None) -> Optional[str]:
    """Why the Windows ACL of ``path`` is too open (or cannot be checked), else None."""
    runner = subprocess.run if runner is None else runner
    fix = (f'icacls "{path}" /inheritance:r /grant:r "%USERNAME%:R" (then check with: icacls "{path}")')
    try:
        proc = runner(["icacls", str(path)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot check who may read key file {path} (icacls failed: {type(exc).__name__}); fix: {fix}"
    if proc.returncode != 0:
        return f"cannot check who may read key file {path} (icacls exit {proc.returncode}); fix: {fix}"
    for line in proc.stdout.splitlines():
        low = line.lower()
        if any(p in low for p in BROAD_WINDOWS_PRINCIPALS):
            who = line.strip().removeprefix(str(path)).strip()
            return f"key file {path} is readable by a broad group ({who}); restrict it: {fix}"
    return None
