"""Building small ADTs in tests."""

from __future__ import annotations

import textwrap

from micado.adt import AdtError, CompiledApp, compile_adt
from micado.adt.errors import Problem

MICADO_IMPORT = "https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml"
HEADER = f"""\
tosca_definitions_version: tosca_simple_yaml_1_2
imports:
  - {MICADO_IMPORT}
"""


def adt(body: str, header: str = HEADER) -> str:
    """An ADT: the usual header plus `body` (dedented)."""
    return header + textwrap.dedent(body)


def compiled(body: str, header: str = HEADER, **kwargs: object) -> CompiledApp:
    return compile_adt(adt(body, header), **kwargs)  # type: ignore[arg-type]


def errors_of(body: str, header: str = HEADER, **kwargs: object) -> list[str]:
    """The error lines compiling `body` gives (it must fail)."""
    try:
        compile_adt(adt(body, header), **kwargs)  # type: ignore[arg-type]
    except AdtError as exc:
        return [str(e) for e in exc.errors]
    raise AssertionError("expected the ADT to be rejected")


def lines(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]
