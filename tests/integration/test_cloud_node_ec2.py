"""micado.core.scale_nodes on EC2: moto's EC2 server on loopback (reached by amazon.aws through
AWS_ENDPOINT_URL), the playbook run by the real ansible-runner as the controller runs it, and a
Kubernetes API through a kubeconfig. VMs "boot" through
tests/integration/cloud_node_harness.Booter, which checks each one's join.

The Kubernetes API is the fake (tests/fakes/kube_api.py) here: its `on_request` hook sees the
order of the role's requests (each Node deleted while its VM still runs) and the exact
requests of the drain, between two looks of the test. The same playbook on the real API server,
as the controller's ServiceAccount, is tests/e2e/test_node_groups_ec2.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import prerequisite

# mostly waiting on moto and ansible-runner, no test bed: make test runs it beside the others
pytestmark = [pytest.mark.integration, pytest.mark.beside]

HAVE = all(importlib.util.find_spec(m) for m in ("moto", "ansible_runner", "boto3"))
AWS_KEY_ID = "AKIAMICADOTESTKEY01"
AWS_SECRET = "micado-test-secret-0123456789abcdefghij"
ADMIN_TOKEN = "micado-admin-bearer-token-0123456789"
LABELS = {"micado.eu/node_type": "worker", "micado.eu/app": "shop"}


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """moto's EC2 server in its own process, checking instance types as EC2 does."""
    prerequisite(HAVE, "moto[server], ansible-runner and boto3 (pip install -e '.[test]')")
    from tests.integration.cloud_node_harness import moto_server

    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


@pytest.fixture
def cloud(moto_endpoint: str, tmp_path: Path) -> Any:
    """A clean EC2, a Kubernetes API, a kubeconfig and a credentials file for one test."""
    import requests
    from tests.fakes.kube_api import FakeKubeApi
    from tests.integration.cloud_node_harness import Booter, ec2_client, run_scale, write_kubeconfig

    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {AWS_KEY_ID}\n"
                           f"aws_secret_access_key = {AWS_SECRET}\n")
    credentials.chmod(0o600)
    with FakeKubeApi() as kube:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube.url, ADMIN_TOKEN)
        ec2 = ec2_client(moto_endpoint)
        booter = Booter(ec2=ec2, kube=kube, server_url="https://10.1.0.1:6443", labels=LABELS)

        class Cloud:
            pdd = tmp_path / "runner"

            def __init__(self) -> None:
                self.kube, self.ec2, self.booter = kube, ec2, booter

            def scale(self, desired: int, **extravars: Any) -> Any:
                return run_scale(self.pdd, moto_endpoint, credentials, kubeconfig, desired,
                                 **extravars)

        with booter:
            yield Cloud()


def node_names(kube: Any) -> set[str]:
    return {name for (_g, plural, _ns, name) in kube.objects if plural == "nodes"}


def assert_ok(result: Any) -> None:
    from tests.integration.cloud_node_harness import failures_of

    assert (result.status, result.rc) == ("successful", 0), failures_of(result)


