"""Kraken (websocket API v1) parser on real recorded frames (upstream/KRAKEN.ws.49.0: ticker, KRAKEN.ws.48.0: trade)
and documented ones; its venue; and the real listener against the local exchange over loopback."""
import orjson
import pytest

from conftest import UPSTREAM, Collector, documented, recorded
from dashboard.rest import RestClient, backfill
from exchanges.kraken import Kraken, KrakenVenue, seconds_to_ms
from exchanges.recording import read_frames
from exchanges.simulator import LocalExchange
from exchanges.tick import EMPTY, BadFrame, ExchangeError, Heartbeat, Rejected, Subscribed, Update

TICKERS, TRADES = "KRAKEN.ws.49.0", "KRAKEN.ws.48.0"


def parse(frame, listener=None):
    return (listener or Kraken()).parse(frame, 0)


# --- market data -----------------------------------------------------------------------------------------------
def test_ticker_gives_best_bid_ask_with_their_lot_volumes_and_the_last_trade_without_a_time():
    assert parse(recorded(TICKERS, '"ticker","XMR/USD"')) == [Update(
        symbol="XMR-USD", time=None, bid="354.32000000", bid_size="6.87748868", ask="355.24000000",
        ask_size="27.19106411", last="355.23000000", last_size="1.20454360", last_side=None)]


def test_ticker_of_an_xbt_pair_is_btc():
    assert parse(recorded(TICKERS, '"ticker","XBT/CHF"')) == [Update(
        "BTC-CHF", None, "56119.10000", "0.03333108", "56218.30000", "0.13690578", "56218.30000", "0.01309422")]
    [update] = parse(documented("kraken_ticker_xbt"))
    assert (update.symbol, update.bid, update.bid_size, update.ask, update.ask_size, update.last, update.last_size) == (
        "BTC-USD", "5525.10000", "1.000", "5525.40000", "1.000", "5525.10000", "0.00398963")


def test_trade_frame_gives_one_update_per_trade_in_order_with_exact_ms_and_the_taker_side():
    assert parse(recorded(TRADES, '"trade","XMR/USD"')) == [Update(
        "XMR-USD", time=1618678142557, last="354.11000000", last_size="0.89594024", last_side="sell")]
    assert parse(recorded(TRADES, '"trade","XMR/USD"', index=2)) == [
        Update("XMR-USD", time=1618678150826, last="354.04000000", last_size="0.28245396", last_side="sell"),
        Update("XMR-USD", time=1618678150827, last="353.81000000", last_size="1.71754604", last_side="sell")]
    assert parse(recorded(TRADES, '"trade","SC/EUR"', index=1)) == [
        Update("SC-EUR", time=1618678155718, last="0.042980", last_size="8500.00000000", last_side="buy"),
        Update("SC-EUR", time=1618678155720, last="0.043000", last_size="2383.16665529", last_side="buy")]
    assert [(u.symbol, u.time, u.last_side) for u in parse(documented("kraken_trade_xbt"))] == [
        ("BTC-USD", 1534614057321, "sell"), ("BTC-USD", 1534614057324, "buy")]


@pytest.mark.parametrize("text, ms", [("1618678142.557535", 1618678142557), ("1534614057.324998", 1534614057324),
                                      ("1.9999999", 1999), ("1688669602.698379", 1688669602698), ("7", 7000),
                                      ("0.5", 500), (1688669597, 1688669597000)])
def test_seconds_become_integer_ms_exactly_truncated(text, ms):
    assert seconds_to_ms(text) == ms


@pytest.mark.parametrize("bad", ["", " 1", "1e9", "1.", ".5", "-1", "1,5", "\u0661\u0662", 1.5, -1, True, None])
def test_bad_times_raise(bad):
    with pytest.raises(BadFrame):
        seconds_to_ms(bad)


def test_spread_gives_the_best_bid_ask_with_their_volumes_at_the_exchanges_time_of_the_quote():
    assert parse(documented("kraken_spread_xbt")) == [Update(
        symbol="BTC-USD", time=1542057299545, bid="5698.40000", bid_size="1.01234567", ask="5700.00000",
        ask_size="0.98765432", last=None, last_size=None, last_side=None)]


