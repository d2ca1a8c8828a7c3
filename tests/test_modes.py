"""Replay never leaks into live: each mode opens its own history and listing cache, and a store or cache given to
both modes serves only the mode that wrote it. Nothing here reaches an exchange (no listener is started)."""
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

import dashboard.app
from conftest import ROOT, FakeRest, free_port
from dashboard.app import create_app
from dashboard.config import leftovers, load_settings
from dashboard.history import STORE_MODES, SQLiteHistory, StoreModeError, open_history
from dashboard.listings import Listings
from exchanges import EXCHANGES
from exchanges.binance import BinanceUS
from exchanges.coinbase import Coinbase

MARKET = "okx:BTC-USDT"
KEYS = ("HISTORY_URL", "LISTINGS_DIR", "MARKETS", "EXCHANGES", "ROLE", "REDIS_URL", "FAULTS")


def tick(n):
    return {"exchange": "okx", "symbol": "BTC-USDT", "time": 1650000000000 + n, "received": 1795600000000 + n,
            "bid": "41000.1", "bid_size": "1", "ask": "41000.2", "ask_size": "2", "last": "41000.1",
            "last_size": "0.1", "last_side": "buy"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The app factory with the project folder moved to tmp_path (the defaults' relative paths land there, never
    in the project's own data/), and `open(*argv)` building an app from those arguments; every store opened is
    closed at the end. Only the store is opened: no listener, task or socket is started."""
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(dashboard.app, "ROOT", tmp_path)
    opened = []

    def open_app(*argv):
        settings = load_settings(["--no-rest", "--async-mode", "threading", *argv], env_file=tmp_path / "no.env")
        app = create_app(settings)
        opened.append(app)
        return app

    project = type("Project", (), {"root": tmp_path, "open": staticmethod(open_app)})
    yield project
    for app in opened:
        if app.hub.history is not None:
            app.hub.history.close()


def write(app, *ticks):
    for each in ticks:
        app.hub.history.append(MARKET, each)
    app.hub.history.flush()


def stored(app):
    """What the app's history API serves of MARKET."""
    client = app.app.test_client()
    markets = client.get("/api/markets").get_json()["stored"]
    ticks = client.get(f"/api/ticks?market={MARKET}&from=0").get_json()["ticks"]
    return markets, [t["time"] for t in ticks if t.get("kind") != "gap"]


def test_a_store_written_in_replay_is_not_what_live_opens(project):
    replay = project.open("--replay")
    write(replay, tick(1), tick(2))
    assert replay.hub.history.path == project.root / "data/replay/history.sqlite3"
    assert stored(replay) == ([MARKET], [1650000000001, 1650000000002])
    replay.hub.history.close()

    live = project.open()
    assert live.hub.history.path == project.root / "data/live/history.sqlite3"
    assert stored(live) == ([], []) and backfill(live) == []  # no 2022 OKX prices on the live page or its API
    write(live, tick(3))
    live.hub.history.close()

    again = project.open("--replay")  # a replay restarted backfills from the replay's own store, and only from it
    assert stored(again) == ([MARKET], [1650000000001, 1650000000002])
    assert backfill(again) == [1650000000001, 1650000000002]


def backfill(app):
    """The times of what a new panel of MARKET is backfilled with, through the page's own Socket.IO event."""
    client = app.socketio.test_client(app.app)
    client.emit("subscribe", {"market": MARKET})
    [event] = [e for e in client.get_received() if e["name"] == "backfill"]
    client.disconnect()
    return [t["time"] for t in event["args"][0]["ticks"] if t.get("kind") != "gap"]


def test_one_history_url_given_to_both_modes_serves_only_the_mode_that_wrote_it(project):
    url = f"sqlite:///{project.root}/shared.sqlite3"
    replay = project.open("--replay", "--history-url", url)
    assert replay.hub.history.path == project.root / "shared.sqlite3"  # an explicit URL is honoured ...
    write(replay, tick(1))
    replay.hub.history.close()
    with pytest.raises(StoreModeError, match="holds replay ticks, and live never reads them"):
        project.open("--history-url", url)  # ... but never serves the replay's ticks as live
    again = project.open("--replay", "--history-url", url)
    assert stored(again) == ([MARKET], [1650000000001])


def test_an_explicit_history_url_is_honoured_in_live_too(project):
    live = project.open("--history-url", f"sqlite:///{project.root}/mine.sqlite3")
    assert live.hub.history.path == project.root / "mine.sqlite3"
    template = project.open("--replay", "--history-url", f"sqlite:///{project.root}/{{mode}}/h.sqlite3")
    assert template.hub.history.path == project.root / "replay" / "h.sqlite3"


def test_a_store_from_before_the_modes_were_kept_apart_is_refused_by_both(tmp_path):
    old = SQLiteHistory(tmp_path / "history.sqlite3")  # written without a mode: may hold live and replay ticks
    old.append(MARKET, tick(1))
    old.close()
    for mode in ("live", "replay"):
        with pytest.raises(StoreModeError, match="before live and replay were kept apart"):
            open_history(f"sqlite:///{tmp_path}/history.sqlite3", 7, mode=mode)
    empty = open_history(f"sqlite:///{tmp_path}/new.sqlite3", 7, mode="live")  # a new store: stamped, then used
    empty.close()
    with sqlite3.connect(tmp_path / "new.sqlite3") as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == STORE_MODES["live"]


def test_the_server_refuses_to_serve_a_replay_store_live_and_says_why(tmp_path):
    store = open_history(f"sqlite:///{tmp_path}/shared.sqlite3", 7, mode="replay")
    store.append(MARKET, tick(1))
    store.close()
    loopback = [arg for name in EXCHANGES for arg in (f"--{name}-ws-url", "ws://127.0.0.1:9/")]  # if all else fails
    done = subprocess.run([sys.executable, str(ROOT / "server.py"), "--port", str(free_port()), "--no-rest",
                           "--history-url", f"sqlite:///{tmp_path}/shared.sqlite3", "--listings-dir",
                           str(tmp_path / "listings"), "--async-mode", "threading", *loopback],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "holds replay ticks, and live never reads them" in done.stderr, done.stderr


def test_a_listing_cached_in_replay_is_not_served_live_from_the_same_folder(tmp_path):
    from exchanges.recording import read_rest
    from conftest import UPSTREAM
    listeners = {"coinbase": Coinbase(), "binanceus": BinanceUS()}
    recorded = {"coinbase": read_rest(UPSTREAM / "COINBASE.0")[2], "binanceus": read_rest(UPSTREAM / "BINANCE_US.0")[2]}
    replay = Listings(listeners, FakeRest(recorded), tmp_path, mode="replay")  # the local exchange's listings
    replay.refresh()
    assert replay.source["coinbase"] == "rest" and replay.symbols["coinbase"]
    live = Listings(listeners, FakeRest({}), tmp_path, mode="live")  # the exchanges unreachable: the cache would serve
    live.refresh()
    assert live.symbols == {"coinbase": [], "binanceus": []} and live.source["coinbase"] == "none"
    again = Listings(listeners, FakeRest({}), tmp_path, mode="replay")
    again.refresh()
    assert again.symbols == replay.symbols and again.source["coinbase"].startswith("cache from ")
    (tmp_path / "coinbase.json").write_bytes(b'{"fetched_at": 1, "symbols": ["BTC-USD"]}')  # from before: no mode
    fresh = Listings(listeners, FakeRest({}), tmp_path, mode="replay")
    fresh.refresh()
    assert fresh.symbols["coinbase"] == [] and fresh.symbols["binanceus"] == replay.symbols["binanceus"]


def test_data_from_before_the_modes_were_kept_apart_is_named_at_start(project):
    (project.root / "data/listings").mkdir(parents=True)
    SQLiteHistory(project.root / "data/history.sqlite3").close()
    settings = load_settings(["--replay"], env_file=project.root / "no.env")
    assert leftovers(settings, root=project.root) == ["data/history.sqlite3", "data/listings"]
    settings = load_settings(["--history-url", "sqlite:///data/history.sqlite3"], env_file=project.root / "no.env")
    assert leftovers(settings, root=project.root) == ["data/listings"]  # the one given explicitly is in use


@pytest.fixture
def redis_url():
    from conftest import RedisServer
    if shutil.which("redis-server") is None and not os.environ.get("REQUIRE_TEAM"):
        pytest.skip("needs redis-server (apt install redis-server; .ci/run installs it)")
    server = RedisServer()
    yield server.url
    server.kill()


def test_a_live_and_a_replaying_team_can_share_a_redis_without_seeing_each_other(redis_url):
    from dashboard.bus import Bus
    from dashboard.roles import emitting_queue, listening_queue
    live, replay = Bus(redis_url, 10, "live"), Bus(redis_url, 10, "replay")
    replay.store({MARKET: [tick(1)]}, {MARKET: {"state": "streaming"}})
    replay.set_feeds([{"exchange": "okx", "state": "live"}], ttl_s=60)
    replay.set_offer({"watchlist": [MARKET]})
    replay.lease("web-1", [MARKET], ttl_s=60)
    assert replay.recent(MARKET, 10) == [tick(1)] and replay.watched() == {MARKET} and replay.offer()
    assert (live.recent(MARKET, 10), live.state(MARKET), live.feeds(), live.offer(), live.watched()) == \
        ([], None, (None, 0.0), None, set())
    assert replay.feeds()[0] == [{"exchange": "okx", "state": "live"}]
    live.set_offer({"watchlist": ["coinbase:BTC-USD"]})
    assert replay.offer() == {"watchlist": [MARKET]}
    assert live._key("commands") != replay._key("commands")
    # Flask-SocketIO's queue (every tick batch): a live web process listens where no replaying collector emits
    assert emitting_queue(redis_url, "replay").channel != listening_queue(redis_url, "live").channel
    assert emitting_queue(redis_url, "live").channel == listening_queue(redis_url, "live").channel == "flask-socketio"
    for bus in (live, replay):
        bus.redis.close()
