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


def _shutdown_deadline_s() -> float:
    """SHUTDOWN_DEADLINE_S (environment or .env, default 10): how long a shutdown may take after SIGTERM/SIGINT."""
    from dotenv import dotenv_values
    env_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".env")
    from_file = dotenv_values(env_file).get("SHUTDOWN_DEADLINE_S") if os.path.isfile(env_file) else None
    return float(os.environ.get("SHUTDOWN_DEADLINE_S") or from_file or 10)


if _async_mode(sys.argv[1:]) == "eventlet":
    import warnings
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # chosen knowingly: see README
    import eventlet
    eventlet.monkey_patch()

import faulthandler  # noqa: E402  (after monkey patching, on purpose)
import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from dashboard.app import create_app  # noqa: E402
from dashboard.config import leftovers, load_settings  # noqa: E402
from dashboard.history import StoreModeError  # noqa: E402
from dashboard.serving import listen, raise_open_file_limit, serve  # noqa: E402
from exchanges.recording import Recorder  # noqa: E402

log = logging.getLogger("server")
EXIT_DEADLINE = 3  # the exit status of a shutdown ended by its deadline (a clean one exits 0)


def _os_threading():
    """The real threading and time modules: under eventlet the patched ones make green threads and sleeps, which a
    blocked hub (the very thing a deadline must outlive) would stop too."""
    if "eventlet" in sys.modules:
        import eventlet.patcher
        return eventlet.patcher.original("threading"), eventlet.patcher.original("time")
    import threading
    return threading, time


def _os_write():
    """The real os.write: eventlet's waits on its hub, which a signal handler may be running on."""
    if "eventlet" in sys.modules:
        import eventlet.patcher
        return eventlet.patcher.original("os").write
    return os.write


class ShutdownDeadline:
    """Ends the process `seconds` after `start()` if the shutdown has not by then: every thread's stack to stderr
    (faulthandler), one line naming the step it was stuck in, and os._exit(EXIT_DEADLINE). Runs on an OS thread and
    writes with os.write: neither the eventlet hub nor a logging lock held by a stuck thread can stop it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.step = "waiting for the shutdown task to run"  # what the shutdown does now (the reason line names it)
        self.started = False
        self._threading, self._time = _os_threading()  # resolved now: nothing is imported in a signal handler

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        self._threading.Thread(target=self._watch, args=(self._time.sleep,), name="shutdown-deadline",
                               daemon=True).start()

    def _watch(self, sleep) -> None:
        sleep(self.seconds)
        try:
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        except Exception:  # stderr gone: the exit still happens
            pass
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        reason = (f"{stamp} server ERROR shutdown did not finish within {self.seconds:g} s of the signal (stuck in: "
                  f"{self.step}); exiting with status {EXIT_DEADLINE} (SHUTDOWN_DEADLINE_S; stacks above)\n")
        try:
            os.write(2, reason.encode())
        finally:
            os._exit(EXIT_DEADLINE)


def _hang_for_tests(seconds: float) -> None:
    """DASHBOARD_TEST_SHUTDOWN_HANG=1 (tests only): the shutdown blocks the whole process, the eventlet hub included,
    as a stuck step would; only the deadline can end it."""
    _, real_time = _os_threading()
    real_time.sleep(seconds)


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
    try:  # before anything starts: a port in use is said at once, in one line
        sock = listen(settings.host, settings.port)
    except OSError as refused:
        print(f"server.py: error: cannot listen on {settings.host}:{settings.port}: {refused.strerror or refused} "
              "(another server on this port? --port or PORT)", file=sys.stderr)
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
        settings.replay_info = {"speed": local.get("speed"), "recordings": local.get("recordings", [])}
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

    deadline = ShutdownDeadline(_shutdown_deadline_s())

    signals_r, signals_w = os.pipe()
    os.set_blocking(signals_w, False)
    write = _os_write()

    def shut_down(signum, frame):
        # A signal handler runs on top of whatever was running: under eventlet any green thread, or the hub, perhaps
        # half-way through a green thread's exit. Logging there (eventlet's current_thread links a cleanup to the
        # dying green thread, which raises KeyError) threw out of the handler before the shutdown was started, and
        # the server ran on after SIGTERM. So the handler only starts the deadline's OS thread and writes the
        # signal to a pipe; a task waiting on it does the rest. A second signal changes nothing.
        if deadline.started:
            return
        deadline.start()
        try:
            write(signals_w, bytes([signum]))
        except OSError:  # the pipe is full: a signal is already there
            pass

    def on_signal():
        signum = os.read(signals_r, 1)[0]  # green under eventlet: the hub runs meanwhile
        log.info("stopping (signal %d), within %g s (SHUTDOWN_DEADLINE_S)", signum, deadline.seconds)
        finish()

    def finish():
        steps = [("stopping the listeners, the emitting task and the history", dashboard.stop),
                 ("closing the recording", recorder.close if recorder else None),
                 ("stopping the local exchange", lambda: [child.terminate() for child in CHILDREN])]
        if os.environ.get("DASHBOARD_TEST_SHUTDOWN_HANG"):
            steps.insert(0, ("a test's hang (DASHBOARD_TEST_SHUTDOWN_HANG)", lambda: _hang_for_tests(3600)))
        status = 0
        for name, step in steps:
            if step is None:
                continue
            deadline.step = name
            try:
                step()
            except Exception:  # one failed step must not keep the process alive: the others still run
                log.exception("shutdown: %s failed", name)
                status = 1
        deadline.step = "flushing the log"
        logging.shutdown()
        os._exit(status)

    dashboard.socketio.start_background_task(on_signal)
    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    dashboard.start()
    dashboard.socketio.start_background_task(announce_when_listening, dashboard.socketio, settings,
                                             f"{mode}, role {settings.role}", dashboard.feeds)
    # Every role, in either async mode: the same server, limits and Host check (dashboard/serving.py). The
    # collector's app has no Socket.IO in it: only /healthz and /metrics.
    serve(dashboard.app, settings, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
