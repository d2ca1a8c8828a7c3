"""The fan-out on one core: N browsers watching the default markets, against the limit of a minimal broadcast server.

    python bench/fanout.py [--clients 100,500,1000,2000,5000] [--seconds 20] [--speed 5] [--procs 2]

For each N the real server (`server.py --replay`, eventlet) runs pinned to core 0 (`taskset -c 0`); the local
exchange it starts is moved to core 1, where the load runs too: N raw Engine.IO clients (a websocket each, spread
over --procs processes) that connect, subscribe to the watchlist (7 markets, one per exchange), answer pings, count
`batch` packets and the ticks in them (the `"seq":` fields), and decode every packet of one client in
--sample-every, for the tick age (client receipt minus listener receipt, one clock); plus --full full
python-socketio clients (dashboard.fanout.listen) measuring the same age. The raw clients parse websocket frames
themselves (a header, a length, a prefix test): a websocket library's per-frame work would make the load, not the
server, the bottleneck at thousands of clients.

Then the limit, side by side: a minimal server written with the `websockets` library's `broadcast()` (`--peer-serve`,
pinned to core 0 too) pushes packets of the size ours sent, at the interval ours had in force, to the same number
of clients. Ours and its packets per second per core (client packets delivered / server CPU share) are compared.

Reported per N: clients connected, packets and ticks per client per second (mean and the slowest client: nobody
starved), tick age p50/p99/max over the sampled clients, server CPU % and RSS, frames/s into the listeners, the emit
interval in force (dashboard_emit_interval_ms, at the end and the longest seen), the peer's packets per client per
second and CPU %, ours / peer in packets per second per core, and the ramp: how long the N clients took to connect
and subscribe (every subscribe's backfill, before the measured window).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import cpu_seconds, free_port, rss_mb  # noqa: E402

SERVER_CORE, LOAD_CORE = 0, 1


def pinning() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pin_process(pid: int, core: int) -> None:
    """Every thread of `pid` to `core` (taskset -p moves one thread only)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), {core})
        except OSError:
            pass


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def metric(port: int, name: str) -> float:
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return 0.0


def frames_in(port: int) -> float:
    total = 0.0
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith("dashboard_frames_total{"):
            total += float(line.split()[-1])
    return total


def wait_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not listen in time")


def start_server(port: int, speed: str, ring_size: int, interval_ms: int, log_to: str = None) -> subprocess.Popen:
    """`log_to`: a file for the server's log at INFO (the pacing's steps and why), appended to; else no log."""
    command = [sys.executable, str(ROOT / "server.py"), "--replay", "--speed", speed, "--port", str(port),
               "--no-history", "--no-rest", "--log-level", "INFO" if log_to else "WARNING", "--subscribe-rate",
               "1000", "--ring-size", str(ring_size), "--emit-interval-ms", str(interval_ms),
               "--max-pending-headers", "1024"]
    if pinning():
        command = ["taskset", "-c", str(SERVER_CORE), *command]
    log = open(log_to, "a") if log_to else subprocess.DEVNULL
    try:
        server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    finally:
        if log_to:
            log.close()
    wait_port(port, server)
    if pinning():
        for child in children(server.pid):  # the local exchange: with the load, not on the server's core
            pin_process(child, LOAD_CORE)
    return server


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# --- the load: raw Engine.IO clients ------------------------------------------------------------------------------
def client_frame(text: bytes) -> bytes:
    """A client's websocket text frame (masked, as RFC 6455 requires; the zero mask leaves the bytes as they are)."""
    n = len(text)
    header = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return header + b"\0\0\0\0" + text


