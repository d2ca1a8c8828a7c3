"""Issue 14: state that clients could grow without bound. A GET never creates state; an unlisted market is refused at
once and the streamed markets are capped per exchange; a market nobody watches is released with everything kept of
it; the feeds' status goes to a client in full once, then only what changed."""
import json
import os
import shutil
import time

import pytest
from flask import Flask

from conftest import ServerProcess, get, sio_client, wait_listing
from dashboard.api import make_api
from dashboard.feeds import Feeds, feeds_change, merge_feeds
from dashboard.hub import Hub


class FakeServer:
    """What the fan-out needs of python-socketio's Server: rooms, and emits recorded; no client is ever slow."""

    def __init__(self, emits):
        self.emits, self.rooms = emits, {}
        self.manager, self.eio = self, self
        self.sockets = {}  # engine.io's: no queue waits here

    def enter_room(self, sid, room, namespace=None):
        self.rooms.setdefault(room, set()).add(sid)

    def leave_room(self, sid, room, namespace=None):
        self.rooms.get(room, set()).discard(sid)

    def get_participants(self, namespace, room):
        return [(sid, sid) for sid in self.rooms.get(room, ())]

    def emit(self, event, data, **kwargs):
        self.emits.append((event, data, kwargs))


class FakeSocketIO:
    """What the hub needs of Flask-SocketIO: emits are recorded."""

    def __init__(self):
        self.emits = []
        self.server = FakeServer(self.emits)

    def emit(self, event, data, **kwargs):
        self.emits.append((event, data, kwargs))

    def sleep(self, seconds):
        pass


def tick(market, seq_hint=0):
    exchange, _, symbol = market.partition(":")
    return {"exchange": exchange, "symbol": symbol, "time": 1_700_000_000_000 + seq_hint, "received": 1_700_000_000_000,
            "bid": "1.0", "bid_size": "1", "ask": "1.1", "ask_size": "1", "last": None, "last_size": None,
            "last_side": None, "empty": None}


def held_by(hub):
    return hub.held()  # how many markets each per-market structure of the hub holds


# --- 1. a GET never creates state --------------------------------------------------------------------------------
def test_gets_of_unknown_pairs_create_nothing_and_answer_empty():
    """2,000 GETs of pairs nobody streams (no history: what memory holds) leave every per-market structure of the
    hub as it was, and each is answered 200 with nothing in it."""
    hub = Hub(FakeSocketIO())
    for market in ("coinbase:BTC-USD", "binance:BTC-USDT"):
        hub.publish(tick(market))
    before = held_by(hub)
    app = Flask(__name__)
    offer = {"exchanges": {name: name for name in ("coinbase", "binance", "kraken", "okx", "gemini", "bitstamp",
                                                   "binanceus")}}
    app.register_blueprint(make_api(hub, None, lambda: offer))
    http = app.test_client()
    for i in range(1, 501):
        chart = http.get(f"/api/chart?pair=Z{i}-USD")
        assert chart.status_code == 200 and chart.get_json()["series"] == {}
        ticks = http.get(f"/api/ticks?market=coinbase:Z{i}-USD")
        assert ticks.status_code == 200 and ticks.get_json()["ticks"] == [] and ticks.get_json()["count"] == 0
        csv = http.get(f"/api/ticks.csv?market=kraken:Z{i}-USD")
        assert csv.status_code == 200 and csv.get_data(as_text=True).count("\n") == 1  # the header only
        assert http.get("/api/markets").status_code == 200
    assert held_by(hub) == before
    assert hub.markets() == ["binance:BTC-USDT", "coinbase:BTC-USD"]


def test_a_backfill_of_a_market_not_streamed_creates_nothing():
    hub = Hub(FakeSocketIO())
    before = held_by(hub)
    assert hub.backfill("coinbase:Z1-USD") == {"market": "coinbase:Z1-USD", "ticks": [], "state": None}
    assert held_by(hub) == before


@pytest.fixture(scope="module")
def bare_server():
    """A replay with no history (what memory holds is all there is) and no REST, releasing after 0.5 s."""
    server = ServerProcess("--replay", "--speed", "5", "--no-history", "--no-rest", "--release-after", "0.5",
                           "--subscribe-rate", "100")
    yield server
    assert server.stop() == 0


