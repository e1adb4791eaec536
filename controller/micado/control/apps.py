"""App lifecycle: submit, update, delete, pause, resume, dry run; and what the API reads.

Every method is synchronous and thread-safe (the REST API calls them from its thread pool) and
returns JSON-ready dicts. Order matters for "nothing half-applied, nothing lost":

* submit: compile and check everything first (ADT, alert rules with promtool, scrape targets);
  then store the app as `submitted` (the durable intent), apply the manifests, write the rule
  and target files, record the node groups at their minimum, and mark it `running`. A failure
  after the store write rolls back what was applied and forgets the app. A crash leaves it
  `submitted`, and `reconcile()` finishes the job at the next start.
* update: the same, with the old app restored (and its manifests re-applied) when the new one
  cannot be applied; objects that left the ADT are pruned by the instance label.
* delete: mark `deleting`, delete the objects, files and node groups, then forget the app; a
  failure leaves it `deleting` with the reason, and `reconcile()` retries.

Ownership: every Kubernetes object belongs to one app. The store write that records a submit
or an update also claims the app's objects (kind, namespace, name) in the same transaction, so
of several apps submitted at once with the same object only one gets it; the others are refused
before anything is applied. The apply then checks each live object's instance label (the
claim is the lock, the label the truth on the cluster) and deletes only touch objects that
still carry the app's label.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from micado.actuators.kubernetes import Cluster, ClusterError, ObjectOwned, apply_rank, drift_view
from micado.actuators.nodes import NodeActuator
from micado.adt import AdtError, CompiledApp, compile_adt
from micado.adt.errors import Problem, format_path
from micado.adt.k8s.labels import INSTANCE
from micado.adt.model import Plan, plan_from_dict
from micado.control.dryrun import offline_summary
from micado.control.loop import OK, ControlLoop, operation_seq, scaled_objects
from micado.control.store import App, ObjectClaimed, ObjectKey, Store
from micado.sources.prometheus import PrometheusSource, RuleFileError, RuleFiles, ScrapeTargets

log = logging.getLogger(__name__)

MIN_TICK = 0.5
MAX_TICK = 3600.0
MAX_PARAMS = 200
_APP_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TARGET = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+:[0-9]{1,5}$")


class AppError(Exception):
    """A lifecycle request that cannot be done; `message` is for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AppNotFound(AppError):
    pass


class AppExists(AppError):
    pass


class InvalidRequest(AppError):
    pass


class ActuatorFailed(AppError):
    """Kubernetes or Prometheus refused or could not be reached; nothing was left applied."""


