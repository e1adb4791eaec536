"""End to end: a real Prometheus scraping an exporter whose load the test sets, the controller
daemon in its own process, the `micado` CLI, and the Kubernetes API served over HTTP.

Load rises -> the alert fires -> replicas rise at the next tick; load falls -> replicas fall,
not before the cooldown; Prometheus stops -> nothing scales in; kill -9 in the middle of an
update -> after a restart the update is complete and nothing was done twice; SIGTERM -> exit 0;
20 apps with the same workload submitted at once -> one owner; a Deployment deleted by hand ->
re-created by the running daemon, at the size the policy reached, with a drift event.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from controller_env import WEB_ADT, ready_node
from e2e.daemon_harness import Daemon, now, wait_for
from fakes.kube_api import FakeKubeApi
from integration.prometheus_fixture import Exporter, PrometheusServer, require_prometheus

TICK = 2.0
COOLDOWN = 8
pytestmark = pytest.mark.integration


@dataclass
class Bed:
    prometheus: PrometheusServer
    exporter: Exporter
    kube: FakeKubeApi
    daemon: Daemon

    def adt(self) -> str:
        """The test ADT, scraping this bed's exporter (the controller writes the target)."""
        return WEB_ADT.read_text().replace(
            "          queries:\n",
            f'          sources: ["{self.exporter.address}"]\n          queries:\n', 1)

    def replicas(self) -> int:
        obj = self.kube.get("apps", "deployments", "default", "web")
        return 0 if obj is None else int(obj["spec"].get("replicas") or 1)

    def scale_calls(self, since: float = 0.0) -> list[tuple[float, int]]:
        calls = [r for r in list(self.kube.requests)
                 if r.method == "PATCH" and r.path.endswith("/deployments/web/scale")
                 and r.at >= since]
        return [(r.at, 0) for r in calls]

    def firing(self) -> bool:
        try:
            alerts = requests.get(f"{self.prometheus.url}/api/v1/alerts",
                                  timeout=2).json()["data"]["alerts"]
        except requests.RequestException:
            return False
        return any(a["labels"].get("alertname") == "web_overloaded"
                   and a["state"] == "firing" for a in alerts)

    def scraped(self) -> bool:
        try:
            result = requests.get(f"{self.prometheus.url}/api/v1/query",
                                  params={"query": 'web_load{job="micado-apps"}'},
                                  timeout=2).json()["data"]["result"]
        except requests.RequestException:
            return False
        return bool(result)

    def start_app(self) -> None:
        adt = self.daemon.root / "web.yaml"
        adt.write_text(self.adt())
        done = self.daemon.cli("start", str(adt), "--id", "web", "--tick", str(TICK),
                               "-p", f"cooldown_down={COOLDOWN}")
        assert done.returncode == 0, done.stderr + done.stdout
        wait_for(self.scraped, 30, "Prometheus to scrape the exporter through the file-SD "
                                   "target the controller wrote")


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    require_prometheus()
    exporter = Exporter().start()
    exporter.set("web_load", 0.5)
    prometheus = PrometheusServer(tmp_path / "prometheus").start()
    kube = FakeKubeApi().start()
    kube.seed(ready_node("w1", "workers"))
    daemon = Daemon(tmp_path / "controller", kube.url, prometheus.url, prometheus.rules_dir,
                    prometheus.sd_dir, tick_seconds=TICK)
    daemon.start()
    try:
        yield Bed(prometheus, exporter, kube, daemon)
    finally:
        daemon.kill()
        kube.stop()
        prometheus.stop()
        exporter.stop()


