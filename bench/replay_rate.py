"""Tick rate through the whole spine in replay: local exchange -> listeners -> hub -> Socket.IO -> one client.

    python bench/replay_rate.py [--speeds 1,max] [--seconds 10]

For each speed it starts `server.py --replay --speed S` in its own process, subscribes one python-socketio
client to every market the recordings hold, and prints frames/s into the listeners (from the `feeds` counters)
and ticks/s delivered to the client, side by side, with the machine they ran on.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import socketio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dashboard.fanout import listen  # noqa: E402  (the parts of a `batch` packet, as events)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure(speed: str, seconds: float, max_markets: int) -> dict:
    port = free_port()
    history = tempfile.mkdtemp(prefix="bench-history-")  # a fresh store, never the project's own data/
    server = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--replay", "--speed", speed,
                               "--port", str(port), "--log-level", "WARNING", "--no-rest", "--subscribe-rate", "1000",
                               "--max-markets-per-client", "1000",
                               "--history-url", f"sqlite:///{history}/history.sqlite3"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = socketio.Client()
        offer, feeds, received = {}, {}, [0]
        ready = threading.Event()
        client.on("markets", lambda data: (offer.update(data), ready.set()))
        listen(client, "feeds", lambda data: feeds.update(  # exchange -> frames: the full status, then its changes
            {f["exchange"]: f["frames"] for f in data} if isinstance(data, list) else
            {name: f["frames"] for name, f in data["changed"].items() if f and "frames" in f}))
        listen(client, "ticks", lambda batch: received.__setitem__(0, received[0] + len(batch["ticks"])))
        for _ in range(200):  # the server needs a moment to bind
            try:
                client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
                break
            except socketio.exceptions.ConnectionError:
                time.sleep(0.05)
        ready.wait(10)
        markets = [f"{name}:{symbol}" for name, symbols in offer["available"].items()
                   for symbol in symbols][:max_markets]
        for market in markets:
            client.call("subscribe", {"market": market})
        time.sleep(2)  # warm-up: every market subscribed and streaming
        frames_before, ticks_before = sum(feeds.values()), received[0]
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        frames_after, ticks_after = sum(feeds.values()), received[0]
        client.disconnect()
        return {"speed": speed, "markets": len(markets), "frames_per_s": (frames_after - frames_before) / elapsed,
                "ticks_per_s": (ticks_after - ticks_before) / elapsed}
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(history, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speeds", default="1,max")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-markets", type=int, default=1000, help="subscribe at most this many markets")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"{'speed':>6} {'markets':>8} {'frames/s in':>12} {'ticks/s to client':>18}")
    for speed in args.speeds.split(","):
        row = measure(speed, args.seconds, args.max_markets)
        print(f"{row['speed']:>6} {row['markets']:>8} {row['frames_per_s']:>12.0f} {row['ticks_per_s']:>18.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
