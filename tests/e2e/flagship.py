"""What the two flagship tests (test_node_groups_ec2.py, test_node_groups_openstack.py) share: the
controller daemon on the real control plane as its own ServiceAccount, a real Prometheus
scraping per-node exporters whose counters grow at rates the test sets (a stand-in for the
nodes' cAdvisor and the app's exporter), a watch on Nodes and Pods, and the looks a timeline
needs (the app's Nodes, its replicas and where the scheduler put its pods).

Not a conftest (see tests/integration/prometheus_fixture.py for why): test modules import it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from e2e.daemon_harness import Daemon, wait_for
from integration.prometheus_fixture import Exporter, PrometheusServer, require_prometheus
from kube.cluster import KubeCluster
from kube.node_join import Watcher

Series = tuple[str, str, tuple[tuple[str, str], ...]]  # instance, metric, labels


@dataclass
class Load:
    """Counters that grow at the rates the test sets, one exporter per `instance` (a file-SD
    target whose `instance` label is the node's name, as a node's cAdvisor is scraped), so
    `rate(...)` in the ADT's own queries and alerts reads the load the test drives."""

    sd_dir: Path
    period: float = 0.5
    exporters: dict[str, Exporter] = field(default_factory=dict)
    rates: dict[Series, float] = field(default_factory=dict)
    totals: dict[Series, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def set(self, instance: str, metric: str, per_second: float, **labels: str) -> None:
        """From now on the series grows by `per_second` each second."""
        with self._lock:
            if instance not in self.exporters:
                self.exporters[instance] = Exporter().start()
                self._write_targets()
            self.rates[instance, metric, tuple(sorted(labels.items()))] = per_second

    def _write_targets(self) -> None:
        groups = [{"targets": [e.address], "labels": {"instance": name}}
                  for name, e in self.exporters.items()]
        tmp = self.sd_dir / ".flagship-load.tmp"
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.sd_dir / "flagship-load.json")

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.period):
            now = time.monotonic()
            with self._lock:
                for series, rate in self.rates.items():
                    self.totals[series] = self.totals.get(series, 0.0) + rate * (now - last)
                    instance, metric, labels = series
                    self.exporters[instance].set(metric, self.totals[series], **dict(labels))
            last = now

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for exporter in self.exporters.values():
            exporter.stop()


