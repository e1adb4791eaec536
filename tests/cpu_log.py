"""CPU time per test, to see where a run's time goes: with MICADO_TEST_CPU_LOG=FILE set, each
test appends one tab-separated line to FILE: wall seconds, CPU seconds of the pytest process,
CPU seconds of the child processes it reaped meanwhile (a daemon's, moto's, ansible's), node id.

Wall time alone cannot tell a test that waits (a cloud client's backoff, an ADT's period) from
one that works, and on two cores only the work competes. Setup and teardown count with the test
that runs them, so a session fixture's start and stop count with the first and the last test
that use it. Processes that are not reaped (killed and orphaned) are not counted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator

import pytest

ENV = "MICADO_TEST_CPU_LOG"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator:
    path = os.environ.get(ENV)
    if not path:
        yield
        return
    before, started = os.times(), time.monotonic()
    yield
    after, wall = os.times(), time.monotonic() - started
    own = after.user + after.system - before.user - before.system
    children = (after.children_user + after.children_system
                - before.children_user - before.children_system)
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{wall:.2f}\t{max(own, 0):.2f}\t{max(children, 0):.2f}\t{item.nodeid}\n")
