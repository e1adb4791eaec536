"""Read an ADT into a resolved topology: types known, inputs and functions applied, checked.

This is the validation half of the compiler. Everything after it (manifests, node groups,
policies) reads a `Topology` and can rely on types existing and properties being well typed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import PathPart, Problems
from .functions import property_lookup, resolve_inputs_in, resolve_properties_in
from .imports import ImportResolver, import_target, micado_release
from .inputs import resolve_inputs
from .typesystem import TypeRegistry, deep_merge, did_you_mean
from .values import check_value
from .yamlio import TooDeepError, describe_yaml_error, load_yaml

TOSCA_VERSIONS = (
    "tosca_simple_yaml_1_0", "tosca_simple_yaml_1_1", "tosca_simple_yaml_1_2",
    "tosca_simple_yaml_1_3",
)
DOCUMENT_KEYS = frozenset({
    "tosca_definitions_version", "namespace", "metadata", "description", "dsl_definitions",
    "repositories", "imports", "artifact_types", "data_types", "capability_types",
    "interface_types", "relationship_types", "node_types", "group_types", "policy_types",
    "topology_template",
})
TOPOLOGY_KEYS = frozenset({
    "description", "inputs", "node_templates", "relationship_templates", "groups", "policies",
    "outputs", "substitution_mappings", "workflows",
})
NODE_KEYS = frozenset({
    "type", "description", "metadata", "directives", "properties", "attributes", "requirements",
    "capabilities", "interfaces", "artifacts", "node_filter", "copy", "occurrences",
    "instance_count",
})
POLICY_KEYS = frozenset({"type", "description", "metadata", "properties", "targets", "triggers"})
UNBOUNDED = "UNBOUNDED"
MAX_INSTANCES = 100  # clones per node template; each clone is a node of its own
TT = "topology_template"


@dataclass
class Requirement:
    """One entry of a node's `requirements`, e.g. `host: worker-node`."""

    name: str
    node: str | None
    relationship: str | None
    properties: dict[str, Any]
    path: tuple[PathPart, ...]


@dataclass
class NodeTemplate:
    name: str
    type: str
    properties: dict[str, Any]
    requirements: list[Requirement]
    interfaces: dict[str, Any]
    metadata: dict[str, Any]
    path: tuple[PathPart, ...]
    occurrences: tuple[int, int | None] | None = None
    template_name: str = ""  # the name in the ADT; differs from `name` for clones
    capabilities: dict[str, Any] = field(default_factory=dict)
    # the template's own `artifacts` (functions resolved) and the interface names it declares
    # itself: MiCADO takes the image from an artifact and tells sidecars by their interfaces
    artifacts: dict[str, Any] = field(default_factory=dict)
    declared_interfaces: frozenset[str] = frozenset()


@dataclass
class PolicyTemplate:
    name: str
    type: str
    targets: list[str]
    properties: dict[str, Any]
    path: tuple[PathPart, ...]
    targets_given: bool = True  # False when the ADT lists no targets at all


@dataclass
class Topology:
    registry: TypeRegistry
    version: str
    description: str
    inputs: dict[str, Any]
    nodes: dict[str, NodeTemplate] = field(default_factory=dict)
    policies: list[PolicyTemplate] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    repositories: dict[str, Any] = field(default_factory=dict)
    # the micado-scale/tosca branch or tag the ADT's first MiCADO import names: v0.7.x type
    # files mean v0.7's reading of interface inputs
    micado_release: str | None = None
    # node templates reported as unreadable (no map, no or unknown type): references to them
    # are not reported again
    unreadable: set[str] = field(default_factory=set)

    def is_a(self, node: NodeTemplate, type_name: str) -> bool:
        return self.registry.is_a("node_types", node.type, type_name)

    def nodes_of(self, type_name: str) -> list[NodeTemplate]:
        return [n for n in self.nodes.values() if self.is_a(n, type_name)]


