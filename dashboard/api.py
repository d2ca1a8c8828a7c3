"""HTTP API: the markets, and a market's ticks and gaps as JSON (paged) or CSV. Every parameter is validated;
a bad one is answered 400 with a JSON error. A well-formed market or pair the server has nothing of (never streamed,
nothing stored) is answered 200 with nothing in it (`"ticks": []`, `"series": {}`, a CSV of its header only), and
a GET only ever reads: it creates no state (the hub's `backfill` and the store's queries create nothing)."""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone

from flask import Blueprint, Response, jsonify, request

from exchanges.tick import received_at

from .config import PAIR, parse_market

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_JSON_ROWS, MAX_CSV_ROWS = 5_000, 100_000
CSV_COLUMNS = ("kind", "exchange", "symbol", "time", "time_iso", "received", "received_iso", "bid", "bid_size", "ask",
               "ask_size", "last", "last_size", "last_side", "empty", "gap_from", "gap_to", "reason")


class BadRequest(ValueError):
    pass


def iso(ms):
    if ms is None:
        return None
    return (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _integer(name, default, low, high):
    text = request.args.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _time_range(default_span_ms=None):
    """`from` and `to` in epoch ms; `to` defaults to now, `from` to `default_span_ms` before it (or 0)."""
    now = time.time_ns() // 1_000_000
    since = _integer("from", now - default_span_ms if default_span_ms else 0, 0, 2 ** 53)
    until = _integer("to", now, 0, 2 ** 53)
    if since > until:
        raise BadRequest("from must not be after to")
    return since, until


def _selection(max_rows):
    exchange, symbol = parse_market(request.args.get("market", ""))  # ValueError: 400 too
    since, until = _time_range()
    limit = _integer("limit", min(1000, max_rows), 1, max_rows)
    after = _integer("after", 0, 0, 2 ** 63 - 1)
    return f"{exchange}:{symbol}", since, until, limit, after


def _chart_selection():
    pair = request.args.get("pair", "").upper()
    if not PAIR.fullmatch(pair):
        raise BadRequest("pair must be BASE-QUOTE, like BTC-USD")
    since, until = _time_range(default_span_ms=3_600_000)
    points = _integer("points", 1500, 10, 10_000)
    return pair, since, until, max(1000, -(-(until - since) // points))


def make_api(hub, history, markets_offer) -> Blueprint:
    api = Blueprint("api", __name__, url_prefix="/api")

    def entries(market, since, until, limit, after):
        if history is not None:
            rows = history.query(market, since, until, limit, after)
            return rows, (rows[-1]["id"] if len(rows) == limit else None)
        rows = [entry for entry in hub.backfill(market)["ticks"]  # no history: what memory holds
                if since <= (received_at(entry) or 0) <= until]
        return rows[:limit], None

    def with_times(entry):
        stamped = dict(entry)
        if entry.get("kind") == "gap":
            stamped.update(from_iso=iso(entry["from"]), to_iso=iso(entry["to"]))
        else:
            stamped.update(time_iso=iso(entry.get("time")), received_iso=iso(entry.get("received")))
        return stamped

    @api.errorhandler(ValueError)
    def bad_request(error):
        return jsonify({"error": str(error)}), 400

    @api.get("/markets")
    def markets():
        return jsonify({**markets_offer(), "streaming": hub.markets(),
                        "stored": history.markets() if history is not None else []})

    @api.get("/ticks")
    def ticks():
        market, since, until, limit, after = _selection(MAX_JSON_ROWS)
        rows, next_after = entries(market, since, until, limit, after)
        return jsonify({"market": market, "from": since, "to": until, "count": len(rows), "next": next_after,
                        "ticks": [with_times(row) for row in rows]})

    @api.get("/chart")
    def chart():
        """A pair on every exchange that has it, downsampled to about `points` buckets of at least 1 s."""
        pair, since, until, step = _chart_selection()
        exchanges = list(markets_offer()["exchanges"])
        series = {}
        for exchange in exchanges:
            market = f"{exchange}:{pair}"
            if history is not None:
                points, gaps = history.chart(market, since, until, step)
            else:  # no history: what memory holds, bucketed the same way
                held = hub.backfill(market)["ticks"]
                last_of_bucket = {}
                for entry in held:
                    if entry.get("kind") != "gap" and since <= entry["received"] <= until:
                        last_of_bucket[entry["received"] // step] = [entry["received"], entry["bid"], entry["ask"],
                                                                     entry["last"], entry.get("time")]
                points = list(last_of_bucket.values())
                gaps = [[e["from"], e["to"], e["reason"]] for e in held if e.get("kind") == "gap"]
            if points or gaps:
                series[exchange] = {"points": points, "gaps": gaps}
        return jsonify({"pair": pair, "from": since, "to": until, "step_ms": step, "series": series})

    @api.get("/ticks.csv")
    def ticks_csv():
        market, since, until, limit, after = _selection(MAX_CSV_ROWS)
        rows, next_after = entries(market, since, until, limit, after)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            entry = with_times(row)
            if row.get("kind") == "gap":
                entry.update(gap_from=row["from"], gap_to=row["to"], received=row["to"],
                             received_iso=iso(row["to"]))
            else:
                entry["kind"] = "tick"
            writer.writerow(["" if entry.get(column) is None else entry.get(column) for column in CSV_COLUMNS])
        headers = {"Content-Disposition": f'attachment; filename="{market.replace(":", "_")}.csv"'}
        if next_after is not None:
            headers["X-Next-After"] = str(next_after)
        return Response(out.getvalue(), content_type="text/csv; charset=utf-8", headers=headers)

    return api
