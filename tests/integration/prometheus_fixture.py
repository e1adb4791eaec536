"""A real Prometheus (Debian package binary) and a tiny exporter, as plain processes.

Import the fixtures into a test module (``from prometheus_fixture import prometheus, ...``).
They are not in a ``tests/integration/conftest.py`` on purpose: the suite imports helpers with
``from conftest import prerequisite``, and a second module named ``conftest`` would shadow
``tests/conftest.py`` for every module collected after it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from conftest import prerequisite

START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# how long wait_until(slowest=...) keeps looking every `interval` s
QUICK_SECONDS = 5.0


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2,
               slowest: float | None = None) -> Any:
    """Poll until `predicate` returns a truthy value or `timeout` passes; its last value.
    Every `interval` s; with `slowest`, only for the first QUICK_SECONDS, then half as often
    again at each look, down to every `slowest` s: what a test waits minutes for (a cloud
    operation, a backoff) needs no look ten times a second, and each look costs the process
    that answers it CPU the other tests on the machine are short of."""
    started = time.monotonic()
    deadline = started + timeout
    pause = interval
    while True:
        value = predicate()
        now = time.monotonic()
        if value or now >= deadline:
            return value
        if slowest is not None and now - started > QUICK_SECONDS:
            pause = min(max(pause * 1.5, interval), slowest)
        time.sleep(min(pause, max(deadline - now, 0.0)))


class Exporter:
    """Gauges served in the Prometheus text format on a loopback port; values set by the test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._gauges[(name, tuple(sorted(labels.items())))] = float(value)

    def render(self) -> str:
        with self._lock:
            items = sorted(self._gauges.items())
        lines = []
        for (name, labels), value in items:
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{text}}} {value!r}")
        return "\n".join(lines) + "\n"

    def start(self) -> Exporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class PrometheusServer:
    """One Prometheus process with its own config, rules and file-SD directories."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rules_dir(self) -> Path:
        return self.root / "rules"

    @property
    def sd_dir(self) -> Path:
        return self.root / "targets"

    def write_config(self) -> Path:
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        self.sd_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.rules_dir / "*.yml")],
            "scrape_configs": [
                {
                    "job_name": "micado-apps",
                    "file_sd_configs": [
                        {"files": [str(self.sd_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        path = self.root / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> PrometheusServer:
        config = self.write_config()
        log = (self.root / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if not wait_until(self._ready, START_TIMEOUT, 0.05):
            self.stop()
            tail = (self.root / "prometheus.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"prometheus did not become ready on {self.url}:\n{tail}", pytrace=False)
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            return True  # exited: stop polling; start() reports it
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        terminate(self.process)


def terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM a server process we started, SIGKILL if it does not go within 10 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def require_prometheus() -> None:
    prerequisite(shutil.which("prometheus") is not None, "Debian package prometheus")
    prerequisite(shutil.which("promtool") is not None, "promtool (Debian package prometheus)")


@pytest.fixture(scope="session")
def exporter() -> Iterator[Exporter]:
    server = Exporter().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_prometheus()
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus")).start()
    yield server
    server.stop()


@pytest.fixture
def doomed_prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus of its own, for a test that kills it."""
    require_prometheus()
    server = PrometheusServer(tmp_path).start()
    yield server
    server.stop()
