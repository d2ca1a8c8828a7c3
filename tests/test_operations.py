"""/healthz, /metrics, and hostile Socket.IO clients against a real server process."""
import os
import socket
import time

import orjson
import pytest
import socketio
import websocket

from exchanges import EXCHANGES
from conftest import get, Collector, ServerProcess, sio_client



def connect(server):
    # feeds: the full status, then changes: each item the whole status
    return sio_client(server.url, ("ticks", "error", "backfill", "feeds"))


def test_healthz_is_200_when_every_feed_is_live(replay_server):
    sio, events = connect(replay_server)
    events["feeds"].wait_for(lambda items: all(f["state"] in ("live", "quiet") for f in items[-1]))
    sio.disconnect()
    status, body = get(replay_server.url + "/healthz")
    assert status == 200 and orjson.loads(body)["ok"] is True


def test_healthz_is_503_naming_a_blocked_feed_and_metrics_show_it():
    server = ServerProcess("--replay", "--fault", "binance:http=451+600s", "--fault", "binance:drop")
    try:
        sio, events = connect(server)
        events["feeds"].wait_for(lambda items: all(  # binance blocked, every other feed healthy
            f["state"] == "error" if f["exchange"] == "binance" else f["state"] in ("live", "quiet")
            for f in items[-1]), timeout=20)
        sio.disconnect()
        status, body = get(server.url + "/healthz")
        report = orjson.loads(body)
        assert status == 503 and [f["exchange"] for f in report["failing"]] == ["binance"]
        assert "HTTP 451" in report["failing"][0]["reason"]
        status, metrics = get(server.url + "/metrics")
        assert status == 200
        assert 'dashboard_feed_state{exchange="binance",state="error"} 1.0' in metrics
        assert 'dashboard_feed_state{exchange="coinbase",state="live"} 1.0' in metrics
        for name in ("dashboard_frames_total", "dashboard_ticks_total", "dashboard_reconnects_total",
                     "dashboard_gaps_total", "dashboard_older_updates_total", "dashboard_connected_clients",
                     "dashboard_emit_batch_size_bucket",
                     "dashboard_tick_age_at_emit_seconds_bucket", "dashboard_message_rate"):
            assert name in metrics
    finally:
        assert server.stop() == 0


def test_a_flood_of_subscribes_is_limited_and_other_clients_keep_their_ticks(replay_server):
    calm, calm_events = connect(replay_server)
    calm.call("subscribe", {"market": "coinbase:SKL-USD"}, timeout=5)
    flood, flood_events = connect(replay_server)
    # Binance: its listing is not known in replay, so only the limits refuse (Coinbase's refuses X0-USD at once)
    replies = [flood.call("subscribe", {"market": f"binance:X{n}-USDT"}, timeout=5) for n in range(60)]
    refused = [reply for reply in replies if not reply["ok"]]
    assert refused and all("too many" in r["message"] or "at most" in r["message"] for r in refused)
    count = len(calm_events["ticks"].items)
    calm_events["ticks"].wait_for(lambda batches: len(batches) > count, timeout=30)
    flood.disconnect()
    calm.disconnect()


def test_a_client_may_watch_at_most_the_configured_number_of_markets():
    server = ServerProcess("--replay", "--max-markets-per-client", "2", "--subscribe-rate", "100")
    try:
        sio, events = connect(server)
        assert sio.call("subscribe", {"market": "coinbase:SKL-USD"}, timeout=5)["ok"]
        assert sio.call("subscribe", {"market": "coinbase:DASH-BTC"}, timeout=5)["ok"]
        reply = sio.call("subscribe", {"market": "coinbase:NMR-EUR"}, timeout=5)
        assert reply == {**reply, "ok": False, "message": "at most 2 markets per client"}
        sio.disconnect()
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("payload", [[1, 2, 3], 12, "x" * 1000, {"market": ["coinbase:BTC-USD"]},
                                     {"market": {"$gt": ""}}, {"market": None}, True])
def test_wrong_types_get_an_error_reply(replay_server, payload):
    sio, events = connect(replay_server)
    for event in ("subscribe", "unsubscribe"):
        reply = sio.call(event, payload, timeout=5)
        assert reply["ok"] is False and reply["event"] == event
    sio.disconnect()


def test_a_huge_payload_closes_only_that_client(replay_server):
    calm, calm_events = connect(replay_server)
    calm.call("subscribe", {"market": "binanceus:OMG-BUSD"}, timeout=5)
    rude = socketio.Client(reconnection=False)
    gone = Collector()
    rude.on("disconnect", lambda *args: gone("disconnect"))
    rude.connect(replay_server.url, transports=["websocket"], wait_timeout=10)
    rude.emit("subscribe", {"market": "coinbase:BTC-USD", "pad": "x" * 200_000})
    gone.wait_for(lambda items: items, timeout=10)
    count = len(calm_events["ticks"].items)
    calm_events["ticks"].wait_for(lambda batches: len(batches) > count, timeout=30)
    calm.disconnect()
    status, _ = get(replay_server.url + "/healthz")
    assert status in (200, 503)  # the server still answers


