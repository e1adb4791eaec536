"""The Kubernetes actuator: reads nodes and replicas, scales, applies and prunes. I/O only.

Requests go through the official client's `ApiClient` (kubeconfig, TLS, bearer tokens) as plain
REST calls on dicts, so one code path serves every kind the ADT compiler may emit (including
custom resources, found by discovery) and one place handles errors and retries:

* an API error raises `ClusterError(status, reason, message)`, the message taken from the
  server's `Status` object;
* transient failures (429, 5xx, connection errors) are retried with exponential backoff,
  `attempts` times in all, sleeping `base_delay * 2**n` capped at `max_delay` in between.

Every request the actuator sends is idempotent (apply, set replicas, delete), so a retry after
a lost response is safe; a delete that finds the object gone counts as done.

Ownership: an object belongs to the app named by its `app.kubernetes.io/instance` label.
`apply(..., owner=)` reads each object first and refuses one labelled for another app, and
sends the `resourceVersion` it read, so a relabelling in between fails the apply (409) instead
of being overwritten; deletes carry the same precondition, so an object relabelled between the
list and the delete is left alone. Such a 409 is read again and retried with the same backoff
(`attempts` in all): controllers rewrite a scaling Deployment's status many times a second.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from micado.adt.k8s.labels import APP, INSTANCE, MANAGED_BY, MANAGER, NAME, NODE_TYPE
from micado.adt.model import Workload

FIELD_MANAGER = "micado"
SCALABLE_KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# A server-side apply the API server cannot type against the kind's schema (a field of the
# wrong type): a real server answers 500 InternalError, which no retry can change.
UNTYPABLE_APPLY = "failed to create typed patch object"
BLOCKING_TAINT_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
# maps whose values are resource quantities (containers' resources, PV capacity, quotas)
QUANTITY_MAPS = frozenset({"requests", "limits", "capacity", "hard"})

# kind -> (apiVersion, plural, namespaced): what the compiler emits, and what prune looks at.
# Other kinds are found by discovery when applied.
KNOWN_KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("v1", "namespaces", False),
    "PersistentVolume": ("v1", "persistentvolumes", False),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims", True),
    "ConfigMap": ("v1", "configmaps", True),
    "Secret": ("v1", "secrets", True),
    "Service": ("v1", "services", True),
    "Pod": ("v1", "pods", True),
    "Deployment": ("apps/v1", "deployments", True),
    "StatefulSet": ("apps/v1", "statefulsets", True),
    "DaemonSet": ("apps/v1", "daemonsets", True),
    "Job": ("batch/v1", "jobs", True),
}
# applied in this order (dependencies first); unknown kinds go last
APPLY_ORDER = ("Namespace", "PersistentVolume", "PersistentVolumeClaim", "ConfigMap", "Secret",
               "Service", "Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")


class ClusterError(Exception):
    """A Kubernetes API request failed: `status` is the HTTP code (None: no response)."""

    def __init__(self, status: int | None, reason: str, message: str, request: str = ""):
        self.status = status
        self.reason = reason
        self.message = message
        self.request = request
        where = f" ({request})" if request else ""
        super().__init__(f"Kubernetes API {status or 'unreachable'} {reason}: {message}{where}")


class ObjectOwned(ClusterError):
    """An object the app wants is labelled as another app's (or made by hand)."""

    def __init__(self, key: tuple[str, str, str], owner: str | None) -> None:
        self.key = key
        self.owner = owner
        whose = f"app {owner!r}" if owner else "no micado app"
        where = f"{key[1]}/" if key[1] else ""
        super().__init__(409, "Conflict", f"{key[0]} {where}{key[2]} already exists and "
                                          f"belongs to {whose}")


@dataclass(frozen=True)
class Resource:
    api_version: str
    plural: str
    namespaced: bool
    kind: str

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version \
            else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


def _key(obj: dict[str, Any], default_namespace: str = "") -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return obj["kind"], meta.get("namespace") or default_namespace, meta["name"]


