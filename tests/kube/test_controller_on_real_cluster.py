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
from pathlib import Path

import pytest
from kubernetes import client

from e2e.daemon_harness import wait_for
from e2e.real_bed import READY_TIMEOUT, RealBed, load_policy
from e2e.real_bed import real_bed as bed_on
from kube.cluster import KWOK_NODE_ANNOTATION, KubeCluster
from micado.actuators.kubernetes import UNTYPABLE_APPLY, Cluster, ClusterError
from micado.adt.k8s.labels import APP, INSTANCE, MANAGED_BY, MANAGER, NAME, NODE_TYPE
from micado.adt.model import Workload

# make test runs it in the lane beside the one of the test bed, on that lane's control plane
pytestmark = [pytest.mark.cluster, pytest.mark.beside]

TICK = 1.0


@pytest.fixture
def real_bed(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[RealBed]:
    with bed_on(kube_cluster, tmp_path, TICK) as bed:
        yield bed


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
    assert bed.troubles() == []
    # and a clean stop (SIGTERM) then a start: the same
    assert bed.daemon.stop() == 0
    bed.daemon.start()
    ticks = bed.daemon.ticks()
    wait_for(lambda: bed.daemon.ticks() >= ticks + 3, 30, "three ticks after the restart")
    assert bed.objects().keys() == kept.keys()
    assert bed.troubles() == []

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
    assert bed.troubles() == []


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


def test_an_apply_the_server_cannot_type_is_refused_at_once(kube_cluster: KubeCluster) -> None:
    """A field of the wrong type in a server-side apply: the real server answers 500 (the fake
    accepts anything), which the controller retried as transient, three attempts with backoff
    for an answer that cannot change. Now it fails at once, with the server's reason."""
    app = f"typed{uuid.uuid4().hex[:6]}"
    pauses: list[float] = []
    cluster = Cluster(kube_cluster.controller(), attempts=3, sleep=pauses.append)
    manifest = deployment(app, 1)
    manifest["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": "eighty"}]
    with pytest.raises(ClusterError) as refused:
        cluster.apply([manifest], owner=app)
    assert refused.value.status == 500 and UNTYPABLE_APPLY in refused.value.message, refused.value
    assert "containerPort" in refused.value.message
    assert pauses == []
    assert cluster.delete_app(app) == []


def test_a_groups_nodes_are_its_ready_schedulable_untainted_ones(
        kube_cluster: KubeCluster) -> None:
    """MiCADO's m_nodes from real Nodes: a node no kubelet runs (never Ready), a cordoned one and
    ones tainted NoSchedule or NoExecute are left out; PreferNoSchedule is not a refusal."""
    app = f"filter{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_cluster.admin())

    def node(name: str, *, kubelet: bool = True, **spec: object) -> str:
        name = f"{name}-{app}"
        core.create_node({
            "apiVersion": "v1", "kind": "Node", "spec": spec,
            "metadata": {"name": name, "labels": {NODE_TYPE: "workers", APP: app},
                         "annotations": {KWOK_NODE_ANNOTATION: "fake"} if kubelet else {}}})
        return name

    def taint(effect: str) -> list[dict]:
        return [{"key": "example.com/x", "effect": effect}]

    wanted = {node("ready"), node("soft", taints=taint("PreferNoSchedule"))}
    node("no-kubelet", kubelet=False)
    node("cordoned", unschedulable=True)
    node("tainted", taints=taint("NoSchedule"))
    node("evicting", taints=taint("NoExecute"))
    cluster = Cluster.from_kubeconfig(str(kube_cluster.controller_kubeconfig))

    def group() -> set[str]:
        return {n["ID"] for n in cluster.group_nodes(app, "workers")}

    assert wait_for(lambda: group() == wanted, READY_TIMEOUT, "the kwok nodes to be Ready")
    assert [group() for _ in range(3)] == [wanted] * 3  # and it stays so
    assert {n["ID"] for n in cluster.nodes_by_group()[app, "workers"]} == wanted
