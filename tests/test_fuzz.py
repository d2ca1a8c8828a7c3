"""Fuzz every exchange parser through `ExchangeListener._handle`, the way the websocket thread calls it.

For each exchange in the registry (a new exchange module is picked up by the parametrization) hypothesis feeds:
random bytes, random JSON values, mutated real recorded frames (tests/fixtures/upstream/*.ws.*) and binary frames.
Whatever comes in, no exception escapes `_handle`, the counters add up, and every tick published has the one tick
shape: the exact key set, decimal strings, an int (or None) time and a BASE-QUOTE symbol. Every market is marked as
subscribed, so whatever a parser returns is published and checked, not dropped by the subscription filter.

Examples per test and exchange: FUZZ_EXAMPLES (default 300). `bench/fuzz.py` runs the same tests with many more,
and reads the counters in `STATS`.
"""
from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

import pytest
import websocket  # websocket-client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exchanges import EXCHANGES  # noqa: E402
from exchanges.recording import read_frames  # noqa: E402
from exchanges.tick import _DECIMAL  # noqa: E402

TEXT, BINARY = websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = sorted(EXCHANGES)

TICK_KEYS = {"exchange", "symbol", "time", "received", "bid", "bid_size", "ask", "ask_size", "last", "last_size", "empty",
             "last_side"}
DECIMAL_FIELDS = ("bid", "bid_size", "ask", "ask_size", "last", "last_size")
SYMBOL = re.compile(r"[A-Z0-9]+-[A-Z0-9]+")  # used with fullmatch: ^...$ without a trailing newline
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
FRAMES_PER_SHAPE = 4  # recorded frames kept per frame shape as seeds for mutation
BAD_SNIPPET = 200

# Counters per exchange, for bench/fuzz.py: frames handled, bad frames counted, exceptions escaped, ticks.
STATS: dict[str, Counter] = defaultdict(Counter)


# --- recordings ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def recorded_frames() -> dict[str, tuple[str, ...]]:
    """exchange name -> every frame it sent in the upstream websocket recordings (REST files `*.0` skipped)."""
    by_exchange: dict[str, list[str]] = defaultdict(list)
    for path in sorted(UPSTREAM.iterdir()):
        if path.is_file() and ".ws." in path.name:
            for frame in read_frames(path):
                if frame.exchange is not None:
                    by_exchange[frame.exchange].append(frame.frame)
    return {name: tuple(frames) for name, frames in by_exchange.items()}


def frames_of(name: str) -> tuple[str, ...]:
    return recorded_frames().get(name, ())


@lru_cache(maxsize=None)
def recorded_url(name: str):
    """The URL the recording of `name` was made from: its listener speaks that API (Gemini's recording is v2)."""
    for path in sorted(UPSTREAM.iterdir()):
        if path.is_file() and ".ws." in path.name:
            for frame in read_frames(path):
                if frame.exchange == name:
                    return frame.url or None
    return None


@lru_cache(maxsize=None)
def symbols_of(name: str) -> tuple[str, ...]:
    """The markets the recording of `name` holds ticks for, as its parser names them."""
    listener = make_listener(name, subscribe=False)
    for frame in frames_of(name):
        listener._handle(TEXT, frame.encode())
    return tuple(sorted({tick["symbol"] for tick in listener.fuzz_ticks}))


def _skeleton(value):
    """The nested key structure of a JSON value (lists and scalars by type), to tell frame kinds apart."""
    if isinstance(value, dict):
        return tuple(sorted((key, _skeleton(item)) for key, item in value.items()))
    return type(value).__name__


@lru_cache(maxsize=None)
def seeds_of(name: str) -> tuple:
    """A few real frames of every distinct shape, shortest first, parsed: the frames mutation starts from.
    Each as (publishes ticks, message)."""
    listener = make_listener(name)
    shapes: dict[tuple, list[str]] = defaultdict(list)
    for frame in frames_of(name):
        try:
            message = json.loads(frame)
        except ValueError:
            continue
        listener.fuzz_ticks.clear()
        listener._handle(TEXT, frame.encode())
        shapes[(len(listener.fuzz_ticks), _skeleton(message))].append(frame)
    seeds = []
    for (ticks, _), frames in shapes.items():
        seeds.extend((ticks > 0, json.loads(frame)) for frame in sorted(frames, key=len)[:FRAMES_PER_SHAPE])
    return tuple(seeds)


