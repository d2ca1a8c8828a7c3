"""The whole process: `python -m exchanges normalize` over files of raw tick frames, against a process that only
`orjson.loads` each line of the same file. Start-up is removed by timing each process on an empty file too.

    python bench/normalize.py [--lines 200000] [--runs 3] [--before COMMIT] [--cpu]

Files (one raw frame per line, written to a temporary folder): Coinbase `ticker` + `match` frames and Binance
`bookTicker` + `aggTrade` frames from the recordings, repeated in order to `--lines`. `--before COMMIT` also runs
the exchanges package of that commit (bench/parse.py's load_before) as its own process. Best of `--runs` (the
processes taking turns), lines per second of the run minus the empty file's.
"""
from __future__ import annotations

import argparse
import atexit
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from exchanges.recording import read_frames  # noqa: E402

RECORDINGS = ROOT / "tests" / "fixtures" / "upstream"
SETS = {  # label: (exchange, recording, what a kept frame contains)
    "Coinbase ticker + match": ("coinbase", "COINBASE.ws.28.0", ('"type":"ticker"', '"type":"match"')),
    "Binance bookTicker + aggTrade": ("binance", "BINANCE.ws.1.0", ("@bookTicker", "@aggTrade")),
}
LOADS_ONLY = "import sys, orjson\nfor line in open(sys.argv[1], 'rb'):\n    orjson.loads(line)\n"


def write_set(folder: Path, label: str, lines: int) -> tuple[str, Path]:
    exchange, recording, kinds = SETS[label]
    frames = [f.frame for f in read_frames(RECORDINGS / recording) if any(kind in f.frame for kind in kinds)]
    path = folder / f"{exchange}.raw"
    with open(path, "w", encoding="utf-8") as out:
        for index in range(lines):
            out.write(frames[index % len(frames)] + "\n")
    return exchange, path


def seconds(command: list[str], env: dict, cpu: bool = False) -> float:
    """The command's wall time; `cpu`: its CPU time (user + system, from the kernel's count for children), which
    the moments other processes had the core do not inflate."""
    if cpu:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    if not cpu:
        return time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", metavar="COMMIT")
    parser.add_argument("--cpu", action="store_true", help="time each process by its CPU time, not the wall clock")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="normalize-bench-"))
    atexit.register(shutil.rmtree, folder, True)  # the files written (tens of MB), whatever happens
    empty = folder / "empty.raw"
    empty.write_text("")
    env = dict(os.environ)
    commands = {"orjson.loads only": lambda exchange, path: [sys.executable, "-c", LOADS_ONLY, str(path)],
                "ours": lambda exchange, path: [sys.executable, "-m", "exchanges", "normalize", "--exchange",
                                                exchange, str(path)]}
    if args.before:
        from parse import load_before
        load_before(args.before)
        before_path = next(p for p in sys.path if Path(p, "exchanges_before").is_dir())
        env["PYTHONPATH"] = before_path
        commands["before"] = lambda exchange, path: [sys.executable, "-m", "exchanges_before", "normalize",
                                                     "--exchange", exchange, str(path)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.lines:,} lines a file, best of {args.runs}, start-up (an empty file) removed"
          + ("; CPU time" if args.cpu else ""))
    print(f"{'file':<32} {'process':<18} {'lines/s':>12} {'÷ orjson only':>14}")
    for label in SETS:
        exchange, path = write_set(folder, label, args.lines)
        best = dict.fromkeys(commands, float("inf"))
        for _ in range(args.runs):  # the processes take turns, so a slow spell of a shared machine hits them alike
            for name, command in commands.items():
                took = (seconds(command(exchange, path), env, args.cpu)
                        - seconds(command(exchange, empty), env, args.cpu))
                best[name] = min(best[name], took)
        rates = {name: args.lines / took for name, took in best.items()}
        for name, value in rates.items():
            print(f"{label:<32} {name:<18} {value:>12,.0f} {value / rates['orjson.loads only']:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
