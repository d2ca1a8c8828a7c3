"""The real listeners against the local exchange over real websockets on loopback."""
import time

import pytest
import websocket

from conftest import Collector
from exchanges import EXCHANGES, base
from exchanges.coinbase import Coinbase
from exchanges.binance import Binance
from exchanges.simulator import LocalExchange
from exchanges.__main__ import normalize
from conftest import UPSTREAM


def make(cls, exchange, symbols, **options):
    ticks, markets, states = Collector(), Collector(), Collector()
    listener = cls(exchange.urls[cls.name], symbols, on_tick=ticks, on_market=markets,
                   on_state=lambda status: states(status["state"]), **options)
    return listener, ticks, markets, states


def test_coinbase_handshake_ticks_then_add_a_market_on_the_same_connection(local_exchange, start_listener):
    listener, ticks, markets, states = make(Coinbase, local_exchange, ["SKL-USD"])
    start_listener(listener)
    markets.wait_for(lambda m: ("coinbase:SKL-USD", "subscribed", "") in m)
    ticks.wait_for(lambda t: len(t) >= 3)
    [client] = local_exchange.clients("coinbase")
    assert list(client.messages) == [
        '{"type":"subscribe","product_ids":["SKL-USD"],"channels":["level2_batch","ticker","heartbeat"]}']
    assert all(t["symbol"] == "SKL-USD" and t["exchange"] == "coinbase" for t in ticks.items)
    # the first is the recorded level2 snapshot, which carries no time; every update and trade after it has its own
    assert ticks.items[0]["time"] is None and ticks.items[0]["last"] is None and ticks.items[0]["bid"]
    assert all(t["time"] for t in ticks.items[1:])

    listener.add("DASH-BTC")
    ticks.wait_for(lambda t: any(tick["symbol"] == "DASH-BTC" for tick in t))
    assert local_exchange.clients("coinbase") == [client]  # no reconnect
    assert client.messages[-1] == ('{"type":"subscribe","product_ids":["DASH-BTC"],'
                                   '"channels":["level2_batch","ticker","heartbeat"]}')
    assert listener.status()["reconnects"] == 0 and states.items[:2] == ["connecting", "live"]


def test_a_send_waiting_for_the_exchanges_pace_never_stops_the_reading(local_exchange, start_listener):
    listener, ticks, markets, _ = make(Coinbase, local_exchange, ["SKL-USD"])
    listener.max_messages_per_s = 0.2  # one message per 5 s: the next subscribe must wait its turn
    start_listener(listener)
    markets.wait_for(lambda m: ("coinbase:SKL-USD", "subscribed", "") in m)
    listener.add("DASH-BTC")
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) >= count + 3)  # ticks go on arriving meanwhile
    assert ("subscribe", "DASH-BTC") in listener._ops  # read on while the subscribe waits, unsent
    ticks.wait_for(lambda t: any(tick["symbol"] == "DASH-BTC" for tick in t), timeout=20)  # then it goes


def test_binance_subscribe_with_id_is_acknowledged_without_reconnect(local_exchange, start_listener):
    listener, ticks, markets, states = make(Binance, local_exchange, ["NKN-USDT"])
    start_listener(listener)
    ticks.wait_for(lambda t: len(t) >= 2)
    [client] = local_exchange.clients("binance")
    assert client.session["keys"] == {"nknusdt@bookTicker", "nknusdt@trade"}  # from the URL
    listener.add("LRC-BTC")
    markets.wait_for(lambda m: ("binance:LRC-BTC", "subscribed", "") in m)
    assert list(client.messages) == ['{"method":"SUBSCRIBE","params":["lrcbtc@bookTicker","lrcbtc@trade"],"id":1}']
    assert local_exchange.clients("binance") == [client]
    ticks.wait_for(lambda t: any(tick["symbol"] == "LRC-BTC" for tick in t))
    tick = next(t for t in ticks.items if t["symbol"] == "NKN-USDT" and t["time"] is None)
    assert tick["bid"] and tick["ask"] and tick["received"]  # bookTicker: no exchange time, never invented


