"""The history store, a restart backfilling from it, a kill -9 during writes, and the ticks API (JSON, CSV)."""
import csv
import io
import os
import signal
import sqlite3
import time

import orjson
import pytest
import socketio

from conftest import fetch, listen, Collector, ServerProcess
from dashboard.history import SQLiteHistory


def tick(n, market="coinbase:SKL-USD"):
    exchange, symbol = market.split(":")
    return {"exchange": exchange, "symbol": symbol, "time": None if n % 2 else 1618677810000 + n,
            "received": 1795600000000 + n, "bid": f"0.79{n:02d}", "bid_size": None, "ask": "0.7999",
            "ask_size": "12.5", "last": "0.7950", "last_size": "1", "last_side": "buy", "empty": None, "seq": n}


def test_an_empty_side_is_stored_as_empty_and_an_older_store_gains_the_column(tmp_path):
    path = tmp_path / "h.sqlite3"
    old = sqlite3.connect(path)  # a store written before empty sides were told apart
    old.executescript("CREATE TABLE entries (id INTEGER PRIMARY KEY, market TEXT NOT NULL, kind TEXT NOT NULL,"
                      " time INTEGER, received INTEGER NOT NULL, bid TEXT, bid_size TEXT, ask TEXT, ask_size TEXT,"
                      " last TEXT, last_size TEXT, last_side TEXT, gap_from INTEGER, gap_to INTEGER, reason TEXT);"
                      "INSERT INTO entries (market, kind, received, bid) VALUES ('bitstamp:UNI-BTC', 'tick', 1, '1');")
    old.close()
    store = SQLiteHistory(path)
    emptied = {**tick(2, "bitstamp:UNI-BTC"), "bid": None, "bid_size": None, "empty": "bid"}
    store.append("bitstamp:UNI-BTC", emptied)
    store.flush()
    before, after = store.recent("bitstamp:UNI-BTC", 10)
    assert (before["bid"], before["empty"]) == ("1", None)
    assert (after["bid"], after["bid_size"], after["ask"], after["empty"]) == (None, None, "0.7999", "bid")
    store.close()


def test_entries_are_written_in_batches_and_read_back_exactly(tmp_path):
    store = SQLiteHistory(tmp_path / "h.sqlite3")
    for n in range(10):
        store.append("coinbase:SKL-USD", tick(n))
    store.append("coinbase:SKL-USD", {"kind": "gap", "exchange": "coinbase", "symbol": "SKL-USD",
                                      "from": 1795600000009, "to": 1795600000500, "reason": "stale", "seq": 11})
    store.append("binance:NKN-USDT", tick(1, "binance:NKN-USDT"))
    assert store.recent("coinbase:SKL-USD", 100) == []  # nothing on disk before the writer's flush
    assert store.flush() == 12 and store.flush() == 0
    entries = store.recent("coinbase:SKL-USD", 100)
    assert [e.get("bid") for e in entries[:3]] == ["0.7900", "0.7901", "0.7902"]  # decimal strings as sent
    assert {k: v for k, v in entries[0].items() if k != "id"} == {k: v for k, v in tick(0).items() if k != "seq"}
    assert entries[-1] == {**entries[-1], "kind": "gap", "from": 1795600000009, "to": 1795600000500,
                           "reason": "stale"}
    assert [e.get("bid") for e in store.recent("coinbase:SKL-USD", 3)][:2] == ["0.7908", "0.7909"]
    assert store.markets() == ["binance:NKN-USDT", "coinbase:SKL-USD"]
    first = store.query("coinbase:SKL-USD", 0, 2 ** 53, 4)
    second = store.query("coinbase:SKL-USD", 0, 2 ** 53, 4, after=first[-1]["id"])
    assert [e["bid"] for e in first + second] == [f"0.79{n:02d}" for n in range(8)]
    # the chart's points: the last tick of each bucket with its exchange time (a replay's chart breaks its lines
    # where that time goes back: the recording started again), and the gaps
    points, gaps = store.chart("coinbase:SKL-USD", 0, 2 ** 53, 5)
    assert points[0] == [tick(4)["received"], "0.7904", tick(4)["ask"], tick(4)["last"], tick(4)["time"]]
    assert gaps == [[1795600000009, 1795600000500, "stale"]]
    store.close()


def test_retention_prunes_older_entries(tmp_path):
    store = SQLiteHistory(tmp_path / "h.sqlite3", retention_days=1)
    for n in range(5):
        store.append("coinbase:SKL-USD", tick(n))
    store.flush()
    assert store.prune(1795600000003) == 3
    assert [e["received"] for e in store.recent("coinbase:SKL-USD", 10)] == [1795600000003, 1795600000004]
    store.close()


def subscribe(server, market):
    sio = socketio.Client(reconnection=False)
    backfills, ticks = Collector(), Collector()
    sio.on("backfill", backfills)
    listen(sio, "ticks", ticks)  # a part of the `batch` packets
    sio.connect(server.url, transports=["websocket"], wait_timeout=10)
    sio.call("subscribe", {"market": market}, timeout=5)
    return sio, backfills, ticks


