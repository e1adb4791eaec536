#!/usr/bin/python
# Copyright: micado contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The CPU architecture an ELF executable is built for, named as Ansible names hosts' CPUs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: binary_arch
short_description: The CPU architecture of an ELF executable, in ansible_architecture's names
version_added: "0.1.0"
description:
  - Reads the ELF header of O(path) (class, byte order and C(e_machine)) and reports the CPU
    architecture it is built for, with the C(ansible_architecture) values (C(uname -m)) of the
    hosts that can run it.
  - Used by micado.core.k3s_server and micado.core.k3s_agent to refuse, before installing it, a
    k3s binary built for another architecture than the host's (an x86_64 C(k3s) on an aarch64
    host) that the pinned sha256 alone would let through.
  - Read-only. Run it with C(delegate_to) C(localhost) for a file on the control node.
options:
  path:
    description: The file to read.
    type: path
    required: true
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
- name: Read the architecture of the bundled k3s binary
  micado.core.binary_arch:
    path: "{{ micado_artefact_dir }}/k3s"
  delegate_to: localhost
  register: k3s_arch

- name: Refuse a binary the host cannot run
  ansible.builtin.assert:
    that: ansible_facts.architecture in k3s_arch.runs_on
"""

RETURN = r"""
machine:
  description: >-
    The architecture the file is built for (C(x86_64), C(aarch64), C(arm), C(i386), C(ppc64le),
    C(ppc64), C(s390x), C(riscv64)), or C(unknown-<e_machine>) for others.
  returned: success
  type: str
e_machine:
  description: The ELF header's C(e_machine) number.
  returned: success
  type: int
bits:
  description: 32 or 64 (the ELF class).
  returned: success
  type: int
runs_on:
  description: The C(ansible_architecture) values of hosts that run this file natively.
  returned: success
  type: list
  elements: str
"""

import struct

from ansible.module_utils.basic import AnsibleModule

# e_machine -> (name, the `uname -m` values of hosts that run it); ppc64 depends on byte order
MACHINES = {
    3: ("i386", ["i386", "i486", "i586", "i686"]),
    22: ("s390x", ["s390x"]),
    40: ("arm", ["armv6l", "armv7l", "armv8l", "armhf"]),
    62: ("x86_64", ["x86_64", "amd64"]),
    183: ("aarch64", ["aarch64", "arm64"]),
    243: ("riscv64", ["riscv64"]),
}
EM_PPC64 = 21


class NotElf(ValueError):
    """The file is not an ELF executable."""


def read_header(data: bytes) -> dict:
    """The architecture facts of an ELF header (the first 20 bytes of the file suffice)."""
    if len(data) < 20 or data[:4] != b"\x7fELF":
        raise NotElf("not an ELF file (no \\x7fELF magic at its start)")
    bits = {1: 32, 2: 64}.get(data[4])
    order = {1: "<", 2: ">"}.get(data[5])
    if bits is None or order is None:
        raise NotElf(f"a damaged ELF header (class {data[4]}, byte order {data[5]})")
    (machine,) = struct.unpack(order + "H", data[18:20])
    if machine == EM_PPC64:
        name = "ppc64le" if order == "<" else "ppc64"
        runs_on = [name]
    else:
        name, runs_on = MACHINES.get(machine, (f"unknown-{machine}", []))
    return {"machine": name, "e_machine": machine, "bits": bits, "runs_on": list(runs_on)}


def main() -> None:
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True}},
                           supports_check_mode=True)
    path = module.params["path"]
    try:
        with open(path, "rb") as handle:
            facts = read_header(handle.read(64))
    except OSError as err:
        module.fail_json(msg=f"cannot read {path}: {err.strerror}")
    except NotElf as err:
        module.fail_json(msg=f"{path} is {err}: not a Linux executable")
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
