"""What a scaling rule decides: one policy, one tick, one decision (MiCADO's semantics).

Pure apart from running the rule: the caller gathers the tick's facts (query results, firing
alerts, Ready nodes, live counts), keeps a `TargetState` per target and the app's one shared
`m_userdata`, and acts on the `Decision`. The variables a rule sees are MiCADO's
(research/micado.md §2.6; MiCADO's Policy Keeper, component-policy-keeper policy_keeper.py at
e531d3e, its latest Kubernetes-era version), with these deliberate differences (README,
"Deliberate differences from MiCADO"):

- D-alerts-state: alerts are the *current* state (True while firing), not events a rule
  consumes, so two rules reading one alert in the same tick both see it;
- D-live-count: `m_container_count` starts from the live replica count, so a manual
  `kubectl scale` is seen;
- D-unanswered-holds: a query the rule reads that Prometheus could not answer (error, timeout,
  unreachable) holds the target (unless `options.on_missing_data` is "evaluate"); one answered
  with no series gives the rule `None` as in MiCADO (unless it is "hold_on_no_series"), and
  NaN gives `None` too (D-nan-none: MiCADO passed NaN, whose comparisons are all False);
- D-todrop-existing: `m_nodes_todrop` only counts nodes that exist;
- D-rule-error-atomic: a rule that fails changes nothing: its target holds and `m_userdata`
  stays as it was (MiCADO's asteval stopped at the failing line and MiCADO applied what the
  rule had assigned before it; the other rules ran in both);
- D-node-clock: `m_time_since_node_count_changed` restarts whenever the group's node count
  changes and it is stable again (MiCADO kept counting from an earlier change when the group
  went from one stable size straight to another), and does not restart every tick for a group
  at zero nodes (D-zero-nodes-clock);
- D-container-nodes: a container rule's `m_nodes` and `m_node_count` include its host groups
  that have no scaling policy (MiCADO gave [] and 0 for those);
- a count that is not a whole number is truncated toward zero as MiCADO's int() did, with a
  line in the rule's log; one that is not a finite number holds the target (MiCADO's int()
  raised and skipped the rest of its session: D-micado-crashes), and so does a bool or a
  string (D-strict-outputs: MiCADO's int() took True as 1 and '3' as 3).
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..adt.model import Plan, ScalingPolicy, SharedNamespace
from ..adt.policy_options import MISSING_DATA_MODES
from .limits import LimitState, apply_limits
from .sandbox import RuleResult
from .sandbox import evaluate as sandbox_evaluate

NODE_OUTPUTS = ("m_node_count", "m_nodes_todrop", "m_userdata")
WORKLOAD_OUTPUTS = ("m_container_count", "m_userdata")
ON_MISSING_DATA = "on_missing_data"
HOLD, EVALUATE, HOLD_ON_NO_SERIES = MISSING_DATA_MODES

Evaluate = Callable[..., RuleResult]


@dataclass
class TargetState:
    """Persisted per target by the controller between ticks."""

    last_count: int | None = None  # last desired size decided
    stable_since: float | None = None  # when len(m_nodes) last became == count (node groups)
    previous_node_count: int | None = None  # len(m_nodes) at the previous tick (node groups)
    limits: LimitState = field(default_factory=LimitState)  # cooldown bookkeeping


@dataclass
class TickInputs:
    now: float
    query_results: dict[str, Any]  # name -> float | list[str] | None (None: no series, NaN)
    firing_alerts: set[str]  # currently firing alert names (state, not events)
    nodes: dict[str, list[dict[str, Any]]]  # group -> [{"ID", "Addr"}] Ready, untainted
    live_counts: dict[str, int]  # target -> live replicas (workloads) or group size target
    # name -> why Prometheus could not answer (error, timeout, unreachable); a query in neither
    # this nor query_results was not answered either
    failed_queries: dict[str, str] = field(default_factory=dict)


@dataclass
class Decision:
    target: str
    kind: str  # "node_group" | "workload"
    current: int  # the size before this tick (node group: last target; workload: live)
    desired: int  # the size to apply
    nodes_to_drop: list[str]  # node IDs to remove (node groups), already counted in desired
    reason: str  # one sentence for the user
    log: list[str]  # what the rule printed
    error: str | None  # "kind: message (line n)" when the rule failed
    state: TargetState  # the state to persist for the next tick
    changed: bool  # desired != current
    variables: dict[str, Any] = field(default_factory=dict)  # m_* inputs given to the rule
    dry_run: bool = False  # the policy's dry_run: actuators record the decision, never act


def decide(
    policy: ScalingPolicy,
    shared: SharedNamespace,
    inputs: TickInputs,
    state: TargetState,
    userdata: Any,
    *,
    evaluate: Evaluate = sandbox_evaluate,
    scaled_groups: Sequence[str] | None = None,
    timeout: float = 1.0,
) -> tuple[Decision, Any]:
    """Run the policy's rule for one tick; returns the decision and the new `m_userdata`.

    Never raises for anything the rule does; a rule that fails returns `userdata` unchanged.
    `scaled_groups` names the app's node groups that have a scaling policy, in the ADT's
    policy order (the order MiCADO evaluated them in); see `host_groups` for what a workload
    rule sees. A scaled group's count is `inputs.live_counts[group]`, so a controller that
    wants MiCADO's order puts this tick's node-group decisions there before deciding
    workloads. None takes every host group as scaled, in `policy.hosts` order.
    """
    if policy.target_kind == "node_group":
        variables, current, new_state = _node_variables(policy, inputs, state)
        count_var, outputs = "m_node_count", NODE_OUTPUTS
    else:
        variables, current = _workload_variables(policy, inputs, state, scaled_groups)
        new_state = TargetState(None, state.stable_since, state.previous_node_count,
                                state.limits)
        count_var, outputs = "m_container_count", WORKLOAD_OUTPUTS
    count_in = variables[count_var]

    def finish(desired: int, reason: str, log: list[str] | None = None,
               error: str | None = None, drop: list[str] | None = None,
               new_userdata: Any = userdata) -> tuple[Decision, Any]:
        new_state.last_count = desired
        dry_run = bool(policy.options.get("dry_run", False))
        if dry_run and desired != current:
            reason += " (dry run: recorded, not applied)"
        return Decision(
            target=policy.target, kind=policy.target_kind, current=current, desired=desired,
            nodes_to_drop=drop or [], reason=reason, log=list(log or []), error=error,
            state=new_state, changed=desired != current, variables=variables, dry_run=dry_run,
        ), new_userdata

    namespace, queries = rule_namespace(policy, shared, inputs)
    held, missing_note = _missing_data(policy, queries, inputs)
    if held is not None:
        return finish(current, f"hold at {current}: {held}")

    result = evaluate(policy.scaling_rule, {**namespace, **variables, "m_userdata": userdata},
                      list(outputs), timeout=timeout)
    if result.error is not None:
        # D-rule-error-atomic: nothing the rule assigned is kept, m_userdata included. MiCADO's
        # asteval stopped at the failing line and MiCADO applied the outputs assigned before it
        # (evaluator.py at ddcdbe0, policy_keeper.py at e531d3e); half a rule is not a decision
        err = result.error
        where = f" on line {err.line}" if err.line else ""
        return finish(current, f"hold at {current}: the rule failed with a {err.kind} error"
                               f"{where}: {err.message}{missing_note}", result.log, str(err))
    out = result.outputs
    new_userdata = out.get("m_userdata")
    low, high = policy.min_instances, policy.max_instances

    todrop = out.get("m_nodes_todrop") if policy.target_kind == "node_group" else None
    if todrop:
        if not isinstance(todrop, list) or not all(isinstance(t, str) for t in todrop):
            message = f"m_nodes_todrop must be a list of node names or addresses, got {todrop!r}"
            return finish(current, f"hold at {current}: {message}", result.log,
                          f"output: {message}")
        drop, unknown = _match_nodes(todrop, variables["m_nodes"])
        kept = drop[:max(0, count_in - low)]
        desired = count_in - len(kept)
        why = (f"the rule dropped {', '.join(kept)}" if kept
               else "the rule asked to drop nodes")
        if len(kept) < len(drop):
            why += (f" (not {', '.join(drop[len(kept):])}: that would go below "
                    f"min_instances {low})")
        if unknown:
            why += f"; ignored {', '.join(unknown)}: not a node of {policy.target}"
        return finish(desired, f"{_verb(current, desired)}: {why}{missing_note}", result.log,
                      drop=kept, new_userdata=new_userdata)

    value = out.get(count_var)
    whole, note = _count(count_var, value)
    if whole is None:
        return finish(current, f"hold at {current}: {note}", result.log, f"output: {note}")
    log = [*result.log, note] if note else result.log
    limited = apply_limits(current, whole, low=low, high=high, options=policy.options,
                           state=state.limits, now=inputs.now)
    new_state.limits = limited.state
    desired = limited.desired
    why = (f"the rule kept {count_var} at {whole}" if whole == count_in
           else f"the rule set {count_var} to {whole}")
    if note:
        why += f" ({value!r} truncated)"
    for limit_note in limited.notes:
        why += f", {limit_note}"
    if current != count_in:
        why += f"; the current size {current} is outside {low}..{high}"
    return finish(desired, f"{_verb(current, desired)}: {why}{missing_note}", log,
                  new_userdata=new_userdata)


def scaled_groups(plan: Plan) -> list[str]:
    """The app's node groups that have a scaling policy, in policy order (the order MiCADO
    evaluated them in): what `decide` takes as `scaled_groups`."""
    return [p.target for p in plan.policies if p.target_kind == "node_group"]


def rule_namespace(policy: ScalingPolicy, shared: SharedNamespace,
                   inputs: TickInputs) -> tuple[dict[str, Any], list[str]]:
    """Constants, query results and alerts a rule sees (own first, then borrowed names), and
    the names of the queries among them."""
    constants = dict(policy.constants)
    queries = {name: inputs.query_results.get(name) for name in policy.queries}
    alerts = {name: name in inputs.firing_alerts for name in _alert_names(policy.alerts)}
    shared_alerts = _alert_names(shared.alerts)
    for name in policy.borrowed:
        if name in constants or name in queries or name in alerts:
            continue
        if name in shared.queries:
            queries[name] = inputs.query_results.get(name)
        elif name in shared_alerts:
            alerts[name] = name in inputs.firing_alerts
        elif name in shared.constants:
            constants[name] = shared.constants[name]
    return {**constants, **queries, **alerts}, list(queries)


def _missing_data(policy: ScalingPolicy, queries: list[str], inputs: TickInputs,
                  ) -> tuple[str | None, str]:
    """Why the target holds for lack of data (or None), and the note for the reason when the
    rule runs. Only the queries the rule reads count; a rule that does not parse reads nothing
    here (the sandbox reports its syntax error)."""
    read = names_read(policy.scaling_rule)
    read_queries = [q for q in queries if read is not None and q in read]
    failed = {q: inputs.failed_queries.get(q, "no answer was given") for q in read_queries
              if q in inputs.failed_queries or q not in inputs.query_results}
    empty = [q for q in read_queries if q not in failed and inputs.query_results[q] is None]
    mode = policy.options.get(ON_MISSING_DATA, HOLD)
    notes: list[str] = []
    if failed:
        why = "; ".join(f"Prometheus could not answer query {q}: {reason}"
                        for q, reason in failed.items())
        if mode != EVALUATE:
            return why, ""
        notes.append(f"{why}; evaluated anyway with None")
    if empty:
        what = (f"query {empty[0]} returned" if len(empty) == 1
                else f"queries {', '.join(empty)} returned")
        if mode == HOLD_ON_NO_SERIES:
            return f"{what} no series", ""
        notes.append(f"{what} no series: the rule saw None")
    return None, f" ({'; '.join(notes)})" if notes else ""


@lru_cache(maxsize=256)
def names_read(rule: str) -> frozenset[str] | None:
    """Names the rule loads anywhere, or None if it does not parse (the sandbox reports it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(rule)
    except (SyntaxError, ValueError):
        return None
    return frozenset(n.id for n in ast.walk(tree)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))


