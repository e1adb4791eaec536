"""Shared test helpers.

`prerequisite()` is how a test says it needs something from the machine: outside CI a missing
prerequisite skips the test with the reason; with CI=true it fails, so CI never passes by
silently skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "micado"
# CPU time for rules that must be stopped by the sandbox's CPU timer (error kind "cpu") rather
# than by its wall clock (cut at 3 x the budget + 0.5 s): a small budget leaves a wide margin, so
# a worker that gets a sliver of a core on a loaded machine still uses its CPU time up first.
CPU_BUDGET = 0.02


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def prerequisite(available: bool, what: str) -> None:
    """Skip (locally) or fail (CI=true) when `what` is not available."""
    if available:
        return
    if in_ci():
        pytest.fail(f"prerequisite missing in CI: {what}", pytrace=False)
    pytest.skip(f"prerequisite missing: {what}")


@pytest.fixture
def examples_dir() -> Path:
    prerequisite(EXAMPLES.is_dir(), f"example ADTs in {EXAMPLES}")
    return EXAMPLES

# The real control plane's fixture (tests/kube/cluster.py) for every module that asks for
# `kube_cluster`, and the OpenStack services' (tests/integration/openstack_fixture.py) for every
# module that asks for `openstack_cloud`: defined once here, so the whole session shares one
# cluster and one cloud. Imported into each test module instead, every module got its own fixture
# and so its own cluster or cloud (a cloud took 1-3 minutes to start).
pytest_plugins = ["kube.cluster", "integration.openstack_fixture", "cpu_log", "interrupt_on_term"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the OpenStack services `beside`: make test runs them in a
    pytest of their own beside the others (they mostly wait for Nova and ansible-runner). The
    modules that drive a cloud through the daemon mark themselves."""
    for item in items:
        if "openstack_cloud" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.beside)
