"""The `nodes:` section of the controller's config: the ansible-runner node actuator."""

from __future__ import annotations

from pathlib import Path

import pytest

from micado.control.config import ConfigError, ControllerConfig, NodesConfig, load_config


def load(tmp_path: Path, text: str) -> ControllerConfig:
    path = tmp_path / "controller.yaml"
    path.write_text(text)
    return load_config(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    prefix = f"{tmp_path / 'controller.yaml'}: "
    assert all(p.startswith(prefix) for p in info.value.problems)
    return [p.removeprefix(prefix) for p in info.value.problems]


def test_no_nodes_section_means_no_actuator(tmp_path: Path) -> None:
    assert load(tmp_path, "").nodes is None
    assert load(tmp_path, "nodes: null\n").nodes is None


def test_a_minimal_section_takes_the_kubeconfig_of_the_controller_and_the_defaults(
        tmp_path: Path) -> None:
    config = load(tmp_path, "kubernetes:\n  kubeconfig: kube/config\n"
                            "nodes:\n  server_url: https://10.0.0.1:6443\n")
    assert config.nodes == NodesConfig(server_url="https://10.0.0.1:6443",
                                       kubeconfig=tmp_path / "kube" / "config")
    assert config.nodes.playbook == "micado.core.scale_nodes"
    assert (config.nodes.max_provisioning_seconds, config.nodes.backoff_seconds,
            config.nodes.backoff_max_seconds) == (900.0, 300.0, 1800.0)


def test_every_key_read_and_relative_paths_taken_from_the_file(tmp_path: Path) -> None:
    for name in ("clouds.yaml", "aws", "scale.yml"):
        (tmp_path / name).write_text("x")
    (tmp_path / "collections").mkdir()
    config = load(tmp_path, """\
nodes:
  server_url: https://master:6443
  kubeconfig: k3s.yaml
  playbook: scale.yml
  collections_path: collections
  data_dir: runs
  clouds_yaml: clouds.yaml
  os_cloud: sztaki
  aws_credentials_file: aws
  aws_endpoint_url: http://127.0.0.1:5000
  max_provisioning_seconds: 60
  backoff_seconds: 10
  backoff_max_seconds: 40
  ready_timeout: 120
  drain_timeout: 30
  keep_runs: 2
  reconcile_seconds: 120
""")
    assert config.nodes == NodesConfig(
        server_url="https://master:6443", kubeconfig=tmp_path / "k3s.yaml",
        playbook=str(tmp_path / "scale.yml"), collections_path=tmp_path / "collections",
        data_dir=tmp_path / "runs", clouds_yaml=tmp_path / "clouds.yaml", os_cloud="sztaki",
        aws_credentials_file=tmp_path / "aws", aws_endpoint_url="http://127.0.0.1:5000",
        max_provisioning_seconds=60.0, backoff_seconds=10.0, backoff_max_seconds=40.0,
        ready_timeout=120, drain_timeout=30, keep_runs=2, reconcile_seconds=120.0)


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    found = problems(tmp_path, """\
nodes:
  server_url: http://master:6443
  playbook: missing.yml
  clouds_yaml: nowhere/clouds.yaml
  aws_credentials: x
  max_provisioning_seconds: 0
  reconcile_seconds: 0.5
  backoff_seconds: 600
  backoff_max_seconds: 60
""")
    assert found == [
        "nodes.aws_credentials: unknown setting (did you mean 'aws_credentials_file'?)",
        "nodes.max_provisioning_seconds: must be between 1 and 86400, got 0",
        "nodes.reconcile_seconds: must be between 1 and 86400, got 0.5",
        "nodes.kubeconfig: is required when node groups are run (or kubernetes.kubeconfig)",
        "nodes.server_url: must be the k3s server's https:// URL, got 'http://master:6443'",
        f"nodes.playbook: no such playbook file: {tmp_path / 'missing.yml'}",
        f"nodes.clouds_yaml: no such file: {tmp_path / 'nowhere' / 'clouds.yaml'}",
        "nodes.backoff_max_seconds: must be at least nodes.backoff_seconds (600), got 60",
    ]


def test_a_cloud_name_needs_its_clouds_yaml_and_the_section_a_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, "nodes:\n  server_url: https://m:6443\n  kubeconfig: k\n"
                              "  os_cloud: sztaki\n") == [
        "nodes.os_cloud: needs nodes.clouds_yaml (the file that names the cloud)"]
    assert problems(tmp_path, "nodes: [a]\n") == [
        "nodes: must be a mapping of settings, got a list"]
