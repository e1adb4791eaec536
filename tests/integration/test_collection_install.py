"""The micado.core collection as a user gets it: `make collection`'s tarball, installed with
`ansible-galaxy collection install` (offline, --no-deps: its dependencies come with the
`ansible` package), then `ansible-playbook micado.core.site` from outside the repository on
the test bed, with the controller role at its default install settings.

PyPI has no micado release and the bed's hosts have no internet: the default install must make
the wheelhouse on the control node from the wheel inside the tarball and install it offline.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from test_site import Run, make_inventory, playbook

from conftest import REPO
from testbed.bed import TestBed
from testbed.fixture import testbed  # noqa: F401 - the session fixture

pytestmark = pytest.mark.integration

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
WHEEL = f"micado-{VERSION}-py3-none-any.whl"
CONTROLLER_TASKS = ("Build or reuse the wheelhouse", "Copy the wheelhouse", "Unpack the wheels",
                    "Install the micado package")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make collection` (scripts/build-collection) into a scratch directory."""
    out = tmp_path_factory.mktemp("collection")
    started = time.monotonic()
    done = subprocess.run([str(REPO / "scripts" / "build-collection"), str(out)], cwd=REPO,
                          env={**os.environ, "VENV": str(Path(sys.executable).parent.parent)},
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    print(f"\ncollection tarball {path.name}: {path.stat().st_size / 1024:.0f} KiB, "
          f"built in {time.monotonic() - started:.1f} s")
    return path


@pytest.fixture(scope="module")
def installed(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collections path the tarball is installed into, as a user would."""
    collections = tmp_path_factory.mktemp("user") / "collections"
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    # --force: a micado.core of the same version elsewhere (~/.ansible/collections, where
    # molecule puts it) would otherwise count as installed and leave this path empty
    done = subprocess.run([str(galaxy), "collection", "install", "--no-deps", "--force", "-p",
                           str(collections), str(tarball)], cwd=collections.parent,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (collections / "ansible_collections" / "micado" / "core" / "MANIFEST.json").is_file()
    return collections


def wheel_in(tarball: Path) -> bytes:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(f"roles/controller/files/{WHEEL}")
        assert member is not None
        return member.read()


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


@pytest.fixture(scope="module")
def deployed(testbed: TestBed, installed: Path,  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """micado.core.site from the installed tarball; then the controller again, and checked."""
    root = tmp_path_factory.mktemp("collection-site")
    inventory = make_inventory(testbed, root, wheelhouse=None)  # no controller_* settings
    # a fresh bed host has no apt lists yet (a real one has), and check mode does not update them
    testbed.ssh("master", "apt-get update -qq")
    fresh_check = playbook(inventory, "site.yml", "--tags", "controller", "--check",
                           collections=installed)
    first = playbook(inventory, "site.yml", collections=installed)
    (root / "first.log").write_text(first.output)
    for name, run in (("check mode on fresh hosts", fresh_check), ("first run", first)):
        timings = [line for line in run.output.splitlines()
                   if any(task in line for task in CONTROLLER_TASKS) and "---" in line]
        print(f"\nmicado.core.site from the tarball, {name}: {run.seconds:.1f} s; "
              "controller install:\n" + "\n".join(timings))
    assert first.returncode == 0, first.output[-6000:]
    again = playbook(inventory, "site.yml", "--tags", "controller", collections=installed)
    check = playbook(inventory, "site.yml", "--tags", "controller", "--check", "--diff",
                     collections=installed)
    yield {"fresh_check": fresh_check, "first": first, "again": again, "check": check,
           "inventory": inventory, "bed": testbed}


def test_the_default_install_runs_the_tarballs_controller(deployed: dict[str, Any],
                                                         tarball: Path) -> None:
    bed: TestBed = deployed["bed"]
    assert bed.ssh("master", "systemctl is-active micado-controller").strip() == "active"
    assert bed.ssh("master", "systemctl is-enabled micado-controller").strip() == "enabled"
    installed = bed.ssh("master", "/opt/micado/venv/bin/python -c 'import importlib.metadata as m;"
                                  " print(m.version(\"micado\"))'").strip()
    assert installed == VERSION
    shipped = bed.ssh("master", f"sha256sum /opt/micado/wheelhouse/{WHEEL}").split()[0]
    assert shipped == hashlib.sha256(wheel_in(tarball)).hexdigest()

    ip = bed.hosts["master"]
    ca_file = deployed["inventory"].parent / "ca.crt"
    ca_file.write_text(bed.ssh("master", "cat /etc/micado/tls/ca.crt"))
    health = requests.get(f"https://{ip}/healthz", verify=str(ca_file), timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    token = bed.ssh("master", "cat /etc/micado/api-token").strip()
    apps = requests.get(f"https://{ip}/v1/apps", verify=str(ca_file), timeout=10,
                        headers={"Authorization": f"Bearer {token}"})
    assert apps.status_code == 200 and apps.json() == {"apps": []}


def test_check_mode_on_fresh_hosts_runs_the_default_install(deployed: dict[str, Any]) -> None:
    """Before anything is installed: the control node builds (only its cache changes), the
    host reports what it would do, nothing fails."""
    result: Run = deployed["fresh_check"]
    assert result.returncode == 0, result.output[-6000:]
    assert result.recap()["master"]["failed"] == 0
    assert "Build or reuse the wheelhouse on the control node" in result.output


@pytest.mark.parametrize("run", ["again", "check"])
def test_a_rerun_rebuilds_and_reinstalls_nothing(deployed: dict[str, Any], run: str) -> None:
    """The wheelhouse comes from the control node's cache, the copy is byte-identical, pip
    sees the version installed: changed=0, in check mode too."""
    result: Run = deployed[run]
    assert result.returncode == 0, result.output[-6000:]
    recap = result.recap()
    assert "master" in recap
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), \
        "\n".join(result.changed_tasks()) or result.output[-4000:]
    assert "Build or reuse the wheelhouse on the control node" in result.output
