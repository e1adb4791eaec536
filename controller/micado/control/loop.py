"""The control loop: the one place that joins inputs, the policy engine and the actuators.

Per app, every tick (its own `tick_seconds`, else the controller's default):

1. inputs: the policies' Prometheus queries (concurrently, one timeout each), the app's firing
   alerts, the Ready nodes of its node groups and the live replicas of its workloads;
2. node-group policies are decided first, then workloads (MiCADO's order), one `m_userdata`
   threaded through every rule of the app;
3. the decisions and target states are written to the store in one transaction, node-group
   operations recorded (keyed, so never twice) *before* any actuator runs;
4. workloads are scaled through the Kubernetes scale subresource, node-group operations handed
   to the node actuator.

Drift: the same tick lists the app's objects by its instance label (one call per kind; the
Deployment list also gives the live replicas) and compares, per object, the fields the
controller sets with what the server returned when they were applied (`drift_view`; an
unchanged resourceVersion skips even that). An object deleted, relabelled or changed outside
the controller is applied again (server-side apply, forced, as the owner; the replicas the
policies scaled to are kept) and reported as a `drift` event and in the status.

When Prometheus or the Kubernetes API cannot be read, every target of the app holds and its
status says why: a missing input never reads as "no load" (so nothing scales in because
Prometheus is down). A single query Prometheus cannot answer reaches the engine as such
(`TickInputs.failed_queries`, with why) and holds the rules that read it; a query answered
with no series is None to the rule, as in MiCADO. One app, rule or query failing never stops
the others: each tick runs on its own and every failure becomes a reason, an event and a metric.

Ticks run in a small thread pool (the I/O is blocking client code); the asyncio side only
schedules them, so the REST API on the same event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from micado.actuators.kubernetes import (
    SCALABLE_KINDS,
    Cluster,
    ClusterError,
    ObjectOwned,
    drift_view,
    first_difference,
)
from micado.actuators.nodes import NodeActuator
from micado.adt.k8s.labels import INSTANCE
from micado.adt.model import Plan, ScalingPolicy, Workload, plan_from_dict
from micado.control.store import App, AppObject, ObjectKey, Operation, Store
from micado.control.telemetry import Telemetry
from micado.policy.engine import Decision, TargetState, TickInputs, decide, scaled_groups
from micado.policy.limits import LimitState
from micado.policy.sandbox import evaluate as sandbox_evaluate
from micado.sources.prometheus import PrometheusSource, QueryResults

log = logging.getLogger(__name__)

RUNNING = "running"
OK = "ok"
MAX_LOG_LINES = 20


def state_to_dict(state: TargetState) -> dict[str, Any]:
    return asdict(state)


def state_from_dict(data: dict[str, Any]) -> TargetState:
    limits = data.get("limits") or {}
    return TargetState(
        last_count=data.get("last_count"),
        stable_since=data.get("stable_since"),
        previous_node_count=data.get("previous_node_count"),
        limits=LimitState(limits.get("last_change"),
                          [tuple(r) for r in limits.get("recommendations") or []]),
    )


def operation_key(app_id: str, group: str, seq: int) -> str:
    """The idempotency key of a node group's `seq`-th operation."""
    return f"{app_id}:{group}:{seq}"


def operation_seq(op: Operation | None) -> int:
    if op is None:
        return 0
    tail = op.idempotency_key.rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def scaled_objects(plan: Plan) -> set[ObjectKey]:
    """The workloads a policy scales: their replicas belong to the policies, not the ADT."""
    targets = {p.target for p in plan.policies if p.target_kind == "workload"}
    return {(w.kind, w.namespace, w.name) for w in plan.workloads if w.node in targets}


