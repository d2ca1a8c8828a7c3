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


# --- serverShutdown, the stream limit, long subscriptions --------------------------------------------------------

import orjson  # noqa: E402
import websocket  # noqa: E402

from conftest import Collector  # noqa: E402
from exchanges.binance import (MAX_STREAMS, REQUEST_MAX_BYTES, SHUTDOWN_REASON, STREAM_LIMIT,  # noqa: E402
                               URL_MAX_CHARS)
from exchanges.simulator import LocalExchange  # noqa: E402
from exchanges.tick import Reconnect  # noqa: E402

TEXT = websocket.ABNF.OPCODE_TEXT


@pytest.mark.parametrize("name", ["binance_server_shutdown", "binance_server_shutdown_raw"])
def test_the_documented_server_shutdown_asks_for_a_clean_reconnect(name):
    # Frames copied from https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#server-shutdown
    assert Binance().parse(documented(name), 0) == [Reconnect(SHUTDOWN_REASON)]


def book_ticker(u):
    return documented("binance_book_ticker").replace("400900217", str(u))


def trade(t):
    return documented("binance_trade").replace('"t":12345', f'"t":{t}')


def switch(listener, notice=True):
    """What the listener's thread does across a reconnect, without sockets: the old connection's last frame (a
    serverShutdown, or none for a drop), the gaps opened, the new connection's start."""
    if notice:
        listener._handle(TEXT, documented("binance_server_shutdown").encode())
    listener._open_gaps("the exchange asked for a reconnect")
    listener.on_connected()
    listener.book.reset()


@pytest.mark.parametrize("first, gap", [
    (book_ticker(400900218), None),  # the next book update: the book did not change unseen
    (book_ticker(400900217), None),  # the same one again
    (book_ticker(400900267), "the book changed 49 times between the last quote seen and this one "
                             "(u 400900217 -> 400900267): a quote change may have been missed"),
    (trade(12346), "a trade came first: the quote may have changed unseen"),  # trades continue; the quote?
    (trade(12350), "4 trades missed (id 12345 -> 12350)"),
])
def test_after_a_server_shutdown_a_gap_is_shown_only_where_the_ids_say_data_may_be_missed(first, gap):
    gaps = Collector()
    listener = Binance(None, ["BNB-USDT", "BNB-BTC"], on_gap=gaps)
    listener.to_native("BNB-USDT"), listener.to_native("BNB-BTC")
    listener._subscribed_at = {"BNB-USDT": 0.0, "BNB-BTC": 0.0}
    for frame in (book_ticker(400900217), trade(12345), book_ticker(400900217).replace("BNBUSDT", "BNBBTC")):
        listener._handle(TEXT, frame.encode())
    switch(listener)
    listener._handle(TEXT, first.replace("BNBUSDT", "BNBBTC").encode())
    stats = listener.markets["BNB-BTC"]
    assert stats.gap_from is None  # decided at its first update: the gap lands before that row, or never
    if gap is None:
        assert gaps.items == [] and listener.gaps == 0
    else:
        [shown] = gaps.items
        assert shown["symbol"] == "BNB-BTC" and gap in shown["reason"]
        assert shown["reason"].startswith("the exchange asked for a reconnect")
    assert listener.markets["BNB-USDT"].gap_from is not None  # no update of its own yet: still open


def test_without_a_server_shutdown_a_reconnect_is_a_gap_whatever_the_ids():
    gaps = Collector()
    listener = Binance(None, ["BNB-USDT"], on_gap=gaps)
    listener.to_native("BNB-USDT")
    listener._subscribed_at = {"BNB-USDT": 0.0}
    listener._handle(TEXT, book_ticker(400900217).encode())
    switch(listener, notice=False)  # a drop: nothing was announced
    listener._handle(TEXT, book_ticker(400900218).encode())
    [shown] = gaps.items
    assert shown["reason"] == "the exchange asked for a reconnect"


