"""The cached schema check agrees with kubernetes-validate and reaches the user as an error."""

from __future__ import annotations

import copy
import datetime
import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
from adt_text import errors_of
from kubernetes_validate.utils import schema_contents

from micado.adt import compile_adt
from micado.adt.k8s_schema import (
    KUBERNETES_VERSION,
    has_schema,
    manifest_errors,
    schema_cache,
)


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


# --- the compiled check (jsonschema-rs) against the detailed one (jsonschema) -----------------

_OTHER_KINDS: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"},
     "data": {"a.txt": "hello"}, "immutable": False},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
     "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
         "metadata": {"labels": {"a": "b"}},
         "spec": {"containers": [{"name": "agent", "image": "busybox",
                                  "ports": [{"containerPort": 9100, "protocol": "TCP"}]}]}}}},
    {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
     "spec": {"backoffLimit": 2, "template": {"spec": {
         "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}},
]

# Values put in place of every leaf and every mapping in turn: each JSON type, the Python
# values where "integer" and "number" part ways, and an unknown key.
_REPLACEMENTS: list[Any] = [True, -1, 2.0, 2.5, 10**20, "text", None, ["x"], {"bogus": 1}]


@functools.cache
def _jsonschema_alone(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    """The validator the check used before it had a fast path, built here independently."""
    group = api_version.replace("/", "-") if "/" in api_version else api_version
    schema_dir = schema_cache().schema_dir
    schema = schema_contents(
        f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group}.json", KUBERNETES_VERSION)
    definitions = schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json",
                                  KUBERNETES_VERSION)
    registry = (referencing.Resource.from_contents(schema)
                @ (referencing.Resource.from_contents(definitions) @ referencing.Registry()))
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _detailed_errors(manifest: dict[str, Any]) -> list[str]:
    """What the check reported before it had a fast path: jsonschema alone, every error sorted
    by path, in the same 'path: message' form."""
    validator = _jsonschema_alone(manifest["kind"], manifest["apiVersion"])
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.path)))
    lines = []
    for error in errors:
        message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
        lines.append(f"{'.'.join(map(str, error.absolute_path)) or '(object)'}: {message}")
    return lines


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into `value` below the top (keys of mappings, indexes of lists)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _places(item, (*path, index))
    return found


