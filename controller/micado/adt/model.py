"""The compiled application: what the controller consumes.

Plain dataclasses with `to_dict()` so `plan.yaml` is the same data the controller reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .errors import Problem

TargetKind = Literal["node_group", "workload"]


@dataclass
class Workload:
    """A scalable (or at least placed) Kubernetes object made from one container node."""

    node: str  # the node template name in the ADT
    kind: str  # Deployment, StatefulSet, DaemonSet, Job, Pod
    name: str  # metadata.name
    namespace: str
    selector: dict[str, str]  # labels that find its pods
    hosts: list[str] = field(default_factory=list)  # node groups / edges it is placed on


@dataclass
class Contextualisation:
    """cloud-init for a node group: MiCADO's insert / append / overwrite semantics."""

    mode: Literal["default", "insert", "append", "overwrite"] = "default"
    cloud_config: str | None = None
    path: str | None = None


@dataclass
class NodeGroup:
    """A set of identical VMs, scaled between min and max; its nodes carry `node_labels`
    (micado.eu/node_type=name and micado.eu/app=<app id>), what placement and counting use."""

    name: str
    type: str
    cloud: str  # openstack, ec2, azure, gce, oci, cloudsigma, cloudbroker
    provisioning_available: bool
    interface: str | None  # Terraform / Occopus key in the ADT: only selects our provider
    properties: dict[str, Any]
    min_instances: int
    max_instances: int
    contextualisation: Contextualisation
    endpoint: str | None = None
    node_labels: dict[str, str] = field(default_factory=dict)


@dataclass
class EdgeNode:
    """A device joined to the cluster, targetable by `host` requirements."""

    name: str
    type: str
    public_ip: str | None
    ssh_username: str | None
    has_ssh_private_key: bool  # the key itself never goes into the plan


@dataclass
class ScalingPolicy:
    """One scalability policy, constants already templated in."""

    name: str  # unique per app: <policy key>-<target>
    target: str
    target_kind: TargetKind
    min_instances: int
    max_instances: int
    scaling_rule: str
    constants: dict[str, Any]
    queries: dict[str, Any]
    alerts: list[dict[str, Any]]
    sources: list[str]
    # names the rule reads that only another policy of the app defines (MiCADO's merged namespace)
    borrowed: list[str] = field(default_factory=list)
    # node groups whose VMs a workload's rule sees (m_nodes): its hosts, else all, as in MiCADO
    hosts: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    source_path: str = ""


@dataclass
class SharedNamespace:
    """MiCADO's merged view of all policies of an app (maps: last wins; lists: de-duplicated)."""

    constants: dict[str, Any] = field(default_factory=dict)
    queries: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass
class Plan:
    app_id: str
    workloads: list[Workload] = field(default_factory=list)
    node_groups: list[NodeGroup] = field(default_factory=list)
    edges: list[EdgeNode] = field(default_factory=list)
    policies: list[ScalingPolicy] = field(default_factory=list)
    shared: SharedNamespace = field(default_factory=SharedNamespace)
    outputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CompiledApp:
    app_id: str
    manifests: list[dict[str, Any]]
    plan: Plan
    warnings: list[Problem]


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """The inverse of `Plan.to_dict()`: how the controller reads a stored plan back."""
    groups = []
    for group in data.get("node_groups", []):
        group = dict(group)
        group["contextualisation"] = Contextualisation(**group.get("contextualisation") or {})
        groups.append(NodeGroup(**group))
    return Plan(
        app_id=data["app_id"],
        workloads=[Workload(**w) for w in data.get("workloads", [])],
        node_groups=groups,
        edges=[EdgeNode(**e) for e in data.get("edges", [])],
        policies=[ScalingPolicy(**p) for p in data.get("policies", [])],
        shared=SharedNamespace(**data.get("shared") or {}),
        outputs=dict(data.get("outputs") or {}),
    )
