"""The Python subset scaling rules may use works in the sandbox and gives the right outputs.

Everything here runs in real sandbox workers (one module-scoped pool, plus a few calls of the
module-level `evaluate`): the allowed statements, operators, literals, builtins and string
formatting; print captured in `.log`; time.time(); MiCADO's own demo rules read from
examples/micado/*.yaml with concrete inputs; None inputs; unset and non-plain outputs; the
compile cache; and the line numbers errors report.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CPU_BUDGET
from micado.policy.sandbox import RuleError, RuleResult, SandboxPool, evaluate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "micado"


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    sandbox = SandboxPool(workers=2)
    yield sandbox
    sandbox.close()


def ok(pool: SandboxPool, code: str, inputs: dict[str, Any] | None = None,
       outputs: tuple[str, ...] = ("y",)) -> RuleResult:
    """Evaluate and require success."""
    result = pool.evaluate(code, dict(inputs or {}), list(outputs))
    assert result.error is None, f"{result.error} in:\n{code}"
    assert set(result.outputs) == set(outputs)
    return result


def y_of(pool: SandboxPool, code: str, **inputs: Any) -> Any:
    return ok(pool, code, inputs).outputs["y"]


# --- statements, operators, literals -------------------------------------------------------

def rule(text: str) -> str:
    """A rule written as an indented block in this file."""
    return textwrap.dedent(text).strip("\n")


LANGUAGE = [
    pytest.param("a = 1\nb = a + 2\nc, d = b, a\n[e, f] = [c * 2, d]\ny = [a, b, c, d, e, f]",
                 [1, 3, 3, 1, 6, 1], id="assignments-and-unpacking"),
    pytest.param("first, *rest = [1, 2, 3]\ny = [first, rest]", [1, [2, 3]], id="starred-unpack"),
    pytest.param("y = 10\ny += 5\ny -= 3\ny *= 4\ny //= 5\ny %= 7\ny **= 3\ny <<= 2\ny >>= 1\n"
                 "y |= 1\ny &= 0xff\ny ^= 3", 18, id="augmented-assignment"),
    pytest.param("y = 7\ny /= 2", 3.5, id="augmented-true-division"),
    pytest.param("d = {'n': 1}\nd['n'] += 41\nl = [1, 2]\nl[0] *= 10\ny = [d['n'], l[0]]",
                 [42, 10], id="augmented-subscript"),
    pytest.param(rule("""
        y = []
        for v in [5, 15, 25, 35]:
            if v < 10:
                y.append('low')
            elif v < 20:
                y.append('mid')
            elif v < 30:
                y.append('high')
            else:
                y.append('max')
        """), ["low", "mid", "high", "max"], id="if-elif-else"),
    pytest.param("y = 'yes' if 3 > 2 else 'no'", "yes", id="conditional-expression"),
    pytest.param("y = []\nfor i in range(10):\n    if i % 2:\n        continue\n    if i > 6:\n"
                 "        break\n    y.append(i)", [0, 2, 4, 6], id="for-break-continue"),
    pytest.param("y = []\ni = 0\nwhile True:\n    i += 1\n    if i == 3:\n        continue\n"
                 "    if i > 5:\n        break\n    y.append(i)", [1, 2, 4, 5],
                 id="while-break-continue"),
    pytest.param("y = 0\nfor i in range(3):\n    pass\nelse:\n    y = 'done'", "done",
                 id="for-else"),
    pytest.param("n = 0\nwhile n < 3:\n    n += 1\nelse:\n    n += 100\ny = n", 103,
                 id="while-else"),
    pytest.param("y = [1 < 2, 2 <= 2, 3 > 4, 4 >= 4, 1 == 1.0, 1 != 2, 1 < 2 < 3, 3 > 2 > 2,\n"
                 "     2 in [1, 2], 'a' not in 'bcd', None is None, 1 is not None]",
                 [True, True, False, True, True, True, True, False, True, True, True, True],
                 id="comparisons"),
    pytest.param("y = [True and False, True or False, not True, 0 or 'x', 3 and 4, [] or None,\n"
                 "     1 and 0 and 2, not None]",
                 [False, True, False, "x", 4, None, 0, True], id="boolean-operators"),
    pytest.param("y = [7 + 3, 7 - 3, 7 * 3, 7 / 2, 7 // 2, 7 % 3, 2 ** 10, -7 // 2, -7 % 3, -(3),\n"
                 "     +4, 2 ** -1, 1.5 * 2, 6 & 3, 6 | 3, 6 ^ 3, ~6, 1 << 4, 256 >> 3]",
                 [10, 4, 21, 3.5, 3, 1, 1024, -4, 2, -3, 4, 0.5, 3.0, 2, 7, 5, -7, 16, 32],
                 id="arithmetic-and-bitwise"),
    pytest.param("y = [[1, 2], {'a': 1, 'b': [2]}, (3, 4), sorted({3, 1, 2}), [], {}, (),\n"
                 "     [*[1], 2], {**{'k': 1}, 'j': 2}]",
                 [[1, 2], {"a": 1, "b": [2]}, [3, 4], [1, 2, 3], [], {}, [], [1, 2],
                  {"k": 1, "j": 2}], id="literals"),
    pytest.param("y = [[i * i for i in range(5) if i % 2 == 0],\n"
                 "     sorted({c for c in 'abca'}),\n"
                 "     {k: v for k, v in zip('ab', [1, 2])},\n"
                 "     [(i, j) for i in range(2) for j in range(2) if i != j],\n"
                 "     [[r * c for c in range(3)] for r in range(2)]]",
                 [[0, 4, 16], ["a", "b", "c"], {"a": 1, "b": 2}, [[0, 1], [1, 0]],
                  [[0, 0, 0], [0, 1, 2]]], id="comprehensions"),
    pytest.param("cpu = [10, 75, 30]\ny = [any(c > 70 for c in cpu), all(c > 5 for c in cpu),\n"
                 "     sum(c for c in cpu if c > 20), max(c for c in cpu),\n"
                 "     min((c for c in cpu), default=0), sum(1 for c in [])]",
                 [True, True, 105, 75, 10, 0], id="generator-expressions"),
    pytest.param("a = [0, 1, 2, 3, 4, 5]\nd = {'k': [10, 20]}\ns = 'scaling'\n"
                 "b = list(a)\nb[1:3] = ['x']\nb[0] = 'first'\n"
                 "y = [a[1], a[-1], a[1:3], a[:2], a[4:], a[::2], a[::-1], d['k'][1], s[:5],\n"
                 "     s[-3:], b]",
                 [1, 5, [1, 2], [0, 1], [4, 5], [0, 2, 4], [5, 4, 3, 2, 1, 0], 20, "scali",
                  "ing", ["first", "x", 3, 4, 5]], id="subscripts-and-slices"),
    pytest.param(rule("""
        s = '  Worker-Node '
        t = s.strip()
        y = [t.lower(), t.upper(), t.split('-'), '-'.join(['a', 'b']), t.replace('-', '_'),
             t.startswith('Work'), t.endswith('x'), t.find('N'), t.count('o'), '7'.zfill(3),
             'ab cd'.title(), 'k=v'.partition('='), s.lstrip(), s.rstrip(), '12'.isdigit(),
             'node-1'.removeprefix('node-'), 'a,b,,c'.rsplit(',', 1), 'x'.center(3, '*'),
             'Ab'.swapcase(), 'a\\nb'.splitlines()]
        """),
                 ["worker-node", "WORKER-NODE", ["Worker", "Node"], "a-b", "Worker_Node", True,
                  False, 7, 2, "007", "Ab Cd", ["k", "=", "v"], "Worker-Node ", "  Worker-Node",
                  True, "1", ["a,b,", "c"], "*x*", "aB", ["a", "b"]], id="string-methods"),
    pytest.param(rule("""
        d = {'a': 1}
        d.update({'b': 2})
        d.setdefault('c', 3)
        v = d.pop('a')
        l = [3, 1, 2]
        l.sort()
        l.append(4)
        l.extend([5])
        l.insert(0, 0)
        l.remove(5)
        l.reverse()
        s = {1}
        s.add(2)
        s.discard(1)
        y = [v, sorted(d.keys()), sorted(d.values()), sorted(d.items()), d.get('z', 'no'),
             l, l.index(3), sorted(s.union({7})), (4.0).is_integer(), (3 + 4j).imag]
        """),
                 [1, ["b", "c"], [2, 3], [["b", 2], ["c", 3]], "no", [4, 3, 2, 1, 0], 1,
                  [2, 7], True, 4.0], id="container-methods"),
    pytest.param("y = ['{} {name}'.format('scale', name='up'), '{0}-{1}-{0}'.format('a', 'b'),\n"
                 "     '{:.2f}'.format(3.14159), '{:>5}|'.format('x'), '{:{w}}|'.format(1, w=3),\n"
                 "     '{{literal}} {}'.format(1), '{!r}'.format('q'), '{n:03d}'.format(n=7)]",
                 ["scale up", "a-b-a", "3.14", "    x|", "  1|", "{literal} 1", "'q'", "007"],
                 id="safe-str-format"),
    pytest.param("n = 3\ncpu = 71.256\nname = 'web'\n"
                 "y = [f'{name} has {n} pods', f'{cpu:.1f}%', f'{n * 2}', f'{name!r}', f'{n:>3}',\n"
                 "     f'{cpu:{n}.{n - 2}f}']",
                 ["web has 3 pods", "71.3%", "6", "'web'", "  3", "71.3"], id="f-strings"),
    pytest.param("y = ['%s=%d (%.1f%%)' % ('cpu', 3, 2.25), '%(a)s-%(b)s' % {'a': 1, 'b': 2},\n"
                 "     '%5s|' % 'x', '%x' % 255]",
                 ["cpu=3 (2.2%)", "1-2", "    x|", "ff"], id="percent-formatting"),
]


@pytest.mark.parametrize(("code", "expected"), LANGUAGE)
def test_language_subset(pool: SandboxPool, code: str, expected: Any):
    assert y_of(pool, code) == expected


def test_builtins(pool: SandboxPool):
    code = (
        "y = [len([1, 2]), len('abc'), len({'a': 1}), min(3, 1, 2), min([4, 5]), max(3, 9),\n"
        "     max([1, 7], default=0), abs(-4), abs(-2.5), round(2.567, 2), round(7.5), int('42'),\n"
        "     int(3.9), float('1.5'), bool(0), bool([1]), str(12), sum([1, 2, 3]), sum([], 10),\n"
        "     sorted([3, 1, 2]), sorted(['b', 'a'], reverse=True), list(range(3)),\n"
        "     list(range(1, 10, 4)), any([0, 1]), all([1, 0]), any([]), all([]),\n"
        "     list(enumerate('ab')), list(zip([1, 2], 'xy')), list(reversed([1, 2])),\n"
        "     isinstance(1, int), divmod(7, 2), list(map(str, [1, 2])),\n"
        "     list(filter(None, [0, 1, 2])), dict(a=1), tuple([1]), sorted(set([2, 2, 1])),\n"
        "     sorted(['bb', 'a'], key=len), max(['bb', 'a'], key=len)]"
    )
    assert y_of(pool, code) == [
        2, 3, 1, 1, 4, 9, 7, 4, 2.5, 2.57, 8, 42, 3, 1.5, False, True, "12", 6, 10,
        [1, 2, 3], ["b", "a"], [0, 1, 2], [1, 5, 9], True, False, False, True,
        [[0, "a"], [1, "b"]], [[1, "x"], [2, "y"]], [2, 1], True, [3, 1], ["1", "2"], [1, 2],
        {"a": 1}, [1], [1, 2], ["a", "bb"], "bb",
    ]


def test_bare_math_functions(pool: SandboxPool):
    out = y_of(pool, "y = [ceil(2.1), floor(2.9), sqrt(16), log(math_e), log(8, 2), exp(0),\n"
                     "     ceil(-0.5), floor(-0.5)]", math_e=math.e)
    assert out == [3, 2, 4.0, pytest.approx(1.0), pytest.approx(3.0), 1.0, 0, -1]
    # ceil/floor give ints, as MiCADO rules use them for counts
    assert isinstance(out[0], int)
    assert isinstance(out[1], int)


def test_time_time_is_the_current_epoch(pool: SandboxPool):
    before = time.time()
    now = y_of(pool, "y = time.time()")
    after = time.time()
    assert isinstance(now, float)
    assert before <= now <= after
    # usable the way MiCADO rules use it: seconds since a stored timestamp
    assert y_of(pool, "y = time.time() - since > 60", since=before - 120) is True


def test_print_is_captured_in_the_log(pool: SandboxPool):
    result = ok(pool, "print('Transient phase, skipping update of nodes...')\n"
                      "print('a', 1, None, [2])\n"
                      "print('x', 'y', sep='-')\n"
                      "print('no newline', end='')\n"
                      "print(' ... continued', end='!\\n')\n"
                      "print()\n"
                      "print('two\\nlines')\n"
                      "print('a', 'b', sep=None, end=None)\n"
                      "print('last without newline', end='')\n"
                      "y = 1", outputs=("y",))
    assert result.log == [
        "Transient phase, skipping update of nodes...",
        "a 1 None [2]",
        "x-y",
        "no newline ... continued!",
        "",
        "two",
        "lines",
        "a b",
        "last without newline",
    ]
    assert result.outputs == {"y": 1}
    # print itself returns None, like Python's
    assert y_of(pool, "y = print('z')") is None


def test_log_is_kept_when_the_rule_fails_later(pool: SandboxPool):
    result = pool.evaluate("print('before')\ny = 1 / 0", {}, ["y"])
    assert result.error is not None
    assert result.error.kind == "runtime"
    assert result.log == ["before"]
    assert result.outputs == {}


# --- MiCADO's demo rules --------------------------------------------------------------------

def _demo_rules() -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (scaling_rule, constants) for every rule in examples/micado/*.yaml.

    Constants are shared by all the policies of an ADT, as in MiCADO (the nginx demo declares
    them once, on its first policy).
    """
    rules: dict[str, tuple[str, dict[str, Any]]] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        types = doc.get("policy_types") or {}
        specs = [spec for policy in doc["topology_template"]["policies"]
                 for spec in policy.values()]
        shared: dict[str, Any] = {}
        for spec in specs:
            shared.update((spec.get("properties") or {}).get("constants") or {})
        for spec in specs:
            rule = (spec.get("properties") or {}).get("scaling_rule")
            if rule is None and spec["type"] in types:
                rule = types[spec["type"]]["properties"]["scaling_rule"]["default"]
            if rule is not None:
                rules[f"{path.stem}:{spec['targets'][0]}"] = (rule, dict(shared))
    return rules


