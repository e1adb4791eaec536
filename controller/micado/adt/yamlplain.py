"""A fast loader for plain YAML documents: maps, lists and the safe scalar types only.

PyYAML builds a node tree (calling back into Python to resolve every scalar's type) and then
constructs values from it with a generic constructor; on a 220-node ADT that was most of the
load time. Almost every ADT is plain: one document, no anchors or aliases, no merge keys, no
tags beyond the standard ones. Those are built here straight from libyaml's events, with the
values SafeLoader gives. Anything else, and anything that is an error (bad syntax, a
duplicate or unhashable key, too many values, deep nesting), gives NOT_PLAIN, and the caller
runs the full loader, which reports it exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML without libyaml: every document takes the full loader
    CParser = None

_P = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"{_P}str", f"{_P}int", f"{_P}float", f"{_P}bool",
                                    f"{_P}null")
_MAP, _SEQ = f"{_P}map", f"{_P}seq"
_NON_SPECIFIC = (None, "!")
# Written the way SafeConstructor.construct_yaml_int reads it as plain decimal; other forms
# (0x.., 0o.., 1_000, 1:30, -0) go through SafeConstructor itself.
_DECIMAL = re.compile(r"[-+]?[1-9][0-9]*|0")
# Deeper documents go through the full loader and its own limits; ADTs are about 15 deep.
MAX_DEPTH = 40

NOT_PLAIN: Final = object()
Resolvers = Mapping[str | None, list[tuple[str, re.Pattern[str]]]]


class _NotPlain(Exception):
    """Raised inside load_plain to hand the document to the full loader."""


class _Frame:
    """An open map or list, and for a map the key read but not yet given a value."""

    __slots__ = ("key", "value")
    NO_KEY: Final = object()

    def __init__(self, value: dict[Any, Any] | list[Any]) -> None:
        self.value = value
        self.key: Any = _Frame.NO_KEY


def load_plain(text: str, resolvers: Resolvers, max_values: int) -> Any:
    """The single document in `text` as SafeLoader with `resolvers` builds it, or NOT_PLAIN.

    `resolvers` are the loader's implicit resolvers (first character -> [(tag, regexp)]);
    a loader with catch-all or path resolvers is not for this function.
    """
    if CParser is None or None in resolvers:
        return NOT_PLAIN
    try:
        parser = CParser(text)
    except UnicodeError:
        return NOT_PLAIN
    try:
        return _build(parser.get_event, resolvers, max_values)
    except (_NotPlain, yaml.YAMLError, UnicodeError):
        return NOT_PLAIN
    finally:
        parser.dispose()


def _build(next_event: Any, resolvers: Resolvers, max_values: int) -> Any:
    if type(next_event()) is not StreamStartEvent or type(next_event()) is not DocumentStartEvent:
        raise _NotPlain  # no document: the full loader decides what that is
    stack: list[_Frame] = []
    count = 0
    constructor = SafeConstructor()
    while True:
        event = next_event()
        kind = type(event)
        if kind is ScalarEvent:
            value = _scalar(event, resolvers, constructor)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            tag = _MAP if kind is MappingStartEvent else _SEQ
            if event.anchor is not None or (event.tag not in _NON_SPECIFIC and event.tag != tag):
                raise _NotPlain
            if len(stack) >= MAX_DEPTH:
                raise _NotPlain
            count += 1
            stack.append(_Frame({} if kind is MappingStartEvent else []))
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            value = stack.pop().value
        else:  # an alias
            raise _NotPlain
        count += kind is ScalarEvent
        if count > max_values:
            raise _NotPlain
        if not stack:
            break
        frame = stack[-1]
        if type(frame.value) is list:
            frame.value.append(value)
        elif frame.key is _Frame.NO_KEY:
            if kind is not ScalarEvent or value in frame.value:  # unhashable, or a duplicate
                raise _NotPlain
            frame.key = value
        else:
            frame.value[frame.key] = value  # type: ignore[call-overload]
            frame.key = _Frame.NO_KEY
    if type(next_event()) is not DocumentEndEvent or type(next_event()) is not StreamEndEvent:
        raise _NotPlain  # more than one document
    return value


def _scalar(event: Event, resolvers: Resolvers, constructor: SafeConstructor) -> Any:
    """The scalar's value as SafeConstructor builds it after the resolver typed it."""
    if event.anchor is not None:  # type: ignore[attr-defined]
        raise _NotPlain
    tag, value = event.tag, event.value  # type: ignore[attr-defined]
    if tag in _NON_SPECIFIC:
        if not event.implicit[0]:  # type: ignore[attr-defined]  # quoted: a string
            return value
        for candidate, regexp in resolvers.get(value[:1], ()):
            if regexp.match(value):
                tag = candidate
                break
        else:
            return value
    if tag == _STR:
        return value
    if tag == _INT:
        if _DECIMAL.fullmatch(value):
            return int(value)
        return constructor.construct_yaml_int(ScalarNode(tag, value))
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return constructor.construct_yaml_bool(ScalarNode(tag, value))
    if tag == _FLOAT:
        return constructor.construct_yaml_float(ScalarNode(tag, value))
    raise _NotPlain  # merge and value keys, binary, set, custom tags, ...
