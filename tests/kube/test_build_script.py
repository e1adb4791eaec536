"""scripts/build-cluster-bins: its cache is keyed by the pinned versions and trusted only while
the SHA256SUMS manifest matches. These run before the cluster tests (seconds, nothing is
built)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import prerequisite
from kube.cluster import BINARIES, BUILD_SCRIPT, KWOK_STAGES

MODULE = BUILD_SCRIPT.parent / "cluster-bins"


def run(cache: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(BUILD_SCRIPT), *args], capture_output=True, text=True,
                          timeout=120, check=False,
                          env={**os.environ, "MICADO_CLUSTER_BINS_CACHE": str(cache), **env})
    prerequisite("the go command (Go >= 1.26) is needed" not in done.stderr, "Go >= 1.26")
    return done


def pinned(module: str) -> str:
    for line in (MODULE / "go.mod").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == module and words[1].startswith("v"):
            return words[1]
    raise AssertionError(f"{module} is not required in {MODULE / 'go.mod'}")


def fake_build(directory: Path) -> None:
    """Files where the binaries go and a manifest of them, as a finished build leaves them."""
    directory.mkdir(parents=True)
    lines = []
    for name in (*BINARIES, KWOK_STAGES, "VERSIONS"):
        (directory / name).write_text(f"not really {name}\n")
        digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}\n")
    (directory / "SHA256SUMS").write_text("".join(lines))


def test_the_cache_directory_names_the_pinned_versions(tmp_path: Path) -> None:
    done = run(tmp_path, "--dir")
    assert done.returncode == 0, done.stderr
    directory = Path(done.stdout.strip())
    assert directory.parent == tmp_path
    for module in ("k8s.io/kubernetes", "go.etcd.io/etcd/server/v3", "sigs.k8s.io/kwok"):
        assert pinned(module) in directory.name
    assert not directory.exists()  # --dir only names it


def test_a_complete_build_is_reused_without_building(tmp_path: Path) -> None:
    directory = Path(run(tmp_path, "--dir").stdout.strip())
    fake_build(directory)
    # no module proxy at all: any attempt to build would fail
    done = run(tmp_path, GOPROXY="off")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(directory)
    assert "reusing" in done.stderr


def test_a_binary_that_no_longer_matches_the_manifest_is_not_reused(tmp_path: Path) -> None:
    directory = Path(run(tmp_path, "--dir").stdout.strip())
    fake_build(directory)
    (directory / "kube-apiserver").write_text("tampered\n")
    done = run(tmp_path, GOPROXY="off")
    assert done.returncode != 0
    assert "reusing" not in done.stderr
    assert "names no module proxy" in done.stderr


def test_the_build_never_falls_back_to_version_control(tmp_path: Path) -> None:
    done = run(tmp_path, GOPROXY="direct")
    assert done.returncode != 0
    assert "names no module proxy" in done.stderr


@pytest.mark.parametrize("niceness", ["x", "20", "-5"])
def test_a_bad_niceness_is_refused_before_anything_is_built(tmp_path: Path, niceness: str) -> None:
    done = run(tmp_path / "cache", MICADO_BUILD_NICE=niceness)
    assert done.returncode == 1
    assert done.stderr == ("build-cluster-bins: error: MICADO_BUILD_NICE must be a niceness from "
                           f"0 to 19 (got '{niceness}')\n")
    assert not (tmp_path / "cache").exists()


def make_dry_run(target: str, tmp_path: Path) -> str:
    prerequisite(shutil.which("make") is not None, "make")
    return subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
                          cwd=BUILD_SCRIPT.parents[1], capture_output=True, text=True,
                          check=True).stdout


def test_make_test_cluster_builds_then_runs_only_the_cluster_tests(tmp_path: Path) -> None:
    commands = make_dry_run("test-cluster", tmp_path)
    assert commands.index("scripts/build-cluster-bins") < commands.index("pytest -m cluster")


def test_make_test_runs_the_suite_through_run_tests(tmp_path: Path) -> None:
    """scripts/run-tests builds the control plane and runs the cluster tests too
    (tests/kube/test_run_tests.py)."""
    commands = make_dry_run("test", tmp_path)
    assert f"PYTHON={tmp_path / 'venv' / 'bin' / 'python'} RUN_TESTS_SETUP=" in commands
    assert "scripts/run-tests\n" in commands, commands
