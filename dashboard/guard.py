"""The Engine.IO / Socket.IO transport, hardened against hostile clients.

Flask-SocketIO 5.7.0, python-socketio 5.18.1, python-engineio 4.15.1 and eventlet 0.41.3 (simple-websocket 1.1.0
in the threading mode) are wrapped and configured here, never edited; each fault is stopped where it enters:

- HTTP (a WSGI middleware in front of Engine.IO): a long-polling POST over the size limit is answered 413 before
  Engine.IO sees it. Engine.IO itself would call Server.disconnect(), whose Socket.close() waits (queue.join) for
  a GET that will never come: no reply, and the connection and its thread held forever. A POST whose packets are
  not Engine.IO packets is answered 400 (Engine.IO would log a traceback for each). Nothing that escapes
  Engine.IO reaches the client as a traceback (eventlet.wsgi writes one into the socket by default).
- WebSocket (the transport class Engine.IO builds per connection): a message's size is counted while its frames
  arrive (eventlet checks each frame but buffers any number of continuation frames; simple-websocket is given its
  max_message_size); a message that is not an Engine.IO packet ("", "x") closes the websocket with 1002 instead
  of raising out of Engine.IO's handler; eventlet's unmasking (pure Python, one bytes object per byte: 60 ms per
  15 KB frame with every other client waiting) is replaced by an int XOR.
- Socket.IO (Engine.IO's "message" handler, run in the connection's own reader): every packet counts toward the
  client's flood limit; binary packets (attachments) are refused; a packet Socket.IO cannot decode is dropped and
  logged once per client per interval.

A client is cut off without ever blocking the thread that noticed: Engine.IO's Socket.close(wait=False) (its
close() waits for the client to read what is queued, forever for a long-polling client that never polls again).
"""
from __future__ import annotations

import contextlib
import io
import logging
import socket as socket_module
import threading
import time
import urllib.parse
from collections import Counter, OrderedDict

from engineio.payload import Payload
from prometheus_client.core import CounterMetricFamily

from .limits import EventRateLimit

log = logging.getLogger(__name__)

LOG_INTERVAL_S = 10.0  # one line per kind of bad input per client per interval, with the count it stands for
MAX_LOG_KEYS = 10_000  # clients (or addresses) whose last log line is remembered, oldest forgotten first
CUT_GRACE_S = 2.0      # a long-polling client cut off is closed this long after (its next poll gets the reason)
FLOOD_BURSTS = 5       # the flood limit's burst: this many of SUBSCRIBE_RATE's bursts (see harden)
EIO_CLIENT_TYPES = "123456"  # Engine.IO packet types a client sends (0, "open", is the server's)
POLLING_TYPES = "1345b"      # ... of those, the ones Engine.IO handles in a POST ("b": a base64 binary message)


