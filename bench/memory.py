"""Memory over a long run: the server's RSS across N ticks, and the page's JS heap after M minutes of full-speed
replay in headless chromium (the running lists cap their rows, so both should stay flat).

    python bench/memory.py [--ticks 1000000] [--page-minutes 10]
    python bench/memory.py --page-only --panels 20 --speed 10 --page-minutes 2 --split   (the page's long tasks)
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import socketio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import feed_counter, listen, rss_mb, running_server  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def server_rss(ticks_wanted: int) -> list[tuple[int, float]]:
    """(ticks published so far, server RSS MB), sampled every second until `ticks_wanted`."""
    samples = []
    with running_server("eventlet", "max") as (port, pid):
        client = socketio.Client()
        totals, markets = {}, []
        listen(client, "feeds", lambda payload: totals.update(feed_counter(payload, "ticks")))  # also in `batch`
        client.on("markets", lambda offer: markets.extend(offer["watchlist"]))
        client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=20)
        while not markets:
            time.sleep(0.05)
        for market in markets:
            client.call("subscribe", {"market": market})
        while True:
            time.sleep(1)
            published = sum(totals.values())
            samples.append((published, rss_mb(pid)))
            if published >= ticks_wanted:
                break
        client.disconnect()
    return samples


LONG_TASKS = """window.__longTasks = [];
new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => e.duration)))
  .observe({ type: "longtask", buffered: true });"""


def offered_markets(port: int, count: int) -> list[str]:
    """`count` markets the server offers: its watchlist first, then the recordings' other markets."""
    client = socketio.Client()
    offers = []
    client.on("markets", offers.append)
    client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=20)
    deadline = time.monotonic() + 20
    while not offers and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    offer = offers[0]
    markets = list(offer["watchlist"])
    for exchange, symbols in sorted(offer["available"].items()):
        markets += [f"{exchange}:{symbol}" for symbol in symbols if f"{exchange}:{symbol}" not in markets]
    return markets[:count]


def page_heap(minutes: float, speed: str = "max", panels: int = 0,
              split: bool = False) -> list[tuple[float, float, int, int, float, float]]:
    """(minutes, used JS heap MB, rows in the DOM, long tasks since the last sample, their total and the longest in
    ms), sampled every 30 s (or at the end) at `speed` (a multiple of the recorded pace, or max). `panels`: open
    that many markets (a ?markets= link), else the watchlist. `split`: the server and its local exchange on core 0,
    the browser on the others, so the page's own cost is what is measured. A long task (> 50 ms) is a moment the
    page could not answer."""
    from playwright.sync_api import sync_playwright
    split = split and (os.cpu_count() or 1) > 1
    if split:  # the server, and the local exchange it starts once it is up, inherit core 0
        os.sched_setaffinity(0, {0})
    with running_server("eventlet", speed) as (port, server_pid):
        if split:
            # before Playwright starts its driver: the driver, and the browser it starts, inherit the other cores
            os.sched_setaffinity(0, set(range(1, os.cpu_count())))
        with sync_playwright() as p:
            samples = browse(p, port, minutes, panels)
    return samples


def browse(p, port: int, minutes: float, panels: int) -> list[tuple[float, float, int, int, float, float]]:
    """page_heap's samples, from a browser started by Playwright `p` on the server at `port`."""
    samples = []
    browser = p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--enable-precise-memory-info",
        "--disable-renderer-backgrounding"])  # else Chromium lowers the renderer's priority (nice 5 seen)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    query = f"?markets={','.join(offered_markets(port, panels))}" if panels else ""
    page.goto(f"http://127.0.0.1:{port}/{query}")
    page.evaluate(LONG_TASKS)
    started = time.monotonic()
    while True:
        elapsed = (time.monotonic() - started) / 60
        page.wait_for_timeout(min(30_000, max(100, (minutes - elapsed) * 60_000)))
        elapsed = (time.monotonic() - started) / 60
        heap = page.evaluate("performance.memory.usedJSHeapSize") / 2 ** 20
        rows = page.locator("tbody tr").count()
        long_tasks = page.evaluate("window.__longTasks.splice(0)")
        samples.append((elapsed, heap, rows, len(long_tasks), sum(long_tasks), max(long_tasks, default=0.0)))
        if elapsed >= minutes:
            break
    browser.close()
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--page-minutes", type=float, default=10.0)
    parser.add_argument("--page-only", action="store_true", help="skip the server's million ticks")
    parser.add_argument("--speed", default="max", help="the page's replay pace: a multiple of the recorded pace, or max")
    parser.add_argument("--panels", type=int, default=0, help="open this many markets on the page (0: the watchlist)")
    parser.add_argument("--split", action="store_true", help="server on core 0, the browser on the other cores")
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if not args.page_only:
        rss = server_rss(args.ticks)
        warm = next((mb for ticks, mb in rss if ticks >= args.ticks // 10), rss[0][1])
        print(f"server RSS: {rss[0][1]:.0f} MB at start, {warm:.0f} MB after warm-up ({args.ticks // 10:,} ticks), "
              f"{rss[-1][1]:.0f} MB after {rss[-1][0]:,} ticks, max {max(mb for _, mb in rss):.0f} MB: "
              f"{(rss[-1][1] - warm) / warm * 100:+.1f} % since warm-up")
    heap = page_heap(args.page_minutes, args.speed, args.panels, args.split)
    print(f"page at speed {args.speed}, {args.panels or 'watchlist'} panels: " + ", ".join(
        f"{m:.1f} min {mb:.1f} MB heap {rows} rows, {count} long tasks "
        f"(total {total / 1000:.1f} s, max {longest:.0f} ms)" for m, mb, rows, count, total, longest in heap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