def test_scale_0_3_1_0_joins_drains_and_honours_drop(cloud: Any) -> None:
    from tests.integration.cloud_node_harness import group_instances, stats_of

    result = cloud.scale(3)
    assert_ok(result)
    names = {"worker-shop-1", "worker-shop-2", "worker-shop-3"}
    vms = group_instances(cloud.ec2, "shop", "worker")
    assert set(vms) == names
    for name, vm in vms.items():
        tags = {t["Key"]: t["Value"] for t in vm["Tags"]}
        assert tags["micado.eu/index"] == name.rsplit("-", 1)[1]
        assert tags["micado.eu/operation"] == "op-1"
    assert cloud.booter.problems == {n: [] for n in names}
    assert node_names(cloud.kube) == names
    stats = stats_of(result)
    assert stats["micado_node_count"] == 3
    assert {n["name"] for n in stats["micado_nodes"]} == names
    assert {n["id"] for n in stats["micado_nodes"]} == {v["InstanceId"] for v in vms.values()}
    assert all(n["state"] == "running" and n["address"] for n in stats["micado_nodes"])
    # one bootstrap token for the run, with an expiry (checked by the booter)
    assert len(cloud.booter.tokens) == 1
    # the ADT's cloud-config is merged in (append: our join first, then the ADT's commands)
    cloud_config = yaml.safe_load(cloud.booter.user_data["worker-shop-1"])
    assert cloud_config["packages"] == ["htop"]
    assert cloud_config["runcmd"][-1] == "echo adt"
    assert "k3s" in str(cloud_config["runcmd"][0])

    # a pod on the node to drop must be evicted; the Node must go before its VM
    cloud.kube.seed({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "web-1", "namespace": "default",
                                  "ownerReferences": [{"apiVersion": "apps/v1",
                                                       "kind": "ReplicaSet", "name": "web",
                                                       "uid": "1", "controller": True}]},
                     "spec": {"nodeName": "worker-shop-1", "containers": [
                         {"name": "web", "image": "nginx"}]}, "status": {"phase": "Running"}})
    cloud.kube.seed({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "db-1", "namespace": "default"},
                     "spec": {"nodeName": "worker-shop-2", "containers": [
                         {"name": "db", "image": "postgres"}]}, "status": {"phase": "Running"}})
    vm_alive_when_node_deleted: dict[str, bool] = {}

    def on_request(method: str, path: str) -> None:
        if method == "DELETE" and path.startswith("/api/v1/nodes/"):
            name = path.rsplit("/", 1)[1]
            vm_alive_when_node_deleted[name] = name in group_instances(
                cloud.ec2, "shop", "worker", ("running",))

    cloud.kube.on_request(on_request)
    result = cloud.scale(1, cloud_node_drop=["worker-shop-1", "not-in-this-group"])
    assert_ok(result)
    # drop first, then the newest index
    assert set(group_instances(cloud.ec2, "shop", "worker")) == {"worker-shop-2"}
    assert node_names(cloud.kube) == {"worker-shop-2"}
    assert vm_alive_when_node_deleted == {"worker-shop-1": True, "worker-shop-3": True}
    assert cloud.kube.get("", "pods", "default", "web-1") is None
    assert cloud.kube.get("", "pods", "default", "db-1") is not None
    evictions = [r.path for r in cloud.kube.requests if r.path.endswith("/eviction")]
    assert evictions == ["/api/v1/namespaces/default/pods/web-1/eviction"]
    cordons = [r for r in cloud.kube.requests
               if r.method == "PATCH" and r.path == "/api/v1/nodes/worker-shop-1"]
    assert cordons, "worker-shop-1 was not cordoned"
    assert stats_of(result)["micado_node_count"] == 1

    result = cloud.scale(0)
    assert_ok(result)
    assert group_instances(cloud.ec2, "shop", "worker") == {}
    assert node_names(cloud.kube) == set()
    assert cloud.kube.get("", "pods", "default", "db-1") is None  # evicted on the way out
    assert stats_of(result) == {"micado_nodes": [], "micado_node_count": 0}


def test_rerun_at_the_same_size_changes_nothing(cloud: Any) -> None:
    from tests.integration.cloud_node_harness import changed_tasks, group_instances, stats_of

    assert_ok(cloud.scale(2))
    before = {n: v["InstanceId"] for n, v in group_instances(cloud.ec2, "shop", "worker").items()}
    secrets = {k for k in cloud.kube.objects if k[1] == "secrets"}
    result = cloud.scale(2, cloud_node_drop=["worker-shop-1"])  # drop only applies to a shrink
    assert_ok(result)
    assert changed_tasks(result) == []
    assert result.stats["changed"] == {}
    after = {n: v["InstanceId"] for n, v in group_instances(cloud.ec2, "shop", "worker").items()}
    assert after == before
    assert {k for k in cloud.kube.objects if k[1] == "secrets"} == secrets  # no new token
    assert stats_of(result)["micado_node_count"] == 2


def test_a_vm_that_never_joins_fails_the_run_naming_it(cloud: Any) -> None:
    from tests.integration.cloud_node_harness import failures_of, group_instances, stats_of

    cloud.booter.never_join.add("worker-shop-2")
    result = cloud.scale(2, cloud_node_ready_timeout=4)
    assert result.status == "failed"
    failures = failures_of(result)
    assert len(failures) == 1
    assert "worker-shop-2" in failures[0] and "worker-shop-1" not in failures[0]
    assert "4 s" in failures[0]
    assert cloud.booter.problems["worker-shop-2"] == []  # its user-data was right
    assert node_names(cloud.kube) == {"worker-shop-1"}
    # the silent VM is terminated before the run ends, and the report (which still comes) says so
    assert "removed, the next run makes it again" in failures[0]
    assert set(group_instances(cloud.ec2, "shop", "worker")) == {"worker-shop-1"}
    assert stats_of(result)["micado_node_count"] == 1
    # the controller's retry at the same size makes it again, and this one joins
    cloud.booter.never_join.clear()
    assert_ok(cloud.scale(2))
    assert node_names(cloud.kube) == {"worker-shop-1", "worker-shop-2"}
    assert set(group_instances(cloud.ec2, "shop", "worker")) == {"worker-shop-1", "worker-shop-2"}


def test_no_secret_in_any_runner_artefact(cloud: Any) -> None:
    assert_ok(cloud.scale(2))
    assert_ok(cloud.scale(0))
    tokens = cloud.booter.tokens
    assert len(tokens) == 1
    token = next(iter(tokens))
    secrets = {"AWS access key id": AWS_KEY_ID, "AWS secret key": AWS_SECRET,
               "Kubernetes admin token": ADMIN_TOKEN, "join token": token.rpartition("::")[2],
               "join token secret": token.rpartition(".")[2]}
    files = [p for p in cloud.pdd.rglob("*") if p.is_file()]
    assert any("job_events" in str(p) for p in files)
    leaks = [f"{what} in {p.relative_to(cloud.pdd)}" for p in files
             for what, secret in secrets.items() if secret in p.read_text(errors="replace")]
    assert leaks == []


