"""Hostile clients at the socket and HTTP level (issue 14): the open-file limit, clients that never finish their
request, a Host of another site (DNS rebinding), encoded dot-dots under /vendor/. A real `server.py --replay`
each time, on 127.0.0.1 only."""
from __future__ import annotations

import json
import resource
import socket
import subprocess
import time
from unittest import mock

import pytest

from conftest import ServerProcess

MODES = ["eventlet", "threading"]
QUICK = ("--replay", "--no-rest", "--no-history")


class LimitedServer(ServerProcess):
    """A ServerProcess started with RLIMIT_NOFILE = `nofile` (soft, hard), as `ulimit -n` would."""

    def __init__(self, *args, nofile, **kwargs):
        popen = subprocess.Popen

        def limited(*popen_args, **popen_kwargs):
            return popen(*popen_args, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile),
                         **popen_kwargs)
        with mock.patch.object(subprocess, "Popen", limited):  # only while this one process starts
            super().__init__(*args, **kwargs)


@pytest.fixture
def servers():
    """Start servers with start(*args, nofile=None, mode=...); each is stopped by its pid at the end."""
    started = []

    def start(*args, nofile=None, mode="eventlet"):
        args = (*QUICK, "--async-mode", mode, *args)
        server = LimitedServer(*args, nofile=nofile) if nofile else ServerProcess(*args)
        started.append(server)
        return server
    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


@pytest.fixture(scope="module", params=MODES)
def server(request):
    server = ServerProcess(*QUICK, "--async-mode", request.param)
    yield server
    assert server.stop() == 0, "".join(server.lines.items[-20:])


def request(port, target, host=None, extra=b"", timeout=5.0):
    """(status, headers lowercased, body) of one raw HTTP/1.1 request sent exactly as given (no client-side
    normalizing of the path); the connection is closed after it."""
    host = host or f"127.0.0.1:{port}"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n".encode() + extra + b"\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        status = int(lines[0].split()[1])
        if status != 101:
            length = int(headers.get("content-length", -1))
            while len(body) < length or length < 0:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        return status, headers, body


def healthz_answers(port, within_s):
    """True if /healthz answers 200 or 503 with its JSON within `within_s` seconds."""
    try:
        status, _, body = request(port, "/healthz", timeout=within_s)
        return status in (200, 503) and "feeds" in json.loads(body)
    except (OSError, ValueError):  # no answer, or not /healthz's (say the connection limit's 503)
        return False


def healthz_answers_again(port, within_s=5):
    """Once clients are gone the server needs a moment to see them go: /healthz, tried until `within_s`."""
    deadline = time.monotonic() + within_s
    while not healthz_answers(port, 2):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def open_idle(port, count, send=b""):
    """`count` TCP connections to the server, each having sent `send` and nothing more."""
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        if send:
            connection.sendall(send)
        connections.append(connection)
    return connections


def closed_by_server(connection, deadline) -> bool:
    """True once the server closed `connection` (end of stream or reset, after any reply), by `deadline`."""
    try:
        while True:
            connection.settimeout(max(0.01, deadline - time.monotonic()))
            if not connection.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except OSError:  # timed out: still open
        return False


def close_all(connections):
    for connection in connections:
        connection.close()


# --- 1. the open-file limit ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_at_the_open_file_limit_new_connections_are_refused_and_the_server_lives(servers, mode):
    """ulimit -n 64 (hard too, so raising cannot help) and 80 idle connections: the server refuses what it cannot
    take (503 and closed) instead of exiting on accept()'s EMFILE, and answers /healthz once they are gone."""
    server = servers(nofile=(64, 64), mode=mode)
    connections = open_idle(server.port, 80)
    try:
        refused = [c for c in connections[-20:] if closed_by_server(c, time.monotonic() + 5)]
        assert refused, "the connections over the limit were neither refused nor closed"
        assert server.process.poll() is None, "".join(server.lines.items[-20:])
    finally:
        close_all(connections)
    assert healthz_answers_again(server.port)
    assert any("at the connection limit" in line for line in server.lines.items)


