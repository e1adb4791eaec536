"""Rule semantics with the real sandbox and MiCADO's own demo ADTs, tick by tick.

Each scenario scripts what the controller would observe (nodes, alerts, queries, live counts)
and checks that the demo rules decide what MiCADO would, plus the deliberate fixes: alerts as
state, live container counts, holding on rule errors.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from micado.adt import compile_adt
from micado.adt.model import Plan, ScalingPolicy
from micado.policy.engine import Decision, TargetState, TickInputs, decide
from micado.policy.sandbox import RuleResult, evaluate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "micado"
GROUP = "worker-node"


@pytest.fixture(scope="module")
def stressng() -> Plan:
    return compile_adt((EXAMPLES / "stressng_nova.yaml").read_text()).plan


@pytest.fixture(scope="module")
def nginx() -> Plan:
    return compile_adt((EXAMPLES / "nginx_ec2.yaml").read_text()).plan


def policy_of(plan: Plan, kind: str) -> ScalingPolicy:
    return next(p for p in plan.policies if p.target_kind == kind)


def nodes(n: int) -> list[dict[str, str]]:
    return [{"ID": f"{GROUP}-{i}", "Addr": f"10.0.0.{i}"} for i in range(1, n + 1)]


def tick(now: float, ready: int, *, alerts: set[str] | None = None,
         queries: dict[str, Any] | None = None, live: dict[str, int] | None = None,
         ) -> TickInputs:
    return TickInputs(now=now, query_results=dict(queries or {}),
                      firing_alerts=set(alerts or ()), nodes={GROUP: nodes(ready)},
                      live_counts=dict(live or {}))


class Recorder:
    """The real evaluate, remembering the inputs of each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, code: str, inputs: dict[str, Any], outputs: list[str], *,
                 timeout: float = 1.0) -> RuleResult:
        self.calls.append(inputs)
        return evaluate(code, inputs, outputs, timeout=timeout)


# --- stressng: VM rule -------------------------------------------------------------------


def test_stressng_vm_rule_waits_for_a_stable_group_then_scales_out_and_in(stressng: Plan):
    vm = policy_of(stressng, "node_group")
    rec = Recorder()
    state = TargetState()
    hot = {"node_overloaded"}

    def step(now: float, ready: int, alerts: set[str]) -> Decision:
        nonlocal state
        decision, _ = decide(vm, stressng.shared, tick(now, ready, alerts=alerts,
                                                         live={GROUP: 1}),
                             state, None, evaluate=rec)
        state = decision.state
        return decision

    first = step(0, 1, hot)  # first tick: stable now, but for 0 s
    assert (first.current, first.desired, first.changed) == (1, 1, False)
    assert first.log == ["Transient phase, skipping update of nodes..."]
    assert rec.calls[-1]["m_time_since_node_count_changed"] == 0
    assert rec.calls[-1]["m_time_when_node_count_changed"] == 0.0
    assert rec.calls[-1]["node_overloaded"] is True
    assert rec.calls[-1]["node_underloaded"] is False
    assert rec.calls[-1]["m_nodes"] == nodes(1)
    assert rec.calls[-1]["m_nodes_todrop"] == []
    assert rec.calls[-1]["NODE_TH_MAX"] == "60"
    assert step(60, 1, hot).desired == 1  # 60 s is not > 60
    assert rec.calls[-1]["m_time_since_node_count_changed"] == 60

    out = step(75, 1, hot)
    assert (out.current, out.desired, out.changed) == (1, 2, True)
    assert out.reason == "scale out 1 -> 2: the rule set m_node_count to 2"
    assert out.log == [] and out.error is None

    # the new VM is not Ready yet: transient, the clock is 0, the alert is still firing
    for now in (90, 105, 120):
        held = step(now, 1, hot)
        assert (held.current, held.desired) == (2, 2)
        assert held.log == ["Transient phase, skipping update of nodes..."]
        assert rec.calls[-1]["m_time_since_node_count_changed"] == 0
        assert rec.calls[-1]["m_time_when_node_count_changed"] == 0
    assert step(135, 2, hot).desired == 2  # Ready: stable from now on
    assert rec.calls[-1]["m_time_when_node_count_changed"] == 135
    assert step(195, 2, hot).desired == 2
    assert step(196, 2, hot).desired == 3
    assert step(300, 3, hot).desired == 3
    # stable at max for long enough: the rule asks for 4, max_instances is 3
    capped = step(400, 3, hot)
    assert (capped.desired, capped.changed) == (3, False)
    assert capped.reason == ("hold at 3: the rule set m_node_count to 4, clamped 4 -> 3 "
                             "(max_instances)")
    down = step(415, 3, {"node_underloaded"})
    assert (down.current, down.desired) == (3, 2)
    assert down.reason == "scale in 3 -> 2: the rule set m_node_count to 2"
    # a VM on its way out is still Ready: len(m_nodes) > m_node_count is transient
    leaving = step(430, 3, {"node_underloaded"})
    assert (leaving.desired, leaving.log) == (2, ["Transient phase, skipping update of nodes..."])


