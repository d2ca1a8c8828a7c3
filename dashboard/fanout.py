"""The fan-out: one `batch` packet per client per emit interval, encoded once per watch-set.

Every client is in exactly one Socket.IO room named after the set of markets it watches (its watch-set, the empty
set included), so clients that watch the same markets share one packet: it is encoded once per watch-set (one
Socket.IO packet, one Engine.IO packet, and under eventlet one websocket frame), then written straight to each
member's websocket when that client can take it now (direct.py), else queued by engine.io for its writer (the
same packet object for all: python-engineio 4.15 caches its `encode()`). What is due for the clients (ticks and gaps per market, market states, spread
rows, a change of the feeds' status) is added here by the hub (or, in a web process, by the collector's relay);
`flush` sends each watch-set the parts that concern it:

    {"market_state": [{"market", "state", "reason", "since"}...],   each market's latest state
     "ticks": [{"market", "ticks": [...oldest first]}...],          ticks and gaps, as the `ticks` event had them
     "spread": [{"pair", ...}...],                                  spread rows of the pairs it watches
     "feeds": [...] | {"now", "changed"},                           the feeds' status (feeds.feeds_change)
     "interval_ms": 50}                                             the interval in force

(only the keys that have something; a client applies them in that order). `unpack` gives a Python client the
parts one by one, as the old events.

What else every client is sent alike is encoded once and written the same way: a market's `backfill` once per
interval for every client subscribing to it or resynced (backfills.py; `join` sends it with the room change, so no
batch comes before it), a connect's `markets` offer and `feeds` status once per version (`send_shared`).

Pacing: the interval starts at the configured one (EMIT_INTERVAL_MS) and steps up a ladder of doublings (50, 100,
200, 400, 800, 1000 ms: MAX_INTERVAL_MS at most) when, for HOT_S in a row, a round's work takes more than half of it
in CPU time, the task wakes late by more than half of it because of our own work (the process is out of CPU), or
more than a quarter of the clients (4 at least) have packets queued; after COOL_S of quiet rounds it steps back down.
Neither counts the time other processes had the core: a round's work is its CPU time, and a late wake-up leaves out
the time the task was ready but not run (the kernel's run delay). On a shared core the clock counted theirs, and a
longer interval (bigger packets, the same bytes a second) cannot give it back: it walked the interval up to 1 s
while the server used a fifth of its core. A slow client alone does not slow the others: it is conflated
(conflation.py).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Callable, Iterator, Optional

from exchanges.tick import received_at

from . import direct as direct_writes
from .backfills import SharedBackfills, encode_event
from .conflation import Conflation
from .feeds import merge_feeds

MAX_INTERVAL_MS = 1000
HOT_SHARE = 0.5       # a round's CPU time (or a late wake-up) longer than this share of the interval is a hot round
BACKLOG_SHARE = 0.25  # ... as is a round where more than this share of the clients have packets waiting ...
BACKLOG_CLIENTS = 4   # ... and at least this many (one slow client among few is conflated, not paced for)
HOT_S = 0.25          # hot rounds for this long in a row (2 at least) double the interval: a start-up burst is not load
COOL_SHARE = 0.15     # a round this far below the limits is a quiet one ...
COOL_S = 2.0          # ... and quiet rounds for this long (2 at least; a hot round starts over) step it down
ORDER = ("market_state", "ticks", "spread", "feeds")
log = logging.getLogger(__name__)  # the order a client applies a packet's parts in


def watch_room(markets) -> str:
    """The room of everyone watching exactly `markets` (any order): a stable hash of the sorted list."""
    digest = hashlib.blake2b("\n".join(sorted(markets)).encode(), digest_size=8).hexdigest()
    return f"watch:{digest}"


def unpack(packet: dict) -> Iterator[tuple[str, object]]:
    """A `batch` packet's parts as (event, payload) in the order to apply them, each shaped as the event of that
    name was before batching: ("market_state", state), ("ticks", {"market", "ticks"}), ("spread", row),
    ("feeds", status or change). For Python clients (tests, benchmarks); static/app.js does the same."""
    for name in ORDER:
        part = packet.get(name)
        if part is None:
            continue
        if name == "feeds":
            yield name, part
        else:
            for item in part:
                yield name, item


def listen(client, name: str, handler: Callable) -> None:
    """`handler` (a plain function) gets every `name` event of `client`, a python-socketio Client or AsyncClient: a
    part of a `batch` packet is handed over as the event of that name was before batching (`unpack`), one at a
    time, in the packet's order; the event itself too (the full `feeds` status on connect, a conflated client's
    resync). `name` "batch" gets the whole packets. One call per name; a later one replaces it."""
    if name != "batch":
        client.on(name, handler)
    if name not in (*ORDER, "batch"):
        return
    parts = getattr(client, "_batch_parts", None)
    if parts is None:
        parts = client._batch_parts = {}

        def on_batch(packet):
            if "batch" in parts:
                parts["batch"](packet)
            for part, payload in unpack(packet):
                if part in parts:
                    parts[part](payload)
        client.on("batch", on_batch)
    parts[name] = handler


def combine_feeds(first, then):
    """Two `feeds` payloads due in one interval as one: a full status stays full (the change merged onto it), two
    changes become one change with the later value of each field."""
    if isinstance(first, list) or isinstance(then, list):
        return merge_feeds(first, then) if isinstance(first, list) else then
    changed = dict(first.get("changed", {}))
    for name, fields in then.get("changed", {}).items():
        earlier = changed.get(name)
        if fields is None or earlier is None:
            changed[name] = fields  # gone, or new (its fields in full)
            continue
        merged = {**earlier, **fields}
        if "markets" in earlier and "markets" in fields:
            merged["markets"] = {**earlier["markets"], **fields["markets"]}
        changed[name] = merged
    return {"now": then.get("now", first.get("now")), "changed": changed}


def thread_run_delay() -> float:
    """Seconds the calling OS thread has spent ready to run but waiting for a CPU (Linux schedstat's run delay;
    0.0 where there is none). Read with the builtin open: eventlet's green os.read could switch green threads."""
    try:
        with open("/proc/thread-self/schedstat", "rb", buffering=0) as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class FanoutFigures:
    """What /metrics reads of a hub's fan-out (its `fanout`), one place for the one-process hub and a team's web
    process."""

    @property
    def client_packets(self) -> int:
        return self.fanout.client_packets

    @property
    def direct_packets(self) -> int:
        return self.fanout.direct_packets

    @property
    def interval_ms(self) -> int:
        return self.fanout.interval_ms

    def watch_sets(self) -> int:
        return self.fanout.watch_sets()

    @property
    def conflation(self):
        return self.fanout.conflation

    @property
    def batches_conflated(self) -> int:
        return self.conflation.batches_conflated

    def clients_behind(self) -> int:
        return self.conflation.clients_behind()


