"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real cloud API (moto's EC2 server,
Nova), for the cloud fault scenarios of the node groups.

Why it exists: the real services cannot be made to fail on demand. moto never answers 500 and
has no instance limit; Nova answers 500 only when it is broken. The tests still need "the
cloud answered 500" and "EC2 refused: InstanceLimitExceeded" at a chosen request, reached by
the real clients (boto3/amazon.aws, openstacksdk/openstack.cloud) over HTTP. So the client is
pointed at this proxy (EC2: `endpoint_url`; OpenStack: `compute_endpoint_override` in
clouds.yaml), which forwards every request unchanged to the real service, except those a
`Fault` matches (method, path, a string in the body), which it answers itself with the
fault's status and body. Everything else (Nova's quota, a server stuck in BUILD) is produced
by the real services and not faked here.
"""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# hop-by-hop headers (RFC 9110 7.6.1) are not forwarded
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host", "content-length"}


@dataclass
class Fault:
    """Answer requests matching `method`, `path` (a regex searched in the path and query) and
    `body` (a substring of the request body) with `status` and `reply`, at most `times` times
    (None: always)."""

    method: str
    path: str
    status: int
    reply: str
    body: str = ""
    content_type: str = "application/json"
    times: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str, body: str) -> bool:
        return (method == self.method and re.search(self.path, path) is not None
                and self.body in body and (self.times is None or self.hits < self.times))


@dataclass
class FaultProxy:
    """Forwards to `upstream` (http://host:port), injecting `faults`; a context manager."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def injected(self) -> int:
        """How many requests were answered by a fault."""
        with self._lock:
            return sum(f.hits for f in self.faults)

    def _fault_for(self, method: str, path: str, body: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, body):
                    fault.hits += 1
                    return fault
        return None

    def _forward(self, method: str, path: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            conn.close()

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._fault_for(self.command, self.path,
                                         body.decode(errors="replace"))
                if fault is not None:
                    status, data = fault.status, fault.reply.encode()
                    headers = [("Content-Type", fault.content_type)]
                else:
                    forward = {k: v for k, v in self.headers.items()
                               if k.lower() not in HOP_BY_HOP}
                    status, headers, data = proxy._forward(self.command, self.path, forward,
                                                           body)
                with proxy._lock:
                    proxy.seen.append((self.command, self.path, status))
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
