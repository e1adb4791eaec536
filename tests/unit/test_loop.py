"""The control loop over real sockets: fake Kubernetes API server, fake Prometheus HTTP API,
real store, real sandbox. One tick at a time with a hand-moved clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from controller_env import WEB_ADT, Clock, ControllerEnv, ready_node
from micado.control.loop import operation_key

LOAD = 'max(web_load{job="micado-apps"})'


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def env(tmp_path: Path, clock: Clock) -> Iterator[ControllerEnv]:
    environment = ControllerEnv(tmp_path, clock=clock)
    environment.kube.seed(ready_node("w1", "workers"))
    yield environment
    environment.stop()


def submit(env: ControllerEnv, **params: object) -> None:
    env.manager.submit(WEB_ADT.read_text(), app_id="web", params=dict(params))
    assert env.fake_prometheus is not None
    env.fake_prometheus.set(LOAD, 0.5)


def target(env: ControllerEnv, name: str) -> dict:
    return next(t for t in env.manager.status("web")["targets"] if t["target"] == name)


def test_an_alert_scales_the_workload_out_and_low_load_scales_it_in(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    prom = env.fake_prometheus
    assert prom is not None
    prom.set(LOAD, 0.5)
    env.tick("web")
    assert env.scale_requests() == 0
    prom.fire("web", "web_overloaded")
    for expected in (2, 3):
        clock.advance(15)
        env.tick("web")
        assert env.replicas("web") == expected
    prom.fire("web")
    prom.set(LOAD, 0.1)
    clock.advance(15)
    env.tick("web")
    assert env.replicas("web") == 2
    web = target(env, "web")
    assert (web["current"], web["desired"]) == (2, 2)
    assert web["reason"].startswith("scale in 3 -> 2")
    kinds = [e["kind"] for e in env.manager.events("web")]
    assert kinds.count("action") == 3


def test_scale_in_waits_for_the_cooldown(env: ControllerEnv, clock: Clock) -> None:
    submit(env, cooldown_down=60)
    prom = env.fake_prometheus
    assert prom is not None
    prom.fire("web", "web_overloaded")
    env.tick("web")
    assert env.replicas("web") == 2
    prom.fire("web")
    prom.set(LOAD, 0.0)
    for _ in range(3):  # 15, 30, 45 s after the scale-out: held by the cooldown
        clock.advance(15)
        env.tick("web")
        assert env.replicas("web") == 2
    assert "cooldown" in target(env, "web")["reason"]
    clock.advance(20)
    env.tick("web")
    assert env.replicas("web") == 1


def test_prometheus_down_holds_every_target_and_says_why(env: ControllerEnv,
                                                         clock: Clock) -> None:
    submit(env)
    prom = env.fake_prometheus
    assert prom is not None
    prom.fire("web", "web_overloaded")
    env.tick("web")
    assert env.replicas("web") == 2
    prom.down = True
    for _ in range(3):
        clock.advance(15)
        env.tick("web")
    assert env.replicas("web") == 2  # no scale-in although no alert is seen
    status = env.manager.status("web")
    assert "does not answer" in status["inputs"]["prometheus"]
    for t in status["targets"]:
        assert "does not answer" in t["reason"]
    events = env.manager.events("web")
    assert sum(e["kind"] == "inputs_unavailable" for e in events) == 1  # once, not per tick
    prom.down = False
    prom.fire("web")
    prom.set(LOAD, 0.1)
    clock.advance(15)
    env.tick("web")
    assert env.replicas("web") == 1
    assert env.manager.status("web")["inputs"]["prometheus"] == "ok"


def test_kubernetes_api_errors_hold_the_app_and_are_reported(env: ControllerEnv,
                                                             clock: Clock) -> None:
    submit(env)
    assert env.fake_prometheus is not None
    env.fake_prometheus.fire("web", "web_overloaded")
    env.kube.fail_next(503, times=20)
    env.tick("web")
    status = env.manager.status("web")
    assert "Kubernetes API" in status["inputs"]["kubernetes"]
    assert all("Kubernetes API" in t["reason"] for t in status["targets"])
    env.kube.clear_faults()
    clock.advance(15)
    env.tick("web")
    assert env.replicas("web") == 2


def refuse_scale_calls(env: ControllerEnv, name: str = "") -> None:
    """From now on the API server refuses every write to the /scale subresource (of the
    workloads called `name`, or of all)."""
    original = env.kube.handle
    suffix = f"/{name}/scale" if name else "/scale"

    def handle(method, raw_path, content_type, body, authorization=None):  # type: ignore[no-untyped-def]
        if method == "PATCH" and raw_path.split("?")[0].endswith(suffix):
            return 422, {"kind": "Status", "code": 422, "reason": "Invalid",
                         "message": "spec.replicas: refused by an admission webhook"}
        return original(method, raw_path, content_type, body, authorization)

    env.kube.handle = handle  # type: ignore[method-assign]


def test_a_failed_scale_call_is_retried_next_tick_without_starting_a_cooldown(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env, cooldown_down=600)
    assert env.fake_prometheus is not None
    env.fake_prometheus.fire("web", "web_overloaded")
    refuse_scale_calls(env)
    env.tick("web")
    web = target(env, "web")
    assert web["error"] and "actuator" in web["error"]
    assert any(e["kind"] == "action_failed" for e in env.manager.events("web"))
    runtime = env.loop.runtime("web")
    assert runtime is not None
    assert runtime.states["scalability-web"].limits.last_change is None


def test_node_decisions_are_recorded_as_pending_operations_never_dropped(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    assert env.fake_prometheus is not None
    status = env.manager.status("web")
    assert [(o["group"], o["kind"], o["desired"]) for o in status["pending_operations"]] == \
        [("workers", "create", 1)]
    env.fake_prometheus.fire("web", "web_overloaded")
    env.tick("web")
    clock.advance(15)
    env.tick("web")
    pending = env.manager.status("web")["pending_operations"]
    assert [(o["group"], o["kind"], o["desired"]) for o in pending] == [("workers", "resize", 3)]
    assert "no node actuator" in pending[0]["why_pending"]
    workers = target(env, "workers")
    assert (workers["current"], workers["desired"]) == (1, 3)  # one Ready node, three asked
    superseded = [o for o in env.store.pending_operations("web")]
    assert len(superseded) == 1


def test_one_failing_rule_does_not_stop_the_other_policies(env: ControllerEnv) -> None:
    text = WEB_ADT.read_text().replace("if web_overloaded:\n              m_node_count += 1",
                                       "m_node_count = 1 // 0")
    env.manager.submit(text, app_id="web")
    assert env.fake_prometheus is not None
    env.fake_prometheus.set(LOAD, 0.5)
    env.fake_prometheus.fire("web", "web_overloaded")
    env.tick("web")
    workers = target(env, "workers")
    assert workers["error"] and "ZeroDivision" in workers["reason"]
    assert env.replicas("web") == 2
    assert b'micado_rule_violations_total{app="web"' in env.telemetry.exposition()


def test_a_query_prometheus_cannot_answer_holds_only_the_rules_reading_it(
        env: ControllerEnv) -> None:
    submit(env)
    prom = env.fake_prometheus
    assert prom is not None
    prom.fire("web", "web_overloaded")
    prom.fail(LOAD, 422, "execution", "query processing would load too many samples")
    env.tick("web")
    web = target(env, "web")
    assert (web["current"], web["desired"], web["error"]) == (1, 1, None)
    assert web["reason"] == ("hold at 1: Prometheus could not answer query LOAD: execution: "
                             "query processing would load too many samples")
    assert env.scale_requests() == 0
    # the node rule does not read LOAD: it decides as usual, and Prometheus is not "down"
    assert target(env, "workers")["reason"].startswith("scale out 1 -> 2")
    assert env.manager.status("web")["inputs"]["prometheus"] == "ok"


def test_a_query_with_no_series_reaches_the_rule_as_none(env: ControllerEnv,
                                                         clock: Clock) -> None:
    submit(env)
    prom = env.fake_prometheus
    assert prom is not None
    prom.set(LOAD, None)  # answered, with no series
    prom.fire("web", "web_overloaded")
    env.tick("web")  # `if web_overloaded:` decides before LOAD is compared
    assert env.replicas("web") == 2
    assert target(env, "web")["reason"] == ("scale out 1 -> 2: the rule set m_container_count "
                                            "to 2 (query LOAD returned no series: the rule "
                                            "saw None)")
    prom.fire("web")
    clock.advance(15)
    env.tick("web")  # `LOAD < 0.2` with None: the rule fails, the size holds
    web = target(env, "web")
    assert (web["desired"], env.replicas("web")) == (2, 2)
    assert web["error"] and "TypeError" in web["reason"]
    assert web["reason"].endswith("(query LOAD returned no series: the rule saw None)")


def test_a_failing_app_does_not_stop_another_app(env: ControllerEnv) -> None:
    submit(env)
    other = WEB_ADT.read_text().replace("web_load", "other_load").replace(
        "    web:\n", "    api:\n").replace("[ web ]", "[ api ]")
    env.manager.submit(other, app_id="other")
    assert env.fake_prometheus is not None
    env.fake_prometheus.set(LOAD.replace("web_load", "other_load"), 0.5)
    env.fake_prometheus.fire("web", "web_overloaded")
    env.fake_prometheus.fire("other", "web_overloaded")
    refuse_scale_calls(env, "api")
    env.tick("other")
    env.tick("web")
    assert env.replicas("web") == 2
    assert target(env, "web")["error"] is None


def other_app(env: ControllerEnv) -> None:
    """A second app, `other`, with a workload `api` and, like `web`, a node group `workers`."""
    text = WEB_ADT.read_text().replace("web_load", "other_load").replace(
        "    web:\n", "    api:\n").replace("[ web ]", "[ api ]")
    env.manager.submit(text, app_id="other")
    assert env.fake_prometheus is not None
    env.fake_prometheus.set(LOAD.replace("web_load", "other_load"), 0.5)


def test_two_apps_with_a_group_of_the_same_name_have_two_groups(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    other_app(env)
    env.kube.seed(ready_node("o1", "workers", app="other"))
    env.kube.seed(ready_node("o2", "workers", app="other"))
    assert env.fake_prometheus is not None
    env.fake_prometheus.fire("other", "web_overloaded")  # only other's group grows
    env.tick("web")
    env.tick("other")
    status = {app: env.manager.status(app) for app in ("web", "other")}
    workers = {app: next(t for t in s["targets"] if t["target"] == "workers")
               for app, s in status.items()}
    assert (workers["web"]["current"], workers["web"]["desired"]) == (1, 1)
    assert (workers["other"]["current"], workers["other"]["desired"]) == (2, 2)
    ops = {app: [(o["group"], o["kind"], o["desired"]) for o in s["pending_operations"]]
           for app, s in status.items()}
    assert ops == {"web": [("workers", "create", 1)], "other": [("workers", "resize", 2)]}
    for app, name in (("web", "web"), ("other", "api")):
        deployment = env.kube.get("apps", "deployments", "default", name)
        assert deployment is not None
        terms = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [
            {"key": "micado.eu/node_type", "operator": "In", "values": ["workers"]},
            {"key": "micado.eu/app", "operator": "In", "values": [app]}]}]


def test_a_paused_app_is_not_ticked_and_resumes(env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    assert env.fake_prometheus is not None
    env.fake_prometheus.fire("web", "web_overloaded")
    env.manager.pause("web")
    env.tick("web")
    assert env.replicas("web") is None and env.scale_requests() == 0
    env.manager.resume("web")
    env.tick("web")
    assert env.replicas("web") == 2


def test_a_restart_resumes_every_app_with_its_state_and_reads_counts_from_kubernetes(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env, cooldown_down=60)
    assert env.fake_prometheus is not None
    env.fake_prometheus.fire("web", "web_overloaded")
    env.tick("web")
    assert env.replicas("web") == 2
    before = env.manager.status("web")
    env.restart()
    after = env.manager.status("web")
    assert [t["reason"] for t in after["targets"]] == [t["reason"] for t in before["targets"]]
    env.fake_prometheus.fire("web")
    env.fake_prometheus.set(LOAD, 0.0)
    clock.advance(15)
    env.tick("web")
    assert env.replicas("web") == 2  # the cooldown window from before the restart holds
    # someone scaled by hand while the controller was down: the live count is used
    env.kube.objects[("apps", "deployments", "default", "web")]["spec"]["replicas"] = 4
    clock.advance(15)
    env.tick("web")
    assert env.replicas("web") == 3
    clock.advance(60)
    env.tick("web")
    assert env.replicas("web") == 2


def test_a_node_operation_recorded_just_before_a_crash_is_not_repeated(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    assert env.fake_prometheus is not None
    env.tick("web")
    # the crash: the next decision (workers -> 2) was recorded, its state never saved
    env.store.begin_operation("web", "workers", "resize", 2, operation_key("web", "workers", 2))
    env.restart()
    env.fake_prometheus.fire("web", "web_overloaded")
    env.tick("web")
    ops = [(o.kind, o.desired) for o in env.store.pending_operations("web")]
    assert ops == [("resize", 3)]  # 2 was adopted, this tick went on from there
    assert sum(1 for e in env.manager.events("web") if e["kind"] == "operation") == 2


def test_m_userdata_is_shared_by_the_apps_rules_and_survives_a_restart(
        env: ControllerEnv) -> None:
    text = WEB_ADT.read_text().replace(
        "if web_overloaded:\n              m_node_count += 1",
        "m_userdata = {'seen': (m_userdata or {}).get('seen', 0) + 1}")
    text = text.replace("if web_overloaded:\n              m_container_count += 1",
                        "if m_userdata['seen'] >= 2:\n              m_container_count += 1")
    env.manager.submit(text, app_id="web")
    assert env.fake_prometheus is not None
    env.fake_prometheus.set(LOAD, 0.5)
    env.tick("web")
    assert env.replicas("web") is None
    env.restart()
    env.tick("web")
    assert env.replicas("web") == 2


def test_the_scheduler_ticks_running_apps_and_stops_cleanly(tmp_path: Path) -> None:
    env = ControllerEnv(tmp_path, default_tick=0.2)
    try:
        env.manager.submit(WEB_ADT.read_text(), app_id="web", tick_seconds=0.5)
        assert env.fake_prometheus is not None
        env.fake_prometheus.set(LOAD, 0.5)
        env.fake_prometheus.fire("web", "web_overloaded")

        async def main() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(env.loop.run(stop))
            deadline = time.monotonic() + 20
            while (env.replicas("web") or 1) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            stop.set()
            started = time.monotonic()
            await task
            return time.monotonic() - started

        stopping = asyncio.run(main())
        assert env.replicas("web") >= 3
        assert stopping < 5
        assert env.store.integrity_check() == "ok"
    finally:
        env.stop()


# ---------------------------------------------------------------------- drift

DEPLOYMENT = "/apis/apps/v1/namespaces/default/deployments/web"


def kubectl(env: ControllerEnv, method: str, path: str, patch: dict | None = None) -> None:
    """A change made outside the controller, over HTTP as kubectl would make it."""
    headers = {"Content-Type": "application/merge-patch+json"} if patch is not None else {}
    response = requests.request(method, env.kube.url + path, json=patch, headers=headers,
                                timeout=10)
    assert response.status_code == 200, response.text


def drift_events(env: ControllerEnv, app_id: str = "web") -> list[str]:
    return [e["message"] for e in env.manager.events(app_id) if e["kind"] == "drift"]


def applies(env: ControllerEnv) -> int:
    return sum(1 for r in env.kube.requests if r.content_type == "application/apply-patch+yaml")


def image(env: ControllerEnv) -> str:
    deployment = env.kube.get("apps", "deployments", "default", "web")
    assert deployment is not None
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def test_a_deployment_deleted_outside_the_controller_is_re_created_at_its_scaled_size(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    assert env.fake_prometheus is not None
    env.fake_prometheus.fire("web", "web_overloaded")
    env.tick("web")
    assert env.replicas("web") == 2
    env.fake_prometheus.fire("web")
    kubectl(env, "DELETE", DEPLOYMENT)
    clock.advance(15)
    env.tick("web")
    assert env.replicas("web") == 2  # the size the policy scaled to, not the ADT's 1
    assert drift_events(env) == [
        "drift: Deployment/web deleted outside the controller, re-created"]
    drift = env.manager.status("web")["drift"]
    assert [(d["kind"], d["name"], d["message"]) for d in drift] == [
        ("Deployment", "web", drift_events(env)[0])]


def test_an_image_or_a_label_changed_outside_the_controller_is_re_applied(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    assert env.fake_prometheus is not None
    env.fake_prometheus.fire("web", "web_overloaded")
    env.tick("web")
    env.fake_prometheus.fire("web")
    assert env.replicas("web") == 2
    kubectl(env, "PATCH", DEPLOYMENT, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:evil"}]}}}})
    clock.advance(15)
    env.tick("web")
    assert image(env) == "nginx:1.25"
    assert env.replicas("web") == 2  # re-applied without touching the policy's replicas
    kubectl(env, "PATCH", "/api/v1/namespaces/default/services/web",
            {"metadata": {"labels": {"app.kubernetes.io/name": "hijacked"}}})
    clock.advance(15)
    env.tick("web")
    service = env.kube.get("", "services", "default", "web")
    assert service is not None
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "web"
    assert drift_events(env) == [
        "drift: Deployment/web changed (spec.template.spec.containers[0].image) outside the "
        "controller, re-applied",
        "drift: Service/web changed (metadata.labels.app.kubernetes.io/name) outside the "
        "controller, re-applied"]


def test_an_instance_label_removed_by_hand_is_put_back(env: ControllerEnv,
                                                       clock: Clock) -> None:
    submit(env)
    env.tick("web")
    kubectl(env, "PATCH", DEPLOYMENT,
            {"metadata": {"labels": {"app.kubernetes.io/instance": None}}})
    clock.advance(15)
    env.tick("web")
    deployment = env.kube.get("apps", "deployments", "default", "web")
    assert deployment is not None
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "web"
    assert drift_events(env) == ["drift: Deployment/web relabelled (instance=None) outside "
                                 "the controller, re-applied"]


def test_an_object_taken_by_another_app_is_reported_once_and_not_taken_back(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    other_app(env)
    env.kube.label("apps", "deployments", "default", "web",
                   {"app.kubernetes.io/instance": "other"})
    for _ in range(2):
        clock.advance(15)
        env.tick("web")
    deployment = env.kube.get("apps", "deployments", "default", "web")
    assert deployment is not None
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "other"
    assert drift_events(env) == ["drift: Deployment/web was taken by app 'other' outside the "
                                 "controller; not taken back"]


def test_without_drift_a_tick_applies_nothing_and_scaling_is_not_drift(
        env: ControllerEnv, clock: Clock) -> None:
    submit(env)
    before = applies(env)
    assert env.fake_prometheus is not None
    env.fake_prometheus.fire("web", "web_overloaded")
    for _ in range(3):
        env.tick("web")
        clock.advance(15)
    assert env.replicas("web") == 4
    assert applies(env) == before
    assert drift_events(env) == [] and env.manager.status("web")["drift"] == []


def test_drift_is_not_repaired_while_a_request_changes_the_app(env: ControllerEnv,
                                                               clock: Clock) -> None:
    submit(env)
    env.tick("web")
    kubectl(env, "DELETE", DEPLOYMENT)
    with env.loop.app_lock("web"):  # an update is applying the app's next version
        clock.advance(15)
        env.tick("web")
    assert env.kube.get("apps", "deployments", "default", "web") is None
    clock.advance(15)
    env.tick("web")
    assert env.kube.get("apps", "deployments", "default", "web") is not None
