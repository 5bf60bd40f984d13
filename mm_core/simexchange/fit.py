"""``mm fit-sim RUN_DIR --out profile.toml``: fit the simulator's market to a capture.

Why: the default profile imitates one quiet BTC/USD minute; the user's own 24 h BTC/EUR capture is
the better reference. This reads a capture (a run directory or any recording ``mm replay`` reads) as
canonical events, estimates the market model's parameters from it, writes a profile file that
``mm simexchange --profile FILE`` (and ``sim:FILE`` sources) use, and prints the realism table of
the capture beside a simulation of the fitted profile, so the fit is judged by the same tolerances
as the shipped profiles.

What is estimated, and how:

- **arrivals**: a two-kernel exponential Hawkes process by maximum likelihood on the update
  timestamps (exchange clock; the recursion restarts after every snapshot, so a reconnect's gap is
  not mistaken for a lull), Nelder-Mead in log-parameters from a few starting points;
- **message mix**: every update message classified as the model thinks of it -- a best-price
  retreat (the best got worse), a narrowing (a new best inside a wide spread), a deletion, a size
  change at the best or deeper, a new level -- with the ranks of size changes and deletions, the
  share of two-level size messages, the side the best-size changes hit, how often a wide spread is
  narrowed by the next message and whether to one tick;
- **book and sizes**: the mean spacing of the top-10 levels in ticks; a two-component lognormal
  mixture (EM on log sizes) of the sizes in updates, the share of best levels drawn from the large
  component, the log-size step of re-sized levels;
- **trades** (when the capture has them): rate, lognormal sizes, the share of retreats that are
  sweeps (a trade at the removed price within 5 ms) and the levels a retreat removes.

Not estimated (taken from the base profile, and said so in the file): volatile spells (a capture
cannot tell them from bursts without a long, labelled history), the predictive imbalance weight
(research ground truth, not a market property), the book's depth bounds. The simulator's grid is
BTC/EUR's (0.1 price tick, 1e-8 size): a fitted profile carries shapes in ticks and sizes in base
units, so a capture of another pair is imitated on that grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
from numba import njit

from mm_core.book import L2Book
from mm_core.events import BookLevels, BookSnapshot, Event, Trade
from mm_core.simexchange.market import MarketParams
from mm_core.simexchange.profiles import ProfileError, load_profile, profile_toml

MIN_UPDATES = 200
_RANKS = 9


class FitError(ValueError):
    """A capture the simulator cannot be fitted to; the message says why."""


# ----------------------------------------------------------------------------- Hawkes MLE


@njit(cache=True)
def _hawkes_nll(t: np.ndarray, seg: np.ndarray, mu: float, alpha: np.ndarray, beta: np.ndarray,
                span: float) -> float:  # pragma: no cover - jit
    """Negative log-likelihood of a multi-exponential Hawkes process; the excitation restarts at
    every segment start; ``span`` is the total observed time (sum of segment lengths)."""
    k = alpha.shape[0]
    r = np.zeros(k)
    ll = 0.0
    comp = mu * span
    n = t.shape[0]
    for i in range(n):
        if i == 0 or seg[i] != seg[i - 1]:
            for j in range(k):
                r[j] = 0.0
        else:
            dt = t[i] - t[i - 1]
            for j in range(k):
                r[j] = math.exp(-beta[j] * dt) * (r[j] + 1.0)
        lam = mu
        for j in range(k):
            lam += alpha[j] * r[j]
        ll += math.log(lam)
    # compensator: sum over events of (alpha/beta)(1 - exp(-beta (T_seg_end - t_i)))
    i = 0
    while i < n:
        j0 = i
        while i + 1 < n and seg[i + 1] == seg[j0]:
            i += 1
        t_end = t[i]
        for m in range(j0, i + 1):
            for j in range(k):
                comp += alpha[j] / beta[j] * (1.0 - math.exp(-beta[j] * (t_end - t[m])))
        i += 1
    return comp - ll


def _nelder_mead(f, x0: np.ndarray, step: float = 0.7, iters: int = 600, tol: float = 1e-7) -> tuple[np.ndarray, float]:
    """A plain Nelder-Mead minimiser (a handful of parameters; no SciPy needed for that)."""
    n = x0.size
    pts = [x0.astype(float)]
    for i in range(n):
        x = x0.astype(float).copy()
        x[i] += step
        pts.append(x)
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = np.argsort(vals)
        pts = [pts[i] for i in order]
        vals = [vals[i] for i in order]
        if abs(vals[-1] - vals[0]) <= tol * (1.0 + abs(vals[0])):
            break
        c = np.mean(pts[:-1], axis=0)
        xr = c + (c - pts[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = c + 2.0 * (c - pts[-1])
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = c + 0.5 * (pts[-1] - c)
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                for i in range(1, len(pts)):
                    pts[i] = pts[0] + 0.5 * (pts[i] - pts[0])
                    vals[i] = f(pts[i])
    best = int(np.argmin(vals))
    return pts[best], float(vals[best])


def fit_hawkes(t_s: np.ndarray, segment: np.ndarray) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """``(rate, branching, decay)`` of a two-kernel exponential Hawkes fit (times in seconds,
    ascending within each segment); the faster kernel first."""
    span = 0.0
    for s in np.unique(segment):
        ts = t_s[segment == s]
        span += float(ts[-1] - ts[0])
    if span <= 0:
        raise FitError("update timestamps span no time")
    rate = t_s.size / span

    def nll(theta: np.ndarray) -> float:
        mu = math.exp(theta[0])
        n = np.exp(theta[1:3]) / (1.0 + np.exp(theta[1:3]))  # each branching ratio in (0, 1)
        beta = np.exp(theta[3:5])
        if n.sum() >= 0.98:
            return 1e18
        return float(_hawkes_nll(t_s, segment, mu, n * beta, beta, span))

    best: Optional[tuple[np.ndarray, float]] = None
    for fast_n, fast_b, slow_n, slow_b in ((0.1, 3000.0, 0.6, 30.0), (0.3, 500.0, 0.4, 10.0), (0.05, 200.0, 0.7, 5.0)):
        mu0 = rate * (1.0 - fast_n - slow_n)
        x0 = np.array([math.log(mu0), math.log(fast_n / (1 - fast_n)), math.log(slow_n / (1 - slow_n)),
                       math.log(fast_b), math.log(slow_b)])
        x, v = _nelder_mead(nll, x0)
        if best is None or v < best[1]:
            best = (x, v)
    assert best is not None
    x = best[0]
    n = np.exp(x[1:3]) / (1.0 + np.exp(x[1:3]))
    beta = np.exp(x[3:5])
    order = np.argsort(-beta)  # fast kernel first
    return rate, (float(n[order[0]]), float(n[order[1]])), (float(beta[order[0]]), float(beta[order[1]]))


# ----------------------------------------------------------------------------- size mixture


def fit_lognormal_mixture(sizes: np.ndarray, iters: int = 200) -> tuple[float, float, float, float, float]:
    """``(small_median, small_sigma, large_median, large_sigma, large_share)`` by EM on log sizes."""
    x = np.log(sizes[sizes > 0])
    if x.size < 20:
        raise FitError("too few level sizes to fit")
    m1, m2 = np.percentile(x, 20), np.percentile(x, 80)
    s1 = s2 = max(0.3, float(x.std()) / 2)
    w = 0.5
    for _ in range(iters):
        p1 = (1 - w) * np.exp(-0.5 * ((x - m1) / s1) ** 2) / s1
        p2 = w * np.exp(-0.5 * ((x - m2) / s2) ** 2) / s2
        g = p2 / np.maximum(p1 + p2, 1e-300)
        w_new = float(g.mean())
        m1 = float(np.sum((1 - g) * x) / max(np.sum(1 - g), 1e-12))
        m2 = float(np.sum(g * x) / max(np.sum(g), 1e-12))
        s1 = max(0.05, math.sqrt(float(np.sum((1 - g) * (x - m1) ** 2) / max(np.sum(1 - g), 1e-12))))
        s2 = max(0.05, math.sqrt(float(np.sum(g * (x - m2) ** 2) / max(np.sum(g), 1e-12))))
        if abs(w_new - w) < 1e-9:
            w = w_new
            break
        w = w_new
    if m1 > m2:
        m1, m2, s1, s2, w = m2, m1, s2, s1, 1 - w
    return math.exp(m1), s1, math.exp(m2), s2, w


# ----------------------------------------------------------------------------- classification


@dataclass
class _Tally:
    kinds: dict[str, int] = field(default_factory=lambda: {"top_qty": 0, "level_qty": 0, "insert": 0, "delete": 0,
                                                            "retreat": 0, "close": 0})
    qty_ranks: np.ndarray = field(default_factory=lambda: np.zeros(_RANKS))
    delete_ranks: np.ndarray = field(default_factory=lambda: np.zeros(_RANKS))
    size_msgs: int = 0
    double: int = 0
    top_changes: int = 0
    busy_side: int = 0
    wide: int = 0
    narrowed: int = 0
    to_one_tick: int = 0
    retreat_levels: list[int] = field(default_factory=list)
    retreats_at: list[tuple[int, float]] = field(default_factory=list)  # (ts, removed best price)
    gaps: list[float] = field(default_factory=list)
    spreads: list[tuple[float, float]] = field(default_factory=list)  # (before, after) each message
    update_sizes: list[float] = field(default_factory=list)
    top_sizes: list[float] = field(default_factory=list)
    log_steps: list[float] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    seg: list[int] = field(default_factory=list)
    trade_ts: list[int] = field(default_factory=list)
    trade_px: list[float] = field(default_factory=list)
    trade_qty: list[float] = field(default_factory=list)
    first_mid: Optional[float] = None
    prices: set[float] = field(default_factory=set)


def _side_keys(book: L2Book, bid: bool) -> list[float]:
    return [-k for k in book.bid_keys] if bid else list(book.ask_keys)


def _classify(events: Iterable[Event], symbol: Optional[str]) -> tuple[_Tally, str, int]:
    tally = _Tally()
    book: Optional[L2Book] = None
    segment = 0
    depth = 10
    sym = symbol
    n_msgs = 0
    for ev in events:
        if isinstance(ev, Trade):
            if sym is None or ev.symbol == sym:
                tally.trade_ts.append(int(ev.ts_exchange if ev.ts_exchange is not None else ev.ts_capture))
                tally.trade_px.append(float(ev.price))
                tally.trade_qty.append(float(ev.qty))
            continue
        if not isinstance(ev, BookLevels):
            continue
        if sym is None:
            sym = ev.symbol
        if ev.symbol != sym:
            continue
        if isinstance(ev, BookSnapshot):
            depth = ev.depth or depth
            book = L2Book(depth)
            for p, q in ev.bids:
                book.apply_bid(p, q)
            for p, q in ev.asks:
                book.apply_ask(p, q)
            book.truncate()
            segment += 1
            continue
        if book is None or ev.ts_exchange is None:
            continue
        n_msgs += 1
        top = book.top()
        tally.ts.append(int(ev.ts_exchange))
        tally.seg.append(segment)
        if top is not None and tally.first_mid is None:
            tally.first_mid = (top[0] + top[2]) / 2
        spread_before = (top[2] - top[0]) if top else None
        kind_set = False
        for bid, levels in ((True, ev.bids), (False, ev.asks)):
            if not levels:
                continue
            keys = _side_keys(book, bid)
            qty = book.bid_qty if bid else book.ask_qty
            before_best = keys[0] if keys else None
            other_best = top[2] if (top and bid) else (top[0] if top else None)
            ops: list[tuple[str, int, float, float]] = []
            for p, q in levels:
                tally.prices.add(p)
                key = -p if bid else p
                if q == 0:
                    rank = keys.index(p) if p in keys else -1
                    ops.append(("D", rank, p, q))
                elif key in qty:
                    rank = keys.index(p) if p in keys else -1
                    old = qty[key]
                    if old > 0 and q > 0:
                        tally.log_steps.append(math.log(q / old))
                    ops.append(("M", rank, p, q))
                else:
                    ops.append(("I", 0, p, q))
                if q:
                    tally.update_sizes.append(q)
                (book.apply_bid if bid else book.apply_ask)(p, q)
            book.truncate()
            after = _side_keys(book, bid)
            after_best = after[0] if after else None
            if kind_set:
                continue
            kind_set = True
            better = (lambda a, b: a > b) if bid else (lambda a, b: a < b)
            if before_best is not None and after_best is not None and after_best != before_best:
                if better(after_best, before_best):
                    tally.kinds["close"] += 1
                else:
                    tally.kinds["retreat"] += 1
                    removed = sum(1 for o in ops if o[0] == "D" and 0 <= o[1] <= 3)
                    tally.retreat_levels.append(max(1, removed))
                    tally.retreats_at.append((int(ev.ts_exchange), before_best))
                continue
            deletes = [o for o in ops if o[0] == "D" and o[1] >= 1]
            mods = [o for o in ops if o[0] == "M"]
            if deletes:
                tally.kinds["delete"] += 1
                tally.delete_ranks[min(deletes[0][1], _RANKS) - 1] += 1
            elif mods and mods[0][1] == 0:
                tally.kinds["top_qty"] += 1
                tally.top_changes += 1
                tally.size_msgs += 1
                tally.double += len(mods) > 1
                if top is not None and other_best is not None:
                    mine = top[1] if bid else top[3]
                    theirs = top[3] if bid else top[1]
                    tally.busy_side += mine >= theirs
            elif mods and mods[0][1] >= 1:
                tally.kinds["level_qty"] += 1
                tally.size_msgs += 1
                tally.double += len(mods) > 1
                tally.qty_ranks[min(mods[0][1], _RANKS) - 1] += 1
            else:
                tally.kinds["insert"] += 1
        after_top = book.top()
        if spread_before is not None and after_top is not None:
            tally.top_sizes.extend((after_top[1], after_top[3]))
            b = _side_keys(book, True)[:10]
            a = _side_keys(book, False)[:10]
            tally.gaps.extend(np.abs(np.diff(b)).tolist() + np.diff(a).tolist())
            tally.spreads.append((spread_before, after_top[2] - after_top[0]))
    return tally, sym or "", n_msgs


# ----------------------------------------------------------------------------- the fit


@dataclass
class FitResult:
    params: MarketParams
    notes: dict[str, str]
    source: str
    symbol: str
    updates: int
    trades: int
    tick_size: float


def fit_events(events: Iterable[Event], *, source: str = "events", symbol: Optional[str] = None,
               tick_size: Optional[float] = None, base: Optional[MarketParams] = None) -> FitResult:
    """Fit :class:`MarketParams` to a capture's canonical events (see the module docstring)."""
    from mm_core.realism import infer_tick_size

    base = base or MarketParams()
    t, sym, n = _classify(events, symbol)
    if n < MIN_UPDATES:
        raise FitError(f"{source}: {n} book updates with exchange timestamps; need at least {MIN_UPDATES} to fit")
    tick = float(tick_size) if tick_size else infer_tick_size(t.prices)
    notes: dict[str, str] = {}
    v: dict[str, Any] = {}

    ts = np.array(t.ts, np.int64)
    seg = np.array(t.seg, np.int64)
    order = np.lexsort((ts, seg))
    t_s = (ts[order] - ts[order][0]) / 1e9
    rate, branching, decay = fit_hawkes(t_s, seg[order])
    v["updates_per_second"] = rate
    v["burst_branching"] = branching
    v["burst_decay_per_s"] = decay
    notes["updates_per_second"] = "fitted: update messages / observed time"
    notes["burst_branching"] = "fitted: Hawkes maximum likelihood"
    notes["burst_decay_per_s"] = "fitted: Hawkes maximum likelihood"

    k = t.kinds

    def shrunk(name: str, hits: float, trials: float, prior: float, lo: float = 0.0, hi: float = 1.0) -> None:
        """A share estimated from few events leans on the base profile: (hits + prior*base) / (trials + prior)."""
        v[name] = min(hi, max(lo, (hits + prior * getattr(base, name)) / (trials + prior)))
        notes[name] = f"fitted: {hits:g} of {trials:g}, shrunk toward the base with {prior:g} pseudo-observations"

    shrunk("move_share", k["retreat"], n, 500.0, 1e-4, 0.45)
    wide = [(b, a) for b, a in t.spreads if b > 1.5 * tick]
    narrowed = [(b, a) for b, a in wide if a < b - tick / 2]
    shrunk("close_share", len(narrowed), len(wide), 20.0, 0.05)
    shrunk("close_to_one_tick", sum(a < 1.5 * tick for _, a in narrowed), len(narrowed), 20.0)
    n_trades = len(t.trade_ts)
    trade_rate = 0.0
    if n_trades >= 2:
        tt = np.sort(np.array(t.trade_ts, np.int64))
        span = (tt[-1] - tt[0]) / 1e9
        trade_rate = (n_trades - 1) / span if span > 0 else 0.0
    rest = {name: k[name] for name in ("top_qty", "level_qty", "insert", "delete")}
    if trade_rate > 0:  # the model adds trade messages (best-size reductions) on top of the mix
        rest["top_qty"] = max(0, rest["top_qty"] - int(trade_rate / rate * n))
    total = sum(rest.values()) or 1
    for name in rest:
        v[f"{name}_share"] = rest[name] / total
        notes[f"{name}_share"] = "fitted: share of messages behind the best"
    v["qty_rank_weights"] = tuple(float(x) + 1.0 for x in t.qty_ranks)
    v["delete_rank_weights"] = tuple(float(x) + 1.0 for x in t.delete_ranks)
    notes["qty_rank_weights"] = "fitted: counts per rank 1..9, +1 each"
    notes["delete_rank_weights"] = "fitted: counts per rank 1..9, +1 each"
    shrunk("double_change_share", t.double, t.size_msgs, 20.0)
    shrunk("busy_side_share", t.busy_side, t.top_changes, 20.0)
    if t.gaps and tick > 0:
        v["level_gap_ticks"] = max(1.0, float(np.mean(t.gaps)) / tick)
        notes["level_gap_ticks"] = "fitted: mean spacing of the top-10 levels"
    mix = fit_lognormal_mixture(np.array(t.update_sizes))
    sm, ss, lm, ls, w = mix
    v.update(small_qty_median=min(max(sm, 1e-4), 50.0), small_qty_sigma=min(ss, 4.0),
             large_qty_median=min(max(lm, 1e-4), 50.0), large_qty_sigma=min(ls, 4.0), large_qty_share=w)
    for name in ("small_qty_median", "small_qty_sigma", "large_qty_median", "large_qty_sigma", "large_qty_share"):
        notes[name] = "fitted: two-lognormal mixture (EM) of update sizes"
    top_median = float(np.median(t.top_sizes)) if t.top_sizes else None
    if len(t.log_steps) > 20:
        steps = np.array(t.log_steps)
        v["requote_sigma"] = float(min(4.0, np.std(steps[np.abs(steps) < 3.0])))
        notes["requote_sigma"] = "fitted: log-size steps of re-sized levels"
    if t.retreat_levels:
        v["sweep_levels_mean"] = max(1.0, float(np.mean(t.retreat_levels)))
        notes["sweep_levels_mean"] = "fitted"
    if n_trades >= 20:
        v["trades_per_second"] = min(trade_rate, 0.5 * rate)
        lq = np.log(np.array(t.trade_qty)[np.array(t.trade_qty) > 0])
        v["trade_qty_median"] = float(min(50.0, max(1e-4, math.exp(np.median(lq)))))
        v["trade_qty_sigma"] = float(min(4.0, np.std(lq)))
        notes["trades_per_second"] = "fitted"
        notes["trade_qty_median"] = "fitted: lognormal"
        notes["trade_qty_sigma"] = "fitted: lognormal"
        if t.retreats_at:
            tts = np.array(t.trade_ts, np.int64)
            tpx = np.array(t.trade_px)
            swept = 0
            for ts_r, price in t.retreats_at:
                lo, hi = np.searchsorted(tts, [ts_r - 5_000_000, ts_r + 5_000_000])
                swept += bool(np.any(np.abs(tpx[lo:hi] - price) < tick / 2))
            v["sweep_share"] = swept / len(t.retreats_at)
            notes["sweep_share"] = "fitted: retreats with a trade at the removed price within 5 ms"
    else:
        notes["trades_per_second"] = f"base profile: the capture has {n_trades} trades"
    if t.first_mid is not None and tick > 0:
        start = t.first_mid
        v.update(start_price=round(start, 1), price_floor=round(0.75 * start, 1), price_cap=round(1.25 * start, 1))
        notes["start_price"] = "the capture's first mid (the simulator's grid is 0.1)"
    for name in ("spells_per_hour", "spell_mean_s", "spell_rate_factor", "spell_move_share", "spell_close_share",
                 "spell_sweep_levels_mean", "imbalance_weight", "deep_updates_per_second"):
        notes[name] = "base profile (not estimated from a capture)"
    try:
        params = dataclasses.replace(base, **v)
    except ValueError as exc:
        raise FitError(f"{source}: the fitted values are out of the model's range: {exc}") from None
    if top_median is not None:
        params = dataclasses.replace(params, top_large_share=_calibrate_top_share(params, top_median))
        notes["top_large_share"] = f"fitted by simulation: best-level size median {top_median:.4g}"
    return FitResult(params, notes, source, sym, n, n_trades, tick)


