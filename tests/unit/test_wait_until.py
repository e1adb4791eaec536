"""integration.prometheus_fixture.wait_until: with `slowest`, it looks every `interval` s for
QUICK_SECONDS, then less and less often; without, at the same pace to the end. The bounds hold
however loaded the machine is: a sleep is never shorter than asked, only longer."""

from __future__ import annotations

import itertools
import time

from integration.prometheus_fixture import QUICK_SECONDS, wait_until


def looks(timeout: float, **pace: float) -> list[float]:
    """When a never-true predicate was looked at, from the start."""
    started, seen = time.monotonic(), []

    def never() -> bool:
        seen.append(time.monotonic() - started)
        return False

    assert wait_until(never, timeout, **pace) is False
    return seen


def test_slowest_spaces_the_looks_after_the_quick_seconds_out() -> None:
    seen = looks(QUICK_SECONDS + 2.5, interval=0.1, slowest=1.0)
    later = [t for t in seen if t > QUICK_SECONDS]
    # 0.15, 0.225, 0.34, 0.51, 0.76, 1.0 ... s apart: at most 7 looks in 2.5 s (ten a second
    # would be 25), the pause before the last look (cut short by the deadline) half a second
    assert 3 <= len(later) <= 7, later
    assert later[-2] - later[-3] >= 0.5, later
    assert seen[-1] >= QUICK_SECONDS + 2.5  # it still looks once at the deadline


def test_without_slowest_the_pace_never_changes_and_the_deadline_holds() -> None:
    seen = looks(1.5, interval=0.3)
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert all(gap >= 0.3 for gap in gaps[:-1]), gaps  # the last one is cut by the deadline
    assert seen[-1] >= 1.5 and len(seen) <= 6
