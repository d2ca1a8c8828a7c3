"""History store: write rate and file size per million ticks (SQLite, WAL, batches as the writer makes them).

    python bench/history.py [--ticks 1000000] [--batch 2000]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.history import SQLiteHistory  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2000, help="ticks per flush (the writer flushes every 0.5 s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.sqlite3"
        store = SQLiteHistory(path)
        markets = [f"coinbase:SYM{n}-USD" for n in range(20)]
        started = time.perf_counter()
        for n in range(args.ticks):
            store.append(markets[n % 20], {"exchange": "coinbase", "symbol": "X", "time": 1618677810244 + n,
                                            "received": 1795600000000 + n, "bid": "56010.12", "bid_size": "0.51",
                                            "ask": "56010.13", "ask_size": "1.2", "last": "56010.12",
                                            "last_size": "0.01", "last_side": "buy"})
            if n % args.batch == args.batch - 1:
                store.flush()
        store.flush()
        elapsed = time.perf_counter() - started
        store.close()
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{args.ticks} ticks in batches of {args.batch}: {args.ticks / elapsed:,.0f} ticks/s written, "
          f"{size / 2 ** 20 * 1_000_000 / args.ticks:.1f} MiB per million ticks (file + WAL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
