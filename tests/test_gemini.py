"""Gemini: market data v2 on real recorded frames (upstream/GEMINI.ws.1.0) and documented ones, its order book; the
new WebSocket API on documented frames and on the frames the local exchange derives from the v2 recording; the venue
speaking both; and the real listener against the local exchange over loopback, on either API."""
import json
from decimal import Decimal

import orjson
import pytest
import websocket
from unittest.mock import ANY

from conftest import (Collector, UPSTREAM, apply_changes, documented, recorded, refused_while_the_rest_streams,
                      watched)
from exchanges.gemini import V2_PATH, V2_URL, Gemini, GeminiVenue, MarketDataV2, StreamsAPI, ns_to_ms
from exchanges.recording import read_frames
from exchanges.venue import PASS_STRIDE, played
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

    refused_while_the_rest_streams(listener, ticks, markets, states, "BTC-FOO", "NoValidTradingPairs")


# --- the new WebSocket API: documented frames ---------------------------------------------------------------------
def streams():
    """A listener speaking the new WebSocket API (the default URL)."""
    return Gemini()


def test_the_url_picks_the_api():
    assert Gemini.url == "wss://ws.gemini.com" and Gemini.quote_on_every_change is True
    assert type(Gemini().api) is StreamsAPI and Gemini().pong_is_liveness  # no heartbeat stream documented
    for url in (V2_URL, V2_URL + "/", "ws://127.0.0.1:8765/v2/marketdata"):
        assert type(Gemini(url).api) is MarketDataV2 and not Gemini(url).pong_is_liveness
    assert type(Gemini("ws://127.0.0.1:8765/").api) is StreamsAPI


def test_book_ticker_time_is_its_event_time_in_ns_to_ms_and_u_its_sequence():
    assert streams().parse(documented("gemini_ws_book_ticker"), 0) == [Update(
        "BTC-USD", 1751508438600, "45000.50", "1.25000000", "45001.00", "0.75000000", sequence=1751505576085)]


def test_ns_to_ms_is_integer_division_never_float():
    frame = json.loads(documented("gemini_ws_book_ticker"))
    frame["E"] = 1751508438600999999  # as a float, / 1e6 rounds this up to ...601
    [update] = streams().parse(json.dumps(frame), 0)
    assert update.time == 1751508438600 and float(frame["E"]) / 1e6 != 1751508438600


def test_an_event_time_is_read_in_ns_or_ms_by_its_size_and_nothing_else_passes():
    """Book Ticker's E is documented in ns; Gemini's own trade fixture has an ms-sized E (1700000000000)."""
    assert ns_to_ms(1751508438600117161) == ns_to_ms(1751508438600) == 1751508438600
    for bad in (1751508438, 10 ** 15, -1, 1.7e12, "1751508438600", True):
        with pytest.raises(BadFrame):
            ns_to_ms(bad)


def test_an_older_book_ticker_is_dropped():
    gemini, book = streams(), TickBook("gemini")
    newer = json.loads(documented("gemini_ws_book_ticker"))
    older = newer | {"u": newer["u"] - 1, "b": "44999.00"}
    assert book.apply(gemini.parse(json.dumps(newer), 0)[0], 1)["bid"] == "45000.50"
    assert book.apply(gemini.parse(json.dumps(older), 0)[0], 2) is None and book.older == 1
    later = newer | {"u": newer["u"] + 1, "b": "45000.75"}
    assert book.apply(gemini.parse(json.dumps(later), 0)[0], 3)["bid"] == "45000.75"


@pytest.mark.parametrize("change", [{"b": "", "B": ""}, {"b": "0", "B": "0"}, {"b": "0.00", "B": "1"}, {"b": None},
                                    "absent"])
def test_a_book_ticker_side_with_no_price_is_empty_never_its_last_price(change):
    """How the new API sends an empty side is not documented: anything but a price ("", zeros, null, absent) is
    empty."""
    gemini, book = streams(), TickBook("gemini")
    documented_frame = json.loads(documented("gemini_ws_book_ticker"))
    book.apply(gemini.parse(json.dumps(documented_frame), 0)[0], 1)
    emptied = documented_frame | {"u": documented_frame["u"] + 1}
    if change == "absent":
        del emptied["b"], emptied["B"]
    else:
        emptied |= change
    [update] = gemini.parse(json.dumps(emptied), 0)
    assert (update.bid, update.bid_size, update.ask) == (EMPTY, EMPTY, "45001.00")
    tick = book.apply(update, 2)
    assert (tick["bid"], tick["bid_size"], tick["empty"], tick["ask"]) == (None, None, "bid", "45001.00")


