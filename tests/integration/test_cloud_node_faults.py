"""Cloud faults meet micado.core.scale_nodes: the run fails with a reason that names the VMs
and the cloud's own words, and still reports the group.

Real where the real services can do it: Nova's quota (the project's `instances` quota set low
through the API) and a server stuck in BUILD (nova-compute stopped with SIGSTOP, so the build
request waits in RabbitMQ as it would for a hung hypervisor host). Injected where they cannot:
a 500 from Nova or EC2 and EC2's InstanceLimitExceeded (moto has no instance limit) come from
tests/fakes/fault_proxy.py, a loopback proxy in front of the real service.

How the controller backs off after such a run, shows it in its events and `micado status`, and
retries it is in tests/e2e/test_node_groups_reconcile.py (a cloud refusing VMs).
"""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import prerequisite

from integration.openstack_fixture import OpenStackCloud, write_private

# mostly waiting (the clouds' clients retry the injected 500s): make test runs it beside the others
pytestmark = [pytest.mark.integration, pytest.mark.beside]

HAVE = all(importlib.util.find_spec(m) for m in ("moto", "ansible_runner", "boto3"))
LABELS = {"micado.eu/node_type": "worker", "micado.eu/app": "shop"}
NOVA_500 = ('{"computeFault": {"code": 500, "message": "Unexpected API Error, injected by '
            'the test"}}')


def assert_refused(result: Any, cloud_name: str, names: list[str], *words: str) -> str:
    """The run failed once, naming `names` and the cloud's `words`; returns the message."""
    from tests.integration.cloud_node_harness import failures_of

    assert result.status == "failed"
    failures = failures_of(result)
    assert len(failures) == 1, failures
    assert failures[0].startswith(f"{cloud_name} did not start {', '.join(names)}:"), failures
    for word in words:
        assert word in failures[0], failures
    return failures[0]


# ---- EC2: moto's server behind the fault proxy ------------------------------------------------
@pytest.fixture
def ec2_cloud(tmp_path: Path) -> Iterator[Any]:
    prerequisite(HAVE, "moto[server], ansible-runner and boto3 (pip install -e '.[test]')")
    from tests.fakes.fault_proxy import FaultProxy
    from tests.fakes.kube_api import FakeKubeApi
    from tests.integration.cloud_node_harness import (
        Booter,
        ec2_client,
        moto_server,
        run_scale,
        write_kubeconfig,
    )

    credentials = write_private(tmp_path / "aws-credentials",
                                "[default]\naws_access_key_id = AKIAFAULTS\n"
                                "aws_secret_access_key = faults-secret\n")
    with moto_server(tmp_path / "moto.log") as moto, FaultProxy(moto) as proxy, \
            FakeKubeApi() as kube:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube.url, "faults-token")
        ec2 = ec2_client(moto)
        with Booter(ec2=ec2, kube=kube, server_url="https://10.1.0.1:6443", labels=LABELS):

            class Cloud:
                def __init__(self) -> None:
                    self.proxy, self.ec2 = proxy, ec2

                def scale(self, desired: int, **extravars: Any) -> Any:
                    return run_scale(tmp_path / "runner", proxy.url, credentials, kubeconfig,
                                     desired, cloud_node_endpoint=proxy.url, **extravars)

            yield Cloud()


# amazon.aws retries EC2's 500s for about three minutes (AWSRetry.jittered_backoff, not
# configurable), a quarter of a core: make test runs it in the idle lane
@pytest.mark.idle
def test_ec2_500s_fail_the_run_with_the_cloud_error(ec2_cloud: Any) -> None:
    from tests.fakes.fault_proxy import Fault
    from tests.integration.cloud_node_harness import ec2_error, group_instances, stats_of

    error = ec2_error("InternalError", "We encountered an internal error, injected by the test")
    fault = ec2_cloud.proxy.inject(Fault("POST", "^/", 500, error, body="Action=RunInstances",
                                         content_type="text/xml"))
    result = ec2_cloud.scale(2)
    assert_refused(result, "EC2", ["worker-shop-1", "worker-shop-2"], "InternalError",
                   "injected by the test")
    assert fault.hits >= 2  # every call refused, retries included
    assert group_instances(ec2_cloud.ec2, "shop", "worker") == {}
    assert stats_of(result) == {"micado_nodes": [], "micado_node_count": 0}

    ec2_cloud.proxy.clear()  # the cloud is back: the same request now succeeds
    result = ec2_cloud.scale(2)
    assert (result.status, stats_of(result)["micado_node_count"]) == ("successful", 2)


