"""MiCADO's Policy Keeper and our engine, side by side on the same scripted ticks (issue 11).

Every case must agree on every tick except at the ticks it declares for a difference id, and
those ids must be the README's list of deliberate differences, each shown by some case. A
failing case prints the tick-by-tick table (tick, MiCADO, ours, diff).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from parity_cases import CASES
from parity_harness import (
    EPOCH,
    Case,
    Side,
    disagreements,
    expand_ticks,
    load_adt,
    micado_request,
    micado_sides,
    policy_keeper_python,
    run_micado,
    run_ours,
    table,
)

from cached_venv import VenvError
from conftest import REPO, prerequisite
from micado.policy import engine

SECTION = "### Deliberate differences from MiCADO: scaling rules"


def readme_ids() -> list[str]:
    text = (REPO / "README.md").read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    body = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    return re.findall(r"^- `(D-[a-z0-9-]+)`", body, flags=re.M)


@pytest.fixture(scope="module")
def micado_rows() -> dict[str, list[dict[str, Any]]]:
    """Every case through the MiCADO model, in one process of its virtualenv."""
    try:
        python = policy_keeper_python()
    except VenvError as exc:
        prerequisite(False, f"a virtualenv with MiCADO's asteval and numpy pins: {exc}")
        raise
    requests = [micado_request(case, *load_adt(case, REPO)) for case in CASES]
    return dict(zip([c.name for c in CASES], run_micado(python, requests), strict=True))


def side_by_side(case: Case, rows: list[dict[str, Any]]) -> tuple[list[Side], list[Side], str]:
    _, plan = load_adt(case, REPO)
    ticks = expand_ticks(case.ticks, plan)
    micado, ours = micado_sides(rows, ticks), run_ours(case, plan)
    return micado, ours, table(case, ticks, micado, ours)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_micado_and_ours_agree_except_where_declared(
        case: Case, micado_rows: dict[str, list[dict[str, Any]]]):
    micado, ours, text = side_by_side(case, micado_rows[case.name])
    declared = sorted({i for where in case.differences.values() for i in where})
    assert disagreements(micado, ours) == declared, "\n" + text


def test_cases_declare_only_the_readme_differences_and_show_them_all():
    ids = readme_ids()
    assert ids, "the README's list of deliberate differences is empty"
    declared = {ident for case in CASES for ident in case.differences}
    assert declared - set(ids) == set(), "ids not in the README's list"
    assert set(ids) - declared == set(), "README ids that no case shows"
    assert len(CASES) == len({c.name for c in CASES})
    assert f"runs {len(CASES)} scripted cases" in " ".join(
        (REPO / "README.md").read_text().split())


def test_the_engine_names_only_readme_differences():
    named = set(re.findall(r"\bD-[a-z0-9]+(?:-[a-z0-9]+)*", engine.__doc__ or ""))
    assert named and named <= set(readme_ids())


def test_the_table_shows_each_tick_both_sides_and_the_declared_ids():
    case = Case("demo", "x", [], differences={"D-alerts-state": [1]})
    ticks = [{"now": EPOCH + 15 * i} for i in range(2)]
    same = Side({"g": (2, ())}, {"app": 3}, None, None, [])
    other = Side({"g": (1, ("g-2",))}, {"app": 3}, {"n": 1}, "KeyError: 'data'", ["boom"])
    lines = table(case, ticks, [same, other], [same, same]).splitlines()
    assert lines[2].split() == ["0", "0", "g=2", "app=3", "g=2", "app=3"]
    assert lines[3].split()[:9] == ["1", "15", "g=1", "drop", "g-2", "app=3", 'ud={"n":',
                                   "1}", "CRASH"]
    assert lines[3].split()[-2:] == ["DIFF", "D-alerts-state"]
    assert "MiCADO log: boom" in lines[4]
    assert disagreements([same, other], [same, same]) == [1]
