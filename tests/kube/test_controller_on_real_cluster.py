"""The controller's lifecycle on a real API server (tests/kube/cluster.py) as the controller's
own ServiceAccount, bound to the ClusterRole the k3s_server role renders (issue 12, item 3).

The daemon runs in its own process (tests/e2e/daemon_harness.py) with the controller's
kubeconfig and a real Prometheus, driven through the `micado` CLI: submit, dry run, update with
prune, kill -9 and restart, stop. Scaling and node listing go through `Cluster` directly, with
the same kubeconfig. Run with `make test-cluster`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from e2e.daemon_harness import Daemon, wait_for
from integration.prometheus_fixture import Exporter, PrometheusServer, require_prometheus
from kube.cluster import KubeCluster, kube_cluster
from micado.actuators.kubernetes import Cluster
from micado.adt.k8s.labels import INSTANCE, MANAGED_BY, MANAGER, NAME
from micado.adt.model import Workload

pytestmark = pytest.mark.cluster
__all__ = ["kube_cluster"]  # the fixture, imported for pytest

READY_TIMEOUT = 120.0
TICK = 1.0

TYPES = "https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml"


def container(image: str, namespace: str) -> dict:
    """A Deployment node on the `workers` group, in `namespace`."""
    return {"type": "tosca.nodes.MiCADO.Container.Application.Docker.Deployment",
            "properties": {"image": image, "ports": [{"port": 8080}],
                           # quantities the server normalises (500m, 1Gi)
                           "resources": {"requests": {"cpu": 0.5, "memory": "1024Mi"}}},
            "interfaces": {"Kubernetes": {"create": {"inputs": {
                "metadata": {"namespace": namespace}}}}},
            "requirements": [{"host": "workers"}]}


def load_policy(exporter: str) -> dict:
    """web scaled out while the exporter's load is high (the e2e tests' policy)."""
    return {"scalability": {"type": "tosca.policies.Scaling.MiCADO", "targets": ["web"],
                            "properties": {
        "min_instances": 1, "max_instances": 3, "sources": [exporter],
        "alerts": [{"alert": "web_overloaded", "expr": 'web_load{job="micado-apps"} > 0.8',
                    "for": "0s"}],
        "scaling_rule": "if web_overloaded:\n  m_container_count += 1\n"}}}


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


@dataclass
class RealBed:
    cluster: KubeCluster
    daemon: Daemon
    app: str
    namespace: str  # the app's workloads; its Secret is in "default" (the role's only one)
    exporter: Exporter  # web_load, 0.5 to start with

    def adt(self, *, cache: bool = True, image: str = "nginx:1.25",
            policy: dict | None = None) -> Path:
        path = self.daemon.root / f"{self.app}-{cache}-{image}-{bool(policy)}.yaml"
        path.write_text(adt(self.app, self.namespace, cache, image, policy))
        return path

    def run(self, *args: str) -> str:
        done = self.daemon.cli(*args)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    def objects(self) -> dict[tuple[str, str, str], str]:
        """The app's live objects (by its instance label, as the admin sees them), each with
        its resourceVersion."""
        api = self.cluster.admin()
        selector = f"{INSTANCE}={self.app}"
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

    def replicas(self, name: str) -> int:
        return client.AppsV1Api(self.cluster.admin()).read_namespaced_deployment(
            name, self.namespace).spec.replicas

    def ready(self, name: str) -> bool:
        deployment = client.AppsV1Api(self.cluster.admin()).read_namespaced_deployment(
            name, self.namespace)
        return (deployment.status.ready_replicas or 0) >= 1


def troubles(daemon: Daemon) -> list[dict]:
    """The daemon's events that say something went wrong (errors, failures, drift)."""
    return [e for e in daemon.events()
            if any(word in e["kind"] for word in ("error", "fail", "drift", "unavailable"))]


