"""Bitstamp parser on real recorded frames (upstream/BITSTAMP.ws.1.0: diff_order_book_*, live_trades_*, acks) and
documented ones (order_book_*, heartbeat, request_reconnect, errors, REST); the venue; the real listener against
the local exchange over loopback."""
from decimal import Decimal

import orjson
import pytest

from conftest import UPSTREAM, documented, recorded, watched
from dashboard.rest import RestClient, backfill
from exchanges.bitstamp import Bitstamp, BitstampVenue
from exchanges.recording import read_frames
from exchanges.simulator import LocalExchange
from exchanges.tick import EMPTY, BadFrame, ExchangeError, Heartbeat, Reconnect, Rejected, Subscribed, TickBook, Update

FILE = "BITSTAMP.ws.1.0"


def parse(frame, listener=None):
    return (listener or Bitstamp()).parse(frame, 0)


def frames(contains):
    return [f.frame for f in read_frames(UPSTREAM / FILE) if contains in f.frame]


# --- trades ---------------------------------------------------------------------------------------------------
def test_live_trade_takes_the_strings_and_microseconds_exactly():
    assert parse(recorded(FILE, '"event":"trade"')) == [Update(
        symbol="ETH-USD", time=1641343699596, last="3805.44", last_size="0.07920000", last_side="buy")]
    # price 3800.8 as a number, "3800.80" as sent; amount 2.73248242
    assert parse(recorded(FILE, '"event":"trade"', index=9)) == [Update(
        symbol="ETH-USD", time=1641343721269, last="3800.80", last_size="2.73248242", last_side="sell")]


def test_trade_type_is_the_takers_side():
    """type 0 = buy, 1 = sell names the taker: the later order (the higher id) of the two, on every recorded trade."""
    trades = [orjson.loads(frame)["data"] for frame in frames('"event":"trade"')]
    assert len(trades) == 10 and {t["type"] for t in trades} == {0, 1}
    for trade, frame in zip(trades, frames('"event":"trade"')):
        taker = "buy" if trade["buy_order_id"] > trade["sell_order_id"] else "sell"
        assert parse(frame)[0].last_side == taker


# --- books ----------------------------------------------------------------------------------------------------
def test_order_book_top_is_the_first_bid_and_the_first_ask():
    assert parse(documented("bitstamp_order_book")) == [Update(
        symbol="BTC-USD", time=1643643584684, bid="38400", bid_size="0.15000000", ask="38410", ask_size="0.25000000")]


def test_recorded_diffs_build_a_book_per_pair():
    listener = Bitstamp()
    first, second = frames('"channel":"diff_order_book_batbtc","event":"data"')[:2]
    assert parse(first, listener) == [Update("BAT-BTC", 1641343691355, None, None, "0.00002921", "3213.71284910")]
    # 0.00002920 is a new best ask; 0.00002921 keeps its place with its new amount
    assert parse(second, listener) == [Update("BAT-BTC", 1641343691468, "0.00002756", "7752.76328758", "0.00002920",
                                              "839.17692634")]


def test_a_zero_amount_removes_the_level_and_the_next_one_is_best():
    listener = Bitstamp()
    updates = [parse(frame, listener)[0] for frame in frames('"channel":"diff_order_book_ethusd","event":"data"')[:10]]
    assert (updates[8].bid, updates[8].bid_size) == ("3803.13", "0.60000000")
    assert updates[9] == Update("ETH-USD", 1641343694496, "3802.90", "0.60000000", "3805.47", "8.26964788")
    assert '["3803.13","0.00000000"]' in frames('"channel":"diff_order_book_ethusd","event":"data"')[9]


def test_diffs_after_a_full_book_apply_to_it():
    listener = Bitstamp()
    parse(documented("bitstamp_order_book"), listener)
    diff = ('{"data":{"timestamp":"1643643585","microtimestamp":"1643643585000001","bids":[["38400","0"]],'
            '"asks":[["38405","1.5"]]},"channel":"diff_order_book_btcusd","event":"data"}')
    assert parse(diff, listener) == [Update("BTC-USD", 1643643585000, "38399", "1.20000000", "38405", "1.5")]
    parse(documented("bitstamp_order_book"), listener)  # a new full book replaces what the diffs made
    assert parse(diff.replace('"1.5"', '"2"'), listener)[0].ask_size == "2"


