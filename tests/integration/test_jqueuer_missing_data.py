"""MiCADO's jqueuer demo on a real Prometheus: queries with no series do not stop it scaling.

The demo's rule reads COMPLETED, JOBSFAIL, ITEMS and CALC_AET, which have no series until the
first job completes or fails. An exporter serves what jqueuer's pushgateway would before that:
20 jobs added, 60 s a task, the deadline 600 s away. With default settings the worker nodes
scale out (MiCADO's arithmetic: ceil(60 / ((REMAININGTIME - 12) / 20)) = 3); a query
Prometheus cannot answer, or a Prometheus that is gone, still holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_fixture import (
    Exporter,
    PrometheusServer,
    doomed_prometheus,
    prometheus,
    wait_until,
)

from controller_env import ControllerEnv
from micado.adt import compile_adt
from micado.policy.engine import TargetState, TickInputs, decide
from micado.sources.prometheus import PrometheusSource, ScrapeTargets

__all__ = ["doomed_prometheus", "prometheus"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

ADT = Path(__file__).resolve().parents[1] / "data" / "micado" / "jqueuer.yaml"
EXPERIMENT = "exp_123456789_123"
JOBS = 20
TOTALJOBS = f"count(jqueuer_job_added{{experiment_id='{EXPERIMENT}'}})"
NO_SERIES = {"COMPLETED", "JOBSFAIL", "ITEMS", "CALC_AET"}
SCRAPE_TIMEOUT = 60.0  # a deadline, not a duration: generous for loaded machines
GROUP = "worker-node"


def serve_jobs(exporter: Exporter) -> None:
    """jqueuer's metrics before any job completed or failed."""
    labels = {"experiment_id": EXPERIMENT}
    exporter.set("jqueuer_single_task_duration", 60, **labels)
    exporter.set("jqueuer_experiment_deadline", time.time() + 600, **labels)
    for job in range(JOBS):
        exporter.set("jqueuer_job_added", 1, job_id=f"job{job}", **labels)


def scraped(prometheus: PrometheusServer, exporter: Exporter) -> None:
    ScrapeTargets(prometheus.sd_dir).write("jqueuer-exporter", [exporter.address])
    source = PrometheusSource(prometheus.url, timeout=5)
    try:
        assert wait_until(lambda: source.query(TOTALJOBS) == JOBS, SCRAPE_TIMEOUT), \
            "the jqueuer exporter was not scraped in time"
    finally:
        source.close()


@pytest.fixture(scope="module")
def jobs(prometheus: PrometheusServer) -> Iterator[Exporter]:
    exporter = Exporter().start()
    serve_jobs(exporter)
    scraped(prometheus, exporter)
    yield exporter
    ScrapeTargets(prometheus.sd_dir).remove("jqueuer-exporter")
    exporter.stop()


def expected_nodes(remaining: float) -> int:
    return math.ceil(60 / ((remaining - 60 * 0.2) / JOBS))


def worker_target(env: ControllerEnv) -> dict:
    return next(t for t in env.manager.status("jqueuer")["targets"] if t["target"] == GROUP)


def test_decide_scales_the_workers_out_on_prometheus_answers(prometheus: PrometheusServer,
                                                             jobs: Exporter) -> None:
    plan = compile_adt(ADT.read_text(), app_id="jqueuer").plan
    policy = next(p for p in plan.policies if p.target == GROUP)
    source = PrometheusSource(prometheus.url, timeout=5)
    try:
        results = source.query_all(policy.queries)
    finally:
        source.close()
    assert results.failed == {}
    assert {name for name, value in results.values.items() if value is None} == NO_SERIES
    inputs = TickInputs(now=time.time(), query_results=results.values, firing_alerts=set(),
                        nodes={GROUP: [], "jq-server": []}, live_counts={},
                        failed_queries=results.failed)
    decision, _ = decide(policy, plan.shared, inputs, TargetState(), None)
    want = expected_nodes(results.values["REMAININGTIME"])
    assert want >= 2  # a real scale-out, whatever the machine's pace
    assert (decision.current, decision.desired, decision.error) == (0, want, None)
    assert "returned no series: the rule saw None" in decision.reason


def test_the_controller_scales_the_workers_out_with_default_settings(
        prometheus: PrometheusServer, jobs: Exporter, tmp_path: Path) -> None:
    env = ControllerEnv(tmp_path, prometheus_url=prometheus.url,
                        rules_dir=prometheus.rules_dir, targets_dir=prometheus.sd_dir)
    try:
        env.manager.submit(ADT.read_text(), app_id="jqueuer")
        env.tick("jqueuer")
        worker = worker_target(env)
        assert (worker["current"], worker["error"]) == (0, None)
        assert worker["desired"] >= 2, worker["reason"]
        assert worker["reason"].startswith(f"scale out 0 -> {worker['desired']}: ")
        for name in NO_SERIES:
            assert name in worker["reason"]
        pending = [op for op in env.manager.status("jqueuer")["pending_operations"]
                   if op["group"] == GROUP and op["kind"] == "resize"]
        assert [op["desired"] for op in pending] == [worker["desired"]]
    finally:
        env.manager.delete("jqueuer")
        env.stop()


def test_a_query_prometheus_cannot_answer_holds_the_workers(
        prometheus: PrometheusServer, jobs: Exporter, tmp_path: Path) -> None:
    """TOTALJOBS, changed to an expression Prometheus fails to evaluate (many-to-many)."""
    broken = "jqueuer_job_added * on() jqueuer_job_added"
    adt = ADT.read_text().replace(
        "TOTALJOBS: \"count(jqueuer_job_added{experiment_id='{{EXPERIMENT_ID}}'})\"",
        f'TOTALJOBS: "{broken}"')
    assert broken in adt
    env = ControllerEnv(tmp_path, prometheus_url=prometheus.url,
                        rules_dir=prometheus.rules_dir, targets_dir=prometheus.sd_dir)
    try:
        env.manager.submit(adt, app_id="jqueuer")
        env.tick("jqueuer")
        worker = worker_target(env)
        assert (worker["current"], worker["desired"]) == (0, 0)
        assert worker["reason"].startswith(
            "hold at 0: Prometheus could not answer query TOTALJOBS: execution: found "
            "duplicate series"), worker["reason"]
    finally:
        env.manager.delete("jqueuer")
        env.stop()


def test_an_unreachable_prometheus_holds_the_workers(doomed_prometheus: PrometheusServer,
                                                     tmp_path: Path) -> None:
    exporter = Exporter().start()
    serve_jobs(exporter)
    env = ControllerEnv(tmp_path, prometheus_url=doomed_prometheus.url,
                        rules_dir=doomed_prometheus.rules_dir,
                        targets_dir=doomed_prometheus.sd_dir)
    try:
        scraped(doomed_prometheus, exporter)
        env.manager.submit(ADT.read_text(), app_id="jqueuer")
        doomed_prometheus.stop()
        env.tick("jqueuer")
        worker = worker_target(env)
        assert (worker["current"], worker["desired"]) == (0, 0)
        assert "does not answer" in worker["reason"], worker["reason"]
    finally:
        env.manager.delete("jqueuer")
        env.stop()
        exporter.stop()
