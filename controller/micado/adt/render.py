"""Text forms of a compiled app: manifests.yaml and plan.yaml, byte-for-byte deterministic."""

from __future__ import annotations

from typing import Any

from .errors import format_path
from .model import CompiledApp
from .yamlio import dump_all_yaml, dump_yaml


def manifests_yaml(app: CompiledApp) -> str:
    return dump_all_yaml(app.manifests) if app.manifests else ""


def plan_document(app: CompiledApp) -> dict[str, Any]:
    document = app.plan.to_dict()
    document["warnings"] = [f"{format_path(w.path)}: {w.message}" for w in app.warnings]
    return document


def plan_yaml(app: CompiledApp) -> str:
    return dump_yaml(plan_document(app))
