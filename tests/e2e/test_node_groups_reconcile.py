"""Reconciliation end to end, on EC2 and on OpenStack: the controller daemon runs the real
`micado.core.scale_nodes` against the cloud (EC2: moto's server on loopback, one per test;
OpenStack: real Nova, Neutron, Glance, Keystone from PyPI, openstack_fixture.py) and a
Kubernetes API (tests/fakes/kube_api.py: it can hold an eviction on demand, which a real server
cannot); VMs "boot" and join through cloud_node_harness.Booter (NovaBooter on OpenStack).

One scenario code for both clouds; a small adapter per cloud (`Ec2`, `Nova`) makes its part of
the world, the ADT's compute node and the look at the cloud (the group's VMs by tag or
metadata). The kill -9 mid scale-out runs on both; every other scenario on one (`on_cloud`),
since what it tests is the controller's and the same for both clouds, while the role's part per
cloud (create, list, drain, delete, refusals) is tested on each in tests/integration/
(test_cloud_node_ec2.py, test_cloud_node_openstack.py, test_cloud_node_faults.py). Run on
both, these scenarios were the longest part of `make test` (about 40 minutes on two cores);
MICADO_BOTH_CLOUDS=1 runs every scenario on both. Each test's app has its own name and the
OpenStack project is shared with other tests: a test looks only at its app's servers and
removes them at the end.

- kill -9 of the controller's whole process tree (as systemd kills a unit's cgroup) mid
  scale-out, after the create calls, and mid drain, then a restart: exactly the desired
  VMs, by tag, no orphan, no duplicate, and the Nodes to match;
- deleting the app removes its VMs (drained first) and the controller forgets the group;
- a group Node NotReady past the policy's `node_unreachable_timeout` is replaced, and so is
  a group VM without a Node that long; a static node NotReady is only reported;
- `micado status` shows the group's VMs from the store right after a restart;
- a cloud refusing VMs over the account's limit backs the group off, with the cloud's
  reason in the events and the status, until the limit allows them;
- two apps and two groups scale at once: their runs overlap and each group ends with exactly
  its own VMs and Nodes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psutil
import pytest
import requests
import yaml
from tests.fakes.fault_proxy import Fault, FaultProxy
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.cloud_node_harness import (
    AMI,
    EC2_LIMIT,
    REGION,
    Booter,
    ec2_client,
    moto_server,
    write_kubeconfig,
)
from tests.integration.cloud_node_openstack_harness import NovaBooter

from conftest import REPO, prerequisite
from e2e.daemon_harness import Daemon, wait_for
from fakes.prometheus_api import FakePrometheus
from integration.openstack_fixture import OpenStackCloud

# mostly waiting on the clouds and the daemon: make test runs it beside the others
pytestmark = [pytest.mark.integration, pytest.mark.beside]

HAVE = all(importlib.util.find_spec(m) for m in ("moto", "ansible_runner", "boto3"))
SERVER_URL = "https://10.1.0.1:6443"
WANTED = "micado_reconcile_wanted_nodes"
WAIT = 300.0  # an upper bound for a wait under load, never an assertion about speed
GROUP = "worker-node"


def app_adt(cloud: Cloud, container: str, groups: dict[str, str],
            unreachable: str | None = None) -> str:
    """An app of one container and node groups on `cloud`, each group sized by its own rule
    `m_node_count = <its query>` (group -> the Prometheus expression of its query)."""
    templates: dict[str, Any] = {container: {
        "type": "tosca.nodes.MiCADO.Container.Application.Docker.Deployment",
        "properties": {"image": "nginx:1.25"}}}
    policies = []
    for group, expr in groups.items():
        query = group.upper().replace("-", "_")
        templates[group] = {**cloud.compute(), "interfaces": {"Occopus": {"create": {
            "inputs": {"endpoint": cloud.endpoint}}}}}
        properties: dict[str, Any] = {"queries": {query: expr}, "min_instances": 0,
                                      "max_instances": 3,
                                      "scaling_rule": f"m_node_count = {query}\n"}
        if unreachable is not None:
            properties["node_unreachable_timeout"] = unreachable
        policies.append({f"scale-{group}": {"type": "tosca.policies.Scaling.MiCADO",
                                            "targets": [group], "properties": properties}})
    return yaml.safe_dump({
        "tosca_definitions_version": "tosca_simple_yaml_1_2",
        "imports": ["https://raw.githubusercontent.com/micado-scale/tosca/develop/"
                    "micado_types.yaml"],
        "topology_template": {"node_templates": templates, "policies": policies}},
        sort_keys=False)


class Cloud(Protocol):
    """What the scenarios need of a cloud: its ADT part, its config and a look at its VMs."""

    endpoint: str

    def compute(self) -> dict[str, Any]:
        """A node group's type and properties in the ADT."""

    def nodes_config(self) -> dict[str, Any]:
        """The cloud's part of the controller's `nodes:` section."""

    def booter(self, kube: FakeKubeApi) -> Booter:
        """A booter that turns this cloud's running VMs into Nodes, labelled by their names."""

    def vms(self, app: str, states: str = "live", group: str = GROUP) -> list[tuple[str, str]]:
        """(name, id) of the group's VMs in `states` (live | gone), by tag or metadata."""

    def micado_vms(self, app: str) -> list[str]:
        """Names of every live VM this test may have made (its apps: `app` and the ids made
        from it): an orphan or duplicate shows here."""

    def delete_by_hand(self, vm_id: str) -> None:
        """The VM deleted in the cloud's console, not through MiCADO."""

    def refusing(self) -> contextlib.AbstractContextManager[tuple[str, ...]]:
        """While in it, the cloud refuses new VMs over the account's limit; gives the words
        of its refusal the controller's event must carry."""


