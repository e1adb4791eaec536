"""The gateway role's real nginx site, rendered by Ansible into a private directory and served by
Debian's nginx as a foreground process on free loopback ports.

Ansible renders the role's own files (a local play includes the role's tls_selfsigned.yml and
token.yml and templates its htpasswd.j2 and micado-gateway.conf.j2), with the role's defaults and
only the paths, ports and upstream pointed at the test. nginx runs as root with `user www-data`,
as on a site: workers read the htpasswd file through its group, the master the token snippet.
Needs root (the role makes its files root:www-data) and the Debian package nginx.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from conftest import REPO, prerequisite
from integration.prometheus_fixture import free_port, terminate, wait_until

ROLE = REPO / "collections" / "ansible_collections" / "micado" / "core" / "roles" / "gateway"
NGINX = "/usr/sbin/nginx"
START_TIMEOUT = 15.0


def require_gateway_tools() -> None:
    prerequisite(Path(NGINX).is_file(), "Debian package nginx (/usr/sbin/nginx)")
    prerequisite(os.geteuid() == 0, "root (the gateway role writes root:www-data files)")
    prerequisite((Path(sys.executable).parent / "ansible-playbook").is_file(),
                 "ansible-playbook in the venv (pip install ansible)")


def _play(root: Path) -> list[dict]:
    """The role's template tasks; its reload handler is replaced (the test starts nginx)."""
    return [{
        "name": "Render the gateway role's nginx files into a test directory",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(root / "vars.yml")],
        "tasks": [
            {"name": "Create the TLS directory",
             "ansible.builtin.file": {"path": "{{ gateway_tls_dir }}", "state": "directory",
                                      "mode": "0700"}},
            {"name": "The role's self-signed CA and server certificate",
             "ansible.builtin.include_tasks": str(ROLE / "tasks" / "tls_selfsigned.yml"),
             "vars": {"gateway__ready": True}},
            {"name": "The role's token snippet",
             "ansible.builtin.include_tasks": str(ROLE / "tasks" / "token.yml")},
            {"name": "The role's htpasswd file",
             "ansible.builtin.template": {"src": str(ROLE / "templates" / "htpasswd.j2"),
                                          "dest": "{{ gateway_htpasswd_file }}",
                                          "owner": "root", "group": "www-data",
                                          "mode": "0640"},
             "no_log": True},
            {"name": "The role's site",
             "ansible.builtin.template": {
                 "src": str(ROLE / "templates" / "micado-gateway.conf.j2"),
                 "dest": str(root / "micado-gateway.conf"), "mode": "0644"}},
        ],
        "handlers": [{"name": "The test starts nginx itself",
                      "listen": "gateway reload nginx",
                      "ansible.builtin.debug": {"msg": "no reload: nginx is not running yet"}}],
    }]


@dataclass
class Gateway:
    """The rendered site under `root` and the nginx process serving it."""

    root: Path
    upstream: str
    token_file: Path
    users: list[dict[str, str]]
    settings: dict[str, object] = field(default_factory=dict)  # more role variables
    https_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    render_output: str = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.crt"

    @property
    def site(self) -> Path:
        return self.root / "micado-gateway.conf"

    @property
    def token_snippet(self) -> Path:
        return self.root / "micado-gateway-token.conf"

    @property
    def htpasswd(self) -> Path:
        return self.root / "micado-gateway.htpasswd"

    def render(self) -> Gateway:
        settings = {
            "gateway_server_name": "127.0.0.1",
            "gateway_listen_address": "127.0.0.1",
            "gateway_https_port": self.https_port,
            "gateway_http_port": self.http_port,
            "gateway_listen_ipv6": False,
            "gateway_tls_dir": str(self.root / "tls"),
            "gateway_htpasswd_file": str(self.htpasswd),
            "gateway_controller_token_file": str(self.token_file),
            "gateway_token_snippet_file": str(self.token_snippet),
            "gateway_controller_upstream": self.upstream,
            "gateway_users": self.users,
            "gateway_bcrypt_rounds": 4,  # the cost of each request, not what is tested here
            **self.settings,
        }
        variables = self.root / "vars.yml"
        variables.touch(mode=0o600)
        variables.write_text(yaml.safe_dump(settings))
        # the role's tasks find its templates next to the play (a link, not a copy)
        (self.root / "templates").symlink_to(ROLE / "templates")
        play = self.root / "render.yml"
        play.write_text(yaml.safe_dump(_play(self.root), sort_keys=False))
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_GATHERING": "explicit",
               "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,",
             "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        self.render_output = done.stdout + done.stderr
        variables.unlink()
        assert done.returncode == 0, self.render_output[-5000:]
        return self

    def start(self) -> Gateway:
        config = self.root / "nginx.conf"
        config.write_text(f"""\
user www-data;
pid {self.root / 'nginx.pid'};
error_log stderr;
events {{}}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {self.root / 'temp' / 'body'};
    proxy_temp_path {self.root / 'temp' / 'proxy'};
    fastcgi_temp_path {self.root / 'temp' / 'fastcgi'};
    uwsgi_temp_path {self.root / 'temp' / 'uwsgi'};
    scgi_temp_path {self.root / 'temp' / 'scgi'};
    include {self.site};
}}
""")
        (self.root / "temp").mkdir(exist_ok=True)
        log = (self.root / "nginx.log").open("wb")
        self.process = subprocess.Popen(
            [NGINX, "-e", "stderr", "-p", str(self.root), "-c", str(config),
             "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if not wait_until(self._ready, START_TIMEOUT, 0.05):
            self.stop()
            raise AssertionError(f"nginx did not start:\n{self.log()}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"nginx exited with {self.process.returncode}:\n{self.log()}")
        try:
            requests.get(f"{self.url}/healthz", verify=str(self.ca_file), timeout=1)
        except requests.RequestException:
            return False
        return True

    def log(self) -> str:
        return (self.root / "nginx.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        terminate(self.process)


def private_dir() -> Path:
    """A directory www-data may pass through (0711) but not list; pytest's are 0700."""
    root = Path(tempfile.mkdtemp(prefix="micado-gateway-"))
    root.chmod(0o711)
    return root


def remove(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
