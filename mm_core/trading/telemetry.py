"""Telemetry of a running trader: decision latency, quote changes, order actions, time in each
regime, risk triggers -- in the session summary and, with ``--metrics-port``, in Prometheus.

Same pattern as the collector's endpoint (:mod:`mm_core.capture.collector`): opt-in,
``prometheus_client`` on its own registry and HTTP thread bound to 127.0.0.1 by default, so
scraping never touches the event loop. Metric names::

    mm_decision_latency_us          histogram  event in -> decision out (the whole decide() call)
    mm_quote_changes_total          counter    actions that changed what rests (rate() = changes/s)
    mm_quote_changes_per_second     gauge      over the last minute
    mm_order_actions_total{kind}    counter    new | amend | cancel
    mm_regime_seconds_total{machine,state}  counter  latency/volatility/market/trading time in each state
    mm_risk_triggers_total{cause}   counter    kill switches and risk triggers by cause
    mm_position, mm_equity          gauges
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Optional

import numpy as np

from mm_core.strategy import pipeline as _pl
from mm_core.strategy.requote import PI_AMEND, PI_CANCEL, PI_NEW
from mm_core.strategy.transitions import records
from mm_core.strategy.view import K_RISK, K_TRADING, L_KIND, STATE_NAMES

LATENCY_BUCKETS_US = (5, 10, 20, 30, 50, 75, 100, 200, 500, 1000, 5000, 20000)
_MACHINES = (("latency", _pl.RS_LAT, True), ("volatility", _pl.RS_VOL, True), ("market", _pl.RS_MARKET, True),
             ("trading", _pl.KS_TRADING, False))


class Telemetry:
    """Counters kept in memory (for the summary) and mirrored to Prometheus when asked."""

    def __init__(self, metrics_port: Optional[int] = None, metrics_host: str = "127.0.0.1") -> None:
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self._lat_us: deque[float] = deque(maxlen=100_000)
        self._step_us: deque[float] = deque(maxlen=100_000)  # the compiled step alone
        self.decisions = 0
        self.quote_changes = 0
        self.actions = {"new": 0, "amend": 0, "cancel": 0}
        self.regime_s: dict[str, dict[str, float]] = {m: {} for m, _, _ in _MACHINES}
        self.risk_triggers: dict[str, int] = {}
        self._last_t: Optional[int] = None
        self._last_states: Optional[tuple[int, ...]] = None
        self._changes: deque[tuple[int, int]] = deque()
        self._pi0: Optional[tuple[int, int, int]] = None
        self._m: Optional[dict[str, Any]] = None
        self._server: Any = None

    # ------------------------------------------------------------------ endpoint

    def start(self) -> Optional[str]:
        if self.metrics_port is None:
            return None
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        reg = CollectorRegistry()
        self._m = {
            "lat": Histogram("mm_decision_latency_us", "decision latency (event in -> decision out), us",
                             buckets=LATENCY_BUCKETS_US, registry=reg),
            "changes": Counter("mm_quote_changes", "actions that changed what rests", registry=reg),
            "changes_rate": Gauge("mm_quote_changes_per_second", "quote changes per second, last minute",
                                  registry=reg),
            "actions": Counter("mm_order_actions", "order actions sent", ["kind"], registry=reg),
            "regime": Counter("mm_regime_seconds", "time in each regime state", ["machine", "state"], registry=reg),
            "risk": Counter("mm_risk_triggers", "risk triggers and kill switches", ["cause"], registry=reg),
            "position": Gauge("mm_position", "position (base units, since the start)", registry=reg),
            "equity": Gauge("mm_equity", "equity since the start (quote currency, after fees)", registry=reg),
        }
        self._server = start_http_server(self.metrics_port, addr=self.metrics_host, registry=reg)
        return f"http://{self.metrics_host}:{self.metrics_port}/metrics"

    def stop(self) -> None:
        started, self._server = self._server, None
        if started is None:
            return
        server = started[0] if isinstance(started, tuple) else started
        try:
            server.shutdown()
            server.server_close()
        except Exception:
            pass

    # ------------------------------------------------------------------ feed

    def decision(self, t_ns: int, elapsed_ns: int, quote_changes: int, pl: Any, log: np.ndarray,
                 step_ns: int = 0) -> None:
        us = elapsed_ns / 1e3
        self.decisions += 1
        self._lat_us.append(us)
        self._step_us.append(step_ns / 1e3)
        self.quote_changes += quote_changes
        pi = (int(pl.PI[PI_NEW]), int(pl.PI[PI_AMEND]), int(pl.PI[PI_CANCEL]))
        d = tuple(a - b for a, b in zip(pi, self._pi0)) if self._pi0 is not None else pi
        self._pi0 = pi
        for k, n in zip(("new", "amend", "cancel"), d):
            self.actions[k] += n
        states = (int(pl.RS[_pl.RS_LAT]), int(pl.RS[_pl.RS_VOL]), int(pl.RS[_pl.RS_MARKET]),
                  int(pl.KS[_pl.KS_TRADING]))
        m = self._m
        if self._last_t is not None and self._last_states is not None:
            dt = max(0, t_ns - self._last_t) / 1e9
            for (name, _, _), st, kind in zip(_MACHINES, self._last_states, range(4)):
                label = _state_name(kind, st)
                self.regime_s[name][label] = self.regime_s[name].get(label, 0.0) + dt
                if m is not None:
                    m["regime"].labels(name, label).inc(dt)
        self._last_t, self._last_states = t_ns, states
        if log.shape[0]:
            for r, rec in zip(log, records(log, log.shape[0])):
                if r[L_KIND] in (K_TRADING, K_RISK) and rec["cause"] not in ("resume", "data_fresh",
                                                                              "inventory_back_inside"):
                    self.risk_triggers[rec["cause"]] = self.risk_triggers.get(rec["cause"], 0) + 1
                    if m is not None:
                        m["risk"].labels(rec["cause"]).inc()
        if quote_changes:
            self._changes.append((t_ns, quote_changes))
        while self._changes and self._changes[0][0] < t_ns - 60_000_000_000:
            self._changes.popleft()
        if m is not None:
            m["lat"].observe(us)
            if quote_changes:
                m["changes"].inc(quote_changes)
            m["changes_rate"].set(sum(n for _, n in self._changes) / 60.0)
            for k, n in zip(("new", "amend", "cancel"), d):
                if n:
                    m["actions"].labels(k).inc(n)

    def position(self, position: float, equity: float) -> None:
        if self._m is not None:
            self._m["position"].set(position)
            if math.isfinite(equity):
                self._m["equity"].set(equity)

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = np.asarray(self._lat_us) if self._lat_us else np.zeros(1)
        step = np.asarray(self._step_us) if self._step_us else np.zeros(1)
        return {"decisions": self.decisions,
                "decision_latency_us": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                                        "max": float(lat.max()), "n": len(self._lat_us)},
                "step_latency_us": {"p50": float(np.percentile(step, 50)), "p99": float(np.percentile(step, 99))},
                "quote_changes": self.quote_changes,
                "quote_changes_per_s": self.quote_changes / seconds if seconds > 0 else 0.0,
                "order_actions": dict(self.actions),
                "time_in_regime_s": {k: {s: round(v, 3) for s, v in d.items()} for k, d in self.regime_s.items()},
                "risk_triggers": dict(self.risk_triggers)}


def _state_name(kind: int, code: int) -> str:
    names = STATE_NAMES.get(kind)
    return names[code] if names is not None and 0 <= code < len(names) else str(code)
