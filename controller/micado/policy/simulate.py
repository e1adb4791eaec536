"""Closed-loop what-if simulation of an app's scaling policies (`micado simulate`).

A scenario drives the real rule engine (`micado.policy.engine.decide`, real sandbox) against
a small cluster model instead of Prometheus and Kubernetes. Each tick: the model gives its
variables, the scenario turns them into the ADT's query values and firing alerts, node groups
are decided first and their new desired counts put into `live_counts`, then workloads, with
one `m_userdata` threaded through every call (MiCADO's order), and the decisions are applied
to the model.

Scenario file (YAML)::

    description: optional text
    duration: 2400            # seconds simulated (required)
    tick: 15                  # seconds between decisions (default 15)
    cluster:
      vm_boot_seconds: 120          # a new VM is Ready this long after the decision (120)
      container_start_seconds: 15   # a scheduled container is ready this long after (10)
      cpu_per_node: 1.0             # load one node can carry (1.0)
      cpu_per_container: 1.0        # load one container can serve (1.0)
      containers_per_node: 1        # containers one Ready node can hold (default: no limit)
    initial:                  # start sizes by node group / workload name (default: min)
      worker-node: 1
      stressng: 1
    load:                     # piecewise-linear [time, load]; flat before/after the ends
      - [0, 0.3]
      - [300, 2.4]
    queries:                  # every query of the ADT's policies -> expression
      TIME: now
      REQUESTSPERCONT: load / max(ready_containers, 1)
    alerts:                   # alert of the ADT -> condition; the ADT's `for:` is honoured
      node_overloaded: node_cpu_percent > 60

A query expression may also give `no_series` (Prometheus answered with no series: the rule
sees None) or `unanswered` (Prometheus could not answer: the rules reading it hold), e.g.
``COMPLETED: no_series`` or ``LOAD: unanswered if 600 <= now < 900 else load``.

Expressions are arithmetic only (+ - * / // %, comparisons, and/or/not, `a if c else b`,
numbers, min/max/abs, and these names): now, load, nodes, ready_nodes, containers,
ready_containers, pending_containers, served (the load the ready containers can serve:
min(load, ready_containers*cpu_per_container)), container_cpu_percent
(100*load/(ready_containers*cpu_per_container), 0 with no ready container), node_cpu_percent
(100*served/(ready_nodes*cpu_per_node), 0 with no Ready node), cpu_per_node, cpu_per_container.
Counts are totals over all node groups / workloads. They are parsed with `ast` and walked
here; nothing is ever passed to `eval`.

Simplifications: one load shared by the whole app; containers of a workload run on the Ready
nodes of its hosts (any group when it has none), newest removed first on scale in; a removed
VM's containers are rescheduled; metrics have no rate window lag.
"""

from __future__ import annotations

import ast
import html
import itertools
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from micado.adt.model import Plan, ScalingPolicy
from micado.policy.engine import Decision, TargetState, TickInputs, decide, scaled_groups

VARIABLES = (
    "now", "load", "nodes", "ready_nodes", "containers", "ready_containers",
    "pending_containers", "served", "container_cpu_percent", "node_cpu_percent",
    "cpu_per_node", "cpu_per_container",
)
CLUSTER_DEFAULTS: dict[str, float | None] = {
    "vm_boot_seconds": 120.0,
    "container_start_seconds": 10.0,
    "cpu_per_node": 1.0,
    "cpu_per_container": 1.0,
    "containers_per_node": None,
}
TOP_KEYS = ("description", "duration", "tick", "cluster", "initial", "load", "queries",
            "alerts")
MAX_TICKS = 20000
# what a query expression can give besides a number: no series (None), or no answer at all
QUERY_OUTCOMES = ("no_series", "unanswered")
UNANSWERED_WHY = "the scenario says Prometheus could not answer"
MAX_EXPRESSION = 500


