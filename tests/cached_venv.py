"""Virtualenvs of their own for third-party programs the tests run as subprocesses, cached.

Some programs cannot share the test venv (micado-client's package is also called `micado`;
MiCADO's Policy Keeper pins asteval 0.9.18 and numpy 2.0.0). Each gets a virtualenv under the
user's cache directory, made once from PyPI (pip's wheel cache serves the large wheels) and
reused by every later run; a stamp file marks it complete, a lock keeps two runs from building
it at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

INSTALL_TIMEOUT = 1200


class VenvError(Exception):
    """The virtualenv could not be made (no PyPI, pip failed)."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "micado-tests"


def venv_python(name: str, requirements: list[str], root: Path | None = None,
                finish: Callable[[Path], None] | None = None) -> Path:
    """The interpreter of the virtualenv `name` (per Python version) with `requirements`
    installed, made first if it is not cached yet; `finish(venv)` runs after pip, before the
    venv is marked complete."""
    root = root or cache_root()
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = root / f"{name}-{version}"
    python = venv / "bin" / "python"
    stamp = venv / ".complete"
    if stamp.exists():
        return python
    try:
        root.mkdir(parents=True, exist_ok=True)
        with (root / f"{venv.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building it right now
            if not stamp.exists():
                _build(venv, requirements)
                if finish is not None:
                    finish(venv)
                stamp.write_text("\n".join(requirements) + "\n")
    except OSError as exc:
        raise VenvError(f"cannot make {venv}: {exc}") from None
    return python


def _build(venv: Path, requirements: list[str]) -> None:
    shutil.rmtree(venv, ignore_errors=True)  # a half-made one from an interrupted run
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", *requirements]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            shutil.rmtree(venv, ignore_errors=True)
            raise VenvError(f"{' '.join(step[:4])}: no answer in {INSTALL_TIMEOUT} s") from None
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise VenvError(f"{' '.join(step[:4])} failed:\n{done.stderr[-2000:]}")
