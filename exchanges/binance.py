"""Binance spot combined stream: `<symbol>@bookTicker` (top of book) and `<symbol>@trade` (last trade).

Protocol: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
- Combined stream frames are `{"stream": "<name>", "data": {...}}`; `bookTicker` carries no event time.
- Top of book: `bookTicker`, pushed on every change of the best bid or ask. Order: its `u` (the book's update id)
  for the quote, the trade id (`t`, or `a` for aggTrade) for the last trade; an older one is dropped (TickBook). A
  side sent as zeros is empty.
- SUBSCRIBE/UNSUBSCRIBE requests carry an id and are answered `{"result": null, "id": ...}`; an error reply is
  `{"code": ..., "msg": ...}` (with the id where there is one). Binance accepts a subscribe to a pair it does not
  list and then sends nothing, so such a panel says so after a while (`no_data_hint`).
- No application heartbeat: the server pings every 20 s (Binance.US: 3 min) and we answer; we also ping every
  STALE_AFTER_S / 3, and the pongs tell the watchdog the exchange still answers while a thin market sends no data
  (state `quiet`, not `stale`).
- Limits ("WebSocket Limits"): at most 5 incoming messages a second per connection, pings, pongs and JSON requests
  alike (the pacer counts all three, at 4 a second); at most 1,024 streams per connection: with 2 per market, a feed
  takes at most 512 markets, and the 513th is refused with that reason on its panel (`STREAM_LIMIT`). A
  disconnect every 24 hours.
- The streams of a new connection go in its URL while it stays under URL_MAX_CHARS, the rest in SUBSCRIBE messages
  of at most REQUEST_MAX_BYTES each, paced. Binance documents neither limit; clients observed an URL of about 8,000
  characters refused (github.com/oliver-zehentleitner/unicorn-binance-websocket-api/issues/17) and a SUBSCRIBE of
  more than 4,088 bytes left unanswered (github.com/binance/binance-connector-rust/issues/27).
- `serverShutdown` (CHANGELOG 2026-05-06, reworded 2026-06-09:
  https://developers.binance.com/docs/binance-spot-api-docs/CHANGELOG; shape under "Server Shutdown" on the
  web-socket-streams page): `{"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": <epoch ms>}}` (a raw
  stream gets the `data` part alone), sent when the server is about to shut down, with no fixed time before it
  closes. We reconnect at once, cleanly (a short jitter, the backoff not grown), before the server closes. Each
  market's gap is shown only if data may have been missed meanwhile (`missed_while_away`): none when its first
  update on the new connection is a bookTicker whose `u` is the next book update id after the last one seen (the
  book, and so its top and any trade, did not change unseen); otherwise a gap that says what the ids show.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from decimal import Decimal
from typing import Annotated, Optional

import msgspec
import orjson

from .base import ExchangeListener
from .tick import (SYMBOL, BadFrame, ExchangeError, Reconnect, Rejected, Subscribed, Update, book_side, checked,
                   decimal_str, decimals, epoch_ms, is_zero, priced, quote_side, schema_reason, split_by_quote, unified_symbol)
from .venue import BROADCAST, Venue, renumbered

STREAMS = ("bookTicker", "trade")
MAX_STREAMS = 1024  # per connection (web-socket-streams, "WebSocket Limits")
MAX_MARKETS = MAX_STREAMS // len(STREAMS)
STREAM_LIMIT = (f"Binance allows {MAX_STREAMS:,} streams per connection ({len(STREAMS)} per market): at most "
                f"{MAX_MARKETS} markets on one feed")
# Undocumented limits, kept well under what clients observed (see the module docstring).
URL_MAX_CHARS = 4000      # the connect URL, streams included
REQUEST_MAX_BYTES = 4000  # one SUBSCRIBE / UNSUBSCRIBE message
SHUTDOWN_REASON = "serverShutdown: the server is about to shut down"
EIGHT_PLACES = Decimal("0.00000001")  # how Binance writes quoteQty
# Quote assets, longest first, to split a native symbol nobody subscribed to (normalizing a recording).
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "GBP", "TRY", "BRL", "JPY", "AUD", "BTC", "ETH",
          "BNB", "DAI", "XRP", "DOGE")


class _BookTicker(msgspec.Struct, gc=False):
    """`<symbol>@bookTicker` data: best bid/ask and their sizes (decimal strings), `u` the book's update id; no time."""
    s: str
    b: str
    B: str
    a: str
    A: str
    u: Optional[int] = None


