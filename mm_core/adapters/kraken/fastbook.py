"""Compiled (numba) Kraken v2 book kernel: apply levels, truncate, CRC32 checksum -- one call.

Why: in pure CPython the book update + checksum of a typical one-level message costs ~2.5 µs
(bisect, dict and list updates, token strings, ``"".join``, ``zlib.crc32`` over ~150 bytes --
this machine's zlib CRC is byte-wise, ~1.7 ns/byte). Here one jitted call does all of it in
~0.4 µs, most of which is numba's argument unboxing; ``bench/bench_book.py`` measures both.

State: one ``float64`` array per symbol (``S``; ``V = S.view(int64)`` shares its memory), so a
call unboxes a single array. Layout::

    header (H slots)  depth, capacity, level counts, unknown deletes, scale factors, last top,
                      lowest changed index per side
    side 0 (asks)     capacity x [price (f), qty (f), token CRC (i), token length (i),
    side 1 (bids)                 CRC register after this level (i)]

Levels are kept sorted best first (asks ascending, bids descending) and keyed by the float price
exactly like :class:`mm_core.book.L2Book`. Each level caches the raw CRC register of its checksum
token -- the decimal digits of ``round(price * 10**pp)`` then of ``round(qty * 10**qp)``, the same
integers :func:`.checksum.token_from_number` renders -- and the token length. A side's checksum
is then a fold over its best 10 levels: CRC is linear, so ``crc(A + B)`` is "``crc(A)`` shifted by
``len(B)`` zero bytes, XOR the raw CRC of ``B``"; the shift is four look-ups in tables made once
(:data:`_ZSHIFT`). The register after every level is kept too, so the fold restarts at the first
level that changed (the ask side's end feeds the bid side: when it moves, all bids are refolded). The result equals ``zlib.crc32`` of the joined tokens (tested against it on every
message of the real recordings and on hypothesis-generated books).

Exactness: ``round(x * 10**p)`` is the exact token only while ``x * 10**p < 1e15``
(:mod:`.checksum`). A call that meets a level outside that range (or not finite) changes nothing
and returns :data:`OUT_OF_RANGE`; the adapter then moves that symbol to the pure-Python book (which
quantizes such numbers with :mod:`decimal`) until its next snapshot.

If numba is missing (or ``MM_CORE_NO_NUMBA=1``), :data:`AVAILABLE` is False and the adapter uses
the pure-Python path, which stays the reference implementation.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

try:  # pragma: no cover - depends on the environment
    if os.environ.get("MM_CORE_NO_NUMBA"):
        raise ImportError("disabled by MM_CORE_NO_NUMBA")
    from numba import njit

    AVAILABLE = True
except ImportError:  # pragma: no cover
    AVAILABLE = False

    def njit(*args: Any, **kwargs: Any) -> Any:  # the kernels then run (slowly) as Python
        if args and callable(args[0]):
            return args[0]
        return lambda f: f


CHECKSUM_LEVELS = 10
OUT_OF_RANGE = -1
"""Returned by a kernel that met a level it cannot tokenize exactly; nothing was changed."""
TOP_CHANGED = 1 << 32
"""Bit set in a final call's result when the top of book differs from the last one reported."""
EXACT_LIMIT = 1e15

# header slots (V = int view, S = float view)
_DEPTH = 0  # V
_CAP = 1  # V
_COUNT = 2  # V, +side
_UNKNOWN_DELETES = 4  # V
_HAS_TOP = 5  # V: a top was reported since the last reset
_PPOW = 6  # S
_QPOW = 7  # S
TOP = 8  # S[8:12]: last reported top (bid, bid_qty, ask, ask_qty)
_TOUCHED = 12  # V: a change landed on index 0 since the last final call
_DIRTY = 13  # V, +side: lowest index changed since the last final call
_BID_START = 15  # V: CRC register the bid fold started from last time (-1: none yet)
_SCRATCH = 16  # V[16:40]: digits
HEADER = 48
_CLEAN = 1 << 40  # "no change" for _DIRTY
_K = 5  # slots per level: price, qty, token CRC, token length, CRC register after this level
_MAX_TOKEN = 32  # digits of two integers < 1e15


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int64)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[n] = c
    return table


