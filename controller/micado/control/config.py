"""Configuration of the controller daemon (a YAML file) and of the `micado` client commands.

Every key is optional, so an empty file runs a controller with the defaults. Unknown keys are
errors (a typo would otherwise silently fall back to a default), and every problem is reported
at once as ``<file>: <key.path>: <message>``, like the ADT compiler does.
"""

from __future__ import annotations

import difflib
import math
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from micado.adt.yamlio import describe_yaml_error, load_yaml

DEFAULT_CONFIG_PATH = Path("/etc/micado/controller.yaml")
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """A configuration file cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class PrometheusConfig:
    url: str = "http://127.0.0.1:9090"
    timeout: float = 5.0
    rules_dir: Path = Path("/var/lib/micado/prometheus/rules")
    targets_dir: Path = Path("/var/lib/micado/prometheus/targets")


@dataclass(frozen=True)
class KubernetesConfig:
    kubeconfig: Path | None = None  # None: $KUBECONFIG, then ~/.kube/config
    context: str | None = None
    attempts: int = 5
    timeout: float = 30.0


@dataclass(frozen=True)
class EventsConfig:
    max_age_days: float = 14.0
    max_rows: int = 100_000


@dataclass(frozen=True)
class NodesConfig:
    """The VM node-group actuator (`nodes:`): the playbook it runs through ansible-runner and
    what that playbook needs. Credentials are given as file paths, never as values."""

    server_url: str  # the k3s server new nodes join (https://<master>:6443)
    kubeconfig: Path  # what the playbook uses to wait for, drain and delete Nodes
    playbook: str = "micado.core.scale_nodes"  # a collection playbook, or a .yml file path
    collections_path: Path | None = None  # ANSIBLE_COLLECTIONS_PATH for the playbook
    ansible_playbook: Path | None = None  # None: next to the controller's Python, else $PATH
    data_dir: Path | None = None  # None: <state dir>/nodes
    clouds_yaml: Path | None = None  # OpenStack: OS_CLIENT_CONFIG_FILE
    os_cloud: str | None = None  # the cloud's name in clouds.yaml
    aws_credentials_file: Path | None = None  # EC2: AWS_SHARED_CREDENTIALS_FILE
    aws_endpoint_url: str | None = None  # EC2: AWS_ENDPOINT_URL (tests, private clouds)
    max_provisioning_seconds: float = 900.0
    backoff_seconds: float = 300.0
    backoff_max_seconds: float = 1800.0
    ready_timeout: int = 600
    drain_timeout: int = 300
    keep_runs: int = 5  # private data dirs kept per group (the newest), artefacts included
    reconcile_seconds: float = 300.0  # the cloud is listed and reconciled this often


@dataclass(frozen=True)
class ControllerConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    state: Path = Path("/var/lib/micado/state.db")
    token_file: Path = Path("/etc/micado/api-token")
    tick_seconds: float = 15.0
    rule_timeout: float = 1.0
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    nodes: NodesConfig | None = None  # None: node-group operations are recorded, not run
    log_level: str = "info"

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"


# --- validation helpers -------------------------------------------------------------------


class _Problems:
    """Collects `<file>: <key.path>: <message>` lines."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.source}: {key}: {message}")


_Check = Callable[[Any, str, _Problems], Any]
_INVALID = object()  # a value that failed its check; the default is kept so checking goes on


def _number(low: float, high: float, *, integer: bool = False) -> _Check:
    def check(value: Any, key: str, problems: _Problems) -> Any:
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                integer and not isinstance(value, int)):
            problems.add(key, f"must be {kind}, got {_describe(value)}")
            return _INVALID
        if not math.isfinite(value) or not low <= value <= high:
            problems.add(key, f"must be between {_fmt(low)} and {_fmt(high)}, got {value}")
            return _INVALID
        return value if integer else float(value)

    return check


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} ({value!r})"


def _text(value: Any, key: str, problems: _Problems) -> Any:
    if not isinstance(value, str) or not value.strip():
        problems.add(key, f"must be a non-empty string, got {_describe(value)}")
        return _INVALID
    return value.strip()


def _optional(check: _Check) -> _Check:
    def optional(value: Any, key: str, problems: _Problems) -> Any:
        return None if value is None else check(value, key, problems)

    return optional


def _path(base: Path) -> _Check:
    def check(value: Any, key: str, problems: _Problems) -> Any:
        text = _text(value, key, problems)
        if text is _INVALID:
            return _INVALID
        if "\0" in text:
            problems.add(key, "must not contain a NUL character")
            return _INVALID
        path = Path(text).expanduser()
        return path if path.is_absolute() else base / path

    return check


