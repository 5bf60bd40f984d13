"""Latency models: when the strategy sees a market row, and how long its orders take each way.

Three lanes, as in hftbacktest and as users ask of nautilus (NT#1677, NT#2612):

- **feed**: a row created at exchange time ``t`` becomes visible to the strategy at ``local_ts``;
  sampled per *message* (rows of one message arrive together) and delivered in order
  (``local = max(previous local, t + delay)``: a TCP stream cannot reorder);
- **entry**: an order/cancel sent at local time ``t`` reaches the matching engine at ``t + entry``;
- **response**: an ack/fill produced at exchange time ``t`` reaches the strategy at ``t + response``.

Each model is a tiny class with one method per lane. Order lanes are given to the jitted engine as
an :class:`OrderLatencyTable`: either a step function of time (``ts`` non-empty: the latency in
force at ``t`` is the row with the last ``ts <= t``) or a sequence consumed one request at a time
(``ts`` empty: the k-th request takes ``entry[k % n]``). Measured capture ages are time series, so
they use the first form -- the backtest replays the latency the user actually had, spikes where
they were. Distributions use the second form, so every order draws its own delay.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np

_MS = 1_000_000


@dataclass(frozen=True)
class OrderLatencyTable:
    """Entry/response latencies in the form the engine reads (see module docstring)."""

    ts: np.ndarray  # int64; empty = sequence mode
    entry: np.ndarray  # int64 ns
    response: np.ndarray  # int64 ns

    def scaled(self, factor: float) -> "OrderLatencyTable":
        return OrderLatencyTable(self.ts, (self.entry * factor).astype(np.int64),
                                 (self.response * factor).astype(np.int64))


class LatencyModel(Protocol):
    """One latency model serves all three lanes."""

    def feed_delays(self, msg_ts: np.ndarray) -> np.ndarray:
        """Delay (ns) of each message created at ``msg_ts`` (non-decreasing)."""
        ...

    def order_table(self, start_ns: int, end_ns: int) -> OrderLatencyTable:
        """Entry/response latencies for orders sent between ``start_ns`` and ``end_ns``."""
        ...


@dataclass(frozen=True)
class ConstantLatency:
    """Fixed delays: the benchmark's and the known-answer tests' model."""

    feed_ms: float = 5.0
    entry_ms: float = 5.0
    response_ms: float = 5.0

    def feed_delays(self, msg_ts: np.ndarray) -> np.ndarray:
        return np.full(msg_ts.shape[0], int(round(self.feed_ms * _MS)), np.int64)

    def order_table(self, start_ns: int, end_ns: int) -> OrderLatencyTable:
        return OrderLatencyTable(np.empty(0, np.int64), np.array([int(round(self.entry_ms * _MS))], np.int64),
                                 np.array([int(round(self.response_ms * _MS))], np.int64))


@dataclass(frozen=True)
class LognormalLatency:
    """Lognormal delays with a median and shape per lane; seeded, so runs repeat exactly."""

    feed_median_ms: float = 8.0
    order_median_ms: float = 10.0
    sigma: float = 0.35
    seed: int = 0
    samples: int = 1 << 16  # order-lane samples, reused cyclically

    def feed_delays(self, msg_ts: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 1])
        return (self.feed_median_ms * _MS * np.exp(self.sigma * rng.standard_normal(msg_ts.shape[0]))).astype(np.int64)

    def order_table(self, start_ns: int, end_ns: int) -> OrderLatencyTable:
        rng = np.random.default_rng([self.seed, 2])
        e = self.order_median_ms * _MS * np.exp(self.sigma * rng.standard_normal(self.samples))
        r = self.order_median_ms * _MS * np.exp(self.sigma * rng.standard_normal(self.samples))
        return OrderLatencyTable(np.empty(0, np.int64), e.astype(np.int64), r.astype(np.int64))


@dataclass(frozen=True)
class CaptureLatency:
    """Measured feed ages from a capture CSV (``age_ms`` column), replayed in time order.

    A negative age (the capture's clock was behind the exchange's) is refused with its count and
    minimum: a delay cannot be negative, and replacing it by 0 would hide a skewed capture.

    The capture's timeline (offsets from its first row) is laid onto the backtest's from its start
    and repeated if the backtest is longer. Feed delay = the age in force at that offset; order
    entry and response each = ``order_factor`` x that age (one-way order latency is not in a feed
    capture; a factor of 1 assumes the order path is as slow as the feed path, which it is for a
    client on the same link).
    """

    offsets_ns: np.ndarray  # int64, from 0, non-decreasing
    ages_ns: np.ndarray  # int64
    order_factor: float = 1.0
    source: str = ""

    @classmethod
    def from_csv(cls, path: Path, *, order_factor: float = 1.0, symbol: Optional[str] = None) -> "CaptureLatency":
        """Read ``ts_capture`` and ``age_ms`` (the collector's CSV); rows sorted by capture time."""
        ts: list[int] = []
        ages: list[float] = []
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"ts_capture", "age_ms"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected the collector's CSV "
                                 "(exchange,symbol,ts_exchange,ts_capture,age_ms,bid,bid_qty,ask,ask_qty)")
            for line, row in enumerate(reader, start=2):
                if symbol is not None and row.get("symbol") not in (None, "", symbol):
                    continue
                try:
                    ts.append(int(row["ts_capture"]))
                    ages.append(float(row["age_ms"]))
                except (TypeError, ValueError):
                    raise ValueError(f"{path}:{line}: bad ts_capture/age_ms {row.get('ts_capture')!r}/"
                                     f"{row.get('age_ms')!r}") from None
        if not ts:
            raise ValueError(f"{path}: no latency rows")
        t = np.asarray(ts, np.int64)
        order = np.argsort(t, kind="stable")
        t = t[order]
        a = np.asarray(ages)[order]
        neg = a < 0
        if neg.any():  # a clock signal, not a latency: never silently replaced by 0
            k = int(neg.sum())
            raise ValueError(
                f"{path}: {k} of {a.size} ages ({100 * k / a.size:.2f} %) are negative, min {a.min():.3f} ms: "
                "the capture's local clock was behind the exchange's, so its ages are not latencies "
                "(`mm analyze`/`mm gate` report the clock offset); fix the clock (NTP) and capture again, "
                "or use a const:/lognormal: latency model")
        return cls(t - t[0], (a * _MS).astype(np.int64), order_factor, str(path))

    @property
    def span_ns(self) -> int:
        return int(self.offsets_ns[-1]) + 1

    def _at(self, offsets: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.offsets_ns, offsets % self.span_ns, side="right") - 1
        return self.ages_ns[np.maximum(idx, 0)]

    def feed_delays(self, msg_ts: np.ndarray) -> np.ndarray:
        if msg_ts.shape[0] == 0:
            return np.empty(0, np.int64)
        return self._at(msg_ts - msg_ts[0])

    def order_table(self, start_ns: int, end_ns: int) -> OrderLatencyTable:
        span = max(end_ns - start_ns, 1)
        reps = span // self.span_ns + 1
        ts = (np.arange(reps, dtype=np.int64)[:, None] * self.span_ns + self.offsets_ns[None, :]).ravel() + start_ns
        ages = np.tile(self.ages_ns, reps)
        keep = ts <= end_ns
        lat = (ages[keep] * self.order_factor).astype(np.int64)
        return OrderLatencyTable(ts[keep], lat, lat.copy())


