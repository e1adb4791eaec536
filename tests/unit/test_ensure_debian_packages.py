"""scripts/ensure-debian-packages: idempotent, and clear when it cannot install."""

from __future__ import annotations

import os
import re
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


# --- never upgrading the host: the real apt-get and dpkg-query on a repository of our own ---

def _package(name: str, version: str, depends: str = "") -> str:
    fields = [f"Package: {name}", f"Version: {version}", "Architecture: all",
              f"Filename: {name}_{version}_all.deb", "Size: 100", f"Description: {name}"]
    if depends:
        fields.insert(3, f"Depends: {depends}")
    return "\n".join(fields) + "\n"


def _apt_world(tmp_path: Path) -> dict[str, str]:
    """An apt configuration and dpkg database of their own: base 1.0 is installed, the repository
    has base 1.0 and 1.1, addon 1.0 (needs base 1.0) and 1.1 (needs base 1.1), and only-new 1.1
    (needs base 1.1): what systemd-container and systemd look like after a point release. gone
    0.9 is installed too, but the repository has only gone 1.0 and after 1.0 (needs gone 1.0):
    login and uidmap once the archive dropped the installed login."""
    prerequisite(shutil.which("apt-get") is not None and shutil.which("dpkg-query") is not None,
                 "apt-get and dpkg-query (a Debian system)")
    root = tmp_path / "apt"
    for sub in ("repo", "lists/partial", "cache/archives/partial", "admin/updates", "admin/info",
                "parts", "prefs"):
        (root / sub).mkdir(parents=True)
    (root / "repo" / "Packages").write_text("\n".join([
        _package("mc-base", "1.0"), _package("mc-base", "1.1"),
        _package("mc-addon", "1.0", "mc-base (= 1.0)"),
        _package("mc-addon", "1.1", "mc-base (= 1.1)"),
        _package("mc-only-new", "1.1", "mc-base (= 1.1)"),
        _package("mc-gone", "1.0"), _package("mc-after", "1.0", "mc-gone (= 1.0)")]))
    (root / "admin" / "status").write_text(
        "Package: mc-base\nStatus: install ok installed\nPriority: optional\nVersion: 1.0\n"
        "Architecture: all\nMaintainer: t <t@example.org>\nDescription: base\n\n"
        "Package: mc-gone\nStatus: install ok installed\nPriority: optional\nVersion: 0.9\n"
        "Architecture: all\nMaintainer: t <t@example.org>\nDescription: gone\n")
    (root / "sources.list").write_text(f"deb [trusted=yes] file:{root / 'repo'} ./\n")
    (root / "apt.conf").write_text("".join(f'{key} "{value}";\n' for key, value in {
        "Dir::State::status": root / "admin" / "status", "Dir::State::Lists": root / "lists",
        "Dir::Cache": root / "cache", "Dir::Etc::SourceList": root / "sources.list",
        "Dir::Etc::SourceParts": root / "parts", "Dir::Etc::Preferences": root / "prefs" / "none",
        "Dir::Etc::PreferencesParts": root / "prefs",
        "Dir::Bin::dpkg": "/bin/false"}.items()))  # never touches this system
    env = {"PATH": os.environ["PATH"], "APT_CONFIG": str(root / "apt.conf"),
           "DPKG_ADMINDIR": str(root / "admin")}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    return env


def _ensure(tmp_path: Path, env: dict[str, str], packages: str, *options: str,
            ) -> subprocess.CompletedProcess[str]:
    listed = tmp_path / "packages.txt"
    listed.write_text(packages)
    return subprocess.run([str(SCRIPT), *options, str(listed)], capture_output=True, text=True,
                          env=env, check=False)


def _upgrades(env: dict[str, str], args: list[str]) -> list[str]:
    simulated = subprocess.run(["apt-get", "install", "-s", "--no-install-recommends", *args],
                               env=env, capture_output=True, text=True, check=True).stdout
    return [line for line in simulated.splitlines() if re.match(r"Inst \S+ \[", line)]


def test_a_package_comes_at_the_version_of_what_is_installed(tmp_path: Path) -> None:
    env = _apt_world(tmp_path)
    assert _upgrades(env, ["mc-addon"]), "the newest addon would upgrade base: the case at hand"
    result = _ensure(tmp_path, env, "mc-base\nmc-addon\n", "--dry-run")
    assert result.returncode == 0, result.stderr
    said, would = result.stdout.splitlines()
    assert said == "the tests need these Debian packages, not installed yet: mc-addon"
    assert would == "would run: apt-get install -y --no-install-recommends mc-addon=1.0"
    assert _upgrades(env, ["mc-addon=1.0"]) == []


def test_not_root_gets_the_command_that_upgrades_nothing(tmp_path: Path) -> None:
    env = _apt_world(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    (bin_dir / "id").chmod(0o755)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    result = _ensure(tmp_path, env, "mc-addon\n")
    assert result.returncode == 1
    assert "sudo apt-get install -y --no-install-recommends mc-addon=1.0" in result.stderr


def test_refuses_what_only_an_upgrade_can_install(tmp_path: Path) -> None:
    env = _apt_world(tmp_path)
    for options in (("--dry-run",), ()):  # as root, too: it refuses before installing anything
        result = _ensure(tmp_path, env, "mc-only-new\n", *options)
        assert result.returncode == 1
        assert "would upgrade packages already installed" in result.stderr
        assert "mc-base 1.0 -> 1.1" in result.stderr
        assert "would run" not in result.stdout and "+ apt-get" not in result.stdout


def test_upgrades_what_the_archive_no_longer_has_and_says_so(tmp_path: Path) -> None:
    env = _apt_world(tmp_path)
    result = _ensure(tmp_path, env, "mc-after\n", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "would run: apt-get install -y --no-install-recommends mc-after")
    assert "this upgrades mc-gone 0.9 -> 1.0: the archive no longer has 0.9" in result.stderr


def test_refuses_an_avoidable_upgrade_beside_an_unavoidable_one(tmp_path: Path) -> None:
    env = _apt_world(tmp_path)
    result = _ensure(tmp_path, env, "mc-after\nmc-only-new\n", "--dry-run")
    assert result.returncode == 1
    assert "mc-base 1.0 -> 1.1" in result.stderr
    assert "mc-gone 0.9" not in result.stderr.split("would upgrade", 1)[1]
