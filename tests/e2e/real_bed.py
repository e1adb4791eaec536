"""The controller daemon on the real control plane (tests/kube/cluster.py) as the controller's own
ServiceAccount (the kubeconfig the k3s_server role builds), with a real Prometheus scraping an
exporter whose load the test sets: what the end-to-end tests in tests/e2e and tests/kube share.

Every bed has its own app id and namespace on the one cluster of the session, so tests do not
see each other's objects; the admin's client looks at what the controller did.

Not a conftest (see tests/integration/prometheus_fixture.py for why): test modules import it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller_env import WEB_ADT
from e2e.daemon_harness import Daemon
from integration.prometheus_fixture import Exporter, PrometheusServer, require_prometheus
from kube.cluster import KubeCluster
from micado.adt.k8s.labels import INSTANCE

READY_TIMEOUT = 120.0
TYPES = "https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml"
Key = tuple[str, str, str]  # kind, namespace, name


def container(image: str, namespace: str) -> dict:
    """A Deployment node on the `workers` group, in `namespace`."""
    return {"type": "tosca.nodes.MiCADO.Container.Application.Docker.Deployment",
            "properties": {"image": image, "ports": [{"port": 8080}],
                           # quantities the server normalises (500m, 1Gi)
                           "resources": {"requests": {"cpu": 0.5, "memory": "1024Mi"}}},
            "interfaces": {"Kubernetes": {"create": {"inputs": {
                "metadata": {"namespace": namespace}}}}},
            "requirements": [{"host": "workers"}]}


def load_policy(exporter: str, rule: str = "if web_overloaded:\n  m_container_count += 1\n"
                ) -> dict:
    """web scaled by `rule`, with the exporter's web_load > 0.8 as the web_overloaded alert."""
    return {"scalability": {"type": "tosca.policies.Scaling.MiCADO", "targets": ["web"],
                            "properties": {
        "min_instances": 1, "max_instances": 5, "sources": [exporter],
        "alerts": [{"alert": "web_overloaded", "expr": 'web_load{job="micado-apps"} > 0.8',
                    "for": "0s"}],
        "scaling_rule": rule}}}


def adt(app: str, namespace: str, cache: bool, image: str = "nginx:1.25",
        policy: dict | None = None) -> str:
    """web (+ cache) in the app's namespace, a raw Secret in "default", a static VM group."""
    nodes = {"web": container(image, namespace)}
    if cache:
        nodes["cache"] = container("redis:7", namespace)
    nodes["settings"] = {"type": "tosca.nodes.MiCADO.Kubernetes", "interfaces": {
        "Kubernetes": {"create": {"inputs": {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": f"{app}-settings", "namespace": "default"},
            "stringData": {"greeting": "hello"}}}}}}
    nodes["workers"] = {"type": "tosca.nodes.MiCADO.Nova.Compute", "properties": {
        "image_id": "1234-abcd", "flavor_name": "m1.small", "project_id": "p1",
        "network_id": "n1"}}
    topology: dict = {"node_templates": nodes}
    if policy:
        topology["policies"] = [policy]
    return yaml.safe_dump({"tosca_definitions_version": "tosca_simple_yaml_1_2",
                           "imports": [TYPES], "topology_template": topology}, sort_keys=False)


def web_adt(exporter: str, namespace: str) -> str:
    """tests/data/controller/web.yaml (load-scaled web, a node group), web in `namespace` and
    scraping `exporter` (the controller writes the scrape target)."""
    document = yaml.safe_load(WEB_ADT.read_text())
    topology = document["topology_template"]
    topology["node_templates"]["web"]["interfaces"] = {"Kubernetes": {"create": {"inputs": {
        "metadata": {"namespace": namespace}}}}}
    for policy in topology["policies"]:
        if policy["scalability"]["targets"] == ["web"]:
            policy["scalability"]["properties"]["sources"] = [exporter]
    return yaml.safe_dump(document, sort_keys=False)