def _node_variables(policy: ScalingPolicy, inputs: TickInputs, state: TargetState,
                    ) -> tuple[dict[str, Any], int, TargetState]:
    """A node rule's variables; D-node-clock for `m_time_since_node_count_changed`.

    Stable: the group has as many Ready nodes as its target. The clock restarts whenever the
    group becomes stable again or its node count moved while it stayed stable, so a rule that
    waits N s after a change waits N s after every change. MiCADO (policy_keeper.py at
    e531d3e, `collect_inputs_for_nodes`) kept the earlier timestamp when the group went from
    one stable size straight to another between two ticks, so such a rule added the next node
    one tick after the last one; and it restarted the clock every tick at zero nodes.
    """
    nodes = [dict(n) for n in inputs.nodes.get(policy.target, [])]
    current = _first(state.last_count, inputs.live_counts.get(policy.target), len(nodes))
    count = _clamp(current, policy)
    stable_since: float | None = None
    if len(nodes) == count:
        stable_since = state.stable_since
        if stable_since is None or state.previous_node_count != len(nodes):
            stable_since = inputs.now
    variables = {
        "m_nodes": nodes,
        "m_node_count": count,
        "m_nodes_todrop": [],
        "m_time_when_node_count_changed": stable_since if stable_since is not None else 0,
        "m_time_since_node_count_changed":
            inputs.now - stable_since if stable_since is not None else 0,
    }
    return variables, current, TargetState(None, stable_since, len(nodes), state.limits)


