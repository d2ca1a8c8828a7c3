"""Outages shown truthfully (issue 14): a restart records the time the server was not watching as a gap in every
market it had stored, after a kill -9 as after a clean stop; and when a team's collector dies, every page and every
web process's /healthz say so within STALE_AFTER_S, including a page that connects after the fact. Real processes
on loopback (server.py --replay; redis-server, collector and web processes as in test_team.py)."""
import csv
import io
import os
import shutil
import signal
import sqlite3
import threading
import time

import orjson
import pytest
import redis
import socketio

from conftest import STALE_AFTER_S, TEAM_MARKET, UPSTREAM, Collector, ServerProcess, fetch, listen, wait_until
from dashboard.bus import namespace
from dashboard.history import DOWN, STOPPED, SQLiteHistory

from dashboard.feeds import merge_feeds  # the feeds event: a full list, then only changes

# Two busy markets of the shipped recordings, streamed without a client (the replay's watchlist)
MARKETS = ("coinbase:SKL-USD", "binanceus:OMG-BUSD")
RECORDINGS = ("COINBASE.ws.28.0", "BINANCE_US.ws.1.0")


def api_entries(server, market):
    status, _, body = fetch(f"{server.url}/api/ticks?market={market}&limit=5000")
    assert status == 200, body
    return orjson.loads(body)["ticks"]


def last_stored(path, market):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT max(received) FROM entries WHERE market = ?", (market,)).fetchone()[0]


def test_the_store_tells_each_market_once_how_the_last_run_ended_and_a_reader_speaks_for_no_one(tmp_path):
    path, market = tmp_path / "h.sqlite3", "coinbase:SKL-USD"
    tick = {"exchange": "coinbase", "symbol": "SKL-USD", "time": None, "bid": "1", "ask": "2"}
    first = SQLiteHistory(path)
    assert first.resumed(market, {**tick, "received": 1000}) is None  # nothing stored yet: no gap
    first.append(market, {**tick, "received": 1000})
    first.close()  # a clean stop (this process wrote)
    reader = SQLiteHistory(path)  # a team's web process: reads the same file, writes nothing
    reader.close()

    second = SQLiteHistory(path)
    assert second.resumed(market, {**tick, "received": 5000}) == {
        "exchange": "coinbase", "symbol": "SKL-USD", "from": 1000, "to": 5000, "reason": STOPPED}
    assert second.resumed(market, {**tick, "received": 6000}) is None  # once per market per run
    assert second.resumed("coinbase:BTC-USD", {**tick, "symbol": "BTC-USD", "received": 6000}) is None
    second.append(market, {**tick, "received": 5000})
    second.flush()  # then killed: no close, so no stop mark

    third = SQLiteHistory(path)
    assert third.resumed(market, {**tick, "received": 9000})["reason"] == DOWN
    third.close()
    second.close()


def test_a_restart_leaves_a_gap_in_every_stored_market_from_its_last_entry_to_its_first_new_one(tmp_path):
    """A kill -9, then a clean stop (SIGTERM): each restart records its own gap, with the reason."""
    path = tmp_path / "history.sqlite3"
    args = ("--replay", *(str(UPSTREAM / name) for name in RECORDINGS), "--speed", "5", "--no-rest",
            "--history-url", f"sqlite:///{path}")
    first = ServerProcess(*args)
    try:
        assert wait_until(lambda: all(len(api_entries(first, m)) >= 3 for m in MARKETS), timeout=30)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.stop()  # by its pid, whatever happened (nothing left to do once it has exited)

    for reason, seen in ((DOWN, 0), (STOPPED, 1)):  # after the kill; then after the clean stop of the next run
        before = {market: last_stored(path, market) for market in MARKETS}
        started_at = time.time_ns() // 1_000_000
        server = ServerProcess(*args)
        try:
            check_restart_gaps(server, reason, seen, before, started_at)
        finally:
            assert server.stop() == 0


