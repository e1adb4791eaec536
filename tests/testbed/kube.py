"""A real Kubernetes API server on the test bed's master, where k3s would run.

k3s cannot be built here (README, "Real Kubernetes for tests"), so the bed runs the upstream
control plane that tests/kube/cluster.py starts (etcd, kube-apiserver with RBAC, the controller
manager, the scheduler, kwok) inside the master's network namespace: the API server listens on
every address of the master at k3s's port 6443 (127.0.0.1:6443 on the master, as for k3s, and
the master's address for the workers). Its Nodes are named and labelled as k3s names and labels
the bed's hosts (`inventory_hostname | lower`, the role's node labels and taints) and kwok keeps
them Ready. The master gets an admin kubeconfig and a kubectl, what the roles' "existing API
server" mode needs (k3s_server_existing_api).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, config

from cached_venv import cache_root
from conftest import REPO, prerequisite
from kube.cluster import KWOK_NODE_ANNOTATION, ControlPlane, require_bins
from testbed.bed import GROUPS, HOST_IPS, NETNS_PREFIX, TestBed

API_PORT = 6443  # k3s_server_api_port's default: the port the roles and the firewall expect
MASTER = "master"
# where the master keeps the admin's kubeconfig and kubectl (the test inventory names them)
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
KUBECTL = "/usr/local/bin/kubectl"
ROLES = REPO / "collections" / "ansible_collections" / "micado" / "core" / "roles"
FAKE_K3S = Path(__file__).parent / "fake_k3s" / "main.go"


def _defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


def k3s_node(host: str) -> dict:
    """The Node k3s would register for a bed host: its name, labels, taints and address."""
    name = host.lower()
    server = host in GROUPS["masters"]
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "k3s",
              "k3s.io/hostname": name, "k3s.io/internal-ip": HOST_IPS[host]}
    if server:
        labels["node-role.kubernetes.io/control-plane"] = "true"
        taints = _defaults("k3s_server")["k3s_server_node_taints"]
    else:
        labels |= dict(label.split("=", 1)
                       for label in _defaults("k3s_agent")["k3s_agent_node_labels"])
        taints = _defaults("k3s_agent")["k3s_agent_node_taints"]
    resources = {"cpu": "2", "memory": "4Gi", "pods": "110"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {KWOK_NODE_ANNOTATION: "fake"}},
        "spec": {"taints": [_taint(t) for t in taints]},
        "status": {"addresses": [{"type": "InternalIP", "address": HOST_IPS[host]},
                                 {"type": "Hostname", "address": name}],
                   "allocatable": resources, "capacity": resources},
    }


def _taint(spec: str) -> dict:
    """k3s's `key=value:Effect` notation as a Node taint."""
    key_value, effect = spec.rsplit(":", 1)
    key, _, value = key_value.partition("=")
    return {"key": key, "value": value, "effect": effect}


@dataclass
class BedCluster:
    """The control plane on the master and what the tests need of it."""

    plane: ControlPlane
    bed: TestBed

    @property
    def nodes(self) -> list[str]:
        """The Nodes, named like the bed's k3s hosts (the edge is not a Kubernetes node)."""
        return [h.lower() for h in (*GROUPS["masters"], *GROUPS["workers"])]

    def python(self, script: str, *args: str, timeout: float = 60,
               ) -> subprocess.CompletedProcess[str]:
        """Run `script` with this venv's Python in the master's network namespace (where the
        API server is reachable whatever the master's firewall says), as the admin."""
        return subprocess.run(
            ["ip", "netns", "exec", NETNS_PREFIX + MASTER, sys.executable, "-c", script,
             str(self.plane.admin_kubeconfig), *args],
            capture_output=True, text=True, timeout=timeout, check=False)

    def watch_nodes(self, out: Path) -> subprocess.Popen:
        """A watch on the Nodes that writes one JSON line per event (name, unschedulable,
        resourceVersion) to `out` until it is terminated."""
        return subprocess.Popen(
            ["ip", "netns", "exec", NETNS_PREFIX + MASTER, sys.executable, "-c", WATCH,
             str(self.plane.admin_kubeconfig)],
            stdout=out.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def install_on_master(self) -> None:
        """The admin kubeconfig (CA inline, the master's loopback) and kubectl on the master."""
        merged = self.bed.run_dir / "hosts" / MASTER / "merged"
        ca = base64.b64encode(self.plane.ca_file.read_bytes()).decode()
        admin = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "bed", "cluster": {
                "server": f"https://127.0.0.1:{API_PORT}", "certificate-authority-data": ca}}],
            "users": [{"name": "admin", "user": {"token": self.plane.tokens["admin"]}}],
            "contexts": [{"name": "bed", "context": {"cluster": "bed", "user": "admin"}}],
            "current-context": "bed",
        }
        target = merged / ADMIN_KUBECONFIG.lstrip("/")
        target.parent.mkdir(mode=0o700, exist_ok=True)
        target.touch(mode=0o600)
        target.write_text(yaml.safe_dump(admin))
        shutil.copyfile(Path(shutil.which("kubectl") or "kubectl").resolve(),
                        merged / KUBECTL.lstrip("/"))
        (merged / KUBECTL.lstrip("/")).chmod(0o755)


