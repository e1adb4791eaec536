"""Volume and Config nodes: ConfigMaps, PersistentVolumes with their claims, and pod mounts.

As in MiCADO, emptyDir and hostPath volumes are written straight into the pods that mount
them; any other volume (NFS, GlusterFS, Local or a custom spec) becomes a PersistentVolume and
a claim bound to it by labels, made whether or not a container mounts it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import Problems
from ..topology import NodeTemplate, Requirement, Topology
from ..typesystem import deep_merge
from .labels import app_labels
from .nodes import (
    CONFIG,
    VOLUME,
    as_text,
    is_dns_label,
    namespace_of,
    prop_path,
    user_inputs,
)
from .nodes import Path as AdtPath

DEFAULT_SIZE = "1Gi"
INLINE_SOURCES = ("emptyDir", "hostPath")
# PersistentVolumeClaim-only spec fields; MiCADO also took them from the top of the inputs
PVC_ONLY = ("dataSource", "dataSourceRef", "resources", "selector", "volumeName")
SHARED = ("accessModes", "storageClassName", "volumeMode")
MOUNT_FIELDS = ("readOnly", "subPath", "subPathExpr", "mountPropagation", "recursiveReadOnly")
MOUNT_ALIASES = {"sub_path": "subPath", "read_only": "readOnly"}
MOUNT_IGNORED = ("location", "device")  # TOSCA AttachesTo properties
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_UNITS = {
    "": "", "b": "", "k": "k", "kb": "k", "m": "M", "mb": "M", "g": "G", "gb": "G", "t": "T",
    "tb": "T", "p": "P", "pb": "P", "ki": "Ki", "kib": "Ki", "mi": "Mi", "mib": "Mi", "gi": "Gi",
    "gib": "Gi", "ti": "Ti", "tib": "Ti", "pi": "Pi", "pib": "Pi", "e": "E", "eb": "E",
    "ei": "Ei", "eib": "Ei",
}  # "m" is read as mega: milli-bytes make no sense for storage


@dataclass
class VolumeSource:
    """What a pod needs to mount one Volume or Config node."""

    node: NodeTemplate
    pod_volume: dict[str, Any]  # an entry of PodSpec.volumes
    namespace: str | None  # of the claim or ConfigMap; None for inline volumes
    used: bool = False

    @property
    def name(self) -> str:
        return str(self.pod_volume["name"])


@dataclass
class VolumeObjects:
    # each object with the path of the node it comes from
    config_maps: list[tuple[dict[str, Any], AdtPath]] = field(default_factory=list)
    volumes: list[tuple[dict[str, Any], AdtPath]] = field(default_factory=list)
    claims: list[tuple[dict[str, Any], AdtPath]] = field(default_factory=list)
    sources: dict[str, VolumeSource] = field(default_factory=dict)


def volume_objects(topology: Topology, nodes: list[NodeTemplate], app_id: str,
                   problems: Problems) -> VolumeObjects:
    """ConfigMaps, PVs and PVCs of the Config and Volume nodes, and how to mount each."""
    out = VolumeObjects()
    for node in nodes:
        if topology.is_a(node, CONFIG):
            config_map = _config_map(node, app_id, problems)
            out.config_maps.append((config_map, node.path))
            out.sources[node.name] = VolumeSource(node, {
                "name": node.name, "configMap": {"name": config_map["metadata"]["name"]},
            }, config_map["metadata"]["namespace"])
        elif topology.is_a(node, VOLUME):
            out.sources[node.name] = _volume(node, app_id, out, problems)
    return out


def _config_map(node: NodeTemplate, app_id: str, problems: Problems) -> dict[str, Any]:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": node.name, "namespace": namespace_of(node, problems),
        "labels": app_labels(node.name, app_id)}}
    manifest = deep_merge(manifest, user_inputs(node, problems))
    for key in ("data", "binaryData"):
        if isinstance(manifest.get(key), dict):
            manifest[key] = {str(k): as_text(v) for k, v in manifest[key].items()
                             if v is not None}
    return manifest


def _volume(node: NodeTemplate, app_id: str, out: VolumeObjects,
            problems: Problems) -> VolumeSource:
    inputs = user_inputs(node, problems)
    spec = inputs.get("spec") if isinstance(inputs.get("spec"), dict) else {}
    name = _volume_name(node, problems)
    if any(key in spec for key in INLINE_SOURCES):
        return VolumeSource(node, {"name": name, **spec}, None)
    pv, pvc = _persistent(node, name, inputs, app_id, problems)
    out.volumes.append((pv, node.path))
    out.claims.append((pvc, node.path))
    return VolumeSource(node, {"name": name, "persistentVolumeClaim": {
        "claimName": pvc["metadata"]["name"]}}, pvc["metadata"]["namespace"])


def _volume_name(node: NodeTemplate, problems: Problems) -> str:
    name = node.properties.get("name")
    if name is None:
        return node.name
    if not is_dns_label(str(name)):
        problems.error(prop_path(node, "name"), f"{name!r} is not a valid volume name: use at "
                                                "most 63 lower-case letters, digits and '-'")
    return str(name)


def _persistent(node: NodeTemplate, name: str, inputs: dict[str, Any], app_id: str,
                problems: Problems) -> tuple[dict[str, Any], dict[str, Any]]:
    """A PV from the volume's spec and a PVC that can only bind to it."""
    namespace = namespace_of(node, problems)
    pv_inputs, pvc_inputs = _split_inputs(inputs)
    size = _quantity(node, problems)
    user_labels = node.properties.get("labels")
    labels = {**app_labels(node.name, app_id),
              **({str(k): as_text(v) for k, v in user_labels.items() if v is not None}
                 if isinstance(user_labels, dict) else {})}
    pv = deep_merge({"apiVersion": "v1", "kind": "PersistentVolume",
                     "metadata": {"name": name, "labels": labels},
                     "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteMany"],
                              "persistentVolumeReclaimPolicy": "Retain",
                              # "" keeps the claim off the default StorageClass (k3s has one)
                              "storageClassName": ""}}, pv_inputs)
    pv["metadata"].pop("namespace", None)  # PersistentVolumes are cluster-wide
    pv_spec = pv.get("spec") if isinstance(pv.get("spec"), dict) else {}
    claim_spec = {k: copy.deepcopy(pv_spec[k]) for k in SHARED if k in pv_spec}
    claim_spec["resources"] = {"requests": {"storage": (pv_spec.get("capacity") or {}).get(
        "storage", size)}}
    claim_spec["selector"] = {"matchLabels": dict(pv["metadata"].get("labels") or labels)}
    pvc = deep_merge({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": {"name": pv["metadata"].get("name", name),
                                   "namespace": namespace,
                                   "labels": app_labels(node.name, app_id)},
                      "spec": claim_spec}, pvc_inputs)
    return pv, pvc


