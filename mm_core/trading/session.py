"""A paper or live trading session: market data in, decisions, orders out, everything recorded.

What runs, all on one asyncio loop (``mm paper`` and ``mm live`` build a :class:`SessionSpec` and
call :func:`run_session`):

- the **collector** (:class:`mm_core.capture.collector.Collector`, unchanged: its receive loop,
  writer thread and files) records the market data into ``RUN_DIR/market/NNN/`` (one collector run
  per process start) and hands every parsed frame to this session (its ``listener``): the runner's
  market view, the paper venue's matching, feed-status faults. That hand-over only appends to small
  in-memory structures;
- the **decision task** wakes on the requote timer (epoch multiples of ``requote_ms``), at the
  staleness deadline, at feed-status events (disconnect, checksum failure, resync, market status,
  clock skew) and -- with ``decide_on_book`` -- after each book message, and runs
  :meth:`TradingRunner.decide`, whose commands become one asyncio task each (a reply never holds up a
  decision);
- the **venue task** pumps the venue's private stream through the
  :class:`~mm_core.trading.supervisor.OrderSupervisor` (order manager, reconciliation on start,
  after reconnects, after "maybe placed" replies and every ``reconcile_every_s``);
- the **housekeeping task** persists state, the session summary, fill/order tables and prints
  progress; files are written by :class:`~mm_core.trading.session_files.SessionFiles` on its own
  thread.

Stopping (Ctrl+C, SIGTERM, Ctrl+Break, ``max_seconds``; plain ``signal.signal`` handlers, no
``loop.add_signal_handler``): decisions stop, every open order is cancelled with ``cancel_all`` and
the session waits for the venue's confirmations (``open_orders_at_exit`` says what is left), the
dead man's switch is disarmed, then the collector stops and the files are closed. A kill -9 leaves
the journal, the state file and the market data; the next start replays the journal, restores the
pipeline's state, repairs the last market segment's Parquet from its raw archive, reconciles with the
venue and cancels every order it finds open (``on_restart = "cancel"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mm_core.events import (BookSnapshot, BookUpdate, ChecksumMismatch, ClockEstimate, Connected, Disconnected,
                            ExchangeStatus, TopOfBook, Trade)
from mm_core.strategy import risk as _risk
from mm_core.strategy.pipeline import DecisionPipeline
from mm_core.strategy.transitions import records as transition_records
from mm_core.strategy.view import MARKET_CODES, V_TICK
from mm_core.trading import session_files as sf
from mm_core.trading.runner import Caps, Command, RunnerConfig, TradingRunner

_S = 1_000_000_000
NO_REPLY = "no reply in time"  # the private session's timeout outcome (a lost connection says otherwise)
STATE_NAME = "runner_state.json"
LATENCY_NAME = "order_latency.csv"
JOURNAL_NAME = "journal.jsonl"
MARKET_DIR = "market"
SESSION_SUMMARY_EVERY_S = 5.0
TABLES_EVERY_S = 60.0


@dataclass
class SessionSpec:
    """Everything one session needs (built by ``mm paper`` / ``mm live``)."""

    run_dir: Path
    source: str  # paper | live
    config: Any  # RuntimeConfig
    feed_url: str
    venue_factory: Callable[["TradingSession"], Any]  # -> a TradingVenue (after the files exist)
    pipeline_factory: Callable[[], DecisionPipeline]
    runner_config: RunnerConfig
    max_seconds: Optional[float] = None
    metrics_port: Optional[int] = None
    reconcile_every_s: float = 300.0
    quiet: bool = False
    progress: bool = False
    backtest_args: Optional[dict[str, Any]] = None
    params: dict[str, Any] = field(default_factory=dict)
    id_prefix: str = "mm"
    on_restart: str = "cancel"
    exit_wait_s: float = 10.0
    sent_hook: bool = False  # record tick-to-order samples (order frame sent - market message received)


def _latency_row(cmd: Command, out: Any, recv_ns: int) -> Optional[str]:
    """``send_ns,entry_ns,response_ns,method`` of one answered request (exchange stamps time_in/out)."""
    tin, tout = out.time_in_ns, out.time_out_ns
    if tin is None or tout is None:
        return None
    return f"{cmd.t_ns},{max(0, tin - cmd.t_ns)},{max(0, recv_ns - tout)},{cmd.kind}\n"


class TradingSession:
    """One process run of a paper/live session (see the module docstring)."""

    def __init__(self, spec: SessionSpec) -> None:
        self.spec = spec
        self.run_dir = Path(spec.run_dir)
        self.cfg = spec.config
        self.runner: Optional[TradingRunner] = None
        self.venue: Any = None
        self.sup: Any = None
        self.manager: Any = None
        self.collector: Any = None
        self.files: Optional[sf.SessionFiles] = None
        self.telemetry: Any = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._wake: Optional[asyncio.Event] = None
        self._wake_reason = ""
        self._stop_reason: Optional[str] = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._top: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self._top_local = 0
        self._fatal: Optional[str] = None
        self.started_ns = time.time_ns()
        self.session_started_ns = self.started_ns
        self.segment: Optional[Path] = None
        self.fill_regimes: dict[str, tuple[int, int]] = {}
        self.order_regimes: dict[str, tuple[int, int]] = {}
        self.reconcile_differences = 0
        self.differences_at_exit = 0
        self.open_orders_at_exit: Optional[int] = None
        self.tick_to_order_ns: list[int] = []
        self.decide_ns: list[int] = []
        self._lat_fh: Any = None
        self._prev_segments_s = 0.0
        self._prev_connected_s = 0.0
        self.venue_disconnects = 0
        self._trigger: dict[str, int] = {}
        self._venue_down_ns = 0  # last private disconnect (a reply lost with the connection is no timeout)

    # ------------------------------------------------------------------ setup

    def _new_segment(self) -> Path:
        """``market/NNN``: this process run's collector directory (the previous one repaired if killed)."""
        from mm_core.capture.layout import EXIT_RUNNING, read_summary

        root = self.run_dir / MARKET_DIR
        root.mkdir(parents=True, exist_ok=True)
        segs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
        for p in segs:
            s = read_summary(p) or {}
            self._prev_segments_s += float(s.get("duration_s") or 0.0)
            self._prev_connected_s += float(s.get("connected_s") or 0.0)
        if segs:
            last = segs[-1]
            s = read_summary(last) or {}
            if s.get("exit_reason") == EXIT_RUNNING:
                from mm_core.store.repair import RepairError, repair_run

                try:
                    code, report = repair_run(last, force=True)
                    self._say(f"previous market segment {last.name} was killed: Parquet rebuilt from its raw "
                              f"archive ({report.get('frames_replayed', 0)} frames)")
                except RepairError as exc:
                    self._say(f"previous market segment {last.name} was killed and could not be repaired: {exc}")
        n = int(segs[-1].name) + 1 if segs else 0
        seg = root / f"{n:03d}"
        seg.mkdir()
        return seg

    def _say(self, text: str) -> None:
        if not self.spec.quiet:
            print(text, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ the collector's listener

    def on_frame(self, ts: int, market: list, health: list, heartbeat: bool) -> None:
        runner = self.runner
        if runner is None:
            return
        venue = self.venue
        paper = getattr(venue, "on_book", None) if self.spec.source == "paper" else None
        book_exch: Optional[int] = None
        book = False
        for ev in market:
            cls = ev.__class__
            if cls is TopOfBook:
                if ev.source == "book":
                    self._top = (ev.bid, ev.bid_qty, ev.ask, ev.ask_qty)
            elif cls is BookUpdate or cls is BookSnapshot:
                if not ev.verified:
                    continue
                book = True
                book_exch = ev.ts_exchange
                if cls is BookSnapshot:
                    self._top = (ev.bids[0][0], ev.bids[0][1], ev.asks[0][0], ev.asks[0][1]) \
                        if ev.bids and ev.asks else self._top
                    if not runner.view.valid:
                        runner.on_feed_status(ts, valid=True)
                        self._wake_up("resync")
                if paper is not None:
                    venue.on_book(ev.ts_exchange if ev.ts_exchange is not None else ts, ev.bids, ev.asks,
                                  cls is BookSnapshot)
            elif cls is Trade:
                b, bq, a, aq = self._top
                runner.on_market(ts, ev.ts_exchange, b, bq, a, aq, book=False)
                if paper is not None and ev.ts_exchange is not None:
                    venue.on_trade(ev.ts_exchange, 1 if ev.side == "buy" else -1, ev.price, ev.qty)
        if book:
            b, bq, a, aq = self._top
            runner.on_market(ts, book_exch, b, bq, a, aq, book=True)
            self._top_local = ts
            if paper is not None and book_exch is not None:
                venue.observe_feed(ts, book_exch)
            if self.spec.runner_config.decide_on_book:
                self._wake_up("book")
        if heartbeat:
            runner.on_heartbeat(ts)
        for ev in health:
            cls = ev.__class__
            if cls is ChecksumMismatch:
                runner.on_feed_status(ts, valid=False, fault=_risk.F_CHECKSUM, value=1.0)
                self._wake_up("checksum")
            elif cls is ExchangeStatus:
                code = MARKET_CODES.get(str(ev.status), MARKET_CODES["maintenance"])
                runner.on_feed_status(ts, market=code)
                if paper is not None:
                    venue.account.set_market(str(ev.status) if ev.status in MARKET_CODES else "maintenance", ts)
                self._wake_up("status")
            if self.files is not None and ev.KIND not in ("subscribed",):
                self.files.put(sf.EVENT, ev)

    def on_event(self, ev: Any) -> None:
        """The collector's own events (connected, disconnected, reconnecting, silence, clock)."""
        runner = self.runner
        if self.files is not None:
            self.files.put(sf.EVENT, ev)
        if runner is None:
            return
        ts = ev.ts_capture
        if isinstance(ev, Disconnected):
            runner.on_feed_status(ts, valid=False, fault=_risk.F_DISCONNECT, value=1.0)
            self._wake_up("disconnect")
        elif isinstance(ev, Connected):
            runner.on_feed_status(ts, valid=False)  # valid again with the first verified snapshot
        elif isinstance(ev, ClockEstimate):
            runner.on_feed_status(ts, fault=_risk.F_CLOCK_SKEW, value=proven_skew_ms(ev.offset_ns, ev.rtt_ns))
            if hasattr(self.venue, "set_latency"):
                self.venue.set_latency(int(ev.rtt_ns))

    def _wake_up(self, why: str) -> None:
        if self._wake is not None:
            self._wake_reason = self._wake_reason or why
            self._wake.set()

    # ------------------------------------------------------------------ venue stream

    def _on_record(self, item: Any) -> None:
        now = time.time_ns()
        runner = self.runner
        if runner is None:
            return
        n_fills = runner._fills_seen
        runner.on_record(item, now)
        lat, vol = self._regimes()
        for f in self.manager.fills[n_fills:]:
            self.fill_regimes[f.exec_id] = (lat, vol)
        kind = getattr(item, "KIND", "")
        if kind in ("connected", "disconnected") and self.files is not None:
            self.files.put(sf.EVENT, {"kind": f"venue_{kind}", "t_ns": now, "ts_capture": now,
                                      "reason": getattr(item, "reason", None)})
        if kind == "disconnected":
            self.venue_disconnects += 1
            self._venue_down_ns = now
            runner.on_feed_status(now, fault=_risk.F_DISCONNECT, value=1.0)
        elif kind == "sequence_gap" and self.files is not None:
            from mm_core.trading.incidents import open_incident

            what = "lost messages" if item.lost else "duplicate or reordered message"
            detail = {"channel": item.channel, "expected": item.expected, "got": item.got}
            self.files.put(sf.EVENT, {"kind": "venue_sequence_gap", "t_ns": now, "ts_capture": now, **detail})
            self.files.put(sf.INCIDENT, (lambda rd, w, d=detail, t=now, what=what: [open_incident(
                rd, "private_stream", f"{item.channel}: {what} (expected sequence {d['expected']}, got {d['got']})",
                t, key=item.channel, details=d, telemetry=w)], self.telemetry_window()))

    def _on_difference(self, d: Any) -> None:
        from mm_core.trading.incidents import report_difference
        from mm_core.trading.records import record_to_dict

        self.reconcile_differences += 1
        if self.files is not None:
            self.files.put(sf.EVENT, {"ts_capture": int(d.ts_capture), "t_ns": int(d.ts_capture),
                                      **record_to_dict(d), "kind": "reconcile_difference",
                                      "difference": d.kind})
            self.files.put(sf.INCIDENT, (lambda rd, w, d=d: [report_difference(rd, d, telemetry=w)],
                                         self.telemetry_window()))

    def _regimes(self) -> tuple[int, int]:
        from mm_core.strategy import pipeline as _pl

        pl = self.runner.pl if self.runner is not None else None
        if pl is None:
            return 0, 1
        return int(pl.RS[_pl.RS_LAT]), int(pl.RS[_pl.RS_VOL])

    # ------------------------------------------------------------------ commands

    def _send(self, cmd: Command) -> None:
        lat, vol = self._regimes()
        self.order_regimes[cmd.cl_ord_id] = (lat, vol)
        if self.spec.sent_hook and cmd.trigger_local_ns:
            self._trigger[cmd.cl_ord_id] = cmd.trigger_local_ns
        assert self._loop is not None
        task = self._loop.create_task(self._exec(cmd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _exec(self, cmd: Command) -> None:
        v = self.venue
        sent = time.time_ns()
        try:
            if cmd.kind == "new":
                out = await v.place(cmd.request)
            elif cmd.kind == "cancel":
                out = await v.cancel(cmd.request)
            else:
                out = await v.amend(cmd.request)
        except Exception as exc:  # the venue failed in a way it should have reported: maybe placed
            from mm_core.trading.records import Outcome, OutcomeKind

            out = Outcome(kind=OutcomeKind.UNKNOWN, method={"new": "add_order", "cancel": "cancel_order",
                                                             "amend": "amend_order"}[cmd.kind],
                          cl_ord_id=cmd.cl_ord_id, error=f"{type(exc).__name__}")
        now = time.time_ns()
        self.sup._after_outcome(out, cmd.cl_ord_id if cmd.kind == "new" else None)
        if self.runner is not None:
            self.runner.on_outcome(cmd, out, now)
        if (out.kind.value == "timeout" and out.error == NO_REPLY and self._venue_down_ns < sent
                and self.files is not None):
            # no reply although the connection stayed up: the request may have taken effect
            from mm_core.trading.incidents import open_incident

            ev = {"kind": "order_timeout", "t_ns": now, "ts_capture": now, "command": cmd.kind,
                  "cl_ord_id": cmd.cl_ord_id, "error": out.error}
            self.files.put(sf.EVENT, ev)
            self.files.put(sf.INCIDENT, (lambda rd, w, e=ev: [open_incident(
                rd, "order_timeout", f"no reply to a {e['command']} ({e['cl_ord_id']}) although the connection stayed "
                f"up: maybe placed, reconciled", e["t_ns"], key=e["command"], details=e, telemetry=w)],
                self.telemetry_window()))
        if self._lat_fh is not None and not cmd.validate:
            row = _latency_row(cmd, out, now)
            if row is not None:
                self._lat_fh.write(row)

    def _frame_sent(self, req: Any, req_id: int, t_ns: int) -> None:
        """The private session put an order frame on the socket: one tick-to-order sample (frame
        sent - arrival of the market message the decision acted on)."""
        cid: Optional[str] = req.cl_ord_ids[0] if req.cl_ord_ids else None
        if cid is None:
            oid = req.params.get("order_id")
            oid = oid[0] if isinstance(oid, list) and oid else oid
            o = self.manager.find(oid, None) if isinstance(oid, str) else None
            cid = o.cl_ord_id if o is not None else None
        trig = self._trigger.pop(cid, None) if cid is not None else None
        if trig:
            self.tick_to_order_ns.append(t_ns - trig)

    # ------------------------------------------------------------------ main

    def telemetry_window(self) -> dict[str, Any]:
        """A small in-memory window handed to each incident (the runner's view right now)."""
        r = self.runner
        if r is None:
            return {}
        from mm_core.strategy import pipeline as _pl

        pl = r.pl
        return {"position": r.position, "equity": r.last_equity, "fair": r.last_fair,
                "data_age_ms": r.view.age_ms(time.time_ns()), "data_valid": r.view.valid, "market": r.view.market,
                "regimes": {"latency": int(pl.RS[_pl.RS_LAT]), "volatility": int(pl.RS[_pl.RS_VOL]),
                            "trading": int(pl.KS[_pl.KS_TRADING])},
                "open_orders": [{"cl_ord_id": w.cid, "side": w.side, "tick": w.tick, "leaves": w.leaves,
                                 "state": w.state} for w in r.working.values()][:50],
                "recent_fills": [{"ts": f.ts_exchange, "side": f.side, "price": f.price, "qty": f.qty}
                                 for f in self.manager.fills[-20:]] if self.manager is not None else []}

    def request_stop(self, reason: str) -> None:
        """Thread- and signal-safe."""
        if self._stop_reason is None:
            self._stop_reason = reason
        loop = self._loop
        if loop is not None and not loop.is_closed() and self._stop is not None:
            loop.call_soon_threadsafe(self._stop.set)

    def _install_signals(self) -> Callable[[], None]:
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            self.request_stop("signal")

        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                previous[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):
                pass

        def restore() -> None:
            for sig, h in previous.items():
                with contextlib.suppress(ValueError, OSError):
                    signal.signal(sig, h)

        return restore

    async def run(self) -> dict[str, Any]:
        from mm_core.capture.collector import Collector
        from mm_core.trading.orders import OrderManager
        from mm_core.trading.reconcile import ReconcileSchedule
        from mm_core.trading.supervisor import OrderSupervisor
        from mm_core.trading.telemetry import Telemetry

        spec = self.spec
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.manager = OrderManager.open(self.run_dir / JOURNAL_NAME, symbol=self.cfg.symbol,
                                         base=self.cfg.instrument.base, quote=self.cfg.instrument.quote,
                                         exchange=self.cfg.exchange.name, id_prefix=spec.id_prefix,
                                         on_restart=spec.on_restart)
        restore_signals = self._install_signals()
        try:
            self.segment = self._new_segment()
            self.files = sf.SessionFiles(self.run_dir).start()
            self._lat_fh = open(self.run_dir / LATENCY_NAME, "a", buffering=1, encoding="utf-8")
            if self._lat_fh.tell() == 0:
                self._lat_fh.write("send_ns,entry_ns,response_ns,kind\n")
            self.telemetry = Telemetry(spec.metrics_port)
            url = self.telemetry.start()
            if url:
                self._say(f"metrics on {url}")
            self.venue = spec.venue_factory(self)
            pl = spec.pipeline_factory()
            warm_up(pl)  # compile before the feed starts: a first-decision compile would age the data by seconds
            self.runner = TradingRunner(pl, self.manager, spec.runner_config, send=self._send, run_dir=self.run_dir,
                                        queue_ahead=getattr(self.venue, "queue_ahead", None),
                                        on_event=self._runner_event, on_transitions=self._transitions,
                                        telemetry=self.telemetry)
            restored = self._restore_state()
            self.sup = OrderSupervisor(self.manager, self.venue,
                                       schedule=ReconcileSchedule(every_s=spec.reconcile_every_s),
                                       on_difference=self._on_difference, on_record=self._on_record)
            if spec.sent_hook and hasattr(getattr(self.venue, "session", None), "sent_hook"):
                self.venue.session.sent_hook = self._frame_sent
            self._say(f"{spec.source} session in {self.run_dir.resolve()} (segment {self.segment.name}"
                      f"{', state restored' if restored else ''}); venue {getattr(self.venue, 'name', '?')}")
            await self.sup.start()
            self.runner._fills_seen = len(self.manager.fills)
            if self.runner.base0 is None:
                self.runner.set_baseline(self.manager.position, self.manager.cash)
                self._save_state()  # at once: a kill -9 before the first periodic save must not lose the baseline
            self.runner.adopt_open_orders(time.time_ns())
            self.started_ns = time.time_ns()  # trading time starts with the market data
            if not restored:
                self.session_started_ns = self.started_ns
            self._write_session_json(final=False)
            csv = self.segment / f"{spec.source}.csv"
            self.collector = Collector(self.cfg, csv, url=spec.feed_url, run_dir=self.segment,
                                       status_every_s=0.0, quiet=True, listener=self, handle_signals=False)
            ctask = self._loop.create_task(self.collector.run_async(), name="collector")
            tasks = [self._loop.create_task(self._decide_loop(), name="decide"),
                     self._loop.create_task(self._pump_loop(), name="venue"),
                     self._loop.create_task(self._housekeeping(), name="housekeeping")]
            waits = [self._loop.create_task(self._stop.wait()), ctask]
            timeout = spec.max_seconds
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ctask in done:
                self._stop_reason = self._stop_reason or "collector_stopped"
                with contextlib.suppress(Exception):
                    if ctask.result() != 0:
                        self._fatal = "the market-data collector stopped with an error (see its summary.json)"
            self._stop_reason = self._stop_reason or "max_seconds"
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self._shutdown(ctask)
        finally:
            restore_signals()
            if self.telemetry is not None:
                self.telemetry.stop()
        return self.summary(final=True)

    def _runner_event(self, ev: dict[str, Any]) -> None:
        if self.files is None:
            return
        self.files.put(sf.EVENT, {**ev, "ts_capture": ev.get("t_ns")})
        kind = ev.get("kind")
        from mm_core.trading.incidents import open_incident

        if kind == "refused" and ev.get("outcome") == "rate_limited":
            self.files.put(sf.INCIDENT, (lambda rd, w, e=ev: [open_incident(
                rd, "rate_limited", f"the venue refused a {e['command']} for the rate limit: {e.get('error', '')}",
                e["t_ns"], key="venue", details=e, telemetry=w)], self.telemetry_window()))
        elif kind == "risk_breach":
            self.files.put(sf.INCIDENT, (lambda rd, w, e=ev: [open_incident(
                rd, "risk_breach", f"{e['limit']} exceeded: {e['value']:+.8f} (limit {e['threshold']})",
                e["t_ns"], key=str(e["limit"]), details=e, telemetry=w)], self.telemetry_window()))
        elif kind == "daily_loss_cap":
            self.files.put(sf.INCIDENT, (lambda rd, w, e=ev: [open_incident(
                rd, "kill_switch", f"daily loss {e['loss']:.2f} beyond the cap {e['cap']}: HALTED (manual resume)",
                e["t_ns"], key="daily_loss", details=e, telemetry=w)], self.telemetry_window()))

    def _transitions(self, log: np.ndarray) -> None:
        if self.files is None:
            return
        recs = transition_records(log, log.shape[0])
        self.files.put(sf.TRANSITIONS, (recs, self.telemetry_window()))

    # ------------------------------------------------------------------ tasks

    async def _decide_loop(self) -> None:
        runner = self.runner
        assert runner is not None and self._wake is not None
        rq = runner.requote_ns
        while True:
            t = runner.next_decision_ns()
            now = time.time_ns()
            wait = 1.0 if t is None else max(0.0, (t - now) / 1e9)
            if not self._wake.is_set() and wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(wait, 1.0))
            now = time.time_ns()
            if self._wake.is_set():
                reason = self._wake_reason or "status"
                self._wake.clear()
                self._wake_reason = ""
                c0 = time.perf_counter_ns()
                runner.decide(now, reason, self._top_local if reason == "book" else 0)
                self.decide_ns.append(time.perf_counter_ns() - c0)
                continue
            t = runner.next_decision_ns()
            if t is None or now < t:
                continue
            trigger = "timer" if t == runner.next_timer_ns else "deadline"
            if now - t > rq:  # far behind (the loop stalled): decide on the latest tick, not every missed one
                t = now // rq * rq
                trigger = "timer"
            runner.decide(t, trigger)

    async def _pump_loop(self) -> None:
        while True:
            await self.sup.pump(0.5)

    async def _housekeeping(self) -> None:
        last_sum = last_tab = time.monotonic()
        last_status = last_sum
        while True:
            await asyncio.sleep(1.0)
            mono = time.monotonic()
            r = self.runner
            if r is not None and self.telemetry is not None:
                self.telemetry.position(r.position, r.last_equity)
            if mono - last_sum >= SESSION_SUMMARY_EVERY_S:
                last_sum = mono
                self._save_state()
                self.files.put(sf.JSON, ("summary.json", self.summary(final=False)))
            if mono - last_tab >= TABLES_EVERY_S:
                last_tab = mono
                self._write_tables()
                self._write_session_json(final=False)
            if self.spec.progress and mono - last_status >= 10.0:
                last_status = mono
                s = self.summary(final=False)
                print(f"[{s['duration_s']:8.0f}s] {s['orders']} orders, {s['fills']} fills, position "
                      f"{s['position']:+.6f}, pnl {s['pnl']:+.2f}, reconcile differences "
                      f"{s['reconcile_differences']}", file=sys.stderr, flush=True)

    async def _shutdown(self, ctask: asyncio.Task[Any]) -> None:
        """Cancel every order, wait for the confirmations, stop the collector, write everything."""
        sup = self.sup
        try:
            if sup is not None:
                for t in list(self._tasks):  # replies still in flight settle first
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await asyncio.wait_for(t, 5.0)
                if self.manager.open_orders():
                    out = await self.venue.cancel_all()
                    sup._after_outcome(out, None)
                deadline = time.monotonic() + self.spec.exit_wait_s
                while any(o.state != "sent" for o in self.manager.open_orders()) and time.monotonic() < deadline:
                    await sup._handle_next(0.2)
                # a final reconciliation: what the venue says is open is what is left, and what
                # it finds different now is what the session got wrong
                before = len(sup.differences)
                with contextlib.suppress(Exception):
                    await sup.reconcile("exit")
                self.differences_at_exit = len(sup.differences) - before
                self.open_orders_at_exit = len(self.manager.open_orders())
                with contextlib.suppress(Exception):
                    await self.venue.close()
        finally:
            if self.collector is not None:
                self.collector.request_stop()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(ctask, 30.0)
            self._save_state()
            self._write_tables()
            self._write_session_json(final=True)
            self.files.put(sf.JSON, ("summary.json", self.summary(final=True)))
            self.files.close()
            if self._lat_fh is not None:
                self._lat_fh.close()
            self.manager.close()

    # ------------------------------------------------------------------ persistence

    def _save_state(self) -> None:
        from mm_core.trading.runner_state import pipeline_state

        r = self.runner
        if r is None or self.files is None:
            return
        st = {"format": "mm_core.runner_state", "version": 1, "strategy": r.pl.spec.key,
              "session_started_ns": self.session_started_ns, "saved_ns": time.time_ns(),
              "pipeline": pipeline_state(r.pl), "runner": r.state()}
        self.files.put(sf.JSON, (STATE_NAME, st))

    def _restore_state(self) -> bool:
        import json

        from mm_core.trading.runner_state import restore_pipeline

        p = self.run_dir / STATE_NAME
        if not p.is_file() or self.runner is None:
            return False
        try:
            st = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._say(f"{p}: unreadable, starting with a fresh strategy state")
            return False
        if st.get("strategy") != self.runner.pl.spec.key:
            self._say(f"{p}: saved for strategy {st.get('strategy')}, not {self.runner.pl.spec.key}: fresh state")
            return False
        restore_pipeline(self.runner.pl, st.get("pipeline") or {})
        self.runner.restore(st.get("runner") or {})
        self.session_started_ns = int(st.get("session_started_ns") or self.started_ns)
        return True

    def _write_tables(self) -> None:
        from mm_core.trading.session_dir import FILLS_NAME, ORDERS_NAME, write_table
        from mm_core.trading.tables import fills_table, orders_table

        m = self.manager
        if m is None or self.files is None:
            return
        fills = list(m.fills)
        orders = [copy.copy(o) for o in m.orders.values() if not o.validate]
        freg, oreg = dict(self.fill_regimes), dict(self.order_regimes)
        src = self.spec.source
        exchange = self.cfg.exchange.name
        rd = self.run_dir

        def write() -> None:
            import pyarrow as pa

            ft = fills_table(fills, source=src)
            lat = [freg.get(f.exec_id, (0, 1)) for f in fills]
            ft = ft.append_column("lat_regime", pa.array(np.asarray([x[0] for x in lat], np.int8)))
            ft = ft.append_column("vol_regime", pa.array(np.asarray([x[1] for x in lat], np.int8)))
            ot = orders_table(orders, exchange=exchange, source=src)
            reg = [oreg.get(o.cl_ord_id, (0, 1)) for o in orders]
            ot = ot.append_column("lat_regime", pa.array(np.asarray([x[0] for x in reg], np.int8)))
            ot = ot.append_column("vol_regime", pa.array(np.asarray([x[1] for x in reg], np.int8)))
            write_table(rd / FILLS_NAME, ft)
            write_table(rd / ORDERS_NAME, ot)

        self.files.put(sf.CALL, write)

    def _write_session_json(self, final: bool) -> None:
        from mm_core.trading.session_dir import SESSION_NAME, session_info

        inst = self.cfg.instrument
        info = session_info(
            source=self.spec.source, exchange=self.cfg.exchange.name, symbol=self.cfg.symbol,
            instrument={"tick_size": inst.tick_size, "lot_size": inst.lot_size, "base": inst.base,
                        "quote": inst.quote},
            started_ns=self.session_started_ns, ended_ns=time.time_ns(), fair=self.spec.runner_config.fair,
            market={"kind": "run_dir", "path": MARKET_DIR}, market_fp=None,
            params={**self.spec.params, "caps": self.spec.runner_config.caps.describe()
                    if self.spec.runner_config.caps else None},
            backtest_args=self.spec.backtest_args)
        info["live"] = not final
        assert self.files is not None
        self.files.put(sf.JSON, (SESSION_NAME, info))

    # ------------------------------------------------------------------ report

    def summary(self, final: bool) -> dict[str, Any]:
        from mm_core.capture.layout import EXIT_RUNNING

        r = self.runner
        m = self.manager
        now = time.time_ns()
        seg_s = (now - self.started_ns) / 1e9
        col = self.collector
        connected = 0.0
        if col is not None:
            s = col.summary
            connected = s.connected_s + (time.monotonic() - col._session_started if col._ws is not None else 0.0)
        duration = self._prev_segments_s + seg_s
        fair = r.last_fair if r is not None else math.nan
        pnl = r.equity(fair) if r is not None and math.isfinite(fair) else 0.0
        vd = self.venue.describe() if self.venue is not None else {}
        tel = self.telemetry.summary(seg_s) if self.telemetry is not None else {}
        out: dict[str, Any] = {
            "format": "mm_core-run-summary", "version": 1, "source": self.spec.source,
            "exchange": self.cfg.exchange.name, "symbol": self.cfg.symbol,
            "started_ns": self.session_started_ns, "ended_ns": now if final else None, "updated_ns": now,
            "duration_s": round(duration, 3), "connected_s": round(self._prev_connected_s + connected, 3),
            "uptime_share": round(min(1.0, (self._prev_connected_s + connected) / duration), 6) if duration > 0 else 0.0,
            "exit_reason": (self._stop_reason or "max_seconds") if final else EXIT_RUNNING,
            "fatal_error": self._fatal,
            "csv": str(Path(MARKET_DIR) / self.segment.name / f"{self.spec.source}.csv") if self.segment else None,
            "segments": (int(self.segment.name) + 1) if self.segment else 0,
            "run_dir": str(self.run_dir),
            "orders": (r.counters.new if r else 0), "amends": (r.counters.amend if r else 0),
            "cancels": (r.counters.cancel if r else 0), "fills": len(m.fills) if m is not None else 0,
            "position": r.position if r is not None else 0.0, "pnl": pnl,
            "fees": sum((m.fees_paid or {}).values()) if m is not None else 0.0,
            # the exit reconciliation's differences (0: the session's book is the venue's), and every
            # difference found during the session (faults produce some; each is an incident)
            "reconcile_differences": self.differences_at_exit if final else None,
            "reconcile_differences_total": self.reconcile_differences,
            "open_orders_at_exit": self.open_orders_at_exit if final else None,
            "risk_breaches": r.counters.risk_breaches if r is not None else 0,
            "kill_switch_events": r.counters.kill_switch_events if r is not None else 0,
            "dead_man_refreshes": vd.get("dead_man_refreshes", 0),
            "dead_man_arms": vd.get("dead_man_arms", 0),
            "refusals": r.counters.refusals if r is not None else 0,
            "cap_refusals": r.counters.cap_refusals if r is not None else 0,
            "validate_orders": r.counters.validate_orders if r is not None else 0,
            "venue_disconnects": self.venue_disconnects,
            "maybe_placed": m.counters.maybe_placed if m is not None else 0,
            "duplicate_fills": m.counters.duplicate_fills if m is not None else 0,
            "reconciliations": len(self.sup.reconciliations) if self.sup is not None else 0,
            "incidents_opened": self.files.incidents_opened if self.files is not None else 0,
            "venue": vd, "telemetry": tel,
        }
        if self.tick_to_order_ns:
            a = np.asarray(self.tick_to_order_ns) / 1e3
            out["tick_to_order_us"] = {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
                                       "n": int(a.size)}
        return out


def proven_skew_ms(offset_ns: int, rtt_ns: int) -> float:
    """The part of a clock offset estimate its round trip cannot explain (ms, signed).

    An offset measured over a round trip of ``rtt`` is only known to within +-rtt/2: a slow first
    round trip (the event loop busy at start) would otherwise read as a skew and trip the kill switch."""
    off, half = offset_ns / 1e6, max(0.0, rtt_ns / 2e6)
    return math.copysign(max(0.0, abs(off) - half), off)


def warm_up(pl: DecisionPipeline) -> None:
    """Run every compiled entry point once on a throwaway copy of the pipeline's arrays (the jitted
    code compiles or loads from the disk cache here, not on the first book message)."""
    w = copy.copy(pl)
    for k, v in vars(pl).items():
        if isinstance(v, np.ndarray):
            setattr(w, k, v.copy())
    t = time.time_ns()
    w.on_book(t, 1.0)
    w.on_fault(t, _risk.F_CLOCK_SKEW, 0.0)
    tick = float(w.V[V_TICK]) or 0.1
    w.decide(t, fair=1000.0, bid=1000.0 - tick, ask=1000.0 + tick, bid_qty=1.0, ask_qty=1.0, position=0.0,
             equity=0.0, data_age_ms=1.0, data_valid=True, market=0)
    w.drain_log()


def run_session(spec: SessionSpec) -> dict[str, Any]:
    """Run a session to its end (blocking); returns its final summary."""
    return asyncio.run(TradingSession(spec).run())
