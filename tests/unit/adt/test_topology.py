"""Reading an ADT: versions, inputs, get_input / get_property, instance_count, inline types."""

from __future__ import annotations

import pytest
from adt_text import HEADER, adt, compiled, errors_of

from micado.adt import AdtError, compile_adt


def _deployment(app, name):  # type: ignore[no-untyped-def]
    return next(m for m in app.manifests if m["kind"] == "Deployment"
                and m["metadata"]["name"] == name)


def _container(app, name):  # type: ignore[no-untyped-def]
    return _deployment(app, name)["spec"]["template"]["spec"]["containers"][0]


WEB = """
topology_template:
  inputs:
    image:
      type: string
      default: nginx:1.25
    replicas:
      type: integer
      default: 2
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: {get_input: image}
      interfaces:
        Kubernetes:
          create:
            inputs:
              spec:
                replicas: {get_input: replicas}
"""


@pytest.mark.parametrize("version", ["1_0", "1_2", "1_3"])
def test_supported_tosca_versions(version: str) -> None:
    header = HEADER.replace("1_2", version)
    assert compile_adt(adt(WEB, header=header)).plan.workloads[0].name == "web"


def test_unsupported_version_is_named() -> None:
    errors = errors_of(WEB, header=HEADER.replace("1_2", "2_0"))
    assert errors[0].startswith("tosca_definitions_version: unsupported version")


def test_input_defaults_and_parameters() -> None:
    app = compiled(WEB)
    assert _container(app, "web")["image"] == "nginx:1.25"
    assert _deployment(app, "web")["spec"]["replicas"] == 2
    app = compiled(WEB, params={"image": "httpd:2.4", "replicas": "5"})
    assert _container(app, "web")["image"] == "httpd:2.4"
    assert _deployment(app, "web")["spec"]["replicas"] == 5  # text from -p read as integer


def test_bad_parameter_value_and_unknown_parameter() -> None:
    errors = errors_of(WEB, params={"replicas": "many", "colour": "red"})
    assert any(e.startswith("topology_template.inputs.replicas.(parameter): must be an integer")
               for e in errors)
    assert any(e.startswith("topology_template.inputs.colour: parameter 'colour' is not an input")
               for e in errors)


def test_required_input_without_default() -> None:
    body = WEB.replace("      default: nginx:1.25\n", "")
    errors = errors_of(body)
    assert errors[0] == ("topology_template.inputs.image: required: no default, give it with "
                         "-p image=VALUE")
    assert not any("no input named" in e for e in errors)
    assert compiled(body, params={"image": "x:1"})


def test_get_input_list_indexing() -> None:
    body = """
    topology_template:
      inputs:
        images: {type: list, default: [nginx:1.25, httpd:2.4]}
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: {get_input: [images, 1]}
    """
    assert _container(compiled(body), "web")["image"] == "httpd:2.4"
    errors = errors_of(body.replace("[images, 1]", "[images, 5]"))
    assert "index 5 is out of range (length 2)" in errors[0]


def test_get_property_of_self_and_other_node() -> None:
    body = """
    topology_template:
      node_templates:
        db:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: postgres:16
            environment: {PGPORT: "5432"}
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: {get_property: [db, image]}
            working_dir: {get_property: [SELF, image]}
            environment:
              DB_PORT: {get_property: [db, environment, PGPORT]}
    """
    container = _container(compiled(body), "web")
    assert container["image"] == "postgres:16"
    assert container["workingDir"] == "postgres:16"
    assert {"name": "DB_PORT", "value": "5432"} in container["env"]
    errors = errors_of(body.replace("[db, image]", "[db, imagee]"))
    assert any("get_property: node 'db' has no property 'imagee'" in e for e in errors)


INSTANCES = """
topology_template:
  inputs:
    count: {type: integer, default: 3}
    images: {type: list, default: [a:1, b:1, c:1]}
  node_templates:
    worker:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      occurrences: [1, 5]
      instance_count: {get_input: count}
      properties:
        image: {get_input: [images, INDEX]}
"""


