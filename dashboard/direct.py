"""Direct websocket writes: a watch-set's packet written once-encoded straight to each upgraded client's socket.

The fan-out's packet is the same for every member of a watch-set, and a server's websocket frames are unmasked
(RFC 6455 §5.1), so the frame's bytes are the same too: `text_frame` builds them once per watch-set per interval
and `DirectWrites.write` hands them to one client's socket with one non-blocking `send`. The normal path
(python-engineio queues the packet, that client's writer green thread wakes, frames it and sends it: two green
thread switches and one framing per client per packet) stays for everything else: clients on long-polling or
mid-upgrade, a client with packets already queued or a send in progress (its order is kept: what is queued goes
first), a full socket (the packet is queued, and conflation.py takes over if the client stays behind), and every
other event (acks, backfill, error).

Eventlet only (ASYNC_MODE=eventlet, the default); under threading `install` returns None and all goes the normal
way. Built on internals of python-engineio 4.15.1 (engineio.socket.Socket: `_websocket_handler`, `queue`,
`upgraded`, `upgrading`, `closing`, `closed`; its eventlet driver's `_async["websocket"]` class) and eventlet
0.41.3 (eventlet.websocket.RFC6455WebSocket: `socket`, `_send`, `_sendlock`; a GreenSocket whose `fd` is the
non-blocking OS socket). `install` checks them and, if one is missing, logs it once and leaves the direct path
off; tests/test_fanout_direct.py fails loudly if they change.

Why the order holds: under eventlet a client's writer green thread only gives up the CPU while waiting on its
queue (idle) or inside `sendall` holding `_sendlock` (mid-send). So "queue empty and `_sendlock` free" means the
writer is idle, and a frame written then lands between whole frames. If the kernel takes part of a frame, the rest
is queued (a `_Tail`) ahead of anything later, and the writer sends it as raw bytes (`_Writer.send`).
"""
from __future__ import annotations

import logging
import ssl
import struct
from typing import Optional

log = logging.getLogger(__name__)


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final websocket text frame (RFC 6455 §5.2) holding `payload` (UTF-8 bytes)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class _Raw(bytes):
    """Bytes already framed: `_Writer.send` writes them as they are."""


class _Tail:
    """The unsent rest of a directly written frame, queued for the writer green thread like an Engine.IO packet
    (the writer only calls `encode()`)."""
    __slots__ = ("rest",)

    def __init__(self, rest: bytes):
        self.rest = _Raw(rest)

    def encode(self, b64: bool = False) -> bytes:
        return self.rest


class _Writer:
    """What engine.io's websocket handler is given instead of eventlet's websocket: the same, but a `_Raw` (a
    `_Tail` from the queue) is written unframed, under the websocket's own send lock."""

    def __init__(self, ws):
        self._ws = ws

    def __getattr__(self, name):
        return getattr(self._ws, name)

    def send(self, message, **kw):
        if type(message) is _Raw:
            self._ws._send(message)
        else:
            self._ws.send(message, **kw)


def _missing(server) -> Optional[str]:
    """What the direct path needs of the installed libraries and is not there (None: all there)."""
    try:
        from engineio.socket import Socket
        from eventlet.websocket import RFC6455WebSocket, WebSocketWSGI
        from eventlet.greenio import GreenSocket
    except ImportError as error:
        return f"import: {error}"
    if not hasattr(Socket, "_websocket_handler"):
        return "engineio.socket.Socket._websocket_handler"
    websocket = getattr(server.eio, "_async", {}).get("websocket")
    if not (isinstance(websocket, type) and issubclass(websocket, WebSocketWSGI)):
        return "engineio's eventlet driver _async['websocket'] (an eventlet WebSocketWSGI)"
    for name in ("_send", "_pack_message", "send"):
        if not callable(getattr(RFC6455WebSocket, name, None)):
            return f"eventlet.websocket.RFC6455WebSocket.{name}"
    if not hasattr(GreenSocket, "fd"):
        return "eventlet.greenio.GreenSocket.fd"
    return None


