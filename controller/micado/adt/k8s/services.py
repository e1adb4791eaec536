"""Services from container `ports`, the way MiCADO's Kubernetes adaptor makes them.

An entry with `containerPort` only opens a port on the container. Any other entry (a
Kubernetes ServicePort with flattened ServiceSpec fields, a Compose long-syntax map, a Compose
"published:target" string or a bare number) becomes a port of a Service selecting the pod, and
its target also becomes a containerPort so the pod says what it listens on.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import Problems
from .containers import BuiltContainer, PortEntry
from .labels import app_labels
from .nodes import Path, already_reported, is_dns_1035

CONTAINER_PORT_FIELDS = ("containerPort", "hostIP", "hostPort", "name", "protocol")
SERVICE_SPEC_FIELDS = (
    "clusterIP", "externalIPs", "externalName", "externalTrafficPolicy", "healthCheckNodePort",
    "loadBalancerIP", "loadBalancerSourceRanges", "publishNotReadyAddresses", "selector",
    "sessionAffinity", "sessionAffinityConfig",
)
PORT_KEYS = ("port", "targetPort", "nodePort", "name", "protocol", "target", "published", "type",
             "metadata", "ports", "mode")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
NODE_PORT_RANGE = (30000, 32767)
_SHORT_PORT = re.compile(r"^(?:(?P<ip>[^:]*):)??(?:(?P<published>\d*):)?(?P<target>\d+)"
                         r"(?:/(?P<protocol>[A-Za-z]+))?$")


@dataclass
class ServicePort:
    """One port for a Service, with the Service-level settings its entry carries."""

    path: Path
    service_name: str | None
    type: str
    spec: dict[str, Any]  # a ServicePort
    service_spec: dict[str, Any] = field(default_factory=dict)
    extra_ports: list[Any] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def split_ports(container: BuiltContainer, problems: Problems) -> list[ServicePort]:
    """Container ports go into the ContainerSpec; the rest are returned for Services."""
    service_ports = []
    for entry in container.ports:
        value = _normalise(entry, problems)
        if value is None:
            continue
        if "containerPort" in value or value.get("mode") == "host":
            _add_container_port(container, _container_port(entry, value, problems))
            continue
        service_port = _service_port(entry, value, problems)
        if service_port is None:
            continue
        service_ports.append(service_port)
        target = service_port.spec.get("targetPort", service_port.spec["port"])
        if isinstance(target, int):
            _add_container_port(container, {"containerPort": target,
                                            "protocol": service_port.spec["protocol"]})
    return service_ports


def _normalise(entry: PortEntry, problems: Problems) -> dict[str, Any] | None:
    """Every accepted form of a port as a map."""
    value = entry.value
    if isinstance(value, int) and not isinstance(value, bool):
        return {"port": value}
    if isinstance(value, str):
        return _short_syntax(entry, problems)
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}  # unset fields
    problems.error(entry.path, "a port must be a map, a number or a Compose string like "
                               "\"8080:80\"")
    return None


def _short_syntax(entry: PortEntry, problems: Problems) -> dict[str, Any] | None:
    """Compose "[ip:][published:]target[/protocol]" (published is the Service port)."""
    match = _SHORT_PORT.match(str(entry.value).strip())
    if not match:
        problems.error(entry.path, f"{entry.value!r} is not a port: use \"published:target\", "
                                   "\"target\" (ranges are not supported) or a map")
        return None
    if match.group("ip"):
        problems.warn(entry.path, f"host address {match.group('ip')!r} has no Kubernetes "
                                  "Service equivalent and is ignored")
    target = int(match.group("target"))
    published = int(match.group("published")) if match.group("published") else target
    value: dict[str, Any] = {"port": published, "targetPort": target}
    if match.group("protocol"):
        value["protocol"] = match.group("protocol")
    return value


def _protocol(value: dict[str, Any]) -> str:
    return str(value.get("protocol") or "TCP").upper()


def _container_port(entry: PortEntry, value: dict[str, Any], problems: Problems,
                    ) -> dict[str, Any] | None:
    """A ContainerPort entry; Compose `mode: host` publishes on the node (a hostPort)."""
    if "containerPort" not in value:  # mode: host
        target = value.get("target", value.get("targetPort", value.get("port")))
        published = value.get("published", value.get("port"))
        value = {"containerPort": target, "hostPort": published, "protocol": value.get("protocol")}
        if target is None:
            problems.error(entry.path, "a host-mode port needs `target`")
            return None
    else:
        ignored = sorted(k for k in value if k not in CONTAINER_PORT_FIELDS and k != "mode")
        if ignored:
            problems.warn(entry.path, "an entry with containerPort only opens a port on the "
                                      f"container; ignored: {', '.join(ignored)}")
    port = {k: value[k] for k in CONTAINER_PORT_FIELDS if value.get(k) is not None}
    port["protocol"] = _protocol(value)
    for key in ("containerPort", "hostPort"):
        if key in port and not _check_number(port[key], (*entry.path, key), problems):
            return None
    return port


def _add_container_port(container: BuiltContainer, port: dict[str, Any] | None) -> None:
    if port is None:
        return
    ports = container.spec.setdefault("ports", [])
    key = (port["containerPort"], port.get("protocol", "TCP"))
    if all((p.get("containerPort"), p.get("protocol", "TCP")) != key for p in ports):
        ports.append(port)


def _service_port(entry: PortEntry, value: dict[str, Any], problems: Problems,
                  ) -> ServicePort | None:
    for key in value:
        if key not in PORT_KEYS and key not in SERVICE_SPEC_FIELDS:
            problems.warn((*entry.path, str(key)), "not a Service or port field; ignored")
    port = _first(value, "port", "published", "targetPort", "target")
    if port is None:
        problems.error(entry.path, "a port needs `port` (or `published`, `target`, or "
                                   "`containerPort` for a container-only port)")
        return None
    protocol = _protocol(value)
    spec: dict[str, Any] = {"name": value.get("name") or f"{port}-{protocol.lower()}",
                            "port": port, "protocol": protocol}
    target = _first(value, "targetPort", "target")
    if target is not None:
        spec["targetPort"] = target
    if value.get("nodePort") is not None:
        spec["nodePort"] = value["nodePort"]
    if not _check_port_numbers(entry, spec, problems):
        return None
    service_type = _service_type(entry, value, problems)
    if service_type is None:
        return None
    metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
    name = metadata.get("name")
    service_spec = {k: value[k] for k in SERVICE_SPEC_FIELDS if value.get(k) is not None}
    if "clusterIP" in service_spec and not _valid_cluster_ip(service_spec["clusterIP"]):
        problems.error((*entry.path, "clusterIP"), f"{service_spec['clusterIP']!r} must be an IP "
                                                   "address, or None for a headless Service")
        return None
    extra = value.get("ports") if isinstance(value.get("ports"), list) else []
    return ServicePort(entry.path, None if name is None else str(name), service_type, spec,
                       service_spec, extra, {k: v for k, v in metadata.items() if k != "name"})


def _first(value: dict[str, Any], *keys: str) -> Any:
    return next((value[k] for k in keys if value.get(k) is not None), None)


def _service_type(entry: PortEntry, value: dict[str, Any], problems: Problems) -> str | None:
    """The port's `type`, else NodePort when it sets a nodePort, else ClusterIP."""
    service_type = value.get("type") or ("NodePort" if value.get("nodePort") else "ClusterIP")
    if service_type not in SERVICE_TYPES:
        problems.error((*entry.path, "type"), f"{service_type!r} is not a Service type "
                                              f"({', '.join(SERVICE_TYPES)})")
        return None
    if value.get("nodePort") and service_type not in ("NodePort", "LoadBalancer"):
        problems.error((*entry.path, "nodePort"), f"a {service_type} Service has no node ports; "
                                                  "use type NodePort or LoadBalancer")
        return None
    return service_type


