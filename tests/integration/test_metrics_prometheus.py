"""micado.metrics against a real Prometheus (Debian package) and a tiny exporter."""

from __future__ import annotations

import json
import time

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

from micado.metrics import PrometheusSource, RuleFileError, RuleFiles, ScrapeTargets

__all__ = ["doomed_prometheus", "exporter", "prometheus"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

APP = "web"
# The first sample is queryable only ~6 s after start (target updates are applied every 5 s).
SCRAPE_TIMEOUT = 20.0
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
            "labels": {"role": "worker", "micado_app": "app1"},
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
    assert source.query('sum(app_load{micado_app="web", tier="test"})') == 1.25
    assert source.query("scalar(vector(3))") == 3.0  # a scalar result
    assert source.healthy() is True


def test_no_data_nan_and_bad_promql_are_none(scraped: Exporter, source: PrometheusSource):
    assert source.query('app_load{deployment="nothing-here"}') is None
    assert source.query("app_nan") is None
    assert source.query("sum(app_load") is None  # parse error: HTTP 400
    assert source.query("rate(app_load)") is None  # type error
    assert source.query_labels("sum(", "node") is None


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
    assert results["load"] == 0.5
    assert results["broken"] is None
    assert sorted(results["nodes"]) == ["n1", "n2"]
    assert results["missing"] is None
    assert results["malformed"] is None
    assert source.query_all({}) == {}


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


def test_dead_prometheus_is_none_fast(doomed_prometheus: PrometheusServer):
    source = PrometheusSource(doomed_prometheus.url, timeout=SLOW)
    assert source.healthy() is True
    assert source.query("vector(7)") == 7.0
    doomed_prometheus.stop()

    started = time.monotonic()
    assert source.query("vector(7)") is None
    assert source.query_labels("up", "job") is None
    assert source.query_all({"a": "vector(1)", "b": ["up", "job"]}) == {"a": None, "b": None}
    assert source.firing_alerts() == set()
    assert source.healthy() is False
    assert time.monotonic() - started < SLOW  # refused at once: no call waited for its timeout
    assert RuleFiles.reload(doomed_prometheus.url, timeout=1) is False
