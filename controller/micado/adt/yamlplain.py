"""A fast constructor for plain YAML documents: maps, lists and the safe scalar types only.

PyYAML's constructor is generic (tag dispatch, generators for recursive structures, state
kept for aliases) and took about a third of compiling a 220-node ADT. Almost every ADT is
plain: no aliases, no merge keys, no explicit tags beyond the standard scalars. Those are built
here directly, with the values SafeLoader gives; anything else (and anything that is an
error: a duplicate key, an unhashable key, too many values, deep nesting) returns NOT_PLAIN,
and the caller runs the full loader, which reports it exactly as before.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_P = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"{_P}str", f"{_P}int", f"{_P}float", f"{_P}bool",
                                    f"{_P}null")
_MAP, _SEQ = f"{_P}map", f"{_P}seq"
# Written the way SafeConstructor.construct_yaml_int reads it as plain decimal; other forms
# (0x.., 0o.., 1_000, 1:30, -0) go through SafeConstructor itself.
_DECIMAL = re.compile(r"[-+]?[1-9][0-9]*|0")
# Deeper documents go through the full loader and its own limits; ADTs are about 15 deep.
MAX_DEPTH = 40

NOT_PLAIN: Final = object()


class _NotPlain(Exception):
    """Raised inside construct_plain to hand the document to the full loader."""


def construct_plain(loader: yaml.constructor.SafeConstructor, root: Node,
                    max_values: int) -> Any:
    """The document's value as SafeLoader would build it, or NOT_PLAIN."""
    seen: set[int] = set()

    def scalar(node: Node) -> Any:
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == _INT:
            return int(value) if _DECIMAL.fullmatch(value) else loader.construct_yaml_int(node)
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return loader.construct_yaml_bool(node)
        if tag == _FLOAT:
            return loader.construct_yaml_float(node)
        raise _NotPlain

    def build(node: Node, depth: int) -> Any:
        ident = id(node)
        if ident in seen or len(seen) >= max_values:  # an alias, or too big: the full loader
            raise _NotPlain
        seen.add(ident)
        kind = type(node)
        if kind is ScalarNode:
            return node.value if node.tag == _STR else scalar(node)
        if depth >= MAX_DEPTH:
            raise _NotPlain
        if kind is MappingNode and node.tag == _MAP:
            mapping: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if type(key_node) is not ScalarNode:  # unhashable: the full loader says so
                    raise _NotPlain
                key = build(key_node, depth)  # merge (<<) and value (=) keys are not plain
                if key in mapping:  # the full loader reports the duplicate
                    raise _NotPlain
                mapping[key] = build(value_node, depth + 1)
            return mapping
        if kind is SequenceNode and node.tag == _SEQ:
            return [build(item, depth + 1) for item in node.value]
        raise _NotPlain

    try:
        return build(root, 0)
    except _NotPlain:
        return NOT_PLAIN