def check_restart_gaps(server, reason, seen, before, started_at):
    """Each market's store has, after the `seen` gaps of earlier restarts, one gap with `reason` from its last
    entry before this start (`before`: market -> ms) to its first entry after; a page watching the first market is
    shown it."""
    for market in MARKETS:
        gaps = wait_until(lambda: [e for e in api_entries(server, market) if e.get("kind") == "gap"][seen:],
                          timeout=30)
        assert len(gaps) == 1, gaps
        gap = gaps[0]
        assert gap["reason"] == reason and gap["from"] == before[market] and gap["to"] >= started_at
        assert gap["from_iso"].endswith("Z") and gap["to_iso"].endswith("Z")
        after = [e for e in api_entries(server, market) if e["id"] > gap["id"]]
        assert after and after[0].get("kind") != "gap" and after[0]["received"] == gap["to"]  # the first new one

    status, _, text = fetch(f"{server.url}/api/ticks.csv?market={MARKETS[0]}&limit=5000")
    rows = [row for row in csv.DictReader(io.StringIO(text)) if row["kind"] == "gap"][seen:]
    assert status == 200 and [(r["gap_from"], r["reason"]) for r in rows] == [(str(before[MARKETS[0]]), reason)]

    sio = socketio.Client(reconnection=False)
    shown = Collector()  # what a page watching the market gets: its backfill, then its live batches
    listen(sio, "backfill", lambda event: shown(event["ticks"]))
    listen(sio, "ticks", lambda event: shown(event["ticks"]))
    try:
        sio.connect(server.url, transports=["websocket"], wait_timeout=10)
        sio.call("subscribe", {"market": MARKETS[0]}, timeout=5)
        entries = shown.wait_for(lambda batches: any(e.get("kind") == "gap" and e["reason"] == reason
                                                     for b in batches for e in b), timeout=15)
        gap = next(e for b in entries for e in b if e.get("kind") == "gap" and e["reason"] == reason)
        assert gap["from"] == before[MARKETS[0]]  # the page's running list shows it, between the right rows
    finally:
        sio.disconnect()


# --- a team's collector killed ------------------------------------------------------------------------------------
team_only = pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("REQUIRE_TEAM"),
                               reason="needs redis-server (apt install redis-server; .ci/run installs it)")


class Page:
    """A Socket.IO client that keeps the feeds' status as the page does; `seen` is woken by every feeds event,
    with (monotonic time, the whole status after it)."""

    def __init__(self, web, clients):
        self.feeds, self.seen = None, Collector()  # None: no full copy yet
        self.sio = socketio.Client(reconnection=False)
        listen(self.sio, "feeds", self._feeds)
        clients.append(self.sio)
        self.sio.connect(web.url, transports=["websocket"], wait_timeout=10)
        self.sio.call("subscribe", {"market": TEAM_MARKET}, timeout=5)

    def _feeds(self, payload):
        merged = merge_feeds(self.feeds, payload)
        if merged is not None:  # None: a change before the full copy (which holds it)
            self.feeds = merged
            self.seen((time.monotonic(), self.feeds))

    def all_stale_at(self, timeout):
        """When every feed this page shows turned stale with the collector named as the reason."""
        events = self.seen.wait_for(lambda items: items and all_stale(items[-1][1]), timeout=timeout)
        return next(at for at, feeds in events if all_stale(feeds))


def all_stale(feeds):
    return bool(feeds) and all(f["state"] == "stale" and "collector" in f["reason"] for f in feeds)


