"""Reconciliation end to end on EC2: the controller daemon runs the real
`micado.core.scale_nodes` against moto's EC2 server on loopback and a Kubernetes API
(tests/fakes/kube_api.py: it can hold an eviction on demand, which a real server cannot), VMs
"boot" and join through tests/integration/cloud_node_harness.Booter.

- kill -9 of the controller's whole process tree (as systemd kills a unit's cgroup) mid
  scale-out, after the RunInstances calls, and mid drain, then a restart: exactly the desired
  VMs, by tag, no orphan, no duplicate, and the Nodes to match;
- deleting the app removes its VMs (drained first) and the controller forgets the group;
- a group Node NotReady past the policy's `node_unreachable_timeout` is replaced; a static
  node NotReady is only reported;
- `micado status` shows the group's VMs from the store right after a restart.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.cloud_node_harness import (
    AMI,
    REGION,
    Booter,
    ec2_client,
    group_instances,
    moto_server,
    write_kubeconfig,
)

from conftest import REPO, prerequisite
from e2e.daemon_harness import Daemon, wait_for
from fakes.prometheus_api import FakePrometheus

pytestmark = pytest.mark.integration

HAVE = all(importlib.util.find_spec(m) for m in ("moto", "ansible_runner", "boto3"))
SERVER_URL = "https://10.1.0.1:6443"
WANTED = "micado_reconcile_wanted_nodes"
WAIT = 300.0  # an upper bound for a wait under load, never an assertion about speed
LABELS = {"micado.eu/node_type": "worker-node", "micado.eu/app": "vms"}
ADT = """\
tosca_definitions_version: tosca_simple_yaml_1_2
imports:
  - https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml
topology_template:
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.25
    worker-node:
      type: tosca.nodes.MiCADO.EC2.Compute
      properties:
        region_name: {region}
        image_id: {ami}
        instance_type: t2.micro
      interfaces:
        Occopus:
          create:
            inputs:
              endpoint: {endpoint}
  policies:
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [ worker-node ]
        properties:
          queries:
            WANTED: {wanted}
          min_instances: 0
          max_instances: 3
          node_unreachable_timeout: 5s
          scaling_rule: |
            m_node_count = WANTED
