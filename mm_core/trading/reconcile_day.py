"""``mm reconcile-day RUN_DIR``: a session against its backtest over the same market data, order by order.

The first check when live disagrees with the backtest. Two trading run directories
(mm_core/trading/session_dir.py) are compared: the session and a backtest of the same market
data -- by default the session's own replay (:func:`~mm_core.trading.session_dir.replay_backtest`
runs ``mm backtest`` with the ``backtest_args`` the runner recorded: the session's exact strategy
parameters, its measured latency and fee tier, its recorded market data), or ``--against DIR``.

Matching: orders match when they have the same side and price tick and were created within
``match_window_ms`` of each other (in time order, each order at most once). For every matched
pair the fills are compared -- which, when (first fill time within ``time_tol_ms``), how much --
and the PnL parts and markouts of the two runs are set side by side (via :mod:`mm_core.trading.tca`).

Every difference gets one cause:

- ``reject`` / ``rate_limit``: one side's order was rejected (post-only, other) / rate-limited;
- ``path_divergence``: a consequence, not a new cause. Differences come in chains: once one run
  filled where the other did not, positions, open orders and the rate counter differ and later
  decisions differ too. A difference that starts while the positions differ, or within
  ``settle_s`` after the previous difference ended, belongs to the chain of the first one (its
  ``root``); only roots are attributed to the causes below (``root_causes``);
- ``latency``: the two orders were created more than ``latency_tol_ms`` apart, or an unmatched
  order has a same-side counterpart in the window at another price (the strategy saw a different
  book), or one order was cancelled before the other's fill;
- ``missed_fill``: both orders rested at the same price, one filled, the other did not although
  the market *traded through* the price while both rested (any queue model fills then): a fill the
  venue (or the recording) did not deliver;
- ``queue_model``: both rested at the same price, the market only touched it, and one filled (or
  filled more): the queue-position model and the venue disagree;
- ``unexplained``: none of the above.

Writes ``RUN_DIR/reconcile-day.json`` (read by ``mm rollout-check``). Exit codes: 0 = compared,
2 = unreadable input or a session that cannot be replayed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mm_core.trading.session_dir import (RECONCILE_NAME, Session, SessionError, load_market, load_session,
                                         replay_backtest, write_json)

CAUSES = ("reject", "rate_limit", "path_divergence", "latency", "missed_fill", "queue_model", "unexplained")
_MS = 1_000_000


@dataclass(frozen=True)
class ReconcileSettings:
    match_window_ms: float = 500.0
    latency_tol_ms: float = 50.0
    time_tol_ms: float = 250.0
    qty_rel_tol: float = 1e-6
    settle_s: float = 30.0
    examples: int = 50


@dataclass
class _Run:
    """One run's orders with their aggregated fills, as numpy columns."""

    oid: np.ndarray  # object (text ids)
    side: np.ndarray
    tick: np.ndarray
    qty: np.ndarray
    filled: np.ndarray
    result: np.ndarray  # object
    created: np.ndarray  # int64 (local ns)
    done: np.ndarray  # int64, -1 = open
    first_fill: np.ndarray  # int64, -1 = no fill
    n_fills: np.ndarray
    fill_ts: np.ndarray  # all fills, sorted: for positions
    fill_pos: np.ndarray  # position after each of them (leading 0: before the first)
    by_created: np.ndarray  # order indices sorted by creation time