def read_topology(
    text: str, params: Mapping[str, Any], base_dir: Path | None, problems: Problems
) -> Topology | None:
    """Parse and check an ADT. Returns None only when the document cannot be read at all."""
    try:
        document = load_yaml(text)
    except TooDeepError as exc:
        problems.error(exc.path, describe_yaml_error(exc))
        return None
    except yaml.YAMLError as exc:
        problems.error((), f"not valid YAML: {describe_yaml_error(exc)}")
        return None
    if not isinstance(document, dict):
        problems.error((), "an ADT must be a YAML map with tosca_definitions_version and "
                           "topology_template")
        return None
    version = document.get("tosca_definitions_version")
    if version is None:
        problems.error(("tosca_definitions_version",), "required")
    elif version not in TOSCA_VERSIONS:
        problems.error(("tosca_definitions_version",),
                       f"unsupported version {version!r}; use one of {', '.join(TOSCA_VERSIONS)}")
    for key in document:
        if key not in DOCUMENT_KEYS:
            problems.error((str(key),), "unknown top-level key")

    registry = TypeRegistry()
    resolver = ImportResolver(problems, base_dir)
    resolver.load_normative()
    resolver.resolve(document.get("imports"), ("imports",), None)
    for loaded in resolver.files:
        registry.add_document(loaded.document, (f"<{loaded.source.label}>",), problems)
    registry.add_document(document, (), problems)
    registry.check(problems)

    repositories = document.get("repositories") or {}
    if not isinstance(repositories, dict):
        problems.error(("repositories",), "must be a map of name to URL")
        repositories = {}

    body = document.get(TT)
    if body is None:
        problems.error((TT,), "required")
        body = {}
    if not isinstance(body, dict):
        problems.error((TT,), "must be a map")
        body = {}
    for key in body:
        if key not in TOPOLOGY_KEYS:
            problems.error((TT, str(key)), "unknown key in topology_template")

    inputs = resolve_inputs(body.get("inputs"), params, registry, problems)
    description = document.get("description") or body.get("description") or ""
    topology = Topology(registry, str(version), str(description), inputs,
                        repositories=dict(repositories),
                        micado_release=_micado_release(document.get("imports")))
    _read_nodes(topology, body.get("node_templates"), problems)
    _read_policies(topology, body.get("policies"), problems)
    outputs = body.get("outputs") or {}
    if not isinstance(outputs, dict):
        problems.error((TT, "outputs"), "must be a map")
    else:
        topology.outputs = resolve_inputs_in(outputs, inputs, (TT, "outputs"), problems)
    return topology


def _micado_release(imports: Any) -> str | None:
    for entry in imports if isinstance(imports, list) else []:
        target = import_target(entry)
        release = micado_release(target) if target is not None else None
        if release is not None:
            return release
    return None


# --------------------------------------------------------------------------- node templates

def _occurrences(value: Any, path: tuple[PathPart, ...], problems: Problems,
                 ) -> tuple[int, int | None] | None:
    if value is None:
        return None
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
            and not isinstance(value[0], bool)
            and (value[1] == UNBOUNDED or (isinstance(value[1], int)
                                            and not isinstance(value[1], bool)))):
        low, high = value[0], (None if value[1] == UNBOUNDED else value[1])
        if low < 0 or (high is not None and high < low):
            problems.error(path, "occurrences must be [min, max] with 0 <= min <= max")
            return None
        return low, high
    problems.error(path, "occurrences must be [min, max], max an integer or UNBOUNDED")
    return None


def _clone_count(raw: dict[str, Any], inputs: Mapping[str, Any], path: tuple[PathPart, ...],
                 occurrences: tuple[int, int | None] | None, problems: Problems) -> int | None:
    """How many clones `instance_count` asks for, or None when the node is not cloned."""
    if "instance_count" not in raw:
        return None
    count = resolve_inputs_in(raw["instance_count"], inputs, (*path, "instance_count"), problems)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        problems.error((*path, "instance_count"), "must be a whole number >= 0")
        return None
    if count > MAX_INSTANCES:
        problems.error((*path, "instance_count"), f"{count} clones is more than the "
                       f"{MAX_INSTANCES} a template may make; scale with a policy instead")
        return None
    if occurrences is not None:
        low, high = occurrences
        if count < low or (high is not None and count > high):
            problems.error((*path, "instance_count"),
                           f"{count} is outside occurrences [{low}, {high or UNBOUNDED}]")
    return count