@dataclass(frozen=True)
class SpellLatency:
    """The simulator's feed-latency model (:class:`mm_core.simexchange.latency.RegimeLatency`): a
    lognormal body (median ``median_ms``) with degraded (30-80 ms) and unsafe (> 80 ms) *spells* from
    a Markov chain over exchange time -- periods, like a congested route, so the latency regime has
    real transitions to make. Order entry/response: the lognormal body alone (``median_ms``)."""

    median_ms: float = 8.0
    seed: int = 0

    def feed_delays(self, msg_ts: np.ndarray) -> np.ndarray:
        from mm_core.simexchange.latency import LatencyConfig, RegimeLatency

        model = RegimeLatency(LatencyConfig(median_ms=self.median_ms), seed=(self.seed, 3))
        return np.fromiter((model.delay_ns(int(t)) for t in msg_ts), np.int64, msg_ts.shape[0])

    def order_table(self, start_ns: int, end_ns: int) -> OrderLatencyTable:
        return LognormalLatency(self.median_ms, self.median_ms, 0.35, self.seed).order_table(start_ns, end_ns)


@dataclass(frozen=True)
class Stressed:
    """Another model with every delay scaled by ``factor`` and spikes in given windows.

    ``spikes``: ``(start_offset_s, duration_s, extra_ms)`` from the data's start; inside a window
    every lane gets ``extra_ms`` more -- the maintainer's point in hftbacktest#256: latency spikes
    exactly when markets move, so a constant-latency backtest flatters the strategy.
    """

    base: LatencyModel
    factor: float = 1.0
    spikes: Sequence[tuple[float, float, float]] = ()

    def _extra(self, ts: np.ndarray, origin: int) -> np.ndarray:
        extra = np.zeros(ts.shape[0], np.int64)
        for start_s, dur_s, extra_ms in self.spikes:
            a = origin + int(start_s * 1e9)
            inside = (ts >= a) & (ts < a + int(dur_s * 1e9))
            extra[inside] += int(extra_ms * _MS)
        return extra

    def feed_delays(self, msg_ts: np.ndarray) -> np.ndarray:
        d = (self.base.feed_delays(msg_ts) * self.factor).astype(np.int64)
        if self.spikes and msg_ts.shape[0]:
            d += self._extra(msg_ts, int(msg_ts[0]))
        return d

    def order_table(self, start_ns: int, end_ns: int) -> OrderLatencyTable:
        t = self.base.order_table(start_ns, end_ns).scaled(self.factor)
        if not self.spikes:
            return t
        # spikes are time windows: express everything as a step function of time
        edges = [start_ns]
        for start_s, dur_s, _ in self.spikes:
            a = start_ns + int(start_s * 1e9)
            edges += [a, a + int(dur_s * 1e9)]
        if t.ts.shape[0]:
            ts = np.unique(np.concatenate([t.ts, np.asarray(edges, np.int64)]))
            idx = np.maximum(np.searchsorted(t.ts, ts, side="right") - 1, 0)
            entry, resp = t.entry[idx], t.response[idx]
        else:  # sequence mode: the median of the samples stands for the base latency
            ts = np.unique(np.asarray(edges, np.int64))
            entry = np.full(ts.shape[0], int(np.median(t.entry)), np.int64)
            resp = np.full(ts.shape[0], int(np.median(t.response)), np.int64)
        extra = self._extra(ts, start_ns)
        return OrderLatencyTable(ts, entry + extra, resp + extra)


