"""Real OpenStack services from PyPI on loopback, for tests that create servers.

Keystone, Placement, Nova (hypervisor: Nova's own `fake.FakeDriverWithoutFakeNodes`), Glance
(file store) and Neutron (ML2, no agents; one driver of ours binds the ports, see
openstack/micado_ml2_bind_all.py) from their own cached venv (openstack_venv.py), each API under
gunicorn on an ephemeral 127.0.0.1 port, SQLite files in WAL mode, and Debian's RabbitMQ with
its own epmd, all on loopback ports of their own, so parallel sessions never collide.

Use it from a test (one cloud for the whole session: tests/conftest.py registers this module as
a plugin, so do not import the fixture into a test module, which would start a cloud of its own)::

    from integration.openstack_fixture import OpenStackCloud

    def test_boot(openstack_cloud: OpenStackCloud) -> None:
        env = {"OS_CLIENT_CONFIG_FILE": str(openstack_cloud.clouds_yaml)}
        # clouds `admin` and `project` (a member of project `micado-demo`); flavor
        # openstack_cloud.flavor, image openstack_cloud.image, network openstack_cloud.network
        conn = openstack_cloud.connect("project")  # or "admin"

The cloud is shared: a test leaves it as it found it. It deletes the servers it made (and those
left over, before it starts: cloud_node_openstack_harness.delete_all_servers), gives its servers
names of its own, and restores what it changes for itself (a quota, a stopped nova-compute, a
flavor of its own).

Under CI=true a missing prerequisite (RabbitMQ, PyPI for the first venv build) fails the test.
What real Nova and openstack.cloud.server insist on (see test_openstack_services.py): metadata
keys match `[a-zA-Z0-9-_:. ]` (so `micado.eu:app`, not `micado.eu/app`) and values are strings;
tags have no `/` or `,`; pass `security_groups: [default]` or every re-run reports a change;
read user_data back as admin (`conn.compute.get_server(id).user_data`, base64).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from cached_venv import VenvError
from conftest import prerequisite
from integration.openstack_venv import ML2_ENTRY_POINT, openstack_python
from integration.prometheus_fixture import free_port, wait_until

RABBITMQ = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
WSGI_DIR = Path(__file__).resolve().parent / "openstack"
# sitecustomize.py there: SQLite transactions begin IMMEDIATE (see that file for why)
SITE_DIR = WSGI_DIR / "site"
REGION = "RegionOne"
COMPUTE_HOST = "micado-fake-compute"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0
DB_BUSY_SECONDS = 120
# the APIs, their WSGI entry modules, the OS_*_CONFIG_DIR variable each one reads and the
# files it reads there (OS_*_CONFIG_FILES; else Neutron also wants plugins/ml2/ml2_conf.ini;
# Nova's WSGI app takes its paste pipeline from the first file, so api-paste.ini goes first)
APIS = {
    "keystone": ("keystone.wsgi.api", "OS_KEYSTONE_CONFIG_DIR", "keystone.conf"),
    "placement": ("placement.wsgi.api", "OS_PLACEMENT_CONFIG_DIR", "placement.conf"),
    "glance": ("glance.wsgi.api", "OS_GLANCE_CONFIG_DIR", "glance-api.conf"),
    "neutron": ("neutron.wsgi.api", "OS_NEUTRON_CONFIG_DIR", "neutron.conf"),
    "nova": ("nova.wsgi.osapi_compute", "OS_NOVA_CONFIG_DIR", "api-paste.ini;nova.conf"),
}
# catalog entries: service type -> (API, path)
CATALOG = {
    "compute": ("nova", "/v2.1"),
    "placement": ("placement", ""),
    "image": ("glance", ""),
    "network": ("neutron", ""),
}
# every interface: keystonemiddleware and Nova's clients look for `internal` first
INTERFACES = ("public", "internal", "admin")
SERVICE_USER = "micado-service"
PROJECT = "micado-demo"
PROJECT_USER = "micado-user"


class OpenStackError(Exception):
    """A service of the test cloud did not start or could not be set up."""


def write_private(path: Path, text: str) -> Path:
    """Write `text` to a file only its owner can read (configs carry passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def ini(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, options in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value}" for key, value in options.items()]
        lines.append("")
    return "\n".join(lines)


@dataclass
class OpenStackCloud:
    """A running set of OpenStack services under `root`; `start()` then `stop()`."""

    root: Path
    python: Path
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    service_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    user_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    rabbit_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    flavor: str = "m1.micado"
    image: str = "micado-test-image"
    network: str = "micado-net"

    # ---- paths and settings ----------------------------------------------------------------
    @property
    def venv(self) -> Path:
        return self.python.parent.parent

    @property
    def clouds_yaml(self) -> Path:
        return self.root / "clouds.yaml"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def url(self, api: str) -> str:
        return f"http://127.0.0.1:{self.ports[api]}"

    @property
    def auth_url(self) -> str:
        return f"{self.url('keystone')}/v3"

    def db(self, name: str) -> str:
        """A service's database URL. Several processes write to each file (Nova's API,
        conductor and scheduler): a writer waits up to DB_BUSY_SECONDS for the lock, where
        SQLite's default 5 s made builds fail with "database is locked" on a loaded machine."""
        return f"sqlite:///{self.root / 'db' / name}.sqlite?timeout={DB_BUSY_SECONDS}"

    def connect(self, cloud: str = "project") -> Any:
        """An openstacksdk connection as `cloud` (`admin` or `project`) of the clouds.yaml."""
        import openstack.config
        import openstack.connection

        loader = openstack.config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
        return openstack.connection.Connection(config=loader.get_one(cloud=cloud))

    # ---- start ------------------------------------------------------------------------------
    def start(self) -> OpenStackCloud:
        begin = self.timings["_t0"] = time.monotonic()
        for name in ("db", "logs", "images", "staging", "tasks", "nova", "locks"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        for name in (*APIS, "amqp", "dist", "epmd"):
            self.ports[name] = free_port()
        self.write_configs()
        nova_conf = self.root / "nova" / "nova.conf"
        try:
            with ThreadPoolExecutor(max_workers=6) as pool:
                rabbit = pool.submit(self.start_rabbitmq)
                syncs = [pool.submit(step) for step in (
                    self.sync_keystone, self.sync_placement, self.sync_glance,
                    self.sync_neutron, self.sync_nova)]
                for future in syncs:
                    future.result()
                self.mark("databases")
                for api in APIS:
                    self.start_api(api)
                self.wait_api("keystone")
                self.register_services()
                for api in APIS:
                    self.wait_api(api)
                self.mark("apis")
                rabbit.result()
            for service in ("conductor", "scheduler", "compute"):
                self.spawn(f"nova-{service}", [str(self.venv / "bin" / f"nova-{service}"),
                                               "--config-file", str(nova_conf)])
            self.wait_compute()
            self.mark("compute")
            self.create_resources()
            self.write_clouds_yaml()
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - begin
        return self

    def mark(self, step: str) -> None:
        self.timings[step] = time.monotonic() - self.timings["_t0"]

    def run(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Run a set-up command of the venv to its end; its output goes to logs/<name>.log."""
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False,
                                  env=service_env(env), timeout=START_TIMEOUT)
        if done.returncode != 0:
            raise OpenStackError(f"{' '.join(argv[:3])} failed:\n{self.tail(log)}")

    def secrets(self) -> list[str]:
        return [self.admin_password, self.service_password, self.user_password,
                self.rabbit_password]

    def manage(self, tool: str, conf: Path, *args: str) -> None:
        self.run(tool, [str(self.venv / "bin" / tool), "--config-file", str(conf), *args])

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start a long-running service in its own process group (stopped by that id)."""
        out = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=service_env(env), cwd=self.root)
        out.close()

    @staticmethod
    def tail(log: Path) -> str:
        return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"

    # ---- configuration ----------------------------------------------------------------------
    def authtoken(self) -> dict[str, Any]:
        return {"www_authenticate_uri": self.auth_url, "auth_url": self.auth_url,
                "auth_type": "password", "project_domain_name": "Default",
                "user_domain_name": "Default", "project_name": "service",
                "username": SERVICE_USER, "password": self.service_password,
                "region_name": REGION, "memcached_servers": "", "service_type": ""}

    def client_auth(self) -> dict[str, Any]:
        auth = self.authtoken()
        for key in ("www_authenticate_uri", "memcached_servers", "service_type"):
            auth.pop(key)
        return auth

    @property
    def transport_url(self) -> str:
        return f"rabbit://micado:{self.rabbit_password}@127.0.0.1:{self.ports['amqp']}/"

    def write_configs(self) -> None:
        etc = self.venv / "etc"
        common = {"debug": "false", "use_stderr": "true", "transport_url": self.transport_url}
        locks = {"lock_path": str(self.root / "locks")}
        configs: dict[str, dict[str, dict[str, Any]]] = {
            "keystone/keystone.conf": {
                "DEFAULT": {"debug": "false", "use_stderr": "true"},
                "database": {"connection": self.db("keystone")},
                "token": {"provider": "fernet"},
                "fernet_tokens": {"key_repository": self.root / "keystone" / "fernet"},
                "credential": {"key_repository": self.root / "keystone" / "credential"},
            },
            "placement/placement.conf": {
                "DEFAULT": {"debug": "false", "use_stderr": "true"},
                "placement_database": {"connection": self.db("placement")},
                "api": {"auth_strategy": "keystone"},
                "keystone_authtoken": self.authtoken(),
            },
            "glance/glance-api.conf": {
                "DEFAULT": {"debug": "false", "use_stderr": "true",
                            "enabled_backends": "fs:file"},
                "database": {"connection": self.db("glance")},
                "paste_deploy": {"flavor": "keystone",
                                 "config_file": etc / "glance" / "glance-api-paste.ini"},
                "keystone_authtoken": self.authtoken(),
                "glance_store": {"default_backend": "fs"},
                "fs": {"filesystem_store_datadir": self.root / "images"},
                "os_glance_staging_store": {"filesystem_store_datadir": self.root / "staging"},
                "os_glance_tasks_store": {"filesystem_store_datadir": self.root / "tasks"},
                "oslo_concurrency": locks,
            },
            "neutron/neutron.conf": {
                "DEFAULT": {**common, "core_plugin": "ml2", "service_plugins": "",
                            "auth_strategy": "keystone",
                            "api_paste_config": etc / "neutron" / "api-paste.ini",
                            "notify_nova_on_port_status_changes": "false",
                            "notify_nova_on_port_data_changes": "false",
                            "state_path": self.root / "neutron"},
                "database": {"connection": self.db("neutron")},
                "keystone_authtoken": self.authtoken(),
                "ml2": {"type_drivers": "local,flat", "tenant_network_types": "local",
                        "mechanism_drivers": ML2_ENTRY_POINT,
                        "extension_drivers": "port_security"},
                "securitygroup": {"enable_security_group": "true"},
                "oslo_concurrency": locks,
            },
            "nova/nova.conf": {
                "DEFAULT": {**common, "compute_driver": "fake.FakeDriverWithoutFakeNodes",
                            "host": COMPUTE_HOST, "my_ip": "127.0.0.1",
                            "state_path": self.root / "nova",
                            "instances_path": self.root / "nova" / "instances",
                            "periodic_fuzzy_delay": 0},
                "api": {"auth_strategy": "keystone"},
                "wsgi": {"api_paste_config": etc / "nova" / "api-paste.ini"},
                "api_database": {"connection": self.db("nova_api")},
                "database": {"connection": self.db("nova")},
                "keystone_authtoken": self.authtoken(),
                "placement": self.client_auth(),
                "neutron": self.client_auth(),
                # Neutron lets only a request with a service token delete a server's port
                "service_user": {**self.client_auth(), "send_service_user_token": "true"},
                "glance": {"region_name": REGION},
                "scheduler": {"discover_hosts_in_cells_interval": 2, "workers": 1},
                "conductor": {"workers": 1},
                "oslo_concurrency": locks,
                "vnc": {"enabled": "false"},
            },
        }
        shutil.copy(etc / "nova" / "api-paste.ini", self.root / "nova" / "api-paste.ini")
        for name, sections in configs.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private(path, ini({k: v for k, v in sections.items() if v}))

    # ---- databases (run in parallel) ---------------------------------------------------------
    def sync_keystone(self) -> None:
        conf = self.root / "keystone" / "keystone.conf"
        self.manage("keystone-manage", conf, "db_sync")
        for step in ("fernet_setup", "credential_setup"):
            self.manage("keystone-manage", conf, step, "--keystone-user", "root",
                        "--keystone-group", "root")
        self.run("keystone-manage", [
            str(self.venv / "bin" / "keystone-manage"), "--config-file", str(conf), "bootstrap",
            "--bootstrap-public-url", self.auth_url, "--bootstrap-internal-url", self.auth_url,
            "--bootstrap-admin-url", self.auth_url, "--bootstrap-region-id", REGION],
            {"OS_BOOTSTRAP_PASSWORD": self.admin_password})  # not on the command line
        wal(self.root / "db" / "keystone.sqlite")

    def sync_placement(self) -> None:
        self.manage("placement-manage", self.root / "placement" / "placement.conf", "db", "sync")
        wal(self.root / "db" / "placement.sqlite")

    def sync_glance(self) -> None:
        self.manage("glance-manage", self.root / "glance" / "glance-api.conf", "db_sync")
        wal(self.root / "db" / "glance.sqlite")

    def sync_neutron(self) -> None:
        """Neutron's migrations ALTER constraints, which SQLite cannot: create the schema from
        its models (what Neutron's own unit tests do), then stamp the migration heads."""
        conf = self.root / "neutron" / "neutron.conf"
        self.run("neutron-schema", [str(self.python), "-c", (
            "import sys, sqlalchemy\n"
            "from neutron.db.migration.models import head\n"
            "head.get_metadata().create_all(sqlalchemy.create_engine(sys.argv[1]))\n"),
            self.db("neutron")])
        self.manage("neutron-db-manage", conf, "stamp", "heads")
        wal(self.root / "db" / "neutron.sqlite")

    def sync_nova(self) -> None:
        conf = self.root / "nova" / "nova.conf"
        self.manage("nova-manage", conf, "api_db", "sync")
        self.manage("nova-manage", conf, "cell_v2", "map_cell0",
                    "--database_connection", self.db("nova_cell0"))
        self.manage("nova-manage", conf, "cell_v2", "create_cell", "--name", "cell1")
        self.manage("nova-manage", conf, "db", "sync")
        for name in ("nova_api", "nova", "nova_cell0"):
            wal(self.root / "db" / f"{name}.sqlite")

    # ---- processes ---------------------------------------------------------------------------
    def start_rabbitmq(self) -> None:
        """Debian's broker with its own epmd, node name, ports, files and Erlang cookie."""
        base = self.root / "rabbitmq"
        base.mkdir(exist_ok=True)
        conf = write_private(base / "rabbitmq.conf", "\n".join([
            f"listeners.tcp.default = 127.0.0.1:{self.ports['amqp']}",
            "default_user = micado", f"default_pass = {self.rabbit_password}",
            "loopback_users = none", ""]))
        (base / "enabled_plugins").write_text("[].\n")
        write_private(base / "rabbitmq-env.conf", "")  # not /etc/rabbitmq/rabbitmq-env.conf
        env = {"HOME": str(base), "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
               "RABBITMQ_NODENAME": f"micado-{self.ports['amqp']}@localhost",
               "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
               "RABBITMQ_NODE_PORT": str(self.ports["amqp"]),
               "RABBITMQ_DIST_PORT": str(self.ports["dist"]),
               "RABBITMQ_CONFIG_FILE": str(conf),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
               "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
               "RABBITMQ_LOG_BASE": str(base / "log"),
               "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(self.ports["epmd"])}
        self.spawn("epmd", ["epmd", "-port", str(self.ports["epmd"]), "-address", "127.0.0.1"])
        self.spawn("rabbitmq", [str(RABBITMQ)], env)
        if not wait_until(lambda: self.accepts("amqp", "rabbitmq"), START_TIMEOUT, 0.2):
            log = self.tail(self.logs / "rabbitmq.log")
            raise OpenStackError(f"rabbitmq did not listen:\n{log}")
        self.mark("rabbitmq")

    def accepts(self, port: str, process: str) -> bool:
        if self.processes[process].poll() is not None:
            raise OpenStackError(f"{process} exited:\n{self.tail(self.logs / f'{process}.log')}")
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", self.ports[port])) == 0

    def start_api(self, api: str) -> None:
        module, conf_dir, files = APIS[api]
        self.spawn(api, [str(self.venv / "bin" / "gunicorn"), "--bind",
                         f"127.0.0.1:{self.ports[api]}", "--workers", "1", "--timeout", "300",
                         "--pythonpath", str(WSGI_DIR), "--log-level", "warning",
                         "wsgi_entry:application"],
                   {"MICADO_OS_WSGI_MODULE": module, conf_dir: str(self.root / api),
                    conf_dir.replace("_DIR", "_FILES"): files})

    def wait_api(self, api: str) -> None:
        def answers() -> bool:
            if self.processes[api].poll() is not None:
                raise OpenStackError(f"{api} exited:\n{self.tail(self.logs / f'{api}.log')}")
            try:
                return requests.get(self.url(api) + "/", timeout=5).status_code < 500
            except requests.RequestException:
                return False

        if not wait_until(answers, START_TIMEOUT, 0.2):
            raise OpenStackError(f"{api} did not answer:\n{self.tail(self.logs / f'{api}.log')}")
        self.mark(api)

    def wait_compute(self) -> None:
        """Until the fake hypervisor is in the cell and its resource provider in Placement."""
        conf = self.root / "nova" / "nova.conf"

        def mapped() -> bool:
            for name in ("nova-conductor", "nova-scheduler", "nova-compute"):
                if self.processes[name].poll() is not None:
                    raise OpenStackError(
                        f"{name} exited:\n{self.tail(self.logs / f'{name}.log')}")
            self.manage("nova-manage", conf, "cell_v2", "discover_hosts")
            return any(h.name == COMPUTE_HOST
                       for h in self.admin().compute.hypervisors()) and self.has_provider()

        if not wait_until(mapped, START_TIMEOUT, 1.0):
            raise OpenStackError(f"nova-compute did not register:\n"
                                 f"{self.tail(self.logs / 'nova-compute.log')}")

    def has_provider(self) -> bool:
        placement = self.admin().placement
        return any(p.name == COMPUTE_HOST for p in placement.resource_providers())

    # ---- identity, catalog and resources ----------------------------------------------------
    def admin(self) -> Any:
        import openstack

        return openstack.connect(
            auth_url=self.auth_url, username="admin", password=self.admin_password,
            project_name="admin", user_domain_name="Default", project_domain_name="Default",
            region_name=REGION, identity_api_version="3")

    def register_services(self) -> None:
        """The service user (admin and service roles) and the catalog of the other APIs."""
        conn = self.admin()
        identity = conn.identity
        service_project = identity.create_project(name="service", domain_id="default")
        roles = {r.name: r for r in identity.roles()}
        if "service" not in roles:
            roles["service"] = identity.create_role(name="service")
        user = identity.create_user(name=SERVICE_USER, password=self.service_password,
                                    domain_id="default", default_project_id=service_project.id)
        for role in ("admin", "service"):
            identity.assign_project_role_to_user(service_project, user, roles[role])
        for service_type, (api, path) in CATALOG.items():
            service = identity.create_service(name=api, type=service_type)
            for interface in INTERFACES:
                identity.create_endpoint(service_id=service.id, interface=interface,
                                         url=self.url(api) + path, region_id=REGION)
        project = identity.create_project(name=PROJECT, domain_id="default")
        member = identity.create_user(name=PROJECT_USER, password=self.user_password,
                                      domain_id="default", default_project_id=project.id)
        identity.assign_project_role_to_user(project, member, roles["member"])
        self.mark("catalog")

    def create_resources(self) -> None:
        """A flavor, a public image with a few bytes of data, a shared network with a subnet."""
        conn = self.admin()
        conn.compute.create_flavor(name=self.flavor, ram=512, vcpus=1, disk=1)
        conn.create_image(self.image, data=b"micado test image\n", disk_format="raw",
                          container_format="bare", visibility="public", wait=True)
        net = conn.network.create_network(name=self.network, shared=True)
        conn.network.create_subnet(name=f"{self.network}-subnet", network_id=net.id,
                                   ip_version=4, cidr="10.77.0.0/24")
        self.mark("resources")

    def write_clouds_yaml(self) -> None:
        def cloud(user: str, password: str, project: str) -> dict[str, Any]:
            return {"auth": {"auth_url": self.auth_url, "username": user, "password": password,
                             "project_name": project, "user_domain_name": "Default",
                             "project_domain_name": "Default"},
                    "region_name": REGION, "identity_api_version": "3",
                    "interface": "public"}

        clouds = {"clouds": {"admin": cloud("admin", self.admin_password, "admin"),
                             "project": cloud(PROJECT_USER, self.user_password, PROJECT)}}
        write_private(self.clouds_yaml, yaml.safe_dump(clouds, sort_keys=False))

    # ---- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop every process this cloud started, by its process group: SIGTERM to all at
        once, SIGKILL to what is left after STOP_TIMEOUT."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            signal_group(process, signal.SIGKILL)  # children left behind (gunicorn workers)
            process.wait(timeout=STOP_TIMEOUT)

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each service's process tree (from /proc), in MiB."""
        return {name: tree_rss(process.pid) / 1024 for name, process in self.processes.items()
                if process.poll() is None}

    def summary(self) -> str:
        return json.dumps({k: round(v, 1) for k, v in self.timings.items() if k != "_t0"})


def service_env(extra: dict[str, str] | None) -> dict[str, str]:
    """The environment of a service process: ours, SITE_DIR first on its path, and `extra`."""
    return {**os.environ, "PYTHONPATH": str(SITE_DIR), **(extra or {})}


def wal(path: Path) -> None:
    """SQLite shared by several processes: WAL, so readers do not block the heartbeats."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Signal the process group `process` leads (started with start_new_session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def tree_rss(pid: int) -> int:
    """RSS in KiB of `pid` and its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def require_openstack() -> Path:
    """The OpenStack venv's interpreter (built on first use); fails under CI when impossible."""
    prerequisite(RABBITMQ.exists() and shutil.which("epmd") is not None,
                 "Debian package rabbitmq-server (tests/debian-packages.txt)")
    try:
        return openstack_python()
    except VenvError as error:
        prerequisite(False, f"OpenStack services from PyPI: {error}")
        raise


@pytest.fixture(scope="session", name="openstack_cloud")
def openstack_cloud_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenStackCloud]:
    """One real OpenStack for the whole session (see the module's docstring): it takes 1-3
    minutes to start and about 1.5 GiB, so every module that asks for it shares it."""
    python = require_openstack()
    cloud = OpenStackCloud(tmp_path_factory.mktemp("openstack"), python)
    try:
        cloud.start()
    except OpenStackError as error:
        pytest.fail(f"OpenStack test cloud did not start: {error}", pytrace=False)
    print(f"\nopenstack test cloud up: {cloud.summary()}", file=sys.stderr)
    yield cloud
    cloud.stop()

