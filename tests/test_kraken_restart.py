"""kill -9 in the middle of a session, restart: the order manager finds every open order, cancels
(or adopts) it, recovers the fills made while it was dead, and its position equals the exchange's.
Also: no API key or secret in any output, log line, repr, exception or file of a run."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

from kraken_private_stub import API_KEY, API_SECRET, PrivateStub, StubExchange
from mm_core.adapters.kraken.auth import NonceSource
from mm_core.adapters.kraken.credentials import ApiCredentials, CredentialsError, Secret, load_credentials
from mm_core.adapters.kraken.private_session import KrakenPrivateSession
from mm_core.adapters.kraken.rest import KrakenApiError, KrakenRestClient, TokenSource
from mm_core.adapters.kraken.venue import KrakenVenue
from mm_core.adapters.kraken.deadman import DeadMansSwitch
from mm_core.trading.orders import OrderManager
from mm_core.trading.supervisor import OrderSupervisor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class StubThread:
    """The stub exchange on its own event loop in a thread, outliving the client processes."""

    def __init__(self, ex: StubExchange) -> None:
        self.stub = PrivateStub(ex)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> PrivateStub:
        self._thread.start()
        self.call(self.stub.__aenter__())
        return self.stub

    def call(self, coro, timeout_s: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def __exit__(self, *exc: Any) -> None:
        self.call(self.stub.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def read_json_line(proc: subprocess.Popen, want: str, timeout_s: float = 30.0) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def reader() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") == want:
                result.update(msg)
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout_s)
    if not result:
        proc.kill()
        raise AssertionError(f"child never said {want!r}: {proc.stderr.read() if proc.stderr else ''}")
    return result


def child_env() -> dict[str, str]:
    env = dict(os.environ, MM_KRAKEN_API_KEY=API_KEY, MM_KRAKEN_API_SECRET=API_SECRET)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def restart_and_reconcile(stub: PrivateStub, journal: Path, on_restart: str) -> tuple[OrderSupervisor, list]:
    async def go() -> tuple[OrderSupervisor, list]:
        creds = load_credentials(env={"MM_KRAKEN_API_KEY": API_KEY, "MM_KRAKEN_API_SECRET": API_SECRET})
        rest = KrakenRestClient(creds, NonceSource(journal.with_name("nonce")), base_url=stub.rest_url)
        session = KrakenPrivateSession(stub.ws_url, TokenSource(rest), symbol="BTC/EUR", ws_client="websockets")
        m = OrderManager.open(journal, symbol="BTC/EUR", base="BTC", quote="EUR", on_restart=on_restart)
        sup = OrderSupervisor(m, KrakenVenue(session, rest=rest))
        await sup.start()
        await sup.pump(0.5)  # the cancels' confirmations
        snapshot = await sup.venue.snapshot()
        await sup.pump(0.3)
        result = (sup, list(snapshot.open_orders))
        await sup.venue.close()
        m.close()
        return result

    return asyncio.run(asyncio.wait_for(go(), 30))


@pytest.mark.slow
@pytest.mark.parametrize("on_restart", ["cancel", "adopt"])
def test_kill_9_restart_finds_every_order_and_matches_the_exchange_position(tmp_path, on_restart) -> None:
    journal = tmp_path / "orders.journal"
    th = StubThread(StubExchange(balances={"BTC": 0.2, "EUR": 20_000.0}))
    with th as stub:
        proc = subprocess.Popen([sys.executable, str(HERE / "private_client_child.py"), stub.rest_url, stub.ws_url,
                                 str(journal)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=child_env(), cwd=str(ROOT))
        try:
            placed = read_json_line(proc, "placed")
            assert [o["state"] for o in placed["orders"]] == ["new"] * 4
            ids = [o["order_id"] for o in placed["orders"]]
            th.call(stub.fill(ids[0], 0.004))  # partial fill the child sees
            read_json_line(proc, "state")
        finally:
            proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no cleanup runs
            proc.wait(10)
        # while the client is dead: one order fills completely, another partially
        th.call(stub.fill(ids[2], 0.01))
        th.call(stub.fill(ids[3], 0.01))
        if on_restart == "cancel":  # and the crash tore the journal's last write
            data = journal.read_bytes()
            journal.write_bytes(data[:-7])
        open_before = sorted(o.order_id for o in stub.ex.orders.values() if o.status in ("new", "partially_filled"))
        assert len(open_before) == 3  # ids[0] partial, ids[1] new, ids[3] partial
        sup, venue_open = restart_and_reconcile(stub, journal, on_restart)
    m = sup.manager
    assert m.journal_bad_lines == (1 if on_restart == "cancel" else 0)
    kinds = [(d.kind, d.action) for d in sup.differences]
    assert kinds.count(("missing_fill", "apply_fill")) == 2, kinds  # the two fills made while dead
    assert m.position == pytest.approx(stub.ex.balances["BTC"], abs=1e-12)
    assert m.cash == pytest.approx(stub.ex.balances["EUR"], abs=1e-9)
    if on_restart == "cancel":
        assert kinds.count(("open_order_at_restart", "cancel")) == 3
        assert venue_open == [] and not m.open_orders()
        assert all(o.status in ("canceled", "filled") for o in stub.ex.orders.values())
    else:
        assert sorted(o.order_id for o in venue_open) == open_before
        assert sorted(o.order_id for o in m.open_orders()) == open_before
        assert {o.order_id: o.filled for o in m.open_orders()}[ids[3]] == pytest.approx(0.01)
    assert m.orders[placed["orders"][2]["cl_ord_id"]].state == "filled"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.client_lines: list[str] = []  # everything but the stub exchange's own server logs

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        if not record.name.startswith(("websockets.server", "aiohttp.access", "aiohttp.server")):
            self.client_lines.append(self.lines[-1])
        if record.exc_info:
            self.lines.append("".join(traceback.format_exception(*record.exc_info)))


def test_no_key_or_secret_in_any_output_log_repr_exception_or_file(tmp_path, capsys) -> None:
    root = logging.getLogger()
    cap = Capture()
    old = root.level
    root.addHandler(cap)
    root.setLevel(logging.DEBUG)
    texts: list[str] = []
    tokens_seen: list[str] = []
    try:
        async def scenario() -> None:
            async with PrivateStub(StubExchange(balances={"BTC": 0.1, "EUR": 10_000.0})) as stub:
                creds = load_credentials(env={"MM_KRAKEN_API_KEY": API_KEY, "MM_KRAKEN_API_SECRET": API_SECRET})
                rest = KrakenRestClient(creds, NonceSource(tmp_path / "nonce"), base_url=stub.rest_url)
                tokens = TokenSource(rest)
                session = KrakenPrivateSession(stub.ws_url, tokens, symbol="BTC/EUR", ws_client="websockets",
                                               request_timeout_s=0.5, reconnect_base_s=0.05)
                venue = KrakenVenue(session, rest=rest, deadman=DeadMansSwitch(timeout_s=4, refresh_s=0.5))
                m = OrderManager.open(tmp_path / "j.journal", symbol="BTC/EUR", base="BTC", quote="EUR")
                records: list[Any] = []
                sup = OrderSupervisor(m, venue, on_record=records.append)
                await sup.start()
                o, out = await sup.place("buy", 0.01, 60_000.0)
                stub.ex.swallow_replies.add("add_order")
                o2, out2 = await sup.place("sell", 0.01, 61_000.0)  # times out: maybe placed
                await sup.pump(0.3)
                await stub.fill(o.order_id, 0.01)
                stub.ex.tokens.clear()
                await sup.amend(o2.cl_ord_id, price=61_001.0)  # invalid token -> refresh -> resend
                await stub.drop_all()
                await sup.pump(1.0)
                await sup.reconcile("test")
                errors: list[BaseException] = []
                try:
                    load_credentials(env={"MM_KRAKEN_API_KEY": API_KEY, "MM_KRAKEN_API_SECRET": API_SECRET + "*"})
                except CredentialsError as e:
                    errors.append(e)
                wrong = KrakenRestClient(ApiCredentials(Secret(API_KEY), Secret("QUJD" + API_SECRET[4:]), "env"),
                                         NonceSource(), base_url=stub.rest_url)
                try:
                    await wrong.get_websockets_token()
                except KrakenApiError as e:
                    errors.append(e)
                await wrong.close()
                dead = KrakenRestClient(creds, NonceSource(), base_url="http://127.0.0.1:9")
                try:
                    await dead.get_websockets_token()
                except Exception as e:  # transport error
                    errors.append(e)
                await dead.close()
                await sup.close()
                tokens_seen.extend(sorted(stub.ex.tokens))
                objects = [creds, rest, tokens, session, venue, m, sup, o, o2, out, out2, *records, *m.orders.values(),
                           *m.fills, *sup.differences, *errors, stub.ex.requests]
                for x in objects:
                    texts.extend([repr(x), str(x)])
                for e in errors:
                    texts.append("".join(traceback.format_exception(e)))
                texts.append(json.dumps(sup.describe(), default=str))

        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        root.removeHandler(cap)
        root.setLevel(old)
    out, err = capsys.readouterr()
    texts += cap.lines + [out, err]
    for f in tmp_path.rglob("*"):
        if f.is_file():
            texts.append(f.read_bytes().decode("utf-8", "replace"))
    blob = "\n".join(texts)
    assert len(cap.lines) > 0 and len(blob) > 10_000  # the run produced plenty to search
    assert API_KEY not in blob
    assert API_SECRET not in blob
    assert API_SECRET[:24] not in blob  # not even a prefix
    # the session token (a 15-minute trading credential) stays out of our logs and files too
    ours = "\n".join([t for t in texts if t not in cap.lines] + cap.client_lines)
    pieces = {tok[i:i + 8] for tok in tokens_seen for i in range(3, len(tok) - 7)}
    assert tokens_seen and not [p for p in pieces if p in ours]