def test_a_spread_side_of_zeros_is_empty():
    frame = documented("kraken_spread_xbt").replace('"5698.40000","5700.00000"', '"0.00000","5700.00000"')
    assert parse(frame) == [Update("BTC-USD", 1542057299545, EMPTY, EMPTY, "5700.00000", "0.98765432")]
    frame = frame.replace('"0.98765432"', '"0.00000000"').replace('"5700.00000"', '"0.00000"')
    assert parse(frame) == [Update("BTC-USD", 1542057299545, EMPTY, EMPTY, EMPTY, EMPTY)]


def test_once_the_spread_has_spoken_a_ticker_gives_only_a_last_trade_not_yet_known():
    listener = Kraken()
    ticker, spread = documented("kraken_ticker_xbt"), documented("kraken_spread_xbt")
    assert parse(ticker, listener)[0].bid == "5525.10000"  # before any spread: the ticker's book top
    parse(spread, listener)
    assert parse(ticker, listener) == []  # its book top is as old as a trade; its `c` is known already
    listener.on_connected()  # a new connection: nothing known
    parse(spread, listener)
    no_trade = ticker.replace('"c":["5525.10000","0.00398963"]', '"c":["0.00000","0.00000000"]')
    assert parse(no_trade, listener) == []
    assert parse(ticker, listener) == [Update("BTC-USD", last="5525.10000", last_size="0.00398963")]
    assert parse(ticker, listener) == []
    listener.on_connected()
    parse(spread, listener)
    parse(documented("kraken_trade_xbt"), listener)  # a trade: the ticker's `c` repeats what `trade` said
    assert parse(ticker, listener) == []
    listener.on_connected()  # before the spread speaks: the ticker's book top again
    assert parse(ticker, listener)[0].ask == "5525.40000"


@pytest.mark.parametrize("frame", [
    '[0,["5698.40000","5700.00000","1542057299.545897","1.01234567"],"spread","XBT/USD"]',  # no ask volume
    '[0,["5698.40000","5700.00000",1542057299.545897,"1.01234567","0.98765432"],"spread","XBT/USD"]',  # number
    '[0,["5698.40000","5700.00000","1542057299,5","1.01234567","0.98765432"],"spread","XBT/USD"]',  # bad time
    '[0,[5698.4,"5700.00000","1542057299.545897","1.01234567","0.98765432"],"spread","XBT/USD"]',  # price number
    '[0,{"b":"5698.40000"},"spread","XBT/USD"]',                                                   # not a list
    '[0,["5698.40000","5700.00000","1542057299.545897","1.01234567","0.98765432"],"spread","XBTUSD"]',  # pair
])
def test_bad_spread_frames_raise(frame):
    with pytest.raises((BadFrame, KeyError, ValueError, TypeError)):
        parse(frame)


@pytest.mark.parametrize("frame", [
    ('[1234,{"a":[["5541.30000","2.50700000","1534614248.456738"]]},{"b":[["5541.20000","1.52900000",'
     '"1534614248.765567"]]},"book-10","XBT/USD"]'),
])
def test_frames_of_other_channels_yield_no_tick(frame):
    assert parse(frame) == []


# --- protocol events -------------------------------------------------------------------------------------------
def test_heartbeat_and_pong_are_liveness_not_data():
    assert parse(recorded(TRADES, '"event":"heartbeat"')) == [Heartbeat()]
    assert parse(documented("kraken_pong")) == [Heartbeat()]


def test_system_status_online_is_quiet_and_anything_else_is_reported():
    assert parse(recorded(TICKERS, '"systemStatus"')) == []
    assert parse('{"connectionID":1,"event":"systemStatus","status":"maintenance","version":"1.9.2"}') == [
        ExchangeError("Kraken system status: maintenance")]