def _run_tables(s: Session) -> _Run:
    if s.orders is None:
        raise SessionError(f"{s.run_dir}: no orders.parquet: orders cannot be matched")
    tick = s.tick_size
    o = s.orders
    oid = np.asarray([str(x) for x in o.column("order_id").to_pylist()], dtype=object)
    created = np.asarray([-1 if v is None else int(v) for v in o.column("created_ts").to_pylist()], np.int64)
    done = np.asarray([-1 if v is None else int(v) for v in o.column("done_ts").to_pylist()], np.int64)
    f = s.fills
    f_oid = [str(x) for x in f.column("order_id").to_pylist()]
    f_ts = f.column("ts").to_numpy().astype(np.int64)
    f_local = np.asarray([t if v is None else int(v) for v, t in zip(f.column("local_ts").to_pylist(), f_ts)], np.int64)
    f_qty = f.column("qty").to_numpy().astype(np.float64)
    f_side = f.column("side").to_numpy().astype(np.float64)
    pos = {k: i for i, k in enumerate(oid)}
    first = np.full(oid.size, -1, np.int64)
    nf = np.zeros(oid.size, np.int64)
    fq = np.zeros(oid.size)
    for k, t, q in zip(f_oid, f_local, f_qty):
        i = pos.get(k)
        if i is None:
            continue
        nf[i] += 1
        fq[i] += q
        if first[i] < 0 or t < first[i]:
            first[i] = t
    filled = np.maximum(o.column("filled").to_numpy().astype(np.float64), fq)
    order = np.argsort(f_local, kind="stable")
    pos = np.concatenate([[0.0], np.cumsum((f_side * f_qty)[order])])
    return _Run(oid, o.column("side").to_numpy().astype(np.int64),
                np.round(o.column("price").to_numpy().astype(np.float64) / tick).astype(np.int64),
                o.column("qty").to_numpy().astype(np.float64), filled,
                np.asarray(o.column("result").to_pylist(), dtype=object), created, done, first, nf,
                f_local[order], pos, np.argsort(created, kind="stable"))


def match_orders(a: _Run, b: _Run, window_ns: int) -> list[tuple[int, int]]:
    """Pairs (index in a, index in b): same side and tick, created within the window, in time order."""
    pairs: list[tuple[int, int]] = []
    groups: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for i in np.argsort(a.created, kind="stable"):
        groups.setdefault((int(a.side[i]), int(a.tick[i])), ([], []))[0].append(int(i))
    for j in np.argsort(b.created, kind="stable"):
        groups.setdefault((int(b.side[j]), int(b.tick[j])), ([], []))[1].append(int(j))
    for ia, jb in groups.values():
        x = y = 0
        while x < len(ia) and y < len(jb):
            ta, tb = a.created[ia[x]], b.created[jb[y]]
            if abs(int(ta) - int(tb)) <= window_ns:
                pairs.append((ia[x], jb[y]))
                x += 1
                y += 1
            elif ta < tb:
                x += 1
            else:
                y += 1
    return pairs


def _position_at(r: _Run, t: int) -> float:
    """Position from the fills reported before ``t``."""
    return float(r.fill_pos[int(np.searchsorted(r.fill_ts, t, side="left"))])


def _created_near(r: _Run, t: int, window_ns: int) -> np.ndarray:
    """Indices of ``r``'s orders created within ``window_ns`` of ``t``."""
    c = r.created[r.by_created]
    lo = int(np.searchsorted(c, t - window_ns, side="left"))
    hi = int(np.searchsorted(c, t + window_ns, side="right"))
    return r.by_created[lo:hi]


def _rejected(result: str) -> Optional[str]:
    r = str(result)
    if "rate" in r:
        return "rate_limit"
    if r.startswith("rejected") or r == "lost":
        return "reject"
    return None


class _TradeThrough:
    """Did the market trade strictly through a price between two times? (taker trades of the data)."""

    def __init__(self, market) -> None:
        from mm_core.backtest.event_arrays import TRADE

        t = market.kind == TRADE
        self.ts = market.exch_ts[t]
        self.tick = market.tick[t]
        self.side = market.side[t]

    def through(self, side: int, tick: int, t0: int, t1: int) -> bool:
        lo, hi = np.searchsorted(self.ts, [t0, t1], side="left")
        if hi <= lo:
            return False
        s, k = self.side[lo:hi], self.tick[lo:hi]
        if side > 0:  # our bid: a taker sell below it
            return bool(np.any((s < 0) & (k < tick)))
        return bool(np.any((s > 0) & (k > tick)))


@dataclass
class ReconcileResult:
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data


