"""MiCADO's own ADT parser as the baseline for bench_compile.py.

micado-parser 0.12.3 on tosca-parser 2.9.1, both from PyPI, in a virtualenv of their own
(cached under ~/.cache/micado-bench/, keyed by the two versions and the Python version, reused
on reruns). It parses in a child process that stays up for the whole benchmark, so that its
rounds can alternate with ours and both see the same load on the machine.

PyPI carries neither MiCADO's type files nor a package with them (the micado-parser and
tosca-parser wheels hold only TOSCA's normative types), so the ADT is written next to a copy of
the type files bundled in micado.adt (same type and property names), imported as local files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType

MICADO_PARSER = "0.12.3"
TOSCA_PARSER = "2.9.1"
TYPES_DIR = "micado"  # the copy of the bundled type files, next to the ADT
TYPES_IMPORT = f"{TYPES_DIR}/micado_types.yaml"

# Runs in the parser's virtualenv: one `micadoparser.parser.set_template` per line on stdin,
# answered with its wall-clock and CPU time and what it found, as one JSON line.
_CHILD = r"""
import json, logging, sys, time
logging.disable(logging.CRITICAL)
from micadoparser.parser import set_template
for path in sys.stdin:
    start, start_cpu = time.perf_counter(), time.process_time()
    template = set_template(path.strip())
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds,
                      "nodes": len(template.nodetemplates),
                      "policies": len(template.policies)}), flush=True)
"""


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    python = f"py{sys.version_info.major}.{sys.version_info.minor}"
    name = f"micado-parser-{MICADO_PARSER}_tosca-parser-{TOSCA_PARSER}_{python}"
    return base / "micado-bench" / name


def parser_python() -> Path:
    """The virtualenv's python, installed on first use (pip's own cache makes a redo quick)."""
    env = cache_dir()
    python, stamp = env / "bin" / "python", env / "installed"
    if stamp.is_file() and python.is_file():
        return python
    shutil.rmtree(env, ignore_errors=True)  # a half-done install is redone, not trusted
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"micado-parser=={MICADO_PARSER}", f"tosca-parser=={TOSCA_PARSER}"],
                   check=True)
    stamp.write_text(f"micado-parser=={MICADO_PARSER}\ntosca-parser=={TOSCA_PARSER}\n")
    return python


def write_adt(text: str, import_url: str, directory: Path) -> Path:
    """`text` with `import_url` pointing at a local copy of the bundled MiCADO type files."""
    if import_url not in text:
        raise ValueError(f"the ADT does not import {import_url}")
    bundled = resources.files("micado.adt") / "types" / "micado"
    with resources.as_file(bundled) as source:
        shutil.copytree(source, directory / TYPES_DIR, dirs_exist_ok=True)
    path = directory / "adt.yaml"
    path.write_text(text.replace(import_url, TYPES_IMPORT))
    return path


@dataclass(frozen=True)
class Parse:
    seconds: float
    cpu_seconds: float
    nodes: int
    policies: int


class MicadoParser:
    """MiCADO's parser in a child process: parse() asks it for one more timed round."""

    def __init__(self, adt: Path) -> None:
        self.adt = adt
        self.rounds: list[Parse] = []
        self._child = subprocess.Popen(
            [str(parser_python()), "-c", _CHILD], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=adt.parent)

    def parse(self) -> Parse:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(f"{self.adt}\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"micado-parser stopped (exit {self._child.wait()}); "
                               "its error is above")
        result = Parse(**json.loads(line))
        self.rounds.append(result)
        return result

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()

    def __enter__(self) -> MicadoParser:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