def test_a_trade_gives_the_last_trade_its_taker_side_and_id():
    # m is "buyer is maker" (Gemini's Go SDK): true, so the taker sold; this E is ms-sized: 2023-11-14, not 1970
    assert streams().parse(documented("gemini_ws_trade"), 0) == [Update(
        "BTC-USD", 1_700_000_000_000, last="1000.00", last_size="0.25", last_side="sell", sequence=123456789)]
    gemini, book = streams(), TickBook("gemini")
    newer = json.loads(documented("gemini_ws_trade"))
    older = newer | {"t": newer["t"] - 1, "p": "999.00", "m": False}
    assert book.apply(gemini.parse(json.dumps(newer), 0)[0], 1)["last"] == "1000.00"
    assert book.apply(gemini.parse(json.dumps(older), 0)[0], 2) is None and book.older == 1


def test_depth_streams_yield_no_tick():
    assert streams().parse(documented("gemini_ws_depth_update"), 0) == []
    assert streams().parse(documented("gemini_ws_partial_depth"), 0) == []


def test_requests_and_replies_are_matched_by_id():
    gemini = streams()
    assert gemini.subscribe_messages(["BTC-USD", "ETH-BTC"]) == [
        '{"id":"1","method":"SUBSCRIBE","params":["btcusd@bookTicker","btcusd@trade","ethbtc@bookTicker",'
        '"ethbtc@trade"]}']
    assert gemini.unsubscribe_messages(["ETH-BTC"]) == [
        '{"id":"2","method":"UNSUBSCRIBE","params":["ethbtc@bookTicker","ethbtc@trade"]}']
    assert gemini.parse(documented("gemini_ws_result"), 0) == [Subscribed(("BTC-USD", "ETH-BTC"))]
    assert gemini.parse(documented("gemini_ws_result").replace('"1"', '"2"'), 0) == [Subscribed(None)]


def test_an_error_reply_refuses_its_requests_pairs_in_geminis_words():
    gemini = streams()
    gemini.subscribe_messages(["BTC-FOO", "ETH-FOO"])
    assert gemini.parse(documented("gemini_ws_error"), 0) == [
        Rejected("BTC-FOO", "Gemini error -1002: Authentication required"),
        Rejected("ETH-FOO", "Gemini error -1002: Authentication required")]
    # no request of ours pending under that id: the feed's error
    assert gemini.parse(documented("gemini_ws_error"), 0) == [
        ExchangeError("Gemini error -1002: Authentication required")]
    gemini.on_connected()  # a new connection: nothing pending
    gemini.subscribe_messages(["BTC-USD"])
    assert gemini.parse(documented("gemini_ws_error").replace('"1"', '"3"'), 0) == [
        ExchangeError("Gemini error -1002: Authentication required")]


@pytest.mark.parametrize("frame, reason", [
    ('{ "u": 1, "E": 1751508438600117161, "s": "btcusd", "b": "45000.50"', "truncated"),
    ('[1, 2]', "not a JSON object"),
    ('{"hello": "world"}', "neither stream data nor a reply"),
    ('{"u": 1, "E": 1.7e18, "s": "btcusd", "b": "1", "B": "1", "a": "2", "A": "1"}', "bad event time"),
    ('{"u": 1, "E": 1, "s": "btcusd", "b": "1", "B": "1", "a": "2", "A": "1"}', "neither in ns nor in ms"),
    ('{"u": 1, "E": "1751508438600117161", "s": "btcusd", "b": "1", "B": "1", "a": "2", "A": "1"}', "bad event time"),
    ('{"u": "7", "E": 1751508438600117161, "s": "btcusd", "b": "1", "B": "1", "a": "2", "A": "1"}', "bad 'u'"),
    ('{"u": 1, "E": 1751508438600117161, "s": "btcusd", "b": "1,5", "B": "1", "a": "2", "A": "1"}', "not a decimal"),
    ('{"u": 1, "E": 1751508438600117161, "s": "btcusd", "b": "1", "a": "2", "A": "1"}', "not a decimal"),
    ('{"u": 1, "E": 1751508438600117161, "b": "1", "B": "1", "a": "2", "A": "1"}', "no symbol"),
    ('{"u": 1, "E": 1751508438600117161, "s": "btc-usd", "b": "1", "B": "1", "a": "2", "A": "1"}', "bad symbol"),
    ('{"u": 1, "E": 1751508438600117161, "s": "btcxyz", "b": "1", "B": "1", "a": "2", "A": "1"}', "unknown symbol"),
    ('{"e": "trade", "E": 1751508438600117161, "s": "btcusd", "t": 1, "p": "1", "q": "1", "m": "yes"}', "bad 'm'"),
    ('{"e": "trade", "E": 1751508438600117161, "s": "btcusd", "t": -1, "p": "1", "q": "1", "m": true}', "bad 't'"),
    ('{"e": "trade", "E": 1751508438600117161, "s": "btcusd", "t": 1, "p": 1.5, "q": "1", "m": true}', "not a decimal"),
    ('{"e": "trade", "s": "btcusd", "t": 1, "p": "1", "q": "1", "m": true}', "'E'"),
])
def test_malformed_new_api_frames_raise(frame, reason):
    with pytest.raises((BadFrame, KeyError, ValueError)) as raised:
        streams().parse(frame, 0)
    assert reason in str(raised.value) or reason == "truncated"