def test_an_empty_side_is_empty_and_a_book_with_both_sides_empty_says_so():
    frame = documented("bitstamp_order_book").replace('"bids":[["38400","0.15000000"],["38399","1.20000000"],'
                                                      '["38390","0.50000000"]]', '"bids":[]')
    [quote] = parse(frame)
    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (EMPTY, EMPTY, "38410", "0.25000000")
    empty = ('{"data":{"timestamp":"1","microtimestamp":"1000000","bids":[],"asks":[]},"channel":"order_book_btcusd",'
             '"event":"data"}')
    assert parse(empty) == [Update("BTC-USD", 1000, EMPTY, EMPTY, EMPTY, EMPTY)]
    tick = TickBook("bitstamp").apply(parse(empty)[0], 5)
    assert (tick["bid"], tick["ask"], tick["empty"]) == (None, None, "both")


def test_a_bid_side_that_empties_is_shown_empty_not_as_its_last_price():
    """The issue's example: a thin book whose bids go."""
    listener, book = Bitstamp(), TickBook("bitstamp")
    first = ('{"event":"data","channel":"order_book_unibtc","data":{"microtimestamp":"1700000000000000",'
             '"bids":[["0.0001125","40"]],"asks":[["0.000114","25"]]}}')
    second = first.replace("1700000000000000", "1700000060000000").replace('[["0.0001125","40"]]', "[]")
    ticks = [book.apply(item, 1) for frame in (first, second) for item in parse(frame, listener)]
    assert (ticks[0]["bid"], ticks[0]["ask"], ticks[0]["empty"]) == ("0.0001125", "0.000114", None)
    assert (ticks[-1]["bid"], ticks[-1]["bid_size"], ticks[-1]["ask"], ticks[-1]["ask_size"], ticks[-1]["empty"],
            ticks[-1]["time"]) == (None, None, "0.000114", "25", "bid", 1700000060000)


# --- protocol events ------------------------------------------------------------------------------------------
def test_a_market_is_subscribed_once_both_its_channels_are_acknowledged():
    listener = Bitstamp()
    listener.subscribe_messages(["ETH-USD"])
    assert parse('{"event":"bts:subscription_succeeded","channel":"order_book_ethusd","data":{}}', listener) == []
    assert parse(recorded(FILE, '"channel":"live_trades_ethusd","data":{}'), listener) == [Subscribed(("ETH-USD",))]
    assert not listener._pending
    assert parse(documented("bitstamp_unsubscription_succeeded")) == []


def test_an_error_rejects_the_oldest_unanswered_subscribe_once():
    listener = Bitstamp()
    listener.subscribe_messages(["ETH-USD", "FOO-USD"])
    parse('{"event":"bts:subscription_succeeded","channel":"order_book_ethusd","data":{}}', listener)
    parse('{"event":"bts:subscription_succeeded","channel":"live_trades_ethusd","data":{}}', listener)
    error = documented("bitstamp_error_invalid_channel")
    assert parse(error, listener) == [Rejected("FOO-USD", "Invalid channel provided.")]
    assert parse(error, listener) == []  # its trades channel, refused too: reported once
    assert parse(documented("bitstamp_error_bad_subscription"), listener) == [
        ExchangeError("Bitstamp: Bad subscription string.")]  # nothing pending: not about a market


def test_heartbeat_answer_is_liveness_and_request_reconnect_asks_for_a_reconnect():
    assert parse(documented("bitstamp_heartbeat")) == [Heartbeat()]
    [reconnect] = parse(documented("bitstamp_request_reconnect"))
    assert type(reconnect) is Reconnect and "bts:request_reconnect" in reconnect.reason


def test_keepalive_is_the_bitstamp_heartbeat_scaled_to_the_watchdog():
    assert Bitstamp.keepalive_message == '{"event":"bts:heartbeat"}' and not Bitstamp.pong_is_liveness
    assert Bitstamp(stale_after_s=1.5).keepalive_every_s == 0.5
    assert Bitstamp(stale_after_s=30).keepalive_every_s == 10


def test_recorded_acknowledgements_carry_no_tick():
    acks = frames('"event":"bts:subscription_succeeded"')
    assert len(acks) == 20 and all(type(item) is Subscribed for frame in acks for item in parse(frame))


@pytest.mark.parametrize("frame", [
    '{"event":"data","channel":"detail_order_book_btcusd","data":{"bids":[],"asks":[]}}',
    '{"event":"order_created","channel":"live_orders_btcusd","data":{"id":1}}',
    '{"event":"funding_rate_saved","channel":"funding_rate_btcusd-perp","data":{}}',
])
def test_other_channels_yield_no_tick(frame):
    assert parse(frame) == []


