"""Recordings: reading the project's format and the upstream capture format, and writing the project's format.

Project format, JSON lines, one per frame received:
    {"exchange": "coinbase", "url": "...", "received": 1618677817.061845, "frame": "<raw text, unchanged>"}
Upstream capture format (../shared/feeds, see its SOURCES.md):
    URL <-> OPEN_TS          the socket that was opened
    URL <- TS: TEXT          a frame the client sent (skipped)
    URL -> TS: BODY          a REST response body (read by `read_rest`)
    TS: TEXT                 a frame the exchange sent
Anything else is taken as one raw frame per line (no receipt time).

A bad line never stops a reading: a project record that does not decode (cut off by a crash while it was written)
is handed on as a raw frame, and bytes that are not UTF-8 as lone surrogates (surrogateescape); either is a bad frame
for its exchange's parser, counted and skipped there, and never sent by the local exchange (`sendable`).
"""
from __future__ import annotations

import logging
import os
import re
import threading
from datetime import datetime, timezone
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Union

import orjson

log = logging.getLogger(__name__)

_OPEN = re.compile(r"^(\S+) <-> ([0-9.]+)$")
_SENT = re.compile(r"^\S+ <- [0-9.]+: ")
_REST = re.compile(r"^(\S+) -> ([0-9.]+): (.*)$", re.S)
_RECEIVED = re.compile(r"^([0-9]+\.[0-9]+|[0-9]+): (.*)$", re.S)


class Frame(NamedTuple):
    exchange: Optional[str]  # registry name, when the recording says or its URL tells
    url: str
    received: Optional[float]  # epoch seconds; None for raw frames
    frame: str


# A Frame from its four fields in order, built in C (NamedTuple's own __new__ is a Python function: one a line of a
# recording, the normalize benchmark's profile): _frame((exchange, url, received, text)).
_frame = partial(tuple.__new__, Frame)


def exchange_for_url(url: str) -> Optional[str]:
    """The registry name of the exchange a URL belongs to, by its host."""
    from . import EXCHANGES  # late: the registry imports the exchange modules
    host = re.sub(r"^[a-z]+://", "", url).split("/", 1)[0].split(":", 1)[0]
    for name, listener in EXCHANGES.items():
        if any(host == suffix or host.endswith("." + suffix) for suffix in listener.url_hosts):
            return name
    return None


def read_frames(path, exchange: Optional[str] = None) -> Iterator[Frame]:
    """Every frame the exchange sent, in recorded order, from a file in any of the three formats."""
    with open(path, encoding="utf-8", errors="surrogateescape") as lines:
        yield from _frames(lines, exchange)


def read_raw(path, exchange: str, block_bytes: int = 1 << 20) -> Iterator[Union[list, Frame]]:
    """The frames of a recording as `normalize` reads them fastest: a file of raw frames (one per line, no receipt
    time; `exchange` sent them) in lists of their lines' bytes, a block of the file at a time: read, split and
    checked by whole-block C calls, with no decode and no Frame a line (a parser takes the socket's bytes anyway).
    From the first block holding a line of another kind on (or anything a capture line or a project record has,
    or a carriage return, which text mode reads as a line end), the Frames read_frames gives for the same lines:
    any file reads as read_frames reads it (a line that is not UTF-8 is handed on as bytes, a bad frame for its
    parser, as read_frames hands it on with surrogates)."""
    start = 0  # where the block being read begins in the file
    with open(path, "rb") as source:
        tail = b""
        while True:
            chunk = source.read(block_bytes)
            block = tail + chunk
            if not chunk:  # the end: the last line may have no line end
                cut, tail = len(block), b""
            else:
                cut = block.rfind(b"\n") + 1
                if cut == 0:  # a line longer than a block: read on
                    tail = block
                    continue
                block, tail = block[:cut], block[cut:]
            if not block:
                return
            if b" <-" in block or b" -> " in block or b"\r" in block or b'{"exchange"' in block:
                break
            lines = list(filter(None, block.split(b"\n")))  # blank lines are no frames
            if not all(map(bytes.startswith, lines, repeat(_RAW_START))):
                break
            yield lines
            start += cut
            if not chunk:
                return
    # nothing before this block changed read_frames' state (only a "URL <-> TS" line does): on from it, as text
    with open(path, encoding="utf-8", errors="surrogateescape") as rest:
        rest.seek(start)
        yield from _frames(rest, exchange)


