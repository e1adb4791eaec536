"""MiCADO's rule symbol table, regenerated: asteval 0.9.18 and numpy 2.0.0 in a cached venv.

MiCADO's Policy Keeper pins asteval==0.9.18 and numpy==2.0.0 (requirements.txt of
micado-scale/component-policy-keeper, commit d8d5dc2f). The names its rules could call from
numpy (and math) are kept as data in controller/micado/policy/micado_numpy_names.py; this module
makes that file's text again from the real libraries, in a virtualenv of their own under the
user's cache directory (made once from PyPI, about 20 s, reused afterwards), so a test can
compare. To rewrite the file: `.venv/bin/python tests/unit/policy/numpy_reference.py --write`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

SPECS = ("asteval==0.9.18", "numpy==2.0.0")
DATA_MODULE = (Path(__file__).resolve().parents[3] / "controller" / "micado" / "policy"
               / "micado_numpy_names.py")
INSTALL_TIMEOUT = 600

# Runs in the reference venv: names the numpy option adds to (or replaces in) asteval's table,
# and names from math that are not Python builtins or asteval's own open/type.
_LIST_NAMES = """
import builtins, json, warnings
warnings.simplefilter("ignore")
from asteval import make_symbol_table
with_numpy = make_symbol_table(use_numpy=True)
plain = make_symbol_table(use_numpy=False)
numpy_names = sorted(k for k, v in with_numpy.items() if k not in plain or plain[k] is not v)
math_names = sorted(k for k in plain if k not in numpy_names and not hasattr(builtins, k)
                    and k not in ("open", "type"))
print(json.dumps({"numpy": numpy_names, "math": math_names}))
"""


class ReferenceVenvError(Exception):
    """The reference virtualenv could not be made (no PyPI, pip failed)."""


def reference_python() -> Path:
    """The interpreter of the reference venv, made first if it is not cached yet."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(base) / "micado-tests"
    venv = root / (f"{'-'.join(s.replace('==', '-') for s in SPECS)}"
                   f"-py{sys.version_info.major}{sys.version_info.minor}")
    stamp = venv / ".complete"
    if not stamp.exists():
        root.mkdir(parents=True, exist_ok=True)
        with (root / f"{venv.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be making it right now
            if not stamp.exists():
                shutil.rmtree(venv, ignore_errors=True)  # half made by an interrupted run
                base_python = getattr(sys, "_base_executable", sys.executable)
                _run([base_python, "-m", "venv", str(venv)])
                _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", *SPECS])
                stamp.write_text("\n".join(SPECS) + "\n")
    return venv / "bin" / "python"


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ReferenceVenvError(f"{' '.join(command[:4])}: no answer in {INSTALL_TIMEOUT} s"
                                 ) from None
    if done.returncode != 0:
        raise ReferenceVenvError(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def _names_literal(names: list[str]) -> str:
    body = textwrap.fill(" ".join(f'"{n}",' for n in names), width=95,
                         initial_indent="    ", subsequent_indent="    ",
                         break_on_hyphens=False, break_long_words=False)
    return "frozenset({\n" + body + "\n})"


def data_module_text() -> str:
    """What micado_numpy_names.py must contain, from the real asteval and numpy."""
    names = json.loads(_run([str(reference_python()), "-c", _LIST_NAMES]))
    return (
        '"""The names MiCADO\'s scaling rules could call without defining them, beyond Python\'s\n'
        'builtins: asteval 0.9.18\'s make_symbol_table(use_numpy=True) with numpy 2.0.0, the\n'
        'versions MiCADO\'s Policy Keeper pins (requirements.txt of\n'
        'micado-scale/component-policy-keeper, commit d8d5dc2f).\n\n'
        'Generated, do not edit: tests/unit/policy/numpy_reference.py makes this text again from\n'
        'the real libraries (in a cached virtualenv) and a test compares; rewrite it with\n'
        '`.venv/bin/python tests/unit/policy/numpy_reference.py --write`.\n"""\n\n'
        "# names the numpy option adds to asteval's table or takes over from Python and math\n"
        f"NUMPY_NAMES = {_names_literal(names['numpy'])}\n"
        "# names from math that numpy does not take over\n"
        f"MATH_NAMES = {_names_literal(names['math'])}\n"
    )


if __name__ == "__main__":
    text = data_module_text()
    if sys.argv[1:] == ["--write"]:
        DATA_MODULE.write_text(text, encoding="utf-8")
        print(f"wrote {DATA_MODULE}")
    else:
        sys.stdout.write(text)