DEMO = _demo_rules()
NODES3 = [{"ID": f"worker-node-{i}", "Addr": f"10.0.0.{i}"} for i in range(1, 4)]


def test_demo_rules_are_all_found():
    assert set(DEMO) == {
        "stressng_nova:worker-node", "stressng_nova:stressng",
        "stressng_cloudsigma:worker-node", "stressng_cloudsigma:stressng",
        "nginx_ec2:worker-node", "nginx_ec2:nginxapp",
    }
    # the nginx demo declares its constants once, for both of its rules
    assert DEMO["nginx_ec2:worker-node"][1]["CONTSPERNODE"] == 4
    assert DEMO["nginx_ec2:nginxapp"][1]["minContScaleInterval"] == 60


def run_demo(pool: SandboxPool, name: str, outputs: tuple[str, ...], **variables: Any,
             ) -> RuleResult:
    rule, constants = DEMO[name]
    return pool.evaluate(rule, {**constants, **variables}, list(outputs))


@pytest.mark.parametrize("adt", ["stressng_nova", "stressng_cloudsigma"])
@pytest.mark.parametrize(("nodes", "count", "over", "under", "expected", "log"), [
    (3, 1, True, False, 2, []),            # overloaded, room on the nodes: one more
    (3, 3, True, False, 3, []),            # overloaded but one per node already
    (3, 2, False, True, 1, []),            # underloaded: one fewer
    (3, 2, False, False, 2, []),           # neither alert: unchanged
    (2, 1, True, False, 1, ["Transient phase, skipping update of containers..."]),
])
def test_stressng_container_rule(pool: SandboxPool, adt: str, nodes: int, count: int,
                                 over: bool, under: bool, expected: int, log: list[str]):
    result = run_demo(pool, f"{adt}:stressng", ("m_container_count", "m_userdata"),
                      m_nodes=NODES3[:nodes], m_node_count=3, m_container_count=count,
                      service_overloaded=over, service_underloaded=under, m_userdata=None)
    assert result.error is None
    assert result.outputs == {"m_container_count": expected, "m_userdata": None}
    assert result.log == log