def test_a_malformed_frame_is_counted_and_skipped_and_the_feed_goes_on():
    listener = Gemini(None, [])
    listener.subscribe_messages(["BTC-USD"])
    listener._subscribed_at = {"BTC-USD": 0.0}  # as after subscribing on a connection
    ticks = []
    listener.on_tick = ticks.append
    text = websocket.ABNF.OPCODE_TEXT
    bad = documented("gemini_ws_book_ticker").replace('"45000.50"', '"forty-five"')
    assert listener._handle(text, bad.encode()) is False
    assert listener._handle(text, documented("gemini_ws_book_ticker").encode()) is True
    status = listener.status()
    assert status["bad_frames"] == 1 and status["bad_by_reason"] == {"not a decimal string": 1}
    assert "forty-five" in status["last_bad_frame"] and [tick["bid"] for tick in ticks] == ["45000.50"]


# --- the venue: the new API, and the frames it derives from the v2 recording ---------------------------------------
def derived_frames():
    """The recording as the local exchange plays it: (recorded frame, stream, derived text) for each derived one."""
    recorded_frames = list(read_frames(UPSTREAM / FILE))
    return [(frame, key, text) for frame, key, text in played(GeminiVenue(), recorded_frames)
            if text is not frame.frame]


def test_venue_answers_like_the_new_api():
    venue, session = GeminiVenue({"FILUSD"}), {}
    assert venue.on_open(session, "/") == [] and session["api"] == "streams"
    gemini = streams()
    [reply] = venue.on_message(session, gemini.subscribe_messages(["FIL-USD", "BTC-FOO"])[0])
    assert reply == '{"id":"1","status":200,"result":null}' and gemini.parse(reply, 0) == [
        Subscribed(("FIL-USD", "BTC-FOO"))]
    # an unlisted pair's streams are accepted and send nothing (undocumented: as Binance does)
    assert session["keys"] == {"filusd@bookTicker", "filusd@trade", "btcfoo@bookTicker", "btcfoo@trade"}
    [listing] = venue.on_message(session, '{"id": 9, "method": "list_subscriptions"}')
    assert json.loads(listing) == {"id": 9, "status": 200, "result": sorted(session["keys"])}
    venue.on_message(session, gemini.unsubscribe_messages(["BTC-FOO"])[0])
    assert session["keys"] == {"filusd@bookTicker", "filusd@trade"}
    for request, code in [("{oops", -1013), ('{"id": 4, "method": "SUBSCRIBE", "params": "btcusd"}', -1013),
                          ('{"id": 5, "method": "SUBSCRIBE", "params": ["btcusd"]}', -1013),
                          ('{"id": 6, "method": "order.place", "params": {}}', -1020)]:
        [error] = venue.on_message(session, request)
        assert json.loads(error)["error"]["code"] == code and json.loads(error)["status"] == 400
        assert type(gemini.parse(error, 0)[0]) is ExchangeError  # no pair of ours pending under that id
    assert venue.heartbeats(session, 1624493666.5) == []  # no heartbeat stream: pongs are the liveness
    [refusal] = venue.refusal(session, gemini.subscribe_messages(["FIL-USD"])[0])
    assert gemini.parse(refusal, 0) == [Rejected("FIL-USD", "Gemini error -1003: Rate limit exceeded")]
    assert venue.refusal(session, '{"id": 7, "method": "LIST_SUBSCRIPTIONS"}') is None
    assert gemini.parse(venue.error_frame("maintenance soon"), 0) == [
        ExchangeError("Gemini error -1000: maintenance soon")]


