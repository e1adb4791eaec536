"""`ansible-playbook micado.core.site` on the multi-host test bed (systemd-nspawn hosts on a
bridge, real SSH, a local apt repository), from the collection as a user gets it: `make
collection`'s tarball installed with `ansible-galaxy collection install`, run away from the
repository, with the controller role's default install (the control node makes the wheelhouse
from the wheel inside the tarball; the hosts have no internet). Then what a user would check
by hand, upgrade.yml and reset.yml.

k3s cannot be built here (README, "Real Kubernetes for tests"), so the master runs the upstream
control plane (tests/testbed/kube.py: etcd, kube-apiserver with RBAC, controller manager,
scheduler, kwok keeping Nodes named like the bed's hosts Ready) at k3s's port, and the inventory
says so: `k3s_server_existing_api: true` with `k3s_server_start: false` (the roles set the
controller's and Prometheus' identities up through that API server). The workers run the
k3s_agent role for real with a stand-in binary (tests/testbed/fake_k3s: ready for systemd, the
kubelet port on loopback), so that upgrade.yml has binaries to compare and nodes to drain. The
other test-only setting is the gateway password.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import testinfra
import testinfra.host
import yaml
from collection_tarball import VERSION, WHEEL, build_tarball, install_tarball, wheel_in

from conftest import REPO, prerequisite
from testbed.bed import TestBed
from testbed.fixture import testbed  # noqa: F401 - the session fixture
from testbed.kube import BedCluster, bed_cluster, fake_k3s, node_events, sha256  # noqa: F401

# cluster: it needs the control-plane binaries (make test runs it after their build)
pytestmark = [pytest.mark.integration, pytest.mark.cluster]

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


def make_inventory(bed: TestBed, root: Path, wheelhouse: Path | None,
                   extra: dict[str, Any] | None = None) -> Path:
    """The bed's hosts with the example inventory's group_vars and the test's overrides
    (no wheelhouse: the controller role's default install), then `extra`."""
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
    overrides |= extra or {}
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
        # a site's own ansible.cfg, if any, would set pipelining as the repository's does (each
        # task then costs one SSH round trip, not three); the collection does not depend on it
        del env["ANSIBLE_CONFIG"]
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
        env["ANSIBLE_PIPELINING"] = "True"
        target, cwd = f"micado.core.{name.removesuffix('.yml')}", collections.parent
    started = time.monotonic()
    done = subprocess.run(["ansible-playbook", "-i", str(inventory), target, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1800,
                          check=False)
    return Run(done.returncode, done.stdout + done.stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def deployed(testbed: TestBed, bed_cluster: BedCluster,  # noqa: F811
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """micado.core.site from the installed tarball: the controller's part in check mode on the
    fresh hosts, then the whole run twice and once with --check --diff; the runs, the
    inventory and the collections path (upgrade.yml and reset.yml run from there too)."""
    prerequisite(shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
                 is not None, "ansible-playbook in the venv (pip install ansible)")
    root = tmp_path_factory.mktemp("site")
    tarball = build_tarball(root / "tarball")
    collections = install_tarball(tarball, root / "user")
    agent = fake_k3s("v1")
    inventory = make_inventory(testbed, root, None, {  # no controller_* settings
        "k3s_server_existing_api": True, "k3s_agent_start": True,
        "k3s_server_sha256": sha256(agent)})
    shutil.copyfile(agent, root / "artefacts" / "k3s")
    # a fresh bed host has no apt lists yet (a real one has), and check mode does not update them
    testbed.ssh("master", "apt-get update -qq")
    fresh_check = playbook(inventory, "site.yml", "--tags", "controller", "--check",
                           collections=collections)
    first = playbook(inventory, "site.yml", collections=collections)
    (root / "first.log").write_text(first.output)
    print(first.output[-3500:])  # the slowest tasks (profile_tasks)
    assert first.returncode == 0, first.output[-6000:]
    second = playbook(inventory, "site.yml", collections=collections)
    check = playbook(inventory, "site.yml", "--check", "--diff", collections=collections)
    print(f"\nmicado.core.site on the 4-host test bed: controller check on fresh hosts "
          f"{fresh_check.seconds:.1f} s, first run {first.seconds:.1f} s, second run "
          f"{second.seconds:.1f} s, check mode {check.seconds:.1f} s")
    yield {"fresh_check": fresh_check, "first": first, "second": second, "check": check,
           "inventory": inventory, "bed": testbed, "cluster": bed_cluster, "root": root,
           "tarball": tarball, "collections": collections}


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


def test_check_mode_on_fresh_hosts_runs_the_default_install(deployed: dict[str, Any]) -> None:
    """Before anything is installed: the control node builds the wheelhouse (only its cache
    changes), the host reports what it would do, nothing fails."""
    result: Run = deployed["fresh_check"]
    assert result.returncode == 0, result.output[-6000:]
    assert result.recap()["master"]["failed"] == 0
    assert "Build or reuse the wheelhouse on the control node" in result.output


def test_the_default_install_runs_the_tarballs_controller(deployed: dict[str, Any]) -> None:
    """The controller on the master is the wheel the tarball ships, byte for byte."""
    bed: TestBed = deployed["bed"]
    installed = bed.ssh("master", "/opt/micado/venv/bin/python -c 'import importlib.metadata as m;"
                                  " print(m.version(\"micado\"))'").strip()
    assert installed == VERSION
    shipped = bed.ssh("master", f"sha256sum /opt/micado/wheelhouse/{WHEEL}").split()[0]
    assert shipped == hashlib.sha256(wheel_in(deployed["tarball"])).hexdigest()


@pytest.mark.parametrize("run", ["second", "check"])
def test_a_second_run_changes_nothing(deployed: dict[str, Any], run: str) -> None:
    """Nothing changes, with --check --diff too; the controller's wheelhouse comes from the
    control node's cache, its copy is byte-identical and pip sees the version installed."""
    result: Run = deployed[run]
    assert result.returncode == 0, result.output[-6000:]
    recap = result.recap()
    assert set(recap) == {"master", "worker1", "worker2", "edge1"}
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), \
        "\n".join(result.changed_tasks()) or result.output[-4000:]
    assert "Build or reuse the wheelhouse on the control node" in result.output


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
    assert reach(6443) == "open"  # the API server on the master, allowed to cluster nodes
    assert reach(22) == "open"
    assert reach(443) == "open"
    assert reach(6443, source="edge1") == "dropped"  # edges are not cluster nodes


HELLO_ADT = """tosca_definitions_version: tosca_simple_yaml_1_2
imports:
  - https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml
topology_template:
  node_templates:
    hello:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.25
"""
# In the master's network namespace, as the admin: argv[1] kubeconfig, argv[2] app id.
READY_NODES = """
import json, sys
from kubernetes import client, config
api = client.CoreV1Api(config.new_client_from_config(config_file=sys.argv[1]))
print(json.dumps({n.metadata.name: {c.type: c.status for c in n.status.conditions or []}
                  for n in api.list_node().items}))
"""
APP_DEPLOYMENTS = """
import json, sys
from kubernetes import client, config
api = client.AppsV1Api(config.new_client_from_config(config_file=sys.argv[1]))
found = api.list_deployment_for_all_namespaces(
    label_selector=f"app.kubernetes.io/instance={sys.argv[2]}").items
print(json.dumps({d.metadata.name: d.status.ready_replicas or 0 for d in found}))
"""


def as_admin(cluster: BedCluster, script: str, *args: str) -> Any:
    done = cluster.python(script, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_api_server_has_a_ready_node_per_host_named_as_k3s_names_it(
        deployed: dict[str, Any]) -> None:
    """The Nodes of the master and the workers (not the edge), Ready; site.yml's verification
    checked the same through the controller's kubeconfig."""
    nodes = as_admin(deployed["cluster"], READY_NODES)
    assert sorted(nodes) == ["master", "worker1", "worker2"]
    assert all(conditions.get("Ready") == "True" for conditions in nodes.values()), nodes
    assert "Every master and worker is a Ready node" in deployed["first"].output


def test_the_controller_deploys_an_adt_on_the_api_server_and_deletes_it(
        deployed: dict[str, Any]) -> None:
    """Through the gateway, as a user would: the controller, with the kubeconfig the
    k3s_server role built from its ServiceAccount, creates the app's Deployment, which the
    scheduler places on a worker and kwok runs; `stop` deletes it again."""
    bed: TestBed = deployed["bed"]
    cluster: BedCluster = deployed["cluster"]
    ca_file = deployed["inventory"].parent / "ca.crt"
    ca_file.write_text(bed.ssh("master", "cat /etc/micado/tls/ca.crt"))
    base = f"https://{master_ip(bed)}/v1/apps"
    headers = {"Authorization": f"Bearer {token(bed)}"}
    submitted = requests.post(base, json={"adt": HELLO_ADT, "app_id": "site-hello"},
                              headers=headers, verify=str(ca_file), timeout=120)
    assert submitted.status_code == 201, submitted.text
    deadline = time.monotonic() + 120
    while as_admin(cluster, APP_DEPLOYMENTS, "site-hello") != {"hello": 1}:
        assert time.monotonic() < deadline, as_admin(cluster, APP_DEPLOYMENTS, "site-hello")
        time.sleep(2)
    deleted = requests.delete(f"{base}/site-hello", headers=headers, verify=str(ca_file),
                              timeout=120)
    assert deleted.status_code == 200, deleted.text
    deadline = time.monotonic() + 120
    while as_admin(cluster, APP_DEPLOYMENTS, "site-hello"):
        assert time.monotonic() < deadline
        time.sleep(2)


def test_prometheus_names_the_kubelet_targets_after_the_nodes(
        hosts: dict[str, testinfra.host.Host], deployed: dict[str, Any]) -> None:
    """Debian's Prometheus is built without Kubernetes discovery, so the kubelet jobs' targets
    are the inventory's masters and workers: each `instance` is the Node's name on the API
    server and MiCADO's `instance=~"NODE.*"` matches it. They are scraped through the API
    server's node proxy with the token the monitoring role fetched from it; kwok serves no
    kubelet, so they are down, with the proxy's error, never an authentication one."""
    master = hosts["master"]
    nodes = set(as_admin(deployed["cluster"], READY_NODES))

    def prometheus(path: str) -> dict:
        text = master.check_output(
            "python3 -c \"import sys, urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1:9090' + sys.argv[1]).read().decode())\" %s", path)
        return json.loads(text)["data"]

    deadline = time.monotonic() + 90
    while True:
        targets = [t for t in prometheus("/api/v1/targets?state=active")["activeTargets"]
                   if t["labels"]["job"] in ("kubelet-resource", "kubelet-cadvisor")]
        if targets and all(t["health"] != "unknown" for t in targets):
            break
        assert time.monotonic() < deadline, targets
        time.sleep(3)
    for job in ("kubelet-resource", "kubelet-cadvisor"):
        assert {t["labels"]["instance"] for t in targets if t["labels"]["job"] == job} == nodes
    for target in targets:
        error = target["lastError"]
        assert not any(word in error for word in ("401", "403", "x509", "certificate")), error
    query = 'up{job="kubelet-cadvisor",instance=~"worker.*"}'
    found = prometheus(f"/api/v1/query?query={urllib.parse.quote(query)}")["result"]
    assert sorted(r["metric"]["instance"] for r in found) == ["worker1", "worker2"]


def upgrade_watched(deployed: dict[str, Any], name: str, *args: str,
                    ) -> tuple[Run, list[tuple[str, bool]]]:
    """upgrade.yml while a watch records every Node's spec.unschedulable; the run and the
    changes, in order: (node, cordoned) each time a Node is seen cordoned or uncordoned."""
    cluster: BedCluster = deployed["cluster"]
    out = deployed["root"] / f"nodes-{name}.jsonl"
    watcher = cluster.watch_nodes(out)
    try:
        deadline = time.monotonic() + 60
        while len(node_events(out)) < len(cluster.nodes):  # the initial ADDED events
            assert watcher.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        done = playbook(deployed["inventory"], "upgrade.yml", *args,
                        collections=deployed["collections"])
        time.sleep(2)  # the last events reach the watch
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    state: dict[str, bool] = {}
    changes = []
    for event in node_events(out):
        node, cordoned = event["name"], event["unschedulable"]
        if state.get(node, False) != cordoned:  # any cordoned Node counts, even from the start
            changes.append((node, cordoned))
        state[node] = cordoned
    return done, changes


def installed_k3s(deployed: dict[str, Any]) -> dict[str, str]:
    """Each worker's /usr/local/bin/k3s sha256."""
    bed: TestBed = deployed["bed"]
    return {h: bed.ssh(h, "sha256sum /usr/local/bin/k3s").split()[0]
            for h in bed.groups["workers"]}


def test_upgrade_to_the_same_version_changes_nothing(deployed: dict[str, Any]) -> None:
    """upgrade.yml with the deployed version: servers one by one, workers in batches, no change,
    and no Node is ever cordoned (before the fix every worker was drained and uncordoned)."""
    done, changes = upgrade_watched(deployed, "same")
    assert done.returncode == 0, done.output[-6000:]
    recap = done.recap()
    assert set(recap) == {"master", "worker1", "worker2"}
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), \
        "\n".join(done.changed_tasks())
    assert changes == [], f"Nodes cordoned at the same version: {changes}"
    assert set(installed_k3s(deployed).values()) == {sha256(fake_k3s("v1"))}


def test_upgrade_to_a_new_binary_drains_one_worker_at_a_time(deployed: dict[str, Any]) -> None:
    """A different k3s binary (and its sha256) in the artefact directory: each worker is
    cordoned and drained, upgraded, uncordoned, one after the other (batches of 25% of two
    workers: one); the master's Node is never touched. Then every binary is the new one."""
    new = fake_k3s("v2")
    shutil.copyfile(new, deployed["root"] / "artefacts" / "k3s")
    done, changes = upgrade_watched(deployed, "new", "-e", f"k3s_server_sha256={sha256(new)}")
    assert done.returncode == 0, done.output[-6000:]
    assert changes == [("worker1", True), ("worker1", False),
                       ("worker2", True), ("worker2", False)], changes
    assert set(installed_k3s(deployed).values()) == {sha256(new)}
    recap = done.recap()
    assert recap["worker1"]["changed"] > 0 and recap["worker2"]["changed"] > 0


def test_reset_removes_micado_and_keeps_ssh(deployed: dict[str, Any],
                                             hosts: dict[str, testinfra.host.Host]) -> None:
    """Last: reset.yml (confirmed on the command line) on the deployed bed."""
    done = playbook(deployed["inventory"], "reset.yml", "-e", "reset_confirm=yes",
                    collections=deployed["collections"])
    assert done.returncode == 0, done.output[-6000:]
    for name, host in hosts.items():
        assert host.run("true").rc == 0, f"{name}: SSH lost after reset"
        assert host.run("nft list table inet micado_filter").rc != 0, name
    master = hosts["master"]
    assert not master.service("micado-controller").is_running
    assert not master.file("/etc/systemd/system/micado-controller.service").exists
    assert not master.file("/etc/micado/api-token").exists
