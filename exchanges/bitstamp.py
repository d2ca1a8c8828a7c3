"""Bitstamp websocket API v2: `order_book_<pair>` (top of book) and `live_trades_<pair>` (last trade).

Protocol: https://www.bitstamp.net/websocket/v2/ (subscriptions, channels, heartbeat, forced reconnection, errors);
REST: https://www.bitstamp.net/api/ (trading-pairs-info, transactions, ticker).
- One `bts:subscribe` / `bts:unsubscribe` per channel, acknowledged `bts:subscription_succeeded` /
  `bts:unsubscription_succeeded` naming the channel. `bts:error` names no channel (`"channel": ""`), so an error is
  laid to the oldest request not yet answered (answers come in the order requests were sent).
- Top of book: `order_book_<pair>` sends the whole top 100 of each side on every change (bids best first, asks
  best first), and nothing at the moment of subscribing: a quiet book stays empty until it changes. An empty `bids`
  or `asks` list is an empty side (thin books do this): shown empty, never as its last price. No ordering field is
  documented (`microtimestamp` is a time).
- `live_trades_<pair>`: `price`/`amount` are JSON numbers, `price_str`/`amount_str` the exact strings (used);
  `type` 0 = buy, 1 = sell is the taker's side (the later order: buy_order_id > sell_order_id on every type 0 trade
  in the recording, the reverse on every type 1).
- `diff_order_book_<pair>` (changed levels only, zero amount removes) is what the recording holds. The listener
  subscribes to `order_book_`, but parses diffs too, into a book per pair: so a recording normalizes to the ticks a
  live feed would show, and the local exchange can stream its recorded diffs to an `order_book_` subscriber.
- No server heartbeat: the client sends `{"event":"bts:heartbeat"}` and gets one back; sent every stale_after / 3,
  its answers keep a silent market quiet, not stale. `bts:request_reconnect` (maintenance) asks for a new
  connection within a few seconds.
- No published limit on client messages; frames must stay under 512 bytes and a connection holds at most 1024
  channels (two per market here): more closes it silently.
"""
from __future__ import annotations

import re
from collections import deque
from decimal import Decimal
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Literal

import msgspec
import orjson

from .base import ExchangeListener
from .book import OrderBook
from .tick import (EMPTY, SYMBOL, BadFrame, ExchangeError, Heartbeat, Reconnect, Rejected, Subscribed, Update,
                   checked, decimal_str, decimals, last_price, rest_book_price, schema_reason, split_by_quote,
                   unified_symbol)
from .venue import BROADCAST, Venue

BOOK, DIFF, TRADES = "order_book_", "diff_order_book_", "live_trades_"
CHANNELS = (BOOK, TRADES)  # per market
TAKER_SIDE = {0: "buy", 1: "sell"}
# Quote currencies, longest first, to split a pair nobody subscribed to (normalizing a recording, no listing).
QUOTES = ("PYUSD", "USDT", "USDC", "USD", "EUR", "GBP", "BTC", "ETH")
_NATIVE = re.compile(r"[a-z0-9]{2,30}")
# Bitstamp writes plain decimals; an exponent (1e-99999...) could not even be compared inside a book.
_PLAIN = re.compile(r"[0-9]{1,40}(?:\.[0-9]{1,40})?")
_MICROS = re.compile(r"[0-9]{1,20}")
TRADES_KEPT = 100  # newest REST trades a new panel is shown
_CHANNELS_MAX = 10_000  # channels remembered per listener (_pair): bounded against junk


class _Level(msgspec.Struct, array_like=True, gc=False):
    """A book level [price, amount], plain decimal strings (checked by _plain_levels); in a diff, amount "0"
    removes the level."""
    price: str
    amount: str


class _BookData(msgspec.Struct, gc=False):
    """`order_book_*` data (bids and asks best first, the top 100) and `diff_order_book_*` data (the levels
    changed); `microtimestamp` a string of digits."""
    bids: list[_Level]
    asks: list[_Level]
    microtimestamp: str


