"""Parse speed on the real recorded frames: each exchange module (through the listener's own frame handler, as on
the wire) against json.loads and orjson.loads alone (the floor of any Python parser) and against cryptofeed's own
`message_handler` on the same frames, side by side in one run. Median of 5 passes (--best: the fastest), the columns
taking turns pass by pass; frames per second.

    python bench/parse.py [--passes 5] [--seconds 0.3]            # ours, json, orjson
    python bench/parse.py --before 370efc9                         # + the exchanges package at that commit
    python bench/parse.py --checks                                 # ways to check a decimal string, compared
    python bench/parse.py --floor --best --cpu                     # the least a Python handler costs, as one function
    python bench/parse.py --best --cpu --passes 30 --seconds 0.05  # a busy machine: CPU time, each column's best
    .venv-bench/bin/python bench/parse.py                          # + cryptofeed (bench/requirements.txt)

cryptofeed runs offline: its symbol cache is filled from the recorded REST listings (COINBASE.0, BINANCE_US.0; the
Binance recording's four symbols are listed for it in the exchangeInfo shape), and its Binance book's REST
snapshot is answered with an empty book whose lastUpdateId is one before the first recorded update. A fresh feed
object per pass, built outside the timed part.
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import importlib
import importlib.metadata
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import websocket  # noqa: E402

from exchanges import EXCHANGES  # noqa: E402
from exchanges.recording import read_frames, read_rest  # noqa: E402
from exchanges.tick import Update  # noqa: E402
from exchanges.venue import played  # noqa: E402

RECORDINGS = ROOT / "tests" / "fixtures" / "upstream"
def frame_sets():
    """(label, exchange, frames) per exchange module and its websocket recordings: all frames, and the frames that
    carry a tick (those its parser turns into an Update). Derived from the registry, so a new exchange is in."""
    for name, listener_class in EXCHANGES.items():
        files = [RECORDINGS / f for f in listener_class.recordings if ".ws." in f]
        frames = [f for path in files for f in read_frames(path) if f.exchange == name]
        if not frames:
            continue
        listener = listener_class(_api_url(frames), [], on_tick=lambda tick: None)
        ticks = [f for f in frames if any(type(item) is Update for item in _safe_parse(listener, f.frame.encode()))]
        yield f"{listener_class.label} all", name, frames
        yield f"{listener_class.label} tick frames", name, ticks
        # channels the recordings lack, as the local exchange derives them (Kraken `spread`): ours only
        # (Gemini: the new WebSocket API's bookTicker and trade, derived from its v2 recording)
        derived = [frame._replace(frame=text, url="") for frame, _, text in played(listener_class.venue(), frames)
                   if text is not frame.frame]
        if derived:
            yield f"{listener_class.label} derived", name, derived


CLOCK = time.perf_counter  # --cpu: time.thread_time, this thread's CPU time (not the moments others had the core)


def rate(run_once, count, passes, seconds):
    """Frames per second, median of `passes`, each pass repeating the set for at least `seconds` (of CLOCK)."""
    rates = []
    clock = CLOCK
    for _ in range(passes):
        repeats, started = 0, clock()
        while True:
            run_once()
            repeats += 1
            elapsed = clock() - started
            if elapsed >= seconds:
                break
        rates.append(repeats * count / elapsed)
    return statistics.median(rates)


def load_before(commit: str):
    """The `exchanges` package as it was at `commit` (git archive into a temporary folder), imported beside today's
    as `exchanges_before`, so before and after run side by side in one process. Its registry (EXCHANGES)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "exchanges"], check=True,
                             capture_output=True).stdout
    folder = tempfile.mkdtemp(prefix="parse-before-")
    atexit.register(shutil.rmtree, folder, True)  # read only by this process
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    os.rename(os.path.join(folder, "exchanges"), os.path.join(folder, "exchanges_before"))
    sys.path.insert(0, folder)
    return importlib.import_module("exchanges_before").EXCHANGES


def interleaved(runners: dict, count: int, passes: int, seconds: float, best: bool = False) -> dict:
    """Frames per second of each runner, median of `passes` (`best`: the fastest pass), the runners taking turns
    pass by pass: on a machine shared with other work a slow spell then falls on every column alike, and the ratios
    hold. Where other work comes and goes in bursts, each runner's best pass is the one it was left alone for."""
    rates = {name: [] for name in runners}
    for _ in range(passes):
        for name, run_once in runners.items():
            rates[name].append(rate(run_once, count, 1, seconds))
    return {name: max(values) if best else statistics.median(values) for name, values in rates.items()}


