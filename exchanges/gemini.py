"""Gemini: the new WebSocket API (`{symbol}@bookTicker`, `{symbol}@trade`), and market data v2 (`l2`) while Gemini
still serves it. The URL picks the API: `wss://ws.gemini.com` (the default) speaks the new one; a URL whose path is
`/v2/marketdata` (`GEMINI_WS_URL=wss://api.gemini.com/v2/marketdata`) speaks v2. One exchange either way
(`gemini:BTC-USD`), so history and watchlists do not change with the API.

The new WebSocket API. Pages: https://developer.gemini.com/websocket/introduction (wss://ws.gemini.com, version
0.10.7; its one connection parameter, `snapshot`, is for depth streams only),
https://developer.gemini.com/websocket/streams (Book Ticker),
https://developer.gemini.com/websocket/message-format (requests, replies, error codes),
https://developer.gemini.com/trading/websocket/playground (SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS take an
array of stream names), https://developer.gemini.com/websocket/archived/v2.md (v2 archived: "replaced by the new
WebSocket API"). Gemini's Changelog (linked from every page) is not among the stored copies we could read: the
archival is taken from the archived pages themselves.
- Requests `{"id", "method", "params"}`; a reply `{"id", "status": 200, "result"}`, or
  `{"id", "status", "error": {"code", "msg"}}` (codes -1000 internal, -1002 authentication, -1003 rate limit, -1013
  invalid parameters, -1020 unsupported operation). We send `{"id": "1", "method": "SUBSCRIBE", "params":
  ["btcusd@bookTicker", "btcusd@trade", ...]}`; a 200 reply acknowledges that request's pairs, an error reply
  refuses them in Gemini's words ("Gemini error -1013: Invalid parameters"). What `result` holds for a subscribe is
  not documented: any is taken.
- Book Ticker `{"u": 1751505576085, "E": 1751508438600117161, "s": "btcusd", "b": "45000.50", "B": "1.25000000",
  "a": "45001.00", "A": "0.75000000"}`: u the update id, E the event time in nanoseconds, prices and quantities
  decimal strings (kept as sent). Real-time on every change of the best bid or ask (quote_on_every_change). The
  tick's time is E // 1_000_000 (ns to epoch ms, integer division, no float). `u` orders quotes: an older one is
  dropped (TickBook).
- Empty side: not documented. A price that is absent, null, "" or zero is taken as an empty side (shown empty, never
  as its last price): Gemini's streams page says of its order events that "fields with empty or zero values may be
  omitted", and zeros are not prices.
- Trade Stream `{symbol}@trade`: the stored copies of the docs did not let us read that section (only its name in
  the page index). Its shape is Gemini's own, from https://github.com/gemini/developer-platform:
  conformance/websocket/events/trade.json `{"e":"trade","E":...,"s":"btcusd","t":123456789,"p":"1000.00",
  "q":"0.25","m":true}` and the Go SDK's TradeEvent (packages/sdk-go/websocket/models.go: `t` TradeID, `m`
  BuyerIsMaker). So `m` true means the taker sold. `t` orders trades. E is ns on the Book Ticker, but the
  conformance fixture's trade E (1700000000000) is ms-sized: ns_to_ms reads the unit from the size (the two differ
  by 10**6, so no time of this century is ambiguous), and a value fitting neither is a bad frame.
- Unlisted pair: how the new API answers a stream of a pair it does not list is not documented (the streams page's
  UnknownInstrument, "Trading pair does not exist", is an order rejection reason). An error reply to our request
  refuses its pairs in Gemini's words; if none comes, the panel says so after a while (`no_data_hint`), as for
  Binance.
- Liveness: no heartbeat stream is documented (a `ping` method is), so websocket pongs count (pong_is_liveness).
- Limits: not published for market data subscriptions (`conninfo` reports them; -1003 is the rate-limit error). A
  connection subscribes all its pairs in one request; later requests are paced to one a second.
- Replay: the recordings are v2, so the local exchange derives these frames from them (GeminiVenue says how).

Market data v2 (archived, still served). Pages: https://docs.gemini.com/websocket/market-data/v2/about (subscribe,
l2_updates, trade), https://docs.gemini.com/websocket/market-data/v2/level-2-data (initial response: full book + recent
trades), https://docs.gemini.com/websocket/market-data/v2/unsubscribe, https://docs.gemini.com/websocket/overview/rate-limits,
https://developer.gemini.com/websocket/archived/v2.md.
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
  connections, one per symbol in v1). A connection subscribes all its pairs in one message.

REST (both APIs): https://docs.gemini.com/rest/market-data (/v1/symbols, /v1/symbols/details/{symbol},
/v1/pubticker/{symbol}, /v1/trades/{symbol}).
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal
from itertools import count
from operator import attrgetter
from typing import Annotated, Any, Literal, Optional, Union
from urllib.parse import urlsplit

import msgspec
import orjson

from .base import ExchangeListener
from .book import BOOK_SIDE, OrderBook, book_change, book_to_update, check_changes
from .tick import (EMPTY, SYMBOL, BadFrame, ExchangeError, Gap, Heartbeat, Rejected, Subscribed, Update, all_checked,
                   book_side, checked, decimal_str, decimals, epoch_ms, last_price, priced, rest_book_price, schema_reason,
                   side_str, split_by_quote, symbol_str, unified_symbol)
from .venue import BROADCAST, Venue, renumbered

WS_URL = "wss://ws.gemini.com"
V2_URL = "wss://api.gemini.com/v2/marketdata"
V2_PATH = "/v2/marketdata"
STREAMS = ("bookTicker", "trade")  # per pair, on the new API
CHANNEL = "l2"                     # v2
NO_VALID_PAIRS = "NoValidTradingPairs"
NS_PER_MS = 1_000_000
_NO_TOP = (None, None, None, None)
# Quote currencies Gemini uses, longest first: the fallback split of a native symbol when no listing names its
# base and quote (normalizing a recording, a pair nobody subscribed to). "BTCGUSD" is BTC-GUSD, not BTCG-USD.
QUOTES = ("GUSD", "USDT", "USDC", "USD", "DAI", "EUR", "GBP", "SGD", "BTC", "ETH", "LTC", "BCH")


def split_native(native: str) -> Optional[tuple[str, str]]:
    """'BTCUSD' -> ('BTC', 'USD') by Gemini's quote currencies, longest first; None if none fits."""
    return split_by_quote(native, QUOTES)