@pytest.mark.parametrize("mode", MODES)
def test_out_of_files_at_accept_refuses_with_a_spare_descriptor_and_serves_the_connections_it_has(servers, mode):
    """The same with a connection cap above what the files allow: accept() itself fails with EMFILE. The server
    stays up, closes what it cannot take, and still answers on a connection it had already accepted."""
    server = servers("--max-connections", "1000", nofile=(64, 64), mode=mode)
    connections = open_idle(server.port, 80)
    try:
        assert closed_by_server(connections[-1], time.monotonic() + 5)
        assert server.process.poll() is None, "".join(server.lines.items[-20:])
        first = connections[0]  # accepted long before the limit: served
        first.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n"
                      .encode())
        answer = b""
        first.settimeout(5)
        while chunk := first.recv(65536):
            answer += chunk
        assert b'"feeds"' in answer, answer[:300]  # /healthz's own JSON (200, or 503 naming a feed down)
    finally:
        close_all(connections)
    assert healthz_answers_again(server.port)
    assert any("out of open files" in line for line in server.lines.items)


# --- 2. clients that never finish their request -------------------------------------------------------------

def test_a_thousand_slow_clients_do_not_keep_healthz_from_answering(servers):
    """The reporter's case, default settings: 1,050 connections that send half a request line and stop took
    every one of eventlet.wsgi's 1,024 green threads, and /healthz timed out until they went. Started under the
    usual soft open-file limit of 1,024, which the server raises to the hard one (else 1,050 would not fit)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"hard open-file limit {hard}: too low for 1,050 connections")
    server = servers(nofile=(1024, hard))
    assert any(f"raised the soft limit from 1024 to the hard limit {hard}" in line for line in server.lines.items)
    assert any(f"at most {hard - max(32, hard // 20)} client connections" in line for line in server.lines.items)
    connections = open_idle(server.port, 1050, send=b"GET /heal")
    try:
        assert healthz_answers(server.port, 5)  # behind the 1,050 in the accept queue; before: never
        assert server.process.poll() is None
    finally:
        close_all(connections)


@pytest.mark.parametrize("mode", MODES)
def test_slow_clients_are_closed_after_the_header_timeout_and_over_the_waiting_limit(servers, mode):
    """60 connections stop halfway through their request line; one more sends its request a header at a time,
    each in time for a per-read timeout but together past the header deadline (a whole-request deadline)."""
    server = servers("--header-timeout", "3", "--max-pending-headers", "20", mode=mode)
    trickler = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    trickler.sendall(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    connections = open_idle(server.port, 60, send=b"GET /healthz HT")
    try:
        assert healthz_answers(server.port, 2)  # within the header timeout: not waiting for it
        early = [c for c in connections if closed_by_server(c, time.monotonic() + 0.01)]
        assert len(early) >= 40, f"{len(early)} of 60 closed at once; at most 20 may wait"
        assert not trickled_in(trickler, started + 4)
        rest = [c for c in connections if c not in early]
        assert all(closed_by_server(c, started + 8) for c in rest)
        assert time.monotonic() - started >= 2.5, "closed before their header timeout"
        assert server.process.poll() is None
        # over the limit is a WARNING; a connection closed at its deadline is INFO (a browser's unused spare
        # connection, at every page load in Chromium, was a WARNING a user could do nothing about)
        server.lines.wait_for(lambda lines: any("no complete request" in line for line in lines), timeout=10)
        said = {line.split(" ")[3]: line for line in server.lines.items if "request" in line and "closed" in line}
        assert "more than 20 waiting" in said["WARNING"] and "no complete request" in said["INFO"]
    finally:
        close_all([trickler, *connections])
    assert healthz_answers_again(server.port)


def trickled_in(sock, until) -> bool:
    """Send headers one every 0.5 s until `until`, then end the request: True if it was answered."""
    answer = b""
    try:
        while time.monotonic() < until:
            sock.sendall(b"X-Slow: 1\r\n")
            sock.settimeout(0.5)
            try:
                chunk = sock.recv(4096)  # woken early if the server closes
            except socket.timeout:
                continue
            if not chunk:
                return False
            answer += chunk
        sock.sendall(b"\r\n")
        sock.settimeout(3)
        answer += sock.recv(4096)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return answer.startswith(b"HTTP/1.1 200") or answer.startswith(b"HTTP/1.1 503")


# --- 3. Host: only the names the server is reached by ----------------------------------------------------------

def test_another_hosts_name_gets_400_for_the_page_healthz_and_the_socketio_handshake(server):
    evil = f"evil.example:{server.port}"
    origin = f"Origin: http://{evil}\r\n".encode()
    websocket = (b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    for target, extra in (("/", b""), ("/healthz", b""), ("/socket.io/?EIO=4&transport=polling", origin),
                          ("/socket.io/?EIO=4&transport=websocket", origin + websocket)):
        status, headers, body = request(server.port, target, host=evil, extra=extra)
        assert status == 400, (target, status, body[:200])
        assert headers["content-type"].startswith("text/plain") and b"ALLOWED_HOSTS" in body
        assert b"evil" not in body and b"Traceback" not in body
    own = f"127.0.0.1:{server.port}"
    assert request(server.port, "/")[0] == 200
    assert request(server.port, "/healthz", host=f"localhost:{server.port}")[0] in (200, 503)
    status, _, body = request(server.port, "/socket.io/?EIO=4&transport=polling",
                              extra=f"Origin: http://{own}\r\n".encode())
    assert status == 200 and b'"sid"' in body
    status, _, _ = request(server.port, "/socket.io/?EIO=4&transport=websocket",
                           extra=f"Origin: http://{own}\r\n".encode() + websocket)
    assert status == 101


def test_allowed_hosts_are_configurable(servers):
    server = servers("--allowed-hosts", "dash.example.com,.corp.example")
    assert request(server.port, "/healthz", host="dash.example.com")[0] in (200, 503)
    assert request(server.port, "/healthz", host=f"a.corp.example:{server.port}")[0] in (200, 503)
    assert request(server.port, "/healthz", host=f"127.0.0.1:{server.port}")[0] == 400  # replaced, not added
    assert request(server.port, "/healthz", host="evil.example")[0] == 400


# --- 4. /vendor/ serves only the allowed folders -------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/vendor/bootstrap/dist/%2e%2e/package.json",
    "/vendor/bootstrap/dist/%2e%2e/%2e%2e/.package-lock.json",
    "/vendor/bootstrap/dist/%2E%2E/%2E%2E/.package-lock.json",
    "/vendor/bootstrap/dist/..%2fpackage.json",
    "/vendor/bootstrap/dist/..%2F..%2F.package-lock.json",
    "/vendor/bootstrap/dist/../../.package-lock.json",
    "/vendor/bootstrap/dist//..//..//.package-lock.json",
    "/vendor/bootstrap/dist/%5c..%5c..%5c.package-lock.json",
    "/vendor/bootstrap/dist\\..\\package.json",
    "/vendor/bootstrap/dist/css/%2e%2e/%2e%2e/%2e%2e/socket.io-client/package.json",
    "/vendor/socket.io-client/dist/%2e%2e/%2e%2e/%2e%2e/package.json",
    "/vendor/bootstrap/dist/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
    "/vendor/bootstrap/dist/",
])
def test_an_encoded_dot_dot_never_leaves_the_vendor_folders(server, target):
    status, _, body = request(server.port, target)
    assert status == 404, (target, body[:200])
    assert b"node_modules" not in body and b"/work" not in body


def test_vendor_files_are_still_served(server):
    for target in ("/vendor/bootstrap/dist/css/bootstrap.min.css",
                   "/vendor/socket.io-client/dist/socket.io.esm.min.js",
                   "/vendor/bootstrap/dist/css/%2e%2e/css/bootstrap.min.css"):  # resolves inside the folder
        status, _, body = request(server.port, target)
        assert status == 200 and len(body) > 1000, target


@pytest.mark.parametrize("host, allowed", [
    ("localhost:5000", True), ("LOCALHOST.", True), ("127.0.0.1", True), ("[::1]:5000", True),
    ("dash.example.com:8080", True), ("dash.example.com:80", False), ("a.corp.example", True),
    ("corp.example:1", True), ("xcorp.example", False), ("evil.example:5000", False), ("127.0.0.1.evil.example", False),
    ("127.0.0.1:abc", False), ("[::1", False), ("", False), ("localhost:5000@evil.example", False),
])
def test_host_names_match_as_allowed_hosts_say(host, allowed):
    from dashboard.serving import HostCheck
    check = HostCheck(None, ["localhost", "127.0.0.1", "::1", "dash.example.com:8080", ".corp.example"])
    assert check.allows(host) is allowed
