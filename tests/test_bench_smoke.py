"""Benchmarks are not tests, but each runs here on a tiny workload so it does not rot. No timing assertions."""
import shutil
import subprocess
import sys

from conftest import ROOT
from exchanges import EXCHANGES


def run(*args):
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_parse_benchmark_prints_its_table():
    out = run("bench/parse.py", "--passes", "1", "--seconds", "0.01")
    assert out.startswith("machine: ") and "ours/orjson" in out
    for listener in EXCHANGES.values():  # every registered exchange with a recording is measured
        if any(".ws." in f for f in listener.recordings):
            assert f"{listener.label} all" in out and f"{listener.label} tick frames" in out


def test_history_benchmark_prints_its_figures():
    out = run("bench/history.py", "--ticks", "2000", "--batch", "500")
    assert "ticks/s written" in out and "MiB per million ticks" in out


def test_replay_rate_benchmark_prints_its_table():
    out = run("bench/replay_rate.py", "--speeds", "max", "--seconds", "1", "--max-markets", "10")
    assert "frames/s in" in out and "ticks/s to client" in out


def test_fuzz_benchmark_prints_its_table():
    out = run("bench/fuzz.py", "--examples", "5", "--exchanges", "coinbase")
    assert "frames fuzzed" in out and "coinbase" in out


def test_e2e_benchmark_prints_its_table():
    webs = "0,1" if shutil.which("redis-server") else "0"  # team mode needs redis-server
    out = run("bench/e2e.py", "--clients", "2", "--modes", "threading", "--seconds", "1", "--warmup", "1",
              "--webs", webs)
    rows = [line.split() for line in out.splitlines() if line.startswith("threading")]
    assert "ticks/s/client" in out and [row[1] for row in rows] == webs.split(",")


def test_memory_benchmark_prints_its_figures():
    out = run("bench/memory.py", "--ticks", "2000", "--page-minutes", "0.02")
    assert "server RSS:" in out and "page at speed max, watchlist panels:" in out and "long tasks" in out


def test_fanout_benchmark_prints_its_table():
    out = run("bench/fanout.py", "--clients", "3", "--seconds", "1", "--warmup", "0", "--procs", "1", "--full", "1",
              "--sample-every", "1")
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| 3 ")]
    assert "ours / peer per core" in out and len(rows) == 1
    assert rows[0][1].strip() == "3"  # every client connected