def test_a_dropped_socket_reconnects_with_backoff_and_resubscribes(local_exchange, start_listener):
    listener, ticks, markets, states = make(Coinbase, local_exchange, ["SKL-USD"], backoff_base_s=0.05)
    start_listener(listener)
    ticks.wait_for(lambda t: len(t) >= 1)
    assert local_exchange.drop("coinbase") == 1
    states.wait_for(lambda s: "reconnecting" in s)
    states.wait_for(lambda s: s[-1] == "live" and "reconnecting" in s)
    count = len(ticks.items)
    ticks.wait_for(lambda t: len(t) > count)
    [client] = local_exchange.clients("coinbase")
    assert client.session["keys"] == {"level2_batch:SKL-USD", "ticker:SKL-USD", "heartbeat:SKL-USD"}
    assert listener.status()["reconnects"] == 1
    assert "closed" in listener.status()["reason"] or listener.status()["state"] == "live"


def test_an_unlisted_pair_is_rejected_with_the_exchanges_reason(local_exchange, start_listener):
    listener, ticks, markets, states = make(Coinbase, local_exchange, ["SKL-USD"])
    start_listener(listener)
    listener.add("BTC-FOO")
    markets.wait_for(lambda m: ("coinbase:BTC-FOO", "error", "BTC-FOO is not a valid product") in m)
    assert "BTC-FOO" not in listener.symbols()  # not re-subscribed on the next reconnect
    ticks.wait_for(lambda t: len(t) >= 1)  # the good market is unaffected


def test_unsubscribe_stops_the_market(local_exchange, start_listener):
    listener, ticks, markets, states = make(Coinbase, local_exchange, ["SKL-USD", "DASH-BTC"])
    start_listener(listener)
    ticks.wait_for(lambda t: {"SKL-USD", "DASH-BTC"} <= {tick["symbol"] for tick in t})
    listener.remove("DASH-BTC")
    [client] = local_exchange.clients("coinbase")
    ticks.wait_for(lambda t: client.session["keys"] == {"level2_batch:SKL-USD", "ticker:SKL-USD", "heartbeat:SKL-USD"})


REPLAYS = [(name, file) for name, listener in EXCHANGES.items() for file in listener.recordings if ".ws." in file]


@pytest.mark.parametrize("name, recording", REPLAYS)
def test_replayed_ticks_equal_the_normalized_recording(name, recording, start_listener):
    """What the listener publishes from a replay is what `python -m exchanges normalize` prints for it."""
    expected = [tick for tick in normalize(UPSTREAM / recording, derived=True)]
    exchange = LocalExchange([UPSTREAM / recording], speed=0, loop_replay=False, paused=True).start()
    try:
        symbols = exchange.markets()[name]
        listener, ticks, markets, _ = make(EXCHANGES[name], exchange, symbols)
        start_listener(listener)
        exchange.wait_subscribed(name, [listener.to_native(symbol) for symbol in symbols])
        exchange.resume()
        ticks.wait_for(lambda t: len(t) >= len(expected), timeout=30)
    finally:
        exchange.stop()
    strip = lambda tick: {k: v for k, v in tick.items() if k != "received"}  # noqa: E731
    assert [strip(t) for t in ticks.items] == [strip(t) for t in expected]


@pytest.mark.parametrize("cls, symbol", [(Coinbase, "SKL-USD"), (Binance, "NKN-USDT")])
def test_a_looping_replay_never_sends_an_older_sequence(cls, symbol, start_listener):
    """Each pass of a recording continues the sequence numbers (the venue renumbers), so the second pass is not
    dropped as older than the first."""
    exchange = LocalExchange([UPSTREAM / cls.recordings[0]], speed=0).start()
    try:
        one_pass = sum(1 for tick in normalize(UPSTREAM / cls.recordings[0]) if tick["symbol"] == symbol)
        listener, ticks, _, _ = make(cls, exchange, [symbol])
        start_listener(listener)
        ticks.wait_for(lambda t: len(t) > 2 * one_pass + 1, timeout=30)
        assert listener.status()["older"] == 0 and listener.status()["reconnects"] == 0
    finally:
        exchange.stop()