# --- symbols, messages, listing, backfill ---------------------------------------------------------------------
def test_symbols_map_both_ways():
    listener = Bitstamp()
    assert listener.to_native("BTC-USD") == "btcusd" and listener.from_native("btcusd") == "BTC-USD"
    # no listing: split by the known quotes, longest first
    assert [listener.from_native(n) for n in ("usdtusd", "btcusdt", "xlmgbp", "galaeur", "batbtc", "usdceur")] == [
        "USDT-USD", "BTC-USDT", "XLM-GBP", "GALA-EUR", "BAT-BTC", "USDC-EUR"]
    for native in ("btcxyz", "BTCUSD", "usd", "btc/usd", "btcusd-perp"):
        with pytest.raises(BadFrame):
            listener.from_native(native)


def test_subscribe_and_unsubscribe_one_channel_per_message():
    listener = Bitstamp()
    assert listener.subscribe_messages(["BTC-USD"]) == [
        '{"event":"bts:subscribe","data":{"channel":"order_book_btcusd"}}',
        '{"event":"bts:subscribe","data":{"channel":"live_trades_btcusd"}}']
    assert listener.unsubscribe_messages(["BTC-USD"]) == [
        '{"event":"bts:unsubscribe","data":{"channel":"order_book_btcusd"}}',
        '{"event":"bts:unsubscribe","data":{"channel":"live_trades_btcusd"}}']
    assert all(len(message) < 512 for message in listener.subscribe_messages(["USDC-USDT"]))


def test_listing_keeps_enabled_pairs_and_is_the_exact_map():
    listener = Bitstamp()
    assert listener.parse_listing(documented("bitstamp_trading_pairs_info")) == ["BTC-USD", "DOGE-EUR"]
    assert listener.from_native("dogeeur") == "DOGE-EUR"


def test_backfill_answers_mean_what_the_docs_say():
    listener = Bitstamp()
    assert listener.backfill_requests("BTC-USD") == [("/api/v2/transactions/btcusd/", {"time": "hour"}),
                                                     ("/api/v2/ticker/btcusd/", {})]
    [ticker] = listener.parse_backfill("BTC-USD", "/api/v2/ticker/btcusd/", documented("bitstamp_rest_ticker"))
    assert ticker == Update("BTC-USD", time=1643640186000, bid="2188.97", ask="2211.00", last="2211.00",
                            last_side="buy")
    body = documented("bitstamp_rest_transactions")
    trades = listener.parse_backfill("BTC-USD", "/api/v2/transactions/btcusd/", body)
    assert trades == [Update("BTC-USD", time=1643640180000, last="2211.00", last_size="0.10000000", last_side="buy"),
                      Update("BTC-USD", time=1643640186000, last="2188.97", last_size="0.00500000", last_side="sell")]


@pytest.mark.parametrize("frame", [
    'not json',
    '[1,2]',
    '{"channel":"live_trades_btcusd","data":{}}',
    ('{"event":"trade","channel":"live_trades_btcusd","data":{"price_str":"1","amount_str":"1","type":2,'
     '"microtimestamp":"1"}}'),
    ('{"event":"trade","channel":"live_trades_btcusd","data":{"price_str":"1","amount_str":"1","type":true,'
     '"microtimestamp":"1"}}'),
    '{"event":"trade","channel":"live_trades_btcusd","data":{"price":1.5,"amount":1,"type":0,"microtimestamp":"1"}}',
    ('{"event":"trade","channel":"live_trades_btcusd","data":{"price_str":"1","amount_str":"1","type":0,'
     '"microtimestamp":1641343699596000}}'),
    ('{"event":"trade","channel":"live_trades_BTCUSD","data":{"price_str":"1","amount_str":"1","type":0,'
     '"microtimestamp":"1"}}'),
    '{"event":"data","channel":"order_book_btcusd","data":{"bids":[["1e-99999","1"]],"asks":[],"microtimestamp":"1"}}',
    '{"event":"data","channel":"order_book_btcusd","data":{"bids":["12"],"asks":[],"microtimestamp":"1"}}',
    '{"event":"data","channel":"order_book_btcusd","data":{"bids":{},"asks":[],"microtimestamp":"1"}}',
    '{"event":"data","channel":"diff_order_book_btcusd","data":{"bids":[["1","x"]],"asks":[],"microtimestamp":"1"}}',
    '{"event":"data","channel":"diff_order_book_btcusd","data":{"bids":[],"asks":[],"microtimestamp":"١"}}',
    '{"event":"bts:error","channel":"","data":"boom"}',
])
def test_bad_frames_raise_so_the_listener_counts_them(frame):
    with pytest.raises((BadFrame, KeyError, ValueError, TypeError)):
        parse(frame)


