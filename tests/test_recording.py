"""Reading the three recording formats, writing the project format, and `python -m exchanges normalize`."""
import subprocess
import sys

import orjson

from conftest import ROOT, UPSTREAM, recorded
from exchanges.__main__ import normalize
from exchanges.recording import Frame, Recorder, read_frames, read_raw, read_rest, recording_files


def test_upstream_capture_frames_carry_exchange_url_and_receipt_time():
    frames = list(read_frames(UPSTREAM / "COINBASE.ws.28.0"))
    assert len(frames) == 9946  # client-sent lines and the open line are not frames
    first = frames[0]
    assert first.exchange == "coinbase" and first.url == "wss://ws-feed.pro.coinbase.com"
    assert first.received == 1618677817.061845 and first.frame.startswith('{"type":"subscriptions"')
    assert {f.exchange for f in read_frames(UPSTREAM / "BINANCE_US.ws.1.0")} == {"binanceus"}


def test_recorder_writes_project_format_per_exchange_and_day_and_reads_back(tmp_path):
    recorder = Recorder(tmp_path)
    frame = recorded("BINANCE.ws.1.0", "@bookTicker")
    recorder("binance", "wss://x/stream", 1633998513.377, frame)
    recorder("binance", "wss://x/stream", 1634084913.5, frame)  # the next UTC day
    recorder("coinbase", "wss://y/", 1633998513.4, "raw \u00e9 text")
    recorder.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "binance-2021-10-12.jsonl", "binance-2021-10-13.jsonl", "coinbase-2021-10-12.jsonl"]
    [line] = (tmp_path / "binance-2021-10-12.jsonl").read_text().splitlines()
    assert orjson.loads(line) == {"exchange": "binance", "url": "wss://x/stream", "received": 1633998513.377,
                                  "frame": frame}
    [back] = read_frames(tmp_path / "coinbase-2021-10-12.jsonl")
    assert back.frame == "raw \u00e9 text" and back.exchange == "coinbase"