class RawClient(asyncio.Protocol):
    """One websocket: Engine.IO/Socket.IO ("eio") or the peer's plain messages ("peer")."""

    def __init__(self, port: int, path: str, kind: str, markets: list, stats: "Stats", sampled: bool):
        self.port, self.path, self.kind, self.markets, self.stats, self.sampled = port, path, kind, markets, stats, sampled
        self.buffer = bytearray()
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.packets = self.ticks = 0
        self.backfills = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write((f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def connection_lost(self, exc):
        if not self.ready.done():
            self.ready.set_result(False)

    def send(self, text: str) -> None:
        self.transport.write(client_frame(text.encode()))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.transport.close()
                return
            del buffer[:end + 4]
            self.upgraded = True
            if self.kind == "peer" and not self.ready.done():
                self.ready.set_result(True)
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[start:start + length])
            del buffer[:start + length]
            if opcode == 1:
                self.message(payload)
            elif opcode == 8:
                self.transport.close()
                return

    def message(self, payload: bytes) -> None:
        stats = self.stats
        if self.kind == "peer":
            if stats.measuring:
                self.packets += 1
                if self.sampled:
                    stats.ages.append(time.time() * 1000 - json.loads(payload[2:])[1]["sent"])
            return
        if payload.startswith(b'42["batch"'):
            if stats.measuring:
                self.packets += 1
                self.ticks += payload.count(b'"seq":')
                stats.bytes += len(payload)
                stats.sizes += 1
                if self.sampled:
                    now = time.time() * 1000
                    packet = json.loads(payload[2:])[1]
                    for part in packet.get("ticks", ()):
                        stats.ages.extend(now - tick["received"] for tick in part["ticks"] if "received" in tick)
        elif payload.startswith(b'42["backfill"'):
            self.backfills += 1
            if self.backfills == len(self.markets) and not self.ready.done():
                self.ready.set_result(True)  # subscribed to every market: the ramp's cost is behind it
        elif payload == b"2":
            self.send("3")
        elif payload.startswith(b"0{"):
            self.send("40")
        elif payload.startswith(b"40"):
            for market in self.markets:
                self.send(f'42["subscribe",{{"market":"{market}"}}]')


class Stats:
    def __init__(self):
        self.measuring = False
        self.ages: list = []
        self.full_ages: list = []
        self.bytes = self.sizes = 0


async def load(port: int, kind: str, first: int, count: int, markets: list, seconds: float, sample_every: int,
               full: int, ready, go, start_at) -> dict:
    loop = asyncio.get_running_loop()
    stats = Stats()
    path = "/socket.io/?EIO=4&transport=websocket" if kind == "eio" else "/"
    clients = []

    async def one(index: int):
        client = RawClient(port, path, kind, markets, stats, (first + index) % sample_every == 0)
        try:
            await loop.create_connection(lambda: client, "127.0.0.1", port)
            if await asyncio.wait_for(client.ready, 60):
                clients.append(client)
        except (OSError, asyncio.TimeoutError):
            pass

    for start in range(0, count, 50):  # in waves: the server lets a bounded number wait on their request
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 50))))
    full_clients = []
    if kind == "eio" and full:
        import socketio
        from dashboard.fanout import listen
        for _ in range(full):
            sio = socketio.AsyncClient(reconnection=False)

            def on_ticks(batch):
                if stats.measuring:
                    now = time.time() * 1000
                    stats.full_ages.extend(now - t["received"] for t in batch["ticks"] if "received" in t)
            listen(sio, "ticks", on_ticks)
            try:  # a server still busy with the ramp may refuse one: the raw clients' figures stand without it
                await sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=30)
            except socketio.exceptions.ConnectionError:
                continue
            for market in markets:
                await sio.emit("subscribe", {"market": market})
            full_clients.append(sio)
    ready.put(len(clients))  # every client of this process connected and subscribed
    while not go.is_set():
        await asyncio.sleep(0.1)
    await asyncio.sleep(max(0.0, start_at.value - time.time()))
    stats.measuring = True
    started = time.monotonic()
    await asyncio.sleep(seconds)
    stats.measuring = False
    elapsed = time.monotonic() - started
    while go.is_set():  # connected until the server's last reading: thousands of disconnects are not measured
        await asyncio.sleep(0.05)
    for client in clients:
        client.transport.close()
    for sio in full_clients:
        await sio.disconnect()
    return {"connected": len(clients), "packets": [c.packets / elapsed for c in clients],
            "ticks": [c.ticks / elapsed for c in clients], "ages": stats.ages, "full_ages": stats.full_ages,
            "bytes": stats.bytes, "sizes": stats.sizes}


def _load_process(args, results):
    if pinning():
        os.sched_setaffinity(0, {LOAD_CORE})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results.put(asyncio.run(load(*args)))


