"""Socket.IO against a real server process replaying the shipped recordings (eventlet, and threading)."""
import re
import time

import orjson
import pytest

from exchanges import EXCHANGES
from conftest import Collector, ServerProcess, listen, sio_client, two_venue_recording, wait_listing


@pytest.fixture
def client(replay_server):
    clients = []

    def connect(server=replay_server):
        return sio_client(server.url, ("markets", "backfill", "ticks", "market_state", "error", "feeds"), clients)

    yield connect
    for sio in clients:
        sio.disconnect()


def markets_in(batches):
    return {batch["market"] for batch in batches}


def test_connect_offers_markets_and_feed_states(client):
    sio, events = client()
    [offer] = events["markets"].wait_for(lambda items: items)
    # in replay, the watchlist is each exchange's busiest recorded market
    assert {"binance:NKN-USDT", "binanceus:OMG-BUSD", "coinbase:SKL-USD"} <= set(offer["watchlist"])
    assert sorted(market.partition(":")[0] for market in offer["watchlist"]) == sorted(EXCHANGES)
    assert "DASH-BTC" in offer["available"]["coinbase"]
    feeds = events["feeds"].wait_for(lambda items: items)[0]
    assert {feed["exchange"] for feed in feeds} == set(EXCHANGES)


def test_subscribe_gets_backfill_then_live_ticks_of_its_markets_only(client):
    sio, events = client()
    assert sio.call("subscribe", {"market": "coinbase:SKL-USD"}, timeout=5) == {"ok": True,
                                                                                 "market": "coinbase:SKL-USD"}
    [backfill] = events["backfill"].wait_for(lambda items: items)
    assert backfill["market"] == "coinbase:SKL-USD"
    events["ticks"].wait_for(lambda batches: len(batches) >= 3, timeout=30)
    assert markets_in(events["ticks"].items) == {"coinbase:SKL-USD"}
    ticks = [tick for batch in events["ticks"].items for tick in batch["ticks"]]
    assert all(t["exchange"] == "coinbase" and t["symbol"] == "SKL-USD" for t in ticks)
    for run in (backfill["ticks"], ticks):  # each in order, no duplicates (the page drops overlaps by seq)
        seqs = [t["seq"] for t in run]
        assert seqs == sorted(set(seqs))
    assert all(isinstance(t["bid"], str) and isinstance(t["ask"], str) for t in ticks)

    sio.call("subscribe", {"market": "binance:NKN-USDT"}, timeout=5)
    events["ticks"].wait_for(lambda batches: "binance:NKN-USDT" in markets_in(batches), timeout=30)
    sio.call("unsubscribe", {"market": "coinbase:SKL-USD"}, timeout=5)
    count = len(events["ticks"].items)
    events["ticks"].wait_for(lambda batches: len(batches) >= count + 5, timeout=30)
    assert markets_in(events["ticks"].items[count + 1:]) == {"binance:NKN-USDT"}


def test_a_market_nobody_streams_yet_is_subscribed_on_the_open_feed(client):
    sio, events = client()
    sio.call("subscribe", {"market": "coinbase:NMR-EUR"}, timeout=5)
    events["market_state"].wait_for(lambda states: any(s["state"] == "streaming" for s in states), timeout=40)
    events["ticks"].wait_for(lambda batches: "coinbase:NMR-EUR" in markets_in(batches))


def test_a_pair_the_exchange_does_not_list_shows_its_reason(client, replay_server):
    # Coinbase's listing is known (the local exchange serves the recorded one): refused at once, with no
    # subscription at the exchange (the exchange's own words, when no listing is known: test_listener.py)
    wait_listing(replay_server, "coinbase")
    sio, events = client()
    reply = sio.call("subscribe", {"market": "coinbase:BTC-FOO"}, timeout=5)
    assert reply == {**reply, "ok": False, "market": "coinbase:BTC-FOO",
                     "message": "BTC-FOO is not listed on Coinbase"}
    assert events["error"].wait_for(lambda items: items)[0]["message"] == "BTC-FOO is not listed on Coinbase"