def _read_nodes(topology: Topology, raw_nodes: Any, problems: Problems) -> None:
    path0: tuple[PathPart, ...] = (TT, "node_templates")
    if raw_nodes is None:
        problems.error(path0, "required: an ADT needs at least one node template")
        return
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        problems.error(path0, "must be a non-empty map of node name to template")
        return
    registry = topology.registry
    clones: dict[str, list[str]] = {}
    pending: list[tuple[NodeTemplate, dict[str, Any], int | None]] = []
    for name, raw in raw_nodes.items():
        name = str(name)
        path = (*path0, name)
        if not isinstance(raw, dict):
            problems.error(path, "a node template must be a map with a type")
            topology.unreadable.add(name)
            continue
        for key in raw:
            if key not in NODE_KEYS:
                problems.error((*path, str(key)), "unknown key in a node template")
        type_name = raw.get("type")
        if not isinstance(type_name, str):
            problems.error((*path, "type"), "required")
            topology.unreadable.add(name)
            continue
        if not registry.known("node_types", type_name):
            problems.error((*path, "type"), f"unknown node type {type_name!r}"
                                            f"{registry.suggest('node_types', type_name)}")
            topology.unreadable.add(name)
            continue
        metadata = resolve_inputs_in(raw.get("metadata") or {}, topology.inputs,
                                     (*path, "metadata"), problems)
        if not isinstance(metadata, dict):
            problems.error((*path, "metadata"), "must be a map")
            metadata = {}
        occ_raw = raw.get("occurrences", metadata.get("occurrences"))
        occ_path = (*path, "occurrences" if "occurrences" in raw else "metadata")
        occurrences = _occurrences(
            resolve_inputs_in(occ_raw, topology.inputs, occ_path, problems), occ_path, problems)
        count = _clone_count(raw, topology.inputs, path, occurrences, problems)
        indices: list[int | None] = [None] if count is None else list(range(count))
        clones[name] = [name if i is None else f"{name}-{i + 1}" for i in indices]
        for index, clone_name in zip(indices, clones[name], strict=True):
            node = NodeTemplate(
                name=clone_name, type=type_name, properties={}, requirements=[], interfaces={},
                metadata=metadata,
                path=path, occurrences=occurrences, template_name=name,
                capabilities=_capabilities(raw, topology.inputs, path, index, problems),
            )
            pending.append((node, raw, index))

    for node, raw, index in pending:
        node.properties = _node_properties(topology, node, raw, index, problems)
        topology.nodes[node.name] = node

    declared = {n.name: set(registry.properties("node_types", n.type)) for n in
                topology.nodes.values()}
    lookup = property_lookup({n.name: n.properties for n in topology.nodes.values()}, declared,
                             problems)
    for node, raw, index in pending:
        path = node.path
        node.properties = resolve_properties_in(node.properties, lookup, node.name,
                                                (*path, "properties"))
        interfaces = _node_interfaces(topology, node, raw, index, problems)
        node.interfaces = resolve_properties_in(interfaces, lookup, node.name,
                                                (*path, "interfaces"))
        node.artifacts = _node_artifacts(topology, node, raw, index, lookup, problems)
        declared = raw.get("interfaces")
        node.declared_interfaces = frozenset(
            str(k) for k in (declared if isinstance(declared, dict) else {}))
        node.requirements = _node_requirements(topology, node, raw, index, clones, problems)


def _capabilities(raw: dict[str, Any], inputs: Mapping[str, Any], path: tuple[PathPart, ...],
                  index: int | None, problems: Problems) -> dict[str, Any]:
    caps = resolve_inputs_in(raw.get("capabilities") or {}, inputs, (*path, "capabilities"),
                             problems, index)
    if not isinstance(caps, dict):
        problems.error((*path, "capabilities"), "must be a map")
        return {}
    return caps


