"""The fast loader for plain YAML builds exactly what PyYAML's safe loader builds, and hands
every document it is not sure of (aliases, merge keys, tags, duplicates, depth) back."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micado.adt.yamlio import MAX_VALUES, DuplicateKeyError, TooLargeError, load_yaml
from micado.adt.yamlplain import MAX_DEPTH, NOT_PLAIN, load_plain

REPO = Path(__file__).resolve().parents[3]

# Plain scalars whose type YAML 1.1 (PyYAML) decides from their spelling.
TRICKY_SCALARS = [
    "0", "-0", "+7", "007", "0o17", "0x1F", "0b101", "1_000", "1:30", "190:20:30", "-12",
    "12345678901234567890123", "1.5", "-.5", "1e3", "1.0e+3", ".inf", "-.Inf", ".NaN", "1_0.5",
    "6.8523015e+5", "yes", "No", "ON", "off", "true", "False", "y", "n", "~", "null", "Null",
    "", "2024-01-31", "2001-12-14t21:59:43.10-05:00", "=", "<<", "a: b", "- x", "#", "'q'",
    "é", "\t", "0.", "._", "+", "-", ".", "1__", "0b", "0x",
]


def typed(value: Any) -> Any:
    """`value` with every scalar's type spelled out (1, 1.0 and True compare equal in Python)."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def both_ways(text: str, full_too: bool = True, limit: int = MAX_VALUES) -> tuple[Any, Any]:
    """(load_plain's answer, PyYAML's SafeLoader's) for `text`, with the same resolvers."""
    fast = load_plain(text, SAFE_LOADER.yaml_implicit_resolvers, limit)
    return fast, (yaml.load(text, Loader=SAFE_LOADER) if full_too else None)


@pytest.mark.parametrize("scalar", TRICKY_SCALARS)
def test_scalars_are_read_as_the_full_loader_reads_them(scalar: str) -> None:
    for text in (f"v: {scalar}\n", f"v: '{scalar}'\n", f"- {scalar}\n", f"{scalar}: 1\n"):
        try:
            fast, full = both_ways(text)
        except yaml.YAMLError:
            continue  # not YAML at all (e.g. "v: - x"): the loader reports it before us
        if fast is not NOT_PLAIN:
            assert typed(fast) == typed(full), text


@pytest.mark.parametrize("text", [
    "a: &x 1\nb: *x\n",                       # an alias
    "base: &b {x: 1}\nderived:\n  <<: *b\n",  # a merge key
    "a: !!binary aGVsbG8=\n",                 # a tag beyond the plain scalars
    "a: !!set {x, y}\n",
    "a: !!omap [{x: 1}]\n",
    "a: !custom 1\n",
    "a: !!str {x: 1}\n",                      # a tag on the wrong kind of node
    "a: 1\na: 2\n",                           # a duplicate key, reported by the full loader
    "1: a\ntrue: b\n",                        # 1 == True: a duplicate for PyYAML too
    "? [a, b]\n: 1\n",                        # an unhashable key
    "? {a: 1}\n: 1\n",
    "= : 1\n",                                # the value key
    "a: 2024-01-31\n",                        # implicit timestamp: SafeLoader reads a date
    "a: &x 1\n",                              # an anchor, even unused
    "a: 1\n---\nb: 2\n",                      # two documents: an error for the full loader
    "",                                       # no document at all
    "# a comment only\n",
    "a: [1\n",                                # not YAML
    "a: \ud800\n",                            # not Unicode
])
def test_documents_that_are_not_plain_go_to_the_full_loader(text: str) -> None:
    assert both_ways(text, full_too=False)[0] is NOT_PLAIN


def test_nesting_deeper_than_the_limit_goes_to_the_full_loader() -> None:
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    fast, full = both_ways(at_limit)
    assert fast is not NOT_PLAIN and typed(fast) == typed(full)
    deeper = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert both_ways(deeper, full_too=False)[0] is NOT_PLAIN
    assert load_yaml(deeper) == yaml.safe_load(deeper)
    mapping = "a: " * (MAX_DEPTH + 1) + "1"  # not YAML: "mapping values are not allowed here"
    with pytest.raises(yaml.YAMLError):
        load_yaml(mapping)


