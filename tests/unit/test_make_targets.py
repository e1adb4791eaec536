"""What the make targets install: make demo the runtime only, make test the test tools too."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO, prerequisite


def _would_run(target: str, venv: Path) -> str:
    """make's own dry run (-n) of `target` (targets, space-separated) for a venv that does not
    exist yet."""
    prerequisite(shutil.which("make") is not None, "make")
    result = subprocess.run(["make", "-n", *target.split(), f"VENV={venv}"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    return result.stdout


def test_demo_installs_the_package_without_the_test_tools(tmp_path: Path) -> None:
    commands = _would_run("demo", tmp_path / "venv")
    assert "pip install --quiet -e .\n" in commands
    assert ".[test]" not in commands
    assert "micado validate" in commands


def test_test_installs_the_test_tools(tmp_path: Path) -> None:
    # make test has scripts/run-tests run this once the control plane's build has started
    commands = _would_run("test", tmp_path / "venv")
    setup = f"RUN_TESTS_SETUP='make --no-print-directory VENV={tmp_path / 'venv'} " \
            "debian-packages venv'"
    assert setup in commands and "scripts/run-tests" in commands, commands
    commands = _would_run("debian-packages venv", tmp_path / "venv")
    assert "pip install --quiet -e '.[test]'" in commands
    assert "scripts/ensure-debian-packages tests/debian-packages.txt" in commands


def test_lint_checks_that_it_wrote_nothing(tmp_path: Path) -> None:
    commands = _would_run("lint", tmp_path / "venv")
    assert "ruff check --no-fix" in commands
    before, after = commands.index("git status --porcelain"), commands.rindex("git status")
    assert before < commands.index("ansible-lint") < commands.index("ansible-test-sanity") < after


def _clone_with_linters(tmp_path: Path, ruff_script: str) -> tuple[Path, Path]:
    """A clone of this commit and a venv whose linters are scripts (one may write: the fault
    the guard is for); every other tool succeeds without doing anything."""
    prerequisite(shutil.which("git") is not None and shutil.which("make") is not None,
                 "git and make")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "ruff", "yamllint", "ansible-lint", "ansible-test"):
        script = venv / "bin" / tool
        script.write_text(ruff_script if tool == "ruff" else "#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
    (venv / ".installed-stamp").touch()  # newer than the clone's pyproject.toml
    return clone, venv


def _lint(clone: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    # HOME too: scripts/ansible-test-sanity writes its pip bootstrap under ~/.ansible
    return subprocess.run(["make", "lint", f"VENV={venv}"], cwd=clone, capture_output=True,
                          text=True, check=False, env={**os.environ, "HOME": str(venv)})


def test_lint_fails_when_a_linter_writes(tmp_path: Path) -> None:
    clone, venv = _clone_with_linters(tmp_path, "#!/bin/sh\necho fixed >> README.md\n")
    result = _lint(clone, venv)
    assert result.returncode != 0
    assert "make lint changed the files above" in result.stderr
    assert "+ M README.md" in result.stdout


def test_lint_passes_when_nothing_is_written(tmp_path: Path) -> None:
    clone, venv = _clone_with_linters(tmp_path, "#!/bin/sh\nexit 0\n")
    result = _lint(clone, venv)
    assert result.returncode == 0, result.stdout + result.stderr
