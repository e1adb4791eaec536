"""Where this engine's rule semantics and MiCADO's Policy Keeper part, on purpose (issue 11).

One test (or group) per decision, with the real sandbox; where the controller chooses what a
rule sees, through the real control loop too. MiCADO's behaviour is quoted from
micado-scale/component-policy-keeper: policy_keeper.py at e531d3e (its latest
Kubernetes-era version: one evaluation per node group, then per container) and evaluator.py at
ddcdbe0 (asteval with use_numpy=True, no_listcomp=True). Ids match the README's list
"Deliberate differences from MiCADO".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller_env import Clock, ControllerEnv, ready_node
from micado.adt import compile_adt
from micado.adt.model import Plan, ScalingPolicy
from micado.policy.engine import Decision, TargetState, TickInputs, decide, scaled_groups

NOVA = "tosca.nodes.MiCADO.Nova.Compute"
DOCKER = "tosca.nodes.MiCADO.Container.Application.Docker.Deployment"
TYPES = "https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml"
# prints what a container rule sees and leaves its count alone
SHOW = "print(m_node_count, [n['ID'] for n in m_nodes])\n"


def adt(groups: list[str], policies: list[tuple[str, dict[str, Any]]],
        hosts: dict[str, list[str]] | None = None) -> str:
    """An ADT with Nova node groups, Deployments `web` (or those named in `hosts`, each placed
    on its list of groups) and one scaling policy per (target, properties), in that order."""
    nodes: dict[str, Any] = {}
    for name, on in (hosts if hosts is not None else {"web": []}).items():
        nodes[name] = {"type": DOCKER, "properties": {"image": "nginx:1.25"},
                       "requirements": [{"host": h} for h in on]}
    for group in groups:
        nodes[group] = {"type": NOVA, "properties": {
            "image_id": "img", "flavor_name": "small", "project_id": "p", "network_id": "n"}}
    scaling = [{f"scale-{target}": {"type": "tosca.policies.Scaling.MiCADO",
                                    "targets": [target], "properties": properties}}
               for target, properties in policies]
    return yaml.safe_dump({"tosca_definitions_version": "tosca_simple_yaml_1_2",
                           "imports": [TYPES],
                           "topology_template": {"node_templates": nodes,
                                                 "policies": scaling}}, sort_keys=False)


def plan_of(text: str) -> Plan:
    compiled = compile_adt(text)
    return compiled.plan


def policy_for(plan: Plan, target: str) -> ScalingPolicy:
    return next(p for p in plan.policies if p.target == target)


def ready(group: str, count: int) -> list[dict[str, str]]:
    return [{"ID": f"{group}-{i}", "Addr": f"10.0.{len(group)}.{i}"} for i in range(1, count + 1)]


def inputs(now: float, nodes: dict[str, int], live: dict[str, int],
           queries: dict[str, Any] | None = None) -> TickInputs:
    return TickInputs(now=now, query_results=dict(queries or {}), firing_alerts=set(),
                      nodes={g: ready(g, n) for g, n in nodes.items()}, live_counts=dict(live))


def rule(min_instances: Any = 1, max_instances: Any = 5, text: str = SHOW,
         **more: Any) -> dict[str, Any]:
    return {"min_instances": min_instances, "max_instances": max_instances,
            "scaling_rule": text, **more}


# --- D-node-clock: m_time_since_node_count_changed ------------------------------------------


def test_node_clock_restarts_at_every_change_where_micado_kept_counting() -> None:
    """A rule waiting 20 s after the last change, ticks every 15 s, each new VM Ready by the
    next tick (the group goes from one stable size straight to the next).

    MiCADO (collect_inputs_for_nodes): the previous tick was stable and this one is too, so it
    keeps the old timestamp: the rule sees 0, 15, 30, 45 and adds the third VM at t=45, 15 s
    after the second. Here the clock restarts when the count moves: 0, 15, 30, 0, 15, 30, so
    the third VM comes at t=75, 45 s after the second, as the rule's author asked.
    """
    wait = ("if len(m_nodes) == m_node_count and m_time_since_node_count_changed > 20:\n"
            "  m_node_count += 1\n"
            "print(m_time_since_node_count_changed)\n")
    plan = plan_of(adt(["vms"], [("vms", rule(1, 3, wait))]))
    vm = policy_for(plan, "vms")
    state, target = TargetState(), 1
    seen: list[tuple[int, str, int]] = []
    for now in range(0, 91, 15):
        decision, _ = decide(vm, plan.shared, inputs(now, {"vms": target}, {"vms": target}),
                             state, None)
        state, target = decision.state, decision.desired
        seen.append((now, decision.log[0], decision.desired))
    assert seen == [(0, "0", 1), (15, "15", 1), (30, "30", 2),
                    (45, "0", 2),  # MiCADO: "45", and it scales to 3 here
                    (60, "15", 2), (75, "30", 3), (90, "0", 3)]


# --- item 3: counts that are not whole numbers --------------------------------------------


@pytest.mark.parametrize(("value", "desired", "why"), [
    (39.0, 3, "scale out 2 -> 3: the rule set m_container_count to 3 (3.9 truncated)"),
    (-5.0, 1, "scale in 2 -> 1: the rule set m_container_count to 0 (-0.5 truncated), "
              "clamped 0 -> 1 (min_instances)"),
])
def test_a_fraction_is_truncated_like_int_with_a_line_in_the_rule_log(
        value: float, desired: int, why: str) -> None:
    plan = plan_of(adt(["vms"], [("web", rule(1, 5, "m_container_count = LOAD / 10",
                                              queries={"LOAD": "max(load)"}))]))
    web = policy_for(plan, "web")
    decision, _ = decide(web, plan.shared, inputs(0, {"vms": 1}, {"web": 2},
                                                  {"LOAD": value}), TargetState(), None)
    assert (decision.desired, decision.error, decision.reason) == (desired, None, why)
    shown = value / 10
    assert decision.log == [f"m_container_count = {shown!r} is not a whole number: truncated "
                            f"to {int(shown)} as MiCADO did"]


def test_a_whole_float_is_taken_without_a_note() -> None:
    plan = plan_of(adt(["vms"], [("vms", rule(1, 5, "m_node_count = 4.0"))]))
    decision, _ = decide(policy_for(plan, "vms"), plan.shared, inputs(0, {"vms": 2}, {}),
                         TargetState(), None)
    assert (decision.desired, decision.log) == (4, [])
    assert decision.reason == "scale out 2 -> 4: the rule set m_node_count to 4"


@pytest.mark.parametrize(("expression", "message"), [
    ("True", "m_container_count must be a number, got True (bool)"),
    ("'3'", "m_container_count must be a number, got '3' (str)"),
    ("None", "m_container_count must be a number, got None (NoneType)"),
    ("float('nan')", "m_container_count must be a finite number, got nan"),
    ("float('inf')", "m_container_count must be a finite number, got inf"),
])
def test_what_is_not_a_finite_number_holds_with_a_clear_message(expression: str,
                                                                message: str) -> None:
    plan = plan_of(adt(["vms"], [("web", rule(text=f"m_container_count = {expression}"))]))
    decision, _ = decide(policy_for(plan, "web"), plan.shared, inputs(0, {"vms": 1},
                                                                      {"web": 2}),
                         TargetState(), None)
    assert (decision.desired, decision.changed) == (2, False)
    assert decision.error == f"output: {message}"
    assert decision.reason == f"hold at 2: {message}"


# --- D-container-nodes: which nodes a container rule sees ---------------------------------


def shown(decision: Decision) -> str:
    assert decision.error is None, decision.error
    return decision.log[0]


def container_sees(plan: Plan, nodes: dict[str, int], live: dict[str, int],
                   target: str = "web") -> str:
    decision, _ = decide(policy_for(plan, target), plan.shared, inputs(0, nodes, live),
                         TargetState(), None, scaled_groups=scaled_groups(plan))
    return shown(decision)


def test_a_container_on_a_group_without_policy_sees_its_ready_nodes() -> None:
    """MiCADO gave m_nodes=[] and m_node_count=0 (it walked only the scaled groups)."""
    plan = plan_of(adt(["vms", "static"], [("vms", rule()), ("web", rule())],
                       hosts={"web": ["static"]}))
    # the static group's recorded size (1) is stale: three of its nodes are Ready
    assert container_sees(plan, {"vms": 2, "static": 3}, {"vms": 4, "static": 1}) == \
        "3 ['static-1', 'static-2', 'static-3']"


def test_an_unplaced_container_sees_every_group_and_the_count_of_the_last_scaled_one() -> None:
    """MiCADO: the scaled group's nodes and target (the same count: `4`), without the static
    group's nodes; with only a static group, [] and 0."""
    plan = plan_of(adt(["vms", "static"], [("vms", rule()), ("web", rule())]))
    assert container_sees(plan, {"vms": 2, "static": 1}, {"vms": 4, "static": 1}) == \
        "4 ['vms-1', 'vms-2', 'static-1']"
    only_static = plan_of(adt(["static"], [("web", rule())]))
    assert container_sees(only_static, {"static": 2}, {"static": 1}) == \
        "2 ['static-1', 'static-2']"


