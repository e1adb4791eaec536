"""The recommended app.kubernetes.io labels MiCADO puts on everything it creates.

`instance` carries the app id: it is what `kubectl apply --prune -l` selects on update.
"""

from __future__ import annotations

import re
from typing import Any

NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
MANAGED_BY = "app.kubernetes.io/managed-by"
VERSION = "app.kubernetes.io/version"
MANAGER = "micado"
# On every node of a VM group (set by the worker's k3s join), what placement and scaling select
# on: MiCADO's node_type (the compute node's name in the ADT) and the app that owns the group,
# so two apps that both name a node `worker-node` have two groups that never share nodes.
NODE_TYPE = "micado.eu/node_type"
APP = "micado.eu/app"

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def selector_labels(node_name: str, app_id: str) -> dict[str, str]:
    """The labels that find a node's pods; stable across image updates (no version)."""
    return {NAME: node_name, INSTANCE: app_id}


def app_labels(node_name: str, app_id: str, version: str | None = None) -> dict[str, str]:
    """Labels for an object made from `node_name`; workloads and pods also carry a version."""
    labels = {**selector_labels(node_name, app_id), MANAGED_BY: MANAGER}
    if version is not None:
        labels[VERSION] = version
    return labels


def node_labels(group: str, app_id: str) -> dict[str, str]:
    """The labels a node of `app_id`'s group `group` carries (the actuator sets them)."""
    return {NODE_TYPE: group, APP: app_id}


def with_labels(metadata: dict[str, Any], labels: dict[str, str]) -> None:
    """Add `labels` to metadata.labels without replacing what the user wrote."""
    current = metadata.get("labels")
    if not isinstance(current, dict):
        current = {}
    metadata["labels"] = {**labels, **current}


def label_value(text: str, default: str = "latest") -> str:
    """`text` made a valid label value (image tags can be 128 characters long)."""
    value = re.sub(r"[^-A-Za-z0-9_.]", "-", text)[:63]
    value = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)
    return value if value and _LABEL_VALUE.match(value) else default


def image_version(image: str) -> str:
    """The tag of an image reference ("latest" when there is none), as a label value."""
    last = image.rsplit("/", 1)[-1].split("@", 1)[0]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return label_value(tag)
