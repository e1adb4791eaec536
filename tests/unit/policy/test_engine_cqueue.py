"""MiCADO's cqueue demo: deadline-driven queue scaling decides as it did in MiCADO.

The ADT is MiCADO's own (demos/cqueue/cqueue_ec2.yaml, kept unchanged in tests/data/micado).
Expected sizes are MiCADO's arithmetic: containers = ceil(AET / (REMAININGTIME / ITEMS)),
nodes = ceil(containers / 5), one node step per tick, each clamped to the policy's bounds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from micado.adt import compile_adt
from micado.policy.engine import TargetState, TickInputs, decide

ADT = Path(__file__).resolve().parents[2] / "data" / "micado" / "cqueue_ec2.yaml"


@pytest.fixture(scope="module")
def plan():  # type: ignore[no-untyped-def]
    return compile_adt(ADT.read_text(), app_id="cqueue").plan


def _tick(items: float | None, remaining: float | None, nodes: int, group_size: int,
          workers: int) -> TickInputs:
    return TickInputs(
        now=1000.0, query_results={"ITEMS": items, "REMAININGTIME": remaining},
        firing_alerts=set(),
        nodes={"worker-node": [{"ID": f"w{i}", "Addr": f"10.0.0.{i}"} for i in range(nodes)],
               "cq-server": [{"ID": "cq", "Addr": "10.0.1.1"}]},
        live_counts={"worker-node": group_size, "cqueue-worker": workers},
    )


def _decide(plan, target, inputs, last=None):  # type: ignore[no-untyped-def]
    policy = next(p for p in plan.policies if p.target == target)
    decision, _ = decide(policy, plan.shared, inputs, TargetState(last_count=last), None)
    return decision


@pytest.mark.parametrize(("items", "remaining", "nodes", "want_nodes", "want_workers"), [
    (100, 600, 1, 1, 5),     # 5 containers fit on one node: hold at 1
    (300, 600, 1, 2, 5),     # 15 containers, 3 nodes wanted: one step up (max 2)
    (300, 600, 2, 2, 10),    # two nodes: 10 containers, capped by MAXCONTAINERS
    (300, -5, 2, 2, 10),     # deadline passed: MAXCONTAINERS
    (0, 600, 2, 1, 1),       # empty queue: to zero, clamped to min_instances 1
])
def test_cqueue_decisions(plan, items, remaining, nodes, want_nodes,  # type: ignore[no-untyped-def]
                          want_workers) -> None:
    inputs = _tick(items, remaining, nodes, nodes, 1)
    assert _decide(plan, "worker-node", inputs, last=nodes).desired == want_nodes
    assert _decide(plan, "cqueue-worker", inputs).desired == want_workers


def test_no_queue_data_holds_both(plan) -> None:  # type: ignore[no-untyped-def]
    inputs = _tick(None, 600, 2, 2, 7)
    node = _decide(plan, "worker-node", inputs, last=2)
    worker = _decide(plan, "cqueue-worker", inputs)
    assert (node.desired, worker.desired) == (2, 7)
    # MiCADO's rule compares ITEMS unguarded: None fails the rule, which holds and says why
    note = "(query ITEMS returned no series: the rule saw None)"
    assert node.reason.endswith(note) and worker.reason.endswith(note)
    assert node.error is not None and worker.error is not None
