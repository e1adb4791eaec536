"""Container and Pod nodes as Deployments, StatefulSets, DaemonSets, Jobs or bare Pods.

Which nodes run on their own follows MiCADO: a container referenced by another container's
(or a Pod node's) `container` requirement joins that pod as a sidecar when it declares no
Kubernetes interface of its own; `...Docker.Init` containers referenced that way become init
containers. Everything else that is a container becomes its own workload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Problems
from ..model import Workload
from ..topology import NodeTemplate, Topology
from ..typesystem import deep_merge
from .containers import BuiltContainer, PodOptions, build_container
from .fields import Origin, input_origins, is_v07, place_inputs
from .labels import app_labels, selector_labels
from .nodes import (
    DOCKER,
    KUBERNETES,
    create_inputs,
    inputs_path,
    is_container,
    is_dns_subdomain,
    is_init,
    is_pod,
    namespace_of,
    required_nodes,
    user_inputs,
)
from .placement import hosts_of, node_affinity
from .services import build_services, split_ports
from .volumes import VolumeSource, mount

API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
                "Job": "batch/v1", "Pod": "v1"}
SELECTED_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass
class PodPlan:
    """One workload to make: its node, kind, and the container nodes in its pod."""

    node: NodeTemplate
    kind: str
    containers: list[NodeTemplate] = field(default_factory=list)
    inits: list[NodeTemplate] = field(default_factory=list)


@dataclass
class BuiltWorkload:
    manifest: dict[str, Any]
    services: list[dict[str, Any]]
    workload: Workload
    origins: list[Origin] = field(default_factory=list)  # manifest parts the inputs wrote


def plan_pods(topology: Topology, problems: Problems) -> list[PodPlan]:
    """Every workload of the topology, in node order, with its sidecars and init containers."""
    referenced = _container_references(topology, problems)
    plans = []
    for node in topology.nodes.values():
        if is_pod(topology, node):
            plan = _plan(topology, node, [], problems)
            if plan is not None and not plan.containers:
                problems.error((*node.path, "requirements"), "a pod needs at least one "
                               "`container` requirement naming a container node")
                continue
        elif is_container(topology, node):
            if not _runs_alone(node, referenced.get(node.name, []), problems):
                continue
            plan = _plan(topology, node, [node], problems)
        else:
            if is_init(topology, node) and node.name not in referenced:
                problems.warn(node.path, "an init container runs only in a pod that names it in "
                                         "a `container` requirement; nothing does, so it is unused")
            continue
        if plan is not None:
            plans.append(plan)
    return plans


def _container_references(topology: Topology, problems: Problems) -> dict[str, list[str]]:
    """container node name -> names of the container/pod nodes that list it in `container`."""
    referenced: dict[str, list[str]] = {}
    for node in topology.nodes.values():
        if not (is_container(topology, node) or is_pod(topology, node)):
            continue
        for requirement, target in required_nodes(topology, node, "container"):
            if target.name == node.name or not topology.is_a(target, DOCKER):
                problems.error(requirement.path, f"{target.name!r} is not a container this pod "
                                                 f"can hold (a {DOCKER} node)")
                continue
            users = referenced.setdefault(target.name, [])
            if node.name not in users:
                users.append(node.name)
    return referenced


def _runs_alone(node: NodeTemplate, users: list[str], problems: Problems) -> bool:
    """A referenced container is a sidecar unless its template declares a Kubernetes interface."""
    if not users:
        return True
    if KUBERNETES not in node.declared_interfaces:
        return False
    problems.warn(node.path, f"declares its own Kubernetes interface, so it runs on its own as "
                             f"well as in the pod of {', '.join(users)}")
    return True


def _plan(topology: Topology, node: NodeTemplate, containers: list[NodeTemplate],
          problems: Problems) -> PodPlan | None:
    kind = _kind(node, "Pod" if is_pod(topology, node) else "Deployment", problems)
    if kind is None:
        return None
    plan = PodPlan(node, kind, list(containers))
    for _, target in required_nodes(topology, node, "container"):
        if target.name == node.name or not topology.is_a(target, DOCKER):
            continue  # reported with the references
        group = plan.inits if is_init(topology, target) else plan.containers
        if all(t.name != target.name for t in group):
            group.append(target)
    return plan


def _kind(node: NodeTemplate, default: str, problems: Problems) -> str | None:
    kind = create_inputs(node).get("kind") or default
    if not isinstance(kind, str) or kind not in API_VERSIONS:
        problems.error(inputs_path(node, "kind"), f"unsupported kind {kind!r}: a container runs "
                                                  f"as one of {', '.join(API_VERSIONS)}")
        return None
    return str(kind)


def build_workload(topology: Topology, plan: PodPlan, app_id: str,
                   sources: dict[str, VolumeSource], problems: Problems) -> BuiltWorkload:
    """The workload manifest of one plan, its Services, and the Workload the controller scales."""
    node = plan.node
    namespace = namespace_of(node, problems)
    containers = [build_container(topology, n, False, problems) for n in plan.containers]
    inits = [build_container(topology, n, True, problems) for n in plan.inits]
    _check_container_names(containers + inits, problems)
    ports = [p for built in containers for p in split_ports(built, problems)]
    for built in inits:
        if built.ports:
            problems.warn((*built.node.path, "properties", "ports"),
                          "ignored: an init container serves no ports")
    pod_spec: dict[str, Any] = {}
    volumes: list[dict[str, Any]] = []
    for built in containers + inits:
        mount(topology, built.node, built.spec, volumes, namespace, sources, problems)
    pod_spec["containers"] = [b.spec for b in containers]
    if inits:
        pod_spec["initContainers"] = [b.spec for b in inits]
    if volumes:
        pod_spec["volumes"] = volumes
    _apply_options(pod_spec, [b.options for b in containers])
    hosts, values = hosts_of(topology, node, problems)
    _warn_sidecar_hosts(plan, problems)
    pod_spec["affinity"] = node_affinity(values, app_id)
    version = containers[0].version if containers else "latest"
    pod_labels = {**_compose_labels(containers), **app_labels(node.name, app_id, version)}
    manifest = _manifest(plan, app_id, namespace, version, pod_labels, pod_spec)
    inputs = place_inputs(node, plan.kind, API_VERSIONS[plan.kind], user_inputs(node, problems),
                          is_v07(topology.micado_release), problems)
    origins = input_origins(node, manifest, inputs)
    manifest = deep_merge(manifest, inputs.fields)
    name = _final_name(node, manifest, problems)
    selector = _selector(manifest, plan.kind, selector_labels(node.name, app_id))
    services = build_services(node.name, app_id, namespace, selector, ports, problems)
    workload = Workload(node=node.name, kind=plan.kind, name=name, namespace=namespace,
                        selector=selector, hosts=hosts)
    return BuiltWorkload(manifest, services, workload, origins)


def _check_container_names(built: list[BuiltContainer], problems: Problems) -> None:
    seen: set[str] = set()
    for container in built:
        name = container.spec.get("name")
        if name in seen:
            problems.error(container.node.path, f"another container of this pod is also named "
                                                f"{name!r}; set a different `name`")
        seen.add(str(name))


def _apply_options(pod_spec: dict[str, Any], options: list[PodOptions]) -> None:
    """Compose settings become PodSpec settings; the first container's grace period wins."""
    grace = next((o.grace_seconds for o in options if o.grace_seconds is not None), None)
    if grace is not None:
        pod_spec["terminationGracePeriodSeconds"] = grace
    if any(o.host_pid for o in options):
        pod_spec["hostPID"] = True
    nameservers = _unique(s for o in options for s in o.nameservers)
    searches = _unique(s for o in options for s in o.searches)
    if nameservers or searches:
        pod_spec["dnsConfig"] = {"nameservers": nameservers or None, "searches": searches or None}


