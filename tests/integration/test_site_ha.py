"""`site.yml` with `micado_ha: true` on the test bed: three k3s servers (master, worker1, worker2)
and one agent (edge1). What HA promises and what must hold with it: exactly one controller (on
the first server), etcd's ports open between the servers and to nobody else, agents holding the
agent token only, and a secret in `k3s_server_config` that never reaches the output, not even
with --check --diff.

The bed is brought up afresh for this module (test_site.py deploys the other layout on it).
k3s itself cannot run here (`k3s_server_start: false`, as in test_site.py).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra
import testinfra.host
import yaml
from test_site import Run, make_inventory, playbook, ssh_hosts_of

from conftest import prerequisite
from testbed.bed import TestBed
from testbed.fixture import testbed  # noqa: F401 - the session fixture
from wheelhouse import build_wheelhouse

pytestmark = pytest.mark.integration

SERVERS = ("master", "worker1", "worker2")
AGENT = "edge1"
# In k3s_server_config as a site would put an etcd S3 backup key; changed before the check run
# so that a diff of config.yaml would show both values.
SECRET = "s3-key-only-in-k3s-server-config-1"
SECRET_CHANGED = "s3-key-only-in-k3s-server-config-2"
PROBE = ("import socket,sys\n"
         "s=socket.socket(); s.settimeout(3)\n"
         "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
         "except ConnectionRefusedError: print('refused')\n"
         "except TimeoutError: print('dropped')\n")


def ha_inventory(bed: TestBed, root: Path, secret: str) -> Path:
    """The test_site inventory regrouped: three servers with micado_ha, edge1 as the agent."""
    inventory = make_inventory(bed, root, build_wheelhouse())
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"] = {
        "masters": {"hosts": {h: {"ansible_host": bed.hosts[h]} for h in SERVERS}},
        "workers": {"hosts": {AGENT: {"ansible_host": bed.hosts[AGENT]}}},
        "edges": {"hosts": {}},
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    set_secret(inventory, secret)
    return inventory


def set_secret(inventory: Path, secret: str) -> None:
    (inventory / "group_vars" / "all" / "zz_ha.yml").write_text(yaml.safe_dump(
        {"micado_ha": True, "k3s_server_config": {"etcd-s3-secret-key": secret}}))


@pytest.fixture(scope="module")
def deployed(testbed: TestBed, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
             ) -> Iterator[dict[str, Any]]:
    """site.yml once with the HA inventory, then --check --diff with the secret changed."""
    prerequisite(shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
                 is not None, "ansible-playbook in the venv (pip install ansible)")
    testbed.up()  # fresh hosts, whatever ran on them before
    root = tmp_path_factory.mktemp("site-ha")
    inventory = ha_inventory(testbed, root, SECRET)
    first = playbook(inventory, "site.yml")
    (root / "first.log").write_text(first.output)
    assert first.returncode == 0, first.output[-6000:]
    set_secret(inventory, SECRET_CHANGED)
    check = playbook(inventory, "site.yml", "--check", "--diff")
    (root / "check.log").write_text(check.output)
    print(f"\nsite.yml, HA layout (3 servers, 1 agent): {first.seconds:.1f} s, "
          f"--check --diff {check.seconds:.1f} s")
    yield {"first": first, "check": check, "bed": testbed}


@pytest.fixture(scope="module")
def hosts(deployed: dict[str, Any]) -> dict[str, testinfra.host.Host]:
    return ssh_hosts_of(deployed["bed"])


def test_exactly_one_controller_on_the_first_server(
        hosts: dict[str, testinfra.host.Host]) -> None:
    first = hosts["master"]
    for unit in ("micado-controller", "nginx", "prometheus", "prometheus-alertmanager"):
        assert first.service(unit).is_running, unit
    for name in ("worker1", "worker2"):
        assert not hosts[name].file("/etc/systemd/system/micado-controller.service").exists, name
        assert not hosts[name].file("/etc/micado/api-token").exists, name
        for unit in ("micado-controller", "nginx", "prometheus"):
            assert not hosts[name].service(unit).is_running, f"{unit} on {name}"
    for name in (*SERVERS, AGENT):
        assert hosts[name].service("prometheus-node-exporter").is_running, name


def reach(hosts: dict[str, testinfra.host.Host], source: str, ip: str, port: int) -> str:
    """Connect from inside `source` (its own network namespace, over SSH)."""
    return hosts[source].check_output("python3 -c %s %s %s", PROBE, ip, str(port)).strip()


def test_etcd_ports_are_open_between_the_servers_only(
        deployed: dict[str, Any], hosts: dict[str, testinfra.host.Host]) -> None:
    bed: TestBed = deployed["bed"]
    for name in SERVERS:
        # the set etcd is allowed from: exactly the other servers (not itself, not the agent)
        members = {other: hosts[name].run(
            f"nft get element inet micado_filter server_v4 {{ {ip} }}").rc == 0
            for other, ip in bed.hosts.items()}
        assert members == {h: h in SERVERS and h != name for h in bed.hosts}, name
        assert "2379-2380" in hosts[name].check_output("nft list chain inet micado_filter input")
    agent_rules = hosts[AGENT].check_output("nft list table inet micado_filter")
    assert "2379" not in agent_rules and "server_v4" not in agent_rules
    master = bed.hosts["master"]
    # nothing listens on 2379/2380 here (no k3s): refused = let through, dropped = filtered
    assert reach(hosts, "worker1", master, 2379) == "refused"
    assert reach(hosts, "worker2", master, 2380) == "refused"
    assert reach(hosts, "master", bed.hosts["worker1"], 2380) == "refused"
    assert reach(hosts, AGENT, master, 2379) == "dropped"
    assert reach(hosts, AGENT, master, 2380) == "dropped"
    assert reach(hosts, AGENT, master, 6443) == "refused"  # the agent still reaches the API


def read_yaml(host: testinfra.host.Host, path: str) -> Any:
    return yaml.safe_load(host.check_output(f"cat {path}"))


def test_servers_join_the_first_and_the_agent_holds_the_agent_token_only(
        deployed: dict[str, Any], hosts: dict[str, testinfra.host.Host]) -> None:
    bed: TestBed = deployed["bed"]
    configs = {h: read_yaml(hosts[h], "/etc/rancher/k3s/config.yaml") for h in SERVERS}
    assert configs["master"].get("cluster-init") is True and "server" not in configs["master"]
    for name in ("worker1", "worker2"):
        assert configs[name]["server"] == f"https://{bed.hosts['master']}:6443", name
        assert "cluster-init" not in configs[name]
    for config in configs.values():
        assert config["agent-token-file"] == "/etc/rancher/k3s/agent-token"
        assert config["token-file"] == "/etc/rancher/k3s/cluster-token"

    def token(host: str, name: str) -> str:
        return hosts[host].check_output(f"cat /etc/rancher/k3s/{name}").strip()

    cluster, agent = token("master", "cluster-token"), token("master", "agent-token")
    assert len(cluster) == len(agent) == 64 and cluster != agent
    for name in ("worker1", "worker2"):
        assert (token(name, "cluster-token"), token(name, "agent-token")) == (cluster, agent)
    agent_config = read_yaml(hosts[AGENT], "/etc/rancher/k3s/config.yaml")
    assert agent_config["token-file"] == "/etc/rancher/k3s/agent-token"
    assert token(AGENT, "agent-token") == agent
    assert not hosts[AGENT].file("/etc/rancher/k3s/cluster-token").exists
    assert cluster not in hosts[AGENT].check_output("cat /etc/rancher/k3s/*")


def test_a_secret_in_k3s_server_config_never_reaches_the_output(
        deployed: dict[str, Any], hosts: dict[str, testinfra.host.Host]) -> None:
    first: Run = deployed["first"]
    check: Run = deployed["check"]
    assert check.returncode == 0, check.output[-6000:]
    # the check run would rewrite config.yaml (the key changed): --diff had a diff to show
    assert any("Write /etc/rancher/k3s/config.yaml" in task for task in check.changed_tasks())
    for run, output in (("first", first.output), ("check --diff", check.output)):
        for secret in (SECRET, SECRET_CHANGED):
            assert secret not in output, f"the k3s_server_config secret is in the {run} output"
    # and it did reach the host, where k3s reads it (0600 root)
    config = hosts["worker1"].file("/etc/rancher/k3s/config.yaml")
    assert (config.mode, config.user) == (0o600, "root")
    assert read_yaml(hosts["worker1"], config.path)["etcd-s3-secret-key"] == SECRET