"""


@dataclass
class World:
    """moto, the fake Kubernetes API and Prometheus, the booter and the daemon over them."""

    tmp: Path
    endpoint: str
    ec2: Any
    kube: FakeKubeApi
    prometheus: FakePrometheus
    booter: Booter
    daemon: Daemon

    def start_app(self, wanted: int) -> None:
        self.prometheus.set(WANTED, wanted)
        adt = self.tmp / "app.yaml"
        adt.write_text(ADT.format(region=REGION, ami=AMI, endpoint=self.endpoint,
                                  wanted=WANTED))
        started = self.daemon.cli("start", str(adt), "--id", "vms")
        assert started.returncode == 0, started.stderr

    def vms(self) -> set[str]:
        return set(group_instances(self.ec2, "vms", "worker-node"))

    def all_micado_vms(self) -> list[str]:
        """Every live instance tagged micado.eu/app: an orphan or a duplicate shows here."""
        found = self.ec2.describe_instances(Filters=[
            {"Name": "tag-key", "Values": ["micado.eu/app"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        return sorted(next(t["Value"] for t in i["Tags"] if t["Key"] == "Name")
                      for r in found["Reservations"] for i in r["Instances"])

    def nodes(self) -> set[str]:
        return {name for (_g, plural, _ns, name) in self.kube.objects if plural == "nodes"}

    def done(self, nodes: int) -> list[dict[str, Any]]:
        return [e for e in self.daemon.events("action") if f"done, {nodes} nodes"
                in e["message"]]

    def reconciled(self, text: str) -> list[dict[str, Any]]:
        return [e for e in self.daemon.events("reconcile") if text in e["message"]]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    prerequisite(HAVE, "moto[server], ansible-runner and boto3 (pip install -e '.[test]')")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIARECONCILE\n"
                           "aws_secret_access_key = reconcile-secret\n")
    credentials.chmod(0o600)
    with moto_server(tmp_path / "moto.log") as endpoint:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        ec2 = ec2_client(endpoint)
        with FakePrometheus() as prometheus, FakeKubeApi() as kube, \
                Booter(ec2=ec2, kube=kube, server_url=SERVER_URL, labels=LABELS) as booter:
            kubeconfig = write_kubeconfig(tmp_path / "nodes-kubeconfig", kube.url, "admin")
            daemon = Daemon(tmp_path, kube.url, prometheus.url, tmp_path / "rules",
                            tmp_path / "targets", tick_seconds=1.0,
                            nodes={"server_url": SERVER_URL, "kubeconfig": str(kubeconfig),
                                   "collections_path": str(REPO / "collections"),
                                   "aws_credentials_file": str(credentials),
                                   "ready_timeout": 120, "drain_timeout": 60,
                                   "reconcile_seconds": 5,
                                   "backoff_seconds": 1, "backoff_max_seconds": 2})
            daemon.start()
            try:
                yield World(tmp_path, endpoint, ec2, kube, prometheus, booter, daemon)
            finally:
                kill_tree(daemon)


def kill_tree(daemon: Daemon) -> None:
    """SIGKILL the controller and every process under it at once, as systemd stops a unit."""
    if daemon.process is None or daemon.process.poll() is not None:
        return
    root = psutil.Process(daemon.process.pid)
    with contextlib.suppress(psutil.Error):
        tree = [root, *root.children(recursive=True)]
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.kill()
    daemon.process.wait(timeout=30)


def test_kill_9_mid_scale_out_ends_with_exactly_the_desired_vms(world: World) -> None:
    world.booter.hold.set()  # the VMs do not join yet: the run waits for their Nodes
    world.start_app(2)
    wait_for(world.vms, WAIT, "the first RunInstances")
    kill_tree(world.daemon)
    world.booter.hold.clear()
    world.daemon.start()
    wait_for(lambda: world.reconciled("was in flight when the controller stopped: resumed"),
             WAIT, "the operation resumed")
    wait_for(lambda: world.done(2), WAIT, "the resumed operation to finish")
    wait_for(lambda: world.nodes() == {"worker-node-vms-1", "worker-node-vms-2"}, WAIT,
             "both Nodes")
    assert world.all_micado_vms() == ["worker-node-vms-1", "worker-node-vms-2"]
    assert world.daemon.events("action_failed") == []
    # the VMs shown by `micado status` come from the store: there at once after a restart
    assert world.daemon.stop() == 0
    world.daemon.start()
    shown = world.daemon.cli("status", "vms").stdout
    assert "VMs (2): worker-node-vms-1 (i-" in shown, shown


def test_kill_9_mid_drain_then_the_app_deleted_leaves_no_vm(world: World) -> None:
    world.start_app(2)
    wait_for(lambda: world.done(2), WAIT, "the 0 -> 2 operation")
    world.kube.seed({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "web-2", "namespace": "default",
                                  "ownerReferences": [{"apiVersion": "apps/v1",
                                                       "kind": "ReplicaSet", "name": "web",
                                                       "uid": "1", "controller": True}]},
                     "spec": {"nodeName": "worker-node-vms-2",
                              "containers": [{"name": "web", "image": "nginx"}]},
                     "status": {"phase": "Running"}})
    evicting, release = threading.Event(), threading.Event()

    def hold_evictions(method: str, path: str) -> None:
        if path.endswith("/eviction"):
            evicting.set()
            release.wait(WAIT)
    world.kube.on_request(hold_evictions)
    world.prometheus.set(WANTED, 1)
    wait_for(evicting.is_set, WAIT, "the drain's eviction")
    kill_tree(world.daemon)
    release.set()
    world.daemon.start()
    wait_for(lambda: world.done(1), WAIT, "the resumed scale-in")
    assert world.all_micado_vms() == ["worker-node-vms-1"]
    assert set(group_instances(world.ec2, "vms", "worker-node", ("terminated",))) == {
        "worker-node-vms-2"}
    assert world.nodes() == {"worker-node-vms-1"}
    assert world.kube.get("", "pods", "default", "web-2") is None

    stopped = world.daemon.cli("stop", "vms")
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: [e for e in world.daemon.events("action")
                      if "its VMs are removed" in e["message"]], WAIT, "the VMs removed")
    assert world.all_micado_vms() == []
    assert world.nodes() == set()
    assert world.daemon.events("action_failed") == []


def test_a_notready_group_node_is_replaced_and_a_static_one_reported(world: World) -> None:
    world.start_app(1)
    wait_for(lambda: world.done(1), WAIT, "the 0 -> 1 operation")
    [old] = group_instances(world.ec2, "vms", "worker-node").values()
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    down = [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
             "lastTransitionTime": since}]
    node = world.kube.get("", "nodes", "", "worker-node-vms-1")
    assert node is not None
    world.kube.seed({**node, "status": {**node["status"], "conditions": down}})
    world.kube.seed({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": "static-worker", "labels": {}},
                     "status": {"conditions": down}})
    wait_for(lambda: world.reconciled("NotReady for more than 5 s: drained, deleted and "
                                      "replaced"), WAIT, "the replacement")
    wait_for(lambda: [e for e in world.daemon.events("action") if "done, 1 nodes"
                      in e["message"]][1:], WAIT, "the replacement to finish")
    [new] = group_instances(world.ec2, "vms", "worker-node").values()
    assert new["InstanceId"] != old["InstanceId"]
    assert set(group_instances(world.ec2, "vms", "worker-node", ("terminated",))) == {
        "worker-node-vms-1"}
    wait_for(lambda: (world.kube.get("", "nodes", "", "worker-node-vms-1") or {}).get(
        "status", {}).get("conditions", [{}])[0].get("status") == "True", WAIT,
        "the new Node Ready")
    assert world.all_micado_vms() == ["worker-node-vms-1"]
    reports = world.reconciled("Node static-worker (a static worker or edge node) is NotReady")
    assert len(reports) == 1
    assert world.kube.get("", "nodes", "", "static-worker") is not None


def test_a_vm_lost_outside_is_made_again_and_a_crash_mid_deletion_leaves_no_orphan(
        world: World) -> None:
    world.start_app(2)
    wait_for(lambda: world.done(2), WAIT, "the 0 -> 2 operation")
    lost = group_instances(world.ec2, "vms", "worker-node")["worker-node-vms-2"]["InstanceId"]
    world.ec2.terminate_instances(InstanceIds=[lost])  # by hand, in the cloud's console
    world.kube.handle("DELETE", "/api/v1/nodes/worker-node-vms-2", None, b"")
    wait_for(lambda: world.reconciled("1 VMs in the cloud, 2 wanted: resized to 2"), WAIT,
             "the reconciliation to notice")
    wait_for(lambda: len(world.done(2)) > 1, WAIT, "the group made whole again")
    again = group_instances(world.ec2, "vms", "worker-node")
    assert set(again) == {"worker-node-vms-1", "worker-node-vms-2"}
    assert again["worker-node-vms-2"]["InstanceId"] != lost

    stopped = world.daemon.cli("stop", "vms")
    assert stopped.returncode == 0, stopped.stderr
    kill_tree(world.daemon)  # before the removal could finish
    assert world.all_micado_vms() != []
    world.daemon.start()
    wait_for(lambda: world.reconciled("of a deleted app (or one that left it): removing"),
             WAIT, "the orphans found")
    wait_for(lambda: world.all_micado_vms() == [], WAIT, "the orphans removed")
    wait_for(lambda: world.reconciled("its VMs are gone") or [
        e for e in world.daemon.events("action") if "its VMs are removed" in e["message"]],
        WAIT, "the group forgotten")
    assert world.nodes() == set()