def test_a_container_on_two_groups_counts_the_last_in_policy_order_as_micado() -> None:
    """hosts [g2, g1], policies g1 then g2: MiCADO walked its node list (policy order) and
    kept the last host it met, g2, so m_node_count is g2's target and m_nodes lists g1 first."""
    plan = plan_of(adt(["g1", "g2"], [("g1", rule()), ("g2", rule()), ("web", rule())],
                       hosts={"web": ["g2", "g1"]}))
    assert policy_for(plan, "web").hosts == ["g2", "g1"]
    assert container_sees(plan, {"g1": 1, "g2": 2}, {"g1": 4, "g2": 5}) == \
        "5 ['g1-1', 'g2-1', 'g2-2']"


def test_a_container_placed_on_edge_devices_only_sees_no_node_group() -> None:
    """Placed only on an edge device: none of the app's node groups hosts it, so its rule sees
    m_nodes=[] and m_node_count=0, as in MiCADO (not every group, as for an unplaced one)."""
    document = yaml.safe_load(adt(["vms"], [("vms", rule()), ("web", rule())],
                                  hosts={"web": ["edge1"]}))
    document["topology_template"]["node_templates"]["edge1"] = {
        "type": "tosca.nodes.MiCADO.Edge", "properties": {"public_ip": "192.0.2.10"}}
    plan = plan_of(yaml.safe_dump(document, sort_keys=False))
    assert policy_for(plan, "web").hosts == []
    assert container_sees(plan, {"vms": 2}, {"vms": 2}) == "0 []"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ControllerEnv]:
    environment = ControllerEnv(tmp_path, clock=Clock())
    yield environment
    environment.stop()


