"""Coinbase parser on real recorded frames (upstream/COINBASE.ws.28.0) and documented ones."""
from decimal import Decimal

import orjson
import pytest

from conftest import UPSTREAM, Collector, apply_changes, documented, recorded, refused_while_the_rest_streams
from exchanges.coinbase import Coinbase, CoinbaseVenue
from exchanges.recording import read_frames
from exchanges.tick import (EMPTY, BadFrame, ExchangeError, Heartbeat, Rejected, Subscribed, TickBook, Update,
                            iso_to_ms)

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


@pytest.mark.parametrize("kind", ["match", "last_match"])
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


def test_subscribe_messages_one_per_product_with_level2_batch_ticker_and_heartbeat():
    messages = Coinbase().subscribe_messages(["BTC-USD", "ETH-USD"])
    assert messages == [
        '{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2_batch","ticker","heartbeat"]}',
        '{"type":"subscribe","product_ids":["ETH-USD"],"channels":["level2_batch","ticker","heartbeat"]}']
    assert Coinbase().unsubscribe_messages(["BTC-USD"]) == [
        '{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["level2_batch","ticker","heartbeat"]}']
    assert Coinbase.quote_on_every_change


def test_venue_answers_like_coinbase():
    venue = CoinbaseVenue({"BTC-USD"})
    session = {"keys": set()}
    [reply] = venue.on_message(session, Coinbase().subscribe_messages(["BTC-USD"])[0])
    assert reply == ('{"type":"subscriptions","channels":[{"name":"heartbeat","product_ids":["BTC-USD"]},'
                     '{"name":"level2_batch","product_ids":["BTC-USD"]},{"name":"ticker","product_ids":["BTC-USD"]}]}')
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


# --- the level2_batch book ------------------------------------------------------------------------------------------
SKL_SNAPSHOT = '"type":"snapshot","product_id":"SKL-USD"'
SKL_UPDATE = '"type":"l2update","product_id":"SKL-USD"'


def test_a_snapshot_gives_the_top_of_its_book():
    assert parse(recorded(FILE, SKL_SNAPSHOT)) == [Update("SKL-USD", None, "0.7901", "450.0", "0.7910", "450.0")]
    assert parse(documented("coinbase_level2_snapshot")) == [
        Update("BTC-USD", None, "10101.10", "0.45054140", "10102.55", "0.57753524")]


def test_an_update_changing_the_top_is_a_quote_at_the_updates_time_and_one_behind_it_no_tick():
    listener = Coinbase()
    listener.parse(recorded(FILE, SKL_SNAPSHOT), 0)
    behind = recorded(FILE, SKL_UPDATE)  # ["sell","0.7923","7441.5"]: behind the best ask
    assert listener.parse(behind, 0) == []
    for index in range(1, 15):  # the recorded updates up to the one that takes the best ask away
        listener.parse(recorded(FILE, SKL_UPDATE, index), 0)
    frame = recorded(FILE, SKL_UPDATE, 15)
    assert '"changes":[["sell","0.7910","0.0"]],"time":"2021-04-17T16:43:37.121358Z"' in frame
    assert listener.parse(frame, 0) == [Update("SKL-USD", 1618677817121, "0.7901", "450.0", "0.7912", "6908.0")]
    [update] = listener.parse(documented("coinbase_l2update").replace("BTC-USD", "SKL-USD")
                              .replace("10101.80000000", "0.7905"), 0)
    assert (update.time, update.bid, update.bid_size) == (1565815347265, "0.7905", "0.162567")


def test_removing_the_last_level_of_a_side_publishes_it_empty():
    listener, book = Coinbase(), TickBook("coinbase")
    listener.parse(documented("coinbase_level2_snapshot"), 0)
    removal = documented("coinbase_l2update").replace('["buy","10101.80000000","0.162567"]', '["buy","10101.10","0"]')
    [update] = listener.parse(removal, 0)
    assert update == Update("BTC-USD", 1565815347265, EMPTY, EMPTY, "10102.55", "0.57753524")
    tick = book.apply(update, 1)
    assert (tick["bid"], tick["bid_size"], tick["ask"], tick["empty"]) == (None, None, "10102.55", "bid")


