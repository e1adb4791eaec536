"""The TOSCA type registry: definitions from bundled files, imports and the ADT itself.

Types are looked up along their `derived_from` chain, the way tosca-parser (which MiCADO used)
does: a derived type refines the property definitions and interface inputs of its parents.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import PathPart, Problems

SECTIONS = (
    "node_types",
    "policy_types",
    "data_types",
    "capability_types",
    "interface_types",
    "relationship_types",
    "artifact_types",
    "group_types",
)

# Primitive property types of the TOSCA simple profile, with `scalar-unit.*` and friends.
PRIMITIVE_TYPES = frozenset(
    {
        "string", "integer", "float", "boolean", "timestamp", "null", "list", "map", "range",
        "version", "any", "scalar-unit.size", "scalar-unit.time", "scalar-unit.frequency",
        "scalar-unit.bitrate", "tosca:string", "tosca:integer", "tosca:float",
        "tosca:boolean", "tosca:map", "tosca:list",
    }
)


def deep_merge(base: Any, override: Any) -> Any:
    """Maps merge key by key (override wins); anything else is replaced by the override."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """"; did you mean X?" with the closest known name, or "" when none is close."""
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


@dataclass
class TypeDef:
    name: str
    section: str
    body: dict[str, Any]
    origin: tuple[PathPart, ...]  # where it was defined, for error messages


@dataclass
class TypeRegistry:
    """All known types by section; later definitions of a name replace earlier ones."""

    types: dict[str, dict[str, TypeDef]] = field(
        default_factory=lambda: {section: {} for section in SECTIONS}
    )
    # merged lookups, computed once: a compile asks the same questions for every node
    _cache: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)

    def add_document(
        self, document: dict[str, Any], origin: tuple[PathPart, ...], problems: Problems
    ) -> None:
        """Register the type sections of one definitions document."""
        self._cache.clear()
        for section in SECTIONS:
            defs = document.get(section)
            if defs is None:
                continue
            if not isinstance(defs, dict):
                problems.error((*origin, section), "must be a map of type name to definition")
                continue
            for name, body in defs.items():
                path = (*origin, section, str(name))
                if body is None:
                    body = {}
                if not isinstance(body, dict):
                    problems.error(path, "a type definition must be a map")
                    continue
                self.types[section][str(name)] = TypeDef(str(name), section, body, path)

    def check(self, problems: Problems, only_origin: tuple[PathPart, ...] | None = None) -> None:
        """Report unknown parents and cycles in derived_from chains (of types from one origin)."""
        for section, defs in self.types.items():
            for tdef in defs.values():
                if only_origin is not None and tdef.origin[: len(only_origin)] != only_origin:
                    continue
                parent = tdef.body.get("derived_from")
                if parent is None:
                    continue
                if not isinstance(parent, str):
                    problems.error((*tdef.origin, "derived_from"), "must be a type name")
                elif parent not in defs:
                    problems.error((*tdef.origin, "derived_from"),
                                   f"unknown {_singular(section)} {parent!r}"
                                   f"{did_you_mean(parent, defs)}")
                elif tdef.name in self.chain(section, parent):
                    problems.error((*tdef.origin, "derived_from"), "derived_from chain is a cycle")

    def get(self, section: str, name: str) -> TypeDef | None:
        return self.types[section].get(name)

    def chain(self, section: str, name: str) -> list[str]:
        """[name, parent, grandparent, ...] as far as the chain is known, without cycles."""
        key = ("chain", section, name)
        if key not in self._cache:
            self._cache[key] = self._chain(section, name)
        return list(self._cache[key])

    def _chain(self, section: str, name: str) -> list[str]:
        chain: list[str] = []
        current: str | None = name
        while isinstance(current, str) and current not in chain:
            tdef = self.types[section].get(current)
            if tdef is None:
                break
            chain.append(current)
            parent = tdef.body.get("derived_from")
            current = parent if isinstance(parent, str) else None
        return chain

    def is_a(self, section: str, name: str, ancestor: str) -> bool:
        return ancestor in self.chain(section, name)

    def _merged(self, section: str, name: str, key: str) -> dict[str, Any]:
        """The `key` maps of the chain merged root first; cached, so callers must not mutate."""
        cache_key = ("merged", section, name, key)
        if cache_key in self._cache:
            return self._cache[cache_key]  # type: ignore[no-any-return]
        merged: dict[str, Any] = {}
        for type_name in reversed(self.chain(section, name)):
            value = self.types[section][type_name].body.get(key)
            if isinstance(value, dict):
                merged = deep_merge(merged, value)
        self._cache[cache_key] = merged
        return merged

    def properties(self, section: str, name: str) -> dict[str, dict[str, Any]]:
        """Property definitions along the chain; a child's definition refines its parent's.

        Read-only: the definitions are shared by every node of the type.
        """
        merged = self._merged(section, name, "properties")
        return {k: (v if isinstance(v, dict) else {}) for k, v in merged.items()}

    def interfaces(self, name: str) -> dict[str, Any]:
        """Node type interfaces along the chain, operation inputs deep-merged (a fresh copy)."""
        return copy.deepcopy(self._merged("node_types", name, "interfaces"))

    def requirement_names(self, name: str) -> set[str]:
        names: set[str] = set()
        for type_name in self.chain("node_types", name):
            for entry in self.types["node_types"][type_name].body.get("requirements") or []:
                if isinstance(entry, dict):
                    names.update(str(k) for k in entry)
        return names

    def known(self, section: str, name: str) -> bool:
        return name in self.types[section]

    def suggest(self, section: str, name: str) -> str:
        """"; did you mean X?" naming the closest type of the section, or ""."""
        return did_you_mean(name, self.types[section])


def _singular(section: str) -> str:
    return section.replace("_types", " type")
