"""The tests' own hygiene (tests/conftest.py): no process a test starts outlives it, whatever its outcome."""
import subprocess
import sys

import pytest

from conftest import STARTED, end_left_running


def test_a_process_left_running_is_killed_by_its_pid_and_named():
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait(10)
    assert end_left_running([left, done]) == [f"{left.pid} {sys.executable} -c import time; time.sleep(60)"]
    assert left.returncode == -9 and end_left_running([left]) == []


LEFT = []  # what the next test left running


@pytest.mark.filterwarnings("ignore:the test left running")
def test_what_a_test_body_leaves_running_is_killed_after_it():
    """Started as a failing test leaves its server: not stopped by the test nor by any fixture of it."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    STARTED.append(process)  # as ServerProcess and RedisServer do
    LEFT.append(process)
    assert process.poll() is None


def test_the_process_the_previous_test_left_running_is_gone():
    if not LEFT:
        pytest.skip("checks what the previous test left: run the file")
    assert LEFT and LEFT[0].poll() is not None, "the process the previous test left running is still running"
