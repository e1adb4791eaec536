"""What the make targets install: make demo the runtime only, make test the test tools too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import REPO, prerequisite


def _would_run(target: str, venv: Path) -> str:
    """make's own dry run (-n) of `target` for a venv that does not exist yet."""
    prerequisite(shutil.which("make") is not None, "make")
    result = subprocess.run(["make", "-n", target, f"VENV={venv}"], cwd=REPO, capture_output=True,
                            text=True, check=True)
    return result.stdout


def test_demo_installs_the_package_without_the_test_tools(tmp_path: Path) -> None:
    commands = _would_run("demo", tmp_path / "venv")
    assert "pip install --quiet -e .\n" in commands
    assert ".[test]" not in commands
    assert "micado validate" in commands


def test_test_installs_the_test_tools(tmp_path: Path) -> None:
    commands = _would_run("test", tmp_path / "venv")
    assert "pip install --quiet -e '.[test]'" in commands
    assert "scripts/ensure-debian-packages tests/debian-packages.txt" in commands


def test_lint_checks_that_it_wrote_nothing(tmp_path: Path) -> None:
    commands = _would_run("lint", tmp_path / "venv")
    assert "ruff check --no-fix" in commands
    before, after = commands.index("git status --porcelain"), commands.rindex("git status")
    assert before < commands.index("ansible-lint") < commands.index("ansible-test-sanity") < after
