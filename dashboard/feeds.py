"""The listeners of the enabled exchanges, wired to the hub: which markets each streams, and why; which markets it
refuses to stream (not listed, or over the per-exchange cap); and the feeds' status as the clients get it (in full
on connect, then only what changed)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from exchanges import EXCHANGES
from exchanges.base import ExchangeListener

log = logging.getLogger(__name__)

DEFAULT_MAX_MARKETS_PER_EXCHANGE = 200


def refusal(symbol: str, label: str, streamed, listed: Optional[bool], cap: int) -> Optional[str]:
    """Why a market (not configured) may not be streamed, in words for the person who asked, or None.
    `streamed`: the exchange's symbols streamed now (configured ones included); `listed`: whether the exchange's
    listing names the symbol (None: the listing is not known, so the exchange decides)."""
    if symbol in streamed:
        return None
    if listed is False:
        return f"{symbol} is not listed on {label}"
    if len(streamed) >= cap:
        return f"{label}: this server streams at most {cap} markets at once; try again when one is closed"
    return None


class Feeds:
    def __init__(self, hub, exchanges: list[str], urls: dict[str, str], markets: list[str], *,
                 stale_after_s: float = 10.0, backoff_cap_s: float = 30.0,
                 on_frame: Optional[Callable] = None,
                 max_markets_per_exchange: int = DEFAULT_MAX_MARKETS_PER_EXCHANGE,
                 listed: Callable[[str, str], Optional[bool]] = lambda exchange, symbol: None):
        """`listed(exchange, symbol)`: True or False from the exchange's listing, None when it is not known.
        `max_markets_per_exchange`: markets one listener streams at most; the configured ones always count and
        are never refused."""
        self.hub = hub
        self.configured = set(markets)  # streamed whether or not anyone watches
        self.max_markets_per_exchange, self.listed = max_markets_per_exchange, listed
        self._lock = threading.Lock()  # a refusal decided and the subscription it allows, in one step
        self.listeners: dict[str, ExchangeListener] = {}
        for name in exchanges:
            symbols = [market.partition(":")[2] for market in markets if market.partition(":")[0] == name]
            self.listeners[name] = EXCHANGES[name](
                urls.get(name), symbols, on_tick=hub.publish, on_market=hub.set_market_state,
                on_state=hub.feeds_changed, on_frame=on_frame, on_gap=hub.publish_gap, stale_after_s=stale_after_s,
                backoff_cap_s=backoff_cap_s)
        hub.keeps = self.streams

    def start(self, spawn: Callable) -> None:
        for listener in self.listeners.values():
            spawn(listener.run)

    def stop(self, wait_s: float = 2.0) -> None:
        """Stop every listener and wait (a little) for each to close its socket cleanly."""
        for listener in self.listeners.values():
            listener.stop()
        deadline = time.monotonic() + wait_s
        for listener in self.listeners.values():
            listener.join(max(0.0, deadline - time.monotonic()))

    def status(self) -> list[dict]:
        """Each listener's status (read every second by the hub)."""
        for listener in self.listeners.values():
            self._drop_counters(listener)
        return [listener.status() for listener in self.listeners.values()]

    def enabled(self, exchange: str) -> bool:
        return exchange in self.listeners

    def streams(self, market: str) -> bool:
        """Whether a listener streams `market` now."""
        exchange, _, symbol = market.partition(":")
        listener = self.listeners.get(exchange)
        return listener is not None and symbol in listener.symbols()

    def refusal(self, market: str) -> Optional[str]:
        """Why `market` may not be streamed (see `refusal` above), or None. Configured markets never are refused."""
        if market in self.configured:
            return None
        exchange, _, symbol = market.partition(":")
        listener = self.listeners[exchange]
        return refusal(symbol, listener.label, set(listener.symbols()), self.listed(exchange, symbol),
                       self.max_markets_per_exchange)

    def ensure(self, market: str) -> bool:
        """Someone watches `market`: its listener streams it (subscribing on the open connection if new), unless it
        is refused; then its room is told why (a `market_state` "error", kept nowhere). True when it was not
        streamed before."""
        exchange, _, symbol = market.partition(":")
        with self._lock:
            why = self.refusal(market)
            if why is None:
                return self.listeners[exchange].add(symbol)
        self.hub.set_market_state(market, "error", why)
        return False

    def release(self, market: str) -> None:
        """Nobody watches `market` any more: stop streaming it unless it is configured, and free what the hub and
        the listener keep of it."""
        if market in self.configured:
            return
        exchange, _, symbol = market.partition(":")
        listener = self.listeners[exchange]
        with self._lock:
            removed = listener.remove(symbol)
        if removed:
            log.info("%s: nobody watches it: unsubscribed", market)
        self.hub.forget_market(market)
        self._drop_counters(listener)

    @staticmethod
    def _drop_counters(listener: ExchangeListener) -> None:
        """The listener's per-market counters (ExchangeListener.markets) of markets it no longer streams. Until its
        thread has sent the unsubscribe, a tick may still count: so done on every status reading too, not only at
        the release. (The listener keeps them otherwise: exchanges/base.py's remove leaves them.)"""
        if not listener.markets:
            return
        streamed = set(listener.symbols())
        for gone in [symbol for symbol in list(listener.markets) if symbol not in streamed]:
            listener.markets.pop(gone, None)


