"""`tosca.nodes.MiCADO.Kubernetes` nodes: a whole manifest written in the create inputs.

Any kind is allowed (the schema check after translation says whether Kubernetes knows it); the
app labels are added so `kubectl apply --prune` treats it like everything else of the app.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import Problems
from ..topology import NodeTemplate
from .labels import app_labels, with_labels
from .nodes import create_inputs, inputs_path, text_values


def raw_manifest(node: NodeTemplate, app_id: str, problems: Problems) -> dict[str, Any] | None:
    manifest = copy.deepcopy(create_inputs(node))
    if not manifest:
        problems.error(inputs_path(node), "required: the whole Kubernetes manifest (apiVersion, "
                                          "kind, metadata, ...)")
        return None
    ok = True
    for key in ("apiVersion", "kind"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            problems.error(inputs_path(node, key), "required")
            ok = False
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        problems.error(inputs_path(node, "metadata", "name"), "required")
        return None
    if not ok:
        return None
    text_values(metadata)
    with_labels(metadata, app_labels(node.name, app_id))
    return manifest
