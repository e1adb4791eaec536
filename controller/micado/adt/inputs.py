"""Topology inputs: definitions with defaults, overridden by user parameters (`-p NAME=VALUE`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from .errors import Problems
from .typesystem import TypeRegistry
from .values import check_value
from .yamlio import MAX_DEPTH, TooDeepError, describe_yaml_error, load_yaml, too_deep

INPUTS_PATH = ("topology_template", "inputs")


def parse_parameter(text: str) -> tuple[str, str]:
    """Split a `NAME=VALUE` command-line parameter; ValueError names what is wrong."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"parameter {text!r} must look like NAME=VALUE")
    return name.strip(), value


def _coerce(value: Any, type_name: str) -> Any:
    """Parameters typed on a command line arrive as text; read them as the input's type.

    Raises TooDeepError for text nested beyond what the compiler walks.
    """
    if not isinstance(value, str) or type_name in ("string", "version", "timestamp"):
        return value
    try:
        return load_yaml(value, strict=False) if value.strip() else value
    except TooDeepError:
        raise
    except yaml.YAMLError:
        return value


def resolve_inputs(
    definitions: Any, params: Mapping[str, Any], registry: TypeRegistry, problems: Problems
) -> dict[str, Any]:
    """Input values by name: parameter, else default; every missing or bad value reported."""
    values: dict[str, Any] = {}
    if definitions is None:
        definitions = {}
    if not isinstance(definitions, dict):
        problems.error(INPUTS_PATH, "must be a map of input name to definition")
        definitions = {}
    for name in params:
        if name not in definitions:
            known = ", ".join(sorted(map(str, definitions))) or "none"
            problems.error(
                (*INPUTS_PATH, name),
                f"parameter {name!r} is not an input of this ADT (inputs: {known})",
            )
    for name, definition in definitions.items():
        path = (*INPUTS_PATH, str(name))
        if not isinstance(definition, dict):
            problems.error(path, "an input definition must be a map with at least a type")
            continue
        type_name = str(definition.get("type", "string"))
        if name in params:
            where = (*path, "(parameter)")
            try:
                value = _coerce(params[name], type_name)
            except TooDeepError as exc:
                problems.error(where, describe_yaml_error(exc))
                values[str(name)] = None
                continue
            deep = too_deep(value)
            if deep is not None:
                problems.error((*where, *deep), f"values nested more than {MAX_DEPTH} levels "
                                                "deep (an ADT never needs that many)")
                values[str(name)] = None
                continue
        elif "default" in definition:
            value = definition["default"]
            where = (*path, "default")
        elif definition.get("required", True) is False:
            values[str(name)] = None
            continue
        else:
            problems.error(path, f"required: no default, give it with -p {name}=VALUE")
            values[str(name)] = None  # known but unset: uses of it are not reported again
            continue
        check_value(value, definition, registry, where, problems)
        values[str(name)] = value
    return values
