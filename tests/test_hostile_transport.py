"""Hostile clients at the Engine.IO / Socket.IO transport (dashboard/guard.py), against a real server process in
each async mode: each case refuses or disconnects that client only, and the others keep their ticks."""
import http.client
import os
import re
import select
import socket
import time

import pytest
import socketio
import websocket
from websocket import ABNF

from conftest import Collector, ServerProcess, get, listen
from dashboard.guard import _unmask

MARKET = "binanceus:OMG-BUSD"  # the busiest recorded market: ticks every few hundred milliseconds at --speed 5
LIMIT = 16 * 1024  # app.MAX_EVENT_BYTES


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def server(request):
    server = ServerProcess("--replay", "--speed", "5", "--no-rest", "--async-mode", request.param)
    yield server
    assert server.stop() == 0, "".join(server.lines.items[-20:])


@pytest.fixture
def calm(server):
    """A well-behaved client watching MARKET: its "ticks" Collector, of (arrival time.monotonic(), batch)."""
    sio = socketio.Client(reconnection=False)
    ticks = Collector()
    listen(sio, "ticks", lambda batch: ticks((time.monotonic(), batch)))
    sio.connect(server.url, transports=["websocket"], wait_timeout=10)
    assert sio.call("subscribe", {"market": MARKET}, timeout=5)["ok"]
    ticks.wait_for(lambda batches: batches, timeout=30)
    yield ticks
    sio.disconnect()


def still_ticking(ticks, within=5.0):
    count = len(ticks.items)
    ticks.wait_for(lambda batches: len(batches) > count, timeout=within)


def longest_silence(ticks, since) -> float:
    """The longest time without a batch from `since` to the latest batch, in seconds."""
    arrivals = [since] + [at for at, _ in ticks.items if at > since]
    return max(later - earlier for earlier, later in zip(arrivals, arrivals[1:]))


def raw_client(server):
    """A raw Engine.IO websocket connected to Socket.IO's "/" namespace."""
    ws = websocket.create_connection(server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=5)
    assert ws.recv().startswith("0{")  # Engine.IO open
    ws.send("40")
    while not ws.recv().startswith("40"):  # the connect handler's own events may come first
        pass
    return ws


