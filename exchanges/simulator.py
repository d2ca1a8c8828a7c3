"""The local exchange: replays recorded real frames over real websockets on loopback, one server per exchange,
each speaking that exchange's own protocol (its `Venue`), so the real listeners run their real code path.

It accepts the exchange's subscribe messages, answers as the exchange does, and streams the recorded frames of the
subscribed streams at the recorded pace times `speed` (0 = as fast as the clients take them), looping at the end
(each pass after the first renumbered by the venue, so sequence numbers never go back on a connection).
All clients of one exchange share one clock, as they would share one market.

    python -m exchanges.simulator [PATH ...] [--speed N] [--host H] [--port P]
prints one JSON line {"urls", "rest_urls", "markets", "recordings": [{file, exchange, from, to}], "speed"} once it
listens (from/to: the first and last receipt time in the file, epoch ms UTC), then serves until stopped.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qsl

import orjson
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from . import EXCHANGES
from .cli import Parser
from .recording import exchange_for_url, read_frames, read_rest, recording_files, sendable
from .tick import Update
from .faults import Fault, garbage_frames
from .venue import BROADCAST, played

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "upstream"
# Each exchange module names its own recordings, so a new exchange needs no edit here.
DEFAULT_RECORDINGS = [SHIPPED / name for name in dict.fromkeys(
    name for listener in EXCHANGES.values() for name in listener.recordings)]
LOOP_PAUSE_S = 0.5   # recorded seconds between the end of a recording and its next loop
RAW_FRAME_GAP_S = 0.01  # pace for raw frames, which carry no receipt time


class _Client:
    def __init__(self, connection):
        self.connection = connection
        self.session: dict = {"keys": set()}
        self.messages: deque = deque(maxlen=200)  # what the client sent, for tests to inspect
        self.stalled = False  # fault: nothing is sent, nothing read (pings unanswered)
        self.muted = False    # fault: heartbeats only, no market data

    def open(self) -> bool:
        return self.connection.state is State.OPEN  # a closing connection would hold up the sender

    def gets_data(self) -> bool:
        return not (self.stalled or self.muted) and self.open()


class _Replay:
    """One exchange's recording, its venue, and its connected clients."""

    def __init__(self, name: str, frames: list, listed: set, listing_body: Optional[str] = None):
        listener = EXCHANGES[name]
        self.name = name
        self.venue = listener.venue(listed, listing_body)
        self.clients: set[_Client] = set()
        self.connections = 0                 # connection attempts that reached the handshake
        self.opened_at: Optional[float] = None  # loop time of the first client: when the market opened
        self.opened = asyncio.Event()         # set then
        self.subscribed = asyncio.Event()     # set whenever a client's subscriptions are not empty
        self.gate: Optional[tuple] = None     # (until, fault) refusing connection attempts
        self.refuse_next_subscribe = False
        self.faults_fired: list = []
        self.timeline: list[tuple[float, str, str]] = []  # (recorded second, subscription key, frame)
        ticks: Counter = Counter()
        parser = listener()
        index = {id(frame): index for index, frame in enumerate(frames)}
        for frame, key, text in played(self.venue, frames):
            if key is None:
                continue
            try:
                updates = [item for item in parser.parse(text, 0) if type(item) is Update]
            except Exception:  # a bad frame is still replayed: the listener must survive it
                updates = []
            received = frame.received if frame.received is not None else index[id(frame)] * RAW_FRAME_GAP_S
            self.timeline.append((received, key, text))
            if key != BROADCAST:
                self.venue.listed.add(self.venue.symbol_of(key))
            ticks.update(update.symbol for update in updates)
        # Markets this recording holds, busiest first: the default watchlist takes the first of each exchange.
        self.markets = [symbol for symbol, _ in ticks.most_common()]