class Cluster:
    """One Kubernetes cluster, reached through a configured `kubernetes.client.ApiClient`."""

    def __init__(self, api_client: k8s.ApiClient | Callable[[], k8s.ApiClient], *,
                 attempts: int = 5, base_delay: float = 0.5, max_delay: float = 8.0,
                 timeout: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
        """`api_client` may be a factory, called until it succeeds (see `from_kubeconfig`)."""
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if isinstance(api_client, k8s.ApiClient):
            self._api: k8s.ApiClient | None = api_client
            self._factory: Callable[[], k8s.ApiClient] | None = None
        else:
            self._api, self._factory = None, api_client
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self._sleep = sleep
        self._resources: dict[tuple[str, str], Resource] = {}
        self._refused_cluster_wide: set[str] = set()  # kinds RBAC lets us list per namespace

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None, *,
                        lazy: bool = False, **options: Any) -> Cluster:
        """A Cluster from a kubeconfig file (default: $KUBECONFIG or ~/.kube/config).

        With `lazy`, a kubeconfig that cannot be read yet (k3s not started, file not written)
        is read again at each request, which fails with a `ClusterError` saying why until it
        works: the controller starts and reports Kubernetes as unavailable instead of exiting.
        """
        def load() -> k8s.ApiClient:
            return k8s_config.new_client_from_config(config_file=path, context=context)

        return cls(load if lazy else load(), **options)

    @property
    def api(self) -> k8s.ApiClient:
        """The configured client; ClusterError while a lazy kubeconfig cannot be loaded."""
        if self._api is None:
            assert self._factory is not None
            try:
                self._api = self._factory()
            except Exception as exc:  # the client raises several kinds for a bad kubeconfig
                raise ClusterError(None, "NoKubeconfig",
                                   f"the kubeconfig cannot be used: {exc}") from None
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # ------------------------------------------------------------------ reads
    def group_nodes(self, app_id: str, group: str) -> list[dict[str, str]]:
        """MiCADO's `m_nodes` for one app's node group: Ready, schedulable, untainted nodes
        labelled with both the group's name and the app (another app's group of the same
        name is another group)."""
        selector = f"{NODE_TYPE}={group},{APP}={app_id}"
        nodes = self._request("GET", "/api/v1/nodes", query={"labelSelector": selector})
        return self._groups(nodes.get("items") or []).get((app_id, group), [])

    def nodes_by_group(self) -> dict[tuple[str, str], list[dict[str, str]]]:
        """`group_nodes` for every group at once, keyed by (app id, group): one list call
        serves all apps of a tick. Nodes without an app label belong to no group."""
        return self._groups(self._request("GET", "/api/v1/nodes").get("items") or [])

    def nodes(self) -> list[dict[str, Any]]:
        """Every Node as the API returns it (reconciliation reads their Ready conditions)."""
        return list(self._request("GET", "/api/v1/nodes").get("items") or [])

    @staticmethod
    def _groups(items: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, str]]]:
        groups: dict[tuple[str, str], list[dict[str, str]]] = {}
        for node in items:
            labels = (node.get("metadata") or {}).get("labels") or {}
            group, app_id = labels.get(NODE_TYPE), labels.get(APP)
            if group is None or app_id is None:
                continue
            members = groups.setdefault((app_id, group), [])
            if _usable(node):
                members.append({"ID": node["metadata"]["name"], "Addr": _address(node)})
        return groups

    def app_objects(self, app_id: str, kinds: Iterable[tuple[str, str]]
                    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The live objects labelled instance=<app_id>, of the given (apiVersion, kind)s, in
        every namespace: one list call per kind. Keyed (kind, namespace, name)."""
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        for api_version, kind in dict.fromkeys(kinds):
            resource = self._resource(api_version, kind)
            items = self._list(resource, f"{INSTANCE}={app_id}")
            for item in items:
                meta = item.get("metadata") or {}
                found[kind, meta.get("namespace") or "", meta.get("name", "")] = item
        return found

    def live_replicas(self, app_id: str, workloads: Iterable[Workload],
                      listed: dict[tuple[str, str, str], dict[str, Any]] | None = None
                      ) -> dict[str, int]:
        """spec.replicas of the app's Deployments/StatefulSets, keyed by ADT node name.

        Found by the compiler's labels (instance=<app_id>, name=<node>) in each workload's
        namespace; a workload not found (or of another kind) is absent from the result.
        `listed` is what `app_objects` returned, when the caller has it already.
        """
        workloads = [w for w in workloads if w.kind in SCALABLE_KINDS]
        if listed is None:
            listed = self.app_objects(app_id, [("apps/v1", w.kind) for w in workloads])
        result: dict[str, int] = {}
        for workload in workloads:
            found = [item for (kind, namespace, _), item in listed.items()
                     if kind == workload.kind and namespace == workload.namespace
                     and ((item.get("metadata") or {}).get("labels") or {}).get(NAME)
                     == workload.node]
            if not found:
                continue
            # two objects from one node: prefer the one with the compiled name
            best = next((i for i in found if i["metadata"].get("name") == workload.name),
                        found[0])
            replicas = (best.get("spec") or {}).get("replicas")
            result[workload.node] = 1 if replicas is None else int(replicas)
        return result

    # ------------------------------------------------------------------ writes
    def scale(self, workload: Workload, replicas: int) -> int:
        """Set a Deployment's or StatefulSet's replicas (scale subresource); returns the old."""
        if workload.kind not in SCALABLE_KINDS:
            raise ValueError(f"{workload.kind} {workload.name!r} cannot be scaled "
                             f"(only {', '.join(SCALABLE_KINDS)})")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ValueError(f"replicas must be a non-negative integer, not {replicas!r}")
        path = self._resource("apps/v1", workload.kind).path(
            workload.namespace, workload.name) + "/scale"
        current = self._request("GET", path)
        previous = int((current.get("spec") or {}).get("replicas") or 0)
        if previous != replicas:
            self._request("PATCH", path, body={"spec": {"replicas": replicas}},
                          content_type="application/merge-patch+json")
        return previous

    def apply(self, manifests: Iterable[dict[str, Any]], *, owner: str | None = None,
              adopt: Callable[[tuple[str, str, str], str | None], bool] | None = None,
              ) -> list[dict[str, Any]]:
        """Server-side apply (field manager `micado`, conflicts forced); returns the objects.

        With `owner` (an app id), each object is read first: one labelled for another app
        raises `ObjectOwned` (before anything else is applied from there on) unless
        `adopt(key, its label)` says the app may take it back (see `AppManager`); the apply
        carries the resourceVersion read, so a change in between is a 409, read again. A
        Deployment or StatefulSet applied without `spec.replicas` keeps its live count.
        """
        applied = []
        for manifest in sorted(manifests, key=apply_rank):
            resource = self._resource(manifest["apiVersion"], manifest["kind"])
            meta = manifest.get("metadata") or {}
            namespace = (meta.get("namespace") or "default") if resource.namespaced else None
            body = manifest
            if namespace and meta.get("namespace") != namespace:
                body = {**manifest, "metadata": {**meta, "namespace": namespace}}
            path = resource.path(namespace, meta["name"])
            if owner is None:
                applied.append(self._apply_one(path, body))
                continue
            key = (manifest["kind"], namespace or "", meta["name"])
            for attempt in range(self.attempts):
                if attempt:
                    self._backoff(attempt - 1)
                live = self._get_or_none(path)
                guarded = body
                if live is not None:
                    live_meta = live.get("metadata") or {}
                    label = (live_meta.get("labels") or {}).get(INSTANCE)
                    if label != owner and not (adopt is not None and adopt(key, label)):
                        raise ObjectOwned(key, label)
                    guarded = {**_keep_live_replicas(body, live),
                               "metadata": {**body["metadata"], "resourceVersion":
                                            live_meta.get("resourceVersion")}}
                try:
                    applied.append(self._apply_one(path, guarded))
                    break
                except ClusterError as e:
                    if e.status != 409 or attempt == self.attempts - 1:
                        raise
        return applied

    def _apply_one(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("PATCH", path, query={"fieldManager": FIELD_MANAGER,
                                                   "force": "true"},
                             body=body, content_type="application/apply-patch+yaml")

    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", path)
        except ClusterError as e:
            if e.status == 404:
                return None
            raise

    def prune(self, app_id: str, keep: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
        """Delete the app's objects (instance=<app_id>, managed-by=micado) not in `keep`.

        `keep` is the manifests that stay (usually what was just applied). Objects owned by
        another object (a Deployment's pods) are left to Kubernetes' garbage collector.
        Returns (kind, namespace, name) of what was deleted.
        """
        keep = list(keep)
        kept = set()
        kinds = dict.fromkeys(KNOWN_KINDS)
        for manifest in keep:
            resource = self._resource(manifest["apiVersion"], manifest["kind"])
            kept.add(_key(manifest, "default" if resource.namespaced else ""))
            kinds[manifest["kind"]] = None
        selector = f"{INSTANCE}={app_id},{MANAGED_BY}={MANAGER}"
        deleted = []
        for kind in kinds:
            api_version = KNOWN_KINDS[kind][0] if kind in KNOWN_KINDS else next(
                m["apiVersion"] for m in keep if m["kind"] == kind)
            resource = self._resource(api_version, kind)
            items = self._list(resource, selector)
            for item in items:
                meta = item.get("metadata") or {}
                key = (kind, meta.get("namespace") or "", meta["name"])
                if key in kept or meta.get("ownerReferences"):
                    continue
                if self._delete(resource, key[1] or None, key[2], app_id,
                                meta.get("resourceVersion")):
                    deleted.append(key)
        return deleted

    def plan_changes(self, app_id: str,
                     manifests: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
        """What `apply` then `prune` would do, without doing it (reads only).

        `create` when the object is absent, `update` when a field the manifest sets differs
        from the live object, `unchanged` otherwise, `delete` for the app's objects that the
        manifests no longer contain, and `conflict` (with its `owner`) for an object of the
        same name that is not this app's (another app's, or made by hand).
        """
        manifests = sorted(manifests, key=apply_rank)
        changes = []
        for manifest in manifests:
            resource = self._resource(manifest["apiVersion"], manifest["kind"])
            meta = manifest.get("metadata") or {}
            namespace = (meta.get("namespace") or "default") if resource.namespaced else ""
            try:
                live = self._request("GET", resource.path(namespace or None, meta["name"]))
            except ClusterError as e:
                if e.status != 404:
                    raise
                action = "create"
            else:
                owner = ((live.get("metadata") or {}).get("labels") or {}).get(INSTANCE)
                if owner != app_id:
                    changes.append({"action": "conflict", "kind": manifest["kind"],
                                    "namespace": namespace, "name": meta["name"],
                                    "owner": owner or ""})
                    continue
                action = "unchanged" if _contains(live, _as_stored(manifest), ("metadata",)) and \
                    _contains(live.get("metadata") or {}, _applied_meta(meta), ()) \
                    else "update"
            changes.append({"action": action, "kind": manifest["kind"],
                            "namespace": namespace, "name": meta["name"]})
        kept = {(c["kind"], c["namespace"], c["name"]) for c in changes}
        selector = f"{INSTANCE}={app_id},{MANAGED_BY}={MANAGER}"
        kinds = dict.fromkeys([*KNOWN_KINDS, *(m["kind"] for m in manifests)])
        for kind in kinds:
            api_version = KNOWN_KINDS[kind][0] if kind in KNOWN_KINDS else next(
                m["apiVersion"] for m in manifests if m["kind"] == kind)
            resource = self._resource(api_version, kind)
            items = self._list(resource, selector)
            for item in items:
                meta = item.get("metadata") or {}
                key = (kind, meta.get("namespace") or "", meta["name"])
                if key not in kept and not meta.get("ownerReferences"):
                    changes.append({"action": "delete", "kind": kind, "namespace": key[1],
                                    "name": key[2]})
        return changes

    def get_object(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """The live object a manifest describes, None when there is none."""
        kind, namespace, name = self.object_key(manifest)
        resource = self._resource(manifest["apiVersion"], kind)
        return self._get_or_none(resource.path(namespace or None, name))

    def object_key(self, manifest: dict[str, Any]) -> tuple[str, str, str]:
        """(kind, namespace, name) as the server will know the object: a namespaced object
        without a namespace goes to "default", a cluster-scoped one has ""."""
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        return _key(manifest, "default") if resource.namespaced else \
            (manifest["kind"], "", manifest["metadata"]["name"])

    def delete_app(self, app_id: str) -> list[tuple[str, str, str]]:
        """Delete every object of the app; returns what was deleted."""
        return self.prune(app_id, keep=())

    # ------------------------------------------------------------------ plumbing
    def _list(self, resource: Resource, selector: str) -> list[dict[str, Any]]:
        """The objects of one kind matching a label selector, in every namespace.

        One cluster-wide list when RBAC allows it; else (a namespaced kind the controller may
        use only in some namespaces, like Secrets: see the k3s_server role's README) one list
        per namespace, skipping those where it is refused: it cannot have made objects there.
        A refused cluster-wide list is not asked again (the loop lists every tick).
        """
        query = {"labelSelector": selector}
        if resource.path() not in self._refused_cluster_wide:
            try:
                return self._request("GET", resource.path(), query=query).get("items") or []
            except ClusterError as e:
                if e.status != 403 or not resource.namespaced:
                    raise
            self._refused_cluster_wide.add(resource.path())
        namespaces = self._request("GET", "/api/v1/namespaces").get("items") or []
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            try:
                items += self._request("GET", resource.path(namespace["metadata"]["name"]),
                                       query=query).get("items") or []
            except ClusterError as e:
                if e.status != 403:
                    raise
        return items

    def _delete(self, resource: Resource, namespace: str | None, name: str, owner: str,
                resource_version: str | None) -> bool:
        """Delete an object if it still carries `owner`'s label (a precondition on the
        resourceVersion it was seen with); False when it is gone or no longer the owner's."""
        path = resource.path(namespace, name)
        for attempt in range(self.attempts):
            if attempt:
                self._backoff(attempt - 1)
            body: dict[str, Any] = {"propagationPolicy": "Background"}
            if resource_version:
                body["preconditions"] = {"resourceVersion": resource_version}
            try:
                self._request("DELETE", path, body=body)
                return True
            except ClusterError as e:
                if e.status == 404:  # already gone (maybe deleted by a retried request)
                    return False
                if e.status != 409:
                    raise
            live = self._get_or_none(path)  # changed since it was listed: still ours?
            if live is None:
                return False
            live_meta = live.get("metadata") or {}
            if (live_meta.get("labels") or {}).get(INSTANCE) != owner:
                return False
            resource_version = live_meta.get("resourceVersion")
        raise ClusterError(409, "Conflict", f"{resource.kind} {name} kept changing while it "
                                            "was being deleted", f"DELETE {path}")

    def _resource(self, api_version: str, kind: str) -> Resource:
        cached = self._resources.get((api_version, kind))
        if cached is not None:
            return cached
        known = KNOWN_KINDS.get(kind)
        if known is not None and known[0] == api_version:
            resource = Resource(api_version, known[1], known[2], kind)
        else:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            listing = self._request("GET", base)
            found = next((r for r in listing.get("resources") or []
                          if r.get("kind") == kind and "/" not in r.get("name", "")), None)
            if found is None:
                raise ClusterError(404, "NotFound",
                                   f"the server does not serve {kind} in {api_version}")
            resource = Resource(api_version, found["name"], bool(found.get("namespaced")), kind)
        self._resources[api_version, kind] = resource
        return resource

    def _request(self, method: str, path: str, *, query: dict[str, str] | None = None,
                 body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        """One REST call with retries; the decoded JSON response."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        _, url, headers, _, _ = self.api.param_serialize(
            method, path, query_params=list((query or {}).items()), header_params=headers,
            auth_settings=["BearerToken"])
        what = f"{method} {path}"
        for attempt in range(self.attempts):
            try:
                response = self.api.call_api(method, url, header_params=dict(headers), body=body,
                                             _request_timeout=self.timeout)
                response.read()
                if 200 <= response.status < 300:
                    return json.loads(response.data or b"{}")
                error = _api_error(response.status, response.reason, response.data, what)
            except ApiException as e:  # raised by the client before a response (e.g. TLS)
                error = _api_error(e.status or None, e.reason or "", e.body, what)
            except urllib3.exceptions.HTTPError as e:  # refused, reset, timed out
                error = ClusterError(None, type(e).__name__, str(e), what)
            if not _transient(error) or attempt == self.attempts - 1:
                raise error
            self._backoff(attempt)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> None:
        """The pause after the `attempt`-th (from 0) failure: transient errors, and 409s on
        objects that controllers keep updating (a Deployment's status while it scales)."""
        self._sleep(min(self.max_delay, self.base_delay * 2 ** attempt))


def _transient(error: ClusterError) -> bool:
    """Whether a retry may succeed: no answer, throttled, or a server error other than an apply
    the server cannot type."""
    if error.status == 500 and UNTYPABLE_APPLY in error.message:
        return False
    return error.status is None or error.status in TRANSIENT_STATUSES


def _api_error(status: int | None, reason: str | None, data: Any, what: str) -> ClusterError:
    message = ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    if data:
        try:
            parsed = json.loads(data)
            message = parsed.get("message", "") if isinstance(parsed, dict) else ""
            reason = (parsed.get("reason") if isinstance(parsed, dict) else None) or reason
        except ValueError:
            message = str(data)[:500]
    return ClusterError(status, reason or "", message or reason or "", what)


def _as_stored(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest as the API server stores it, where it differs in a way we can compute: a
    Secret's write-only `stringData` is merged into `data`, base64-encoded (without this, a dry
    run on a real server called every such Secret an update)."""
    strings = manifest.get("stringData")
    if manifest.get("kind") != "Secret" or not isinstance(strings, dict):
        return manifest
    data = {**(manifest.get("data") or {}), **{
        key: base64.b64encode(str(value).encode()).decode() for key, value in strings.items()}}
    return {**{k: v for k, v in manifest.items() if k != "stringData"}, "data": data}


def _keep_live_replicas(body: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """A scalable manifest without `spec.replicas`, given the live count.

    Server-side apply removes a field its manager set before and now leaves out: on a real
    API server, an update that drops replicas (to keep what the policies scaled to) would reset
    a Deployment still at the count micado applied (say the ADT's 2) to the default, 1. Sent
    with the resourceVersion it was read at, so a scale in between is a 409, read again.
    """
    spec = body.get("spec")
    replicas = (live.get("spec") or {}).get("replicas")
    if body.get("kind") not in SCALABLE_KINDS or not isinstance(spec, dict) \
            or "replicas" in spec or replicas is None:
        return body
    return {**body, "spec": {**spec, "replicas": replicas}}


def _contains(live: Any, wanted: Any, skip: tuple[str, ...], quantity: bool = False) -> bool:
    """True when every field of `wanted` (but the top-level keys in `skip`) is in `live`.

    The values of resource maps (`requests`, `limits`, ...) are quantities (`quantity`: a value
    of one, or such a map), which the server stores normalised (0.5 -> "500m", "1024Mi" ->
    "1Gi"): compared by value."""
    if isinstance(wanted, dict):
        if not isinstance(live, dict):
            return False
        return all(key in skip or (key in live and _contains(
            live[key], value, (), key in QUANTITY_MAPS if isinstance(value, dict) else quantity))
            for key, value in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(live, list) and len(live) == len(wanted)
                and all(_contains(a, b, ()) for a, b in zip(live, wanted, strict=True)))
    if quantity and live != wanted:
        try:
            return bool(parse_quantity(live) == parse_quantity(wanted))
        except (ValueError, TypeError):
            return False
    return bool(live == wanted)


def managed_view(live: Any, wanted: Any) -> Any:
    """The parts of `live` at the places `wanted` sets: what the server made of the fields
    we apply (defaults and normalised quantities included), without the fields others own.

    Taken from the apply response and later from the live object, two views differ only
    when someone changed a field we set. Only labels and annotations of metadata count.
    """
    if isinstance(wanted, dict):
        if not isinstance(live, dict):
            return live
        return {key: managed_view(live.get(key), value) for key, value in wanted.items()}
    if isinstance(wanted, list):
        if not isinstance(live, list) or len(live) != len(wanted):
            return live
        return [managed_view(a, b) for a, b in zip(live, wanted, strict=True)]
    return live


def drift_view(live: dict[str, Any], manifest: dict[str, Any],
               skip_replicas: bool) -> dict[str, Any]:
    """`managed_view` of an object as drift detection compares it: metadata's labels and
    annotations and every other top-level field, but status, and `spec.replicas` when a
    policy scales the workload (a scaled count is not drift)."""
    wanted = {k: v for k, v in manifest.items()
              if k not in ("apiVersion", "kind", "metadata", "status")}
    spec = wanted.get("spec")
    if skip_replicas and isinstance(spec, dict) and "replicas" in spec:
        wanted["spec"] = {k: v for k, v in spec.items() if k != "replicas"}
    wanted["metadata"] = _applied_meta(manifest.get("metadata") or {})
    return {"metadata": managed_view(live.get("metadata") or {}, wanted["metadata"]),
            **{k: managed_view(live.get(k), v) for k, v in wanted.items() if k != "metadata"}}


def first_difference(a: Any, b: Any, path: str = "") -> str:
    """Where two views first differ, as a dotted path (for drift reports)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return first_difference(x, y, f"{path}[{index}]")
    return path or "(object)"


def _applied_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k in ("labels", "annotations")}


def apply_rank(manifest: dict[str, Any]) -> int:
    """The order `Cluster.apply` applies (and returns) manifests in: dependencies first."""
    kind = manifest.get("kind")
    return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)


def _usable(node: dict[str, Any]) -> bool:
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    if any(t.get("effect") in BLOCKING_TAINT_EFFECTS for t in spec.get("taints") or []):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _address(node: dict[str, Any]) -> str:
    addresses = (node.get("status") or {}).get("addresses") or []
    internal = [a["address"] for a in addresses if a.get("type") == "InternalIP"]
    if internal:
        return internal[0]
    return addresses[0]["address"] if addresses else ""
