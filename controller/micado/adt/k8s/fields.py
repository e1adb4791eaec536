"""Where a workload's `interfaces.Kubernetes.create.inputs` keys belong in its manifest.

From MiCADO v0.8 on, the create inputs are the manifest's own fields (`spec: {strategy: ...}`).
MiCADO v0.7 read every key but kind, apiVersion and metadata as a field of the workload's spec,
and moved PodSpec fields on to the pod template (`inputs: {strategy: {type: Recreate}}`). ADTs
that import v0.7's type files keep that meaning here. In any other ADT such a key is an error
at the input, with the place it probably meant, instead of a schema error about the manifest.

The field names come from the Kubernetes schema that the manifests are checked against.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kubernetes_validate.utils import all_versions, major_minor, schema_contents

from ..errors import Problems
from ..k8s_schema import KUBERNETES_VERSION
from ..topology import NodeTemplate
from ..typesystem import deep_merge, did_you_mean
from .nodes import Path, create_inputs, inputs_path

TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec")
_V07_METADATA = ("name", "labels")
_LEGACY_RELEASE = re.compile(r"^v?0\.7(?:$|[.\-])")
# A manifest path (its keys) and the path in the ADT its value was written at.
Origin = tuple[tuple[str, ...], Path]


def is_v07(release: str | None) -> bool:
    """True for a micado-scale/tosca ref naming a v0.7.x release (v0.7.1, v0.7.2-rev1, ...)."""
    return release is not None and bool(_LEGACY_RELEASE.match(release))


@lru_cache(maxsize=64)
def spec_fields(kind: str, api_version: str,
                version: str = KUBERNETES_VERSION) -> frozenset[str] | None:
    """The field names of the kind's spec in the Kubernetes schema (None: unknown kind)."""
    exact = [v for v in all_versions() if major_minor(v) <= major_minor(version)][-1]
    directory = f"kubernetes-json-schema/v{exact}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = schema_contents(f"{directory}/{kind.lower()}-{group}.json", version)
        definitions = schema_contents(f"{directory}/_definitions.json", version)["$defs"]
    except (FileNotFoundError, KeyError):
        return None
    spec = (schema.get("properties") or {}).get("spec") or {}
    ref = spec.get("$ref")
    if isinstance(ref, str):
        spec = definitions.get(ref.rsplit("/", 1)[-1]) or {}
    return frozenset(spec.get("properties") or ())


def pod_fields(version: str = KUBERNETES_VERSION) -> frozenset[str]:
    return spec_fields("Pod", "v1", version) or frozenset()


@dataclass
class PlacedInputs:
    """The create inputs as manifest fields, and where each part came from in the ADT."""

    fields: dict[str, Any]
    moved: dict[tuple[str, ...], Path] = field(default_factory=dict)


def place_inputs(node: NodeTemplate, kind: str, api_version: str, inputs: dict[str, Any],
                 v07: bool, problems: Problems) -> PlacedInputs:
    """Put each create input where it belongs; report (and drop) those that belong nowhere."""
    spec_names = spec_fields(kind, api_version) or frozenset()
    pod_names = pod_fields()
    placed = PlacedInputs({k: v for k, v in inputs.items() if k in TOP_LEVEL})
    for key, value in inputs.items():
        if key in TOP_LEVEL:
            continue
        target = _home(key, kind, spec_names, pod_names)
        if v07 and target is not None:
            placed.fields = deep_merge(placed.fields, _nest((*target, key), value))
            placed.moved[(*target, key)] = inputs_path(node, key)
            continue
        if target is not None:
            hint = (f"; did you mean {'.'.join((*target, key))}? (MiCADO v0.7 read create inputs "
                    "as fields of the spec; since v0.8 they are the manifest's own fields)")
            if target == ("metadata",):
                hint = f"; did you mean metadata.{key}?"
        else:
            hint = did_you_mean(key, TOP_LEVEL)
        problems.error(inputs_path(node, key), f"not a field of a {kind}{hint}")
    _place_configure(node, kind, placed, v07, problems)
    spec = placed.fields.get("spec")
    if kind != "Pod" and isinstance(spec, dict) and spec_names:
        for key in [k for k in spec if k not in spec_names]:
            where = ("spec", "template", "spec", key) if key in pod_names else None
            hint = (f"; did you mean {'.'.join(where)}?" if where is not None
                    else did_you_mean(str(key), spec_names))
            problems.error(inputs_path(node, "spec", key), f"not a field of a {kind} spec{hint}")
            spec = {k: v for k, v in spec.items() if k != key}
        placed.fields["spec"] = spec
    return placed