def is_v2_url(url: Optional[str]) -> bool:
    """Whether `url` is market data v2's endpoint (its path is /v2/marketdata, on Gemini or the local exchange)."""
    return bool(url) and urlsplit(url).path.rstrip("/") == V2_PATH


NS_FROM = 10 ** 17              # an epoch time this large is in ns (2001 onwards); ms times stay below 10**14
MS_FROM = 10 ** 11              # ... and one from here up to 10**14 is in ms (1973 to 5138)


def ns_to_ms(value) -> int:
    """An event time `E` (an int) -> epoch ms, by integer division: no float ever touches it. Documented in ns
    (Book Ticker); Gemini's own trade fixture holds an ms-sized E (1700000000000), so the unit is read from the
    size, which leaves no doubt between the two: >= 10**17 ns, 10**11 .. 10**14 ms, anything else a bad frame."""
    if type(value) is not int:
        raise BadFrame(f"bad event time: {str(value)[:30]!r}")
    if value >= NS_FROM:
        return value // NS_PER_MS
    if MS_FROM <= value < 10 ** 14:
        return value
    raise BadFrame(f"event time neither in ns nor in ms: {value}")


class Gemini(ExchangeListener):
    """Gemini's listener. The protocol is the URL's (see the module docstring): `self.api` is a `StreamsAPI` (the
    new WebSocket API) or a `MarketDataV2`; everything else (symbols, REST) is shared."""
    name = "gemini"
    label = "Gemini"
    url = WS_URL
    url_hosts = ("gemini.com",)
    max_messages_per_s = 1.0  # no limit published for subscriptions (v2: "1 request per symbol per minute")
    quote_on_every_change = True  # bookTicker (and the v2 book's top) on every change of the best bid or ask
    pong_is_liveness = True  # the new API documents no heartbeat stream (v2's heartbeats: see MarketDataV2)
    rest_url = "https://api.gemini.com"
    listing_path = "/v1/symbols"
    colour = "#0097a7"
    recordings = ("GEMINI.ws.1.0",)  # v2 l2 frames; the local exchange derives the new API's from them
    no_data_hint = ("subscribed; no data yet. Gemini does not document how it answers a pair it does not list: "
                    "check the pair is listed on Gemini")

    def __init__(self, ws_url=None, symbols=(), **kwargs):
        self._unified: dict[str, str] = {}  # "BTCUSD" -> "BTC-USD": subscriptions and the listing
        super().__init__(ws_url, symbols, **kwargs)
        self.api = MarketDataV2(self) if is_v2_url(self.ws_url) else StreamsAPI(self)
        # what differs per API, read by the base class from the instance
        self.pong_is_liveness, self.no_data_hint = self.api.pong_is_liveness, self.api.no_data_hint
        self.parse = self.api.parse  # the hot path: no extra call per frame

    def on_connected(self):
        self.api.on_connected()

    def subscribe_messages(self, symbols):
        return self.api.subscribe_messages(symbols)

    def unsubscribe_messages(self, symbols):
        return self.api.unsubscribe_messages(symbols)

    def parse(self, frame, received):  # replaced per instance by its API's parse (see __init__)
        return self.api.parse(frame, received)

    def to_native(self, symbol):
        """'BTC-USD' -> 'BTCUSD' (v2's symbol; the new API's streams take it in lower case)."""
        base, _, quote = symbol_str(symbol).partition("-")
        native = base + quote
        self._unified[native] = symbol
        return native

    def from_native(self, native):
        return unified_symbol(native, self._unified, split_native, bad="no symbol")

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
            # https://docs.gemini.com/rest/market-data#get-ticker. A null bid or ask (a side with no order; the local
            # exchange answers so) is an empty side, the rest of the answer kept; a null "last" is no trade yet.
            return [Update(symbol, None, rest_book_price(answer["bid"]), None, rest_book_price(answer["ask"]), None,
                           last_price(answer.get("last")))]
        # /v1/trades, newest first: [{"timestamp", "timestampms", "tid", "price", "amount", "exchange", "type"}];
        # type is the taker's side ("buy" / "sell"), or "auction" / "block", which have none.
        return [Update(symbol, epoch_ms(trade["timestampms"]), last=decimal_str(trade["price"]),
                       last_size=decimal_str(trade["amount"]),
                       last_side=trade["type"] if trade.get("type") in ("buy", "sell") else None)
                for trade in reversed(answer)]