def test_scaling_follows_the_load(bed: Bed) -> None:
    bed.start_app()
    assert bed.replicas() == 1
    raised = now()
    bed.exporter.set("web_load", 1.0)
    wait_for(bed.firing, 30, "the alert to fire")
    # counted in ticks, not seconds: the tick under way may have read the alerts before this
    # one fired, the one after it starts later and must scale
    finished = bed.daemon.ticks()
    assert finished > 0, "the daemon counts its ticks in micado_tick_seconds"
    seen: list[tuple[int, list]] = []

    def scaled_or_two_ticks_done() -> bool:
        ticks = bed.daemon.ticks()  # first: a tick's scale call comes before its tick is counted
        seen.append((ticks, bed.scale_calls(since=raised)))
        return bool(seen[-1][1]) or ticks >= finished + 2

    wait_for(scaled_or_two_ticks_done, 60, "a scale call or two ticks after the alert")
    assert seen[-1][1], f"ticks {finished + 1} and {finished + 2} ran after the alert, no scale"
    wait_for(lambda: bed.replicas() >= 3, 30, "replicas to keep rising while overloaded")

    bed.exporter.set("web_load", 0.1)
    wait_for(lambda: not bed.firing(), 30, "the alert to resolve")
    last_out = max(e["ts"] for e in bed.daemon.events("action") if "scaled" in e["message"]
                   and "->" in e["message"] and _grew(e))
    peak = bed.replicas()
    wait_for(lambda: bed.replicas() < peak, 60, "replicas to fall after the cooldown")
    first_in = min(e["ts"] for e in bed.daemon.events("action") if not _grew(e))
    assert first_in - last_out >= COOLDOWN - 0.5  # never inside the cooldown window

    # status shows what the last tick read: the scale-in it just made shows from the next tick
    wait_for(lambda: _status_current(bed, "web") == bed.replicas(), 30,
             "status to show the live replica count")

    stopped = bed.daemon.cli("stop", "web")
    assert stopped.returncode == 0, stopped.stderr
    assert bed.kube.get("apps", "deployments", "default", "web") is None
    assert not (bed.prometheus.rules_dir / "web.rules.yml").exists()
    assert bed.daemon.stop() == 0


def _status_current(bed: Bed, target: str) -> int:
    status = bed.daemon.cli("status", "web", "--json")
    assert status.returncode == 0, status.stderr
    targets = {t["target"]: t for t in json.loads(status.stdout)["targets"]}
    return targets[target]["current"]


def _grew(event: dict) -> bool:
    data = event.get("data") or {}
    return data.get("to", 0) > data.get("from", 0)


def test_prometheus_down_nothing_scales_in(bed: Bed) -> None:
    bed.start_app()
    bed.exporter.set("web_load", 1.0)
    wait_for(lambda: bed.replicas() >= 2, 30, "a scale-out")
    bed.exporter.set("web_load", 0.5)  # neither overloaded nor idle: hold
    wait_for(lambda: not bed.firing(), 30, "the alert to resolve")
    held = bed.replicas()
    bed.prometheus.stop()
    bed.exporter.set("web_load", 0.0)
    calls = len(bed.scale_calls())

    def says_why() -> bool:
        status = bed.daemon.api("GET", "/v1/apps/web/status").json()
        return "does not answer" in status["inputs"].get("prometheus", "")

    wait_for(says_why, 20, "the status to say Prometheus does not answer")
    started = bed.daemon.ticks()
    wait_for(lambda: bed.daemon.ticks() >= started + 4, 60, "four ticks without Prometheus")
    assert bed.replicas() == held
    assert len(bed.scale_calls()) == calls
    status = bed.daemon.api("GET", "/v1/apps/web/status").json()
    assert all("does not answer" in t["reason"] for t in status["targets"])
    assert bed.daemon.stop() == 0


