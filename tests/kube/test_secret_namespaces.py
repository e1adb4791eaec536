"""The k3s_server role refuses Secret namespaces that would give the controller the cluster's
own Secrets (kube-system, ...) or that are not namespace names, before it writes anything: its
validate.yml, run by Ansible on localhost with the role's defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from kube.controller_identity import ROLE


def validate(tmp_path: Path, namespaces: object) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Check the k3s_server role's settings", "hosts": "masters",
        "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml")],
        "tasks": [{"name": "Validate",
                   "ansible.builtin.import_tasks": str(ROLE / "tasks" / "validate.yml")}],
    }], sort_keys=False))
    extra = tmp_path / "vars.yml"  # extra vars: above the role defaults read as vars_files
    extra.write_text(yaml.safe_dump({"k3s_server_start": False,
                                     "k3s_server_controller_secret_namespaces": namespaces}))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"masters": {"hosts": {"localhost": {}}}}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{extra}", str(play)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_app_namespaces_are_accepted(tmp_path: Path) -> None:
    done = validate(tmp_path, ["default", "web-apps"])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("namespaces", [["default", "kube-system"], ["Not_A_Name"], "default"])
def test_the_clusters_own_or_malformed_namespaces_are_refused(
        tmp_path: Path, namespaces: object) -> None:
    done = validate(tmp_path, namespaces)
    assert done.returncode != 0
    assert "k3s_server_controller_secret_namespaces" in done.stdout
