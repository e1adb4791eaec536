"""Escape and abuse attempts against the rule sandbox: each one is refused or stopped with the
right error kind, leaves nothing behind, and the sandbox keeps working right after it.

Payloads that would touch the machine if they got through aim at a file under `tmp_path`
(the PATH placeholder); the test checks that the file, and anything else in tmp_path, does not
exist afterwards. CPU and wall-clock cases pass timeout=0.5 to keep the run short.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CPU_BUDGET
from micado.policy.sandbox import RuleResult, SandboxPool, evaluate


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    sandbox = SandboxPool(workers=2)
    yield sandbox
    sandbox.close()


def still_works(pool: SandboxPool) -> None:
    """A normal evaluation right after an attack returns the right output."""
    result = pool.evaluate("y = [x * 2 for x in xs]\nprint('fine')", {"xs": [1, 21]}, ["y"])
    assert result == RuleResult(outputs={"y": [2, 42]}, log=["fine"], error=None)


UNDERSCORE = "starting with '_' are not allowed"
LOOKS_INSIDE = "looks inside a value"
NOT_AVAILABLE = "is not available in scaling rules"
NOT_ALLOWED = "is not allowed in scaling rules"
# the classic walk to a real `open` (the checker refuses the first line it meets)
SUBCLASS_WALK = ("opener = [c for c in ().__class__.__bases__[0].__subclasses__() "
                 "if c.__name__ == 'catch_warnings'][0]()._module.__builtins__['open']\n"
                 "opener(PATH, 'w').write('pwned')")

# (id, code, kind, message fragment, line: None, a line or the lines it may be, timeout)
ATTEMPTS: list[tuple[str, str, str, str, int | tuple[int, ...] | None, float]] = [
    # dunder walks, directly and through builtins that would hand them out
    ("subclasses-walk", SUBCLASS_WALK, "forbidden", UNDERSCORE, 1, 1.0),
    ("subclasses-walk-2", "y = ().__class__.__bases__[0].__subclasses__()",
     "forbidden", "(.__subclasses__)", 1, 1.0),
    ("dunder-dict", "y = x.__dict__", "forbidden", "(.__dict__)", 1, 1.0),
    ("list-class", "a = 1\ny = [].__class__", "forbidden", "(.__class__)", 2, 1.0),
    ("reduce-ex", "y = x.__reduce_ex__(2)", "forbidden", "(.__reduce_ex__)", 1, 1.0),
    ("getattr", "y = getattr((), '__class__')", "forbidden", "getattr " + NOT_AVAILABLE, 1,
     1.0),
    ("vars", "y = vars()['__builtins__']", "forbidden", "vars " + NOT_AVAILABLE, 1, 1.0),
    ("globals", "y = globals()['__builtins__']['open'](PATH, 'w')", "forbidden",
     "globals " + NOT_AVAILABLE, 1, 1.0),
    ("locals", "y = locals()", "forbidden", "locals " + NOT_AVAILABLE, 1, 1.0),
    ("builtins-dict", "opener = __builtins__['open']\nopener(PATH, 'w').write('x')", "forbidden",
     "names starting with '_' are not allowed (__builtins__)", 1, 1.0),
    ("dunder-import", "m = __import__('os')\nm.system('touch ' + PATH)", "forbidden",
     "(__import__)", 1, 1.0),
    # identifiers are NFKC-normalised: U+FE33 becomes '_', so this is x.__class__ ...
    ("nfkc-dunder-attribute", "y = x._\ufe33class\ufe33\ufe33", "forbidden", "(.__class__)",
     1, 1.0),
    ("nfkc-eval", "\uff45val('1')", "forbidden", "eval " + NOT_AVAILABLE, 1, 1.0),
    # ... while a fullwidth low line is no identifier character at all
    ("fullwidth-dunder-import", "\uff3f\uff3fimport\uff3f\uff3f('os')", "syntax",
     "invalid character", 1, 1.0),
    ("checked-pow-helper", "y = _micado_pow", "forbidden", "(_micado_pow)", 1, 1.0),
    ("print-self", "y = print.__self__", "forbidden", "(.__self__)", 1, 1.0),
    ("time-func-globals", "y = time.time.__globals__['os']", "forbidden", "(.__globals__)", 1,
     1.0),
    ("mro", "y = ArithmeticError.mro()", "forbidden", ".mro " + NOT_AVAILABLE, 1, 1.0),
    # format-string tricks
    ("format-attribute", "y = '{0.__class__}'.format(1)", "forbidden", LOOKS_INSIDE, 1, 1.0),
    ("format-index", "y = '{0[0]}'.format([1])", "forbidden", LOOKS_INSIDE, 1, 1.0),
    ("format-nested-spec", "y = '{:{0.__class__}}'.format(1)", "forbidden", LOOKS_INSIDE, 1,
     1.0),
    ("format-keyword-walk", "y = '{t.time.__globals__}'.format(t=time)", "forbidden",
     LOOKS_INSIDE, 1, 1.0),
    ("format-built-at-runtime", "f = '{0.__cl' + 'ass__}'\ny = f.format(1)", "forbidden",
     LOOKS_INSIDE, 2, 1.0),
    ("format-spec-from-argument", "y = '{0:{1}}'.format(1, '{0.__class__}')", "runtime",
     "Invalid format specifier", 1, 1.0),
    ("format-map", "y = '{a.__class__}'.format_map({'a': 1})", "forbidden",
     ".format_map " + NOT_AVAILABLE, 1, 1.0),
    ("format-method-as-value", "y = list(map('{0.__class__}'.format, [1]))", "forbidden",
     ".format " + NOT_AVAILABLE, 1, 1.0),
    ("format-builtin", "y = format(1, 'x')", "forbidden", "format " + NOT_AVAILABLE, 1, 1.0),
    ("fstring-dunder", "y = f'{x.__class__.__mro__}'", "forbidden", UNDERSCORE, 1, 1.0),
    ("fstring-spec-dunder", "y = f'{1:{x.__class__}}'", "forbidden", "(.__class__)", 1, 1.0),
    # frames, generators, coroutines, tracebacks
    ("gi-frame", "y = (x for x in []).gi_frame", "forbidden", ".gi_frame " + NOT_AVAILABLE,
     1, 1.0),
    ("gi-code", "g = (x for x in [])\ny = g.gi_code", "forbidden", ".gi_code " + NOT_AVAILABLE,
     2, 1.0),
    ("f-back", "y = x.f_back", "forbidden", ".f_back " + NOT_AVAILABLE, 1, 1.0),
    ("f-globals", "y = x.f_globals['__builtins__']", "forbidden",
     ".f_globals " + NOT_AVAILABLE, 1, 1.0),
    ("cr-frame", "y = x.cr_frame", "forbidden", ".cr_frame " + NOT_AVAILABLE, 1, 1.0),
    ("tb-frame", "y = x.tb_frame.f_globals", "forbidden", NOT_AVAILABLE, 1, 1.0),
    # imports
    ("import-os", "import os\nos.system('touch ' + PATH)", "forbidden",
     "import " + NOT_ALLOWED, 1, 1.0),
    ("from-os-import", "from os import system\nsystem('touch ' + PATH)", "forbidden",
     "import " + NOT_ALLOWED, 1, 1.0),
    ("importlib", "m = importlib.import_module('os')\nm.system('touch ' + PATH)", "forbidden",
     ".import_module " + NOT_AVAILABLE, 1, 1.0),
    ("import-importlib", "import importlib", "forbidden", "import " + NOT_ALLOWED, 1, 1.0),
    ("os-by-name", "m = os\nm.system('touch ' + PATH)", "forbidden", "os " + NOT_AVAILABLE, 1,
     1.0),
    ("sys-modules", "s = sys\ny = s.modules['os']", "forbidden", "sys " + NOT_AVAILABLE, 1,
     1.0),
    # dangerous builtins by name
    ("eval", "eval(\"open(PATH, 'w')\")", "forbidden", "eval " + NOT_AVAILABLE, 1, 1.0),
    ("exec", "exec(\"open(PATH, 'w')\")", "forbidden", "exec " + NOT_AVAILABLE, 1, 1.0),
    ("compile", "y = compile('1', 'f', 'eval')", "forbidden", "compile " + NOT_AVAILABLE, 1,
     1.0),
    ("open", "f = open(PATH, 'w')\nf.write('x')", "forbidden", "open " + NOT_AVAILABLE, 1, 1.0),
    ("type", "y = type('A', (), {})", "forbidden", "type " + NOT_AVAILABLE, 1, 1.0),
    ("object", "y = object()", "forbidden", "object " + NOT_AVAILABLE, 1, 1.0),
    ("super", "y = super()", "forbidden", "super " + NOT_AVAILABLE, 1, 1.0),
    ("eval-as-sort-key", "y = sorted(['1'], key=eval)", "forbidden", "eval " + NOT_AVAILABLE,
     1, 1.0),
    ("breakpoint", "breakpoint()", "forbidden", "breakpoint " + NOT_AVAILABLE, 1, 1.0),
    ("exit", "exit(0)", "forbidden", "exit " + NOT_AVAILABLE, 1, 1.0),
    # statements outside the subset
    ("lambda", "f = lambda: 0", "forbidden", "lambda " + NOT_ALLOWED, 1, 1.0),
    ("def", "def f():\n    return 1", "forbidden", "function definitions " + NOT_ALLOWED, 1,
     1.0),
    ("class", "class A:\n    pass", "forbidden", "class definitions " + NOT_ALLOWED, 1, 1.0),
    ("try-swallows-cpu", "try:\n    while True:\n        pass\nexcept BaseException:\n    y = 1",
     "forbidden", "try/except " + NOT_ALLOWED, 1, 1.0),
    ("try-swallows-memory", "a = 1\ntry:\n    y = [0] * 10**9\nexcept MemoryError:\n    y = 0",
     "forbidden", "try/except " + NOT_ALLOWED, 2, 1.0),
    ("with", "with open(PATH, 'w') as f:\n    pass", "forbidden", "with " + NOT_ALLOWED, 1, 1.0),
    ("raise", "raise ArithmeticError('x')", "forbidden", "raise " + NOT_ALLOWED, 1, 1.0),
    ("global", "global y\ny = 1", "forbidden", "global " + NOT_ALLOWED, 1, 1.0),
    ("nonlocal", "nonlocal y", "forbidden", "nonlocal " + NOT_ALLOWED, 1, 1.0),
    ("del", "del x", "forbidden", "del " + NOT_ALLOWED, 1, 1.0),
    ("walrus", "y = [(z := 1)]", "forbidden", "the := operator " + NOT_ALLOWED, 1, 1.0),
    ("yield", "yield 1", "forbidden", "yield " + NOT_ALLOWED, 1, 1.0),
    ("async-def", "async def f():\n    pass", "forbidden", NOT_ALLOWED, 1, 1.0),
    ("await", "await x", "forbidden", "await " + NOT_ALLOWED, 1, 1.0),
    ("assert", "assert False", "forbidden", "assert " + NOT_ALLOWED, 1, 1.0),
    ("match", "match x:\n    case 1:\n        pass", "forbidden", "Match " + NOT_ALLOWED, 1, 1.0),
    ("bytes-literal", "y = b'\\x00'", "forbidden", "bytes literals", 1, 1.0),
    ("time-sleep", "time.sleep(5)", "forbidden", ".sleep " + NOT_AVAILABLE, 1, 1.0),
    ("requests", "requests.get('http://169.254.169.254/latest/meta-data/')", "forbidden",
     "requests " + NOT_AVAILABLE, 1, 1.0),
    # source the compiler refuses
    ("syntax-error", "y = (1 +", "syntax", "", 1, 1.0),
    ("null-byte", "y = 1\x00", "syntax", "null bytes", None, 1.0),
    ("break-outside-loop", "y = 1\nbreak", "syntax", "'break' outside loop", 2, 1.0),
    ("starred-target", "*a = [1]", "syntax", "starred assignment target", 1, 1.0),
    ("deep-parentheses", "y = " + "(" * 300 + "1" + ")" * 300, "syntax",
     "too many nested parentheses", 1, 1.0),
    ("deep-expression", "y = " + "+".join(["1"] * 3000), "recursion", "nests too deeply",
     None, 1.0),
    ("deep-unary", "y = " + "-" * 5000 + "1", "recursion", "nests too deeply", None, 1.0),
    # CPU and wall clock
    ("busy-loop", "while True:\n    pass", "cpu", "CPU time", (1, 2), CPU_BUDGET),
    ("nested-loops", "y = 0\nfor i in range(10**9):\n    for j in range(10**9):\n        y += 1",
     "cpu", "CPU time", (2, 3, 4), CPU_BUDGET),
    ("comprehension-loop", "while True:\n    y = [i * i for i in range(1000)]", "cpu",
     "CPU time", (1, 2), CPU_BUDGET),
    ("c-level-sum", "x = sum(range(10**12))", "timeout", "wall clock", None, 0.5),
    ("c-level-max", "y = max(range(10**12))", "timeout", "wall clock", None, 0.5),
    # memory
    ("list-bomb", "y = [0] * (10**9)", "memory", "more memory", 1, 3.0),
    ("str-bomb", "y = 'a' * (10**9)", "memory", "more memory", 1, 3.0),
    ("list-doubling", "y = [0]\nwhile True:\n    y = y + y", "memory", "more memory", 3, 3.0),
    ("dict-growth", "d = {}\ni = 0\nwhile True:\n    d[i] = i\n    i += 1", "memory",
     "more memory", (3, 4, 5), 3.0),
    ("format-width-bomb", "y = '{:>1000000000}'.format(1)", "memory", "more memory", 1, 3.0),
    ("range-materialised", "y = sorted(range(10**9))", "memory", "more memory", 1, 3.0),
    # huge numbers
    ("power-tower", "y = 10**10**10", "value", "too large", 1, 1.0),
    ("big-power", "y = 2**100000", "value", "too large", 1, 1.0),
    ("augmented-power", "x = 10\nx **= 10**6", "value", "too large", 2, 1.0),
    ("big-shift", "y = 1 << 10**9", "value", "too large", 1, 1.0),
    ("augmented-shift", "x = 1\nx <<= 10**6", "value", "too large", 2, 1.0),
    ("pow-builtin", "y = pow(2, 10**9, 7)", "forbidden", "pow " + NOT_AVAILABLE, 1, 1.0),
    ("huge-int-output", "a = 2**2000\ny = a * a * a", "value", "over 4096 bits", None, 1.0),
    ("huge-int-str", "a = 2**4000\nb = a * a * a * a\ny = str(b)", "runtime",
     "Exceeds the limit", 3, 1.0),
    # deep nesting and floods of output
    ("deep-nesting-output", "a = []\nfor i in range(10**5):\n    a = [a]\ny = a", "output",
     "nested deeper than", None, 1.0),
    ("deep-nesting-print", "a = []\nfor i in range(10**5):\n    a = [a]\nprint(a)",
     "recursion", "nests too deeply", 4, 1.0),
    ("self-containing-output", "a = []\na.append(a)\ny = a", "output", "nested deeper than",
     None, 1.0),
    ("print-many-lines", "for i in range(10**6):\n    print(i)", "output",
     "printed more than 200 lines", 2, 1.0),
    ("print-one-huge-line", "print('a' * 10**6)", "output", "20000 characters", 1, 1.0),
    ("print-no-newline-flood", "while True:\n    print('x' * 100, end='')", "output",
     "20000 characters", 2, 1.0),
    # outputs that are not plain data
    ("output-function", "y = print", "output", "plain data, not method", None, 1.0),
    ("output-time-object", "y = {'t': time}", "output", "plain data, not _Time", None, 1.0),
    ("output-generator", "y = [(i for i in [1])]", "output", "plain data, not generator", None,
     1.0),
    ("output-exception", "y = ArithmeticError('boom')", "output",
     "plain data, not ArithmeticError", None, 1.0),
    ("output-type", "y = int", "output", "plain data, not type", None, 1.0),
]


@pytest.mark.parametrize(("code", "kind", "fragment", "line", "timeout"),
                         [pytest.param(*case[1:], id=case[0]) for case in ATTEMPTS])
def test_attempt_is_stopped(pool: SandboxPool, tmp_path: Path, code: str, kind: str,
                            fragment: str, line: int | tuple[int, ...] | None, timeout: float):
    target = tmp_path / "pwned"
    code = code.replace("PATH", repr(str(target)))
    result = pool.evaluate(code, {"x": 1}, ["x", "y"], timeout=timeout)
    assert result.error is not None, f"not stopped: {result}"
    assert result.error.kind == kind, str(result.error)
    assert fragment in result.error.message
    if isinstance(line, tuple):  # where a CPU timer or a failed allocation lands
        assert result.error.line in line
    else:
        assert result.error.line == line
    assert result.outputs == {}
    # nothing outside the rule happened
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    still_works(pool)


def test_there_are_enough_distinct_attempts():
    ids = [case[0] for case in ATTEMPTS]
    codes = [case[1] for case in ATTEMPTS]
    assert len(set(ids)) == len(ids)
    assert len(set(codes)) == len(codes)
    assert len(ATTEMPTS) >= 45


def test_percent_formatting_of_any_value_is_fine(pool: SandboxPool):
    """% only calls str()/repr(): no attribute or index walk, so nothing to refuse."""
    result = pool.evaluate("y = '%s|%r|%s' % (print, time, (1, 2))", {}, ["y"])
    assert result.error is None
    assert isinstance(result.outputs["y"], str)
    assert result.outputs["y"].endswith("|(1, 2)")


def test_big_numbers_under_the_limit_are_computed(pool: SandboxPool):
    result = pool.evaluate("a = 2**4000\nb = 3**2500\nc = 1 << 4000\nd = 10**1000\n"
                           "e = (-2)**4095\nf = 2**4096", {}, ["a", "b", "c", "d", "e", "f"])
    # f has 4097 bits: computed (cheaply) and refused on the exact size
    assert result.error is not None
    assert result.error.kind == "value"
    assert result.error.line == 6
    result = pool.evaluate("a = 2**4000\nb = 3**2500\nc = 1 << 4000\nd = 10**1000\n"
                           "e = (-2)**4095", {}, ["a", "b", "c", "d", "e"])
    assert result.error is None
    assert result.outputs == {"a": 2**4000, "b": 3**2500, "c": 1 << 4000, "d": 10**1000,
                              "e": (-2)**4095}


# --- state and isolation between evaluations ---------------------------------------------------

def test_a_rule_that_mutates_its_inputs_does_not_touch_the_callers_dict(pool: SandboxPool):
    inputs: dict[str, Any] = {"m_userdata": {"hist": [1]}, "m_nodes": [{"ID": "a"}], "n": 1}
    code = ("m_userdata['hist'].append(2)\nm_userdata['new'] = True\nm_nodes[0]['ID'] = 'b'\n"
            "m_nodes.clear()\nn += 1")
    result = pool.evaluate(code, inputs, ["m_userdata", "m_nodes", "n"])
    assert result.error is None
    assert result.outputs == {"m_userdata": {"hist": [1, 2], "new": True}, "m_nodes": [], "n": 2}
    assert inputs == {"m_userdata": {"hist": [1]}, "m_nodes": [{"ID": "a"}], "n": 1}


def test_each_evaluation_starts_clean(pool: SandboxPool):
    rule = ("if m_userdata is None:\n    m_userdata = {'runs': 0}\nm_userdata['runs'] += 1\n"
            "leftover = 'set by an earlier run'")
    for _ in range(4):  # several times, so both workers run it at least once with a warm cache
        result = pool.evaluate(rule, {"m_userdata": None}, ["m_userdata"])
        assert result.error is None
        assert result.outputs == {"m_userdata": {"runs": 1}}
    probe = pool.evaluate("y = leftover", {}, ["y"])
    assert probe.error is not None
    assert probe.error.kind == "runtime"
    assert "NameError" in probe.error.message
    # a rule cannot replace a builtin for the next rule either
    assert pool.evaluate("len = 5\nprint = 0", {}, []).error is None
    for _ in range(2):
        again = pool.evaluate("y = len([1, 2])\nprint('ok')", {}, ["y"])
        assert again == RuleResult(outputs={"y": 2}, log=["ok"], error=None)


def test_two_evaluations_in_parallel_on_a_pool_of_two(pool: SandboxPool):
    barrier = threading.Barrier(2)
    results: dict[int, RuleResult] = {}
    rule = "t = 0\nfor i in range(200000):\n    t += i % 7\ny = [who, t]"

    def run(who: int) -> None:
        barrier.wait()
        results[who] = pool.evaluate(rule, {"who": who}, ["y"], timeout=5.0)

    threads = [threading.Thread(target=run, args=(who,)) for who in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    expected = sum(i % 7 for i in range(200000))
    assert results == {1: RuleResult(outputs={"y": [1, expected]}),
                       2: RuleResult(outputs={"y": [2, expected]})}


def test_a_timed_out_worker_is_replaced_and_the_pool_still_serves(pool: SandboxPool):
    result = pool.evaluate("x = sum(range(10**12))", {}, ["x"], timeout=0.5)
    assert result.error is not None
    assert result.error.kind == "timeout"
    # both workers serve, in parallel, right after
    out: list[RuleResult] = []
    threads = [threading.Thread(target=lambda n=n: out.append(
        pool.evaluate("y = n * 3", {"n": n}, ["y"]))) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.outputs["y"] for r in out) == [0, 3, 6, 9]
    assert all(r.error is None for r in out)
    # (read-only look at the pool) still two workers, all alive
    workers = list(pool._all)
    assert len(workers) == 2
    assert all(worker.process.poll() is None for worker in workers)


def test_a_crashed_worker_reports_crashed_and_is_replaced():
    """The one test that kills a worker from outside: a rule has no way to crash one (every
    limit is reported as its own kind), so the `crashed` path needs a SIGKILL. A pool of one,
    so the next evaluation surely meets the dead worker."""
    single = SandboxPool(workers=1)
    try:
        assert single.evaluate("y = 1", {}, ["y"]).outputs == {"y": 1}
        victim = single._all[0].process
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        result = single.evaluate("y = 2", {}, ["y"])
        assert result.error is not None
        assert result.error.kind == "crashed"
        assert result.outputs == {}
        assert single.evaluate("y = 3", {}, ["y"]) == RuleResult(outputs={"y": 3})
        assert single._all[0].process.pid != victim.pid
    finally:
        single.close()


class _RebuildsBadly:
    """Pickles fine, but rebuilding it in the worker raises (int('not a number'))."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (int, ("not a number",))


