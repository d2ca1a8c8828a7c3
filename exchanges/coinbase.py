"""Coinbase Exchange public websocket feed: `level2_batch` (the order book: its top), `ticker` (the last trade) and
`heartbeat`.

Protocol: https://docs.cdp.coinbase.com/exchange/websocket-feed/overview (subscriptions, error),
https://docs.cdp.coinbase.com/exchange/websocket-feed/channels (heartbeat, ticker, level2, level2_batch, matches),
https://help.coinbase.com/en/cloud/websocket-feeds/exchange ("the level2 batch channel batches level2 messages every
0.05 seconds and has the same JSON schema as the level2 channel"; the ticker "updates prices when bids and offers are
matched"), https://docs.cloud.coinbase.com/exchange/docs/websocket-auth and
https://forums.coinbasecloud.dev/t/level2-level3-and-full-channels-now-require-authentication/4742 (since 2023 the
`level2`, `level3` and `full` channels need an API key; `level2_batch` stays public: it is the one used here).
- Top of book: the `level2_batch` book, on every change (quote_on_every_change True). A `snapshot`
  ({"bids": [[price, size]...], "asks": [...]}, no time) replaces the product's book; each `l2update`
  ({"time", "changes": [[side "buy"/"sell", price, size]...]}, size "0" removes the level) is applied, and the top is
  published only when it changed, with the update's `time` as its exchange time. A side whose last level goes is
  published empty. An `l2update` before its product's snapshot is a bad frame (unless the product was just
  unsubscribed: updates in flight). `ticker` is sent only when a trade happens, so its best_bid/best_ask are old
  between trades (the shipped recording: 53 SKL-USD tickers, 246 top-of-book changes): once a product's book is
  kept, a ticker gives only the last trade (price, last_size, taker side), never the quote; before its snapshot it
  gives its quote too (better than nothing). A ticker sent on subscribe has no `time`, `side`, `trade_id` or
  `last_size`; a product not trading yet sends zeros.
- Last trade: `ticker`, not `matches`: it carries the trade with its taker side, the product's `sequence` and the
  `trade_id` the heartbeat's `last_trade_id` is checked against (one message per trade is all we show).
- Order: messages may arrive out of order; every ticker carries the product's `sequence`. A ticker older than one
  shown is dropped (TickBook) and its trade id never moves the heartbeat's check back (no false gap). `level2_batch`
  carries no sequence; Coinbase documents level2 as delivering every update, in order on one connection.
"""
from __future__ import annotations

import re
from collections import deque
from datetime import datetime, timezone
from decimal import Decimal
from itertools import compress, repeat
from typing import Literal, Optional

import msgspec
import orjson

from .base import ExchangeListener
from .book import BOOK_SIDE, OrderBook, any_none, book_to_update, check_changes
from .tick import (EMPTY, SYMBOL, BadFrame, ExchangeError, Gap, Heartbeat, Rejected, Subscribed, Update, all_checked,
                   book_price, checked, is_zero, priced, decimal_str, decimals, iso_to_ms, last_price, schema_reason, side_str, symbol_str)
from .venue import BROADCAST, Venue, renumbered

CHANNELS = ["level2_batch", "ticker", "heartbeat"]


class _Ticker(msgspec.Struct, gc=False):
    """A `ticker` (channels page): prices and sizes as decimal strings; `time`, `side`, `trade_id` and `last_size`
    absent from the one sent on subscribe; zeros for a product not trading yet."""
    product_id: str
    best_bid: str
    best_ask: str
    price: Optional[str]
    best_bid_size: Optional[str] = None
    best_ask_size: Optional[str] = None
    last_size: Optional[str] = None
    side: Optional[Literal["buy", "sell"]] = None
    time: Optional[str] = None
    sequence: Optional[int] = None
    trade_id: Optional[int] = None


class _L2Update(msgspec.Struct, gc=False):
    """An `l2update`: [side "buy"/"sell", price, size] changes (a size of "0" removes the level) at `time`."""
    product_id: str
    changes: list[tuple[Literal["buy", "sell"], str, str]]
    time: str


class _Typed(msgspec.Struct, gc=False):
    type: Optional[str] = None