def test_ec2_instance_limit_fails_the_run_naming_the_limit(ec2_cloud: Any) -> None:
    from tests.fakes.fault_proxy import Fault
    from tests.integration.cloud_node_harness import EC2_LIMIT, group_instances

    ec2_cloud.proxy.inject(Fault("POST", "^/", 400, EC2_LIMIT, body="Action=RunInstances",
                                 content_type="text/xml"))
    result = ec2_cloud.scale(1)
    assert_refused(result, "EC2", ["worker-shop-1"], "InstanceLimitExceeded", "instance limit")
    assert group_instances(ec2_cloud.ec2, "shop", "worker") == {}


# ---- OpenStack: the real services, Nova behind the fault proxy for the 500s ---------------------
# The cloud is the session's (openstack_fixture.py): these tests use an app of their own, delete
# every server before and after, and restore what they change (quota, flavor, nova-compute).
OS_APP = "faults"
OS_LABELS = {"micado.eu/node_type": "worker", "micado.eu/app": OS_APP}
# more disk than Nova's fake hypervisor has (600000 GB); Nova has no disk quota, so its API
# takes the server (RAM or vCPUs that large would be refused by the project's quota first)
HUGE_FLAVOR = "m1.faults-huge"


@pytest.fixture
def os_cloud(openstack_cloud: OpenStackCloud, tmp_path: Path) -> Iterator[Any]:
    from tests.fakes.fault_proxy import FaultProxy
    from tests.fakes.kube_api import FakeKubeApi
    from tests.integration.cloud_node_harness import write_kubeconfig
    from tests.integration.cloud_node_openstack_harness import (
        SERVER_URL,
        NovaBooter,
        delete_all_servers,
        run_scale_openstack,
    )

    conn, admin = openstack_cloud.connect("project"), openstack_cloud.connect("admin")
    delete_all_servers(conn)
    with FaultProxy(openstack_cloud.url("nova")) as proxy, FakeKubeApi() as kube:
        # a cloud `faulty`: the project's, with Nova reached through the proxy
        clouds = yaml.safe_load(openstack_cloud.clouds_yaml.read_text())
        clouds["clouds"]["faulty"] = {**clouds["clouds"]["project"],
                                      "compute_endpoint_override": f"{proxy.url}/v2.1"}
        clouds_yaml = write_private(tmp_path / "clouds.yaml", yaml.safe_dump(clouds))
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kube.url, "faults-token")

        class Cloud:
            def __init__(self) -> None:
                self.proxy, self.conn, self.admin = proxy, conn, admin

            def scale(self, desired: int, **extravars: Any) -> Any:
                return run_scale_openstack(tmp_path / "runner", clouds_yaml, kubeconfig,
                                           openstack_cloud, desired, cloud_node_app=OS_APP,
                                           cloud_node_labels=OS_LABELS, **extravars)

            def servers(self) -> dict[str, Any]:
                from tests.integration.cloud_node_openstack_harness import group_servers

                return group_servers(conn, OS_APP, "worker")

        try:
            with NovaBooter(ec2=None, kube=kube, server_url=SERVER_URL, labels=OS_LABELS,
                            admin=admin):
                yield Cloud()
        finally:
            delete_all_servers(conn)