@dataclass
class AppRuntime:
    """What the loop keeps in memory per app; everything here can be rebuilt from the store."""

    app_id: str
    plan: Plan
    status: str
    tick_seconds: float
    version: int  # the store's version of the app this was loaded from
    states: dict[str, TargetState]  # policy name -> engine state
    decisions: dict[str, dict[str, Any]]  # policy name -> last decision (JSON)
    userdata: Any
    group_targets: dict[str, int]  # node group -> the size its latest operation asked for
    seqs: dict[str, int]  # node group -> sequence of its latest operation
    inputs: dict[str, str] = field(default_factory=lambda: {"prometheus": OK,
                                                            "kubernetes": OK})
    last_tick_at: float | None = None
    next_tick_at: float = 0.0
    busy: bool = False
    persisted: dict[str, str] = field(default_factory=dict)  # policy -> last written JSON
    objects: dict[ObjectKey, AppObject] = field(default_factory=dict)  # what was applied
    clean: dict[ObjectKey, str] = field(default_factory=dict)  # resourceVersion seen unchanged
    drift: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)  # last report each
    alert_errors: dict[str, str] = field(default_factory=dict)  # alert -> evaluation error


class _Cached:
    """One value shared by the ticks of all apps for `ttl` seconds (one call, not one per app)."""

    def __init__(self, fetch: Callable[[], Any], ttl: float, clock: Callable[[], float]):
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._value: Any = None
        self._error: Exception | None = None

    def get(self) -> Any:
        with self._lock:  # held while fetching: concurrent ticks wait for one fresh value
            if self._clock() - self._at >= self._ttl:
                try:
                    self._value, self._error = self._fetch(), None
                except Exception as exc:
                    self._value, self._error = None, exc
                self._at = self._clock()
            if self._error is not None:
                raise self._error
            return self._value


