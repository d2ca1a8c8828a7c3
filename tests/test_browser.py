"""The page in a real browser (Playwright driving Debian's chromium, headless) against `server.py --replay`."""
import os
import shutil
import re
from decimal import Decimal
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIME = re.compile(r"^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3}$")
SHOTS = Path(__file__).resolve().parent.parent / "test-results"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("REQUIRE_BROWSER"),
                                reason=f"no chromium at {CHROMIUM} (make browser installs Debian's)")


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, replay_server):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    page.goto(replay_server.url)
    yield page
    context.close()
    assert errors == []


def panel(page, market):
    return page.locator(f'.panel[data-market="{market}"]')


def first_rows(page, market, count=1):
    rows = panel(page, market).locator("tbody tr")
    rows.nth(count - 1).wait_for(timeout=30_000)
    return rows


def watch_for_a_blank_list(page, market):
    """From now on, `window.__blanked[market]` turns true if the market's list is ever left with no rows between two
    tasks (a MutationObserver's callback runs after the task that changed the list, before it can be painted)."""
    page.evaluate("""(market) => {
      window.__blanked = window.__blanked || {};
      window.__blanked[market] = false;
      const tbody = document.querySelector(`.panel[data-market="${market}"] tbody`);
      new MutationObserver(() => { if (!tbody.rows.length) window.__blanked[market] = true; })
        .observe(tbody, { childList: true });
    }""", market)