def _place_configure(node: NodeTemplate, kind: str, placed: PlacedInputs, v07: bool,
                     problems: Problems) -> None:
    """v0.7 read `configure` inputs as the pod template: `metadata` its metadata, the rest its
    spec. Elsewhere they mean nothing, which is said rather than silently dropped."""
    configure = create_inputs(node, "configure")
    if not configure:
        return
    where = (*node.path, "interfaces", "Kubernetes", "configure", "inputs")
    if not v07:
        problems.warn(where, "ignored: only MiCADO v0.7 read configure inputs (as the pod "
                             "template); write them under create.inputs.spec.template")
        return
    pod = ("spec",) if kind == "Pod" else ("spec", "template", "spec")
    meta = ("metadata",) if kind == "Pod" else ("spec", "template", "metadata")
    for key, value in configure.items():
        target = meta if key == "metadata" else (*pod, str(key))
        placed.fields = deep_merge(placed.fields, _nest(target, copy.deepcopy(value)))
        placed.moved[target] = (*where, str(key))


def _home(key: str, kind: str, spec_names: frozenset[str], pod_names: frozenset[str],
          ) -> tuple[str, ...] | None:
    """Where v0.7 put a create input: the workload spec, else the pod template's spec (and
    `name` and `labels` in the metadata)."""
    if key in _V07_METADATA:
        return ("metadata",)
    if key in spec_names:
        return ("spec",)
    if key in pod_names:
        return ("spec",) if kind == "Pod" else ("spec", "template", "spec")
    return None


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    nested: Any = value
    for part in reversed(path):
        nested = {part: nested}
    return dict(nested)


def input_origins(node: NodeTemplate, base: dict[str, Any], placed: PlacedInputs,
                  ) -> list[Origin]:
    """Every manifest path whose whole value came from the create inputs, with its ADT path.

    A path the translation also fills (spec, spec.template, ...) is not the inputs' alone;
    below it, what the inputs added is.
    """
    origins: list[Origin] = []
    stack: list[tuple[tuple[str, ...], Any, dict[str, Any]]] = [((), base, placed.fields)]
    while stack:
        path, generated, given = stack.pop()
        for key, value in given.items():
            here = (*path, str(key))
            inner = generated.get(key) if isinstance(generated, dict) else None
            if isinstance(inner, dict) and isinstance(value, dict):
                stack.append((here, inner, value))
            else:
                origins.append((here, _adt_path(node, here, placed.moved)))
    return origins


def _adt_path(node: NodeTemplate, manifest_path: tuple[str, ...],
              moved: dict[tuple[str, ...], Path]) -> Path:
    for prefix, adt_path in moved.items():
        if manifest_path[:len(prefix)] == prefix:
            return (*adt_path, *manifest_path[len(prefix):])
    return inputs_path(node, *manifest_path)


def origin_of(error_path: Iterable[str], origins: list[Origin]) -> Path | None:
    """The ADT path of a schema error at `error_path` (manifest keys), if the inputs wrote it."""
    parts = tuple(error_path)
    for prefix, adt_path in sorted(origins, key=lambda o: -len(o[0])):
        if parts[:len(prefix)] == prefix:
            rest = parts[len(prefix):]
            return (*adt_path, *(int(p) if p.isdigit() else p for p in rest))
    return None