def compare(session: Session, backtest: Session, settings: ReconcileSettings = ReconcileSettings(), *,
            with_tca: bool = True) -> ReconcileResult:
    """Order-by-order comparison of ``session`` with ``backtest`` (see the module doc)."""
    a, b = _run_tables(session), _run_tables(backtest)
    market = load_market(session)
    tt = _TradeThrough(market)
    pairs = match_orders(a, b, int(settings.match_window_ms * _MS))
    lat_tol = int(settings.latency_tol_ms * _MS)
    time_tol = int(settings.time_tol_ms * _MS)
    diffs: list[dict[str, Any]] = []
    matched_fills_a = matched_fills_b = 0

    def span(r: _Run, i: Optional[int]) -> tuple[int, int]:
        if i is None:
            return (1 << 62), 0
        ends = [int(r.created[i]), int(r.done[i]), int(r.first_fill[i])]
        return int(r.created[i]), max(ends)

    def diff(kind: str, cause: str, ia: Optional[int], jb: Optional[int], **extra: Any) -> None:
        d: dict[str, Any] = {"kind": kind, "cause": cause}
        for name, r, i in (("session", a, ia), ("backtest", b, jb)):
            if i is not None:
                d[name] = {"order_id": r.oid[i], "side": int(r.side[i]), "tick": int(r.tick[i]),
                           "qty": float(r.qty[i]), "filled": float(r.filled[i]), "result": r.result[i],
                           "created_ts": int(r.created[i]), "done_ts": int(r.done[i]),
                           "first_fill_ts": int(r.first_fill[i])}
        (s0, e0), (s1, e1) = span(a, ia), span(b, jb)
        d["t_ns"], d["t_end_ns"] = min(s0, s1), max(e0, e1)
        d.update(extra)
        diffs.append(d)

    for ia, jb in pairs:
        fa, fb = a.filled[ia] > 0, b.filled[jb] > 0
        ra, rb = _rejected(a.result[ia]), _rejected(b.result[jb])
        if ra != rb:
            diff("result", ra or rb or "unexplained", ia, jb)
            continue
        if not fa and not fb:
            continue
        dt_created = abs(int(a.created[ia]) - int(b.created[jb]))
        if fa and fb:
            qty_same = abs(a.filled[ia] - b.filled[jb]) <= settings.qty_rel_tol * max(a.qty[ia], b.qty[jb])
            dt_fill = abs(int(a.first_fill[ia]) - int(b.first_fill[jb]))
            if qty_same and dt_fill <= time_tol:
                matched_fills_a += int(a.n_fills[ia])
                matched_fills_b += int(b.n_fills[jb])
                continue
            cause = "latency" if dt_created > lat_tol else "queue_model"
            diff("fill_qty" if not qty_same else "fill_time", cause, ia, jb, fill_time_diff_ms=dt_fill / _MS)
            continue
        # one filled, the other did not
        fi, fr, nf_i = (ia, a, jb) if fa else (jb, b, ia)
        nr = b if fa else a
        t_fill = int(fr.first_fill[fi])
        done_other = int(nr.done[nf_i])
        if dt_created > lat_tol or 0 <= done_other < t_fill:
            cause = "latency"  # decided at another time, or cancelled before the fill came
        elif tt.through(int(a.side[ia]), int(a.tick[ia]), max(int(a.created[ia]), int(b.created[jb])), t_fill + 1):
            cause = "missed_fill"
        else:
            cause = "queue_model"
        diff("fill_only_in_session" if fa else "fill_only_in_backtest", cause, ia, jb)

    used_a = {p[0] for p in pairs}
    used_b = {p[1] for p in pairs}
    window = int(settings.match_window_ms * _MS)
    for name, r, other, used in (("session", a, b, used_a), ("backtest", b, a, used_b)):
        for i in range(r.oid.size):
            if i in used:
                continue
            cause = _rejected(r.result[i])
            if cause is None:
                t = int(r.created[i])
                near = _created_near(other, t, window)
                near = near[other.side[near] == r.side[i]]
                rej = [c for c in (_rejected(other.result[k]) for k in near) if c]
                cause = rej[0] if rej else ("latency" if near.size else "unexplained")
            diff(f"order_only_in_{name}", cause, i if name == "session" else None,
                 i if name == "backtest" else None)

    roots = _chain_causes(diffs, a, b, int(settings.settle_s * 1e9))
    n_fa, n_fb = int(a.n_fills.sum()), int(b.n_fills.sum())
    by_cause = Counter(d["cause"] for d in diffs)
    root_causes = Counter(d["cause"] for d in diffs if d["root"] is None)
    fill_diffs = [d for d in diffs if d["kind"].startswith("fill") or
                  (d["kind"].startswith("order_only") and any((d.get(k) or {}).get("filled", 0) > 0
                                                               for k in ("session", "backtest")))]
    out: dict[str, Any] = {
        "session": str(session.run_dir), "session_source": session.source, "backtest": str(backtest.run_dir),
        "settings": vars(settings).copy(),
        "orders": {"session": int(a.oid.size), "backtest": int(b.oid.size), "matched": len(pairs),
                   "session_only": int(a.oid.size - len(pairs)), "backtest_only": int(b.oid.size - len(pairs))},
        "fills": {"session": n_fa, "backtest": n_fb, "matched_session": matched_fills_a,
                  "matched_backtest": matched_fills_b,
                  "fill_match_rate": matched_fills_a / n_fa if n_fa else (1.0 if n_fb == 0 else 0.0),
                  "backtest_fill_match_rate": matched_fills_b / n_fb if n_fb else (1.0 if n_fa == 0 else 0.0)},
        "differences": {"total": len(diffs), "fill_differences": len(fill_diffs), "roots": roots,
                        "by_cause": {c: by_cause.get(c, 0) for c in CAUSES},
                        "root_causes": {c: root_causes.get(c, 0) for c in CAUSES if c != "path_divergence"},
                        "by_kind": dict(Counter(d["kind"] for d in diffs)),
                        "explained_share": (1 - by_cause.get("unexplained", 0) / len(diffs)) if diffs else 1.0},
        "examples": [d for d in diffs if d["root"] is None][: settings.examples],
    }
    if with_tca:
        out.update(_tca_side_by_side(session, backtest))
    return ReconcileResult(out)


