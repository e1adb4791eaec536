"""MiCADO users' own ADTs: values Kubernetes wants as text, v0.7's create inputs, one error per
problem and names that are nearly right.

tests/data/micado/fd_ec2.yaml and fd_dummy_client.yaml are MiCADO's face-detection ADTs
(micado-scale/tosca, ADT/edge-fog/face-dection/), kept unchanged: receivers cloned with
instance_count, each with its own PORT from a list input. stressng_v07.yaml is a
reconstruction in the shape of a v0.7 ADT (its header says why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from adt_text import HEADER, compiled, errors_of

from micado.adt import AdtError, app_id_from_filename, compile_adt
from micado.adt.imports import micado_release
from micado.adt.k8s.fields import is_v07

DATA = Path(__file__).resolve().parents[2] / "data" / "micado"
NODES = "topology_template.node_templates"
INPUTS = "interfaces.Kubernetes.create.inputs"
WEB_ONLY = """
    topology_template:
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties: {image: nginx}
"""


def _compile_file(name: str, text: str | None = None) -> Any:
    path = DATA / name
    return compile_adt(text if text is not None else path.read_text(encoding="utf-8"),
                       app_id=app_id_from_filename(path), base_dir=DATA)


def _workload(app: Any, name: str) -> dict[str, Any]:
    (manifest,) = [m for m in app.manifests if m["kind"] in ("Deployment", "Pod")
                   and m["metadata"]["name"] == name]
    return manifest


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    spec = manifest["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    return pod["containers"][0]


def _env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in _container(manifest).get("env", [])}


# ------------------------------------------------------------------ values made text


@pytest.mark.parametrize(("name", "client"), [("fd_ec2.yaml", "fd-pi-client-1"),
                                              ("fd_dummy_client.yaml", "fd-dummy-client-1")])
def test_face_detection_adts_validate_and_render(name: str, client: str) -> None:
    app = _compile_file(name)
    for n in range(1, 7):
        receiver = _workload(app, f"fd-receiver-{n}")
        port = 4092 + n - 1
        assert _env(receiver)["PORT"] == str(port)
        assert _container(receiver)["ports"] == [
            {"containerPort": port, "hostPort": port, "protocol": "UDP"}]
    assert _env(_workload(app, client))["REMOTE_PORT"] == "4092"
    assert _env(_workload(app, "fd-cloud"))["PORT"] == "4097"
    assert sorted(e.name for e in app.plan.edges) == ["cloudedge", "fogedge", "piedge"]


def test_numbers_and_booleans_become_text_where_kubernetes_wants_text() -> None:
    app = compiled("""
    topology_template:
      inputs:
        PORT: {type: integer, default: 4092}
        DEBUG: {type: boolean, default: true}
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: nginx
            env:
              - {name: PORT, value: {get_input: PORT}}
              - {name: DEBUG, value: {get_input: DEBUG}}
              - {name: RATIO, value: 0.5}
              - {name: FROM, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            command: [serve, --port, {get_input: PORT}]
            args: [--workers, 4, --verbose, true]
          interfaces:
            Kubernetes:
              create:
                inputs:
                  metadata: {labels: {tier: 2}, annotations: {revision: 7}}
                  spec: {template: {metadata: {labels: {canary: false}}}}
        raw:
          type: tosca.nodes.MiCADO.Kubernetes
          interfaces:
            Kubernetes:
              create:
                inputs:
                  apiVersion: v1
                  kind: ConfigMap
                  metadata: {name: settings, labels: {generation: 3}}
                  data: {a: b}
    """)
    web = _workload(app, "web")
    assert _env(web) == {"PORT": "4092", "DEBUG": "true", "RATIO": "0.5", "FROM": None}
    assert _container(web)["command"] == ["serve", "--port", "4092"]
    assert _container(web)["args"] == ["--workers", "4", "--verbose", "true"]
    assert web["metadata"]["labels"]["tier"] == "2"
    assert web["metadata"]["annotations"] == {"revision": "7"}
    assert web["spec"]["template"]["metadata"]["labels"]["canary"] == "false"
    (config,) = [m for m in app.manifests if m["kind"] == "ConfigMap"]
    assert config["metadata"]["labels"]["generation"] == "3"


# ------------------------------------------------------------------ v0.7's create inputs


@pytest.mark.parametrize(("ref", "v07"), [
    ("v0.7.2", True), ("v0.7.1", True), ("v0.7.0-rc1", True), ("0.7.3", True),
    ("v0.70", False), ("v0.8.0", False), ("v0.12.3", False), ("develop", False),
    ("main", False), (None, False)])
def test_which_releases_are_v07(ref: str | None, v07: bool) -> None:
    assert is_v07(ref) is v07


def test_the_release_an_import_names() -> None:
    base = "https://raw.githubusercontent.com/micado-scale/tosca"
    assert micado_release(f"{base}/v0.7.2/micado_types.yaml") == "v0.7.2"
    assert micado_release(f"{base}/refs/tags/v0.7.1/micado_types.yaml") == "v0.7.1"
    assert micado_release("https://github.com/micado-scale/tosca/raw/develop/"
                          "custom_types/container/kubernetes.yaml") == "develop"
    assert micado_release("https://example.com/v0.7.2/micado_types.yaml") is None


def test_v07_create_inputs_are_fields_of_the_spec() -> None:
    app = _compile_file("stressng_v07.yaml")
    deployment = _workload(app, "stressng")
    assert set(deployment) == {"apiVersion", "kind", "metadata", "spec"}
    spec = deployment["spec"]
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["minReadySeconds"] == 5
    assert spec["template"]["spec"]["hostNetwork"] is False
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 10
    assert deployment["metadata"]["labels"]["tier"] == "2"
    assert [p.target for p in app.plan.policies] == ["stressng"]


def test_v08_reads_those_inputs_as_misplaced_and_says_where_they_belong() -> None:
    text = (DATA / "stressng_v07.yaml").read_text(encoding="utf-8").replace(
        "tosca/v0.7.2/", "tosca/develop/")
    with pytest.raises(AdtError) as info:
        _compile_file("stressng_v07.yaml", text)
    where = f"{NODES}.stressng.{INPUTS}"
    reported = {str(e.path[-1]): e.message for e in info.value.errors}
    assert [str(e).split(":")[0] for e in info.value.errors] == [
        f"{where}.{key}" for key in ("strategy", "minReadySeconds", "hostNetwork",
                                     "terminationGracePeriodSeconds")]
    assert reported["strategy"].startswith("not a field of a Deployment; did you mean "
                                           "spec.strategy? (MiCADO v0.7 read create inputs")
    assert "did you mean spec.template.spec.hostNetwork?" in reported["hostNetwork"]
    assert not any("Additional properties" in e.message for e in info.value.errors)


def test_a_bad_value_from_a_v07_input_is_reported_at_that_input() -> None:
    text = (DATA / "stressng_v07.yaml").read_text(encoding="utf-8").replace(
        "minReadySeconds: 5", "minReadySeconds: soon")
    with pytest.raises(AdtError) as info:
        _compile_file("stressng_v07.yaml", text)
    (error,) = info.value.errors
    assert str(error).startswith(f"{NODES}.stressng.{INPUTS}.minReadySeconds: 'soon' is not of "
                                 "type 'integer'")
    assert "(in the Deployment 'stressng' it makes, at spec.minReadySeconds)" in str(error)


@pytest.mark.parametrize(("inputs", "path", "message"), [
    ("{replicas: 2}", "replicas", "not a field of a Deployment; did you mean spec.replicas? "
                                  "(MiCADO v0.7 read create inputs as fields of the spec; since "
                                  "v0.8 they are the manifest's own fields)"),
    ("{spec: {hostNetwork: true}}", "spec.hostNetwork",
     "not a field of a Deployment spec; did you mean spec.template.spec.hostNetwork?"),
    ("{spec: {replica: 2}}", "spec.replica",
     "not a field of a Deployment spec; did you mean replicas?"),
    ("{metdata: {labels: {a: b}}}", "metdata",
     "not a field of a Deployment; did you mean metadata?"),
    ("{labels: {a: b}}", "labels", "not a field of a Deployment; did you mean metadata.labels?"),
])
def test_misplaced_create_inputs_are_reported_at_the_input(inputs: str, path: str,
                                                           message: str) -> None:
    errors = errors_of(f"""
    topology_template:
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties: {{image: nginx}}
          interfaces:
            Kubernetes:
              create:
                inputs: {inputs}
    """)
    assert errors == [f"{NODES}.web.{INPUTS}.{path}: {message}"]


def test_v07_inputs_of_a_pod_go_to_its_spec() -> None:
    app = compiled("""
    topology_template:
      node_templates:
        job:
          type: tosca.nodes.MiCADO.Container.Application.Docker
          properties: {image: busybox}
          interfaces:
            Kubernetes:
              create:
                inputs: {kind: Pod, restartPolicy: Never, hostNetwork: true, name: batch,
                         labels: {team: data}}
    """, header=HEADER.replace("/develop/", "/v0.7.1/"))
    pod = _workload(app, "batch")
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["hostNetwork"] is True
    assert pod["metadata"]["labels"]["team"] == "data"


# ------------------------------------------------------------------ one error per problem


@pytest.mark.parametrize(("properties", "path", "fragment"), [
    ("{image: [nginx]}", "properties.image", "must be a string, got a list"),
    ("{image: nginx, ports: {a: 1}}", "properties.ports", "must be a list, got a map"),
])
def test_a_property_of_the_wrong_type_is_not_also_missing(properties: str, path: str,
                                                          fragment: str) -> None:
    errors = errors_of(f"""
    topology_template:
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties: {properties}
    """)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{NODES}.web.{path}: {fragment}")


def test_a_required_property_of_the_wrong_type_is_reported_once() -> None:
    errors = errors_of(WEB_ONLY + """\
      policies:
        - scalability:
            type: tosca.policies.Scaling.MiCADO
            targets: [web]
            properties:
              min_instances: 1
              max_instances: 2
              scaling_rule: [m_container_count = 1]
              alerts: [{alert: 5, expr: up}]
    """)
    path = "topology_template.policies[0].scalability.properties"
    assert errors == [
        f"{path}.scaling_rule: must be a string, got a list (['m_container_count = 1'])",
        f"{path}.alerts[0].alert: must be a name that is a Python identifier"]


@pytest.mark.parametrize(("section", "body", "expected"), [
    ("node", "nodes: {x: {type: tosca.nodes.MiCADO.CloudSigma.Compute.Occo.smal.NFS}}",
     f"{NODES}.x.type: unknown node type 'tosca.nodes.MiCADO.CloudSigma.Compute.Occo.smal.NFS'"
     "; did you mean tosca.nodes.MiCADO.CloudSigma.Compute.Occo.small.NFS?"),
    ("node", "nodes: {x: {type: no.such.Thing}}",
     f"{NODES}.x.type: unknown node type 'no.such.Thing'"),
    ("policy", "policies: [{p: {type: tosca.policies.Scaling.MiCAD, targets: [web]}}]",
     "topology_template.policies[0].p.type: unknown policy type 'tosca.policies.Scaling.MiCAD'"
     "; did you mean tosca.policies.Scaling.MiCADO?"),
    ("property", "nodes: {x: {type: tosca.nodes.MiCADO.Container.Application.Docker, "
                 "properties: {image: a, imagePullPolcy: Always}}}",
     f"{NODES}.x.properties.imagePullPolcy: unknown property of "
     "tosca.nodes.MiCADO.Container.Application.Docker; did you mean imagePullPolicy? "),
])
def test_unknown_names_suggest_the_closest_known_one(section: str, body: str,
                                                     expected: str) -> None:
    nodes = ("web: {type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment, "
             "properties: {image: nginx}}")
    if body.startswith("nodes: "):
        text = f"topology_template:\n  node_templates: {{{nodes}, {body[8:-1]}}}\n"
    else:
        text = f"topology_template:\n  node_templates: {{{nodes}}}\n  {body}\n"
    errors = errors_of(text)
    assert any(e == expected or e.startswith(expected) for e in errors), errors
    if "did you mean" not in expected:
        assert not any("did you mean" in e for e in errors), errors


def test_an_unknown_parent_type_suggests_the_closest_known_one() -> None:
    errors = errors_of("""
    node_types:
      my.Web:
        derived_from: tosca.nodes.MiCADO.Container.Application.Dockr
    topology_template:
      node_templates:
        web: {type: my.Web, properties: {image: nginx}}
    """)
    assert ("node_types.my.Web.derived_from: unknown node type "
            "'tosca.nodes.MiCADO.Container.Application.Dockr'; did you mean "
            "tosca.nodes.MiCADO.Container.Application.Docker?") in errors


def test_a_node_of_unknown_type_is_one_error_not_also_every_reference_to_it() -> None:
    errors = errors_of(WEB_ONLY + """\
          requirements: [{host: vm}, {host: {node: vm}}, {host: {node: [vm]}}]
        vm: {type: tosca.nodes.MiCADO.EC2.Compte}
      policies:
        - scalability:
            type: tosca.policies.Scaling.MiCADO
            targets: [vm, {a: 1}]
            properties: {min_instances: 1, max_instances: 2, scaling_rule: m_node_count = 1}
    """)
    assert errors == [
        f"{NODES}.vm.type: unknown node type 'tosca.nodes.MiCADO.EC2.Compte'; did you mean "
        "tosca.nodes.MiCADO.EC2.Compute?",
        f"{NODES}.web.requirements[2].host.node: no node template named ['vm']",
        "topology_template.policies[0].scalability.targets[1]: no node template named "
        "{'a': 1}"]


CONFIGURED = WEB_ONLY + """\
          interfaces:
            Kubernetes:
              configure:
                inputs:
                  metadata: {labels: {tier: front}}
                  hostNetwork: true
                  dnsPolicy: Default
"""


def test_v07_configure_inputs_are_the_pod_template() -> None:
    app = compiled(CONFIGURED, header=HEADER.replace("/develop/", "/v0.7.2/"))
    template = _workload(app, "web")["spec"]["template"]
    assert template["metadata"]["labels"]["tier"] == "front"
    assert template["spec"]["hostNetwork"] is True and template["spec"]["dnsPolicy"] == "Default"
    bad = CONFIGURED.replace("dnsPolicy: Default", "dnsPolicy: [Default]")
    errors = errors_of(bad, header=HEADER.replace("/develop/", "/v0.7.2/"))
    assert errors == [f"{NODES}.web.interfaces.Kubernetes.configure.inputs.dnsPolicy: ['Default']"
                      " is not of type 'string', 'null' (in the Deployment 'web' it makes, at "
                      "spec.template.spec.dnsPolicy)"]


def test_configure_inputs_elsewhere_are_ignored_with_a_warning() -> None:
    app = compiled(CONFIGURED)
    assert "hostNetwork" not in _workload(app, "web")["spec"]["template"]["spec"]
    assert [str(w) for w in app.warnings] == [
        f"{NODES}.web.interfaces.Kubernetes.configure.inputs: ignored: only MiCADO v0.7 read "
        "configure inputs (as the pod template); write them under create.inputs.spec.template"]
