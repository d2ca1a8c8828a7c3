import pytest

from exchanges.tick import EMPTY, BadFrame, TickBook, Update, book_price, decimal_str, iso_to_ms, last_price


def test_tick_book_merges_quote_and_trade_and_keeps_exchange_time_honest():
    book = TickBook("binance")
    first = book.apply(Update("BTC-USDT", time=None, bid="1.10", bid_size="2", ask="1.20", ask_size="3"), 1000)
    assert first == {"exchange": "binance", "symbol": "BTC-USDT", "time": None, "received": 1000,
                     "bid": "1.10", "bid_size": "2", "ask": "1.20", "ask_size": "3",
                     "last": None, "last_size": None, "last_side": None, "empty": None}
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


def test_an_emptied_side_is_empty_not_its_last_price_and_a_silent_side_keeps_its_state():
    book = TickBook("bitstamp")
    book.apply(Update("BTC-USD", bid="1.10", bid_size="2", ask="1.20", ask_size="3"), 1)
    emptied = book.apply(Update("BTC-USD", bid=EMPTY, bid_size=EMPTY, ask="1.21", ask_size="1"), 2)
    assert (emptied["bid"], emptied["bid_size"], emptied["ask"], emptied["empty"]) == (None, None, "1.21", "bid")
    trade = book.apply(Update("BTC-USD", time=3, last="1.15", last_size="1", last_side="buy"), 3)
    assert (trade["bid"], trade["empty"]) == (None, "bid")  # says nothing of the book: the side stays empty
    both = book.apply(Update("BTC-USD", bid=EMPTY, ask=EMPTY), 4)
    assert (both["bid"], both["ask"], both["empty"]) == (None, None, "both")
    back = book.apply(Update("BTC-USD", bid="1.12", bid_size="5"), 5)
    assert (back["bid"], back["bid_size"], back["ask"], back["empty"]) == ("1.12", "5", None, "ask")
    unknown = book.apply(Update("ETH-USD", last="9", last_size="1"), 6)
    assert (unknown["bid"], unknown["empty"]) == (None, None)  # not known yet, which is not empty


def test_an_older_update_never_becomes_the_state_and_is_counted():
    book = TickBook("coinbase")
    newer = book.apply(Update("ETH-USD", bid="2500.1", ask="2500.2", last="2500.1", sequence=105), 1)
    assert newer["bid"] == "2500.1"
    assert book.apply(Update("ETH-USD", bid="2499", ask="2499.5", last="2499", sequence=101), 2) is None
    assert book.older == 1
    later = book.apply(Update("ETH-USD", bid="2500.3", ask="2500.4", sequence=106), 3)
    assert (later["bid"], later["last"]) == ("2500.3", "2500.1")
    # Quote and trade are ordered apart (Binance's `u` and `a` count different things).
    binance = TickBook("binance")
    binance.apply(Update("BTC-USDT", bid="1", ask="2", sequence=900), 1)
    assert binance.apply(Update("BTC-USDT", time=5, last="1.5", last_size="1", sequence=7), 2)["last"] == "1.5"
    assert binance.apply(Update("BTC-USDT", bid="0.9", ask="2", sequence=899), 3) is None
    assert binance.apply(Update("BTC-USDT", time=4, last="1.4", last_size="1", sequence=6), 4) is None
    # A reconnect starts afresh: nothing from before it is merged with what follows.
    binance.reset()
    fresh = binance.apply(Update("BTC-USDT", time=9, last="1.6", last_size="1", sequence=1), 5)
    assert (fresh["bid"], fresh["ask"], fresh["last"]) == (None, None, "1.6")


def test_book_prices_and_last_prices_say_empty_or_nothing_for_blanks_and_zeros():
    assert book_price("") is EMPTY and book_price("0") is EMPTY and book_price("0.00000000") is EMPTY
    assert book_price("0.0001") == "0.0001" and book_price("10") == "10"
    assert last_price("") is None and last_price("0.00") is None and last_price(None) is None
    assert last_price("30241.9") == "30241.9"
    with pytest.raises(BadFrame):
        book_price("abc")


