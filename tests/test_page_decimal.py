"""The page's decimal arithmetic (static/decimal.js) in Node: exact on the exchanges' strings, never a float."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE = shutil.which("node")
DECIMAL_JS = Path(__file__).resolve().parent.parent / "static" / "decimal.js"
pytestmark = pytest.mark.skipif(NODE is None, reason="no node (npm ci needs it too)")


def run(expressions: list[str]) -> list:
    """Each expression's value, computed by static/decimal.js in Node."""
    script = (f"import * as d from {json.dumps(DECIMAL_JS.as_uri())};\n"
              f"console.log(JSON.stringify([{', '.join(expressions)}]));")
    done = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compare_is_exact_where_a_float_is_not():
    assert run(['d.compareDecimal("30242", "30241.9")', 'd.compareDecimal("0.10", "0.1")',
                'd.compareDecimal("0.30000000000000004", "0.3")',  # equal as floats
                'd.compareDecimal("12345678901234567.1", "12345678901234567.2")',
                'd.compareDecimal("1", "1e3")', 'd.compareDecimal("", "1")']) == [1, 0, 1, -1, None, None]


def test_spread_bps_matches_the_servers_decimal_spread_row():
    from decimal import Decimal
    from dashboard.spread import BPS, BPS_PLACES
    pairs = [("0.00002835", "0.00002843"), ("24202.98", "24236.40"), ("30230.2", "30230.3"), ("0.042900", "0.043220"),
             ("0.7901", "0.7911"), ("2", "1"), ("99999999999.99999999", "100000000000.00000001")]
    ours = run([f"d.spreadBps({json.dumps(bid)}, {json.dumps(ask)})" for bid, ask in pairs])
    for (bid, ask), value in zip(pairs, ours):
        bid, ask = Decimal(bid), Decimal(ask)
        assert value == format(((ask - bid) / ((ask + bid) / 2) * BPS).quantize(BPS_PLACES), "f")
    assert run(['d.spreadBps(null, "1")', 'd.spreadBps("0", "0")', 'd.spreadBps("x", "1")']) == [None, None, None]


def test_the_halves_keep_the_string():
    assert run(['d.decimalHalves("30241.9")', 'd.decimalHalves("30242")', 'd.decimalHalves("0.00012")']) == [
        ["30241", ".9"], ["30242", ""], ["0", ".00012"]]
