"""Bounds on a rule's proposal: clamping, schedules, steps, cooldowns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from micado.policy.limits import LimitState, apply_limits, cron_matches, scheduled_minimum

DEFAULTS = {"cooldown_up": 0, "cooldown_down": 0, "max_step_up": None, "max_step_down": None,
            "schedule": []}
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp()
SUNDAY_9 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC).timestamp()


def _limit(current: int, proposed: int, now: float = 1000.0, state: LimitState | None = None,
           **options: object):
    return apply_limits(current, proposed, low=1, high=5, options={**DEFAULTS, **options},
                        state=state or LimitState(), now=now)


@pytest.mark.parametrize(("proposed", "desired"), [(3, 3), (9, 5), (0, 1), (-4, 1)])
def test_defaults_only_clamp_like_micado(proposed: int, desired: int) -> None:
    result = _limit(2, proposed)
    assert result.desired == desired
    assert bool(result.notes) == (proposed != desired)


@pytest.mark.parametrize(("expression", "moment", "expected"), [
    ("0 8 * * 1-5", datetime(2026, 11, 30, 8, 0), True),     # Monday 08:00
    ("0 8 * * 1-5", datetime(2026, 11, 29, 8, 0), False),    # Sunday
    ("*/15 * * * *", datetime(2026, 11, 29, 3, 45), True),
    ("*/15 * * * *", datetime(2026, 11, 29, 3, 44), False),
    ("0 0 * * 7", datetime(2026, 11, 29, 0, 0), True),       # 7 is Sunday too
    ("0 0 1 * 1", datetime(2026, 11, 30, 0, 0), True),       # day fields are ORed
])
def test_cron(expression: str, moment: datetime, expected: bool) -> None:
    assert cron_matches(expression, moment) is expected


def test_schedule_minimum_holds_for_its_duration() -> None:
    schedule = [{"cron": "0 8 * * 1-5", "duration": 10 * 3600, "min_instances": 3}]
    assert scheduled_minimum(schedule, MONDAY_9) == 3
    assert scheduled_minimum(schedule, MONDAY_9 + 9 * 3600) == 0   # 18:00, window over
    assert scheduled_minimum(schedule, SUNDAY_9) == 0
    result = _limit(1, 1, now=MONDAY_9, schedule=schedule)
    assert result.desired == 3
    assert "the schedule's minimum" in result.notes[0]


def test_max_steps() -> None:
    assert _limit(1, 5, max_step_up=2).desired == 3
    assert _limit(5, 1, max_step_down=1).desired == 4


def test_cooldown_up_waits_after_a_change() -> None:
    state = LimitState(last_change=1000.0)
    held = _limit(2, 3, now=1030.0, state=state, cooldown_up=60)
    assert held.desired == 2 and "cooldown_up" in held.notes[0]
    assert _limit(2, 3, now=1061.0, state=state, cooldown_up=60).desired == 3


def test_cooldown_down_is_a_stabilisation_window() -> None:
    state = LimitState()
    steps = [(0, 4, 4), (10, 2, 4), (20, 3, 4), (75, 2, 3), (140, 2, 2)]
    current = 4
    for now, proposed, expected in steps:
        result = _limit(current, proposed, now=float(now), state=state, cooldown_down=60)
        assert result.desired == expected, (now, result.notes)
        current, state = result.desired, result.state