def test_the_reported_case_against_a_replay_without_history(bare_server):
    """The reporter's run, bounded: chart GETs of unknown pairs on `server.py --replay --no-history` leave the
    markets the server holds as they were."""
    streaming = lambda: json.loads(get(bare_server.url + "/api/markets")[1])["streaming"]  # noqa: E731
    watchlist = set(json.loads(get(bare_server.url + "/api/markets")[1])["watchlist"])
    before = streaming()
    for i in range(1, 201):
        status, body = get(f"{bare_server.url}/api/chart?pair=Z{i}-USD")
        assert status == 200 and json.loads(body)["series"] == {}
    assert set(streaming()) <= set(before) | watchlist  # the watchlist's first ticks may land meanwhile
    assert not [market for market in streaming() if ":Z" in market]


# --- 2. what clients may make the server stream ------------------------------------------------------------------
def feeds_for(hub, listed=lambda exchange, symbol: None, cap=200):
    return Feeds(hub, ["coinbase", "binance"], {}, ["coinbase:BTC-USD", "binance:BTC-USDT"],
                 max_markets_per_exchange=cap, listed=listed)


def test_an_unlisted_market_is_refused_without_a_subscription_and_without_state():
    hub = Hub(FakeSocketIO())
    feeds = feeds_for(hub, listed=lambda exchange, symbol: symbol in ("BTC-USD", "ETH-USD") if exchange == "coinbase"
                      else None)
    before = held_by(hub)
    for i in range(1, 51):
        assert feeds.refusal(f"coinbase:Q{i}-USD") == f"Q{i}-USD is not listed on Coinbase"
        assert feeds.ensure(f"coinbase:Q{i}-USD") is False
    assert feeds.listeners["coinbase"].symbols() == ["BTC-USD"]  # nothing asked of the exchange
    hub.flush()
    assert held_by(hub) == before  # the refusals were sent to the markets' rooms, and kept nowhere
    assert feeds.refusal("coinbase:ETH-USD") is None and feeds.ensure("coinbase:ETH-USD") is True
    assert feeds.refusal("binance:Q1-USDT") is None  # Binance's listing is not known: the exchange decides


def test_markets_per_exchange_are_capped_and_the_configured_ones_always_count_and_pass():
    hub = Hub(FakeSocketIO())
    feeds = feeds_for(hub, cap=3)
    assert feeds.ensure("binance:A1-USDT") and feeds.ensure("binance:A2-USDT")  # with BTC-USDT: 3
    why = feeds.refusal("binance:A3-USDT")
    assert why == "Binance: this server streams at most 3 markets at once; try again when one is closed"
    assert feeds.ensure("binance:A3-USDT") is False
    assert feeds.refusal("binance:BTC-USDT") is None and feeds.refusal("binance:A1-USDT") is None
    assert feeds.ensure("coinbase:A3-USD")  # per exchange
    feeds.release("binance:A1-USDT")
    assert feeds.ensure("binance:A3-USDT") is True
    feeds.release("binance:BTC-USDT")  # configured: never released
    assert "BTC-USDT" in feeds.listeners["binance"].symbols()


def test_a_released_market_leaves_nothing_in_the_hub_or_the_listener():
    hub = Hub(FakeSocketIO())
    feeds = feeds_for(hub)
    feeds.hub.feeds = feeds.status
    markets = [f"coinbase:M{i}-USD" for i in range(20)]
    before = held_by(hub)
    for i, market in enumerate(markets):
        hub.watch(f"sid{i % 4}", market)
        assert feeds.ensure(market)
        hub.publish(tick(market))
        hub.publish_gap({"exchange": "coinbase", "symbol": market.partition(":")[2], "from": 1, "to": 2,
                         "reason": "test"})
        feeds.listeners["coinbase"]._stats(market.partition(":")[2]).ticks += 1  # as its thread counts a tick
    hub.flush()
    assert held_by(hub)["rings"] == before["rings"] + 20
    for sid in ("sid0", "sid1", "sid2", "sid3"):
        for market in hub.forget_client(sid):
            feeds.release(market)
    hub.publish(tick(markets[0]))  # a tick in flight after its release opens nothing again
    hub.set_market_state(markets[0], "subscribed")
    hub.flush()
    assert held_by(hub) == before
    assert feeds.listeners["coinbase"].symbols() == ["BTC-USD"]
    assert feeds.listeners["coinbase"].markets == {}


