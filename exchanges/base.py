"""ExchangeListener: one thread per exchange holding its public websocket feed.

The base class owns all I/O, timing, reconnects, the watchdog, state and counters. A subclass (one module per
exchange) supplies only protocol: URL, subscribe/unsubscribe messages, symbol mapping and `parse`.
"""
from __future__ import annotations

import errno
import logging
import random
import socket
import threading
import time
from collections import deque
from typing import Callable, Iterable, Optional
from urllib.parse import urlsplit

import websocket  # websocket-client

from .tick import BadFrame, ExchangeError, Gap, Heartbeat, Reconnect, Rejected, Subscribed, TickBook, Update

log = logging.getLogger(__name__)

# Feed states, in the order a healthy connection meets them.
IDLE, CONNECTING, LIVE, QUIET, STALE, RECONNECTING, ERROR, STOPPED = (
    "idle", "connecting", "live", "quiet", "stale", "reconnecting", "error", "stopped")

_BINARY = websocket.ABNF.OPCODE_BINARY
BAD_FRAME_SNIPPET = 200  # characters of the last bad frame kept for the page
YIELD_EVERY_FRAMES = 32  # under eventlet a busy socket never blocks, so the reader must let others run
# The watchdog, the message rate and the no-data hints look at the clock, not at each frame: on a busy feed they run
# at most this often (their figures are per second; stale detection is STALE_AFTER_S, tenths of a second apart).
WATCH_EVERY_S = 0.05


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def bad_reason(failure: Exception) -> str:
    """A short, stable reason for a bad frame: the counters group by it, so no frame content in it."""
    if isinstance(failure, BadFrame) and failure.args:
        return str(failure.args[0]).split(":", 1)[0] or "bad frame"
    if isinstance(failure, KeyError):
        return f"missing field {str(failure.args[0])[:40]!r}" if failure.args else "missing field"
    return type(failure).__name__  # JSONDecodeError, TypeError ...


_CANNOT_CONNECT = {errno.ECONNREFUSED: "connection refused", errno.ENETUNREACH: "network unreachable",
                   errno.EHOSTUNREACH: "host unreachable", errno.ETIMEDOUT: "timed out"}


def connect_failure_reason(failure: Exception, url: str) -> Optional[str]:
    """A plain sentence for a failure to reach the exchange's host, or None for any other failure.

    "cannot resolve HOST: no network or DNS?" for a name that does not resolve (websocket-client 1.9.2 wraps
    socket.gaierror in WebSocketAddressException, whose text is the bare "[Errno -2] Name or service not known"), and
    "cannot connect to HOST: connection refused" (or "network unreachable", "host unreachable") for a socket that
    could not be opened."""
    host = urlsplit(url).hostname or url
    if isinstance(failure, websocket.WebSocketAddressException) or isinstance(failure, socket.gaierror):
        return f"cannot resolve {host}: no network or DNS?"
    if isinstance(failure, OSError) and failure.errno in _CANNOT_CONNECT:
        return f"cannot connect to {host}: {_CANNOT_CONNECT[failure.errno]}"
    return None


class MarketStats:
    """Counters of one market on this feed."""
    __slots__ = ("ticks", "gaps", "last_data_at", "gap_from", "gap_reason")

    def __init__(self):
        self.ticks = self.gaps = 0
        self.last_data_at: Optional[int] = None
        self.gap_from: Optional[int] = None  # an open gap: since when data is missing ...
        self.gap_reason = ""                 # ... and why

    def as_dict(self) -> dict:
        return {"ticks": self.ticks, "gaps": self.gaps, "last_data_at": self.last_data_at}


class _Reconnect(Exception):
    """Leave the read loop and reconnect, for the reason given. `clean`: the exchange asked for it (a maintenance
    notice, a close saying "going away" or "restart"), so the next attempt comes at once, with no backoff to grow."""

    def __init__(self, reason: str, clean: bool = False):
        super().__init__(reason)
        self.clean = clean


CLEAN_CLOSE_CODES = (1001, 1012)  # going away, service restart: the server ends the session, not a failure


