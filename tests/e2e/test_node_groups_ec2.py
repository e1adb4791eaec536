"""End to end on EC2, with no stand-in: the controller daemon in its own process runs the real
`micado.core.scale_nodes` playbook (the collection of this repository) through ansible-runner
against moto's EC2 server on loopback (the ADT's endpoint, a shared-credentials file), and the
real control plane (tests/kube/cluster.py), both the daemon and the playbook as the controller's
own ServiceAccount, as on a site. The VMs "boot" and join through
tests/integration/cloud_node_harness.Booter, which checks each one's user-data join (the
bootstrap token authenticates on the API server) and registers its Node as a kubelet would
(kwok-managed: it becomes Ready; tests/kube/node_join.py).

The ADT is examples/micado/nginx_ec2.yaml, filled in (key pair, security group, endpoint);
its node group's rule takes its size from a query the fake Prometheus answers: 2, then 1. The
0 -> 2 decision becomes two tagged VMs whose Nodes join, `micado status` shows the VMs and the
last runner event; 2 -> 1 cordons and drains the newest VM's Node (its pod evicted through the
eviction API), deletes it and terminates the VM. No secret (the AWS keys, the controller's
Kubernetes token, the join token) lands in any file of the state dir.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client
from tests.integration.cloud_node_harness import (
    AMI,
    REGION,
    Booter,
    ec2_client,
    group_instances,
    moto_server,
)

from conftest import REPO, prerequisite
from e2e.daemon_harness import Daemon, wait_for
from fakes.prometheus_api import FakePrometheus
from kube.cluster import KubeCluster
from kube.node_join import ClusterJoining, Watcher, ca_pem

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

HAVE = all(importlib.util.find_spec(m) for m in ("moto", "ansible_runner", "boto3"))
AWS_KEY_ID = "AKIAMICADOE2EKEY0001"
AWS_SECRET = "micado-e2e-secret-0123456789abcdefghij"
SERVER_URL = "https://10.1.0.1:6443"
WANTED = "micado_e2e_wanted_nodes"
EXAMPLE = REPO / "examples" / "micado" / "nginx_ec2.yaml"


def example_adt(endpoint: str, key_name: str, security_group: str) -> str:
    """examples/micado/nginx_ec2.yaml with its placeholders filled in for moto, and the node
    group's rule replaced by one that takes the size from WANTED (the example's rule needs
    nginx's traffic)."""
    adt = yaml.safe_load(EXAMPLE.read_text())
    worker = adt["topology_template"]["node_templates"]["worker-node"]
    worker["properties"] = {"region_name": REGION, "image_id": AMI, "instance_type": "t2.micro",
                            "key_name": key_name, "security_group_ids": [security_group],
                            "context": {"append": True,
                                        "cloud_config": "runcmd:\n  - echo adt\n"}}
    worker["interfaces"]["Occopus"]["create"]["inputs"]["endpoint"] = endpoint
    policy = adt["topology_template"]["policies"][0]["scalability"]["properties"]
    policy["queries"]["WANTED"] = WANTED
    policy.update(min_instances=0, max_instances=3, scaling_rule="m_node_count = WANTED\n")
    return yaml.safe_dump(adt, sort_keys=False)


def node_names(kube: KubeCluster) -> set[str]:
    """The app's Nodes, as the admin lists them."""
    return {node.metadata.name for node in client.CoreV1Api(kube.admin()).list_node(
        label_selector="micado.eu/app=vms").items}


def controller_token(kubeconfig: Path) -> str:
    return yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]


def finished(daemon: Daemon, nodes: int) -> list[dict[str, Any]]:
    return [e for e in daemon.events("action") if f"done, {nodes} nodes" in e["message"]]


