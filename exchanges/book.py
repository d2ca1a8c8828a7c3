"""An order book kept from an exchange's level updates, for venues that send a book rather than a top of book
(Gemini `l2_updates`, Bitstamp). Only its top is published; prices and sizes stay the exchange's strings.

Levels are ordered by the Decimal value of the price (the string is what is kept and shown): "0.10" and "0.1" are
one level, and no float ever decides an order.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Optional

from sortedcontainers import SortedDict

from .tick import EMPTY, BadFrame, decimal_str, is_zero, priced

_EMPTY_SIDE = (EMPTY, EMPTY)


BOOK_SIDE = {"buy": "bid", "sell": "ask"}  # a change's side as Coinbase and Gemini name it


def book_change(change) -> tuple[str, str, str]:
    """One level change as Coinbase's `l2update` and Gemini's `l2_updates` send it: ["buy", "302.75", "0.00001"] ->
    ("bid", "302.75", "0.00001"), checked (decimal strings; a size of "0" removes the level). Raises BadFrame."""
    if type(change) is not list or len(change) != 3:
        raise BadFrame("bad change")
    side = BOOK_SIDE.get(change[0]) if type(change[0]) is str else None
    if side is None:
        raise BadFrame(f"bad side: {str(change[0])[:20]!r}")
    return side, decimal_str(change[1]), decimal_str(change[2])


def book_to_update(books: dict, dropped: set, key: str, kind: str) -> Optional[OrderBook]:
    """The kept book an update of `key` applies to; None for an update sent before our unsubscribe reached the
    exchange (in flight: skipped). Raises BadFrame "<kind> before its snapshot" when there is no book to apply it
    to (Coinbase's level2 and Gemini's v2 l2 send their whole book first)."""
    book = books.get(key)
    if book is None and key not in dropped:
        raise BadFrame(f"{kind} before its snapshot")
    return book


_KEYS: dict[str, Decimal] = {}  # price string -> its Decimal: a book's prices recur, each is parsed once
_KEYS_MAX = 100_000


def price_key(price) -> Decimal:
    """A level's price string -> the Decimal that orders it (cached). Raises BadFrame: not a decimal string, or
    one with an exponent (books quote plain decimals; an exponent could overflow the ordering)."""
    key = _KEYS.get(price) if type(price) is str else None
    if key is not None:
        return key
    price = decimal_str(price)
    if "e" in price or "E" in price:
        raise BadFrame(f"not a plain decimal: {price[:40]!r}")
    if len(_KEYS) >= _KEYS_MAX:
        _KEYS.clear()
    key = _KEYS[price] = Decimal(price)
    return key


def _level(side: str, price, size) -> tuple:
    """One level of a book frame checked: (its price's key, the size string, whether it is live, i.e. its size is not
    zero). A price is parsed to its Decimal once (price_key, remembered); a size is zero by its digits. Raises
    BadFrame on a bad side, price or size."""
    if side != "bid" and side != "ask":
        raise BadFrame(f"bad book side: {str(side)[:20]!r}")
    key = _KEYS.get(price) if type(price) is str else None
    if key is None:
        key = price_key(price)
    size = decimal_str(size)
    return key, size, not is_zero(size)


class OrderBook:
    """Bids and asks of one market: price -> (price string, size string). A size of zero removes the level.

    `bids` and `asks` are read by anyone (SortedDicts, best last / first) but changed only through these methods:
    the best key of each side is kept beside them, so `top` costs two dict lookups, not two sorted-list walks."""
    __slots__ = ("bids", "asks", "_bid", "_ask")

    def __init__(self):
        self.bids: SortedDict = SortedDict()  # Decimal price -> (price, size), highest last
        self.asks: SortedDict = SortedDict()  # lowest first
        self._bid = self._ask = None  # the best keys; None: not known (found again on demand)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self._bid = self._ask = None

    def replace(self, bids: dict, asks: dict) -> None:
        """A whole book at once (a snapshot): {Decimal(price): (price, size)} per side, checked by the caller."""
        self.bids, self.asks = SortedDict(bids), SortedDict(asks)
        self._bid = self._ask = None

    def load(self, levels) -> None:
        """A whole book from level changes in order (a snapshot), their strings checked by the caller as for
        `apply`: the same book as `apply` after `clear`, sorted once rather than inserted level by level. Raises
        BadFrame on a bad side or a price with an exponent, the book left as it was."""
        bids, asks, keys = {}, {}, _KEYS
        for side, price, size in levels:
            key = keys.get(price)
            if key is None:
                key = price_key(price)
            if side == "bid" or side == "buy":
                side_levels = bids
            elif side == "ask" or side == "sell":
                side_levels = asks
            else:
                raise BadFrame(f"bad book side: {str(side)[:20]!r}")
            live = priced(size)  # checked by tick.decimals, so known with whether it is zero
            if live is None:
                live = not is_zero(size)
            if live:
                side_levels[key] = (price, size)
            else:
                side_levels.pop(key, None)
        self.replace(bids, asks)

    def set(self, side: str, price, size) -> None:
        """Apply one level: `side` is "bid" or "ask"; raises BadFrame on a bad price or size.

        What it costs is kept to what it must (the parse benchmark's profile): a price is parsed to its Decimal
        once (price_key), a size is zero by its digits, a level already in the book is replaced in place, and the
        best key moves only when this level beats it or was it."""
        key, size, live = _level(side, price, size)
        levels, best = (self.bids, self._bid) if side == "bid" else (self.asks, self._ask)
        if live:
            if key in levels:
                dict.__setitem__(levels, key, (price, size))  # same key: its place in the order is unchanged
                return
            levels[key] = (price, size)
            if best is not None and (key > best if side == "bid" else key < best):
                best = key
        else:  # a size of zero removes the level
            if levels.pop(key, None) is None or key != best:
                return
            best = None
        if side == "bid":
            self._bid = best
        else:
            self._ask = best

    def apply(self, changes) -> None:
        """Apply level changes whose strings the caller checked as decimal strings already (a schema, then
        tick.decimals over the whole frame): ("bid" | "ask", price, size) triples, Coinbase's and Gemini's "buy" /
        "sell" taken as "bid" / "ask"; a size of zero removes the level. The same book as `set` on each, in one
        Python frame and without checking each string again (the parse benchmark's profile: a book frame's cost
        was two calls per level). Raises BadFrame on a bad side or a price with an exponent (price_key), after
        the changes before it."""
        bids, asks, bid, ask, keys = self.bids, self.asks, self._bid, self._ask, _KEYS
        try:
            for side, price, size in changes:
                key = keys.get(price)
                if key is None:
                    key = price_key(price)
                live = priced(size)  # checked by tick.decimals, so known with whether it is zero
                if live is None:
                    live = not is_zero(size)
                if side == "bid" or side == "buy":
                    if not live:
                        if bids.pop(key, None) is not None and key == bid:
                            bid = None  # the best level went: found again on demand
                    elif key in bids:
                        dict.__setitem__(bids, key, (price, size))  # same key: its place in the order is unchanged
                    else:
                        bids[key] = (price, size)
                        if bid is not None and key > bid:
                            bid = key
                elif side == "ask" or side == "sell":
                    if not live:
                        if asks.pop(key, None) is not None and key == ask:
                            ask = None
                    elif key in asks:
                        dict.__setitem__(asks, key, (price, size))
                    else:
                        asks[key] = (price, size)
                        if ask is not None and key < ask:
                            ask = key
                else:
                    raise BadFrame(f"bad book side: {str(side)[:20]!r}")
        finally:  # the best keys stay true to the levels, whatever was applied
            self._bid, self._ask = bid, ask

    def best(self, side: str):
        """The best key of a side ("bid" or "ask"), or None when it is empty."""
        if side == "bid":
            if self._bid is None and self.bids:
                self._bid = self.bids.peekitem(-1)[0]
            return self._bid
        if self._ask is None and self.asks:
            self._ask = self.asks.peekitem(0)[0]
        return self._ask

    def pop_best(self, side: str) -> None:
        """Remove the best level of a side (a stale level under a crossing)."""
        key = self.best(side)
        if key is not None:
            self.set(side, (self.bids if side == "bid" else self.asks)[key][0], "0")

    def top(self) -> tuple[str, str, str, str]:
        """(bid, bid_size, ask, ask_size) of the best levels, decimal strings; EMPTY ("") for both of a side that is
        empty, which an Update carries as "this side is empty now"."""
        bid = self._bid
        if bid is None:
            bid = self.best("bid")
        ask = self._ask
        if ask is None:
            ask = self.best("ask")
        bid = _EMPTY_SIDE if bid is None else dict.__getitem__(self.bids, bid)
        ask = _EMPTY_SIDE if ask is None else dict.__getitem__(self.asks, ask)
        return bid[0], bid[1], ask[0], ask[1]

    def crossed(self) -> bool:
        """Best bid at or above best ask: the book is out of step with the exchange (a missed update)."""
        bid, ask = self.best("bid"), self.best("ask")
        return bid is not None and ask is not None and bid >= ask