@pytest.mark.parametrize("adt", ["stressng_nova", "stressng_cloudsigma"])
@pytest.mark.parametrize(("nodes", "since", "over", "under", "expected", "log"), [
    (2, 120, True, False, 3, []),
    (2, 120, False, True, 1, []),
    (2, 120, False, False, 2, []),
    (2, 30, True, False, 2, ["Transient phase, skipping update of nodes..."]),   # too soon
    (3, 120, True, False, 2, ["Transient phase, skipping update of nodes..."]),  # more than asked
])
def test_stressng_vm_rule(pool: SandboxPool, adt: str, nodes: int, since: float, over: bool,
                          under: bool, expected: int, log: list[str]):
    result = run_demo(pool, f"{adt}:worker-node", ("m_node_count", "m_nodes_todrop", "m_userdata"),
                      m_nodes=NODES3[:nodes], m_node_count=2, m_nodes_todrop=[],
                      m_time_since_node_count_changed=since, node_overloaded=over,
                      node_underloaded=under, m_userdata=None)
    assert result.error is None
    assert result.outputs == {"m_node_count": expected, "m_nodes_todrop": [], "m_userdata": None}
    assert result.log == log


NODE_OUT = ("m_node_count", "m_nodes_todrop", "m_userdata")
APP_OUT = ("m_container_count", "m_userdata")