@pytest.mark.parametrize(("value", "fragment"), [
    (lambda: 0, "lambda"),
    ((i for i in range(3)), "generator"),
    (threading.Lock(), "lock"),
    (_RebuildsBadly(), "invalid literal"),
], ids=["lambda", "generator", "lock", "fails-in-worker"])
def test_non_picklable_input(pool: SandboxPool, value: Any, fragment: str):
    result = pool.evaluate("y = 1", {"m_userdata": {"f": value}}, ["y"])
    assert result.error is not None
    assert result.error.kind == "input"
    assert fragment in result.error.message
    assert result.outputs == {}
    still_works(pool)


def test_bad_inputs_do_not_use_up_the_pool(pool: SandboxPool):
    def local() -> int:
        return 0

    for _ in range(3):  # more than the pool's two workers
        result = pool.evaluate("y = 1", {"f": local}, ["y"])
        assert result.error is not None
        assert result.error.kind == "input"
    # a leaked worker would block this forever: run it in a thread with a deadline
    done: list[RuleResult] = []
    thread = threading.Thread(target=lambda: done.append(
        pool.evaluate("y = 5", {}, ["y"])), daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert done == [RuleResult(outputs={"y": 5})]


def test_module_evaluate_stops_an_escape_and_keeps_working(tmp_path: Path):
    target = tmp_path / "pwned"
    code = SUBCLASS_WALK.replace("PATH", repr(str(target)))
    result = evaluate(code, {}, ["y"])
    assert result.error is not None
    assert result.error.kind == "forbidden"
    assert not target.exists()
    assert evaluate("y = x + 1", {"x": 1}, ["y"]).outputs == {"y": 2}


def test_module_evaluate_cpu_limit():
    result = evaluate("while True:\n    pass", {}, [], timeout=CPU_BUDGET)
    assert result.error is not None
    assert result.error.kind == "cpu"
    assert evaluate("y = 7", {}, ["y"]).outputs == {"y": 7}