def test_stressng_vm_rule_never_goes_below_min(stressng: Plan):
    vm = policy_of(stressng, "node_group")
    state = TargetState(last_count=1, stable_since=0, previous_node_count=1)
    decision, _ = decide(vm, stressng.shared, tick(100, 1, alerts={"node_underloaded"}), state,
                         None)
    assert (decision.desired, decision.changed) == (1, False)
    assert decision.reason == ("hold at 1: the rule set m_node_count to 0, clamped 0 -> 1 "
                               "(min_instances)")


def test_stable_clock_restarts_when_the_node_count_moves(stressng: Plan):
    vm = replace(policy_of(stressng, "node_group"), scaling_rule="pass")
    rec = Recorder()
    # stable at 2 since t=0; next tick the target is 3 and three nodes are already Ready
    state = TargetState(last_count=3, stable_since=0, previous_node_count=2)
    decision, _ = decide(vm, stressng.shared, tick(50, 3), state, None, evaluate=rec)
    assert rec.calls[-1]["m_time_when_node_count_changed"] == 50
    assert decision.state.stable_since == 50 and decision.state.previous_node_count == 3
    # a group at zero nodes with a target of zero stays stable (MiCADO restarted it each tick)
    zero = replace(vm, min_instances=0)
    state = TargetState(last_count=0)
    for now in (0, 15, 30):
        decision, _ = decide(zero, stressng.shared, tick(now, 0), state, None, evaluate=rec)
        state = decision.state
    assert rec.calls[-1]["m_time_since_node_count_changed"] == 30


# --- stressng: container rule ------------------------------------------------------------


def test_stressng_container_rule_grows_only_while_there_are_more_nodes(stressng: Plan):
    app = policy_of(stressng, "workload")
    rec = Recorder()
    hot = {"service_overloaded"}

    def step(ready: int, group_target: int, replicas: int, alerts: set[str]) -> Decision:
        decision, _ = decide(app, stressng.shared,
                             tick(0, ready, alerts=alerts,
                                  live={GROUP: group_target, "stressng": replicas}),
                             TargetState(), None, evaluate=rec)
        return decision

    grow = step(2, 2, 1, hot)
    assert (grow.current, grow.desired) == (1, 2)
    assert grow.reason == "scale out 1 -> 2: the rule set m_container_count to 2"
    assert rec.calls[-1]["m_node_count"] == 2 and rec.calls[-1]["m_container_count"] == 1
    assert rec.calls[-1]["m_nodes"] == nodes(2)
    assert "m_time_since_node_count_changed" not in rec.calls[-1]
    held = step(2, 2, 2, hot)  # one CPU-heavy replica per VM: wait for the VM rule
    assert (held.desired, held.changed) == (2, False)
    assert held.reason == "hold at 2: the rule kept m_container_count at 2"
    transient = step(2, 3, 2, hot)  # the VM rule asked for a third VM, not Ready yet
    assert transient.desired == 2
    assert transient.log == ["Transient phase, skipping update of containers..."]
    assert step(3, 3, 2, hot).desired == 3
    shrink = step(3, 3, 3, {"service_underloaded"})
    assert (shrink.desired, shrink.reason) == (
        2, "scale in 3 -> 2: the rule set m_container_count to 2")


