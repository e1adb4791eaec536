"""The reconciliation decision (micado.control.node_reconcile.decide): given the cloud's VMs, the
Kubernetes Nodes and the store's groups and operations, what to resume, resize, remove,
replace and report."""

from __future__ import annotations

from micado.control.node_reconcile import (
    CloudVM,
    GroupView,
    Inputs,
    KubeNode,
    PendingOp,
    decide,
    track_nodeless,
)

NOW = 10_000.0


def vm(name: str, app: str = "shop", group: str = "worker") -> CloudVM:
    return CloudVM(name=name, id=f"i-{name}", state="running", app=app, group=group)


def group(target: int | None = 2, *, known: tuple[str, ...] | None = ("a", "b"),
          removing: bool = False, app: str = "shop", name: str = "worker",
          timeout: float = 600.0, active: bool = True) -> GroupView:
    return GroupView(app_id=app, group=name, removing=removing, target=target, busy=False,
                     known_vms=known, unreachable_timeout=timeout, active=active)


def node(name: str, *, ready: bool = True, since: float | None = None,
         app: str | None = "shop", grp: str | None = "worker") -> KubeNode:
    return KubeNode(name=name, app=app, group=grp, ready=ready, not_ready_since=since)


def kinds(actions: list) -> list[tuple[str, str | None]]:
    return [(a.kind, a.group) for a in actions]


def test_a_group_as_recorded_needs_nothing() -> None:
    actions = decide(Inputs(NOW, [group()], [], [node("a"), node("b")], [vm("a"), vm("b")]))
    assert actions == []


def test_an_operation_no_run_holds_is_resumed_and_its_group_left_to_it() -> None:
    pending = [PendingOp(7, "shop", "worker", held=False), PendingOp(8, "shop", "db", held=True)]
    actions = decide(Inputs(NOW, [group()], pending, [], [vm("a")]))
    assert [(a.kind, a.op_id) for a in actions if a.kind != "adopt"] == [("resume", 7)]


def test_vms_found_in_the_cloud_are_adopted_and_the_group_resized_to_its_target() -> None:
    actions = decide(Inputs(NOW, [group(2, known=("a",))], [], [],
                            [vm("a"), vm("b"), vm("c")]))
    assert kinds(actions) == [("adopt", "worker"), ("converge", "worker")]
    adopt, converge = actions
    assert [v.name for v in adopt.vms] == ["a", "b", "c"]
    assert "found b, c" in adopt.message
    assert converge.desired == 2 and "3 VMs in the cloud, 2 wanted" in converge.message


def test_a_vm_gone_outside_the_controller_is_made_again() -> None:
    actions = decide(Inputs(NOW, [group(2)], [], [], [vm("a")]))
    assert kinds(actions) == [("adopt", "worker"), ("converge", "worker")]
    assert "gone b" in actions[0].message and actions[1].desired == 2


def test_a_paused_app_or_a_group_without_operation_is_not_resized() -> None:
    assert kinds(decide(Inputs(NOW, [group(2, active=False)], [], [], [vm("a"), vm("b"),
                                                                      vm("c")]))) == [
        ("adopt", "worker")]
    assert kinds(decide(Inputs(NOW, [group(None, known=())], [], [], []))) == []


def test_the_vms_of_a_deleted_app_are_removed_then_its_group_forgotten() -> None:
    removing = group(2, removing=True)
    actions = decide(Inputs(NOW, [removing], [], [], [vm("a"), vm("b")]))
    assert kinds(actions) == [("remove", "worker")]
    assert actions[0].desired == 0 and [v.name for v in actions[0].vms] == ["a", "b"]
    assert kinds(decide(Inputs(NOW, [removing], [], [], []))) == [("forget", "worker")]
    # listing not done in this pass: nothing is forgotten on no evidence
    assert decide(Inputs(NOW, [removing], [], [], None)) == []


def test_vms_of_a_group_this_controller_never_made_are_only_reported() -> None:
    actions = decide(Inputs(NOW, [], [], [], [vm("x", app="other", group="g")]))
    assert kinds(actions) == [("report", None)]
    assert "left alone: x" in actions[0].message and actions[0].key


