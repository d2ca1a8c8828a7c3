"""Gemini market data v2: the `l2` subscription (`l2_updates` order book changes, `trade` messages, `heartbeat`).

Protocol: https://docs.gemini.com/websocket/market-data/v2/about (subscribe, l2_updates, trade),
https://docs.gemini.com/websocket/market-data/v2/level-2-data (initial response: full book + recent trades),
https://docs.gemini.com/websocket/market-data/v2/unsubscribe, https://docs.gemini.com/websocket/overview/rate-limits,
https://developer.gemini.com/websocket/archived/v2.md (v2 is archived but still served; the new API is at
wss://ws.gemini.com), REST: https://docs.gemini.com/rest/market-data (/v1/symbols, /v1/symbols/details/{symbol},
/v1/pubticker/{symbol}, /v1/trades/{symbol}).
- The first `l2_updates` of a symbol after subscribing is its whole book and carries `trades` (the last 50 or so,
  newest first: history, not new trades) and `auction_events`; later ones carry only `changes`
  ([side "buy"/"sell", price, quantity], quantity "0" removes the level). No message of the l2 channel carries a
  time except trades, so a book update has time=None.
- There is no subscribe acknowledgement: the snapshot is the answer. A request naming no pair Gemini lists is answered
  `{"result":"error","reason":"NoValidTradingPairs"}`, with no id and no symbol. What Gemini does with an unlisted
  pair beside valid ones is not documented: taken as ignored (the venue does so), hence `no_data_hint`.
- `{"type":"heartbeat","timestamp":ms}` every 5 s (the recording's pace) keeps a quiet market quiet, not stale.
- Top of book: from the kept l2 book, on every change. A side whose last level goes is empty. A snapshot (after a
  reconnect too) replaces the book before its trade is published, so the trade is shown with the book it belongs to.
  Trades are ordered by `event_id`: an older one never becomes the last trade (TickBook).
- v2 has no sequence numbers: a book that crosses after an update is the one sign of a missed update. The levels
  the update crossed are stale; they are dropped and the market gets a gap, rather than publishing a crossed top.
- Rate limit: "we recommend that you do not exceed 1 request per symbol per minute" (the older
  https://docs.gemini.com/websocket-api/ also said "we limit requests to 12 requests per minute", which we read as
  connections, one per symbol in v1). No limit on messages within a connection is published: a connection
  subscribes all its pairs in one message, and later messages are paced to one a second.
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Optional

import orjson

from .base import ExchangeListener
from .book import BOOK_SIDE, OrderBook, book_change
from .tick import (SYMBOL, BadFrame, ExchangeError, Gap, Heartbeat, Rejected, Subscribed, Update, decimal_str,
                   epoch_ms, side_str, split_by_quote, symbol_str)
from .venue import BROADCAST, Venue, renumbered

CHANNEL = "l2"
NO_VALID_PAIRS = "NoValidTradingPairs"
_NO_TOP = (None, None, None, None)
# Quote currencies Gemini uses, longest first: the fallback split of a native symbol when no listing names its
# base and quote (normalizing a recording, a pair nobody subscribed to). "BTCGUSD" is BTC-GUSD, not BTCG-USD.
QUOTES = ("GUSD", "USDT", "USDC", "USD", "DAI", "EUR", "GBP", "SGD", "BTC", "ETH", "LTC", "BCH")


def split_native(native: str) -> Optional[tuple[str, str]]:
    """'BTCUSD' -> ('BTC', 'USD') by Gemini's quote currencies, longest first; None if none fits."""
    return split_by_quote(native, QUOTES)