def watched_binance(local_exchange, start_listener, symbols, waits=None, **options):
    ticks, markets, states, gaps = Collector(), Collector(), Collector(), Collector()

    def on_state(status):
        if status["next_attempt_at"] is not None and waits is not None:
            waits.append(status["next_attempt_at"] - status["since"])
        states((status["state"], status["reason"]))

    listener = Binance(local_exchange.urls["binance"], symbols, on_tick=ticks, on_market=markets, on_gap=gaps,
                       on_state=on_state, **options)
    start_listener(listener)
    return listener, ticks, markets, states, gaps


def test_a_server_shutdown_is_a_clean_reconnect_made_before_the_server_closes(local_exchange, start_listener):
    waits = []  # ms from each reconnecting state to its next attempt, as the feed status said
    listener, ticks, markets, states, gaps = watched_binance(local_exchange, start_listener, ["NKN-USDT"],
                                                             backoff_base_s=0.05, waits=waits)
    ticks.wait_for(lambda t: len(t) >= 2)
    [old] = local_exchange.clients("binance")
    listener._attempt = 10  # as after many failures: a grown backoff would now wait up to the cap (30 s)
    local_exchange.inject("binance:shutdown")  # `--fault binance:shutdown` from the command line
    [reconnecting] = [status for status in states.wait_for(lambda s: any(state == "reconnecting" for state, _ in s))
                      if status[0] == "reconnecting"]
    reason = reconnecting[1]
    assert "serverShutdown" in reason
    assert waits[-1] <= 50  # ms: a jitter of backoff_base_s, no backoff
    count = len(ticks.items)
    states.wait_for(lambda s: s[-1][0] == "live" and any(state == "reconnecting" for state, _ in s))
    ticks.wait_for(lambda t: len(t) > count)  # data flows again
    # We closed first, cleanly (a close frame the server answered): the server had closed nothing
    closing = old.connection.protocol
    assert closing.close_rcvd is not None and closing.close_rcvd_then_sent
    [new] = local_exchange.clients("binance")
    assert new is not old and new.session["keys"] == {"nknusdt@bookTicker", "nknusdt@trade"}
    status = listener.status()
    assert listener._attempt == 10 and status["reconnects"] == 1
    assert "serverShutdown" in status["last_incident"]["reason"]  # the feed says why
    # the replay went on while we switched: a gap, if shown, says what the ids show
    assert all(gap["reason"].startswith(reason) and ";" in gap["reason"] for gap in gaps.items)


def test_a_server_shutdown_while_nothing_changes_shows_no_gap(tmp_path, start_listener):
    """The documented bookTicker, then 4 s later the next book update (u + 1): a serverShutdown in between is
    answered by a reconnect well inside those 4 s, and the new connection's first quote proves nothing was missed."""
    recording = tmp_path / "binance_quiet.jsonl"
    frames = [(0.0, book_ticker(400900217)), (4.0, book_ticker(400900218).replace("25.35190000", "25.35200000"))]
    recording.write_text("".join(orjson.dumps({"exchange": "binance", "url": Binance.url, "received": 1e9 + at,
                                               "frame": frame}).decode() + "\n" for at, frame in frames))
    exchange = LocalExchange([recording], speed=1, loop_replay=False).start()
    try:
        listener, ticks, markets, states, gaps = watched_binance(exchange, start_listener, ["BNB-USDT"],
                                                                 backoff_base_s=0.05)
        ticks.wait_for(lambda t: len(t) == 1)
        exchange.replays["binance"].venue.announce_shutdown()
        [tick] = ticks.wait_for(lambda t: len(t) == 2)[1:]
        assert tick["bid"] == "25.35200000" and listener.status()["reconnects"] == 1
        assert "serverShutdown" in listener.status()["last_incident"]["reason"]
        assert gaps.items == [] and listener.status()["gaps"] == 0
    finally:
        exchange.stop()