class ScenarioError(Exception):
    """A bad scenario, or one that does not fit the ADT: [(key path, message)]."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))
        self.problems = problems


class ExpressionError(ValueError):
    pass


class _Unanswered:
    """The value of `unanswered` in a query expression (not a number: arithmetic on it fails)."""

    def __repr__(self) -> str:
        return "unanswered"


UNANSWERED = _Unanswered()


# --- expressions -----------------------------------------------------------------------

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "abs": abs}


class Expression:
    """A small arithmetic expression over named numbers, checked when built."""

    def __init__(self, text: str | int | float, names: tuple[str, ...] = VARIABLES) -> None:
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            raise ExpressionError("must be an expression (text) or a number")
        self.text = str(text)
        if len(self.text) > MAX_EXPRESSION:
            raise ExpressionError(f"longer than {MAX_EXPRESSION} characters")
        try:
            self._tree = ast.parse(self.text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise ExpressionError(f"not an expression: {exc.msg}") from None
        self._names = names
        self._check(self._tree)

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float):  # bool is an int
                raise ExpressionError(f"only numbers are allowed, not {node.value!r}")
        elif isinstance(node, ast.Name):
            if node.id not in self._names:
                raise ExpressionError(f"unknown name {node.id!r} (known: "
                                      f"{', '.join(self._names)})")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
                raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
            self._check(node.operand)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self._check(value)
        elif isinstance(node, ast.Compare):
            if not all(type(op) in _COMPARE for op in node.ops):
                raise ExpressionError("only < <= > >= == != comparisons are allowed")
            self._check(node.left)
            for value in node.comparators:
                self._check(value)
        elif isinstance(node, ast.IfExp):
            for part in (node.test, node.body, node.orelse):
                self._check(part)
        elif isinstance(node, ast.Call):
            if (not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS
                    or node.keywords or not node.args
                    or any(isinstance(a, ast.Starred) for a in node.args)):
                raise ExpressionError("only min(...), max(...) and abs(...) calls are allowed")
            for arg in node.args:
                self._check(arg)
        else:
            raise ExpressionError(f"{type(node).__name__} is not allowed: only arithmetic, "
                                  "comparisons, numbers, min/max/abs and model names")

    def __call__(self, env: dict[str, Any]) -> Any:
        try:
            return self._eval(self._tree, env)
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        except (TypeError, OverflowError) as exc:
            raise ExpressionError(str(exc)) from None

    def _eval(self, node: ast.AST, env: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self._eval(node.left, env),
                                          self._eval(node.right, env))
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, env)
            if isinstance(node.op, ast.Not):
                return not value
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BoolOp):
            result: Any = isinstance(node.op, ast.And)
            for part in node.values:
                result = self._eval(part, env)
                if isinstance(node.op, ast.And) and not result:
                    return result
                if isinstance(node.op, ast.Or) and result:
                    return result
            return result
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self._eval(right_node, env)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            branch = node.body if self._eval(node.test, env) else node.orelse
            return self._eval(branch, env)
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return _FUNCTIONS[node.func.id](*(self._eval(a, env) for a in node.args))


# --- scenario --------------------------------------------------------------------------


@dataclass
class Scenario:
    duration: float
    tick: float
    cluster: dict[str, float | None]
    initial: dict[str, int]
    load: list[tuple[float, float]]
    queries: dict[str, Expression]
    alerts: dict[str, Expression]
    description: str = ""

    def load_at(self, now: float) -> float:
        points = self.load
        if now <= points[0][0]:
            return points[0][1]
        for (t0, v0), (t1, v1) in itertools.pairwise(points):
            if now <= t1:
                return v1 if t1 == t0 else v0 + (v1 - v0) * (now - t0) / (t1 - t0)
        return points[-1][1]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def parse_scenario(text: str) -> Scenario:
    """Check a scenario document; every problem is reported with its key path."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ScenarioError([("(file)", f"not YAML: {where}"
                              f"{getattr(exc, 'problem', None) or exc}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([("(file)", "must be a mapping with duration, load, queries, ...")])
    problems: list[tuple[str, str]] = []

    def bad(path: str, message: str) -> None:
        problems.append((path, message))

    for key in data:
        if key not in TOP_KEYS:
            bad(str(key), f"unknown key (allowed: {', '.join(TOP_KEYS)})")

    def positive(path: str, value: Any, default: float | None = None) -> float:
        if value is None and default is not None:
            return default
        if not _number(value) or value <= 0:
            bad(path, f"must be a positive number of seconds, got {value!r}")
            return default or 1.0
        return float(value)

    duration = positive("duration", data.get("duration"))
    tick = positive("tick", data.get("tick"), 15.0)
    if not problems and duration / tick > MAX_TICKS:
        bad("duration", f"more than {MAX_TICKS} ticks of {tick:g} s")

    cluster: dict[str, float | None] = dict(CLUSTER_DEFAULTS)
    raw_cluster = data.get("cluster") or {}
    if not isinstance(raw_cluster, dict):
        bad("cluster", "must be a mapping")
        raw_cluster = {}
    for key, value in raw_cluster.items():
        path = f"cluster.{key}"
        if key not in CLUSTER_DEFAULTS:
            bad(path, f"unknown key (allowed: {', '.join(CLUSTER_DEFAULTS)})")
        elif key == "containers_per_node":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                bad(path, f"must be a whole number >= 1 (or null: no limit), got {value!r}")
            else:
                cluster[key] = value
        elif key.startswith("cpu_per"):
            if not _number(value) or value <= 0:
                bad(path, f"must be a positive number, got {value!r}")
            else:
                cluster[key] = float(value)
        elif not _number(value) or value < 0:
            bad(path, f"must be a number of seconds >= 0, got {value!r}")
        else:
            cluster[key] = float(value)

    initial: dict[str, int] = {}
    raw_initial = data.get("initial") or {}
    if not isinstance(raw_initial, dict):
        bad("initial", "must be a mapping of node group / workload name to a count")
        raw_initial = {}
    for key, value in raw_initial.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            bad(f"initial.{key}", f"must be a whole number >= 0, got {value!r}")
        else:
            initial[str(key)] = value

    load: list[tuple[float, float]] = []
    raw_load = data.get("load")
    if not isinstance(raw_load, list) or not raw_load:
        bad("load", "must be a non-empty list of [time, load] points")
        raw_load = []
    for i, point in enumerate(raw_load):
        if (not isinstance(point, list) or len(point) != 2
                or not all(_number(v) for v in point)):
            bad(f"load[{i}]", f"must be a [time, load] pair of numbers, got {point!r}")
        elif load and point[0] < load[-1][0]:
            bad(f"load[{i}][0]", f"time {point[0]!r} is before the previous point's "
                                 f"{load[-1][0]:g}")
        else:
            load.append((float(point[0]), float(point[1])))

    expressions: dict[str, dict[str, Expression]] = {}
    for section in ("queries", "alerts"):
        raw = data.get(section) or {}
        expressions[section] = {}
        if not isinstance(raw, dict):
            bad(section, "must be a mapping of name to expression")
            continue
        for name, text in raw.items():
            try:
                names = VARIABLES + QUERY_OUTCOMES if section == "queries" else VARIABLES
                expressions[section][str(name)] = Expression(text, names)
            except ExpressionError as exc:
                bad(f"{section}.{name}", str(exc))

    description = data.get("description") or ""
    if not isinstance(description, str):
        bad("description", "must be text")
    if problems:
        raise ScenarioError(problems)
    return Scenario(duration=duration, tick=tick, cluster=cluster, initial=initial,
                    load=load, queries=expressions["queries"], alerts=expressions["alerts"],
                    description=str(description))


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([("(file)", str(exc))]) from None
    return parse_scenario(text)