def test_a_close_for_a_restart_reconnects_at_once_and_leaves_the_backoff(local_exchange, start_listener):
    """Code 1012 (service restart) or 1001 (going away) after data: a clean reconnect, its wait a short jitter."""
    listener, ticks, markets, states = make(Coinbase, local_exchange, ["SKL-USD"], backoff_base_s=0.05)
    start_listener(listener)
    ticks.wait_for(lambda t: len(t) >= 1)
    listener._attempt = 10  # as after many failures: a growing backoff would now wait up to the cap (30 s)
    local_exchange.inject("coinbase:close=1012")
    states.wait_for(lambda s: "reconnecting" in s)
    assert listener.next_attempt_at - listener.state_since <= 50  # the jitter of backoff_base_s, not 30 s
    states.wait_for(lambda s: s[-1] == "live" and "reconnecting" in s)
    assert listener._attempt == 10 and "code 1012" in listener.status()["last_incident"]["reason"]


def test_a_market_closed_and_added_again_is_explained_again(local_exchange, start_listener):
    """The 'waiting' explanation is given again after a close-and-add of the same market, not only after a
    reconnect."""
    listener, ticks, markets, states = make(Coinbase, local_exchange, ["SKL-USD"], no_data_hint_s=0.3)
    start_listener(listener)
    listener.add("BTC-USD")  # listed, but not in the recording: no snapshot, no ticker
    markets.wait_for(lambda m: any(market == "coinbase:BTC-USD" and state == "waiting" for market, state, _ in m))
    listener.remove("BTC-USD")
    mark = len(markets.items)
    listener.add("BTC-USD")
    markets.wait_for(lambda m: any(market == "coinbase:BTC-USD" and state == "waiting" for market, state, _ in m[mark:]))


def test_a_missing_pong_counts_only_when_nothing_else_arrives():
    """Frames are proof of life: late pongs on a busy feed make it neither stale nor reconnect."""
    listener = Coinbase("ws://127.0.0.1:9/", ["SKL-USD"], stale_after_s=10)
    listener._watch(1000.0, last_frame=999.0, last_data=999.0, last_pong=900.0)  # no exception: not stale
    assert listener.state != "stale"
    with pytest.raises(Exception, match="no frame for 11.0 s, pings unanswered"):
        listener._watch(1000.0, last_frame=989.0, last_data=989.0, last_pong=989.0)
    assert listener.state == "stale"


class FakeClock:
    """`time` as exchanges.base sees it, its monotonic clock set by the test."""

    def __init__(self, now):
        self.now = now
        self.time_ns, self.time, self.sleep = time.time_ns, time.time, time.sleep

    def monotonic(self):
        return self.now


class ScriptedSocket:
    """A websocket the listener reads from: `script(socket)` answers each read; the clock moves only when it says.
    `sent` and `pings` hold what the listener sent (pings by the clock's time)."""

    def __init__(self, script, clock):
        self.script, self.clock, self.sent, self.pings, self.reads = script, clock, [], [], 0
        self.listener = None

    def settimeout(self, timeout):
        pass

    def recv_data(self, control_frame=False):
        self.reads += 1
        return self.script(self)

    def send(self, message):
        self.sent.append(message)

    def ping(self):
        self.pings.append(self.clock.now)

    def close(self, timeout=None):
        pass


