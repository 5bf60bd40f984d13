"""Stoikov micro-price estimator on a hand-built Markov chain whose answer is known in closed form.

Chain: one spread state, two imbalance states (low I, high I). Each step the mid moves with
probability a = 0.2: down one tick from "low", up one tick from "high"; after a move the chain stays
in its state with probability 0.7. So g1 = (1-Q)^-1 R K = (-1, +1) ticks, B = [[.7, .3], [.3, .7]],
B^k g1 = 0.4^k g1 and g* = g1 / (1 - 0.4) = (-5/3, +5/3) ticks.
"""

from __future__ import annotations

import numpy as np
import pytest

from mm_core.research.microprice import fit_microprice, solve_microprice, symmetric_edges

A = 0.2


def chain() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    Q = np.diag([1 - A, 1 - A])
    T = np.array([[0.7 * A, 0.3 * A], [0.3 * A, 0.7 * A]])
    RK = np.array([-A * 1.0, A * 1.0])
    return Q, T, RK


def test_solver_reproduces_the_closed_form() -> None:
    g1, B, g, iters = solve_microprice(*chain())
    assert g1 == pytest.approx([-1.0, 1.0])
    assert B == pytest.approx(np.array([[0.7, 0.3], [0.3, 0.7]]))
    assert g == pytest.approx([-5 / 3, 5 / 3], abs=1e-9)
    assert iters > 1  # the series, not just g1


def simulate_path(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = np.empty(n, np.int64)
    mid = np.empty(n)
    s, m = 0, 0.0
    u = rng.random((n, 2))
    for k in range(n):
        state[k], mid[k] = s, m
        if u[k, 0] < A:
            m += 1.0 if s == 1 else -1.0
            s = s if u[k, 1] < 0.7 else 1 - s
    imb01 = np.where(state == 1, 0.75, 0.25)
    return imb01, np.ones(n), mid


def test_estimator_recovers_the_chain_from_a_sample_path() -> None:
    imb01, spread, mid = simulate_path(200_000)
    t = fit_microprice(imb01, spread, mid, n_imb=2, n_spread=1, prior=0.0, edges=np.array([0.5]))
    assert t.adjustment_ticks[0] == pytest.approx([-5 / 3, 5 / 3], abs=0.06)
    assert t.g1_ticks[0] == pytest.approx([-1.0, 1.0], abs=0.02)
    assert t.adjustment(0.9, 1.0) == pytest.approx(t.adjustment_ticks[0, 1])


def test_symmetrisation_makes_the_adjustment_antisymmetric() -> None:
    rng = np.random.default_rng(1)
    n = 50_000
    imb01 = rng.random(n)
    spread = rng.integers(1, 4, n).astype(float)
    mid = np.cumsum(rng.choice([-0.5, 0.0, 0.0, 0.5], n) + 0.5 * (imb01 > 0.8))
    t = fit_microprice(imb01, spread, mid, n_imb=10, n_spread=3)
    g = t.adjustment_ticks
    assert g == pytest.approx(-g[:, ::-1], abs=1e-9)
    e = t.imbalance_edges
    assert e == pytest.approx(1.0 - e[::-1])


def test_unseen_states_shrink_to_zero_and_invalid_spreads_give_nan() -> None:
    imb01, spread, mid = simulate_path(5_000)
    t = fit_microprice(imb01, spread, mid, n_imb=4, n_spread=3)
    assert np.all(t.adjustment_ticks[1:] == 0.0)  # spreads 2 and 3 ticks never observed
    assert np.isnan(t.adjustment(0.5, 0.0)) and np.isnan(t.adjustment(0.5, float("nan")))


def test_edges_are_symmetric_quantiles() -> None:
    e = symmetric_edges(np.random.default_rng(0).beta(2, 5, 10_000), 10)
    assert e.size == 9 and e[4] == 0.5 and e == pytest.approx(1 - e[::-1])
