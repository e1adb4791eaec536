"""The world micado.core.scale_nodes runs in for tests: moto's EC2 on loopback, a Kubernetes API
(any, through a kubeconfig: the real control plane of tests/kube/cluster.py through
tests/kube/node_join.py, or tests/fakes/kube_api.py), and a "cloud" that boots VMs.

A booted VM joins the way a real one would: `Booter` watches EC2 for new instances, reads
their user-data, checks it carries the k3s join (server URL, a bootstrap token that exists in
the API, authenticates there (real API server) and expires, the node labels, the CA's hash,
never the cluster's long-lived token) and then registers the Node as the kubelet would (Ready,
with the labels). Instances named in `never_join` stay silent, as a VM whose boot failed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
import yaml
from tests.fakes.kube_api import FakeKubeApi

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "scale_nodes.yml"
REGION = "us-east-1"
AMI = "ami-12c6146b"  # one of moto's fake images
CONFIG_PATH = "/etc/rancher/k3s/config.yaml"
# what a k3s server's long-lived token looks like; the harness fails a VM that carries it
CLUSTER_TOKEN = "K10cafe::server:long-lived-cluster-secret"
CA_PEM = "-----BEGIN CERTIFICATE-----\nTUlDQURPIHRlc3QgQ0E=\n-----END CERTIFICATE-----\n"


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """moto's EC2 server in its own process on a free loopback port, checking instance types
    as EC2 does; yields its URL. The test fails when it does not start."""
    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a loaded machine: do not leave it behind
            server.kill()
            server.wait(timeout=10)


def ec2_client(endpoint: str) -> Any:
    return boto3.client("ec2", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="harness", aws_secret_access_key="harness")


def group_instances(ec2: Any, app: str, group: str,
                    states: tuple[str, ...] = ("pending", "running")) -> dict[str, dict[str, Any]]:
    """Instance name -> instance, for the group's live instances."""
    out = {}
    pages = ec2.describe_instances(Filters=[
        {"Name": "tag:micado.eu/app", "Values": [app]},
        {"Name": "tag:micado.eu/group", "Values": [group]},
        {"Name": "instance-state-name", "Values": list(states)}])
    for reservation in pages["Reservations"]:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            out[tags.get("Name", instance["InstanceId"])] = instance
    return out


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    ca = base64.b64encode(CA_PEM.encode()).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server,
                                                  "certificate-authority-data": ca}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}]}))
    path.chmod(0o600)
    return path


class Joining(Protocol):
    """What a joining VM meets in a Kubernetes API."""

    def bootstrap_secret(self, token_id: str) -> dict[str, Any] | None:
        """The bootstrap token Secret (`type`, `data` decoded), None when there is none."""

    def authenticate(self, token: str) -> list[str]:
        """What is wrong when the API server authenticates `<id>.<secret>` (empty: nothing)."""

    def register(self, name: str, labels: dict[str, str], provider_id: str,
                 address: str) -> None:
        """The Node, as the VM's kubelet registers it; it becomes Ready."""


@dataclass
class FakeJoining:
    """On the fake API server: the Secret as stored (the fake has no authenticator), the Node
    seeded Ready."""

    kube: FakeKubeApi

    def bootstrap_secret(self, token_id: str) -> dict[str, Any] | None:
        stored = self.kube.get("", "secrets", "kube-system", f"bootstrap-token-{token_id}")
        if stored is None:
            return None
        return {"type": stored.get("type"), "data": {
            **{k: base64.b64decode(v).decode() for k, v in stored.get("data", {}).items()},
            **stored.get("stringData", {})}}

    def authenticate(self, token: str) -> list[str]:
        return []

    def register(self, name: str, labels: dict[str, str], provider_id: str,
                 address: str) -> None:
        self.kube.seed({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {**labels, "kubernetes.io/hostname": name}},
            "spec": {"providerID": provider_id},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady"}],
                       "addresses": [{"type": "InternalIP", "address": address}]}})


@dataclass(frozen=True)
class BootedVm:
    """A VM the cloud says is running, as its kubelet would register it."""

    id: str
    name: str
    user_data: str
    address: str
    provider_id: str


def ec2_error(code: str, message: str) -> str:
    """An EC2 API error body, as the fault proxy answers in EC2's place."""
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>"
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>1</RequestID></Response>")