def force_hover(page, selector):
    """Puts the element under `selector` in the :hover state, as a pointer resting on it would."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, f"nothing at {selector}"
    cdp.send("CSS.forcePseudoState", {"nodeId": node, "forcedPseudoClasses": ["hover"]})


def price(row, column):
    return Decimal(row.locator(f"td.{column}").evaluate("cell => cell.firstChild.textContent"))


def test_rows_stream_into_coinbase_and_binance_panels_with_utc_times(page):
    for market in ("coinbase:SKL-USD", "binance:NKN-USDT"):
        rows = first_rows(page, market, 2)
        row = rows.first
        assert TIME.match(row.locator("td").first.inner_text().replace(" rcv", "").strip())
        # both prices of one row, read in one step (a newer row may be put on top between two reads)
        bid, ask = row.evaluate("tr => ['bid', 'ask'].map(c => tr.querySelector('td.' + c).firstChild.textContent)")
        assert Decimal(bid) <= Decimal(ask)
    # Binance bookTicker carries no time: those rows show our receipt time, marked as such
    binance = panel(page, "binance:NKN-USDT")
    assert binance.locator('td[data-time-source="received"]').count() >= 1
    assert panel(page, "coinbase:SKL-USD").locator('td[data-time-source="exchange"]').count() >= 1
    # the spread row of each pair on the page, from the server (one venue each in these recordings)
    spread_row = page.locator('#spreads tr[data-pair="SKL-USD"]')
    spread_row.wait_for()
    page.wait_for_function("document.querySelector('#spreads tr[data-pair=\"SKL-USD\"]')"
                           "?.children[1].textContent.includes('Coinbase')")
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "replay.png"))


def test_feed_badges_show_each_feed_state(page):
    for exchange in EXCHANGES:  # every registered exchange, each from its own module
        badge = page.locator(f'#feeds .badge[data-exchange="{exchange}"]')
        badge.wait_for()
        assert badge.get_attribute("data-state") in ("live", "quiet", "connecting")
    page.wait_for_function("document.querySelector('#feeds .badge[data-exchange=coinbase]')?.dataset.state"
                           " === 'live'")


def test_the_theme_toggle_stays_on_the_title_line_however_long_the_badges_read(page):
    # Seven badges reading "reconnecting" (or "stopped") pushed the toggle onto a line of its own: the badges now
    # wrap between the title and the toggle.
    page.set_viewport_size({"width": 1440, "height": 900})
    boxes = page.evaluate("""(exchanges) => {
      const labels = { binanceus: "Binance.US" };
      window.__receive("feeds", exchanges.map((exchange) => ({ exchange, label: labels[exchange] ?? exchange,
        state: "reconnecting", reason: "", last_data_at: Date.now() - 120000, now: Date.now() })));
      const box = (selector) => document.querySelector(selector).getBoundingClientRect();
      return { title: box(".navbar-brand"), toggle: box("#theme-toggle"), feeds: box("#feeds"),
               lines: new Set([...document.querySelectorAll("#feeds .badge")].map((b) => b.getBoundingClientRect().top)).size };
    }""", list(EXCHANGES))
    assert boxes["lines"] >= 1 and boxes["toggle"]["right"] <= 1440
    # the toggle beside the badges (on the navbar's one line), not on a line below them
    assert boxes["feeds"]["top"] <= boxes["toggle"]["top"] and boxes["toggle"]["bottom"] <= boxes["feeds"]["bottom"]
    assert boxes["title"]["right"] <= boxes["feeds"]["left"] and boxes["feeds"]["right"] <= boxes["toggle"]["left"]


def test_add_and_close_panels_and_the_watchlist_survives_a_reload(page):
    page.select_option("#exchange", "coinbase")
    page.fill("#pair", "dash-btc")
    page.click("#add-market button[type=submit]")
    first_rows(page, "coinbase:DASH-BTC")
    panel(page, "binanceus:OMG-BUSD").locator(".close-panel").click()
    assert panel(page, "binanceus:OMG-BUSD").count() == 0

    page.reload()
    first_rows(page, "coinbase:DASH-BTC")
    assert panel(page, "binanceus:OMG-BUSD").count() == 0
    assert panel(page, "coinbase:SKL-USD").count() == 1


def test_a_pair_the_exchange_rejects_shows_the_reason_in_its_panel(page, replay_server):
    from conftest import wait_listing
    wait_listing(replay_server, "coinbase")  # known: the server refuses the pair itself, in its own words
    page.select_option("#exchange", "coinbase")
    page.fill("#pair", "BTC-FOO")
    page.click("#add-market button[type=submit]")
    reason = panel(page, "coinbase:BTC-FOO").locator(".market-reason")
    reason.wait_for()
    page.wait_for_function("document.querySelector('.panel[data-market=\"coinbase:BTC-FOO\"]')?.dataset.state"
                           " === 'error'")
    assert reason.inner_text() == "BTC-FOO is not listed on Coinbase"


def test_a_malformed_pair_is_refused_in_the_form(page):
    page.fill("#pair", "BTC/USD/X")
    page.click("#add-market button[type=submit]")
    assert "BASE-QUOTE" in page.locator("#form-message").inner_text()


# --- feed health, in its own server with faults -------------------------------------------------------------------
from conftest import TEAM_MARKET, ServerProcess, two_venue_recording  # noqa: E402
from exchanges import EXCHANGES  # noqa: E402

FAULTY = ("--replay", "--speed", "5", "--stale-after", "2", "--fault", "coinbase:stall@5s",
          "--fault", "binanceus:garbage=html@2s")


def open_page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(server.url)
    return context, page


def badge_js(exchange):
    return f"document.querySelector('#feeds .badge[data-exchange={exchange}]')"


def test_a_stall_turns_the_badge_stale_then_live_and_leaves_a_gap_row(browser):
    server = ServerProcess(*FAULTY)
    try:
        context, page = open_page(browser, server)
        first_rows(page, "coinbase:SKL-USD")
        # the stall is found and the feed reconnects; however quick, the badge keeps saying it was stale
        page.wait_for_function(f"{badge_js('coinbase')}?.dataset.incident === 'stale'", timeout=20_000)
        page.wait_for_function(f"{badge_js('coinbase')}?.dataset.state === 'live'", timeout=20_000)
        assert "recovered: stale" in page.locator('#feeds .badge[data-exchange="coinbase"]').get_attribute("title")
        # the gap row, newest first among the panel's rows: scrolled to as a user would (older rows come as the
        # list is scrolled down)
        page.wait_for_function("""() => {
          const scroller = document.querySelector('.panel[data-market="coinbase:SKL-USD"] .rows-scroll');
          scroller.scrollTop = scroller.scrollHeight;
          return scroller.querySelector('tr.gap-row') !== null;
        }""", timeout=30_000, polling=200)
        gap = panel(page, "coinbase:SKL-USD").locator("tr.gap-row").first
        assert re.match(r"no data \d\d:\d\d:\d\d\.\d{3}–\d\d:\d\d:\d\d\.\d{3} UTC: stale", gap.inner_text())
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "stall.png"))

        # an <img onerror> in a frame from the exchange is shown as text, never run
        page.wait_for_function(f"{badge_js('binanceus')} !== null")
        page.evaluate(f"{badge_js('binanceus')}.click()")  # in one step: the badges are redrawn every second
        details = page.locator("#feed-details")
        details.wait_for()
        page.wait_for_function("document.querySelector('#feed-details').textContent.includes('<img')")
        assert details.locator("img").count() == 0 and page.locator("img").count() == 0
        assert page.evaluate("window.__xss") is None
        context.close()
    finally:
        assert server.stop() == 0


def test_the_page_shows_when_the_server_is_gone_and_comes_back_without_duplicates(browser):
    server = ServerProcess("--replay", "--speed", "5")
    context, page = open_page(browser, server)
    try:
        first_rows(page, "coinbase:SKL-USD", 2)
        banner = page.locator("#connection-banner")
        assert not banner.is_visible()
        assert server.stop() == 0
        banner.wait_for(state="visible", timeout=15_000)
        server = ServerProcess("--replay", "--speed", "5", port=server.port)
        banner.wait_for(state="hidden", timeout=30_000)
        first_rows(page, "coinbase:SKL-USD", 2)
        for market in ("coinbase:SKL-USD", "binance:NKN-USDT"):
            seqs = panel(page, market).locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.seq)")
            assert len(seqs) == len(set(seqs))
    finally:
        context.close()
        server.stop()


def test_a_chart_draws_each_exchange_of_a_pair_and_breaks_its_line_at_a_gap(browser, tmp_path):
    """Two venues quote SKL-USD (see two_venue_recording); a stall leaves a gap."""
    server = ServerProcess("--replay", str(two_venue_recording(tmp_path)), "--speed", "5", "--stale-after", "2",
                           "--markets", "coinbase:SKL-USD,binanceus:SKL-USD", "--fault", "coinbase:stall@4s")
    try:
        context, page = open_page(browser, server)
        page.locator('.pair-chart[data-pair="SKL-USD"] canvas').first.wait_for()
        page.wait_for_function("(() => { const c = window.__charts.get('SKL-USD');"
                               " return c && ['coinbase', 'binanceus'].every(x => c.series[x] &&"
                               " c.series[x].bid.data().length > 1) })()", timeout=30_000)
        page.wait_for_function("window.__charts.get('SKL-USD').blanks.some(b => b.exchange === 'coinbase')",
                               timeout=30_000)
        decimals = page.evaluate("window.__charts.get('SKL-USD').series.coinbase.bid.options().priceFormat.precision")
        assert decimals == 4  # as many as Coinbase sends ("0.7910")
        # whose clock the time axis is, said on the chart and on its crosshair's time
        chart = page.locator('.pair-chart[data-pair="SKL-USD"]')
        assert chart.locator(".chart-title").text_content().endswith("· time: received (our clock), UTC")
        assert page.evaluate("window.__charts.get('SKL-USD').chart.options().localization.timeFormatter(1618677817)"
                             ) == "2021-04-17 16:43:37 UTC, received"
        spread_row = page.locator('#spreads tr[data-pair="SKL-USD"]')
        assert "Coinbase" in spread_row.inner_text() and "Binance.US" in spread_row.inner_text()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "chart.png"))
        context.close()
    finally:
        assert server.stop() == 0


def test_a_pair_is_added_on_every_exchange_that_lists_it(page):
    # In a replay, "lists it" is "its recordings hold it": the recorded listings name many more pairs (Coinbase's
    # BTC-USD, say), which would only ever wait for a first update.
    page.select_option("#exchange", "*")
    page.fill("#pair", "bat-btc")
    page.wait_for_function("document.querySelector('#listed-on').textContent.includes('Gemini')")
    assert page.locator("#listed-on").inner_text() == "in the recordings of: Bitstamp, Gemini"
    page.click("#add-market button[type=submit]")
    for market in ("bitstamp:BAT-BTC", "gemini:BAT-BTC"):
        panel(page, market).wait_for()
    assert panel(page, "coinbase:BAT-BTC").count() == 0
    page.fill("#pair", "BTC-USD")  # listed by Coinbase's recorded listing, in no recording
    page.wait_for_function("document.querySelector('#listed-on').textContent.includes('no recording')")
    assert page.locator("#listed-on").inner_text() == "in no recording here: nothing would come"
    page.click("#add-market button[type=submit]")
    assert page.locator("#form-message").inner_text() == "No recording here holds BTC-USD."
    assert panel(page, "coinbase:BTC-USD").count() == 0


def test_the_pair_fields_example_is_a_pair_the_chosen_exchange_lists(page):
    examples = {}
    for exchange in ("coinbase", "kraken", "binance"):
        page.select_option("#exchange", exchange)
        page.wait_for_function("document.querySelectorAll('#pairs option').length > 0")
        listed = page.locator("#pairs option").evaluate_all("options => options.map(o => o.value)")
        examples[exchange] = page.locator("#pair").get_attribute("placeholder")
        assert examples[exchange] in listed
    # in a replay, what the recordings hold: Coinbase's recorded listing has BTC-USD, its recordings do not
    offer = page.evaluate("fetch('/api/markets').then((r) => r.json())")
    assert "BTC-USD" in offer["available"]["coinbase"] and "BTC-USD" not in offer["recorded"]["coinbase"]
    assert all(examples[name] in offer["recorded"][name] for name in examples) and examples["coinbase"] != "BTC-USD"


def test_a_geo_block_shows_a_banner_with_the_alternative_and_dims_its_panels(browser):
    server = ServerProcess("--replay", "--fault", "binance:http=451+600s", "--fault", "binance:drop")
    try:
        context, page = open_page(browser, server)
        banner = page.locator("#geo-banner")
        banner.wait_for(state="visible", timeout=20_000)
        assert banner.locator(".message").inner_text() == ("Binance refuses this connection: HTTP 451: this venue "
                                                           "blocks connections from this region; Binance.US may serve "
                                                           "you instead.")
        binance = panel(page, "binance:NKN-USDT")
        page.wait_for_function("document.querySelector('.panel[data-market=\"binance:NKN-USDT\"]')"
                               ".classList.contains('feed-down')")
        assert "HTTP 451" in binance.locator(".feed-reason").inner_text()
        banner.locator("button.use-alternative").click()  # "Add the same pairs on Binance.US"
        panel(page, "binanceus:NKN-USDT").wait_for()
        context.close()
    finally:
        assert server.stop() == 0


@pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("REQUIRE_TEAM"),
                    reason="needs redis-server")
def test_team_mode_page_shows_a_banner_while_redis_is_away_and_goes_on_without_duplicates(browser, team):
    """A page on a web process: Redis killed -> the service banner with the reason; Redis back -> the banner goes,
    the panel is resynced by a backfill and live rows follow, never a row twice."""
    context, page = open_page(browser, team.webs[0])
    try:
        page.goto(f"{team.webs[0].url}/?markets={TEAM_MARKET}")  # that market alone
        rows = first_rows(page, TEAM_MARKET, 2)
        banner = page.locator("#service-banner")
        assert not banner.is_visible()
        team.redis.kill()
        banner.wait_for(state="visible", timeout=15_000)
        assert "Redis unreachable" in banner.inner_text()
        assert not page.locator("#connection-banner").is_visible()  # the web process itself is still there
        team.redis.start()
        banner.wait_for(state="hidden", timeout=15_000)
        newest = rows.first.get_attribute("data-seq")
        page.wait_for_function("([market, seq]) => { const row = document.querySelector(`.panel[data-market="
                               "\"${market}\"] tbody tr`); return row !== null && row.dataset.seq !== seq; }",
                               arg=[TEAM_MARKET, newest], timeout=30_000)
        seqs = rows.evaluate_all("rows => rows.map(r => r.dataset.seq)")
        assert len(seqs) == len(set(seqs))
        # (The list may be empty for a moment here: this Redis comes back empty, and a resync's backfill read before
        # the collector writes again holds nothing. test_a_backfill_takes_the_place_of_the_rows_shown... covers a
        # backfill drawn in place of the rows.)
    finally:
        context.close()


# --- what a row shows: the last trade's side, an empty book side ---------------------------------------------------
COLOUR_OF = """(variable) => {  // the computed colour of a Bootstrap colour variable, as the browser resolves it
  const probe = document.createElement("span");
  probe.style.color = `var(${variable})`;
  document.body.append(probe);
  const colour = getComputedStyle(probe).color;
  probe.remove();
  return colour;
}"""


def test_the_last_trade_shows_green_for_a_buy_and_red_for_a_sell(page):
    # the recordings' trades: both sides come within seconds (Coinbase's ticker and Binance's aggTrade say which)
    buy, sell = page.locator("td.last.side-buy").first, page.locator("td.last.side-sell").first
    buy.wait_for(timeout=30_000)
    sell.wait_for(timeout=30_000)
    colour = lambda cell: cell.evaluate("cell => getComputedStyle(cell).color")  # noqa: E731
    success, danger = page.evaluate(COLOUR_OF, "--bs-success"), page.evaluate(COLOUR_OF, "--bs-danger")
    plain = colour(buy.locator("xpath=../td[contains(@class, 'bid')]"))
    assert colour(buy) == success and colour(sell) == danger
    assert plain not in (success, danger) and success != danger
    # Bootstrap's hovered row sets its own cell colour: the side's colour stays. The row is one of our own (a seq
    # above any the server numbers) and the hover is forced through the DevTools protocol: a real pointer misses
    # a row that streamed rows and panels keep moving.
    first_rows(page, MARKET)
    seq = page.evaluate(f"""Math.max(...[...document.querySelectorAll('.panel[data-market="{MARKET}"] tbody tr')]
                            .map((tr) => Number(tr.dataset.seq))) + 1e9""")
    top = f'.panel[data-market="{MARKET}"] tbody tr:first-child td'
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [injected_tick(seq=seq)]}, top])
    row = f'.panel[data-market="{MARKET}"] tbody tr[data-seq="{int(seq)}"]'
    force_hover(page, row)
    ours = page.locator(f"{row} td.last.side-buy")
    assert ours.evaluate("cell => cell.parentElement.matches(':hover')")
    assert colour(ours) == success
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "trade-sides.png"))


# Hands events to the page's own Socket.IO handlers and reads what they drew, in one task: nothing from the
# server can come between (the handlers render synchronously).
INJECT = """([event, payload, selector]) => {
  window.__receive(event, payload);
  window.__flush?.();
  return [...document.querySelectorAll(selector)].map((el) => ({
    text: el.textContent, empty: el.dataset.empty ?? null, marks: el.querySelectorAll(".side-empty").length,
    sizes: el.querySelectorAll(".size").length, html: el.innerHTML }));
}"""
MARKET = "coinbase:SKL-USD"


def injected_tick(**fields):
    tick = {"exchange": "coinbase", "symbol": "SKL-USD", "time": None, "received": 0, "bid": "0.7901",
            "bid_size": "10", "ask": "0.7911", "ask_size": "20", "last": "0.7905", "last_size": "1",
            "last_side": "buy", "empty": None, "seq": 0}
    return {**tick, **fields}


def test_an_empty_book_side_shows_as_empty_and_an_unknown_one_as_a_dash(page):
    first_rows(page, MARKET)  # the panel has had its backfill: ticks are rendered as they come
    # seqs above anything the server numbers (its start time in µs): these rows stay on top
    seq = page.evaluate(f"""Math.max(...[...document.querySelectorAll('.panel[data-market="{MARKET}"] tbody tr')]
                            .map((tr) => Number(tr.dataset.seq))) + 1e9""")
    top = f'.panel[data-market="{MARKET}"] tbody tr:first-child td'
    ticks = [injected_tick(seq=seq),
             injected_tick(seq=seq + 1, bid=None, bid_size=None, empty="bid"),  # the bid side emptied
             ]
    time_cell, bid, ask, last = page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": ticks}, top])
    assert bid["empty"] == "bid" and bid["marks"] == 1 and bid["text"] == "empty" and bid["sizes"] == 0
    assert "0.7901" not in bid["html"]  # never the old price
    assert ask["empty"] is None and ask["text"] == "0.7911× 20"

    both = injected_tick(seq=seq + 2, bid=None, bid_size=None, ask=None, ask_size=None, empty="both")
    _, bid, ask, last = page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [both]}, top])
    assert bid["text"] == ask["text"] == "empty" and bid["empty"] == "bid" and ask["empty"] == "ask"
    assert last["text"] == "0.7905× 1"

    # a side not known yet (only a trade so far): a dash, not "empty"
    unknown = injected_tick(seq=seq + 3, bid=None, bid_size=None, ask=None, ask_size=None, empty=None)
    _, bid, ask, _ = page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [unknown]}, top])
    assert bid["text"] == ask["text"] == "–" and bid["marks"] == ask["marks"] == 0

    # outside text is text: an "empty" value that is not one of ours names no side and runs nothing
    odd = injected_tick(seq=seq + 4, empty="<img src=x onerror=window.__xss=1>")
    _, bid, ask, _ = page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [odd]}, top])
    assert bid["text"] == "0.7901× 10" and page.evaluate("window.__xss") is None


def test_the_spread_row_shows_an_empty_side_and_an_excluded_venue_with_its_reason(page):
    first_rows(page, MARKET)
    page.locator('#spreads tr[data-pair="SKL-USD"]').wait_for()
    row = {"pair": "SKL-USD", "quote": "USD", "crossed": False, "spread": None, "spread_bps": None,
           "best_bid": None, "best_ask": {"price": "0.7911", "exchange": "coinbase", "age_ms": 5},
           "venues": [
               {"exchange": "binanceus", "bid": "0.79", "ask": "0.80", "age_ms": 5, "empty": None,
                "excluded": "quote not comparable: <b>crossed</b>"},
               {"exchange": "coinbase", "bid": None, "ask": "0.7911", "age_ms": 5, "empty": "bid", "excluded": ""},
               {"exchange": "kraken", "bid": None, "ask": None, "age_ms": 5, "empty": "both",
                "excluded": "feed not live"},
           ]}
    entries = page.evaluate(INJECT, ["spread", row, '#spreads tr[data-pair="SKL-USD"] .venue-entry'])
    binanceus, coinbase, kraken = entries
    assert binanceus["text"] == "Binance.US (excluded: quote not comparable: <b>crossed</b>)"
    assert binanceus["marks"] == 0 and "<b>" not in binanceus["html"]
    assert coinbase["text"] == "Coinbase bid empty" and coinbase["empty"] == "bid" and coinbase["marks"] == 1
    assert kraken["text"] == "Kraken book empty (excluded: feed not live)" and kraken["empty"] == "both"


def test_an_older_spread_row_never_replaces_a_newer_one(page):
    # A subscribe's spread row and a batch's can reach the page out of order (under threading): the row computed
    # last stays, whatever order they came in.
    first_rows(page, MARKET)
    page.locator('#spreads tr[data-pair="SKL-USD"]').wait_for()
    later = page.evaluate("Date.now()") + 3_600_000  # after any row the server computes during the test

    def row(computed, bid):
        return {"pair": "SKL-USD", "quote": "USD", "crossed": False, "spread": "0.0011", "spread_bps": "13.90",
                "best_bid": {"price": bid, "exchange": "coinbase", "age_ms": 5},
                "best_ask": {"price": "0.7911", "exchange": "coinbase", "age_ms": 5}, "computed": computed,
                "venues": [{"exchange": "coinbase", "bid": bid, "ask": "0.7911", "age_ms": 5, "empty": None,
                            "excluded": ""}]}
    shown = '#spreads tr[data-pair="SKL-USD"]'
    assert "0.7900" in page.evaluate(INJECT, ["spread", row(later, "0.7900"), shown])[0]["text"]
    assert "0.7800" not in page.evaluate(INJECT, ["spread", row(later - 1, "0.7800"), shown])[0]["text"]
    assert "0.7950" in page.evaluate(INJECT, ["spread", row(later + 1, "0.7950"), shown])[0]["text"]


def test_a_feed_badges_age_counts_from_the_newest_data_the_page_has_seen(page):
    # The feeds' status comes once a second: its last-data time lagged the ticks, and a badge read 1.9 s beside the
    # board's 0.1 s for the same feed. A tick of the feed received later counts too.
    first_rows(page, MARKET)
    tick = injected_tick(seq=NEWEST)
    badge = page.evaluate("""([market, tick]) => {  // one task: no server event in between
      // a status whose last data is 30 s old, after a tick received 0.2 s ago (the replay's own are newer still)
      window.__receive("ticks", { market, ticks: [{ ...tick, received: Date.now() - 200 }] });
      window.__receive("feeds", [{ exchange: "coinbase", label: "Coinbase", state: "live", reason: "",
                                   last_data_at: Date.now() - 30000, now: Date.now() }]);
      return document.querySelector("#feeds .badge[data-exchange=coinbase]").textContent;
    }""", [MARKET, tick])
    assert badge in ("Coinbase: live · 0.0 s", "Coinbase: live · 0.1 s", "Coinbase: live · 0.2 s"), badge


def test_a_null_bid_breaks_the_chart_line(page):
    first_rows(page, MARKET)
    page.wait_for_function("window.__charts.get('SKL-USD')?.ready === true", timeout=30_000)
    later = page.evaluate("Date.now()") + 3_600_000  # after anything drawn so far
    ticks = [injected_tick(received=later, seq=1), injected_tick(received=later + 2000, seq=2, bid=None,
                                                                  bid_size=None, empty="bid"),
             injected_tick(received=later + 4000, seq=3)]
    page.evaluate("([market, ticks]) => { window.__receive('ticks', { market, ticks }); window.__flush?.(); }",
                  [MARKET, ticks])
    drawn = page.evaluate("""(t) => {
      const chart = window.__charts.get('SKL-USD');
      const bid = chart.series.coinbase.bid.data().filter((p) => p.time >= t);
      const ask = chart.series.coinbase.ask.data().filter((p) => p.time >= t);
      return { breaks: chart.breaks.filter((b) => b.time >= t), bid, ask };
    }""", later // 1000)
    assert drawn["breaks"] == [{"exchange": "coinbase", "side": "bid", "time": later // 1000 + 2}]
    # the bid's line: a value, then at the break a whitespace point (the chart lists only values: no 0, no repeat
    # of the previous one there), then a value again; the ask's line goes on through it
    t = later // 1000
    assert [(p["time"], p["value"]) for p in drawn["bid"]] == [(t, 0.7901), (t + 4, 0.7901)]
    assert [(p["time"], p["value"]) for p in drawn["ask"]] == [(t, 0.7911), (t + 2, 0.7911), (t + 4, 0.7911)]


FRAMES = "(n) => new Promise((done) => { const next = () => (n-- > 0 ? requestAnimationFrame(next) : done()); next(); })"


def test_a_chart_out_of_view_is_drawn_when_it_comes_into_view_and_a_list_out_of_view_still_fills(page):
    """What is out of view waits (a chart's canvas is repainted on every update, seen or not), and is current once
    it is in view; a list out of view is still kept current, less often."""
    first_rows(page, MARKET)
    page.wait_for_function("window.__charts.get('SKL-USD')?.ready === true", timeout=30_000)
    page.set_viewport_size({"width": 1400, "height": 300})
    page.evaluate("window.scrollTo(0, 0)")
    chart = "window.__charts.get('SKL-USD')"
    page.wait_for_function(f"{chart}.visible === false")
    # out of view, its canvases are skipped by the browser (neither laid out nor painted: content-visibility)
    canvas_shown = """document.querySelector("#charts .pair-chart[data-pair='SKL-USD'] canvas")
                      .checkVisibility({ contentVisibilityAuto: true })"""
    page.wait_for_function(f"!{canvas_shown}")
    later = page.evaluate("Date.now()") + 7_200_000  # after anything drawn so far
    seq = page.evaluate(f"""Math.max(...[...document.querySelectorAll('.panel[data-market="{MARKET}"] tbody tr')]
                            .map((tr) => Number(tr.dataset.seq))) + 1e9""")
    page.evaluate("([market, ticks]) => window.__receive('ticks', { market, ticks })",
                  [MARKET, [injected_tick(received=later, seq=seq, last="0.7999")]])
    page.evaluate(FRAMES, 60)  # a second of frames: the charts' cadence is 500 ms
    drawn = f"{chart}.series.coinbase.last.data().some((p) => p.time === {later // 1000})"
    assert page.evaluate(drawn) is False and page.evaluate(f"{chart}.pending.size") > 0
    # the list of that market, out of view too, has its row all the same
    panel(page, MARKET).locator(f'tbody tr[data-seq="{int(seq)}"]').wait_for(state="attached", timeout=10_000)
    page.locator("#charts .pair-chart[data-pair='SKL-USD']").scroll_into_view_if_needed()
    page.wait_for_function(drawn, timeout=10_000)
    assert page.evaluate(f"{chart}.pending.size") == 0
    assert page.evaluate(canvas_shown) and page.evaluate(
        "document.querySelector(\"#charts .pair-chart[data-pair='SKL-USD'] canvas\").getBoundingClientRect().width") > 100


def test_the_spread_table_out_of_view_waits_and_is_current_once_in_view(page):
    # It was built again in every frame a spread row came: out of view it is drawn every 2 s, in view at once.
    first_rows(page, MARKET)
    page.locator('#spreads tr[data-pair="SKL-USD"]').wait_for()
    page.set_viewport_size({"width": 1400, "height": 300})
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate(FRAMES, 2)
    page.evaluate("""() => { window.__spreadBuilds = 0;
      new MutationObserver(() => window.__spreadBuilds++).observe(document.querySelector('#spreads tbody'),
                                                                  { childList: true }); }""")
    for i in range(10):  # ten spread rows over a third of a second, as a busy server sends them
        row = {"pair": "SKL-USD", "quote": "USD", "crossed": False, "spread": "0.0010", "spread_bps": "12.6",
               "best_bid": {"price": f"0.790{i}", "exchange": "coinbase", "age_ms": 5},
               "best_ask": {"price": "0.7911", "exchange": "coinbase", "age_ms": 5}, "at": 0,
               "venues": [{"exchange": "coinbase", "bid": f"0.790{i}", "ask": "0.7911", "age_ms": 5, "empty": None,
                           "excluded": ""}]}
        page.evaluate("(row) => window.__receive('spread', row)", row)
        page.evaluate(FRAMES, 2)
    builds = page.evaluate("window.__spreadBuilds")
    assert builds <= 1
    # scrolled into view, it is drawn within its in-view pace (250 ms), not the 2 s of a table out of view
    page.locator("#spreads").scroll_into_view_if_needed()
    page.wait_for_function(f"window.__spreadBuilds > {builds}", timeout=1_000)


# --- a trader's screen: shareable layouts, the dark theme, the keyboard ---------------------------------------------
def markets_in_url(page):
    return page.evaluate("new URLSearchParams(location.search).get('markets')")


def panel_order(page):
    return page.locator("#panels .panel").evaluate_all("els => els.map(el => el.dataset.market)")


def test_the_url_carries_the_watchlist_and_follows_it(page, replay_server):
    # a pair in lower case is taken as the form and the server take it
    page.goto(replay_server.url + "/?markets=coinbase:skl-usd,binance:NKN-USDT,nowhere:BTC-USD,"
              "<img src=x onerror=window.__xss=1>")
    first_rows(page, "binance:NKN-USDT")
    assert panel_order(page) == ["coinbase:SKL-USD", "binance:NKN-USDT"]  # in that order, nothing stored added
    note = page.locator("#url-note")
    assert note.is_visible() and "nowhere:BTC-USD" in note.inner_text() and "<img" in note.inner_text()
    assert note.locator("img").count() == 0 and page.evaluate("window.__xss") is None
    assert markets_in_url(page) == "coinbase:SKL-USD,binance:NKN-USDT"  # the invalid entries leave the URL
    panel(page, "coinbase:SKL-USD").locator(".close-panel").click()
    assert markets_in_url(page) == "binance:NKN-USDT"
    page.reload()
    first_rows(page, "binance:NKN-USDT")
    assert panel_order(page) == ["binance:NKN-USDT"]
    assert not page.locator("#url-note").is_visible()


LUMINANCE = """(el) => {  // the relative luminance (0 black .. 1 white) of an element's computed background
  const [r, g, b] = getComputedStyle(el).backgroundColor.match(/[\\d.]+/g).map(Number);
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}"""


def theme(page):
    return page.evaluate("document.documentElement.dataset.bsTheme")


def test_the_theme_follows_the_system_and_the_toggle_is_remembered(browser, replay_server):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme="dark")
    errors = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(replay_server.url)
        assert theme(page) == "dark"
        assert page.locator("body").evaluate(LUMINANCE) < 0.2
        # what a screenshot of the dark theme shows: rows, both trade sides, the spread row, the charts
        first_rows(page, "binance:NKN-USDT", 3)
        page.locator("td.last.side-buy").first.wait_for(timeout=30_000)
        page.locator("td.last.side-sell").first.wait_for(timeout=30_000)
        page.wait_for_function("[...window.__charts.values()].every(c => c.ready)", timeout=30_000)
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "dark.png"))

        toggle = page.locator("#theme-toggle")
        toggle.click()
        assert theme(page) == "light" and page.locator("body").evaluate(LUMINANCE) > 0.8
        page.reload()
        assert theme(page) == "light"  # remembered, though the system still says dark
        assert page.locator("body").evaluate(LUMINANCE) > 0.8
        page.locator("#theme-toggle").click()
        assert theme(page) == "dark"
        page.reload()
        assert theme(page) == "dark"
    finally:
        context.close()
    assert errors == []


FOCUSED = """() => {  // what has the keyboard's focus, and whether it shows
  const el = document.activeElement, style = getComputedStyle(el);
  return { tag: el.tagName, cls: String(el.className), exchange: el.dataset.exchange ?? null,
    market: el.closest(".panel")?.dataset.market ?? null, vendor: Boolean(el.closest("#charts")),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0, shadow: style.boxShadow !== "none",
    href: el.getAttribute("href") };
}"""


def test_every_control_is_reached_and_worked_by_the_keyboard(page):
    first_rows(page, MARKET)
    page.wait_for_function(f"document.querySelectorAll('#feeds .badge').length === {len(EXCHANGES)}")
    page.wait_for_function("document.querySelectorAll('#charts a').length > 0")  # the vendor's attribution links
    assert page.locator("#charts a").evaluate_all("links => links.every(a => a.tabIndex === -1)")
    # each panel's close button says which panel it closes (a screen reader read "Close panel" for all)
    labels = page.locator(".close-panel").evaluate_all("buttons => buttons.map(b => b.getAttribute('aria-label'))")
    assert "Close Coinbase SKL-USD" in labels and len(set(labels)) == len(labels) > 1
    badges = page.locator("#feeds .badge").evaluate_all("els => els.map(el => el.dataset.exchange)")
    first_panel = page.locator("#panels .panel").first.get_attribute("data-market")
    page.evaluate("document.activeElement.blur()")
    seen = []
    for _ in range(60):  # from the top of the page to the first panel's CSV link
        page.keyboard.press("Tab")
        seen.append(page.evaluate(FOCUSED))
        if "download" in seen[-1]["cls"]:
            break
    assert not any(s["vendor"] for s in seen)
    assert [s["exchange"] for s in seen if "badge" in s["cls"]] == badges  # every badge, in order
    csv = seen[-1]
    assert "download" in csv["cls"] and csv["market"] == first_panel
    assert csv["href"].startswith("/api/ticks.csv?") and csv["outline"]
    assert seen.index(csv) > max(i for i, s in enumerate(seen) if "badge" in s["cls"])

    # back to the first badge: its focus shows, and Enter opens its details
    page.keyboard.press("Shift+Tab")
    while page.evaluate(FOCUSED)["exchange"] != badges[0]:
        page.keyboard.press("Shift+Tab")
    focused = page.evaluate(FOCUSED)
    assert focused["tag"] == "BUTTON" and (focused["outline"] or focused["shadow"])
    page.keyboard.press("Enter")
    details = page.locator("#feed-details")
    details.wait_for(state="visible")
    title = page.locator(f'#feeds .badge[data-exchange="{badges[0]}"]').inner_text().split(":")[0]
    assert details.locator(".feed-title").inner_text().startswith(f"{title} feed:")
    # the badges are redrawn every second: the focus stays on the same one through a redraw
    after_redraw = page.evaluate("""() => new Promise((resolve) => {
      const observer = new MutationObserver(() => {
        observer.disconnect();
        setTimeout(() => resolve(document.activeElement.dataset.exchange ?? null));
      });
      observer.observe(document.getElementById("feeds"), { subtree: true, childList: true, characterData: true });
    })""")
    assert after_redraw == badges[0]
    page.keyboard.press("Space")
    details.wait_for(state="hidden")


# --- a trader's screen: the board, the first screen, a phone, empty states, the banners ------------------------------
DEFAULT_MARKETS = 7  # the replay's watchlist: one market of each recorded exchange


def quotes_on_board(page, count=DEFAULT_MARKETS):
    page.wait_for_function(f"document.querySelectorAll('#board tbody tr[data-state=quote]').length >= {count}",
                           timeout=30_000)


FIRST_ROWS = """() => [...document.querySelectorAll('#panels .panel')].map((p) => {
  const row = p.querySelector('tbody tr'), r = row?.getBoundingClientRect();
  return { market: p.dataset.market, top: r ? r.top : null, bottom: r ? r.bottom : null };
})"""


def test_the_first_screen_shows_the_board_and_every_markets_newest_rows(browser, replay_server):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(replay_server.url)
        quotes_on_board(page)
        page.wait_for_function(f"[...document.querySelectorAll('#panels .panel')].filter(p => "
                               f"p.querySelector('tbody tr')).length === {DEFAULT_MARKETS}", timeout=30_000)
        page.evaluate("window.__flush()")
        board = page.locator("#board").bounding_box()
        assert board["y"] < 300 and board["y"] + board["height"] < 600  # at the top, one line a market
        lines = page.locator("#board tbody tr").evaluate_all("trs => trs.map(tr => tr.dataset.market)")
        assert len(lines) == DEFAULT_MARKETS
        for first in page.evaluate(FIRST_ROWS):  # every panel's newest row is on the first screen
            assert first["bottom"] is not None and first["bottom"] <= 900, first
        assert page.evaluate("document.documentElement.scrollWidth") <= 1440
        # each line: bid x size, ask x size, bps, last, a time to the millisecond, an age
        line = page.locator('#board tr[data-market="coinbase:SKL-USD"]')
        texts = line.evaluate("tr => [...tr.querySelectorAll('td')].map(td => td.textContent)")
        assert re.match(r"^0\.\d+ × [\d.]+$", texts[0]) and re.match(r"^0\.\d+ × [\d.]+$", texts[1])
        assert re.match(r"^-?\d+\.\d\d$", texts[2]) and re.match(r"^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3}$", texts[4])
        assert re.match(r"^\d+(\.\d)? s$", texts[5])
        # the charts come after the quotes, in a section that folds
        charts = page.locator("#charts-section").bounding_box()
        assert charts["y"] > page.locator("#panels").bounding_box()["y"]
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "desk.png"))
    finally:
        context.close()


INSIDE = """(width) => {  // every element of the page inside the window's width
  return [...document.querySelectorAll('body *')].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5);
  }).map((el) => `${el.tagName}.${el.className}`).slice(0, 5);
}"""
BROKEN_NUMBERS = """(selector) => [...document.querySelectorAll(selector)].filter((el) => {  // a number on two lines or more
  const text = document.createRange();
  text.selectNodeContents(el);
  return new Set([...text.getClientRects()].map((r) => Math.round(r.top))).size > 1;
}).map((el) => el.textContent)"""


def test_a_phone_shows_time_bid_ask_and_last_within_its_width(browser, replay_server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(replay_server.url)
        quotes_on_board(page)
        first_rows(page, "binance:NKN-USDT", 2)
        first_rows(page, "kraken:SC-EUR", 2)
        page.evaluate("window.__flush()")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate(INSIDE, 390) == []
        # each running row: time, bid, ask and last side by side, all four inside the panel, nothing scrolled away
        first_rows(page, "coinbase:SKL-USD", 2)
        for market in ("binance:NKN-USDT", "kraken:SC-EUR", "coinbase:SKL-USD"):
            # the panel's newest row and its card, read in one task (a backfill may replace the rows between two)
            card, cells = panel(page, market).evaluate(
                "p => { const c = p.querySelector('.card').getBoundingClientRect(); "
                "return [[c.left, c.right], [...p.querySelector('tbody tr').cells].map(td => { "
                "const r = td.getBoundingClientRect(); return [r.left, r.right, td.scrollWidth <= td.clientWidth + 1]; })]; }")
            assert len(cells) == 4
            for left, right, fits in cells:
                assert card[0] - 0.5 <= left < right <= card[1] + 0.5 and fits, (market, card, cells)
        # no number is cut across two lines (a price broken in two reads as another price: the spread table's
        # narrow columns made "0.0000283" and "5" of "0.00002835"), and the spread table is inside the width too
        page.locator("#spreads tbody .num").nth(3).wait_for()
        page.evaluate("window.scrollTo(0, document.querySelector('#spreads').offsetTop)")
        page.evaluate(FRAMES, 2)
        page.evaluate("window.__flush()")
        numbers = "#spreads td .num, #spreads td.num, #board .num, .rows-scroll .num, #spreads td:first-child"
        assert page.locator(numbers).count() > 50 and page.evaluate(BROKEN_NUMBERS, numbers) == []
        assert page.evaluate(INSIDE, 390) == [] and page.evaluate("document.documentElement.scrollWidth") <= 390
        page.evaluate("window.scrollTo(0, 0)")
        # the badges fold into one line that says how the feeds are, and opens them
        summary = page.locator("#feeds-summary")
        assert summary.is_visible() and not page.locator("#feeds").is_visible()
        page.wait_for_function("document.querySelector('#feeds-summary').textContent.includes('live')")
        assert summary.bounding_box()["height"] < 40
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "phone.png"))
        summary.click()
        assert page.locator("#feeds").is_visible()
        assert page.locator("#feeds .badge").count() == len(EXCHANGES)
        assert summary.get_attribute("aria-expanded") == "true"
    finally:
        context.close()


# Hands one event to the page, draws, and reads a board line's cells, in one task (nothing from the server between).
BOARD_AFTER = """([event, payload, market]) => {
  window.__receive(event, payload);
  window.__flush();
  const tr = document.querySelector(`#board tr[data-market="${market}"]`);
  return Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.className.split(' ')[1], {
    text: td.textContent, move: td.dataset.move ?? null, classes: td.className,
    flash: ['up', 'down'].filter((m) => td.classList.contains('flash-' + m)) }]));
}"""
NEWEST = 8e15  # a seq above any the server numbers (its start time in µs) and exact in a double: our rows stay on top


def test_the_board_groups_a_pairs_venues_marks_the_best_and_flashes_a_move(page, replay_server):
    page.goto(replay_server.url + "/?markets=coinbase:SKL-USD,binance:NKN-USDT,binanceus:SKL-USD")
    quotes_on_board(page, 2)
    order = page.locator("#board tbody tr").evaluate_all("trs => trs.map(tr => tr.dataset.market)")
    assert order == ["coinbase:SKL-USD", "binanceus:SKL-USD", "binance:NKN-USDT"]  # a pair's venues together
    ticks = lambda **f: {"market": MARKET, "ticks": [injected_tick(received=10**12, **f)]}  # noqa: E731
    page.evaluate(BOARD_AFTER, ["ticks", ticks(seq=NEWEST), MARKET])
    # the best bid and ask across venues, from the server's spread row (both venues quoting)
    row = {"pair": "SKL-USD", "quote": "USD", "crossed": False, "spread": "0.0001", "spread_bps": "1.26",
           "best_bid": {"price": "0.7901", "exchange": "coinbase", "age_ms": 5},
           "best_ask": {"price": "0.7902", "exchange": "binanceus", "age_ms": 5},
           "venues": [{"exchange": "binanceus", "bid": "0.79", "ask": "0.7902", "age_ms": 5, "empty": None,
                       "excluded": ""},
                      {"exchange": "coinbase", "bid": "0.7901", "ask": "0.7911", "age_ms": 5, "empty": None,
                       "excluded": ""}]}
    coinbase = page.evaluate(BOARD_AFTER, ["spread", row, MARKET])
    assert "best-bid" in coinbase["bid"]["classes"] and "best-ask" not in coinbase["ask"]["classes"]
    assert coinbase["bid"]["text"] == "0.7901 × 10" and coinbase["bps"]["text"] == "12.65"  # (0.7911-0.7901)/0.7906
    # a move up flashes up, a move down flashes down; the strings stay the exchange's
    up = page.evaluate(BOARD_AFTER, ["ticks", ticks(seq=NEWEST + 1, bid="0.79015"), MARKET])
    assert up["bid"]["text"] == "0.79015 × 10" and up["bid"]["move"] == "up" and up["bid"]["flash"] == ["up"]
    assert up["ask"]["classes"] == coinbase["ask"]["classes"]  # unchanged: no new flash
    down = page.evaluate(BOARD_AFTER, ["ticks", ticks(seq=NEWEST + 2, bid="0.7900"), MARKET])
    assert down["bid"]["text"] == "0.7900 × 10" and down["bid"]["move"] == "down" and down["bid"]["flash"] == ["down"]
    # the mark goes after a moment, by a later draw, nothing else arriving
    page.wait_for_function(f"document.querySelector('#board tr[data-market=\"{MARKET}\"] td.bid')"
                           "?.classList.contains('flash-down') === false", timeout=5_000)
    # an emptied side: "empty" on the board too, never its last price, and no spread
    emptied = page.evaluate(BOARD_AFTER, ["ticks", ticks(seq=NEWEST + 3, bid=None, bid_size=None, empty="bid"),
                                          MARKET])
    assert emptied["bid"]["text"] == "empty" and emptied["bps"]["text"] == "–"
    # an older tick (a lower seq) never replaces the line's newest
    older = page.evaluate(BOARD_AFTER, ["ticks", ticks(seq=NEWEST - 1, bid="0.5"), MARKET])
    assert older["bid"]["text"] == "empty"
    # a line's age is redrawn ten times a second in the text node it has (a new node each time cost style and
    # layout work on every line of the board)
    age = f'#board tr[data-market="{MARKET}"] td.age'
    page.evaluate(f"[window.__age, window.__was] = [document.querySelector('{age}').firstChild, "
                  f"document.querySelector('{age}').textContent]")
    page.wait_for_function(f"document.querySelector('{age}').textContent !== window.__was", timeout=5_000)
    assert page.evaluate(f"window.__age === document.querySelector('{age}').firstChild")


# Where each number's decimal point is (or would be): the right edge of its last whole digit, as drawn.
POINTS = """(selector) => [...document.querySelectorAll(selector)].map((td) => {
  const num = td.querySelector('.num'), text = num.firstChild.data, point = text.indexOf('.');
  const whole = point < 0 ? text.length : point, range = document.createRange();
  range.setStart(num.firstChild, whole - 1);
  range.setEnd(num.firstChild, whole);
  return { text: num.textContent, point: range.getBoundingClientRect().right };
})"""


def test_prices_line_up_on_the_decimal_point_and_keep_their_strings(page):
    first_rows(page, MARKET)
    seq = NEWEST
    ticks = [injected_tick(seq=seq, bid="30241.9", ask="30242", last="7.25"),
             injected_tick(seq=seq + 1, bid="30242", ask="0.00012", last="30241.875")]
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": ticks}, "td"])
    rows = f'.panel[data-market="{MARKET}"] tbody tr'
    for column in ("bid", "ask", "last"):
        newest, older = page.evaluate(POINTS, f"{rows}:nth-child(-n+2) td.{column}")
        assert abs(newest["point"] - older["point"]) < 0.5, (column, newest, older)
    bids = page.evaluate(POINTS, f"{rows}:nth-child(-n+2) td.bid")
    assert [b["text"] for b in bids] == ["30242", "30241.9"]  # unchanged: no zero added, no rounding


def test_empty_states_say_why(page, replay_server):
    from conftest import wait_listing
    wait_listing(replay_server, "coinbase")
    page.select_option("#exchange", "coinbase")
    page.fill("#pair", "BTC-FOO")
    page.click("#add-market button[type=submit]")
    market = "coinbase:BTC-FOO"
    page.wait_for_function(f"document.querySelector('.panel[data-market=\"{market}\"]')?.dataset.state === 'error'")
    page.evaluate("window.__flush()")
    assert panel(page, market).locator(".empty-state").inner_text() == "BTC-FOO is not listed on Coinbase"
    line = page.locator(f'#board tr[data-market="{market}"] td.empty-state')
    assert line.inner_text() == "BTC-FOO is not listed on Coinbase"
    # (the charts and the spread table are drawn once scrolled to: out of view the browser skips them)
    for selector, text in [('.pair-chart[data-pair="BTC-FOO"] .chart-empty', "no data yet for BTC-FOO"),
                           ('#spreads tr[data-pair="BTC-FOO"] td.empty-state', "no quotes yet")]:
        page.locator(selector).scroll_into_view_if_needed()
        page.wait_for_function("([selector, text]) => document.querySelector(selector)?.innerText === text",
                               arg=[selector, text], timeout=2_000)
    # a chart with data says nothing
    page.wait_for_function("window.__charts.get('SKL-USD')?.empty.hidden === true", timeout=30_000)
    # a market the server is waiting on, in the server's words
    first_rows(page, MARKET)
    page.evaluate(INJECT, ["market_state", {"market": "coinbase:BTC-FOO", "state": "waiting",
                                            "reason": "no update for 30 s", "since": 0}, "#none"])
    assert panel(page, market).locator(".empty-state").inner_text() == "waiting: no update for 30 s"


def feed(exchange, label, state, reason=""):
    return {"exchange": exchange, "label": label, "state": state, "reason": reason, "now": 0, "markets": {},
            "frames": 0, "ticks": 0, "message_rate": 0, "reconnects": 0, "gaps": 0, "bad_frames": 0}


OFFLINE = "cannot resolve ws-feed.exchange.coinbase.com: no network or DNS?"


OFFLINE_VIEW = """([feeds, market]) => {  // hands the page a feeds list and reads what it shows, in one task
  window.__receive("feeds", feeds);
  window.__flush();
  const banner = document.getElementById("offline-banner");
  const lum = (c) => { const [r, g, b] = c.match(/[\\d.]+/g).map(Number); return (0.2126*r + 0.7152*g + 0.0722*b) / 255; };
  const idle = document.querySelector('#feeds .badge[data-exchange="okx"]');
  const style = idle && getComputedStyle(idle);
  return { shown: !banner.classList.contains("d-none"), text: banner.textContent,
    idle: style ? [Math.abs(lum(style.color) - lum(style.backgroundColor)), style.boxShadow] : null,
    down: document.querySelector(`#board tr[data-market="${market}"]`).classList.contains("feed-down"),
    panel: document.querySelector(`.panel[data-market="${market}"]`).innerText,
    badge: document.querySelector(`.panel[data-market="${market}"] .market-state`).textContent };
}"""


def test_no_exchange_reachable_shows_one_banner_and_why(page):
    first_rows(page, MARKET)
    now = page.evaluate("Date.now()")
    down = [{**feed("coinbase", "Coinbase", "reconnecting", OFFLINE), "now": now},
            {**feed("kraken", "Kraken", "error", "cannot resolve ws.kraken.com: no network or DNS?"), "now": now},
            {**feed("okx", "OKX", "idle"), "now": now}]
    seen = page.evaluate(OFFLINE_VIEW, [down, MARKET])
    assert seen["shown"]
    assert seen["text"].startswith(f"No exchange can be reached ({OFFLINE}; cannot resolve ws.kraken.com: no network")
    assert seen["idle"][0] > 0.5 and seen["idle"][1] != "none"  # the idle badge reads plainly, with an edge
    assert seen["down"]  # a market of a feed that is down: its board line says so
    # its panel says why once (not in its empty state too), and its badge says the feed is down, not "subscribing"
    assert seen["panel"].count(OFFLINE) == 1 and seen["badge"] == "feed down"
    back = page.evaluate(OFFLINE_VIEW, [[{**feed("coinbase", "Coinbase", "live"), "now": now},
                                         {**feed("okx", "OKX", "idle"), "now": now}], MARKET])
    assert not back["shown"] and not back["down"] and back["badge"] != "feed down"


def test_replay_says_what_it_plays_and_each_clock_date_once(page):
    banner = page.locator("#replay-banner")
    assert banner.is_visible()
    text = banner.inner_text()
    assert text.startswith("Replay of recorded data, not live prices: ") and "5× the recorded pace" in text
    banner.locator("summary").click()
    items = banner.locator("li").all_inner_texts()
    assert "Coinbase: COINBASE.ws.28.0 (2021-04-17, UTC)" in items
    rows = first_rows(page, MARKET, 2)
    dates = panel(page, MARKET).locator(".clock-dates").inner_text()
    assert dates.startswith("exchange clock 2021-04-17")
    times = panel(page, MARKET).locator('tbody td[data-time-source="exchange"]').all_inner_texts()
    assert times and all(re.match(r"^\d\d:\d\d:\d\d\.\d{3}$", t) for t in times)  # the date is said once, above
    # Binance's bookTicker has no time: its rows are our receipt times, and the panel names both clocks' dates
    first_rows(page, "binance:NKN-USDT", 2)
    page.wait_for_function("document.querySelector('.panel[data-market=\"binance:NKN-USDT\"] .clock-dates')"
                           ".textContent.includes('received (rcv)')", timeout=30_000)
    assert rows.count() >= 2


def test_the_page_draws_at_most_once_an_animation_frame(page):
    first_rows(page, MARKET)
    top = f'.panel[data-market="{MARKET}"] tbody tr'
    same_task = page.evaluate(f"""() => {{
      const market = "{MARKET}", tbody = document.querySelector('.panel[data-market="' + market + '"] tbody');
      const before = tbody.rows[0].dataset.seq;
      const tick = (seq) => ({{ exchange: "coinbase", symbol: "SKL-USD", time: null, received: 0, bid: "0.7901",
        bid_size: "1", ask: "0.7911", ask_size: "1", last: null, last_size: null, last_side: null, empty: null, seq }});
      for (let i = 0; i < 50; i++) window.__receive("ticks", {{ market, ticks: [tick({NEWEST} + i)] }});
      return tbody.rows[0].dataset.seq === before;  // 50 events: nothing drawn in their task
    }}""")
    assert same_task
    # then one draw, in a later frame, puts them on top at once, the newest first (as many as the list shows as
    # rows, at least 10; the others wait in memory for a scroll)
    page.wait_for_function(f"document.querySelector('{top}')?.dataset.seq === '{int(NEWEST + 49)}'")
    seqs = page.locator(top).evaluate_all("rows => rows.slice(0, 50).map(r => Number(r.dataset.seq))")
    assert len(seqs) >= 10 and seqs == [NEWEST + i for i in range(49, 49 - len(seqs), -1)]
    # a tick queued twice before a draw (a backfill and a batch that overlap it) is one row
    again = [injected_tick(seq=NEWEST + 50), injected_tick(seq=NEWEST + 50)]
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": again}, "td"])
    seqs = page.locator(top).evaluate_all("rows => rows.slice(0, 2).map(r => Number(r.dataset.seq))")
    assert seqs == [NEWEST + 50, NEWEST + 49]


def test_a_panel_shows_its_newest_rows_and_older_ones_as_it_is_scrolled(page):
    rows = panel(page, MARKET).locator("tbody tr")
    scroller = f'document.querySelector(\'.panel[data-market="{MARKET}"] .rows-scroll\')'
    first_rows(page, MARKET)
    # 100 ticks at once: the newest become rows, enough to fill the list and more below (10 at least); the others
    # wait in memory (the panel keeps its last MAX_ROWS)
    ticks = [injected_tick(seq=NEWEST + i) for i in range(100)]
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": ticks}, "td"])
    shown = rows.count()
    assert 10 <= shown < 100
    assert page.evaluate(f"{scroller}.scrollHeight - {scroller}.clientHeight") >= 100
    page.evaluate(f"{scroller}.scrollTop = {scroller}.scrollHeight")
    page.wait_for_function(f"{scroller}.querySelectorAll('tbody tr').length > {shown}")
    seqs = rows.evaluate_all("rows => rows.map(r => Number(r.dataset.seq))")
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(set(seqs))  # newest first, no row twice


ROW_STATE = """(tr) => {
  const [time, bid, ask, last] = tr.cells;
  return { kind: tr.className, seq: Number(tr.dataset.seq), cells: tr.cells.length,
    text: [...tr.cells].map((td) => td.textContent),
    timeClass: time.className, source: time.dataset.timeSource ?? null, bidEmpty: bid?.dataset.empty ?? null,
    bidTitle: bid?.getAttribute("title") ?? null, lastClass: last?.className ?? null };
}"""


def test_a_row_filled_in_place_keeps_nothing_of_the_tick_it_showed_before(page):
    # The list keeps its rows and puts each new entry in the row at its place: whatever a row's last tick set (an
    # empty side, a sell, a receipt time, a REST fill) must not stay on the tick shown there next.
    first_rows(page, MARKET)
    rows = f'.panel[data-market="{MARKET}"] tbody tr'
    late = injected_tick(seq=NEWEST, bid=None, bid_size=None, empty="bid", last_side="sell", source="rest",
                         received=1_618_700_000_000)
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [late]}, "td"])
    page.evaluate(f"window.__top = document.querySelector('{rows}')")
    row = page.locator(rows).first
    was = row.evaluate(ROW_STATE)
    assert was["bidEmpty"] == "bid" and was["bidTitle"] == "no bids in the book" and "side-sell" in was["lastClass"]
    assert was["timeClass"] == "time-received from-rest" and was["source"] == "received"

    fresh = injected_tick(seq=NEWEST + 1, time=1_618_700_000_500, received=1_618_700_000_600)
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [fresh]}, "td"])
    assert page.evaluate(f"document.querySelector('{rows}') === window.__top")  # the row was kept, not replaced
    now, before = page.locator(rows).evaluate_all(f"rows => rows.slice(0, 2).map({ROW_STATE})")
    assert now["seq"] == NEWEST + 1 and now["bidEmpty"] is None and now["bidTitle"] is None
    assert now["text"][1:] == ["0.7901× 10", "0.7911× 20", "0.7905× 1"]
    assert now["timeClass"] == "" and now["source"] == "exchange"
    assert now["lastClass"] == "text-end last side-buy"
    assert before == {**was, "seq": NEWEST}  # the late tick moved down a row, as it was

    # a gap takes the top row as one note across the list; the tick after it is a tick row again
    gap = {"kind": "gap", "exchange": "coinbase", "symbol": "SKL-USD", "seq": NEWEST + 2, "from": 1_618_700_000_600,
           "to": 1_618_700_009_000, "reason": "no update for 8 s"}
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [gap]}, "td"])
    after_gap = injected_tick(seq=NEWEST + 3, time=1_618_700_009_100, received=1_618_700_009_200, last_side="sell")
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [after_gap]}, "td"])
    top = page.locator(rows).evaluate_all(f"rows => rows.slice(0, 4).map({ROW_STATE})")
    assert [r["seq"] for r in top] == [NEWEST + 3, NEWEST + 2, NEWEST + 1, NEWEST]
    assert [r["kind"] for r in top] == ["", "gap-row", "", ""] and [r["cells"] for r in top] == [4, 1, 4, 4]
    assert top[1]["text"] == ["no data 22:53:20.600–22:53:29.000 UTC: no update for 8 s"]
    assert top[0]["lastClass"] == "text-end last side-sell" and top[0]["bidEmpty"] is None


def test_rows_being_read_further_down_a_list_stay_where_they_are_as_ticks_come(page):
    # At the top, a list shows each new tick in the rows it has; scrolled down to older rows, new rows go on top and
    # the browser keeps what is being read in place (scroll anchoring): the rows must not change under the reader.
    first_rows(page, MARKET)
    scroller = f'document.querySelector(\'.panel[data-market="{MARKET}"] .rows-scroll\')'
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [injected_tick(seq=NEWEST + i) for i in range(30)]},
                           "td"])
    seq_at_top_of_view = f"""() => {{
      const s = {scroller}, top = s.getBoundingClientRect().top + s.querySelector('thead').offsetHeight + 2;
      const row = [...s.querySelectorAll('tbody tr')].find((r) => r.getBoundingClientRect().bottom > top);
      return Number(row.dataset.seq);
    }}"""
    page.evaluate(f"{scroller}.scrollTop = 150")
    page.evaluate(FRAMES, 2)  # the scroll event has been handled
    reading = page.evaluate(seq_at_top_of_view)
    assert reading < NEWEST + 29
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [injected_tick(seq=NEWEST + 30 + i) for i in range(5)]},
                           "td"])
    page.evaluate(FRAMES, 2)
    assert page.evaluate(seq_at_top_of_view) == reading
    assert page.evaluate(f"{scroller}.scrollTop") > 150  # the browser moved the view down by the rows put on top

    # back at the top: the newest tick is in the top row, which is kept
    page.evaluate(f"{scroller}.scrollTop = 0")
    page.evaluate(FRAMES, 2)
    page.evaluate(f"window.__top = {scroller}.querySelector('tbody tr')")
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [injected_tick(seq=NEWEST + 40)]}, "td"])
    assert page.evaluate(f"{scroller}.querySelector('tbody tr') === window.__top")
    assert page.evaluate(f"Number({scroller}.querySelector('tbody tr').dataset.seq)") == NEWEST + 40


def test_a_backfill_takes_the_place_of_the_rows_shown_and_an_empty_one_empties_the_list(page):
    # A resync (the server or Redis back) sends each panel a backfill, the server's state: it replaces the rows shown,
    # drawn in their place. The list is never blank in between (CI once read a list in that moment), a list scrolled
    # down to older rows is replaced from its top too, and a backfill with nothing in it empties the list at once.
    first_rows(page, MARKET)
    scroller = f'document.querySelector(\'.panel[data-market="{MARKET}"] .rows-scroll\')'
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": [injected_tick(seq=NEWEST + i) for i in range(30)]},
                           "td"])
    page.evaluate(f"{scroller}.scrollTop = 150")
    page.evaluate(FRAMES, 2)  # the scroll event has been handled: the list is read further down
    watch_for_a_blank_list(page, MARKET)
    backfill = [injected_tick(seq=5 + i, time=1_618_700_000_000 + i, bid=f"0.70{i}") for i in range(3)]
    # in one task, so that no live tick comes in between
    received, drawn = page.evaluate(f"""(backfill) => {{
      const seqs = () => [...{scroller}.querySelectorAll('tbody tr')].map((tr) => Number(tr.dataset.seq));
      window.__receive('backfill', {{ market: '{MARKET}', ticks: backfill }});
      const received = seqs();
      window.__flush();
      return [received, seqs()];
    }}""", backfill)
    assert received[0] == NEWEST + 29  # until it is drawn, the rows shown stay
    assert drawn == [7, 6, 5]  # then they are the backfill's, newest on top, and nothing else
    assert page.locator(f'.panel[data-market="{MARKET}"] tbody tr td.bid').first.inner_text().startswith("0.702")
    page.evaluate(FRAMES, 2)
    assert page.evaluate(f"window.__blanked['{MARKET}']") is False

    rows, why = page.evaluate(f"""() => {{
      window.__receive('backfill', {{ market: '{MARKET}', ticks: [] }});
      const rows = {scroller}.querySelectorAll('tbody tr').length;
      window.__flush();
      return [rows, document.querySelector('.panel[data-market="{MARKET}"] .empty-state').textContent];
    }}""")
    assert rows == 0 and why.startswith("no data yet")


def test_no_style_rule_restyles_a_whole_list_when_a_row_is_put_on_top(page):
    # A rule whose subject is any element after a sibling (Bootstrap reboot's `legend + *`) makes Chrome re-style
    # every row of a list when one is put on top: the page drops such rules at start (static/styles.js).
    assert "legend + *" in page.evaluate("window.__droppedRules")
    # the page's own function, run again over what is loaded: nothing is left for it to drop
    left = page.evaluate("import('/static/styles.js').then((styles) => styles.dropSiblingWildcards())")
    assert left == []


def test_a_replay_played_again_from_its_start_says_so_between_the_passes(page):
    first_rows(page, MARKET)
    late, early = 1_618_700_000_000, 1_618_600_000_000  # the second pass's time is a day before the first's
    ticks = [injected_tick(seq=NEWEST, time=late, received=10**12), injected_tick(seq=NEWEST + 1, time=early,
                                                                                  received=10**12)]
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": ticks}, "td"])
    top = page.locator(f'.panel[data-market="{MARKET}"] tbody tr').evaluate_all(
        "rows => rows.slice(0, 3).map(r => [r.className, r.textContent, Number(r.dataset.seq)])")
    assert top[0][2] == NEWEST + 1 and top[2][2] == NEWEST  # in the order they came, newest on top
    assert "restart-row" in top[1][0] and top[1][1] == "replay: the recording starts again from its beginning here"
    # the chart breaks its lines there: no line from the end of one pass to the start of the next (a price move
    # that never happened); the rest of that second stays blank, the next second draws again
    page.wait_for_function("window.__charts.get('SKL-USD')?.ready === true", timeout=30_000)
    at = (page.evaluate("Date.now()") + 3_600_000) // 1000 * 1000  # after anything drawn so far, on a second
    passes = [injected_tick(seq=NEWEST + 2, time=late + 500, received=at, bid="0.7001"),
              injected_tick(seq=NEWEST + 3, time=early, received=at + 2000, bid="0.7002"),
              injected_tick(seq=NEWEST + 4, time=early + 100, received=at + 2100, bid="0.7003"),
              injected_tick(seq=NEWEST + 5, time=early + 1000, received=at + 4000, bid="0.7004")]
    page.evaluate(INJECT, ["ticks", {"market": MARKET, "ticks": passes}, "td"])
    chart = page.evaluate("""(from) => {
      const c = window.__charts.get('SKL-USD');
      return { restarts: c.restarts.filter((r) => r.time >= from),
               bid: c.series.coinbase.bid.data().filter((p) => p.time >= from) };
    }""", at // 1000)
    assert chart["restarts"] == [{"exchange": "coinbase", "time": at // 1000 + 2}]  # a whitespace point there
    assert chart["bid"] == [{"time": at // 1000, "value": 0.7001}, {"time": at // 1000 + 4, "value": 0.7004}]