def test_a_bad_diff_leaves_the_book_as_it_was():
    listener = Bitstamp()
    parse(documented("bitstamp_order_book"), listener)
    bad = ('{"data":{"timestamp":"1","microtimestamp":"1643643585000001","bids":[["38400","0"],["x","1"]],"asks":[]},'
           '"channel":"diff_order_book_btcusd","event":"data"}')
    with pytest.raises(BadFrame):
        parse(bad, listener)
    good = bad.replace(',["x","1"]', '').replace('"bids":[["38400","0"]]', '"bids":[]')
    assert parse(good, listener)[0].bid == "38400"  # the full book, untouched by the bad diff


# --- the venue ------------------------------------------------------------------------------------------------
def test_venue_answers_like_bitstamp():
    venue = BitstampVenue({"ethusd"})
    session = {"keys": set()}
    listener = Bitstamp()
    book, trades = listener.subscribe_messages(["ETH-USD"])
    [ack] = venue.on_message(session, book)  # an empty book: nothing more
    assert ack == '{"event":"bts:subscription_succeeded","channel":"order_book_ethusd","data":{}}'
    assert listener.parse(ack, 0) == []
    [ack] = venue.on_message(session, trades)
    assert listener.parse(ack, 0) == [Subscribed(("ETH-USD",))]
    assert venue.on_message(session, '{"event":"bts:heartbeat"}') == [documented("bitstamp_heartbeat")]
    for frame in listener.subscribe_messages(["FOO-USD"]):
        [error] = venue.on_message(session, frame)
        assert error == documented("bitstamp_error_invalid_channel")
    assert venue.on_message(session, "{oops") == [
        '{"event":"bts:error","channel":"","data":{"code":null,"message":"Incorrect JSON format."}}']
    assert venue.on_message(session, '{"event":"bts:ping"}') == [documented("bitstamp_error_bad_subscription")]
    assert session["keys"] == {"order_book_ethusd", "live_trades_ethusd"}
    [gone] = venue.on_message(session, listener.unsubscribe_messages(["ETH-USD"])[1])
    assert gone == '{"event":"bts:unsubscription_succeeded","channel":"live_trades_ethusd","data":{}}'
    assert venue.error_frame("bts:request_reconnect") == '{"event":"bts:request_reconnect","channel":"","data":""}'


def test_venue_routes_diffs_to_order_book_subscribers_and_sends_its_book_on_subscribe():
    venue = BitstampVenue({"ethusd"})
    diff = frames('"channel":"diff_order_book_ethusd","event":"data"')[0]
    assert venue.route(diff) == "diff_order_book_ethusd" and venue.symbol_of("diff_order_book_ethusd") == "ethusd"
    assert venue.route(recorded(FILE, '"event":"bts:subscription_succeeded"')) is None
    assert venue.wants({"keys": {"order_book_ethusd"}}, "diff_order_book_ethusd")
    assert not venue.wants({"keys": {"live_trades_ethusd"}}, "diff_order_book_ethusd")
    listener = Bitstamp()
    played = [listener.parse(frame, 0) for frame in frames('"channel":"diff_order_book_ethusd","event":"data"')[:10]]
    for frame in frames('"channel":"diff_order_book_ethusd","event":"data"')[:10]:
        venue.observe(frame)
    _, book = venue.on_message({"keys": set()}, '{"event":"bts:subscribe","data":{"channel":"order_book_ethusd"}}')
    message = orjson.loads(book)
    assert message["channel"] == "order_book_ethusd" and message["event"] == "data"
    assert set(message["data"]) == {"timestamp", "microtimestamp", "bids", "asks"}
    # the book a late subscriber starts from is the one an early one built from the same diffs
    [update] = Bitstamp().parse(book, 0)
    assert update == played[-1][0] == Update("ETH-USD", 1641343694496, "3802.90", "0.60000000", "3805.47", "8.26964788")


