"""The repository's ansible.cfg never serves a host the facts of an earlier run: a host rebuilt
under the same name (new OS, addresses, Python) must be seen as it is now."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, prerequisite

PLAYBOOK = """\
- name: Report the Python the facts name
  hosts: rebuilt
  gather_facts: true
  tasks:
    - name: Show it
      ansible.builtin.debug:
        msg: "PYTHON={{ ansible_facts.python.executable }}"
"""


def run(tmp_path: Path, interpreter: str) -> str:
    """One ansible-playbook run with the repository's settings; the python the facts report."""
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    rebuilt:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {interpreter}\n")
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           # where a persistent cache would live: this test's directory, not the checkout
           "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts")}
    done = subprocess.run(["ansible-playbook", "-i", "inventory.yml", "play.yml"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout.split("PYTHON=", 1)[1].split('"', 1)[0]


def test_a_rebuilt_host_gets_fresh_facts(tmp_path: Path) -> None:
    prerequisite(shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
                 is not None, "ansible-playbook in the venv")
    system_python = "/usr/bin/python3"
    prerequisite(Path(system_python).exists(), system_python)
    assert run(tmp_path, system_python) == system_python
    # the same host name, now with another Python: the facts must say so
    assert run(tmp_path, sys.executable) == sys.executable
