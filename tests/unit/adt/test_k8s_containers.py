"""Container properties: Kubernetes names pass through, Compose names are translated."""

from __future__ import annotations

import pytest
from k8s_helpers import NODES, Result, run, schema_errors

DOCKER = "tosca.nodes.MiCADO.Container.Application.Docker"


def one(properties: str, **kwargs: str) -> Result:
    return run(f"""
        web:
          type: {DOCKER}
          properties:
            {properties}
    """, **kwargs)


def test_kubernetes_fields_pass_through() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties:
            image: nginx
            args: [--verbose]
            command: [nginx]
            env: [{{name: A, value: "1"}}]
            envFrom: [{{configMapRef: {{name: cfg}}}}]
            imagePullPolicy: Always
            lifecycle: {{preStop: {{exec: {{command: [sleep, "5"]}}}}}}
            livenessProbe: {{httpGet: {{path: /, port: 80}}}}
            readinessProbe: {{tcpSocket: {{port: 80}}}}
            resources: {{limits: {{cpu: 500m}}}}
            securityContext: {{runAsUser: 1000}}
            stdin: true
            stdinOnce: true
            terminationMessagePath: /tmp/msg
            terminationMessagePolicy: File
            tty: true
            volumeDevices: [{{name: raw, devicePath: /dev/xvda}}]
            volumeMounts: [{{name: cache, mountPath: /cache}}]
            workingDir: /srv
    """)
    container = result.container()
    assert container == {
        "name": "web", "image": "nginx", "command": ["nginx"], "args": ["--verbose"],
        "workingDir": "/srv", "env": [{"name": "A", "value": "1"}],
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "resources": {"limits": {"cpu": "500m"}},
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
        "volumeDevices": [{"name": "raw", "devicePath": "/dev/xvda"}],
        "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
        "readinessProbe": {"tcpSocket": {"port": 80}},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "terminationMessagePath": "/tmp/msg", "terminationMessagePolicy": "File",
        "imagePullPolicy": "Always", "securityContext": {"runAsUser": 1000},
        "stdin": True, "stdinOnce": True, "tty": True,
    }
    assert result.warnings == []


def test_container_name_defaults_to_the_node_name() -> None:
    assert one("image: nginx").container()["name"] == "web"


@pytest.mark.parametrize("key", ["name", "container_name"])
def test_name_and_container_name_set_the_container_name(key: str) -> None:
    assert one(f"{{image: nginx, {key}: front}}").container()["name"] == "front"


@pytest.mark.parametrize("key", ["name", "container_name"])
def test_underscores_in_names_are_errors(key: str) -> None:
    result = one(f"{{image: nginx, {key}: my_web}}")
    assert result.error_paths() == [f"{NODES}.web.properties.{key}"]
    assert "underscore" in result.errors[0]


def test_invalid_container_name_is_an_error() -> None:
    result = one("{image: nginx, name: Web}")
    assert result.error_paths() == [f"{NODES}.web.properties.name"]


@pytest.mark.parametrize("name", ["my_web", "Web", "web-"])
def test_invalid_node_names_are_errors(name: str) -> None:
    result = run(f"""
        {name}:
          type: {DOCKER}
          properties: {{image: nginx}}
    """)
    assert f"{NODES}.{name}" in result.error_paths()


def test_missing_image_is_an_error() -> None:
    result = one("{args: [x]}")
    assert result.error_paths() == [f"{NODES}.web.properties.image"]
    assert result.errors[0].endswith("required: the image the container runs")


def test_compose_names_are_translated() -> None:
    result = one("""{image: nginx, entrypoint: '/bin/sh -c "echo hello world"',
             environment: {DEBUG: true, PORT: 8080, NAME: web}, stdin_open: true,
             working_dir: /app, privileged: true}""")
    container = result.container()
    assert container["command"] == ["/bin/sh", "-c", "echo hello world"]
    assert container["env"] == [{"name": "DEBUG", "value": "true"},
                                {"name": "PORT", "value": "8080"},
                                {"name": "NAME", "value": "web"}]
    assert container["stdin"] is True
    assert container["workingDir"] == "/app"
    assert container["securityContext"] == {"privileged": True}
    for key in ("entrypoint", "environment", "stdin_open", "working_dir", "privileged"):
        assert key not in container
    assert schema_errors(result.manifests) == []


def test_kubernetes_name_wins_a_clash() -> None:
    result = one("""{image: nginx, command: [real], entrypoint: ignored,
             securityContext: {privileged: false}, privileged: true}""")
    container = result.container()
    assert container["command"] == ["real"]
    assert container["securityContext"] == {"privileged": False}
    assert any("entrypoint" in w and "ignored" in w for w in result.warnings)


def test_unbalanced_entrypoint_is_an_error() -> None:
    result = one("""{image: nginx, entrypoint: 'sh -c "oops'}""")
    assert result.error_paths() == [f"{NODES}.web.properties.entrypoint"]


def test_cmd_becomes_args_when_the_type_declares_it() -> None:
    result = run("""
        web:
          type: my.Compose
          properties: {image: nginx, cmd: "--port 8080 --name 'my app'"}
    """, types=f"""
        my.Compose:
          derived_from: {DOCKER}
          properties:
            cmd: {{type: string, required: false}}
    """)
    assert result.container()["args"] == ["--port", "8080", "--name", "my app"]


def test_compose_labels_become_pod_labels() -> None:
    result = one("{image: nginx, labels: {tier: web, public: true}}")
    manifest = result.find("Deployment")
    pod_labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["tier"] == "web"
    assert pod_labels["public"] == "true"
    assert pod_labels["app.kubernetes.io/name"] == "web"
    assert "labels" not in result.container()


@pytest.mark.parametrize(("value", "seconds"), [
    ("30s", 30), ("1m30s", 90), ("1h", 3600), ("1.5s", 2), ("500ms", 1), ("45", 45),
])
def test_stop_grace_period(value: str, seconds: int) -> None:
    result = one(f"{{image: nginx, stop_grace_period: '{value}'}}")
    assert result.pod_spec()["terminationGracePeriodSeconds"] == seconds


def test_bad_stop_grace_period_is_an_error() -> None:
    result = one("{image: nginx, stop_grace_period: soon}")
    assert result.error_paths() == [f"{NODES}.web.properties.stop_grace_period"]


def test_pid_host_and_dns() -> None:
    result = one("""{image: nginx, pid: host, dns: [8.8.8.8, 1.1.1.1],
             dns_search: [example.com]}""")
    pod = result.pod_spec()
    assert pod["hostPID"] is True
    assert pod["dnsConfig"] == {"nameservers": ["8.8.8.8", "1.1.1.1"],
                                "searches": ["example.com"]}
    assert schema_errors(result.manifests) == []


def test_other_pid_modes_are_ignored_with_a_warning() -> None:
    result = one("{image: nginx, pid: 'container:other'}")
    assert "hostPID" not in result.pod_spec()
    assert result.warnings


def test_sidecar_pod_settings_are_combined() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx, dns: [8.8.8.8]}}
          requirements: [{{container: side}}]
        side:
          type: {DOCKER}
          properties: {{image: busybox, dns: [8.8.8.8, 9.9.9.9], stop_grace_period: 10s}}
    """)
    pod = result.pod_spec()
    assert pod["dnsConfig"] == {"nameservers": ["8.8.8.8", "9.9.9.9"]}
    assert pod["terminationGracePeriodSeconds"] == 10