class StreamsAPI:
    """The new WebSocket API's side of a Gemini listener: SUBSCRIBE requests by id, bookTicker and trade frames."""
    pong_is_liveness = True
    no_data_hint = Gemini.no_data_hint

    def __init__(self, listener: Gemini):
        self.listener = listener
        self._pending: dict[str, tuple] = {}  # request id -> the symbols it subscribed (() for an unsubscribe)
        self._ids = count(1)
        self._symbols: dict[str, str] = {}  # stream pair ("btcusd") -> unified, as from_native gave it

    def on_connected(self):
        self._pending.clear()

    def subscribe_messages(self, symbols):
        self._symbols.clear()  # to_native may map a pair afresh
        return [self._request("SUBSCRIBE", symbols, tuple(symbols))]

    def unsubscribe_messages(self, symbols):
        return [self._request("UNSUBSCRIBE", symbols, ())]

    def streams(self, symbols) -> list[str]:
        return [f"{self.listener.to_native(symbol).lower()}@{stream}" for symbol in symbols for stream in STREAMS]

    def _request(self, method, symbols, pending) -> str:
        request_id = str(next(self._ids))  # ids may be strings or numbers; replies echo them
        self._pending[request_id] = pending
        return orjson.dumps({"id": request_id, "method": method, "params": self.streams(symbols)}).decode()

    def parse(self, frame, received):
        # Book Ticker and trade frames by their first bytes, decoded and type-checked by their schema in one call;
        # replies, other streams, or a frame the guess did not fit, the general way (_parse_other), which gives a
        # bad one its reason from the same schema.
        head = frame[:14]
        if type(head) is str:
            head = head.encode()
        try:
            if head.startswith(b'{"u":'):
                message = _BOOK_TICKER.decode(frame)
                if message.plain():
                    return self._book_ticker(message)
            elif head.startswith(b'{"e":"trade",'):
                message = _TRADE.decode(frame)
                if message.plain():
                    return self._trade(message)
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        return self._parse_other(frame)

    def _parse_other(self, frame) -> list:
        message = orjson.loads(frame)
        if type(message) is not dict:
            raise BadFrame("not a JSON object")
        if "id" in message or "status" in message:
            return self._reply(message)
        kind = message.get("e")
        if kind == "trade" or (kind is None and "t" in message):
            return self._trade(_convert(message, _StreamTrade, _STREAM_REASONS))
        if kind in (None, "bookTicker") and "u" in message:
            return self._book_ticker(_convert(message, _BookTicker, _STREAM_REASONS))
        if kind is not None or "lastUpdateId" in message:
            return []  # depth streams, order events ...: no tick here
        raise BadFrame("neither stream data nor a reply")

    def _book_ticker(self, message: _BookTicker) -> list:
        # the update id orders quotes (TickBook); a side with no price is empty, never its last price
        symbol = self._symbols.get(message.s) or self._symbol(message.s)
        time = ns_to_ms(message.E)
        b, a = message.b, message.a
        if priced(b) and priced(a) and message.B in checked and message.A in checked:  # both sides priced, checked
            return [Update(symbol, time, b, message.B, a, message.A, None, None, None, message.u)]
        return [Update(symbol, time, *_side(b, message.B), *_side(a, message.A), None, None, None, message.u)]

    def _trade(self, message: _StreamTrade) -> list:
        # m is "buyer is maker", so true means the taker sold; the trade id orders trades (TickBook)
        symbol = self._symbols.get(message.s) or self._symbol(message.s)
        time = ns_to_ms(message.E)
        if message.p not in checked or message.q not in checked:
            decimals(message.p, message.q)
        return [Update(symbol, time, None, None, None, None, message.p, message.q, "sell" if message.m else "buy",
                        message.t)]

    def _symbol(self, native: str) -> str:
        symbol = self.listener.from_native(native.upper())  # streams name pairs in lower case: "btcusd"
        if len(self._symbols) < _SYMBOLS_MAX:
            self._symbols[native] = symbol
        return symbol

    def _reply(self, message) -> list:
        symbols = self._pending.pop(message.get("id"), None)
        error = message.get("error")
        if message.get("status") == 200 and error is None:
            return [Subscribed(symbols or None)]
        if type(error) is dict:
            reason = f"Gemini error {error.get('code')}: {error.get('msg')}"
        else:
            reason = f"Gemini error: status {message.get('status')}"
        if symbols:
            return [Rejected(symbol, reason) for symbol in symbols]
        return [ExchangeError(reason)]


