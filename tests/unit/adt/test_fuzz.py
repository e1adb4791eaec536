"""Property-based tests: whatever the input, the compiler answers with a result or AdtError.

A traceback is never an acceptable answer to a user's ADT. These tests feed `compile_adt`
(a) random YAML-able structures built from TOSCA and MiCADO words, loose or in the shape of an
ADT, and (b) mutations of MiCADO's example ADTs (a key deleted, a value replaced, a type name
changed, the text truncated or sprinkled with characters). Any exception other than AdtError
fails the test.

Example counts are kept small so the file runs in about a minute on a slow 2-core machine;
MICADO_FUZZ_SCALE=10 runs ten times as many examples. A failing example is reported as found,
not shrunk (shrinking takes many minutes at a fraction of a second per compile); set
MICADO_FUZZ_SHRINK=1 to shrink it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from micado.adt import AdtError, CompiledApp, Problem, compile_adt

REPO = Path(__file__).resolve().parents[3]
EXAMPLE_PATHS = sorted((REPO / "examples" / "micado").glob("*.yaml"))
EXAMPLES = {p.name: p.read_text(encoding="utf-8") for p in EXAMPLE_PATHS}
EXAMPLE_DATA = {name: yaml.safe_load(text) for name, text in EXAMPLES.items()}

SCALE = float(os.environ.get("MICADO_FUZZ_SCALE", "1"))
SHRINK = os.environ.get("MICADO_FUZZ_SHRINK", "") not in ("", "0")
PHASES = list(Phase) if SHRINK else [p for p in Phase if p not in (Phase.shrink, Phase.explain)]


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        phases=PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.large_base_example, HealthCheck.filter_too_much],
    )


MICADO_URL = "https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml"
VERSIONS = ["tosca_simple_yaml_1_0", "tosca_simple_yaml_1_2", "tosca_simple_yaml_1_3"]
NODE_TYPES = [
    "tosca.nodes.MiCADO.Container.Application.Docker",
    "tosca.nodes.MiCADO.Container.Application.Docker.Deployment",
    "tosca.nodes.MiCADO.Container.Application.Docker.DaemonSet",
    "tosca.nodes.MiCADO.Container.Application.Docker.StatefulSet",
    "tosca.nodes.MiCADO.Container.Application.Docker.Job",
    "tosca.nodes.MiCADO.Container.Application.Docker.Init",
    "tosca.nodes.MiCADO.Container.Application.Pod",
    "tosca.nodes.MiCADO.Container.Config.ConfigMap",
    "tosca.nodes.MiCADO.Container.Volume.EmptyDir",
    "tosca.nodes.MiCADO.Container.Volume.HostPath",
    "tosca.nodes.MiCADO.Container.Volume.NFS",
    "tosca.nodes.MiCADO.Kubernetes",
    "tosca.nodes.MiCADO.Compute",
    "tosca.nodes.MiCADO.Nova.Compute",
    "tosca.nodes.MiCADO.EC2.Compute",
    "tosca.nodes.MiCADO.CloudSigma.Compute.Occo.small",
    "tosca.nodes.MiCADO.Edge",
    "micado.microservice",
    "micado.deployment",
    "tosca.nodes.Root",
    "tosca.nodes.Compute",
    "no.such.Type",
]
POLICY_TYPES = [
    "tosca.policies.Scaling.MiCADO",
    "tosca.policies.Monitoring.MiCADO",
    "tosca.policies.Alerting.MiCADO",
    "tosca.policies.Security.MiCADO",
    "tosca.policies.Scaling",
    "tosca.policies.Root",
    "no.such.Policy",
]
PRIMITIVES = ["string", "integer", "float", "boolean", "list", "map", "range", "version",
              "scalar-unit.size", "any", "ports_type", "context_type", "no_such_type"]
TYPE_NAMES = NODE_TYPES + POLICY_TYPES + PRIMITIVES
TOSCA_WORDS = [
    "tosca_definitions_version", "topology_template", "node_templates", "type", "properties",
    "requirements", "policies", "targets", "imports", "inputs", "get_input", "get_property",
    "get_attribute", "outputs", "description", "default", "required", "derived_from",
    "node_types", "policy_types", "data_types", "relationship_types", "interfaces",
    "capabilities", "instance_count", "occurrences", "metadata", "entry_schema", "constraints",
    "valid_values", "in_range", "file", "repositories", "value", "SELF", "INDEX", "UNBOUNDED",
]
MICADO_WORDS = [
    "image", "ports", "port", "nodePort", "containerPort", "targetPort", "protocol", "args",
    "command", "env", "name", "resources", "imagePullPolicy", "container_name", "environment",
    "host", "service", "container", "volume", "node", "relationship", "Kubernetes", "create",
    "kind", "spec", "Terraform", "Occopus", "endpoint", "region_name", "image_id",
    "instance_type", "project_id", "flavor_name", "context", "insert", "append", "cloud_config",
    "constants", "queries", "alerts", "alert", "expr", "for", "sources", "scaling_rule",
    "min_instances", "max_instances", "scalable", "m_node_count", "m_container_count",
]
WORDS = TOSCA_WORDS + MICADO_WORDS
NODE_NAMES = ["web", "worker-node", "db", "stressng", "web_1", "Web", "vol"]
STRINGS = [
    "", " ", "nginx:1.25", "{{MAXNODES}}", "{{ stack }}", "{{", "8080:80", "nohost",
    "prom:9090", "300m", "1 GB", "Always", "NodePort", "m_container_count += 1",
    "print 'x'", "if x:\n  m_node_count = 1\n", "avg(rate(x[1m]))", MICADO_URL,
    "https://example.com/x.yaml", "no_such_file.yaml", "../../etc/hosts", "~", "null",
]

# -------------------------------------------------------------------------- strategies

small_ints = st.integers(min_value=-3, max_value=40) | st.sampled_from(
    [0, 1, 3, 99, 30000, 32767, 99999, -1, 2**31])
texts = st.sampled_from(WORDS + TYPE_NAMES + NODE_NAMES + STRINGS + VERSIONS) | st.text(
    max_size=12)
scalars = st.none() | st.booleans() | small_ints | st.floats(width=32) | texts
keys = st.sampled_from(WORDS) | st.text(min_size=1, max_size=8) | st.sampled_from(
    [0, 1, True, None, 1.5])


def _functions(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """get_input / get_property in the shapes a user writes them, and broken ones."""
    name = st.sampled_from(["image", "ports", "names", "count", "nope", "SELF", "INDEX"])
    return (
        st.builds(lambda n: {"get_input": n}, name | children)
        | st.builds(lambda n, rest: {"get_input": [n, *rest]}, name,
                    st.lists(small_ints | st.sampled_from(["INDEX", "a"]) | children,
                             max_size=2))
        | st.builds(lambda n, rest: {"get_property": [n, *rest]},
                    st.sampled_from([*NODE_NAMES, "SELF"]) | children,
                    st.lists(st.sampled_from(MICADO_WORDS) | small_ints | children,
                             max_size=2))
    )


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (st.lists(children, max_size=4)
            | st.dictionaries(keys, children, max_size=5)
            | _functions(children))


trees = st.recursive(scalars, _extend, max_leaves=20)
# values that are mostly of a sensible shape for a property, sometimes anything
values = trees | _functions(scalars)

# ---- ADT-shaped documents


def _ports() -> st.SearchStrategy[Any]:
    entry = st.fixed_dictionaries({}, optional={
        "port": small_ints | texts, "nodePort": small_ints, "containerPort": small_ints,
        "targetPort": small_ints | texts, "protocol": st.sampled_from(["TCP", "UDP", "x"]),
        "type": st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "x"]),
        "name": texts, "metadata": trees,
    })
    return st.lists(entry | st.sampled_from(["8080:80", 8080, "x"]) | values, max_size=3)


properties = st.fixed_dictionaries({}, optional={
    "image": st.sampled_from(["nginx:1.25", "lorel/docker-stress-ng", ""]) | values,
    "ports": _ports(),
    "args": st.lists(texts, max_size=3) | values,
    "command": st.lists(texts, max_size=3) | values,
    "env": st.lists(st.fixed_dictionaries({"name": texts}, optional={"value": values}),
                    max_size=2) | values,
    "environment": st.dictionaries(st.text(min_size=1, max_size=5), values, max_size=2),
    "name": texts,
    "container_name": texts,
    "resources": values,
    "imagePullPolicy": texts,
    "labels": values,
    "region_name": texts, "image_id": texts, "instance_type": texts,
    "project_id": texts, "flavor_name": texts, "network_id": texts,
    "context": st.fixed_dictionaries({}, optional={
        "insert": st.booleans() | values, "append": st.booleans() | values,
        "cloud_config": texts | values, "path": texts}) | values,
    "data": values, "path": texts, "public_ip": texts,
}) | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), values, max_size=3)

requirement = st.dictionaries(
    st.sampled_from(["host", "service", "container", "volume", "dependency", "hots"]),
    st.sampled_from(NODE_NAMES)
    | st.fixed_dictionaries({"node": st.sampled_from(NODE_NAMES) | values}, optional={
        "relationship": st.sampled_from(["tosca.relationships.AttachesTo", "x"])
        | st.fixed_dictionaries({"type": texts}, optional={"properties": values})})
    | values,
    min_size=1, max_size=1,
) | values

node_template = st.fixed_dictionaries(
    {"type": st.sampled_from(NODE_TYPES) | values},
    optional={
        "properties": properties | values,
        "requirements": st.lists(requirement, max_size=3) | values,
        "instance_count": st.integers(min_value=-1, max_value=4) | values,
        "occurrences": st.lists(small_ints | st.just("UNBOUNDED"), min_size=2, max_size=2)
        | values,
        "interfaces": st.dictionaries(
            st.sampled_from(["Kubernetes", "Terraform", "Occopus", "x"]),
            st.fixed_dictionaries({"create": st.fixed_dictionaries(
                {}, optional={"inputs": values})}) | values,
            max_size=2) | values,
        "capabilities": st.fixed_dictionaries({"scalable": st.fixed_dictionaries(
            {"properties": st.dictionaries(st.sampled_from(["min_instances",
                                                            "max_instances"]),
                                           small_ints | values)})}) | values,
        "metadata": values,
        "description": texts,
    },
)

alert = st.fixed_dictionaries({}, optional={
    "alert": st.sampled_from(["overloaded", "under loaded", ""]) | values,
    "expr": st.sampled_from(["x > {{TH}}", "", "up"]) | values,
    "for": texts, "labels": values,
})

policy_properties = st.fixed_dictionaries({}, optional={
    "constants": st.dictionaries(st.sampled_from(["TH", "MAXNODES", "1bad", "x"]), values,
                                 max_size=3) | values,
    "queries": st.dictionaries(st.sampled_from(["CPU", "TIME", "bad name"]),
                               texts | st.lists(texts, max_size=3) | values,
                               max_size=2) | values,
    "alerts": st.lists(alert | values, max_size=2) | values,
    "sources": st.lists(st.sampled_from(["prom:9090", "nohost"]) | values, max_size=2) | values,
    "min_instances": small_ints | st.sampled_from(["1", "{{MAXNODES}}", "x"]) | values,
    "max_instances": small_ints | st.sampled_from(["3", "{{MAXNODES}}", "x"]) | values,
    "scaling_rule": st.sampled_from([
        "m_container_count = 2\n", "if CPU > TH:\n  m_node_count += 1\n", "print 'x'\n",
        "if overloaded:\n  m_container_count += undefined_name\n", "def (:\n"]) | values,
}) | values

policy = st.dictionaries(
    st.sampled_from(["scalability", "monitoring", "x"]),
    st.fixed_dictionaries({"type": st.sampled_from(POLICY_TYPES) | values}, optional={
        "targets": st.lists(st.sampled_from(NODE_NAMES) | values, max_size=2) | values,
        "properties": policy_properties,
    }) | values,
    min_size=1, max_size=1,
) | values

inputs = st.dictionaries(
    st.sampled_from(["image", "ports", "names", "count"]),
    st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(PRIMITIVES) | values, "default": values,
        "required": st.booleans() | values,
        "entry_schema": st.fixed_dictionaries({"type": st.sampled_from(PRIMITIVES)}),
        "constraints": st.lists(st.dictionaries(
            st.sampled_from(["valid_values", "in_range", "greater_than", "pattern", "x"]),
            values, min_size=1, max_size=1), max_size=2),
    }) | values,
    max_size=3,
) | values

type_definitions = st.dictionaries(
    st.sampled_from(["my.Type", "my.Other", *NODE_TYPES[:3]]),
    st.fixed_dictionaries({}, optional={
        "derived_from": st.sampled_from(["my.Type", "my.Other", *TYPE_NAMES]) | values,
        "properties": st.dictionaries(st.sampled_from(MICADO_WORDS), st.fixed_dictionaries(
            {"type": st.sampled_from(PRIMITIVES)}, optional={
                "default": values, "required": st.booleans()}) | values, max_size=2) | values,
        "requirements": st.lists(st.dictionaries(st.sampled_from(["host", "x"]), values,
                                                 min_size=1, max_size=1), max_size=2)
        | values,
    }) | values,
    max_size=2,
)

adt_documents = st.fixed_dictionaries(
    {
        "tosca_definitions_version": st.sampled_from(VERSIONS) | values,
        "imports": st.just([MICADO_URL]) | st.lists(
            st.sampled_from([MICADO_URL, "https://example.com/x.yaml", "x.yaml"]) | values,
            max_size=2),
        "topology_template": st.fixed_dictionaries(
            {"node_templates": st.dictionaries(st.sampled_from(NODE_NAMES), node_template,
                                               min_size=1, max_size=3)},
            optional={
                "inputs": inputs,
                "policies": st.lists(policy, max_size=3) | values,
                "outputs": values,
            },
        ),
    },
    optional={
        "node_types": type_definitions,
        "policy_types": type_definitions,
        "data_types": type_definitions,
        "repositories": values,
        "description": texts,
    },
)
params = st.dictionaries(st.sampled_from(["image", "ports", "names", "count", "nope"]),
                         st.sampled_from(["nginx", "3", "[1, 2]", "{a: 1}", "", "[", "x: y: z"]),
                         max_size=2)

# -------------------------------------------------------------------------- the property


def compile_or_report(text: str, parameters: dict[str, Any] | None = None) -> None:
    """`compile_adt` returns a CompiledApp or raises AdtError with problems; nothing else."""
    try:
        app = compile_adt(text, params=parameters or {}, app_id="fuzz")
    except AdtError as exc:
        assert exc.errors, "AdtError without any error"
        for problem in exc.errors:
            assert isinstance(problem, Problem)
            assert problem.severity == "error"
            assert all(isinstance(part, str | int) for part in problem.path), problem.path
            assert str(problem)
        return
    assert isinstance(app, CompiledApp)
    for warning in app.warnings:
        assert str(warning)


def dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------- (a) random structures


@fuzz_settings(150)
@given(trees)
def test_random_structures(document: Any) -> None:
    compile_or_report(dump(document))


@fuzz_settings(60)
@given(st.dictionaries(st.sampled_from(TOSCA_WORDS), trees, min_size=1, max_size=6))
def test_random_top_level_maps(document: dict[Any, Any]) -> None:
    compile_or_report(dump(document))


@fuzz_settings(40)
@given(adt_documents, params)
def test_random_adt_shaped_documents(document: dict[str, Any], parameters: dict[str, str],
                                     ) -> None:
    compile_or_report(dump(document), parameters)


# ---------------------------------------------------------- (b) mutations of the examples


def _locations(value: Any, out: list[tuple[Any, Any]] | None = None) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a document, depth first."""
    out = [] if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            out.append((value, key))
            _locations(item, out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.append((value, index))
            _locations(item, out)
    return out


def _type_locations(document: Any) -> list[tuple[Any, Any]]:
    return [(c, k) for c, k in _locations(document)
            if k in ("type", "derived_from") and isinstance(c, dict) and isinstance(c[k], str)]


def _mutate(data: st.DataObject, pick: Callable[[Any], list[tuple[Any, Any]]],
            change: Callable[[Any, Any], None]) -> str:
    name = data.draw(st.sampled_from(sorted(EXAMPLE_DATA)), label="example")
    document = copy.deepcopy(EXAMPLE_DATA[name])
    spots = pick(document)
    container, key = spots[data.draw(st.integers(0, len(spots) - 1), label="where")]
    change(container, key)
    return dump(document)


def test_there_are_three_examples() -> None:
    assert len(EXAMPLES) == 3, sorted(EXAMPLES)


@fuzz_settings(15)
@given(st.data())
def test_example_with_a_key_deleted(data: st.DataObject) -> None:
    def delete(container: Any, key: Any) -> None:
        del container[key]

    compile_or_report(_mutate(data, _locations, delete))


@fuzz_settings(20)
@given(st.data())
def test_example_with_a_value_replaced(data: st.DataObject) -> None:
    def replace(container: Any, key: Any) -> None:
        container[key] = data.draw(values, label="new value")

    compile_or_report(_mutate(data, _locations, replace))


@fuzz_settings(12)
@given(st.data())
def test_example_with_a_type_name_changed(data: st.DataObject) -> None:
    def rename(container: Any, key: Any) -> None:
        old = container[key]
        container[key] = data.draw(
            st.sampled_from(TYPE_NAMES)
            | st.sampled_from([old[:-1], old + "x", old.lower(), old.rsplit(".", 1)[0]])
            | st.text(max_size=10),
            label="new type name",
        )

    compile_or_report(_mutate(data, _type_locations, rename))


@fuzz_settings(15)
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_example_truncated(name: str, data: st.DataObject) -> None:
    text = EXAMPLES[name]
    compile_or_report(text[: data.draw(st.integers(0, len(text)), label="cut at")])


PUNCTUATION = ":-[]{}#&*!|>'\"%@`,?\t\n "


@fuzz_settings(15)
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_example_with_characters_inserted(name: str, data: st.DataObject) -> None:
    text = EXAMPLES[name]
    where = data.draw(st.integers(0, len(text)), label="insert at")
    extra = data.draw(st.text(alphabet=st.sampled_from(PUNCTUATION) | st.characters(),
                              min_size=1, max_size=6), label="inserted")
    compile_or_report(text[:where] + extra + text[where:])


# ------------------------------------------------- inputs the fuzzing above has tripped on

_HEADER = f"""\
tosca_definitions_version: tosca_simple_yaml_1_2
imports: [{MICADO_URL}]
topology_template:
"""
_WEB = """\
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
"""
FOUND_BY_FUZZING = {
    "alert-name-is-a-map": _HEADER + "  node_templates:\n" + _WEB + """\
      properties: {image: nginx}
  policies:
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [web]
        properties:
          alerts: [{alert: {a: 1}, expr: up}]
          min_instances: 1
          max_instances: 2
          scaling_rule: m_container_count = 1
""",
    "get-input-key-is-a-list": _HEADER + """\
  inputs: {props: {type: map, default: {image: nginx}}}
  node_templates:
""" + _WEB + """\
      properties: {image: {get_input: [props, [image]]}}
""",
    "get-property-name-is-a-list": _HEADER + "  node_templates:\n" + _WEB + """\
      properties:
        image: nginx
        env: [{name: X, value: {get_property: [SELF, [image]]}}]
""",
    "get-property-key-is-a-map": _HEADER + "  node_templates:\n" + _WEB + """\
      properties:
        image: nginx
        resources: {requests: {cpu: 1}}
        env: [{name: X, value: {get_property: [SELF, resources, {a: 1}]}}]
""",
}


@pytest.mark.parametrize("text", list(FOUND_BY_FUZZING.values()), ids=list(FOUND_BY_FUZZING))
def test_found_by_fuzzing(text: str) -> None:
    compile_or_report(text)


def test_non_text_mapping_keys_are_reported_with_a_text_path() -> None:
    """Found by the fuzzer: a float key in a policy's properties ended up in a problem path."""
    text = EXAMPLES["stressng_nova.yaml"].replace(
        "      properties:\n", "      properties:\n        1.5: x\n        true: y\n", 1)
    compile_or_report(text)


# ------------------------------------------------------------------------ deep nesting
# The compiler walks values recursively; the loader refuses anything nested beyond
# MAX_DEPTH (64) before that, without recursing itself. Every shape and place must give a
# located AdtError (never RecursionError), and ADTs just within the limit must still work.

DEEP = 600


def _nested(shape: str, depth: int, leaf: str = "1") -> str:
    """`depth` levels of flow YAML: lists, mappings, or both alternating."""
    opening = {"list": ["["], "map": ["{a: "], "mixed": ["[", "{a: "]}[shape]
    text = leaf
    for level in range(depth):
        start = opening[level % len(opening)]
        text = start + text + ("]" if start == "[" else "}")
    return text


def _web(extra: str = "", inputs: str = "") -> str:
    return (_HEADER + (f"  inputs:\n{inputs}" if inputs else "") + "  node_templates:\n" + _WEB
            + "      properties:\n        image: nginx\n" + extra)


DEEP_PLACES: dict[str, Callable[[str], str]] = {
    "document": lambda value: value,
    "top-level value": lambda value: _HEADER.replace("topology_template:\n",
                                                     f"metadata: {value}\ntopology_template:\n")
    + "  node_templates:\n" + _WEB + "      properties: {image: nginx}\n",
    "property": lambda value: _web(f"        resources: {value}\n"),
    "list property": lambda value: _web(f"        args: {value}\n"),
    "input default": lambda value: _web(inputs=f"    deep: {{type: map, default: {value}}}\n"),
    "interface input": lambda value: _web(
        "      interfaces:\n        Kubernetes:\n          create:\n"
        f"            inputs: {{spec: {value}}}\n"),
    "policy property": lambda value: _web() + (
        "  policies:\n    - scalability:\n        type: tosca.policies.Scaling.MiCADO\n"
        f"        targets: [web]\n        properties: {{constants: {value}}}\n"),
    "type definition": lambda value: _HEADER.replace(
        "topology_template:\n", f"node_types:\n  my.Type: {value}\ntopology_template:\n")
    + "  node_templates:\n" + _WEB + "      properties: {image: nginx}\n",
}


def _assert_located_depth_error(text: str, parameters: dict[str, Any] | None = None) -> None:
    with pytest.raises(AdtError) as info:
        compile_adt(text, params=parameters or {}, app_id="fuzz")
    (error,) = info.value.errors
    assert "nested more than 64 levels deep" in error.message, str(error)
    assert len(error.path) >= 1, str(error)


@pytest.mark.parametrize("shape", ["list", "map", "mixed"])
@pytest.mark.parametrize("place", list(DEEP_PLACES))
def test_deep_nesting_is_a_located_error(place: str, shape: str) -> None:
    text = DEEP_PLACES[place](_nested(shape, DEEP))
    _assert_located_depth_error(text)


def test_deep_nesting_names_the_path_and_line() -> None:
    with pytest.raises(AdtError) as info:
        compile_adt(_web(f"        resources: {_nested('map', DEEP)}\n"), app_id="fuzz")
    (error,) = info.value.errors
    prefix = ("topology_template", "node_templates", "web", "properties", "resources")
    assert error.path[:5] == prefix and set(error.path[5:]) == {"a"}
    assert len(error.path) == 64
    assert error.message.startswith("line 9, column ")


@pytest.mark.parametrize("shape", ["list", "map", "mixed"])
def test_deep_parameters_are_located_errors(shape: str) -> None:
    inputs = "    deep: {type: list, required: false}\n    flat: {type: string, default: a}\n"
    as_text = _nested(shape, DEEP)
    _assert_located_depth_error(_web(inputs=inputs), {"deep": as_text})
    value: Any = 1
    for level in range(DEEP):
        value = [value] if shape == "list" or (shape == "mixed" and level % 2) else {"a": value}
    with pytest.raises(AdtError) as info:
        compile_adt(_web(inputs=inputs), params={"deep": value}, app_id="fuzz")
    (error,) = info.value.errors
    assert error.path[:4] == ("topology_template", "inputs", "deep", "(parameter)")
    assert "nested more than 64 levels deep" in error.message


def test_deep_nesting_through_aliases_is_caught() -> None:
    """Each anchor nests the one before: shallow text, deep values."""
    anchors = "  - &l0 [1]\n" + "".join(f"  - &l{i} [*l{i - 1}]\n" for i in range(1, 150))
    _assert_located_depth_error("x:\n" + anchors)


def test_deep_cloud_config_and_imported_file_are_errors(tmp_path: Path) -> None:
    cloud = (_HEADER + "  node_templates:\n    vm:\n      type: tosca.nodes.MiCADO.EC2.Compute\n"
             "      properties:\n        region_name: r\n        image_id: i\n"
             "        instance_type: t\n"
             f"        context: {{append: true, cloud_config: '{_nested('list', DEEP)}'}}\n")
    with pytest.raises(AdtError) as info:
        compile_adt(cloud, app_id="fuzz")
    assert any("nested more than 64 levels deep" in e.message and e.path[-1] == "cloud_config"
               for e in info.value.errors), info.value.errors
    (tmp_path / "deep.yaml").write_text(f"node_types: {_nested('map', DEEP)}\n",
                                        encoding="utf-8")
    with pytest.raises(AdtError) as info:
        compile_adt(_web().replace(f"[{MICADO_URL}]", f"[{MICADO_URL}, deep.yaml]"),
                    app_id="fuzz", base_dir=tmp_path)
    assert any("nested more than 64 levels deep" in e.message for e in info.value.errors)


@pytest.mark.parametrize("place", ["property", "input default", "interface input",
                                   "policy property"])
def test_nesting_within_the_limit_still_compiles_or_is_an_adt_error(place: str) -> None:
    """Just inside the limit every recursive stage (functions, checks, merge, schema) copes."""
    text = DEEP_PLACES[place](_nested("mixed", 55))
    compile_or_report(text)


@fuzz_settings(25)
@given(st.data())
def test_example_with_a_deeply_nested_value_inserted(data: st.DataObject) -> None:
    depth = data.draw(st.integers(50, 700), label="depth")
    shape = data.draw(st.sampled_from(["list", "map", "mixed"]), label="shape")

    def replace(container: Any, key: Any) -> None:
        container[key] = "DEEP-VALUE-HERE"  # dumping 700 levels would recurse in PyYAML

    text = _mutate(data, _locations, replace)
    compile_or_report(text.replace("DEEP-VALUE-HERE", _nested(shape, depth), 1))


@fuzz_settings(30)
@given(adt_documents, params)
def test_random_adt_shaped_documents_with_v07_types(document: dict[str, Any],
                                                    parameters: dict[str, str]) -> None:
    """v0.7 type files change where create and configure inputs go; still no traceback."""
    text = dump(document).replace("/tosca/develop/", "/tosca/v0.7.2/")
    compile_or_report(text, parameters)
