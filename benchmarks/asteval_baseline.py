"""MiCADO's way of running a scaling rule, rebuilt as the baseline for bench_rules.py.

What the Policy Keeper does for every rule evaluation (evaluator.py in
micado-scale/component-policy-keeper, read for behaviour, not copied):

- the parent writes a "starts" line to a shared stdout queue (a multiprocessing Queue that a
  reader thread drains into the `pk_usercode` log) and starts a NEW child process
  (multiprocessing, fork on Linux) with a result Queue of size 1 made for that child;
- the child builds an asteval 0.9.18 symbol table,
  `make_symbol_table(time=time, use_numpy=True, range=range, **inputs)`, and an `Interpreter`
  on it with `use_numpy=True`, printing into the stdout queue, and with try, function
  definitions, list comprehensions, assert, del and raise switched off; it runs the rule and
  puts `(True, {output name: value})` (or `(False, exception)`) on the result queue;
- the parent joins the child with a wall-clock timeout (terminating it and raising when it
  runs over), checks that the result queue is full, writes a "finished" line, takes the result
  and re-raises the child's exception if there was one.

Two differences, both kept as small as possible:

- asteval 0.9.18 predates Python 3.9's AST, in which an index is no longer wrapped in
  `ast.Index`: it evaluates every `x[key]` to None and ignores `x[key] = value`. The nginx
  rule reads `m_userdata['time']`, so on Python >= 3.9 (MiCADO's own image is python:3.9)
  0.9.18 stops the rule with a TypeError and leaves every output unchanged. `_Interpreter`
  below handles a plain index the way 0.9.18 handles `ast.Index` on Python 3.8, and nothing
  else; the work per node is the same.
- numpy 2 warns about names that asteval's symbol table probes (`np.str`, `np.chararray`); the
  child ignores those warnings so that the benchmark prints nothing.

Where the time goes: numpy (2.0 and later; MiCADO pins 2.0.0) imports numpy.random, fft,
polynomial and char on first use, and the Policy Keeper's parent never builds a symbol table, so
every child imports them again while building its own. preload_numpy_symbols() does that once in
the parent, for a best case of the same design.
"""

from __future__ import annotations

import ast
import logging
import multiprocessing
import sys
import threading
import time
import warnings
from multiprocessing.queues import Queue
from typing import Any

import asteval
from asteval import make_symbol_table

ASTEVAL_VERSION = "0.9.18"
TIMEOUT = 15.0  # seconds, MiCADO's wall-clock limit per rule (research notes §2.10)

if asteval.__version__ != ASTEVAL_VERSION:
    raise ImportError(f"the MiCADO baseline needs asteval {ASTEVAL_VERSION} (the version the "
                      f"Policy Keeper pins), not {asteval.__version__}: "
                      f"pip install -e '.[test,bench]'")

_FORK = multiprocessing.get_context("fork")  # the Linux default up to Python 3.13


class RuleTimeout(Exception):
    """The rule ran past TIMEOUT; the child was terminated."""


class _StdoutQueue(Queue):
    """A multiprocessing Queue with write/flush, so that asteval can print into it."""

    def __init__(self) -> None:
        super().__init__(ctx=_FORK)

    def write(self, text: str) -> None:
        self.put(text)

    def flush(self) -> None:
        sys.__stdout__.flush()


class _Interpreter(asteval.Interpreter):
    """asteval 0.9.18's Interpreter with indexing that works on the Python >= 3.9 AST."""

    def on_subscript(self, node: ast.Subscript) -> Any:
        if isinstance(node.slice, ast.Slice) or not isinstance(node.ctx, ast.Load | ast.Store):
            return super().on_subscript(node)
        return self.run(node.value)[self.run(node.slice)]

    def node_assign(self, node: ast.AST, val: Any) -> None:
        if isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice):
            self.run(node.value)[self.run(node.slice)] = val
            return
        super().node_assign(node, val)


def evaluate_in_child(code: str, inputs: dict[str, Any], outputs: list[str],
                      writer: Any) -> dict[str, Any]:
    """The child's work: a new symbol table and interpreter, the rule, the named outputs.

    Also what tests/parity/micado_policy_keeper.py runs for each rule (`writer`: anything
    with write/flush, where asteval prints the rule's output and its error)."""
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    import time as time_module  # the `time` the rule sees, as in MiCADO

    symtable = make_symbol_table(time=time_module, use_numpy=True, range=range, **inputs)
    interpreter = _Interpreter(
        writer=writer, err_writer=writer, symtable=symtable, use_numpy=True,
        no_if=False, no_for=False, no_while=False, no_try=True, no_functiondef=True,
        no_ifexp=False, no_listcomp=True, no_augassign=False, no_assert=True, no_delete=True,
        no_raise=True, no_print=False,
    )
    interpreter(code)
    return {name: symtable[name] for name in symtable if name in outputs}


def preload_numpy_symbols() -> None:
    """Build one symbol table here, so that forked children find numpy's lazily imported
    submodules already loaded (not something the Policy Keeper does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_symbol_table(use_numpy=True)


def numpy_submodules_loaded() -> bool:
    return all(name in sys.modules for name in ("numpy.random", "numpy.fft", "numpy.polynomial"))


def _child_main(result: Any, code: str, inputs: dict[str, Any], outputs: list[str],
                writer: _StdoutQueue) -> None:
    try:
        result.put((True, evaluate_in_child(code, inputs, outputs, writer)))
    except Exception as exc:
        result.put((False, exc))


class MicadoEvaluator:
    """Evaluates rules as the Policy Keeper does: one fresh child process per evaluation.

    Holds what the Policy Keeper keeps for its lifetime: the stdout queue and the thread that
    drains it into the `pk_usercode` logger. close() stops them.
    """

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._log = logging.getLogger("pk_usercode")
        self._stdout = _StdoutQueue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True,
                                        name="pk-usercode-reader")
        self._reader.start()

    def _read_stdout(self) -> None:
        while True:
            try:
                text = self._stdout.get()
            except (EOFError, OSError, ValueError):
                return
            if text is None:  # close()
                return
            text = str(text).rstrip()
            if text:
                self._log.info(text)

    def _banner(self, what: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        self._stdout.write(f"==== [{stamp}] Executing the user defined algorithm {what} ====")

    def evaluate(self, code: str, inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        """Run `code` in a new child; return the outputs it set (MiCADO's result dict)."""
        self._banner("starts...")
        started = time.time()
        result = _FORK.Queue(maxsize=1)
        child = _FORK.Process(target=_child_main,
                              args=(result, code, inputs, list(outputs), self._stdout))
        child.start()
        child.join(self.timeout)
        if child.is_alive():
            child.terminate()
            raise RuleTimeout(f"timed out after {time.time() - started} seconds")
        if not result.full():
            raise RuntimeError(f"the rule's child process exited ({child.exitcode}) "
                               "without a result")
        self._banner("finished.")
        ok, value = result.get()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._stdout.put(None)
        self._reader.join(timeout=5)
        self._stdout.close()
        self._stdout.join_thread()