_SYMBOLS_MAX = 10_000


class _Stream(msgspec.Struct, gc=False):
    """What tells a stream frame from the rest: `e` its event type (the Book Ticker sends none); a reply's `id` /
    `status`, or a `t` on a Book Ticker, mean the frame is not this shape (read the general way)."""
    e: Optional[str] = None
    id: Any = msgspec.UNSET
    status: Any = msgspec.UNSET

    def plain(self) -> bool:
        return self.id is msgspec.UNSET and self.status is msgspec.UNSET


class _BookTicker(_Stream, kw_only=True, gc=False):
    """Book Ticker: `u` update id, `E` event time (ns), `s` pair ("btcusd"), best bid/ask `b`/`a` and sizes
    `B`/`A` (decimal strings; a side with no price: empty)."""
    u: Annotated[int, msgspec.Meta(ge=0)]
    E: int
    s: str
    b: Optional[str] = None
    B: Optional[str] = None
    a: Optional[str] = None
    A: Optional[str] = None
    t: Any = msgspec.UNSET

    def plain(self) -> bool:
        return (self.id is msgspec.UNSET and self.status is msgspec.UNSET and self.t is msgspec.UNSET
                and (self.e is None or self.e == "bookTicker"))


class _StreamTrade(_Stream, kw_only=True, gc=False):
    """Trade: `E` event time (ns, or ms in Gemini's own fixture), `s` pair, `t` trade id, `p` / `q` price and
    quantity (decimal strings), `m` buyer is maker."""
    E: int
    s: str
    t: Annotated[int, msgspec.Meta(ge=0)]
    p: str
    q: str
    m: bool


_BOOK_TICKER = msgspec.json.Decoder(_BookTicker)
_TRADE = msgspec.json.Decoder(_StreamTrade)
# What a wrong value is counted as (tick.schema_reason), as the hand-written checks named them.
_STREAM_REASONS = {"u": "bad 'u'", "t": "bad 't'", "m": "bad 'm'", "E": "bad event time", "s": "no symbol 's'",
                   ("missing", "s"): "no symbol 's'",
                   **dict.fromkeys(("b", "B", "a", "A", "p", "q"), "not a decimal string")}


def _convert(value, schema, reasons):
    """`value` (decoded JSON) as `schema`; raises BadFrame with the reason its first error is counted under."""
    try:
        return msgspec.convert(value, schema)
    except msgspec.ValidationError as error:
        raise BadFrame(schema_reason(error, reasons)) from None


def _side(price: Optional[str], size: Optional[str]) -> tuple[str, str]:
    """A Book Ticker side: (price, size) as sent, or (EMPTY, EMPTY) where no price is given (absent, null, "",
    zero)."""
    if price is None or price == "":
        return EMPTY, EMPTY
    return book_side(price, size)


