"""The multi-host test bed: systemd-nspawn hosts in network namespaces on a bridge.

Every host boots systemd on its own overlay of one debootstrap Debian 12 root file system,
has its own network namespace with a veth into the bridge `mcbr0`, and is reached over real
SSH with a real Ansible inventory. The hosts have no internet: a local apt repository of the
packages the roles install (HOST_PACKAGES) is served on the bridge address.

Cached in /var/cache/micado-testbed (env MICADO_TESTBED_CACHE), keyed by the package lists:
the root file system as a tarball plus its unpacked copy (the overlays' read-only lower dir)
and the .debs with their index. A cached `up()` takes a few seconds. `down()`, and `up()`
before it starts, remove whatever a previous (perhaps crashed) run left, by name.
Needs root, debootstrap, systemd-nspawn, ip, ssh, dpkg-scanpackages, zstd.

Traps (found on the Debian 12 build machines, no systemd as PID 1, hybrid cgroups):
- nspawn needs `--register=no --keep-unit` (no system bus to register with);
- each nspawn must start in its own cgroup: nspawn puts the container into "payload" below
  its current cgroup, so containers started from one cgroup share a tree and their units
  fail at random with 219/CGROUP;
- `--private-network` next to `--network-namespace-path` makes /proc/sys/net writable in the
  host (sysctls); CAP_NET_ADMIN lets nft load rules;
- with the bridge gone, a TCP probe of a host address may still succeed (the machine's
  default route leads to something that accepts any connection): `is_up()` checks more.
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import gzip
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
DEFAULT_CACHE = "/var/cache/micado-testbed"
DEFAULT_RUN = "/var/tmp/micado-testbed"

# What debootstrap puts into the root file system every host starts from: what Debian's cloud
# images have that the roles rely on (SSH, Python, systemd, a time synchronisation service).
ROOTFS_PACKAGES: tuple[str, ...] = (
    "openssh-server", "python3", "python3-apt", "iproute2", "sudo", "systemd", "systemd-sysv",
    "dbus", "ca-certificates", "systemd-timesyncd",
)
# What the roles install on the hosts: served, with every dependency and recommendation the
# root file system lacks, by the local apt repository. Extend this when a role needs more.
HOST_PACKAGES: tuple[str, ...] = (
    "prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "nginx", "nftables",
    "wireguard-tools", "python3-venv", "python3-packaging", "python3-pip",
    "python3-cryptography", "python3-passlib", "systemd-timesyncd", "openssl", "curl", "acl",
)
# Bump when the way the cached artefacts are made changes.
CACHE_FORMAT = "1"

BRIDGE = "mcbr0"
BRIDGE_IP = "10.77.0.1"
PREFIX_LEN = 24
HOST_IPS: dict[str, str] = {
    "master": "10.77.0.10", "worker1": "10.77.0.11", "worker2": "10.77.0.12",
    "edge1": "10.77.0.13",
}
GROUPS: dict[str, tuple[str, ...]] = {
    "masters": ("master",), "workers": ("worker1", "worker2"), "edges": ("edge1",),
}
NETNS_PREFIX = "mcbed-"
CGROUP_NAME = "micado-testbed"
VETH_PREFIX = "mcv-"
REPO_PORT = 18077

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "ConnectTimeout=5")
TAR_OPTIONS = ("--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls")


class TestBedError(RuntimeError):
    """A step of bringing the bed up failed; the message says which and why."""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 600,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; raise TestBedError with its output on failure."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          input=input_text, check=False)
    if check and done.returncode != 0:
        raise TestBedError(f"{shlex.join(argv)} exited {done.returncode}:\n"
                           f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done


def debian_mirrors(root: Path = Path("/")) -> tuple[str, str]:
    """The Debian mirror and security mirror this machine's apt sources use (or the defaults)."""
    mirror, security = "", ""
    entries: list[tuple[list[str], list[str]]] = []  # (uris, suites)
    apt = root / "etc" / "apt"
    one_line = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                entries.append(([words[1]], [words[2]]))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        if not path.is_file():
            continue
        for stanza in re.split(r"\n\s*\n", path.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled") != "no":
                entries.append((fields.get("uris", "").split(), fields.get("suites", "").split()))
    for uris, suites in entries:
        for uri in uris:
            if not uri.startswith("http"):
                continue
            if SUITE in suites and not mirror:
                mirror = uri.rstrip("/")
            if f"{SUITE}-security" in suites and not security:
                security = uri.rstrip("/")
    return mirror or DEFAULT_MIRROR, security or DEFAULT_SECURITY_MIRROR


def mirror_reachable(mirror: str, timeout: float = 10) -> bool:
    """Whether the mirror's Release file for the suite can be fetched."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{mirror}/dists/{SUITE}/Release", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` (deepest first), from /proc/self/mountinfo."""
    prefix = str(path).rstrip("/")
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(set(found), key=len, reverse=True)


def _umount_all(path: Path) -> None:
    for point in _mounts_under(path):
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _stop(pids: Sequence[int], timeout: float) -> None:
    """SIGTERM the processes, wait up to `timeout`, then SIGKILL what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _cgroup_roots() -> list[Path]:
    """The cgroup hierarchies systemd uses: the unified one, plus name=systemd on v1/hybrid."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]
    return [base / name for name in ("systemd", "unified")
            if (base / name / "cgroup.procs").exists()]


def _remove_cgroup_tree(path: Path) -> None:
    """rmdir a cgroup and every cgroup below it, deepest first (works once they are empty)."""
    if not path.is_dir():
        return
    for top, dirs, _ in os.walk(path, topdown=False):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(top, name))
    with contextlib.suppress(OSError):
        path.rmdir()


