"""Gemini: market data v2 on real recorded frames (upstream/GEMINI.ws.1.0) and documented ones, its order book; the
new WebSocket API on documented frames and on the frames the local exchange derives from the v2 recording; the venue
speaking both; and the real listener against the local exchange over loopback, on either API."""
import json
from decimal import Decimal

import orjson
import pytest
from unittest.mock import ANY

from conftest import Collector, UPSTREAM, apply_changes, documented, recorded
from exchanges.gemini import V2_PATH, V2_URL, Gemini, GeminiVenue, MarketDataV2, StreamsAPI
from exchanges.recording import read_frames
from exchanges.tick import EMPTY, BadFrame, ExchangeError, Gap, Heartbeat, Rejected, Subscribed, TickBook, Update

FILE = "GEMINI.ws.1.0"


def v2():
    """A listener speaking market data v2 (its URL picks the API)."""
    return Gemini(V2_URL)


def parse(frame, listener=None):
    return (listener or v2()).parse(frame, 0)


def frames():
    return [frame.frame for frame in read_frames(UPSTREAM / FILE)]


# --- the parser on recorded frames -------------------------------------------------------------------------------
def test_first_l2_updates_is_the_book_and_its_newest_trade_is_the_last_trade():
    # The book first, then its trade: the trade is merged with the book it belongs to.
    assert parse(recorded(FILE, '"symbol":"ALCXUSD"')) == [
        Update("ALCX-USD", None, "302.75", "0.00001", "303.05", "8.12974"),
        Update("ALCX-USD", 1624493651491, last="302.53", last_size="0.992143", last_side="buy", sequence=ANY)]


def test_a_subscribed_pairs_snapshot_acknowledges_it():
    gemini = v2()
    gemini.subscribe_messages(["ALCX-USD"])
    items = parse(recorded(FILE, '"symbol":"ALCXUSD"'), gemini)
    assert items[0] == Subscribed(("ALCX-USD",)) and len(items) == 3


def test_snapshot_trades_are_history_taken_at_their_newest_even_out_of_order():
    [book, trade] = parse(recorded(FILE, '"symbol":"ETHEUR"'))  # its 50 trades are not sorted by time
    assert trade == Update("ETH-EUR", 1624492802863, last="1648.19", last_size="0.05", last_side="sell",
                           sequence=ANY)
    assert book == Update("ETH-EUR", None, "1648.98", "2.537003", "1656.75", "1.263")


def test_updates_publish_the_top_only_when_it_changes():
    gemini = v2()
    parse(recorded(FILE, '"symbol":"FILUSD"'), gemini)
    assert parse(recorded(FILE, '"symbol":"FILUSD"', 1), gemini) == [
        Update("FIL-USD", None, "58.4033", "84.272973", "58.4864", "56")]  # a better bid
    assert parse(recorded(FILE, '"symbol":"FILUSD"', 2), gemini) == [
        Update("FIL-USD", None, "58.4033", "84.272973", "58.4834", "56")]  # a better ask
    assert parse(recorded(FILE, '"symbol":"FILUSD"', 3), gemini) == []  # changes behind the top


def test_trade_gives_last_price_size_taker_side_and_time():
    assert parse(recorded(FILE, '"event_id":45465818387')) == [
        Update("ANKR-USD", 1624493670759, last="0.07946", last_size="1020.482111", last_side="buy",
               sequence=45465818387)]
    assert parse(documented("gemini_trade")) == [
        Update("BTC-USD", 151231241, last="9004.21000000", last_size="0.09110000", last_side="buy", sequence=ANY)]


def test_heartbeat_is_liveness_not_data():
    assert parse(recorded(FILE, '"type":"heartbeat"')) == [Heartbeat()]


def test_documented_initial_response_and_update():
    gemini = v2()
    assert parse(documented("gemini_l2_initial"), gemini) == [
        Update("BTC-USD", None, "9122.04", "0.00121425", "9122.07", "0.98942292"),
        Update("BTC-USD", 1560976400428, last="9122.04", last_size="0.0073173", last_side="sell", sequence=ANY)]
    assert parse(documented("gemini_l2_update"), gemini) == []  # a far ask: the top is unchanged


