"""App lifecycle over real sockets: submit, update (prune), delete, dry run, rollback,
conflicts, reconciliation after a crash."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from api_server import ApiServer
from controller_env import WEB_ADT, ControllerEnv, ready_node
from micado.adt import compile_adt
from micado.api.rest import create_api
from micado.control.apps import ActuatorFailed, AppExists, AppNotFound, InvalidAdt, InvalidRequest

EXTRA_WORKLOAD = """
    cache:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: redis:7
"""


def with_cache(text: str) -> str:
    return text.replace("\n    workers:\n", EXTRA_WORKLOAD + "\n    workers:\n")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ControllerEnv]:
    environment = ControllerEnv(tmp_path)
    environment.kube.seed(ready_node("w1", "workers"))
    yield environment
    environment.stop()


def kinds(env: ControllerEnv, app_id: str = "web") -> list[str]:
    return [e["kind"] for e in env.manager.events(app_id)]


def test_submit_applies_objects_writes_alert_rules_and_records_node_groups(
        env: ControllerEnv) -> None:
    result = env.manager.submit(WEB_ADT.read_text(), app_id="web")
    assert result["status"] == "running"
    assert {(c["action"], c["kind"], c["name"]) for c in result["changes"]} == \
        {("create", "Deployment", "web"), ("create", "Service", "web")}
    deployment = env.kube.get("apps", "deployments", "default", "web")
    assert deployment is not None
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "web"
    applies = [r for r in env.kube.requests if r.content_type == "application/apply-patch+yaml"]
    assert applies and all(r.query["fieldManager"] == "micado" for r in applies)
    assert env.rules_dir is not None
    rules = (env.rules_dir / "web.rules.yml").read_text()
    assert "web_overloaded" in rules and "micado_app: web" in rules
    assert env.fake_prometheus is not None and env.fake_prometheus.reloads == 1
    assert [(o.group, o.desired) for o in env.store.pending_operations("web")] == \
        [("workers", 1)]
    assert env.manager.list_apps()[0]["app_id"] == "web"


def test_a_second_submit_of_the_same_id_is_refused(env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    with pytest.raises(AppExists):
        env.manager.submit(WEB_ADT.read_text(), app_id="web")


def test_an_app_may_not_take_over_another_apps_objects(env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    with pytest.raises(AppExists, match="belongs to app 'web'"):
        env.manager.submit(WEB_ADT.read_text(), app_id="copy")
    env.kube.objects.pop(("apps", "deployments", "default", "web"))  # deleted by hand
    env.tick("web")  # the loop knows the claimed objects: the drift is repaired
    assert env.kube.get("apps", "deployments", "default", "web") is not None
    assert env.store.get_app("copy") is None


def test_a_bad_adt_is_refused_with_every_error_and_its_path(env: ControllerEnv) -> None:
    text = WEB_ADT.read_text().replace("image: nginx:1.25", "image: nginx:1.25\n        cpu: 1")
    text = text.replace("max_instances: 5", "max_instances: many")
    with pytest.raises(InvalidAdt) as info:
        env.manager.submit(text, app_id="web")
    paths = [e["path"] for e in info.value.errors]
    assert any("node_templates.web" in p for p in paths)
    assert any("policies" in p for p in paths)
    assert env.store.get_app("web") is None
    assert not env.kube.objects.get(("apps", "deployments", "default", "web"))


def test_alerts_prometheus_would_reject_are_an_adt_error(env: ControllerEnv) -> None:
    if env.manager.rule_files.promtool is None:
        pytest.skip("promtool not installed")  # covered in CI by the Debian package
    text = WEB_ADT.read_text().replace("> 0.8'", "> > 0.8'")
    with pytest.raises(InvalidAdt, match="rejected by Prometheus"):
        env.manager.submit(text, app_id="web")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"app_id": "Web_1"}, "DNS label"),
    ({"app_id": "web", "tick_seconds": 0}, "tick_seconds"),
    ({"app_id": "web", "tick_seconds": float("nan")}, "tick_seconds"),
    ({"app_id": "web", "params": {"x": [1]}}, "params.x"),
])
def test_bad_requests_are_refused_before_anything_happens(
        env: ControllerEnv, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        env.manager.submit(WEB_ADT.read_text(), **kwargs)
    assert env.store.list_apps() == []


def test_dry_run_shows_the_changes_and_changes_nothing(env: ControllerEnv) -> None:
    before = len(env.kube.objects)
    result = env.manager.submit(WEB_ADT.read_text(), app_id="web", dry_run=True)
    assert result["dry_run"] is True
    assert {c["action"] for c in result["changes"]} == {"create"}
    assert len(env.kube.objects) == before and env.store.list_apps() == []
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    result = env.manager.update("web", with_cache(WEB_ADT.read_text()), dry_run=True)
    actions = {(c["action"], c["name"]) for c in result["changes"]}
    assert ("create", "cache") in actions and ("unchanged", "web") in actions
    assert env.kube.get("apps", "deployments", "default", "cache") is None


def test_update_applies_the_difference_and_prunes_what_left_the_adt(
        env: ControllerEnv) -> None:
    env.manager.submit(with_cache(WEB_ADT.read_text()), app_id="web")
    assert env.kube.get("apps", "deployments", "default", "cache") is not None
    env.manager.update("web", WEB_ADT.read_text().replace("nginx:1.25", "nginx:1.27"))
    assert env.kube.get("apps", "deployments", "default", "cache") is None
    web = env.kube.get("apps", "deployments", "default", "web")
    assert web is not None
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert env.store.get_app("web").status == "running"  # type: ignore[union-attr]
    assert "updated" in kinds(env)


def break_deployment_writes(env: ControllerEnv) -> None:
    """From now on the API server fails every write of a Deployment (reads still work)."""
    original = env.kube.handle

    def handle(method, raw_path, content_type, body, authorization=None):  # type: ignore[no-untyped-def]
        if method == "PATCH" and "/deployments/" in raw_path:
            return 500, {"kind": "Status", "code": 500, "message": "etcd is down",
                         "reason": "InternalError"}
        return original(method, raw_path, content_type, body, authorization)

    env.kube.handle = handle  # type: ignore[method-assign]


def test_a_failed_update_keeps_the_previous_version(env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    before = env.store.get_app("web")
    break_deployment_writes(env)
    with pytest.raises(ActuatorFailed, match="previous version was kept"):
        env.manager.update("web", with_cache(WEB_ADT.read_text()))
    after = env.store.get_app("web")
    assert after is not None and before is not None
    assert after.adt_source == before.adt_source and after.status == "running"


def test_a_failed_submit_leaves_nothing_behind(env: ControllerEnv) -> None:
    break_deployment_writes(env)  # the Service applies, then the Deployment fails
    with pytest.raises(ActuatorFailed, match="etcd is down"):
        env.manager.submit(WEB_ADT.read_text(), app_id="web")
    assert env.store.get_app("web") is None
    assert env.kube.get("", "services", "default", "web") is None
    assert env.rules_dir is not None and not (env.rules_dir / "web.rules.yml").exists()


def test_delete_removes_objects_files_and_the_app(env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    result = env.manager.delete("web")
    assert result["status"] == "deleted"
    assert {d["kind"] for d in result["deleted"]} == {"Deployment", "Service"}
    assert env.kube.get("apps", "deployments", "default", "web") is None
    assert env.rules_dir is not None and not (env.rules_dir / "web.rules.yml").exists()
    with pytest.raises(AppNotFound):
        env.manager.status("web")
    deleted = [e for e in env.manager.events("web") if e["kind"] == "deleted"]
    assert deleted and "node group workers -> 0" in deleted[0]["message"]


def test_a_delete_the_api_refuses_is_finished_by_reconcile(env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    env.kube.fail_next(503, times=40)
    result = env.manager.delete("web")
    env.kube.clear_faults()
    assert result["status"] == "deleting" and "retried" in result["reason"]
    assert env.store.get_app("web").status == "deleting"  # type: ignore[union-attr]
    env.manager.reconcile()
    assert env.store.get_app("web") is None
    assert env.kube.get("apps", "deployments", "default", "web") is None


def test_a_submission_interrupted_by_a_crash_is_finished_at_the_next_start(
        env: ControllerEnv) -> None:
    # the crash: the app was stored as submitted, nothing applied yet
    from micado.adt import compile_adt
    compiled = compile_adt(WEB_ADT.read_text(), app_id="web")
    env.store.put_app("web", WEB_ADT.read_text(), {}, compiled.plan.to_dict(),
                      status="submitted")
    env.restart()
    env.manager.reconcile()
    assert env.store.get_app("web").status == "running"  # type: ignore[union-attr]
    assert env.kube.get("apps", "deployments", "default", "web") is not None


def test_pause_and_resume_only_apply_to_running_apps(env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    assert env.manager.pause("web") == {"app_id": "web", "status": "paused"}
    assert env.manager.status("web")["status"] == "paused"
    assert env.manager.resume("web")["status"] == "running"
    with pytest.raises(AppNotFound):
        env.manager.pause("nope")


def test_events_limit_is_checked(env: ControllerEnv) -> None:
    with pytest.raises(InvalidRequest):
        env.manager.events(limit=0)


def test_an_update_keeps_the_replicas_the_policies_scaled_to(env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    assert env.fake_prometheus is not None
    env.fake_prometheus.set('max(web_load{job="micado-apps"})', 0.5)
    env.fake_prometheus.fire("web", "web_overloaded")
    env.tick("web")
    assert env.replicas("web") == 2
    env.manager.update("web", WEB_ADT.read_text().replace("nginx:1.25", "nginx:1.27"))
    assert env.replicas("web") == 2


# ---------------------------------------------------------------------- ownership

INSTANCE = "app.kubernetes.io/instance"
TOKEN = "test-token-0123456789"


def applies_to(env: ControllerEnv, path_end: str) -> int:
    return sum(1 for r in env.kube.requests
               if r.content_type == "application/apply-patch+yaml" and r.path.endswith(path_end))


def test_twenty_apps_with_the_same_workload_submitted_at_once_give_one_owner(
        env: ControllerEnv) -> None:
    env.kube.write_delay = 0.02  # a slower API server: the submissions overlap for sure
    with ApiServer(create_api(env.manager, env.telemetry, TOKEN)) as server:
        def submit(index: int) -> requests.Response:
            return requests.post(f"{server.url}/v1/apps", timeout=60,
                                 headers={"Authorization": f"Bearer {TOKEN}"},
                                 json={"adt": WEB_ADT.read_text(), "app_id": f"app-{index}"})

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(submit, range(20)))

        codes = sorted(r.status_code for r in responses)
        assert codes == [201] + [409] * 19, [r.text for r in responses]
        winner = next(r.json()["app_id"] for r in responses if r.status_code == 201)
        for response in responses:
            if response.status_code == 409:
                message = response.json()["detail"]["message"]
                assert re.search(r"(Deployment|Service) default/web .*belongs to app "
                                 f"'{winner}'", message), message
        assert [a.app_id for a in env.store.list_apps()] == [winner]
        deployment = env.kube.get("apps", "deployments", "default", "web")
        assert deployment is not None and deployment["metadata"]["labels"][INSTANCE] == winner
        assert applies_to(env, "/deployments/web") == 1  # never applied by a loser
        for index in range(20):
            if f"app-{index}" != winner:
                requests.delete(f"{server.url}/v1/apps/app-{index}", timeout=30,
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert env.kube.get("apps", "deployments", "default", "web") is not None
        stopped = requests.delete(f"{server.url}/v1/apps/{winner}", timeout=30,
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        assert stopped.status_code == 200
        assert env.kube.get("apps", "deployments", "default", "web") is None


def test_an_object_claimed_by_an_app_still_being_submitted_is_refused(
        env: ControllerEnv) -> None:
    # "first" is stored with its claims and has not applied anything yet (the window that
    # reading the cluster alone cannot see)
    compiled = compile_adt(WEB_ADT.read_text(), app_id="first")
    env.store.put_app("first", WEB_ADT.read_text(), {}, compiled.plan.to_dict(),
                      status="submitted",
                      claim=[env.cluster.object_key(m) for m in compiled.manifests])
    for dry_run in (True, False):
        with pytest.raises(AppExists, match=r"Deployment default/web .*belongs to app 'first'"):
            env.manager.submit(WEB_ADT.read_text(), app_id="second", dry_run=dry_run)
    assert env.store.get_app("second") is None
    assert env.kube.get("apps", "deployments", "default", "web") is None


def test_an_update_may_not_take_another_apps_object(env: ControllerEnv) -> None:
    env.manager.submit(with_cache(WEB_ADT.read_text()).replace("    web:\n", "    api:\n")
                       .replace("[ web ]", "[ api ]"), app_id="other")
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    before = env.store.get_app("web")
    with pytest.raises(AppExists, match=r"Deployment default/cache .*belongs to app 'other'"):
        env.manager.update("web", with_cache(WEB_ADT.read_text()))
    after = env.store.get_app("web")
    assert after is not None and before is not None
    assert after.adt_source == before.adt_source
    cache = env.kube.get("apps", "deployments", "default", "cache")
    assert cache is not None and cache["metadata"]["labels"][INSTANCE] == "other"


def test_an_object_relabelled_by_hand_for_another_app_is_neither_applied_nor_deleted(
        env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    env.manager.submit(WEB_ADT.read_text().replace("    web:\n", "    api:\n")
                       .replace("[ web ]", "[ api ]"), app_id="other")
    env.kube.label("apps", "deployments", "default", "web", {INSTANCE: "other"})
    with pytest.raises(AppExists, match="belongs to app 'other'"):
        env.manager.update("web", WEB_ADT.read_text().replace("nginx:1.25", "nginx:1.27"))
    env.manager.delete("web")
    taken = env.kube.get("apps", "deployments", "default", "web")
    assert taken is not None and taken["metadata"]["labels"][INSTANCE] == "other"
    image = taken["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nginx:1.25"


def test_an_app_stored_before_object_claims_has_its_objects_claimed_at_the_next_start(
        env: ControllerEnv) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web")
    env.store.release_objects("web", keep=[])  # as a store from before migration 3 has it
    env.restart()
    env.loop.sync()  # the loop may load the app before the first reconcile
    env.manager.reconcile()
    objects = env.store.app_objects("web")
    assert set(objects) == {("Deployment", "default", "web"), ("Service", "default", "web")}
    assert all(o.manifest is not None and o.expected is not None for o in objects.values())
    with pytest.raises(AppExists, match="belongs to app 'web'"):
        env.manager.submit(WEB_ADT.read_text(), app_id="copy")
    env.kube.objects.pop(("apps", "deployments", "default", "web"))  # deleted by hand
    env.tick("web")  # the loop knows the claimed objects: the drift is repaired
    assert env.kube.get("apps", "deployments", "default", "web") is not None