def test_derived_frames_have_the_documented_shapes():
    derived = derived_frames()
    [(snapshot, key, quote)] = [item for item in derived if item[1] == "alcxusd@bookTicker"][:1]
    assert key == "alcxusd@bookTicker" and '"symbol":"ALCXUSD"' in snapshot.frame and '"trades"' in snapshot.frame
    # the book's top after the recorded snapshot, dated by the recording's receipt time in ns (digits kept exactly)
    assert quote == ('{"u":1,"E":1624493666638480000,"s":"alcxusd","b":"302.75","B":"0.00001","a":"303.05",'
                     '"A":"8.12974"}')
    assert list(json.loads(quote)) == list(json.loads(documented("gemini_ws_book_ticker")))
    [(recorded_trade, key, trade)] = [item for item in derived if item[1].endswith("@trade")][:1]
    assert recorded_trade.frame == recorded(FILE, '"event_id":45465818387') and key == "ankrusd@trade"
    assert trade == ('{"e":"trade","E":1624493670759000000,"s":"ankrusd","t":45465818387,"p":"0.07946",'
                     '"q":"1020.482111","m":false}')
    assert list(json.loads(trade)) == list(json.loads(documented("gemini_ws_trade")))
    assert streams().parse(trade, 0) == [Update("ANKR-USD", 1624493670759, last="0.07946", last_size="1020.482111",
                                                last_side="buy", sequence=45465818387)]
    assert len([item for item in derived if item[1].endswith("@trade")]) == 16  # one per recorded trade message
    assert GeminiVenue().route(quote) == "alcxusd@bookTicker" and GeminiVenue().route(trade) == "ankrusd@trade"


def _quote(update):
    return update.bid, update.bid_size, update.ask, update.ask_size


def test_derived_quotes_are_the_v2_books_top_on_every_change():
    """Each derived bookTicker is the top the v2 listener publishes from the same recorded frames, in order, and
    its u only ever grows."""
    v2_tops, quotes = {}, {}
    gemini = v2()
    for frame in read_frames(UPSTREAM / FILE):
        for item in gemini.parse(frame.frame, 0):
            if type(item) is Update and item.last is None:
                v2_tops.setdefault(item.symbol, []).append(_quote(item))
    last_u = 0
    for _, key, text in derived_frames():
        if key.endswith("@bookTicker"):
            [update] = streams().parse(text, 0)
            assert update.sequence > last_u
            last_u = update.sequence
            quotes.setdefault(update.symbol, []).append(_quote(update))
    assert quotes == v2_tops and len(quotes) == 10


def test_derived_frames_go_on_numbering_on_each_pass_and_garbage_derives_nothing():
    venue = GeminiVenue()
    _, _, quote = derived_frames()[0]
    _, _, trade = [item for item in derived_frames() if item[1].endswith("@trade")][0]
    assert json.loads(venue.next_pass(quote, 2))["u"] == 1 + 2 * PASS_STRIDE
    assert json.loads(venue.next_pass(trade, 1))["t"] == 45465818387 + PASS_STRIDE
    for garbage in ("<html>", '{"type":"l2_updates"', '{"type":"trade","symbol":"X"}', "[1,2]"):
        assert venue.derived(garbage, 1624493666.5) == []
    # a raw frame has no receipt time: no quote can be dated from it
    assert venue.derived(recorded(FILE, '"symbol":"ALCXUSD"'), None) == []


# --- the real listener over loopback, on the new API --------------------------------------------------------------
def watch(local_exchange, symbols, **options):
    return watched(Gemini, local_exchange.urls["gemini"], symbols, **options)


