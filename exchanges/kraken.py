"""Kraken spot public websocket, API v1: `spread` (best bid/ask with their volumes and the exchange's time of the
quote), `trade` (every trade with its time and taker side) and `ticker` (kept for its `c`, the last trade);
Kraken sends its own `heartbeat` about once a second.

Protocol: https://docs.kraken.com/api/docs/websocket-v1/spread, https://docs.kraken.com/api/docs/websocket-v1/trade,
https://docs.kraken.com/api/docs/websocket-v1/ticker, https://docs.kraken.com/api/docs/websocket-v1/subscriptionstatus,
https://docs.kraken.com/exchange/api-reference/spot-websocket-v1/heartbeat (and .../ping); REST:
https://docs.kraken.com/api/docs/rest-api/get-tradable-asset-pairs, .../get-recent-trades, .../get-ticker-information;
changes: https://docs.kraken.com/exchange/changelog (and https://docs.kraken.com/api/docs/change-log).
- Top of book: v1 `spread`, "the best bid and ask prices along with their volumes", a snapshot on subscribing, then
  updates. The page names no trigger for an update; we take it to be sent on every change of the best bid/ask (what
  the channel is for, unlike `ticker`) and say so with quote_on_every_change True: not checked against the live
  feed here. Its frame is
  `[channelID, [bid, ask, timestamp, bidVolume, askVolume], "spread", "XBT/USD"]`, every field a string; the page's
  schema numbers pair [2] and channel_name [3], but its example (and every v1 channel) sends the channel name
  first, then the pair, which is what we read. `timestamp` is "seconds.micros" since the epoch, the exchange's time of
  the quote: the tick's `time` (ms, integer arithmetic on the string, never float). A zero price is an empty side.
- Why `ticker` stays subscribed: it is sent on trades only, so its best bid/ask is as old as the last trade and is
  not the top of book; but its snapshot on subscribing carries `c`, the last trade (zeros: none yet), which gives a
  quiet market its last price before any `trade` arrives. Its `a`/`b` are used only until the pair's `spread` has
  spoken on this connection (recordings without `spread`, as the shipped ones played by the local exchange); after
  that a ticker gives only its `c`, and only while no last trade is known on this connection: later tickers repeat
  what `trade` sent (with its time and side), so they give no tick, and an old book top never replaces a newer
  `spread` quote.
- Order: Kraken documents no sequence for `spread`, `ticker` or `trade`, and says its timestamps are not unique;
  their order on one connection is what we go by (a replay that loops sends older times again).
- Why v1: Kraken also serves v2 (wss://ws.kraken.com/v2, JSON objects). Its introduction
  (https://docs.kraken.com/exchange/guides/websockets/introduction) says v1 is maintained while new features go to
  v2. v1 quotes every decimal (prices, sizes, times) as a string, which is what we show unchanged; v2 sends prices
  and quantities as JSON numbers. The recordings, the local exchange and this parser all speak v1.
- Data frames are arrays `[channelID, payload, channelName, pair]`; the channelID is deprecated, so channelName and
  pair say what a frame is. `ticker` carries no time (None, never invented); a trade's time is "seconds.micros".
- One subscribe per channel with a pair list; Kraken answers one `subscriptionStatus` per pair and channel, an
  error one ("Currency pair not supported XBT/FOO") for a pair it does not list (reported once, not per channel).
  Requests carry a `reqid`, which Kraken echoes, so a failed unsubscribe is not taken for a refused market.
- Kraken publishes no fixed rate for public websocket messages (it answers "Exceeded msg rate"): 5 a second.
- Pairs are Kraken's websocket names (`wsname` in AssetPairs): "XBT/USD" is BTC-USD, "XDG/USD" DOGE-USD. The REST
  API names pairs differently ("XBTUSD", answered under "XXBTZUSD"); the listing gives the exact altname.
- The listing offers what the v1 feed can stream: a pair with a `wsname`, a status under which orders match
  (`online`, `limit_only`, `reduce_only`: the book still moves), and an `execution_venue` of `international` or none.
  Kraken's changelog (27 April 2026, Spot REST) added `execution_venue` to AssetPairs ("one of international,
  bitnomial_exchange"), and its v2 `instrument` channel takes an `execution_venue` that defaults to `international`.
  The v1 pages name no venue and v1 takes no such parameter (its features are frozen), so we take the v1 public
  feed to carry the `international` venue only: that is our reading, the docs do not say it in so many words.
"""
from __future__ import annotations

