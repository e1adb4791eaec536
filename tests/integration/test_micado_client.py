"""MiCADO's own client, unchanged, through the gateway to the controller.

micado-client 0.12.13 from PyPI (its own cached virtualenv, driven as a subprocess: see
micado_client_venv.py) talks to the gateway role's real nginx site (rendered by Ansible, run by
Debian's nginx on loopback with the role's self-signed CA), which checks the site's web user with
basic auth and forwards to the controller daemon (its own process, the real control plane of
tests/kube/cluster.py as the controller's ServiceAccount, a real Prometheus) with the
controller's token.
"""

from __future__ import annotations

import grp
import json
import os
import re
import secrets
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conftest import REPO, prerequisite
from controller_env import WEB_ADT
from e2e.daemon_harness import Daemon
from integration.gateway_fixture import Gateway, private_dir, remove, require_gateway_tools
from integration.micado_client_venv import ClientVenvError, client_python
from integration.prometheus_fixture import PrometheusServer, require_prometheus
from kube.cluster import KubeCluster

# mostly waiting on the controller it drives: make test runs it in the lane beside the one of
# the test bed (scripts/run-tests)
pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.beside]

DRIVER = Path(__file__).with_name("micado_client_driver.py")
USER = "micado-admin"
# six faults across the document; its `# expect:` lines are the located errors
BROKEN = REPO / "tests" / "data" / "broken" / "47_several_faults_nodes.yaml"


@dataclass
class Site:
    kube: KubeCluster
    daemon: Daemon
    gateway: Gateway
    password: str
    python: Path

    def client(self, *steps: dict[str, Any], password: str | None = None
               ) -> list[dict[str, Any]]:
        """The steps run by micado-client as its README shows, one result per step."""
        request = {"endpoint": f"{self.gateway.url}/toscasubmitter/", "version": "v2.0",
                   "verify": str(self.gateway.ca_file),
                   "auth": [USER, self.password if password is None else password],
                   "steps": list(steps)}
        # requests prefers these to a Session's own `verify` (the client sets the CA there)
        env = {k: v for k, v in os.environ.items()
               if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        done = subprocess.run([str(self.python), str(DRIVER)], input=json.dumps(request),
                              capture_output=True, text=True, timeout=180, check=False,
                              env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    def image(self, name: str) -> str | None:
        try:
            found = client.AppsV1Api(self.kube.admin()).read_namespaced_deployment(
                name, "default")
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found.spec.template.spec.containers[0].image


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         kube_cluster: KubeCluster) -> Iterator[Site]:
    require_prometheus()
    require_gateway_tools()
    try:
        python = client_python()
    except ClientVenvError as exc:
        prerequisite(False, f"micado-client 0.12.13 from PyPI in its own virtualenv: {exc}")
    tmp = tmp_path_factory.mktemp("micado-client")
    prometheus = PrometheusServer(tmp / "prometheus").start()
    kube_cluster.add_node("workers", "web")
    daemon = Daemon(tmp / "controller", "", prometheus.url, prometheus.rules_dir,
                    prometheus.sd_dir, kubeconfig=kube_cluster.controller_kubeconfig)
    root = private_dir()
    password = secrets.token_urlsafe(18)
    try:
        daemon.start()
        gateway = Gateway(root, f"127.0.0.1:{daemon.port}", daemon.token_file,
                          [{"name": USER, "password": password}]).render().start()
        yield Site(kube_cluster, daemon, gateway, password, python)
    finally:
        if "gateway" in locals():
            gateway.stop()
        remove(root)
        daemon.kill()
        prometheus.stop()


def ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    return result["ok"]


def test_client_creates_lists_gets_updates_and_deletes_an_app(site: Site) -> None:
    adt = yaml.safe_load(WEB_ADT.read_text())
    created, listed, got = site.client(
        {"op": "create", "app_id": "web", "adt": adt, "params": {"cooldown_down": 5}},
        {"op": "list"},
        {"op": "get", "app_id": "web"})
    assert ok(created)["id"] == "web" and ok(created)["status"] == "running"
    assert [app["id"] for app in ok(listed)] == ["web"]
    assert ok(got)["id"] == "web" and ok(got)["info"]["status"] == "running"
    assert site.image("web") == "nginx:1.25"

    adt["topology_template"]["node_templates"]["web"]["properties"]["image"] = "nginx:1.27"
    (updated,) = site.client({"op": "update", "app_id": "web", "adt": adt})
    assert ok(updated)["id"] == "web", updated
    assert site.image("web") == "nginx:1.27"

    deleted, after = site.client({"op": "delete", "app_id": "web"}, {"op": "list"})
    assert ok(deleted)["status"] == "deleted"
    assert ok(after) == []
    assert site.image("web") is None


def test_client_cli_upload_as_micado_app(site: Site, tmp_path: Path) -> None:
    """`micado start ADT` of MiCADO's CLI: a multipart upload to the id "MICADO-APP"."""
    adt = tmp_path / "adt.yaml"
    adt.write_text(WEB_ADT.read_text())
    created, got, deleted = site.client(
        {"op": "create_file", "path": str(adt)},
        {"op": "get", "app_id": "MICADO-APP"},
        {"op": "delete", "app_id": "MICADO-APP"})
    assert ok(created)["id"] == "micado-app", created
    assert ok(got)["info"]["status"] == "running"
    assert ok(deleted)["status"] == "deleted"


def test_wrong_credentials_get_401_with_a_message(site: Site) -> None:
    (refused,) = site.client({"op": "list"}, password=site.password + "x")
    assert refused["error"] == "MicadoAPIException", refused
    assert "the gateway refused the credentials" in refused["message"]

    url = f"{site.gateway.url}/toscasubmitter/v2.0/applications/"
    ca = str(site.gateway.ca_file)
    for auth in (None, (USER, "wrong-password"), ("nobody", site.password)):
        answer = requests.get(url, auth=auth, verify=ca, timeout=10)
        assert answer.status_code == 401, (auth, answer.text)
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="MiCADO"'
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    # a bearer token goes through as it is: the controller's own token works, a wrong one is
    # refused by the controller, never upgraded to the gateway's
    good = requests.get(url, headers={"Authorization": f"Bearer {site.daemon.token}"},
                        verify=ca, timeout=10)
    assert good.status_code == 200, good.text
    bad = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, verify=ca,
                       timeout=10)
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
    assert bad.json()["message"] == "invalid bearer token"
    # basic auth is only for MiCADO's routes: the rest of the API still wants the token
    ours = requests.get(f"{site.gateway.url}/v1/apps", auth=(USER, site.password), verify=ca,
                        timeout=10)
    assert ours.status_code == 401


