"""Per-client limits on Socket.IO events, so one browser (or script) cannot flood the server."""
from __future__ import annotations

import threading
import time


class EventRateLimit:
    """A token bucket per client: `rate` events a second, bursts up to `burst`. Clients are any hashable keys
    (a Socket.IO sid, an Engine.IO session id); forget() a client when it disconnects, or its bucket stays.
    Used twice: subscribe/unsubscribe over SUBSCRIBE_RATE are refused with an error reply (app.py), and every
    Socket.IO packet a client sends counts toward a wider bucket that disconnects it (guard.py)."""

    def __init__(self, rate: float = 10.0, burst: int = 20):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Take one token: False (and nothing taken) when the client has none left."""
        now = time.monotonic()
        with self._lock:
            tokens, since = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - since) * self.rate)
            allowed = tokens >= 1
            self._buckets[client] = (tokens - 1 if allowed else tokens, now)
            return allowed

    def forget(self, client: str) -> None:
        with self._lock:
            self._buckets.pop(client, None)
