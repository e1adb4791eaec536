"""micado.core.scale_nodes on OpenStack: real Keystone, Placement, Nova (Nova's fake
hypervisor), Glance and Neutron from PyPI on loopback (openstack_fixture.py, one cloud for the
session), reached by openstack.cloud modules through the fixture's clouds.yaml
(OS_CLIENT_CONFIG_FILE), the playbook run by the real ansible-runner as the controller runs it,
and a Kubernetes API through a kubeconfig (tests/fakes/kube_api.py). ACTIVE servers "boot"
through cloud_node_openstack_harness.NovaBooter, which checks each one's join.

The EC2 twin is test_cloud_node_ec2.py; the cloud faults (500s, quota, BUILD) are in
test_cloud_node_faults.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.openstack_fixture import OpenStackCloud

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "micado-os-admin-bearer-token-0123456789"
LABELS = {"micado.eu/node_type": "worker", "micado.eu/app": "shop"}
NAMES = {"worker-shop-1", "worker-shop-2", "worker-shop-3"}


@pytest.fixture
def cloud(openstack_cloud: OpenStackCloud, tmp_path: Path) -> Any:
    """An OpenStack project without servers, a Kubernetes API, a kubeconfig and a booter."""
    from tests.fakes.kube_api import FakeKubeApi
    from tests.integration.cloud_node_harness import write_kubeconfig
    from tests.integration.cloud_node_openstack_harness import (
        SERVER_URL,
        NovaBooter,
        delete_all_servers,
        run_scale_openstack,
    )

    conn = openstack_cloud.connect("project")
    admin = openstack_cloud.connect("admin")
    delete_all_servers(conn)
    with FakeKubeApi() as kube:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube.url, ADMIN_TOKEN)
        booter = NovaBooter(ec2=None, kube=kube, server_url=SERVER_URL, labels=LABELS,
                            admin=admin)

        class Cloud:
            pdd = tmp_path / "runner"

            def __init__(self) -> None:
                self.kube, self.conn, self.admin, self.booter = kube, conn, admin, booter

            def scale(self, desired: int, **extravars: Any) -> Any:
                return run_scale_openstack(self.pdd, openstack_cloud.clouds_yaml, kubeconfig,
                                           openstack_cloud, desired, **extravars)

            def servers(self) -> dict[str, Any]:
                from tests.integration.cloud_node_openstack_harness import group_servers

                return group_servers(conn, "shop", "worker")

        try:
            with booter:
                yield Cloud()
        finally:
            delete_all_servers(conn)


def node_names(kube: Any) -> set[str]:
    return {name for (_g, plural, _ns, name) in kube.objects if plural == "nodes"}


def assert_ok(result: Any) -> None:
    from tests.integration.cloud_node_harness import failures_of

    assert (result.status, result.rc) == ("successful", 0), failures_of(result)


def seed_pod(kube: Any, name: str, node: str, *, owned: bool) -> None:
    owner = {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                  "uid": "1", "controller": True}]} if owned else {}
    kube.seed({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", **owner},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
               "status": {"phase": "Running"}})


def test_scale_0_3_1_0_joins_drains_and_honours_drop(cloud: Any,
                                                     openstack_cloud: OpenStackCloud) -> None:
    from tests.integration.cloud_node_harness import stats_of

    result = cloud.scale(3)
    assert_ok(result)
    servers = cloud.servers()
    assert set(servers) == NAMES
    network = cloud.conn.network.find_network(openstack_cloud.network)
    for name, server in servers.items():
        assert server.status == "ACTIVE"
        assert server.metadata == {"micado.eu:app": "shop", "micado.eu:group": "worker",
                                   "micado.eu:index": name.rsplit("-", 1)[1],
                                   "micado.eu:operation": "op-1"}
        assert [s["name"] for s in server.security_groups] == ["default"]
        assert [p.network_id for p in cloud.conn.network.ports(device_id=server.id)] == [
            network.id]
    assert cloud.booter.problems == {n: [] for n in NAMES}
    assert node_names(cloud.kube) == NAMES
    stats = stats_of(result)
    assert stats["micado_node_count"] == 3
    assert {n["name"] for n in stats["micado_nodes"]} == NAMES
    assert {n["id"] for n in stats["micado_nodes"]} == {s.id for s in servers.values()}
    assert all(n["state"] == "active" and n["address"].startswith("10.77.0.")
               for n in stats["micado_nodes"]), stats
    assert len(cloud.booter.tokens) == 1
    cloud_config = yaml.safe_load(cloud.booter.user_data["worker-shop-1"])
    assert cloud_config["packages"] == ["htop"]
    assert cloud_config["runcmd"][-1] == "echo adt"
    assert "k3s" in str(cloud_config["runcmd"][0])

    seed_pod(cloud.kube, "web-1", "worker-shop-1", owned=True)
    seed_pod(cloud.kube, "db-1", "worker-shop-2", owned=False)
    server_alive_when_node_deleted: dict[str, bool] = {}

    def on_request(method: str, path: str) -> None:
        if method == "DELETE" and path.startswith("/api/v1/nodes/"):
            name = path.rsplit("/", 1)[1]
            server_alive_when_node_deleted[name] = name in cloud.servers()

    cloud.kube.on_request(on_request)
    result = cloud.scale(1, cloud_node_drop=["worker-shop-1", "not-in-this-group"])
    assert_ok(result)
    assert set(cloud.servers()) == {"worker-shop-2"}
    assert node_names(cloud.kube) == {"worker-shop-2"}
    assert server_alive_when_node_deleted == {"worker-shop-1": True, "worker-shop-3": True}
    assert cloud.kube.get("", "pods", "default", "web-1") is None
    assert cloud.kube.get("", "pods", "default", "db-1") is not None
    evictions = [r.path for r in cloud.kube.requests if r.path.endswith("/eviction")]
    assert evictions == ["/api/v1/namespaces/default/pods/web-1/eviction"]
    assert [r for r in cloud.kube.requests
            if r.method == "PATCH" and r.path == "/api/v1/nodes/worker-shop-1"], "no cordon"
    assert stats_of(result)["micado_node_count"] == 1
    assert [n["name"] for n in stats_of(result)["micado_nodes"]] == ["worker-shop-2"]

    result = cloud.scale(0)
    assert_ok(result)
    assert cloud.servers() == {}
    assert node_names(cloud.kube) == set()
    assert cloud.kube.get("", "pods", "default", "db-1") is None
    assert stats_of(result) == {"micado_nodes": [], "micado_node_count": 0}


def test_rerun_at_the_same_size_changes_nothing(cloud: Any) -> None:
    from tests.integration.cloud_node_harness import changed_tasks, stats_of

    assert_ok(cloud.scale(2))
    before = {n: s.id for n, s in cloud.servers().items()}
    secrets = {k for k in cloud.kube.objects if k[1] == "secrets"}
    result = cloud.scale(2, cloud_node_drop=["worker-shop-1"])
    assert_ok(result)
    assert changed_tasks(result) == []
    assert result.stats["changed"] == {}
    assert {n: s.id for n, s in cloud.servers().items()} == before
    assert {k for k in cloud.kube.objects if k[1] == "secrets"} == secrets
    assert stats_of(result)["micado_node_count"] == 2


def test_a_vm_that_never_joins_fails_the_run_naming_it(cloud: Any) -> None:
    from tests.integration.cloud_node_harness import failures_of, stats_of

    cloud.booter.never_join.add("worker-shop-2")
    # long enough for Nova to build both (the same timeout bounds ACTIVE, then the join)
    result = cloud.scale(2, cloud_node_ready_timeout=45)
    assert result.status == "failed"
    failures = failures_of(result)
    assert len(failures) == 1, failures
    assert "worker-shop-2" in failures[0] and "worker-shop-1" not in failures[0]
    assert "45 s" in failures[0]
    assert cloud.booter.problems["worker-shop-2"] == []
    assert node_names(cloud.kube) == {"worker-shop-1"}
    # the silent server is deleted before the run ends, and the report (which still comes) says so
    assert "removed, the next run makes it again" in failures[0]
    assert set(cloud.servers()) == {"worker-shop-1"}
    assert stats_of(result)["micado_node_count"] == 1
    # the controller's retry at the same size makes it again, and this one joins
    cloud.booter.never_join.clear()
    assert_ok(cloud.scale(2, cloud_node_ready_timeout=45))
    assert node_names(cloud.kube) == {"worker-shop-1", "worker-shop-2"}
    assert set(cloud.servers()) == {"worker-shop-1", "worker-shop-2"}


def test_no_secret_in_any_runner_artefact(cloud: Any, openstack_cloud: OpenStackCloud) -> None:
    assert_ok(cloud.scale(2))
    assert_ok(cloud.scale(0))
    tokens = cloud.booter.tokens
    assert len(tokens) == 1
    token = next(iter(tokens))
    secrets = {"OpenStack user password": openstack_cloud.user_password,
               "OpenStack admin password": openstack_cloud.admin_password,
               "Kubernetes admin token": ADMIN_TOKEN, "join token": token.rpartition("::")[2],
               "join token secret": token.rpartition(".")[2]}
    files = [p for p in cloud.pdd.rglob("*") if p.is_file()]
    assert any("job_events" in str(p) for p in files)
    leaks = [f"{what} in {p.relative_to(cloud.pdd)}" for p in files
             for what, secret in secrets.items() if secret in p.read_text(errors="replace")]
    assert leaks == []


def test_check_mode_changes_nothing(cloud: Any) -> None:
    result = cloud.scale(2, cmdline="--check")
    assert_ok(result)
    assert cloud.servers() == {}
    assert {k for k in cloud.kube.objects if k[1] == "secrets"} == set()


@pytest.mark.parametrize(("extravars", "says"), [
    ({"cloud_node_os_cloud": ""}, "cloud_node_os_cloud (the cloud's name in the clouds.yaml"),
    ({"cloud_node_properties": {"flavor_name": "m1.micado"}}, "properties.image_id"),
    ({"cloud_node_properties": {"image_id": "i"}}, "flavor_name (or flavor_id)"),
    ({"cloud_node_properties": {"image_id": "i", "flavor_name": "f", "security_groups": "web"}},
     "properties.security_groups must be a list"),
    ({"cloud_node_desired": -2}, "cloud_node_desired must be 0 or more (got -2)"),
    ({"cloud_node_user_data": "- not\n- a map\n"}, "cloud-config map"),
])
def test_bad_request_fails_clearly_before_any_cloud_call(cloud: Any, extravars: dict[str, Any],
                                                         says: str) -> None:
    from tests.integration.cloud_node_harness import failures_of

    desired = extravars.pop("cloud_node_desired", 1)
    result = cloud.scale(desired, **extravars)
    assert result.status == "failed"
    assert any(says in f for f in failures_of(result)), failures_of(result)
    assert not any(e.get("event_data", {}).get("task", "").startswith("List the group")
                   for e in result.events)
    assert cloud.servers() == {}


def test_list_mode_reports_every_micado_vm_of_the_project_and_changes_nothing(
        cloud: Any, openstack_cloud: OpenStackCloud) -> None:
    """The reconciliation's view (cloud_node_mode: list): every server of the project with
    MiCADO's metadata, whatever its app or group, read from the metadata keys micado.eu:*."""
    from tests.integration.cloud_node_harness import changed_tasks, stats_of

    assert_ok(cloud.scale(1))
    # another app's server (made by another controller run) and a server MiCADO did not make
    conn = cloud.conn
    image = conn.image.find_image(openstack_cloud.image)
    flavor = conn.compute.find_flavor(openstack_cloud.flavor)
    network = conn.network.find_network(openstack_cloud.network)
    made = [conn.compute.create_server(
        name=name, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": network.id}],
        metadata=metadata) for name, metadata in (
            ("db-other-3", {"micado.eu:app": "other", "micado.eu:group": "db",
                            "micado.eu:index": "3"}),
            ("by-hand", {"owner": "someone"}))]
    for server in made:
        conn.compute.wait_for_server(server, wait=120)
    micado_servers = {s.id: s for s in conn.compute.servers()
                      if "micado.eu:app" in (s.metadata or {})}
    secrets = {k for k in cloud.kube.objects if k[1] == "secrets"}
    requests_before = len(cloud.kube.requests)

    result = cloud.scale(0, cloud_node_mode="list")

    assert_ok(result)
    assert changed_tasks(result) == []
    stats = stats_of(result)
    listed = {(n["name"], n["app"], n["group"], n["index"], n["state"])
              for n in stats["micado_nodes"]}
    # the project may hold other tests' servers: the two of this test, and exactly Nova's list
    assert {("worker-shop-1", "shop", "worker", 1, "active"),
            ("db-other-3", "other", "db", 3, "active")} <= listed
    assert {n["id"] for n in stats["micado_nodes"]} == set(micado_servers)
    assert "by-hand" not in {n["name"] for n in stats["micado_nodes"]}
    assert stats["micado_node_count"] == len(micado_servers)
    assert all(n["address"].startswith("10.77.0.") for n in stats["micado_nodes"]), stats
    assert set(cloud.servers()) == {"worker-shop-1"}
    assert {s.id for s in conn.compute.servers()} >= {s.id for s in made}
    assert {k for k in cloud.kube.objects if k[1] == "secrets"} == secrets
    assert node_names(cloud.kube) == {"worker-shop-1"}
    assert [r.method for r in cloud.kube.requests[requests_before:]] == []
