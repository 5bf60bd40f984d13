"""Layout of a trading run directory: what ``mm backtest --out``, ``mm paper`` and ``mm live`` write.

TCA, ``mm reconcile-day``, ``mm incidents`` and ``mm rollout-check`` read a trading session from
these files alone, whatever produced it, so the names here are the contract between the runners
(writers) and the analysis (readers)::

    RUN_DIR/
      session.json      what ran: SESSION_FORMAT, source (backtest | paper | live), exchange,
                        symbol, instrument (tick_size, lot_size, base, quote), started_ns/ended_ns,
                        fair (the fair-mid spec the strategy used: mid | microprice | model path),
                        market (the market-data reference, below), market_fingerprint, params
                        (strategy and exchange model, plain data) and backtest_args (the replay
                        seam: the ``mm backtest`` arguments that replay this session, see
                        :func:`replay_backtest`)
      fills.parquet     one row per fill, mm_core/trading/tables.py fill layout, plus the optional
                        columns in OPTIONAL_FILL_COLUMNS
      orders.parquet    one row per order, tables.py order layout (+ the same optional columns,
                        their values at the order's creation)
      incidents/        the incident store (mm_core/trading/incidents.py)
      reconcile-day.json  the last ``mm reconcile-day`` result
      backtest.json     backtest runs: the ``mm backtest --json`` summary
      summary.json, events.jsonl, parquet/...   paper/live runs: the collector's files for the
                        market data the session traded on (mm_core/capture/layout.py), with
                        summary.json carrying duration_s, uptime_share and risk_breaches

Market-data reference (``market``): where the rows the session traded on come from, so TCA
measures markouts on exactly the data the strategy saw. ``{"kind": "run_dir", "path": P}`` (a
collector-style directory; ``"."`` = this run directory, what paper/live write),
``{"kind": "simulator", "seconds", "seed", "predictive", "depth", "updates_per_second",
"trades_per_second"}`` or ``{"kind": "arrays", "path": P}`` (a ``.npz`` of rows). The fingerprint
(row count, first/last exchange time, a digest of times and best prices) is checked on load: TCA
refuses to measure fills against different data.

Optional fill/order columns (written when the runner knows them; TCA groups by them when present):
``lat_regime`` (int8: 0 normal, 1 degraded, 2 unsafe -- strategy/view.py LAT_*), ``vol_regime``
(int8: 0 low, 1 normal, 2 high -- VOL_*): the regime in force at the decision that produced the
order, and for a fill the one in force when it was reported. Text names are accepted as well.

What a paper/live runner must write for TCA, reconcile-day, incidents and rollout-check to work:

1. the collector's files for the market data it trades on, in the run directory itself
   (``parquet/``, the sample CSV, ``events.jsonl``, ``summary.json`` with ``duration_s``,
   ``uptime_share``, ``exit_reason`` and ``risk_breaches``);
2. ``fills.parquet`` / ``orders.parquet`` (``tables.fills_table`` / ``tables.orders_table``, plus the
   regime columns above), rewritten with :func:`write_table` at least at exit (a crash loses at most
   what the order manager's journal and the exchange snapshot recover);
3. ``session.json`` from :func:`session_info` with ``source`` paper/live, ``market = {"kind":
   "run_dir", "path": "."}`` (no fingerprint: the data grows while it runs), ``fair`` = the fair-mid
   spec, and ``backtest_args`` = the ``mm backtest`` arguments that replay the day: ``run_dir = "."``,
   ``capture_ts = true`` (or ``latency`` = what it measured), the strategy parameters, ``fees`` /
   ``volume_30d`` of its fee tier, ``requote_ms``, ``queue``, ``rate_tier``;
4. ``transitions.jsonl``: one JSON object per regime/risk transition (strategy/transitions.py
   ``records``), and for each the incident hook :func:`mm_core.trading.incidents.report_transitions`;
   reconciliation differences through ``OrderSupervisor(on_difference=...)`` ->
   :func:`mm_core.trading.incidents.report_difference`; any other alarm ->
   :func:`mm_core.trading.incidents.open_incident` (with its in-memory telemetry window).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from mm_core.store.atomic import write_atomic

SESSION_FORMAT = "mm_core.trading_session"
SESSION_VERSION = 1
SESSION_NAME = "session.json"
FILLS_NAME = "fills.parquet"
ORDERS_NAME = "orders.parquet"
BACKTEST_NAME = "backtest.json"
RECONCILE_NAME = "reconcile-day.json"
INCIDENTS_DIR = "incidents"
SOURCES = ("backtest", "paper", "live")

LAT_REGIME_NAMES = ("normal", "degraded", "unsafe")
VOL_REGIME_NAMES = ("low", "normal", "high")
OPTIONAL_FILL_COLUMNS: dict[str, tuple[str, ...]] = {"lat_regime": LAT_REGIME_NAMES,
                                                     "vol_regime": VOL_REGIME_NAMES}
"""Optional regime columns -> their code names (code i = names[i])."""

# argparse destinations of `mm backtest` that are output choices, not part of what ran
_NOT_REPLAYED = ("func", "command", "json", "html", "out", "_runtime_config")


class SessionError(ValueError):
    """A trading run directory is missing, unreadable or inconsistent; the message says which file."""


# --------------------------------------------------------------------------- reading


@dataclass
class Session:
    """One trading run directory, loaded."""

    run_dir: Path
    info: dict[str, Any]
    fills: Any  # pyarrow.Table, fill layout
    orders: Any  # pyarrow.Table or None

    @property
    def source(self) -> str:
        return str(self.info.get("source", "?"))

    @property
    def symbol(self) -> str:
        return str(self.info.get("symbol", "?"))

    @property
    def tick_size(self) -> float:
        return float(self.info.get("instrument", {}).get("tick_size", 0.1))

    @property
    def fair_spec(self) -> str:
        return str(self.info.get("fair") or "mid")

    @property
    def backtest_args(self) -> Optional[dict[str, Any]]:
        a = self.info.get("backtest_args")
        return dict(a) if isinstance(a, dict) else None

    @property
    def name(self) -> str:
        return self.run_dir.name


def is_session_dir(run_dir: Path) -> bool:
    return (Path(run_dir) / SESSION_NAME).is_file()


def read_session_info(run_dir: Path) -> dict[str, Any]:
    p = Path(run_dir) / SESSION_NAME
    if not Path(run_dir).is_dir():
        raise SessionError(f"{run_dir}: no such run directory")
    if not p.is_file():
        raise SessionError(f"{run_dir}: not a trading run directory (no {SESSION_NAME}; "
                           "write one with `mm backtest ... --out DIR`, `mm paper --out DIR` or `mm live`)")
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SessionError(f"{p}: unreadable ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != SESSION_FORMAT:
        raise SessionError(f"{p}: not a {SESSION_FORMAT} file")
    if info.get("source") not in SOURCES:
        raise SessionError(f"{p}: source must be one of {', '.join(SOURCES)}, got {info.get('source')!r}")
    return info


def _read_table(path: Path, required: tuple[str, ...]):
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a torn or foreign file
        raise SessionError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    missing = [c for c in required if c not in t.column_names]
    if missing:
        raise SessionError(f"{path}: missing columns {', '.join(missing)} (see mm_core/trading/tables.py)")
    return t


def load_session(run_dir: str | Path) -> Session:
    """The session's info, fills and orders (orders may be absent: fill rates are then unknown)."""
    from mm_core.trading.tables import FILL_COLUMNS, ORDER_COLUMNS

    rd = Path(run_dir)
    info = read_session_info(rd)
    fp = rd / FILLS_NAME
    if not fp.is_file():
        raise SessionError(f"{rd}: no {FILLS_NAME}")
    fills = _read_table(fp, FILL_COLUMNS)
    op = rd / ORDERS_NAME
    orders = _read_table(op, ORDER_COLUMNS) if op.is_file() else None
    return Session(rd, info, fills, orders)