def test_swarm_only_properties_are_dropped_with_a_warning() -> None:
    result = one("""{image: nginx, deploy: {replicas: 2}, networks: {front: {}},
             healthcheck: {test: [CMD, true]}, stop_signal: SIGINT, init: true}""")
    container = result.container()
    assert set(container) == {"name", "image"}
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.startswith(f"{NODES}.web.properties:")
    for key in ("deploy", "networks", "healthcheck", "stop_signal", "init"):
        assert key in warning


def test_image_from_artifact_with_a_private_repository() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          artifacts:
            image:
              type: tosca.artifacts.Deployment.Image.Container.Docker
              file: "team/app:2.1"
              repository: gitlab
    """, repositories="""
        docker_hub: https://hub.docker.com/
        gitlab: https://registry.gitlab.com/
    """)
    assert result.errors == []
    assert result.container()["image"] == "registry.gitlab.com/team/app:2.1"
    labels = result.find("Deployment")["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == "2.1"


def test_artifact_naming_the_image_property_gets_the_prefix() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: "app:1"}}
          artifacts:
            image:
              type: tosca.artifacts.Deployment.Image.Container.Docker
              file: {{get_property: [SELF, image]}}
              repository: mine
    """, repositories="""
        docker_hub: https://hub.docker.com/
        mine: {url: "http://registry.local:5000"}
    """)
    assert result.container()["image"] == "registry.local:5000/app:1"


@pytest.mark.parametrize("repository", ["docker_hub", "Docker Hub", "hub"])
def test_docker_hub_adds_no_prefix(repository: str) -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          artifacts:
            image:
              type: tosca.artifacts.Deployment.Image.Container.Docker
              file: nginx
              repository: {repository}
    """, repositories="""
        docker_hub: https://hub.docker.com/
        hub: https://docker.io
    """)
    assert result.container()["image"] == "nginx"


def test_unknown_repository_is_an_error() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          artifacts:
            image:
              type: tosca.artifacts.Deployment.Image.Container.Docker
              file: nginx
              repository: nowhere
    """)
    assert result.error_paths() == [f"{NODES}.web.artifacts.image.repository"]


def test_unset_optional_properties_leave_no_trace() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties:
            image: nginx
            workingDir: {{get_property: [SELF, working_dir]}}
    """)
    assert result.container() == {"name": "web", "image": "nginx"}