class _Book(msgspec.Struct, gc=False):
    data: _BookData
    channel: str
    event: str


class _TradeData(msgspec.Struct, gc=False):
    """`live_trades_*` data: `type` 0 buy / 1 sell (the taker's side), `price_str` / `amount_str` the exact strings
    (`price` / `amount` are JSON numbers: not read)."""
    type: Literal[0, 1]
    microtimestamp: str
    price_str: str
    amount_str: str


class _Trade(msgspec.Struct, gc=False):
    data: _TradeData
    channel: str
    event: str


_BOOK = msgspec.json.Decoder(_Book)
_TRADE = msgspec.json.Decoder(_Trade)
# What a wrong value is counted as (tick.schema_reason), as the hand-written checks named it; a `data` that is no
# object was counted "TypeError" (what indexing it raised), and still is.
_LEVEL_REASONS = {"data": "TypeError", "microtimestamp": "bad microtimestamp",
                  **{f"$.data.{side}[]": "bad book level" for side in ("bids", "asks")},
                  **{f"$.data.{side}[][{i}]": "not a plain decimal" for side in ("bids", "asks") for i in (0, 1)}}
_BOOK_REASONS = {**_LEVEL_REASONS, "$.data.bids": "bids/asks not lists", "$.data.asks": "bids/asks not lists"}
_DIFF_REASONS = {**_LEVEL_REASONS, "$.data.bids": "book side not a list", "$.data.asks": "book side not a list"}
_TRADE_REASONS = {"data": "TypeError", "type": "bad trade type", "microtimestamp": "bad microtimestamp",
                  "price_str": "not a decimal string", "amount_str": "not a decimal string"}
_PLAIN_SEEN: set = set()  # strings _PLAIN accepted: a book's prices and amounts recur
_PLAIN_SEEN_MAX = 100_000


