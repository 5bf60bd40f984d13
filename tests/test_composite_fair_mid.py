"""Cross-venue composite fair mid: a lead-lag relation is found and used out of sample, a venue that
goes stale fades out, and two unrelated venues give no edge (the honest no-go)."""

from __future__ import annotations

import numpy as np

from mm_core.research.composite import CompositeFairMid, VenueMids, evaluate_composite, lead_lag_steps

TICK = 0.1
S = 1_000_000_000


def walk(rng: np.random.Generator, seconds: float, rate: float, start: float = 60_000.0) -> tuple[np.ndarray, np.ndarray]:
    n = rng.poisson(rate * seconds)
    t = np.sort(rng.uniform(0, seconds, n))
    mid = start + TICK * np.cumsum(rng.choice([-1, 1], n))
    return (t * S).astype(np.int64), mid


def follower_of(t: np.ndarray, mid: np.ndarray, delay_s: float, basis: float) -> VenueMids:
    return VenueMids("follower", t + int(delay_s * S), mid + basis)


def test_a_leading_venue_improves_the_followers_fair_mid_out_of_sample() -> None:
    rng = np.random.default_rng(1)
    t, mid = walk(rng, 1200, 4.0)
    leader = VenueMids("leader", t, mid)
    follower = follower_of(t, mid, 0.5, basis=0.3)  # 0.5 s behind, 3 ticks above
    r = evaluate_composite(follower, leader, TICK, horizon_s=1.0, step_ms=100)
    comp = r["scores"]["composite"]
    assert comp["mse_gain_pct"] > 20 and comp["dm_p"] < 0.01 and comp["hit_p"] < 0.01 and comp["hit_rate"] > 0.5
    assert 400 <= r["lead_lag_ms"] <= 600  # the other venue leads by ~0.5 s
    assert all(abs(f["basis"] - 0.3) < 0.05 for f in r["folds"])


def test_unrelated_venues_give_no_edge() -> None:
    rng = np.random.default_rng(2)
    a, b = walk(rng, 1200, 4.0), walk(rng, 1200, 4.0)
    r = evaluate_composite(VenueMids("a", *a), VenueMids("b", *b), TICK, horizon_s=1.0, step_ms=100)
    comp = r["scores"]["composite"]
    assert comp["dm_p"] > 0.05 and comp["mse_gain_pct"] < 2


def test_a_stale_venue_fades_out_of_the_composite() -> None:
    m = CompositeFairMid(basis=0.0, beta=1.0, tau_s=1.0)
    target = np.array([100.0, 100.0, 100.0])
    other = np.array([101.0, 101.0, 101.0])
    gap = m.gap_ticks(target, np.array([0.1, 0.1, 0.1]), other, np.array([0.1, 3.0, 30.0]), tick=TICK)
    assert gap[0] > 4.5 and gap[1] < 1.0 and abs(gap[2]) < 1e-9  # 10 ticks away: half, then fading, then gone
    assert m.gap_ticks(target, np.zeros(3), np.full(3, np.nan), np.full(3, np.nan), tick=TICK).tolist() == [0, 0, 0]


def test_lead_lag_sign() -> None:
    x = np.cumsum(np.random.default_rng(3).normal(size=2000))
    assert lead_lag_steps(target=np.r_[np.zeros(3), x[:-3]], other=x, max_lag=10)[0] == 3
    assert lead_lag_steps(target=x, other=np.r_[np.zeros(3), x[:-3]], max_lag=10)[0] == -3


def test_lags_longer_than_the_window_are_not_tried() -> None:
    x = np.arange(5.0)
    assert lead_lag_steps(x, x, max_lag=50)[0] in range(-4, 5)
