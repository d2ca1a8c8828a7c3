"""The hub: recent ticks per market (ring buffers), who watches which market (Socket.IO rooms), market and feed
states, and batched emits. It is the only thing that calls emit; it knows nothing of exchanges' protocols.

Listener threads call `publish`, `publish_gap`, `set_market_state` and `feeds_changed`; one background task
(`run`) emits, once per room per interval, so one busy feed cannot flood the clients. A slow client is conflated
(see conflation.py). A gap travels in the same stream as the ticks, as `{"kind": "gap", "from": ms, "to": ms,
"reason": ...}`, so it lands between the right rows.

In a collector process (see roles.py) the same hub emits through the message queue to the web processes' rooms,
learns which markets are watched from them (`set_watched`), and hands every entry, market state and feed status
to a `sink` (Redis) so any web process can backfill any market.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

from .conflation import Conflation
from .spread import spread
from .watchers import Watchers

log = logging.getLogger(__name__)

REMOTE = "remote"  # the watcher standing for a web process's clients, in a collector


def market_of(tick: dict) -> str:
    return f"{tick['exchange']}:{tick['symbol']}"


def pair_room(pair: str) -> str:
    """The Socket.IO room of everyone watching a pair on any exchange (for its spread row)."""
    return f"pair:{pair}"


class Hub:
    def __init__(self, socketio, ring_size: int = 500, emit_interval_ms: int = 50, max_batch: int = 500,
                 feeds: Callable[[], list] = list, feeds_every_s: float = 1.0, history=None, sink=None,
                 replay: bool = False):
        self.socketio = socketio
        self.ring_size, self.max_batch = ring_size, max_batch
        self.interval_s = emit_interval_ms / 1000
        self.feeds, self.feeds_every_s = feeds, feeds_every_s
        self.history = history  # a HistoryStore, or None: every entry is kept there too
        self.sink = sink        # a collector's shared store (bus.CollectorBus), or None
        self.replay = replay    # replay mode: our clock says nothing of when a recorded quote was made
        self._to_sink: dict[str, list] = {}
        # Sequence numbers start at the start time in microseconds, so a restarted server's numbers are higher
        # than any a page kept from before (a page drops what is not newer than what it has).
        self._seq_base = time.time_ns() // 1000
        self._lock = threading.Lock()
        self._rings: dict[str, deque] = {}
        self._seq: dict[str, int] = {}
        self._pending: dict[str, list] = {}
        self._states: dict[str, dict] = {}
        self._pending_states: dict[str, dict] = {}
        self.watchers = Watchers()
        self._latest: dict[str, dict] = {}   # market -> its latest tick (for the cross-exchange spread)
        self._dirty_pairs: set[str] = set()
        self._feeds_dirty = True
        self._stopping = threading.Event()
        self.emits = self.ticks_emitted = self.ticks_dropped = 0
        self.clients = 0  # Socket.IO clients connected
        self.on_batch: Callable[[int, int], None] = lambda size, oldest_received: None  # metrics
        self.conflation = Conflation(socketio.server, self.backfill)

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
        ring = self._ring(market)
        seq = self._seq[market] = self._seq.get(market, self._seq_base) + 1
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
        """A market's recent entries; a new one starts from the history, so a restart never opens blank."""
        ring = self._rings.get(market)
        if ring is None:
            ring = self._rings[market] = deque(maxlen=self.ring_size)
            for entry in self.history.recent(market, self.ring_size) if self.history is not None else ():
                del entry["id"]
                seq = self._seq[market] = self._seq.get(market, self._seq_base) + 1
                entry["seq"] = seq
                entry["stored"] = True  # from before this server started
                ring.append(entry)
        return ring

    def set_market_state(self, market: str, state: str, reason: str = "") -> None:
        entry = {"market": market, "state": state, "reason": reason, "since": time.time_ns() // 1_000_000}
        with self._lock:
            self._states[market] = entry
            self._pending_states[market] = entry

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
        return [market for market in self.watched_by(sid) if self.unwatch(sid, market)]

    def watched_by(self, sid: str) -> list[str]:
        return self.watchers.of(sid)

    def backfill(self, market: str) -> dict:
        with self._lock:
            return {"market": market, "ticks": list(self._ring(market)), "state": self._states.get(market)}

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
        next_feeds = 0.0
        while not self._stopping.is_set():
            self.socketio.sleep(self.interval_s)
            try:
                self.flush()
                now = time.monotonic()
                feeds_due = self._feeds_dirty or now >= next_feeds
                pairs = self._spreads_due(every_pair=feeds_due)
                if not (pairs or feeds_due):
                    continue  # the feeds' status is built only when something will be sent
                statuses = self.feeds()
                for pair in pairs:
                    self.socketio.emit("spread", self.spread_of(pair, statuses), to=pair_room(pair))
                if feeds_due:
                    self._feeds_dirty = False
                    next_feeds = now + self.feeds_every_s
                    if self.sink is not None:  # each web process tells its own clients (and notices our silence)
                        self.sink.set_feeds(statuses)
                    else:
                        self.socketio.emit("feeds", statuses)
            except Exception:  # an emit failure must not end the only emitting task
                log.exception("emit failed")

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            states, self._pending_states = self._pending_states, {}
            to_sink, self._to_sink = self._to_sink, {}
        if self.sink is not None:
            self.sink.store(to_sink, states)
        for market, state in states.items():
            self.socketio.emit("market_state", state, to=market)
        for market, ticks in pending.items():
            if len(ticks) > self.max_batch:  # the page keeps at most max_batch rows: older ones would not show
                self.ticks_dropped += len(ticks) - self.max_batch
                ticks = ticks[-self.max_batch:]
            slow = self.conflation.slow_clients(market)
            self.socketio.emit("ticks", {"market": market, "ticks": ticks}, to=market, skip_sid=slow or None)
            self.conflation.skipped(slow, market)
            self.emits += 1
            self.ticks_emitted += len(ticks)
            self.on_batch(len(ticks), ticks[0].get("received") or ticks[0].get("to"))
        self.conflation.resync_caught_up()

    @property
    def batches_conflated(self) -> int:
        return self.conflation.batches_conflated

    def clients_behind(self) -> int:
        return self.conflation.clients_behind()

    def stop(self) -> None:
        self._stopping.set()
