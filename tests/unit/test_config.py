"""The controller's config file and the client's endpoint/token resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from micado.control.config import (
    DEFAULT_ENDPOINT,
    ClientConfig,
    ConfigError,
    ControllerConfig,
    EventsConfig,
    KubernetesConfig,
    PrometheusConfig,
    load_client_config,
    load_config,
)

FULL = """\
listen: 0.0.0.0:9443
state: state/state.db
token_file: /etc/micado/token
tick_seconds: 5
rule_timeout: 0.5
prometheus:
  url: http://prometheus:9090/
  timeout: 2
  rules_dir: prom/rules
  targets_dir: /srv/targets
kubernetes:
  kubeconfig: kube/config
  context: k3s
  attempts: 3
  timeout: 10
events:
  max_age_days: 7
  max_rows: 5000
log_level: DEBUG
"""


def write(tmp_path: Path, text: str, name: str = "controller.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def test_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config == ControllerConfig()
    assert config.listen == "127.0.0.1:8080"
    assert config.state == Path("/var/lib/micado/state.db")
    assert config.token_file == Path("/etc/micado/api-token")
    assert config.tick_seconds == 15 and config.rule_timeout == 1.0
    assert config.prometheus == PrometheusConfig(
        url="http://127.0.0.1:9090", timeout=5.0,
        rules_dir=Path("/var/lib/micado/prometheus/rules"),
        targets_dir=Path("/var/lib/micado/prometheus/targets"))
    assert config.kubernetes == KubernetesConfig(kubeconfig=None, context=None, attempts=5,
                                                 timeout=30.0)
    assert config.events == EventsConfig(max_age_days=14, max_rows=100_000)
    assert config.log_level == "info"


def test_every_key_read_and_relative_paths_taken_from_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    base = tmp_path.resolve()
    assert (config.listen_host, config.listen_port, config.listen) == ("0.0.0.0", 9443,
                                                                       "0.0.0.0:9443")
    assert config.state == base / "state" / "state.db"
    assert config.token_file == Path("/etc/micado/token")
    assert config.tick_seconds == 5.0 and isinstance(config.tick_seconds, float)
    assert config.rule_timeout == 0.5
    assert config.prometheus == PrometheusConfig(url="http://prometheus:9090", timeout=2.0,
                                                 rules_dir=base / "prom" / "rules",
                                                 targets_dir=Path("/srv/targets"))
    assert config.kubernetes == KubernetesConfig(kubeconfig=base / "kube" / "config",
                                                 context="k3s", attempts=3, timeout=10.0)
    assert config.events == EventsConfig(max_age_days=7.0, max_rows=5000)
    assert config.log_level == "debug"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    with pytest.raises(AttributeError):
        config.tick_seconds = 1  # type: ignore[misc]


def test_ipv6_listen_address(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "listen: '[::1]:8081'\n"))
    assert (config.listen_host, config.listen_port, config.listen) == ("::1", 8081, "[::1]:8081")


def test_every_problem_is_reported_with_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, """\
listen: localhost
tick_seconds: 0.1
rule_timeout: fast
log_level: verbose
prometheus:
  url: ftp://prometheus
  timeout: true
kubernetes:
  attempts: 2.5
  context: ''
events:
  max_rows: 10
""")
    problems = problems_of(path)
    where = str(path)
    expected = [
        f"{where}: listen: must be HOST:PORT",
        f"{where}: tick_seconds: must be between 0.5 and 3600, got 0.1",
        f"{where}: rule_timeout: must be a number, got a string ('fast')",
        f"{where}: log_level: must be one of debug, info, warning, error, critical",
        f"{where}: prometheus.url: must be an http:// or https:// URL",
        f"{where}: prometheus.timeout: must be a number, got a boolean (true)",
        f"{where}: kubernetes.attempts: must be an integer, got float (2.5)",
        f"{where}: kubernetes.context: must be a non-empty string",
        f"{where}: events.max_rows: must be between 100 and 100000000, got 10",
    ]
    assert len(problems) == len(expected), problems
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, """\
tick_second: 5
prometheus:
  rule_dir: /x