def test_kill_9_during_an_update_then_restart_loses_and_doubles_nothing(bed: Bed) -> None:
    bed.start_app()
    bed.exporter.set("web_load", 1.0)
    wait_for(lambda: bed.replicas() >= 2, 30, "a scale-out")
    bed.exporter.set("web_load", 0.5)
    wait_for(lambda: not bed.firing(), 30, "the alert to resolve")
    scaled = bed.replicas()
    actions_before = len(bed.daemon.events("action"))
    ops_before = bed.daemon.api("GET", "/v1/apps/web/status").json()["pending_operations"]

    new_adt = bed.adt().replace("image: nginx:1.25", "image: nginx:1.27")
    bed.kube.write_delay = 0.5  # slow writes: the kill lands in the middle of the update
    started = now()
    update = threading.Thread(target=_put, args=(bed.daemon, new_adt), daemon=True)
    update.start()
    wait_for(lambda: any(r.method == "PATCH" and r.at >= started
                         and r.content_type == "application/apply-patch+yaml"
                         for r in list(bed.kube.requests)), 20, "the update to start applying")
    bed.daemon.kill()
    update.join(timeout=30)
    bed.kube.write_delay = 0.0

    bed.daemon.start()

    def updated() -> bool:
        app = bed.daemon.api("GET", "/v1/apps/web").json()
        deployment = bed.kube.get("apps", "deployments", "default", "web") or {}
        image = deployment.get("spec", {}).get("template", {}).get("spec", {}).get(
            "containers", [{}])[0].get("image")
        return app["status"] == "running" and image == "nginx:1.27"

    wait_for(updated, 30, "the interrupted update to be finished after the restart")
    app = bed.daemon.api("GET", "/v1/apps/web").json()
    assert app["adt"] == new_adt  # the update was not lost
    assert bed.replicas() == scaled  # not reset by the re-apply, not scaled again
    wait_for(lambda: now() - started > 3 * TICK, 10 * TICK, "a few ticks after the restart")
    assert len(bed.daemon.events("action")) == actions_before
    ops_after = bed.daemon.api("GET", "/v1/apps/web/status").json()["pending_operations"]
    assert [(o["op_id"], o["desired"]) for o in ops_after] == \
        [(o["op_id"], o["desired"]) for o in ops_before]
    assert bed.daemon.stop() == 0
    with sqlite3.connect(bed.daemon.root / "state" / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [r[0] for r in db.execute("SELECT idempotency_key FROM operations")]
        assert len(keys) == len(set(keys))


def test_parallel_submits_of_one_workload_give_one_owner_and_drift_is_repaired(
        bed: Bed) -> None:
    adt = bed.adt()

    def submit(index: int) -> requests.Response:
        return bed.daemon.api("POST", "/v1/apps", json={
            "adt": adt, "app_id": f"app-{index}", "tick_seconds": TICK,
            "params": {"cooldown_down": COOLDOWN}})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(submit, range(20)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    winner = next(r.json()["app_id"] for r in responses if r.status_code == 201)
    deployment = bed.kube.get("apps", "deployments", "default", "web")
    assert deployment is not None
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == winner

    bed.exporter.set("web_load", 1.0)  # the alert is the winner's (its rule file)
    wait_for(lambda: bed.replicas() >= 2, 60, "a scale-out")
    bed.exporter.set("web_load", 0.5)
    wait_for(lambda: not bed.firing(), 30, "the alert to resolve")
    scaled = bed.replicas()
    gone = requests.delete(bed.kube.url + "/apis/apps/v1/namespaces/default/deployments/web",
                           timeout=10)  # kubectl delete deployment web
    assert gone.status_code == 200
    wait_for(lambda: bed.kube.get("apps", "deployments", "default", "web") is not None, 30,
             "the daemon to re-create the deleted Deployment")
    assert bed.replicas() == scaled
    wait_for(lambda: bed.daemon.events("drift"), 30, "the drift event of that tick")
    drift = [e["message"] for e in bed.daemon.events("drift")]
    assert drift == ["drift: Deployment/web deleted outside the controller, re-created"]
    assert bed.daemon.stop() == 0


def _put(daemon: Daemon, adt: str) -> None:
    # the controller is killed under the request, as intended
    with contextlib.suppress(requests.RequestException):
        daemon.api("PUT", "/v1/apps/web", json={"adt": adt, "params":
                                               {"cooldown_down": COOLDOWN}})