class _Trade(msgspec.Struct, gc=False):
    """`<symbol>@trade` / `@aggTrade` data: `T` trade time (epoch ms), `m` buyer is maker, `t` / `a` the trade id."""
    s: str
    p: str
    q: str
    T: Annotated[int, msgspec.Meta(ge=0)]
    m: bool
    t: Optional[int] = None
    a: Optional[int] = None


class _BookTickerFrame(msgspec.Struct, gc=False):
    stream: str
    data: _BookTicker


class _TradeFrame(msgspec.Struct, gc=False):
    stream: str
    data: _Trade


class _Event(msgspec.Struct, gc=False):
    e: Optional[str] = None


class _OtherFrame(msgspec.Struct, gc=False):
    """A stream frame that carries no tick: only its event type is read (`serverShutdown`)."""
    stream: str
    data: _Event


_OTHER = msgspec.json.Decoder(_OtherFrame)
_TICK_STREAMS = ("@bookTicker", "@trade", "@aggTrade")
_FRAME_OF = {"bookTicker": _BookTickerFrame, "trade": _TradeFrame, "aggTrade": _TradeFrame}
_BOOK_TICKER = msgspec.json.Decoder(_BookTickerFrame)
_TRADE = msgspec.json.Decoder(_TradeFrame)
# What a wrong value of each field is counted as (tick.schema_reason); any other field: "bad 'name'".
_REASONS = {"b": "not a decimal string", "B": "not a decimal string", "a": "not a decimal string",
            "A": "not a decimal string", "p": "not a decimal string", "q": "not a decimal string",
            "T": "bad epoch ms", "s": "no symbol 's'", ("missing", "s"): "no symbol 's'", "$": "not a JSON object",
            "data": "bad 'data'"}


