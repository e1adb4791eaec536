"""Shared parts of the controller benchmarks: processes, Prometheus, the daemon, /proc figures.

Everything the benchmarks start is a `Processes` member, stopped (SIGTERM, then SIGKILL after a
grace period) in reverse order when the `with` block ends, whatever happened inside it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "bench"
HERE = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
               what: str = "a condition") -> Any:
    """Poll `predicate` until it returns a truthy value; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def fresh_dir(path: Path) -> Path:
    """An empty directory at `path` (its old contents removed)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- processes ---------------------------------------------------------------------------------


class Processes:
    """Subprocesses stopped in reverse order on exit: SIGTERM, then SIGKILL after `grace` s."""

    def __init__(self, grace: float = 10.0) -> None:
        self.grace = grace
        self.started: list[tuple[str, subprocess.Popen[Any]]] = []

    def start(self, name: str, argv: list[str], log: Path | None = None,
              **options: Any) -> subprocess.Popen[Any]:
        """Start `argv`; stdout and stderr go to `log` unless `options` say otherwise."""
        if log is not None:
            with log.open("wb") as handle:
                options.setdefault("stdout", handle)
                options.setdefault("stderr", subprocess.STDOUT)
                process = subprocess.Popen(argv, **options)
        else:
            process = subprocess.Popen(argv, **options)
        self.started.append((name, process))
        return process

    def stop(self, process: subprocess.Popen[Any]) -> int | None:
        """Stop one process (terminate, wait, kill); its exit code."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.grace)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        return process.returncode

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for _name, process in reversed(self.started):
            self.stop(process)


