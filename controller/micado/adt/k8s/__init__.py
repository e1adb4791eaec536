"""Kubernetes translation of a resolved topology, compatible with MiCADO's Kubernetes adaptor.

`translate` returns the manifests (ConfigMaps, PersistentVolumes, claims, workloads, Services,
raw manifests; each group in node order) and the workloads the controller places and scales.
User errors go to `problems`; nothing raises. The schema check is done by the caller.
"""

from __future__ import annotations

from typing import Any

from ..errors import Problems
from ..model import Workload
from ..topology import NodeTemplate, Topology
from .fields import Origin, origin_of
from .nodes import (
    CONFIG,
    DOCKER,
    POD,
    RAW,
    VOLUME,
    Path,
    check_node_name,
    drop_none,
    is_pod,
)
from .raw import raw_manifest
from .volumes import volume_objects
from .workloads import build_workload, plan_pods

__all__ = ["Origin", "object_key", "origin_of", "translate"]
Manifests = list[tuple[dict[str, Any], Path]]
ObjectKey = tuple[Any, ...]


def translate(topology: Topology, app_id: str, problems: Problems,
              origins: dict[ObjectKey, list[Origin]] | None = None,
              ) -> tuple[list[dict[str, Any]], list[Workload]]:
    """Kubernetes manifests (deterministic order) and the workloads the controller can place
    and scale. `origins`, when given, receives for each workload (by kind, namespace, name)
    the manifest parts its interface inputs wrote, so schema errors can name the input."""
    nodes = list(topology.nodes.values())
    for node in nodes:
        if _translated(topology, node):
            check_node_name(node, problems)
    volumes = volume_objects(topology, nodes, app_id, problems)
    workload_manifests: Manifests = []
    services: Manifests = []
    workloads: list[Workload] = []
    for plan in plan_pods(topology, problems):
        built = build_workload(topology, plan, app_id, volumes.sources, problems)
        workload_manifests.append((built.manifest, plan.node.path))
        if origins is not None:
            origins[object_key(built.manifest)] = built.origins
        services.extend((s, plan.node.path) for s in built.services)
        workloads.append(built.workload)
    raws: Manifests = []
    for node in nodes:
        if topology.is_a(node, RAW):
            manifest = raw_manifest(node, app_id, problems)
            if manifest is not None:
                raws.append((manifest, node.path))
    _warn_unused_inline(volumes.sources.values(), problems)
    objects: Manifests = [*volumes.config_maps, *volumes.volumes, *volumes.claims,
                          *workload_manifests, *services, *raws]
    _check_unique(objects, problems)
    return [drop_none(m) for m, _ in objects], workloads


def _translated(topology: Topology, node: NodeTemplate) -> bool:
    return any(topology.is_a(node, t) for t in (DOCKER, POD, VOLUME, CONFIG, RAW)) or is_pod(
        topology, node)


def _warn_unused_inline(sources: Any, problems: Problems) -> None:
    for source in sources:
        if source.namespace is None and not source.used:
            problems.warn(source.node.path, "no container mounts this volume, and an emptyDir or "
                                            "hostPath volume makes nothing on its own")


def object_key(manifest: dict[str, Any]) -> ObjectKey:
    """What identifies an object in a cluster: apiVersion, kind, namespace, name."""
    metadata = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
    return (manifest.get("apiVersion"), manifest.get("kind"), metadata.get("namespace"),
            metadata.get("name"))


def _check_unique(objects: Manifests, problems: Problems) -> None:
    """Two objects of one kind and name would overwrite each other when applied."""
    seen: dict[tuple[Any, ...], Path] = {}
    for manifest, path in objects:
        key = object_key(manifest)
        if key in seen:
            problems.error(path, f"{key[1]} {key[3]!r} is also made by "
                                 f"{'.'.join(map(str, seen[key][-1:]))}; names must be unique")
            continue
        seen[key] = path