def _unique(items: Any) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _compose_labels(containers: list[BuiltContainer]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for container in containers:
        for key, value in container.labels.items():
            labels.setdefault(key, value)
    return labels


def _warn_sidecar_hosts(plan: PodPlan, problems: Problems) -> None:
    for member in plan.containers + plan.inits:
        if member is plan.node:
            continue
        for requirement in member.requirements:
            if requirement.name == "host":
                problems.warn(requirement.path, f"ignored: {member.name!r} runs in the pod of "
                                                f"{plan.node.name!r}, which decides placement")


def _manifest(plan: PodPlan, app_id: str, namespace: str, version: str,
              pod_labels: dict[str, str], pod_spec: dict[str, Any]) -> dict[str, Any]:
    name = plan.node.name
    if plan.kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
                "spec": pod_spec}
    spec: dict[str, Any] = {}
    if plan.kind in SELECTED_KINDS:
        spec["selector"] = {"matchLabels": selector_labels(name, app_id)}
    if plan.kind == "StatefulSet":
        spec["serviceName"] = name  # required; the Service made from its ports has this name
    if plan.kind == "Job":
        pod_spec.setdefault("restartPolicy", "OnFailure")  # Always is not allowed in a Job
    spec["template"] = {"metadata": {"labels": pod_labels}, "spec": pod_spec}
    return {"apiVersion": API_VERSIONS[plan.kind], "kind": plan.kind,
            "metadata": {"name": name, "namespace": namespace,
                         "labels": app_labels(name, app_id, version)},
            "spec": spec}


def _final_name(node: NodeTemplate, manifest: dict[str, Any], problems: Problems) -> str:
    """metadata.name after the user's inputs, which may rename the workload."""
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not is_dns_subdomain(name):
        problems.error(inputs_path(node, "metadata", "name"), f"{name!r} is not a valid "
                       "Kubernetes name (lower-case letters, digits, '-' and '.')")
        return node.name
    return name


def _selector(manifest: dict[str, Any], kind: str, default: dict[str, str]) -> dict[str, str]:
    """The labels that find the pods: the final matchLabels where the kind has a selector."""
    if kind in SELECTED_KINDS:
        spec = manifest.get("spec")
        selector = spec.get("selector") if isinstance(spec, dict) else None
        labels = selector.get("matchLabels") if isinstance(selector, dict) else None
        if isinstance(labels, dict) and labels:
            return {str(k): str(v) for k, v in labels.items()}
    return default
