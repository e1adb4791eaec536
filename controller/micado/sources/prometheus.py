"""Prometheus source for the controller: queries, alerts, rule files and scrape targets.

I/O only, no decisions. Two outcomes of a query are kept apart, because the policy engine
treats them differently: Prometheus *answered with no series* (or with NaN) gives ``None``, as
MiCADO's Policy Keeper gave its rules; Prometheus *could not answer* (an HTTP or PromQL error, a
timeout, an unreachable server) raises `QueryFailed` from `query`/`query_labels` and is listed,
with why, in `QueryResults.failed` from `query_all`. Apart from that and the rule-file
validation (whose errors name the offending file), nothing here raises on a Prometheus failure.

- `PrometheusSource`: instant queries (`query`, `query_labels`, `query_all` concurrently, one
  timeout each), `rules_by_app()` (each app's firing alerts and the rules Prometheus cannot
  evaluate, known by rule group), `healthy()`.
- `RuleFiles`: one Prometheus rule file per app (``<app_id>.rules.yml``, group
  ``micado-<app_id>``), written atomically, checked with ``promtool check rules`` when promtool is
  on PATH; `reload(url)` asks Prometheus to re-read them (needs ``--web.enable-lifecycle``).
- `ScrapeTargets`: file-based service discovery files (``<app_id>.json``) this module owns;
  prometheus.yml is never edited. Targets carry no per-app label: a target several apps list
  is scraped once, and each app's alert label (``micado_app``) stays unique per series.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from micado.sources.http_pool import PooledSession

log = logging.getLogger(__name__)

GROUP_PREFIX = "micado-"
APP_LABEL = "micado_app"
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")
_MAX_WORKERS = 8


@dataclass
class AppRules:
    """One app's alerting rules as Prometheus evaluates them: the names of those firing, and
    rule name -> the evaluation error of those Prometheus cannot evaluate."""

    firing: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)


class RuleFileError(ValueError):
    """A rule file Prometheus would reject (raised before it replaces the live file)."""


class QueryFailed(Exception):
    """Prometheus could not answer a query (not: answered with no series). `str()` is why,
    short enough for a decision's reason: "timeout after 5 s", "unreachable (connection
    refused)", "bad_data: invalid parameter \"query\": 1:5: parse error: ..."."""


@dataclass
class QueryResults:
    """What `PrometheusSource.query_all` got: name -> value (a number, a list of label values,
    or None when the answer had no series or was NaN) for the queries Prometheus answered, and
    name -> why for those it could not answer."""

    values: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def _check_app_id(app_id: str) -> str:
    if not isinstance(app_id, str) or not _APP_ID.match(app_id) or app_id in (".", ".."):
        raise ValueError(f"app id {app_id!r}: expected letters, digits, '.', '_' or '-'")
    return app_id


class PrometheusSource:
    """Instant queries and alert state from one Prometheus server."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        # No retries: a dead Prometheus must cost one timeout at most, not a backoff series.
        # One keep-alive pool for queries and alerts (see http_pool for why not requests).
        self._session = PooledSession(maxsize=2 * _MAX_WORKERS)
        self._prom = PrometheusConnect(
            url=self.url, retry=Retry(total=0), timeout=self.timeout,
            session=self._session,  # type: ignore[arg-type]
        )
        # one pool for the source's lifetime: a pool per call costs a thread start per query
        self._pool = ThreadPoolExecutor(max_workers=_MAX_WORKERS,
                                        thread_name_prefix="prom-query")

    # -- queries -----------------------------------------------------------------------------

    def _result(self, expr: str, timeout: float | None) -> Any:
        """The result list of an instant query; QueryFailed when Prometheus cannot answer."""
        timeout = self.timeout if timeout is None else float(timeout)
        try:
            # The server-side timeout stops an expensive query; the HTTP timeout a dead server.
            result = self._prom.custom_query(expr, params={"timeout": f"{timeout:g}s"},
                                             timeout=timeout)
        except Exception as exc:  # the HTTP pool, HTTP status, JSON: all mean "no answer"
            why = _why_unanswered(exc, timeout)
            log.warning("prometheus query %r failed: %s", expr, why)
            raise QueryFailed(why) from exc
        if not isinstance(result, list):
            raise QueryFailed(f"unexpected answer: a result of type {type(result).__name__}")
        return result

    def query(self, expr: str, timeout: float | None = None) -> float | None:
        """The first sample's value; None when the answer has no series or is NaN.

        Raises QueryFailed when Prometheus cannot answer (PromQL error, timeout, down)."""
        return _first_value(self._result(expr, timeout))

    def query_labels(self, expr: str, label: str, timeout: float | None = None) -> list[str]:
        """Values of `label` over the series `expr` returns (MiCADO's ``[expr, label]``).

        An empty list when no series matches (e.g. no node to drop); series without the label
        are left out. Raises QueryFailed when Prometheus cannot answer.
        """
        values = []
        for series in self._result(expr, timeout):
            metric = series.get("metric") if isinstance(series, dict) else None
            if isinstance(metric, dict) and label in metric:
                values.append(str(metric[label]))
        return values

    def query_all(
        self, queries: Mapping[str, str | list], timeout: float | None = None
    ) -> QueryResults:
        """Run MiCADO queries concurrently: ``name: expr`` or ``name: [expr, label]``.

        Each query has its own timeout and failure; a failed or malformed one is listed in
        `failed` with why and never affects the others.
        """
        results = QueryResults()
        if not queries:
            return results
        if len(queries) == 1:  # no thread hop for the common single-query policy
            outcomes = {name: self._one(spec, timeout) for name, spec in queries.items()}
        else:
            futures = {name: self._pool.submit(self._one, spec, timeout)
                       for name, spec in queries.items()}
            outcomes = {name: future.result() for name, future in futures.items()}
        for name, outcome in outcomes.items():
            if isinstance(outcome, QueryFailed):
                results.failed[name] = str(outcome)
            else:
                results.values[name] = outcome
        return results

    def _one(self, spec: str | list, timeout: float | None) -> Any:
        """One query's value, or the QueryFailed (returned, not raised: one result each)."""
        try:
            if isinstance(spec, str):
                return self.query(spec, timeout)
            if (isinstance(spec, list | tuple) and len(spec) == 2
                    and all(isinstance(part, str) for part in spec)):
                return self.query_labels(spec[0], spec[1], timeout)
            return QueryFailed(f"{spec!r} is not an expression or [expression, label]")
        except QueryFailed as exc:
            return exc
        except Exception as exc:  # an answer of an unexpected shape: not an answer either
            return QueryFailed(f"unexpected answer: {exc}")

    # -- alerts and health -------------------------------------------------------------------

    def firing_alerts(self, rule_group_prefix: str = GROUP_PREFIX) -> set[str]:
        """Names of the alerts firing in rule groups whose name starts with the prefix.

        For one app pass ``micado-<app_id>`` (see `group_name`); the match on the group name is
        exact when the prefix is a full group name of an existing group. Uses ``/api/v1/rules``
        (the alert entries of ``/api/v1/alerts`` carry no group). Empty on any error.
        """
        try:
            response = requests.get(
                f"{self.url}/api/v1/rules", params={"type": "alert"}, timeout=self.timeout
            )
            response.raise_for_status()
            groups = response.json()["data"]["groups"]
        except Exception as exc:
            log.warning("prometheus alerts unavailable: %s", exc)
            return set()
        names = set()
        for group in groups:
            if not str(group.get("name", "")).startswith(rule_group_prefix):
                continue
            for rule in group.get("rules", []):
                if rule.get("type") == "alerting" and rule.get("state") == "firing":
                    names.add(rule["name"])
        return names

    def firing_alerts_of_app(self, app_id: str) -> set[str]:
        """Firing alerts of exactly one app (from ``/api/v1/alerts``, by the app label)."""
        try:
            response = requests.get(f"{self.url}/api/v1/alerts", timeout=self.timeout)
            response.raise_for_status()
            alerts = response.json()["data"]["alerts"]
        except Exception as exc:
            log.warning("prometheus alerts unavailable: %s", exc)
            return set()
        return {
            alert["labels"]["alertname"]
            for alert in alerts
            if alert.get("state") == "firing"
            and alert.get("labels", {}).get(APP_LABEL) == app_id
            and "alertname" in alert.get("labels", {})
        }

    def rules_by_app(self) -> dict[str, AppRules] | None:
        """Every app's alerting rules from one ``/api/v1/rules`` call: which fire, and which
        Prometheus cannot evaluate (with its error). An app is known by its rule group
        (``micado-<app_id>``), not by a label of the alert, so series that carry a
        ``micado_app`` label of their own cannot move an alert to another app. None when
        Prometheus cannot be asked, so a caller can tell "down" from "quiet"."""
        try:
            response = self._session.get(f"{self.url}/api/v1/rules", params={"type": "alert"},
                                         timeout=self.timeout)
            response.raise_for_status()
            groups = response.json()["data"]["groups"]
        except Exception as exc:
            log.warning("prometheus rules unavailable: %s", exc)
            return None
        apps: dict[str, AppRules] = {}
        for group in groups:
            name = str(group.get("name", ""))
            if not name.startswith(GROUP_PREFIX):
                continue
            app = apps.setdefault(name.removeprefix(GROUP_PREFIX), AppRules())
            for rule in group.get("rules") or []:
                if rule.get("type") != "alerting" or "name" not in rule:
                    continue
                if rule.get("state") == "firing":
                    app.firing.add(str(rule["name"]))
                if rule.get("health") == "err":
                    app.errors[str(rule["name"])] = str(rule.get("lastError") or "unknown error")
        return apps

    def alerts_by_app(self) -> dict[str, set[str]] | None:
        """Firing alerts of every app (see `rules_by_app`); None when Prometheus is down."""
        apps = self.rules_by_app()
        return None if apps is None else {app: rules.firing for app, rules in apps.items()}

    def healthy(self) -> bool:
        try:
            response = requests.get(f"{self.url}/-/healthy", timeout=self.timeout)
        except requests.RequestException:
            return False
        return response.ok

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()


