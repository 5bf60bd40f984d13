"""What the trading runner knows about the market at a decision: the backtest engine's view, live.

The backtest engine (:mod:`mm_core.backtest.engine_core`) decides at local time ``t`` on the last
row that had *arrived* by ``t`` (best prices and sizes, fair mid), the data age ``t - conf_exch`` of
the last confirmation that had arrived (any message, or a heartbeat: its exchange time is its
arrival minus the lag of the message before it), the validity and market status set by feed-status
events, and one feed-age sample per book message (the latency regime's input). This class keeps
exactly those facts *by local arrival time*, so a decision stamped ``t`` sees what had arrived by
``t`` even when the runner wakes up a little later than ``t`` -- the recording of the session then
replays in the backtest to the same decisions (``mm reconcile-day``).

Fair mid per message from the top of book: ``mid``, ``microprice`` or ``linear_imbalance:BETA``
(:mod:`mm_core.backtest.fair`'s formulas, one message at a time). Research model files need trade
windows and are not available to the runner yet: asking for one is a clear error.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Optional

_KEEP = 4096  # messages kept for look-back (a decision is never more than a few behind)


@dataclass(frozen=True)
class Top:
    """The book after one message: as the engine's row after that message."""

    local_ns: int
    exch_ns: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    fair: float


def fair_function(spec: str):
    """``(bid, bid_qty, ask, ask_qty) -> fair`` for ``mid``, ``microprice``, ``linear_imbalance:BETA``."""
    spec = (spec or "mid").strip()
    if spec == "mid":
        return lambda b, bq, a, aq: 0.5 * (b + a)
    if spec == "microprice":
        def micro(b: float, bq: float, a: float, aq: float) -> float:
            tot = bq + aq
            return (b * aq + a * bq) / tot if tot > 0 else math.nan
        return micro
    if spec.startswith("linear_imbalance:"):
        beta = float(spec.split(":", 1)[1])

        def lin(b: float, bq: float, a: float, aq: float) -> float:
            tot = bq + aq
            return 0.5 * (b + a) + beta * 0.5 * (a - b) * (bq - aq) / tot if tot > 0 else math.nan
        return lin
    raise ValueError(f"fair {spec!r}: the trading runner computes mid, microprice or linear_imbalance:BETA per "
                     "message; a research model file needs its trade-window features (not available live yet)")


class MarketView:
    """Facts by local arrival time (see the module docstring). Feed calls in arrival order."""

    def __init__(self, fair: str = "mid") -> None:
        self.fair_spec = fair or "mid"
        self._fair = fair_function(self.fair_spec)
        self.tops: deque[Top] = deque(maxlen=_KEEP)
        self._conf: deque[tuple[int, int]] = deque(maxlen=_KEEP)  # (local, exchange-equivalent)
        self._samples: deque[tuple[int, float]] = deque()  # book-message age samples not yet applied
        self._last_lag_ns = 0
        self._last_fair = math.nan
        self.valid = True
        self.market = 0  # MKT_* code
        self.messages = 0
        self.last_local_ns = 0

    # ------------------------------------------------------------------ input

    def on_message(self, local_ns: int, exch_ns: Optional[int], bid: float, bid_qty: float, ask: float,
                   ask_qty: float, *, book: bool) -> Top:
        """A market message arrived (book or trade); ``bid``..``ask_qty``: the top after it."""
        exch = local_ns if exch_ns is None else min(exch_ns, local_ns)  # the engine: local >= exchange time
        self._last_lag_ns = local_ns - exch
        fair = math.nan
        if bid > 0 and ask > bid:
            fair = self._fair(bid, bid_qty, ask, ask_qty)
        if math.isfinite(fair):
            self._last_fair = fair
        else:
            fair = self._last_fair  # the engine carries the last valid fair forward
        top = Top(local_ns, exch, bid, bid_qty, ask, ask_qty, fair)
        self.tops.append(top)
        self._conf.append((local_ns, exch))
        if book and exch_ns is not None:
            self._samples.append((local_ns, (local_ns - exch_ns) * 1e-6))
        self.messages += 1
        self.last_local_ns = local_ns
        return top

    def on_heartbeat(self, local_ns: int, exch_ns: Optional[int] = None) -> None:
        """A heartbeat confirms the book: its exchange time = arrival - the last message's lag
        (``exch_ns`` when the caller knows it, e.g. a replay of the backtest's own heartbeats)."""
        self._conf.append((local_ns, local_ns - self._last_lag_ns if exch_ns is None else exch_ns))

    def latest_conf_exch(self) -> Optional[int]:
        return self._conf[-1][1] if self._conf else None

    # ------------------------------------------------------------------ at a decision

    def top_at(self, t: int) -> Optional[Top]:
        """The last message that had arrived by ``t`` (None before the first)."""
        for top in reversed(self.tops):
            if top.local_ns <= t:
                return top
        return None

    def age_ms(self, t: int) -> float:
        for loc, exch in reversed(self._conf):
            if loc <= t:
                return (t - exch) * 1e-6
        return 1e18

    def conf_exch_at(self, t: int) -> Optional[int]:
        for loc, exch in reversed(self._conf):
            if loc <= t:
                return exch
        return None

    def take_samples(self, t: int) -> list[tuple[int, float]]:
        """Book-message age samples that had arrived by ``t``, in order (each handed out once)."""
        out = []
        s = self._samples
        while s and s[0][0] <= t:
            out.append(s.popleft())
        return out