def _listen(value: Any, key: str, problems: _Problems) -> Any:
    text = _text(value, key, problems)
    if text is _INVALID:
        return _INVALID
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""  # an IPv6 address without brackets: its port is ambiguous
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        problems.add(key, f"must be HOST:PORT with a port from 1 to 65535 (IPv6 as [::1]:8080), "
                          f"got {text!r}")
        return _INVALID
    return host, int(port_text)


def _http_url(value: Any, key: str, problems: _Problems) -> Any:
    text = _text(value, key, problems)
    if text is _INVALID:
        return _INVALID
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        problems.add(key, f"is not a valid URL ({exc}): {text!r}")
        return _INVALID
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add(key, f"must be an http:// or https:// URL with a host, got {text!r}")
        return _INVALID
    return text.rstrip("/")


def _log_level(value: Any, key: str, problems: _Problems) -> Any:
    if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
        problems.add(key, f"must be one of {', '.join(LOG_LEVELS)}, got {_describe(value)}")
        return _INVALID
    return value.lower()


def _read_section(data: Any, prefix: str, checks: Mapping[str, _Check],
                  problems: _Problems) -> dict[str, Any]:
    """Checked values of one mapping, by key; unknown keys reported with a suggestion."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.add(prefix or "(top level)", f"must be a mapping of settings, got "
                                              f"{_describe(data)}")
        return {}
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        check = checks.get(key) if isinstance(key, str) else None
        if check is None:
            problems.add(path, "unknown setting" + _suggestion(str(key), checks))
            continue
        checked = check(value, path, problems)
        if checked is not _INVALID:
            values[key] = checked
    return values


def _suggestion(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(known)})"


def _nested(value: Any, key: str, problems: _Problems) -> Any:
    """A nested section, checked by its own `_read_section` call."""
    return value


# --- the controller's file ---------------------------------------------------------------


def load_config(path: Path | str) -> ControllerConfig:
    """Read and check the daemon's configuration; ConfigError lists every problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{source}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: cannot read: {exc}"]) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {describe_yaml_error(exc)}"]) from None
    return parse_config(data, source=source, base=path.resolve().parent)


def parse_config(data: Any, *, source: str, base: Path) -> ControllerConfig:
    """Check parsed YAML; relative paths are taken from `base` (the file's directory)."""
    problems = _Problems(source)
    paths = _path(base)
    top = _read_section(data, "", {
        "listen": _listen,
        "state": paths,
        "token_file": paths,
        "tick_seconds": _number(0.5, 3600),
        "rule_timeout": _number(0.05, 30),
        "prometheus": _nested,
        "kubernetes": _nested,
        "events": _nested,
        "nodes": _nested,
        "log_level": _log_level,
    }, problems)
    prometheus = _read_section(top.pop("prometheus", None), "prometheus", {
        "url": _http_url,
        "timeout": _number(0.1, 300),
        "rules_dir": paths,
        "targets_dir": paths,
    }, problems)
    kubernetes = _read_section(top.pop("kubernetes", None), "kubernetes", {
        "kubeconfig": _optional(paths),
        "context": _optional(_text),
        "attempts": _number(1, 20, integer=True),
        "timeout": _number(1, 600),
    }, problems)
    events = _read_section(top.pop("events", None), "events", {
        "max_age_days": _number(0.01, 3650),
        "max_rows": _number(100, 100_000_000, integer=True),
    }, problems)
    nodes = _read_nodes(top.pop("nodes", None), kubernetes.get("kubeconfig"), paths, problems)
    if "listen" in top:
        top["listen_host"], top["listen_port"] = top.pop("listen")
    if problems.lines:
        raise ConfigError(problems.lines)
    return ControllerConfig(
        **top,
        prometheus=PrometheusConfig(**prometheus),
        kubernetes=KubernetesConfig(**kubernetes),
        events=EventsConfig(**events),
        nodes=nodes,
    )


