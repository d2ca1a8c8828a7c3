import pytest

from exchanges.tick import BadFrame, TickBook, Update, decimal_str, iso_to_ms


def test_tick_book_merges_quote_and_trade_and_keeps_exchange_time_honest():
    book = TickBook("binance")
    first = book.apply(Update("BTC-USDT", time=None, bid="1.10", bid_size="2", ask="1.20", ask_size="3"), 1000)
    assert first == {"exchange": "binance", "symbol": "BTC-USDT", "time": None, "received": 1000,
                     "bid": "1.10", "bid_size": "2", "ask": "1.20", "ask_size": "3",
                     "last": None, "last_size": None, "last_side": None}
    trade = book.apply(Update("BTC-USDT", time=1633998523963, last="1.15", last_size="0.5", last_side="buy"), 1001)
    assert (trade["bid"], trade["ask"], trade["last"], trade["time"]) == ("1.10", "1.20", "1.15", 1633998523963)
    quote = book.apply(Update("BTC-USDT", bid="1.11", bid_size="1", ask="1.19", ask_size="1"), 1002)
    # the trade's time is not carried over to a quote that has none
    assert (quote["time"], quote["last"], quote["bid"]) == (None, "1.15", "1.11")
    other = book.apply(Update("ETH-USDT", last="9", last_size="1", last_side="sell", time=5), 1003)
    assert other["bid"] is None and other["last"] == "9"


def test_a_price_keeps_its_own_size_and_a_trade_its_own_side():
    book = TickBook("kraken")
    book.apply(Update("BTC-USD", bid="1.10", bid_size="2", ask="1.20", ask_size="3"), 1)
    assert book.apply(Update("BTC-USD", bid="1.11"), 2)["bid_size"] is None  # not the old level's size
    book.apply(Update("BTC-USD", time=5, last="1.15", last_size="0.5", last_side="sell"), 3)
    echo = book.apply(Update("BTC-USD", last="1.15", last_size="0.5"), 4)  # a ticker repeating that trade
    assert echo["last_side"] == "sell"
    other = book.apply(Update("BTC-USD", last="1.16", last_size="0.5"), 5)  # another trade, side unknown
    assert other["last_side"] is None


def test_decimal_strings_pass_unchanged_and_garbage_is_refused():
    for text in ("0.00001305", "56010.12000000", "1", "1e-7"):
        assert decimal_str(text) is text
    for bad in ("abc", "", "1.2.3", "-1", "NaN", 1.5, None, "1,5", "<b>1</b>"):
        with pytest.raises(BadFrame):
            decimal_str(bad)


def test_iso_time_to_epoch_ms_is_exact():
    assert iso_to_ms("2021-04-17T16:43:30.244075Z") == 1618677810244
    assert iso_to_ms("1970-01-01T00:00:00.000999Z") == 0
    with pytest.raises(BadFrame):
        iso_to_ms("yesterday")
    with pytest.raises(BadFrame):
        iso_to_ms("2021-04-17T16:43:30")  # no zone: refuse to guess
