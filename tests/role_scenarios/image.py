"""The container image molecule runs the roles on: the test bed's Debian 12 root file system
with the bed's local apt repository inside it (file:/srv/micado-apt), so the roles install
their packages as on a real host, without internet. Built with `podman import` (no registry,
no Containerfile, nothing downloaded), tagged by the content it is made of, built once.

podman needs two fixes on these machines (../shared/research/test-infra.md §5b), both in
containers.conf next to this file, which CONTAINERS_CONF points at: ulimits within the hard
limits (no CAP_SYS_RESOURCE) and runc (crun cannot run on the hybrid cgroup hierarchy).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from testbed.bed import TestBed

HERE = Path(__file__).resolve().parent
CONTAINERS_CONF = HERE / "containers.conf"
IMAGE = "localhost/micado-molecule"
APT_DIR = "srv/micado-apt"


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def image_tag(rootfs: Path, repo: Path) -> str:
    digest = hashlib.sha256(f"{rootfs.name}\n{repo.name}\n{APT_DIR}\n1".encode()).hexdigest()
    return f"{IMAGE}:{digest[:16]}"


def ensure_image(bed: TestBed | None = None) -> str:
    """The image's tag; imported first when podman does not have it."""
    bed = bed or TestBed()
    rootfs, repo = bed.image_parts()
    tag = image_tag(rootfs, repo)
    env = podman_env()
    if subprocess.run(["podman", "image", "exists", tag], env=env, check=False).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory(prefix="micado-molecule-") as tmp:
        extra = Path(tmp) / "extra"
        (extra / "etc/apt").mkdir(parents=True)
        (extra / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:/{APT_DIR} ./\n")
        # Dated like an image's lists, older than an hour: apt's cache_valid_time refreshes.
        (extra / "var/lib/apt/lists").mkdir(parents=True)
        os.utime(extra / "var/lib/apt/lists", (0, 0))
        archive = Path(tmp) / "image.tar"
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner",
                        "--exclude=./etc/apt/sources.list", "--exclude=./var/lib/apt/lists",
                        "-cf", str(archive), "."], check=True)
        # only these entries (not their parents again: podman refuses duplicate paths)
        subprocess.run(["tar", "-C", str(extra), "--numeric-owner", "--no-recursion", "-rf",
                        str(archive), "./etc/apt/sources.list", "./var/lib/apt/lists"],
                       check=True)
        subprocess.run(["tar", "-C", str(repo.parent), "--numeric-owner",
                        f"--transform=s,^{repo.name},{APT_DIR},", "-rf", str(archive),
                        repo.name], check=True)
        done = subprocess.run(["podman", "import", "--change", 'CMD ["/lib/systemd/systemd"]',
                               str(archive), tag], env=env, check=False, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f"podman import failed: {done.stderr.strip()}")
    return tag
