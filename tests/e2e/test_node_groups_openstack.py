"""The flagship end to end on OpenStack: MiCADO's stressng ADT (examples/micado/stressng_nova.yaml,
its placeholders filled in for the test cloud, its scaling rules untouched) submitted to the
controller daemon in its own process, as the controller's own ServiceAccount on the real control
plane (tests/kube/cluster.py: the real scheduler places the pods, kwok stands in for the
kubelets). The daemon runs the real `micado.core.scale_nodes` through ansible-runner against
real Nova (openstack_fixture.py: Keystone, Placement, Nova with its fake hypervisor, Glance,
Neutron from PyPI on loopback) with the fixture's clouds.yaml; the VMs join through
cloud_node_openstack_harness.NovaBooter, which checks each one's user-data join (the bootstrap
token authenticates on the API server) and registers its Node as a kubelet would.

The load is the nodes' and stressng's CPU, `container_cpu_usage_seconds_total` as cAdvisor
labels it (id="/" for a node, pod=... for a container), counters a real Prometheus scrapes from
one exporter per node whose rates the test sets (tests/e2e/flagship.py); the ADT's own alerts
(node_overloaded, service_overloaded, ... with their `for:`) fire in Prometheus. The one
addition to the ADT besides its placeholders: stressng's `host` requirement on worker-node
(compiled into nodeAffinity), so the scheduler may place it only on the group's VMs.

The timeline: one VM at deploy (min_instances 1), its Node Ready, stressng's pod scheduled
there; load rises (node and service CPU 90 %) -> node_overloaded -> the node rule adds a VM
(the first VM's CPU falls once it is decided: the work spreads) -> its Node Ready -> the
container rule (replicas only up to the node count) raises stressng to 2 replicas and the
scheduler places the new pod on the new VM; load falls. The ADT's rules take the nodes' CPU and
the service's apart: the nodes' falls first, so the node rule removes the newest VM while its
pod still runs there (else the service's rule, whose alert waits 30 s where the node's waits
60 s, would remove that pod first and the drain would have nothing to evict): its Node
cordoned, the pod evicted (watched) and placed back on the first VM, the Node deleted, the
server deleted; then the service's CPU falls and replicas go back to 1. No secret (the OpenStack
passwords, the controller's Kubernetes token, the join tokens) lands in any file of the state
dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.cloud_node_openstack_harness import (
    SERVER_URL,
    NovaBooter,
    delete_all_servers,
    group_servers,
)

from conftest import REPO
from e2e.flagship import Flagship, flagship, join_secrets, kubeconfig_token, leaks, pinned_adt
from integration.openstack_fixture import OpenStackCloud
from kube.cluster import KubeCluster
from kube.node_join import ClusterJoining, ca_pem

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

EXAMPLE = REPO / "examples" / "micado" / "stressng_nova.yaml"
APP, GROUP, SERVICE = "stress", "worker-node", "stressng"
FIRST, SECOND = f"{GROUP}-{APP}-1", f"{GROUP}-{APP}-2"
CPU = "container_cpu_usage_seconds_total"  # cAdvisor's counter, what the ADT's alerts rate
HIGH, MID, LOW = 0.9, 0.45, 0.1  # CPU seconds a second: above 60 %, between, below 25 %


def example_adt(cloud: OpenStackCloud, key_name: str) -> str:
    """stressng_nova.yaml with its placeholders filled in for the test cloud, stressng hosted
    on worker-node."""
    conn = cloud.connect("project")
    adt = pinned_adt(yaml.safe_load(EXAMPLE.read_text()), SERVICE, GROUP)
    worker = adt["topology_template"]["node_templates"][GROUP]
    default = next(g for g in conn.network.security_groups(name="default")
                   if g.project_id == conn.current_project_id)
    worker["properties"] = {
        "image_id": conn.image.find_image(cloud.image).id, "flavor_name": cloud.flavor,
        "project_id": conn.current_project_id,
        "network_id": conn.network.find_network(cloud.network).id,
        "key_name": key_name, "security_groups": [default.id]}
    worker["interfaces"]["Occopus"]["create"]["inputs"]["endpoint"] = cloud.auth_url
    return yaml.safe_dump(adt, sort_keys=False)


def cpu(story: Flagship, node: str, used: float, service: float | None = None) -> None:
    """A node's CPU (id="/"), and stressng's on it when given."""
    story.load.set(node, CPU, used, id="/")
    if service is not None:
        story.load.set(node, CPU, service, id=f"/kubepods/{SERVICE}", pod=SERVICE,
                       container=SERVICE)


def test_stressng_on_nova_scales_vms_and_replicas_with_its_load(
        openstack_cloud: OpenStackCloud, kube_cluster: KubeCluster, tmp_path: Path) -> None:
    conn, admin = openstack_cloud.connect("project"), openstack_cloud.connect("admin")
    delete_all_servers(conn)
    labels = {"micado.eu/node_type": GROUP, "micado.eu/app": APP}
    kubeconfig = kube_cluster.controller_kubeconfig
    key = conn.compute.create_keypair(name="micado-e2e")
    try:
        with NovaBooter(ec2=None, kube=ClusterJoining(kube_cluster), server_url=SERVER_URL,
                        labels=labels, ca_pem=ca_pem(kubeconfig), admin=admin) as booter, \
                flagship(kube_cluster, tmp_path, APP, GROUP, {
                    "server_url": SERVER_URL, "collections_path": str(REPO / "collections"),
                    "clouds_yaml": str(openstack_cloud.clouds_yaml), "os_cloud": "project",
                    "ready_timeout": 300, "drain_timeout": 60,
                    "backoff_seconds": 5, "backoff_max_seconds": 10}) as story:
            run_scenario(story, tmp_path, openstack_cloud, key.name, conn)
            tokens = set(booter.tokens)
            problems = dict(booter.problems)
    finally:
        delete_all_servers(conn)
        conn.compute.delete_keypair(key)
    assert problems == {FIRST: [], SECOND: []}
    assert len(tokens) == 2  # one short-lived join token per scale-out run
    secrets = {"OpenStack user password": openstack_cloud.user_password,
               "OpenStack admin password": openstack_cloud.admin_password,
               "controller's Kubernetes token": kubeconfig_token(kubeconfig),
               **join_secrets(tokens)}
    assert leaks(tmp_path / "state", secrets) == []


def decided(story: Flagship, desired: int) -> list[dict[str, Any]]:
    """The node rule's decisions to make the group `desired` VMs."""
    return [e for e in story.daemon.events("operation")
            if f"node group {GROUP} -> {desired}:" in e["message"]]


