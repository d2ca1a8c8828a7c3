"""An order book kept from an exchange's level updates, for venues that send a book rather than a top of book
(Gemini `l2_updates`, Bitstamp). Only its top is published; prices and sizes stay the exchange's strings.

Levels are ordered by the Decimal value of the price (the string is what is kept and shown): "0.10" and "0.1" are
one level, and no float ever decides an order. Only the top is read on the live path, so a side is a dict and a heap,
not a sorted map (see OrderBook).
"""
from __future__ import annotations

from decimal import Decimal
from heapq import heapify, heappop, heappush
from itertools import compress, repeat
from operator import is_, itemgetter, neg, not_
from typing import Optional


from .tick import EMPTY, BadFrame, all_checked, decimal_str, decimals, is_zero, priced

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


def check_changes(changes) -> None:
    """Check the prices and sizes of level changes [(side, price, size), ...] a schema decoded as decimal strings
    (tick.decimals), all of them before a book is touched. Raises BadFrame "not a decimal string". In C when each
    string was seen before (two set walks over itemgetters: no Python loop per level)."""
    if not (all_checked(map(_PRICE, changes)) and all_checked(map(_SIZE, changes))):
        decimals(*map(_PRICE, changes), *map(_SIZE, changes))


_SIDE, _PRICE, _SIZE = itemgetter(0), itemgetter(1), itemgetter(2)


def any_none(values: list) -> bool:
    """Whether a list holds None, by identity (`None in keys` asks each Decimal's __eq__: a thousand-level
    snapshot's profile)."""
    return any(map(is_, values, repeat(None)))


_BID_NAMES, _SIDE_NAMES = frozenset(("bid", "buy")), frozenset(("bid", "buy", "ask", "sell"))


def _heap(keys) -> list:
    """A heap of `keys` (a side's, the bids' negated), built in C: a snapshot holds thousands of levels."""
    heap = list(keys)
    heapify(heap)
    return heap


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

    Only the top is published, so a side is a plain dict {Decimal price: (price, size)} (`bids`, `asks`: read by
    anyone, changed only through these methods) with its best key kept beside it, and a heap of its keys (the bids'
    negated) to find the next best when the best level goes. A level new to the book costs a dict insert and a
    heappush, a removal a dict pop, both in C (a SortedDict's sorted insert and removal were pure Python per level:
    the parse benchmark's profile). The heap is cleaned lazily: a key no longer in its dict is popped when it comes
    to the top, and the heap is rebuilt from the dict when stale keys outnumber live ones. `levels` sorts a side
    on demand (a venue's snapshot, not the live path)."""
    __slots__ = ("bids", "asks", "_bid", "_ask", "_bid_heap", "_ask_heap")

    def __init__(self):
        self.bids: dict = {}  # Decimal price -> (price, size)
        self.asks: dict = {}
        self._bid = self._ask = None  # the best keys; None: not known (found again on demand from the heaps)
        self._bid_heap: list = []  # negated bid keys (a max-heap), stale ones included
        self._ask_heap: list = []  # ask keys

    def clear(self) -> None:
        self.replace({}, {})

    def replace(self, bids: dict, asks: dict) -> None:
        """A whole book at once (a snapshot): {Decimal(price): (price, size)} per side, checked by the caller."""
        self.bids, self.asks = bids, asks
        self._bid_heap, self._ask_heap = _heap(map(neg, bids)), _heap(asks)
        self._bid = self._ask = None

    def levels(self, side: str) -> list[tuple[str, str]]:
        """A side's (price, size) levels, best first (highest bid, lowest ask)."""
        if side == "bid":
            return [self.bids[key] for key in sorted(self.bids, reverse=True)]
        return [self.asks[key] for key in sorted(self.asks)]

    def load(self, levels) -> None:
        """A whole book from level changes in order (a snapshot), their strings checked by the caller as for
        `apply`: the same book as `apply` after `clear`, built at once. Raises BadFrame on a bad side or a price
        with an exponent, the book left as it was."""
        levels = levels if type(levels) is list else list(levels)
        # The common snapshot (every side named right, no zero size) in whole-list steps, C throughout: a snapshot
        # holds thousands of levels. Anything else level by level, in order, below.
        prices, sizes, sides = list(map(_PRICE, levels)), list(map(_SIZE, levels)), list(map(_SIDE, levels))
        keys = list(map(_KEYS.get, prices))
        if any_none(keys):
            keys = [price_key(price) if key is None else key for key, price in zip(keys, prices)]
        # checked by tick.decimals, so each known with whether it is zero: all True, none zero and none forgotten
        if all(map(priced, sizes)) and _SIDE_NAMES.issuperset(sides):
            is_bid = list(map(_BID_NAMES.__contains__, sides))
            self.replace(dict(compress(zip(keys, zip(prices, sizes)), is_bid)),
                         dict(compress(zip(keys, zip(prices, sizes)), map(not_, is_bid))))
            return
        bids, asks = {}, {}
        for side, price, size, key in zip(sides, prices, sizes, keys):
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
        """Apply one level: `side` is "bid" or "ask"; raises BadFrame on a bad price or size (the book unchanged)."""
        _level(side, price, size)  # checked first: a bad level leaves the book as it was
        self.apply(((side, price, size),))

    def apply(self, changes) -> None:
        """Apply level changes whose strings the caller checked as decimal strings already (a schema, then
        tick.decimals over the whole frame): ("bid" | "ask", price, size) triples, Coinbase's and Gemini's "buy" /
        "sell" taken as "bid" / "ask"; a size of zero removes the level. Raises BadFrame on a bad side or a price
        with an exponent (price_key), after the changes before it."""
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
                        bids[key] = (price, size)  # a level's size changed: the heap already holds its key
                    else:
                        bids[key] = (price, size)
                        heap = self._bid_heap
                        heappush(heap, -key)
                        if len(heap) > 2 * len(bids) + 64:  # stale keys outnumber live ones: rebuilt (flat memory)
                            self._bid_heap = _heap(map(neg, bids))
                        if bid is not None and key > bid:
                            bid = key
                elif side == "ask" or side == "sell":
                    if not live:
                        if asks.pop(key, None) is not None and key == ask:
                            ask = None
                    elif key in asks:
                        asks[key] = (price, size)
                    else:
                        asks[key] = (price, size)
                        heap = self._ask_heap
                        heappush(heap, key)
                        if len(heap) > 2 * len(asks) + 64:
                            self._ask_heap = _heap(asks)
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
                self._bid = self._best(self.bids, self._bid_heap, True)
            return self._bid
        if self._ask is None and self.asks:
            self._ask = self._best(self.asks, self._ask_heap, False)
        return self._ask

    @staticmethod
    def _best(levels: dict, heap: list, negated: bool):
        """The best key of a side that has levels, its heap's stale keys popped on the way."""
        while True:
            key = -heap[0] if negated else heap[0]
            if key in levels:
                return key
            heappop(heap)

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
        bid = _EMPTY_SIDE if bid is None else self.bids[bid]
        ask = _EMPTY_SIDE if ask is None else self.asks[ask]
        return bid[0], bid[1], ask[0], ask[1]

    def crossed(self) -> bool:
        """Best bid at or above best ask: the book is out of step with the exchange (a missed update)."""
        bid, ask = self.best("bid"), self.best("ask")
        return bid is not None and ask is not None and bid >= ask
