"""The flagship end to end on EC2: MiCADO's nginx ADT (examples/micado/nginx_ec2.yaml, its
placeholders filled in for moto, its scaling rules untouched) submitted to the controller daemon
in its own process, as the controller's own ServiceAccount on the real control plane
(tests/kube/cluster.py: the real scheduler places the pods, kwok stands in for the kubelets).
The daemon runs the real `micado.core.scale_nodes` playbook (this repository's collection)
through ansible-runner against moto's EC2 server on loopback (the ADT's endpoint, a
shared-credentials file). The VMs "boot" through tests/integration/cloud_node_harness.Booter,
which checks each one's user-data join (the bootstrap token authenticates on the API server)
and registers its Node as a kubelet would (kwok makes it Ready).

The load is nginx's accepted connections, a counter a real Prometheus scrapes from an exporter
whose rate the test sets (tests/e2e/flagship.py), read by the ADT's own REQUESTSPERCONT and
TIME queries. The one addition to the ADT besides its placeholders: nginxapp's `host`
requirement on worker-node (compiled into nodeAffinity), so the scheduler may place it only on
the group's VMs of the shared cluster.

The timeline: one VM at deploy (min_instances 1), its Node Ready, the first pod scheduled
there; load rises -> replicas 1 -> 4 (one a minute, the ADT's minContScaleInterval) -> the node
rule adds a VM through the playbook -> its Node becomes Ready -> the fifth replica is placed on
it by the scheduler; load falls -> replicas 5 -> 4 -> the node rule removes the newest VM: its
Node cordoned, its pod evicted (watched) and placed back on the first VM, the Node deleted, the
VM terminated. No secret (the AWS keys, the controller's Kubernetes token, the join tokens)
lands in any file of the state dir.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from tests.integration.cloud_node_harness import (
    AMI,
    REGION,
    Booter,
    ec2_client,
    group_instances,
    moto_server,
)

from conftest import REPO, prerequisite
from e2e.flagship import Flagship, flagship, join_secrets, kubeconfig_token, leaks, pinned_adt
from kube.cluster import KubeCluster
from kube.node_join import ClusterJoining, ca_pem

# waiting for the ADT's periods nearly all the time (a sixth of a core): make test's idle lane
pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.idle]

HAVE = all(importlib.util.find_spec(m) for m in ("moto", "ansible_runner", "boto3"))
AWS_KEY_ID = "AKIAMICADOE2EKEY0001"
AWS_SECRET = "micado-e2e-secret-0123456789abcdefghij"
SERVER_URL = "https://10.1.0.1:6443"
EXAMPLE = REPO / "examples" / "micado" / "nginx_ec2.yaml"
APP, GROUP, SERVICE = "ngx", "worker-node", "nginxapp"
FIRST, SECOND = f"{GROUP}-{APP}-1", f"{GROUP}-{APP}-2"
ACCEPTED = "nginx_connections_accepted"  # the counter REQUESTSPERCONT takes the rate of


def example_adt(endpoint: str, key_name: str, security_group: str) -> str:
    """examples/micado/nginx_ec2.yaml with its placeholders filled in for moto (and the ADT's
    own cloud-config, appended to the join), nginxapp hosted on worker-node."""
    adt = pinned_adt(yaml.safe_load(EXAMPLE.read_text()), SERVICE, GROUP)
    worker = adt["topology_template"]["node_templates"][GROUP]
    worker["properties"] = {"region_name": REGION, "image_id": AMI, "instance_type": "t2.micro",
                            "key_name": key_name, "security_group_ids": [security_group],
                            "context": {"append": True,
                                        "cloud_config": "runcmd:\n  - echo adt\n"}}
    worker["interfaces"]["Occopus"]["create"]["inputs"]["endpoint"] = endpoint
    return yaml.safe_dump(adt, sort_keys=False)


def test_nginx_on_ec2_scales_replicas_and_vms_with_its_load(
        tmp_path: Path, kube_cluster: KubeCluster) -> None:
    prerequisite(HAVE, "moto[server], ansible-runner and boto3 (pip install -e '.[test]')")
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[default]\naws_access_key_id = {AWS_KEY_ID}\n"
                           f"aws_secret_access_key = {AWS_SECRET}\n")
    credentials.chmod(0o600)
    labels = {"micado.eu/node_type": GROUP, "micado.eu/app": APP}
    # the playbook's kubeconfig is the controller's, as on a site (nodes.kubeconfig unset)
    kubeconfig = kube_cluster.controller_kubeconfig
    with moto_server(tmp_path / "moto.log") as endpoint:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        ec2 = ec2_client(endpoint)
        with Booter(ec2=ec2, kube=ClusterJoining(kube_cluster), server_url=SERVER_URL,
                    labels=labels, ca_pem=ca_pem(kubeconfig)) as booter, \
                flagship(kube_cluster, tmp_path, APP, GROUP, {
                    "server_url": SERVER_URL, "collections_path": str(REPO / "collections"),
                    "aws_credentials_file": str(credentials),  # the ADT names moto
                    "ready_timeout": 60, "drain_timeout": 60,
                    "backoff_seconds": 1, "backoff_max_seconds": 2}) as story:
            run_scenario(story, tmp_path, endpoint, ec2, booter)
            tokens = set(booter.tokens)
    assert len(tokens) == 2  # one short-lived join token per scale-out run
    secrets = {"AWS access key id": AWS_KEY_ID, "AWS secret key": AWS_SECRET,
               "controller's Kubernetes token": kubeconfig_token(kubeconfig),
               **join_secrets(tokens)}
    assert leaks(tmp_path / "state", secrets) == []


def run_scenario(story: Flagship, tmp_path: Path, endpoint: str, ec2: Any,
                 booter: Booter) -> None:
    load = story.load
    load.set(SERVICE, ACCEPTED, 2.0)  # between minRPCth and maxRPCth: nothing to do
    key = ec2.create_key_pair(KeyName="micado-e2e")["KeyName"]
    group = ec2.create_security_group(GroupName="micado-e2e", Description="e2e")["GroupId"]
    adt = tmp_path / "app.yaml"
    adt.write_text(example_adt(endpoint, key, group))
    started = story.daemon.cli("start", str(adt), "--id", APP)
    assert started.returncode == 0, started.stderr

    # deploy: min_instances 1 -> one tagged VM, its Node Ready, nginx's first pod placed there
    story.wait(lambda: story.finished(1), 300, "VM 1 created by the playbook")
    check_vms(ec2, {FIRST}, key, group)
    assert story.hosts(SERVICE, FIRST, {FIRST})  # its one pod
    assert booter.problems == {FIRST: []}
    # the ADT's cloud-config, appended to the join
    assert yaml.safe_load(booter.user_data[FIRST])["runcmd"][-1] == "echo adt"

    # load rises: a replica a minute up to 4 (CONTSPERNODE) on the one VM, then a second VM
    story.mark("load rises: 10 connections/s per container")
    load.set(SERVICE, ACCEPTED, 10.0)
    story.wait(lambda: story.replicas(SERVICE) == 4, 420, "nginx's replicas up to 4")
    story.wait(lambda: story.finished(2), 300, "VM 2 created by the playbook")
    check_vms(ec2, {FIRST, SECOND}, key, group)
    assert booter.problems == {FIRST: [], SECOND: []}
    story.wait(lambda: story.replicas(SERVICE) == 5, 240, "nginx's replicas up to 5")
    moved = story.hosts(SERVICE, SECOND, {FIRST, SECOND})
    assert len(moved) == 1
    assert story.daemon.api("GET", f"/v1/apps/{APP}/status").json()["pending_operations"] == []
    shown = story.status()
    assert f"node group {GROUP}: last runner event: task: " in shown, shown
    for name, vm in group_instances(ec2, APP, GROUP).items():
        assert f"{name} ({vm['InstanceId']}, running" in shown, shown

    # load falls: 5 -> 4 replicas (the pods doubled up on the first VM go first), then the
    # newest VM drained: its pod evicted and placed back on the first VM, Node and VM deleted
    story.mark("load falls: no connections")
    load.set(SERVICE, ACCEPTED, 0.0)
    story.wait(lambda: story.replicas(SERVICE) <= 4, 300, "nginx's replicas down to 4")
    story.wait(lambda: len(story.finished(1)) == 2, 300, "VM 2 removed by the playbook")
    assert set(group_instances(ec2, APP, GROUP)) == {FIRST}
    assert set(group_instances(ec2, APP, GROUP, ("terminated",))) == {SECOND}
    story.drained(SERVICE, SECOND, FIRST, moved)


def check_vms(ec2: Any, names: set[str], key: str, group: str) -> None:
    """The group's running VMs are `names`, tagged, with the ADT's key pair and group."""
    vms = group_instances(ec2, APP, GROUP)
    assert set(vms) == names
    for name, vm in vms.items():
        tags = {t["Key"]: t["Value"] for t in vm["Tags"]}
        assert tags["micado.eu/app"] == APP and tags["micado.eu/group"] == GROUP
        assert tags["micado.eu/index"] == name.rsplit("-", 1)[1]
        assert (vm["KeyName"], [g["GroupId"] for g in vm["SecurityGroups"]]) == (key, [group])
