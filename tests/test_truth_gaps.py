"""Issue 12, "every number on the page is the exchange's truth": an emptied book side is empty (never its last
price, never "0"), a REST backfill keeps what it was told when one side has no order, and an older message never
becomes the latest state. Exact values, through the parsers and the tick state they feed."""
import orjson
import pytest
import websocket

from conftest import Collector, documented
from dashboard.rest import backfill
from exchanges.binance import Binance
from exchanges.bitstamp import Bitstamp
from exchanges.coinbase import Coinbase
from exchanges.gemini import Gemini
from exchanges.kraken import Kraken
from exchanges.okx import OKX
from exchanges.tick import EMPTY, TickBook

TEXT = websocket.ABNF.OPCODE_TEXT


def ticks_of(listener, frames):
    book, ticks = TickBook(listener.name), []
    for frame in frames:
        for update in listener.parse(frame.encode(), 0):
            ticks.append(book.apply(update, 1))
    return ticks


# --- websocket: an emptied side ------------------------------------------------------------------------------------
def test_bitstamp_order_book_with_no_asks_empties_the_ask_and_keeps_the_bid():
    full = ('{"event":"data","channel":"order_book_unibtc","data":{"microtimestamp":"1700000000000000",'
            '"bids":[["0.0001125","40"]],"asks":[["0.000114","25"]]}}')
    emptied = full.replace("1700000000000000", "1700000060000000").replace('[["0.000114","25"]]', "[]")
    first, second = ticks_of(Bitstamp(), [full, emptied])
    assert (first["bid"], first["ask"], first["ask_size"], first["empty"]) == ("0.0001125", "0.000114", "25", None)
    assert second["time"] == 1700000060000
    assert (second["ask"], second["ask_size"], second["empty"]) == (None, None, "ask")
    assert (second["bid"], second["bid_size"]) == ("0.0001125", "40")


def test_okx_tickers_push_with_a_blank_ask_empties_the_ask_and_keeps_the_bid_and_last():
    full = documented("okx_ticker")
    emptied = full.replace('"askPx":"9999.99","askSz":"11"', '"askPx":"","askSz":""')
    assert '"askPx":""' in emptied
    first, second = ticks_of(OKX(), [full, emptied])
    assert (first["ask"], first["empty"]) == ("9999.99", None)
    assert (second["ask"], second["ask_size"], second["empty"]) == (None, None, "ask")
    assert (second["bid"], second["bid_size"], second["last"], second["last_size"]) == ("8888.88", "5", "9999.99", "0.1")


# --- websocket: an older message -----------------------------------------------------------------------------------
def test_binance_book_ticker_older_by_u_gives_no_tick_and_is_counted():
    """Two combined-stream bookTicker frames through the listener's own frame handling, `u` 5 then `u` 4."""
    ticks = Collector()
    listener = Binance(None, ["BNB-USDT"], on_tick=ticks)
    listener.to_native("BNB-USDT")
    listener._subscribed_at = {"BNB-USDT": 0.0}  # as after its subscribe was sent
    newer = documented("binance_book_ticker").replace('"u":400900217', '"u":5')
    older = newer.replace('"u":5', '"u":4').replace('"b":"25.35190000"', '"b":"25.30000000"')
    assert '"u":4' in older and '"b":"25.30000000"' in older
    assert listener._handle(TEXT, newer.encode()) is True
    assert listener._handle(TEXT, older.encode()) is False
    [tick] = ticks.items
    assert (tick["bid"], tick["bid_size"], tick["ask"]) == ("25.35190000", "31.21000000", "25.36520000")
    assert listener.book.older == 1 and listener.status()["older"] == 1
    assert listener.ticks == 1 and listener.bad_frames == 0


# --- REST backfill: a side with no order -------------------------------------------------------------------------
class AnsweringRest:
    """Stands in for dashboard.rest.RestClient: the body for each path, by how the path ends."""

    def __init__(self, bodies: dict):
        self.bodies = bodies

    def get(self, exchange, path, params=None):
        return next(body for end, body in self.bodies.items() if path.endswith(end))


def edit(name, **changes):
    """A documented answer with some fields changed (None: JSON null)."""
    answer = orjson.loads(documented(name))
    target = answer["data"][0] if "data" in answer else answer
    target.update(changes)
    return orjson.dumps(answer).decode()


def kraken_ticker(**changes):
    answer = orjson.loads(documented("kraken_rest_ticker"))
    answer["result"]["XXBTZUSD"].update(changes)
    return orjson.dumps(answer).decode()