def test_listener_against_the_local_exchange_speaking_the_new_api(local_exchange, start_listener):
    listener, ticks, markets, states = watch(local_exchange, ["FIL-USD"])
    assert type(listener.api) is StreamsAPI
    start_listener(listener)
    markets.wait_for(lambda m: ("gemini:FIL-USD", "subscribed", "") in m)  # the reply to our SUBSCRIBE
    [client] = local_exchange.clients("gemini")
    assert list(client.messages) == ['{"id":"1","method":"SUBSCRIBE","params":["filusd@bookTicker","filusd@trade"]}']
    assert client.session["api"] == "streams"
    ticks.wait_for(lambda t: len([tick for tick in t if tick["bid"]]) >= 3)  # first data, then updates
    markets.wait_for(lambda m: ("gemini:FIL-USD", "streaming", "") in m)
    book = [t for t in ticks.items if t["bid"]]
    assert all(t["exchange"] == "gemini" and t["symbol"] == "FIL-USD" for t in book)
    assert all(type(t["time"]) is int and t["time"] > 1624493600000 for t in book)  # bookTicker carries E
    assert all(Decimal(t["bid"]) < Decimal(t["ask"]) for t in book)

    listener.add("ANKR-USD")  # on the open connection
    ticks.wait_for(lambda t: any(tick["symbol"] == "ANKR-USD" and tick["bid"] for tick in t))
    assert local_exchange.clients("gemini") == [client]
    assert client.messages[-1] == '{"id":"2","method":"SUBSCRIBE","params":["ankrusd@bookTicker","ankrusd@trade"]}'
    ticks.wait_for(lambda t: any(tick["symbol"] == "ANKR-USD" and tick["last"] for tick in t))  # its derived trade
    trade = next(tick for tick in ticks.items if tick["symbol"] == "ANKR-USD" and tick["last"])
    assert trade["last_side"] in ("buy", "sell") and trade["time"] > 1624493600000

    listener.remove("ANKR-USD")
    ticks.wait_for(lambda t: client.session["keys"] == {"filusd@bookTicker", "filusd@trade"})
    status = listener.status()
    assert status["reconnects"] == 0 and status["bad_frames"] == 0 and states.items[:2] == ["connecting", "live"]
    assert status["quote_on_every_change"] is True


def test_a_reconnect_starts_afresh_and_subscribes_again(local_exchange, start_listener):
    listener, ticks, markets, states = watch(local_exchange, ["FIL-USD"], backoff_base_s=0.05)
    gaps = Collector()
    listener.on_gap = gaps
    start_listener(listener)
    ticks.wait_for(lambda t: any(tick["bid"] for tick in t))
    [first] = local_exchange.clients("gemini")
    assert local_exchange.drop("gemini") == 1
    states.wait_for(lambda s: "reconnecting" in s and s[-1] == "live")
    local_exchange.wait_subscribed("gemini", ["FILUSD"])
    [second] = local_exchange.clients("gemini")
    assert second is not first and list(second.messages) == [
        '{"id":"2","method":"SUBSCRIBE","params":["filusd@bookTicker","filusd@trade"]}']
    mark = len(ticks.items)
    ticks.wait_for(lambda t: any(tick["bid"] for tick in t[mark:]))
    # fresh state: nothing from before the drop is merged into what follows it (TickBook.reset): a quote shows a
    # last trade only once this connection has sent one
    after = ticks.items[mark:]
    first_quote = next(index for index, tick in enumerate(after) if tick["bid"])
    traded = any(tick["last"] and not tick["bid"] for tick in after[:first_quote])
    assert traded or after[first_quote]["last"] is None
    [gap] = gaps.wait_for(lambda g: g)
    assert gap["symbol"] == "FIL-USD" and gap["from"] < gap["to"]
    assert listener.status()["reconnects"] == 1 and listener.status()["bad_frames"] == 0


def test_an_unlisted_pair_is_explained_or_refused_in_geminis_words(local_exchange, start_listener):
    """How the new API answers a pair it does not list is not documented: the local exchange sends nothing, as
    Binance does, and the panel says why after a while; an error reply refuses the pair in Gemini's words."""
    listener, ticks, markets, states = watch(local_exchange, ["FIL-USD"], no_data_hint_s=0.3)
    start_listener(listener)
    ticks.wait_for(lambda t: t)
    listener.add("BTC-FOO")
    markets.wait_for(lambda m: ("gemini:BTC-FOO", "waiting", Gemini.no_data_hint) in m)
    assert "BTC-FOO" in listener.symbols()  # not refused: nothing said so

    local_exchange.inject("gemini:refuse-subscribe").result(5)  # armed before the subscribe goes out
    listener.add("ETH-FOO")
    markets.wait_for(lambda m: ("gemini:ETH-FOO", "error", "Gemini error -1003: Rate limit exceeded") in m)
    assert "ETH-FOO" not in listener.symbols()
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)  # the good market goes on
    assert listener.status()["reconnects"] == 0