def ours(exchange, frames, registry=EXCHANGES):
    """The listener's own frame handler, subscribed to every symbol of the recording, as after a connect."""
    data = [f.frame.encode() for f in frames]
    listener = registry[exchange](_api_url(frames), [], on_tick=lambda tick: None)
    # that package's own Update (--before: not ours, so `is Update` would find no symbol and nothing be merged)
    update = importlib.import_module(type(listener).__module__.rpartition(".")[0] + ".tick").Update
    symbols = {item.symbol for f in frames for item in _safe_parse(listener, f.frame) if type(item) is update}
    listener.subscribe_messages(sorted(symbols))  # what a subscription sets up (Binance's symbol map ...)
    listener._subscribed_at = dict.fromkeys(symbols, 0.0)
    handle, text, reset = listener._handle, websocket.ABNF.OPCODE_TEXT, listener.book.reset

    def run():
        # Each pass starts as a new connection does: a repeated frame is then new to the tick (as every frame is on
        # the wire), so it is merged and published rather than dropped as older than its own earlier copy.
        reset()
        for frame in data:
            handle(text, frame)
    return run


def _api_url(frames):
    """The URL a recording was made from: it picks the API its listener speaks (Gemini's recording is market data
    v2, its default the new WebSocket API); derived frames carry none, so the default API reads them."""
    return (frames[0].url or None) if frames else None


def _safe_parse(listener, frame):
    try:
        return listener.parse(frame, 0)
    except Exception:  # a bad recorded frame: the handler counts it
        return []


def loads(function, frames):
    texts = [f.frame for f in frames]

    def run():
        for frame in texts:
            function(frame)
    return run


# --- cryptofeed, offline --------------------------------------------------------------------------------------------
def cryptofeed_runner(exchange, frames):
    try:
        from cryptofeed.defines import CANDLES, L2_BOOK, TICKER, TRADES
        from cryptofeed.exchanges import Binance as CFBinance, BinanceUS as CFBinanceUS, Coinbase as CFCoinbase
        from cryptofeed.symbols import Symbols
    except ImportError:
        return None
    feed_class = {"coinbase": CFCoinbase, "binance": CFBinance, "binanceus": CFBinanceUS}.get(exchange)
    if feed_class is None:
        return None
    if exchange == "coinbase":
        listing = orjson.loads(read_rest(RECORDINGS / "COINBASE.0")[2])
    elif exchange == "binanceus":
        listing = orjson.loads(read_rest(RECORDINGS / "BINANCE_US.0")[2])
    else:  # no recorded Binance listing: list the recording's symbols in the exchangeInfo shape
        natives = {orjson.loads(f.frame)["data"]["s"] for f in frames if '"data"' in f.frame}
        quotes = ("USDT", "BTC", "ETH", "EUR")
        listing = {"symbols": [{"symbol": n, "status": "TRADING", "baseAsset": n[:-len(q)], "quoteAsset": q,
                                "filters": [{"tickSize": "0.00000001"}]}
                               for n in natives for q in quotes if n.endswith(q)][:len(natives)]}
    symbols, info = feed_class._parse_symbol_data(listing)
    Symbols.set(feed_class.id, symbols, info)
    natives = {v: k for k, v in symbols.items()}
    if exchange == "coinbase":
        wanted = sorted({orjson.loads(f.frame).get("product_id") for f in frames} - {None})
    else:
        wanted = sorted({orjson.loads(f.frame)["stream"].split("@")[0].upper() for f in frames if '"stream"' in f.frame})
    std = [natives[w] for w in wanted if w in natives]
    first_update = {}
    for f in frames:
        if "depthUpdate" in f.frame:
            data = orjson.loads(f.frame)["data"]
            first_update.setdefault(data["s"], data["U"])

    class EmptyBook:
        async def read(self, address, **kwargs):
            pair = address.split("symbol=")[1].split("&")[0]
            return json.dumps({"lastUpdateId": first_update.get(pair, 1) - 1, "bids": [], "asks": []})

    async def noop(*args, **kwargs):
        pass

    channels = [TICKER, TRADES, L2_BOOK] + ([CANDLES] if exchange != "coinbase" else [])
    texts = [(f.frame, f.received) for f in frames]

    def run():
        feed = feed_class(symbols=std, channels=channels, callbacks={c: noop for c in channels})
        feed.http_conn = EmptyBook()
        handler = feed.message_handler

        async def drive():
            for text, received in texts:
                await handler(text, None, received)
        asyncio.run(drive())
    return run


