"""SIGTERM ends a pytest run the way Ctrl-C does: with the session's teardown, so that what its
fixtures started in sessions of their own (the OpenStack services, moto, a controller daemon,
the test bed) is stopped too instead of living on. Python's default for SIGTERM is to die at
once, finalizers unrun; `make test` stops its second pytest with SIGTERM on Ctrl-C (a background
job of a script ignores SIGINT), and so do CI runners and `timeout`.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest


def _interrupt(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
