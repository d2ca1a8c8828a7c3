"""The cross-exchange spread on hand-checked cases: Decimal to the last digit, crossed books, stale venues."""
from dashboard.spread import spread

NOW = 1_795_600_010_000


def quote(exchange, bid, ask, age_ms=100, healthy=True):
    return {"exchange": exchange, "symbol": "BTC-USD", "bid": bid, "ask": ask, "received": NOW - age_ms,
            "healthy": healthy}


def test_best_bid_and_ask_across_venues_and_the_spread_in_basis_points():
    row = spread("BTC-USD", [quote("coinbase", "100.10", "100.20", 300), quote("binanceus", "100.15", "100.30")], NOW)
    assert row["best_bid"] == {"price": "100.15", "exchange": "binanceus", "age_ms": 100}
    assert row["best_ask"] == {"price": "100.20", "exchange": "coinbase", "age_ms": 300}
    # 0.05 / ((100.20 + 100.15) / 2) * 10000 = 0.05 / 100.175 * 10000 = 4.9912...
    assert (row["spread"], row["spread_bps"], row["crossed"]) == ("0.05", "4.99", False)
    assert row["quote"] == "USD" and [v["exchange"] for v in row["venues"]] == ["binanceus", "coinbase"]


def test_a_crossed_book_is_flagged_with_a_negative_spread():
    row = spread("BTC-USD", [quote("coinbase", "101.00", "101.10"), quote("binanceus", "101.20", "101.30")], NOW)
    # buy at 101.10 on Coinbase, sell at 101.20 on Binance.US: -0.10 / 101.15 * 10000 = -9.886...
    assert (row["spread"], row["spread_bps"], row["crossed"]) == ("-0.10", "-9.89", True)
    assert (row["best_bid"]["exchange"], row["best_ask"]["exchange"]) == ("binanceus", "coinbase")


def test_stale_venues_are_listed_but_excluded():
    row = spread("BTC-USD", [quote("coinbase", "100.10", "100.20"),
                             quote("binanceus", "200", "201", age_ms=60_000, healthy=False)], NOW)
    assert row["best_bid"]["exchange"] == row["best_ask"]["exchange"] == "coinbase"
    # 0.10 / 100.15 * 10000 = 9.98502... -> 9.99
    assert (row["spread"], row["spread_bps"]) == ("0.10", "9.99")
    stale = next(v for v in row["venues"] if v["exchange"] == "binanceus")
    assert stale["excluded"] == "feed not live" and stale["age_ms"] == 60_000


def test_tiny_prices_stay_exact():
    row = spread("SKL-BTC", [quote("coinbase", "0.00001305", "0.00001306")], NOW)
    assert row["spread"] == "0.00000001"  # a float would say 1.0000000000000001e-08


def test_missing_sides_give_no_spread():
    row = spread("BTC-USD", [quote("coinbase", None, "100.20"), quote("binance", "bad", None)], NOW)
    assert row["best_bid"] is None and row["best_ask"]["price"] == "100.20" and row["spread"] is None
    assert spread("BTC-USD", [], NOW)["venues"] == []
