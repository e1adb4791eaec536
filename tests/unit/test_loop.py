"""The control loop over real sockets: fake Kubernetes API server, fake Prometheus HTTP API,
real store, real sandbox. One tick at a time with a hand-moved clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller_env import WEB_ADT, Clock, ControllerEnv, ready_node
from micado.loop import operation_key

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
