"""A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC on), the controller
manager and the scheduler, built from source by scripts/build-cluster-bins, with kwok standing in
for the kubelets (Nodes it manages become Ready, pods on them "run").

Everything listens on 127.0.0.1 at free ports (the controller manager and the scheduler serve
nothing), the service-account signing key and the admin token are made per run, and every file
with a secret is 0600 in the run's private directory. `ControlPlane.start()` returns once the API
server is ready, the controllers hold no leases to wait for (leader election is off) and the
"default" ServiceAccount exists, i.e. the controller manager works.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client, config

from conftest import REPO, prerequisite
from integration.prometheus_fixture import free_port, terminate, wait_until
from kube.controller_identity import ControllerIdentity, install
from micado.adt.k8s.labels import APP, NODE_TYPE

BUILD_SCRIPT = REPO / "scripts" / "build-cluster-bins"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
KWOK_STAGES = "kwok-stages.yaml"  # kwok's default node and pod lifecycle, from its module
# the annotation kwok's default configuration selects the nodes it manages by
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# a busy 2-core machine: the API server alone can take half a minute to install its APIs
START_TIMEOUT = 180.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def bins_dir() -> Path:
    """Where scripts/build-cluster-bins puts (or has put) the binaries of the pinned versions."""
    done = subprocess.run([str(BUILD_SCRIPT), "--dir"], capture_output=True, text=True,
                          check=False, timeout=60)
    prerequisite(done.returncode == 0, f"{BUILD_SCRIPT.name} --dir: {done.stderr.strip()}")
    return Path(done.stdout.strip())


def missing_bins(directory: Path) -> list[str]:
    """What a finished build would have put in `directory` and is not there."""
    return [name for name in ("SHA256SUMS", *BINARIES, KWOK_STAGES)
            if not (directory / name).is_file()]


def require_bins() -> Path:
    directory = bins_dir()
    prerequisite(not missing_bins(directory),
                 f"the control-plane binaries in {directory} (build them: make cluster-bins)")
    return directory


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when pytest dies (a kill -9 of the run must not leave
    an API server and etcd behind on a shared machine), and a process group of its own, so that
    a Ctrl-C reaches only its parent, which then stops the cluster in order (etcd last)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setpgid(0, 0)


def _private(path: Path, text: str) -> Path:
    """Write a file only its owner may read (keys, tokens, kubeconfigs)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)
    return path