def test_container_count_starts_from_the_live_replicas_after_a_manual_scale(stressng: Plan):
    app = policy_of(stressng, "workload")
    rec = Recorder()
    # the engine last decided 1, then someone ran `kubectl scale --replicas=3`
    decision, _ = decide(app, stressng.shared,
                         tick(0, 3, alerts={"service_underloaded"},
                              live={GROUP: 3, "stressng": 3}),
                         TargetState(last_count=1), None, evaluate=rec)
    assert rec.calls[-1]["m_container_count"] == 3
    assert (decision.current, decision.desired) == (3, 2)
    assert decision.state.last_count == 2
    # above max_instances: the rule sees 3 (clamped) and the workload is brought back to 3
    decision, _ = decide(app, stressng.shared,
                         tick(0, 3, live={GROUP: 3, "stressng": 5}),
                         TargetState(), None, evaluate=rec)
    assert rec.calls[-1]["m_container_count"] == 3
    assert (decision.current, decision.desired, decision.changed) == (5, 3, True)
    assert decision.reason == ("scale in 5 -> 3: the rule kept m_container_count at 3; the "
                               "current size 5 is outside 1..3")


def test_alerts_are_state_two_rules_see_the_same_alert_in_one_tick(stressng: Plan):
    vm = policy_of(stressng, "node_group")
    # a container rule reading the VM policy's alert (MiCADO's merged namespace)
    app = replace(policy_of(stressng, "workload"),
                  scaling_rule="if node_overloaded:\n  m_container_count += 1\n",
                  borrowed=["node_overloaded"])
    rec = Recorder()
    inputs = tick(100, 1, alerts={"node_overloaded"}, live={GROUP: 1, "stressng": 1})
    state = TargetState(last_count=1, stable_since=0, previous_node_count=1)
    node_decision, userdata = decide(vm, stressng.shared, inputs, state, None, evaluate=rec)
    app_decision, _ = decide(app, stressng.shared, inputs, TargetState(), userdata,
                             evaluate=rec)
    assert [c["node_overloaded"] for c in rec.calls] == [True, True]
    assert (node_decision.desired, app_decision.desired) == (2, 2)
    # still firing next tick: still True (MiCADO removed it once a rule had read it)
    decide(app, stressng.shared, inputs, app_decision.state, None, evaluate=rec)
    assert rec.calls[-1]["node_overloaded"] is True


# --- nginx: the shared m_userdata --------------------------------------------------------


def test_nginx_rules_share_userdata_and_scale_vms_when_containers_are_full(nginx: Plan):
    vm, app = policy_of(nginx, "node_group"), policy_of(nginx, "workload")
    assert app.borrowed and "REQUESTSPERCONT" in app.borrowed
    vm_state, app_state = TargetState(), TargetState()
    userdata: Any = None
    replicas = 1
    history = []
    for now in range(1000, 1400, 15):  # one tick every 15 s, as MiCADO
        queries = {"REQUESTSPERCONT": 10.0, "TIME": float(now)}
        inputs = tick(now, 1, queries=queries, live={GROUP: 1, "nginxapp": replicas})
        node_decision, userdata = decide(vm, nginx.shared, inputs, vm_state, userdata)
        vm_state = node_decision.state
        # the controller feeds this tick's VM target to the container rule (MiCADO's order)
        inputs.live_counts[GROUP] = node_decision.desired
        app_decision, userdata = decide(app, nginx.shared, inputs, app_state, userdata)
        app_state = app_decision.state
        replicas = app_decision.desired
        history.append((now, node_decision.desired, replicas, dict(userdata)))
        if node_decision.changed:
            break
    # the VM rule initialised the shared dict on the first tick; the container rule grew by one
    # every >60 s and recorded it; at 4 containers on 1 node (CONTSPERNODE) the VM rule scaled
    assert history[0] == (1000, 1, 1, {"container_count": 1, "time": 1000.0})
    grown = [(now, r) for (now, _, r, _) in history]
    assert (1075, 2) in grown and (1150, 3) in grown and (1225, 4) in grown
    # the VM rule waits until more than minContScaleInterval after the last container change
    assert history[-1] == (1300, 2, 4, {"container_count": 4, "time": 1225.0})
    assert all(n == 1 for (_, n, _, _) in history[:-1])
    assert node_decision.reason == "scale out 1 -> 2: the rule set m_node_count to 2"
    # the container rule saw m_node_count 2 with one Ready node: it held this tick
    assert (app_decision.desired, app_decision.changed) == (4, False)


