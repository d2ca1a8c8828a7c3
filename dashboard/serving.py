"""The listening socket: the open-file limit, how many connections are served, how long a request may take to
arrive, and which Host names are answered. Both async modes: eventlet.wsgi (eventlet 0.41.3) and Werkzeug's
threaded server (Werkzeug 3.1.9), configured and subclassed here, never edited.

- Open files: the soft RLIMIT_NOFILE is raised to the hard one at start. Client connections stop at
  MAX_CONNECTIONS (default: that limit less a reserve for the process's own files); one more is answered 503 and
  closed. Should accept() still fail with EMFILE/ENFILE (eventlet.wsgi.server lets that escape its loop and the
  process exits), a spare descriptor is given up to accept the waiting connection and close it, and serving goes on.
- Slow requests: a connection has HEADER_TIMEOUT_S to send its request line and headers (and no longer to sit
  idle between keep-alive requests); at most MAX_PENDING_HEADERS connections wait so at once, and a new one over
  that closes the one waiting longest. eventlet.wsgi would otherwise give each slow client one of its 1,024 green
  threads for as long as it likes, and with all of them taken it accepts nobody (not even /healthz).
- Host: a request whose Host header names a host not in ALLOWED_HOSTS gets 400 before Flask or Engine.IO see it,
  so a page of another site whose name was rebound to this address (DNS rebinding) gets nothing: its Origin
  matches its own Host, so the same-origin check alone lets it through.
"""
from __future__ import annotations

import errno
import logging
import os
import resource
import socket
import threading
import time

log = logging.getLogger(__name__)

OUT_OF_FILES = {errno.EMFILE, errno.ENFILE}
OUT_OF_MEMORY = {errno.ENOBUFS, errno.ENOMEM}
# What accept() may report about a connection that went away before it was accepted (accept(2), "Error
# handling"): nothing wrong with the listening socket, so the next one is accepted. eventlet.wsgi.server stops
# serving on some of these (EPIPE, ECONNRESET ...: `break`) and dies on the others.
GONE_BEFORE_ACCEPT = {errno.ECONNABORTED, errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ESHUTDOWN,
                      errno.EPROTO, errno.ENETDOWN, errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.ENONET,
                      errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH, errno.EPERM, errno.EINTR,
                      errno.EAGAIN}
BACKLOG = 1024  # connections the kernel holds until accepted (eventlet's default 50, Werkzeug's 128: a burst
                # of browsers, or of attackers being shed, would have its SYNs dropped and retried a second later)
PAUSE_S = 0.1  # accepting stops this long when the process cannot take a connection at all
LOG_INTERVAL_S = 10.0
BUSY_TEXT = b"server at its connection limit\n"
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nRetry-After: 5\r\n"
        b"Connection: close\r\n\r\n%s" % (len(BUSY_TEXT), BUSY_TEXT))
UNKNOWN_HOST = b"Bad Request: this server is not reached by that name (ALLOWED_HOSTS)\n"


class Occasional:
    """Logs each kind of event at most once per `interval_s`, saying how many there were since its last line."""

    def __init__(self, logger: logging.Logger, interval_s: float = LOG_INTERVAL_S):
        self.logger, self.interval_s = logger, interval_s
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str, message: str, *args, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        with self._lock:
            count = self._count.get(kind, 0) + 1
            if now - self._last.get(kind, -self.interval_s) < self.interval_s:
                self._count[kind] = count
                return
            first = kind not in self._last
            self._last[kind], self._count[kind] = now, 0
        if first:
            self.logger.log(level, message + " (said at most once per %g s)", *args, self.interval_s)
        else:
            self.logger.log(level, message + " (%d times since the last such line)", *args, count)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit if they differ; log both; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.info("open files: raised the soft limit from %s to the hard limit %s", soft, hard)
            return hard
        except (ValueError, OSError) as refused:  # a hard limit of "unlimited" some systems do not take
            log.warning("open files: soft limit %s, hard limit %s, not raised (%s)", soft, hard, refused)
            return soft
    log.info("open files: soft limit %s = hard limit", soft)
    return soft


