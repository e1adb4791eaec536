"""How long compiling a big ADT takes (200 containers, 20 node groups, 40 scaling policies),
side by side with MiCADO's own parser (micado_parser_baseline.py) on the same ADT.

Run with `make bench` (pytest benchmarks --benchmark-only); see benchmarks/README.md.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from micado_parser_baseline import MICADO_PARSER, TOSCA_PARSER, MicadoParser, write_adt

from micado.adt import CompiledApp, compile_adt

MICADO_URL = "https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml"
MICADO_ROUNDS = 5  # timed parses by MiCADO's parser, after one warm-up parse
OURS_PER_MICADO = 3  # our compiles after each of its parses (each takes ~1/20 of the time)
ROUNDS = MICADO_ROUNDS * OURS_PER_MICADO  # our timed rounds, after as many warm-up rounds
SPEEDUP_TARGET = 10.0
CONTAINERS = 200
NODE_GROUPS = 20
POLICIES_PER_KIND = 20  # on node groups, and as many again on containers
DEPLOYMENT = "tosca.nodes.MiCADO.Container.Application.Docker.Deployment"


def _group(g: int) -> str:
    return f"worker-{g:02d}"


def _container(c: int) -> str:
    return f"app-{c:03d}"


def _container_template(c: int) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "image": f"registry.example.org/team/app-{c:03d}:1.{c % 10}",
        "args": ["--listen", "0.0.0.0:8080", "--log-level", "info"],
        "env": [
            {"name": "MODE", "value": "production"},
            {"name": "INSTANCE", "value": str(c)},
            {"name": "PEER", "value": f"{_container((c + 1) % CONTAINERS)}:8080"},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
    }
    if c % 4 == 0:
        ports: list[dict[str, Any]] = [{"port": 8080, "targetPort": 8080}]
        if c % 20 == 0:
            ports.append({"port": 9090, "nodePort": 30000 + c, "name": "metrics"})
        ports.append({"containerPort": 9100})
        properties["ports"] = ports
    return {
        "type": DEPLOYMENT,
        "properties": properties,
        "requirements": [{"host": _group(c % NODE_GROUPS)}],
    }


def _group_template(g: int) -> dict[str, Any]:
    if g % 2 == 0:
        return {
            "type": "tosca.nodes.MiCADO.Nova.Compute",
            "properties": {
                "image_id": f"6bba6dc3-b6d5-4b15-942e-61e0ef2f93{g:02d}",
                "flavor_name": "m1.medium",
                "project_id": "a678d20e71cb4b9f812a31e5f3eb63b0",
                "network_id": "3fd4c62d-5fbe-4bd9-9a9f-c161dabeefde",
                "key_name": "bench-key",
                "security_groups": ["d509348f-21f1-4723-9475-0cf749e05c33"],
            },
            "interfaces": {"Terraform": {"create": {"inputs": {
                "endpoint": "https://openstack.example.org:5000/v3"}}}},
        }
    return {
        "type": "tosca.nodes.MiCADO.EC2.Compute",
        "properties": {
            "region_name": "eu-west-1",
            "image_id": "ami-061a2d878e5754b62",
            "instance_type": "t3.medium",
            "key_name": "bench-key",
            "security_group_ids": ["sg-93d46bf7"],
        },
        "interfaces": {"Terraform": {"create": {"inputs": {
            "endpoint": "https://ec2.eu-west-1.amazonaws.com"}}}},
    }


def _group_policy(g: int) -> dict[str, Any]:
    name = _group(g)
    tag = f"N{g:02d}"
    return {"scalability": {
        "type": "tosca.policies.Scaling.MiCADO",
        "targets": [name],
        "properties": {
            "sources": [f"{name}-exporter:9100"],
            "constants": {f"{tag}_MAX": 6, f"{tag}_HI": 70, f"{tag}_LO": 20,
                          f"{tag}_NAME": name},
            "queries": {
                f"{tag}_CPU": f'100-avg(rate(node_cpu_seconds_total{{node=~"{{{{{tag}_NAME}}}}.*",'
                              f'mode="idle"}}[60s]))*100',
                f"{tag}_TIME": "time()",
            },
            "alerts": [
                {"alert": f"{tag}_overloaded", "expr": f"{tag}_CPU > {{{{{tag}_HI}}}}",
                 "for": "1m"},
                {"alert": f"{tag}_underloaded", "expr": f"{tag}_CPU < {{{{{tag}_LO}}}}",
                 "for": "2m"},
            ],
            "min_instances": 1,
            "max_instances": f"{{{{{tag}_MAX}}}}",
            "scaling_rule": (
                f"if len(m_nodes) == m_node_count and m_time_since_node_count_changed > 60:\n"
                f"    if {tag}_overloaded or {tag}_CPU > {tag}_HI:\n"
                f"        m_node_count += 1\n"
                f"    elif {tag}_underloaded:\n"
                f"        m_node_count -= 1\n"
                f"else:\n"
                f"    print('transient phase at', {tag}_TIME)\n"
            ),
        },
    }}


def _container_policy(c: int) -> dict[str, Any]:
    name = _container(c)
    tag = f"C{c:03d}"
    return {"scalability": {
        "type": "tosca.policies.Scaling.MiCADO",
        "targets": [name],
        "properties": {
            "constants": {f"{tag}_MAX": 10, f"{tag}_HI": 80, f"{tag}_LO": 10,
                          f"{tag}_NAME": name},
            "queries": {
                f"{tag}_CPU": "avg(rate(container_cpu_usage_seconds_total"
                              f'{{pod=~"{{{{{tag}_NAME}}}}.*"}}[60s]))*100',
                f"{tag}_RPS": f'sum(rate(http_requests_total{{service="{name}"}}[60s]))',
            },
            "alerts": [
                {"alert": f"{tag}_overloaded", "expr": f"{tag}_CPU > {{{{{tag}_HI}}}}",
                 "for": "30s"},
            ],
            "min_instances": 1,
            "max_instances": f"{{{{{tag}_MAX}}}}",
            "scaling_rule": (
                f"if {tag}_overloaded and m_container_count < {tag}_MAX:\n"
                f"    m_container_count += 1\n"
                f"elif {tag}_CPU < {tag}_LO and {tag}_RPS < 5 and m_container_count > 1:\n"
                f"    m_container_count -= 1\n"
            ),
        },
    }}


def make_big_adt() -> str:
    """The ADT text: 200 Deployments, 20 node groups, 40 scaling policies."""
    nodes: dict[str, Any] = {}
    for c in range(CONTAINERS):
        nodes[_container(c)] = _container_template(c)
    for g in range(NODE_GROUPS):
        nodes[_group(g)] = _group_template(g)
    policies = [_group_policy(g) for g in range(POLICIES_PER_KIND)]
    policies += [_container_policy(c) for c in range(POLICIES_PER_KIND)]
    document = {
        "tosca_definitions_version": "tosca_simple_yaml_1_2",
        "imports": [MICADO_URL],
        "repositories": {"docker_hub": "https://hub.docker.com/"},
        "description": "benchmark: 200 containers on 20 node groups, 40 scaling policies",
        "topology_template": {"node_templates": nodes, "policies": policies},
    }
    return yaml.safe_dump(document, sort_keys=False, width=100)


BIG_ADT = make_big_adt()


def _compile() -> CompiledApp:
    return compile_adt(BIG_ADT, app_id="bench")


def _check(app: CompiledApp) -> None:
    plan = app.plan
    assert len(plan.workloads) == CONTAINERS
    assert sum(1 for m in app.manifests if m["kind"] == "Deployment") == CONTAINERS
    assert any(m["kind"] == "Service" for m in app.manifests)
    assert len(plan.node_groups) == NODE_GROUPS
    assert {g.cloud for g in plan.node_groups} == {"openstack", "ec2"}
    assert len(plan.policies) == 2 * POLICIES_PER_KIND
    assert sum(p.target_kind == "node_group" for p in plan.policies) == POLICIES_PER_KIND
    assert sum(p.target_kind == "workload" for p in plan.policies) == POLICIES_PER_KIND


@pytest.fixture(scope="module")
def micado_parser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    adt = write_adt(BIG_ADT, MICADO_URL, Path(tmp_path_factory.mktemp("micado-parser")))
    with MicadoParser(adt) as parser:
        yield parser


def test_compile_big_adt_against_micado_parser(benchmark: Any, micado_parser: MicadoParser,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Rounds alternate: one parse by MiCADO's parser (in the untimed setup, timed in its own
    process), then OURS_PER_MICADO of our compiles (timed here); the first parse and the
    compiles after it are the warm-up. Wall-clock time is the figure; CPU time, less moved by
    other work on the machine, is reported beside it."""
    _check(_compile())  # raises AdtError (listing every problem) if the ADT does not compile

    rounds_done = 0

    def micado_round() -> None:
        nonlocal rounds_done
        rounds_done += 1
        if (rounds_done - 1) % OURS_PER_MICADO:
            return
        parse = micado_parser.parse()  # raises (its error on stderr) if MiCADO rejects the ADT
        assert (parse.nodes, parse.policies) == (CONTAINERS + NODE_GROUPS,
                                                 2 * POLICIES_PER_KIND), parse

    our_cpu: list[float] = []

    def our_round() -> CompiledApp:
        start = time.process_time()
        try:
            return _compile()
        finally:
            our_cpu.append(time.process_time() - start)

    app = benchmark.pedantic(our_round, setup=micado_round, rounds=ROUNDS, iterations=1,
                             warmup_rounds=OURS_PER_MICADO)
    _check(app)
    timed = micado_parser.rounds[1:]
    assert len(timed) == MICADO_ROUNDS
    theirs = statistics.median(p.seconds for p in timed)
    theirs_cpu = statistics.median(p.cpu_seconds for p in timed)
    ours, ours_cpu = benchmark.stats.stats.median, statistics.median(our_cpu[-ROUNDS:])
    speedup, speedup_cpu = theirs / ours, theirs_cpu / ours_cpu
    benchmark.extra_info.update({
        "micado_parser": f"micado-parser {MICADO_PARSER} on tosca-parser {TOSCA_PARSER}",
        "micado_parser_median_s": round(theirs, 3),
        "micado_parser_rounds_s": [round(p.seconds, 3) for p in micado_parser.rounds],
        "micado_parser_cpu_median_s": round(theirs_cpu, 3),
        "ours_median_s": round(ours, 4),
        "ours_cpu_median_s": round(ours_cpu, 4),
        "speedup": round(speedup, 1),
        "speedup_cpu": round(speedup_cpu, 1),
    })
    with capsys.disabled():
        print(f"\n\ncompile of the {CONTAINERS + NODE_GROUPS}-node ADT, medians of "
              f"{MICADO_ROUNDS} parses and {ROUNDS} compiles, alternating (wall clock; CPU "
              "time in brackets):\n"
              f"  MiCADO's parser (micado-parser {MICADO_PARSER}, tosca-parser {TOSCA_PARSER}): "
              f"{theirs:.3f} s ({theirs_cpu:.3f} s)\n"
              f"  ours (compile_adt: manifests, policies, schema checks): "
              f"{ours:.3f} s ({ours_cpu:.3f} s)\n"
              f"  speed-up: {speedup:.1f}x ({speedup_cpu:.1f}x); target at least "
              f"{SPEEDUP_TARGET:.0f}x: {'met' if speedup >= SPEEDUP_TARGET else 'NOT met'}")