def test_nova_500s_fail_the_run_with_the_cloud_error(os_cloud: Any) -> None:
    from tests.fakes.fault_proxy import Fault
    from tests.integration.cloud_node_harness import stats_of

    fault = os_cloud.proxy.inject(Fault("POST", r"/v2\.1/servers$", 500, NOVA_500))
    result = os_cloud.scale(2, cloud_node_os_cloud="faulty")
    assert_refused(result, "OpenStack", ["worker-faults-1", "worker-faults-2"], "500",
                   "injected by the test")
    assert fault.hits == 2
    assert os_cloud.servers() == {}
    assert stats_of(result) == {"micado_nodes": [], "micado_node_count": 0}
    # the listing went through the proxy too: the cloud `faulty` was used for every call
    assert any(m == "GET" and "/servers" in p for m, p, _ in os_cloud.proxy.seen)


def test_nova_quota_exceeded_fails_the_run_naming_the_quota(os_cloud: Any) -> None:
    """The group has one server, the project's quota is one instance: Nova's API refuses the
    second (deterministic: the servers do not race past the API's check, see the next test)."""
    from tests.integration.cloud_node_harness import stats_of

    assert os_cloud.scale(1).status == "successful"
    project = os_cloud.admin.identity.find_project("micado-demo")
    before = os_cloud.admin.get_compute_quotas(project.id).instances
    os_cloud.admin.set_compute_quotas(project.id, instances=1)
    try:
        result = os_cloud.scale(2)
    finally:
        os_cloud.admin.set_compute_quotas(project.id, instances=before)
    message = assert_refused(result, "OpenStack", ["worker-faults-2"], "instances")
    assert "quota" in message.lower(), message
    assert {n: s.status for n, s in os_cloud.servers().items()} == {"worker-faults-1": "ACTIVE"}
    assert stats_of(result)["micado_node_count"] == 1
    assert os_cloud.admin.get_compute_quotas(project.id).instances == before


def test_a_server_nova_puts_in_error_fails_the_run_with_novas_fault(
        os_cloud: Any, openstack_cloud: OpenStackCloud) -> None:
    """Nova accepts the server, then finds no host for it and puts it in ERROR (the same path as
    the quota recheck when servers race past the API's check). openstack.cloud.server cannot
    report that one itself ("'Image' object has no attribute 'owner_seen'", from openstacksdk):
    the run names Nova's fault, deletes the server (it never boots and holds quota) and reports
    the group without it."""
    from tests.integration.cloud_node_harness import stats_of

    huge = os_cloud.admin.compute.create_flavor(name=HUGE_FLAVOR, ram=512, vcpus=1, disk=700_000)
    try:
        properties = {"image_id": openstack_cloud.image, "flavor_name": HUGE_FLAVOR,
                      "network_id": openstack_cloud.network}
        result = os_cloud.scale(1, cloud_node_properties=properties)
    finally:
        os_cloud.admin.compute.delete_flavor(huge)
    message = assert_refused(result, "OpenStack", ["worker-faults-1"],
                             "Nova put the server in ERROR", "No valid host")
    assert "owner_seen" not in message
    assert os_cloud.servers() == {}
    assert list(os_cloud.conn.compute.servers()) == []
    assert stats_of(result) == {"micado_nodes": [], "micado_node_count": 0}


def test_a_server_stuck_in_build_fails_the_run_naming_it(
        os_cloud: Any, openstack_cloud: OpenStackCloud) -> None:
    from tests.integration.cloud_node_harness import stats_of

    compute = openstack_cloud.processes["nova-compute"]
    os.killpg(compute.pid, signal.SIGSTOP)  # the host never picks the build up
    try:
        result = os_cloud.scale(1, cloud_node_ready_timeout=10)
        states = {n: s.status for n, s in os_cloud.servers().items()}
    finally:
        os.killpg(compute.pid, signal.SIGCONT)
    message = assert_refused(result, "OpenStack", ["worker-faults-1"])
    assert "timeout" in message.lower(), message
    assert states == {"worker-faults-1": "BUILD"}
    assert [(n["name"], n["state"]) for n in stats_of(result)["micado_nodes"]] == [
        ("worker-faults-1", "build")]
