"""Slow clients are conflated, never queued without bound: a client whose outgoing queue (engine.io's own) holds
more than `MAX_QUEUED` packets is skipped on market batches, and once it has drained to `RESUME_QUEUED` it gets a
fresh backfill of each market it missed. Used by whatever emits to the clients of this process (the hub in one
process, the message-queue listener in a web process)."""
from __future__ import annotations

from typing import Callable

MAX_QUEUED = 50    # packets waiting for one client before it counts as slow (5 s of one market's batches)
RESUME_QUEUED = 5  # ... and back to normal, resynced with a backfill


class Conflation:
    def __init__(self, server, backfill: Callable[[str], dict]):
        """`server`: the python-socketio Server whose clients these are; `backfill`: market -> backfill event."""
        self.server, self.backfill = server, backfill
        self._behind: dict[str, set] = {}  # slow client sid -> the markets whose batches it was not sent
        self.batches_conflated = 0

    def _queued(self, eio_sid) -> int:
        socket = self.server.eio.sockets.get(eio_sid)
        return socket.queue.qsize() if socket is not None else 0

    def slow_clients(self, room: str) -> list:
        """The clients of `room` (on this process) too far behind to be sent another batch now."""
        return [sid for sid, eio_sid in self.server.manager.get_participants("/", room)
                if self._queued(eio_sid) > MAX_QUEUED]

    def skipped(self, sids, market: str) -> None:
        for sid in sids:
            self._behind.setdefault(sid, set()).add(market)
            self.batches_conflated += 1

    def resync_caught_up(self) -> None:
        """A slow client whose queue has drained gets the latest state of what it missed, in one backfill each
        (sent directly: it is this process's client, the message queue has nothing to add)."""
        for sid, markets in list(self._behind.items()):
            eio_sid = self.server.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is None:  # gone
                del self._behind[sid]
            elif self._queued(eio_sid) <= RESUME_QUEUED:
                del self._behind[sid]
                for market in sorted(markets):
                    self.server.emit("backfill", self.backfill(market), to=sid, ignore_queue=True)

    def clients_behind(self) -> int:
        return len(self._behind)