def _zero_shift_tables(table: np.ndarray) -> np.ndarray:
    """``Z[n, j, b]`` = the raw CRC register ``b << 8j`` after ``n`` zero bytes."""
    start = np.array([b << (8 * j) for j in range(4) for b in range(256)], dtype=np.int64)
    out = np.zeros((_MAX_TOKEN + 1, 4, 256), dtype=np.int64)
    c = start.copy()
    out[0] = c.reshape(4, 256)
    for n in range(1, _MAX_TOKEN + 1):
        c = table[c & 0xFF] ^ (c >> 8)
        out[n] = c.reshape(4, 256)
    return out


_TABLE = _crc_table()
_ZSHIFT = _zero_shift_tables(_TABLE)


def new_state(depth: int, capacity: int, price_precision: int, qty_precision: int) -> np.ndarray:
    """An empty book of ``depth`` levels per side with room for ``capacity`` before truncation."""
    capacity = max(capacity, depth + 1)
    s = np.zeros(HEADER + 2 * capacity * _K, dtype=np.float64)
    v = s.view(np.int64)
    v[_DEPTH] = depth
    v[_CAP] = capacity
    s[_PPOW] = float(10**price_precision)
    s[_QPOW] = float(10**qty_precision)
    v[_BID_START] = -1
    return s


def free_room(s: np.ndarray) -> int:
    """Levels a message may still add to the fuller side before the capacity is reached."""
    v = s.view(np.int64)
    return int(v[_CAP] - max(v[_COUNT], v[_COUNT + 1]))


def grown(s: np.ndarray, extra: int) -> np.ndarray:
    """A copy of ``s`` with room for ``extra`` more levels per side (levels and header kept)."""
    v = s.view(np.int64)
    cap = int(v[_CAP])
    new_cap = cap + max(extra, cap)
    out = np.zeros(HEADER + 2 * new_cap * _K, dtype=np.float64)
    out[:HEADER] = s[:HEADER]
    out.view(np.int64)[_CAP] = new_cap
    for side in (0, 1):
        n = int(v[_COUNT + side]) * _K
        out[HEADER + side * new_cap * _K:HEADER + side * new_cap * _K + n] = \
            s[HEADER + side * cap * _K:HEADER + side * cap * _K + n]
    return out


def levels(s: np.ndarray, side: int) -> list[tuple[float, float]]:
    """Best-first ``(price, qty)`` of a side (0 = asks, 1 = bids)."""
    v = s.view(np.int64)
    cap = int(v[_CAP])
    n = int(v[_COUNT + side])
    block = s[HEADER + side * cap * _K:HEADER + side * cap * _K + n * _K].reshape(n, _K)
    return [(p, q) for p, q in block[:, :2].tolist()]


def unknown_deletes(s: np.ndarray) -> int:
    return int(s.view(np.int64)[_UNKNOWN_DELETES])


def top(s: np.ndarray) -> tuple[float, float, float, float]:
    """The top last reported by a final call (valid after a result with :data:`TOP_CHANGED`)."""
    b, bq, a, aq = s[TOP:TOP + 4].tolist()
    return (b, bq, a, aq)


# ---------------------------------------------------------------------------- kernels


@njit(cache=True)
def _in_range(s: np.ndarray, p: float, q: float) -> bool:
    x = p * s[_PPOW]
    y = q * s[_QPOW]
    return 0.0 <= x < EXACT_LIMIT and 0.0 <= y < EXACT_LIMIT