def test_removing_the_last_level_of_a_side_empties_it():
    gemini, book = v2(), TickBook("gemini")
    parse('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100","1"],["sell","101","2"]],"trades":[]}', gemini)
    [update] = parse('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100","0"]]}', gemini)
    assert update == Update("BTC-USD", None, EMPTY, EMPTY, "101", "2")
    book.apply(Update("BTC-USD", None, "100", "1", "101", "2"), 1)
    tick = book.apply(update, 2)
    assert (tick["bid"], tick["bid_size"], tick["ask"], tick["empty"]) == (None, None, "101", "bid")


def test_a_reconnect_snapshot_replaces_the_book_before_its_trade_is_merged():
    """The trade of a fresh snapshot is shown with the fresh book, never with the bid/ask from before the
    reconnect (a row that never existed)."""
    gemini, book = v2(), TickBook("gemini")
    before = ('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100","1"],["sell","101","2"]],'
              '"trades":[]}')
    for item in parse(before, gemini):
        book.apply(item, 1)
    gemini.on_connected()
    book.reset()  # what the listener does on every new connection
    after = ('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","90","1"],["sell","91","2"]],"trades":['
             '{"type":"trade","symbol":"BTCUSD","event_id":7,"timestamp":1700000000000,"price":"90.5",'
             '"quantity":"1","side":"buy"}]}')
    ticks = [book.apply(item, 2) for item in parse(after, gemini) if type(item) is Update]
    assert [(t["bid"], t["ask"], t["last"]) for t in ticks] == [("90", "91", None), ("90", "91", "90.5")]


def test_an_older_trade_message_never_becomes_the_last_trade():
    gemini, book = v2(), TickBook("gemini")
    newer = ('{"type":"trade","symbol":"BTCUSD","event_id":9,"timestamp":1700000000500,"price":"101",'
             '"quantity":"1","side":"buy"}')
    older = newer.replace('"event_id":9', '"event_id":8').replace("500", "400").replace('"101"', '"99"')
    assert book.apply(parse(newer, gemini)[0], 1)["last"] == "101"
    assert book.apply(parse(older, gemini)[0], 2) is None and book.older == 1


def test_other_channels_yield_no_tick():
    assert parse(documented("gemini_candles")) == []


def test_a_reconnect_snapshot_republishes_no_trade_already_published():
    gemini = v2()
    snapshot = recorded(FILE, '"symbol":"ALCXUSD"')
    parse(snapshot, gemini)
    gemini.on_connected()
    assert parse(snapshot, gemini) == [Update("ALCX-USD", None, "302.75", "0.00001", "303.05", "8.12974")]
    newer = orjson.loads(snapshot)
    newer["trades"].insert(0, {"type": "trade", "symbol": "ALCXUSD", "event_id": 45465790000,
                               "timestamp": 1624493660000, "price": "302.9", "quantity": "1", "side": "sell"})
    gemini.on_connected()
    assert parse(orjson.dumps(newer), gemini)[-1] == Update("ALCX-USD", 1624493660000, last="302.9", last_size="1",
                                                            last_side="sell", sequence=ANY)  # traded while away


def test_the_book_stays_right_over_every_recorded_frame():
    """After each l2_updates frame the published top equals a book rebuilt here from plain dicts."""
    gemini = v2()
    books, published, checked = {}, {}, 0
    for frame in frames():
        message = json.loads(frame)
        for item in gemini.parse(frame, 0):
            if type(item) is Update and item.bid is not None and item.last is None:
                published[item.symbol] = (item.bid, item.bid_size, item.ask, item.ask_size)
        if message.get("type") != "l2_updates":
            continue
        symbol = message["symbol"]
        if "trades" in message:
            books[symbol] = ({}, {})
        bids, asks = books[symbol]
        apply_changes(bids, asks, message["changes"])
        best_bid, best_ask = bids[max(bids)], asks[min(asks)]
        unified = symbol[:-3] + "-" + symbol[-3:]  # every recorded pair has a three-letter quote
        assert published[unified] == (*best_bid, *best_ask), f"after {frame[:120]}"
        checked += 1
    assert checked == 655 and len(published) == 10


