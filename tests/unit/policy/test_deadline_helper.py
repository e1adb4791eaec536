"""instances_for_deadline: the deadline-driven queue helper available to rules."""

from __future__ import annotations

import pytest

from micado.policy.sandbox import evaluate

RULE = """\
need = instances_for_deadline(ITEMS, AVG_SECONDS, DEADLINE - now, limit=MAXNODES)
if need is not None:
    m_node_count = max(1, need)
"""


@pytest.mark.parametrize(("items", "avg", "left", "expected"), [
    (100, 30.0, 600, 5),      # 3000 s of work in 600 s: 5 instances
    (100, 30.0, 3000, 1),
    (0, 30.0, 600, 1),        # nothing left: the rule keeps one
    (100, 30.0, 60, 10),      # capped at MAXNODES
    (100, 30.0, -5, 10),      # deadline passed: the limit
    (None, 30.0, 600, 2),     # no data: the rule keeps its count
])
def test_deadline_arithmetic(items: object, avg: float, left: float, expected: int) -> None:
    result = evaluate(RULE, {"ITEMS": items, "AVG_SECONDS": avg, "DEADLINE": 1000 + left,
                             "now": 1000, "MAXNODES": 10, "m_node_count": 2},
                      ["m_node_count"])
    assert result.error is None, result.error
    assert result.outputs["m_node_count"] == expected


def test_passed_deadline_without_limit_is_an_error() -> None:
    result = evaluate("x = instances_for_deadline(5, 1, 0)", {}, ["x"])
    assert result.error is not None and result.error.kind == "value"
    assert "deadline has passed" in result.error.message
