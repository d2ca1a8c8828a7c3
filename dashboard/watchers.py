"""Who watches which market: the Socket.IO clients (sids) of this process, per market. Thread-safe."""
from __future__ import annotations

import threading


class Watchers:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_market: dict[str, set] = {}

    def __contains__(self, market: str) -> bool:
        return market in self._by_market  # one dict lookup: atomic, no lock needed on the hot path

    def add(self, sid: str, market: str) -> bool:
        """True if `sid` is the market's first watcher."""
        with self._lock:
            watchers = self._by_market.setdefault(market, set())
            first = not watchers
            watchers.add(sid)
            return first

    def discard(self, sid: str, market: str) -> bool:
        """True if `market` has no watcher left."""
        with self._lock:
            watchers = self._by_market.get(market)
            if watchers is None:
                return False
            watchers.discard(sid)
            if watchers:
                return False
            del self._by_market[market]
            return True

    def forget(self, sid: str) -> list[str]:
        """A client left: the markets nobody watches any more."""
        return [market for market in self.of(sid) if self.discard(sid, market)]

    def of(self, sid: str) -> list[str]:
        with self._lock:
            return [market for market, watchers in self._by_market.items() if sid in watchers]

    def markets(self) -> set:
        with self._lock:
            return set(self._by_market)

    def replace(self, markets, watcher: str) -> None:
        """Every market in `markets` watched by `watcher` alone (a collector's view of the web processes)."""
        with self._lock:
            self._by_market = {market: {watcher} for market in markets}

    def clients_of(self) -> dict[str, list]:
        """sid -> the markets it watches."""
        with self._lock:
            clients: dict[str, list] = {}
            for market, watchers in self._by_market.items():
                for sid in watchers:
                    clients.setdefault(sid, []).append(market)
            return clients
