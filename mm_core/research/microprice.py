"""Stoikov's micro-price: the limit of expected future mids given imbalance and spread.

Reference: S. Stoikov (2018), "The micro-price: a high-frequency estimator of future prices",
*Quantitative Finance* 18(12):1959-1966, SSRN 2970694.

The estimator (paper section 3, with the paper's notation):

* State ``x = (I, S)``: Stoikov imbalance ``I = Qb / (Qb + Qa)`` discretised into ``n_imb`` buckets,
  spread ``S`` in ticks (1, 2, ..., ``n_spread``; wider spreads share the last state).
* From consecutive samples (book messages in event time, or a clock grid) count transitions
  ``x -> y`` with mid change ``dM`` (rounded to half ticks):

  - ``Q[x, y]`` = P(dM = 0, next state y | x)           -- transient: the mid has not moved,
  - ``T[x, y]`` = P(dM != 0, next state y | x)           -- the mid moved, the chain restarts at y,
  - ``(R K)[x]`` = sum_k k * P(dM = k | x)               -- expected move when absorbed. The paper
    restricts ``K`` to {+-1/2, +-1} tick; here ``K`` is every observed move, which is the same
    sum when only those moves occur and keeps rare larger jumps instead of discarding them.

* ``g1 = (1 - Q)^-1 R K`` is the expected mid change at the next mid move,
  ``B = (1 - Q)^-1 T`` the distribution of the state right after it, and the micro-price
  adjustment is ``g* = g1 + B g1 + B^2 g1 + ...`` (iterated until the terms vanish), so that
  ``micro-price = mid + g*(I, S)`` (in ticks here).
* **Symmetrisation** (paper section 3.3): every observed transition is also added mirrored,
  ``(I, S, dM) -> (1 - I, S, -dM)``. That makes ``g*`` antisymmetric in the imbalance and lets the
  series converge (the stationary mean of ``g1`` is zero, so ``B^i g1 -> 0``).
* Estimation detail of ours: each state's row is normalised by ``count + prior`` with the missing
  ``prior`` mass meaning "absorbed, no move" -- so unseen/rare states shrink to ``g* = 0`` and
  ``(1 - Q)`` is always invertible. With ``prior=0`` the estimator is exactly the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

DEFAULT_IMBALANCE_BUCKETS = 10
DEFAULT_SPREAD_STATES = 2
DEFAULT_PRIOR = 1.0


def solve_microprice(Q: np.ndarray, T: np.ndarray, RK: np.ndarray, *, tol: float = 1e-12,
                     max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(g1, B, g_star, iterations)`` from the chain's matrices (see module docstring).

    ``Q`` and ``T`` are (n, n) sub-stochastic matrices, ``RK`` the (n,) expected absorbed move.
    """
    n = Q.shape[0]
    inv = np.linalg.solve(np.eye(n) - Q, np.eye(n))
    g1 = inv @ RK
    B = inv @ T
    g = g1.copy()
    term = g1
    it = 0
    for it in range(1, max_iter + 1):
        term = B @ term
        g = g + term
        if np.max(np.abs(term)) < tol:
            break
    return g1, B, g, it


