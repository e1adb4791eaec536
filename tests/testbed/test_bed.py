"""The test bed itself: four hosts over real SSH, each its own machine, systemd, a local apt
repository and nothing else, nft inside, and nothing left behind by down()."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, prerequisite
from testbed.bed import BRIDGE, HOST_IPS, NETNS_PREFIX, TestBed
from testbed.fixture import testbed  # noqa: F401 - the session fixture

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent


def ansible(bed: TestBed, pattern: str, module: str, args: str = "",
            ) -> dict[str, dict[str, Any]]:
    """Run an ad-hoc module with the venv's ansible; host -> result (one-line output parsed)."""
    prerequisite((VENV_BIN / "ansible").exists(), f"ansible in {VENV_BIN} (pip install ansible)")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "0"}
    argv = ["ansible", pattern, "-i", str(bed.inventory), "-m", module, "-o"]
    if args:
        argv += ["-a", args]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    results: dict[str, dict[str, Any]] = {}
    for line in done.stdout.splitlines():
        host, sep, rest = line.partition(" | ")
        if not sep:
            continue
        status, _, payload = rest.partition(" => ")
        result = json.loads(payload) if payload.startswith("{") else {}
        results[host] = {"status": status.strip(), **result}
    assert done.returncode == 0, done.stdout + done.stderr
    return results


def test_ansible_reaches_all_four_hosts_over_ssh(testbed: TestBed) -> None:  # noqa: F811
    results = ansible(testbed, "all", "ansible.builtin.ping")
    assert set(results) == set(HOST_IPS)
    assert all(r["status"] == "SUCCESS" and r["ping"] == "pong" for r in results.values())


def test_the_inventory_has_the_groups_and_only_the_test_switches(
        testbed: TestBed) -> None:  # noqa: F811
    import yaml

    inventory = yaml.safe_load(testbed.inventory.read_text())["all"]
    groups = {name: sorted(group["hosts"]) for name, group in inventory["children"].items()}
    assert groups == {"masters": ["master"], "workers": ["worker1", "worker2"],
                      "edges": ["edge1"]}
    assert inventory["vars"]["k3s_server_start"] is False
    assert inventory["vars"]["k3s_agent_start"] is False
    assert oct(Path(inventory["vars"]["ansible_ssh_private_key_file"]).stat().st_mode)[-3:] \
        == "600"


def test_each_host_has_its_own_hostname_and_filesystem(testbed: TestBed) -> None:  # noqa: F811
    names = {host: testbed.ssh(host, "hostname").strip() for host in HOST_IPS}
    assert names == {host: host for host in HOST_IPS}
    machine_ids = {testbed.ssh(host, "cat /etc/machine-id").strip() for host in HOST_IPS}
    assert len(machine_ids) == len(HOST_IPS)
    testbed.ssh("worker1", "echo only-here > /root/bed-marker")
    assert testbed.ssh("worker1", "cat /root/bed-marker").strip() == "only-here"
    assert testbed.ssh_run("worker2", "test -e /root/bed-marker").returncode == 1
    assert not Path("/root/bed-marker").exists()  # nor on this machine
    testbed.ssh("worker1", "rm /root/bed-marker")


def test_systemd_is_pid_1_and_the_hosts_are_containers(testbed: TestBed) -> None:  # noqa: F811
    results = ansible(testbed, "all", "ansible.builtin.setup",
                      "filter=ansible_service_mgr,ansible_virtualization_type")
    assert set(results) == set(HOST_IPS)
    for result in results.values():
        facts = result["ansible_facts"]
        assert facts["ansible_service_mgr"] == "systemd"
        assert facts["ansible_virtualization_type"] == "container"
    for host in HOST_IPS:
        assert testbed.ssh(host, "systemd-detect-virt").strip() == "systemd-nspawn"
        assert testbed.ssh_run(host, "systemctl is-system-running").stdout.strip() \
            in ("running", "degraded")


def test_apt_installs_from_the_local_repository_and_nothing_else(
        testbed: TestBed) -> None:  # noqa: F811
    assert testbed.ssh("worker2", "cat /etc/apt/sources.list").strip() \
        == f"deb [trusted=yes] {testbed.repo_url} ./"
    assert testbed.ssh("worker2", "ls -A /etc/apt/sources.list.d").strip() == ""
    results = ansible(testbed, "worker2", "ansible.builtin.apt",
                      "name=curl state=present update_cache=true")
    assert results["worker2"]["status"] in ("CHANGED", "SUCCESS"), results
    assert "curl" in testbed.ssh("worker2", "curl --version")
    policy = testbed.ssh("worker2", "apt-cache policy")
    sources = [line for line in policy.splitlines() if "http" in line]
    assert sources and all(testbed.repo_url in line for line in sources), policy


def test_nft_and_network_sysctls_work_inside_a_host(testbed: TestBed) -> None:  # noqa: F811
    testbed.ssh("edge1", "apt-get update -q && "
                         "DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables")
    testbed.ssh("edge1", "nft add table inet bedtest && nft add chain inet bedtest input "
                         "'{ type filter hook input priority 0; policy accept; }'")
    assert "table inet bedtest" in testbed.ssh("edge1", "nft list ruleset")
    testbed.ssh("edge1", "nft delete table inet bedtest")
    assert testbed.ssh("edge1", "sysctl -n -w net.ipv4.ip_forward=1").strip() == "1"
    # the rules live in edge1's network namespace only
    assert "bedtest" not in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                           text=True, check=False).stdout


def test_a_worker_namespace_reaches_the_master_over_the_bridge(
        testbed: TestBed) -> None:  # noqa: F811
    probe = ("import socket,sys\ns=socket.socket(); s.settimeout(3)\n"
             "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
             "except ConnectionRefusedError: print('refused')\n"
             "except TimeoutError: print('dropped')\n")
    master = testbed.hosts["master"]
    assert testbed.netns_exec("worker1", [sys.executable, "-c", probe, master, "22"]).strip() \
        == "open"
    assert testbed.netns_exec("worker1", [sys.executable, "-c", probe, master, "6443"]).strip() \
        == "refused"


def test_down_leaves_nothing_behind_and_up_works_again(testbed: TestBed) -> None:  # noqa: F811
    """Last in this module: the bed is taken down and brought up again (from the cache)."""
    prerequisite(shutil.which("ip") is not None, "ip")
    testbed.down()
    try:
        assert testbed.leftovers() == []
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                               check=True).stdout
        assert NETNS_PREFIX not in netns
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                               check=True).stdout
        assert BRIDGE not in links and "mcv-" not in links
        mounts = Path("/proc/self/mounts").read_text()
        assert str(testbed.run_dir) not in mounts and NETNS_PREFIX not in mounts
        assert not testbed.run_dir.exists()
        testbed.down()  # idempotent
        assert testbed.leftovers() == []
    finally:
        testbed.up()
    assert testbed.is_up()
    assert testbed.timings["up_total"] < 60, testbed.timings