def _read_nodes(data: Any, kubeconfig: Path | None, paths: _Check,
                problems: _Problems) -> NodesConfig | None:
    """The `nodes:` section; absent or null: no actuator."""
    if data is None:
        return None
    values = _read_section(data, "nodes", {
        "server_url": _http_url,
        "kubeconfig": paths,
        "playbook": _text,
        "collections_path": paths,
        "ansible_playbook": paths,
        "data_dir": paths,
        "clouds_yaml": paths,
        "os_cloud": _text,
        "aws_credentials_file": paths,
        "aws_endpoint_url": _http_url,
        "max_provisioning_seconds": _number(1, 86400),
        "backoff_seconds": _number(0.1, 86400),
        "backoff_max_seconds": _number(0.1, 86400),
        "ready_timeout": _number(1, 86400, integer=True),
        "drain_timeout": _number(1, 86400, integer=True),
        "keep_runs": _number(1, 1000, integer=True),
        "reconcile_seconds": _number(1, 86400),
    }, problems)
    if not isinstance(data, dict):
        return None
    values.setdefault("kubeconfig", kubeconfig)
    for key in ("server_url", "kubeconfig"):
        if values.get(key) is None and key not in data:
            hint = " (or kubernetes.kubeconfig)" if key == "kubeconfig" else ""
            problems.add(f"nodes.{key}", f"is required when node groups are run{hint}")
    if "server_url" in values and not values["server_url"].startswith("https://"):
        problems.add("nodes.server_url", f"must be the k3s server's https:// URL, got "
                                         f"{values['server_url']!r}")
    playbook = values.get("playbook")
    if playbook is not None and _is_playbook_file(playbook):
        path = paths(playbook, "nodes.playbook", problems)
        if path is not _INVALID and not path.is_file():
            problems.add("nodes.playbook", f"no such playbook file: {path}")
        elif path is not _INVALID:
            values["playbook"] = str(path)
    for key in ("clouds_yaml", "aws_credentials_file", "ansible_playbook"):
        if key in values and not values[key].is_file():
            problems.add(f"nodes.{key}", f"no such file: {values[key]}")
    if "collections_path" in values and not values["collections_path"].is_dir():
        problems.add("nodes.collections_path", f"no such directory: {values['collections_path']}")
    if values.get("os_cloud") and "clouds_yaml" not in values:
        problems.add("nodes.os_cloud", "needs nodes.clouds_yaml (the file that names the cloud)")
    low, high = values.get("backoff_seconds", 300.0), values.get("backoff_max_seconds", 1800.0)
    if low > high:
        problems.add("nodes.backoff_max_seconds",
                     f"must be at least nodes.backoff_seconds ({_fmt(low)}), got {_fmt(high)}")
    if problems.lines or values.get("server_url") is None or values.get("kubeconfig") is None:
        return None
    return NodesConfig(**values)


def _is_playbook_file(name: str) -> bool:
    """`micado.core.scale_nodes` names a collection playbook; a path or *.yml names a file."""
    return "/" in name or name.endswith((".yml", ".yaml"))


# --- the client side ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClientConfig:
    endpoint: str
    token: str | None


def default_client_config_path(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".config" / "micado" / "client.yaml"


def load_client_config(endpoint_flag: str | None, token_file_flag: str | Path | None,
                       config_path: str | Path | None,
                       environ: Mapping[str, str] | None = None) -> ClientConfig:
    """Endpoint and token from flags, then $MICADO_ENDPOINT / $MICADO_TOKEN_FILE, then the file.

    The file (default ~/.config/micado/client.yaml) may be absent unless named explicitly.
    """
    env = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    if config_path is not None:
        file_values = _read_client_file(Path(config_path), required=True)
    else:
        file_values = _read_client_file(default_client_config_path(env), required=False)

    if endpoint_flag:
        endpoint, where = endpoint_flag, "--endpoint"
    elif env.get("MICADO_ENDPOINT"):
        endpoint, where = env["MICADO_ENDPOINT"], "$MICADO_ENDPOINT"
    elif "endpoint" in file_values:
        endpoint, where = file_values["endpoint"], "endpoint in the client config"
    else:
        endpoint, where = DEFAULT_ENDPOINT, "default endpoint"
    problems = _Problems(where)
    checked = _http_url(endpoint, "endpoint", problems)
    if problems.lines:
        raise ConfigError(problems.lines)

    token_file: Path | None
    if token_file_flag:
        token_file = Path(token_file_flag).expanduser()
    elif env.get("MICADO_TOKEN_FILE"):
        token_file = Path(env["MICADO_TOKEN_FILE"]).expanduser()
    else:
        token_file = file_values.get("token_file")
    token = read_client_token(token_file) if token_file is not None else None
    return ClientConfig(endpoint=checked, token=token)


def _read_client_file(path: Path, *, required: bool) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError([f"{source}: no such file"]) from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{source}: cannot read: {exc}"]) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {describe_yaml_error(exc)}"]) from None
    problems = _Problems(source)
    values = _read_section(data, "", {"endpoint": _text,
                                      "token_file": _path(path.resolve().parent)}, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    return values


def read_client_token(path: Path) -> str:
    """The API token from a file only its owner can read (as ssh insists for private keys)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError([f"{path}: the token file is not a regular file"])
        if info.st_mode & 0o077:
            raise ConfigError([
                f"{path}: the token file is accessible by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); refusing to use it: run chmod 600 {path}"])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: token file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the token file: {exc}"]) from None
    token = text.strip()
    if not token:
        raise ConfigError([f"{path}: the token file is empty"])
    return token