def start_fake_kube(procs: Processes, work: Path, *, fake_prometheus: bool = False) -> str:
    """The fake Kubernetes API (or, with `fake_prometheus`, the fake Prometheus) in a process
    of its own; its URL."""
    name = "fake-prometheus" if fake_prometheus else "fake-kube"
    argv = [sys.executable, str(HERE / "fake_kube_server.py")]
    if fake_prometheus:
        argv.append("--fake-prometheus")
    with (work / f"{name}.log").open("wb") as log:
        process = procs.start(name, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=log, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        raise RuntimeError(f"{name} did not start; see {work / f'{name}.log'}")
    return url


def kube_requests(url: str, since: int = 0, method: str | None = None,
                  contains: str = "") -> tuple[int, list[tuple[str, str, float]]]:
    """Requests the fake Kubernetes API received from index `since`: (next index, rows)."""
    params: dict[str, Any] = {"since": since, "contains": contains}
    if method:
        params["method"] = method
    data = requests.get(f"{url}/_bench/requests", params=params, timeout=10).json()
    return data["next"], [(m, p, float(at)) for m, p, at in data["requests"]]


# --- Prometheus --------------------------------------------------------------------------------


@dataclass
class Prometheus:
    url: str
    rules_dir: Path
    targets_dir: Path
    fake: bool
    pid: int


def start_prometheus(procs: Processes, work: Path, *, scrape_interval: str = "1s",
                     evaluation_interval: str = "1s",
                     static_jobs: dict[str, list[str]] | None = None,
                     force_fake: bool = False) -> Prometheus:
    """Debian's `prometheus` binary with a rules and a file-SD directory (job `micado-apps`),
    plus `static_jobs`; the fake Prometheus API when the binary is missing or `force_fake`."""
    rules_dir, targets_dir = work / "rules", work / "targets"
    rules_dir.mkdir(parents=True, exist_ok=True)
    targets_dir.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("prometheus")
    if force_fake or binary is None:
        url = start_fake_kube(procs, work, fake_prometheus=True)
        return Prometheus(url, rules_dir, targets_dir, True, procs.started[-1][1].pid)
    scrape_configs: list[dict[str, Any]] = [
        {"job_name": "micado-apps",
         "file_sd_configs": [{"files": [str(targets_dir / "*.json")], "refresh_interval": "1s"}]}]
    for job, targets in (static_jobs or {}).items():
        scrape_configs.append({"job_name": job, "static_configs": [{"targets": targets}]})
    config = {"global": {"scrape_interval": scrape_interval,
                         "evaluation_interval": evaluation_interval},
              "rule_files": [str(rules_dir / "*.yml")],
              "scrape_configs": scrape_configs}
    (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    process = procs.start("prometheus", [
        binary, f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", "--log.level=warn",
    ], log=work / "prometheus.log")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited; see {work / 'prometheus.log'}")
        try:
            return requests.get(f"{url}/-/ready", timeout=1).ok
        except requests.RequestException:
            return False

    wait_until(ready, START_TIMEOUT, 0.05, "Prometheus to be ready")
    return Prometheus(url, rules_dir, targets_dir, False, process.pid)


class Exporter:
    """A Prometheus text-format endpoint on a loopback port; `render()` gives the body."""

    def __init__(self, render: Callable[[], str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Exporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the daemon --------------------------------------------------------------------------------


@dataclass
class Daemon:
    """A running `micado controller run` and an authenticated session to its API."""

    process: subprocess.Popen[Any]
    url: str
    session: requests.Session
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def submit(self, adt: str, app_id: str) -> dict[str, Any]:
        """POST /v1/apps; the answer, or RuntimeError with the controller's message."""
        response = self.session.post(f"{self.url}/v1/apps",
                                     json={"adt": adt, "app_id": app_id}, timeout=120)
        if response.status_code != 201:
            raise RuntimeError(f"submitting {app_id}: HTTP {response.status_code}: "
                               f"{response.text[:2000]}")
        return response.json()

    def metrics(self) -> dict[str, float]:
        """The daemon's /metrics, each sample name summed over its labels."""
        text = self.session.get(f"{self.url}/metrics", timeout=30).text
        totals: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name_labels, _, value = line.rpartition(" ")
            name = name_labels.split("{", 1)[0]
            try:
                totals[name] = totals.get(name, 0.0) + float(value)
            except ValueError:
                continue
        return totals


def micado_command() -> list[str]:
    """The `micado` entry point of this interpreter's environment."""
    script = Path(sys.executable).parent / "micado"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from micado.cli.main import main; main()"]


def start_daemon(procs: Processes, work: Path, *, kube_url: str, prometheus: Prometheus,
                 tick: float, log_level: str = "warning") -> Daemon:
    """Write a kubeconfig and the daemon's config for the given servers, start the daemon and
    wait until its API answers."""
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": kube_url}}],
        "users": [{"name": "bench", "user": {"token": "bench"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "bench"}}],
    }
    (work / "kubeconfig").write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "state": str(work / "state" / "state.db"),
        "token_file": str(work / "state" / "api-token"),
        "tick_seconds": tick,
        "log_level": log_level,
        "prometheus": {"url": prometheus.url, "rules_dir": str(prometheus.rules_dir),
                       "targets_dir": str(prometheus.targets_dir)},
        "kubernetes": {"kubeconfig": str(work / "kubeconfig")},
    }
    (work / "controller.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    log = work / "controller.log"
    process = procs.start("controller", [*micado_command(), "controller", "run", "--config",
                                         str(work / "controller.yaml")], log=log)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the controller exited ({process.returncode}); see {log}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    wait_until(healthy, START_TIMEOUT, 0.05, "the controller's API")
    token = (work / "state" / "api-token").read_text().strip()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return Daemon(process, url, session, log)


# --- /proc -------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of a process tree: utime + stime of each live member, plus cutime + cstime
    (children that ended and were reaped inside the tree)."""
    total = 0
    for member in descendants(pid):
        fields = _stat_fields(member)
        if fields is not None:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of /proc/<pid>/status (VmRSS, VmHWM) in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """VmRSS of `pid` and its descendants, summed (shared pages counted in each)."""
    return sum(rss_mb(member) for member in descendants(pid))


def pss_mb(pid: int) -> float:
    """Proportional set size (shared pages split between the processes sharing them) in MiB."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_pss_mb(pid: int) -> float:
    """PSS of `pid` and its descendants: their real joint footprint, shared pages once."""
    return sum(pss_mb(member) for member in descendants(pid))


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": sys.version.split()[0],
            "load_average": os.getloadavg()}


def save_json(name: str, data: dict[str, Any]) -> Path:
    """Write `data` to build/bench/<name>.json; the path."""
    BUILD.mkdir(parents=True, exist_ok=True)
    path = BUILD / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path

