"""`make cluster` (scripts/local-cluster): the tests' control plane for a user, in the foreground.
It serves Ready nodes of one node group, an admin and a controller kubeconfig (0600) and a
controller configuration that points at them, and a Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config

from conftest import REPO
from integration.prometheus_fixture import wait_until
from kube.cluster import require_bins
from micado.control.config import load_config

LOCAL_CLUSTER = REPO / "scripts" / "local-cluster"
START_TIMEOUT = 400.0  # build check, control plane, the role's templates through Ansible, nodes


def processes_in(directory: Path) -> list[int]:
    """The processes whose working directory is `directory` (the cluster's all run there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "cwd") == str(directory):
                    found.append(int(proc.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
    return found


def ignore_sigint() -> None:
    """What a shell does to a command it starts in the background (`make cluster &`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def local_cluster(*args: str, output: Path) -> subprocess.Popen:
    with output.open("w") as out:
        return subprocess.Popen([sys.executable, str(LOCAL_CLUSTER), *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                preexec_fn=ignore_sigint)


@pytest.mark.cluster
@pytest.mark.beside  # make test: in the lane beside the test bed's
def test_make_cluster_serves_ready_nodes_until_ctrl_c(tmp_path: Path) -> None:
    require_bins()
    root = tmp_path / "cluster"
    output = tmp_path / "output"
    process = local_cluster("--nodes", "2", "--app", "trial", "--dir", str(root), output=output)
    try:
        ready = wait_until(lambda: process.poll() is not None
                           or "Ctrl-C stops the cluster" in output.read_text(), START_TIMEOUT, 0.5)
        assert ready and process.poll() is None, output.read_text()
        assert len(processes_in(root)) == 5  # etcd, the API server, two controllers, kwok

        for kubeconfig in ("admin.kubeconfig", "controller.kubeconfig"):
            assert (root / kubeconfig).stat().st_mode & 0o777 == 0o600
        admin = config.new_client_from_config(config_file=str(root / "admin.kubeconfig"))
        nodes = client.CoreV1Api(admin).list_node(
            label_selector="micado.eu/node_type=worker-node,micado.eu/app=trial").items
        assert sorted(node.metadata.name for node in nodes) == ["worker-node-trial-0",
                                                                "worker-node-trial-1"]
        for node in nodes:
            assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"

        # the controller's configuration names the kubeconfig of its ServiceAccount, which
        # may list the nodes as the controller does
        settings = load_config(root / "controller.yaml")
        assert Path(settings.kubernetes.kubeconfig).resolve() == (
        root / "controller.kubeconfig").resolve()
        controller = config.new_client_from_config(config_file=str(root / "controller.kubeconfig"))
        assert len(client.CoreV1Api(controller).list_node().items) == 2
        assert f"--config {root / 'controller.yaml'}" in output.read_text()

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, output.read_text()
        assert "local-cluster: stopped" in output.read_text()
        assert processes_in(root) == []
    finally:
        if process.poll() is None:  # the cluster's processes die with it (PR_SET_PDEATHSIG)
            process.kill()
            process.wait()


def test_a_directory_it_did_not_make_is_never_emptied(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious").write_text("keep me\n")
    output = tmp_path / "output"
    process = local_cluster("--dir", str(mine), output=output)
    assert process.wait(timeout=60) == 1
    assert f"--dir {mine}: not empty and not made by this command" in output.read_text()
    assert (mine / "precious").read_text() == "keep me\n"


def test_a_node_count_out_of_range_is_refused(tmp_path: Path) -> None:
    output = tmp_path / "output"
    process = local_cluster("--nodes", "0", "--dir", str(tmp_path / "cluster"), output=output)
    assert process.wait(timeout=60) == 2
    assert "--nodes: 0 is not between 1 and 50" in output.read_text()
    assert not (tmp_path / "cluster").exists()
