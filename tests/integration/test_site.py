"""`ansible-playbook playbooks/site.yml` on the multi-host test bed (systemd-nspawn hosts on a
bridge, real SSH, a local apt repository), then what a user would check by hand.

The only test-only settings are `k3s_server_start: false` / `k3s_agent_start: false` (no k3s
binary can be had here; everything up to starting it runs), the test's gateway password and the
wheelhouse the controller is installed from (the hosts have no internet).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import testinfra
import testinfra.host
import yaml

from conftest import REPO, prerequisite
from testbed.bed import TestBed
from testbed.fixture import testbed  # noqa: F401 - the session fixture
from wheelhouse import build_wheelhouse

pytestmark = pytest.mark.integration

GATEWAY_USER = "admin"
GATEWAY_PASSWORD = "correct-horse-battery-staple"  # the test inventory's, not a default
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                   r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.M)


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        return {m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
                for m in RECAP.finditer(self.output)}

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change (for a useful failure message)."""
        tasks, current = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                current = line
            elif line.startswith("changed:") and current:
                tasks.append(f"{current} {line}")
        return tasks


def make_inventory(bed: TestBed, root: Path, wheelhouse: Path | None) -> Path:
    """The bed's hosts with the example inventory's group_vars and the test's overrides
    (no wheelhouse: the controller role's default install)."""
    inventory = root / "inventory"
    shutil.rmtree(inventory, ignore_errors=True)
    group_vars = inventory / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    shutil.copy(bed.inventory, inventory / "hosts.yml")
    example = REPO / "inventories" / "example" / "group_vars" / "all"
    for name in ("settings.yml", "cloud.yml", "web.yml", "registry.yml"):
        shutil.copy(example / name, group_vars / name)
    overrides = {
        "k3s_server_start": False,
        "k3s_agent_start": False,
        "vault_gateway_admin_password": GATEWAY_PASSWORD,
        "micado_artefact_dir": str(root / "artefacts"),
    }
    if wheelhouse is not None:
        overrides["controller_wheelhouse"] = str(wheelhouse)
    (group_vars / "zz_testbed.yml").write_text(yaml.safe_dump(overrides, sort_keys=True))
    (root / "artefacts").mkdir(exist_ok=True)
    return inventory


def playbook(inventory: Path, name: str, *args: str, collections: Path | None = None) -> Run:
    """playbooks/NAME from the repository, or with `collections` (an installed tarball)
    micado.core.NAME from there, away from the repository and its ansible.cfg."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks,ansible.posix.timer"}
    target, cwd = str(REPO / "playbooks" / name), REPO
    if collections is not None:
        del env["ANSIBLE_CONFIG"]
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
        target, cwd = f"micado.core.{name.removesuffix('.yml')}", collections.parent
    started = time.monotonic()
    done = subprocess.run(["ansible-playbook", "-i", str(inventory), target, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1800,
                          check=False)
    return Run(done.returncode, done.stdout + done.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def deployed(testbed: TestBed, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
             ) -> Iterator[dict[str, Any]]:
    """site.yml run twice and in check mode; the runs and the inventory."""
    prerequisite(shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
                 is not None, "ansible-playbook in the venv (pip install ansible)")
    root = tmp_path_factory.mktemp("site")
    inventory = make_inventory(testbed, root, build_wheelhouse())
    first = playbook(inventory, "site.yml")
    (root / "first.log").write_text(first.output)
    print(first.output[-3500:])  # the slowest tasks (profile_tasks)
    assert first.returncode == 0, first.output[-6000:]
    second = playbook(inventory, "site.yml")
    check = playbook(inventory, "site.yml", "--check", "--diff")
    print(f"\nsite.yml on the 4-host test bed: first run {first.seconds:.1f} s, "
          f"second run {second.seconds:.1f} s, check mode {check.seconds:.1f} s")
    yield {"first": first, "second": second, "check": check, "inventory": inventory,
           "bed": testbed}


def ssh_hosts_of(bed: TestBed) -> dict[str, testinfra.host.Host]:
    """testinfra hosts over SSH with the bed's key, as Ansible reaches them."""
    options = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    return {name: testinfra.get_host(f"ssh://root@{ip}", ssh_identity_file=str(bed.private_key),
                                      ssh_extra_args=options)
            for name, ip in bed.hosts.items()}


