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


def spread(pair: str, quotes: list[dict], now: int) -> dict:
    """`quotes`: the latest tick of `pair` on each exchange, each with a "healthy" flag (its feed live or quiet).
    Stale venues are listed but excluded from the best bid and ask."""
    venues, best_bid, best_ask = [], None, None
    for quote in sorted(quotes, key=lambda q: q["exchange"]):
        bid, ask = _decimal(quote.get("bid")), _decimal(quote.get("ask"))
        venue = {"exchange": quote["exchange"], "bid": quote.get("bid"), "ask": quote.get("ask"),
                 "age_ms": now - quote["received"], "excluded": "" if quote["healthy"] else "feed not live"}
        venues.append(venue)
        if venue["excluded"]:
            continue
        if bid is not None and (best_bid is None or bid > best_bid[0]):
            best_bid = (bid, venue)
        if ask is not None and (best_ask is None or ask < best_ask[0]):
            best_ask = (ask, venue)
    row = {"pair": pair, "quote": pair.partition("-")[2], "venues": venues, "best_bid": None, "best_ask": None,
           "spread": None, "spread_bps": None, "crossed": False}
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