def _why_unanswered(exc: Exception, timeout: float) -> str:
    """A short reason for a query Prometheus did not answer, for the decision's reason."""
    if isinstance(exc, NewConnectionError):
        errno = re.search(r"\[Errno -?\d+\] (.+)$", str(exc))
        return f"unreachable ({errno.group(1).lower() if errno else exc})"
    if isinstance(exc, Urllib3Timeout | requests.Timeout):
        return f"timeout after {timeout:g} s"
    if isinstance(exc, PrometheusApiClientException):
        return _http_error(str(exc))
    if isinstance(exc, ValueError | KeyError | TypeError):  # 200 but not Prometheus's JSON
        return f"unexpected answer ({type(exc).__name__}: {exc})"
    return f"unreachable ({exc})"


def _http_error(message: str) -> str:
    """"bad_data: <PromQL error>" from the client library's "HTTP Status Code 400 (b'...')"."""
    match = re.fullmatch(r"HTTP Status Code (\d+) \((b['\"].*['\"])\)", message, re.DOTALL)
    if match is None:
        return message[:300]
    status = match.group(1)
    try:
        body = json.loads(ast.literal_eval(match.group(2)))
    except (ValueError, SyntaxError):
        return f"HTTP {status}"
    if isinstance(body, dict) and body.get("error"):
        kind = body.get("errorType") or f"HTTP {status}"
        return f"{kind}: {str(body['error'])[:300]}"
    return f"HTTP {status}"