CASES = {
    # venue: (listener, symbol, trades answer, ticker answer, the ticker tick's fields expected)
    "binance bid 0.00000000": (
        Binance, "LTC-BTC", ("/trades", "binance_rest_trades"),
        ("/bookTicker", edit("binance_rest_book_ticker", bidPrice="0.00000000", bidQty="0.00000000")),
        {"bid": None, "bid_size": None, "ask": "4.00000200", "ask_size": "9.00000000", "empty": "bid"}),
    "binance both 0": (
        Binance, "LTC-BTC", ("/trades", "binance_rest_trades"),
        ("/bookTicker", edit("binance_rest_book_ticker", bidPrice="0", bidQty="0", askPrice="0", askQty="0")),
        {"bid": None, "ask": None, "ask_size": None, "empty": "both", "last": "4.00000100"}),
    "bitstamp bid 0": (
        Bitstamp, "BTC-USD", ("/transactions/btcusd/", "bitstamp_rest_transactions"),
        ("/ticker/btcusd/", edit("bitstamp_rest_ticker", bid="0")),
        {"bid": None, "ask": "2211.00", "empty": "bid", "last": "2211.00", "last_side": "buy"}),
    "bitstamp ask null": (
        Bitstamp, "BTC-USD", ("/transactions/btcusd/", "bitstamp_rest_transactions"),
        ("/ticker/btcusd/", edit("bitstamp_rest_ticker", ask=None)),
        {"bid": "2188.97", "ask": None, "empty": "ask", "last": "2211.00"}),
    "bitstamp both 0.00": (
        Bitstamp, "BTC-USD", ("/transactions/btcusd/", "bitstamp_rest_transactions"),
        ("/ticker/btcusd/", edit("bitstamp_rest_ticker", bid="0.00", ask="0.00")),
        {"bid": None, "ask": None, "empty": "both", "last": "2211.00"}),
    "gemini bid null": (
        Gemini, "BTC-USD", ("/trades/BTCUSD", "gemini_rest_trades"),
        ("/pubticker/BTCUSD", edit("gemini_rest_ticker", bid=None)),
        {"bid": None, "bid_size": None, "ask": "977.59", "empty": "bid", "last": "977.65"}),
    "gemini ask 0": (
        Gemini, "BTC-USD", ("/trades/BTCUSD", "gemini_rest_trades"),
        ("/pubticker/BTCUSD", edit("gemini_rest_ticker", ask="0")),
        {"bid": "977.35", "ask": None, "empty": "ask", "last": "977.65"}),
    "coinbase bid 0.00, price 0, size null": (
        Coinbase, "BTC-USD", ("/trades", "coinbase_rest_trades"),
        ("/ticker", edit("coinbase_rest_ticker", bid="0.00", price="0", size=None)),
        {"bid": None, "ask": "6267.71", "empty": "bid", "last": "6268.48"}),  # the last trade backfilled
    "kraken bid 0": (
        Kraken, "BTC-USD", ("/Trades", "kraken_rest_trades"),
        ("/Ticker", kraken_ticker(b=["0.00000", "0", "0.000"])),
        {"bid": None, "bid_size": None, "ask": "30300.10000", "ask_size": "1.000", "empty": "bid"}),
    "okx bid blank": (
        OKX, "BTC-USDT", ("/trades", "okx_rest_trades"),
        ("/ticker", edit("okx_rest_ticker", bidPx="", bidSz="")),
        {"bid": None, "bid_size": None, "ask": "9999.99", "ask_size": "11", "empty": "bid"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_rest_side_with_no_order_is_empty_and_the_rest_of_the_backfill_is_kept(case):
    venue, symbol, (trades_end, trades_name), (ticker_end, ticker_body), expected = CASES[case]
    listener = venue()
    trades = listener.parse_backfill(symbol, trades_end, documented(trades_name))
    assert trades and all(trade.last for trade in trades)
    ticks = backfill(AnsweringRest({trades_end: documented(trades_name), ticker_end: ticker_body}), listener, symbol)
    assert [tick["last"] for tick in ticks[:len(trades)]] == [trade.last for trade in trades]  # the trades kept
    assert len(ticks) == len(trades) + 1 and all(tick["source"] == "rest" for tick in ticks)
    quote = ticks[-1]
    assert {field: quote[field] for field in expected} == expected
    assert "0" not in (quote["bid"], quote["ask"]) and EMPTY not in (quote["bid"], quote["ask"])