def _check_port_numbers(entry: PortEntry, spec: dict[str, Any], problems: Problems) -> bool:
    ok = _check_number(spec["port"], entry.path, problems)
    if isinstance(spec.get("targetPort"), int):
        ok = _check_number(spec["targetPort"], entry.path, problems) and ok
    elif "targetPort" in spec and not isinstance(spec["targetPort"], str):
        problems.error(entry.path, "targetPort must be a port number or a port name")
        ok = False
    node_port = spec.get("nodePort")
    if node_port is not None:
        path = (*entry.path, "nodePort")
        low, high = NODE_PORT_RANGE
        if not isinstance(node_port, int) or isinstance(node_port, bool) or not (
                low <= node_port <= high):
            if not already_reported(problems, path):
                problems.error(path, f"nodePort {node_port!r} is outside {low}-{high}")
            ok = False
    return ok


def _check_number(value: Any, path: Path, problems: Problems) -> bool:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return True
    if not already_reported(problems, path):
        problems.error(path, f"{value!r} is not a port number (1-65535)")
    return False


def _valid_cluster_ip(value: Any) -> bool:
    if value in ("None", ""):
        return True
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


@dataclass
class _Service:
    type: str
    manifest: dict[str, Any]


def build_services(node_name: str, app_id: str, namespace: str, selector: dict[str, str],
                   ports: list[ServicePort], problems: Problems) -> list[dict[str, Any]]:
    """Ports grouped into Services by (name, type); a second type gets `<name>-<type>`."""
    services: dict[str, _Service] = {}
    for port in ports:
        base = port.service_name or node_name
        name = base
        if name in services and services[name].type != port.type:
            name = f"{base}-{port.type.lower()}"
        if name not in services:
            if not _check_service_name(name, port, problems):
                continue
            services[name] = _Service(port.type, _new_service(
                name, node_name, app_id, namespace, selector, port))
        _add_port(services[name].manifest, port, problems)
    return [s.manifest for s in services.values()]