def test_a_schema_error_is_counted_under_the_reason_of_its_field():
    from typing import Literal

    import msgspec

    from exchanges.tick import schema_reason

    class Data(msgspec.Struct):
        b: str
        side: Literal["buy", "sell"]
        changes: list[tuple[str, str]] = []

    class Frame(msgspec.Struct):
        data: Data

    reasons = {"b": "not a decimal string", "$.data.changes[][1]": "not a decimal string",
               "$.data.changes[]": "bad change", ("missing", "side"): "no side"}
    cases = {b'{"data":{"b":null,"side":"buy"}}': "not a decimal string",
             b'{"data":{"side":"buy"}}': "missing field 'b'",
             b'{"data":{"b":"1"}}': "no side",
             b'{"data":{"b":"1","side":"up"}}': "bad 'side'",
             b'{"data":{"b":"1","side":"buy","changes":[["1",2]]}}': "not a decimal string",
             b'{"data":{"b":"1","side":"buy","changes":[["1"]]}}': "bad change",
             b'[1]': "not a JSON object",
             b'{"data":': "JSONDecodeError"}
    decoder = msgspec.json.Decoder(Frame)
    for frame, reason in cases.items():
        with pytest.raises(msgspec.DecodeError) as raised:
            decoder.decode(frame)
        assert schema_reason(raised.value, reasons) == reason, frame


def test_a_native_symbol_is_known_split_or_refused_with_the_venues_reason():
    from exchanges.tick import split_by_quote, unified_symbol

    def split(native):
        return split_by_quote(native, ("USDT", "BTC"))

    assert unified_symbol("BTCUSDT", {"BTCUSDT": "BTC-USDT"}, split, bad="no symbol") == "BTC-USDT"
    assert unified_symbol("ETHBTC", {}, split, bad="no symbol") == "ETH-BTC"
    for native, bad, reason in [(5, "no symbol", "no symbol"), (["x"], "bad pair {}", "bad pair \"['x']\""),
                                ("ETHEUR", "no symbol", "unknown symbol 'ETHEUR'")]:
        with pytest.raises(BadFrame) as raised:
            unified_symbol(native, {}, split, bad=bad)
        assert str(raised.value) == reason


def test_an_update_is_read_only_and_the_same_built_by_position_or_by_name():
    fields = ("BTC-USD", 1, "1", "2", "3", "4", "5", "6", "buy", 7)
    by_name = Update(symbol="BTC-USD", time=1, bid="1", bid_size="2", ask="3", ask_size="4", last="5", last_size="6",
                     last_side="buy", sequence=7)
    assert Update(*fields) == by_name and hash(Update(*fields)) == hash(by_name) and by_name.sequence == 7
    assert Update("BTC-USD") == Update("BTC-USD", None, None, None, None, None, None, None, None, None)
    with pytest.raises(AttributeError):
        by_name.bid = "9"  # a parser's output is never changed after the fact


def test_a_zero_with_an_exponent_is_zero_everywhere_a_zero_is_not_a_price():
    from exchanges.tick import EMPTY, book_price, decimal_str, is_zero, last_price, priced, quote_side, rest_book_price
    for zero in ("0", "0.000", "0E-8", "0.0e+3"):
        assert is_zero(zero) and book_price(zero) == EMPTY and rest_book_price(zero) == EMPTY
        assert quote_side(zero, "5") == (EMPTY, EMPTY)
        assert last_price(zero) is None
        assert decimal_str(zero) == zero and priced(zero) is False  # the string is kept; it is known to be zero
    for price in ("1E-8", "0.00000001", "10"):
        assert not is_zero(price) and book_price(price) == price and priced(decimal_str(price)) is True


def test_a_remembered_second_gives_the_same_ms_as_datetime():
    """iso_to_ms remembers each second of a Coinbase-shaped time: every time read again, in any second seen, gives
    what datetime gives; a malformed one still fails."""
    import random
    from datetime import datetime, timezone
    chooser = random.Random(5)
    for _ in range(3000):
        moment = datetime.fromtimestamp(chooser.randrange(1_500_000_000, 1_800_000_000), timezone.utc).replace(
            microsecond=chooser.randrange(1_000_000), tzinfo=None)
        text = moment.isoformat(timespec="microseconds") + "Z"
        expected = int(moment.replace(tzinfo=timezone.utc).timestamp() * 1_000_000) // 1000
        assert iso_to_ms(text) == expected and iso_to_ms(text) == expected  # read, then remembered
        sibling = text[:20] + f"{chooser.randrange(1_000_000):06d}Z"  # another instant in the same second
        assert iso_to_ms(sibling) == expected - expected % 1000 + int(sibling[20:23])
    iso_to_ms("2021-04-17T16:43:30.244075Z")
    for bad in ("2021-04-17T16:43:30.24407xZ", "2021-04-17T16:43:30.٢٤٤٠٧٥Z", "2021-04-17T16:43:30.244075+"):
        with pytest.raises(BadFrame):
            iso_to_ms(bad)
