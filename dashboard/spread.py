"""Cross-exchange spread of one pair: where it is cheapest to buy and best to sell, right to the last digit.

Only one pair at a time, so only one quote currency: BTC-USD and BTC-USDT are different pairs, shown side by side,
never netted. All arithmetic in Decimal on the exchanges' own strings.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Optional

BPS = Decimal(10_000)
BPS_PLACES = Decimal("0.01")


def _decimal(text) -> Optional[Decimal]:
    try:
        return Decimal(text) if text is not None else None
    except InvalidOperation:
        return None


COEXIST_MS = 2_000  # how far apart two venues' clocks (and ours) may be for their quotes to count as one moment


def _moment(quote: dict, now: int, replay: bool) -> tuple[Optional[int], Optional[int]]:
    """When the quote held, on the exchanges' clock: (since, until), epoch ms; (None, None) when unknown.

    A quote holds from its exchange time. A venue that sends its quote on every change of the book, on a healthy
    feed, vouches for it until now (no change came since); one that sends it only with a trade (a ticker channel
    such as Coinbase's) vouches for it at its own time only (ExchangeListener.quote_on_every_change). A quote with no exchange time (Binance's bookTicker) is
    placed at its receipt in live mode; in a replay our clock says nothing of when it was recorded."""
    since = quote.get("time")
    if since is None:
        if replay:
            return None, None
        since = quote["received"]
    until = since + max(0, now - quote["received"]) if quote.get("every_change", True) else since
    return since, until


def _span(ms: int) -> str:
    """30_000 -> '30.0 s'; longer spans in minutes, hours or days."""
    for unit, size in (("days", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if ms >= 2 * size:
            return f"{ms // size} {unit}"
    return f"{ms / 1000:.1f} s"


def spread(pair: str, quotes: list[dict], now: int, replay: bool = False) -> dict:
    """`quotes`: the latest tick of `pair` on each exchange, each with "healthy" (its feed live or quiet) and
    "every_change" (the venue sends its quote on every change of the book). Only quotes of one moment are compared
    (see `_moment`): a stale feed, a quote older than its feed can vouch for or recorded on another day is listed
    with the reason it is excluded, and never makes the best bid, the best ask or a crossed market. An empty side
    (null price) is no price. Times are epoch ms UTC; prices the exchanges' decimal strings.

    Returns {"pair", "quote", "venues": [{"exchange", "bid", "ask", "empty", "age_ms", "excluded": reason or ""}],
    "best_bid"/"best_ask": {"price", "exchange", "age_ms"} or None, "spread", "spread_bps" (decimal strings or None),
    "crossed", "computed": `now`}: `computed` (our clock) orders rows, so a page keeps the newest of rows that reach
    it out of order (a subscribe's row and a batch's, under threading)."""
    venues, best_bid, best_ask, moments = [], None, None, {}
    for quote in sorted(quotes, key=lambda q: q["exchange"]):
        venue = {"exchange": quote["exchange"], "bid": quote.get("bid"), "ask": quote.get("ask"),
                 "empty": quote.get("empty"),  # the page shows an empty side as empty, as in the panels
                 "age_ms": now - quote["received"], "excluded": "" if quote["healthy"] else "feed not live"}
        venues.append((venue, quote))
        if not venue["excluded"]:
            moments[quote["exchange"]] = _moment(quote, now, replay)
    known = [moment for moment in moments.values() if moment[0] is not None]
    # The moment everything is compared at: the newest quote's, as long as it holds.
    reference = max(known, key=lambda moment: moment[1]) if known else None
    alone = len(moments) == 1  # one venue is compared with nothing: its own quote is its spread
    for venue, quote in venues:
        if venue["excluded"]:
            continue
        since, until = moments[quote["exchange"]]
        if not alone and since is None:
            venue["excluded"] = "no exchange time: its moment in the recording is unknown"
            continue
        if not alone and until + COEXIST_MS < reference[0]:
            venue["excluded"] = f"not the same moment: quoted {_span(reference[0] - until)} before the others"
            continue
        bid, ask = _decimal(quote.get("bid")), _decimal(quote.get("ask"))
        if bid is not None and (best_bid is None or bid > best_bid[0]):
            best_bid = (bid, venue)
        if ask is not None and (best_ask is None or ask < best_ask[0]):
            best_ask = (ask, venue)
    venues = [venue for venue, _ in venues]
    row = {"pair": pair, "quote": pair.partition("-")[2], "venues": venues, "best_bid": None, "best_ask": None,
           "spread": None, "spread_bps": None, "crossed": False, "computed": now}
    if best_bid:
        row["best_bid"] = {"price": best_bid[1]["bid"], "exchange": best_bid[1]["exchange"],
                           "age_ms": best_bid[1]["age_ms"]}
    if best_ask:
        row["best_ask"] = {"price": best_ask[1]["ask"], "exchange": best_ask[1]["exchange"],
                           "age_ms": best_ask[1]["age_ms"]}
    if best_bid and best_ask:
        difference = best_ask[0] - best_bid[0]
        mid = (best_ask[0] + best_bid[0]) / 2
        row["spread"] = format(difference, "f")  # plain digits, never "1E-8"
        row["spread_bps"] = format((difference / mid * BPS).quantize(BPS_PLACES), "f") if mid else None
        row["crossed"] = best_bid[0] > best_ask[0]  # buy on one venue below what another pays
    return row
