"""OKX parser on real recorded frames (upstream/OKX.ws.1.0) and documented ones, its venue, and the real listener
against the local exchange over loopback."""
import json

import pytest

from conftest import UPSTREAM, Collector, documented, recorded
from exchanges.okx import OKX, OKXVenue, checksum
from exchanges.recording import Recorder, read_frames
from exchanges.simulator import LocalExchange
from exchanges.tick import EMPTY, BadFrame, ExchangeError, Heartbeat, Reconnect, Rejected, Subscribed, TickBook, Update
from exchanges.venue import BROADCAST

FILE = "OKX.ws.1.0"
NOT_LISTED = ("OKX error 60018: Wrong URL or channel:tickers,instId:BTC-FOO doesn't exist. Please use the correct "
              "URL, channel and parameters referring to API document.")


def parse(frame, listener=None):
    return (listener or OKX()).parse(frame, 0)


def push(channel, inst_id):
    return f'"channel":"{channel}","instId":"{inst_id}"}},"data"'


# --- market data ---------------------------------------------------------------------------------------------------
def test_ticker_gives_the_top_of_book_with_its_exchange_time():
    # Before the trades channel has pushed, the ticker's own last is the last trade OKX told us of.
    assert parse(recorded(FILE, push("tickers", "BTC-USDT"))) == [Update(
        symbol="BTC-USDT", time=1652459224956, bid="30228.6", bid_size="0.23393", ask="30228.7",
        ask_size="1.55896972", last="30236", last_size="0.0002")]
    assert parse(documented("okx_ticker")) == [Update("BTC-USDT", 1597026383085, "8888.88", "5", "9999.99", "11",
                                                      "9999.99", "0.1")]


def test_an_empty_side_is_empty_and_the_rest_of_the_push_is_kept():
    frame = recorded(FILE, push("tickers", "BTC-USDT")).replace('"bidPx":"30228.6","bidSz":"0.23393"',
                                                                 '"bidPx":"","bidSz":""')
    assert '"bidPx":""' in frame
    [update] = parse(frame)
    assert (update.bid, update.ask, update.ask_size, update.last) == (EMPTY, "30228.7", "1.55896972", "30236")
    book = TickBook("okx")
    book.apply(parse(recorded(FILE, push("tickers", "BTC-USDT")))[0], 1)
    tick = book.apply(update, 2)
    assert (tick["bid"], tick["bid_size"], tick["ask"], tick["empty"]) == (None, None, "30228.7", "bid")


def test_trades_give_the_last_trade_with_the_takers_side():
    assert parse(recorded(FILE, push("trades", "BTC-USDT"))) == [Update(
        symbol="BTC-USDT", time=1652459224818, last="30236", last_size="0.0002", last_side="buy")]
    assert parse(recorded(FILE, '"side":"sell","ts":"1652459226753"')) == [Update(
        symbol="BTC-USDT", time=1652459226753, last="30250.1", last_size="0.00066996", last_side="sell")]
    # today's push aggregates the fills of one taker order at one price (count) and carries a seqId
    assert parse(documented("okx_trades")) == [Update(
        symbol="BTC-USDT", time=1630048897897, last="42219.9", last_size="0.12060306", last_side="buy")]


def test_a_ticker_keeps_the_last_trade_and_its_side():
    """Once the trades channel has pushed, a ticker's last (which has no side) would wipe the trade's side at every
    quote change: from then on the last trade comes from trades only."""
    book, listener = TickBook("okx"), OKX()
    book.apply(parse(recorded(FILE, push("trades", "BTC-USDT")), listener)[0], 1)
    tick = book.apply(parse(recorded(FILE, push("tickers", "BTC-USDT"), index=1), listener)[0], 2)
    assert (tick["last"], tick["last_size"], tick["last_side"]) == ("30236", "0.0002", "buy")
    assert (tick["bid"], tick["ask"], tick["time"]) == ("30228.6", "30228.7", 1652459226124)


@pytest.mark.parametrize("needle", [push("tickers", "UNI-USD-SWAP"), push("trades", "UNI-USD-SWAP"),
                                    push("tickers", "BTC-USD-220527"), push("trades", "BTC-USD-220527"),
                                    '"channel":"books","instId":"BTC-USDT"},"action":"snapshot"',
                                    '"channel":"books","instId":"BTC-USDT"},"action":"update"'])
def test_swaps_futures_and_books_yield_no_tick(needle):
    assert parse(recorded(FILE, needle)) == []


