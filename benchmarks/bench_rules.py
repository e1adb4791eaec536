"""How long one scaling-rule evaluation takes: MiCADO's way against our sandbox.

The rule is the nginx VM rule of examples/micado/nginx_ec2.yaml (it keeps a dict in
m_userdata), with the inputs the Policy Keeper gives a node rule: m_nodes (two nodes),
m_node_count, m_time_since_node_count_changed, m_userdata, the TIME and REQUESTSPERCONT
queries and the policy's constants.

- test_micado_fresh_process: asteval 0.9.18 in a fresh child process per evaluation, as the
  Policy Keeper does it (asteval_baseline.py).
- test_micado_numpy_preloaded: the same, after the parent has loaded the numpy submodules that
  each child otherwise imports again (a best case for that design; must run after the first).
- test_sandbox_single: one evaluation through micado.policy.sandbox.evaluate (warm workers).
- test_sandbox_1000: 1,000 evaluations in a loop, one SandboxPool with one worker, the caller
  and the worker pinned to one core.

Both ways must give the same outputs on the same inputs (checked on four cases before
anything is timed). The speed-up (median of the first over the median of the second) is in the
second test's extra_info. Run with `make bench`; figures in benchmarks/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from asteval_baseline import MicadoEvaluator, numpy_submodules_loaded, preload_numpy_symbols

from micado.policy.sandbox import SandboxPool, evaluate

ADT = Path(__file__).resolve().parents[1] / "examples" / "micado" / "nginx_ec2.yaml"
OUTPUTS = ["m_node_count", "m_userdata"]  # what the Policy Keeper reads back from a node rule
NOW = 1_700_000_000.0
LOOP = 1_000
SPEEDUP_TARGET = 100.0
LOOP_TARGET_S = 1.0

_medians: dict[str, float] = {}  # test name -> median seconds, to compare within one run


def _vm_rule() -> tuple[str, dict[str, Any]]:
    document = yaml.safe_load(ADT.read_text())
    for policy in document["topology_template"]["policies"]:
        scaling = policy["scalability"]
        if scaling["targets"] == ["worker-node"]:
            return scaling["properties"]["scaling_rule"], dict(scaling["properties"]["constants"])
    raise LookupError(f"no scaling policy on worker-node in {ADT}")


RULE, CONSTANTS = _vm_rule()


def rule_inputs(**changes: Any) -> dict[str, Any]:
    """A node rule's inputs: two ready nodes, stable for 5 minutes, 5.3 requests/s per
    container and 8 containers (the most 2 nodes hold), so the rule adds a node."""
    inputs: dict[str, Any] = dict(CONSTANTS)
    inputs.update(
        m_nodes=[{"ID": "worker-node-1", "Addr": "10.0.0.11"},
                 {"ID": "worker-node-2", "Addr": "10.0.0.12"}],
        m_node_count=2,
        m_time_since_node_count_changed=300,
        m_userdata={"container_count": 8, "time": NOW - 120},
        TIME=NOW,
        REQUESTSPERCONT=5.3,
    )
    inputs.update(changes)
    return inputs


INPUTS = rule_inputs()
EXPECTED = {"m_node_count": 3, "m_userdata": {"container_count": 8, "time": NOW - 120}}

# (inputs, expected outputs): out, in, first session (no userdata yet), nodes still starting
CASES = [
    (INPUTS, EXPECTED),
    (rule_inputs(REQUESTSPERCONT=0.4, m_userdata={"container_count": 4, "time": NOW - 120}),
     {"m_node_count": 1, "m_userdata": {"container_count": 4, "time": NOW - 120}}),
    (rule_inputs(m_userdata=None),
     {"m_node_count": 2, "m_userdata": {"container_count": 1, "time": NOW}}),
    (rule_inputs(m_node_count=3, REQUESTSPERCONT=9.0),
     {"m_node_count": 3, "m_userdata": {"container_count": 8, "time": NOW - 120}}),
]


@pytest.fixture(scope="module")
def micado() -> Iterator[MicadoEvaluator]:
    evaluator = MicadoEvaluator()
    yield evaluator
    evaluator.close()


def _ours(inputs: dict[str, Any]) -> dict[str, Any]:
    result = evaluate(RULE, inputs, OUTPUTS)
    assert result.error is None, str(result.error)
    return result.outputs


def _median(benchmark: Any) -> float | None:
    stats = getattr(benchmark, "stats", None)  # None when benchmarks are disabled
    return stats.stats.median if stats is not None else None


def _record(benchmark: Any, name: str) -> float | None:
    median = _median(benchmark)
    if median is not None:
        _medians[name] = median
    return median


def test_micado_fresh_process(benchmark: Any, micado: MicadoEvaluator) -> None:
    for inputs, expected in CASES:
        assert micado.evaluate(RULE, inputs, OUTPUTS) == expected
        assert _ours(inputs) == expected  # the same outputs on the same inputs
    outputs = benchmark.pedantic(micado.evaluate, args=(RULE, INPUTS, OUTPUTS),
                                 rounds=40, iterations=1, warmup_rounds=2)
    assert outputs == EXPECTED
    benchmark.extra_info.update({
        "how": "asteval 0.9.18, fresh fork per evaluation, result via Queue",
        "numpy_submodules_loaded_in_parent": numpy_submodules_loaded(),
    })
    _record(benchmark, "micado")


def test_micado_numpy_preloaded(benchmark: Any, micado: MicadoEvaluator) -> None:
    preload_numpy_symbols()
    assert micado.evaluate(RULE, INPUTS, OUTPUTS) == EXPECTED
    outputs = benchmark.pedantic(micado.evaluate, args=(RULE, INPUTS, OUTPUTS),
                                 rounds=40, iterations=1, warmup_rounds=2)
    assert outputs == EXPECTED
    benchmark.extra_info["numpy_submodules_loaded_in_parent"] = numpy_submodules_loaded()
    _record(benchmark, "micado_preloaded")


def test_sandbox_single(benchmark: Any) -> None:
    assert _ours(INPUTS) == EXPECTED  # also warms the default pool
    outputs = benchmark.pedantic(_ours, args=(INPUTS,), rounds=500, iterations=1,
                                 warmup_rounds=20)
    assert outputs == EXPECTED
    median = _record(benchmark, "sandbox")
    micado = _medians.get("micado")
    if median is not None and micado is not None:
        speedup = micado / median
        benchmark.extra_info.update({
            "micado_median_s": micado,
            "sandbox_median_s": median,
            "speedup": round(speedup, 1),
            "speedup_target": SPEEDUP_TARGET,
            "speedup_target_met": speedup >= SPEEDUP_TARGET,
        })
    preloaded = _medians.get("micado_preloaded")
    if median is not None and preloaded is not None:
        benchmark.extra_info["speedup_vs_numpy_preloaded"] = round(preloaded / median, 1)


def _one_core_pool() -> tuple[SandboxPool, Callable[[], None]]:
    """A one-worker pool with the caller and its worker on one core; returns it and an undo."""
    if not hasattr(os, "sched_setaffinity"):
        return SandboxPool(workers=1), lambda: None
    cores = os.sched_getaffinity(0)
    core = max(cores)
    os.sched_setaffinity(0, {core})
    pool = SandboxPool(workers=1)  # its worker process inherits the caller's affinity
    return pool, lambda: os.sched_setaffinity(0, cores)


def test_sandbox_1000(benchmark: Any) -> None:
    pool, unpin = _one_core_pool()

    def loop() -> dict[str, Any]:
        for _ in range(LOOP):
            result = pool.evaluate(RULE, INPUTS, OUTPUTS)
        assert result.error is None, str(result.error)
        return result.outputs

    try:
        assert loop() == EXPECTED  # warm-up, and the check
        outputs = benchmark.pedantic(loop, rounds=5, iterations=1, warmup_rounds=0)
        assert outputs == EXPECTED
    finally:
        pool.close()
        unpin()
    median = _record(benchmark, "sandbox_1000")
    if median is None:
        return
    benchmark.extra_info.update({
        "evaluations": LOOP,
        "pinned_to_one_core": hasattr(os, "sched_setaffinity"),
        "seconds_per_evaluation": median / LOOP,
        "target_s": LOOP_TARGET_S,
        "target_met": median < LOOP_TARGET_S,
    })
    micado = _medians.get("micado")
    if micado is not None:
        benchmark.extra_info["speedup_per_evaluation"] = round(micado / (median / LOOP), 1)