def test_subscription_status_acknowledges_each_pair_by_its_channel_name_and_pair():
    assert parse(recorded(TICKERS, '"subscriptionStatus"')) == [Subscribed(("WAVES-EUR",))]
    assert parse(recorded(TRADES, '"pair":"XBT/CHF","status":"subscribed"')) == [Subscribed(("BTC-CHF",))]
    assert parse(documented("kraken_unsubscribed")) == []


def test_an_unlisted_pair_is_rejected_once_with_krakens_reason():
    listener = Kraken()
    listener.subscribe_messages(["BTC-FOO"])
    venue = KrakenVenue({"XBT/USD"})
    session = {}
    venue.on_open(session, "/")
    request = '{"event":"subscribe","pair":["XBT/FOO"],"subscription":{"name":"%s"}}'
    ticker_error = venue.on_message(session, request % "ticker")
    trade_error = venue.on_message(session, request % "trade")
    assert parse(ticker_error[0], listener) == [Rejected("BTC-FOO", "Currency pair not supported XBT/FOO")]
    assert parse(trade_error[0], listener) == []  # the same refusal on the other channel: reported once
    listener.subscribe_messages(["BTC-FOO"])  # asked again: a new refusal is news
    assert parse(ticker_error[0], listener) == [Rejected("BTC-FOO", "Currency pair not supported XBT/FOO")]


def test_other_subscription_errors_and_error_events_are_reported():
    assert parse(documented("kraken_subscription_error")) == [Rejected("BTC-USD", "Subscription depth not supported")]
    # a pair no BASE-QUOTE can name: the error is still shown, as the exchange's
    assert parse(documented("kraken_pair_not_supported")) == [
        ExchangeError("Currency pair not supported XBT/EURopa")]
    assert parse('{"errorMessage":"Exceeded msg rate","event":"error"}') == [ExchangeError("Exceeded msg rate")]


def test_a_failed_unsubscribe_is_not_a_refused_market():
    listener = Kraken()
    [ticker, _, _] = listener.unsubscribe_messages(["XMR-USD"])
    reqid = orjson.loads(ticker)["reqid"]
    frame = orjson.dumps({"errorMessage": "Subscription Not Found", "event": "subscriptionStatus", "pair": "XMR/USD",
                          "reqid": reqid, "status": "error", "subscription": {"name": "ticker"}})
    assert parse(frame, listener) == [ExchangeError("Subscription Not Found (XMR/USD)")]


@pytest.mark.parametrize("frame", [
    '[996,{"a":["354.74",6,"6.85"],"b":["354.11",28],"c":["354.11","0.89"]},"ticker","XMR/USD"]',  # bid: no lot
    '[996,{"a":"354.74000000","b":["1",1,"2"],"c":["1","1"]},"ticker","XMR/USD"]',   # a string, not a level
    '[996,{"a":["354.74",6,"6.8"],"b":["354.11",28,"28.6"],"c":[354.11,"0.89"]},"ticker","XMR/USD"]',  # a number
    '[996,{"b":["354.11",28,"28.6"],"c":["354.11","0.89"]},"ticker","XMR/USD"]',  # no ask
    '[996,[["354.11","0.89","1618678142.557535","s","l",""]],"ticker","XMR/USD"]',  # trade data on ticker
    '[993,[["354.11","0.89","1618678142.557535","x","l",""]],"trade","XMR/USD"]',  # bad side
    '[993,[["354.11","0.89",1618678142.557535,"s","l",""]],"trade","XMR/USD"]',  # time as a number
    '[993,[["354.11","0.89"]],"trade","XMR/USD"]',                             # trade too short
    '[993,[],"trade","XMR/USD"]',                                              # no trades
    '[993,[["354.11","0.89","1618678142.557535","s","l",""]],"trade","xmr/usd"]',  # no pair of ours
    '[993,[["354.11","0.89","1618678142.557535","s","l",""]],"trade","XMRUSD"]',   # not a websocket pair
    '[993,"trade","XMR/USD"]',                                                 # too short
    '[993,[["354.11","0.89","1618678142.557535","s","l",""]],7,"XMR/USD"]',    # no channelName
    '{"status":"online"}',                                                     # no event
    '{"event":"subscriptionStatus","pair":"XMR/USD","status":"maybe"}',
    '{"event":"systemStatus"}',
    '"heartbeat"',
    'not json',
])
def test_bad_frames_raise(frame):
    with pytest.raises((BadFrame, KeyError, ValueError, TypeError)):
        parse(frame)