def connection_cap(configured: int, open_files: int) -> int:
    """MAX_CONNECTIONS, or with 0 the open-file limit less a reserve for the process's own files (exchange
    connections, the history, Redis, logs): 32, or 5 % of a large limit."""
    if configured > 0:
        return configured
    if open_files == resource.RLIM_INFINITY or open_files < 0:  # "unlimited" (not on Linux): a large number
        open_files = 65536
    return max(1, open_files - max(32, open_files // 20))


def refuse(connection) -> None:
    """Answer 503 without waiting (the client may read it or not), and close."""
    try:
        connection.setblocking(False)
        connection.send(BUSY)
    except OSError:
        pass
    try:
        connection.close()
    except OSError:
        pass


class Spare:
    """One file descriptor held back: at the open-file limit it is given up to accept a waiting connection, only to
    refuse it, so a connection the process cannot take is closed at once instead of left in the backlog (where
    it would make every accept() fail again)."""

    def __init__(self):
        self.fd = self._open()

    @staticmethod
    def _open():
        try:
            return os.open(os.devnull, os.O_RDONLY)
        except OSError:
            return None

    def refuse_one(self, listening: socket.socket) -> str:
        """Accept one waiting connection with the spare descriptor and refuse it: "refused"; "none waiting" (Linux
        fails accept() with EMFILE before it looks for a connection: the caller waits for one); "no spare" (the
        caller pauses). `listening` is the plain socket."""
        if self.fd is None:
            self.fd = self._open()
            return "no spare"
        os.close(self.fd)
        try:
            connection, _ = listening.accept()
        except OSError:
            return "none waiting"
        else:
            refuse(connection)
            return "refused"
        finally:
            self.fd = self._open()


class HeaderDeadlines:
    """Connections waiting on their request (line and headers): each for at most `timeout_s`, at most `limit` at
    once. A connection over either is marked expired and shut down, so its reader sees the end of the stream.
    Marking and done() share a lock: a request is either served or expired, never both.

    Deadlines are registration time + one constant, so the registry's insertion order is their order: the watch
    task only ever looks at its first entries."""

    def __init__(self, timeout_s: float, limit: int):
        self.timeout_s, self.limit = timeout_s, limit
        self._waiting: dict = {}  # handler -> deadline (time.monotonic)
        self._lock = threading.Lock()
        self.expired = 0   # counters, for tests and /metrics-minded readers
        self.evicted = 0
        self._log = Occasional(log)

    def start(self, handler) -> None:
        with self._lock:
            handler.request_expired = False
            self._waiting[handler] = time.monotonic() + self.timeout_s
            oldest = next(iter(self._waiting)) if len(self._waiting) > self.limit else None
            if oldest is not None:
                del self._waiting[oldest]
                oldest.request_expired = True
                self.evicted += 1
        if oldest is not None:
            self._shut(oldest)
            self._log("evicted", "closed a connection waiting on its request: more than %d waiting", self.limit)

    def done(self, handler) -> bool:
        """Stop timing `handler`; True if its time had run out (its request must not be served)."""
        with self._lock:
            self._waiting.pop(handler, None)
            return handler.request_expired

    def watch(self, sleep) -> None:
        """Expire what is overdue, then sleep until the next deadline; forever (a background task)."""
        while True:
            now = time.monotonic()
            overdue = []
            with self._lock:
                for handler, deadline in self._waiting.items():
                    if deadline > now:
                        break
                    overdue.append(handler)
                for handler in overdue:
                    del self._waiting[handler]
                    handler.request_expired = True
                following = next(iter(self._waiting.values()), now + self.timeout_s)
            for handler in overdue:
                self._shut(handler)
            if overdue:
                self.expired += len(overdue)
                # INFO: a browser opens a spare connection it may never use (Chromium, at every page load); a
                # flood of them is the "evicted" WARNING above
                self._log("expired", "closed %d connection(s) that sent no complete request within %g s",
                          len(overdue), self.timeout_s, level=logging.INFO)
            sleep(max(0.01, following - time.monotonic()))

    @staticmethod
    def _shut(handler) -> None:
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class TimedRequests:
    """Mixed into an HTTP request handler (BaseHTTPRequestHandler: eventlet's HttpProtocol, Werkzeug's
    WSGIRequestHandler): the wait for each request line and its headers is timed by `deadlines`."""

    deadlines: HeaderDeadlines = None

    def handle_one_request(self):
        self.deadlines.start(self)
        try:
            return super().handle_one_request()
        finally:
            self.deadlines.done(self)

    def parse_request(self):
        if getattr(self, "request_expired", False):
            self.close_connection = True
            return False
        parsed = super().parse_request()
        if self.deadlines.done(self):  # the headers ended only because the connection was shut down
            self.close_connection = True
            return False
        return parsed


class HostCheck:
    """WSGI middleware: a request whose Host names no allowed host gets 400 and a short text. Entries: a name
    (any port), NAME:PORT (that port), .example.com (it and its subdomains), * (anything). A request without a Host
    header passes: no browser sends one, and browsers are what DNS rebinding works through."""

    def __init__(self, app, allowed):
        self.app = app
        self.anything = "*" in allowed
        self.names, self.with_port, self.suffixes = set(), set(), []
        for entry in allowed:
            entry = entry.strip().lower().rstrip(".")
            if entry.startswith("."):
                self.suffixes.append(entry)
            else:
                name, port = _split_host(entry)
                if port is None:
                    self.names.add(entry.strip("[]"))
                else:
                    self.with_port.add((name, port))
        self._log = Occasional(log)

    def allows(self, header: str) -> bool:
        name, port = _split_host(header.strip().lower())
        if name is None:
            return False
        name = name.rstrip(".")
        return (self.anything or name in self.names or (name, port) in self.with_port
                or any(name.endswith(suffix) or name == suffix[1:] for suffix in self.suffixes))

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST")
        if host is None or self.allows(host):
            return self.app(environ, start_response)
        self._log("host", "refused requests for a host not in ALLOWED_HOSTS, the last %r", host[:80])
        start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                           ("Content-Length", str(len(UNKNOWN_HOST))), ("Connection", "close")])
        return [UNKNOWN_HOST]


