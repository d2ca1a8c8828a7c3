"""Team mode: one collector process holds the exchange connections, any number of web processes serve the
browsers; Redis connects them (see bus.py for what lives there).

- The collector's hub publishes what is due each interval (ticks, market states, spread rows) as one message on
  Flask-SocketIO's message queue (hub.RELAY_ROOM), and `CollectorLink` hands every entry to Redis, follows what the web processes watch and
  streams what they ask for.
- A web process (`WebHub`, `RemoteFeeds`, `WebQueue`) keeps its own clients: its fan-out (one packet per client
  per interval, as one process sends them: fanout.py) fed by the collector's messages, a lease on what they watch,
  backfills from Redis, the feeds' status from Redis (or "the collector is silent"), conflation of its slow
  clients, and a banner while Redis is away.

Redis going away blocks nothing: the collector keeps its listeners and history and keeps the latest entries to
write when Redis is back; a web process keeps serving what it has, says so, and resyncs its clients after.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable, Optional

import socketio
from redis import RedisError

from . import bus
from .bus import Bus, status_period, status_ttl
from .config import parse_market
from .fanout import Fanout, FanoutFigures
from .feeds import DEFAULT_MAX_MARKETS_PER_EXCHANGE, feeds_change, refusal
from .hub import RELAY_ROOM
from .watchers import Watchers

log = logging.getLogger(__name__)

class _QuietRedisRetries(logging.Filter):
    """python-socketio logs each failed publish to Redis (several a second while it is away) and each retry of its
    listener; RedisHealth logs the change once, which is what our logs promise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Cannot publish to redis", "Cannot receive from redis"))


logging.getLogger("socketio.server").addFilter(_QuietRedisRetries())

LEASE_S = 5.0       # a web process's lease on its watched markets: it renews every second, so 5 s is 4 misses
OFFER_EVERY_S = 10.0


class Failures:
    """A task's unexpected exceptions, logged with their traceback at the 1st, 2nd, 4th, 8th ... of each kind
    (never one line per round), with the count: a loop that must not end keeps going, and the log stays bounded."""

    def __init__(self, who: str):
        self.who = who
        self.counts: dict[str, int] = {}

    def note(self, kind: str) -> None:
        """Called from an `except` block: counts it, and logs it when its count is a power of two."""
        count = self.counts[kind] = self.counts.get(kind, 0) + 1
        if count & (count - 1) == 0:
            log.exception("%s: %s failed (%d times so far); it goes on", self.who, kind, count)


class RedisHealth:
    """Up or down, logged once per change (never once per failed call)."""

    def __init__(self, who: str, on_change: Callable[[bool, str], None] = lambda up, reason: None):
        self.who, self.on_change = who, on_change
        self.up, self.reason = True, ""

    def ok(self) -> None:
        if not self.up:
            self.up, self.reason = True, ""
            log.info("%s: Redis is back", self.who)
            self.on_change(True, "")

    def failed(self, error: Exception) -> None:
        reason = f"Redis unreachable: {type(error).__name__}: {str(error).rstrip('.')}"[:200]  # a sentence is added
        if self.up:
            self.up, self.reason = False, reason
            log.warning("%s: %s", self.who, reason)
            self.on_change(False, reason)


