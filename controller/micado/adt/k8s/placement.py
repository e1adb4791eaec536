"""`host` requirements as required node affinity, the way MiCADO pins pods to VMs and edges.

Node groups label their nodes `micado.eu/node_type=<node name>` (MiCADO's label) and
`micado.eu/app=<app id>`: the term for VM hosts requires both, so a pod never lands on another
app's group of the same name. Edge devices are matched by hostname. Each kind of host gets its
own selector term, so a pod may land on any of its hosts.
"""

from __future__ import annotations

from typing import Any

from ..errors import Problems
from ..topology import NodeTemplate, Topology
from .labels import APP, NODE_TYPE
from .nodes import COMPUTE, EDGE, required_nodes

COMPUTE_KEY = NODE_TYPE
EDGE_KEY = "kubernetes.io/hostname"


def hosts_of(topology: Topology, node: NodeTemplate,
             problems: Problems) -> tuple[list[str], dict[str, list[str]]]:
    """The host node names, and the label values to match per affinity key."""
    hosts: list[str] = []
    values: dict[str, list[str]] = {COMPUTE_KEY: [], EDGE_KEY: []}
    for requirement, target in required_nodes(topology, node, "host"):
        if topology.is_a(target, COMPUTE):
            key, value = COMPUTE_KEY, target.name
        elif topology.is_a(target, EDGE):
            key, value = EDGE_KEY, target.name.lower()
        else:
            problems.error(requirement.path, f"{target.name!r} ({target.type}) cannot host "
                                             f"containers: a host must be a {COMPUTE} or "
                                             f"{EDGE} node")
            continue
        if target.name not in hosts:
            hosts.append(target.name)
        if value not in values[key]:
            values[key].append(value)
    return hosts, values


def node_affinity(values: dict[str, list[str]], app_id: str) -> dict[str, Any] | None:
    """A required nodeAffinity with one term per key that has hosts (VM hosts: of this app's
    groups), or None."""
    terms = []
    for key, names in values.items():
        if not names:
            continue
        expressions = [{"key": key, "operator": "In", "values": names}]
        if key == COMPUTE_KEY:
            expressions.append({"key": APP, "operator": "In", "values": [app_id]})
        terms.append({"matchExpressions": expressions})
    if not terms:
        return None
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": terms}}}
