"""OrderBook against a plain reference book: random level changes (hypothesis), the top after each one exact."""
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchanges.book import OrderBook
from exchanges.tick import EMPTY, BadFrame

PRICES = ["99.5", "99.50", "100", "100.0", "100.25", "101", "0.1", "0.10", "250"]  # "0.1" and "0.10": one level
SIZES = ["0", "0.000", "1", "2.5", "0.01", "1e-3", "0E-8"]  # zero as "0", "0.000" and "0E-8" removes the level

changes = st.lists(st.tuples(st.sampled_from(["bid", "ask"]), st.sampled_from(PRICES), st.sampled_from(SIZES)),
                   max_size=60)


def reference_top(bids: dict, asks: dict) -> tuple:
    bid = bids[max(bids)] if bids else (EMPTY, EMPTY)
    ask = asks[min(asks)] if asks else (EMPTY, EMPTY)
    return (*bid, *ask)


@settings(max_examples=100, deadline=None)
@given(first=changes, then=changes, drops=st.lists(st.sampled_from(["bid", "ask"]), max_size=4))
def test_the_top_is_the_reference_books_after_every_change(first, then, drops):
    book, bids, asks = OrderBook(), {}, {}
    for side, price, size in first + then:
        book.set(side, price, size)
        levels = bids if side == "bid" else asks
        if Decimal(size) == 0:
            levels.pop(Decimal(price), None)
        else:
            levels[Decimal(price)] = (price, size)
        assert book.top() == reference_top(bids, asks)
        assert book.crossed() == (bool(bids) and bool(asks) and max(bids) >= min(asks))
    for side in drops:  # a stale best level dropped (Gemini's uncrossing)
        book.pop_best(side)
        levels = bids if side == "bid" else asks
        if levels:
            levels.pop(max(levels) if side == "bid" else min(levels))
        assert book.top() == reference_top(bids, asks)
    loaded = OrderBook()
    loaded.load(first + then)  # the same levels as a snapshot: the same book
    fresh = OrderBook()
    for side, price, size in first + then:
        fresh.set(side, price, size)
    assert (loaded.top(), dict(loaded.bids), dict(loaded.asks)) == (fresh.top(), dict(fresh.bids), dict(fresh.asks))


@settings(max_examples=100, deadline=None)
@given(first=changes, then=changes)
def test_apply_gives_the_book_set_gives(first, then):
    """OrderBook.apply (checked strings, one call per frame) makes the same book as `set` level by level, with the
    sides named as Coinbase and Gemini name them too."""
    by_set, applied = OrderBook(), OrderBook()
    for side, price, size in first:
        by_set.set(side, price, size)
    applied.apply(first)
    assert by_set.top() == applied.top()  # a best key known before `then`
    for side, price, size in then:
        by_set.set(side, price, size)
    applied.apply([({"bid": "buy", "ask": "sell"}[side], price, size) for side, price, size in then])
    assert (by_set.top(), dict(by_set.bids), dict(by_set.asks)) == (applied.top(), dict(applied.bids),
                                                                    dict(applied.asks))
    assert by_set.crossed() == applied.crossed()


@pytest.mark.parametrize("side, price, size", [("bid", "1e5", "1"), ("ask", "abc", "1"), ("bid", "1", "x"),
                                               ("middle", "1", "1"), ("ask", None, "1")])
def test_a_bad_level_raises_and_leaves_the_book_as_it_was(side, price, size):
    book = OrderBook()
    book.set("bid", "99", "1")
    book.set("ask", "101", "2")
    with pytest.raises(BadFrame):
        book.set(side, price, size)
    assert book.top() == ("99", "1", "101", "2")


def test_the_top_stays_exact_while_levels_come_and_go_for_long():
    """Thousands of levels added and removed at random (the heaps' stale keys pile up and are rebuilt away): after
    each change the top is the reference book's, and `levels` gives each side best first."""
    import random
    chooser = random.Random(17)
    prices = [f"{100 + step / 4:.2f}" for step in range(-200, 200)]
    book, bids, asks = OrderBook(), {}, {}
    for _ in range(6000):
        side, price = chooser.choice(("bid", "ask")), chooser.choice(prices)
        size = chooser.choice(("0", "0", "1.5", "2"))
        book.set(side, price, size)
        levels = bids if side == "bid" else asks
        if size == "0":
            levels.pop(Decimal(price), None)
        else:
            levels[Decimal(price)] = (price, size)
        assert book.top() == reference_top(bids, asks)
    assert book.levels("bid") == [bids[key] for key in sorted(bids, reverse=True)]
    assert book.levels("ask") == [asks[key] for key in sorted(asks)]
    # stale keys are rebuilt away as they pile up: a heap never holds many more keys than there are prices
    assert len(book._bid_heap) <= 2 * len(prices) + 65 and len(book._ask_heap) <= 2 * len(prices) + 65


def test_levels_coming_and_going_below_the_best_keep_the_heap_small():
    """Levels added and removed below an unchanged best never reach a heap's top, so nothing pops them lazily: the
    heap is rebuilt from the live levels instead (memory flat over a day of such changes), the top unchanged."""
    book = OrderBook()
    book.set("bid", "1000", "1")
    book.set("ask", "1001", "1")
    for cycle in range(5000):
        price = str(1 + cycle % 50)
        book.set("bid", price, "1")
        book.set("ask", str(2000 + cycle % 50), "1")
        book.set("bid", price, "0")
        book.set("ask", str(2000 + cycle % 50), "0")
    assert book.top() == ("1000", "1", "1001", "1")
    assert len(book._bid_heap) <= 2 * 2 + 64 and len(book._ask_heap) <= 2 * 2 + 64
