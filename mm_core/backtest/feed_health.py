"""What the strategy knows about its feed's health: when the data was last confirmed current, when it
is invalid, the market status -- and the faults a stress scenario injects.

Why the engine needs more than the rows: "the book is older than X ms" is not "no row for X ms".
Kraken sends a heartbeat after ~1 s without other messages on the connection, so on a live, quiet
feed a client knows its book is current although nothing changed. The **confirmation series**
(``conf_local``, ``conf_exch``) holds every message and every heartbeat a live feed would send,
as (local arrival time, exchange time it confirms); the data age at local time ``t`` is
``t - conf_exch[k]`` for the last confirmation ``k`` that has arrived. A heartbeat is sent ``hb``
after the last message if nothing else came (then every ``hb``), and arrives with the feed lag of
that last message (rows' own arrival times are never changed by heartbeats).

Faults (offsets in seconds from the data's first exchange timestamp; :class:`FeedFaults`):

- **stall** ``(start, duration)``: the connection stays up but nothing arrives -- rows created in the
  window arrive in a burst at its end, no heartbeats in the window;
- **disconnect** ``(start, duration)``: as a stall, and the data is invalid from the start (the
  socket closed) until the book is rebuilt at the end (the snapshot arrives); each one is a
  ``disconnect`` fault for the risk controls (repeated disconnects are a kill switch);
- **checksum fault** ``(at, resync_ms)``: the book failed its CRC: invalid until the resync
  ``resync_ms`` later; a ``checksum`` fault for the risk controls;
- **maintenance** ``(start, duration)``: market status ``maintenance`` (no new orders, no matching,
  no market data), then ``post_only`` for ``post_only_s``, then ``online``;
- **manual kill** at ``kill_at`` (and ``resume_at``): the kill file the runner watches, scheduled.

Latency spikes and volatility shocks are the other stresses (:class:`mm_core.backtest.latency.Stressed`,
:func:`mm_core.backtest.stress.vol_shock`); they change the rows, not the feed status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mm_core.backtest.engine_core import ST_FAULT, ST_MARKET, ST_VALID
from mm_core.backtest.event_arrays import CLEAR, DEPTH
from mm_core.strategy.pipeline import _risk as _risk_module
from mm_core.strategy.view import MKT_MAINTENANCE, MKT_ONLINE, MKT_POST_ONLY

_S = 1_000_000_000
_MS = 1_000_000


@dataclass(frozen=True)
class FeedFaults:
    """Injected feed faults (see the module docstring); empty = a healthy feed."""

    stalls: Sequence[tuple[float, float]] = ()
    disconnects: Sequence[tuple[float, float]] = ()
    checksum_faults: Sequence[tuple[float, float]] = ()
    maintenance: Sequence[tuple[float, float]] = ()
    post_only_s: float = 10.0
    kill_at: Sequence[float] = ()
    resume_at: Sequence[float] = ()
    heartbeat_ms: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("stalls", "disconnects", "maintenance", "checksum_faults"):
            for item in getattr(self, name):
                if len(item) != 2 or item[0] < 0 or item[1] <= 0:
                    raise ValueError(f"{name}: expected (start_s >= 0, duration > 0) pairs, got {item!r}")
        if self.heartbeat_ms <= 0:
            raise ValueError("heartbeat_ms must be > 0")

    @property
    def any(self) -> bool:
        return bool(self.stalls or self.disconnects or self.checksum_faults or self.maintenance
                    or self.kill_at or self.resume_at)

    def describe(self) -> dict[str, object]:
        return {k: [list(x) if isinstance(x, tuple) else x for x in getattr(self, k)]
                for k in ("stalls", "disconnects", "checksum_faults", "maintenance", "kill_at", "resume_at")
                if getattr(self, k)}


@dataclass(frozen=True)
class FeedTimeline:
    """Everything the engine reads about the feed (arrays in the layouts it expects)."""

    local_ts: np.ndarray  # rows' arrival times after the faults
    conf_local: np.ndarray  # int64, non-decreasing
    conf_exch: np.ndarray  # int64
    st_ts: np.ndarray  # int64 local times of feed-status events, sorted
    st_kind: np.ndarray  # int64 ST_*
    st_a: np.ndarray  # int64
    st_v: np.ndarray  # float64
    bm_local: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # book messages' arrival
    bm_age_ms: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))  # and feed age (ms)
    invalid: tuple[tuple[int, int], ...] = field(default=())  # (start, end) local ns the data is invalid


def _window(origin: int, start_s: float, dur_s: float) -> tuple[int, int]:
    a = origin + int(round(start_s * _S))
    return a, a + int(round(dur_s * _S))


def feed_timeline(exch_ts: np.ndarray, msg: np.ndarray, local_ts: np.ndarray, kind: np.ndarray,
                  faults: FeedFaults = FeedFaults()) -> FeedTimeline:
    """The confirmation series and feed-status events for rows arriving at ``local_ts``."""
    n = exch_ts.shape[0]
    local = np.asarray(local_ts, np.int64).copy()
    if n == 0:
        e = np.empty(0, np.int64)
        return FeedTimeline(local, e, e, e, e, e, np.empty(0, np.float64))
    origin = int(exch_ts[0])
    silent: list[tuple[int, int]] = []  # exchange-time windows without delivery
    events: list[tuple[int, int, int, float]] = []  # (t, kind, a, v)
    invalid: list[tuple[int, int]] = []
    for start, dur in faults.stalls:
        silent.append(_window(origin, start, dur))
    for start, dur in faults.disconnects:
        a, b = _window(origin, start, dur)
        silent.append((a, b))
        events += [(a, ST_VALID, 0, 0.0), (a, ST_FAULT, _risk_module.F_DISCONNECT, 1.0), (b, ST_VALID, 1, 0.0)]
        invalid.append((a, b))
    for at, resync_ms in faults.checksum_faults:
        a = origin + int(round(at * _S))
        b = a + int(round(resync_ms * _MS))
        events += [(a, ST_VALID, 0, 0.0), (a, ST_FAULT, _risk_module.F_CHECKSUM, 1.0), (b, ST_VALID, 1, 0.0)]
        invalid.append((a, b))
    for start, dur in faults.maintenance:
        a, b = _window(origin, start, dur)
        silent.append((a, b))
        events += [(a, ST_MARKET, MKT_MAINTENANCE, 0.0), (b, ST_MARKET, MKT_POST_ONLY, 0.0),
                   (b + int(round(faults.post_only_s * _S)), ST_MARKET, MKT_ONLINE, 0.0)]
    for at in faults.kill_at:
        events.append((origin + int(round(at * _S)), ST_FAULT, _risk_module.F_MANUAL_KILL, 1.0))
    for at in faults.resume_at:
        events.append((origin + int(round(at * _S)), ST_FAULT, _risk_module.F_MANUAL_RESUME, 1.0))
    # rows created in a silent window arrive together at its end (in order, after their own delay)
    for a, b in silent:
        inside = (exch_ts >= a) & (exch_ts < b)
        local[inside] = np.maximum(local[inside], b)
    local = np.maximum.accumulate(local)
    # confirmations: the first row of each message, plus heartbeats in quiet gaps outside silences
    starts = np.concatenate([[True], msg[1:] != msg[:-1]])
    m_exch = exch_ts[starts].astype(np.int64)
    m_local = local[starts]
    m_lag = m_local - m_exch
    hb = int(round(faults.heartbeat_ms * _MS))
    gaps = np.diff(m_exch)
    k = np.where(gaps > hb, (gaps - 1) // hb, 0)
    total = int(k.sum())
    if total:
        idx = np.repeat(np.arange(gaps.shape[0]), k)
        first = np.cumsum(k) - k
        step = np.arange(total) - np.repeat(first, k) + 1
        h_exch = m_exch[idx] + step * hb
        h_local = h_exch + m_lag[idx]
        keep = np.ones(total, bool)
        for a, b in silent:
            keep &= ~((h_exch >= a) & (h_exch < b))
        c_exch = np.concatenate([m_exch, h_exch[keep]])
        c_local = np.concatenate([m_local, h_local[keep]])
        order = np.argsort(c_exch, kind="stable")
        c_exch, c_local = c_exch[order], np.maximum.accumulate(c_local[order])
    else:
        c_exch, c_local = m_exch, m_local
    events.sort(key=lambda e: (e[0], e[1]))
    st = np.array([e[0] for e in events], np.int64)
    # one feed-age sample per book message (the latency regime's input), as a live client measures it
    book = starts & ((kind == DEPTH) | (kind == CLEAR))
    bm_local = local[book]
    bm_age = (bm_local - exch_ts[book]) * 1e-6
    return FeedTimeline(local, c_local.astype(np.int64), c_exch.astype(np.int64), st,
                        np.array([e[1] for e in events], np.int64), np.array([e[2] for e in events], np.int64),
                        np.array([e[3] for e in events], np.float64), bm_local.astype(np.int64),
                        bm_age.astype(np.float64), tuple(sorted(invalid)))


def stale_intervals(tl: FeedTimeline, max_staleness_ms: float, start: int, end: int) -> list[tuple[int, int]]:
    """Local-time intervals in ``[start, end]`` when the data was older than ``max_staleness_ms`` or
    invalid -- recomputed from the timeline, independently of the engine's risk step."""
    x = int(round(max_staleness_ms * _MS))
    out: list[tuple[int, int]] = []
    cl, ce = tl.conf_local, tl.conf_exch
    # age > x between confirmations k and k+1 from ce[k] + x until cl[k+1]
    if cl.shape[0]:
        nxt = np.append(cl[1:], end)
        s = ce + x
        mask = s < nxt
        for a, b in zip(s[mask].tolist(), nxt[mask].tolist()):
            a, b = max(a, start), min(b, end)
            if a < b:
                out.append((a, b))
    out += [(max(a, start), min(b, end)) for a, b in tl.invalid if min(b, end) > max(a, start)]
    out.sort()
    merged: list[tuple[int, int]] = []
    for a, b in out:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