# The listing is known for Coinbase in replay (the local exchange serves the recorded one); Binance's is not.
def client_of(server, clients):
    return sio_client(server.url, ("error", "feeds"), clients)


def binance_symbols(events):
    return next(f["symbols"] for f in events["feeds"].items[-1] if f["exchange"] == "binance")


def coinbase_symbols(events):
    return next(f["symbols"] for f in events["feeds"].items[-1] if f["exchange"] == "coinbase")


def test_unlisted_markets_and_markets_over_the_cap_are_refused_in_the_ack():
    server = ServerProcess("--replay", "--speed", "5", "--no-history", "--max-markets-per-exchange", "3",
                           "--subscribe-rate", "100")
    clients = []
    try:
        wait_listing(server, "coinbase")
        sio, events = client_of(server, clients)
        for i in range(1, 21):
            reply = sio.call("subscribe", {"market": f"coinbase:Q{i}-USD"}, timeout=5)
            assert reply == {"ok": False, "event": "subscribe", "market": f"coinbase:Q{i}-USD",
                             "message": f"Q{i}-USD is not listed on Coinbase"}
        assert sio.call("subscribe", {"market": "coinbase:DASH-BTC"}, timeout=5)["ok"] is True  # listed
        events["feeds"].wait_for(lambda items: items and "DASH-BTC" in coinbase_symbols(events), timeout=10)
        assert not [symbol for symbol in coinbase_symbols(events) if symbol.startswith("Q")]

        # Binance's listing is not known here: the cap alone (its configured market counts)
        assert [sio.call("subscribe", {"market": f"binance:Q{i}-USDT"}, timeout=5)["ok"] for i in (1, 2, 3, 4)] == [
            True, True, False, False]
        assert events["error"].items[-1]["message"] == (
            "Binance: this server streams at most 3 markets at once; try again when one is closed")
        configured = next(m for m in json.loads(get(server.url + "/api/markets")[1])["watchlist"]
                          if m.startswith("binance:"))
        assert sio.call("subscribe", {"market": configured}, timeout=5)["ok"] is True  # never refused
        events["feeds"].wait_for(lambda items: items and len(binance_symbols(events)) == 3, timeout=10)
        assert not [line for line in server.lines.items if "coinbase:Q" in line]  # no REST call, no subscription
    finally:
        for sio in clients:
            sio.disconnect()
        assert server.stop() == 0


def test_every_market_is_released_once_its_clients_leave(bare_server):
    """20 clients x 20 markets (400 subscriptions: recorded markets that stream, and Binance pairs it accepts and
    never feeds), then all disconnect: within RELEASE_AFTER_S + a bound, only the configured markets are streamed,
    held in the hub (rings) and counted (feeds status, /metrics)."""
    server = bare_server
    clients = []
    try:
        offer = json.loads(get(server.url + "/api/markets")[1])
        configured = set(offer["watchlist"])
        recorded = [f"{name}:{symbol}" for name, symbols in sorted(offer["available"].items()) for symbol in symbols
                    if f"{name}:{symbol}" not in configured]
        unfed = [f"binance:Q{i}-USDT" for i in range(60)]
        pool = recorded + unfed
        watcher, events = client_of(server, clients)
        for c in range(20):
            sio, _ = client_of(server, clients)
            for k in range(20):  # not waiting for each ack: the subscriptions are what is measured
                sio.emit("subscribe", {"market": pool[(c * 20 + k) % len(pool)]})
        unfed_symbols = {market.partition(":")[2] for market in unfed}
        events["feeds"].wait_for(lambda items: items and unfed_symbols <= set(binance_symbols(events)), timeout=15)
        streaming = lambda: set(json.loads(get(server.url + "/api/markets")[1])["streaming"])  # noqa: E731
        deadline = time.monotonic() + 15
        while not streaming() - configured:  # some recorded market's ticks are held
            assert time.monotonic() < deadline, "no recorded market streamed"
            time.sleep(0.1)
        for sio in clients[1:]:
            sio.disconnect()
        left = time.monotonic()
        only_configured = lambda items: all(  # noqa: E731
            {f"{f['exchange']}:{s}" for s in f["symbols"]} <= configured and
            {f"{f['exchange']}:{s}" for s in f["markets"]} <= configured for f in items[-1])
        events["feeds"].wait_for(only_configured, timeout=10)
        assert time.monotonic() - left < 0.5 + 5
        assert streaming() <= configured
        metrics = get(server.url + "/metrics")[1]
        assert not [market for market in pool if f'market="{market}"' in metrics]
    finally:
        for sio in clients:
            sio.disconnect()


