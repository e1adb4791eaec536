"""scripts/ensure-debian-packages: idempotent, and clear when it cannot install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import REPO, prerequisite

SCRIPT = REPO / "scripts" / "ensure-debian-packages"
TOOLS = ("bash", "sed", "tr", "sort", "grep", "dpkg-query", "cat")


def _toolbox(tmp_path: Path, fake_uid: int | None) -> Path:
    """A PATH with the script's tools but no apt-get (and optionally a fake `id`)."""
    prerequisite(shutil.which("dpkg-query") is not None, "dpkg-query (a Debian system)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    uid = os.getuid() if fake_uid is None else fake_uid
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "id").chmod(0o755)
    return bin_dir


def _run(list_text: str, tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    packages = tmp_path / "packages.txt"
    packages.write_text(list_text)
    return subprocess.run([str(SCRIPT), str(packages)], capture_output=True, text=True,
                          env={"PATH": path}, check=False)


def test_installed_packages_are_left_alone(tmp_path: Path) -> None:
    bin_dir = _toolbox(tmp_path, None)
    result = _run("# comment\nbash\n\ndpkg  # trailing comment\n", tmp_path, str(bin_dir))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_missing_package_without_apt(tmp_path: Path) -> None:
    bin_dir = _toolbox(tmp_path, None)
    result = _run("no-such-package-xyz\n", tmp_path, str(bin_dir))
    assert result.returncode == 1
    assert "no-such-package-xyz" in result.stderr and "apt-get is not available" in result.stderr


def test_missing_package_when_not_root(tmp_path: Path) -> None:
    bin_dir = _toolbox(tmp_path, 1000)
    (bin_dir / "apt-get").symlink_to(shutil.which("true") or "/bin/true")
    result = _run("no-such-package-xyz\n", tmp_path, str(bin_dir))
    assert result.returncode == 1
    assert "installing needs root" in result.stderr
    assert "sudo apt-get install -y --no-install-recommends no-such-package-xyz" in result.stderr


def test_empty_list(tmp_path: Path) -> None:
    bin_dir = _toolbox(tmp_path, None)
    assert _run("# nothing\n", tmp_path, str(bin_dir)).returncode == 0
