"""The real control plane of tests/kube/cluster.py does what the controller's tests will rely on:
Deployments become ready on kwok's nodes, the scheduler places pods by the node affinity the
compiler writes, and the controller's ServiceAccount may do exactly what the collection's
ClusterRole grants (issue 12). Run with `make test-cluster` (not part of `make test` yet).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from integration.prometheus_fixture import wait_until
from kube.cluster import KubeCluster
from micado.adt.k8s.placement import COMPUTE_KEY, EDGE_KEY, node_affinity

# make test runs it in the lane beside the one of the test bed, on that lane's control plane
pytestmark = [pytest.mark.cluster, pytest.mark.beside]

READY_TIMEOUT = 120.0


def node_ready(api: client.ApiClient, name: str) -> bool:
    node = client.CoreV1Api(api).read_node(name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def deployment(name: str, replicas: int, affinity: dict | None = None) -> dict:
    spec = {"containers": [{"name": "app", "image": "nginx:stable"}]}
    if affinity:
        spec["affinity"] = affinity
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def app_namespace(api: client.ApiClient) -> str:
    name = f"app-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def ready_replicas(api: client.ApiClient, namespace: str, name: str) -> int:
    return client.AppsV1Api(api).read_namespaced_deployment(name, namespace).status \
        .ready_replicas or 0


def test_kwok_nodes_become_ready(kube_cluster: KubeCluster) -> None:
    admin = kube_cluster.admin()
    name = kube_cluster.add_node("worker", "ready-test")
    assert wait_until(lambda: node_ready(admin, name), READY_TIMEOUT)


def test_controller_deployment_becomes_ready_and_scales(kube_cluster: KubeCluster) -> None:
    """As the controller's ServiceAccount: a namespace, a Deployment, its scale subresource."""
    kube_cluster.add_node("worker", "deploy-test")
    api = kube_cluster.controller()
    namespace = app_namespace(api)
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web", 2))
    assert wait_until(lambda: ready_replicas(api, namespace, "web") == 2, READY_TIMEOUT)
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})
    assert wait_until(lambda: ready_replicas(api, namespace, "web") == 3, READY_TIMEOUT)


def test_scheduler_places_pods_by_the_compilers_node_affinity(kube_cluster: KubeCluster) -> None:
    admin = kube_cluster.admin()
    app = f"aff-{uuid.uuid4().hex[:6]}"
    other = kube_cluster.add_node("worker-a", app)
    wanted = kube_cluster.add_node("worker-b", app)
    kube_cluster.add_node("worker-b", "another-app")  # same group name, another app: never chosen
    affinity = node_affinity({COMPUTE_KEY: ["worker-b"], EDGE_KEY: []}, app)
    namespace = app_namespace(admin)
    client.AppsV1Api(admin).create_namespaced_deployment(
        namespace, deployment("pinned", 4, affinity))
    assert wait_until(lambda: ready_replicas(admin, namespace, "pinned") == 4, READY_TIMEOUT)
    pods = client.CoreV1Api(admin).list_namespaced_pod(namespace, label_selector="app=pinned")
    assert {pod.spec.node_name for pod in pods.items} == {wanted}
    assert other not in {pod.spec.node_name for pod in pods.items}


def allowed(call: Callable[..., object], *args: object) -> bool:
    """Whether the API server lets the call through (403 means RBAC said no)."""
    try:
        call(*args)
    except ApiException as error:
        if error.status == 403:
            return False
        raise
    return True


VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def may(api: client.ApiClient, verb: str, group: str, resource: str,
        namespace: str = "") -> bool:
    """The API server's own answer (SelfSubjectAccessReview), cluster-wide or in `namespace`."""
    name, _, sub = resource.partition("/")
    review = client.AuthorizationV1Api(api).create_self_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": name,
                                        "subresource": sub, "namespace": namespace}}})
    return review.status.allowed


def test_controller_may_do_exactly_what_the_rendered_cluster_role_lists(
        kube_cluster: KubeCluster) -> None:
    """Every verb on every resource the role names: allowed where a rule lists the verb, denied
    otherwise, so the binding, the token and the role work together as the template says."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in kube_cluster.identity.cluster_role()["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    api = kube_cluster.controller()
    wrong = [(verb, group, resource, verb in verbs)
             for (group, resource), verbs in sorted(granted.items()) for verb in VERBS
             if may(api, verb, group, resource) != (verb in verbs)]
    assert wrong == [], "(verb, group, resource, expected allowed) answered otherwise"
    assert not may(api, "list", "", "serviceaccounts")  # not named: nothing
    assert not may(api, "create", "rbac.authorization.k8s.io", "clusterrolebindings")


def test_controller_role_grants_what_an_app_needs(kube_cluster: KubeCluster) -> None:
    api = kube_cluster.controller()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert allowed(core.list_node)
    assert allowed(core.list_namespace)
    assert allowed(apps.list_deployment_for_all_namespaces)
    assert allowed(core.list_config_map_for_all_namespaces)


def test_controller_role_denies_what_it_does_not_list(kube_cluster: KubeCluster) -> None:
    api = kube_cluster.controller()
    core = client.CoreV1Api(api)
    assert not allowed(core.create_node, {"metadata": {"name": "not-a-kubelet"}})
    assert not allowed(core.delete_namespace, "kube-system")
    assert not allowed(client.RbacAuthorizationV1Api(api).list_cluster_role)


def test_controller_role_lists_persistentvolumes(kube_cluster: KubeCluster) -> None:
    """Once a finding (issue 12): the role had no rule for persistentvolumes, so `micado start`,
    which lists every kind it knows cluster-wide, was refused (403) on a real cluster."""
    assert allowed(client.CoreV1Api(kube_cluster.controller()).list_persistent_volume)


def test_controller_role_reads_secrets_only_in_its_listed_namespaces(
        kube_cluster: KubeCluster) -> None:
    """Once a finding (issue 12): Secrets were granted cluster-wide, kube-system's included.
    Now only through a RoleBinding in each of k3s_server_controller_secret_namespaces."""
    core = client.CoreV1Api(kube_cluster.controller())
    assert not allowed(core.list_namespaced_secret, "kube-system")
    assert not allowed(core.read_namespaced_secret, "micado-controller-token", "micado-system")
    assert not allowed(core.list_secret_for_all_namespaces)
    assert allowed(core.list_namespaced_secret, "default")


def test_controller_only_creates_secrets_in_kube_system(kube_cluster: KubeCluster) -> None:
    """The node actuator's join tokens (bootstrap token Secrets in kube-system): create, and
    nothing else there (kube-system's Secrets are the cluster's own credentials)."""
    api = kube_cluster.controller()
    assert [verb for verb in VERBS if may(api, verb, "", "secrets", "kube-system")] == ["create"]


def test_controller_may_cordon_drain_and_delete_nodes(kube_cluster: KubeCluster) -> None:
    """What micado.core.scale_nodes does to the Node of a VM it removes, with this identity:
    once a finding (issue 12), nodes were get/list only and every scale-in was refused."""
    api = kube_cluster.controller()
    assert may(api, "patch", "", "nodes") and may(api, "delete", "", "nodes")
    assert may(api, "create", "", "pods/eviction")
    assert not may(api, "create", "", "nodes") and not may(api, "update", "", "nodes")