def test_a_fresh_snapshot_after_a_reconnect_replaces_the_book():
    listener = Coinbase()
    listener.parse(documented("coinbase_level2_snapshot"), 0)
    listener.parse(documented("coinbase_l2update"), 0)  # best bid 10101.80
    listener.on_connected()
    with pytest.raises(BadFrame, match="before its snapshot"):  # the old book is gone with the old connection
        listener.parse(documented("coinbase_l2update"), 0)
    fresh = '{"type":"snapshot","product_id":"BTC-USD","bids":[["10100.00","1"]],"asks":[["10105.00","2"]]}'
    assert listener.parse(fresh, 0) == [Update("BTC-USD", None, "10100.00", "1", "10105.00", "2")]
    # and on one connection too: a snapshot replaces, it does not merge
    assert listener.parse(documented("coinbase_level2_snapshot"), 0) == [
        Update("BTC-USD", None, "10101.10", "0.45054140", "10102.55", "0.57753524")]


def test_an_update_before_its_snapshot_is_bad_unless_just_unsubscribed():
    listener = Coinbase()
    with pytest.raises(BadFrame, match="l2update before its snapshot"):
        listener.parse(documented("coinbase_l2update"), 0)
    listener.parse(documented("coinbase_level2_snapshot"), 0)
    listener.unsubscribe_messages(["BTC-USD"])
    assert listener.parse(documented("coinbase_l2update"), 0) == []  # in flight before the unsubscribe arrived


def test_the_ticker_no_longer_overwrites_the_books_bid_and_ask():
    listener, book = Coinbase(), TickBook("coinbase")
    for item in listener.parse(recorded(FILE, SKL_SNAPSHOT), 0):
        book.apply(item, 0)
    frame = recorded(FILE, '"type":"ticker","sequence":201390042,"product_id":"SKL-USD"')
    assert '"best_bid":"0.7901","best_ask":"0.7911"' in frame  # the book (its snapshot) says the ask is 0.7910
    [update] = listener.parse(frame, 0)
    assert update == Update("SKL-USD", 1618677817056, None, None, None, None, "0.7904", "1338.3", "buy", 201390042)
    tick = book.apply(update, 1)
    assert (tick["bid"], tick["ask"], tick["last"], tick["last_side"]) == ("0.7901", "0.7910", "0.7904", "buy")
    # a ticker of a product without a trade gives nothing once the book is kept
    zeros = ticker(product_id="SKL-USD", price="0", best_bid="0", best_ask="0", time=None, side=None, trade_id=None,
                   last_size=None)
    assert listener.parse(zeros, 0) == []


def level2_frames():
    for frame in read_frames(UPSTREAM / FILE):
        if frame.frame.startswith(('{"type":"snapshot"', '{"type":"l2update"')):
            yield frame.frame


def test_the_book_stays_right_over_every_recorded_level2_frame():
    """After each snapshot / l2update the published top equals a book rebuilt here from plain dicts."""
    listener = Coinbase()
    books, published, checked, changes = {}, {}, 0, 0
    for frame in level2_frames():
        message = orjson.loads(frame)
        for item in listener.parse(frame, 0):
            assert type(item) is Update and item.last is None
            assert item.time == (None if message["type"] == "snapshot" else iso_to_ms(message["time"]))
            published[item.symbol] = (item.bid, item.bid_size, item.ask, item.ask_size)
            changes += 1
        product = message["product_id"]
        if message["type"] == "snapshot":
            books[product] = ({Decimal(p): (p, s) for p, s in message["bids"]},
                              {Decimal(p): (p, s) for p, s in message["asks"]})
        else:
            bids, asks = books[product]
            apply_changes(bids, asks, message["changes"])
        bids, asks = books[product]
        best_bid = bids[max(bids)] if bids else (EMPTY, EMPTY)
        best_ask = asks[min(asks)] if asks else (EMPTY, EMPTY)
        assert published[product] == (*best_bid, *best_ask), f"after {frame[:120]}"
        checked += 1
    assert checked == 10 + 9719 and len(published) == 10 and changes == 1778


