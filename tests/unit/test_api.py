"""The REST API over HTTP: uvicorn on 127.0.0.1 in front of a real AppManager.

The manager runs on a temporary SQLite store, the fake Kubernetes API server and a fake
Prometheus (`controller_env`); requests go through `requests`, as any client's would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from api_server import ApiServer
from controller_env import WEB_ADT, ControllerEnv
from micado.api.rest import create_api

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COMPAT = "/toscasubmitter/v2.0/applications"

BROKEN = """\
tosca_definitions_version: tosca_simple_yaml_1_2
imports:
  - https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml
topology_template:
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        imagePullPolicy: Sometimes
"""


@dataclass
class Api:
    env: ControllerEnv
    url: str

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any
             ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers.update(AUTH)
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def submit(self, app_id: str = "web", **body: Any) -> requests.Response:
        return self.call("POST", "/v1/apps",
                         json={"adt": WEB_ADT.read_text(), "app_id": app_id, **body})

    def deployment(self, name: str = "web") -> dict[str, Any] | None:
        return self.env.kube.get("apps", "deployments", "default", name)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    env = ControllerEnv(tmp_path)
    try:
        with ApiServer(create_api(env.manager, env.telemetry, TOKEN)) as server:
            yield Api(env, server.url)
    finally:
        env.stop()


def detail(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body["detail"], dict), body
    return body["detail"]


# --- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/apps", "/v1/apps/web", "/v1/apps/web/status",
                                  "/v1/events", "/metrics", f"{COMPAT}/", "/no/such/route"])
def test_every_route_needs_the_token(api: Api, path: str) -> None:
    missing = api.call("GET", path, auth=False)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert "missing bearer token" in missing.json()["detail"]["message"]
    if path.startswith(COMPAT):  # MiCADO's clients read a top-level message
        assert "missing bearer token" in missing.json()["message"]
    for header in (f"Bearer {TOKEN}x", "Bearer", f"Basic {TOKEN}", TOKEN):
        wrong = api.call("GET", path, auth=False, headers={"Authorization": header})
        assert wrong.status_code == 401, header
        assert wrong.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in wrong.text


def test_unauthenticated_writes_change_nothing(api: Api) -> None:
    response = api.call("POST", "/v1/apps", auth=False,
                        json={"adt": WEB_ADT.read_text(), "app_id": "web"})
    assert response.status_code == 401
    assert api.env.manager.list_apps() == []
    assert api.deployment() is None


def test_health_and_docs_need_no_token(api: Api) -> None:
    health = api.call("GET", "/healthz", auth=False)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert api.call("GET", "/docs", auth=False).status_code == 200
    schema = api.call("GET", "/openapi.json", auth=False).json()
    assert schema["info"]["title"] == "micado controller"
    assert {"/v1/apps", "/v1/apps/{app_id}", "/v1/apps/{app_id}/status", "/v1/events",
            "/v1/apps/{app_id}/pause", "/v1/apps/{app_id}/resume", "/healthz", "/metrics",
            f"{COMPAT}/", f"{COMPAT}/{{app_id}}/"} <= set(schema["paths"])
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


# --- the app lifecycle ------------------------------------------------------------------


def test_submit_list_get_status_pause_resume_update_delete(api: Api) -> None:
    submitted = api.submit(params={"cooldown_down": 30}, tick_seconds=5)
    assert submitted.status_code == 201, submitted.text
    assert submitted.headers["Location"] == "/v1/apps/web"
    result = submitted.json()
    assert result["app_id"] == "web" and result["status"] == "running"
    assert result["dry_run"] is False and result["tick_seconds"] == 5
    assert {(c["action"], c["kind"], c["name"]) for c in result["changes"]} == {
        ("create", "Service", "web"), ("create", "Deployment", "web")}
    assert result["node_groups"] == [{"name": "workers", "min": 1, "max": 3}]
    assert api.deployment() is not None

    listed = api.call("GET", "/v1/apps").json()
    assert [(a["app_id"], a["status"], a["tick_seconds"]) for a in listed["apps"]] == [
        ("web", "running", 5)]

    got = api.call("GET", "/v1/apps/web").json()
    assert got["adt"] == WEB_ADT.read_text()
    assert got["params"] == {"cooldown_down": 30}
    assert {p["name"] for p in got["plan"]["policies"]} == {"scalability-web",
                                                            "scalability-workers"}

    status = api.call("GET", "/v1/apps/web/status").json()
    assert status["status"] == "running"
    assert {(t["target"], t["kind"], t["min"], t["max"]) for t in status["targets"]} == {
        ("web", "workload", 1, 5), ("workers", "node_group", 1, 3)}
    assert [(op["group"], op["desired"]) for op in status["pending_operations"]] == [
        ("workers", 1)]

    paused = api.call("POST", "/v1/apps/web/pause")
    assert paused.status_code == 200 and paused.json() == {"app_id": "web", "status": "paused"}
    assert api.call("GET", "/v1/apps/web/status").json()["status"] == "paused"
    resumed = api.call("POST", "/v1/apps/web/resume")
    assert resumed.json() == {"app_id": "web", "status": "running"}

    new_adt = WEB_ADT.read_text().replace("nginx:1.25", "nginx:1.27")
    updated = api.call("PUT", "/v1/apps/web", json={"adt": new_adt})
    assert updated.status_code == 200, updated.text
    assert [(c["action"], c["kind"]) for c in updated.json()["changes"]] == [
        ("update", "Deployment")]
    deployment = api.deployment()
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert api.call("GET", "/v1/apps/web").json()["params"] == {}

    deleted = api.call("DELETE", "/v1/apps/web")
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "deleted"
    assert {(d["kind"], d["name"]) for d in deleted.json()["deleted"]} == {
        ("Deployment", "web"), ("Service", "web")}
    assert api.deployment() is None
    assert api.call("GET", "/v1/apps").json() == {"apps": []}
    assert api.call("GET", "/v1/apps/web").status_code == 404

    kinds = [e["kind"] for e in api.call("GET", "/v1/events?app_id=web").json()["events"]]
    assert kinds[-1] == "deleted" and {"submitted", "paused", "running", "updated"} <= set(kinds)


def test_events_filter_since_and_limit(api: Api) -> None:
    assert api.submit("one").status_code == 201
    assert api.submit("two", adt=WEB_ADT.read_text().replace("web", "other")).status_code == 201
    everything = api.call("GET", "/v1/events").json()["events"]
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids) and len(ids) >= 4
    assert {e["app_id"] for e in everything} == {"one", "two"}
    only_two = api.call("GET", "/v1/events", params={"app_id": "two"}).json()["events"]
    assert only_two and all(e["app_id"] == "two" for e in only_two)
    after = api.call("GET", "/v1/events", params={"since": ids[1], "limit": 1}).json()
    assert [e["id"] for e in after["events"]] == [ids[2]]
    latest = api.call("GET", "/v1/events", params={"limit": 2}).json()["events"]
    assert [e["id"] for e in latest] == ids[-2:]
    for query in ({"limit": 0}, {"limit": 1001}, {"since": -1}, {"limit": "x"}):
        bad = api.call("GET", "/v1/events", params=query)
        assert bad.status_code == 422, query
        key = next(iter(query))
        assert detail(bad)["errors"][0]["path"] == f"query.{key}"


def test_dry_run_changes_nothing(api: Api) -> None:
    response = api.submit(dry_run=True)
    assert response.status_code == 200
    result = response.json()
    assert result["dry_run"] is True
    assert {c["action"] for c in result["changes"]} == {"create"}
    assert api.call("GET", "/v1/apps").json() == {"apps": []}
    assert api.deployment() is None
    assert api.env.kube.requests and not [r for r in api.env.kube.requests
                                          if r.method not in ("GET",)]

    assert api.submit().status_code == 201
    new_adt = WEB_ADT.read_text().replace("nginx:1.25", "nginx:1.27")
    update = api.call("PUT", "/v1/apps/web", json={"adt": new_adt, "dry_run": True})
    assert update.status_code == 200
    assert [(c["action"], c["kind"]) for c in update.json()["changes"]
            if c["action"] != "unchanged"] == [("update", "Deployment")]
    deployment = api.deployment()
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert api.call("GET", "/v1/apps/web").json()["adt"] == WEB_ADT.read_text()


# --- errors -------------------------------------------------------------------------------


def test_not_found_on_every_app_route(api: Api) -> None:
    for method, path, body in (
            ("GET", "/v1/apps/ghost", None), ("GET", "/v1/apps/ghost/status", None),
            ("PUT", "/v1/apps/ghost", {"adt": WEB_ADT.read_text()}),
            ("DELETE", "/v1/apps/ghost", None), ("POST", "/v1/apps/ghost/pause", None),
            ("POST", "/v1/apps/ghost/resume", None)):
        response = api.call(method, path, json=body)
        assert response.status_code == 404, (method, path)
        assert detail(response) == {"message": "no app 'ghost'"}


def test_duplicate_app_is_a_conflict(api: Api) -> None:
    assert api.submit().status_code == 201
    again = api.submit()
    assert again.status_code == 409
    assert "already exists" in detail(again)["message"]


def test_broken_adt_returns_every_compiler_error_with_its_path(api: Api) -> None:
    response = api.call("POST", "/v1/apps", json={"adt": BROKEN, "app_id": "broken"})
    assert response.status_code == 422
    body = detail(response)
    assert body["message"] == "the ADT has 2 errors"
    assert {(e["path"], e["message"].split(",")[0].split(":")[0]) for e in body["errors"]} == {
        ("topology_template.node_templates.web.properties.imagePullPolicy",
         "must be one of Always"),
        ("topology_template.node_templates.web.properties.image", "required")}
    assert body["warnings"] == []
    assert api.call("GET", "/v1/apps").json() == {"apps": []}

    yaml_error = api.call("POST", "/v1/apps", json={"adt": "a: [", "app_id": "x"})
    assert yaml_error.status_code == 422 and detail(yaml_error)["errors"]


def test_bad_app_id_tick_and_params_are_422(api: Api) -> None:
    bad_id = api.submit("Not_A_Label")
    assert bad_id.status_code == 422
    assert "must be a DNS label" in detail(bad_id)["message"]
    bad_tick = api.submit(tick_seconds=0.1)
    assert bad_tick.status_code == 422 and "tick_seconds" in detail(bad_tick)["message"]
    unknown_input = api.submit(params={"nope": 1})
    assert unknown_input.status_code == 422
    assert any("nope" in e["path"] + e["message"] for e in detail(unknown_input)["errors"])


@pytest.mark.parametrize(("body", "path", "words"), [
    ({"app_id": "x"}, "body.adt", "Field required"),
    ({"adt": 3}, "body.adt", "valid string"),
    ({"adt": "x", "colour": "red"}, "body.colour", "Extra inputs"),
    ({"adt": "x", "params": {"a": [1]}}, "body.params", "a: must be text, a number or true"),
    ({"adt": "x", "params": {"a": {"b": 1}}}, "body.params", "a: must be text"),
    ({"adt": "x", "params": {str(i): i for i in range(201)}}, "body.params", "at most 200"),
    ({"adt": "x", "tick_seconds": "soon"}, "body.tick_seconds", "valid number"),
    ({"adt": "x", "dry_run": "perhaps"}, "body.dry_run", "valid boolean"),
    ({"adt": "x" * (1024 * 1024 + 1)}, "body.adt", "at most 1048576 characters"),
])
def test_body_validation_names_the_field(api: Api, body: dict[str, Any], path: str,
                                         words: str) -> None:
    response = api.call("POST", "/v1/apps", json=body)
    assert response.status_code == 422
    errors = detail(response)["errors"]
    assert errors[0]["path"] == path, errors
    assert words in errors[0]["message"], errors
    assert detail(response)["message"].startswith(f"invalid request: {path}: ")
    assert len(response.content) < 4096  # the input is not echoed back


def test_body_that_is_not_json_or_too_large(api: Api) -> None:
    not_json = api.call("POST", "/v1/apps", data=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    assert detail(not_json)["errors"][0]["path"].startswith("body")
    huge = api.call("POST", "/v1/apps", data=b"x" * (5 * 1024 * 1024),
                    headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert "larger than 4 MiB" in detail(huge)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b" " * (1024 * 1024)

    chunked = api.call("POST", "/v1/apps", data=chunks(),
                       headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_pause_of_an_app_being_deleted_is_refused(api: Api) -> None:
    assert api.submit().status_code == 201
    api.env.kube.fail_next(403, times=5)  # Kubernetes refuses the deletion: app stays deleting
    deleting = api.call("DELETE", "/v1/apps/web")
    assert deleting.status_code == 200
    assert deleting.json()["status"] == "deleting" and deleting.json()["reason"]
    paused = api.call("POST", "/v1/apps/web/pause")
    assert paused.status_code == 422
    assert "deleting" in detail(paused)["message"]


def test_kubernetes_refusing_a_submission_is_502_and_nothing_kept(api: Api) -> None:
    api.env.kube.fail_next(403, times=20)
    response = api.submit()
    assert response.status_code == 502
    assert "Kubernetes" in detail(response)["message"] or "cluster" in detail(response)["message"]
    api.env.kube.clear_faults()
    assert api.call("GET", "/v1/apps").json() == {"apps": []}


def test_internal_errors_are_500_without_a_traceback(api: Api) -> None:
    api.env.store.close()  # the database is gone: an unexpected failure, not a user error
    response = api.call("GET", "/v1/apps")
    assert response.status_code == 500
    assert response.json() == {"detail": {"message": "internal error, see the controller log"}}
    assert "Traceback" not in response.text and "sqlite" not in response.text.lower()
    assert api.call("GET", "/healthz", auth=False).status_code == 200  # still serving


def test_metrics_text_exposition(api: Api) -> None:
    api.env.telemetry.evaluations.labels("web", "ok").inc()
    response = api.call("GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert 'micado_rule_evaluations_total{app="web",outcome="ok"} 1.0' in response.text


# --- MiCADO's submitter routes -------------------------------------------------------------


def test_compat_json_with_the_adt_as_a_mapping(api: Api) -> None:
    adt = yaml.safe_load(WEB_ADT.read_text())
    created = api.call("POST", f"{COMPAT}/web/", json={"adt": adt, "params": {},
                                                       "dryrun": False})
    assert created.status_code == 200, created.text
    assert created.json()["id"] == "web" and created.json()["status"] == "running"
    assert "message" in created.json()
    assert api.deployment() is not None

    for path in (f"{COMPAT}/", COMPAT):
        listed = api.call("GET", path)
        assert listed.status_code == 200
        assert listed.json()["applications"] == ["web"] and listed.json()["message"]

    for path in (f"{COMPAT}/web/", f"{COMPAT}/web"):
        one = api.call("GET", path).json()
        assert one["status"] == "running" and one["app_id"] == "web"
        assert "message" in one and len(one["targets"]) == 2

    adt["topology_template"]["node_templates"]["web"]["properties"]["image"] = "nginx:1.27"
    updated = api.call("PUT", f"{COMPAT}/web/", json={"adt": yaml.safe_dump(adt),
                                                      "params": "{}"})
    assert updated.status_code == 200, updated.text
    deployment = api.deployment()
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"

    deleted = api.call("DELETE", f"{COMPAT}/web", json={"force": False})
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert api.call("GET", f"{COMPAT}/").json()["applications"] == []
    missing = api.call("GET", f"{COMPAT}/web/")
    assert missing.status_code == 404
    assert missing.json()["message"] == "no app 'web'"


def test_compat_multipart_upload(api: Api) -> None:
    files = {"adt": ("web.yaml", WEB_ADT.read_bytes(), "application/x-yaml")}
    dry = api.call("POST", f"{COMPAT}/", files=files,
                   data={"id": "upload", "params": json.dumps({"cooldown_down": 10}),
                         "dryrun": "true"})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["id"] == "upload"
    assert api.call("GET", f"{COMPAT}/").json()["applications"] == []

    real = api.call("POST", COMPAT, files=files, data={"id": "upload", "dryrun": "false"})
    assert real.status_code == 200, real.text
    assert api.call("GET", f"{COMPAT}/").json()["applications"] == ["upload"]

    without_id = api.call("POST", f"{COMPAT}/", files={
        "adt": ("x.yaml", WEB_ADT.read_bytes().replace(b"web", b"site"))})
    assert without_id.status_code == 200, without_id.text
    assert without_id.json()["id"].startswith("app-")


def test_compat_refuses_urls_and_bad_bodies(api: Api) -> None:
    for body in ({"url": "http://169.254.169.254/latest/meta-data"},
                 {"url": "https://example.com/adt.yaml", "adt": None}):
        refused = api.call("POST", f"{COMPAT}/", json=body)
        assert refused.status_code == 422
        assert refused.json()["message"] == ("fetching ADTs from a URL is not supported; send "
                                             "the ADT itself")
    form = api.call("POST", f"{COMPAT}/", data={"url": "http://example.com/a.yaml"})
    assert form.status_code == 422 and "URL is not supported" in form.json()["message"]

    cases = [
        ({"json": {}}, "adt: required"),
        ({"json": [1]}, "must be an object"),
        ({"json": {"adt": 3}}, "adt: must be the ADT"),
        ({"json": {"adt": "a: 1", "params": "[1]"}}, "params: must be an object"),
        ({"json": {"adt": "a: 1", "params": "{oops"}}, "params: not a JSON object"),
        ({"json": {"adt": "a: 1", "dryrun": "maybe"}}, "dryrun: must be true or false"),
        ({"json": {"adt": "a: 1", "colour": 1}}, "unknown field colour"),
        ({"data": b"adt: x", "headers": {"Content-Type": "text/plain"}}, "send the ADT as JSON"),
        ({"files": {"adt": ("a.yaml", b"\xff\xfe")}}, "adt: the file is not UTF-8 text"),
    ]
    for kwargs, words in cases:
        response = api.call("POST", f"{COMPAT}/", **kwargs)
        assert response.status_code == 422, (kwargs, response.text)
        assert words in response.json()["message"], (words, response.json())
    mismatch = api.call("POST", f"{COMPAT}/one/", json={"adt": "a: 1", "id": "two"})
    assert mismatch.status_code == 422
    assert mismatch.json()["message"] == "id: 'two' differs from the id in the path"
    broken = api.call("POST", f"{COMPAT}/broken/", json={"adt": BROKEN})
    assert broken.status_code == 422
    assert len(broken.json()["detail"]["errors"]) == 2
    assert api.call("GET", f"{COMPAT}/").json()["applications"] == []


def test_compat_accepts_micado_clis_app_id(api: Api) -> None:
    """`micado start` (micado-client's CLI) always uploads as "MICADO-APP", then stops it."""
    files = {"adt": ("adt.yaml", WEB_ADT.read_bytes(), "application/octet-stream")}
    created = api.call("POST", f"{COMPAT}/MICADO-APP/", files=files,
                       data={"dryrun": "False"})
    assert created.status_code == 200, created.text
    assert created.json()["id"] == "micado-app"
    assert api.call("GET", f"{COMPAT}/").json()["applications"] == ["micado-app"]
    assert api.call("GET", f"{COMPAT}/MICADO-APP/").json()["status"] == "running"
    again = api.call("POST", f"{COMPAT}/", files=files, data={"id": "Micado-App"})
    assert again.status_code == 409, again.text
    deleted = api.call("DELETE", f"{COMPAT}/MICADO-APP/", json={"force": False})
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"


def test_compat_message_lists_the_located_errors(api: Api) -> None:
    """Old clients print only the top-level `message`: it must say where each error is."""
    broken = api.call("POST", f"{COMPAT}/broken/", json={"adt": BROKEN})
    assert broken.status_code == 422
    errors = broken.json()["detail"]["errors"]
    message = broken.json()["message"]
    assert message.startswith("the ADT has 2 errors:\n")
    for error in errors:
        assert f"  {error['path']}: {error['message']}" in message.splitlines()
    assert "topology_template.node_templates.web" in message
    ours = api.call("POST", "/v1/apps", json={"adt": BROKEN, "app_id": "broken"})
    assert ours.json()["detail"]["message"] == "the ADT has 2 errors"


def test_deep_nesting_is_422_with_where_not_500(api: Api) -> None:
    deep_text = BROKEN.replace("imagePullPolicy: Sometimes", "args: " + "[" * 600 + "]" * 600)
    response = api.call("POST", "/v1/apps", json={"adt": deep_text, "app_id": "deep"})
    assert response.status_code == 422, response.text
    (error,) = detail(response)["errors"]
    assert error["path"].startswith("topology_template.node_templates.web.properties.args[0]")
    assert "nested more than 64 levels deep" in error["message"]

    nested: Any = "x"
    for _ in range(600):
        nested = {"a": nested}
    as_mapping = yaml.safe_load(BROKEN)
    as_mapping["topology_template"]["node_templates"]["web"]["properties"]["labels"] = nested
    compat = api.call("POST", f"{COMPAT}/", json={"adt": as_mapping})
    assert compat.status_code == 422, compat.text
    assert compat.json()["message"].startswith(
        "adt.topology_template.node_templates.web.properties.labels.a.a.a")
    assert "nested more than 64 levels deep" in compat.json()["message"]

    deep_params = api.call("POST", f"{COMPAT}/", json={"adt": BROKEN, "params": {"x": nested}})
    assert deep_params.status_code == 422, deep_params.text

    # JSON nested beyond what Python's parser takes: a client error, never a 500
    very_deep = b'{"adt": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    compat_json = api.call("POST", f"{COMPAT}/", data=very_deep,
                           headers={"Content-Type": "application/json"})
    assert compat_json.status_code == 422, compat_json.text
    assert compat_json.json()["message"] == "the body nests more than 64 levels deep"
    v1_json = api.call("POST", "/v1/apps", data=very_deep,
                       headers={"Content-Type": "application/json"})
    assert v1_json.status_code == 400, v1_json.text  # FastAPI's own answer to unparsable JSON
    assert api.call("GET", "/v1/apps").json() == {"apps": []}