def test_venue_serves_transactions_and_ticker_from_what_it_played():
    venue = BitstampVenue({"ethusd"})
    for frame in frames('"channel":"diff_order_book_ethusd","event":"data"')[:30] + frames('"event":"trade"')[:3]:
        venue.observe(frame)
    status, body = venue.rest("/api/v2/transactions/ethusd/", {"time": "hour"})
    listener = Bitstamp()
    trades = listener.parse_backfill("ETH-USD", "/api/v2/transactions/ethusd/", body)
    assert status == 200 and [(t.last, t.last_side, t.time) for t in trades] == [
        ("3805.44", "buy", 1641343699000), ("3802.93", "sell", 1641343709000), ("3802.89", "sell", 1641343709000)]
    status, body = venue.rest("/api/v2/ticker/ethusd/", {})
    [ticker] = listener.parse_backfill("ETH-USD", "/api/v2/ticker/ethusd/", body)
    assert status == 200 and (ticker.last, ticker.last_side, ticker.time) == ("3802.89", "sell", 1641343709000)
    assert ticker.bid and ticker.ask
    assert venue.rest("/api/v2/ticker/foousd/", {})[0] == 404


# --- the real listener against the local exchange -----------------------------------------------------------
def make(exchange, symbols, **options):
    return watched(Bitstamp, exchange.urls["bitstamp"], symbols, **options)


def test_handshake_ticks_add_unsubscribe_and_an_unlisted_pair(local_exchange, start_listener):
    listener, ticks, markets, states = make(local_exchange, ["BAT-BTC"], stale_after_s=3)
    start_listener(listener)
    markets.wait_for(lambda m: ("bitstamp:BAT-BTC", "streaming", "") in m)
    ticks.wait_for(lambda t: len(t) >= 3)
    [client] = local_exchange.clients("bitstamp")
    ticks.wait_for(lambda t: len(client.messages) >= 2)  # the second goes out paced, maybe after the first ticks
    assert list(client.messages)[:2] == ['{"event":"bts:subscribe","data":{"channel":"order_book_batbtc"}}',
                                         '{"event":"bts:subscribe","data":{"channel":"live_trades_batbtc"}}']
    assert all(t["symbol"] == "BAT-BTC" and t["time"] and (t["bid"] or t["ask"]) for t in ticks.items)

    listener.add("ETH-USD")  # same connection
    ticks.wait_for(lambda t: any(tick["symbol"] == "ETH-USD" and tick["last"] for tick in t), timeout=30)
    assert local_exchange.clients("bitstamp") == [client]

    listener.add("BTC-FOO")
    markets.wait_for(lambda m: ("bitstamp:BTC-FOO", "error", "Invalid channel provided.") in m)
    assert "BTC-FOO" not in listener.symbols()

    listener.remove("ETH-USD")
    ticks.wait_for(lambda t: client.session["keys"] == {"order_book_batbtc", "live_trades_batbtc"})
    assert '{"event":"bts:unsubscribe","data":{"channel":"live_trades_ethusd"}}' in client.messages
    assert listener.status()["reconnects"] == 0 and states.items[:2] == ["connecting", "live"]
    ticks.wait_for(lambda t: '{"event":"bts:heartbeat"}' in client.messages)  # the keepalive, every stale_after / 3


def test_request_reconnect_makes_a_clean_reconnect_and_resubscribes(local_exchange, start_listener):
    listener, ticks, _, states = make(local_exchange, ["BAT-BTC"], backoff_base_s=0.05)
    start_listener(listener)
    ticks.wait_for(lambda t: len(t) >= 1)
    local_exchange.inject("bitstamp:error=bts:request_reconnect")
    states.wait_for(lambda s: "reconnecting" in s)
    states.wait_for(lambda s: s[-1] == "live" and "reconnecting" in s)
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)
    status = listener.status()
    assert status["reconnects"] == 1 and "asked for a reconnect" in status["last_incident"]["reason"]
    # both channels again (the second subscribe may follow a first tick by the pace of sends)
    keys = lambda: [c.session["keys"] for c in local_exchange.clients("bitstamp") if c.open()]  # noqa: E731
    ticks.wait_for(lambda t: keys() == [{"order_book_batbtc", "live_trades_batbtc"}])