class MarketDataV2:
    """Market data v2's side of a Gemini listener: the `l2` subscription, its kept book and its trades."""
    pong_is_liveness = False  # v2 sends its own heartbeat every 5 s
    no_data_hint = ("subscribed; no book yet. Gemini ignores a pair it does not list when the same request names a "
                    "valid one: check the pair is listed on Gemini")

    def __init__(self, listener: Gemini):
        self.listener = listener
        self._books: dict[str, OrderBook] = {}      # native -> its book on this connection
        self._tops: dict[str, tuple] = {}           # native -> the top last published
        self._pending: deque[list] = deque()        # natives of each subscribe not yet answered, in order sent
        self._awaiting: set[str] = set()            # natives whose next l2_updates is their snapshot
        self._dropped: set[str] = set()             # natives unsubscribed on this connection (updates in flight)
        self._last_trade: dict[str, tuple] = {}     # native -> (timestamp, event_id) of the newest trade published

    def on_connected(self):
        # A new connection sends every book afresh; the newest trade seen is kept, so the snapshot's history of a
        # reconnect republishes no trade already published.
        self._books.clear()
        self._tops.clear()
        self._pending.clear()
        self._awaiting.clear()
        self._dropped.clear()

    def subscribe_messages(self, symbols):
        natives = [self.listener.to_native(symbol) for symbol in symbols]
        self._pending.append(list(natives))
        for native in natives:
            self._awaiting.add(native)
            self._dropped.discard(native)
            self._books.pop(native, None)
            self._tops.pop(native, None)
        return [_request("subscribe", natives)]

    def unsubscribe_messages(self, symbols):
        natives = [self.listener.to_native(symbol) for symbol in symbols]
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

    def parse(self, frame, received):
        # l2_updates (the bulk: every book change) by its first bytes, decoded and type-checked by its schema in one
        # call; anything else, or an l2_updates the schema refused (whose reason the general way gives), by orjson.
        head = frame[:20]
        if type(head) is str:
            head = head.encode()
        if head.startswith(b'{"type":"trade",'):
            try:
                return self._trade(_V2_TRADE.decode(frame))
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
        elif head.startswith(b'{"type":"l2_updates"'):
            try:
                update = _L2_UPDATES.decode(frame)
            except (msgspec.ValidationError, msgspec.DecodeError):
                update = None
            if update is not None:
                check_changes(update.changes)  # all before the book is touched
                return self._l2_updates(update.symbol, update.changes, update.trades)
        message = orjson.loads(frame)
        if type(message) is not dict:
            raise BadFrame("not a JSON object")
        kind = message.get("type")
        if kind == "l2_updates":  # one the schema refused (or in another key order): its reason, from the schema
            self.listener.from_native(message.get("symbol"))  # its symbol is checked first, as it always was
            try:
                update = msgspec.convert(message, _L2Updates)
            except msgspec.ValidationError as error:
                raise BadFrame(schema_reason(error, _REASONS)) from None
            check_changes(update.changes)
            return self._l2_updates(update.symbol, update.changes, update.trades)
        if kind == "trade":  # one the schema refused (or in another key order): its reason, from the schema
            self.listener.from_native(message.get("symbol"))  # its symbol is checked first, as it always was
            return self._trade(_convert(message, _V2TradeMessage, _REASONS))
        if kind == "heartbeat":
            return [Heartbeat()]
        if message.get("result") == "error":
            return self._error(message)
        if kind is None:
            raise BadFrame("no 'type'")
        return []  # candles, mark_price, funding_amount ...: no tick here

    def _trade(self, message: _V2TradeMessage) -> list:
        native = message.symbol
        key, trade = _trade(self.listener.from_native(native), message)
        if key > self._last_trade.get(native, (-1, -1)):
            self._last_trade[native] = key
        return [trade]

    def _l2_updates(self, native, levels: list, trades) -> list:
        """An l2_updates of `native`: ("buy" | "sell", price, size) levels, checked; a snapshot's `trades`, or UNSET."""
        symbol = self.listener.from_native(native)
        snapshot = trades is not msgspec.UNSET or native in self._awaiting
        newest = _newest_trade(symbol, trades) if trades is not msgspec.UNSET else None
        items = []
        if snapshot:
            if native in self._awaiting:
                self._answered(native)
                items.append(Subscribed((symbol,)))
            book = self._books[native] = OrderBook()
            book.load(levels)  # the whole book, sorted once
        else:
            book = book_to_update(self._books, self._dropped, native, "l2 update")
            if book is None:
                return []  # sent before our unsubscribe reached Gemini
            book.apply(levels)  # checked by the caller
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
            return [Rejected(self.listener.from_native(native), text) for native in natives]
        return [ExchangeError(text)]