def seed(env: ControllerEnv, group: str, count: int) -> None:
    for i in range(1, count + 1):
        env.kube.seed(ready_node(f"{group}-{i}", group, f"10.0.{len(group)}.{i}"))


def loop_log(env: ControllerEnv, target: str) -> list[str]:
    runtime = env.loop.runtime("web")
    assert runtime is not None
    record = next(r for r in runtime.decisions.values() if r["target"] == target)
    assert record["error"] is None, record["reason"]
    return list(record["log"])


@pytest.mark.parametrize(("groups", "policies", "hosts", "seeded", "expected"), [
    # a host group without policy: its Ready nodes and their number (MiCADO: 0 [])
    (["vms", "static"], ["vms"], ["static"], {"vms": 1, "static": 2},
     "2 ['static-1', 'static-2']"),
    # no host, a scaled and a static group: the scaled group's target of this tick, which
    # the VM rule set to 2 (MiCADO: the same count, without static-1's nodes)
    (["vms", "static"], ["vms"], [], {"vms": 1, "static": 1},
     "2 ['vms-1', 'static-1']"),
    # hosts [g2, g1]: g2's target of this tick (3), as in MiCADO
    (["g1", "g2"], ["g1", "g2"], ["g2", "g1"], {"g1": 1, "g2": 1},
     "3 ['g1-1', 'g2-1']"),
])
def test_the_loop_gives_container_rules_the_nodes_and_count_micado_order_picks(
        env: ControllerEnv, groups: list[str], policies: list[str], hosts: list[str],
        seeded: dict[str, int], expected: str) -> None:
    counts = {"vms": 2, "g1": 2, "g2": 3}
    node_policies = [(g, rule(text=f"m_node_count = {counts[g]}")) for g in policies]
    text = adt(groups, [*node_policies, ("web", rule())], hosts={"web": hosts})
    for group, count in seeded.items():
        seed(env, group, count)
    env.manager.submit(text, app_id="web")
    env.tick("web")
    assert loop_log(env, "web") == [expected]


# --- D-rule-error-atomic: a failing rule changes nothing ----------------------------------


