"""Coinbase parser on real recorded frames (upstream/COINBASE.ws.28.0) and documented ones."""
import orjson
import pytest

from conftest import documented, recorded
from exchanges.coinbase import Coinbase, CoinbaseVenue
from exchanges.tick import EMPTY, BadFrame, ExchangeError, Heartbeat, Rejected, Subscribed, TickBook, Update

FILE = "COINBASE.ws.28.0"


def parse(frame):
    return Coinbase().parse(frame, 0)


def test_ticker_gives_bid_ask_last_and_exchange_time_as_sent():
    assert parse(recorded(FILE, '"type":"ticker"')) == [Update(
        symbol="BAND-GBP", time=1618677810244, bid="14.7550", bid_size=None, ask="14.8060", ask_size=None,
        last="14.7775", last_size="0.04", last_side="buy", sequence=333938798)]


def test_todays_ticker_carries_best_sizes():
    [update] = parse(documented("coinbase_ticker_with_sizes"))
    assert (update.bid, update.bid_size, update.ask, update.ask_size) == ("1285.04", "0.46688654", "1285.27",
                                                                          "1.56637040")
    assert (update.last, update.last_size, update.last_side, update.time) == ("1285.22", "11.4396987", "buy",
                                                                              1666222102061)


def test_subscriptions_acknowledges_the_ticker_products():
    frame = recorded(FILE, '"type":"subscriptions"', index=1)  # level2 + ticker
    assert parse(frame) == [Subscribed(("BAND-BTC", "BAND-GBP", "CRV-EUR", "DASH-BTC", "NMR-EUR", "NU-GBP",
                                        "SKL-BTC", "SKL-GBP", "SKL-USD", "YFI-BTC"))]
    assert parse(recorded(FILE, '"type":"subscriptions"')) == [Subscribed(())]  # level2 only: no ticker


def test_invalid_product_error_rejects_that_product():
    assert parse(documented("coinbase_error")) == [Rejected("GIBBERISH-USD", "GIBBERISH-USD is not a valid product")]


def test_other_errors_are_exchange_errors():
    [error] = parse('{"type":"error","message":"Failed to subscribe","reason":"slow down"}')
    assert error == ExchangeError("Failed to subscribe: slow down")


def test_heartbeat_is_liveness_not_data():
    assert parse(documented("coinbase_heartbeat")) == [Heartbeat("BTC-USD")]


@pytest.mark.parametrize("kind", ["l2update", "snapshot", "match", "last_match"])
def test_frames_of_other_channels_yield_no_tick(kind):
    assert parse(recorded(FILE, f'"type":"{kind}"')) == []


@pytest.mark.parametrize("frame, reason", [
    ('{"type":"ticker","product_id":"BTC-USD"', "truncated"),
    ('[1,2,3]', "not a JSON object"),
    ('{"product_id":"BTC-USD"}', "no 'type'"),
    ('{"type":"ticker","product_id":"BTC-USD","price":"1","best_bid":"1","best_ask":"2","time":"2021-04-17T16:43:30Z"'
     ',"side":"up"}', "bad side"),
    ('{"type":"ticker","product_id":"BTC-USD","price":"abc","best_bid":"1","best_ask":"2",'
     '"time":"2021-04-17T16:43:30Z"}', "not a decimal"),
    ('{"type":"ticker","product_id":"BTC-USD","price":"1","best_bid":"1","time":"2021-04-17T16:43:30Z"}', "best_ask"),
])
def test_bad_frames_raise_so_the_listener_counts_them(frame, reason):
    with pytest.raises((BadFrame, KeyError, ValueError)) as raised:
        parse(frame)
    assert reason in str(raised.value) or reason == "truncated"


def test_subscribe_messages_one_per_product_with_ticker_and_heartbeat():
    messages = Coinbase().subscribe_messages(["BTC-USD", "ETH-USD"])
    assert messages == ['{"type":"subscribe","product_ids":["BTC-USD"],"channels":["ticker","heartbeat"]}',
                        '{"type":"subscribe","product_ids":["ETH-USD"],"channels":["ticker","heartbeat"]}']
    assert Coinbase().unsubscribe_messages(["BTC-USD"]) == [
        '{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["ticker","heartbeat"]}']


def test_venue_answers_like_coinbase():
    venue = CoinbaseVenue({"BTC-USD"})
    session = {"keys": set()}
    [reply] = venue.on_message(session, Coinbase().subscribe_messages(["BTC-USD"])[0])
    assert reply == ('{"type":"subscriptions","channels":[{"name":"heartbeat","product_ids":["BTC-USD"]},'
                     '{"name":"ticker","product_ids":["BTC-USD"]}]}')
    [refused] = venue.on_message(session, Coinbase().subscribe_messages(["NOPE-USD"])[0])
    assert Coinbase().parse(refused, 0) == [Rejected("NOPE-USD", "NOPE-USD is not a valid product")]
    [beat] = venue.heartbeats(session, 1618677810.244)
    assert Coinbase().parse(beat, 0) == [Heartbeat("BTC-USD")]
    assert venue.route(recorded(FILE, '"type":"ticker"')) == "ticker:BAND-GBP"


# --- truth: order, missing time, zeros (frames derived from Coinbase's documented ticker) ---------------------------
def ticker(**fields):
    message = orjson.loads(documented("coinbase_ticker_with_sizes"))
    message.update(fields)
    return orjson.dumps({key: value for key, value in message.items() if value is not None})


def test_an_older_ticker_never_becomes_the_quote_and_opens_no_gap():
    """Coinbase: messages may arrive out of order; `sequence` says which is newer."""
    listener, book = Coinbase(), TickBook("coinbase")
    ticks = []
    for frame in (ticker(sequence=105, best_bid="2500.1", trade_id=1005),
                  ticker(sequence=101, best_bid="2499", trade_id=1001)):
        for item in listener.parse(frame, 0):
            tick = book.apply(item, 0)
            if tick is not None:
                ticks.append(tick)
    assert [tick["bid"] for tick in ticks] == ["2500.1"] and book.older == 1
    heartbeat = orjson.dumps({"type": "heartbeat", "sequence": 106, "last_trade_id": 1005, "product_id": "ETH-USD",
                              "time": "2022-10-19T23:28:23.000000Z"})
    for _ in range(3):  # the older ticker's trade id did not move us back: nothing looks missed
        assert listener.parse(heartbeat, 0) == [Heartbeat("ETH-USD")]


def test_a_ticker_without_time_is_a_quote_with_no_exchange_time():
    """Sent for a product on subscribe: no time, side, trade_id or last_size."""
    [update] = parse(ticker(time=None, side=None, trade_id=None, last_size=None))
    assert (update.time, update.bid, update.ask, update.last, update.last_size, update.last_side) == (
        None, "1285.04", "1285.27", "1285.22", None, None)


def test_zeros_of_a_product_not_trading_yet_are_not_prices():
    [update] = parse(ticker(price="0", best_bid="0.00", best_bid_size="0", best_ask="0.00", best_ask_size="0",
                            time=None, side=None, trade_id=None, last_size=None))
    assert (update.bid, update.ask, update.last) == (EMPTY, EMPTY, None)
    tick = TickBook("coinbase").apply(update, 1)
    assert (tick["bid"], tick["ask"], tick["last"], tick["empty"]) == (None, None, None, "both")
