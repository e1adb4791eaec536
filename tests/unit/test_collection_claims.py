"""What the collection claims matches what is tested: the operating systems preflight accepts are
the ones the test bed runs, and its Python minimums are the package's (on the controller's host)
and Ansible's (elsewhere)."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import REPO
from testbed.bed import SUITE

COLLECTION = REPO / "collections" / "ansible_collections" / "micado" / "core"
PREFLIGHT = yaml.safe_load((COLLECTION / "roles/preflight/defaults/main.yml").read_text())
# Debian's code names -> the version ansible_distribution_major_version reports
DEBIAN_RELEASES = {"bookworm": "12", "trixie": "13"}


def test_preflight_accepts_only_what_the_test_bed_runs() -> None:
    assert PREFLIGHT["preflight_supported_os"] == {"Debian": [DEBIAN_RELEASES[SUITE]]}


def test_no_role_or_readme_claims_an_untested_os() -> None:
    for meta in COLLECTION.glob("roles/*/meta/main.yml"):
        platforms = yaml.safe_load(meta.read_text())["galaxy_info"]["platforms"]
        assert platforms == [{"name": "Debian", "versions": [SUITE]}], meta
    readme = (COLLECTION / "README.md").read_text()
    supported = re.search(r"Supported hosts: ([^.]*)", readme)
    assert supported is not None and supported.group(1).startswith("Debian 12")
    assert "Ubuntu 22.04" not in readme and "24.04" not in readme


def test_the_controller_host_needs_the_python_of_the_package() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    required = re.fullmatch(r">=\s*(\d+\.\d+)", pyproject["project"]["requires-python"])
    assert required is not None
    assert PREFLIGHT["preflight_min_python_controller"] == required.group(1)


def test_other_hosts_need_the_python_ansible_needs() -> None:
    from ansible.module_utils import basic

    oldest = ".".join(str(part) for part in basic._PY_MIN)
    assert PREFLIGHT["preflight_min_python"] == oldest