zzz: 1
"""))
    where = str(tmp_path / "controller.yaml")
    assert f"{where}: tick_second: unknown setting (did you mean 'tick_seconds'?)" in problems
    assert (f"{where}: prometheus.rule_dir: unknown setting (did you mean 'rules_dir'?)"
            in problems)
    unknown = next(p for p in problems if p.startswith(f"{where}: zzz:"))
    assert "known: listen, state, token_file" in unknown


def test_sections_and_top_level_must_be_mappings(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "- a\n- b\n")) == [
        f"{tmp_path / 'controller.yaml'}: (top level): must be a mapping of settings, got a list"]
    problems = problems_of(write(tmp_path, "prometheus: 3\nevents: [1]\n"))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "prometheus: must be a mapping of settings, got int (3)",
        "events: must be a mapping of settings, got a list"]


def test_null_sections_and_optional_values_take_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "prometheus:\nkubernetes:\n  kubeconfig: null\n"))
    assert config == ControllerConfig()


def test_bad_yaml_missing_file_and_duplicate_keys(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "listen: [\n"))
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'controller.yaml'}: not valid YAML: line ")
    duplicate = problems_of(write(tmp_path, "tick_seconds: 1\ntick_seconds: 2\n"))
    assert "duplicate key 'tick_seconds'" in duplicate[0]
    assert problems_of(tmp_path / "absent.yaml") == [f"{tmp_path / 'absent.yaml'}: no such file"]


# --- client ------------------------------------------------------------------------------


def token_file(directory: Path, text: str = "s3cret\n", mode: int = 0o600,
               name: str = "token") -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(mode)
    return path


def test_client_defaults_without_any_configuration(tmp_path: Path) -> None:
    config = load_client_config(None, None, None, environ={"HOME": str(tmp_path)})
    assert config == ClientConfig(endpoint=DEFAULT_ENDPOINT, token=None)


def test_client_precedence_flags_then_environment_then_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".config" / "micado").mkdir(parents=True)
    token_file(home / ".config" / "micado", "from-file", name="api-token")
    (home / ".config" / "micado" / "client.yaml").write_text(
        "endpoint: https://file.example:8443\ntoken_file: api-token\n")
    env_token = token_file(tmp_path, "from-env", name="env-token")
    flag_token = token_file(tmp_path, "from-flag", name="flag-token")

    env = {"HOME": str(home)}
    assert load_client_config(None, None, None, environ=env) == ClientConfig(
        "https://file.example:8443", "from-file")
    env.update(MICADO_ENDPOINT="http://env.example:8080/", MICADO_TOKEN_FILE=str(env_token))
    assert load_client_config(None, None, None, environ=env) == ClientConfig(
        "http://env.example:8080", "from-env")
    assert load_client_config("http://flag.example", flag_token, None, environ=env) == \
        ClientConfig("http://flag.example", "from-flag")


def test_explicit_client_config_must_exist_and_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.yaml: no such file"):
        load_client_config(None, None, tmp_path / "absent.yaml", environ={})
    bad = tmp_path / "client.yaml"
    bad.write_text("endpont: http://x\n")
    with pytest.raises(ConfigError) as info:
        load_client_config(None, None, bad, environ={})
    assert info.value.problems == [
        f"{bad}: endpont: unknown setting (did you mean 'endpoint'?)"]
    with pytest.raises(ConfigError, match=r"--endpoint: endpoint: must be an http:// or "
                                          r"https:// URL with a host, got 'localhost:8080'"):
        load_client_config("localhost:8080", None, None, environ={"HOME": str(tmp_path)})


def test_client_refuses_a_token_file_others_can_read(tmp_path: Path) -> None:
    readable = token_file(tmp_path, mode=0o644)
    with pytest.raises(ConfigError) as info:
        load_client_config(None, readable, None, environ={"HOME": str(tmp_path)})
    message = str(info.value)
    assert "accessible by group or others (mode 0644)" in message
    assert f"chmod 600 {readable}" in message
    assert "s3cret" not in message
    group = token_file(tmp_path, mode=0o640, name="group")
    with pytest.raises(ConfigError, match="mode 0640"):
        load_client_config(None, group, None, environ={"HOME": str(tmp_path)})


def test_client_token_file_missing_or_empty(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match="token file not found"):
        load_client_config(None, tmp_path / "none", None, environ=env)
    with pytest.raises(ConfigError, match="the token file is empty"):
        load_client_config(None, token_file(tmp_path, " \n"), None, environ=env)



def test_the_example_controller_config_is_valid_and_documents_the_defaults() -> None:
    from conftest import REPO
    from micado.control.config import ControllerConfig

    assert load_config(REPO / "examples" / "controller.yaml") == ControllerConfig()