def test_an_ec2_group_scales_0_2_1_through_the_real_playbook(
        tmp_path: Path, kube_cluster: KubeCluster) -> None:
    prerequisite(HAVE, "moto[server], ansible-runner and boto3 (pip install -e '.[test]')")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {AWS_KEY_ID}\n"
                           f"aws_secret_access_key = {AWS_SECRET}\n")
    credentials.chmod(0o600)
    labels = {"micado.eu/node_type": "worker-node", "micado.eu/app": "vms"}
    with moto_server(tmp_path / "moto.log") as endpoint:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        ec2 = ec2_client(endpoint)
        # the playbook's kubeconfig is the controller's, as on a site (nodes.kubeconfig unset)
        kubeconfig = kube_cluster.controller_kubeconfig
        kube = kube_cluster
        with FakePrometheus() as prometheus, \
                Booter(ec2=ec2, kube=ClusterJoining(kube_cluster), server_url=SERVER_URL,
                       labels=labels, ca_pem=ca_pem(kubeconfig)) as booter:
            prometheus.set(WANTED, 2)
            daemon = Daemon(tmp_path, "", prometheus.url, tmp_path / "rules",
                            tmp_path / "targets", tick_seconds=1.0, kubeconfig=kubeconfig,
                            nodes={"server_url": SERVER_URL,
                                   "collections_path": str(REPO / "collections"),
                                   "aws_credentials_file": str(credentials),
                                   # the ADT names moto as its endpoint
                                   "ready_timeout": 60,
                                   "drain_timeout": 30,
                                   "backoff_seconds": 1, "backoff_max_seconds": 2})
            daemon.start()
            try:
                run_scenario(daemon, tmp_path, endpoint, ec2, kube, booter, prometheus)
                assert daemon.stop() == 0
            finally:
                daemon.kill()
            tokens = set(booter.tokens)
    assert len(tokens) == 1
    token = next(iter(tokens))
    secrets = {"AWS access key id": AWS_KEY_ID, "AWS secret key": AWS_SECRET,
               "controller's Kubernetes token": controller_token(kubeconfig),
               "join token": token.rpartition("::")[2],
               "join token secret": token.rpartition(".")[2]}
    files = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files)  # the runner's artefacts are there
    leaks = [f"{what} in {p.relative_to(tmp_path)}" for p in files
             for what, secret in secrets.items() if secret.encode() in p.read_bytes()]
    assert leaks == []


def run_scenario(daemon: Daemon, tmp_path: Path, endpoint: str, ec2: Any, kube: KubeCluster,
                 booter: Booter, prometheus: FakePrometheus) -> None:
    key = ec2.create_key_pair(KeyName="micado-e2e")["KeyName"]
    group = ec2.create_security_group(GroupName="micado-e2e", Description="e2e")["GroupId"]
    adt = tmp_path / "app.yaml"
    adt.write_text(example_adt(endpoint, key, group))
    started = daemon.cli("start", str(adt), "--id", "vms")
    assert started.returncode == 0, started.stderr

    # 0 -> 2: two tagged VMs in EC2, their Nodes join, the operation finishes
    wait_for(lambda: finished(daemon, 2) or daemon.events("action_failed"), 180,
             "the 0 -> 2 operation to end")
    assert daemon.events("action_failed") == [], (daemon.events("action_failed"),
                                                  booter.problems)
    vms = group_instances(ec2, "vms", "worker-node")
    assert set(vms) == {"worker-node-vms-1", "worker-node-vms-2"}
    for name, vm in vms.items():
        tags = {t["Key"]: t["Value"] for t in vm["Tags"]}
        assert tags["micado.eu/app"] == "vms" and tags["micado.eu/group"] == "worker-node"
        assert tags["micado.eu/index"] == name.rsplit("-", 1)[1]
        assert (vm["KeyName"], [g["GroupId"] for g in vm["SecurityGroups"]]) == (key, [group])
    assert booter.problems == {"worker-node-vms-1": [], "worker-node-vms-2": []}
    assert node_names(kube) == {"worker-node-vms-1", "worker-node-vms-2"}
    # the ADT's cloud-config, appended to the join
    assert yaml.safe_load(booter.user_data["worker-node-vms-1"])["runcmd"][-1] == "echo adt"
    status = daemon.api("GET", "/v1/apps/vms/status").json()
    assert status["pending_operations"] == []
    shown = daemon.cli("status", "vms").stdout
    assert "node group worker-node: last runner event: task: " in shown, shown
    for name, vm in vms.items():
        assert f"{name} ({vm['InstanceId']}, running" in shown, shown

    # 2 -> 1: the newest VM's Node is cordoned and drained (its pod evicted), deleted, then the
    # VM terminated
    core = client.CoreV1Api(kube.admin())
    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx-2"},
        "spec": {"nodeName": "worker-node-vms-2",
                 "containers": [{"name": "nginx", "image": "nginx"}]}})
    wait_for(lambda: core.read_namespaced_pod("nginx-2", "default").status.phase == "Running",
             60, "the pod to run on worker-node-vms-2")
    with Watcher(kube) as watcher:
        prometheus.set(WANTED, 1)
        wait_for(lambda: finished(daemon, 1) or daemon.events("action_failed"), 180,
                 "the 2 -> 1 operation to end")
    assert daemon.events("action_failed") == [], daemon.events("action_failed")
    assert set(group_instances(ec2, "vms", "worker-node")) == {"worker-node-vms-1"}
    assert set(group_instances(ec2, "vms", "worker-node", ("terminated",))) == {"worker-node-vms-2"}
    assert node_names(kube) == {"worker-node-vms-1"}
    assert watcher.cordoned("worker-node-vms-2") and not watcher.cordoned("worker-node-vms-1")
    assert watcher.evicted("default", "nginx-2")
    assert "nginx-2" not in {p.metadata.name for p in core.list_namespaced_pod("default").items}
    shown = daemon.cli("status", "vms").stdout
    assert "worker-node-vms-1 (" in shown and "worker-node-vms-2" not in shown, shown