def _is_bare_ipv6(text: str) -> bool:
    return text.count(":") > 1 and not text.startswith("[")


def _split_host(text: str):
    """'example.com:5000' -> ('example.com', '5000'); '[::1]:5000' -> ('::1', '5000'); '::1' -> ('::1', None);
    (None, None) for what is not a host."""
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None, None
        return name, rest[1:] or None
    if _is_bare_ipv6(text):
        return text, None
    name, colon, port = text.partition(":")
    if not name or (colon and not port.isdigit()):
        return None, None
    return name, port or None


class Listener:
    """The listening socket eventlet.wsgi.server accepts from: accept() returns only connections to serve. Over
    the cap it answers 503 and closes; out of files it refuses with the spare descriptor (or pauses); a connection
    gone before it was accepted is skipped. Everything else is the socket's own."""

    def __init__(self, sock, admit, pause, readable):
        self._sock, self._admit, self._pause, self._readable = sock, admit, pause, readable
        self._spare = Spare()
        self._log = Occasional(log)

    def accept(self):
        while True:
            try:
                connection, address = self._sock.accept()
            except OSError as error:
                then = after_accept_error(error, self._sock.fd, self._spare, self._log)
                if then == "raise":
                    raise
                if then == "pause":
                    self._pause(PAUSE_S)
                elif then == "wait":
                    self._readable(self._sock.fd)
                continue
            if self._admit():
                return connection, address
            refuse(connection)
            self._log("cap", "refused connections: at the connection limit (MAX_CONNECTIONS)")

    def __getattr__(self, name):
        return getattr(self._sock, name)


