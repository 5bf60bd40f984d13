"""Client order ids: deterministic, short enough for Kraken, unique across restarts.

An id is ``<prefix><epoch><n>``: ``prefix`` names the bot (1-4 lower-case letters/digits), ``epoch``
is a 4-character base-36 counter the order manager raises and *fsyncs* in its journal before the
first order of a process run, and ``n`` counts orders within the run (base 36). So ids never
repeat -- not after a crash, not after a restart -- without a clock or randomness, and the same
journal replays to the same ids. Kraken allows free-text ``cl_ord_id`` up to 18 characters (or a
UUID): 4 + 4 + 10 base-36 digits (3.6e15 orders per run) fit.

Because ids are ours by construction, reconciliation can tell "an order we placed but never heard
back about" (``is_ours``) from an order someone else placed on the account.
"""

from __future__ import annotations

import re

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
EPOCH_WIDTH = 4
MAX_EPOCH = 36**EPOCH_WIDTH - 1
MAX_LEN = 18
_PREFIX = re.compile(r"^[a-z0-9]{1,4}$")


def base36(n: int) -> str:
    if n < 0:
        raise ValueError("base36 of a negative number")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if n == 0:
            return out


class ClOrdIds:
    """The id factory of one process run (``epoch``)."""

    def __init__(self, prefix: str, epoch: int, start: int = 0) -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(f"cl_ord_id prefix {prefix!r} must be 1-4 lower-case letters or digits")
        if not 0 <= epoch <= MAX_EPOCH:
            raise ValueError(f"epoch {epoch} out of range 0..{MAX_EPOCH}")
        self.prefix = prefix
        self.epoch = epoch
        self._head = prefix + base36(epoch).rjust(EPOCH_WIDTH, "0")
        self.n = start

    def next(self) -> str:
        self.n += 1
        cid = self._head + base36(self.n)
        if len(cid) > MAX_LEN:
            raise OverflowError("cl_ord_id counter exhausted for this run; restart to open a new epoch")
        return cid

    def is_ours(self, cl_ord_id: str | None) -> bool:
        """True for any id this prefix could have made (any epoch)."""
        if not cl_ord_id or not cl_ord_id.startswith(self.prefix):
            return False
        rest = cl_ord_id[len(self.prefix):]
        return len(rest) > EPOCH_WIDTH and all(c in _DIGITS for c in rest)
