"""A reference model of MiCADO's Policy Keeper: what one of its sessions sets, tick by tick.

Our own re-implementation, written from reading micado-scale/component-policy-keeper (its code
is not copied here; each function names the file and commit it models). The newest
Kubernetes-era files found: policy_keeper.py at e531d3e06cd4 (Kubernetes nodes and Deployments,
several node sets, Terraform/Occopus, m_nodes_todrop), evaluator.py at ddcdbe027f86,
handle_k8s.py at e531d3e06cd4, pk_helper.py at 8b8a8273e6e0 and handle_prometheus.py at
f7cf2821f5d1 (the newest copy that could be read: a Python 2 one with `[expr, label]` queries
and a node set per rule; the Python 3 port after it changed its syntax, not, as far as
policy_keeper.py's calls show, what it returns). It runs in a
virtualenv of its own with MiCADO's pins, asteval 0.9.18 and numpy 2.0.0 (requirements.txt at
d8d5dc2fb9f9), and evaluates each rule with benchmarks/asteval_baseline.py's
`evaluate_in_child`, which builds the symbol table and interpreter exactly as evaluator.py does
(with the one Python >= 3.9 indexing repair that file explains).

Protocol: a JSON list of requests on stdin, each {"policy": MiCADO's policy document (stack,
data, scaling), "start": {"nodes": {group: count}, "replicas": {service: count}}, "ticks":
[{"now": seconds, "queries": {name: answer}, "alerts": [firing names], "nodes": {group:
[{"ID", "Addr"}]}}]}; an answer is {"value": "1.5"} (one sample, as Prometheus writes it,
"NaN" included), {"labels": [label values of the series]} (several series), {"series": 0} (no
series) or {"error": "..."} (Prometheus could not answer). Out on stdout: per request, one row
per tick, {"nodes": {group: {"count", "drop"}}, "services": {name: count}, "userdata", "crash",
"log"}.

What is modelled, not run: Alertmanager (an alert reaches the Policy Keeper when it starts
firing and again every REPEAT seconds while it fires; the store keeps it until a rule whose
text names it runs) and the clock (the tick's `now` instead of time.time()). The session is
run the way perform_one_session runs it: a rule's asteval error ends that rule only (asteval
prints it), an exception anywhere else ends the session where it happened (`crash`). Not
modelled: evaluator.py's 10 s limit (a rule that ran past it raised out of the session too),
the optimizer (`m_opt_*`) and the `requests` module MiCADO handed every rule.
"""

from __future__ import annotations

import copy
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from asteval_baseline import evaluate_in_child

REPEAT = 60.0  # seconds between Alertmanager's repeated notifications of a firing alert


class QueryFailed(Exception):
    """What handle_prometheus raises for an answer it cannot use (caught: the query is None)."""


