"""The policy options take effect in decisions: cooldowns, steps and schedules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from micado.adt import compile_adt
from micado.adt.model import ScalingPolicy
from micado.policy.engine import TargetState, TickInputs, decide

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "micado"
DEFAULTS = {"cooldown_up": 0, "cooldown_down": 0, "max_step_up": None, "max_step_down": None,
            "schedule": [], "on_missing_data": "hold", "dry_run": False}


def _container_policy(rule: str, **options: object) -> tuple[ScalingPolicy, object]:
    plan = compile_adt((EXAMPLES / "stressng_nova.yaml").read_text()).plan
    policy = next(p for p in plan.policies if p.target_kind == "workload")
    return replace(policy, scaling_rule=rule, max_instances=10,
                   options={**DEFAULTS, **options}), plan.shared


def _tick(now: float, replicas: int) -> TickInputs:
    return TickInputs(now=now, query_results={}, firing_alerts=set(),
                      nodes={"worker-node": [{"ID": "n1", "Addr": "10.0.0.1"}]},
                      live_counts={"stressng": replicas, "worker-node": 1})


def test_step_and_cooldown_up_shape_a_scale_out() -> None:
    policy, shared = _container_policy("m_container_count = 8", max_step_up=2, cooldown_up=60)
    state, replicas, sizes = TargetState(), 1, []
    for now in (0.0, 15.0, 30.0, 75.0):
        decision, _ = decide(policy, shared, _tick(now, replicas), state, None)
        state, replicas = decision.state, decision.desired
        sizes.append(decision.desired)
    assert sizes == [3, 3, 3, 5]
    assert "step limited to +2" in decision.reason


def test_schedule_minimum_overrides_a_quiet_rule() -> None:
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp()
    policy, shared = _container_policy(
        "m_container_count = 1",
        schedule=[{"cron": "0 8 * * 1-5", "duration": 36000, "min_instances": 4}])
    decision, _ = decide(policy, shared, _tick(monday_9, 1), TargetState(), None)
    assert decision.desired == 4
    assert "the schedule's minimum" in decision.reason


def test_dry_run_decides_and_says_it_will_not_act() -> None:
    policy, shared = _container_policy("m_container_count = 4", dry_run=True)
    decision, _ = decide(policy, shared, _tick(0.0, 1), TargetState(), None)
    assert decision.dry_run and decision.desired == 4
    assert decision.reason.endswith("(dry run: recorded, not applied)")