class LocalExchange:
    """The local exchange as a Python API (tests, benchmarks) — `python -m exchanges.simulator` is its CLI."""

    def __init__(self, paths=None, speed: float = 1.0, host: str = "127.0.0.1", port: int = 0,
                 loop_replay: bool = True, exchanges: Optional[list] = None, paused: bool = False):
        """`paused`: hold the market closed until `resume()` (a test subscribes everything first)."""
        self.speed, self.host, self.base_port, self.loop_replay = speed, host, port, loop_replay
        self._paused = paused
        frames: dict[str, list] = {}
        listed: dict[str, set] = {}
        listings: dict[str, str] = {}  # exchange -> its recorded REST listing body
        self.recordings: list[dict] = []  # what is played: {file, exchange, from, to} (epoch ms UTC of receipt)
        for path in recording_files(paths or DEFAULT_RECORDINGS):
            rest = read_rest(path)
            if rest is not None:
                name = exchange_for_url(rest[0])
                if name:
                    try:
                        listed.setdefault(name, set()).update(EXCHANGES[name].venue.listing(rest[2]))
                    except Exception as bad:  # a listing that does not parse: the venue lists what it plays
                        log.warning("%s: not a listing %s can read (%s): skipped", path, name, str(bad)[:80])
                        continue
                    listings[name] = rest[2]
                continue
            played: dict[str, list] = {}  # exchange -> [first, last] receipt time in this file
            unsendable = 0
            for frame in read_frames(path):
                if not sendable(frame.frame):  # a line that was not UTF-8: no text frame can carry it
                    unsendable += 1
                    continue
                if frame.exchange in EXCHANGES and (exchanges is None or frame.exchange in exchanges):
                    frames.setdefault(frame.exchange, []).append(frame)
                    span = played.setdefault(frame.exchange, [None, None])
                    if frame.received is not None:
                        span[0] = frame.received if span[0] is None else min(span[0], frame.received)
                        span[1] = frame.received if span[1] is None else max(span[1], frame.received)
            if unsendable:
                log.warning("%s: %d lines are not UTF-8 text: not played", path, unsendable)
            self.recordings += [{"file": path.name, "exchange": name,
                                 "from": None if first is None else round(first * 1000),
                                 "to": None if last is None else round(last * 1000)}
                                for name, (first, last) in sorted(played.items())]
        for recorded in frames.values():  # several recordings of one exchange (Kraken: ticker, trade) interleave
            if all(frame.received is not None for frame in recorded):
                recorded.sort(key=lambda frame: frame.received)  # stable: one file's order is kept on ties
        self.replays = {name: _Replay(name, recorded, listed.get(name, set()), listings.get(name))
                        for name, recorded in sorted(frames.items())}
        self.urls: dict[str, str] = {}
        self.rest_urls: dict[str, str] = {}  # the same servers answer the exchanges' REST GETs
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._subscriptions_changed = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._stopped: Optional[asyncio.Event] = None
        self._open: Optional[asyncio.Event] = None
        self._pending_faults: list = []

    # Thread-safe API -----------------------------------------------------------------------------------------
    def markets(self) -> dict[str, list[str]]:
        return {name: replay.markets for name, replay in self.replays.items()}

    def start(self) -> "LocalExchange":
        ready = threading.Event()
        failure: list = []
        self._thread = threading.Thread(target=self._run_thread, args=(ready, failure), name="local-exchange",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._open.set)

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(5)

    def drop(self, name: str) -> int:
        """Cut every connection of `name` without a close frame (a dropped TCP path). Returns how many."""
        replay = self.replays[name]
        clients = list(replay.clients)
        for client in clients:
            self._loop.call_soon_threadsafe(client.connection.transport.abort)
        return len(clients)

    def clients(self, name: str) -> list[_Client]:
        return list(self.replays[name].clients)

    def wait_subscribed(self, name: str, natives, timeout: float = 10.0) -> None:
        """Block until one client of `name` is subscribed to every native symbol in `natives` (woken by each
        subscription change, never by a timer); TimeoutError otherwise."""
        # Case-blind: a listener's native form may be its stream name ("btcusdt") where the venue's is "BTCUSDT".
        venue, wanted = self.replays[name].venue, {native.casefold() for native in natives}

        def done():
            return any(wanted <= {venue.symbol_of(key).casefold() for key in client.session["keys"]}
                       for client in self.clients(name))
        with self._subscriptions_changed:
            if not self._subscriptions_changed.wait_for(done, timeout):
                raise TimeoutError(f"{name}: not subscribed to {sorted(wanted)} within {timeout} s")

    def inject(self, fault):
        """Inject a fault (a `Fault` or its spec string), `at_s` after now (and after the market opened).
        Returns a future that is done once the fault has fired (None before `start`)."""
        fault = Fault.parse(fault) if isinstance(fault, str) else fault
        if fault.exchange not in self.replays:
            raise ValueError(f"no recording of {fault.exchange!r} in this local exchange")
        if self._loop is None:
            self._pending_faults.append(fault)
            return None
        return asyncio.run_coroutine_threadsafe(self._schedule(fault), self._loop)

    def _notify_subscriptions(self) -> None:
        with self._subscriptions_changed:
            self._subscriptions_changed.notify_all()

    # The event loop --------------------------------------------------------------------------------------------
    def _run_thread(self, ready: threading.Event, failure: list) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main(ready))
        except BaseException as error:  # bind failure: report to start()
            failure.append(error)
            ready.set()
        finally:
            self._loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        self._open = asyncio.Event()
        if not self._paused:
            self._open.set()
        servers, tasks = [], []
        for offset, (name, replay) in enumerate(self.replays.items()):
            port = self.base_port + offset if self.base_port else 0
            server = await serve(lambda connection, replay=replay: self._serve(replay, connection), self.host, port,
                                 max_size=2 ** 20, close_timeout=0.5,  # loopback: a closing handshake is quick or never
                                 process_request=lambda c, r, replay=replay: self._gate(replay, c, r))
            servers.append(server)
            bound = server.sockets[0].getsockname()[1]
            self.urls[name] = f"ws://{self.host}:{bound}{replay.venue.path}"
            self.rest_urls[name] = f"http://{self.host}:{bound}"
            tasks.append(asyncio.create_task(self._play(replay)))
            tasks.append(asyncio.create_task(self._heartbeats(replay)))
        for fault in self._pending_faults:
            tasks.append(asyncio.create_task(self._schedule(fault)))
        ready.set()
        await self._stopped.wait()
        for task in tasks:
            task.cancel()
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    async def _serve(self, replay: _Replay, connection) -> None:
        client = _Client(connection)
        replay.clients.add(client)
        if replay.opened_at is None:
            replay.opened_at = self._loop.time()
            replay.opened.set()
        try:
            for reply in replay.venue.on_open(client.session, connection.request.path):
                await connection.send(reply)
            if client.session["keys"]:
                replay.subscribed.set()
            self._notify_subscriptions()
            async for message in connection:
                client.messages.append(message)
                if isinstance(message, str):
                    refusal = replay.venue.refusal(client.session, message) if replay.refuse_next_subscribe else None
                    if refusal is not None:
                        replay.refuse_next_subscribe = False
                    for reply in refusal or replay.venue.on_message(client.session, message):
                        await connection.send(reply)
                    if client.session["keys"]:
                        replay.subscribed.set()
                    self._notify_subscriptions()
        except ConnectionClosed:
            pass
        finally:
            replay.clients.discard(client)

    async def _play(self, replay: _Replay) -> None:
        timeline = replay.timeline
        if not timeline:
            return
        first = timeline[0][0]
        passes = 0
        while True:
            # The market opens when a client has subscribed to something, so no client misses the start.
            while not any(client.session["keys"] for client in replay.clients):
                replay.subscribed.clear()
                await replay.subscribed.wait()
            await self._open.wait()
            started = self._loop.time()
            for index, (received, key, frame) in enumerate(timeline):
                if self.speed:
                    delay = started + (received - first) / self.speed - self._loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif index % 64 == 0:
                    await asyncio.sleep(0)  # full speed, but let the servers breathe
                try:
                    if passes:  # an exchange never sends an older sequence number: the next pass continues them
                        frame = replay.venue.next_pass(frame, passes)
                    replay.venue.observe(frame)
                except Exception:  # garbage is replayed as is; it just tells the venue nothing
                    pass
                for client in list(replay.clients):
                    if client.gets_data() and (key == BROADCAST or replay.venue.wants(client.session, key)):
                        try:
                            await client.connection.send(frame)
                        except ConnectionClosed:
                            pass
            if not self.loop_replay:
                return
            passes += 1
            await asyncio.sleep(LOOP_PAUSE_S / self.speed if self.speed else 0.01)

    async def _heartbeats(self, replay: _Replay) -> None:
        while True:
            await asyncio.sleep(1)
            for client in list(replay.clients):
                if client.stalled or not client.open():
                    continue
                for frame in replay.venue.heartbeats(client.session, time.time()):
                    try:
                        await client.connection.send(frame)
                    except ConnectionClosed:
                        pass


    # Faults ------------------------------------------------------------------------------------------------------
    def _gate(self, replay: _Replay, connection, request):
        """Before the handshake: refuse or answer with an HTTP error while such a fault's window is open; a
        plain GET (no websocket upgrade) is the exchange's REST API."""
        replay.connections += 1
        if replay.gate is None or self._loop.time() >= replay.gate[0]:
            return self._rest(replay, connection, request) if "upgrade" not in request.headers else None
        fault = replay.gate[1]
        if fault.kind == "refuse":
            connection.transport.abort()
            return connection.respond(503, "refused\n")  # never sent: the TCP connection is already cut
        status, _, retry_after = (fault.arg or "451").partition("/")
        response = connection.respond(int(status), f"HTTP {status} from the local exchange (fault {fault})\n")
        if retry_after:
            response.headers["Retry-After"] = retry_after
        return response

    @staticmethod
    def _rest(replay: _Replay, connection, request):
        path, _, query = request.path.partition("?")
        answer = replay.venue.rest(path, dict(parse_qsl(query)))
        status, body = answer if answer is not None else (404, '{"message":"NotFound"}')
        response = connection.respond(status, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _schedule(self, fault: Fault) -> None:
        replay = self.replays[fault.exchange]
        given = self._loop.time()
        await replay.opened.wait()  # at start, AT counts from the market's opening
        await asyncio.sleep(max(given, replay.opened_at) + fault.at_s - self._loop.time())
        log.info("fault %s", fault)
        replay.faults_fired.append(fault)
        await self._fire(replay, fault)

    async def _fire(self, replay: _Replay, fault: Fault) -> None:
        clients = list(replay.clients)
        if fault.kind in ("refuse", "http"):
            replay.gate = (self._loop.time() + fault.for_s, fault)
        elif fault.kind == "refuse-subscribe":
            replay.refuse_next_subscribe = True
        elif fault.kind == "drop":
            for client in clients:
                client.connection.transport.abort()
        elif fault.kind == "close":
            await asyncio.gather(*(client.connection.close(int(fault.arg or 1001), "closed by the local exchange")
                                   for client in clients), return_exceptions=True)
        elif fault.kind in ("stall", "heartbeats-only"):
            for client in clients:
                self._withhold(client, fault.kind == "stall", True)
            if fault.for_s is not None:
                self._loop.call_later(fault.for_s, lambda: [self._withhold(client, fault.kind == "stall", False)
                                                            for client in clients])
        elif fault.kind == "error":
            await self._send_all(clients, [replay.venue.error_frame(fault.arg)])
        elif fault.kind == "garbage":
            sample = replay.timeline[0][2] if replay.timeline else "{}"
            await self._send_all(clients, garbage_frames(fault.arg, sample))
        elif fault.kind == "shutdown":
            if not replay.venue.announce_shutdown():
                log.warning("%s: this exchange has no shutdown notice of its own: fault %s does nothing",
                            replay.name, fault)

    @staticmethod
    def _withhold(client: _Client, stall: bool, on: bool) -> None:
        if stall:
            client.stalled = on
            transport = client.connection.transport
            if not transport.is_closing():
                (transport.pause_reading if on else transport.resume_reading)()
        else:
            client.muted = on

    @staticmethod
    async def _send_all(clients: list, frames: list) -> None:
        for client in clients:
            for frame in frames if client.open() else ():
                try:
                    await client.connection.send(frame)
                except ConnectionClosed:
                    break


def parse_speed(text: str) -> float:
    """'max' (or 0) = as fast as the clients take it; otherwise a positive multiple of the recorded pace."""
    if text.lower() in ("max", "0"):
        return 0.0
    try:
        speed = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number, or 'max', not {text!r}") from None
    if not 0 < speed < float("inf"):  # nan and inf too: no pace to keep
        raise argparse.ArgumentTypeError(f"speed must be a positive number, or 'max', not {text!r}")
    return speed


def _fault(spec: str) -> Fault:
    try:
        return Fault.parse(spec)
    except ValueError as bad:
        raise argparse.ArgumentTypeError(str(bad))


def main(argv=None) -> int:
    parser = Parser(prog="python -m exchanges.simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="recordings (files or directories); default: the shipped ones")
    parser.add_argument("--speed", type=parse_speed, default=1.0, help="multiple of the recorded pace, or 'max'")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="first port (one per exchange); 0 = any free ones")
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when standard input closes")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", type=_fault,
                        help="inject a fault, EXCHANGE:KIND[=ARG][@AT][+FOR] (see exchanges/faults.py); repeatable")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(levelname)s %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # a line per connection and request: not news here
    try:
        exchange = LocalExchange(args.paths or None, speed=args.speed, host=args.host, port=args.port)
    except FileNotFoundError as missing:
        parser.exit(2, f"{parser.prog}: error: {missing}\n")  # one line
    for fault in args.fault:
        exchange.inject(fault)
    exchange.start()
    print(orjson.dumps({"urls": exchange.urls, "rest_urls": exchange.rest_urls, "markets": exchange.markets(),
                        "recordings": exchange.recordings, "speed": args.speed})
          .decode(), flush=True)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    if args.exit_with_parent:  # the server holds our stdin: EOF means it is gone, even after a kill -9
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    exchange.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
