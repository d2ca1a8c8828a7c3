"""Direct websocket writes of the fan-out (dashboard/direct.py): one frame per watch-set per interval, the same bytes
to every member, order kept with the other events, a slow client conflated; and the library internals they rely on."""
import base64
import importlib.metadata
import inspect
import logging
import os
import socket
import time
import zlib

import orjson
import pytest

from conftest import ServerProcess, get

WS_PATH = "/socket.io/?EIO=4&transport=websocket"
BUSY = ["binance:NKN-USDT", "bitstamp:ETH-USD", "gemini:FIL-USD"]  # busy books in the shipped recordings


# --- a raw websocket client: the frames as the server wrote them ---------------------------------------------------
class RawClient:
    """An Engine.IO client over a websocket, reading frames itself (RSV1, opcode, payload) so that the bytes the
    server wrote are what is compared; `deflate` asks for permessage-deflate as browsers do."""

    def __init__(self, url: str, deflate: bool = False, rcvbuf: int = 0):
        host, port = url.rpartition("/")[2].split(":")
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        extensions = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if deflate else ""
        self.sock.sendall((f"GET {WS_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"{extensions}\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.deflated = b"permessage-deflate" in head
        self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self.messages = []  # (compressed, text) in arrival order

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        return data

    def send(self, text: str) -> None:
        data = text.encode()
        n = len(data)
        header = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        self.sock.sendall(header + b"\0\0\0\0" + data)  # a zero mask: the bytes as they are

    def _frame(self):
        """The next whole frame (rsv1, opcode, payload), or None if the buffer holds less."""
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        length, start = buffer[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < start + length:
            return None
        assert not buffer[1] & 0x80, "a server frame is never masked"
        self.buffer = buffer[start + length:]
        return bool(buffer[0] & 0x40), buffer[0] & 0x0F, buffer[start:start + length]

    def read(self):
        """The next Engine.IO message (a ping answered and also returned): (compressed, text)."""
        while True:
            frame = self._frame()
            if frame is None:
                self.buffer += self._recv()
                continue
            compressed, opcode, payload = frame
            assert opcode == 1, f"opcode {opcode}: {payload[:40]!r}"  # text only, whole (no fragments, no close)
            if compressed:
                payload = self.inflate.decompress(payload + b"\x00\x00\xff\xff")
            text = payload.decode()  # a frame cut or interleaved mid-way would not decode, or not parse below
            assert text[0] in "0123456", text[:40]
            if text == "2":
                self.send("3")
            self.messages.append((compressed, text))
            return compressed, text

    def open(self) -> None:
        """Engine.IO open, then Socket.IO connect to "/"."""
        assert self.read()[1].startswith("0{")
        self.send("40")
        while not self.read()[1].startswith("40"):
            pass

    def read_until(self, done, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "not in time"
            self.read()

    def close(self) -> None:
        self.sock.close()


def metric(server, name: str) -> float:
    _, text = get(server.url + "/metrics")
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def batches(client: RawClient) -> list:
    return [text for _, text in client.messages if text.startswith('42["batch"')]


def markets_in(batch_text: str) -> set:
    packet = orjson.loads(batch_text[2:])[1]
    return {part["market"] for key in ("ticks", "market_state") for part in packet.get(key, ())}


@pytest.fixture
def raw(replay_server):
    opened = []

    def connect(server=replay_server, **options):
        client = RawClient(server.url, **options)
        opened.append(client)
        client.open()
        return client

    yield connect
    for client in opened:
        client.close()


# --- the libraries' internals (python-engineio 4.15.1, eventlet 0.41.3) -------------------------------------------
def test_the_libraries_still_have_what_the_direct_path_needs():
    """Fails when python-engineio or eventlet change: re-read the internals named in dashboard/direct.py (the
    writer green thread, the websocket's send lock, the green socket's OS socket), then update the versions."""
    import socketio
    from engineio.socket import Socket
    from eventlet.websocket import RFC6455WebSocket, WebSocket
    from dashboard import direct
    assert importlib.metadata.version("python-engineio") == "4.15.1"
    assert importlib.metadata.version("eventlet") == "0.41.3"
    server = socketio.Server(async_mode="eventlet")
    assert direct._missing(server) is None
    assert direct.install(server) is not None
    writer = inspect.getsource(Socket._websocket_handler)
    # the writer takes whole packets off the queue and sends each with ws.send: its only yields are the queue's wait
    # and sendall (under the websocket's send lock)
    assert "packets = self.poll()" in writer and "ws.send(pkt.encode())" in writer
    assert "self._sendlock" in inspect.getsource(WebSocket.__init__)
    assert "self._sendlock.acquire()" in inspect.getsource(RFC6455WebSocket._send)
    assert direct.install(socketio.Server(async_mode="threading")) is None  # threading: the normal path only


def test_a_missing_internal_turns_the_direct_path_off_and_says_so_once(monkeypatch, caplog):
    import socketio
    from eventlet.websocket import RFC6455WebSocket
    from dashboard import direct
    monkeypatch.delattr(RFC6455WebSocket, "_send")
    with caplog.at_level(logging.WARNING, logger="dashboard.direct"):
        assert direct.install(socketio.Server(async_mode="eventlet")) is None
    assert [r.getMessage() for r in caplog.records] == [
        "direct websocket writes off: eventlet.websocket.RFC6455WebSocket._send is not as in python-engineio 4.15.1"
        " / eventlet 0.41.3"]
    caplog.clear()
    monkeypatch.setattr(direct, "_warned", set())

    class Session:
        sid, queue, upgraded, upgrading = "s", None, True, False
    with caplog.at_level(logging.WARNING, logger="dashboard.direct"):
        assert direct._usable(Session(), object()) is None  # a websocket without its send lock: that client queued
        assert direct._usable(Session(), object()) is None
    assert len(caplog.records) == 1 and "_sendlock, socket missing" in caplog.records[0].getMessage()


# --- in process: one frame per watch-set ---------------------------------------------------------------------------
def test_one_frame_per_watch_set_the_same_bytes_to_every_member_and_the_rest_queued():
    import socketio
    from dashboard.direct import text_frame
    from dashboard.fanout import Fanout
    server = socketio.Server(async_mode="threading")
    queued = []
    server._send_eio_packet = lambda eio_sid, packet: queued.append((eio_sid, packet))
    fanout = Fanout(server, backfill=lambda market: {"market": market, "ticks": [], "state": None})
    assert fanout.direct is None  # threading: no direct writes

    class Direct:  # the clients on even numbers take a direct write; the others are busy (queued)
        def __init__(self):
            self.writes = []

        def write(self, eio_sid, frame):
            self.writes.append((eio_sid, frame))
            return int(eio_sid[3:]) % 2 == 0
    fanout.direct = direct = Direct()
    one, two = ["coinbase:BTC-USD"], ["binance:BTC-USDT", "coinbase:BTC-USD"]
    for n in range(60):
        fanout.join(server.manager.connect(f"eio{n}", "/"), [one, two, []][n % 3])
    fanout.add(ticks={"coinbase:BTC-USD": [{"market": "coinbase:BTC-USD", "bid": "1.50", "received": 1, "seq": 1}],
                      "binance:BTC-USDT": [{"market": "binance:BTC-USDT", "bid": "2.00", "received": 1, "seq": 7}]})
    assert fanout.flush() == 2 and fanout.frames == 2  # the empty set has nothing due: two frames built
    assert len(direct.writes) == 40 and fanout.client_packets == 40 and fanout.direct_packets == 20
    frames = {}
    for eio_sid, frame in direct.writes:
        frames.setdefault(int(eio_sid[3:]) % 3, []).append(frame)
    for group in frames.values():
        assert all(frame is group[0] for frame in group)  # the very same bytes object for each member
    payload = b'42["batch",{"ticks":[{"market":"coinbase:BTC-USD","ticks":[{"market":"coinbase:BTC-USD","bid":"1.50",' \
              b'"received":1,"seq":1}]}],"interval_ms":50}]'
    assert frames[0][0] == text_frame(payload) == bytes([0x81, 126]) + len(payload).to_bytes(2, "big") + payload
    assert sorted(int(eio[3:]) for eio, _ in queued) == [n for n in range(60) if n % 3 != 2 and n % 2]
    assert {packet.encode() for _, packet in queued} == {frame[4:].decode() for frame in (frames[0][0], frames[1][0])}
    assert len({id(packet) for _, packet in queued}) == 2  # the queued ones share one Engine.IO packet per set


@pytest.mark.parametrize("n", [0, 125, 126, 65535, 65536])
def test_a_text_frame_is_framed_as_rfc_6455_says(n):
    from dashboard.direct import text_frame
    frame = text_frame(b"x" * n)
    header = {0: b"\x81\x00", 125: b"\x81\x7d", 126: b"\x81\x7e\x00\x7e", 65535: b"\x81\x7e\xff\xff",
              65536: b"\x81\x7f" + (65536).to_bytes(8, "big")}[n]
    assert frame == header + b"x" * n


# --- a real server (eventlet) -------------------------------------------------------------------------------------
def test_members_of_a_watch_set_get_the_same_bytes_written_directly_also_with_deflate(raw, replay_server):
    """Two clients watching the same markets get byte-identical batch packets, written directly (a browser's
    permessage-deflate client gets them uncompressed, which RFC 7692 allows, and decodes them as the compressed
    events around them)."""
    before = metric(replay_server, "dashboard_direct_packets_total")
    plain, browser = raw(), raw(deflate=True)
    assert browser.deflated
    for client in (plain, browser):
        for market in BUSY:
            client.send(f'42["subscribe",{{"market":"{market}"}}]')
    for client in (plain, browser):
        client.read_until(lambda: len(batches(client)) >= 30 and len(
            [t for _, t in client.messages if t.startswith('42["backfill"')]) == 3)
    common = [text for text in batches(plain) if markets_in(text) >= {BUSY[0]}]
    assert set(common) & set(batches(browser)), "no batch packet in common"
    first = next(text for text in batches(plain) if text in batches(browser))  # both watch all three from here on
    assert batches(plain)[batches(plain).index(first):][:10] == batches(browser)[batches(browser).index(first):][:10]
    direct = [compressed for compressed, text in browser.messages if text.startswith('42["batch"')]
    assert direct.count(False) >= len(direct) // 2  # written directly: uncompressed
    # what engine.io queues is compressed (python-socketio's connect packet); a backfill, the connect's markets and
    # feeds are written as a batch is
    assert any(compressed for compressed, text in browser.messages if text.startswith("40"))
    assert metric(replay_server, "dashboard_direct_packets_total") >= before + 30


def test_backfills_and_acks_arrive_in_order_with_the_batch_packets(raw):
    """A subscribe's backfill and ack are queued for the client while batch packets flow: a batch written directly
    never overtakes them (no batch names a market before its backfill, the backfill comes before the ack), and
    no batch names a market after its unsubscribe's ack."""
    client = raw()
    watching = set()

    def check(text):
        if text.startswith('42["backfill"'):
            watching.add(orjson.loads(text[2:])[1]["market"])
        elif text.startswith('42["batch"'):
            assert markets_in(text) <= watching, f"a batch named {markets_in(text) - watching} out of order"

    def read():
        _, text = client.read()
        check(text)
        return text
    for number in range(40):  # the subscribe rate (10 a second, bursts of 20) lets this take 2 s
        market, subscribe = BUSY[(number // 2) % 3], number % 2 == 0
        client.send(f'42{number}["{"subscribe" if subscribe else "unsubscribe"}",{{"market":"{market}"}}]')
        while not (text := read()).startswith(f"43{number}["):
            pass
        assert orjson.loads(text[2 + len(str(number)):]) == [{"ok": True, "market": market}]
        if subscribe:
            assert market in watching, f"the ack of {market} came before its backfill"
        else:
            watching.discard(market)
        if number % 8 == 7:  # now and then, batches flow for a while (written directly, between the events)
            count, deadline = len(batches(client)), time.monotonic() + 10
            while len(batches(client)) < count + 2:
                assert time.monotonic() < deadline, "no batch packets"
                read()
    assert len(batches(client)) >= 6


def test_a_client_that_stops_reading_does_not_hold_back_its_watch_set_and_is_conflated():
    """Two clients watch the same 40 markets (one watch-set, one frame each interval); one stops reading. The other
    keeps getting its packets written directly at the interval's pace; the silent one fills its socket (a partial
    write's rest is queued first), then is skipped (conflated) instead of queued for without bound; when it reads
    again every frame is whole and it is resynced with a backfill."""
    server = ServerProcess("--replay", "--speed", "max", "--no-rest", "--subscribe-rate", "100")
    clients = []
    try:
        slow = RawClient(server.url, rcvbuf=4096)
        fast = RawClient(server.url)
        clients += [slow, fast]
        offer = orjson.loads(get(server.url + "/api/markets")[1])
        others = [f"{name}:{symbol}" for name, symbols in sorted(offer["available"].items()) for symbol in symbols]
        markets = (BUSY + [m for m in others if m not in BUSY])[:40]
        for client in (slow, fast):
            client.open()
            for market in markets:
                client.send(f'42["subscribe",{{"market":"{market}"}}]')
        direct = metric(server, "dashboard_direct_packets_total")
        deadline, last, longest = time.monotonic() + 40, None, 0.0  # before Engine.IO's ping timeout (45 s)
        while metric(server, "dashboard_batches_conflated_total") == 0 or \
                metric(server, "dashboard_clients_behind") != 1:
            assert time.monotonic() < deadline, "the silent client was never skipped"
            count = len(batches(fast))
            while len(batches(fast)) < count + 3:
                fast.read()
                if fast.messages[-1][1].startswith('42["batch"'):
                    now = time.monotonic()
                    longest = max(longest, now - last) if last is not None else 0.0
                    last = now
        assert longest < 2.5, f"the reading client waited {longest:.1f} s for a packet"  # paced to 1 s at most
        assert metric(server, "dashboard_direct_packets_total") > direct
        slow.sock.settimeout(30)
        resynced = set()
        while len(resynced) < 3:  # its backlog, every frame whole, then the resync of what it missed
            _, text = slow.read()
            if text.startswith('42["backfill"'):
                resynced.update(m for m in BUSY if f'"market":"{m}"' in text)
    finally:
        for client in clients:
            client.close()
        assert server.stop() == 0