# --- protocol events -----------------------------------------------------------------------------------------------
def test_subscribe_acks_confirm_the_market_once():
    assert parse(recorded(FILE, '"event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"}')) == [
        Subscribed(("BTC-USDT",))]
    assert parse(recorded(FILE, '"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"}')) == []
    assert parse(recorded(FILE, '"event":"subscribe","arg":{"channel":"tickers","instId":"UNI-USD-SWAP"}')) == []
    assert parse(documented("okx_subscribe_ack")) == [Subscribed(("BTC-USDT",))]  # today's, with id and connId
    assert parse(documented("okx_unsubscribe_ack")) == []


def test_pong_is_a_heartbeat():
    assert parse("pong") == [Heartbeat()] and parse(b"pong") == [Heartbeat()]


def test_an_error_naming_a_pair_asked_for_rejects_it_once():
    listener = OKX()
    listener.subscribe_messages(["LTC-USD"])
    reason = "OKX error 60018: channel:tickers,instId:LTC-USD doesn't exist"
    assert parse(documented("okx_error_doesnt_exist"), listener) == [Rejected("LTC-USD", reason)]
    trades_error = documented("okx_error_doesnt_exist").replace("tickers", "trades")
    assert parse(trades_error, listener) == []  # the same pair's other channel
    # never asked for: not about one of our markets
    assert parse(documented("okx_error_doesnt_exist")) == [ExchangeError(reason)]


def test_an_error_without_a_pair_rejects_the_request_it_answers_or_is_reported():
    listener = OKX()
    venue = OKXVenue({"BTC-USDT"})
    session = {}
    venue.on_open(session, "/ws/v5/public")
    [refusal] = venue.refusal(session, listener.subscribe_messages(["BTC-USDT"])[0])
    assert parse(refusal, listener) == [Rejected("BTC-USDT", "OKX error 60014: Requests too frequent")]
    [error] = parse(documented("okx_error_invalid_request"), listener)  # id 1512 is no request of ours
    assert type(error) is ExchangeError and error.reason.startswith("OKX error 60012: Invalid request: ")


def test_a_service_upgrade_notice_asks_for_a_reconnect():
    assert parse(documented("okx_notice")) == [
        Reconnect("The connection will soon be closed for a service upgrade. Please reconnect.")]


@pytest.mark.parametrize("frame, reason", [
    ('{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"bidPx":"1","bidSz":"1","askPx":"oops","askSz":"1",'
     '"ts":"1"}]}', "not a decimal"),
    ('{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"bidPx":"1","bidSz":"1","askPx":"2","ts":"1"}]}',
     "askSz"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"1","sz":"1","side":"buy","ts":1597026383085}]}',
     "bad time"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"1","sz":"1","side":"buy","ts":"1.5"}]}',
     "bad time"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"px":"1","sz":"1","side":"up","ts":"1"}]}', "bad side"),
    ('{"arg":{"channel":"trades","instId":"btc-usdt"},"data":[]}', "bad instId"),
    ('{"arg":{"channel":"trades"},"data":[]}', "bad instId"),
    ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":{"px":"1"}}', "'data' list"),
    ('{"hello":"world"}', "neither a push nor an event"),
    ('"pong"', "not a JSON object"),
    ('{"arg":{"channel":"tickers","instId":"BTC-USDT"}', "truncated"),
])
def test_bad_frames_raise_so_the_listener_counts_them(frame, reason):
    with pytest.raises((BadFrame, KeyError, ValueError)) as raised:
        parse(frame)
    assert reason in str(raised.value) or reason == "truncated"


# --- requests, symbols, listing, backfill --------------------------------------------------------------------------
def test_subscribe_and_unsubscribe_messages_carry_both_channels_and_a_request_id():
    listener = OKX()
    assert listener.subscribe_messages(["BTC-USDT", "ETH-USDT"]) == [
        '{"id":"1","op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},{"channel":"trades",'
        '"instId":"BTC-USDT"},{"channel":"tickers","instId":"ETH-USDT"},{"channel":"trades","instId":"ETH-USDT"}]}']
    assert listener.unsubscribe_messages(["ETH-USDT"]) == [
        '{"id":"2","op":"unsubscribe","args":[{"channel":"tickers","instId":"ETH-USDT"},{"channel":"trades",'
        '"instId":"ETH-USDT"}]}']
    many = listener.subscribe_messages([f"C{n}-USDT" for n in range(150)])  # a request stays far below 64 KB
    assert [len(json.loads(message)["args"]) for message in many] == [200, 100]