def test_a_rule_that_fails_holds_its_target_and_leaves_m_userdata_as_it_was() -> None:
    """MiCADO applied what the rule had assigned before the failing line: here count 5 and
    {'seen': 1, 'new': True}; the other rules ran in both."""
    failing = ("m_userdata['seen'] += 1\n"
               "m_userdata['new'] = True\n"
               "m_container_count = 5\n"
               "m_container_count = m_container_count / 0\n")
    plan = plan_of(adt(["vms"], [("web", rule(text=failing))]))
    before = {"seen": 0}
    decision, after = decide(policy_for(plan, "web"), plan.shared,
                             inputs(0, {"vms": 1}, {"web": 2}), TargetState(), before)
    assert (decision.desired, decision.changed) == (2, False)
    assert after == {"seen": 0} and before == {"seen": 0}
    assert decision.error is not None and decision.error.startswith("runtime: ")
    assert decision.reason.startswith("hold at 2: the rule failed with a runtime error on "
                                      "line 4: ")
    assert "ZeroDivisionError" in decision.reason


def test_an_unusable_output_also_leaves_m_userdata_as_it_was() -> None:
    plan = plan_of(adt(["vms"], [("web", rule(text="m_userdata = 'mine'\n"
                                                   "m_container_count = 'many'\n"))]))
    decision, after = decide(policy_for(plan, "web"), plan.shared,
                             inputs(0, {"vms": 1}, {"web": 2}), TargetState(), "theirs")
    assert (decision.desired, after) == (2, "theirs")


def test_in_the_loop_the_next_rule_sees_m_userdata_from_before_the_failed_one(
        env: ControllerEnv) -> None:
    seed(env, "vms", 1)
    text = adt(["vms"], [
        ("vms", rule(text="m_userdata = {'by': 'vms'}\nm_node_count = 1 // 0\n")),
        ("web", rule(text="print(m_userdata)\nm_userdata = {'by': 'web'}\n"))],
        hosts={"web": ["vms"]})
    env.manager.submit(text, app_id="web")
    env.tick("web")
    assert loop_log(env, "web") == ["None"]
    assert env.store.load_userdata("web") == {"value": {"by": "web"}}
    runtime = env.loop.runtime("web")
    assert runtime is not None
    vms = next(r for r in runtime.decisions.values() if r["target"] == "vms")
    assert vms["error"] and "line 2" in vms["reason"] and "ZeroDivision" in vms["reason"]


# --- D-list-comprehensions and D-micado-crashes: MiCADO failed, this engine decides ---------


def test_list_comprehensions_work_in_rules() -> None:
    """MiCADO's asteval ran with no_listcomp=True: this rule was an error there."""
    plan = plan_of(adt(["vms"], [("web", rule(text=(
        "up = [n['ID'] for n in m_nodes if n['Addr'].startswith('10.')]\n"
        "m_container_count = len(up) * 2\n")))], hosts={"web": ["vms"]}))
    decision, _ = decide(policy_for(plan, "web"), plan.shared, inputs(0, {"vms": 2},
                                                                      {"web": 1}),
                         TargetState(), None, scaled_groups=scaled_groups(plan))
    assert (decision.desired, decision.error) == (4, None)


def test_string_min_instances_with_m_nodes_todrop_drops_the_node(env: ControllerEnv) -> None:
    """MiCADO compared the count with the string ('2 > "1"', get_node_scaling): TypeError,
    and the session was aborted every tick."""
    seed(env, "vms", 3)
    grow_then_drop = ("if m_node_count < 3:\n"
                      "  m_node_count = 3\n"
                      "else:\n"
                      "  m_nodes_todrop = [m_nodes[-1]['ID']]\n")
    text = adt(["vms"], [("vms", rule("1", "3", grow_then_drop))])
    plan = plan_of(text)
    vm = policy_for(plan, "vms")
    assert (vm.min_instances, vm.max_instances) == (1, 3)
    decision, _ = decide(vm, plan.shared, inputs(0, {"vms": 3}, {"vms": 3}),
                         TargetState(last_count=3), None)
    assert (decision.desired, decision.nodes_to_drop) == (2, ["vms-3"])
    env.manager.submit(text, app_id="web")
    for _ in range(2):  # the group's first target is 1: the rule asks for 3, then drops one
        env.tick("web")
    runtime = env.loop.runtime("web")
    assert runtime is not None
    record = runtime.decisions[vm.name]
    assert (record["desired"], record["nodes_to_drop"], record["error"]) == (2, ["vms-3"], None)


def test_a_container_only_app_without_queries_alerts_or_constants_scales(
        env: ControllerEnv) -> None:
    """Such a policy has no `data` section in MiCADO's policy file, and MiCADO's Policy Keeper
    wrote policy['data'][...] unguarded before each container rule (KeyError every tick)."""
    text = adt([], [("web", rule(text="m_container_count = 3"))])
    env.manager.submit(text, app_id="web")
    env.tick("web")
    assert env.replicas("web") == 3
