"""The ansible-runner node actuator: start to first task, and the controller's CPU while 20
node groups have operations in flight.

A script (pytest imports it and finds no test):
`.venv/bin/python benchmarks/bench_node_actuator.py`.
It runs the test stand-in playbook (tests/data/nodes/scale_nodes.yml) on localhost through the
real ansible-runner, so "first task" is the playbook's first task, before any cloud call:

1. five runs one after the other: seconds from `start()` to the first task event;
2. 20 groups at once, each run sleeping SLEEP s in its playbook: the CPU the controller's own
   process used (threads of ansible-runner and the event store included) while they were in
   flight, as a fraction of one core, and the CPU of the ansible-playbook processes beside it.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "controller"))

from micado.actuators.node_runner import AnsibleNodeActuator  # noqa: E402
from micado.adt.model import Contextualisation, NodeGroup  # noqa: E402
from micado.control.config import NodesConfig  # noqa: E402
from micado.control.store import Operation, Store  # noqa: E402

PLAYBOOK = REPO / "tests" / "data" / "nodes" / "scale_nodes.yml"
GROUPS = 20
SLEEP = 20


def _spec(name: str) -> NodeGroup:
    return NodeGroup(name=name, type="tosca.nodes.MiCADO.EC2.Compute", cloud="ec2",
                     provisioning_available=True, interface=None,
                     properties={"image_id": "ami-1", "instance_type": "t3.small"},
                     min_instances=0, max_instances=5, contextualisation=Contextualisation())


def _op(store: Store, group: str, desired: int) -> Operation:
    op = store.get_operation(store.begin_operation(
        "bench", group, "resize", desired, f"{group}-{desired}-{time.monotonic_ns()}"))
    assert op is not None
    return op


def _wait(actuator: AnsibleNodeActuator, ops: list[Operation]) -> None:
    left = list(ops)
    while left:
        left = [op for op in left if actuator.poll(op) is None]
        time.sleep(0.2)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "kubeconfig").write_text("apiVersion: v1\n")
        store = Store(root / "state.db")
        store.put_app("bench", "adt", {}, {"app_id": "bench"}, status="running")
        config = NodesConfig(server_url="https://10.0.0.1:6443", kubeconfig=root / "kubeconfig",
                             playbook=str(PLAYBOOK))
        actuator = AnsibleNodeActuator(config, store, root)
        try:
            for desired in range(1, 6):
                op = _op(store, "single", desired)
                actuator.start(op, _spec("single"), [])
                _wait(actuator, [op])
            latency = list(actuator.first_task_latency)
            print(f"start -> first task, 5 runs one at a time: median "
                  f"{statistics.median(latency):.2f} s, min {min(latency):.2f} s, "
                  f"max {max(latency):.2f} s")

            for index in range(GROUPS):
                (root / f"sleep-g{index}").write_text(str(SLEEP))
            actuator.first_task_latency.clear()
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_before, wall_before = time.process_time(), time.monotonic()
            ops = [_op(store, f"g{index}", 1) for index in range(GROUPS)]
            for index, op in enumerate(ops):
                actuator.start(op, _spec(f"g{index}"), [])
            _wait(actuator, ops)
            cpu = time.process_time() - cpu_before
            wall = time.monotonic() - wall_before
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            child_cpu = (children.ru_utime + children.ru_stime
                         - children_before.ru_utime - children_before.ru_stime)
            latency = actuator.first_task_latency
            print(f"{GROUPS} groups in flight for {wall:.1f} s (each run sleeps {SLEEP} s): "
                  f"controller process {cpu:.2f} s CPU = {cpu / wall:.3f} cores; "
                  f"ansible-playbook processes {child_cpu:.1f} s CPU; start -> first task "
                  f"median {statistics.median(latency):.2f} s, max {max(latency):.2f} s")
        finally:
            actuator.close()
            store.close()


if __name__ == "__main__":
    main()