def _workload_variables(policy: ScalingPolicy, inputs: TickInputs, state: TargetState,
                        scaled_groups: Sequence[str] | None,
                        ) -> tuple[dict[str, Any], int]:
    groups, counted, scaled = host_groups(policy, inputs, scaled_groups)
    nodes = [dict(n) for g in groups for n in inputs.nodes.get(g, [])]
    node_count = 0
    if counted is not None:
        ready = len(inputs.nodes.get(counted, []))
        node_count = _first(inputs.live_counts.get(counted), ready) if scaled else ready
    current = _first(inputs.live_counts.get(policy.target), state.last_count,
                     policy.min_instances)
    variables = {
        "m_nodes": nodes,
        "m_node_count": node_count,
        "m_container_count": _clamp(current, policy),
    }
    return variables, current


def host_groups(policy: ScalingPolicy, inputs: TickInputs,
                scaled_groups: Sequence[str] | None) -> tuple[list[str], str | None, bool]:
    """What a workload rule sees (D-container-nodes): the groups whose Ready nodes are its
    `m_nodes` (its hosts as the compiler resolved them: every node group of the app for an
    unplaced container, none for one placed on edge devices only; those with a scaling policy
    first, in MiCADO's order, then the static ones), the group whose count is its
    `m_node_count`, and whether that group is scaled (count: its size target) or static
    (count: its Ready nodes).

    MiCADO (policy_keeper.py at e531d3e, `collect_inputs_for_containers`) walked only the node
    groups that had a scaling policy, in policy order, and kept the clamped target of the last
    one hosting the container; a static host group gave `m_nodes=[]`, `m_node_count=0`. Here
    the count is the same whenever a host group is scaled.
    """
    hosts = list(policy.hosts)
    if scaled_groups is None:
        return hosts, (hosts[-1] if hosts else None), True
    scaled = [g for g in scaled_groups if g in hosts]
    static = [g for g in hosts if g not in scaled]
    if scaled:
        return scaled + static, scaled[-1], True
    return static, (static[-1] if static else None), False