# --- symbols, requests, listing, backfill ---------------------------------------------------------------------
def test_symbols_map_both_ways():
    listener = Kraken()
    assert [listener.to_native(s) for s in ("BTC-USD", "DOGE-USD", "ETH-BTC", "XMR-USD")] == [
        "XBT/USD", "XDG/USD", "ETH/XBT", "XMR/USD"]
    assert [Kraken().from_native(n) for n in ("XBT/USD", "XDG/USD", "ETH/XBT", "SC/EUR")] == [
        "BTC-USD", "DOGE-USD", "ETH-BTC", "SC-EUR"]
    for bad in ("XBTUSD", "XBT/USD/EUR", "xbt/usd", "XBT/USD ", "ETH2.S/ETH", None):
        with pytest.raises(BadFrame):
            Kraken().from_native(bad)


def test_subscribe_and_unsubscribe_one_message_per_channel_with_the_pair_list():
    listener = Kraken()
    assert listener.subscribe_messages(["BTC-USD", "SC-EUR"]) == [
        '{"event":"subscribe","pair":["XBT/USD","SC/EUR"],"subscription":{"name":"ticker"},"reqid":1}',
        '{"event":"subscribe","pair":["XBT/USD","SC/EUR"],"subscription":{"name":"trade"},"reqid":2}',
        '{"event":"subscribe","pair":["XBT/USD","SC/EUR"],"subscription":{"name":"spread"},"reqid":3}']
    assert listener.unsubscribe_messages(["SC-EUR"]) == [
        '{"event":"unsubscribe","pair":["SC/EUR"],"subscription":{"name":"ticker"},"reqid":4}',
        '{"event":"unsubscribe","pair":["SC/EUR"],"subscription":{"name":"trade"},"reqid":5}',
        '{"event":"unsubscribe","pair":["SC/EUR"],"subscription":{"name":"spread"},"reqid":6}']


def test_listing_uses_wsname_and_is_the_symbol_map():
    listener = Kraken()
    assert listener.parse_listing(documented("kraken_rest_asset_pairs")) == ["BTC-USD", "ETH-BTC"]
    assert listener.to_native("ETH-BTC") == "ETH/XBT"
    assert listener.backfill_requests("BTC-USD") == [("/0/public/Trades", {"pair": "XBTUSD", "count": "100"}),
                                                     ("/0/public/Ticker", {"pair": "XBTUSD"})]
    body = orjson.dumps({"error": [], "result": {
        "XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD", "status": "online"},
        "XDGUSD": {"altname": "XDGUSD", "wsname": "XDG/USD", "status": "limit_only"},
        "HALTEUR": {"altname": "HALTEUR", "wsname": "HALT/EUR", "status": "cancel_only"},
        "ETH2.SETH": {"altname": "ETH2.SETH", "wsname": "ETH2.S/ETH", "status": "online"},
        "XBTUSD.d": {"altname": "XBTUSD.d", "status": "online"}}}).decode()
    assert Kraken().parse_listing(body) == ["BTC-USD", "DOGE-USD"]
    # execution_venue (Kraken's changelog, 27 April 2026): the v1 public feed carries the international venue
    venues = documented("kraken_rest_asset_pairs_venues")
    assert Kraken().parse_listing(venues) == ["ETH-BTC"]
    assert KrakenVenue.listing(venues) == {"ETH/XBT"}
    assert KrakenVenue.listing(body) == {"XBT/USD", "XDG/USD", "ETH2.S/ETH"}  # the venue lists natives
    with pytest.raises(BadFrame):
        Kraken().parse_listing('{"error":["EGeneral:Internal error"]}')