_TYPE = msgspec.json.Decoder(_Typed)
_READ = {"l2update", "ticker", "snapshot", "heartbeat", "subscriptions", "error"}  # the types read, not skipped
_TICKER = msgspec.json.Decoder(_Ticker)
_L2UPDATE = msgspec.json.Decoder(_L2Update)
_DECIMAL_FIELDS = ("best_bid", "best_ask", "price", "best_bid_size", "best_ask_size", "last_size")
# What a wrong value of each field is counted as (tick.schema_reason); any other field: "bad 'name'".
_REASONS = {**dict.fromkeys(_DECIMAL_FIELDS, "not a decimal string"), "side": "bad side", "time": "bad time",
            "product_id": "bad symbol", ("missing", "product_id"): "no product_id", "$.changes[]": "bad change",
            "$.changes[][0]": "bad side", "$.changes[][1]": "not a decimal string",
            "$.changes[][2]": "not a decimal string", "type": "no 'type'"}
_NO_TOP = (None, None, None, None)
_NO_LEVEL = (None, None)
_TAKER_SIDE = {"buy": "sell", "sell": "buy"}  # Coinbase REST trades name the maker's side
_INVALID_PRODUCT = re.compile(r"^(\S+) is not a valid product")


class Coinbase(ExchangeListener):
    name = "coinbase"
    label = "Coinbase"
    url = "wss://ws-feed.exchange.coinbase.com"
    url_hosts = ("coinbase.com",)
    max_messages_per_s = 50.0
    rest_url = "https://api.exchange.coinbase.com"
    listing_path = "/products"
    colour = "#1652f0"
    quote_on_every_change = True  # the level2_batch book's top, on every change
    recordings = ('COINBASE.ws.28.0', 'COINBASE.0')
    no_data_hint = "subscribed; no book snapshot yet"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending: deque[str] = deque()       # products subscribed, not yet acknowledged, in order sent
        self._last_trade_id: dict[str, int] = {}  # product -> trade id of the last ticker
        self._behind: dict[str, int] = {}         # product -> a heartbeat's last_trade_id we had not seen
        self._books: dict[str, OrderBook] = {}    # product -> its level2 book on this connection
        self._tops: dict[str, tuple] = {}         # product -> the top last published
        self._dropped: set[str] = set()           # products unsubscribed on this connection (updates in flight)

    def on_connected(self):
        self._pending.clear()
        self._last_trade_id.clear()
        self._behind.clear()
        self._books.clear()
        self._tops.clear()
        self._dropped.clear()

    def subscribe_messages(self, symbols):
        # One message per product: Coinbase refuses a whole subscribe for one invalid product, and errors carry
        # no request id, so one product per message tells which one was refused.
        self._pending.extend(symbols)
        for symbol in symbols:  # its snapshot comes afresh; updates of an earlier subscription may still be in flight
            if self._books.pop(symbol, None) is not None:
                self._dropped.add(symbol)
            self._tops.pop(symbol, None)
        return [_request("subscribe", [symbol]) for symbol in symbols]

    def unsubscribe_messages(self, symbols):
        for symbol in symbols:
            self._dropped.add(symbol)
            self._books.pop(symbol, None)
            self._tops.pop(symbol, None)
        return [_request("unsubscribe", symbols)]

    def to_native(self, symbol):
        return symbol  # Coinbase product ids are already BASE-QUOTE

    def from_native(self, native):
        return native

    def parse(self, frame, received):
        # The hot types by their first bytes ('{"type":"l2update",...'), each decoded and type-checked by its schema
        # in one call; the rest (and these types in another key order) by orjson.
        head = frame[:20]
        if type(head) is str:
            head = head.encode()
        if head.startswith(b'{"type":"l2update"'):
            return self._l2update(frame)
        if head.startswith(b'{"type":"ticker"'):
            update = self._ticker(frame)
            return [update] if update is not None else []
        try:
            kind = _TYPE.decode(frame).type  # the type alone: the whole frame is checked, only this is built
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise BadFrame(schema_reason(error, _REASONS)) from None
        if kind not in _READ:
            if kind is None:
                raise BadFrame("no 'type'")
            return []  # other channels (match, last_match ...) carry no tick here
        if kind == "l2update" or kind == "ticker":  # another key order: the same schema
            return self._l2update(frame) if kind == "l2update" else [u for u in [self._ticker(frame)] if u is not None]
        message = orjson.loads(frame)
        if kind == "snapshot":
            return self._snapshot(message)
        if kind == "heartbeat":
            product = _product(message)
            return [Heartbeat(product), *self._missed_trades(product, message.get("last_trade_id"))]
        if kind == "subscriptions":
            products = set()
            for channel in message.get("channels") or ():
                if type(channel) is dict and channel.get("name") == "ticker":
                    products.update(p for p in channel.get("product_ids") or () if type(p) is str)
            self._pending = deque(p for p in self._pending if p not in products)
            return [Subscribed(tuple(sorted(products)))]
        if kind == "error":
            text = str(message.get("message") or "error")
            reason = str(message.get("reason") or "")
            invalid = _INVALID_PRODUCT.match(reason)
            if invalid:
                if invalid.group(1) in self._pending:
                    self._pending.remove(invalid.group(1))
                return [Rejected(invalid.group(1), reason)]
            full = f"{text}: {reason}" if reason else text
            if text == "Failed to subscribe" and self._pending:
                return [Rejected(self._pending.popleft(), full)]  # the oldest unanswered subscribe
            return [ExchangeError(full)]
        if kind is None:
            raise BadFrame("no 'type'")
        return []  # other channels (match, last_match ...) carry no tick here

    def _snapshot(self, message) -> list:
        """A level2 `snapshot`: the product's whole book, replacing any it had; its top if it changed (no time)."""
        product = _product(message)
        bids, asks = message["bids"], message["asks"]
        book = OrderBook()
        # One sort per side rather than one insertion per level: snapshots hold thousands of levels.
        book.replace(_side_levels(bids), _side_levels(asks))
        self._books[product] = book
        self._dropped.discard(product)
        return self._top(product, book, None)

    def _l2update(self, frame) -> list:
        """A level2 `l2update`: its changes applied to the product's book; the top, with the update's time, if it
        changed. Every change is checked (by the schema, then as decimal strings) before the book is touched."""
        try:
            message = _L2UPDATE.decode(frame)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise BadFrame(schema_reason(error, _REASONS)) from None
        product = symbol_str(message.product_id)
        changes = message.changes
        check_changes(changes)
        time = iso_to_ms(message.time)
        book = book_to_update(self._books, self._dropped, product, "l2update")
        if book is None:
            return []  # sent before our unsubscribe reached Coinbase
        book.apply(changes)  # checked above: ("buy" | "sell", price, size)
        return self._top(product, book, time)

    def _top(self, product, book, time) -> list:
        top = book.top()  # EMPTY for a side whose last level went: shown empty
        if top == self._tops.get(product, _NO_TOP):
            return []
        self._tops[product] = top
        return [Update(product, time, *top, None, None, None, None)]

    def _ticker(self, frame):
        """A `ticker`. Sent on subscribe without `time`, `side`, `trade_id` or `last_size` (a valid quote: time null);
        a product not trading yet sends zeros, which are not prices (an empty side, no last trade). `sequence` orders
        it: an older ticker never becomes the quote (TickBook). Once the product's level2 book is kept, only the
        trade is taken from it (its best bid/ask are as old as its trade); None if it then carries no trade."""
        try:
            message = _TICKER.decode(frame)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise BadFrame(schema_reason(error, _REASONS)) from None
        symbol = symbol_str(message.product_id)
        bid, ask, last, time = message.best_bid, message.best_ask, message.price, message.time
        bid_size, ask_size, last_size = message.best_bid_size, message.best_ask_size, message.last_size
        if not (priced(bid) and priced(ask) and priced(last) and (bid_size is None or bid_size in checked)
                and (ask_size is None or ask_size in checked) and (last_size is None or last_size in checked)):
            # not the common ticker: both sides and a trade, each string sent seen before (older feeds send no sizes)
            decimals(*filter(None, (bid, ask, last)))  # the prices sent ("" or null: an empty side, no trade yet)
            for size in (bid_size, ask_size, last_size):
                if size is not None:  # a size is a decimal string when sent, never ""
                    decimal_str(size)
            # "" or zeros: a side with no order is empty, and a last price of zero is no trade yet
            bid, bid_size = (EMPTY, EMPTY) if is_zero(bid) else (bid, bid_size)
            ask, ask_size = (EMPTY, EMPTY) if is_zero(ask) else (ask, ask_size)
            last, last_size = (None, None) if not last or is_zero(last) else (last, last_size)
        result = Update(  # symbol, time, bid, bid_size, ask, ask_size, last, last_size, last_side, sequence
            symbol, None if time is None else iso_to_ms(time), bid, bid_size, ask, ask_size, last, last_size,
            message.side if last else None, message.sequence)
        trade_id = message.trade_id
        if trade_id is not None and trade_id > self._last_trade_id.get(symbol, -1):
            # only once the ticker proved good, and never backwards: an older ticker opens no false gap
            self._last_trade_id[symbol] = trade_id
        if symbol in self._books:  # the book's top is newer than the ticker's best bid/ask
            return msgspec.structs.replace(result, bid=None, bid_size=None, ask=None, ask_size=None) if last else None
        return result

    def parse_listing(self, body):
        products = orjson.loads(body)
        return sorted(p["id"] for p in products if type(p) is dict and p.get("status", "online") == "online"
                      and not p.get("trading_disabled") and type(p.get("id")) is str and SYMBOL.fullmatch(p["id"]))

    def backfill_requests(self, symbol):
        return [(f"/products/{symbol}/trades", {"limit": "100"}), (f"/products/{symbol}/ticker", {})]

    def parse_backfill(self, symbol, path, body):
        answer = orjson.loads(body)
        if path.endswith("/ticker"):  # {"ask", "bid", "volume", "trade_id", "price", "size", "time"}
            # zeros, as on the websocket ticker, are a side with no order (a product not trading yet), and a price of
            # zeros no trade: its size (zeros or null) is not read, so it cannot throw the backfill away
            last = last_price(answer["price"])
            return [Update(symbol=symbol, time=iso_to_ms(answer["time"]), bid=book_price(answer["bid"]),
                           ask=book_price(answer["ask"]), last=last,
                           last_size=decimal_str(answer["size"]) if last else None)]
        # /trades, newest first: [{"time", "trade_id", "price", "size", "side"}]; the side is the maker's
        return [Update(symbol=symbol, time=iso_to_ms(trade["time"]), last=decimal_str(trade["price"]),
                       last_size=decimal_str(trade["size"]), last_side=_TAKER_SIDE[side_str(trade["side"])])
                for trade in reversed(answer)]

    def _missed_trades(self, product, last_trade_id):
        """A heartbeat names the last trade; if no ticker of it came by the next heartbeat, trades were missed."""
        seen = self._last_trade_id.get(product)
        if type(last_trade_id) is not int or seen is None or last_trade_id <= seen:
            self._behind.pop(product, None)
            return []
        noted = self._behind.get(product)
        if noted is None or seen >= noted:
            self._behind[product] = last_trade_id  # may be a ticker in flight: judge on the next heartbeat
            return []
        self._behind.pop(product)
        self._last_trade_id[product] = last_trade_id
        return [Gap(product, f"missed trades {seen + 1}..{last_trade_id} (heartbeat is ahead of the ticker)")]


