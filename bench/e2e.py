"""The whole path, end to end: the local exchange replays at full speed into the real server (its own process),
and N Socket.IO clients watch the default markets. Both async modes side by side in one run.

    python bench/e2e.py [--clients 1,50,500] [--modes eventlet,threading] [--seconds 10] [--speed max]

Reports frames/s into the listeners, ticks/s delivered per client, tick age at the client (client receipt minus
listener receipt) p50 / p99 / max, and the server's CPU and RSS (the local exchange is another process: not
counted). Clients are python-socketio AsyncClients on asyncio, spread over --procs processes.

    python bench/e2e.py --webs 0,2,4 --clients 2000 --speed 50   # team mode: 1 collector, N web processes, Redis

With --webs N > 0 the clients are spread over the web processes, and CPU and RSS are the sum of every server process
(collector, web processes, redis-server).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import socketio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dashboard.fanout import listen  # noqa: E402  (the parts of a `batch` packet, as events)

TICKS_PER_SECOND_CLOCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND_CLOCK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_server(mode: str, speed: str, port: int, *extra: str) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py"), "--replay", "--speed", speed, "--async-mode", mode, "--port",
         str(port), "--no-history", "--no-rest", "--log-level", "WARNING", "--subscribe-rate", "1000", *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # ready when the port answers
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("server did not start")


@contextlib.contextmanager
def running_server(mode: str, speed: str):
    """A replaying server for the length of a `with`; yields (port, pid)."""
    port = free_port()
    server = start_server(mode, speed, port)
    try:
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(15)


@contextlib.contextmanager
def running_team(mode: str, speed: str, webs: int):
    """Team mode for a `with`: a redis-server, a collector and `webs` web processes; yields (web URLs, pids of
    every server process: collector, webs and Redis). `webs` = 0: the one-process server."""
    if webs == 0:
        with running_server(mode, speed) as (port, pid):
            yield [f"http://127.0.0.1:{port}"], [pid]
        return
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.PIPE, text=True)
    for line in redis.stdout:
        if "Ready to accept connections" in line:
            break
    queue = ("--redis-url", f"redis://127.0.0.1:{redis_port}/0")
    processes = [start_server(mode, speed, free_port(), "--role", "collector", *queue)]
    ports = [free_port() for _ in range(webs)]
    processes += [start_server(mode, speed, port, "--role", "web", *queue) for port in ports]
    try:
        yield [f"http://127.0.0.1:{port}" for port in ports], [p.pid for p in processes] + [redis.pid]
    finally:
        for process in processes + [redis]:
            process.terminate()
        for process in processes + [redis]:
            process.wait(15)


def feed_counter(payload, field: str) -> dict:
    """exchange -> `field` from one `feeds` event: the full status (a list, on connect) or what changed since
    ({"now", "changed": {exchange: {field: value}}})."""
    if isinstance(payload, list):
        return {status["exchange"]: status[field] for status in payload}
    return {name: fields[field] for name, fields in payload.get("changed", {}).items() if fields and field in fields}


async def swarm(urls: list, first: int, clients: int, start_at: float, seconds: float, report_feeds: bool) -> dict:
    """`clients` Socket.IO clients, numbered from `first` (spread over `urls` by number), measuring from wall-clock
    `start_at` for `seconds`."""
    counts, ages, feeds, markets = [0] * clients, [], {}, []
    measuring = asyncio.Event()
    connected, failed = [], [0]
    got_markets = asyncio.Event()

    async def one(index: int):
        client = socketio.AsyncClient(reconnection=False)

        def on_ticks(batch):
            if not measuring.is_set():
                return
            now = time.time() * 1000
            counts[index] += len(batch["ticks"])
            if first + index < 5:  # ages from a few clients are enough, and cheap
                ages.extend(now - tick["received"] for tick in batch["ticks"] if "received" in tick)

        async def on_markets(offer):
            markets[:] = offer["watchlist"]
            got_markets.set()

        def on_feeds(payload):
            feeds.update(feed_counter(payload, "frames"))

        listen(client, "ticks", on_ticks)
        if index == 0:
            client.on("markets", on_markets)
            if report_feeds:
                listen(client, "feeds", on_feeds)
        try:
            await client.connect(urls[(first + index) % len(urls)], transports=["websocket"], wait_timeout=20)
        except socketio.exceptions.ConnectionError:  # counted: a server that refuses clients is a result too
            failed[0] += 1
            return
        connected.append(client)

    await one(0)
    await asyncio.wait_for(got_markets.wait(), 20)
    for start in range(1, clients, 50):  # connect in waves, not all at once
        await asyncio.gather(*(one(i) for i in range(start, min(clients, start + 50))))
    for client in connected:
        for market in markets:
            await client.emit("subscribe", {"market": market})
    await asyncio.sleep(max(0.0, start_at - time.time()))
    frames_before = sum(feeds.values())
    measuring.set()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    measuring.clear()
    elapsed = time.monotonic() - started
    frames_after = sum(feeds.values())
    await asyncio.gather(*(client.disconnect() for client in connected), return_exceptions=True)
    return {"frames": frames_after - frames_before, "elapsed": elapsed, "counts": counts, "ages": ages,
            "failed": failed[0]}


def _swarm_process(args, results):
    """One client process: its share of the clients (a multiprocessing target, so at module level)."""
    try:
        results.put(asyncio.run(swarm(*args)))
    except Exception as failure:  # reported, so the parent does not wait forever
        results.put({"error": f"{type(failure).__name__}: {failure}"})


def measure(urls: list, clients: int, processes: int, warmup_s: float, seconds: float) -> dict:
    """Clients spread over `processes` processes (so client-side decoding is not one core's worth), measuring
    one common wall-clock window that starts once every process has had time to connect and subscribe."""
    processes = max(1, min(processes, clients))
    share = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    start_at = time.time() + warmup_s + clients / 100  # connecting 500 clients takes a few seconds
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers, first = [], 0
    for index, count in enumerate(share):
        worker = context.Process(target=_swarm_process,
                                 args=((urls, first, count, start_at, seconds, index == 0), results))
        worker.start()
        workers.append(worker)
        first += count
    parts = [results.get(timeout=start_at - time.time() + seconds + 120) for _ in workers]
    for worker in workers:
        worker.join(30)
    errors = [part["error"] for part in parts if "error" in part]
    if errors:
        raise RuntimeError("; ".join(errors))
    elapsed = max(part["elapsed"] for part in parts)
    counts = [count for part in parts for count in part["counts"]]  # a client that never connected counts 0
    ages = sorted(age for part in parts for age in part["ages"])
    return {"frames_per_s": sum(part["frames"] for part in parts) / elapsed,
            "ticks_per_client": statistics.mean(counts) / elapsed, "slowest_client": min(counts) / elapsed,
            "p50": ages[len(ages) // 2] if ages else None, "p99": ages[int(len(ages) * 0.99)] if ages else None,
            "max": ages[-1] if ages else None, "connected": clients - sum(part["failed"] for part in parts)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,50,500")
    parser.add_argument("--modes", default="eventlet,threading")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--speed", default="max")
    parser.add_argument("--webs", "--web", default="0", help="team mode: web processes behind one collector and Redis, "
                        "e.g. 0,2,4 (0: the one-process server)")
    parser.add_argument("--procs", type=int, default=min(4, os.cpu_count() or 1),
                        help="client processes the clients are spread over")
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"replay speed {args.speed}, {args.seconds:g} s measured after {args.warmup:g} s, "
          f"clients in {args.procs} processes")
    print(f"{'mode':<10} {'webs':>4} {'clients':>7} {'connected':>9} {'frames/s in':>12} {'ticks/s/client':>15} {'slowest':>8} "
          f"{'age p50 ms':>11} {'p99 ms':>8} {'max ms':>8} {'CPU %':>6} {'RSS MB':>7}")
    for mode in args.modes.split(","):
        for webs in map(int, args.webs.split(",")):
            for clients in map(int, args.clients.split(",")):
                with running_team(mode, args.speed, webs) as (urls, pids):
                    cpu_before, wall_before = sum(map(cpu_seconds, pids)), time.monotonic()
                    row = measure(urls, clients, args.procs, args.warmup, args.seconds)
                    cpu = (sum(map(cpu_seconds, pids)) - cpu_before) / (time.monotonic() - wall_before) * 100
                    rss = sum(map(rss_mb, pids))
                fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"  # noqa: E731
                print(f"{mode:<10} {webs:>4} {clients:>7} {row['connected']:>9} {row['frames_per_s']:>12,.0f} "
                      f"{row['ticks_per_client']:>15,.0f} {row['slowest_client']:>8,.0f} {fmt(row['p50']):>11} "
                      f"{fmt(row['p99']):>8} {fmt(row['max']):>8} {cpu:>6.0f} {rss:>7.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