# --------------------------------------------------------------------------- market data


def market_fingerprint(m) -> dict[str, Any]:
    """Row count, time span and a digest of times and best prices of a :class:`MarketArrays`."""
    h = hashlib.sha256()
    for a in (m.exch_ts, m.best_bid_tick, m.best_ask_tick):
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    n = len(m)
    return {"rows": n, "first_ts": int(m.exch_ts[0]) if n else None,
            "last_ts": int(m.exch_ts[-1]) if n else None, "sha256": h.hexdigest()}


def market_reference(args: argparse.Namespace) -> dict[str, Any]:
    """The market reference of a ``mm backtest`` argument set (what :func:`load_market` reloads)."""
    if getattr(args, "arrays", None):
        return {"kind": "arrays", "path": str(Path(args.arrays).resolve())}
    if getattr(args, "sim_seconds", None):
        return {"kind": "simulator", "seconds": float(args.sim_seconds), "seed": int(args.seed),
                "predictive": bool(args.predictive), "depth": int(args.depth or 10),
                "updates_per_second": float(args.updates_per_second),
                "trades_per_second": float(args.trades_per_second)}
    return {"kind": "run_dir", "path": str(Path(args.run_dir).resolve()), "depth": args.depth}


def load_market(session: Session):
    """The rows the session traded on (from the backtest cache when possible), fingerprint-checked."""
    from mm_core.backtest import event_arrays as ea

    ref = session.info.get("market")
    if not isinstance(ref, dict):
        raise SessionError(f"{session.run_dir / SESSION_NAME}: no market reference")
    inst = session.info.get("instrument", {})
    tick, lot = float(inst.get("tick_size", 0.1)), float(inst.get("lot_size", 1e-8))
    kind = ref.get("kind")
    try:
        if kind == "arrays":
            m = ea.MarketArrays.load(Path(ref["path"]))
        elif kind == "simulator":
            kw = dict(updates_per_second=float(ref["updates_per_second"]),
                      trades_per_second=float(ref["trades_per_second"]))
            key = ea.simulator_key(float(ref["seconds"]), int(ref["seed"]), predictive=bool(ref["predictive"]),
                                   depth=int(ref["depth"]), **kw)
            m, _, _ = ea.cached(key, lambda: ea.from_simulator(
                float(ref["seconds"]), int(ref["seed"]), predictive=bool(ref["predictive"]), depth=int(ref["depth"]),
                tick_size=tick, lot_size=lot, **kw))
        elif kind == "run_dir":
            p = Path(str(ref["path"]))
            p = session.run_dir / p if not p.is_absolute() else p
            depth = ref.get("depth")
            # keyed by the market-data parts only: a session's own fills/orders files change often
            key = {**ea.run_dir_key(p / "parquet" if (p / "parquet").is_dir() else p), "tick": tick, "depth": depth}
            m, _, _ = ea.cached(key, lambda: ea.from_run_dir(p, tick_size=tick, lot_size=lot, depth=depth))
        else:
            raise SessionError(f"{session.run_dir / SESSION_NAME}: unknown market kind {kind!r}")
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, SessionError):
            raise
        raise SessionError(f"{session.run_dir}: market data {ref}: {exc}") from None
    want = session.info.get("market_fingerprint")
    if isinstance(want, dict) and want.get("sha256"):
        got = market_fingerprint(m)
        if got["sha256"] != want["sha256"]:
            raise SessionError(f"{session.run_dir}: the market data found ({got['rows']} rows) is not the data "
                               f"the session traded on ({want.get('rows')} rows): fingerprint differs")
    if len(m) == 0:
        raise SessionError(f"{session.run_dir}: market data has no rows")
    return m