class InvalidAdt(AppError):
    def __init__(self, message: str, errors: list[dict[str, str]],
                 warnings: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors
        self.warnings = warnings or []


def _problem(problem: Problem) -> dict[str, str]:
    return {"path": format_path(problem.path), "message": problem.message}


class AppManager:
    def __init__(self, store: Store, cluster: Cluster, prometheus: PrometheusSource,
                 rule_files: RuleFiles, scrape_targets: ScrapeTargets, nodes: NodeActuator,
                 loop: ControlLoop, *, default_tick: float = 15.0) -> None:
        self.store = store
        self.cluster = cluster
        self.prometheus = prometheus
        self.rule_files = rule_files
        self.scrape_targets = scrape_targets
        self.nodes = nodes
        self.loop = loop
        self.default_tick = default_tick
        self._claimed: set[str] = set()  # running apps whose objects are known to be claimed

    # ------------------------------------------------------------------ requests
    def submit(self, adt_text: str, *, params: dict[str, Any] | None = None,
               app_id: str | None = None, tick_seconds: float | None = None,
               dry_run: bool = False, base_dir: Path | None = None) -> dict[str, Any]:
        """A new app: compiled, applied, its policies started (or, dry run, only shown)."""
        if app_id is None:
            app_id = _new_app_id(self.store)
        _check_app_id(app_id)
        tick = _check_tick(tick_seconds)
        with self._app_lock(app_id):
            if self.store.get_app(app_id) is not None:
                raise AppExists(f"app {app_id!r} already exists: update it (PUT) or stop it "
                                "first")
            compiled = self._compile(adt_text, params, app_id, base_dir)
            if dry_run:
                return self._dry_run(compiled, "dry-run", tick)
            changes = self._changes(compiled)
            self._put(app_id, adt_text, params, compiled, tick)
            try:
                changes = self._deploy(compiled, changes)
            except (ActuatorFailed, AppExists):
                self._undeploy_quietly(app_id)
                self.store.delete_app(app_id)  # releases its claims
                raise
            self._create_node_groups(app_id, compiled, previous=None)
            self.store.set_app_status(app_id, "running")
            self.store.add_event(app_id, "submitted",
                                 f"app {app_id} deployed: {len(compiled.manifests)} objects, "
                                 f"{len(compiled.plan.policies)} policies")
        self.loop.wake()
        return self._summary(compiled, "running", False, changes, tick)

    def update(self, app_id: str, adt_text: str, *, params: dict[str, Any] | None = None,
               tick_seconds: float | None = None, dry_run: bool = False,
               base_dir: Path | None = None) -> dict[str, Any]:
        """Apply a new version of an app: the difference, and prune what left the ADT."""
        tick = _check_tick(tick_seconds)
        with self._app_lock(app_id):
            old = self._get(app_id)
            if old.status == "deleting":
                raise InvalidRequest(f"app {app_id!r} is being deleted")
            compiled = self._compile(adt_text, params, app_id, base_dir)
            if tick is None:
                tick = old.tick_seconds
            if dry_run:
                return self._dry_run(compiled, old.status, tick)
            changes = self._changes(compiled)
            status = "paused" if old.status == "paused" else "running"
            self._put(app_id, adt_text, params, compiled, tick)
            try:
                changes = self._deploy(compiled, changes)
            except (ActuatorFailed, AppExists) as failure:
                self._restore(old)
                raise type(failure)(f"{failure.message}; the previous version was kept") \
                    from None
            self._create_node_groups(app_id, compiled, previous=old)
            self.store.delete_targets(app_id, {p.name for p in compiled.plan.policies})
            self.store.set_app_status(app_id, status)
            self.store.add_event(app_id, "updated", f"app {app_id} updated: " + _count(changes))
        self.loop.wake()
        return self._summary(compiled, status, False, changes, tick)

    def delete(self, app_id: str) -> dict[str, Any]:
        """Stop the policies, delete the app's objects and node groups, forget the app."""
        with self._app_lock(app_id):
            app = self._get(app_id)
            if app.status != "deleting":
                self.store.set_app_status(app_id, "deleting")
                self.store.add_event(app_id, "deleting", f"deleting app {app_id}")
            return self._finish_delete(app)

    def pause(self, app_id: str) -> dict[str, Any]:
        """Stop deciding (the app keeps running at its current size)."""
        return self._set_running(app_id, "paused")

    def resume(self, app_id: str) -> dict[str, Any]:
        return self._set_running(app_id, "running")

    def reconcile(self) -> None:
        """Finish what a crash or a failure interrupted: submissions and deletions; and claim
        the objects of apps stored before object claims existed."""
        for app in self.store.list_apps():
            if app.status not in ("submitted", "deleting") and app.app_id in self._claimed:
                continue
            try:
                with self._app_lock(app.app_id):
                    current = self.store.get_app(app.app_id)
                    if current is None:
                        continue
                    if current.status == "deleting":
                        self._finish_delete(current)
                    elif current.status == "submitted":
                        self._finish_submit(current)
                    else:
                        self._claim_existing(current)
            except AppError as exc:
                log.warning("reconciling app %s: %s", app.app_id, exc.message)

    # ------------------------------------------------------------------ reads
    def list_apps(self) -> list[dict[str, Any]]:
        return [self._app_summary(app) for app in self.store.list_apps()]

    def get_app(self, app_id: str) -> dict[str, Any]:
        app = self._get(app_id)
        return {**self._app_summary(app), "adt": app.adt_source, "params": app.params,
                "plan": app.plan}

    def status(self, app_id: str) -> dict[str, Any]:
        app = self._get(app_id)
        runtime = self.loop.runtime(app_id)
        drift: list[dict[str, Any]] = []
        if runtime is not None:
            decisions = dict(runtime.decisions)
            inputs = dict(runtime.inputs)
            last_tick = runtime.last_tick_at
            drift = sorted(runtime.drift.values(), key=lambda d: d["at"])
            alert_errors = dict(runtime.alert_errors)
        else:
            decisions = {n: r.last_decision for n, r in self.store.load_targets(app_id).items()}
            inputs, last_tick, alert_errors = {}, None, {}
        targets = []
        for policy in app.plan.get("policies", []):
            record = decisions.get(policy["name"]) or {}
            targets.append({
                "target": policy["target"], "kind": policy["target_kind"],
                "policy": policy["name"], "current": record.get("current"),
                "desired": record.get("desired"), "min": policy["min_instances"],
                "max": policy["max_instances"], "last_decision_at": record.get("at"),
                "reason": record.get("reason") or "not decided yet",
                "error": record.get("error"), "dry_run": bool(record.get("dry_run")),
            })
        pending = [{"op_id": op.op_id, "group": op.group, "kind": op.kind,
                    "desired": op.desired, "started_at": op.started_at,
                    "why_pending": self.nodes.describe(op)}
                   for op in self.store.pending_operations(app_id)]
        return {**self._app_summary(app), "last_tick_at": last_tick, "inputs": inputs,
                "alert_errors": alert_errors, "targets": targets,
                "pending_operations": pending, "node_groups": self.nodes.groups(app_id),
                "drift": drift}

    def events(self, app_id: str | None = None, since_id: int | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000")
        return [{"id": e.event_id, "app_id": e.app_id, "ts": e.ts, "kind": e.kind,
                 "message": e.message, "data": e.data}
                for e in self.store.events(app_id, since_id, limit)]

    # ------------------------------------------------------------------ steps
    @contextmanager
    def _app_lock(self, app_id: str) -> Iterator[None]:
        """One request per app at a time; the loop's drift repair takes the same lock."""
        with self.loop.app_lock(app_id):
            yield

    def _put(self, app_id: str, adt_text: str, params: dict[str, Any] | None,
             compiled: CompiledApp, tick: float | None) -> None:
        """Store the app as `submitted` and claim its objects, in one transaction."""
        try:
            keys = [self.cluster.object_key(m) for m in compiled.manifests]
        except ClusterError as exc:
            raise ActuatorFailed(f"cannot read the cluster: {exc}") from None
        try:
            self.store.put_app(app_id, adt_text, dict(params or {}), compiled.plan.to_dict(),
                               status="submitted", tick_seconds=tick, claim=keys)
        except ObjectClaimed as exc:
            raise AppExists("; ".join(
                f"{kind} {namespace + '/' if namespace else ''}{name} belongs to app "
                f"{owner!r}" for (kind, namespace, name), owner in sorted(exc.owners.items()))
                + ": rename the node or use another namespace") from None

    def _get(self, app_id: str) -> App:
        app = self.store.get_app(app_id)
        if app is None:
            raise AppNotFound(f"no app {app_id!r}")
        return app

    def _compile(self, adt_text: str, params: dict[str, Any] | None, app_id: str,
                 base_dir: Path | None) -> CompiledApp:
        """Everything that can be checked before touching anything."""
        params = _check_params(params)
        try:
            compiled = compile_adt(adt_text, params=params, app_id=app_id, base_dir=base_dir)
        except AdtError as exc:
            count = len(exc.errors)
            raise InvalidAdt(f"the ADT has {count} error{'s' if count != 1 else ''}",
                             [_problem(p) for p in exc.errors],
                             [_problem(p) for p in exc.warnings]) from None
        warnings = [_problem(p) for p in compiled.warnings]
        try:
            self.rule_files.check(app_id, self.rule_files.render(app_id,
                                                                 compiled.plan.shared.alerts))
        except RuleFileError as exc:
            raise InvalidAdt("the ADT's alerts would be rejected by Prometheus",
                             [{"path": "topology_template.policies", "message": str(exc)}],
                             warnings) from None
        bad = [s for s in compiled.plan.shared.sources if not _TARGET.match(str(s))]
        if bad:
            raise InvalidAdt("the ADT's scrape sources are not host:port",
                             [{"path": "topology_template.policies",
                               "message": f"sources: {s!r} is not host:port"} for s in bad],
                             warnings)
        return compiled

    def _changes(self, compiled: CompiledApp) -> list[dict[str, str]]:
        """What applying the app would change; refuses to take over another app's objects."""
        try:
            changes = self.cluster.plan_changes(compiled.app_id, compiled.manifests)
        except ClusterError as exc:
            raise ActuatorFailed(f"cannot read the cluster: {exc}") from None
        for change in changes:  # claimed by an app still being submitted: not on the cluster yet
            owner = self.store.object_owner((change["kind"], change["namespace"],
                                             change["name"]))
            if change["action"] == "create" and owner not in (None, compiled.app_id):
                change.update(action="conflict", owner=owner)
        conflicts = [c for c in changes if c["action"] == "conflict"]
        if conflicts:
            raise AppExists("; ".join(
                f"{c['kind']} {c['namespace'] + '/' if c['namespace'] else ''}{c['name']} "
                "already exists and belongs to "
                + (f"app {c['owner']!r}" if c["owner"] else "no micado app")
                for c in conflicts) + ": rename the node or use another namespace")
        return changes

    def _dry_run(self, compiled: CompiledApp, status: str,
                 tick: float | None) -> dict[str, Any]:
        """The live diff; when the cluster cannot be read, what would be applied, and why
        there is no diff (a conflict with another app's object is still refused)."""
        try:
            changes = self._changes(compiled)
        except ActuatorFailed as exc:
            return {**offline_summary(compiled, f"{exc.message}; the live diff needs the "
                                                "cluster"),
                    "status": status, "tick_seconds": tick or self.default_tick}
        return {**self._summary(compiled, status, True, changes, tick), "live_diff": None}

    def _deploy(self, compiled: CompiledApp,
                changes: list[dict[str, str]]) -> list[dict[str, str]]:
        """Apply manifests (then prune), write the rule and target files, reload Prometheus."""
        app_id = compiled.app_id
        plan = compiled.plan
        manifests = _keep_scaled_replicas(compiled, changes)
        try:
            self._apply(app_id, plan, manifests)
        except ObjectOwned as exc:
            raise AppExists(f"{exc.message}: rename the node or use another namespace") \
                from None
        except ClusterError as exc:
            raise ActuatorFailed(f"Kubernetes refused the app: {exc}") from None
        try:
            if plan.shared.alerts:
                self.rule_files.write(app_id, plan.shared.alerts)
            else:
                self.rule_files.remove(app_id)
            if plan.shared.sources:
                self.scrape_targets.write(app_id, plan.shared.sources)
            else:
                self.scrape_targets.remove(app_id)
        except (OSError, RuleFileError, ValueError) as exc:
            raise ActuatorFailed(f"cannot write the Prometheus files: {exc}") from None
        if plan.shared.alerts and not RuleFiles.reload(self.prometheus.url):
            self.store.add_event(app_id, "warning",
                                 f"Prometheus at {self.prometheus.url} did not reload its "
                                 "rules; alerts start when it does")
        return [c for c in changes if c["action"] != "unchanged"]

    def _apply(self, app_id: str, plan: Plan, manifests: list[dict[str, Any]]) -> None:
        """Apply as the owner, remember what was applied (drift is measured against it),
        prune what left the app and release its claims."""
        applied = self.cluster.apply(manifests, owner=app_id, adopt=self._adoptable(app_id))
        scaled = scaled_objects(plan)
        records = []
        for manifest, live in zip(sorted(manifests, key=apply_rank), applied, strict=True):
            key = self.cluster.object_key(manifest)
            records.append((key, manifest, drift_view(live, manifest, key in scaled)))
        self.store.record_applied(app_id, records)
        self.cluster.prune(app_id, manifests)
        self.store.release_objects(app_id, [key for key, _, _ in records])

    def _claim_existing(self, app: App) -> None:
        """An app stored before object claims existed: claim its objects now, and take what
        is live and labelled as the app's as the baseline for drift (a missing one is
        re-created by the loop); objects another app owns stay theirs."""
        if not self.store.app_objects(app.app_id):
            try:
                compiled = compile_adt(app.adt_source, params=app.params, app_id=app.app_id)
                scaled = scaled_objects(compiled.plan)
                records = []
                for manifest in compiled.manifests:
                    key = self.cluster.object_key(manifest)
                    if self.store.object_owner(key) is not None:
                        continue
                    live = self.cluster.get_object(manifest)
                    label = ((live or {}).get("metadata") or {}).get("labels") or {}
                    if live is not None and label.get(INSTANCE) != app.app_id:
                        continue
                    expected = None if live is None else drift_view(live, manifest,
                                                                    key in scaled)
                    records.append((key, manifest, expected))
                self.store.claim_objects(app.app_id, [key for key, _, _ in records])
                self.store.record_applied(app.app_id, records)
                if records:  # a new version of the app: the loop reloads it with its objects
                    self.store.set_app_status(app.app_id, app.status, app.reason)
            except (AdtError, ClusterError, ObjectClaimed) as exc:
                log.warning("claiming the objects of app %s: %s", app.app_id, exc)
                return
        self._claimed.add(app.app_id)

    def _adoptable(self, app_id: str) -> Callable[[ObjectKey, str | None], bool]:
        """Whether the app may take back one of its objects whose instance label was changed
        by hand: only one it applied before, and never one labelled for another stored app."""
        applied = {k for k, o in self.store.app_objects(app_id).items() if o.manifest}

        def adopt(key: ObjectKey, label: str | None) -> bool:
            return key in applied and (label is None or self.store.get_app(label) is None)
        return adopt

    def _create_node_groups(self, app_id: str, compiled: CompiledApp,
                            previous: App | None) -> None:
        """New node groups start at their minimum; groups that left the app go to zero."""
        latest = self.store.latest_operations(app_id)
        new = {g.name: g for g in compiled.plan.node_groups}
        old = {g["name"] for g in (previous.plan.get("node_groups", []) if previous else [])}
        wanted = [(n, "create", g.min_instances) for n, g in new.items()
                  if n not in old and n not in latest]
        wanted += [(n, "remove", 0) for n in old if n not in new]
        for name, kind, desired in wanted:
            seq = operation_seq(latest.get(name)) + 1
            op_id = self.loop.record_operation(app_id, name, kind, desired, seq)
            op = self.store.get_operation(op_id)
            if op is not None and op.pending:
                self.nodes.start(op, new.get(name), [])
            self.store.add_event(app_id, "operation",
                                 f"node group {name} -> {desired} ({kind}): operation {op_id}",
                                 {"target": name, "op_id": op_id, "desired": desired})

    def _finish_submit(self, app: App) -> None:
        compiled = self._compile(app.adt_source, app.params, app.app_id, None)
        self._deploy(compiled, self._changes(compiled))
        self._create_node_groups(app.app_id, compiled, previous=None)
        self.store.set_app_status(app.app_id, "running")
        self.store.add_event(app.app_id, "submitted", f"app {app.app_id} deployment finished")

    def _finish_delete(self, app: App) -> dict[str, Any]:
        app_id = app.app_id
        try:
            deleted = self.cluster.delete_app(app_id)
        except ClusterError as exc:
            reason = f"Kubernetes refused the deletion, retried: {exc}"
            self.store.set_app_status(app_id, "deleting", reason)
            self.store.add_event(app_id, "action_failed", reason)
            return {"app_id": app_id, "status": "deleting", "deleted": [], "reason": reason}
        self.rule_files.remove(app_id)
        self.scrape_targets.remove(app_id)
        if app.plan.get("shared", {}).get("alerts"):
            RuleFiles.reload(self.prometheus.url)
        notes = []
        groups = plan_from_dict(app.plan).node_groups
        for group in groups:
            message = f"node group {group.name} -> 0"
            if not self.nodes.configured:
                message += f": {getattr(self.nodes, 'reason', 'not carried out')}"
            else:  # the store keeps the group (removing) until its VMs are gone
                message += ": its VMs are being removed (drained first)"
            notes.append(message)
        self.store.delete_app(app_id)
        for group in groups:
            self.nodes.remove_group(app_id, group.name, group)
        self.store.add_event(app_id, "deleted",
                             f"app {app_id} deleted: {len(deleted)} objects"
                             + "".join(f"; {n}" for n in notes),
                             {"deleted": [list(d) for d in deleted]})
        self.loop.wake()
        return {"app_id": app_id, "status": "deleted",
                "deleted": [{"kind": k, "namespace": ns, "name": n} for k, ns, n in deleted],
                "reason": None}

    def _restore(self, old: App) -> None:
        """Put the previous version back after a failed update (best effort on the cluster)."""
        self.store.put_app(old.app_id, old.adt_source, old.params, old.plan,
                           status=old.status, tick_seconds=old.tick_seconds)
        try:
            compiled = compile_adt(old.adt_source, params=old.params, app_id=old.app_id)
            self._apply(old.app_id, compiled.plan, compiled.manifests)
        except (AdtError, ClusterError) as exc:
            self.store.add_event(old.app_id, "action_failed",
                                 f"re-applying the previous version failed: {exc}")

    def _undeploy_quietly(self, app_id: str) -> None:
        try:
            self.cluster.delete_app(app_id)
        except ClusterError as exc:
            log.warning("rolling back app %s: %s", app_id, exc)
        self.rule_files.remove(app_id)
        self.scrape_targets.remove(app_id)

    def _set_running(self, app_id: str, status: str) -> dict[str, Any]:
        with self._app_lock(app_id):
            app = self._get(app_id)
            if app.status not in ("running", "paused"):
                raise InvalidRequest(f"app {app_id!r} is {app.status}; only a running or "
                                     "paused app can be paused or resumed")
            if app.status != status:
                self.store.set_app_status(app_id, status)
                verb = "paused" if status == "paused" else "resumed"
                self.store.add_event(app_id, status, f"app {app_id} {verb}")
        self.loop.wake()
        return {"app_id": app_id, "status": status}

    # ------------------------------------------------------------------ shapes
    def _app_summary(self, app: App) -> dict[str, Any]:
        return {"app_id": app.app_id, "status": app.status, "reason": app.reason,
                "holding": self._holding(app),
                "tick_seconds": app.tick_seconds or self.default_tick,
                "created_at": app.created_at, "updated_at": app.updated_at}

    def _holding(self, app: App) -> str | None:
        """Why a running app's targets all hold (an input its last tick could not read)."""
        runtime = self.loop.runtime(app.app_id)
        if app.status != "running" or runtime is None:
            return None
        return "; ".join(why for why in runtime.inputs.values() if why != OK) or None

    def _summary(self, compiled: CompiledApp, status: str, dry_run: bool,
                 changes: list[dict[str, str]], tick: float | None) -> dict[str, Any]:
        plan = compiled.plan
        return {
            "app_id": compiled.app_id, "status": status, "dry_run": dry_run,
            "warnings": [_problem(p) for p in compiled.warnings], "changes": changes,
            "node_groups": [{"name": g.name, "min": g.min_instances, "max": g.max_instances}
                            for g in plan.node_groups],
            "policies": [{"name": p.name, "target": p.target, "kind": p.target_kind}
                         for p in plan.policies],
            "tick_seconds": tick or self.default_tick,
        }


def _keep_scaled_replicas(compiled: CompiledApp,
                          changes: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The manifests without `spec.replicas` for scaled workloads that already exist, so a
    redeploy never resets what the policies scaled to (the ADT's count is the first size)."""
    scaled = {(w.kind, w.namespace, w.name) for w in compiled.plan.workloads
              if any(p.target == w.node for p in compiled.plan.policies)}
    existing = {(c["kind"], c["namespace"], c["name"]) for c in changes
                if c["action"] in ("update", "unchanged")}
    manifests = []
    for manifest in compiled.manifests:
        meta = manifest.get("metadata") or {}
        key = (manifest.get("kind"), meta.get("namespace") or "default", meta.get("name"))
        spec = manifest.get("spec")
        if key in scaled and key in existing and isinstance(spec, dict) and "replicas" in spec:
            manifest = {**manifest, "spec": {k: v for k, v in spec.items() if k != "replicas"}}
        manifests.append(manifest)
    return manifests


def _new_app_id(store: Store) -> str:
    while True:
        candidate = "app-" + secrets.token_hex(3)
        if store.get_app(candidate) is None:
            return candidate


def _check_app_id(app_id: Any) -> None:
    if not isinstance(app_id, str) or not _APP_ID.match(app_id):
        raise InvalidRequest(f"app id {app_id!r} must be a DNS label: lower-case letters, "
                             "digits and '-', at most 63 characters")


def _check_tick(tick: Any) -> float | None:
    if tick is None:
        return None
    if isinstance(tick, bool) or not isinstance(tick, int | float) or not math.isfinite(tick) \
            or not MIN_TICK <= tick <= MAX_TICK:
        raise InvalidRequest(f"tick_seconds must be a number from {MIN_TICK:g} to "
                             f"{MAX_TICK:g}, got {tick!r}")
    return float(tick)


def _check_params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidRequest("params must be a mapping of input name to value")
    if len(params) > MAX_PARAMS:
        raise InvalidRequest(f"at most {MAX_PARAMS} params, got {len(params)}")
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"params: {name!r} is not an input name")
        if isinstance(value, dict | list) or (
                value is not None and not isinstance(value, str | int | float | bool)):
            raise InvalidRequest(f"params.{name}: must be text, a number or true/false")
    return dict(params)


def _count(changes: list[dict[str, str]]) -> str:
    if not changes:
        return "no object changed"
    counts: dict[str, int] = {}
    for change in changes:
        counts[change["action"]] = counts.get(change["action"], 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