@lru_cache(maxsize=None)
def seed_strategy(name: str):
    """A seed to mutate: half the time one that publishes ticks (the deepest parser path), else any."""
    seeds = seeds_of(name)
    ticking = [message for publishes, message in seeds if publishes]
    every = st.sampled_from([message for _, message in seeds])
    return st.sampled_from(ticking) | every if ticking else every


@lru_cache(maxsize=None)
def vocabulary_of(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Dict keys and short strings seen in the recording: random JSON built from them reaches deeper branches."""
    keys, strings = set(), set()

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                keys.add(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) <= 40:
            strings.add(value)

    for _, seed in seeds_of(name):
        walk(seed)
    return tuple(sorted(keys)), tuple(sorted(strings))


# --- the listener under test and the checks --------------------------------------------------------------------
class _EverySymbol(dict):
    """`_subscribed_at` that holds every symbol: whatever the parser returns is published, so it is checked."""

    def __contains__(self, symbol):
        return True


def make_listener(name: str, subscribe: bool = True):
    """A listener as after connecting and subscribing to the recording's markets; collects its ticks in
    `.fuzz_ticks` and the exceptions its parser raised in `.fuzz_raised`."""
    listener = EXCHANGES[name](recorded_url(name), [])
    listener.fuzz_ticks = []
    listener.fuzz_raised = []
    listener.on_tick = listener.fuzz_ticks.append
    parse = listener.parse

    def watched_parse(frame, received):
        try:
            return parse(frame, received)
        except Exception as failure:
            listener.fuzz_raised.append(failure)
            raise

    listener.parse = watched_parse
    listener.on_connected()
    if subscribe:
        listener.subscribe_messages(list(symbols_of(name)))  # arms request ids and symbol maps, as on a live feed
    listener._subscribed_at = _EverySymbol()
    return listener


def check_tick(name: str, tick: dict, data: bytes = b"") -> None:
    source = f"; from frame {data[:400]!r}"
    assert set(tick) == TICK_KEYS, f"{name}: tick keys {sorted(tick)}{source}"
    assert tick["exchange"] == name
    symbol = tick["symbol"]
    assert type(symbol) is str and SYMBOL.fullmatch(symbol), f"{name} published a tick for symbol {symbol!r}{source}"
    assert tick["time"] is None or type(tick["time"]) is int, f"{name}: time {tick['time']!r}{source}"
    assert type(tick["received"]) is int
    for field in DECIMAL_FIELDS:
        value = tick[field]
        assert value is None or (type(value) is str and _DECIMAL.fullmatch(value)), (
            f"{name}: {field} {value!r}{source}")
    assert tick["last_side"] in (None, "buy", "sell"), f"{name}: last_side {tick['last_side']!r}{source}"
    empty = tick["empty"]
    assert empty in (None, "bid", "ask", "both"), f"{name}: empty {empty!r}{source}"
    for side in ("bid", "ask"):
        if empty in (side, "both"):  # an empty side has no price and no size: never its last price
            assert tick[side] is None and tick[f"{side}_size"] is None, f"{name}: empty {side} has a price{source}"


def check_frame(listener, data: bytes, opcode: int = TEXT) -> bool:
    """Hand one frame to `_handle` and check everything it must guarantee. True when it published ticks."""
    stats = STATS[listener.name]
    frames, bad, published, raised = (listener.frames, listener.bad_frames, len(listener.fuzz_ticks),
                                      len(listener.fuzz_raised))
    try:
        carried = listener._handle(opcode, data)
    except Exception:
        stats["escaped"] += 1
        raise
    stats["frames"] += 1
    stats["bad"] += listener.bad_frames - bad
    assert listener.frames == frames + 1
    parse_raised = len(listener.fuzz_raised) > raised
    expect_bad = opcode == BINARY or parse_raised
    assert listener.bad_frames == bad + expect_bad, (
        f"bad_frames went {bad} -> {listener.bad_frames}; parse raised: {listener.fuzz_raised[raised:]!r}")
    if expect_bad:
        reason, snippet = listener.last_bad_reason, listener.last_bad_frame
        assert type(reason) is str and 0 < len(reason) <= BAD_SNIPPET, f"last_bad_reason {reason!r}"
        assert type(snippet) is str and len(snippet) <= BAD_SNIPPET, f"last_bad_frame {snippet!r}"
    new_ticks = listener.fuzz_ticks[published:]
    stats["ticks"] += len(new_ticks)
    assert carried is bool(new_ticks), f"_handle returned {carried!r} after publishing {len(new_ticks)} ticks"
    if expect_bad:
        assert not new_ticks
    for tick in new_ticks:
        check_tick(listener.name, tick, data)
    return carried


# --- strategies --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def json_values(keys=(), strings=()):
    """Any JSON value: None, bools, ints, floats, text, and lists and dicts of them (text keys)."""
    text = st.text(max_size=30)
    key = st.text(max_size=12)
    if strings:
        text = text | st.sampled_from(strings)
    if keys:
        key = key | st.sampled_from(keys)
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
    return st.recursive(scalars, lambda children: st.lists(children, max_size=5) |
                        st.dictionaries(key, children, max_size=6), max_leaves=25)


def dumps(value, ascii_only: bool = False) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)


def encode(text: str) -> bytes:
    """UTF-8; a lone surrogate becomes invalid UTF-8, which a feed can send (the reader skips UTF-8 validation)."""
    return text.encode("utf-8", "surrogatepass")


@st.composite
def json_frames(draw, name: str) -> bytes:
    return encode(dumps(draw(json_values(*vocabulary_of(name))), draw(st.booleans())))


def _paths(value, path=()):
    """Every path (tuple of keys/indices) into a JSON value, the root () first."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, path + (index,))


def _get(value, path):
    for step in path:
        value = value[step]
    return value


def _set(value, path, new):
    if not path:
        return new
    _get(value, path[:-1])[path[-1]] = new
    return value


def _drop_key(draw, message):
    paths = [path for path in _paths(message) if path and isinstance(_get(message, path[:-1]), dict)]
    if not paths:
        return _replace_value(draw, message)
    path = draw(st.sampled_from(paths))
    del _get(message, path[:-1])[path[-1]]
    return message


def _replace_value(draw, message):
    path = draw(st.sampled_from(list(_paths(message))))
    return _set(message, path, draw(json_values()))


def _string_to_text(draw, message):
    paths = [path for path in _paths(message) if isinstance(_get(message, path), str)]
    if not paths:
        return _replace_value(draw, message)
    path = draw(st.sampled_from(paths))
    return _set(message, path, draw(st.text(max_size=20)))


def _edit_string(draw, message):
    """A small edit of a real string: a character inserted, deleted or case-swapped, or text added at an end."""
    paths = [path for path in _paths(message) if isinstance(_get(message, path), str)]
    if not paths:
        return _replace_value(draw, message)
    path = draw(st.sampled_from(paths))
    value = _get(message, path)
    at = draw(st.integers(0, len(value)))
    how = draw(st.sampled_from(["insert", "delete", "swapcase", "prefix", "suffix"]))
    if how == "insert":
        value = value[:at] + draw(st.characters()) + value[at:]
    elif how == "delete":
        value = value[:at] + value[at + 1:]
    elif how == "swapcase":
        value = value.swapcase()
    elif how == "prefix":
        value = draw(st.text(min_size=1, max_size=5)) + value
    else:
        value = value + draw(st.text(min_size=1, max_size=5))
    return _set(message, path, value)


NEAR_NUMBERS = ["", "-1", "1e999", "NaN", "Infinity", "0x10", "1,5", "1 000", " 1", "1.", ".5", "+1", "1e-9999",
                "\u0661\u0662\u0663"]  # the last: Arabic-Indic digits


def _number_to_text(draw, message):
    paths = [path for path in _paths(message) if (isinstance(_get(message, path), str) and
             NUMBER.fullmatch(_get(message, path))) or type(_get(message, path)) in (int, float)]
    if not paths:
        return _replace_value(draw, message)
    path = draw(st.sampled_from(paths))
    return _set(message, path, draw(st.text(max_size=20) | st.sampled_from(NEAR_NUMBERS)))


def _nest_wrong(draw, message):
    path = draw(st.sampled_from(list(_paths(message))))
    value = _get(message, path)
    how = draw(st.sampled_from(["list", "dict", "unwrap", "values"]))
    if how == "list":
        wrong = [value]
    elif how == "dict":
        wrong = {draw(st.sampled_from(["data", "result", "", path[-1] if path else "x"])): value}
    elif how == "unwrap" and isinstance(value, (list, dict)) and value:
        wrong = next(iter(value.values())) if isinstance(value, dict) else value[0]
    elif isinstance(value, dict):
        wrong = list(value.values())
    else:
        wrong = [value]
    return _set(message, path, wrong)


MUTATIONS = {"drop_key": _drop_key, "replace_value": _replace_value, "number_to_text": _number_to_text,
             "string_to_text": _string_to_text, "edit_string": _edit_string,
             "nest_wrong": _nest_wrong}


@st.composite
def mutated_frames(draw, name: str) -> bytes:
    """A real recorded frame, parsed and mutated 1-3 times, serialized; perhaps truncated at a random place."""
    message = json.loads(json.dumps(draw(seed_strategy(name))))  # a private deep copy
    for mutation in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3)):
        message = MUTATIONS[mutation](draw, message)
    text = dumps(message, draw(st.booleans()))
    if draw(st.integers(0, 3)) == 0:
        text = text[:draw(st.integers(0, max(0, len(text) - 1)))]
    return encode(text)