import json
import re
from collections import deque
from itertools import count
from typing import Annotated, Any, Literal, Optional, Union

import msgspec
import orjson

from .base import ExchangeListener
from .tick import (BadFrame, ExchangeError, Heartbeat, Rejected, Subscribed, Update, book_side, checked, decimal_str,
                   decimals, last_price, priced, schema_reason, symbol_str)
from .venue import BROADCAST, Venue

CHANNELS = ("ticker", "trade", "spread")
# Kraken's websocket names keep its own codes for these assets; every other code is the unified one.
UNIFIED_ASSET = {"XBT": "BTC", "XDG": "DOGE"}
KRAKEN_ASSET = {unified: kraken for kraken, unified in UNIFIED_ASSET.items()}
TAKER_SIDE = {"b": "buy", "s": "sell"}
TRADING = ("online", "limit_only", "reduce_only")  # AssetPairs statuses under which orders still match
VENUES = (None, "international")  # AssetPairs `execution_venue`s the v1 public feed carries (absent: before the field)
_SECONDS = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,9}))?")  # "1618678142.557535"; ASCII digits only


def seconds_to_ms(value) -> int:
    """Kraken's "seconds.micros" (a string on the websocket, a JSON number's own text on REST) -> epoch ms,
    truncated, with integer arithmetic only."""
    if type(value) is str:  # _SECONDS by str methods: a regex and its groups cost half a spread frame (profile)
        whole, dot, fraction = value.partition(".")
        if 0 < len(whole) <= 12 and whole.isascii() and whole.isdigit() and (
                not dot or 0 < len(fraction) <= 9 and fraction.isascii() and fraction.isdigit()):
            return int(whole + (fraction + "000")[:3])
    elif type(value) is int and value >= 0:
        return value * 1000
    raise BadFrame(f"bad time: {str(value)[:40]!r}")


class _Spread(msgspec.Struct, array_like=True, gc=False):
    """`spread` data: [bid, ask, timestamp ("seconds.micros"), bidVolume, askVolume], decimal strings."""
    bid: str
    ask: str
    timestamp: Union[int, str]  # a string on the websocket; seconds_to_ms reads either
    bid_size: str
    ask_size: str


class _BookLevel(msgspec.Struct, array_like=True, gc=False):
    """A ticker's `a` / `b`: [price, wholeLotVolume, lotVolume]."""
    price: str
    whole_lot: Any  # not read
    lot: str


class _LastTrade(msgspec.Struct, array_like=True, gc=False):
    """A ticker's `c`: [price, lotVolume]; zeros (or no price) while the pair has not traded."""
    price: Optional[str]
    lot: str


class _Ticker(msgspec.Struct, gc=False):
    """`ticker` data (also the REST ticker's): best bid, best ask, last trade; the other fields are not read."""
    b: _BookLevel
    a: _BookLevel
    c: _LastTrade


class _Trade(msgspec.Struct, array_like=True, gc=False):
    """One trade of a `trade` frame (or of REST /Trades): [price, volume, time, side, orderType, misc]."""
    price: str
    volume: str
    time: Union[int, str]  # "seconds.micros" (REST: a JSON number's own text, or an int)
    side: Literal["b", "s"]  # the taker's


class _SpreadFrame(msgspec.Struct, array_like=True, gc=False):
    channel_id: Any  # deprecated by Kraken: not read
    data: _Spread
    channel: str
    pair: str
    more: Any = msgspec.UNSET  # an element past the pair: not this shape (read the general way)


class _TickerFrame(msgspec.Struct, array_like=True, gc=False):
    channel_id: Any
    data: _Ticker
    channel: str
    pair: str
    more: Any = msgspec.UNSET


class _TradesFrame(msgspec.Struct, array_like=True, gc=False):
    channel_id: Any
    data: Annotated[list[_Trade], msgspec.Meta(min_length=1)]
    channel: str
    pair: str
    more: Any = msgspec.UNSET