@njit(cache=True)
def _digits_crc(v: np.ndarray, x: int, c: int) -> tuple[int, int]:
    """Feed the decimal digits of ``x >= 0`` into the raw CRC register ``c``."""
    m = 0
    if x == 0:
        v[_SCRATCH] = 48
        m = 1
    while x > 0:
        v[_SCRATCH + m] = 48 + x % 10
        x //= 10
        m += 1
    for j in range(m - 1, -1, -1):
        c = _TABLE[(c ^ v[_SCRATCH + j]) & 0xFF] ^ (c >> 8)
    return c, m


@njit(cache=True)
def _apply(s: np.ndarray, v: np.ndarray, side: int, p: float, q: float) -> int:
    """Set (q > 0) or delete (q == 0) the level at price ``p``; index it landed on, -1 if none."""
    cap = v[_CAP]
    base = HEADER + side * cap * _K
    n = v[_COUNT + side]
    lo = 0
    hi = n
    if side == 0:
        while lo < hi:
            mid = (lo + hi) >> 1
            if s[base + mid * _K] < p:
                lo = mid + 1
            else:
                hi = mid
    else:
        while lo < hi:
            mid = (lo + hi) >> 1
            if s[base + mid * _K] > p:
                lo = mid + 1
            else:
                hi = mid
    at = base + lo * _K
    found = lo < n and s[at] == p
    if lo < v[_DIRTY + side] and (found or q != 0.0):
        v[_DIRTY + side] = lo
    if q != 0.0:
        c, m1 = _digits_crc(v, np.int64(np.rint(p * s[_PPOW])), 0)
        c, m2 = _digits_crc(v, np.int64(np.rint(q * s[_QPOW])), c)
        if not found:
            for k in range(base + n * _K - 1, at - 1, -1):  # shift the worse levels down one
                s[k + _K] = s[k]
            v[_COUNT + side] = n + 1
            s[at] = p
        s[at + 1] = q
        v[at + 2] = c
        v[at + 3] = m1 + m2
        return lo
    if found:
        for k in range(at, base + (n - 1) * _K):
            s[k] = s[k + _K]
        v[_COUNT + side] = n - 1
        return lo
    v[_UNKNOWN_DELETES] += 1
    return -1


@njit(cache=True)
def _finish(s: np.ndarray, v: np.ndarray) -> int:
    """Truncate both sides to the depth, report a top change, return the CRC32 of the top 10."""
    depth = v[_DEPTH]
    cap = v[_CAP]
    if v[_COUNT] > depth:
        v[_COUNT] = depth
    if v[_COUNT + 1] > depth:
        v[_COUNT + 1] = depth
    result = 0
    na = v[_COUNT]
    nb = v[_COUNT + 1]
    if v[_TOUCHED] != 0:
        v[_TOUCHED] = 0
        if na > 0 and nb > 0:
            bb = HEADER + cap * _K
            ab = HEADER
            if (v[_HAS_TOP] == 0 or s[TOP] != s[bb] or s[TOP + 1] != s[bb + 1]
                    or s[TOP + 2] != s[ab] or s[TOP + 3] != s[ab + 1]):
                v[_HAS_TOP] = 1
                s[TOP] = s[bb]
                s[TOP + 1] = s[bb + 1]
                s[TOP + 2] = s[ab]
                s[TOP + 3] = s[ab + 1]
                result = TOP_CHANGED
    c = 0xFFFFFFFF
    for side in range(2):
        base = HEADER + side * cap * _K
        n = v[_COUNT + side]
        if n > CHECKSUM_LEVELS:
            n = CHECKSUM_LEVELS
        k0 = v[_DIRTY + side]
        v[_DIRTY + side] = _CLEAN
        if side == 1:
            if v[_BID_START] != c:
                v[_BID_START] = c
                k0 = 0
        if k0 > n:
            k0 = n
        if k0 > 0:
            c = v[base + (k0 - 1) * _K + 4]
        for k in range(k0, n):
            at = base + k * _K
            m = v[at + 3]
            c = (_ZSHIFT[m, 0, c & 0xFF] ^ _ZSHIFT[m, 1, (c >> 8) & 0xFF]
                 ^ _ZSHIFT[m, 2, (c >> 16) & 0xFF] ^ _ZSHIFT[m, 3, (c >> 24) & 0xFF] ^ v[at + 2])
            v[at + 4] = c
    return result | (c ^ 0xFFFFFFFF)