# --- the feeds' status as the clients get it ---------------------------------------------------------------------
VOLATILE = ("now",)  # changes on every reading: sent once per change event, at its top level


def feeds_change(before: list[dict], after: list[dict]) -> Optional[dict]:
    """What changed from one feeds' status to the next, as the `feeds` event sends it after the first:
    `{"now": ms, "changed": {exchange: {field: value, ...} | None}}`, a field with its new value in full, except
    `markets`, which names only the markets whose counters changed (`null`: no longer streamed); an exchange
    `null` is gone. None when nothing changed."""
    old = {status["exchange"]: status for status in before}
    changed: dict = {}
    for status in after:
        name = status["exchange"]
        was = old.pop(name, None)
        if was is None:
            changed[name] = {key: value for key, value in status.items() if key not in VOLATILE}
            continue
        fields = {key: value for key, value in status.items()
                  if key not in VOLATILE and key != "markets" and was.get(key) != value}
        markets, was_markets = status.get("markets", {}), was.get("markets", {})
        if markets != was_markets:
            fields["markets"] = {**{symbol: stats for symbol, stats in markets.items()
                                    if was_markets.get(symbol) != stats},
                                 **{symbol: None for symbol in was_markets if symbol not in markets}}
        if fields:
            changed[name] = fields
    for name in old:
        changed[name] = None
    if not changed:
        return None
    return {"now": after[0].get("now") if after else time.time_ns() // 1_000_000, "changed": changed}


def merge_feeds(statuses: Optional[list[dict]], payload) -> Optional[list[dict]]:
    """A client's copy of the feeds' status after one `feeds` event: a list is the full status, an object the
    changes since the last one (see feeds_change). Returns a new list; what static/app.js does, for Python
    clients (tests, benchmarks). `statuses` None: no full copy yet. A change that comes before the full copy, or
    is older than the copy it would change (its `now`), is not applied: the copy, made after it, holds it
    (a change broadcast while a client connects may overtake that client's full copy). Then the same copy, or
    None, is returned."""
    if isinstance(payload, list):
        return payload
    if statuses is None or (statuses and "now" in payload and payload["now"] < statuses[0].get("now", 0)):
        return statuses
    merged = {status["exchange"]: dict(status) for status in statuses}
    for name, fields in payload.get("changed", {}).items():
        if fields is None:
            merged.pop(name, None)
            continue
        status = merged.setdefault(name, {"exchange": name})
        for key, value in fields.items():
            if key == "markets" and isinstance(status.get("markets"), dict):
                markets = dict(status["markets"])
                for symbol, stats in value.items():
                    if stats is None:
                        markets.pop(symbol, None)
                    else:
                        markets[symbol] = stats
                status["markets"] = markets
            else:
                status[key] = value
    if "now" in payload:  # the server's clock, for every feed
        for status in merged.values():
            status["now"] = payload["now"]
    return list(merged.values())