def test_a_query_with_no_series_reaches_the_rule_as_none(nginx: Plan):
    """The nginx demo's container rule does not guard REQUESTSPERCONT: with no series it fails
    on None and holds, naming the query (the cases are in test_engine_missing_data.py)."""
    app = policy_of(nginx, "workload")
    inputs = tick(1100, 1, queries={"REQUESTSPERCONT": None, "TIME": 1100.0},
                  live={GROUP: 1, "nginxapp": 2})
    shared_userdata = {"container_count": 2, "time": 1000.0}
    decision, _ = decide(app, nginx.shared, inputs, TargetState(), shared_userdata)
    assert (decision.current, decision.desired, decision.changed) == (2, 2, False)
    assert decision.error is not None
    assert decision.reason.endswith("(query REQUESTSPERCONT returned no series: the rule saw "
                                    "None)")


def test_list_queries_are_passed_through(nginx: Plan):
    vm = replace(policy_of(nginx, "node_group"),
                 queries={"IDLE": ["up == 0", "instance"]},
                 scaling_rule="m_node_count = len(IDLE) + 1\nprint(IDLE)")
    decision, _ = decide(vm, nginx.shared, tick(0, 1, queries={"IDLE": ["a"]},
                                                live={GROUP: 1}), TargetState(), None)
    assert (decision.desired, decision.log) == (2, ["['a']"])


# --- m_nodes_todrop ----------------------------------------------------------------------


def test_nodes_todrop_removes_existing_nodes_by_id_or_address_down_to_min(stressng: Plan):
    vm = replace(policy_of(stressng, "node_group"),
                 scaling_rule="m_node_count = 3\n"
                              "m_nodes_todrop = ['10.0.0.2', 'worker-node-3', 'ghost']\n")
    state = TargetState(last_count=3, stable_since=0, previous_node_count=3)
    decision, _ = decide(vm, stressng.shared, tick(100, 3), state, None)
    assert (decision.current, decision.desired) == (3, 1)
    assert decision.nodes_to_drop == ["worker-node-2", "worker-node-3"]
    assert decision.reason == ("scale in 3 -> 1: the rule dropped worker-node-2, "
                               "worker-node-3; ignored ghost: not a node of worker-node")
    assert decision.state.last_count == 1
    # never below min_instances: the third drop is refused
    every = replace(vm, scaling_rule="m_nodes_todrop = [n['ID'] for n in m_nodes]")
    decision, _ = decide(every, stressng.shared, tick(100, 3), state, None)
    assert (decision.desired, decision.nodes_to_drop) == (1, ["worker-node-1", "worker-node-2"])
    assert "not worker-node-3: that would go below min_instances 1" in decision.reason


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "kind", "line", "words"), [
    ("x = 1\nm_node_count = x / 0\n", "runtime", 2, "ZeroDivisionError"),
    ("m_node_count = undefined_thing\n", "runtime", 1, "NameError"),
    ("if m_node_count >\n  pass\n", "syntax", 1, ""),
    ("import os\n", "forbidden", 1, ""),
])
def test_a_rule_error_holds_and_is_reported(stressng: Plan, rule: str, kind: str, line: int,
                                            words: str):
    vm = replace(policy_of(stressng, "node_group"), scaling_rule=rule)
    userdata = {"keep": 1}
    decision, new_userdata = decide(vm, stressng.shared, tick(0, 2, live={GROUP: 2}),
                                    TargetState(), userdata)
    assert (decision.current, decision.desired, decision.changed) == (2, 2, False)
    assert decision.error is not None and decision.error.startswith(f"{kind}: ")
    assert decision.reason.startswith(f"hold at 2: the rule failed with a {kind} error on "
                                      f"line {line}: ")
    assert words in decision.reason
    assert new_userdata == userdata
    assert decision.state.last_count == 2


def test_an_output_that_is_not_a_count_holds(stressng: Plan):
    app = replace(policy_of(stressng, "workload"), scaling_rule="m_container_count = 'three'")
    decision, _ = decide(app, stressng.shared, tick(0, 1, live={"stressng": 2}),
                         TargetState(), None)
    assert decision.desired == 2
    assert decision.error == "output: m_container_count must be a number, got 'three' (str)"
    vm = replace(policy_of(stressng, "node_group"), scaling_rule="m_node_count = 2.0")
    decision, _ = decide(vm, stressng.shared, tick(0, 1, live={GROUP: 1}), TargetState(), None)
    assert decision.desired == 2 and decision.error is None
