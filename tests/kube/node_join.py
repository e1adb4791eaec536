"""A VM's join, met by the real control plane (tests/kube/cluster.py), for
tests/integration/cloud_node_harness.Booter: the bootstrap token Secret as the API server stores
it, the token authenticated by the API server's own bootstrap token authenticator (a
SelfSubjectReview with the token as the bearer, as the VM's kubelet would present it), and the
Node registered as a kwok-managed node, so it becomes Ready and runs pods as a kubelet's would.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kube.cluster import KWOK_NODE_ANNOTATION, KubeCluster

BOOTSTRAPPERS = "system:bootstrappers"


def ca_pem(kubeconfig: Path) -> str:
    """The CA a kubeconfig carries (what the playbook hashes into the k3s token)."""
    cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
    return base64.b64decode(cluster["certificate-authority-data"]).decode()


@dataclass
class ClusterJoining:
    cluster: KubeCluster
    extra_group: str = f"{BOOTSTRAPPERS}:k3s:default-node-token"  # k3s's agents' group

    def bootstrap_secret(self, token_id: str) -> dict[str, Any] | None:
        try:
            stored = client.CoreV1Api(self.cluster.admin()).read_namespaced_secret(
                f"bootstrap-token-{token_id}", "kube-system")
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return {"type": stored.type, "data": {
            k: base64.b64decode(v).decode() for k, v in (stored.data or {}).items()}}

    def authenticate(self, token: str) -> list[str]:
        plane = self.cluster.control_plane
        answer = requests.post(
            f"{plane.server}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            headers={"Authorization": f"Bearer {token}"}, verify=str(plane.ca_file), timeout=10)
        if answer.status_code != 201:
            return [f"the API server does not take the token: {answer.status_code}"]
        user = answer.json()["status"]["userInfo"]
        token_id = token.partition(".")[0]
        problems = []
        if user.get("username") != f"system:bootstrap:{token_id}":
            problems.append(f"the token authenticates as {user.get('username')!r}")
        if not {BOOTSTRAPPERS, self.extra_group} <= set(user.get("groups") or []):
            problems.append(f"the token's groups are {user.get('groups')}")
        return problems

    def register(self, name: str, labels: dict[str, str], provider_id: str,
                 address: str) -> None:
        client.CoreV1Api(self.cluster.admin()).create_node({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                         "labels": {**labels, "kubernetes.io/hostname": name}},
            "spec": {"providerID": provider_id},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "50"},
                       "capacity": {"cpu": "2", "memory": "4Gi", "pods": "50"},
                       "addresses": [{"type": "InternalIP", "address": address}]},
        })


@dataclass
class Watcher:
    """Every change the API server reports on Nodes and Pods while it runs, as the admin sees
    them: what happens between two looks of a test (a cordon, an eviction's pod condition)."""

    cluster: KubeCluster
    seen: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # kind, type, obj
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Watcher:
        core = client.CoreV1Api(self.cluster.admin())
        for kind, listing in (("Node", core.list_node),
                              ("Pod", core.list_pod_for_all_namespaces)):
            thread = threading.Thread(target=self._watch, args=(kind, listing), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _watch(self, kind: str, listing: Any) -> None:
        while not self._stop.is_set():
            for event in watch.Watch().stream(listing, timeout_seconds=2,
                                              _request_timeout=10):
                self.seen.append((kind, event["type"], event["raw_object"]))
                if self._stop.is_set():
                    return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def cordoned(self, node: str) -> bool:
        """Whether the Node was marked unschedulable at some point."""
        return any(obj["metadata"]["name"] == node and (obj.get("spec") or {}).get("unschedulable")
                   for kind, _, obj in self.seen if kind == "Node")

    def evicted(self, namespace: str, pod: str) -> bool:
        """Whether the pod was deleted through the eviction API (the condition the API server
        sets on an evicted pod)."""
        return any(obj["metadata"]["name"] == pod and obj["metadata"]["namespace"] == namespace
                   and any(c.get("type") == "DisruptionTarget"
                           and c.get("reason") == "EvictionByEvictionAPI"
                           for c in (obj.get("status") or {}).get("conditions") or [])
                   for kind, _, obj in self.seen if kind == "Pod")