class Gemini(ExchangeListener):
    name = "gemini"
    label = "Gemini"
    url = "wss://api.gemini.com/v2/marketdata"
    url_hosts = ("gemini.com",)
    max_messages_per_s = 1.0  # Gemini publishes only "1 request per symbol per minute"; we send few, paced
    rest_url = "https://api.gemini.com"
    listing_path = "/v1/symbols"
    colour = "#0097a7"
    recordings = ("GEMINI.ws.1.0",)
    no_data_hint = ("subscribed; no book yet. Gemini ignores a pair it does not list when the same request names a "
                    "valid one: check the pair is listed on Gemini")

    def __init__(self, *args, **kwargs):
        self._unified: dict[str, str] = {}          # "BTCUSD" -> "BTC-USD": subscriptions and the listing
        self._books: dict[str, OrderBook] = {}      # native -> its book on this connection
        self._tops: dict[str, tuple] = {}           # native -> the top last published
        self._pending: deque[list] = deque()        # natives of each subscribe not yet answered, in order sent
        self._awaiting: set[str] = set()            # natives whose next l2_updates is their snapshot
        self._dropped: set[str] = set()             # natives unsubscribed on this connection (updates in flight)
        self._last_trade: dict[str, tuple] = {}     # native -> (timestamp, event_id) of the newest trade published
        super().__init__(*args, **kwargs)

    def on_connected(self):
        # A new connection sends every book afresh; the newest trade seen is kept, so the snapshot's history of a
        # reconnect republishes no trade already published.
        self._books.clear()
        self._tops.clear()
        self._pending.clear()
        self._awaiting.clear()
        self._dropped.clear()

    def subscribe_messages(self, symbols):
        natives = [self.to_native(symbol) for symbol in symbols]
        self._pending.append(list(natives))
        for native in natives:
            self._awaiting.add(native)
            self._dropped.discard(native)
            self._books.pop(native, None)
            self._tops.pop(native, None)
        return [_request("subscribe", natives)]

    def unsubscribe_messages(self, symbols):
        natives = [self.to_native(symbol) for symbol in symbols]
        for native in natives:
            self._dropped.add(native)
            self._awaiting.discard(native)
            self._books.pop(native, None)
            self._tops.pop(native, None)
            for request in self._pending:
                if native in request:
                    request.remove(native)
        self._pending = deque(request for request in self._pending if request)
        return [_request("unsubscribe", natives)]

    def to_native(self, symbol):
        base, _, quote = symbol_str(symbol).partition("-")
        native = base + quote
        self._unified[native] = symbol
        return native

    def from_native(self, native):
        unified = self._unified.get(native)
        if unified is not None:
            return unified
        if type(native) is not str:
            raise BadFrame("no symbol")
        split = split_native(native)
        if split is None:
            raise BadFrame(f"unknown symbol {native[:30]!r}")
        return symbol_str(f"{split[0]}-{split[1]}")

    def parse(self, frame, received):
        message = orjson.loads(frame)
        if type(message) is not dict:
            raise BadFrame("not a JSON object")
        kind = message.get("type")
        if kind == "l2_updates":
            return self._l2_updates(message)
        if kind == "trade":
            native = message.get("symbol")
            symbol = self.from_native(native)
            key, update = _trade(symbol, message)
            if key > self._last_trade.get(native, (-1, -1)):
                self._last_trade[native] = key
            return [update]
        if kind == "heartbeat":
            return [Heartbeat()]
        if message.get("result") == "error":
            return self._error(message)
        if kind is None:
            raise BadFrame("no 'type'")
        return []  # candles, mark_price, funding_amount ...: no tick here

    def _l2_updates(self, message) -> list:
        native = message.get("symbol")
        symbol = self.from_native(native)
        changes = message["changes"]
        if type(changes) is not list:
            raise BadFrame("bad 'changes'")
        levels = [book_change(change) for change in changes]  # all checked before the book is touched
        snapshot = "trades" in message or native in self._awaiting
        newest = _newest_trade(symbol, message["trades"]) if "trades" in message else None
        items = []
        if snapshot:
            if native in self._awaiting:
                self._answered(native)
                items.append(Subscribed((symbol,)))
            book = self._books[native] = OrderBook()
        else:
            book = self._books.get(native)
            if book is None:
                if native in self._dropped:
                    return []  # sent before our unsubscribe reached Gemini
                raise BadFrame("l2 update before its snapshot")
        for side, price, size in levels:
            book.set(side, price, size)
        if book.crossed():
            dropped = _uncross(book, levels)
            if dropped:
                items.append(Gap(symbol, f"book crossed: an update was missed; {dropped} stale level(s) dropped"))
        top = book.top()  # EMPTY for a side whose last level went: shown empty
        if top != self._tops.get(native, _NO_TOP):
            self._tops[native] = top
            items.append(Update(symbol, None, *top))
        # The book first, then the snapshot's trade: a trade is merged with the book it belongs to, never with the
        # one from before a reconnect.
        if newest is not None and newest[0] > self._last_trade.get(native, (-1, -1)):
            self._last_trade[native] = newest[0]
            items.append(newest[1])  # the market's last trade, with its own time: history, published once
        return items

    def _answered(self, native: str) -> None:
        """A snapshot answers its subscribe, and every older one too (Gemini answers in order: an older request
        with no snapshot and no error by now had a pair Gemini ignored)."""
        self._awaiting.discard(native)
        for index, request in enumerate(self._pending):
            if native in request:
                for _ in range(index):
                    self._pending.popleft()
                request.remove(native)
                if not request:
                    self._pending.popleft()
                return

    def _error(self, message) -> list:
        reason = str(message.get("reason") or "error")
        detail = message.get("message")
        text = f"{reason}: {detail}" if detail else reason
        if reason == NO_VALID_PAIRS and self._pending:
            natives = self._pending.popleft()  # the oldest unanswered subscribe named no pair Gemini lists
            self._awaiting.difference_update(natives)
            return [Rejected(self.from_native(native), text) for native in natives]
        return [ExchangeError(text)]

    # REST ------------------------------------------------------------------------------------------------------
    def parse_listing(self, body):
        """`/v1/symbols` (["btcusd", ...]: split by known quote currencies, as the list names no base and quote) or
        `/v1/symbols/details/{symbol}` bodies (one, or a list: exact base_currency/quote_currency, status open)."""
        answer = orjson.loads(body)
        entries = answer if type(answer) is list else [answer]
        listed = []
        for entry in entries:
            if type(entry) is str:
                native = entry.upper()
                split = split_native(native)
            elif type(entry) is dict and entry.get("status", "open") == "open" and type(entry.get("symbol")) is str:
                native = entry["symbol"].upper()
                base, quote = entry.get("base_currency"), entry.get("quote_currency")
                split = (base, quote) if type(base) is str and type(quote) is str else None
            else:
                continue
            if split is None:
                continue  # perpetuals ("BTCGUSDPERP") and anything else that is not BASE+QUOTE
            symbol = f"{split[0].upper()}-{split[1].upper()}"
            if SYMBOL.fullmatch(symbol) and split[0].upper() + split[1].upper() == native:
                self._unified[native] = symbol  # the listing is the exact map
                listed.append(symbol)
        return sorted(set(listed))

    def backfill_requests(self, symbol):
        native = self.to_native(symbol)
        return [(f"/v1/trades/{native}", {"limit_trades": "100"}), (f"/v1/pubticker/{native}", {})]

    def parse_backfill(self, symbol, path, body):
        answer = orjson.loads(body)
        if "/pubticker/" in path:
            # {"bid", "ask", "last", "volume": {BASE, QUOTE, "timestamp"}}: the timestamp closes the volume window,
            # it is not when the quote was made, so the tick has no exchange time.
            last = answer.get("last")
            return [Update(symbol, None, decimal_str(answer["bid"]), None, decimal_str(answer["ask"]), None,
                           None if last is None else decimal_str(last))]
        # /v1/trades, newest first: [{"timestamp", "timestampms", "tid", "price", "amount", "exchange", "type"}];
        # type is the taker's side ("buy" / "sell"), or "auction" / "block", which have none.
        return [Update(symbol, epoch_ms(trade["timestampms"]), last=decimal_str(trade["price"]),
                       last_size=decimal_str(trade["amount"]),
                       last_side=trade["type"] if trade.get("type") in ("buy", "sell") else None)
                for trade in reversed(answer)]