# --------------------------------------------------------------------------- writing


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(Path(path), json.dumps(_jsonable(dict(data)), indent=1).encode("utf-8"))


def write_table(path: Path, table) -> None:
    """A Parquet file written beside its final name and renamed over it (never torn)."""
    import pyarrow.parquet as pq

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()


def session_info(*, source: str, exchange: str, symbol: str, instrument: Mapping[str, Any], started_ns: int,
                 ended_ns: int, fair: str, market: Mapping[str, Any], market_fp: Optional[Mapping[str, Any]],
                 params: Mapping[str, Any], backtest_args: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The ``session.json`` body (paper/live runners build theirs with this too)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}")
    return {"format": SESSION_FORMAT, "version": SESSION_VERSION, "source": source, "exchange": exchange,
            "symbol": symbol, "instrument": dict(instrument), "started_ns": int(started_ns),
            "ended_ns": int(ended_ns), "fair": fair, "market": dict(market),
            "market_fingerprint": dict(market_fp) if market_fp else None, "params": dict(params),
            "backtest_args": dict(backtest_args) if backtest_args is not None else None}


def write_session(run_dir: Path, info: Mapping[str, Any], fills, orders=None) -> Path:
    """Write ``session.json``, ``fills.parquet`` and ``orders.parquet`` (each atomically)."""
    rd = Path(run_dir)
    rd.mkdir(parents=True, exist_ok=True)
    write_table(rd / FILLS_NAME, fills)
    if orders is not None:
        write_table(rd / ORDERS_NAME, orders)
    write_json(rd / SESSION_NAME, info)  # last: a directory with session.json is complete
    return rd