# --- the collector ----------------------------------------------------------------------------------------------
class CollectorLink:
    """The hub's sink in a collector, and the collector's ear for the web processes."""

    def __init__(self, bus: Bus, hub, feeds, offer: Callable[[], dict], on_new_market: Callable[[str], None],
                 stale_after_s: float, sleep: Callable[[float], None]):
        self.bus, self.hub, self.feeds, self.offer = bus, hub, feeds, offer
        self.on_new_market, self.stale_after_s, self.sleep = on_new_market, stale_after_s, sleep
        self.health = RedisHealth("collector")
        self._lock = threading.Lock()  # the watched set: two tasks change it
        self._backlog: dict[str, deque] = {}   # entries not yet in Redis (bounded: a ring's worth per market)
        self._states: dict[str, dict] = {}
        self._watched: set = set()
        self._missing_since: dict[str, float] = {}
        self._stopping = False
        self._status_lock = threading.Lock()  # the heartbeat's status and the last one (`stopped`) never cross
        self.failures = Failures("collector")

    # The hub's sink --------------------------------------------------------------------------------------------
    def store(self, entries: dict[str, list], states: dict[str, dict]) -> None:
        for market, ticks in entries.items():
            self._backlog.setdefault(market, deque(maxlen=self.bus.ring_size)).extend(ticks)
        self._states.update(states)
        if not (self._backlog or self._states):
            return
        try:
            self.bus.store({market: list(ticks) for market, ticks in self._backlog.items()}, self._states)
        except RedisError as error:  # kept for the next attempt; the oldest fall off a full ring
            self.health.failed(error)
            return
        self._backlog.clear()
        self._states = {}
        self.health.ok()

    def forget(self, market: str) -> None:
        """The collector no longer streams `market`: its recent entries and state leave Redis too (a market
        streamed once is not kept there for ever). With Redis away they stay there."""
        self._backlog.pop(market, None)
        self._states.pop(market, None)
        try:
            self.bus.forget(market)
        except RedisError as error:
            self.health.failed(error)

    def set_feeds(self, statuses: list) -> None:
        """The feeds' status for the web processes; it lapses status_ttl after this write (see follow_watchers)."""
        try:
            self.bus.set_feeds(statuses, ttl_s=status_ttl(self.stale_after_s))
            self.health.ok()
        except RedisError as error:
            self.health.failed(error)

    # Tasks -------------------------------------------------------------------------------------------------------
    def follow_watchers(self) -> None:
        """The collector's heartbeat, and its ear on the leases. Every status period (bus.status_period: a second,
        or STALE_AFTER_S / 4 if shorter) it rewrites the feeds' status, whose key lapses status_ttl later: that is
        how every web process, and so every page, sees a dead collector within STALE_AFTER_S. Every second it
        streams what some web process's clients watch, and releases what nobody has watched for a lease's length
        (a web process that restarts, or Redis that blinks, does not unsubscribe anything)."""
        period = status_period(self.stale_after_s)
        next_watch = next_offer = 0.0
        while not self._stopping:
            now = time.monotonic()
            try:
                with self._status_lock:  # never after the last status (`stopped`)
                    if self._stopping:
                        return
                    self.set_feeds(self.feeds.status())
                if now >= next_watch:
                    next_watch = now + 1.0
                    next_offer = self._follow_leases(now, next_offer)
            except Exception:  # one bad round must not end the heartbeat: a silent collector looks dead
                self.failures.note("following the watchers")
            self.sleep(period)

    def _follow_leases(self, now: float, next_offer: float) -> float:
        """One reading of the web processes' leases (and the offer, every OFFER_EVERY_S); returns when the next
        offer is due."""
        try:
            watched = self.bus.watched()
            if now >= next_offer:
                self.bus.set_offer(self.offer())
                next_offer = now + OFFER_EVERY_S
            self.health.ok()
        except RedisError as error:
            self.health.failed(error)
            return next_offer
        for market in watched:
            self._missing_since.pop(market, None)
        for market in sorted(watched - self._watched):
            self.ensure(market)
        with self._lock:
            kept = set(watched)
            for market in self._watched - watched:
                since = self._missing_since.setdefault(market, now)
                if now - since < LEASE_S:
                    kept.add(market)  # not gone for long enough yet
                else:
                    del self._missing_since[market]
                    self.feeds.release(market)
            self._watched = kept
        self.hub.set_watched(kept)
        return next_offer

    def follow_commands(self) -> None:
        """Commands from the web processes ("ensure": stream this market now), so a new panel need not wait for
        the next lease read."""
        while not self._stopping:
            try:
                for command in self.bus.commands():
                    market = command.get("ensure") if type(command) is dict else None
                    if type(market) is str:
                        self.ensure(market)
                    if self._stopping:
                        return
            except RedisError as error:
                self.health.failed(error)
                self.sleep(1.0)

    def ensure(self, market: str) -> None:
        try:
            exchange, symbol = parse_market(market)
        except ValueError:
            log.warning("ignored a command for a malformed market %r", str(market)[:80])
            return
        market = f"{exchange}:{symbol}"
        if not self.feeds.enabled(exchange):
            return
        with self._lock:
            self._watched.add(market)
            self._missing_since.pop(market, None)
            watched = set(self._watched)
        self.hub.set_watched(watched)
        if self.feeds.ensure(market):
            self.on_new_market(market)

    def stopped(self) -> None:
        """A clean stop, once the listeners have stopped: their last status ("stopped") is written at once, so every
        page says so now; the heartbeat wrote statuses taken part-way through the stop, and feeds still shown live
        stayed green until the key lapsed (STALE_AFTER_S)."""
        with self._status_lock:
            self._stopping = True
            self.set_feeds(self.feeds.status())