def _chain_causes(diffs: list[dict[str, Any]], a: _Run, b: _Run, settle_ns: int) -> int:
    """Mark consequences: a difference that starts while the runs hold different positions, or within
    ``settle_ns`` after an earlier difference ended, is ``path_divergence`` of the chain's first one
    (its root). Differences get ``root`` (None for a root, else the root's index) and ``id``;
    returns the number of roots."""
    diffs.sort(key=lambda d: (d["t_ns"], d["kind"]))
    chain_until = -1
    root: Optional[int] = None
    n_roots = 0
    for k, d in enumerate(diffs):
        d["id"] = k
        t = d["t_ns"]
        pos_differs = abs(_position_at(a, t) - _position_at(b, t)) > 1e-12
        if root is not None and (t <= chain_until or pos_differs):
            d["root_cause_if_alone"] = d["cause"]
            d["cause"] = "path_divergence"
            d["root"] = root
        else:
            root = k
            d["root"] = None
            n_roots += 1
        chain_until = max(chain_until if d["root"] is not None else -1, d["t_end_ns"] + settle_ns)
    return n_roots


def _tca_side_by_side(session: Session, backtest: Session) -> dict[str, Any]:
    from mm_core.trading.tca import HORIZONS_S, analyse, hkey

    ra, rb = analyse([session]).summary, analyse([backtest]).summary
    pnl = {}
    for k in ("total", "spread_capture", "adverse_selection", "inventory_pnl", "fees"):
        pnl[k] = {"session": ra["pnl"][k], "backtest": rb["pnl"][k], "diff": ra["pnl"][k] - rb["pnl"][k]}
    mk = {}
    for h in HORIZONS_S:
        x, y = ra["markouts"][hkey(h)], rb["markouts"][hkey(h)]
        d = None if x["mean"] is None or y["mean"] is None else x["mean"] - y["mean"]
        mk[hkey(h)] = {"session": x["mean"], "session_ci": x["ci"], "backtest": y["mean"], "backtest_ci": y["ci"],
                       "diff": d, "n_session": x["n"], "n_backtest": y["n"]}
    return {"pnl": pnl, "markouts": mk}


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise SessionError(f"--set {it!r}: use KEY=VALUE (a mm backtest option name, e.g. latency=const:20)")
        k, v = it.split("=", 1)
        k = k.strip().lstrip("-").replace("-", "_")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def reconcile_day(run_dir: str | Path, *, against: Optional[str | Path] = None, replay_out: Optional[Path] = None,
                  overrides: Optional[dict[str, Any]] = None,
                  settings: ReconcileSettings = ReconcileSettings()) -> ReconcileResult:
    """Compare a session with ``against`` or with its own replay through the backtest; save the result."""
    session = load_session(run_dir)
    if against is not None:
        bt = load_session(against)
        replayed = None
    else:
        out = Path(replay_out) if replay_out else Path(run_dir) / "replay"
        bt = load_session(replay_backtest(session, out, overrides))
        replayed = str(out)
    res = compare(session, bt, settings)
    res.data["replayed"] = replayed
    res.data["overrides"] = overrides or {}
    write_json(Path(run_dir) / RECONCILE_NAME, res.data)
    return res