def _check_service_name(name: str, port: ServicePort, problems: Problems) -> bool:
    if is_dns_1035(name):
        return True
    path = (*port.path, "metadata", "name") if port.service_name else port.path
    problems.error(path, f"Service name {name!r} is not valid: Kubernetes needs at most 63 "
                         "lower-case letters, digits and '-', starting with a letter")
    return False


def _new_service(name: str, node_name: str, app_id: str, namespace: str,
                 selector: dict[str, str], port: ServicePort) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace,
                                "labels": app_labels(node_name, app_id)}
    for key, value in port.metadata.items():
        if key == "labels" and isinstance(value, dict):
            metadata["labels"] = {**metadata["labels"], **value}
        elif key not in ("namespace",):
            metadata[key] = value
    spec: dict[str, Any] = {"type": port.type, "ports": []}
    if port.type != "ExternalName":
        spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def _add_port(service: dict[str, Any], port: ServicePort, problems: Problems) -> None:
    spec = service["spec"]
    for existing in spec["ports"]:
        if existing.get("name") == port.spec["name"]:
            problems.error(port.path, f"Service {service['metadata']['name']!r} already has a "
                                      f"port named {port.spec['name']!r}; give this one a `name`")
            return
        if (existing.get("port"), existing.get("protocol")) == (port.spec["port"],
                                                                port.spec["protocol"]):
            problems.error(port.path, f"Service {service['metadata']['name']!r} already has "
                                      f"port {port.spec['port']}/{port.spec['protocol']}")
            return
    spec["ports"].append(port.spec)
    spec["ports"].extend(p for p in port.extra_ports if p is not None)
    for key, value in port.service_spec.items():
        if key in spec and spec[key] != value and key != "selector":
            problems.warn((*port.path, key), f"ignored: Service {service['metadata']['name']!r} "
                                             f"already has {key} {spec[key]!r}")
            continue
        spec[key] = value