def test_backfill_answers_mean_what_the_docs_say():
    listener = Kraken()
    [ticker] = listener.parse_backfill("BTC-USD", "/0/public/Ticker", documented("kraken_rest_ticker"))
    assert ticker == Update("BTC-USD", None, "30300.00000", "1.000", "30300.10000", "1.000", "30303.20000",
                            "0.00067643")
    trades = listener.parse_backfill("BTC-USD", "/0/public/Trades", documented("kraken_rest_trades"))
    assert trades == [  # the time, a JSON number, read from its text: no float
        Update("BTC-USD", 1688669597827, last="30243.40000", last_size="0.34507674", last_side="buy"),
        Update("BTC-USD", 1688669598280, last="30243.30000", last_size="0.00376960", last_side="sell"),
        Update("BTC-USD", 1688669602698, last="30243.30000", last_size="0.01235716", last_side="sell")]
    with pytest.raises(BadFrame):
        listener.parse_backfill("BTC-USD", "/0/public/Ticker", '{"error":["EQuery:Unknown asset pair"]}')


# --- the venue -------------------------------------------------------------------------------------------------
def test_venue_answers_like_kraken():
    venue = KrakenVenue({"XMR/USD", "SC/EUR"})
    session = {}
    [status] = venue.on_open(session, "/")
    assert parse(status) == [] and orjson.loads(status)["event"] == "systemStatus"
    assert venue.heartbeats(session, 0) == []  # none before a subscription
    ticker, trade, spread = Kraken().subscribe_messages(["XMR-USD", "SC-EUR"])
    acks = venue.on_message(session, ticker)
    assert [parse(ack) for ack in acks] == [[Subscribed(("XMR-USD",))], [Subscribed(("SC-EUR",))]]
    ack = orjson.loads(acks[0])
    assert (ack["channelName"], ack["status"], ack["reqid"]) == ("ticker", "subscribed", 1)
    assert session["keys"] == set()  # not yet on every channel
    venue.on_message(session, trade)
    assert session["keys"] == set() and not venue.wants(session, "spread:XMR/USD")
    assert [parse(ack) for ack in venue.on_message(session, spread)] == [[Subscribed(("XMR-USD",))],
                                                                         [Subscribed(("SC-EUR",))]]
    assert session["keys"] == {f"{name}:{pair}" for name in ("ticker", "trade", "spread")
                               for pair in ("XMR/USD", "SC/EUR")}
    assert venue.wants(session, "trade:XMR/USD") and venue.wants(session, "spread:XMR/USD")
    assert parse(venue.heartbeats(session, 0)[0]) == [Heartbeat()]
    assert venue.on_message(session, '{"event":"ping","reqid":7}') == ['{"event":"pong","reqid":7}']
    [error] = venue.on_message(session, "{oops")
    assert parse(error) == [ExchangeError("Malformed request")]
    [gone] = venue.on_message(session, Kraken().unsubscribe_messages(["SC-EUR"])[1])
    assert orjson.loads(gone)["status"] == "unsubscribed" and session["keys"] == {
        "ticker:XMR/USD", "trade:XMR/USD", "spread:XMR/USD"}
    assert venue.route(recorded(TRADES, '"trade","XMR/USD"')) == "trade:XMR/USD"
    assert venue.route(recorded(TRADES, '"subscriptionStatus"')) is None
    assert parse(venue.error_frame("maintenance soon")) == [ExchangeError("maintenance soon")]


