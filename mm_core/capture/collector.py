"""The live collector: one WebSocket feed in, one run directory out.

Why it is shaped this way:

* ``ts_capture`` is taken in the client library's socket callback, as the frame comes off the socket
  (:mod:`mm_core.capture.wsclient`), before any parsing, so that the measured age (capture −
  exchange time) includes nothing of our own handling.
* The receive loop only stamps, parses (the adapter must verify checksums to resync) and routes.
  Every file -- raw archive, sample CSV, Parquet, event log, summary -- is written by the run's
  writer thread (:mod:`mm_core.store.run_writer`), fed one tuple per frame through a bounded queue,
  so no flush, compression or fsync ever delays a stamp. When the queue is full the loop pauses
  reading until it has drained to half and logs a ``writer_queue_full`` event: nothing is dropped.
* The loop's own lag (how long a just-arrived frame would wait for it) is measured all run long by
  :mod:`mm_core.capture.loop_lag` and reported in ``summary.json`` (``loop_lag_ms``) and by the gate.
* All protocol knowledge lives in the adapter (sans-IO); this module only moves frames, keeps time
  and reconnects. The same code captures any venue, or the local simulator speaking its dialect.
* Reconnects: a session that delivered a verified book snapshot (for a ticker-only feed: a ticker)
  was healthy, and when the server closes it the collector reconnects at once; exponential backoff
  and the reconnect budget apply to failed connects and to sessions that never became healthy.
* A write error (disk full, permission, I/O error) is fatal: the run stops with the error and exit
  code 1 instead of reconnecting.
* Everything that can go wrong on a day-long run is an *event* in the log (connects, disconnects,
  reconnect attempts with their delay, silences, checksum mismatches, resyncs, status changes, clock
  estimates), so the gate can judge the run afterwards from the files alone.
* Crash safety: CSV and raw archive are flushed every ``flush_interval_s``, Parquet parts are written
  atomically, and the summary is replaced atomically; a hard kill loses at most the last interval
  (of Parquet: the last ``parquet_flush_s``, which ``mm repair`` rebuilds from the raw archive).
* Portability: no ``loop.add_signal_handler`` (absent on Windows); plain ``signal.signal`` handlers
  hand over to the loop with ``call_soon_threadsafe``, and the loop never sleeps longer than a
  second, so Ctrl+C is honoured promptly on every OS.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import random
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable


from mm_core.adapters import DEFAULT_CONFIG_NAME, FeedSpec, adapter_class, venue_rules
from mm_core.capture.clock import clock_estimate
from mm_core.capture.layout import EXIT_FATAL, EXIT_MAX_SECONDS, EXIT_SIGNAL, SUMMARY_NAME
from mm_core.capture.loop_lag import LoopLagProbe
from mm_core.capture.rest_fetch import fetch_frame
from mm_core.capture.run_summary import RunSummary
from mm_core.capture.wsclient import ClientConnection, ConnectionClosed, InvalidHandshake, InvalidURI
from mm_core.capture.wsclient import connect_function, resolve as resolve_ws_client
from mm_core.arg_types import non_negative_float, positive_float, tcp_port, websocket_url
from mm_core.config import ConfigError, RuntimeConfig, load_config
from mm_core.events import (
    BookSnapshot,
    ClockEstimate,
    Connected,
    Disconnected,
    Event,
    Reconnecting,
    Silence,
    TopOfBook,
    WriterQueueFull,
)
from mm_core.store.repair import refuse_reason
from mm_core.store.run_writer import FRAME, LOG, SUMMARY, RunWriter, WriterFailed, describe_write_error

SUMMARY_EVERY_S = 5.0
# while capturing, a thread that wants the GIL waits at most this long for another to hand it over
# (default 5 ms: the writer thread could otherwise hold up a stamp by that much)
SWITCH_INTERVAL_S = 0.0005
AGE_BUCKETS_MS = (1, 2, 5, 10, 15, 20, 30, 50, 80, 100, 200, 400, 1000, 5000)

# how _handle_frame routes an event, by its KIND (looked up once per event class)
_R_TOP, _R_UPDATE, _R_STORE, _R_HEARTBEAT, _R_PONG, _R_OTHER = range(6)
_ROUTE_BY_KIND = {
    "top_of_book": _R_TOP,
    "book_update": _R_UPDATE,
    "book_snapshot": _R_STORE,
    "trade": _R_STORE,
    "heartbeat": _R_HEARTBEAT,
    "pong": _R_PONG,
}


class FatalCaptureError(RuntimeError):
    """The run cannot continue (rejected subscription, reconnect budget exhausted, bad endpoint,
    a file that cannot be written)."""


class _ConnectFailed(Exception):
    """Connecting (TCP, TLS or the WebSocket handshake) failed; ``cause`` says how."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Collector:
    """Runs one capture until max-seconds, a signal, or a fatal error; returns an exit code."""

    def __init__(
        self,
        config: RuntimeConfig,
        out_csv: Path,
        *,
        url: str | None = None,
        run_dir: Path | None = None,
        max_seconds: float | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        status_every_s: float = 10.0,
        quiet: bool = False,
        parquet_flush_s: float = 60.0,
        seed: int | None = None,
        ws_client: str | None = None,
        rest_url: str | None = None,
        lag: LoopLagProbe | None = None,
        label: str = "",
        listener: Any = None,
        handle_signals: bool = True,
    ) -> None:
        self.config = config
        # a trader riding on this capture (mm_core/trading/session.py): listener.on_frame(ts_capture,
        # market_events, health_events, heartbeat) after each frame is parsed, listener.on_event(event)
        # for the collector's own events (connected, disconnected, ...). It must not block.
        self.listener = listener
        self.handle_signals = handle_signals
        self.url = url or config.exchange.endpoint
        self.rest_url = rest_endpoint(config, url, rest_url)
        self.run_dir = run_dir if run_dir is not None else out_csv.parent  # Path("F.csv").parent == Path(".")
        self.out_csv = out_csv
        self.max_seconds = max_seconds
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.status_every_s = status_every_s
        self.quiet = quiet
        self.parquet_flush_s = parquet_flush_s
        self._rng = random.Random(seed)
        self.ws_client = resolve_ws_client(ws_client)  # "picows" (if installed) or "websockets"
        self._connect = connect_function(self.ws_client)
        feed = config.feed
        self.spec = FeedSpec(
            symbols=(config.symbol,),
            channels=tuple(feed.channels),
            book_depth=feed.book_depth,
            instruments={config.symbol: config.make_instrument()},
            rest_endpoint=self.rest_url,
            snapshot_verify_s=feed.snapshot_verify_s,
        )
        self.venue = venue_rules(config.exchange.name)
        self.adapter = adapter_class(config.exchange.adapter)(self.spec, exchange=config.exchange.name)
        self._stopped_ns: int | None = None  # wall time the run was told to stop (max-seconds, signal)
        self.sample_source = "book" if "book" in feed.channels else "ticker"
        self.summary = RunSummary(
            exchange=config.exchange.name,
            symbol=config.symbol,
            url=self.url,
            config=config.source,
            csv=out_csv.name,
        )
        self._stop_reason: str | None = None
        self._ws: ClientConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pings: dict[int, int] = {}
        self._ping_id = 1000
        self._recent_ages: list[float] = []
        # the ages are only kept for the status line: a quiet day-long run must not hoard them
        self._keep_ages = not quiet and status_every_s > 0
        self._routes: dict[type, int] = {}  # event class -> _R_* (see _route)
        self._housekeeping_due = 0.0  # monotonic time before which _housekeeping has nothing to do
        self._reconnect_times: collections.deque[float] = collections.deque()
        self._metrics: dict[str, Any] | None = None
        self._metrics_server: Any = None  # (server, thread) from prometheus_client, while running
        self._fatal: str | None = None
        self._samples = 0
        self._queue_full_events = 0
        self._queue_full_wait_s = 0.0
        self._tops: dict[str, TopOfBook] = {}  # latest verified top of book per symbol
        self._healthy = False  # this session delivered a verified snapshot (see _handle_frame)
        self.writer: RunWriter | None = None
        self._put: Callable[[tuple], None] = lambda item: None
        self.lag = lag if lag is not None else LoopLagProbe()  # one per event loop: feeds of one process share it
        self.label = label  # "[venue pair] " before every line when one process captures several feeds
        self._last_failure: str | None = None  # why the latest connection attempt failed (for the final error)
        self._created_run_dir = not self.run_dir.exists()

    # ------------------------------------------------------------------ files

    def _open_files(self) -> None:
        """Create the run's files and start their writer thread (before any frame is received)."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FatalCaptureError(f"cannot create run directory {self.run_dir}: "
                                    f"{describe_write_error(exc)}") from None
        if (self.run_dir / SUMMARY_NAME).exists():
            raise FatalCaptureError(refuse_reason(self.run_dir))
        header = {
            "exchange": self.config.exchange.name,
            "adapter": self.config.exchange.adapter,
            "url": self.url,
            "symbols": list(self.spec.symbols),
            "depth": self.spec.book_depth,
            "channels": list(self.spec.channels),
            "price_precision": self.config.instrument.price_precision,
            "qty_precision": self.config.instrument.qty_precision,
        }
        feed = self.config.feed
        writer = RunWriter(self.run_dir, self.out_csv.name, header, flush_interval_s=feed.flush_interval_s,
                           parquet_flush_s=self.parquet_flush_s, queue_max=feed.writer_queue_max,
                           on_failure=self._writer_failed)
        try:
            writer.open()
            self.summary.write(self.run_dir)
        except OSError as exc:
            raise FatalCaptureError(f"{self.run_dir}: {describe_write_error(exc)}") from None
        self.writer = writer
        self._put = writer.put
        writer.start()

    def _writer_failed(self, exc: BaseException) -> None:
        """Called on the writer thread when a write failed: end the run from the loop's thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._fail_run, describe_write_error(exc))
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _fail_run(self, message: str) -> None:
        if self._fatal is None:
            self._fatal = message
        ws = self._ws
        if ws is not None:
            asyncio.get_running_loop().create_task(ws.close())
        self._stop_event.set()

    def _close_files(self) -> None:
        """Let the writer write what is queued and close every file (blocks: the run is over)."""
        writer = self.writer
        if writer is None:
            return
        try:
            writer.close()
        except WriterFailed as exc:
            if self.summary.fatal_error is None:  # the run ended otherwise, then a final write failed
                self.summary.exit_reason = EXIT_FATAL
                self.summary.fatal_error = str(exc)
            self._say(f"error: {exc}")
            try:  # the summary's last word, written directly: it may still fit
                self.summary.write(self.run_dir)
            except OSError:
                pass

    # ------------------------------------------------------------------ events

    def _emit(self, event: Event) -> None:
        """A health event produced by the collector itself (not parsed from the feed)."""
        self._put((LOG, event))
        if self.listener is not None:
            self.listener.on_event(event)

    def _header(self, ts: int | None = None) -> dict[str, Any]:
        return {
            "exchange": self.config.exchange.name,
            "symbol": self.config.symbol,
            "ts_exchange": None,
            "ts_capture": ts if ts is not None else time.time_ns(),
        }

    def _route(self, cls: type) -> int:
        route = self._routes[cls] = _ROUTE_BY_KIND.get(cls.KIND, _R_OTHER)  # type: ignore[attr-defined]
        return route

    def _handle_frame(self, frame: str | bytes, ts_capture: int, ws: ClientConnection) -> bool:
        """Parse and route one frame, and hand it to the writer; False when it was only a pong.

        Pongs prove the socket is alive, not that the subscription still delivers: the watchdog
        and the gap statistics count only feed frames (data, heartbeats, status, acks).

        The hot path (~1,000 frames/s): events are routed by class through a dict (no chain of
        string compares), and the frame, its events and its latency sample go to the writer as one
        tuple (no file is touched here).
        """
        summary = self.summary
        summary.messages += 1
        if self._metrics:
            self._metrics["messages"].inc()
        feed_frame = False
        heartbeat = False
        sampled_update: Event | None = None
        routes = self._routes
        market: list[Event] = []
        health: list[Event] = []
        keep = market.append
        sample: tuple[TopOfBook, int] | None = None
        for ev in self.adapter.on_message(frame, ts_capture):
            cls = ev.__class__
            route = routes.get(cls)
            if route is None:
                route = self._route(cls)
            if route == _R_UPDATE:
                feed_frame = True
                keep(ev)
                if ev.verified and ev.ts_exchange is not None:  # type: ignore[attr-defined]
                    sampled_update = ev
            elif route == _R_TOP:
                feed_frame = True
                keep(ev)
                if ev.source == self.sample_source:  # type: ignore[attr-defined]
                    self._tops[ev.symbol] = ev  # type: ignore[assignment]
                    if self.sample_source == "ticker":
                        self._healthy = True
                        if ev.ts_exchange is not None:  # one symbol per run: one ticker per frame
                            sample = (ev, ev.ts_exchange)
            elif route == _R_STORE:
                feed_frame = True
                keep(ev)
                if cls is BookSnapshot and ev.verified:  # type: ignore[attr-defined]
                    self._healthy = True
            elif route == _R_HEARTBEAT:
                feed_frame = True
                heartbeat = True
                summary.heartbeats += 1
            elif route == _R_PONG:
                self._on_pong(ev, ts_capture)
            else:
                feed_frame = True
                health.append(ev)
                kind = ev.KIND
                if kind == "resync":
                    self._send_soon(ws, self.adapter.resync_messages(ev.symbol))
                elif kind == "snapshot_request":
                    self._fetch_soon(ws, ev.url)  # type: ignore[attr-defined]
                elif kind == "reconnect_request":
                    self._say(f"the venue asked to reconnect: {getattr(ev, 'reason', '')}")
                    self._close_soon(ws)
                elif kind == "subscription_error":
                    summary.subscription_errors += 1
                    if self.venue.duplicate_subscription(str(getattr(ev, "error", ""))):
                        continue  # a resync's re-subscribe racing the old one: harmless, logged
                    self._fatal = (
                        f"subscription rejected by {self.url}: {getattr(ev, 'error', '')!s} "
                        f"(channel {getattr(ev, 'channel', '?')}, symbol {ev.symbol})"
                    )
                    self._close_soon(ws)
        if sampled_update is not None and self.sample_source == "book":
            # one latency sample per verified book update (the top after it, its exchange time)
            top = self._tops.get(sampled_update.symbol)
            if top is not None:
                sample = (top, sampled_update.ts_exchange)
        self._put((FRAME, ts_capture, frame, market, health, sample))
        if self.listener is not None:
            self.listener.on_frame(ts_capture, market, health, heartbeat)
        if sample is not None:
            self._count_sample(sample[1], ts_capture)  # type: ignore[arg-type]
        return feed_frame

    def _count_sample(self, ts_exchange: int, ts_capture: int) -> None:
        self._samples += 1
        if self._keep_ages or self._metrics:
            age = (ts_capture - ts_exchange) / 1e6
            if self._keep_ages:
                self._recent_ages.append(age)
            if self._metrics:
                self._metrics["age"].observe(age)

    def _on_pong(self, ev: Any, t1: int) -> None:
        t0 = self._pings.pop(ev.req_id, None) if ev.req_id is not None else None
        if t0 is None or ev.time_in is None or ev.time_out is None:
            return
        offset, rtt = clock_estimate(t0, t1, ev.time_in, ev.time_out)
        est = ClockEstimate(**self._header(t1), offset_ns=offset, rtt_ns=rtt)
        self.summary.clock_offsets_ms.append(offset / 1e6)
        self.summary.rtts_ms.append(rtt / 1e6)
        self._emit(est)

    def _send_soon(self, ws: ClientConnection, messages: list[str]) -> None:
        async def send() -> None:
            try:
                for m in messages:
                    await ws.send(m)
            except ConnectionClosed:
                pass

        asyncio.get_running_loop().create_task(send())

    def _fetch_soon(self, ws: ClientConnection, url: str) -> None:
        """Fetch a REST snapshot on a worker thread; its answer is handled as a frame of this session
        (dropped if the session ended meanwhile: the adapter was reset and asks again)."""
        async def fetch() -> None:
            frame, t_recv = await asyncio.to_thread(fetch_frame, url)
            if self._ws is ws and not self._stop_reason and not self._fatal:
                self._handle_frame(frame, t_recv, ws)

        asyncio.get_running_loop().create_task(fetch())

    def _close_soon(self, ws: ClientConnection) -> None:
        asyncio.get_running_loop().create_task(ws.close())

    def _sync_stats(self) -> None:
        s, a = self.summary, self.adapter.stats
        s.book_updates = a.book_updates
        s.checksums_ok = a.checksums_ok
        s.checksums_failed = a.checksums_failed
        s.unverified_updates = a.unverified_updates
        s.verified_updates = a.verified_updates
        s.snapshot_checks_ok = a.snapshot_checks_ok
        s.snapshot_checks_failed = a.snapshot_checks_failed
        s.crossed_books = a.crossed_books
        s.resyncs = a.resyncs
        s.bad_messages = a.bad_messages
        s.trades = a.trades
        s.samples = self._samples
        w = self.writer
        if w is not None:
            s.writer = {"queue_max": w.queue_max, "queue_high_water": w.high_water,
                        "queue_full_events": self._queue_full_events,
                        "queue_full_wait_s": round(self._queue_full_wait_s, 3)}
        s.loop_lag_ms = self.lag.summary()

    # ------------------------------------------------------------------ connection

    async def _session(self, attempt: int, deadline: float | None) -> tuple[float, bool]:
        """One connection: connect, subscribe, pump frames until it ends.

        Returns (lifetime in s, healthy: it delivered a verified snapshot). Only a failure to
        connect raises :class:`_ConnectFailed`; nothing written to disk happens on this thread.
        """
        feed = self.config.feed
        started = time.monotonic()
        try:
            ws = await self._connect(
                self.url,
                open_timeout=10,
                ping_interval=20,
                ping_timeout=20,
                close_timeout=2,
                max_size=2**24,
                max_queue=4096,
            )
        except (OSError, *InvalidHandshake, asyncio.TimeoutError, TimeoutError) as exc:
            raise _ConnectFailed(exc) from None
        self._ws = ws
        self._healthy = False
        self.adapter.reset()
        self._tops.clear()  # no sample may carry a top of book from the previous connection
        self.summary.connects += 1
        self._emit(Connected(**self._header(), url=self.url, attempt=attempt))
        pinger = asyncio.get_running_loop().create_task(self._pinger(ws, feed.ping_interval_s))
        reason, code = "closed", None
        try:
            for m in self.adapter.subscribe_messages():
                await ws.send(m)
            last_frame = time.monotonic()
            summary = self.summary
            assert self.writer is not None
            queue, queue_max = self.writer.queue, self.writer.queue_max
            recv = ws.recv_stamped
            while True:
                if self._stop_reason or self._fatal:
                    reason = self._fatal or self._stop_reason or "stop"
                    break
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    self._stop_reason = EXIT_MAX_SECONDS
                    self._stopped_ns = time.time_ns()
                    reason = "max_seconds"
                    break
                silent = now - last_frame
                if silent >= feed.watchdog_silence_s:
                    self.summary.silences += 1
                    self._emit(Silence(**self._header(), duration_s=round(silent, 3)))
                    reason = f"silence {silent:.1f}s (watchdog)"
                    break
                timeout = min(1.0, feed.watchdog_silence_s - silent)
                if deadline is not None:
                    timeout = min(timeout, deadline - now)
                try:
                    # One timer per window (<= 1 s), not one per frame: arming and cancelling an
                    # asyncio timeout costs several us, as much as a fifth of receiving a frame.
                    # Cancelling recv() is safe (the next recv() returns the next message).
                    async with asyncio.timeout(timeout):
                        while True:
                            ts, frame = await recv()  # stamped as it came off the socket
                            mono = time.monotonic()
                            if self._handle_frame(frame, ts, ws):
                                gap = mono - self._last_frame_mono
                                if gap > summary.longest_gap_s:
                                    summary.longest_gap_s = round(gap, 3)
                                last_frame = self._last_frame_mono = mono
                            if len(queue) >= queue_max:
                                break  # wait for the writer outside this timeout (below)
                            self._housekeeping(mono)
                            if self._stop_reason or self._fatal or (deadline is not None and mono >= deadline):
                                break  # the checks above, before any further recv()
                    if len(queue) >= queue_max:
                        await self._wait_for_writer()
                        last_frame = time.monotonic()  # the socket was not read meanwhile
                except TimeoutError:
                    self._housekeeping()
                    continue
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            code = rcvd.code if rcvd is not None else 1006
            reason = (rcvd.reason if rcvd is not None and rcvd.reason else None) or f"connection closed ({code})"
        except OSError as exc:  # the socket failed under a library that lets it through
            reason = f"socket error: {exc}"
        finally:
            pinger.cancel()
            self._ws = None
            lifetime = time.monotonic() - started
            self.summary.connected_s += lifetime
            self.summary.disconnects += 1
            self._emit(Disconnected(**self._header(), reason=str(reason)[:200], code=code))
            await _close_quietly(ws)
        return lifetime, self._healthy

    async def _wait_for_writer(self) -> None:
        """The writer queue is full: stop reading until it drained to half; log how long it took.

        Nothing is dropped: frames wait in the socket (and the client's buffer), so the ones that
        arrive meanwhile are stamped late -- the ``writer_queue_full`` event says when and how long.
        """
        writer = self.writer
        assert writer is not None
        queued = writer.backlog
        t0 = time.monotonic()
        while writer.backlog > writer.queue_max // 2 and writer.alive and not self._fatal:
            await asyncio.sleep(0.005)
        waited = time.monotonic() - t0
        self._queue_full_events += 1
        self._queue_full_wait_s += waited
        self._emit(WriterQueueFull(**self._header(), duration_s=round(waited, 3), queued=queued))
        self._say(f"writer queue full ({queued} items): paused reading for {waited:.2f} s")

    async def _pinger(self, ws: ClientConnection, every_s: float) -> None:
        try:
            while True:
                await asyncio.sleep(every_s if self._pings or self.summary.messages else 1.0)
                self._ping_id += 1
                self._pings[self._ping_id] = time.time_ns()
                if len(self._pings) > 100:  # unanswered pings must not pile up forever
                    self._pings.pop(next(iter(self._pings)))
                await ws.send(self.adapter.ping_message(self._ping_id))
        except (*ConnectionClosed, asyncio.CancelledError):
            return

    def _backoff_delay(self, exponent: int) -> float:
        """Jittered exponential backoff: uniform in [½, 1] × min(max, base·2ⁿ)."""
        f = self.config.feed
        cap = min(f.reconnect_max_s, f.reconnect_base_s * (2**min(exponent, 20)))
        return cap * (0.5 + 0.5 * self._rng.random())

    def _check_budget(self) -> None:
        """Count one reconnect after a failed connect or an unhealthy session; raise past the budget."""
        f = self.config.feed
        now = time.monotonic()
        self._reconnect_times.append(now)
        while self._reconnect_times and now - self._reconnect_times[0] > f.reconnect_budget_window_s:
            self._reconnect_times.popleft()
        if len(self._reconnect_times) > f.reconnect_budget:
            raise FatalCaptureError(
                f"reconnect budget exhausted: {len(self._reconnect_times)} reconnects within "
                f"{f.reconnect_budget_window_s:.0f} s (feed.reconnect_budget = {f.reconnect_budget})"
            )

    # ------------------------------------------------------------------ housekeeping

    def _housekeeping(self, mono: float | None = None) -> None:
        """Summary and status line on their timers; files are the writer thread's business."""
        mono = time.monotonic() if mono is None else mono
        if mono < self._housekeeping_due:  # after every frame: nothing due, the usual case
            return
        if mono - self._last_summary >= SUMMARY_EVERY_S:
            self._write_summary()
        if self.status_every_s > 0 and mono - self._last_status >= self.status_every_s:
            self._print_status(mono)
        due = self._last_summary + SUMMARY_EVERY_S
        if self.status_every_s > 0:
            due = min(due, self._last_status + self.status_every_s)
        self._housekeeping_due = due

    def _summary_now(self) -> RunSummary:
        now = time.time_ns()
        s = self.summary
        self._sync_stats()
        # the run's measured window ends when it was told to stop (deadline or signal): the close
        # handshake and file flushes after that are shutdown, and must not read as downtime
        end = self._stopped_ns if self._stopped_ns is not None else now
        s.duration_s = round((end - s.started_ns) / 1e9, 3)
        connected = s.connected_s + (time.monotonic() - self._session_started if self._ws else 0.0)
        s.uptime_share = round(min(1.0, connected / s.duration_s), 6) if s.duration_s > 0 else 0.0
        if s.messages:  # an ongoing gap (even while disconnected) is already a gap
            s.longest_gap_s = max(s.longest_gap_s, round(time.monotonic() - self._last_frame_mono, 3))
        s.updated_ns = now
        return s

    def _write_summary(self) -> None:
        """Hand the current summary to the writer (it replaces summary.json atomically, fsync'd)."""
        self._put((SUMMARY, self._summary_now().to_dict()))
        self._last_summary = time.monotonic()

    def _print_status(self, mono: float) -> None:
        self._last_status = mono
        if self.quiet:
            return
        ages = sorted(self._recent_ages)
        self._recent_ages = []
        if ages:
            p50 = ages[len(ages) // 2]
            p99 = ages[min(len(ages) - 1, int(len(ages) * 0.99))]
            lat = f"age p50 {p50:.1f} ms p99 {p99:.1f} ms"
        else:
            lat = "no samples"
        s = self.summary
        self._sync_stats()
        elapsed = (time.time_ns() - s.started_ns) / 1e9
        state = "connected" if self._ws is not None else "reconnecting"
        self._say(
            f"[{elapsed:8.0f}s] {state}: {s.messages} msgs, {s.samples} samples, {lat}, "
            f"{_integrity(s)}, {s.reconnects} reconnects"
        )

    def _say(self, text: str) -> None:
        if not self.quiet:
            print(self.label + text, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ signals & metrics

    def request_stop(self, reason: str = EXIT_SIGNAL) -> None:
        """Thread/signal-safe: ask the run to finish cleanly (flush and close everything)."""
        if self._stop_reason is None:
            self._stopped_ns = time.time_ns()
            self._stop_reason = reason
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        ws = self._ws
        if ws is not None:
            asyncio.get_running_loop().create_task(ws.close())
        self._stop_event.set()

    def _start_metrics(self) -> None:
        if self.metrics_port is None:
            return
        from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

        reg = CollectorRegistry()
        self._metrics = {
            "messages": Counter("mm_messages", "frames received", registry=reg),
            "reconnects": Counter("mm_reconnects", "reconnect attempts", registry=reg),
            "age": Histogram("mm_feed_age_ms", "feed age (capture - exchange time), ms",
                             buckets=AGE_BUCKETS_MS, registry=reg),
        }
        self._metrics_server = start_http_server(self.metrics_port, addr=self.metrics_host, registry=reg)
        self._say(f"metrics on http://{self.metrics_host}:{self.metrics_port}/metrics")

    def _stop_metrics(self) -> None:
        """The endpoint lives as long as the run (a library caller's process goes on after it)."""
        started, self._metrics_server = self._metrics_server, None
        if started is None:
            return
        server = started[0] if isinstance(started, tuple) else started
        try:
            server.shutdown()
            server.server_close()
        except Exception as exc:
            self._say(f"error stopping the metrics endpoint: {exc}")

    # ------------------------------------------------------------------ main loop

    async def run_async(self) -> int:
        return (await run_feeds([self]))[0]

    def _begin(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the run's files and metrics endpoint (before any process-wide setup or frame)."""
        self._loop = loop
        self._stop_event = asyncio.Event()
        self._last_summary = self._last_status = time.monotonic()
        self._session_started = self._last_frame_mono = time.monotonic()
        self._open_files()
        self._start_metrics()

    async def _capture(self) -> int:
        """The run itself, from its first connect to its closed files; returns the exit code."""
        # the run starts now, once its files are open and warmed up: setup is not downtime
        self.summary.started_ns = time.time_ns()
        self._last_summary = self._last_status = time.monotonic()
        self._session_started = self._last_frame_mono = time.monotonic()
        deadline = time.monotonic() + self.max_seconds if self.max_seconds else None
        self._say(f"collecting {self.config.symbol} from {self.url} into {self.run_dir.resolve()} "
                  f"({self.ws_client})")
        code = 0
        try:
            await self._reconnect_loop(deadline)
            self.summary.exit_reason = self._stop_reason or EXIT_MAX_SECONDS
        except FatalCaptureError as exc:
            self.summary.exit_reason = EXIT_FATAL
            self.summary.fatal_error = str(exc)
            print(f"{self.label}error: {exc}", file=sys.stderr, flush=True)
            code = 1
        finally:
            self.summary.ended_ns = time.time_ns()
            try:
                self._write_summary()
            finally:
                self._close_files()
                self._stop_metrics()
            self._print_final()
        if self.summary.exit_reason == EXIT_FATAL:
            code = 1  # also when the run's last write failed after it had ended cleanly
        elif self.summary.messages == 0:
            # a run that never received anything failed, whatever stopped it (max-seconds, a signal)
            why = f": the last attempt failed with {self._last_failure}" if self._last_failure else ""
            print(f"error: no data received from {self.url} in the whole run{why}", file=sys.stderr, flush=True)
            code = 1
        return code

    def remove_empty_run_dir(self) -> None:
        """After a failed run that captured nothing: remove the run directory, if this run created it.

        The command (``mm collect``) calls this: its events and summary only repeat the error already
        on screen. A library caller keeps them to inspect; a directory that existed before (the
        user's, or an earlier run's) is always left alone.
        """
        if self.summary.samples or not self._created_run_dir or not self.run_dir.is_dir():
            return
        try:
            shutil.rmtree(self.run_dir)
        except OSError as exc:
            self._say(f"could not remove the empty run directory {self.run_dir}: {exc}")
        else:
            self._say(f"nothing captured: removed {self.run_dir.resolve()}")

    async def _reconnect_loop(self, deadline: float | None) -> None:
        """Sessions until the deadline, a stop or a fatal error (raised as FatalCaptureError).

        After a healthy session (verified snapshot) ends, reconnect at once and reset the backoff;
        after a failed connect or a session that never became healthy, wait a jittered exponential
        backoff and count the attempt against the reconnect budget (which stops a true loop).
        """
        exponent = 0
        attempt = 0
        while True:
            if self._fatal:
                raise FatalCaptureError(self._fatal)
            if self._stop_reason:
                return
            if deadline is not None and time.monotonic() >= deadline:
                self._stop_reason = EXIT_MAX_SECONDS
                self._stopped_ns = time.time_ns()
                return
            healthy = False
            try:
                self._session_started = time.monotonic()
                _, healthy = await self._session(attempt, deadline)
            except _ConnectFailed as exc:
                why = connect_failure_text(exc.cause)
                self._last_failure = why
                self._emit(Disconnected(**self._header(), reason=f"connect failed: {why}"[:200]))
                self.summary.disconnects += 1
                self._say(f"connect to {self.url} failed: {why}")
            except InvalidURI as exc:
                raise FatalCaptureError(f"bad endpoint URL {self.url!r}: {exc}") from None
            if self._fatal:
                raise FatalCaptureError(self._fatal)
            if self._stop_reason:
                return
            attempt += 1
            if healthy:
                exponent = 0
                delay = 0.0
            else:
                self._check_budget()
                delay = self._backoff_delay(exponent)
                exponent += 1
            self.summary.reconnects += 1
            if self._metrics:
                self._metrics["reconnects"].inc()
            self._emit(Reconnecting(**self._header(), attempt=attempt, delay_s=round(delay, 3)))
            self._say(f"reconnecting in {delay:.1f} s (attempt {attempt}"
                      f"{', the session was healthy' if healthy else ''})")
            await self._sleep(delay, deadline)

    async def _sleep(self, delay: float, deadline: float | None) -> None:
        end = time.monotonic() + delay
        if deadline is not None:
            end = min(end, deadline)
        while not self._stop_reason and not self._fatal:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                async with asyncio.timeout(min(1.0, left)):
                    await self._stop_event.wait()
            except TimeoutError:
                self._housekeeping()

    def _print_final(self) -> None:
        s = self.summary
        self._say(
            f"done ({s.exit_reason}{': ' + s.fatal_error if s.fatal_error else ''}): "
            f"{s.duration_s:.1f} s, {s.messages} msgs, {s.samples} samples, "
            f"{_integrity(s)}, {s.reconnects} reconnects; "
            f"files in {self.run_dir.resolve()}"
        )

    def run(self) -> int:
        """Blocking entry point (a fresh event loop; the default loop on every OS)."""
        return asyncio.run(self.run_async())


def _integrity(s: RunSummary) -> str:
    """The book checks of the run in the venue's terms: checksums, or (venues without one) updates
    verified in sync, re-snapshot comparisons and crossed books."""
    if s.checksums_ok or s.checksums_failed or not s.verified_updates:
        return f"checksums {s.checksums_ok} ok / {s.checksums_failed} bad"
    return (f"{s.verified_updates} updates verified in sync, re-snapshots {s.snapshot_checks_ok} ok / "
            f"{s.snapshot_checks_failed} differed, {s.crossed_books} crossed")


def rest_endpoint(config: RuntimeConfig, url: str | None, rest_url: str | None) -> str:
    """The REST base URL: ``rest_url``; else, when the WebSocket URL was overridden (a simulator on
    loopback serves both on one port), its http(s) form; else the config's ``rest_endpoint``."""
    if rest_url:
        return rest_url.rstrip("/")
    if url:
        return ("https" + url[3:] if url.startswith("wss") else "http" + url[2:]).rstrip("/")
    return config.exchange.rest_endpoint.rstrip("/")


def _install_signals(collectors: list[Collector]) -> Callable[[], None]:
    """SIGINT/SIGTERM (SIGBREAK: Ctrl+Break on Windows) stop every feed of the process cleanly; plain
    ``signal.signal`` (no ``loop.add_signal_handler``: absent on Windows). Returns the restorer."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        for c in collectors:
            c.request_stop(EXIT_SIGNAL)

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread, or unsupported here
            pass

    def restore() -> None:
        for sig, h in previous.items():
            try:
                signal.signal(sig, h)
            except (ValueError, OSError):
                pass

    return restore


async def run_feeds(collectors: list[Collector]) -> list[int]:
    """Run several feeds in this event loop (one feed: :meth:`Collector.run_async`); their exit codes.

    Each feed keeps its own run directory, writer thread, samples, events and summary; the process-
    wide parts are set up once: signal handlers (they stop every feed), the frozen startup heap, the
    GIL switch interval and the loop-lag probe (the loop is shared, so is its lag). A feed that ends
    with a fatal error ends alone; the others go on.
    """
    loop = asyncio.get_running_loop()
    begun: list[Collector] = []
    try:
        for c in collectors:
            c._begin(loop)
            begun.append(c)
    except BaseException:
        for c in begun:
            c._close_files()
            c._stop_metrics()
        raise
    # a caller that owns the process's signals (a trading session riding on the capture) opts out
    handlers = [c for c in collectors if c.handle_signals]
    restore_signals = _install_signals(handlers) if handlers else (lambda: None)
    frozen = _freeze_startup_heap()
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    probes = {id(c.lag): c.lag for c in collectors}
    for probe in probes.values():
        probe.start(loop)
    try:
        return list(await asyncio.gather(*(c._capture() for c in collectors)))
    finally:
        restore_signals()
        for probe in probes.values():
            probe.stop()
        sys.setswitchinterval(switch_interval)
        if frozen:
            gc.unfreeze()


def _freeze_startup_heap() -> bool:
    """Move what exists before the first frame (modules, JIT kernels, config) out of the GC's reach.

    A full collection otherwise walks that whole heap -- tens of ms with pyarrow and numba loaded --
    and every frame arriving meanwhile gets a late ``ts_capture``. Only the run's own objects are
    scanned after this; ``run_async`` unfreezes at the end, and leaves a heap that someone else
    already froze (or a disabled GC) alone. Returns whether it froze.
    """
    if not gc.isenabled() or gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


def connect_failure_text(exc: BaseException) -> str:
    """One line saying why a connection attempt failed (DNS, refused, timeout, TLS, handshake)."""
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed ({exc.strerror or exc})"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _close_quietly(ws: ClientConnection) -> None:
    try:
        await asyncio.wait_for(ws.close(), 3)
    except Exception:
        pass


# ---------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbol", help="pair to capture, e.g. BTC/EUR (default: the config's)")
    p.add_argument("--out", type=Path,
                   help="sample CSV to write; its folder becomes the run directory (required without --feed)")
    p.add_argument("--feed", action="append", metavar="SPEC", default=None,
                   help="capture several feeds in this one process: config=TOML[,symbol=PAIR][,url=WS][,rest_url=URL]"
                        "[,depth=N], repeated; each feed gets RUN_DIR/<venue>-<PAIR>/ with its own samples, events, "
                        "summary and gate (mm gate RUN_DIR judges each); needs --run-dir (default: one feed)")
    p.add_argument("--max-seconds", type=positive_float, default=None,
                   help="stop after this many seconds (> 0; default: run until Ctrl+C)")
    p.add_argument("--url", type=websocket_url,
                   help="WebSocket endpoint ws://... or wss://... (default: the config's [exchange] endpoint)")
    p.add_argument("--config", type=Path, help=f"runtime config TOML (default: config/{DEFAULT_CONFIG_NAME})")
    p.add_argument("--rest-url", help="REST base URL for venues that seed books from snapshots (default: the "
                                      "http(s) form of --url when --url is given, else the config's)")
    p.add_argument("--run-dir", type=Path, help="run directory (default: the folder of --out)")
    p.add_argument("--depth", type=int, choices=(10, 25, 100, 500, 1000),
                   help="book depth override (default: the config's [feed] book_depth)")
    p.add_argument("--metrics-port", type=tcp_port, help="serve Prometheus metrics on this port (default: off)")
    p.add_argument("--metrics-host", default="127.0.0.1", help="metrics bind address (default: 127.0.0.1)")
    p.add_argument("--status-every", type=non_negative_float, default=10.0,
                   help="status line period in seconds, 0 = none (default: 10)")
    p.add_argument("--parquet-flush-s", type=positive_float, default=60.0,
                   help="Parquet part period in seconds (default: 60)")
    p.add_argument("--quiet", action="store_true", help="no status lines (default: off)")
    p.add_argument("--ws-client", choices=("auto", "picows", "websockets"), default=None,
                   help="WebSocket client library (default: $MM_WS_CLIENT, else picows if installed)")


FEEDS_NAME = "feeds.json"
_FEED_KEYS = ("config", "symbol", "url", "rest_url", "depth")


def parse_feed_spec(spec: str) -> dict[str, str]:
    """``config=a.toml,symbol=ETH/EUR,url=ws://h:p`` -> dict; ValueError naming the problem."""
    out: dict[str, str] = {}
    for part in filter(None, (x.strip() for x in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in _FEED_KEYS or not value:
            raise ValueError(f"--feed {spec!r}: {part!r} is not KEY=VALUE with KEY one of {', '.join(_FEED_KEYS)}")
        out[key] = value
    if "config" not in out:
        raise ValueError(f"--feed {spec!r}: config=TOML is required")
    return out


def feed_name(cfg: RuntimeConfig) -> str:
    """``<venue>-<BASEQUOTE>``: the feed's folder in a multi-feed run (portable: no slash)."""
    return f"{cfg.exchange.name}-{cfg.instrument.symbol.replace('/', '')}"


def run_many(args: argparse.Namespace) -> int:
    """``mm collect --feed ... --run-dir DIR``: N feeds, one event loop, one folder each; exit 0 only if
    every feed ended cleanly. ``DIR/feeds.json`` lists them (name, folder, config, url) for the gate."""
    if args.run_dir is None:
        print("error: --feed needs --run-dir (each feed writes RUN_DIR/<venue>-<PAIR>/)", file=sys.stderr)
        return 2
    clash = [f"--{n.replace('_', '-')}" for n in ("out", "url", "symbol", "config", "depth", "metrics_port", "rest_url")
             if getattr(args, n, None) is not None]
    if clash:
        print(f"error: with --feed, give {', '.join(clash)} per feed (inside the SPEC) or not at all", file=sys.stderr)
        return 2
    try:
        resolve_ws_client(getattr(args, "ws_client", None))
        specs = [parse_feed_spec(f) for f in args.feed]
        cfgs = [load_config(Path(sp["config"]), symbol=sp.get("symbol"),
                            depth=int(sp["depth"]) if "depth" in sp else None) for sp in specs]
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = [feed_name(c) for c in cfgs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        print(f"error: feeds {dupes} appear more than once (one folder per venue and pair)", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir)
    lag = LoopLagProbe()
    collectors = [
        Collector(cfg, run_dir / name / "F.csv", url=sp.get("url"), max_seconds=args.max_seconds,
                  status_every_s=args.status_every, quiet=args.quiet, parquet_flush_s=args.parquet_flush_s,
                  ws_client=getattr(args, "ws_client", None), rest_url=sp.get("rest_url"), lag=lag,
                  label=f"[{name}] ")
        for sp, cfg, name in zip(specs, cfgs, names)
    ]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        listing = [{"name": n, "dir": n, "config": str(Path(sp["config"]).resolve()), "url": c.url,
                    "exchange": cfg.exchange.name, "symbol": cfg.instrument.symbol}
                   for n, sp, c, cfg in zip(names, specs, collectors, cfgs)]
        tmp = run_dir / (FEEDS_NAME + ".tmp")
        tmp.write_text(json.dumps({"feeds": listing}, indent=2), encoding="utf-8")
        tmp.replace(run_dir / FEEDS_NAME)
        codes = asyncio.run(run_feeds(collectors))
    except (FatalCaptureError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return max(codes, default=0)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "feed", None):
        return run_many(args)
    if args.out is None:
        print("error: --out is required (or --feed SPEC ... --run-dir DIR for several feeds)", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, symbol=args.symbol, depth=args.depth)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        resolve_ws_client(getattr(args, "ws_client", None))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    collector = Collector(
        cfg,
        args.out,
        url=args.url,
        run_dir=args.run_dir,
        max_seconds=args.max_seconds,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        status_every_s=args.status_every,
        quiet=args.quiet,
        parquet_flush_s=args.parquet_flush_s,
        ws_client=getattr(args, "ws_client", None),
        rest_url=getattr(args, "rest_url", None),
    )
    try:
        code = collector.run()
        if code:
            collector.remove_empty_run_dir()
        return code
    except FatalCaptureError as exc:  # raised before the loop started (e.g. run dir in use)
        print(f"error: {exc}", file=sys.stderr)
        return 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="capture a live feed (BBO/L2/trades) into a run directory",
                       description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collector.py", description="mm_core live collector")
    add_arguments(parser)
    return run(parser.parse_args(argv))
