"""The controller daemon with the ansible-runner node actuator configured: an app whose node
group's rule asks for 2 nodes runs the scale_nodes playbook (the test stand-in in
tests/data/nodes/) through ansible-runner, the operation finishes, and its runner events show in
`micado events` and `micado status`; a failing run shows its failure and backoff in
`micado status` until it succeeds. Secrets in the daemon's environment and credentials file
reach no artefact. Kubernetes is the real control plane (tests/kube/cluster.py), as the
controller's ServiceAccount."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO
from e2e.daemon_harness import Daemon, wait_for
from fakes.prometheus_api import FakePrometheus
from kube.cluster import KubeCluster

PLAYBOOK = REPO / "tests" / "data" / "nodes" / "scale_nodes.yml"
SECRET = "daemon-s3cr3t-do-not-leak"
ENV_SECRET = "daemon-env-s3cr3t-do-not-leak"
ADT = """\
tosca_definitions_version: tosca_simple_yaml_1_2
imports:
  - https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml
topology_template:
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.25
      requirements:
        - host: workers
    workers:
      type: tosca.nodes.MiCADO.EC2.Compute
      properties:
        region_name: eu-west-1
        image_id: ami-12345678
        instance_type: t3.small
  policies:
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [ workers ]
        properties:
          min_instances: 0
          max_instances: 3
          scaling_rule: |
            m_node_count = 2
"""

# mostly waiting for ansible-runner and the Nodes: make test runs it in the lane beside the one
# of the test bed (scripts/run-tests)
pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.beside]


def test_a_node_group_scaled_from_0_to_2_runs_the_playbook(
        tmp_path: Path, kube_cluster: KubeCluster) -> None:
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(f"[default]\naws_access_key_id = AKIA1\n"
                           f"aws_secret_access_key = {SECRET}\n")
    credentials.chmod(0o600)
    # the stand-in playbook works in the directory of its kubeconfig: the controller's, here
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.touch(mode=0o600)
    kubeconfig.write_bytes(kube_cluster.controller_kubeconfig.read_bytes())
    with FakePrometheus() as prometheus:
        daemon = Daemon(tmp_path, "", prometheus.url, tmp_path / "rules",
                        tmp_path / "targets", tick_seconds=1.0, kubeconfig=kubeconfig,
                        nodes={"server_url": "https://10.0.0.1:6443", "playbook": str(PLAYBOOK),
                               "aws_credentials_file": str(credentials),
                               "backoff_seconds": 1, "backoff_max_seconds": 2},
                        env={"AWS_SECRET_ACCESS_KEY": ENV_SECRET})
        daemon.start()
        try:
            adt = tmp_path / "app.yaml"
            adt.write_text(ADT)
            (tmp_path / "fail-workers").write_text("quota exceeded")
            done = daemon.cli("start", str(adt), "--id", "vms")
            assert done.returncode == 0, done.stderr
            wait_for(lambda: daemon.events("action_failed"), 120, "a failed run")
            shown = daemon.cli("status", "vms").stdout
            assert ("failure(s), last: localhost failed: Fail as the test asked: "
                    "quota exceeded;") in shown, shown
            assert "  pending operations:\n    #" in shown, shown
            (tmp_path / "fail-workers").unlink()

            def finished() -> list[dict]:
                return [e for e in daemon.events("action") if "done, 2 nodes" in e["message"]]
            wait_for(finished, 120, "the 0 -> 2 operation to finish")
            assert (tmp_path / "count-vms-workers").read_text() == "2"
            status = daemon.api("GET", "/v1/apps/vms/status").json()
            assert status["pending_operations"] == []
            group = status["node_groups"][0]
            assert group["group"] == "workers" and group["failures"] == 0
            assert group["last_runner_event"] == "task: Record the end of the run"
            shown = daemon.cli("status", "vms")
            assert "node group workers: last runner event: task: Record the end of the run" \
                in shown.stdout, shown.stdout
            events = daemon.cli("events", "--app", "vms", "--limit", "1000")
            assert events.returncode == 0
            assert "runner  node group workers: operation" in events.stdout
            assert "localhost changed: Resize the group" in events.stdout
            as_json = daemon.cli("events", "--app", "vms", "--limit", "1000", "--json")
            kinds = {e["kind"] for e in json.loads(as_json.stdout)["events"]}
            assert {"operation", "runner", "action"} <= kinds
            stopped = daemon.cli("stop", "vms")
            assert stopped.returncode == 0, stopped.stderr
            deleted = wait_for(lambda: daemon.events("deleted"), 30, "the app's deletion")
            assert ("node group workers -> 0: its VMs are being removed (drained first)"
                    in deleted[0]["message"])
            removed = wait_for(lambda: [e for e in daemon.events() if "its VMs are removed"
                                        in e["message"]], 120, "the group's VMs removed")
            assert removed[0]["app_id"] == "vms"
            assert (tmp_path / "count-vms-workers").read_text() == "0"
            assert daemon.stop() == 0
        finally:
            daemon.kill()
    files = [p for p in (tmp_path / "state" / "nodes").rglob("*") if p.is_file()]
    assert any(p.name == "command" for p in files)
    for path in files:
        content = path.read_bytes()
        assert SECRET.encode() not in content and ENV_SECRET.encode() not in content, path