@dataclass
class MicroPriceTable:
    """A fitted micro-price: ``adjustment_ticks[s, i]`` for spread state ``s`` and imbalance bucket ``i``.

    ``imbalance_edges`` are the ``n_imb - 1`` inner bucket edges on ``I`` in [0, 1], symmetric about
    0.5; spread state ``s`` means ``s + 1`` ticks (the last state also holds all wider spreads).
    """

    imbalance_edges: np.ndarray
    adjustment_ticks: np.ndarray  # (n_spread, n_imb)
    g1_ticks: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # observations per state (symmetrised)
    iterations: int = 0
    prior: float = DEFAULT_PRIOR

    @property
    def n_imb(self) -> int:
        return int(self.adjustment_ticks.shape[1])

    @property
    def n_spread(self) -> int:
        return int(self.adjustment_ticks.shape[0])

    def states(self, imbalance01: np.ndarray, spread_ticks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(spread state, imbalance bucket) per sample; spread state -1 where the spread is <= 0/NaN."""
        return _states(np.asarray(imbalance01, float), np.asarray(spread_ticks, float), self.imbalance_edges, self.n_spread)

    def adjustment(self, imbalance01: Any, spread_ticks: Any) -> Any:
        """``g*`` in ticks for Stoikov imbalance ``I`` in [0, 1] and spread in ticks (NaN if invalid)."""
        scalar = np.ndim(imbalance01) == 0 and np.ndim(spread_ticks) == 0
        s, i = self.states(np.atleast_1d(imbalance01), np.atleast_1d(spread_ticks))
        ok = s >= 0
        out = np.full(s.shape, np.nan)
        out[ok] = self.adjustment_ticks[s[ok], i[ok]]
        return float(out[0]) if scalar else out

    def to_dict(self) -> dict[str, Any]:
        return {
            "imbalance_edges": [float(x) for x in self.imbalance_edges],
            "adjustment_ticks": [[float(x) for x in row] for row in self.adjustment_ticks],
            "g1_ticks": [[float(x) for x in row] for row in self.g1_ticks],
            "counts": [[float(x) for x in row] for row in self.counts],
            "iterations": int(self.iterations),
            "prior": float(self.prior),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MicroPriceTable":
        return cls(
            imbalance_edges=np.asarray(d["imbalance_edges"], float),
            adjustment_ticks=np.asarray(d["adjustment_ticks"], float),
            g1_ticks=np.asarray(d.get("g1_ticks", []), float),
            counts=np.asarray(d.get("counts", []), float),
            iterations=int(d.get("iterations", 0)),
            prior=float(d.get("prior", DEFAULT_PRIOR)),
        )


def _states(I: np.ndarray, S: np.ndarray, edges: np.ndarray, n_spread: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.searchsorted(edges, I, side="right")
    with np.errstate(invalid="ignore"):
        s = np.rint(S).astype(np.float64)
    ok = np.isfinite(s) & (s >= 1) & np.isfinite(I)
    s_idx = np.where(ok, np.clip(s, 1, n_spread) - 1, -1).astype(np.int64)
    return s_idx, i.astype(np.int64)


def symmetric_edges(imbalance01: np.ndarray, n_imb: int = DEFAULT_IMBALANCE_BUCKETS) -> np.ndarray:
    """Quantile bucket edges of the symmetrised sample {I} U {1 - I} (so bucket(1-I) = n-1-bucket(I))."""
    x = np.asarray(imbalance01, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.linspace(0, 1, n_imb + 1)[1:-1]
    if x.size > 500_000:
        x = x[:: x.size // 500_000]
    lower = np.quantile(np.concatenate([x, 1.0 - x]), np.arange(1, n_imb // 2 + (n_imb % 2)) / n_imb) if n_imb > 1 else np.empty(0)
    lower = np.minimum(lower, 0.5)
    if n_imb % 2 == 0:
        edges = np.concatenate([lower, [0.5], 1.0 - lower[::-1]])
    else:
        edges = np.concatenate([lower, 1.0 - lower[::-1]])
    # guard against ties (e.g. a tiny sample): fall back to equal-width buckets
    if edges.size != n_imb - 1 or np.any(np.diff(edges) <= 0):
        edges = np.linspace(0, 1, n_imb + 1)[1:-1]
    return edges


def transition_counts(imbalance01: np.ndarray, spread_ticks: np.ndarray, mid_ticks: np.ndarray,
                      edges: np.ndarray, n_spread: int, *, segment_break: Optional[np.ndarray] = None,
                      symmetrize: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``(Qc, Tc, RKsum, n_x)`` of consecutive-sample transitions (mid in ticks).

    ``segment_break[k]`` True drops the transition from sample k-1 to k (a gap / fold boundary).
    """
    n_imb = edges.size + 1
    ns = n_spread * n_imb
    s, i = _states(imbalance01, spread_ticks, edges, n_spread)
    m = np.asarray(mid_ticks, float)
    x = s * n_imb + i
    ok_state = (s >= 0) & np.isfinite(m)
    dm = np.round(2.0 * np.diff(m)) / 2.0  # half-tick grid
    ok = ok_state[:-1] & ok_state[1:] & np.isfinite(dm)
    if segment_break is not None:
        ok &= ~np.asarray(segment_break, bool)[1:]
    fx, fy, fd = x[:-1][ok], x[1:][ok], dm[ok]
    fs, fi = s[:-1][ok], i[:-1][ok]
    ts_, ti = s[1:][ok], i[1:][ok]
    if symmetrize:
        mx = fs * n_imb + (n_imb - 1 - fi)
        my = ts_ * n_imb + (n_imb - 1 - ti)
        fx = np.concatenate([fx, mx])
        fy = np.concatenate([fy, my])
        fd = np.concatenate([fd, -fd])
    still = fd == 0
    Qc = np.bincount(fx[still] * ns + fy[still], minlength=ns * ns).reshape(ns, ns).astype(float)
    Tc = np.bincount(fx[~still] * ns + fy[~still], minlength=ns * ns).reshape(ns, ns).astype(float)
    RKs = np.bincount(fx, weights=fd, minlength=ns).astype(float)
    nx = np.bincount(fx, minlength=ns).astype(float)
    return Qc, Tc, RKs, nx


def fit_microprice(imbalance01: np.ndarray, spread_ticks: np.ndarray, mid_ticks: np.ndarray, *,
                   n_imb: int = DEFAULT_IMBALANCE_BUCKETS, n_spread: int = DEFAULT_SPREAD_STATES,
                   prior: float = DEFAULT_PRIOR, segment_break: Optional[np.ndarray] = None,
                   edges: Optional[np.ndarray] = None) -> MicroPriceTable:
    """Fit Stoikov's micro-price from a sample path (event time or clock grid), symmetrised.

    ``imbalance01`` is ``Qb / (Qb + Qa)``; ``mid_ticks`` is the mid divided by the tick size.
    """
    if n_imb < 2 or n_spread < 1:
        raise ValueError("need n_imb >= 2 and n_spread >= 1")
    I = np.asarray(imbalance01, float)
    e = symmetric_edges(I, n_imb) if edges is None else np.asarray(edges, float)
    Qc, Tc, RKs, nx = transition_counts(I, spread_ticks, mid_ticks, e, n_spread, segment_break=segment_break)
    denom = nx + prior
    denom[denom <= 0] = 1.0  # unseen state with prior 0: an all-zero row (absorbed, no move)
    Q = Qc / denom[:, None]
    T = Tc / denom[:, None]
    RK = RKs / denom
    g1, _, g, it = solve_microprice(Q, T, RK)
    shape = (n_spread, e.size + 1)
    return MicroPriceTable(imbalance_edges=e, adjustment_ticks=g.reshape(shape), g1_ticks=g1.reshape(shape),
                           counts=nx.reshape(shape), iterations=it, prior=prior)