def paced_session(monkeypatch, script, **options):
    """Run one Binance listener session on a ScriptedSocket under a fake clock (4 messages a second: one every
    0.25 s). Binance puts its first streams in the URL, so nothing is sent at connect."""
    clock = FakeClock(100.0)
    monkeypatch.setattr(base, "time", clock)
    socket = ScriptedSocket(script, clock)
    monkeypatch.setattr(websocket, "create_connection", lambda url, **kw: socket)
    listener = Binance("ws://127.0.0.1:9/stream", ["NKN-USDT"], **options)
    socket.listener = listener
    listener._session()
    return listener, socket


def test_a_pong_answering_the_exchanges_ping_is_counted_so_the_next_subscribe_waits_its_turn(monkeypatch):
    """Binance counts pings and pongs in its 5 messages a second: the pong websocket-client sends at once in answer
    to a ping takes a turn, and a subscribe right after it goes one interval later, not at once."""
    seen = {}

    def script(socket):
        listener = socket.listener
        if socket.reads == 1:
            listener.add("LRC-BTC")
            return websocket.ABNF.OPCODE_PING, b""  # websocket-client has sent the pong: at 100.0
        if socket.reads == 2:  # the loop went round once since: the subscribe has waited
            seen["waiting"] = (list(socket.sent), list(listener._ops), listener._next_send_at)
            socket.clock.now = 100.25  # its turn
        if socket.reads == 3:
            seen["sent"] = list(socket.sent)
            listener.stop()
        raise websocket.WebSocketTimeoutException()

    listener, socket = paced_session(monkeypatch, script)
    assert seen["waiting"] == ([], [("subscribe", "LRC-BTC")], 100.25)
    assert seen["sent"] == ['{"method":"SUBSCRIBE","params":["lrcbtc@bookTicker","lrcbtc@trade"],"id":1}']
    assert listener._next_send_at == 100.5  # and it booked the next turn


def test_our_own_ping_waits_for_the_pace_and_takes_a_turn(monkeypatch):
    seen = {}

    def script(socket):
        listener = socket.listener
        if socket.reads == 1:
            listener.ping_every_s = 0.1
            listener.add("LRC-BTC")  # sent at 100.0 next round: the next turn is at 100.25
        elif socket.reads == 2:
            socket.clock.now = 100.2  # a ping is due, its turn is not
        elif socket.reads == 3:
            seen["before its turn"] = list(socket.pings)
            socket.clock.now = 100.25
        elif socket.reads == 4:
            seen["at its turn"] = (list(socket.pings), listener._next_send_at)
            listener.stop()
        raise websocket.WebSocketTimeoutException()

    paced_session(monkeypatch, script)
    assert seen["before its turn"] == []
    assert seen["at its turn"] == ([100.25], 100.5)


@pytest.mark.parametrize("url, reason", [
    ("ws://no-such-host.invalid:1/", "cannot resolve no-such-host.invalid: no network or DNS?"),  # .invalid never resolves
    (None, "cannot connect to 127.0.0.1: connection refused"),  # a closed loopback port
])
def test_an_unreachable_host_is_one_plain_sentence_naming_it(url, reason, start_listener):
    from conftest import free_port
    states = Collector()
    listener = Coinbase(url or f"ws://127.0.0.1:{free_port()}/", ["BTC-USD"], backoff_base_s=60,
                        on_state=lambda status: states((status["state"], status["reason"])))
    start_listener(listener)
    states.wait_for(lambda s: ("reconnecting", reason) in s)
    assert listener.status()["last_incident"]["reason"] == reason


def test_name_and_socket_failures_read_plainly_and_others_are_left_alone():
    import errno
    import socket
    url = "wss://ws-feed.exchange.coinbase.com"
    assert (base.connect_failure_reason(socket.gaierror(-3, "Temporary failure in name resolution"), url)
            == "cannot resolve ws-feed.exchange.coinbase.com: no network or DNS?")
    assert (base.connect_failure_reason(OSError(errno.ENETUNREACH, "Network is unreachable"), url)
            == "cannot connect to ws-feed.exchange.coinbase.com: network unreachable")
    assert base.connect_failure_reason(ValueError("something else"), url) is None