class Pacing:
    """The emit interval in force: the configured one, doubled under load up to MAX_INTERVAL_MS, stepped back when
    load falls (see the module's docstring). Not thread-safe: one task calls `note`."""

    def __init__(self, interval_ms: int, max_interval_ms: int = MAX_INTERVAL_MS):
        self.base_ms = interval_ms
        self.max_ms = max(interval_ms, max_interval_ms)
        self.steps = [interval_ms]  # the configured interval doubled up to the longest: 50, 100 ... 800, 1000
        while self.steps[-1] < self.max_ms:
            self.steps.append(min(self.max_ms, self.steps[-1] * 2))
        self.interval_ms = interval_ms
        self._hot = self._cool = 0
        self.changes = 0

    @property
    def interval_s(self) -> float:
        return self.interval_ms / 1000

    def note(self, busy_s: float, late_s: float, backlogged: int = 0, seen: int = 0,
             wall_s: Optional[float] = None) -> None:
        """One round: the CPU time its work took (s), how late the task woke (s, on the clock), how many of the
        clients looked at had packets queued; `wall_s`, the round's time on the clock, is only logged."""
        load = max(busy_s, late_s) / self.interval_s
        backlog_share = backlogged / seen if seen else 0.0
        clock = f" ({wall_s * 1000:.1f} ms on the clock)" if wall_s is not None else ""
        why = (f"round {busy_s * 1000:.1f} ms CPU{clock}, woke {late_s * 1000:.1f} ms late, {backlogged} of {seen} "
               f"clients behind")
        if load > HOT_SHARE or (backlogged >= BACKLOG_CLIENTS and backlog_share > BACKLOG_SHARE):
            self._hot, self._cool = self._hot + 1, 0
            if self._hot >= self._rounds(HOT_S) and self.interval_ms < self.max_ms:
                self._set(self.steps[self.steps.index(self.interval_ms) + 1], why)
        else:  # only a hot round undoes the quiet ones: a scheduling hiccup between them is not load
            self._hot = 0
            if load < COOL_SHARE and backlog_share < BACKLOG_SHARE / 2:
                self._cool += 1
                if self._cool >= self._rounds(COOL_S) and self.interval_ms > self.base_ms:
                    self._set(self.steps[self.steps.index(self.interval_ms) - 1], why)

    def _rounds(self, seconds: float) -> int:
        """Rounds at the interval in force that take `seconds` (2 at least)."""
        return max(2, round(seconds / self.interval_s))

    def _set(self, interval_ms: int, why: str) -> None:
        log.info("emit interval %d -> %d ms (%s)", self.interval_ms, interval_ms, why)
        self.interval_ms = interval_ms
        self._hot = self._cool = 0
        self.changes += 1


