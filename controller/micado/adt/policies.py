"""Scaling policies: targets, bounds, constants templated in, queries, alerts, the rule.

MiCADO renders every policy with Jinja2 over the constants of *all* policies of the app and
merges their constants, queries and alerts into one namespace. Each policy here keeps its own
namespace; a name that only another policy defines is still found (MiCADO's ADTs rely on it),
recorded in `borrowed`, and reported as a warning.
"""

from __future__ import annotations

import ast
import builtins
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..policy.rule_numeric import AVAILABLE as NUMERIC_NAMES
from ..policy.rule_numeric import unavailable_message
from .errors import Path, Problems, format_path
from .model import NodeGroup, ScalingPolicy, SharedNamespace, Workload
from .policy_options import policy_options
from .topology import PolicyTemplate, Topology

SCALING = "tosca.policies.Scaling.MiCADO"
SCALABLE_KINDS = ("Deployment", "StatefulSet")
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SOURCE = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$")
# Names a rule may read without defining them: MiCADO's (research/micado.md §2.6), numpy's
# common functions and our deadline helper.
MICADO_VARIABLES = frozenset({
    "m_nodes", "m_node_count", "m_nodes_todrop", "m_time_when_node_count_changed",
    "m_time_since_node_count_changed", "m_container_count", "m_userdata", "m_opt_advice",
    "m_dryrun", "time", "print", "range", "instances_for_deadline",
}) | NUMERIC_NAMES
BUILTIN_NAMES = frozenset(dir(builtins))
IGNORED_POLICIES = {
    "tosca.policies.Monitoring.MiCADO": "node and container metrics are always collected "
                                        "(kubelet and cAdvisor), so this policy changes nothing",
    "tosca.policies.Alerting.MiCADO": "no component consumes alerting policies (as in MiCADO); "
                                      "put alerts in a scaling policy",
    "tosca.policies.Security.MiCADO": "security policies are not applied by this release",
}


@dataclass
class _Own:
    """One scaling policy's own namespace, after templating."""

    template: PolicyTemplate
    constants: dict[str, Any]
    queries: dict[str, Any]
    alerts: list[dict[str, Any]]
    sources: list[str]


def compile_policies(
    topology: Topology,
    app_id: str,
    groups: list[NodeGroup],
    workloads: list[Workload],
    problems: Problems,
) -> tuple[list[ScalingPolicy], SharedNamespace]:
    scaling: list[PolicyTemplate] = []
    for policy in topology.policies:
        if topology.registry.is_a("policy_types", policy.type, SCALING):
            scaling.append(policy)
            continue
        chain = topology.registry.chain("policy_types", policy.type)
        reason = next((IGNORED_POLICIES[t] for t in chain if t in IGNORED_POLICIES), None)
        problems.warn(policy.path, f"{policy.type}: " + (reason or "not a scaling policy; ignored"))

    all_constants: dict[str, Any] = {}
    for policy in scaling:
        constants = policy.properties.get("constants") or {}
        if not isinstance(constants, dict):
            problems.error((*policy.path, "properties", "constants"), "must be a map")
            continue
        all_constants.update({str(k): v for k, v in constants.items()})

    owns = [_own_namespace(p, app_id, all_constants, problems) for p in scaling]
    shared = _merge(owns)
    _warn_conflicts(owns, problems)

    by_group = {g.name: g for g in groups}
    by_node = {w.node: w for w in workloads}
    compiled: list[ScalingPolicy] = []
    claimed: dict[str, Path] = {}
    for own in owns:
        compiled.extend(_per_target(topology, own, shared, by_group, by_node, claimed, problems))
    return compiled, shared