def _request(kind, natives):
    return orjson.dumps({"type": kind, "subscriptions": [{"name": CHANNEL, "symbols": list(natives)}]}).decode()


def _trade(symbol, trade: _V2Trade) -> tuple[tuple, Update]:
    """A Gemini trade (a `trade` message, or one of a snapshot's `trades`): its (timestamp, event_id) and its Update;
    `side` is the taker's."""
    if trade.price not in checked or trade.quantity not in checked:
        decimals(trade.price, trade.quantity)
    order = _trade_order(trade)
    # event_id orders trades: an older one never becomes the last trade (TickBook drops it)
    return order, Update(symbol, trade.timestamp, None, None, None, None, trade.price, trade.quantity, trade.side,
                         order[1] or None)


def _newest_trade(symbol, trades: list) -> Optional[tuple[tuple, Update]]:
    """The newest of a snapshot's trades (Gemini sends them newest first, though not strictly ordered), each one
    checked; only the newest is built (a snapshot carries about 50)."""
    if not trades:
        return None
    if not (all_checked(map(_TRADE_PRICE, trades)) and all_checked(map(_TRADE_QUANTITY, trades))):
        for trade in trades:
            decimals(trade.price, trade.quantity)
    return _trade(symbol, max(trades, key=_trade_order))  # the first of equals, as before


def _trade_order(trade: _V2Trade) -> tuple:
    """(timestamp, event_id): how trades are ordered; an event_id that is none, or not an id, is 0 (unordered)."""
    return trade.timestamp, trade.event_id if type(trade.event_id) is int else 0


_TRADE_PRICE, _TRADE_QUANTITY = attrgetter("price"), attrgetter("quantity")


def _uncross(book: OrderBook, levels: list) -> int:
    """Drop the best levels this frame did not write while the book is crossed: they are what a missed update
    removed. Levels the frame itself wrote stay (a crossed snapshot is Gemini's word). Returns how many went."""
    touched = {"bid": set(), "ask": set()}
    for side, price, _ in levels:
        touched[BOOK_SIDE.get(side, side)].add(Decimal(price))  # Gemini's "buy" / "sell", or "bid" / "ask"
    dropped = 0
    while book.crossed():
        if book.best("ask") not in touched["ask"]:
            book.pop_best("ask")
        elif book.best("bid") not in touched["bid"]:
            book.pop_best("bid")
        else:
            break
        dropped += 1
    return dropped


class _V2Trade(msgspec.Struct, gc=False):
    """A v2 trade (a snapshot's `trades` entry): `timestamp` epoch ms, `price` / `quantity` decimal strings, `side`
    the taker's, `event_id` (an int orders trades; anything else is taken as none, as Gemini's own docs write
    `eventid` in the snapshot's example)."""
    timestamp: Annotated[int, msgspec.Meta(ge=0)]
    price: str
    quantity: str
    side: Literal["buy", "sell"]
    event_id: Any = None


class _V2TradeMessage(_V2Trade, kw_only=True, gc=False):
    """v2 `trade`: a trade with its `symbol` ("BTCUSD")."""
    symbol: str


class _L2Updates(msgspec.Struct, gc=False):
    """Market data v2 `l2_updates`: [side "buy"/"sell", price, quantity] changes (quantity "0" removes the level);
    the first, a snapshot, also carries the market's recent `trades`."""
    symbol: str
    changes: list[tuple[Literal["buy", "sell"], str, str]]
    trades: Union[list[_V2Trade], msgspec.UnsetType] = msgspec.UNSET


_L2_UPDATES = msgspec.json.Decoder(_L2Updates)
# What a wrong value is counted as (tick.schema_reason), as the hand-written checks named them.
_V2_TRADE = msgspec.json.Decoder(_V2TradeMessage)
_REASONS = {"changes": "bad 'changes'", "$.changes[]": "bad change", "$.changes[][0]": "bad side",
            "$.changes[][1]": "not a decimal string", "$.changes[][2]": "not a decimal string", "symbol": "no symbol",
            ("missing", "symbol"): "no symbol", "trades": "bad 'trades'", "$.trades[]": "bad trade",
            "timestamp": "bad epoch ms", "price": "not a decimal string", "quantity": "not a decimal string",
            "side": "bad side"}