def test_sigterm_closes_the_recording_and_exits_zero(tmp_path):
    server = ServerProcess("--replay", "--speed", "5", "--record", str(tmp_path))
    sio, events = connect(server)
    events["feeds"].wait_for(lambda items: {f["exchange"] for f in items[-1] if f["frames"] >= 1} == set(EXCHANGES),
                             timeout=30)
    sio.disconnect()
    assert server.stop() == 0
    files = sorted(tmp_path.iterdir())
    assert {path.name.split("-")[0] for path in files} == set(EXCHANGES)
    for path in files:
        lines = path.read_bytes().splitlines()
        assert lines and all(orjson.loads(line)["frame"] for line in lines)  # every line complete
    assert any("stopping (signal 15)" in line for line in server.lines.items)
    if not os.environ.get("SECRET_KEY") and not os.environ.get("SECRET"):  # the README says it is logged
        assert any("no SECRET_KEY set: generated one" in line for line in server.lines.items)


def test_a_shutdown_that_hangs_ends_at_its_deadline_with_every_stack_and_the_reason_logged():
    """A shutdown step that blocks the whole process (the eventlet hub too, as a stuck listener or emit could) is
    ended SHUTDOWN_DEADLINE_S after the signal by the deadline's OS thread: stacks, one line naming the step, exit 3."""
    server = ServerProcess("--replay", "--no-rest", "--no-history",
                           env={"DASHBOARD_TEST_SHUTDOWN_HANG": "1", "SHUTDOWN_DEADLINE_S": "1"})
    started = time.monotonic()
    status = server.stop()  # kills by pid after 15 s whatever happens
    assert status == 3 and time.monotonic() - started < 10
    lines = server.lines.wait_for(lambda lines: any("shutdown did not finish" in line for line in lines))
    reason = next(line for line in lines if "shutdown did not finish" in line)
    assert "within 1 s of the signal (stuck in: a test's hang (DASHBOARD_TEST_SHUTDOWN_HANG))" in reason
    assert any(line.startswith(("Thread 0x", "Current thread 0x")) for line in lines)  # faulthandler's stacks
    assert any("_hang_for_tests" in line for line in lines)  # the stuck step's own frame among them


def test_socketio_from_another_origin_is_refused_by_default(replay_server):
    endpoint = replay_server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(endpoint, origin="http://evil.example", timeout=5)
    same = websocket.create_connection(endpoint, origin=replay_server.url, timeout=5)
    assert same.recv().startswith("0{")  # the Engine.IO open packet
    same.close()


def metric(server, name):
    _, metrics = get(server.url + "/metrics")
    return float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith(name + " ")))


def test_a_slow_client_is_conflated_not_queued_without_bound():
    """A client that stops reading its socket (raw Engine.IO over websocket, so nothing reads for it) is skipped
    instead of queued for, the others keep being served, and once it reads again it gets a fresh backfill."""
    server = ServerProcess("--replay", "--speed", "max", "--no-rest", "--subscribe-rate", "100")
    try:
        # One packet per interval carries all its markets: many markets and a small receive buffer fill the socket
        # buffers in seconds, so its own queue starts to grow.
        slow = websocket.create_connection(server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                                           timeout=10, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
        assert slow.recv().startswith("0{")  # Engine.IO open
        slow.send("40")  # Socket.IO connect to "/"
        while not slow.recv().startswith("40"):  # the connect handler's own events may come first
            pass
        offer = orjson.loads(get(server.url + "/api/markets")[1])
        busy = ["binance:NKN-USDT", "bitstamp:ETH-USD", "gemini:FIL-USD"]  # busy books
        others = [f"{name}:{symbol}" for name, symbols in sorted(offer["available"].items()) for symbol in symbols]
        for market in (busy + [m for m in others if m not in busy])[:40]:
            slow.send(f'42["subscribe",{{"market":"{market}"}}]')
        fast, fast_events = connect(server)
        fast.emit("subscribe", {"market": "binance:NKN-USDT"})
        deadline = time.monotonic() + 40  # before Engine.IO's own ping timeout would close the silent client
        while metric(server, "dashboard_batches_conflated_total") == 0:  # the kernel buffers fill first
            assert time.monotonic() < deadline, "the slow client was never skipped"
            count = len(fast_events["ticks"].items)
            fast_events["ticks"].wait_for(lambda batches: len(batches) > count, timeout=10)  # fast: unaffected
        # the gauge is read at its own moment: the skipped client shows in it while its packets wait
        while metric(server, "dashboard_clients_behind") != 1:
            assert time.monotonic() < deadline, "the slow client was never counted behind"
            time.sleep(0.05)
        slow.settimeout(30)
        resynced = set()
        while len(resynced) < 3:  # read again (answering pings): the backlog drains, then the resync arrives
            message = slow.recv()
            if message == "2":
                slow.send("3")
            if message.startswith('42["backfill"'):
                resynced.update(m for m in ("binance:NKN-USDT", "bitstamp:ETH-USD", "gemini:FIL-USD")
                                if f'"market":"{m}"' in message)
        slow.close()
        fast.disconnect()
    finally:
        assert server.stop() == 0


def test_a_replay_starts_quietly_and_ends_its_start_up_with_the_address():
    """What a replay expects (no REST listing or backfill on most local venues) is INFO, not WARNING; the local
    exchange's per-connection lines are not shown; "serving http://..." comes after every feed's first attempt."""
    server = ServerProcess("--replay", "--speed", "5")
    try:
        lines = server.lines.items
        serving = next(index for index, line in enumerate(lines) if "serving http" in line)
        start_up = lines[:serving + 1]
        assert not [line for line in start_up if " WARNING " in line or " ERROR " in line]
        assert not [line for line in start_up if "connection open" in line or "HTTP response sent" in line]
        for name in EXCHANGES:  # each feed's first attempt ended (live here) before the address
            assert any(f" {name}: live" in line for line in start_up), name
    finally:
        assert server.stop() == 0