# --- 3. the feeds' status: in full once, then what changed -------------------------------------------------------
STATUS = {"exchange": "coinbase", "label": "Coinbase", "state": "live", "reason": "", "symbols": ["BTC-USD"],
          "frames": 10, "markets": {"BTC-USD": {"ticks": 1, "gaps": 0, "last_data_at": 5}}, "now": 100}


def test_a_change_names_only_what_changed_and_merges_back():
    other = {**STATUS, "exchange": "binance", "label": "Binance"}
    before = [STATUS, other]
    after = [{**STATUS, "frames": 11, "markets": {"ETH-USD": {"ticks": 1, "gaps": 0, "last_data_at": 6}},
              "now": 200}, {**other, "now": 200}]
    change = feeds_change(before, after)
    assert change == {"now": 200, "changed": {"coinbase": {
        "frames": 11, "markets": {"ETH-USD": {"ticks": 1, "gaps": 0, "last_data_at": 6}, "BTC-USD": None}}}}
    assert merge_feeds(before, change) == after
    assert feeds_change(after, [dict(status, now=300) for status in after]) is None  # only the clock moved
    assert merge_feeds(after, feeds_change(after, after[:1])) == after[:1]  # a feed gone


def test_a_change_that_overtakes_the_full_copy_is_not_applied():
    """A change broadcast while a client connects can reach it before its full copy: merged onto nothing it would
    leave a status naming only the changed feeds (the page would lose every other badge). The copy holds it."""
    other = {**STATUS, "exchange": "binance", "label": "Binance"}
    change = {"now": 200, "changed": {"coinbase": {"frames": 11}}}
    assert merge_feeds(None, change) is None  # no full copy yet: nothing to merge onto
    full = [{**STATUS, "frames": 11, "now": 250}, {**other, "now": 250}]
    assert merge_feeds(merge_feeds(None, change) or full, change) == full  # older than the copy: not applied
    assert merge_feeds(full, {"now": 300, "changed": {"coinbase": {"frames": 12}}})[0]["frames"] == 12


def test_unchanged_feeds_are_not_sent_again():
    socketio_ = FakeSocketIO()
    hub = Hub(socketio_)
    hub.follow("sid")  # a client watching nothing: the feeds still reach it
    statuses = [STATUS]
    hub._show_feeds(statuses)
    hub.fanout.flush()
    for now in range(101, 104):  # three seconds of the same status
        hub._show_feeds([{**STATUS, "now": now}])
        hub.fanout.flush()
    assert [(event, list(data)) for event, data, _ in socketio_.emits] == [("batch", ["feeds", "interval_ms"])]
    greeted = []
    hub.greet_feeds(greeted.append)
    assert greeted == [[{**STATUS, "now": 103}]]


def test_a_client_gets_the_full_status_once_then_only_changes_and_a_changed_feed_reaches_it(replay_server):
    server = replay_server
    clients = []
    try:
        sio, events = client_of(server, clients)
        feeds = events["feeds"]
        full = feeds.wait_for(lambda items: items)[0]
        connected = time.monotonic()
        while time.monotonic() - connected < 3:  # three seconds connected
            time.sleep(0.1)
        payloads = list(feeds.payloads)
        assert isinstance(payloads[0], list) and len(payloads[0]) == 7
        assert all(isinstance(payload, dict) for payload in payloads[1:])  # no second full copy
        full_bytes = len(json.dumps(full))
        change_bytes = [len(json.dumps(payload)) for payload in payloads[1:]]
        assert max(change_bytes) < full_bytes / 2
        static = {"label", "stale_after_s", "quote_on_every_change", "exchange"}  # never change: never sent
        assert not [key for payload in payloads[1:] for fields in payload["changed"].values() for key in fields
                    if key in static]
        other, _ = client_of(server, clients)  # another client's market changes Coinbase's feed
        assert other.call("subscribe", {"market": "coinbase:DASH-BTC"}, timeout=5)["ok"] is True
        feeds.wait_for(lambda items: "DASH-BTC" in coinbase_symbols(events), timeout=5)  # merged from a change
        assert len([p for p in feeds.payloads if isinstance(p, list)]) == 1
    finally:
        for sio in clients:
            sio.disconnect()


