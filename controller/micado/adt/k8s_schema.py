"""Check manifests against the Kubernetes OpenAPI schema (kubernetes-validate's bundled schemas).

kubernetes_validate.validate() re-reads a 1.3 MB definitions file for every object; compiling a
200-container ADT that way takes seconds. This keeps one validator per kind, built once from the
same schema files, and reports errors with the manifest path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jsonschema
import kubernetes_validate
import referencing
from kubernetes_validate.utils import all_versions, major_minor, schema_contents

# The Kubernetes minor version manifests are checked against (the k3s release the roles pin).
KUBERNETES_VERSION = "1.31"


@dataclass
class SchemaCache:
    version: str
    strict: bool = True
    _validators: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def schema_dir(self) -> str:
        exact = [v for v in all_versions() if major_minor(v) <= major_minor(self.version)][-1]
        return f"v{exact}-local" + ("-strict" if self.strict else "")

    def validator(self, kind: str, api_version: str) -> Any | None:
        key = (kind, api_version)
        if key not in self._validators:
            self._validators[key] = self._build(kind, api_version)
        return self._validators[key]

    def _build(self, kind: str, api_version: str) -> Any | None:
        group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        try:
            schema = schema_contents(
                f"kubernetes-json-schema/{self.schema_dir}/{kind.lower()}-{group}.json",
                self.version,
            )
        except FileNotFoundError:
            return None
        registry = referencing.Resource.from_contents(schema) @ _definitions(self.schema_dir,
                                                                                self.version)
        return jsonschema.validators.Draft202012Validator(schema, registry=registry)


@lru_cache(maxsize=4)
def _definitions(schema_dir: str, version: str) -> referencing.Registry:
    definitions = schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json",
                                  version)
    return referencing.Resource.from_contents(definitions) @ referencing.Registry()


@lru_cache(maxsize=4)
def schema_cache(version: str = KUBERNETES_VERSION) -> SchemaCache:
    return SchemaCache(version)


def has_schema(manifest: dict[str, Any], version: str = KUBERNETES_VERSION) -> bool:
    """False for kinds Kubernetes itself does not define (custom resources)."""
    kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return True
    return schema_cache(version).validator(kind, api_version) is not None


def manifest_errors(manifest: dict[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """Every way `manifest` breaks the Kubernetes schema, as 'spec.x.y: message' lines."""
    kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return ["a manifest needs a string apiVersion and kind"]
    validator = schema_cache(version).validator(kind, api_version)
    if validator is None:
        return [f"Kubernetes {version} has no {kind} in {api_version}"]
    errors = []
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in error.absolute_path) or "(object)"
        errors.append(f"{where}: {_short(error.message)}")
    return errors


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:197] + "..."


__all__ = ["KUBERNETES_VERSION", "has_schema", "kubernetes_validate", "manifest_errors"]
