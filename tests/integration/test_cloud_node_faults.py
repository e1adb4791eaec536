"""Cloud faults meet micado.core.scale_nodes: the run fails with a reason that names the VMs
and the cloud's own words, and still reports the group.

Real where the real services can do it: Nova's quota (the project's `instances` quota set low
through the API) and a server stuck in BUILD (nova-compute stopped with SIGSTOP, so the build
request waits in RabbitMQ as it would for a hung hypervisor host). Injected where they cannot:
a 500 from Nova or EC2 and EC2's InstanceLimitExceeded (moto has no instance limit) come from
tests/fakes/fault_proxy.py, a loopback proxy in front of the real service.

How the controller backs off after such a run and shows it in its events is in
tests/e2e/test_node_groups_faults.py.
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

from integration.openstack_fixture import (  # noqa: F401
    OpenStackCloud,
    openstack_cloud_fixture,
    write_private,
)

pytestmark = pytest.mark.integration

HAVE = all(importlib.util.find_spec(m) for m in ("moto", "ansible_runner", "boto3"))
LABELS = {"micado.eu/node_type": "worker", "micado.eu/app": "shop"}
EC2_500 = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>"
           "<Code>InternalError</Code><Message>We encountered an internal error, injected by "
           "the test</Message></Error></Errors><RequestID>1</RequestID></Response>")
EC2_LIMIT = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>"
             "<Code>InstanceLimitExceeded</Code><Message>You have requested more instances "
             "than your current instance limit of 0 allows for the specified instance type."
             "</Message></Error></Errors><RequestID>2</RequestID></Response>")
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


def test_ec2_500s_fail_the_run_with_the_cloud_error(ec2_cloud: Any) -> None:
    from tests.fakes.fault_proxy import Fault
    from tests.integration.cloud_node_harness import group_instances, stats_of

    fault = ec2_cloud.proxy.inject(Fault("POST", "^/", 500, EC2_500, body="Action=RunInstances",
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
    from tests.integration.cloud_node_harness import group_instances

    ec2_cloud.proxy.inject(Fault("POST", "^/", 400, EC2_LIMIT, body="Action=RunInstances",
                                 content_type="text/xml"))
    result = ec2_cloud.scale(1)
    assert_refused(result, "EC2", ["worker-shop-1"], "InstanceLimitExceeded", "instance limit")
    assert group_instances(ec2_cloud.ec2, "shop", "worker") == {}


# ---- OpenStack: the real services, Nova behind the fault proxy for the 500s ---------------------
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
                                           openstack_cloud, desired, **extravars)

            def servers(self) -> dict[str, Any]:
                from tests.integration.cloud_node_openstack_harness import group_servers

                return group_servers(conn, "shop", "worker")

        try:
            with NovaBooter(ec2=None, kube=kube, server_url=SERVER_URL, labels=LABELS,
                            admin=admin):
                yield Cloud()
        finally:
            delete_all_servers(conn)


def test_nova_500s_fail_the_run_with_the_cloud_error(os_cloud: Any) -> None:
    from tests.fakes.fault_proxy import Fault
    from tests.integration.cloud_node_harness import stats_of

    fault = os_cloud.proxy.inject(Fault("POST", r"/v2\.1/servers$", 500, NOVA_500))
    result = os_cloud.scale(2, cloud_node_os_cloud="faulty")
    assert_refused(result, "OpenStack", ["worker-shop-1", "worker-shop-2"], "500",
                   "injected by the test")
    assert fault.hits == 2
    assert os_cloud.servers() == {}
    assert stats_of(result) == {"micado_nodes": [], "micado_node_count": 0}
    # the listing went through the proxy too: the cloud `faulty` was used for every call
    assert any(m == "GET" and "/servers" in p for m, p, _ in os_cloud.proxy.seen)


def test_nova_quota_exceeded_fails_the_run_naming_the_quota(
        os_cloud: Any, openstack_cloud: OpenStackCloud) -> None:
    from tests.integration.cloud_node_harness import stats_of
    from tests.integration.cloud_node_openstack_harness import group_servers

    project = os_cloud.admin.identity.find_project("micado-demo")
    os_cloud.admin.set_compute_quotas(project.id, instances=1)
    try:
        result = os_cloud.scale(2)
    finally:
        os_cloud.admin.delete_compute_quotas(project.id)
    from tests.integration.cloud_node_harness import failures_of

    assert result.status == "failed"
    failures = failures_of(result)
    assert len(failures) == 1, failures
    # one server fits the quota; Nova refuses the other (which one depends on their race)
    assert failures[0].startswith("OpenStack did not start worker-shop-"), failures
    assert "quota" in failures[0].lower() and "instances" in failures[0], failures
    live = group_servers(os_cloud.conn, "shop", "worker")
    assert [s.status for s in live.values()] == ["ACTIVE"]
    assert stats_of(result)["micado_node_count"] == 1


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
    message = assert_refused(result, "OpenStack", ["worker-shop-1"])
    assert "timeout" in message.lower(), message
    assert states == {"worker-shop-1": "BUILD"}
    assert [(n["name"], n["state"]) for n in stats_of(result)["micado_nodes"]] == [
        ("worker-shop-1", "build")]
