"""Team mode: a market's state (say "waiting", with the listener's reason) reaches a client of another web process
that subscribes later, and one whose page reloads, through Redis (real processes, as in test_team.py)."""
import os
import shutil

import pytest

from conftest import sio_client
from exchanges import EXCHANGES

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("REQUIRE_TEAM"),
                                reason="needs redis-server (apt install redis-server; .ci/run installs it)")
MARKET = "binance:NOPE-USDT"  # Binance accepts a subscription to a pair it does not list, then sends nothing


def connect(web, clients):
    return sio_client(web.url, ("backfill", "market_state"), clients)


def test_a_later_subscriber_on_another_web_process_gets_the_waiting_state_and_its_reason(team):
    clients = []
    try:
        first, first_events = connect(team.webs[0], clients)
        first.call("subscribe", {"market": MARKET}, timeout=5)
        waiting = first_events["market_state"].wait_for(
            lambda states: any(s["state"] == "waiting" for s in states), timeout=40)[-1]
        assert waiting == {**waiting, "market": MARKET, "state": "waiting",
                           "reason": EXCHANGES["binance"].no_data_hint}

        second, second_events = connect(team.webs[1], clients)
        second.call("subscribe", {"market": MARKET}, timeout=5)
        assert second_events["backfill"].wait_for(lambda items: items)[0]["state"] == waiting

        first.disconnect()  # both pages reload: no web process's lease names the market for a moment, and the
        second.disconnect()  # collector keeps it for the lease's length, so the state is still the same one
        again, again_events = connect(team.webs[0], clients)
        again.call("subscribe", {"market": MARKET}, timeout=5)
        assert again_events["backfill"].wait_for(lambda items: items)[0]["state"] == waiting
    finally:
        for sio in clients:
            sio.disconnect()