# what EC2 answers a RunInstances over the account's limit
EC2_LIMIT = ec2_error("InstanceLimitExceeded", "You have requested more instances than your "
                      "current instance limit of 0 allows for the specified instance type.")


@dataclass
class Booter:
    """Boots EC2 instances into Kubernetes Nodes, checking their join on the way."""

    ec2: Any
    kube: Joining | FakeKubeApi  # a FakeKubeApi is met through FakeJoining
    server_url: str
    labels: dict[str, str]
    ca_pem: str = CA_PEM  # the CA in the playbook's kubeconfig (the k3s token carries its hash)
    never_join: set[str] = field(default_factory=set)
    problems: dict[str, list[str]] = field(default_factory=dict)  # name -> what was wrong
    joined: list[str] = field(default_factory=list)
    user_data: dict[str, str] = field(default_factory=dict)  # name -> its user-data
    tokens: set[str] = field(default_factory=set)  # every join credential seen
    hold: threading.Event = field(default_factory=threading.Event)  # set: boot nothing
    # a VM's expected labels from its name, when the cloud holds several apps' or groups' VMs
    labels_of: Callable[[str], dict[str, str]] | None = None
    # seconds between two looks at the cloud: a VM boots in less than that anyway, and each
    # look costs the cloud's server CPU for as long as the test runs
    poll: float = 0.5
    _seen: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if isinstance(self.kube, FakeKubeApi):
            self.kube = FakeJoining(self.kube)

    @property
    def joining(self) -> Joining:
        assert not isinstance(self.kube, FakeKubeApi)
        return self.kube

    def __enter__(self) -> Booter:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            if self.hold.is_set():
                continue
            for vm in self.running():
                if vm.id not in self._seen:
                    self._seen.add(vm.id)
                    self._boot(vm)

    def running(self) -> list[BootedVm]:
        """The cloud's running VMs (EC2 here; other clouds override this)."""
        out = []
        for reservation in self.ec2.describe_instances(Filters=[
                {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                if instance["InstanceId"] in self._seen:
                    continue
                attr = self.ec2.describe_instance_attribute(InstanceId=instance["InstanceId"],
                                                            Attribute="userData")
                raw = base64.b64decode(attr.get("UserData", {}).get("Value", "")).decode()
                out.append(BootedVm(id=instance["InstanceId"],
                                    name=tags.get("Name", instance["InstanceId"]),
                                    user_data=raw, address=instance.get("PrivateIpAddress", ""),
                                    provider_id=f"aws:///{REGION}a/{instance['InstanceId']}"))
        return out

    def _boot(self, vm: BootedVm) -> None:
        self.user_data[vm.name] = vm.user_data
        problems = self.check_join(vm.name, vm.user_data)
        self.problems[vm.name] = problems
        if problems or vm.name in self.never_join:
            return
        self.joining.register(vm.name, self.labels_for(vm.name), vm.provider_id, vm.address)
        self.joined.append(vm.name)

    def labels_for(self, name: str) -> dict[str, str]:
        """The labels the VM `name` must join with (and its Node carries)."""
        return self.labels_of(name) if self.labels_of is not None else self.labels

    def check_join(self, name: str, user_data: str) -> list[str]:
        """What is wrong with this VM's join (empty: nothing), as k3s and cloud-init see it."""
        if CLUSTER_TOKEN in user_data:
            return ["the cluster's long-lived token is in the user-data"]
        if not user_data.startswith("#cloud-config\n"):
            return ["the user-data is not a cloud-config"]
        cloud_config = yaml.safe_load(user_data)
        files = {f.get("path"): f for f in cloud_config.get("write_files", [])}
        if CONFIG_PATH not in files:
            return [f"no {CONFIG_PATH} in write_files"]
        config = yaml.safe_load(files[CONFIG_PATH]["content"])
        problems = []
        if config.get("server") != self.server_url:
            problems.append(f"server is {config.get('server')!r}")
        if config.get("node-name") != name:
            problems.append(f"node-name is {config.get('node-name')!r}")
        wanted = sorted(f"{k}={v}" for k, v in self.labels_for(name).items())
        if sorted(config.get("node-label") or []) != wanted:
            problems.append(f"node-label is {config.get('node-label')!r}, not {wanted}")
        problems += self._check_token(str(config.get("token", "")))
        return problems

    def _check_token(self, token: str) -> list[str]:
        """A k3s token K10<sha256 of the CA>::<id>.<secret> whose bootstrap Secret is valid."""
        self.tokens.add(token)
        prefix, _, credential = token.rpartition("::")
        if prefix != "K10" + hashlib.sha256(self.ca_pem.encode()).hexdigest():
            return [f"token prefix {prefix!r} is not K10 + the CA's sha256"]
        token_id, _, secret = credential.partition(".")
        stored = self.joining.bootstrap_secret(token_id)
        if stored is None:
            return [f"no bootstrap token Secret for token id {token_id!r}"]
        data = stored["data"]
        problems = []
        if stored.get("type") != "bootstrap.kubernetes.io/token":
            problems.append(f"Secret type {stored.get('type')!r}")
        if data.get("token-id") != token_id or data.get("token-secret") != secret:
            problems.append("the Secret's token-id/token-secret do not match the token")
        if data.get("usage-bootstrap-authentication") != "true":
            problems.append("the token is not usable for authentication")
        try:
            expires = datetime.fromisoformat(data["expiration"].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return [*problems, f"bad or missing expiration {data.get('expiration')!r}"]
        left = (expires - datetime.now(UTC)).total_seconds()
        if not 0 < left < 24 * 3600:
            problems.append(f"the token expires in {left:.0f} s, not within a day")
        return problems + self.joining.authenticate(credential)


def run_scale(private_data_dir: Path, endpoint: str, credentials_file: Path,
              kubeconfig: Path, desired: int, *, cmdline: str | None = None,
              **extravars: Any) -> Any:
    """One run of micado.core.scale_nodes through ansible-runner, as the controller runs it."""
    private_data_dir.mkdir(parents=True, exist_ok=True)
    request: dict[str, Any] = {
        "cloud_node_app": "shop", "cloud_node_group": "worker", "cloud_node_cloud": "ec2",
        "cloud_node_properties": {"image_id": AMI, "instance_type": "t2.micro",
                                  "region_name": REGION},
        "cloud_node_desired": desired, "cloud_node_drop": [],
        "cloud_node_labels": {"micado.eu/node_type": "worker", "micado.eu/app": "shop"},
        "cloud_node_operation": "op-1", "cloud_node_kubeconfig": str(kubeconfig),
        "cloud_node_server_url": "https://10.1.0.1:6443", "cloud_node_ready_timeout": 60,
        "cloud_node_ready_poll": 1, "cloud_node_drain_timeout": 30,
        "cloud_node_user_data": "packages: [htop]\nruncmd:\n  - echo adt\n",
    }
    request.update(extravars)
    return run_request(private_data_dir, request, {
        "AWS_ENDPOINT_URL": endpoint, "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file),
        "AWS_DEFAULT_REGION": REGION,
        # no inherited keys or profile: the credentials file alone
        "AWS_PROFILE": "default",
    }, cmdline)


def run_request(private_data_dir: Path, request: dict[str, Any], envvars: dict[str, str],
                cmdline: str | None = None) -> Any:
    """micado.core.scale_nodes with `request` as extravars and the cloud's `envvars`."""
    import ansible_runner

    venv_bin = Path(sys.executable).parent
    envvars = {**envvars, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
               "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
    return ansible_runner.run(private_data_dir=str(private_data_dir), playbook=str(PLAYBOOK),
                              extravars=request, envvars=envvars, quiet=True, cmdline=cmdline,
                              rotate_artifacts=0)


def stats_of(result: Any) -> dict[str, Any]:
    """What the playbook reported with set_stats (micado_nodes, micado_node_count)."""
    for event in result.events:
        if event["event"] == "playbook_on_stats":
            return event["event_data"].get("artifact_data") or {}
    return {}


def failures_of(result: Any) -> list[str]:
    return [str((e["event_data"].get("res") or {}).get("msg", ""))
            for e in result.events if e["event"] == "runner_on_failed"
            and not e["event_data"].get("ignore_errors")]


def changed_tasks(result: Any) -> list[str]:
    return [e["event_data"].get("task", "") for e in result.events
            if e["event"] == "runner_on_ok" and (e["event_data"].get("res") or {}).get("changed")]


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()
