"""The private client's I/O shell over real loopback sockets: signed REST token, request/reply by
req_id, a timed-out add that was placed, token refresh, reconnect with fresh snapshots, the dead
man's switch kept armed, and the order supervisor end to end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kraken_private_stub import API_KEY, API_SECRET, PrivateStub, StubExchange
from mm_core.adapters.kraken.auth import NonceSource
from mm_core.adapters.kraken.credentials import ApiCredentials, Secret
from mm_core.adapters.kraken.deadman import DeadMansSwitch
from mm_core.adapters.kraken.private_session import KrakenPrivateSession
from mm_core.adapters.kraken.rest import KrakenApiError, KrakenRestClient, TokenSource
from mm_core.adapters.kraken.venue import KrakenVenue
from mm_core.events import Connected, Disconnected
from mm_core.trading.orders import OrderManager
from mm_core.trading.records import (AmendRequest, BalancesSnapshot, ExecutionsSnapshot, OrderRequest,
                                     OrderUpdate, OutcomeKind)
from mm_core.trading.supervisor import OrderSupervisor

CREDS = ApiCredentials(Secret(API_KEY), Secret(API_SECRET), "test")


def run(coro, timeout_s: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def make_venue(stub: PrivateStub, *, deadman: DeadMansSwitch | None = None, **kw: Any) -> KrakenVenue:
    rest = KrakenRestClient(CREDS, NonceSource(), base_url=stub.rest_url)
    kw.setdefault("request_timeout_s", 1.0)
    kw.setdefault("reconnect_base_s", 0.05)
    kw.setdefault("reconnect_max_s", 0.2)
    session = KrakenPrivateSession(stub.ws_url, TokenSource(rest), symbol="BTC/EUR", ws_client="websockets", **kw)
    return KrakenVenue(session, deadman=deadman, rest=rest)


async def collect(venue: KrakenVenue, until, timeout_s: float = 5.0) -> list[Any]:
    """Events until ``until(list)`` is true."""
    got: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not until(got):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out; got {[type(x).__name__ for x in got]}")
        ev = await venue.next_event(left)
        if ev is not None:
            got.append(ev)
    return got


def order(cid: str, side: str = "buy", price: float = 60_000.0, qty: float = 0.01) -> OrderRequest:
    return OrderRequest(symbol="BTC/EUR", side=side, qty=qty, price=price, cl_ord_id=cid)  # type: ignore[arg-type]


def test_rest_token_is_signed_and_checked_and_bad_auth_is_typed() -> None:
    async def scenario() -> None:
        async with PrivateStub() as stub:
            rest = KrakenRestClient(CREDS, NonceSource(unit="us"), base_url=stub.rest_url)
            tok = await rest.get_websockets_token()
            assert tok.token.reveal().startswith("tok") and tok.expires_s == 900
            assert tok.token.reveal() not in repr(tok)
            await rest.close()
            # a key whose nonces were microseconds, now used with milliseconds: refused by the venue
            ms = KrakenRestClient(CREDS, NonceSource(unit="ms"), base_url=stub.rest_url)
            with pytest.raises(KrakenApiError) as e:
                await ms.get_websockets_token()
            assert e.value.kind is OutcomeKind.AUTH and "Invalid nonce" in str(e.value)
            await ms.close()
            wrong = ApiCredentials(Secret(API_KEY), Secret("AAAA" + API_SECRET[4:]), "test")
            bad = KrakenRestClient(wrong, NonceSource(unit="us"), base_url=stub.rest_url)
            with pytest.raises(KrakenApiError, match="Invalid signature"):
                await bad.get_websockets_token()
            await bad.close()

    run(scenario())


def test_orders_replies_executions_and_a_timed_out_add_that_was_placed() -> None:
    async def scenario() -> None:
        async with PrivateStub() as stub:
            venue = make_venue(stub)
            await venue.start()
            first = await collect(venue, lambda g: any(isinstance(x, BalancesSnapshot) for x in g)
                                  and any(isinstance(x, Connected) for x in g))
            assert any(isinstance(x, ExecutionsSnapshot) for x in first)
            out = await venue.place(order("mm00011"))
            assert out.ok and out.order_id and out.cl_ord_id == "mm00011" and out.time_in_ns
            ups = await collect(venue, lambda g: sum(isinstance(x, OrderUpdate) for x in g) >= 2)
            assert [u.exec_type for u in ups if isinstance(u, OrderUpdate)] == ["pending_new", "new"]
            # the exchange places the order but its reply never comes
            stub.ex.swallow_replies.add("add_order")
            lost = await venue.place(order("mm00012", side="sell", price=61_000.0))
            assert lost.kind is OutcomeKind.TIMEOUT and lost.maybe_placed and lost.cl_ord_id == "mm00012"
            assert any(o.cl_ord_id == "mm00012" for o in stub.ex.orders.values())
            late = await collect(venue, lambda g: any(isinstance(x, OrderUpdate) and x.cl_ord_id == "mm00012"
                                                      for x in g))
            assert any(isinstance(x, OrderUpdate) and x.exec_type == "pending_new" for x in late)
            rej = await venue.amend(AmendRequest(symbol="BTC/EUR", order_id="NOPE", price=1.0))
            assert rej.kind is OutcomeKind.UNKNOWN_ORDER
            assert (await venue.cancel_all()).count == 2
            await venue.close()

    run(scenario())


def test_invalid_token_is_refreshed_and_the_request_resent_once() -> None:
    async def scenario() -> None:
        async with PrivateStub() as stub:
            venue = make_venue(stub)
            await venue.start()
            stub.ex.tokens.clear()  # the session token is no longer valid
            out = await venue.place(order("mm00021"))
            assert out.ok, out
            assert venue.session.token_refreshes == 1 and stub.ex.rest_calls == 2
            assert sum(1 for r in stub.ex.requests if r["method"] == "add_order") == 2
            assert len(stub.ex.orders) == 1  # the refused request never reached the book
            await venue.close()

    run(scenario())


def test_reconnect_fails_pending_requests_and_resubscribes_with_snapshots() -> None:
    async def scenario() -> None:
        async with PrivateStub() as stub:
            venue = make_venue(stub)
            await venue.start()
            await collect(venue, lambda g: any(isinstance(x, Connected) for x in g))
            stub.ex.swallow_replies.add("add_order")
            pending = asyncio.ensure_future(venue.place(order("mm00031")))
            await asyncio.sleep(0.1)
            await stub.drop_all()
            out = await pending
            assert out.kind is OutcomeKind.TIMEOUT and out.maybe_placed and out.cl_ord_id == "mm00031"
            evs = await collect(venue, lambda g: any(isinstance(x, Connected) for x in g))
            assert any(isinstance(x, Disconnected) for x in evs)
            assert any(isinstance(x, ExecutionsSnapshot) and any(o.cl_ord_id == "mm00031" for o in x.orders)
                       for x in evs), "the reconnect snapshot shows the order that was placed"
            assert venue.session.connects == 2
            snap = await venue.snapshot()
            assert [o.cl_ord_id for o in snap.open_orders] == ["mm00031"] and snap.balances["BTC"] == 1.0
            await venue.close()

    run(scenario())


def test_dead_mans_switch_is_armed_at_start_refreshed_and_disarmed_on_close() -> None:
    async def scenario() -> None:
        async with PrivateStub() as stub:
            venue = make_venue(stub, deadman=DeadMansSwitch(timeout_s=4, refresh_s=0.4))
            await venue.start()
            assert stub.ex.dead_man == [4]  # armed before start() returns
            await asyncio.sleep(1.5)
            assert len(stub.ex.dead_man) >= 3 and set(stub.ex.dead_man) == {4}
            d = venue.describe()
            assert d["dead_man_arms"] == 1 and d["dead_man_refreshes"] >= 2
            await venue.close()
            assert stub.ex.dead_man[-1] == 0

    run(scenario())


def test_supervisor_end_to_end_position_equals_the_exchange(tmp_path) -> None:
    async def scenario() -> None:
        async with PrivateStub(StubExchange(balances={"BTC": 0.5, "EUR": 50_000.0})) as stub:
            m = OrderManager.open(tmp_path / "j.jsonl", symbol="BTC/EUR", base="BTC", quote="EUR")
            sup = OrderSupervisor(m, make_venue(stub))
            await sup.start()
            assert m.position == 0.5 and m.cash == 50_000.0
            bid, out = await sup.place("buy", 0.01, 60_000.0)
            ask, _ = await sup.place("sell", 0.02, 61_000.0)
            assert out.ok
            await sup.pump(0.3)
            assert bid.state == "new" and ask.state == "new"
            await stub.fill(bid.order_id, 0.004)
            await stub.fill(bid.order_id, 0.006)  # completes: trade says partially_filled, then filled
            await stub.fill(ask.order_id, 0.005, maker=False)
            await sup.pump(0.3)
            assert bid.state == "filled" and ask.state == "partially_filled"
            assert m.position == pytest.approx(stub.ex.balances["BTC"], abs=1e-12)
            assert m.cash == pytest.approx(stub.ex.balances["EUR"], abs=1e-9)
            amended = await sup.amend(ask.cl_ord_id, price=61_005.0)
            assert amended.ok
            await sup.pump(0.2)
            assert ask.price == 61_005.0
            diffs = await sup.reconcile("test")
            assert diffs == [] and sup.differences == []
            await sup.close()
            assert not m.open_orders() and ask.state == "canceled"
            assert all(o.status == "canceled" for o in stub.ex.orders.values() if o.order_id == ask.order_id)

    run(scenario())


def test_a_silent_socket_is_dropped_by_the_watchdog_and_reconnected() -> None:
    async def scenario() -> None:
        async with PrivateStub(StubExchange(heartbeat_s=0.1)) as stub:
            venue = make_venue(stub, watchdog_s=0.6)
            await venue.start()
            await asyncio.sleep(1.0)
            assert venue.session.connects == 1  # heartbeats keep it alive
            stub.ex.heartbeat_s = 100.0
            evs = await collect(venue, lambda g: any(isinstance(x, Disconnected) for x in g), timeout_s=5)
            (d,) = [x for x in evs if isinstance(x, Disconnected)]
            assert "watchdog" in d.reason
            await collect(venue, lambda g: any(isinstance(x, Connected) for x in g), timeout_s=5)
            assert venue.session.connects == 2
            await venue.close()

    run(scenario())


def test_duplicated_and_reordered_execution_messages_count_each_fill_once(tmp_path) -> None:
    async def scenario() -> None:
        ex = StubExchange(balances={"BTC": 0.0, "EUR": 10_000.0}, duplicate_executions=True, reorder_fills=True)
        async with PrivateStub(ex) as stub:
            m = OrderManager.open(tmp_path / "j.jsonl", symbol="BTC/EUR", base="BTC", quote="EUR")
            gaps: list[Any] = []
            sup = OrderSupervisor(m, make_venue(stub), on_record=lambda r: gaps.append(r)
                                  if type(r).__name__ == "SequenceGap" else None)
            await sup.start()
            bid, _ = await sup.place("buy", 0.02, 60_000.0)
            await sup.pump(0.3)
            for _ in range(4):
                await stub.fill(bid.order_id, 0.005)
            await sup.pump(0.5)
            assert bid.state == "filled" and bid.filled == pytest.approx(0.02)
            assert len(m.fills) == 4 and m.counters.duplicate_fills >= 4
            assert gaps and all(not g.lost for g in gaps)  # duplicates seen, nothing lost
            assert m.position == pytest.approx(stub.ex.balances["BTC"], abs=1e-12)
            assert m.cash == pytest.approx(stub.ex.balances["EUR"], abs=1e-9)
            await sup.close()

    run(scenario())


def test_kraken_venue_implements_the_trading_seam(tmp_path) -> None:
    from mm_core.trading.venue import TradingVenue

    venue = KrakenVenue.connect(CREDS, nonce_file=tmp_path / "nonce", ws_url="ws://127.0.0.1:9/v2",
                                rest_url="http://127.0.0.1:9")
    assert isinstance(venue, TradingVenue) and venue.deadman is not None
    assert venue.describe()["dead_man_refreshes"] == 0 and API_KEY not in repr(venue)
