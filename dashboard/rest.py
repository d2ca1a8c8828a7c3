"""The exchanges' public REST APIs: a kept HTTP client (requests) with timeouts and retries, and the REST backfill
that fills a new panel at once. What to ask and what the answers mean is each exchange module's (sans-I/O)."""
from __future__ import annotations

import logging
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from exchanges.tick import TickBook

log = logging.getLogger(__name__)

TIMEOUT_S = (3.05, 10)  # connect, read: a REST failure must never hold anything up for long


class RestClient:
    def __init__(self, base_urls: dict[str, str], replay: bool = False):
        """`replay`: the local exchange answers, which serves no REST for some venues: a miss is expected there,
        logged as INFO, not WARNING."""
        self.base_urls = base_urls
        self.miss_level = logging.INFO if replay else logging.WARNING
        self.session = requests.Session()
        retries = Retry(total=2, backoff_factor=0.3, status_forcelist=(429, 500, 502, 503, 504),
                        allowed_methods=("GET",), respect_retry_after_header=True)
        self.session.mount("http://", HTTPAdapter(max_retries=retries))
        self.session.mount("https://", HTTPAdapter(max_retries=retries))

    def get(self, exchange: str, path: str, params: dict = None) -> str:
        """The body of a 2xx answer; raises requests.RequestException otherwise."""
        response = self.session.get(self.base_urls[exchange].rstrip("/") + path, params=params, timeout=TIMEOUT_S)
        response.raise_for_status()
        return response.text


def backfill(rest: RestClient, listener, symbol: str) -> list[dict]:
    """Ask the exchange for the market's recent trades and top of book: ticks marked `"source": "rest"`, oldest
    first. Each request stands alone: one that fails (network, HTTP status, an answer of the wrong shape) is logged
    and gives nothing, and what the others answered is kept (the trades without the ticker still say the last
    trade; a side never asked for stays unknown, never empty). Raises nothing."""
    book = TickBook(listener.name)  # its own: the listener's book belongs to the listener's thread
    ticks = []
    for path, params in listener.backfill_requests(symbol):
        try:
            received = time.time_ns() // 1_000_000
            updates = listener.parse_backfill(symbol, path, rest.get(listener.name, path, params))
        except Exception as failure:  # noqa: BLE001 - whatever it is, the other requests' answers stand
            log.log(getattr(rest, "miss_level", logging.WARNING), "%s:%s REST backfill %s failed: %s",
                    listener.name, symbol, path, failure)
            continue
        for update in updates:
            tick = book.apply(update, received)
            if tick is not None:
                ticks.append({**tick, "source": "rest"})
    return ticks
