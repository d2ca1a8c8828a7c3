"""Binance / Binance.US parser on real recorded frames (upstream/BINANCE*.ws.1.0) and documented ones."""
import pytest

from conftest import documented, recorded
from exchanges.binance import Binance, BinanceUS, BinanceVenue
from exchanges.tick import EMPTY, BadFrame, ExchangeError, Rejected, Subscribed, Update


def test_book_ticker_has_no_exchange_time():
    assert Binance().parse(recorded("BINANCE.ws.1.0", "@bookTicker\""), 0) == [Update(
        symbol="NKN-USDT", time=None, bid="0.35210000", bid_size="672.00000000", ask="0.35260000",
        ask_size="3199.00000000", sequence=499869768)]


def test_agg_trade_gives_last_trade_with_trade_time_and_taker_side():
    assert BinanceUS().parse(recorded("BINANCE_US.ws.1.0", "@aggTrade\""), 0) == [Update(
        symbol="OMG-BUSD", time=1633998288467, last="13.80480000", last_size="2.10000000", last_side="buy",
        sequence=425085)]


def test_trade_stream_buyer_maker_means_taker_sold():
    assert Binance().parse(documented("binance_trade"), 0) == [Update(
        symbol="BNB-BTC", time=1672515782136, last="0.001", last_size="100", last_side="sell", sequence=12345)]


def test_subscribed_symbols_map_back_exactly():
    listener = Binance()
    listener.to_native("BTC-USDT")
    frame = '{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1.0","B":"2","a":"1.1","A":"3"}}'
    assert listener.parse(frame, 0)[0].symbol == "BTC-USDT"


@pytest.mark.parametrize("stream", ["@depth@100ms\"", "@kline_1m\""])
def test_depth_and_kline_yield_no_tick(stream):
    assert Binance().parse(recorded("BINANCE.ws.1.0", stream), 0) == []


def test_subscribe_request_and_its_result_are_matched_by_id():
    listener = Binance()
    assert listener.subscribe_messages(["BTC-USDT"]) == [
        '{"method":"SUBSCRIBE","params":["btcusdt@bookTicker","btcusdt@trade"],"id":1}']
    assert listener.parse(documented("binance_subscribe_result"), 0) == [Subscribed(("BTC-USDT",))]


def test_error_replies_reject_the_pending_request_or_report():
    listener = Binance()
    listener.subscribe_messages(["BTC-USDT"])
    listener.subscribe_messages(["ETH-USDT"])
    assert listener.parse(documented("binance_error_nested"), 0) == [
        Rejected("ETH-USDT", "Binance error 2: Invalid request: invalid stream")]
    assert listener.parse(documented("binance_error"), 0) == [
        ExchangeError("Binance error 2: Invalid request: property name must be a string")]


def test_streams_go_in_the_connect_url():
    listener = Binance("wss://data-stream.binance.vision/stream")
    assert listener.connect_url(["BTC-USDT", "ETH-BTC"]) == ("wss://data-stream.binance.vision/stream?streams="
                                                             "btcusdt@bookTicker/btcusdt@trade/ethbtc@bookTicker/"
                                                             "ethbtc@trade")
    assert listener.initial_messages(["BTC-USDT"]) == []


@pytest.mark.parametrize("frame", [
    '{"stream":"x@bookTicker","data":{"s":"NKNUSDT","b":"1","B":"1","a":"oops","A":"1"}}',
    '{"stream":"x@bookTicker","data":{"s":"NKNUSDT","b":"1"}}',
    '{"stream":"x@trade","data":{"s":"NKNUSDT","p":"1","q":"1","T":"soon","m":false}}',
    '{"stream":"x@trade","data":{"s":"NKNUSDT","p":"1","q":"1","T":1,"m":"no"}}',
    '{"stream":"x@trade","data":{"s":"???","p":"1","q":"1","T":1,"m":false}}',
    '{"data":{"s":"NKNUSDT"}}',
    '{"hello":"world"}',
    'not json',
    '"a string"',
])
def test_bad_frames_raise(frame):
    with pytest.raises((BadFrame, KeyError, ValueError)):
        Binance().parse(frame, 0)


def test_venue_routes_agg_trades_to_trade_subscribers_and_answers_subscribe():
    venue = BinanceVenue()
    session = {}
    venue.on_open(session, "/stream?streams=nknusdt@bookTicker/nknusdt@trade")
    assert venue.wants(session, "nknusdt@aggTrade") and venue.wants(session, "nknusdt@bookTicker")
    assert not venue.wants(session, "nknusdt@depth@100ms")
    [reply] = venue.on_message(session, '{"method":"SUBSCRIBE","params":["lrcbtc@trade"],"id":7}')
    assert reply == '{"result":null,"id":7}'
    [error] = venue.on_message(session, "{oops")
    assert Binance().parse(error, 0)[0].reason.startswith("Binance error 3")


def test_a_book_ticker_side_of_zeros_is_empty():
    frame = recorded("BINANCE.ws.1.0", "@bookTicker\"").replace('"b":"0.35210000","B":"672.00000000"',
                                                                 '"b":"0.00000000","B":"0.00000000"')
    [update] = Binance().parse(frame, 0)
    assert (update.bid, update.bid_size, update.ask) == (EMPTY, EMPTY, "0.35260000")
