"""OpenStack services from PyPI, at pinned versions, in a virtualenv of their own, cached.

They cannot share the test venv (hundreds of pinned server-side dependencies, eventlet). The
venv lives under ~/.cache/micado-tests/, keyed by the pins and by the files copied into it, is
built from PyPI on first use (a lock file keeps parallel test runs from building it twice) and
reused after. Our ML2 driver (openstack/micado_ml2_bind_all.py) is added to it as a module with
an entry point, without a build backend.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cached_venv import venv_python

PINS = (
    "keystone==30.0.0",
    "openstack-placement==16.0.0",
    "nova==34.0.0",
    "glance==33.0.0",
    "neutron==29.0.0",
    "gunicorn==27.0.1",
)
HERE = Path(__file__).resolve().parent / "openstack"
ML2_DRIVER = HERE / "micado_ml2_bind_all.py"
ML2_ENTRY_POINT = "micado_bind_all"


def openstack_python(root: Path | None = None) -> Path:
    """The interpreter of the OpenStack venv, built first if it is not cached yet."""
    key = hashlib.sha256("\n".join(PINS).encode() + ML2_DRIVER.read_bytes()).hexdigest()[:12]
    return venv_python(f"openstack-{key}", list(PINS), root, _add_ml2_driver)


def _add_ml2_driver(venv: Path) -> None:
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / ML2_DRIVER.name).write_bytes(ML2_DRIVER.read_bytes())
    dist = site / "micado_ml2_bind_all-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: micado-ml2-bind-all\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[neutron.ml2.mechanism_drivers]\n"
        f"{ML2_ENTRY_POINT} = {ML2_DRIVER.stem}:BindAllMechanismDriver\n")
    (dist / "RECORD").write_text("")