def test_nginx_node_rule_first_tick_initialises_m_userdata(pool: SandboxPool):
    result = run_demo(pool, "nginx_ec2:worker-node", NODE_OUT, m_nodes=NODES3[:1],
                      m_node_count=1, m_nodes_todrop=[], m_time_since_node_count_changed=0,
                      m_userdata=None, REQUESTSPERCONT=10.0, TIME=1000.0)
    assert result.error is None
    assert result.outputs == {"m_node_count": 1, "m_nodes_todrop": [],
                              "m_userdata": {"container_count": 1, "time": 1000.0}}


@pytest.mark.parametrize(("count", "containers", "rpc", "expected"), [
    (1, 4, 5.0, 2),   # busy and the node is full: one more node
    (1, 3, 5.0, 1),   # busy but the node still has room for containers
    (2, 4, 0.5, 1),   # idle and the containers fit on one node less
    (2, 5, 0.5, 2),   # idle but they would not fit
    (2, 4, 2.0, 2),   # in between
])
def test_nginx_node_rule(pool: SandboxPool, count: int, containers: int, rpc: float,
                         expected: int):
    userdata = {"container_count": containers, "time": 1000.0}
    result = run_demo(pool, "nginx_ec2:worker-node", NODE_OUT, m_nodes=NODES3[:count],
                      m_node_count=count, m_nodes_todrop=[], m_time_since_node_count_changed=100,
                      m_userdata=userdata, REQUESTSPERCONT=rpc, TIME=1100.0)
    assert result.error is None
    assert result.outputs == {"m_node_count": expected, "m_nodes_todrop": [],
                              "m_userdata": userdata}


