"""MiCADO's own client (micado-client 0.12.13 from PyPI) in a virtualenv of its own, cached.

It cannot share the test venv: its top-level package is also called `micado` and would replace
ours. So it lives in its own virtualenv under the user's cache directory (tests/cached_venv.py),
made once (about four minutes cold, it pulls `ansible` and `openstacksdk`) and reused by every
later run; the tests drive it as a subprocess (tests/integration/micado_client_driver.py). Its
dependencies are constrained to our own pins, so pip's wheel cache serves the large ones.
"""

from __future__ import annotations

from pathlib import Path

from cached_venv import VenvError, venv_python

SPEC = "micado-client==0.12.13"
# the test venv's pins (pyproject.toml): the same wheels, from pip's cache
CONSTRAINTS = ("ansible==12.3.0", "openstacksdk<4.15")

ClientVenvError = VenvError


def client_python(root: Path | None = None) -> Path:
    """The interpreter of the client's virtualenv, made first if it is not cached yet."""
    return venv_python(SPEC.replace("==", "-"), [SPEC, *CONSTRAINTS], root)
