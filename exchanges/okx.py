"""OKX public websocket (API v5), spot only: `tickers` (best bid/ask) and `trades` (the last trade, taker's side).

Protocol: https://www.okx.com/docs-v5/en/ — the sections relied on:
- #overview-production-trading-services: wss://ws.okx.com:8443/ws/v5/public and REST https://www.okx.com.
- #overview-websocket-connect: 3 connection requests a second per IP, 480 subscribe/unsubscribe/login requests per
  connection an hour; a connection with nothing pushed for 30 s is closed, so a client sends the text "ping" and gets
  the text "pong".
- #overview-websocket-subscribe, #overview-websocket-unsubscribe: `{"id", "op", "args": [{"channel", "instId"}]}`;
  each arg is acknowledged on its own, `{"id", "event": "subscribe", "arg": {...}, "connId"}`; a refusal is
  `{"id", "event": "error", "code", "msg", "connId"}`.
- #error-code-websocket-public: 60018 "Wrong URL or {0} doesn't exist" names the channel and instId refused.
- #overview-websocket-notification: `{"event": "notice", "code": "64008"}` 60 s before a service upgrade closes the
  connection: we reconnect at once.
- #order-book-trading-market-data-ws-tickers-channel, -ws-trades-channel, -ws-order-book-channel, -get-ticker,
  -get-trades: tickers hold bidPx/bidSz/askPx/askSz/last/lastSz but no trade side; trades hold px/sz and `side`,
  "trade side of taker". So the top of book comes from `tickers` (its page: "the fastest rate is 1 update/100ms
  ... the events which can trigger update: trade, the change on best ask/bid": every change, changes within 100 ms
  arriving as one push of the latest; quote_on_every_change True), and the last trade from `trades`; a ticker's `last` fills the last trade only until `trades` has
  pushed on the connection (a quiet market still shows the last price OKX told us). A side with no order is sent as
  `"bidPx":"","bidSz":""`: shown empty. On subscribe OKX first pushes the current ticker and the latest trade
  (the recording shows both), then changes; `ts` is epoch ms as a string.
- #public-data-rest-api-get-instruments: the spot listing, `state` "live" when trading.
- Regional entities: EEA (my.okx.com) and US (app.okx.com) accounts use their own hosts, set with OKX_WS_URL and
  OKX_REST_URL (README, "Configuration"): wss://wseea.okx.com:8443/ws/v5/public with https://eea.okx.com, and
  wss://wsus.okx.com:8443/ws/v5/public with https://us.okx.com, as the maintained SDKs name them (okx-api, nautilus
  OKXRegion); the regional docs-v5 pages are not among the stored copies read here. Same protocol on each.

Spot only: a spot instId is the unified BASE-QUOTE already; swaps (BTC-USDT-SWAP), dated futures (BTC-USD-220527)
and options have more parts, and their frames give no tick. No application heartbeat: the watchdog takes pongs as
liveness, as for Binance.
"""
from __future__ import annotations

import re
import zlib
from collections import deque
from decimal import Decimal, InvalidOperation
from itertools import count
from typing import Literal, Optional

import msgspec
import orjson

from .base import ExchangeListener
from .tick import (SYMBOL, EMPTY, BadFrame, ExchangeError, Heartbeat, Reconnect, Rejected, Subscribed, Update,
                   checked, decimal_str, decimals, is_zero, priced, schema_reason, side_str)
from .venue import BROADCAST, Venue

CHANNELS = ("tickers", "trades")
MARKETS_PER_REQUEST = 100  # 200 args, some 12 KB: far inside the 64 KB a request may carry
_NAMED_INST_ID = re.compile(r"instId:([^\s,]+)")  # in 60018's message: "channel:tickers,instId:FOO-BAR doesn't exist"
_DERIVATIVE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+){2,}")  # BTC-USDT-SWAP, BTC-USD-220527, BTC-USD-221230-4000-C


class _Arg(msgspec.Struct, gc=False):
    channel: str
    instId: str


class _Ticker(msgspec.Struct, gc=False):
    """A `tickers` item: best bid/ask and sizes ("" for a side with no order), the last trade, `ts` epoch ms (a
    string of digits)."""
    bidPx: str
    bidSz: str
    askPx: str
    askSz: str
    ts: str
    last: Optional[str] = None
    lastSz: Optional[str] = None


