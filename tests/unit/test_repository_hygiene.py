"""Generated files stay out of git: what ansible-test, pytest or a build writes is ignored."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def checkout() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("the repository hygiene tests need a git checkout and git")


def test_no_tracked_file_is_ignored(checkout: None) -> None:
    tracked_but_ignored = _git("ls-files", "--cached", "--ignored", "--exclude-standard")
    assert tracked_but_ignored == ""


@pytest.mark.parametrize(
    "generated",
    [
        "collections/ansible_collections/micado/core/tests/output/bot/x.json",
        "collections/ansible_collections/micado/core/tests/output/.tmp/pylint/x.stats",
        ".venv/bin/python",
        "build/demo/manifests.yaml",
        ".pytest_cache/v/cache/lastfailed",
    ],
)
def test_generated_files_are_ignored(checkout: None, generated: str) -> None:
    result = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", "-q", generated], check=False
    )
    assert result.returncode == 0, f"{generated} would be picked up by git add"