# --- what the ADT expects ----------------------------------------------------------------


def _duration_seconds(value: Any) -> float | None:
    """Prometheus `for:` ("30s", "1m30s", 90) in seconds; None if it does not parse."""
    if value is None:
        return 0.0
    if _number(value):
        return float(value)
    text = str(value).strip()
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def app_signals(plan: Plan) -> tuple[dict[str, str], dict[str, float | None]]:
    """Query names (-> first policy reading it) and alert names (-> `for` seconds) the app's
    policies see, own and borrowed."""
    queries: dict[str, str] = {}
    alerts: dict[str, float | None] = {}
    shared_alerts = {a["alert"]: a for a in plan.shared.alerts if isinstance(a.get("alert"), str)}
    for policy in plan.policies:
        for name in policy.queries:
            queries.setdefault(name, policy.name)
        for alert in policy.alerts:
            if isinstance(alert.get("alert"), str):
                alerts.setdefault(alert["alert"], _duration_seconds(alert.get("for")))
        for name in policy.borrowed:
            if name in plan.shared.queries:
                queries.setdefault(name, policy.name)
            elif name in shared_alerts:
                alerts.setdefault(name, _duration_seconds(shared_alerts[name].get("for")))
    return queries, alerts


def check_against_plan(scenario: Scenario, plan: Plan) -> list[str]:
    """Raise ScenarioError for names that do not fit the ADT; return warnings."""
    queries, alerts = app_signals(plan)
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []
    for name in scenario.queries:
        if name not in queries:
            problems.append((f"queries.{name}", "not a query of the ADT's policies (its "
                             f"queries: {', '.join(queries) or 'none'})"))
    for name, policy in queries.items():
        if name not in scenario.queries:
            problems.append(("queries", f"no expression for {name} (a query of {policy}; "
                                        "`no_series` models one without data)"))
    for name in scenario.alerts:
        if name not in alerts:
            problems.append((f"alerts.{name}", "not an alert of the ADT's policies (its "
                             f"alerts: {', '.join(alerts) or 'none'})"))
    for name, hold in alerts.items():
        if name not in scenario.alerts:
            warnings.append(f"alerts: no expression for {name}: it never fires")
        if hold is None:
            warnings.append(f"alert {name}: its `for` does not parse; taken as 0 s")
    targets = {g.name for g in plan.node_groups} | {w.node for w in plan.workloads}
    for name in scenario.initial:
        if name not in targets:
            problems.append((f"initial.{name}", "not a node group or workload of the ADT "
                             f"(its: {', '.join(sorted(targets)) or 'none'})"))
    if problems:
        raise ScenarioError(problems)
    return warnings