class BadInput:
    """Counts refused client input by kind, and logs it at most once per (client, kind) per LOG_INTERVAL_S.
    A client is its address: one that reconnects is still the same client (behind a proxy, all of them are)."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S):
        self.interval_s = interval_s
        self.counts: Counter = Counter()  # kind -> refused since start (the metric)
        self._last: OrderedDict = OrderedDict()  # (client, kind) -> (monotonic time logged, count not logged)
        self._lock = threading.Lock()

    def note(self, client: str, kind: str, detail: str = "") -> None:
        """`client`: its address; `detail`: what the line says beyond the kind (the session id, what was sent)."""
        now = time.monotonic()
        with self._lock:
            self.counts[kind] += 1
            logged, unlogged = self._last.get((client, kind), (None, 0))
            if logged is not None and now - logged < self.interval_s:
                self._last[(client, kind)] = (logged, unlogged + 1)
                return
            self._last[(client, kind)] = (now, 0)
            self._last.move_to_end((client, kind))
            while len(self._last) > MAX_LOG_KEYS:
                self._last.popitem(last=False)
        more = f" (and {unlogged} more in the last {self.interval_s:g} s)" if unlogged else ""
        log.warning("client %s: %s%s%s", client, kind, f": {detail}" if detail else "", more)

    def collect(self):
        """Prometheus: dashboard_refused_client_input_total{kind}."""
        family = CounterMetricFamily("dashboard_refused_client_input", "Client input refused or dropped, by kind",
                                     labels=["kind"])
        with self._lock:
            for kind, count in sorted(self.counts.items()):
                family.add_metric([kind], count)
        yield family


def engineio_packet_ok(text: str, types: str = EIO_CLIENT_TYPES) -> bool:
    """Whether a text Engine.IO packet starts with a type a client may send (Engine.IO raises on "" and "x")."""
    return bool(text) and text[0] in types


class Guard:
    """Per-client state of the transport's limits. `limit`: the flood limit, counted for every Socket.IO packet."""

    def __init__(self, socketio, limit: EventRateLimit, max_bytes: int, path: str = "/socket.io/"):
        self.socketio, self.limit, self.max_bytes, self.path = socketio, limit, max_bytes, path
        self.server = socketio.server  # python-socketio
        self.eio = socketio.server.eio  # python-engineio
        self.bad = BadInput()
        self._cut: set = set()  # Engine.IO sessions cut off, until they are closed

    # --- cutting a client off --------------------------------------------------------------------------------
    def cut(self, eio_sid: str, message: str) -> None:
        """Tell the client why (an "error" event, if it is connected to Socket.IO), then close its connection
        without waiting for it to read anything."""
        sid = self.server.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            try:
                self.server.emit("error", {"ok": False, "message": message}, to=sid, namespace="/",
                                 ignore_queue=True)
                # sends Socket.IO's DISCONNECT (a well-behaved client does not reconnect) and runs our handler
                self.server.disconnect(sid, namespace="/", ignore_queue=True)
            except Exception as error:  # the connection is closed below whatever went wrong here
                self.bad.note(self.address(eio_sid), "disconnect failed", f"{eio_sid}: {error!r}")
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return
        self._cut.add(eio_sid)
        if socket.upgraded:  # websocket: its writer sends what is queued, then closes the connection
            socket.close(wait=False, abort=False, reason=self.eio.reason.SERVER_DISCONNECT)
        else:  # long-polling: a closed session answers no more polls, so its next poll gets the reason first
            self.socketio.start_background_task(self._close_later, socket)

    def _close_later(self, socket) -> None:
        self.socketio.sleep(CUT_GRACE_S)
        if not socket.closed:
            socket.close(wait=False, abort=False, reason=self.eio.reason.SERVER_DISCONNECT)

    def address(self, eio_sid: str) -> str:
        return self.server.environ.get(eio_sid, {}).get("REMOTE_ADDR", "?")

    def _gone(self, eio_sid: str) -> bool:
        socket = self.eio.sockets.get(eio_sid)
        return eio_sid in self._cut or socket is None or socket.closed or socket.closing

    # --- Socket.IO packets --------------------------------------------------------------------------------------
    def wrap_messages(self) -> None:
        """Put the checks in front of python-socketio's Engine.IO "message" and "disconnect" handlers."""
        handle, disconnected = self.eio.handlers["message"], self.eio.handlers["disconnect"]

        def message(eio_sid, data):
            if self._gone(eio_sid):  # cut off: what it sent before the socket closed is dropped
                return
            if not self.limit.allow(eio_sid):
                self.bad.note(self.address(eio_sid), "flood", f"{eio_sid}: more than {self.limit.burst} packets "
                                                              f"at once, {self.limit.rate:g} a second after that")
                return self.cut(eio_sid, f"too many events: at most {self.limit.rate:g} a second; disconnected")
            if isinstance(data, (bytes, bytearray)) or data[:1] in ("5", "6"):
                self.bad.note(self.address(eio_sid), "binary packet", eio_sid)  # the page sends none
                return self.cut(eio_sid, "binary packets are not accepted; disconnected")
            try:
                handle(eio_sid, data)
            except Exception as error:  # a packet Socket.IO cannot decode: dropped, the client stays
                self.bad.note(self.address(eio_sid), "malformed packet",
                              f"{eio_sid}: {type(error).__name__}: {str(error)[:80]}")
                sid = self.server.manager.sid_from_eio_sid(eio_sid, "/")
                if sid is not None:
                    self.server.emit("error", {"ok": False, "message": "malformed Socket.IO packet, ignored"},
                                     to=sid, namespace="/", ignore_queue=True)

        def disconnect(eio_sid, *args):
            self.limit.forget(eio_sid)
            self._cut.discard(eio_sid)
            return disconnected(eio_sid, *args)

        self.eio.on("message", message)
        self.eio.on("disconnect", disconnect)

    # --- WebSocket ------------------------------------------------------------------------------------------------
    def wrap_websocket(self) -> None:
        """Give this Engine.IO server its own websocket class (its _async table is the driver module's dict,
        shared: it is copied, not changed)."""
        guard = self
        if self.eio.async_mode == "eventlet":
            from engineio.async_drivers.eventlet import WebSocketWSGI
            from eventlet.websocket import FailedConnectionError, RFC6455WebSocket

            class CappedMessage(RFC6455WebSocket.Message):
                """A message whose size is checked as its frames arrive (eventlet checks each frame only)."""
                size = 0

                def push(self, data, final=False):
                    self.size += len(data)
                    if self.size > self.max_frame_length:
                        raise FailedConnectionError(1009, "message too big")
                    super().push(data, final)

            class Transport(WebSocketWSGI):
                def __init__(self, handler, server):
                    super().__init__(lambda ws: handler(_Checked(guard, ws, _close_eventlet, handler)), server)

                def _handle_hybi_request(self, environ):
                    ws = super()._handle_hybi_request(environ)
                    ws.Message = CappedMessage  # looked up on the instance for each new message
                    ws._apply_mask = _unmask  # eventlet's own takes 60 ms per 15 KB frame, the hub blocked
                    return ws
        elif self.eio.async_mode == "threading":
            from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

            class Transport(SimpleWebSocketWSGI):
                def __init__(self, handler, server):
                    super().__init__(lambda ws: handler(_Checked(guard, ws, _close_simple, handler)), server,
                                     max_message_size=server.max_http_buffer_size)

                def __call__(self, environ, start_response):
                    # Werkzeug would go on reading this keep-alive connection as HTTP once the websocket ended:
                    # what the client still sends (frames) would be logged as a bad request line. It is shut down
                    # through a duplicate: simple-websocket may have closed its own socket object by then.
                    sock = environ.get("werkzeug.socket")
                    peer = sock.dup() if sock is not None else None
                    try:
                        return super().__call__(environ, start_response)
                    finally:
                        if peer is not None:
                            _drain(peer)
        else:
            raise ValueError(f"no websocket guard for async mode {self.eio.async_mode!r}")
        self.eio._async = {**self.eio._async, "websocket": Transport}

    # --- HTTP -----------------------------------------------------------------------------------------------------
    def middleware(self, app):
        """A WSGI middleware in front of Flask-SocketIO's: long-polling POSTs checked before Engine.IO reads them,
        and nothing internal sent back if Engine.IO fails."""
        def guarded(environ, start_response):
            if not environ.get("PATH_INFO", "").startswith(self.path):
                return app(environ, start_response)
            if environ.get("REQUEST_METHOD") == "POST":
                refused = self._check_post(environ)
                if refused:
                    status, text = refused
                    body = text.encode()
                    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
                    if "eventlet.input" not in environ:  # Werkzeug closes on it; eventlet reads and drops the body
                        headers.append(("Connection", "close"))
                    start_response(status, headers)
                    return [body]
            try:
                return app(environ, start_response)
            except ConnectionError:  # simple-websocket's way to tell Werkzeug the socket is its own now
                raise
            except Exception as error:
                self.bad.note(environ.get("REMOTE_ADDR", "?"), "Engine.IO request failed",
                              f"{type(error).__name__}: {str(error)[:80]}")
                if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                    return _abandon(environ)
                body = b"internal error"
                start_response("500 Internal Server Error", [("Content-Type", "text/plain"),
                                                             ("Content-Length", str(len(body)))])
                return [body]
        return guarded

    def _check_post(self, environ):
        """None for a POST Engine.IO may read, else (status, text); the session it names is closed."""
        client = environ.get("REMOTE_ADDR", "?")
        sid = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("sid", [None])[0]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.max_bytes or (not length and environ.get("HTTP_TRANSFER_ENCODING")):
            self.bad.note(client, "oversized POST", f"Content-Length {environ.get('CONTENT_LENGTH')!r}, "
                                                    f"at most {self.max_bytes} bytes")
            self._close_session(sid)
            return "413 Payload Too Large", f"at most {self.max_bytes} bytes a request"
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # what Engine.IO reads: the bytes checked here
        try:
            packets = body.decode("utf-8").split("\x1e")
        except UnicodeDecodeError:
            packets = [""]
        if length and not all(engineio_packet_ok(packet, POLLING_TYPES) for packet in packets):
            self.bad.note(client, "bad Engine.IO packet", f"{sid}: {body[:20]!r}")
            self._close_session(sid)
            return "400 Bad Request", "not Engine.IO packets"
        if len(packets) > Payload.max_decode_packets:  # Engine.IO would raise (and log a traceback)
            self.bad.note(client, "flood", f"{sid}: {len(packets)} packets in one request")
            self._close_session(sid, f"too many events: at most {self.limit.burst} at once; disconnected")
            return "400 Bad Request", "too many packets in one request"
        return None

    def _close_session(self, sid, message: str = "bad request; disconnected") -> None:
        if sid and sid in self.eio.sockets:
            self.cut(sid, message)


