"""A cloud fault through the whole controller: the daemon in its own process runs the real
`micado.core.scale_nodes` against moto's EC2 server behind tests/fakes/fault_proxy.py (the ADT's
endpoint is the proxy), which answers every RunInstances with a 500. The run fails, the
controller records `action_failed` with EC2's own error and its backoff, `micado status` shows
the group backing off with the reason; when the cloud is back the operation is run again after
the backoff and the group gets its VM.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from tests.fakes.fault_proxy import Fault, FaultProxy
from tests.fakes.kube_api import FakeKubeApi
from tests.integration.cloud_node_harness import (
    Booter,
    ec2_client,
    ec2_error,
    group_instances,
    moto_server,
    write_kubeconfig,
)

from conftest import REPO, prerequisite
from e2e.daemon_harness import Daemon, wait_for
from e2e.test_node_groups_ec2 import example_adt
from fakes.prometheus_api import FakePrometheus
from integration.openstack_fixture import write_private

# mostly waiting on the cloud and the daemon: make test runs it beside the others
pytestmark = [pytest.mark.integration, pytest.mark.beside]

HAVE = all(importlib.util.find_spec(m) for m in ("moto", "ansible_runner", "boto3"))
SERVER_URL = "https://10.1.0.1:6443"
WANTED = "micado_faults_wanted_nodes"
EC2_500 = ec2_error("InternalError", "injected by the e2e test")


def test_ec2_500s_back_the_group_off_and_show_in_events_then_recover(tmp_path: Path) -> None:
    prerequisite(HAVE, "moto[server], ansible-runner and boto3 (pip install -e '.[test]')")
    credentials = write_private(tmp_path / "aws-credentials",
                                "[default]\naws_access_key_id = AKIAFAULTSE2E\n"
                                "aws_secret_access_key = faults-e2e-secret\n")
    labels = {"micado.eu/node_type": "worker-node", "micado.eu/app": "vms"}
    with moto_server(tmp_path / "moto.log") as moto, FaultProxy(moto) as proxy:
        requests.post(f"{moto}/moto-api/reset", timeout=10).raise_for_status()
        ec2 = ec2_client(moto)
        fault = proxy.inject(Fault("POST", "^/", 500, EC2_500, body="Action=RunInstances",
                                   content_type="text/xml"))
        with FakePrometheus() as prometheus, FakeKubeApi() as kube, \
                Booter(ec2=ec2, kube=kube, server_url=SERVER_URL, labels=labels):
            kubeconfig = write_kubeconfig(tmp_path / "nodes-kubeconfig", kube.url, "e2e-token")
            prometheus.set(WANTED, 1)
            daemon = Daemon(tmp_path, kube.url, prometheus.url, tmp_path / "rules",
                            tmp_path / "targets", tick_seconds=1.0,
                            nodes={"server_url": SERVER_URL, "kubeconfig": str(kubeconfig),
                                   "collections_path": str(REPO / "collections"),
                                   "aws_credentials_file": str(credentials),
                                   "ready_timeout": 60, "drain_timeout": 30,
                                   "backoff_seconds": 5, "backoff_max_seconds": 10})
            daemon.start()
            try:
                run_scenario(daemon, tmp_path, proxy, fault, ec2)
                assert daemon.stop() == 0
            finally:
                daemon.kill()


def wanted_adt(endpoint: str, key_name: str, security_group: str) -> str:
    """The nginx EC2 ADT (as the flagship fills it in for moto) with the node group's rule
    replaced by one that takes the size from WANTED: this test is about the cloud failing, not
    about the load."""
    adt = yaml.safe_load(example_adt(endpoint, key_name, security_group))
    policy = next(p["scalability"]["properties"] for p in adt["topology_template"]["policies"]
                  if "scalability" in p and "worker-node" in p["scalability"]["targets"])
    policy["queries"]["WANTED"] = WANTED
    policy.update(min_instances=0, max_instances=3, scaling_rule="m_node_count = WANTED\n")
    return yaml.safe_dump(adt, sort_keys=False)


def finished(daemon: Daemon, nodes: int) -> list[dict[str, Any]]:
    return [e for e in daemon.events("action") if f"done, {nodes} nodes" in e["message"]]


def run_scenario(daemon: Daemon, tmp_path: Path, proxy: FaultProxy, fault: Fault,
                 ec2: Any) -> None:
    key = ec2.create_key_pair(KeyName="micado-faults")["KeyName"]
    group = ec2.create_security_group(GroupName="micado-faults", Description="f")["GroupId"]
    adt = tmp_path / "app.yaml"
    adt.write_text(wanted_adt(proxy.url, key, group))
    started = daemon.cli("start", str(adt), "--id", "vms")
    assert started.returncode == 0, started.stderr

    failed = wait_for(lambda: daemon.events("action_failed"), 600, "the first failed run")
    message = failed[0]["message"]
    assert message.startswith("node group worker-node: operation "), message
    assert "EC2 did not start worker-node-vms-1" in message, message
    assert "InternalError" in message and "injected by the e2e test" in message, message
    assert "backing off 5 s" in message, message
    assert fault.hits >= 1
    shown = daemon.cli("status", "vms").stdout
    assert "backing off until" in shown and "InternalError" in shown, shown
    assert group_instances(ec2, "vms", "worker-node") == {}

    # the cloud is back: after the backoff the same operation runs again and succeeds
    proxy.clear()
    wait_for(lambda: finished(daemon, 1), 600, "the retried operation to end")
    assert set(group_instances(ec2, "vms", "worker-node")) == {"worker-node-vms-1"}
    runs = daemon.events("action_failed")
    assert all("InternalError" in e["message"] for e in runs), runs
    shown = daemon.cli("status", "vms").stdout
    assert "backing off" not in shown, shown
