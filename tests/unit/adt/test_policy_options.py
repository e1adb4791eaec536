"""The optional scaling properties: defaults that behave as MiCADO, and checked values."""

from __future__ import annotations

import pytest
from adt_text import compiled, errors_of

from micado.adt.policy_options import cron_problem, parse_duration

BODY = """
topology_template:
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.25
  policies:
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [web]
        properties:
          constants: {COOL: 2m}
          min_instances: 1
          max_instances: 5
          scaling_rule: m_container_count = 3
"""


def _options(extra: str) -> dict:
    body = BODY.replace("          min_instances: 1\n", "          min_instances: 1\n" + extra)
    return compiled(body).plan.policies[0].options


def test_defaults_reproduce_micado() -> None:
    assert _options("") == {"cooldown_up": 0, "cooldown_down": 0, "max_step_up": None,
                            "max_step_down": None, "schedule": [], "on_missing_data": "hold",
                            "dry_run": False}


def test_all_options() -> None:
    options = _options("""\
          cooldown_up: 90
          cooldown_down: '{{COOL}}'
          max_step_up: 2
          max_step_down: 1
          on_missing_data: evaluate
          dry_run: true
          schedule:
            - {cron: "0 8 * * 1-5", duration: 10h, min_instances: 3}
""")
    assert options == {"cooldown_up": 90, "cooldown_down": 120, "max_step_up": 2,
                       "max_step_down": 1, "on_missing_data": "evaluate", "dry_run": True,
                       "schedule": [{"cron": "0 8 * * 1-5", "duration": 36000,
                                     "min_instances": 3}]}


def test_node_unreachable_timeout_is_a_duration_absent_by_default() -> None:
    assert _options("          node_unreachable_timeout: 2m\n")["node_unreachable_timeout"] == 120
    assert "node_unreachable_timeout" not in _options("")  # the reconciliation's 10 min


@pytest.mark.parametrize("mode", ["hold", "evaluate", "hold_on_no_series"])
def test_every_missing_data_mode_compiles(mode: str) -> None:
    assert _options(f"          on_missing_data: {mode}\n")["on_missing_data"] == mode


@pytest.mark.parametrize(("extra", "expected"), [
    ("          cooldown_up: soon\n",
     "properties.cooldown_up: 'soon' is not a duration"),
    ("          max_step_down: 0\n", "properties.max_step_down: must be a whole number >= 1"),
    ("          on_missing_data: guess\n", "properties.on_missing_data: must be one of hold, "
                                           "evaluate, hold_on_no_series"),
    ("          dry_run: perhaps\n", "properties.dry_run: must be true or false"),
    ("          node_unreachable_timeout: 0\n",
     "properties.node_unreachable_timeout: 0 is not a duration above 0"),
    ("          node_unreachable_timeout: soon\n",
     "properties.node_unreachable_timeout: 'soon' is not a duration above 0"),
    ("          schedule: [{cron: '0 25 * * *', duration: 1h, min_instances: 2}]\n",
     "properties.schedule[0].cron: hour '25' must be within 0-23"),
    ("          schedule: [{cron: '0 8 * * *', min_instances: 2}]\n",
     "properties.schedule[0].duration: required"),
    ("          schedule: [{cron: '0 8 * *', duration: 1h, min_instances: 2, at: x}]\n",
     "properties.schedule[0].at: unknown key"),
])
def test_bad_options(extra: str, expected: str) -> None:
    body = BODY.replace("          min_instances: 1\n", "          min_instances: 1\n" + extra)
    errors = errors_of(body)
    assert any(e.startswith("topology_template.policies[0].scalability." + expected.split(":")[0])
               and expected.split(": ", 1)[1] in e for e in errors), errors


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90), ("90", 90), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2h", 7200),
    ("", None), ("m", None), (-1, None), ("ten", None), (True, None),
])
def test_durations(text: object, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("expression", "ok"), [
    ("0 8 * * 1-5", True), ("*/15 * * * *", True), ("0 0 1,15 * 0", True),
    ("0 8 * *", False), ("60 * * * *", False), ("0 8 * * 5-1", False), ("*/0 * * * *", False),
    ("a * * * *", False),
])
def test_cron(expression: str, ok: bool) -> None:
    assert (cron_problem(expression) is None) == ok
