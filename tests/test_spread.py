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
    assert row["computed"] == NOW  # our clock, epoch ms: a page keeps the row computed last


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


def timed(exchange, bid, ask, time, age_ms=100, every_change=True):
    return {**quote(exchange, bid, ask, age_ms), "time": time, "every_change": every_change}


def test_quotes_recorded_on_other_days_are_listed_but_never_compared():
    """The replay case: a Bitstamp bid from a 2022 recording against a Gemini ask from a 2021 one looked like a
    crossed market of -4689 bps."""
    row = spread("BAT-BTC", [timed("bitstamp", "0.00002756", "0.00002920", 1641343691468, age_ms=50),
                             timed("gemini", "0.00001200", "0.00001250", 1624493651491, age_ms=19_000)], NOW,
                 replay=True)
    gemini = next(v for v in row["venues"] if v["exchange"] == "gemini")
    assert gemini["excluded"] == "not the same moment: quoted 195 days before the others"
    assert (row["best_bid"]["exchange"], row["best_ask"]["exchange"], row["crossed"]) == ("bitstamp", "bitstamp", False)
    assert row["spread"] == "0.00000164"


def test_a_quote_sent_only_with_trades_is_vouched_for_at_its_own_time_only():
    """Live: Coinbase's ticker quote is 30 s old (no trade since); Binance.US sends every change."""
    row = spread("BTC-USD", [timed("coinbase", "99", "100", NOW - 30_000, age_ms=30_000, every_change=False),
                             timed("binanceus", "101", "102", None, age_ms=200)], NOW)
    coinbase = next(v for v in row["venues"] if v["exchange"] == "coinbase")
    assert coinbase["excluded"] == "not the same moment: quoted 29.8 s before the others"
    assert row["crossed"] is False and row["best_ask"]["exchange"] == "binanceus"
    # A book venue on a healthy feed vouches for its unchanged quote until now, however old its last change.
    row = spread("BTC-USD", [timed("bitstamp", "100", "100.5", NOW - 600_000, age_ms=600_000),
                             timed("binanceus", "100.2", "100.4", None, age_ms=200)], NOW)
    assert [v["excluded"] for v in row["venues"]] == ["", ""] and row["best_bid"]["exchange"] == "binanceus"


def test_in_a_replay_a_quote_without_exchange_time_has_no_known_moment():
    row = spread("BTC-USDT", [timed("binance", "1", "2", None), timed("okx", "1.1", "1.9", NOW - 10)], NOW,
                 replay=True)
    binance = next(v for v in row["venues"] if v["exchange"] == "binance")
    assert binance["excluded"] == "no exchange time: its moment in the recording is unknown"
    assert row["best_bid"]["exchange"] == "okx"


def test_an_empty_side_is_no_price():
    row = spread("BTC-USD", [timed("bitstamp", None, "100.5", NOW), timed("gemini", "100.1", "100.6", NOW)], NOW)
    assert (row["best_bid"]["exchange"], row["best_ask"]["exchange"]) == ("gemini", "bitstamp")


def test_a_venue_alone_is_compared_with_nothing_and_so_never_excluded_for_its_moment():
    row = spread("NKN-USDT", [timed("binance", "0.3521", "0.3526", None)], NOW, replay=True)
    assert row["venues"][0]["excluded"] == "" and row["spread"] == "0.0005"