class DirectWrites:
    """The upgraded websocket clients of one python-socketio Server (eventlet), and the direct write to one."""

    def __init__(self):
        self._conns: dict[str, tuple] = {}  # eio sid -> (engine.io Socket, eventlet websocket, OS socket)
        self.writes = 0     # frames written directly (whole, or begun with the rest queued)
        self.partial = 0    # ... of which the kernel took only a part

    def connected(self) -> int:
        return len(self._conns)

    def _websocket_class(self, base):
        registry = self._conns

        class WebSocketWSGI(base):
            """engine.io's eventlet websocket app (or what wraps it, guard.py's), noting each client's websocket for
            the direct path while its connection lasts. The handler is passed on untouched (guard.py reads the
            engine.io Socket from it)."""

            def __init__(self, handler, server):
                super().__init__(handler, server)
                self._session = getattr(handler, "__self__", None)  # engine.io's Socket: the handler is its method
                self._noted = None

            def _handle_hybi_request(self, environ):
                ws = super()._handle_hybi_request(environ)
                conn = _usable(self._session, ws)
                if conn is None:
                    return ws
                self._noted = self._session.sid
                registry[self._noted] = conn
                return _Writer(ws)

            def __call__(self, environ, start_response):
                try:
                    return super().__call__(environ, start_response)  # the whole connection
                finally:
                    if self._noted is not None:
                        registry.pop(self._noted, None)

        return WebSocketWSGI

    def write(self, eio_sid: str, frame: bytes) -> bool:
        """Write `frame` (`text_frame`) to client `eio_sid` now, if it is on the websocket with nothing queued and
        no send in progress; False if it was not written (send it the normal way)."""
        conn = self._conns.get(eio_sid)
        if conn is None:
            return False
        eio_socket, ws, fd = conn
        if (not eio_socket.upgraded or eio_socket.upgrading or eio_socket.closing or eio_socket.closed
                or eio_socket.queue.qsize() or ws._sendlock.locked()):
            return False
        try:
            sent = fd.send(frame)
        except OSError:  # full (BlockingIOError) or gone: the normal path queues it, and sees a closed socket
            return False
        if sent < len(frame):
            eio_socket.queue.put(_Tail(frame[sent:]))
            self.partial += 1
        self.writes += 1
        return True


_warned = set()


def _usable(eio_socket, ws) -> Optional[tuple]:
    """(engine.io Socket, websocket, OS socket) if the direct path can write to this client: an RFC 6455
    websocket over plain TCP (a TLS socket must retry a write with the same bytes: left to eventlet)."""
    missing = [name for owner, name in ((eio_socket, "sid"), (eio_socket, "queue"), (eio_socket, "upgraded"),
                                        (eio_socket, "upgrading"), (ws, "_sendlock"), (ws, "socket"))
               if not hasattr(owner, name)]
    if missing:
        if not _warned:  # once: every client would say the same
            _warned.add(True)
            log.warning("direct websocket writes off: %s missing (as in python-engineio 4.15.1 / eventlet 0.41.3)",
                        ", ".join(missing))
        return None
    fd = getattr(getattr(ws, "socket", None), "fd", None)  # under eventlet's monkey patching, the original socket
    if (fd is None or isinstance(fd, ssl.SSLSocket) or isinstance(ws.socket, ssl.SSLSocket) or not hasattr(fd, "gettimeout") or fd.gettimeout() != 0.0
            or getattr(ws, "version", None) not in (8, 13)):
        return None
    return eio_socket, ws, fd


def install(server) -> Optional[DirectWrites]:
    """Direct writes for the clients of python-socketio Server `server`, if it runs under eventlet and the
    libraries have what it needs (else None, logged once: all goes the normal way). Call before clients connect."""
    if getattr(getattr(server, "eio", None), "async_mode", None) != "eventlet":
        return None
    missing = _missing(server)
    if missing is not None:
        log.warning("direct websocket writes off: %s is not as in python-engineio 4.15.1 / eventlet 0.41.3", missing)
        return None
    direct = DirectWrites()
    # a copy: the driver's dict is shared by every engine.io server of the process
    server.eio._async = {**server.eio._async, "websocket": direct._websocket_class(server.eio._async["websocket"])}
    return direct
