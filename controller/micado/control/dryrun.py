"""What a dry run shows when the live diff cannot be made: the objects, node groups and
policies a compiled app would bring, without asking the cluster.

Used by the controller (its Kubernetes API cannot be read) and by the CLI (no controller to
ask), so both list the same things the same way.
"""

from __future__ import annotations

from typing import Any

from micado.adt import CompiledApp
from micado.adt.errors import format_path


def planned_objects(compiled: CompiledApp) -> list[dict[str, str]]:
    """Every manifest as `apply KIND NAMESPACE/NAME`: create or update is the cluster's to say."""
    objects = []
    for manifest in compiled.manifests:
        meta = manifest.get("metadata") or {}
        objects.append({"action": "apply", "kind": str(manifest.get("kind")),
                        "namespace": str(meta.get("namespace") or ""),
                        "name": str(meta.get("name"))})
    return objects


def offline_summary(compiled: CompiledApp, why: str) -> dict[str, Any]:
    """A dry run's answer without the cluster (the shape the controller's dry run has)."""
    plan = compiled.plan
    return {
        "app_id": compiled.app_id, "status": "dry-run", "dry_run": True,
        "warnings": [{"path": format_path(p.path), "message": p.message}
                     for p in compiled.warnings],
        "changes": planned_objects(compiled),
        "node_groups": [{"name": g.name, "min": g.min_instances, "max": g.max_instances}
                        for g in plan.node_groups],
        "policies": [{"name": p.name, "target": p.target, "kind": p.target_kind}
                     for p in plan.policies],
        "live_diff": why,
    }