@dataclass
class Flagship:
    """One app's story on the shared cluster: what the daemon did and what the cluster shows."""

    kube: KubeCluster
    daemon: Daemon
    prometheus: PrometheusServer
    load: Load
    watcher: Watcher
    app: str
    group: str
    namespace: str = "default"
    started: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, what: str) -> None:
        """One step of the story, printed as it happens (pytest -s shows the timeline)."""
        at = time.monotonic() - self.started
        self.timeline.append((at, what))
        print(f"[{at:6.1f} s] {what}", flush=True)

    def wait(self, predicate: Any, timeout: float, what: str) -> Any:
        """wait_for, failing early when an operation failed, then marked on the timeline."""
        def done() -> Any:
            failed = self.daemon.events("action_failed")
            assert failed == [], failed
            return predicate()
        value = wait_for(done, timeout, what, interval=0.5)
        self.mark(what)
        return value

    def finished(self, nodes: int) -> list[dict[str, Any]]:
        """The node operations that ended with `nodes` nodes."""
        return [e for e in self.daemon.events("action") if f"done, {nodes} nodes" in e["message"]]

    def nodes(self) -> dict[str, bool]:
        """The app's Nodes as the admin lists them, each with whether it is Ready."""
        found = client.CoreV1Api(self.kube.admin()).list_node(
            label_selector=f"micado.eu/app={self.app},micado.eu/node_type={self.group}")
        return {n.metadata.name: any(c.type == "Ready" and c.status == "True"
                                     for c in n.status.conditions or [])
                for n in found.items}

    def deployment(self, name: str) -> Any:
        return client.AppsV1Api(self.kube.admin()).read_namespaced_deployment(
            name, self.namespace)

    def replicas(self, name: str) -> int:
        return self.deployment(name).spec.replicas

    def pods(self, name: str) -> dict[str, str | None]:
        """The Deployment's live pods (not being deleted), each with its node (None: pending)."""
        selector = ",".join(f"{k}={v}" for k, v in
                            self.deployment(name).spec.selector.match_labels.items())
        found = client.CoreV1Api(self.kube.admin()).list_namespaced_pod(
            self.namespace, label_selector=selector)
        return {p.metadata.name: p.spec.node_name for p in found.items
                if p.metadata.deletion_timestamp is None}

    def running_on(self, name: str, node: str) -> list[str]:
        """The Deployment's pods the scheduler bound to `node` that kwok runs."""
        selector = ",".join(f"{k}={v}" for k, v in
                            self.deployment(name).spec.selector.match_labels.items())
        found = client.CoreV1Api(self.kube.admin()).list_namespaced_pod(
            self.namespace, label_selector=selector, field_selector=f"spec.nodeName={node}")
        return [p.metadata.name for p in found.items
                if p.status.phase == "Running" and p.metadata.deletion_timestamp is None]

    def bound_by_scheduler(self, pod: str) -> str | None:
        """The node the default-scheduler bound `pod` to (its Scheduled event, as the API server
        recorded it), when the pod is bound there: what the ReplicaSet creates has no nodeName
        (the compiled template has none), so only the scheduler can have set it."""
        core = client.CoreV1Api(self.kube.admin())
        events = core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={pod},reason=Scheduled")
        by_scheduler = [e.message for e in events.items
                        if (e.reporting_component or (e.source and e.source.component))
                        == "default-scheduler"]
        bound = core.read_namespaced_pod(pod, self.namespace).spec.node_name
        if bound and any(message.endswith(f" to {bound}") for message in by_scheduler):
            return bound
        return None

    def node_affinity(self, name: str) -> list[dict[str, Any]]:
        """The compiled Deployment's required node selector terms, as the API server has them."""
        affinity = self.deployment(name).spec.template.spec.affinity
        required = affinity.node_affinity.required_during_scheduling_ignored_during_execution
        return [{e.key: e.values for e in term.match_expressions}
                for term in required.node_selector_terms]

    def hosts(self, service: str, node: str, nodes: set[str]) -> list[str]:
        """Once the group's Nodes are `nodes`, all Ready: the service's pods the scheduler
        placed on `node` (through the compiled nodeAffinity) and kwok runs."""
        self.wait(lambda: self.nodes() == dict.fromkeys(nodes, True), 60, f"Node {node} Ready")
        assert self.node_affinity(service) == [
            {"micado.eu/node_type": [self.group], "micado.eu/app": [self.app]}]
        pods = self.wait(lambda: self.running_on(service, node), 120,
                         f"{service}'s new pod running on {node}")
        assert [self.bound_by_scheduler(pod) for pod in pods] == [node] * len(pods)
        return pods

    def drained(self, service: str, gone: str, kept: str, evicted: list[str]) -> None:
        """`gone` was cordoned and `evicted` evicted from it (the watch saw both), its Node is
        deleted, and the service's pods all run on `kept` again."""
        assert self.nodes() == {kept: True}
        assert self.watcher.cordoned(gone) and not self.watcher.cordoned(kept)
        assert all(self.watcher.evicted(self.namespace, pod) for pod in evicted), evicted
        self.wait(lambda: set(self.pods(service).values()) == {kept}
                  and len(self.running_on(service, kept)) == self.replicas(service), 120,
                  f"every {service} pod running on {kept}")
        shown = self.status()
        assert f"{kept} (" in shown and gone not in shown, shown

    def status(self) -> str:
        shown = self.daemon.cli("status", self.app)
        assert shown.returncode == 0, shown.stderr
        return shown.stdout


def kubeconfig_token(kubeconfig: Path) -> str:
    """The bearer token of a kubeconfig (the controller's: a secret the state dir must not hold)."""
    return yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]


def join_secrets(tokens: set[str]) -> dict[str, str]:
    """The secret parts of every k3s join token a VM was given."""
    secrets = {}
    for token in tokens:
        secrets[f"join token {token[-6:]}"] = token.rpartition("::")[2]
        secrets[f"join token secret {token[-6:]}"] = token.rpartition(".")[2]
    return secrets


def leaks(state: Path, secrets: dict[str, str]) -> list[str]:
    """Which secret is in which file of the state dir (the runner's artefacts must be there)."""
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files), "no ansible-runner artefacts"
    return [f"{what} in {p.relative_to(state)}" for p in files
            for what, secret in secrets.items() if secret.encode() in p.read_bytes()]


def pinned_adt(adt: dict[str, Any], container: str, group: str) -> dict[str, Any]:
    """The ADT with `container` hosted on `group` (MiCADO's `host` requirement, compiled into
    the pods' nodeAffinity), so the scheduler may only place it on the group's VMs and not on
    other tests' Nodes of the shared cluster."""
    node = adt["topology_template"]["node_templates"][container]
    node.setdefault("requirements", []).append({"host": group})
    return adt


@contextlib.contextmanager
def flagship(kube: KubeCluster, root: Path, app: str, group: str,
             nodes: dict[str, Any]) -> Iterator[Flagship]:
    """A started daemon as the controller's ServiceAccount, with its VM actuator (`nodes`, the
    config's section) and a real Prometheus whose load the test drives."""
    require_prometheus()
    prometheus = PrometheusServer(root / "prometheus").start()
    daemon = Daemon(root, "", prometheus.url, prometheus.rules_dir, prometheus.sd_dir,
                    tick_seconds=1.0, kubeconfig=kube.controller_kubeconfig, nodes=nodes)
    try:
        with Load(prometheus.sd_dir) as load, Watcher(kube) as watcher:
            daemon.start()
            try:
                yield Flagship(kube, daemon, prometheus, load, watcher, app, group)
                assert daemon.stop() == 0
            finally:
                daemon.kill()
    finally:
        prometheus.stop()
