"""Workload kinds, pods with several containers, create-input merging and Workload records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from k8s_helpers import NODES, has_none, run, run_text, schema_errors

from micado.adt.model import Workload

DOCKER = "tosca.nodes.MiCADO.Container.Application.Docker"
SELECTOR = {"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "app1"}
ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples" / "micado").glob("*.yaml"))


@pytest.mark.parametrize(("type_suffix", "kind", "api"), [
    ("", "Deployment", "apps/v1"),
    (".Deployment", "Deployment", "apps/v1"),
    (".DaemonSet", "DaemonSet", "apps/v1"),
    (".StatefulSet", "StatefulSet", "apps/v1"),
    (".Job", "Job", "batch/v1"),
])
def test_kind_comes_from_the_type(type_suffix: str, kind: str, api: str) -> None:
    result = run(f"""
        web:
          type: {DOCKER}{type_suffix}
          properties: {{image: "nginx:1.25"}}
    """)
    assert result.errors == []
    manifest = result.find(kind, "web")
    assert manifest["apiVersion"] == api
    assert manifest["metadata"]["namespace"] == "default"
    assert schema_errors(result.manifests) == []
    assert result.workloads == [Workload("web", kind, "web", "default", SELECTOR, [])]


def test_type_inputs_are_merged_per_kind() -> None:
    result = run(f"""
        dep: {{type: {DOCKER}.Deployment, properties: {{image: a}}}}
        sts: {{type: {DOCKER}.StatefulSet, properties: {{image: a}}}}
        job: {{type: {DOCKER}.Job, properties: {{image: a}}}}
    """)
    assert result.find("Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    sts = result.find("StatefulSet")["spec"]
    assert sts["podManagementPolicy"] == "Parallel"
    assert sts["updateStrategy"] == {"type": "RollingUpdate"}
    assert sts["serviceName"] == "sts"  # required by the 1.31 schema
    job = result.find("Job")["spec"]
    assert "selector" not in job
    assert job["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert schema_errors(result.manifests) == []


def test_generic_docker_takes_kind_from_inputs() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          interfaces:
            Kubernetes:
              create:
                inputs: {{kind: Job}}
    """)
    job = result.find("Job", "web")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert schema_errors(result.manifests) == []


def test_create_without_inputs_keeps_the_type_kind() -> None:
    result = run(f"""
        web:
          type: {DOCKER}.DaemonSet
          properties: {{image: nginx}}
          interfaces:
            Kubernetes:
              create:
    """)
    assert result.kinds() == [("DaemonSet", "web")]


def test_pod_kind_merges_inputs_into_the_pod() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          interfaces:
            Kubernetes:
              create:
                inputs:
                  kind: Pod
                  spec: {{hostNetwork: true}}
                  metadata: {{labels: {{team: a}}}}
    """)
    pod = result.find("Pod", "web")
    assert pod["spec"]["hostNetwork"] is True
    assert pod["spec"]["containers"][0]["image"] == "nginx"
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "web"
    assert result.workloads[0].kind == "Pod"
    assert schema_errors(result.manifests) == []


def test_unsupported_kind_is_an_error_at_the_kind() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          interfaces:
            Kubernetes:
              create:
                inputs: {{kind: ReplicationController}}
    """)
    assert result.error_paths() == [f"{NODES}.web.interfaces.Kubernetes.create.inputs.kind"]
    assert "ReplicationController" in result.errors[0]
    assert result.manifests == []
    assert result.workloads == []


def test_inputs_are_deep_merged_and_user_values_win() -> None:
    result = run(f"""
        web:
          type: {DOCKER}.Deployment
          properties: {{image: "nginx:1.25"}}
          interfaces:
            Kubernetes:
              create:
                inputs:
                  metadata:
                    labels: {{team: blue, app.kubernetes.io/version: pinned}}
                  spec:
                    replicas: 3
                    strategy: {{type: RollingUpdate}}
                    template:
                      spec: {{hostNetwork: true}}
    """)
    manifest = result.find("Deployment", "web")
    labels = manifest["metadata"]["labels"]
    assert labels["team"] == "blue"
    assert labels["app.kubernetes.io/version"] == "pinned"
    assert labels["app.kubernetes.io/managed-by"] == "micado"
    assert manifest["spec"]["replicas"] == 3
    assert manifest["spec"]["strategy"] == {"type": "RollingUpdate"}
    pod = manifest["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["containers"][0]["image"] == "nginx:1.25"
    assert schema_errors(result.manifests) == []


def test_namespace_and_name_from_inputs() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties:
            image: nginx
            ports: [{{port: 80}}]
          interfaces:
            Kubernetes:
              create:
                inputs:
                  metadata: {{name: frontend, namespace: shop}}
    """)
    manifest = result.find("Deployment", "frontend")
    assert manifest["metadata"]["namespace"] == "shop"
    assert result.find("Service", "web")["metadata"]["namespace"] == "shop"
    assert result.workloads == [Workload("web", "Deployment", "frontend", "shop", SELECTOR, [])]


def test_bad_namespace_is_an_error() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          interfaces:
            Kubernetes:
              create:
                inputs: {{metadata: {{namespace: Not_Valid}}}}
    """)
    assert result.error_paths() == [
        f"{NODES}.web.interfaces.Kubernetes.create.inputs.metadata.namespace"]


