"""``mm calibrate``: the fill-intensity law ``lambda(delta) = A exp(-kappa delta)`` and the volatility
``sigma`` the model-based strategies (``avellaneda-stoikov``, ``glft``) need, from captured data.

Intensity. A resting quote at distance ``delta`` from the mid is filled when a market order reaches
that deep, so ``lambda(delta)`` is the rate (per second) of market orders whose deepest print is at
least ``delta`` from the mid they met. From the captured trades: prints with the same timestamp and
taker side are one market order (a sweep prints once per level); its depth is
``side * (deepest price - mid)`` with the mid of the last book state *before* the order's timestamp.
Depths live on a lattice (prices on the tick grid, the mid on half ticks), so ``lambda`` is counted
exactly at the lattice points ``delta_k`` from the smallest observed depth up to the deepest point
still reached by ``min_share`` of the orders (default 1 %) and by at least ``min_bucket`` orders:
``lambda(delta_k) = #{depth >= delta_k} / T``. The share bound keeps the fit on the depths a quote
can live at (one filled by fewer than 1 in 100 market orders hardly matters to the decision) and
keeps it stable as data accumulates -- with a fixed count bound, a day's rare spread blow-outs
would let the far tail dominate a longer capture. The fit is
least squares of ``log lambda(delta_k) = log A - kappa * delta_k`` weighted by the counts (the
Poisson variance of ``log N`` is ``1/N``); R^2 is the weighted one. The points are cumulative
counts and so correlated: plain regression standard errors would understate the uncertainty, so
the standard errors are from a Poisson bootstrap of the per-lattice counts (seeded, deterministic).
Orders printing on the wrong side of the mid (the book moved under them) are counted and left out.

Volatility. ``sigma`` (price units per sqrt(second)) is the research features' realised volatility
(:mod:`mm_core.research.features`, ``rv_{w}s``: ``1e4 * sqrt(sum of squared log mid changes)`` over
``w`` seconds) on non-overlapping ``w``-second windows: ``sigma_bp = sqrt(mean(rv^2) / w)`` in bp per
sqrt(second), ``sigma = sqrt(mean((rv * mid)^2) / w) * 1e-4`` in price units.

Data: ``RUN_DIR`` (a collector run, Parquet), ``--recording FILE`` (a raw feed through the adapter)
or ``--sim-seconds N --seed S`` (the simulator, offline). Output: a JSON file with ``A``, ``kappa``,
``sigma``, their units, the fit quality and the data window; the strategies read it
(``--calibration params.json`` or ``[strategy] calibration``).

Exit status: 0 = written, 2 = unusable input (too few trades, no book, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # heavy imports only when the command runs
    from mm_core.research.book_frames import BookFrames

FORMAT = "mm_core.calibration/1"
DEFAULT_MIN_TRADES = 200
DEFAULT_MIN_BUCKET = 10
DEFAULT_MIN_SHARE = 0.01
DEFAULT_SIGMA_WINDOW_S = 30.0
DEFAULT_BOOTSTRAP = 400
UNITS = {
    "A": "market orders per second reaching the mid (delta = 0)",
    "kappa": "1 / price units (1/EUR for BTC/EUR)",
    "sigma": "price units per sqrt(second) (EUR/sqrt(s))",
    "sigma_bp": "basis points per sqrt(second)",
    "delta": "price units from the mid",
}


class CalibrationError(ValueError):
    """Data that cannot give a calibration; the message says why and what to do."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class IntensityFit:
    A: float
    kappa: float
    se_A: float
    se_log_A: float
    se_kappa: float
    r2: float
    n_orders: int  # market orders (arrivals) used
    n_buckets: int  # lattice points in the fit
    delta_min: float
    delta_max: float
    lattice: float
    duration_s: float
    min_share: float = DEFAULT_MIN_SHARE
    min_bucket: int = DEFAULT_MIN_BUCKET
    method: str = "weighted least squares of log lambda on delta; Poisson-bootstrap standard errors"
    points: tuple[tuple[float, float], ...] = field(default=(), repr=False)  # (delta, lambda per s)

    def predict(self, delta: np.ndarray | float) -> np.ndarray | float:
        return self.A * np.exp(-self.kappa * np.asarray(delta))


@dataclass(frozen=True)
class SigmaEstimate:
    sigma: float  # price units per sqrt(s)
    sigma_bp: float  # bp per sqrt(s)
    window_s: float
    n_windows: int
    mid_mean: float
    sigma_bp_p10: float
    sigma_bp_p50: float
    sigma_bp_p90: float


