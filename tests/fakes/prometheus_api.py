"""A small fake of Prometheus's HTTP API on 127.0.0.1 (stdlib `http.server`), for fast tests.

Speaks the shapes `prometheus-api-client` and `micado.sources.prometheus` read:
`/api/v1/query` (GET or form POST; the value a test set for that exact expression, else an
empty vector), `/api/v1/alerts`, `/api/v1/rules`, `/-/healthy`, `/-/ready` and `/-/reload`
(counted).
`down = True` makes every request fail with 503, as an unhealthy server would; `fail(expr, ...)`
makes one expression fail as Prometheus reports a PromQL error, and `delay` answers every query
that many seconds late (a slow server).

The integration tests use a real Prometheus; this fake is for the control loop's unit tests,
where a test needs exact values at exact ticks without waiting for scrapes and rule
evaluation.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakePrometheus:
    def __init__(self) -> None:
        self.values: dict[str, float | list[dict[str, str]]] = {}
        self.firing: dict[str, set[str]] = {}  # app id -> firing alert names
        self.rule_errors: dict[str, dict[str, str]] = {}  # app id -> alert -> lastError
        self.down = False
        self.reloads = 0
        self.queries: list[str] = []
        self.errors: dict[str, tuple[int, str, str]] = {}  # expr -> (status, errorType, error)
        self.delay = 0.0  # seconds each query waits before it is answered
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakePrometheus:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                status, payload = fake.handle(self.command, self.path, body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a `delay` beyond its timeout)

            do_GET = _reply
            do_POST = _reply

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakePrometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def set(self, expr: str, value: float | list[dict[str, str]] | None) -> None:
        """The result of `expr`: a number (one sample), label sets (one sample each) or
        None (an empty vector)."""
        with self._lock:
            if value is None:
                self.values.pop(expr, None)
            else:
                self.values[expr] = value

    def fail(self, expr: str, status: int = 400, error_type: str = "bad_data",
             error: str = "parse error") -> None:
        """From now on `expr` gets Prometheus's error answer (e.g. 422 "execution")."""
        with self._lock:
            self.errors[expr] = (status, error_type, error)

    def fire(self, app_id: str, *alerts: str) -> None:
        """Exactly these alerts of the app are firing from now on."""
        with self._lock:
            self.firing[app_id] = set(alerts)

    def handle(self, method: str, raw_path: str, body: str) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        if self.down:
            return 503, {"status": "error", "error": "service unavailable"}
        if parts.path in ("/-/healthy", "/-/ready"):
            return 200, "Prometheus is Healthy."
        if parts.path == "/-/reload" and method == "POST":
            with self._lock:
                self.reloads += 1
            return 200, {}
        if parts.path == "/api/v1/query":
            args = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            args.update({k: v[-1] for k, v in parse_qs(body).items()})
            return self._query(args.get("query", ""))
        if parts.path == "/api/v1/alerts":
            with self._lock:
                alerts = [{"labels": {"alertname": name, "micado_app": app},
                           "state": "firing", "activeAt": "2026-01-01T00:00:00Z", "value": "1"}
                          for app, names in self.firing.items() for name in sorted(names)]
            return 200, {"status": "success", "data": {"alerts": alerts}}
        if parts.path == "/api/v1/rules":
            with self._lock:
                groups = [{"name": f"micado-{app}", "rules": [
                    {"type": "alerting", "name": n, "state": "firing", "health": "ok"}
                    for n in sorted(names)]} for app, names in self.firing.items()]
                groups += [{"name": f"micado-{app}", "rules": [
                    {"type": "alerting", "name": n, "state": "inactive", "health": "err",
                     "lastError": error} for n, error in sorted(errors.items())]}
                    for app, errors in self.rule_errors.items()]
            return 200, {"status": "success", "data": {"groups": groups}}
        return 404, {"status": "error", "error": f"not found: {parts.path}"}

    def _query(self, expr: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.queries.append(expr)
            value = self.values.get(expr)
            error = self.errors.get(expr)
            delay = self.delay
        if delay:
            time.sleep(delay)
        if error is not None:
            status, error_type, message = error
            return status, {"status": "error", "errorType": error_type, "error": message}
        now = time.time()
        if value is None:
            result: list[dict[str, Any]] = []
        elif isinstance(value, list):
            result = [{"metric": labels, "value": [now, "1"]} for labels in value]
        else:
            result = [{"metric": {}, "value": [now, repr(float(value))]}]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