def test_labels_and_selector() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: "registry:5000/team/nginx:1.25-alpine"}}
    """, app_id="shop")
    manifest = result.find("Deployment", "web")
    labels = {
        "app.kubernetes.io/name": "web",
        "app.kubernetes.io/instance": "shop",
        "app.kubernetes.io/managed-by": "micado",
        "app.kubernetes.io/version": "1.25-alpine",
    }
    assert manifest["metadata"]["labels"] == labels
    assert manifest["spec"]["template"]["metadata"]["labels"] == labels
    selector = {"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "shop"}
    assert manifest["spec"]["selector"] == {"matchLabels": selector}
    assert result.workloads[0].selector == selector


@pytest.mark.parametrize(("image", "version"), [
    ("nginx", "latest"),
    ("nginx:1.25", "1.25"),
    ("localhost:5000/nginx", "latest"),
    ("nginx@sha256:" + "a" * 64, "latest"),
    ("nginx:1.2@sha256:" + "a" * 64, "1.2"),
])
def test_version_label_is_the_image_tag(image: str, version: str) -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: "{image}"}}
    """)
    labels = result.find("Deployment")["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == version


def test_sidecar_joins_the_pod_and_is_not_deployed_alone() -> None:
    result = run(f"""
        web:
          type: {DOCKER}.Deployment
          properties: {{image: nginx}}
          requirements:
            - container: logger
        logger:
          type: {DOCKER}
          properties: {{image: fluentd}}
    """)
    assert result.errors == []
    assert result.kinds() == [("Deployment", "web")]
    containers = result.pod_spec()["containers"]
    assert [c["name"] for c in containers] == ["web", "logger"]
    assert [w.node for w in result.workloads] == ["web"]


def test_sidecar_of_a_deployment_type_without_own_interface() -> None:
    result = run(f"""
        web:
          type: {DOCKER}.Deployment
          properties: {{image: nginx}}
          requirements:
            - container: helper
        helper:
          type: {DOCKER}.Deployment
          properties: {{image: busybox}}
    """)
    assert result.kinds() == [("Deployment", "web")]


def test_referenced_container_with_own_interface_also_runs_alone() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - container: helper
        helper:
          type: {DOCKER}
          properties: {{image: busybox}}
          interfaces:
            Kubernetes:
              create:
                inputs: {{kind: DaemonSet}}
    """)
    assert result.kinds() == [("Deployment", "web"), ("DaemonSet", "helper")]
    assert [c["name"] for c in result.pod_spec("web")["containers"]] == ["web", "helper"]
    assert any("runs on its own as well" in w for w in result.warnings)


def test_init_containers() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - container: setup
        setup:
          type: {DOCKER}.Init
          properties: {{image: busybox, command: [sh, -c, "echo ready"]}}
    """)
    assert result.kinds() == [("Deployment", "web")]
    pod = result.pod_spec()
    assert [c["name"] for c in pod["containers"]] == ["web"]
    assert pod["initContainers"] == [
        {"name": "setup", "image": "busybox", "command": ["sh", "-c", "echo ready"]}]
    assert schema_errors(result.manifests) == []


def test_unreferenced_init_container_is_unused() -> None:
    result = run(f"""
        setup:
          type: {DOCKER}.Init
          properties: {{image: busybox}}
    """)
    assert result.manifests == []
    assert result.warnings and "unused" in result.warnings[0]


@pytest.mark.parametrize(("pod_type", "kind"), [
    ("tosca.nodes.MiCADO.Container.Application.Pod", "Pod"),
    ("tosca.nodes.MiCADO.Container.Pod.Kubernetes", "Pod"),
    ("tosca.nodes.MiCADO.Container.Application.Pod.Deployment", "Deployment"),
])
def test_pod_nodes_hold_their_containers(pod_type: str, kind: str) -> None:
    result = run(f"""
        app:
          type: {pod_type}
          requirements:
            - container: front
            - container: back
            - container: prep
        front:
          type: {DOCKER}
          properties: {{image: "nginx:1.25", ports: [{{port: 80}}]}}
        back:
          type: {DOCKER}
          properties: {{image: "redis:7"}}
        prep:
          type: {DOCKER}.Init
          properties: {{image: busybox}}
    """)
    assert result.errors == []
    assert result.kinds() == [(kind, "app"), ("Service", "app")]
    pod = result.pod_spec()
    assert [c["name"] for c in pod["containers"]] == ["front", "back"]
    assert [c["name"] for c in pod["initContainers"]] == ["prep"]
    assert result.workloads[0].kind == kind
    assert result.find(kind)["metadata"]["labels"]["app.kubernetes.io/version"] == "1.25"
    assert schema_errors(result.manifests) == []


