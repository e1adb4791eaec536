"""The session-scoped `testbed` fixture: the four-host bed up once per session, down at the end.

Import it into a test module (``from testbed.fixture import testbed``); it is not in a
conftest.py on purpose (a second module named ``conftest`` would shadow tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import prerequisite
from testbed.bed import TestBed, debian_mirrors, mirror_reachable

TOOLS = ("debootstrap", "systemd-nspawn", "ip", "ssh", "ssh-keygen", "dpkg-scanpackages", "tar",
         "zstd", "mount", "chroot")
INSTALL_HINT = "scripts/ensure-debian-packages tests/debian-packages.txt"


def check_prerequisites(bed: TestBed) -> None:
    """Skip (locally) or fail (CI=true) unless this machine can run the bed."""
    prerequisite(os.geteuid() == 0, "root (the test bed mounts overlays, creates network "
                                    "namespaces and a bridge)")
    for tool in TOOLS:
        prerequisite(shutil.which(tool) is not None, f"`{tool}` on PATH ({INSTALL_HINT})")
    prerequisite("overlay" in Path("/proc/filesystems").read_text(), "overlayfs in the kernel")
    prerequisite(Path("/sys/fs/cgroup").is_dir(), "cgroups mounted at /sys/fs/cgroup")
    if not bed.cached():
        mirror, _ = debian_mirrors()
        prerequisite(mirror_reachable(mirror),
                     f"the Debian mirror {mirror} (first build of the test bed's root file "
                     f"system and apt repository, cached in {bed.cache_dir} afterwards)")


@pytest.fixture(scope="session")
def testbed() -> Iterator[TestBed]:
    """master, worker1, worker2, edge1 booted and reachable over SSH; `.inventory` for Ansible."""
    bed = TestBed()
    check_prerequisites(bed)
    try:
        bed.up()
        yield bed
    finally:
        bed.down()