def test_venue_serves_level2_to_level2_batch_and_a_late_subscriber_gets_the_book_played():
    venue = CoinbaseVenue({"SKL-USD", "DASH-BTC"})
    session = {"keys": set()}
    venue.on_message(session, Coinbase().subscribe_messages(["SKL-USD"])[0])
    snapshot, update = recorded(FILE, SKL_SNAPSHOT), recorded(FILE, SKL_UPDATE, 15)
    assert venue.route(snapshot) == venue.route(update) == "level2:SKL-USD"
    assert venue.wants(session, "level2:SKL-USD") and not venue.wants(session, "level2:DASH-BTC")
    # nothing played yet: no snapshot claiming an empty book, only the acknowledgement
    assert len(venue.on_message(session, Coinbase().subscribe_messages(["DASH-BTC"])[0])) == 1
    for frame in [snapshot] + [recorded(FILE, SKL_UPDATE, index) for index in range(16)]:
        venue.observe(frame)
    late = {"keys": set()}
    ack, book = venue.on_message(late, Coinbase().subscribe_messages(["SKL-USD"])[0])
    assert Coinbase().parse(book, 0) == [Update("SKL-USD", None, "0.7901", "450.0", "0.7912", "6908.0")]
    assert Coinbase().parse(ack, 0) == [Subscribed(("SKL-USD",))]
    assert venue.on_message(late, Coinbase().subscribe_messages(["SKL-USD"])[0])[1:] == []  # not new: no snapshot


def test_listener_against_the_local_exchange(local_exchange, start_listener):
    ticks, markets, states = Collector(), Collector(), Collector()
    listener = Coinbase(local_exchange.urls["coinbase"], ["SKL-USD"], on_tick=ticks, on_market=markets,
                        on_state=lambda status: states(status["state"]))
    start_listener(listener)
    markets.wait_for(lambda m: ("coinbase:SKL-USD", "subscribed", "") in m)
    ticks.wait_for(lambda t: sum(1 for tick in t if tick["time"] and tick["last"] is None or tick["bid"]) >= 3)
    [client] = local_exchange.clients("coinbase")
    assert list(client.messages) == [
        '{"type":"subscribe","product_ids":["SKL-USD"],"channels":["level2_batch","ticker","heartbeat"]}']
    assert client.session["keys"] == {"level2_batch:SKL-USD", "ticker:SKL-USD", "heartbeat:SKL-USD"}
    assert all(t["exchange"] == "coinbase" and t["symbol"] == "SKL-USD" for t in ticks.items)
    assert all(Decimal(t["bid"]) < Decimal(t["ask"]) for t in ticks.items if t["bid"] and t["ask"])

    listener.add("DASH-BTC")  # on the open connection: a snapshot of the book played so far, then its updates
    ticks.wait_for(lambda t: any(tick["symbol"] == "DASH-BTC" and tick["bid"] and tick["ask"] for tick in t))
    assert local_exchange.clients("coinbase") == [client]  # no reconnect

    listener.remove("DASH-BTC")
    ticks.wait_for(lambda t: client.session["keys"] == {"level2_batch:SKL-USD", "ticker:SKL-USD",
                                                        "heartbeat:SKL-USD"})

    refused_while_the_rest_streams(listener, ticks, markets, states, "BTC-FOO", "BTC-FOO is not a valid product")


def test_venue_rest_ticker_gives_the_played_books_top_not_the_last_trades_ticker():
    """Coinbase's REST ticker answers its book's best bid/ask; the local exchange answers the book it played."""
    venue = CoinbaseVenue({"SKL-USD"})
    trade = recorded(FILE, '"product_id":"SKL-USD","price"')  # the first SKL-USD ticker: ask 0.7911 at its trade
    assert orjson.loads(trade)["best_ask"] == "0.7911"
    for frame in [recorded(FILE, SKL_SNAPSHOT)] + [recorded(FILE, SKL_UPDATE, index) for index in range(16)]:
        venue.observe(frame)
    venue.observe(trade)
    status, body = venue.rest("/products/SKL-USD/ticker", {})
    [update] = Coinbase().parse_backfill("SKL-USD", "/products/SKL-USD/ticker", body)
    assert status == 200 and (update.bid, update.ask) == ("0.7901", "0.7912")  # the book's top, as played
    assert update.last == orjson.loads(trade)["price"]


@pytest.mark.parametrize("changes, reason", [
    ('[["buy","x","1"]]', "not a decimal string"), ('[["buy",null,"1"]]', "not a decimal string"),
    ('[["buy","1",2]]', "not a decimal string"), ('[["up","1","1"]]', "bad side"), ('[["buy","1"]]', "bad change"),
    ('{"buy":1}', "bad 'changes'")])
def test_a_bad_level_change_is_counted_under_its_reason(changes, reason):
    from exchanges.base import bad_reason
    frame = ('{"type":"l2update","product_id":"BTC-USD","changes":' + changes
             + ',"time":"2021-04-17T16:43:37.075687Z"}')
    with pytest.raises(BadFrame) as raised:
        parse(frame)
    assert bad_reason(raised.value) == reason