def test_the_errors_are_the_full_loaders() -> None:
    with pytest.raises(DuplicateKeyError, match="found duplicate key 'a'"):
        load_yaml("x:\n  a: 1\n  a: 2\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="unhashable"):
        load_yaml("? [a]\n: 1\n")
    bomb = "a: &a [1, 1]\n" + "".join(f"{c}: &{c} [*{p}, *{p}]\n" for p, c in
                                    zip("abcdefghijklmnopq", "bcdefghijklmnopqr", strict=True))
    with pytest.raises(TooLargeError):
        load_yaml(bomb)


def test_plain_documents_with_more_values_than_allowed_go_to_the_full_loader() -> None:
    """The limit counts every node, the list itself included, as yamlio's check does."""
    assert both_ways("[1, 2, 3]", limit=4)[0] == [1, 2, 3]
    assert both_ways("[1, 2, 3, 4]", limit=4, full_too=False)[0] is NOT_PLAIN
    assert both_ways("{a: 1, b: 2}", limit=5)[0] == {"a": 1, "b": 2}
    assert both_ways("{a: 1, b: 2}", limit=4, full_too=False)[0] is NOT_PLAIN


def test_dates_stay_text_and_aliases_still_work() -> None:
    """What yamlio adds to SafeLoader holds on both paths."""
    assert load_yaml("v: 2024-01-31\n") == {"v": "2024-01-31"}
    assert load_yaml("a: &x {k: [1, 2]}\nb: *x\n") == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}}


def test_the_example_adts_load_as_before(examples_dir: Path) -> None:
    adts = sorted(examples_dir.glob("*.yaml")) + sorted((REPO / "tests" / "data").glob("*/*.yaml"))
    assert len(adts) > 40
    plain = 0
    for path in adts:
        try:
            fast, full = both_ways(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue  # the broken corpus' syntax errors
        if fast is not NOT_PLAIN:
            assert typed(fast) == typed(full), path
            plain += 1
    assert plain > 40  # the fast way is the usual one


_SCALARS = st.one_of(st.sampled_from(TRICKY_SCALARS), st.text(max_size=8), st.integers(),
                     st.floats(), st.booleans(), st.none())
_DATA = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_SCALARS, inner, max_size=4), max_leaves=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_DATA, flow=st.sampled_from([None, True, False]))
def test_random_documents_read_the_same_both_ways(data: Any, flow: bool | None) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    fast, full = both_ways(text)
    if fast is not NOT_PLAIN:
        assert typed(fast) == typed(full)


_EXAMPLE_TEXT = (REPO / "examples" / "micado" / "nginx_ec2.yaml").read_text(encoding="utf-8")
_SPRINKLES = st.sampled_from([" ", "\n", "\t", ":", "-", "[", "]", "{", "}", ",", "'", '"', "#",
                              "&a ", "*a", "!", "!!str ", "? ", "|", ">", "%", "@", "`", "0",
                              "yes", "~", "<<: ", "\\", "\ufeff", "é"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, len(_EXAMPLE_TEXT)), st.integers(0, 3),
                                _SPRINKLES), min_size=1, max_size=6))
def test_mutated_adt_text_reads_the_same_both_ways(edits: list[tuple[int, int, str]]) -> None:
    """Characters cut and inserted anywhere in an example ADT: whenever the fast way answers,
    it answers what PyYAML's safe loader does."""
    text = _EXAMPLE_TEXT
    for at, cut, insert in edits:
        text = text[:at] + insert + text[at + cut:]
    fast, _ = both_ways(text, full_too=False)
    if fast is not NOT_PLAIN:
        assert typed(fast) == typed(yaml.load(text, Loader=SAFE_LOADER))
