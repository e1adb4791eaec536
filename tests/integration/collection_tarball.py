"""The micado.core collection as a user gets it: `make collection`'s tarball
(scripts/build-collection, the controller's wheel inside), installed with `ansible-galaxy
collection install` (offline, --no-deps: its dependencies come with the `ansible` package).
test_collection_install.py checks the tarball itself; test_site.py deploys the bed from it."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

from conftest import REPO

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
WHEEL = f"micado-{VERSION}-py3-none-any.whl"


def build_tarball(out: Path) -> Path:
    """`make collection` into `out`; the tarball's path."""
    started = time.monotonic()
    done = subprocess.run([str(REPO / "scripts" / "build-collection"), str(out)], cwd=REPO,
                          env={**os.environ, "VENV": str(Path(sys.executable).parent.parent)},
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    print(f"\ncollection tarball {path.name}: {path.stat().st_size / 1024:.0f} KiB, "
          f"built in {time.monotonic() - started:.1f} s")
    return path


def install_tarball(tarball: Path, root: Path) -> Path:
    """The tarball installed into `root`/collections, as a user would; that path."""
    collections = root / "collections"
    collections.mkdir(parents=True, exist_ok=True)
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    # --force: a micado.core of the same version elsewhere (~/.ansible/collections, where
    # molecule puts it) would otherwise count as installed and leave this path empty
    done = subprocess.run([str(galaxy), "collection", "install", "--no-deps", "--force", "-p",
                           str(collections), str(tarball)], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (collections / "ansible_collections" / "micado" / "core" / "MANIFEST.json").is_file()
    return collections


def wheel_in(tarball: Path) -> bytes:
    """The controller's wheel the tarball ships."""
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(f"roles/controller/files/{WHEEL}")
        assert member is not None
        return member.read()
