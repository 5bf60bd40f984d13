"""Value types for command-line flags: nonsense is rejected by the parser with a one-line error.

``argparse`` turns a ``ValueError``/``ArgumentTypeError`` raised here into
``mm CMD: error: argument --flag: ...`` and exit code 2, before any work or any file is made.
"""

from __future__ import annotations

import argparse
import math
from urllib.parse import urlsplit


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (durations, periods: 0 would mean 'forever' or 'never' by accident)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def tcp_port(text: str) -> int:
    """0..65535 (0 = let the OS pick a free port)."""
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0..65535, got {text}")
    return value


def websocket_url(text: str) -> str:
    """``ws://`` or ``wss://`` with a host; says what is wrong with anything else."""
    parts = urlsplit(text)
    if parts.scheme not in ("ws", "wss"):
        hint = f"; did you mean ws{text[4:]}" if parts.scheme in ("http", "https") else ""
        if not parts.scheme or not parts.netloc:
            hint = f"; did you mean wss://{text}" if "://" not in text else hint
        raise argparse.ArgumentTypeError(f"{text!r} is not a WebSocket URL (ws://HOST[:PORT]/PATH or wss://...){hint}")
    try:
        port = parts.port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    if not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} has no host")
    del port
    return text


def add_data_path(p: argparse.ArgumentParser, help: str) -> None:
    """The data path as a positional ``FILE`` (as every command takes it), ``--file``/``-f`` kept for scripts.

    The command's ``run`` calls :func:`data_path` to get the one path given.
    """
    p.add_argument("file_positional", nargs="?", metavar="FILE", help=help)
    p.add_argument("--file", "-f", dest="file", default=None, help="the same as FILE (kept for existing scripts)")


def data_path(args: argparse.Namespace, command: str) -> str:
    """The path given positionally or with ``--file``; ``ValueError`` (one line) when none or two differ."""
    pos, opt = getattr(args, "file_positional", None), getattr(args, "file", None)
    if pos and opt and pos != opt:
        raise ValueError(f"two data paths given ({pos} and --file {opt}): give one")
    path = pos or opt
    if not path:
        raise ValueError(f"no data path: mm {command} FILE (a sample CSV, Parquet file or run directory)")
    return path