@dataclass(frozen=True)
class Calibration:
    fit: IntensityFit
    vol: SigmaEstimate
    exchange: str
    symbol: str
    source: str
    ts_from: int
    ts_to: int
    tick_size: float
    n_trades: int
    n_orders_total: int
    n_orders_inside_mid: int
    clock: str

    @property
    def A(self) -> float:
        return self.fit.A

    @property
    def kappa(self) -> float:
        return self.fit.kappa

    @property
    def sigma(self) -> float:
        return self.vol.sigma

    def to_dict(self) -> dict[str, Any]:
        fit = asdict(self.fit)
        fit["points"] = [{"delta": d, "lambda": lam} for d, lam in self.fit.points]
        for k in ("A", "kappa"):
            fit.pop(k)
        return {
            "format": FORMAT,
            "A": self.fit.A, "kappa": self.fit.kappa, "sigma": self.vol.sigma,
            "units": UNITS,
            "exchange": self.exchange, "symbol": self.symbol, "source": self.source, "clock": self.clock,
            "window": {"from": _iso(self.ts_from), "to": _iso(self.ts_to), "from_ns": self.ts_from,
                       "to_ns": self.ts_to, "seconds": (self.ts_to - self.ts_from) / 1e9},
            "tick_size": self.tick_size,
            "trades": {"prints": self.n_trades, "market_orders": self.n_orders_total,
                       "inside_mid_dropped": self.n_orders_inside_mid},
            "fit": fit,
            "volatility": asdict(self.vol),
        }


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ----------------------------------------------------------------------------- the fit


