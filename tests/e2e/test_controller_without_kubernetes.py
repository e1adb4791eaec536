"""The controller starts before Kubernetes does (k3s still starting, kubeconfig not written):
it answers, says why it cannot deploy, and stops cleanly."""

from __future__ import annotations

from pathlib import Path

from controller_env import WEB_ADT
from e2e.daemon_harness import Daemon
from fakes.prometheus_api import FakePrometheus


def test_the_controller_runs_without_a_kubeconfig_and_says_why(tmp_path: Path) -> None:
    with FakePrometheus() as prometheus:
        daemon = Daemon(tmp_path, "http://127.0.0.1:9", prometheus.url, tmp_path / "rules",
                        tmp_path / "targets", write_kubeconfig=False)
        daemon.start()
        try:
            assert daemon.api("GET", "/healthz").json() == {"status": "ok"}
            response = daemon.api("POST", "/v1/apps", json={"adt": WEB_ADT.read_text(),
                                                            "app_id": "web"})
            assert response.status_code == 502
            assert "kubeconfig" in response.json()["detail"]["message"]
            assert daemon.api("GET", "/v1/apps").json() == {"apps": []}
            assert daemon.stop() == 0
        finally:
            daemon.kill()
    assert "Kubernetes is not available yet" in daemon.log.read_text()
