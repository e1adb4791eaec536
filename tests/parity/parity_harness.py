"""Runs one scripted case through MiCADO's Policy Keeper (the model in micado_policy_keeper.py,
in its own virtualenv) and through our engine, and lines the two up tick by tick.

Both sides see the same policy (the ADT compiled by our compiler; MiCADO's side gets it as the
policy document MiCADO's PkAdaptor would have posted) and the same ticks: Prometheus' answers,
firing alerts, the nodes of each group, and the replicas a manual `kubectl scale` left. Each
side then lives in its own world: a Deployment has the replicas that side set, a node group the
size that side decided. What is compared per tick: each node group's size and the nodes to drop,
each workload's replicas, the app's m_userdata, and whether MiCADO's session crashed.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cached_venv import venv_python
from micado.adt import compile_adt
from micado.adt.model import Plan
from micado.policy.engine import TargetState, TickInputs, decide, scaled_groups

HERE = Path(__file__).resolve().parent
MODEL = HERE / "micado_policy_keeper.py"
# MiCADO's pins (component-policy-keeper requirements.txt at d8d5dc2fb9f9)
POLICY_KEEPER_PINS = ["asteval==0.9.18", "numpy==2.0.0"]
MODEL_TIMEOUT = 600
# a tick's `now` counts from here: MiCADO reads a clock time of 0 as "not stable"
EPOCH = 1_700_000_000.0


def policy_keeper_python() -> Path:
    """The interpreter of MiCADO's rule stack (asteval and numpy at its pins), cached."""
    return venv_python("micado-policy-keeper", POLICY_KEEPER_PINS)


# --- scripted Prometheus answers -------------------------------------------------------------

NAN = "NaN"  # the sample's value is NaN


@dataclass(frozen=True)
class Failed:
    """Prometheus could not answer (HTTP or PromQL error, timeout, unreachable)."""

    why: str = "connection refused"


@dataclass(frozen=True)
class NoSeries:
    """Prometheus answered, with no series."""


@dataclass(frozen=True)
class Labels:
    """An `[expr, label]` query answered with several series: their label values."""

    values: tuple[str, ...]


FAILED = Failed()
NO_SERIES = NoSeries()


def micado_answer(answer: Any) -> dict[str, Any]:
    """How the model receives an answer (a Prometheus sample's value is text)."""
    if isinstance(answer, Failed):
        return {"error": answer.why}
    if isinstance(answer, NoSeries):
        return {"series": 0}
    if isinstance(answer, Labels):
        return {"labels": list(answer.values)}
    return {"value": NAN if answer == NAN else repr(float(answer))}


def our_results(answers: dict[str, Any]) -> dict[str, Any]:
    """What our Prometheus source hands the engine (micado.sources.prometheus.PrometheusSource) as
    `query_results`: a number, a list of label values, or None (no series, NaN). A query
    Prometheus could not answer is left out: the engine holds on it."""
    return {name: our_answer(a) for name, a in answers.items() if not isinstance(a, Failed)}


def our_answer(answer: Any) -> Any:
    if isinstance(answer, NoSeries) or answer == NAN:
        return None
    if isinstance(answer, Labels):
        return list(answer.values)
    return float(answer)


# --- cases --------------------------------------------------------------------------------


@dataclass
class Tick:
    """One tick's facts. A field left out keeps the previous tick's value; `nodes` per group is
    a number of Ready nodes (named <group>-1.., addresses 10.0.<g>.<i>) or a list of them;
    `replicas` sets a workload's live replicas on our side only (a manual `kubectl scale`)."""

    now: float
    queries: dict[str, Any] | None = None
    alerts: list[str] | None = None
    nodes: dict[str, int | list[dict[str, str]]] | None = None
    replicas: dict[str, int] | None = None


@dataclass
class Case:
    name: str
    adt: str  # path (relative to the repository) or ADT text
    ticks: list[Tick]
    why: str = ""  # what the case exercises
    start: dict[str, dict[str, int]] = field(default_factory=dict)  # nodes / replicas
    differences: dict[str, list[int]] = field(default_factory=dict)  # id -> tick indices