# --- the same rules in team mode: a web process refuses what the collector would, and the collector checks again --
@pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("REQUIRE_TEAM"),
                    reason="needs redis-server (apt install redis-server)")
def test_team_mode_refuses_caps_and_releases_as_one_process_does():
    from conftest import RedisServer
    from dashboard.bus import Bus
    redis = RedisServer()
    started, clients = [], []
    try:
        common = ("--replay", "--redis-url", redis.url, "--no-history", "--max-markets-per-exchange", "3",
                  "--subscribe-rate", "100")
        started.append(ServerProcess("--role", "collector", "--speed", "5", *common))
        web = ServerProcess("--role", "web", *common)
        started.append(web)
        sio, events = client_of(web, clients)
        wait_listing(web, "coinbase")  # the collector's listing, through Redis
        assert sio.call("subscribe", {"market": "coinbase:Q1-USD"}, timeout=5)["message"] == \
            "Q1-USD is not listed on Coinbase"
        assert [sio.call("subscribe", {"market": f"binance:Q{i}-USDT"}, timeout=5)["ok"] for i in (1, 2)] == [
            True, True]
        events["feeds"].wait_for(lambda items: items and len(binance_symbols(events)) == 3, timeout=15)
        assert sio.call("subscribe", {"market": "binance:Q3-USDT"}, timeout=5)["message"] == (
            "Binance: this server streams at most 3 markets at once; try again when one is closed")
        Bus(redis.url, mode="replay").send({"ensure": "binance:Q4-USDT"})  # past the web's check: the collector's
        mark = len(events["feeds"].items)
        events["feeds"].wait_for(lambda items: len(items) >= mark + 2, timeout=10)  # two readings later ...
        assert "Q4-USDT" not in binance_symbols(events)  # ... still refused
        assert not [p for p in events["feeds"].payloads[1:] if isinstance(p, list)]  # changes only after the first

        sio.disconnect()  # its lease lapses (roles.LEASE_S), then the collector releases, here and in Redis
        watcher, later = client_of(web, clients)
        later["feeds"].wait_for(lambda items: items and len(binance_symbols(later)) == 1, timeout=15)
        states = Bus(redis.url, mode="replay").redis.hkeys("dashboard:replay:states")
        assert not [key for key in states if b":Q" in key]
    finally:
        for sio in clients:
            sio.disconnect()
        for process in started:
            assert process.stop() == 0
        redis.kill()


def test_a_market_let_go_and_streamed_again_leaves_a_gap_for_the_time_nobody_watched_it(tmp_path):
    """Released (nobody watched it), a market is not streamed: when it is streamed again, the time between never
    reads as adjacent rows. Its first new entry comes after a gap from its last entry, even one the writer had not
    stored yet; a market that was never released gets no such gap."""
    from dashboard.history import RELEASED, SQLiteHistory, gap_on_resume
    store = SQLiteHistory(tmp_path / "h.sqlite3")
    hub = Hub(FakeSocketIO(), history=store)
    publish = gap_on_resume(store, hub.publish, hub.publish_gap)
    market, other = "coinbase:BTC-USD", "binance:BTC-USDT"
    for received in (1000, 2000):
        publish({**tick(market), "received": received})
        publish({**tick(other), "received": received})
    hub.forget_market(market)  # released; its entries still wait for the writer
    publish({**tick(market), "received": 9000})
    publish({**tick(other), "received": 9000})
    store.flush()
    kinds = [(e.get("kind", "tick"), e.get("received"), e.get("from"), e.get("to"), e.get("reason"))
             for e in store.recent(market, 10)]
    assert kinds == [("tick", 1000, None, None, None), ("tick", 2000, None, None, None),
                     ("gap", None, 2000, 9000, RELEASED), ("tick", 9000, None, None, None)]
    assert [e.get("kind", "tick") for e in store.recent(other, 10)] == ["tick"] * 3
    assert [e["kind"] for e in hub.backfill(market)["ticks"] if e.get("kind")] == ["gap"]  # streamed to pages too
    store.close()
