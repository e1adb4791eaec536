"""Compute nodes become node groups (VM sets); MiCADO Edge nodes become edge entries.

The `Terraform:` / `Occopus:` interface keys of MiCADO ADTs are accepted and only say that the
node is a VM set; provisioning is ours (OpenStack and EC2 for now).
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import Problems
from .model import Contextualisation, EdgeNode, NodeGroup
from .topology import NodeTemplate, Topology
from .yamlio import describe_yaml_error, load_yaml

COMPUTE = "tosca.nodes.MiCADO.Compute"
EDGE = "tosca.nodes.MiCADO.Edge"
# cloud name, shown name, and whether this release can provision it
CLOUDS: dict[str, tuple[str, str, bool]] = {
    "tosca.nodes.MiCADO.Nova.Compute": ("openstack", "OpenStack", True),
    "tosca.nodes.MiCADO.EC2.Compute": ("ec2", "AWS EC2", True),
    "tosca.nodes.MiCADO.Azure.Compute": ("azure", "Azure", False),
    "tosca.nodes.MiCADO.GCE.Compute": ("gce", "Google Compute Engine", False),
    "tosca.nodes.MiCADO.OCI.Compute": ("oci", "Oracle Cloud", False),
    "tosca.nodes.MiCADO.CloudSigma.Compute": ("cloudsigma", "CloudSigma", False),
    "tosca.nodes.MiCADO.CloudBroker.Compute": ("cloudbroker", "CloudBroker", False),
}
ORCHESTRATOR_INTERFACES = ("Terraform", "Occopus")
# properties that are credentials: kept out of the plan (the plan is written to disk)
SECRET_PROPERTIES = frozenset({"admin_password", "vnc_password"})
REDACTED = "<redacted>"


def is_compute(topology: Topology, node: NodeTemplate) -> bool:
    return topology.is_a(node, COMPUTE)


def is_edge(topology: Topology, node: NodeTemplate) -> bool:
    return topology.is_a(node, EDGE)


def node_groups(topology: Topology, problems: Problems) -> list[NodeGroup]:
    """One NodeGroup per compute node, bounds set to 1..1 until policies say otherwise."""
    groups = []
    for node in topology.nodes.values():
        if is_compute(topology, node):
            group = _node_group(topology, node, problems)
            if group is not None:
                groups.append(group)
    return groups


def _node_group(topology: Topology, node: NodeTemplate, problems: Problems) -> NodeGroup | None:
    chain = topology.registry.chain("node_types", node.type)
    cloud = next((CLOUDS[t] for t in chain if t in CLOUDS), None)
    if cloud is None:
        problems.error((*node.path, "type"),
                       f"{node.type} does not say which cloud to use; derive it from one of "
                       f"{', '.join(sorted(CLOUDS))}")
        return None
    cloud_name, shown, available = cloud
    if not available:
        problems.warn(node.path, f"compute node {node.name!r} is on {shown}: it compiles, but "
                                 f"provisioning for {shown} is not available in this release, "
                                 "so this node group will not be created")
    interface = next((k for k in node.interfaces if k in ORCHESTRATOR_INTERFACES), None)
    endpoint = None
    if interface is not None:
        create = (node.interfaces.get(interface) or {}).get("create")
        inputs = create.get("inputs") if isinstance(create, dict) else None
        if isinstance(inputs, dict) and isinstance(inputs.get("endpoint"), str):
            endpoint = inputs["endpoint"]
    properties = {k: (REDACTED if k in SECRET_PROPERTIES and v is not None else v)
                  for k, v in node.properties.items() if k != "context" and v is not None}
    low, high = _bounds(node, problems)
    return NodeGroup(
        name=node.name, type=node.type, cloud=cloud_name, provisioning_available=available,
        interface=interface, properties=properties, min_instances=low, max_instances=high,
        contextualisation=_contextualisation(node, problems), endpoint=endpoint,
    )


def _bounds(node: NodeTemplate, problems: Problems) -> tuple[int, int]:
    """Default bounds from occurrences or the scalable capability; policies may refine them."""
    if node.occurrences is not None:
        low, high = node.occurrences
        return low, high if high is not None else max(low, 99)
    scalable = node.capabilities.get("scalable")
    props = scalable.get("properties") if isinstance(scalable, dict) else None
    if isinstance(props, dict):
        low = props.get("min_instances", 1)
        high = props.get("max_instances", low)
        path = (*node.path, "capabilities", "scalable", "properties")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            problems.error(path, "min_instances and max_instances must be whole numbers")
            return 1, 1
        if low < 0 or high < low:
            problems.error(path, "need 0 <= min_instances <= max_instances")
            return 1, 1
        return low, high
    return 1, 1


def _contextualisation(node: NodeTemplate, problems: Problems) -> Contextualisation:
    context: Any = node.properties.get("context")
    path = (*node.path, "properties", "context")
    if not context:
        return Contextualisation()
    if not isinstance(context, dict):
        problems.error(path, "must be a map with cloud_config and insert or append")
        return Contextualisation()
    insert, append = context.get("insert") is True, context.get("append") is True
    cloud_config = context.get("cloud_config")
    if insert and append:
        problems.error(path, "insert and append cannot both be true")
    if cloud_config is not None:
        try:
            parsed = load_yaml(str(cloud_config), strict=False)
        except yaml.YAMLError as exc:
            problems.error((*path, "cloud_config"),
                           f"not valid cloud-config YAML: {describe_yaml_error(exc)}")
        else:
            if parsed is not None and not isinstance(parsed, dict):
                problems.error((*path, "cloud_config"), "must be a cloud-config map")
    mode = "insert" if insert else "append" if append else "overwrite"
    if mode == "overwrite" and cloud_config is None:
        mode = "default"
    if mode == "overwrite":
        problems.warn(path, "neither insert nor append is set, so this cloud_config replaces "
                            "MiCADO's worker cloud-init: the VMs will not join the cluster "
                            "unless it joins them itself")
    path_value = context.get("path")
    return Contextualisation(mode=mode, cloud_config=cloud_config,
                             path=str(path_value) if path_value is not None else None)


def edge_nodes(topology: Topology, problems: Problems) -> list[EdgeNode]:
    edges = []
    for node in topology.nodes.values():
        if not is_edge(topology, node):
            continue
        ip = node.properties.get("public_ip")
        edges.append(EdgeNode(
            name=node.name, type=node.type, public_ip=str(ip) if ip is not None else None,
            ssh_username=node.properties.get("ssh_username"),
            has_ssh_private_key=bool(node.properties.get("ssh_private_key")),
        ))
    return edges
