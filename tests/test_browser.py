"""The page in a real browser (Playwright driving Debian's chromium, headless) against `server.py --replay`."""
import os
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


def price(row, column):
    return Decimal(row.locator(f"td.{column}").evaluate("cell => cell.firstChild.textContent"))


def test_rows_stream_into_coinbase_and_binance_panels_with_utc_times(page):
    for market in ("coinbase:SKL-USD", "binance:NKN-USDT"):
        rows = first_rows(page, market, 2)
        row = rows.first
        assert TIME.match(row.locator("td").first.inner_text().replace(" rcv", "").strip())
        assert price(row, "bid") <= price(row, "ask")
    # Binance bookTicker carries no time: those rows show our receipt time, marked as such
    binance = panel(page, "binance:NKN-USDT")
    assert binance.locator('td[data-time-source="received"]').count() >= 1
    assert panel(page, "coinbase:SKL-USD").locator('td[data-time-source="exchange"]').count() >= 1
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "replay.png"))


def test_feed_badges_show_each_feed_state(page):
    for exchange in ("coinbase", "binance", "binanceus"):
        badge = page.locator(f'#feeds .badge[data-exchange="{exchange}"]')
        badge.wait_for()
        assert badge.get_attribute("data-state") in ("live", "quiet", "connecting")
    page.wait_for_function("document.querySelector('#feeds .badge[data-exchange=coinbase]').dataset.state"
                           " === 'live'")


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


def test_a_pair_the_exchange_rejects_shows_the_reason_in_its_panel(page):
    page.select_option("#exchange", "coinbase")
    page.fill("#pair", "BTC-FOO")
    page.click("#add-market button[type=submit]")
    reason = panel(page, "coinbase:BTC-FOO").locator(".market-reason")
    reason.wait_for()
    page.wait_for_function("document.querySelector('.panel[data-market=\"coinbase:BTC-FOO\"]').dataset.state"
                           " === 'error'")
    assert reason.inner_text() == "BTC-FOO is not a valid product"


def test_a_malformed_pair_is_refused_in_the_form(page):
    page.fill("#pair", "BTC/USD/X")
    page.click("#add-market button[type=submit]")
    assert "BASE-QUOTE" in page.locator("#form-message").inner_text()