class Fanout:
    """The watch-set rooms of this process's clients, the parts due for them, and the flush."""

    def __init__(self, server, backfill: Callable[[str], dict], interval_ms: int = 50,
                 max_interval_ms: int = MAX_INTERVAL_MS, greet: Optional[Callable[[str], None]] = None,
                 direct: bool = True):
        """`server`: the python-socketio Server of these clients; `backfill`: market -> the `backfill` event of a
        market; `greet(sid)`: send one client the feeds' status in full (after it was conflated); `direct`: write
        packets straight to websocket clients under eventlet (direct.py; made before any client connects)."""
        self.server = server
        self.direct = direct_writes.install(server) if direct else None  # None: not eventlet, or off
        self.pacing = Pacing(interval_ms, max_interval_ms)
        self.backfills = SharedBackfills(server, backfill, framed=self.direct is not None)
        self.conflation = Conflation(server, self.send_backfill, greet)
        self._lock = threading.Lock()
        # Held by a whole round (what is due taken, then sent) and by a client's join with its backfill (`join`):
        # under ASYNC_MODE=threading no batch gets between a join and its backfill.
        self._sending = threading.RLock()
        self._sets: dict[str, tuple] = {}    # room -> its markets (sorted)
        self._members: dict[str, int] = {}   # room -> clients in it on this process
        self._room_of: dict[str, str] = {}   # sid -> its room
        self._shared: dict[str, tuple] = {}  # event -> (payload, its encoding) last sent by send_shared
        self._ticks: dict[str, list] = {}
        self._states: dict[str, dict] = {}
        self._spreads: dict[str, dict] = {}
        self._feeds = None
        self.packets = 0          # room emits: one encoding each
        self.client_packets = 0   # packets sent to clients (a room emit counts once per member)
        self.frames = 0           # websocket frames built for direct writes (one per room emit under eventlet)
        self.direct_packets = 0   # ... and written directly (the other client packets went through engine.io's queue)
        self.backfills_sent = 0   # backfill events sent (subscribes and resyncs; backfills.encodings were encoded)
        self.direct_events = 0    # backfills and connect events written directly (direct_packets: batches only)
        self.on_batch: Callable[[int, object], None] = lambda size, oldest_received: None  # metrics

    @property
    def interval_ms(self) -> int:
        return self.pacing.interval_ms

    @property
    def interval_s(self) -> float:
        return self.pacing.interval_s

    # Watch-sets (from the Socket.IO handlers) ------------------------------------------------------------------
    def join(self, sid: str, markets, backfill: Optional[str] = None) -> None:
        """`sid` watches exactly `markets` now (its whole set; [] on connect): it moves to that set's room. With
        `backfill` (the market it just subscribed to), that market's backfill is sent to it in the same step: no
        flush can send it a batch in between (ASYNC_MODE=threading)."""
        markets = tuple(sorted(set(markets)))
        room = watch_room(markets)
        if backfill is not None:
            self.backfills.get(backfill)  # read and encoded outside the lock (a web process asks Redis)
        with self._sending:
            with self._lock:
                old = self._room_of.get(sid)
                if old != room:
                    self._room_of[sid] = room
                    self._sets.setdefault(room, markets)
                    self._members[room] = self._members.get(room, 0) + 1
                    if old is not None:
                        self._leave_locked(old)
            if old != room:
                if old is not None:
                    self.server.leave_room(sid, old, namespace="/")
                self.server.enter_room(sid, room, namespace="/")
            if backfill is not None:
                self.send_backfill(sid, backfill)  # the copy above, unless a flush came in between

    def send_backfill(self, sid: str, market: str) -> None:
        """The market's `backfill` event to client `sid` of this process, encoded once for every client that
        asks for it this interval (backfills.py) and sent like a batch: written directly when it can take it now,
        else queued by engine.io. Called by `join` (a subscribe) and by a flush (a resync)."""
        eio_sid = self.server.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None:  # gone
            return
        encoded, payload = self.backfills.get(market)
        self.backfills_sent += 1
        self._write(sid, eio_sid, encoded, "backfill", payload)

    def send_shared(self, sid: str, event: str, payload) -> None:
        """`event` with `payload` to client `sid` of this process, encoded once for every client sent that same
        object (a connect's `markets` offer and `feeds` status, read-only while they are current): a storm of
        connects costs one encoding each, not one per client."""
        eio_sid = self.server.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None:
            return
        with self._lock:
            kept = self._shared.get(event)
        if kept is None or kept[0] is not payload:
            kept = (payload, encode_event(self.server, event, payload, framed=self.direct is not None))
            with self._lock:
                self._shared[event] = kept  # the payload held with it: its id is not reused meanwhile
        self._write(sid, eio_sid, kept[1], event, payload)

    def _write(self, sid: str, eio_sid: str, encoded, event: str, payload) -> None:
        """An encoded event to one client: written directly when it can take it now, else queued by engine.io."""
        if encoded is None:  # binary attachments: never in what we send, but then the normal way
            self.server.emit(event, payload, to=sid, namespace="/", ignore_queue=True)
        elif encoded.frame is None or not self.direct.write(eio_sid, encoded.frame):
            self.server._send_eio_packet(eio_sid, encoded.packet)  # python-socketio 5.18's emit does this per client
        else:
            self.direct_events += 1

    def first_watcher(self, market: str) -> None:
        """`market` has its first watcher on this process: a backfill encoded before is not shared any more."""
        self.backfills.forget(market)

    def forget(self, sid: str) -> None:
        """A client left (Socket.IO drops it from its rooms itself)."""
        with self._lock:
            room = self._room_of.pop(sid, None)
            if room is not None:
                self._leave_locked(room)

    def _leave_locked(self, room: str) -> None:
        left = self._members[room] = self._members[room] - 1
        if left <= 0:
            del self._members[room]
            del self._sets[room]

    def watch_sets(self) -> int:
        with self._lock:
            return len(self._sets)

    # What is due (any thread) ----------------------------------------------------------------------------------
    def add(self, ticks: dict = None, states: dict = None, spreads: dict = None) -> None:
        """`ticks`: market -> entries (appended to what is due); `states`: market -> its latest state; `spreads`:
        pair -> its row (the latest of each replaces an earlier one)."""
        with self._lock:
            for market, entries in (ticks or {}).items():
                self._ticks.setdefault(market, []).extend(entries)
            self._states.update(states or {})
            self._spreads.update(spreads or {})

    def add_feeds(self, payload) -> None:
        """A `feeds` payload for every client: a change (or two, combined) per packet."""
        with self._lock:
            self._feeds = payload if self._feeds is None else combine_feeds(self._feeds, payload)

    def drop(self, market: str) -> None:
        """Nothing more of `market` is due (nobody watches it any more)."""
        with self._lock:
            self._ticks.pop(market, None)

    # The flush (one task) --------------------------------------------------------------------------------------
    def flush(self, max_batch: int = 500) -> int:
        """Send every watch-set with something due its one packet; returns the packets sent. A market's ticks
        beyond `max_batch` (the rows a page keeps) are left out, oldest first."""
        with self._sending:
            return self._flush(max_batch)

    def _flush(self, max_batch: int) -> int:
        with self._lock:
            ticks, self._ticks = self._ticks, {}
            states, self._states = self._states, {}
            spreads, self._spreads = self._spreads, {}
            feeds, self._feeds = self._feeds, None
            sets = list(self._sets.items())
        self.backfills.expire()  # what this round sends may be missing from a backfill read before it
        if not (ticks or states or spreads or feeds is not None):
            self.conflation.resync_caught_up()
            return 0
        for market, entries in ticks.items():
            if len(entries) > max_batch:
                ticks[market] = entries = entries[-max_batch:]
            self.on_batch(len(entries), received_at(entries[0]))
        sent = 0
        for room, markets in sets:
            packet = {}
            due = [states[m] for m in markets if m in states]
            if due:
                packet["market_state"] = due
            due = [{"market": m, "ticks": ticks[m]} for m in markets if m in ticks]
            if due:
                packet["ticks"] = due
            if spreads:
                pairs = sorted({m.partition(":")[2] for m in markets})
                due = [spreads[p] for p in pairs if p in spreads]
                if due:
                    packet["spread"] = due
            if feeds is not None:
                packet["feeds"] = feeds
            if not packet:
                continue
            packet["interval_ms"] = self.pacing.interval_ms
            members, slow = self.conflation.members(room, self.pacing.interval_s)
            if members - len(slow) <= 0:
                self.conflation.skipped(slow, markets, feeds is not None)
                continue
            self._send(room, packet, slow)
            self.conflation.skipped(slow, markets, feeds is not None)
            self.packets += 1
            self.client_packets += members - len(slow)
            sent += 1
        self.conflation.resync_caught_up()
        return sent

    def _send(self, room: str, packet: dict, slow: list) -> None:
        """`packet` as one `batch` event to the members of `room` on this process but `slow`: encoded once, written
        directly to the websocket clients that can take it now (direct.py), queued by engine.io for the others.
        Only this process's clients: a web process's relay already came through the message queue. Without direct
        writes (threading), python-socketio 5.18's `emit(..., ignore_queue=True)`, which does the same but them."""
        direct = self.direct
        encoded = encode_event(self.server, "batch", packet, framed=True) if direct is not None else None
        if encoded is None:  # no direct writes (threading), or binary attachments (never in a batch)
            self.server.emit("batch", packet, to=room, skip_sid=slow or None, namespace="/", ignore_queue=True)
            return
        eio_pkt, frame = encoded.packet, encoded.frame
        self.frames += 1
        skip = set(slow)
        for sid, eio_sid in self.server.manager.get_participants("/", room):
            if sid in skip:
                continue
            if direct.write(eio_sid, frame):
                self.direct_packets += 1
            else:
                self.server._send_eio_packet(eio_sid, eio_pkt)  # what python-socketio 5.18's emit does per member

    def run(self, sleep: Callable[[float], None], stopping: Callable[[], bool],
            before: Callable[[], None] = lambda: None, max_batch: int = 500,
            on_error: Callable[[], None] = lambda: None, run_delay: Callable[[], float] = None) -> None:
        """The emitting loop: every interval in force, `before()` (the hub adds what is due), then `flush`, then
        the pacing notes how the round went. `run_delay()`: this thread's time so far waiting for a CPU while it
        could run (s; `thread_run_delay`)."""
        run_delay = run_delay or thread_run_delay
        while not stopping():
            asked = self.pacing.interval_s
            slept_from, waited_from = time.monotonic(), run_delay()
            sleep(asked)
            started, cpu_from = time.monotonic(), time.thread_time()  # eventlet: the hub's thread, not left by a round
            # woke late: by our own work (other green threads, or threads holding the GIL), not by the time other
            # processes had the core while this thread was ready to run
            late = max(0.0, started - slept_from - asked - (run_delay() - waited_from))
            try:
                with self._sending:  # what is due taken and sent in one go: no join gets between them
                    before()
                    self.conflation.start_round()
                    self.flush(max_batch)
                self.pacing.note(time.thread_time() - cpu_from, late, *self.conflation.backlog(),
                                 wall_s=time.monotonic() - started)
            except Exception:  # an emit failure must not end the only emitting task
                on_error()
