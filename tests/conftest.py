"""Shared test helpers: recorded and documented frames, event-driven waiting, the local exchange, a server."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
UPSTREAM = FIXTURES / "upstream"
sys.path.insert(0, str(ROOT))

from exchanges.recording import Recorder, read_frames  # noqa: E402
from exchanges.simulator import LocalExchange  # noqa: E402


def recorded(file: str, contains: str = "", index: int = 0) -> str:
    """The index-th recorded frame of `file` (in upstream/) whose text contains `contains`."""
    matches = (f.frame for f in read_frames(UPSTREAM / file) if contains in f.frame)
    for _ in range(index):
        next(matches)
    return next(matches)


def documented(name: str) -> str:
    """A frame copied from an exchange's documentation: `name` in tests/fixtures/documented/<exchange>.json."""
    for file in sorted((FIXTURES / "documented").glob("*.json")):
        entries = json.loads(file.read_text())
        if name in entries:
            return entries[name]["frame"]
    raise KeyError(name)


def wait_until(check, timeout, every=0.05):
    """check() until it returns something truthy (returned), for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(every)


def fetch(url):
    """(status, headers, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def get(url):
    """(status, body) of a GET, errors included."""
    status, _, body = fetch(url)
    return status, body


def wait_listing(server, exchange: str, timeout: float = 20.0) -> None:
    """Until the server knows `exchange`'s listing (it is fetched in the background after start)."""
    deadline = time.monotonic() + timeout
    while json.loads(get(server.url + "/api/markets")[1])["listing_source"].get(exchange, "none") == "none":
        assert time.monotonic() < deadline, f"{exchange}'s listing still unknown after {timeout} s"
        time.sleep(0.1)


def two_venue_recording(folder) -> Path:
    """A recording in which Coinbase and Binance.US quote one pair, SKL-USD: Coinbase's real SKL-USD tickers, and
    Binance.US's real OMG-BUSD frames renamed (no recording holds one pair on two exchanges)."""
    recorder = Recorder(folder)
    for frame in read_frames(UPSTREAM / "COINBASE.ws.28.0"):
        if '"product_id":"SKL-USD"' in frame.frame and '"type":"ticker"' in frame.frame:
            recorder("coinbase", frame.url, frame.received, frame.frame)
    for frame in read_frames(UPSTREAM / "BINANCE_US.ws.1.0"):
        if "omgbusd@" in frame.frame:
            recorder("binanceus", frame.url, frame.received,
                     frame.frame.replace("omgbusd", "sklusd").replace("OMGBUSD", "SKLUSD"))
    recorder.close()
    return Path(folder)


def apply_changes(bids: dict, asks: dict, changes) -> None:
    """A plain reference book ({Decimal(price): (price, size)} per side) takes ["buy"/"sell", price, size] changes;
    a zero size removes the level. What the book tests compare OrderBook with."""
    for side, price, size in changes:
        levels = bids if side == "buy" else asks
        if Decimal(size) == 0:
            levels.pop(Decimal(price), None)
        else:
            levels[Decimal(price)] = (price, size)


class FakeRest:
    """A REST client answering each exchange's GET with one recorded body; an exchange it has none for is
    unreachable."""

    def __init__(self, bodies):
        self.bodies = bodies

    def get(self, exchange, path, params=None):
        if exchange not in self.bodies:
            raise ConnectionError("unreachable")
        return self.bodies[exchange]


class Collector:
    """A list that threads append to, and tests wait on (woken by every append, never by a timer)."""

    def __init__(self):
        self.items = []
        self._changed = threading.Condition()

    def __call__(self, *item):
        with self._changed:
            self.items.append(item[0] if len(item) == 1 else item)
            self._changed.notify_all()

    def wait_for(self, predicate, timeout=15.0):
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.items), timeout):
                raise AssertionError(f"timed out after {timeout} s; have {len(self.items)} items: "
                                     f"{self.items[-5:]!r}")
            return self.items


