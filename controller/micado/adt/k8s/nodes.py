"""What each MiCADO node type means to the Kubernetes translation, and shared small helpers."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from ..errors import PathPart, Problems
from ..topology import NodeTemplate, Requirement, Topology

P = "tosca.nodes.MiCADO."
DOCKER = P + "Container.Application.Docker"
INIT = P + "Container.Application.Docker.Init"
POD = P + "Container.Application.Pod"
POD_LEGACY = P + "Container.Pod.Kubernetes"  # derives from POD in the bundled types
VOLUME = P + "Container.Volume"
CONFIG = P + "Container.Config"
RAW = P + "Kubernetes"
COMPUTE = P + "Compute"
EDGE = P + "Edge"

KUBERNETES = "Kubernetes"
INPUTS_PATH = ("interfaces", KUBERNETES, "create", "inputs")
DEFAULT_NAMESPACE = "default"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

Path = tuple[PathPart, ...]


def required_nodes(topology: Topology, node: NodeTemplate, name: str,
                   ) -> Iterator[tuple[Requirement, NodeTemplate]]:
    """The `name` requirements of a node, with the node template each one points at."""
    for requirement in node.requirements:
        if requirement.name != name or requirement.node is None:
            continue
        target = topology.nodes.get(requirement.node)
        if target is not None:
            yield requirement, target


def is_container(topology: Topology, node: NodeTemplate) -> bool:
    return topology.is_a(node, DOCKER) and not topology.is_a(node, INIT)


def is_init(topology: Topology, node: NodeTemplate) -> bool:
    return topology.is_a(node, INIT)


def is_pod(topology: Topology, node: NodeTemplate) -> bool:
    return topology.is_a(node, POD) or node.type == POD_LEGACY


def create_inputs(node: NodeTemplate, operation: str = "create") -> dict[str, Any]:
    """interfaces.Kubernetes.<operation>.inputs (type and template merged), {} when absent."""
    interface = node.interfaces.get(KUBERNETES)
    body = interface.get(operation) if isinstance(interface, dict) else None
    inputs = body.get("inputs") if isinstance(body, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def user_inputs(node: NodeTemplate, problems: Problems) -> dict[str, Any]:
    """A copy of the create inputs but `kind`, with the parts merged by shape checked."""
    inputs = {k: copy.deepcopy(v) for k, v in create_inputs(node).items() if k != "kind"}
    _keep_maps(node, inputs, ("metadata", "spec"), (), problems)
    metadata = inputs.get("metadata")
    spec = inputs.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    text_values(template.get("metadata") if isinstance(template, dict) else None)
    if isinstance(metadata, dict):
        _keep_maps(node, metadata, ("labels", "annotations"), ("metadata",), problems)
        text_values(metadata)
        for key in ("name", "namespace"):
            if key in metadata and not isinstance(metadata[key], str):
                if metadata[key] is not None:
                    problems.error(inputs_path(node, "metadata", key), "must be a string")
                del metadata[key]
    return inputs


def _keep_maps(node: NodeTemplate, parent: dict[str, Any], keys: tuple[str, ...],
               where: Path, problems: Problems) -> None:
    for key in keys:
        if key not in parent or isinstance(parent[key], dict):
            continue
        if parent[key] is not None:
            problems.error(inputs_path(node, *where, key), "must be a map")
        del parent[key]  # an empty `metadata:` adds nothing


def inputs_path(node: NodeTemplate, *rest: PathPart) -> Path:
    return (*node.path, *INPUTS_PATH, *rest)


def prop_path(node: NodeTemplate, *rest: PathPart) -> Path:
    return (*node.path, "properties", *rest)


def namespace_of(node: NodeTemplate, problems: Problems) -> str:
    """metadata.namespace from the create inputs, else "default" (always set explicitly)."""
    metadata = create_inputs(node).get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    if namespace is None:
        return DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace):
        problems.error(inputs_path(node, "metadata", "namespace"),
                       f"{namespace!r} is not a valid namespace name (a DNS-1123 label: "
                       "lower-case letters, digits and '-')")
        return DEFAULT_NAMESPACE
    return namespace


def is_dns_label(name: str) -> bool:
    return bool(_DNS_LABEL.match(name))


def is_dns_1035(name: str) -> bool:
    return bool(_DNS_1035.match(name))


def is_dns_subdomain(name: str) -> bool:
    return bool(_DNS_SUBDOMAIN.match(name))


def check_node_name(node: NodeTemplate, problems: Problems) -> None:
    """Node names become object and label names, so Kubernetes' naming rules apply."""
    if "_" in node.name:
        problems.error(node.path, f"node name {node.name!r} contains an underscore; MiCADO and "
                                  "Kubernetes forbid them (use '-')")
    elif not is_dns_label(node.name):
        problems.error(node.path, f"node name {node.name!r} is not a valid Kubernetes name: use "
                                  "at most 63 lower-case letters, digits and '-', starting and "
                                  "ending with a letter or digit")


def drop_none(value: Any) -> Any:
    """A copy without None values: unset optional properties resolve to None."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value if v is not None]
    return value


def is_plain_scalar(value: Any) -> bool:
    """A number or boolean (what YAML or get_input gives where text was meant)."""
    return isinstance(value, int | float) and not isinstance(value, str)


def text_values(metadata: Any, keys: tuple[str, ...] = ("labels", "annotations")) -> None:
    """Label and annotation values as Kubernetes wants them: `version: 2` becomes "2"."""
    if not isinstance(metadata, dict):
        return
    for key in keys:
        mapping = metadata.get(key)
        if isinstance(mapping, dict):
            metadata[key] = {k: as_text(v) if is_plain_scalar(v) else v
                             for k, v in mapping.items()}


def as_text(value: Any) -> str:
    """A scalar as Kubernetes wants it in string-only fields (YAML true -> "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def already_reported(problems: Problems, path: Path) -> bool:
    """True when an error is already recorded at `path` (e.g. by the type checks)."""
    return problems.has_error(path)