def test_spot_symbols_map_both_ways_and_nothing_else_does():
    listener = OKX()
    assert listener.to_native("BTC-USDT") == "BTC-USDT" and listener.from_native("ETH-BTC") == "ETH-BTC"
    for native in ("BTC-USDT-SWAP", "BTC-USD-220527", "btc-usdt", "BTCUSDT", None):
        with pytest.raises(BadFrame):
            listener.from_native(native)


def test_listing_keeps_live_spot_pairs_only():
    assert OKX().parse_listing(documented("okx_instruments")) == ["BTC-USDT"]
    body = json.loads(documented("okx_instruments"))
    body["data"] += [{"instType": "SPOT", "instId": "LTC-USDT", "state": "live"},
                     {"instType": "SPOT", "instId": "ETH-USDT", "state": "suspend"},
                     {"instType": "SPOT", "instId": "NEW-USDT", "state": "preopen"},
                     {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "state": "live"}]
    assert OKX().parse_listing(json.dumps(body)) == ["BTC-USDT", "LTC-USDT"]
    with pytest.raises(BadFrame, match="50011"):
        OKX().parse_listing('{"code":"50011","msg":"Too Many Requests","data":[]}')


def test_backfill_asks_for_trades_then_the_ticker_and_reads_them_as_documented():
    listener = OKX()
    assert listener.backfill_requests("BTC-USDT") == [
        ("/api/v5/market/trades", {"instId": "BTC-USDT", "limit": "100"}),
        ("/api/v5/market/ticker", {"instId": "BTC-USDT"})]
    trades = listener.parse_backfill("BTC-USDT", "/api/v5/market/trades", documented("okx_rest_trades"))
    assert trades == [  # oldest first; the side is the taker's
        Update("BTC-USDT", time=1654161641568, last="29964.1", last_size="0.00001", last_side="sell"),
        Update("BTC-USDT", time=1654161646974, last="29963.2", last_size="0.00001", last_side="sell")]
    [ticker] = listener.parse_backfill("BTC-USDT", "/api/v5/market/ticker", documented("okx_rest_ticker"))
    assert ticker == Update("BTC-USDT", time=1597026383085, bid="8888.88", bid_size="5", ask="9999.99", ask_size="11",
                            last="9999.99", last_size="0.1")
    with pytest.raises(BadFrame, match="51001"):
        listener.parse_backfill("BTC-FOO", "/api/v5/market/ticker", '{"code":"51001","msg":"x","data":[]}')


def test_keepalive_and_liveness_follow_the_docs():
    assert OKX.keepalive_message == "ping" and OKX.keepalive_every_s < 30  # OKX closes a connection idle for 30 s
    assert OKX.pong_is_liveness  # no heartbeat of its own
    assert OKX.url == "wss://ws.okx.com:8443/ws/v5/public" and OKX.max_messages_per_s < 3


# --- the venue -----------------------------------------------------------------------------------------------------
def played_venue():
    """A venue that has played the whole recording."""
    frames = [frame.frame for frame in read_frames(UPSTREAM / FILE)]
    venue = OKXVenue({"BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"})
    for frame in frames:
        venue.observe(frame)
    return venue, frames


def test_venue_answers_like_okx():
    venue = OKXVenue({"BTC-USDT"})
    session = {}
    venue.on_open(session, "/ws/v5/public")
    listener = OKX()
    acks = venue.on_message(session, listener.subscribe_messages(["BTC-USDT"])[0])
    assert acks == ['{"id":"1","event":"subscribe","arg":{"channel":"tickers","instId":"BTC-USDT"},"connId":"00000001"}',
                    '{"id":"1","event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"00000001"}']
    assert session["keys"] == {"tickers:BTC-USDT", "trades:BTC-USDT"}
    assert [item for ack in acks for item in listener.parse(ack, 0)] == [Subscribed(("BTC-USDT",))]
    refused = venue.on_message(session, listener.subscribe_messages(["BTC-FOO"])[0])
    assert [item for error in refused for item in listener.parse(error, 0)] == [Rejected("BTC-FOO", NOT_LISTED)]
    assert venue.on_message(session, "ping") == ["pong"]
    venue.on_message(session, listener.unsubscribe_messages(["BTC-USDT"])[0])
    assert session["keys"] == set()
    [invalid] = venue.on_message(session, "{oops")
    assert listener.parse(invalid, 0) == [ExchangeError('OKX error 60012: Invalid request: {oops')]
    assert venue.heartbeats(session, 0.0) == []  # OKX has no heartbeat of its own


