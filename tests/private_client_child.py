"""Child process for the kill -9 test: an order supervisor on the loopback stub that places orders
and then keeps pumping until it is killed. Prints one JSON line per milestone (flushed).

usage: python private_client_child.py REST_URL WS_URL JOURNAL   (credentials from MM_KRAKEN_* env)
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from mm_core.adapters.kraken.auth import NonceSource
from mm_core.adapters.kraken.credentials import load_credentials
from mm_core.adapters.kraken.private_session import KrakenPrivateSession
from mm_core.adapters.kraken.rest import KrakenRestClient, TokenSource
from mm_core.adapters.kraken.venue import KrakenVenue
from mm_core.trading.orders import OrderManager
from mm_core.trading.supervisor import OrderSupervisor


def say(**kw) -> None:
    print(json.dumps(kw), flush=True)


async def main(rest_url: str, ws_url: str, journal: Path) -> None:
    rest = KrakenRestClient(load_credentials(), NonceSource(journal.with_name("nonce")), base_url=rest_url)
    session = KrakenPrivateSession(ws_url, TokenSource(rest), symbol="BTC/EUR", ws_client="websockets")
    manager = OrderManager.open(journal, symbol="BTC/EUR", base="BTC", quote="EUR")
    sup = OrderSupervisor(manager, KrakenVenue(session, rest=rest))
    await sup.start()
    placed = []
    for side, qty, price in (("buy", 0.01, 60_000.0), ("buy", 0.02, 59_990.0), ("sell", 0.01, 61_000.0),
                             ("sell", 0.03, 61_010.0)):
        o, out = await sup.place(side, qty, price)
        placed.append({"cl_ord_id": o.cl_ord_id, "ok": out.ok})
    await sup.pump(0.3)
    say(event="placed", orders=[{"cl_ord_id": o.cl_ord_id, "order_id": o.order_id, "state": o.state}
                                for o in manager.orders.values()])
    last = None
    while True:
        await sup.pump(0.1)
        now = (round(manager.position, 10), len(manager.fills))
        if now != last:
            manager.journal.flush()
            say(event="state", position=manager.position, fills=len(manager.fills))
            last = now


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