def _simulated_top_median(params: MarketParams, seconds: float = 1800.0, seed: int = 0) -> float:
    from mm_core.simexchange.market import BookChange, MarketModel

    m = MarketModel(seed, params=params)
    book = m.book
    sizes: list[int] = []
    for ev in m.events(seconds):
        if type(ev) is BookChange and ev.kind != "deep":
            sizes.append(book.bids.qty[book.bids.keys[0]])
            sizes.append(book.asks.qty[book.asks.keys[0]])
    return float(np.median(sizes)) / 1e8


def _calibrate_top_share(params: MarketParams, target: float) -> float:
    """The best level's size is shaped by trades and re-quotes too, so the share of large best
    levels that gives the capture's median is found by simulation (bisection: the median grows
    with the share)."""
    lo, hi = 0.0, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        if _simulated_top_median(dataclasses.replace(params, top_large_share=mid)) < target:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 4)


def capture_events(path: str | Path, symbol: Optional[str] = None) -> Iterable[Event]:
    """Canonical events of a run directory or a recording (the sources ``mm realism`` reads)."""
    from mm_core.realism import events_from_path

    return events_from_path(path, symbol)


# ----------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "fit-sim",
        help="fit the simulator's market to a capture; write a profile; print capture vs fitted simulator",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example: mm fit-sim runs/day1 --out config/sim-profiles/btceur.toml && "
               "mm simexchange --profile config/sim-profiles/btceur.toml",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_fit_arguments(p, positional=True)
    p.set_defaults(func=run)