class _Trade(msgspec.Struct, gc=False):
    """A `trades` item: price, size, the taker's side, `ts`."""
    px: str
    sz: str
    side: Literal["buy", "sell"]
    ts: str


class _Tickers(msgspec.Struct, gc=False):
    arg: _Arg
    data: list[_Ticker]


class _Trades(msgspec.Struct, gc=False):
    arg: _Arg
    data: list[_Trade]


class _Channel(msgspec.Struct, gc=False):
    channel: str


class _Other(msgspec.Struct, gc=False):
    """A push of a channel that carries no tick here (books): its data is skipped, not built."""
    arg: _Channel
    data: list[msgspec.Raw]


_OTHER = msgspec.json.Decoder(_Other)
_PUSH = {"tickers": _Tickers, "trades": _Trades}
_TICKERS, _TRADES = msgspec.json.Decoder(_Tickers), msgspec.json.Decoder(_Trades)
_DECIMAL_FIELDS = ("bidPx", "bidSz", "askPx", "askSz", "last", "lastSz", "px", "sz")
# What a wrong value of each field is counted as (tick.schema_reason); any other field: "bad 'name'".
_REASONS = {**dict.fromkeys(_DECIMAL_FIELDS, "not a decimal string"), "ts": "bad time", "side": "bad side",
            "instId": "bad instId", "data": "push without 'arg' or a 'data' list",
            "arg": "push without 'arg' or a 'data' list"}