def run_load(port: int, kind: str, clients: int, procs: int, markets: list, warmup: float, seconds: float,
             sample_every: int, full: int, sample_server=None) -> tuple[dict, list]:
    """The load processes' results merged, and `sample_server()`'s readings at the window's start and end. The
    window opens `warmup` s after every client is connected and subscribed (the ramp is not measured)."""
    results, ready, go = multiprocessing.Queue(), multiprocessing.Queue(), multiprocessing.Event()
    start_at = multiprocessing.Value("d", 0.0)
    share = [clients // procs + (1 if p < clients % procs else 0) for p in range(procs)]
    workers = [multiprocessing.Process(target=_load_process, args=(
        (port, kind, sum(share[:p]), share[p], markets, seconds, sample_every, full if p == 0 else 0, ready, go,
         start_at), results)) for p in range(procs) if share[p]]
    for worker in workers:
        worker.start()
    ramp_from = time.monotonic()
    for _ in workers:
        while True:  # a load process that died says so, not a 10-minute wait
            try:
                ready.get(timeout=1)
                break
            except queue.Empty:
                if any(worker.exitcode not in (None, 0) for worker in workers):
                    raise SystemExit("a load process failed (see above)")
                if time.monotonic() - ramp_from > 900:
                    raise SystemExit("the clients did not all connect and subscribe within 15 minutes")
    ramp_s = time.monotonic() - ramp_from
    start_at.value = time.time() + warmup
    go.set()
    readings = []
    time.sleep(max(0.0, start_at.value - time.time()))
    if sample_server:
        readings.append(sample_server())
        peak = 0.0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            try:  # a server too busy to answer /metrics in time: the next reading will do
                peak = max(peak, sample_server()["interval"])
            except OSError:
                pass
        readings.append({**sample_server(), "peak_interval": peak, "ramp": ramp_s})
    go.clear()  # the load processes may disconnect now
    merged = {"connected": 0, "packets": [], "ticks": [], "ages": [], "full_ages": [], "bytes": 0, "sizes": 0}
    for _ in workers:
        part = results.get(timeout=seconds + 120)
        for key in merged:
            merged[key] += part[key]
    for worker in workers:
        worker.join(10)
    return merged, readings


# --- the peer: websockets' broadcast() -----------------------------------------------------------------------------
async def peer_serve(port: int, size: int, interval_ms: int) -> None:
    import websockets
    from websockets.asyncio.server import broadcast, serve

    connections = set()

    async def handler(websocket):
        connections.add(websocket)
        try:
            await websocket.wait_closed()
        finally:
            connections.discard(websocket)

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None, ping_interval=None):
        print("ready", flush=True)
        while True:
            await asyncio.sleep(interval_ms / 1000)
            head = '42["batch",{"sent":%d,"pad":"' % (time.time() * 1000)
            broadcast(connections, head + "x" * max(0, size - len(head) - 3) + '"}]')


def percentile(values: list, q: float):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def fmt(value, digits=0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def point(clients: int, args) -> dict:
    port = free_port()
    if args.server_log:
        with open(args.server_log, "a") as log:
            log.write(f"--- {clients} clients, {time.strftime('%H:%M:%S')}\n")
    server = start_server(port, args.speed, args.ring_size, args.interval_ms, args.server_log)
    try:
        markets = json.loads(get(f"http://127.0.0.1:{port}/api/markets"))["watchlist"]

        def sample():
            return {"cpu": cpu_seconds(server.pid), "at": time.monotonic(), "rss": rss_mb(server.pid),
                    "frames": frames_in(port), "interval": metric(port, "dashboard_emit_interval_ms"),
                    "client_packets": metric(port, "dashboard_client_packets_total")}
        ours, (before, after) = run_load(port, "eio", clients, args.procs, markets, args.warmup, args.seconds,
                                         args.sample_every, args.full, sample)
    finally:
        stop(server)
    elapsed = after["at"] - before["at"]
    cpu = (after["cpu"] - before["cpu"]) / elapsed
    size = int(ours["bytes"] / ours["sizes"]) if ours["sizes"] else 100
    interval = int(after["interval"]) or args.interval_ms
    row = {"clients": clients, "connected": ours["connected"], "markets": len(markets),
           "packets": statistics.fmean(ours["packets"]) if ours["packets"] else 0.0,
           "slowest": min(ours["packets"], default=0.0),
           "ticks": statistics.fmean(ours["ticks"]) if ours["ticks"] else 0.0,
           "p50": percentile(ours["ages"], 0.5), "p99": percentile(ours["ages"], 0.99),
           "max": max(ours["ages"], default=None), "full_p99": percentile(ours["full_ages"], 0.99),
           "cpu": 100 * cpu, "rss": after["rss"], "frames": (after["frames"] - before["frames"]) / elapsed,
           "interval": interval, "peak_interval": int(after["peak_interval"]), "size": size, "ramp": after["ramp"]}
    row["per_core"] = sum(ours["packets"]) / cpu if cpu > 0 else None
    if not args.no_peer:
        port = free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "--peer-serve", str(port), "--size", str(size),
                   "--peer-interval-ms", str(interval)]
        if pinning():
            command = ["taskset", "-c", str(SERVER_CORE), *command]
        peer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            peer.stdout.readline()  # "ready"
            box = {}

            def sample_peer():
                return {"cpu": cpu_seconds(peer.pid), "at": time.monotonic(), "interval": interval}
            theirs, (p_before, p_after) = run_load(port, "peer", clients, args.procs, [], args.warmup / 2,
                                                   args.seconds, args.sample_every, 0, sample_peer)
            box["cpu"] = (p_after["cpu"] - p_before["cpu"]) / (p_after["at"] - p_before["at"])
        finally:
            stop(peer)
        row["peer_packets"] = statistics.fmean(theirs["packets"]) if theirs["packets"] else 0.0
        row["peer_cpu"] = 100 * box["cpu"]
        row["peer_per_core"] = sum(theirs["packets"]) / box["cpu"] if box["cpu"] > 0 else None
        row["peer_p99"] = percentile(theirs["ages"], 0.99)
    return row