@pytest.mark.parametrize("payload, message", [
    ("coinbase:BTC-USD", "payload must be an object"),
    (None, "payload must be an object"),
    ({}, "market must be a string"),
    ({"market": 42}, "market must be a string"),
    ({"market": "coinbase"}, "market must be EXCHANGE:BASE-QUOTE"),
    ({"market": "mtgox:BTC-USD"}, "unknown exchange"),
    ({"market": "coinbase:BTC/USD"}, "is not BASE-QUOTE"),
    ({"market": "coinbase:<script>-USD"}, "is not BASE-QUOTE"),
    ({"market": "coinbase:" + "A" * 100}, "longer than 64"),
])
def test_bad_subscribe_events_get_an_error_reply_and_change_nothing(client, payload, message):
    sio, events = client()
    reply = sio.call("subscribe", payload, timeout=5)
    assert reply["ok"] is False and message in reply["message"]
    [error] = events["error"].wait_for(lambda items: items)
    assert message in error["message"]
    assert events["backfill"].items == []
    assert sio.call("subscribe", {"market": "binanceus:OMG-BUSD"}, timeout=5)["ok"]  # still served


def test_threading_mode_serves_the_same(client):
    server = ServerProcess("--replay", "--speed", "5", "--async-mode", "threading")
    try:
        sio, events = client(server)
        sio.call("subscribe", {"market": "binanceus:OMG-BUSD"}, timeout=5)
        events["ticks"].wait_for(lambda batches: len(batches) >= 2, timeout=30)
        sio.disconnect()
    finally:
        assert server.stop() == 0


def test_the_spread_row_compares_one_pair_across_exchanges(client, tmp_path):
    """Two venues quote SKL-USD (see two_venue_recording); the spread is computed on the server in Decimal, over
    quotes of one moment only: in a replay Binance.US's book ticker has no exchange time, so it cannot be placed
    against Coinbase's 2021 quote (its renamed OMG-BUSD prices would make a crossed market that never existed)."""
    from decimal import Decimal
    server = ServerProcess("--replay", str(two_venue_recording(tmp_path)), "--speed", "5", "--markets",
                           "coinbase:SKL-USD,binanceus:SKL-USD")
    try:
        sio, events = client(server)
        events["spread"] = Collector()
        listen(sio, "spread", events["spread"])
        sio.call("subscribe", {"market": "coinbase:SKL-USD"}, timeout=5)
        rows = events["spread"].wait_for(
            lambda rows: any(len(r["venues"]) == 2 and all(v["bid"] for v in r["venues"]) and r["best_bid"]
                             for r in rows), timeout=30)
        row = next(r for r in rows if len(r["venues"]) == 2 and all(v["bid"] for v in r["venues"]) and r["best_bid"])
        assert row["pair"] == "SKL-USD" and row["quote"] == "USD"
        venues = {v["exchange"]: v for v in row["venues"]}
        assert set(venues) == {"coinbase", "binanceus"}
        assert venues["binanceus"]["excluded"] == "no exchange time: its moment in the recording is unknown"
        assert venues["coinbase"]["excluded"] == ""
        assert (row["best_bid"]["price"], row["best_ask"]["price"]) == (venues["coinbase"]["bid"],
                                                                        venues["coinbase"]["ask"])
        assert Decimal(row["spread"]) == Decimal(row["best_ask"]["price"]) - Decimal(row["best_bid"]["price"])
        assert row["crossed"] is False
        sio.disconnect()
    finally:
        assert server.stop() == 0