def test_a_crossed_book_drops_the_stale_levels_and_marks_a_gap():
    """v2 has no sequence numbers, so a crossing is the one sign of a missed update: the levels this update
    crossed are what the missed one removed. They go, and the market gets a gap (not a bad frame: the frame is
    good, our book was behind)."""
    gemini = v2()
    parse('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100","1"],["sell","101","2"],["sell","102","3"]],'
          '"trades":[]}', gemini)
    items = parse('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","101.5","4"]]}', gemini)
    assert items == [Gap("BTC-USD", "book crossed: an update was missed; 1 stale level(s) dropped"),
                     Update("BTC-USD", None, "101.5", "4", "102", "3")]
    # A snapshot that is crossed is Gemini's own word: kept as sent.
    assert parse('{"type":"l2_updates","symbol":"ETHUSD","changes":[["buy","10","1"],["sell","9","1"]],"trades":[]}'
                 ) == [Update("ETH-USD", None, "10", "1", "9", "1")]


def test_an_update_before_any_snapshot_is_a_bad_frame_unless_we_just_unsubscribed():
    """With no book there is nothing to apply it to, and its levels alone are not the market's top: counted as a
    bad frame (it breaks the protocol). After our unsubscribe, frames in flight are expected and dropped."""
    gemini = v2()
    with pytest.raises(BadFrame, match="before its snapshot"):
        parse(documented("gemini_l2_update"), gemini)
    gemini.subscribe_messages(["BTC-USD"])
    parse(documented("gemini_l2_initial"), gemini)
    gemini.unsubscribe_messages(["BTC-USD"])
    assert parse(documented("gemini_l2_update"), gemini) == []
    gemini.on_connected()
    with pytest.raises(BadFrame):
        parse(documented("gemini_l2_update"), gemini)


def test_the_first_frame_after_subscribing_is_the_snapshot_even_without_trades():
    gemini = v2()
    gemini.subscribe_messages(["BTC-USD"])
    assert parse(documented("gemini_l2_update"), gemini) == [
        Subscribed(("BTC-USD",)), Update("BTC-USD", None, EMPTY, EMPTY, "9160.20", "0.1921229751")]


def test_no_valid_pairs_rejects_the_oldest_unanswered_subscribe():
    gemini = v2()
    gemini.subscribe_messages(["BTC-USD"])
    gemini.subscribe_messages(["BTC-FOO", "ETH-FOO"])
    parse(documented("gemini_l2_initial"), gemini)  # answers the first request
    assert parse(documented("gemini_error_no_valid_pairs"), gemini) == [
        Rejected("BTC-FOO", "NoValidTradingPairs"), Rejected("ETH-FOO", "NoValidTradingPairs")]
    assert parse(documented("gemini_error_no_valid_pairs"), gemini) == [ExchangeError("NoValidTradingPairs")]
    assert parse('{"result":"error","reason":"Maintenance","message":"back soon"}') == [
        ExchangeError("Maintenance: back soon")]