COLUMNS = ("clients", "connected", "packets/s/client", "slowest", "ticks/s/client", "age p50 ms", "p99 ms",
           "max ms", "full clients p99 ms", "server CPU %", "RSS MB", "frames/s in", "interval ms (peak)",
           "packet bytes", "peer packets/s/client", "peer CPU %", "peer p99 ms", "ours / peer per core",
           "ramp s")


def table_row(row: dict) -> list:
    ratio = (row["per_core"] / row["peer_per_core"] if row.get("per_core") and row.get("peer_per_core") else None)
    return [f"{row['clients']:,}", f"{row['connected']:,}", fmt(row["packets"], 1), fmt(row["slowest"], 1),
            fmt(row["ticks"], 1), fmt(row["p50"], 1), fmt(row["p99"], 1), fmt(row["max"], 1),
            fmt(row["full_p99"], 1), fmt(row["cpu"]), fmt(row["rss"]), fmt(row["frames"]),
            f"{row['interval']} ({row['peak_interval']})", f"{row['size']:,}", fmt(row.get("peer_packets"), 1),
            fmt(row.get("peer_cpu")), fmt(row.get("peer_p99"), 1), fmt(ratio, 2), fmt(row["ramp"])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="100,500,1000,2000,5000")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured per point")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--speed", default="5", help="replay pace (a multiple of the recorded pace, or max)")
    parser.add_argument("--procs", type=int, default=2, help="load processes (all on the load core)")
    parser.add_argument("--sample-every", type=int, default=50, help="decode every packet of one client in this many")
    parser.add_argument("--full", type=int, default=3, help="full python-socketio clients measuring tick age")
    parser.add_argument("--ring-size", type=int, default=20, help="the server's RING_SIZE: each subscribe's "
                        "backfill is start-up cost, not what is measured")
    parser.add_argument("--interval-ms", type=int, default=50, help="the server's EMIT_INTERVAL_MS")
    parser.add_argument("--no-peer", action="store_true", help="skip the websockets broadcast() peer")
    parser.add_argument("--server-log", help="append the server's log (INFO: the pacing's steps) to this file")
    parser.add_argument("--peer-serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--peer-interval-ms", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_serve:
        asyncio.run(peer_serve(args.peer_serve, args.size, args.peer_interval_ms))
        return 0
    where = (f"server and peer on core {SERVER_CORE}, local exchange and load on core {LOAD_CORE}" if pinning()
             else "NOT pinned (taskset missing or one core): figures are not the server's own capacity")
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {where}; "
          f"speed {args.speed}, {args.seconds:g} s measured per point, EMIT_INTERVAL_MS {args.interval_ms}")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS), flush=True)
    for clients in [int(n) for n in args.clients.split(",")]:  # each row as it is measured
        print("| " + " | ".join(table_row(point(clients, args))) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
