"""TOSCA intrinsic functions: get_input and get_property, resolved in place.

`get_input: [list_input, INDEX]` indexes a list input; the word INDEX stands for the clone
number of a node cloned by `instance_count` (0 for the first clone), as micado-parser does.
`get_attribute` is run-time information and is left for the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import PathPart, Problems

_MISSING = object()
PropertyLookup = Callable[[str, list[Any], tuple[PathPart, ...]], Any]


def _index_into(value: Any, keys: list[Any], path: tuple[PathPart, ...], problems: Problems,
                what: str) -> Any:
    for key in keys:
        if isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool):
            if -len(value) <= key < len(value):
                value = value[key]
                continue
            problems.error(path, f"{what}: index {key} is out of range (length {len(value)})")
            return _MISSING
        if isinstance(value, dict) and isinstance(key, str | int | float | bool) and key in value:
            value = value[key]
            continue
        problems.error(path, f"{what}: {key!r} not found")
        return _MISSING
    return value


def resolve_inputs_in(
    value: Any,
    inputs: Mapping[str, Any],
    path: tuple[PathPart, ...],
    problems: Problems,
    index: int | None = None,
) -> Any:
    """A copy of `value` with every get_input replaced by the input's value."""
    if isinstance(value, dict):
        if len(value) == 1 and "get_input" in value:
            return _get_input(value["get_input"], inputs, path, problems, index)
        return {k: resolve_inputs_in(v, inputs, (*path, str(k)), problems, index)
                for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_inputs_in(v, inputs, (*path, i), problems, index)
                for i, v in enumerate(value)]
    return value


def _get_input(arg: Any, inputs: Mapping[str, Any], path: tuple[PathPart, ...],
               problems: Problems, index: int | None) -> Any:
    args = arg if isinstance(arg, list) else [arg]
    if not args or not isinstance(args[0], str):
        problems.error(path, "get_input needs an input name, or [name, index, ...]")
        return None
    name, keys = args[0], list(args[1:])
    if name not in inputs:
        known = ", ".join(sorted(inputs)) or "none"
        problems.error(path, f"get_input: no input named {name!r} (inputs: {known})")
        return None
    resolved_keys: list[Any] = []
    for key in keys:
        if key == "INDEX":
            if index is None:
                problems.error(path, "get_input: INDEX is only valid in a node with instance_count")
                return None
            key = index
        resolved_keys.append(key)
    value = _index_into(inputs[name], resolved_keys, path, problems, f"get_input {name}")
    return None if value is _MISSING else value


def resolve_properties_in(
    value: Any, lookup: PropertyLookup, self_name: str, path: tuple[PathPart, ...],
) -> Any:
    """A copy of `value` with every get_property replaced through `lookup(node, keys, path)`."""
    if isinstance(value, dict):
        if len(value) == 1 and "get_property" in value:
            args = value["get_property"]
            if isinstance(args, list) and len(args) >= 2 and isinstance(args[0], str):
                node = self_name if args[0] == "SELF" else args[0]
                return lookup(node, list(args[1:]), path)
            return lookup("", [], path)
        return {k: resolve_properties_in(v, lookup, self_name, (*path, str(k)))
                for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_properties_in(v, lookup, self_name, (*path, i))
                for i, v in enumerate(value)]
    return value


def property_lookup(
    properties_of: Mapping[str, Mapping[str, Any]],
    declared_of: Mapping[str, set[str]],
    problems: Problems,
) -> PropertyLookup:
    """A lookup over node properties that reports bad references.

    A property may itself be a get_property (of SELF or another node): it is followed, and a
    chain that comes back to where it started is reported as a cycle.
    """
    visiting: list[tuple[str, str]] = []

    def lookup(node: str, keys: list[Any], path: tuple[PathPart, ...]) -> Any:
        if not node or not keys:
            problems.error(path, "get_property needs [SELF or node name, property, ...]")
            return None
        if node not in properties_of:
            problems.error(path, f"get_property: no node template named {node!r}")
            return None
        first, rest = keys[0], keys[1:]
        if not isinstance(first, str):
            problems.error(path, f"get_property: the property name must be text, got {first!r}")
            return None
        props = properties_of[node]
        if first not in props:
            if first not in declared_of.get(node, set()):
                problems.error(path, f"get_property: node {node!r} has no property {first!r}")
            # an optional property left unset: MiCADO drops such fields from the manifest
            return None
        if (node, str(first)) in visiting:
            problems.error(path, f"get_property: {node}.{first} refers back to itself")
            return None
        visiting.append((node, str(first)))
        try:
            resolved = resolve_properties_in(props[first], lookup, node, path)
        finally:
            visiting.pop()
        value = _index_into(resolved, rest, path, problems, f"get_property {node}.{first}")
        return None if value is _MISSING else value

    return lookup
