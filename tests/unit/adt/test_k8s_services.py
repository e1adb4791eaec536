"""Services from container ports: forms of a port, naming, types, grouping and errors."""

from __future__ import annotations

from typing import Any

import pytest
from k8s_helpers import NODES, Result, run, schema_errors

DOCKER = "tosca.nodes.MiCADO.Container.Application.Docker"
SELECTOR = {"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "app1"}


def ports(entries: str) -> Result:
    return run(f"""
        web:
          type: {DOCKER}
          properties:
            image: nginx
            ports: {entries}
    """)


def services(result: Result) -> list[dict[str, Any]]:
    return [m for m in result.manifests if m["kind"] == "Service"]


def test_container_port_entries_make_no_service() -> None:
    result = ports("[{containerPort: 9300, name: metrics}]")
    assert services(result) == []
    assert result.container()["ports"] == [
        {"containerPort": 9300, "name": "metrics", "protocol": "TCP"}]


def test_service_port_makes_a_cluster_ip_service() -> None:
    result = ports("[{port: 8080, targetPort: 80}]")
    service = result.find("Service", "web")
    assert service == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {
            "app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "app1",
            "app.kubernetes.io/managed-by": "micado"}},
        "spec": {"type": "ClusterIP", "selector": SELECTOR, "ports": [
            {"name": "8080-tcp", "port": 8080, "targetPort": 80, "protocol": "TCP"}]},
    }
    assert result.container()["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert schema_errors(result.manifests) == []


def test_service_port_without_target_opens_the_same_container_port() -> None:
    result = ports("[{port: 8080}, {containerPort: 8080}]")
    assert result.container()["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]


def test_node_port_makes_a_node_port_service() -> None:
    result = ports("[{port: 80, nodePort: 30080}]")
    spec = result.find("Service", "web")["spec"]
    assert spec["type"] == "NodePort"
    assert spec["ports"][0]["nodePort"] == 30080


def test_load_balancer_and_explicit_types() -> None:
    result = ports("[{port: 443, type: LoadBalancer}]")
    assert result.find("Service", "web")["spec"]["type"] == "LoadBalancer"
    assert schema_errors(result.manifests) == []


def test_headless_service() -> None:
    result = ports("[{port: 5432, clusterIP: None}]")
    assert result.find("Service", "web")["spec"]["clusterIP"] == "None"
    assert schema_errors(result.manifests) == []


def test_bad_cluster_ip_is_an_error() -> None:
    result = ports("[{port: 5432, clusterIP: not-an-ip}]")
    assert result.error_paths() == [f"{NODES}.web.properties.ports[0].clusterIP"]


def test_port_name_and_protocol_defaults() -> None:
    result = ports("[{port: 53, protocol: udp}, {port: 80, name: http}]")
    spec_ports = result.find("Service", "web")["spec"]["ports"]
    assert spec_ports == [
        {"name": "53-udp", "port": 53, "protocol": "UDP"},
        {"name": "http", "port": 80, "protocol": "TCP"},
    ]
    assert result.container()["ports"] == [{"containerPort": 53, "protocol": "UDP"},
                                           {"containerPort": 80, "protocol": "TCP"}]


@pytest.mark.parametrize(("entry", "port", "target"), [
    ('"8080:80"', 8080, 80),
    ('"80"', 80, 80),
    ("80", 80, None),
    ('"127.0.0.1:8080:80"', 8080, 80),
    ("{target: 80, published: 8080}", 8080, 80),
    ("{target: 80}", 80, 80),
])
def test_compose_port_forms(entry: str, port: int, target: int | None) -> None:
    result = ports(f"[{entry}]")
    assert result.errors == []
    (spec_port,) = result.find("Service", "web")["spec"]["ports"]
    assert spec_port["port"] == port
    assert spec_port.get("targetPort") == target
    assert result.container()["ports"] == [{"containerPort": target or port, "protocol": "TCP"}]


def test_compose_short_form_with_protocol() -> None:
    result = ports('["5353:53/udp"]')
    (spec_port,) = result.find("Service", "web")["spec"]["ports"]
    assert spec_port == {"name": "5353-udp", "port": 5353, "targetPort": 53, "protocol": "UDP"}


def test_compose_host_mode_becomes_a_host_port() -> None:
    result = ports("[{target: 80, published: 8080, mode: host}]")
    assert services(result) == []
    assert result.container()["ports"] == [
        {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]


def test_port_ranges_are_errors() -> None:
    result = ports('["8000-8010:8000-8010"]')
    assert result.error_paths() == [f"{NODES}.web.properties.ports[0]"]


def test_a_port_without_a_number_is_an_error() -> None:
    result = ports("[{name: http}]")
    assert result.error_paths() == [f"{NODES}.web.properties.ports[0]"]
    assert "needs `port`" in result.errors[0]


def test_node_port_out_of_range_is_reported_once() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx, ports: [{{port: 80, nodePort: 80}}]}}
    """, strict=False)
    assert result.error_paths() == [f"{NODES}.web.properties.ports[0].nodePort"]
    assert services(result) == []


def test_node_port_out_of_range_is_an_error_at_the_port() -> None:
    result = run("""
        web:
          type: loose.Container
          properties: {image: nginx, ports: [{port: 80, nodePort: 32768}]}
    """, types=f"""
        loose.Container:
          derived_from: {DOCKER}
          properties:
            ports: {{type: list, required: false, entry_schema: {{type: any}}}}
    """)
    assert result.error_paths() == [f"{NODES}.web.properties.ports[0].nodePort"]
    assert "30000-32767" in result.errors[0]


def test_node_port_on_a_cluster_ip_service_is_an_error() -> None:
    result = ports("[{port: 80, nodePort: 30080, type: ClusterIP}]")
    assert result.error_paths() == [f"{NODES}.web.properties.ports[0].nodePort"]


def test_ports_merge_by_name_and_type() -> None:
    result = ports("""[{port: 80}, {port: 443}, {port: 8080, nodePort: 30080},
                       {port: 8443, nodePort: 30443}, {port: 9000, type: LoadBalancer}]""")
    assert [(s["metadata"]["name"], s["spec"]["type"], [p["port"] for p in s["spec"]["ports"]])
            for s in services(result)] == [
        ("web", "ClusterIP", [80, 443]),
        ("web-nodeport", "NodePort", [8080, 8443]),
        ("web-loadbalancer", "LoadBalancer", [9000]),
    ]
    assert all(s["spec"]["selector"] == SELECTOR for s in services(result))
    assert schema_errors(result.manifests) == []


def test_metadata_name_names_the_service() -> None:
    result = ports("""[{port: 80, metadata: {name: front}}, {port: 81, metadata: {name: front}},
                       {port: 9090, metadata: {name: admin}, nodePort: 30090}]""")
    assert [(s["metadata"]["name"], s["spec"]["type"]) for s in services(result)] == [
        ("front", "ClusterIP"), ("admin", "NodePort")]
    assert len(result.find("Service", "front")["spec"]["ports"]) == 2
    assert result.find("Service", "front")["metadata"]["labels"][
        "app.kubernetes.io/name"] == "web"


def test_invalid_service_name_is_an_error() -> None:
    result = ports("[{port: 80, metadata: {name: 1front}}]")
    assert result.error_paths() == [f"{NODES}.web.properties.ports[0].metadata.name"]


def test_duplicate_port_name_is_an_error() -> None:
    result = ports("[{port: 80}, {port: 80}]")
    assert result.error_paths() == [f"{NODES}.web.properties.ports[1]"]


def test_service_spec_fields_are_carried_over() -> None:
    result = ports("""[{port: 80, type: LoadBalancer, sessionAffinity: ClientIP,
                        loadBalancerSourceRanges: [10.0.0.0/8]}]""")
    spec = result.find("Service", "web")["spec"]
    assert spec["sessionAffinity"] == "ClientIP"
    assert spec["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert schema_errors(result.manifests) == []


def test_sidecar_ports_join_the_pod_services() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx, ports: [{{port: 80}}]}}
          requirements: [{{container: exporter}}]
        exporter:
          type: {DOCKER}
          properties: {{image: exporter, ports: [{{port: 9113}}]}}
    """)
    (service,) = services(result)
    assert [p["port"] for p in service["spec"]["ports"]] == [80, 9113]
    assert result.container("exporter")["ports"] == [{"containerPort": 9113, "protocol": "TCP"}]