def kubeconfig(server: str, ca_file: Path, user: str, token: str) -> str:
    """A kubeconfig for a bearer token (the admin's; the controller's comes from the role)."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server,
                                                  "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
        "current-context": "test",
    })


@dataclass
class ControlPlane:
    """The processes of one cluster under `root` (a private directory of the test run)."""

    root: Path
    bins: Path
    # where etcd and the API server listen and what the API server advertises: loopback here,
    # a test bed host's address when `wrap` runs the processes in that host's network namespace
    host: str = "127.0.0.1"
    wrap: tuple[str, ...] = ()  # a command prefix, e.g. ("ip", "netns", "exec", NAME)
    api_bind: str = ""  # the API server's --bind-address; empty: `host` (0.0.0.0: every address)
    api_port: int = field(default_factory=free_port)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # static bearer tokens, made per run: the admin (system:masters), kwok (system:masters: it
    # writes node and pod status) and the two controllers as the users that their bootstrap
    # ClusterRoles are bound to, as kubeadm names them
    tokens: dict[str, str] = field(default_factory=lambda: {
        user: secrets.token_urlsafe(32) for user in
        ("admin", "kwok", "system:kube-controller-manager", "system:kube-scheduler")},
        repr=False)

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        """The API server's own self-signed certificate and CA (written into its --cert-dir)."""
        return self.root / "pki" / "apiserver.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"  # written by start()

    def _start(self, name: str, *args: str) -> None:
        with (self.root / f"{name}.log").open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [*self.wrap, str(self.bins / name), *args], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.root, preexec_fn=_die_with_parent)

    def _alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)}")

    def check_alive(self) -> None:
        """Raise with its log if a process of the cluster has exited (`make cluster` polls)."""
        self._alive()

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-6000:]

    def _write_credentials(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _private(self.root / "sa.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()).decode())
        (self.root / "sa.pub").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        groups = {"admin": "system:masters", "kwok": "system:masters"}
        _private(self.root / "tokens.csv", "".join(
            f'{token},{user},{user},"{groups.get(user, "")}"\n'
            for user, token in self.tokens.items()))

    def _kubeconfig_for(self, user: str) -> Path:
        name = user.replace("system:", "").replace(":", "-")
        return _private(self.root / f"{name}.kubeconfig",
                        kubeconfig(self.server, self.ca_file, user, self.tokens[user]))

    def start(self) -> ControlPlane:
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_all(self) -> None:
        self._write_credentials()
        etcd_url = f"http://{self.host}:{self.etcd_port}"
        peer_url = f"http://{self.host}:{self.etcd_peer_port}"
        self._start("etcd", "--name=test", f"--data-dir={self.root / 'etcd'}",
                    f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=test={peer_url}", "--log-level=warn")
        self._wait("etcd", lambda: _get(f"{etcd_url}/health"))
        self._start(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}", f"--bind-address={self.api_bind or self.host}",
            # loopback may not be advertised through the endpoints reconciler: no reconciler
            f"--advertise-address={self.host}", "--endpoint-reconciler-type=none",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.root / 'pki'}", f"--token-auth-file={self.root / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC", "--service-cluster-ip-range=10.96.0.0/24",
            # as k3s: new VMs join with bootstrap tokens (micado.core.scale_nodes makes them)
            "--enable-bootstrap-token-auth",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.root / 'sa.pub'}",
            f"--service-account-signing-key-file={self.root / 'sa.key'}",
            "--profiling=false", "--v=1")
        self._wait("kube-apiserver", lambda: self.ca_file.is_file() and _get(
            f"{self.server}/readyz", verify=str(self.ca_file), token=self.tokens['admin']))
        self._kubeconfig_for("admin")
        self._start("kube-controller-manager",
                    f"--kubeconfig={self._kubeconfig_for('system:kube-controller-manager')}",
                    "--secure-port=0", "--leader-elect=false",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={self.root / 'sa.key'}",
                    f"--root-ca-file={self.ca_file}", "--profiling=false", "--v=1")
        self._start("kube-scheduler",
                    f"--kubeconfig={self._kubeconfig_for('system:kube-scheduler')}",
                    "--secure-port=0", "--leader-elect=false", "--profiling=false", "--v=1")
        self._start("kwok", f"--kubeconfig={self._kubeconfig_for('kwok')}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                    f"--config={self.bins / KWOK_STAGES}", "--node-lease-duration-seconds=40",
                    "--cidr=10.0.0.1/24", "--node-ip=10.0.0.1", "--server-address=")
        # the controller manager works once its ServiceAccount controller made "default"
        self._wait("kube-controller-manager", lambda: _get(
            f"{self.server}/api/v1/namespaces/default/serviceaccounts/default",
            verify=str(self.ca_file), token=self.tokens['admin']))

    def _wait(self, name: str, ready: Callable[[], object]) -> None:
        def check() -> bool:
            self._alive()
            return bool(ready())

        if not wait_until(check, START_TIMEOUT, 0.2):
            raise AssertionError(f"{name} was not ready in {START_TIMEOUT} s:\n{self.log(name)}")

    def stop(self) -> None:
        # the clients first, etcd last: the API server writes to it until it stops
        for name in reversed(list(self.processes)):
            terminate(self.processes[name])


def _get(url: str, verify: str | bool = True, token: str | None = None) -> bool:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return requests.get(url, verify=verify, headers=headers, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class KubeCluster:
    """What a test gets: the running control plane and two kubeconfigs (0600 files)."""

    control_plane: ControlPlane
    admin_kubeconfig: Path
    identity: ControllerIdentity  # the micado controller's, from the k3s_server role

    @property
    def controller_kubeconfig(self) -> Path:
        return self.identity.kubeconfig

    def client(self, kubeconfig_file: Path) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(kubeconfig_file))

    def admin(self) -> client.ApiClient:
        return self.client(self.admin_kubeconfig)

    def controller(self) -> client.ApiClient:
        return self.client(self.controller_kubeconfig)

    def add_node(self, node_type: str, app: str) -> str:
        """A Node that kwok manages (it becomes Ready), labelled as a MiCADO node group of `app`
        labels its nodes; its name."""
        return add_node(self.admin(), f"{node_type}-{uuid.uuid4().hex[:6]}",
                        {NODE_TYPE: node_type, APP: app})


def add_node(api: client.ApiClient, name: str, labels: dict[str, str]) -> str:
    """Create a Node that kwok manages (it becomes Ready and runs pods) with these labels."""
    client.CoreV1Api(api).create_node({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                     "labels": {**labels, "kubernetes.io/hostname": name}},
        "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "50"},
                   "capacity": {"cpu": "8", "memory": "16Gi", "pods": "50"}},
    })
    return name


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """One cluster for the session: starting one takes tens of seconds on this machine."""
    bins = require_bins()
    root = tmp_path_factory.mktemp("kube")
    root.chmod(0o700)
    plane = ControlPlane(root, bins).start()
    try:
        admin = config.new_client_from_config(config_file=str(plane.admin_kubeconfig))
        yield KubeCluster(plane, plane.admin_kubeconfig, install(admin, root, plane.api_port))
    finally:
        plane.stop()
