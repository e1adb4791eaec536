"""What VM reconciliation should do, given what the cloud, Kubernetes and the store say: pure,
no I/O (`micado.control.node_reconciler` gathers the inputs and carries the actions out).

Why each rule:
- an operation pending in the store and held by no run was in flight when a controller died:
  it is resumed (the playbook makes the group the size the operation asked, so running it
  again never duplicates a VM; a VM started before the crash is found by its tags);
- a known group whose VMs differ from the size its latest operation asked, with nothing in
  flight, is brought back to that size (a VM terminated outside the controller, or one left
  over by an interrupted scale-in): the VMs found are adopted, the surplus removed;
- a group of a deleted app (or one that left its app) is `removing`: its VMs are removed through
  the same playbook (drained first), and the group forgotten once the cloud shows none;
- a VM tagged for an app and group this controller never made is only reported: another
  controller may share the cloud account, and deleting what is not ours is worse than a leak;
- a group Node NotReady longer than its policy's `node_unreachable_timeout` is replaced
  (drained, deleted, a new VM made); so is a group VM without a Node for that long, with no
  operation in flight (its Node deleted, or its kubelet never registered again: Cluster
  Autoscaler's "unregistered node"), timed from the first pass that saw it so
  (`track_nodeless`); Nodes of no group (static workers, edges) are never touched, only
  reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_UNREACHABLE_TIMEOUT = 600.0
GroupKey = tuple[str, str]


@dataclass(frozen=True)
class CloudVM:
    """A VM the list run reported: its tags say whose it is."""

    name: str
    id: str
    state: str
    app: str
    group: str
    address: str = ""

    def shown(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "address": self.address, "state": self.state}


@dataclass(frozen=True)
class KubeNode:
    """A Kubernetes Node: its group labels (None: not a group's) and since when NotReady."""

    name: str
    app: str | None
    group: str | None
    ready: bool
    not_ready_since: float | None = None  # the Ready condition's lastTransitionTime


@dataclass(frozen=True)
class GroupView:
    """A node group the store knows: the size its latest operation asked (None: none yet)."""

    app_id: str
    group: str
    removing: bool
    target: int | None
    busy: bool  # an operation is pending (running, queued or to be resumed)
    known_vms: tuple[str, ...] | None  # VM names the store last recorded
    unreachable_timeout: float = DEFAULT_UNREACHABLE_TIMEOUT
    active: bool = True  # its app runs (a paused app's group is left as it is)


@dataclass(frozen=True)
class PendingOp:
    op_id: int
    app_id: str
    group: str
    held: bool  # a run of this controller has it (running, queued, backing off)


@dataclass(frozen=True)
class Inputs:
    now: float
    groups: list[GroupView]
    pending: list[PendingOp]
    nodes: list[KubeNode] | None  # None: Kubernetes could not be read
    vms: list[CloudVM] | None  # None: the cloud was not listed in this pass
    # VM name -> since when it has been seen without a Node (track_nodeless)
    nodeless_since: dict[str, float] = field(default_factory=dict)


Kind = Literal["resume", "converge", "remove", "forget", "replace", "adopt", "report"]


@dataclass(frozen=True)
class Action:
    kind: Kind
    app_id: str | None
    group: str | None
    message: str
    op_id: int | None = None
    desired: int | None = None
    nodes: tuple[str, ...] = ()
    vms: tuple[CloudVM, ...] = ()
    key: str = ""  # for reports: the same key is reported once
    data: dict[str, Any] = field(default_factory=dict)


def decide(inputs: Inputs) -> list[Action]:
    """The actions of one reconciliation pass, in the order they should be carried out."""
    actions: list[Action] = []
    groups = {(g.app_id, g.group): g for g in inputs.groups}
    for op in inputs.pending:
        if not op.held:
            actions.append(Action("resume", op.app_id, op.group,
                                  f"node group {op.group}: operation {op.op_id} was in flight "
                                  "when the controller stopped: resumed", op_id=op.op_id))
    busy = {(op.app_id, op.group) for op in inputs.pending}
    healing = _node_actions(inputs, groups, busy) if inputs.nodes is not None else []
    replaced = {(a.app_id, a.group) for a in healing if a.kind == "replace"}
    if inputs.vms is not None:  # a group being healed is resized by its replacement
        actions += _cloud_actions(inputs.vms, groups, busy | replaced)
    return actions + healing


def track_nodeless(previous: dict[str, float], inputs: Inputs) -> dict[str, float]:
    """VM name -> since when it has had no Node, for the VMs of running groups with nothing in
    flight (a VM being made has no Node yet, rightly): a VM still without one keeps the time
    it was first seen so, a new one starts at `inputs.now`; the others drop out."""
    if inputs.vms is None or inputs.nodes is None:
        return dict(previous)  # no evidence in this pass: nothing starts, nothing ends
    nodes = {n.name for n in inputs.nodes}
    busy = {(op.app_id, op.group) for op in inputs.pending}
    watched = {(g.app_id, g.group) for g in inputs.groups
               if g.active and not g.removing and g.target is not None}
    return {vm.name: previous.get(vm.name, inputs.now) for vm in inputs.vms
            if (vm.app, vm.group) in watched - busy and vm.name not in nodes}


def _cloud_actions(vms: list[CloudVM], groups: dict[GroupKey, GroupView],
                   busy: set[GroupKey]) -> list[Action]:
    actions: list[Action] = []
    by_group: dict[GroupKey, list[CloudVM]] = {}
    for vm in vms:
        by_group.setdefault((vm.app, vm.group), []).append(vm)
    for key, found in sorted(by_group.items()):
        if key not in groups:
            names = ", ".join(sorted(v.name for v in found))
            actions.append(Action(
                "report", key[0], None,
                f"VMs tagged micado.eu/app={key[0]}, micado.eu/group={key[1]} belong to no "
                f"node group this controller made; left alone: {names}",
                key=f"foreign:{key[0]}:{key[1]}:{names}"))
    for key, view in sorted(groups.items()):
        found = sorted(by_group.get(key, []), key=lambda v: v.name)
        names = tuple(v.name for v in found)
        if view.removing:
            if not found:
                actions.append(Action("forget", *key, f"node group {key[1]}: its VMs are gone"))
            elif key not in busy:
                actions.append(Action(
                    "remove", *key, f"node group {key[1]} of a deleted app (or one that left "
                    f"it): removing its VMs {', '.join(names)}", desired=0, vms=tuple(found)))
            continue
        if view.known_vms is None or set(view.known_vms) != set(names):
            new = sorted(set(names) - set(view.known_vms or ()))
            gone = sorted(set(view.known_vms or ()) - set(names))
            what = "; ".join(p for p in (f"found {', '.join(new)}" if new else "",
                                         f"gone {', '.join(gone)}" if gone else "") if p)
            actions.append(Action("adopt", *key, f"node group {key[1]}: the cloud has "
                                  f"{len(found)} VMs ({what or 'as recorded'})",
                                  vms=tuple(found)))
        if view.active and view.target is not None and key not in busy \
                and len(found) != view.target:
            actions.append(Action(
                "converge", *key, f"node group {key[1]}: {len(found)} VMs in the cloud, "
                f"{view.target} wanted: resized to {view.target}", desired=view.target))
    return actions


def _node_actions(inputs: Inputs, groups: dict[GroupKey, GroupView],
                  busy: set[GroupKey]) -> list[Action]:
    actions: list[Action] = []
    assert inputs.nodes is not None
    unready: dict[GroupKey, list[str]] = {}
    for node in sorted(inputs.nodes, key=lambda n: n.name):
        if node.ready:
            continue
        since = node.not_ready_since
        down = 0.0 if since is None else max(0.0, inputs.now - since)
        view = groups.get((node.app or "", node.group or ""))
        if view is None or view.removing:
            owner = "a static worker or edge node" if node.app is None else \
                f"labelled for app {node.app}, which has no such node group"
            actions.append(Action("report", node.app, node.group,
                                  f"Node {node.name} ({owner}) is NotReady; it is never "
                                  "deleted by the controller, only reported",
                                  key=f"notready:{node.name}:{since}"))
            continue
        if view.active and down > view.unreachable_timeout:
            unready.setdefault((view.app_id, view.group), []).append(node.name)
    nodeless: dict[GroupKey, list[str]] = {}
    for vm in sorted(inputs.vms or [], key=lambda v: v.name):
        view = groups.get((vm.app, vm.group))
        since = inputs.nodeless_since.get(vm.name)
        if view is not None and view.active and not view.removing and since is not None \
                and inputs.now - since > view.unreachable_timeout:
            nodeless.setdefault((vm.app, vm.group), []).append(vm.name)
    for key in sorted(unready.keys() | nodeless.keys()):
        view = groups[key]
        if key in busy or view.target is None:
            continue
        down, missing = unready.get(key, []), nodeless.get(key, [])
        why = "; ".join(part for part in (
            f"{', '.join(down)} NotReady" if down else "",
            f"{', '.join(missing)} without a Node" if missing else "") if part)
        actions.append(Action(
            "replace", *key, f"node group {key[1]}: {why} for more than "
            f"{view.unreachable_timeout:g} s: drained, deleted and replaced",
            desired=view.target, nodes=tuple(down + missing)))
    return actions