def _node_properties(topology: Topology, node: NodeTemplate, raw: dict[str, Any],
                     index: int | None, problems: Problems) -> dict[str, Any]:
    path = (*node.path, "properties")
    given = resolve_inputs_in(raw.get("properties") or {}, topology.inputs, path, problems, index)
    if not isinstance(given, dict):
        problems.error(path, "must be a map of property name to value")
        given = {}
    return _apply_definitions(topology.registry, "node_types", node.type, given, path, problems)


def _apply_definitions(registry: TypeRegistry, section: str, type_name: str,
                       given: dict[str, Any], path: tuple[PathPart, ...], problems: Problems,
                       ) -> dict[str, Any]:
    """Given values plus defaults, each checked against its definition in the type chain."""
    definitions = registry.properties(section, type_name)
    values: dict[str, Any] = {}
    for key, value in given.items():
        key = str(key)
        definition = definitions.get(key)
        if definition is None:
            known = ", ".join(sorted(definitions)) or "none"
            problems.error((*path, key), f"unknown property of {type_name}"
                           f"{did_you_mean(key, definitions)} (properties: {known})")
            continue
        before = len(problems.errors)
        check_value(value, definition, registry, (*path, key), problems)
        if len(problems.errors) == before:  # a bad value is reported once, not passed on
            values[key] = value
    for key, definition in definitions.items():
        if key in values or key in given:  # given but wrong is reported once, not as missing
            continue
        if "default" in definition:
            values[key] = copy.deepcopy(definition["default"])
        elif definition.get("required", True) is True and definition.get("status") != "deprecated":
            problems.error((*path, key), "required")
    return values


def _node_interfaces(topology: Topology, node: NodeTemplate, raw: dict[str, Any],
                     index: int | None, problems: Problems) -> dict[str, Any]:
    path = (*node.path, "interfaces")
    given = resolve_inputs_in(raw.get("interfaces") or {}, topology.inputs, path, problems, index)
    if not isinstance(given, dict):
        problems.error(path, "must be a map of interface name to operations")
        return {}
    for name, body in given.items():
        if body is not None and not isinstance(body, dict):
            problems.error((*path, str(name)), "an interface must be a map of operations")
            return {}
        for op, op_body in (body or {}).items():
            if op_body is not None and not isinstance(op_body, dict | str):
                problems.error((*path, str(name), str(op)), "an operation must be a map")
                return {}
            inputs = op_body.get("inputs") if isinstance(op_body, dict) else None
            if inputs is not None and not isinstance(inputs, dict):
                problems.error((*path, str(name), str(op), "inputs"), "must be a map")
                return {}
    type_interfaces = topology.registry.interfaces(node.type)
    # `create:` with no body adds nothing: it must not wipe the type's inputs (as in MiCADO)
    given = {name: {op: op_body for op, op_body in (body or {}).items() if op_body is not None}
             for name, body in given.items()}
    # only the operations of interfaces carry over; the interface `type` is informational
    return deep_merge(type_interfaces, given)


def _node_artifacts(topology: Topology, node: NodeTemplate, raw: dict[str, Any],
                    index: int | None, lookup: Any, problems: Problems) -> dict[str, Any]:
    path = (*node.path, "artifacts")
    given = resolve_inputs_in(raw.get("artifacts") or {}, topology.inputs, path, problems, index)
    if not isinstance(given, dict):
        problems.error(path, "must be a map of artifact name to definition")
        return {}
    artifacts = resolve_properties_in(given, lookup, node.name, path)
    return artifacts if isinstance(artifacts, dict) else {}