class GeminiVenue(Venue):
    """Gemini's side, for the local exchange: both APIs on one server, told apart by the path a client opens.

    The new WebSocket API at "/" (as wss://ws.gemini.com): SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS (either
    case) by id, answered `{"id", "status": 200, "result": null}` (a subscribe's result is not documented; null)
    and, for LIST_SUBSCRIPTIONS, the stream names; a request it cannot read `{"id", "status": 400, "error":
    {"code": -1013, "msg": "Invalid parameters"}}`, an unknown method -1020 "Unsupported operation" (the codes and
    texts of the Message Format page's table; the live server's wording may differ). A stream of a pair it does not
    list is accepted and sends nothing (undocumented: as Binance does). No heartbeat; websocket pings are answered.
    No snapshot on subscribing (none is documented for bookTicker or trade): the first frame is the next change.

    The recordings hold v2 frames only, so the new API's frames are DERIVED, not recorded (`derived`, played right
    after the v2 frame they come from): after each recorded `l2_updates`, the top of the book kept from the
    recorded frames so far, when it changed, as a bookTicker `{"u", "E", "s", "b", "B", "a", "A"}` with u a counter
    of the derived quotes (v2 has no update id) and E the recording's receipt time of that frame in ns (v2's book
    carries no time); for each recorded v2 `trade` message, a trade `{"e": "trade", "E", "s", "t", "p", "q", "m"}`
    with E its timestamp (ms) in ns, t its tid (event_id where it has none), m true where the taker sold. An empty
    side would be sent as "" (undocumented; the recording has none). The history of trades a v2 snapshot carries
    gives no trade frame: the new API sends only new trades.

    Market data v2 at /v2/marketdata: `subscribe`/`unsubscribe` with `subscriptions`, a full-book `l2_updates` (with
    recent trades) answering each new l2 subscription, built from the frames played so far, `NoValidTradingPairs`
    for a request naming no listed pair, a heartbeat each second (Gemini: every 5 s; the simulator's tick is 1 s).
    REST (both): the ticker and trades from what was played."""

    path = "/"

    def __init__(self, listed=None, listing_body=None):
        super().__init__(listed, listing_body)
        self._books: dict[str, OrderBook] = {}  # native -> its book as played
        self._trades: dict[str, deque] = {}     # native -> its recent trades played, oldest first (Gemini's dicts)
        # what `derived` keeps, apart from what is played: it runs over the whole recording before the market opens
        self._derived_books: dict[str, OrderBook] = {}
        self._derived_tops: dict[str, tuple] = {}
        self._quote_ids = count(1)

    def route(self, frame):
        message = orjson.loads(frame)
        kind = message.get("type")
        if kind == "heartbeat" or message.get("result") == "error":
            return None  # the venue makes its own heartbeats and errors
        symbol = message.get("symbol")
        if kind in ("l2_updates", "trade") and type(symbol) is str:
            return f"{CHANNEL}:{symbol}"
        stream = message.get("s")  # a new API frame (derived, or a recording of the new API)
        if type(stream) is str and "id" not in message:
            if message.get("e") == "trade" or "t" in message:
                return f"{stream}@trade"
            if "u" in message:
                return f"{stream}@bookTicker"
        return BROADCAST

    def symbol_of(self, key):
        if "@" in key:
            return key.partition("@")[0].upper()  # "filusd@bookTicker" -> FILUSD
        return key.partition(":")[2]               # "l2:FILUSD"

    @staticmethod
    def listing(body):
        answer = orjson.loads(body)
        entries = answer if type(answer) is list else [answer]
        return {(entry if type(entry) is str else entry.get("symbol", "")).upper() for entry in entries}

    def on_open(self, session, path):
        session["keys"] = set()
        session["api"] = "v2" if is_v2_url("ws://local" + path) else "streams"
        return []

    def on_message(self, session, text):
        if session.get("api") == "v2":
            return self._v2_message(session, text)
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [_reply(None, 400, -1013, "Invalid parameters")]
        if type(message) is not dict:
            return [_reply(None, 400, -1013, "Invalid parameters")]
        request_id, method, params = message.get("id"), message.get("method"), message.get("params")
        method = method.upper() if type(method) is str else ""
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS"):
            return [_reply(request_id, 400, -1020, "Unsupported operation")]
        if method == "LIST_SUBSCRIPTIONS":
            return [_reply(request_id, 200, result=sorted(session["keys"]))]
        if (type(params) is not list or not params
                or not all(type(p) is str and p.partition("@")[0] and p.partition("@")[2] for p in params)):
            return [_reply(request_id, 400, -1013, "Invalid parameters")]
        if method == "SUBSCRIBE":
            session["keys"].update(params)  # listed or not: an unlisted pair's stream just sends nothing
        else:
            session["keys"].difference_update(params)
        return [_reply(request_id, 200, result=None)]

    def _v2_message(self, session, text):
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
        """The whole book and recent trades of `native` as played so far, in the shape of v2's first message."""
        book = self._books.get(native) or OrderBook()
        changes = [["buy", price, size] for price, size in book.levels("bid")]
        changes += [["sell", price, size] for price, size in book.levels("ask")]
        trades = list(reversed(self._trades.get(native, ())))
        return orjson.dumps({"type": "l2_updates", "symbol": native, "changes": changes, "trades": trades,
                             "auction_events": []}).decode()

    def derived(self, frame, received):
        """The new API's frames beside a recorded v2 frame (DERIVED, see the class docstring): [(stream, frame)].
        Never raises: garbage in a recording derives nothing."""
        try:
            return self._derive(frame, received)
        except Exception:
            return []

    def _derive(self, frame, received) -> list:
        if frame.startswith('{"type":"trade"'):
            trade = orjson.loads(frame)
            stream = trade["symbol"].lower()
            trade_id = trade["tid"] if type(trade.get("tid")) is int else trade["event_id"]
            side = side_str(trade["side"])
            return [(f"{stream}@trade", orjson.dumps({
                "e": "trade", "E": epoch_ms(trade["timestamp"]) * NS_PER_MS, "s": stream, "t": trade_id,
                "p": decimal_str(trade["price"]), "q": decimal_str(trade["quantity"]), "m": side == "sell"}).decode())]
        if not frame.startswith('{"type":"l2_updates"') or received is None:
            return []  # no receipt time (a raw frame): a quote could not be dated
        message = orjson.loads(frame)
        native = message["symbol"]
        levels = [book_change(change) for change in message["changes"]]
        if "trades" in message:  # a snapshot: the book starts again
            self._derived_books[native] = OrderBook()
        book = self._derived_books.setdefault(native, OrderBook())
        for side, price, size in levels:
            book.set(side, price, size)
        top = book.top()
        if top == self._derived_tops.get(native):
            return []  # a change behind the top: bookTicker says nothing
        self._derived_tops[native] = top
        bid, bid_size, ask, ask_size = top
        stream = native.lower()
        return [(f"{stream}@bookTicker", orjson.dumps({
            "u": next(self._quote_ids), "E": _seconds_to_ns(received), "s": stream, "b": bid, "B": bid_size,
            "a": ask, "A": ask_size}).decode())]

    def error_frame(self, text):
        # one frame for every client: the new API's (the default path)
        return _reply(None, 500, -1000, text or "Internal server error")

    def refusal(self, session, text):
        if session.get("api") == "v2":
            if '"subscribe"' not in text:
                return None
            return [_error(NO_VALID_PAIRS)]  # the one refusal of a subscribe v2 is known to send
        message = self.request_of(text, "method", "SUBSCRIBE") or self.request_of(text, "method", "subscribe")
        if message is None:
            return None
        return [_reply(message.get("id"), 429, -1003, "Rate limit exceeded")]

    def next_pass(self, frame, passes):
        if frame.startswith('{"u"'):  # a derived quote: its update id goes on
            message = orjson.loads(frame)
            renumbered(message, ("u",), passes)
            return orjson.dumps(message).decode()
        if frame.startswith('{"e":"trade"'):  # a derived trade: its trade id goes on
            message = orjson.loads(frame)
            renumbered(message, ("t",), passes)
            return orjson.dumps(message).decode()
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
        if session.get("api") != "v2":
            return []  # the new API documents no heartbeat stream
        return [orjson.dumps({"type": "heartbeat", "timestamp": int(now * 1000)}).decode()]


def _reply(request_id, status, code=None, msg="", result=None) -> str:
    """A reply of the new API (Message Format page): success `{"id", "status", "result"}`, error `{"id", "status",
    "error": {"code", "msg"}}`."""
    if code is None:
        return orjson.dumps({"id": request_id, "status": status, "result": result}).decode()
    return orjson.dumps({"id": request_id, "status": status, "error": {"code": code, "msg": msg}}).decode()


def _seconds_to_ns(received) -> int:
    """A recording's receipt time (epoch seconds as recorded) -> ns, from its decimal digits (no float arithmetic)."""
    text = received if type(received) is str else repr(float(received))
    return int(Decimal(text).scaleb(9))


def _error(reason, message=""):
    error = {"result": "error", "reason": reason}
    if message:
        error["message"] = message
    return orjson.dumps(error).decode()


Gemini.venue = GeminiVenue