# --- the cluster model -------------------------------------------------------------------


@dataclass
class _Node:
    id: str
    group: str
    addr: str
    ready_at: float


@dataclass
class _Container:
    workload: str
    seq: int
    node: str | None = None
    ready_at: float | None = None


class ClusterModel:
    def __init__(self, plan: Plan, scenario: Scenario) -> None:
        self.cluster = scenario.cluster
        self.groups = [g.name for g in plan.node_groups]
        self.workloads = [w.node for w in plan.workloads]
        self.hosts = {w.node: list(w.hosts) for w in plan.workloads}
        self.nodes: list[_Node] = []
        self.containers: list[_Container] = []
        self._seq = 0
        minimum = {p.target: p.min_instances for p in plan.policies}
        for group in plan.node_groups:
            count = scenario.initial.get(group.name, minimum.get(group.name,
                                                                 group.min_instances))
            self.add_nodes(group.name, count, ready_at=0.0)
        for workload in self.workloads:
            count = scenario.initial.get(workload, minimum.get(workload, 1))
            self.add_containers(workload, count)
        self.schedule(0.0, start=0.0)

    def add_nodes(self, group: str, count: int, ready_at: float) -> None:
        index = self.groups.index(group)
        for _ in range(count):
            self._seq += 1
            self.nodes.append(_Node(f"{group}-{self._seq}", group,
                                    f"10.{index // 256}.{index % 256}.{self._seq}", ready_at))

    def remove_nodes(self, group: str, count: int, chosen: list[str]) -> None:
        mine = [n for n in self.nodes if n.group == group]
        # the rule's choice first, then VMs still booting, then the newest
        order = ([n for n in mine if n.id in chosen]
                 + sorted((n for n in mine if n.id not in chosen),
                          key=lambda n: (-n.ready_at, -self.nodes.index(n))))
        gone = {n.id for n in order[:count]}
        self.nodes = [n for n in self.nodes if n.id not in gone]
        for container in self.containers:
            if container.node in gone:
                container.node, container.ready_at = None, None

    def add_containers(self, workload: str, count: int) -> None:
        for _ in range(count):
            self._seq += 1
            self.containers.append(_Container(workload, self._seq))

    def remove_containers(self, workload: str, count: int) -> None:
        mine = [c for c in self.containers if c.workload == workload]
        order = sorted(mine, key=lambda c: (c.node is not None,
                                            -(c.ready_at if c.ready_at is not None else 0),
                                            -c.seq))
        gone = {id(c) for c in order[:count]}
        self.containers = [c for c in self.containers if id(c) not in gone]

    def schedule(self, now: float, start: float | None = None) -> None:
        """Place pending containers on Ready nodes with room (least used node first)."""
        limit = self.cluster["containers_per_node"]
        started = now + (self.cluster["container_start_seconds"] or 0.0) if start is None \
            else start
        used: dict[str, int] = {}
        for container in self.containers:
            if container.node is not None:
                used[container.node] = used.get(container.node, 0) + 1
        for container in self.containers:
            if container.node is not None:
                continue
            hosts = self.hosts.get(container.workload) or self.groups
            free = [n for n in self.nodes if n.ready_at <= now and n.group in hosts
                    and (limit is None or used.get(n.id, 0) < limit)]
            if not free:
                continue
            node = min(free, key=lambda n: (used.get(n.id, 0), self.nodes.index(n)))
            container.node, container.ready_at = node.id, started
            used[node.id] = used.get(node.id, 0) + 1

    def ready_nodes(self, now: float, group: str | None = None) -> list[_Node]:
        return [n for n in self.nodes if n.ready_at <= now and (group is None
                                                               or n.group == group)]

    def counts(self, now: float) -> tuple[dict[str, tuple[int, int]],
                                          dict[str, tuple[int, int]]]:
        nodes = {g: (sum(n.group == g for n in self.nodes), len(self.ready_nodes(now, g)))
                 for g in self.groups}
        containers = {w: (sum(c.workload == w for c in self.containers),
                          sum(c.workload == w and c.ready_at is not None and c.ready_at <= now
                              for c in self.containers))
                      for w in self.workloads}
        return nodes, containers

    def variables(self, now: float, load: float) -> dict[str, float]:
        nodes, containers = self.counts(now)
        ready_nodes = sum(r for _, r in nodes.values())
        ready_containers = sum(r for _, r in containers.values())
        total_containers = sum(d for d, _ in containers.values())
        per_node = float(self.cluster["cpu_per_node"] or 1.0)
        per_container = float(self.cluster["cpu_per_container"] or 1.0)
        served = min(load, ready_containers * per_container)
        return {
            "now": now, "load": load,
            "nodes": sum(d for d, _ in nodes.values()), "ready_nodes": ready_nodes,
            "containers": total_containers, "ready_containers": ready_containers,
            "pending_containers": total_containers - ready_containers,
            "served": served,
            "container_cpu_percent": (100.0 * load / (ready_containers * per_container)
                                      if ready_containers else 0.0),
            "node_cpu_percent": 100.0 * served / (ready_nodes * per_node) if ready_nodes
            else 0.0,
            "cpu_per_node": per_node, "cpu_per_container": per_container,
        }