def test_the_venue_refuses_streams_beyond_the_documented_limit_and_ignores_oversized_requests():
    venue = BinanceVenue()
    session = {}
    venue.on_open(session, "/stream?streams=" + "/".join(f"s{i}@trade" for i in range(MAX_STREAMS - 1)))
    [ok] = venue.on_message(session, '{"method":"SUBSCRIBE","params":["x@trade"],"id":1}')
    assert ok == '{"result":null,"id":1}' and len(session["keys"]) == MAX_STREAMS
    [refused] = venue.on_message(session, '{"method":"SUBSCRIBE","params":["y@trade"],"id":2}')
    listener = Binance()
    listener.subscribe_messages(["A-B"]), listener.subscribe_messages(["Y-Z"])
    assert listener.parse(refused, 0) == [Rejected("Y-Z", "Binance error 2: Invalid request: too many streams")]
    assert len(session["keys"]) == MAX_STREAMS
    huge = orjson.dumps({"method": "SUBSCRIBE", "params": [f"s{i}@bookTicker" for i in range(300)], "id": 3})
    assert venue.on_message({"keys": set()}, huge.decode()) == []  # silence, as clients observed


def test_512_markets_fit_one_connection_by_url_and_paced_subscribes_and_the_513th_is_refused(
        local_exchange, start_listener):
    # NKN-USDT (in the recording) sorts last: it is subscribed by the last SUBSCRIBE, not in the URL
    symbols = [f"A{i:03d}-USDT" for i in range(511)] + ["NKN-USDT"]
    listener, ticks, markets, states, _ = watched_binance(local_exchange, start_listener, symbols)
    local_exchange.wait_subscribed("binance", [listener.to_native(symbol) for symbol in symbols])
    [client] = local_exchange.clients("binance")
    assert len(client.session["keys"]) == MAX_STREAMS
    assert len(listener.status()["url"]) <= URL_MAX_CHARS
    requests = [orjson.loads(message) for message in client.messages]
    assert len(requests) >= 2 and all(len(message.encode()) <= REQUEST_MAX_BYTES for message in client.messages)
    assert "nknusdt@trade" in requests[-1]["params"] and "nknusdt" not in listener.status()["url"]
    ticks.wait_for(lambda t: any(tick["symbol"] == "NKN-USDT" for tick in t))  # from the last SUBSCRIBE
    assert not any(state == "error" for _, state, _ in markets.items)

    assert listener.add("LRC-BTC") is False
    assert ("binance:LRC-BTC", "error", STREAM_LIMIT) in markets.items
    assert STREAM_LIMIT == ("Binance allows 1,024 streams per connection (2 per market): at most 512 markets on "
                            "one feed")
    assert "LRC-BTC" not in listener.symbols() and len(client.messages) == len(requests)  # nothing sent
    listener.remove("A000-USDT")
    assert listener.add("LRC-BTC") is True  # a market closed makes room
    ticks.wait_for(lambda t: any(tick["symbol"] == "LRC-BTC" for tick in t))
    assert "lrcbtc@trade" in client.session["keys"] and len(client.session["keys"]) == MAX_STREAMS
    assert not any("too many streams" in reason for _, _, reason in markets.items)  # unsubscribed first


def test_markets_configured_beyond_the_limit_are_refused_on_their_panels():
    markets = Collector()
    listener = Binance(None, [f"A{i:03d}-USDT" for i in range(514)], on_market=markets)
    assert len(listener.symbols()) == 512
    assert markets.items == [("binance:A512-USDT", "error", STREAM_LIMIT), ("binance:A513-USDT", "error", STREAM_LIMIT)]


def test_each_kind_of_bad_frame_is_logged_once_and_every_one_counted(caplog):
    """A flood of one kind of bad frame logs it once, and a new kind after it is logged at once (it was hidden until
    the next power of two of all bad frames); every frame is counted under its reason."""
    listener = Binance()
    with caplog.at_level("WARNING", logger="exchanges.base"):
        for _ in range(100):
            listener._handle(websocket.ABNF.OPCODE_TEXT, b"not json")
        listener._handle(websocket.ABNF.OPCODE_TEXT, b"[1, 2]")
        listener._handle(websocket.ABNF.OPCODE_TEXT, b"not json either")
    logged = [record.getMessage() for record in caplog.records if "bad frame" in record.getMessage()]
    assert len(logged) == 2 and "JSONDecodeError" in logged[0] and "not a JSON object" in logged[1]
    assert listener.bad_by_reason == {"JSONDecodeError": 101, "not a JSON object": 1} and listener.bad_frames == 102
