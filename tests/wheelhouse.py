"""The controller's wheelhouse for test hosts without internet (scripts/build-wheelhouse, cached
in build/wheelhouse between runs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import REPO, prerequisite


def build_wheelhouse() -> Path:
    script = REPO / "scripts" / "build-wheelhouse"
    prerequisite(script.exists(), "scripts/build-wheelhouse")
    wheelhouse = REPO / "build" / "wheelhouse"
    done = subprocess.run([str(script), str(wheelhouse)], cwd=REPO, capture_output=True,
                          text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return wheelhouse
