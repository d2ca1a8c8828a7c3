"""The exchanges' REST APIs: listings (recorded), backfill answers (documented shapes), the listing cache, and
the REST backfill against the local exchange, which serves these endpoints from its recordings."""

import pytest

from conftest import UPSTREAM, Collector, FakeRest, documented
from dashboard.listings import Listings
from dashboard.rest import RestClient, backfill
from exchanges.binance import Binance, BinanceUS
from exchanges.coinbase import Coinbase
from exchanges.recording import read_rest
from exchanges.simulator import LocalExchange
from exchanges.tick import Update


def test_listings_from_the_recorded_rest_answers():
    coinbase = Coinbase().parse_listing(read_rest(UPSTREAM / "COINBASE.0")[2])
    assert len(coinbase) == 162 and {"BTC-USD", "SKL-USD", "1INCH-EUR"} <= set(coinbase)
    binanceus = BinanceUS()
    listed = binanceus.parse_listing(read_rest(UPSTREAM / "BINANCE_US.0")[2])
    assert len(listed) == 117 and {"BTC-USD", "BTC-USDT", "OMG-BUSD"} <= set(listed)
    assert binanceus.from_native("BTCUSD") == "BTC-USD"  # the listing is the symbol map


def test_coinbase_backfill_answers_mean_what_the_docs_say():
    listener = Coinbase()
    [ticker] = listener.parse_backfill("BTC-USD", "/products/BTC-USD/ticker", documented("coinbase_rest_ticker"))
    assert ticker == Update("BTC-USD", time=1584663777833, bid="6265.15", ask="6267.71", last="6268.48",
                            last_size="0.00698254")
    trades = listener.parse_backfill("BTC-USD", "/products/BTC-USD/trades", documented("coinbase_rest_trades"))
    # oldest first, and the side turned from the maker's into the taker's
    assert [(t.last, t.last_side) for t in trades] == [("6268.40", "buy"), ("6268.48", "sell")]


def test_binance_backfill_answers_mean_what_the_docs_say():
    listener = Binance()
    [book] = listener.parse_backfill("LTC-BTC", "/api/v3/ticker/bookTicker", documented("binance_rest_book_ticker"))
    assert book == Update("LTC-BTC", time=None, bid="4.00000000", bid_size="431.00000000", ask="4.00000200",
                          ask_size="9.00000000")
    [trade] = listener.parse_backfill("LTC-BTC", "/api/v3/trades", documented("binance_rest_trades"))
    assert trade == Update("LTC-BTC", time=1499865549590, last="4.00000100", last_size="12.00000000",
                           last_side="sell")
    assert listener.backfill_requests("LTC-BTC") == [("/api/v3/trades", {"symbol": "LTCBTC", "limit": "100"}),
                                                     ("/api/v3/ticker/bookTicker", {"symbol": "LTCBTC"})]


def test_listings_fall_back_to_the_cache_then_to_nothing(tmp_path):
    listeners = {"coinbase": Coinbase(), "binanceus": BinanceUS()}
    bodies = {"coinbase": read_rest(UPSTREAM / "COINBASE.0")[2], "binanceus": read_rest(UPSTREAM / "BINANCE_US.0")[2]}
    changes = Collector()
    online = Listings(listeners, FakeRest(bodies), tmp_path, on_change=lambda: changes("changed"))
    online.refresh()
    assert online.source == {"coinbase": "rest", "binanceus": "rest"} and changes.items == ["changed"]
    assert online.listing_of("BTC-USD") == ["coinbase", "binanceus"]
    assert online.listing_of("BTC-USDT") == ["binanceus"]

    offline = Listings(listeners, FakeRest({}), tmp_path)
    offline.refresh()
    assert offline.symbols == online.symbols and offline.source["coinbase"].startswith("cache from ")
    empty = Listings(listeners, FakeRest({}), tmp_path / "nothing-cached")
    empty.refresh()
    assert empty.symbols == {"coinbase": [], "binanceus": []} and empty.source["coinbase"] == "none"


@pytest.fixture
def playing_exchange(start_listener):
    """The local exchange with its market open (a listener streams one pair per exchange)."""
    exchange = LocalExchange(speed=20).start()
    for listener_class, symbol in ((Coinbase, "SKL-USD"), (Binance, "NKN-USDT")):
        ticks = Collector()
        start_listener(listener_class(exchange.urls[listener_class.name], [symbol], on_tick=ticks))
        ticks.wait_for(lambda items: len(items) >= 3)
    yield exchange
    exchange.stop()


def test_rest_backfill_from_the_local_exchange(playing_exchange):
    rest = RestClient(playing_exchange.rest_urls)
    ticks = backfill(rest, Coinbase(), "SKL-USD")
    assert ticks and all(t["source"] == "rest" and t["symbol"] == "SKL-USD" for t in ticks)
    assert [t["time"] for t in ticks[:-1]] == sorted(t["time"] for t in ticks[:-1])  # trades oldest first
    assert ticks[-1]["bid"] and ticks[-1]["ask"] and ticks[-1]["last"]  # then the ticker: a full tick
    binance = backfill(rest, Binance(), "NKN-USDT")
    assert binance[-1]["bid"] and binance[-1]["time"] is None  # bookTicker: no time, never invented


def test_a_rest_failure_gives_no_ticks_and_raises_nothing():
    rest = RestClient({"coinbase": "http://127.0.0.1:9"})  # nothing listens there
    assert backfill(rest, Coinbase(), "BTC-USD") == []


class TickerDown(FakeRest):
    """Coinbase's trades answered (the documented body), its ticker failing as an unreachable host does."""

    def get(self, exchange, path, params=None):
        if path.endswith("/ticker"):
            raise ConnectionError("unreachable")
        return documented("coinbase_rest_trades")


def test_a_failed_request_loses_only_its_own_answer(caplog):
    ticks = backfill(TickerDown({}), Coinbase(), "BTC-USD")
    # the trades stand, oldest first; the book was never answered: its sides are unknown (null), not empty
    assert [(t["last"], t["last_side"]) for t in ticks] == [("6268.40", "buy"), ("6268.48", "sell")]
    assert all(t["bid"] is None and t["ask"] is None and t["empty"] is None for t in ticks)
    assert [r.getMessage() for r in caplog.records if "REST backfill" in r.getMessage()] == [
        "coinbase:BTC-USD REST backfill /products/BTC-USD/ticker failed: unreachable"]