def test_venue_routes_pushes_by_channel_and_instrument():
    venue = OKXVenue()
    assert venue.route(recorded(FILE, push("tickers", "BTC-USDT"))) == "tickers:BTC-USDT"
    assert venue.route(recorded(FILE, '"channel":"books","instId":"UNI-USD-SWAP"},"action"')) == "books:UNI-USD-SWAP"
    assert venue.route(recorded(FILE, '"event":"subscribe"')) is None  # it makes its own acknowledgements
    assert venue.route("pong") is None
    assert venue.route(documented("okx_notice")) == BROADCAST
    assert venue.symbol_of("tickers:BTC-USDT") == "BTC-USDT"


def test_venue_book_reproduces_every_recorded_checksum():
    """The book the venue builds from what it played is OKX's: the checksum of its best 25 levels after each
    recorded books frame is the one OKX sent with it."""
    venue, frames = OKXVenue(), [frame.frame for frame in read_frames(UPSTREAM / FILE)]
    checked = 0
    for frame in frames:
        venue.observe(frame)
        if '"channel":"books"' in frame and '"data"' in frame:
            message = json.loads(frame)
            assert checksum(*venue.book_top(message["arg"]["instId"], 25)) == message["data"][0]["checksum"]
            checked += 1
    assert checked == 290


def test_venue_sends_a_new_subscriber_the_current_ticker_trade_and_book():
    venue, frames = played_venue()
    session = {}
    venue.on_open(session, "/ws/v5/public")
    request = ('{"op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},{"channel":"trades","instId":'
               '"BTC-USDT"},{"channel":"books","instId":"BTC-USDT"}]}')
    replies = venue.on_message(session, request)
    assert [json.loads(reply)["event"] for reply in replies[:3]] == ["subscribe"] * 3
    last = {needle: [f for f in frames if needle in f][-1] for needle in (push("tickers", "BTC-USDT"),
                                                                           push("trades", "BTC-USDT"))}
    assert replies[3:5] == list(last.values())
    snapshot = json.loads(replies[5])
    last_update = json.loads([f for f in frames if '"channel":"books","instId":"BTC-USDT"' in f][-1])
    assert snapshot["action"] == "snapshot" and len(snapshot["data"][0]["bids"]) == 400
    assert snapshot["data"][0]["checksum"] == last_update["data"][0]["checksum"]
    assert snapshot["data"][0]["ts"] == last_update["data"][0]["ts"]


def test_venue_rest_serves_ticker_and_trades_from_what_was_played():
    venue, frames = played_venue()
    listener = OKX()
    status, body = venue.rest("/api/v5/market/ticker", {"instId": "BTC-USDT"})
    last_ticker = listener.parse([f for f in frames if push("tickers", "BTC-USDT") in f][-1], 0)[0]
    assert status == 200 and listener.parse_backfill("BTC-USDT", "/api/v5/market/ticker", body) == [last_ticker]
    status, body = venue.rest("/api/v5/market/trades", {"instId": "BTC-USDT", "limit": "3"})
    played = [listener.parse(f, 0)[0] for f in frames if push("trades", "BTC-USDT") in f]
    assert listener.parse_backfill("BTC-USDT", "/api/v5/market/trades", body) == played[-3:]
    status, body = venue.rest("/api/v5/market/ticker", {"instId": "BTC-FOO"})
    assert status == 200 and json.loads(body)["code"] == "51001"
    assert venue.rest("/api/v5/public/instruments", {"instType": "SPOT"}) is None  # no listing was recorded


# --- the real listener against the local exchange ------------------------------------------------------------------
def two_spot_markets(folder):
    """The real recording, its dated future's frames renamed to a spot pair, BTC-USDC: the recording holds one spot
    market only, and adding a market needs a second."""
    recorder = Recorder(folder)
    for frame in read_frames(UPSTREAM / FILE):
        recorder("okx", frame.url, frame.received,
                 frame.frame.replace("BTC-USD-220527", "BTC-USDC").replace('"FUTURES"', '"SPOT"'))
    recorder.close()
    return folder


@pytest.fixture
def okx_exchange(tmp_path):
    exchange = LocalExchange([two_spot_markets(tmp_path)], speed=20).start()
    yield exchange
    exchange.stop()


def make(exchange, symbols, **options):
    ticks, markets, frames = Collector(), Collector(), Collector()
    listener = OKX(exchange.urls["okx"], symbols, on_tick=ticks, on_market=markets, on_frame=frames, **options)
    return listener, ticks, markets, frames


