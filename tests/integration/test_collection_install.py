"""The micado.core collection tarball as a user gets it (`make collection`): what it ships, and
that once installed with `ansible-galaxy collection install` its playbooks run by name away from
the repository. test_site.py deploys the test bed from this tarball, with the controller role's
default install (the tarball's wheel), so the deployment is checked once, there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from collection_tarball import WHEEL, build_tarball, install_tarball

from conftest import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tarball(tmp_path_factory.mktemp("collection"))


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_tarball(tarball, tmp_path_factory.mktemp("user"))


def test_the_tarball_ships_the_playbooks_and_the_controller_wheel(tarball: Path) -> None:
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"playbooks/site.yml", "playbooks/upgrade.yml", "playbooks/reset.yml",
            "playbooks/scale_nodes.yml", "roles/cloud_node/meta/argument_specs.yml",
            f"roles/controller/files/{WHEEL}",
            "roles/controller/files/micado_wheelhouse.py"} <= names
    for unwanted in ("extensions/molecule", "tests/output", "__pycache__"):
        assert not [n for n in names if unwanted in n], unwanted
    assert not (REPO / "collections" / "ansible_collections" / "micado" / "core" / "roles"
                / "controller" / "files" / WHEEL).exists(), "the build wrote into the checkout"


@pytest.mark.parametrize("name", ["site", "upgrade", "reset", "scale_nodes"])
def test_the_installed_collection_runs_its_playbooks_by_name(installed: Path, name: str) -> None:
    """Away from the repository (no ansible.cfg, no collections/ next to it)."""
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                           "localhost,", f"micado.core.{name}", "--syntax-check"],
                          cwd=installed.parent, capture_output=True, text=True, timeout=120,
                          env={**env, "ANSIBLE_COLLECTIONS_PATH": str(installed)}, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(installed / "ansible_collections" / "micado" / "core" / "playbooks") in done.stdout
