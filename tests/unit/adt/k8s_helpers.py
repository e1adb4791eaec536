"""Small ADTs for the Kubernetes translation tests, and ways to look into what they produce."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from micado.adt.errors import Problems, format_path
from micado.adt.k8s import translate
from micado.adt.k8s_schema import manifest_errors
from micado.adt.model import Workload
from micado.adt.topology import read_topology

TYPES_URL = "https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml"
NODES = "topology_template.node_templates"


def _block(text: str, indent: str) -> str:
    return textwrap.indent(textwrap.dedent(text).strip(), indent)


def adt(nodes: str, repositories: str = "docker_hub: https://hub.docker.com/",
        types: str = "") -> str:
    """An ADT text whose node_templates are `nodes` (YAML, any indentation), plus node types."""
    return (
        "tosca_definitions_version: tosca_simple_yaml_1_2\n"
        f"imports:\n  - {TYPES_URL}\n"
        f"repositories:\n{_block(repositories, '  ')}\n"
        + (f"node_types:\n{_block(types, '  ')}\n" if types else "")
        +
        "topology_template:\n  node_templates:\n"
        f"{_block(nodes, '    ')}\n"
    )


@dataclass
class Result:
    manifests: list[dict[str, Any]]
    workloads: list[Workload]
    problems: Problems

    @property
    def errors(self) -> list[str]:
        return [str(p) for p in self.problems.errors]

    @property
    def warnings(self) -> list[str]:
        return [str(p) for p in self.problems.warnings]

    def error_paths(self) -> list[str]:
        return [format_path(p.path) for p in self.problems.errors]

    def kinds(self) -> list[tuple[str, str]]:
        return [(m["kind"], m["metadata"]["name"]) for m in self.manifests]

    def find(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [m for m in self.manifests
                 if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]
        assert len(found) == 1, f"{kind} {name}: {self.kinds()}"
        return found[0]

    def pod_spec(self, name: str | None = None) -> dict[str, Any]:
        """The PodSpec of the only (or the named) workload."""
        workloads = [m for m in self.manifests if m["kind"] in
                     ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")
                     and (name is None or m["metadata"]["name"] == name)]
        assert len(workloads) == 1, self.kinds()
        manifest = workloads[0]
        return manifest["spec"] if manifest["kind"] == "Pod" else manifest["spec"]["template"][
            "spec"]

    def container(self, name: str | None = None, workload: str | None = None) -> dict[str, Any]:
        containers = self.pod_spec(workload)["containers"]
        if name is None:
            return containers[0]
        (found,) = [c for c in containers if c["name"] == name]
        return found


def run(nodes: str, app_id: str = "app1", strict: bool = True, **kwargs: str) -> Result:
    """Translate an ADT made of `nodes`; unless not `strict`, it must read without errors."""
    problems = Problems()
    topology = read_topology(adt(nodes, **kwargs), {}, None, problems)
    assert topology is not None
    assert not strict or not problems.errors, [str(p) for p in problems.errors]
    manifests, workloads = translate(topology, app_id, problems)
    return Result(manifests, workloads, problems)


def run_text(text: str, app_id: str = "app1") -> Result:
    problems = Problems()
    topology = read_topology(text, {}, None, problems)
    assert topology is not None
    manifests, workloads = translate(topology, app_id, problems)
    return Result(manifests, workloads, problems)


def schema_errors(manifests: list[dict[str, Any]]) -> list[str]:
    """Every Kubernetes 1.31 strict-schema problem of the manifests."""
    return [f"{m['kind']} {m['metadata']['name']}: {e}" for m in manifests
            for e in manifest_errors(m, "1.31")]


def has_none(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(has_none(v) for v in value.values())
    if isinstance(value, list):
        return any(has_none(v) for v in value)
    return False