def _render(value: Any, constants: dict[str, Any], app_id: str, path: Path,
            problems: Problems) -> Any:
    """Replace {{NAME}} by constants (and {{stack}} by the app id), in every string."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in constants:
                return str(constants[name])
            if name == "stack":
                return app_id
            problems.error(path, f"{{{{{name}}}}} is not a constant of this app")
            return match.group(0)

        return _TEMPLATE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _render(v, constants, app_id, (*path, str(k)), problems)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, constants, app_id, (*path, i), problems) for i, v in enumerate(value)]
    return value


def _own_namespace(policy: PolicyTemplate, app_id: str, all_constants: dict[str, Any],
                   problems: Problems) -> _Own:
    ppath = (*policy.path, "properties")
    own_constants = policy.properties.get("constants") or {}
    if not isinstance(own_constants, dict):
        own_constants = {}
    visible = {**all_constants, **{str(k): v for k, v in own_constants.items()}}
    for name in own_constants:
        if not _IDENTIFIER.match(str(name)):
            problems.error((*ppath, "constants", str(name)),
                           "a constant name must be a Python identifier (the rule reads it)")
    props = {k: _render(v, visible, app_id, (*ppath, k), problems)
             for k, v in policy.properties.items() if k != "constants"}
    policy.properties = {**props, "constants": dict(own_constants)}

    queries = props.get("queries") or {}
    if not isinstance(queries, dict):
        problems.error((*ppath, "queries"), "must be a map of name to PromQL")
        queries = {}
    for name, query in queries.items():
        qpath = (*ppath, "queries", str(name))
        if not _IDENTIFIER.match(str(name)):
            problems.error(qpath, "a query name must be a Python identifier (the rule reads it)")
        if not (isinstance(query, str) and query.strip()) and not (
            isinstance(query, list) and len(query) == 2 and all(isinstance(q, str) for q in query)
        ):
            problems.error(qpath, "must be a PromQL string, or [PromQL, label name] for a list "
                                  "of label values")

    alerts = props.get("alerts") or []
    if not isinstance(alerts, list):
        problems.error((*ppath, "alerts"), "must be a list of Prometheus alert rules")
        alerts = []
    for i, alert in enumerate(alerts):
        apath = (*ppath, "alerts", i)
        if not isinstance(alert, dict):
            problems.error(apath, "an alert must be a map with alert, expr and optionally for")
            continue
        if not isinstance(alert.get("alert"), str) or not _IDENTIFIER.match(alert["alert"]):
            problems.error((*apath, "alert"), f"{_given(alert, 'alert')}a name that is a Python "
                                              "identifier")
        if not isinstance(alert.get("expr"), str) or not alert["expr"].strip():
            problems.error((*apath, "expr"), f"{_given(alert, 'expr')}a PromQL expression")
        for key in alert:
            if key not in ("alert", "expr", "for", "labels", "annotations", "keep_firing_for"):
                problems.error((*apath, str(key)), "unknown field of a Prometheus alert rule")

    sources = props.get("sources") or []
    if not isinstance(sources, list):
        problems.error((*ppath, "sources"), "must be a list of host:port scrape targets")
        sources = []
    for i, source in enumerate(sources):
        if not isinstance(source, str) or not _SOURCE.match(source):
            problems.error((*ppath, "sources", i), f"{source!r} is not a host:port target")

    return _Own(policy, dict(own_constants), dict(queries),
                [a for a in alerts if isinstance(a, dict)],
                [s for s in sources if isinstance(s, str)])


def _merge(owns: Iterable[_Own]) -> SharedNamespace:
    shared = SharedNamespace()
    for own in owns:
        shared.constants.update(own.constants)
        shared.queries.update(own.queries)
        for alert in own.alerts:
            if alert not in shared.alerts:
                shared.alerts.append(alert)
        for source in own.sources:
            if source not in shared.sources:
                shared.sources.append(source)
    return shared


def _warn_conflicts(owns: list[_Own], problems: Problems) -> None:
    seen: dict[str, tuple[Any, Path]] = {}
    for own in owns:
        names = {**own.constants, **own.queries,
                 **{a.get("alert"): a for a in own.alerts if isinstance(a.get("alert"), str)}}
        for name, value in names.items():
            if name in seen and seen[name][0] != value:
                problems.warn(own.template.path,
                              f"{name!r} is also defined, differently, by the policy at "
                              f"{format_path(seen[name][1])}; each policy uses its own "
                              "(MiCADO would have used the last one for both)")
            seen[name] = (value, own.template.path)


def _alert_names(alerts: list[dict[str, Any]]) -> set[str]:
    return {a["alert"] for a in alerts if isinstance(a.get("alert"), str)}


def _bound(value: Any, path: Path, problems: Problems) -> int | None:
    if isinstance(value, str) and _TEMPLATE.search(value):
        return None  # an undefined constant, already reported
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.error(path, f"must be a whole number >= 0, got {value!r}")
    return None


def _rule_names(rule: str, policy: PolicyTemplate, problems: Problems) -> tuple[set[str], bool]:
    """Names the rule reads but never assigns; reports a syntax error with its line."""
    path = (*policy.path, "properties", "scaling_rule")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "\d" in a string: valid, only deprecated
            tree = ast.parse(rule, filename="scaling_rule", mode="exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}: " if exc.lineno else "cannot be parsed: "
        problems.error(path, f"{where}{exc.msg}" + (f": {exc.text.strip()}" if exc.text else ""))
        return set(), False
    except ValueError as exc:  # a null byte in the source
        problems.error(path, f"cannot be parsed: {exc}")
        return set(), False
    stored: set[str] = set()
    loaded: set[str] = set()
    for n in ast.walk(tree):  # one walk: the rules of a big ADT are many
        if isinstance(n, ast.Name):
            (loaded if isinstance(n.ctx, ast.Load) else stored).add(n.id)
        elif isinstance(n, ast.arg):
            stored.add(n.arg)
    return loaded - stored, True


def _per_target(topology: Topology, own: _Own, shared: SharedNamespace,
                by_group: dict[str, NodeGroup], by_node: dict[str, Workload],
                claimed: dict[str, Path], problems: Problems) -> list[ScalingPolicy]:
    policy = own.template
    ppath = (*policy.path, "properties")
    if not policy.targets:
        if not policy.targets_given:  # named but unknown targets are reported already
            problems.error((*policy.path, "targets"),
                           "required: the node group or container to scale")
        return []
    rule = policy.properties.get("scaling_rule")
    if not isinstance(rule, str):
        if not problems.has_error((*ppath, "scaling_rule")):  # given but of the wrong type
            problems.error((*ppath, "scaling_rule"),
                           "required: Python code that sets the new count")
        return []
    free_names, ok = _rule_names(rule, policy, problems)
    own_names = set(own.constants) | set(own.queries) | _alert_names(own.alerts)
    shared_names = set(shared.constants) | set(shared.queries) | _alert_names(shared.alerts)
    borrowed = sorted(n for n in free_names - own_names if n in shared_names)
    unknown = sorted(n for n in free_names - own_names - shared_names
                     if n not in MICADO_VARIABLES and n not in BUILTIN_NAMES)
    # numpy's names MiCADO's rules had and this engine does not offer fail at run time
    for name in list(unknown):
        message = unavailable_message(name)
        if ok and message:
            unknown.remove(name)
            problems.warn((*ppath, "scaling_rule"), message)
    if ok and borrowed:
        problems.warn(policy.path, f"the scaling rule reads {', '.join(borrowed)} defined only by "
                                   "another policy of this app (MiCADO's merged namespace); "
                                   "define them in this policy to make it self-contained")
    if ok and unknown:
        problems.warn((*ppath, "scaling_rule"),
                      f"reads {', '.join(unknown)}, which no constant, query or alert defines")

    options = policy_options(policy.properties, ppath, problems)
    low = _bound(policy.properties.get("min_instances", 1), (*ppath, "min_instances"), problems)
    high_raw = policy.properties.get("max_instances", low)
    high = _bound(high_raw, (*ppath, "max_instances"), problems)
    if low is not None and high is not None and high < low:
        problems.error((*ppath, "max_instances"), f"{high} is below min_instances {low}")

    out = []
    for target in policy.targets:
        tpath = (*policy.path, "targets")
        if target in claimed:
            problems.error(tpath, f"{target!r} is already scaled by the policy at "
                                  f"{format_path(claimed[target])}")
            continue
        claimed[target] = policy.path
        node = topology.nodes[target]
        group, workload = by_group.get(target), by_node.get(target)
        kind: str
        hosts: list[str] = []
        t_low, t_high = low, high
        if group is not None:
            kind = "node_group"
            if node.occurrences is not None and low is not None and high is not None:
                o_low, o_high = node.occurrences
                t_low, t_high = o_low, (o_high if o_high is not None else 99)
                if (t_low, t_high) != (low, high):
                    problems.warn(tpath, f"occurrences of {target!r} ({t_low}..{t_high}) override "
                                         f"the policy's min/max ({low}..{high}), as in MiCADO")
            if t_low is not None and t_high is not None:
                group.min_instances, group.max_instances = t_low, t_high
        elif workload is not None:
            kind = "workload"
            # MiCADO: a container rule sees the VMs of its hosts, or of every VM set if unplaced;
            # one placed on edge devices only sees none
            hosts = ([h for h in workload.hosts if h in by_group] if workload.hosts
                     else list(by_group))
            if workload.kind not in SCALABLE_KINDS:
                problems.warn(tpath, f"{target!r} is a {workload.kind}; only "
                                     f"{' and '.join(SCALABLE_KINDS)} can be scaled, so this "
                                     "policy will only be evaluated")
        else:
            problems.error(tpath, f"{target!r} ({node.type}) is neither a compute node nor a "
                                  "container, so it cannot be scaled")
            continue
        if t_low is None or t_high is None:
            continue
        out.append(ScalingPolicy(
            name=f"{policy.name}-{target}",
            target=target, target_kind=kind,  # type: ignore[arg-type]
            min_instances=t_low, max_instances=t_high, scaling_rule=rule,
            constants=dict(own.constants), queries=dict(own.queries), alerts=list(own.alerts),
            sources=list(own.sources), borrowed=borrowed, hosts=hosts, options=dict(options),
            source_path=format_path(policy.path),
        ))
    return out


def _given(mapping: dict[str, Any], key: str) -> str:
    """How a bad field's message starts: missing is "required", present but wrong "must be"."""
    return "must be " if mapping.get(key) is not None else "required: "