def test_raw_frames_one_per_line_need_the_exchange(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text(recorded("BINANCE.ws.1.0", "@bookTicker") + "\n")
    [tick] = normalize(raw, "binance")
    assert tick["received"] is None and tick["symbol"] == "NKN-USDT" and tick["time"] is None


def test_read_raw_reads_every_file_as_read_frames_does(tmp_path):
    """normalize's fast reader (a raw frame's line as bytes) gives read_frames' frames for raw files, and from the
    first line of another kind on its very Frames: a capture section after raw lines, a line with a lone carriage
    return (text mode's line end), CRLF line ends, blank lines, a project-format record."""
    quote, trade = recorded("BINANCE.ws.1.0", "@bookTicker"), recorded("BINANCE.ws.1.0", "@aggTrade")
    record = orjson.dumps({"exchange": "binance", "url": "wss://x", "received": 1.5, "frame": trade}).decode()
    contents = [
        f"{quote}\n\n{trade}\r\n{quote}",  # raw only, CRLF and a blank line, no final line end
        f"{quote}\nwss://stream.binance.com <-> 1633998513.0\n1633998513.5: {trade}\n{quote}\n",  # then a capture
        f"{quote}\n{trade}\r{quote}\n{trade}\n",  # a lone carriage return splits a line in text mode
        f"{record}\n{quote}\n",  # a project-format file
        "",
    ]
    contents.append("".join(f"{quote}\n{trade}\n\n" for _ in range(50)) + f"{quote} <- is text in a frame\n")
    for index, content in enumerate(contents):
        path = tmp_path / f"{index}.txt"
        path.write_bytes(content.encode())
        for block_bytes in (64, 1000, 1 << 20):  # blocks cutting lines anywhere, and one block for the file
            fast = [frame for entry in read_raw(path, "binance", block_bytes)
                    for frame in ([Frame("binance", "", None, line.decode()) for line in entry]
                                  if type(entry) is list else [entry])]
            assert fast == list(read_frames(path, "binance")), (content, block_bytes)


def test_rest_capture_is_read_as_rest():
    url, received, body = read_rest(UPSTREAM / "COINBASE.0")
    assert url == "https://api.pro.coinbase.com/products" and body.startswith("[")
    assert read_rest(UPSTREAM / "COINBASE.ws.28.0") is None


def test_normalize_cli_prints_one_tick_per_line():
    result = subprocess.run([sys.executable, "-m", "exchanges", "normalize", str(UPSTREAM / "BINANCE_US.ws.1.0")],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    ticks = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(ticks) == 139 and "480 frames, 139 ticks, 0 bad frames" in result.stderr
    assert ticks[0] == {"exchange": "binanceus", "symbol": "OMG-BUSD", "time": None, "received": 1633998276480,
                        "bid": "13.76640000", "bid_size": "30.28000000", "ask": "13.79520000",
                        "ask_size": "31.57000000", "last": None, "last_size": None, "last_side": None,
                        "empty": None}


def test_normalize_cli_reads_a_folder_and_refuses_a_missing_file_in_one_line(tmp_path):
    """A folder is what --record writes: every recording in it is read; a path that is not there is one line of
    error and exit status 2, never a traceback."""
    (tmp_path / "BINANCE_US.ws.1.0").write_bytes((UPSTREAM / "BINANCE_US.ws.1.0").read_bytes())
    (tmp_path / "README.md").write_text("notes are skipped")
    folder = subprocess.run([sys.executable, "-m", "exchanges", "normalize", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    assert len(folder.stdout.splitlines()) == 139 and "480 frames, 139 ticks" in folder.stderr
    missing = subprocess.run([sys.executable, "-m", "exchanges", "normalize", str(tmp_path / "nope")],
                             cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.splitlines()[-1] == f"python -m exchanges: error: no such file or folder: {tmp_path / 'nope'}"


def test_a_recording_cut_off_by_a_crash_or_holding_bytes_that_are_not_text_is_read_to_its_end(tmp_path):
    """The recorder writes through a buffer: a crash can leave a record cut off, and a file may hold bytes that are
    not UTF-8. Such a line is a bad frame, counted and skipped by normalize, not played by the local exchange (no text
    frame can carry it); the lines after it are read as ever. Both were a traceback."""
    from exchanges.simulator import LocalExchange
    quote, trade = recorded("BINANCE.ws.1.0", "@bookTicker"), recorded("BINANCE.ws.1.0", "@aggTrade")
    recorder = Recorder(tmp_path)
    recorder("binance", "wss://stream.binance.com:9443/stream", 1633998513.377, quote)
    recorder("binance", "wss://stream.binance.com:9443/stream", 1633998513.5, trade)
    recorder.close()
    [path] = tmp_path.iterdir()
    first, second = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(first + first[:len(first) // 2] + b"\n" + b'{"e":"\xff\xfe"}\n' + second)
    frames = list(read_frames(path))
    assert [f.frame for f in frames][::3] == [quote, trade] and {f.exchange for f in frames} == {"binance"}
    stats = {}
    ticks = list(normalize(path, stats=stats))
    assert stats == {"frames": 4, "ticks": 2, "bad_frames": 2}
    assert [tick["last"] for tick in ticks] == [None, orjson.loads(trade)["data"]["p"]]
    # a recorded REST listing cut off too (a capture's "URL -> TS: BODY"): skipped with a warning, the rest plays
    listing = tmp_path / "COINBASE.0"
    listing.write_text((UPSTREAM / "COINBASE.0").read_text()[:300] + "\n")
    replay = LocalExchange([path, listing], speed=0).replays["binance"]
    assert [text for _, _, text in replay.timeline] == [quote, first[:len(first) // 2].decode(), trade]
    cli = subprocess.run([sys.executable, "-m", "exchanges", "normalize", str(path)], cwd=ROOT, capture_output=True,
                         text=True)
    assert cli.returncode == 0 and "4 frames, 2 ticks, 2 bad frames" in cli.stderr
    # and a path that is not there is named in one line, by every reader of recordings
    try:
        recording_files([path, tmp_path / "gone"])
    except FileNotFoundError as missing:
        assert str(missing) == f"no such file or folder: {tmp_path / 'gone'}"
    else:
        raise AssertionError("a missing recording was not refused")
    simulator = subprocess.run([sys.executable, "-m", "exchanges.simulator", str(tmp_path / "gone")], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
    assert simulator.returncode == 2 and simulator.stderr.splitlines() == [
        f"python -m exchanges.simulator: error: no such file or folder: {tmp_path / 'gone'}"]
