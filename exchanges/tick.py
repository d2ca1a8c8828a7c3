"""What exchange parsers produce, and how it merges into the one tick shape everything downstream sees.

A parser turns one frame into a list of items: `Update`s (market data) and protocol events (`Subscribed`,
`Rejected`, `ExchangeError`, `Heartbeat`). `TickBook` merges updates per (exchange, symbol) into full ticks.
Prices and sizes stay the decimal strings the exchange sent.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable, NamedTuple, Optional

import msgspec

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")  # ASCII digits only: \d takes "١٢٣"
SYMBOL = re.compile(r"[A-Z0-9]{1,15}-[A-Z0-9]{1,15}")  # the unified BASE-QUOTE every market uses
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class BadFrame(ValueError):
    """A frame that is not what the exchange's protocol says; the listener counts, logs and skips it."""


EMPTY = ""  # an Update's bid or ask that says "this book side is empty now" (None: "this frame says nothing")


class Update(msgspec.Struct, frozen=True, gc=False):
    """Part of a market's state from one frame; None means 'this frame says nothing about it'.

    A bid (or ask) of EMPTY says the side is empty now: the tick shows it null and names it in "empty".
    `sequence` is the venue's ordering field where its documentation gives one (Coinbase `sequence`, Binance
    `u` / `a`, Gemini's trade `event_id`): an update older than one already applied to the same part of the state
    is dropped, never merged (see TickBook.apply).

    A msgspec Struct, not a NamedTuple: built positionally in C (a third of what `tuple.__new__` on a NamedTuple
    costs, one per frame: the parse benchmark). Frozen: read-only and hashable, as a tuple was; compare it whole or
    by field (it is not a sequence: no unpacking or slicing)."""
    symbol: str                      # unified BASE-QUOTE
    time: Optional[int] = None       # exchange event time, epoch ms UTC; None when the frame carries none
    bid: Optional[str] = None        # decimal string, EMPTY, or None
    bid_size: Optional[str] = None
    ask: Optional[str] = None        # decimal string, EMPTY, or None
    ask_size: Optional[str] = None
    last: Optional[str] = None
    last_size: Optional[str] = None
    last_side: Optional[str] = None  # "buy" / "sell": the taker's side
    sequence: Optional[int] = None   # the venue's ordering field, or None where it has none


class Subscribed(NamedTuple):
    """The exchange confirmed these symbols (None: the whole pending request, when it names none)."""
    symbols: Optional[tuple] = None


class Rejected(NamedTuple):
    """The exchange refused a symbol (or a request, when symbol is None)."""
    symbol: Optional[str]
    reason: str


class ExchangeError(NamedTuple):
    """An error the exchange sent that is not about one symbol."""
    reason: str


class Heartbeat(NamedTuple):
    """The exchange's own liveness message: proof that it still sends, though not market data."""
    symbol: Optional[str] = None


class Gap(NamedTuple):
    """The exchange says data of this symbol was missed (Coinbase: a heartbeat's last_trade_id ahead of us)."""
    symbol: str
    reason: str


class Reconnect(NamedTuple):
    """The exchange asks the client to reconnect (Bitstamp's `bts:request_reconnect`): a clean reconnect follows."""
    reason: str


TICK_FIELDS = ("bid", "bid_size", "ask", "ask_size", "last", "last_size", "last_side", "empty")
# A tick's "empty": which book sides are known to be empty now, from (bid empty, ask empty).
EMPTY_SIDES = {(False, False): None, (True, False): "bid", (False, True): "ask", (True, True): "both"}


_is_decimal = _DECIMAL.fullmatch
# Strings already checked: quotes repeat the same few prices, and a set lookup is cheaper than the regex (the
# parse benchmark's profile). Bounded: cleared when full, so memory stays flat over days of ticks.
_checked: set = set()
_CHECKED_MAX = 50_000


# The same strings, each with whether it is a price (not zero: zeros are an empty side). The quote paths need both
# answers for a frame's four strings: a dict lookup each costs less than a tuple, a set method and two strips (the
# parse benchmark: 0.28 against 0.69 us a bookTicker).
_priced: dict = {}


def decimal_str(value) -> str:
    """The exchange's decimal string, checked but unchanged (never through float)."""
    try:
        if value in _checked:  # only strings ever enter it
            return value
    except TypeError:  # unhashable: a list or an object where a price belongs
        pass
    if type(value) is str and _is_decimal(value):
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()
            _priced.clear()
        _checked.add(value)
        _priced[value] = not is_zero(value)
        return value
    raise BadFrame(f"not a decimal string: {str(value)[:40]!r}")