@dataclass(frozen=True)
class MeasuredOrderLatency:
    """Order entry and response latencies measured request by request in a paper/live session
    (``order_latency.csv``, written by ``mm paper`` / ``mm live``: ``send_ns, entry_ns, response_ns``
    with entry = the exchange's ``time_in`` - send and response = receipt - ``time_out``), replayed
    as a step function of send time -- the latency each order actually had. ``mm reconcile-day``
    replays a session with it and ``--capture-ts`` (the feed lane: the recording's own receipt
    times); ``feed_ms`` is the feed lane's constant when the replay runs without ``--capture-ts``."""

    ts: np.ndarray
    entry: np.ndarray
    response: np.ndarray
    feed_ms: float = 5.0
    source: str = ""

    @classmethod
    def from_csv(cls, path: Path) -> "MeasuredOrderLatency":
        rows: list[tuple[int, int, int]] = []
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"send_ns", "entry_ns", "response_ns"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected the order latency log "
                                 "of a paper/live session (send_ns,entry_ns,response_ns,kind)")
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append((int(row["send_ns"]), int(row["entry_ns"]), int(row["response_ns"])))
                except (TypeError, ValueError):
                    raise ValueError(f"{path}:{line}: bad numbers {row!r}") from None
        if not rows:
            raise ValueError(f"{path}: no requests measured")
        a = np.asarray(sorted(rows), np.int64)
        return cls(a[:, 0], np.maximum(a[:, 1], 0), np.maximum(a[:, 2], 0), source=str(path))

    def feed_delays(self, msg_ts: np.ndarray) -> np.ndarray:
        return np.full(msg_ts.shape[0], int(round(self.feed_ms * _MS)), np.int64)

    def order_table(self, start_ns: int, end_ns: int) -> OrderLatencyTable:
        return OrderLatencyTable(self.ts.copy(), self.entry.copy(), self.response.copy())