# Runs in the master's network namespace: argv[1] is the admin kubeconfig.
WATCH = """
import json, sys
from kubernetes import client, config, watch
api = client.CoreV1Api(config.new_client_from_config(config_file=sys.argv[1]))
for event in watch.Watch().stream(api.list_node, timeout_seconds=3600):
    node = event["object"]
    print(json.dumps({"type": event["type"], "name": node.metadata.name,
                      "unschedulable": bool(node.spec.unschedulable),
                      "resourceVersion": node.metadata.resource_version}), flush=True)
"""


def serving_certificate(pki: Path, addresses: tuple[str, ...]) -> None:
    """The API server's certificate for every address it is reached at (a CA and a leaf signed
    by it, in its --cert-dir, where it would otherwise make its own: that one names the
    advertised address and "localhost" but not 127.0.0.1, the address the roles use on the
    master, as on k3s)."""
    pki.mkdir(mode=0o700)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "micado-testbed-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    names = [x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default",
                                       "kubernetes.default.svc")]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in (*addresses, "10.96.0.1")]
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (pki / "apiserver.crt").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_file = pki / "apiserver.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))


def start(bed: TestBed, root: Path) -> BedCluster:
    """The control plane in the master's namespace, the k3s-named Nodes, the master's files."""
    prerequisite(shutil.which("kubectl") is not None,
                 "kubectl on PATH (the master's admin tool for the existing API server)")
    serving_certificate(root / "pki", (HOST_IPS[MASTER], "127.0.0.1"))
    plane = ControlPlane(root, require_bins(), host=HOST_IPS[MASTER],
                         wrap=("ip", "netns", "exec", NETNS_PREFIX + MASTER), api_bind="0.0.0.0",
                         api_port=API_PORT, etcd_port=2379, etcd_peer_port=2380).start()
    try:
        api = client.CoreV1Api(config.new_client_from_config(
            config_file=str(plane.admin_kubeconfig)))
        for host in (*GROUPS["masters"], *GROUPS["workers"]):
            api.create_node(k3s_node(host))
        cluster = BedCluster(plane, bed)
        cluster.install_on_master()
    except BaseException:
        plane.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def bed_cluster(testbed: TestBed, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[BedCluster]:
    """The bed with a real API server on its master, stopped at the end of the module."""
    root = tmp_path_factory.mktemp("bed-kube")
    root.chmod(0o700)
    cluster = start(testbed, root)
    try:
        yield cluster
    finally:
        cluster.plane.stop()


def fake_k3s(version: str) -> Path:
    """The stand-in k3s agent binary (fake_k3s/main.go) stamped with `version`, built once
    with Go into a cache keyed by the source and the version."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    prerequisite(Path(go).is_file(), "Go (it builds the test bed's stand-in k3s agent)")
    digest = hashlib.sha256(FAKE_K3S.read_bytes() + version.encode()).hexdigest()[:16]
    cache = cache_root() / "fake-k3s"  # under XDG_CACHE_HOME when it is set, like the others
    binary = cache / f"{version}-{digest}" / "k3s"
    if binary.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath", "GO111MODULE": "off",
           "GOCACHE": str(cache / "gocache"), "GOPROXY": "off"}
    partial = binary.with_suffix(".partial")
    done = subprocess.run([go, "build", "-ldflags", f"-s -w -X main.version={version}",
                           "-o", str(partial), str(FAKE_K3S)],
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    partial.rename(binary)
    return binary


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def node_events(out: Path) -> list[dict]:
    """The watch's events so far (lines that are not JSON are the watch's own errors)."""
    events = []
    for line in out.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"the Node watch failed:\n{out.read_text()[-3000:]}") from None
    return events