def test_handshake_ticks_then_a_market_added_on_the_same_connection(okx_exchange, start_listener):
    listener, ticks, markets, _ = make(okx_exchange, ["BTC-USDT"])
    start_listener(listener)
    markets.wait_for(lambda m: ("okx:BTC-USDT", "subscribed", "") in m)
    ticks.wait_for(lambda t: any(tick["bid"] for tick in t) and any(tick["last_side"] for tick in t))
    [client] = okx_exchange.clients("okx")
    assert list(client.messages) == ['{"id":"1","op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"},'
                                     '{"channel":"trades","instId":"BTC-USDT"}]}']
    assert all(t["symbol"] == "BTC-USDT" and t["exchange"] == "okx" and type(t["time"]) is int for t in ticks.items)

    listener.add("BTC-USDC")
    ticks.wait_for(lambda t: any(tick["symbol"] == "BTC-USDC" for tick in t))
    assert okx_exchange.clients("okx") == [client]  # no reconnect
    assert client.messages[-1] == ('{"id":"2","op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDC"},'
                                   '{"channel":"trades","instId":"BTC-USDC"}]}')
    status = listener.status()
    assert status["reconnects"] == 0 and status["bad_frames"] == 0 and status["last_error"] == ""


def test_unsubscribe_stops_the_market(okx_exchange, start_listener):
    listener, ticks, _, _ = make(okx_exchange, ["BTC-USDT", "BTC-USDC"])
    start_listener(listener)
    ticks.wait_for(lambda t: {"BTC-USDT", "BTC-USDC"} <= {tick["symbol"] for tick in t})
    listener.remove("BTC-USDC")
    [client] = okx_exchange.clients("okx")
    ticks.wait_for(lambda t: client.session["keys"] == {"tickers:BTC-USDT", "trades:BTC-USDT"})
    assert client.messages[-1] == ('{"id":"2","op":"unsubscribe","args":[{"channel":"tickers","instId":"BTC-USDC"},'
                                   '{"channel":"trades","instId":"BTC-USDC"}]}')


def test_an_unlisted_pair_is_rejected_with_the_exchanges_reason(okx_exchange, start_listener):
    listener, ticks, markets, _ = make(okx_exchange, ["BTC-USDT"])
    start_listener(listener)
    listener.add("BTC-FOO")
    markets.wait_for(lambda m: ("okx:BTC-FOO", "error", NOT_LISTED) in m)
    assert "BTC-FOO" not in listener.symbols()  # not re-subscribed on the next reconnect
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)  # the good market is unaffected
    assert listener.status()["last_error"] == ""  # the pair's trades error too was taken as the same refusal


def test_the_keepalive_ping_is_answered_pong(okx_exchange, start_listener):
    listener, _, _, frames = make(okx_exchange, ["BTC-USDT"])
    listener.keepalive_every_s = 1.0  # OKX's is 20 s; more often than 1/max_messages_per_s would hold the reader
    start_listener(listener)
    frames.wait_for(lambda f: any(text == "pong" for _, _, _, text in f))
    [client] = okx_exchange.clients("okx")
    assert "ping" in client.messages and listener.status()["bad_frames"] == 0


def test_faults_are_met_as_okx_sends_them(okx_exchange, start_listener):
    """An error frame is reported and the feed goes on; a refused subscribe marks that market with OKX's reason;
    a stall is found and the same markets are subscribed again on the new connection."""
    states = Collector()
    listener, ticks, markets, _ = make(okx_exchange, ["BTC-USDT"], stale_after_s=1.5, backoff_base_s=0.05,
                                       on_state=lambda status: states(status["state"]))
    start_listener(listener)
    ticks.wait_for(lambda t: t)
    okx_exchange.inject("okx:error=maintenance soon")
    states.wait_for(lambda s: listener.status()["last_error"])
    assert listener.status()["last_error"] == "OKX error 64007: maintenance soon"

    okx_exchange.inject("okx:refuse-subscribe").result(5)
    listener.add("BTC-USDC")
    markets.wait_for(lambda m: ("okx:BTC-USDC", "error", "OKX error 60014: Requests too frequent") in m)
    assert "BTC-USDC" not in listener.symbols() and listener.status()["reconnects"] == 0

    okx_exchange.inject("okx:stall")
    states.wait_for(lambda s: "stale" in s)
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)
    [client] = [client for client in okx_exchange.clients("okx") if client.open() and not client.stalled]
    assert client.session["keys"] == {"tickers:BTC-USDT", "trades:BTC-USDT"}
    assert listener.status()["reconnects"] == 1