_HEARTBEAT = b'{"event":"heartbeat"}'  # as Kraken sends it, byte for byte (other spellings: the general way)
_SPREAD = msgspec.json.Decoder(_SpreadFrame)
_TICKER = msgspec.json.Decoder(_TickerFrame)
_TRADES = msgspec.json.Decoder(_TradesFrame)
# What a wrong payload is counted as (tick.schema_reason, on the payload alone), as the hand-written checks named it.
_SPREAD_REASONS = {"$": "spread data is not [bid, ask, timestamp, bidVolume, askVolume]", "$[2]": "bad time",
                   **dict.fromkeys(("$[0]", "$[1]", "$[3]", "$[4]"), "not a decimal string")}
_TICKER_REASONS = {"$": "ticker data is not an object", "$.a": "bad ticker field 'a'", "$.b": "bad ticker field 'b'",
                   "$.c": "bad ticker field 'c'", **dict.fromkeys(("$.a[]", "$.b[]", "$.c[]"), "not a decimal string")}
_TRADE_REASONS = {"$": "trade data is not a list of trades", "$[]": "bad trade", "$[][0]": "not a decimal string",
                  "$[][1]": "not a decimal string", "$[][2]": "bad time", "$[][3]": "bad side"}


def _convert(value, schema, reasons):
    """`value` (decoded JSON) as `schema`; raises BadFrame with the reason its first error is counted under."""
    try:
        return msgspec.convert(value, schema)
    except msgspec.ValidationError as error:
        raise BadFrame(schema_reason(error, reasons)) from None


