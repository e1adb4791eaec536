"""tests/interrupt_on_term.py: a pytest run stopped with SIGTERM tears its session fixtures
down (what they started stops too); without the plugin it dies with them still up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytest_plugins = ["pytester"]

TESTS = """
import os, time
from pathlib import Path
import pytest

@pytest.fixture(scope="session")
def service():
    yield
    Path(os.environ["TORN_DOWN"]).write_text("stopped")

def test_long(service):
    Path(os.environ["STARTED"]).write_text("started")
    time.sleep(60)
"""


def run_and_terminate(pytester: pytest.Pytester, tmp_path: Path, *plugins: str) -> Path:
    """pytest on TESTS in a process of its own, SIGTERM once the test runs; the teardown
    marker's path."""
    pytester.makepyfile(test_slow=TESTS)
    started, torn_down = tmp_path / "started", tmp_path / "torn-down"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "STARTED": str(started),
           "TORN_DOWN": str(torn_down)}
    args = [arg for plugin in plugins for arg in ("-p", plugin)]
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                                *args, "test_slow.py"], cwd=pytester.path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    return torn_down


def test_sigterm_tears_the_session_fixtures_down(pytester: pytest.Pytester,
                                                 tmp_path: Path) -> None:
    torn_down = run_and_terminate(pytester, tmp_path, "interrupt_on_term")
    assert torn_down.read_text() == "stopped"


def test_without_it_sigterm_leaves_them_up(pytester: pytest.Pytester, tmp_path: Path) -> None:
    assert not run_and_terminate(pytester, tmp_path).exists()