def test_venue_sends_the_current_ticker_on_subscribing_and_serves_rest_from_what_it_played():
    venue = KrakenVenue({"XMR/USD"})
    for frame in (recorded(TICKERS, '"ticker","XMR/USD"', index=1), recorded(TRADES, '"trade","XMR/USD"', index=2)):
        venue.observe(frame)
    session = {}
    venue.on_open(session, "/")
    ack, snapshot = venue.on_message(session, Kraken().subscribe_messages(["XMR-USD"])[0])
    assert orjson.loads(snapshot)[0] == orjson.loads(ack)["channelID"]  # under the fresh channelID
    assert parse(snapshot) == parse(recorded(TICKERS, '"ticker","XMR/USD"', index=1))
    listener = Kraken()
    [ticker] = listener.parse_backfill("XMR-USD", "/0/public/Ticker", venue.rest("/0/public/Ticker",
                                                                                  {"pair": "XMRUSD"})[1])
    assert (ticker.bid, ticker.bid_size, ticker.ask, ticker.last) == ("354.11000000", "28.68415596", "354.74000000",
                                                                      "354.11000000")
    status, body = venue.rest("/0/public/Trades", {"pair": "XMRUSD", "count": "100"})
    assert status == 200 and '1618678150.826417,"s"' in body  # the recorded digits, as a JSON number
    assert listener.parse_backfill("XMR-USD", "/0/public/Trades", body) == parse(
        recorded(TRADES, '"trade","XMR/USD"', index=2))
    assert orjson.loads(venue.rest("/0/public/Ticker", {"pair": "XBTUSD"})[1])["error"] == [
        "EQuery:Unknown asset pair"]
    assert venue.rest("/0/public/AssetPairs", {}) is None  # no recorded listing


# --- the real listener over loopback ---------------------------------------------------------------------------
@pytest.fixture
def kraken_exchange():
    exchange = LocalExchange([UPSTREAM / TICKERS, UPSTREAM / TRADES], speed=20).start()
    yield exchange
    exchange.stop()


def make(exchange, symbols):
    ticks, markets = Collector(), Collector()
    listener = Kraken(exchange.urls["kraken"], symbols, on_tick=ticks, on_market=markets)
    return listener, ticks, markets


def test_handshake_ticks_then_a_market_added_and_removed_on_the_same_connection(kraken_exchange, start_listener):
    listener, ticks, markets = make(kraken_exchange, ["XMR-USD"])
    start_listener(listener)
    markets.wait_for(lambda m: ("kraken:XMR-USD", "subscribed", "") in m)
    # the ticker snapshot (no time), then spreads derived from the recorded tickers and trades (the exchange's time)
    ticks.wait_for(lambda t: any(tick["last_side"] for tick in t) and any(tick["time"] is None for tick in t))
    [client] = kraken_exchange.clients("kraken")
    assert list(client.messages)[:3] == [
        '{"event":"subscribe","pair":["XMR/USD"],"subscription":{"name":"ticker"},"reqid":1}',
        '{"event":"subscribe","pair":["XMR/USD"],"subscription":{"name":"trade"},"reqid":2}',
        '{"event":"subscribe","pair":["XMR/USD"],"subscription":{"name":"spread"},"reqid":3}']
    trade = next(t for t in ticks.items if t["last_side"])
    assert trade["last_side"] in ("buy", "sell") and trade["last"] and trade["last_size"] and trade["time"]
    assert listener.status()["quote_on_every_change"]
    assert all(t["symbol"] == "XMR-USD" and t["exchange"] == "kraken" for t in ticks.items)

    listener.add("SC-EUR")
    ticks.wait_for(lambda t: any(tick["symbol"] == "SC-EUR" for tick in t))
    assert kraken_exchange.clients("kraken") == [client]  # no reconnect
    listener.remove("SC-EUR")
    ticks.wait_for(lambda t: client.session["channels"] == {"ticker:XMR/USD", "trade:XMR/USD", "spread:XMR/USD"})
    assert client.messages[-1] == (
        '{"event":"unsubscribe","pair":["SC/EUR"],"subscription":{"name":"spread"},"reqid":9}')
    assert listener.status()["reconnects"] == 0 and listener.status()["bad_frames"] == 0


def test_an_unlisted_pair_is_rejected_with_krakens_reason(kraken_exchange, start_listener):
    listener, ticks, markets = make(kraken_exchange, ["SC-EUR"])
    start_listener(listener)
    listener.add("BTC-FOO")
    markets.wait_for(lambda m: ("kraken:BTC-FOO", "error", "Currency pair not supported XBT/FOO") in m)
    assert "BTC-FOO" not in listener.symbols()
    assert [m for m in markets.items if m[0] == "kraken:BTC-FOO" and m[1] == "error"] == [
        ("kraken:BTC-FOO", "error", "Currency pair not supported XBT/FOO")]  # once, not once per channel
    ticks.wait_for(lambda t: any(tick["symbol"] == "SC-EUR" for tick in t))  # the good market goes on