def _replaced(manifest: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    parent = changed
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = copy.deepcopy(new)
    return changed


def _sample_manifests(examples_dir: Path) -> list[dict[str, Any]]:
    manifests = [m for adt in sorted(examples_dir.glob("*.yaml"))
                 for m in compile_adt(adt.read_text()).manifests]
    return manifests + _OTHER_KINDS


def test_the_sample_manifests_are_valid(examples_dir: Path) -> None:
    samples = _sample_manifests(examples_dir)
    assert {m["kind"] for m in samples} >= {"Deployment", "Service", "ConfigMap", "Job"}
    for manifest in samples:
        assert manifest_errors(manifest) == [] == _detailed_errors(manifest)


def test_every_mutation_gets_the_errors_jsonschema_gives(examples_dir: Path) -> None:
    """Each leaf and mapping of one sample of each kind replaced by each of _REPLACEMENTS in
    turn: the result is exactly what jsonschema alone reports, valid ones included."""
    checked = rejected = 0
    one_per_kind = {m["kind"]: m for m in reversed(_sample_manifests(examples_dir))}
    for manifest in one_per_kind.values():
        for path in _places(manifest):
            if path[0] in ("apiVersion", "kind"):
                continue
            for new in _REPLACEMENTS:
                broken = _replaced(manifest, path, new)
                expected = _detailed_errors(broken)
                assert manifest_errors(broken) == expected, (path, new)
                checked += 1
                rejected += bool(expected)
    assert checked > 500
    assert 0 < rejected < checked  # both verdicts occur: the comparison means something


def test_values_the_compiled_check_cannot_read_are_checked_in_detail() -> None:
    """A date (an unquoted YAML timestamp), a non-string key and bytes: jsonschema decides."""
    base = _OTHER_KINDS[0]
    dated = _replaced(base, ("data", "a.txt"), datetime.date(2024, 1, 31))
    assert manifest_errors(dated) == _detailed_errors(dated) == [
        "data.a.txt: datetime.date(2024, 1, 31) is not of type 'string', 'null'"]
    keyed = _replaced(base, ("metadata", "labels"), {1: "x"})
    assert manifest_errors(keyed) == _detailed_errors(keyed)
    raw = _replaced(base, ("data", "a.txt"), b"bytes")
    assert manifest_errors(raw) == _detailed_errors(raw) == [
        "data.a.txt: b'bytes' is not of type 'string', 'null'"]

    class Text(str):
        pass

    subclassed = _replaced(base, ("data", "a.txt"), Text("hello"))
    assert manifest_errors(subclassed) == [] == _detailed_errors(subclassed)


def test_validators_are_per_kind_and_answers_per_manifest() -> None:
    """The cache holds validators, not answers: the same body is judged by its own kind's schema,
    and a manifest checked after another of its kind gets its own verdict."""
    config = _OTHER_KINDS[0]
    as_secret = {**copy.deepcopy(config), "kind": "Secret"}
    as_service = {**copy.deepcopy(config), "kind": "Service"}
    assert manifest_errors(config) == []
    assert manifest_errors(as_secret) == []  # a Secret has data and immutable too
    assert manifest_errors(as_service) == _detailed_errors(as_service) != []
    assert manifest_errors(config) == []
    wrong = _replaced(config, ("immutable",), "yes")
    assert manifest_errors(wrong) == ["immutable: 'yes' is not of type 'boolean', 'null'"]
    assert manifest_errors(config) == []
    assert manifest_errors(_replaced(config, ("metadata", "name"), 5)) == [
        "metadata.name: 5 is not of type 'string', 'null'"]


def test_each_kubernetes_version_answers_from_its_own_schema_files() -> None:
    """FlowSchema flowcontrol/v1beta3 is gone in 1.32; DeviceClass resource.k8s.io/v1 came in
    1.34: validators cached for one version never answer for another."""
    flow = {"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3", "kind": "FlowSchema",
            "metadata": {"name": "x"}}
    device = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
              "metadata": {"name": "x"}, "spec": {}}
    for _ in range(2):  # the second round answers from the caches
        assert manifest_errors(flow, "1.31") == [] == manifest_errors(device, "1.34")
        assert manifest_errors(flow, "1.32") == [
            "Kubernetes 1.32 has no FlowSchema in flowcontrol.apiserver.k8s.io/v1beta3"]
        assert manifest_errors(device, "1.31") == [
            "Kubernetes 1.31 has no DeviceClass in resource.k8s.io/v1"]
        assert not has_schema(flow, "1.32") and has_schema(flow, "1.31")


_DEEP_CRD = """
import sys
from micado.adt.k8s_schema import FAST_MAX_DEPTH, manifest_errors
levels = int(sys.argv[1])
schema = {"type": 5}
for _ in range(levels):
    schema = {"type": "object", "properties": {"a": schema}}
crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "x"},
       "spec": {"group": "g", "names": {"kind": "K", "plural": "ks"}, "scope": "Namespaced",
                "versions": [{"name": "v1", "served": True, "storage": True,
                              "schema": {"openAPIV3Schema": schema}}]}}
try:
    errors = manifest_errors(crd)
except RecursionError:
    print("RecursionError")
else:
    print(len(errors), errors[0][-40:])
"""


@pytest.mark.parametrize(("levels", "answer"), [
    (40, "1 .type: 5 is not of type 'string', 'null'"),
    (15_000, "RecursionError"),  # what jsonschema alone gives, and gave before the fast path
])
def test_deep_manifests_under_a_recursive_schema_do_not_crash(levels: int, answer: str) -> None:
    """jsonschema-rs follows a CRD's self-referring schema on the native stack: 15,000 levels
    crash the interpreter (SIGSEGV). Such manifests are left to the Python validator."""
    run = subprocess.run([sys.executable, "-c", _DEEP_CRD, str(levels)], capture_output=True,
                         text=True, timeout=300, check=False)
    assert (run.returncode, run.stdout.strip()) == (0, answer), run.stderr[-2000:]