def _request(kind, symbols):
    return orjson.dumps({"type": kind, "product_ids": list(symbols), "channels": CHANNELS}).decode()


def _side_levels(levels) -> dict:
    """A snapshot side [[price, size], ...] -> {Decimal(price): (price, size)}, checked as OrderBook.set checks.
    Written in whole-list steps (map, zip, join), not a Python loop per level: a snapshot holds thousands."""
    if type(levels) is not list or not set(map(type, levels)) <= {list}:
        raise BadFrame("bad level")
    try:
        prices, sizes = [level[0] for level in levels], [level[1] for level in levels]
    except IndexError:
        raise BadFrame("bad level") from None
    for strings in (prices, sizes):
        try:
            known = _DECIMALS.issuperset(strings)
        except TypeError:  # unhashable: a list or an object where a price belongs
            known = False
        if not known:
            for text in strings:
                decimal_str(text)
            if len(_DECIMALS) > _KEYS_MAX:
                _DECIMALS.clear()
            _DECIMALS.update(strings)
    joined = "".join(prices)
    if "e" in joined or "E" in joined:  # books quote plain decimals; an exponent could overflow the ordering
        raise BadFrame("not a plain decimal price")
    if len(_KEYS) > _KEYS_MAX:
        _KEYS.clear()
    keys = list(map(_KEYS.get, prices))
    if any_none(keys):
        keys = [key or _KEYS.setdefault(price, Decimal(price)) for key, price in zip(keys, prices)]
    side = dict(zip(keys, zip(prices, sizes)))
    for key, size in compress(zip(keys, sizes), map(str.startswith, sizes, repeat("0"))):
        # a zero size is no level (only a size starting with "0" can be zero); the last of a repeated price wins
        if not Decimal(size) and side.get(key, _NO_LEVEL)[1] == size:
            del side[key]
    return side