@pytest.mark.parametrize("frame, reason", [
    ('{"type":"l2_updates","symbol":"BTCUSD"', "truncated"),
    ('[1,2,3]', "not a JSON object"),
    ('{"symbol":"BTCUSD"}', "no 'type'"),
    ('{"type":"l2_updates","symbol":"BTCUSD","changes":[["up","1","1"]],"trades":[]}', "bad side"),
    ('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","1,5","1"]],"trades":[]}', "not a decimal"),
    ('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","1"]],"trades":[]}', "bad change"),
    ('{"type":"l2_updates","symbol":"BTCUSD","changes":{},"trades":[]}', "bad 'changes'"),
    ('{"type":"l2_updates","symbol":"btcusd","changes":[],"trades":[]}', "unknown symbol"),
    ('{"type":"l2_updates","symbol":"BTCUSD","trades":[]}', "changes"),
    ('{"type":"trade","symbol":"BTCUSD","timestamp":1.5,"price":"1","quantity":"1","side":"buy"}', "bad epoch ms"),
    ('{"type":"trade","symbol":"BTCUSD","timestamp":1,"price":"1","quantity":"1","side":"Buy"}', "bad side"),
    ('{"type":"trade","symbol":" BTCUSD","timestamp":1,"price":"1","quantity":"1","side":"buy"}', "bad symbol"),
])
def test_bad_frames_raise_so_the_listener_counts_them(frame, reason):
    with pytest.raises((BadFrame, KeyError, ValueError)) as raised:
        parse(frame)
    assert reason in str(raised.value) or reason == "truncated"


def test_a_bad_frame_leaves_the_book_as_it_was():
    gemini = v2()
    parse(documented("gemini_l2_initial"), gemini)
    with pytest.raises(BadFrame):
        parse('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","9123","1"],["buy","x","1"]]}', gemini)
    assert parse('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","9122.05","1"]]}', gemini) == [
        Update("BTC-USD", None, "9122.05", "1", "9122.07", "0.98942292")]  # 9123 was never applied


# --- symbols, requests, REST -------------------------------------------------------------------------------------
def test_symbol_mapping_both_ways():
    gemini = Gemini()
    assert gemini.to_native("BTC-USD") == "BTCUSD" and gemini.from_native("BTCUSD") == "BTC-USD"
    fresh = Gemini()  # no subscription, no listing: split by the known quote currencies, longest first
    assert [fresh.from_native(native) for native in ("LINKETH", "ZECLTC", "BTCGUSD", "ETHUSDT", "1INCHUSD")] == [
        "LINK-ETH", "ZEC-LTC", "BTC-GUSD", "ETH-USDT", "1INCH-USD"]
    with pytest.raises(BadFrame):
        fresh.from_native("BTCGUSDPERP")  # a perpetual: no BASE-QUOTE
    fresh.parse_listing(json.dumps([{"symbol": "ABCUSDX", "base_currency": "ABCU", "quote_currency": "SDX",
                                     "status": "open"}]))
    assert fresh.from_native("ABCUSDX") == "ABCU-SDX"  # the listing's own split wins


def test_listing_parsers_on_documented_bodies():
    assert Gemini().parse_listing(documented("gemini_rest_symbols")) == [
        "1INCH-USD", "BCH-USD", "BTC-DAI", "BTC-EUR", "BTC-GBP", "BTC-GUSD", "BTC-SGD", "BTC-USD", "ETH-BTC",
        "ETH-USD", "ZEC-LTC"]
    assert Gemini().parse_listing(documented("gemini_rest_symbol_details")) == ["BTC-USD"]
    closed = json.loads(documented("gemini_rest_symbol_details")) | {"status": "closed"}
    assert Gemini().parse_listing(json.dumps([closed])) == []


def test_v2_subscribe_and_unsubscribe_messages():
    gemini = v2()
    assert gemini.subscribe_messages(["BTC-USD", "ETH-BTC"]) == [
        '{"type":"subscribe","subscriptions":[{"name":"l2","symbols":["BTCUSD","ETHBTC"]}]}']
    assert gemini.unsubscribe_messages(["BTC-USD"]) == [
        '{"type":"unsubscribe","subscriptions":[{"name":"l2","symbols":["BTCUSD"]}]}']


