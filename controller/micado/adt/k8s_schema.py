"""Check manifests against the Kubernetes OpenAPI schema (kubernetes-validate's bundled schemas).

kubernetes_validate.validate() re-reads a 1.3 MB definitions file for every object; compiling a
200-container ADT that way takes seconds. This keeps validators per kind, built once from the
same schema files, and reports errors with the manifest path.

Two validators per kind, on the same schema: jsonschema-rs (compiled, about 500 times faster)
answers "valid or not" for every manifest; only a manifest it rejects goes through the Python
jsonschema validator, whose messages are the ones users see (and tests/data/broken expects).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema
import jsonschema_rs
import kubernetes_validate
import referencing
from kubernetes_validate.utils import all_versions, major_minor, schema_contents

# The Kubernetes minor version manifests are checked against (the k3s release the roles pin).
KUBERNETES_VERSION = "1.31"

# jsonschema-rs recurses on the native stack: a manifest nested about 10,000 deep under a
# schema that refers back to itself (a CRD's openAPIV3Schema) crashes the process. Deeper than
# this, the Python validator decides, as it did before (and raises RecursionError).
FAST_MAX_DEPTH = 1000
# What jsonschema-rs cannot take in (a date from an unquoted YAML timestamp, a str subclass,
# a non-string key) makes it raise instead of answering; the detailed check then decides.
_UNCONVERTIBLE = (ValueError, TypeError, OverflowError)


@dataclass
class SchemaCache:
    version: str
    strict: bool = True
    _schemas: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    _fast: dict[tuple[str, str], Any] = field(default_factory=dict)
    _detailed: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def schema_dir(self) -> str:
        exact = [v for v in all_versions() if major_minor(v) <= major_minor(self.version)][-1]
        return f"v{exact}-local" + ("-strict" if self.strict else "")

    def schema(self, kind: str, api_version: str) -> dict[str, Any] | None:
        """The kind's schema document, or None for a kind Kubernetes does not define."""
        key = (kind, api_version)
        if key not in self._schemas:
            group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            try:
                self._schemas[key] = schema_contents(
                    f"kubernetes-json-schema/{self.schema_dir}/{kind.lower()}-{group}.json",
                    self.version,
                )
            except FileNotFoundError:
                self._schemas[key] = None
        return self._schemas[key]

    def fast_validator(self, kind: str, api_version: str) -> Any | None:
        """jsonschema-rs on the kind's schema: only says whether a manifest is valid."""
        key = (kind, api_version)
        if key not in self._fast:
            schema = self.schema(kind, api_version)
            self._fast[key] = None if schema is None else jsonschema_rs.Draft202012Validator(
                schema, registry=_fast_registry(self.schema_dir, self.version),
                validate_formats=False, offline=True)
        return self._fast[key]

    def validator(self, kind: str, api_version: str) -> Any | None:
        """Python jsonschema on the kind's schema: every error, with its path and message."""
        key = (kind, api_version)
        if key not in self._detailed:
            schema = self.schema(kind, api_version)
            self._detailed[key] = None if schema is None else (
                jsonschema.validators.Draft202012Validator(
                    schema, registry=referencing.Resource.from_contents(schema)
                    @ _registry(self.schema_dir, self.version)))
        return self._detailed[key]


@lru_cache(maxsize=4)
def _definitions(schema_dir: str, version: str) -> dict[str, Any]:
    return schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)


@lru_cache(maxsize=4)
def _registry(schema_dir: str, version: str) -> referencing.Registry:
    return (referencing.Resource.from_contents(_definitions(schema_dir, version))
            @ referencing.Registry())


@lru_cache(maxsize=4)
def _fast_registry(schema_dir: str, version: str) -> jsonschema_rs.Registry:
    definitions = _definitions(schema_dir, version)
    return jsonschema_rs.Registry([(definitions["$id"], definitions)])


@lru_cache(maxsize=4)
def schema_cache(version: str = KUBERNETES_VERSION) -> SchemaCache:
    return SchemaCache(version)


def has_schema(manifest: dict[str, Any], version: str = KUBERNETES_VERSION) -> bool:
    """False for kinds Kubernetes itself does not define (custom resources)."""
    kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return True
    return schema_cache(version).schema(kind, api_version) is not None


def manifest_errors(manifest: dict[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """Every way `manifest` breaks the Kubernetes schema, as 'spec.x.y: message' lines."""
    kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return ["a manifest needs a string apiVersion and kind"]
    cache = schema_cache(version)
    fast = cache.fast_validator(kind, api_version)
    if fast is None:
        return [f"Kubernetes {version} has no {kind} in {api_version}"]
    try:
        if not _deeper_than(manifest, FAST_MAX_DEPTH) and fast.is_valid(manifest):
            return []
    except _UNCONVERTIBLE:
        pass
    errors = []
    validator = cache.validator(kind, api_version)
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in error.absolute_path) or "(object)"
        errors.append(f"{where}: {_short(error.message)}")
    return errors


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether maps and lists nest more than `limit` deep in `value` (without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."


__all__ = ["KUBERNETES_VERSION", "has_schema", "kubernetes_validate", "manifest_errors"]