def replay_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``mm backtest`` arguments that reproduce this run (paths made absolute)."""
    out: dict[str, Any] = {}
    for k, v in vars(args).items():
        if k in _NOT_REPLAYED or k.startswith("_") or callable(v):
            continue
        if k in ("run_dir", "arrays", "config") and v:
            v = str(Path(v).resolve())
        if k == "fair" and v and Path(str(v)).is_file():
            v = str(Path(v).resolve())
        out[k] = _jsonable(v)
    return out


def write_backtest_run(out: Path, result, market, args: argparse.Namespace) -> Path:
    """``mm backtest --out``: fills/orders in the shared layout, the market reference, the parameters."""
    from mm_core.backtest.command import instrument_rules
    from mm_core.trading.tables import backtest_fills_table, backtest_orders_table

    inst, _ = instrument_rules(args)
    fee = np.asarray(result.pnl.per_fill["fee"], np.float64)
    fills = backtest_fills_table(result.fills, exchange=market.exchange, symbol=market.symbol, fee=fee,
                                 fee_asset=inst.quote or "")
    fills = _with_optional_columns(fills, result.fills)
    orders = backtest_orders_table(result.orders, exchange=market.exchange, symbol=market.symbol)
    orders = _with_optional_columns(orders, result.orders)
    info = session_info(
        source="backtest", exchange=market.exchange, symbol=market.symbol,
        instrument={"tick_size": market.tick_size, "lot_size": market.lot_size, "base": inst.base,
                    "quote": inst.quote},
        started_ns=int(market.exch_ts[0]), ended_ns=int(market.exch_ts[-1]),
        fair=str(getattr(result.config.strategy, "fair", None) or getattr(args, "fair", "mid") or "mid"),
        market=market_reference(args), market_fp=market_fingerprint(market),
        params=result.config.describe(), backtest_args=replay_args(args))
    rd = write_session(Path(out), info, fills, orders)
    write_json(rd / BACKTEST_NAME, result.summary())
    return rd


def _with_optional_columns(table, arrays: Mapping[str, np.ndarray]):
    """Append the optional regime columns when the engine produced them."""
    import pyarrow as pa

    for name in OPTIONAL_FILL_COLUMNS:
        col = arrays.get(name) if hasattr(arrays, "get") else None
        if col is not None and len(col) == table.num_rows:
            table = table.append_column(name, pa.array(np.asarray(col, np.int8)))
    return table


# --------------------------------------------------------------------------- replay seam


def backtest_parser_defaults() -> argparse.Namespace:
    """Every ``mm backtest`` argument at its default (the current parser's, so new flags get theirs)."""
    from mm_core.backtest import command

    p = argparse.ArgumentParser(prog="mm")
    sub = p.add_subparsers(dest="command")
    command.register(sub)
    return p.parse_args(["backtest"])


def replay_backtest(session: Session, out: Path, overrides: Optional[Mapping[str, Any]] = None) -> Path:
    """Run the backtest a session's ``backtest_args`` describe over its market data; write it to ``out``.

    The seam ``mm reconcile-day`` uses: a backtest run replays itself; a paper/live runner writes
    ``backtest_args`` with the session's exact strategy parameters, its measured latency (e.g.
    ``latency = "capture:..."`` or ``capture_ts = true``), its fee tier, and ``run_dir = "."`` (the
    market data it recorded), so the replay is the backtest of that very day. ``overrides`` replace
    single arguments (tests; what-if checks).
    """
    from mm_core.backtest import command
    from mm_core.backtest.engine import run_backtest

    saved = session.backtest_args
    if saved is None:
        raise SessionError(f"{session.run_dir / SESSION_NAME}: no backtest_args: this session cannot be "
                           "replayed through the backtest (the runner must record them)")
    ns = backtest_parser_defaults()
    for k, v in {**saved, **dict(overrides or {})}.items():
        if k == "run_dir" and v and not Path(str(v)).is_absolute():
            v = str((session.run_dir / str(v)).resolve())
        setattr(ns, k, v)
    ns.out = str(out)
    try:
        market = command.load_market(ns)
        config = command.config_from_args(ns)
        if hasattr(command, "in_sample_context"):  # the same in-sample refusal as mm backtest
            command.in_sample_context(ns, market)
    except (ValueError, FileNotFoundError) as exc:
        raise SessionError(f"{session.run_dir}: cannot replay: {exc}") from None
    result = run_backtest(market, config)
    return write_backtest_run(Path(out), result, market, ns)