def test_backfill_from_documented_rest_answers():
    gemini = Gemini()
    assert gemini.backfill_requests("BTC-USD") == [("/v1/trades/BTCUSD", {"limit_trades": "100"}),
                                                   ("/v1/pubticker/BTCUSD", {})]
    assert gemini.parse_backfill("BTC-USD", "/v1/trades/BTCUSD", documented("gemini_rest_trades")) == [
        Update("BTC-USD", 1547146811357, last="3610.85", last_size="0.27413495", last_side="buy")]
    assert gemini.parse_backfill("BTC-USD", "/v1/pubticker/BTCUSD", documented("gemini_rest_ticker")) == [
        Update("BTC-USD", None, "977.35", None, "977.59", None, "977.65")]  # the volume window's time is no quote time
    auction = '[{"timestamp":1,"timestampms":1000,"tid":7,"price":"5","amount":"2","exchange":"gemini","type":"auction"}]'
    assert gemini.parse_backfill("BTC-USD", "/v1/trades/BTCUSD", auction) == [
        Update("BTC-USD", 1000, last="5", last_size="2", last_side=None)]


# --- the venue ----------------------------------------------------------------------------------------------------
def test_venue_answers_like_gemini_v2_on_its_path():
    venue = GeminiVenue({"BTCUSD", "ETHUSD"})
    session, other = {}, {}
    venue.on_open(session, V2_PATH)
    venue.on_open(other, V2_PATH)
    # ETHBTC is not listed: ignored. Nothing played yet: no snapshot claims an empty book, the recorded first
    # message (itself a snapshot) will answer.
    assert venue.on_message(session, documented("gemini_subscribe")) == []
    assert session["keys"] == {"l2:BTCUSD", "l2:ETHUSD"}
    venue.observe('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100","1"]],"trades":[]}')
    [btc] = venue.on_message(other, documented("gemini_subscribe"))  # played: the book so far
    assert json.loads(btc) == {"type": "l2_updates", "symbol": "BTCUSD", "changes": [["buy", "100", "1"]],
                               "trades": [], "auction_events": []}
    assert venue.on_message(session, documented("gemini_subscribe")) == []  # already subscribed
    assert venue.on_message(session, v2().subscribe_messages(["BTC-FOO"])[0]) == [
        '{"result":"error","reason":"NoValidTradingPairs"}']
    assert venue.on_message(session, documented("gemini_unsubscribe")) == [] and session["keys"] == {"l2:ETHUSD"}
    [beat] = venue.heartbeats(session, 1624493666.5)
    assert beat == '{"type":"heartbeat","timestamp":1624493666500}'
    assert parse(beat) == [Heartbeat()]
    assert venue.route(recorded(FILE, '"event_id":45465818387')) == "l2:ANKRUSD"
    assert venue.route(recorded(FILE, '"type":"heartbeat"')) is None
    assert parse(venue.refusal(session, documented("gemini_subscribe"))[0]) == [ExchangeError("NoValidTradingPairs")]


def test_venue_snapshot_mid_replay_carries_on_as_if_subscribed_from_the_start():
    """A client subscribing after N frames gets a full-book l2_updates of the book played so far (the recorded
    first message's shape), then the changes: its top equals a client's that saw every frame."""
    recorded_frames = frames()
    venue = GeminiVenue({"FILUSD"})
    everything, late = v2(), v2()
    split = len(recorded_frames) // 2
    tops_from_start = []
    for index, frame in enumerate(recorded_frames):
        if index == split:
            session = {}
            venue.on_open(session, V2_PATH)
            [snapshot] = venue.on_message(session, late.subscribe_messages(["FIL-USD"])[0])
            shape = json.loads(snapshot)
            first = json.loads(recorded(FILE, '"symbol":"FILUSD"'))
            assert list(shape) == list(first) and shape["symbol"] == "FILUSD"
            sides = [side for side, _, _ in shape["changes"]]
            bids = [Decimal(price) for side, price, _ in shape["changes"] if side == "buy"]
            asks = [Decimal(price) for side, price, _ in shape["changes"] if side == "sell"]
            assert sides == sorted(sides) and bids == sorted(bids, reverse=True) and asks == sorted(asks)
            late_items = late.parse(snapshot, 0)
            late_top = [item for item in late_items if type(item) is Update and item.last is None][-1]
            assert late_items[0] == Subscribed(("FIL-USD",)) and late_top == tops_from_start[-1]
        venue.observe(frame)
        for item in everything.parse(frame, 0):
            if type(item) is Update and item.symbol == "FIL-USD" and item.last is None:
                tops_from_start.append(item)
        if index >= split and venue.route(frame) == "l2:FILUSD":
            late.parse(frame, 0)
    assert late.api._books["FILUSD"].top() == everything.api._books["FILUSD"].top()
    assert late.api._books["FILUSD"].bids == everything.api._books["FILUSD"].bids
    assert late.api._books["FILUSD"].asks == everything.api._books["FILUSD"].asks


