"""kill -9 of the controller daemon in the middle of an update, then a restart: the update is
finished, nothing is lost or done twice (no new scale action, the same pending operations, one
row per idempotency key, a sound SQLite file).

On the fake API server (tests/fakes/kube_api.py) on purpose: the kill must land while the
update's writes are under way, so the writes are made slow (`write_delay`), which a real API
server cannot be made to do. Every other end-to-end scenario of the controller runs on the real
control plane: test_controller_e2e.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
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

    def image(self) -> str | None:
        deployment = self.kube.get("apps", "deployments", "default", "web") or {}
        return deployment.get("spec", {}).get("template", {}).get("spec", {}).get(
            "containers", [{}])[0].get("image")

    def firing(self) -> bool:
        try:
            alerts = requests.get(f"{self.prometheus.url}/api/v1/alerts",
                                  timeout=2).json()["data"]["alerts"]
        except requests.RequestException:
            return False
        return any(a["labels"].get("alertname") == "web_overloaded"
                   and a["state"] == "firing" for a in alerts)


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


def put(daemon: Daemon, adt: str) -> None:
    # the controller is killed under the request, as intended
    with contextlib.suppress(requests.RequestException):
        daemon.api("PUT", "/v1/apps/web", json={"adt": adt, "params":
                                               {"cooldown_down": COOLDOWN}})


def test_kill_9_during_an_update_then_restart_loses_and_doubles_nothing(bed: Bed) -> None:
    adt = bed.daemon.root / "web.yaml"
    adt.write_text(bed.adt())
    done = bed.daemon.cli("start", str(adt), "--id", "web", "--tick", str(TICK),
                          "-p", f"cooldown_down={COOLDOWN}")
    assert done.returncode == 0, done.stderr + done.stdout
    bed.exporter.set("web_load", 1.0)
    wait_for(lambda: bed.replicas() >= 2, 60, "a scale-out")
    bed.exporter.set("web_load", 0.5)
    wait_for(lambda: not bed.firing(), 30, "the alert to resolve")
    scaled = bed.replicas()
    actions_before = len(bed.daemon.events("action"))
    ops_before = bed.daemon.api("GET", "/v1/apps/web/status").json()["pending_operations"]

    new_adt = bed.adt().replace("image: nginx:1.25", "image: nginx:1.27")
    bed.kube.write_delay = 0.5  # slow writes: the kill lands in the middle of the update
    started = now()
    update = threading.Thread(target=put, args=(bed.daemon, new_adt), daemon=True)
    update.start()
    wait_for(lambda: any(r.method == "PATCH" and r.at >= started
                         and r.content_type == "application/apply-patch+yaml"
                         for r in list(bed.kube.requests)), 20, "the update to start applying",
             slowest=0.1)  # the kill must land in the middle of it
    bed.daemon.kill()
    update.join(timeout=30)
    bed.kube.write_delay = 0.0

    bed.daemon.start()

    def updated() -> bool:
        app = bed.daemon.api("GET", "/v1/apps/web").json()
        return app["status"] == "running" and bed.image() == "nginx:1.27"

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