_KEYS: dict[str, Decimal] = {}  # price string -> its Decimal, whose hash is kept: a snapshot's levels recur
_KEYS_MAX = 100_000
_DECIMALS: set = set()  # strings decimal_str accepted (only str ever enters): a snapshot's levels recur


def _product(message) -> str:
    product = message.get("product_id")
    if product is None:
        raise BadFrame("no product_id")
    return symbol_str(product)  # Coinbase product ids are already BASE-QUOTE


class CoinbaseVenue(Venue):
    """Coinbase's side, for the local exchange: subscribe/unsubscribe, `subscriptions` replies, `error` for a
    product it does not list, and a `heartbeat` per product each second (shape as Coinbase documents it). The
    recorded `snapshot` and `l2update` frames go to `level2` and `level2_batch` subscribers alike (same schema; the
    recording's own channel was level2); a new level2 subscription to a product already played is answered with a
    `snapshot` of its book as played so far. A product not played yet gets none (its book is not known to be empty):
    its recorded snapshot answers instead."""
    _CHANNEL_OF = {"ticker": "ticker", "l2update": "level2", "snapshot": "level2", "match": "matches",
                   "last_match": "matches"}

    def __init__(self, listed=None, listing_body=None):
        super().__init__(listed, listing_body)
        self._last_trade_id: dict[str, int] = {}
        self._sequence: dict[str, int] = {}
        self._tickers: dict[str, dict] = {}   # product -> its latest ticker played
        self._trades: dict[str, deque] = {}   # product -> its recent trades, from the tickers played
        self._books: dict[str, OrderBook] = {}  # product -> its level2 book as played

    def route(self, frame):
        message = orjson.loads(frame)
        kind = message.get("type")
        if kind in ("subscriptions", "heartbeat"):
            return None  # the venue makes its own acknowledgements and heartbeats
        channel = self._CHANNEL_OF.get(kind)
        product = message.get("product_id")
        return f"{channel}:{product}" if channel and product else BROADCAST

    def symbol_of(self, key):
        return key.partition(":")[2]

    def wants(self, session, key):
        keys = session["keys"]
        return key in keys or (key.startswith("level2:") and "level2_batch:" + key[7:] in keys)

    @staticmethod
    def listing(body):
        return {product["id"] for product in orjson.loads(body) if product.get("status", "online") == "online"}

    def snapshot(self, product: str) -> str:
        """The book of `product` as played so far, in the shape of Coinbase's level2 `snapshot`."""
        book = self._books.get(product) or OrderBook()
        return orjson.dumps({"type": "snapshot", "product_id": product,
                             "bids": [[price, size] for price, size in book.levels("bid")],
                             "asks": [[price, size] for price, size in book.levels("ask")]}).decode()

    def on_message(self, session, text):
        try:
            message = orjson.loads(text)
            kind = message["type"]
            default_products = message.get("product_ids") or []
            wanted = set()
            for channel in message["channels"]:
                name, products = ((channel, default_products) if type(channel) is str
                                  else (channel["name"], channel.get("product_ids") or default_products))
                if not products:
                    return [_error("Failed to subscribe", f"You must specify at least one product ID for channel {name}")]
                for product in products:
                    if product not in self.listed:
                        return [_error("Failed to subscribe", f"{product} is not a valid product")]
                    wanted.add(f"{name}:{product}")
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return [_error("Failed to subscribe", "malformed subscribe message")]
        snapshots = []
        if kind == "subscribe":
            new = wanted - session["keys"]
            session["keys"] |= wanted
            books = {key.partition(":")[2] for key in new if key.startswith(("level2:", "level2_batch:"))}
            snapshots = [self.snapshot(product) for product in sorted(books) if product in self._books]
        elif kind == "unsubscribe":
            session["keys"] -= wanted
        else:
            return [_error("Failed to subscribe", f"{kind} is not a valid type")]
        channels: dict[str, list] = {}
        for key in sorted(session["keys"]):
            name, _, product = key.partition(":")
            channels.setdefault(name, []).append(product)
        return [orjson.dumps({"type": "subscriptions", "channels": [
            {"name": name, "product_ids": products} for name, products in channels.items()]}).decode(), *snapshots]

    def error_frame(self, text):
        return _error(text or "Internal error", "")

    def refusal(self, session, text):
        if '"subscribe"' not in text:
            return None
        return [_error("Failed to subscribe", "Subscription refused: too many requests")]

    def next_pass(self, frame, passes):
        if '"sequence"' not in frame and '"trade_id"' not in frame:
            return frame
        message = orjson.loads(frame)
        return orjson.dumps(message).decode() if renumbered(message, ("sequence", "trade_id"), passes) else frame

    def observe(self, frame):
        # Only tickers move last_trade_id: a ticker subscriber then misses nothing unless a fault withholds it.
        if frame.startswith(('{"type":"l2update"', '{"type":"snapshot"')):
            message = orjson.loads(frame)
            product = message["product_id"]
            if message["type"] == "snapshot":  # the book starts again (the recording's start, each loop)
                book = self._books[product] = OrderBook()
                for side, levels in (("bid", message["bids"]), ("ask", message["asks"])):
                    for price, size, *_ in levels:
                        book.set(side, price, size)
            elif product in self._books:
                book = self._books[product]
                for side, price, size in message["changes"]:
                    book.set(BOOK_SIDE[side], price, size)
        elif frame.startswith('{"type":"ticker"'):
            message = orjson.loads(frame)
            product = message.get("product_id")
            self._last_trade_id[product] = message.get("trade_id", 0)
            self._sequence[product] = message.get("sequence", 0)
            self._tickers[product] = message
            self._trades.setdefault(product, deque(maxlen=100)).append(message)

    def rest(self, path, query):
        """`/products` (the recorded listing), `/products/{id}/ticker` and `/products/{id}/trades` in the shapes
        Coinbase documents, built from what was played: the ticker's best bid/ask is the played book's top where a
        level2 book was played (as Coinbase answers from its book, never from the last trade's ticker), "0" for an
        empty side; the last trade and volume from the tickers."""
        if path == "/products":
            return (200, self.listing_body) if self.listing_body else None
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "products" or parts[1] not in self._tickers:
            return (404, '{"message":"NotFound"}') if len(parts) == 3 else None
        product, kind = parts[1], parts[2]
        if kind == "ticker":
            t = self._tickers[product]
            bid, ask = t.get("best_bid"), t.get("best_ask")
            if product in self._books:
                bid, _, ask, _ = self._books[product].top()
                bid, ask = bid or "0", ask or "0"
            return 200, orjson.dumps({"ask": ask, "bid": bid, "volume": t.get("volume_24h"),
                                      "trade_id": t.get("trade_id"), "price": t.get("price"),
                                      "size": t.get("last_size"), "time": t.get("time")}).decode()
        if kind == "trades":
            return 200, orjson.dumps([{"time": t.get("time"), "trade_id": t.get("trade_id"), "price": t.get("price"),
                                       "size": t.get("last_size"), "side": _TAKER_SIDE.get(t.get("side"), "buy")}
                                      for t in reversed(self._trades[product])]).decode()
        return None

    def heartbeats(self, session, now):
        time = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return [orjson.dumps({"type": "heartbeat", "sequence": self._sequence.get(product, 0),
                              "last_trade_id": self._last_trade_id.get(product, 0), "product_id": product,
                              "time": time}).decode()
                for name, _, product in (key.partition(":") for key in sorted(session["keys"]))
                if name == "heartbeat"]


def _error(message, reason):
    error = {"type": "error", "message": message, "reason": reason} if reason else {"type": "error", "message": message}
    return orjson.dumps(error).decode()


Coinbase.venue = CoinbaseVenue