def after_accept_error(error: OSError, plain, spare: Spare, logged: Occasional):
    """What to do when accept() failed: "retry", "wait" (for a connection, then retry), "pause" (then retry) or
    "raise". `plain`: the listening socket itself (not eventlet's green wrapper), for the spare's accept."""
    if error.errno in OUT_OF_FILES:
        done = spare.refuse_one(plain)
        if done == "refused":
            logged("files", "refused connections: out of open files (ulimit -n; MAX_CONNECTIONS)")
        return {"refused": "retry", "none waiting": "wait", "no spare": "pause"}[done]
    if error.errno in GONE_BEFORE_ACCEPT:
        return "retry"
    if error.errno in OUT_OF_MEMORY:
        logged("memory", "accept() failed: %s", error.strerror)
        return "pause"
    return "raise"


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket on host:port, bound before anything else starts and never shared: eventlet's
    own listen() sets SO_REUSEPORT, so a second server on a port in use (`make run` beside `make replay`) started
    without a word and the kernel split the browsers' connections between live and replay. SO_REUSEADDR only: a
    restart binds at once over the last run's closing connections. Raises OSError (EADDRINUSE, EACCES, ...)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app, settings, sock: socket.socket) -> None:
    """Serve the WSGI `app` (Flask, with Flask-SocketIO's middleware in it) on `sock` (listen()) in the process's
    async mode, with the limits above; forever. Call raise_open_file_limit() first."""
    cap = connection_cap(settings.max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    log.info("at most %d client connections (MAX_CONNECTIONS), %d waiting on their request for at most %g s; "
             "hosts served: %s", cap, settings.max_pending_headers, settings.header_timeout_s,
             ", ".join(settings.allowed_hosts))
    app.wsgi_app = HostCheck(app.wsgi_app, settings.allowed_hosts)
    deadlines = HeaderDeadlines(settings.header_timeout_s, settings.max_pending_headers)
    if settings.async_mode == "eventlet":
        _serve_eventlet(app, sock, cap, deadlines)
    else:
        _serve_threading(app, settings, sock, cap, deadlines)


def _serve_eventlet(app, sock, cap, deadlines) -> None:
    import eventlet
    import eventlet.hubs
    import eventlet.wsgi

    pool = eventlet.GreenPool(cap + 1)  # never full: the listener refuses at the cap, so accepting never blocks
    protocol = type("TimedHttpProtocol", (TimedRequests, eventlet.wsgi.HttpProtocol), {"deadlines": deadlines})
    eventlet.spawn(deadlines.watch, eventlet.sleep)
    listener = Listener(sock, lambda: pool.running() < cap, eventlet.sleep,
                        lambda fd: eventlet.hubs.trampoline(fd, read=True))
    # debug=False: eventlet would write a traceback into the response of a request the app raised on.
    eventlet.wsgi.server(listener, app, log_output=False, custom_pool=pool, protocol=protocol, debug=False)


def _serve_threading(app, settings, sock, cap, deadlines) -> None:
    from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

    http_errors = Occasional(log)

    class Handler(TimedRequests, WSGIRequestHandler):
        def log_request(self, *args):  # no line per request (eventlet's log_output=False)
            pass

        def log_error(self, format, *args):  # a bad request, once per interval
            http_errors("http", "bad requests, the last: " + format, *args)
    Handler.deadlines = deadlines

    class Server(ThreadedWSGIServer):
        """Werkzeug's threaded server with the connection cap and the accept() errors handled as above
        (socketserver drops a failed accept, but the waiting connection makes select() wake it again at once)."""
        request_queue_size = BACKLOG

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.active = 0
            self._count = threading.Lock()
            self._spare = Spare()
            self._log = Occasional(log)

        def get_request(self):
            try:
                return super().get_request()
            except OSError as error:
                if after_accept_error(error, self.socket, self._spare, self._log) == "pause":
                    time.sleep(PAUSE_S)
                raise  # socketserver drops a failed accept and goes on

        def verify_request(self, request, client_address):
            with self._count:
                if self.active < cap:
                    self.active += 1
                    return True
            refuse(request)
            self._log("cap", "refused connections: at the connection limit (MAX_CONNECTIONS)")
            return False

        def process_request_thread(self, request, client_address):
            try:
                super().process_request_thread(request, client_address)
            finally:
                with self._count:
                    self.active -= 1

    threading.Thread(target=deadlines.watch, args=(time.sleep,), daemon=True, name="header-deadlines").start()
    server = Server(settings.host, settings.port, app, handler=Handler, fd=sock.fileno())
    server.serve_forever()