@dataclass
class RealBed:
    cluster: KubeCluster
    daemon: Daemon
    prometheus: PrometheusServer
    exporter: Exporter  # web_load, 0.5 to start with
    app: str
    namespace: str  # the app's workloads; its Secret is in "default" (the role's only one)

    def adt(self, *, cache: bool = True, image: str = "nginx:1.25",
            policy: dict | None = None) -> Path:
        path = self.daemon.root / f"{self.app}-{cache}-{image}-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(adt(self.app, self.namespace, cache, image, policy))
        return path

    def run(self, *args: str) -> str:
        done = self.daemon.cli(*args)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    def objects(self, app: str | None = None) -> dict[Key, str]:
        """An app's live objects (this bed's by default), by its instance label as the admin
        sees them, each with its resourceVersion."""
        api = self.cluster.admin()
        selector = f"{INSTANCE}={app or self.app}"
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        found = {}
        for kind, listing in (("Deployment", apps.list_deployment_for_all_namespaces),
                              ("Service", core.list_service_for_all_namespaces),
                              ("Secret", core.list_secret_for_all_namespaces),
                              ("ConfigMap", core.list_config_map_for_all_namespaces)):
            for item in listing(label_selector=selector).items:
                found[kind, item.metadata.namespace, item.metadata.name] = \
                    item.metadata.resource_version
        return found

    def deployments(self) -> set[str]:
        return {name for kind, _, name in self.objects() if kind == "Deployment"}

    def deployment(self, name: str = "web") -> Any:
        """The live Deployment in the app's namespace, None when there is none."""
        try:
            return client.AppsV1Api(self.cluster.admin()).read_namespaced_deployment(
                name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def replicas(self, name: str = "web") -> int:
        found = self.deployment(name)
        return 0 if found is None else found.spec.replicas

    def ready(self, name: str = "web") -> bool:
        found = self.deployment(name)
        return found is not None and (found.status.ready_replicas or 0) >= 1

    def image(self, name: str = "web") -> str | None:
        found = self.deployment(name)
        return None if found is None else found.spec.template.spec.containers[0].image

    def firing(self, alert: str = "web_overloaded") -> bool:
        try:
            alerts = requests.get(f"{self.prometheus.url}/api/v1/alerts",
                                  timeout=2).json()["data"]["alerts"]
        except requests.RequestException:
            return False
        return any(a["labels"].get("alertname") == alert and a["state"] == "firing"
                   for a in alerts)

    def scraped(self) -> bool:
        try:
            result = requests.get(f"{self.prometheus.url}/api/v1/query",
                                  params={"query": 'web_load{job="micado-apps"}'},
                                  timeout=2).json()["data"]["result"]
        except requests.RequestException:
            return False
        return bool(result)

    def troubles(self) -> list[dict]:
        """The daemon's events that say something went wrong (errors, failures, drift)."""
        return [e for e in self.daemon.events()
                if any(word in e["kind"] for word in ("error", "fail", "drift", "unavailable"))]


@contextlib.contextmanager
def real_bed(cluster: KubeCluster, root: Path, tick: float) -> Iterator[RealBed]:
    """A daemon (started) as the controller's account, its app's namespace and one Ready node
    of the app's `workers` group."""
    require_prometheus()
    app = f"web{uuid.uuid4().hex[:6]}"
    namespace = f"ns-{app}"
    client.CoreV1Api(cluster.admin()).create_namespace({"metadata": {"name": namespace}})
    cluster.add_node("workers", app)
    exporter = Exporter().start()
    exporter.set("web_load", 0.5)
    prometheus = PrometheusServer(root / "prometheus").start()
    daemon = Daemon(root / "controller", "", prometheus.url, prometheus.rules_dir,
                    prometheus.sd_dir, tick_seconds=tick,
                    kubeconfig=cluster.controller_kubeconfig)
    try:
        daemon.start()
        yield RealBed(cluster, daemon, prometheus, exporter, app, namespace)
    finally:
        daemon.kill()
        prometheus.stop()
        exporter.stop()