class OKX(ExchangeListener):
    name = "okx"
    label = "OKX"
    url = "wss://ws.okx.com:8443/ws/v5/public"
    url_hosts = ("okx.com",)  # ws.okx.com, and the regional wseea.okx.com / wsus.okx.com
    # 3 requests a second is OKX's documented websocket rate; the hourly budget of 480 subscribe/unsubscribe requests
    # is kept by sending every batch of changes as one request.
    max_messages_per_s = 2.0
    pong_is_liveness = True  # no heartbeat of its own: its pongs show it still answers while a market is quiet
    keepalive_message = "ping"  # OKX closes a connection with nothing pushed for 30 s; "ping" is answered "pong"
    keepalive_every_s = 20.0
    rest_url = "https://www.okx.com"
    listing_path = "/api/v5/public/instruments?instType=SPOT"
    colour = "#455a64"
    recordings = ("OKX.ws.1.0",)
    no_data_hint = "subscribed; no update yet (OKX pushes a ticker when the best bid or ask changes, or on a trade)"

    def __init__(self, *args, **kwargs):
        self._asked: set[str] = set()    # markets subscribed on this connection, not refused
        self._refused: set[str] = set()  # markets refused on this connection (each channel's error names them)
        self._pending: dict[str, tuple] = {}  # request id -> its markets, until acknowledged or refused
        self._traded: set[str] = set()   # markets whose `trades` channel has pushed on this connection
        self._next_id = 0
        super().__init__(*args, **kwargs)

    def on_connected(self):
        self._traded.clear()
        self._asked.clear()
        self._refused.clear()
        self._pending.clear()

    def subscribe_messages(self, symbols):
        self._asked.update(symbols)
        self._refused.difference_update(symbols)
        messages = []
        for chunk in _chunks(symbols):
            request_id = self._request_id()
            self._pending[request_id] = tuple(chunk)
            messages.append(_request(request_id, "subscribe", chunk))
        return messages

    def unsubscribe_messages(self, symbols):
        self._asked.difference_update(symbols)
        return [_request(self._request_id(), "unsubscribe", chunk) for chunk in _chunks(symbols)]

    def to_native(self, symbol):
        return symbol  # a spot instId is BASE-QUOTE

    def _ticker(self, symbol, item: _Ticker, with_last=False) -> Update:
        """A `tickers` item. `bidPx` "" (with `bidSz` "") is an empty side. Its `last` fills the last trade only
        until the `trades` channel has spoken on this connection: from then on a trade's side is not to be lost."""
        bid, ask, bid_size, ask_size = item.bidPx, item.askPx, item.bidSz, item.askSz
        if not (priced(bid) and priced(ask) and bid_size in checked and ask_size in checked):  # checked, priced
            decimals(*filter(None, (bid, ask)))  # "": an empty side
            bid, bid_size = (EMPTY, EMPTY) if is_zero(bid) else (bid, decimal_str(item.bidSz))
            ask, ask_size = (EMPTY, EMPTY) if is_zero(ask) else (ask, decimal_str(item.askSz))
        last = last_size = None
        if with_last or symbol not in self._traded:
            last = item.last or None  # "" or not sent: none
            if last is not None and priced(last) is not True and is_zero(decimal_str(last)):
                last = None  # zeros: no trade yet
            last_size = item.lastSz if last and item.lastSz else None
            if last_size is not None and last_size not in checked:
                decimal_str(last_size)
        # symbol, time, bid, bid_size, ask, ask_size, last, last_size, last_side, sequence
        return Update(symbol, _ms(item.ts), bid, bid_size, ask, ask_size, last, last_size, None, None)

    def from_native(self, native):
        if type(native) is not str or not SYMBOL.fullmatch(native):
            raise BadFrame(f"not a spot instId: {str(native)[:30]!r}")
        return native

    def parse(self, frame, received):
        if frame == b"pong" or frame == "pong":  # the answer to our text "ping": not JSON
            return [Heartbeat()]
        # A push of the two channels read, by its first bytes, decoded and type-checked by its schema in one call;
        # anything else (acks, errors, books), or a push the guess did not fit, is read the general way.
        head = frame[:30]
        if type(head) is str:
            head = head.encode()
        if head.startswith(b'{"arg":{"channel":"tickers"'):
            try:
                return self._push(_TICKERS.decode(frame))
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
        elif head.startswith(b'{"arg":{"channel":"trades"'):
            try:
                return self._push(_TRADES.decode(frame))
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
        elif head.startswith(b'{"arg":{"channel":"'):  # books ...: checked whole, nothing of it built
            try:
                channel = _OTHER.decode(frame).arg.channel
            except (msgspec.ValidationError, msgspec.DecodeError):
                channel = None
            if channel is not None and channel != "tickers" and channel != "trades":
                return []
        message = orjson.loads(frame)
        if type(message) is not dict:
            raise BadFrame("not a JSON object")
        data = message.get("data")
        if data is not None:  # a push: {"arg": {"channel", "instId"}, "data": [...]}
            arg = message.get("arg")
            if type(arg) is not dict or type(data) is not list:
                raise BadFrame("push without 'arg' or a 'data' list")
            channel = arg.get("channel")
            if channel != "tickers" and channel != "trades":
                return []  # books ...: no tick
            if _spot(arg.get("instId")) is None:
                return []  # a swap, future or option
            try:
                return self._push(msgspec.convert(message, _PUSH[channel]))
            except msgspec.ValidationError as error:
                raise BadFrame(schema_reason(error, _REASONS)) from None
        event = message.get("event")
        if type(event) is not str:
            raise BadFrame("neither a push nor an event")
        if event == "subscribe":
            self._pending.pop(message.get("id"), None)
            arg = message.get("arg")
            if type(arg) is not dict:
                raise BadFrame("no 'arg'")
            inst_id = arg.get("instId")
            symbol = _spot(inst_id) if inst_id is not None else None
            # One confirmation per market: its tickers ack (the trades ack follows it).
            return [Subscribed((symbol,))] if symbol is not None and arg.get("channel") == "tickers" else []
        if event == "error":
            return self._error(message)
        if event == "notice":
            if message.get("code") == "64008":  # the connection closes soon for a service upgrade
                return [Reconnect(str(message.get("msg") or "service upgrade"))]
            return []
        return []  # unsubscribe acks ...

    def _push(self, push) -> list:
        """A decoded `tickers` or `trades` push -> its Updates; [] for a derivative's."""
        symbol = _spot(push.arg.instId)
        if symbol is None:
            return []  # a swap, future or option
        if type(push) is _Tickers:
            return [self._ticker(symbol, item) for item in push.data]
        trades = []  # a loop, not a comprehension: most pushes hold one trade, and a comprehension is a call (3.11)
        for item in push.data:
            price, size, ts = item.px, item.sz, item.ts
            if price not in checked or size not in checked:
                decimals(price, size)
            time = int(ts) if ts.isdigit() and ts.isascii() and len(ts) <= 16 else _ms(ts)  # _ms: what is wrong
            # (symbol, time, 4 x no quote, last, last_size, taker side, no sequence)
            trades.append(Update(symbol, time, None, None, None, None, price, size, item.side, None))
        if trades:
            self._traded.add(symbol)
        return trades

    def _error(self, message):
        code, text = message.get("code"), message.get("msg")
        reason = f"OKX error {code}: {text}"
        named = _NAMED_INST_ID.search(text) if type(text) is str else None
        if named:
            symbol = named.group(1)
            if symbol in self._asked:
                self._asked.discard(symbol)
                self._refused.add(symbol)
                return [Rejected(symbol, reason)]
            if symbol in self._refused:
                return []  # the same market's other channel, refused already
            return [ExchangeError(reason)]
        request = self._pending.pop(message.get("id"), None)
        refused = [symbol for symbol in request or () if symbol in self._asked]
        if refused:  # a whole request refused (invalid, too frequent): its markets
            self._asked.difference_update(refused)
            self._refused.update(refused)
            return [Rejected(symbol, reason) for symbol in refused]
        return [ExchangeError(reason)]

    def parse_listing(self, body):
        answer = _answer(body)
        return sorted(entry["instId"] for entry in answer["data"]
                      if type(entry) is dict and entry.get("instType", "SPOT") == "SPOT"
                      and entry.get("state") == "live" and type(entry.get("instId")) is str
                      and SYMBOL.fullmatch(entry["instId"]))

    def backfill_requests(self, symbol):
        native = self.to_native(symbol)
        return [("/api/v5/market/trades", {"instId": native, "limit": "100"}),
                ("/api/v5/market/ticker", {"instId": native})]

    def parse_backfill(self, symbol, path, body):
        data = _answer(body)["data"]
        if path.endswith("/ticker"):  # the websocket's shape; asked after /trades, so a repeated last keeps its side
            try:
                return [self._ticker(symbol, t, with_last=True) for t in msgspec.convert(data, list[_Ticker])]
            except msgspec.ValidationError as error:
                raise BadFrame(schema_reason(error, _REASONS)) from None
        # /trades, newest first: [{"instId", "tradeId", "px", "sz", "side", "source", "ts"}]; side is the taker's
        return [Update(symbol=symbol, time=_ms(trade["ts"]), last=decimal_str(trade["px"]),
                       last_size=decimal_str(trade["sz"]), last_side=side_str(trade["side"]))
                for trade in reversed(data)]

    def _request_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)  # OKX: alphanumerics, up to 32 characters


