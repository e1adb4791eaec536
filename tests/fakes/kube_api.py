"""A small fake Kubernetes API server on 127.0.0.1 for tests (stdlib `http.server`, one thread).

It speaks the REST shape the real API server speaks, for the few endpoints MiCADO uses:
discovery (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`, `/version`), list (with
equality `labelSelector` and `fieldSelector`), get, create (`POST`), delete, server-side apply
(`PATCH` with `application/apply-patch+yaml`, `fieldManager` required), merge patches, the
`/scale` subresource of Deployments and StatefulSets, the `eviction` subresource of Pods (what
`kubectl drain` and kubernetes.core.k8s_drain call), and `dryRun=All` (checked, not stored).
Errors are `Status` objects with the real codes and reasons. `fail_next()` makes the next
requests fail (503, 429, ...) to test retries; `requests` records what the client sent.

As the real server: a `metadata.resourceVersion` in an apply or merge patch body, and
`preconditions` (resourceVersion, uid) in a delete's body, must match the stored object or the
request fails with 409 Conflict; `metadata.generation` moves only when `spec` changes (not for
label or status changes). `on_request(hook)` runs `hook(method, path)` before a request is
served, to change the cluster between two requests of the client (fault injection).

Not a real API server: no validation, no admission, no controllers (status is whatever a test
seeds; nothing turns a Secret's stringData into data), no watch, no PodDisruptionBudgets (an
eviction deletes the pod at once, as the real server does for a pod without a budget whose
kubelet has stopped it), server-side apply replaces the applied object instead of tracking
field ownership (except `spec.replicas` of scalable kinds, always kept when the applied object
leaves it out; the real server keeps it only once /scale owns it and removes it if the applier
owned it: tests/kube/test_controller_on_real_cluster.py covers that), no RBAC, no quantity
normalisation.

A real API server runs in the tests (tests/kube/cluster.py): the controller's lifecycle and
end-to-end tests run there, as the controller's ServiceAccount (tests/e2e/test_controller_e2e.py,
test_node_groups_*.py, tests/kube/, tests/integration/test_micado_client.py). This fake is kept
for what a real server cannot be made to do on demand: 5xx and 429 bursts and bounded retries
(`fail_next`: tests/unit/test_cluster.py, test_apps.py, test_api.py, test_loop.py), slow writes
(`write_delay`: a kill -9 in the middle of an update, tests/e2e/test_controller_slow_writes.py),
objects changed between two requests of the client (`on_request`), and the exact requests the
client sends (`requests`: paths, selectors, content types, field manager), which a test cannot
see on a real server (tests/unit/test_cluster.py, test_cloud_node_ec2.py). It also serves the
unit tests of the controller's logic (tests/controller_env.py: the loop and the app manager driven
tick by tick with a clock the test moves, in one process, hundreds of times per run), which
check what the controller decides and asks for, not how Kubernetes answers; every behaviour of
the server they rely on is checked on the real one in tests/kube/.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

# (group, version, plural) -> (kind, namespaced); group "" is the core API
RESOURCES: dict[tuple[str, str, str], tuple[str, bool]] = {
    ("", "v1", "nodes"): ("Node", False),
    ("", "v1", "namespaces"): ("Namespace", False),
    ("", "v1", "pods"): ("Pod", True),
    ("", "v1", "services"): ("Service", True),
    ("", "v1", "configmaps"): ("ConfigMap", True),
    ("", "v1", "secrets"): ("Secret", True),
    ("", "v1", "persistentvolumeclaims"): ("PersistentVolumeClaim", True),
    ("", "v1", "persistentvolumes"): ("PersistentVolume", False),
    ("apps", "v1", "deployments"): ("Deployment", True),
    ("apps", "v1", "statefulsets"): ("StatefulSet", True),
    ("apps", "v1", "daemonsets"): ("DaemonSet", True),
    ("batch", "v1", "jobs"): ("Job", True),
    ("autoscaling", "v2", "horizontalpodautoscalers"): ("HorizontalPodAutoscaler", True),
}
SCALABLE = {"deployments", "statefulsets"}
_REASONS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 409: "Conflict",
            415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
            500: "InternalError", 503: "ServiceUnavailable"}


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    authorization: str | None = None
    at: float = 0.0  # time.time() when it arrived


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    """Equality-based selectors: `a=b,c==d,e!=f`, and `g` (exists)."""
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term and term not in labels:
            return False
    return True


def _field(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _fields_match(obj: dict[str, Any], selector: str | None) -> bool:
    """Field selectors as the real server takes them: `a.b=c,d!=e` on dotted paths."""
    for term in (selector or "").split(","):
        term = term.strip()
        if not term:
            continue
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        if (_field(obj, key.strip()) == value.strip()) == negate:
            return False
    return True


class FakeKubeApi:
    """The store plus the HTTP server; `with FakeKubeApi() as api: api.url`."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.requests: list[Request] = []
        self._faults: list[int] = []
        self.write_delay = 0.0  # seconds every write waits before it is served
        self._hooks: list[Callable[[str, str], None]] = []
        self._versions = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> FakeKubeApi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---------------------------------------------------------------- test helpers
    def fail_next(self, status: int, times: int = 1) -> None:
        """The next `times` requests get `status` (a Status body) without being served."""
        with self._lock:
            self._faults.extend([status] * times)

    def on_request(self, hook: Callable[[str, str], None]) -> None:
        """Call `hook(method, path)` before each request is served (until the fake stops)."""
        self._hooks.append(hook)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def seed(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if created (apiVersion and kind pick the resource)."""
        group, _version, plural, namespaced = self._resource_of(obj)
        meta = obj.setdefault("metadata", {})
        namespace = meta.setdefault("namespace", "default") if namespaced else ""
        stored = self._stamp(copy.deepcopy(obj), None)
        with self._lock:
            self.objects[(group, plural, namespace, meta["name"])] = stored
        return stored

    def label(self, group: str, plural: str, namespace: str, name: str,
              labels: dict[str, str | None]) -> None:
        """Change an object's labels as `kubectl label --overwrite` would (None removes)."""
        with self._lock:
            key = (group, plural, namespace, name)
            old = self._existing(key, plural)
            new = merge_patch(old, {"metadata": {"labels": labels}})
            self.objects[key] = self._stamp(new, old)

    def get(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((group, plural, namespace, name))

    # ---------------------------------------------------------------- internals
    def _resource_of(self, obj: dict[str, Any]) -> tuple[str, str, str, bool]:
        group, _, version = obj["apiVersion"].rpartition("/")
        for (g, v, plural), (kind, namespaced) in RESOURCES.items():
            if (g, v, kind) == (group, version, obj["kind"]):
                return g, v, plural, namespaced
        raise ValueError(f"unknown resource {obj['apiVersion']} {obj['kind']}")

    def _stamp(self, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        old_meta = (old or {}).get("metadata", {})
        meta["uid"] = old_meta.get("uid") or meta.get("uid") or str(uuid.uuid4())
        meta.setdefault("creationTimestamp",
                        old_meta.get("creationTimestamp", "2024-01-01T00:00:00Z"))
        meta["resourceVersion"] = str(next(self._versions))
        changed = old is None or obj.get("spec") != old.get("spec")
        meta["generation"] = int(old_meta.get("generation", 0)) + (1 if changed else 0)
        return obj

    def handle(self, method: str, raw_path: str, content_type: str | None,
               body: bytes, authorization: str | None = None) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Request(method, parts.path, query, content_type,
                                         authorization, time.time()))
            fault = self._faults.pop(0) if self._faults else None
            delay = self.write_delay if method in ("PATCH", "DELETE", "POST", "PUT") else 0.0
        if delay:
            time.sleep(delay)
        for hook in list(self._hooks):
            hook(method, parts.path)
        if fault is not None:
            return fault, _status(fault, f"injected failure {fault}")
        if query.get("dryRun") == "All" and method != "GET":
            # as the real server: everything is checked, nothing is stored
            with self._lock:
                saved, versions = copy.deepcopy(self.objects), self._versions
                self._versions = itertools.count(next(versions))
            try:
                result = self._route(method, parts.path, query, content_type, body)
            except ApiError as e:
                return e.code, _status(e.code, e.message)
            finally:
                with self._lock:
                    self.objects = saved
            return (201 if method == "POST" else 200), result
        try:
            result = self._route(method, parts.path, query, content_type, body)
            return (201 if method == "POST" else 200), result
        except ApiError as e:
            return e.code, _status(e.code, e.message)

    def _route(self, method: str, path: str, query: dict[str, str], content_type: str | None,
               body: bytes) -> dict[str, Any]:
        segs = [s for s in path.split("/") if s]
        if method == "GET" and segs in (["api"], ["apis"], ["version"]):
            return self._root(segs[0])
        if segs[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segs[2:]
        elif segs[:1] == ["apis"] and len(segs) >= 3:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        if not rest:
            if method != "GET":
                raise ApiError(405, "method not allowed")
            return self._discovery(group, version)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), rest[2:]
        if (group, version, plural) not in RESOURCES:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        kind, namespaced = RESOURCES[group, version, plural]
        if namespaced != bool(namespace) and not (namespaced and name is None):
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        api_version = f"{group}/{version}" if group else version
        if name is None:
            if method == "GET":
                return self._list(group, plural, kind, api_version, namespace, query)
            if method == "POST":
                return self._create(group, plural, kind, api_version, namespace, content_type,
                                    body)
            raise ApiError(405, f"{method} on a collection is not served by the fake")
        key = (group, plural, namespace, name)
        if sub == ["scale"]:
            if plural not in SCALABLE:
                raise ApiError(404, f"{kind} has no scale subresource")
            return self._scale(method, key, kind, content_type, body)
        if sub == ["eviction"] and plural == "pods" and method == "POST":
            with self._lock:
                obj = self._existing(key, plural)
                del self.objects[key]
            return _status(201, f"pod {name} evicted", success=True, details=obj)
        if sub:
            raise ApiError(404, f"the server could not find the requested resource ({path})")
        if method == "GET":
            return copy.deepcopy(self._existing(key, plural))
        if method == "DELETE":
            options = self._body("application/json", body) if body else None
            preconditions = (options or {}).get("preconditions") or {}
            with self._lock:
                obj = self._existing(key, plural)
                for field in ("resourceVersion", "uid"):
                    wanted = preconditions.get(field)
                    if wanted is not None and wanted != obj["metadata"].get(field):
                        raise ApiError(409, f"Precondition failed: {field} in precondition: "
                                            f"{wanted}, {field} in object meta: "
                                            f"{obj['metadata'].get(field)}")
                del self.objects[key]
            return _status(200, f"{kind} {name} deleted", success=True, details=obj)
        if method == "PATCH":
            return self._patch(key, kind, api_version, query, content_type, body)
        raise ApiError(405, f"{method} is not served by the fake")

    def _root(self, which: str) -> dict[str, Any]:
        if which == "version":
            return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake"}
        if which == "api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        groups = sorted({(g, v) for g, v, _ in RESOURCES if g})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
             "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in groups]}

    def _discovery(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = [
            {"name": plural, "singularName": kind.lower(), "namespaced": namespaced,
             "kind": kind, "verbs": ["create", "get", "list", "patch", "delete"]}
            for (g, v, plural), (kind, namespaced) in RESOURCES.items()
            if (g, v) == (group, version)]
        if (group, version) == ("", "v1"):
            resources.append({"name": "pods/eviction", "singularName": "", "namespaced": True,
                              "group": "policy", "version": "v1", "kind": "Eviction",
                              "verbs": ["create"]})
        if not resources:
            raise ApiError(404, f"no API group version {group}/{version}")
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}

    def _existing(self, key: tuple[str, str, str, str], plural: str) -> dict[str, Any]:
        obj = self.objects.get(key)
        if obj is None:
            raise ApiError(404, f'{plural}.{key[0] or "core"} "{key[3]}" not found')
        return obj

    def _list(self, group: str, plural: str, kind: str, api_version: str, namespace: str,
              query: dict[str, str]) -> dict[str, Any]:
        selector = query.get("labelSelector")
        with self._lock:
            items = [copy.deepcopy(obj) for (g, p, ns, _), obj in sorted(self.objects.items())
                     if (g, p) == (group, plural) and (not namespace or ns == namespace)
                     and _matches(obj["metadata"].get("labels") or {}, selector)
                     and _fields_match(obj, query.get("fieldSelector"))]
        for item in items:  # like the real server: list items carry no apiVersion/kind
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {"kind": f"{kind}List", "apiVersion": api_version,
                "metadata": {"resourceVersion": str(next(self._versions))}, "items": items}

    def _create(self, group: str, plural: str, kind: str, api_version: str, namespace: str,
                content_type: str | None, body: bytes) -> dict[str, Any]:
        obj = self._body(content_type, body)
        if not isinstance(obj, dict) or (obj.get("apiVersion"), obj.get("kind")) != (
                api_version, kind):
            raise ApiError(400, f"the body must be a {api_version} {kind}")
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ApiError(422, f"{kind} is invalid: metadata.name: Required value")
        if meta.get("namespace", namespace) != namespace:
            raise ApiError(400, "the namespace of the provided object does not match the "
                                "namespace sent on the request")
        if namespace:
            meta["namespace"] = namespace
        key = (group, plural, namespace, name)
        with self._lock:
            if key in self.objects:
                raise ApiError(409, f'{plural} "{name}" already exists')
            meta.pop("resourceVersion", None)
            self.objects[key] = self._stamp(copy.deepcopy(obj), None)
            return copy.deepcopy(self.objects[key])

    def _body(self, content_type: str | None, body: bytes) -> Any:
        try:
            if content_type and "yaml" in content_type:
                return yaml.safe_load(body.decode())
            return json.loads(body.decode() or "null")
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, f"cannot decode the request body: {e}") from e

    def _patch(self, key: tuple[str, str, str, str], kind: str, api_version: str,
               query: dict[str, str], content_type: str | None, body: bytes) -> dict[str, Any]:
        _group, plural, namespace, name = key
        patch = self._body(content_type, body)
        if not isinstance(patch, dict):
            raise ApiError(400, "the patch must be an object")
        ctype = (content_type or "").split(";")[0].strip()
        with self._lock:
            old = self.objects.get(key)
            wanted = (patch.get("metadata") or {}).get("resourceVersion") \
                if isinstance(patch.get("metadata"), dict) else None
            if wanted is not None and (old is None
                                       or wanted != old["metadata"].get("resourceVersion")):
                raise ApiError(409, f'Operation cannot be fulfilled on {plural} "{name}": the '
                                    "object has been modified; please apply your changes to "
                                    "the latest version and try again")
            if ctype == "application/apply-patch+yaml":
                if not query.get("fieldManager"):
                    raise ApiError(400, "PATCH /apply requires fieldManager")
                if (patch.get("apiVersion"), patch.get("kind")) != (api_version, kind):
                    raise ApiError(400, f"apiVersion/kind in the body must be {api_version} "
                                        f"{kind}")
                meta = patch.setdefault("metadata", {})
                if meta.get("name") != name or meta.get("namespace", namespace) != namespace:
                    raise ApiError(400, "the name/namespace in the body does not match the URL")
                if namespace:
                    meta["namespace"] = namespace
                new = copy.deepcopy(patch)
                if old is not None and "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                # replicas set through /scale belong to another field manager: an apply that
                # does not mention them keeps them, as on a real server
                old_replicas = ((old or {}).get("spec") or {}).get("replicas")
                if old_replicas is not None and plural in SCALABLE \
                        and "replicas" not in (new.get("spec") or {}):
                    new.setdefault("spec", {})["replicas"] = old_replicas
                new["metadata"]["managedFields"] = [
                    {"manager": query["fieldManager"], "operation": "Apply"}]
            elif ctype in ("application/merge-patch+json",
                           "application/strategic-merge-patch+json"):
                if old is None:
                    raise ApiError(404, f'{plural} "{name}" not found')
                new = merge_patch(old, patch)
            else:
                raise ApiError(415, f"the fake does not serve patch type {ctype!r}")
            self.objects[key] = self._stamp(new, old)
            return copy.deepcopy(self.objects[key])

    def _scale(self, method: str, key: tuple[str, str, str, str], kind: str,
               content_type: str | None, body: bytes) -> dict[str, Any]:
        with self._lock:
            obj = self._existing(key, key[1])
            if method == "PATCH":
                patch = self._body(content_type, body)
                replicas = ((patch or {}).get("spec") or {}).get("replicas")
                if not isinstance(replicas, int) or replicas < 0:
                    raise ApiError(422, f"spec.replicas: Invalid value: {replicas!r}")
                obj["spec"]["replicas"] = replicas
                self._stamp(obj, copy.deepcopy(obj))
            elif method != "GET":
                raise ApiError(405, f"{method} on /scale is not served by the fake")
            labels = ((obj["spec"].get("selector") or {}).get("matchLabels") or {})
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {"name": key[3], "namespace": key[2],
                                 "uid": obj["metadata"]["uid"],
                                 "resourceVersion": obj["metadata"]["resourceVersion"]},
                    "spec": {"replicas": obj["spec"].get("replicas", 1)},
                    "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                               "selector": ",".join(f"{k}={v}" for k, v in labels.items())}}


def _status(code: int, message: str, *, success: bool = False,
            details: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success" if success else "Failure",
                              "message": message, "code": code}
    if not success:
        status["reason"] = _REASONS.get(code, "Unknown")
    if details is not None:
        meta = details.get("metadata", {})
        status["details"] = {"name": meta.get("name"), "uid": meta.get("uid")}
    return status


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeApi
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive + small writes: no 40 ms delayed-ACK stalls

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, payload = self.fake.handle(self.command, self.path,
                                         self.headers.get("Content-Type"), body,
                                         self.headers.get("Authorization"))
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass
