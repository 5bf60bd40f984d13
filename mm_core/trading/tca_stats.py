"""Means with confidence intervals that respect how fills cluster in time.

Why not the textbook interval: fills come in bursts (a price move sweeps several of our orders
within a second, a requote loop refills the same level), and the markouts of fills seconds apart
share most of their future window -- a 5-minute markout of two fills 10 s apart is nearly the same
number. Treating them as independent shrinks the interval by the square root of the burst size
and makes noise look like a significant adverse-selection figure.

Method: the weighted mean (weights = fill quantity, so the figure matches the PnL) with a
cluster-robust standard error (the CR1 "sandwich": residuals summed within each cluster, with the
small-sample factor G/(G-1)) and a Student-t quantile with G-1 degrees of freedom, G = number of
clusters. Clusters are consecutive clock blocks of ``max(cluster_s, horizon)`` seconds, so fills
whose markout windows overlap fall in the same block (adjacent blocks still touch at their edge;
the block is at least the horizon, so that overlap is a minority). Fewer than ``min_clusters``
clusters give no interval (``ci`` None): with a handful of independent observations an interval
is not worth printing. This is deterministic and costs one pass; a block bootstrap would resample
the same blocks at a thousand times the cost for the same answer up to simulation noise.

The t quantile is computed here from the regularized incomplete beta function (continued
fraction), to avoid a SciPy dependency for one function; it is checked against tabulated values
in the tests.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Optional

import numpy as np


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * betainc(0.5 * df, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if df > 1e6:
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def cluster_mean_ci(x: np.ndarray, w: Optional[np.ndarray], clusters: np.ndarray, *, confidence: float = 0.95,
                    min_clusters: int = 5) -> dict[str, Any]:
    """Weighted mean of the finite ``x`` with a cluster-robust t interval (see the module doc).

    Returns ``mean``, ``ci`` ([lo, hi] or None), ``n`` (observations used), ``clusters`` and ``se``.
    """
    x = np.asarray(x, np.float64)
    w = np.ones_like(x) if w is None else np.asarray(w, np.float64)
    ok = np.isfinite(x) & np.isfinite(w) & (w > 0)
    x, w, g = x[ok], w[ok], np.asarray(clusters)[ok]
    n = int(x.size)
    if n == 0:
        return {"mean": None, "ci": None, "n": 0, "clusters": 0, "se": None}
    sw = float(w.sum())
    mean = float((w * x).sum() / sw)
    _, inv = np.unique(g, return_inverse=True)
    n_g = int(inv.max()) + 1
    out: dict[str, Any] = {"mean": mean, "ci": None, "n": n, "clusters": n_g, "se": None}
    if n_g < max(2, min_clusters):
        return out
    sums = np.bincount(inv, weights=w * (x - mean), minlength=n_g)
    var = n_g / (n_g - 1) * float((sums * sums).sum()) / (sw * sw)
    se = math.sqrt(var)
    q = t_quantile(0.5 + confidence / 2.0, n_g - 1)
    out["se"] = se
    out["ci"] = [mean - q * se, mean + q * se]
    return out
