"""The worker side of the sandbox: what a rule can call, and one evaluation with its limits.

This module runs inside the sandbox worker processes (see sandbox.py), never in the controller.
"""

from __future__ import annotations

import builtins
import math
import resource
import signal
import string
import sys
import time
import traceback
from typing import Any

from . import rule_numeric
from .rule_check import SAFE_FORMAT, SAFE_LSHIFT, SAFE_POW, RuleRejected, compile_rule
from .rule_errors import MAX_INT_BITS, RuleLimit
from .rule_errors import check_number as _check_number

MAX_LOG_LINES = 200
MAX_LOG_CHARS = 20_000
MAX_OUTPUT_DEPTH = 32
READY = "ready"


class _CpuExceeded(BaseException):
    """Raised from the SIGPROF handler; BaseException so a rule cannot swallow it."""


def safe_pow(base: Any, exponent: Any) -> Any:
    """`**` without the multi-gigabyte integers `10**10**10` would build."""
    # |base| >= 2**(bit_length-1), so the result has more than (bit_length-1)*exponent bits:
    # refused without computing; anything below that bound is at most twice the limit (cheap)
    # and checked exactly afterwards (2**4000 is allowed, 2**4097 and 10**1300 are not)
    if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0
            and abs(base) > 1 and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS):
        raise RuleLimit("value", f"{base} ** {exponent} is too large (over {MAX_INT_BITS} bits)")
    return _check_number(base ** exponent)


def safe_lshift(value: Any, shift: Any) -> Any:
    if isinstance(value, int) and isinstance(shift, int) and shift > MAX_INT_BITS:
        raise RuleLimit("value", f"<< {shift} is too large (over {MAX_INT_BITS} bits)")
    return _check_number(value << shift)


def safe_format(template: Any, *args: Any, **kwargs: Any) -> Any:
    """str.format without attribute or index lookups in its fields ('{0.__class__}')."""
    if not isinstance(template, str):
        raise RuleLimit("forbidden", ".format is only available on strings")
    pending = [template]
    while pending:
        for _, field, spec, _ in string.Formatter().parse(pending.pop()):
            if field and ("." in field or "[" in field):
                raise RuleLimit("forbidden", f"format field {{{field}}} looks inside a value; "
                                             "only plain {} / {0} / {name} fields are allowed")
            if spec and "{" in spec:
                pending.append(spec)
    return template.format(*args, **kwargs)


def instances_for_deadline(remaining: Any, seconds_per_item: Any, seconds_left: Any,
                           limit: Any = None) -> int | None:
    """Instances needed to finish `remaining` items of `seconds_per_item` each (per instance)
    within `seconds_left`: the deadline-driven queue arithmetic MiCADO's cqueue demo does by
    hand. None when an input is None (a query with no data); capped at `limit` if given."""
    if remaining is None or seconds_per_item is None or seconds_left is None:
        return None
    if remaining <= 0:
        return 0
    if seconds_left <= 0:
        if limit is None:
            raise RuleLimit("value", "the deadline has passed with work remaining; pass a limit "
                                     "to get the most instances instead")
        return int(limit)
    needed = math.ceil(remaining * seconds_per_item / seconds_left)
    return needed if limit is None else min(needed, int(limit))


class _Time:
    """What `time` is inside a rule: time.time() and nothing else (no sleep)."""

    __slots__ = ()

    @staticmethod
    def time() -> float:
        return time.time()


