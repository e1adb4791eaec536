"""What bounds a rule's proposal: min/max, scheduled minimums, step sizes and cooldowns.

Pure functions. With the policy options at their defaults (no schedule, unlimited steps, no
cooldowns) the result is MiCADO's: the proposal clamped to [min, max].
Schedules are read in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_SCHEDULE_LOOKBACK = 7 * 24 * 3600


def _field_values(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            start, end = (int(x) for x in base.split("-"))
        else:
            start = end = int(base)
            if step_text:
                end = high
        values.update(range(start, end + 1, step))
    return values


def cron_matches(expression: str, moment: datetime) -> bool:
    """Standard 5-field cron (checked by the compiler); day-of-week 0 and 7 are Sunday."""
    minute, hour, mday, month, wday = expression.split()
    weekday = (moment.isoweekday()) % 7
    days = _field_values(wday, 0, 7)
    if 7 in days:
        days.add(0)
    day_ok_month = moment.day in _field_values(mday, 1, 31)
    day_ok_week = weekday in days
    if mday != "*" and wday != "*":
        day_ok = day_ok_month or day_ok_week  # cron ORs the two day fields when both are set
    else:
        day_ok = day_ok_month and day_ok_week
    return (moment.minute in _field_values(minute, 0, 59)
            and moment.hour in _field_values(hour, 0, 23)
            and moment.month in _field_values(month, 1, 12) and day_ok)


def scheduled_minimum(schedule: list[dict[str, Any]], now: float) -> int:
    """The highest min_instances of the schedule entries active at `now` (0 if none)."""
    best = 0
    current = datetime.fromtimestamp(now, UTC).replace(second=0, microsecond=0)
    for entry in schedule:
        if entry["min_instances"] <= best:
            continue
        lookback = min(int(entry["duration"]), MAX_SCHEDULE_LOOKBACK)
        for minutes in range(0, lookback // 60 + 1):
            if minutes * 60 >= lookback and minutes:
                break
            if cron_matches(entry["cron"], current - timedelta(minutes=minutes)):
                best = entry["min_instances"]
                break
    return best


@dataclass
class LimitState:
    """What the limits remember per target between ticks."""

    last_change: float | None = None
    recommendations: list[tuple[float, int]] = field(default_factory=list)


@dataclass
class Limited:
    desired: int
    notes: list[str]
    state: LimitState


def apply_limits(current: int, proposed: int, *, low: int, high: int,
                 options: dict[str, Any], state: LimitState, now: float) -> Limited:
    """The size to act on, and why it differs from the rule's proposal."""
    notes: list[str] = []
    floor = low
    scheduled = scheduled_minimum(options.get("schedule") or [], now)
    if scheduled > floor:
        floor = min(scheduled, high)
    desired = min(max(proposed, floor), high)
    if desired != proposed:
        bound = "max_instances" if desired < proposed else (
            "the schedule's minimum" if floor > low and desired == floor else "min_instances")
        notes.append(f"clamped {proposed} -> {desired} ({bound})")

    window = int(options.get("cooldown_down") or 0)
    recommendations = [(t, n) for t, n in state.recommendations if now - t < window]
    recommendations.append((now, desired))
    if desired < current and window:
        highest = max(n for _, n in recommendations)
        if highest > desired:
            notes.append(f"held at {min(highest, current)} by cooldown_down: the last "
                         f"{window} s wanted up to {highest}")
            desired = min(highest, current)

    cooldown_up = int(options.get("cooldown_up") or 0)
    if desired > current and cooldown_up and state.last_change is not None:
        wait = state.last_change + cooldown_up - now
        if wait > 0:
            notes.append(f"held at {current} by cooldown_up for {wait:.0f} s more")
            desired = current

    step_up, step_down = options.get("max_step_up"), options.get("max_step_down")
    if step_up and desired - current > step_up:
        notes.append(f"step limited to +{step_up}")
        desired = current + step_up
    if step_down and current - desired > step_down:
        notes.append(f"step limited to -{step_down}")
        desired = current - step_down

    last_change = now if desired != current else state.last_change
    return Limited(desired, notes, LimitState(last_change, recommendations if window else []))
