"""One container node's properties as a Kubernetes ContainerSpec, plus what belongs to its pod.

MiCADO container nodes accept Kubernetes ContainerSpec names and Docker Compose names; Compose
names are translated, Swarm-only ones dropped with a warning. The Kubernetes name wins a clash.
"""

from __future__ import annotations

import copy
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from ..errors import Problems
from ..topology import NodeTemplate, Topology
from .labels import image_version
from .nodes import Path, as_text, is_dns_label, is_plain_scalar, prop_path

# Kubernetes v1 Container fields a property may set directly (`ports` is handled per pod)
CONTAINER_FIELDS = (
    "name", "image", "command", "args", "workingDir", "env", "envFrom", "resources",
    "resizePolicy", "restartPolicy", "volumeMounts", "volumeDevices", "livenessProbe",
    "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
    "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty",
)
# Compose names kept in the container, with the Kubernetes field each becomes
COMPOSE_FIELDS = {
    "entrypoint": "command", "cmd": "args", "environment": "env", "stdin_open": "stdin",
    "working_dir": "workingDir",
}
# Compose names that become pod settings or are handled on their own
POD_LEVEL = ("container_name", "privileged", "labels", "stop_grace_period", "pid", "dns",
             "dns_search", "ports")
SWARM_ONLY = ("configs", "deploy", "env_file", "expose", "extra_hosts", "healthcheck", "init",
              "logging", "networks", "secrets", "stop_signal", "ulimits", "volumes")
DOCKER_HUB_HOSTS = frozenset({"hub.docker.com", "docker.io", "index.docker.io",
                              "registry-1.docker.io", "registry.hub.docker.com"})
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass
class PodOptions:
    """PodSpec settings that Compose sets per container."""

    grace_seconds: int | None = None
    host_pid: bool = False
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)


@dataclass
class PortEntry:
    """One entry of a container's `ports` property, with where it is in the ADT."""

    value: Any
    path: Path


@dataclass
class BuiltContainer:
    node: NodeTemplate
    spec: dict[str, Any]
    version: str
    init: bool
    labels: dict[str, str] = field(default_factory=dict)
    options: PodOptions = field(default_factory=PodOptions)
    ports: list[PortEntry] = field(default_factory=list)


def build_container(topology: Topology, node: NodeTemplate, init: bool,
                    problems: Problems) -> BuiltContainer:
    """The ContainerSpec of `node`; errors are reported and a best-effort spec returned."""
    props = {k: v for k, v in node.properties.items() if v is not None}
    _warn_dropped(node, props, problems)
    image = _image(topology, node, props, problems)
    spec: dict[str, Any] = {"name": _container_name(node, props, problems), "image": image}
    spec.update((k, copy.deepcopy(props[k])) for k in CONTAINER_FIELDS
                if k in props and k not in spec)
    _translate_compose(node, props, spec, problems)
    _text_fields(spec)
    built = BuiltContainer(node, spec, image_version(image or ""), init)
    built.labels = {str(k): as_text(v) for k, v in (props.get("labels") or {}).items()
                    if v is not None} if isinstance(props.get("labels"), dict) else {}
    built.options = _pod_options(node, props, problems)
    ports = props.get("ports")
    if isinstance(ports, list):
        built.ports = [PortEntry(p, prop_path(node, "ports", i)) for i, p in enumerate(ports)
                       if p is not None]
    return built


def _text_fields(spec: dict[str, Any]) -> None:
    """Numbers and booleans where Kubernetes wants text become text: `value: {get_input: PORT}`
    gives 4092, and an env value (like a command or args entry) must be "4092"."""
    env = spec.get("env")
    if isinstance(env, list):
        spec["env"] = [{**entry, "value": as_text(entry["value"])}
                       if isinstance(entry, dict) and is_plain_scalar(entry.get("value"))
                       else entry for entry in env]
    for key in ("command", "args"):
        if isinstance(spec.get(key), list):
            spec[key] = [as_text(v) if is_plain_scalar(v) else v for v in spec[key]]


def _warn_dropped(node: NodeTemplate, props: dict[str, Any], problems: Problems) -> None:
    swarm = [k for k in SWARM_ONLY if k in props]
    if swarm:
        problems.warn(prop_path(node), "Swarm-only properties have no Kubernetes equivalent and "
                                       f"are ignored: {', '.join(swarm)}")
    known = set(CONTAINER_FIELDS) | set(COMPOSE_FIELDS) | set(POD_LEVEL) | set(SWARM_ONLY)
    for key in props:
        if key not in known:
            problems.warn(prop_path(node, key), "not a Kubernetes container field; ignored")