def messages_until_closed(ws, timeout=5.0):
    """Every text message the server sends until it closes the connection; fails if it does not."""
    messages, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            opcode, frame = ws.recv_data_frame(True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return messages
        if opcode == ABNF.OPCODE_CLOSE:
            return messages
        if opcode == ABNF.OPCODE_TEXT:
            messages.append(frame.data.decode())
    raise AssertionError(f"the server did not close the connection in {timeout} s: {messages[-3:]}")


def server_sockets(server) -> int:
    folder = f"/proc/{server.process.pid}/fd"
    count = 0
    for name in os.listdir(folder):
        try:
            count += os.readlink(f"{folder}/{name}").startswith("socket:")
        except FileNotFoundError:  # closed while listed
            pass
    return count


def refused(server, kind) -> float:
    """dashboard_refused_client_input_total{kind} in /metrics."""
    _, metrics = get(server.url + "/metrics")
    count = re.search(rf'^dashboard_refused_client_input_total{{kind="{kind}"}} (\S+)', metrics, re.M)
    return float(count[1]) if count else 0.0


def polling_session(server) -> str:
    status, body = get(server.url + "/socket.io/?EIO=4&transport=polling")
    assert status == 200
    return re.search(r'"sid":"([^"]+)"', body)[1]


def test_an_oversized_polling_post_is_answered_at_once_and_its_connection_released(server):
    """Engine.IO (4.15.1) would disconnect the session and wait for a poll that never comes: no reply, the
    connection held forever. Each such POST now gets a 413, and the server's sockets come back down."""
    before = server_sockets(server)
    for n in range(50):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        path = f"/socket.io/?EIO=4&transport=polling&sid={polling_session(server)}"
        if n % 2:  # the whole body sent
            connection.request("POST", path, body=b"4" + b"x" * 20_000)
        else:  # a huge length declared and only a little sent
            connection.putrequest("POST", path)
            connection.putheader("Content-Length", "100000000")
            connection.endheaders(b"4" + b"x" * 1000)
        response = connection.getresponse()
        assert response.status == 413 and b"Traceback" not in response.read()
        connection.close()
    deadline = time.monotonic() + 10
    while server_sockets(server) > before + 5:
        assert time.monotonic() < deadline, f"{server_sockets(server) - before} more sockets held than before"
        time.sleep(0.05)
    assert get(server.url + "/healthz")[0] in (200, 503)


@pytest.mark.parametrize("body", [b"", b"x", b"0", b"4\x1ex", b"\xff\xfe"])
def test_a_polling_post_of_what_is_not_engineio_is_a_400(server, body):
    if not body:
        body = b"\x1e"  # an empty packet (an empty body is a valid empty payload)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("POST", f"/socket.io/?EIO=4&transport=polling&sid={polling_session(server)}", body=body)
    response = connection.getresponse()
    text = response.read()
    connection.close()
    assert response.status == 400 and b"Traceback" not in text and b".py" not in text


FLOOD = "\x1e".join(['42["whatever"]'] * 50)


@pytest.mark.parametrize("posts, told", [
    ([FLOOD, FLOOD, FLOOD], "too many events"),  # 150 events: over the burst (guard.harden: 100)
    (["\x1e".join(['42["whatever"]'] * 150)], "too many events"),  # in one request: refused whole (400)
    (['451-["subscribe",{"_placeholder":true,"num":0}]'], "binary packets are not accepted"),
    (["bAQID"], "binary packets are not accepted"),  # a base64 binary message: an attachment
])
def test_long_polling_clients_are_cut_off_the_same_way(server, posts, told):
    """The same checks hold over long-polling: the next poll returns the reason, then the session is closed."""
    url = f"{server.url}/socket.io/?EIO=4&transport=polling&sid={polling_session(server)}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for packets in ("40", *posts):
        connection.request("POST", url[len(server.url):], body=packets.encode())
        response = connection.getresponse()
        expected = (400, b"too many packets in one request") if packets.count("\x1e") >= 100 else (200, b"OK")
        assert (response.status, response.read()) == expected
        if response.getheader("Connection") == "close":
            connection.close()
        if packets == "40":
            assert re.search("(^|\x1e)40{", get(url)[1])  # connected to "/" (after the connect handler's events)
    connection.close()
    status, polled = get(url)
    assert status == 200 and f'"message":"{told}' in polled and polled.endswith("\x1e41")  # Socket.IO disconnect
    assert get(url) == (200, "1")  # Engine.IO's close, a moment later (guard.CUT_GRACE_S)
    assert get(url)[0] == 400  # the session is gone


def test_a_message_in_thousands_of_fragments_is_cut_while_it_arrives(server, calm):
    """eventlet checks each frame against the limit but would buffer any number of continuation frames."""
    ws = raw_client(server)
    sent, bound = 0, 16_000_000  # the server's own socket buffers hold a few MB before it reads any
    chunk = "x" * 16_000
    try:
        ws.send_frame(ABNF.create_frame('42["subscribe","' + chunk, ABNF.OPCODE_TEXT, fin=0))
        sent += 16_000
        while sent < bound:
            ws.send_frame(ABNF.create_frame(chunk, ABNF.OPCODE_CONT, fin=0))
            sent += 16_000
            if select.select([ws.sock], [], [], 0)[0] and ws.recv_data_frame(True)[0] == ABNF.OPCODE_CLOSE:
                break  # 1009 (or the connection reset: the server closed it with our frames unread)
    except (ConnectionError, websocket.WebSocketConnectionClosedException):
        pass
    ws.close()
    assert sent < bound, "the whole message was taken in"
    still_ticking(calm)


def test_a_packet_declaring_attachments_is_refused_and_its_client_disconnected(server, calm):
    ws = raw_client(server)
    ws.send('451000000-["subscribe",{"_placeholder":true,"num":0}]')
    messages = messages_until_closed(ws)
    assert any(m.startswith('42["error"') and "binary packets are not accepted" in m for m in messages)
    still_ticking(calm)


def test_a_flood_of_unknown_events_disconnects_that_client_only(server, calm):
    """Told first when it can still read ("error": too many events), then disconnected."""
    ws = raw_client(server)
    floods = refused(server, "flood")
    event = '42["whatever",{"pad":"' + "y" * 15_000 + '"}]'
    started = time.monotonic()
    try:
        for _ in range(500):
            ws.send(event)
        messages = messages_until_closed(ws)
    except (ConnectionError, websocket.WebSocketConnectionClosedException):
        messages = None  # cut off while still sending (its unread frames reset the connection)
    ws.close()
    if messages is not None:
        assert any(m.startswith('42["error"') and "too many events" in m for m in messages)
    assert refused(server, "flood") == floods + 1
    still_ticking(calm)
    # eventlet unmasked each 15 KB frame in 60 ms of Python with every other client waiting (20 s for this flood)
    assert longest_silence(calm, started) < 4.0


def test_malformed_packets_are_logged_once_per_client_not_once_each(server, calm):
    """A malformed packet is dropped with an "error" event and the client stays; a flood of them is a flood."""
    ws = raw_client(server)
    logged = len(server.lines.items)
    for _ in range(20):
        ws.send("42[")
    ws.send(f'421["subscribe",{{"market":"{MARKET}"}}]')
    replies = []
    while not any(r.startswith('431[{"ok":true') for r in replies):  # the subscribe's ack: still served
        replies.append(ws.recv())
    assert sum(r.startswith('42["error",{"ok":false,"message":"malformed') for r in replies) == 20
    for _ in range(200):
        try:
            ws.send("42[")
        except (ConnectionError, websocket.WebSocketConnectionClosedException):
            break
    messages_until_closed(ws)  # over the flood limit
    new = server.lines.items[logged:]
    assert len(new) <= 10 and not any("Traceback" in line for line in new), "".join(new)
    assert sum("malformed packet" in line for line in new) == 1
    assert refused(server, "malformed packet") >= 50
    still_ticking(calm)


@pytest.mark.parametrize("packet", ["", "x", "b!!", "0"])
def test_a_websocket_message_that_is_not_engineio_closes_it_with_nothing_internal_sent(server, packet):
    """Engine.IO raised out of its websocket handler on "" and "x", and eventlet.wsgi wrote its 500 page, with
    the traceback, into the upgraded socket. Read raw: whatever comes back, nothing internal is in it."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    received = b""
    while b'"sid"' not in received:  # the 101 and Engine.IO's open packet
        received += sock.recv(4096)
    sock.sendall(ABNF.create_frame(packet, ABNF.OPCODE_TEXT).format())
    deadline = time.monotonic() + 5
    try:
        while (chunk := sock.recv(65536)):  # until the server closes the connection
            received += chunk
            assert time.monotonic() < deadline, "the server kept the connection open"
    except ConnectionResetError:
        pass
    sock.close()
    assert b"Traceback" not in received and b".py" not in received and b"500 Internal" not in received
    assert received.startswith(b"HTTP/1.1 101")
    assert get(server.url + "/healthz")[0] in (200, 503)


@pytest.mark.filterwarnings("ignore:\\s*Eventlet is deprecated")  # the server chose it knowingly: see README
def test_unmasking_is_eventlets_at_c_speed():
    from eventlet.websocket import RFC6455WebSocket
    for size in (0, 1, 3, 4, 5, 17, 16_384):
        data, mask = os.urandom(size), tuple(os.urandom(4))
        for offset in range(4):
            assert _unmask(data, mask, length=size, offset=offset) == \
                RFC6455WebSocket._apply_mask(data, mask, length=size, offset=offset)