# --- the loop ----------------------------------------------------------------------------


@dataclass
class Row:
    time: float
    load: float
    nodes: dict[str, tuple[int, int]]  # group -> (desired, ready) at the end of the tick
    containers: dict[str, tuple[int, int]]  # workload -> (desired, ready)
    queries: dict[str, float | None]  # answered queries (None: no series)
    alerts: list[str]  # firing
    reasons: list[str]  # "target: reason" of decisions that changed something or failed
    changed: bool  # a size, a ready count, a firing alert or a decision changed


@dataclass
class SimulationResult:
    rows: list[Row]
    peak: dict[str, int]  # target -> highest desired size
    final: dict[str, int]  # target -> desired size at the end
    peak_ready: dict[str, int]
    final_ready: dict[str, int]
    decisions: int  # decisions that changed a size
    errors: int  # rule errors
    warnings: list[str] = field(default_factory=list)


def simulate(plan: Plan, scenario: Scenario, *, timeout: float = 1.0,
             evaluate: Callable[..., Any] | None = None) -> SimulationResult:
    warnings = check_against_plan(scenario, plan)
    _, alert_for = app_signals(plan)
    model = ClusterModel(plan, scenario)
    node_policies = [p for p in plan.policies if p.target_kind == "node_group"]
    workload_policies = [p for p in plan.policies if p.target_kind == "workload"]
    states: dict[str, TargetState] = {p.name: TargetState() for p in plan.policies}
    userdata: Any = None
    pending_since: dict[str, float] = {}
    rows: list[Row] = []
    decisions = errors = 0
    extra = {"evaluate": evaluate} if evaluate is not None else {}
    steps = math.floor(scenario.duration / scenario.tick + 1e-9)
    previous: tuple[Any, ...] | None = None

    for step in range(steps + 1):
        now = step * scenario.tick
        model.schedule(now)
        load = scenario.load_at(now)
        env = model.variables(now, load)
        outcomes = {**env, "no_series": None, "unanswered": UNANSWERED}
        query_values: dict[str, float | None] = {}
        failed: dict[str, str] = {}
        for name, expression in scenario.queries.items():
            value = _value(f"queries.{name}", expression, outcomes, now)
            if value is UNANSWERED:
                failed[name] = UNANSWERED_WHY
            else:
                query_values[name] = value
        firing: set[str] = set()
        for name, expression in scenario.alerts.items():
            if _value(f"alerts.{name}", expression, env, now):
                since = pending_since.setdefault(name, now)
                if now - since >= (alert_for.get(name) or 0.0):
                    firing.add(name)
            else:
                pending_since.pop(name, None)

        live = {g: d for g, (d, _) in model.counts(now)[0].items()}
        live.update({w: d for w, (d, _) in model.counts(now)[1].items()})
        ready = {g: [{"ID": n.id, "Addr": n.addr} for n in model.ready_nodes(now, g)]
                 for g in model.groups}
        reasons: list[str] = []
        any_decision = False
        for policies in (node_policies, workload_policies):
            made: list[tuple[ScalingPolicy, Decision]] = []
            for policy in policies:
                inputs = TickInputs(now=now, query_results=dict(query_values),
                                    firing_alerts=set(firing), nodes=ready,
                                    live_counts=dict(live), failed_queries=dict(failed))
                decision, userdata = decide(policy, plan.shared, inputs, states[policy.name],
                                            userdata, timeout=timeout, **extra,
                                            scaled_groups=scaled_groups(plan))
                states[policy.name] = decision.state
                made.append((policy, decision))
                if policy.target_kind == "node_group":
                    live[policy.target] = decision.desired
            for policy, decision in made:
                _apply(model, policy, decision, now)
                live[policy.target] = decision.desired
                if decision.changed or decision.error:
                    reasons.append(f"{policy.target}: {decision.reason}")
                    any_decision = True
                decisions += decision.changed
                errors += decision.error is not None
        model.schedule(now)
        nodes, containers = model.counts(now)
        snapshot = (nodes, containers, sorted(firing))
        rows.append(Row(time=now, load=load, nodes=nodes, containers=containers,
                        queries=query_values, alerts=sorted(firing), reasons=reasons,
                        changed=previous is None or any_decision or snapshot != previous))
        previous = snapshot

    peak: dict[str, int] = {}
    peak_ready: dict[str, int] = {}
    for row in rows:
        for name, (desired, ready_count) in {**row.nodes, **row.containers}.items():
            peak[name] = max(peak.get(name, 0), desired)
            peak_ready[name] = max(peak_ready.get(name, 0), ready_count)
    last = {**rows[-1].nodes, **rows[-1].containers}
    return SimulationResult(rows=rows, peak=peak, final={k: v[0] for k, v in last.items()},
                            peak_ready=peak_ready, final_ready={k: v[1] for k, v in last.items()},
                            decisions=decisions, errors=errors, warnings=warnings)