class _Checked:
    """The websocket Engine.IO's handler reads: a message that is not an Engine.IO packet closes the connection
    (1002) and reads as the end of the connection."""

    def __init__(self, guard: Guard, ws, close, handler):
        self._guard, self._ws, self._close = guard, ws, close
        self._session = getattr(handler, "__self__", None)  # the handler is Engine.IO's Socket's
        self._sid = getattr(self._session, "sid", "?")

    def wait(self):
        if self._session is not None and (self._session.closed or self._session.closing):
            return None  # cut off: not one more frame read (eventlet would read, unmask and drop all it sent)
        data = self._ws.wait()
        if isinstance(data, str) and not engineio_packet_ok(data):
            self._guard.bad.note(self._guard.address(self._sid), "bad Engine.IO packet", f"{self._sid}: {data[:20]!r}")
            self._close(self._ws, 1002, "not an Engine.IO packet")
            return None
        return data

    def __getattr__(self, name):  # send, close, the socket Engine.IO sets a timeout on
        return getattr(self._ws, name)


def _unmask(data: bytes, mask, length=None, offset=0) -> bytes:
    """eventlet's RFC6455WebSocket._apply_mask, at C speed: XOR with the 4-byte mask started at `offset`
    (eventlet 0.41.3 builds one bytes object per byte in Python)."""
    length = len(data) if length is None else length
    key = bytes(mask[(offset + i) % 4] for i in range(4)) * (length // 4 + 1)
    return (int.from_bytes(data[:length], "big") ^ int.from_bytes(key[:length], "big")).to_bytes(length, "big")


def _close_eventlet(ws, code: int, reason: str) -> None:
    ws.close(close_data=(code, reason))


def _close_simple(ws, code: int, reason: str) -> None:
    if ws.ws.connected:
        ws.ws.close(reason=code, message=reason)


def _drain(sock, limit: int = 64) -> None:
    """Shut a connection down and drop what it had received but nobody read (Linux still reads it after
    SHUT_RD), so that a reader sharing it sees the end at once."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket_module.SHUT_RDWR)
        sock.settimeout(0.1)
        for _ in range(limit):  # at most limit x 64 KB: the kernel's receive buffer holds less
            if not sock.recv(65536):
                break
    sock.close()


def _abandon(environ):
    """End a websocket request whose handshake may be sent already, writing nothing more into its socket."""
    if "eventlet.input" in environ:
        import eventlet.wsgi
        eventlet.wsgi.WSGI_LOCAL.already_handled = True  # eventlet then closes it and writes nothing
    elif "werkzeug.socket" in environ:
        raise ConnectionError()  # Werkzeug drops the connection quietly
    return []


def harden(app, socketio, settings, max_bytes: int) -> Guard:
    """Install the guard on a Flask-SocketIO server (before it serves). The flood limit: SUBSCRIBE_RATE packets a
    second, in bursts of FLOOD_BURSTS times its burst or twice MAX_MARKETS_PER_CLIENT (a page re-subscribing all
    its panels), whichever is more."""
    burst = max(FLOOD_BURSTS * settings.subscribe_burst, 2 * settings.max_markets_per_client)
    # Engine.IO refuses a POST of more than 16 packets (with a traceback logged: python-engineio issue #142); a
    # page on long-polling may send a burst of subscribes in one, and the flood limit bounds what follows.
    Payload.max_decode_packets = max(Payload.max_decode_packets, burst)
    guard = Guard(socketio, EventRateLimit(settings.subscribe_rate, burst), max_bytes)
    guard.wrap_messages()
    guard.wrap_websocket()
    app.wsgi_app = guard.middleware(app.wsgi_app)
    return guard
