"""Unit tests for micado.core.bootstrap_token, run as Ansible runs it (a process reading its
arguments, printing JSON): what it makes up and refuses. Creating the token on a real API
server, with only the right to create Secrets in kube-system, is tests/e2e/test_node_groups_ec2.py
and tests/kube/test_real_cluster.py."""

from __future__ import annotations

import calendar
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ansible_collections.micado.core.plugins.modules import bootstrap_token

MODULE = Path(bootstrap_token.__file__)


def run_module(check_mode: bool = True, **args: Any) -> dict:
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check_mode}}
    env = {**os.environ, "PYTHONPATH": str(MODULE.parents[5])}
    done = subprocess.run([sys.executable, str(MODULE)], input=json.dumps(payload), env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return json.loads(done.stdout)


def test_the_token_is_returned_whole_and_expires_after_the_ttl(tmp_path: Path) -> None:
    """The token is what the VM joins with: returned unmasked (the task itself is no_log), in
    the bootstrap token format, expiring `ttl` seconds from now."""
    before = time.time()
    out = run_module(kubeconfig=str(tmp_path / "kubeconfig"), ttl=600)
    assert out["changed"] is True, out
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", out["token"]), out["token"]
    assert out["token_id"] == out["token"].split(".")[0]
    assert out["name"] == f"bootstrap-token-{out['token_id']}"
    expires = calendar.timegm(time.strptime(out["expiration"], "%Y-%m-%dT%H:%M:%SZ"))
    assert before + 600 - 2 <= expires <= time.time() + 600 + 1
    assert run_module(kubeconfig="x", ttl=600)["token"] != out["token"]


def test_the_secret_is_what_the_authenticator_reads() -> None:
    secret = bootstrap_token.token_secret("abc123", "0123456789abcdef", "2030-01-01T00:00:00Z",
                                          "why", ["system:bootstrappers:k3s:default-node-token"])
    assert (secret["type"], secret["metadata"]) == (
        "bootstrap.kubernetes.io/token",
        {"name": "bootstrap-token-abc123", "namespace": "kube-system"})
    assert secret["stringData"] == {
        "token-id": "abc123", "token-secret": "0123456789abcdef",
        "expiration": "2030-01-01T00:00:00Z", "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true", "description": "why",
        "auth-extra-groups": "system:bootstrappers:k3s:default-node-token"}


def test_bad_arguments_are_refused_with_what_is_wrong(tmp_path: Path) -> None:
    out = run_module(kubeconfig="x", ttl=0)
    assert out["failed"] and "ttl must be a positive number" in out["msg"]
    out = run_module(kubeconfig="x", ttl=60, extra_groups=["system:masters"])
    assert out["failed"] and "must start with system:bootstrappers:" in out["msg"]
    missing = tmp_path / "missing"
    out = run_module(check_mode=False, kubeconfig=str(missing), ttl=60)
    assert out["failed"] and f"cannot use the kubeconfig {missing}" in out["msg"]
