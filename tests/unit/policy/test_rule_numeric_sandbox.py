"""numpy's functions in real rules: the sandbox, `decide`, the compiler, the names list.

MiCADO's rules could call numpy by bare name (asteval with use_numpy=True). Here the common
functions work in the real sandbox worker, any other name MiCADO's asteval took from numpy or
math stops the rule (and warns at compile time) with a message naming it and listing what is
available, arrays a rule builds are capped by a limit before they cost memory, and the list
of MiCADO's names is what asteval 0.9.18 with numpy 2.0.0 really exposes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from numpy_reference import DATA_MODULE, ReferenceVenvError, data_module_text

from conftest import prerequisite
from micado.adt import compile_adt
from micado.adt.model import Plan
from micado.policy.engine import TargetState, TickInputs, decide
from micado.policy.rule_numeric import MAX_ARRAY_LENGTH, unavailable_message
from micado.policy.sandbox import evaluate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "micado"
FFT_MESSAGE = unavailable_message("fft")

VM_RULE = "if len(m_nodes) <= m_node_count and m_time_since_node_count_changed > 60:\n"


def rule_warnings(first_line: str) -> list[str]:
    """Warnings compiling the stressng demo with `first_line` put before its VM rule."""
    text = (EXAMPLES / "stressng_nova.yaml").read_text()
    assert VM_RULE in text
    text = text.replace(VM_RULE, f"{first_line}\n          {VM_RULE}")
    return [w.message for w in compile_adt(text).warnings]


@pytest.fixture(scope="module")
def stressng() -> Plan:
    return compile_adt((EXAMPLES / "stressng_nova.yaml").read_text()).plan


def test_a_micado_style_rule_using_numpy_functions_runs_in_the_sandbox() -> None:
    rule = ("p95 = percentile(LATENCIES, 95)\n"
            "spread = std(LATENCIES)\n"
            "if mean(LATENCIES) > 0.2 or p95 > 0.5:\n"
            "    m_container_count = int(ceil(amax(LATENCIES) / 0.2))\n"
            "steps = cumsum(diff(sort(LATENCIES)))\n"
            "print('p95', round(p95, 2), 'median', median(LATENCIES))\n")
    latencies = [0.1, 0.4, 0.9, 0.3]
    result = evaluate(rule, {"LATENCIES": latencies, "m_container_count": 1},
                      ["m_container_count", "p95", "spread", "steps"])
    assert result.error is None, result.error
    assert result.outputs["m_container_count"] == 5  # ceil(0.9 / 0.2)
    assert result.outputs["p95"] == pytest.approx(0.825)
    assert result.outputs["spread"] == pytest.approx(0.2947456531)
    assert result.outputs["steps"] == pytest.approx([0.2, 0.3, 0.8])
    assert type(result.outputs["steps"]) is list  # plain data, not the rule-side RuleArray
    assert result.log == ["p95 0.82 median 0.35"]


def test_an_unavailable_numpy_name_stops_the_rule_naming_it() -> None:
    result = evaluate("x = 1\ny = fft(LATENCIES)\n", {"LATENCIES": [1.0, 2.0]}, ["y"])
    assert result.error is not None
    assert (result.error.kind, result.error.line) == ("runtime", 2)
    assert result.error.message == FFT_MESSAGE
    assert result.error.message.startswith("numpy's `fft` is not available in rules; "
                                           "available: abs, amax, amin, arange,")


def test_a_name_a_rule_defines_is_not_numpys() -> None:
    # a query or constant named like a numpy function wins, as in MiCADO's symbol table
    result = evaluate("y = polyfit + 1\nz = mean([1, 2])", {"polyfit": 1}, ["y", "z"])
    assert result.outputs == {"y": 2, "z": 1.5}
    missing = evaluate("y = not_a_numpy_name", {}, ["y"])
    assert missing.error is not None and "is not defined" in missing.error.message


def test_decide_holds_with_the_message_for_an_unavailable_numpy_name(stressng: Plan) -> None:
    vm = next(p for p in stressng.policies if p.target_kind == "node_group")
    nodes = [{"ID": f"worker-node-{i}", "Addr": f"10.0.0.{i}"} for i in (1, 2)]
    inputs = TickInputs(now=100.0, query_results={}, firing_alerts=set(),
                        nodes={vm.target: nodes}, live_counts={vm.target: 2})

    def run(rule: str):  # type: ignore[no-untyped-def]
        return decide(replace(vm, scaling_rule=rule, max_instances=5), stressng.shared, inputs,
                      TargetState(), None)[0]

    held = run("m_node_count = int(polyfit([1, 2], [1, 2], 1)[0])")
    assert (held.current, held.desired, held.changed) == (2, 2, False)
    assert "numpy's `polyfit` is not available in rules; available: abs," in held.reason
    assert held.error is not None and "polyfit" in held.error
    scaled = run("m_node_count = int(median([1, 3, 4, 7]))")  # 3.5 -> 3
    assert (scaled.desired, scaled.error) == (3, None)


@pytest.mark.parametrize("rule", [
    "y = arange(10**9)", "y = len(linspace(0, 1, 10**8))", "y = arange(0.0, 1e6, 1e-3)",
    "y = mean(range(10**10))",
])
def test_huge_arrays_are_refused_by_the_limit_not_by_memory(rule: str) -> None:
    result = evaluate(rule, {}, ["y"])
    assert result.error is not None
    assert result.error.kind == "value", result.error
    assert f"rules may make at most {MAX_ARRAY_LENGTH}" in result.error.message
    # the worker is still the same healthy one: the next rule just runs
    assert evaluate(f"y = len(arange({MAX_ARRAY_LENGTH}))", {}, ["y"]).outputs == {
        "y": MAX_ARRAY_LENGTH}


def test_the_compiler_knows_the_numeric_names() -> None:
    baseline = rule_warnings("pass")
    quiet = rule_warnings("x = percentile([1, 2], 95) > mean([3]) + ceil(amax([1, 2]) * pi)")
    assert quiet == baseline
    noisy = rule_warnings("x = fft([1]) + nope")
    assert FFT_MESSAGE in noisy
    assert any("reads nope, which no constant, query or alert defines" in w for w in noisy)
    assert len(noisy) == len(baseline) + 2


def test_the_compiler_knows_the_deadline_helper() -> None:
    baseline = rule_warnings("pass")
    assert rule_warnings("x = instances_for_deadline(10, 3.0, 60)") == baseline


def test_micados_numpy_names_are_what_asteval_0918_with_numpy_200_exposes() -> None:
    try:
        text = data_module_text()
    except ReferenceVenvError as exc:
        prerequisite(False, f"a venv with asteval 0.9.18 and numpy 2.0.0 from PyPI: {exc}")
        return
    assert DATA_MODULE.read_text(encoding="utf-8") == text, (
        "regenerate: .venv/bin/python tests/unit/policy/numpy_reference.py --write")