@team_only
def test_a_killed_collector_is_shown_on_every_page_and_healthz_within_the_stale_time(team):
    clients = []
    store = redis.Redis.from_url(team.redis.url)
    feeds_key = namespace("replay") + "feeds"

    def unhealthy():
        status, body = fetch(team.webs[0].url + "/healthz")[::2]
        return time.monotonic() if status == 503 and "collector" in orjson.loads(body)["problem"] else None
    try:
        pages = [Page(web, clients) for web in team.webs]
        for page in pages:
            page.seen.wait_for(lambda items: items and all(f["state"] == "live" for f in items[-1][1]), timeout=30)

        # The worst moment: right after the collector's heartbeat, so its status lives longest after the kill.
        readings = [store.pttl(feeds_key)]

        def just_written():
            readings.append(store.pttl(feeds_key))
            return readings[-1] > readings[-2]  # its time to live went up: rewritten
        assert wait_until(just_written, timeout=5, every=0.001)
        os.kill(team.collector.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        healthz = Collector()  # when a web process's /healthz first said 503 naming the collector
        poller = threading.Thread(target=lambda: healthz(wait_until(unhealthy, timeout=STALE_AFTER_S + 2, every=0.02)),
                                  daemon=True)  # it ends by its own deadline
        poller.start()
        team.collector.process.wait(10)

        # A page that connects the moment the collector's status lapses is told at once, in its first event.
        assert wait_until(lambda: not store.exists(feeds_key), timeout=STALE_AFTER_S + 1, every=0.001)
        late = Page(team.webs[1], clients)
        assert all_stale(late.seen.wait_for(lambda items: items, timeout=5)[0][1])

        poller.join(STALE_AFTER_S + 5)
        [healthz_503_at] = healthz.items
        assert healthz_503_at and healthz_503_at - killed_at <= STALE_AFTER_S
        for page in pages:  # every page that was watching, on both web processes
            assert page.all_stale_at(timeout=STALE_AFTER_S + 2) - killed_at <= STALE_AFTER_S
    finally:
        for sio in clients:
            sio.disconnect()
        store.close()


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ALL_BADGES_STALE = ("(() => { const badges = [...document.querySelectorAll('#feeds .badge')];"
                    " return badges.length > 0 && badges.every((b) => b.dataset.state === 'stale'); })()")


@team_only
@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("REQUIRE_BROWSER"),
                    reason=f"no chromium at {CHROMIUM} (make browser installs Debian's)")
def test_the_page_shows_a_dead_collector_on_every_badge_its_panels_and_its_spread_row(team):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(error))
            # that market alone, by the link (a reload after setting the stored list kept the URL's, which the page
            # writes: all seven default markets)
            page.goto(f"{team.webs[0].url}/?markets={TEAM_MARKET}")
            panel = page.locator(f'.panel[data-market="{TEAM_MARKET}"]')
            panel.locator("tbody tr").first.wait_for(timeout=30_000)
            spread = page.locator('#spreads tr[data-pair="SKL-USD"]')
            # a live spread first (under load a feed can be briefly stale at start: wait for it to be live)
            page.wait_for_function("(() => { const row = document.querySelector('#spreads tr[data-pair=\"SKL-USD\"]');"
                                   " return row?.children[1].textContent.includes('Coinbase')"
                                   " && row.dataset.down === ''; })()", timeout=60_000)

            os.kill(team.collector.process.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            team.collector.process.wait(10)
            page.wait_for_function(ALL_BADGES_STALE, timeout=(STALE_AFTER_S + 2) * 1000)
            assert time.monotonic() - killed_at <= STALE_AFTER_S + 0.5  # the page's own drawing included
            assert "feed-down" in panel.get_attribute("class")
            assert "no status from the collector" in panel.locator(".feed-reason").inner_text()
            # the board's line is dimmed and says why when hovered, in the same words
            page.wait_for_function(f"document.querySelector('#board tr[data-market=\"{TEAM_MARKET}\"]')?.title"
                                   " .includes('no status from the collector')", timeout=2_000)
            # the last spread row the collector sent is not shown as a live spread: its venue is down now
            page.wait_for_function("document.querySelector('#spreads tr[data-pair=\"SKL-USD\"]')?.dataset.down === '1'",
                                   timeout=2_000)
            assert "(excluded: Coinbase feed stale)" in spread.text_content()

            later = browser.new_page()  # a page opened after the fact draws stale badges from its first status
            later.on("pageerror", lambda error: errors.append(error))
            later.goto(team.webs[1].url)
            later.wait_for_function("document.querySelectorAll('#feeds .badge').length > 0", timeout=10_000)
            assert later.evaluate(ALL_BADGES_STALE)
            assert errors == []
        finally:
            browser.close()