def run_scenario(story: Flagship, tmp_path: Path, cloud: OpenStackCloud, key: str,
                 conn: Any) -> None:
    cpu(story, FIRST, MID, MID)
    adt = tmp_path / "app.yaml"
    adt.write_text(example_adt(cloud, key))
    started = story.daemon.cli("start", str(adt), "--id", APP)
    assert started.returncode == 0, started.stderr

    # deploy: min_instances 1 -> one server, ACTIVE, tagged, its Node Ready, stressng there
    story.wait(lambda: story.finished(1), 600, "VM 1 created by the playbook")
    servers = group_servers(conn, APP, GROUP)
    assert set(servers) == {FIRST}
    assert servers[FIRST].status == "ACTIVE" and servers[FIRST].key_name == key
    assert servers[FIRST].metadata["micado.eu:index"] == "1"
    assert story.hosts(SERVICE, FIRST, {FIRST})  # its one pod
    assert story.replicas(SERVICE) == 1

    # load rises: node_overloaded (1 min) -> a second VM; the service rule adds no replica
    # while there is one node per replica
    story.mark("load rises: node and stressng CPU 90 %")
    cpu(story, FIRST, HIGH, HIGH)
    story.wait(lambda: decided(story, 2), 300, "the node rule decides on 2 VMs")
    cpu(story, FIRST, MID, HIGH)  # the work spreads to the new VM: no third one
    cpu(story, SECOND, MID)
    assert story.replicas(SERVICE) == 1
    story.wait(lambda: story.finished(2), 600, "VM 2 created by the playbook")
    assert set(group_servers(conn, APP, GROUP)) == {FIRST, SECOND}
    story.wait(lambda: story.replicas(SERVICE) == 2, 240, "stressng's replicas up to 2")
    moved = story.hosts(SERVICE, SECOND, {FIRST, SECOND})
    assert len(moved) == 1
    cpu(story, FIRST, MID, MID)  # two replicas share the service's load
    shown = story.status()
    assert f"node group {GROUP}: last runner event: task: " in shown, shown
    for name, server in group_servers(conn, APP, GROUP).items():
        assert f"{name} ({server.id}, active" in shown, shown

    # load falls, the nodes' first: node_underloaded (1 min) -> the newest VM drained
    story.mark("load falls: node CPU 10 %")
    cpu(story, FIRST, LOW)
    cpu(story, SECOND, LOW)
    story.wait(lambda: len(story.finished(1)) == 2, 600, "VM 2 removed by the playbook")
    assert set(group_servers(conn, APP, GROUP)) == {FIRST}
    story.drained(SERVICE, SECOND, FIRST, moved)
    assert len(story.running_on(SERVICE, FIRST)) == 2

    # then the service's: service_underloaded (30 s) -> one replica
    story.mark("load falls: stressng CPU 10 %")
    cpu(story, FIRST, LOW, LOW)
    story.wait(lambda: story.replicas(SERVICE) == 1, 180, "stressng's replicas down to 1")