def test_a_restarted_server_backfills_from_the_store(tmp_path):
    url = f"sqlite:///{tmp_path}/history.sqlite3"
    first = ServerProcess("--replay", "--speed", "5", "--history-url", url)
    try:
        sio, _, ticks = subscribe(first, "coinbase:SKL-USD")
        ticks.wait_for(lambda batches: sum(len(b["ticks"]) for b in batches) >= 5, timeout=30)
        seen = [t for batch in ticks.items for t in batch["ticks"]]
        sio.disconnect()
    finally:
        assert first.stop() == 0  # SIGTERM: the writer's last batch is flushed
    second = ServerProcess("--replay", "--speed", "5", "--history-url", url)
    try:
        sio, backfills, _ = subscribe(second, "coinbase:SKL-USD")
        [backfill] = backfills.wait_for(lambda items: items)
        stored = [t for t in backfill["ticks"] if t.get("stored")]
        received = {t["received"] for t in stored}
        assert {t["received"] for t in seen} <= received  # everything the first server sent is there
        assert all(t["symbol"] == "SKL-USD" and isinstance(t["bid"], str) for t in stored)
        sio.disconnect()
    finally:
        assert second.stop() == 0


def test_kill_9_during_writes_leaves_the_file_intact_and_loses_at_most_a_batch(tmp_path):
    path = tmp_path / "history.sqlite3"
    server = ServerProcess("--replay", "--speed", "max", "--history-url", f"sqlite:///{path}")
    try:
        sio, _, ticks = subscribe(server, "coinbase:SKL-USD")
        ticks.wait_for(lambda batches: sum(len(b["ticks"]) for b in batches) >= 500, timeout=60)  # mid-stream
        sio.disconnect()
        last_seen = max(t["received"] for batch in ticks.items for t in batch["ticks"])
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()  # whatever the outcome, by its pid (a no-op once killed)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    last_stored, count = db.execute("SELECT max(received), count(*) FROM entries WHERE market = ?",
                                    ("coinbase:SKL-USD",)).fetchone()
    assert count > 0 and last_seen - last_stored <= 1500  # at most the unwritten batch (flushed every 0.5 s)



def test_the_ticks_api_in_json_and_csv_agree(replay_server):
    sio, _, ticks = subscribe(replay_server, "binanceus:OMG-BUSD")
    ticks.wait_for(lambda batches: sum(len(b["ticks"]) for b in batches) >= 5, timeout=30)
    sio.disconnect()
    query = f"{replay_server.url}/api/ticks?market=binanceus:OMG-BUSD&limit=3"
    deadline = time.monotonic() + 10
    while True:  # the writer flushes every 0.5 s: ask until it has written more than one page
        status, _, body = fetch(query)
        page = orjson.loads(body)
        following = orjson.loads(fetch(f"{query}&after={page['next']}")[2])["ticks"] if page["next"] else []
        if (page["count"] == 3 and following) or time.monotonic() > deadline:
            break
    assert status == 200 and page["market"] == "binanceus:OMG-BUSD" and page["next"] is not None
    first = page["ticks"][0]
    assert first["received_iso"].endswith("Z") and (first["time_iso"] is None or first["time_iso"].endswith("Z"))
    assert following[0]["id"] > page["ticks"][-1]["id"]

    status, headers, text = fetch(query.replace("/api/ticks?", "/api/ticks.csv?"))
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert 'filename="binanceus_OMG-BUSD.csv"' in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["kind"], r["received"], r["bid"], r["ask"], r["last"]) for r in rows] == [
        ("tick", str(t["received"]), t["bid"] or "", t["ask"] or "", t["last"] or "") for t in page["ticks"]]


@pytest.mark.parametrize("query, message", [
    ("", "market must be EXCHANGE:BASE-QUOTE"),
    ("market=nosuchexchange:BTC-USD", "unknown exchange"),
    ("market=coinbase:BTC-USD&from=yesterday", "from must be a whole number"),
    ("market=coinbase:BTC-USD&from=10&to=5", "from must not be after to"),
    ("market=coinbase:BTC-USD&limit=0", "limit must be a whole number from 1"),
    ("market=coinbase:BTC-USD&limit=999999", "limit must be a whole number from 1 to 5000"),
    ("market=coinbase:BTC-USD&after=-1", "after must be a whole number"),
])
def test_bad_api_parameters_are_400_with_a_json_error(replay_server, query, message):
    for path in ("/api/ticks", "/api/ticks.csv"):
        status, headers, body = fetch(f"{replay_server.url}{path}?{query}")
        assert status == 400 and message.split(" from 1 to")[0] in orjson.loads(body)["error"]


def test_an_unknown_api_endpoint_is_a_json_404_and_the_page_404_stays_html(replay_server):
    for path in ("/api/nothing", "/api", "/api/ticks/extra"):
        status, headers, body = fetch(f"{replay_server.url}{path}")
        assert status == 404 and headers["Content-Type"] == "application/json", path
        assert orjson.loads(body) == {"error": 'no such endpoint (README, "History and the API")'}
    status, headers, _ = fetch(f"{replay_server.url}/nothing")
    assert status == 404 and headers["Content-Type"].startswith("text/html")


def test_api_markets_lists_what_the_server_knows(replay_server):
    status, _, body = fetch(f"{replay_server.url}/api/markets")
    markets = orjson.loads(body)
    assert status == 200 and "coinbase:SKL-USD" in markets["streaming"]
    assert "SKL-USD" in markets["available"]["coinbase"]