# --- ways to check a frame's decimal strings ---------------------------------------------------------------------
def decimal_checks(passes: int, seconds: float) -> None:
    """Binance bookTicker frames (four decimal strings each) decoded by a typed Struct, then checked each way, against
    orjson.loads alone: the pattern inside the schema (msgspec Meta(pattern=...)), a compiled regex fullmatch per
    field, str methods per field, the checked-strings set and tick.priced (what the parsers use: strings seen before
    cost a lookup). Each pass decodes afresh, as on the wire: the strings are new objects every time."""
    import re
    from typing import Annotated, Optional

    import msgspec

    from exchanges.tick import _DECIMAL, checked, decimals, priced
    from exchanges.tick import all_checked as checked_set

    pattern = "^" + _DECIMAL.pattern + "$"

    def schema(price):  # defstruct: this module's annotations are strings (from __future__), a local class's too
        quote = msgspec.defstruct("Quote", [("s", str), ("b", price), ("B", price), ("a", price), ("A", price),
                                            ("u", Optional[int], None)], gc=False)
        return msgspec.json.Decoder(msgspec.defstruct("Frame", [("stream", str), ("data", quote)], gc=False)).decode

    plain, with_pattern = schema(str), schema(Annotated[str, msgspec.Meta(pattern=pattern)])
    frames = [f.frame.encode() for f in read_frames(RECORDINGS / "BINANCE.ws.1.0") if "@bookTicker" in f.frame]
    fullmatch = re.compile(_DECIMAL.pattern).fullmatch

    def by_str_methods(text):
        whole, _, fraction = text.partition(".")
        return whole.isascii() and whole.isdigit() and (not fraction or (fraction.isascii() and fraction.isdigit()))

    for frame in frames:
        quote = plain(frame).data
        decimals(quote.b, quote.B, quote.a, quote.A)  # seen once: the set's and priced's steady state

    def over(function):
        def run():
            for frame in frames:
                function(frame)
        return run

    def each(check):
        def run():
            for frame in frames:
                quote = plain(frame).data
                check(quote)
        return run

    runners = {
        "orjson.loads": over(orjson.loads),
        "typed decode only": each(lambda quote: None),
        "Meta(pattern) in the schema": over(with_pattern),
        "regex fullmatch per field": each(lambda q: fullmatch(q.b) and fullmatch(q.B) and fullmatch(q.a)
                                          and fullmatch(q.A)),
        "str methods per field": each(lambda q: by_str_methods(q.b) and by_str_methods(q.B) and by_str_methods(q.a)
                                      and by_str_methods(q.A)),
        "checked set + 2 strips (before)": each(lambda q: checked_set((q.b, q.B, q.a, q.A)) and q.b.strip("0.")
                                                 and q.a.strip("0.")),
        "tick.priced + checked (now)": each(lambda q: priced(q.b) and priced(q.a) and q.B in checked
                                            and q.A in checked),
    }
    results = interleaved(runners, len(frames), passes, seconds, best=True)
    base = results["orjson.loads"]
    print(f"{'bookTicker: decode and check':<34} {'frames/s':>10} {'us/frame':>9} {'cost / orjson':>13}")
    for name, value in results.items():
        print(f"{name:<34} {value:>10,.0f} {1e6 / value:>9.2f} {base / value:>13.2f}")


