"""The ADT compiler: one call from ADT text to manifests, node groups and policies.

Either everything compiles (warnings allowed) or AdtError lists every problem; nothing is
returned half-done.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import AdtError, Problems
from .k8s import ObjectKey, Origin, object_key, origin_of, translate
from .k8s.labels import NAME, node_labels
from .k8s_schema import KUBERNETES_VERSION, has_schema, manifest_errors
from .model import CompiledApp, Plan
from .nodegroups import edge_nodes, node_groups
from .policies import compile_policies
from .topology import TT, read_topology

_APP_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def app_id_from_filename(path: str | Path) -> str:
    """A valid app id from a file name: stressng_nova.yaml -> stressng-nova."""
    stem = re.sub(r"[^a-z0-9-]+", "-", Path(path).stem.lower()).strip("-")
    return stem[:63].strip("-") or "app"


def compile_adt(
    text: str,
    *,
    params: Mapping[str, Any] | None = None,
    app_id: str = "app",
    base_dir: Path | None = None,
    kubernetes_version: str = KUBERNETES_VERSION,
) -> CompiledApp:
    """Compile ADT text; raises AdtError naming every problem with its path in the ADT."""
    problems = Problems()
    if not _APP_ID.match(app_id):
        problems.error(("(app id)",), f"{app_id!r} must be a DNS label: lower-case letters, "
                                      "digits and '-', at most 63 characters")
    topology = read_topology(text, params or {}, base_dir, problems)
    if topology is None:
        problems.raise_if_errors()
        raise AdtError([])  # unreachable: read_topology only returns None with an error
    groups = node_groups(topology, problems)
    for group in groups:
        group.node_labels = node_labels(group.name, app_id)
    edges = edge_nodes(topology, problems)
    origins: dict[ObjectKey, list[Origin]] = {}
    manifests, workloads = translate(topology, app_id, problems, origins)
    policies, shared = compile_policies(topology, app_id, groups, workloads, problems)
    _check_schema(manifests, topology.nodes, kubernetes_version, origins, problems)
    problems.raise_if_errors()
    plan = Plan(app_id=app_id, workloads=workloads, node_groups=groups, edges=edges,
                policies=policies, shared=shared, outputs=topology.outputs)
    return CompiledApp(app_id, manifests, plan, sorted(problems.warnings))


def _check_schema(manifests: list[dict[str, Any]], nodes: Mapping[str, Any], version: str,
                  origins: Mapping[ObjectKey, list[Origin]], problems: Problems) -> None:
    """Each manifest against the schema; an error in what interface inputs wrote is reported
    at that input, the others at the node that made the object."""
    for manifest in manifests:
        metadata = manifest.get("metadata") or {}
        node = (metadata.get("labels") or {}).get(NAME)
        path = (TT, "node_templates", node) if node in nodes else (TT, "node_templates")
        what = f"{manifest.get('kind')} {metadata.get('name')!r}"
        if not has_schema(manifest, version):
            problems.warn(path, f"{what}: Kubernetes {version} does not define this kind, so it "
                                "is not checked (a custom resource needs its CRD installed)")
            continue
        written = origins.get(object_key(manifest), [])
        for error in manifest_errors(manifest, version):
            where, _, message = error.partition(": ")
            origin = origin_of(where.split("."), written) if message else None
            if origin is not None:
                problems.error(origin, f"{message} (in the {what} it makes, at {where})")
            else:
                problems.error(path, f"the generated {what} is not valid Kubernetes {version}: "
                                     f"{error}")
