"""Unit tests for micado.core.binary_arch: real executables and crafted ELF headers."""

from __future__ import annotations

import json
import os
import platform
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.micado.core.plugins.modules import binary_arch

MODULE = Path(binary_arch.__file__)


def header(e_machine: int, bits: int = 64, order: str = "<") -> bytes:
    """The first 64 bytes of an ELF executable for `e_machine`."""
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if order == "<" else 2, 1]) + b"\0" * 9
    return (ident + struct.pack(order + "HHI", 2, e_machine, 1)).ljust(64, b"\0")


def run_module(path: Path) -> dict:
    """The module as Ansible runs it: a process reading its arguments, printing JSON."""
    args = json.dumps({"ANSIBLE_MODULE_ARGS": {"path": str(path)}})
    env = {**os.environ, "PYTHONPATH": str(MODULE.parents[5])}
    done = subprocess.run([sys.executable, str(MODULE)], input=args, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return json.loads(done.stdout)


def test_the_interpreter_running_this_test_runs_here() -> None:
    facts = binary_arch.read_header(Path(os.path.realpath(sys.executable)).read_bytes()[:64])
    assert platform.machine() in facts["runs_on"]
    assert facts["bits"] == 64 or platform.machine() not in ("x86_64", "aarch64")


@pytest.mark.parametrize(("e_machine", "bits", "order", "machine", "host"), [
    (62, 64, "<", "x86_64", "x86_64"),
    (183, 64, "<", "aarch64", "aarch64"),
    (40, 32, "<", "arm", "armv7l"),
    (3, 32, "<", "i386", "i686"),
    (21, 64, "<", "ppc64le", "ppc64le"),
    (21, 64, ">", "ppc64", "ppc64"),
    (22, 64, ">", "s390x", "s390x"),
    (243, 64, "<", "riscv64", "riscv64"),
])
def test_crafted_headers(e_machine: int, bits: int, order: str, machine: str, host: str) -> None:
    facts = binary_arch.read_header(header(e_machine, bits, order))
    assert (facts["machine"], facts["e_machine"], facts["bits"]) == (machine, e_machine, bits)
    assert host in facts["runs_on"]


def test_an_x86_64_binary_does_not_run_on_aarch64_and_back() -> None:
    assert "aarch64" not in binary_arch.read_header(header(62))["runs_on"]
    assert "x86_64" not in binary_arch.read_header(header(183))["runs_on"]


def test_an_unknown_machine_runs_nowhere() -> None:
    facts = binary_arch.read_header(header(9999))
    assert facts["machine"] == "unknown-9999" and facts["runs_on"] == []


@pytest.mark.parametrize("data", [b"", b"#!/bin/sh\necho not k3s\n", b"\x7fELF\x01",
                                  b"\x7fELF\x07\x01" + b"\0" * 30])
def test_what_is_not_an_elf_executable_is_refused(data: bytes) -> None:
    with pytest.raises(binary_arch.NotElf):
        binary_arch.read_header(data)


def test_the_module_reports_a_foreign_binary(tmp_path: Path) -> None:
    binary = tmp_path / "k3s-arm64"
    binary.write_bytes(header(183) + b"\0" * 1024)
    result = run_module(binary)
    assert result["machine"] == "aarch64" and result["changed"] is False
    assert "x86_64" not in result["runs_on"]


def test_the_module_fails_with_the_path_on_a_text_file(tmp_path: Path) -> None:
    text = tmp_path / "k3s"
    text.write_text("not the k3s release binary\n")
    result = run_module(text)
    assert result["failed"] is True and str(text) in result["msg"]
    assert "not an ELF file" in result["msg"]
    missing = run_module(tmp_path / "absent")
    assert missing["failed"] is True and "cannot read" in missing["msg"]