def test_a_new_panel_fills_at_once_from_the_rest_api_or_the_live_snapshot(client):
    """A quiet market's new panel is not left empty. Coinbase answers a level2 subscription with its book's
    snapshot, so the live book often fills the panel before the REST answer, which is then not shown (hub.has_live);
    either way the panel has its bid and ask at once, and a REST fill carries the last trade with its time."""
    sio, events = client()
    sio.call("subscribe", {"market": "coinbase:SKL-USD"}, timeout=5)
    events["ticks"].wait_for(lambda batches: batches, timeout=30)  # the local exchange's market is open
    sio.call("subscribe", {"market": "coinbase:YFI-BTC"}, timeout=5)  # one trade in the whole recording
    batches = events["ticks"].wait_for(lambda batches: any(
        b["market"] == "coinbase:YFI-BTC" and b["ticks"] for b in batches))
    batch = next(b["ticks"] for b in batches if b["market"] == "coinbase:YFI-BTC" and b["ticks"])
    if batch[0].get("source") == "rest":  # the trades, oldest first, then the ticker (live ticks may follow)
        ticker = [tick for tick in batch if tick.get("source") == "rest"][-1]
        assert ticker["bid"] and ticker["ask"] and ticker["last"] and ticker["time"]
    else:  # the venue's snapshot of the book played so far: a book has no time
        assert batch[0]["bid"] and batch[0]["ask"] and batch[0]["time"] is None


def test_a_later_subscriber_gets_the_current_market_state_and_its_reason(client):
    """A panel's "waiting" explanation reaches whoever subscribes later: a second page, a page that reloads (its old
    connection gone first), a panel closed and added again. The market is let go only once nobody has watched it
    for a few seconds (app.RELEASE_AFTER_S), so none of these starts a new subscription at the exchange."""
    from conftest import get
    server = ServerProcess("--replay", "--speed", "5")
    market, hint = "binance:NOPE-USDT", EXCHANGES["binance"].no_data_hint  # Binance accepts it, then sends nothing
    try:
        first, first_events = client(server)
        first.call("subscribe", {"market": market}, timeout=5)
        waiting = first_events["market_state"].wait_for(
            lambda states: any(s["state"] == "waiting" for s in states), timeout=40)[-1]
        assert waiting == {**waiting, "market": market, "state": "waiting", "reason": hint}

        second, second_events = client(server)  # another page
        second.call("subscribe", {"market": market}, timeout=5)
        assert second_events["backfill"].wait_for(lambda items: items)[0]["state"] == waiting

        first.disconnect()  # a reload: the page's connection is gone before the new one subscribes
        second.disconnect()
        clients = lambda: re.search(r"^dashboard_connected_clients (\S+)", get(server.url + "/metrics")[1], re.M)  # noqa: E731
        deadline = time.monotonic() + 10
        while float(clients()[1]) > 0:
            assert time.monotonic() < deadline, "the server still counts the old connections"
            time.sleep(0.05)
        third, third_events = client(server)
        third.call("subscribe", {"market": market}, timeout=5)
        assert third_events["backfill"].wait_for(lambda items: items)[0]["state"] == waiting  # the same "since"

        third.call("unsubscribe", {"market": market}, timeout=5)  # its panel closed and added again
        third.call("subscribe", {"market": market}, timeout=5)
        assert third_events["backfill"].wait_for(lambda items: len(items) == 2)[1]["state"] == waiting
        assert not [s for s in third_events["market_state"].items if s["state"] != "waiting"]

        third.disconnect()  # nobody watches it now: it is let go, after the grace
        _, events = client(server)
        symbols = lambda feeds: next(f["symbols"] for f in feeds if f["exchange"] == "binance")  # noqa: E731
        events["feeds"].wait_for(lambda items: items and "NOPE-USDT" not in symbols(items[-1]), timeout=20)
    finally:
        assert server.stop() == 0


# --- the fan-out (dashboard/fanout.py), in process ----------------------------------------------------------------
def fanout_of(clients: int, sets: list, monkeypatch):
    """A Fanout over a real python-socketio Server whose `clients` clients watch sets[n % len(sets)]; what is sent
    is recorded as (eio sid, Engine.IO packet), and Socket.IO packet encodings are counted."""
    import socketio
    from dashboard.fanout import Fanout
    server = socketio.Server(async_mode="threading")
    sent, encodes = [], []
    server._send_eio_packet = lambda eio_sid, packet: sent.append((eio_sid, packet))
    encode = server.packet_class.encode
    monkeypatch.setattr(server.packet_class, "encode", lambda self, *a, **k: (encodes.append(1), encode(self, *a, **k))[1])
    fanout = Fanout(server, backfill=lambda market: {"market": market, "ticks": [], "state": None})
    for n in range(clients):
        fanout.join(server.manager.connect(f"eio{n}", "/"), sets[n % len(sets)])
    return fanout, sent, encodes


