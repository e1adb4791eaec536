"""A whole controller for tests, built from the real classes over real sockets.

`ControllerEnv` wires a real `Store` (temp SQLite), `Cluster` (official client) talking HTTP to
the fake Kubernetes API server, `PrometheusSource`/`RuleFiles`/`ScrapeTargets` pointed at a
Prometheus (the fake one by default; pass `prometheus_url` for a real one), the
`ControlLoop` and the `AppManager`, exactly as `micado.control.daemon` wires them. Pytest-free, so
fixtures, benchmarks and subprocess tests can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from fakes.kube_api import FakeKubeApi
from fakes.prometheus_api import FakePrometheus
from micado.actuators.kubernetes import Cluster
from micado.actuators.nodes import UnconfiguredNodeActuator
from micado.control.apps import AppManager
from micado.control.loop import ControlLoop
from micado.control.store import Store
from micado.control.telemetry import Telemetry
from micado.sources.prometheus import PrometheusSource, RuleFiles, ScrapeTargets

DATA = Path(__file__).resolve().parent / "data" / "controller"
WEB_ADT = DATA / "web.yaml"


def ready_node(name: str, group: str, address: str = "10.0.0.1", *,
               app: str = "web") -> dict[str, Any]:
    """A Ready node of `app`'s node group `group` (labelled as the README's scheme says)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"micado.eu/node_type": group,
                                                  "micado.eu/app": app}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": address}]}}


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ControllerEnv:
    root: Path
    prometheus_url: str | None = None
    rules_dir: Path | None = None
    targets_dir: Path | None = None
    default_tick: float = 15.0
    clock: Any = None
    kube: FakeKubeApi = field(init=False)
    fake_prometheus: FakePrometheus | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.kube = FakeKubeApi().start()
        if self.prometheus_url is None:
            self.fake_prometheus = FakePrometheus().start()
            self.prometheus_url = self.fake_prometheus.url
        self.rules_dir = self.rules_dir or self.root / "rules"
        self.targets_dir = self.targets_dir or self.root / "targets"
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.open()

    def open(self) -> None:
        """(Re)build every component over the same state file, as a restarted daemon does."""
        options: dict[str, Any] = {} if self.clock is None else {"clock": self.clock}
        self.store = Store(self.root / "state.db", **options)
        self.cluster = Cluster(k8s.ApiClient(k8s.Configuration(host=self.kube.url)),
                               attempts=3, base_delay=0.01, max_delay=0.02, timeout=5)
        self.prometheus = PrometheusSource(str(self.prometheus_url), timeout=2)
        self.telemetry = Telemetry()
        self.nodes = UnconfiguredNodeActuator()
        self.loop = ControlLoop(self.store, self.prometheus, self.cluster, self.nodes,
                                self.telemetry, default_tick=self.default_tick,
                                cache_ttl=0.0, **options)
        self.manager = AppManager(self.store, self.cluster, self.prometheus,
                                  RuleFiles(self.rules_dir), ScrapeTargets(self.targets_dir),
                                  self.nodes, self.loop, default_tick=self.default_tick)

    def close(self) -> None:
        self.store.close()
        self.prometheus.close()
        self.cluster.close()

    def restart(self) -> None:
        self.close()
        self.open()

    def stop(self) -> None:
        self.close()
        self.kube.stop()
        if self.fake_prometheus is not None:
            self.fake_prometheus.stop()

    def replicas(self, name: str, namespace: str = "default") -> int | None:
        obj = self.kube.get("apps", "deployments", namespace, name)
        return None if obj is None else obj["spec"].get("replicas")

    def scale_requests(self) -> int:
        return sum(1 for r in self.kube.requests
                   if r.method == "PATCH" and r.path.endswith("/scale"))

    def tick(self, app_id: str) -> None:
        """Load what changed in the store, then one tick of the app (as the scheduler does)."""
        self.loop.sync()
        self.loop.tick(app_id)
