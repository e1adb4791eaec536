"""End to end on the real control plane (tests/kube/cluster.py: etcd, kube-apiserver with RBAC,
the controller manager, the scheduler, kwok's nodes) as the controller's own ServiceAccount: a
real Prometheus scraping an exporter whose load the test sets, the controller daemon in its own
process, the `micado` CLI (tests/e2e/real_bed.py).

Load rises -> the alert fires -> replicas rise through the scale subresource at the next tick;
load falls -> replicas fall, not before the cooldown; Prometheus stops -> nothing scales in; a
rule reading the group's node count follows the real Nodes labelled with the group's
`micado.eu/node_type` and app; stop deletes the app's objects and touches nothing else; what
changed while the daemon was down (kill -9) is put back after the restart, with drift events;
20 apps with the same workload submitted at once -> one owner; a Deployment deleted by hand ->
re-created by the running daemon, at the size the policy reached, with a drift event.

A kill -9 in the middle of an update needs slow writes, which a real server cannot be made to
do: test_controller_slow_writes.py, on the fake API server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from kubernetes import client

from e2e.daemon_harness import now, wait_for
from e2e.real_bed import READY_TIMEOUT, RealBed, adt, load_policy, real_bed, web_adt
from kube.cluster import KubeCluster

TICK = 2.0
COOLDOWN = 8
# mostly waiting for the ADT's periods and Prometheus' scrapes: make test runs it in the lane
# beside the one of the test bed (scripts/run-tests)
pytestmark = [pytest.mark.cluster, pytest.mark.beside]


@pytest.fixture
def bed(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[RealBed]:
    with real_bed(kube_cluster, tmp_path, TICK) as made:
        yield made


def start_web(bed: RealBed) -> None:
    """tests/data/controller/web.yaml as the bed's app, scraped by the bed's Prometheus."""
    path = bed.daemon.root / "web.yaml"
    path.write_text(web_adt(bed.exporter.address, bed.namespace))
    bed.run("start", str(path), "--id", bed.app, "--tick", str(TICK),
            "-p", f"cooldown_down={COOLDOWN}")
    wait_for(bed.scraped, 30, "Prometheus to scrape the exporter through the file-SD target "
                              "the controller wrote")


def scale_out(bed: RealBed) -> int:
    """Load up until web has scaled out, then hold (neither in nor out): the count reached."""
    bed.exporter.set("web_load", 1.0)
    wait_for(lambda: bed.replicas() >= 2, 60, "a scale-out")
    bed.exporter.set("web_load", 0.5)
    wait_for(lambda: not bed.firing(), 30, "the alert to resolve")
    return bed.replicas()


def grew(event: dict) -> bool:
    data = event.get("data") or {}
    return data.get("to", 0) > data.get("from", 0)


def current(bed: RealBed, target: str) -> int:
    targets = {t["target"]: t for t in json.loads(bed.run("status", bed.app, "--json"))["targets"]}
    return targets[target]["current"]


def test_scaling_follows_the_load(bed: RealBed) -> None:
    start_web(bed)
    assert bed.replicas() == 1
    bed.exporter.set("web_load", 1.0)
    wait_for(bed.firing, 30, "the alert to fire")
    # counted in ticks, not seconds: the tick under way may have read the alerts before this
    # one fired, the one after it starts later and must scale
    finished = bed.daemon.ticks()
    assert finished > 0, "the daemon counts its ticks in micado_tick_seconds"
    seen: list[tuple[int, int]] = []

    def scaled_or_two_ticks_done() -> bool:
        ticks = bed.daemon.ticks()  # first: a tick scales before it is counted
        seen.append((ticks, bed.replicas()))
        return seen[-1][1] > 1 or ticks >= finished + 2

    wait_for(scaled_or_two_ticks_done, 60, "a scale-out or two ticks after the alert")
    assert seen[-1][1] > 1, f"ticks {finished + 1} and {finished + 2} ran after the alert, no scale"
    wait_for(lambda: bed.replicas() >= 3, 30, "replicas to keep rising while overloaded")

    bed.exporter.set("web_load", 0.1)
    wait_for(lambda: not bed.firing(), 30, "the alert to resolve")
    last_out = max(e["ts"] for e in bed.daemon.events("action") if "scaled" in e["message"]
                   and "->" in e["message"] and grew(e))
    peak = bed.replicas()
    wait_for(lambda: bed.replicas() < peak, 60, "replicas to fall after the cooldown")
    first_in = min(e["ts"] for e in bed.daemon.events("action") if not grew(e))
    assert first_in - last_out >= COOLDOWN - 0.5  # never inside the cooldown window

    # status shows what the last tick read: the scale-in it just made shows from the next tick
    wait_for(lambda: current(bed, "web") == bed.replicas(), 30,
             "status to show the live replica count")

    bed.run("stop", bed.app)
    assert bed.deployment() is None
    assert not (bed.prometheus.rules_dir / f"{bed.app}.rules.yml").exists()
    assert bed.daemon.stop() == 0


def test_prometheus_down_nothing_scales_in(bed: RealBed) -> None:
    start_web(bed)
    held = scale_out(bed)
    generation = bed.deployment().metadata.generation  # moves with every change of the spec
    actions = len(bed.daemon.events("action"))
    bed.prometheus.stop()
    bed.exporter.set("web_load", 0.0)

    def says_why() -> bool:
        status = bed.daemon.api("GET", f"/v1/apps/{bed.app}/status").json()
        return "does not answer" in status["inputs"].get("prometheus", "")

    wait_for(says_why, 20, "the status to say Prometheus does not answer")
    started = bed.daemon.ticks()
    wait_for(lambda: bed.daemon.ticks() >= started + 4, 60, "four ticks without Prometheus")
    assert bed.replicas() == held
    assert bed.deployment().metadata.generation == generation
    assert len(bed.daemon.events("action")) == actions
    status = bed.daemon.api("GET", f"/v1/apps/{bed.app}/status").json()
    assert all("does not answer" in t["reason"] for t in status["targets"])
    assert bed.daemon.stop() == 0


def test_a_rule_on_the_node_count_follows_the_groups_real_nodes(
        bed: RealBed, kube_cluster: KubeCluster) -> None:
    """m_node_count in a container rule is the number of Ready nodes of its host group: Nodes
    labelled micado.eu/node_type=workers and micado.eu/app=<the app>, listed as the
    controller's account; another app's node of the same group name does not count."""
    rule = "m_container_count = m_node_count + 1\n"
    bed.run("start", str(bed.adt(cache=False, policy=load_policy(bed.exporter.address, rule))),
            "--id", bed.app, "--tick", str(TICK))
    wait_for(lambda: bed.replicas() == 2, 60, "web at one more than the group's one node")
    kube_cluster.add_node("workers", f"other{bed.app}")  # not this app's group
    kube_cluster.add_node("workers", bed.app)
    wait_for(lambda: bed.replicas() == 3, READY_TIMEOUT,
             "web at one more than the group's two nodes, once the new one is Ready")
    ticks = bed.daemon.ticks()
    wait_for(lambda: bed.daemon.ticks() >= ticks + 3, 30, "three more ticks")
    assert bed.replicas() == 3
    assert bed.troubles() == []
    assert bed.daemon.stop() == 0


def test_stop_deletes_the_apps_objects_and_nothing_else(
        bed: RealBed, kube_cluster: KubeCluster) -> None:
    """Another app of the same daemon, an object of nobody in the app's namespace and one in
    "default": none of them changes (same resourceVersion) when the app is stopped; the app's
    namespace stays (namespaces are never deleted)."""
    other, other_ns = f"other{bed.app}", f"ns-other{bed.app}"
    admin = kube_cluster.admin()
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    core.create_namespace({"metadata": {"name": other_ns}})
    kube_cluster.add_node("workers", other)
    bystanders = [
        core.create_namespaced_config_map(bed.namespace, {"metadata": {"name": "web"},
                                                          "data": {"kept": "yes"}}),
        core.create_namespaced_secret("default", {"metadata": {"name": f"{bed.app}-mine"},
                                                  "stringData": {"kept": "yes"}}),
    ]
    bed.run("start", str(bed.adt()), "--id", bed.app, "--tick", str(TICK))
    path = bed.daemon.root / "other.yaml"
    path.write_text(adt(other, other_ns, cache=False))
    bed.run("start", str(path), "--id", other, "--tick", str(TICK))
    wait_for(lambda: bed.ready("web") and bed.ready("cache"), READY_TIMEOUT, "the app ready")
    wait_for(lambda: (apps.read_namespaced_deployment("web", other_ns).status.ready_replicas
                      or 0) >= 1, READY_TIMEOUT, "the other app ready")
    others = bed.objects(other)
    assert {kind for kind, _, _ in others} == {"Deployment", "Service", "Secret"}
    assert len(bed.objects()) == 5  # web, cache, their Services, the Secret

    bed.run("stop", bed.app)
    assert bed.objects() == {}
    assert bed.objects(other) == others
    assert [core.read_namespaced_config_map("web", bed.namespace).metadata.resource_version,
            core.read_namespaced_secret(f"{bed.app}-mine", "default").metadata.resource_version
            ] == [made.metadata.resource_version for made in bystanders]
    assert core.read_namespace(bed.namespace).status.phase == "Active"
    assert [a["app_id"] for a in json.loads(bed.run("apps", "--json"))["apps"]] == [other]
    assert bed.daemon.stop() == 0


def test_what_changed_while_the_daemon_was_down_is_put_back_after_a_restart(
        bed: RealBed, kube_cluster: KubeCluster) -> None:
    """kill -9; then, by hand: one Deployment deleted, the other's image changed, the app's
    Secret deleted. The restarted daemon re-applies all three as the owner (server-side apply,
    forced: it takes the image back from kubectl's field manager), keeps the count the policy
    reached, and says so in one drift event each."""
    bed.run("start", str(bed.adt(policy=load_policy(bed.exporter.address))),
            "--id", bed.app, "--tick", str(TICK))
    scaled = scale_out(bed)
    wait_for(lambda: bed.ready("web") and bed.ready("cache"), READY_TIMEOUT, "the app ready")
    before = bed.objects()
    bed.daemon.kill()

    admin = kube_cluster.admin()
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    apps.delete_namespaced_deployment("cache", bed.namespace)
    apps.patch_namespaced_deployment("web", bed.namespace, {"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "nginx:hand-made"}]}}}},
        field_manager="kubectl-edit")
    core.delete_namespaced_secret(f"{bed.app}-settings", "default")
    assert bed.image("web") == "nginx:hand-made"

    bed.daemon.start()
    wait_for(lambda: bed.objects().keys() == before.keys() and bed.image("web") == "nginx:1.25",
             30, "the restarted daemon to put everything back")
    assert bed.replicas() == scaled
    drift = wait_for(lambda: len(bed.daemon.events("drift")) >= 3 and bed.daemon.events("drift"),
                     30, "a drift event for each")
    assert sorted(e["message"].split(":")[1].split()[0] for e in drift) == [
        "Deployment/cache", "Deployment/web", "Secret/" + f"{bed.app}-settings"], drift
    assert bed.daemon.stop() == 0


def test_parallel_submits_of_one_workload_give_one_owner_and_drift_is_repaired(
        bed: RealBed, kube_cluster: KubeCluster) -> None:
    source = web_adt(bed.exporter.address, bed.namespace)

    def submit(index: int) -> requests.Response:
        return bed.daemon.api("POST", "/v1/apps", json={
            "adt": source, "app_id": f"{bed.app}-{index}", "tick_seconds": TICK,
            "params": {"cooldown_down": COOLDOWN}})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(submit, range(20)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    winner = next(r.json()["app_id"] for r in responses if r.status_code == 201)
    assert bed.deployment().metadata.labels["app.kubernetes.io/instance"] == winner

    scaled = scale_out(bed)  # the alert is the winner's (its rule file)
    started = now()
    client.AppsV1Api(kube_cluster.admin()).delete_namespaced_deployment(
        "web", bed.namespace)  # kubectl delete deployment web
    wait_for(lambda: bed.deployment() is not None
             and bed.deployment().metadata.creation_timestamp.timestamp() >= int(started),
             30, "the daemon to re-create the deleted Deployment")
    assert bed.replicas() == scaled
    wait_for(lambda: bed.daemon.events("drift"), 30, "the drift event of that tick")
    drift = [e["message"] for e in bed.daemon.events("drift")]
    assert drift == ["drift: Deployment/web deleted outside the controller, re-created"]
    assert bed.daemon.stop() == 0
