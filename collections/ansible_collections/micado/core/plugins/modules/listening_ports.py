#!/usr/bin/python
# Copyright: micado contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""List the TCP ports a Linux host listens on, with the process and systemd unit behind each."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: listening_ports
short_description: TCP listeners of a Linux host with their process and systemd unit
version_added: "0.1.0"
description:
  - Reads C(/proc/net/tcp) and C(/proc/net/tcp6) for sockets in the LISTEN state, then finds the
    processes holding them through C(/proc/<pid>/fd) and the systemd unit of each process through
    C(/proc/<pid>/cgroup).
  - Read-only; needs no tool on the host (no C(ss), no C(netstat)). Run it as root to see the
    processes of other users.
  - Used by micado.core.preflight to tell a port taken by a foreign program from one held by the
    service micado itself installs there (so a rerun passes).
options:
  ports:
    description:
      - Report only these ports. Empty reports every listening port.
    type: list
    elements: int
    default: []
attributes:
  check_mode:
    description: Can run in check mode and return the same result; it changes nothing.
    support: full
  diff_mode:
    description: Has no diff to show; it changes nothing.
    support: none
author:
  - micado contributors (@micado-scale)
"""

EXAMPLES = r"""
- name: Find who listens on the ports the master needs
  micado.core.listening_ports:
    ports: [443, 6443, 9090]
  register: preflight_listeners
"""

RETURN = r"""
listeners:
  description: One entry per listening socket and process holding it.
  returned: always
  type: list
  elements: dict
  contains:
    port:
      description: The TCP port.
      type: int
    address:
      description: The local address (C(0.0.0.0) or C([::]) for all).
      type: str
    pid:
      description: A process holding the socket; null when it cannot be seen.
      type: int
    process:
      description: The process name (C(/proc/<pid>/comm)); empty when unknown.
      type: str
    unit:
      description: >-
        The systemd unit the process runs in (for example C(nginx.service)); empty when none.
      type: str
"""

import ipaddress
import os
import re
import socket
import struct

from ansible.module_utils.basic import AnsibleModule

LISTEN = "0A"
UNIT = re.compile(r"/([^/]+\.(?:service|scope))(?:/|$)")


def _address(hexaddr):
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hexaddr, 16)))
    words = struct.unpack("<IIII", raw)
    return str(ipaddress.IPv6Address(struct.pack(">IIII", *words)))


def read_listeners(proc="/proc"):
    """(address, port, inode) of every TCP socket in LISTEN state."""
    found = []
    for name in ("tcp", "tcp6"):
        path = os.path.join(proc, "net", name)
        try:
            with open(path, encoding="ascii") as table:
                lines = table.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != LISTEN:
                continue
            hexaddr, hexport = fields[1].split(":")
            found.append((_address(hexaddr), int(hexport, 16), fields[9]))
    return found


def socket_owners(proc="/proc"):
    """{socket inode: [pid, ...]} for every process whose fds can be read."""
    owners = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        fd_dir = os.path.join(proc, entry, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                owners.setdefault(target[8:-1], []).append(int(entry))
    return owners


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def unit_of(pid, proc="/proc"):
    """The innermost systemd unit named in the process's cgroup path, or ''."""
    for line in _read(os.path.join(proc, str(pid), "cgroup")).splitlines():
        path = line.split(":", 2)[-1]
        units = UNIT.findall(path)
        if units:
            return units[-1]
    return ""


def collect(ports=(), proc="/proc"):
    wanted = set(ports)
    owners = None
    result = []
    for address, port, inode in read_listeners(proc):
        if wanted and port not in wanted:
            continue
        if owners is None:
            owners = socket_owners(proc)
        pids = owners.get(inode) or [None]
        for pid in pids:
            result.append({
                "port": port,
                "address": address,
                "pid": pid,
                "process": _read(os.path.join(proc, str(pid), "comm")).strip() if pid else "",
                "unit": unit_of(pid, proc) if pid else "",
            })
    result.sort(key=lambda item: (item["port"], item["address"], item["pid"] or 0))
    return result


def main():
    module = AnsibleModule(
        argument_spec={"ports": {"type": "list", "elements": "int", "default": []}},
        supports_check_mode=True,
    )
    module.exit_json(changed=False, listeners=collect(module.params["ports"]))


if __name__ == "__main__":
    main()
