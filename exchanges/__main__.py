"""Command-line tools for recordings.

    python -m exchanges normalize [--exchange NAME] FILE|FOLDER [...]

prints the ticks a recording yields, one JSON object per line, exactly as the listener would publish them (with
the recorded receipt time; null for raw frames). FILE is in the project's format, the upstream capture format, or
one raw frame per line (then --exchange is needed). Bad frames are counted on standard error, never fatal.
"""
from __future__ import annotations

import sys

import orjson

from . import EXCHANGES
from .cli import Parser
from .recording import Frame, read_frames, read_raw, recording_files
from .tick import TickBook, Update
from .venue import played


WRITE_EVERY = 1000  # ticks per write


def _texts(path, exchange, derived):
    """In play order: blocks of raw frames' bytes where `exchange` is named and nothing is derived (read_raw: no
    decode, no Frame a line), else (frame, text): the recorded frames, with what each venue derives beside them if
    `derived`."""
    if not derived:
        if exchange is not None:
            return read_raw(path, exchange)
        return ((frame, frame.frame) for frame in read_frames(path, exchange))
    by_exchange = {}
    for frame in read_frames(path, exchange):  # a recording is one exchange's; several are played apart anyway
        by_exchange.setdefault(frame.exchange, []).append(frame)
    return [(frame, text) for name, recorded in by_exchange.items()
            for frame, _, text in (played(EXCHANGES[name].venue(), recorded) if name in EXCHANGES
                                   else [(frame, None, frame.frame) for frame in recorded])]


def normalize(path, exchange=None, stats=None, derived=False):
    """Yield the ticks of one recording; bad frames are skipped and counted in `stats`. `derived`: also the frames
    the local exchange derives beside each recorded one (Venue.derived), as its replay plays them."""
    parsers, books = {}, {}
    stats = stats if stats is not None else {}
    stats.update(frames=0, ticks=0, bad_frames=0)
    frames = ticks = bad = 0  # counted here, written to `stats` when the recording is done (or left)
    name = parse = apply = None
    try:
        for entry in _texts(path, exchange, derived):
            if type(entry) is list:  # a block of raw frames of `exchange`, with no receipt time: the hot path
                texts, received = entry, None
                if name != exchange:
                    name, (parse, apply) = exchange, _reader(exchange, None, derived, parsers, books)
            else:
                frame, text = (entry, entry.frame) if type(entry) is Frame else entry  # read_raw's, or _texts' pairs
                if frame.exchange != name:
                    name = frame.exchange
                    if name not in EXCHANGES:
                        raise SystemExit(f"{path}: cannot tell the exchange of its frames; pass --exchange "
                                         f"({', '.join(EXCHANGES)})")
                    parse, apply = _reader(name, frame.url, derived, parsers, books)
                texts, received = (text,), None if frame.received is None else int(frame.received * 1000)
            for text in texts:
                frames += 1
                try:
                    items = parse(text, received)
                except Exception:  # counted and skipped, as the listener does
                    bad += 1
                    continue
                for item in items:
                    if type(item) is Update:
                        tick = apply(item, received)
                        if tick is not None:  # None: older than the state (by the venue's sequence)
                            ticks += 1
                            yield tick
    finally:
        stats.update(frames=frames, ticks=ticks, bad_frames=bad)


def _reader(name, url, derived, parsers, books):
    """(parse, apply) of exchange `name`'s parser and tick book for this recording, made on its first frame:
    recorded frames are read in the API they were recorded from (its URL: Gemini's is v2); with the derived frames,
    as the local exchange's client reads them (the default API)."""
    if name not in parsers:
        parsers[name] = EXCHANGES[name](None if derived else url or None)
        books[name] = TickBook(name)
    return parsers[name].parse, books[name].apply


def main(argv=None) -> int:
    parser = Parser(prog="python -m exchanges")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("normalize", help="print the ticks a recording yields, one JSON per line")
    command.add_argument("--exchange", choices=sorted(EXCHANGES), help="the exchange, when the file does not tell")
    command.add_argument("files", nargs="+", help="recordings, or folders of them (what --record writes)")
    args = parser.parse_args(argv)
    try:
        files = recording_files(args.files)
    except FileNotFoundError as missing:
        parser.exit(2, f"{parser.prog}: error: {missing}\n")  # one line
    out = sys.stdout.buffer
    dumps = orjson.dumps
    try:
        for path in files:
            stats, lines = {}, []
            for tick in normalize(path, args.exchange, stats):
                lines.append(dumps(tick, option=orjson.OPT_APPEND_NEWLINE))
                if len(lines) >= WRITE_EVERY:  # one write per batch of lines, not one per tick
                    out.write(b"".join(lines))
                    lines.clear()
            out.write(b"".join(lines))
            print(f"{path}: {stats['frames']} frames, {stats['ticks']} ticks, {stats['bad_frames']} bad frames",
                  file=sys.stderr)
        out.flush()
    except BrokenPipeError:  # the reader (head, less) has had enough
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