def test_rest_backfill_from_the_local_exchange(kraken_exchange, start_listener):
    listener, ticks, _ = make(kraken_exchange, ["XMR-USD"])
    start_listener(listener)
    ticks.wait_for(lambda t: sum(tick["time"] is not None for tick in t) >= 2)  # trades were played
    filled = backfill(RestClient(kraken_exchange.rest_urls), Kraken(), "XMR-USD")
    assert filled and all(t["source"] == "rest" and t["symbol"] == "XMR-USD" for t in filled)
    assert [t["time"] for t in filled[:-1]] == sorted(t["time"] for t in filled[:-1])  # trades, oldest first
    assert filled[-1]["bid"] and filled[-1]["ask"] and filled[-1]["time"] is None  # then the ticker


def test_a_ticker_side_of_zeros_is_empty_and_zero_last_is_no_trade():
    frame = recorded(TICKERS, '"ticker","WAVES/EUR"').replace('"b":["13.232900",185,"185.18432037"]',
                                                                '"b":["0.000000",0,"0.00000000"]')
    [update] = parse(frame)
    assert (update.bid, update.bid_size, update.ask, update.last) == (EMPTY, EMPTY, "13.253900", "13.253900")
    [update] = parse(frame.replace('"c":["13.253900","3.71672000"]', '"c":["0.000000","0.00000000"]'))
    assert (update.last, update.last_size) == (None, None)


# --- spread frames derived from the recorded tickers (the recordings hold none) -------------------------------
XMR_SPREADS = [  # (time, bid, bid_size, ask, ask_size) of the four recorded XMR/USD tickers, at their receipt times
    (1618678132949, "354.32000000", "6.87748868", "355.24000000", "27.19106411"),
    (1618678142593, "354.11000000", "28.68415596", "354.74000000", "6.85516463"),
    (1618678145756, "354.10000000", "1.40000000", "354.55000000", "10.38309685"),
    (1618678150857, "353.81000000", "5.14412712", "354.38000000", "4.95600000")]


def test_venue_derives_a_documented_spread_frame_from_each_recorded_ticker_at_its_receipt_time():
    tickers = [f for f in read_frames(UPSTREAM / TICKERS) if '"ticker","XMR/USD"' in f.frame]
    derived = [KrakenVenue.derived(f.frame, f.received) for f in tickers]
    assert derived[0] == [("spread:XMR/USD", '[0,["354.32000000","355.24000000","1618678132.949688","6.87748868",'
                                             '"27.19106411"],"spread","XMR/USD"]')]
    assert derived[1][0][1].startswith('[0,["354.11000000","354.74000000","1618678142.5930429",')  # as recorded
    quotes = [update for [(_, frame)] in derived for update in parse(frame)]
    assert [(u.time, u.bid, u.bid_size, u.ask, u.ask_size) for u in quotes] == XMR_SPREADS
    assert KrakenVenue().route(derived[0][0][1]) == "spread:XMR/USD"
    for frame in (recorded(TRADES, '"trade","XMR/USD"'), recorded(TICKERS, '"subscriptionStatus"'), "not json"):
        assert KrakenVenue.derived(frame, 1618678132.949688) == []


@pytest.fixture
def kraken_spread_exchange(tmp_path):
    """The shipped recordings with a spread frame derived from each ticker, played at the ticker's receipt time."""
    path = tmp_path / "kraken-with-spread.jsonl"
    frames = sorted((f for name in (TICKERS, TRADES) for f in read_frames(UPSTREAM / name)),
                    key=lambda f: f.received)
    with path.open("w") as out:
        for f in frames:
            for frame in (f.frame, *(spread for _, spread in KrakenVenue.derived(f.frame, f.received))):
                out.write(orjson.dumps({"exchange": "kraken", "url": f.url, "received": f.received,
                                        "frame": frame}).decode() + "\n")
    exchange = LocalExchange([path], speed=20).start()
    yield exchange
    exchange.stop()