def test_throttled_requests_get_429_with_a_message(site: Site) -> None:
    """Over the rate limit, micado-client shows the gateway's reason, not a JSON parse error;
    the rest of the API answers 429 in JSON too (a second site with a limit of one a minute)."""
    root = private_dir()
    gateway = Gateway(root, f"127.0.0.1:{site.daemon.port}", site.daemon.token_file,
                      [{"name": USER, "password": site.password}],
                      settings={"gateway_auth_rate": "1r/m", "gateway_auth_burst": 1,
                                "gateway_api_rate": "1r/m", "gateway_api_burst": 1})
    try:
        gateway.render().start()
        throttled = Site(site.kube, site.daemon, gateway, site.password, site.python)
        results = throttled.client({"op": "list"}, {"op": "list"}, {"op": "list"})
        refused = [r for r in results if "error" in r]
        assert refused, results
        assert all(r["error"] == "MicadoAPIException" for r in refused), refused
        assert all("too many requests to the gateway" in r["message"] for r in refused), refused
        answer = requests.get(f"{gateway.url}/v1/apps", verify=str(gateway.ca_file),
                              headers={"Authorization": f"Bearer {site.daemon.token}"},
                              timeout=10)
        assert answer.status_code == 429, answer.text
        assert answer.headers["Content-Type"].startswith("application/json")
        assert "too many requests" in answer.json()["message"]
    finally:
        gateway.stop()
        remove(root)


def test_broken_adt_shows_located_errors_in_the_clients_message(site: Site) -> None:
    (refused,) = site.client({"op": "create", "app_id": "broken",
                              "adt": yaml.safe_load(BROKEN.read_text())})
    assert refused["error"] == "MicadoAPIException", refused
    message = refused["message"]
    assert re.match(r"the ADT has \d+ errors:\n", message), message
    expected = [line.removeprefix("# expect: ") for line in BROKEN.read_text().splitlines()
                if line.startswith("# expect: ")]
    assert len(expected) == 6
    for located in expected:
        assert located in message, (located, message)


def test_the_token_stays_in_a_private_snippet(site: Site) -> None:
    token = site.daemon.token
    snippet = site.gateway.token_snippet.stat()
    assert stat.S_IMODE(snippet.st_mode) == 0o640
    assert (snippet.st_uid, snippet.st_gid) == (0, grp.getgrnam("www-data").gr_gid)
    assert token in site.gateway.token_snippet.read_text()
    site_conf = site.gateway.site
    assert stat.S_IMODE(site_conf.stat().st_mode) == 0o644
    assert token not in site_conf.read_text()
    assert f"include {site.gateway.token_snippet};" in site_conf.read_text()
    assert token not in site.gateway.render_output
    assert site.password not in site.gateway.render_output
