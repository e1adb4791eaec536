"""The controller's own metrics, served at ``GET /metrics`` in the Prometheus text format.

One `Telemetry` per controller, each with its own `CollectorRegistry` (no global registry), so
tests and several controllers in one process never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

RULE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Telemetry:
    """Counters and gauges the control loop and the lifecycle update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.evaluations = Counter(
            "micado_rule_evaluations", "Scaling rule evaluations by outcome (ok, error, held)",
            ["app", "outcome"], registry=r)
        self.evaluation_seconds = Histogram(
            "micado_rule_evaluation_seconds", "Time to evaluate one scaling rule",
            buckets=RULE_BUCKETS, registry=r)
        self.tick_seconds = Histogram(
            "micado_tick_seconds", "Time for one app tick: inputs, rules, actions, state",
            buckets=TICK_BUCKETS, registry=r)
        self.decisions = Counter(
            "micado_decisions", "Decisions by direction (out, in, hold) and target kind",
            ["app", "kind", "direction"], registry=r)
        self.actions = Counter(
            "micado_actions", "Scaling actions performed, by actuator",
            ["app", "actuator"], registry=r)
        self.actuator_errors = Counter(
            "micado_actuator_errors", "Failed actuator calls (kubernetes, nodes)",
            ["actuator"], registry=r)
        self.input_failures = Counter(
            "micado_input_failures", "Ticks held because an input was unavailable",
            ["source"], registry=r)
        self.rule_violations = Counter(
            "micado_rule_violations",
            "Scaling rules stopped by the sandbox or failing (by error kind)",
            ["app", "kind"], registry=r)
        self.pending_operations = Gauge(
            "micado_pending_operations", "Node-group operations recorded and not finished",
            registry=r)
        self.apps = Gauge("micado_apps", "Apps by status", ["status"], registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def forget_app(self, app_id: str) -> None:
        """Drop a deleted app's series so /metrics does not grow with every app ever run."""
        for family in (self.evaluations, self.decisions, self.actions, self.rule_violations):
            for labels in list(family._metrics):  # prometheus_client has no public iteration
                if labels and labels[0] == app_id:
                    family.remove(*labels)