def format_result(r: ReconcileResult) -> str:
    d = r.data
    o, f, df = d["orders"], d["fills"], d["differences"]
    lines = [f"reconcile {d['session']} ({d['session_source']}) vs backtest {d['backtest']}",
             f"  orders: session {o['session']}, backtest {o['backtest']}, matched {o['matched']}",
             f"  fills:  session {f['session']}, backtest {f['backtest']}, matched order by order "
             f"{f['matched_session']} ({100 * f['fill_match_rate']:.1f} % of the session's fills)",
             f"  differences {df['total']} ({df['fill_differences']} about fills) in {df['roots']} chain(s), "
             f"explained {100 * df['explained_share']:.1f} %; consequences (path_divergence) "
             f"{df['by_cause']['path_divergence']}; root causes: "
             + (", ".join(f"{k} {v}" for k, v in df["root_causes"].items() if v) or "none")]
    if "pnl" in d:
        lines.append("  PnL parts (session / backtest / diff): " + "; ".join(
            f"{k} {v['session']:+.4f} / {v['backtest']:+.4f} / {v['diff']:+.4f}" for k, v in d["pnl"].items()))
        lines.append("  markouts bp (session / backtest): " + "; ".join(
            f"{k} {_f(v['session'])} / {_f(v['backtest'])}" for k, v in d["markouts"].items()))
    return "\n".join(lines)


def _f(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:+.3f}"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("reconcile-day", help="compare a session with its backtest replay order by order",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the session (a trading run directory)")
    p.add_argument("--against", metavar="BACKTEST_DIR", help="compare with this run directory instead of replaying")
    p.add_argument("--replay-out", metavar="DIR", help="where the replay is written (default: RUN_DIR/replay)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one mm backtest option in the replay (what-if), e.g. --set latency=const:20")
    p.add_argument("--match-window-ms", type=float, default=ReconcileSettings.match_window_ms,
                   help="orders created this close (same side and price) are the same decision (default %(default)s)")
    p.add_argument("--latency-tol-ms", type=float, default=ReconcileSettings.latency_tol_ms,
                   help="created further apart than this = a latency difference (default %(default)s)")
    p.add_argument("--time-tol-ms", type=float, default=ReconcileSettings.time_tol_ms,
                   help="first fills this close count as the same fill (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    s = ReconcileSettings(args.match_window_ms, args.latency_tol_ms, args.time_tol_ms)
    try:
        res = reconcile_day(args.run_dir, against=args.against,
                            replay_out=Path(args.replay_out) if args.replay_out else None,
                            overrides=_parse_set(args.set), settings=s)
    except SessionError as exc:
        print(f"mm reconcile-day: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mm reconcile-day: cannot write: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res.to_dict()) if args.json else format_result(res))
    return 0
