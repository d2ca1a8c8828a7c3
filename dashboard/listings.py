"""What each exchange lists: learnt from its REST listing, cached on disk, refreshed daily. Start never depends
on it: when the REST call fails, the cache serves; without a cache, the configured markets only.

Each mode keeps its own cache (config.DEFAULT_LISTINGS_DIR), and a cache file says which mode wrote it: a replay's
recorded listings are never served as the live exchanges' listings (nor the other way round), even when both are
given the same LISTINGS_DIR.

A known listing also decides what may be streamed: a market it does not name (nor the recordings or the watchlist,
`also`) is refused at once, with no subscription at the exchange and no REST call (`lists`)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

REFRESH_EVERY_S = 86_400


class Listings:
    def __init__(self, listeners: dict, rest, cache_dir, on_change=lambda: None, mode: str = "live",
                 also: dict = None):
        """`also`: exchange -> symbols served beyond the listing (a recording's markets, the watchlist)."""
        self.listeners, self.rest, self.cache_dir, self.mode = listeners, rest, Path(cache_dir), mode
        self.on_change = on_change
        self.symbols: dict[str, list[str]] = {name: [] for name in listeners}
        self.source: dict[str, str] = {name: "none" for name in listeners}  # "rest", "cache from <when>", "none"
        self.also = {name: frozenset(symbols) for name, symbols in (also or {}).items()}
        self._known: dict[str, frozenset] = {}  # exchange -> its listing (and `also`), once known

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
                # in a replay the local exchange has a listing only where one was recorded: expected, not a warning
                log.log(logging.INFO if self.mode == "replay" else logging.WARNING,
                        "%s: listing unavailable (%s); using %s", name, failure, self.source[name])
            if self.symbols[name]:  # an empty listing says nothing (a body of the wrong shape, say)
                self._known[name] = frozenset(self.symbols[name]) | self.also.get(name, frozenset())
        self.on_change()

    def lists(self, exchange: str, symbol: str):
        """True or False when the exchange's listing is known (from REST or its cache), None when it is not."""
        known = self._known.get(exchange)
        return None if known is None else symbol in known

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
