"""The listeners of the enabled exchanges, wired to the hub: which markets each streams, and why."""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from exchanges import EXCHANGES
from exchanges.base import ExchangeListener

log = logging.getLogger(__name__)


class Feeds:
    def __init__(self, hub, exchanges: list[str], urls: dict[str, str], markets: list[str], *,
                 stale_after_s: float = 10.0, backoff_cap_s: float = 30.0,
                 on_frame: Optional[Callable] = None):
        self.hub = hub
        self.configured = set(markets)  # streamed whether or not anyone watches
        self.listeners: dict[str, ExchangeListener] = {}
        for name in exchanges:
            symbols = [market.partition(":")[2] for market in markets if market.partition(":")[0] == name]
            self.listeners[name] = EXCHANGES[name](
                urls.get(name), symbols, on_tick=hub.publish, on_market=hub.set_market_state,
                on_state=hub.feeds_changed, on_frame=on_frame, on_gap=hub.publish_gap, stale_after_s=stale_after_s,
                backoff_cap_s=backoff_cap_s)

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
        return [listener.status() for listener in self.listeners.values()]

    def enabled(self, exchange: str) -> bool:
        return exchange in self.listeners

    def ensure(self, market: str) -> bool:
        """Someone watches `market`: its listener streams it (subscribing on the open connection if new).
        True when it was not streamed before."""
        exchange, _, symbol = market.partition(":")
        return self.listeners[exchange].add(symbol)

    def release(self, market: str) -> None:
        """Nobody watches `market` any more: stop streaming it unless it is configured."""
        if market in self.configured:
            return
        exchange, _, symbol = market.partition(":")
        if self.listeners[exchange].remove(symbol):
            log.info("%s: nobody watches it: unsubscribed", market)