def _request(kind, natives):
    return orjson.dumps({"type": kind, "subscriptions": [{"name": CHANNEL, "symbols": list(natives)}]}).decode()


def _trade(symbol, trade) -> tuple[tuple, Update]:
    """A Gemini trade (a `trade` message, or one of a snapshot's `trades`): its (timestamp, event_id) and its Update;
    `side` is the taker's."""
    if type(trade) is not dict:
        raise BadFrame("bad trade")
    time = epoch_ms(trade["timestamp"])
    event_id = trade.get("event_id")
    key = (time, event_id if type(event_id) is int else 0)
    # event_id orders trades: an older one never becomes the last trade (TickBook drops it)
    return key, Update(symbol, time, None, None, None, None, decimal_str(trade["price"]),
                       decimal_str(trade["quantity"]), side_str(trade["side"]), key[1] or None)


def _newest_trade(symbol, trades) -> Optional[tuple[tuple, Update]]:
    """The newest of a snapshot's trades (Gemini sends them newest first, though not strictly ordered)."""
    if type(trades) is not list:
        raise BadFrame("bad 'trades'")
    newest = None
    for trade in trades:
        parsed = _trade(symbol, trade)
        if newest is None or parsed[0] > newest[0]:
            newest = parsed
    return newest


def _uncross(book: OrderBook, levels: list) -> int:
    """Drop the best levels this frame did not write while the book is crossed: they are what a missed update
    removed. Levels the frame itself wrote stay (a crossed snapshot is Gemini's word). Returns how many went."""
    touched = {"bid": set(), "ask": set()}
    for side, price, _ in levels:
        touched[side].add(Decimal(price))
    dropped = 0
    while book.crossed():
        if book.asks.peekitem(0)[0] not in touched["ask"]:
            book.asks.popitem(0)
        elif book.bids.peekitem(-1)[0] not in touched["bid"]:
            book.bids.popitem(-1)
        else:
            break
        dropped += 1
    return dropped