@dataclass
class Side:
    """One side's result at one tick."""

    nodes: dict[str, tuple[int | None, tuple[str, ...]]]
    services: dict[str, int]
    userdata: Any
    crash: str | None
    log: list[str]

    def comparable(self) -> tuple[Any, ...]:
        return (self.nodes, self.services, _canonical(self.userdata), self.crash)

    def brief(self) -> str:
        parts = []
        for group, (count, drop) in sorted(self.nodes.items()):
            parts.append(f"{group}={count}" + (f" drop {','.join(drop)}" if drop else ""))
        parts += [f"{w}={n}" for w, n in sorted(self.services.items())]
        if self.userdata is not None:
            parts.append(f"ud={json.dumps(_canonical(self.userdata), sort_keys=True)}")
        if self.crash:
            parts.append(f"CRASH {self.crash}")
        return " ".join(parts)


def load_adt(case: Case, repo: Path) -> tuple[str, Plan]:
    text = case.adt if "\n" in case.adt else (repo / case.adt).read_text()
    return text, compile_adt(text, app_id="app").plan


def expand_ticks(ticks: list[Tick], plan: Plan) -> list[dict[str, Any]]:
    """Carry every field forward, turn node counts into node lists."""
    groups = [g.name for g in plan.node_groups]
    current: dict[str, Any] = {"queries": {}, "alerts": [], "nodes": {}, "replicas": {}}
    out = []
    for tick in ticks:
        if tick.queries is not None:
            current["queries"] = {**current["queries"], **tick.queries}
        if tick.alerts is not None:
            current["alerts"] = list(tick.alerts)
        if tick.nodes is not None:
            nodes = dict(current["nodes"])
            for group, given in tick.nodes.items():
                nodes[group] = (given if isinstance(given, list) else
                                [{"ID": f"{group}-{i}", "Addr": f"10.0.{_index(groups, group)}.{i}"}
                                 for i in range(1, given + 1)])
            current["nodes"] = nodes
        out.append({"now": EPOCH + tick.now, "queries": dict(current["queries"]),
                    "alerts": list(current["alerts"]), "nodes": dict(current["nodes"]),
                    "replicas": dict(tick.replicas or {})})
    return out


def micado_document(text: str, plan: Plan) -> dict[str, Any]:
    """The policy document MiCADO's PkAdaptor posted for this ADT (research notes §2.2): the
    merged data section, node sets then services in the ADT's order, min/max as the ADT wrote
    them after templating (a quoted number stays a string, as MiCADO's YAML kept it)."""
    raw = _raw_bounds(text)
    nodes, services = [], []
    for policy in plan.policies:
        bounds = raw.get(policy.target, {})
        entry: dict[str, Any] = {
            "name": policy.target,
            "min_instances": _as_written(policy.min_instances, bounds.get("min_instances")),
            "max_instances": _as_written(policy.max_instances, bounds.get("max_instances")),
            "scaling_rule": policy.scaling_rule,
        }
        if policy.target_kind == "node_group":
            nodes.append({**entry, "orchestrator": "Occopus"})
        else:
            services.append({**entry, "hosts": list(policy.hosts)})
    shared = plan.shared
    data = {"constants": dict(shared.constants), "queries": dict(shared.queries),
            "alerts": list(shared.alerts), "sources": list(shared.sources)}
    document: dict[str, Any] = {"stack": plan.app_id, "scaling": {"nodes": nodes,
                                                                    "services": services}}
    if any(data.values()):  # PkAdaptor leaves `data` out when no policy has any
        document["data"] = data
    return document