def _split_inputs(inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create inputs for the PV, and the claim-only fields for the PVC."""
    pv_inputs = copy.deepcopy(inputs)
    pvc_spec: dict[str, Any] = {}
    spec = pv_inputs.get("spec") if isinstance(pv_inputs.get("spec"), dict) else {}
    for key in PVC_ONLY:
        if key in pv_inputs:
            pvc_spec[key] = pv_inputs.pop(key)
        if key in spec:
            pvc_spec[key] = spec.pop(key)
    return pv_inputs, ({"spec": pvc_spec} if pvc_spec else {})


def _quantity(node: NodeTemplate, problems: Problems) -> str:
    """The `size` property as a Kubernetes quantity ("10 GB" -> "10G", "2 GiB" -> "2Gi")."""
    size = node.properties.get("size")
    if size is None:
        return DEFAULT_SIZE
    match = _QUANTITY.match(str(size))
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        problems.error(prop_path(node, "size"), f"{size!r} is not a size like 1Gi, 500Mi or "
                                                "10 GB")
        return DEFAULT_SIZE
    return match.group(1) + unit


def mount(topology: Topology, member: NodeTemplate, container: dict[str, Any],
          pod_volumes: list[dict[str, Any]], namespace: str, sources: dict[str, VolumeSource],
          problems: Problems) -> None:
    """Mount the targets of `member`'s volume requirements in its container and pod."""
    for requirement in member.requirements:
        if requirement.name != "volume" or requirement.node is None:
            continue
        source = sources.get(requirement.node)
        if source is None:
            problems.error(requirement.path, f"{requirement.node!r} is not a volume or config "
                                             f"node ({VOLUME}, {CONFIG})")
            continue
        if source.namespace is not None and source.namespace != namespace:
            problems.error(requirement.path, f"{requirement.node!r} is in namespace "
                                             f"{source.namespace!r}, but this pod runs in "
                                             f"{namespace!r}; they must be the same")
            continue
        source.used = True
        _add_pod_volume(pod_volumes, source, requirement, problems)
        mounts = container.setdefault("volumeMounts", [])
        volume_mount = _volume_mount(source, requirement, problems)
        if volume_mount not in mounts:
            mounts.append(volume_mount)


def _add_pod_volume(pod_volumes: list[dict[str, Any]], source: VolumeSource,
                    requirement: Requirement, problems: Problems) -> None:
    for existing in pod_volumes:
        if existing["name"] == source.name:
            if existing != source.pod_volume:
                problems.error(requirement.path, f"two different volumes are named "
                                                 f"{source.name!r} in this pod")
            return
    pod_volumes.append(copy.deepcopy(source.pod_volume))


def _volume_mount(source: VolumeSource, requirement: Requirement,
                  problems: Problems) -> dict[str, Any]:
    """mountPath: the relationship's `location`, else the volume's `path`, else a default."""
    props = requirement.properties
    path = props.get("location") or source.node.properties.get("path")
    volume_mount: dict[str, Any] = {"name": source.name,
                                    "mountPath": str(path or f"/mnt/volumes/{source.name}")}
    for key, value in props.items():
        target = MOUNT_ALIASES.get(key, key)
        if target in MOUNT_FIELDS:
            volume_mount[target] = value
        elif key not in MOUNT_IGNORED:
            problems.warn((*requirement.path, "relationship", "properties", key),
                          "not a volume mount field; ignored")
    return volume_mount
