"""The paper runner on a virtual clock: the same runner, order manager and paper venue, fed a recorded
stream in the backtest engine's event order.

Why: "one strategy from backtest to live" is only true if the live path decides like the backtest on
the same stream. This driver runs :class:`~mm_core.trading.runner.TradingRunner` -- the object
``mm paper`` runs -- with :class:`~mm_core.simexchange.paper_venue.PaperVenue` (the simulator's
account: the backtest's matching model) and an :class:`~mm_core.trading.orders.OrderManager` fed
through an :class:`~mm_core.trading.supervisor.OrderSupervisor`, exactly as live, but on market rows
with known local arrival times and a constant order latency. Events are processed in the engine's
order (:mod:`mm_core.backtest.engine_core`): by time; at equal times market rows (exchange side),
then what reaches the runner (replies and executions, market messages, heartbeats), then requests
reaching the matching engine, then decisions. The test of issue 9's seam runs a strategy defined in
the test file through this driver and through the backtest and requires identical orders, fills and
transition logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mm_core.backtest.event_arrays import CLEAR, DEPTH, TRADE, MarketArrays
from mm_core.backtest.feed_health import FeedTimeline
from mm_core.simexchange.account import AccountConfig
from mm_core.simexchange.paper_venue import PaperVenue
from mm_core.strategy.pipeline import DecisionPipeline
from mm_core.trading.orders import OrderManager
from mm_core.trading.records import Outcome
from mm_core.trading.runner import Command, RunnerConfig, TradingRunner
from mm_core.trading.supervisor import OrderSupervisor

_BIG = 1 << 62


@dataclass
class ReplayResult:
    runner: TradingRunner
    manager: OrderManager
    venue: PaperVenue
    commands: list[Command] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # each command's order number (the engine's O_ID)
    log: np.ndarray = field(default_factory=lambda: np.zeros((0, 6), np.int64))
    decisions: int = 0


def _messages(m: MarketArrays) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(np.concatenate([[True], m.msg[1:] != m.msg[:-1]]))
    ends = np.append(starts[1:], len(m))
    return starts, ends


def run_replay(m: MarketArrays, timeline: FeedTimeline, pipeline: DecisionPipeline, *, entry_ns: int,
               response_ns: int, requote_ms: float, fair: str = "mid", account: Optional[AccountConfig] = None,
               base: str = "BTC", quote: str = "EUR") -> ReplayResult:
    """Run the paper runner over ``m`` (rows arriving at ``timeline.local_ts``; heartbeats from the
    timeline's confirmation series) and return what it did. Healthy feed only: no status events."""
    clock = [0]
    now = lambda: clock[0]  # noqa: E731 -- the virtual clock
    acct = account or AccountConfig(symbol=m.symbol, tick_size=m.tick_size, lot_size=m.lot_size, depth=m.depth,
                                    balances=((base, 1000.0), (quote, 1e9)))
    venue = PaperVenue(acct, entry_ns=entry_ns, response_ns=response_ns)
    manager = OrderManager(symbol=m.symbol, base=base, quote=quote, clock_ns=now)
    sup = OrderSupervisor(manager, venue, clock_ns=now)
    commands: list[Command] = []
    numbers: list[int] = []
    by_req: dict[int, Command] = {}
    logs: list[np.ndarray] = []
    holder: list[TradingRunner] = []

    def send(cmd: Command) -> None:
        commands.append(cmd)
        numbers.append(holder[0].working[cmd.cl_ord_id].num)
        msgs = venue.messages
        req = (msgs.add_order(cmd.request) if cmd.kind == "new" else msgs.amend_order(cmd.request)
               if cmd.kind == "amend" else msgs.cancel_order(cmd.request))
        by_req[venue.request(req, cmd.t_ns)] = cmd

    runner = TradingRunner(pipeline, manager, RunnerConfig(symbol=m.symbol, tick=m.tick_size, lot=m.lot_size,
                                                           requote_ms=requote_ms, fair=fair),
                           send=send, queue_ahead=venue.queue_ahead, on_transitions=logs.append, clock_ns=now)
    holder.append(runner)
    starts, ends = _messages(m)
    loc = timeline.local_ts
    # heartbeats: confirmations that are not a message's own arrival
    msg_pairs = set(zip(loc[starts].tolist(), m.exch_ts[starts].tolist()))
    hb = [(int(a), int(b)) for a, b in zip(timeline.conf_local.tolist(), timeline.conf_exch.tolist())
          if (a, b) not in msg_pairs]
    end_ts = int(m.exch_ts[-1])
    first = int(m.exch_ts[0])
    # the account's balances, before anything happens
    clock[0] = first - 1
    venue.snapshot_frames(first - 1 - response_ns)
    while venue.next_delivery_ns() is not None:
        for item in venue.pop_delivery():
            sup.handle(item)
    runner.set_baseline(manager.position, manager.cash)
    i_ex = 0  # next message on the exchange side
    i_rx = 0  # next message reaching the runner
    i_hb = 0
    n_msg = len(starts)
    while True:
        t_mkt = int(m.exch_ts[starts[i_ex]]) if i_ex < n_msg else _BIG
        t_rsp = venue.next_delivery_ns() or _BIG
        t_rx = int(loc[starts[i_rx]]) if i_rx < n_msg else _BIG
        t_hb = hb[i_hb][0] if i_hb < len(hb) else _BIG
        t_req = venue.next_request_ns() or _BIG
        t_dec = runner.next_decision_ns()
        t_dec = t_dec if t_dec is not None and t_dec <= end_ts else _BIG
        t = min(t_mkt, t_rsp, t_rx, t_hb, t_req, t_dec)
        if t == _BIG:
            break
        clock[0] = t
        if t_mkt == t:
            a, b = starts[i_ex], ends[i_ex]
            _exchange_message(venue, m, a, b)
            i_ex += 1
        elif t_rsp == t:
            for item in venue.pop_delivery():
                if isinstance(item, Outcome) and item.req_id in by_req:
                    cmd = by_req.pop(item.req_id)
                    sup._after_outcome(item, cmd.cl_ord_id if cmd.kind == "new" else None)
                    runner.on_outcome(cmd, item, t)
                else:
                    sup.handle(item)
                    runner.on_record(item, t)
        elif t_rx == t:
            a, b = starts[i_rx], ends[i_rx]
            j = b - 1
            runner.on_market(int(loc[a]), int(m.exch_ts[a]), float(m.best_bid_tick[j] * m.tick_size),
                             float(m.best_bid_qty[j]), float(m.best_ask_tick[j] * m.tick_size),
                             float(m.best_ask_qty[j]), book=bool(m.kind[a] != TRADE))
            i_rx += 1
        elif t_hb == t:
            runner.on_heartbeat(hb[i_hb][0], hb[i_hb][1])
            i_hb += 1
        elif t_req == t:
            venue.process_request()
        else:
            runner.decide(t, "timer" if t == runner.next_timer_ns else "deadline")
    log = np.concatenate(logs) if logs else np.zeros((0, 6), np.int64)
    return ReplayResult(runner, manager, venue, commands, numbers, log, runner.counters.decisions)


def _exchange_message(venue: PaperVenue, m: MarketArrays, a: int, b: int) -> None:
    """One message's rows handed to the venue as the levels (and trades) they came from."""
    exch = int(m.exch_ts[a])
    if m.kind[a] == TRADE:
        for r in range(a, b):
            venue.on_trade(exch, int(m.side[r]), float(m.price[r]), float(m.qty[r]))
        return
    kinds = m.kind[a:b]
    bids = [(float(m.price[r]), float(m.qty[r])) for r in range(a, b) if m.kind[r] == DEPTH and m.side[r] > 0]
    asks = [(float(m.price[r]), float(m.qty[r])) for r in range(a, b) if m.kind[r] == DEPTH and m.side[r] < 0]
    venue.on_book(exch, bids, asks, snapshot=bool((kinds == CLEAR).any()))