@pytest.mark.parametrize("exchange", ["kraken_exchange", "kraken_spread_exchange"])
def test_listener_takes_its_book_top_from_spread_frames_of_the_local_exchange(exchange, request, start_listener):
    """The shipped recordings (the local exchange derives the spreads) and a recording that holds spread frames
    (played as they are, never doubled by derived ones) give the same quotes at the exchange's times."""
    kraken_spread_exchange = request.getfixturevalue(exchange)
    listener, ticks, markets = make(kraken_spread_exchange, ["XMR-USD"])
    start_listener(listener)
    times = {quote[0] for quote in XMR_SPREADS}
    ticks.wait_for(lambda t: times <= {tick["time"] for tick in t})
    spread_ticks = [tick for tick in ticks.items if tick["time"] in times]
    assert [(t["time"], t["bid"], t["bid_size"], t["ask"], t["ask_size"]) for t in spread_ticks][:4] == XMR_SPREADS
    [replay] = [r for r in kraken_spread_exchange.replays.values()]
    assert sum(key == "spread:XMR/USD" for _, key, _ in replay.timeline) == len(XMR_SPREADS)  # one per ticker
    first = ticks.items.index(spread_ticks[0])
    assert ticks.items[0]["time"] is None and ticks.items[0]["last"] == "355.23000000"  # the ticker first: its `c`
    assert all(tick["time"] is not None for tick in ticks.items[first:])  # then no ticker tick: spread and trades
    [client] = kraken_spread_exchange.clients("kraken")
    assert "spread:XMR/USD" in client.session["keys"]
    assert listener.status()["quote_on_every_change"] is True
    assert listener.status()["bad_frames"] == 0 and listener.status()["reconnects"] == 0


def test_venue_sends_the_latest_spread_played_on_subscribing_to_spread():
    """Kraken's spread channel starts with a snapshot: the local exchange sends the last spread it played."""
    venue = KrakenVenue({"XMR/USD"})
    [derived] = [spread for f in read_frames(UPSTREAM / TICKERS) if '"ticker","XMR/USD"' in f.frame
                 for _, spread in KrakenVenue.derived(f.frame, f.received)][-1:]
    session = {}
    venue.on_open(session, "/")
    subscribe = '{"event":"subscribe","pair":["XMR/USD"],"subscription":{"name":"spread"},"reqid":3}'
    assert len(venue.on_message(session, subscribe)) == 1  # nothing played yet: the status only
    venue.observe(derived)
    late = {}
    venue.on_open(late, "/")
    status, snapshot = venue.on_message(late, subscribe)
    assert orjson.loads(snapshot)[1:] == orjson.loads(derived)[1:]  # its channelID is the subscription's
    [update] = parse(snapshot)
    assert (update.time, update.bid, update.ask) == XMR_SPREADS[-1][:2] + (XMR_SPREADS[-1][3],)


def test_a_reconnect_gets_a_fresh_spread_snapshot_from_the_local_exchange(kraken_exchange, start_listener):
    listener, ticks, markets = make(kraken_exchange, ["XMR-USD"])
    start_listener(listener)
    times = {quote[0] for quote in XMR_SPREADS}
    ticks.wait_for(lambda t: any(tick["time"] in times for tick in t))
    [old] = kraken_exchange.clients("kraken")
    kraken_exchange.inject("kraken:drop")
    # the new connection, not just the old one gone: between the two the list is empty
    ticks.wait_for(lambda t: listener.status()["reconnects"] == 1
                   and [client is old for client in kraken_exchange.clients("kraken")] == [False])
    [new] = kraken_exchange.clients("kraken")
    count = len(ticks.items)
    # the spread snapshot comes with the subscription: a quote at a played spread's time, before any new trade
    ticks.wait_for(lambda t: any(tick["time"] in times and tick["bid"] for tick in t[count:]))
    assert "spread:XMR/USD" in new.session["keys"]
