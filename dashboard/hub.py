"""The hub: recent ticks per market (ring buffers), who watches which market (Socket.IO rooms), market and feed
states, and batched emits. It is the only thing that calls emit; it knows nothing of exchanges' protocols.

Listener threads call `publish`, `publish_gap`, `set_market_state` and `feeds_changed`; one background task
(`run`) hands what is due each interval to the fan-out (fanout.py), which sends each client one `batch` packet
per interval, encoded once per watch-set, so neither a busy feed nor many markets multiply the packets. A slow
client is conflated (see conflation.py). A gap travels in the same stream as the ticks, as `{"kind": "gap", "from": ms, "to": ms,
"reason": ...}`, so it lands between the right rows.

Memory follows what is streamed: a market's ring, sequence, state and spread quote exist only while its listener
streams it (`keeps`), and `forget_market` frees them when it is released. Nothing read by a client (a GET, a
backfill) ever creates any of them.

In a collector process (see roles.py) the same hub publishes what is due, one `batch` message per interval to
RELAY_ROOM, through the message queue; each web process's fan-out sends its own clients their packets. It learns which markets are watched from them (`set_watched`), and hands every entry, market state and feed status
to a `sink` (Redis) so any web process can backfill any market.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

from exchanges.tick import received_at

from .fanout import Fanout, FanoutFigures
from .feeds import feeds_change
from .spread import spread
from .watchers import Watchers

log = logging.getLogger(__name__)

REMOTE = "remote"  # the watcher standing for a web process's clients, in a collector
# What a collector publishes to, once per interval: {"ticks": {market: [...]}, "market_state": {market: state},
# "spread": {pair: row}}; no client is ever in it (roles.WebQueue takes it off the queue for its fan-out).
RELAY_ROOM = "relay"


def market_of(tick: dict) -> str:
    return f"{tick['exchange']}:{tick['symbol']}"


def _seq_base() -> int:
    """Where a new ring's numbering starts: now in microseconds, so a market's numbers are higher than any a page
    kept from before (a restart, or the market released and streamed again); a page drops what is not newer than
    what it has."""
    return time.time_ns() // 1000


class Hub(FanoutFigures):
    def __init__(self, socketio, ring_size: int = 500, emit_interval_ms: int = 50, max_batch: int = 500,
                 feeds: Callable[[], list] = list, feeds_every_s: float = 1.0, history=None, sink=None,
                 replay: bool = False, keeps: Callable[[str], bool] = lambda market: True,
                 max_interval_ms: int = 1000):
        self.socketio = socketio
        self.ring_size, self.max_batch = ring_size, max_batch
        self.feeds, self.feeds_every_s = feeds, feeds_every_s
        self.history = history  # a HistoryStore, or None: every entry is kept there too
        self.sink = sink        # a collector's shared store (bus.CollectorBus), or None
        self.replay = replay    # replay mode: our clock says nothing of when a recorded quote was made
        # Whether a market is streamed now (Feeds.streams): an entry of one that is not (a tick in flight after its
        # release, a REST answer after it) opens no ring, so a released market stays freed.
        self.keeps = keeps
        self._to_sink: dict[str, list] = {}
        self._lock = threading.Lock()
        self._rings: dict[str, deque] = {}
        self._seq: dict[str, int] = {}
        self._pending: dict[str, list] = {}
        self._states: dict[str, dict] = {}
        self._pending_states: dict[str, dict] = {}
        self._notices: dict[str, dict] = {}  # market states of markets not streamed: sent once, not kept
        self.watchers = Watchers()
        self._latest: dict[str, dict] = {}   # market -> its latest tick (for the cross-exchange spread)
        self._dirty_pairs: set[str] = set()
        self._feeds_dirty = True
        self._feeds_shown: list = []  # the feeds' status as the clients have it
        self._feeds_lock = threading.Lock()
        self._stopping = threading.Event()
        self._next_feeds = 0.0
        self.relays = self.ticks_emitted = self.ticks_dropped = 0
        self.clients = 0  # Socket.IO clients connected
        self.on_batch: Callable[[int, int], None] = lambda size, oldest_received: None  # metrics
        self.fanout = Fanout(socketio.server, self.backfill, emit_interval_ms, max_interval_ms, greet=self._greet)

    # From the listeners (any thread) ---------------------------------------------------------------------------
    def publish(self, tick: dict) -> None:
        market = market_of(tick)
        with self._lock:
            self._append(market, tick)

    def publish_gap(self, gap: dict) -> None:
        with self._lock:
            self._append(market_of(gap), {"kind": "gap", **gap})

    def _append(self, market: str, tick: dict) -> None:
        """Number, keep and queue one entry of a market's stream; the caller holds the lock."""
        ring = self._rings.get(market)
        if ring is None:
            if not self.keeps(market):
                return  # not streamed (any more): nothing of it is kept
            ring = self._ring(market)
        seq = self._seq[market] = self._seq[market] + 1
        tick["seq"] = seq  # lets a client drop what it already has from the backfill
        ring.append(tick)
        if self.sink is not None:
            self._to_sink.setdefault(market, []).append(tick)
        if market in self.watchers:
            self._pending.setdefault(market, []).append(tick)
        if tick.get("kind") != "gap":
            self._latest[market] = tick
            self._dirty_pairs.add(tick["symbol"])
        if self.history is not None:
            self.history.append(market, tick)

    def _ring(self, market: str) -> deque:
        """A new ring for a streamed market, started from the history so a restart never opens blank; the
        caller holds the lock."""
        ring = self._rings[market] = deque(self._stored(market, seq_base := _seq_base()), maxlen=self.ring_size)
        self._seq[market] = ring[-1]["seq"] if ring else seq_base
        return ring

    def _stored(self, market: str, seq_base: int) -> list[dict]:
        """The market's latest entries in the history, numbered from `seq_base` + 1 (nothing kept)."""
        entries = self.history.recent(market, self.ring_size) if self.history is not None else []
        for seq, entry in enumerate(entries, seq_base + 1):
            del entry["id"]
            entry["seq"] = seq
            entry["stored"] = True  # from before this server started
        return entries

    def set_market_state(self, market: str, state: str, reason: str = "") -> None:
        entry = {"market": market, "state": state, "reason": reason, "since": time.time_ns() // 1_000_000}
        with self._lock:
            if not self.keeps(market):
                # not streamed, so kept nowhere (nor in a collector's Redis): sent to whoever is in its room now
                # (a refusal, an exchange's error)
                self._notices[market] = entry
                return
            self._states[market] = entry
            self._pending_states[market] = entry

    def forget_market(self, market: str) -> None:
        """`market` is no longer streamed: free everything kept of it (its ring, numbering, state, pending
        entries and spread quote). Its history stays in the store."""
        with self._lock:
            ring = self._rings.get(market)
            last = received_at(ring[-1]) if ring else None
            for kept in (self._rings, self._seq, self._pending, self._states, self._pending_states, self._latest,
                         self._to_sink):
                kept.pop(market, None)
        if self.history is not None:  # streamed again later, it comes after a gap for the time it was not
            self.history.released(market, last)
        if self.sink is not None:  # a collector: its copy in Redis too
            self.sink.forget(market)

    def held(self) -> dict[str, int]:
        """How many markets each per-market structure holds now (tests and diagnostics)."""
        with self._lock:
            sizes = {"rings": len(self._rings), "seq": len(self._seq), "pending": len(self._pending),
                     "states": len(self._states), "latest": len(self._latest), "to_sink": len(self._to_sink)}
        return {**sizes, "watched": len(self.watchers.markets())}

    def feeds_changed(self, status: dict = None) -> None:
        self._feeds_dirty = True

    def set_watched(self, markets) -> None:
        """A collector: the markets the web processes' clients watch now (their union)."""
        self.watchers.replace(markets, REMOTE)
        with self._lock:
            for market in [m for m in self._pending if m not in self.watchers]:
                del self._pending[market]

    # From the Socket.IO handlers ---------------------------------------------------------------------------------
    def watch(self, sid: str, market: str) -> bool:
        """`sid` watches `market`; True if it is the market's first watcher."""
        return self.watchers.add(sid, market)

    def unwatch(self, sid: str, market: str) -> bool:
        """True if `market` has no watcher left."""
        last = self.watchers.discard(sid, market)
        if last:
            with self._lock:
                self._pending.pop(market, None)
        return last

    def forget_client(self, sid: str) -> list[str]:
        """A client left: the markets nobody watches any more."""
        self.fanout.forget(sid)
        return [market for market in self.watched_by(sid) if self.unwatch(sid, market)]

    def follow(self, sid: str) -> None:
        """`sid`'s packets follow what it watches now (its watch-set's room; on connect, the empty set's)."""
        self.fanout.join(sid, self.watched_by(sid))

    def watched_by(self, sid: str) -> list[str]:
        return self.watchers.of(sid)

    def backfill(self, market: str) -> dict:
        """`{"market", "ticks": [oldest first], "state": dict | None}`: what this server holds of the market (or,
        when it streams it not yet, its stored history); never creates anything, so any market may be asked."""
        with self._lock:
            ring = self._rings.get(market)
            ticks = list(ring) if ring is not None else None
            state = self._states.get(market)
        if ticks is None:  # read outside the lock: a store query must not hold up the listeners
            ticks = self._stored(market, _seq_base())
        return {"market": market, "ticks": ticks, "state": state}

    def has_live(self, market: str) -> bool:
        """Whether this server has streamed the market already (not only history or a REST backfill)."""
        with self._lock:
            return any(not entry.get("stored") and entry.get("source") != "rest"
                       for entry in self._rings.get(market, ()))

    def markets(self) -> list[str]:
        with self._lock:
            return sorted(self._rings)

    # The emitting task -------------------------------------------------------------------------------------------
    def spread_of(self, pair: str, statuses: list = None) -> dict:
        """The pair's spread across every exchange streaming it now; stale feeds listed but excluded."""
        now = time.time_ns() // 1_000_000
        quotes = []
        for status in statuses if statuses is not None else self.feeds():
            latest = self._latest.get(f"{status['exchange']}:{pair}")
            if latest is not None and pair in status["symbols"]:
                quotes.append({**latest, "healthy": status["state"] in ("live", "quiet"),
                               "every_change": status.get("quote_on_every_change", True)})
        return spread(pair, quotes, now, replay=self.replay)

    def _spreads_due(self, every_pair: bool) -> list[str]:
        """The watched pairs whose spread row should be sent now: those with new ticks, or all of them."""
        watched = {market.partition(":")[2] for market in self.watchers.markets()}
        with self._lock:
            dirty, self._dirty_pairs = self._dirty_pairs, set()
        return sorted(watched if every_pair else watched & dirty)

    def run(self) -> None:
        self.fanout.run(self.socketio.sleep, self._stopping.is_set, before=self._due,
                        max_batch=self.max_batch, on_error=lambda: log.exception("emit failed"))

    def _due(self) -> None:
        """Hand what is due this interval to the fan-out (a collector: publish it to the web processes in one
        message): new ticks and gaps, market states, the spread rows of pairs with new ticks (every watched
        pair's once per feeds_every_s), and what changed in the feeds' status."""
        with self._lock:
            pending, self._pending = self._pending, {}
            states, self._pending_states = self._pending_states, {}
            notices, self._notices = self._notices, {}
            to_sink, self._to_sink = self._to_sink, {}
        if self.sink is not None:
            self.sink.store(to_sink, states)
        for market, ticks in pending.items():
            if len(ticks) > self.max_batch:  # the page keeps at most max_batch rows: older ones would not show
                self.ticks_dropped += len(ticks) - self.max_batch
                pending[market] = ticks = ticks[-self.max_batch:]
            self.ticks_emitted += len(ticks)
            self.on_batch(len(ticks), received_at(ticks[0]))
        states.update(notices)
        now = time.monotonic()
        # The clients' copy of the feeds changes at most once per feeds_every_s; a collector's copy in Redis (read
        # by the web processes, never by clients) follows every state change at once.
        feeds_due = now >= self._next_feeds or (self._feeds_dirty and self.sink is not None)
        pairs = self._spreads_due(every_pair=feeds_due)
        spreads = {}
        if pairs or feeds_due:  # the feeds' status is built only when something will be sent
            statuses = self.feeds()
            spreads = {pair: row for pair in pairs if (row := self.spread_of(pair, statuses)) is not None}
            if feeds_due:
                self._feeds_dirty = False
                self._next_feeds = now + self.feeds_every_s
                if self.sink is not None:  # each web process tells its own clients (and notices our silence)
                    self.sink.set_feeds(statuses)
                else:
                    self._show_feeds(statuses)
        if self.sink is None:
            self.fanout.add(pending, states, spreads)
        elif pending or states or spreads:
            self.socketio.emit("batch", {"ticks": pending, "market_state": states, "spread": spreads}, to=RELAY_ROOM)
            self.relays += 1

    def _show_feeds(self, statuses: list) -> None:
        """Every client gets what changed since the status it has (feeds.feeds_change), nothing when nothing did:
        a full copy a second to every client was the size of every market's counters times the clients."""
        with self._feeds_lock:  # a client greeted meanwhile gets either this change after its copy, or the new copy
            change = feeds_change(self._feeds_shown, statuses)
            self._feeds_shown = statuses
            if change is not None:
                self.fanout.add_feeds(change)

    def greet_feeds(self, send: Callable[[list], None]) -> None:
        """`send` a new client the feeds' status in full, as the others have it: the changes that follow are
        computed from it."""
        with self._feeds_lock:
            send(self._feeds_shown)

    def _greet(self, sid: str) -> None:
        """The feeds' status in full to one client that missed a change of it (conflated)."""
        self.greet_feeds(lambda statuses: self.socketio.server.emit("feeds", statuses, to=sid, namespace="/"))

    def flush(self) -> None:
        """One round of the emitting task, now (tests)."""
        self._due()
        self.fanout.flush(self.max_batch)

    @property
    def emits(self) -> int:
        """Packets emitted: one per watch-set room per interval (a collector: its relay messages)."""
        return self.relays + self.fanout.packets

    def stop(self) -> None:
        self._stopping.set()
