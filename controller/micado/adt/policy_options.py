"""The optional scaling properties this project adds to MiCADO's policy type, checked.

Their defaults reproduce MiCADO: no cooldowns, unlimited steps, no schedule, act for real;
`node_unreachable_timeout` (node groups; 10 min when absent) is how long a group's Node may
stay NotReady before the reconciliation replaces it;
`on_missing_data: hold` holds only when Prometheus could not answer a query the rule reads (a
query answered with no series gives the rule None, as in MiCADO).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import Path, Problems

_DURATION = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = ("minute", "hour", "day of month", "month", "day of week")
SCHEDULE_KEYS = frozenset({"cron", "duration", "min_instances"})
# on_missing_data, checked by the policy type's valid_values (custom_types/policy/scaling.yaml):
# hold: hold when Prometheus could not answer a query the rule reads (the default);
# evaluate: run the rule anyway, the unanswered query is None;
# hold_on_no_series: hold also when a query answered with no series (or NaN)
MISSING_DATA_MODES = ("hold", "evaluate", "hold_on_no_series")


def parse_duration(value: Any) -> int | None:
    """Seconds from 90, '90', '90s', '5m', '1h30m'; None if it is not a duration."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    match = _DURATION.match(value)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def cron_problem(expression: Any) -> str | None:
    """Why a 5-field cron expression is wrong, or None if it is right."""
    if not isinstance(expression, str):
        return "must be a cron expression such as '0 8 * * 1-5'"
    fields = expression.split()
    if len(fields) != 5:
        return f"{expression!r} must have 5 fields: minute hour day-of-month month day-of-week"
    for text, (low, high), name in zip(fields, _CRON_RANGES, _CRON_NAMES, strict=True):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"{name} {part!r}: the step must be a positive number"
            if base == "*":
                continue
            ends = base.split("-")
            if len(ends) > 2 or not all(e.isdigit() for e in ends):
                return f"{name} {part!r} is not a number, range or *"
            numbers = [int(e) for e in ends]
            if any(n < low or n > high for n in numbers) or numbers != sorted(numbers):
                return f"{name} {part!r} must be within {low}-{high}"
    return None


def policy_options(properties: dict[str, Any], path: Path, problems: Problems,
                   ) -> dict[str, Any]:
    """The checked options of one policy, with their defaults."""
    options: dict[str, Any] = {
        "cooldown_up": 0, "cooldown_down": 0, "max_step_up": None, "max_step_down": None,
        "schedule": [],
        "on_missing_data": properties.get("on_missing_data", MISSING_DATA_MODES[0]),
        "dry_run": bool(properties.get("dry_run", False)),
    }
    for key in ("cooldown_up", "cooldown_down"):
        if properties.get(key) is not None:
            seconds = parse_duration(properties[key])
            if seconds is None:
                problems.error((*path, key), f"{properties[key]!r} is not a duration "
                                             "(seconds, or like 90s, 5m, 1h30m)")
            else:
                options[key] = seconds
    for key in ("max_step_up", "max_step_down"):
        value = properties.get(key)
        if value is not None:
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                options[key] = value
            else:
                problems.error((*path, key), "must be a whole number >= 1")
    options["schedule"] = _schedule(properties.get("schedule"), (*path, "schedule"), problems)
    if properties.get("node_unreachable_timeout") is not None:
        seconds = parse_duration(properties["node_unreachable_timeout"])
        if not seconds:
            problems.error((*path, "node_unreachable_timeout"),
                           f"{properties['node_unreachable_timeout']!r} is not a duration above "
                           "0 (seconds, or like 90s, 10m)")
        else:
            options["node_unreachable_timeout"] = seconds
    return options


def _schedule(entries: Any, path: Path, problems: Problems) -> list[dict[str, Any]]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        problems.error(path, "must be a list of {cron, duration, min_instances}")
        return []
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.error((*path, i), "must be a map with cron, duration and min_instances")
            continue
        for key in entry:
            if key not in SCHEDULE_KEYS:
                problems.error((*path, i, str(key)), "unknown key; use cron, duration, "
                                                     "min_instances")
        problem = cron_problem(entry.get("cron"))
        if problem:
            problems.error((*path, i, "cron"), problem)
        duration = parse_duration(entry.get("duration"))
        if duration is None or duration == 0:
            problems.error((*path, i, "duration"), "required: how long the minimum holds after "
                                                   "each cron match (e.g. 10h)")
        minimum = entry.get("min_instances")
        if not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 0:
            problems.error((*path, i, "min_instances"), "must be a whole number >= 0")
        if problem is None and duration and isinstance(minimum, int):
            out.append({"cron": entry["cron"], "duration": duration, "min_instances": minimum})
    return out