class Kraken(ExchangeListener):
    name = "kraken"
    label = "Kraken"
    url = "wss://ws.kraken.com"
    url_hosts = ("kraken.com",)
    max_messages_per_s = 5.0
    rest_url = "https://api.kraken.com"
    listing_path = "/0/public/AssetPairs"
    quote_on_every_change = True  # v1 `spread` is sent on every change of the best bid/ask
    colour = "#5741d9"
    recordings = ("KRAKEN.ws.49.0", "KRAKEN.ws.48.0")
    no_data_hint = "subscribed; no spread or ticker yet (Kraken sends both on subscribing)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._unified: dict[str, str] = {}      # websocket pair -> unified, as asked or listed
        self._native: dict[str, str] = {}
        self._rest_pair: dict[str, str] = {}    # websocket pair -> REST altname, from the listing
        self._next_reqid = count(1)
        self._unsubscribe_reqids: set[int] = set()
        self._refused_pairs: set[str] = set()   # refused on this connection (once per pair, not per channel)
        self._spread_pairs: set[str] = set()    # pairs whose `spread` has spoken on this connection
        self._last_pairs: set[str] = set()      # pairs with a last trade known on this connection (trade or `c`)

    def on_connected(self):
        self._unsubscribe_reqids.clear()
        self._refused_pairs.clear()
        self._spread_pairs.clear()
        self._last_pairs.clear()

    def subscribe_messages(self, symbols):
        self._refused_pairs.difference_update(symbols)
        return [self._request("subscribe", symbols, channel) for channel in CHANNELS]

    def unsubscribe_messages(self, symbols):
        natives = {self.to_native(symbol) for symbol in symbols}
        self._spread_pairs -= natives
        self._last_pairs -= natives
        return [self._request("unsubscribe", symbols, channel) for channel in CHANNELS]

    def to_native(self, symbol):
        native = self._native.get(symbol)
        if native is None:
            base, _, quote = symbol.partition("-")
            native = f"{KRAKEN_ASSET.get(base, base)}/{KRAKEN_ASSET.get(quote, quote)}"
            self._remember(native, symbol)
        return native

    def from_native(self, native):
        if type(native) is not str:
            raise BadFrame("pair is not a string")
        unified = self._unified.get(native)
        if unified is not None:
            return unified
        base, slash, quote = native.partition("/")
        if not slash:
            raise BadFrame(f"not a Kraken pair: {native[:30]!r}")
        return symbol_str(f"{UNIFIED_ASSET.get(base, base)}-{UNIFIED_ASSET.get(quote, quote)}")

    def parse(self, frame, received):
        # Channel data by its channel name near the end ('...],"spread","XBT/USD"]'), decoded and type-checked by its
        # schema in one call; events, other channels, or a frame the guess did not fit, the general way (_parse_other),
        # which gives a bad one its reason from the same schema.
        if type(frame) is str:
            frame = frame.encode()
        if not frame.startswith(b"["):  # an event: Kraken's once-a-second heartbeat is most of them
            return [Heartbeat()] if frame == _HEARTBEAT else self._parse_other(frame)
        tail = frame[-40:]
        try:
            if b'],"spread","' in tail:
                message = _SPREAD.decode(frame)
                if message.channel == "spread" and message.more is msgspec.UNSET:
                    return self._spread(message.pair, message.data)
            elif b']],"trade","' in tail:
                message = _TRADES.decode(frame)
                if message.channel == "trade" and message.more is msgspec.UNSET:
                    return self._trades(message.pair, message.data)
            elif b'},"ticker","' in tail:
                message = _TICKER.decode(frame)
                if message.channel == "ticker" and message.more is msgspec.UNSET:
                    return self._ticker(message.pair, message.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        return self._parse_other(frame)

    def _parse_other(self, frame) -> list:
        """Events, channels that carry no tick, and channel data the first guess did not read."""
        message = orjson.loads(frame)
        if type(message) is list:
            return self._channel_data(message)
        if type(message) is not dict:
            raise BadFrame("neither an event nor channel data")
        event = message.get("event")
        if type(event) is not str:
            raise BadFrame("no 'event'")
        if event == "heartbeat" or event == "pong":
            return [Heartbeat()]
        if event == "subscriptionStatus":
            return self._subscription_status(message)
        if event == "systemStatus":
            status = message.get("status")
            if type(status) is not str:
                raise BadFrame("systemStatus without a status")
            return [] if status == "online" else [ExchangeError(f"Kraken system status: {status[:40]}")]
        if event == "error":
            return [ExchangeError(str(message.get("errorMessage") or "error")[:200])]
        return []  # other events (private channels' statuses ...) say nothing about these markets

    def _channel_data(self, message: list) -> list:
        """`[channelID, payload, channelName, pair]` read the general way: which channel it is, then its payload
        through the channel's schema (its error named as the feed counts it)."""
        if len(message) < 4:
            raise BadFrame("channel data too short")
        channel, pair = message[-2], message[-1]
        if type(channel) is not str or type(pair) is not str:
            raise BadFrame("channel data without channelName and pair")
        schema = _PAYLOADS.get(channel)
        if schema is None:
            return []  # book, ohlc: no tick here
        payload_type, reasons, handle = schema
        if len(message) != 4:
            raise BadFrame(reasons["$"])
        return handle(self, pair, _convert(message[1], payload_type, reasons))

    def _spread(self, pair: str, data: _Spread) -> list:
        symbol = self._symbol(pair)
        bid, bid_size, ask, ask_size = data.bid, data.bid_size, data.ask, data.ask_size
        if not (priced(bid) and priced(ask) and bid_size in checked and ask_size in checked):
            # not all four checked and priced before: checked now, and "" or zeros are an empty side
            bid, bid_size = book_side(bid, bid_size)
            ask, ask_size = book_side(ask, ask_size)
        time = seconds_to_ms(data.timestamp)
        self._spread_pairs.add(pair)
        # symbol, time, bid, bid_size, ask, ask_size, last, last_size, last_side, sequence (v1 documents none)
        return [Update(symbol, time, bid, bid_size, ask, ask_size, None, None, None, None)]

    def _ticker(self, pair: str, data: _Ticker) -> list:
        b, a, c = data.b, data.a, data.c
        if priced(b.price) and priced(a.price) and b.lot in checked and a.lot in checked:  # checked before, priced
            bid, bid_size, ask, ask_size = b.price, b.lot, a.price, a.lot
        else:
            bid, bid_size = book_side(b.price, b.lot)  # a side with no order: empty
            ask, ask_size = book_side(a.price, a.lot)
        if priced(c.price) and c.lot in checked:
            last, last_size = c.price, c.lot
        else:
            last = last_price(c.price)  # zeros: no trade yet
            last_size = decimal_str(c.lot) if last else None
        symbol = self._symbol(pair)
        known, spoken = pair in self._last_pairs, pair in self._spread_pairs
        if last:
            self._last_pairs.add(pair)
        if spoken:  # `spread` gives the book top now: the ticker's is as old as a trade, its `c` a repeat
            return [] if known or not last else [Update(symbol, last=last, last_size=last_size)]
        return [Update(symbol, None, bid, bid_size, ask, ask_size, last, last_size, None)]

    def _trades(self, pair: str, trades: list) -> list:
        symbol = self._symbol(pair)
        updates = []
        for trade in trades:
            time = seconds_to_ms(trade.time)
            if trade.price not in checked or trade.volume not in checked:
                decimals(trade.price, trade.volume)
            updates.append(Update(symbol, time, None, None, None, None, trade.price, trade.volume,
                                   TAKER_SIDE[trade.side], None))
        self._last_pairs.add(pair)
        return updates

    def _subscription_status(self, message: dict) -> list:
        status, pair = message.get("status"), message.get("pair")
        if status == "subscribed":
            return [Subscribed((self._symbol(pair),))] if pair is not None else [Subscribed()]
        if status == "unsubscribed":
            return []
        if status != "error":
            raise BadFrame("bad subscriptionStatus")
        reason = str(message.get("errorMessage") or "subscription refused")[:200]
        symbol = self._known(pair)
        if symbol is None or message.get("reqid") in self._unsubscribe_reqids:
            return [ExchangeError(reason if pair is None or str(pair) in reason else f"{reason} ({str(pair)[:30]})")]
        if symbol in self._refused_pairs:
            return []  # the same pair refused again on the other channel
        self._refused_pairs.add(symbol)
        return [Rejected(symbol, reason)]

    def parse_listing(self, body):
        listed = set()
        for entry in _result(orjson.loads(body)).values():
            if not _streamable(entry):
                continue
            wsname = entry.get("wsname")
            try:
                symbol = self.from_native(wsname)
            except BadFrame:  # no websocket name, or one that is no BASE-QUOTE ("ETH2.S/ETH")
                continue
            self._remember(wsname, symbol)  # the listing is the exact symbol map
            if type(entry.get("altname")) is str:
                self._rest_pair[wsname] = entry["altname"]
            listed.add(symbol)
        return sorted(listed)

    def backfill_requests(self, symbol):
        native = self.to_native(symbol)
        pair = self._rest_pair.get(native) or native.replace("/", "")  # REST takes the altname: XBTUSD
        return [("/0/public/Trades", {"pair": pair, "count": "100"}), ("/0/public/Ticker", {"pair": pair})]

    def parse_backfill(self, symbol, path, body):
        # json, not orjson: a REST trade's time is a JSON number, and parse_float hands over its exact text
        result = _result(json.loads(body, parse_float=str))
        if path.endswith("/Ticker"):  # {"<pair>": {"a": [price, whole, lot], "b": [...], "c": [price, lot], ...}}
            if len(result) != 1:
                raise BadFrame("ticker answer is not one pair")
            [ticker] = result.values()
            if type(ticker) is not dict:
                raise BadFrame("ticker is not an object")
            ticker = _convert(ticker, _Ticker, _TICKER_REASONS)  # the websocket ticker's fields, same shapes
            bid, bid_size = book_side(ticker.b.price, ticker.b.lot)
            ask, ask_size = book_side(ticker.a.price, ticker.a.lot)
            last = last_price(ticker.c.price)
            last_size = decimal_str(ticker.c.lot) if last else None
            return [Update(symbol, None, bid, bid_size, ask, ask_size, last, last_size, None)]
        # /Trades, oldest first: {"<pair>": [[price, volume, time, side, type, misc, id], ...], "last": "<id>"}
        lists = [value for key, value in result.items() if key != "last"]
        if len(lists) != 1 or type(lists[0]) is not list:
            raise BadFrame("trades answer is not one pair's list")
        trades = _convert(lists[0], list[_Trade], _TRADE_REASONS)  # as a websocket trade; the time's text a string
        return [Update(symbol, seconds_to_ms(trade.time), last=decimal_str(trade.price),
                       last_size=decimal_str(trade.volume), last_side=TAKER_SIDE[trade.side]) for trade in trades]

    def _symbol(self, pair) -> str:
        unified = self._unified.get(pair) if type(pair) is str else None  # the pairs asked for: the fast path
        return unified if unified is not None else self.from_native(pair)

    def _known(self, pair):
        try:
            return self.from_native(pair)
        except BadFrame:
            return None

    def _remember(self, native: str, symbol: str) -> None:
        self._unified[native] = symbol
        self._native[symbol] = native

    def _request(self, event, symbols, channel):
        reqid = next(self._next_reqid)
        if event == "unsubscribe":
            self._unsubscribe_reqids.add(reqid)
        return orjson.dumps({"event": event, "pair": [self.to_native(symbol) for symbol in symbols],
                             "subscription": {"name": channel}, "reqid": reqid}).decode()


# channelName -> (its payload's schema, what a wrong one is counted as, its handler)
_PAYLOADS = {"spread": (_Spread, _SPREAD_REASONS, Kraken._spread),
             "ticker": (_Ticker, _TICKER_REASONS, Kraken._ticker),
             "trade": (Annotated[list[_Trade], msgspec.Meta(min_length=1)], _TRADE_REASONS, Kraken._trades)}


def _streamable(entry) -> bool:
    """An AssetPairs entry the v1 public feed streams: a status under which orders match (entries without one, as
    in the documented example, are online) and the `international` execution venue (or none named)."""
    return (type(entry) is dict and entry.get("status", "online") in TRADING
            and entry.get("execution_venue") in VENUES and type(entry.get("wsname")) is str)


def _result(answer) -> dict:
    """A Kraken REST answer's result; its error list raised."""
    if type(answer) is not dict:
        raise BadFrame("REST answer is not an object")
    errors = answer.get("error")
    if errors:
        raise BadFrame(f"Kraken error: {str(errors)[:100]}")
    result = answer.get("result")
    if type(result) is not dict:
        raise BadFrame("REST answer without a result")
    return result


def _dumps(message: dict) -> str:
    return orjson.dumps(message, option=orjson.OPT_SORT_KEYS).decode()  # Kraken sends its keys sorted


def _event_error(text: str, reqid=None) -> str:
    return _dumps({"errorMessage": text, "event": "error", **({} if reqid is None else {"reqid": reqid})})


class KrakenVenue(Venue):
    """Kraken's side, for the local exchange: `systemStatus` on connect, one `subscriptionStatus` per pair and
    channel with a fresh channelID (an error one for a pair it does not list or a malformed one), the current
    ticker as a snapshot on subscribing to `ticker`, `pong`, and a `heartbeat` each second once subscribed (Kraken
    sends one after a second without data; the venue cannot see what each client was sent, so it always does).
    REST: `/0/public/Ticker` and `/0/public/Trades` from what has been played, AssetPairs when one was recorded.

    session["channels"] holds what a client subscribed to ("ticker:XBT/USD"); session["keys"] only the pairs it has
    on every channel the listener uses (ticker, trade, spread). The listener subscribes them in three paced
    messages, and the simulator opens the market (and tests start a replay) on session["keys"]: a pair's frames then
    never start with one channel missing.

    `spread`: subscriptions are acknowledged, but the shipped recordings hold no spread frames (KRAKEN.ws.49.0 has
    tickers, 48.0 trades). `derived(frame, received)` makes one from a recorded ticker: DERIVED, not recorded, in
    the documented shape `[0, [bid, ask, timestamp, bidVolume, askVolume], "spread", pair]`, from the ticker's best
    bid `b` and ask `a` (price and lot volume), its timestamp the recording's receipt time of that ticker frame as a
    decimal seconds string (the ticker carries no time of its own). The local exchange plays each one right after
    its ticker (Venue.derived), so a replay shows the exchange's time of the quote as live mode does; a recording
    that holds real spread frames (as tests/test_kraken.py writes one) is played as it is, never doubled by derived
    ones. On subscribing to `spread`, the latest spread played for the pair is its snapshot (with its own
    timestamp), as Kraken sends one.
    Derived spreads change only where the recorded tickers did (on trades), so a replay understates how often the
    live top of book moves."""

    path = "/"
    VERSION = "1.9.2"
    NAMES = ("book", "ohlc", "openOrders", "ownTrades", "spread", "ticker", "trade")

    def __init__(self, listed=None, listing_body=None):
        super().__init__(listed, listing_body)
        self._channel_ids = count(1)
        self._connection_ids = count(14545728493745856413)
        self._tickers: dict[str, dict] = {}   # pair -> its latest ticker payload played
        self._spreads: dict[str, list] = {}   # pair -> its latest spread payload played (recorded or derived)
        self._trades: dict[str, deque] = {}   # pair -> its recent trades played, with a trade id each
        self._trade_ids = count(1)

    def route(self, frame):
        message = orjson.loads(frame)
        if type(message) is list:
            channel, pair = message[-2], message[-1]
            return f"{channel}:{pair}" if type(channel) is str and type(pair) is str else BROADCAST
        if type(message) is dict and message.get("event") in ("systemStatus", "subscriptionStatus", "heartbeat",
                                                                "pong"):
            return None  # the venue makes its own
        return BROADCAST

    def symbol_of(self, key):
        return key.partition(":")[2]

    @staticmethod
    def listing(body):
        return {entry["wsname"] for entry in orjson.loads(body)["result"].values() if _streamable(entry)}

    def on_open(self, session, path):
        session["keys"], session["channels"] = set(), set()
        return [_dumps({"connectionID": next(self._connection_ids), "event": "systemStatus", "status": "online",
                        "version": self.VERSION})]

    def wants(self, session, key):
        return key in session.get("channels", ())

    def on_message(self, session, text):
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [_event_error("Malformed request")]
        if type(message) is not dict:
            return [_event_error("Malformed request")]
        event, reqid = message.get("event"), message.get("reqid")
        if event == "ping":
            return [_dumps({"event": "pong", **({} if reqid is None else {"reqid": reqid})})]
        if event not in ("subscribe", "unsubscribe"):
            return [_event_error("Event(s) not found", reqid)]
        subscription, pairs = message.get("subscription"), message.get("pair")
        if type(subscription) is not dict or subscription.get("name") not in self.NAMES:
            return [_event_error("Subscription name invalid", reqid)]
        if type(pairs) is not list or not pairs or not all(type(pair) is str for pair in pairs):
            return [_event_error("Pair(s) not found", reqid)]
        replies, snapshots = [], []
        for pair in pairs:
            reply, snapshot = self._answer(session, event, subscription["name"], pair, reqid)
            replies.append(reply)
            snapshots.extend(snapshot)
        session["keys"] = _on_every_channel(session["channels"])
        return replies + snapshots

    def _answer(self, session, event, name, pair, reqid):
        """(the subscriptionStatus for one pair, the snapshot frames that follow it)."""
        status = {"event": "subscriptionStatus", "pair": pair, "subscription": {"name": name},
                  **({} if reqid is None else {"reqid": reqid})}
        base, slash, quote = pair.partition("/")
        key = f"{name}:{pair}"
        if not (base and slash and quote) or "/" in quote:
            return _dumps({**status, "status": "error",
                           "errorMessage": f"Currency pair not in ISO 4217-A3 format {pair}"}), []
        if pair not in self.listed:
            return _dumps({**status, "status": "error", "errorMessage": f"Currency pair not supported {pair}"}), []
        if event == "unsubscribe" and key not in session["channels"]:
            return _dumps({**status, "status": "error", "errorMessage": "Subscription Not Found"}), []
        channel_id = next(self._channel_ids)
        if event == "unsubscribe":
            session["channels"].discard(key)
            return _dumps({**status, "status": "unsubscribed", "channelID": channel_id, "channelName": name}), []
        session["channels"].add(key)
        snapshot = []
        if name == "ticker" and pair in self._tickers:  # Kraken sends the current ticker on subscribing
            snapshot.append(orjson.dumps([channel_id, self._tickers[pair], "ticker", pair]).decode())
        if name == "spread" and pair in self._spreads:  # ... and the current spread, as its spread page says
            snapshot.append(orjson.dumps([channel_id, self._spreads[pair], "spread", pair]).decode())
        return _dumps({**status, "status": "subscribed", "channelID": channel_id, "channelName": name}), snapshot

    @staticmethod
    def derived(frame: str, received) -> list[tuple[str, str]]:
        """[("spread:PAIR", spread frame)] derived from a recorded `ticker` frame received at `received` (epoch
        seconds as recorded); [] for any other frame. The spread's timestamp is the receipt time written as the
        decimal seconds string Kraken uses (never an exponent)."""
        if not frame.startswith("[") or received is None:
            return []
        message = orjson.loads(frame)
        if type(message) is not list or len(message) != 4 or message[-2] != "ticker" or type(message[1]) is not dict:
            return []
        pair, ticker = message[-1], message[1]
        seconds = received if type(received) is str else repr(float(received))
        if _SECONDS.fullmatch(seconds) is None:
            return []
        bid, ask = ticker.get("b"), ticker.get("a")
        if type(bid) is not list or type(ask) is not list or len(bid) < 3 or len(ask) < 3:
            return []
        spread = [0, [bid[0], ask[0], seconds, bid[2], ask[2]], "spread", pair]
        return [(f"spread:{pair}", orjson.dumps(spread).decode())]

    def error_frame(self, text):
        return _event_error(text or "Internal error")

    def refusal(self, session, text):
        message = self.request_of(text, "event", "subscribe")
        if message is None:
            return None
        subscription = message.get("subscription")
        name = subscription.get("name") if type(subscription) is dict else None
        return [_dumps({"errorMessage": "Exceeded msg rate", "event": "subscriptionStatus", "pair": pair,
                        "status": "error", "subscription": {"name": name},
                        **({} if message.get("reqid") is None else {"reqid": message["reqid"]})})
                for pair in (message.get("pair") if type(message.get("pair")) is list else ()) if type(pair) is str]

    def observe(self, frame):
        if not frame.startswith("["):
            return
        message = orjson.loads(frame)
        channel, pair = message[-2], message[-1]
        if channel == "ticker":
            self._tickers[pair] = message[1]
        elif channel == "spread":
            self._spreads[pair] = message[1]
        elif channel == "trade":
            trades = self._trades.setdefault(pair, deque(maxlen=1000))
            trades.extend((*trade[:6], next(self._trade_ids)) for trade in message[1])

    def rest(self, path, query):
        """`/0/public/AssetPairs` (the recorded listing), `/0/public/Ticker` and `/0/public/Trades` in the shapes
        Kraken documents, from the frames played so far; pairs by REST altname ("XMRUSD") or websocket name."""
        if path == "/0/public/AssetPairs":
            return (200, self.listing_body) if self.listing_body else None
        if path not in ("/0/public/Ticker", "/0/public/Trades"):
            return None
        asked = query.get("pair", "")
        pair = next((known for known in (*self._tickers, *self._trades)
                     if asked in (known, known.replace("/", ""))), None)
        if path.endswith("/Ticker"):
            ticker = self._tickers.get(pair)
            if ticker is None:
                return 200, '{"error":["EQuery:Unknown asset pair"],"result":{}}'
            answer = {key: ticker[key] for key in ("c", "v", "p", "t", "l", "h") if key in ticker}
            answer["a"], answer["b"] = ([side[0], str(side[1]), side[2]] for side in (ticker["a"], ticker["b"]))
            answer["o"] = ticker["o"][0] if type(ticker.get("o")) is list else ticker.get("o")
            return 200, _dumps({"error": [], "result": {pair.replace("/", ""): answer}})
        trades = [trade for trade in self._trades.get(pair, ()) if _SECONDS.fullmatch(str(trade[2]))]
        if pair is None or not trades:
            return 200, '{"error":["EQuery:Unknown asset pair"],"result":{}}'
        limit = int(query["count"]) if query.get("count", "").isdigit() else 1000
        trades = trades[-limit:]
        # the time is a JSON number on REST: written from the recorded digits, never through float
        rows = ",".join(f"[{_json(price)},{_json(volume)},{time},{_json(side)},{_json(kind)},{_json(misc)},{trade_id}]"
                        for price, volume, time, side, kind, misc, trade_id in trades)
        whole, _, fraction = trades[-1][2].partition(".")
        last = whole + (fraction + "000000000")[:9]  # Kraken's "last": the newest trade's time in ns
        return 200, f'{{"error":[],"result":{{{_json(pair.replace("/", ""))}:[{rows}],"last":"{last}"}}}}'

    def heartbeats(self, session, now):
        return ['{"event":"heartbeat"}'] if session.get("channels") else []


def _json(value) -> str:
    return orjson.dumps(value).decode()


def _on_every_channel(channels: set) -> set:
    """The subscriptions of the pairs subscribed on every channel in CHANNELS."""
    names_by_pair: dict[str, set] = {}
    for key in channels:
        name, _, pair = key.partition(":")
        names_by_pair.setdefault(pair, set()).add(name)
    return {f"{name}:{pair}" for pair, names in names_by_pair.items() if names >= set(CHANNELS) for name in names}


Kraken.venue = KrakenVenue