# all_checked((a, b, ...)) -> bool: each of these strings was checked by decimal_str already (C, no Python frame);
# the hot paths ask it first and call decimals only when it says no.
all_checked = _checked.issuperset
# priced(text) -> True: checked, and not zero; False: checked, zero; None: not checked yet (ask decimals). C, as above.
priced = _priced.get
checked = _priced  # `text in checked`: the same as all_checked((text,)), without the tuple


def decimals(*values: str) -> None:
    """Check strings a schema decoded (msgspec types them `str`) as decimal strings; raises BadFrame "not a
    decimal string". One set lookup for all of them when each was seen before (quotes repeat their prices)."""
    if not _checked.issuperset(values):
        for value in values:
            decimal_str(value)


def quote_side(price: str, size: str) -> tuple[str, str]:
    """A best bid or ask already checked by `decimals`: (price, size), or (EMPTY, EMPTY) where the exchange sends
    zeros for a side with no order (as book_side, without checking again)."""
    return _EMPTY_PAIR if is_zero(price) else (price, size)


_EMPTY_PAIR = (EMPTY, EMPTY)


def schema_reason(error: Exception, reasons: dict) -> str:
    """The bad-frame reason for a msgspec decoder's error (msgspec 0.23: its message names the field path, e.g.
    "Expected `str`, got `null` - at `$.data.b`" or "Object missing required field `b` - at `$.data`").

    `reasons` maps a field name, or a path with a list's index emptied ("$.changes[][0]"; a top-level list's:
    "$[][2]"), to the reason a wrong value there is counted under ("not a decimal string", "bad side" ...);
    ("missing", name) overrides the default "missing field 'name'". A frame that is not JSON is "JSONDecodeError", a
    top level that is not an object "not a JSON object", any other field "bad 'name'"."""
    if not isinstance(error, msgspec.ValidationError):
        return "JSONDecodeError"
    text = str(error)
    path = text.rpartition(" - at `")[2].rstrip("`") if " - at `" in text else "$"
    if text.startswith("Object missing required field `"):
        name = text[len("Object missing required field `"):].partition("`")[0]
        return reasons.get(("missing", name)) or f"missing field {name[:40]!r}"
    if path == "$":
        return reasons.get("$", "not a JSON object")
    general = _INDEX.sub(r"\1[]", path)
    if general in reasons:
        return reasons[general]
    entry = _FIRST_INDEX.sub("$[]", path)  # a top-level list of positional entries (Kraken's trades): "$[4][2]"
    if entry in reasons:
        return reasons[entry]
    names = _NAME.findall(path)
    name = names[-1] if names else path
    return reasons.get(name) or f"bad {name[:40]!r}"


_INDEX = re.compile(r"(\.[^.\[]+)\[[0-9]+\]")  # a list's index after its name: "$.changes[3][1]" -> "$.changes[][1]"
_FIRST_INDEX = re.compile(r"^\$\[[0-9]+\]")  # "$[4][2]" -> "$[][2]"
_NAME = re.compile(r"\.([^.\[]+)")


def unified_symbol(native, known: dict, split: Callable[[str], Optional[tuple[str, str]]], *, bad: str,
                   unknown: str = "unknown symbol {}", pattern: Optional[re.Pattern] = None) -> str:
    """A venue's native symbol ("BTCUSDT", "btcusd") as BASE-QUOTE: from `known` (what was subscribed or listed),
    else split by `split` into (base, quote), checked and remembered in `known`. Raises BadFrame `bad` (not a
    string, or not `pattern`) or `unknown` (no quote it knows); "{}" in either is the native symbol (repr, at most
    30 characters). Binance, Gemini and Bitstamp share it; the reason names stay each venue's own."""
    if type(native) is not str or (pattern is not None and not pattern.fullmatch(native)):
        raise BadFrame(bad.format(repr(str(native)[:30])))
    unified = known.get(native)
    if unified is not None:
        return unified
    parts = split(native)
    if parts is None:
        raise BadFrame(unknown.format(repr(native[:30])))
    unified = symbol_str(f"{parts[0]}-{parts[1]}")
    if len(known) < _KNOWN_MAX:  # split once (a recording read with nothing subscribed); bounded against junk
        known[native] = unified
    return unified


