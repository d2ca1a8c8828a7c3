"""Slow clients are conflated, never queued without bound: a client whose outgoing queue (engine.io's own) holds
more than `MAX_BEHIND_S` of packets (50 at the default 50 ms interval, fewer when the interval is longer; never
fewer than `MIN_QUEUED`) is skipped, and once it has drained to `RESUME_QUEUED` it gets a fresh backfill of each
market it missed (and the feeds' status in full, if it missed a change of it). Used by the fan-out
(fanout.py) of whatever serves clients: the one process, or a web process."""
from __future__ import annotations

from typing import Callable, Optional

MAX_BEHIND_S = 2.5  # seconds of packets waiting for one client before it counts as slow (one packet per interval)
MIN_QUEUED = 8      # ... but never fewer packets than this
RESUME_QUEUED = 5   # ... and back to normal, resynced with a backfill
BACKLOG = 2        # packets waiting that count a client as "has a backlog" for the pacing (fanout.Pacing)


class Conflation:
    def __init__(self, server, send_backfill: Callable[[str, str], None],
                 greet: Optional[Callable[[str], None]] = None):
        """`server`: the python-socketio Server whose clients these are; `send_backfill(sid, market)`: send one
        client a market's backfill event (Fanout.send_backfill: encoded once for all who need it this interval);
        `greet(sid)`: send one client the feeds' status in full."""
        self.server, self.send_backfill, self.greet = server, send_backfill, greet
        self._behind: dict[str, set] = {}  # slow client sid -> the markets whose batches it was not sent
        self._missed_feeds: set = set()    # slow clients that missed a change of the feeds' status
        self.batches_conflated = 0
        self._seen = self._backlogged = 0  # this round: clients looked at, and those with a backlog

    def _queued(self, eio_sid) -> int:
        socket = self.server.eio.sockets.get(eio_sid)
        return socket.queue.qsize() if socket is not None else 0

    def start_round(self) -> None:
        self._seen = self._backlogged = 0

    def backlog(self) -> tuple[int, int]:
        """(clients with packets waiting, clients looked at) this round."""
        return self._backlogged, self._seen

    @staticmethod
    def max_queued(interval_s: float) -> int:
        """Packets waiting that make a client slow at this emit interval."""
        return max(MIN_QUEUED, round(MAX_BEHIND_S / interval_s))

    def members(self, room: str, interval_s: float = 0.05) -> tuple[int, list]:
        """(clients of `room` on this process, those too far behind to be sent another packet now)."""
        count, slow, most = 0, [], self.max_queued(interval_s)
        for sid, eio_sid in self.server.manager.get_participants("/", room):
            count += 1
            queued = self._queued(eio_sid)
            if queued > BACKLOG:
                self._backlogged += 1
                if queued > most:
                    slow.append(sid)
        self._seen += count
        return count, slow

    def skipped(self, sids, markets, feeds: bool = False) -> None:
        """`sids` were not sent a packet holding `markets` (and a change of the feeds' status if `feeds`)."""
        for sid in sids:
            self._behind.setdefault(sid, set()).update(markets)
            if feeds:
                self._missed_feeds.add(sid)
            self.batches_conflated += 1

    def resync_caught_up(self) -> None:
        """A slow client whose queue has drained gets the latest state of what it missed, in one backfill each
        (to this process's client only: the message queue has nothing to add)."""
        for sid, markets in list(self._behind.items()):
            eio_sid = self.server.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is None:  # gone
                del self._behind[sid]
                self._missed_feeds.discard(sid)
            elif self._queued(eio_sid) <= RESUME_QUEUED:
                del self._behind[sid]
                for market in sorted(markets):
                    self.send_backfill(sid, market)
                if sid in self._missed_feeds:
                    self._missed_feeds.discard(sid)
                    if self.greet is not None:
                        self.greet(sid)

    def clients_behind(self) -> int:
        return len(self._behind)
