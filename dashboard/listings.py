"""What each exchange lists: learnt from its REST listing, cached on disk, refreshed daily. Start never depends
on it: when the REST call fails, the cache serves; without a cache, the configured markets only.

Each mode keeps its own cache (config.DEFAULT_LISTINGS_DIR), and a cache file says which mode wrote it: a replay's
recorded listings are never served as the live exchanges' listings (nor the other way round), even when both are
given the same LISTINGS_DIR."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

REFRESH_EVERY_S = 86_400


class Listings:
    def __init__(self, listeners: dict, rest, cache_dir, on_change=lambda: None, mode: str = "live"):
        self.listeners, self.rest, self.cache_dir, self.mode = listeners, rest, Path(cache_dir), mode
        self.on_change = on_change
        self.symbols: dict[str, list[str]] = {name: [] for name in listeners}
        self.source: dict[str, str] = {name: "none" for name in listeners}  # "rest", "cache from <when>", "none"

    def refresh(self) -> None:
        for name, listener in self.listeners.items():
            try:
                symbols = listener.parse_listing(self.rest.get(name, listener.listing_path))
                self._save(name, symbols)
                self.symbols[name], self.source[name] = symbols, "rest"
            except Exception as failure:  # unreachable, refused, or an unexpected body: fall back to the cache
                cached = self._load(name)
                if cached:
                    self.symbols[name], self.source[name] = cached
                log.warning("%s: listing unavailable (%s); using %s", name, failure, self.source[name])
        self.on_change()

    def run(self, sleep=time.sleep) -> None:
        while True:
            self.refresh()
            sleep(REFRESH_EVERY_S)

    def listing_of(self, pair: str) -> list[str]:
        """The exchanges that list `pair`."""
        return [name for name, symbols in self.symbols.items() if pair in symbols]

    def _save(self, name: str, symbols: list[str]) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{name}.json"
        partial = path.with_suffix(".tmp")
        partial.write_bytes(orjson.dumps({"fetched_at": int(time.time()), "mode": self.mode, "symbols": symbols}))
        partial.replace(path)  # never a half-written cache

    def _load(self, name: str):
        try:
            cached = orjson.loads((self.cache_dir / f"{name}.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(cached, dict) or cached.get("mode") != self.mode:  # another mode's, or of unknown mode
            log.warning("%s: the cached listing in %s is not %s's: not used", name, self.cache_dir, self.mode)
            return None
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(cached.get("fetched_at", 0)))
        return cached.get("symbols", []), f"cache from {when}"
