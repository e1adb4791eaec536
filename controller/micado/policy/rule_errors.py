"""The limit a rule can run into inside the sandbox, shared by the runtime and its helpers."""

from __future__ import annotations

from typing import Any

MAX_INT_BITS = 4096  # results of ** and << beyond this are refused, not computed


class RuleLimit(Exception):
    """A rule went past a limit; `kind` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_number(value: Any) -> Any:
    """`value` itself, unless it is an int over MAX_INT_BITS bits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise RuleLimit("value", f"a number over {MAX_INT_BITS} bits is not allowed")
    return value
