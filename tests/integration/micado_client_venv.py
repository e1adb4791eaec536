"""MiCADO's own client (micado-client 0.12.13 from PyPI) in a virtualenv of its own, cached.

It cannot share the test venv: its top-level package is also called `micado` and would replace
ours. So it lives in its own virtualenv under the user's cache directory, made once (about four
minutes cold, it pulls `ansible` and `openstacksdk`) and reused by every later run; the tests
drive it as a subprocess (tests/integration/micado_client_driver.py). Its dependencies are
constrained to our own pins, so pip's wheel cache serves the large ones.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

SPEC = "micado-client==0.12.13"
# the test venv's pins (pyproject.toml): the same wheels, from pip's cache
CONSTRAINTS = ("ansible==12.3.0", "openstacksdk<4.15")
INSTALL_TIMEOUT = 1200


class ClientVenvError(Exception):
    """The client's virtualenv could not be made (no PyPI, pip failed)."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "micado-tests"


def client_python(root: Path | None = None) -> Path:
    """The interpreter of the client's virtualenv, made first if it is not cached yet."""
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cached_python(f"{SPEC.replace('==', '-')}-{version}", (SPEC, *CONSTRAINTS), root)


def cached_python(name: str, specs: tuple[str, ...], root: Path | None = None,
                  finish: Callable[[Path], None] | None = None) -> Path:
    """The interpreter of the cached virtualenv `name` with `specs` installed, made if missing.

    `finish(venv)` runs after pip, before the venv is marked complete. A lock file keeps two
    test runs (or xdist workers) from building the same venv at once.
    """
    root = root or cache_root()
    venv = root / name
    python = venv / "bin" / "python"
    stamp = venv / ".complete"
    if stamp.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building it right now
        if not stamp.exists():
            _build(venv, specs)
            if finish is not None:
                finish(venv)
            stamp.write_text("\n".join(specs) + "\n")
    return python


def _build(venv: Path, specs: tuple[str, ...]) -> None:
    shutil.rmtree(venv, ignore_errors=True)  # a half-made one from an interrupted run
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", *specs]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            shutil.rmtree(venv, ignore_errors=True)
            raise ClientVenvError(f"{' '.join(step[:4])}: no answer in {INSTALL_TIMEOUT} s"
                                  ) from None
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise ClientVenvError(f"{' '.join(step[:4])} failed:\n{done.stderr[-2000:]}")
