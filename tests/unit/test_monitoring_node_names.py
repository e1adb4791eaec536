"""The monitoring role names kubelet, cAdvisor and node-exporter targets after the Kubernetes
Node, as k3s names it (`inventory_hostname | lower`, or the k3s roles' `*_node_name`), so that
MiCADO's own queries (`container_cpu_usage_seconds_total{instance=~"worker-node.*"}`) match.

The role's template is rendered by ansible-playbook with the role's defaults for an inventory
whose names are not lower case and whose hosts' `nodename` differs from the Node name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, prerequisite

ROLE = REPO / "collections" / "ansible_collections" / "micado" / "core" / "roles" / "monitoring"
INVENTORY = {"all": {"children": {
    "masters": {"hosts": {"Master-1": {"ansible_host": "10.0.0.1",
                                       "ansible_facts": {"nodename": "ip-10-0-0-1"}}}},
    "workers": {"hosts": {"Worker-A": {"ansible_host": "10.0.0.2",
                                       "ansible_facts": {"nodename": "ip-10-0-0-2"}},
                          "worker-b": {"ansible_host": "10.0.0.3",
                                       "k3s_agent_node_name": "custom-b"}}},
}}}


def render(tmp_path: Path, kubernetes_sd: bool) -> dict[str, Any]:
    """prometheus.yml as the role writes it on the master, parsed."""
    prerequisite(shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
                 is not None, "ansible-playbook in the venv")
    out = tmp_path / "prometheus.yml"
    play = [{"name": "Render the monitoring role's prometheus.yml", "hosts": "Master-1",
             "connection": "local", "gather_facts": False,
             "vars_files": [str(ROLE / "defaults" / "main.yml")],
             "vars": {"monitoring_kubernetes_sd": kubernetes_sd,
                      "ansible_python_interpreter": sys.executable},
             "tasks": [{"name": "Template it", "ansible.builtin.template": {
                 "src": str(ROLE / "templates" / "prometheus.yml.j2"), "dest": str(out),
                 "mode": "0644"}}]}]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(INVENTORY))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["ansible-playbook", "-i", "inventory.yml", "play.yml"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return yaml.safe_load(out.read_text())


def job(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(j for j in config["scrape_configs"] if j["job_name"] == name)


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return render(tmp_path_factory.mktemp("static"), kubernetes_sd=False)


@pytest.mark.parametrize("name", ["kubelet-resource", "kubelet-cadvisor", "node"])
def test_static_targets_carry_the_kubernetes_node_name(static: dict[str, Any], name: str) -> None:
    targets = job(static, name)["static_configs"]
    assert [t["labels"]["instance"] for t in targets] == ["master-1", "worker-a", "custom-b"]
    if name != "node":
        assert [t["labels"]["__metrics_path__"].split("/")[4] for t in targets] == \
            ["master-1", "worker-a", "custom-b"]


def test_kubernetes_discovery_sets_instance_to_the_node_name(tmp_path: Path) -> None:
    """Without the relabelling, `instance` would be the API server's address for every node."""
    config = render(tmp_path, kubernetes_sd=True)
    for name in ("kubelet-resource", "kubelet-cadvisor"):
        rules = job(config, name)["relabel_configs"]
        assert {"source_labels": ["__meta_kubernetes_node_name"],
                "target_label": "instance"} in rules, rules