class ExchangeListener:
    # --- protocol, supplied by each exchange module -------------------------------------------------------
    name = ""                 # registry key and the exchange part of a market: "coinbase"
    label = ""                # shown on the page: "Coinbase"
    url = ""                  # the live websocket endpoint (overridable: <NAME>_WS_URL)
    url_hosts: tuple = ()     # host names whose recordings belong to this exchange
    max_messages_per_s = 10.0  # what the exchange lets a client send
    venue = None              # its server side (a venue.Venue subclass), for the local exchange
    # Every feed is pinged (a dead TCP path shows as a missing pong). Where the exchange has no application
    # heartbeat (Binance), its pongs and pings are also what tells the watchdog it still answers.
    pong_is_liveness = False
    geo_alternative = ""      # the venue to suggest when this one answers HTTP 451/403
    rest_url = ""             # the public REST API (overridable: <NAME>_REST_URL)
    listing_path = ""         # where it lists its pairs
    no_data_hint = "subscribed; no update yet (a quiet market sends nothing until its quote or a trade changes)"
    # An application-level ping some exchanges require besides websocket pings (OKX: the text "ping" within 30 s,
    # or it disconnects); sent every `keepalive_every_s` seconds when set. Its reply is the parser's to accept.
    keepalive_message = ""
    keepalive_every_s = 25.0
    # Whether its top-of-book channel is sent on every change of the best bid or ask (a book, a book ticker), or
    # only now and then (a ticker sent with trades): the spread trusts an unchanged quote until now only if so.
    quote_on_every_change = True
    colour = ""               # its line colour on the charts ("#rrggbb"); a spare one when empty
    recordings: tuple = ()    # its files in tests/fixtures/upstream that `--replay` plays by default

    def connect_url(self, symbols: list[str]) -> str:
        """The URL to open for these symbols (a combined-stream exchange puts them in the URL)."""
        return self.ws_url

    def initial_messages(self, symbols: list[str]) -> list[str]:
        """What to send right after connecting, to subscribe to `symbols`."""
        return self.subscribe_messages(symbols) if symbols else []

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        raise NotImplementedError

    def unsubscribe_messages(self, symbols: list[str]) -> list[str]:
        raise NotImplementedError

    def to_native(self, symbol: str) -> str:
        raise NotImplementedError

    def from_native(self, native: str) -> str:
        raise NotImplementedError

    def parse(self, frame, received: int) -> list:
        """One frame (the text, or the socket's bytes) -> a list of `Update`s and protocol events. Raises BadFrame
        (or anything) on a bad frame."""
        raise NotImplementedError

    def on_connected(self) -> None:
        """Reset per-connection protocol state (pending request ids and the like). Called before `book.reset()`:
        the book still holds what the previous connection sent."""

    def missed_while_away(self, symbol: str, update: Update, reason: str) -> Optional[str]:
        """The first update of `symbol` after its data stopped (a reconnect, a `Gap`): why a gap is shown, or None
        where the venue's own ids prove nothing was sent meanwhile (then none is). Default: `reason` as given."""
        return reason

    # REST, also sans-I/O: what to ask, and what the answers mean (dashboard/rest.py does the asking).
    def parse_listing(self, body: str) -> list[str]:
        """The unified symbols the exchange lists (trading now), from its listing endpoint's body."""
        raise NotImplementedError

    def backfill_requests(self, symbol: str) -> list[tuple[str, dict]]:
        """(path, query) pairs whose answers show a new panel the market's recent state."""
        return []

    def parse_backfill(self, symbol: str, path: str, body: str) -> list[Update]:
        """Updates, oldest first, from the answer to one of `backfill_requests`."""
        return []

    # --- I/O, owned by the base class ---------------------------------------------------------------------
    def __init__(self, ws_url: Optional[str] = None, symbols: Iterable[str] = (), *,
                 on_tick: Callable[[dict], None] = lambda tick: None,
                 on_market: Callable[[str, str, str], None] = lambda market, state, reason: None,
                 on_state: Callable[[dict], None] = lambda status: None,
                 on_frame: Optional[Callable[[str, str, float, str], None]] = None,
                 on_gap: Callable[[dict], None] = lambda gap: None,
                 stale_after_s: float = 10.0, quiet_after_s: float = 15.0, no_data_hint_s: float = 15.0,
                 backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0, healthy_after_s: float = 30.0,
                 connect_timeout_s: float = 10.0, poll_s: float = 0.2):
        self.ws_url = ws_url or self.url
        self.on_tick, self.on_market, self.on_state, self.on_frame = on_tick, on_market, on_state, on_frame
        self.on_gap = on_gap
        self.ping_every_s = max(0.5, stale_after_s / 3)
        self.stale_after_s, self.quiet_after_s, self.no_data_hint_s = stale_after_s, quiet_after_s, no_data_hint_s
        self.backoff_base_s, self.backoff_cap_s, self.healthy_after_s = backoff_base_s, backoff_cap_s, healthy_after_s
        self.connect_timeout_s, self.poll_s = connect_timeout_s, poll_s
        self.book = TickBook(self.name)  # never replaced (reset on a new connection): its apply is bound once
        self._apply = self.book.apply
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._ended = threading.Event()
        self._desired: set[str] = set(symbols)
        self._ops: deque = deque()          # ("subscribe" | "unsubscribe", symbol) for the open connection
        self._subscribed_at: dict[str, float] = {}  # symbol -> when its subscribe was sent on this connection
        self._streaming: set[str] = set()   # symbols that delivered a tick on this connection
        # symbol -> its stats, for the markets whose next tick needs only counting: subscribed on this connection,
        # streaming already said, no gap open. Filled by a tick's first pass through the full checks; emptied
        # whenever one of the three may change (connect, lost connection, ops, a refusal), trimmed on a Gap.
        self._counted: dict[str, MarketStats] = {}
        self._hinted: set[str] = set()
        self._ws: Optional[websocket.WebSocket] = None
        self._reconnect_asked: Optional[str] = None  # the exchange's reason, until the read loop reconnects
        self._attempt = 0
        self._next_send_at = 0.0
        self.state, self.reason, self.state_since = IDLE, "", _now_ms()
        self.next_attempt_at: Optional[int] = None
        self.frames = self.ticks = self.bad_frames = self.reconnects = self.gaps = 0
        self.bad_by_reason: dict[str, int] = {}
        self.last_bad_reason, self.last_bad_frame = "", ""
        self.markets: dict[str, MarketStats] = {}
        self.last_error, self.last_error_at = "", None  # the exchange's last error message, and when
        self.last_incident: Optional[dict] = None  # the last time it was not healthy, so a quick recovery shows
        self.message_rate = 0.0  # frames per second, over the last second or so
        self._rate_sample = (time.monotonic(), 0)
        self.geo_blocked = False
        self.last_frame_at: Optional[int] = None
        self.last_data_at: Optional[int] = None
        self.connected_url = ""
        self._dialing = self.ws_url  # the URL of the connection being opened, for a plain reason if it fails

    # Public, thread-safe -----------------------------------------------------------------------------------
    def symbols(self) -> list[str]:
        with self._lock:
            return sorted(self._desired)

    def add(self, symbol: str) -> bool:
        """Stream `symbol`: subscribe on the open connection (no reconnect). False if already streaming it."""
        with self._lock:
            if symbol in self._desired:
                return False
            self._desired.add(symbol)
            self._ops.append(("subscribe", symbol))
        self.on_market(self._market(symbol), "subscribing", "")
        self._wake.set()
        return True

    def remove(self, symbol: str) -> bool:
        with self._lock:
            if symbol not in self._desired:
                return False
            self._desired.discard(symbol)
            self._ops.append(("unsubscribe", symbol))
        self._wake.set()
        return True

    def stop(self) -> None:
        """Ask the thread to end: it closes its own socket within `poll_s` (nothing here touches the socket,
        which may be in use by the thread this is called from, as in a signal handler)."""
        self._stopping.set()
        self._wake.set()

    def join(self, timeout: float) -> bool:
        """Wait until the thread has ended and closed its socket."""
        return self._ended.wait(timeout)

    def status(self) -> dict:
        return {
            "exchange": self.name, "label": self.label, "state": self.state, "reason": self.reason,
            "since": self.state_since, "next_attempt_at": self.next_attempt_at, "url": self.connected_url or self.ws_url,
            "symbols": self.symbols(), "frames": self.frames, "ticks": self.ticks, "bad_frames": self.bad_frames,
            "bad_by_reason": dict(self.bad_by_reason), "last_bad_reason": self.last_bad_reason,
            "last_bad_frame": self.last_bad_frame, "reconnects": self.reconnects, "gaps": self.gaps,
            "older": self.book.older, "quote_on_every_change": self.quote_on_every_change,
            "last_frame_at": self.last_frame_at, "last_data_at": self.last_data_at,
            "message_rate": round(self.message_rate, 1), "stale_after_s": self.stale_after_s,
            "last_error": self.last_error, "last_error_at": self.last_error_at, "last_incident": self.last_incident, "geo_blocked": self.geo_blocked, "alternative": self.geo_alternative if self.geo_blocked else "",
            "markets": {symbol: stats.as_dict() for symbol, stats in list(self.markets.items())},
            "now": _now_ms(),  # the server's clock, so a browser computes ages without trusting its own
        }

    # The thread ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        """The listener's thread: connect, subscribe, read; reconnect with backoff; never give up."""
        while not self._stopping.is_set():
            if not self.symbols():
                self._set_state(IDLE, "no markets to stream")
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                self._session()
            except _Reconnect as why:
                self._open_gaps(str(why))
                if self.state == STALE:
                    self._close(graceful=False)  # the path is dead: no close handshake to wait for
                self._retry_later(RECONNECTING, str(why), clean=why.clean)
            except websocket.WebSocketBadStatusException as refused:
                self._open_gaps(f"HTTP {refused.status_code}")
                self._refused(refused)
            except Exception as failure:  # any socket or protocol failure: recover, never die
                if self._stopping.is_set():
                    break
                reason = (connect_failure_reason(failure, self._dialing) if self._ws is None else None) or (
                    f"{type(failure).__name__}: {failure}".rstrip(": "))
                self._open_gaps(reason)
                self._retry_later(RECONNECTING, reason)
            finally:
                self._close()
        self._set_state(STOPPED, "")
        self._ended.set()

    def _session(self) -> None:
        with self._lock:
            symbols = sorted(self._desired)
            self._ops.clear()
        self._set_state(CONNECTING, "")
        url = self._dialing = self.connect_url(symbols)
        self._ws = websocket.create_connection(url, timeout=self.connect_timeout_s, enable_multithread=True,
                                               skip_utf8_validation=True)
        self.connected_url = url
        self.geo_blocked = False
        connected_at = time.monotonic()
        self.on_connected()
        self._reconnect_asked = None
        self._streaming.clear()
        self._counted.clear()
        self._hinted.clear()
        self.book.reset()  # nothing from before the gap is merged with what this connection sends
        self._subscribed_at = dict.fromkeys(symbols, connected_at)
        for message in self.initial_messages(symbols):
            self._send(message)
        for symbol in symbols:
            self.on_market(self._market(symbol), "subscribing", "")
        self._set_state(LIVE, "")
        self._ws.settimeout(self.poll_s)
        last_frame = last_data = last_ping = last_pong = last_keepalive = last_watch = connected_at
        while not self._stopping.is_set():
            self._apply_ops()
            try:
                opcode, data = self._ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                opcode = None
            now = time.monotonic()
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                last_frame = now
                if self._handle(opcode, data):
                    last_data = now
                if self._reconnect_asked is not None:
                    reason, self._reconnect_asked = self._reconnect_asked, None
                    raise _Reconnect(f"the exchange asked for a reconnect: {reason}", clean=True)
                if self.frames % YIELD_EVERY_FRAMES == 0:
                    time.sleep(0)  # a green yield under eventlet (monkey-patched), a GIL release otherwise
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                raise _Reconnect(f"closed by the exchange{self._close_detail(data)}",
                                 clean=self._close_code(data) in CLEAN_CLOSE_CODES and last_data > connected_at)
            elif opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                if opcode == websocket.ABNF.OPCODE_PONG:
                    last_pong = now
                else:  # websocket-client has answered it at once: our pong counts toward the exchange's limit
                    self._spent(now)
                if self.pong_is_liveness:
                    last_frame = now
            # A ping is a message too: it waits its turn, and gives it to a waiting subscribe (or it could starve)
            if now - last_ping >= self.ping_every_s and now >= self._next_send_at and not self._ops:
                self._ws.ping()
                self._spent(now)
                last_ping = now
            if (self.keepalive_message and now - last_keepalive >= self.keepalive_every_s
                    and now >= self._next_send_at):  # never wait for the pace inside the read loop
                self._send(self.keepalive_message)
                last_keepalive = now
            if opcode is None or now - last_watch >= WATCH_EVERY_S:  # per interval, not per frame
                last_watch = now
                if self._attempt and now - connected_at > self.healthy_after_s:
                    self._attempt = 0  # a healthy period: the next drop starts the backoff afresh
                self._watch(now, last_frame, last_data, last_pong)

    def _watch(self, now: float, last_frame: float, last_data: float, last_pong: float) -> None:
        # A frame is proof of life; a missing pong counts only when nothing else arrives either (a busy feed whose
        # pongs are late is not stale). A dead TCP path brings neither.
        silent = now - last_frame
        if silent > self.stale_after_s:
            unanswered = ", pings unanswered" if now - last_pong > self.stale_after_s else ""
            self._set_state(STALE, f"no frame for {silent:.1f} s{unanswered}")
            raise _Reconnect(f"stale: no frame for {silent:.1f} s{unanswered}")
        elapsed = now - self._rate_sample[0]
        if elapsed >= 1.0:
            self.message_rate = (self.frames - self._rate_sample[1]) / elapsed
            self._rate_sample = (now, self.frames)
        if now - last_data > self.quiet_after_s:
            self._set_state(QUIET, f"heartbeats only, no market data for {now - last_data:.0f} s")
        elif self.state != LIVE:
            self._set_state(LIVE, "")
        for symbol, since in list(self._subscribed_at.items()):
            if symbol not in self._streaming and symbol not in self._hinted and now - since > self.no_data_hint_s:
                self._hinted.add(symbol)
                self.on_market(self._market(symbol), "waiting", self.no_data_hint)

    def _handle(self, opcode: int, data: bytes) -> bool:
        """One frame from the exchange. True when it carried market data."""
        received_ns = time.time_ns()
        received = received_ns // 1_000_000
        self.frames += 1
        self.last_frame_at = received
        if opcode == _BINARY or self.on_frame is not None:  # one test on the hot path for two rare cases
            if opcode == _BINARY:
                self._bad("binary frame", data)
                return False
            self.on_frame(self.name, self.connected_url, received_ns / 1e9, data.decode("utf-8", "replace"))
        try:
            items = self.parse(data, received)  # the parsers take bytes: no decode on the hot path
        except Exception as failure:  # a bad frame is counted, logged and skipped, never fatal
            self._bad(bad_reason(failure), data.decode("utf-8", "replace"))
            return False
        ticks = 0  # the feed's counters move once per frame, not once per tick
        for item in items:
            if type(item) is Update:
                stats = self._counted.get(item.symbol)
                if stats is not None:  # the common case: a streaming market, nothing to check but the order
                    tick = self._apply(item, received)
                    if tick is not None:  # None: older than what is shown (by the venue's sequence), counted
                        ticks += 1
                        stats.ticks += 1
                        stats.last_data_at = received
                        self.on_tick(tick)
                elif self._first_checks(item, received):
                    ticks += 1
            elif type(item) is not Heartbeat:  # a heartbeat's work is done: the frame was read
                self._event(item, received)
        if ticks:
            self.ticks += ticks
            self.last_data_at = received
            return True
        return False

    def _first_checks(self, item: Update, received: int) -> bool:
        """An Update of a market not (yet) in _counted: dropped if not subscribed, merged, the gap it closes and
        its streaming state said; True when it gave a tick. Puts the market in _counted when nothing is left to say."""
        symbol = item.symbol
        if symbol not in self._subscribed_at:
            return False  # in flight after an unsubscribe, or never asked for
        tick = self._apply(item, received)
        if tick is None:  # older than what is shown (by the venue's sequence): counted, never a tick
            return False
        stats = self.markets.get(symbol) or self._stats(symbol)
        if stats.gap_from is not None:
            missed = self.missed_while_away(symbol, item, stats.gap_reason)
            if missed is None:  # the venue's ids prove nothing was missed: no gap to show
                stats.gap_from, stats.gap_reason = None, ""
            else:
                stats.gap_reason = missed
                self._close_gap(symbol, stats, received)
        stats.ticks += 1
        stats.last_data_at = received
        if symbol not in self._streaming:
            self._streaming.add(symbol)
            self.on_market(self._market(symbol), "streaming", "")
        self._counted[symbol] = stats
        self.on_tick(tick)
        return True

    def _event(self, item, received: int) -> None:
        """A protocol event a parser returned (Subscribed, Rejected, ExchangeError, Reconnect, Gap)."""
        kind = type(item)
        if kind is Subscribed:
            for symbol in item.symbols or ():
                if symbol in self._subscribed_at and symbol not in self._streaming:
                    self.on_market(self._market(symbol), "subscribed", "")
        elif kind is Rejected:
            self._rejected(item)
        elif kind is ExchangeError:
            self._exchange_error(item.reason)
        elif kind is Reconnect:  # acted on by the read loop, once this frame's items are all handled
            self._reconnect_asked = item.reason
        elif kind is Gap:
            if item.symbol in self._subscribed_at:
                self._counted.pop(item.symbol, None)  # its next tick closes the gap
                stats = self._stats(item.symbol)
                if stats.gap_from is None:
                    stats.gap_from, stats.gap_reason = stats.last_data_at or received, item.reason

    def _stats(self, symbol: str) -> MarketStats:
        stats = self.markets.get(symbol)
        if stats is None:
            stats = self.markets[symbol] = MarketStats()
        return stats

    def _open_gaps(self, reason: str) -> None:
        """The connection is lost: every market that had data has a gap from its last tick."""
        self._counted.clear()
        for symbol in self.symbols():
            stats = self.markets.get(symbol)
            if stats is not None and stats.last_data_at is not None and stats.gap_from is None:
                stats.gap_from, stats.gap_reason = stats.last_data_at, reason

    def _close_gap(self, symbol: str, stats: MarketStats, until: int) -> None:
        """Data is back: the gap is known from its first missing moment to now."""
        stats.gaps += 1
        self.gaps += 1
        gap = {"exchange": self.name, "symbol": symbol, "from": stats.gap_from, "to": until,
               "reason": stats.gap_reason}
        stats.gap_from, stats.gap_reason = None, ""
        log.info("%s:%s gap %d ms (%s)", self.name, symbol, gap["to"] - gap["from"], gap["reason"])
        self.on_gap(gap)

    def _exchange_error(self, reason: str) -> None:
        self.last_error, self.last_error_at = reason, _now_ms()
        log.warning("%s: exchange error: %s", self.name, reason)
        self.on_state(self.status())

    def _rejected(self, item: Rejected) -> None:
        log.warning("%s: %s rejected: %s", self.name, item.symbol or "request", item.reason)
        if item.symbol is None:
            self._exchange_error(item.reason)
            return
        with self._lock:
            self._desired.discard(item.symbol)  # never re-subscribe what the exchange refused
        self._subscribed_at.pop(item.symbol, None)
        self._counted.pop(item.symbol, None)
        self.on_market(self._market(item.symbol), "error", item.reason)

    def _bad(self, reason: str, frame) -> None:
        self.bad_frames += 1
        seen = self.bad_by_reason.get(reason, 0)
        self.bad_by_reason[reason] = seen + 1
        self.last_bad_reason = str(reason)[:200]
        snippet = frame if isinstance(frame, str) else repr(frame[:BAD_FRAME_SNIPPET])
        self.last_bad_frame = snippet[:BAD_FRAME_SNIPPET]
        if not seen:  # logged once per kind (a new kind is never hidden behind a flood of another): counted after
            log.warning("%s: bad frame #%d skipped: %s (the first of this kind; the feed's details count them)",
                        self.name, self.bad_frames, self.last_bad_reason)

    def _apply_ops(self) -> None:
        if time.monotonic() < self._next_send_at:
            return  # not yet allowed to send: the ops wait, the socket goes on being read
        with self._lock:
            if not self._ops:
                return
            ops, self._ops = list(self._ops), deque()
        final = {symbol: op for op, symbol in ops}  # a market closed and added again: its last op counts
        self._counted.clear()  # (the dashboard may have dropped a closed market's stats meanwhile)
        subscribe = [symbol for symbol, op in final.items() if op == "subscribe" and symbol not in self._subscribed_at]
        unsubscribe = [symbol for symbol, op in final.items() if op == "unsubscribe" and symbol in self._subscribed_at]
        now = time.monotonic()
        for symbol, op in final.items():
            if op == "subscribe" and symbol in self._subscribed_at and symbol not in self._streaming:
                self._subscribed_at[symbol] = now  # still subscribed: its explanation is due again in time
                self._hinted.discard(symbol)
        if unsubscribe:  # first: a market closed makes room for one added (an exchange's stream limit)
            for message in self.unsubscribe_messages(unsubscribe):
                self._send(message)
            for symbol in unsubscribe:
                self._subscribed_at.pop(symbol, None)
                self._streaming.discard(symbol)
                self._hinted.discard(symbol)
                self.book.forget(symbol)
        if subscribe:
            for message in self.subscribe_messages(subscribe):
                self._send(message)
            for symbol in subscribe:
                self._subscribed_at[symbol] = now
                self._hinted.discard(symbol)  # a market closed and added again is explained again

    def _send(self, message: str) -> None:
        """Send, paced to the exchange's limit on client messages (Binance drops a client that sends > 5/s)."""
        wait = self._next_send_at - time.monotonic()
        if wait > 0:
            self._stopping.wait(wait)
        self._ws.send(message)
        self._spent(time.monotonic())

    def _spent(self, now: float) -> None:
        """One message of ours went out at `now` (monotonic s): a text, our ping, or the pong answering the
        exchange's ping (Binance counts all three in its 5 a second). The next may go one interval
        (1 / max_messages_per_s) after it, or after the turn already booked, whichever is later: a pong, sent at
        once, pushes the next text message back by a turn."""
        self._next_send_at = max(self._next_send_at, now) + 1.0 / self.max_messages_per_s

    def _refused(self, refused: websocket.WebSocketBadStatusException) -> None:
        """The exchange answered the upgrade with an HTTP error."""
        code = refused.status_code
        if code in (451, 403):
            self.geo_blocked = True
            from . import EXCHANGES  # late: the registry imports this module
            alternative = EXCHANGES[self.geo_alternative].label if self.geo_alternative in EXCHANGES else ""
            hint = f"; {alternative} may serve you instead" if alternative else ""
            self._retry_later(ERROR, f"HTTP {code}: this venue blocks connections from this region{hint}",
                              at_least_s=300)
        elif code == 429:
            headers = {key.lower(): value for key, value in (refused.resp_headers or {}).items()}
            retry_after = str(headers.get("retry-after", ""))
            wait = float(retry_after) if retry_after.isdigit() else 60.0
            self._retry_later(ERROR, f"HTTP 429: rate limited, retry after {wait:.0f} s", at_least_s=wait)
        else:
            self._retry_later(ERROR, f"HTTP {code} on connect")

    def _retry_later(self, state: str, reason: str, at_least_s: float = 0.0, clean: bool = False) -> None:
        """Wait before the next attempt; the feed shows `state`, `reason` and when it will try again. A clean
        reconnect waits a short jitter only, and leaves the backoff where it was."""
        if self._stopping.is_set():
            return
        delay = random.uniform(0, self.backoff_base_s) if clean else max(at_least_s, self.next_backoff_s())
        self.reconnects += 1
        self.next_attempt_at = _now_ms() + int(delay * 1000)
        self._set_state(state, reason, f"; next attempt in {delay:.1f} s")
        self._stopping.wait(delay)
        self.next_attempt_at = None

    def next_backoff_s(self) -> float:
        """Exponential backoff with full jitter, capped; never gives up. Reset after a healthy period."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return random.uniform(0, ceiling)

    def _close(self, graceful: bool = True) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close(timeout=1) if graceful else ws.shutdown()
            except Exception:  # already broken: nothing more to release
                pass

    @staticmethod
    def _close_code(data: bytes) -> Optional[int]:
        """A close frame's status code, or None when it carries none."""
        return int.from_bytes(data[:2], "big") if len(data) >= 2 else None

    @classmethod
    def _close_detail(cls, data: bytes) -> str:
        code = cls._close_code(data)
        if code is None:
            return ""
        text = data[2:].decode("utf-8", "replace")
        return f" (code {code}{': ' + text if text else ''})"

    def _set_state(self, state: str, reason: str, note: str = "") -> None:
        if state == self.state and reason == self.reason:
            return
        if state != self.state:  # one log line per state change, never one per frame
            log.info("%s: %s%s%s", self.name, state, f" ({reason})" if reason else "", note)
            self.state_since = _now_ms()
            if state in (STALE, ERROR) or (state == RECONNECTING and self.state != STALE):  # keep the cause
                self.last_incident = {"state": state, "reason": reason, "at": self.state_since}
        self.state, self.reason = state, reason
        self.on_state(self.status())

    def _market(self, symbol: str) -> str:
        return f"{self.name}:{symbol}"