def local_timestamps(exch_ts: np.ndarray, msg: np.ndarray, model: LatencyModel) -> np.ndarray:
    """Strategy-visible time of every row: one feed delay per message, delivered in order."""
    n = exch_ts.shape[0]
    if n == 0:
        return np.empty(0, np.int64)
    starts = np.concatenate([[True], msg[1:] != msg[:-1]])
    first = np.nonzero(starts)[0]
    delays = model.feed_delays(exch_ts[first])
    per_row = np.repeat(delays, np.diff(np.append(first, n)))
    return np.maximum.accumulate(exch_ts + per_row)


def capture_local_timestamps(exch_ts: np.ndarray, capture_ts: np.ndarray) -> np.ndarray:
    """Local time = our collector's receipt time (a real capture), kept in order and >= exch time."""
    loc = np.where(capture_ts > 0, np.maximum(capture_ts, exch_ts), exch_ts)
    return np.maximum.accumulate(loc)


def model_from_spec(spec: str, *, seed: int = 0) -> LatencyModel:
    """Parse the CLI's ``--latency``: ``const:FEED,ENTRY,RESP`` (ms), ``const:MS``,
    ``lognormal:FEED_MEDIAN,ORDER_MEDIAN,SIGMA``, ``sim[:MEDIAN_MS]`` (the simulator's spells) or
    ``capture:PATH.csv[,ORDER_FACTOR]`` or ``measured:PATH.csv`` (a session's ``order_latency.csv``)."""
    kind, _, rest = spec.partition(":")
    try:
        if kind in ("const", "lognormal", "sim") and rest:
            bad = [v for v in rest.split(",") if not float(v) >= 0]  # also catches nan
            if bad:
                raise ValueError(f"latencies must be >= 0 ms, got {', '.join(bad)}")
        if kind == "const":
            vals = [float(v) for v in rest.split(",")] if rest else [5.0]
            if len(vals) == 1:
                vals = vals * 3
            return ConstantLatency(*vals)
        if kind == "lognormal":
            vals = [float(v) for v in rest.split(",")] if rest else []
            return LognormalLatency(*vals, seed=seed)
        if kind == "sim":
            return SpellLatency(float(rest) if rest else 8.0, seed=seed)
        if kind == "capture":
            path, _, factor = rest.partition(",")
            return CaptureLatency.from_csv(Path(path), order_factor=float(factor) if factor else 1.0)
        if kind == "measured":
            return MeasuredOrderLatency.from_csv(Path(rest))
    except (TypeError, ValueError, OSError) as exc:
        raise ValueError(f"--latency {spec!r}: {exc}") from None
    raise ValueError(f"--latency {spec!r}: expected const:..., lognormal:..., sim[:MS], capture:PATH or "
                     "measured:PATH")