_KNOWN_MAX = 10_000


def optional_decimal(value) -> Optional[str]:
    """None stays None (the field was not sent); anything else must be a decimal string."""
    return None if value is None else decimal_str(value)


def is_zero(text: str) -> bool:
    """A checked decimal string (or "") that is zero: by its digits, or by its value when it has an exponent
    ("0E-8"). A pure function: the hot paths may ask `priced` first, but a cache cleared by another thread between
    the check and the answer must never turn a price into an empty side."""
    if "e" in text or "E" in text:
        return Decimal(text) == 0
    return not text.strip("0.")


def book_price(value) -> str:
    """A best bid or ask as sent: a decimal string, or EMPTY where the exchange says the side is empty ("" as OKX
    sends, or a zero price as Coinbase sends for a product not trading yet: zeros are not prices)."""
    if value == "":
        return EMPTY
    checked = decimal_str(value)
    return EMPTY if is_zero(checked) else checked


def book_side(price, size) -> tuple[str, str]:
    """A best bid or ask with its size: (price, size), or (EMPTY, EMPTY) where the side is empty (see book_price)."""
    price = book_price(price)
    return (price, decimal_str(size)) if price else (EMPTY, EMPTY)


def rest_book_price(value) -> str:
    """A REST ticker's best bid or ask, sent without its size (Bitstamp's /api/v2/ticker, Gemini's /v1/pubticker):
    as book_price, and null (or a field left out: None) is EMPTY too, since these answers state the whole top of
    book; a side with no order must not throw the answer away. Raises BadFrame for anything else."""
    return EMPTY if value is None else book_price(value)


def last_price(value) -> Optional[str]:
    """A ticker's last trade price: None where there is none yet ("", zero, or not sent)."""
    if value is None or value == "":
        return None
    checked = decimal_str(value)
    return None if is_zero(checked) else checked


def symbol_str(value) -> str:
    """A unified BASE-QUOTE symbol, or BadFrame: nothing else may name a market."""
    if type(value) is str and value in _symbols:  # only checked strings enter it
        return value
    if type(value) is not str or not SYMBOL.fullmatch(value):
        raise BadFrame(f"bad symbol: {str(value)[:40]!r}")
    if len(_symbols) >= _CHECKED_MAX:
        _symbols.clear()
    _symbols.add(value)
    return value


_symbols: set = set()


def split_by_quote(native: str, quotes) -> Optional[tuple[str, str]]:
    """'BTCUSDT' -> ('BTC', 'USDT') by the first of `quotes` (longest first) it ends with; None if none does. For
    exchanges whose symbols join base and quote with no separator."""
    for quote in quotes:
        if native.endswith(quote) and len(native) > len(quote):
            return native[:-len(quote)], quote
    return None


def side_str(value) -> str:
    if value not in ("buy", "sell"):
        raise BadFrame(f"bad side: {str(value)[:20]!r}")
    return value


def iso_to_ms(value) -> int:
    """'2021-04-17T16:43:30.244075Z' -> epoch milliseconds (UTC), truncated, exact integer arithmetic. Raises
    BadFrame "bad time" or "time without zone"."""
    # Coinbase's shape (six digits, Z): the second's "YYYY-MM-DDTHH:MM:SS" read by datetime once and remembered
    # (a second holds many frames), the milliseconds are the first three digits (the parse benchmark's profile).
    shaped = (type(value) is str and len(value) == 27 and value[19] == "." and value[26] == "Z"
              and value[20:26].isdigit() and value[20:26].isascii())
    if shaped:
        second = _SECONDS.get(value[:19])
        if second is not None:
            return second + int(value[20:23])
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadFrame(f"bad time: {str(value)[:40]!r}") from None
    if moment.tzinfo is None:
        raise BadFrame(f"time without zone: {value[:40]!r}")
    delta = moment - _EPOCH
    ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if shaped:
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[value[:19]] = ms - int(value[20:23])  # that second, in epoch ms
    return ms


_SECONDS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" (UTC, from a 'Z' time) -> its epoch ms
_SECONDS_MAX = 10_000


def epoch_ms(value) -> int:
    if type(value) is not int or value < 0:
        raise BadFrame(f"bad epoch ms: {str(value)[:20]!r}")
    return value


def received_at(entry: dict) -> Optional[int]:
    """When an entry of a market's stream happened on our clock, epoch ms UTC: a tick's receipt, a gap's end
    ({"kind": "gap", "from", "to", ...}); None when it has neither."""
    return entry.get("received") or entry.get("to")


