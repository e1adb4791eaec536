"""Small ADTs for the parity cases: node groups and Deployments with scaling policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

TYPES = "https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml"
COMPUTE = {"image_id": "img", "flavor_name": "small", "project_id": "p", "network_id": "n",
           "key_name": "k", "security_groups": ["sg"]}


@dataclass
class Policy:
    rule: str
    min: int | str = 1
    max: int | str = 3
    queries: dict[str, Any] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)


def adt(groups: dict[str, Policy | None],
        workloads: dict[str, tuple[list[str], Policy | None]]) -> str:
    """An ADT: OpenStack node groups (a None policy: a static group) and Deployments on the
    given host groups."""
    nodes: dict[str, Any] = {}
    policies: list[dict[str, Any]] = []
    for name, policy in groups.items():
        nodes[name] = {"type": "tosca.nodes.MiCADO.Nova.Compute",
                       "properties": {**COMPUTE, "security_groups": ["sg"]},
                       "interfaces": {"Occopus": {"create": {"inputs": {"endpoint": "e"}}}}}
        if policy is not None:
            policies.append(_policy(name, policy))
    for name, (hosts, policy) in workloads.items():
        nodes[name] = {"type": "tosca.nodes.MiCADO.Container.Application.Docker.Deployment",
                       "properties": {"image": "busybox"},
                       "requirements": [{"host": h} for h in hosts]}
        if policy is not None:
            policies.append(_policy(name, policy))
    doc = {"tosca_definitions_version": "tosca_simple_yaml_1_2", "imports": [TYPES],
           "topology_template": {"node_templates": nodes, "policies": policies}}
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


def _policy(target: str, policy: Policy) -> dict[str, Any]:
    props: dict[str, Any] = {"min_instances": policy.min, "max_instances": policy.max,
                             "scaling_rule": policy.rule}
    if policy.constants:
        props["constants"] = dict(policy.constants)
    if policy.queries:
        props["queries"] = dict(policy.queries)
    if policy.alerts:
        props["alerts"] = [{"alert": a, "expr": "vector(1) > 0", "for": "30s"}
                           for a in policy.alerts]
    return {f"scalability-{target}": {"type": "tosca.policies.Scaling.MiCADO",
                                      "targets": [target], "properties": props}}