class _Log:
    """What the rule printed, as lines: print(..., sep=, end=) as Python prints them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.chars = 0
        self._partial = ""  # printed with an `end` that did not finish the line (yet)

    def print(self, *args: Any, sep: Any = " ", end: Any = "\n", **_: Any) -> None:
        text = str(sep if sep is not None else " ").join(str(a) for a in args)
        text += str(end if end is not None else "\n")
        self.chars += len(text)
        *complete, partial = (self._partial + text).split("\n")
        lines = len(self.lines) + len(complete) + (1 if partial else 0)
        if lines > MAX_LOG_LINES or self.chars > MAX_LOG_CHARS:
            raise RuleLimit("output", f"the rule printed more than {MAX_LOG_LINES} lines or "
                                      f"{MAX_LOG_CHARS} characters")
        self.lines.extend(complete)
        self._partial = partial

    def finish(self) -> list[str]:
        """The lines, with a last line that was printed without a newline."""
        if self._partial:
            self.lines.append(self._partial)
            self._partial = ""
        return self.lines


def _builtins(log: _Log) -> dict[str, Any]:
    allowed: dict[str, Any] = {}
    for name in ("len", "min", "max", "abs", "round", "int", "float", "bool", "str", "sum",
                 "sorted", "range", "any", "all", "list", "dict", "tuple", "set", "enumerate",
                 "zip", "reversed", "isinstance", "divmod", "map", "filter"):
        allowed[name] = getattr(builtins, name)
    allowed.update(rule_numeric.builtins())  # numpy's common functions, ceil/floor/sqrt/...
    allowed.update({
        "print": log.print, "time": _Time(),
        "instances_for_deadline": instances_for_deadline, "None": None, "True": True,
        "False": False,
        # exceptions a rule's error may name
        "ArithmeticError": ArithmeticError,
    })
    return allowed


def _plain(value: Any, depth: int = 0) -> Any:
    """Outputs must be plain data (they are stored as JSON)."""
    if depth > MAX_OUTPUT_DEPTH:
        raise RuleLimit("output", f"an output is nested deeper than {MAX_OUTPUT_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return _check_number(value)
    if isinstance(value, float):
        return value
    if isinstance(value, list | tuple | set):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    raise RuleLimit("output", f"an output must be plain data, not {type(value).__name__}")


def _rule_line(exc: BaseException) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<rule>":
            line = lineno
    return line


def _on_cpu(signum: int, frame: Any) -> None:
    raise _CpuExceeded


_compiled: dict[str, Any] = {}


def evaluate_here(code: str, inputs: dict[str, Any], outputs: list[str],
                  cpu_seconds: float) -> dict[str, Any]:
    """One evaluation in this (worker) process; never raises for anything the rule does."""
    log = _Log()
    try:
        compiled = _compiled.get(code)
        if compiled is None:
            compiled = compile_rule(code)
            if len(_compiled) > 256:
                _compiled.clear()
            _compiled[code] = compiled
    except RuleRejected as exc:
        return {"outputs": {}, "log": [], "error": (exc.kind, exc.message, exc.line)}
    namespace: dict[str, Any] = dict(inputs)
    namespace["__builtins__"] = _builtins(log)
    namespace[SAFE_POW], namespace[SAFE_LSHIFT] = safe_pow, safe_lshift
    namespace[SAFE_FORMAT] = safe_format
    error: tuple[str, str, int | None] | None = None
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        exec(compiled, namespace)  # checked code, restricted builtins
        signal.setitimer(signal.ITIMER_PROF, 0)
        result = {name: _plain(namespace.get(name)) for name in outputs}
    except _CpuExceeded as exc:
        error = ("cpu", f"the rule used more than {cpu_seconds:g} s of CPU time",
                 _rule_line(exc))
    except RuleLimit as exc:
        error = (exc.kind, str(exc), _rule_line(exc))
    except MemoryError as exc:
        error = ("memory", "the rule needed more memory than its limit", _rule_line(exc))
    except RecursionError as exc:
        error = ("recursion", "the rule nests too deeply", _rule_line(exc))
    except Exception as exc:  # the rule's own error, reported with its line
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, NameError):
            message = (rule_numeric.unavailable_message(exc.name or "") or message
                       + " (not an input, constant, query, alert or allowed builtin)")
        error = ("runtime", message, _rule_line(exc))
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    if error is not None:
        return {"outputs": {}, "log": log.finish(), "error": error}
    return {"outputs": result, "log": log.finish(), "error": None}


def serve(connection: Any, memory_bytes: int) -> None:
    """Worker main loop: limits first, then evaluate requests until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPROF, _on_cpu)
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + memory_bytes
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.setrecursionlimit(400)
    connection.send(READY)
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        except MemoryError:
            connection.send({"outputs": {}, "log": [], "error": ("memory", "out of memory", None)})
            continue
        except Exception as exc:  # an input that pickles but cannot be rebuilt here
            connection.send({"outputs": {}, "log": [], "error": (
                "input", f"the inputs cannot be passed to the sandbox: {exc}", None)})
            continue
        code, inputs, outputs, cpu_seconds = request
        try:
            reply = evaluate_here(code, inputs, outputs, cpu_seconds)
        except MemoryError:
            reply = {"outputs": {}, "log": [], "error": ("memory", "out of memory", None)}
        except _CpuExceeded:  # the timer fired just as the rule's own error was being reported
            reply = {"outputs": {}, "log": [], "error": (
                "cpu", f"the rule used more than {cpu_seconds:g} s of CPU time", None)}
        try:
            connection.send(reply)
        except Exception as exc:  # e.g. a log line that cannot be sent
            connection.send({"outputs": {}, "log": [],
                             "error": ("output", f"the result cannot be returned: {exc}", None)})


def serve_fd(fd: int, memory_bytes: int) -> None:
    """`serve` on an inherited socket: the entry point of a worker started by sandbox.py."""
    from multiprocessing.connection import Connection

    serve(Connection(fd), memory_bytes)


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    return pages * resource.getpagesize()
