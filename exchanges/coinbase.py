"""Coinbase Exchange public websocket feed: `ticker` (best bid/ask + last trade in one message) and `heartbeat`.

Protocol: https://docs.cdp.coinbase.com/exchange/websocket-feed/overview (ticker, heartbeat, subscriptions, error),
https://docs.cdp.coinbase.com/exchange/websocket-feed/channels (the channels and their messages).
- Top of book: `ticker`, sent when a trade happens, not on every change of the book (quote_on_every_change False:
  the spread counts its quote at its own time only). Sent on subscribe without `time`, `side`, `trade_id` and
  `last_size`; a product not trading yet sends zeros.
- Order: messages may arrive out of order; every message carries the product's `sequence`. A ticker older than one
  shown is dropped (TickBook) and its trade id never moves the heartbeat's check back (no false gap).
"""
from __future__ import annotations

import re
from collections import deque
from datetime import datetime, timezone

import orjson

from .base import ExchangeListener
from .tick import (EMPTY, SYMBOL, BadFrame, ExchangeError, Gap, Heartbeat, Rejected, Subscribed, Update,
                   book_price, decimal_str, iso_to_ms, last_price, optional_decimal, side_str, symbol_str)
from .venue import BROADCAST, Venue, renumbered

CHANNELS = ["ticker", "heartbeat"]
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
    quote_on_every_change = False  # `ticker` is sent when a trade happens
    recordings = ('COINBASE.ws.28.0', 'COINBASE.0')
    no_data_hint = "subscribed; no ticker yet (Coinbase sends one when a trade happens)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending: deque[str] = deque()       # products subscribed, not yet acknowledged, in order sent
        self._last_trade_id: dict[str, int] = {}  # product -> trade id of the last ticker
        self._behind: dict[str, int] = {}         # product -> a heartbeat's last_trade_id we had not seen

    def on_connected(self):
        self._pending.clear()
        self._last_trade_id.clear()
        self._behind.clear()

    def subscribe_messages(self, symbols):
        # One message per product: Coinbase refuses a whole subscribe for one invalid product, and errors carry
        # no request id, so one product per message tells which one was refused.
        self._pending.extend(symbols)
        return [_request("subscribe", [symbol]) for symbol in symbols]

    def unsubscribe_messages(self, symbols):
        return [_request("unsubscribe", symbols)]

    def to_native(self, symbol):
        return symbol  # Coinbase product ids are already BASE-QUOTE

    def from_native(self, native):
        return native

    def parse(self, frame, received):
        message = orjson.loads(frame)
        if type(message) is not dict:
            raise BadFrame("not a JSON object")
        kind = message.get("type")
        if kind == "ticker":
            return [self._ticker(message)]
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
        return []  # other channels (l2update, match, snapshot ...) carry no tick here


    def _ticker(self, message) -> Update:
        """A `ticker`. Sent on subscribe without `time`, `side`, `trade_id` or `last_size` (a valid quote: time null);
        a product not trading yet sends zeros, which are not prices (an empty side, no last trade). `sequence` orders
        it: an older ticker never becomes the quote (TickBook)."""
        time, side, sequence = message.get("time"), message.get("side"), message.get("sequence")
        bid, ask, last = book_price(message["best_bid"]), book_price(message["best_ask"]), last_price(message["price"])
        update = Update(  # positional: symbol, time, bid, bid_size, ask, ask_size, last, last_size, last_side, sequence
            _product(message), None if time is None else iso_to_ms(time),
            bid, optional_decimal(message.get("best_bid_size")) if bid else EMPTY,
            ask, optional_decimal(message.get("best_ask_size")) if ask else EMPTY,
            last, optional_decimal(message.get("last_size")) if last else None,
            side_str(side) if side is not None and last else None,
            sequence if type(sequence) is int else None)
        trade_id = message.get("trade_id")
        if type(trade_id) is int and trade_id > self._last_trade_id.get(update.symbol, -1):
            # only once the ticker proved good, and never backwards: an older ticker opens no false gap
            self._last_trade_id[update.symbol] = trade_id
        return update

    def parse_listing(self, body):
        products = orjson.loads(body)
        return sorted(p["id"] for p in products if type(p) is dict and p.get("status", "online") == "online"
                      and not p.get("trading_disabled") and type(p.get("id")) is str and SYMBOL.fullmatch(p["id"]))

    def backfill_requests(self, symbol):
        return [(f"/products/{symbol}/trades", {"limit": "100"}), (f"/products/{symbol}/ticker", {})]

    def parse_backfill(self, symbol, path, body):
        answer = orjson.loads(body)
        if path.endswith("/ticker"):  # {"ask", "bid", "volume", "trade_id", "price", "size", "time"}
            return [Update(symbol=symbol, time=iso_to_ms(answer["time"]), bid=decimal_str(answer["bid"]),
                           ask=decimal_str(answer["ask"]), last=decimal_str(answer["price"]),
                           last_size=decimal_str(answer["size"]))]
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


def _product(message) -> str:
    product = message.get("product_id")
    if product is None:
        raise BadFrame("no product_id")
    return symbol_str(product)  # Coinbase product ids are already BASE-QUOTE


class CoinbaseVenue(Venue):
    """Coinbase's side, for the local exchange: subscribe/unsubscribe, `subscriptions` replies, `error` for a
    product it does not list, and a `heartbeat` per product each second (shape as Coinbase documents it)."""
    _CHANNEL_OF = {"ticker": "ticker", "l2update": "level2", "snapshot": "level2", "match": "matches",
                   "last_match": "matches"}

    def __init__(self, listed=None, listing_body=None):
        super().__init__(listed, listing_body)
        self._last_trade_id: dict[str, int] = {}
        self._sequence: dict[str, int] = {}
        self._tickers: dict[str, dict] = {}   # product -> its latest ticker played
        self._trades: dict[str, deque] = {}   # product -> its recent trades, from the tickers played

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

    @staticmethod
    def listing(body):
        return {product["id"] for product in orjson.loads(body) if product.get("status", "online") == "online"}

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
        if kind == "subscribe":
            session["keys"] |= wanted
        elif kind == "unsubscribe":
            session["keys"] -= wanted
        else:
            return [_error("Failed to subscribe", f"{kind} is not a valid type")]
        channels: dict[str, list] = {}
        for key in sorted(session["keys"]):
            name, _, product = key.partition(":")
            channels.setdefault(name, []).append(product)
        return [orjson.dumps({"type": "subscriptions", "channels": [
            {"name": name, "product_ids": products} for name, products in channels.items()]}).decode()]

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
        if frame.startswith('{"type":"ticker"'):
            message = orjson.loads(frame)
            product = message.get("product_id")
            self._last_trade_id[product] = message.get("trade_id", 0)
            self._sequence[product] = message.get("sequence", 0)
            self._tickers[product] = message
            self._trades.setdefault(product, deque(maxlen=100)).append(message)

    def rest(self, path, query):
        """`/products` (the recorded listing), `/products/{id}/ticker` and `/products/{id}/trades` in the shapes
        Coinbase documents, built from the tickers played so far."""
        if path == "/products":
            return (200, self.listing_body) if self.listing_body else None
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "products" or parts[1] not in self._tickers:
            return (404, '{"message":"NotFound"}') if len(parts) == 3 else None
        product, kind = parts[1], parts[2]
        if kind == "ticker":
            t = self._tickers[product]
            return 200, orjson.dumps({"ask": t.get("best_ask"), "bid": t.get("best_bid"), "volume": t.get("volume_24h"),
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