def _container_name(node: NodeTemplate, props: dict[str, Any], problems: Problems) -> str:
    """`name`, else Compose `container_name`, else the node name; must be a DNS-1123 label."""
    for key in ("name", "container_name"):
        value = props.get(key)
        if value is None:
            continue
        if key == "container_name" and "name" in props:
            problems.warn(prop_path(node, key), "ignored: `name` is also given")
            continue
        text = str(value)
        if "_" in text:
            problems.error(prop_path(node, key), f"{text!r} contains an underscore; MiCADO and "
                                                 "Kubernetes forbid them in names (use '-')")
        elif not is_dns_label(text):
            problems.error(prop_path(node, key), f"{text!r} is not a valid container name: use "
                                                 "at most 63 lower-case letters, digits and '-'")
        return text
    return node.name


def _image(topology: Topology, node: NodeTemplate, props: dict[str, Any],
           problems: Problems) -> str | None:
    """The `image` property, else the `image` artifact's file (with its repository's prefix)."""
    image = props.get("image")
    artifact = node.artifacts.get("image")
    if isinstance(artifact, str):
        artifact = {"file": artifact}
    if not isinstance(artifact, dict):
        artifact = {}
    art_file, repository = artifact.get("file"), artifact.get("repository")
    if image is None and art_file is None:
        if not problems.has_error(prop_path(node, "image")):  # not also for an image of a bad type
            problems.error(prop_path(node, "image"), "required: the image the container runs")
        return None
    if image is not None and art_file is not None and str(art_file) != str(image):
        if repository is not None:
            problems.warn((*node.path, "artifacts", "image"),
                          "ignored: the `image` property is given (as in MiCADO)")
        return str(image)
    image = str(image if image is not None else art_file)
    if repository is None:
        return image
    prefix = _registry_prefix(topology, node, str(repository), problems)
    if prefix and not image.startswith(prefix + "/"):
        return f"{prefix}/{image}"
    return image


def _registry_prefix(topology: Topology, node: NodeTemplate, repository: str,
                     problems: Problems) -> str | None:
    """MiCADO's rule: Docker Hub adds nothing; another repository adds its URL sans scheme."""
    if re.sub(r"[\s_\-]", "", repository.lower()) == "dockerhub":
        return None
    definition = topology.repositories.get(repository)
    url = definition.get("url") if isinstance(definition, dict) else definition
    if not isinstance(url, str) or not url.strip():
        known = ", ".join(sorted(map(str, topology.repositories))) or "none"
        problems.error((*node.path, "artifacts", "image", "repository"),
                       f"no repository named {repository!r} in `repositories` (known: {known})")
        return None
    prefix = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://", "", url.strip()).strip("/")
    return None if prefix.split("/", 1)[0].lower() in DOCKER_HUB_HOSTS else prefix


def _translate_compose(node: NodeTemplate, props: dict[str, Any], spec: dict[str, Any],
                       problems: Problems) -> None:
    for compose, kube in COMPOSE_FIELDS.items():
        if compose not in props:
            continue
        if kube in props:
            problems.warn(prop_path(node, compose), f"ignored: `{kube}` is also given")
            continue
        value = _compose_value(node, compose, props[compose], problems)
        if value is not None:
            spec[kube] = value
    privileged = props.get("privileged")
    if isinstance(privileged, bool):
        context = spec.get("securityContext")
        context = dict(context) if isinstance(context, dict) else {}
        context.setdefault("privileged", privileged)
        spec["securityContext"] = context


def _compose_value(node: NodeTemplate, key: str, value: Any, problems: Problems) -> Any:
    if key in ("entrypoint", "cmd"):
        return _split_command(node, key, value, problems)
    if key == "environment":
        if not isinstance(value, dict):
            problems.error(prop_path(node, key), "must be a map of variable name to value")
            return None
        return [{"name": str(k), "value": None if v is None else as_text(v)}
                for k, v in value.items()]
    return value


def _split_command(node: NodeTemplate, key: str, value: Any, problems: Problems,
                   ) -> list[str] | None:
    """A Compose command string split the way a shell would (a list is taken as is)."""
    if isinstance(value, list):
        return [as_text(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError as exc:
        problems.error(prop_path(node, key), f"cannot split into arguments: {exc}")
        return None


def _pod_options(node: NodeTemplate, props: dict[str, Any], problems: Problems) -> PodOptions:
    options = PodOptions()
    if "stop_grace_period" in props:
        options.grace_seconds = parse_duration(props["stop_grace_period"],
                                               prop_path(node, "stop_grace_period"), problems)
    pid = props.get("pid")
    if pid == "host":
        options.host_pid = True
    elif pid is not None:
        problems.warn(prop_path(node, "pid"), f"only `pid: host` has a Kubernetes equivalent "
                                              f"(hostPID); {pid!r} is ignored")
    options.nameservers = _string_list(props.get("dns"))
    options.searches = _string_list(props.get("dns_search"))
    return options


def _string_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def parse_duration(value: Any, path: Path, problems: Problems) -> int | None:
    """Compose durations ("30s", "1m30s", "1h") or plain seconds, as whole seconds (rounded up)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return math.ceil(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return math.ceil(float(text))
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        problems.error(path, f"{value!r} is not a duration like 30s, 1m30s or 1h")
        return None
    return math.ceil(sum(float(n) * _SECONDS[u] for n, u in parts))
