"""The micado controller's identity as the collection ships it, made real on a test cluster.

Ansible renders the k3s_server role's own templates with the role's defaults: first
micado-controller.yaml.j2 (Namespace, ServiceAccount, its token Secret, ClusterRole and binding),
which is applied with the admin's client as k3s would apply its auto-deploy manifest; then, once
the controller manager has filled the token Secret, kubeconfig.j2 from that Secret, as
tasks/kubeconfig.yml does on a server (there through `k3s kubectl get secret -o json`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, utils

from conftest import REPO
from integration.prometheus_fixture import wait_until

ROLE = REPO / "collections" / "ansible_collections" / "micado" / "core" / "roles" / "k3s_server"
TOKEN_TIMEOUT = 60.0


def role_defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def render(template: str, dest: Path, variables: dict) -> Path:
    """One of the role's templates through Ansible's own template module, role defaults first."""
    work = dest.parent
    extra = work / f"{dest.name}.vars.yml"
    extra.touch(mode=0o600)
    extra.write_text(yaml.safe_dump(variables))
    play = work / f"{dest.name}.play.yml"
    play.write_text(yaml.safe_dump([{
        "name": f"Render the k3s_server role's {template}",
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(extra)],
        "tasks": [{"name": "Template", "no_log": True, "ansible.builtin.template": {
            "src": str(ROLE / "templates" / template), "dest": str(dest), "mode": "0600"}}],
    }], sort_keys=False))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    try:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
             "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    finally:
        extra.unlink()
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return dest


@dataclass(frozen=True)
class ControllerIdentity:
    manifest: Path  # the rendered micado-controller.yaml, as applied
    kubeconfig: Path  # the rendered kubeconfig.j2 (0600): the controller's ServiceAccount token

    def cluster_role(self) -> dict:
        return next(doc for doc in yaml.safe_load_all(self.manifest.read_text())
                    if doc and doc["kind"] == "ClusterRole")


def install(api: client.ApiClient, work: Path, api_port: int) -> ControllerIdentity:
    """Apply the role's controller manifest and build the controller's kubeconfig as the role
    does."""
    defaults = role_defaults()
    manifest = render("micado-controller.yaml.j2", work / "micado-controller.yaml", {})
    utils.create_from_yaml(api, yaml_objects=[
        doc for doc in yaml.safe_load_all(manifest.read_text()) if doc])
    namespace = defaults["k3s_server_controller_namespace"]
    name = f"{defaults['k3s_server_controller_account']}-token"
    core = client.CoreV1Api(api)

    def filled() -> dict | None:
        secret = core.read_namespaced_secret(name, namespace)
        return secret.data if secret.data and secret.data.get("token") else None

    data = wait_until(filled, TOKEN_TIMEOUT, 0.2)
    assert data, f"the controller manager never filled the Secret {namespace}/{name}"
    kubeconfig = render("kubeconfig.j2", work / "controller.kubeconfig", {
        "k3s_server_api_port": api_port,
        "k3s_server_controller_secret": {"stdout": json.dumps({"data": data})},
    })
    return ControllerIdentity(manifest, kubeconfig)
