"""Team mode with real processes: one collector, two web processes and a real redis-server (Debian's), all on
loopback, started and killed by the tests. Clients are python-socketio clients that behave as the page does: on
every (re)connect they subscribe their markets again, and a backfill replaces what they showed."""
import json
import os
import shutil
import signal
import subprocess

import pytest
import socketio

from conftest import get, ROOT, STALE_AFTER_S, TEAM_MARKET, Collector, free_port, listen, wait_until

# Skipped where redis-server is missing, except in CI (REQUIRE_TEAM=1), where that is a failure.
pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("REQUIRE_TEAM"),
                                reason="needs redis-server (apt install redis-server; .ci/run installs it)")
MARKET = TEAM_MARKET


def seqs(batches):
    return [tick["seq"] for batch in batches for tick in batch["ticks"]]


def test_clients_of_two_web_processes_get_the_same_ticks_and_a_new_one_backfills_from_redis(team):
    first = team.client(team.webs[0])
    first["ticks"].wait_for(lambda batches: len(seqs(batches)) >= 5, timeout=30)
    second = team.client(team.webs[1])
    [backfill] = second["backfill"].wait_for(lambda items: items)
    assert backfill["market"] == MARKET and len(backfill["ticks"]) >= 5  # written to Redis by the collector
    assert {tick["seq"] for tick in backfill["ticks"]} >= set(seqs(first["ticks"].items)[:5])
    start = max(seqs(first["ticks"].items)[-1], backfill["ticks"][-1]["seq"])
    for events in (first, second):
        events["ticks"].wait_for(lambda batches: len([s for s in seqs(batches) if s > start]) >= 10, timeout=30)
    end = min(seqs(first["ticks"].items)[-1], seqs(second["ticks"].items)[-1])
    window = [[s for s in seqs(events["ticks"].items) if start < s <= end] for events in (first, second)]
    assert window[0] == window[1] and len(window[0]) >= 10  # the same ticks, in the same order, once each
    status, body = get(f"{team.webs[1].url}/api/ticks?market={MARKET}")  # the collector's history, read here
    assert status == 200 and json.loads(body)["count"] > 0


def test_a_killed_web_process_leaves_the_other_alone_and_its_clients_come_back(team):
    stays, moves = team.client(team.webs[0]), team.client(team.webs[1])
    for events in (stays, moves):
        events["ticks"].wait_for(lambda batches: batches, timeout=30)
    killed = team.webs[1]
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait(10)
    before = len(seqs(stays["ticks"].items))
    stays["ticks"].wait_for(lambda batches: len(seqs(batches)) >= before + 10, timeout=30)
    assert len(stays["connect"].items) == 1  # never disconnected

    team.webs[1] = team.start_web(port=killed.port)  # the same address, as a supervisor would restart it
    moves["connect"].wait_for(lambda connects: len(connects) == 2, timeout=30)
    refill = moves["backfill"].wait_for(lambda items: len(items) == 2)[1]
    after = len(moves["ticks"].items)
    moves["ticks"].wait_for(lambda batches: len(batches) > after + 2, timeout=30)
    shown = [tick["seq"] for tick in refill["ticks"]]  # the backfill replaces the rows, then live ticks follow
    shown += [s for s in seqs(moves["ticks"].items[after:]) if s > shown[-1]]
    assert shown == sorted(set(shown))  # no duplicate rows, in order
    assert refill["ticks"][0]["seq"] <= seqs(moves["ticks"].items[:after])[-1]  # it covers the time it was down


def test_redis_going_away_shows_a_banner_crashes_nothing_and_publishing_resumes(team):
    events = team.client(team.webs[0])
    events["ticks"].wait_for(lambda batches: batches, timeout=30)
    team.redis.kill()
    [down] = events["service"].wait_for(lambda items: items, timeout=15)
    assert down["redis"] is False and "Redis unreachable" in down["reason"]
    status, body = get(team.collector.url + "/")  # the collector serves no page: it says where the page is
    assert status == 404 and "the page and the API are on the web processes" in json.loads(body)["error"]
    # the collector keeps its listeners (a restart would not bring Redis back): 200, and it says so once it has
    # met the outage itself (its next call to Redis, within a status period)
    def collector_says():
        status, body = get(team.collector.url + "/healthz")
        return status, json.loads(body)["redis"]
    status, redis = wait_until(lambda: (said := collector_says())[1] != "up" and said, timeout=15)
    assert status == 200 and redis.startswith("Redis unreachable: ") and not redis.endswith(".")
    status, body = get(team.webs[0].url + "/healthz")
    assert status == 503 and "Redis unreachable" in json.loads(body)["problem"]
    team.redis.start()
    events["service"].wait_for(lambda items: items[-1]["redis"] is True, timeout=15)
    assert wait_until(lambda: collector_says() == (200, "up"), timeout=15)
    count = len(events["ticks"].items)
    events["ticks"].wait_for(lambda batches: len(batches) >= count + 3, timeout=30)  # through Redis again
    for process in (team.collector, *team.webs):
        assert process.process.poll() is None