class FeedsCollector(Collector):
    """The `feeds` events as the page keeps them: each item is the whole status (a list of feeds) after one event,
    the first being the full copy sent on connect and each later one merged from a change (feeds.merge_feeds).
    `payloads` keeps what came over the wire."""

    def __init__(self):
        super().__init__()
        self.payloads = []

    def __call__(self, payload):
        from dashboard.feeds import merge_feeds
        with self._changed:
            self.payloads.append(payload)
            merged = merge_feeds(self.items[-1] if self.items else None, payload)
            if merged is not None:  # None: a change before the full copy (which holds it)
                self.items.append(merged)
            self._changed.notify_all()


def watched(listener_class, url, symbols, **options):
    """A listener of `listener_class` on `url` for `symbols`, its ticks, market states and feed states collected:
    (listener, ticks, markets, states)."""
    ticks, markets, states = Collector(), Collector(), Collector()
    listener = listener_class(url, symbols, on_tick=ticks, on_market=markets,
                              on_state=lambda status: states(status["state"]), **options)
    return listener, ticks, markets, states


def refused_while_the_rest_streams(listener, ticks, markets, states, symbol, reason):
    """Add `symbol` (a pair the exchange does not list): it is refused with `reason`, never re-subscribed, and the
    markets already streamed go on, on the same connection, with no bad frame."""
    listener.add(symbol)
    markets.wait_for(lambda m: (f"{listener.name}:{symbol}", "error", reason) in m)
    assert symbol not in listener.symbols()
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)  # the good market goes on
    status = listener.status()
    assert status["reconnects"] == 0 and status["bad_frames"] == 0 and states.items[:2] == ["connecting", "live"]


from dashboard.fanout import listen  # noqa: E402  (a `batch` packet's parts as the events they were)


def sio_client(url: str, names=("ticks",), clients: list = None):
    """A Socket.IO client connected to `url` over websocket, with a Collector per event name (a FeedsCollector for
    "feeds"; a `batch` packet's parts each as its own event, see `listen`): (client, {name: collector}). Appended to
    `clients` when given, for the caller to disconnect."""
    import socketio
    sio = socketio.Client(reconnection=False)
    events = {name: FeedsCollector() if name == "feeds" else Collector() for name in names}
    for name, collector in events.items():
        listen(sio, name, collector)
    sio.connect(url, transports=["websocket"], wait_timeout=10)
    if clients is not None:
        clients.append(sio)
    return sio, events


@pytest.fixture
def local_exchange():
    exchange = LocalExchange(speed=20).start()
    yield exchange
    exchange.stop()


@pytest.fixture
def start_listener():
    """Start listeners in threads; stop them all at the end of the test."""
    started = []

    def start(listener):
        thread = threading.Thread(target=listener.run, daemon=True)
        thread.start()
        started.append((listener, thread))
        return listener

    yield start
    for listener, thread in started:
        listener.stop()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Every process the tests start (server.py through ServerProcess, redis-server through RedisServer), so none outlives
# its test whatever the outcome: what a test's body started and is still running once the test's own fixtures are
# torn down (they may own it: team.start_web) is killed by its pid, and what a fixture left, at the session's end.
STARTED: list = []


