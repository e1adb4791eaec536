"""`tosca.nodes.MiCADO.Kubernetes` nodes: whole manifests in the create inputs."""

from __future__ import annotations

from k8s_helpers import NODES, Result, run, schema_errors

INPUTS = "interfaces.Kubernetes.create.inputs"


def raw(inputs: str) -> Result:
    return run(f"""
        thing:
          type: tosca.nodes.MiCADO.Kubernetes
          interfaces:
            Kubernetes:
              create:
                inputs: {inputs}
    """)


def test_manifest_is_passed_through_with_app_labels() -> None:
    result = raw("""
                  apiVersion: networking.k8s.io/v1
                  kind: Ingress
                  metadata:
                    name: web
                    labels: {app.kubernetes.io/name: shop-front}
                  spec:
                    rules:
                      - http:
                          paths:
                            - path: /
                              pathType: Prefix
                              backend: {service: {name: web, port: {number: 80}}}
    """)
    (manifest,) = result.manifests
    assert manifest["kind"] == "Ingress"
    assert manifest["metadata"]["labels"] == {
        "app.kubernetes.io/name": "shop-front",  # the user's value is kept
        "app.kubernetes.io/instance": "app1",
        "app.kubernetes.io/managed-by": "micado",
    }
    assert manifest["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/"
    assert result.workloads == []
    assert schema_errors(result.manifests) == []


def test_missing_fields_are_errors() -> None:
    result = raw("{spec: {}}")
    assert sorted(result.error_paths()) == [
        f"{NODES}.thing.{INPUTS}.apiVersion", f"{NODES}.thing.{INPUTS}.kind",
        f"{NODES}.thing.{INPUTS}.metadata.name"]
    result = raw("{metadata: {name: x}}")
    assert sorted(result.error_paths()) == [
        f"{NODES}.thing.{INPUTS}.apiVersion", f"{NODES}.thing.{INPUTS}.kind"]
    assert result.manifests == []


def test_no_inputs_is_an_error() -> None:
    result = run("""
        thing:
          type: tosca.nodes.MiCADO.Kubernetes
    """)
    assert result.error_paths() == [f"{NODES}.thing.{INPUTS}"]


def test_raw_manifests_come_last() -> None:
    result = run("""
        account:
          type: tosca.nodes.MiCADO.Kubernetes
          interfaces:
            Kubernetes:
              create:
                inputs: {apiVersion: v1, kind: ServiceAccount, metadata: {name: robot}}
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker
          properties: {image: nginx, ports: [80]}
    """)
    assert result.kinds() == [("Deployment", "web"), ("Service", "web"),
                              ("ServiceAccount", "robot")]
