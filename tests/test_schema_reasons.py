"""Every bad-frame reason stays what it was when the hand-written checks became msgspec schemas (issue 17).

Real frames (recorded and documented) of the channels converted (Kraken `spread` / `ticker` / `trade`, Gemini's new
API `bookTicker` / `trade`, v2 `trade` and a snapshot's `trades`, Bitstamp `order_book` / `live_trades`) are mutated
field by field (a value replaced by null, a number, a wrong string, a list, an object; a key or an element dropped;
one added), and each parsed by a fresh listener. The outcome (the reason name the listener counts, or the items of a frame still
good) must equal the one pinned in fixtures/schema_reasons.json, which was written by the hand-written checks of
commit e5107c1 (and changed where commit 118c41c says why: an order_book level past the first that is no pair of
strings is a bad frame now; a Kraken trade with an element missing is "bad side", not "bad time"):

    .venv/bin/python tests/test_schema_reasons.py --write     # only to pin a deliberate change, said in the commit
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import FIXTURES, UPSTREAM, documented, recorded  # noqa: E402
from exchanges.base import bad_reason  # noqa: E402
from exchanges.bitstamp import Bitstamp  # noqa: E402
from exchanges.gemini import V2_URL, Gemini  # noqa: E402
from exchanges.kraken import Kraken  # noqa: E402
from exchanges.recording import read_frames  # noqa: E402

PINNED = FIXTURES / "schema_reasons.json"
REPLACEMENTS = (None, 1.5, 7, -1, True, "x", "", "1e5", "-1", "\u0661", [], {}, ["1", "2"])


def sources():
    """(venue, frame) pairs to mutate: venue names a listener factory below."""
    yield "kraken", documented("kraken_spread_xbt")
    yield "kraken", documented("kraken_ticker_xbt")
    yield "kraken", documented("kraken_trade_xbt")
    yield "kraken", recorded("KRAKEN.ws.49.0", '"ticker"')
    yield "kraken", recorded("KRAKEN.ws.48.0", '"trade"')
    yield "gemini", documented("gemini_ws_book_ticker")
    yield "gemini", documented("gemini_ws_trade")
    yield "gemini_v2", documented("gemini_trade")
    yield "gemini_v2", documented("gemini_l2_initial")  # a snapshot's trades
    yield "gemini_v2", next(f.frame for f in read_frames(UPSTREAM / "GEMINI.ws.1.0")
                            if f.frame.startswith('{"type":"trade"'))  # a trade frame, not a snapshot's trades
    yield "bitstamp", documented("bitstamp_order_book")
    yield "bitstamp", recorded("BITSTAMP.ws.1.0", '"event":"trade"')


def listener(venue):
    if venue == "kraken":
        made = Kraken()
        made.subscribe_messages(["BTC-USD", "ETH-USD", "XMR-USD", "ADA-USD"])
        return made
    if venue == "gemini":
        return Gemini()
    if venue == "gemini_v2":
        return Gemini(V2_URL)
    return Bitstamp()


def _paths(value, path=()):
    yield path
    if type(value) is dict:
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif type(value) is list:
        for index, item in enumerate(value):
            yield from _paths(item, path + (index,))


def _copy_set(value, path, change):
    """A copy of `value` with `change(container, key)` applied at `path`."""
    copy = json.loads(json.dumps(value))
    container = copy
    for key in path[:-1]:
        container = container[key]
    change(container, path[-1])
    return copy


def mutations(frame: str):
    """The frame's mutations as compact JSON text (the exchanges' own spacing), each once."""
    message = json.loads(frame)
    seen = {frame}
    yield frame
    for text in ("", "{", "[]", "{}", "null", frame[:-1], frame + "]"):
        if text not in seen:
            seen.add(text)
            yield text
    for path in _paths(message):
        if not path:
            continue
        changes = [lambda c, k, v=v: c.__setitem__(k, v) for v in REPLACEMENTS]
        changes.append(lambda c, k: c.__delitem__(k) if type(c) is dict else c.pop(k))
        changes.append(lambda c, k: c.__setitem__("extra", 1) if type(c) is dict else c.append("1"))
        for change in changes:
            text = json.dumps(_copy_set(message, path, change), separators=(",", ":"), ensure_ascii=False)
            if text not in seen:
                seen.add(text)
                yield text


def outcome(venue: str, frame: str) -> str:
    try:
        items = listener(venue).parse(frame.encode(), 0)
    except Exception as failure:  # what the listener would count the frame as
        return f"bad: {bad_reason(failure)}"
    return f"ok: {[_fields(item) for item in items]!r}"


def _fields(item) -> tuple:
    """An item's fields in order: an Update is a msgspec Struct, the protocol events NamedTuples."""
    return msgspec.structs.astuple(item) if isinstance(item, msgspec.Struct) else tuple(item)


def cases():
    return [(venue, text) for venue, frame in sources() for text in mutations(frame)]


def test_every_mutated_frame_gives_the_pinned_reason_or_items():
    pinned = json.loads(PINNED.read_text())
    differences = []
    for venue, text in cases():
        expected = pinned.get(f"{venue} {text}")
        if expected is None:
            differences.append(f"not pinned: {venue} {text}")
            continue
        got = outcome(venue, text)
        if got != expected:
            differences.append(f"{venue} {text}\n  pinned {expected}\n  now    {got}")
    assert not differences, f"{len(differences)} of {len(pinned)}:\n" + "\n".join(differences[:30])


@pytest.mark.parametrize("venue", ["kraken", "gemini", "gemini_v2", "bitstamp"])
def test_mutations_include_bad_frames_of_many_kinds(venue):
    reasons = {outcome(v, text) for v, text in cases() if v == venue}
    assert len({reason for reason in reasons if reason.startswith("bad: ")}) >= 3


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    PINNED.write_text(json.dumps({f"{venue} {text}": outcome(venue, text) for venue, text in cases()}, indent=0,
                                 ensure_ascii=False) + "\n")
    print(f"wrote {PINNED}")