# --- the floor of a Python handler ------------------------------------------------------------------------------
def handler_floor(passes: int, seconds: float) -> None:
    """Binance bookTicker frames through everything the listener does for one (the receipt time, the frame counter,
    the typed decode, the four decimal checks, the stream check, the order by `u`, the merge, the tick's copy, the
    market's counters, the publish), written as one Python function with no call but the decode: the least a
    Python handler of this design can cost. Against orjson.loads, the typed decode alone and ours (_handle)."""
    from exchanges.binance import _BOOK_TICKER, Binance
    from exchanges.tick import TICK_FIELDS, checked, decimals, priced

    frames = [f.frame.encode() for f in read_frames(RECORDINGS / "BINANCE.ws.1.0") if "@bookTicker" in f.frame]
    decode, listener, published = _BOOK_TICKER.decode, Binance(None, [], on_tick=lambda tick: None), []
    unified = {}
    for frame in frames:
        quote = decode(frame).data
        decimals(quote.b, quote.B, quote.a, quote.A)
        unified[quote.s] = listener.from_native(quote.s)
    symbols = set(unified.values())
    listener.subscribe_messages(sorted(symbols))
    listener._subscribed_at = dict.fromkeys(symbols, 0.0)
    counts = {symbol: [0, None] for symbol in symbols}  # [ticks, last data at]
    markets = {}
    totals = [0, 0]  # frames, ticks

    def fused(frame):
        received = time.time_ns() // 1_000_000
        totals[0] += 1
        message = decode(frame)
        data = message.data
        symbol = unified.get(data.s)
        b, a, bid_size, ask_size = data.b, data.a, data.B, data.A
        if priced(b) and priced(a) and bid_size in checked and ask_size in checked and (
                message.stream.endswith("@bookTicker")):
            market = markets.get(symbol)
            if market is None:
                market = markets[symbol] = [None, {"exchange": "binance", "symbol": symbol, "time": None,
                                                   "received": None, **dict.fromkeys(TICK_FIELDS)}]
            if market[0] is not None and data.u < market[0]:
                return
            market[0] = data.u
            state = market[1]
            state["bid"] = b
            state["bid_size"] = bid_size
            state["ask"] = a
            state["ask_size"] = ask_size
            tick = state.copy()
            tick["time"] = None
            tick["received"] = received
            count = counts[symbol]
            count[0] += 1
            count[1] = received
            totals[1] += 1
            published.append(tick)

    handle, text = listener._handle, websocket.ABNF.OPCODE_TEXT

    def over(function, reset=None):
        def run():
            if reset is not None:
                reset()  # each pass merges, as on the wire (see ours)
            published.clear()
            for frame in frames:
                function(frame)
        return run

    runners = {"orjson.loads": over(orjson.loads), "typed decode only": over(decode),
               "one fused function": over(fused, markets.clear),
               "ours (_handle)": over(lambda frame: handle(text, frame), listener.book.reset)}
    results = interleaved(runners, len(frames), passes, seconds, best=True)
    base = results["orjson.loads"]
    print(f"{'bookTicker: the whole handler':<34} {'frames/s':>10} {'us/frame':>9} {'÷ orjson':>9}")
    for name, value in results.items():
        print(f"{name:<34} {value:>10,.0f} {1e6 / value:>9.2f} {value / base:>9.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3, help="minimum length of one pass")
    parser.add_argument("--before", metavar="COMMIT", help="also run the exchanges package of this commit")
    parser.add_argument("--only", metavar="TEXT", help="only the frame sets whose label contains TEXT")
    parser.add_argument("--checks", action="store_true", help="only compare ways to check decimal strings")
    parser.add_argument("--floor", action="store_true",
                        help="only the least a Python handler costs: the whole bookTicker path as one function")
    parser.add_argument("--best", action="store_true",
                        help="each runner's fastest pass, not the median (a machine others use in bursts)")
    parser.add_argument("--cpu", action="store_true",
                        help="time by this thread's CPU time, not the wall clock (a machine others keep busy)")
    args = parser.parse_args(argv)
    if args.cpu:
        global CLOCK
        CLOCK = time.thread_time
    if args.checks:
        decimal_checks(args.passes, args.seconds)
        return 0
    if args.floor:
        handler_floor(args.passes, args.seconds)
        return 0
    before = load_before(args.before) if args.before else None
    import logging
    logging.disable(logging.CRITICAL)
    try:
        cf_version = importlib.metadata.version("cryptofeed")
    except importlib.metadata.PackageNotFoundError:
        cf_version = None
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"orjson {orjson.__version__}, cryptofeed {cf_version or 'not installed'}"
          + (f"; {'best' if args.best else 'median'} of {args.passes} passes of {args.seconds} s"
             + (" CPU time" if args.cpu else "")))
    print(f"{'frame set':<34} {'frames':>6} {'json':>10} {'orjson':>10} "
          + (f"{'before':>10} {'before/orjson':>13} " if before else "")
          + f"{'ours':>10} {'cryptofeed':>11} {'ours/orjson':>11} {'ours/cf':>8}")
    for label, exchange, frames in frame_sets():
        if args.only and args.only.lower() not in label.lower():
            continue
        count = len(frames)
        runners = {"json": loads(json.loads, frames), "orjson": loads(orjson.loads, frames),
                   "ours": ours(exchange, frames)}
        if before:
            runners["before"] = ours(exchange, frames, before)
        runner = cryptofeed_runner(exchange, frames) if cf_version and not label.endswith("derived") else None
        if runner:
            try:
                runner()  # cryptofeed's own book cannot take every subset (Coinbase's tick frames skip the level2
            except Exception as failure:  # updates that left the top as it was: it is told to delete a level it
                print(f"  (cryptofeed failed on {label}: {type(failure).__name__} {failure})")  # never had)
            else:
                runners["cryptofeed"] = runner
        results = interleaved(runners, count, args.passes, args.seconds, args.best)
        then = ""
        if before:
            old = results["before"]
            then = f"{old:>10,.0f} {old / results['orjson']:>13.2f} "
        cf = results.get("cryptofeed")
        cf_rate = f"{cf:,.0f}" if cf else "n/a"
        versus_cf = f"{results['ours'] / cf:.1f}" if cf else "n/a"
        print(f"{label:<34} {count:>6} {results['json']:>10,.0f} {results['orjson']:>10,.0f} {then}"
              f"{results['ours']:>10,.0f} "
              f"{cf_rate:>11} {results['ours'] / results['orjson']:>11.2f} {versus_cf:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