def entry(market, seq):
    exchange, _, symbol = market.partition(":")
    return {"exchange": exchange, "symbol": symbol, "bid": "1.0", "received": 1, "seq": seq}


def test_clients_watching_the_same_markets_share_one_encoded_packet_and_get_only_their_markets(monkeypatch):
    one, two = ["coinbase:BTC-USD"], ["binance:BTC-USDT", "coinbase:BTC-USD"]
    fanout, sent, encodes = fanout_of(100, [one, two, []], monkeypatch)
    fanout.add(ticks={"coinbase:BTC-USD": [entry("coinbase:BTC-USD", 1)],
                      "binance:BTC-USDT": [entry("binance:BTC-USDT", 7)]},
               states={"binance:BTC-USDT": {"market": "binance:BTC-USDT", "state": "streaming"}})
    assert fanout.flush() == 2  # the empty set has nothing due
    assert len(sent) == 67 and len(encodes) == 2  # 34 + 33 clients, one encoding per watch-set
    assert len({id(packet) for _, packet in sent}) == 2  # the very same Engine.IO packet queued for each member
    packets = {eio: orjson.loads(packet.encode()[2:]) for eio, packet in sent}
    assert packets["eio0"] == ["batch", {"ticks": [{"market": "coinbase:BTC-USD", "ticks": [entry("coinbase:BTC-USD", 1)]}],
                                         "interval_ms": 50}]
    assert [part["market"] for part in packets["eio1"][1]["ticks"]] == two
    assert packets["eio1"][1]["market_state"] == [{"market": "binance:BTC-USDT", "state": "streaming"}]
    assert fanout.flush() == 0  # nothing new: nothing sent


def test_a_feeds_change_reaches_every_client_once_per_interval_and_two_changes_combine(monkeypatch):
    fanout, sent, _ = fanout_of(4, [[], ["coinbase:BTC-USD"]], monkeypatch)
    fanout.add_feeds({"now": 1, "changed": {"coinbase": {"frames": 1, "markets": {"BTC-USD": {"ticks": 1}}}}})
    fanout.add_feeds({"now": 2, "changed": {"coinbase": {"state": "stale", "markets": {"ETH-USD": None}},
                                            "kraken": None}})
    assert fanout.flush() == 2 and len(sent) == 4
    feeds = {orjson.dumps(orjson.loads(packet.encode()[2:])[1]["feeds"]) for _, packet in sent}
    assert [orjson.loads(f) for f in feeds] == [{"now": 2, "changed": {
        "coinbase": {"frames": 1, "state": "stale", "markets": {"BTC-USD": {"ticks": 1}, "ETH-USD": None}},
        "kraken": None}}]


def test_the_interval_lengthens_stepwise_under_load_and_comes_back_when_it_falls():
    from dashboard.fanout import Pacing
    pacing = Pacing(50)
    steps = []
    for _ in range(40):  # every round wakes a whole interval late: out of CPU
        pacing.note(0.001, pacing.interval_s, 0, 10)
        steps.append(pacing.interval_ms)
    assert sorted(set(steps)) == [50, 100, 200, 400, 800, 1000] and pacing.interval_ms == 1000  # never above 1 s
    pacing.note(0.001, 0.0, 1, 3)  # one slow client among few is conflated, not paced for
    for _ in range(10):
        pacing.note(0.001, 0.0, 1, 3)
    assert pacing.interval_ms == 1000
    steps = []
    for _ in range(200):  # quiet again: back down the same steps to the configured interval, no lower
        pacing.note(0.001, 0.0, 0, 10)
        steps.append(pacing.interval_ms)
    assert sorted(set(steps)) == [50, 100, 200, 400, 800, 1000] and pacing.interval_ms == 50
