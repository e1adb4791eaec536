"""VM reconciliation, the I/O side: reads the cloud (the playbook's list mode), the Kubernetes
Nodes and the store, asks `micado.control.node_reconcile.decide` what to do, and does it through the
node actuator and the store; every action becomes a `reconcile` event (`micado events`).

A pass without the cloud (Kubernetes and the store only: resuming operations, replacing
NotReady Nodes) runs every few seconds; the cloud is listed at start and then every
`nodes.reconcile_seconds`. The cloud is listed before the store is read, so an operation that
starts while the listing runs is seen as in flight, never second-guessed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from micado.actuators.kubernetes import Cluster
from micado.actuators.node_runner import AnsibleNodeActuator, group_from_spec, location
from micado.adt.model import plan_from_dict
from micado.control.loop import ControlLoop, operation_seq
from micado.control.node_reconcile import (
    DEFAULT_UNREACHABLE_TIMEOUT,
    Action,
    CloudVM,
    GroupView,
    Inputs,
    KubeNode,
    PendingOp,
    decide,
    track_nodeless,
)
from micado.control.store import Store

log = logging.getLogger("micado.reconcile")
APP_LABEL = "micado.eu/app"
GROUP_LABEL = "micado.eu/node_type"


class NodeReconciler:
    """One pass at a time (`run` is called from a worker thread)."""

    def __init__(self, store: Store, cluster: Cluster, actuator: AnsibleNodeActuator,
                 loop: ControlLoop, *, cloud_every: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.cluster = cluster
        self.actuator = actuator
        self.loop = loop
        self.cloud_every = cloud_every
        self.clock = clock
        self._listed_at = -float("inf")
        self._reported: set[str] = set()
        self._nodeless: dict[str, float] = {}  # track_nodeless's memory: this process's view
        self._lock = threading.Lock()

    def run(self, cloud: bool | None = None) -> list[Action]:
        """One pass; the cloud is listed when `cloud`, or when it is due (None)."""
        with self._lock:
            now = self.clock()
            vms = None
            if cloud or (cloud is None and now - self._listed_at >= self.cloud_every):
                vms = self._list_cloud()
                if vms is not None:
                    self._listed_at = now
            inputs = Inputs(now=self.clock(), groups=self._groups(), pending=self._pending(),
                            nodes=self._nodes(), vms=vms)
            self._nodeless = track_nodeless(self._nodeless, inputs)
            inputs = replace(inputs, nodeless_since=dict(self._nodeless))
            actions = decide(inputs)
            for action in actions:
                try:
                    self._apply(action, inputs)
                except Exception:  # one action failing never stops the others
                    log.exception("reconciliation: %s failed", action.kind)
            return actions

    # ------------------------------------------------------------------ inputs
    def _list_cloud(self) -> list[CloudVM] | None:
        """Every MiCADO VM in every place a known group lives; None if one cannot be read
        (nothing is decided about the cloud on half the evidence)."""
        places = {}
        for record in self.store.node_groups():
            spec = group_from_spec(record.app_id, record.spec)
            if spec is not None:
                places.setdefault(location(spec), spec)
        found: list[CloudVM] = []
        for where, spec in sorted(places.items()):
            try:
                listed = self.actuator.list_vms(spec)
            except Exception as exc:
                self._report(None, f"reconcile: {exc}", f"list:{where}:{exc}")
                return None
            found += [CloudVM(name=str(v.get("name") or v.get("id")), id=str(v.get("id")),
                              state=str(v.get("state")), app=str(v.get("app")),
                              group=str(v.get("group")), address=str(v.get("address") or ""))
                      for v in listed]
        return found

    def _groups(self) -> list[GroupView]:
        apps = {a.app_id: a for a in self.store.list_apps()}
        views = []
        for record in self.store.node_groups():
            app = apps.get(record.app_id)
            target, timeout = None, DEFAULT_UNREACHABLE_TIMEOUT
            if app is not None and not record.removing:
                latest = self.store.latest_operations(app.app_id).get(record.group)
                target = latest.desired if latest is not None else None
                for policy in plan_from_dict(app.plan).policies:
                    if policy.target == record.group and policy.target_kind == "node_group":
                        timeout = float(policy.options.get("node_unreachable_timeout", timeout))
            views.append(GroupView(
                app_id=record.app_id, group=record.group, removing=record.removing,
                target=target, busy=False,
                known_vms=None if record.vms is None else tuple(
                    str(v.get("name")) for v in record.vms),
                unreachable_timeout=timeout,
                active=app is not None and app.status == "running"))
        return views

    def _pending(self) -> list[PendingOp]:
        held = self.actuator.held_operations()
        return [PendingOp(op.op_id, op.app_id, op.group, op.op_id in held)
                for op in self.store.pending_operations()]

    def _nodes(self) -> list[KubeNode] | None:
        try:
            items = self.cluster.nodes()
        except Exception as exc:
            log.warning("reconciliation: the Kubernetes Nodes cannot be read: %s", exc)
            return None
        return [_kube_node(item) for item in items]

    # ------------------------------------------------------------------ actions
    def _apply(self, action: Action, inputs: Inputs) -> None:
        app_id, group = action.app_id, action.group
        if action.kind == "report":
            self._report(app_id, f"reconcile: {action.message}", action.key)
            return
        assert app_id is not None and group is not None
        if action.kind == "adopt":
            self.store.save_group_vms(app_id, group, [vm.shown() for vm in action.vms])
        elif action.kind == "forget":
            if not self.store.forget_node_group(app_id, group):
                return
        elif action.kind == "remove":
            record = self._record(app_id, group)
            spec = None if record is None else group_from_spec(app_id, record.spec)
            if spec is None:
                return
            self.actuator.remove_group(app_id, group, spec)
        elif action.kind == "resume":  # the actuator records it (it resumes on its own too)
            op = self.store.get_operation(action.op_id or 0)
            if op is not None and op.pending:
                self.actuator.resume(op)
            return
        op_id = action.op_id
        if action.kind in ("converge", "replace"):
            op_id = self._resize(app_id, group, action)
            if op_id is None:
                return
        self.store.add_event(app_id, "reconcile", f"reconcile: {action.message}"
                             + (f" (operation {op_id})" if action.kind != "resume" and op_id
                                else ""),
                             {"target": group, "action": action.kind,
                              "nodes": list(action.nodes) or None, "op_id": op_id})

    def _resize(self, app_id: str, group: str, action: Action) -> int | None:
        """Record an operation toward the group's size (replacing `action.nodes`) and run it."""
        record = self._record(app_id, group)
        spec = None if record is None else group_from_spec(app_id, record.spec)
        if spec is None or action.desired is None:
            return None
        latest = self.store.latest_operations(app_id).get(group)
        if latest is not None and latest.pending:
            return None  # an operation started meanwhile: it decides
        try:
            op_id = self.loop.record_operation(app_id, group, "resize", action.desired,
                                               operation_seq(latest) + 1)
        except ValueError as exc:  # a tick recorded one at the same moment: next pass
            log.info("reconciliation of %s/%s deferred: %s", app_id, group, exc)
            return None
        op = self.store.get_operation(op_id)
        if op is None or not op.pending:
            return None
        self.actuator.start(op, spec, [], replace=action.nodes)
        return op_id

    def _record(self, app_id: str, group: str) -> Any:
        return next((r for r in self.store.node_groups(app_id) if r.group == group), None)

    def _report(self, app_id: str | None, message: str, key: str) -> None:
        """An event once per key (a report repeated every pass would drown the log)."""
        if key in self._reported:
            return
        self._reported.add(key)
        self.store.add_event(app_id, "reconcile", message)


def _kube_node(item: dict[str, Any]) -> KubeNode:
    meta = item.get("metadata") or {}
    labels = meta.get("labels") or {}
    ready, since = False, None
    for condition in (item.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
            since = _timestamp(condition.get("lastTransitionTime"))
    app, group = labels.get(APP_LABEL), labels.get(GROUP_LABEL)
    return KubeNode(name=str(meta.get("name")), app=app if group else None,
                    group=group if app else None, ready=ready,
                    not_ready_since=None if ready else since)


def _timestamp(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
