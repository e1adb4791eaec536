"""YAML in and out: safe loading that refuses duplicate keys, alias bombs and deep nesting;
deterministic dumping."""

from __future__ import annotations

from typing import Any

import yaml

from .errors import PathPart
from .yamlplain import NOT_PLAIN, load_plain


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping repeats a key; YAML would silently keep only the last one."""


# libyaml's parser when PyYAML has it (ten times faster on big ADTs); same safe constructor.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# A document may not expand (through aliases) to more values than this: `*a` repeated in
# nested lists grows exponentially, and an ADT is never this big.
MAX_VALUES = 100_000
# Nor nest deeper than this: the compiler walks values recursively, and a real ADT (manifests in
# interface inputs included) stays within about 25 levels.
MAX_DEPTH = 64


class TooLargeError(yaml.MarkedYAMLError):
    """Aliases make the document expand beyond MAX_VALUES values."""


class TooDeepError(yaml.MarkedYAMLError):
    """Values nested more than MAX_DEPTH levels; `path` says where, as an ADT path."""

    def __init__(self, mark: Any, path: tuple[PathPart, ...]) -> None:
        super().__init__(None, None, f"values nested more than {MAX_DEPTH} levels deep (an ADT "
                         "never needs that many)", mark)
        self.path = path


class _LimitedLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that refuses alias bombs and deep nesting before constructing anything."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_shape(node)
        return super().construct_document(node)


class _StrictLoader(_LimitedLoader):
    """The ADT loader: also rejects duplicate mapping keys."""

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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_shape(root: yaml.Node) -> None:
    """Count the values the document expands to (each shared node once per reference) and how
    deep it nests, without recursion: everything after loading may recurse, so this is the gate.
    """
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            children = _children(node)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), MAX_VALUES + 1)
            if isinstance(node, yaml.CollectionNode):
                heights[key] = 1 + max((heights[id(c)] for c in children), default=0)
            continue
        if key in sizes:
            continue
        sizes[key], heights[key] = 1, 0  # a recursive alias counts once; the constructor copes
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    if sizes[id(root)] > MAX_VALUES:
        raise TooLargeError(None, None, f"the document expands to more than {MAX_VALUES} values "
                            "(YAML aliases repeated inside each other)", root.start_mark)
    if heights[id(root)] > MAX_DEPTH:
        _raise_too_deep(root, heights)


def _raise_too_deep(root: yaml.Node, heights: dict[int, int]) -> None:
    """Follow the deepest branch down to the first value beyond MAX_DEPTH and name it."""
    node, path = root, []
    for _ in range(MAX_DEPTH):
        if isinstance(node, yaml.SequenceNode):
            index = max(range(len(node.value)), key=lambda i: heights[id(node.value[i])])
            node = node.value[index]
            path.append(index)
        else:
            key_node, value = max(node.value, key=lambda kv: max(heights[id(kv[0])],
                                                                    heights[id(kv[1])]))
            path.append(key_node.value if isinstance(key_node, yaml.ScalarNode) else "(key)")
            node = key_node if heights[id(key_node)] > heights[id(value)] else value
    raise TooDeepError(node.start_mark, tuple(path))


def too_deep(value: Any, limit: int = MAX_DEPTH) -> tuple[PathPart, ...] | None:
    """The path to the first value nested deeper than `limit` in plain data, or None.

    For values that did not come through load_yaml (API parameters, JSON bodies).
    """
    stack: list[tuple[Any, tuple[PathPart, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if len(path) >= limit:
            return path
        entries = item.items() if isinstance(item, dict) else enumerate(item)
        stack.extend((child, (*path, key if isinstance(key, str | int) else str(key)))
                     for key, child in entries)
    return None


def _no_timestamps() -> None:
    """Keep dates as strings: TOSCA values like `version: 2024-01-01` must stay text."""
    resolvers = _LimitedLoader.yaml_implicit_resolvers
    for first, entries in list(resolvers.items()):
        resolvers[first] = [(t, rx) for t, rx in entries if t != "tag:yaml.org,2002:timestamp"]


_LimitedLoader.yaml_implicit_resolvers = {
    k: list(v) for k, v in _BaseLoader.yaml_implicit_resolvers.items()
}
_no_timestamps()


def load_yaml(text: str, *, strict: bool = True) -> Any:
    """Parse one YAML document; raises yaml.YAMLError with a line and column on bad input.

    `strict=False` allows duplicate keys (for embedded YAML such as cloud-config, which its
    consumer reads leniently); the size and depth limits hold either way.
    """
    data = load_plain(text, _StrictLoader.yaml_implicit_resolvers, MAX_VALUES)  # the fast way
    if data is not NOT_PLAIN:
        return data
    try:
        return yaml.load(text, Loader=_StrictLoader if strict else _LimitedLoader)
    except RecursionError:  # only without libyaml, whose parser stops at 1000 levels itself
        raise yaml.YAMLError(f"values nested more than {MAX_DEPTH} levels deep") from None
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
