"""micado.sources.prometheus against a real Prometheus (Debian package) and a tiny exporter."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from prometheus_fixture import (
    Exporter,
    PrometheusServer,
    doomed_prometheus,
    exporter,
    prometheus,
    require_prometheus,
    wait_until,
)

from controller_env import ControllerEnv
from fakes.prometheus_api import FakePrometheus
from micado.sources.prometheus import (
    PrometheusSource,
    QueryFailed,
    RuleFileError,
    RuleFiles,
    ScrapeTargets,
)

__all__ = ["doomed_prometheus", "exporter", "prometheus"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

APP = "web"
# The first sample is queryable only ~6 s after start (target updates are applied every 5 s).
SCRAPE_TIMEOUT = 60.0  # a deadline, not a duration: generous for loaded machines
# a query timeout far beyond any answer: "took less than SLOW" means "waited for no timeout"
SLOW = 30.0


@pytest.fixture(scope="module")
def source(prometheus: PrometheusServer) -> PrometheusSource:
    return PrometheusSource(prometheus.url, timeout=3)


@pytest.fixture(scope="module")
def scraped(prometheus: PrometheusServer, exporter: Exporter, source: PrometheusSource) -> Exporter:
    """The exporter registered through file SD, with its first samples queryable."""
    exporter.set("app_load", 0.25, deployment="web", node="n1")
    exporter.set("app_load", 0.5, deployment="db", node="n2")
    exporter.set("app_nan", float("nan"))
    ScrapeTargets(prometheus.sd_dir).write(APP, [exporter.address], {"tier": "test"})
    value = wait_until(lambda: source.query('app_load{deployment="web"}'), SCRAPE_TIMEOUT)
    assert value == 0.25, "the exporter was not scraped through file SD in time"
    return exporter


def test_scrape_targets_files(tmp_path):
    targets = ScrapeTargets(tmp_path)
    path = targets.write("app1", ["10.0.0.1:9100", "node2:9100"], {"role": "worker"})
    assert path == tmp_path / "app1.json"
    assert json.loads(path.read_text()) == [
        {
            "targets": ["10.0.0.1:9100", "node2:9100"],
            "labels": {"role": "worker"},  # no per-app label: shared targets scrape once
        }
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["app1.json"]  # no temp file left
    assert targets.remove("app1") is True
    assert targets.remove("app1") is False
    with pytest.raises(ValueError, match="app id"):
        targets.write("../evil", ["a:1"])
    with pytest.raises(ValueError, match="host:port"):
        targets.write("app1", ["http://a/metrics"])


def test_query_returns_the_scraped_value(scraped: Exporter, source: PrometheusSource):
    scraped.set("app_load", 0.75, deployment="web", node="n1")
    assert wait_until(lambda: source.query('app_load{deployment="web"}') == 0.75, 10)
    assert source.query('sum(app_load{tier="test"})') == 1.25
    assert source.query("scalar(vector(3))") == 3.0  # a scalar result
    assert source.healthy() is True


def test_no_series_and_nan_are_none(scraped: Exporter, source: PrometheusSource):
    """Prometheus answered, with nothing to give: the rule gets None (NaN too: D-nan-none)."""
    assert source.query('app_load{deployment="nothing-here"}') is None
    assert source.query("count(app_load > 100)") is None  # count of nothing: no series
    assert source.query("app_nan") is None
    assert source.query_labels('app_load{deployment="nothing-here"}', "node") == []


@pytest.mark.parametrize(("expr", "why"), [
    ("sum(app_load", "bad_data: invalid parameter \"query\": 1:13: parse error: unclosed left "
                     "parenthesis"),
    ("rate(app_load)", "bad_data: invalid parameter \"query\": 1:6: parse error: expected type "
                       "range vector in call to function \"rate\", got instant vector"),
    ("app_load * on() app_load", "execution: found duplicate series for the match group {} on "
                                 "the right hand-side of the operation"),
])
def test_a_query_prometheus_rejects_fails_with_its_error(scraped: Exporter,
                                                         source: PrometheusSource,
                                                         expr: str, why: str):
    with pytest.raises(QueryFailed) as failed:
        source.query(expr)
    assert str(failed.value).startswith(why)
    with pytest.raises(QueryFailed, match=r"^bad_data: .*parse error"):
        source.query_labels("sum(", "node")


def test_labels_query(scraped: Exporter, source: PrometheusSource):
    assert sorted(source.query_labels("app_load", "node")) == ["n1", "n2"]
    assert source.query_labels("app_load > 100", "node") == []
    assert source.query_labels("app_load", "no_such_label") == []


def test_query_all_isolates_failures(scraped: Exporter, prometheus: PrometheusServer):
    # a long timeout that no answer (not even on a loaded machine) comes near: a failing query
    # must fail at once, not cost the others their timeout
    source = PrometheusSource(prometheus.url, timeout=SLOW)
    started = time.monotonic()
    results = source.query_all(
        {
            "load": 'app_load{deployment="db"}',
            "broken": "sum(",
            "nodes": ["app_load", "node"],
            "missing": "no_such_metric",
            "malformed": ["app_load"],
        }
    )
    assert time.monotonic() - started < SLOW
    assert results.values == {"load": 0.5, "nodes": results.values["nodes"], "missing": None}
    assert sorted(results.values["nodes"]) == ["n1", "n2"]
    assert set(results.failed) == {"broken", "malformed"}
    assert results.failed["broken"].startswith("bad_data: ")
    assert results.failed["malformed"] == "['app_load'] is not an expression or [expression, label]"
    empty = source.query_all({})
    assert (empty.values, empty.failed) == ({}, {})


def test_a_slow_or_failing_prometheus_is_a_failure_not_no_series():
    """Faults a real Prometheus does not make on demand, from the socket fake: a server slower
    than the timeout, one answering 503, one answering one expression with an error."""
    with FakePrometheus() as fake:
        source = PrometheusSource(fake.url, timeout=0.5)
        fake.set("up", 1.0)
        assert source.query("up") == 1.0
        assert source.query("absent_metric") is None  # the fake answers with no series
        fake.fail("up", 422, "execution", "expanding series: context canceled")
        with pytest.raises(QueryFailed, match=r"^execution: expanding series: context canceled$"):
            source.query("up")
        fake.errors.clear()
        fake.delay = 2.0  # four times the timeout
        results = source.query_all({"a": "up", "b": ["up", "job"]})
        assert results.values == {}
        assert results.failed == {"a": "timeout after 0.5 s", "b": "timeout after 0.5 s"}
        fake.delay = 0.0
        fake.down = True
        with pytest.raises(QueryFailed, match=r"^HTTP 503: service unavailable$"):
            source.query("up")
        source.close()


def test_rule_files_render_and_validate(tmp_path):
    require_prometheus()  # promtool
    rules = RuleFiles(tmp_path)
    path = rules.write(APP, [{"alert": "high", "expr": "app_load > 0.9", "for": "30s"}])
    assert path == tmp_path / "web.rules.yml"
    assert yaml.safe_load(path.read_text()) == {
        "groups": [
            {
                "name": "micado-web",
                "rules": [
                    {
                        "alert": "high",
                        "expr": "app_load > 0.9",
                        "for": "30s",
                        "labels": {"micado_app": "web"},
                    }
                ],
            }
        ]
    }
    with pytest.raises(
        RuleFileError, match=r'app web: Prometheus rejects .*"bad".*unclosed left parenthesis'
    ):
        rules.write(APP, [{"alert": "bad", "expr": "sum(app_load"}])
    assert "app_load > 0.9" in path.read_text()  # the live file is untouched
    with pytest.raises(RuleFileError, match=r"alerts\[0\]\.alert"):
        rules.write(APP, [{"expr": "up"}])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["web.rules.yml"]
    assert rules.remove(APP) is True
    assert rules.remove(APP) is False


def test_alert_fires_and_clears(
    prometheus: PrometheusServer, scraped: Exporter, source: PrometheusSource
):
    rules = RuleFiles(prometheus.rules_dir)
    scraped.set("app_load", 0.1, deployment="web", node="n1")
    rules.write(
        APP,
        [
            {"alert": "web_overloaded", "expr": 'app_load{deployment="web"} > 0.8', "for": "2s"},
            {"alert": "web_idle", "expr": 'app_load{deployment="web"} < 0.05', "for": "1s"},
        ],
    )
    rules.write("other", [{"alert": "always", "expr": "vector(1) > 0"}])
    try:
        assert RuleFiles.reload(prometheus.url) is True
        assert wait_until(lambda: "always" in source.firing_alerts(), 10)
        assert "web_overloaded" not in source.firing_alerts("micado-web")
        assert source.firing_alerts("micado-web") == set()  # other app's alert not included

        scraped.set("app_load", 0.95, deployment="web", node="n1")
        fired = wait_until(lambda: source.firing_alerts("micado-web"), 15)
        assert fired == {"web_overloaded"}
        assert source.firing_alerts_of_app(APP) == {"web_overloaded"}
        assert source.firing_alerts_of_app("other") == {"always"}

        scraped.set("app_load", 0.3, deployment="web", node="n1")
        assert wait_until(lambda: not source.firing_alerts("micado-web"), 10)

        scraped.set("app_load", 0.95, deployment="web", node="n1")
        assert wait_until(lambda: source.firing_alerts("micado-web") == {"web_overloaded"}, 15)
        assert rules.remove(APP) is True
        assert RuleFiles.reload(prometheus.url) is True
        assert wait_until(lambda: not source.firing_alerts("micado-web"), 10)
        assert source.firing_alerts_of_app(APP) == set()
        assert "always" in source.firing_alerts()
    finally:
        rules.remove(APP)
        rules.remove("other")
        RuleFiles.reload(prometheus.url)


def test_a_dead_prometheus_fails_fast_as_unreachable(doomed_prometheus: PrometheusServer):
    source = PrometheusSource(doomed_prometheus.url, timeout=SLOW)
    assert source.healthy() is True
    assert source.query("vector(7)") == 7.0
    doomed_prometheus.stop()

    started = time.monotonic()
    with pytest.raises(QueryFailed, match=r"^unreachable \(connection refused\)$"):
        source.query("vector(7)")
    with pytest.raises(QueryFailed, match=r"^unreachable"):
        source.query_labels("up", "job")
    results = source.query_all({"a": "vector(1)", "b": ["up", "job"]})
    assert (results.values, results.failed) == (
        {}, {"a": "unreachable (connection refused)", "b": "unreachable (connection refused)"})
    assert source.firing_alerts() == set()
    assert source.healthy() is False
    assert time.monotonic() - started < SLOW  # refused at once: no call waited for its timeout
    assert RuleFiles.reload(doomed_prometheus.url, timeout=1) is False


SHARED_APPS = ("shop", "blog", "wiki")


def test_apps_on_one_shared_target_all_fire(prometheus: PrometheusServer,
                                            source: PrometheusSource):
    """Three apps scrape the same target and alert on the same expression: each app's alert
    fires and is read back by that app (no "same labelset after applying alert labels")."""
    rules, targets = RuleFiles(prometheus.rules_dir), ScrapeTargets(prometheus.sd_dir)
    exporter = Exporter().start()  # a target of their own: no other test scrapes it
    exporter.set("shared_load", 0.95, service="front")
    try:
        for app in SHARED_APPS:
            targets.write(app, [exporter.address])
            rules.write(app, [{"alert": "overloaded", "expr": "shared_load > 0.8"}])
        assert RuleFiles.reload(prometheus.url) is True

        def all_fire() -> bool:
            by_app = source.rules_by_app() or {}
            return all(by_app.get(app) and by_app[app].firing == {"overloaded"}
                       and not by_app[app].errors for app in SHARED_APPS)

        assert wait_until(all_fire, SCRAPE_TIMEOUT), source.rules_by_app()
        by_app = source.rules_by_app()
        assert by_app is not None
        assert all(by_app[app].errors == {} for app in SHARED_APPS)
        assert {app: names for app, names in (source.alerts_by_app() or {}).items()
                if app in SHARED_APPS} == {app: {"overloaded"} for app in SHARED_APPS}
        # the shared target is scraped once, so no app's query counts it three times
        assert source.query("count(shared_load)") == 1.0
        assert "same labelset" not in (prometheus.root / "prometheus.log").read_text()
    finally:
        for app in SHARED_APPS:
            rules.remove(app)
            targets.remove(app)
        RuleFiles.reload(prometheus.url)
        exporter.stop()


def test_a_rule_prometheus_cannot_evaluate_is_reported_for_its_app(
        prometheus: PrometheusServer, scraped: Exporter, source: PrometheusSource):
    """promtool accepts it; evaluation fails (many-to-many matching on app_load's two series)."""
    rules = RuleFiles(prometheus.rules_dir)
    try:
        rules.write("broken", [{"alert": "fine", "expr": "vector(1) > 0"},
                               {"alert": "clash", "expr": "app_load * on() app_load > 0"}])
        rules.write("healthy", [{"alert": "fine", "expr": "vector(1) > 0"}])
        assert RuleFiles.reload(prometheus.url) is True

        def broken_reported() -> bool:
            by_app = source.rules_by_app() or {}
            return "broken" in by_app and "clash" in by_app["broken"].errors

        assert wait_until(broken_reported, 10), source.rules_by_app()
        by_app = source.rules_by_app()
        assert by_app is not None
        assert "many-to-many" in by_app["broken"].errors["clash"]
        assert set(by_app["broken"].errors) == {"clash"}
        assert by_app["healthy"].errors == {}
        assert wait_until(lambda: (source.rules_by_app() or {})["healthy"].firing, 10)
    finally:
        rules.remove("broken")
        rules.remove("healthy")
        RuleFiles.reload(prometheus.url)


ADT_TEMPLATE = """\
tosca_definitions_version: tosca_simple_yaml_1_2
imports:
  - https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml
topology_template:
  node_templates:
    {name}:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.25
  policies:
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [ {name} ]
        properties:
          min_instances: 1
          max_instances: 5
          sources: [ "{target}" ]
          alerts:
            - alert: overloaded
              expr: '{expr}'
          scaling_rule: |
            if overloaded:
              m_container_count += 1
"""


def test_controller_scales_every_app_of_a_shared_target_and_reports_broken_alerts(
        prometheus: PrometheusServer, tmp_path: Path):
    """The whole controller (store, loop, manager) on a real Prometheus: three apps alerting
    on one shared target each scale out; an app whose alert Prometheus cannot evaluate says so
    in its status and in an event, and the healthy apps are not affected."""
    exporter = Exporter().start()
    exporter.set("shared_load", 0.95, service="front")
    exporter.set("split_load", 1, part="a")
    exporter.set("split_load", 2, part="b")
    env = ControllerEnv(tmp_path, prometheus_url=prometheus.url,
                        rules_dir=prometheus.rules_dir, targets_dir=prometheus.sd_dir)
    apps = {app: ADT_TEMPLATE.format(name=app, target=exporter.address,
                                     expr="shared_load > 0.8") for app in SHARED_APPS}
    apps["broken"] = ADT_TEMPLATE.format(name="broken", target=exporter.address,
                                         expr="split_load * on() split_load > 0")
    try:
        for app, adt in apps.items():
            env.manager.submit(adt, app_id=app)

        def every_app_scaled() -> bool:
            for app in apps:
                env.tick(app)
            return all((env.replicas(app) or 0) >= 2 for app in SHARED_APPS)

        assert wait_until(every_app_scaled, SCRAPE_TIMEOUT, 0.5), \
            {app: env.replicas(app) for app in SHARED_APPS}
        for app in SHARED_APPS:
            assert env.manager.status(app)["alert_errors"] == {}

        def broken_reported() -> bool:  # Prometheus evaluates it on its own schedule
            env.tick("broken")
            return bool(env.manager.status("broken")["alert_errors"])

        assert wait_until(broken_reported, SCRAPE_TIMEOUT, 0.5)
        status = env.manager.status("broken")
        assert set(status["alert_errors"]) == {"overloaded"}
        assert "many-to-many" in status["alert_errors"]["overloaded"]
        assert env.replicas("broken") is None  # never scaled: its alert cannot fire
        events = [e for e in env.manager.events("broken") if e["kind"] == "alert_rule_error"]
        assert len(events) == 1, events  # once, not every tick
        assert events[0]["message"].startswith("alert overloaded: Prometheus cannot evaluate")

        fixed = ADT_TEMPLATE.format(name="broken", target=exporter.address,
                                    expr="max(split_load) > 5")
        env.manager.update("broken", fixed)

        def recovered() -> bool:
            env.tick("broken")
            return env.manager.status("broken")["alert_errors"] == {}

        assert wait_until(recovered, 10)
        assert [e["kind"] for e in env.manager.events("broken")
                if e["kind"].startswith("alert_rule")] == ["alert_rule_error", "alert_rule_ok"]
    finally:
        for app in apps:
            env.manager.delete(app)
        env.stop()
        exporter.stop()