def _chunks(symbols):
    symbols = list(symbols)
    return [symbols[at:at + MARKETS_PER_REQUEST] for at in range(0, len(symbols), MARKETS_PER_REQUEST)]


def _request(request_id, op, symbols):
    return orjson.dumps({"id": request_id, "op": op, "args": [
        {"channel": channel, "instId": symbol} for symbol in symbols for channel in CHANNELS]}).decode()


def _spot(inst_id):
    """The unified symbol of a spot instId; None for a derivative's; BadFrame for anything else."""
    if type(inst_id) is str:
        if inst_id in _SPOTS:  # checked before: a push names the same few markets again and again
            return _SPOTS[inst_id]
        if SYMBOL.fullmatch(inst_id):
            return _remember_spot(inst_id, inst_id)
        if _DERIVATIVE.fullmatch(inst_id):
            return _remember_spot(inst_id, None)
    raise BadFrame(f"bad instId: {str(inst_id)[:30]!r}")


_SPOTS: dict = {}  # instId -> its unified symbol, or None for a derivative's
_SPOTS_MAX = 10_000


def _remember_spot(inst_id: str, symbol):
    if len(_SPOTS) >= _SPOTS_MAX:
        _SPOTS.clear()
    _SPOTS[inst_id] = symbol
    return symbol


def _ms(value) -> int:
    """OKX times are epoch milliseconds as a string of digits."""
    if type(value) is not str or not (0 < len(value) <= 16 and value.isascii() and value.isdigit()):
        raise BadFrame(f"bad time: {str(value)[:30]!r}")
    return int(value)


