"""The simulator's latency model: the configured median, spells in the right ranges and shares,
in-order delivery, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mm_core.simexchange.latency import (
    ConstantLatency,
    DelayStats,
    InOrderDelivery,
    LatencyConfig,
    RegimeLatency,
    make_latency,
)

MS = 1_000_000


def _delays(config: LatencyConfig, n: int, step_ns: int = 100 * MS, seed: int = 1) -> tuple[np.ndarray, list[str]]:
    model = RegimeLatency(config, seed)
    out = np.empty(n, dtype=np.int64)
    regimes = []
    for i in range(n):
        out[i] = model.delay_ns(i * step_ns)
        regimes.append(model.regime)
    return out, regimes


@pytest.mark.parametrize("median_ms,sigma", [(8.0, 0.35), (25.0, 0.2)])
def test_percentiles_match_the_configured_lognormal_without_spells(median_ms: float, sigma: float) -> None:
    d, regimes = _delays(LatencyConfig(median_ms=median_ms, sigma=sigma, spells=False), 40_000)
    assert set(regimes) == {"normal"}
    p50, p90 = np.percentile(d, [50, 90]) / MS
    assert p50 == pytest.approx(median_ms, rel=0.03)
    assert p90 == pytest.approx(median_ms * math.exp(1.2816 * sigma), rel=0.04)


def test_spells_are_degraded_30_to_80_and_unsafe_above_80_in_expected_shares() -> None:
    config = LatencyConfig(degraded_per_hour=30.0, unsafe_per_hour=10.0, degraded_mean_s=20.0, unsafe_mean_s=10.0)
    n = 200_000  # 100 ms apart = 5.6 h of exchange time
    d, regimes = _delays(config, n)
    r = np.array(regimes)
    share = {k: float(np.mean(r == k)) for k in ("normal", "degraded", "unsafe")}
    # stationary shares of the chain: time in spells / total time
    deg, uns = 30 * 20 / 3600, 10 * 10 / 3600
    assert share["degraded"] == pytest.approx(deg / (1 + deg + uns), rel=0.3)
    assert share["unsafe"] == pytest.approx(uns / (1 + deg + uns), rel=0.4)
    ms = d / MS
    assert ms[r == "degraded"].min() >= 30 and ms[r == "degraded"].max() <= 80
    assert ms[r == "unsafe"].min() > 80
    assert np.median(ms[r == "normal"]) == pytest.approx(8.0, rel=0.05)
    # spells are periods: consecutive messages share the regime
    switches = int(np.sum(r[1:] != r[:-1]))
    assert switches < n / 100


def test_default_config_stays_inside_the_gate_budget() -> None:
    d, regimes = _delays(LatencyConfig(), 100_000, seed=3)
    unsafe_share = float(np.mean(d > 80 * MS))
    assert unsafe_share < 0.03
    assert np.percentile(d, 50) / MS < 15


def test_in_order_delivery_never_lets_a_message_overtake() -> None:
    model = RegimeLatency(LatencyConfig(median_ms=8.0, sigma=1.0, spells=False), 5)
    delivery = InOrderDelivery(model)
    created = np.cumsum(np.random.default_rng(0).exponential(2 * MS, 20_000)).astype(np.int64)
    last = 0
    overtakes_prevented = 0
    for c in created:
        at, delay = delivery.schedule(int(c))
        assert at >= c + delay
        assert at >= last
        overtakes_prevented += at > c + delay
        last = at
    assert overtakes_prevented > 0  # sigma 1.0 at 2 ms spacing: reordering was really prevented


def test_same_seed_same_delays() -> None:
    config = LatencyConfig(degraded_per_hour=100.0)
    a, _ = _delays(config, 5000, seed=9)
    b, _ = _delays(config, 5000, seed=9)
    c, _ = _delays(config, 5000, seed=10)
    assert (a == b).all() and not (a == c).all()


def test_constant_and_zero_latency() -> None:
    assert ConstantLatency(3.5).delay_ns(123) == 3_500_000
    assert make_latency(None).delay_ns(0) == 0
    assert RegimeLatency(LatencyConfig(median_ms=0.0, spells=False)).delay_ns(0) == 0


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="median_ms"):
        LatencyConfig(median_ms=-1)
    with pytest.raises(ValueError, match="degraded_min_ms"):
        LatencyConfig(degraded_min_ms=90)


def test_delay_stats_summary_keys() -> None:
    s = DelayStats()
    for i in range(100):
        s.add(i * MS, i * MS + 500_000, "normal" if i < 90 else "degraded")
    out = s.summary()
    assert out["count"] == 100
    assert set(out["delay_ms"]) == {"p50", "p90", "p95", "p99", "max", "mean"}
    assert out["delay_ms"]["p50"] == pytest.approx(49.5)
    assert out["lag_ms"]["max"] == pytest.approx(99.5)
    assert out["regime_share"] == {"normal": 0.9, "degraded": 0.1, "unsafe": 0.0}