def _value(path: str, expression: Expression, env: dict[str, Any], now: float) -> Any:
    try:
        return expression(env)
    except ExpressionError as exc:
        raise ScenarioError([(path, f"at t={now:g} s: {exc}")]) from None


def _apply(model: ClusterModel, policy: ScalingPolicy, decision: Decision, now: float) -> None:
    if policy.target_kind == "node_group":
        have = sum(n.group == policy.target for n in model.nodes)
        if decision.desired > have:
            model.add_nodes(policy.target, decision.desired - have,
                            ready_at=now + (model.cluster["vm_boot_seconds"] or 0.0))
        elif decision.desired < have:
            model.remove_nodes(policy.target, have - decision.desired, decision.nodes_to_drop)
    else:
        have = sum(c.workload == policy.target for c in model.containers)
        if decision.desired > have:
            model.add_containers(policy.target, decision.desired - have)
        elif decision.desired < have:
            model.remove_containers(policy.target, have - decision.desired)


# --- output ------------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def table_lines(result: SimulationResult, *, all_rows: bool = False) -> list[str]:
    """One line per tick where something changed, then a summary line."""
    if not result.rows:
        return []
    first = result.rows[0]
    names = list(first.nodes) + list(first.containers)
    widths = [max(len(n), 5) for n in names]
    header = (f"{'time':>6}  {'load':>8}  "
              + "  ".join(f"{n:<{w}}" for n, w in zip(names, widths, strict=True))
              + "  alerts / decisions")
    lines = [header]
    for row in result.rows:
        if not (row.changed or all_rows):
            continue
        sizes = {**row.nodes, **row.containers}
        cells = "  ".join(f"{f'{sizes[n][0]}/{sizes[n][1]}':<{w}}"
                          for n, w in zip(names, widths, strict=True))
        notes = (f"[{', '.join(row.alerts)}]" if row.alerts else "[]")
        if row.reasons:
            notes += " " + "; ".join(row.reasons)
        lines.append(f"{_clock(row.time):>6}  {row.load:>8.3g}  {cells}  {notes}")
    lines.append(summary_line(result))
    return lines


