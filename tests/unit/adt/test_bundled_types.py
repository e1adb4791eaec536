"""The bundled TOSCA type files: they load, and they say what MiCADO's type files say."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

TYPES_DIR = Path(__file__).resolve().parents[3] / "controller/micado/adt/types"
MICADO_DIR = TYPES_DIR / "micado"
NORMATIVE = TYPES_DIR / "tosca_normative.yaml"

SECTIONS = (
    "data_types",
    "artifact_types",
    "capability_types",
    "interface_types",
    "node_types",
    "relationship_types",
    "policy_types",
)
PRIMITIVES = {
    "string", "integer", "float", "boolean", "timestamp", "null", "list", "map", "range",
    "version", "any", "scalar-unit.size", "scalar-unit.time", "scalar-unit.frequency",
    "scalar-unit.bitrate",
}


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


ALL_FILES = sorted(TYPES_DIR.rglob("*.yaml"))
MICADO_FILES = sorted(MICADO_DIR.rglob("*.yaml"))


def _types(files: list[Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """Every type of the given files by section (a later file replaces an earlier name)."""
    out: dict[str, dict[str, dict[str, Any]]] = {section: {} for section in SECTIONS}
    for path in files:
        document = _load(path)
        for section in SECTIONS:
            for name, body in (document.get(section) or {}).items():
                out[section][name] = body or {}
    return out


@pytest.fixture(scope="module")
def every_type() -> dict[str, dict[str, dict[str, Any]]]:
    return _types([NORMATIVE, *MICADO_FILES])


@pytest.fixture(scope="module")
def nodes(every_type: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return every_type["node_types"]


def test_the_expected_files_are_bundled() -> None:
    expected = {
        "tosca_normative.yaml",
        "micado/micado_types.yaml",
        *(
            f"micado/custom_types/{group}/{name}.yaml"
            for group, names in {
                "container": ("common", "kubernetes", "swarm"),
                "cloud": ("common", "occopus", "terraform"),
                "policy": ("scaling", "security", "monitoring", "alerting"),
            }.items()
            for name in names
        ),
    }
    assert {str(p.relative_to(TYPES_DIR).as_posix()) for p in ALL_FILES} == expected


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(TYPES_DIR)))
def test_file_is_a_tosca_definitions_document(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    assert text.endswith("\n")
    document = _load(path)
    assert str(document["tosca_definitions_version"]).startswith("tosca_simple_yaml_1_")
    assert set(document) <= {"tosca_definitions_version", "description", "imports", *SECTIONS}


@pytest.mark.parametrize("path", MICADO_FILES, ids=lambda p: str(p.relative_to(TYPES_DIR)))
def test_imports_are_relative_and_exist(path: Path) -> None:
    for entry in _load(path).get("imports") or []:
        assert "://" not in entry
        assert not PurePosixPath(entry).is_absolute()
        assert (path.parent / entry).is_file(), entry


def test_micado_types_pulls_in_the_custom_type_files() -> None:
    imports = _load(MICADO_DIR / "micado_types.yaml")["imports"]
    assert "custom_types/container/kubernetes.yaml" in imports
    assert "custom_types/policy/scaling.yaml" in imports
    kubernetes = _load(MICADO_DIR / "custom_types/container/kubernetes.yaml")
    assert kubernetes["imports"] == ["common.yaml"]


def test_every_derived_from_resolves(every_type: dict[str, dict[str, dict[str, Any]]]) -> None:
    unresolved = []
    for section, defs in _types(ALL_FILES).items():
        for name, body in defs.items():
            parent = body.get("derived_from")
            if parent is not None and parent not in every_type[section]:
                unresolved.append(f"{section}.{name} -> {parent}")
    assert unresolved == []


def test_property_types_resolve(every_type: dict[str, dict[str, dict[str, Any]]]) -> None:
    known = PRIMITIVES | set(every_type["data_types"])
    unknown = []
    for section, defs in every_type.items():
        for name, body in defs.items():
            for prop, definition in (body.get("properties") or {}).items():
                schema = definition.get("entry_schema") or {}
                for type_name in (definition.get("type"), schema.get("type")):
                    if type_name is not None and type_name not in known:
                        unknown.append(f"{section}.{name}.{prop}: {type_name}")
    assert unknown == []


def test_no_misspelt_description_keys() -> None:
    for path in ALL_FILES:
        assert "desription" not in path.read_text(encoding="utf-8"), path


def test_docker_deployment(nodes: dict[str, dict[str, Any]]) -> None:
    deployment = nodes["tosca.nodes.MiCADO.Container.Application.Docker.Deployment"]
    assert deployment["derived_from"] == "tosca.nodes.MiCADO.Container.Application.Docker"
    kubernetes = deployment["interfaces"]["Kubernetes"]
    assert kubernetes["type"] == "tosca.interfaces.MiCADO.Kubernetes"
    inputs = kubernetes["create"]["inputs"]
    assert inputs["kind"] == "Deployment"
    assert inputs["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["artifacts"]["image"]["file"] == {"get_property": ["SELF", "image"]}


def test_other_kubernetes_workloads(nodes: dict[str, dict[str, Any]]) -> None:
    def create_inputs(name: str) -> dict[str, Any]:
        return nodes[name]["interfaces"]["Kubernetes"]["create"]["inputs"]

    base = "tosca.nodes.MiCADO.Container.Application"
    assert create_inputs(f"{base}.Docker.DaemonSet") == {"kind": "DaemonSet"}
    job = create_inputs(f"{base}.Docker.Job")
    assert job["kind"] == "Job"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    stateful = create_inputs(f"{base}.Docker.StatefulSet")
    assert stateful["spec"]["podManagementPolicy"] == "Parallel"
    assert create_inputs(f"{base}.Pod.Deployment")["spec"]["strategy"]["type"] == "Recreate"


def test_docker_container_shape(nodes: dict[str, dict[str, Any]]) -> None:
    docker = nodes["tosca.nodes.MiCADO.Container.Application.Docker"]
    properties = docker["properties"]
    assert properties["ports"]["entry_schema"] == {"type": "ports_type"}
    assert properties["deploy"]["type"] == "deploy_type"
    assert all(p["required"] is False for p in properties.values())
    assert [next(iter(r)) for r in docker["requirements"]] == [
        "service", "container", "host", "volume"]
    assert set(docker["interfaces"]) == {"Swarm", "Kubernetes"}
    assert nodes["micado.microservice"]["derived_from"] == (
        "tosca.nodes.MiCADO.Container.Application.Docker")
    assert nodes["micado.deployment"]["derived_from"] == "tosca.nodes.MiCADO.Compute"


def test_ec2_compute(nodes: dict[str, dict[str, Any]]) -> None:
    ec2 = nodes["tosca.nodes.MiCADO.EC2.Compute"]
    assert ec2["derived_from"] == "tosca.nodes.MiCADO.Compute"
    required = {name for name, p in ec2["properties"].items() if p.get("required", True)}
    assert required == {"region_name", "image_id", "instance_type"}
    assert set(ec2["interfaces"]) == {"Occopus", "Terraform"}
    terra = nodes["tosca.nodes.MiCADO.EC2.Compute.Terra"]
    assert terra["properties"]["region_name"]["default"] == "eu-west-2"


def test_nova_compute(nodes: dict[str, dict[str, Any]]) -> None:
    properties = nodes["tosca.nodes.MiCADO.Nova.Compute"]["properties"]
    for name in ("flavor_name", "flavor_id", "network_name", "network_id"):
        assert properties[name] == {"type": "string", "required": False}
    assert properties["image_id"]["required"] is True
    assert properties["project_id"]["required"] is True


def test_scaling_policy(every_type: dict[str, dict[str, dict[str, Any]]]) -> None:
    scaling = every_type["policy_types"]["tosca.policies.Scaling.MiCADO"]
    assert scaling["derived_from"] == "tosca.policies.Scaling"
    properties = scaling["properties"]
    required = {name for name, p in properties.items() if p.get("required", True)}
    assert required == {"scaling_rule", "min_instances", "max_instances"}
    assert properties["priority"]["default"] == 100
    assert properties["stage"]["default"] == "started"


def test_security_policies(every_type: dict[str, dict[str, dict[str, Any]]]) -> None:
    policies = every_type["policy_types"]
    http = policies["tosca.policies.Security.MiCADO.Network.HttpProxy"]
    assert http["derived_from"] == "tosca.policies.Security.MiCADO.Network.L7Proxy"
    assert http["properties"]["default_port"]["default"] == 80
    assert http["properties"]["strict_header_checking_action"]["constraints"] == [
        {"valid_values": ["accept", "drop", "abort"]}]
    network = policies["tosca.policies.Security.MiCADO.Network"]["properties"]
    assert network["target_ports"]["required"] is True
    assert network["stage"]["default"] == "deployment"


def test_normative_basics(every_type: dict[str, dict[str, dict[str, Any]]]) -> None:
    normative = _types([NORMATIVE])
    scalable = normative["capability_types"]["tosca.capabilities.Scalable"]["properties"]
    assert scalable["min_instances"]["default"] == 1
    assert scalable["max_instances"]["default"] == 1
    storage = normative["node_types"]["tosca.nodes.BlockStorage"]["properties"]
    assert storage["size"] == {"type": "scalar-unit.size", "required": False}
    standard = normative["interface_types"]["tosca.interfaces.node.lifecycle.Standard"]
    assert {"create", "configure", "start", "stop", "delete"} <= set(standard)
    # MiCADO redefines tosca.capabilities.Compute; both definitions agree
    ours = normative["capability_types"]["tosca.capabilities.Compute"]
    micados = every_type["capability_types"]["tosca.capabilities.Compute"]
    assert ours["derived_from"] == micados["derived_from"] == "tosca.capabilities.Container"
    assert ours["properties"] == micados["properties"]