def test_venue_serves_ticker_and_trades_from_what_was_played():
    venue = GeminiVenue()
    for frame in frames():
        venue.observe(frame)
    status, body = venue.rest("/v1/trades/filusd", {"limit_trades": "2"})
    assert status == 200 and [trade["tid"] for trade in json.loads(body)] == [45465883982, 45465883980]
    [newest, older] = Gemini().parse_backfill("FIL-USD", "/v1/trades/FILUSD", body)[::-1]
    assert newest == Update("FIL-USD", 1624493692901, last="58.6805", last_size="213.261958", last_side="buy")
    status, body = venue.rest("/v1/pubticker/FILUSD", {})
    [ticker] = Gemini().parse_backfill("FIL-USD", "/v1/pubticker/FILUSD", body)
    assert status == 200 and ticker.last == "58.6805" and Decimal(ticker.bid) < Decimal(ticker.ask)
    assert venue.rest("/v1/pubticker/BTCFOO", {})[0] == 400
    assert venue.rest("/v1/symbols", {}) is None  # no recorded listing


# --- the real listener over loopback ------------------------------------------------------------------------------
def test_v2_listener_against_the_local_exchange(local_exchange, start_listener):
    """v2 stays selectable: its URL's path picks it, and the local exchange serves it on that path."""
    ticks, markets, states = Collector(), Collector(), Collector()
    url = local_exchange.urls["gemini"].rstrip("/") + V2_PATH
    listener = Gemini(url, ["FIL-USD"], on_tick=ticks, on_market=markets,
                      on_state=lambda status: states(status["state"]))
    assert type(listener.api) is MarketDataV2 and not listener.pong_is_liveness
    start_listener(listener)
    markets.wait_for(lambda m: ("gemini:FIL-USD", "subscribed", "") in m)
    ticks.wait_for(lambda t: any(tick["bid"] and tick["ask"] for tick in t))
    [client] = local_exchange.clients("gemini")
    assert list(client.messages) == ['{"type":"subscribe","subscriptions":[{"name":"l2","symbols":["FILUSD"]}]}']
    book = [t for t in ticks.items if t["bid"]]
    assert all(t["exchange"] == "gemini" and t["symbol"] == "FIL-USD" for t in book)
    assert all(t["last"] for t in book if t["time"] is not None)  # only a trade has a time: a book update none
    assert all(Decimal(t["bid"]) < Decimal(t["ask"]) for t in book)

    listener.add("BTC-GBP")  # mid-replay: the venue's snapshot of the book played so far, then its changes
    ticks.wait_for(lambda t: any(tick["symbol"] == "BTC-GBP" and tick["bid"] for tick in t))
    assert local_exchange.clients("gemini") == [client]  # no reconnect

    listener.remove("BTC-GBP")
    ticks.wait_for(lambda t: client.session["keys"] == {"l2:FILUSD"})
    assert client.messages[-1] == '{"type":"unsubscribe","subscriptions":[{"name":"l2","symbols":["BTCGBP"]}]}'

    listener.add("BTC-FOO")
    markets.wait_for(lambda m: ("gemini:BTC-FOO", "error", "NoValidTradingPairs") in m)
    assert "BTC-FOO" not in listener.symbols()
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)  # the good market goes on
    status = listener.status()
    assert status["reconnects"] == 0 and status["bad_frames"] == 0 and states.items[:2] == ["connecting", "live"]
