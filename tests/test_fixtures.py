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


@pytest.fixture
def leak():
    """A process started in a test's body and not stopped, as a failing test leaves its server; afterwards, it
    must be gone (pytest_runtest_call killed it)."""
    box = []
    yield box
    assert box and box[0].poll() is not None, "the process the test left running is still running"


@pytest.mark.filterwarnings("ignore:the test left running")
def test_what_a_test_body_leaves_running_is_killed_after_it(leak):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    STARTED.append(process)  # as ServerProcess and RedisServer do
    leak.append(process)
    assert process.poll() is None