@pytest.mark.parametrize(("containers", "rpc", "now", "expected", "userdata"), [
    (2, 5.0, 1100.0, 3, {"container_count": 3, "time": 1100.0}),  # busy: one more
    (4, 5.0, 1100.0, 4, {"container_count": 2, "time": 1000.0}),  # node full: wait for a node
    (3, 0.5, 1100.0, 2, {"container_count": 2, "time": 1100.0}),  # idle: one fewer
    (1, 0.5, 1100.0, 1, {"container_count": 2, "time": 1000.0}),  # never below one
    (2, 5.0, 1030.0, 2, {"container_count": 2, "time": 1000.0}),  # too soon after a change
])
def test_nginx_container_rule(pool: SandboxPool, containers: int, rpc: float, now: float,
                              expected: int, userdata: dict[str, Any]):
    result = run_demo(pool, "nginx_ec2:nginxapp", APP_OUT, m_nodes=NODES3[:1], m_node_count=1,
                      m_container_count=containers, REQUESTSPERCONT=rpc, TIME=now,
                      m_userdata={"container_count": 2, "time": 1000.0})
    assert result.error is None
    assert result.outputs == {"m_container_count": expected, "m_userdata": userdata}


def test_nginx_rule_with_a_query_that_returned_none(pool: SandboxPool):
    """MiCADO gives a failed query as None; the demo rule then fails on its comparison line."""
    result = run_demo(pool, "nginx_ec2:nginxapp", APP_OUT, m_nodes=NODES3[:1], m_node_count=1,
                      m_container_count=2, REQUESTSPERCONT=None, TIME=1100.0,
                      m_userdata={"container_count": 2, "time": 1000.0})
    assert result.error == RuleError(
        "runtime", "TypeError: '>' not supported between instances of 'NoneType' and 'int'", 4)
    assert result.outputs == {}