def test_a_group_node_notready_past_the_timeout_is_replaced() -> None:
    nodes = [node("a"), node("b", ready=False, since=NOW - 601)]
    actions = decide(Inputs(NOW, [group(2)], [], nodes, [vm("a"), vm("b")]))
    assert kinds(actions) == [("replace", "worker")]
    assert actions[0].nodes == ("b",) and actions[0].desired == 2
    # not yet past it, or a shorter timeout from the policy
    assert decide(Inputs(NOW, [group(2)], [], [node("a"), node("b", ready=False,
                                                            since=NOW - 599)], None)) == []
    short = decide(Inputs(NOW, [group(2, timeout=30)], [],
                          [node("b", ready=False, since=NOW - 31)], None))
    assert kinds(short) == [("replace", "worker")]


def test_a_replacement_waits_for_the_operation_in_flight() -> None:
    nodes = [node("b", ready=False, since=NOW - 9999)]
    pending = [PendingOp(3, "shop", "worker", held=True)]
    assert decide(Inputs(NOW, [group(2)], pending, nodes, None)) == []


def test_a_vm_without_a_node_is_timed_from_the_first_pass_that_sees_it_so() -> None:
    first = Inputs(NOW, [group(2)], [], [node("a")], [vm("a"), vm("b")])
    assert track_nodeless({}, first) == {"b": NOW}
    # still without: keeps its time; joined or gone: drops out
    later = Inputs(NOW + 50, [group(2)], [], [node("a")], [vm("a"), vm("b")])
    assert track_nodeless({"b": NOW}, later) == {"b": NOW}
    assert track_nodeless({"b": NOW}, Inputs(NOW + 50, [group(2)], [], [node("a"), node("b")],
                                             [vm("a"), vm("b")])) == {}
    assert track_nodeless({"b": NOW}, Inputs(NOW + 50, [group(2)], [], [node("a")],
                                             [vm("a")])) == {}
    # no listing or no Nodes in this pass: no evidence, the memory stays as it is
    assert track_nodeless({"b": NOW}, Inputs(NOW + 50, [group(2)], [], None, [vm("a")])) == {
        "b": NOW}
    assert track_nodeless({"b": NOW}, Inputs(NOW + 50, [group(2)], [], [node("a")], None)) == {
        "b": NOW}
    # a VM being made has no Node yet, rightly; a paused app's or a removed group's are left
    busy = [PendingOp(3, "shop", "worker", held=True)]
    assert track_nodeless({"b": NOW}, Inputs(NOW + 50, [group(2)], busy, [node("a")],
                                             [vm("a"), vm("b")])) == {}
    for view in (group(2, active=False), group(2, removing=True), group(None)):
        assert track_nodeless({}, Inputs(NOW, [view], [], [], [vm("b")])) == {}


def test_a_group_vm_without_a_node_past_the_timeout_is_replaced() -> None:
    def replaced(since: float, nodes: list[KubeNode]) -> list:
        return decide(Inputs(NOW, [group(2)], [], nodes, [vm("a"), vm("b")],
                             nodeless_since={"b": since}))
    assert replaced(NOW - 599, [node("a")]) == []
    [action] = replaced(NOW - 601, [node("a")])
    assert (action.kind, action.nodes, action.desired) == ("replace", ("b",), 2)
    assert "b without a Node for more than 600 s" in action.message
    # with a NotReady one of the same group: one replacement of both
    [both] = replaced(NOW - 601, [node("a", ready=False, since=NOW - 700)])
    assert both.nodes == ("a", "b")
    assert "a NotReady; b without a Node" in both.message
    # not while an operation is in flight, nor without a listing of the cloud in this pass
    assert decide(Inputs(NOW, [group(2)], [PendingOp(3, "shop", "worker", held=True)],
                         [node("a")], [vm("a"), vm("b")], nodeless_since={"b": 0.0})) == []
    assert decide(Inputs(NOW, [group(2)], [], [node("a")], None,
                         nodeless_since={"b": 0.0})) == []


def test_static_workers_and_edges_are_reported_never_replaced() -> None:
    nodes = [node("edge-1", ready=False, since=NOW - 9999, app=None, grp=None),
             node("hand", ready=False, since=NOW - 9999, app="gone", grp="worker")]
    actions = decide(Inputs(NOW, [group(2)], [], nodes, None))
    assert kinds(actions) == [("report", None), ("report", "worker")]
    assert "static worker or edge node" in actions[0].message
    assert "never deleted" in actions[1].message
    # the same NotReady spell gives the same key (reported once), a new spell a new one
    again = decide(Inputs(NOW + 60, [group(2)], [], nodes, None))
    assert [a.key for a in again] == [a.key for a in actions]