class GeminiVenue(Venue):
    """Gemini's side, for the local exchange: `subscribe`/`unsubscribe` with `subscriptions`, a full-book
    `l2_updates` (with recent trades) answering each new l2 subscription, built from the frames played so far,
    `NoValidTradingPairs` for a request naming no listed pair, a heartbeat each second (Gemini: every 5 s; the
    simulator's tick is 1 s), and the REST ticker and trades from what was played."""

    path = "/v2/marketdata"

    def __init__(self, listed=None, listing_body=None):
        super().__init__(listed, listing_body)
        self._books: dict[str, OrderBook] = {}  # native -> its book as played
        self._trades: dict[str, deque] = {}     # native -> its recent trades played, oldest first (Gemini's dicts)

    def route(self, frame):
        message = orjson.loads(frame)
        kind = message.get("type")
        if kind == "heartbeat" or message.get("result") == "error":
            return None  # the venue makes its own heartbeats and errors
        symbol = message.get("symbol")
        if kind in ("l2_updates", "trade") and type(symbol) is str:
            return f"{CHANNEL}:{symbol}"
        return BROADCAST

    def symbol_of(self, key):
        return key.partition(":")[2]

    @staticmethod
    def listing(body):
        answer = orjson.loads(body)
        entries = answer if type(answer) is list else [answer]
        return {(entry if type(entry) is str else entry.get("symbol", "")).upper() for entry in entries}

    def on_message(self, session, text):
        try:
            message = orjson.loads(text)
            kind = message["type"]
            wanted = []
            for subscription in message["subscriptions"]:
                name, symbols = subscription["name"], subscription["symbols"]
                if type(name) is not str or type(symbols) is not list:
                    raise TypeError
                wanted.extend(f"{name}:{symbol}" for symbol in symbols if type(symbol) is str and symbol in self.listed)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return [_error("InvalidJson")]
        if kind not in ("subscribe", "unsubscribe"):
            return [_error("InvalidMessageType")]
        if not wanted:
            return [_error(NO_VALID_PAIRS)]
        if kind == "unsubscribe":
            session["keys"].difference_update(wanted)
            return []
        new = [key for key in dict.fromkeys(wanted) if key not in session["keys"]]
        session["keys"].update(new)
        # A book not played yet is not known to be empty: its recorded first message (a snapshot) answers instead.
        return [self.snapshot(native) for native in (self.symbol_of(key) for key in new if key.startswith(CHANNEL + ":"))
                if native in self._books]

    def snapshot(self, native: str) -> str:
        """The whole book and recent trades of `native` as played so far, in the shape of Gemini's first message."""
        book = self._books.get(native) or OrderBook()
        changes = [["buy", price, size] for price, size in reversed(book.bids.values())]
        changes += [["sell", price, size] for price, size in book.asks.values()]
        trades = list(reversed(self._trades.get(native, ())))
        return orjson.dumps({"type": "l2_updates", "symbol": native, "changes": changes, "trades": trades,
                             "auction_events": []}).decode()

    def error_frame(self, text):
        return _error(text or "InternalError")

    def refusal(self, session, text):
        if '"subscribe"' not in text:
            return None
        return [_error(NO_VALID_PAIRS)]  # the one refusal of a subscribe Gemini is known to send

    def next_pass(self, frame, passes):
        if '"event_id"' not in frame:
            return frame
        message = orjson.loads(frame)
        if type(message) is not dict:
            return frame
        trades = message.get("trades") if message.get("type") == "l2_updates" else [message]
        changed = [renumbered(trade, ("event_id",), passes) for trade in trades or () if type(trade) is dict]
        return orjson.dumps(message).decode() if any(changed) else frame

    def observe(self, frame):
        if frame.startswith('{"type":"l2_updates"'):
            message = orjson.loads(frame)
            native = message["symbol"]
            if "trades" in message:  # a snapshot: the book starts again (the recording's start, each loop)
                self._books[native] = OrderBook()
                self._trades[native] = deque(reversed(message["trades"]), maxlen=50)
            book = self._books.setdefault(native, OrderBook())
            for side, price, size in message["changes"]:
                book.set(BOOK_SIDE[side], price, size)
        elif frame.startswith('{"type":"trade"'):
            message = orjson.loads(frame)
            self._trades.setdefault(message["symbol"], deque(maxlen=50)).append(message)

    def rest(self, path, query):
        """`/v1/symbols` (a recorded listing, if any), `/v1/pubticker/{symbol}` and `/v1/trades/{symbol}` in the shapes
        Gemini documents, built from the frames played so far."""
        if path == "/v1/symbols":
            return (200, self.listing_body) if self.listing_body else None
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "v1" or parts[1] not in ("pubticker", "trades"):
            return None
        native = parts[2].upper()
        if native not in self._books and native not in self._trades:
            return 400, _error("InvalidSymbol", f"Supplied value '{parts[2]}' is not a valid symbol")
        trades = list(self._trades.get(native, ()))
        if parts[1] == "trades":
            limit = query.get("limit_trades", "50")
            limit = min(int(limit), 500) if limit.isdigit() else 50
            return 200, orjson.dumps([
                {"timestamp": trade["timestamp"] // 1000, "timestampms": trade["timestamp"],
                 "tid": trade.get("event_id"), "price": trade["price"], "amount": trade["quantity"],
                 "exchange": "gemini", "type": trade["side"]}
                for trade in reversed(trades[-limit:]) if limit]).decode()
        bid, _, ask, _ = (self._books.get(native) or OrderBook()).top()
        bid, ask = bid or None, ask or None  # an empty side
        base, quote = split_native(native) or (native, "")
        volume = {base: str(sum((Decimal(t["quantity"]) for t in trades), Decimal(0))),
                  quote: str(sum((Decimal(t["quantity"]) * Decimal(t["price"]) for t in trades), Decimal(0))),
                  "timestamp": trades[-1]["timestamp"] if trades else 0}
        return 200, orjson.dumps({"bid": bid, "ask": ask, "volume": volume,
                                  "last": trades[-1]["price"] if trades else None}).decode()

    def heartbeats(self, session, now):
        return [orjson.dumps({"type": "heartbeat", "timestamp": int(now * 1000)}).decode()]


def _error(reason, message=""):
    error = {"result": "error", "reason": reason}
    if message:
        error["message"] = message
    return orjson.dumps(error).decode()


Gemini.venue = GeminiVenue
