"""YAML in and out: safe loading that refuses duplicate keys, deterministic dumping."""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping repeats a key; YAML would silently keep only the last one."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of dropping one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: SafeLoader reports it itself
                continue
            if duplicate:
                raise DuplicateKeyError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _no_timestamps() -> None:
    """Keep dates as strings: TOSCA values like `version: 2024-01-01` must stay text."""
    resolvers = _StrictLoader.yaml_implicit_resolvers
    for first, entries in list(resolvers.items()):
        resolvers[first] = [(t, rx) for t, rx in entries if t != "tag:yaml.org,2002:timestamp"]


_StrictLoader.yaml_implicit_resolvers = {
    k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_no_timestamps()


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raises yaml.YAMLError with a line and column on bad input."""
    return yaml.load(text, Loader=_StrictLoader)


def describe_yaml_error(exc: yaml.YAMLError) -> str:
    """One line naming where the YAML is broken and why, without a traceback."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    text = f"{where}{problem}"
    if context:
        text += f" ({context})"
    return text


class _Dumper(yaml.SafeDumper):
    """Block style, insertion order kept, long strings as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any) -> str:
    """Deterministic YAML: same data, same bytes."""
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
        width=100,
    )


def dump_all_yaml(documents: list[Any]) -> str:
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
        allow_unicode=True, explicit_start=True, width=100,
    )
