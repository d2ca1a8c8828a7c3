"""Fuzz every exchange parser at length: the hypothesis tests of tests/test_fuzz.py with many more examples.

    python bench/fuzz.py [--examples 100000] [--exchanges coinbase,binance]

Sets FUZZ_EXAMPLES before importing tests/test_fuzz.py, so every `test_fuzz_*` test (random bytes, random JSON,
mutated real frames, binary frames) runs with that many examples for each exchange. Prints, per exchange, the frames
fuzzed, the bad frames the listener counted, the exceptions that escaped `_handle` (must be 0) and the seconds, with
the machine it ran on. A failing test stops at its first (shrunk) failure and prints hypothesis's falsifying
example; the exit status is then 1. Failing examples are saved in .hypothesis/ (git-ignored) and replayed first.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10_000, help="examples per test and exchange")
    parser.add_argument("--exchanges", default="", help="comma-separated registry names (default: all)")
    args = parser.parse_args()

    os.environ["FUZZ_EXAMPLES"] = str(args.examples)  # read by test_fuzz at import
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    logging.disable(logging.CRITICAL)  # bad frames are logged by the listener: expected here, by the thousand
    import test_fuzz

    names = [name for name in args.exchanges.split(",") if name] or test_fuzz.NAMES
    unknown = sorted(set(names) - set(test_fuzz.NAMES))
    if unknown:
        parser.error(f"unknown exchange(s) {', '.join(unknown)}; known: {', '.join(test_fuzz.NAMES)}")
    tests = [getattr(test_fuzz, attr) for attr in sorted(dir(test_fuzz))
             if attr.startswith("test_fuzz_") and hasattr(getattr(test_fuzz, attr), "hypothesis")]

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}")
    print(f"{args.examples} examples per test and exchange; tests: {', '.join(t.__name__ for t in tests)}")
    seconds: dict[str, float] = defaultdict(float)
    failures: list[str] = []
    for name in names:
        for test in tests:
            before = Counter(test_fuzz.STATS[name])
            started = time.monotonic()
            try:
                test(name)
                outcome = "ok"
            except Exception as failure:  # an assertion, or an exception that escaped _handle
                outcome = "FAILED"
                failures.append(f"{test.__name__}[{name}]:\n{''.join(traceback.format_exception_only(failure))}")
            elapsed = time.monotonic() - started
            seconds[name] += elapsed
            done = test_fuzz.STATS[name] - before
            print(f"  {test.__name__}[{name}]: {done['frames']} frames, {done['bad']} bad, {elapsed:.1f} s, "
                  f"{outcome}", flush=True)

    print(f"\n{'exchange':<12} {'frames fuzzed':>14} {'bad frames':>11} {'ticks':>8} {'escaped':>8} {'seconds':>8}")
    for name in names:
        stats = test_fuzz.STATS[name]
        print(f"{name:<12} {stats['frames']:>14} {stats['bad']:>11} {stats['ticks']:>8} {stats['escaped']:>8} "
              f"{seconds[name]:>8.1f}")
    for failure in failures:
        print(f"\nFAILED {failure}", end="")
    escaped = sum(test_fuzz.STATS[name]["escaped"] for name in names)
    return 1 if failures or escaped else 0


if __name__ == "__main__":
    sys.exit(main())