def end_left_running(processes) -> list[str]:
    """Kill, by pid, each of `processes` (Popen) still running, and wait for it; what was killed ("pid command")."""
    ended = []
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)
            ended.append(f"{process.pid} {' '.join(map(str, process.args))[:120]}")
    return ended


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    first = len(STARTED)
    yield  # the test's body, whatever its outcome
    item.started_in_body = STARTED[first:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the test's fixtures torn down
    ended = end_left_running(getattr(item, "started_in_body", ()))
    if ended:
        item.warn(pytest.PytestWarning(f"the test left running, killed: {'; '.join(ended)}"))


def pytest_sessionfinish(session):
    end_left_running(STARTED)


class ServerProcess:
    """`python server.py ...` in its own process, ready once it logs that it serves."""

    def __init__(self, *args, env=None, port=None):
        self.port = port or free_port()
        data = tempfile.mkdtemp(prefix="dashboard-data-")  # never the project's own data/
        if "--history-url" not in args and "--no-history" not in args:
            args = (*args, "--history-url", f"sqlite:///{data}/history.sqlite3")
        if "--listings-dir" not in args:
            args = (*args, "--listings-dir", f"{data}/listings")
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines = Collector()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--port", str(self.port), *args], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        STARTED.append(self.process)
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.lines.wait_for(lambda lines: any("serving http" in line for line in lines) or
                                self.process.poll() is not None, timeout=30)
        except AssertionError:  # not serving in time: never left behind (its local exchange exits with it)
            self.process.kill()
            self.process.wait(10)
            raise
        if self.process.poll() is not None:
            raise RuntimeError("server did not start:\n" + "".join(self.lines.items))

    def _read(self):
        for line in self.process.stdout:
            self.lines(line)

    def stop(self) -> int:
        """SIGTERM, and its exit status; a server that does not exit in 15 s is killed by its pid, and the wait's
        TimeoutExpired still fails the test (never a server left behind)."""
        self.process.terminate()
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise


@pytest.fixture(scope="session")
def replay_server():
    server = ServerProcess("--replay", "--speed", "5")
    yield server
    assert server.stop() == 0, "".join(server.lines.items[-20:])


# --- team mode: real redis-server, collector and web processes ---------------------------------------------------
TEAM_MARKET = "coinbase:SKL-USD"
STALE_AFTER_S = 2


class RedisServer:
    """A throwaway redis-server on a free loopback port, with nothing saved to disk."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", tempfile.gettempdir()], stdout=subprocess.PIPE, text=True)
        STARTED.append(self.process)
        for line in self.process.stdout:  # its own word that it accepts connections, not a sleep
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError("redis-server did not start")

    def kill(self):
        self.process.kill()
        self.process.wait(10)


class Team:
    def __init__(self, redis, data):
        self.redis, self.data = redis, data
        self.history = f"sqlite:///{data}/history.sqlite3"
        self.collector, self.webs = self.start_collector(), []
        try:
            for _ in range(2):
                self.webs.append(self.start_web())
        except BaseException:  # a web process that did not start: what did start is stopped
            self.stop()
            raise

    def common(self):
        return ("--replay", "--redis-url", self.redis.url, "--history-url", self.history, "--no-rest",
                "--stale-after", str(STALE_AFTER_S), "--async-mode", "eventlet")

    def start_collector(self):
        return ServerProcess("--role", "collector", "--speed", "5", *self.common())

    def start_web(self, port=None):
        return ServerProcess("--role", "web", *self.common(), port=port)

    def stop(self):
        for process in (self.collector, *self.webs):
            if process.process.poll() is None:
                process.process.kill()
                process.process.wait(10)


@pytest.fixture
def team():
    """A redis-server, a collector and two web processes replaying the shipped recordings; `team.client(web)`
    connects a python-socketio client that re-subscribes TEAM_MARKET after every (re)connect, as the page does."""
    import socketio
    redis = RedisServer()
    try:
        team = Team(redis, tempfile.mkdtemp(prefix="dashboard-team-"))
    except BaseException:
        redis.kill()
        raise
    clients = []

    def client(web):
        """A client of `web` that re-subscribes after every reconnect, as the page does."""
        sio = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
        events = {name: Collector() for name in ("backfill", "ticks", "service", "connect")}
        events["feeds"] = FeedsCollector()
        for name, collector in events.items():
            if name != "connect":
                listen(sio, name, collector)

        @sio.on("connect")
        def resubscribe():
            events["connect"](True)
            sio.emit("subscribe", {"market": TEAM_MARKET})
        sio.connect(web.url, transports=["websocket"], wait_timeout=10)
        clients.append(sio)
        return events

    team.client = client
    yield team
    try:
        for sio in clients:
            sio.disconnect()
    finally:  # a client that fails to disconnect leaves no process behind
        team.stop()
        redis.kill()