@pytest.fixture
def real_bed(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[RealBed]:
    require_prometheus()
    app = f"web{uuid.uuid4().hex[:6]}"
    namespace = f"ns-{app}"
    admin = kube_cluster.admin()
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": namespace}})
    kube_cluster.add_node("workers", app)
    exporter = Exporter().start()
    exporter.set("web_load", 0.5)
    prometheus = PrometheusServer(tmp_path / "prometheus").start()
    daemon = Daemon(tmp_path / "controller", "", prometheus.url, prometheus.rules_dir,
                    prometheus.sd_dir, tick_seconds=TICK,
                    kubeconfig=kube_cluster.controller_kubeconfig)
    daemon.start()
    try:
        yield RealBed(kube_cluster, daemon, app, namespace, exporter)
    finally:
        daemon.kill()
        prometheus.stop()
        exporter.stop()


def test_submit_dry_run_update_restart_and_stop_as_the_controllers_account(
        real_bed: RealBed) -> None:
    bed = real_bed
    bed.run("start", str(bed.adt()), "--id", bed.app, "--tick", str(TICK))
    assert bed.deployments() == {"web", "cache"}
    assert ("Secret", "default", f"{bed.app}-settings") in bed.objects()
    wait_for(lambda: bed.ready("web") and bed.ready("cache"), READY_TIMEOUT,
             "the Deployments to become ready on the group's kwok node")

    # a dry run of the same version: nothing to do
    before = bed.objects()
    same = json.loads(bed.run("update", bed.app, str(bed.adt()), "--dry-run", "--json"))
    assert {c["action"] for c in same["changes"]} == {"unchanged"}, same["changes"]
    # a dry run of the smaller version lists the prune and changes nothing
    out = bed.run("update", bed.app, str(bed.adt(cache=False)), "--dry-run", "--json")
    assert '"delete"' in out and "cache" in out
    assert bed.objects() == before

    # the update prunes what the new version dropped, and leaves the rest alone
    bed.run("update", bed.app, str(bed.adt(cache=False)))
    assert bed.deployments() == {"web"}
    kept = bed.objects()
    assert ("Secret", "default", f"{bed.app}-settings") in kept

    # kill -9, then a restart: reconciled, nothing duplicated, nothing rewritten
    bed.daemon.kill()
    bed.daemon.start()
    wait_for(lambda: bed.daemon.api("GET", f"/v1/apps/{bed.app}").json()["status"]
             == "running", 30, "the app to be running after the restart")
    ticks = bed.daemon.ticks()
    wait_for(lambda: bed.daemon.ticks() >= ticks + 3, 30, "three ticks after the restart")
    assert bed.objects().keys() == kept.keys()
    assert troubles(bed.daemon) == []
    # and a clean stop (SIGTERM) then a start: the same
    assert bed.daemon.stop() == 0
    bed.daemon.start()
    ticks = bed.daemon.ticks()
    wait_for(lambda: bed.daemon.ticks() >= ticks + 3, 30, "three ticks after the restart")
    assert bed.objects().keys() == kept.keys()
    assert troubles(bed.daemon) == []

    # stop deletes everything the app made, its Secret included
    bed.run("stop", bed.app)
    wait_for(lambda: not bed.objects(), 30, "every object of the app to be deleted")
    assert bed.daemon.stop() == 0


def test_the_policy_scales_through_the_subresource_and_an_update_keeps_the_count(
        real_bed: RealBed) -> None:
    """The control loop as the controller's account: the alert fires, the loop scales web out
    through the scale subresource; an update of the ADT then keeps what the policy reached."""
    bed = real_bed
    policy = load_policy(bed.exporter.address)
    bed.run("start", str(bed.adt(cache=False, policy=policy)), "--id", bed.app,
            "--tick", str(TICK))
    assert bed.replicas("web") == 1
    bed.exporter.set("web_load", 1.0)
    wait_for(lambda: bed.replicas("web") >= 2, 60, "the policy to scale web out")
    bed.exporter.set("web_load", 0.5)  # neither in nor out from here on
    wait_for(lambda: bed.ready("web"), READY_TIMEOUT, "web to be ready")

    def steady() -> int | None:
        """The count, once three ticks left it as it was (the alert has resolved)."""
        before, ticks = bed.replicas("web"), bed.daemon.ticks()
        wait_for(lambda: bed.daemon.ticks() >= ticks + 3, 30, "three ticks")
        return before if bed.replicas("web") == before else None

    scaled = wait_for(steady, 60, "the count to settle")
    bed.run("update", bed.app, str(bed.adt(cache=False, image="nginx:1.27", policy=policy)))
    assert bed.replicas("web") == scaled
    assert troubles(bed.daemon) == []


def deployment(app: str, replicas: int | None, image: str = "nginx:1.25") -> dict:
    """A Deployment as the compiler labels it (`replicas` None: left out, as an update of a
    scaled workload sends it)."""
    spec: dict = {"selector": {"matchLabels": {"app": app}},
                  "template": {"metadata": {"labels": {"app": app}},
                               "spec": {"containers": [{"name": "web", "image": image}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": app, "namespace": "default",
                         "labels": {INSTANCE: app, MANAGED_BY: MANAGER, NAME: "web"}},
            "spec": spec}


def test_an_apply_without_replicas_keeps_the_live_count(kube_cluster: KubeCluster) -> None:
    """Server-side apply removes a field its manager set and now leaves out: the real server
    reset a Deployment still at the ADT's 2 replicas to 1 when an update left replicas out
    (the fake kept them). Found by this test; fixed in `Cluster.apply`."""
    app = f"keep{uuid.uuid4().hex[:6]}"
    cluster = Cluster.from_kubeconfig(str(kube_cluster.controller_kubeconfig))
    cluster.apply([deployment(app, 2)], owner=app)
    [updated] = cluster.apply([deployment(app, None, "nginx:1.27")], owner=app)
    assert updated["spec"]["replicas"] == 2
    workload = Workload("web", "Deployment", app, "default", {"app": app})
    cluster.scale(workload, 4)
    [updated] = cluster.apply([deployment(app, None, "nginx:1.25")], owner=app)
    assert updated["spec"]["replicas"] == 4
    cluster.delete_app(app)


def test_an_app_is_deleted_while_its_deployments_scale(kube_cluster: KubeCluster) -> None:
    """The Deployment controller rewrites a scaling Deployment's status many times a second,
    each time a new resourceVersion: the delete's precondition failed three times in a row and
    the stop gave up ("kept changing"); the fake never changes an object by itself. Now the
    delete backs off between attempts, as for transient errors."""
    kube_cluster.add_node("workers", "churn")
    cluster = Cluster.from_kubeconfig(str(kube_cluster.controller_kubeconfig))
    for _ in range(3):
        app = f"churn{uuid.uuid4().hex[:6]}"
        cluster.apply([deployment(app, 1)], owner=app)
        cluster.scale(Workload("web", "Deployment", app, "default", {"app": app}), 20)
        assert cluster.delete_app(app) == [("Deployment", "default", app)]


def test_scale_subresource_and_node_groups_as_the_controllers_account(
        kube_cluster: KubeCluster) -> None:
    app = f"scale{uuid.uuid4().hex[:6]}"
    nodes = {kube_cluster.add_node("workers", app) for _ in range(2)}
    kube_cluster.add_node("workers", "another-app")  # same group name: another group
    cluster = Cluster.from_kubeconfig(str(kube_cluster.controller_kubeconfig))
    cluster.apply([deployment(app, 1)], owner=app)
    workload = Workload("web", "Deployment", app, "default", {"app": app})

    def group() -> set[str]:
        return {n["ID"] for n in cluster.group_nodes(app, "workers")}

    assert wait_for(lambda: group() == nodes, READY_TIMEOUT, "the group's nodes to be Ready")
    assert {n["ID"] for n in cluster.nodes_by_group()[app, "workers"]} == nodes
    assert cluster.scale(workload, 3) == 1
    assert cluster.live_replicas(app, [workload]) == {"web": 3}
    assert cluster.delete_app(app) == [("Deployment", "default", app)]