@njit(cache=True)
def _update1(s: np.ndarray, side: int, p: float, q: float) -> int:
    if not _in_range(s, p, q):
        return OUT_OF_RANGE
    v = s.view(np.int64)
    if _apply(s, v, side, p, q) == 0:
        v[_TOUCHED] = 1
    return _finish(s, v)


@njit(cache=True)
def update_ask(s: np.ndarray, p: float, q: float) -> int:
    """The common message: one ask level. Applies, truncates, checksums.

    Returns the CRC32 (low 32 bits) | :data:`TOP_CHANGED`, or :data:`OUT_OF_RANGE` (no change).
    The state must have room for one more level (always true after a final call: a book holds
    at most ``depth`` levels then, and the capacity is larger).
    """
    return _update1(s, 0, p, q)


@njit(cache=True)
def update_bid(s: np.ndarray, p: float, q: float) -> int:
    """One bid level; see :func:`update_ask`."""
    return _update1(s, 1, p, q)


@njit(cache=True)
def update3(s: np.ndarray, mode: int, n: int, p0: float, q0: float, p1: float, q1: float,
            p2: float, q2: float) -> int:
    """Up to three levels of one side (``mode & 1``); ``mode & 2``: last call of the message
    (truncate + checksum, else returns 0). All levels are range-checked before any is applied."""
    if not _in_range(s, p0, q0):
        return OUT_OF_RANGE
    if n > 1 and not _in_range(s, p1, q1):
        return OUT_OF_RANGE
    if n > 2 and not _in_range(s, p2, q2):
        return OUT_OF_RANGE
    v = s.view(np.int64)
    side = mode & 1
    if v[_COUNT + side] + n > v[_CAP]:
        return OUT_OF_RANGE  # the caller makes room first; never happens
    t = _apply(s, v, side, p0, q0) == 0
    if n > 1:
        t |= _apply(s, v, side, p1, q1) == 0
    if n > 2:
        t |= _apply(s, v, side, p2, q2) == 0
    if t:
        v[_TOUCHED] = 1
    if mode & 2:
        return _finish(s, v)
    return 0


@njit(cache=True)
def load(s: np.ndarray, side: int, prices: np.ndarray, qtys: np.ndarray) -> int:
    """Apply many levels of one side in order (a snapshot); range-checked first; no truncation."""
    n = prices.shape[0]
    for i in range(n):
        if not _in_range(s, prices[i], qtys[i]):
            return OUT_OF_RANGE
    v = s.view(np.int64)
    if v[_COUNT + side] + n > v[_CAP]:
        return OUT_OF_RANGE  # the caller sized the state for the message; never happens
    for i in range(n):
        if _apply(s, v, side, prices[i], qtys[i]) == 0:
            v[_TOUCHED] = 1
    return 0


@njit(cache=True)
def finish(s: np.ndarray, forget_top: int) -> int:
    """Final step on its own (after :func:`load`); ``forget_top`` reports any top as changed."""
    v = s.view(np.int64)
    if forget_top:
        v[_HAS_TOP] = 0
        v[_TOUCHED] = 1
    return _finish(s, v)


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel signature the adapter uses."""
    s = new_state(10, 16, 1, 8)
    load(s, 0, np.array([2.0]), np.array([1.0]))
    load(s, 1, np.array([1.0]), np.array([1.0]))
    finish(s, 1)
    update_ask(s, 2.5, 0.5)
    update_bid(s, 0.5, 0.5)
    update3(s, 3, 2, 1.5, 0.5, 1.25, 0.0, 0.0, 0.0)


def has_top(s: np.ndarray) -> bool:
    """True once a final call reported a top (both sides non-empty)."""
    return bool(s.view(np.int64)[_HAS_TOP])