@pytest.fixture(scope="module")
def hosts(deployed: dict[str, Any]) -> dict[str, testinfra.host.Host]:
    return ssh_hosts_of(deployed["bed"])


def master_ip(bed: TestBed) -> str:
    return bed.hosts["master"]


def token(bed: TestBed) -> str:
    return bed.ssh("master", "cat /etc/micado/api-token").strip()


def test_a_second_run_changes_nothing(deployed: dict[str, Any]) -> None:
    second: Run = deployed["second"]
    assert second.returncode == 0, second.output[-6000:]
    recap = second.recap()
    assert set(recap) == {"master", "worker1", "worker2", "edge1"}
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), \
        "\n".join(second.changed_tasks()) or second.output[-4000:]


def test_check_mode_with_diff_runs_clean(deployed: dict[str, Any]) -> None:
    check: Run = deployed["check"]
    assert check.returncode == 0, check.output[-6000:]
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in check.recap().values()), \
        "\n".join(check.changed_tasks())


def test_no_secret_reaches_the_output(deployed: dict[str, Any]) -> None:
    """Not the gateway password, not the API token, not even with --check --diff."""
    secrets = {"gateway password": GATEWAY_PASSWORD, "API token": token(deployed["bed"])}
    for run in ("first", "second", "check"):
        output = deployed[run].output
        for what, secret in secrets.items():
            assert secret not in output, f"the {what} is in the output of the {run} run"


def test_prometheus_is_up_and_scrapes_every_node_exporter(
        hosts: dict[str, testinfra.host.Host]) -> None:
    master = hosts["master"]
    for unit in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
        assert master.service(unit).is_running and master.service(unit).is_enabled, unit
    assert master.socket("tcp://127.0.0.1:9090").is_listening
    assert not master.socket("tcp://0.0.0.0:9090").is_listening  # behind the gateway only
    for name in ("worker1", "worker2", "edge1"):
        exporter = hosts[name].service("prometheus-node-exporter")
        assert exporter.is_running and exporter.is_enabled, name
        assert not hosts[name].service("prometheus").is_running, name

    def node_targets() -> dict[str, str]:
        text = master.check_output(
            "python3 -c \"import urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1:9090/api/v1/targets?state=active').read().decode())\"")
        targets = json.loads(text)["data"]["activeTargets"]
        return {t["labels"]["instance"]: t["health"] for t in targets
                if t["labels"].get("job") == "node"}

    deadline = time.monotonic() + 60
    while True:
        targets = node_targets()
        if sorted(targets) == sorted(hosts) and all(h == "up" for h in targets.values()):
            break
        assert time.monotonic() < deadline, f"node exporters not all up: {targets}"
        time.sleep(2)