_RAW_START = (b"{", b"[")  # a raw frame's first byte (read_frames' test)


def _frames(lines, exchange: Optional[str]) -> Iterator[Frame]:
    url = ""
    current = exchange
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            continue
        if line[0] in "{[" and not line.startswith('{"exchange"') and " <-" not in line and " -> " not in line:
            yield _frame((current, url, None, line))  # a raw frame: no capture pattern can match it
            continue
        if line.startswith('{"exchange"'):
            record = _record(line)
            if record is None:  # cut off, or not ours: a bad frame of the exchange of the records before it
                yield _frame((current, url, None, line))
                continue
            current, url = exchange or record["exchange"], record.get("url", "")
            yield Frame(current, url, record.get("received"), record["frame"])
            continue
        received = _RECEIVED.match(line)
        if received:
            yield _frame((current, url, float(received.group(1)), received.group(2)))
            continue
        opened = _OPEN.match(line)
        if opened:
            url = opened.group(1)
            current = exchange or exchange_for_url(url)
            continue
        if _SENT.match(line) or _REST.match(line):
            continue
        yield Frame(current, url, None, line)  # one raw frame per line


def _record(line: str) -> Optional[dict]:
    """A project record ({"exchange", "url", "received", "frame"}), or None when the line is not a whole one."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if (type(record) is not dict or type(record.get("exchange")) is not str or type(record.get("frame")) is not str
            or type(record.get("url", "")) is not str or type(record.get("received")) not in (int, float, type(None))):
        return None
    return record


def sendable(text: str) -> bool:
    """Whether a frame can go out as a websocket text frame: not when its line was not UTF-8 (lone surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def read_rest(path) -> Optional[tuple[str, float, str]]:
    """A recorded REST response (upstream `NAME.0` file): (url, received, body), or None if it is not one."""
    with open(path, encoding="utf-8", errors="surrogateescape") as lines:
        first = lines.readline().rstrip("\r\n")
    match = _REST.match(first)
    if not match:
        return None
    return match.group(1), float(match.group(2)), match.group(3)


def recording_files(paths) -> list[Path]:
    """Files named directly, and every file in named directories (sorted), skipping licences and notes. Raises
    FileNotFoundError "no such file or folder: A, B" naming every path that is not there (one line for a CLI)."""
    missing = [str(path) for path in paths if not os.path.exists(path)]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and not _is_note(p)))
        else:
            files.append(path)
    return files


def _is_note(path: Path) -> bool:
    return path.name.upper().startswith(("LICENSE", "README", "SOURCES")) or path.suffix.lower() in (".md", ".txt")


class Recorder:
    """Writes every frame received in the project's format, one file per exchange and UTC day."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[tuple[str, str], object] = {}
        self._lock = threading.Lock()

    def __call__(self, exchange: str, url: str, received: float, frame: str) -> None:
        day = datetime.fromtimestamp(received, timezone.utc).strftime("%Y-%m-%d")
        line = orjson.dumps({"exchange": exchange, "url": url, "received": received, "frame": frame})
        with self._lock:
            out = self._files.get((exchange, day))
            if out is None:
                self._close_days_before(exchange, day)
                out = self._files[(exchange, day)] = open(self.directory / f"{exchange}-{day}.jsonl", "ab")
            out.write(line + b"\n")

    def flush(self) -> None:
        with self._lock:
            for out in self._files.values():
                out.flush()
                os.fsync(out.fileno())

    def close(self) -> None:
        self.flush()
        with self._lock:
            for out in self._files.values():
                out.close()
            self._files.clear()

    def _close_days_before(self, exchange: str, day: str) -> None:
        for key in [key for key in self._files if key[0] == exchange and key[1] != day]:
            self._files.pop(key).close()