def add_fit_arguments(p: argparse.ArgumentParser, positional: bool) -> None:
    if positional:
        p.add_argument("path", metavar="RUN_DIR", help="run directory or recording file to fit")
    p.add_argument("--out", type=Path, help="profile file to write (default: fitted-<name>.toml in the current directory)")
    p.add_argument("--base", default="default", help="profile whose values the fit does not estimate")
    p.add_argument("--symbol", help="symbol to fit (default: the busiest)")
    p.add_argument("--sim-seconds", type=float, default=3600.0, help="simulated seconds for the realism table")
    p.add_argument("--seed", type=int, default=0, help="seed of that simulation")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")


def fit_and_report(path: str, *, out: Optional[Path], base: str = "default", symbol: Optional[str] = None,
                   sim_seconds: float = 3600.0, seed: int = 0, as_json: bool = False,
                   stream: Any = None) -> tuple[int, Path]:
    """Fit, write the profile, print the realism table (to ``stream``, default stdout); returns
    (exit code, profile path)."""
    import orjson

    from mm_core.realism import compare, format_table, measure_events, measure_path, outside
    from mm_core.research.sim_data import sim_events

    if not 0 < sim_seconds <= 7 * 86_400:
        raise FitError("--sim-seconds must be in (0, 604800]")
    base_params = load_profile(base).params
    result = fit_events(capture_events(path, symbol), source=str(path), symbol=symbol, base=base_params)
    src = Path(path)
    out = out or Path(f"fitted-{src.stem if src.is_file() else src.resolve().name}.toml")
    meta = {"name": out.stem, "description": f"fitted to {result.symbol} from {path}",
            "source": f"mm fit-sim {path} ({result.updates} updates, {result.trades} trades)"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profile_toml(result.params, meta, result.notes), encoding="utf-8")
    captured = measure_path(path, symbol=symbol)
    simulated = measure_events(sim_events(sim_seconds, seed, True, profile=result.params),
                               source=f"fitted profile {out}, {sim_seconds:g} s, seed {seed}")
    verdicts = compare(captured, simulated)
    bad = outside(verdicts)
    stream = stream or sys.stdout
    if as_json:
        stream.write(orjson.dumps({
            "profile": str(out), "params": dataclasses.asdict(result.params), "notes": result.notes,
            "capture": captured.to_dict(), "simulated": simulated.to_dict(),
            "rows": [r.to_dict() for r in verdicts], "outside": bad, "pass": not bad,
        }, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
    else:
        stream.write(f"wrote {out}  (use: mm simexchange --profile {out})\n\n")
        stream.write(format_table(captured, simulated, ("capture", "fitted")))
    return (1 if bad else 0), out


def run(args: argparse.Namespace) -> int:
    """``mm fit-sim``: 0 = profile written and every comparable row within tolerance; 1 = written
    but some row outside tolerance (listed); 2 = could not fit."""
    from mm_core.realism import RealismInputError

    try:
        code, _ = fit_and_report(args.path, out=args.out, base=args.base, symbol=args.symbol,
                                 sim_seconds=args.sim_seconds, seed=args.seed, as_json=args.json)
    except (FitError, ProfileError, RealismInputError, OSError) as exc:
        print(f"mm fit-sim: {exc}", file=sys.stderr)
        return 2
    return code