def test_the_gateway_serves_tls_with_the_right_names_and_refuses_strangers(
        deployed: dict[str, Any]) -> None:
    bed: TestBed = deployed["bed"]
    ip = master_ip(bed)
    ca = bed.ssh("master", "cat /etc/micado/tls/ca.crt")
    ca_file = deployed["inventory"].parent / "ca.crt"
    ca_file.write_text(ca)
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    with socket.create_connection((ip, 443), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        cert = tls.getpeercert()
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    names = {value for kind, value in cert["subjectAltName"]}
    assert {ip, "127.0.0.1", "master"} <= names
    base = f"https://{ip}"
    assert requests.get(f"{base}/prometheus/api/v1/query", params={"query": "up"},
                        verify=str(ca_file), timeout=10).status_code == 401
    assert requests.get(f"{base}/v1/apps", verify=str(ca_file), timeout=10).status_code == 401
    answer = requests.get(f"{base}/prometheus/api/v1/query", params={"query": "up"},
                          auth=(GATEWAY_USER, GATEWAY_PASSWORD), verify=str(ca_file),
                          timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "success"
    hsts = requests.get(f"{base}/healthz", verify=str(ca_file), timeout=10)
    assert "max-age" in hsts.headers.get("Strict-Transport-Security", "")


def test_the_controller_is_active_and_answers_through_the_gateway(
        deployed: dict[str, Any], hosts: dict[str, testinfra.host.Host]) -> None:
    bed: TestBed = deployed["bed"]
    master = hosts["master"]
    controller = master.service("micado-controller")
    assert controller.is_running and controller.is_enabled
    secret = master.file("/etc/micado/api-token")
    assert (secret.mode, secret.user) == (0o600, "micado")
    assert master.socket("tcp://127.0.0.1:8080").is_listening
    ip = master_ip(bed)
    ca_file = deployed["inventory"].parent / "ca.crt"
    ca_file.write_text(bed.ssh("master", "cat /etc/micado/tls/ca.crt"))
    health = requests.get(f"https://{ip}/healthz", verify=str(ca_file), timeout=10)
    assert health.json() == {"status": "ok"}
    apps = requests.get(f"https://{ip}/v1/apps", verify=str(ca_file), timeout=10,
                        headers={"Authorization": f"Bearer {token(bed)}"})
    assert apps.status_code == 200 and apps.json() == {"apps": []}


def test_the_firewall_drops_a_closed_port_and_allows_the_api_port_from_a_worker(
        deployed: dict[str, Any], hosts: dict[str, testinfra.host.Host]) -> None:
    bed: TestBed = deployed["bed"]
    ip = master_ip(bed)
    probe = ("import socket,sys\n"
             "s=socket.socket(); s.settimeout(3)\n"
             "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('open')\n"
             "except ConnectionRefusedError: print('refused')\n"
             "except TimeoutError: print('dropped')\n")

    def reach(port: int, source: str = "worker1") -> str:
        """From inside another host (its own network namespace, over SSH)."""
        return hosts[source].check_output("python3 -c %s %s %s", probe, ip, str(port)).strip()

    assert reach(9100) == "dropped"  # node exporter: only the master may scrape it
    assert reach(6443) == "refused"  # the API port is allowed (k3s is not running here)
    assert reach(22) == "open"
    assert reach(443) == "open"
    assert reach(6443, source="edge1") == "dropped"  # edges are not cluster nodes


def test_upgrade_to_the_same_version_changes_nothing(deployed: dict[str, Any]) -> None:
    """upgrade.yml with the deployed version: servers one by one, workers in batches, no change
    (draining needs the k3s API, which does not run here)."""
    done = playbook(deployed["inventory"], "upgrade.yml")
    assert done.returncode == 0, done.output[-6000:]
    recap = done.recap()
    assert set(recap) == {"master", "worker1", "worker2"}
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), \
        "\n".join(done.changed_tasks())


def test_reset_removes_micado_and_keeps_ssh(deployed: dict[str, Any],
                                             hosts: dict[str, testinfra.host.Host]) -> None:
    """Last: reset.yml (confirmed on the command line) on the deployed bed."""
    done = playbook(deployed["inventory"], "reset.yml", "-e", "reset_confirm=yes")
    assert done.returncode == 0, done.output[-6000:]
    for name, host in hosts.items():
        assert host.run("true").rc == 0, f"{name}: SSH lost after reset"
        assert host.run("nft list table inet micado_filter").rc != 0, name
    master = hosts["master"]
    assert not master.service("micado-controller").is_running
    assert not master.file("/etc/systemd/system/micado-controller.service").exists
    assert not master.file("/etc/micado/api-token").exists