def summary_line(result: SimulationResult) -> str:
    parts = ", ".join(f"{name} final {result.final[name]} (peak {result.peak[name]})"
                      for name in result.final)
    return (f"summary: {parts}; {len(result.rows)} ticks, {result.decisions} scaling "
            f"decision{'s' if result.decisions != 1 else ''}, {result.errors} rule error"
            f"{'s' if result.errors != 1 else ''}")


_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def svg_plot(result: SimulationResult, width: int = 900, height: int = 360) -> str:
    """Load (right axis) and desired/ready sizes (left axis, steps) over time."""
    rows = result.rows
    left, right, top, bottom = 50, 60, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    t_max = max(rows[-1].time, 1.0)
    count_max = max([1, *result.peak.values(), *result.peak_ready.values()]) + 1
    load_max = max(max(r.load for r in rows), 1e-9) * 1.1

    def x(t: float) -> float:
        return left + plot_w * t / t_max

    def y_count(c: float) -> float:
        return top + plot_h * (1 - c / count_max)

    def y_load(v: float) -> float:
        return top + plot_h * (1 - v / load_max)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
             'stroke="#999"/>']
    for c in range(count_max + 1):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y_count(c):.1f}" '
                     f'y2="{y_count(c):.1f}" stroke="#e4e4e4"/>'
                     f'<text x="{left - 6}" y="{y_count(c) + 4:.1f}" text-anchor="end">{c}'
                     '</text>')
    for i in range(5):
        v = load_max * i / 4
        parts.append(f'<text x="{left + plot_w + 6}" y="{y_load(v) + 4:.1f}">{v:.3g}</text>')
    for i in range(7):
        t = t_max * i / 6
        parts.append(f'<text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                     f'{_clock(t)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">'
                 'time (m:ss)</text>'
                 f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 '
                 f'{top + plot_h / 2})" text-anchor="middle">instances</text>'
                 f'<text x="{width - 8}" y="{top + plot_h / 2}" transform="rotate(90 '
                 f'{width - 8} {top + plot_h / 2})" text-anchor="middle">load</text>')
    load_points = " ".join(f"{x(r.time):.1f},{y_load(r.load):.1f}" for r in rows)
    parts.append(f'<polyline fill="none" stroke="#888" stroke-width="2" '
                 f'points="{load_points}"/>')
    legend = [("load", "#888", "")]
    names = list(rows[0].nodes) + list(rows[0].containers)
    for i, name in enumerate(names):
        colour = _COLOURS[i % len(_COLOURS)]
        for which, dash in ((0, ' stroke-dasharray="5,3"'), (1, "")):
            points: list[str] = []
            for j, row in enumerate(rows):
                value = {**row.nodes, **row.containers}[name][which]
                if j:
                    points.append(f"{x(row.time):.1f},{float(points[-1].split(',')[1]):.1f}")
                points.append(f"{x(row.time):.1f},{y_count(value):.1f}")
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} '
                         f'points="{" ".join(points)}"/>')
        legend.append((f"{name} ready (dashed: desired)", colour, ""))
    lx = left + 10
    for label, colour, _ in legend:
        parts.append(f'<line x1="{lx}" x2="{lx + 20}" y1="{top + 12}" y2="{top + 12}" '
                     f'stroke="{colour}" stroke-width="3"/><text x="{lx + 24}" '
                     f'y="{top + 16}">{html.escape(label)}</text>')
        lx += 40 + 7 * len(label)  # room for the text at the plot's font size
    parts.append("</svg>")
    return "\n".join(parts)


def html_report(result: SimulationResult, *, title: str, description: str = "") -> str:
    rows = result.rows
    names = list(rows[0].nodes) + list(rows[0].containers)
    head = "".join(f"<th>{html.escape(n)}<br><small>desired/ready</small></th>" for n in names)
    body: list[str] = []
    for row in rows:
        if not row.changed:
            continue
        sizes = {**row.nodes, **row.containers}
        cells = "".join(f"<td>{sizes[n][0]}/{sizes[n][1]}</td>" for n in names)
        body.append(f"<tr><td>{_clock(row.time)}</td><td>{row.load:.3g}</td>{cells}"
                    f"<td>{html.escape(', '.join(row.alerts))}</td>"
                    f"<td>{'<br>'.join(html.escape(r) for r in row.reasons)}</td></tr>")
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #eee; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(description)}</p>
{svg_plot(result)}
<p>{html.escape(summary_line(result))}</p>
{f"<ul>{warnings}</ul>" if warnings else ""}
<table><thead><tr><th>time</th><th>load</th>{head}<th>firing alerts</th><th>decisions</th>
</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