@dataclass
class Ec2:
    """moto's EC2, private to the test: every tagged instance of the region is the test's. The
    controller reaches it through the fault proxy (`endpoint`), the test directly (`ec2`)."""

    endpoint: str
    ec2: Any
    credentials: Path
    proxy: FaultProxy

    def compute(self) -> dict[str, Any]:
        return {"type": "tosca.nodes.MiCADO.EC2.Compute",
                "properties": {"region_name": REGION, "image_id": AMI,
                               "instance_type": "t2.micro"}}

    def nodes_config(self) -> dict[str, Any]:
        return {"aws_credentials_file": str(self.credentials)}

    def booter(self, kube: FakeKubeApi) -> Booter:
        return Booter(ec2=self.ec2, kube=kube, server_url=SERVER_URL, labels={},
                      labels_of=labels_of_vm)

    def vms(self, app: str, states: str = "live", group: str = GROUP) -> list[tuple[str, str]]:
        wanted = ["pending", "running"] if states == "live" else ["shutting-down", "terminated"]
        found = self.ec2.describe_instances(Filters=[
            {"Name": "tag:micado.eu/app", "Values": [app]},
            {"Name": "tag:micado.eu/group", "Values": [group]},
            {"Name": "instance-state-name", "Values": wanted}])
        return sorted((next(t["Value"] for t in i["Tags"] if t["Key"] == "Name"),
                       i["InstanceId"]) for r in found["Reservations"] for i in r["Instances"])

    def micado_vms(self, app: str) -> list[str]:
        found = self.ec2.describe_instances(Filters=[
            {"Name": "tag-key", "Values": ["micado.eu/app"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        return sorted(next(t["Value"] for t in i["Tags"] if t["Key"] == "Name")
                      for r in found["Reservations"] for i in r["Instances"])

    def delete_by_hand(self, vm_id: str) -> None:
        self.ec2.terminate_instances(InstanceIds=[vm_id])

    @contextlib.contextmanager
    def refusing(self) -> Iterator[tuple[str, ...]]:
        self.proxy.inject(Fault("POST", "^/", 400, EC2_LIMIT, body="Action=RunInstances",
                                content_type="text/xml"))
        try:
            yield ("EC2 did not start", "InstanceLimitExceeded")
        finally:
            self.proxy.clear()


@dataclass
class Nova:
    """The session's OpenStack project, shared: only the test's app's servers are looked at."""

    cloud: OpenStackCloud
    conn: Any
    admin: Any

    @property
    def endpoint(self) -> str:
        return self.cloud.auth_url

    def compute(self) -> dict[str, Any]:
        return {"type": "tosca.nodes.MiCADO.Nova.Compute",
                "properties": {"image_id": self.cloud.image, "flavor_name": self.cloud.flavor,
                               "network_id": self.cloud.network,
                               "project_id": self.conn.current_project_id}}

    def nodes_config(self) -> dict[str, Any]:
        return {"clouds_yaml": str(self.cloud.clouds_yaml), "os_cloud": "project"}

    def booter(self, kube: FakeKubeApi) -> Booter:
        return NovaBooter(ec2=None, kube=kube, server_url=SERVER_URL, labels={},
                          labels_of=labels_of_vm, admin=self.admin)

    def vms(self, app: str, states: str = "live", group: str = GROUP) -> list[tuple[str, str]]:
        # a deleted server keeps its name and id in Nova's records, which admins can list
        gone = {"deleted_only": True} if states == "gone" else {}
        servers = self.admin.compute.servers(all_projects=True, **gone,
                                             project_id=self.conn.current_project_id)
        prefix = f"{group}-{app}-"
        return sorted((s.name, s.id) for s in servers if s.name.startswith(prefix) and (
            states == "gone" or (s.metadata or {}).get("micado.eu:group") == group))

    def micado_vms(self, app: str) -> list[str]:
        return sorted(s.name for s in self.conn.compute.servers()
                      if (s.metadata or {}).get("micado.eu:app", "").startswith(app))

    def delete_by_hand(self, vm_id: str) -> None:
        self.conn.compute.delete_server(vm_id)

    @contextlib.contextmanager
    def refusing(self) -> Iterator[tuple[str, ...]]:
        """The project's instance quota set to the servers it has (other tests' included)."""
        project = self.conn.current_project_id
        before = self.admin.get_compute_quotas(project).instances
        self.admin.set_compute_quotas(project, instances=len(list(self.conn.compute.servers())))
        try:
            yield ("OpenStack did not start", "quota", "instances")
        finally:
            self.admin.set_compute_quotas(project, instances=before)

    def remove_app(self, app: str) -> None:
        """What a failed test left of its apps (`app`, or ids made from it) in the shared
        project."""
        left = [s for s in self.conn.compute.servers()
                if (s.metadata or {}).get("micado.eu:app", "").startswith(app)]
        for server in left:
            self.conn.compute.delete_server(server)
        for server in left:
            self.conn.compute.wait_for_delete(server, wait=120)


@dataclass
class World:
    """The cloud, the fake Kubernetes API and Prometheus, the booter and the daemon over them."""

    tmp: Path
    app: str
    cloud: Cloud
    kube: FakeKubeApi
    prometheus: FakePrometheus
    booter: Booter
    daemon: Daemon

    def name(self, index: int) -> str:
        return f"{GROUP}-{self.app}-{index}"

    def start_app(self, wanted: int) -> None:
        self.prometheus.set(WANTED, wanted)
        adt = self.tmp / "app.yaml"
        adt.write_text(app_adt(self.cloud, "web", {GROUP: WANTED}, unreachable="5s"))
        started = self.daemon.cli("start", str(adt), "--id", self.app)
        assert started.returncode == 0, started.stderr

    def vms(self) -> dict[str, str]:
        """The group's live VMs: name -> id."""
        return dict(self.cloud.vms(self.app))

    def gone(self) -> list[str]:
        """Names of the group's VMs deleted or terminated so far, one entry per VM."""
        return [name for name, _id in self.cloud.vms(self.app, "gone")]

    def all_micado_vms(self) -> list[str]:
        return self.cloud.micado_vms(self.app)

    def nodes(self) -> set[str]:
        return {name for (_g, plural, _ns, name) in self.kube.objects if plural == "nodes"}

    def done(self, nodes: int, app: str | None = None,
             group: str = GROUP) -> list[dict[str, Any]]:
        """The group's operations that ended with `nodes` nodes (the test's app's by default)."""
        return [e for e in self.daemon.events("action") if e["app_id"] == (app or self.app)
                and e["message"].startswith(f"node group {group}: operation ")
                and e["message"].endswith(f" done, {nodes} nodes")]

    def reconciled(self, text: str) -> list[dict[str, Any]]:
        return [e for e in self.daemon.events("reconcile") if text in e["message"]]


@contextlib.contextmanager
def ec2_cloud(tmp_path: Path) -> Iterator[Ec2]:
    prerequisite(HAVE, "moto[server], ansible-runner and boto3 (pip install -e '.[test]')")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[default]\naws_access_key_id = AKIARECONCILE\n"
                           "aws_secret_access_key = reconcile-secret\n")
    credentials.chmod(0o600)
    with moto_server(tmp_path / "moto.log") as endpoint, FaultProxy(endpoint) as proxy:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        yield Ec2(proxy.url, ec2_client(endpoint), credentials, proxy)


@contextlib.contextmanager
def nova_cloud(request: pytest.FixtureRequest, app: str) -> Iterator[Nova]:
    cloud: OpenStackCloud = request.getfixturevalue("openstack_cloud")
    nova = Nova(cloud, cloud.connect("project"), cloud.connect("admin"))
    try:
        yield nova
    finally:
        nova.remove_app(app)


# How often the daemon lists the cloud (nodes.reconcile_seconds; it also lists at each start).
# A listing is an ansible-runner run of a few CPU seconds: at one every 5 s the listings took
# about half a core for as long as a scenario ran. The scenarios that wait for a listing to
# notice something mark themselves `cloud_listing(5)`.
LISTING_SECONDS = 30


def listing_every(request: pytest.FixtureRequest) -> float:
    marker = request.node.get_closest_marker("cloud_listing")
    return float(marker.args[0]) if marker is not None else LISTING_SECONDS


CLOUDS = ("ec2", "openstack")


def on_cloud(cloud: str) -> pytest.MarkDecorator:
    """The scenario on `cloud`, or on both with MICADO_BOTH_CLOUDS=1 (module docstring)."""
    both = os.environ.get("MICADO_BOTH_CLOUDS") == "1"
    return pytest.mark.parametrize("world", CLOUDS if both else [cloud], indirect=True)


@pytest.fixture(params=CLOUDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    app = "vms" + uuid.uuid4().hex[:4]  # the OpenStack project is shared with other tests
    with contextlib.ExitStack() as stack:
        cloud: Cloud = stack.enter_context(
            ec2_cloud(tmp_path) if request.param == "ec2" else nova_cloud(request, app))
        prometheus = stack.enter_context(FakePrometheus())
        kube = stack.enter_context(FakeKubeApi())
        booter = stack.enter_context(cloud.booter(kube))
        kubeconfig = write_kubeconfig(tmp_path / "nodes-kubeconfig", kube.url, "admin")
        daemon = Daemon(tmp_path, kube.url, prometheus.url, tmp_path / "rules",
                        tmp_path / "targets", tick_seconds=1.0,
                        nodes={"server_url": SERVER_URL, "kubeconfig": str(kubeconfig),
                               "collections_path": str(REPO / "collections"),
                               **cloud.nodes_config(),
                               "ready_timeout": 120, "drain_timeout": 60,
                               "reconcile_seconds": listing_every(request),
                               "backoff_seconds": 1, "backoff_max_seconds": 2})
        daemon.start()
        stack.callback(kill_tree, daemon)
        yield World(tmp_path, app, cloud, kube, prometheus, booter, daemon)


def labels_of_vm(name: str) -> dict[str, str]:
    """The labels a VM named `<group>-<app>-<index>` (the role's naming) joins with."""
    group, app, _index = name.rsplit("-", 2)
    return {"micado.eu/node_type": group, "micado.eu/app": app}


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
    wait_for(world.vms, WAIT, "the first create call")
    kill_tree(world.daemon)
    world.booter.hold.clear()
    world.daemon.start()
    wait_for(lambda: world.reconciled("was in flight when the controller stopped: resumed"),
             WAIT, "the operation resumed")
    wait_for(lambda: world.done(2), WAIT, "the resumed operation to finish")
    both = {world.name(1), world.name(2)}
    wait_for(lambda: world.nodes() == both, WAIT, "both Nodes")
    assert world.all_micado_vms() == sorted(both)
    assert world.gone() == []  # none made twice and deleted
    assert world.daemon.events("action_failed") == []
    # the VMs shown by `micado status` come from the store: there at once after a restart
    assert world.daemon.stop() == 0
    world.daemon.start()
    shown = world.daemon.cli("status", world.app).stdout
    ids = world.vms()
    assert f"VMs (2): {world.name(1)} ({ids[world.name(1)]}" in shown, shown


@on_cloud("openstack")
def test_kill_9_mid_drain_then_the_app_deleted_leaves_no_vm(world: World) -> None:
    world.start_app(2)
    wait_for(lambda: world.done(2), WAIT, "the 0 -> 2 operation")
    world.kube.seed({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "web-2", "namespace": "default",
                                  "ownerReferences": [{"apiVersion": "apps/v1",
                                                       "kind": "ReplicaSet", "name": "web",
                                                       "uid": "1", "controller": True}]},
                     "spec": {"nodeName": world.name(2),
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
    assert world.all_micado_vms() == [world.name(1)]
    assert world.gone() == [world.name(2)]
    assert world.nodes() == {world.name(1)}
    assert world.kube.get("", "pods", "default", "web-2") is None

    stopped = world.daemon.cli("stop", world.app)
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: [e for e in world.daemon.events("action")
                      if "its VMs are removed" in e["message"]], WAIT, "the VMs removed")
    assert world.all_micado_vms() == []
    assert world.nodes() == set()
    assert world.daemon.events("action_failed") == []


@on_cloud("ec2")
def test_a_notready_group_node_is_replaced_and_a_static_one_reported(world: World) -> None:
    world.start_app(1)
    wait_for(lambda: world.done(1), WAIT, "the 0 -> 1 operation")
    [old] = world.vms().values()
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    down = [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
             "lastTransitionTime": since}]
    node = world.kube.get("", "nodes", "", world.name(1))
    assert node is not None
    world.kube.seed({**node, "status": {**node["status"], "conditions": down}})
    world.kube.seed({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": "static-worker", "labels": {}},
                     "status": {"conditions": down}})
    wait_for(lambda: world.reconciled("NotReady for more than 5 s: drained, deleted and "
                                      "replaced"), WAIT, "the replacement")
    wait_for(lambda: [e for e in world.daemon.events("action") if "done, 1 nodes"
                      in e["message"]][1:], WAIT, "the replacement to finish")
    [new] = world.vms().values()
    assert new != old
    assert world.gone() == [world.name(1)]
    wait_for(lambda: (world.kube.get("", "nodes", "", world.name(1)) or {}).get(
        "status", {}).get("conditions", [{}])[0].get("status") == "True", WAIT,
        "the new Node Ready")
    assert world.all_micado_vms() == [world.name(1)]
    reports = world.reconciled("Node static-worker (a static worker or edge node) is NotReady")
    assert len(reports) == 1
    assert world.kube.get("", "nodes", "", "static-worker") is not None


@pytest.mark.parametrize("world", ["ec2"], indirect=True)
@pytest.mark.cloud_listing(5)  # only a listing sees the VM without its Node
def test_a_group_vm_whose_node_is_gone_is_replaced(world: World) -> None:
    """Its Node deleted by hand (a kubelet that never registers again): with no operation in
    flight, past the policy's node_unreachable_timeout, the VM is replaced."""
    world.start_app(1)
    wait_for(lambda: world.done(1), WAIT, "the 0 -> 1 operation")
    [old] = world.vms().values()
    world.kube.handle("DELETE", f"/api/v1/nodes/{world.name(1)}", None, b"")
    wait_for(lambda: world.reconciled(f"{world.name(1)} without a Node for more than 5 s: "
                                      "drained, deleted and replaced"), WAIT, "the replacement")
    wait_for(lambda: world.done(1)[1:], WAIT, "the replacement to finish")
    [new] = world.vms().values()
    assert new != old
    assert world.gone() == [world.name(1)]
    assert world.nodes() == {world.name(1)}
    assert world.daemon.events("action_failed") == []


@on_cloud("ec2")
def test_a_cloud_refusing_vms_backs_the_group_off_then_it_recovers(world: World) -> None:
    """Over the account's limit (EC2's InstanceLimitExceeded through the fault proxy, Nova's
    real quota): the run fails, the event and `micado status` carry the cloud's reason and the
    backoff, the group keeps the VM it has; with the limit lifted, the retry adds the VM."""
    world.start_app(1)
    wait_for(lambda: world.done(1), WAIT, "the 0 -> 1 operation")
    with world.cloud.refusing() as words:
        world.prometheus.set(WANTED, 2)
        [failed, *_] = wait_for(lambda: world.daemon.events("action_failed"), WAIT,
                                "the refused run")
        message = failed["message"]
        assert f"did not start {world.name(2)}" in message, message
        assert all(w.lower() in message.lower() for w in words), message
        assert "backing off" in message, message
        shown = wait_for(lambda: (lambda out: out if "backing off until" in out else "")(
            world.daemon.cli("status", world.app).stdout), WAIT, "the backoff in the status")
        assert words[1].lower() in shown.lower(), shown
        assert list(world.vms()) == [world.name(1)]
    wait_for(lambda: world.done(2), WAIT, "the retry once the cloud takes VMs again")
    assert sorted(world.vms()) == [world.name(1), world.name(2)]
    assert world.all_micado_vms() == [world.name(1), world.name(2)]
    shown = world.daemon.cli("status", world.app).stdout
    assert "backing off" not in shown, shown  # the group's backoff ended with the good run


@on_cloud("ec2")
@pytest.mark.cloud_listing(5)  # only a listing sees the VM deleted in the cloud's console
def test_a_vm_lost_outside_is_made_again_and_a_crash_mid_deletion_leaves_no_orphan(
        world: World) -> None:
    world.start_app(2)
    wait_for(lambda: world.done(2), WAIT, "the 0 -> 2 operation")
    lost = world.vms()[world.name(2)]
    world.cloud.delete_by_hand(lost)  # in the cloud's console
    world.kube.handle("DELETE", f"/api/v1/nodes/{world.name(2)}", None, b"")
    wait_for(lambda: world.reconciled("1 VMs in the cloud, 2 wanted: resized to 2"), WAIT,
             "the reconciliation to notice")
    wait_for(lambda: len(world.done(2)) > 1, WAIT, "the group made whole again")
    again = world.vms()
    assert set(again) == {world.name(1), world.name(2)}
    assert again[world.name(2)] != lost

    stopped = world.daemon.cli("stop", world.app)
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


@on_cloud("ec2")
def test_two_apps_and_two_groups_scale_at_once(world: World) -> None:
    """One app with two node groups and another with one scale out together, then the first
    app's groups scale in while the other's grows: the runs overlap (every group's first runner
    event comes before any group's run ends), and each group ends with exactly its own VMs, its
    Nodes labelled with its own app and group, nothing of the other app touched."""
    two = world.app + "two"  # its VMs are the test's too (the OpenStack cleanup takes both)
    workers, big = "micado_two_groups_workers", "micado_two_groups_big"
    world.prometheus.set(workers, 2)
    world.prometheus.set(big, 1)
    adt = world.tmp / "two.yaml"
    adt.write_text(app_adt(world.cloud, "shop", {GROUP: workers, "big-node": big}))
    world.start_app(2)
    started = world.daemon.cli("start", str(adt), "--id", two)
    assert started.returncode == 0, started.stderr

    groups = [(world.app, GROUP, 2), (two, GROUP, 2), (two, "big-node", 1)]
    wait_for(lambda: all(world.done(n, app, group) for app, group, n in groups), WAIT,
             "the three groups' first operations")
    events = world.daemon.events()
    firsts = [first_runner_event(events, app, group) for app, group, _n in groups]
    ends = [world.done(n, app, group)[0]["id"] for app, group, n in groups]
    assert max(firsts) < min(ends), "a group's run waited for another's to end"
    expect_vms(world, {world.app: {GROUP: 2}, two: {GROUP: 2, "big-node": 1}})

    # the second app's groups go down while the first one's grows, again at once
    world.prometheus.set(workers, 1)
    world.prometheus.set(big, 0)
    world.prometheus.set(WANTED, 3)
    wait_for(lambda: world.done(1, two) and world.done(0, two, "big-node") and world.done(3),
             WAIT, "the second operations")
    expect_vms(world, {world.app: {GROUP: 3}, two: {GROUP: 1, "big-node": 0}})
    assert world.gone() == []  # the first app lost no VM on the way
    assert [name for name, _id in world.cloud.vms(two, "gone")] == [f"{GROUP}-{two}-2"]
    assert [name for name, _id in world.cloud.vms(two, "gone", "big-node")] == [
        f"big-node-{two}-1"]
    assert world.daemon.events("action_failed") == []
    assert world.daemon.events("runner_failed") == []


def first_runner_event(events: list[dict[str, Any]], app: str, group: str) -> int:
    return min(e["id"] for e in events if e["kind"] == "runner" and e["app_id"] == app
               and e["message"].startswith(f"node group {group}: "))


def expect_vms(world: World, wanted: dict[str, dict[str, int]]) -> None:
    """Exactly these VMs per app and group, named by index, each a Node with its own labels."""
    names = set()
    for app, groups in wanted.items():
        for group, count in groups.items():
            expected = [f"{group}-{app}-{i}" for i in range(1, count + 1)]
            assert [name for name, _id in world.cloud.vms(app, "live", group)] == expected
            names.update(expected)
    wait_for(lambda: world.nodes() == names, WAIT, f"the Nodes {sorted(names)}")
    for name in names:
        node = world.kube.get("", "nodes", "", name)
        assert node is not None
        labels = node["metadata"].get("labels", {})
        assert {k: labels.get(k) for k in labels_of_vm(name)} == labels_of_vm(name), name
    assert world.all_micado_vms() == sorted(names)


# The role's tasks that change the cloud or the cluster (or the store, the last one): the
# kill points are each one's start and the step right after it (the change reported done).
CHANGING = ("Create the join token in the cluster", "Start the missing EC2 instances",
            "Wait for the cloud's answers", "Wait until the new Nodes are Ready",
            "Drain the Node of", "Delete the Node of", "Terminate the EC2 instance",
            "Report the group's VMs to the controller")


@pytest.mark.parametrize("world", ["ec2"], indirect=True)
@pytest.mark.idle  # ten minutes, mostly waiting for the daemon's restarts: make test's idle lane
def test_kill_9_at_every_step_of_a_scale_out_and_a_scale_in(world: World) -> None:
    """The steps are the runner events of an undisturbed 0 -> 1 and 1 -> 0 (every play, task
    and change the role reports); then, for each kill point among them, the same operation
    again with the controller's whole process tree killed as soon as that step shows, and a
    restart: the operation ends with exactly the desired VM (or none), its Node to match,
    nothing made twice. The kill points are the steps around every change (CHANGING);
    MICADO_KILL_EVERY_STEP=1 takes every step (about 60 restarts; the steps between two changes
    leave the world as the one before). On EC2 only (moto answers in milliseconds); the Nova
    scenarios above kill mid create and mid drain."""
    world.start_app(1)
    wait_for(lambda: settled(world, 1), WAIT, "the first scale-out")
    out_steps = steps(world, world.done(1)[-1])
    world.prometheus.set(WANTED, 0)
    wait_for(lambda: settled(world, 0), WAIT, "the first scale-in")
    in_steps = steps(world, world.done(0)[-1])
    every = os.environ.get("MICADO_KILL_EVERY_STEP") == "1"
    out_points = list(range(len(out_steps))) if every else around_changes(out_steps)
    in_points = list(range(len(in_steps))) if every else around_changes(in_steps)
    missing = [c for c in CHANGING if not any(s.startswith(f"task: {c}")
                                              for s in out_steps + in_steps)]
    assert not missing, f"the role no longer has these steps: {missing}"
    deleted = 1
    for index in range(max(len(out_points), len(in_points))):
        for wanted, points, run in ((1, out_points, out_steps), (0, in_points, in_steps)):
            if index >= len(points):
                world.prometheus.set(WANTED, wanted)
                wait_for(lambda w=wanted: settled(world, w), WAIT, f"the scale to {wanted}")
                continue
            step = run[points[index]]
            nth = run[:points[index] + 1].count(step)  # a step may show more than once
            since = world.daemon.events()[-1]["id"]
            world.prometheus.set(WANTED, wanted)
            wait_for(lambda s=step, i=since, n=nth: len(
                [e for e in world.daemon.events("runner")
                 if e["id"] > i and e["message"].endswith(f": {s}")]) >= n,
                WAIT, f"step {step!r}", slowest=0.1)  # the kill lands at that step
            kill_tree(world.daemon)
            world.daemon.start()
            wait_for(lambda w=wanted: settled(world, w), WAIT,
                     f"the scale to {wanted} killed at {step!r} to end")
        deleted += 1
        assert world.all_micado_vms() == [], f"left after the kill points {index}"
        assert len(world.gone()) == deleted, f"a VM made twice around the kill points {index}"
    assert world.daemon.events("action_failed") == []


def around_changes(steps: list[str]) -> list[int]:
    """Where the steps start a CHANGING task, and the step right after each."""
    starts = [i for i, s in enumerate(steps) if any(s.startswith(f"task: {c}") for c in CHANGING)]
    return sorted({j for i in starts for j in (i, i + 1) if j < len(steps)})


def settled(world: World, wanted: int) -> bool:
    """No operation in flight, the group's VMs exactly 1..wanted, each a Node."""
    metrics = world.daemon.api("GET", "/metrics").text
    pending = [line for line in metrics.splitlines()
               if line.startswith("micado_pending_operations ")]
    names = {world.name(i) for i in range(1, wanted + 1)}
    return (pending == ["micado_pending_operations 0.0"] and set(world.vms()) == names
            and world.nodes() == names)


def steps(world: World, done: dict[str, Any]) -> list[str]:
    """The runner events of the operation that `done` ended, without the operation's id."""
    op = done["message"].split(" operation ", 1)[1].split(" ", 1)[0]
    return [e["message"].split(f" operation {op}: ", 1)[1]
            for e in world.daemon.events("runner") if f" operation {op}: " in e["message"]]