def market_orders(book_ts: np.ndarray, mid: np.ndarray, trade_ts: np.ndarray, trade_price: np.ndarray,
                  trade_sign: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``(ts, depth, n_inside)`` of the market orders behind the trades (see module docstring).

    ``book_ts`` non-decreasing, ``trade_ts`` sorted; orders without a mid before them are dropped,
    orders that printed on the wrong side of the mid are counted in ``n_inside`` and dropped.
    """
    t = np.asarray(trade_ts, np.int64)
    if t.size == 0:
        return np.empty(0, np.int64), np.empty(0), 0
    sign = np.asarray(trade_sign, np.float64)
    new = np.ones(t.size, bool)
    new[1:] = (t[1:] != t[:-1]) | (sign[1:] != sign[:-1])
    start = np.flatnonzero(new)
    row = np.searchsorted(np.asarray(book_ts, np.int64), t[start], side="left") - 1
    m = np.where(row >= 0, np.asarray(mid)[np.maximum(row, 0)], np.nan)
    signed = sign * np.asarray(trade_price, np.float64)
    deepest = np.maximum.reduceat(signed, start)  # max of side * price = the deepest print
    depth = deepest - sign[start] * m
    ok = np.isfinite(depth)
    inside = ok & (depth < 0)
    keep = ok & ~inside
    return t[start][keep], depth[keep], int(inside.sum())


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares ``y = a + b x``: ``(a, b, weighted R^2)``."""
    sw = w.sum()
    xm = (w * x).sum() / sw
    ym = (w * y).sum() / sw
    sxx = (w * (x - xm) ** 2).sum()
    b = (w * (x - xm) * (y - ym)).sum() / sxx
    a = ym - b * xm
    ss_res = (w * (y - a - b * x) ** 2).sum()
    ss_tot = (w * (y - ym) ** 2).sum()
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return float(a), float(b), float(r2)


def fit_intensity(depth: np.ndarray, duration_s: float, lattice: float, *, min_bucket: int = DEFAULT_MIN_BUCKET,
                  min_share: float = DEFAULT_MIN_SHARE, min_orders: int = DEFAULT_MIN_TRADES,
                  delta_max: Optional[float] = None,
                  n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> IntensityFit:
    """Fit ``lambda(delta) = A exp(-kappa delta)`` to market-order depths (see module docstring)."""
    d = np.asarray(depth, np.float64)
    d = d[np.isfinite(d) & (d >= 0)]
    if not (duration_s > 0):
        raise CalibrationError("the data covers no time (duration 0)")
    if not (lattice > 0):
        raise CalibrationError(f"lattice must be > 0 (half a tick), got {lattice}")
    if d.size < min_orders:
        raise CalibrationError(f"only {d.size} market orders in {duration_s / 3600:.2f} h; the intensity fit needs "
                               f"at least {min_orders} (capture longer, or lower --min-trades)")
    k = np.floor(d / lattice + 1e-6).astype(np.int64)
    k0 = int(k.min())
    counts = np.bincount(k - k0).astype(np.float64)  # per lattice point, from k0 up
    exceed = np.cumsum(counts[::-1])[::-1]  # N(depth >= delta_k)
    use = (exceed >= min_bucket) & (exceed >= min_share * exceed[0])
    if delta_max is not None:
        use &= (k0 + np.arange(exceed.size)) * lattice <= delta_max + 1e-9 * lattice
    last = int(np.flatnonzero(use).max()) + 1 if use.any() else 0
    use[:last] = True  # contiguous from the first point (an empty lattice point is still a point)
    if last < 3:
        raise CalibrationError(f"market orders reach only {last} distinct depth(s) with >= {min_bucket} orders "
                               f"and >= {min_share:.3g} of all orders each; the fit needs 3 (capture longer, or lower "
                               "--min-bucket-trades / --min-share)")
    kk = k0 + np.arange(last)
    x = kk * lattice
    n = exceed[:last]
    y = np.log(n / duration_s)
    a, b, r2 = _wls(x, y, n)
    # Poisson bootstrap of the per-lattice counts (beyond the fit range they only feed the tail sum)
    rng = np.random.default_rng(seed)
    la, kap = [], []
    for _ in range(int(n_boot)):
        c = rng.poisson(counts).astype(np.float64)
        e = np.cumsum(c[::-1])[::-1][:last]
        okb = e > 0
        if okb.sum() < 3:
            continue
        ab, bb, _ = _wls(x[okb], np.log(e[okb] / duration_s), e[okb])
        la.append(ab)
        kap.append(-bb)
    se_log_a = float(np.std(la, ddof=1)) if len(la) > 1 else math.nan
    se_kappa = float(np.std(kap, ddof=1)) if len(kap) > 1 else math.nan
    A = math.exp(a)
    se_A = float(np.std(np.exp(la), ddof=1)) if len(la) > 1 else math.nan
    return IntensityFit(A=A, kappa=-b, se_A=se_A, se_log_A=se_log_a, se_kappa=se_kappa, r2=r2,
                        n_orders=int(d.size), n_buckets=int(last), delta_min=float(x[0]), delta_max=float(x[-1]),
                        lattice=float(lattice), duration_s=float(duration_s), min_share=float(min_share),
                        min_bucket=int(min_bucket), points=tuple((float(xi), float(ni / duration_s)) for xi, ni in zip(x, n)))


def realised_sigma(fr: "BookFrames", window_s: float = DEFAULT_SIGMA_WINDOW_S) -> SigmaEstimate:
    """``sigma`` from the research features' realised vol on non-overlapping windows."""
    from mm_core.research.features import grid_features

    if not window_s > 0:
        raise CalibrationError("--sigma-window-s must be > 0")
    step_ms = int(round(window_s * 1000))
    g = grid_features(fr, step_ms=step_ms, rv_windows=(window_s,), tfi_windows=())
    if g.height < 2:
        raise CalibrationError(f"fewer than two {window_s:g}-second windows of book data: cannot estimate sigma")
    name = f"rv_{window_s:g}s"
    rv = g[name].to_numpy()[1:]  # the first grid point's window starts before the data
    mid = g["mid"].to_numpy()[1:]
    ok = np.isfinite(rv) & np.isfinite(mid) & (mid > 0)
    if ok.sum() < 2:
        raise CalibrationError("no usable realised-vol windows (empty or crossed book)")
    rv, mid = rv[ok], mid[ok]
    per_bp = rv / math.sqrt(window_s)
    sigma_bp = math.sqrt(float(np.mean(rv * rv)) / window_s)
    sigma = math.sqrt(float(np.mean((rv * mid) ** 2)) / window_s) * 1e-4
    p10, p50, p90 = (float(v) for v in np.percentile(per_bp, [10, 50, 90]))
    return SigmaEstimate(sigma=sigma, sigma_bp=sigma_bp, window_s=float(window_s), n_windows=int(ok.sum()),
                         mid_mean=float(mid.mean()), sigma_bp_p10=p10, sigma_bp_p50=p50, sigma_bp_p90=p90)


def calibrate_frames(fr: "BookFrames", *, min_trades: int = DEFAULT_MIN_TRADES, min_bucket: int = DEFAULT_MIN_BUCKET,
                     min_share: float = DEFAULT_MIN_SHARE, delta_max: Optional[float] = None,
                     sigma_window_s: float = DEFAULT_SIGMA_WINDOW_S,
                     n_boot: int = DEFAULT_BOOTSTRAP) -> Calibration:
    """A, kappa and sigma from one symbol's book and trades."""
    valid = np.isfinite(fr.bid) & np.isfinite(fr.ask) & (fr.ask > fr.bid)
    if not valid.any():
        raise CalibrationError(f"{fr.source or 'input'}: the book never has both sides")
    mid = np.where(valid, 0.5 * (fr.bid + fr.ask), np.nan)
    t_from = int(fr.ts[np.flatnonzero(valid)[0]])
    t_to = int(max(fr.ts[-1], fr.trade_ts[-1] if fr.trade_ts.size else fr.ts[-1]))
    ts, depth, inside = market_orders(fr.ts, mid, fr.trade_ts, fr.trade_price, fr.trade_sign)
    duration = (t_to - t_from) / 1e9
    if fr.trade_ts.size < min_trades:
        raise CalibrationError(f"{fr.source or 'input'}: only {fr.trade_ts.size} trades in {duration / 3600:.2f} h; "
                               f"calibration needs at least {min_trades} (capture longer, or lower --min-trades)")
    fit = fit_intensity(depth, duration, fr.tick_size / 2.0, min_bucket=min_bucket, min_share=min_share,
                        min_orders=min_trades,
                        delta_max=delta_max, n_boot=n_boot)
    vol = realised_sigma(fr, sigma_window_s)
    return Calibration(fit=fit, vol=vol, exchange=fr.exchange, symbol=fr.symbol, source=fr.source, ts_from=t_from,
                       ts_to=t_to, tick_size=float(fr.tick_size), n_trades=int(fr.trade_ts.size),
                       n_orders_total=int(ts.size + inside), n_orders_inside_mid=inside, clock=fr.clock)


# ----------------------------------------------------------------------------- reading a calibration


def load_calibration(path: Path | str) -> dict[str, Any]:
    """A calibration file as a dict (``ValueError`` naming the file when unusable)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"calibration file {p} not found (write one with `mm calibrate RUN_DIR --out {p}`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"calibration file {p}: unreadable: {exc}") from None
    calibration_values(data, ("A", "kappa", "sigma"), where=str(p))
    return data


def calibration_values(cal: Mapping[str, Any], keys: Sequence[str], where: str = "calibration") \
        -> tuple[dict[str, float], str]:
    """``({key: value}, label)`` from a calibration dict; ``ValueError`` if a key is missing or not > 0."""
    if not isinstance(cal, Mapping):
        raise ValueError(f"{where}: not a calibration object")
    fmt = cal.get("format")
    if fmt is not None and fmt != FORMAT:
        raise ValueError(f"{where}: format {fmt!r} is not {FORMAT!r}; re-run `mm calibrate`")
    out: dict[str, float] = {}
    for k in keys:
        v = cal.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
                or (v == 0 and k != "sigma"):
            raise ValueError(f"{where}: {k!r} missing or not a positive number (got {v!r}); re-run `mm calibrate`")
        out[k] = float(v)
    win = cal.get("window") or {}
    label = f"{cal.get('source') or where} [{win.get('from', '?')} .. {win.get('to', '?')}]"
    return out, label


# ----------------------------------------------------------------------------- command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``mm calibrate`` to the ``mm`` command."""
    p = subparsers.add_parser(
        "calibrate", help="fit fill intensity A, kappa and volatility sigma for the strategies",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="collector run directory (or its parquet/ folder)")
    p.add_argument("--recording", type=Path, metavar="FILE", help="a recorded raw feed instead (through the adapter)")
    p.add_argument("--sim-seconds", type=float, metavar="N", help="calibrate on N seconds of simulator data instead")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    p.add_argument("--out", type=Path, default=Path("params.json"), help="output JSON (default params.json)")
    p.add_argument("--symbol", help="symbol (default: the one with the most book data)")
    p.add_argument("--clock", choices=("exchange", "capture"), default="exchange",
                   help="event time: exchange (default) or capture stamps")
    p.add_argument("--tick-size", type=float, help="price tick (default: inferred from the book prices)")
    p.add_argument("--min-trades", type=int, default=DEFAULT_MIN_TRADES,
                   help=f"refuse with fewer trades / market orders (default {DEFAULT_MIN_TRADES})")
    p.add_argument("--min-bucket-trades", type=int, default=DEFAULT_MIN_BUCKET,
                   help=f"deepest fitted depth still reached by this many orders (default {DEFAULT_MIN_BUCKET})")
    p.add_argument("--min-share", type=float, default=DEFAULT_MIN_SHARE,
                   help=f"deepest fitted depth still reached by this share of all market orders (default {DEFAULT_MIN_SHARE:g})")
    p.add_argument("--delta-max", type=float, metavar="PRICE", help="fit depths up to this distance from the mid only")
    p.add_argument("--sigma-window-s", type=float, default=DEFAULT_SIGMA_WINDOW_S,
                   help=f"realised-vol window in seconds (default {DEFAULT_SIGMA_WINDOW_S:g})")
    p.add_argument("--json", action="store_true", help="print the calibration as one JSON object")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    sys.stderr.write(f"[calibrate] {msg}\n")
    sys.stderr.flush()


def _frames(args: argparse.Namespace, say: Callable[[str], None]) -> "BookFrames":
    from mm_core.research.book_frames import columns_from_parquet, columns_from_recording, reconstruct

    sources = [x for x in (args.run_dir, args.recording, args.sim_seconds) if x is not None]
    if len(sources) != 1:
        raise CalibrationError("give exactly one of RUN_DIR, --recording FILE or --sim-seconds N")
    tick = args.tick_size
    if args.sim_seconds is not None:
        from mm_core.research.sim_data import SIM_TICK_SIZE, sim_columns

        if not args.sim_seconds > 0:
            raise CalibrationError("--sim-seconds must be > 0")
        say(f"simulating {args.sim_seconds:g} s (seed {args.seed})")
        cols = sim_columns(args.sim_seconds, args.seed)
        tick = tick or SIM_TICK_SIZE
    elif args.recording is not None:
        say(f"replaying {args.recording}")
        cols = columns_from_recording(args.recording, symbol=args.symbol, clock=args.clock)
    else:
        if not Path(args.run_dir).exists():
            raise CalibrationError(f"{args.run_dir}: no such run directory")
        say(f"reading {args.run_dir}")
        cols = columns_from_parquet(args.run_dir, symbol=args.symbol, clock=args.clock)
    say(f"{cols.n_book:,} book messages, {cols.n_trades:,} trades: rebuilding the book")
    return reconstruct(cols, tick_size=tick)


def format_text(cal: Calibration, out: Path) -> str:
    f, v = cal.fit, cal.vol
    hours = (cal.ts_to - cal.ts_from) / 3.6e12
    lines = [
        f"{cal.exchange} {cal.symbol}: {hours:.2f} h, {cal.n_trades:,} trades = {cal.n_orders_total:,} market orders "
        f"({cal.n_orders_inside_mid:,} printed inside the mid, left out), tick {cal.tick_size:g}",
        f"A     = {f.A:.6g} /s      (se {f.se_A:.3g})",
        f"kappa = {f.kappa:.6g} /price (se {f.se_kappa:.3g})",
        f"  fit: R^2 {f.r2:.4f} (weighted), {f.n_orders:,} orders, {f.n_buckets} depths "
        f"{f.delta_min:g}..{f.delta_max:g} (lattice {f.lattice:g}; depths reached by >= {f.min_share:g} of the orders)",
        f"sigma = {v.sigma:.6g} /sqrt(s) = {v.sigma_bp:.4g} bp/sqrt(s) over {v.n_windows:,} windows of {v.window_s:g} s "
        f"(per-window p10/p50/p90 {v.sigma_bp_p10:.3g}/{v.sigma_bp_p50:.3g}/{v.sigma_bp_p90:.3g} bp/sqrt(s))",
        f"written to {out}",
    ]
    if f.r2 < 0.9:
        lines.insert(4, f"  warning: R^2 {f.r2:.3f}: the exponential law fits these depths poorly; check --delta-max")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """``mm calibrate``: 0 = written, 2 = unusable input."""
    from mm_core.research.book_frames import ResearchDataError
    from mm_core.store.atomic import write_atomic

    t0 = time.perf_counter()
    try:
        if args.min_trades < 3 or args.min_bucket_trades < 1 or not 0.0 <= args.min_share < 1.0:
            raise CalibrationError("need --min-trades >= 3, --min-bucket-trades >= 1 and 0 <= --min-share < 1")
        fr = _frames(args, _say)
        cal = calibrate_frames(fr, min_trades=args.min_trades, min_bucket=args.min_bucket_trades, min_share=args.min_share,
                               delta_max=args.delta_max, sigma_window_s=args.sigma_window_s)
    except (CalibrationError, ResearchDataError, OSError) as exc:
        print(f"mm calibrate: {exc}", file=sys.stderr)
        return 2
    d = cal.to_dict()
    d["seconds_taken"] = round(time.perf_counter() - t0, 3)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out, (json.dumps(d, indent=1) + "\n").encode("utf-8"))
    except OSError as exc:
        print(f"mm calibrate: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(d) + "\n" if args.json else format_text(cal, args.out))
    return 0