# --- a web process ----------------------------------------------------------------------------------------------
class WebQueue(socketio.RedisManager):
    """Flask-SocketIO's Redis message queue, receiving side: the collector's batches (hub.RELAY_ROOM) go to this
    process's fan-out (`relay`), everything else to the rooms as usual."""
    relay: Optional[Callable[[dict], None]] = None

    def _redis_listen_with_retries(self):
        """Listen on the queue; when Redis is away, try again every second (the library doubles its wait up to a
        minute, which would leave pages without live ticks long after Redis is back)."""
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                yield from self.pubsub.listen()
            except Exception as error:  # any connection failure: the health line says so once
                self._get_logger().error("Cannot receive from redis... retrying in 1 s (%s)", error)
                time.sleep(1.0)

    def _handle_emit(self, message):
        if message.get("room") == RELAY_ROOM:  # no client is in it: its parts are sent by the fan-out
            data = message.get("data")
            if self.relay is not None and type(data) is list and data and type(data[0]) is dict:
                self.relay(data[0])
            return
        super()._handle_emit(message)


QUEUE_CHANNEL = "flask-socketio"  # Flask-SocketIO's default channel on the message queue


def queue_channel(mode: str = "live") -> str:
    """Live's ticks on Flask-SocketIO's default channel, a replay's on its own: a live page never gets a replay's."""
    return QUEUE_CHANNEL if mode == "live" else f"{QUEUE_CHANNEL}:{mode}"


def emitting_queue(url: str, mode: str = "live") -> socketio.RedisManager:
    """The collector's side of the message queue: write-only, with timeouts, so an emit never hangs on a Redis
    that is away (Flask-SocketIO's default manager has none)."""
    return socketio.RedisManager(url, channel=queue_channel(mode), write_only=True, redis_options=bus.options())


def listening_queue(url: str, mode: str = "live") -> "WebQueue":
    """A web process's side: it listens without a read timeout (a quiet queue is not a failure)."""
    return WebQueue(url, channel=queue_channel(mode), redis_options=bus.options(read_timeout=None))