def run_micado(python: Path, requests: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    done = subprocess.run([str(python), str(MODEL)], input=json.dumps(requests),
                          capture_output=True, text=True, timeout=MODEL_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the MiCADO model failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def micado_request(case: Case, text: str, plan: Plan) -> dict[str, Any]:
    ticks = [{"now": t["now"], "alerts": t["alerts"], "nodes": t["nodes"],
              "queries": {k: micado_answer(v) for k, v in t["queries"].items()}}
             for t in expand_ticks(case.ticks, plan)]
    return {"policy": micado_document(text, plan), "start": case.start, "ticks": ticks}


def micado_sides(rows: list[dict[str, Any]], ticks: list[dict[str, Any]]) -> list[Side]:
    sides = []
    for row, tick in zip(rows, ticks, strict=True):
        nodes = {g: (v["count"], _ids(v["drop"], tick["nodes"].get(g, [])))
                 for g, v in row["nodes"].items()}
        sides.append(Side(nodes, dict(row["services"]), row["userdata"], row["crash"],
                          row["log"]))
    return sides


def run_ours(case: Case, plan: Plan) -> list[Side]:
    """Our engine as the control loop drives it (controller/micado/control/loop.py): node-group
    policies first, their new sizes in `live_counts`, then workloads, one m_userdata."""
    ordered = sorted(plan.policies, key=lambda p: p.target_kind != "node_group")
    scaled = scaled_groups(plan)
    states = {p.name: TargetState() for p in plan.policies}
    groups = dict(case.start.get("nodes", {}))
    replicas = dict(case.start.get("replicas", {}))
    userdata: Any = None
    sides = []
    for tick in expand_ticks(case.ticks, plan):
        replicas.update(tick["replicas"])
        live = dict(replicas)
        for group in plan.node_groups:
            live[group.name] = groups.get(group.name, len(tick["nodes"].get(group.name, [])))
        inputs = TickInputs(now=tick["now"],
                            query_results=our_results(tick["queries"]),
                            firing_alerts=set(tick["alerts"]),
                            nodes={g.name: tick["nodes"].get(g.name, []) for g in plan.node_groups},
                            live_counts=live)
        nodes: dict[str, tuple[int | None, tuple[str, ...]]] = {}
        services: dict[str, int] = {}
        log: list[str] = []
        for policy in ordered:
            decision, userdata = decide(policy, plan.shared, inputs, states[policy.name],
                                        userdata, scaled_groups=scaled)
            states[policy.name] = decision.state
            log += [f"{policy.target}: {line}" for line in decision.log]
            if decision.error:
                log.append(f"{policy.target}: {decision.reason}")
            if policy.target_kind == "node_group":
                live[policy.target] = groups[policy.target] = decision.desired
                nodes[policy.target] = (decision.desired, tuple(decision.nodes_to_drop))
            else:
                replicas[policy.target] = services[policy.target] = decision.desired
        sides.append(Side(nodes, services, userdata, None, log))
    return sides


def disagreements(micado: list[Side], ours: list[Side]) -> list[int]:
    return [i for i, (m, o) in enumerate(zip(micado, ours, strict=True))
            if m.comparable() != o.comparable()]


def table(case: Case, ticks: list[dict[str, Any]], micado: list[Side],
          ours: list[Side]) -> str:
    """Tick by tick: time, what MiCADO set, what we set, whether they differ (and the ids
    the case declares for that tick)."""
    declared: dict[int, list[str]] = {}
    for ident, where in case.differences.items():
        for i in where:
            declared.setdefault(i, []).append(ident)
    lines = [f"case {case.name}: {case.why}",
             f"{'tick':>4} {'t':>6}  {'MiCADO':<48} {'ours':<48} diff"]
    for i, (tick, m, o) in enumerate(zip(ticks, micado, ours, strict=True)):
        differs = m.comparable() != o.comparable()
        mark = ("DIFF " if differs else "") + ",".join(declared.get(i, []))
        lines.append(f"{i:>4} {tick['now'] - EPOCH:>6g}  {m.brief():<48} {o.brief():<48} {mark}")
        for line in m.log:
            lines.append(f"{'':>13}MiCADO log: {line}")
        for line in o.log:
            lines.append(f"{'':>13}our log: {line}")
    return "\n".join(lines)


def _ids(names: list[str], nodes: list[dict[str, str]]) -> tuple[str, ...]:
    """Node names as IDs (MiCADO's Terraform handler dropped by address; the same node)."""
    by_addr = {n.get("Addr"): n["ID"] for n in nodes}
    return tuple(by_addr.get(name, name) for name in names)


def _canonical(value: Any) -> Any:
    """Userdata as JSON would carry it (3.0 == 3, NaN as text), for comparing both sides."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def _index(groups: list[str], group: str) -> int:
    return groups.index(group) + 1 if group in groups else 0


def _raw_bounds(text: str) -> dict[str, dict[str, Any]]:
    """Each scaling policy's min/max_instances as the ADT wrote them, by target."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for item in (doc.get("topology_template", {}) or {}).get("policies", []) or []:
        for policy in item.values():
            props = policy.get("properties", {}) or {}
            for target in policy.get("targets", []) or []:
                out[target] = props
    return out


def _as_written(compiled: int, raw: Any) -> int | str:
    return str(compiled) if isinstance(raw, str) else compiled