def test_instance_count_clones_with_indexed_inputs() -> None:
    app = compiled(INSTANCES)
    assert [w.name for w in app.plan.workloads] == ["worker-1", "worker-2", "worker-3"]
    assert [_container(app, f"worker-{i}")["image"] for i in (1, 2, 3)] == ["a:1", "b:1", "c:1"]


def test_instance_count_outside_occurrences() -> None:
    errors = errors_of(INSTANCES, params={"count": "7"})
    assert any(e.startswith("topology_template.node_templates.worker.instance_count: 7 is "
                            "outside occurrences [1, 5]") for e in errors)


def test_index_without_instance_count() -> None:
    errors = errors_of(INSTANCES.replace("      instance_count: {get_input: count}\n", ""))
    assert any("INDEX is only valid in a node with instance_count" in e for e in errors)


def test_inline_node_type_with_defaults_and_chain() -> None:
    body = """
    node_types:
      my.Base:
        derived_from: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
        properties:
          image: {type: string, default: "nginx:1.25", required: false}
      my.Web:
        derived_from: my.Base
    topology_template:
      node_templates:
        web:
          type: my.Web
    """
    app = compiled(body)
    assert _container(app, "web")["image"] == "nginx:1.25"
    assert app.plan.workloads[0].kind == "Deployment"


def test_duplicate_keys_are_refused_with_their_line() -> None:
    text = adt(WEB) + "  node_templates: {}\n"
    with pytest.raises(AdtError) as exc:
        compile_adt(text)
    (error,) = exc.value.errors
    assert "found duplicate key 'node_templates'" in str(error)
    assert "line " in str(error)


def test_all_problems_reported_at_once() -> None:
    body = """
    topology_template:
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: nginx
            stdin: maybe
            colour: blue
        vm:
          type: tosca.nodes.MiCADO.EC2.Compute
          properties:
            image_id: ami-1
    """
    errors = errors_of(body)
    assert "topology_template.node_templates.web.properties.stdin: must be true or false, got " \
           "a string ('maybe')" in errors
    assert any(e.startswith("topology_template.node_templates.web.properties.colour: unknown "
                            "property") for e in errors)
    assert "topology_template.node_templates.vm.properties.region_name: required" in errors
    assert "topology_template.node_templates.vm.properties.instance_type: required" in errors


def test_get_property_cycle_is_reported() -> None:
    body = """
    topology_template:
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: {get_property: [SELF, working_dir]}
            working_dir: {get_property: [SELF, image]}
    """
    errors = errors_of(body)
    assert any("refers back to itself" in e for e in errors)


def test_alias_bomb_is_refused_quickly() -> None:
    levels = "".join(
        f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 9))
    text = adt(WEB) + "  outputs:\n    x: &l0 [a, b, c, d, e, f, g, h, i]\n" + levels.replace(
        "  l", "    l")
    with pytest.raises(AdtError) as exc:
        compile_adt(text)
    assert "expands to more than" in str(exc.value)


def test_instance_count_is_bounded() -> None:
    errors = errors_of(INSTANCES.replace("occurrences: [1, 5]", "occurrences: [1, UNBOUNDED]"),
                       params={"count": "100000"})
    assert any("100000 clones is more than the 100" in e for e in errors)


def test_a_bad_value_is_reported_once() -> None:
    errors = errors_of("""
    topology_template:
      node_templates:
        web:
          type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
          properties:
            image: nginx:1.25
            args: --verbose
    """)
    assert errors == ["topology_template.node_templates.web.properties.args: must be a list, "
                      "got a string ('--verbose')"]


def test_text_that_is_not_unicode_is_an_error() -> None:
    with pytest.raises(AdtError) as exc:
        compile_adt(adt(WEB) + "# \udd5a\n")
    assert "not valid Unicode" in str(exc.value)
