"""The fake Kubernetes API server (tests/fakes/kube_api.py) as a process of its own.

Used by the controller benchmarks so that the fake's CPU is not counted as the controller's.
It seeds a few Ready nodes, prints its URL on the first line of stdout and serves until it is
sent SIGTERM/SIGINT or its stdin closes. One extra path, outside the Kubernetes API:

``GET /_bench/requests?since=N&method=PATCH&contains=/scale`` returns
``{"next": M, "requests": [[method, path, at], ...]}``: the requests the fake received
(index N onwards, filtered), `at` being the `time.time()` at which each arrived.
These requests are not recorded themselves.

    python benchmarks/fake_kube_server.py [--nodes 3] [--fake-prometheus]

With ``--fake-prometheus`` it serves tests/fakes/prometheus_api.py instead (every query gives
0.5, no alert fires), for machines without a Prometheus binary.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakes.kube_api import FakeKubeApi
from fakes.prometheus_api import FakePrometheus

BENCH_PREFIX = "/_bench/"


class TimedFakeKubeApi(FakeKubeApi):
    """The fake, plus `/_bench/requests` to read what it received and when."""

    def handle(self, method: str, raw_path: str, content_type: str | None,
               body: bytes, authorization: str | None = None) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        if parts.path.startswith(BENCH_PREFIX):
            return self._bench(parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()})
        return super().handle(method, raw_path, content_type, body, authorization)

    def _bench(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path != BENCH_PREFIX + "requests":
            return 404, {"error": f"no such path {path}"}
        since = int(query.get("since", "0"))
        method = query.get("method")
        contains = query.get("contains", "")
        with self._lock:
            requests = self.requests[since:]
            end = len(self.requests)
        rows = [[r.method, r.path, r.at] for r in requests
                if (method is None or r.method == method) and contains in r.path]
        return 200, {"next": end, "requests": rows}


class AnyQueryPrometheus(FakePrometheus):
    """The fake Prometheus answering 0.5 to every query (a load in the hold band)."""

    def _query(self, expr: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.values.setdefault(expr, 0.5)
        return super()._query(expr)


def ready_node(name: str, group: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"micado.eu/node_type": group}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": f"10.0.0.{name[-1]}"}]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3, help="Ready nodes to seed")
    parser.add_argument("--fake-prometheus", action="store_true",
                        help="serve the fake Prometheus API instead")
    args = parser.parse_args()
    server: FakeKubeApi | FakePrometheus
    if args.fake_prometheus:
        server = AnyQueryPrometheus().start()
    else:
        server = TimedFakeKubeApi().start()
        for index in range(1, args.nodes + 1):
            server.seed(ready_node(f"node-{index}", "bench-workers"))
    print(server.url, flush=True)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