def test_pod_without_containers_is_an_error() -> None:
    result = run("""
        app:
          type: tosca.nodes.MiCADO.Container.Application.Pod
    """)
    assert result.error_paths() == [f"{NODES}.app.requirements"]


def test_container_requirement_to_a_non_container_is_an_error() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - container: data
        data:
          type: tosca.nodes.MiCADO.Container.Volume.EmptyDir
    """)
    assert result.error_paths() == [f"{NODES}.web.requirements[0].container"]


def test_duplicate_container_names_in_a_pod_are_an_error() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - container: other
        other:
          type: {DOCKER}
          properties: {{image: nginx, name: web}}
    """)
    assert result.error_paths() == [f"{NODES}.other"]


def test_duplicate_object_names_are_an_error() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
        other:
          type: {DOCKER}
          properties: {{image: nginx}}
          interfaces:
            Kubernetes:
              create:
                inputs: {{metadata: {{name: web}}}}
    """)
    assert result.error_paths() == [f"{NODES}.other"]


def test_clones_each_become_a_workload() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          instance_count: 2
          properties: {{image: nginx}}
    """)
    assert result.kinds() == [("Deployment", "web-1"), ("Deployment", "web-2")]


def test_output_is_deterministic_and_has_no_none() -> None:
    nodes = f"""
        cfg:
          type: tosca.nodes.MiCADO.Container.Config.ConfigMap
          properties: {{data: {{a: b}}}}
        web:
          type: {DOCKER}.Deployment
          properties:
            image: nginx
            ports: [{{port: 80}}, {{port: 443, nodePort: 30443}}]
          requirements:
            - volume: cfg
            - volume: nfs
        nfs:
          type: tosca.nodes.MiCADO.Container.Volume.NFS
          properties: {{path: /exports, server: 10.0.0.1}}
        gl:
          type: tosca.nodes.MiCADO.Container.Volume.GlusterFS
          properties: {{path: vol, endpoints: gluster}}
        raw:
          type: tosca.nodes.MiCADO.Kubernetes
          interfaces:
            Kubernetes:
              create:
                inputs: {{apiVersion: v1, kind: ServiceAccount, metadata: {{name: robot}}}}
    """
    first, second = run(nodes), run(nodes)
    assert first.manifests == second.manifests
    assert first.kinds() == [
        ("ConfigMap", "cfg"), ("PersistentVolume", "nfs"), ("PersistentVolume", "gl"),
        ("PersistentVolumeClaim", "nfs"), ("PersistentVolumeClaim", "gl"),
        ("Deployment", "web"), ("Service", "web"), ("Service", "web-nodeport"),
        ("ServiceAccount", "robot"),
    ]
    assert not has_none(first.manifests)
    assert schema_errors(first.manifests) == []


def test_the_examples_are_there() -> None:
    assert len(EXAMPLES) == 3, "examples/micado must hold MiCADO's three example ADTs"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_adts_translate_cleanly(path: Path) -> None:
    result = run_text(path.read_text(encoding="utf-8"), app_id="example")
    assert result.errors == []
    assert result.manifests
    assert schema_errors(result.manifests) == []
    assert [w.kind for w in result.workloads] == ["Deployment"]


@pytest.mark.parametrize("value", ["x", 5, None, [1, None], {"a": [1]}, True])
def test_ill_typed_values_are_reported_never_raised(value: object,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The compiler translates even when the type checks failed, so nothing may raise."""
    v = json.dumps(value)
    result = run(f"""
        web:
          type: {DOCKER}
          properties:
            image: nginx
            ports: [{v}, {{port: {v}, nodePort: {v}, metadata: {v}}}, {{containerPort: {v}}}]
            environment: {v}
            entrypoint: {v}
            stop_grace_period: {v}
            labels: {v}
          requirements:
            - volume: {{node: cfg, relationship: {{properties: {{location: {v}}}}}}}
            - container: pod
          interfaces:
            Kubernetes:
              create:
                inputs: {{kind: {v}, metadata: {v}, spec: {v}}}
        cfg:
          type: tosca.nodes.MiCADO.Container.Config.ConfigMap
          properties: {{data: {v}}}
          interfaces:
            Kubernetes:
              create:
                inputs: {{metadata: {v}}}
        pod:
          type: tosca.nodes.MiCADO.Container.Application.Pod
          requirements: [{{container: web}}]
        raw:
          type: tosca.nodes.MiCADO.Kubernetes
          interfaces:
            Kubernetes:
              create:
                inputs: {{kind: {v}, metadata: {v}}}
    """, strict=False)
    assert result.errors
    assert capsys.readouterr() == ("", "")