def split_market(market: str) -> tuple[str, str]:
    """'coinbase:BTC-USD' -> ('coinbase', 'BTC-USD')."""
    exchange, _, symbol = market.partition(":")
    return exchange, symbol


class TickBook:
    """The latest full state of each market of one exchange; every update yields the merged tick.

    Tick shape: {"exchange", "symbol", "time" (exchange epoch ms UTC or None), "received" (ours, epoch ms UTC),
    "bid", "bid_size", "ask", "ask_size", "last", "last_size" (decimal strings or None), "last_side" ("buy" /
    "sell" / None), "empty" (None, "bid", "ask" or "both": the sides that are empty now, their price null)}.
    A null price not named in "empty" is not known yet.

    A price travels with its own size (and a trade with its side): an update that names a new bid without a size
    clears the old size rather than pairing it with a price it never belonged to.

    Order: an update carrying a `sequence` lower than the last one applied to the same part of the state (the quote,
    or the last trade: venues number them apart, as Binance's `u` and `a`) is older than what is shown: `apply`
    returns None and counts it in `older`. `reset` forgets everything: after a reconnect, nothing from before the
    gap is merged with what follows it (a new snapshot replaces the book before any trade is merged with it)."""

    def __init__(self, exchange: str):
        self.exchange = exchange
        # symbol -> [the quote's sequence, the last trade's sequence, the state]: one lookup a tick finds all three
        self._markets: dict[str, list] = {}
        self.older = 0  # updates dropped as older than the state they would have replaced

    def apply(self, update: Update, received: int) -> Optional[dict]:
        """The merged tick after `update`, or None when the update is older than the state (by its sequence)."""
        # Single stores, not tuple assignments, and only the fields this update needs read: this runs once per
        # tick (the parse benchmark's line profile).
        symbol = update.symbol
        market = self._markets.get(symbol)
        if market is None:
            market = self._markets[symbol] = [None, None, {
                "exchange": self.exchange, "symbol": symbol, "time": None, "received": None,
                **dict.fromkeys(TICK_FIELDS)}]
        bid, ask, last, sequence = update.bid, update.ask, update.last, update.sequence
        quote = bid is not None or ask is not None
        if sequence is not None:
            if quote:
                if market[0] is not None and sequence < market[0]:
                    self.older += 1
                    return None
                if last is not None:
                    if market[1] is not None and sequence < market[1]:
                        self.older += 1
                        return None
                    market[1] = sequence
                market[0] = sequence
            elif last is not None:
                if market[1] is not None and sequence < market[1]:
                    self.older += 1
                    return None
                market[1] = sequence
        state = market[2]
        if quote:
            if bid and ask:  # the common case: both sides priced
                state["bid"] = bid
                state["bid_size"] = update.bid_size
                state["ask"] = ask
                state["ask_size"] = update.ask_size
                if state["empty"] is not None:
                    state["empty"] = None
            else:
                empty = state["empty"]
                bid_empty = empty == "bid" or empty == "both"
                ask_empty = empty == "ask" or empty == "both"
                if bid is not None:
                    bid_empty = not bid
                    state["bid"], state["bid_size"] = (bid, update.bid_size) if bid else (None, None)
                if ask is not None:
                    ask_empty = not ask
                    state["ask"], state["ask_size"] = (ask, update.ask_size) if ask else (None, None)
                state["empty"] = EMPTY_SIDES[bid_empty, ask_empty]
        if last is not None:
            last_side, last_size = update.last_side, update.last_size
            if last_side is None and last == state["last"] and last_size == state["last_size"]:
                last_side = state["last_side"]  # a ticker repeating the trade just seen (Kraken's "c"): same side
            state["last"] = last
            state["last_size"] = last_size
            state["last_side"] = last_side
        tick = state.copy()
        tick["time"] = update.time
        tick["received"] = received
        return tick

    def sequences(self) -> dict[str, tuple]:
        """symbol -> (the quote's sequence, the last trade's sequence) applied on this connection (None: none yet)."""
        return {symbol: (market[0], market[1]) for symbol, market in self._markets.items()}

    def forget(self, symbol: str) -> None:
        self._markets.pop(symbol, None)

    def reset(self) -> None:
        """A new connection: every market starts again from what the exchange sends on it."""
        self._markets.clear()
