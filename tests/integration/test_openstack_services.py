"""The OpenStack test cloud works for what the cloud_node role does with it.

Real Keystone, Placement, Nova (fake hypervisor), Glance and Neutron from PyPI on loopback
(openstack_fixture.py), reached over HTTP by our pinned openstacksdk and by the Ansible module
openstack.cloud.server from the `ansible` package, with the fixture's clouds.yaml.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.openstack_fixture import OpenStackCloud

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
USER_DATA = "#cloud-config\nruncmd:\n  - [echo, join-token-goes-here]\n"


def run_playbook(cloud: OpenStackCloud, tmp_path: Path, state: str) -> list[bool]:
    """ansible-playbook (from the test venv) creating or deleting two tagged servers; whether
    each loop item (server) changed."""
    playbook = tmp_path / "servers.yml"
    playbook.write_text(textwrap.dedent(f"""\
        - name: Two servers of a node group
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Servers are {state}
              openstack.cloud.server:
                cloud: project
                name: "demo-workers-{{{{ item }}}}"
                state: {state}
                image: {cloud.image}
                flavor: {cloud.flavor}
                network: {cloud.network}
                auto_ip: false
                # the module's default ([]) removes Neutron's `default` group on every re-run
                security_groups: [default]
                metadata:
                  micado.eu:app: demo
                  micado.eu:group: workers
                  micado.eu:index: "{{{{ item | string }}}}"
                tags: [micado, demo-workers]
                userdata: "{{{{ lookup('ansible.builtin.file', 'user-data', rstrip=false) }}}}"
                wait: true
                timeout: 300
              loop: [0, 1]
        """))
    (tmp_path / "user-data").write_text(USER_DATA)
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml),
           "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    task = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return [item["changed"] for item in task["results"]]


def server_user_data(admin: Any, server_id: str) -> str:
    """The user_data Nova keeps for a server (admin-only field, microversion >= 2.3)."""
    server = admin.compute.get_server(server_id)
    return base64.b64decode(server.user_data).decode()


def test_clouds_yaml_is_private_and_names_both_users(openstack_cloud: OpenStackCloud) -> None:
    private = [openstack_cloud.clouds_yaml, *openstack_cloud.root.glob("*/*.conf")]
    assert len(private) >= 7  # clouds.yaml, 5 services, rabbitmq
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for log in openstack_cloud.logs.iterdir():
        text = log.read_text(errors="replace")
        assert not [s for s in openstack_cloud.secrets() if s in text], log
    clouds = yaml.safe_load(openstack_cloud.clouds_yaml.read_text())["clouds"]
    assert {"admin", "project"} <= set(clouds)
    for name in ("admin", "project"):
        token = openstack_cloud.connect(name).authorize()
        assert token


def test_sdk_creates_lists_and_deletes_an_active_server(openstack_cloud: OpenStackCloud) -> None:
    conn = openstack_cloud.connect("project")
    image = conn.image.find_image(openstack_cloud.image)
    flavor = conn.compute.find_flavor(openstack_cloud.flavor)
    network = conn.network.find_network(openstack_cloud.network)
    server = conn.compute.create_server(
        name="sdk-server", image_id=image.id, flavor_id=flavor.id,
        networks=[{"uuid": network.id}], metadata={"micado.eu:app": "sdk"},
        user_data=base64.b64encode(USER_DATA.encode()).decode())
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=300)
    try:
        assert server.status == "ACTIVE"
        listed = {s.id: s for s in conn.compute.servers()}
        assert server.id in listed
        assert listed[server.id].metadata == {"micado.eu:app": "sdk"}
        ports = list(conn.network.ports(device_id=server.id))
        assert len(ports) == 1 and ports[0].binding_vif_type != "binding_failed"
        assert server_user_data(openstack_cloud.connect("admin"), server.id) == USER_DATA
    finally:
        conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=300)
    assert server.id not in {s.id for s in conn.compute.servers()}
    assert list(conn.network.ports(device_id=server.id)) == []


def test_ansible_server_module_is_idempotent_and_deletes(openstack_cloud: OpenStackCloud,
                                                         tmp_path: Path) -> None:
    conn = openstack_cloud.connect("project")
    admin = openstack_cloud.connect("admin")
    try:
        created = run_playbook(openstack_cloud, tmp_path, "present")
        assert created == [True, True]
        servers = {s.name: s for s in conn.compute.servers() if s.name.startswith("demo-")}
        assert sorted(servers) == ["demo-workers-0", "demo-workers-1"]
        for index, name in enumerate(sorted(servers)):
            server = conn.compute.get_server(servers[name].id)
            assert server.status == "ACTIVE"
            assert server.metadata == {"micado.eu:app": "demo", "micado.eu:group": "workers",
                                       "micado.eu:index": str(index)}
            assert sorted(server.tags) == ["demo-workers", "micado"]
            assert server_user_data(admin, server.id) == USER_DATA
        again = run_playbook(openstack_cloud, tmp_path, "present")
        assert again == [False, False]
    finally:
        removed = run_playbook(openstack_cloud, tmp_path, "absent")
    assert removed == [True, True]
    assert [s.name for s in conn.compute.servers() if s.name.startswith("demo-")] == []