def _port_open(ip: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (so two sessions do not build one cache entry at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class TestBed:
    """Four systemd-nspawn hosts (master, worker1, worker2, edge1) on bridge mcbr0."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    run_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("MICADO_TESTBED_RUN", DEFAULT_RUN)))
    cache_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("MICADO_TESTBED_CACHE", DEFAULT_CACHE)))
    repo_port: int = REPO_PORT
    boot_timeout: float = 120.0
    stop_timeout: float = 20.0
    timings: dict[str, float] = field(default_factory=dict)

    # ---- what tests use -------------------------------------------------------------------
    @property
    def hosts(self) -> dict[str, str]:
        """Host name -> IP address."""
        return dict(HOST_IPS)

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Inventory group -> host names."""
        return dict(GROUPS)

    @property
    def inventory(self) -> Path:
        """The Ansible inventory (YAML) of the running bed."""
        return self.run_dir / "inventory.yml"

    @property
    def private_key(self) -> Path:
        """The SSH private key that logs in as root on every host."""
        return self.run_dir / "id_ed25519"

    @property
    def repo_url(self) -> str:
        """The local apt repository, as the hosts see it."""
        return f"http://{BRIDGE_IP}:{self.repo_port}"

    def ssh_argv(self, host: str, command: str | None = None) -> list[str]:
        """The ssh command line for `host` (interactive when `command` is None)."""
        argv = ["ssh", *SSH_OPTIONS, "-i", str(self.private_key), f"root@{HOST_IPS[host]}"]
        return [*argv, command] if command is not None else argv

    def ssh_run(self, host: str, command: str, timeout: float = 300,
                ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on `host` over SSH; the completed process (never raises)."""
        return run(self.ssh_argv(host, command), check=False, timeout=timeout)

    def ssh(self, host: str, command: str, timeout: float = 300) -> str:
        """Run a shell command on `host` over SSH; its stdout, TestBedError on failure."""
        return run(self.ssh_argv(host, command), timeout=timeout).stdout

    def netns_exec(self, host: str, argv: Sequence[str], timeout: float = 60,
                   check: bool = True) -> str:
        """Run a command of this machine inside `host`'s network namespace; its stdout."""
        return run(["ip", "netns", "exec", NETNS_PREFIX + host, *argv], timeout=timeout,
                   check=check).stdout

    def is_up(self) -> bool:
        """Whether the bridge, every host's nspawn and namespace exist and every sshd answers.

        (A port probe alone is not enough: without the bridge, this machine's default route may
        lead to something that accepts any TCP connection.)"""
        hosts_dir = self.run_dir / "hosts"
        for host in HOST_IPS:
            pid_file = hosts_dir / f"{host}.pid"
            if not pid_file.exists() or not _alive(int(pid_file.read_text())):
                return False
        return (BRIDGE in self._links()
                and len(self._netns_names()) == len(HOST_IPS)
                and all(_port_open(ip, 22) for ip in HOST_IPS.values()))

    # ---- up / down ------------------------------------------------------------------------
    def up(self) -> None:
        """Bring the bed up from nothing (cleaning any leftovers first)."""
        started = time.monotonic()
        self.down()
        self.run_dir.mkdir(parents=True)
        self.run_dir.chmod(0o700)
        mark = time.monotonic()
        tarball = self._rootfs_tarball()
        self.timings["rootfs_cache"] = time.monotonic() - mark
        mark = time.monotonic()
        rootfs = self._rootfs_dir(tarball)
        self.timings["untar"] = time.monotonic() - mark
        mark = time.monotonic()
        repo = self._apt_repo(rootfs)
        self.timings["apt_repo_cache"] = time.monotonic() - mark
        mark = time.monotonic()
        self._keypair()
        self._network()
        self._serve_repo(repo)
        for host in HOST_IPS:
            self._prepare_host(host, rootfs)
        self.timings["prepare_hosts"] = time.monotonic() - mark
        mark = time.monotonic()
        for host in HOST_IPS:
            self._boot(host)
        self._wait_until_booted()
        self.timings["boot"] = time.monotonic() - mark
        self._write_inventory()
        self.timings["up_total"] = time.monotonic() - started

    def down(self) -> None:
        """Stop and remove everything the bed (or a crashed earlier run) left; idempotent."""
        started = time.monotonic()
        self._stop_hosts()
        self._stop_repo()
        _umount_all(self.run_dir)
        for root in _cgroup_roots():
            _remove_cgroup_tree(root / CGROUP_NAME)
        for name in self._netns_names():
            run(["ip", "netns", "del", name], check=False)
        for link in self._links():
            run(["ip", "link", "del", link], check=False)
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.timings["down"] = time.monotonic() - started

    def leftovers(self) -> list[str]:
        """What of the bed exists here (netns, mounts, links, processes, cgroups): [] after down."""
        found = [f"netns {n}" for n in self._netns_names()]
        found += [f"mount {m}" for m in _mounts_under(self.run_dir)]
        found += [f"mount {m}" for m in _mounts_under(Path("/run/netns"))
                  if Path(m).name.startswith(NETNS_PREFIX)]
        found += [f"link {link}" for link in self._links()]
        found += [f"process {pid}" for pid in self._bed_processes()]
        found += [f"cgroup {root / CGROUP_NAME}" for root in _cgroup_roots()
                  if (root / CGROUP_NAME).exists()]
        return found

    # ---- cache: root file system ----------------------------------------------------------
    def _rootfs_key(self) -> str:
        return _digest(CACHE_FORMAT, SUITE, "minbase", sorted(ROOTFS_PACKAGES))

    def _rootfs_tarball_path(self) -> Path:
        return self.cache_dir / f"rootfs-{SUITE}-{self._rootfs_key()}.tar.zst"

    def _repo_path(self) -> Path:
        return self.cache_dir / f"debs-{_digest(self._rootfs_key(), sorted(HOST_PACKAGES))}"

    def image_parts(self) -> tuple[Path, Path]:
        """The root file system (a directory) and the local apt repository, made in the cache
        when missing and without starting anything: what the molecule image is built from."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        rootfs = self._rootfs_dir(self._rootfs_tarball())
        return rootfs, self._apt_repo(rootfs)

    def cached(self) -> bool:
        """Whether the root file system and the apt repository are cached (no download needed)."""
        return self._rootfs_tarball_path().exists() and (self._repo_path() / "Release").exists()

    def _rootfs_tarball(self) -> Path:
        """The cached root file system tarball; debootstrap it first when missing."""
        tarball = self._rootfs_tarball_path()
        with _locked(self.cache_dir / "rootfs.lock"):
            if tarball.exists():
                return tarball
            build = self.cache_dir / "build-rootfs"
            _umount_all(build)
            shutil.rmtree(build, ignore_errors=True)
            mirror, _ = debian_mirrors()
            mark = time.monotonic()
            run(["debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
                 SUITE, str(build), mirror], timeout=1800)
            self.timings["debootstrap"] = time.monotonic() - mark
            self._finish_rootfs(build)
            partial = tarball.with_suffix(".partial")
            run(["tar", "-C", str(build), *TAR_OPTIONS, "-I", "zstd -T0 -3", "-cf",
                 str(partial), "."])
            partial.rename(tarball)
            shutil.rmtree(build)
        return tarball

    def _rootfs_dir(self, tarball: Path) -> Path:
        """The tarball unpacked once into the cache: the read-only lower dir of every overlay."""
        rootfs = tarball.with_name(tarball.name.removesuffix(".tar.zst"))
        ready = rootfs.with_name(rootfs.name + ".ready")
        with _locked(self.cache_dir / "rootfs.lock"):
            if ready.exists() and rootfs.is_dir():
                return rootfs
            partial = rootfs.with_name(rootfs.name + ".partial")
            for stale in (partial, rootfs):
                _umount_all(stale)
                shutil.rmtree(stale, ignore_errors=True)
            partial.mkdir(parents=True)
            run(["tar", "-C", str(partial), *TAR_OPTIONS, "-I", "zstd -T0", "-xf",
                 str(tarball)])
            partial.rename(rootfs)
            ready.touch()
        return rootfs

    @staticmethod
    def _finish_rootfs(root: Path) -> None:
        """No apt lists or caches, no shared identity, root logs in by key only."""
        run(["chroot", str(root), "apt-get", "clean"])
        for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "etc/ssh/ssh_host_*",
                        "var/log/*.log", "var/log/apt/*"):
            for path in root.glob(pattern):
                if path.is_file() or path.is_symlink():
                    path.unlink()
        (root / "etc/machine-id").write_text("")  # each host gets its own at up()
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        (root / "etc/resolv.conf").write_text("# the test bed hosts have no DNS\n")
        (root / "etc/ssh/sshd_config.d/micado-testbed.conf").write_text(
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUseDNS no\n")
        (root / "etc/apt/sources.list").write_text("")

    # ---- cache: local apt repository ------------------------------------------------------
    def _apt_repo(self, rootfs: Path) -> Path:
        """The cached local apt repository (HOST_PACKAGES and what the rootfs lacks of their
        dependencies); resolved and downloaded by apt inside a throwaway overlay of the rootfs."""
        repo = self._repo_path()
        with _locked(self.cache_dir / "debs.lock"):
            if (repo / "Release").exists():
                return repo
            mark = time.monotonic()
            work = self.run_dir / "apt-download"
            merged = work / "merged"
            for sub in ("upper", "work", "merged"):
                (work / sub).mkdir(parents=True)
            run(["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir={rootfs},upperdir={work / 'upper'},workdir={work / 'work'}",
                 str(merged)])
            try:
                mirror, security = debian_mirrors()
                (merged / "etc/apt/sources.list").write_text(
                    f"deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\n"
                    f"deb {security} {SUITE}-security main\n")
                shutil.copy("/etc/resolv.conf", merged / "etc/resolv.conf")
                run(["chroot", str(merged), "apt-get", "update", "-q"], timeout=900)
                run(["chroot", str(merged), "apt-get", "install", "-y", "-q", "--download-only",
                     *HOST_PACKAGES], timeout=1800)
                partial = repo.with_name(repo.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                partial.mkdir(parents=True)
                for deb in (merged / "var/cache/apt/archives").glob("*.deb"):
                    shutil.copy2(deb, partial / deb.name)
            finally:
                _umount_all(work)
                shutil.rmtree(work, ignore_errors=True)
            self._index(partial)
            shutil.rmtree(repo, ignore_errors=True)
            partial.rename(repo)
            self.timings["apt_download"] = time.monotonic() - mark
        return repo

    @staticmethod
    def _index(repo: Path) -> None:
        """Packages, Packages.gz and an (unsigned) Release file for a flat repository."""
        packages = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"],
                                  cwd=repo, capture_output=True, text=True, check=True)
        text = packages.stdout
        (repo / "Packages").write_text(text)
        with gzip.open(repo / "Packages.gz", "wt") as out:
            out.write(text)
        lines = ["Origin: micado-testbed", "Label: micado-testbed", f"Suite: {SUITE}",
                 f"Date: {email.utils.formatdate(usegmt=True)}",
                 "Architectures: amd64 all", "SHA256:"]
        for name in ("Packages", "Packages.gz"):
            data = (repo / name).read_bytes()
            lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
        (repo / "Release").write_text("\n".join(lines) + "\n")

    # ---- network, repository server, hosts ------------------------------------------------
    def _keypair(self) -> None:
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "micado-testbed",
             "-f", str(self.private_key)])
        self.private_key.chmod(0o600)

    @staticmethod
    def _network() -> None:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{BRIDGE_IP}/{PREFIX_LEN}", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        for host, ip in HOST_IPS.items():
            ns, veth = NETNS_PREFIX + host, VETH_PREFIX + host
            run(["ip", "netns", "add", ns])
            run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                 "netns", ns])
            run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{ip}/{PREFIX_LEN}", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "route", "add", "default", "via", BRIDGE_IP])

    def _serve_repo(self, repo: Path) -> None:
        log = (self.run_dir / "apt-repo.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.repo_port), "--bind", BRIDGE_IP,
             "--directory", str(repo)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        (self.run_dir / "apt-repo.pid").write_text(str(proc.pid))
        deadline = time.monotonic() + 10
        while not _port_open(BRIDGE_IP, self.repo_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TestBedError(f"the apt repository server did not start: see {log.name}")
            time.sleep(0.05)

    def _prepare_host(self, host: str, rootfs: Path) -> None:
        """Overlay mount, identity, SSH keys and apt source of one host."""
        base = self.run_dir / "hosts" / host
        for sub in ("upper", "work", "merged"):
            (base / sub).mkdir(parents=True)
        merged = base / "merged"
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={rootfs},upperdir={base / 'upper'},workdir={base / 'work'}",
             str(merged)])
        (merged / "etc/hostname").write_text(f"{host}\n")
        hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
        hosts += "".join(f"{ip} {name}\n" for name, ip in HOST_IPS.items())
        (merged / "etc/hosts").write_text(hosts)
        (merged / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (merged / "etc/default/locale").write_text("LANG=C.UTF-8\n")
        ssh_dir = merged / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        ssh_dir.chmod(0o700)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(self.private_key.with_suffix(".pub").read_text())
        keys.chmod(0o600)
        for kind in ("ed25519", "ecdsa"):  # this host's own host keys (RSA would take seconds)
            key = merged / f"etc/ssh/ssh_host_{kind}_key"
            run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{host}", "-f", str(key)])
        (merged / "etc/ssh/sshd_config.d/micado-testbed-hostkeys.conf").write_text(
            "HostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n")
        (merged / "etc/apt/sources.list").write_text(f"deb [trusted=yes] {self.repo_url} ./\n")
        for extra in (merged / "etc/apt/sources.list.d").glob("*"):
            extra.unlink()
        # The image has no package lists and was built minutes ago: apt's `cache_valid_time`
        # would take the empty lists for fresh. Date them like an image's, older than an hour.
        os.utime(merged / "var/lib/apt/lists", (0, 0))
        (merged / "var/lib/apt/periodic/update-success-stamp").unlink(missing_ok=True)

    def _boot(self, host: str) -> None:
        merged = self.run_dir / "hosts" / host / "merged"
        log = (self.run_dir / "hosts" / f"{host}.log").open("w")
        # Each nspawn in its own cgroup: nspawn puts itself and the container into
        # "supervisor"/"payload" below its current cgroup; were all four in the same cgroup,
        # their systemds would share (and race on) one tree: units fail with 219/CGROUP.
        cgroups = [root / CGROUP_NAME / host for root in _cgroup_roots()]
        for cgroup in cgroups:
            cgroup.mkdir(parents=True, exist_ok=True)

        def enter_cgroups() -> None:
            for cgroup in cgroups:
                (cgroup / "cgroup.procs").write_text(str(os.getpid()))

        proc = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
             "-D", str(merged), f"--machine={host}",
             f"--network-namespace-path=/run/netns/{NETNS_PREFIX}{host}",
             "--private-network", "--capability=CAP_NET_ADMIN", "--console=passive",
             "--link-journal=no", "--resolv-conf=off", "--timezone=off"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=enter_cgroups)
        (self.run_dir / "hosts" / f"{host}.pid").write_text(str(proc.pid))

    def _wait_until_booted(self) -> None:
        """Until every host's sshd answers and systemd has finished booting."""
        deadline = time.monotonic() + self.boot_timeout
        waiting = set(HOST_IPS)
        while waiting:
            for host in sorted(waiting):
                pid = int((self.run_dir / "hosts" / f"{host}.pid").read_text())
                if not _alive(pid):
                    log = self.run_dir / "hosts" / f"{host}.log"
                    raise TestBedError(f"{host}: systemd-nspawn exited:\n{log.read_text()[-3000:]}")
                if _port_open(HOST_IPS[host], 22):
                    waiting.discard(host)
            if waiting and time.monotonic() > deadline:
                raise TestBedError(f"sshd did not answer on {sorted(waiting)}")
            time.sleep(0.05)
        for host in HOST_IPS:
            left = max(5.0, deadline - time.monotonic())
            state = self.ssh_run(host, f"timeout {int(left)} systemctl is-system-running --wait",
                                 timeout=left + 10).stdout.strip()
            if state not in ("running", "degraded"):
                failed = self.ssh_run(host, "systemctl --failed --no-legend").stdout
                raise TestBedError(f"{host}: systemd is {state!r}; failed units:\n{failed}")

    def _write_inventory(self) -> None:
        """The inventory in the shape of the example: masters, workers, edges."""
        common = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                  "-o LogLevel=ERROR")
        inventory = {"all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(self.private_key),
                "ansible_ssh_common_args": common,
                "ansible_python_interpreter": "/usr/bin/python3",
                "k3s_server_start": False,
                "k3s_agent_start": False,
            },
            "children": {group: {"hosts": {h: {"ansible_host": HOST_IPS[h]} for h in members}}
                         for group, members in GROUPS.items()},
        }}
        self.inventory.write_text(
            "# the micado test bed (tests/testbed/bed.py); removed by `scripts/testbed down`\n"
            + yaml.safe_dump(inventory, sort_keys=False))

    # ---- finding leftovers ----------------------------------------------------------------
    def _bed_processes(self) -> list[int]:
        """This bed's nspawn processes (command line names the run dir), the processes of its
        containers (in its cgroups) and its apt repository server."""
        run_dir = str(self.run_dir)
        found: set[int] = set()
        for root in _cgroup_roots():
            for procs in (root / CGROUP_NAME).rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    found.update(int(p) for p in procs.read_text().split())
        for pid in _pids():
            argv = _cmdline(pid)
            if not argv:
                continue
            nspawn = Path(argv[0]).name == "systemd-nspawn" and any(run_dir in a for a in argv)
            server = "http.server" in argv and BRIDGE_IP in argv and str(self.repo_port) in argv
            if nspawn or server:
                found.add(pid)
        found.discard(os.getpid())
        return sorted(found)

    def _stop_hosts(self) -> None:
        hosts_dir = self.run_dir / "hosts"
        nspawn = []
        for pid_file in hosts_dir.glob("*.pid") if hosts_dir.is_dir() else []:
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text())
                if "systemd-nspawn" in " ".join(_cmdline(pid)):
                    nspawn.append(pid)
        nspawn += [p for p in self._bed_processes()
                   if p not in nspawn and "systemd-nspawn" in " ".join(_cmdline(p))]
        _stop(nspawn, self.stop_timeout)
        # whatever outlived its nspawn (one killed with SIGKILL): orphaned container processes
        rest = [p for p in self._bed_processes() if "http.server" not in _cmdline(p)]
        _stop(rest, 1)

    def _stop_repo(self) -> None:
        _stop([p for p in self._bed_processes() if "http.server" in _cmdline(p)], 5)

    @staticmethod
    def _netns_names() -> list[str]:
        out = run(["ip", "netns", "list"], check=False).stdout
        return [line.split()[0] for line in out.splitlines()
                if line.split() and line.split()[0].startswith(NETNS_PREFIX)]

    @staticmethod
    def _links() -> list[str]:
        out = run(["ip", "-o", "link", "show"], check=False).stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                 if line.count(":") >= 2]
        veths = [n for n in names if n.startswith(VETH_PREFIX)]
        return veths + ([BRIDGE] if BRIDGE in names else [])
