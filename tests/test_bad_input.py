"""Bad frames from an exchange are counted, logged and skipped; the feed keeps streaming."""
import threading

import orjson

from conftest import Collector, recorded
from exchanges.binance import Binance
from exchanges.coinbase import Coinbase
from exchanges.recording import Recorder
from exchanges.simulator import LocalExchange


def ticker(index):
    return recorded("COINBASE.ws.28.0", '"product_id":"SKL-USD","price"', index)


def mutate(frame, **changes):
    message = orjson.loads(frame)
    for key, value in changes.items():
        if value is None:
            message.pop(key)
        else:
            message[key] = value
    return orjson.dumps(message).decode()


def replay_to_listener(tmp_path, listener_cls, url_symbols, frames, expect_ticks):
    recorder = Recorder(tmp_path)
    for index, frame in enumerate(frames):
        recorder(listener_cls.name, "wss://example/", 1618677817.0 + index / 1000, frame)
    recorder.close()
    exchange = LocalExchange([tmp_path], speed=0, loop_replay=False, paused=True).start()
    ticks, markets = Collector(), Collector()
    listener = listener_cls(exchange.urls[listener_cls.name], url_symbols, on_tick=ticks, on_market=markets)
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    try:
        markets.wait_for(lambda m: any(state in ("subscribed", "subscribing") for _, state, _ in m))
        if listener_cls is Coinbase:
            markets.wait_for(lambda m: any(state == "subscribed" for _, state, _ in m))
        exchange.resume()
        ticks.wait_for(lambda t: len(t) >= expect_ticks)  # the last frame is good: all came before it
        return listener.status(), ticks.items
    finally:
        listener.stop()
        thread.join(5)
        exchange.stop()


def test_coinbase_bad_frames_are_counted_and_skipped(tmp_path):
    good = ticker(0)
    frames = [
        good,
        '{"type":"ticker","product_id":"SKL-USD"',                          # malformed JSON (truncated)
        mutate(good, best_ask=None),                                          # a field missing
        mutate(good, price="12,5"),                                           # a non-numeric price
        mutate(good, product_id="<img src=x onerror=alert(1)>"),             # unknown symbol: not subscribed
        '{"type":"error","message":"Failed to subscribe","reason":"slow down"}',  # an exchange error
        ticker(1),
    ]
    status, ticks = replay_to_listener(tmp_path, Coinbase, ["SKL-USD"], frames, expect_ticks=2)
    assert [t["last"] for t in ticks] == [orjson.loads(good)["price"], orjson.loads(ticker(1))["price"]]
    assert status["bad_frames"] == 3
    assert status["state"] in ("live", "quiet") and status["reconnects"] == 0
    assert "not a decimal string" in status["last_bad_reason"]
    assert status["last_error"] == "Failed to subscribe: slow down"
    assert status["bad_by_reason"] == {"JSONDecodeError": 1, "missing field 'best_ask'": 1, "not a decimal string": 1}


def test_binance_unknown_symbol_and_garbage_are_counted(tmp_path):
    good = recorded("BINANCE.ws.1.0", "nknusdt@bookTicker")
    frames = [
        good,
        good.replace('"s":"NKNUSDT"', '"s":"???"'),     # a symbol that maps to nothing
        good.replace('"b":"0.35210000"', '"b":null'),    # null price
        "\x00\x01 not json at all",
        good.replace('"a":"0.35260000"', '"a":"0.35270000"'),
    ]
    status, ticks = replay_to_listener(tmp_path, Binance, ["NKN-USDT"], frames, expect_ticks=2)
    assert [t["ask"] for t in ticks] == ["0.35260000", "0.35270000"]
    assert status["bad_frames"] == 3 and status["reconnects"] == 0