# --- inputs and outputs ----------------------------------------------------------------------

def test_none_inputs(pool: SandboxPool):
    code = "if q is None:\n    y = 'no data'\nelse:\n    y = q * 2\nz = [q, q is None, q == None]"
    assert ok(pool, code, {"q": None}, ("y", "z")).outputs == {
        "y": "no data", "z": [None, True, True]}
    assert ok(pool, code, {"q": 2.5}, ("y", "z")).outputs == {"y": 5.0, "z": [2.5, False, False]}


def test_outputs_that_are_not_set_come_back_as_none(pool: SandboxPool):
    result = ok(pool, "if x > 10:\n    y = 1", {"x": 1}, ("y", "never_mentioned"))
    assert result.outputs == {"y": None, "never_mentioned": None}


def test_inputs_are_outputs_unless_changed(pool: SandboxPool):
    result = ok(pool, "m_container_count += 1", {"m_container_count": 2, "m_userdata": {"a": 1}},
                ("m_container_count", "m_userdata"))
    assert result.outputs == {"m_container_count": 3, "m_userdata": {"a": 1}}


def test_outputs_are_plain_data(pool: SandboxPool):
    result = ok(pool, "a = (1, (2, 3))\nb = {3, 1}\nc = {1: 'x', None: (True,)}\n"
                      "d = [1.5, 'x', None, False]\ne = {'t': (1, {'u': {2}})}",
                outputs=("a", "b", "c", "d", "e"))
    assert result.outputs["a"] == [1, [2, 3]]           # tuples come back as lists
    assert sorted(result.outputs["b"]) == [1, 3]        # sets as lists
    assert result.outputs["c"] == {"1": "x", "None": [True]}  # keys as strings (JSON)
    assert result.outputs["d"] == [1.5, "x", None, False]
    assert result.outputs["e"] == {"t": [1, {"u": [2]}]}
    assert type(result.outputs["a"]) is list


@pytest.mark.parametrize(("code", "what"), [
    ("y = range(3)", "range"),
    ("y = print", "method"),
    ("y = len", "builtin_function_or_method"),
    ("y = [1, {'k': time}]", "_Time"),
    ("y = (i for i in [1])", "generator"),
    ("y = {'a': 1}.keys()", "dict_keys"),
    ("y = 1 + 2j", "complex"),
])
def test_a_non_plain_output_is_an_output_error(pool: SandboxPool, code: str, what: str):
    result = pool.evaluate(code, {}, ["y"])
    assert result.error == RuleError("output", f"an output must be plain data, not {what}", None)
    assert result.outputs == {}


def test_compile_cache_does_not_mix_up_rules(pool: SandboxPool):
    first = "y = x + 1"
    second = "y = x * 100"
    third = "y = x + 1 "  # differs only by a trailing space: still its own entry
    for _ in range(3):
        assert y_of(pool, first, x=2) == 3
        assert y_of(pool, second, x=2) == 200
        assert y_of(pool, third, x=5) == 6
        assert y_of(pool, first, x=7) == 8  # same code, new inputs


