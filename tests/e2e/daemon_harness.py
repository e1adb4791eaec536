"""The controller as users run it: `micado controller run --config FILE` in its own process,
driven through its REST API and the `micado` CLI, against a Kubernetes API served over HTTP
(the fake server, in this test process; or a real API server through `kubeconfig`, see
tests/kube/) and a real Prometheus.

Not a conftest (see tests/integration/prometheus_fixture.py for why): test modules import it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from integration.prometheus_fixture import free_port, wait_until

START_TIMEOUT = 120.0  # a loaded shared machine takes > 30 s to import and start it


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "controller", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "controller"}}],
        "current-context": "test",
    }))
    path.chmod(0o600)
    return path


@dataclass
class Daemon:
    """One controller process over a state directory that outlives it (for restarts)."""

    root: Path
    kube_url: str
    prometheus_url: str
    rules_dir: Path
    targets_dir: Path
    tick_seconds: float = 2.0
    port: int = field(default_factory=free_port)
    write_kubeconfig: bool = True  # False: the kubeconfig does not exist (k3s not started)
    nodes: dict[str, Any] | None = None  # the config's `nodes:` section (the VM actuator)
    env: dict[str, str] = field(default_factory=dict)  # added to the process's environment
    kubeconfig: Path | None = None  # a real cluster's (kube_url unused): used as it is
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_file(self) -> Path:
        return self.root / "state" / "api-token"

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    @property
    def log(self) -> Path:
        return self.root / f"controller-{self.starts}.log"

    def kubeconfig_file(self) -> Path:
        if self.kubeconfig is not None:
            return self.kubeconfig
        if not self.write_kubeconfig:
            return self.root / "missing-kubeconfig"
        return write_kubeconfig(self.root / "kubeconfig", self.kube_url)

    def write_config(self) -> Path:
        config = {
            "listen": f"127.0.0.1:{self.port}",
            "state": "state/state.db",
            "token_file": "state/api-token",
            "tick_seconds": self.tick_seconds,
            "prometheus": {"url": self.prometheus_url, "timeout": 2,
                           "rules_dir": str(self.rules_dir),
                           "targets_dir": str(self.targets_dir)},
            "kubernetes": {"kubeconfig": str(self.kubeconfig_file()), "attempts": 3},
        }
        if self.nodes is not None:
            config["nodes"] = self.nodes
        path = self.root / "controller.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> Daemon:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.write_config()
        self.starts += 1
        # its temporary files (ansible's module payloads too, which a kill -9 leaves) in the
        # test's directory, not in the machine's /tmp
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "micado", "controller", "run", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp), **self.env})
        if not wait_until(self._ready, START_TIMEOUT, 0.1):
            self.kill()
            raise AssertionError(f"the controller did not start:\n{self.log.read_text()}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the controller exited with {self.process.returncode}:\n"
                                 f"{self.log.read_text()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, and the exit code (the test asserts it is 0)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the controller did not stop on SIGTERM") from None

    def kill(self) -> None:
        """kill -9: no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30,
                                **kwargs)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "micado", *args, "--endpoint", self.url,
             "--token-file", str(self.token_file)],
            capture_output=True, text=True, timeout=60, check=False)

    def ticks(self) -> int:
        """Ticks the daemon has finished (its own /metrics)."""
        metrics = self.api("GET", "/metrics").text
        counts = [line.split()[-1] for line in metrics.splitlines()
                  if line.startswith("micado_tick_seconds_count")]
        return int(float(counts[0])) if counts else 0

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = self.api("GET", "/v1/events", params={"limit": 1000}).json()["events"]
        return [e for e in found if kind is None or e["kind"] == kind]


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1,
             slowest: float = 1.0) -> Any:
    """Poll every `interval` s for a few seconds, then less often, down to every `slowest` s
    (prometheus_fixture.wait_until): a wait of minutes at ten looks a second kept the daemon
    answering /v1/events and the cloud listing its VMs for more CPU than the scenario itself
    used. A wait that must act the moment something shows (a kill at a runner step) passes
    slowest=interval."""
    value = wait_until(predicate, timeout, interval, slowest)
    if not value:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
    return value


def now() -> float:
    return time.time()