def test_a_late_subscriber_gets_the_book_at_once_and_then_agrees_with_an_early_one(local_exchange, start_listener):
    early, early_ticks, _, _ = make(local_exchange, ["BAT-BTC"])
    start_listener(early)
    early_ticks.wait_for(lambda t: len(t) >= 20)
    late, late_ticks, _, _ = make(local_exchange, ["BAT-BTC"])
    start_listener(late)
    late_ticks.wait_for(lambda t: len(t) >= 5)
    top = lambda tick: (tick["time"], tick["bid"], tick["bid_size"], tick["ask"], tick["ask_size"])
    first = late_ticks.items[0]
    assert first["bid"] and first["ask"]  # a whole book straight away, not the one side a diff touches
    early_ticks.wait_for(lambda t: {top(tick) for tick in late_ticks.items[:5]} <= {top(tick) for tick in t})


def test_rest_backfill_from_the_local_exchange(start_listener):
    exchange = LocalExchange([UPSTREAM / FILE], speed=20).start()
    try:
        listener, ticks, _, _ = make(exchange, ["ETH-USD"])
        start_listener(listener)
        ticks.wait_for(lambda t: any(tick["last"] for tick in t), timeout=30)
        rest = backfill(RestClient(exchange.rest_urls), Bitstamp(), "ETH-USD")
    finally:
        exchange.stop()
    assert rest and all(t["source"] == "rest" and t["symbol"] == "ETH-USD" for t in rest)
    assert [t["time"] for t in rest[:-1]] == sorted(t["time"] for t in rest[:-1])  # trades oldest first
    assert rest[-1]["bid"] and rest[-1]["ask"] and rest[-1]["last"]  # then the ticker


def test_a_stall_goes_stale_then_recovers_on_the_same_markets(local_exchange, start_listener):
    """Our heartbeats go unanswered and pings too: stale, reconnect, re-subscribe."""
    listener, ticks, _, states = make(local_exchange, ["BAT-BTC"], stale_after_s=1.5, backoff_base_s=0.05)
    start_listener(listener)
    ticks.wait_for(lambda t: len(t) >= 1)
    local_exchange.inject("bitstamp:stall")
    states.wait_for(lambda s: "stale" in s)
    states.wait_for(lambda s: s[-1] == "live" and "reconnecting" in s)
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)
    assert listener.status()["reconnects"] == 1 and listener.status()["gaps"] == 1
    # the stalled connection may linger on the server's side (it reads nothing); the new one has the same markets
    keys = [client.session["keys"] for client in local_exchange.clients("bitstamp")]
    assert {"order_book_batbtc", "live_trades_batbtc"} in keys


def test_an_error_frame_is_reported_and_a_refused_subscribe_shows_its_reason(local_exchange, start_listener):
    listener, ticks, markets, _ = make(local_exchange, ["BAT-BTC"])
    start_listener(listener)
    markets.wait_for(lambda m: ("bitstamp:BAT-BTC", "streaming", "") in m)
    ticks.wait_for(lambda t: not listener._pending)  # both channels answered
    local_exchange.inject("bitstamp:error=maintenance soon")
    ticks.wait_for(lambda t: listener.status()["last_error"])
    assert listener.status()["last_error"] == "Bitstamp: maintenance soon"
    local_exchange.inject("bitstamp:refuse-subscribe").result(5)
    listener.add("ETH-USD")
    markets.wait_for(lambda m: ("bitstamp:ETH-USD", "error", "Subscription refused: too many subscriptions.") in m)
    assert "ETH-USD" not in listener.symbols() and listener.status()["reconnects"] == 0
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)  # the feed goes on


def test_the_book_stays_right_over_every_recorded_diff():
    """After each recorded diff_order_book frame the published top equals a book rebuilt here from plain dicts (the
    recording has no full book first, so a side with no level yet is unknown: None, and both unknown publish
    nothing)."""
    from decimal import Decimal
    listener, books, checked = Bitstamp(), {}, 0
    for frame in frames('"event":"data"'):
        message = orjson.loads(frame)
        if not message["channel"].startswith("diff_order_book_"):
            continue
        bids, asks = books.setdefault(message["channel"], ({}, {}))
        for levels, changes in ((bids, message["data"]["bids"]), (asks, message["data"]["asks"])):
            for price, size in changes:
                if Decimal(size) == 0:
                    levels.pop(Decimal(price), None)
                else:
                    levels[Decimal(price)] = (price, size)
        best_bid = bids[max(bids)] if bids else (None, None)
        best_ask = asks[min(asks)] if asks else (None, None)
        published = [(u.bid, u.bid_size, u.ask, u.ask_size) for u in parse(frame, listener)]
        assert published == ([] if not bids and not asks else [(*best_bid, *best_ask)]), f"after {frame[:120]}"
        checked += 1
    assert checked == 717 and len(books) == 9