class Binance(ExchangeListener):
    name = "binance"
    label = "Binance"
    url = "wss://data-stream.binance.vision/stream"  # market data only
    url_hosts = ("binance.com", "binance.vision")
    max_messages_per_s = 4.0  # Binance closes a connection that sends more than 5 messages a second
    pong_is_liveness = True  # no application heartbeat: ping/pong is the liveness signal
    geo_alternative = "binanceus"
    rest_url = "https://data-api.binance.vision"  # market data only, like the websocket endpoint
    listing_path = "/api/v3/exchangeInfo"
    colour = "#c99400"
    recordings = ("BINANCE.ws.1.0",)
    no_data_hint = ("subscribed; no data yet. Binance accepts a subscription to a pair it does not list and then "
                    "sends nothing: check the pair is listed on this venue")

    def __init__(self, *args, **kwargs):
        self._unified: dict[str, str] = {}  # "BTCUSDT" -> "BTC-USDT"
        self._pending: dict[int, tuple] = {}  # request id -> symbols
        self._next_id = 0
        self._adding = threading.Lock()  # one add at a time: the stream limit is checked and taken at once
        self._shutdown_noticed = False   # a serverShutdown came on this connection
        self._before: dict[str, tuple] = {}  # symbol -> (quote u, trade id) reached before a serverShutdown
        super().__init__(*args, **kwargs)
        for symbol in sorted(self._desired)[MAX_MARKETS:]:  # configured beyond the limit: refused, never silently
            self._desired.discard(symbol)
            self.on_market(self._market(symbol), "error", STREAM_LIMIT)

    def add(self, symbol):
        """As the base's, but a market beyond MAX_MARKETS is refused: False, and its panel shows STREAM_LIMIT."""
        with self._adding:
            symbols = self.symbols()
            if symbol not in symbols and len(symbols) >= MAX_MARKETS:
                self.on_market(self._market(symbol), "error", STREAM_LIMIT)
                return False
            return super().add(symbol)

    def connect_url(self, symbols):
        """`<ws_url>?streams=a@bookTicker/a@trade/...`: the first markets whose streams fit in URL_MAX_CHARS (at least
        one); `initial_messages` subscribes the rest."""
        return self._url_split(symbols)[0]

    def initial_messages(self, symbols):
        rest = self._url_split(symbols)[1]
        return self.subscribe_messages(rest) if rest else []

    def on_connected(self):
        self._pending.clear()
        # After a serverShutdown: the ids each market had reached, for missed_while_away (the book is not reset yet).
        self._before = self.book.sequences() if self._shutdown_noticed else {}
        self._shutdown_noticed = False

    def missed_while_away(self, symbol, update, reason):
        """After a serverShutdown reconnect, the first update of `symbol` on the new connection: None (no gap) if it
        is a bookTicker whose `u` is at most one past the last one seen. Book update ids are consecutive, so the
        book changed once (this update) or not at all while we were away, and a trade changes the book: no quote
        and no trade was missed. Otherwise `reason` with what the ids show; a trade first proves nothing about the
        quote, which may have changed unseen."""
        before = self._before.pop(symbol, None)
        if before is None or update.sequence is None:
            return reason
        quote_id, trade_id = before
        if update.bid is not None or update.ask is not None:
            if quote_id is not None and update.sequence <= quote_id + 1:
                return None
            if quote_id is None:
                return f"{reason}; no quote before it to compare with"
            return (f"{reason}; the book changed {update.sequence - quote_id - 1} times between the last quote seen "
                    f"and this one (u {quote_id} -> {update.sequence}): a quote change may have been missed")
        if trade_id is not None and update.sequence > trade_id + 1:
            return (f"{reason}; {update.sequence - trade_id - 1} trades missed "
                    f"(id {trade_id} -> {update.sequence})")
        return f"{reason}; a trade came first: the quote may have changed unseen"

    def subscribe_messages(self, symbols):
        return self._requests("SUBSCRIBE", symbols)

    def unsubscribe_messages(self, symbols):
        return self._requests("UNSUBSCRIBE", symbols)

    def to_native(self, symbol):
        native = symbol.replace("-", "")
        self._unified[native] = symbol
        return native.lower()

    def from_native(self, native):
        return unified_symbol(native, self._unified, _split, bad="no symbol 's'")  # "unknown symbol 'XYZ'"

    def parse(self, frame, received):
        # The hot channels by their stream name near the start ('{"stream":"nknusdt@bookTicker","data":...'), each
        # decoded and type-checked by its schema in one call; anything else (replies, shutdown, depth ...), or a
        # frame the guess did not fit, is read the general way (_parse_other), which gives a bad one its reason.
        if type(frame) is str:
            frame = frame.encode()
        if frame.find(b'@bookTicker"', 0, 64) > 0:  # a bounded find: no slice made
            try:
                message = _BOOK_TICKER.decode(frame)
            except (msgspec.ValidationError, msgspec.DecodeError):
                return self._parse_other(frame)
            # _book_ticker, inlined for the commonest frame (a call costs what a quarter of the decode does)
            data = message.data
            symbol = self._unified.get(data.s) or self.from_native(data.s)
            b, a = data.b, data.a
            if (priced(b) and priced(a) and data.B in checked and data.A in checked
                    and message.stream.endswith("@bookTicker")):
                return [Update(symbol, None, b, data.B, a, data.A, None, None, None, data.u)]
            return self._book_ticker(message)
        if frame.find(b'rade"', 0, 64) > 0:
            try:
                message = _TRADE.decode(frame)
            except (msgspec.ValidationError, msgspec.DecodeError):
                return self._parse_other(frame)
            return self._trade(message)
        if frame.startswith(b'{"stream":'):  # depth, kline ...: checked whole, but only its event type built
            try:
                other = _OTHER.decode(frame)
            except (msgspec.ValidationError, msgspec.DecodeError):
                return self._parse_other(frame)
            if other.stream.endswith(_TICK_STREAMS):  # a tick stream whose name was too long for the head
                return self._parse_other(frame)
            return self._shutdown() if other.data.e == "serverShutdown" else []
        return self._parse_other(frame)

    def _book_ticker(self, message: _BookTickerFrame) -> list:
        """A decoded bookTicker frame -> its Update; [] where its stream is named otherwise."""
        data = message.data
        symbol = self._unified.get(data.s) or self.from_native(data.s)
        if not message.stream.endswith("@bookTicker"):
            return []
        b, a = data.b, data.a
        decimals(b, data.B, a, data.A)
        # `u`, the book's update id, orders them: an older one never becomes the quote (TickBook);
        # a side with no order is sent as zeros: empty, not a price of 0
        if not is_zero(b) and not is_zero(a):
            return [Update(symbol, None, b, data.B, a, data.A, None, None, None, data.u)]
        return [Update(symbol, None, *quote_side(b, data.B), *quote_side(a, data.A), None, None, None, data.u)]

    def _trade(self, message: _TradeFrame) -> list:
        """A decoded trade or aggTrade frame -> its Update; [] where its stream is named otherwise."""
        data, stream = message.data, message.stream
        symbol = self._unified.get(data.s) or self.from_native(data.s)
        if stream.endswith("@aggTrade"):
            sequence = data.a  # the aggregate trade id
        elif stream.endswith("@trade"):
            sequence = data.t
        else:
            return []
        if data.p not in checked or data.q not in checked:
            decimals(data.p, data.q)
        # buyer is maker => the taker sold
        return [Update(symbol, data.T, None, None, None, None, data.p, data.q, "sell" if data.m else "buy", sequence)]

    def _parse_other(self, frame):
        """Replies, errors, `serverShutdown`, streams that carry no tick (depth, kline ...), and tick frames the
        first guess did not read."""
        message = orjson.loads(frame)
        if type(message) is not dict:
            raise BadFrame("not a JSON object")
        data = message.get("data")
        if type(data) is dict:
            stream = message.get("stream")
            if type(stream) is not str:
                raise BadFrame("no 'stream'")
            kind = stream.rpartition("@")[2]
            if kind in _FRAME_OF:
                try:
                    decoded = msgspec.convert(message, _FRAME_OF[kind])
                except msgspec.ValidationError as error:
                    raise BadFrame(schema_reason(error, _REASONS)) from None
                return self._book_ticker(decoded) if kind == "bookTicker" else self._trade(decoded)
            if data.get("e") == "serverShutdown":  # stream "!serverShutdown"
                return self._shutdown()
            return []  # depth, kline ...: no tick
        if message.get("e") == "serverShutdown":  # the raw-stream form
            return self._shutdown()
        if "result" in message and "id" in message:
            return [Subscribed(self._pending.pop(message["id"], None))]
        if "code" in message or "error" in message:
            error = message.get("error") if type(message.get("error")) is dict else message
            reason = f"Binance error {error.get('code')}: {error.get('msg')}"
            symbols = self._pending.pop(message.get("id"), None)
            if symbols:
                return [Rejected(symbol, reason) for symbol in symbols]
            return [ExchangeError(reason)]
        raise BadFrame("neither stream data nor a reply")

    def parse_listing(self, body):
        listed = []
        for entry in orjson.loads(body).get("symbols", ()):
            if type(entry) is dict and entry.get("status") == "TRADING":
                symbol = f"{entry.get('baseAsset')}-{entry.get('quoteAsset')}"
                if SYMBOL.fullmatch(symbol):
                    self._unified[entry.get("symbol")] = symbol  # the listing is the exact symbol map
                    listed.append(symbol)
        return sorted(listed)

    def backfill_requests(self, symbol):
        native = self.to_native(symbol).upper()
        return [("/api/v3/trades", {"symbol": native, "limit": "100"}),
                ("/api/v3/ticker/bookTicker", {"symbol": native})]

    def parse_backfill(self, symbol, path, body):
        answer = orjson.loads(body)
        if path.endswith("/bookTicker"):  # {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}: no time
            # zeros ("0.00000000") for a side with no order, as on the websocket: an empty side, never a price
            return [Update(symbol, None, *book_side(answer["bidPrice"], answer["bidQty"]),
                           *book_side(answer["askPrice"], answer["askQty"]))]
        # /trades, oldest first: [{"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}]
        return [Update(symbol=symbol, time=epoch_ms(trade["time"]), last=decimal_str(trade["price"]),
                       last_size=decimal_str(trade["qty"]), last_side="sell" if trade["isBuyerMaker"] else "buy")
                for trade in answer]

    def _shutdown(self):
        """The server is about to shut down: reconnect now (a clean reconnect, see the module docstring)."""
        self._shutdown_noticed = True
        return [Reconnect(SHUTDOWN_REASON)]

    def _streams(self, symbols):
        return [f"{self.to_native(symbol)}@{stream}" for symbol in symbols for stream in STREAMS]

    def _url_split(self, symbols):
        """(the connect URL, the symbols left for SUBSCRIBE messages)."""
        url = f"{self.ws_url.split('?', 1)[0]}?streams="
        for count, symbol in enumerate(symbols):
            part = "/".join(self._streams([symbol]))
            if count and len(url) + 1 + len(part) > URL_MAX_CHARS:
                return url, symbols[count:]
            url += f"/{part}" if count else part
        return url, []

    def _requests(self, method, symbols):
        """`method` requests for `symbols`, each under REQUEST_MAX_BYTES, a market's streams in one."""
        messages, batch, size = [], [], len(method) + 40  # '{"method":"","params":[],"id":' and an id
        for symbol in symbols:
            grows = sum(len(stream) + 3 for stream in self._streams([symbol]))  # quoted, a comma (names are ASCII)
            if batch and size + grows > REQUEST_MAX_BYTES:
                messages.append(self._request(method, batch))
                batch, size = [], len(method) + 40
            batch.append(symbol)
            size += grows
        if batch:
            messages.append(self._request(method, batch))
        return messages

    def _request(self, method, symbols):
        self._next_id += 1
        self._pending[self._next_id] = tuple(symbols)
        return orjson.dumps({"method": method, "params": self._streams(symbols), "id": self._next_id}).decode()