def _answer(body) -> dict:
    """A REST answer, `{"code": "0", "msg": "", "data": [...]}`; BadFrame with OKX's reason otherwise."""
    answer = orjson.loads(body)
    if type(answer) is not dict or answer.get("code") != "0" or type(answer.get("data")) is not list:
        reason = f"{answer.get('code')}: {answer.get('msg')}" if type(answer) is dict else "not an object"
        raise BadFrame(f"OKX error {reason}")
    return answer


class OKXVenue(Venue):
    """OKX's side, for the local exchange: subscribe/unsubscribe acknowledged per arg with the request's id and a
    connId, 60018 for an instId it does not list, "ping" answered "pong"; on subscribe, the latest ticker and trade
    played and a `books` snapshot from the book built from the updates played (checksum as OKX computes it); the REST
    ticker and trades from what was played. No heartbeat of its own (OKX has none)."""

    path = "/ws/v5/public"
    SERVED = ("tickers", "trades", "books")  # the public channels a recording can feed
    NOT_LISTED = "Instrument ID, Instrument ID code or Spread ID doesn't exist."  # REST 51001

    def __init__(self, listed=None, listing_body=None):
        super().__init__(listed, listing_body)
        self._connections = count(1)
        self._latest: dict[str, str] = {}    # "tickers:BTC-USDT" / "trades:BTC-USDT" -> the last such frame played
        self._tickers: dict[str, dict] = {}  # instId -> its latest ticker
        self._trades: dict[str, deque] = {}  # instId -> its recent trades, oldest first
        self._books: dict[str, dict] = {}    # instId -> {"bids": {Decimal: level}, "asks": {...}, "ts": str}

    def route(self, frame):
        if frame == "pong":
            return None  # the recording client's keepalive
        message = orjson.loads(frame)
        arg = message.get("arg")
        if "data" in message and type(arg) is dict:
            return f"{arg.get('channel')}:{arg.get('instId')}"
        if message.get("event") in ("subscribe", "unsubscribe", "error"):
            return None  # replies to the recording client: the venue makes its own
        return BROADCAST  # notices reach every client

    def symbol_of(self, key):
        return key.partition(":")[2]

    @staticmethod
    def listing(body):
        return {entry["instId"] for entry in orjson.loads(body).get("data", ()) if entry.get("state") == "live"}

    def on_open(self, session, path):
        session["keys"] = set()
        session["conn_id"] = f"{next(self._connections):08x}"
        return []

    def on_message(self, session, text):
        if text == "ping":
            return ["pong"]
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if type(message) is not dict:
            return [self._error(session, None, "60012", f"Invalid request: {text[:200]}")]
        request_id, op, args = message.get("id"), message.get("op"), message.get("args")
        if op not in ("subscribe", "unsubscribe"):
            return [self._error(session, request_id, "60019", f"Invalid op: {op}")]
        if type(args) is not list or not args or not all(type(arg) is dict for arg in args):
            return [self._error(session, request_id, "60012", f"Invalid request: {text[:200]}")]
        replies, added = [], []
        for arg in args:
            channel, inst_id = arg.get("channel"), arg.get("instId")
            if type(channel) is not str or type(inst_id) is not str:
                replies.append(self._error(session, request_id, "60013", "Invalid args"))
                continue
            if channel not in self.SERVED or inst_id not in self.listed:
                replies.append(self._error(session, request_id, "60018",
                                           f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. Please use "
                                           "the correct URL, channel and parameters referring to API document."))
                continue
            key = f"{channel}:{inst_id}"
            if op == "subscribe" and key not in session["keys"]:
                session["keys"].add(key)
                added.append(key)
            elif op == "unsubscribe":
                session["keys"].discard(key)
            replies.append(_reply({**_id(request_id), "event": op, "arg": {"channel": channel, "instId": inst_id},
                                   "connId": session.get("conn_id", "")}))
        # Then, as OKX does, what a new subscriber needs at once: the current ticker, the latest trade, the book.
        replies.extend(frame for frame in map(self._snapshot, added) if frame is not None)
        return replies

    def error_frame(self, text):
        return _reply({"event": "error", "code": "64007", "msg": text or "WebSocket internal error"})

    def refusal(self, session, text):
        message = self.request_of(text, "op", "subscribe")
        if message is None:
            return None
        return [self._error(session, message.get("id"), "60014", "Requests too frequent")]

    def observe(self, frame):
        if not frame.startswith('{"arg":'):  # pushes only: acknowledgements and errors change nothing here
            return
        message = orjson.loads(frame)
        channel, inst_id = message["arg"]["channel"], message["arg"]["instId"]
        data = message["data"]
        if channel == "tickers":
            self._latest[f"tickers:{inst_id}"] = frame
            self._tickers[inst_id] = data[-1]
        elif channel == "trades":
            self._latest[f"trades:{inst_id}"] = frame
            self._trades.setdefault(inst_id, deque(maxlen=500)).extend(data)
        elif channel == "books":
            book = self._books.get(inst_id)
            if book is None or message.get("action") == "snapshot":
                book = self._books[inst_id] = {"bids": {}, "asks": {}, "ts": ""}
            for part in data:
                for side in ("bids", "asks"):
                    _apply_levels(book[side], part.get(side, ()))
                book["ts"] = part.get("ts", book["ts"])

    def book_top(self, inst_id: str, depth: int = 400) -> tuple[list, list]:
        """The bids (best first) and asks (best first) of the book built from what was played."""
        book = self._books.get(inst_id) or {"bids": {}, "asks": {}}
        bids = [book["bids"][price] for price in sorted(book["bids"], reverse=True)[:depth]]
        asks = [book["asks"][price] for price in sorted(book["asks"])[:depth]]
        return bids, asks

    def rest(self, path, query):
        """`/api/v5/market/ticker` and `/api/v5/market/trades` as OKX answers them, from what has been played, and
        `/api/v5/public/instruments` when a listing was recorded."""
        if path == "/api/v5/public/instruments":
            return (200, self.listing_body) if self.listing_body else None
        if path not in ("/api/v5/market/ticker", "/api/v5/market/trades"):
            return None
        inst_id = query.get("instId", "")
        if inst_id not in self.listed:
            return 200, _reply({"code": "51001", "msg": self.NOT_LISTED, "data": []})
        if path.endswith("/ticker"):
            ticker = self._tickers.get(inst_id)
            return 200, _reply({"code": "0", "msg": "", "data": [ticker] if ticker else []})
        limit = query.get("limit", "100")
        limit = min(int(limit), 500) if limit.isdigit() else 100
        trades = list(self._trades.get(inst_id, ()))[::-1][:limit]  # newest first
        return 200, _reply({"code": "0", "msg": "", "data": [
            {field: trade[field] for field in ("instId", "tradeId", "px", "sz", "side", "source", "ts")
             if field in trade} for trade in trades]})

    def _snapshot(self, key):
        channel, _, inst_id = key.partition(":")
        if channel != "books":
            return self._latest.get(key)
        if inst_id not in self._books:
            return None
        bids, asks = self.book_top(inst_id)
        return _reply({"arg": {"channel": "books", "instId": inst_id}, "action": "snapshot", "data": [
            {"asks": asks, "bids": bids, "ts": self._books[inst_id]["ts"], "checksum": checksum(bids, asks)}]})

    @staticmethod
    def _error(session, request_id, code, text):
        return _reply({**_id(request_id), "event": "error", "code": code, "msg": text,
                       "connId": session.get("conn_id", "")})


def checksum(bids, asks) -> int:
    """OKX's book checksum: CRC32 (signed) of the best 25 bids and asks, "price:size" alternating bid and ask."""
    parts = []
    for at in range(min(25, max(len(bids), len(asks)))):
        for levels in (bids, asks):
            if at < len(levels):
                parts += levels[at][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def _apply_levels(levels: dict, changes) -> None:
    """A size of 0 removes the price; any other replaces it (price keyed by its Decimal value)."""
    for level in changes:
        try:
            price, size = Decimal(level[0]), Decimal(level[1])
        except (InvalidOperation, TypeError, IndexError):
            continue  # garbage is played as is; it changes no book
        if size == 0:
            levels.pop(price, None)
        else:
            levels[price] = level


def _id(request_id):
    return {"id": request_id} if request_id is not None else {}


def _reply(message):
    return orjson.dumps(message).decode()


OKX.venue = OKXVenue