class WebHub(FanoutFigures):
    """What the Socket.IO handlers of a web process use in place of the one-process hub."""

    def __init__(self, socketio_, bus: Bus, exchanges: dict[str, str], web_id: str, ring_size: int,
                 stale_after_s: float, emit_interval_ms: int = 50, max_batch: int = 500):
        self.socketio, self.bus, self.exchanges, self.web_id = socketio_, bus, exchanges, web_id
        self.ring_size, self.stale_after_s, self.max_batch = ring_size, stale_after_s, max_batch
        self.watchers = Watchers()
        self.history = None
        self.clients = 0
        self.on_batch: Callable[[int, int], None] = lambda size, oldest_received: None  # metrics
        self.fanout = Fanout(socketio_.server, self.backfill, emit_interval_ms, greet=self._greet)
        self.fanout.on_batch = lambda size, oldest: self.on_batch(size, oldest)
        self.health = RedisHealth(f"web {web_id}", self._redis_changed)
        self.statuses: list = []        # the feeds as this process last showed them
        self._feeds_lock = threading.Lock()
        self._heard: list = []          # the feeds' status as the collector last wrote it ...
        self._heard_until: Optional[float] = None  # ... and until when it holds (monotonic): its key's time to live
        self._status_ttl = status_ttl(stale_after_s)
        self._shown_fresh = False       # whether self.statuses are the collector's (or stale copies)
        self.failures = Failures(f"web {web_id}")
        self._offer: dict = {}
        self._stopping = False
        self._resync = False

    # What the handlers call ----------------------------------------------------------------------------------
    def watch(self, sid: str, market: str) -> bool:
        first = self.watchers.add(sid, market)
        self._lease()
        return first

    def unwatch(self, sid: str, market: str) -> bool:
        return self.watchers.discard(sid, market)

    def forget_client(self, sid: str) -> list[str]:
        self.fanout.forget(sid)
        return self.watchers.forget(sid)

    def follow(self, sid: str) -> None:
        """`sid`'s packets follow what it watches now (see Hub.follow)."""
        self.fanout.join(sid, self.watched_by(sid))

    def relay(self, parts: dict) -> None:
        """One of the collector's batches (hub.Hub._due): due for this process's clients at the next flush."""
        ticks, states, spreads = parts.get("ticks"), parts.get("market_state"), parts.get("spread")
        self.fanout.add(ticks if type(ticks) is dict else None, states if type(states) is dict else None,
                        spreads if type(spreads) is dict else None)

    def emit_loop(self) -> None:
        """The fan-out's task: this process's clients get their packets every interval in force."""
        self.fanout.run(self.socketio.sleep, lambda: self._stopping, max_batch=self.max_batch,
                        on_error=lambda: self.failures.note("a flush"))

    def watched_by(self, sid: str) -> list[str]:
        return self.watchers.of(sid)

    def backfill(self, market: str) -> dict:
        try:
            ticks, state = self.bus.recent(market, self.ring_size), self.bus.state(market)
            self.health.ok()
        except RedisError as error:
            self.health.failed(error)
            ticks, state = [], None
        return {"market": market, "ticks": ticks, "state": state}

    def spread_of(self, pair: str) -> None:
        return None  # the collector sends every watched pair's row each second

    def has_live(self, market: str) -> bool:
        return False

    def markets(self) -> list[str]:
        return sorted(self.watchers.markets())

    def offer(self) -> dict:
        return self._offer

    def problem(self) -> str:
        """Why this web process cannot serve live data, or "": Redis away, or no word from the collector (judged
        now, not at the last round of `run`: /healthz turns 503 the moment the collector's status lapses)."""
        if not self.health.up:
            return self.health.reason
        return "" if self._collector_fresh() else self._silence()

    def feeds_now(self) -> list:
        """The feeds' status as of now: the collector's while it holds, else every feed stale with the reason
        ("no status from the collector for 2.1 s", and Redis's trouble if that is why). Reads nothing, sends
        nothing."""
        if self.health.up and self._collector_fresh():
            return self._heard
        why = self._silence() if self.health.up else f"{self._silence()} ({self.health.reason})"
        now_ms = time.time_ns() // 1_000_000  # this process's clock: the page's ages keep moving
        return [{**status, "state": "stale", "reason": why, "now": now_ms} for status in self._heard] or [
            {"exchange": name, "label": label, "state": "stale", "reason": why, "symbols": [], "markets": {},
             "now": now_ms} for name, label in self.exchanges.items()]

    def _collector_fresh(self) -> bool:
        return self._heard_until is not None and time.monotonic() < self._heard_until

    def _silence(self) -> str:
        if self._heard_until is None:
            return "no status from the collector yet"
        silent_s = time.monotonic() - (self._heard_until - self._status_ttl)  # since its last write
        return f"no status from the collector for {max(0.0, silent_s):.1f} s"

    def service(self) -> dict:
        """What the page's service banner shows."""
        return {"redis": self.health.up, "reason": self.health.reason}

    @property
    def emits(self) -> int:
        return self.fanout.packets

    # The web process's task ----------------------------------------------------------------------------------
    def run(self) -> None:
        """Every second: renew the lease, read the feeds' status (or notice the collector's silence) and show it,
        resync slow clients that drained, and after Redis comes back, every client. It also wakes the moment the
        collector's last status lapses, so its clients see a dead collector then, not up to a second later."""
        while not self._stopping:
            try:
                self._lease()
                self._read_feeds()
                self._show_feeds()
                if self._resync and self.health.up:
                    self._resync = False
                    self._resync_everyone()
            except Exception:  # a bad round must not end the task: its clients would never hear of an outage
                self.failures.note("a round of the web task")
            wait = 1.0
            if self._heard_until is not None:
                left = self._heard_until - time.monotonic()
                if 0 <= left < wait:
                    wait = left + 0.005  # just past the lapse (Redis expires the key to the millisecond)
            self.socketio.sleep(wait)

    def stop(self) -> None:
        self._stopping = True

    def _lease(self) -> None:
        try:
            self.bus.lease(self.web_id, self.watchers.markets(), LEASE_S)
            offer = self.bus.offer()
            if offer is not None:
                self._offer = offer
            self.health.ok()
        except RedisError as error:
            self.health.failed(error)

    def _read_feeds(self) -> None:
        """The collector's latest status and how long it holds (its key's time to live, Redis's clock)."""
        if not self.health.up:
            return
        asked_at = time.monotonic()  # the lapse is counted from before the question: never late
        try:
            statuses, left_s = self.bus.feeds()
        except RedisError as error:
            self.health.failed(error)
            return
        if statuses is not None:
            self._heard, self._heard_until = statuses, asked_at + left_s

    def _show_feeds(self) -> None:
        """Tell this process's clients what changed in the feeds' status as of now (Hub._show_feeds)."""
        with self._feeds_lock:
            self._shown_fresh = self.health.up and self._collector_fresh()
            statuses = self.feeds_now()
            change = feeds_change(self.statuses, statuses)
            self.statuses = statuses
            if change is not None:
                self.fanout.add_feeds(change)

    def greet_feeds(self, send) -> None:
        """`send` a new client the feeds' status in full, as of now: if the collector fell silent (or spoke
        again) since the last round, everyone is told first, so the changes that follow apply to what was sent.
        Only such a turn is sent to all: a client that reconnects over and over costs the others nothing."""
        if (self.health.up and self._collector_fresh()) != self._shown_fresh:
            self._show_feeds()
        with self._feeds_lock:
            send(self.statuses)

    def _greet(self, sid: str) -> None:
        """The feeds' status in full to one client that missed a change of it (conflated)."""
        with self._feeds_lock:
            self.socketio.server.emit("feeds", self.statuses, to=sid, namespace="/", ignore_queue=True)

    def _redis_changed(self, up: bool, reason: str) -> None:
        if up:
            self._resync = True  # batches published while this process could not hear them are lost
        self.socketio.emit("service", {"redis": up, "reason": reason}, ignore_queue=True)

    def _resync_everyone(self) -> None:
        for sid, markets in self.watchers.clients_of().items():
            for market in markets:
                self.socketio.emit("backfill", self.backfill(market), to=sid, ignore_queue=True)