def test_a_rejected_rule_is_not_cached_as_a_good_one(pool: SandboxPool):
    for _ in range(2):
        bad = pool.evaluate("y = open('x')", {}, ["y"])
        assert bad.error is not None
        assert bad.error.kind == "forbidden"
        assert y_of(pool, "y = 'fine'") == "fine"


# --- line numbers -----------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "kind", "fragment", "line"), [
    ("a = 1\nb = 0\nc = a / b\nd = 4", "runtime", "ZeroDivisionError", 3),
    ("a = 1\nb = 2\nc = undefined_thing + 1", "runtime", "NameError", 3),
    ("a = [1]\nb = 2\nc = a[5]", "runtime", "IndexError", 3),
    ("a = {}\nb = 2\nc = a['missing']", "runtime", "KeyError", 3),
    ("a = 1\nb = 2\nc = [1 / (i - 1) for i in range(3)]", "runtime", "ZeroDivisionError", 3),
    ("a = 1\n\nimport os", "forbidden", "import is not allowed", 3),
    ("a = 1\nb = 2\nc = open('/etc/passwd')", "forbidden", "open is not available", 3),
    ("a = 1\nb = 2\nc = 10 ** 5000", "value", "too large", 3),
    ("a = 1\nb = 2\nc = (", "syntax", "", 3),
    ("a = 1\nfor i in [1]:\n    pass\nbreak", "syntax", "'break' outside loop", 4),
    ("a = 1\nb = [1, 2]\nwhile True:\n    b.append(a)\n    b.pop()", "cpu", "CPU time", None),
])
def test_errors_report_the_rule_line(pool: SandboxPool, code: str, kind: str, fragment: str,
                                     line: int | None):
    result = pool.evaluate(code, {}, ["c"], timeout=CPU_BUDGET if kind == "cpu" else 0.5)
    assert result.error is not None
    assert result.error.kind == kind
    assert fragment in result.error.message
    assert result.outputs == {}
    if line is not None:
        assert result.error.line == line
    else:  # the CPU timer stops the rule on any line of its loop, the `while` included
        assert result.error.line in (3, 4, 5)
    assert str(result.error).startswith(f"{kind}: ")


def test_name_error_says_what_names_exist(pool: SandboxPool):
    result = pool.evaluate("y = m_nodez", {"m_nodes": []}, ["y"])
    assert result.error is not None
    assert result.error.kind == "runtime"
    assert "m_nodez" in result.error.message
    assert "not an input, constant, query, alert or allowed builtin" in result.error.message


# --- the module-level evaluate -----------------------------------------------------------------

def test_module_evaluate_runs_a_rule():
    result = evaluate("y = [x * 2 for x in xs]\nprint('ok', len(xs))", {"xs": [1, 2]}, ["y"])
    assert result == RuleResult(outputs={"y": [2, 4]}, log=["ok 2"], error=None)


def test_module_evaluate_reports_errors_without_raising():
    result = evaluate("a = 1\ny = a.__class__", {}, ["y"])
    assert result.error == RuleError(
        "forbidden", "attributes starting with '_' are not allowed (.__class__)", 2)
    assert result.outputs == {}
    assert str(result.error) == (
        "forbidden: attributes starting with '_' are not allowed (.__class__) (line 2)")


def test_module_evaluate_runs_a_demo_rule():
    rule, constants = DEMO["stressng_nova:stressng"]
    result = evaluate(rule, {**constants, "m_nodes": NODES3, "m_node_count": 3,
                             "m_container_count": 1, "service_overloaded": True,
                             "service_underloaded": False}, ["m_container_count"])
    assert result.error is None
    assert result.outputs == {"m_container_count": 2}


def test_evaluate_from_a_plain_script_without_a_main_guard(tmp_path: Path):
    """A script that calls evaluate() at top level, as a user's quick try would: workers must
    not re-import it (multiprocessing's spawn/forkserver did, and the script died of EOFError)."""
    script = tmp_path / "try_rule.py"
    script.write_text(textwrap.dedent("""\
        from micado.policy.sandbox import evaluate

        result = evaluate("y = x * 2", {"x": 21}, ["y"])
        print("outputs", result.outputs, "error", result.error)
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "outputs {'y': 42} error None\n"
    assert done.stderr == ""