def test_a_killed_collector_shows_every_feed_down_within_the_stale_time(team):
    events = team.client(team.webs[0])
    events["feeds"].wait_for(lambda items: items and all(f["state"] == "live" for f in items[-1]), timeout=30)
    team.collector.process.send_signal(signal.SIGKILL)
    team.collector.process.wait(10)
    mark = len(events["feeds"].items)
    feeds = events["feeds"].wait_for(lambda items: len(items) > mark and all(
        f["state"] == "stale" for f in items[-1]), timeout=STALE_AFTER_S + 2)[-1]
    assert all("collector" in f["reason"] for f in feeds)
    status, body = get(team.webs[0].url + "/healthz")
    assert status == 503 and "no status from the collector" in json.loads(body)["problem"]
    team.collector = team.start_collector()
    events["feeds"].wait_for(lambda items: all(f["state"] == "live" for f in items[-1]), timeout=30)



def test_a_collector_stopped_cleanly_shows_every_feed_stopped_at_once(team):
    """SIGTERM: its last status says every feed stopped, so pages need not wait for the status to lapse. (It was
    taken part-way through the stop: two feeds stayed "live" until the key lapsed, then all turned "stale".)"""
    events = team.client(team.webs[0])
    events["feeds"].wait_for(lambda items: items and all(f["state"] == "live" for f in items[-1]), timeout=30)
    mark = len(events["feeds"].items)
    team.collector.process.send_signal(signal.SIGTERM)
    assert team.collector.process.wait(15) == 0
    # some status since shows every feed stopped (it lapses STALE_AFTER_S after: then every feed is stale)
    events["feeds"].wait_for(lambda items: any(all(f["state"] == "stopped" for f in feeds) for feeds in items[mark:]),
                             timeout=STALE_AFTER_S + 2)
    team.collector = team.start_collector()
    events["feeds"].wait_for(lambda items: all(f["state"] == "live" for f in items[-1]), timeout=30)


@pytest.mark.skipif(shutil.which("nginx") is None and not os.environ.get("REQUIRE_TEAM"),
                    reason="needs nginx (apt install nginx-light)")
def test_the_shipped_nginx_config_serves_both_web_processes_with_long_polling_and_websockets(team, tmp_path):
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    check = subprocess.run(["nginx", "-t", "-p", str(tmp_path), "-c", str(ROOT / "deploy" / "nginx.conf"),
                            "-e", "stderr"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    port = free_port()  # the same file, on free ports
    config = (config.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
              .replace("127.0.0.1:5001", f"127.0.0.1:{team.webs[0].port}")
              .replace("127.0.0.1:5002", f"127.0.0.1:{team.webs[1].port}"))
    (tmp_path / "nginx.conf").write_text(config)
    nginx = subprocess.Popen(["nginx", "-p", str(tmp_path), "-c", "nginx.conf", "-e", "stderr", "-g",
                              "daemon off;"], stderr=subprocess.PIPE, text=True)
    try:
        wait_until_listening(port)
        status, page = get(f"http://127.0.0.1:{port}/")
        assert status == 200 and 'id="panels"' in page
        for transports in (["polling"], ["websocket"]):  # polling needs the sticky upstream
            sio = socketio.Client(reconnection=False)
            ticks = Collector()
            listen(sio, "ticks", ticks)
            sio.connect(f"http://127.0.0.1:{port}", transports=transports, wait_timeout=10)
            try:
                assert sio.call("subscribe", {"market": MARKET}, timeout=10)["ok"]
                ticks.wait_for(lambda batches: len(batches) >= 3, timeout=30)
            finally:
                sio.disconnect()
    finally:
        nginx.terminate()
        nginx.wait(10)


def wait_until_listening(port):
    """nginx says nothing when ready: try until its port accepts, each try woken by the refusal itself."""
    import socket
    import time
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("REQUIRE_TEAM"),
                    reason="needs redis-server")
def test_a_redis_call_on_a_connection_redis_closed_meanwhile_is_tried_again_on_a_new_one():
    """After Redis restarted, the first call on a pooled connection failed ("Broken pipe"): a web process then told
    every page "Redis unreachable" and resynced them, minutes after Redis was back. Such a call is tried once more,
    on a new connection (bus.options, also Flask-SocketIO's Redis managers'); a timeout is not."""
    import redis
    from conftest import RedisServer
    from dashboard.bus import connect
    server = RedisServer()
    try:
        client = connect(server.url)
        client.ping()
        connection = client.connection_pool._available_connections[0]
        send, attempts = connection.send_packed_command, []

        def closed_by_redis_once(command, check_health=True):
            attempts.append(command)
            if len(attempts) == 1:
                raise redis.ConnectionError("Error 32 while writing to socket. Broken pipe.")
            return send(command, check_health)
        connection.send_packed_command = closed_by_redis_once
        assert client.publish("dashboard:test", "x") == 0 and len(attempts) > 1
        assert connection.retry._supported_errors == (redis.ConnectionError,)
        client.close()
    finally:
        server.kill()  # by its process, whatever happened