def _node_requirements(topology: Topology, node: NodeTemplate, raw: dict[str, Any],
                       index: int | None, clones: Mapping[str, list[str]], problems: Problems,
                       ) -> list[Requirement]:
    path = (*node.path, "requirements")
    given = resolve_inputs_in(raw.get("requirements") or [], topology.inputs, path, problems,
                              index)
    if not isinstance(given, list):
        problems.error(path, "must be a list of single-entry maps, e.g. `- host: worker-node`")
        return []
    allowed = topology.registry.requirement_names(node.type)
    out: list[Requirement] = []
    for i, entry in enumerate(given):
        entry_path = (*path, i)
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.error(entry_path, "a requirement must be a single-entry map, e.g. "
                                       "`- host: worker-node`")
            continue
        ((req_name, body),) = entry.items()
        req_name = str(req_name)
        entry_path = (*entry_path, req_name)
        if req_name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            problems.error(entry_path, f"{node.type} has no requirement {req_name!r} "
                                       f"(requirements: {known})")
            continue
        relationship: str | None = None
        rel_props: dict[str, Any] = {}
        if isinstance(body, str):
            target: Any = body
        elif isinstance(body, dict):
            target = body.get("node")
            rel = body.get("relationship")
            if isinstance(rel, str):
                relationship = rel
            elif isinstance(rel, dict):
                relationship = rel.get("type") if isinstance(rel.get("type"), str) else None
                props = rel.get("properties") or {}
                if isinstance(props, dict):
                    rel_props = props
                else:
                    problems.error((*entry_path, "relationship", "properties"), "must be a map")
            elif rel is not None:
                problems.error((*entry_path, "relationship"), "must be a type name or a map")
        else:
            problems.error(entry_path, "must name a node template, or be a map with `node:`")
            continue
        if target is None:
            continue  # an abstract requirement with no node: nothing to resolve
        if not isinstance(target, str) or target not in clones:
            if not isinstance(target, str) or target not in topology.unreadable:  # not again
                problems.error(entry_path if isinstance(body, str) else (*entry_path, "node"),
                               f"no node template named {target!r}")
            continue
        if relationship is not None and not topology.registry.known("relationship_types",
                                                                     relationship):
            problems.error((*entry_path, "relationship"),
                           f"unknown relationship type {relationship!r}"
                           f"{topology.registry.suggest('relationship_types', relationship)}")
        for target_name in clones[target]:
            out.append(Requirement(req_name, target_name, relationship, rel_props, entry_path))
    return out


# --------------------------------------------------------------------------------- policies

def _read_policies(topology: Topology, raw_policies: Any, problems: Problems) -> None:
    path0: tuple[PathPart, ...] = (TT, "policies")
    if raw_policies is None:
        return
    if not isinstance(raw_policies, list):
        problems.error(path0, "must be a list of single-entry maps, e.g. `- scalability: {...}`")
        return
    registry = topology.registry
    clones: dict[str, list[str]] = {}
    for node in topology.nodes.values():
        clones.setdefault(node.template_name, []).append(node.name)
    for i, entry in enumerate(raw_policies):
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.error((*path0, i), "a policy must be a single-entry map, e.g. "
                                        "`- scalability: {type: ..., targets: [...]}`")
            continue
        ((name, body),) = entry.items()
        path = (*path0, i, str(name))
        if not isinstance(body, dict):
            problems.error(path, "a policy must be a map with a type")
            continue
        for key in body:
            if key not in POLICY_KEYS:
                problems.error((*path, str(key)), "unknown key in a policy")
        type_name = body.get("type")
        if not isinstance(type_name, str):
            problems.error((*path, "type"), "required")
            continue
        if not registry.known("policy_types", type_name):
            problems.error((*path, "type"), f"unknown policy type {type_name!r}"
                                            f"{registry.suggest('policy_types', type_name)}")
            continue
        targets_raw = body.get("targets") or []
        if not isinstance(targets_raw, list):
            problems.error((*path, "targets"), "must be a list of node template names")
            targets_raw = []
        targets: list[str] = []
        for t, target in enumerate(targets_raw):
            if not isinstance(target, str) or target not in clones:
                if not isinstance(target, str) or target not in topology.unreadable:
                    problems.error((*path, "targets", t), f"no node template named {target!r}")
                continue
            targets.extend(clones[target])
        given = resolve_inputs_in(body.get("properties") or {}, topology.inputs,
                                  (*path, "properties"), problems)
        if not isinstance(given, dict):
            problems.error((*path, "properties"), "must be a map")
            given = {}
        properties = _apply_definitions(registry, "policy_types", type_name, given,
                                        (*path, "properties"), problems)
        topology.policies.append(PolicyTemplate(str(name), type_name, targets, properties, path,
                                                targets_given=bool(targets_raw)))