class RemoteFeeds:
    """A web process's view of the collector's feeds: what the handlers ask of `Feeds`, over Redis."""

    def __init__(self, hub: WebHub, bus: Bus, exchanges: list[str], markets: list[str]):
        self.hub, self.bus, self.exchanges = hub, bus, exchanges
        self.configured = set(markets)
        self.listeners: dict = {}  # none here: the collector holds them

    def start(self, spawn) -> None:
        pass

    def stop(self, wait_s: float = 0.0) -> None:
        pass

    def status(self) -> list[dict]:
        return self.hub.feeds_now()  # as of now: /healthz never waits for the next round to see an outage

    def enabled(self, exchange: str) -> bool:
        return exchange in self.exchanges

    max_markets_per_exchange = DEFAULT_MAX_MARKETS_PER_EXCHANGE
    _available: tuple = (None, {})  # (the offer they were read from, exchange -> set of its symbols)

    def refusal(self, market: str):
        """What the collector's Feeds.refusal would answer, as far as this process can tell: its listing from the
        offer, its streamed symbols from the feeds' status (a second old at most). The collector checks again."""
        if market in self.configured:
            return None
        exchange, _, symbol = market.partition(":")
        offer = self.hub.offer()
        listed = None
        if offer.get("listing_source", {}).get(exchange, "none") != "none":
            if self._available[0] is not offer:  # sets, made once per offer
                self._available = (offer, {name: set(symbols) for name, symbols in offer.get("available", {}).items()})
            listed = symbol in self._available[1].get(exchange, ())
        streamed = next((status.get("symbols", ()) for status in self.hub.statuses if status["exchange"] == exchange),
                        ())
        return refusal(symbol, self.hub.exchanges.get(exchange, exchange), set(streamed), listed,
                       self.max_markets_per_exchange)

    def ensure(self, market: str) -> bool:
        """Ask the collector to stream it now (the lease says so too, within a second, if this is lost)."""
        try:
            self.bus.send({"ensure": market})
        except RedisError as error:
            self.hub.health.failed(error)
        return False  # the collector does any REST backfill

    def release(self, market: str) -> None:
        pass  # the lease stops naming it; the collector lets it go after a lease's length
