"""micado.core.scale_nodes on the real OpenStack services of openstack_fixture.py: how a test
runs the playbook there (clouds.yaml through OS_CLIENT_CONFIG_FILE, as the controller's
`nodes.clouds_yaml` does) and a booter that turns ACTIVE Nova servers into Kubernetes Nodes.

`NovaBooter` is cloud_node_harness.Booter with Nova as the cloud: it reads each ACTIVE server's
user-data as admin (Nova shows it to admins only), checks its join as the EC2 booter does, then
registers the Node. Nova spells the tags as metadata `micado.eu:app`, `micado.eu:group`,
`micado.eu:index` (its keys cannot hold `/`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.cloud_node_harness import BootedVm, Booter, run_request

SERVER_URL = "https://10.1.0.1:6443"


@dataclass
class NovaBooter(Booter):
    """Boots ACTIVE Nova servers of every project into Nodes (`ec2` unused: pass None)."""

    admin: Any = None  # an openstacksdk connection as admin
    poll: float = 1.0  # a look lists every project's servers in Nova: CPU in nova-api

    def running(self) -> list[BootedVm]:
        out = []
        for server in self.admin.compute.servers(all_projects=True, status="ACTIVE"):
            if server.id in self._seen:
                continue
            full = self.admin.compute.get_server(server.id)
            addresses = [a.get("addr", "") for net in (full.addresses or {}).values()
                         for a in net]
            out.append(BootedVm(id=server.id, name=server.name,
                                user_data=base64.b64decode(full.user_data or "").decode(),
                                address=addresses[0] if addresses else "",
                                provider_id=f"openstack:///{server.id}"))
        return out


def delete_all_servers(conn: Any) -> None:
    """Leave the project without servers (each test starts from an empty cloud)."""
    servers = list(conn.compute.servers())
    for server in servers:
        conn.compute.delete_server(server)
    for server in servers:
        conn.compute.wait_for_delete(server, wait=120)


def group_servers(conn: Any, app: str, group: str) -> dict[str, Any]:
    """Server name -> server, for the group's servers (by their metadata), deleted ones left out."""
    out = {}
    for server in conn.compute.servers():
        meta = server.metadata or {}
        if meta.get("micado.eu:app") == app and meta.get("micado.eu:group") == group \
                and server.status not in ("DELETED", "SOFT_DELETED"):
            out[server.name] = server
    return out


def openstack_request(cloud: Any, kubeconfig: Path, desired: int,
                      **extravars: Any) -> dict[str, Any]:
    """The extravars the controller sends for a group `worker` of app `shop` on `cloud`."""
    return {
        "cloud_node_app": "shop", "cloud_node_group": "worker", "cloud_node_cloud": "openstack",
        "cloud_node_os_cloud": "project",
        "cloud_node_properties": {"image_id": cloud.image, "flavor_name": cloud.flavor,
                                  "network_id": cloud.network},
        "cloud_node_desired": desired, "cloud_node_drop": [],
        "cloud_node_labels": {"micado.eu/node_type": "worker", "micado.eu/app": "shop"},
        "cloud_node_operation": "op-1", "cloud_node_kubeconfig": str(kubeconfig),
        "cloud_node_server_url": SERVER_URL, "cloud_node_ready_timeout": 120,
        "cloud_node_ready_poll": 1, "cloud_node_drain_timeout": 60,
        "cloud_node_user_data": "packages: [htop]\nruncmd:\n  - echo adt\n",
        **extravars,
    }


def run_scale_openstack(private_data_dir: Path, clouds_yaml: Path, kubeconfig: Path,
                        cloud: Any, desired: int, *, cmdline: str | None = None,
                        **extravars: Any) -> Any:
    """One run of micado.core.scale_nodes through ansible-runner against the OpenStack cloud."""
    private_data_dir.mkdir(parents=True, exist_ok=True)
    return run_request(private_data_dir, openstack_request(cloud, kubeconfig, desired, **extravars),
                       {"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)}, cmdline)
