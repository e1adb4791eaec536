"""Run scaling rules in a sandbox: checked Python, in warm worker processes with limits.

Why an AST allow-list of our own rather than RestrictedPython: MiCADO rules are a tiny subset of
Python, and an allow-list of node types and attribute names is short enough to read whole
(rule_check.py), refuses everything not on it, and reports the line of what it refuses.
RestrictedPython would still need our own guards for attributes, printing and formatting, and
brings policy hooks we would have to keep right. The process is the second wall: each worker
has an address-space limit (memory), a CPU timer per evaluation, few file descriptors, and the
caller's wall-clock timeout kills and replaces it (sleeps, C-level loops). Workers are reused,
so an evaluation costs a round trip over a socket, not a process start.

Workers are fresh interpreters (``python -c``, a socket pair passed as a file descriptor), not
multiprocessing children: multiprocessing's spawn and forkserver re-import the caller's main
script in every child, so a plain script calling `evaluate()` without an
``if __name__ == "__main__":`` guard would start the sandbox again in each worker and fail.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from . import rule_runtime

# the micado package's parent directory: the worker imports micado from where this one did
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_WORKER_CODE = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from micado.policy.rule_runtime import serve_fd; "
                "serve_fd(int(sys.argv[2]), int(sys.argv[3]))")

DEFAULT_MEMORY = 64 * 1024 * 1024
DEFAULT_WORKERS = 2
WALL_GRACE = 0.5
START_TIMEOUT = 30.0
READY = rule_runtime.READY


@dataclass(frozen=True)
class RuleError:
    """Why a rule gave no result: kind (syntax, forbidden, runtime, cpu, memory, timeout,
    value, output, recursion, crashed), a message, and the rule line when known."""

    kind: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.kind}: {self.message}{where}"


@dataclass
class RuleResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    error: RuleError | None = None


class _Worker:
    def __init__(self, memory_bytes: int) -> None:
        ours, theirs = socket.socketpair()
        self.connection = Connection(ours.detach())
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-S", "-c", _WORKER_CODE, _PACKAGE_ROOT,
                 str(theirs.fileno()), str(memory_bytes)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True)
        except OSError:
            self.connection.close()
            raise
        finally:
            theirs.close()
        # wait until the worker has its limits and is listening, so that start-up time is
        # never charged to the first rule it runs
        try:
            started = self.connection.poll(START_TIMEOUT) and self.connection.recv() == READY
        except (EOFError, OSError):
            started = False
        if not started:
            self.stop()
            raise RuntimeError("a rule sandbox worker did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # killed: only a zombie's reaping
            self.process.wait(timeout=5)
        self.connection.close()


class SandboxPool:
    """A fixed number of warm workers; a worker that dies or overruns is replaced."""

    def __init__(self, workers: int = DEFAULT_WORKERS, memory_bytes: int = DEFAULT_MEMORY,
                 ) -> None:
        self._memory = memory_bytes
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        for _ in range(workers):
            self._add()

    def _add(self) -> None:
        worker = _Worker(self._memory)
        with self._lock:
            self._all.append(worker)
        self._idle.put(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.stop()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
        self._add()

    def evaluate(self, code: str, inputs: dict[str, Any], outputs: list[str], *,
                 timeout: float = 1.0) -> RuleResult:
        # pickled before a worker is taken: inputs that cannot be pickled (a lambda, a lock,
        # a local object: PicklingError, TypeError or AttributeError) cost no worker
        try:
            request = ForkingPickler.dumps((code, inputs, list(outputs), timeout))
        except Exception as exc:
            return RuleResult(error=RuleError(
                "input", f"the inputs cannot be passed to the sandbox: {exc}"))
        worker = self._idle.get()
        # the CPU timer in the worker fires at `timeout`; the wall clock gets some grace so that
        # a busy loop on a loaded machine is still reported as CPU, and a C-level stall (which
        # the CPU timer cannot interrupt) as a timeout
        deadline = time.monotonic() + 3 * timeout + WALL_GRACE
        try:
            worker.connection.send_bytes(request)
            reply = _receive(worker.connection, deadline)
        except TimeoutError:
            self._discard(worker)
            return RuleResult(error=RuleError(
                "timeout", f"the rule took longer than {timeout:g} s (wall clock)"))
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            self._discard(worker)
            return RuleResult(error=RuleError(
                "crashed", f"the sandbox could not run the rule: {exc or type(exc).__name__}"))
        except BaseException:  # e.g. KeyboardInterrupt while waiting: never leak a busy worker
            self._discard(worker)
            raise
        error = reply.get("error")
        if error is not None and error[0] == "memory":
            self._discard(worker)  # a worker that ran out of memory is not trusted again
        else:
            self._idle.put(worker)
        return RuleResult(
            outputs=reply.get("outputs", {}), log=reply.get("log", []),
            error=RuleError(*error) if error is not None else None,
        )

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.stop()


def _receive(connection: Connection, deadline: float) -> dict[str, Any]:
    if not connection.poll(max(0.0, deadline - time.monotonic())):
        raise TimeoutError
    reply = connection.recv()
    if not isinstance(reply, dict):
        raise EOFError("unexpected reply")
    return reply


class _DefaultPool:
    """The pool behind the module-level evaluate(): created on first use, closed at exit."""

    def __init__(self) -> None:
        self._pool: SandboxPool | None = None
        self._lock = threading.Lock()

    def get(self) -> SandboxPool:
        with self._lock:
            if self._pool is None:
                self._pool = SandboxPool()
                atexit.register(self._pool.close)
            return self._pool


_default = _DefaultPool()


def evaluate(code: str, inputs: dict[str, Any], outputs: list[str], *,
             timeout: float = 1.0) -> RuleResult:
    """Run `code` with `inputs` as its variables and return the named `outputs`.

    Never raises for anything the rule does: `.error` says what went wrong. `timeout` is the
    rule's CPU time limit; the wall clock is cut at three times that plus half a second (a
    stall the CPU timer cannot see, e.g. a long C-level loop), and that worker is replaced.
    """
    return _default.get().evaluate(code, inputs, outputs, timeout=timeout)
