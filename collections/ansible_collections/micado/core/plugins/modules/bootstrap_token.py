#!/usr/bin/python
# Copyright: micado contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A short-lived Kubernetes bootstrap token (what `k3s token create --ttl` makes), created with
a single create call: the caller needs no right to read kube-system's Secrets."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bootstrap_token
short_description: Create a short-lived Kubernetes bootstrap token for nodes to join with
version_added: "0.1.0"
description:
  - Makes up a token id and secret and creates the bootstrap token Secret
    (C(bootstrap-token-<id>) of type C(bootstrap.kubernetes.io/token) in C(kube-system)) with an
    expiration, as C(k3s token create --ttl) or C(kubeadm token create) do.
  - One create request and nothing else. C(kubernetes.core.k8s) reads the object before it
    creates it, so it would need C(get) on every Secret of C(kube-system) (the cluster's own
    credentials); this module needs only C(create) there, which the micado controller's role
    grants (micado.core.k3s_server).
  - Not idempotent by design; every run makes a new token, which the cluster deletes once it has
    expired (the controller manager's tokencleaner).
  - Uses the kubernetes Python client (what kubernetes.core needs too) and any kubeconfig it
    reads.
options:
  kubeconfig:
    description: The kubeconfig to create the token with.
    type: path
    required: true
  ttl:
    description: Seconds until the token expires.
    type: int
    required: true
  description:
    description: The Secret's description (who made the token and why).
    type: str
    default: ""
  extra_groups:
    description: Groups the token authenticates as besides C(system:bootstrappers); each must
      start with C(system:bootstrappers:).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    description: Makes up the token and creates nothing (the API server's dry run would need
      the same right).
    support: full
  diff_mode:
    description: Has no diff to show (the Secret is new every time).
    support: none
author:
  - micado contributors (@micado-scale)
"""

EXAMPLES = r"""
- name: Create the join token in the cluster
  micado.core.bootstrap_token:
    kubeconfig: /etc/micado/kubeconfig
    ttl: 1200
    description: "micado: join worker-shop-1"
    extra_groups: [system:bootstrappers:k3s:default-node-token]
  register: join
  no_log: true
"""

RETURN = r"""
token:
  description: The token, C(<id>.<secret>).
  returned: success
  type: str
token_id:
  description: The public part of the token.
  returned: success
  type: str
name:
  description: The Secret's name in C(kube-system).
  returned: success
  type: str
expiration:
  description: When the token expires (RFC 3339, UTC).
  returned: success
  type: str
"""

import json
import secrets
import string
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
except ImportError:
    HAS_KUBERNETES = False
else:
    HAS_KUBERNETES = True

ALPHABET = string.ascii_lowercase + string.digits  # [a-z0-9], as the token format says
EXTRA_GROUP_PREFIX = "system:bootstrappers:"


def made_up(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for position in range(length))


def token_secret(token_id: str, secret: str, expiration: str, description: str,
                 extra_groups: list[str]) -> dict:
    """The Secret the API server's bootstrap token authenticator reads."""
    data = {"token-id": token_id, "token-secret": secret, "expiration": expiration,
            "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true"}
    if description:
        data["description"] = description
    if extra_groups:
        data["auth-extra-groups"] = ",".join(extra_groups)
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "stringData": data}


def answer(body: object) -> str:
    """The API server's own message in an error's Status body."""
    try:
        return str(json.loads(body).get("message", ""))  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        return ""


def main() -> None:
    module = AnsibleModule(argument_spec={
        "kubeconfig": {"type": "path", "required": True},
        "ttl": {"type": "int", "required": True},
        "description": {"type": "str", "default": ""},
        "extra_groups": {"type": "list", "elements": "str", "default": []},
    }, supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"))
    params = module.params
    if params["ttl"] <= 0:
        module.fail_json(msg=f"ttl must be a positive number of seconds, got {params['ttl']}")
    wrong = [g for g in params["extra_groups"] if not g.startswith(EXTRA_GROUP_PREFIX)]
    if wrong:
        module.fail_json(msg=f"extra_groups must start with {EXTRA_GROUP_PREFIX}: {wrong}")
    token_id, secret = made_up(6), made_up(16)
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + params["ttl"]))
    body = token_secret(token_id, secret, expiration, params["description"],
                        params["extra_groups"])
    if not module.check_mode:
        try:
            api = config.new_client_from_config(config_file=params["kubeconfig"])
        except (ConfigException, OSError) as err:
            module.fail_json(msg=f"cannot use the kubeconfig {params['kubeconfig']}: {err}")
        try:
            with api:
                client.CoreV1Api(api).create_namespaced_secret("kube-system", body)
        except ApiException as err:
            module.fail_json(msg=f"the API server refused the bootstrap token Secret: "
                                 f"{err.status} {err.reason}: {answer(err.body)}")
    module.exit_json(changed=True, token=f"{token_id}.{secret}", token_id=token_id,
                     name=body["metadata"]["name"], expiration=expiration)


if __name__ == "__main__":
    main()