class Bitstamp(ExchangeListener):
    name = "bitstamp"
    label = "Bitstamp"
    url = "wss://ws.bitstamp.net"
    url_hosts = ("bitstamp.net",)
    max_messages_per_s = 20.0  # none published; one frame per channel, so a market costs two
    rest_url = "https://www.bitstamp.net"
    listing_path = "/api/v2/trading-pairs-info/"
    colour = "#ef6c00"
    recordings = ("BITSTAMP.ws.1.0",)
    keepalive_message = '{"event":"bts:heartbeat"}'
    no_data_hint = ("subscribed; no update yet. Bitstamp sends a book only when it changes, and may acknowledge a "
                    "pair it does not list and then send nothing: check the pair is listed")

    def __init__(self, *args, **kwargs):
        self._unified: dict[str, str] = {}     # "btcusd" -> "BTC-USD" (subscribed, or from the listing)
        self._pending: deque = deque()          # (request, channel) not yet answered, in the order sent
        self._refused: set[str] = set()         # symbols already reported refused on this connection
        self._snapshots: dict[str, tuple] = {}  # symbol -> (bids, asks) of its last full book, not yet a book
        self._books: dict[str, OrderBook] = {}  # symbol -> book kept from diffs
        self._partial: set[str] = set()         # symbols whose book was built from diffs alone (no full book)
        self._by_channel: dict[str, str] = {}   # data channel -> its unified symbol, as _pair found it
        super().__init__(*args, **kwargs)
        # No server heartbeat: our own, answered, is what shows the exchange still speaks on a silent market.
        self.keepalive_every_s = max(0.5, self.stale_after_s / 3)

    def on_connected(self):
        self._pending.clear()
        self._refused.clear()
        self._snapshots.clear()
        self._books.clear()
        self._partial.clear()

    def subscribe_messages(self, symbols):
        self._refused.difference_update(symbols)
        return self._requests("bts:subscribe", symbols)

    def unsubscribe_messages(self, symbols):
        for symbol in symbols:
            self._snapshots.pop(symbol, None)
            self._books.pop(symbol, None)
            self._partial.discard(symbol)
        return self._requests("bts:unsubscribe", symbols)

    def to_native(self, symbol):
        native = symbol.replace("-", "").lower()
        self._unified[native] = symbol
        self._by_channel.clear()  # a pair may map afresh
        return native

    def from_native(self, native):
        return unified_symbol(native, self._unified, _split, bad="bad pair {}", unknown="unknown pair {}",
                              pattern=_NATIVE)

    def parse(self, frame, received):
        # Book and trade frames by their channel near the end, decoded and type-checked by their schema in one call;
        # anything else, or a frame the guess did not fit, is read the general way, which gives a bad one its
        # reason from the same schema.
        tail = frame[-60:]
        if type(tail) is str:
            tail = tail.encode()
        try:
            if b'"channel":"diff_order_book_' in tail:
                book = _BOOK.decode(frame)
                if book.event == "data" and book.channel.startswith(DIFF):
                    return self._diff(self._pair(book.channel, DIFF), book.data)
            elif b'"channel":"order_book_' in tail:
                book = _BOOK.decode(frame)
                if book.event == "data" and book.channel.startswith(BOOK):
                    return self._full_book(self._pair(book.channel, BOOK), book.data)
            elif b'"channel":"live_trades_' in tail:
                trade = _TRADE.decode(frame)
                if trade.event == "trade" and trade.channel.startswith(TRADES):
                    return self._trade(self._pair(trade.channel, TRADES), trade.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        return self._parse_other(frame)

    def _parse_other(self, frame) -> list:
        """Events, channels that carry no tick, and book or trade frames the first guess did not read."""
        message = orjson.loads(frame)
        if type(message) is not dict:
            raise BadFrame("not a JSON object")
        event = message.get("event")
        if event == "data":
            channel = message.get("channel")
            if type(channel) is not str:
                raise BadFrame("no channel")
            if channel.startswith(BOOK):
                return self._full_book(self._pair(channel, BOOK), _convert(message, _Book, _BOOK_REASONS).data)
            if channel.startswith(DIFF):
                return self._diff(self._pair(channel, DIFF), _convert(message, _Book, _DIFF_REASONS).data)
            return []  # detail_order_book ...: no tick here
        if event == "trade":
            channel = message.get("channel")
            if type(channel) is not str or not channel.startswith(TRADES):
                return []
            data = _convert(message, _Trade, _TRADE_REASONS).data
            return self._trade(self._pair(channel, TRADES), data)
        if event == "bts:heartbeat":
            return [Heartbeat()]
        if event == "bts:subscription_succeeded":
            return self._answered("bts:subscribe", message.get("channel"))
        if event == "bts:unsubscription_succeeded":
            self._answered("bts:unsubscribe", message.get("channel"))
            return []
        if event == "bts:error":
            return self._error(message.get("data"))
        if event == "bts:request_reconnect":
            return [Reconnect("bts:request_reconnect (server maintenance)")]
        if type(event) is not str:
            raise BadFrame("no 'event'")
        return []  # order_created, funding_rate_saved ...: no tick

    def parse_listing(self, body):
        listed = []
        for pair in orjson.loads(body):
            if type(pair) is not dict or pair.get("trading") != "Enabled" or pair.get("market_type", "SPOT") != "SPOT":
                continue
            name, native = pair.get("name"), pair.get("url_symbol")
            if type(name) is not str or type(native) is not str:
                continue
            symbol = name.replace("/", "-").upper()
            if SYMBOL.fullmatch(symbol):
                self._unified[native] = symbol  # the listing is the exact pair map
                self._by_channel.clear()
                listed.append(symbol)
        return sorted(listed)

    def backfill_requests(self, symbol):
        native = self.to_native(symbol)
        return [(f"/api/v2/transactions/{native}/", {"time": "hour"}), (f"/api/v2/ticker/{native}/", {})]

    def parse_backfill(self, symbol, path, body):
        answer = orjson.loads(body)
        if "/ticker/" in path:  # {"timestamp", "open", "high", "low", "last", "volume", "bid", "ask", "side", ...}
            # https://www.bitstamp.net/api/#tag/Tickers/operation/GetMarketTicker. A side with no order: zeros, null or
            # left out (as the local exchange answers); it is empty, never a price, and the rest of the answer stands.
            last = last_price(answer.get("last"))
            return [Update(symbol=symbol, time=_seconds_to_ms(answer["timestamp"]),
                           bid=rest_book_price(answer.get("bid")), ask=rest_book_price(answer.get("ask")), last=last,
                           last_side=_rest_side(answer["side"]) if last and answer.get("side") is not None else None)]
        # /transactions, newest first: [{"date", "tid", "amount", "type", "price"}], type "0" buy / "1" sell (taker)
        return [Update(symbol=symbol, time=_seconds_to_ms(trade["date"]), last=decimal_str(trade["price"]),
                       last_size=decimal_str(trade["amount"]), last_side=_rest_side(trade["type"]))
                for trade in reversed(answer[:TRADES_KEPT])]

    # --- helpers -------------------------------------------------------------------------------------------------
    def _requests(self, event, symbols):
        messages = []
        for symbol in symbols:
            native = self.to_native(symbol)
            for prefix in CHANNELS:
                channel = prefix + native
                self._pending.append((event, channel))
                messages.append(orjson.dumps({"event": event, "data": {"channel": channel}}).decode())
        return messages

    def _pair(self, channel, prefix):
        """The unified symbol of a data channel ("diff_order_book_btcusd"), remembered per channel: every frame
        names one."""
        symbol = self._by_channel.get(channel)
        if symbol is None:
            symbol = self.from_native(channel[len(prefix):])
            if len(self._by_channel) < _CHANNELS_MAX:
                self._by_channel[channel] = symbol
        return symbol

    def _symbol_of_channel(self, channel):
        native = _native_of(channel)
        return None if native is None else self.from_native(native)

    def _trade(self, symbol: str, data: _TradeData) -> list:
        time = _micros_to_ms(data.microtimestamp)
        if data.price_str not in checked or data.amount_str not in checked:
            decimals(data.price_str, data.amount_str)
        # (symbol, time, 4 x no quote, last, last_size, the taker's side, no sequence)
        return [Update(symbol, time, None, None, None, None, data.price_str, data.amount_str, TAKER_SIDE[data.type],
                        None)]

    def _full_book(self, symbol: str, data: _BookData) -> list:
        bids, asks = data.bids, data.asks
        time = _micros_to_ms(data.microtimestamp)
        # An empty list is an empty side (Bitstamp's thin books): shown empty, never as its last price. Only the
        # best levels are read here; the rest are checked if a book is ever made of them (_diff).
        best = _plain_levels(bids[:1], asks[:1])
        bid, bid_size = best[0][1:] if bids else (EMPTY, EMPTY)
        ask, ask_size = best[-1][1:] if asks else (EMPTY, EMPTY)
        # Kept as sent: turned into a book only if diffs follow (the local exchange), never on the live path.
        self._snapshots[symbol] = (bids, asks)
        self._books.pop(symbol, None)
        self._partial.discard(symbol)
        return [Update(symbol, time, bid, bid_size, ask, ask_size)]

    def _diff(self, symbol: str, data: _BookData) -> list:
        """A diff's levels, all checked before the book changes."""
        changes = _plain_levels(data.bids, data.asks)
        time = _micros_to_ms(data.microtimestamp)
        book = self._books.get(symbol)
        if book is None:
            book = OrderBook()
            snapshot = self._snapshots.pop(symbol, None)  # popped first: a bad one is not tried again
            if snapshot is not None:
                book.apply(_plain_levels(*snapshot))
            else:
                self._partial.add(symbol)
            self._books[symbol] = book
        book.apply(changes)
        bid, bid_size, ask, ask_size = book.top()
        if symbol in self._partial:  # diffs with no full book first: a side with no level is unknown, not empty
            bid, bid_size, ask, ask_size = bid or None, bid_size or None, ask or None, ask_size or None
            if bid is None and ask is None:
                return []
        return [Update(symbol, time, bid, bid_size, ask, ask_size)]

    def _answered(self, event, channel):
        """An acknowledgement: the request is answered; a market is subscribed once both its channels are."""
        if type(channel) is not str:
            raise BadFrame("acknowledgement without a channel")
        if (event, channel) in self._pending:
            self._pending.remove((event, channel))
        if event != "bts:subscribe":
            return []
        symbol = self._symbol_of_channel(channel)
        if symbol is None:
            return []
        native = _native_of(channel)
        waiting = any((event, prefix + native) in self._pending for prefix in CHANNELS)
        return [] if waiting else [Subscribed((symbol,))]

    def _error(self, data):
        if type(data) is not dict:
            raise BadFrame("bts:error without data")
        reason = str(data.get("message") or "error")[:200]
        if data.get("code") is not None:
            reason = f"{reason} (code {str(data['code'])[:20]})"
        if not self._pending:
            return [ExchangeError(f"Bitstamp: {reason}")]
        request, channel = self._pending.popleft()  # errors name no channel: the oldest unanswered request
        symbol = self._symbol_of_channel(channel) if request == "bts:subscribe" else None
        if symbol is None:
            return [ExchangeError(f"Bitstamp: {reason} ({request} {channel})")]
        if symbol in self._refused:
            return []  # its other channel, refused too: said once
        self._refused.add(symbol)
        return [Rejected(symbol, reason)]


def _split(native: str):
    """'btcusd' -> ('BTC', 'USD'): its pairs are lower case, split by the quotes it lists."""
    return split_by_quote(native.upper(), QUOTES)


def _native_of(channel):
    """'order_book_btcusd' -> 'btcusd'; None for a channel without ticks."""
    for prefix in (BOOK, DIFF, TRADES):
        if channel.startswith(prefix):
            return channel[len(prefix):]
    return None


def _micros_to_ms(value) -> int:
    """'1641343699596000' (microseconds, a string) -> 1641343699596, exact."""
    if type(value) is not str or not _MICROS.fullmatch(value):
        raise BadFrame(f"bad microtimestamp: {str(value)[:30]!r}")
    return int(value) // 1000


def _seconds_to_ms(value) -> int:
    if type(value) is int and value >= 0:
        return value * 1000
    if type(value) is not str or not _MICROS.fullmatch(value):
        raise BadFrame(f"bad timestamp: {str(value)[:30]!r}")
    return int(value) * 1000


def _plain_levels(bids: list, asks: list) -> list:
    """[("bid" | "ask", price, amount)] of the levels a schema decoded (OrderBook.apply's changes), bids first,
    each a plain decimal string (Bitstamp writes no exponent, which could not even be compared inside a book), each
    distinct string checked once. Raises BadFrame "not a plain decimal". The one check of a book level, for diffs
    and full books alike."""
    # built and checked in whole-list steps (zip, map, set walks): no Python loop per level once its strings are known
    changes = list(zip(repeat("bid"), map(_PRICE_OF, bids), map(_AMOUNT_OF, bids)))
    changes += zip(repeat("ask"), map(_PRICE_OF, asks), map(_AMOUNT_OF, asks))
    if not (_PLAIN_SEEN.issuperset(map(_SECOND, changes)) and _PLAIN_SEEN.issuperset(map(_THIRD, changes))):
        strings = [text for change in changes for text in change[1:]]
        for text in strings:
            if not _PLAIN.fullmatch(text):
                raise BadFrame(f"not a plain decimal: {text[:40]!r}")
            decimal_str(text)
        if len(_PLAIN_SEEN) > _PLAIN_SEEN_MAX:
            _PLAIN_SEEN.clear()
        _PLAIN_SEEN.update(strings)
    return changes


_PRICE_OF, _AMOUNT_OF = attrgetter("price"), attrgetter("amount")
_SECOND, _THIRD = itemgetter(1), itemgetter(2)


def _convert(value, schema, reasons):
    """`value` (decoded JSON) as `schema`; raises BadFrame with the reason its first error is counted under."""
    try:
        return msgspec.convert(value, schema)
    except msgspec.ValidationError as error:
        raise BadFrame(schema_reason(error, reasons)) from None


def _rest_side(value) -> str:
    side = TAKER_SIDE.get(int(value)) if value in ("0", "1", 0, 1) and type(value) is not bool else None
    if side is None:
        raise BadFrame(f"bad trade type: {str(value)[:20]!r}")
    return side


class BitstampVenue(Venue):
    """Bitstamp's side, for the local exchange: one channel per bts:subscribe / bts:unsubscribe, acknowledged
    naming the channel; `bts:error` ("Invalid channel provided.") for a channel of a pair it does not list;
    `bts:heartbeat` answered. It keeps each pair's book from the recorded diffs: an `order_book_` subscriber is
    sent that book at once (as the next change would bring it), then the recorded diffs of the pair (the local
    exchange can only forward recorded frames, so it cannot turn each diff into a full book).
    `error=bts:request_reconnect` sends the maintenance notice instead of an error."""

    path = "/"
    _CHANNEL = re.compile(r"(live_trades|live_orders|order_book|detail_order_book|diff_order_book)"
                          r"_([a-z0-9]+(?:-[a-z]+)?)")
    _ACKS = ("bts:subscription_succeeded", "bts:unsubscription_succeeded", "bts:heartbeat")

    def __init__(self, listed=None, listing_body=None):
        super().__init__(listed, listing_body)
        self._books: dict[str, OrderBook] = {}  # pair -> its book, from the diffs played
        self._stamps: dict[str, str] = {}       # pair -> microtimestamp of its last diff played
        self._trades: dict[str, deque] = {}     # pair -> its recent trades played

    def route(self, frame):
        message = orjson.loads(frame)
        event, channel = message.get("event"), message.get("channel")
        if event in self._ACKS:
            return None  # the venue makes its own
        return channel if type(channel) is str and channel and event in ("data", "trade") else BROADCAST

    def symbol_of(self, key):
        match = self._CHANNEL.fullmatch(key)
        return match.group(2) if match else key

    @staticmethod
    def listing(body):
        return {pair["url_symbol"] for pair in orjson.loads(body) if pair.get("trading") == "Enabled"}

    def wants(self, session, key):
        keys = session["keys"]
        # An order_book_ subscriber gets the recorded diffs of its pair (see the class docstring).
        return key in keys or (key.startswith(DIFF) and key[len("diff_"):] in keys)

    def on_message(self, session, text):
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [_error("Incorrect JSON format.")]
        event = message.get("event") if type(message) is dict else None
        if event == "bts:heartbeat":
            return [_frame("bts:heartbeat", "", {"status": "success"})]
        data = message.get("data") if event in ("bts:subscribe", "bts:unsubscribe") else None
        channel = data.get("channel") if type(data) is dict else None
        if type(channel) is not str:
            return [_error("Bad subscription string.")]
        match = self._CHANNEL.fullmatch(channel)
        if match is None or match.group(2) not in self.listed:
            return [_error("Invalid channel provided.")]
        if event == "bts:unsubscribe":
            session["keys"].discard(channel)
            return [_frame("bts:unsubscription_succeeded", channel, {})]
        session["keys"].add(channel)
        replies = [_frame("bts:subscription_succeeded", channel, {})]
        pair = match.group(2)
        book = self._books.get(pair)
        if channel.startswith(BOOK) and book is not None and (book.bids or book.asks):
            replies.append(self._full_book(pair))
        return replies

    def error_frame(self, text):
        if text == "bts:request_reconnect":
            return _frame("bts:request_reconnect", "", "")
        return _error(text or "Internal error.")

    def refusal(self, session, text):
        if '"bts:subscribe"' not in text:
            return None
        return [_error("Subscription refused: too many subscriptions.")]

    def observe(self, frame):
        if '"event":"data"' in frame and DIFF in frame:
            message = orjson.loads(frame)
            pair = message["channel"][len(DIFF):]
            book = self._books.setdefault(pair, OrderBook())
            data = _convert(message, _Book, _DIFF_REASONS).data
            book.apply(_plain_levels(data.bids, data.asks))
            self._stamps[pair] = data.microtimestamp
        elif '"event":"trade"' in frame:
            message = orjson.loads(frame)
            pair = message["channel"][len(TRADES):]
            self._trades.setdefault(pair, deque(maxlen=TRADES_KEPT)).append(message["data"])

    def rest(self, path, query):
        """`/api/v2/transactions/{pair}/` and `/api/v2/ticker/{pair}/` in the shapes Bitstamp documents, from
        what has been played (and the listing, if one was recorded)."""
        if path == "/api/v2/trading-pairs-info/":
            return (200, self.listing_body) if self.listing_body else None
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["api", "v2"] or parts[2] not in ("transactions", "ticker"):
            return None
        pair = parts[3]
        if pair not in self._trades and pair not in self._books:
            return 404, '{"message":"Not Found"}'
        trades = self._trades.get(pair, ())
        if parts[2] == "transactions":
            return 200, orjson.dumps([{"date": t["timestamp"], "tid": str(t["id"]), "amount": t["amount_str"],
                                       "type": str(t["type"]), "price": t["price_str"]}
                                      for t in reversed(trades)]).decode()
        return 200, orjson.dumps(self._ticker(pair, trades)).decode()

    def _ticker(self, pair, trades):
        book = self._books.get(pair) or OrderBook()
        bid, _, ask, _ = book.top()
        bid, ask = bid or None, ask or None  # an empty side: no "bid" in the answer
        by_price = sorted(trades, key=lambda trade: Decimal(trade["price_str"]))
        last = trades[-1] if trades else None
        stamp = last["microtimestamp"] if last else self._stamps.get(pair, "0")
        ticker = {"timestamp": str(int(stamp) // 1_000_000), "open": trades[0]["price_str"] if trades else None,
                  "high": by_price[-1]["price_str"] if trades else None,
                  "low": by_price[0]["price_str"] if trades else None, "last": last["price_str"] if last else None,
                  "volume": format(sum(Decimal(t["amount_str"]) for t in trades), "f"), "bid": bid, "ask": ask,
                  "side": str(last["type"]) if last else None}
        return {key: value for key, value in ticker.items() if value is not None}

    def _full_book(self, pair):
        """An `order_book_` message from the venue's book: the best 100 of each side, best first."""
        book = self._books[pair]
        bids = [list(level) for level in book.levels("bid")[:100]]
        asks = [list(level) for level in book.levels("ask")[:100]]
        stamp = self._stamps.get(pair, "0")
        data = {"timestamp": str(int(stamp) // 1_000_000), "microtimestamp": stamp, "bids": bids, "asks": asks}
        return orjson.dumps({"data": data, "channel": BOOK + pair, "event": "data"}).decode()


def _frame(event, channel, data):
    return orjson.dumps({"event": event, "channel": channel, "data": data}).decode()


def _error(message):
    return _frame("bts:error", "", {"code": None, "message": message})


Bitstamp.venue = BitstampVenue