class BinanceUS(Binance):
    """Binance.US: the same protocol; it lists USD pairs, so BTC-USD sits beside Coinbase's."""
    name = "binanceus"
    label = "Binance.US"
    url = "wss://stream.binance.us:9443/stream"
    rest_url = "https://api.binance.us"
    url_hosts = ("binance.us",)
    geo_alternative = ""
    colour = "#2e7d32"
    recordings = ("BINANCE_US.ws.1.0", "BINANCE_US.0")


class BinanceVenue(Venue):
    """Binance's side, for the local exchange: streams named in the URL, SUBSCRIBE/UNSUBSCRIBE answered
    `{"result": null, "id": ...}` (for any well-formed stream name, listed or not, as Binance does).
    The recordings hold `aggTrade`, not `trade`: a `@trade` subscriber is sent the recorded `@aggTrade` frames.

    Limits: a SUBSCRIBE that would take a connection past MAX_STREAMS (1,024, documented) is answered
    `{"error": {"code": 2, "msg": "Invalid request: too many streams"}, "id": ...}` and changes nothing (Binance
    documents the limit but not its reply: this is the error shape clients observe); a request of more than
    OBSERVED_REQUEST_MAX bytes goes unanswered, as clients observed (binance-connector-rust#27).
    `announce_shutdown()` sends `serverShutdown` to the clients connected then."""

    path = "/stream"
    OBSERVED_REQUEST_MAX = 4088

    def __init__(self, listed=None, listing_body=None):
        super().__init__(listed, listing_body)
        self._books: dict[str, dict] = {}   # native symbol -> its latest bookTicker played
        self._trades: dict[str, deque] = {}  # native symbol -> its recent trades played
        self._shutdown_at: Optional[float] = None  # monotonic s of announce_shutdown

    def announce_shutdown(self) -> bool:
        """Thread-safe: tell every client connected now that the server is about to shut down. The notice goes
        with the next heartbeats (within a second), once per client; a client connecting later is not told."""
        self._shutdown_at = time.monotonic()
        return True

    def heartbeats(self, session, now):
        """Binance has no heartbeat frame; this sends the `serverShutdown` notice (combined-stream form, from the
        web-socket-streams page, "Server Shutdown") to a client connected before `announce_shutdown`."""
        told = self._shutdown_at is not None and session.get("opened", self._shutdown_at) < self._shutdown_at
        if not told or session.get("told"):
            return []
        session["told"] = True
        return [_reply({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": int(now * 1000)}})]

    def next_pass(self, frame, passes):
        message = orjson.loads(frame)
        data = message.get("data") if type(message) is dict else None
        if type(data) is not dict or not renumbered(data, ("u", "U", "a", "t", "f", "l"), passes):
            return frame
        return orjson.dumps(message).decode()

    def observe(self, frame):
        head = frame[:60]
        if "@bookTicker" in head:
            data = orjson.loads(frame)["data"]
            self._books[data["s"]] = data
        elif "@aggTrade" in head or "@trade" in head:
            data = orjson.loads(frame)["data"]
            price, qty = data["p"], data["q"]
            self._trades.setdefault(data["s"], deque(maxlen=100)).append({
                "id": data.get("t", data.get("a")), "price": price, "qty": qty,
                "quoteQty": format((Decimal(price) * Decimal(qty)).quantize(EIGHT_PLACES), "f"), "time": data["T"],
                "isBuyerMaker": data["m"], "isBestMatch": data.get("M", True)})

    def rest(self, path, query):
        """`/api/v3/exchangeInfo` (the recorded listing), `/api/v3/ticker/bookTicker` and `/api/v3/trades` in the
        shapes Binance documents, built from the frames played so far."""
        if path == "/api/v3/exchangeInfo":
            return (200, self.listing_body) if self.listing_body else None
        if path not in ("/api/v3/ticker/bookTicker", "/api/v3/trades"):
            return None
        symbol = query.get("symbol", "")
        if symbol not in self._books and symbol not in self._trades:
            return 400, '{"code":-1121,"msg":"Invalid symbol."}'
        if path.endswith("bookTicker"):
            book = self._books.get(symbol)
            if book is None:
                return 400, '{"code":-1121,"msg":"Invalid symbol."}'
            return 200, _reply({"symbol": symbol, "bidPrice": book["b"], "bidQty": book["B"], "askPrice": book["a"],
                                "askQty": book["A"]})
        limit = int(query.get("limit", "500")) if query.get("limit", "500").isdigit() else 500
        return 200, _reply(list(self._trades.get(symbol, ()))[-limit:])


    def route(self, frame):
        message = orjson.loads(frame)
        if "result" in message and "id" in message:
            return None
        stream = message.get("stream")
        return stream if type(stream) is str and type(message.get("data")) is dict else BROADCAST

    def symbol_of(self, key):
        return key.partition("@")[0].upper()

    @staticmethod
    def listing(body):
        return {symbol["symbol"] for symbol in orjson.loads(body).get("symbols", ())
                if symbol.get("status", "TRADING") == "TRADING"}

    def on_open(self, session, path):
        session["keys"] = set()
        session["opened"] = time.monotonic()
        query = path.partition("?")[2]
        for part in query.split("&"):
            name, _, value = part.partition("=")
            if name == "streams" and value:
                session["keys"].update(value.split("/"))
        return []

    def on_message(self, session, text):
        if len(text.encode()) > self.OBSERVED_REQUEST_MAX:
            return []  # no answer at all
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [_reply({"code": 3, "msg": "Invalid JSON: expected value"})]
        if type(message) is not dict or message.get("method") not in ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS"):
            return [_reply({"code": 2, "msg": "Invalid request: unknown method", "id": _id_of(message)})]
        params = message.get("params") or []
        if type(params) is not list or not all(type(p) is str and "@" in p for p in params):
            return [_reply({"code": 2, "msg": "Invalid request: invalid stream", "id": _id_of(message)})]
        method = message["method"]
        if method == "SUBSCRIBE" and len(session["keys"].union(params)) > MAX_STREAMS:
            return [_reply({"error": {"code": 2, "msg": "Invalid request: too many streams"}, "id": message.get("id")})]
        if method == "SUBSCRIBE":
            session["keys"].update(params)
        elif method == "UNSUBSCRIBE":
            session["keys"].difference_update(params)
        else:
            return [_reply({"result": sorted(session["keys"]), "id": message.get("id")})]
        return [_reply({"result": None, "id": message.get("id")})]

    def error_frame(self, text):
        return _reply({"code": 0, "msg": text or "Unknown property"})

    def refusal(self, session, text):
        message = self.request_of(text, "method", "SUBSCRIBE")
        if message is None:
            return None
        return [_reply({"error": {"code": 2, "msg": "Invalid request: too many streams"}, "id": message.get("id")})]

    def wants(self, session, key):
        keys = session["keys"]
        return key in keys or (key.endswith("@aggTrade") and key[:-len("aggTrade")] + "trade" in keys)


def _id_of(message):
    return message.get("id") if type(message) is dict else None


def _reply(message):
    return orjson.dumps(message).decode()


Binance.venue = BinanceVenue


def _split(native: str):
    """'BTCUSDT' -> ('BTC', 'USDT'), by the quote assets Binance lists (a symbol nobody subscribed to)."""
    return split_by_quote(native, QUOTES)