def _match_nodes(todrop: list[str], nodes: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The IDs of existing nodes named (by ID or address) in todrop, and the unknown names."""
    by_key: dict[str, str] = {}
    for node in nodes:
        ident = str(node.get("ID"))
        by_key[ident] = ident
        if node.get("Addr"):
            by_key.setdefault(str(node["Addr"]), ident)
    found: list[str] = []
    unknown: list[str] = []
    for name in todrop:
        ident = by_key.get(name)
        if ident is None:
            unknown.append(name)
        elif ident not in found:
            found.append(ident)
    return found, unknown


def _alert_names(alerts: list[dict[str, Any]]) -> list[str]:
    return [a["alert"] for a in alerts if isinstance(a.get("alert"), str)]


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


def _clamp(count: int, policy: ScalingPolicy) -> int:
    return min(max(count, policy.min_instances), policy.max_instances)


def _count(name: str, value: Any) -> tuple[int | None, str]:
    """The count a rule's output asks for and a note: ('' when whole, why it was truncated) or,
    with None, why it is not a count.

    A fraction is truncated toward zero as MiCADO's int() did (policy_keeper.py at e531d3e:
    `int(result.get('m_container_count', ...))`). What int() could not convert there (None,
    NaN, inf) raised out of MiCADO's session; a bool or a string is refused here too, since
    neither is a count a rule means.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{name} must be a number, got {value!r} ({type(value).__name__})"
    if isinstance(value, int):
        return value, ""
    if not math.isfinite(value):
        return None, f"{name} must be a finite number, got {value!r}"
    whole = int(value)
    if whole == value:
        return whole, ""
    return whole, f"{name} = {value!r} is not a whole number: truncated to {whole} as MiCADO did"


def _verb(current: int, desired: int) -> str:
    if desired > current:
        return f"scale out {current} -> {desired}"
    if desired < current:
        return f"scale in {current} -> {desired}"
    return f"hold at {current}"
