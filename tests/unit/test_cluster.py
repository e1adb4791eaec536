"""micado.actuators.kubernetes against a fake Kubernetes API server on 127.0.0.1
(tests/fakes/kube_api.py).

The real `kubernetes` ApiClient talks HTTP to the fake; assertions look at the fake's store.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from fakes.kube_api import FakeKubeApi
from micado.actuators.kubernetes import Cluster, ClusterError, ObjectOwned
from micado.adt import compile_adt
from micado.adt.model import Workload

APP = "demo"


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    with FakeKubeApi() as fake:
        yield fake


def make_cluster(url: str, **options: Any) -> tuple[Cluster, list[float]]:
    sleeps: list[float] = []
    config = k8s.Configuration(host=url)
    options = {"attempts": 4, "base_delay": 0.01, "max_delay": 0.05, "timeout": 5,
               "sleep": sleeps.append, **options}
    return Cluster(k8s.ApiClient(config), **options), sleeps


@pytest.fixture
def cluster(api: FakeKubeApi) -> Cluster:
    return make_cluster(api.url)[0]


def node(name: str, group: str | None, *, ready: bool = True, cordoned: bool = False,
         taint: str | None = None, addresses: list[tuple[str, str]] | None = None,
         app: str | None = APP) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if group is not None:
        labels["micado.eu/node_type"] = group
    if app is not None:
        labels["micado.eu/app"] = app
    spec: dict[str, Any] = {}
    if cordoned:
        spec["unschedulable"] = True
    if taint:
        spec["taints"] = [{"key": "example.com/x", "effect": taint}]
    if addresses is None:
        addresses = [("Hostname", name), ("InternalIP", f"10.0.0.{len(name)}")]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "addresses": [{"type": t, "address": a} for t, a in addresses]}}


def workload_manifest(kind: str, name: str, *, app: str = APP, node_name: str | None = None,
                      namespace: str = "default", replicas: int = 1) -> dict[str, Any]:
    node_name = node_name or name
    selector = {"app.kubernetes.io/name": node_name, "app.kubernetes.io/instance": app}
    labels = {**selector, "app.kubernetes.io/managed-by": "micado"}
    spec: dict[str, Any] = {
        "replicas": replicas, "selector": {"matchLabels": selector},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}


def workload(kind: str, name: str, namespace: str = "default") -> Workload:
    return Workload(node=name, kind=kind, name=name, namespace=namespace,
                    selector={"app.kubernetes.io/name": name,
                              "app.kubernetes.io/instance": APP})


# ---------------------------------------------------------------------- nodes


def test_group_nodes_keeps_only_ready_schedulable_untainted_nodes_of_the_group(
        api: FakeKubeApi, cluster: Cluster) -> None:
    api.seed(node("worker-a", "workers"))
    api.seed(node("worker-b", "workers", addresses=[("Hostname", "b"), ("ExternalIP", "1.2.3.4"),
                                                    ("InternalIP", "10.1.1.1")]))
    api.seed(node("worker-c", "workers", addresses=[("ExternalIP", "5.6.7.8")]))
    api.seed(node("worker-soft", "workers", taint="PreferNoSchedule"))
    api.seed(node("not-ready", "workers", ready=False))
    api.seed(node("cordoned", "workers", cordoned=True))
    api.seed(node("tainted", "workers", taint="NoSchedule"))
    api.seed(node("evicting", "workers", taint="NoExecute"))
    api.seed(node("other", "gpu"))
    api.seed(node("master", None))

    nodes = cluster.group_nodes(APP, "workers")

    assert nodes == [{"ID": "worker-a", "Addr": "10.0.0.8"},
                     {"ID": "worker-b", "Addr": "10.1.1.1"},
                     {"ID": "worker-c", "Addr": "5.6.7.8"},
                     {"ID": "worker-soft", "Addr": "10.0.0.11"}]
    assert cluster.group_nodes(APP, "gpu") == [{"ID": "other", "Addr": "10.0.0.5"}]
    assert cluster.group_nodes(APP, "none") == []
    assert api.requests[0].query["labelSelector"] == \
        "micado.eu/node_type=workers,micado.eu/app=demo"


def test_a_group_of_the_same_name_of_another_app_is_another_group(
        api: FakeKubeApi, cluster: Cluster) -> None:
    api.seed(node("ours", "workers"))
    api.seed(node("theirs-1", "workers", app="other"))
    api.seed(node("theirs-2", "workers", app="other"))
    api.seed(node("legacy", "workers", app=None))  # MiCADO's label alone: no app's group

    assert [n["ID"] for n in cluster.group_nodes(APP, "workers")] == ["ours"]
    groups = cluster.nodes_by_group()
    assert {k: [n["ID"] for n in v] for k, v in groups.items()} == {
        (APP, "workers"): ["ours"], ("other", "workers"): ["theirs-1", "theirs-2"]}


# ---------------------------------------------------------------------- replicas


def test_live_replicas_finds_the_apps_workloads_by_label_and_namespace(
        api: FakeKubeApi, cluster: Cluster) -> None:
    api.seed(workload_manifest("Deployment", "web", replicas=3))
    api.seed(workload_manifest("StatefulSet", "db", namespace="data", replicas=2))
    # same names, another app, another namespace: not ours
    api.seed(workload_manifest("Deployment", "web", app="other", namespace="other", replicas=9))
    api.seed(workload_manifest("StatefulSet", "db", app="other", replicas=7))

    live = cluster.live_replicas(APP, [
        workload("Deployment", "web"), workload("StatefulSet", "db", "data"),
        workload("Deployment", "missing"), workload("DaemonSet", "agent")])

    assert live == {"web": 3, "db": 2}
    lists = [r for r in api.requests if r.method == "GET"]
    assert {r.path for r in lists} == {"/apis/apps/v1/deployments",
                                      "/apis/apps/v1/statefulsets"}
    assert all(r.query["labelSelector"] == "app.kubernetes.io/instance=demo" for r in lists)


def test_live_replicas_matches_the_node_label_even_when_the_workload_was_renamed(
        api: FakeKubeApi, cluster: Cluster) -> None:
    api.seed(workload_manifest("Deployment", "renamed", node_name="web", replicas=4))
    target = Workload(node="web", kind="Deployment", name="renamed", namespace="default",
                      selector={})
    assert cluster.live_replicas(APP, [target]) == {"web": 4}


# ---------------------------------------------------------------------- scale


@pytest.mark.parametrize(("kind", "plural"), [("Deployment", "deployments"),
                                              ("StatefulSet", "statefulsets")])
def test_scale_changes_the_stored_object_and_returns_the_previous_count(
        api: FakeKubeApi, cluster: Cluster, kind: str, plural: str) -> None:
    api.seed(workload_manifest(kind, "web", namespace="apps", replicas=2))

    assert cluster.scale(workload(kind, "web", "apps"), 5) == 2

    assert api.get("apps", plural, "apps", "web")["spec"]["replicas"] == 5
    patch = next(r for r in api.requests if r.method == "PATCH")
    assert patch.path == f"/apis/apps/v1/namespaces/apps/{plural}/web/scale"
    assert cluster.scale(workload(kind, "web", "apps"), 5) == 5
    assert cluster.live_replicas(APP, [workload(kind, "web", "apps")]) == {"web": 5}


def test_scale_refuses_kinds_without_replicas(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="DaemonSet"):
        cluster.scale(workload("DaemonSet", "agent"), 2)
    with pytest.raises(ValueError, match="non-negative"):
        cluster.scale(workload("Deployment", "web"), -1)


# ---------------------------------------------------------------------- apply / prune


def service(name: str, app: str = APP) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": app,
              "app.kubernetes.io/managed-by": "micado"}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"selector": labels, "ports": [{"port": 80}]}}


def test_apply_is_server_side_apply_with_the_micado_field_manager(
        api: FakeKubeApi, cluster: Cluster) -> None:
    deployment = workload_manifest("Deployment", "web", replicas=2)
    del deployment["metadata"]["namespace"]  # defaults to "default"
    applied = cluster.apply([deployment, service("web")])

    assert [o["kind"] for o in applied] == ["Service", "Deployment"]  # services first
    stored = api.get("apps", "deployments", "default", "web")
    assert stored["spec"]["replicas"] == 2
    assert stored["metadata"]["managedFields"][0]["manager"] == "micado"
    patches = [r for r in api.requests if r.method == "PATCH"]
    assert {r.content_type for r in patches} == {"application/apply-patch+yaml"}
    assert all(r.query == {"fieldManager": "micado", "force": "true"} for r in patches)

    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    cluster.apply([deployment])
    stored = api.get("apps", "deployments", "default", "web")
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert stored["metadata"]["generation"] == 2


def test_apply_finds_unknown_kinds_by_discovery(api: FakeKubeApi, cluster: Cluster) -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "web", "labels": {"app.kubernetes.io/instance": APP}},
           "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "web"}}}
    cluster.apply([hpa])
    assert api.get("autoscaling", "horizontalpodautoscalers", "default", "web") is not None
    assert any(r.path == "/apis/autoscaling/v2" for r in api.requests)


def test_apply_then_prune_deletes_only_what_the_app_no_longer_has(
        api: FakeKubeApi, cluster: Cluster) -> None:
    first = [workload_manifest("Deployment", "web"), service("web"),
             workload_manifest("Deployment", "worker"), service("worker")]
    cluster.apply(first)
    api.seed(workload_manifest("Deployment", "worker", app="other", namespace="other"))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web-abc", "namespace": "default",
                        "labels": first[0]["spec"]["template"]["metadata"]["labels"],
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1"}]},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    api.seed(pod)  # made by the Deployment's ReplicaSet: the garbage collector's job

    second = first[:2]
    cluster.apply(second)
    deleted = cluster.prune(APP, keep=second)

    assert sorted(deleted) == [("Deployment", "default", "worker"),
                               ("Service", "default", "worker")]
    assert api.get("apps", "deployments", "default", "worker") is None
    assert api.get("", "services", "default", "worker") is None
    assert api.get("apps", "deployments", "default", "web") is not None
    assert api.get("", "services", "default", "web") is not None
    assert api.get("apps", "deployments", "other", "worker") is not None
    assert api.get("", "pods", "default", "web-abc") is not None
    assert cluster.prune(APP, keep=second) == []


def test_delete_app_deletes_every_object_of_the_app(api: FakeKubeApi, cluster: Cluster) -> None:
    cluster.apply([workload_manifest("Deployment", "web"), service("web"),
                   workload_manifest("Deployment", "web", app="other", namespace="other")])
    assert sorted(cluster.delete_app(APP)) == [("Deployment", "default", "web"),
                                               ("Service", "default", "web")]
    assert [key[:3] for key in api.objects] == [("apps", "deployments", "other")]


# ---------------------------------------------------------------------- ownership

INSTANCE = "app.kubernetes.io/instance"


def test_apply_as_owner_refuses_an_object_of_another_app_and_changes_nothing(
        api: FakeKubeApi, cluster: Cluster) -> None:
    api.seed(workload_manifest("Deployment", "web", app="other", replicas=4))
    with pytest.raises(ObjectOwned, match="Deployment default/web already exists and belongs "
                                          "to app 'other'"):
        cluster.apply([workload_manifest("Deployment", "web")], owner=APP)
    stored = api.get("apps", "deployments", "default", "web")
    assert stored["metadata"]["labels"][INSTANCE] == "other"
    assert stored["spec"]["replicas"] == 4
    assert not [r for r in api.requests if r.method == "PATCH"]


def test_apply_as_owner_never_overwrites_an_object_relabelled_after_it_was_read(
        api: FakeKubeApi, cluster: Cluster) -> None:
    cluster.apply([workload_manifest("Deployment", "web")], owner=APP)
    relabelled: list[str] = []

    def take_it(method: str, path: str) -> None:  # another app takes the object in between
        if method == "PATCH" and path.endswith("/deployments/web") and not relabelled:
            api.label("apps", "deployments", "default", "web", {INSTANCE: "other"})
            relabelled.append(path)

    api.on_request(take_it)
    changed = workload_manifest("Deployment", "web")
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    with pytest.raises(ObjectOwned, match="belongs to app 'other'"):
        cluster.apply([changed], owner=APP)
    stored = api.get("apps", "deployments", "default", "web")
    assert stored["metadata"]["labels"][INSTANCE] == "other"
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"


def test_apply_as_owner_takes_back_what_adopt_allows(api: FakeKubeApi, cluster: Cluster) -> None:
    api.seed(workload_manifest("Deployment", "web", app="nobody"))
    seen: list[tuple[tuple[str, str, str], str | None]] = []

    def adopt(key: tuple[str, str, str], label: str | None) -> bool:
        seen.append((key, label))
        return True

    cluster.apply([workload_manifest("Deployment", "web")], owner=APP, adopt=adopt)
    assert seen == [(("Deployment", "default", "web"), "nobody")]
    stored = api.get("apps", "deployments", "default", "web")
    assert stored["metadata"]["labels"][INSTANCE] == APP


def test_delete_leaves_an_object_relabelled_for_another_app_between_list_and_delete(
        api: FakeKubeApi, cluster: Cluster) -> None:
    cluster.apply([workload_manifest("Deployment", "web"), service("web")], owner=APP)

    def take_it(method: str, path: str) -> None:
        if method == "DELETE" and path.endswith("/deployments/web"):
            obj = api.get("apps", "deployments", "default", "web")
            if obj is not None and obj["metadata"]["labels"][INSTANCE] == APP:
                api.label("apps", "deployments", "default", "web", {INSTANCE: "other"})

    api.on_request(take_it)
    assert cluster.delete_app(APP) == [("Service", "default", "web")]
    stored = api.get("apps", "deployments", "default", "web")
    assert stored is not None and stored["metadata"]["labels"][INSTANCE] == "other"


# ---------------------------------------------------------------------- errors


def test_transient_errors_are_retried_with_backoff(api: FakeKubeApi) -> None:
    cluster, sleeps = make_cluster(api.url)
    api.seed(workload_manifest("Deployment", "web", replicas=1))
    api.fail_next(503, times=2)

    assert cluster.scale(workload("Deployment", "web"), 3) == 1

    assert sleeps == [0.01, 0.02]
    assert api.get("apps", "deployments", "default", "web")["spec"]["replicas"] == 3

    # 429 with Retry-After (as the real server sends it) is retried too (by urllib3 first)
    api.fail_next(429)
    before = len(api.requests)
    assert cluster.group_nodes(APP, "workers") == []
    assert len(api.requests) == before + 2


def test_retries_are_bounded(api: FakeKubeApi) -> None:
    cluster, sleeps = make_cluster(api.url, attempts=3)
    api.fail_next(503, times=5)
    with pytest.raises(ClusterError) as caught:
        cluster.group_nodes(APP, "workers")
    assert caught.value.status == 503
    assert caught.value.reason == "ServiceUnavailable"
    assert sleeps == [0.01, 0.02]


def test_not_found_is_a_cluster_error_with_status_and_message(
        api: FakeKubeApi, cluster: Cluster) -> None:
    with pytest.raises(ClusterError) as caught:
        cluster.scale(workload("Deployment", "ghost"), 2)
    error = caught.value
    assert error.status == 404
    assert error.reason == "NotFound"
    assert '"ghost" not found' in error.message
    assert "GET /apis/apps/v1/namespaces/default/deployments/ghost/scale" in str(error)
    assert len(api.requests) == 1  # not retried


def test_bad_request_is_not_retried(api: FakeKubeApi, cluster: Cluster) -> None:
    api.fail_next(400)
    with pytest.raises(ClusterError) as caught:
        cluster.group_nodes(APP, "workers")
    assert caught.value.status == 400
    assert len(api.requests) == 1


def test_connection_refused_is_retried_then_raised() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    config.retries = 0  # urllib3's own retries off: ours count
    sleeps: list[float] = []
    cluster = Cluster(k8s.ApiClient(config), attempts=3, base_delay=0.01, max_delay=0.015,
                      sleep=sleeps.append)
    with pytest.raises(ClusterError) as caught:
        cluster.group_nodes(APP, "workers")
    assert caught.value.status is None
    assert sleeps == [0.01, 0.015]


def test_from_kubeconfig(api: FakeKubeApi, tmp_path: Any) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters: [{{name: fake, cluster: {{server: '{api.url}'}}}}]\n"
        "users: [{name: me, user: {token: secret-token}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: me}}]\n")
    api.seed(node("n1", "workers"))
    cluster = Cluster.from_kubeconfig(str(kubeconfig), attempts=1)
    assert cluster.group_nodes(APP, "workers") == [{"ID": "n1", "Addr": "10.0.0.2"}]
    assert api.requests[-1].authorization == "Bearer secret-token"


def test_a_lazy_cluster_reports_a_missing_kubeconfig_until_it_appears(
        api: FakeKubeApi, tmp_path: Any) -> None:
    kubeconfig = tmp_path / "config"
    cluster = Cluster.from_kubeconfig(str(kubeconfig), lazy=True, attempts=1)
    with pytest.raises(ClusterError, match="kubeconfig cannot be used"):
        cluster.group_nodes(APP, "workers")
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters: [{{name: fake, cluster: {{server: '{api.url}'}}}}]\n"
        "users: [{name: me, user: {token: t}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: me}}]\n")
    api.seed(node("n1", "workers"))
    assert [n["ID"] for n in cluster.group_nodes(APP, "workers")] == ["n1"]
    cluster.close()


def test_compiled_adt_applies_and_its_workloads_are_found_and_scaled(
        api: FakeKubeApi, cluster: Cluster, examples_dir: Path) -> None:
    adt = examples_dir / "nginx_ec2.yaml"
    compiled = compile_adt(adt.read_text(), app_id=APP, base_dir=adt.parent)
    workloads = compiled.plan.workloads

    cluster.apply(compiled.manifests)
    live = cluster.live_replicas(APP, workloads)
    assert set(live) == {w.node for w in workloads if w.kind in ("Deployment", "StatefulSet")}
    target = workloads[0]
    assert cluster.scale(target, live[target.node] + 2) == live[target.node]
    assert cluster.live_replicas(APP, workloads)[target.node] == live[target.node] + 2
    assert cluster.prune(APP, keep=compiled.manifests) == []
    assert len(cluster.delete_app(APP)) == len(compiled.manifests)
    assert api.objects == {}


def test_apply_as_owner_re_creates_an_object_deleted_after_it_was_read(
        api: FakeKubeApi, cluster: Cluster) -> None:
    cluster.apply([workload_manifest("Deployment", "web")], owner=APP)
    deleted: list[str] = []

    def delete_it(method: str, path: str) -> None:  # kubectl delete between read and apply
        if method == "PATCH" and path.endswith("/deployments/web") and not deleted:
            api.objects.pop(("apps", "deployments", "default", "web"))
            deleted.append(path)

    api.on_request(delete_it)
    cluster.apply([workload_manifest("Deployment", "web")], owner=APP)
    assert deleted and api.get("apps", "deployments", "default", "web") is not None


def test_a_kind_refused_cluster_wide_is_listed_per_namespace_and_not_asked_again(
        api: FakeKubeApi, cluster: Cluster) -> None:
    """RBAC may grant Secrets only in some namespaces (the k3s_server role's secret namespaces):
    the app's objects are still found, namespace by namespace, and the refused cluster-wide list
    is not sent again on the next tick."""
    for name in ("default", "other"):
        api.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    api.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "creds", "namespace": "default", "labels": {INSTANCE: "app"}}})
    api.fail_next(403)  # the cluster-wide list
    for _ in range(2):
        found = cluster.app_objects("app", [("v1", "Secret")])
        assert set(found) == {("Secret", "default", "creds")}
    assert [r.path for r in api.requests if r.path == "/api/v1/secrets"] == ["/api/v1/secrets"]
    assert sum(r.path == "/api/v1/namespaces/default/secrets" for r in api.requests) == 2
