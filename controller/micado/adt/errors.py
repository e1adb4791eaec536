"""Problems found in an ADT, each with the path in the ADT where it is.

The compiler collects every problem before giving up, so a user sees all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]
PathPart = str | int
Path = tuple[PathPart, ...]


def format_path(path: Sequence[PathPart]) -> str:
    """Render ('topology_template', 'policies', 1, 'x') as topology_template.policies[1].x."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(document)"


@dataclass(frozen=True, order=True)
class Problem:
    """One error or warning, located by its path in the ADT."""

    path: Path
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}"


@dataclass
class Problems:
    """Collects problems while the compiler walks the ADT."""

    items: list[Problem] = field(default_factory=list)

    def error(self, path: Sequence[PathPart], message: str) -> None:
        self._add(Problem(_clean(path), message, "error"))

    def warn(self, path: Sequence[PathPart], message: str) -> None:
        self._add(Problem(_clean(path), message, "warning"))

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self._add(problem)

    def _add(self, problem: Problem) -> None:
        if problem not in self.items:
            self.items.append(problem)

    def has_error(self, path: Sequence[PathPart]) -> bool:
        """True when an error is already recorded at `path` (e.g. a value of the wrong type)."""
        wanted = _clean(path)
        return any(p.path == wanted and p.severity == "error" for p in self.items)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise AdtError(self.errors, self.warnings)


class AdtError(Exception):
    """The ADT cannot be compiled; `errors` says every reason, each with its path."""

    def __init__(self, errors: Sequence[Problem], warnings: Sequence[Problem] = ()) -> None:
        self.errors = list(errors)
        self.warnings = list(warnings)
        super().__init__("\n".join(str(e) for e in self.errors))


def _clean(path: Sequence[object]) -> tuple[PathPart, ...]:
    """A YAML mapping key can be a number, a bool or null: paths hold only str and int."""
    return tuple(part if isinstance(part, str) or (isinstance(part, int)
                                                   and not isinstance(part, bool))
                 else str(part) for part in path)
