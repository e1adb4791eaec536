"""The flagship end to end on OpenStack: MiCADO's stressng ADT (examples/micado/stressng_nova.yaml,
its placeholders filled in for the test cloud, its scaling rules untouched) through the
controller daemon in its own process, which runs the real `micado.core.scale_nodes` through
ansible-runner against real Nova (openstack_fixture.py: Keystone, Placement, Nova with its fake
hypervisor, Glance, Neutron from PyPI on loopback) with the fixture's clouds.yaml.

The load is the ADT's own alerts (node_overloaded, service_overloaded, ...), which the fake
Prometheus (tests/fakes/prometheus_api.py) fires as a test says, as in
test_node_groups_ec2.py; the Kubernetes API is tests/fakes/kube_api.py, and the VMs join through
cloud_node_openstack_harness.NovaBooter, which checks each one's user-data first.

min_instances 1: the first VM at deploy; load rises -> the node rule adds a second VM (after
the ADT's 60 s of stability) -> its Node joins -> the container rule (replicas only up to the
node count) raises stressng's replicas to 2; load falls -> replicas back to 1 and, 60 s after,
the newest VM's Node is drained and deleted, then the server. No secret (OpenStack passwords,
the Kubernetes token, the join token) lands in any file of the state dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.cloud_node_harness import write_kubeconfig
from tests.integration.cloud_node_openstack_harness import (
    SERVER_URL,
    NovaBooter,
    delete_all_servers,
    group_servers,
)

from conftest import REPO
from e2e.daemon_harness import Daemon, wait_for
from fakes.prometheus_api import FakePrometheus
from integration.openstack_fixture import OpenStackCloud

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "micado-os-e2e-admin-bearer-token-0123456789"
EXAMPLE = REPO / "examples" / "micado" / "stressng_nova.yaml"
APP = "stress"
GROUP = "worker-node"


def example_adt(cloud: OpenStackCloud, key_name: str) -> str:
    """stressng_nova.yaml with its placeholders filled in for the test cloud (rules as they are)."""
    conn = cloud.connect("project")
    adt = yaml.safe_load(EXAMPLE.read_text())
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


def node_names(kube: FakeKubeApi) -> set[str]:
    return {name for (_g, plural, _ns, name) in kube.objects if plural == "nodes"}


def replicas(kube: FakeKubeApi) -> int | None:
    for (_g, plural, _ns, name), obj in list(kube.objects.items()):
        if plural == "deployments" and name.startswith("stressng"):
            return int(obj.get("spec", {}).get("replicas", 1))
    return None


def finished(daemon: Daemon, nodes: int) -> list[dict[str, Any]]:
    return [e for e in daemon.events("action") if f"done, {nodes} nodes" in e["message"]]


def test_stressng_on_nova_scales_vms_and_replicas_both_ways(
        openstack_cloud: OpenStackCloud, tmp_path: Path) -> None:
    conn, admin = openstack_cloud.connect("project"), openstack_cloud.connect("admin")
    delete_all_servers(conn)
    labels = {"micado.eu/node_type": GROUP, "micado.eu/app": APP}
    key = conn.compute.create_keypair(name="micado-e2e")
    try:
        with FakePrometheus() as prometheus, FakeKubeApi() as kube, \
                NovaBooter(ec2=None, kube=kube, server_url=SERVER_URL, labels=labels,
                           admin=admin) as booter:
            kubeconfig = write_kubeconfig(tmp_path / "nodes-kubeconfig", kube.url, ADMIN_TOKEN)
            daemon = Daemon(tmp_path, kube.url, prometheus.url, tmp_path / "rules",
                            tmp_path / "targets", tick_seconds=2.0,
                            nodes={"server_url": SERVER_URL, "kubeconfig": str(kubeconfig),
                                   "collections_path": str(REPO / "collections"),
                                   "clouds_yaml": str(openstack_cloud.clouds_yaml),
                                   "os_cloud": "project", "ready_timeout": 300,
                                   "drain_timeout": 60,
                                   "backoff_seconds": 5, "backoff_max_seconds": 10})
            daemon.start()
            try:
                run_scenario(daemon, tmp_path, openstack_cloud, key.name, conn, kube,
                             prometheus)
                assert daemon.stop() == 0
            finally:
                daemon.kill()
            tokens = set(booter.tokens)
            problems = dict(booter.problems)
    finally:
        delete_all_servers(conn)
        conn.compute.delete_keypair(key)
    assert problems == {f"{GROUP}-{APP}-1": [], f"{GROUP}-{APP}-2": []}
    assert len(tokens) == 2  # one short-lived join token per scale-out run
    secrets = {"OpenStack user password": openstack_cloud.user_password,
               "OpenStack admin password": openstack_cloud.admin_password,
               "Kubernetes admin token": ADMIN_TOKEN}
    for token in tokens:
        secrets[f"join token {token[-6:]}"] = token.rpartition("::")[2]
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files)
    leaks = [f"{what} in {p.relative_to(tmp_path)}" for p in files
             for what, secret in secrets.items() if secret.encode() in p.read_bytes()]
    assert leaks == []


def run_scenario(daemon: Daemon, tmp_path: Path, cloud: OpenStackCloud, key: str, conn: Any,
                 kube: FakeKubeApi, prometheus: FakePrometheus) -> None:
    first, second = f"{GROUP}-{APP}-1", f"{GROUP}-{APP}-2"
    adt = tmp_path / "app.yaml"
    adt.write_text(example_adt(cloud, key))
    started = daemon.cli("start", str(adt), "--id", APP)
    assert started.returncode == 0, started.stderr

    # deploy: min_instances 1 -> one server, ACTIVE, tagged, its Node joins
    wait_for(lambda: finished(daemon, 1) or daemon.events("action_failed"), 600,
             "the 0 -> 1 operation to end")
    assert daemon.events("action_failed") == [], daemon.events("action_failed")
    servers = group_servers(conn, APP, GROUP)
    assert set(servers) == {first}
    assert servers[first].status == "ACTIVE" and servers[first].key_name == key
    assert servers[first].metadata["micado.eu:index"] == "1"
    assert node_names(kube) == {first}
    assert replicas(kube) == 1

    # load rises: the node rule adds a VM once the group has been stable for 60 s (the
    # container rule adds no replica while there is one node per replica)
    prometheus.fire(APP, "node_overloaded", "service_overloaded")
    wait_for(lambda: finished(daemon, 2) or daemon.events("action_failed"), 600,
             "the 1 -> 2 operation to end")
    assert daemon.events("action_failed") == [], daemon.events("action_failed")
    # the new VM took the nodes' load (else the rule adds a third 60 s after): the service is
    # still overloaded, and with two nodes the container rule adds a replica
    prometheus.fire(APP, "service_overloaded")
    assert set(group_servers(conn, APP, GROUP)) == {first, second}
    assert node_names(kube) == {first, second}
    wait_for(lambda: replicas(kube) == 2, 120, "stressng's replicas to rise to 2")
    shown = daemon.cli("status", APP).stdout
    assert f"node group {GROUP}: last runner event: task: " in shown, shown
    for name, server in group_servers(conn, APP, GROUP).items():
        assert f"{name} ({server.id}, active" in shown, shown

    # load falls: replicas back to 1, then (60 s stable) the newest VM drained and deleted
    prometheus.fire(APP, "node_underloaded", "service_underloaded")
    wait_for(lambda: replicas(kube) == 1, 120, "stressng's replicas to fall to 1")
    wait_for(lambda: len(finished(daemon, 1)) >= 2 or daemon.events("action_failed"), 600,
             "the 2 -> 1 operation to end")
    assert daemon.events("action_failed") == [], daemon.events("action_failed")
    assert set(group_servers(conn, APP, GROUP)) == {first}
    assert node_names(kube) == {first}
    assert [r for r in kube.requests
            if r.method == "PATCH" and r.path == f"/api/v1/nodes/{second}"], "no cordon"
    shown = daemon.cli("status", APP).stdout
    assert f"{first} (" in shown and second not in shown, shown