# --- the tests ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_real_frames_are_all_good(name):
    frames = frames_of(name)
    assert frames, f"no websocket recording in {UPSTREAM} has frames of {name!r}"
    listener = make_listener(name)
    for frame in frames:
        check_frame(listener, frame.encode())
    assert listener.bad_frames == 0, (f"{listener.bad_frames} of {len(frames)} real frames bad; last: "
                                      f"{listener.last_bad_reason} in {listener.last_bad_frame!r}")
    assert listener.fuzz_ticks, f"the {name} recording published no tick"


def junk_for(value: str) -> list[str]:
    """Near misses of a real string: what a broken or hostile feed could put where it stood."""
    return ["", "0", "a b", " " + value, value + " ", value + "\n", ":" + value, "\u00e9" + value, "<b>" + value,
            value.lower(), value.swapcase()]


STRINGS_PER_SEED = 60


@pytest.mark.parametrize("name", NAMES)
def test_junk_in_each_string_of_real_frames(name):
    """Deterministic: every string of every tick-publishing seed frame replaced by each near miss, one at a time."""
    seeds = [message for publishes, message in seeds_of(name) if publishes]
    assert seeds, f"no recorded frame of {name} publishes a tick"
    for seed in seeds:
        # A book snapshot has thousands of strings of one shape: its first ones stand for the rest (the suite's time)
        for path in [path for path in _paths(seed) if isinstance(_get(seed, path), str)][:STRINGS_PER_SEED]:
            for junk in junk_for(_get(seed, path)):
                frame = encode(dumps(_set(json.loads(json.dumps(seed)), path, junk)))
                check_frame(make_listener(name), frame)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(frames=st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_fuzz_random_bytes(name, frames):
    listener = make_listener(name)
    for data in frames:
        check_frame(listener, data)


def check_drawn(name, data, frames):
    """A few frames drawn from `frames`, through one listener, each checked."""
    listener = make_listener(name)
    for frame in data.draw(st.lists(frames, min_size=1, max_size=3), label="frames"):
        check_frame(listener, frame)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_fuzz_random_json(name, data):
    check_drawn(name, data, json_frames(name))


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_fuzz_mutated_real_frames(name, data):
    if not seeds_of(name):
        pytest.skip(f"no recorded frames of {name} to mutate (test_real_frames_are_all_good fails for it)")
    check_drawn(name, data, mutated_frames(name))


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_fuzz_binary_frames_are_bad(name, data):
    real = [frame.encode() for frame in frames_of(name)[:50]]
    listener = make_listener(name)
    frames = data.draw(st.lists(st.binary(max_size=300) | (st.sampled_from(real) if real else st.nothing()),
                                min_size=1, max_size=4), label="frames")
    for frame in frames:
        check_frame(listener, frame, BINARY)
    assert listener.bad_frames == len(frames) and listener.last_bad_reason == "binary frame"
