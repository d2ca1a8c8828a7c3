"""Start the dashboard: read configuration, build the app, start the listeners, run the server.

    python server.py                      live feeds, http://127.0.0.1:5000
    python server.py --replay             offline: the local exchange replays the shipped recordings
    python server.py --help               every flag (each also readable from the environment or .env)
"""
from __future__ import annotations

import argparse
import os
import sys


def _async_mode(argv) -> str:
    """Read ASYNC_MODE before anything else is imported: eventlet must patch the standard library first."""
    from dotenv import dotenv_values
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--async-mode")
    known, _ = early.parse_known_args(argv)
    env_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".env")
    from_file = dotenv_values(env_file).get("ASYNC_MODE") if os.path.isfile(env_file) else None
    return known.async_mode or os.environ.get("ASYNC_MODE") or from_file or "eventlet"


if _async_mode(sys.argv[1:]) == "eventlet":
    import warnings
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # chosen knowingly: see README
    import eventlet
    eventlet.monkey_patch()

import json  # noqa: E402  (after monkey patching, on purpose)
import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from dashboard.app import create_app  # noqa: E402
from dashboard.config import leftovers, load_settings  # noqa: E402
from dashboard.history import StoreModeError  # noqa: E402
from dashboard.serving import raise_open_file_limit, serve  # noqa: E402
from exchanges.recording import Recorder  # noqa: E402

log = logging.getLogger("server")


CHILDREN: list = []  # processes to end with the server


def start_local_exchange(settings) -> dict:
    """Start the local exchange in its own process (asyncio there, eventlet here) and wait until it listens."""
    command = [sys.executable, "-m", "exchanges.simulator", "--exit-with-parent", "--speed", str(settings.speed or "max"),
               *(arg for spec in settings.faults for arg in ("--fault", spec)), *settings.replay]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(os.path.abspath(__file__)))
    CHILDREN.append(process)
    line = process.stdout.readline()
    if not line:
        raise SystemExit("the local exchange did not start (see the messages above)")
    return json.loads(line)


ANNOUNCE_WAIT_S = 3.0  # at most this long for the feeds' first connection attempts before "serving ..."


def announce_when_listening(socketio, settings, mode, feeds=None) -> None:
    """Log "serving ..." once the port accepts connections: the line people (and tests) wait for. It waits for
    every feed's first connection attempt to end too (at most ANNOUNCE_WAIT_S), so the address to open is the last
    line of start-up, not buried among the feeds' first state lines."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    while True:
        try:
            socket.create_connection((host, settings.port), timeout=1).close()
            break
        except OSError:
            socketio.sleep(0.05)
    deadline = time.monotonic() + ANNOUNCE_WAIT_S
    while feeds is not None and time.monotonic() < deadline and any(
            status["state"] == "connecting" for status in feeds.status()):
        socketio.sleep(0.05)
    log.info("serving http://%s:%d (%s, async_mode=%s)", settings.host, settings.port, mode, settings.async_mode)


def main(argv=None) -> int:
    try:
        settings = load_settings(argv)
    except SystemExit as refused:  # a setting refused with its reason: one line, the usage error status
        if not isinstance(refused.code, str):
            raise  # argparse's own (--help: 0; a bad flag: 2, its usage already printed)
        print(f"server.py: error: {refused.code}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # our own line says when REST fails
    if settings.secret_generated:
        log.info("no SECRET_KEY set: generated one for this run (sessions end when the server restarts)")
    raise_open_file_limit()  # before anything is opened: every browser is one open file
    available = {}
    mode = settings.mode  # live or replay: each keeps its own history and listings (dashboard/config.py)
    log.info("%s: history %s, listings %s", mode, settings.history_url or "off",
             settings.listings_dir if settings.rest else "off")
    for path in leftovers(settings):
        log.warning("%s is from before live and replay were kept apart (it may hold both): no longer read, "
                    "delete it when you no longer need it (README, \"History and the API\")", path)
    if settings.replay is not None and settings.role != "web":  # a web process connects to no exchange
        local = start_local_exchange(settings)
        settings.ws_urls.update(local["urls"])
        settings.rest_urls.update(local["rest_urls"])
        available = local["markets"]
        if not settings.markets_from_cli:  # the recordings hold other pairs than a live watchlist
            settings.markets = [f"{name}:{symbols[0]}" for name, symbols in available.items()
                                if symbols and name in settings.exchanges]
        log.info("replay: local exchange at %s, watchlist %s", local["urls"], ",".join(settings.markets))
    recorder = Recorder(settings.record_dir) if settings.record_dir else None
    try:
        dashboard = create_app(settings, available=available, on_frame=recorder)
    except StoreModeError as refused:
        for child in CHILDREN:
            child.terminate()
        raise SystemExit(str(refused))

    def shut_down(signum, frame):
        # A signal handler runs on top of whatever was running (under eventlet, any green thread or the hub
        # itself, perhaps in the middle of a socket call): it only starts the shutdown as a task and returns.
        log.info("stopping (signal %d)", signum)
        dashboard.socketio.start_background_task(finish)

    def finish():
        dashboard.stop()  # listeners close their sockets, the history writes its last batch
        if recorder:
            recorder.close()
        for child in CHILDREN:
            child.terminate()
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    dashboard.start()
    dashboard.socketio.start_background_task(announce_when_listening, dashboard.socketio, settings,
                                             f"{mode}, role {settings.role}", dashboard.feeds)
    # Every role, in either async mode: the same server, limits and Host check (dashboard/serving.py). The
    # collector's app has no Socket.IO in it: only /healthz and /metrics.
    serve(dashboard.app, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