class Session:
    """The Policy Keeper's state for one policy between sessions (its `policy` dict)."""

    def __init__(self, policy: dict[str, Any], start: dict[str, Any]) -> None:
        self.policy = copy.deepcopy(policy)
        self.policy.setdefault("scaling", {})
        self.alert_store: dict[str, float] = {}  # handle_prometheus' `alerts`
        self.notified: dict[str, float] = {}  # Alertmanager: last notification per alert
        self.applied_nodes: dict[str, dict[str, Any]] = {}
        self.applied_services: dict[str, int] = {}
        self.log: list[str] = []
        self._prepare(start)

    # policy_keeper.py@e531d3e prepare_session: counts from the orchestrator and Kubernetes
    def _prepare(self, start: dict[str, Any]) -> None:
        for node in self.policy["scaling"].get("nodes", []):
            count = start.get("nodes", {}).get(node["name"], 1)
            node.setdefault("outputs", {})["m_node_count"] = count
            self.applied_nodes[node["name"]] = {"count": count, "drop": []}
        for srv in self.policy["scaling"].get("services", []):
            # handle_k8s.py@e531d3e query_k8s_replicas: 1 when the Deployment is not found
            count = start.get("replicas", {}).get(srv["name"], 1)
            srv.setdefault("outputs", {})["m_container_count"] = count
            self.applied_services[srv["name"]] = count

    def alertmanager(self, now: float, firing: list[str]) -> None:
        """Alertmanager's webhook (handle_prometheus.py@f7cf282 alerts_add): firing alerts are
        stored, resolved ones ignored."""
        for name in firing:
            last = self.notified.get(name)
            if last is None or now - last >= REPEAT:
                self.notified[name] = now
                self.alert_store[name] = now
        for name in list(self.notified):
            if name not in firing:
                del self.notified[name]

    # policy_keeper.py@e531d3e perform_one_session
    def session(self, tick: dict[str, Any]) -> dict[str, Any]:
        self.log = []
        crash = None
        try:
            self._nodes_loop(tick)
            self._services_loop(tick)
        except Exception as exc:  # the session's `except Exception` in start()
            crash = f"{type(exc).__name__}: {exc}"
        return {"nodes": copy.deepcopy(self.applied_nodes),
                "services": dict(self.applied_services),
                "userdata": _plain(self.policy["scaling"].get("userdata")),
                "crash": crash, "log": list(self.log)}

    def _nodes_loop(self, tick: dict[str, Any]) -> None:
        to_scale: list[tuple[str, dict[str, Any]]] = []
        for node in self.policy["scaling"].get("nodes", []):
            node["inputs"] = self._node_inputs(node, tick)
            alerts = self._queries_and_alerts(node.get("scaling_rule", ""), tick,
                                              for_service=False)
            self._evaluate_node(node)
            method, info = _node_scaling(node)
            if method:
                to_scale.append((method, info))
            for name in alerts:
                self.alert_store.pop(name, None)
        # then the handlers: scale_worker_node / drop_worker_node per node set
        for method, info in to_scale:
            entry = self.applied_nodes.setdefault(info["node_name"], {"count": None, "drop": []})
            if method == "drop":
                entry["drop"] = list(info.get("replicas", []))
                entry["count"] = info["count"]
            else:
                entry["drop"] = []
                entry["count"] = info["replicas"]

    def _services_loop(self, tick: dict[str, Any]) -> None:
        for srv in self.policy["scaling"].get("services", []):
            srv["inputs"] = self._service_inputs(srv["name"], tick)
            alerts = self._queries_and_alerts(srv.get("scaling_rule", ""), tick,
                                              for_service=True)
            self._evaluate_service(srv)
            # perform_service_scaling: int(), then max(min(count, max), min), then scale
            out = srv["outputs"]["m_container_count"]
            count = max(min(int(out), int(srv["max_instances"])), int(srv["min_instances"]))
            self.applied_services[srv["name"]] = count
            for name in alerts:
                self.alert_store.pop(name, None)

    # policy_keeper.py@e531d3e collect_inputs_for_nodes
    def _node_inputs(self, node: dict[str, Any], tick: dict[str, Any]) -> dict[str, Any]:
        now = int(tick["now"])
        inputs: dict[str, Any] = {"m_nodes": _nodes_of(tick, node["name"])}
        inputs["m_node_count"], _, _ = limit_instances(
            node.get("outputs", {}).get("m_node_count"), node.get("min_instances"),
            node.get("max_instances"))
        inputs["m_nodes_todrop"] = []
        previous = node.get("inputs", {})
        prev_count, prev_nodes = previous.get("m_node_count"), previous.get("m_nodes")
        stable = inputs["m_node_count"] == len(inputs["m_nodes"])
        if prev_count and prev_nodes:  # an empty previous list restarts the clock every time
            if prev_count == len(prev_nodes):
                when = previous.get("m_time_when_node_count_changed", 0) if stable else 0
            else:
                when = now if stable else 0
        else:
            when = now
        inputs["m_time_when_node_count_changed"] = when
        inputs["m_time_since_node_count_changed"] = 0 if when == 0 else now - when
        inputs["m_userdata"] = self.policy["scaling"].get("userdata")
        return inputs

    # policy_keeper.py@e531d3e collect_inputs_for_containers: only the node sets the policy
    # scales count, in the policy's order; m_node_count is the last matching one's
    def _service_inputs(self, name: str, tick: dict[str, Any]) -> dict[str, Any]:
        inputs: dict[str, Any] = {"m_nodes": []}
        count = 0
        for srv in self.policy["scaling"].get("services", []):
            if srv.get("name") != name:
                continue
            for node in self.policy["scaling"].get("nodes", []):
                if not srv.get("hosts") or node["name"] in srv.get("hosts", []):
                    inputs["m_nodes"] += _nodes_of(tick, node["name"])
                    count, _, _ = limit_instances(node.get("outputs", {}).get("m_node_count"),
                                                  node.get("min_instances"),
                                                  node.get("max_instances"))
            inputs["m_node_count"] = count
            mcc = srv.get("outputs", {}).get("m_container_count")
            inputs["m_container_count"] = (
                max(min(int(mcc), int(srv["max_instances"])), int(srv["min_instances"]))
                if mcc else int(srv["min_instances"]))
        inputs["m_userdata"] = self.policy["scaling"].get("userdata")
        return inputs

    # handle_prometheus.py@f7cf282 evaluate_data_queries_and_alerts_for_nodes / _for_a_service:
    # only queries and alerts whose names occur in the rule's text; results kept in the
    # policy's query_results (never cleared), alert results rebuilt for each rule
    def _queries_and_alerts(self, rule: str | None, tick: dict[str, Any], *,
                            for_service: bool) -> dict[str, bool]:
        """Sets the rule's query and alert results; returns the alerts it reads (used up)."""
        data = self.policy.setdefault("data", {}) if not for_service else self.policy["data"]
        data.setdefault("query_results", {})
        for param, query in data.get("queries", {}).items():
            if rule is None or rule.find(param) == -1:
                continue
            try:
                if for_service and isinstance(query, list):
                    # the service path sends `endpoint + "...?query=" + query`: a list there
                    # raises TypeError, caught like any failed query
                    raise QueryFailed("can only concatenate str (not \"list\") to str")
                value = _extract(query, tick.get("queries", {}).get(param))
                value = value if isinstance(query, list) else float(value)
            except (QueryFailed, ValueError, TypeError) as exc:
                value = None
                self.log.append(f"(Q) query {param} failed: {exc}")
            data["query_results"][param] = value
        data["alert_results"] = {}
        alerts: dict[str, bool] = {}
        for item in data.get("alerts", []) or []:
            name = item["alert"]
            if rule is not None and rule.find(name) != -1:
                alerts[name] = name in self.alert_store
                data["alert_results"][name] = alerts[name]
        return alerts

    def _rule_inputs(self, target: dict[str, Any]) -> dict[str, Any]:
        """perform_policy_evaluation_on_*: the target's inputs, then every query result, this
        rule's alert results and every constant, in that order."""
        inputs = target["inputs"]
        inputs["m_userdata"] = self.policy["scaling"].get("userdata")
        data = self.policy.get("data", {})
        inputs.update(data.get("query_results", {}))
        inputs.update(data.get("alert_results", {}))
        inputs.update(data.get("constants", {}) or {})
        return inputs

    def _run(self, rule: str, inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        """evaluator.py@ddcdbe0 evaluate: a fresh symbol table per rule (a child process in
        MiCADO, so the inputs are copied), asteval prints the rule's error and stops there."""
        writer = io.StringIO()
        result = evaluate_in_child(rule, copy.deepcopy(inputs), outputs, writer)
        self.log += [line for line in writer.getvalue().splitlines() if line.strip()]
        return result

    # policy_keeper.py@e531d3e perform_policy_evaluation_on_worker_nodes
    def _evaluate_node(self, node: dict[str, Any]) -> None:
        inputs = self._rule_inputs(node)
        if node.get("scaling_rule", "") == "":
            return
        result = self._run(node["scaling_rule"], inputs,
                           ["m_node_count", "m_userdata", "m_nodes_todrop"])
        outputs = node.setdefault("outputs", {})
        todrop = result.get("m_nodes_todrop", [])
        if todrop:
            outputs["m_nodes_todrop"] = todrop
            outputs["m_node_count"] = node["inputs"]["m_node_count"]
        else:
            outputs["m_nodes_todrop"] = []
            outputs["m_node_count"] = int(result.get("m_node_count",
                                                     node["inputs"]["m_node_count"]))
        self.policy["scaling"]["userdata"] = result.get("m_userdata")

    # policy_keeper.py@e531d3e perform_policy_evaluation_on_a_k8s_deploy
    def _evaluate_service(self, srv: dict[str, Any]) -> None:
        inputs = self._rule_inputs(srv)
        if srv.get("scaling_rule", "") == "":
            return
        result = self._run(srv["scaling_rule"], inputs, ["m_container_count", "m_userdata"])
        srv.setdefault("outputs", {})["m_container_count"] = int(
            result.get("m_container_count", srv["inputs"]["m_container_count"]))
        self.policy["scaling"]["userdata"] = result.get("m_userdata")


# pk_helper.py@8b8a827 limit_instances
def limit_instances(count: Any, cmin: Any, cmax: Any) -> tuple[int, int, int]:
    cmin = 1 if cmin is None else int(cmin)
    cmax = cmin if cmax is None else max(int(cmax), cmin)
    count = cmin if count is None else max(min(int(count), cmax), cmin)
    return count, cmin, cmax


# policy_keeper.py@e531d3e get_node_scaling: drop while above min_instances (compared with
# the policy's min_instances as it is, a string when the ADT quoted it), else clamp the count
def _node_scaling(node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    outputs = node.get("outputs", {})
    count = outputs.get("m_node_count")
    info: dict[str, Any] = {"node_name": node["name"]}
    todrop = outputs.get("m_nodes_todrop", [])
    if todrop:
        for name in todrop:
            if count > node["min_instances"]:
                info.setdefault("replicas", []).append(name)
                count -= 1
        outputs["m_node_count"] = count
        info["count"] = count
        return "drop", info
    if "m_node_count" in outputs:
        info["replicas"], _, _ = limit_instances(count, node.get("min_instances"),
                                                 node.get("max_instances"))
        return "scale", info
    return None, info


# handle_prometheus.py@f7cf282 extract_value_from_prometheus_response, on a scripted answer.
# An [expr, label] query with one series is not scripted: the copy read returns that series'
# sample value (text) instead of a list there, which the Python 3 port may have changed.
def _extract(query: Any, answer: dict[str, Any] | None) -> Any:
    if not answer or "error" in answer:
        raise QueryFailed((answer or {}).get("error", "no answer"))
    if "labels" in answer:
        labels = answer["labels"]
        if len(labels) > 1:
            if not isinstance(query, list):
                raise QueryFailed("Multiple results in prometheus response")
            return [label for label in labels if label]
        raise QueryFailed("the script gives label answers with several series only")
    if answer.get("series") == 0:
        raise QueryFailed("No results found in prometheus response")
    return answer["value"]


def _nodes_of(tick: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return [dict(n) for n in tick.get("nodes", {}).get(group, [])]


def _plain(value: Any) -> Any:
    """JSON-able: numpy scalars and arrays become Python numbers and lists, NaN a string."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def run(request: dict[str, Any]) -> list[dict[str, Any]]:
    session = Session(request["policy"], request.get("start", {}))
    rows = []
    for tick in request["ticks"]:
        session.alertmanager(tick["now"], tick.get("alerts", []))
        rows.append(session.session(tick))
    return rows


def main() -> None:
    """A list of requests in, a list of results (rows per tick) out."""
    json.dump([run(request) for request in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
