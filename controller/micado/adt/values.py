"""Checking a value against a TOSCA type: primitives, data types, entry schemas, constraints."""

from __future__ import annotations

import re
from typing import Any

from .errors import PathPart, Problems
from .typesystem import TypeRegistry

_SCALAR_UNIT = re.compile(r"^\s*\d+(\.\d+)?\s*[A-Za-z]*\s*$")
# Data types that MiCADO also accepts in Compose short syntax ("8080:80", 8080).
_SHORT_SYNTAX: dict[str, tuple[type, ...]] = {"ports_type": (str, int)}
FUNCTION_KEYS = frozenset({"get_input", "get_property", "get_attribute", "concat", "token",
                           "get_operation_output", "get_nodes_of_type", "get_artifact"})


def is_function(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in FUNCTION_KEYS


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a map", type(None): "empty"}
    return names.get(type(value), type(value).__name__)


def check_value(
    value: Any,
    definition: dict[str, Any],
    registry: TypeRegistry,
    path: tuple[PathPart, ...],
    problems: Problems,
) -> None:
    """Report every way `value` breaks `definition` (type, entry_schema, constraints)."""
    if value is None or is_function(value):
        return
    type_name = str(definition.get("type", "any"))
    if not _check_type(value, type_name, definition, registry, path, problems):
        return
    constraints = definition.get("constraints")
    if isinstance(constraints, list):
        for constraint in constraints:
            if isinstance(constraint, dict):
                for operator, operand in constraint.items():
                    message = _violates(value, str(operator), operand)
                    if message:
                        problems.error(path, message)


def _check_type(
    value: Any,
    type_name: str,
    definition: dict[str, Any],
    registry: TypeRegistry,
    path: tuple[PathPart, ...],
    problems: Problems,
) -> bool:
    name = type_name.removeprefix("tosca:")
    ok = True
    if name == "string" or name == "version":
        # tosca-parser, and so MiCADO, took any scalar where a string was declared
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
    elif name == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif name == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif name == "boolean":
        ok = isinstance(value, bool)
    elif name == "timestamp":
        ok = isinstance(value, str)
    elif name.startswith("scalar-unit."):
        ok = isinstance(value, int | float) or (isinstance(value, str) and bool(
            _SCALAR_UNIT.match(value)))
    elif name == "range":
        ok = isinstance(value, list) and len(value) == 2
    elif name == "list":
        if not isinstance(value, list):
            ok = False
        else:
            entry = _entry_schema(definition)
            if entry:
                for index, item in enumerate(value):
                    check_value(item, entry, registry, (*path, index), problems)
            return True
    elif name == "map":
        if not isinstance(value, dict):
            ok = False
        else:
            entry = _entry_schema(definition)
            if entry:
                for key, item in value.items():
                    check_value(item, entry, registry, (*path, str(key)), problems)
            return True
    elif name in ("any", "null"):
        return True
    elif registry.known("data_types", name):
        return _check_data_type(value, name, registry, path, problems)
    else:
        problems.error(path, f"unknown property type {type_name!r}")
        return False
    if not ok:
        problems.error(path, f"must be {_expected(name)}, got {_kind(value)} ({value!r:.60})")
    return ok


def _expected(name: str) -> str:
    return {"string": "a string", "integer": "an integer", "float": "a number",
            "boolean": "true or false", "list": "a list", "map": "a map",
            "range": "a range [min, max]", "timestamp": "a timestamp"}.get(
        name, f"a {name} value")


def _entry_schema(definition: dict[str, Any]) -> dict[str, Any] | None:
    entry = definition.get("entry_schema")
    if isinstance(entry, str):
        return {"type": entry}
    return entry if isinstance(entry, dict) else None


def _check_data_type(
    value: Any, name: str, registry: TypeRegistry, path: tuple[PathPart, ...], problems: Problems
) -> bool:
    if isinstance(value, _SHORT_SYNTAX.get(name, ())) and not isinstance(value, bool):
        return True
    if not isinstance(value, dict):
        problems.error(path, f"must be a map of {name} fields, got {_kind(value)}")
        return False
    fields = registry.properties("data_types", name)
    for key, item in value.items():
        definition = fields.get(str(key))
        if definition is None:
            known = ", ".join(sorted(fields))
            problems.error((*path, str(key)), f"unknown field of {name}; known: {known}")
        else:
            check_value(item, definition, registry, (*path, str(key)), problems)
    for key, definition in fields.items():
        if definition.get("required") is True and key not in value and "default" not in definition:
            problems.error((*path, key), "required")
    return True


def _comparable(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _violates(value: Any, operator: str, operand: Any) -> str | None:
    """A message if `value` breaks one constraint, else None. Unknown operators pass."""
    if operator in ("equal",):
        return None if value == operand else f"must equal {operand!r}"
    if operator == "valid_values" and isinstance(operand, list):
        return None if value in operand else f"must be one of {', '.join(map(str, operand))}"
    if operator in ("greater_than", "greater_or_equal", "less_than", "less_or_equal", "in_range"):
        if not _comparable(value):
            return None
        if operator == "greater_than" and _comparable(operand) and not value > operand:
            return f"must be greater than {operand}"
        if operator == "greater_or_equal" and _comparable(operand) and not value >= operand:
            return f"must be at least {operand}"
        if operator == "less_than" and _comparable(operand) and not value < operand:
            return f"must be less than {operand}"
        if operator == "less_or_equal" and _comparable(operand) and not value <= operand:
            return f"must be at most {operand}"
        if operator == "in_range" and isinstance(operand, list) and len(operand) == 2:
            low, high = operand
            if _comparable(low) and _comparable(high) and not low <= value <= high:
                return f"must be between {low} and {high}"
        return None
    if operator in ("length", "min_length", "max_length") and isinstance(operand, int):
        if not hasattr(value, "__len__"):
            return None
        size = len(value)
        if operator == "length" and size != operand:
            return f"must have length {operand}"
        if operator == "min_length" and size < operand:
            return f"must have length at least {operand}"
        if operator == "max_length" and size > operand:
            return f"must have length at most {operand}"
        return None
    if operator == "pattern" and isinstance(operand, str) and isinstance(value, str):
        try:
            return None if re.fullmatch(operand, value) else f"must match pattern {operand!r}"
        except re.error:
            return None
    return None
