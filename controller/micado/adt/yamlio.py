"""YAML in and out: safe loading that refuses duplicate keys, deterministic dumping."""

from __future__ import annotations

from typing import Any

import yaml

from .yamlplain import NOT_PLAIN, load_plain


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping repeats a key; YAML would silently keep only the last one."""


# libyaml's parser when PyYAML has it (ten times faster on big ADTs); same safe constructor.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A document may not expand (through aliases) to more values than this: `*a` repeated in
# nested lists grows exponentially, and an ADT is never this big.
MAX_VALUES = 100_000


class TooLargeError(yaml.MarkedYAMLError):
    """Aliases make the document expand beyond MAX_VALUES values."""


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that rejects duplicate mapping keys and alias bombs."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)

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


def _check_expansion(root: yaml.Node) -> None:
    """Count the values the document expands to, each shared node once per reference."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once here; the constructor handles it
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        total = min(total, MAX_VALUES + 1)
        sizes[id(node)] = total
        return total

    if size(root) > MAX_VALUES:
        raise TooLargeError(None, None, f"the document expands to more than {MAX_VALUES} values "
                            "(YAML aliases repeated inside each other)", root.start_mark)


def _no_timestamps() -> None:
    """Keep dates as strings: TOSCA values like `version: 2024-01-01` must stay text."""
    resolvers = _StrictLoader.yaml_implicit_resolvers
    for first, entries in list(resolvers.items()):
        resolvers[first] = [(t, rx) for t, rx in entries if t != "tag:yaml.org,2002:timestamp"]


_StrictLoader.yaml_implicit_resolvers = {
    k: list(v) for k, v in _BaseLoader.yaml_implicit_resolvers.items()
}
_no_timestamps()


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raises yaml.YAMLError with a line and column on bad input."""
    data = load_plain(text, _StrictLoader.yaml_implicit_resolvers, MAX_VALUES)  # the fast way
    if data is not NOT_PLAIN:
        return data
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except UnicodeError as exc:  # e.g. a lone surrogate in text given through the API
        raise yaml.YAMLError(f"the text is not valid Unicode ({exc.reason}) at character "
                             f"{getattr(exc, 'start', '?')}") from None


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
