"""The collection, its playbooks and the example inventory pass ansible-lint's production
profile (what Galaxy's certification asks for), so CI fails when a change breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, prerequisite


def test_ansible_lint_production_profile_is_clean() -> None:
    lint = shutil.which("ansible-lint", path=str(Path(sys.executable).parent))
    prerequisite(lint is not None, "ansible-lint in the venv (pip install -e '.[test]')")
    env = {**os.environ, "NO_COLOR": "1", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    done = subprocess.run(
        [lint, "--profile", "production", "--nocolor",
         "collections/ansible_collections/micado/core", "playbooks", "inventories"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr
