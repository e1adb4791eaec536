"""`host` requirements become required node affinity and Workload.hosts."""

from __future__ import annotations

import textwrap

from k8s_helpers import NODES, Result, run, schema_errors

DOCKER = "tosca.nodes.MiCADO.Container.Application.Docker"
HOSTS = textwrap.dedent("""
    worker-a:
      type: tosca.nodes.MiCADO.EC2.Compute
      properties: {region_name: eu-west-1, image_id: ami-1, instance_type: t2.small}
    worker-b:
      type: tosca.nodes.MiCADO.Nova.Compute
      properties: {image_id: img, flavor_name: small, project_id: p, network_id: n}
    Pi-Edge:
      type: tosca.nodes.MiCADO.Edge
      properties: {public_ip: 192.0.2.10}
""")


def with_hosts(nodes: str) -> str:
    return textwrap.dedent(nodes) + HOSTS


def placed(*hosts: str, strict: bool = True) -> Result:
    requirements = "".join(f"\n            - host: {h}" for h in hosts)
    return run(with_hosts(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:{requirements}
    """), strict=strict)


def terms(result: Result) -> list[dict]:
    affinity = result.pod_spec()["affinity"]["nodeAffinity"]
    return affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


def test_no_host_means_no_affinity() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
    """)
    assert "affinity" not in result.pod_spec()
    assert result.workloads[0].hosts == []


APP_TERM = {"key": "micado.eu/app", "operator": "In", "values": ["app1"]}


def test_compute_host_matches_the_node_type_label_of_the_apps_own_group() -> None:
    result = placed("worker-a")
    assert terms(result) == [{"matchExpressions": [
        {"key": "micado.eu/node_type", "operator": "In", "values": ["worker-a"]}, APP_TERM]}]
    assert result.workloads[0].hosts == ["worker-a"]
    assert schema_errors(result.manifests) == []


def test_several_compute_hosts_share_one_expression() -> None:
    result = placed("worker-a", "worker-b", "worker-a")
    assert terms(result) == [{"matchExpressions": [
        {"key": "micado.eu/node_type", "operator": "In", "values": ["worker-a", "worker-b"]},
        APP_TERM]}]
    assert result.workloads[0].hosts == ["worker-a", "worker-b"]


def test_edge_host_matches_the_hostname() -> None:
    result = placed("Pi-Edge")
    assert terms(result) == [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["pi-edge"]}]}]
    assert result.workloads[0].hosts == ["Pi-Edge"]


def test_compute_and_edge_hosts_are_alternatives() -> None:
    result = placed("worker-a", "Pi-Edge")
    assert [t["matchExpressions"][0]["key"] for t in terms(result)] == [
        "micado.eu/node_type", "kubernetes.io/hostname"]
    assert result.workloads[0].hosts == ["worker-a", "Pi-Edge"]
    assert schema_errors(result.manifests) == []


def test_a_host_that_is_not_a_machine_is_an_error() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - host: db
        db:
          type: {DOCKER}
          properties: {{image: postgres}}
    """)
    assert result.error_paths() == [f"{NODES}.web.requirements[0].host"]


def test_pod_node_hosts_place_the_pod() -> None:
    result = run(with_hosts(f"""
        app:
          type: tosca.nodes.MiCADO.Container.Application.Pod
          requirements:
            - container: web
            - host: worker-a
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
    """))
    assert terms(result)[0]["matchExpressions"][0]["values"] == ["worker-a"]
    assert result.workloads[0].hosts == ["worker-a"]


def test_user_affinity_in_inputs_wins() -> None:
    result = run(with_hosts(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - host: worker-a
          interfaces:
            Kubernetes:
              create:
                inputs:
                  spec:
                    template:
                      spec:
                        affinity:
                          nodeAffinity:
                            requiredDuringSchedulingIgnoredDuringExecution:
                              nodeSelectorTerms:
                                - matchExpressions:
                                    - {{key: disk, operator: In, values: [ssd]}}
    """))
    assert terms(result) == [{"matchExpressions": [
        {"key": "disk", "operator": "In", "values": ["ssd"]}]}]