def _first_value(result: Any) -> float | None:
    """Value of the first sample of an instant-query result (vector, scalar or string)."""
    raw: Any = None
    if isinstance(result, list) and result:
        first = result[0]
        if isinstance(first, dict):  # vector: [{"metric": {...}, "value": [ts, "v"]}, ...]
            value = first.get("value")
            if isinstance(value, list) and len(value) == 2:
                raw = value[1]
        elif len(result) == 2:  # scalar or string: [ts, "v"]
            raw = result[1]
    if raw is None:
        return None
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


# -- files Prometheus reads ------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def group_name(app_id: str) -> str:
    return GROUP_PREFIX + _check_app_id(app_id)


class RuleFiles:
    """Prometheus alerting-rule files, one per app, in a directory Prometheus loads (``*.yml``).

    Temp files start with a dot and end in ``.tmp``, so a ``*.yml`` glob never sees them.
    """

    def __init__(self, directory: str | os.PathLike[str], promtool: str | None = None) -> None:
        self.directory = Path(directory)
        self.promtool = promtool if promtool is not None else shutil.which("promtool")

    def path(self, app_id: str) -> Path:
        return self.directory / f"{_check_app_id(app_id)}.rules.yml"

    def render(self, app_id: str, alerts: Iterable[Mapping[str, Any]]) -> str:
        """The rule file text for an app's policy alerts (MiCADO ``{alert, expr, for}``)."""
        rules = []
        for index, alert in enumerate(alerts):
            name, expr = alert.get("alert"), alert.get("expr")
            if not isinstance(name, str) or not name:
                raise RuleFileError(f"app {app_id}: alerts[{index}].alert must be a name")
            if not isinstance(expr, str | int | float) or isinstance(expr, bool):
                raise RuleFileError(f"app {app_id}: alert {name}: expr must be a PromQL string")
            rule: dict[str, Any] = {"alert": name, "expr": str(expr)}
            if alert.get("for") is not None:
                rule["for"] = str(alert["for"])
            labels = {str(k): str(v) for k, v in dict(alert.get("labels") or {}).items()}
            labels[APP_LABEL] = app_id
            rule["labels"] = labels
            if alert.get("annotations"):
                rule["annotations"] = {
                    str(k): str(v) for k, v in dict(alert["annotations"]).items()
                }
            rules.append(rule)
        document = {"groups": [{"name": group_name(app_id), "rules": rules}]}
        return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)

    def write(self, app_id: str, alerts: Iterable[Mapping[str, Any]]) -> Path:
        """Write (or replace) the app's rule file; RuleFileError if promtool rejects it."""
        text = self.render(app_id, alerts)
        self.check(app_id, text)
        path = self.path(app_id)
        _atomic_write(path, text)
        return path

    def check(self, app_id: str, text: str) -> None:
        """`promtool check rules` on the text when promtool is available; else nothing."""
        if not self.promtool:
            return
        with tempfile.NamedTemporaryFile(
            "w", suffix=".rules.yml", prefix=f"{app_id}.", encoding="utf-8"
        ) as handle:
            handle.write(text)
            handle.flush()
            try:
                done = subprocess.run(
                    [self.promtool, "check", "rules", handle.name],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RuleFileError(f"app {app_id}: promtool check rules failed: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr + "\n" + done.stdout).replace(handle.name, f"{app_id} rules")
            lines = [line.strip() for line in output.splitlines()]
            detail = "; ".join(
                line
                for line in lines
                if line and line != "FAILED:" and not line.startswith("Check")
            )
            raise RuleFileError(f"app {app_id}: Prometheus rejects the alerts: {detail}")

    def remove(self, app_id: str) -> bool:
        """Remove the app's rule file; True if there was one."""
        path = self.path(app_id)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    @staticmethod
    def reload(url: str, timeout: float = 10.0) -> bool:
        """POST ``/-/reload``; True when Prometheus accepted (needs --web.enable-lifecycle)."""
        try:
            response = requests.post(f"{url.rstrip('/')}/-/reload", timeout=timeout)
        except requests.RequestException as exc:
            log.warning("prometheus reload failed: %s", exc)
            return False
        if not response.ok:
            log.warning(
                "prometheus reload: HTTP %s %s", response.status_code, response.text.strip()
            )
        return response.ok


class ScrapeTargets:
    """File-based service discovery files (``<app_id>.json``) in a directory this class owns."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, app_id: str) -> Path:
        return self.directory / f"{_check_app_id(app_id)}.json"

    def write(
        self,
        app_id: str,
        targets: Iterable[str],
        labels: Mapping[str, str] | None = None,
    ) -> Path:
        """Write the app's targets (``host:port``); Prometheus picks them up without reload.

        No per-app label is added: apps that list the same target then share one scrape
        (Prometheus merges identical targets), so no app's query counts it once per app, and
        an app's alert label cannot collide with another app's copy of the same series.
        """
        targets = [str(target) for target in targets]
        for target in targets:
            if not target or any(ch.isspace() for ch in target) or "/" in target:
                raise ValueError(f"app {app_id}: scrape target {target!r}: expected host:port")
        merged = {str(k): str(v) for k, v in dict(labels or {}).items()}
        text = json.dumps([{"targets": targets, "labels": merged}], indent=2) + "\n"
        path = self.path(app_id)
        _atomic_write(path, text)
        return path

    def remove(self, app_id: str) -> bool:
        path = self.path(app_id)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed
