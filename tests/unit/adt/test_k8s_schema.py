"""The cached schema check agrees with kubernetes-validate and reaches the user as an error."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
from adt_text import errors_of

from micado.adt import compile_adt
from micado.adt.k8s_schema import KUBERNETES_VERSION, has_schema, manifest_errors


def _agrees(manifest: dict) -> list[str]:
    errors = manifest_errors(manifest)
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError:
        assert errors, "kubernetes-validate rejects what the cached check accepts"
    else:
        assert not errors, errors
    return errors


def test_agrees_with_kubernetes_validate_on_the_examples(examples_dir: Path) -> None:
    for adt in sorted(examples_dir.glob("*.yaml")):
        for manifest in compile_adt(adt.read_text()).manifests:
            assert _agrees(manifest) == []
            broken = copy.deepcopy(manifest)
            broken["spec"]["bogusField"] = 1
            assert any("bogusField" in e for e in _agrees(broken))


def test_custom_resources_have_no_schema() -> None:
    assert not has_schema({"apiVersion": "cert-manager.io/v1", "kind": "Certificate"})
    assert has_schema({"apiVersion": "apps/v1", "kind": "Deployment"})


@pytest.mark.parametrize("field", ["hostNetwork: maybe", "terminationGracePeriodSeconds: soon"])
def test_schema_errors_in_inputs_name_the_input(field: str) -> None:
    """A bad value the create inputs wrote is reported at that input, naming the object."""
    key = field.split(":")[0]
    errors = errors_of(f"""
    topology_template:
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: nginx:1.25
          interfaces:
            Kubernetes:
              create:
                inputs:
                  spec:
                    template:
                      spec:
                        {field}
    """)
    (error,) = errors
    assert error.startswith("topology_template.node_templates.web.interfaces.Kubernetes.create."
                            f"inputs.spec.template.spec.{key}: ")
    assert f"in the Deployment 'web' it makes, at spec.template.spec.{key}" in error


def test_schema_errors_in_generated_parts_name_the_node_and_the_field() -> None:
    errors = errors_of("""
    topology_template:
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: nginx:1.25
            resources: {requests: {cpu: 1}, limits: {bogus: 1}, other: 2}
          interfaces:
            Kubernetes:
              create:
                inputs:
                  spec:
                    template:
                      spec:
                        hostNetwork: true
    """)
    (error,) = errors
    assert error.startswith("topology_template.node_templates.web: the generated Deployment "
                            "'web' is not valid Kubernetes")
    assert "spec.template.spec.containers.0.resources" in error