class ControlLoop:
    """Schedules app ticks and runs them; `tick(app_id)` is one app's whole tick."""

    def __init__(self, store: Store, prometheus: PrometheusSource, cluster: Cluster,
                 nodes: NodeActuator, telemetry: Telemetry, *, default_tick: float = 15.0,
                 rule_timeout: float = 1.0, workers: int = 8, cache_ttl: float = 0.5,
                 clock: Callable[[], float] = time.time,
                 evaluate: Callable[..., Any] = sandbox_evaluate) -> None:
        self.store = store
        self.prometheus = prometheus
        self.cluster = cluster
        self.nodes = nodes
        self.telemetry = telemetry
        self.default_tick = default_tick
        self.rule_timeout = rule_timeout
        self.workers = workers
        self.clock = clock
        self._evaluate = evaluate
        self._alerts = _Cached(prometheus.rules_by_app, cache_ttl, clock)
        self._nodes = _Cached(cluster.nodes_by_group, cache_ttl, clock)
        self._lock = threading.RLock()
        self._app_locks: dict[str, threading.Lock] = {}
        self.runtimes: dict[str, AppRuntime] = {}
        self._wake: asyncio.Event | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ app registry
    def sync(self) -> None:
        """Load apps that are new or changed in the store and forget deleted ones."""
        versions = self.store.app_versions()
        with self._lock:
            for app_id in [a for a in self.runtimes if a not in versions]:
                del self.runtimes[app_id]
                self.telemetry.forget_app(app_id)
            # a busy app is reloaded after its tick, which may still be writing its state
            stale = [a for a, (_status, version) in versions.items()
                     if a not in self.runtimes or (self.runtimes[a].version != version
                                                   and not self.runtimes[a].busy)]
        for app_id in stale:
            app = self.store.get_app(app_id)
            if app is None:
                continue
            runtime = self._load(app)
            with self._lock:
                old = self.runtimes.get(app_id)
                if old is not None:  # keep the schedule and what status shows
                    runtime.next_tick_at = old.next_tick_at
                    runtime.last_tick_at = old.last_tick_at
                    runtime.inputs = old.inputs
                    runtime.drift = {k: v for k, v in old.drift.items()
                                     if k in runtime.objects}
                    runtime.alert_errors = old.alert_errors
                self.runtimes[app_id] = runtime
        counts: dict[str, int] = {}
        for status, _version in versions.values():
            counts[status] = counts.get(status, 0) + 1
        for status in ("submitted", "running", "paused", "deleting", "failed"):
            self.telemetry.apps.labels(status).set(counts.get(status, 0))

    def _load(self, app: App) -> AppRuntime:
        plan = plan_from_dict(app.plan)
        records = self.store.load_targets(app.app_id)
        names = {p.name for p in plan.policies}
        states = {name: state_from_dict(r.state) for name, r in records.items() if name in names}
        decisions = {name: r.last_decision for name, r in records.items() if name in names}
        latest = self.store.latest_operations(app.app_id)
        group_targets = {g: op.desired for g, op in latest.items()}
        # A node decision is recorded as an operation before its state is saved: after a crash
        # between the two, the operation is the truth (the decision was taken; never again).
        for policy in plan.policies:
            op = latest.get(policy.target)
            if policy.target_kind == "node_group" and op is not None \
                    and not policy.options.get("dry_run"):
                states.setdefault(policy.name, TargetState()).last_count = op.desired
        return AppRuntime(
            app_id=app.app_id, plan=plan, status=app.status,
            tick_seconds=app.tick_seconds or self.default_tick, version=app.version,
            states=states, decisions=decisions,
            userdata=self.store.load_userdata(app.app_id).get("value"),
            group_targets=group_targets,
            seqs={g: operation_seq(op) for g, op in latest.items()},
            persisted={name: json.dumps([asdict(states[name]) if name in states else None,
                                         _comparable(d)], sort_keys=True)
                       for name, d in decisions.items()},
            objects=self.store.app_objects(app.app_id),
        )

    def _app_lock(self, app_id: str) -> threading.Lock:
        with self._lock:
            return self._app_locks.setdefault(app_id, threading.Lock())

    @contextmanager
    def app_lock(self, app_id: str) -> Iterator[None]:
        """Held by every lifecycle request of the app and by the loop's drift repair, so a
        repair never re-applies a version an update is replacing."""
        with self._app_lock(app_id):
            yield

    def runtime(self, app_id: str) -> AppRuntime | None:
        with self._lock:
            return self.runtimes.get(app_id)

    def wake(self) -> None:
        """Ask the scheduler to look at the store now (e.g. after a submission)."""
        if self._aloop is not None and self._wake is not None:
            self._aloop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ one tick
    def tick(self, app_id: str) -> None:
        """One tick of one app. Never raises for anything an input, rule or actuator does."""
        runtime = self.runtime(app_id)
        if runtime is None or runtime.status != RUNNING:
            return
        started = time.perf_counter()
        try:
            self._tick(runtime)
        except Exception:  # a bug must cost one app one tick, not the loop
            log.exception("tick of app %s failed", app_id)
            self._safe_event(app_id, "error", "internal error in the tick; see the log")
        finally:
            runtime.last_tick_at = self.clock()
            self.telemetry.tick_seconds.observe(time.perf_counter() - started)

    def _tick(self, rt: AppRuntime) -> None:
        now = self.clock()
        plan = rt.plan
        events: list[tuple[str, str, Any]] = []
        inputs, results, firing, nodes, live, listed = self._gather(rt)
        if listed is not None:
            self._check_drift(rt, listed, events)
        self._check_alert_rules(rt, events)
        for source, why in inputs.items():
            if why != rt.inputs.get(source):
                kind = "inputs" if why == OK else "inputs_unavailable"
                message = (f"{source} is available again" if why == OK
                           else f"holding every target: {why}")
                events.append((kind, message, {"source": source}))
        rt.inputs = inputs
        trouble = [why for why in inputs.values() if why != OK]
        if trouble:
            for source in (s for s, why in inputs.items() if why != OK):
                self.telemetry.input_failures.labels(source).inc()
            self._hold_all(rt, now, "; ".join(trouble), events)
            return

        # this app's groups only: another app's group of the same name is not counted
        app_nodes = {g.name: nodes.get((rt.app_id, g.name), []) for g in plan.node_groups}
        live_counts: dict[str, int] = dict(live)
        for group in plan.node_groups:
            live_counts[group.name] = rt.group_targets.get(group.name,
                                                           len(app_nodes[group.name]))
        tick_inputs = TickInputs(now=now, query_results=results.values, firing_alerts=firing,
                                 nodes=app_nodes, live_counts=live_counts,
                                 failed_queries=results.failed)
        userdata = rt.userdata
        decided: list[tuple[ScalingPolicy, Decision]] = []
        ordered = sorted(plan.policies, key=lambda p: p.target_kind != "node_group")
        for policy in ordered:
            decision, userdata = self._decide(rt, policy, tick_inputs, userdata)
            if policy.target_kind == "node_group":
                live_counts[policy.target] = decision.desired
            decided.append((policy, decision))

        # record first (node operations keyed), then act
        node_ops: list[tuple[ScalingPolicy, Decision, int]] = []
        for policy, decision in decided:
            if policy.target_kind == "node_group" and self._acts(decision):
                op_id = self._record_node_operation(rt, policy.target, decision.desired, events)
                node_ops.append((policy, decision, op_id))
        previous = {p.name: rt.states.get(p.name, TargetState()) for p, _ in decided}
        records = {}
        for policy, decision in decided:
            records[policy.name] = self._record(rt, policy, decision, now, app_nodes, live,
                                                events)
        self._persist(rt, records, userdata, events)
        rt.userdata = userdata

        # act
        after: list[tuple[str, str, Any]] = []
        for policy, decision in decided:
            if policy.target_kind == "workload" and self._acts(decision):
                self._scale(rt, policy, decision, previous[policy.name], records, after)
        for policy, decision, op_id in node_ops:
            op = self.store.get_operation(op_id)
            if op is not None and op.pending:
                group = next((g for g in plan.node_groups if g.name == policy.target), None)
                try:
                    self.nodes.start(op, group, list(decision.nodes_to_drop))
                except Exception as exc:
                    self.telemetry.actuator_errors.labels("nodes").inc()
                    self.store.finish_operation(op_id, None, f"could not start: {exc}")
                    after.append(("action_failed", f"node group {policy.target}: {exc}",
                                  {"target": policy.target, "op_id": op_id}))
        if after:
            self._persist(rt, records, None, after)

    def _gather(self, rt: AppRuntime) -> tuple[
            dict[str, str], QueryResults, set[str],
            dict[tuple[str, str], list[dict[str, str]]], dict[str, int],
            dict[ObjectKey, dict[str, Any]] | None]:
        """Read this tick's inputs; `inputs` says, per source, "ok" or why it failed. The last
        item is the app's live objects (None when Kubernetes could not be read)."""
        plan = rt.plan
        inputs = {"prometheus": OK, "kubernetes": OK}
        results = QueryResults()
        firing: set[str] = set()
        alerts = self._alerts.get()
        if alerts is None:
            inputs["prometheus"] = f"Prometheus at {self.prometheus.url} does not answer"
        else:
            rules = alerts.get(rt.app_id)
            firing = set(rules.firing) if rules is not None else set()
            queries: dict[str, Any] = dict(plan.shared.queries)
            for policy in plan.policies:
                queries.update(policy.queries)
            if queries:
                results = self.prometheus.query_all(queries)
        nodes: dict[tuple[str, str], list[dict[str, str]]] = {}
        live: dict[str, int] = {}
        listed: dict[ObjectKey, dict[str, Any]] | None = None
        kinds = [("apps/v1", w.kind) for w in plan.workloads if w.kind in SCALABLE_KINDS]
        kinds += [(o.manifest["apiVersion"], o.kind) for o in rt.objects.values() if o.manifest]
        try:
            if plan.node_groups:
                nodes = self._nodes.get()
            if kinds:
                listed = self.cluster.app_objects(rt.app_id, kinds)
                live = self.cluster.live_replicas(rt.app_id, plan.workloads, listed)
        except ClusterError as exc:
            inputs["kubernetes"] = f"the Kubernetes API failed: {exc}"
        except Exception as exc:  # a client-side failure (TLS, DNS, bad kubeconfig)
            inputs["kubernetes"] = f"the Kubernetes API cannot be reached: {exc}"
        return inputs, results, firing, nodes, live, listed

    # ------------------------------------------------------------------ drift
    def _check_drift(self, rt: AppRuntime, listed: dict[ObjectKey, dict[str, Any]],
                     events: list[tuple[str, str, Any]]) -> None:
        """Find the app's objects changed or deleted outside the controller; re-apply them."""
        scaled = scaled_objects(rt.plan)
        drifted: list[tuple[AppObject, dict[str, Any] | None, str]] = []
        for obj in rt.objects.values():
            if obj.manifest is None:
                continue
            live = listed.get(obj.key)
            if live is None:
                drifted.append((obj, None, ""))
                continue
            version = (live.get("metadata") or {}).get("resourceVersion")
            if version is not None and rt.clean.get(obj.key) == version:
                continue
            view = drift_view(live, obj.manifest, obj.key in scaled)
            if view == obj.expected:
                if version is not None:
                    rt.clean[obj.key] = version
                continue
            drifted.append((obj, live, f"changed ({first_difference(obj.expected, view)})"))
        if not drifted:
            return
        lock = self._app_lock(rt.app_id)
        if not lock.acquire(blocking=False):
            return  # a request is changing the app: look again next tick
        try:
            current = self.store.app_versions().get(rt.app_id)
            if current is None or current[1] != rt.version:
                return  # changed since this runtime was loaded: the next tick sees the new one
            for obj, live, what in drifted:
                self._repair(rt, obj, live, what, obj.key in scaled, events)
        finally:
            lock.release()

    def _repair(self, rt: AppRuntime, obj: AppObject, live: dict[str, Any] | None, what: str,
                scaled: bool, events: list[tuple[str, str, Any]]) -> None:
        assert obj.manifest is not None
        name = f"{obj.kind}/{obj.name}"
        data = {"kind": obj.kind, "namespace": obj.namespace, "name": obj.name}
        manifest = obj.manifest
        spec = manifest.get("spec")
        if scaled and isinstance(spec, dict):
            spec = dict(spec)
            if live is None:  # re-created at the size the policies had reached, if known
                count = self._scaled_count(rt, obj)
                if count is not None:
                    spec["replicas"] = count
            else:  # the live replicas are the policy's
                spec.pop("replicas", None)
            manifest = {**manifest, "spec": spec}

        def adopt(_key: ObjectKey, label: str | None) -> bool:
            return label is None or self.store.get_app(label) is None

        try:
            if live is None:
                found = self.cluster.get_object(manifest)
                what = "deleted" if found is None else "relabelled (instance=" + str(
                    ((found.get("metadata") or {}).get("labels") or {}).get(INSTANCE)) + ")"
            [result] = self.cluster.apply([manifest], owner=rt.app_id, adopt=adopt)
        except ObjectOwned as exc:
            self._report_drift(rt, obj.key, f"drift: {name} was taken by "
                               f"{'app ' + repr(exc.owner) if exc.owner else 'someone else'}"
                               " outside the controller; not taken back", data, events)
            return
        except ClusterError as exc:
            self.telemetry.actuator_errors.labels("kubernetes").inc()
            self._report_drift(rt, obj.key, f"drift: {name} {what or 'missing'} outside the "
                               f"controller; re-applying failed, retried next tick: {exc}",
                               data, events)
            return
        expected = drift_view(result, obj.manifest, scaled)
        self.store.record_applied(rt.app_id, [(obj.key, obj.manifest, expected)])
        rt.objects[obj.key] = replace(obj, expected=expected)
        rt.clean.pop(obj.key, None)
        action = "re-created" if what == "deleted" else "re-applied"
        self._report_drift(rt, obj.key, f"drift: {name} {what} outside the controller, "
                           f"{action}", data, events, repeat=True)

    def _report_drift(self, rt: AppRuntime, key: ObjectKey, message: str,
                      data: dict[str, Any], events: list[tuple[str, str, Any]],
                      repeat: bool = False) -> None:
        """An event (once per distinct message, unless `repeat`) and the status' record."""
        if repeat or (rt.drift.get(key) or {}).get("message") != message:
            events.append(("drift", message, data))
        rt.drift[key] = {**data, "message": message, "at": self.clock()}

    def _scaled_count(self, rt: AppRuntime, obj: AppObject) -> int | None:
        workload = next((w for w in rt.plan.workloads
                         if (w.kind, w.namespace, w.name) == obj.key), None)
        if workload is None:
            return None
        for policy in rt.plan.policies:
            if policy.target == workload.node:
                state = rt.states.get(policy.name)
                if state is not None and state.last_count is not None:
                    return int(state.last_count)
        return None

    def _check_alert_rules(self, rt: AppRuntime, events: list[tuple[str, str, Any]]) -> None:
        """Alerts Prometheus cannot evaluate (they can never fire): kept for status, and an
        event when one starts or stops failing. Unknown while Prometheus does not answer."""
        try:
            rules = self._alerts.get()
        except Exception:
            return
        if rules is None:
            return
        app_rules = rules.get(rt.app_id)
        errors = dict(app_rules.errors) if app_rules is not None else {}
        for name, error in sorted(errors.items()):
            if rt.alert_errors.get(name) != error:
                events.append(("alert_rule_error",
                               f"alert {name}: Prometheus cannot evaluate it: {error}",
                               {"alert": name, "error": error}))
        for name in sorted(set(rt.alert_errors) - set(errors)):
            events.append(("alert_rule_ok", f"alert {name}: Prometheus evaluates it again",
                           {"alert": name}))
        rt.alert_errors = errors

    def _decide(self, rt: AppRuntime, policy: ScalingPolicy, inputs: TickInputs,
                userdata: Any) -> tuple[Decision, Any]:
        state = rt.states.get(policy.name, TargetState())
        started = time.perf_counter()
        decision, new_userdata = decide(policy, rt.plan.shared, inputs, state, userdata,
                                        evaluate=self._evaluate, timeout=self.rule_timeout,
                                        scaled_groups=scaled_groups(rt.plan))
        self.telemetry.evaluation_seconds.observe(time.perf_counter() - started)
        outcome = "error" if decision.error else "ok"
        self.telemetry.evaluations.labels(rt.app_id, outcome).inc()
        if decision.error:
            kind = decision.error.split(":", 1)[0]
            self.telemetry.rule_violations.labels(rt.app_id, kind).inc()
        direction = ("out" if decision.desired > decision.current
                     else "in" if decision.desired < decision.current else "hold")
        self.telemetry.decisions.labels(rt.app_id, decision.kind, direction).inc()
        try:
            json.dumps(new_userdata, allow_nan=False)
        except (TypeError, ValueError):
            decision.reason += "; m_userdata was not kept: it must be JSON data"
            new_userdata = userdata
        return decision, new_userdata

    @staticmethod
    def _acts(decision: Decision) -> bool:
        return decision.changed and not decision.dry_run and decision.error is None

    def _record_node_operation(self, rt: AppRuntime, group: str, desired: int,
                               events: list[tuple[str, str, Any]]) -> int:
        # the reconciliation records operations too: the store has the latest sequence
        latest = self.store.latest_operations(rt.app_id).get(group)
        seq = max(rt.seqs.get(group, 0), operation_seq(latest)) + 1
        op_id = self.record_operation(rt.app_id, group, "resize", desired, seq)
        rt.seqs[group] = seq
        rt.group_targets[group] = desired
        note = "" if self.nodes.configured else f" ({getattr(self.nodes, 'reason', '')})"
        events.append(("operation", f"node group {group} -> {desired}: recorded as "
                                    f"operation {op_id}{note}",
                       {"target": group, "op_id": op_id, "desired": desired}))
        return op_id

    def record_operation(self, app_id: str, group: str, kind: str, desired: int,
                         seq: int) -> int:
        """Record a node-group operation (idempotent by key); an unstarted older one of the
        same group is superseded when no actuator works on it."""
        op_id = self.store.begin_operation(app_id, group, kind, desired,
                                           operation_key(app_id, group, seq))
        if not self.nodes.configured:
            for old in self.store.pending_operations(app_id):
                if old.group == group and old.op_id != op_id:
                    self.store.finish_operation(old.op_id, {"superseded_by": op_id},
                                                f"superseded by operation {op_id}")
        return op_id

    def _record(self, rt: AppRuntime, policy: ScalingPolicy, decision: Decision, now: float,
                nodes: dict[str, list[dict[str, str]]], live: dict[str, int],
                events: list[tuple[str, str, Any]]) -> dict[str, Any]:
        """The decision as status shows it, and its events."""
        if policy.target_kind == "node_group":
            observed = len(nodes.get(policy.target, []))
        else:
            observed = live.get(policy.target, decision.current)
        record = {
            "policy": policy.name, "target": policy.target, "kind": policy.target_kind,
            "current": observed, "desired": decision.desired, "reason": decision.reason,
            "error": decision.error, "dry_run": decision.dry_run,
            "min": policy.min_instances, "max": policy.max_instances,
            "nodes_to_drop": list(decision.nodes_to_drop),
            "log": decision.log[-MAX_LOG_LINES:], "at": now, "applied": None,
        }
        previous = rt.decisions.get(policy.name) or {}
        if decision.changed:
            events.append(("decision", f"{policy.target}: {decision.reason}",
                           {"target": policy.target, "policy": policy.name,
                            "current": decision.current, "desired": decision.desired,
                            "dry_run": decision.dry_run}))
        elif decision.error and decision.error != previous.get("error"):
            events.append(("rule_error", f"{policy.target}: {decision.reason}",
                           {"target": policy.target, "policy": policy.name,
                            "error": decision.error}))
        rt.states[policy.name] = decision.state
        rt.decisions[policy.name] = record
        return record

    def _hold_all(self, rt: AppRuntime, now: float, why: str,
                  events: list[tuple[str, str, Any]]) -> None:
        records = {}
        for policy in rt.plan.policies:
            previous = dict(rt.decisions.get(policy.name) or {})
            state = rt.states.get(policy.name, TargetState())
            count = state.last_count if state.last_count is not None else previous.get(
                "desired", policy.min_instances)
            previous.update({
                "policy": policy.name, "target": policy.target, "kind": policy.target_kind,
                "desired": count, "reason": f"hold at {count}: {why}", "error": None,
                "min": policy.min_instances, "max": policy.max_instances, "at": now,
                "applied": None,
            })
            previous.setdefault("current", count)
            rt.decisions[policy.name] = previous
            records[policy.name] = previous
        self._persist(rt, records, None, events)

    def _scale(self, rt: AppRuntime, policy: ScalingPolicy, decision: Decision,
               previous: TargetState, records: dict[str, dict[str, Any]],
               events: list[tuple[str, str, Any]]) -> None:
        workload = _workload(rt.plan, policy.target)
        record = records[policy.name]
        if workload is None:
            record["applied"] = False
            record["reason"] += f"; {policy.target} is not a scalable workload of the app"
            return
        try:
            self.cluster.scale(workload, decision.desired)
        except (ClusterError, ValueError) as exc:
            self.telemetry.actuator_errors.labels("kubernetes").inc()
            rt.states[policy.name] = previous  # no cooldown for a change that did not happen
            record["applied"] = False
            record["error"] = f"actuator: {exc}"
            record["reason"] += f"; scaling failed, retried next tick: {exc}"
            events.append(("action_failed", f"{policy.target}: scaling to {decision.desired} "
                                            f"failed: {exc}",
                           {"target": policy.target, "desired": decision.desired}))
            return
        self.telemetry.actions.labels(rt.app_id, "kubernetes").inc()
        record["applied"] = True
        record["current"] = decision.desired
        events.append(("action", f"{policy.target}: {workload.kind} {workload.namespace}/"
                                 f"{workload.name} scaled {decision.current} -> "
                                 f"{decision.desired}",
                       {"target": policy.target, "from": decision.current,
                        "to": decision.desired}))

    def _persist(self, rt: AppRuntime, records: dict[str, dict[str, Any]], userdata: Any,
                 events: list[tuple[str, str, Any]]) -> None:
        """Write what changed (states, decisions, m_userdata, events) in one transaction."""
        targets = {}
        for name, record in records.items():
            state = rt.states.get(name, TargetState())
            text = json.dumps([asdict(state), _comparable(record)], sort_keys=True)
            if rt.persisted.get(name) != text:
                targets[name] = (state_to_dict(state), record)
                rt.persisted[name] = text
        changed_userdata = userdata is not None and userdata != rt.userdata
        if not targets and not changed_userdata and not events:
            return
        self.store.save_tick(rt.app_id, targets,
                             {"value": userdata} if changed_userdata else None, events)

    def _safe_event(self, app_id: str, kind: str, message: str) -> None:
        try:
            self.store.add_event(app_id, kind, message)
        except Exception:
            log.exception("could not record an event for %s", app_id)

    # ------------------------------------------------------------------ operations
    def poll_operations(self) -> None:
        """Finish operations the node actuator reports done; keep the pending gauge."""
        pending = self.store.pending_operations()
        for op in pending:
            try:
                result = self.nodes.poll(op)
            except Exception as exc:
                log.warning("node actuator poll of operation %s failed: %s", op.op_id, exc)
                continue
            if result is None:
                continue
            self.store.finish_operation(op.op_id, {"nodes": result.nodes,
                                                   "instances": result.instances},
                                        result.error)
            kind = "action" if result.error is None else "action_failed"
            message = (f"node group {op.group}: operation {op.op_id} done, "
                       f"{result.nodes} nodes") if result.error is None else \
                f"node group {op.group}: operation {op.op_id} failed: {result.error}"
            self._safe_event(op.app_id, kind, message)
        self.telemetry.pending_operations.set(len(self.store.pending_operations()))

    # ------------------------------------------------------------------ scheduling
    async def run(self, stop: asyncio.Event) -> None:
        """Tick every running app on its schedule until `stop` is set, then wait for the
        ticks in progress (their writes finish) and return."""
        self._aloop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="micado-tick")
        in_flight: set[asyncio.Future[Any]] = set()
        last_sync = -float("inf")
        try:
            while not stop.is_set():
                now = self.clock()
                if now - last_sync >= 1.0 or self._wake.is_set():
                    self._wake.clear()
                    await self._aloop.run_in_executor(pool, self._housekeeping)
                    last_sync = self.clock()
                    now = last_sync
                with self._lock:
                    due = [rt for rt in self.runtimes.values()
                           if rt.status == RUNNING and not rt.busy and rt.next_tick_at <= now]
                    for rt in due:
                        rt.busy = True
                for rt in due:
                    future = self._aloop.run_in_executor(pool, self._run_tick, rt.app_id, now)
                    in_flight.add(future)
                    future.add_done_callback(in_flight.discard)
                with self._lock:
                    upcoming = [rt.next_tick_at for rt in self.runtimes.values()
                                if rt.status == RUNNING and not rt.busy]
                delay = min([1.0, *(t - self.clock() for t in upcoming)])
                waits = [asyncio.ensure_future(stop.wait()),
                         asyncio.ensure_future(self._wake.wait())]
                await asyncio.wait(waits, timeout=max(0.01, delay),
                                   return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
        finally:
            if in_flight:
                await asyncio.wait(in_flight)
            pool.shutdown(wait=True)
            self._aloop = None

    def _housekeeping(self) -> None:
        try:
            self.sync()
            self.poll_operations()
        except Exception:
            log.exception("control loop housekeeping failed")

    def _run_tick(self, app_id: str, scheduled: float) -> None:
        try:
            self.tick(app_id)
        finally:
            runtime = self.runtime(app_id)
            if runtime is not None:
                # keep the cadence from the scheduled time; a tick that overran runs again now
                runtime.next_tick_at = max(scheduled + runtime.tick_seconds, 0.0)
                runtime.busy = False


def _workload(plan: Plan, node: str) -> Workload | None:
    return next((w for w in plan.workloads if w.node == node), None)


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A decision without its time, to tell whether anything a user sees has changed."""
    return {k: v for k, v in record.items() if k != "at"}
