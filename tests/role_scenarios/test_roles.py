"""`molecule test` for every scenario of the collection (extensions/molecule/<name>): create,
converge, idempotence (a second converge changes nothing), verify, destroy, with the podman
driver on the image image.py builds. Run alone with `make test-molecule`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, prerequisite
from role_scenarios.image import podman_env
from wheelhouse import build_wheelhouse

COLLECTION = REPO / "collections" / "ansible_collections" / "micado" / "core"
SCENARIOS = sorted(p.parent.name for p in (COLLECTION / "extensions" / "molecule").glob(
    "*/molecule.yml"))

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def molecule_env() -> dict[str, str]:
    venv_bin = Path(sys.executable).parent
    prerequisite(os.geteuid() == 0, "root (podman with systemd containers)")
    prerequisite(shutil.which("podman") is not None, "podman (apt-get install podman runc)")
    prerequisite(shutil.which("runc") is not None, "runc (crun cannot run here)")
    prerequisite((venv_bin / "molecule").exists(), "molecule in the venv")
    from role_scenarios.image import ensure_image  # builds the test bed's cache if needed

    return {**podman_env(), "PATH": f"{venv_bin}:{os.environ['PATH']}",
            "MICADO_MOLECULE_IMAGE": ensure_image(),
            "MICADO_WHEELHOUSE": str(build_wheelhouse()),
            "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "PY_COLORS": "0"}


# Roles that configure no host: they run on the controller's host against cloud and Kubernetes
# APIs, so they are converged by ansible-runner against those APIs (moto, the real OpenStack
# services, a Kubernetes API server) in these test files instead of a molecule container.
API_ROLE_TESTS = {"cloud_node": REPO / "tests" / "integration" / "test_cloud_node_ec2.py"}


def test_every_role_has_a_scenario() -> None:
    roles = {p.name for p in (COLLECTION / "roles").iterdir() if p.is_dir()}
    covered = set(SCENARIOS) | ({"k3s_server", "k3s_agent"} if "k3s" in SCENARIOS else set())
    for role, test_file in API_ROLE_TESTS.items():
        assert role in test_file.read_text(), f"{test_file} does not run {role}"
        covered.add(role)
    assert roles <= covered, f"roles without a molecule scenario: {sorted(roles - covered)}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario: str, molecule_env: dict[str, str]) -> None:
    done = subprocess.run(["molecule", "test", "-s", scenario], cwd=COLLECTION,
                          env=molecule_env, capture_output=True, text=True, timeout=1800,
                          check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"{step}: Executed: Successful" in output, f"{step} did not run:\n{output[-4000:]}"