def test_check_mode_changes_nothing(cloud: Any) -> None:
    from tests.integration.cloud_node_harness import group_instances

    result = cloud.scale(2, cmdline="--check")
    assert_ok(result)
    assert group_instances(cloud.ec2, "shop", "worker") == {}
    assert {k for k in cloud.kube.objects if k[1] == "secrets"} == set()


@pytest.mark.parametrize(("extravars", "says"), [
    ({"cloud_node_desired": -1}, "cloud_node_desired must be 0 or more (got -1)"),
    ({"cloud_node_cloud": "azure"}, "cloud_node_cloud"),
    ({"cloud_node_desired": "three"}, "cloud_node_desired"),
    ({"cloud_node_properties": {"instance_type": "t2.micro"}}, "properties.image_id"),
    ({"cloud_node_user_data": "- not\n- a map\n"}, "cloud-config map"),
    # OpenStack's path checks its request the same way (its cloud runs come with the real
    # OpenStack services)
    ({"cloud_node_cloud": "openstack", "cloud_node_properties": {"image_id": "i"}},
     "cloud_node_os_cloud (the cloud's name in the clouds.yaml"),
])
def test_bad_request_fails_clearly_before_any_cloud_call(cloud: Any, extravars: dict[str, Any],
                                                         says: str) -> None:
    from tests.integration.cloud_node_harness import failures_of, group_instances

    desired = extravars.pop("cloud_node_desired", 1)
    result = cloud.scale(desired, **extravars)
    assert result.status == "failed"
    assert any(says in f for f in failures_of(result)), failures_of(result)
    assert not any(e.get("event_data", {}).get("task", "").startswith("List the group")
                   for e in result.events)
    assert group_instances(cloud.ec2, "shop", "worker") == {}


def test_a_refused_instance_fails_the_run_naming_it_and_the_cloud_error(cloud: Any) -> None:
    from tests.integration.cloud_node_harness import AMI, REGION, failures_of, stats_of

    result = cloud.scale(2, cloud_node_properties={
        "image_id": AMI, "instance_type": "t9.enormous", "region_name": REGION})
    assert result.status == "failed"
    failures = failures_of(result)
    assert len(failures) == 1
    assert failures[0].startswith("EC2 did not start worker-shop-1, worker-shop-2:")
    assert "t9.enormous" in failures[0]
    assert stats_of(result) == {"micado_nodes": [], "micado_node_count": 0}


def test_list_mode_reports_every_micado_vm_of_the_region_and_changes_nothing(
        cloud: Any) -> None:
    from tests.integration.cloud_node_harness import AMI, changed_tasks, stats_of

    assert_ok(cloud.scale(1))
    # another app's VM and a VM MiCADO did not make, started by hand
    tagged = [{"Key": "Name", "Value": "db-other-3"}, {"Key": "micado.eu/app", "Value": "other"},
              {"Key": "micado.eu/group", "Value": "db"}, {"Key": "micado.eu/index", "Value": "3"}]
    for tags in (tagged, [{"Key": "Name", "Value": "by-hand"}]):
        cloud.ec2.run_instances(ImageId=AMI, InstanceType="t2.micro", MinCount=1, MaxCount=1,
                                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
    secrets = {k for k in cloud.kube.objects if k[1] == "secrets"}
    result = cloud.scale(0, cloud_node_mode="list")
    assert_ok(result)
    assert changed_tasks(result) == []
    stats = stats_of(result)
    listed = {(n["name"], n["app"], n["group"], n["index"], n["state"])
              for n in stats["micado_nodes"]}
    assert listed == {("worker-shop-1", "shop", "worker", 1, "running"),
                      ("db-other-3", "other", "db", 3, "running")}
    assert stats["micado_node_count"] == 2
    assert {k for k in cloud.kube.objects if k[1] == "secrets"} == secrets
    assert node_names(cloud.kube) == {"worker-shop-1"}


def test_replace_removes_the_named_vm_then_makes_the_group_whole(cloud: Any) -> None:
    from tests.integration.cloud_node_harness import group_instances

    assert_ok(cloud.scale(2))
    before = group_instances(cloud.ec2, "shop", "worker")
    result = cloud.scale(2, cloud_node_replace=["worker-shop-1"])
    assert_ok(result)
    after = group_instances(cloud.ec2, "shop", "worker")
    assert set(after) == {"worker-shop-1", "worker-shop-2"}
    assert after["worker-shop-2"]["InstanceId"] == before["worker-shop-2"]["InstanceId"]
    assert after["worker-shop-1"]["InstanceId"] != before["worker-shop-1"]["InstanceId"]
    assert node_names(cloud.kube) == {"worker-shop-1", "worker-shop-2"}
    terminated = group_instances(cloud.ec2, "shop", "worker", ("terminated", "shutting-down"))
    assert [v["InstanceId"] for v in terminated.values()] == [
        before["worker-shop-1"]["InstanceId"]]
